"""The ONNX graph of a portable model, traced one layer at a time and joined.

Tracing the whole network at once runs its forward at full size and keeps every activation alive
until the trace ends (yolov4 at 608x608: about 2x the weights file on top of the weights). Here
each layer (a :class:`~.portable.Step`) is traced on its own, from zero stand-ins shaped like its
inputs, so only one layer's inputs and output exist at a time; the pieces are joined by naming
each layer's output ``layer_<i>`` and renaming everything else under the layer's scope
(``/layers.<i>/...``). The graph does not depend on the stand-ins' values: no module branches on
data, and the stored arrays are graph inputs (``export_params=False``) that the writer turns into
initializers (:mod:`.writer`).

The result is a :class:`Traced` skeleton: an ONNX model whose graph takes the parameters as
inputs (what ``onnx.checker`` checks before the file is written) plus the names of those inputs.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from ..errors import UnsupportedError
from ..weightsfile import layer_name
from .portable import PostStep, Step

if TYPE_CHECKING:
    import onnx

    from ..torch.base import DarknetLayer
    from ..torch.builder import DarknetModel

INPUT_NAME = "input"
HALF_SUFFIX = ".fp16"  # internal float16 values of an --fp16 export; the graph's inputs/outputs stay float32


class Traced:
    """A joined graph: ``model`` (parameters as typed graph inputs, no initializers) and ``params``, the names
    of those inputs (``layer_012.weights``, ``model.layers.5.blur``...) in first-use order."""

    def __init__(self, model: onnx.ModelProto, params: list[str]) -> None:
        self.model = model
        self.params = params


def trace_model(
    model: DarknetModel,
    returned: Sequence[int],
    out_names: Sequence[str],
    *,
    names: dict[int, str],
    post: nn.Module | None,
    opset: int,
    batch: int,
    dynamic: bool,
    half: bool,
    progress: Any = None,
) -> Traced:
    """Trace ``model`` (a portable :class:`~darkweights.torch.DarknetModel`) layer by layer up to the last
    of ``returned``; graph outputs are ``out_names`` (the returned layers' outputs, or ``post``'s).

    ``names`` maps ``id(tensor)`` of every tensor of the model's state to the graph input name it gets (a
    shared tensor, e.g. a ``share_index`` convolution's weights, is one input)."""
    import onnx
    from onnx import TensorProto, helper

    layers = cast("list[DarknetLayer]", list(model.layers))
    last = max(returned)
    dtype = torch.float16 if half else torch.float32
    suffix = HALF_SUFFIX if half else ""
    n = 1 if dynamic else batch

    nodes: list = []
    value_info: dict[str, onnx.ValueInfoProto] = {}
    params: dict[str, onnx.ValueInfoProto] = {}
    extra_init: list = []
    first: onnx.ModelProto | None = None  # its IR version and opsets are the model's
    graph_input = helper.make_tensor_value_info(
        INPUT_NAME, TensorProto.FLOAT, ["N" if dynamic else batch, *model.input_shape]
    )
    if half:  # the graph input stays float32: cast once
        nodes.append(
            helper.make_node("Cast", [INPUT_NAME], [INPUT_NAME + suffix], name="/input/Cast", to=TensorProto.FLOAT16)
        )

    for i, module in enumerate(layers):
        if i > last:
            break
        x_name = layer_name(i - 1) + suffix if i else INPUT_NAME + suffix
        x_shape = model.output_shapes[i - 1] if i else tuple(model.input_shape)
        srcs = list(module.reads)
        args = [torch.zeros((n, *x_shape), dtype=dtype)]
        args += [torch.zeros((n, *model.output_shapes[j]), dtype=dtype) for j in srcs]
        in_names = ["x", *[f"s{k}" for k in range(len(srcs))]]
        links = {"x": x_name, **{f"s{k}": layer_name(j) + suffix for k, j in enumerate(srcs)}}
        share = model.network.layers[i].share_index
        step = Step(module, i, [layers[share]] if share is not None else [])
        with _stand_ins(step, names) as local:
            proto = _trace_one(step, args, in_names, [layer_name(i) + suffix], opset, dynamic, index=i)
            _join(proto.graph, f"/layers.{i}", links, local, names, nodes, value_info, params, extra_init)
        del args
        if first is None:
            first = proto
        if progress is not None:
            progress.update(1)

    outputs = []
    if post is not None:
        heads = [layer_name(i) + suffix for i in returned]
        args = [torch.zeros((n, *model.output_shapes[i]), dtype=dtype) for i in returned]
        in_names = [f"h{k}" for k in range(len(returned))]
        proto = _trace_one(PostStep(post), args, in_names, list(out_names), opset, dynamic, index=None)
        _join(proto.graph, "/post", dict(zip(in_names, heads)), {}, names, nodes, value_info, params, extra_init)
        outputs = [_info(proto.graph.output, name) for name in out_names]
    else:
        for name in out_names:
            info = onnx.ValueInfoProto()
            info.CopyFrom(value_info.pop(name + suffix))
            if half:
                nodes.append(
                    helper.make_node("Cast", [name + suffix], [name], name=f"/output/{name}/Cast", to=TensorProto.FLOAT)
                )
                value_info[name + suffix] = onnx.ValueInfoProto()
                value_info[name + suffix].CopyFrom(info)
                info.name = name
                info.type.tensor_type.elem_type = TensorProto.FLOAT
            outputs.append(info)
    for o in outputs:
        value_info.pop(o.name, None)

    assert first is not None
    graph = helper.make_graph(
        nodes,
        "main_graph",
        [graph_input, *params.values()],
        outputs,
        initializer=extra_init,
        value_info=list(value_info.values()),
    )
    out = onnx.ModelProto()
    out.ir_version = first.ir_version
    out.opset_import.extend(first.opset_import)
    out.graph.CopyFrom(graph)
    _trim_heap()
    return Traced(out, list(params))


