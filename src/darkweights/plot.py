"""Pictures of a network's weights (``darkweights plot``, and the figures of the HTML report).

Two figures, drawn with matplotlib's Agg backend (the ``[plot]`` extra, imported here only):

* per-layer distributions: one box per layer for its filter weights (whiskers at the 1st and
  99th percentiles, the extremes as dots; a symmetric-log axis when the values span more than
  two decades), and below it the batch-norm scales and rolling variances on a log axis;
* the first convolution's filters as an image grid (RGB when it reads 3 channels, else the
  first input channel in grey), each filter scaled to its own range.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Any, Union

from .errors import DarkweightsError

if TYPE_CHECKING:
    import numpy as np

    from .network import Network

PathLike = Union[str, "os.PathLike[str]"]
PERCENTILES = (1, 25, 50, 75, 99)
SAMPLE = 1 << 20  # values per array used for the percentiles (evenly strided; extremes are exact)


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("plots need matplotlib: pip install 'darkweights[plot]'", name="matplotlib") from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def box_stats(arr: np.ndarray, label: str) -> dict:
    """What ``Axes.bxp`` draws for one array: quartiles, 1/99 % whiskers, min/max as fliers."""
    import numpy as np

    flat = np.asarray(arr, dtype=np.float32).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        flat = np.zeros(1, np.float32)
    step = max(1, flat.size // SAMPLE)
    p1, q1, med, q3, p99 = np.percentile(flat[::step], PERCENTILES)
    return {
        "label": label,
        "whislo": p1,
        "q1": q1,
        "med": med,
        "q3": q3,
        "whishi": p99,
        "fliers": np.array([flat.min(), flat.max()]),
        "mean": float(flat.mean(dtype=np.float64)),
    }


def _role_arrays(net: Network, roles: tuple[str, ...]) -> list[tuple[int, str, np.ndarray]]:
    """(layer, type, array) of every bound array with one of ``roles`` (top-level arrays only)."""
    arrays = net.arrays()
    out = []
    for p in net.params():
        if p.role in roles and "." not in p.name:
            out.append((p.layer, net.layers[p.layer].type, arrays[p.key]))
    return out


def _needs_symlog(stats: list[dict]) -> float | None:
    """A linear threshold for a symlog axis when the boxes span more than two decades, else None."""
    import numpy as np

    spread = [max(abs(s["q1"]), abs(s["q3"])) for s in stats]
    spread = [v for v in spread if v > 0]
    if not spread:
        return None
    top = max(max(abs(s["fliers"][0]), abs(s["fliers"][1])) for s in stats)
    low = float(np.min(spread))
    return low if top / low > 100 else None


def _tick_step(n: int) -> int:
    return max(1, int(round(n / 40)))


def distributions_figure(net: Network, plt: Any) -> Any:
    """The per-layer box plots (weights; BN scales and variances when the network has batch-norm)."""
    import numpy as np

    weights = _role_arrays(net, ("weights",))
    if not weights:
        raise DarkweightsError("the network stores no weight arrays to plot", file=net.path)
    bn = {role: _role_arrays(net, (role,)) for role in ("scales", "rolling_variance")}
    panels = [("weights", weights)] + [(role, arrs) for role, arrs in bn.items() if arrs]
    n = len(weights)
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(min(max(8.0, 0.12 * n + 3), 24), 2.6 * len(panels) + 0.8), squeeze=False
    )
    for ax, (role, arrs) in zip(axes[:, 0], panels):
        stats = [box_stats(a, str(i)) for i, _, a in arrs]
        _boxes(ax, [i for i, _, _ in arrs], stats)
        if role == "weights":
            lin = _needs_symlog(stats)
            if lin is not None:
                ax.set_yscale("symlog", linthresh=lin)
                top = max(max(abs(v) for v in st["fliers"]) for st in stats)
                powers = [10.0**e for e in range(int(np.floor(np.log10(lin))) + 1, int(np.ceil(np.log10(top))) + 1)]
                ax.set_yticks([-p for p in reversed(powers)] + [0.0] + powers)
            ax.axhline(0, color="#999999", linewidth=0.5, zorder=0)
            ax.set_title(
                f"filter weights per layer ({len(arrs)} layers; box: quartiles, whiskers: 1-99 %, "
                f"dots: min/max){'; symlog axis' if lin is not None else ''}",
                fontsize=9,
            )
        else:
            lo, hi = min(s["fliers"][0] for s in stats), max(s["fliers"][1] for s in stats)
            positive = lo > 0 and hi / lo > 10  # log only where the values span more than a decade
            if positive:
                ax.set_yscale("log")
            ax.set_title(
                f"batch-norm {role.replace('_', ' ')} per layer{' (log axis)' if positive else ''}", fontsize=9
            )
        idx = [i for i, _, _ in arrs]
        ticks = idx[:: _tick_step(len(idx))]
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) for t in ticks], fontsize=7, rotation=90)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xlim(min(idx) - 1, max(idx) + 1)
        ax.grid(axis="y", linewidth=0.3, alpha=0.6)
    axes[-1, 0].set_xlabel("layer", fontsize=8)
    fig.suptitle(f"{os.path.basename(net.path or 'network')}: weight distributions", fontsize=10)
    height = fig.get_size_inches()[1]
    fig.subplots_adjust(left=0.07, right=0.99, top=1 - 0.55 / height, bottom=0.55 / height, hspace=0.55)
    return fig


def _boxes(ax: Any, positions: list[int], stats: list[dict]) -> None:
    """Box plots from precomputed statistics, drawn as four collections (``Axes.bxp`` makes six
    artists per box, too slow for a 160-layer network)."""
    from matplotlib.collections import PolyCollection

    half = 0.3
    ax.vlines(
        positions, [s["whislo"] for s in stats], [s["whishi"] for s in stats], colors="#3182bd", linewidth=0.6, zorder=1
    )
    ax.add_collection(
        PolyCollection(
            [
                [(x - half, s["q1"]), (x + half, s["q1"]), (x + half, s["q3"]), (x - half, s["q3"])]
                for x, s in zip(positions, stats)
            ],
            facecolors="#9ecae1",
            edgecolors="#3182bd",
            linewidths=0.6,
            zorder=2,
        )
    )
    ax.hlines(
        [s["med"] for s in stats],
        [x - half for x in positions],
        [x + half for x in positions],
        colors="#08306b",
        linewidth=0.9,
        zorder=3,
    )
    xs = [x for x in positions for _ in (0, 1)]
    ax.scatter(xs, [v for s in stats for v in s["fliers"]], s=2, c="#de2d26", zorder=4, linewidths=0)


def filter_grid(weights: np.ndarray) -> np.ndarray:
    """Filters ``(n, c, k, k)`` tiled into one ``(H, W, 3)`` image in [0, 1], each filter on its own
    range, one pixel of white between tiles."""
    import numpy as np

    w = np.asarray(weights, dtype=np.float64)
    n, c, kh, kw = w.shape
    tiles = w[:, :3] if c >= 3 else np.repeat(w[:, :1], 3, axis=1)
    lo = tiles.min(axis=(1, 2, 3), keepdims=True)
    hi = tiles.max(axis=(1, 2, 3), keepdims=True)
    tiles = (tiles - lo) / np.where(hi > lo, hi - lo, 1.0)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.ones((rows * (kh + 1) + 1, cols * (kw + 1) + 1, 3))
    for i in range(n):
        r, q = divmod(i, cols)
        grid[1 + r * (kh + 1) : 1 + r * (kh + 1) + kh, 1 + q * (kw + 1) : 1 + q * (kw + 1) + kw] = tiles[i].transpose(
            1, 2, 0
        )
    return grid


def first_conv(net: Network) -> tuple[int, np.ndarray] | None:
    """(layer index, weights) of the first convolution with spatial kernels, or None."""
    arrays = net.arrays()
    for p in net.params():
        if p.role == "weights" and len(p.shape) == 4 and net.layers[p.layer].shows_filters:
            return p.layer, arrays[p.key]
    return None


def filters_figure(net: Network, plt: Any) -> Any | None:
    found = first_conv(net)
    if found is None:
        return None
    index, w = found
    grid = filter_grid(w)
    n, c, k, _ = w.shape
    side = min(8.0, max(5.0, grid.shape[1] / 12))
    fig, ax = plt.subplots(figsize=(side, min(side * grid.shape[0] / grid.shape[1], 8.0) + 0.6))
    ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    shown = "RGB" if c >= 3 else "channel 0"
    ax.set_title(f"layer {index} filters: {n} x {c}x{k}x{k} ({shown}, each on its own range)", fontsize=9)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - 0.45 / fig.get_size_inches()[1])
    return fig


def _png(fig: Any, plt: Any, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def figures_png(net: Network, *, dpi: int = 100) -> dict[str, bytes]:
    """``{"distributions": PNG bytes, "filters": PNG bytes}`` (no ``filters`` without a convolution)."""
    if not net.has_weights:
        raise DarkweightsError("plots need weights: pass a weights file", file=net.path)
    plt = _pyplot()
    out = {"distributions": _png(distributions_figure(net, plt), plt, dpi)}
    fig = filters_figure(net, plt)
    if fig is not None:
        out["filters"] = _png(fig, plt, dpi)
    return out


def plot(net: Network, path: PathLike, *, dpi: int = 100) -> int:
    """Write one PNG: the distributions above the first convolution's filters. Returns bytes written."""
    import numpy as np

    from .weightsfile import atomic_output

    if not net.has_weights:
        raise DarkweightsError("plots need weights: pass a weights file", file=net.path)
    plt = _pyplot()
    dist = distributions_figure(net, plt)
    filt = filters_figure(net, plt)
    images = [dist] + ([filt] if filt is not None else [])
    # stack the figures into one canvas: render each, then paste (keeps each figure's own layout)
    rendered = []
    for fig in images:
        fig.set_dpi(dpi)
        fig.canvas.draw()
        rendered.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
        plt.close(fig)
    width = max(r.shape[1] for r in rendered)
    canvas = np.full((sum(r.shape[0] for r in rendered), width, 3), 255, np.uint8)
    y = 0
    for r in rendered:
        x = (width - r.shape[1]) // 2
        canvas[y : y + r.shape[0], x : x + r.shape[1]] = r
        y += r.shape[0]
    with atomic_output(path) as f:
        plt.imsave(f, canvas, format="png")
        return f.tell()
