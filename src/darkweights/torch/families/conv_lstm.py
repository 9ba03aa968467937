"""AB ``[conv_lstm]``: the first forward call after parsing, from a zero state."""

from __future__ import annotations

import torch

from ...layers.recurrent import ConvLSTM as ConvLSTMLayer
from ..base import BuildContext, DarknetLayer, register
from ..convunit import ConvUnit, sub_layer_options


@register("conv_lstm")
class ConvLSTM(DarknetLayer):
    """AB ``[conv_lstm]`` as ``forward_conv_lstm_layer`` runs it on the CPU, first call (``h = c = 0``):
    ``f = sig(W_f h + U_f x [+ V_f c])``, ``i = sig(W_i h + U_i x [+ V_i c])``, ``g = tanh(W_g h + U_g x)``,
    ``c' = f*c + i*g``, ``o = sig(W_o h + U_o x [+ V_o c'])``, ``y = o*tanh(c')`` (``[...]`` with
    ``peephole=1``). Every gate is a complete convolutional layer with the section's activation and BN.
    The CPU path uses tanh whatever ``lstm_activation`` says (only the GPU kernels read it)."""

    vf: ConvUnit
    vi: ConvUnit
    vo: ConvUnit
    wf: ConvUnit
    wi: ConvUnit
    wg: ConvUnit
    wo: ConvUnit
    uf: ConvUnit
    ui: ConvUnit
    ug: ConvUnit
    uo: ConvUnit

    def __init__(self, layer: ConvLSTMLayer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        if layer.xnor:
            raise layer.unsupported("xnor=1 sub-layers are not supported")
        if layer.bottleneck:
            raise layer.unsupported(
                "bottleneck=1: Darknet's CPU forward asserts on it (the W convolution reads "
                "twice the channels); only its GPU path runs it"
            )
        if (layer.output.h, layer.output.w) != (layer.input.h, layer.input.w):
            raise layer.unsupported(
                f"the gates' output {layer.output.h}x{layer.output.w} differs from the input "
                f"{layer.input.h}x{layer.input.w}: Darknet's W/V convolutions read the state at the "
                "input geometry"
            )
        a = ctx.arrays(layer)
        common = sub_layer_options(layer)
        o, c = layer.outputs, layer.input.c
        self.peephole = bool(layer.peephole)
        for name in (("vf", "vi", "vo") if self.peephole else ()) + ("wf", "wi", "wg", "wo", "uf", "ui", "ug", "uo"):
            setattr(
                self,
                name,
                ConvUnit(layer, ctx, a, prefix=f"{name}.", filters=o, channels=c if name[0] == "u" else o, **common),
            )
        self.outputs = o

    def forward(self, x: torch.Tensor, outs: list) -> torch.Tensor:
        x = self.image(x)
        n, _, h, w = x.shape
        zero = x.new_zeros(n, self.outputs, h, w)  # hidden and cell state
        # sums in Darknet's order: W h, then + U x, then + V c
        f = self.wf(zero) + self.uf(x)
        i = self.wi(zero) + self.ui(x)
        if self.peephole:
            f = f + self.vf(zero)
            i = i + self.vi(zero)
        g = torch.tanh(self.wg(zero) + self.ug(x))
        c = torch.sigmoid(i) * g  # f * c0 adds exactly zero
        o = self.wo(zero) + self.uo(x)
        if self.peephole:
            o = o + self.vo(c)
        return torch.tanh(c) * torch.sigmoid(o)
