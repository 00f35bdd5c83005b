"""Public licensed footage, taken out of PyPI wheels with pip (nothing else is downloaded).

- The sample walking video: Sports2D's demo clip (BSD-3-Clause). A side view, 1768×994, 30 fps, 7.7 s; the walker
  crosses right to left in seconds 1.5–6.5 and a second person jumps in the background.
- Pose2Sim's demo clips (BSD-3-Clause): four cameras (portrait 1080×1920, 60 fps, 1.7 s) on a man balancing on a
  force plate (`Demo_SinglePerson`) and, in `Demo_MultiPerson`, a woman standing beside him. Nobody walks; cam02
  sees him from the front. Used for people who do not walk and for the view check's front geometry.

Fetched once at set-up time (`igait fetch-sample`) and cached; nothing fetches them while a job runs.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

SAMPLE_PACKAGE = "sports2d==0.8.34"
SAMPLE_MEMBER = "Sports2D/Demo/demo.mp4"
SAMPLE_LICENSE = "BSD-3-Clause (Sports2D, David Pagnon)"
POSE2SIM_PACKAGE = "pose2sim==0.10.49"
POSE2SIM_LICENSE = "BSD-3-Clause (Pose2Sim, David Pagnon)"


def default_sample_path() -> Path:
    return Path(os.environ.get("IGAIT_SAMPLE_VIDEO") or "data/samples/sports2d_demo.mp4")


def fetch_wheel_member(package: str, member: str, dest: str | os.PathLike) -> Path:
    """Return dest, extracting `member` from `package`'s wheel (pip download --no-deps) the first time."""
    dest = Path(dest)
    if dest.is_file() and dest.stat().st_size > 0:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check",
                        "-d", tmp, package], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z:
            part = dest.with_name(dest.name + ".partial")
            part.write_bytes(z.read(member))
            os.replace(part, dest)
    return dest


def fetch_sample(dest: str | os.PathLike | None = None) -> Path:
    """Return the cached sample video, downloading the sports2d wheel with pip the first time."""
    return fetch_wheel_member(SAMPLE_PACKAGE, SAMPLE_MEMBER, dest or default_sample_path())


def fetch_pose2sim(camera: str, dest_dir: str | os.PathLike, demo: str = "Demo_SinglePerson") -> Path:
    """One of Pose2Sim's demo clips (`cam01`…`cam04` of `Demo_SinglePerson` or `Demo_MultiPerson`), cached."""
    return fetch_wheel_member(POSE2SIM_PACKAGE, f"Pose2Sim/{demo}/videos/{camera}.mp4",
                              Path(dest_dir) / f"pose2sim_{demo.split('_')[1].lower()}_{camera}.mp4")
