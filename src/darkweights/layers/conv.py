"""Weight-bearing layers: convolutional, deconvolutional, local, connected, batchnorm."""

from __future__ import annotations

import warnings

from ..cfg import Options
from ..errors import DarkweightsWarning, ShapeError
from .base import (
    ArraySpec,
    Layer,
    Shape,
    bn_specs,
    cdiv,
    connected_specs,
    conv_specs,
    read_kernel,
    read_padding,
    register,
)
from .builder import Builder

NO_SHARE = -1000000000  # AB's sentinel for "share_index absent"


def need_image(layer: Layer, builder: Builder) -> None:
    if not layer.input.is_image:
        raise layer.shape_error(f"layer before [{layer.section.name}] must output an image", builder)


@register
class Convolutional(Layer):
    """``[convolutional]`` (AB ``parse_convolutional``, ``make_convolutional_layer``)."""

    type = "convolutional"
    headers = ("convolutional", "conv")
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
        self.binary = opts.int("binary", 0)
        self.xnor = opts.int("xnor", 0)
        self.bin_output = opts.int("bin_output", 0)
        self.flipped = opts.int("flipped", 0)
        self.share_index = None
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
        need_image(self, builder)
        c, h, w = self.input.chw
        if self.groups < 1:
            raise self.shape_error(f"groups={self.groups} must be >= 1", builder)
        if self.stride_x < 1 or self.stride_y < 1:
            raise self.shape_error(f"stride {self.stride_x}x{self.stride_y} must be >= 1", builder)
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
                f"padding={self.padding}): Darknet's buffer sizes would not match",
                builder,
            )
        sx, sy = (1, 1) if self.antialiasing else (self.stride_x, self.stride_y)
        out_w = cdiv(w + 2 * self.padding - self.size, sx) + 1
        out_h = cdiv(h + 2 * self.padding - self.size, sy) + 1
        if out_w < 1 or out_h < 1:
            raise self.shape_error(
                f"kernel {self.size} with padding {self.padding} and stride {sx}x{sy} leaves no "
                f"output ({out_h}x{out_w})",
                builder,
            )
        self.output = Shape.image(self.filters, out_h, out_w)
        self.blur = None
        if self.antialiasing:
            # the internal blur conv carries the stride; never stored (§2.1.6)
            bs, bp = (2, 0) if self.antialiasing == 2 else (3, 1)
            bw = cdiv(out_w + 2 * bp - bs, self.stride_x) + 1
            bh = cdiv(out_h + 2 * bp - bs, self.stride_y) + 1
            self.blur = (bs, bp, Shape.image(self.filters, bh, bw))
        if self.share_index is not None:
            self._check_share(builder)

    def _check_share(self, builder: Builder) -> None:
        target = builder.layers[self.share_index] if 0 <= self.share_index < len(builder.layers) else None
        if not isinstance(target, Convolutional) or target.share_index is not None:
            raise self.shape_error(
                f"share_index points to layer {self.share_index}, which is not an "
                "already-parsed, non-shared [convolutional] layer",
                builder,
            )
        if (target.size, target.input.c, target.filters, target.groups) != (
            self.size,
            self.input.c,
            self.filters,
            self.groups,
        ):
            raise self.shape_error(
                f"share_index={self.share_index}: size, channels, filters or groups differ from "
                f"that layer's ({target.size}, {target.input.c}, {target.filters}, {target.groups})",
                builder,
            )
        if self.batch_normalize and not target.batch_normalize:
            raise self.shape_error(
                f"share_index={self.share_index}: this layer has batch_normalize but the shared "
                "layer does not (Darknet would dereference missing BN arrays)",
                builder,
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
            return [ArraySpec(s.name, s.shape, s.role, s.torch, on_load=False) for s in specs] + [
                ArraySpec("numload_" + s.name, s.shape, s.role, "", on_save=False) for s in part
            ]
        return specs

    def describe(self) -> str:
        s = f"{self.filters} {self.size}x{self.size}/{self.stride_x}"
        if self.stride_y != self.stride_x:
            s += f"x{self.stride_y}"
        extras = [
            f"g{self.groups}" if self.groups > 1 else "",
            f"d{self.dilation}" if self.dilation > 1 else "",
            "bn" if self.batch_normalize else "",
            "xnor" if self.xnor else "",
            f"aa{self.antialiasing}" if self.antialiasing else "",
            f"share={self.share_index}" if self.share_index is not None else "",
            self.activation or "",
        ]
        return " ".join([s] + [e for e in extras if e])


@register
class Deconvolutional(Layer):
    """pjreddie's ``[deconvolutional]``: weights ``[c][n][k][k]`` (= ConvTranspose2d)."""

    type = "deconvolutional"
    headers = ("deconvolutional", "deconv")

    def parse(self, opts: Options, builder: Builder) -> None:
        self.filters = opts.int("filters", 1)
        self.size = opts.int("size", 1)
        self.stride = opts.int("stride", 1)
        self.padding = read_padding(opts, self.size)
        self.activation = builder.activation(opts, "logistic", self)
        self.batch_normalize = opts.int("batch_normalize", 0)
        need_image(self, builder)
        c, h, w = self.input.chw
        out_w = (w - 1) * self.stride + self.size - 2 * self.padding
        out_h = (h - 1) * self.stride + self.size - 2 * self.padding
        if out_w < 1 or out_h < 1:
            raise self.shape_error("deconvolution leaves no output", builder)
        self.output = Shape.image(self.filters, out_h, out_w)

    def arrays(self) -> list[ArraySpec]:
        specs = conv_specs("", self.filters, 1, self.size, bool(self.batch_normalize), module="deconv")
        specs[-1] = ArraySpec("weights", (self.input.c, self.filters, self.size, self.size), "weights", "deconv.weight")
        return specs


@register
class Local(Layer):
    """``[local]``: an unshared convolution, one kernel per output location (§2.5)."""

    type = "local"
    headers = ("local",)

    def parse(self, opts: Options, builder: Builder) -> None:
        self.filters = opts.int("filters", 1)
        self.size = read_kernel(opts, 1)
        self.stride = opts.int("stride", 1)
        self.pad = opts.int("pad", 0)
        self.activation = builder.activation(opts, "logistic", self)
        need_image(self, builder)
        c, h, w = self.input.chw
        if self.stride < 1:
            raise self.shape_error("stride must be >= 1", builder)
        # local_out_height: (h - (pad ? 1 : size)) / stride + 1
        cut = 1 if self.pad else self.size
        out_h, out_w = cdiv(h - cut, self.stride) + 1, cdiv(w - cut, self.stride) + 1
        if out_w < 1 or out_h < 1:
            raise self.shape_error("kernel larger than the input", builder)
        if self.pad and 2 * self.pad != self.size - 1:
            raise self.shape_error(
                f"pad={self.pad} with size={self.size}: Darknet pads by the raw pad value, so "
                "only pad=0 or 2*pad=size-1 is self-consistent",
                builder,
            )
        self.output = Shape.image(self.filters, out_h, out_w)

    def arrays(self) -> list[ArraySpec]:
        o = self.output
        return [
            ArraySpec("biases", (o.c, o.h, o.w), "biases", "bias"),
            ArraySpec("weights", (o.h * o.w, o.c, self.input.c, self.size, self.size), "weights", "weight"),
        ]


@register
class Connected(Layer):
    """``[connected]``: biases, weights ``[outputs][inputs]``, then BN arrays (§2.3)."""

    type = "connected"
    headers = ("connected", "conn")

    def parse(self, opts: Options, builder: Builder) -> None:
        self.outputs = opts.int("output", 1)
        self.activation = builder.activation(opts, "logistic", self)
        self.batch_normalize = opts.int("batch_normalize", 0)
        if self.outputs < 1 or self.input.size < 1:
            raise self.shape_error(f"output={self.outputs} and inputs={self.input.size} must be >= 1", builder)
        self.output = Shape(self.outputs, 1, 1, self.outputs)

    def arrays(self) -> list[ArraySpec]:
        return connected_specs("", self.input.size, self.outputs, bool(self.batch_normalize))

    def describe(self) -> str:
        return f"{self.input.size} -> {self.outputs} {self.activation}"


@register
class Batchnorm(Layer):
    """Stand-alone ``[batchnorm]``: AB stores 4 arrays (biases first), pjreddie 3 (§2.4)."""

    type = "batchnorm"
    headers = ("batchnorm",)

    def parse(self, opts: Options, builder: Builder) -> None:
        self.output = self.input

    def arrays(self) -> list[ArraySpec]:
        return bn_specs("", self.input.c, self.dialect.batchnorm_arrays)
