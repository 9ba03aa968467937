"""``darkweights extract``: weights -> ``.npz`` or ``.safetensors``."""

from __future__ import annotations

import argparse

from .common import (
    CFG_HELP,
    WEIGHTS_HELP,
    add_force,
    add_model_options,
    check_output,
    count,
    info,
    load,
    parse_layers,
)

EXAMPLE = "darkweights extract yolov4.cfg yolov4.weights -o yolov4.npz"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("cfg", help=CFG_HELP)
    p.add_argument("weights", nargs="?", help=WEIGHTS_HELP)
    p.add_argument("-o", "--output", required=True, help="OUT.npz or OUT.safetensors")
    p.add_argument("--layers", help="only these layers, e.g. 0,5-7")
    p.add_argument(
        "--cutoff", type=count, help="read only layers 0..N-1, like darknet's `partial` (then pack -> .conv.N)"
    )
    add_model_options(p)
    add_force(p)


def run(args: argparse.Namespace) -> int:
    from ..export import export_arrays

    check_output(args, args.cfg, args.weights)
    net = load(args, args.cfg, args.weights)
    layers = parse_layers(args.layers)
    n = export_arrays(net, args.output, layers=layers)
    count = sum(1 for p in net.params() if layers is None or p.layer in layers)
    info(args, f"wrote {args.output} ({n:,} bytes, {count} arrays)")
    return 0
