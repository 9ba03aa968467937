"""``[lstm]``: the first forward call after parsing, from a zero state."""

from __future__ import annotations

import torch

from ...layers.recurrent import LSTM as LSTMLayer
from ..base import BuildContext, DarknetLayer, register
from ..units import FCUnit


@register("lstm")
class LSTM(DarknetLayer):
    """``[lstm]``: ``f, i, o = sig(W h + U x)``, ``g = tanh(W_g h + U_g x)``, ``c = f*c0 + i*g``,
    ``y = o*tanh(c)``, with ``h = c0 = 0``."""

    wf: FCUnit
    wi: FCUnit
    wg: FCUnit
    wo: FCUnit
    uf: FCUnit
    ui: FCUnit
    ug: FCUnit
    uo: FCUnit

    def __init__(self, layer: LSTMLayer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        a = ctx.arrays(layer)
        for g in "figo":
            setattr(self, f"w{g}", FCUnit(layer, ctx, a, f"w{g}.", "linear"))
            setattr(self, f"u{g}", FCUnit(layer, ctx, a, f"u{g}.", "linear"))
        self.outputs = layer.outputs

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        x = self.flat(x)
        h = x.new_zeros(x.shape[0], self.outputs)
        c0 = torch.zeros_like(h)
        f = torch.sigmoid(self.wf(h) + self.uf(x))
        i = torch.sigmoid(self.wi(h) + self.ui(x))
        g = torch.tanh(self.wg(h) + self.ug(x))
        o = torch.sigmoid(self.wo(h) + self.uo(x))
        c = f * c0 + i * g
        return self.shaped(o * torch.tanh(c))
