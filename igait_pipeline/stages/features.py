"""Stage 6, part 1: the classifier's input, read from cycles.json only (stage 6 never analyses keypoints).

Stage 5 stores, per joint-angle series (side hip and knee flexion/extension, front hip and knee
abduction/adduction, left and right: `gait.kinematics.SERIES`), the mean of the leg's steady gait cycles
time-normalised to 101 points. The vector is:

* for each of the 8 series: the mean curve at `FeatureSettings.phase_step` % steps (0, 2, ..., 100 %: 51 values)
  and the cycle-to-cycle variability (mean over the points of the SD across cycles; NaN with a single cycle),
* the gait parameters of stage 5 (PARAMETERS),
* patient metadata: age (years), sex (two indicators), height (cm), weight (kg).

NaN marks a value that could not be measured (a curve of an unusable view, a CV from too few steady steps, ...);
`FeatureSet.missing_reasons` says why, and the prediction abstains when a value the model needs is missing.

No Dagster import here.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from igait_pipeline.schemas import Cycles, JobMetadata
from igait_pipeline.stages.gait.kinematics import SERIES


@dataclass(frozen=True)
class FeatureSettings:
    """How the feature vector samples stage 5's curves; recorded in prediction.json."""

    phase_step: int = 2
    """Every `phase_step`-th point of the 101-point cycle curve (percent of the cycle) is a feature."""


DEFAULT = FeatureSettings()
PHASES = list(range(0, 101, DEFAULT.phase_step))
PARAMETERS = ["cadence_spm", "stride_time_mean_s", "stride_time_cv", "step_time_mean_s", "step_time_asymmetry",
              "stance_ratio", "step_length_norm", "walking_speed_norm", "stride_length_norm", "base_width_ratio"]
PATIENT = ["age_years", "sex_male", "sex_female", "height_cm", "weight_kg"]
FEATURE_NAMES = ([f"{s}_{p:03d}" for s in SERIES for p in PHASES]
                 + [f"{s}_cycle_sd" for s in SERIES] + PARAMETERS + PATIENT)


class FeaturesError(ValueError):
    """The feature vector cannot be built (cycles.json lacks the per-leg curves, ...)."""


@dataclass
class FeatureSet:
    names: list[str]
    values: np.ndarray  # float64, NaN where a value could not be measured
    curves: dict[str, dict]  # cycles.json kinematics curves used (series -> {mean, sd, n_cycles, ...} or {reason})
    parameters: dict[str, float | None]
    patient: dict[str, float]
    missing_reasons: dict[str, str] = field(default_factory=dict)  # series or parameter -> why it is missing
    warnings: list[str] = field(default_factory=list)
    settings: FeatureSettings = DEFAULT

    def as_dict(self) -> dict[str, float | None]:
        return {n: (None if not np.isfinite(v) else float(v)) for n, v in zip(self.names, self.values)}

    def missing(self) -> list[str]:
        return [n for n, v in zip(self.names, self.values) if not np.isfinite(v)]

    def summary(self) -> dict:
        """A readable account for prediction.json (the curves themselves are in cycles.json)."""
        return {
            "representation": f"{len(SERIES)} joint-angle series from cycles.json (mean of steady gait cycles, "
                              f"sampled every {self.settings.phase_step} % of the cycle), plus gait parameters and "
                              f"patient data",
            "vector_length": len(self.names),
            "series": {s: ({"cycles": c["n_cycles"], "alignment": c["alignment"], "rom_deg": c["rom_deg"]}
                           if "mean" in c else {"reason": c.get("reason")}) for s, c in self.curves.items()},
            "parameters": {k: (None if v is None or not np.isfinite(v) else round(float(v), 5))
                           for k, v in self.parameters.items()},
            "patient": self.patient,
            "missing": self.missing(),
            "missing_reasons": dict(self.missing_reasons),
            "warnings": list(self.warnings),
            "settings": asdict(self.settings),
        }


def _patient(meta: JobMetadata) -> dict[str, float]:
    return {"age_years": float(meta.age), "sex_male": float(meta.sex == "M"), "sex_female": float(meta.sex == "F"),
            "height_cm": float(meta.height_cm), "weight_kg": float(meta.weight_kg)}


def compute_features(cycles: Cycles, metadata: JobMetadata, settings: FeatureSettings = DEFAULT) -> FeatureSet:
    """The fixed-length feature vector (FEATURE_NAMES) of one job, from its cycles.json and metadata."""
    curves = (cycles.kinematics or {}).get("curves")
    if not isinstance(curves, dict) or not curves:
        raise FeaturesError("cycles.json holds no per-leg joint-angle curves (written by an older stage 5?); "
                            "re-run stage 5 for this job")
    if settings.phase_step != DEFAULT.phase_step:
        raise FeaturesError(f"phase_step {settings.phase_step}: the feature names are defined for "
                            f"{DEFAULT.phase_step}")
    missing: dict[str, str] = {}
    values: list[float] = []
    sds: list[float] = []
    warnings: list[str] = []
    for s in SERIES:
        c = curves.get(s) or {"reason": "not in cycles.json"}
        if "mean" not in c:
            missing[s] = str(c.get("reason"))
            values += [np.nan] * len(PHASES)
            sds.append(np.nan)
            continue
        mean = np.asarray(c["mean"], dtype=float)
        if len(mean) != 101:
            raise FeaturesError(f"cycles.json: series {s} has {len(mean)} points, not 101")
        values += list(mean[::settings.phase_step])
        sds.append(float(np.mean(c["sd"])) if c["n_cycles"] >= 2 else np.nan)
        if c["alignment"] != "own heel strikes":
            warnings.append(f"{s}: cycles taken from the {c['alignment']}")
    params = {k: cycles.parameters.get(k) for k in PARAMETERS}
    details = cycles.parameter_details
    for k, v in params.items():
        if v is None:
            missing[k] = (details[k].reason if k in details and details[k].reason else "not measured")
    patient = _patient(metadata)
    vec = np.asarray(values + sds + [np.nan if params[k] is None else float(params[k]) for k in PARAMETERS]
                     + [patient[k] for k in PATIENT], dtype=np.float64)
    if vec.shape != (len(FEATURE_NAMES),):
        raise FeaturesError(f"feature vector has {vec.shape[0]} values, expected {len(FEATURE_NAMES)}")
    return FeatureSet(list(FEATURE_NAMES), vec, {s: curves.get(s, {}) for s in SERIES}, params, patient, missing,
                      warnings, settings)
