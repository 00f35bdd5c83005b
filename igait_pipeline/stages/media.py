"""Video in and out: probing, conversion to the pipeline's canonical form, cropping, frame streaming.

Everything goes through ffmpeg (via ffmpeg-python) so whatever ffmpeg reads is accepted: mp4, mov, webm/VP9, avi,
HEVC, phone videos with rotation side data (ffmpeg auto-rotates on decode) and variable frame rates.
"""
from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import ffmpeg
import numpy as np

Progress = Callable[[float], None] | None  # called with the share done, 0..1

TARGET_WIDTH, TARGET_HEIGHT, TARGET_FPS = 1920, 1080, 60
# The shortest video stage 1 accepts: about two strides of a walking child (a stride takes about 1 s). Shorter
# clips cannot show a walk; they are refused with this number instead of failing later as "does not walk".
MIN_WALK_DURATION_S = 2.0
X264_PRESET = "veryfast"
X264_CRF = 18


class MediaError(ValueError):
    """A video that cannot be used: missing, unreadable, corrupt, without a video stream or too short."""


@dataclass(frozen=True)
class VideoInfo:
    width: int  # as displayed (rotation applied)
    height: int
    fps: float
    frames: int
    duration: float
    codec: str
    rotation: int

    def as_metadata(self) -> dict:
        return {"width": self.width, "height": self.height, "fps": round(self.fps, 3), "frames": self.frames,
                "duration_s": round(self.duration, 3), "codec": self.codec}


def _rotation(stream: dict) -> int:
    rot = stream.get("tags", {}).get("rotate")
    if rot is None:
        for side in stream.get("side_data_list", []) or []:
            if "rotation" in side:
                rot = side["rotation"]
    try:
        return int(float(rot or 0)) % 360
    except ValueError:
        return 0


def probe(path: str | os.PathLike, min_duration: float = 0.5) -> VideoInfo:
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path.name}: file is missing")
    if path.stat().st_size == 0:
        raise MediaError(f"{path.name}: file is empty")
    try:
        info = ffmpeg.probe(str(path))
    except ffmpeg.Error as e:
        detail = (e.stderr or b"").decode(errors="replace").strip().splitlines()
        raise MediaError(f"{path.name}: not a readable video ({detail[-1] if detail else 'ffprobe failed'})") from None
    streams = [s for s in info.get("streams", []) if s.get("codec_type") == "video"]
    if not streams:
        raise MediaError(f"{path.name}: has no video stream")
    s = streams[0]
    rate = s.get("avg_frame_rate") or s.get("r_frame_rate") or "0/1"
    try:
        fps = float(Fraction(rate)) if rate not in ("0/0", "0/1") else float(Fraction(s.get("r_frame_rate", "0/1")))
    except (ZeroDivisionError, ValueError):
        fps = 0.0
    duration = float(s.get("duration") or info.get("format", {}).get("duration") or 0.0)
    frames = int(s.get("nb_frames") or 0) or int(round(duration * fps))
    w, h = int(s.get("width") or 0), int(s.get("height") or 0)
    rot = _rotation(s)
    if rot in (90, 270):
        w, h = h, w
    if w <= 0 or h <= 0 or fps <= 0:
        raise MediaError(f"{path.name}: video stream has no usable size or frame rate")
    if duration < min_duration:
        raise MediaError(f"{path.name}: video is too short: {duration:.2f} s long, the minimum is "
                         f"{min_duration:g} s")
    return VideoInfo(w, h, fps, frames, duration, s.get("codec_name", "?"), rot)


def _run_with_progress(stream, duration: float, progress: Progress) -> None:
    """Run an ffmpeg-python stream, reporting progress from `-progress pipe:1`; raise MediaError on failure."""
    args = stream.global_args("-nostdin", "-hide_banner", "-loglevel", "error", "-progress", "pipe:1",
                              "-nostats").compile()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = -1.0
    for line in proc.stdout:
        if progress and line.startswith("out_time_us=") and duration > 0:
            try:
                done = min(1.0, int(line.split("=", 1)[1]) / 1e6 / duration)
            except ValueError:
                continue
            if done - last >= 0.1:
                progress(done)
                last = done
    err = proc.stderr.read()
    if proc.wait() != 0:
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        raise MediaError(f"ffmpeg failed: {lines[-1] if lines else 'exit code ' + str(proc.returncode)}")
    if progress:
        progress(1.0)


