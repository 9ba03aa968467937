"""Check the PyTorch rebuild against Darknet itself (fixture directories) and against OpenCV's
independent Darknet importer.

Every comparison is per layer: ``rel = max|ours - ref| / max|ref|`` over the layer's whole output,
checked against a tolerance; a :class:`Report` lists the rows, the first diverging layer and the
worst one, as text (:meth:`Report.to_table`) or JSON (:meth:`Report.to_json`).

Tolerance rules (``../shared/fixtures/README.md``, "Tolerances"):

* fixtures, teacher-forced (each layer fed Darknet's own stored inputs): ``rel <= 1e-5`` per layer.
* fixtures, end to end (only ``input.npy`` is fed; rounding compounds): per layer
  ``rel <= max(1e-5, E2E_FACTOR * float_sensitivity)`` with ``E2E_FACTOR = 4`` and
  ``float_sensitivity`` = the fixture's ``fused_vs_plain_worst_layer_rel`` (Darknet against itself
  with BN folded: how much float rounding alone moves this network). Fused fixtures have no
  sensitivity figure and use ``FUSED_E2E_TOLERANCE``.
* OpenCV (random BN statistics only, see the README): OpenCV normalises with BN epsilon 1e-6
  (Darknet 1e-5), so our faithful model is held to ``rel <= 2e-4`` per layer (measured: <= 7e-5 on
  yolov4/yolov4-tiny/yolov7-tiny/efficientnet_b0 at 128 px); with ``bn_eps="opencv"`` our model uses
  OpenCV's epsilon and is held to ``1e-5`` (measured: <= 1.5e-6). Fusion and Winograd are disabled.
  OpenCV decodes ``[yolo]``/``[region]`` itself; those heads are compared in OpenCV's decoded form,
  skipping the class scores OpenCV zeroed (threshold/NMS).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArgumentError, ArrayError, DarkweightsError, UnsupportedError
from .report import Column, Table
from .weightsfile import layer_name


def _g(spec: str):  # a number written with a format spec
    return lambda v: format(v, spec)


VERIFY_COLUMNS = [
    Column("index", "layer", ">"),
    Column("type", "type"),
    Column("max_abs_diff", "max|diff|", ">", _g(".4g")),
    Column("max_abs_ref", "max|ref|", ">", _g(".4g")),
    Column("rel", "rel", ">", _g(".3g")),
    Column("tolerance", "tol", ">", _g(".2g")),
    Column("ok", "ok"),
    Column("note", ""),
]

PathLike = str | Path

TEACHER_FORCED_TOLERANCE = 1e-5
E2E_FACTOR = 4.0
E2E_FLOOR = 1e-5
FUSED_E2E_TOLERANCE = 1e-4
OPENCV_TOLERANCE = 2e-4
OPENCV_MATCHED_EPS_TOLERANCE = 1e-5


@dataclass
class Row:
    index: int
    type: str
    max_abs_diff: float
    max_abs_ref: float
    rel: float
    tolerance: float
    ok: bool
    note: str = ""


@dataclass
class Report:
    """Per-layer comparison of our forward with a reference."""

    name: str
    mode: str  # "teacher-forced" | "end-to-end" | "opencv"
    rows: list[Row] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(r.ok for r in self.rows)

    @property
    def first_divergence(self) -> Row | None:
        return next((r for r in self.rows if not r.ok), None)

    @property
    def worst(self) -> Row | None:
        return max(self.rows, key=lambda r: r.rel / r.tolerance if r.tolerance else r.rel, default=None)

    @property
    def max_rel(self) -> float:
        return max((r.rel for r in self.rows), default=0.0)

    def to_dict(self) -> dict:
        first, worst = self.first_divergence, self.worst
        return {
            "name": self.name,
            "mode": self.mode,
            "ok": self.ok,
            "layers_compared": len(self.rows),
            "max_rel": self.max_rel,
            "worst": asdict(worst) if worst else None,
            "first_divergence": asdict(first) if first else None,
            "rows": [asdict(r) for r in self.rows],
            "skipped": self.skipped,
            "meta": self.meta,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=_json_default)

    def table(self, *, only_failures: bool = False) -> Table:
        """This report in the shared :class:`~darkweights.report.Table` shape (text, JSON, HTML)."""
        rows = [{**asdict(r), "ok": "yes" if r.ok else "NO"} for r in self.rows if not (only_failures and r.ok)]
        for s in self.skipped:
            rows.append({"index": s["index"], "type": s["type"], "note": f"skipped: {s['reason']}"})
        footer = []
        worst, first = self.worst, self.first_divergence
        if worst is not None:
            footer.append(
                f"worst: layer {worst.index} [{worst.type}] rel {worst.rel:.3g} (tolerance {worst.tolerance:.2g})"
            )
        footer.append(
            "first diverging layer: " + (f"{first.index} [{first.type}] rel {first.rel:.3g}" if first else "none")
        )
        if self.meta.get("warning"):
            footer.append("warning: " + self.meta["warning"])
        title = f"{self.name} ({self.mode}): {'OK' if self.ok else 'FAILED'}, {len(self.rows)} layers compared"
        return Table(title, VERIFY_COLUMNS, rows, footer, self.to_dict())

    def to_table(self, *, only_failures: bool = False) -> str:
        return self.table(only_failures=only_failures).to_text()

    def __str__(self) -> str:
        return self.to_table()


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(type(o).__name__)


def compare_arrays(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float, float, str]:
    """``(max|diff|, max|ref|, rel, note)``; NaN/Inf or a size mismatch give ``rel = inf``."""
    a = np.asarray(ours, np.float64).reshape(-1)
    b = np.asarray(ref, np.float64).reshape(-1)
    if a.size != b.size:
        return math.inf, float(np.max(np.abs(b))) if b.size else 0.0, math.inf, f"size {a.size} != {b.size}"
    if a.size == 0:
        return 0.0, 0.0, 0.0, "empty"
    bad_a, bad_b = ~np.isfinite(a), ~np.isfinite(b)
    if bad_a.any() or bad_b.any():
        if np.array_equal(bad_a, bad_b) and np.array_equal(a[bad_a], b[bad_b], equal_nan=True):
            a, b = a[~bad_a], b[~bad_b]
            note = "equal NaN/Inf positions"
        else:
            return math.inf, float(np.nanmax(np.abs(b))), math.inf, "NaN/Inf mismatch"
    else:
        note = ""
    if a.size == 0:
        return 0.0, 0.0, 0.0, note
    diff = float(np.max(np.abs(a - b)))
    scale = float(np.max(np.abs(b)))
    rel = diff / scale if scale > 0 else diff
    return diff, scale, rel, note


# ----------------------------------------------------------------------------------------------
# Darknet fixtures


def _fixture_tolerance(meta: dict) -> float:
    sens = meta.get("float_sensitivity") or {}
    value = sens.get("fused_vs_plain_worst_layer_rel") if isinstance(sens, dict) else None
    if meta.get("fuse") or value is None:
        return FUSED_E2E_TOLERANCE
    return max(E2E_FLOOR, E2E_FACTOR * float(value))


def load_fixture(fixture_dir: PathLike, dialect: Any = "auto"):
    """``(net, meta, x, ref)`` of a fixture directory (model.cfg, model.weights, input.npy, outputs.npz).

    With ``dialect="auto"`` the fork is told from the files, trusting the maker that ``layers.json``
    names (``"darknet": "AlexeyAB <commit>"``); an explicit ``dialect`` wins. What a fixture does not
    store is made again as ``layers.json`` says (tools/darknet_oracle): weights (``weights_stored:
    false``) by ``init`` with its ``seed``, in memory; ``synthetic_files`` (tree=/map=) by
    :mod:`darkweights.synth`, as ``net.data_files``.
    """
    import zipfile

    from .network import load

    d = Path(fixture_dir)
    name = d / "layers.json"
    try:
        meta = json.loads(name.read_text())
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
        provenance = meta.get("dialect") or meta.get("darknet")
        if meta.get("weights_stored", True):
            net = load(d / "model.cfg", d / "model.weights", dialect=dialect, provenance=provenance)
        else:
            import io

            from .synth import init

            net = load(d / "model.cfg", dialect=dialect, provenance=provenance)
            buf = io.BytesIO()
            init(net, buf, seed=meta["seed"], mode=meta.get("weights_mode", "save"))
            net.load_weights(buf.getvalue())
        net.data_files.update(fixture_files(meta))
        name = d / "input.npy"
        x = np.load(name, allow_pickle=False)
        name = d / "outputs.npz"
        ref = np.load(name, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, DarkweightsError):
            raise
        why = getattr(exc, "strerror", None) or str(exc).splitlines()[0][:200] or type(exc).__name__
        raise ArrayError(f"not a readable fixture file: {why}", file=name) from None
    return net, meta, x, ref


def fixture_files(meta: dict) -> dict[str, str]:
    """The synthetic tree=/map= files of a fixture (``layers.json`` ``synthetic_files``): ``{name: text}``."""
    from .synth import map_text, tree_text

    makers = {"tree": tree_text, "map": map_text}
    out = {}
    for name, f in (meta.get("synthetic_files") or {}).items():
        extra = {k: tuple(f[k]) if k == "branching" else f[k] for k in ("roots", "branching") if k in f}
        out[name] = makers[f["kind"]](f["classes"], f["seed"], **extra)
    return out


def compare_with_fixture(
    fixture_dir: PathLike,
    *,
    teacher_forcing: bool = False,
    tolerance: float | None = None,
    model: Any = None,
    winograd: bool = True,
    float64: bool = False,
    dialect: Any = "auto",
) -> Report:
    """Compare our forward with the layer outputs Darknet stored in a fixture directory.

    ``teacher_forcing=True`` feeds every layer Darknet's own stored inputs (its previous layer and
    the layers it reads), isolating each layer's error; otherwise only ``input.npy`` is fed. The
    model is built with ``fuse_bn`` as the fixture was run (``layers.json: fuse``). ``float64``
    runs our model in double precision: the differences left are then Darknet's own float32
    rounding, which tells summation-order noise from a real divergence.
    """
    import torch

    from .torch import build

    net, meta, x, ref = load_fixture(fixture_dir, dialect)
    if model is None:
        model = build(net, fuse_bn=bool(meta.get("fuse")), winograd=winograd)
    if float64:
        model = model.double()
    tol = (
        tolerance
        if tolerance is not None
        else (TEACHER_FORCED_TOLERANCE if teacher_forcing else _fixture_tolerance(meta))
    )
    saved = {l["index"]: l for l in meta["layers"] if l.get("saved", True)}
    name = Path(fixture_dir).name
    report = Report(
        name,
        "teacher-forced" if teacher_forcing else "end-to-end",
        meta={
            "fixture": str(fixture_dir),
            "dialect": net.dialect_choice.describe(),
            "fuse": bool(meta.get("fuse")),
            "tolerance_rule": "1e-5 per layer"
            if teacher_forcing
            else f"max({E2E_FLOOR:g}, {E2E_FACTOR:g} x float_sensitivity)",
            "float_sensitivity": (meta.get("float_sensitivity") or {}).get("fused_vs_plain_worst_layer_rel")
            if isinstance(meta.get("float_sensitivity"), dict)
            else None,
            "float64": float64,
        },
    )
    dtype = torch.float64 if float64 else torch.float32
    xt = torch.from_numpy(np.ascontiguousarray(x))[None].to(dtype)
    if teacher_forcing:
        outs = _teacher_forced(model, net, xt, ref, saved, dtype)
    else:
        outs = model(xt, all_outputs=True)
    for layer in net.layers:
        i = layer.index
        if i not in saved:
            report.skipped.append({"index": i, "type": layer.type, "reason": "not saved by Darknet ([cost])"})
            continue
        key = layer_name(i)
        diff, scale, rel, note = compare_arrays(outs[i].detach().numpy(), ref[key])
        report.rows.append(Row(i, saved[i]["type"], diff, scale, rel, tol, bool(rel <= tol), note))
    return report


def _teacher_forced(model: Any, net: Any, x: Any, ref: Any, saved: dict, dtype: Any) -> list:
    import torch

    stored: list = [None] * len(net.layers)
    for i in saved:
        shape = model.output_shapes[i]
        arr = ref[layer_name(i)]
        if int(np.prod(shape)) == arr.size:
            stored[i] = torch.from_numpy(np.ascontiguousarray(arr).reshape(shape))[None].to(dtype)
    from .progress import bar

    ours: list = []
    for layer in bar(net.layers, total=len(net.layers), desc="verify", unit="layer"):
        i = layer.index
        prev = x if i == 0 else (stored[i - 1] if stored[i - 1] is not None else ours[i - 1])
        inputs = [stored[j] if stored[j] is not None else ours[j] for j in range(i)]
        ours.append(model.forward_layer(i, prev, inputs))
    return ours


# ----------------------------------------------------------------------------------------------
# OpenCV


ATTACHED = {
    "bn",
    "relu",
    "leaky",
    "mish",
    "swish",
    "logistic",
    "tanh",
    "elu",
    "selu",
    "relu6",
    "hardtan",
    "sigmoid",
    "gelu",
    "hardswish",
    "power",
}


def opencv_layer_map(names: Sequence[str]) -> dict[int, str]:
    """Darknet layer index -> the OpenCV layer holding its output.

    OpenCV's Darknet importer names layers ``<kind>_<index>``; activations and batch-norm are
    separate layers attached to the preceding primary layer (their number is off by one), a
    ``[yolo]`` head is ``permute_<i>`` then ``yolo_<i>`` and a ``[region]`` ``permute_<i>`` then
    ``detection_out``. The last OpenCV layer of each
    Darknet layer holds its output.
    """
    out: dict[int, str] = {}
    current: int | None = None
    for name in names:
        m = re.match(r"^(.*)_(\d+)$", name)
        if not m:  # e.g. "detection_out", OpenCV's [region]: belongs to the current layer
            if current is not None:
                out[current] = name
            continue
        kind, number = m.group(1), int(m.group(2))
        if kind in ATTACHED and current is not None:
            out[current] = name
            continue
        current = number
        out[number] = name
    return out


def _cfg_for_size(net: Any) -> str:
    """The cfg text with ``[net]`` width/height/channels set to the network's (OpenCV reads them)."""
    want = {"width": net.width, "height": net.height, "channels": net.channels}
    if not net.input.is_image:  # only inputs=: OpenCV needs an image, a 1x1 one with inputs channels is the same
        want = {"width": 1, "height": 1, "channels": net.inputs}
    out: list[str] = []
    in_net, written = False, set()
    for line in net.cfg.text.splitlines():
        stripped = re.sub(r"\s", "", line)
        if stripped.startswith("["):
            if in_net:  # leaving [net]: add the keys it did not have
                out.extend(f"{k}={v}" for k, v in want.items() if k not in written)
            in_net = stripped in ("[net]", "[network]") and not out
            out.append(line)
            continue
        key = stripped.split("=", 1)[0]
        if in_net and key in want:
            if key not in written:  # first occurrence wins in Darknet; drop duplicates
                out.append(f"{key}={want[key]}")
                written.add(key)
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def _decode_yolo_like_opencv(layer: Any, y: np.ndarray, net_w: int, net_h: int) -> np.ndarray:
    """Our ``[yolo]`` output ``(C, H, W)`` in OpenCV's decoded row format ``(H*W*n, 5+K)``."""
    n, k = len(layer.mask), layer.classes
    c, h, w = layer.output.chw
    v = y.reshape(n, 5 + k, h, w).transpose(2, 3, 0, 1).astype(np.float32)  # (H, W, n, 5+K), float like OpenCV
    anchors = np.array(layer.anchors, np.float32).reshape(-1, 2)[layer.mask]
    cols = np.arange(w, dtype=np.float32).reshape(1, w, 1)
    rows = np.arange(h, dtype=np.float32).reshape(h, 1, 1)
    out = np.empty_like(v)
    out[..., 0] = (cols + v[..., 0]) / w
    out[..., 1] = (rows + v[..., 1]) / h
    if layer.new_coords:
        out[..., 2] = v[..., 2] ** 2 * 4 * anchors[:, 0] / net_w
        out[..., 3] = v[..., 3] ** 2 * 4 * anchors[:, 1] / net_h
    else:
        out[..., 2] = np.exp(v[..., 2]) * anchors[:, 0] / net_w
        out[..., 3] = np.exp(v[..., 3]) * anchors[:, 1] / net_h
    out[..., 4] = v[..., 4]
    out[..., 5:] = v[..., 4:5] * v[..., 5:]
    return out.reshape(h * w * n, 5 + k)


