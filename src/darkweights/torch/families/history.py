"""AB ``[history]``."""

from __future__ import annotations

import torch

from ...layers import Layer
from ..base import BuildContext, DarknetLayer, register


@register("history")
class History(DarknetLayer):
    """AB ``[history]`` at inference: the input, then ``history_size - 1`` blocks of zeros.

    ``forward_history_layer`` with ``steps == 1`` (``time_steps=1``, how ``darknet detector test``
    parses) copies only ``l.inputs`` values into an output buffer that is ``history_size`` times
    larger and zero-initialised, and never shifts older inputs in."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        self.extra = layer.output.c - layer.input.c

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        x = self.image(x)
        n, _, h, w = x.shape
        return torch.cat([x, x.new_zeros(n, self.extra, h, w)], dim=1)
