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


def fetch_wheel_members(package: str, members: dict[str, str | os.PathLike]) -> dict[str, Path]:
    """{member: dest}: extract each member of `package`'s wheel (pip download --no-deps) to its dest, once; a
    dest already there is kept. Returns {member: dest path}."""
    dests = {m: Path(d) for m, d in members.items()}
    missing = {m: d for m, d in dests.items() if not (d.is_file() and d.stat().st_size > 0)}
    if missing:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                            "--disable-pip-version-check", "-d", tmp, package], check=True)
            wheel = next(Path(tmp).glob("*.whl"))
            with zipfile.ZipFile(wheel) as z:
                for member, dest in missing.items():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    part = dest.with_name(dest.name + ".partial")
                    part.write_bytes(z.read(member))
                    os.replace(part, dest)
    return dests


def fetch_sample(dest: str | os.PathLike | None = None) -> Path:
    """Return the cached sample video, downloading the sports2d wheel with pip the first time."""
    return fetch_wheel_members(SAMPLE_PACKAGE, {SAMPLE_MEMBER: dest or default_sample_path()})[SAMPLE_MEMBER]


def fetch_pose2sim(dest_dir: str | os.PathLike) -> dict[str, Path]:
    """Pose2Sim's eight demo clips, cached in dest_dir as `pose2sim_{single|multi}_cam0N.mp4`; keyed by that
    name without `.mp4` (`single_cam02`, …). One download for all of them."""
    members = {f"Pose2Sim/Demo_{demo}Person/videos/cam0{n}.mp4":
               Path(dest_dir) / f"pose2sim_{demo.lower()}_cam0{n}.mp4"
               for demo in ("Single", "Multi") for n in range(1, 5)}
    return {d.stem.removeprefix("pose2sim_"): d for d in fetch_wheel_members(POSE2SIM_PACKAGE, members).values()}
