"""A parsed network: cfg → layers with shapes → the stored-array layout → bound weights.

:class:`~darkweights.layers.builder.Builder` replays Darknet's parser over the sections under
one fork's rules (``dialect="auto"``: every plausible fork, then :func:`darkweights.dialects.choose`).
``Network`` holds the result and places every stored array in a file
(:meth:`Network.layout`); with a weights file bound, :meth:`Network.arrays` returns
zero-copy views.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, Union

from . import dialects
from .cfg import CfgFile, read_cfg
from .dialects import Choice, Dialect, DialectLike
from .errors import ArgumentError, CfgError, DarkweightsWarning, ShapeError, WeightsError, did_you_mean
from .layers import HEADERS, Layer, Shape
from .layers.builder import Builder
from .limits import INT_MAX
from .weightsfile import (
    Header,
    Param,
    Source,
    as_buffer,
    export_key,
    map_body,
    parse_key,
    read_floats,
    read_header,
    source_name,
    view,
    write_weights,
)

if TYPE_CHECKING:
    import numpy as np

    from .view import LayerView

PathLike = Union[str, "os.PathLike[str]"]

# [net] options AB's parse_net_options reads (all training-only except the geometry ones)
NET_OPTIONS = (
    "B1",
    "B2",
    "adam",
    "adversarial_lr",
    "angle",
    "aspect",
    "attention",
    "augment_speed",
    "badlabels_rejection_percentage",
    "batch",
    "blur",
    "burn_in",
    "channels",
    "contrastive",
    "contrastive_color",
    "contrastive_jit_flip",
    "cutmix",
    "decay",
    "dynamic_minibatch",
    "ema_alpha",
    "eps",
    "equidistant_point",
    "exposure",
    "flip",
    "gamma",
    "gaussian_noise",
    "height",
    "hue",
    "inputs",
    "label_smooth_eps",
    "learning_rate",
    "learning_rate_min",
    "letter_box",
    "loss_scale",
    "max_batches",
    "max_chart_loss",
    "max_crop",
    "min_crop",
    "mixup",
    "momentum",
    "mosaic",
    "mosaic_bound",
    "num_sigmas_reject_badlabels",
    "optimized_memory",
    "policy",
    "power",
    "resize_step",
    "saturation",
    "scale",
    "scales",
    "seq_scales",
    "sequential_subdivisions",
    "sgdr_cycle",
    "sgdr_mult",
    "step",
    "steps",
    "subdivisions",
    "time_steps",
    "track",
    "try_fix_nan",
    "unsupervised",
    "use_cuda_graph",
    "weights_reject_freq",
    "width",
    "workspace_size_limit_MB",
    "show_receptive_field",
    "center",
    "rotate",
)


def check_sizes(layer: Layer) -> None:
    """Darknet holds outputs and array sizes in C ints: a cfg beyond them cannot work (its arithmetic
    wraps), and refusing it here means nothing is ever allocated from such a size."""
    out = layer.output
    if max(out.size, out.c * out.h * out.w, layer.next_input.size) > INT_MAX:
        raise layer.shape_error(f"output {out} has more than {INT_MAX:,} values: Darknet's int sizes would overflow")
    if min(out.c, out.h, out.w, out.size) < 0:
        raise layer.shape_error(f"negative output size {out.c}x{out.h}x{out.w} ({out.size})")
    for spec in layer.arrays():
        if min(spec.shape, default=0) < 0:
            raise layer.shape_error(f"array {spec.name} would have the negative shape {spec.shape}")
        if spec.count > INT_MAX:
            raise layer.shape_error(
                f"array {spec.name} {spec.shape} has more than {INT_MAX:,} values: Darknet's int sizes would overflow"
            )


class Network:
    """A Darknet network: its cfg, layers with shapes, stored-array layout and (optionally) weights."""

    def __init__(
        self,
        cfg: CfgFile,
        dialect: DialectLike = dialects.DEFAULT,
        *,
        width: int | None = None,
        height: int | None = None,
        channels: int | None = None,
    ) -> None:
        self.cfg = cfg
        self.dialect: Dialect = dialects.get(dialect)
        dialect = self.dialect
        self.dialect_choice = Choice(dialect, auto=False)  # set by load(dialect="auto")
        self.path = cfg.path
        builder = Builder(cfg, dialect)
        self._builder = builder
        net = builder.options(cfg.net)
        self.width = width if width is not None else net.int("width", 0)
        self.height = height if height is not None else net.int("height", 0)
        self.channels = channels if channels is not None else net.int("channels", 0)
        self.inputs = net.int("inputs", self.width * self.height * self.channels)
        if width is not None or height is not None or channels is not None:
            self.inputs = self.width * self.height * self.channels
        self.letter_box = net.int("letter_box", 0)
        net.ignore(*NET_OPTIONS)
        if builder.strict:  # AB/PJ never report unused [net] keys; hank-ai rejects them
            builder.report_unused(net)
        if self.inputs <= 0:
            raise CfgError(
                "[net] gives no input size: set width, height and channels (or inputs)",
                file=self.path,
                line=cfg.net.line,
            )
        if min(self.width, self.height, self.channels) < 0:
            raise CfgError("[net] width, height and channels must be positive", file=self.path, line=cfg.net.line)
        if max(self.inputs, self.width * self.height * self.channels) > INT_MAX:
            raise CfgError(
                f"[net] input {self.width}x{self.height}x{self.channels} has more than {INT_MAX:,} values: "
                "Darknet's int sizes would overflow",
                file=self.path,
                line=cfg.net.line,
            )
        shape = Shape(self.channels, self.height, self.width, self.inputs)
        self.input = shape
        for index, section in enumerate(cfg.layers):
            cls = HEADERS.get(section.name)
            if cls is None:
                known = sorted(h for h, c in HEADERS.items() if dialect.name in c.forks)
                raise CfgError(
                    f"unknown section [{section.name}]; {dialect.title} Darknet knows: "
                    + ", ".join(f"[{k}]" for k in known)
                    + did_you_mean(section.name, known, "[{}]"),
                    file=self.path,
                    line=section.line,
                    layer=index,
                    evidence=f"[{section.name}] at line {section.line}",
                )
            if dialect.name not in cls.forks:
                forks = ", ".join(d.title for d in dialects.DIALECTS.values() if d.name in cls.forks)
                raise CfgError(
                    f"[{section.name}] is not supported by {dialect.title} Darknet (only by {forks}): "
                    "choose another --dialect",
                    file=self.path,
                    line=section.line,
                    layer=index,
                    evidence=f"[{section.name}] at line {section.line}",
                )
            try:
                layer = cls(index, section, shape, builder)
            except ZeroDivisionError:  # any layer family: Darknet's C integer division would trap too
                raise ShapeError(
                    "an option is 0 where Darknet divides by it (stride, size, groups ...): Darknet "
                    "would crash (SIGFPE)",
                    file=self.path,
                    line=section.line,
                    layer=index,
                    layer_type=section.name,
                ) from None
            check_sizes(layer)
            builder.layers.append(layer)
            shape = layer.next_input
        self.layers: list[Layer] = builder.layers
        # hank-ai's create_network (darknet_cfg.cpp) refuses detectors whose input is not a multiple of 32. Not a
        # family method: hank-ai's C++ tests these two type names (not [Gaussian_yolo]) of the last layer only
        m = dialect.detector_input_multiple
        if (
            m > 1
            and self.layers
            and self.layers[-1].type in ("yolo", "region")
            and (self.width % m or self.height % m or min(self.width, self.height) < m)
        ):
            raise CfgError(
                f"width={self.width} and height={self.height} must be multiples of {m} (at least {m}) "
                f"for a network ending in [yolo] or [region]: {dialect.title} Darknet refuses this cfg",
                file=self.path,
                line=cfg.net.line,
            )
        self.header: Header = Header.for_dialect(dialect)
        self.weights_path: str | None = None  # None when the weights were given in memory
        self._source: Source | None = None  # the bound file's path, or its bytes
        self.cutoff: int | None = None  # number of layers a partial weights file holds
        self._body: np.ndarray | None = None  # mapped on first use
        self._params: list[Param] | None = None
        # texts of the data files the cfg names (tree=, map=) by the name written there; looked up before the disk
        self.data_files: dict[str, str] = {}

    # -- structure ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int | slice) -> LayerView | list[LayerView]:
        """``net[0]`` is layer 0 (negative indexes and slices too): a :class:`~darkweights.view.LayerView`
        whose ``.weights``, ``.biases``, ``.batchnorm`` are zero-copy arrays."""
        from .view import LayerView

        if isinstance(index, slice):
            return [LayerView(self, i) for i in range(*index.indices(len(self.layers)))]
        i = index.__index__()
        n = len(self.layers)
        if not -n <= i < n:
            raise IndexError(f"layer {index} out of range: the network has {n} layers (0..{n - 1})")
        return LayerView(self, i % n)

    def __iter__(self) -> Iterator[LayerView]:
        from .view import LayerView

        return (LayerView(self, i) for i in range(len(self.layers)))

    def __repr__(self) -> str:
        weights = (
            f", weights {os.path.basename(self.weights_path)}"
            if self.weights_path
            else ", weights in memory"
            if self.has_weights
            else ""
        )
        return (
            f"<Network {os.path.basename(self.path or '?')}: {len(self.layers)} layers, input {self.input}, "
            f"{self.param_count():,} parameters, dialect {self.dialect.name}{weights}>"
        )

    def summary(self, *, stats: bool = False) -> str:
        """The ``darkweights inspect`` table as text (AlexeyAB's layer table with BFLOPs, totals,
        header, dialect); ``stats`` adds per-array statistics. :func:`darkweights.report.inspect`
        returns it as data."""
        from .report import inspect

        return inspect(self, stats=stats).to_text()

    @property
    def output_index(self) -> int:
        """The layer ``network_predict`` returns: the last one that is not ``[cost]``."""
        i = len(self.layers) - 1
        while i > 0 and not self.layers[i].network_output:
            i -= 1
        return i

    def layout(self, header: Header | None = None, *, mode: str = "save", cutoff: int | None = None) -> list[Param]:
        """Every stored array with its byte offset, in file order.

        ``mode="load"`` follows ``load_weights_upto`` (skips ``dontload`` layers ...),
        ``mode="save"`` follows ``save_weights_upto``; ``cutoff`` keeps layers ``< cutoff``.
        """
        header = header or self.header
        offset = header.size
        out: list[Param] = []
        for layer in self.layers[:cutoff]:
            for spec in layer.stored():
                if not (spec.on_load if mode == "load" else spec.on_save):
                    continue
                p = Param(
                    export_key(layer.index, spec.name),
                    layer.index,
                    spec.name,
                    spec.role,
                    spec.shape,
                    offset,
                    spec.transposable and header.transpose,
                    f"layers.{layer.index}.{spec.torch}" if spec.torch else "",
                )
                out.append(p)
                offset += p.nbytes
        return out

    def param_count(self, mode: str = "save") -> int:
        return sum(p.count for p in self.layout(mode=mode))

    def weights_bytes(self, header: Header | None = None) -> int:
        """Exact size Darknet's ``save_weights`` writes for this cfg."""
        header = header or Header.for_dialect(self.dialect)
        return header.size + 4 * self.param_count("save")

    # -- weights --------------------------------------------------------------------------

    def load_weights(self, source: Source, *, cutoff: int | None = None, allow_partial: bool = True) -> Network:
        """Bind weights: validate header and exact size, then view the body without copying.

        ``source`` is a path (memory-mapped) or the file's bytes already in memory
        (``bytes``, ``bytearray``, ``memoryview``, ``mmap``: viewed read-only).
        """
        if cutoff is not None and (isinstance(cutoff, bool) or not isinstance(cutoff, int) or cutoff < 0):
            raise ArgumentError(
                f"cutoff={cutoff!r}: expected a layer count (an integer >= 0), not a Python slice",
                file=source_name(source),
            )
        buf = as_buffer(source)
        if buf is not None:
            source = buf
        header, size = read_header(source, self.dialect)
        params = self.layout(header, mode="load", cutoff=cutoff)
        expected = params[-1].end if params else header.size
        layers_held = cutoff
        # with an explicit cutoff the rest of the file is not ours to check (load_weights_upto)
        if size != expected and not (cutoff is not None and size > expected):
            layers_held = self._diagnose_size(source, header, size, params, cutoff, allow_partial)
            params = [p for p in params if p.layer < layers_held]
            expected = params[-1].end if params else header.size
        self._body = None
        self._nfloats = (expected - header.size) // 4
        self.header, self._params, self._source = header, params, source
        self.weights_path = None if buf is not None else str(source)
        self.cutoff = layers_held if layers_held is not None and layers_held < len(self.layers) else None
        self._check_values(source)
        return self

    def _diagnose_size(
        self, source: Source, header: Header, size: int, params: list[Param], cutoff: int | None, allow_partial: bool
    ) -> int:
        """Explain a size mismatch; return the layer count of a partial (``.conv.N``) file."""
        expected = params[-1].end if params else header.size
        name = os.path.basename(self.path or "cfg")
        path = source_name(source)
        classes = self._classes_hint(size - expected) if cutoff is None else ""
        if size > expected:
            raise WeightsError(
                f"{size - expected:,} trailing bytes: the cfg {name} accounts for {expected:,} bytes but the file has "
                f"{size:,}. Most likely the cfg does not belong to these weights (e.g. a different classes=/filters= "
                f"or a missing layer); Darknet would silently ignore the rest{classes}",
                file=path,
                offset=expected,
            )
        # the file ends early: at a layer boundary it is a partial file like darknet53.conv.74
        layer_end = {p.layer: p.end for p in params}  # the last array of each layer wins
        if allow_partial and size in {header.size, *layer_end.values()}:
            # it holds every layer before the first one whose arrays start at or after the end
            held = next(p.layer for p in params if p.offset >= size)
            warnings.warn(
                f"{path}: partial weights file: holds layers 0..{held - 1} of {len(self.layers)} "
                f"({size:,} of {expected:,} bytes), like darknet's `partial` output (.conv.{held}); "
                "later layers have no weights",
                DarkweightsWarning,
                stacklevel=3,
            )
            return held
        first = next(p for p in params if p.end > size)
        layer = self.layers[first.layer]
        raise WeightsError(
            f"file ends inside array {first.name} {first.shape} (bytes {first.offset:,}..{first.end:,}, cfg line "
            f"{layer.line}): the cfg needs {expected:,} bytes, {expected - size:,} are missing. Likely a truncated "
            f"download, or a cfg that does not belong to these weights{classes}",
            file=path,
            offset=size,
            layer=first.layer,
            layer_type=layer.type,
        )

    def _classes_hint(self, extra_bytes: int) -> str:
        """If changing every head's ``classes=`` explains the size difference, say which value fits."""
        heads = [h for h in (L.head() for L in self.layers) if h is not None and h.anchors]
        per_class = 0
        for head in heads:
            # each extra class adds `slots` output channels to the layer before the head
            per_channel = self.layers[head.index - 1].params_per_channel()
            if per_channel is None:
                return ""
            per_class += head.slots * per_channel
        if not heads or per_class == 0 or extra_bytes % (4 * per_class):
            return ""
        k = heads[-1].classes + extra_bytes // (4 * per_class)
        if k < 1 or any(h.classes != heads[-1].classes for h in heads):
            return ""
        filters = ", ".join(sorted({str(h.slots * (k + h.entries - h.classes)) for h in heads}))
        return (
            f". These weights fit this cfg with classes={k} (filters={filters} in the [convolutional] before each head)"
        )

    def _check_values(self, source: Source) -> None:
        """Cheap plausibility check: BN variances must be positive (catches misaligned cfgs)."""
        path = source_name(source)
        for p in self._params or ():
            if p.role == "rolling_variance":
                bad = sum(1 for v in read_floats(source, p.offset, p.count) if not v > 0)
                if bad:
                    warnings.warn(
                        f"{path}: layer {p.layer} [{self.layers[p.layer].section.name}]: {p.name} has "
                        f"{bad} non-positive or NaN values at byte {p.offset:,}: the cfg may not match "
                        "these weights from this layer on",
                        DarkweightsWarning,
                        stacklevel=3,
                    )
                    return

    @property
    def weights_source(self) -> Source | None:
        """The bound weights: their path, or a read-only ``memoryview`` of bytes given in memory."""
        return self._source

    @property
    def has_weights(self) -> bool:
        return self._params is not None

    def params(self) -> list[Param]:
        """The layout of the bound file (load order), or of a fresh save."""
        return list(self._params) if self._params is not None else self.layout()

    def arrays(self, *, copy: bool = False, layers: Iterable[int] | None = None) -> dict[str, np.ndarray]:
        """Ordered ``key -> array`` of every stored array: zero-copy views unless ``copy``."""
        if self._params is None or self._source is None:
            raise WeightsError(
                "no weights loaded: pass weights= to darkweights.load() or call load_weights()", file=self.path
            )
        import numpy as np

        if self._body is None:
            self._body = map_body(self._source, self.header, self._nfloats)
        keep = set(layers) if layers is not None else None
        out = {}
        for p in self._params:
            if keep is None or p.layer in keep:
                arr = view(self._body, self.header, p)
                out[p.key] = np.array(arr) if copy else arr
        return out

    def layer_arrays(self, index: int) -> dict[str, np.ndarray]:
        """The arrays of one layer keyed by Darknet's name (``biases``, ``weights`` ...)."""
        return {parse_key(k)[1]: v for k, v in self.arrays(layers=[index]).items()}

    def to_torch(self, **options: Any) -> Any:
        """A ``torch.nn.Module`` computing what Darknet computes (needs the ``[torch]`` extra)."""
        from .torch import build

        return build(self, **options)

    def to_onnx(self, path: PathLike, **options: Any) -> Any:
        """Write the network as an ONNX model (needs the ``[onnx]`` extra); see
        :func:`darkweights.onnx.export_onnx` for the options."""
        from .onnx.exporter import export_onnx

        return export_onnx(self, path, **options)

    def save_weights(
        self,
        path: PathLike | IO[bytes],
        *,
        arrays: Mapping[str, object] | None = None,
        header: Header | None = None,
        cutoff: int | None = None,
        allow_nonfinite: bool = False,
    ) -> int:
        """Write a ``.weights`` file (Darknet's saver order) to a path (atomically) or an open binary
        file: ``net.save_weights(path)`` = ``darkweights.save_weights(net, path)``; ``arrays``
        (export names) default to the bound ones; NaN/Inf values are refused unless ``allow_nonfinite``."""
        header = header or self.header
        if arrays is None:
            arrays = self.arrays()
        if cutoff is None and self.cutoff is not None:
            cutoff = self.cutoff
        params = self.layout(header, mode="save", cutoff=cutoff)
        source = source_name(self._source) if self._source is not None else ""
        return write_weights(
            path,
            header,
            params,
            arrays,
            source=source,
            inputs=[self.weights_path, self.path],
            allow_nonfinite=allow_nonfinite,
        )

    def save(self, path: PathLike | IO[bytes], **options: Any) -> int:
        """Write the network in the format of ``path``'s extension (``.weights`` byte-identical to the file it
        came from, ``.npz``, ``.safetensors``, ``.pt``, ``.onnx``): :func:`darkweights.save` (``options``:
        ``header=``, ``seen=``, ``cutoff=`` for ``.weights``; the export options for ``.onnx``)."""
        from .export import save

        return save(self, path, **options)

    def check_usable(self, purpose: str, *, allow_partial: bool = False, allow_nonfinite: bool = False) -> None:
        """Refuse weights that would run as if whole: a partial file (``.conv.N``), NaN/Inf values (the one
        policy of ``detect``, ``export``, ``verify``, ``val``; see :mod:`darkweights.policy`)."""
        from .policy import check_usable

        check_usable(self, purpose, allow_partial=allow_partial, allow_nonfinite=allow_nonfinite)


