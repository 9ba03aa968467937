"""Parse + layout time against the number of layers: it must grow linearly.

    python benchmarks/bench_scaling.py [--sizes 1000,10000,100000] [--repeat 3] [--json OUT]

For each size N, two synthetic cfgs (``fuzz.cases.big_cfg``): a stack of N ``[convolutional]``
layers and a chain of ``[route]``/``[shortcut]`` layers (each referring back, so index
resolution is exercised). Reports for each the time of ``darkweights.load`` (read + parse +
shapes) and of ``Network.layout()``, the time per layer, and the ratio of the per-layer time
to that of the smallest size: linear scaling keeps the ratios near 1 (a quadratic step would
make the 100k ratio ~100). Medians of ``--repeat`` runs. Also the time to reject
``filters=2147483647`` (the resource guard: no size from a cfg is allocated before it is checked).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "src"), str(HERE.parent)]

import darkweights as dw  # noqa: E402
from fuzz.cases import big_cfg  # noqa: E402


def measure(path: Path, repeat: int) -> tuple[float, float]:
    parse, layout = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        net = dw.load(path)
        t1 = time.perf_counter()
        net.layout()
        t2 = time.perf_counter()
        parse.append(t1 - t0)
        layout.append(t2 - t1)
    return statistics.median(parse), statistics.median(layout)


def reject_time(repeat: int = 20) -> float:
    text = "[net]\nwidth=416\nheight=416\nchannels=3\n[convolutional]\nfilters=2147483647\nsize=3\npad=1\n"
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        try:
            dw.load("absurd.cfg", cfg_text=text)
        except dw.DarkweightsError:
            pass
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def too_many_time() -> float:
    """The 100,000-layer cfg: refused with the line of the first layer beyond the limit, none built."""
    text = big_cfg(100_000)
    t = time.perf_counter()
    try:
        dw.load("big.cfg", cfg_text=text)
    except dw.CfgError:
        pass
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,3000,10000")  # 10,000: darkweights.limits.MAX_LAYERS
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("conv", "route"):
            base = None
            for n in sizes:
                path = Path(tmp) / f"{kind}-{n}.cfg"
                path.write_text(big_cfg(n, kind))
                parse, layout = measure(path, args.repeat)
                per_layer = (parse + layout) / n
                base = base or per_layer
                results.append(
                    {
                        "cfg": kind,
                        "layers": n,
                        "parse_s": parse,
                        "layout_s": layout,
                        "us_per_layer": per_layer * 1e6,
                        "ratio_to_smallest": per_layer / base,
                    }
                )
    print(f"{'cfg':<6} {'layers':>7} {'parse s':>9} {'layout s':>9} {'us/layer':>9} {'ratio':>6}")
    for r in results:
        print(
            f"{r['cfg']:<6} {r['layers']:>7} {r['parse_s']:>9.3f} {r['layout_s']:>9.3f} {r['us_per_layer']:>9.1f} "
            f"{r['ratio_to_smallest']:>6.2f}"
        )
    rejected = reject_time()
    print(f"filters=2147483647 rejected in {rejected * 1e3:.2f} ms (median of 20)")
    too_many = too_many_time()
    print(f"a 100,000-layer cfg (beyond MAX_LAYERS) rejected in {too_many:.3f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"scaling": results, "reject_filters_s": rejected}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
