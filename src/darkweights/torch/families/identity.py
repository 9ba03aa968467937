"""Layers that are the identity at inference: ``[dropout]``, ``[empty]``, ``[cost]``, ``[contrastive]``."""

from __future__ import annotations

import torch

from ..base import DarknetLayer, register


@register("dropout", "empty", "cost", "contrastive")
class Identity(DarknetLayer):
    """Layers that are the identity at inference (their buffer is the previous layer's)."""

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        return x if tuple(x.shape[1:]) == self.natural_shape else x.reshape(x.shape[0], *self.natural_shape)