def _partial(dst: Path) -> Path:
    return dst.with_name(f".{dst.stem}.{uuid.uuid4().hex}.partial{dst.suffix}")


def _encode(src: str | os.PathLike, dst: str | os.PathLike, filters, progress: Progress) -> VideoInfo:
    """Decode src's video, apply filters (a function of the ffmpeg-python stream) and encode H.264 yuv420p, no
    audio, fast start; the result appears at dst whole or not at all. Returns the output's VideoInfo."""
    info = probe(src)
    dst = Path(dst)
    tmp = _partial(dst)
    v = filters(ffmpeg.input(str(src)).video)
    stream = ffmpeg.output(v, str(tmp), vcodec="libx264", preset=X264_PRESET, crf=X264_CRF, pix_fmt="yuv420p",
                           an=None, movflags="+faststart", f="mp4").overwrite_output()
    try:
        _run_with_progress(stream, info.duration, progress)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return probe(dst)


def convert(src: str | os.PathLike, dst: str | os.PathLike, progress: Progress = None, width: int = TARGET_WIDTH,
            height: int = TARGET_HEIGHT, fps: int = TARGET_FPS) -> VideoInfo:
    """Convert any readable video to the canonical form: scaled to fit width×height (aspect kept, padded),
    constant fps, H.264 yuv420p, no audio."""
    def filters(v):
        v = v.filter("scale", width, height, force_original_aspect_ratio="decrease", flags="bicubic")
        v = v.filter("pad", width, height, "(ow-iw)/2", "(oh-ih)/2", color="black")
        return v.filter("setsar", 1).filter("fps", fps=fps)
    return _encode(src, dst, filters, progress)


def crop(src: str | os.PathLike, dst: str | os.PathLike, box: tuple[int, int, int, int],
         progress: Progress = None) -> VideoInfo:
    """Crop to box = (x, y, w, h) in pixels; keeps fps; H.264 yuv420p."""
    x, y, w, h = box
    return _encode(src, dst, lambda v: v.filter("crop", w, h, x, y), progress)


def iter_frames(path: str | os.PathLike, step: int = 1) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield (index, t seconds, BGR frame) for every `step`-th frame, one frame in memory at a time."""
    info = probe(path)
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise MediaError(f"{Path(path).name}: OpenCV cannot open it")
    try:
        i = 0
        while True:
            if i % step:
                if not cap.grab():
                    break
            else:
                ok, frame = cap.read()
                if not ok:
                    break
                yield i, i / info.fps, frame
            i += 1
    finally:
        cap.release()


class VideoWriter:
    """Streams BGR frames into an H.264 mp4 through an ffmpeg pipe (playable in browsers, unlike cv2's mp4v)."""

    def __init__(self, dst: str | os.PathLike, width: int, height: int, fps: float, preset: str = "ultrafast"):
        self.dst = Path(dst)
        self.tmp = _partial(self.dst)
        self.size = (width, height)
        args = (ffmpeg.input("pipe:", format="rawvideo", pix_fmt="bgr24", s=f"{width}x{height}", r=fps)
                .output(str(self.tmp), vcodec="libx264", preset=preset, crf=23, pix_fmt="yuv420p",
                        movflags="+faststart", f="mp4")
                .overwrite_output().global_args("-nostdin", "-hide_banner", "-loglevel", "error").compile())
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, frame: np.ndarray) -> None:
        self.proc.stdin.write(np.ascontiguousarray(frame).tobytes())

    def close(self) -> Path:
        self.proc.stdin.close()
        err = self.proc.stderr.read().decode(errors="replace")
        if self.proc.wait() != 0:
            self.tmp.unlink(missing_ok=True)
            raise MediaError(f"ffmpeg could not write {self.dst.name}: {err.strip()[-300:]}")
        os.replace(self.tmp, self.dst)
        return self.dst

    def abort(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.kill()
        self.proc.wait()
        self.tmp.unlink(missing_ok=True)
