"""``export_onnx(net, path)``: the network as an ONNX graph computing what Darknet computes.

The portable PyTorch model (:mod:`.portable`) is traced with PyTorch's TorchScript exporter one layer
at a time (:mod:`.trace`); the stored arrays become initializers under the project's stable names
(``layer_012.weights``, ``layer_012.rolling_variance``, ``layer_003.input_layer.weights``...),
unmodified and streamed from the model's arrays into the output (:mod:`.writer`), so that
:func:`~darkweights.onnx.pack_onnx` writes them back byte for byte. Everything else the graph holds
(blur kernels, index maps, shape constants) keeps the exporter's names under the layer's scope.

Graph interface: input ``input`` ``(N, C, H, W)`` float32; outputs ``layer_<i>`` (``raw``: each head
in Darknet's ``l.output`` layout; ``all_outputs``: every layer) or ``boxes``/``scores`` (``decoded``)
or ``detections`` (``nms``), see :mod:`.decode`. ``metadata_props`` carry the cfg, dialect, header and
input size (what ``.safetensors`` files carry, so the file alone rebuilds the ``.weights``) plus the
export options, output layout, anchors and class names.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

from ..errors import DarkweightsError, UnsupportedError
from ..layers import names
from ..weightsfile import layer_name
from .writer import MAX_PROTO, Blob

if TYPE_CHECKING:
    from ..network import Network

PathLike = Union[str, "os.PathLike[str]"]
OUTPUT_KINDS = ("raw", "decoded", "nms")
MIN_OPSET = 13


def default_opset() -> int:
    """The newest opset PyTorch's TorchScript exporter declares complete (20 with torch 2.13), which the
    pinned onnxruntime range (>= 1.17) runs."""
    return _opset_limit("ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 17)


def max_opset() -> int:
    """The newest opset the exporter accepts at all (23 with torch 2.13)."""
    return _opset_limit("ONNX_MAX_OPSET", default_opset())


def _opset_limit(constant: str, fallback: int) -> int:
    """One of torch's opset limits, capped by what the installed onnx knows."""
    import onnx
    from torch.onnx import _constants

    return int(min(getattr(_constants, constant, fallback), onnx.defs.onnx_opset_version()))


@dataclass
class ExportInfo:
    """What :func:`export_onnx` wrote."""

    path: str
    bytes: int
    opset: int
    inputs: list[str]
    outputs: list[str]
    initializers: int
    metadata: dict[str, str] = field(default_factory=dict)


