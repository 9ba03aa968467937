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
* OpenCV: :mod:`darkweights.opencv` (``compare_with_opencv``, also reachable here).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArrayError, DarkweightsError
from .report import Column, Table
from .weightsfile import layer_name


def _g(spec: str) -> Callable[[Any], str]:  # a number written with a format spec
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

PathLike = str | os.PathLike[str]

TEACHER_FORCED_TOLERANCE = 1e-5
E2E_FACTOR = 4.0
E2E_FLOOR = 1e-5
FUSED_E2E_TOLERANCE = 1e-4


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


def load_fixture(fixture_dir: PathLike, dialect: Any = "auto") -> tuple[Any, dict, np.ndarray, Any]:
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

    makers: dict[str, Callable[..., str]] = {"tree": tree_text, "map": map_text}
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


def __getattr__(name: str) -> Any:
    """The OpenCV comparison lives in :mod:`darkweights.opencv` (imported on use)."""
    if name in ("compare_with_opencv", "opencv_layer_map", "OPENCV_TOLERANCE", "OPENCV_MATCHED_EPS_TOLERANCE"):
        from . import opencv

        return getattr(opencv, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
