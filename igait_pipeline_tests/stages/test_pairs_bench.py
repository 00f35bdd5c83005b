"""bench/pairs.py: who walks in which labelled clip, which clips it pairs, and its verdicts and counts on simulated
pairs (one walker in both cameras; a quick and a slow walker). Its real pairs are unlicensed clips measured locally
(the closing notes give the table); stage 5's cross-view rule on real licensed clips is test_real_numbers.py's."""
from __future__ import annotations

import json

import numpy as np

from bench import pairs
from igait_pipeline.reference_model import synthetic
from igait_pipeline_tests.stages.test_cycles import params


def test_a_labels_person_else_its_source_repository_names_the_walker():
    assert pairs.person({"person": "the man in jeans", "source": {"repo": "a/b"}}) == "the man in jeans"
    assert pairs.person({"source": {"repo": "a/b"}}) == "repository a/b"
    assert pairs.person({"source": "some text"}) is None


def test_only_clips_of_one_person_walking_in_their_own_slots_view_are_paired(tmp_path):
    labels, media = tmp_path / "labels", tmp_path / "media"
    labels.mkdir()
    media.mkdir()
    base = {"walks": True, "refuse": None, "source": {"repo": "a/b"}}
    cases = {"side_ok": {"slot": "side", "view": "side"},
             "front_ok": {"slot": "front", "view": "front", "person": "p"},
             "zoom_in_front_slot": {"slot": "front", "view": "side"},  # stage 2 would refuse the view
             "crowd": {"slot": "front", "view": "front", "refuse": "several_walkers"},
             "standing": {"slot": "side", "view": "side", "walks": False},
             "no_person_known": {"slot": "side", "view": "side", "source": "text only"},
             "not_here": {"slot": "side", "view": "side"}}
    for name, extra in cases.items():
        (labels / f"{name}.json").write_text(json.dumps({**base, "clip": f"{name}.mp4", **extra}))
        if name != "not_here":
            (media / f"{name}.mp4").write_bytes(b"")
    found = pairs.walking_clips([media], labels)
    assert sorted(c.stem for c, _ in found) == ["front_ok", "side_ok"]


def test_one_walker_in_both_cameras_agrees_and_two_walkers_are_flagged():
    w = synthetic.make_walker(20_011)
    same = pairs.judge(w.side, w.front, "w_side", "w_front", True)
    assert same.compared and not same.flagged
    quick, slow = params(stride_time_s=0.8), params(stride_time_s=1.15, height_m=1.4)
    side, _ = synthetic.side_recording(quick, np.random.default_rng(1), "p1", direction=1)
    front, _ = synthetic.front_recording(slow, np.random.default_rng(2), "p1")
    diff = pairs.judge(side, front, "quick_side", "slow_front", False)
    assert diff.compared and diff.flagged
    assert "FLAGGED (stride_time_s" in pairs.line(diff) and pairs.line(same).endswith("agree")
    blank = front.model_copy(deep=True)
    for f in blank.frames:
        f.landmarks = None
    none = pairs.judge(side, blank, "quick_side", "nobody", False)
    assert not none.compared and "not compared" in pairs.line(none)
    lines = pairs.summary([same, diff, none])
    assert lines[-1] == "pairs: same person 1/1 agree, different people 1/1 flagged, 1 not compared"
    assert lines[1].startswith("different people: 2 pairs, 1 compared, 1 flagged (1 by stride time")
