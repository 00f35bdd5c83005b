"""Stage 3: crop each video around the walker (union of the walker's box over time, plus a margin).

Writes the cropped videos and `crop.json`: per view the crop box in source pixels and the walker's track in the
cropped frame's normalised coordinates, which stage 4 uses to keep to the walker.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from igait_pipeline.schemas import ValidationReport, ViewValidation
from igait_pipeline.stages import media

MARGIN = 0.12  # of the walker box's height, on every side
TRACK_SLACK_S = 0.5  # stage 4 trusts a detection this long before/after the walker was last seen


class ReframeError(ValueError):
    pass


def crop_box(view: ViewValidation, width: int, height: int, margin: float = MARGIN) -> tuple[int, int, int, int]:
    """(x, y, w, h) in pixels, even-sized for H.264, inside the frame."""
    if not view.walker_box:
        raise ReframeError("no walker was found in validation, so there is nothing to crop around")
    x0, y0, x1, y1 = view.walker_box
    m = margin * (y1 - y0)
    x0, x1 = max(0.0, x0 - m * height / width), min(1.0, x1 + m * height / width)
    y0, y1 = max(0.0, y0 - m), min(1.0, y1 + m)
    px0, py0 = int(np.floor(x0 * width / 2) * 2), int(np.floor(y0 * height / 2) * 2)
    pw = min(width - px0, int(np.ceil((x1 - x0) * width / 2) * 2))
    ph = min(height - py0, int(np.ceil((y1 - y0) * height / 2) * 2))
    pw, ph = pw - pw % 2, ph - ph % 2
    if pw < 64 or ph < 64:
        raise ReframeError(f"the walker's box is only {pw}×{ph} px: too small to analyse")
    return px0, py0, pw, ph


def reframe(videos: dict[str, str | os.PathLike], report: ValidationReport, out_dir: str | os.PathLike,
            progress: Callable[[str, float], None] | None = None) -> dict:
    """Crop every view; returns the crop description also written to out_dir/crop.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    crops = {}
    for view, path in videos.items():
        info = media.probe(path)
        v = report.views[view]
        x, y, w, h = crop_box(v, info.width, info.height)
        cb = (lambda p, view=view: progress(view, p)) if progress else None
        out = media.crop(path, out_dir / f"{view}.mp4", (x, y, w, h), progress=cb)
        track = [[t, (bx0 * info.width - x) / w, (by0 * info.height - y) / h,
                  (bx1 * info.width - x) / w, (by1 * info.height - y) / h] for t, bx0, by0, bx1, by1 in v.track]
        crops[view] = {"box_px": [x, y, w, h], "source_size": [info.width, info.height],
                       "output": out.as_metadata(), "walker_track": [[round(c, 4) for c in r] for r in track]}
    (out_dir / "crop.json").write_text(json.dumps(crops, indent=1))
    return crops


def walker_gate(track: list[list[float]], slack_s: float = TRACK_SLACK_S, grow: float = 0.5):
    """A test for stage 4: is a detection at time t the walker seen in validation?

    Accepts a detection whose hip centre lies in the walker's box at the nearest sampled time (grown by `grow`
    of its size); rejects detections further than slack_s from any sample (the walker was not in view then).
    """
    rows = np.asarray(track, dtype=float)
    if rows.size == 0:
        return None

    def is_walker(t: float, lm: np.ndarray) -> bool:
        k = int(np.argmin(np.abs(rows[:, 0] - t)))
        if abs(rows[k, 0] - t) > slack_s:
            return False
        _, x0, y0, x1, y1 = rows[k]
        gx, gy = grow * (x1 - x0), grow * (y1 - y0)
        hx, hy = (lm[23, 0] + lm[24, 0]) / 2, (lm[23, 1] + lm[24, 1]) / 2
        return bool(x0 - gx <= hx <= x1 + gx and y0 - gy <= hy <= y1 + gy)

    return is_walker
