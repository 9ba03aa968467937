"""One self-contained HTML page about a network (``darkweights report``).

Everything is inline — CSS, the graph as SVG, the plots as ``data:`` PNGs — so the page needs
no network and no other file when it is viewed. It shows the header and the dialect evidence,
the layer table (:func:`darkweights.report.inspect`, rendered generically from its columns),
the graph of routes and shortcuts, per-array statistics and the weight plots
(:mod:`darkweights.plot`, when matplotlib is installed).
"""

from __future__ import annotations

import base64
import html
import os
from typing import TYPE_CHECKING, Any, Union

from .report import Table, inspect

if TYPE_CHECKING:
    from .layers import Layer
    from .network import Network

PathLike = Union[str, "os.PathLike[str]"]

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1b1f24;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;font:12px/1.35 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
th,td{padding:2px 8px;border-bottom:1px solid #eaeef2;text-align:left;white-space:nowrap}
th{background:#f6f8fa;position:sticky;top:0}td.r,th.r{text-align:right}
tr:hover td{background:#fff8c5}dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:0}
dt{color:#57606a}dd{margin:0;font-family:ui-monospace,Menlo,Consolas,monospace}
.bad{background:#ffebe9;color:#a40e26;font-weight:600}.foot{color:#57606a;margin:6px 0 0}
.wrap{overflow-x:auto}img{max-width:100%;height:auto;border:1px solid #eaeef2}
svg text{font:11px ui-monospace,Menlo,Consolas,monospace}
"""


def layer_inputs(layer: Layer) -> list[int]:
    """Indexes of the layers whose outputs ``layer`` reads: the previous one (unless the family reads only
    others, as ``[route]``), then :meth:`~darkweights.layers.Layer.reads` (``layers=``, ``from=``)."""
    prev = [layer.index - 1] if layer.index > 0 and layer.reads_input else []
    return prev + layer.reads()


def _edge_legend() -> str:
    """The families whose arcs have their own colour (``Layer.edge_color``), in catalogue order."""
    from .layers import LAYER_TYPES, Layer

    coloured = [(t, c.edge_color) for t, c in LAYER_TYPES.items() if c.edge_color != Layer.edge_color]
    return ", ".join(f'<span style="color:{color}">{html.escape(t)}</span>' for t, color in coloured)


def graph_svg(net: Network) -> str:
    """The layers top to bottom; arcs on the right for every input that is not the previous layer."""
    row, node_w, left = 20, 250, 8
    n = len(net.layers)
    arcs = []
    for layer in net.layers:
        for src in layer_inputs(layer):
            if src != layer.index - 1:
                arcs.append((src, layer.index, layer.type, layer.edge_color))
    span = max((abs(d - s) for s, d, _, _ in arcs), default=0)
    width = left + node_w + 30 + min(span, 400) * 1.2 + 20
    height = n * row + 10
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{width:.0f}" height="{height}" '
        f'viewBox="0 0 {width:.0f} {height}" role="img" aria-label="layer graph">'
    ]
    for layer in net.layers:
        i = layer.index
        y = 5 + i * row
        if i > 0 and i - 1 in layer_inputs(layer):
            out.append(
                f'<line class="edge-seq" x1="{left + 20}" y1="{y - 4}" x2="{left + 20}" y2="{y}" '
                'stroke="#8c959f" stroke-width="1"/>'
            )
        fill = layer.node_color
        o = layer.output
        label = html.escape(
            f"{i:>3} {layer.type} {o.c}x{o.h}x{o.w}" if o.c * o.h * o.w == o.size else f"{i:>3} {layer.type} {o.size}"
        )
        title = html.escape(f"layer {i} [{layer.section.name}], cfg line {layer.line}: {layer.describe()}")
        out.append(
            f'<g class="node" id="node-{i}"><title>{title}</title><rect x="{left}" y="{y}" width="{node_w}" '
            f'height="{row - 4}" rx="3" fill="{fill}" stroke="#8c959f" stroke-width="0.6"/>'
            f'<text x="{left + 6}" y="{y + row - 8}" xml:space="preserve">{label}</text></g>'
        )
    x0 = left + node_w
    for s, d, kind, color in arcs:
        y1, y2 = 5 + s * row + (row - 4) / 2, 5 + d * row + (row - 4) / 2
        bulge = x0 + 12 + min(abs(d - s), 400) * 1.2
        out.append(
            f'<path class="edge-{html.escape(kind)}" d="M{x0} {y1:.1f} C{bulge:.1f} {y1:.1f} {bulge:.1f} '
            f'{y2:.1f} {x0 + 4} {y2:.1f}" fill="none" stroke="{color}" stroke-width="1.1" opacity="0.8">'
            f"<title>{s} -&gt; {d} ({html.escape(kind)})</title></path>"
        )
        out.append(f'<path d="M{x0 + 4} {y2:.1f} l6 -3 v6 z" fill="{color}"/>')
    out.append("</svg>")
    return "".join(out)


def table_html(table: Table, row_class: str = "", row_id: str | None = None) -> str:
    """Any :class:`~darkweights.report.Table` as an HTML table (its columns, rows, footer)."""
    head = "".join(f'<th class="{"r" if c.align == ">" else ""}">{html.escape(c.title)}</th>' for c in table.columns)
    body = []
    for r, cells in zip(table.rows, table.cells()):
        rid = f' id="{row_class or "row"}-{r[row_id]}"' if row_id and row_id in r else ""
        tds = "".join(
            f'<td class="{"r" if c.align == ">" else ""}">{html.escape(v)}</td>' for c, v in zip(table.columns, cells)
        )
        body.append(f'<tr class="{row_class}"{rid}>{tds}</tr>')
    foot = "".join(f'<p class="foot">{html.escape(line)}</p>' for line in table.footer)
    title = f"<p><b>{html.escape(table.title)}</b></p>" if table.title else ""
    return (
        f'{title}<div class="wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
        f"</table></div>{foot}"
    )


def dead_filters(arr: Any) -> int:
    """Filters (first axis) whose weights are all zero."""
    import numpy as np

    a = np.asarray(arr)
    if a.ndim < 2 or a.size == 0:
        return 0
    return int(np.count_nonzero(~a.reshape(a.shape[0], -1).any(axis=1)))


def stats_html(net: Network, data: dict) -> str:
    """Per-array statistics (from ``inspect(net, stats=True).data``); NaN/Inf and dead filters marked."""
    arrays = net.arrays() if net.has_weights else {}

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.4g}"

    rows = []
    for layer in data["layers"]:
        for a in layer["arrays"]:
            s = a.get("stats")
            if s is None:
                continue
            dead = dead_filters(arrays[a["key"]]) if a["name"].endswith("weights") and a["key"] in arrays else 0
            cls = lambda bad: ' class="r bad"' if bad else ' class="r"'  # noqa: E731
            rows.append(
                f'<tr class="stat"><td class="r">{layer["index"]}</td><td>{html.escape(layer["type"])}</td>'
                f"<td>{html.escape(a['name'])}</td><td>{html.escape(str(tuple(a['shape'])))}</td>"
                + "".join(f'<td class="r">{num(s[k])}</td>' for k in ("min", "max", "mean", "std"))
                + f"<td{cls(s['nan'])}>{s['nan']}</td><td{cls(s['inf'])}>{s['inf']}</td>"
                f"<td{cls(dead)}>{dead}</td></tr>"
            )
    if not rows:
        return "<p>No weights bound: statistics need a weights file.</p>"
    head = "".join(
        f'<th class="{c}">{t}</th>'
        for t, c in (
            ("#", "r"),
            ("type", ""),
            ("array", ""),
            ("shape", ""),
            ("min", "r"),
            ("max", "r"),
            ("mean", "r"),
            ("std", "r"),
            ("NaN", "r"),
            ("Inf", "r"),
            ("dead filters", "r"),
        )
    )
    return f'<div class="wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def plots_html(net: Network) -> str:
    if not net.has_weights:
        return "<p>No weights bound: plots need a weights file.</p>"
    try:
        from .plot import figures_png

        pngs = figures_png(net)
    except ImportError:
        return "<p>Plots need matplotlib: <code>pip install 'darkweights[plot]'</code>.</p>"
    return "".join(
        f'<figure><img class="plot" alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}"/></figure>'
        for name, png in pngs.items()
    )


def render(net: Network, *, plots: bool = True) -> str:
    """The whole page as a string."""
    table = inspect(net, stats=net.has_weights)
    data = table.data
    name = os.path.basename(net.path or "network")
    facts: list[tuple[str, str]] = [("cfg", str(net.path)), ("dialect", net.dialect_choice.describe())]
    if net.dialect_choice.note:
        facts.append(("note", net.dialect_choice.note))
    facts += [
        ("input", f"{net.channels}x{net.height}x{net.width}"),
        ("layers", str(len(net.layers))),
        ("parameters", f"{data['params']:,}"),
        ("weights size", f"{data['weights_bytes']:,} bytes"),
    ]
    if net.has_weights:
        h = data["header"]
        facts += [
            ("weights", str(data.get("weights") or "(in memory)")),
            (
                "header",
                f"version {h['major']}.{h['minor']}.{h['revision']}, seen {h['seen']:,}, "
                f"{h['header_bytes']}-byte header, file {data['file_bytes']:,} bytes",
            ),
        ]
        if net.cutoff is not None:
            facts.append(("partial", f"layers 0..{net.cutoff - 1}"))
    dl = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts)
    table.details.clear()  # the statistics get their own section
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(name)} - darkweights report</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(name)}</h1>",
        f'<section id="summary"><dl>{dl}</dl></section>',
        f'<h2>Layers</h2><section id="layers">{table_html(table, "layer", "index")}</section>',
        f'<h2>Graph</h2><section id="graph"><p class="foot">each box a layer (index, type, output); arcs: '
        f"{_edge_legend()}, grey: other <code>from=</code></p>"
        f'<div class="wrap">{graph_svg(net)}</div></section>',
        f'<h2>Statistics</h2><section id="stats">{stats_html(net, data)}</section>',
    ]
    if plots:
        parts.append(f'<h2>Plots</h2><section id="plots">{plots_html(net)}</section>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(net: Network, path: PathLike, *, plots: bool = True) -> int:
    """Write the page atomically; returns its size in bytes."""
    from .weightsfile import atomic_output

    text = render(net, plots=plots).encode("utf-8")
    with atomic_output(path) as f:
        f.write(text)
    return len(text)
