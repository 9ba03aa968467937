"""``darkweights detect``: Darknet's ``detector test`` on images (default: the bundled Yolo-Fastest 1.1)."""

from __future__ import annotations

import argparse
import json

from ..errors import DarkweightsError
from .common import add_force, add_json, add_model_options, info


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "paths",
        nargs="*",
        metavar="[CFG WEIGHTS] IMAGE",
        help="images, optionally after a cfg and its weights (default model: Yolo-Fastest 1.1)",
    )
    p.add_argument("--sample", action="store_true", help="also run on the bundled sample photo (dog.jpg)")
    p.add_argument("--names", help="class names file (default: coco.names with the bundled model)")
    p.add_argument("-o", "--output", help="OUT.png with the boxes drawn (one image), or a directory")
    add_json(p)
    p.add_argument(
        "--thresh",
        type=float,
        default=None,
        help="class probability threshold (default: that of the dialect's `detector test`: 0.25, "
        "0.5 with --dialect pjreddie)",
    )
    p.add_argument("--nms", type=float, default=0.45, help="NMS IoU threshold, 0 for none (default: 0.45)")
    p.add_argument(
        "--letterbox",
        action="store_true",
        help="force letterbox resizing (--dialect pjreddie always letterboxes, as its detector test)",
    )
    add_model_options(p)
    add_force(p)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..api import default_model
    from ..detect.run import detect

    paths = list(args.paths)
    cfg = weights = None
    if len(paths) >= 2 and paths[0].endswith(".cfg"):
        cfg, weights, paths = paths[0], paths[1], paths[2:]
    if args.sample:
        paths.append(str(default_model().cfg.parent / "dog.jpg"))
    if not paths:
        raise DarkweightsError("detect: name at least one image (or --sample for the bundled dog.jpg)")
    out = Path(args.output) if args.output else None
    if out is not None and len(paths) > 1 and not out.is_dir():
        raise DarkweightsError(f"-o {out}: with several images, -o must be an existing directory")
    if out is not None:
        from ..atomic import check_output

        for image in paths:
            target = out / (Path(image).stem + ".png") if out.is_dir() else out
            check_output(target, force=args.force, inputs=[cfg, weights, *paths])
    results = detect(
        paths,
        cfg,
        weights,
        names=args.names,
        dialect=args.dialect,
        width=args.width,
        height=args.height,
        thresh=args.thresh,
        nms_thresh=args.nms,
        letterbox=True if args.letterbox else None,
    )
    if out is not None:
        from ..detect.draw import draw_detections

        for image, records in results.items():
            target = out / (Path(image).stem + ".png") if out.is_dir() else out
            draw_detections(image, records, target)
            info(args, f"wrote {target}")
    if args.json:
        public = {
            img: [{k: r[k] for k in ("class", "class_id", "prob", "x", "y", "w", "h")} for r in recs]
            for img, recs in results.items()
        }
        print(json.dumps(public[paths[0]] if len(paths) == 1 else public, indent=1))
    else:
        for img, recs in results.items():
            print(f"{img}: {len(recs)} detections")
            for r in recs:
                print(
                    f"  {r['class']:<14} {r['prob'] * 100:5.1f}%  x {r['x']:7.1f}  y {r['y']:7.1f}  "
                    f"w {r['w']:7.1f}  h {r['h']:7.1f}"
                )
    return 0
