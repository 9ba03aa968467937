"""Layers that read other layers: route, shortcut, scale_channels, sam; and implicit."""

from __future__ import annotations

import math

from ..cfg import Options
from ..errors import CfgError
from . import names
from .base import AB, ALL_FORKS, GIGA, HK, PJ, ArraySpec, Cells, Layer, Shape, f32, i32, register
from .builder import Builder


@register
class Route(Layer):
    """``[route]``: concatenation of (group slices of) earlier layers (§3.5.9, §5.7)."""

    type = "route"
    headers = ("route",)
    forks = ALL_FORKS
    unread = {PJ: frozenset({"groups", "group_id"})}
    node_color = "#fde68a"
    edge_color = "#d97706"
    reads_input = False
    training_options = ("stream", "wait_stream")

    def parse(self, opts: Options, builder: Builder) -> None:
        sources = self.read_layers(opts, builder, "layers")
        builder.keep_float_output(*sources)
        self.groups = max(opts.int("groups", 1), 1)
        self.group_id = opts.int("group_id", 0)
        if not 0 <= self.group_id < self.groups:
            raise self.shape_error(f"group_id={self.group_id} must be in [0, groups={self.groups})")
        srcs = [builder.layers[i].output for i in sources]
        first = srcs[0]
        out_c, out_h, out_w = first.c, first.h, first.w
        for s in srcs[1:]:
            # parse_route: a size mismatch zeroes the geometry, later matching inputs still add channels
            if s.w == first.w and s.h == first.h:
                out_c += s.c
            else:
                out_c = out_h = out_w = 0
        outputs = sum(s.size for s in srcs) // self.groups
        out_c //= self.groups
        for i, s in zip(sources, srcs):
            if s.size % self.groups or (s.c and s.c % self.groups):
                raise self.shape_error(f"layer {i} ({s}) does not split into groups={self.groups}")
        self.output = Shape(out_c, out_h, out_w, outputs)
        if self.dialect.route_equal_sizes and not self.output.is_image:
            raise self.shape_error(
                "inputs have different width/height: " + ", ".join(f"layer {i}: {s}" for i, s in zip(sources, srcs))
            )

    def describe(self) -> str:
        return ",".join(map(str, self._reads)) + (f" {self.group_id}/{self.groups}" if self.groups > 1 else "")


@register
class Shortcut(Layer):
    """``[shortcut]``: add earlier layers (optionally weighted) to the input (§3.5.10, §5.8)."""

    type = "shortcut"
    headers = ("shortcut",)
    forks = ALL_FORKS
    unread = {
        PJ: frozenset({"weights_type", "weights_normalization"}),
        AB: frozenset({"alpha", "beta"}),
        HK: frozenset({"alpha", "beta"}),
    }
    node_color = "#fecaca"
    edge_color = "#dc2626"

    def parse(self, opts: Options, builder: Builder) -> None:
        self.activation = builder.activation(opts, "linear", self)
        self.weights_type = "none"
        self.weights_normalization = "none"
        self.alpha = self.beta = 1.0
        if self.dialect.shortcut_scaled:
            sources = self.read_layers(opts, builder, "from", first_only=True)  # PJ reads a single index
            self.alpha = opts.float("alpha", 1.0)
            self.beta = opts.float("beta", 1.0)
        else:
            types = ("none", "per_feature", "per_channel") + (("per_layer",) * self.dialect.shortcut_per_layer)
            self.weights_type = opts.choice("weights_type", "none", types)
            if self.weights_type == "per_layer":
                self.weights_type = "per_feature"
            norms: tuple[str, ...] = ("none", "relu", "avg_relu", "softmax")
            quirk = self.dialect.shortcut_norm_needs_type
            if quirk and self.weights_type != "none":
                # AB parse_shortcut tests the *type* string: with weights the normalisation must be given
                norms = ("relu", "avg_relu", "softmax")
            if quirk and self.weights_type == "none":
                self.weights_normalization = opts.str("weights_normalization", "none") or "none"
            else:
                self.weights_normalization = opts.choice("weights_normalization", "none", norms)
            if self.weights_normalization == "avg_relu":
                self.weights_normalization = "relu"
            sources = self.read_layers(opts, builder, "from")
        builder.keep_float_output(self.index - 1, sources[0])  # l.index: the first from= only
        self.need_image()
        for i in sources:
            src = builder.layers[i].output
            if (src.h, src.w) != (self.input.h, self.input.w) and not self.dialect.shortcut_scaled:
                raise self.shape_error(
                    f"from={i} has spatial size {src.h}x{src.w} but the input is {self.input.h}x{self.input.w}: "
                    f"{self.dialect.title} adds by flat index and asserts equal sizes (only pjreddie samples across "
                    "resolutions: --dialect pjreddie)",
                    evidence=f"[shortcut] at line {self.line} across resolutions",
                )
            if not src.is_image:
                raise self.shape_error(f"from={i} has no image geometry ({src})")
        self.output = self.input

    def arrays(self) -> list[ArraySpec]:
        if self.weights_type == "none":
            return []
        m = len(self._reads)
        shape = (m + 1,) if self.weights_type == "per_feature" else (m + 1, self.input.c)
        return [ArraySpec("weights", shape, "weights", names.WEIGHT)]

    def init_range(self, spec: ArraySpec) -> tuple[float, float]:
        return (0.5, 1.5) if spec.role == "weights" else super().init_range(spec)  # the fixtures' recipe

    def bflops(self) -> float:
        out = self.output
        v = i32(out.w * out.h * out.c * len(self._reads)) / GIGA
        return f32(v * 2 if self.weights_type != "none" else v)

    def describe(self) -> str:
        s = ",".join(map(str, self._reads))
        if self.weights_type != "none":
            s += f" {self.weights_type}/{self.weights_normalization}"
        return s + (f" {self.activation}" if self.activation != "linear" else "")


