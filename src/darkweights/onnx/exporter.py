"""``export_onnx(net, path)``: the network as an ONNX graph computing what Darknet computes.

The portable PyTorch model (:mod:`.portable`) is traced with PyTorch's TorchScript exporter; the
stored arrays become initializers under the project's stable names (``layer_012.weights``,
``layer_012.rolling_variance``, ``layer_003.input_layer.weights``...), unmodified, so that
:func:`~darkweights.onnx.pack_onnx` writes them back byte for byte. Everything else the graph holds
(blur kernels, index maps, shape constants) keeps the exporter's names.

Graph interface: input ``input`` ``(N, C, H, W)`` float32; outputs ``layer_<i>`` (``raw``: each head
in Darknet's ``l.output`` layout; ``all_outputs``: every layer) or ``boxes``/``scores`` (``decoded``)
or ``detections`` (``nms``), see :mod:`.decode`. ``metadata_props`` carry the cfg, dialect, header and
input size (what ``.safetensors`` files carry, so the file alone rebuilds the ``.weights``) plus the
export options, output layout, anchors and class names.
"""

from __future__ import annotations

import io
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Sequence, Union

from ..errors import DarkweightsError, UnsupportedError

if TYPE_CHECKING:
    from ..network import Network

PathLike = Union[str, "os.PathLike[str]"]
OUTPUT_KINDS = ("raw", "decoded", "nms")
MIN_OPSET = 13
INPUT_NAME = "input"


def layer_name(index: int) -> str:
    return f"layer_{index:03d}"


def default_opset() -> int:
    """The newest opset PyTorch's TorchScript exporter writes (20 with torch 2.13), which the pinned
    onnxruntime range (>= 1.17) runs."""
    import onnx

    try:
        from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET as torch_max
    except ImportError:  # pragma: no cover - other torch layouts
        torch_max = 17
    return int(min(torch_max, onnx.defs.onnx_opset_version()))


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


def export_onnx(net: "Network", path: PathLike, *, opset: Optional[int] = None, batch: Union[int, str] = 1,
                fp16: bool = False, outputs: str = "raw", all_outputs: bool = False,
                names: Optional[Sequence[str]] = None, fuse_bn: bool = False, bug_compatible: bool = False,
                thresh: Optional[float] = None, nms: Optional[float] = None, max_detections: Optional[int] = None,
                letterbox: bool = False) -> ExportInfo:
    """Write ``net`` (cfg + weights) as an ONNX model at ``path`` (atomically).

    ``batch``: a fixed batch size or ``"dynamic"``; ``fp16``: weights and activations in float16
    (input and outputs stay float32; such a file cannot be packed back exactly); ``outputs``:
    ``raw`` (heads in Darknet's layout), ``decoded`` (boxes + per-class scores as ``detect``
    computes them before NMS) or ``nms`` (ONNX ``NonMaxSuppression`` in the graph); ``all_outputs``:
    every layer's output as ``layer_<i>`` (raw only). ``fuse_bn`` exports Darknet's folded weights.
    """
    import onnx
    import torch

    from .. import __version__
    from ..export import metadata as array_metadata
    from ..torch import build
    from ..weightsfile import atomic_output
    from .portable import Portable, portable_model

    if outputs not in OUTPUT_KINDS:
        raise DarkweightsError(f"--outputs must be one of {', '.join(OUTPUT_KINDS)}, not {outputs!r}")
    if all_outputs and outputs != "raw":
        raise DarkweightsError("--all-outputs applies to --outputs raw")
    dynamic = batch == "dynamic"
    if not dynamic:
        try:
            batch = int(batch)
        except (TypeError, ValueError):
            raise DarkweightsError(f"--batch must be a positive integer or 'dynamic', not {batch!r}") from None
        if batch < 1:
            raise DarkweightsError(f"--batch must be a positive integer or 'dynamic', not {batch}")
    opset = default_opset() if opset is None else int(opset)
    if opset < MIN_OPSET:
        raise DarkweightsError(f"--opset {opset}: the export needs opset {MIN_OPSET} or newer")
    if not net.input.is_image:
        raise UnsupportedError("the network input has no image geometry (width/height/channels)", file=net.path)

    model = portable_model(build(net, fuse_bn=fuse_bn, bug_compatible=bug_compatible, winograd=False))
    meta = {**array_metadata(net), "darkweights_version": __version__, "onnx_outputs": outputs,
            "fused": "1" if fuse_bn else "0",
            "bug_compatible": "1" if bug_compatible else "0", "precision": "float16" if fp16 else "float32",
            "batch": "dynamic" if dynamic else str(batch), "opset": str(opset),
            "input_name": INPUT_NAME, "input_layout": "NCHW float32, values as Darknet's network input (0..1 RGB)"}
    if names is not None:
        meta["names"] = json.dumps(list(names))
    heads = [l.index for l in net.layers if l.index in model.heads]
    meta["anchors"] = json.dumps({layer_name(i): _anchors(net.layers[i]) for i in heads})
    post = None
    if outputs == "raw":
        returned = list(range(len(net.layers))) if all_outputs else (heads or [net.output_index])
        out_names = [layer_name(i) for i in returned]
        layout = {layer_name(i): {"type": net.layers[i].type, "shape": ["N", *model.output_shapes[i]]}
                  for i in returned}
    else:
        from .decode import build_post

        if not heads:
            raise UnsupportedError(f"--outputs {outputs} needs detection heads; this network has none", file=net.path)
        post, out_names, layout, notes = build_post(net, model, heads, kind=outputs, thresh=thresh, nms=nms,
                                                    max_detections=max_detections, letterbox=letterbox)
        returned = heads
        meta.update(notes)
    meta["outputs"] = json.dumps(out_names)
    meta["output_layout"] = json.dumps(layout)
    if fp16:
        model = model.half()
    wrapper = Portable(model, returned, post, half=fp16).eval()
    x = torch.zeros((1 if dynamic else batch,) + tuple(net.input.chw), dtype=torch.float32)
    axes = {n: {0: "N"} for n in [INPUT_NAME, *out_names]} if dynamic else None
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="torch")
        try:
            # no constant folding: it would fold BN statistics into anonymous constants (pack needs them);
            # no parameters: they become initializers below, straight from the weights file
            torch.onnx.export(wrapper, (x,), buf, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                              output_names=out_names, dynamic_axes=axes, do_constant_folding=False,
                              export_params=False)
        except UnsupportedError as exc:
            raise _located(net, exc.layer, exc.message) from None
        except Exception as exc:  # the exporter raises many types; name the layer when its scope says one
            text = str(exc)
            found = re.search(r"layers\.(\d+)", text)
            raise _located(net, int(found.group(1)) if found else None,
                           f"the ONNX exporter cannot convert it: {text.splitlines()[0][:300] if text else exc!r}"
                           ) from None
    proto = onnx.load_from_string(buf.getvalue())
    del buf
    _add_arrays(proto, net, wrapper, fuse_bn)
    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.doc_string = (f"{meta['cfg_name']} ({net.dialect}) exported by darkweights {__version__}: input "
                        f"'{INPUT_NAME}' (N, {net.channels}, {net.height}, {net.width}) float32; outputs "
                        f"{', '.join(out_names[:8])}{' ...' if len(out_names) > 8 else ''} (metadata 'output_layout')")
    proto.producer_name, proto.producer_version = "darkweights", __version__
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    with atomic_output(path) as f:
        f.write(data)
    return ExportInfo(os.fspath(path), len(data), opset, [INPUT_NAME], out_names, len(proto.graph.initializer), meta)


