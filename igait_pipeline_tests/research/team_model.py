"""A model "trained elsewhere": another simulated cohort (other children), a candidate trained on it and exported as
TorchScript taking raw inputs, with its card — what a team brings to `igait model import DIR`."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from igait_pipeline.research import cohort, labels, table, training
from igait_pipeline.stages.predict import TORCHSCRIPT_FORMAT, sha256_file
from igait_pipeline.storage import LocalStorage


def export_team_model(work: Path, name: str = "team-net", version: str = "2.1.0",
                      settings: cohort.CohortSettings | None = None) -> Path:
    """Train on a cohort written under work/elsewhere and write work/{name}/model.pt + model_card.json."""
    other = settings or cohort.CohortSettings(participants_per_class=6, jobs_per_participant=1, overlay_width=0,
                                              seed=7)
    elsewhere = LocalStorage(work / "elsewhere")
    ojobs = cohort.write_cohort(elsewhere, other)
    cohort.write_stage5(elsewhere, ojobs)
    otab, _ = table.build_rows(table.finished_jobs(elsewhere), lambda job, what: elsewhere.read_bytes(
        f"jobs/{job}/stage_5/cycles.json" if what == "cycles" else f"jobs/{job}/stage_0/metadata.json"))
    otab = table.with_labels(otab, labels.parse_labels(cohort.cohort_labels(ojobs, other)))
    cand = training.train_candidate(otab, name, training.TrainSettings(folds=3, bootstrap=50))
    ck = cand.checkpoint

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", ck["scaler_mean"].float())
            self.register_buffer("std", ck["scaler_std"].float())
            self.register_buffer("coef", ck["coef"].float())
            self.register_buffer("b", ck["intercept"].float())

        def forward(self, x):
            return torch.sigmoid(((x - self.mean) / self.std) @ self.coef + self.b)

    src = work / name
    src.mkdir(parents=True)
    torch.jit.save(torch.jit.script(Net()), str(src / "model.pt"))
    card = {k: cand.card[k] for k in ("clinically_validated", "intended_use", "domain", "feature_names", "threshold")}
    card.update(name=name, version=version, format=TORCHSCRIPT_FORMAT, sha256=sha256_file(src / "model.pt"),
                trained_on="the team's own cohort (simulated here)", training={"rows": len(otab)},
                metrics={"reported": "by its authors"})
    (src / "model_card.json").write_text(json.dumps(card))
    return src
