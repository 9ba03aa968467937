"""Reports as data: what ``inspect`` and ``verify`` show, built by the library, rendered anywhere.

A :class:`Table` is one shape for every report: a title, typed columns, rows of plain values,
footer lines and the complete JSON-ready ``data``. The CLI prints :meth:`Table.to_text` or
:meth:`Table.to_json`; other front ends (HTML, notebooks) render the same object. Nothing here
prints.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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

    def to_text(self, *, color: bool = False, width: int | None = None) -> str:
        """A fixed-width table with the title first and the footer last.

        ``color``: ANSI styles (bold heading, alarming rows and detail lines in red, dim footer);
        ``width``: cut every line to that many columns (a terminal's width, so a pager need not wrap).
        """
        columns, cells = list(self.columns), self.cells()
        head = [c.title for c in columns]
        widths = [max(len(row[i]) for row in cells + [head]) for i in range(len(head))]
        if width is not None:  # drop whole columns from the right rather than cutting numbers in half
            while len(columns) > 1 and sum(widths) + 2 * (len(widths) - 1) > width:
                columns, widths, head = columns[:-1], widths[:-1], head[:-1]
            cells = [row[: len(columns)] for row in cells]

        def line(values: list[str]) -> str:
            text = "  ".join(f"{v:{c.align}{w}}" for v, c, w in zip(values, columns, widths)).rstrip()
            return text if width is None else text[:width]

        def paint(text: str, style: str | None) -> str:
            return f"{STYLES[style]}{text}\033[0m" if color and style in STYLES and text else text

        out = [paint(self.title, "bold")] if self.title else []
        out.append(paint(line(head), "bold"))
        indent = " " * (widths[0] + 4)
        for i, row in enumerate(cells):
            style = self.rows[i].get("_style")
            out.append(paint(line(row), style))
            for d in self.details.get(i, ()):
                alarm = any(k in d for k in ("NaN", "dead filters"))
                text = (indent + d) if width is None else (indent + d)[:width]
                out.append(paint(text, "alarm" if alarm else "dim"))
        if self.footer:
            out.append("")
            for i, f in enumerate(self.footer):
                wrapped = [f] if width is None else textwrap.wrap(f, width, subsequent_indent="    ") or [""]
                out.extend(paint(w, "bold" if i == 0 else "dim") for w in wrapped)
        return "\n".join(out)

    def to_dict(self) -> dict:
        return self.data

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.data, indent=indent, default=_json_default)

    def __str__(self) -> str:
        return self.to_text()


STYLES = {"bold": "\033[1m", "dim": "\033[2m", "alarm": "\033[1;31m"}


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    raise TypeError(type(o).__name__)


# -- statistics -------------------------------------------------------------------------------


def array_stats(arr: Any, *, filters: bool = False) -> dict:
    """min / max / mean / std over the finite values, and the NaN / Inf counts; with ``filters``
    (a weights array, one filter or output per row) also ``dead``: rows that are all zero."""
    import numpy as np

    a = np.asarray(arr)
    dead = {}
    if filters and a.ndim >= 2 and a.shape[0]:
        dead = {"dead": int(np.count_nonzero(~a.reshape(a.shape[0], -1).any(axis=1)))}
    finite = np.isfinite(a)
    n_bad = int(a.size - np.count_nonzero(finite))
    vals = a[finite] if n_bad else a
    nan = int(np.isnan(a).sum()) if n_bad else 0
    inf = int(np.isinf(a).sum()) if n_bad else 0
    if vals.size == 0:
        return {"min": None, "max": None, "mean": None, "std": None, "nan": nan, "inf": inf, **dead}
    return {
        "min": float(vals.min()),
        "max": float(vals.max()),
        "mean": float(vals.mean(dtype=np.float64)),
        "std": float(vals.std(dtype=np.float64)),
        "nan": nan,
        "inf": inf,
        **dead,
    }


# -- inspect ----------------------------------------------------------------------------------


def _shape_text(c: int, h: int, w: int, size: int) -> str:
    return f"{c}x{h}x{w}" if c and c * h * w == size else str(size)


def _whc(s: Any) -> str:
    """Darknet's ``w x h x c`` (``outputs`` alone for flat layers)."""
    return f"{s.w:4} x{s.h:4} x{s.c:4}" if s.is_image else str(s.size)


def _count(n: Any) -> str:
    return f"{n:,}" if n else ""


INSPECT_COLUMNS = [
    Column("index", "layer", ">"),
    Column("short", "type"),
    Column("filters", "filters", ">"),
    Column("size", "size/strd(dil)", ">"),
    Column("input", "input", ">"),
    Column("output", "output", ">"),
    Column("bflops", "BFLOPs", ">", lambda v: f"{v:.3f}"),
    Column("params", "params", ">", _count),
    Column("offset", "offset", ">", lambda v: f"{v:,}"),
    Column("options", "options"),
]


def inspect(net: Network, *, stats: bool = False) -> Table:
    """Everything ``inspect`` shows: AlexeyAB's layer table (``layer filters size/strd(dil) input
    output`` and BFLOPs counted as it counts them), stored arrays and offsets, totals, the header
    and the dialect with the evidence that chose it (``stats``: per-array statistics, dead filters).

    >>> import darkweights
    >>> from darkweights.report import inspect
    >>> table = inspect(darkweights.load(darkweights.default_model().cfg))
    >>> table.rows[0]["filters"], table.rows[0]["size"], table.rows[0]["output"], table.rows[0]["bflops"]
    ('8', '3x3/2', ' 160 x 160 x   8', 0.0110592004)
    >>> round(table.data["bflops"], 3)
    0.252
    """
    from .flops import network_bflops

    params = net.params()
    by_layer: dict[int, list] = {}
    for p in params:
        by_layer.setdefault(p.layer, []).append(p)
    arrays = net.arrays() if (stats and net.has_weights) else {}
    per_bflops, total_bflops = network_bflops(net)
    layers: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    details: dict[int, list[str]] = {}
    for layer in net.layers:
        inp, out = layer.input, layer.output
        ps = by_layer.get(layer.index, [])
        bf = per_bflops[layer.index]
        entry = {
            "index": layer.index,
            "type": layer.type,
            "section": layer.section.name,
            "line": layer.line,
            "in_c": inp.c,
            "in_h": inp.h,
            "in_w": inp.w,
            "inputs": inp.size,
            "out_c": out.c,
            "out_h": out.h,
            "out_w": out.w,
            "outputs": out.size,
            "params": sum(p.count for p in ps),
            "offset": ps[0].offset if ps else None,
            "bytes": sum(p.nbytes for p in ps),
            "summary": layer.describe(),
            "bflops": None if bf is None else float(f"{bf:.9g}"),
            "arrays": [
                {
                    "name": p.name,
                    "key": p.key,
                    "shape": list(p.shape),
                    "offset": p.offset,
                    "bytes": p.nbytes,
                    **({"transposed": True} if p.transposed else {}),
                    **({"stats": array_stats(arrays[p.key], filters=p.role == "weights")} if p.key in arrays else {}),
                }
                for p in ps
            ],
        }
        if layer.next_input != out:
            entry["effective_output"] = list(layer.next_input.chw)  # antialiasing: what the next layer reads
        layers.append(entry)
        cells = layer.cells()
        row = {
            **entry,
            "short": cells.short,
            "filters": cells.filters,
            "size": cells.size,
            "input": _whc(inp),
            "output": _whc(out),
            "options": cells.options,
            "io": f"{_shape_text(inp.c, inp.h, inp.w, inp.size)} -> {_shape_text(out.c, out.h, out.w, out.size)}",
        }
        lines = [_stats_line(a) for a in entry["arrays"] if "stats" in a]
        if lines:
            details[len(rows)] = lines
        if any(_stats_alarm(a["stats"]) for a in entry["arrays"] if "stats" in a):
            row["_style"] = "alarm"
        rows.append(row)
    choice = net.dialect_choice
    data = {
        "cfg": net.path,
        "dialect": net.dialect.name,
        "dialect_choice": choice.as_dict(),
        "net": {"width": net.width, "height": net.height, "channels": net.channels, "inputs": net.inputs},
        "layers": layers,
        "params": net.param_count("save"),
        "bflops": float(f"{total_bflops:.9g}"),
        "weights_bytes": net.weights_bytes(),
    }
    footer = [
        f"Total BFLOPS {total_bflops:5.3f} (counted as AlexeyAB Darknet counts them)",
        f"cfg {net.path}: input {net.channels}x{net.height}x{net.width}, {len(layers)} layers, "
        f"{data['params']:,} parameters, "
        f"weights file {data['weights_bytes']:,} bytes",
        f"dialect: {choice.describe()}",
    ]
    if choice.note:
        footer.append(f"note: {choice.note}")
    if net.has_weights:
        data["weights"] = net.weights_path
        data["header"] = net.header.as_dict()
        data["file_bytes"] = params[-1].end if params else net.header.size
        if net.cutoff is not None:
            data["cutoff"] = net.cutoff
        h = net.header.as_dict()
        footer.append(
            f"weights {data['weights']}: version {h['major']}.{h['minor']}.{h['revision']}, seen "
            f"{h['seen']:,}, {h['header_bytes']}-byte header, {data['file_bytes']:,} bytes"
            + (f", partial: layers 0..{net.cutoff - 1}" if net.cutoff is not None else "")
        )
        from .policy import nonfinite  # always: NaN/Inf weights would make every output garbage

        bad = nonfinite(net)
        data["nonfinite"] = {key: count for key, _, count in bad}
        if bad:
            footer.append(
                f"NaN/Inf: {sum(c for _, _, c in bad):,} values in {len(bad)} arrays (layers "
                f"{', '.join(str(i) for i in sorted({i for _, i, _ in bad}))}); detect/export refuse them"
            )
    if stats and net.has_weights:
        alarms = [e["index"] for e in layers if any(_stats_alarm(a["stats"]) for a in e["arrays"] if "stats" in a)]
        footer.append(
            "stats: "
            + (
                f"NaN/Inf or dead (all-zero) filters in layers {', '.join(map(str, alarms))}"
                if alarms
                else "no NaN/Inf, no dead (all-zero) filters"
            )
        )
    return Table("", INSPECT_COLUMNS, rows, footer, data, details)


def _stats_alarm(s: dict) -> bool:
    return bool(s["nan"] or s["inf"] or s.get("dead"))


def _stats_line(a: dict) -> str:
    s = a["stats"]

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.4g}"

    bad = f"  NaN {s['nan']} Inf {s['inf']}" if s["nan"] or s["inf"] else ""
    dead = f"  dead filters {s['dead']}/{a['shape'][0]}" if s.get("dead") else ""
    return (
        f"{a['name']:<18} {str(tuple(a['shape'])):<20} min {fmt(s['min'])}  max {fmt(s['max'])}  "
        f"mean {fmt(s['mean'])}  std {fmt(s['std'])}{bad}{dead}"
    )


def inspect_report(net: Network, stats: bool = False) -> dict:
    """The ``inspect --json`` object (:func:`inspect`'s ``data``)."""
    return inspect(net, stats=stats).data
