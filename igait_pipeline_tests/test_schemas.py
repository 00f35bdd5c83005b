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


GOOD = {"age": 9, "sex": "F", "height": "4'2\"", "weight": "28 kg", "ethnicity": "Asian", "email": "a@b.org"}


@pytest.mark.parametrize("field,value", [
    ("age", True), ("age", False), ("age", "nine"), ("age", [9]), ("age", None),  # was: true became 1.0
    ("sex", 1), ("sex", True), ("ethnicity", 5), ("ethnicity", None), ("email", 12),
])
def test_metadata_types_are_strict(field, value):
    with pytest.raises(MetadataError, match=field):
        JobMetadata.parse({**GOOD, field: value})


def test_numbers_as_text_still_parse():
    assert JobMetadata.parse({**GOOD, "age": "7.5"}).age == 7.5


@pytest.mark.parametrize("field,value", [
    ("height", "913 cm"), ("height", "tall as 4'11"), ("weight", "912 kg"), ("weight", "about 27.35"),
    ("sex", "Xylophone"), ("age", 911.5), ("age", "nine hundred"), ("email", "kid.smith@ex ample.org"),
    ("email", "kid.smith@example.org, other@example.org"), ("ethnicity", ""),
])
def test_metadata_errors_name_the_field_never_the_value(field, value):
    """Refusal messages go to logs, tick logs and the event log: the field name only (was: the value too)."""
    with pytest.raises(MetadataError) as e:
        JobMetadata.parse({**GOOD, field: value})
    message = str(e.value)
    assert field in message
    words = [p for p in str(value).replace(",", " ").replace("@", " ").split() if len(p) > 2]
    for part in [str(value)] * bool(str(value)) + words:
        if part not in ("cm", "kg", "about", "as"):
            assert part not in message, (part, message)
