"""The layer catalogue's building blocks: shapes, stored-array specs, the registry.

A layer class knows, for one Darknet section family: which section headers it answers to,
its options (read through :class:`~darkweights.cfg.Options`), its output shape, and the
arrays it stores in the ``.weights`` file, in file order. Nothing else in the package
branches on layer types for storage: the reader, writer, exporters and the PyTorch
builder all walk :meth:`Layer.stored`.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

from ..cfg import Options, Section
from ..errors import ShapeError
from .builder import Builder


class Shape(NamedTuple):
    """A layer output as Darknet reports it: ``out_c, out_h, out_w`` and ``outputs``.

    Layers without image geometry (softmax, gru, detection...) have ``c = h = w = 0``.
    """

    c: int
    h: int
    w: int
    size: int

    @classmethod
    def image(cls, c: int, h: int, w: int) -> Shape:
        return cls(c, h, w, c * h * w)

    @classmethod
    def flat(cls, size: int) -> Shape:
        return cls(0, 0, 0, size)

    @property
    def is_image(self) -> bool:
        return self.c > 0 and self.h > 0 and self.w > 0 and self.c * self.h * self.w == self.size

    @property
    def chw(self) -> tuple[int, int, int]:
        return (self.c, self.h, self.w)

    def __str__(self) -> str:
        return f"{self.c}x{self.h}x{self.w}" if self.is_image else f"{self.size}"


class ArraySpec(NamedTuple):
    """One float32 array a layer stores, before it is placed in a file.

    ``shape`` is the array as Darknet holds it in memory. ``transposable`` marks connected
    weights, stored as ``shape[::-1]`` when the header's transpose flag is set (§1.4).
    ``on_load``/``on_save`` reproduce Darknet's asymmetries (``dontload``,
    ``dontloadscales``, pjreddie's ``dontsave``).
    """

    name: str
    shape: tuple[int, ...]
    role: str  # biases | scales | rolling_mean | rolling_variance | weights
    torch: str = ""  # state_dict suffix in darkweights.torch, e.g. "bn.running_var"
    transposable: bool = False
    on_load: bool = True
    on_save: bool = True

    @property
    def count(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


LAYER_TYPES: dict[str, type[Layer]] = {}  # canonical type name -> class
HEADERS: dict[str, type[Layer]] = {}  # section name as written (e.g. "conv") -> class


def register(cls: type[Layer]) -> type[Layer]:
    """Class decorator: add a layer family to the catalogue (each type and header once)."""
    if cls.type in LAYER_TYPES:
        raise RuntimeError(
            f"layer type {cls.type!r} registered twice ({LAYER_TYPES[cls.type].__name__}, {cls.__name__})"
        )
    for name in cls.headers:
        if name in HEADERS:
            raise RuntimeError(f"section [{name}] registered twice ({HEADERS[name].__name__}, {cls.__name__})")
    LAYER_TYPES[cls.type] = cls
    for name in cls.headers:
        HEADERS[name] = cls
    return cls


class Layer:
    """One parsed layer: options, input and output shapes, stored arrays.

    Which forks know a family is :attr:`darkweights.dialects.Dialect.sections`; the options a
    family reads are attributes declared on its class, with Darknet's defaults.
    """

    type: ClassVar[str]
    headers: ClassVar[tuple[str, ...]]
    # options Darknet reads that only matter for training or post-processing
    training_options: ClassVar[tuple[str, ...]] = ()
    is_head: ClassVar[bool] = False  # a detection head: [yolo], [Gaussian_yolo], [region], [detection]
    activation: str | None = None
    batch_normalize = 0
    dontload = dontloadscales = dontsave = False
    unbuildable: str | None = None  # why no PyTorch module can compute what Darknet does (refused at build time)

    def __init__(self, index: int, section: Section, inp: Shape, builder: Builder) -> None:
        self.index = index
        self.section = section
        self.input = inp
        self.dialect = builder.dialect
        self.output: Shape = inp
        opts = builder.options(section, index, self.type)
        self.dontload = bool(opts.int("dontload", 0))
        self.dontloadscales = bool(opts.int("dontloadscales", 0))
        self.dontsave = bool(opts.int("dontsave", 0))  # pjreddie only (absent elsewhere)
        self.parse(opts, builder)
        opts.ignore(*self.training_options, *self.dialect.common_options)
        builder.report_unused(opts)

    # -- to be provided by each family ------------------------------------------------------

    def parse(self, opts: Options, builder: Builder) -> None:
        """Read the options and set ``self.output``."""
        raise NotImplementedError

    def arrays(self) -> list[ArraySpec]:
        """The arrays Darknet's saver writes for this layer, in file order."""
        return []

    # -- shared helpers ---------------------------------------------------------------------

    @property
    def next_input(self) -> Shape:
        """What the next layer reads (differs from ``output`` only for antialiasing, §0.3)."""
        return self.output

    @property
    def line(self) -> int:
        return self.section.line

    def stored(self) -> list[ArraySpec]:
        """Arrays with Darknet's load/save asymmetries applied (§1.7)."""
        specs = self.arrays()
        if self.dontload or self.dontsave or self.dontloadscales:
            specs = [
                ArraySpec(
                    s.name,
                    s.shape,
                    s.role,
                    s.torch,
                    s.transposable,
                    on_load=s.on_load
                    and not self.dontload
                    and not (
                        self.dontloadscales
                        and s.role in ("scales", "rolling_mean", "rolling_variance")
                        and "." not in s.name
                    ),
                    on_save=s.on_save and not self.dontsave,
                )
                for s in specs
            ]
        return specs

    def shape_error(self, message: str, builder: Builder, evidence: str | None = None) -> ShapeError:
        return ShapeError(
            f"{message} (input {self.input})",
            file=builder.path,
            line=self.section.line,
            layer=self.index,
            layer_type=self.type,
            evidence=evidence,
        )

    def describe(self) -> str:
        """Short human summary of the main options, for ``inspect``."""
        return ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.index}: {self.input} -> {self.output}>"


