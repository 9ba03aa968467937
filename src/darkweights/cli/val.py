"""``darkweights val``: mAP exactly as AlexeyAB's ``darknet detector map`` prints it, on any backend."""

from __future__ import annotations

import argparse
import json

from ..errors import DarkweightsError
from .common import add_json, add_model_options, add_usable_options

BACKEND_CHOICES = ("torch", "onnxruntime", "openvino")
EXAMPLE = "darkweights val yolov4.cfg yolov4.weights coco.data --points 101"
# shown in docs/cli.md; tests/test_val.py runs it from the repository root and finds these lines in its output
# (Darknet ends most lines with a space: compared without trailing spaces)
PRINTOUT = """\
$ darkweights val tests/data/val/repo5/coco.data
 detections_count = 474, unique_truth_count = 8
class_id = 0, name = person, ap = 100.00%   \t (TP = 2, FP = 1)
...
 for conf_thresh = 0.25, precision = 0.75, recall = 0.75, F1-score = 0.75
 for conf_thresh = 0.25, TP = 6, FP = 2, FN = 2, average IoU = 61.61 %

 IoU threshold = 50 %, used Area-Under-Curve for each unique Recall
 mean average precision (mAP@0.50) = 0.060417, or 6.04 %
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="[CFG WEIGHTS | MODEL.onnx] DATA: the model (default: Yolo-Fastest 1.1), then a .data file",
    )
    p.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        help="what runs the network (default: torch for a cfg, onnxruntime for .onnx)",
    )
    p.add_argument(
        "--iou-thresh", type=float, default=0.5, help="IoU a detection needs to match a truth (default: 0.5)"
    )
    p.add_argument(
        "--points",
        type=int,
        default=0,
        help="AP recall points: 0 area under the curve (default), 11 PascalVOC 2007, 101 MS COCO",
    )
    p.add_argument(
        "--thresh",
        type=float,
        default=0.25,
        help="confidence for precision, recall, F1, TP/FP/FN and average IoU (default: 0.25)",
    )
    p.add_argument("--coco", action="store_true", help="also COCO's AP@[.5:.95], by pycocotools (extra [coco])")
    p.add_argument("--batch", type=int, help="images per forward (default: 4; a fixed-batch export its own)")
    p.add_argument(
        "--threads", type=int, help="the backend's threads (default: its own; 1 is fastest on a crowded machine)"
    )
    add_json(p)
    add_model_options(p)
    add_usable_options(p)


def run(args: argparse.Namespace) -> int:
    from ..val.metric import printout
    from ..val.run import val

    *model, data = args.paths
    if len(model) > 2:
        raise DarkweightsError("val: expected [CFG WEIGHTS | MODEL.onnx] DATA")
    if len(model) == 1 and not model[0].lower().endswith(".onnx"):
        raise DarkweightsError(f"val: {model[0]}: name the weights after the cfg (or give a .onnx export)")
    if args.points < 0:
        raise DarkweightsError(f"--points {args.points}: 0 (area under the curve) or a number of recall points")
    for opt in ("batch", "threads"):
        value = getattr(args, opt)
        if value is not None and value < 1:
            raise DarkweightsError(f"--{opt} {value}: must be at least 1")
    record = val(
        data,
        *model,
        backend=args.backend,
        dialect=args.dialect,
        width=args.width,
        height=args.height,
        iou_thresh=args.iou_thresh,
        thresh=args.thresh,
        points=args.points,
        coco=args.coco,
        batch=args.batch,
        threads=args.threads,
        allow_partial=args.allow_partial,
        allow_nonfinite=args.allow_nonfinite,
    )
    if args.json:
        print(json.dumps(record, indent=1))
        return 0
    print("\n".join(printout(record)))
    missing = f" ({record['missing_labels']} without a label file)" if record["missing_labels"] else ""
    print(
        f"\n {record['images']} images{missing}, backend {record['backend']}: {record['seconds']:.1f} s "
        f"({record['images'] / max(record['seconds'], 1e-9):.1f} images/s)"
    )
    if "coco_map" in record:
        print(
            f" COCO AP@[.5:.95] = {record['coco_map']:.4f}, AP@.50 = {record['coco_map50']:.4f}, "
            f"AP@.75 = {record['coco_map75']:.4f} (pycocotools; classes with truths only)"
        )
    return 0
