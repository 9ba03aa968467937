"""Weight-bearing layers: convolutional, deconvolutional, local, connected, batchnorm."""

from __future__ import annotations

import warnings

from ..cfg import Options
from ..errors import DarkweightsWarning, ShapeError
from . import names
from .base import (
    AB,
    ALL_FORKS,
    GIGA,
    HK,
    PJ,
    ArraySpec,
    Cells,
    Layer,
    Shape,
    bn_specs,
    cdiv,
    connected_specs,
    conv_specs,
    f32,
    i32,
    read_kernel,
    read_padding,
    register,
    window_size,
)
from .builder import Builder

NO_SHARE = -1000000000  # AB's sentinel for "share_index absent"


def conv_bflops(nweights: int, out_h: int, out_w: int, xnor: bool = False) -> float:
    """``l.bflops = (2.0 * l.nweights * l.out_h*l.out_w) / 1e9``: double arithmetic (2.0 first), xnor / 32."""
    v = 2.0 * i32(nweights) * out_h * out_w / GIGA
    return f32(v / 32 if xnor else v)


def blur_geometry(mode: int, out: Shape, stride_x: int, stride_y: int) -> tuple[int, int, Shape]:
    """The internal antialiasing blur (§2.1.6: never stored, carries the stride): size, padding, output."""
    bs, bp = (2, 0) if mode == 2 else (3, 1)
    bw = cdiv(out.w + 2 * bp - bs, stride_x) + 1
    bh = cdiv(out.h + 2 * bp - bs, stride_y) + 1
    return bs, bp, Shape.image(out.c, bh, bw)