def load(
    cfg: PathLike,
    weights: Source | None = None,
    *,
    dialect: DialectLike = "auto",
    width: int | None = None,
    height: int | None = None,
    channels: int | None = None,
    cutoff: int | None = None,
    cfg_text: str | None = None,
    provenance: str | None = None,
) -> Network:
    """Parse a cfg (and bind its weights): ``darkweights.load("yolov4.cfg", "yolov4.weights")``.

    ``dialect`` names the fork whose rules apply; ``"auto"`` (the default) decides from the files
    and records why in ``net.dialect_choice``. ``provenance`` is a fork named by the files' own
    metadata (a fixture's ``layers.json``), which auto trusts unless that fork refuses the cfg.
    A bare name that is not a file (``"yolov4"``) is a bundled model (:mod:`darkweights.models`).

    >>> import darkweights
    >>> net = darkweights.load("yolov4")                 # a bundled cfg, no weights: shapes and layout only
    >>> net[0].shapes["weights"], net.layers[-1].type, net.weights_bytes()
    ((32, 3, 3, 3), 'yolo', 257717640)
    >>> darkweights.load("yolov4", width=416, height=416)[0].output
    Shape(c=32, h=416, w=416, size=5537792)
    """
    if cfg_text is None:
        from .models import resolve

        cfg, weights = resolve(cfg, weights)
    name = dialects.check(dialect)
    sizes = dict(width=width, height=height, channels=channels)
    if name == dialects.AUTO:
        from .auto import auto_network

        net = auto_network(cfg, cfg_text, weights, provenance, sizes)
    else:
        net = Network(read_cfg(cfg, dialect=name, text=cfg_text), name, **sizes)
    if weights is not None:
        net.load_weights(weights, cutoff=cutoff)
    return net
