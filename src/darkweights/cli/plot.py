"""``darkweights plot``: a PNG of per-layer weight distributions and the first convolution's filters."""

from __future__ import annotations

import argparse

from .common import CFG_HELP, WEIGHTS_HELP, add_force, add_model_options, check_output, info, load

EXAMPLE = "darkweights plot yolov4.cfg yolov4.weights -o weights.png"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("cfg", help=CFG_HELP)
    p.add_argument("weights", nargs="?", help=WEIGHTS_HELP)
    p.add_argument("-o", "--output", required=True, help="OUT.png")
    p.add_argument("--dpi", type=int, default=100, help="resolution of the PNG (default: 100)")
    add_model_options(p)
    add_force(p)


def run(args: argparse.Namespace) -> int:
    from ..plot import plot

    check_output(args, args.cfg, args.weights)
    n = plot(load(args, args.cfg, args.weights), args.output, dpi=args.dpi)
    info(args, f"wrote {args.output} ({n:,} bytes)")
    return 0
