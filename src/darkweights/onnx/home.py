"""Reading an exported model back: its arrays (``pack_onnx``: the way home to ``.weights``), running it
in onnxruntime, and comparing it with Darknet's fixtures or our PyTorch model with the same report and
tolerances as :mod:`darkweights.verify`.

onnxruntime runs at ``ORT_ENABLE_EXTENDED`` graph optimisation by default here: the ``ALL`` level adds
NCHWc layout kernels whose different summation order moves the outputs of the most sensitive fixture
(efficientnet_b0's final softmax) just past its end-to-end tolerance (measured 5.63e-5 against 5.61e-5;
3.3e-5 at ``EXTENDED``). Pass ``level="all"`` to measure it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..errors import ArrayError, DarkweightsError
from ..meta import Metadata

PathLike = Union[str, "os.PathLike[str]"]
LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
TORCH_TOLERANCE = 1e-4  # onnxruntime against our PyTorch model on one input: two float32 summation orders
ARRAY_KEY = re.compile(r"^layer_\d{3}\.")


ONNX_DTYPES = {1: "<f4", 10: "<f2", 11: "<f8"}  # TensorProto FLOAT, FLOAT16, DOUBLE: what an export may hold


def read_onnx(path: PathLike) -> Any:
    """The ``ModelProto`` at ``path``, external data included; data stored outside the model's folder
    (absolute paths, ``..``, symlinks leading out), missing, or smaller than its tensor's dims is refused before
    anything is read."""
    import onnx
    from onnx import external_data_helper

    where = os.fspath(path)
    try:
        proto = onnx.load(where, load_external_data=False)
    except OSError:
        raise
    except Exception as exc:  # protobuf decode errors have several types
        raise ArrayError(f"not a readable ONNX model: {str(exc).splitlines()[0][:200]}", file=path) from None
    base = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    external = False
    for t in _tensors(proto.graph):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        external = True
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        full = os.path.realpath(os.path.join(base, loc))
        if not loc or os.path.isabs(loc) or os.path.commonpath([full, base]) != base:
            raise ArrayError(
                f"initializer {t.name!r} keeps its data at {loc!r}, outside the model's folder {base}: refused",
                file=path,
            )
        if not os.path.isfile(full):
            raise ArrayError(f"initializer {t.name!r} keeps its data in {loc!r}, which is missing", file=path)
        try:
            offset, length = int(info.get("offset", 0)), int(info.get("length", -1))
        except ValueError:
            raise ArrayError(
                f"initializer {t.name!r}: external data offset/length are not integers", file=path
            ) from None
        need = _nbytes(t)
        available = os.path.getsize(full) - offset
        if offset < 0 or need is None or (length >= 0 and length != need) or need > available:
            raise ArrayError(
                f"initializer {t.name!r} dims {list(t.dims)} need {need if need is not None else '?'} bytes; its "
                f"external data {loc!r} holds {max(available, 0):,} from offset {offset}",
                file=path,
            )
    if external:
        try:
            external_data_helper.load_external_data_for_model(proto, base)
        except (OSError, ValueError) as exc:
            raise ArrayError(f"cannot read the external data: {str(exc).splitlines()[0][:200]}", file=path) from None
    return proto


def _nbytes(t: Any) -> int | None:
    """Bytes the tensor's dims and type need (``None``: not a type an export writes)."""
    dtype = ONNX_DTYPES.get(t.data_type)
    if dtype is None or any(d < 0 for d in t.dims):
        return None
    return math.prod(t.dims) * np.dtype(dtype).itemsize


def read(path: PathLike, plan: Callable[[Metadata], Any]) -> tuple[dict[str, np.ndarray], Metadata]:
    """The stored arrays (initializers named ``layer_<i>.<name>``) and the metadata of an export; each
    initializer's dims are checked against its data and against the network ``plan(metadata)`` names."""
    from ..npzfile import expected_shapes, shape_error

    where = os.fspath(path)
    proto = read_onnx(path)
    meta = Metadata.parse(model_metadata(proto), file=where)
    net = plan(meta)
    expect = expected_shapes(net) if net is not None else None
    arrays = {}
    for t in proto.graph.initializer:
        if not ARRAY_KEY.match(t.name) or (expect is not None and t.name not in expect):
            continue
        need = _nbytes(t)
        if need is None:
            raise ArrayError(f"initializer {t.name!r}: data type {t.data_type} is not a float type", file=where)
        if expect is not None and tuple(t.dims) != expect[t.name]:
            raise shape_error(t.name, tuple(t.dims), expect[t.name], where)
        dtype = np.dtype(ONNX_DTYPES[t.data_type])
        if t.raw_data:
            held = len(t.raw_data)
        elif t.data_type == 10:  # float16 travels in int32_data, one value each
            held = 2 * len(t.int32_data)
        else:
            held = dtype.itemsize * len(t.double_data if t.data_type == 11 else t.float_data)
        if held != need:
            raise ArrayError(
                f"initializer {t.name!r}: dims {list(t.dims)} need {need:,} bytes, it holds {held:,}", file=where
            )
        from onnx import numpy_helper

        arrays[t.name] = numpy_helper.to_array(t)
    return arrays, meta


def _tensors(graph: Any):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for g in attr.graphs:
                yield from _tensors(g)


def model_metadata(proto: Any) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


def onnx_arrays(proto: Any) -> dict[str, np.ndarray]:
    """The stored arrays (initializers named ``layer_<i>.<name>``) as numpy arrays."""
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer if ARRAY_KEY.match(t.name)}


