"""Keypoints as arrays and the 1-D signal tools stage 5 needs (gap filling, zero-phase low-pass, sub-frame
refinement, period by autocorrelation). No Dagster import here."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy  # its submodules load on first use: importing the stages stays light

from igait_pipeline.schemas import LM, Keypoints

FEET = ("left", "right")


class CyclesError(ValueError):
    """Gait cycles cannot be measured (too few strides, no usable frames, ...); the message says why."""


@dataclass
class Arrays:
    """Landmarks of one view in pixels: t (n,), xy (n, 33, 2) with NaN where no person was detected, vis (n, 33)."""

    t: np.ndarray
    xy: np.ndarray
    vis: np.ndarray
    fps: float
    width: int
    height: int


def arrays(kp: Keypoints) -> Arrays:
    n = len(kp.frames)
    if n == 0:
        raise CyclesError(f"{kp.view} view: the keypoints file has no frames")
    if kp.fps <= 0:
        raise CyclesError(f"{kp.view} view: frame rate {kp.fps} is not usable")
    t = np.array([f.t for f in kp.frames], dtype=float)
    lm = np.full((n, 33, 4), np.nan)
    have = [i for i, f in enumerate(kp.frames) if f.landmarks is not None]
    if have:
        try:
            lm[have] = np.array([kp.frames[i].landmarks for i in have], dtype=float)
        except ValueError:
            bad = next(f for f in kp.frames if f.landmarks is not None and np.shape(f.landmarks) != (33, 4))
            raise CyclesError(f"{kp.view} view, frame {bad.index}: landmarks have shape "
                              f"{np.shape(bad.landmarks)}, not (33, 4)") from None
    if np.any(np.diff(t) <= 0):
        order = np.argsort(t, kind="stable")
        t, lm = t[order], lm[order]
    xy = lm[:, :, :2] * np.array([kp.width, kp.height], dtype=float)
    vis = np.nan_to_num(lm[:, :, 3], nan=0.0)
    return Arrays(t, xy, vis, float(kp.fps), kp.width, kp.height)


def mid(xy: np.ndarray, a: str, b: str) -> np.ndarray:
    return (xy[:, LM[a]] + xy[:, LM[b]]) / 2


def leg_lengths(xy: np.ndarray) -> np.ndarray:
    """Per frame: mean over both legs of hip–knee plus knee–ankle distance, pixels."""
    out = []
    for s in FEET:
        hip, knee, ankle = xy[:, LM[f"{s}_hip"]], xy[:, LM[f"{s}_knee"]], xy[:, LM[f"{s}_ankle"]]
        out.append(np.linalg.norm(knee - hip, axis=1) + np.linalg.norm(ankle - knee, axis=1))
    return (out[0] + out[1]) / 2


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index ranges where mask is true."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def fill_gaps(x: np.ndarray, ok: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Linearly interpolate x (n, ...) across runs of not-ok frames of at most max_gap frames between ok frames.

    Returns the filled copy and the new ok mask.
    """
    x, ok = x.copy(), ok.copy()
    for a, b in runs(~ok):
        if a == 0 or b == len(ok) or b - a > max_gap:
            continue
        w = (np.arange(a, b) - (a - 1)) / (b - (a - 1))
        w = w.reshape((-1,) + (1,) * (x.ndim - 1))
        x[a:b] = x[a - 1] * (1 - w) + x[b] * w
        ok[a:b] = True
    return x, ok


def lowpass(x: np.ndarray, fps: float, cutoff_hz: float, order: int) -> np.ndarray:
    """Zero-phase Butterworth low-pass of a finite 1-D array (scipy.signal.sosfiltfilt, odd extension at the
    ends); returned unchanged when the cut-off is at or above Nyquist or the array is too short to filter."""
    if cutoff_hz <= 0 or cutoff_hz >= fps / 2 or len(x) < 4:
        return x.copy()
    sos = scipy.signal.butter(order, cutoff_hz, btype="low", fs=fps, output="sos")
    return scipy.signal.sosfiltfilt(sos, x, padlen=min(3 * (2 * len(sos) + 1), len(x) - 1))


def refine(x: np.ndarray, i: int) -> float:
    """Sub-sample position of the extreme at i by a parabola through its neighbours."""
    if 0 < i < len(x) - 1:
        den = x[i - 1] - 2 * x[i] + x[i + 1]
        if den != 0:
            return i + float(np.clip(0.5 * (x[i - 1] - x[i + 1]) / den, -0.5, 0.5))
    return float(i)


def period(x: np.ndarray, fps: float, lo_s: float = 0.45, hi_s: float = 2.5) -> float | None:
    """The signal's dominant period in seconds (first autocorrelation peak above 0.3, scipy.signal.find_peaks),
    or None."""
    x = x - x.mean()
    n = len(x)
    lo, hi = int(lo_s * fps), min(int(hi_s * fps), int(n * 0.7))
    if hi <= lo + 2 or not np.any(x):
        return None
    ac = scipy.signal.correlate(x, x, mode="full", method="fft")[n - 1: n + hi + 1]
    ac = ac / (n - np.arange(len(ac))) / (np.dot(x, x) / n)
    peaks, _ = scipy.signal.find_peaks(ac[: hi + 1], height=0.3)
    peaks = peaks[(peaks > lo) & (peaks < hi)]
    return float(peaks[0] / fps) if len(peaks) else None