def _trim_heap() -> None:
    """Give the heap the layers' activations used back to the OS before the weights are streamed out.

    glibc keeps freed blocks below its mmap threshold, which rises to 32 MiB after large frees, so the
    per-layer activations of a big network stay resident (about 100 MB for yolov4 at 608) unless the heap
    is trimmed. A no-op without glibc."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def _stand_ins(step: nn.Module, names: dict[int, str]) -> Iterator[dict[str, torch.Tensor]]:
    """Zero tensors in place of the step's parameters and buffers while it is traced (the values do not
    enter the graph; reading the real ones would page the whole weights file into this process). Yields
    the step's ``state name -> stand-in``; ``names`` learns each stand-in's graph input name."""
    swapped: list = []
    local: dict[str, torch.Tensor] = {}
    try:
        for prefix, mod in step.named_modules():
            for store in (mod._parameters, mod._buffers):
                for key, t in list(store.items()):
                    if t is None or id(t) not in names:
                        continue
                    z = torch.zeros(t.shape, dtype=t.dtype)
                    if isinstance(t, nn.Parameter):
                        z = nn.Parameter(z, requires_grad=False)
                    store[key] = z
                    names[id(z)] = names[id(t)]
                    swapped.append((store, key, t, z))
                    local[f"{prefix}.{key}" if prefix else key] = z
        yield local
    finally:
        for store, key, t, z in reversed(swapped):
            store[key] = t
            names.pop(id(z), None)


def _trace_one(
    step: nn.Module, args: list, in_names: list[str], out_names: list[str], opset: int, dynamic: bool, index: int | None
) -> onnx.ModelProto:
    """One step through PyTorch's TorchScript exporter, parameters left as graph inputs."""
    import onnx

    axes = {n: {0: "N"} for n in [*in_names, *out_names]} if dynamic else None
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="torch")
        try:
            # no constant folding: it would fold BN statistics into anonymous constants (pack needs them);
            # no parameters: they become initializers streamed from the model's arrays; parameters kept as
            # inputs: otherwise the exporter merges arrays of equal value (a BN mean equal to its bias)
            torch.onnx.export(
                step,
                tuple(args),
                buf,  # type: ignore[arg-type]  # the TorchScript exporter writes to a file object too
                dynamo=False,
                opset_version=opset,
                input_names=in_names,
                output_names=out_names,
                dynamic_axes=axes,
                do_constant_folding=False,
                export_params=False,
                keep_initializers_as_inputs=True,
            )
        except UnsupportedError:
            raise
        except Exception as exc:  # the exporter raises many types
            text = str(exc)
            raise UnsupportedError(
                f"the ONNX exporter cannot convert it: {text.splitlines()[0][:300] if text else repr(exc)}", layer=index
            ) from None
    return onnx.load_from_string(buf.getvalue())


def _join(
    graph: Any,
    scope: str,
    links: dict[str, str],
    state: dict[str, torch.Tensor],
    names: dict[int, str],
    nodes: list,
    value_info: dict,
    params: dict,
    extra_init: list,
) -> None:
    """Append one step's graph: its data inputs renamed by ``links``, its parameter inputs by their name in the
    whole model, every other value and node put under ``scope``."""
    import onnx

    rename = dict(links)
    outputs = {o.name for o in graph.output}
    for inp in graph.input:
        if inp.name in rename:
            continue
        t = state.get(inp.name)
        if t is None or id(t) not in names:
            raise UnsupportedError(f"the traced graph has an input {inp.name!r} that is neither data nor a parameter")
        rename[inp.name] = name = names[id(t)]
        if name not in params:
            info = onnx.ValueInfoProto()
            info.CopyFrom(inp)
            info.name = name
            params[name] = info

    def local(name: str) -> str:
        if not name or name in outputs:
            return name
        new = rename.get(name)
        if new is None:
            new = rename[name] = _scoped(scope, name)
        return new

    for t in graph.initializer:
        t.name = local(t.name)
        extra_init.append(t)
    for node in graph.node:
        _rename_node(node, scope, local)
    nodes.extend(graph.node)
    for v in [*graph.value_info, *graph.output]:
        info = onnx.ValueInfoProto()
        info.CopyFrom(v)
        info.name = local(v.name)
        value_info[info.name] = info


def _scoped(scope: str, name: str) -> str:
    """``/m/conv/Conv_output_0`` -> ``/layers.12/conv/Conv_output_0``; ``onnx::Mul_3`` -> ``/layers.12/onnx::Mul_3``."""
    if name.startswith("/m/"):
        return scope + name[2:]
    return scope + (name if name.startswith("/") else "/" + name)


def _rename_node(node: Any, scope: str, local: Callable[[str], str]) -> None:
    """Scope a node and its values, and the values of its subgraphs (If/Loop bodies) whole."""
    node.name = _scoped(scope, node.name) if node.name else node.name
    node.input[:] = [local(v) for v in node.input]
    node.output[:] = [local(v) for v in node.output]
    for attr in node.attribute:
        for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
            for v in [*g.input, *g.output, *g.value_info, *g.initializer]:
                v.name = local(v.name)
            for inner in g.node:
                _rename_node(inner, scope, local)


def _info(values: Any, name: str) -> Any:
    return next(v for v in values if v.name == name)
