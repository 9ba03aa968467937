"""A parsed network: cfg → layers with shapes → the stored-array layout → bound weights.

``Builder`` replays Darknet's parser (``parse_network_cfg_custom``): each layer's input is
the previous layer's output, layers that read other layers resolve relative indexes.
``Network`` holds the result and places every stored array in a file
(:meth:`Network.layout`); with a weights file bound, :meth:`Network.arrays` returns
zero-copy views.
"""

from __future__ import annotations

import os
import warnings
from typing import IO, TYPE_CHECKING, Iterable, Mapping, Optional, Sequence, Union

from .activations import ACTIVATIONS
from .cfg import CfgFile, Options, Section, check_dialect, read_cfg
from .errors import ArgumentError, CfgError, DarkweightsWarning, ShapeError, WeightsError
from .layers import HEADERS, Layer, Shape
from .limits import INT_MAX
from .weightsfile import (Header, Param, Source, as_buffer, map_body, read_floats, read_header, source_name, view,
                          write_weights)

if TYPE_CHECKING:
    import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

FORK_NAMES = {"alexeyab": "AlexeyAB", "pjreddie": "pjreddie", "hankai": "hank-ai"}

# [net] options AB's parse_net_options reads (all training-only except the geometry ones)
NET_OPTIONS = (
    "B1", "B2", "adam", "adversarial_lr", "angle", "aspect", "attention", "augment_speed",
    "badlabels_rejection_percentage", "batch", "blur", "burn_in", "channels", "contrastive", "contrastive_color",
    "contrastive_jit_flip", "cutmix", "decay", "dynamic_minibatch", "ema_alpha", "eps", "equidistant_point",
    "exposure", "flip", "gamma", "gaussian_noise", "height", "hue", "inputs", "label_smooth_eps", "learning_rate",
    "learning_rate_min", "letter_box", "loss_scale", "max_batches", "max_chart_loss", "max_crop", "min_crop", "mixup",
    "momentum", "mosaic", "mosaic_bound", "num_sigmas_reject_badlabels", "optimized_memory", "policy", "power",
    "resize_step", "saturation", "scale", "scales", "seq_scales", "sequential_subdivisions", "sgdr_cycle", "sgdr_mult",
    "step", "steps", "subdivisions", "time_steps", "track", "try_fix_nan", "unsupervised", "use_cuda_graph",
    "weights_reject_freq", "width", "workspace_size_limit_MB", "show_receptive_field", "center", "rotate",
)


class Builder:
    """Replays Darknet's parser over the sections; layers call back into it."""

    def __init__(self, cfg: CfgFile, dialect: str) -> None:
        self.cfg = cfg
        self.dialect = dialect
        self.path = cfg.path
        self.strict = dialect == "hankai"
        self.layers: list[Layer] = []

    def options(self, section: Section, index: Optional[int] = None) -> Options:
        return Options(section, path=self.path, strict=self.strict, layer=index)

    def report_unused(self, opts: Options) -> None:
        for opt in opts.unused():
            if self.strict:
                raise opts.error(f"option {opt.key}={opt.value} is unused or invalid in [{opts.section.name}] "
                                 "(hank-ai rejects unknown keys)", opt)
            dup = opts.section.find(opt.key)
            why = f"duplicate of line {dup.line}, the first one wins" if dup is not None and dup is not opt else \
                "not an option of this section"
            warnings.warn(f"{self.path}:{opt.line}: layer {opts.layer} [{opts.section.name}]: unused option "
                          f"{opt.key}={opt.value} ({why})", DarkweightsWarning, stacklevel=4)

    def resolve(self, value: int, current: int, opts: Options, key: str) -> int:
        """Relative (negative) or absolute layer index; must name an already-parsed layer."""
        index = current + value if value < 0 else value
        if not 0 <= index < current:
            raise opts.error(f"{key} refers to layer {value} -> {index}, which is not an earlier layer "
                             f"(this is layer {current})", opts.section.find(key), ShapeError)
        return index

    def activation(self, opts: Options, default: str, layer: Layer) -> str:
        name = opts.str("activation", default) or default
        known = ACTIVATIONS[self.dialect]
        if name not in known:
            raise opts.error(f"unknown activation {name!r} (Darknet would silently use relu); "
                             f"{FORK_NAMES[self.dialect]} knows: {', '.join(known)}", opts.section.find("activation"))
        return name