def export_onnx(
    net: Network,
    path: PathLike,
    *,
    opset: int | None = None,
    batch: int | str = 1,
    fp16: bool = False,
    outputs: str = "raw",
    all_outputs: bool = False,
    names: Sequence[str] | None = None,
    fuse_bn: bool = False,
    bug_compatible: bool = False,
    thresh: float | None = None,
    nms: float | None = None,
    max_detections: int | None = None,
    letterbox: bool = False,
) -> ExportInfo:
    """Write ``net`` (cfg + weights) as an ONNX model at ``path`` (atomically).

    ``batch``: a fixed batch size or ``"dynamic"``; ``fp16``: weights and activations in float16
    (input and outputs stay float32; such a file cannot be packed back exactly); ``outputs``:
    ``raw`` (heads in Darknet's layout), ``decoded`` (boxes + per-class scores as ``detect``
    computes them before NMS) or ``nms`` (ONNX ``NonMaxSuppression`` in the graph); ``all_outputs``:
    every layer's output as ``layer_<i>`` (raw only). ``fuse_bn`` exports Darknet's folded weights.

    Memory stays near one layer's activations plus the weights themselves: the graph is traced one
    layer at a time (:mod:`.trace`) and the initializers stream from the model's arrays into the output
    (:mod:`.writer`).
    """
    import onnx

    from .. import __version__
    from ..meta import Keys, Metadata
    from ..progress import bar
    from ..torch import build
    from ..weightsfile import atomic_output
    from .portable import portable_model
    from .trace import INPUT_NAME, trace_model
    from .writer import write_model

    if outputs not in OUTPUT_KINDS:
        raise DarkweightsError(f"--outputs must be one of {', '.join(OUTPUT_KINDS)}, not {outputs!r}")
    if all_outputs and outputs != "raw":
        raise DarkweightsError("--all-outputs applies to --outputs raw")
    dynamic = batch == "dynamic"
    size = 1  # the traced batch
    if not dynamic:
        try:
            size = int(batch)
        except (TypeError, ValueError):
            raise DarkweightsError(f"--batch must be a positive integer or 'dynamic', not {batch!r}") from None
        if size < 1:
            raise DarkweightsError(f"--batch must be a positive integer or 'dynamic', not {size}")
    opset = default_opset() if opset is None else int(opset)
    if not MIN_OPSET <= opset <= max_opset():
        raise DarkweightsError(
            f"--opset {opset}: the export writes opsets {MIN_OPSET} to {max_opset()} (default {default_opset()})"
        )
    if not net.input.is_image:
        raise UnsupportedError("the network input has no image geometry (width/height/channels)", file=net.path)
    if not net.has_weights:  # the model would be built from random values: never silently
        raise DarkweightsError(
            "no weights to export: load the cfg with its .weights (`darkweights init` writes random ones)",
            file=net.path,
        )

    _check_free_space(net, path, fp16)  # before the model is built and traced (seconds)
    model = portable_model(build(net, fuse_bn=fuse_bn, bug_compatible=bug_compatible, winograd=False))
    meta = {
        **Metadata.of(net).to_strings(),
        Keys.VERSION: __version__,
        Keys.ONNX_OUTPUTS: outputs,
        Keys.FUSED: "1" if fuse_bn else "0",
        Keys.BUG_COMPATIBLE: "1" if bug_compatible else "0",
        Keys.PRECISION: "float16" if fp16 else "float32",
        Keys.BATCH: "dynamic" if dynamic else str(size),
        Keys.OPSET: str(opset),
        Keys.INPUT_NAME: INPUT_NAME,
        Keys.INPUT_LAYOUT: "NCHW float32, values as Darknet's network input (0..1 RGB)",
    }
    if names is not None:
        meta[Keys.NAMES] = json.dumps(list(names))
    records = [h for h in (L.head() for L in net.layers) if h is not None]
    heads = [h.index for h in records]
    meta[Keys.ANCHORS] = json.dumps({layer_name(h.index): [list(p) for p in h.anchors] for h in records})
    post = None
    if outputs == "raw":
        returned = list(range(len(net.layers))) if all_outputs else (heads or [net.output_index])
        out_names = [layer_name(i) for i in returned]
        layout = {
            layer_name(i): {"type": net.layers[i].type, "shape": ["N", *model.output_shapes[i]]} for i in returned
        }
    else:
        from .decode import build_post

        if not heads:
            raise UnsupportedError(f"--outputs {outputs} needs detection heads; this network has none", file=net.path)
        post, out_names, layout, notes = build_post(
            net,
            model,
            heads,
            outputs=outputs,
            thresh=thresh,
            nms=nms,
            max_detections=max_detections,
            letterbox=letterbox,
        )
        returned = heads
        meta.update(notes)
    meta[Keys.OUTPUTS] = json.dumps(out_names)
    meta[Keys.OUTPUT_LAYOUT] = json.dumps(layout)
    if fp16:
        model = model.half()
    tensors = _tensor_names(net, model, fuse_bn)
    arrays = sum(t.numel() * t.element_size() for t in tensors.values())
    if arrays > MAX_PROTO:  # known now: refuse before the trace
        raise UnsupportedError(
            f"its arrays are {arrays:,} bytes; one ONNX file holds at most 2 GiB (protobuf's limit)", file=net.path
        )
    steps = max(returned) + 1 + (post is not None)
    with bar(total=steps, desc="trace", unit="layer") as progress:
        try:
            traced = trace_model(
                model,
                returned,
                out_names,
                names={id(t): n for n, t in tensors.items()},
                post=post,
                opset=opset,
                batch=size,
                dynamic=dynamic,
                half=fp16,
                progress=progress,
            )
        except UnsupportedError as exc:
            if exc.layer is None or not 0 <= exc.layer < len(net.layers):
                raise UnsupportedError(exc.message, file=net.path) from None
            raise net.layers[exc.layer].unsupported(exc.message) from None
    proto = traced.model
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.doc_string = (
        f"{meta[Keys.CFG_NAME]} ({net.dialect}) exported by darkweights {__version__}: input "
        f"'{INPUT_NAME}' (N, {net.channels}, {net.height}, {net.width}) float32; outputs "
        f"{', '.join(out_names[:8])}{' ...' if len(out_names) > 8 else ''} (metadata 'output_layout')"
    )
    proto.producer_name, proto.producer_version = "darkweights", __version__
    # the whole graph is checked while the parameters are still typed graph inputs: the initializers that
    # replace them below take their dims and types from the same tensors
    onnx.checker.check_model(proto, full_check=True)
    blobs = _blobs(net, traced.params, tensors)
    graph = proto.graph
    kept = [i for i in graph.input if i.name == INPUT_NAME]
    del graph.input[:]
    graph.input.extend(kept)
    with (
        atomic_output(path) as f,
        bar(total=sum(b.nbytes for b in blobs), desc="write", unit="B", unit_scale=True) as progress,
    ):
        size = write_model(f, proto, blobs, progress=progress.update)
    return ExportInfo(os.fspath(path), size, opset, [INPUT_NAME], out_names, len(graph.initializer) + len(blobs), meta)


