"""Stage 6, part 1: the classifier's input — cycle-aligned joint-angle curves, gait parameters, patient data.

iGait's earlier classifier took eight joint-angle series (side view: hip and knee flexion/extension, left and
right; front view: hip and knee abduction/adduction, left and right) in four 30-frame windows at fixed offsets.
Here each series is cut at that leg's own heel strikes (one gait cycle = heel strike to the next heel strike of
the same foot), each cycle is time-normalised to N_POINTS points (0, 2, ..., 100 % of the cycle) and the cycles
are averaged. The vector is then:

* for each of the 8 series: the mean curve (N_POINTS values) and the cycle-to-cycle variability (mean over the
  points of the SD across cycles; NaN with a single cycle),
* the gait parameters of stage 5 (PARAMETERS),
* patient metadata: age (years), sex (two indicators), height (cm), weight (kg).

NaN marks a value that could not be measured (e.g. stance ratio without toe-offs); the model store's scaler
replaces it by the training mean and the prediction lists it. The angle curves themselves must exist: a series
with no usable cycle raises FeaturesError.

Angle definitions (2-D, image pixels, degrees):

* side hip flexion (+) / extension (−): angle of the thigh (hip → knee) relative to the trunk's downward line
  (mid-shoulder → mid-hip), positive when the knee is ahead of that line in the walking direction.
* side knee flexion (+): angle between the thigh's and the shank's (knee → ankle) directions, positive when the
  shank points behind the thigh's line; 0 = straight leg.
* front hip abduction (+) / adduction (−): angle of the thigh from the pelvis' downward perpendicular (the
  perpendicular to the right-hip → left-hip line), positive when the knee lies lateral (away from the midline).
* front knee abduction (+, valgus-like) / adduction (−, varus-like): the shank's lateral angle minus the thigh's,
  both measured as above; positive when the ankle lies further out than the thigh's line.

No Dagster import here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from igait_pipeline.schemas import LM, Cycles, JobMetadata, Keypoints, Stride
from igait_pipeline.stages import cycles as cyc

N_POINTS = 51
PHASES = np.linspace(0.0, 1.0, N_POINTS)
MIN_COVERAGE = 0.8  # a cycle is used for a series when the series is measured on this share of its frames
SERIES = [
    "side_hip_flexion_left", "side_hip_flexion_right", "side_knee_flexion_left", "side_knee_flexion_right",
    "front_hip_abduction_left", "front_hip_abduction_right", "front_knee_abduction_left",
    "front_knee_abduction_right",
]
PARAMETERS = ["cadence_spm", "stride_time_mean_s", "stride_time_cv", "step_time_mean_s", "step_time_asymmetry",
              "stance_ratio", "step_length_norm", "walking_speed_norm", "stride_length_norm", "base_width_ratio"]
PATIENT = ["age_years", "sex_male", "sex_female", "height_cm", "weight_kg"]
FEATURE_NAMES = ([f"{s}_{int(round(p * 100)):03d}" for s in SERIES for p in PHASES]
                 + [f"{s}_cycle_sd" for s in SERIES] + PARAMETERS + PATIENT)


class FeaturesError(ValueError):
    """The feature vector cannot be built (a joint-angle series has no usable gait cycle, ...)."""


# ---------- angles ----------
def _incl(v: np.ndarray, direction: int) -> np.ndarray:
    """Angle of image vectors (…, 2) from straight down towards the walking direction, degrees."""
    return np.degrees(np.arctan2(direction * v[..., 0], v[..., 1]))


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + 180.0) % 360.0 - 180.0


def side_angles(xy: np.ndarray, direction: int) -> dict[str, np.ndarray]:
    """Hip and knee flexion per leg from side-view pixel coordinates (n, 33, 2); NaN where a landmark is missing."""
    trunk = (xy[:, LM["left_hip"]] + xy[:, LM["right_hip"]]) / 2 - (
        xy[:, LM["left_shoulder"]] + xy[:, LM["right_shoulder"]]) / 2
    out = {}
    for s in ("left", "right"):
        thigh = xy[:, LM[f"{s}_knee"]] - xy[:, LM[f"{s}_hip"]]
        shank = xy[:, LM[f"{s}_ankle"]] - xy[:, LM[f"{s}_knee"]]
        out[f"side_hip_flexion_{s}"] = _wrap(_incl(thigh, direction) - _incl(trunk, direction))
        out[f"side_knee_flexion_{s}"] = _wrap(_incl(thigh, direction) - _incl(shank, direction))
    return out


def front_angles(xy: np.ndarray) -> dict[str, np.ndarray]:
    """Hip and knee abduction per leg from front-view pixel coordinates (n, 33, 2)."""
    u = xy[:, LM["left_hip"]] - xy[:, LM["right_hip"]]
    norm = np.linalg.norm(u, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = np.where(norm > 0, u / norm, np.nan)
    down = np.stack([-u[:, 1], u[:, 0]], axis=1)
    down = np.where(down[:, 1:2] < 0, -down, down)  # the perpendicular that points down the image
    out = {}
    for s, lat in (("left", u), ("right", -u)):
        thigh = xy[:, LM[f"{s}_knee"]] - xy[:, LM[f"{s}_hip"]]
        shank = xy[:, LM[f"{s}_ankle"]] - xy[:, LM[f"{s}_knee"]]

        def lateral(v):
            return np.degrees(np.arctan2((v * lat).sum(axis=1), (v * down).sum(axis=1)))

        out[f"front_hip_abduction_{s}"] = lateral(thigh)
        out[f"front_knee_abduction_{s}"] = _wrap(lateral(shank) - lateral(thigh))
    return out


# ---------- cycle normalisation ----------
def normalise_cycle(t: np.ndarray, y: np.ndarray, start: float, end: float,
                    min_coverage: float = MIN_COVERAGE) -> Optional[np.ndarray]:
    """y over [start, end] resampled to N_POINTS phases, or None when too little of it was measured."""
    sel = (t >= start) & (t <= end)
    n = int(sel.sum())
    ok = sel & np.isfinite(y)
    if n < 5 or ok.sum() < max(5, min_coverage * n):
        return None
    tt, yy = t[ok], y[ok]
    # The ends must be measured (close to the events), or the curve would be extrapolated.
    slack = 0.1 * (end - start)
    if tt[0] - start > slack or end - tt[-1] > slack:
        return None
    return np.interp(start + PHASES * (end - start), tt, yy)


@dataclass
class SeriesCurve:
    mean: np.ndarray
    sd: np.ndarray
    cycles: int
    alignment: str  # "own heel strikes" | "other foot's heel strikes, shifted half a cycle" | "stride period"

    @property
    def cycle_sd(self) -> float:
        return float(self.sd.mean()) if self.cycles >= 2 else float("nan")


def _windows(strides: list[Stride], foot: str) -> list[tuple[float, float]]:
    return [(s.start, s.end) for s in strides if s.foot == foot]


def curve(t: np.ndarray, y: np.ndarray, strides: list[Stride], foot: str, period_s: Optional[float],
          used: np.ndarray) -> tuple[Optional[SeriesCurve], str]:
    """Average cycle of one series; tries the leg's own strides, then the other foot's (shifted by half a cycle),
    then consecutive windows of the stride period. Returns (curve or None, explanation)."""
    y = np.where(used, y, np.nan)
    other = "right" if foot == "left" else "left"
    attempts = [("own heel strikes", _windows(strides, foot), 0),
                ("other foot's heel strikes, shifted half a cycle", _windows(strides, other), N_POINTS // 2)]
    if period_s:
        idx = np.flatnonzero(used)
        wins = []
        if len(idx):
            start = t[idx[0]]
            while start + period_s <= t[idx[-1]]:
                wins.append((start, start + period_s))
                start += period_s
        attempts.append(("stride period (not aligned to heel strikes)", wins, 0))
    tried = []
    for label, wins, shift in attempts:
        got = [c for c in (normalise_cycle(t, y, a, b) for a, b in wins) if c is not None]
        tried.append(f"{label}: {len(got)}/{len(wins)} usable")
        if got:
            arr = np.array(got)
            if shift:
                # Half a cycle later the other foot strikes: roll so 0 % is this foot's heel strike.
                arr = np.roll(arr[:, :-1], -shift, axis=1)
                arr = np.concatenate([arr, arr[:, :1]], axis=1)
            return SeriesCurve(arr.mean(axis=0), arr.std(axis=0), len(got), label), "; ".join(tried)
    return None, "; ".join(tried)


# ---------- the vector ----------
@dataclass
class FeatureSet:
    names: list[str]
    values: np.ndarray  # float64, NaN where a value could not be measured
    curves: dict[str, SeriesCurve]
    parameters: dict[str, Optional[float]]
    patient: dict[str, float]
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Optional[float]]:
        return {n: (None if not np.isfinite(v) else float(v)) for n, v in zip(self.names, self.values)}

    def missing(self) -> list[str]:
        return [n for n, v in zip(self.names, self.values) if not np.isfinite(v)]

    def summary(self) -> dict:
        """A readable account for prediction.json: curves per series, parameters, patient data, what is missing."""
        return {
            "representation": f"{len(SERIES)} joint-angle series, each averaged over gait cycles time-normalised to "
                              f"{N_POINTS} points (0–100 % of the cycle), plus gait parameters and patient data",
            "vector_length": len(self.names),
            "angle_curves_deg": {s: {"mean": [round(float(v), 2) for v in c.mean],
                                     "sd": [round(float(v), 2) for v in c.sd],
                                     "cycles": c.cycles, "alignment": c.alignment} for s, c in self.curves.items()},
            "parameters": {k: (None if v is None or not np.isfinite(v) else round(float(v), 5))
                           for k, v in self.parameters.items()},
            "patient": self.patient,
            "missing": self.missing(),
            "warnings": list(self.warnings),
        }


def _patient(meta: JobMetadata) -> dict[str, float]:
    return {"age_years": float(meta.age), "sex_male": float(meta.sex == "M"), "sex_female": float(meta.sex == "F"),
            "height_cm": float(meta.height_cm), "weight_kg": float(meta.weight_kg)}


def compute_features(side: Keypoints, front: Keypoints, cycles: Cycles, metadata: JobMetadata,
                     analyses: Optional[dict[str, cyc.ViewAnalysis]] = None) -> FeatureSet:
    """The fixed-length feature vector (FEATURE_NAMES) for one job.

    `cycles` is stage 5's result: its strides segment the view it was measured on; the other view (a separate
    recording) is segmented by its own heel strikes, found with the same method (cycles.analyse_view).
    `analyses` (cycles.analyse_views of the same keypoints) saves recomputing them.
    """
    if side is None or front is None:
        raise FeaturesError("both the side and the front keypoints are needed for the joint-angle features")
    warnings: list[str] = []
    curves: dict[str, SeriesCurve] = {}
    stride_period = cycles.parameters.get("stride_time_mean_s")
    for kp in (side, front):
        try:
            res = (analyses or {}).get(kp.view) or cyc.analyse_view(kp)
        except cyc.CyclesError as e:
            raise FeaturesError(str(e)) from None
        strides = cycles.strides if kp.view == cycles.view_used else res.strides
        if not res.used.any():
            raise FeaturesError(f"{kp.view} view: no frames with both ankles visible, so no joint angles "
                                f"({'; '.join(res.reasons)})")
        a = res.raw
        if kp.view == "side":
            angles = side_angles(a.xy, res.direction)
        else:
            angles = front_angles(a.xy)
        for name, y in angles.items():
            foot = "left" if name.endswith("_left") else "right"
            c, how = curve(a.t, y, strides, foot, stride_period, res.used)
            if c is None:
                raise FeaturesError(f"{kp.view} view: joint angle {name} has no usable gait cycle ({how})")
            if c.alignment != "own heel strikes":
                warnings.append(f"{name}: cycles taken from the {c.alignment} ({how})")
            curves[name] = c
    params = {k: cycles.parameters.get(k) for k in PARAMETERS}
    patient = _patient(metadata)
    values = ([v for s in SERIES for v in curves[s].mean] + [curves[s].cycle_sd for s in SERIES]
              + [np.nan if params[k] is None else float(params[k]) for k in PARAMETERS]
              + [patient[k] for k in PATIENT])
    vec = np.asarray(values, dtype=np.float64)
    if vec.shape != (len(FEATURE_NAMES),):
        raise FeaturesError(f"feature vector has {vec.shape[0]} values, expected {len(FEATURE_NAMES)}")
    n_curve = len(SERIES) * N_POINTS
    if not np.isfinite(vec[:n_curve]).all():
        raise FeaturesError("a joint-angle curve contains NaN after cycle normalisation")
    return FeatureSet(list(FEATURE_NAMES), vec, curves, params, patient, warnings)
