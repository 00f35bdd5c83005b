"""Stage 6, part 2: score a job's feature vector with a torch model and write the prediction.

A model is two files (see igait_pipeline.resources.model_store for where they live):

* `model.pt`: `torch.save` of a plain dict (loaded with `weights_only=True`, so no code runs on load):
  `{"format": "igait-mlp/1", "layers": [n_in, h1, ..., 1], "dropout": float, "state_dict": {...},
  "feature_names": [...], "scaler_mean": tensor, "scaler_std": tensor}`;
* `model_card.json`: `{"name", "version", "sha256" (of model.pt), "trained_on", "clinically_validated",
  "feature_names", "metrics", ...}`.

The model takes its inputs by name from the job's FeatureSet, so a later model may use a different subset of
features; a feature it needs that the job lacks (NaN) is replaced by the training mean (z = 0) and listed.

No Dagster import here.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from igait_pipeline.schemas import Prediction, PredictionModel
from igait_pipeline.stages.features import FeatureSet

CHECKPOINT_FORMAT = "igait-mlp/1"
OUTSIDE_Z = 4.0  # inputs this many training SDs from the training mean are reported as out of range


class ModelError(ValueError):
    """A model file or card is unusable (wrong format, features the pipeline does not produce, ...)."""


class MLP(nn.Module):
    """Fully connected network: Linear → ReLU (→ Dropout) per hidden layer, one logit out."""

    def __init__(self, layers: list[int], dropout: float = 0.0):
        super().__init__()
        if len(layers) < 2 or layers[-1] != 1:
            raise ModelError(f"layer sizes {layers} do not end in one output")
        mods: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(layers[:-1], layers[1:])):
            mods.append(nn.Linear(a, b))
            if i < len(layers) - 2:
                mods.append(nn.ReLU())
                if dropout:
                    mods.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class LoadedModel:
    name: str
    version: str
    sha256: str
    sha256_verified: bool  # the card recorded this hash and the file matched it
    card: dict
    net: MLP
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
        z, imputed = self.standardise(features)
        with torch.no_grad():
            logit = self.net(torch.as_tensor(z, dtype=torch.float32)[None, :])[0]
        return float(torch.sigmoid(logit)), imputed


def load_model(model_path: str | os.PathLike, card: dict, sha256: Optional[str] = None) -> LoadedModel:
    """Build a LoadedModel from a local model.pt and its card. sha256: the file's hash if already computed."""
    model_path = Path(model_path)
    digest = sha256 or sha256_file(model_path)
    recorded = card.get("sha256")
    if recorded and recorded != digest:
        raise ModelError(f"{model_path.name}: sha256 {digest} does not match the card's {recorded}")
    try:
        ck = torch.load(model_path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise ModelError(f"{model_path.name} is not a loadable torch checkpoint: {e}") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{model_path.name}: checkpoint format {ck.get('format') if isinstance(ck, dict) else '?'}"
                         f" is not {CHECKPOINT_FORMAT}")
    layers = [int(v) for v in ck["layers"]]
    names = list(ck["feature_names"])
    mean = ck["scaler_mean"].double().numpy()
    std = ck["scaler_std"].double().numpy()
    if not (layers[0] == len(names) == len(mean) == len(std)):
        raise ModelError(f"{model_path.name}: {layers[0]} inputs, {len(names)} feature names, {len(mean)} scaler "
                         f"means: they must agree")
    if card.get("feature_names") and list(card["feature_names"]) != names:
        raise ModelError(f"{model_path.name}: the card's feature list differs from the checkpoint's")
    net = MLP(layers, float(ck.get("dropout", 0.0)))
    net.load_state_dict(ck["state_dict"])
    net.eval()
    notes = [] if recorded else [f"the card records no sha256; computed {digest}"]
    return LoadedModel(str(card.get("name", "?")), str(card.get("version", "?")), digest, bool(recorded), card, net,
                       names, mean, np.where(std > 0, std, 1.0), notes)


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


def predict(features: FeatureSet, loaded_model: LoadedModel, job_id: str, threshold: float = 0.5) -> Prediction:
    """Score, classification ("ASD" when score >= threshold) and everything needed to read it honestly."""
    if not 0.0 < threshold < 1.0:
        raise ModelError(f"threshold {threshold} is not between 0 and 1")
    score, imputed = loaded_model.score(features)
    z, _ = loaded_model.standardise(features)
    far = [n for n, v in zip(loaded_model.feature_names, z) if abs(v) > OUTSIDE_Z]
    summary = features.summary()
    summary["imputed_with_training_mean"] = imputed
    summary["outside_training_range"] = {
        "rule": f"|z| > {OUTSIDE_Z} against the model's training data", "count": len(far), "names": far[:40]}
    return Prediction(
        job_id=job_id, score=round(score, 6), classification="ASD" if score >= threshold else "NO ASD",
        threshold=threshold,
        model=PredictionModel(name=loaded_model.name, version=loaded_model.version, sha256=loaded_model.sha256,
                              clinically_validated=loaded_model.clinically_validated,
                              trained_on=loaded_model.trained_on),
        disclaimer=disclaimer(loaded_model), features=summary)
