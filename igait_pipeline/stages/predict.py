"""Stage 6, part 2: score a job's feature vector with a torch model and write the prediction.

A model is two files (see igait_pipeline.resources.model_store for where they live):

* `model.pt`, in one of three formats:
  - `torch.save` of a plain dict (loaded with `weights_only=True`, so no code runs on load):
    `{"format": "igait-mlp/1", "layers": [n_in, h1, ..., 1], "dropout": float, "state_dict": {...},
    "feature_names": [...], "scaler_mean": tensor, "scaler_std": tensor}` (the reference network), or
    `{"format": "igait-logreg/1", "feature_names": [...], "scaler_mean", "scaler_std", "coef": tensors (n,),
    "intercept": tensor ()}`: score = sigmoid(((x - mean) / std) · coef + intercept) (igait_pipeline.research);
  - a TorchScript module (`torch.jit.save`) trained elsewhere, its card saying `"format": "torchscript"`: it takes
    a float32 tensor (batch, n) of the raw inputs in the card's `feature_names` order and returns the probability
    of the positive class, (batch,) or (batch, 1). Missing inputs are never passed (the job is INDETERMINATE);
    their place holds 0.
* `model_card.json`: `schemas.ModelCard` — name, version, sha256 of model.pt, trained_on, intended_use,
  clinically_validated, the domain (age range and per-input ranges), feature_names, threshold, metrics.

`model_gate` is the one check a model passes before it is published to the model store or used (the prediction
asset's blocking asset check): the card validates against ModelCard, declares its domain and validation status,
and its sha256 matches model.pt.

The model takes its inputs by name from the job's FeatureSet. The prediction abstains — classification
"INDETERMINATE" with the reasons, the score kept only as a number — when the job is outside the model's declared
domain (age, any input outside its declared range), when an input the model needs could not be measured, or when
a stage 5 quality flag it depends on failed (`PredictSettings.abstain_on_flags`).

No Dagster import here.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import ValidationError

from igait_pipeline.schemas import (
    ModelCard,
    OutOfRangeInput,
    Prediction,
    PredictionModel,
)
from igait_pipeline.stages.features import FeatureSet

if TYPE_CHECKING:
    from torch import nn

CHECKPOINT_FORMAT = "igait-mlp/1"
LOGREG_FORMAT = "igait-logreg/1"
TORCHSCRIPT_FORMAT = "torchscript"  # the card's "format" for a TorchScript model.pt


@dataclass(frozen=True)
class PredictSettings:
    """Stage 6's parameters; recorded in prediction.json (with the stage 5 settings read from cycles.json)."""

    abstain_on_flags: tuple[str, ...] = ("side_view_used", "steady_strides", "front_view_usable", "views_consistent")
    """cycles.json quality flags (quality.flags) whose failure makes the prediction INDETERMINATE: the features
    depend on side-view events, steady strides, a real front view, and both views showing the same walker
    (cross-view consistency: stride time, cadence, leg-to-trunk proportion)."""
    abstain_on_missing: bool = True
    """An input the model needs that could not be measured makes the prediction INDETERMINATE (rather than
    imputing the training mean and labelling the result)."""


class ModelError(ValueError):
    """A model file or card is unusable (wrong format, features the pipeline does not produce, ...)."""


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_gate(card: dict, digest: str | None) -> list[str]:
    """Problems that keep a model out of use (empty: it passes). The card must validate against ModelCard (which
    requires the domain and clinically_validated) and record `digest`, model.pt's sha256 (None: file missing)."""
    problems = []
    try:
        parsed = ModelCard.model_validate(card)
    except ValidationError as e:
        problems += [f"model card: {'.'.join(map(str, x['loc'])) or '(card)'}: {x['msg']}" for x in e.errors()]
        parsed = None
    if digest is None:
        problems.append("model.pt is missing")
    elif parsed is not None and parsed.sha256 != digest:
        problems.append(f"model.pt has sha256 {digest}, its card records {parsed.sha256}")
    if parsed is not None:
        unknown = sorted(set(parsed.domain.feature_ranges) - set(parsed.feature_names))
        lacking = [n for n in parsed.feature_names if n not in parsed.domain.feature_ranges]
        if lacking:
            problems.append(f"the card's domain gives no range for {len(lacking)} input(s): {', '.join(lacking[:5])}")
        if unknown:
            problems.append(f"the card's domain names inputs the model does not take: {', '.join(unknown[:5])}")
    return problems


