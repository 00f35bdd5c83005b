"""Contact sheets for labelling gait events by eye: consecutive frames of a clip, cropped to the walker's feet.

    python -m bench.contact_sheet CLIP --frames FIRST LAST [--box X0 Y0 X1 Y1] [--cols 8] [--width 1800] [--hlines]
        -o PNG

Every frame from FIRST to LAST (frame numbers of the clip as decoded, native fps) becomes a tile, left to right
then down, its frame number drawn in its corner. The crop (X0 Y0 X1 Y1, shares of the frame) is the same on every
tile of a sheet, so a foot on the ground stays still from tile to tile while the other one moves; thin vertical
lines every tenth of the crop's width help see that. Without --box, the crop follows the label's walker boxes
(bench/labels/{stem}.json `walker`, interpolated): their union over the sheet's frames, the lowest third of the
body, widened. How the labels in bench/labels/ were made with these sheets: bench/labels/README.md.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent


def feet_box(label: dict, fps: float, first: int, last: int, legs: float = 0.32, widen: float = 0.6
             ) -> tuple[float, float, float, float]:
    """The union over frames first..last of the label's walker boxes (linearly inter/extrapolated in time),
    cut to its lowest `legs` share of the height (plus a little below), widened by `widen` box widths."""
    rows = np.asarray(label["walker"], dtype=float)
    ts = np.arange(first, last + 1) / fps
    if len(rows) == 1:
        boxes = np.repeat(rows[:, 1:], len(ts), axis=0)
    else:
        boxes = np.stack([np.polyval(np.polyfit(rows[:, 0], rows[:, c], 1), ts) if len(rows) == 2 else
                          np.interp(ts, rows[:, 0], rows[:, c]) for c in range(1, 5)], axis=1)
        # beyond the labelled times, carry on at the nearest labelled pace
        for k, t in enumerate(ts):
            if t < rows[0, 0] or t > rows[-1, 0]:
                a, b = (rows[0], rows[1]) if t < rows[0, 0] else (rows[-2], rows[-1])
                boxes[k] = a[1:] + (b[1:] - a[1:]) * (t - a[0]) / (b[0] - a[0])
    x0, x1 = boxes[:, 0].min(), boxes[:, 2].max()
    h = float(np.median(boxes[:, 3] - boxes[:, 1]))
    w = float(np.median(boxes[:, 2] - boxes[:, 0]))
    y1 = boxes[:, 3].max() + 0.06 * h
    return (max(0.0, x0 - widen * w), max(0.0, y1 - legs * h - 0.06 * h), min(1.0, x1 + widen * w), min(1.0, y1))


def sheet(clip: Path, first: int, last: int, box: tuple[float, float, float, float], cols: int = 8,
          width: int = 1800, hlines: bool = False) -> np.ndarray:
    """The contact sheet as a BGR image; `hlines`: horizontal lines too (front views, where a landing foot stops
    moving up or down the image rather than across it)."""
    cap = cv2.VideoCapture(str(clip))
    cap.set(cv2.CAP_PROP_POS_FRAMES, first)
    tiles, i = [], first
    while i <= last:
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        x0, y0, x1, y1 = int(box[0] * w), int(box[1] * h), int(np.ceil(box[2] * w)), int(np.ceil(box[3] * h))
        tiles.append((i, frame[y0:y1, x0:x1]))
        i += 1
    cap.release()
    if not tiles:
        raise SystemExit(f"{clip}: no frame {first}..{last}")
    tw = width // cols
    ch, cw = tiles[0][1].shape[:2]
    th = max(1, int(round(ch * tw / cw)))
    rows = -(-len(tiles) // cols)
    out = np.full((rows * (th + 2), cols * (tw + 2), 3), 40, np.uint8)
    for k, (idx, crop) in enumerate(tiles):
        t = cv2.resize(crop, (tw, th), interpolation=cv2.INTER_CUBIC if tw > cw else cv2.INTER_AREA)
        for g in range(1, 10):
            t[:, g * tw // 10] = (t[:, g * tw // 10] * 0.6 + np.array([0, 200, 255]) * 0.4).astype(np.uint8)
            if hlines:
                t[g * th // 10] = (t[g * th // 10] * 0.6 + np.array([255, 0, 255]) * 0.4).astype(np.uint8)
        cv2.putText(t, str(idx), (3, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(t, str(idx), (3, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 255), 1, cv2.LINE_AA)
        r, c = divmod(k, cols)
        out[r * (th + 2):r * (th + 2) + th, c * (tw + 2):c * (tw + 2) + tw] = t
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clip", type=Path)
    ap.add_argument("--frames", type=int, nargs=2, required=True, metavar=("FIRST", "LAST"))
    ap.add_argument("--box", type=float, nargs=4, metavar=("X0", "Y0", "X1", "Y1"))
    ap.add_argument("--cols", type=int, default=8)
    ap.add_argument("--width", type=int, default=1800)
    ap.add_argument("--hlines", action="store_true", help="horizontal grid lines too (front views)")
    ap.add_argument("-o", "--out", type=Path, required=True)
    args = ap.parse_args(argv)
    box = args.box
    if box is None:
        label = json.loads((HERE / "labels" / f"{args.clip.stem}.json").read_text())
        fps = cv2.VideoCapture(str(args.clip)).get(cv2.CAP_PROP_FPS)
        box = feet_box(label, fps, *args.frames)
    cv2.imwrite(str(args.out), sheet(args.clip, *args.frames, tuple(box), args.cols, args.width, args.hlines))
    print(f"{args.out}: frames {args.frames[0]}-{args.frames[1]}, box {' '.join(f'{v:.3f}' for v in box)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
