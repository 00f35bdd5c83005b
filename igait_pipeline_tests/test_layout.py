"""The job layout: job-ID rules, the stage table, storage keys."""
import pytest

from igait_pipeline.layout import JobIdError, user_id_of, validate_job_id


@pytest.mark.parametrize("job_id", ["user123_5", "a_1", "Xy-9z_120"])
def test_good_job_ids(job_id):
    assert validate_job_id(job_id) == job_id


@pytest.mark.parametrize("job_id,why", [
    ("user/1_5", "path separator"), ("../x_1", r"'\.\.'"), ("user 1_5", "white space"), ("_5", "empty user ID"),
    ("user123_", "empty index"), ("user123", "no '_'"), ("user_x", "not a number"), ("", "empty"),
    ("us$er_1", "characters outside"),
])
def test_malformed_job_ids_say_why(job_id, why):
    with pytest.raises(JobIdError, match=why):
        validate_job_id(job_id)


@pytest.mark.parametrize("job_id,why", [
    ("a_1\n", "white space"), ("a_1\r\n", "white space"), ("\na_1", "white space"),
    ("a_\u0661", "not a number"),  # an Arabic-Indic digit: str.isdigit() says yes, the layout says no
])
def test_a_trailing_newline_or_foreign_digit_is_refused(job_id, why):
    with pytest.raises(JobIdError, match=why):
        validate_job_id(job_id)


def test_a_too_long_job_id_is_refused_for_its_length():
    with pytest.raises(JobIdError, match=r"too long: 300 characters, at most 138"):
        validate_job_id("u" * 298 + "_1")
    with pytest.raises(JobIdError, match="at most 128"):
        validate_job_id("u" * 129 + "_1")
    assert validate_job_id("u" * 128 + "_123456789") == "u" * 128 + "_123456789"


def test_empty_and_non_string_job_ids_are_refused():
    with pytest.raises(JobIdError, match="is empty"):
        validate_job_id("")
    with pytest.raises(JobIdError, match="not a string"):
        validate_job_id(None)


def test_user_id_of():
    assert user_id_of("user123_5") == "user123"


def test_per_view_stages_split_their_files_by_view():
    from igait_pipeline.layout import (
        CONVERTED,
        KEYPOINTS,
        REFRAMED,
        STAGES,
        VALIDATION,
        VIEWS,
        LayoutError,
        Stage,
        stage_of_asset,
        view_of,
        view_of_asset,
    )

    assert [s.asset for s in STAGES if s.per_view] == ["converted_video", "reframed_video", "keypoints"]
    assert REFRAMED.asset_keys == ("reframed_video_front", "reframed_video_side")
    assert REFRAMED.asset_key("side") == "reframed_video_side" and VALIDATION.asset_key() == "validation_report"
    with pytest.raises(LayoutError, match="one asset per view"):
        REFRAMED.asset_key()
    with pytest.raises(LayoutError, match="one asset for both views"):
        VALIDATION.asset_key("front")
    # every key's name (what the UI shows) says its stage, and a per-view key its view: never just "front"
    for s in STAGES:
        for key, view in zip(s.asset_keys, VIEWS if s.per_view else (None,)):
            assert key.startswith(s.asset) and "/" not in key and (view is None or key.endswith("_" + view))
            assert (stage_of_asset(key), view_of_asset(key)) == (s, view)
            assert (stage_of_asset([key]), view_of_asset(s.former_asset_key(view))) == (s, view)  # older keys
    assert stage_of_asset("keypoints/front") is KEYPOINTS and view_of_asset("keypoints") is None
    with pytest.raises(KeyError, match="no stage has the asset 'keypoints_top'"):
        stage_of_asset("keypoints_top")
    assert VALIDATION.asset_keys == ("validation_report",)
    assert REFRAMED.files_of("front") == ("front.mp4", "front_crop.json")
    assert KEYPOINTS.files_of("side") == ("side_keypoints.json", "side_overlay.mp4")
    assert CONVERTED.files_of(None) == ("front.mp4", "side.mp4")
    assert VALIDATION.files_of("front") == ("validation.json",)
    assert [view_of(n) for n in ("front.mp4", "side_crop.json", "sidecar.json", "cycles.json")] == \
        ["front", "side", None, None]
    assert stage_of_asset("keypoints/front") is KEYPOINTS and stage_of_asset(["keypoints", "side"]) is KEYPOINTS
    with pytest.raises(LayoutError, match="files of no view"):
        Stage(9, "x", "x", ("front.mp4", "crop.json"), per_view=True)
