"""pjreddie ``[l2norm]``."""

from __future__ import annotations

import torch

from ..base import DarknetLayer, register


@register("l2norm")
class L2norm(DarknetLayer):
    """pjreddie ``[l2norm]``: per pixel ``x / sqrt(sum_c x^2)`` (no epsilon)."""

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        x = self.image(x)
        return x / x.pow(2).sum(dim=1, keepdim=True).sqrt()
