"""Job IDs and the dynamic partitions they key."""
from __future__ import annotations

import re

from dagster import DynamicPartitionsDefinition

# `{user_id}_{index}`: a user ID of letters, digits and inner dashes, then an underscore and a number.
JOB_ID_RE = re.compile(r"^(?P<user_id>[A-Za-z0-9](?:[A-Za-z0-9-]{0,126}[A-Za-z0-9])?)_(?P<index>\d{1,9})$")

job_partitions = DynamicPartitionsDefinition(name="jobs")


class JobIdError(ValueError):
    pass


def validate_job_id(job_id: object) -> str:
    """Return the job ID unchanged, or raise JobIdError saying what is wrong with it (before any storage access)."""
    if not isinstance(job_id, str) or not job_id:
        raise JobIdError(f"job ID {job_id!r} is empty; expected {{user_id}}_{{index}}, e.g. user123_5")
    if JOB_ID_RE.match(job_id):
        return job_id
    problems = []
    if "/" in job_id or "\\" in job_id:
        problems.append("contains a path separator")
    if ".." in job_id:
        problems.append("contains '..'")
    if any(c.isspace() for c in job_id):
        problems.append("contains white space")
    if "_" not in job_id:
        problems.append("has no '_' between user ID and index")
    else:
        user, _, index = job_id.rpartition("_")
        if not user:
            problems.append("has an empty user ID")
        if not index:
            problems.append("has an empty index")
        elif not index.isdigit():
            problems.append(f"index {index!r} is not a number")
    detail = "; ".join(problems) or "has characters outside letters, digits and '-'"
    raise JobIdError(f"job ID {job_id!r} is malformed: {detail}; expected {{user_id}}_{{index}}, e.g. user123_5")


def user_id_of(job_id: str) -> str:
    return JOB_ID_RE.match(validate_job_id(job_id)).group("user_id")