@dataclass
class LoadedModel:
    name: str
    version: str
    sha256: str
    sha256_verified: bool  # the card recorded this hash and the file matched it
    card: dict
    net: nn.Module  # standardised inputs in, one logit per row out
    feature_names: list[str]
    mean: np.ndarray
    std: np.ndarray
    notes: list[str] = field(default_factory=list)

    @property
    def clinically_validated(self) -> bool:
        return bool(self.card.get("clinically_validated", False))

    @property
    def trained_on(self) -> str:
        return str(self.card.get("trained_on", "unknown"))

    @property
    def domain(self) -> dict | None:
        d = self.card.get("domain")
        return d if isinstance(d, dict) else None

    def standardise(self, features: FeatureSet) -> tuple[np.ndarray, list[str]]:
        """The model's input (z-scores in its feature order, NaN -> 0) and the names that were imputed."""
        index = {n: i for i, n in enumerate(features.names)}
        missing = [n for n in self.feature_names if n not in index]
        if missing:
            raise ModelError(f"model {self.name} {self.version} needs features the pipeline does not produce: "
                             f"{', '.join(missing[:8])}{' …' if len(missing) > 8 else ''}")
        x = np.array([features.values[index[n]] for n in self.feature_names], dtype=np.float64)
        imputed = [n for n, v in zip(self.feature_names, x) if not np.isfinite(v)]
        return np.where(np.isfinite(x), (x - self.mean) / self.std, 0.0), imputed

    def score(self, features: FeatureSet) -> tuple[float, list[str]]:
        """Probability of the positive class ("ASD") and the names of inputs imputed by the training mean."""
        import torch

        z, imputed = self.standardise(features)
        with torch.no_grad():
            logit = self.net(torch.as_tensor(z, dtype=torch.float32)[None, :])[0]
        return float(torch.sigmoid(logit)), imputed


def load_model(model_path: str | os.PathLike, card: dict, sha256: str | None = None) -> LoadedModel:
    """Build a LoadedModel from a local model.pt and its card. sha256: the file's hash if already computed."""
    import torch  # here, not at the top: the code location (definitions) loads without torch

    model_path = Path(model_path)
    digest = sha256 or sha256_file(model_path)
    recorded = card.get("sha256")
    if recorded and recorded != digest:
        raise ModelError(f"{model_path.name}: sha256 {digest} does not match the card's {recorded}")
    notes = [] if recorded else [f"the card records no sha256; computed {digest}"]
    if card.get("format") == TORCHSCRIPT_FORMAT:
        net, names, mean, std = _torchscript(model_path, card)
    else:
        try:
            ck = torch.load(model_path, map_location="cpu", weights_only=True)
        except Exception as e:  # a truncated or foreign file
            raise ModelError(f"{model_path.name} is not a loadable torch checkpoint: {e}") from None
        fmt = ck.get("format") if isinstance(ck, dict) else "?"
        if fmt == CHECKPOINT_FORMAT:
            net, names, mean, std = _mlp(model_path, ck)
        elif fmt == LOGREG_FORMAT:
            net, names, mean, std = _logreg(model_path, ck)
        else:
            raise ModelError(f"{model_path.name}: checkpoint format {fmt} is not {CHECKPOINT_FORMAT} or "
                             f"{LOGREG_FORMAT} (a TorchScript model's card says \"format\": \"{TORCHSCRIPT_FORMAT}\")")
    if card.get("feature_names") and list(card["feature_names"]) != names:
        raise ModelError(f"{model_path.name}: the card's feature list differs from the checkpoint's")
    return LoadedModel(str(card.get("name", "?")), str(card.get("version", "?")), digest, bool(recorded), card, net,
                       names, mean, np.where(std > 0, std, 1.0), notes)


def _mlp(model_path: Path, ck: dict):
    from igait_pipeline.stages.network import MLP

    layers = [int(v) for v in ck["layers"]]
    names = list(ck["feature_names"])
    mean = ck["scaler_mean"].double().numpy()
    std = ck["scaler_std"].double().numpy()
    if not (layers[0] == len(names) == len(mean) == len(std)):
        raise ModelError(f"{model_path.name}: {layers[0]} inputs, {len(names)} feature names, {len(mean)} scaler "
                         f"means: they must agree")
    net = MLP(layers, float(ck.get("dropout", 0.0)))
    net.load_state_dict(ck["state_dict"])
    net.eval()
    return net, names, mean, std


def _logreg(model_path: Path, ck: dict):
    """A logistic regression as a one-layer network: its logit is z · coef + intercept."""
    import torch
    from torch import nn

    names = list(ck["feature_names"])
    mean, std = ck["scaler_mean"].double().numpy(), ck["scaler_std"].double().numpy()
    coef = ck["coef"].double()
    if not (len(names) == len(mean) == len(std) == coef.numel()):
        raise ModelError(f"{model_path.name}: {len(names)} feature names, {len(mean)} scaler means, "
                         f"{coef.numel()} coefficients: they must agree")
    lin = nn.Linear(len(names), 1)
    with torch.no_grad():
        lin.weight.copy_(coef.float()[None, :])
        lin.bias.copy_(ck["intercept"].float().reshape(1))
    net = nn.Sequential(lin, nn.Flatten(0))
    net.eval()
    return net, names, mean, std