def _compare_decoded_head(
    layer: Any, net: Any, mine: np.ndarray, ref: np.ndarray, z_max: float
) -> tuple[float, float, float, str]:
    """Compare decoded head rows ``(H*W*n, 5+K)`` part by part, each where it is well-conditioned.

    Box sizes are ``exp(t) * anchor``: with random weights ``t`` reaches ~20, so ``exp`` turns a
    relative 1e-5 difference of the head's input (float noise, OpenCV's BN epsilon) into values
    up to 1e8 whose error swamps every other number in one max-normalised error. They are
    compared as ``t = log(w * norm / anchor)``, the linear output the network computed, relative
    to its own range. x, y, objectness and class scores are logistic (products of them): compared
    as they are, relative to what a relative error of the head's input ``z`` can move them
    (``sigma' <= 1/4``, at most two factors: ``0.5 * max|z|``), not to their own range of ~1.
    A wrong model moves ``t`` or the logistic parts beyond that and still fails (and the layer
    before the head is compared raw); a right one no longer fails because of ``exp``.
    """
    n = len(layer.mask) if layer.type == "yolo" else layer.num
    pairs = np.array(layer.anchors, np.float64).reshape(-1, 2)
    anchors = pairs[layer.mask] if layer.type == "yolo" else pairs[:n]
    norm = (net.width, net.height) if layer.type == "yolo" else (layer.input.w, layer.input.h)
    row_anchor = anchors[np.arange(mine.shape[0]) % n]  # rows are (y, x, anchor)
    keep = ref[:, 5:] != 0  # OpenCV zeroes class scores below its threshold / after NMS
    parts = {
        "xy": (mine[:, 0:2], ref[:, 0:2]),
        "objectness": (mine[:, 4], ref[:, 4]),
        "classes": (mine[:, 5:][keep], ref[:, 5:][keep]),
    }
    if layer.type == "yolo" and layer.new_coords:
        parts["wh"] = (mine[:, 2:4], ref[:, 2:4])  # (2 logistic)^2 * anchor: bounded, compared as is
    else:

        def raw(v: np.ndarray) -> np.ndarray:
            with np.errstate(divide="ignore"):
                return np.log(np.maximum(np.asarray(v, np.float64), 1e-37) * np.array(norm) / row_anchor)

        parts["wh (log)"] = (raw(mine[:, 2:4]), raw(ref[:, 2:4]))
    results = {}
    for name, (a, b) in parts.items():
        diff, scale, rel, extra = compare_arrays(a, b)
        if not name.startswith("wh (log)") and math.isfinite(rel) and diff > 0:
            scale = max(scale, 0.5 * z_max)
            rel = diff / scale
        results[name] = (diff, scale, rel, extra)
    worst = max(results, key=lambda k: results[k][2])
    diff, scale, rel, extra = results[worst]
    detail = ", ".join(f"{k} {v[2]:.2g}" for k, v in results.items())
    return diff, scale, rel, f"worst part {worst}; {detail}" + (f"; {extra}" if extra else "")


