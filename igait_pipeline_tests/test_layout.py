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


def test_user_id_of():
    assert user_id_of("user123_5") == "user123"
