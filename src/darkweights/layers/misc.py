"""Shape-preserving and small layers without parameters."""

from __future__ import annotations

from ..cfg import Options
from .base import AB, ALL_FORKS, PJ, Layer, Shape, register
from .builder import Builder


class ShapePreserving(Layer):
    """A layer whose output has its input's shape and that reads no options of its own."""

    def parse(self, opts: Options, builder: Builder) -> None:
        self.output = self.input


@register
class Dropout(ShapePreserving):
    """``[dropout]``: identity at inference (aliases the previous output)."""

    type = "dropout"
    headers = ("dropout",)
    forks = ALL_FORKS
    training_options = ("probability", "dropblock", "dropblock_size_rel", "dropblock_size_abs")


@register
class Empty(ShapePreserving):
    """``[empty]``/``[silence]``: identity."""

    type = "empty"
    headers = ("empty", "silence")
    forks = frozenset({AB})


@register
class Activation(Layer):
    """``[activation]``: a stand-alone activation (generic path, §4.2)."""

    type = "activation"
    headers = ("activation",)
    forks = frozenset({PJ, AB})

    def parse(self, opts: Options, builder: Builder) -> None:
        self.activation = builder.activation(opts, "linear", self)
        self.output = self.input

    def describe(self) -> str:
        return self.activation or ""


@register
class Normalization(Layer):
    """``[normalization]``/``[lrn]``: Darknet's local response normalisation (§5.14)."""

    type = "normalization"
    headers = ("normalization", "lrn")
    forks = frozenset({PJ, AB})

    def parse(self, opts: Options, builder: Builder) -> None:
        self.alpha = opts.float("alpha", 0.0001)
        self.beta = opts.float("beta", 0.75)
        self.kappa = opts.float("kappa", 1.0)
        self.size = opts.int("size", 5)
        self.need_image()
        self.output = self.input


@register
class Crop(Layer):
    """``[crop]``: centre crop then ``2x-1`` (CPU semantics, §5.14)."""

    type = "crop"
    headers = ("crop",)
    forks = frozenset({PJ, AB})
    training_options = ("flip", "angle", "saturation", "exposure", "shift")

    def parse(self, opts: Options, builder: Builder) -> None:
        self.crop_height = opts.int("crop_height", 1)
        self.crop_width = opts.int("crop_width", 1)
        self.noadjust = opts.int("noadjust", 0)
        self.need_image()
        c, h, w = self.input.chw
        if not (0 < self.crop_height <= h and 0 < self.crop_width <= w):
            raise self.shape_error(f"crop {self.crop_height}x{self.crop_width} does not fit the input")
        self.output = Shape.image(c, self.crop_height, self.crop_width)


@register
class History(Layer):
    """AB ``[history]``: stacks the last ``history_size`` inputs along channels (when training with
    ``time_steps > 1``; at inference Darknet fills only the first block, see ``darkweights.torch.history``)."""

    type = "history"
    headers = ("history",)
    forks = frozenset({AB})

    def parse(self, opts: Options, builder: Builder) -> None:
        self.history_size = opts.int("history_size", 4)
        self.need_image()
        c, h, w = self.input.chw
        self.output = Shape.image(c * self.history_size, h, w)


@register
class Logistic(ShapePreserving):
    """pjreddie ``[logistic]`` (sigmoid with cross-entropy loss)."""

    type = "logistic"
    headers = ("logistic",)
    forks = frozenset({PJ})


@register
class L2norm(ShapePreserving):
    """pjreddie ``[l2norm]``: per-pixel L2 normalisation over channels."""

    type = "l2norm"
    headers = ("l2norm",)
    forks = frozenset({PJ})


@register
class Iseg(Layer):
    """pjreddie ``[iseg]`` (instance segmentation head)."""

    type = "iseg"
    headers = ("iseg",)
    forks = frozenset({PJ})

    def parse(self, opts: Options, builder: Builder) -> None:
        self.classes = opts.int("classes", 20)
        self.ids = opts.int("ids", 32)
        self.need_image()
        if self.classes + self.ids != self.input.c:
            raise self.shape_error(f"needs classes+ids = {self.classes + self.ids} input channels")
        self.output = self.input