def _decode_region_like_opencv(layer: Any, y: np.ndarray) -> np.ndarray:
    """Our AlexeyAB ``[region]`` rows in OpenCV's decoded format."""
    n, k = layer.num, layer.classes
    h, w = layer.input.h, layer.input.w
    v = y.reshape(h, w, n, 5 + k).astype(np.float32)
    anchors = np.array(layer.anchors, np.float32).reshape(-1, 2)
    sig = lambda t: np.float32(1.0) / (np.float32(1.0) + np.exp(-t))  # noqa: E731
    out = np.empty_like(v)
    out[..., 0] = (np.arange(w, dtype=np.float32).reshape(1, w, 1) + sig(v[..., 0])) / w
    out[..., 1] = (np.arange(h, dtype=np.float32).reshape(h, 1, 1) + sig(v[..., 1])) / h
    out[..., 2] = np.exp(v[..., 2]) * anchors[:, 0] / w
    out[..., 3] = np.exp(v[..., 3]) * anchors[:, 1] / h
    out[..., 4] = v[..., 4]
    out[..., 5:] = v[..., 4:5] * v[..., 5:]
    return out.reshape(h * w * n, 5 + k)


def compare_with_opencv(
    net: Any,
    x: Any = None,
    *,
    tolerance: float | None = None,
    model: Any = None,
    fuse_bn: bool = False,
    bn_eps: str = "darknet",
    seed: int = 0,
    winograd: bool = True,
) -> Report:
    """Run ``net`` with OpenCV's Darknet importer (``cv2.dnn.readNetFromDarknet``) and with our model
    on ``x`` ``(C, H, W)`` or ``(1, C, H, W)`` (default: ``numpy.random.default_rng(seed).random`` in
    [0, 1) at the network's input size), and compare every layer OpenCV exposes.

    Use weights with random BN statistics (``darkweights init``: variance 0.5..1.5): OpenCV's
    BN epsilon is 1e-6, Darknet's 1e-5, which calibrated statistics amplify (fixtures README).
    ``bn_eps="darknet"`` compares our Darknet-faithful model (tolerance 2e-4: the epsilon gap alone
    moves each BN layer by up to ~1e-5 and accumulates); ``bn_eps="opencv"`` rebuilds our model with
    OpenCV's epsilon so that everything else is compared tightly (tolerance 1e-5).
    """
    import cv2  # lazy: optional dependency
    import torch

    from .torch import build

    if not net.has_weights:
        raise ArgumentError("compare_with_opencv needs a network with weights (darkweights.load(cfg, weights))")
    flat = not net.input.is_image  # a cfg giving only [net] inputs= (pjreddie's gru/rnn cfgs)
    if x is None:
        shape = (net.inputs,) if flat else (net.channels, net.height, net.width)
        x = np.random.default_rng(seed).random(shape, dtype=np.float32)
    x = np.asarray(x, np.float32)
    if x.ndim == (1 if flat else 3):
        x = x[None]
    # OpenCV reads the pair from memory (the cfg re-sized to this network, the weights file's
    # bytes) before our model is built: a cfg it cannot import fails fast, in one line
    cvnet = _opencv_net(net)
    if bn_eps not in ("darknet", "opencv"):
        raise ArgumentError(f"bn_eps must be 'darknet' or 'opencv', not {bn_eps!r}")
    if tolerance is None:
        tolerance = OPENCV_TOLERANCE if bn_eps == "darknet" else OPENCV_MATCHED_EPS_TOLERANCE
    if model is None:
        model = build(net, fuse_bn=fuse_bn, winograd=winograd)
    if bn_eps == "opencv":
        for m in model.modules():
            if hasattr(m, "running_var") and hasattr(m, "eps"):
                m.eps = 1e-6
    ours = model(torch.from_numpy(np.ascontiguousarray(x)), all_outputs=True)
    names = list(cvnet.getLayerNames())
    mapping = opencv_layer_map(names)
    wanted = [mapping[i] for i in sorted(mapping) if i < len(net.layers)]
    with _opencv_errors(net):
        cvnet.setInput(x.reshape(x.shape[0], -1, 1, 1) if flat else x)
        results = dict(zip(wanted, cvnet.forward(wanted)))
    report = Report(
        Path(net.path or "network").name,
        "opencv",
        meta={
            "opencv": cv2.__version__,
            "input_shape": list(x.shape),
            "tolerance_rule": f"{tolerance:g} per layer",
            "bn_eps": bn_eps,
            "fusion": False,
            "winograd": False,
        },
    )
    variances = [a for k, a in net.arrays().items() if k.endswith("rolling_variance")]
    if variances and bn_eps == "darknet":
        smallest = float(min(float(np.min(a)) for a in variances))
        report.meta["bn_variance_min"] = smallest
        if smallest < 0.05:
            report.meta["warning"] = (
                f"BN rolling variances go down to {smallest:.3g}: OpenCV's BN epsilon (1e-6, Darknet 1e-5) then moves "
                "outputs far beyond float rounding. Compare on random-statistics weights (darkweights init) or pass "
                "bn_eps='opencv'"
            )
    with np.errstate(over="ignore", invalid="ignore"):
        _fill_opencv_rows(report, net, ours, results, mapping, tolerance)
    return report


