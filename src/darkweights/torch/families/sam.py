"""``[sam]``."""

from __future__ import annotations

import torch

from ..base import register
from .scale_channels import ScaleChannels


@register("sam")
class Sam(ScaleChannels):
    """``[sam]``: element-wise product of the input and ``from``'s map."""

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        f = self.image(outs[self.reads[0]], self.src_shape)
        return self.act(self.image(x, self.src_shape) * f)
