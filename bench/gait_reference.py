"""Stage 5's event detector and parameters against the simulated reference walkers (the recipe of
igait_pipeline_tests/stages/test_gait_reference.py: seeds x stride times 0.7-1.3 s x heights 0.95-1.5 m, 60 fps).

Prints, per condition (stride time, height) and overall: the share of heel strikes (HS) and toe-offs (TO) within
0.5 / 1 / 2 frames, bias and spread per foot in frames and ms, a histogram of the errors in frames, and the share of
walkers whose stride-time CV and step-time asymmetry are within 1 / 2 percentage points of the truth; then a
limping walker (stiff right knee) and a normal one, asymmetry measured vs true.

    PYTHONPATH=$PWD .venv/bin/python bench/gait_reference.py [--seeds 0-7] [--noise-free] [--json OUT]
    PYTHONPATH=$PWD .venv/bin/python bench/gait_reference.py --calibrate   # the offsets in EventSettings
    PYTHONPATH=$PWD .venv/bin/python bench/gait_reference.py --choose-refinement   # the re-location filters

--noise-free sets the simulated pose jitter to zero: what remains is the detector's own disagreement with the
simulator's event definition (and the filter's), not noise.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from igait_pipeline.reference_model import synthetic  # noqa: E402
from igait_pipeline.stages.gait.settings import DEFAULT  # noqa: E402
from igait_pipeline_tests.stages import test_gait_reference as ref  # noqa: E402

FEET = ("left", "right")
MS = 1000 / ref.FPS


def _share(x, lim) -> float:
    x = np.asarray(x, float)
    return float(np.mean(np.abs(x) <= lim)) if len(x) else float("nan")


def _events(rows, kind, foot=None) -> np.ndarray:
    return np.array([e for r in rows for f in FEET if foot in (None, f) for e in r[kind][f]])


def _hist(err: np.ndarray) -> str:
    edges = np.arange(-3.5, 4.0, 1.0)
    counts = np.histogram(np.clip(err, -3.49, 3.49), edges)[0]
    labels = ["<=-3", "-2", "-1", "0", "+1", "+2", ">=+3"]
    return " ".join(f"{lb}:{c}" for lb, c in zip(labels, counts))


def _line(label: str, rows) -> str:
    out = [f"{label:<14}"]
    for kind in ("hs", "to"):
        e = _events(rows, kind)
        out.append(f"{kind.upper()} n={len(e):4d} <=0.5f {_share(e, .5):5.1%} <=1f {_share(e, 1):5.1%} "
                   f"<=2f {_share(e, 2):5.1%} bias {e.mean() * MS:+5.1f} ms sd {e.std() * MS:4.1f} ms |")
    cv = [r["cv"] for r in rows if "cv" in r]
    asym = [r["asym"] for r in rows if "asym" in r]
    cad = [r["cadence"] for r in rows]
    out.append(f"cad<=2% {_share(cad, .02):5.1%} CV<=1pp {_share(cv, .01):5.1%} ({len(cv)}) "
               f"asym<=1pp {_share(asym, .01):5.1%} <=2pp {_share(asym, .02):5.1%} ({len(asym)})")
    return " ".join(out)


def report(rows) -> dict:
    print("per condition (stride time s, height m):")
    for st in ref.STRIDE_TIMES:
        for h in ref.HEIGHTS:
            print(_line(f"{st:.1f} s {h:.2f} m", [r for r in rows if r["stride_time"] == st and r["height"] == h]))
    print("per stride time:")
    for st in ref.STRIDE_TIMES:
        print(_line(f"{st:.1f} s", [r for r in rows if r["stride_time"] == st]))
    print(_line("ALL", rows))
    summary = {}
    for kind in ("hs", "to"):
        for foot in FEET:
            e = _events(rows, kind, foot)
            print(f"{kind.upper()} {foot:<5}: bias {e.mean():+.2f} f ({e.mean() * MS:+.1f} ms), sd {e.std():.2f} f "
                  f"({e.std() * MS:.1f} ms); histogram (frames) {_hist(e)}")
        e = _events(rows, kind)
        summary[kind] = {"n": len(e), "within_1_frame": _share(e, 1), "within_2_frames": _share(e, 2),
                         "bias_ms": float(e.mean() * MS), "sd_ms": float(e.std() * MS)}
    # The spread of the bias between walkers (a walker-specific offset no filter removes) vs within walkers.
    for kind in ("hs", "to"):
        means = [np.mean(r[kind][f]) for r in rows for f in FEET if r[kind][f]]
        within = [np.std(r[kind][f]) for r in rows for f in FEET if len(r[kind][f]) > 1]
        print(f"{kind.upper()}: SD of per-walker-foot mean error {np.std(means) * MS:.1f} ms, mean within-walker-foot "
              f"SD {np.mean(within) * MS:.1f} ms")
    cv = np.array([r["cv"] for r in rows if "cv" in r])
    asym = np.array([r["asym"] for r in rows if "asym" in r])
    print(f"CV error (pp): mean {cv.mean() * 100:+.2f}, sd {cv.std() * 100:.2f}, max |.| {np.abs(cv).max() * 100:.2f}")
    print(f"asymmetry error (pp): mean {asym.mean() * 100:+.2f}, sd {asym.std() * 100:.2f}, "
          f"max |.| {np.abs(asym).max() * 100:.2f}")
    summary.update(cadence_within_2pct=_share([r["cadence"] for r in rows], .02), cv_within_1pp=_share(cv, .01),
                   asym_within_1pp=_share(asym, .01), walkers=len(rows), cv_n=len(cv), asym_n=len(asym))
    return summary


def limp() -> dict:
    """The walker of igait_pipeline_tests/stages/test_kinematics.py with and without a stiff right knee."""
    from igait_pipeline_tests.stages import test_kinematics as tk

    out = {}
    for name, kw in (("normal", {}), ("limp", {"knee_rom_right": 0.45, "asymmetry": 0.04})):
        vals = []
        for seed in (31, 32, 33, 34):
            kp, truth = synthetic.side_recording(tk._params(**kw), np.random.default_rng(seed), "k1", direction=1)
            r = ref.evaluate(kp, truth, DEFAULT)
            vals.append((r.get("asym_true"), r.get("asym", float("nan")),
                         np.mean(r["hs"]["left"]), np.mean(r["hs"]["right"])))
            print(f"{name:<6} seed {seed}: asymmetry true {vals[-1][0]:.3f} measured {vals[-1][0] + vals[-1][1]:.3f}; "
                  f"HS bias left {vals[-1][2] * MS:+.1f} ms right {vals[-1][3] * MS:+.1f} ms")
        out[name] = vals
    return out


CALIBRATION_SEEDS = range(100, 116)  # disjoint from the test's seeds (test_gait_reference.SEEDS = 0-7)


def calibrate(settings=DEFAULT, quiet: bool = False) -> dict:
    """The swing-relative event offsets (EventSettings.*_swing_offset): run the detector without them on the
    calibration walkers and take the median of -error / that foot's measured median swing time."""
    from dataclasses import replace

    s = replace(settings, events=replace(settings.events, heel_strike_swing_offset=0.0, toe_off_swing_offset=0.0))
    rows = ref.reference_set(s, seeds=CALIBRATION_SEEDS, heights=(1.2,) if quiet else ref.HEIGHTS)
    out = {}
    def swing(r, f, kind):  # the swing time the detector scales this offset by
        known = [v for v in r["swing"].values() if v]
        return float(np.mean(known)) if kind == "hs" and settings.events.heel_strike_offset_swing == "walk" and \
            known else r["swing"][f]

    for kind, name in (("hs", "heel_strike_swing_offset"), ("to", "toe_off_swing_offset")):
        v = [-e / ref.FPS / swing(r, f, kind) for r in rows for f in FEET if r["swing"][f] for e in r[kind][f]]
        out[name] = round(float(np.median(v)), 4)
    if not quiet:
        print(f"calibrated on seeds {CALIBRATION_SEEDS.start}-{CALIBRATION_SEEDS.stop - 1}: {out}")
    return out


