"""``darkweights verify``: our forward pass against Darknet's fixture, OpenCV, or an ONNX export."""

from __future__ import annotations

import argparse

from ..errors import DarkweightsError
from .common import CFG_HELP, WEIGHTS_HELP, add_json, add_model_options, add_usable_options, check_usable, load

EXAMPLE = "darkweights verify yolov4.cfg yolov4.weights --against opencv"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("cfg", nargs="?", help=CFG_HELP)
    p.add_argument("weights", nargs="?", help=WEIGHTS_HELP)
    p.add_argument("--fixture", metavar="DIR", help="a Darknet fixture (model.cfg, .weights, input, outputs)")
    p.add_argument("--against", choices=("opencv",), help="cross-check with OpenCV's Darknet importer")
    p.add_argument("--teacher-forcing", action="store_true", help="feed each layer the reference inputs")
    p.add_argument(
        "--bn-eps",
        choices=("darknet", "opencv"),
        default="darknet",
        help="--against opencv: 1e-6 as OpenCV (trained weights) or 1e-5",
    )
    p.add_argument(
        "--direct",
        action="store_true",
        help="every convolution direct (default: Winograd for wide 3x3)",
    )
    p.add_argument(
        "--float64",
        action="store_true",
        help="--fixture: compute in float64 (shows Darknet's rounding)",
    )
    p.add_argument(
        "--onnx",
        metavar="MODEL",
        help="run an ONNX export: vs --fixture DIR or CFG WEIGHTS",
    )
    p.add_argument(
        "--ort-level",
        choices=("disable", "basic", "extended", "all"),
        default="extended",
        metavar="LEVEL",
        help="--onnx: disable, basic, extended (default), all",
    )
    add_json(p)
    add_usable_options(p)
    add_model_options(p)


def run(args: argparse.Namespace) -> int:
    from .. import verify

    if args.onnx:
        from ..onnx import home

        if args.fixture:
            report = home.compare_onnx_with_fixture(args.onnx, args.fixture, level=args.ort_level)
        elif args.cfg and args.weights:
            net = load(args, args.cfg, args.weights)
            check_usable(args, net, "verify")
            report = home.compare_onnx_with_torch(args.onnx, net, level=args.ort_level)
        else:
            raise DarkweightsError("verify --onnx MODEL needs --fixture DIR, or CFG WEIGHTS (our PyTorch model)")
    elif args.fixture:
        report = verify.compare_with_fixture(
            args.fixture,
            teacher_forcing=args.teacher_forcing,
            winograd=not args.direct,
            float64=args.float64,
            dialect=args.dialect,
        )
    else:
        if not (args.cfg and args.weights):
            raise DarkweightsError("verify needs CFG WEIGHTS, or --fixture DIR")
        if args.float64:
            raise DarkweightsError("--float64 applies to --fixture comparisons (OpenCV computes in float32)")
        net = load(args, args.cfg, args.weights)
        check_usable(args, net, "verify")
        if args.against != "opencv":
            raise DarkweightsError("without --fixture, compare --against opencv")
        report = verify.compare_with_opencv(net, bn_eps=args.bn_eps, winograd=not args.direct)
    print(report.to_json() if args.json else report.to_table())
    return 0 if report.ok else 1
