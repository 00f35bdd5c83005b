"""Stage 2 on the synthetic phone-camera grid (issue 16, item 2; igait_pipeline/reference_model/scenes.py).

A child walking toward or away from a phone camera (0.8–1.3 m high, roughly level, portrait or landscape, 65–75°
lens), 0.95–1.5 m tall at 100–170 steps/min, alone, with a parent standing by or walking beside, plain, standing
first or turning round at the end; side views crossing at 2.5–5 m; scenes in which nobody walks. Each scene is
what stage 2's detector would report on every frame; stage 2's pure analysis (`validity.analyse_detections`) runs
on its samples. `python -m bench.front_scenes` prints the same grid per cell with the walk evidence.
"""
from __future__ import annotations

import numpy as np
import pytest

from igait_pipeline.reference_model import scenes
from igait_pipeline.schemas import LM
from igait_pipeline_tests.fixtures.processes import map_in_processes

NEGATIVES = 200


def _judge(spec: scenes.SceneSpec) -> scenes.Outcome:
    return scenes.judge(scenes.render(spec))


def _judged(specs: list[scenes.SceneSpec]) -> list[scenes.Outcome]:
    """Each scene rendered and judged, in order; the scenes are independent (each from its own seed), so two
    processes share them (486 front scenes: 38 s in one)."""
    return map_in_processes(_judge, specs, chunksize=max(1, len(specs) // 16))


@pytest.fixture(scope="module")
def front():
    return _judged(scenes.front_grid(1, seed=0))


@pytest.fixture(scope="module")
def side():
    return [_judge(s) for s in scenes.side_grid(1, seed=0)]  # 36 scenes: less than starting two processes


@pytest.fixture(scope="module")
def negatives():
    return _judged(scenes.negative_grid(NEGATIVES, seed=0))


def _share(outcomes, attr):
    vals = [getattr(o, attr) for o in outcomes if getattr(o, attr) is not None]
    return sum(vals) / len(vals)


def _wrong(outcomes, attr):
    return [(o.cell, o.walking, o.view_seen, o.walker, o.reasons[:1]) for o in outcomes if getattr(o, attr) is False]


# ---------- the scenes themselves ----------

def _fixed(**kw):
    return tuple(kw.items())


def test_a_child_on_a_phone_frame_has_the_expected_size():
    """1.2 m child standing 2 m from a 70° phone at 1 m: f = 960 / tan 35° = 1371 px, so 1.2 m covers
    1.2·1371/2 = 823 px = 43 % of a portrait frame's 1920 px (landmarks span heel to eyes, ~94 % of the height:
    ~40 %), 76 % of a landscape frame's 1080; at 7 m it is 3.5× smaller."""
    p = scenes.child_params(np.random.default_rng(0), 1.2, 135)
    body = scenes.standing_pose(p)
    span = body[:, 2].max() - body[:, 2].min()
    assert 0.9 * 1.2 < span < 0.97 * 1.2
    for (w, h), want in ((scenes.PORTRAIT, 0.43), (scenes.LANDSCAPE, 0.76)):
        cam = scenes.PhoneCamera.phone(1.0, w, h, 70.0)
        assert cam.f == pytest.approx(1371, abs=1)
        px = {}
        for d in (2.0, 7.0):
            uv, depth = cam.project(body + np.array([d, 0.0, 0.0]))
            px[d] = uv[:, 1].max() - uv[:, 1].min()
            assert depth.min() > 0
        assert px[2.0] / h == pytest.approx(want * span / 1.2, rel=0.03)
        assert px[2.0] / px[7.0] == pytest.approx(3.5, rel=0.03)


def test_an_approaching_child_grows_and_its_ankles_swing_a_little_vertically():
    """Walking 7 m → ~2 m the child grows about as the distance shrinks (×3.1–3.5 here: the walk ends a stride or
    so off 2 m). Seen from the front, the left–right ankle offset swings vertically: perspective (the foot ahead
    is nearer, so lower in the image) gives ±0.06 body heights at 6–7 m, as the issue measured on a real adult
    (−0.05..+0.07); the simulator's ankle lift (0.12 of height) adds as much again, so the total is ±0.15."""
    spec = scenes.SceneSpec("walk", "front", "toward", seed=5, cell="geometry", fixed=_fixed(
        height_m=1.2, camera_m=1.05, far_m=7.0, near_m=2.0, drift_m=0.0, offset_m=0.0, pitch_deg=0.0,
        roll_deg=0.0, fov_deg=70.0, orientation="portrait", cadence=135.0))
    s = scenes.render(spec)
    d0, d1 = s.truth["distance_m"]
    px0, px1 = s.truth["child_px"]
    assert d0 == pytest.approx(7.0, abs=0.05) and 1.8 < d1 < 2.5
    assert px1 / px0 == pytest.approx(d0 / d1, rel=0.1) and 2.8 < px1 / px0 < 4.0
    world = s.world["child"]
    uv, _ = s.camera.project(world)
    height_px = uv[..., 1].max(axis=1) - uv[..., 1].min(axis=1)
    dist = np.hypot(*world[:, LM["left_hip"], :2].T)
    far = (dist > 6.0) & (dist < 7.0)
    flat = world.copy()
    flat[:, [LM["left_ankle"], LM["right_ankle"]], 2] = 0.05  # perspective alone: ankles at one height
    uvf, _ = s.camera.project(flat)
    persp = (uvf[:, LM["left_ankle"], 1] - uvf[:, LM["right_ankle"], 1]) / height_px
    total = (uv[:, LM["left_ankle"], 1] - uv[:, LM["right_ankle"], 1]) / height_px
    assert 0.04 < np.abs(persp[far]).max() < 0.08
    assert 0.08 < np.abs(total[far]).max() < 0.2


def test_scenes_are_deterministic_and_the_detector_realistic():
    spec = scenes.front_grid()[123]
    a, b = scenes.render(spec), scenes.render(spec)
    assert len(a.frames) == len(b.frames) and a.ids == b.ids
    assert all(np.array_equal(p.landmarks, q.landmarks) for (_, fa), (_, fb) in zip(a.frames, b.frames)
               for p, q in zip(fa, fb))
    # Every frame of the video, people in random order, each a BlazePose-like (33, 4) detection with its box.
    assert [round(t * a.fps) for t, _ in a.frames] == list(range(len(a.frames)))
    people = [p for _, f in a.frames for p in f]
    assert all(p.landmarks.shape == (33, 4) and 0 <= p.box[0] < p.box[2] <= 1 for p in people)
    # Missed on 5–10 % of frames (more when small); a parent standing 1 m behind a child crossing at 3 m is
    # hidden (only the nearer person found) while they overlap.
    for spec in scenes.front_grid()[:60:6]:
        stats = scenes.render(spec).truth["detections"]["child"]
        assert 0.02 < stats["missed"] / stats["visible"] < 0.2
    side = scenes.SceneSpec("walk", "side", "left_to_right", parent="standing", seed=3, cell="occlusion",
                            fixed=_fixed(side_m=3.0, parent_behind_m=1.0))
    stats = scenes.render(side).truth["detections"]
    assert stats["parent"]["occluded"] > 0
    # A person under 60 px is never found: a 0.95 m child 12 m from a 75° lens is ~99 px, at 25 m ~48 px.
    far = scenes.SceneSpec("stand", "front", "none", seed=4, cell="far", fixed=_fixed(
        stand_m=25.0, height_m=0.95, fov_deg=75.0, orientation="portrait"))
    s = scenes.render(far)
    assert s.truth["detections"]["child"]["too_small"] == len(s.frames)
    assert not any(f for _, f in s.frames)
    # Stage 2's second pass looks at a box on a frame: the detection there overlapping it.
    t, people = next((t, f) for t, f in a.frames if f)
    assert a.look([(t, people[0].box)]) == [people[0]]
    assert a.look_at(t, (0.0, 0.0, 0.01, 0.01)) is None


# ---------- stage 2 on the grid ----------

def test_front_walking_and_view_verdicts(front):
    """486 front scenes (1 per cell): the child walks and is seen from the front, ≥ 99 %."""
    assert _share(front, "walking_ok") >= 0.99, _wrong(front, "walking_ok")
    assert _share(front, "view_ok") >= 0.99, _wrong(front, "view_ok")


@pytest.mark.parametrize("direction", ["toward", "away"])
@pytest.mark.parametrize("cadence", ["cad100", "cad135", "cad170"])
def test_approaching_and_receding_children_are_accepted_at_every_cadence(front, direction, cadence):
    """Alone or with a parent standing by: accepted (no reasons) and the walker is the child, ≥ 99 % of scenes in
    each direction × cadence."""
    cell = [o for o in front if scenes.cell_factors(o.cell)["direction"] == direction
            and scenes.cell_factors(o.cell)["cadence"] == cadence
            and scenes.cell_factors(o.cell)["parent"] in ("none", "standing")]
    assert len(cell) == 54
    accepted = sum(not o.reasons for o in cell) / len(cell)
    assert accepted >= 0.99, [(o.cell, o.reasons) for o in cell if o.reasons]
    assert _share(cell, "walker_ok") >= 0.99, _wrong(cell, "walker_ok")


def test_a_standing_parent_is_never_the_walker(front):
    standing = [o for o in front if scenes.cell_factors(o.cell)["parent"] == "standing"]
    assert len(standing) == 162
    assert all(o.walker_ok for o in standing), _wrong(standing, "walker_ok")


def test_nobody_walking_is_refused(negatives):
    """A child standing still (sway, weight shifts), stepping on the spot, each alone or with a parent standing
    by, and nobody at all: never 'walking'."""
    assert _share(negatives, "walking_ok") >= 0.99, _wrong(negatives, "walking_ok")
    assert all(o.reasons for o in negatives)


def _measured_safely(o) -> bool:
    """Accepted with the child as the walker seen from the scene's view, or refused because several walk."""
    if not o.reasons:
        return bool(o.walker_ok and o.view_ok)
    return any("several people walk" in r for r in o.reasons)


def test_a_parent_walking_beside_is_never_measured(front):
    """A parent walking beside the child: the child is measured, or the job is refused as several walkers; the
    parent is never measured. A clearly taller parent (child ≤ 0.8 of the parent's height, so the box heights
    differ beyond `companion_max_height_ratio`) is told apart: the child is measured in ≥ 95 % of scenes."""
    walking = [o for o in front if scenes.cell_factors(o.cell)["parent"] == "walking"]
    assert len(walking) == 162
    assert all(_measured_safely(o) for o in walking), [(o.cell, o.walker, o.reasons) for o in walking
                                                       if not _measured_safely(o)]
    taller = [o for o in walking if o.truth["height_m"] / o.truth["params"]["parent_height_m"] <= 0.8]
    assert len(taller) >= 60
    assert sum(not o.reasons and o.walker_ok for o in taller) / len(taller) >= 0.95


def test_side_views_crossing_with_a_parent_in_the_back(side):
    """A phone at 2.5–5 m sees the crossing child at an angle near the frame's edges (shoulders and hips up to
    about 0.2 of the torso wide): still a side view. A parent standing behind is never measured."""
    assert _share(side, "walking_ok") >= 0.99, _wrong(side, "walking_ok")
    assert all(_measured_safely(o) for o in side), [(o.cell, o.walker, o.view_seen, o.reasons) for o in side
                                                    if not _measured_safely(o)]
    assert sum(not o.reasons for o in side) / len(side) >= 0.95
