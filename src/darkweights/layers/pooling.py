"""Parameter-free spatial layers: maxpool, local_avgpool, avgpool, upsample, reorg, reorg3d."""

from __future__ import annotations

from ..cfg import Options
from .base import AB, ALL_FORKS, GIGA, HK, PJ, Cells, Layer, Shape, cdiv, f32, i32, register, window_size
from .builder import Builder
from .conv import blur_geometry


@register
class Maxpool(Layer):
    """``[maxpool]``: total padding ``size-1`` by default, left/top ``padding/2`` (§3.5.5, §5.4)."""

    type = "maxpool"
    headers = ("maxpool", "max")
    forks = ALL_FORKS
    unread = {
        PJ: frozenset({"stride_x", "stride_y", "maxpool_depth", "out_channels", "antialiasing", "maxpool_zero_nonmax"})
    }
    short_name = "max"
    node_color = "#e9d5ff"
    avg = False

    def parse(self, opts: Options, builder: Builder) -> None:
        stride = opts.int("stride", 1)
        self.stride_x = opts.int("stride_x", stride)  # AlexeyAB's options
        self.stride_y = opts.int("stride_y", stride)
        self.size = opts.int("size", stride)
        self.padding = opts.int("padding", self.size - 1)
        self.maxpool_depth = self.out_channels = self.antialiasing = 0
        if not self.avg:
            self.maxpool_depth = opts.int("maxpool_depth", 0)
            self.out_channels = opts.int("out_channels", 1)
            self.antialiasing = opts.int("antialiasing", 0)
            opts.ignore("maxpool_zero_nonmax")
        self.need_image()
        c, h, w = self.input.chw
        self.blur: tuple[int, int, Shape] | None = None
        if self.maxpool_depth:
            if self.out_channels < 1:
                raise self.shape_error("out_channels must be >= 1 with maxpool_depth")
            self.output = Shape.image(self.out_channels, h, w)
            return
        if self.stride_x < 1 or self.stride_y < 1 or self.size < 1:
            raise self.shape_error(f"size {self.size} and stride {self.stride_x}x{self.stride_y} must be >= 1")
        sx, sy = (1, 1) if self.antialiasing else (self.stride_x, self.stride_y)
        out_w = cdiv(w + self.padding - self.size, sx) + 1
        out_h = cdiv(h + self.padding - self.size, sy) + 1
        if out_w < 1 or out_h < 1:
            raise self.shape_error(f"window {self.size} with padding {self.padding} leaves no output")
        self.output = Shape.image(c, out_h, out_w)
        if self.antialiasing:
            self.blur = blur_geometry(self.antialiasing, self.output, self.stride_x, self.stride_y)

    @property
    def next_input(self) -> Shape:
        return self.blur[2] if self.blur else self.output

    def bflops(self) -> float:
        # (l.size*l.size*l.c * l.out_h*l.out_w) / 1e9: an int product
        return f32(i32(self.size * self.size * self.input.c * self.output.h * self.output.w) / GIGA)

    def _padding_option(self) -> str:
        return f"pad{self.padding}" if self.padding != self.size - 1 else ""

    def cells(self) -> Cells:
        options = self.describe() if self.maxpool_depth else self._padding_option()
        return Cells(self.short_name, "", window_size(self.size, self.stride_x, self.stride_y), options)

    def describe(self) -> str:
        if self.maxpool_depth:
            return f"depth -> {self.out_channels}"
        s = f"{self.size}x{self.size}/{self.stride_x}" + (f"x{self.stride_y}" if self.stride_y != self.stride_x else "")
        return " ".join(t for t in (s, self._padding_option()) if t)


@register
class LocalAvgpool(Maxpool):
    """``[local_avgpool]``: maxpool geometry, mean over the valid cells (§5.5)."""

    type = "local_avgpool"
    headers = ("local_avgpool", "local_avg")
    forks = frozenset({AB, HK})
    short_name = "avg"
    node_color = Layer.node_color
    avg = True