@register
class Convolutional(Layer):
    """``[convolutional]`` (AB ``parse_convolutional``, ``make_convolutional_layer``)."""

    type = "convolutional"
    headers = ("convolutional", "conv")
    forks = ALL_FORKS
    unread = {
        PJ: frozenset({"stride_x", "stride_y", "dilation", "antialiasing", "cbn", "share_index"}),
        AB: frozenset({"numload"}),
        HK: frozenset({"numload"}),
    }
    short_name = "conv"
    node_color = "#dbeafe"
    shows_filters = True
    xnor = binary = bin_output = flipped = numload = 0
    training_options = (
        "dot",
        "angle",
        "grad_centr",
        "reverse",
        "sway",
        "rotate",
        "stretch",
        "stretch_sway",
        "assisted_excitation",
        "coordconv",
        "stream",
        "wait_stream",
    )

    def parse(self, opts: Options, builder: Builder) -> None:
        self.filters = opts.int("filters", 1)
        groups = opts.int("groups", 1)
        self.size = read_kernel(opts, 1)
        stride = opts.int("stride", 1)
        sx, sy = opts.int("stride_x", -1), opts.int("stride_y", -1)  # AlexeyAB's options
        self.stride_x = sx if sx >= 1 else stride
        self.stride_y = sy if sy >= 1 else stride
        self.dilation = opts.int("dilation", 1)
        self.antialiasing = opts.int("antialiasing", 0)
        if self.size == 1:
            self.dilation = 1
        self.padding = read_padding(opts, self.size)
        self.activation = builder.activation(opts, "logistic", self)
        self.batch_normalize = opts.int("batch_normalize", 0)
        if opts.int("cbn", 0):
            self.batch_normalize = 2  # cross-iteration BN: training only, same storage
        # binary=1 binarizes the weights only in Darknet's GPU forward: forward_convolutional_layer (every fork's
        # CPU path) computes with the real weights (see darkweights.torch.convolutional)
        self.binary = opts.int("binary", 0)
        self.xnor = opts.int("xnor", 0)
        self.bin_output = opts.int("bin_output", 0)
        self.use_bin_output = bool(self.bin_output)
        self.flipped = opts.int("flipped", 0)
        self.share_index: int | None = None
        share = opts.int("share_index", NO_SHARE)
        if share != NO_SHARE:
            self.share_index = builder.resolve(share, self.index, opts, "share_index")
        self.numload = opts.int("numload", 0)  # pjreddie's partial load
        if not 0 <= self.numload <= self.filters:
            raise opts.error(
                f"numload={self.numload} must be between 0 and filters={self.filters}: "
                "Darknet would read past the layer's arrays",
                self.section.find("numload"),
                ShapeError,
            )
        if self.dialect.xnor_forces_groups_1:
            self.groups = 1 if self.xnor else max(groups, 1)
        else:
            self.groups = groups
        self.need_image()
        c, h, w = self.input.chw
        if self.groups < 1:
            raise self.shape_error(f"groups={self.groups} must be >= 1")
        if self.stride_x < 1 or self.stride_y < 1:
            raise self.shape_error(f"stride {self.stride_x}x{self.stride_y} must be >= 1")
        if c % self.groups or self.filters % self.groups:
            warnings.warn(
                f"{builder.path}:{self.line}: layer {self.index}: groups={self.groups} does not divide "
                f"channels={c} and filters={self.filters}; Darknet truncates the counts",
                DarkweightsWarning,
                stacklevel=2,
            )
            self.unbuildable = (
                f"groups={self.groups} does not divide channels={c} and filters={self.filters}: Darknet's "
                "truncated group counts have no PyTorch convolution"
            )
        if self.dilation > 1 and 2 * self.padding != self.size - 1:
            raise self.shape_error(
                f"dilation={self.dilation} needs an odd kernel with pad=1 (size={self.size}, "
                f"padding={self.padding}): Darknet's buffer sizes would not match"
            )
        sx, sy = (1, 1) if self.antialiasing else (self.stride_x, self.stride_y)
        out_w = cdiv(w + 2 * self.padding - self.size, sx) + 1
        out_h = cdiv(h + 2 * self.padding - self.size, sy) + 1
        if out_w < 1 or out_h < 1:
            raise self.shape_error(
                f"kernel {self.size} with padding {self.padding} and stride {sx}x{sy} leaves no "
                f"output ({out_h}x{out_w})"
            )
        self.output = Shape.image(self.filters, out_h, out_w)
        self.blur = (
            blur_geometry(self.antialiasing, self.output, self.stride_x, self.stride_y) if self.antialiasing else None
        )
        if self.share_index is not None:
            self._check_share(builder)

    def _check_share(self, builder: Builder) -> None:
        assert self.share_index is not None
        target = builder.layers[self.share_index] if 0 <= self.share_index < len(builder.layers) else None
        if not isinstance(target, Convolutional) or target.share_index is not None:
            raise self.shape_error(
                f"share_index points to layer {self.share_index}, which is not an "
                "already-parsed, non-shared [convolutional] layer"
            )
        if (target.size, target.input.c, target.filters, target.groups) != (
            self.size,
            self.input.c,
            self.filters,
            self.groups,
        ):
            raise self.shape_error(
                f"share_index={self.share_index}: size, channels, filters or groups differ from "
                f"that layer's ({target.size}, {target.input.c}, {target.filters}, {target.groups})"
            )
        if self.batch_normalize and not target.batch_normalize:
            raise self.shape_error(
                f"share_index={self.share_index}: this layer has batch_normalize but the shared "
                "layer does not (Darknet would dereference missing BN arrays)"
            )

    @property
    def next_input(self) -> Shape:
        return self.blur[2] if self.blur else self.output

    def arrays(self) -> list[ArraySpec]:
        if self.share_index is not None:
            return []  # aliases the arrays of layer share_index; neither read nor written
        c_per_group = self.input.c // self.groups
        specs = conv_specs("", self.filters, c_per_group, self.size, bool(self.batch_normalize))
        numload = self.numload
        if numload:
            # pjreddie numload=K: the loader reads K-filter arrays; the saver writes all of them
            part = conv_specs("", numload, c_per_group, self.size, bool(self.batch_normalize))
            return [s._replace(on_load=False) for s in specs] + [
                s._replace(name="numload_" + s.name, torch="", on_save=False) for s in part
            ]
        return specs

    def bflops(self) -> float:
        nweights = i32((self.input.c // self.groups) * self.filters * self.size * self.size)
        return conv_bflops(nweights, self.output.h, self.output.w, bool(self.xnor))

    def params_per_channel(self) -> int | None:
        if self.share_index is not None:
            return None
        return self.input.c // self.groups * self.size**2 + 1 + (3 if self.batch_normalize else 0)

    def _options(self) -> list[str]:
        extras = [
            f"g{self.groups}" if self.groups > 1 else "",
            f"d{self.dilation}" if self.dilation > 1 else "",
            "bn" if self.batch_normalize else "",
            "xnor" if self.xnor else "",
            f"aa{self.antialiasing}" if self.antialiasing else "",
            f"share={self.share_index}" if self.share_index is not None else "",
            self.activation or "",
        ]
        return [e for e in extras if e]

    def cells(self) -> Cells:
        short = self.short_name + ("X" if self.xnor else "S" if self.share_index is not None else "")
        filters = f"{self.filters}/{self.groups}" if self.groups > 1 else str(self.filters)
        size = window_size(self.size, self.stride_x, self.stride_y, self.dilation)
        return Cells(short, filters, size, " ".join(self._options()))

    def describe(self) -> str:
        s = f"{self.filters} {self.size}x{self.size}/{self.stride_x}"
        if self.stride_y != self.stride_x:
            s += f"x{self.stride_y}"
        return " ".join([s, *self._options()])


@register
class Deconvolutional(Layer):
    """pjreddie's ``[deconvolutional]``: weights ``[c][n][k][k]`` (= ConvTranspose2d)."""

    type = "deconvolutional"
    headers = ("deconvolutional", "deconv")
    forks = frozenset({PJ})
    short_name = "deconv"

    def parse(self, opts: Options, builder: Builder) -> None:
        self.filters = opts.int("filters", 1)
        self.size = opts.int("size", 1)
        self.stride_x = self.stride_y = opts.int("stride", 1)
        self.padding = read_padding(opts, self.size)
        self.activation = builder.activation(opts, "logistic", self)
        self.batch_normalize = opts.int("batch_normalize", 0)
        self.need_image()
        c, h, w = self.input.chw
        out_w = (w - 1) * self.stride_x + self.size - 2 * self.padding
        out_h = (h - 1) * self.stride_y + self.size - 2 * self.padding
        if out_w < 1 or out_h < 1:
            raise self.shape_error("deconvolution leaves no output")
        self.output = Shape.image(self.filters, out_h, out_w)

    def arrays(self) -> list[ArraySpec]:
        specs = conv_specs("", self.filters, 1, self.size, bool(self.batch_normalize), holder=names.DECONV)
        shape = (self.input.c, self.filters, self.size, self.size)
        specs[-1] = specs[-1]._replace(shape=shape, fan_in=self.filters * self.size * self.size)
        return specs

    def cells(self) -> Cells:
        return Cells(self.short_name, str(self.filters), window_size(self.size, self.stride_x, self.stride_y), "")


@register
class Local(Layer):
    """``[local]``: an unshared convolution, one kernel per output location (§2.5)."""

    type = "local"
    headers = ("local",)
    forks = frozenset({PJ, AB})

    def parse(self, opts: Options, builder: Builder) -> None:
        self.filters = opts.int("filters", 1)
        self.size = read_kernel(opts, 1)
        self.stride_x = self.stride_y = opts.int("stride", 1)
        self.padding = opts.int("pad", 0)  # make_local_layer pads by the raw pad value
        self.activation = builder.activation(opts, "logistic", self)
        self.need_image()
        c, h, w = self.input.chw
        if self.stride_x < 1:
            raise self.shape_error("stride must be >= 1")
        # local_out_height: (h - (pad ? 1 : size)) / stride + 1
        cut = 1 if self.padding else self.size
        out_h, out_w = cdiv(h - cut, self.stride_y) + 1, cdiv(w - cut, self.stride_x) + 1
        if out_w < 1 or out_h < 1:
            raise self.shape_error("kernel larger than the input")
        if self.padding and 2 * self.padding != self.size - 1:
            raise self.shape_error(
                f"pad={self.padding} with size={self.size}: Darknet pads by the raw pad value, so "
                "only pad=0 or 2*pad=size-1 is self-consistent"
            )
        self.output = Shape.image(self.filters, out_h, out_w)

    def arrays(self) -> list[ArraySpec]:
        o, k = self.output, self.size
        return [
            ArraySpec("biases", (o.c, o.h, o.w), "biases", names.BIAS),
            # one kernel per location: each sums over c x k x k inputs
            ArraySpec(
                "weights", (o.h * o.w, o.c, self.input.c, k, k), "weights", names.WEIGHT, fan_in=self.input.c * k * k
            ),
        ]

    def cells(self) -> Cells:
        return Cells(self.type, str(self.filters), window_size(self.size, self.stride_x, self.stride_y), "")


@register
class Connected(Layer):
    """``[connected]``: biases, weights ``[outputs][inputs]``, then BN arrays (§2.3)."""

    type = "connected"
    headers = ("connected", "conn")
    forks = ALL_FORKS
    node_color = "#fed7aa"

    def parse(self, opts: Options, builder: Builder) -> None:
        self.outputs = opts.int("output", 1)
        self.activation = builder.activation(opts, "logistic", self)
        self.batch_normalize = opts.int("batch_normalize", 0)
        if self.outputs < 1 or self.input.size < 1:
            raise self.shape_error(f"output={self.outputs} and inputs={self.input.size} must be >= 1")
        self.output = Shape(self.outputs, 1, 1, self.outputs)

    def arrays(self) -> list[ArraySpec]:
        return connected_specs("", self.input.size, self.outputs, bool(self.batch_normalize))

    def cells(self) -> Cells:
        return Cells(self.type, str(self.outputs), "", self.describe())

    def describe(self) -> str:
        return f"{self.input.size} -> {self.outputs} {self.activation}"


@register
class Batchnorm(Layer):
    """Stand-alone ``[batchnorm]``: AB stores 4 arrays (biases first), pjreddie 3 (§2.4)."""

    type = "batchnorm"
    headers = ("batchnorm",)
    forks = frozenset({PJ, AB})

    def parse(self, opts: Options, builder: Builder) -> None:
        self.output = self.input

    @property
    def uses_bn(self) -> bool:
        return True

    def arrays(self) -> list[ArraySpec]:
        return bn_specs("", self.input.c, self.dialect.batchnorm_arrays)


__all__ = ["Convolutional", "Deconvolutional", "Local", "Connected", "Batchnorm"]
