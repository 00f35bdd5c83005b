"""Train the reference MLP on synthetic walkers, deterministically (fixed seeds, CPU, one torch thread).

Each simulated walker goes through the pipeline's own stage code — `cycles.detect_cycles` on its side and front
keypoints, then `features.compute_features` on the resulting cycles.json — so the model sees exactly what the
pipeline produces. The card declares the model's domain (schemas.ModelDomain): the simulated ages and, per input,
the training min/max widened by DOMAIN_MARGIN of the span; the share of held-out walkers inside it is a metric. Walkers
alternate between the two simulated classes; every fourth walker is held out for the metrics.

Run it through `scripts/train_reference_model.py`.
"""
from __future__ import annotations

import gc
import json
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from igait_pipeline.reference_model import REFERENCE_NAME, REFERENCE_VERSION, synthetic
from igait_pipeline.stages import cycles, features
from igait_pipeline.stages.network import MLP
from igait_pipeline.stages.predict import CHECKPOINT_FORMAT, sha256_file

NAME = REFERENCE_NAME
VERSION = REFERENCE_VERSION
HIDDEN = [32, 16]
DROPOUT = 0.5
EPOCHS = 100
LR = 1e-3
WEIGHT_DECAY = 1e-2
WALKERS = 400
DOMAIN_MARGIN = 0.25  # share of each input's training span accepted beyond its training min/max
AGE_RANGE = (3.0, 12.0)  # the simulated ages (synthetic.sample_params)
TRAINED_ON = ("synthetic walkers only: keypoints rendered by a parametric gait model "
              "(igait_pipeline.reference_model.synthetic) for two simulated classes with invented, overlapping "
              "parameter distributions; no data from any real child")


@dataclass
class Dataset:
    X: np.ndarray  # (n, n_features), NaN where a value was not measurable
    y: np.ndarray  # (n,) 0/1
    index: np.ndarray  # walker number i (seed = seed * 1_000_003 + i)
    failed: list[tuple[int, str]]


def walker_features(seed: int, label: int) -> tuple[np.ndarray | None, str]:
    """One walker through detect_cycles and compute_features; (vector, "") or (None, why it failed)."""
    w = synthetic.make_walker(seed, label=label)
    try:
        c = cycles.detect_cycles(w.side, w.front, f"synthetic_{seed}")
        return features.compute_features(c, w.metadata).values, ""
    except (cycles.CyclesError, features.FeaturesError) as e:
        return None, str(e)


def _job(args):
    # A walker is ~10^5 small lists (keypoints JSON as Python objects) freed by reference counting; the cyclic
    # garbage collector only slows their creation down (2-3x), so it is paused per walker.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return walker_features(*args)
    finally:
        if enabled:
            gc.enable()