@register
class Avgpool(Layer):
    """``[avgpool]``: global average, output ``c x 1 x 1``."""

    type = "avgpool"
    headers = ("avgpool", "avg")
    forks = ALL_FORKS
    short_name = "avg"

    def parse(self, opts: Options, builder: Builder) -> None:
        self.need_image()
        self.output = Shape.image(self.input.c, 1, 1)


@register
class Upsample(Layer):
    """``[upsample]``: nearest x stride times ``scale``; negative stride = sum-pool (§5.6)."""

    type = "upsample"
    headers = ("upsample",)
    forks = ALL_FORKS
    node_color = "#e9d5ff"

    def parse(self, opts: Options, builder: Builder) -> None:
        self.stride = opts.int("stride", 2)  # the scale factor (negative: a sum-pool), not a window's stride
        self.scale = opts.float("scale", 1.0)
        self.need_image()
        c, h, w = self.input.chw
        if self.stride == 0:
            raise self.shape_error("stride=0 is invalid")
        if self.stride > 0:
            self.output = Shape.image(c, h * self.stride, w * self.stride)
        else:
            s = -self.stride
            if h % s or w % s:
                raise self.shape_error(f"downsample by {s} needs height and width divisible by {s}")
            self.output = Shape.image(c, h // s, w // s)

    def cells(self) -> Cells:
        size = f"{self.stride}x" if self.stride > 0 else f"/{-self.stride}"
        return Cells(self.type, "", size, self.describe())

    def describe(self) -> str:
        return f"x{self.stride}" + (f" scale {self.scale:g}" if self.scale != 1 else "")


class _Reorg(Layer):
    reads_flatten = False  # pjreddie's flatten= and extra= ([reorg] only)
    reverse_divisor_power = 2  # reverse=1 needs channels divisible by stride^this
    forward_needs_channels = False  # the forward mapping needs channels divisible by stride^2

    def parse(self, opts: Options, builder: Builder) -> None:
        self.stride = opts.int("stride", 1)  # the block size
        self.reverse = opts.int("reverse", 0)
        self.flatten = self.extra = 0
        if self.reads_flatten:
            self.flatten = opts.int("flatten", 0)
            self.extra = opts.int("extra", 0)
        self.need_image()
        c, h, w = self.input.chw
        s = self.stride
        if s < 1:
            raise self.shape_error("stride must be >= 1")
        if self.extra:
            self.output = Shape.flat(self.input.size + self.extra)
            return
        if self.reverse:
            div = s**self.reverse_divisor_power
            if c % div:
                raise self.shape_error(f"reverse reorg needs channels divisible by {div}")
            self.output = Shape.image(c // (s * s), h * s, w * s)
        else:
            need = c % (s * s) if self.forward_needs_channels else 0
            if h % s or w % s or need:
                raise self.shape_error(
                    f"reorg stride {s} needs height, width (and for [reorg] channels/{s * s}) divisible by the stride"
                )
            self.output = Shape.image(c * s * s, h // s, w // s)

    def describe(self) -> str:
        return f"/{self.stride}" + (" reverse" if self.reverse else "")


@register
class Reorg(_Reorg):
    """Old ``[reorg]`` (YOLOv2): space-to-depth on a flat reinterpretation (§5.9)."""

    type = "reorg"
    headers = ("reorg",)
    forks = frozenset({PJ, AB})
    unread = {AB: frozenset({"flatten", "extra"}), HK: frozenset({"flatten", "extra"})}
    reads_flatten = True
    forward_needs_channels = True


@register
class Reorg3d(_Reorg):
    """``[reorg3d]``: TensorFlow-style space_to_depth (§5.9)."""

    type = "reorg3d"
    headers = ("reorg3d",)
    forks = frozenset({AB, HK})
    reverse_divisor_power = 4


__all__ = ["Maxpool", "LocalAvgpool", "Avgpool", "Upsample", "Reorg", "Reorg3d"]