def check_sizes(layer: Layer, builder: Builder) -> None:
    """Darknet holds outputs and array sizes in C ints: a cfg beyond them cannot work (its arithmetic
    wraps), and refusing it here means nothing is ever allocated from such a size."""
    out = layer.output
    if max(out.size, out.c * out.h * out.w, layer.next_input.size) > INT_MAX:
        raise layer.shape_error(f"output {out} has more than {INT_MAX:,} values: Darknet's int sizes would overflow",
                                builder)
    if min(out.c, out.h, out.w, out.size) < 0:
        raise layer.shape_error(f"negative output size {out.c}x{out.h}x{out.w} ({out.size})", builder)
    for spec in layer.arrays():
        if min(spec.shape, default=0) < 0:
            raise layer.shape_error(f"array {spec.name} would have the negative shape {spec.shape}", builder)
        if spec.count > INT_MAX:
            raise layer.shape_error(f"array {spec.name} {spec.shape} has more than {INT_MAX:,} values: Darknet's "
                                    "int sizes would overflow", builder)


class Network:
    """A Darknet network: its cfg, layers with shapes, stored-array layout and (optionally) weights."""

    def __init__(self, cfg: CfgFile, dialect: str = "alexeyab", *, width: Optional[int] = None,
                 height: Optional[int] = None, channels: Optional[int] = None) -> None:
        self.cfg = cfg
        self.dialect = check_dialect(dialect)
        self.path = cfg.path
        builder = Builder(cfg, dialect)
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
            raise CfgError("[net] gives no input size: set width, height and channels (or inputs)",
                           file=self.path, line=cfg.net.line)
        if min(self.width, self.height, self.channels) < 0:
            raise CfgError("[net] width, height and channels must be positive", file=self.path, line=cfg.net.line)
        if max(self.inputs, self.width * self.height * self.channels) > INT_MAX:
            raise CfgError(f"[net] input {self.width}x{self.height}x{self.channels} has more than {INT_MAX:,} values: "
                           "Darknet's int sizes would overflow", file=self.path, line=cfg.net.line)
        shape = Shape(self.channels, self.height, self.width, self.inputs)
        self.input = shape
        for index, section in enumerate(cfg.layers):
            cls = HEADERS.get(section.name)
            if cls is None:
                known = sorted(h for h, c in HEADERS.items() if dialect in c.forks)
                raise CfgError(f"unknown section [{section.name}]; {FORK_NAMES[dialect]} Darknet knows: "
                               + ", ".join(f"[{k}]" for k in known), file=self.path, line=section.line, layer=index)
            if dialect not in cls.forks:
                forks = ", ".join(FORK_NAMES[f] for f in sorted(cls.forks))
                raise CfgError(f"[{section.name}] is not supported by {FORK_NAMES[dialect]} Darknet (only by {forks}); "
                               "choose another dialect", file=self.path, line=section.line, layer=index)
            try:
                layer = cls(index, section, shape, builder)
            except ZeroDivisionError:  # any layer family: Darknet's C integer division would trap too
                raise ShapeError("an option is 0 where Darknet divides by it (stride, size, groups ...): Darknet "
                                 "would crash (SIGFPE)", file=self.path, line=section.line, layer=index,
                                 layer_type=section.name) from None
            check_sizes(layer, builder)
            builder.layers.append(layer)
            shape = layer.next_input
        self.layers: list[Layer] = builder.layers
        # hank-ai's create_network (darknet_cfg.cpp) refuses detectors whose input is not a multiple of 32
        if builder.strict and self.layers and self.layers[-1].type in ("yolo", "region") and (
                self.width % 32 or self.height % 32 or min(self.width, self.height) < 32):
            raise CfgError(f"width={self.width} and height={self.height} must be multiples of 32 (at least 32) for a "
                           "network ending in [yolo] or [region]: hank-ai Darknet refuses this cfg",
                           file=self.path, line=cfg.net.line)
        self.header: Header = Header.for_dialect(dialect)
        self.weights_path: Optional[str] = None  # None when the weights were given in memory
        self._source: Optional[Source] = None  # the bound file's path, or its bytes
        self.cutoff: Optional[int] = None  # number of layers a partial weights file holds
        self._body: Optional["np.ndarray"] = None  # mapped on first use
        self._params: Optional[list[Param]] = None

    # -- structure ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        return (f"<Network {os.path.basename(self.path or '?')}: {len(self.layers)} layers, input {self.input}, "
                f"{self.param_count():,} parameters, dialect {self.dialect}>")

    @property
    def output_index(self) -> int:
        """The layer ``network_predict`` returns: the last one that is not ``[cost]``."""
        i = len(self.layers) - 1
        while i > 0 and self.layers[i].type == "cost":
            i -= 1
        return i

    def layout(self, header: Optional[Header] = None, *, mode: str = "save",
               cutoff: Optional[int] = None) -> list[Param]:
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
                p = Param(f"layer_{layer.index:03d}.{spec.name}", layer.index, spec.name, spec.role, spec.shape,
                          offset, spec.transposable and header.transpose,
                          f"layers.{layer.index}.{spec.torch}" if spec.torch else "")
                out.append(p)
                offset += p.nbytes
        return out

    def param_count(self, mode: str = "save") -> int:
        return sum(p.count for p in self.layout(mode=mode))

    def weights_bytes(self, header: Optional[Header] = None) -> int:
        """Exact size Darknet's ``save_weights`` writes for this cfg."""
        header = header or Header.for_dialect(self.dialect)
        return header.size + 4 * self.param_count("save")

    # -- weights --------------------------------------------------------------------------

    def load_weights(self, source: Source, *, cutoff: Optional[int] = None, allow_partial: bool = True) -> "Network":
        """Bind weights: validate header and exact size, then view the body without copying.

        ``source`` is a path (memory-mapped) or the file's bytes already in memory
        (``bytes``, ``bytearray``, ``memoryview``, ``mmap``: viewed read-only).
        """
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

    def _diagnose_size(self, source: Source, header: Header, size: int, params: list[Param],
                       cutoff: Optional[int], allow_partial: bool) -> int:
        """Explain a size mismatch; return the layer count of a partial (``.conv.N``) file."""
        expected = params[-1].end if params else header.size
        name = os.path.basename(self.path or "cfg")
        path = source_name(source)
        classes = self._classes_hint(size - expected) if cutoff is None else ""
        if size > expected:
            raise WeightsError(
                f"{size - expected:,} trailing bytes: the cfg {name} accounts for {expected:,} bytes but the file has "
                f"{size:,}. Most likely the cfg does not belong to these weights (e.g. a different classes=/filters= "
                f"or a missing layer); Darknet would silently ignore the rest{classes}", file=path, offset=expected)
        # the file ends early: at a layer boundary it is a partial file like darknet53.conv.74
        layer_end = {p.layer: p.end for p in params}  # the last array of each layer wins
        if allow_partial and size in {header.size, *layer_end.values()}:
            # it holds every layer before the first one whose arrays start at or after the end
            held = next(p.layer for p in params if p.offset >= size)
            warnings.warn(f"{path}: partial weights file: holds layers 0..{held - 1} of {len(self.layers)} "
                          f"({size:,} of {expected:,} bytes), like darknet's `partial` output (.conv.{held}); "
                          "later layers have no weights", DarkweightsWarning, stacklevel=3)
            return held
        first = next(p for p in params if p.end > size)
        layer = self.layers[first.layer]
        raise WeightsError(
            f"file ends inside array {first.name} {first.shape} (bytes {first.offset:,}..{first.end:,}, cfg line "
            f"{layer.line}): the cfg needs {expected:,} bytes, {expected - size:,} are missing. Likely a truncated "
            f"download, or a cfg that does not belong to these weights{classes}", file=path, offset=size,
            layer=first.layer, layer_type=layer.type)

    def _classes_hint(self, extra_bytes: int) -> str:
        """If changing every head's ``classes=`` explains the size difference, say which value fits."""
        heads = [L for L in self.layers if L.type in ("yolo", "gaussian_yolo", "region")]
        per_class = 0
        for head in heads:
            conv = self.layers[head.index - 1]
            if conv.type != "convolutional" or conv.share_index is not None:
                return ""
            anchors = len(head.mask) if head.type != "region" else head.num
            # each extra class adds `anchors` filters: their weights, bias and (with BN) 3 BN values
            per_class += anchors * (conv.input.c // conv.groups * conv.size ** 2 + 1
                                    + (3 if conv.batch_normalize else 0))
        if not heads or per_class == 0 or extra_bytes % (4 * per_class):
            return ""
        k = heads[-1].classes + extra_bytes // (4 * per_class)
        if k < 1 or any(h.classes != heads[-1].classes for h in heads):
            return ""
        filters = ", ".join(sorted({str((len(h.mask) if h.type != "region" else h.num) * (k + h.entries
                                        if h.type != "region" else k + h.coords + 1)) for h in heads}))
        return (f". These weights fit this cfg with classes={k} (filters={filters} in the [convolutional] before "
                "each head)")

    def _check_values(self, source: Source) -> None:
        """Cheap plausibility check: BN variances must be positive (catches misaligned cfgs)."""
        path = source_name(source)
        for p in self._params or ():
            if p.role == "rolling_variance":
                bad = sum(1 for v in read_floats(source, p.offset, p.count) if not v > 0)
                if bad:
                    warnings.warn(f"{path}: layer {p.layer} [{self.layers[p.layer].section.name}]: {p.name} has "
                                  f"{bad} non-positive or NaN values at byte {p.offset:,}: the cfg may not match "
                                  "these weights from this layer on", DarkweightsWarning, stacklevel=3)
                    return

    @property
    def weights_source(self) -> Optional[Source]:
        """The bound weights: their path, or a read-only ``memoryview`` of bytes given in memory."""
        return self._source

    @property
    def has_weights(self) -> bool:
        return self._params is not None

    def params(self) -> list[Param]:
        """The layout of the bound file (load order), or of a fresh save."""
        return list(self._params) if self._params is not None else self.layout()

    def arrays(self, *, copy: bool = False, layers: Optional[Iterable[int]] = None) -> dict[str, "np.ndarray"]:
        """Ordered ``key -> array`` of every stored array: zero-copy views unless ``copy``."""
        if self._params is None or self._source is None:
            raise WeightsError("no weights loaded: pass weights= to darkweights.load() or call load_weights()",
                               file=self.path)
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

    def layer_arrays(self, index: int) -> dict[str, "np.ndarray"]:
        """The arrays of one layer keyed by Darknet's name (``biases``, ``weights`` ...)."""
        prefix = f"layer_{index:03d}."
        return {k[len(prefix):]: v for k, v in self.arrays(layers=[index]).items()}

    def to_torch(self, **options: object) -> "object":
        """A ``torch.nn.Module`` computing what Darknet computes (needs the ``[torch]`` extra)."""
        from .torch import build

        return build(self, **options)

    def save_weights(self, dest: Union[PathLike, IO[bytes]], arrays: Optional[Mapping[str, object]] = None, *,
                     header: Optional[Header] = None, cutoff: Optional[int] = None) -> int:
        """Write a ``.weights`` file (Darknet's saver order) to a path (atomically) or an open binary
        file; arrays default to the bound ones."""
        header = header or self.header
        if arrays is None:
            arrays = self.arrays()
        if cutoff is None and self.cutoff is not None:
            cutoff = self.cutoff
        params = self.layout(header, mode="save", cutoff=cutoff)
        source = source_name(self._source) if self._source is not None else ""
        return write_weights(dest, header, params, arrays, source=source, inputs=[self.weights_path, self.path])