def build_dataset(n: int, seed: int = 0, workers: int = 1) -> Dataset:
    """n walkers, labels alternating 0/1, walker i from seed `seed * 1_000_003 + i` (independent of workers)."""
    jobs = [(seed * 1_000_003 + i, i % 2) for i in range(n)]
    if workers > 1:
        with mp.get_context("fork").Pool(workers) as pool:
            out = pool.map(_job, jobs, chunksize=max(1, n // (8 * workers)))
    else:
        out = [_job(j) for j in jobs]
    X, y, index, failed = [], [], [], []
    for i, ((s, label), (vec, why)) in enumerate(zip(jobs, out)):
        if vec is None:
            failed.append((s, why))
            continue
        X.append(vec)
        y.append(label)
        index.append(i)
    return Dataset(np.array(X), np.array(y, dtype=np.int64), np.array(index), failed)


def split(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Boolean train / held-out masks: every fourth pair of walkers (one of each class) is held out."""
    test = (ds.index // 2) % 4 == 3
    return ~test, test


def scaler(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(np.where(np.isfinite(X), X, np.nan), axis=0)
        std = np.nanstd(np.where(np.isfinite(X), X, np.nan), axis=0)
    mean = np.nan_to_num(mean, nan=0.0)
    std = np.where(np.isfinite(std) & (std > 1e-9), std, 1.0)
    return mean, std


def domain(X: np.ndarray, names: list[str], margin: float = DOMAIN_MARGIN) -> dict:
    """The card's domain: per input the training min/max widened by `margin` of the span (a constant input gets
    ±margin of its magnitude, at least 1e-6)."""
    lo, hi = np.nanmin(X, axis=0), np.nanmax(X, axis=0)
    span = np.where(hi > lo, hi - lo, np.maximum(np.abs(hi), 1e-6 / max(margin, 1e-9)))
    lo, hi = lo - margin * span, hi + margin * span
    return {"age_years": list(AGE_RANGE), "margin": margin,
            "rule": f"per input: training min/max widened by {margin:.0%} of the training span on each side; "
                    f"age: the simulated ages",
            "feature_ranges": {n: [round(float(a), 6), round(float(b), 6)] for n, a, b in zip(names, lo, hi)}}


def in_domain_share(X: np.ndarray, dom: dict, names: list[str]) -> float:
    lo = np.array([dom["feature_ranges"][n][0] for n in names])
    hi = np.array([dom["feature_ranges"][n][1] for n in names])
    inside = np.all(~np.isfinite(X) | ((X >= lo) & (X <= hi)), axis=1) & np.all(np.isfinite(X), axis=1)
    return round(float(inside.mean()), 4) if len(X) else float("nan")


def standardise(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(X), (X - mean) / std, 0.0)


def train_mlp(Z: np.ndarray, y: np.ndarray, seed: int = 0, epochs: int = EPOCHS, hidden: list[int] = HIDDEN,
              dropout: float = DROPOUT, lr: float = LR, weight_decay: float = WEIGHT_DECAY,
              batch: int = 64) -> MLP:
    """Mini-batch Adam on standardised inputs; deterministic for a given seed (one CPU thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        net = MLP([Z.shape[1], *hidden, 1], dropout)
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
        Xt = torch.as_tensor(Z, dtype=torch.float32)
        yt = torch.as_tensor(y, dtype=torch.float32)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        net.train()
        for _ in range(epochs):
            order = torch.randperm(len(Xt), generator=gen)
            for i in range(0, len(Xt), batch):
                idx = order[i:i + batch]
                opt.zero_grad()
                loss = loss_fn(net(Xt[idx]), yt[idx])
                loss.backward()
                opt.step()
        net.eval()
        return net
    finally:
        torch.set_num_threads(threads)


def probabilities(net: MLP, Z: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(net(torch.as_tensor(Z, dtype=torch.float32))).double().numpy()


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U, ties counted half)."""
    pos, neg = p[y == 1], p[y == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict:
    pred = p >= threshold
    tp, tn = int((pred & (y == 1)).sum()), int((~pred & (y == 0)).sum())
    fp, fn = int((pred & (y == 0)).sum()), int((~pred & (y == 1)).sum())
    return {"n": len(y), "positives": int((y == 1).sum()), "threshold": threshold,
            "accuracy": round((tp + tn) / len(y), 4), "roc_auc": round(roc_auc(y, p), 4),
            "sensitivity": round(tp / (tp + fn), 4) if tp + fn else None,
            "specificity": round(tn / (tn + fp), 4) if tn + fp else None,
            "brier": round(float(np.mean((p - y) ** 2)), 4), "confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn}}


def checkpoint(net: MLP, mean: np.ndarray, std: np.ndarray, names: list[str], dropout: float) -> dict:
    layers = [m.in_features for m in net.net if isinstance(m, torch.nn.Linear)] + [1]
    return {"format": CHECKPOINT_FORMAT, "layers": layers, "dropout": dropout,
            "state_dict": {k: v.detach().clone() for k, v in net.state_dict().items()},
            "feature_names": list(names), "scaler_mean": torch.as_tensor(mean, dtype=torch.float64),
            "scaler_std": torch.as_tensor(std, dtype=torch.float64)}


def train_reference(out_dir: str | os.PathLike, walkers: int = WALKERS, seed: int = 0, workers: int = 2,
                    epochs: int = EPOCHS, command: str | None = None, log=print) -> dict:
    """Build the synthetic data set, train, evaluate on held-out walkers, write model.pt and model_card.json."""
    t0 = time.time()
    ds = build_dataset(walkers, seed, workers)
    t_data = time.time() - t0
    train, test = split(ds)
    mean, std = scaler(ds.X[train])
    Ztr, Zte = standardise(ds.X[train], mean, std), standardise(ds.X[test], mean, std)
    net = train_mlp(Ztr, ds.y[train], seed=seed, epochs=epochs)
    t_train = time.time() - t0 - t_data
    held = metrics(ds.y[test], probabilities(net, Zte))
    dom = domain(ds.X[train], features.FEATURE_NAMES)
    held["in_domain_and_complete_share"] = in_domain_share(ds.X[test], dom, features.FEATURE_NAMES)
    fit = metrics(ds.y[train], probabilities(net, Ztr))
    log(f"data: {len(ds.y)} walkers in {t_data:.1f} s ({len(ds.failed)} failed); train {t_train:.1f} s; "
        f"held-out accuracy {held['accuracy']}, AUC {held['roc_auc']}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / "model.pt"
    tmp = model_path.with_name(".model.pt.partial")
    torch.save(checkpoint(net, mean, std, features.FEATURE_NAMES, DROPOUT), tmp)
    os.replace(tmp, model_path)
    card = {
        "name": NAME, "version": VERSION,
        "sha256": sha256_file(model_path),
        "clinically_validated": False,
        "trained_on": TRAINED_ON,
        "intended_use": "exercising the iGait pipeline end to end and standing in until a model trained on "
                        "labelled clinical data replaces it in the model store; not for screening children",
        "limitations": [
            "Trained and evaluated only on simulated walkers; the class differences were chosen by the developers "
            "along directions mentioned in ASD gait literature, with invented magnitudes.",
            "Metrics below are on held-out simulated walkers from the same simulator: they measure how well the "
            "model separates the simulator's two classes, not how it performs on children.",
            "Patient metadata (age, sex, height, weight) is distributed identically in both simulated classes.",
        ],
        "simulation": {
            "module": "igait_pipeline.reference_model.synthetic",
            "class_parameters": {str(k): v for k, v in synthetic.CLASS_PARAMS.items()},
            "labels": {"0": "TD-like (simulated)", "1": "ASD-like (simulated)"},
        },
        "architecture": {"type": "MLP", "layers": [len(features.FEATURE_NAMES), *HIDDEN, 1], "activation": "relu",
                         "dropout": DROPOUT, "output": "sigmoid(logit) = score of the ASD-like class",
                         "input_scaling": "z-score with training mean/SD stored in model.pt; missing values "
                                          "-> training mean"},
        "training": {"walkers": walkers, "seed": seed, "epochs": epochs, "optimizer": "Adam", "lr": LR,
                     "weight_decay": WEIGHT_DECAY, "batch": 64, "torch": torch.__version__,
                     "numpy": np.__version__, "python": sys.version.split()[0],
                     "train_walkers": int(train.sum()), "held_out_walkers": int(test.sum()),
                     "walkers_failed_in_pipeline": len(ds.failed),
                     "failure_examples": [why for _, why in ds.failed[:5]]},
        "metrics": {"held_out_synthetic": held, "training_synthetic": fit},
        "threshold": 0.5,
        "domain": dom,
        "feature_names": list(features.FEATURE_NAMES),
        "n_features": len(features.FEATURE_NAMES),
        "training_command": command or f"python scripts/train_reference_model.py --walkers {walkers} "
                                       f"--seed {seed} --epochs {epochs}",
    }
    tmp = out / ".model_card.json.partial"
    tmp.write_text(json.dumps(card, indent=1) + "\n")
    os.replace(tmp, out / "model_card.json")
    return card
