"""``darkweights detect``: Darknet's ``detector test`` on images (default: the bundled Yolo-Fastest 1.1)."""

from __future__ import annotations

import argparse
import json

from ..errors import DarkweightsError
from .common import add_force, add_json, add_model_options, add_usable_options, info

EXAMPLE = "darkweights detect --sample -o dog.png   # the bundled model and photo"


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
    add_usable_options(p)
    add_model_options(p)
    add_force(p)


# leading bytes of the formats Darknet's stb_image and Pillow read
IMAGE_MAGIC = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",  # BMP
    b"II*\x00",  # TIFF
    b"MM\x00*",
    b"P1",  # PNM
    b"P2",
    b"P3",
    b"P4",
    b"P5",
    b"P6",
    b"8BPS",  # PSD
    b"#?RADIANCE",  # HDR
    b"\x00\x00\x01\x00",  # ICO
)


def check_image_file(path: str) -> None:
    """An image file that exists, is readable and starts like an image (WebP: RIFF....WEBP), or an
    :class:`~darkweights.errors.ImageError` naming it."""
    from ..errors import ImageError

    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except IsADirectoryError:
        raise ImageError("a directory, not an image file", file=path) from None
    except OSError as exc:
        raise ImageError(f"cannot read the image: {exc.strerror or exc}", file=path) from None
    if not head:
        raise ImageError("empty file, not an image", file=path, offset=0)
    if not (head.startswith(IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or _tga(path, head)):
        raise ImageError(
            "not an image (JPEG, PNG, BMP, GIF, TIFF, WebP, PNM ...): its first bytes are "
            + repr(head[:8])[1:]
            + (" (a cfg?)" if head.lstrip().startswith(b"[") else ""),
            file=path,
            offset=0,
        )


def _is_cfg(arg: str) -> bool:
    """A cfg file, or a bundled model's name that is no file here (``yolov4-tiny``, ``yolo-fastest``)."""
    import os

    from ..models import find

    return arg.lower().endswith(".cfg") or (not os.path.exists(arg) and find(arg) is not None)


def _tga(path: str, head: bytes) -> bool:
    """TGA has no magic: its name and a plausible image type byte."""
    return path.lower().endswith(".tga") and len(head) > 2 and head[2] in (1, 2, 3, 9, 10, 11)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..api import default_model
    from ..detect.run import detect

    paths = list(args.paths)
    cfg = weights = None
    if paths and _is_cfg(paths[0]):
        from ..models import resolve

        cfg, paths = paths[0], paths[1:]
        bundled = resolve(cfg)[1]  # a bundled model's own weights
        if paths and (paths[0].lower().endswith(".weights") or bundled is None):
            weights, paths = paths[0], paths[1:]
        else:
            weights = bundled
        if weights is None:
            raise DarkweightsError(f"detect {cfg}: name its weights file after it (CFG WEIGHTS IMAGE...)")
        if args.names is None and weights == bundled:  # the bundled model by name: its own class names
            from ..api import default_model

            args.names = str(default_model().names)
    if args.sample:
        paths.append(str(default_model().cfg.parent / "dog.jpg"))
    if not paths:
        raise DarkweightsError("detect: name at least one image (or --sample for the bundled dog.jpg)")
    for image in paths:  # cheap checks first: before torch and the model are loaded (seconds)
        check_image_file(image)
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
        allow_partial=args.allow_partial,
        allow_nonfinite=args.allow_nonfinite,
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
