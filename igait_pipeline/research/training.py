"""Candidate screening models trained and validated from the labelled rows of the feature table.

Two learners see the same data and the same folds: a regularised (L2) logistic regression from scikit-learn on
the cycle-aligned features (joint-angle curves sampled over the gait cycle, their cycle SD, gait parameters,
patient data) — the shape published ASD-gait studies use — and the reference network (`stages.network.MLP`,
trained by `reference_model.train.train_mlp`). Inputs are standardised with the training rows' mean and SD and a
missing input sits at the mean (z = 0), exactly as stage 6 standardises a job, so the saved model scores jobs
as it was validated.

Validation is cross-validation grouped by participant (the user part of the job ID): scikit-learn's
StratifiedGroupKFold puts all of a participant's jobs in one fold, so no child is in both the training and the
test folds; the fold of every job is recorded and checked (`participants_in_two_folds`). On the out-of-fold
scores: ROC AUC with a bootstrap interval (participants resampled, not jobs), sensitivity and specificity at the
threshold, the Brier score, the confusion matrix, the ROC curve. The logistic regression, refitted on every
labelled row, is the candidate (model.pt in the `igait-logreg/1` format of stages.predict); the network's
cross-validated metrics are recorded beside it for comparison. No Dagster import.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from igait_pipeline.stages import features
from igait_pipeline.stages.predict import LOGREG_FORMAT, LoadedModel, sha256_file

INTENDED_USE = ("research screening aid for children walking in two phone videos (front and side view); not a "
                "diagnosis; a job outside the domain below is INDETERMINATE")


@dataclass(frozen=True)
class TrainSettings:
    """How a candidate is trained and validated; recorded in its card."""

    folds: int = 5
    """Cross-validation folds (fewer when a class has fewer participants)."""
    C: float = 0.05
    """Inverse L2 regularisation strength of the logistic regression (smaller: stronger)."""
    threshold: float = 0.5
    """Score at or above which a job is classified ASD; sensitivity and specificity are reported at it."""
    bootstrap: int = 1000
    """Bootstrap resamples (of participants) for the AUC's 95 % interval."""
    max_missing_share: float = 0.5
    """A feature missing in more than this share of the labelled rows is left out."""
    domain_margin: float = 0.25
    """Per input, the domain is the training min/max widened by this share of the span on each side."""
    mlp_epochs: int = 60
    """Epochs of the comparison network in each fold."""
    seed: int = 0


class TrainingError(ValueError):
    """No candidate can be trained from these rows (no labels, one class only, ...)."""


@dataclass
class Candidate:
    card: dict
    checkpoint: dict
    folds: pd.DataFrame  # job_id, participant, y, fold, score (logistic), score_mlp
    roc_png: bytes = b""
    notes: list[str] = field(default_factory=list)

    def write(self, directory: str | Path) -> Path:
        """model.pt then model_card.json (with model.pt's sha256) in directory."""
        import torch

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        torch.save(self.checkpoint, d / "model.pt")
        self.card["sha256"] = sha256_file(d / "model.pt")
        (d / "model_card.json").write_text(json.dumps(self.card, indent=1) + "\n")
        return d


def labelled(table: pd.DataFrame) -> pd.DataFrame:
    if "y" not in table.columns:
        raise TrainingError("the feature table has no label column: no label file, or no labelled job")
    rows = table[table["y"].notna()].copy()
    rows["y"] = rows["y"].astype(int)
    return rows


def feature_columns(rows: pd.DataFrame, settings: TrainSettings) -> list[str]:
    present = [n for n in features.FEATURE_NAMES if n in rows.columns]
    return [n for n in present if rows[n].isna().mean() <= settings.max_missing_share]


def _standardise(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(X), (X - mean) / std, 0.0)


def _scaler(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from igait_pipeline.reference_model.train import scaler
    return scaler(X)


def _fit_logreg(Z: np.ndarray, y: np.ndarray, settings: TrainSettings):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=settings.C, penalty="l2", max_iter=5000).fit(Z, y)


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(set(y)) == 2 else float("nan")


