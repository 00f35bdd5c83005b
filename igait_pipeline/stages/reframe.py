"""Stage 3: crop a view around the walker (union of the walker's box over time, plus a margin).

`reframe_view` writes the cropped video and returns what `{view}_crop.json` holds: the crop box in source pixels,
the walker's track in the cropped frame's normalised coordinates (stage 4 keeps to it through `walker_gate`) and
the `ReframeParams` used.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from igait_pipeline.schemas import ViewValidation
from igait_pipeline.stages import media


@dataclass(frozen=True)
class ReframeParams:
    """How stage 3 crops a view around the walker and how stage 4 keeps to the walker inside the crop.

    Recorded in each `{view}_crop.json` (`params`), so a crop can be reproduced.
    """

    margin: float = 0.12
    """Margin around the union of the walker's boxes, as a share of the box height, on every side (room for the
    feet and raised arms the sampled boxes may miss)."""
    min_crop_px: int = 64
    """A crop smaller than this on either side is refused: too few pixels for the pose model."""
    track_slack_s: float = 0.5
    """Stage 4 trusts a detection this long before/after the walker was last seen in a validation sample."""
    gate_grow: float = 0.5
    """Stage 4 accepts a detection whose hip centre lies in the walker's box at the nearest sample, grown by this
    share of the box's size (the walker moves between samples)."""


DEFAULT_PARAMS = ReframeParams()


class ReframeError(ValueError):
    pass


def crop_box(view: ViewValidation, width: int, height: int,
             params: ReframeParams = DEFAULT_PARAMS) -> tuple[int, int, int, int]:
    """(x, y, w, h) in pixels, even-sized for H.264, inside the frame: the walker's union box (and every box of its
    track) plus `params.margin` of its height on every side, clipped to the frame."""
    if not view.walker_box:
        raise ReframeError("no walker was found in validation, so there is nothing to crop around")
    x0, y0, x1, y1 = view.walker_box
    if view.track:  # every sampled box of the walker, so a walker who grows (a front view) stays inside
        rows = np.asarray(view.track, dtype=float)[:, 1:5]
        x0, y0 = min(x0, float(rows[:, 0].min())), min(y0, float(rows[:, 1].min()))
        x1, y1 = max(x1, float(rows[:, 2].max())), max(y1, float(rows[:, 3].max()))
    m = params.margin * (y1 - y0)
    x0, x1 = max(0.0, x0 - m * height / width), min(1.0, x1 + m * height / width)
    y0, y1 = max(0.0, y0 - m), min(1.0, y1 + m)
    px0, py0 = int(np.floor(x0 * width / 2) * 2), int(np.floor(y0 * height / 2) * 2)
    pw = min(width - px0, int(np.ceil((x1 - x0) * width / 2) * 2))
    ph = min(height - py0, int(np.ceil((y1 - y0) * height / 2) * 2))
    pw, ph = pw - pw % 2, ph - ph % 2
    if pw < params.min_crop_px or ph < params.min_crop_px:
        raise ReframeError(f"the walker's box is only {pw}×{ph} px: too small to analyse")
    return px0, py0, pw, ph


def reframe_view(video: str | os.PathLike, view: ViewValidation, out_video: str | os.PathLike,
                 params: ReframeParams = DEFAULT_PARAMS,
                 progress: Callable[[float], None] | None = None) -> dict:
    """Crop one view to its walker. Returns the crop description (what `{view}_crop.json` holds): the crop box in
    source pixels, the output video, the walker's track in the cropped frame's normalised coordinates (stage 4
    keeps to it) and the parameters."""
    info = media.probe(video)
    x, y, w, h = crop_box(view, info.width, info.height, params)
    Path(out_video).parent.mkdir(parents=True, exist_ok=True)
    out = media.crop(video, out_video, (x, y, w, h), progress=progress)
    track = [[t, (bx0 * info.width - x) / w, (by0 * info.height - y) / h,
              (bx1 * info.width - x) / w, (by1 * info.height - y) / h] for t, bx0, by0, bx1, by1 in view.track]
    background = [[t, round(bx * info.width / w, 5)] for t, bx in view.background_track]  # crop widths
    return {"box_px": [x, y, w, h], "source_size": [info.width, info.height], "output": out.as_metadata(),
            "walker_track": [[round(c, 4) for c in r] for r in track], "background_track": background,
            "params": asdict(params)}


def walker_gate(track: list[list[float]], params: ReframeParams = DEFAULT_PARAMS):
    """A test for stage 4: is a detection at time t the walker seen in validation?

    Accepts a detection whose hip centre lies in the walker's box at the nearest sampled time (grown by
    `params.gate_grow` of its size); rejects detections further than `params.track_slack_s` from any sample (the
    walker was not in view then).
    """
    slack_s, grow = params.track_slack_s, params.gate_grow
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


def gate_from_crop(crop: dict):
    """`walker_gate` for one view's crop description (its track, with the parameters it was made with)."""
    return walker_gate(crop["walker_track"], ReframeParams(**crop.get("params", {})))
