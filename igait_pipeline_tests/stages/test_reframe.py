"""Stage 3's crop for a front view: a walker who approaches the camera grows ×3 and their feet leave the bottom of
the frame; the crop must hold every sampled box of the walker (head and feet where they are in the frame)."""
import numpy as np

from igait_pipeline.schemas import ViewValidation
from igait_pipeline.stages.reframe import DEFAULT_PARAMS, crop_box, walker_gate

W, H = 1080, 1920


def _view(track, walker_box) -> ViewValidation:
    return ViewValidation(frames_total=300, frames_sampled=30, fps=60.0, person_ratio=1.0, full_body_ratio=0.9,
                          multiple_people_ratio=0.0, walking=True, hip_travel=0.02, scale_change=3.0,
                          walker_box=walker_box, track=track)


def growing_track(n=25, grow=3.3):
    """[t, x0, y0, x1, y1] rows: a walker 0.3 of the frame tall at first, ×grow at the end, drifting sideways a
    little; the box is clipped by the bottom edge once the feet leave the frame."""
    rows = []
    for k, t in enumerate(np.linspace(0, 5, n)):
        h = 0.3 * grow ** (k / (n - 1))
        cx = 0.5 + 0.04 * np.sin(t)
        top = 0.45 - 0.4 * h  # the camera at about hip height: the body spans the horizon unevenly
        rows.append([float(t), cx - 0.14 * h, max(0.0, top), cx + 0.14 * h, min(1.0, top + h)])
    return rows


def test_crop_holds_a_walker_who_grows_three_times():
    track = growing_track()
    rows = np.array(track)
    assert rows[-1, 4] == 1.0  # the feet have left the frame at the end
    union = [float(rows[:, 1].min()), float(rows[:, 2].min()), float(rows[:, 3].max()), float(rows[:, 4].max())]
    x, y, w, h = crop_box(_view(track, union), W, H)
    assert w % 2 == 0 and h % 2 == 0 and x >= 0 and y >= 0 and x + w <= W and y + h <= H
    for _, x0, y0, x1, y1 in track:
        assert x <= x0 * W and x1 * W <= x + w and y <= y0 * H and y1 * H <= y + h
    # Room above the highest head (the margin, or the frame's top) and the feet down to the bottom edge.
    margin = DEFAULT_PARAMS.margin * (union[3] - union[1]) * H
    assert y <= max(0.0, union[1] * H - margin) + 2 and y + h >= H - 2


def test_crop_holds_the_track_even_when_the_union_box_is_short():
    track = growing_track()
    early = np.array(track[:10])
    short_union = [float(early[:, 1].min()), float(early[:, 2].min()), float(early[:, 3].max()),
                   float(early[:, 4].max())]
    x, y, w, h = crop_box(_view(track, short_union), W, H)
    for _, x0, y0, x1, y1 in track:
        assert x <= x0 * W and x1 * W <= x + w and y <= y0 * H and y1 * H <= y + h


def test_gate_follows_the_growing_walker():
    track = growing_track()
    gate = walker_gate(track)
    lm = np.zeros((33, 2))
    for t, x0, y0, x1, y1 in track:
        lm[23] = lm[24] = [(x0 + x1) / 2, y0 + 0.5 * (y1 - y0)]
        assert gate(t + 0.05, lm)
    lm[23] = lm[24] = [0.05, 0.5]
    assert not gate(5.0, lm)  # someone at the side of the frame while the walker fills its middle
