"""Reading an exported model back: its arrays (``pack_onnx``: the way home to ``.weights``), running it
in onnxruntime, and comparing it with Darknet's fixtures or our PyTorch model with the same report and
tolerances as :mod:`darkweights.verify`.

onnxruntime runs at ``ORT_ENABLE_EXTENDED`` graph optimisation by default here: the ``ALL`` level adds
NCHWc layout kernels whose different summation order moves the outputs of the most sensitive fixture
(efficientnet_b0's final softmax) just past its end-to-end tolerance (measured 5.63e-5 against 5.61e-5;
3.3e-5 at ``EXTENDED``). Pass ``level="all"`` to measure it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..errors import ArrayError, DarkweightsError

PathLike = Union[str, "os.PathLike[str]"]
LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
TORCH_TOLERANCE = 1e-4  # onnxruntime against our PyTorch model on one input: two float32 summation orders
ARRAY_KEY = re.compile(r"^layer_\d{3}\.")
BN_ARRAYS = ("scales", "rolling_mean", "rolling_variance")


def read_onnx(path: PathLike) -> Any:
    """The ``ModelProto`` at ``path``, external data included; data stored outside the model's folder
    (absolute paths, ``..``, symlinks leading out) is refused before anything is read."""
    import onnx
    from onnx import external_data_helper

    try:
        proto = onnx.load(os.fspath(path), load_external_data=False)
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
        loc = {e.key: e.value for e in t.external_data}.get("location", "")
        full = os.path.realpath(os.path.join(base, loc))
        if not loc or os.path.isabs(loc) or os.path.commonpath([full, base]) != base:
            raise ArrayError(
                f"initializer {t.name!r} keeps its data at {loc!r}, outside the model's folder {base}: refused",
                file=path,
            )
    if external:
        external_data_helper.load_external_data_for_model(proto, base)
    return proto


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
    """ONNX model → ``.weights``: byte-identical to the original for an unfused float32 export.

    A ``fuse_bn`` export no longer holds the BN statistics; it is refused unless ``allow_fused``,
    which writes the folded weights and biases with an identity BN (scales 1, mean 0, variance
    ``1 - eps``, so that Darknet's normalisation is a no-op up to float rounding)."""
    from ..api import save_weights
    from ..export import network_from_metadata

    proto = read_onnx(model_path)
    meta = model_metadata(proto)
    if meta.get("format") != "darkweights" and cfg is None:
        raise ArrayError(
            "this ONNX model was not exported by darkweights (no embedded cfg): pass the cfg", file=model_path
        )
    if meta.get("precision") == "float16":
        raise ArrayError(
            "a --fp16 export holds float16 weights: the original float32 values cannot be recovered", file=model_path
        )
    net = network_from_metadata(meta, cfg, dialect)
    arrays: dict[str, Any] = onnx_arrays(proto)
    if meta.get("fused") == "1":
        if not allow_fused:
            raise ArrayError(
                "exported with BN folded into the convolutions: the BN statistics cannot be recovered. "
                "--allow-fused writes the folded weights with an identity BN",
                file=model_path,
            )
        arrays = _identity_bn(net, arrays)
    missing = [p.key for p in net.params() if p.key not in arrays]
    if missing:
        raise ArrayError(
            f"the model has no initializer {missing[0]!r} ({len(missing)} of {len(net.params())} "
            "arrays missing): was it exported by darkweights from this cfg?",
            file=model_path,
        )
    hdr = header if header is not None else (json.loads(meta["header"]) if meta.get("header") else None)
    cutoff = int(meta["cutoff"]) if meta.get("cutoff") else None
    return save_weights(arrays, out, net=net, header=hdr, cutoff=cutoff)


def _identity_bn(net: Any, arrays: dict) -> dict:
    out = dict(arrays)
    eps, inside = net.dialect.bn_eps, net.dialect.bn_eps_inside_sqrt
    for p in net.params():
        if p.key in out or p.name.rsplit(".", 1)[-1] not in BN_ARRAYS:
            continue
        leaf = p.name.rsplit(".", 1)[-1]
        if leaf == "scales":
            value = 1.0
        elif leaf == "rolling_mean":
            value = 0.0
        else:  # sqrt(var + eps) == 1 (pjreddie: sqrt(var) + 1e-6 == 1)
            value = 1.0 - eps if inside else (1.0 - eps) ** 2
        out[p.key] = np.full(p.shape, value, np.float32)
    return out


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
    info = model_metadata(proto)
    tol = tolerance
    if tol is None:
        tol = FUSED_E2E_TOLERANCE if info.get("fused") == "1" else _fixture_tolerance(meta)
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
            "fused": info.get("fused") == "1",
            "precision": info.get("precision"),
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
    info = model_metadata(proto)
    if x is None:
        x = np.random.default_rng(seed).random(tuple(net.input.chw), dtype=np.float32)
    results = _layer_outputs(run_onnx(proto, _input_for(proto, x), level=level))
    if not results:
        raise DarkweightsError("the model has no layer_<i> outputs: export it with --outputs raw", file=model_path)
    model = build(net, fuse_bn=info.get("fused") == "1", bug_compatible=info.get("bug_compatible") == "1")
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