_CV_MESSAGE = re.compile(r"error: \(-?\d+:[^)]*\) (.*?)(?: in function '([^']*)')?\s*$", re.S)


@contextlib.contextmanager
def _opencv_errors(net: Any) -> Iterator[None]:
    """OpenCV's own failures (a construct its importer lacks) as one located line, OpenCV's log silenced."""
    import cv2

    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    level = logging.getLogLevel() if logging else None
    if logging:
        logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    except cv2.error as exc:
        text = str(exc).strip()
        m = _CV_MESSAGE.search(text)
        why = (m.group(1).strip() + (f" (in {m.group(2)})" if m.group(2) else "")) if m else text.splitlines()[-1]
        raise UnsupportedError(f"OpenCV {cv2.__version__} cannot run this cfg: {why}", file=net.path) from None
    finally:
        if logging and level is not None:
            logging.setLogLevel(level)


def _opencv_net(net: Any) -> Any:
    import cv2

    cfg = np.frombuffer(_cfg_for_size(net).encode(), np.uint8)
    source = net.weights_source
    if isinstance(source, memoryview):
        weights = np.frombuffer(source, np.uint8)
    else:
        weights = np.memmap(source, np.uint8, mode="r")
    with _opencv_errors(net):
        cvnet = cv2.dnn.readNetFromDarknet(cfg, weights)
        cvnet.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        cvnet.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        cvnet.enableFusion(False)
        if hasattr(cvnet, "enableWinograd"):
            cvnet.enableWinograd(False)
    return cvnet


