"""``[avgpool]``."""

from __future__ import annotations

import torch

from ..base import DarknetLayer, register


@register("avgpool")
class Avgpool(DarknetLayer):
    """``[avgpool]``: global mean per channel, output ``(N, C, 1, 1)``."""

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        return self.image(x).mean(dim=(2, 3), keepdim=True)
