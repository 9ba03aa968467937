"""What changed between two sets of weights of one network (``darkweights diff``).

Each side is a ``.weights`` file read with a cfg, or an ``.npz`` / ``.safetensors`` export that
carries its cfg (or is given one). Both must have the same stored-array layout; the report gives,
per layer with stored arrays, the largest absolute change, the relative L2 change
``|b - a| / |a|`` and the cosine between the two layers' parameter vectors, in float64.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Union

from .errors import DarkweightsError
from .report import Column, Table

if TYPE_CHECKING:
    import numpy as np

    from .network import Network

PathLike = Union[str, "os.PathLike[str]"]
ORDERS = ("layer", "change")


class Weights(NamedTuple):
    """One side of a comparison: the network, its arrays by export key, and where they came from."""

    net: Network
    arrays: Mapping[str, np.ndarray]
    name: str
    header: dict | None = None


def open_weights(
    path: PathLike,
    cfg: PathLike | None = None,
    *,
    dialect: str = "auto",
    width: int | None = None,
    height: int | None = None,
    progress: Any = None,
) -> Weights:
    """A ``.weights`` file (needs ``cfg``) or an array file of :data:`darkweights.export.FORMATS`."""
    from .api import arrays_by_key
    from .export import ARRAY_FILES, read_model_file
    from .network import load

    name = os.fspath(path)
    if os.path.splitext(name)[1].lower() in ARRAY_FILES:
        nets: list[Network] = []

        def plan(meta: Any) -> Network:
            nets.append(meta.network(cfg, None if dialect == "auto" else dialect))
            return nets[0]

        arrays, meta = read_model_file(name, plan)
        net = nets[0]
        header = meta.header_for(net.dialect)
        return Weights(net, arrays_by_key(net, arrays, net.header), name, header.as_dict() if header else None)
    if cfg is None:
        raise DarkweightsError(
            f"{name}: a .weights file needs its cfg: pass --cfg CFG (or compare .safetensors/.npz "
            "exports, which carry it)"
        )
    net = load(cfg, name, dialect=dialect, width=width, height=height)
    return Weights(net, net.arrays(), name, net.header.as_dict())


def _layout(side: Weights) -> list[tuple[str, tuple, int]]:
    """(key, shape, layer) of every array the side holds, in the network's file order."""
    return [(p.key, tuple(p.shape), p.layer) for p in side.net.params() if p.key in side.arrays]


def _check_same_layout(a: Weights, b: Weights) -> None:
    la, lb = _layout(a), _layout(b)
    if la == lb:
        return
    for (ka, sa, ia), (kb, sb, ib) in zip(la, lb):
        if (ka, sa) != (kb, sb):
            layer = a.net.layers[ia]
            raise DarkweightsError(
                f"the two networks have different layouts from layer {min(ia, ib)} on: {a.name} has {ka} {sa}, "
                f"{b.name} has {kb} {sb} (layer {ia} [{layer.section.name}], cfg line {layer.line}); diff compares "
                "weights of the same cfg"
            )
    longer, shorter, extra = (a.name, b.name, la[len(lb)]) if len(la) > len(lb) else (b.name, a.name, lb[len(la)])
    raise DarkweightsError(
        f"{longer} holds more arrays than {shorter}: from {extra[0]} {extra[1]} on (different cfgs, or a partial file)"
    )


def _array_delta(x: np.ndarray, y: np.ndarray) -> dict:
    import numpy as np

    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    d = y - x
    return {
        "max_abs": float(np.max(np.abs(d))) if d.size else 0.0,
        "sq_diff": float(d @ d),
        "sq_a": float(x @ x),
        "sq_b": float(y @ y),
        "dot": float(x @ y),
        "changed": int(np.count_nonzero(x != y)),
        "count": int(x.size),
        "equal": bool(np.array_equal(x, y, equal_nan=True)),
    }


def _ratios(s: Mapping[str, float]) -> tuple[float, float]:
    """Relative L2 change and cosine from the sums (0 and 1 for two zero vectors)."""
    if s["sq_diff"] == 0:
        rel = 0.0
    else:
        rel = math.sqrt(s["sq_diff"] / s["sq_a"]) if s["sq_a"] > 0 else math.inf
    na, nb = math.sqrt(s["sq_a"]), math.sqrt(s["sq_b"])
    if na == 0 and nb == 0:
        cos = 1.0
    elif na == 0 or nb == 0:
        cos = 0.0
    else:
        cos = max(-1.0, min(1.0, s["dot"] / (na * nb)))
    return rel, cos


