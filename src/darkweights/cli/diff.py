"""``darkweights diff``: per-layer change between two weights of one cfg (exit 0 same, 1 different)."""

from __future__ import annotations

import argparse

from .common import add_json, add_model_options

EXAMPLE = "darkweights diff base.weights tuned.weights --cfg yolov4.cfg"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", metavar="A", help="A.weights, or an .npz/.safetensors export (carries its cfg)")
    p.add_argument("b", metavar="B", help="B.weights or an export, to compare with A")
    p.add_argument("--cfg", help="the cfg of both (needed for .weights files)")
    p.add_argument(
        "--sort",
        choices=("layer", "change"),
        default="layer",
        help="row order: layer order (default) or largest relative change first",
    )
    add_json(p)
    add_model_options(p)


def run(args: argparse.Namespace) -> int:
    from ..compare import diff_report, open_weights
    from ..progress import bar

    sides = [
        open_weights(path, args.cfg, dialect=args.dialect, width=args.width, height=args.height)
        for path in (args.a, args.b)
    ]
    table = diff_report(*sides, order=args.sort, progress=bar)
    print(table.to_json() if args.json else table.to_text())
    return 0 if table.data["identical"] else 1
