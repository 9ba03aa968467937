"""pjreddie ``[logistic]``."""

from __future__ import annotations

import torch

from ..base import DarknetLayer, register


@register("logistic")
class Logistic(DarknetLayer):
    """pjreddie ``[logistic]``: sigmoid."""

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        return torch.sigmoid(x)