class _FromLayer(Layer):
    """A layer that reads ``from=`` (its first index) besides its input."""

    forks = frozenset({AB, HK})

    def _source(self, opts: Options, builder: Builder) -> Shape:
        (source,) = self.read_layers(opts, builder, "from", first_only=True)
        builder.keep_float_output(self.index - 1, source)
        self.activation = builder.activation(opts, "linear", self)
        return builder.layers[source].output


@register
class ScaleChannels(_FromLayer):
    """``[scale_channels]``: multiply ``from``'s map by the input per channel (or per pixel)."""

    type = "scale_channels"
    headers = ("scale_channels",)

    def parse(self, opts: Options, builder: Builder) -> None:
        src = self._source(opts, builder)
        self.scale_wh = opts.int("scale_wh", 0)
        inp = self.input
        if self.scale_wh:
            ok = (inp.w, inp.h) == (src.w, src.h)
        else:
            ok = inp.w == 1 and inp.h == 1 and inp.c == src.c
        if not ok:
            raise self.shape_error(f"scale_wh={self.scale_wh} input {inp} does not fit from={self._reads[0]} ({src})")
        self.output = Shape.image(src.c, src.h, src.w)


@register
class Sam(_FromLayer):
    """``[sam]``: element-wise product of the input with ``from``'s map."""

    type = "sam"
    headers = ("sam",)

    def parse(self, opts: Options, builder: Builder) -> None:
        src = self._source(opts, builder)
        if src.size != self.input.size:
            raise self.shape_error(f"input {self.input} must have the shape of from={self._reads[0]} ({src})")
        self.output = Shape.image(src.c, src.h, src.w)


@register
class Implicit(Layer):
    """``[implicit]``: a learned constant ``filters x atoms`` (YOLOR), independent of the input."""

    type = "implicit"
    headers = ("implicit",)
    forks = frozenset({AB})

    def parse(self, opts: Options, builder: Builder) -> None:
        self.mean = opts.float("mean", 0.0)
        self.std = opts.float("std", 0.2)
        self.filters = opts.int("filters", 128)
        self.atoms = opts.int("atoms", 1)
        if self.filters < 1 or self.atoms < 1:
            raise self.shape_error("filters and atoms must be >= 1")
        self.output = Shape.image(self.filters, self.atoms, 1)

    def arrays(self) -> list[ArraySpec]:
        return [ArraySpec("weights", (self.filters, self.atoms), "weights", names.WEIGHT)]

    def init_range(self, spec: ArraySpec) -> tuple[float, float]:
        lo, hi = self.mean - self.std, self.mean + self.std  # make_implicit_layer: mean + U(-std, std)
        if not (math.isfinite(lo) and math.isfinite(hi)):  # mean=inf: Darknet's init would store inf
            raise self.error(
                f"mean={self.mean:g}, std={self.std:g}: the random initial values would not be finite", CfgError
            )
        return lo, hi

    def cells(self) -> Cells:
        return Cells(self.type, str(self.filters), "", "")
