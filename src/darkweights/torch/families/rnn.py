"""``[rnn]``: the first forward call after parsing (see :mod:`darkweights.torch.families`: recurrent
layers start from a zero state)."""

from __future__ import annotations

import torch

from ...layers.recurrent import RNN as RNNLayer
from ..base import BuildContext, DarknetLayer, register
from ..units import FCUnit


@register("rnn")
class RNN(DarknetLayer):
    """``[rnn]``: ``s = act(W_in x) + act_self(W_self s0) (+ s0 if shortcut)``, ``y = act(W_out s)``."""

    def __init__(self, layer: RNNLayer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        a = ctx.arrays(layer)
        self_act = {1: "logistic", 2: "loggy"}.get(layer.logistic, layer.activation)
        self.input_layer = FCUnit(layer, ctx, a, "input_layer.")
        self.self_layer = FCUnit(layer, ctx, a, "self_layer.", self_act)
        self.output_layer = FCUnit(layer, ctx, a, "output_layer.")
        self.hidden = layer.hidden

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        x = self.flat(x)
        state0 = x.new_zeros(x.shape[0], self.hidden)
        state = self.input_layer(x) + self.self_layer(state0)  # shortcut adds the zero state
        return self.shaped(self.output_layer(state))
