"""Recurrent layers: rnn, gru, lstm (connected sub-layers), crnn, conv_lstm (conv sub-layers).

Sub-layer arrays are named ``<sub>.<array>`` with AlexeyAB's sub-layer names in every
dialect; only the file order differs between forks (§2.6–2.10).
"""

from __future__ import annotations

from ..cfg import Options
from .base import (
    AB,
    ALL_FORKS,
    GIGA,
    PJ,
    ArraySpec,
    Layer,
    Shape,
    cdiv,
    connected_specs,
    conv_specs,
    f32,
    read_kernel,
    read_padding,
    register,
)
from .builder import Builder
from .conv import conv_bflops


@register
class RNN(Layer):
    """``[rnn]``: input, self and output connected layers."""

    type = "rnn"
    headers = ("rnn",)
    forks = ALL_FORKS
    unread = {PJ: frozenset({"hidden", "logistic"})}

    def parse(self, opts: Options, builder: Builder) -> None:
        self.outputs = opts.int("output", 1)
        # pjreddie has no hidden= (the hidden state is as wide as the output)
        self.hidden = opts.int("hidden", 1) if opts.reads("hidden") else self.outputs
        self.activation = builder.activation(opts, "logistic", self)
        self.batch_normalize = opts.int("batch_normalize", 0)
        self.logistic = opts.int("logistic", 0)
        self.shortcut = opts.int("shortcut", 0)
        flat = self.dialect.recurrent_flat_output
        self.output = Shape.flat(self.outputs) if flat else Shape(self.outputs, 1, 1, self.outputs)

    def arrays(self) -> list[ArraySpec]:
        bn = bool(self.batch_normalize)
        return (
            connected_specs("input_layer.", self.input.size, self.hidden, bn)
            + connected_specs("self_layer.", self.hidden, self.hidden, bn)
            + connected_specs("output_layer.", self.hidden, self.outputs, bn)
        )


@register
class GRU(Layer):
    """``[gru]``: six connected layers; AB stores input gates first, pjreddie state gates first."""

    type = "gru"
    headers = ("gru",)
    forks = frozenset({PJ, AB})
    unread = {AB: frozenset({"tanh"})}
    tanh = 0

    def parse(self, opts: Options, builder: Builder) -> None:
        self.outputs = opts.int("output", 1)
        self.batch_normalize = opts.int("batch_normalize", 0)
        self.tanh = opts.int("tanh", 0)  # pjreddie's option
        self.output = Shape.flat(self.outputs)

    def arrays(self) -> list[ArraySpec]:
        bn, i, o = bool(self.batch_normalize), self.input.size, self.outputs
        inp = {g: connected_specs(f"input_{g}_layer.", i, o, bn) for g in "zrh"}
        state = {g: connected_specs(f"state_{g}_layer.", o, o, bn) for g in "zrh"}
        first, second = (state, inp) if self.dialect.gru_state_gates_first else (inp, state)
        return [s for g in "zrh" for s in first[g]] + [s for g in "zrh" for s in second[g]]


@register
class LSTM(Layer):
    """``[lstm]``: eight connected layers ``w*`` (recurrent) then ``u*`` (input)."""

    type = "lstm"
    headers = ("lstm",)
    forks = ALL_FORKS

    def parse(self, opts: Options, builder: Builder) -> None:
        self.outputs = opts.int("output", 1)
        self.batch_normalize = opts.int("batch_normalize", 0)
        flat = self.dialect.recurrent_flat_output
        self.output = Shape.flat(self.outputs) if flat else Shape(self.outputs, 1, 1, self.outputs)

    def arrays(self) -> list[ArraySpec]:
        bn, i, o = bool(self.batch_normalize), self.input.size, self.outputs
        order = self.dialect.lstm_gate_order
        return [s for g in order for s in connected_specs(f"w{g}.", o, o, bn)] + [
            s for g in order for s in connected_specs(f"u{g}.", i, o, bn)
        ]


def _conv_out(size: int, pad: int, k: int, stride: int) -> int:
    return cdiv(size + 2 * pad - k, stride) + 1


