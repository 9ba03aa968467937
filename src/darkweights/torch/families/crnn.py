"""``[crnn]``: the first forward call after parsing, from a zero state."""

from __future__ import annotations

import torch

from ...layers.recurrent import CRNN as CRNNLayer
from ..base import BuildContext, DarknetLayer, register
from ..convunit import ConvUnit, sub_layer_options


@register("crnn")
class CRNN(DarknetLayer):
    """``[crnn]``: ``[rnn]`` with convolutional sub-layers (conv-path activation, own BN)."""

    def __init__(self, layer: CRNNLayer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        if layer.xnor:
            raise layer.unsupported("xnor=1 sub-layers are not supported")
        a = ctx.arrays(layer)
        common = sub_layer_options(layer)
        c, hidden = layer.input.c, layer.hidden
        self.input_layer = ConvUnit(layer, ctx, a, prefix="input_layer.", filters=hidden, channels=c, **common)
        self.self_layer = ConvUnit(layer, ctx, a, prefix="self_layer.", filters=hidden, channels=hidden, **common)
        self.output_layer = ConvUnit(
            layer, ctx, a, prefix="output_layer.", filters=layer.outputs, channels=hidden, **common
        )
        self.hidden = hidden
        self.swapped = layer.swapped

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        x = self.image(x)
        if self.swapped:  # pjreddie: the same buffer read as C x W x H (see the catalogue's CRNN)
            x = x.reshape(x.shape[0], x.shape[1], x.shape[3], x.shape[2])
        n, _, h, w = x.shape
        state0 = x.new_zeros(n, self.hidden, h, w)
        state = self.input_layer(x) + self.self_layer(state0)
        return self.output_layer(state)
