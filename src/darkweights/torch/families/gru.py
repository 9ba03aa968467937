"""``[gru]``: the first forward call after parsing, from a zero state."""

from __future__ import annotations

import torch

from ...layers.recurrent import GRU as GRULayer
from ..base import BuildContext, DarknetLayer, register
from ..units import FCUnit


@register("gru")
class GRU(DarknetLayer):
    """``[gru]``: ``z = sig(U_z x + W_z h)``, ``r = sig(U_r x + W_r h)``, ``h~ = f(U_h x + W_h (r*h))``,
    ``y = z*h + (1-z)*h~`` with ``h = 0``; ``f`` = logistic (AB; pjreddie: tanh if ``tanh=1``)."""

    input_z_layer: FCUnit
    input_r_layer: FCUnit
    input_h_layer: FCUnit
    state_z_layer: FCUnit
    state_r_layer: FCUnit
    state_h_layer: FCUnit

    def __init__(self, layer: GRULayer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        a = ctx.arrays(layer)
        for g in "zrh":
            setattr(self, f"input_{g}_layer", FCUnit(layer, ctx, a, f"input_{g}_layer.", "linear"))
            setattr(self, f"state_{g}_layer", FCUnit(layer, ctx, a, f"state_{g}_layer.", "linear"))
        self.tanh = bool(layer.tanh)
        self.outputs = layer.outputs

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        x = self.flat(x)
        h = x.new_zeros(x.shape[0], self.outputs)
        z = torch.sigmoid(self.input_z_layer(x) + self.state_z_layer(h))
        r = torch.sigmoid(self.input_r_layer(x) + self.state_r_layer(h))
        pre = self.input_h_layer(x) + self.state_h_layer(r * h)
        hh = torch.tanh(pre) if self.tanh else torch.sigmoid(pre)
        return self.shaped(z * h + (1 - z) * hh)
