"""``darkweights detect``: Darknet's ``detector test`` pipeline on the PyTorch rebuild.

load_image → resize_image (or letterbox_image when the cfg asks) → forward with BN folded
(as ``fuse_conv_batchnorm`` does) → decode every ``[yolo]``/``[Gaussian_yolo]``/``[region]``
head → NMS with the last head's ``nms_kind``/``beta_nms`` → records.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import DarkweightsError, UnsupportedError
from .boxes import (Detections, get_gaussian_yolo_detections, get_region_detections, get_yolo_detections, nms,
                    to_records)
from .image import letterbox_image, load_image, resize_image

HEADS = ("yolo", "gaussian_yolo", "region")


def read_names(path: Optional[Path], classes: int) -> list[str]:
    if path is None:
        return [str(i) for i in range(classes)]
    names = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if len(names) < classes:
        names += [str(i) for i in range(len(names), classes)]
    return names


class Detector:
    """A network ready for Darknet-identical detection on image files."""

    def __init__(self, net: Any, names: Optional[Sequence[str]] = None, *, letterbox: Optional[bool] = None) -> None:
        self.net = net
        self.heads = [L for L in net.layers if L.type in HEADS]
        if not self.heads:
            raise UnsupportedError(f"{net.path}: no [yolo], [Gaussian_yolo] or [region] layer: not a detector")
        self.model = net.to_torch(fuse_bn=True)
        classes = self.heads[-1].classes
        self.names = list(names) if names is not None else [str(i) for i in range(classes)]
        self.letterbox = bool(net.letter_box) if letterbox is None else letterbox

    def __call__(self, image: Any, *, thresh: float = 0.25, nms_thresh: float = 0.45) -> list[dict]:
        """Detections on an image file (or a ``(3, H, W)`` float array in [0, 1])."""
        import torch

        im = load_image(image) if not isinstance(image, np.ndarray) else image
        _, h, w = im.shape
        net = self.net
        sized = (letterbox_image if self.letterbox else resize_image)(im, net.width, net.height)
        with torch.inference_mode():
            # only the heads: the model then keeps route concatenations lazy and drops dead outputs
            heads = self.model(torch.from_numpy(np.ascontiguousarray(sized))[None])
        outs = dict(zip(self.model.heads, heads))
        return self.decode(outs, w, h, thresh=thresh, nms_thresh=nms_thresh)

    def decode(self, outs: Any, im_w: int, im_h: int, *, thresh: float = 0.25,
               nms_thresh: float = 0.45) -> list[dict]:
        """Boxes from every head's output (``outs[layer index]``: a list of all outputs or a dict of the
        heads'; ``fill_network_boxes``), NMS, then records."""
        net = self.net
        parts = []
        for L in self.heads:
            out = outs[L.index][0].numpy()
            common = dict(classes=L.classes, net_w=net.width, net_h=net.height, im_w=im_w, im_h=im_h,
                          thresh=thresh, letterbox=self.letterbox)
            if L.type == "yolo":
                parts.append(get_yolo_detections(out, anchors=L.anchors, mask=L.mask, new_coords=bool(L.new_coords),
                                                 **common))
            elif L.type == "gaussian_yolo":
                parts.append(get_gaussian_yolo_detections(out, anchors=L.anchors, mask=L.mask,
                                                          yolo_point=L.yolo_point, **common))
            else:
                parts.append(get_region_detections(out, anchors=L.anchors, num=L.num, coords=L.coords,
                                                   grid_w=L.output.w, grid_h=L.output.h, **common))
        dets = Detections.concatenate(parts)
        last = self.heads[-1]  # test_detector uses the last head's settings
        if nms_thresh > 0:
            dets = nms(dets, nms_thresh, last.nms_kind, last.beta_nms)
        return to_records(dets, self.names, im_w, im_h, thresh=thresh)


def run_detect(args: argparse.Namespace) -> int:
    """The CLI command (arguments as built by :func:`darkweights.cli.build_parser`)."""
    from ..api import default_model
    from ..network import load

    paths = list(args.paths)
    names_path = Path(args.names) if args.names else None
    if len(paths) >= 2 and paths[0].endswith(".cfg"):
        cfg, weights, images = paths[0], paths[1], paths[2:]
    else:
        bundled = default_model()
        cfg, weights, images = str(bundled.cfg), str(bundled.weights), paths
        names_path = names_path or bundled.names
    if args.sample:
        images.append(str(default_model().cfg.parent / "dog.jpg"))
    if not images:
        raise DarkweightsError("detect: name at least one image (or --sample for the bundled dog.jpg)")
    net = load(cfg, weights, dialect=args.dialect, width=args.width, height=args.height)
    heads = [L for L in net.layers if L.type in HEADS]
    names = read_names(names_path, heads[-1].classes if heads else 0)
    detector = Detector(net, names, letterbox=True if args.letterbox else None)
    out = Path(args.output) if args.output else None
    if out is not None and len(images) > 1 and not out.is_dir():
        raise DarkweightsError(f"-o {out}: with several images, -o must be an existing directory")
    results = {}
    for image in images:
        if not Path(image).is_file():
            raise DarkweightsError(f"{image}: no such image file")
        records = detector(image, thresh=args.thresh, nms_thresh=args.nms)
        results[image] = records
        if out is not None:
            from .draw import draw_detections

            target = out / (Path(image).stem + ".png") if out.is_dir() else out
            draw_detections(image, records, target)
            print(f"wrote {target}", file=sys.stderr)
    if args.json:
        public = {img: [{k: r[k] for k in ("class", "class_id", "prob", "x", "y", "w", "h")} for r in recs]
                  for img, recs in results.items()}
        print(json.dumps(public[images[0]] if len(images) == 1 else public, indent=1))
    else:
        for img, recs in results.items():
            print(f"{img}: {len(recs)} detections")
            for r in recs:
                print(f"  {r['class']:<14} {r['prob'] * 100:5.1f}%  x {r['x']:7.1f}  y {r['y']:7.1f}  "
                      f"w {r['w']:7.1f}  h {r['h']:7.1f}")
    return 0
