"""``darkweights pack``: ``.npz``/``.safetensors``/``.pt`` state_dict/``.onnx`` -> weights."""

from __future__ import annotations

import argparse

from ..errors import DarkweightsError
from .common import DIALECT_CHOICES, add_force, check_output, info

EXAMPLE = "darkweights pack yolov4.safetensors -o copy.weights"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("cfg", help="the cfg, or the array file when it carries its cfg")
    p.add_argument("arrays", nargs="?", help="the .npz/.safetensors/.pt/.onnx (when the first argument is the cfg)")
    p.add_argument("-o", "--output", required=True, help="OUT.weights")
    p.add_argument("--header", help="major,minor,revision[,seen] (default: the source file's)")
    p.add_argument(
        "--dialect",
        choices=DIALECT_CHOICES,
        help="the fork's rules (default: the one the array file records, else auto)",
    )
    p.add_argument(
        "--allow-fused",
        action="store_true",
        help="MODEL.onnx exported with --fuse-bn: write the folded weights with an identity BN",
    )
    p.add_argument(
        "--allow-nonfinite", action="store_true", help="write NaN/Inf values as they are (what extract read)"
    )
    add_force(p)


def run(args: argparse.Namespace) -> int:
    from ..export import pack

    if args.arrays is None:  # `pack ARRAYS -o OUT`: the cfg comes from the file's metadata
        args.cfg, args.arrays = None, args.cfg
    check_output(args, args.cfg, args.arrays)
    header = None
    if args.header:
        try:
            header = [int(v) for v in args.header.split(",")]
        except ValueError:
            raise DarkweightsError(f"--header {args.header!r}: expected major,minor,revision[,seen]") from None
    n = pack(
        args.arrays,
        args.output,
        cfg=args.cfg,
        dialect=args.dialect,
        header=header,
        allow_fused=args.allow_fused,
        allow_nonfinite=args.allow_nonfinite,
    )
    info(args, f"wrote {args.output} ({n:,} bytes)")
    return 0
