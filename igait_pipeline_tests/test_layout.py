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
