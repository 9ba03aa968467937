"""The layer catalogue's building blocks: shapes, stored-array specs, the registry, the family base class.

A layer family (one class, registered by :func:`register`) owns every concern it has, so that adding a
family touches one module here (and its PyTorch module in :mod:`darkweights.torch`): which section headers
it answers to and which forks know it (:attr:`Layer.forks`, from which
:attr:`darkweights.dialects.Dialect.sections` is derived), its options (read in :meth:`Layer.parse` through
:class:`~darkweights.cfg.Options`, with Darknet's defaults), its output shape, the arrays it stores in
file order (:meth:`Layer.arrays`) with their random-init ranges, which earlier layers it reads
(:meth:`Layer.reads`), its BFLOPs as AlexeyAB counts them (:meth:`Layer.bflops`), its cells in the
``inspect``/``report`` tables (:meth:`Layer.cells`) and, for a detection head, its :class:`~darkweights.heads.Head`
(:meth:`Layer.head`). The reader, writer, exporters, PyTorch builder and reports ask the family; none of
them tests a layer's type.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar, NamedTuple

from ..cfg import Option, Options, Section
from ..dialects import DIALECTS
from ..errors import DarkweightsError, ShapeError, UnsupportedError
from .builder import Builder
from .names import BIAS, BN, BN_FIELDS, CONV, FC, WEIGHT

if TYPE_CHECKING:
    import builtins

    from ..heads import Head

# the forks, by Dialect.name, for Layer.forks
AB, PJ, HK = "alexeyab", "pjreddie", "hankai"
ALL_FORKS = frozenset({AB, PJ, HK})


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

    ``shape`` is the array as Darknet holds it in memory. ``torch`` is its state_dict suffix in
    :mod:`darkweights.torch` (built from :mod:`.names`). ``transposable`` marks connected weights, stored as
    ``shape[::-1]`` when the header's transpose flag is set (§1.4). ``on_load``/``on_save`` reproduce
    Darknet's asymmetries (``dontload``, ``dontloadscales``, pjreddie's ``dontsave``). ``fan_in`` (weights
    only) is the number of inputs each output sums over, for the random-init range (:meth:`Layer.init_range`;
    0 in a degenerate layer, e.g. more groups than input channels, counts as 1).
    """

    name: str
    shape: tuple[int, ...]
    role: str  # biases | scales | rolling_mean | rolling_variance | weights
    torch: str = ""
    transposable: bool = False
    on_load: bool = True
    on_save: bool = True
    fan_in: int = -1  # -1: not declared

    @property
    def count(self) -> int:  # type: ignore[override]  # the element count; tuple.count is never used on specs
        n = 1
        for d in self.shape:
            n *= d
        return n


class Cells(NamedTuple):
    """A layer's cells in the ``inspect`` table (AlexeyAB's columns) beyond its shapes and counts."""

    short: str  # AlexeyAB's short type name: conv, max, avg ...
    filters: str
    size: str  # size/strd(dil)
    options: str  # what the filters and size cells do not show


LAYER_TYPES: dict[str, type[Layer]] = {}  # canonical type name -> class
HEADERS: dict[str, type[Layer]] = {}  # section name as written (e.g. "conv") -> class


def register(cls: type[Layer]) -> type[Layer]:
    """Class decorator: add a layer family to the catalogue (each type and header once, its forks declared)."""
    if cls.type in LAYER_TYPES:
        raise RuntimeError(
            f"layer type {cls.type!r} registered twice ({LAYER_TYPES[cls.type].__name__}, {cls.__name__})"
        )
    for name in cls.headers:
        if name in HEADERS:
            raise RuntimeError(f"section [{name}] registered twice ({HEADERS[name].__name__}, {cls.__name__})")
    forks = getattr(cls, "forks", None)
    if not forks or not set(forks) <= set(DIALECTS):
        raise RuntimeError(
            f"layer family {cls.__name__} ({cls.type!r}) must declare the forks whose parser knows it: "
            f"forks = a non-empty set of {', '.join(DIALECTS)} (got {forks!r})"
        )
    LAYER_TYPES[cls.type] = cls
    for name in cls.headers:
        HEADERS[name] = cls
    return cls


