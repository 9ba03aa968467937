"""Parameter-free spatial layers: maxpool, local_avgpool, avgpool, upsample, reorg, reorg3d."""

from __future__ import annotations

from ..cfg import Options
from .base import Layer, Shape, cdiv, register
from .builder import Builder
from .conv import need_image


@register
class Maxpool(Layer):
    """``[maxpool]``: total padding ``size-1`` by default, left/top ``padding/2`` (§3.5.5, §5.4)."""

    type = "maxpool"
    headers = ("maxpool", "max")
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
        need_image(self, builder)
        c, h, w = self.input.chw
        if self.maxpool_depth:
            if self.out_channels < 1:
                raise self.shape_error("out_channels must be >= 1 with maxpool_depth", builder)
            self.output = Shape.image(self.out_channels, h, w)
            self.blur = None
            return
        if self.stride_x < 1 or self.stride_y < 1 or self.size < 1:
            raise self.shape_error(f"size {self.size} and stride {self.stride_x}x{self.stride_y} must be >= 1", builder)
        sx, sy = (1, 1) if self.antialiasing else (self.stride_x, self.stride_y)
        out_w = cdiv(w + self.padding - self.size, sx) + 1
        out_h = cdiv(h + self.padding - self.size, sy) + 1
        if out_w < 1 or out_h < 1:
            raise self.shape_error(f"window {self.size} with padding {self.padding} leaves no output", builder)
        self.output = Shape.image(c, out_h, out_w)
        self.blur = None
        if self.antialiasing:
            bs, bp = (2, 0) if self.antialiasing == 2 else (3, 1)
            bw = cdiv(out_w + 2 * bp - bs, self.stride_x) + 1
            bh = cdiv(out_h + 2 * bp - bs, self.stride_y) + 1
            self.blur = (bs, bp, Shape.image(c, bh, bw))

    @property
    def next_input(self) -> Shape:
        return self.blur[2] if self.blur else self.output

    def describe(self) -> str:
        if self.maxpool_depth:
            return f"depth -> {self.out_channels}"
        s = f"{self.size}x{self.size}/{self.stride_x}" + (f"x{self.stride_y}" if self.stride_y != self.stride_x else "")
        return s + (f" pad{self.padding}" if self.padding != self.size - 1 else "")


@register
class LocalAvgpool(Maxpool):
    """``[local_avgpool]``: maxpool geometry, mean over the valid cells (§5.5)."""

    type = "local_avgpool"
    headers = ("local_avgpool", "local_avg")
    avg = True


@register
class Avgpool(Layer):
    """``[avgpool]``: global average, output ``c x 1 x 1``."""

    type = "avgpool"
    headers = ("avgpool", "avg")

    def parse(self, opts: Options, builder: Builder) -> None:
        need_image(self, builder)
        self.output = Shape.image(self.input.c, 1, 1)


@register
class Upsample(Layer):
    """``[upsample]``: nearest x stride times ``scale``; negative stride = sum-pool (§5.6)."""

    type = "upsample"
    headers = ("upsample",)

    def parse(self, opts: Options, builder: Builder) -> None:
        self.stride = opts.int("stride", 2)
        self.scale = opts.float("scale", 1.0)
        need_image(self, builder)
        c, h, w = self.input.chw
        if self.stride == 0:
            raise self.shape_error("stride=0 is invalid", builder)
        if self.stride > 0:
            self.output = Shape.image(c, h * self.stride, w * self.stride)
        else:
            s = -self.stride
            if h % s or w % s:
                raise self.shape_error(f"downsample by {s} needs height and width divisible by {s}", builder)
            self.output = Shape.image(c, h // s, w // s)

    def describe(self) -> str:
        return f"x{self.stride}" + (f" scale {self.scale:g}" if self.scale != 1 else "")


class _Reorg(Layer):
    def parse(self, opts: Options, builder: Builder) -> None:
        self.stride = opts.int("stride", 1)
        self.reverse = opts.int("reverse", 0)
        self.flatten = self.extra = 0
        if self.type == "reorg":
            self.flatten = opts.int("flatten", 0)  # pjreddie's options
            self.extra = opts.int("extra", 0)
        need_image(self, builder)
        c, h, w = self.input.chw
        s = self.stride
        if s < 1:
            raise self.shape_error("stride must be >= 1", builder)
        if self.extra:
            self.output = Shape.flat(self.input.size + self.extra)
            return
        if self.reverse:
            div = s**4 if (self.type == "reorg3d") else s * s
            if c % div:
                raise self.shape_error(f"reverse reorg needs channels divisible by {div}", builder)
            self.output = Shape.image(c // (s * s), h * s, w * s)
        else:
            need = c % (s * s) if self.type == "reorg" else 0
            if h % s or w % s or need:
                raise self.shape_error(
                    f"reorg stride {s} needs height, width (and for [reorg] channels/{s * s}) divisible by the stride",
                    builder,
                )
            self.output = Shape.image(c * s * s, h // s, w // s)

    def describe(self) -> str:
        return f"/{self.stride}" + (" reverse" if self.reverse else "")


@register
class Reorg(_Reorg):
    """Old ``[reorg]`` (YOLOv2): space-to-depth on a flat reinterpretation (§5.9)."""

    type = "reorg"
    headers = ("reorg",)


@register
class Reorg3d(_Reorg):
    """``[reorg3d]``: TensorFlow-style space_to_depth (§5.9)."""

    type = "reorg3d"
    headers = ("reorg3d",)


__all__ = ["Maxpool", "LocalAvgpool", "Avgpool", "Upsample", "Reorg", "Reorg3d"]
