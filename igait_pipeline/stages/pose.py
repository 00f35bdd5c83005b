"""Pose estimation behind a small interface, and the keypoints stage (stage 4).

`PoseEstimator` is what the stages need: landmarks for one frame. `MediaPipePose` is BlazePose full
(`mp.solutions.pose`, model_complexity=1, whose weights ship inside the mediapipe 0.10.21 wheel: nothing is
downloaded). `detect_people` finds several people in one still frame by running the single-person model, masking
the person it found and running it again.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from igait_pipeline.schemas import LANDMARK_NAMES, LM
from igait_pipeline.stages import media

VISIBLE = 0.5  # a landmark counts as seen at this visibility or more

# Skeleton edges for the overlay (BlazePose body, without the face detail).
EDGES = [(11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24), (23, 25), (25, 27),
         (27, 29), (29, 31), (27, 31), (24, 26), (26, 28), (28, 30), (30, 32), (28, 32), (0, 11), (0, 12)]
LEFT = {11, 13, 15, 23, 25, 27, 29, 31}


class PoseError(RuntimeError):
    pass


class PoseEstimator(Protocol):
    name: str
    version: str

    def process(self, rgb: np.ndarray, t_ms: int) -> np.ndarray | None:
        """Landmarks of one person as a (33, 4) array of normalised x, y, z and visibility, or None."""

    def close(self) -> None: ...


class MediaPipePose:
    """BlazePose full through `mp.solutions.pose` (CPU; the Python solutions API has no GPU delegate).

    video=True tracks the person from frame to frame (for streams); video=False detects afresh on every image.
    """

    name = "mediapipe-blazepose-full"

    def __init__(self, video: bool = True, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5):
        import mediapipe as mp

        self.version = mp.__version__
        self._pose = mp.solutions.pose.Pose(static_image_mode=not video, model_complexity=1,
                                            smooth_landmarks=video, enable_segmentation=False,
                                            min_detection_confidence=min_detection_confidence,
                                            min_tracking_confidence=min_tracking_confidence)

    def process(self, rgb: np.ndarray, t_ms: int = 0) -> np.ndarray | None:
        res = self._pose.process(rgb)
        if not res.pose_landmarks:
            return None
        return np.array([[p.x, p.y, p.z, p.visibility] for p in res.pose_landmarks.landmark], dtype=np.float32)

    def close(self) -> None:
        self._pose.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def make_estimator(device: str | None = None, video: bool = True,
                   task_model: str | os.PathLike | None = None) -> PoseEstimator:
    """The pose estimator for this process. `device` (or $IGAIT_POSE_DEVICE): `cpu` (default) or `gpu`.

    `cpu` runs BlazePose full from the wheel. `gpu` runs MediaPipe Tasks' PoseLandmarker with the GPU delegate;
    it needs a `pose_landmarker_full.task` bundle (`task_model` or $IGAIT_POSE_TASK_MODEL, e.g. downloaded from
    the model store) and a GPU with EGL, which exist only on the GPU node pool: elsewhere it fails here, at the
    device boundary, with a message saying which of the two is missing.
    """
    device = (device or os.environ.get("IGAIT_POSE_DEVICE") or "cpu").lower()
    if device == "cpu":
        return MediaPipePose(video=video)
    if device == "gpu":
        return TasksPose(task_model or os.environ.get("IGAIT_POSE_TASK_MODEL"), gpu=True, video=video)
    raise PoseError(f"unknown pose device {device!r}: expected cpu or gpu")


class TasksPose:
    """BlazePose full through MediaPipe Tasks (`PoseLandmarker`), on the GPU delegate where asked."""

    name = "mediapipe-pose-landmarker-full"

    def __init__(self, model_path: str | os.PathLike | None, gpu: bool = True, video: bool = True):
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        if not model_path or not Path(model_path).is_file():
            raise PoseError(f"pose device {'gpu' if gpu else 'cpu'} needs a PoseLandmarker .task bundle; "
                            f"none at {model_path!r} (set IGAIT_POSE_TASK_MODEL)")
        self.version = mp.__version__
        self._mp = mp
        self._video = video
        delegate = BaseOptions.Delegate.GPU if gpu else BaseOptions.Delegate.CPU
        opts = vision.PoseLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model_path), delegate=delegate),
            running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE, num_poses=1)
        try:
            self._lm = vision.PoseLandmarker.create_from_options(opts)
        except RuntimeError as e:
            raise PoseError(f"MediaPipe could not start PoseLandmarker on the {'GPU' if gpu else 'CPU'}: {e}") from e

    def process(self, rgb: np.ndarray, t_ms: int = 0) -> np.ndarray | None:
        img = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        res = self._lm.detect_for_video(img, t_ms) if self._video else self._lm.detect(img)
        if not res.pose_landmarks:
            return None
        return np.array([[p.x, p.y, p.z, p.visibility if p.visibility is not None else 1.0]
                         for p in res.pose_landmarks[0]], dtype=np.float32)

    def close(self) -> None:
        self._lm.close()


def box_of(lm: np.ndarray, min_vis: float = VISIBLE) -> tuple[float, float, float, float] | None:
    """Normalised [x0, y0, x1, y1] around the visible landmarks."""
    seen = lm[lm[:, 3] >= min_vis]
    if len(seen) < 5:
        return None
    x0, y0 = seen[:, 0].min(), seen[:, 1].min()
    x1, y1 = seen[:, 0].max(), seen[:, 1].max()
    return float(max(0, x0)), float(max(0, y0)), float(min(1, x1)), float(min(1, y1))


def full_body(lm: np.ndarray) -> bool:
    """Head to ankles visible and inside the frame."""
    idx = [LM["nose"], LM["left_ankle"], LM["right_ankle"], LM["left_hip"], LM["right_hip"]]
    pts = lm[idx]
    return bool((pts[:, 3] >= VISIBLE).all() and (pts[:, 0] >= 0).all() and (pts[:, 0] <= 1).all()
                and (pts[:, 1] >= 0).all() and (pts[:, 1] <= 1).all())


def hip_center(lm: np.ndarray) -> tuple[float, float]:
    h = (lm[LM["left_hip"], :2] + lm[LM["right_hip"], :2]) / 2
    return float(h[0]), float(h[1])


@dataclass
class Person:
    landmarks: np.ndarray
    box: tuple[float, float, float, float]

    @property
    def hip(self) -> tuple[float, float]:
        return hip_center(self.landmarks)

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


def region_to_frame(lm: np.ndarray, region: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """Landmarks found in a region (x, y, width, height, in pixels) of a frame of `size` (width, height), made
    relative to the whole frame."""
    (x, y, rw, rh), (w, h) = region, size
    full = lm.copy()
    full[:, 0] = (x + lm[:, 0] * rw) / w
    full[:, 1] = (y + lm[:, 1] * rh) / h
    return full


PAD_DARK = 8  # brightest level (any channel) of stage 1's black padding after H.264


def content_box(frame: np.ndarray, dark: int = PAD_DARK, min_bar: float = 0.02) -> tuple[int, int, int, int] | None:
    """The picture inside the black bars stage 1 pads with (a portrait phone video becomes a 608-pixel-wide
    picture in a 1920×1080 frame), as (x, y, width, height) in pixels; None when no bar is wider than `min_bar`
    of the frame (or the frame is all dark). A bar is a run of whole columns (rows) from an edge, no pixel of
    which is brighter than `dark` in any channel (the padding is black; H.264 keeps it within a few levels)."""
    h, w = frame.shape[:2]
    cols = np.flatnonzero(frame.max(axis=(0, 2)) > dark)
    rows = np.flatnonzero(frame.max(axis=(1, 2)) > dark)
    if not len(cols) or not len(rows):
        return None
    x0, x1, y0, y1 = int(cols[0]), int(cols[-1]) + 1, int(rows[0]), int(rows[-1]) + 1
    if w - (x1 - x0) < min_bar * w and h - (y1 - y0) < min_bar * h:
        return None
    return x0, y0, x1 - x0, y1 - y0


def bars_stay_dark(frame: np.ndarray, box: tuple[int, int, int, int], dark: int = PAD_DARK, edge: int = 0) -> bool:
    """Whether everything outside `box` (x, y, width, height) is still black padding in this frame, leaving out
    the `edge` pixels next to the picture (H.264 rings into them from a bright picture edge)."""
    x, y, bw, bh = box
    h, w = frame.shape[:2]
    y0, y1 = max(0, y - edge), min(h, y + bh + edge)
    x0, x1 = max(0, x - edge), min(w, x + bw + edge)
    return all(part.size == 0 or int(part.max()) <= dark
               for part in (frame[:y0], frame[y1:], frame[:, :x0], frame[:, x1:]))


def detect_people(estimator: PoseEstimator, rgb: np.ndarray, max_people: int = 3, pad: float = 0.03,
                  region: tuple[int, int, int, int] | None = None) -> list[Person]:
    """Everyone in one still frame (still-image estimator), searched within `region` (x, y, width, height in
    pixels: the picture inside padding bars, `content_box`) or the whole frame.

    BlazePose looks at a square, so people in a wide picture are small to it: a landscape picture is searched in
    overlapping square tiles. In each tile the model finds one person; that person is blacked out and the tile
    searched again. People found twice (in two tiles) are merged. Landmarks are relative to the whole frame.
    """
    h, w = rgb.shape[:2]
    rx, ry, rw, rh = region or (0, 0, w, h)
    if rw > 1.2 * rh:
        n = int(np.ceil(rw / rh)) + 1
        tiles = [(rx + int(x), ry, rh, rh) for x in np.linspace(0, rw - rh, n)]
    else:
        tiles = [(rx, ry, rw, rh)]
    found: list[Person] = []
    for tx, ty, tw, th in tiles:
        img = rgb[ty:ty + th, tx:tx + tw].copy()
        seen_here: list[tuple[float, float, float, float]] = []
        for _ in range(2 if len(tiles) > 1 else max_people):
            lm = estimator.process(img, 0)
            box = box_of(lm) if lm is not None else None
            if box is None or any(_iou(box, b) > 0.3 for b in seen_here):
                break  # nobody more, or the model found the same person through the mask
            seen_here.append(box)
            x0, y0 = int(max(0.0, box[0] - pad) * tw), int(max(0.0, box[1] - pad) * th)
            x1, y1 = int(min(1.0, box[2] + pad) * tw), int(min(1.0, box[3] + pad) * th)
            img[y0:y1, x0:x1] = 0
            full = region_to_frame(lm, (tx, ty, tw, th), (w, h))
            found.append(Person(full, box_of(full)))
    people: list[Person] = []
    for p in sorted(found, key=lambda p: -float((p.landmarks[:, 3] >= VISIBLE).sum())):
        if all(np.hypot(p.hip[0] - q.hip[0], p.hip[1] - q.hip[1]) > 0.05 and _iou(p.box, q.box) < 0.5
               for q in people):
            people.append(p)
    return people[:max_people]


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def draw_skeleton(frame: np.ndarray, lm: np.ndarray | None) -> np.ndarray:
    """Draw the body skeleton (left side orange, right side blue) on a BGR frame in place."""
    if lm is None:
        return frame
    h, w = frame.shape[:2]
    thick = max(2, int(round(min(h, w) / 250)))
    pts = [(int(x * w), int(y * h)) for x, y in lm[:, :2]]
    for a, b in EDGES:
        if lm[a, 3] >= VISIBLE and lm[b, 3] >= VISIBLE:
            color = (0, 140, 255) if a in LEFT and b in LEFT else (255, 140, 0) if a not in LEFT and b not in LEFT \
                else (200, 200, 200)
            cv2.line(frame, pts[a], pts[b], color, thick, cv2.LINE_AA)
    for i, p in enumerate(pts):
        if i >= 11 and lm[i, 3] >= VISIBLE:
            cv2.circle(frame, p, thick + 1, (255, 255, 255), -1, cv2.LINE_AA)
    return frame


@dataclass
class KeypointsResult:
    keypoints_path: Path
    overlay_path: Path
    frames: int
    detected: int
    rejected: int
    fps: float
    width: int
    height: int
    model: str  # estimator name and version
    middle_detected: int  # index of the middle frame among those with the walker detected (0 if none)

    @property
    def detection_ratio(self) -> float:
        return self.detected / self.frames if self.frames else 0.0


WalkerGate = Callable[[float, np.ndarray], bool]  # (t, landmarks) -> is this the walker?


OVERLAY_MAX_WIDTH = 960  # the overlay is for people to look at; smaller keeps its encoding off pose's back


class _OverlayWriter:
    """Draws and encodes the overlay on a worker thread, fed through a bounded queue (memory stays flat)."""

    def __init__(self, dst: Path, width: int, height: int, fps: float):
        import queue
        import threading

        scale = min(1.0, OVERLAY_MAX_WIDTH / width)
        self.size = (int(round(width * scale / 2) * 2), int(round(height * scale / 2) * 2))
        self.resize = scale < 1.0
        self.writer = media.VideoWriter(dst, *self.size, fps)
        self.queue: queue.Queue = queue.Queue(maxsize=16)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="overlay-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is not None:
                continue  # drain, so the producer never blocks on a dead consumer
            try:
                frame, lm = item
                if self.resize:
                    frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_LINEAR)
                self.writer.write(draw_skeleton(frame, lm))
            except BaseException as e:  # reported to the producer by put()/close()
                self.error = e

    def put(self, frame: np.ndarray, lm: np.ndarray | None) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((frame, lm))

    def close(self) -> Path:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            self.writer.abort()
            raise self.error
        return self.writer.close()

    def abort(self) -> None:
        self.error = self.error or RuntimeError("aborted")
        self.queue.put(None)
        self.thread.join()
        self.writer.abort()


def extract_keypoints(video: str | os.PathLike, out_dir: str | os.PathLike, view: str, job_id: str,
                      estimator: PoseEstimator | None = None, is_walker: WalkerGate | None = None,
                      progress: Callable[[int, int], None] | None = None,
                      background: list[list[float]] | None = None) -> KeypointsResult:
    """Pose on every frame, streamed: a bounded number of frames in memory, keypoints JSON written frame by
    frame, overlay drawn and encoded on a worker thread through an ffmpeg pipe. Writes `{view}_keypoints.json`
    and `{view}_overlay.mp4` (at most OVERLAY_MAX_WIDTH wide) into out_dir.

    is_walker rejects detections that are not the walker (their landmarks become null and are counted).
    background: the camera's pan in this video's normalised x (`Keypoints.background`), written with them.
    """
    info = media.probe(video)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    own = estimator is None
    est = estimator or make_estimator(video=True)
    kp_path = out_dir / f"{view}_keypoints.json"
    tmp_kp = kp_path.with_name(f".{kp_path.name}.partial")
    overlay = _OverlayWriter(out_dir / f"{view}_overlay.mp4", info.width, info.height, info.fps)
    n = rejected = 0
    seen: list[int] = []  # indices of frames with the walker detected (a few bytes per frame)
    try:
        with open(tmp_kp, "w") as f:
            head = {"job_id": job_id, "view": view, "fps": info.fps, "width": info.width, "height": info.height,
                    "model": {"name": est.name, "version": est.version}, "landmark_names": LANDMARK_NAMES,
                    "background": background or []}
            f.write(json.dumps(head)[:-1] + ', "frames": [')
            for i, t, frame in media.iter_frames(video):
                lm = est.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), int(t * 1000))
                if lm is not None and is_walker is not None and not is_walker(t, lm):
                    lm, rejected = None, rejected + 1
                if lm is not None:
                    seen.append(i)
                overlay.put(frame, lm)
                rec = {"index": i, "t": round(t, 4),
                       "landmarks": None if lm is None else np.round(lm, 5).tolist()}
                f.write(("," if n else "") + json.dumps(rec, separators=(",", ":")))
                n += 1
                if progress and (n % 60 == 0):
                    progress(n, info.frames)
            f.write("]}")
        if n == 0:
            raise media.MediaError(f"{Path(video).name}: no frame could be decoded")
        overlay.close()
        os.replace(tmp_kp, kp_path)
    except BaseException:
        overlay.abort()
        tmp_kp.unlink(missing_ok=True)
        raise
    finally:
        if own:
            est.close()
    if progress:
        progress(n, n)
    return KeypointsResult(kp_path, out_dir / f"{view}_overlay.mp4", n, len(seen), rejected, info.fps,
                           info.width, info.height, f"{est.name} {est.version}",
                           seen[len(seen) // 2] if seen else 0)