def choose_refinement() -> None:
    """The re-location settings (EventSettings.*_refine_harmonics, heel_strike_refine_pooling): for each candidate,
    offsets calibrated as above, then on the same calibration walkers the share of events within one frame and of
    walkers whose step-time asymmetry is within 1 pp (heel strikes re-located one by one pass the lighter filter's
    jitter into step times; a shift pooled over the walk does not)."""
    from dataclasses import replace

    for h in (3.0, 4.0, 5.0, 6.0, 8.0, 10.0):
        s = replace(DEFAULT, events=replace(DEFAULT.events, toe_off_refine_harmonics=h))
        s = replace(s, events=replace(s.events, **calibrate(s, quiet=True)))
        rows = ref.reference_set(s, seeds=CALIBRATION_SEEDS, heights=(1.2,))
        print(f"toe-off refine harmonics {h:4.1f}: TO <=1f {_share(_events(rows, 'to'), 1):5.1%}")
    for pooling, h in [("event", 0.0)] + [(p, h) for p in ("event", "walk", "foot") for h in (4.0, 6.0, 8.0)]:
        s = replace(DEFAULT, events=replace(DEFAULT.events, heel_strike_refine_harmonics=h,
                                            heel_strike_refine_pooling=pooling))
        s = replace(s, events=replace(s.events, **calibrate(s, quiet=True)))
        rows = ref.reference_set(s, seeds=CALIBRATION_SEEDS, heights=(1.2,))
        asym = [r["asym"] for r in rows if "asym" in r]
        print(f"heel-strike refine {pooling:<5} harmonics {h:4.1f}: HS <=1f {_share(_events(rows, 'hs'), 1):5.1%}  "
              f"asymmetry <=1pp {_share(asym, .01):5.1%}")
    print(f"(seeds {CALIBRATION_SEEDS.start}-{CALIBRATION_SEEDS.stop - 1}, height 1.2 m)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-7", help="a-b (inclusive)")
    ap.add_argument("--noise-free", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--calibrate", action="store_true", help="print the swing-relative event offsets")
    ap.add_argument("--choose-refinement", action="store_true",
                    help="print event accuracy on the calibration seeds per re-location filter")
    a = ap.parse_args()
    if a.calibrate:
        calibrate()
        return
    if a.choose_refinement:
        choose_refinement()
        return
    lo, hi = (int(v) for v in a.seeds.split("-"))
    rows = ref.reference_set(seeds=range(lo, hi + 1), **({"noise": 0.0} if a.noise_free else {}))
    summary = report(rows)
    summary["limp"] = limp()
    if a.json:
        Path(a.json).write_text(json.dumps(summary, indent=1, default=float))


if __name__ == "__main__":
    main()