def pack_onnx(
    model_path: PathLike,
    out: PathLike,
    *,
    cfg: PathLike | None = None,
    dialect: str | None = None,
    header: Any = None,
    allow_fused: bool = False,
) -> int:
    """ONNX model → ``.weights``: :func:`darkweights.export.pack` (byte-identical to the original for an unfused
    float32 export; a ``fuse_bn`` export is refused unless ``allow_fused``)."""
    from ..export import pack

    return pack(model_path, out, cfg=cfg, dialect=dialect, header=header, allow_fused=allow_fused)


def onnx_session(model: PathLike | Any, *, level: str = "extended", threads: int | None = None) -> Any:
    """An onnxruntime CPU session for a model path or ``ModelProto``."""
    import onnxruntime as ort

    if level not in LEVELS:
        raise DarkweightsError(f"onnxruntime optimisation level must be one of {', '.join(LEVELS)}")
    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[level])
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    proto = model if not isinstance(model, (str, os.PathLike)) else read_onnx(model)
    return ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])


def run_onnx(model: PathLike | Any, x: np.ndarray, *, level: str = "extended") -> dict[str, np.ndarray]:
    """Run the model on ``x`` ``(C, H, W)`` or ``(N, C, H, W)``; ``{output name: array}``."""
    session = onnx_session(model, level=level)
    x = np.asarray(x, np.float32)
    if x.ndim == 3:
        x = x[None]
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {session.get_inputs()[0].name: x})))


def _layer_outputs(results: dict) -> dict[int, np.ndarray]:
    return {int(k[6:]): v for k, v in results.items() if re.fullmatch(r"layer_\d{3,}", k)}


def _input_for(proto: Any, x: np.ndarray) -> np.ndarray:
    """``x`` (C, H, W) as the model's input: one item, or repeated to a fixed batch size."""
    dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    n = dim.dim_value if dim.HasField("dim_value") else 1
    return np.repeat(np.asarray(x, np.float32)[None], max(1, n), axis=0)


def compare_onnx_with_fixture(
    model_path: PathLike, fixture_dir: PathLike, *, tolerance: float | None = None, level: str = "extended"
) -> Any:
    """onnxruntime's outputs against the layer outputs Darknet stored in a fixture (every layer when the model
    was exported with ``all_outputs``), with :func:`darkweights.verify.compare_with_fixture`'s end-to-end rule."""
    from ..verify import FUSED_E2E_TOLERANCE, Report, Row, _fixture_tolerance, compare_arrays, load_fixture

    net, meta, x, ref = load_fixture(fixture_dir)
    proto = read_onnx(model_path)
    info = Metadata.parse(model_metadata(proto), file=model_path)
    tol = tolerance
    if tol is None:
        tol = FUSED_E2E_TOLERANCE if info.fused else _fixture_tolerance(meta)
    results = _layer_outputs(run_onnx(proto, _input_for(proto, x), level=level))
    if not results:
        raise DarkweightsError("the model has no layer_<i> outputs: export it with --outputs raw", file=model_path)
    saved = {l["index"]: l for l in meta["layers"] if l.get("saved", True)}
    report = Report(
        Path(fixture_dir).name,
        "onnx end-to-end",
        meta={
            "fixture": str(fixture_dir),
            "model": str(model_path),
            "onnxruntime_level": level,
            "tolerance_rule": f"max(1e-5, 4 x float_sensitivity) = {tol:.3g}" if tolerance is None else f"{tol:g}",
            "fused": info.fused,
            "precision": info.precision,
        },
    )
    if len(results) < len(net.layers):
        report.meta["note"] = (
            f"{len(results)} of {len(net.layers)} layers are graph outputs; export with "
            "--all-outputs to compare every layer"
        )
    for i in sorted(results):
        if i not in saved:
            report.skipped.append({"index": i, "type": net.layers[i].type, "reason": "not saved by Darknet ([cost])"})
            continue
        out = results[i]
        diff, scale, rel, note = compare_arrays(out[:1], ref[f"layer_{i:03d}"])
        if out.shape[0] > 1 and not np.array_equal(out[1:], np.repeat(out[:1], out.shape[0] - 1, axis=0)):
            note = (note + " batch items differ").strip()
            rel = max(rel, float(np.max(np.abs(out[1:] - out[:1]))) / max(scale, 1e-30))
        report.rows.append(Row(i, saved[i]["type"], diff, scale, rel, tol, bool(rel <= tol), note))
    return report


def compare_onnx_with_torch(
    model_path: PathLike,
    net: Any,
    x: np.ndarray | None = None,
    *,
    tolerance: float = TORCH_TOLERANCE,
    seed: int = 0,
    level: str = "extended",
) -> Any:
    """onnxruntime's outputs against our PyTorch model on ``x`` (default: uniform [0, 1) from ``seed``)."""
    import torch

    from ..torch import build
    from ..verify import Report, Row, compare_arrays

    proto = read_onnx(model_path)
    info = Metadata.parse(model_metadata(proto), file=model_path)
    if x is None:
        x = np.random.default_rng(seed).random(tuple(net.input.chw), dtype=np.float32)
    results = _layer_outputs(run_onnx(proto, _input_for(proto, x), level=level))
    if not results:
        raise DarkweightsError("the model has no layer_<i> outputs: export it with --outputs raw", file=model_path)
    model = build(net, fuse_bn=info.fused, bug_compatible=info.bug_compatible)
    ours = model(torch.from_numpy(np.ascontiguousarray(x, np.float32))[None], all_outputs=True)
    report = Report(
        Path(model_path).name,
        "onnx vs torch",
        meta={"model": str(model_path), "onnxruntime_level": level, "tolerance_rule": f"{tolerance:g}"},
    )
    for i in sorted(results):
        if i >= len(net.layers):
            continue
        diff, scale, rel, note = compare_arrays(results[i][:1], ours[i].detach().numpy())
        report.rows.append(Row(i, net.layers[i].type, diff, scale, rel, tolerance, bool(rel <= tolerance), note))
    return report