def _torchscript(model_path: Path, card: dict):
    """A TorchScript module trained elsewhere: raw inputs in, probability out; wrapped to give a logit."""
    import torch

    names = list(card.get("feature_names") or [])
    if not names:
        raise ModelError(f"{model_path.name}: a TorchScript model's card must list its feature_names")
    try:
        module = torch.jit.load(str(model_path), map_location="cpu")
    except Exception as e:
        raise ModelError(f"{model_path.name} is not a loadable TorchScript module: {e}") from None
    module.eval()

    class ProbabilityToLogit(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            p = self.inner(x).reshape(x.shape[0])
            return torch.logit(p.clamp(1e-7, 1 - 1e-7))

    zeros, ones = np.zeros(len(names)), np.ones(len(names))  # raw inputs: no standardisation
    return ProbabilityToLogit(module), names, zeros, ones


def load_model_dir(directory: str | os.PathLike) -> LoadedModel:
    """A model from a local directory holding model.pt and model_card.json."""
    d = Path(directory)
    return load_model(d / "model.pt", json.loads((d / "model_card.json").read_text()))


def disclaimer(model: LoadedModel) -> str:
    if model.clinically_validated:
        return (f"Research screening aid ({model.name} {model.version}); not a diagnosis. Trained on: "
                f"{model.trained_on}.")
    return (f"NOT CLINICALLY VALIDATED. This score comes from {model.name} {model.version}, trained on "
            f"{model.trained_on}. It is not a diagnosis, must not be used for any clinical decision, and says "
            f"nothing reliable about this child.")


def _domain_check(features: FeatureSet, model: LoadedModel) -> tuple[list[str], list[OutOfRangeInput]]:
    """Reasons the job lies outside the model's declared domain, and the inputs outside their ranges."""
    dom = model.domain
    if not dom:
        return [f"model {model.name} {model.version} declares no domain in its card"], []
    reasons: list[str] = []
    lo_age, hi_age = dom.get("age_years", (float("-inf"), float("inf")))
    age = features.patient.get("age_years")
    if age is not None and not lo_age <= age <= hi_age:
        # No patient value in a reason: reasons go to logs, the event log and SUMMARY.txt (the value is in
        # out_of_range_inputs, in prediction.json only).
        reasons.append(f"the age is outside the model's domain ({lo_age:g}–{hi_age:g} years)")
    ranges = dom.get("feature_ranges", {})
    index = {n: i for i, n in enumerate(features.names)}
    out = []
    for n in model.feature_names:
        v = features.values[index[n]] if n in index else np.nan
        if n in ranges and np.isfinite(v) and not ranges[n][0] <= v <= ranges[n][1]:
            out.append(OutOfRangeInput(name=n, value=round(float(v), 5),
                                       range=(round(float(ranges[n][0]), 5), round(float(ranges[n][1]), 5))))
    if out:
        reasons.append(f"{len(out)} of {len(model.feature_names)} inputs lie outside the ranges the model was "
                       f"trained on (e.g. {', '.join(o.name for o in out[:4])})")
    return reasons, out


def predict(features: FeatureSet, loaded_model: LoadedModel, job_id: str, threshold: float | None = None,
            flags: list[dict] | None = None, settings: PredictSettings = PredictSettings(),
            stage5_settings: dict | None = None) -> Prediction:
    """Score and classification ("ASD" when score >= threshold), or "INDETERMINATE" with the reasons when the job
    is outside the model's domain, an input is missing, or a quality flag in `flags` (cycles.json
    quality.flags) that the features depend on failed."""
    threshold = float(loaded_model.card.get("threshold", 0.5) if threshold is None else threshold)
    if not 0.0 < threshold < 1.0:
        raise ModelError(f"threshold {threshold} is not between 0 and 1")
    score, imputed = loaded_model.score(features)
    reasons, out = _domain_check(features, loaded_model)
    in_domain = not reasons
    for f in flags or []:
        if f.get("name") in settings.abstain_on_flags and not f.get("ok"):
            reasons.append(f"quality check {f['name']} failed: {f.get('detail')}")
    if imputed and settings.abstain_on_missing:
        by_reason: dict[str, list[str]] = {}
        for base in dict.fromkeys(_base(n) for n in imputed):
            by_reason.setdefault(features.missing_reasons.get(base, "not measured"), []).append(base)
        why = "; ".join(f"{', '.join(bases)}: {reason}" for reason, bases in by_reason.items())
        reasons.append(f"{len(imputed)} input(s) could not be measured ({why})")
    summary = features.summary()
    summary["imputed_with_training_mean"] = imputed
    cls = "INDETERMINATE" if reasons else ("ASD" if score >= threshold else "NO ASD")
    return Prediction(
        job_id=job_id, classification=cls, reasons=reasons, in_domain=in_domain, out_of_range_inputs=out,
        clinically_validated=loaded_model.clinically_validated, score=round(score, 6), threshold=threshold,
        model=PredictionModel(name=loaded_model.name, version=loaded_model.version, sha256=loaded_model.sha256,
                              clinically_validated=loaded_model.clinically_validated,
                              trained_on=loaded_model.trained_on),
        disclaimer=disclaimer(loaded_model),
        settings={"predict": asdict(settings), "features": asdict(features.settings),
                  "stage_5": stage5_settings or {}},
        features=summary)


def _base(name: str) -> str:
    """The series or parameter a feature name belongs to (side_hip_flexion_left_042 -> side_hip_flexion_left)."""
    head, _, tail = name.rpartition("_")
    if tail.isdigit():
        return head
    return name.removesuffix("_cycle_sd")
