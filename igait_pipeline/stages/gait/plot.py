"""Stage 5's figures, drawn from what stage 5 already measured (no second analysis of the keypoints).
No Dagster import here."""
from __future__ import annotations

import io

import numpy as np

from igait_pipeline.schemas import Cycles
from igait_pipeline.stages.gait.events import ViewMeasurement
from igait_pipeline.stages.gait.kinematics import JOINTS
from igait_pipeline.stages.gait.signals import FEET

COLORS = {"left": "tab:blue", "right": "tab:red"}
# Fixed margins (figure fractions) instead of tight_layout: they are what tight_layout computed for these two
# figures (rounded outwards), whose sizes, labels and legends do not change; tight_layout drew every figure an
# extra time to measure it, about 40 % of the stage's plotting time.
EVENTS_MARGINS = {"left": 0.08, "right": 0.835, "bottom": 0.145, "top": 0.915, "hspace": 0.14}
CURVES_MARGINS = {"left": 0.075, "right": 0.985, "bottom": 0.095, "top": 0.944, "wspace": 0.15, "hspace": 0.34}


def _figure(w: float, h: float, margins: dict):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=90)
    fig.subplots_adjust(**margins)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def plot_events(res: ViewMeasurement, cycles: Cycles) -> bytes:
    """PNG: the view's heel (and ankle) signals per foot with heel strikes (▼) and toe-offs (▲); steady strides as
    solid bars, excluded ones hatched. Pass the measurement of `cycles.view_used`."""
    fig = _figure(10.5, 4.2, EVENTS_MARGINS)
    ax, bx = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [4, 1]})
    t = res.t
    for foot in FEET:
        c = COLORS[foot]
        ax.plot(t, res.heel[foot], color=c, lw=1.3, label=f"{foot} heel − pelvis")
        if np.isfinite(res.toe[foot]).any():
            ax.plot(t, res.toe[foot], color=c, lw=0.8, ls="--", alpha=0.7, label=f"{foot} ankle − pelvis")
        hs = cycles.heel_strikes.get(foot, [])
        if hs:
            ax.plot(hs, np.interp(hs, t, np.nan_to_num(res.heel[foot])), "v", color=c, ms=7,
                    label=f"{foot} heel strike")
        to = cycles.toe_offs.get(foot, [])
        if to:
            ax.plot(to, np.interp(to, t, np.nan_to_num(res.toe[foot])), "^", color=c, ms=6, mfc="none",
                    label=f"{foot} toe-off")
    for s, e in res.segments:
        ax.axvspan(t[s], t[e - 1], color="0.93", zorder=0)
    unit = "leg lengths" if res.view == "side" else "current leg lengths"
    ax.set_ylabel(f"forward of pelvis ({unit})" if res.view == "side" else f"below pelvis ({unit})")
    p = cycles.parameters
    title = f"job {cycles.job_id}: {res.view} view, {len(cycles.strides)} steady strides"
    if p.get("cadence_spm"):
        title += f", cadence {p['cadence_spm']:.0f} steps/min, stride {p['stride_time_mean_s']:.2f} s"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(alpha=0.3)
    for s in list(cycles.strides) + list(cycles.excluded_strides):
        y = 1 if s.foot == "left" else 0
        bx.barh(y, s.duration, left=s.start, height=0.6, color=COLORS[s.foot], alpha=0.6 if s.steady else 0.15,
                edgecolor="k", hatch=None if s.steady else "//")
    bx.set_yticks([0, 1], ["right", "left"])
    bx.set_xlabel("time (s)  (hatched: not steady)")
    bx.set_ylim(-0.6, 1.6)
    if len(t):
        bx.set_xlim(t[0], t[-1])
    return _png(fig)


def plot_curves(cycles: Cycles) -> bytes:
    """PNG: per joint, the left and right mean cycle curves (± SD) with their ROM, from cycles.json's kinematics."""
    kin = cycles.kinematics or {}
    curves = kin.get("curves", {})
    joints = [j for js in JOINTS.values() for j in js]
    fig = _figure(10.5, 6.0, CURVES_MARGINS)
    axes = fig.subplots(2, 2).ravel()
    for ax, j in zip(axes, joints):
        for foot in FEET:
            c = curves.get(f"{j}_{foot}", {})
            if "mean" not in c:
                continue
            m, sd = np.array(c["mean"]), np.array(c["sd"])
            x = np.linspace(0, 100, len(m))
            label = f"{foot}: ROM {c['rom_deg']:.0f}°, {c['n_cycles']} cycles"
            if "valid" in c:  # front: dotted where the 2-D projection is not valid (swing), outside the ROM
                ax.plot(x, m, color=COLORS[foot], linestyle=":", alpha=0.7)
                m = np.where(np.array(c["valid"]) >= 0.5, m, np.nan)
                label += " (solid: valid phases)"
            ax.plot(x, m, color=COLORS[foot], label=label)
            ax.fill_between(x, m - sd, m + sd, color=COLORS[foot], alpha=0.15)
        sym = kin.get("symmetry", {}).get(j, {})
        si = sym.get("rom_symmetry_index_pct")
        ax.set_title(j.replace("_", " ") + (f"  (ROM SI {si:+.0f} %)" if si is not None else ""), fontsize=9)
        if not ax.lines:
            import textwrap

            ax.text(0.5, 0.5, textwrap.fill(f"not measured: {sym.get('reason')}", 50), ha="center", va="center",
                    fontsize=8, transform=ax.transAxes)
        ax.set_xlabel("% of gait cycle", fontsize=8)
        ax.set_ylabel("degrees", fontsize=8)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    return _png(fig)