def _fill_opencv_rows(report: Report, net: Any, ours: list, results: dict, mapping: dict, tolerance: float) -> None:
    for layer in net.layers:
        i = layer.index
        if i not in mapping:
            report.skipped.append({"index": i, "type": layer.type, "reason": "no OpenCV layer"})
            continue
        ref = np.asarray(results[mapping[i]], np.float32)
        mine = ours[i].detach().numpy()[0]
        note = mapping[i]
        if layer.type == "yolo":
            mine = _decode_yolo_like_opencv(layer, mine, net.width, net.height)
        elif layer.type == "region":
            mine = _decode_region_like_opencv(layer, mine)
        if layer.type in ("yolo", "region"):
            z = ours[i - 1].detach().numpy() if i > 0 else mine  # the head's input: the raw linear outputs
            z_max = float(np.max(np.abs(z))) if z.size else 0.0
            diff, scale, rel, extra = _compare_decoded_head(layer, net, mine, ref.reshape(mine.shape), z_max)
            note += " (decoded by OpenCV; zeroed class scores skipped)"
        elif mine.size != ref.size:
            report.skipped.append(
                {
                    "index": i,
                    "type": layer.type,
                    "reason": f"OpenCV {mapping[i]} has {ref.size} values, ours {mine.size}",
                }
            )
            continue
        else:
            diff, scale, rel, extra = compare_arrays(mine, ref)
        report.rows.append(
            Row(
                i,
                layer.type,
                diff,
                scale,
                rel,
                tolerance,
                bool(rel <= tolerance),
                (note + (" " + extra if extra else "")).strip(),
            )
        )