def _tensor_names(net: Network, model: Any, fuse_bn: bool) -> dict:
    """Every tensor of ``model``'s state under the name its initializer gets: the stable export name
    (``layer_012.weights``) for the stored arrays, the exporter's (``model.layers.12.blur``) for the rest.
    A tensor shared by several layers keeps its first name."""
    rename: dict[str, str] = {}
    for p in net.params():
        rename[p.torch] = p.key
        bn_bias = f"{names.BN}.{names.BIAS}"
        if fuse_bn and p.torch.endswith(bn_bias):  # folded: the BN shift became the convolution's bias
            rename[f"{p.torch[: -len(bn_bias)]}{names.CONV}.{names.BIAS}"] = p.key
    out: dict = {}
    seen: set[int] = set()
    # the state, not every buffer: non-persistent buffers (index maps, kernels) are constants of the graph
    for name, t in model.state_dict(keep_vars=True).items():
        if id(t) not in seen:
            seen.add(id(t))
            out[rename.get(name, "model." + name)] = t
    return out


def _blobs(net: Network, used: Sequence[str], tensors: dict) -> list:
    """The initializers to stream, in weights-file order: every parameter the graph reads, then the stored
    arrays it does not read (e.g. BN statistics of an xnor layer whose Darknet CPU path skips BN), so that
    the file holds the whole ``.weights``. Each is read from the model's own tensor when it is written
    (a view of the weights file for a plain export, so values changed in place are exported as they are)."""
    from onnx import helper

    stored = [p.key for p in net.params()]
    order = {k: i for i, k in enumerate(stored)}
    names = sorted(used, key=lambda n: order.get(n, len(order)))
    read = set(used)
    names += [k for k in stored if k not in read and k in tensors and tensors[k].dtype.is_floating_point]
    out = []
    for name in names:
        t = tensors[name].detach()
        kind = helper.np_dtype_to_tensor_dtype(t.numpy().dtype)
        out.append(Blob(name, tuple(t.shape), kind, t.numel() * t.element_size(), _chunks(t)))
    return out


def _chunks(t: Any) -> Callable[[], Iterator[memoryview]]:
    """A tensor's bytes in C order, little-endian, about 8 MiB at a time: blocks along the first axis (a
    non-contiguous tensor is copied one block at a time, never whole)."""

    def chunks() -> Iterator[memoryview]:
        import numpy as np

        arr = t.numpy()
        if arr.ndim == 0:
            arr = arr.reshape(1)
        row = max(1, arr[0].nbytes if len(arr) else 1)
        step = max(1, (8 << 20) // row)
        little = arr.dtype.newbyteorder("<")
        for start in range(0, len(arr), step):
            yield np.ascontiguousarray(arr[start : start + step], dtype=little).data.cast("B")

    return chunks


def _check_free_space(net: Network, path: PathLike, fp16: bool) -> None:
    """The file holds every stored array (half of it with ``fp16``) plus a small graph: refuse a disk that
    cannot take it before any work, as ``init`` does."""
    import shutil

    from ..errors import OutputError

    need = sum(p.nbytes for p in net.params()) // (2 if fp16 else 1)
    directory = os.path.dirname(os.path.abspath(path))
    free = shutil.disk_usage(directory).free if os.path.isdir(directory) else None
    if free is not None and need > free:
        raise OutputError(
            f"the export needs about {need:,} bytes but only {free:,} are free here: nothing was written",
            file=os.fspath(path),
        )
