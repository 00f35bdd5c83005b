"""Public licensed footage, taken out of PyPI wheels with pip (nothing else is downloaded).

- The sample walking video: Sports2D's demo clip (BSD-3-Clause). A side view, 1768×994, 30 fps, 7.7 s; the walker
  crosses right to left in seconds 1.5–6.5 and a second person jumps in the background.
- Pose2Sim's demo clips (BSD-3-Clause): four cameras (portrait 1080×1920, 60 fps, 1.7 s) on a man balancing on a
  force plate (`Demo_SinglePerson`) and, in `Demo_MultiPerson`, a woman standing beside him. Nobody walks; cam02
  sees him from the front. Used for people who do not walk and for the view check's front geometry.
- OpenCV's `vtest.avi` (Apache-2.0 AND BSD-3-Clause), from the Debian package `opencv-doc` (`apt-get download`,
  then `dpkg-deb`; nothing is installed): 768×576, 10 fps, 79.5 s, a raised camera on a square where many small
  adults walk toward, away from and across the frame at once. Used for several walkers at once and, cropped to one
  of them, for a walker approaching (or leaving) the camera.

The sample is fetched once at set-up time (`igait fetch-sample`); the others by the tests that use them, once;
all are cached, and nothing fetches them while a job runs.
"""
from __future__ import annotations

import os
import shutil
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
VTEST_PACKAGE = "opencv-doc"
VTEST_MEMBER = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"
VTEST_LICENSE = "Apache-2.0 AND BSD-3-Clause (OpenCV; Debian package opencv-doc)"


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


def fetch_vtest(dest_dir: str | os.PathLike) -> Path:
    """OpenCV's vtest.avi, cached as dest_dir/vtest.avi: the first time, `apt-get download opencv-doc` (about
    95 MB, into a temporary directory; as root or not, no sudo) and only this member taken out with `dpkg-deb`."""
    dest = Path(dest_dir) / "vtest.avi"
    if dest.is_file() and dest.stat().st_size > 0:
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", "-qq", VTEST_PACKAGE], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        deb = next(Path(tmp).glob(f"{VTEST_PACKAGE}_*.deb"))
        tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", tmp, VTEST_MEMBER], stdin=tar.stdout, check=True)
        tar.stdout.close()
        if tar.wait():
            raise subprocess.CalledProcessError(tar.returncode, "dpkg-deb --fsys-tarfile")
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".partial")
        shutil.move(Path(tmp) / VTEST_MEMBER, part)
        os.replace(part, dest)
    return dest