def bootstrap_auc(y: np.ndarray, p: np.ndarray, groups: np.ndarray, n: int, seed: int) -> tuple[float, float]:
    """95 % interval of the AUC, resampling participants (all of a participant's jobs together)."""
    rng = np.random.default_rng(seed)
    ids = np.unique(groups)
    members = {g: np.flatnonzero(groups == g) for g in ids}
    aucs = []
    for _ in range(n):
        idx = np.concatenate([members[g] for g in rng.choice(ids, size=len(ids), replace=True)])
        if len(set(y[idx])) == 2:
            aucs.append(roc_auc(y[idx], p[idx]))
    if not aucs:
        return float("nan"), float("nan")
    lo, hi = np.percentile(aucs, [2.5, 97.5])
    return round(float(lo), 4), round(float(hi), 4)


def classification_metrics(y: np.ndarray, p: np.ndarray, groups: np.ndarray, settings: TrainSettings) -> dict:
    pred = p >= settings.threshold
    tp, tn = int((pred & (y == 1)).sum()), int((~pred & (y == 0)).sum())
    fp, fn = int((pred & (y == 0)).sum()), int((~pred & (y == 1)).sum())
    lo, hi = bootstrap_auc(y, p, groups, settings.bootstrap, settings.seed)
    return {"n": int(len(y)), "participants": int(len(np.unique(groups))), "threshold": settings.threshold,
            "roc_auc": round(roc_auc(y, p), 4), "roc_auc_ci95": [lo, hi],
            "sensitivity": round(tp / (tp + fn), 4) if tp + fn else None,
            "specificity": round(tn / (tn + fp), 4) if tn + fp else None,
            "brier": round(float(np.mean((p - y) ** 2)), 4),
            "confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn}}


def participants_in_two_folds(folds: pd.DataFrame) -> list[str]:
    """Participants whose jobs were tested in more than one fold (then they were also trained on: a leak)."""
    per = folds.groupby("participant")["fold"].nunique()
    return sorted(per[per > 1].index)


def participants_per_class(rows: pd.DataFrame) -> dict[str, int]:
    return {label: int(rows.loc[rows["label"] == label, "participant"].nunique())
            for label in sorted(rows["label"].unique())}


def _roc_png(curves: dict[str, tuple[np.ndarray, np.ndarray, float]]) -> bytes:
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_curve

    fig = Figure(figsize=(4.2, 4.0), dpi=100)
    ax = fig.subplots()
    for name, (y, p, auc) in curves.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.2f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("1 − specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title("out-of-fold ROC, grouped by participant", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def cross_validate(rows: pd.DataFrame, cols: list[str], settings: TrainSettings) -> pd.DataFrame:
    """Out-of-fold scores of both learners, folds grouped by participant and stratified by label."""
    from sklearn.model_selection import StratifiedGroupKFold

    from igait_pipeline.reference_model.train import probabilities, train_mlp

    per_class = participants_per_class(rows)
    k = min(settings.folds, min(per_class.values()))
    if len(per_class) < 2 or k < 2:
        raise TrainingError(f"labelled participants per class {per_class}: cross-validation needs two classes "
                            f"with at least 2 participants each")
    X, y, groups = rows[cols].to_numpy(float), rows["y"].to_numpy(int), rows["participant"].to_numpy(str)
    out = rows[["job_id", "participant", "y"]].copy()
    out["fold"], out["score"], out["score_mlp"] = -1, np.nan, np.nan
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=settings.seed)
    for fold, (tr, te) in enumerate(cv.split(X, y, groups)):
        mean, std = _scaler(X[tr])
        ztr, zte = _standardise(X[tr], mean, std), _standardise(X[te], mean, std)
        out.iloc[te, out.columns.get_loc("fold")] = fold
        out.iloc[te, out.columns.get_loc("score")] = _fit_logreg(ztr, y[tr], settings).predict_proba(zte)[:, 1]
        net = train_mlp(ztr, y[tr], seed=settings.seed + fold, epochs=settings.mlp_epochs)
        out.iloc[te, out.columns.get_loc("score_mlp")] = probabilities(net, zte)
    return out


def domain_of(rows: pd.DataFrame, cols: list[str], settings: TrainSettings) -> dict:
    from igait_pipeline.reference_model.train import domain

    dom = domain(rows[cols].to_numpy(float), cols, settings.domain_margin)
    ages = rows["age_years"].astype(float)
    dom["age_years"] = [round(float(ages.min()), 2), round(float(ages.max()), 2)]
    dom["rule"] = (f"per input: the training rows' min/max widened by {settings.domain_margin:.0%} of the span on "
                   f"each side; age: the training rows' youngest to oldest")
    return dom


def train_candidate(table: pd.DataFrame, name: str, settings: TrainSettings = TrainSettings(),
                    now: dt.datetime | None = None) -> Candidate:
    """Cross-validate both learners on the labelled rows, refit the logistic regression on all of them, and
    describe it in a card (training data, features, domain, metrics, folds)."""
    rows = labelled(table)
    if rows.empty:
        raise TrainingError("no labelled job in the feature table")
    cols = feature_columns(rows, settings)
    folds = cross_validate(rows, cols, settings)
    y, groups = folds["y"].to_numpy(int), folds["participant"].to_numpy(str)
    m_lr = classification_metrics(y, folds["score"].to_numpy(float), groups, settings)
    m_mlp = classification_metrics(y, folds["score_mlp"].to_numpy(float), groups, settings)
    X = rows[cols].to_numpy(float)
    mean, std = _scaler(X)
    lr = _fit_logreg(_standardise(X, mean, std), rows["y"].to_numpy(int), settings)
    import torch

    checkpoint = {"format": LOGREG_FORMAT, "feature_names": cols,
                  "scaler_mean": torch.as_tensor(mean, dtype=torch.float64),
                  "scaler_std": torch.as_tensor(std, dtype=torch.float64),
                  "coef": torch.as_tensor(lr.coef_[0], dtype=torch.float64),
                  "intercept": torch.as_tensor(float(lr.intercept_[0]), dtype=torch.float64)}
    job_ids = sorted(rows["job_id"])
    ids_hash = hashlib.sha256("\n".join(job_ids).encode()).hexdigest()
    now = now or dt.datetime.now(dt.UTC)
    version = f"cand-{now:%Y%m%d-%H%M%S}-{ids_hash[:8]}"
    sources = sorted(rows["label_source"].dropna().unique()) if "label_source" in rows.columns else []
    per_class = participants_per_class(rows)
    card = {
        "name": name, "version": version, "sha256": "0" * 64, "format": LOGREG_FORMAT,
        "clinically_validated": False,
        "trained_on": f"{len(rows)} labelled jobs of {rows['participant'].nunique()} participants "
                      f"(labels: {', '.join(sources) or 'unknown source'})",
        "intended_use": INTENDED_USE,
        "domain": domain_of(rows, cols, settings),
        "feature_names": cols, "threshold": settings.threshold,
        "metrics": {"cross_validated": m_lr, "cross_validated_mlp": m_mlp,
                    "validation": f"{int(folds['fold'].max()) + 1}-fold cross-validation grouped by participant "
                                  f"(StratifiedGroupKFold), out-of-fold scores"},
        "training": {"rows": len(rows), "participants": int(rows["participant"].nunique()),
                     "participants_per_class": per_class, "label_sources": sources,
                     "job_ids_sha256": ids_hash, "learner": "scikit-learn LogisticRegression (L2)",
                     "compared_with": "reference network (stages.network.MLP), same folds"},
        "folds": {j: int(f) for j, f in zip(folds["job_id"], folds["fold"])},
        "settings": asdict(settings),
    }
    png = _roc_png({"logistic regression": (y, folds["score"].to_numpy(float), m_lr["roc_auc"]),
                    "network": (y, folds["score_mlp"].to_numpy(float), m_mlp["roc_auc"])})
    return Candidate(card, checkpoint, folds, png)


def evaluate_loaded(model: LoadedModel, table: pd.DataFrame, settings: TrainSettings = TrainSettings()) -> dict:
    """An external model scored on the labelled rows (external validation: it was not trained on them)."""
    import torch

    rows = labelled(table)
    missing = [n for n in model.feature_names if n not in rows.columns]
    if missing:
        raise TrainingError(f"model {model.name} {model.version} takes inputs the feature table lacks: "
                            f"{', '.join(missing[:5])}")
    Z = _standardise(rows[model.feature_names].to_numpy(float), model.mean, model.std)
    with torch.no_grad():
        p = torch.sigmoid(model.net(torch.as_tensor(Z, dtype=torch.float32))).double().numpy().reshape(-1)
    return classification_metrics(rows["y"].to_numpy(int), p, rows["participant"].to_numpy(str), settings)
