"""``darkweights init``: a valid weights file of random values for a cfg."""

from __future__ import annotations

import argparse

from .common import CFG_HELP, add_force, add_model_options, check_output, info, load

EXAMPLE = "darkweights init yolov4-tiny -o yolov4-tiny.weights --seed 1"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("cfg", help=CFG_HELP)
    p.add_argument("-o", "--output", required=True, help="OUT.weights")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0); the same seed, the same file")
    add_model_options(p)
    add_force(p)


def run(args: argparse.Namespace) -> int:
    from ..synth import init

    check_output(args, args.cfg)
    net = load(args, args.cfg)
    n = init(net, args.output, seed=args.seed)
    info(args, f"wrote {args.output} ({n:,} bytes, seed {args.seed})")
    return 0