def load(cfg: PathLike, weights: Optional[Source] = None, *, dialect: str = "alexeyab",
         width: Optional[int] = None, height: Optional[int] = None, channels: Optional[int] = None,
         cutoff: Optional[int] = None, cfg_text: Optional[str] = None) -> Network:
    """Parse a cfg (and bind its weights): ``darkweights.load("yolov4.cfg", "yolov4.weights")``."""
    check_dialect(dialect)
    parsed = read_cfg(cfg, dialect=dialect, text=cfg_text)
    net = Network(parsed, dialect, width=width, height=height, channels=channels)
    if weights is not None:
        net.load_weights(weights, cutoff=cutoff)
    return net


def header_from(value: Union[Header, Mapping, Sequence[int], None], dialect: str) -> Optional[Header]:
    """Accept a Header, a dict from ``Header.as_dict`` or ``(major, minor, revision[, seen])``."""
    if value is None or isinstance(value, Header):
        return value
    try:
        if isinstance(value, Mapping):
            vals = [int(value["major"]), int(value["minor"]), int(value["revision"]), int(value.get("seen", 0))]
        else:
            vals = [int(v) for v in value]
            vals += [0] * (len(vals) == 3)
        if len(vals) != 4 or not all(-2 ** 31 <= v < 2 ** 31 for v in vals[:3]) or not 0 <= vals[3] < 2 ** 64:
            raise ValueError
    except (ValueError, TypeError, KeyError, OverflowError):
        raise ArgumentError(f"header {value!r:.80}: expected major, minor, revision[, seen] (32-bit ints, seen "
                            "unsigned)") from None
    return Header.make(vals[0], vals[1], vals[2], vals[3], dialect)
