"""The contracts: metadata as the web app sends it."""
import pytest

from igait_pipeline.schemas import JobMetadata, MetadataError, parse_height_cm, parse_weight_kg


@pytest.mark.parametrize("raw,cm", [("4'2\"", 127.0), ("4 ft 2 in", 127.0), ("127 cm", 127.0), ("1.27 m", 127.0),
                                    ("50 in", 127.0), (127, 127.0), ("4'", 121.9), ("4' 2''", 127.0)])
def test_height_as_the_web_app_sends_it(raw, cm):
    assert parse_height_cm(raw) == pytest.approx(cm, abs=0.1)


@pytest.mark.parametrize("raw", ["tall", "12 ft", "4'2\" and a bit", "", None, True])
def test_bad_heights(raw):
    with pytest.raises(MetadataError, match="height"):
        parse_height_cm(raw)


def test_weight_units():
    assert parse_weight_kg("55 lb") == pytest.approx(24.9, abs=0.1)
    assert parse_weight_kg(28) == 28.0
    with pytest.raises(MetadataError, match="weight"):
        parse_weight_kg("heavy")


def test_metadata_parse_and_errors():
    m = JobMetadata.parse({"age": 9, "sex": "female", "height": "4'2\"", "weight": "28 kg",
                           "ethnicity": "Asian", "email": "a@b.org"})
    assert (m.sex, m.height_cm, m.weight_kg) == ("F", 127.0, 28.0)
    assert m.patient() == {"age": 9, "sex": "F", "height": 127.0, "weight": 28.0, "ethnicity": "Asian"}
    with pytest.raises(MetadataError, match="lacks height, email"):
        JobMetadata.parse({"age": 9, "sex": "F", "weight": 28, "ethnicity": "x"})
    with pytest.raises(MetadataError, match="email"):
        JobMetadata.parse({"age": 9, "sex": "F", "height": 120, "weight": 28, "ethnicity": "x", "email": "nope"})
    with pytest.raises(MetadataError, match="age"):
        JobMetadata.parse({"age": -3, "sex": "F", "height": 120, "weight": 28, "ethnicity": "x", "email": "a@b.c"})
    with pytest.raises(MetadataError, match="not a JSON object"):
        JobMetadata.parse([1, 2])
