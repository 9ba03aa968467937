"""Recurrent layers (darknet-format.md §5.15): the first forward call after parsing, i.e. every
hidden/cell state zero and ``time_steps=1`` (what the ``synth_recurrent`` fixture records).

Darknet keeps the state between ``network_predict`` calls; these modules are stateless and always
start from zero, so a sequence has to be fed as separate networks' first calls to match Darknet.
The sub-layers are complete connected/convolutional layers (own bias or BN, own activation), so
``W*0`` still contributes ``act(BN(0))``.
"""

from __future__ import annotations

import torch

from ..layers import Layer
from .base import BuildContext, DarknetLayer, register, unsupported
from .layers import ConvUnit, FCUnit


@register("rnn")
class RNN(DarknetLayer):
    """``[rnn]``: ``s = act(W_in x) + act_self(W_self s0) (+ s0 if shortcut)``, ``y = act(W_out s)``."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
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


@register("gru")
class GRU(DarknetLayer):
    """``[gru]``: ``z = sig(U_z x + W_z h)``, ``r = sig(U_r x + W_r h)``, ``h~ = f(U_h x + W_h (r*h))``,
    ``y = z*h + (1-z)*h~`` with ``h = 0``; ``f`` = logistic (AB; pjreddie: tanh if ``tanh=1``)."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
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


@register("lstm")
class LSTM(DarknetLayer):
    """``[lstm]``: ``f, i, o = sig(W h + U x)``, ``g = tanh(W_g h + U_g x)``, ``c = f*c0 + i*g``,
    ``y = o*tanh(c)``, with ``h = c0 = 0``."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
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


@register("crnn")
class CRNN(DarknetLayer):
    """``[crnn]``: ``[rnn]`` with convolutional sub-layers (conv-path activation, own BN)."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        if layer.xnor:
            raise unsupported(layer, "xnor=1 sub-layers are not supported", ctx.net)
        a = ctx.arrays(layer)
        common = dict(
            size=layer.size,
            stride_x=layer.stride,
            stride_y=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            groups=layer.groups,
            batch_normalize=bool(layer.batch_normalize),
            activation=layer.activation,
            fuse=False,
        )
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


@register("conv_lstm")
class ConvLSTM(DarknetLayer):
    """AB ``[conv_lstm]`` as ``forward_conv_lstm_layer`` runs it on the CPU, first call (``h = c = 0``):
    ``f = sig(W_f h + U_f x [+ V_f c])``, ``i = sig(W_i h + U_i x [+ V_i c])``, ``g = tanh(W_g h + U_g x)``,
    ``c' = f*c + i*g``, ``o = sig(W_o h + U_o x [+ V_o c'])``, ``y = o*tanh(c')`` (``[...]`` with
    ``peephole=1``). Every gate is a complete convolutional layer with the section's activation and BN.
    The CPU path uses tanh whatever ``lstm_activation`` says (only the GPU kernels read it)."""

    def __init__(self, layer: Layer, ctx: BuildContext) -> None:
        super().__init__(layer, ctx)
        if layer.xnor:
            raise unsupported(layer, "xnor=1 sub-layers are not supported", ctx.net)
        if layer.bottleneck:
            raise unsupported(
                layer,
                "bottleneck=1: Darknet's CPU forward asserts on it (the W convolution reads "
                "twice the channels); only its GPU path runs it",
                ctx.net,
            )
        if (layer.output.h, layer.output.w) != (layer.input.h, layer.input.w):
            raise unsupported(
                layer,
                f"the gates' output {layer.output.h}x{layer.output.w} differs from the input "
                f"{layer.input.h}x{layer.input.w}: Darknet's W/V convolutions read the state at the "
                "input geometry",
                ctx.net,
            )
        a = ctx.arrays(layer)
        common = dict(
            size=layer.size,
            stride_x=layer.stride,
            stride_y=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            groups=layer.groups,
            batch_normalize=bool(layer.batch_normalize),
            activation=layer.activation,
            fuse=False,
        )
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