def _located(net: "Network", index: Optional[int], message: str) -> UnsupportedError:
    """An :class:`UnsupportedError` naming the layer, its cfg section and line."""
    if index is None or not 0 <= index < len(net.layers):
        return UnsupportedError(message, file=net.path)
    layer = net.layers[index]
    return UnsupportedError(f"[{layer.section.name}] {message}", file=net.path, line=layer.line, layer=index,
                            layer_type=layer.type)


def _anchors(layer) -> list:  # noqa: ANN001
    a = [float(v) for v in (getattr(layer, "anchors", None) or [])]
    mask = getattr(layer, "mask", None)
    pairs = [a[i:i + 2] for i in range(0, len(a) - 1, 2)]
    return [pairs[m] for m in mask if m < len(pairs)] if mask else pairs


def _add_arrays(proto, net: "Network", wrapper, fuse_bn: bool) -> None:  # noqa: ANN001
    """The parameters (graph inputs after an ``export_params=False`` trace) become initializers under the
    stable export names; stored arrays the graph does not read (e.g. BN statistics of an xnor layer whose
    Darknet CPU path skips BN) go in too, so that the file holds the whole ``.weights``."""
    from onnx import numpy_helper

    rename: dict[str, str] = {}
    for p in net.params():
        rename["model." + p.torch] = p.key
        if fuse_bn and p.torch.endswith("bn.bias"):  # folded: the BN shift became the convolution's bias
            rename["model." + p.torch[: -len("bn.bias")] + "conv.bias"] = p.key
    state = wrapper.state_dict()
    graph = proto.graph
    taken = {i.name for i in graph.input if i.name in state}
    for name in (n for n in state if n in taken):  # file order
        graph.initializer.append(numpy_helper.from_array(state[name].detach().numpy(), rename.get(name, name)))
    kept = [i for i in graph.input if i.name not in taken]
    del graph.input[:]
    graph.input.extend(kept)
    for node in _all_nodes(graph):
        for k, name in enumerate(node.input):
            if name in rename:
                node.input[k] = rename[name]
    have = {i.name for i in graph.initializer}
    for p in net.params():
        name = "model." + p.torch
        if p.key not in have and name in state and state[name].dtype.is_floating_point:
            graph.initializer.append(numpy_helper.from_array(state[name].detach().numpy(), p.key))


def _all_nodes(graph):  # noqa: ANN001, ANN202
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.g is not None and attr.g.node:
                yield from _all_nodes(attr.g)
            for g in attr.graphs:
                yield from _all_nodes(g)