class Layer:
    """One parsed layer of a family: options, input and output shapes, stored arrays, and the family's
    answers to what the rest of the package asks (see the module docstring)."""

    type: ClassVar[str]
    headers: ClassVar[tuple[str, ...]]
    forks: ClassVar[frozenset[str]]  # Dialect.name of every fork whose parser knows the family
    # options a fork's parser never reads in this family: fork name -> keys (they stay "unused")
    unread: ClassVar[Mapping[str, frozenset[str]]] = {}
    # options Darknet reads that only matter for training or post-processing
    training_options: ClassVar[tuple[str, ...]] = ()
    short_name: ClassVar[str] = ""  # AlexeyAB's name in its layer table (default: the type)
    node_color: ClassVar[str] = "#f3f4f6"  # `report`'s graph
    edge_color: ClassVar[str] = "#6e7781"  # arcs from the layers it reads
    shows_filters: ClassVar[bool] = False  # `plot` draws its first weights as image filters
    reads_input: ClassVar[bool] = True  # computes on the previous layer's output ([route] does not)
    network_output: ClassVar[bool] = True  # network_predict may return it (False: [cost], skipped)
    data_is_flat: ClassVar[bool] = False  # reports image geometry, its output tensor is flat ([region])
    activation: str | None = None
    batch_normalize = 0
    classes = 0  # Darknet's l.classes (0 unless the family sets it)
    use_bin_output = False  # an xnor layer's binary output survives the parser (cleared by its readers)
    share_index: int | None = None  # the layer whose arrays this one uses instead of its own (AB share_index)
    dontload = dontloadscales = dontsave = False
    unbuildable: str | None = None  # why no PyTorch module can compute what Darknet does (refused at build time)

    def __init__(self, index: int, section: Section, inp: Shape, builder: Builder) -> None:
        self.index = index
        self.section = section
        self.input = inp
        self.dialect = builder.dialect
        self.path = builder.path
        self.output: Shape = inp
        self._reads: tuple[int, ...] = ()
        opts = builder.options(section, index, builder.unread(type(self)))
        self.dontload = bool(opts.int("dontload", 0))
        self.dontloadscales = bool(opts.int("dontloadscales", 0))
        self.dontsave = bool(opts.int("dontsave", 0))  # pjreddie only (absent elsewhere)
        self.parse(opts, builder)
        opts.ignore(*self.training_options, *self.dialect.common_options)
        builder.report_unused(opts)

    @classmethod
    def unread_by(cls, fork: str) -> frozenset[str]:
        """The options of this family that ``fork``'s parser never reads."""
        return cls.unread.get(fork, frozenset())

    # -- to be provided by each family ------------------------------------------------------

    def parse(self, opts: Options, builder: Builder) -> None:
        """Read the options and set ``self.output``."""
        raise NotImplementedError

    def arrays(self) -> list[ArraySpec]:
        """The arrays Darknet's saver writes for this layer, in file order."""
        return []

    def bflops(self) -> float | None:
        """What AlexeyAB prints as ``... N.NNN BF`` for this layer (``None``: it prints no count)."""
        return None

    def init_range(self, spec: ArraySpec) -> tuple[float, float]:
        """The uniform range ``darkweights init`` draws an array from (the fixtures' recipe): weights
        ``U(±sqrt(3/fan_in))``, biases and BN means ``U(±0.1)``, BN scales and variances ``U(0.5, 1.5)``."""
        if spec.role in ("scales", "rolling_variance"):
            return 0.5, 1.5
        if spec.role in ("biases", "rolling_mean"):
            return -0.1, 0.1
        if spec.fan_in < 0:
            raise NotImplementedError(
                f"layer family {type(self).__name__}: array {spec.name} declares no fan_in: set ArraySpec.fan_in "
                "or override init_range"
            )
        limit = math.sqrt(3.0 / max(spec.fan_in, 1))
        return -limit, limit

    def cells(self) -> Cells:
        """The ``inspect`` table cells (AlexeyAB's columns); the options cell defaults to :meth:`describe`."""
        return Cells(self.short_name or self.type, "", "", self.describe())

    def describe(self) -> str:
        """Short human summary of the main options, for ``inspect``."""
        return ""

    def head(self) -> Head | None:
        """The detection head this layer is (``None``: not a head)."""
        return None

    def params_per_channel(self) -> int | None:
        """Stored floats per output channel, when the arrays grow linearly with the output channels (for the
        hint that a size mismatch comes from ``classes=``); ``None`` otherwise."""
        return None

    # -- shared helpers ---------------------------------------------------------------------

    def reads(self) -> list[int]:
        """Indexes of the earlier layers this one reads besides its input (``layers=``, ``from=``)."""
        return list(self._reads)

    def read_layers(self, opts: Options, builder: Builder, key: str, *, first_only: bool = False) -> list[int]:
        """Resolve ``key`` (``from``/``layers``: relative or absolute indexes) as the layers this one reads."""
        raw = opts.ints(key, required=True) or []
        self._reads = tuple(builder.resolve(i, self.index, opts, key) for i in raw[: 1 if first_only else None])
        return list(self._reads)

    @property
    def uses_bn(self) -> bool:
        return bool(self.batch_normalize)

    @property
    def is_head(self) -> bool:
        return self.head() is not None

    @property
    def next_input(self) -> Shape:
        """What the next layer reads (differs from ``output`` only for antialiasing, §0.3)."""
        return self.output

    @property
    def line(self) -> int:
        return self.section.line

    @property
    def natural_shape(self) -> tuple[int, ...]:
        """The per-item shape of this layer's output tensor: ``(C, H, W)`` with image geometry, else flat."""
        out = self.next_input
        return out.chw if out.is_image and not self.data_is_flat else (out.size,)

    def stored(self) -> list[ArraySpec]:
        """Arrays with Darknet's load/save asymmetries applied (§1.7)."""
        specs = self.arrays()
        if self.dontload or self.dontsave or self.dontloadscales:
            specs = [
                s._replace(
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

    def error(
        self,
        message: str,
        cls: builtins.type[DarkweightsError] = ShapeError,
        *,
        option: Option | None = None,
        evidence: str | None = None,
    ) -> DarkweightsError:
        """An error located at this layer (its cfg file, the line of its section or of ``option``, its index)."""
        return cls(
            message,
            file=self.path,
            line=option.line if option is not None else self.line,
            layer=self.index,
            layer_type=self.type,
            evidence=evidence,
        )

    def shape_error(self, message: str, evidence: str | None = None) -> DarkweightsError:
        """:meth:`error` for impossible geometry, with the layer's input shape."""
        return self.error(f"{message} (input {self.input})", evidence=evidence)

    def unsupported(self, message: str) -> DarkweightsError:
        """:meth:`error` for a valid construct an operation cannot handle (no PyTorch or ONNX form ...)."""
        return self.error(f"[{self.section.name}] {message}", UnsupportedError)

    def need_image(self) -> None:
        if not self.input.is_image:
            raise self.shape_error(f"layer before [{self.section.name}] must output an image")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.index}: {self.input} -> {self.output}>"


def bn_specs(
    prefix: str, n: int, fields: tuple[str, ...] = ("scales", "rolling_mean", "rolling_variance")
) -> list[ArraySpec]:
    return [ArraySpec(f"{prefix}{f}", (n,), f, f"{prefix}{BN}.{BN_FIELDS[f]}") for f in fields]


def conv_specs(prefix: str, n: int, c_per_group: int, k: int, bn: bool, holder: str = CONV) -> list[ArraySpec]:
    """``load_convolutional_weights``: biases, [scales, rolling_mean, rolling_variance], weights.

    With BN the biases are BN's shift (the convolution itself has no bias).
    """
    specs = [ArraySpec(f"{prefix}biases", (n,), "biases", f"{prefix}{BN if bn else holder}.{BIAS}")]
    if bn:
        specs += bn_specs(prefix, n)
    weight = f"{prefix}{holder}.{WEIGHT}"
    specs.append(
        ArraySpec(f"{prefix}weights", (n, c_per_group, k, k), "weights", weight, False, True, True, c_per_group * k * k)
    )
    return specs


def connected_specs(prefix: str, inputs: int, outputs: int, bn: bool) -> list[ArraySpec]:
    """``load_connected_weights``: biases, weights, then the BN arrays (note: after the weights)."""
    specs = [
        ArraySpec(f"{prefix}biases", (outputs,), "biases", f"{prefix}{BN if bn else FC}.{BIAS}"),
        ArraySpec(f"{prefix}weights", (outputs, inputs), "weights", f"{prefix}{FC}.{WEIGHT}", True, True, True, inputs),
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


GIGA = 1000000000.0


def f32(x: float) -> float:
    """Round a Python float to the nearest float32 (what assigning to a C ``float`` does)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def i32(x: int) -> int:
    """A C ``int`` product: wrap to 32 bits."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x >= 1 << 31 else x


def window_size(k: int, sx: int, sy: int, dilation: int = 1) -> str:
    """AlexeyAB's ``size/strd(dil)`` cell: ``3x3/2``, ``1x1/1x2``, ``3x3/1(2)``."""
    s = f"{k}x{k}/{sx}" + (f"x{sy}" if sy != sx else "")
    return s + (f"({dilation})" if dilation > 1 else "")
