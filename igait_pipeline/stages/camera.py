"""How far a hand-held camera pans between two of stage 2's sampled frames: the median horizontal shift of the
background (corners outside everyone's box, followed by pyramidal Lucas–Kanade optical flow and checked by flowing
them back). A parent often turns the phone to keep the walking child in the picture; the child then hardly moves
across the picture, and only the background shows that the child travels. No Dagster import here."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class PanParams:
    """Stage 2's measure of the camera's pan (ValidityParams.pan; recorded in validation.json `params`)."""

    width: int = 256
    """Frames are measured in grey at this width: pans between samples (about 0.17 s apart) are up to a tenth of
    the picture, which three pyramid levels of 21-pixel windows follow at this size: about 8 ms of CPU a sample
    on stage 1's 1080p frames, most of it shrinking the frame (about 0.7 CPU-s a job of two 8-s views)."""
    max_points: int = 300
    """Background corners followed per sample (Shi–Tomasi, at least 5 pixels apart)."""
    min_points: int = 25
    """Fewer background corners followed both ways (a plain wall, the sky, a dark room): the shift between the two
    samples is unknown and counts as none (a still camera), so nothing is concluded from a blank background."""
    max_back_error_px: float = 1.0
    """A corner counts when flowing it forward and back again lands within this many pixels of where it started."""
    min_agreement: float = 0.5
    """...and the shift is known only when at least this share of the counted corners moved within `agree_px`, or
    `agree_share` of the median shift, of their median: moving clutter (trees, other people's limbs outside their
    boxes) is outvoted or leaves the shift unknown. The share allows for parallax: near the camera the floor
    slides faster than the far wall (on a real hall clip panning ~18 pixels a sample at this width, ±2 pixels
    agreed for 11–90 % of the corners, ±30 % for most)."""
    agree_px: float = 2.0
    agree_share: float = 0.3
    box_margin: float = 0.15
    """People's boxes (on both samples), grown by this share of their size on each side, are not background."""
    min_slide: float = 0.05
    """A background that slides less than this share of the frame width over the whole video (largest minus
    smallest position) is a camera held still: validation.json's `background_track` is then empty and stage 5
    takes nothing off. The labelled clips filmed from a tripod or a steady hand read 0–0.037 (tremor, and corners
    on shadows or loose clothes just outside a walker's box: at most ~4 % of a crossing), those filmed by a phone
    following the walker 0.069–2.8 (`bench/walkers.py`, `walk.camera_pan`)."""


PAN = PanParams()


Box = tuple[float, float, float, float]


def small_grey(frame: np.ndarray, p: PanParams = PAN, picture: Box | None = None) -> np.ndarray:
    """The BGR frame's `picture` (x0, y0, x1, y1 as shares of the frame: the part inside stage 1's black padding;
    default the whole frame) in grey, `p.width` pixels wide (a portrait phone video is a 608-pixel-wide picture
    in a 1920-pixel frame: measured whole, it would be 81 pixels wide)."""
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = picture or (0.0, 0.0, 1.0, 1.0)
    crop = frame[int(round(y0 * h)):int(round(y1 * h)), int(round(x0 * w)):int(round(x1 * w))]
    ch, cw = crop.shape[:2]
    size = (p.width, max(1, round(ch * p.width / max(cw, 1))))
    return cv2.resize(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), size, interpolation=cv2.INTER_AREA)


def background_shift(prev: np.ndarray, cur: np.ndarray, boxes: list, p: PanParams = PAN,
                     picture: Box | None = None) -> float | None:
    """Median horizontal shift of the background from `prev` to `cur` (`small_grey` of the same `picture`), as a
    share of the frame width (+: the background moved right, the camera turned left); None when unknown.
    `boxes`: everyone's boxes on either frame, (x0, y0, x1, y1) as shares of the frame."""
    h, w = prev.shape
    px0, py0, px1, py1 = picture or (0.0, 0.0, 1.0, 1.0)
    pw, ph = px1 - px0, py1 - py0
    mask = np.full((h, w), 255, np.uint8)
    if picture:  # a pixel or two of the padding's edge may be in the crop: not background
        mask[:2], mask[-2:], mask[:, :2], mask[:, -2:] = 0, 0, 0, 0
    for x0, y0, x1, y1 in boxes:
        mx, my = p.box_margin * (x1 - x0), p.box_margin * (y1 - y0)
        x0, x1 = (x0 - mx - px0) / pw, (x1 + mx - px0) / pw
        y0, y1 = (y0 - my - py0) / ph, (y1 + my - py0) / ph
        mask[max(0, int(y0 * h)):max(0, int(np.ceil(y1 * h))), max(0, int(x0 * w)):max(0, int(np.ceil(x1 * w)))] = 0
    pts = cv2.goodFeaturesToTrack(prev, p.max_points, 0.01, 5, mask=mask)
    if pts is None or len(pts) < p.min_points:
        return None
    lk = {"winSize": (21, 21), "maxLevel": 3}
    fwd, ok1, _ = cv2.calcOpticalFlowPyrLK(prev, cur, pts, None, **lk)
    back, ok2, _ = cv2.calcOpticalFlowPyrLK(cur, prev, fwd, None, **lk)
    good = (ok1.ravel() == 1) & (ok2.ravel() == 1) & (
        np.linalg.norm((back - pts).reshape(-1, 2), axis=1) <= p.max_back_error_px)
    if good.sum() < p.min_points:
        return None
    dx = (fwd - pts).reshape(-1, 2)[good, 0]
    med = float(np.median(dx))
    if np.mean(np.abs(dx - med) <= max(p.agree_px, p.agree_share * abs(med))) < p.min_agreement:
        return None
    return med / w * pw


def pan_track(times: list[float], shifts: list[float | None]) -> tuple[np.ndarray, np.ndarray]:
    """The background's position at each sample relative to the first (shares of the frame width): the running
    sum of the shifts between consecutive samples (`shifts[k]`: from sample k-1 to k; `shifts[0]` unused). An
    unknown shift is interpolated from the known ones around it (a hand turns a phone smoothly); with none known,
    the camera is taken to stand still."""
    t = np.asarray(times, float)
    steps = np.zeros(len(t))
    known = [k for k in range(1, len(t)) if shifts[k] is not None]
    if known:
        unknown = [k for k in range(1, len(t)) if shifts[k] is None]
        steps[known] = [shifts[k] for k in known]
        steps[unknown] = np.interp(t[unknown], t[known], steps[known])
    return t, np.cumsum(steps)