class _ConvRecurrent(Layer):
    """Shared option reading, geometry and BFLOPs of the recurrent layers built from convolutions."""

    def read_conv_options(self, opts: Options) -> None:
        self.size = read_kernel(opts, 3)
        self.stride_x = self.stride_y = opts.int("stride", 1)
        self.dilation = opts.int("dilation", 1)
        self.padding = read_padding(opts, self.size)
        self.outputs = opts.int("output", 1)
        self.xnor = opts.int("xnor", 0)
        self.groups = 1 if self.xnor else max(opts.int("groups", 1), 1)

    def conv_output(self) -> tuple[int, int]:
        self.need_image()
        _, h, w = self.input.chw
        out_h = _conv_out(h, self.padding, self.size, self.stride_y)
        out_w = _conv_out(w, self.padding, self.size, self.stride_x)
        if out_h < 1 or out_w < 1:
            raise self.shape_error("kernel leaves no output")
        return out_h, out_w

    def bflops(self) -> float:
        """The sub-convolutions' float counts summed in float (AlexeyAB prints their lines, not the layer's)."""
        total = 0.0
        for spec in self.arrays():
            if spec.role == "weights":
                total = f32(total + conv_bflops(spec.count, self.output.h, self.output.w, bool(self.xnor)))
        return total


@register
class CRNN(_ConvRecurrent):
    """``[crnn]``: input, self and output convolutional layers (§2.9)."""

    type = "crnn"
    headers = ("crnn",)
    forks = ALL_FORKS

    def parse(self, opts: Options, builder: Builder) -> None:
        self.swapped = self.dialect.crnn_fixed_3x3_swapped
        if self.swapped:
            self.outputs = opts.int("output_filters", 1)
            self.hidden = opts.int("hidden_filters", 1)
            self.size, self.dilation, self.padding, self.groups, self.xnor = 3, 1, 1, 1, 0
            self.stride_x = self.stride_y = 1
        else:
            self.read_conv_options(opts)
            self.hidden = opts.int("hidden", 1)
        self.activation = builder.activation(opts, "logistic", self)
        self.batch_normalize = opts.int("batch_normalize", 0)
        self.shortcut = opts.int("shortcut", 0)
        out_h, out_w = self.conv_output()
        if (out_h, out_w) != (self.input.h, self.input.w):
            raise self.shape_error(
                f"[crnn] needs a size-preserving kernel (size {self.size}, padding "
                f"{self.padding}, stride {self.stride_x} gives {out_h}x{out_w})"
            )
        # pjreddie's parse_crnn passes (w, h) to make_crnn_layer(batch, h, w, ...): its convolutions read
        # the C x H x W buffer as C x W x H, and the layer reports W x H to the next one
        self.output = (
            Shape.image(self.outputs, out_w, out_h) if self.swapped else Shape.image(self.outputs, out_h, out_w)
        )

    def arrays(self) -> list[ArraySpec]:
        bn, g, k = bool(self.batch_normalize), self.groups, self.size
        return (
            conv_specs("input_layer.", self.hidden, self.input.c // g, k, bn)
            + conv_specs("self_layer.", self.hidden, self.hidden // g, k, bn)
            + conv_specs("output_layer.", self.outputs, self.hidden // g, k, bn)
        )


@register
class ConvLSTM(_ConvRecurrent):
    """AB ``[conv_lstm]``: LSTM with convolutional gates (§2.10)."""

    type = "conv_lstm"
    headers = ("conv_lstm",)
    forks = frozenset({AB})
    training_options = ("state_constrain", "time_normalizer")

    def parse(self, opts: Options, builder: Builder) -> None:
        self.read_conv_options(opts)
        self.activation = builder.activation(opts, "linear", self)
        self.batch_normalize = opts.int("batch_normalize", 0)
        self.peephole = opts.int("peephole", 0)
        self.bottleneck = opts.int("bottleneck", 0)
        self.shortcut = opts.int("shortcut", 0)
        self.lstm_activation = opts.str("lstm_activation", "tanh")
        out_h, out_w = self.conv_output()
        self.output = Shape.image(self.outputs, out_h, out_w)

    def bflops(self) -> float:
        # the gate convolutions (the peephole ones only with peephole=1), then 9 or 12 flops per output
        extra = (12 if self.peephole else 9) * self.output.size / GIGA
        return f32(super().bflops() + extra)

    def arrays(self) -> list[ArraySpec]:
        bn, g, k, o = bool(self.batch_normalize), self.groups, self.size, self.outputs
        specs: list[ArraySpec] = []
        if self.peephole:
            for name in ("vf", "vi", "vo"):
                specs += conv_specs(f"{name}.", o, o // g, k, bn)
        specs += conv_specs("wf.", o, (2 * o if self.bottleneck else o) // g, k, bn)
        if not self.bottleneck:
            for name in ("wi", "wg", "wo"):
                specs += conv_specs(f"{name}.", o, o // g, k, bn)
        for name in ("uf", "ui", "ug", "uo"):
            specs += conv_specs(f"{name}.", o, self.input.c // g, k, bn)
        return specs
