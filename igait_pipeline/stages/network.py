"""The network the reference model uses (torch). Imported only where a model is built or trained, so that loading
the code location does not import torch."""
from __future__ import annotations

import torch
from torch import nn

from igait_pipeline.stages.predict import ModelError


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
