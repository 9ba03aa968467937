"""``darkweights inspect``: Darknet's layer table (shapes, BFLOPs, parameters, byte offsets)."""

from __future__ import annotations

import argparse
import os
import sys

from .common import CFG_HELP, WEIGHTS_HELP, add_json, add_model_options, load, terminal_width

EXAMPLE = "darkweights inspect yolov4-tiny   # a bundled cfg by name"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("cfg", help=CFG_HELP)
    p.add_argument("weights", nargs="?", help=WEIGHTS_HELP)
    add_json(p)
    p.add_argument(
        "--stats",
        action="store_true",
        help="min/max/mean/std, NaN/Inf counts and dead (all-zero) filters of every array",
    )
    add_model_options(p)


def run(args: argparse.Namespace) -> int:
    from ..report import inspect

    table = inspect(load(args, args.cfg, args.weights), stats=args.stats)
    if args.json:
        print(table.to_json())
    else:
        tty = sys.stdout.isatty()
        color = tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        print(table.to_text(color=color, width=terminal_width()))
    return 0
