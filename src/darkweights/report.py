"""Reports as data: what ``inspect`` and ``verify`` show, built by the library, rendered anywhere.

A :class:`Table` is one shape for every report: a title, typed columns, rows of plain values,
footer lines and the complete JSON-ready ``data``. The CLI prints :meth:`Table.to_text` or
:meth:`Table.to_json`; other front ends (HTML, notebooks) render the same object. Nothing here
prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    from .network import Network


@dataclass(frozen=True)
class Column:
    """One column: the row key it shows, its heading, alignment and how a value is written."""

    key: str
    title: str
    align: str = "<"  # "<" left, ">" right
    fmt: Callable[[Any], str] = str


@dataclass
class Table:
    """A report: ``columns`` over ``rows`` (dicts), ``footer`` lines, and everything as ``data``."""

    title: str
    columns: list[Column]
    rows: list[dict]
    footer: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    details: dict[int, list[str]] = field(default_factory=dict)  # row index -> indented lines below it

    def cells(self) -> list[list[str]]:
        return [["" if r.get(c.key) is None else c.fmt(r[c.key]) for c in self.columns] for r in self.rows]

    def to_text(self) -> str:
        """A fixed-width table with the title first and the footer last."""
        head = [c.title for c in self.columns]
        cells = self.cells()
        widths = [max(len(row[i]) for row in cells + [head]) for i in range(len(head))]

        def line(values: list[str]) -> str:
            return "  ".join(f"{v:{c.align}{w}}" for v, c, w in zip(values, self.columns, widths)).rstrip()

        out = [self.title] if self.title else []
        out.append(line(head))
        for i, row in enumerate(cells):
            out.append(line(row))
            out.extend(" " * (widths[0] + 4) + d for d in self.details.get(i, ()))
        if self.footer:
            out.append("")
            out.extend(self.footer)
        return "\n".join(out)

    def to_dict(self) -> dict:
        return self.data

    def to_json(self, indent: Optional[int] = 1) -> str:
        return json.dumps(self.data, indent=indent, default=_json_default)

    def __str__(self) -> str:
        return self.to_text()


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    raise TypeError(type(o).__name__)


# -- statistics -------------------------------------------------------------------------------


def array_stats(arr: Any) -> dict:
    """min / max / mean / std over the finite values, and the NaN / Inf counts."""
    import numpy as np

    a = np.asarray(arr)
    finite = np.isfinite(a)
    n_bad = int(a.size - np.count_nonzero(finite))
    vals = a[finite] if n_bad else a
    nan = int(np.isnan(a).sum()) if n_bad else 0
    inf = int(np.isinf(a).sum()) if n_bad else 0
    if vals.size == 0:
        return {"min": None, "max": None, "mean": None, "std": None, "nan": nan, "inf": inf}
    return {"min": float(vals.min()), "max": float(vals.max()), "mean": float(vals.mean(dtype=np.float64)),
            "std": float(vals.std(dtype=np.float64)), "nan": nan, "inf": inf}


# -- inspect ----------------------------------------------------------------------------------


def _shape_text(c: int, h: int, w: int, size: int) -> str:
    return f"{c}x{h}x{w}" if c and c * h * w == size else str(size)


def _count(n: Any) -> str:
    return f"{n:,}" if n else ""


INSPECT_COLUMNS = [
    Column("index", "#", ">"),
    Column("type", "type"),
    Column("summary", "options"),
    Column("io", "input -> output"),
    Column("params", "params", "<", _count),
    Column("offset", "offset", "<", lambda v: f"{v:,}"),
]


def inspect(net: "Network", *, stats: bool = False) -> Table:
    """Everything ``inspect`` shows: per-layer geometry, stored arrays and offsets, totals, the
    header and the dialect with the evidence that chose it (``stats``: per-array statistics)."""
    params = net.params()
    by_layer: dict[int, list] = {}
    for p in params:
        by_layer.setdefault(p.layer, []).append(p)
    arrays = net.arrays() if (stats and net.has_weights) else {}
    layers, rows, details = [], [], {}
    for layer in net.layers:
        inp, out = layer.input, layer.output
        ps = by_layer.get(layer.index, [])
        entry = {
            "index": layer.index, "type": layer.type, "section": layer.section.name, "line": layer.line,
            "in_c": inp.c, "in_h": inp.h, "in_w": inp.w, "inputs": inp.size,
            "out_c": out.c, "out_h": out.h, "out_w": out.w, "outputs": out.size,
            "params": sum(p.count for p in ps), "offset": ps[0].offset if ps else None,
            "bytes": sum(p.nbytes for p in ps), "summary": layer.describe(),
            "arrays": [{"name": p.name, "key": p.key, "shape": list(p.shape), "offset": p.offset,
                        "bytes": p.nbytes, **({"transposed": True} if p.transposed else {}),
                        **({"stats": array_stats(arrays[p.key])} if p.key in arrays else {})} for p in ps],
        }
        if layer.next_input != out:
            entry["effective_output"] = list(layer.next_input.chw)  # antialiasing: what the next layer reads
        layers.append(entry)
        rows.append({**entry, "io": f"{_shape_text(inp.c, inp.h, inp.w, inp.size)} -> "
                                    f"{_shape_text(out.c, out.h, out.w, out.size)}"})
        lines = [_stats_line(a) for a in entry["arrays"] if "stats" in a]
        if lines:
            details[len(rows) - 1] = lines
    choice = net.dialect_choice
    data = {
        "cfg": net.path, "dialect": net.dialect.name, "dialect_choice": choice.as_dict(),
        "net": {"width": net.width, "height": net.height, "channels": net.channels, "inputs": net.inputs},
        "layers": layers,
        "params": net.param_count("save"),
        "weights_bytes": net.weights_bytes(),
    }
    footer = [f"input {net.channels}x{net.height}x{net.width}, {len(layers)} layers, {data['params']:,} parameters, "
              f"weights file {data['weights_bytes']:,} bytes",
              f"dialect: {choice.describe()}"]
    if choice.note:
        footer.append(f"note: {choice.note}")
    if net.has_weights:
        data["weights"] = net.weights_path
        data["header"] = net.header.as_dict()
        data["file_bytes"] = params[-1].end if params else net.header.size
        if net.cutoff is not None:
            data["cutoff"] = net.cutoff
        h = data["header"]
        footer.append(f"weights {data['weights']}: version {h['major']}.{h['minor']}.{h['revision']}, seen "
                      f"{h['seen']:,}, {h['header_bytes']}-byte header, {data['file_bytes']:,} bytes"
                      + (f", partial: layers 0..{net.cutoff - 1}" if net.cutoff is not None else ""))
    return Table("", INSPECT_COLUMNS, rows, footer, data, details)


def _stats_line(a: dict) -> str:
    s = a["stats"]

    def fmt(v: Optional[float]) -> str:
        return "-" if v is None else f"{v:.4g}"

    bad = f"  NaN {s['nan']} Inf {s['inf']}" if s["nan"] or s["inf"] else ""
    return (f"{a['name']:<18} {str(tuple(a['shape'])):<20} min {fmt(s['min'])}  max {fmt(s['max'])}  "
            f"mean {fmt(s['mean'])}  std {fmt(s['std'])}{bad}")


def inspect_report(net: "Network", stats: bool = False) -> dict:
    """The ``inspect --json`` object (:func:`inspect`'s ``data``)."""
    return inspect(net, stats=stats).data
