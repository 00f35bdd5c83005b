"""The public sample walking video: Sports2D's demo clip (BSD-3-Clause), taken out of its PyPI wheel.

A side view, 1768×994, 30 fps, 7.7 s; the walker crosses in seconds 1.5–6.5 and a second person jumps in the
background. Fetched once at set-up time (`igait fetch-sample`) and cached; nothing fetches it while a job runs.
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


def default_sample_path() -> Path:
    return Path(os.environ.get("IGAIT_SAMPLE_VIDEO") or "data/samples/sports2d_demo.mp4")


def fetch_sample(dest: str | os.PathLike | None = None) -> Path:
    """Return the cached sample video, downloading the sports2d wheel with pip the first time."""
    dest = Path(dest or default_sample_path())
    if dest.is_file() and dest.stat().st_size > 0:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check",
                        "-d", tmp, SAMPLE_PACKAGE], check=True)
        wheel = next(Path(tmp).glob("sports2d-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            part = dest.with_name(dest.name + ".partial")
            part.write_bytes(z.read(SAMPLE_MEMBER))
            os.replace(part, dest)
    return dest