# Darknet array name -> PyTorch BatchNorm attribute
BN_TORCH = {"biases": "bias", "scales": "weight", "rolling_mean": "running_mean", "rolling_variance": "running_var"}


def bn_specs(
    prefix: str, n: int, names: tuple[str, ...] = ("scales", "rolling_mean", "rolling_variance")
) -> list[ArraySpec]:
    return [ArraySpec(f"{prefix}{name}", (n,), name, f"{prefix}bn.{BN_TORCH[name]}") for name in names]


def conv_specs(prefix: str, n: int, c_per_group: int, k: int, bn: bool, module: str = "conv") -> list[ArraySpec]:
    """``load_convolutional_weights``: biases, [scales, rolling_mean, rolling_variance], weights.

    With BN the biases are BN's shift (the convolution itself has no bias).
    """
    bias_torch = f"{prefix}bn.bias" if bn else f"{prefix}{module}.bias"
    specs = [ArraySpec(f"{prefix}biases", (n,), "biases", bias_torch)]
    if bn:
        specs += bn_specs(prefix, n)
    specs.append(ArraySpec(f"{prefix}weights", (n, c_per_group, k, k), "weights", f"{prefix}{module}.weight"))
    return specs


def connected_specs(prefix: str, inputs: int, outputs: int, bn: bool) -> list[ArraySpec]:
    """``load_connected_weights``: biases, weights, then the BN arrays (note: after the weights)."""
    specs = [
        ArraySpec(f"{prefix}biases", (outputs,), "biases", f"{prefix}bn.bias" if bn else f"{prefix}fc.bias"),
        ArraySpec(f"{prefix}weights", (outputs, inputs), "weights", f"{prefix}fc.weight", transposable=True),
    ]
    if bn:
        specs += bn_specs(prefix, outputs)
    return specs


def read_kernel(opts: Options, default: int) -> int:
    """``size=``: at least 1 (``size=-0.5`` reads as 0; Darknet would give the arrays a zero or negative shape
    and crash)."""
    size = opts.int("size", default)
    if size < 1:
        opt = opts.section.find("size")
        raise opts.error(
            f"size={opt.value if opt else size}: a kernel size below 1 (Darknet's arrays would get a zero or "
            "negative shape)",
            opt,
            ShapeError,
        )
    return size


def read_padding(opts: Options, size: int) -> int:
    """``pad=1`` means ``size/2`` on each side, overriding an explicit ``padding=`` (§3.5.1)."""
    pad = opts.int("pad", 0)
    padding = opts.int("padding", 0)
    return size // 2 if pad else padding


def cdiv(a: int, b: int) -> int:
    """C integer division (truncation toward zero), §0.2."""
    if b == 0:
        raise ZeroDivisionError
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q