def _g(v: Any) -> str:
    return f"{v:.4g}"


DIFF_COLUMNS = [
    Column("index", "#", ">"),
    Column("type", "type"),
    Column("params", "params", ">", lambda v: f"{v:,}"),
    Column("max_abs", "max |d|", ">", _g),
    Column("rel_l2", "rel L2", ">", _g),
    Column("cosine", "cosine", ">", lambda v: f"{v:.6f}"),
    Column("changed_arrays", "changed arrays"),
]


def diff_report(a: Weights, b: Weights, *, order: str = "layer", progress: Any = None) -> Table:
    """Per-layer change from ``a`` to ``b``; ``data["identical"]`` says whether nothing differs.

    ``order="change"`` sorts the rows by relative L2 change, largest first. Raises
    :class:`DarkweightsError` when the two do not share one stored-array layout.
    """
    if order not in ORDERS:
        raise DarkweightsError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
    _check_same_layout(a, b)
    by_layer: dict[int, list[tuple[str, str]]] = {}
    for p in a.net.params():
        if p.key in a.arrays:
            by_layer.setdefault(p.layer, []).append((p.key, p.name))
    rows: list[dict] = []
    for index, keys in (
        progress(by_layer.items(), total=len(by_layer), desc="diff", unit="layer") if progress else by_layer.items()
    ):
        layer = a.net.layers[index]
        sums = {"max_abs": 0.0, "sq_diff": 0.0, "sq_a": 0.0, "sq_b": 0.0, "dot": 0.0, "changed": 0, "count": 0}
        arrays, changed_names = [], []
        for key, name in keys:
            s = _array_delta(a.arrays[key], b.arrays[key])
            rel, cos = _ratios(s)
            arrays.append(
                {
                    "key": key,
                    "name": name,
                    "max_abs": s["max_abs"],
                    "rel_l2": rel,
                    "cosine": cos,
                    "changed_values": s["changed"],
                    "count": s["count"],
                }
            )
            if not s["equal"]:
                changed_names.append(name)
            sums["max_abs"] = max(sums["max_abs"], s["max_abs"])
            for k in ("sq_diff", "sq_a", "sq_b", "dot", "changed", "count"):
                sums[k] += s[k]
        rel, cos = _ratios(sums)
        rows.append(
            {
                "index": index,
                "type": layer.type,
                "line": layer.line,
                "params": sums["count"],
                "max_abs": sums["max_abs"],
                "rel_l2": rel,
                "cosine": cos,
                "changed_values": sums["changed"],
                "changed": bool(changed_names),
                "changed_arrays": ",".join(changed_names),
                "arrays": arrays,
            }
        )
    changed = [r for r in rows if r["changed"]]
    header_diff = [
        k
        for k in ("major", "minor", "revision", "seen")
        if a.header and b.header and a.header.get(k) != b.header.get(k)
    ]
    identical = not changed and not header_diff
    first = changed[0] if changed else None
    most = max(changed, key=lambda r: (r["rel_l2"], r["max_abs"])) if changed else None
    if order == "change":
        rows.sort(key=lambda r: (-r["rel_l2"], -r["max_abs"], r["index"]))

    def where(r: dict) -> str:
        return f"layer {r['index']} [{r['type']}] (cfg line {r['line']})"

    footer = [
        f"{a.name} -> {b.name}: "
        + (
            f"{len(changed)} of {len(rows)} layers with weights differ, "
            f"{sum(r['changed_values'] for r in changed):,} of {sum(r['params'] for r in rows):,} values"
            if changed
            else f"all {len(rows)} layers with weights are identical"
        )
    ]
    if first is not None and most is not None:
        footer.append(f"first changed: {where(first)}, max |d| {_g(first['max_abs'])}, rel L2 {_g(first['rel_l2'])}")
        footer.append(f"most changed: {where(most)}, rel L2 {_g(most['rel_l2'])}, cosine {most['cosine']:.6f}")
    if header_diff:
        footer.append(
            "headers differ: "
            + ", ".join(
                f"{k} {a.header[k]} -> {b.header[k]}"  # type: ignore[index]
                for k in header_diff
            )
        )
    data = {
        "a": a.name,
        "b": b.name,
        "cfg": a.net.path,
        "identical": identical,
        "order": order,
        "layers": rows,
        "changed_layers": len(changed),
        "first_changed": first["index"] if first else None,
        "most_changed": most["index"] if most else None,
        "header_a": a.header,
        "header_b": b.header,
        "header_differs": header_diff,
    }
    return Table(f"diff {a.name} {b.name}", DIFF_COLUMNS, rows, footer, data)
