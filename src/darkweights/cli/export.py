"""``darkweights export``: cfg + weights -> ONNX model."""

from __future__ import annotations

import argparse

from .common import (
    CFG_HELP,
    WEIGHTS_HELP,
    add_force,
    add_model_options,
    add_usable_options,
    check_output,
    check_usable,
    info,
    load,
)

EXAMPLE = "darkweights export yolov4.cfg yolov4.weights -o yolov4.onnx"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("cfg", help=CFG_HELP)
    p.add_argument("weights", nargs="?", help=WEIGHTS_HELP)
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="OUT.onnx")
    p.add_argument("--opset", type=int, metavar="N", help="ONNX opset, 13 to 23 (default 20)")
    p.add_argument("--batch", default="1", metavar="N", help="batch size, or 'dynamic' (default: 1)")
    p.add_argument("--fp16", action="store_true", help="float16 weights, activations (input/outputs float32)")
    p.add_argument(
        "--outputs",
        choices=("raw", "decoded", "nms"),
        default="raw",
        metavar="KIND",
        help="raw (default: Darknet's layout), decoded (boxes, scores), nms",
    )
    p.add_argument("--all-outputs", action="store_true", help="every layer's output as layer_<i> (raw)")
    p.add_argument("--names", metavar="FILE", help="class names file, stored in the model's metadata")
    p.add_argument("--fuse-bn", action="store_true", help="fold batch-norm like darknet detector test")
    p.add_argument("--bug-compatible", action="store_true", help="reproduce Darknet CPU bugs instead of refusing")
    p.add_argument("--thresh", type=float, metavar="T", help="decoded/nms: score threshold (default 0.25)")
    p.add_argument("--nms", type=float, metavar="T", help="nms: IoU threshold (default 0.45)")
    p.add_argument("--max-detections", type=int, metavar="N", help="nms: per class (default: every candidate)")
    add_usable_options(p)
    add_model_options(p)
    add_force(p)


def run(args: argparse.Namespace) -> int:
    from ..onnx.exporter import export_onnx

    check_output(args, args.cfg, args.weights)
    net = load(args, args.cfg, args.weights)
    check_usable(args, net, "export")
    names = None
    if args.names:
        from pathlib import Path

        names = [line.strip() for line in Path(args.names).read_text().splitlines() if line.strip()]
    exported = export_onnx(
        net,
        args.output,
        opset=args.opset,
        batch=args.batch,
        fp16=args.fp16,
        outputs=args.outputs,
        all_outputs=args.all_outputs,
        names=names,
        fuse_bn=args.fuse_bn,
        bug_compatible=args.bug_compatible,
        thresh=args.thresh,
        nms=args.nms,
        max_detections=args.max_detections,
    )
    shown = ", ".join(exported.outputs[:6]) + (" ..." if len(exported.outputs) > 6 else "")
    info(args, f"wrote {args.output} ({exported.bytes:,} bytes, opset {exported.opset}, outputs {shown})")
    return 0
