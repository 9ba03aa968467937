"""``darkweights detect``: Darknet's ``detector test`` pipeline on the PyTorch rebuild.

AlexeyAB (and hank-ai): load_image → resize_image (or letterbox_image when the cfg asks) →
forward with BN folded (as ``fuse_conv_batchnorm`` does) → decode every
``[yolo]``/``[Gaussian_yolo]``/``[region]`` head → NMS with the last head's
``nms_kind``/``beta_nms`` → records. pjreddie (``PJ:examples/detector.c:test_detector``):
always letterbox_image → forward without folding → decode every ``[yolo]``/``[region]`` head
its way → ``do_nms_sort`` over the last layer's class count → records. :data:`RULES` holds
what differs, per dialect.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from ..errors import DarkweightsError, DarkweightsWarning, UnsupportedError
from .boxes import (Detections, do_nms_sort_pjreddie, get_gaussian_yolo_detections, get_region_detections,
                    get_region_detections_pjreddie, get_yolo_detections, get_yolo_detections_pjreddie, nms,
                    to_records)
from .image import letterbox_image, network_input, resize_image

HEADS = ("yolo", "gaussian_yolo", "region")
SECTION = {"gaussian_yolo": "Gaussian_yolo"}  # cfg header spelling, for messages

# A head decoder: (layer, its l.output for image 0, letterboxed?, keyword arguments common to all heads).
Decoder = Callable[[Any, np.ndarray, bool, dict], Detections]
NmsFn = Callable[[Detections, float], Detections]


def _ab_yolo(L: Any, out: np.ndarray, letterbox: bool, common: dict) -> Detections:
    return get_yolo_detections(out, anchors=L.anchors, mask=L.mask, new_coords=bool(L.new_coords),
                               letterbox=letterbox, **common)


def _ab_gaussian_yolo(L: Any, out: np.ndarray, letterbox: bool, common: dict) -> Detections:
    return get_gaussian_yolo_detections(out, anchors=L.anchors, mask=L.mask, yolo_point=L.yolo_point,
                                        letterbox=letterbox, **common)


def _ab_region(L: Any, out: np.ndarray, letterbox: bool, common: dict) -> Detections:
    return get_region_detections(out, anchors=L.anchors, num=L.num, coords=L.coords, grid_w=L.output.w,
                                 grid_h=L.output.h, letterbox=letterbox, **common)


def _ab_nms(net: Any, heads: Sequence[Any]) -> NmsFn:
    last = heads[-1]  # AB's test_detector uses the last detection head's settings
    return partial(nms, nms_kind=last.nms_kind, beta_nms=last.beta_nms)


def _pj_yolo(L: Any, out: np.ndarray, letterbox: bool, common: dict) -> Detections:
    return get_yolo_detections_pjreddie(out, anchors=L.anchors, mask=L.mask, **common)  # always letterboxed


def _pj_region(L: Any, out: np.ndarray, letterbox: bool, common: dict) -> Detections:
    return get_region_detections_pjreddie(out, anchors=L.anchors, num=L.num, coords=L.coords,
                                          background=bool(L.background), grid_w=L.output.w, grid_h=L.output.h,
                                          **common)


def _pj_nms(net: Any, heads: Sequence[Any]) -> NmsFn:
    """pjreddie's ``test_detector`` runs ``do_nms_sort`` with ``net->layers[net->n-1].classes`` (and
    ``make_network_boxes`` sizes every prob array by it): only detection-like layers have classes."""
    classes = {L.classes for L in heads}
    if len(classes) > 1:
        raise UnsupportedError(f"{net.path}: the detection heads disagree on the number of classes "
                               f"({sorted(classes)}); pjreddie's test_detector would overflow its prob arrays")
    (k,) = classes
    last = net.layers[-1]
    n = int(getattr(last, "classes", 0)) if last.type in ("yolo", "region", "detection", "iseg") else 0
    if n < k:
        warnings.warn(f"{net.path}: pjreddie's test_detector takes the class count for its NMS and its drawing from "
                      f"the last layer (layer {last.index} [{last.type}]: {n} classes, the heads have {k}): it "
                      f"suppresses and draws only classes < {n}; darkweights reports all {k}, with NMS over "
                      f"classes < {n} as pjreddie computes it", DarkweightsWarning, stacklevel=3)
    return partial(do_nms_sort_pjreddie, classes=min(n, k))


@dataclass(frozen=True)
class Rules:
    """What one Darknet fork's ``detector test`` does around the network."""

    heads: Mapping[str, Optional[Decoder]]  # layer types its get_network_boxes collects; None: not decoded here
    nms: Callable[[Any, Sequence[Any]], NmsFn]  # (net, heads) -> the NMS it runs
    thresh: float  # default -thresh of its CLI
    always_letterbox: bool  # letterbox whatever the cfg says
    fuse_bn: bool  # detector test folds BN into the convolutions first (fuse_conv_batchnorm)


ALEXEYAB = Rules(heads={"yolo": _ab_yolo, "gaussian_yolo": _ab_gaussian_yolo, "region": _ab_region},
                 nms=_ab_nms, thresh=0.25, always_letterbox=False, fuse_bn=True)
PJREDDIE = Rules(heads={"yolo": _pj_yolo, "region": _pj_region, "detection": None},
                 nms=_pj_nms, thresh=0.5, always_letterbox=True, fuse_bn=False)
RULES = {"alexeyab": ALEXEYAB, "hankai": ALEXEYAB, "pjreddie": PJREDDIE}


def read_names(path: Optional[Path], classes: int) -> list[str]:
    if path is None:
        return [str(i) for i in range(classes)]
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DarkweightsError(f"cannot read class names: {exc.strerror or exc}", file=path) from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) < classes:
        names += [str(i) for i in range(len(names), classes)]
    return names


class Detector:
    """A network ready for Darknet-identical detection on image files, following the ``detector test``
    of the network's dialect (:data:`RULES`)."""

    def __init__(self, net: Any, names: Optional[Sequence[str]] = None, *, letterbox: Optional[bool] = None) -> None:
        self.net = net
        self.rules = rules = RULES[net.dialect]
        undecoded = [L for L in net.layers if L.type in rules.heads and rules.heads[L.type] is None]
        if undecoded:
            L = undecoded[0]
            raise UnsupportedError(f"{net.path}: layer {L.index} [{L.type}]: detect does not decode [{L.type}] heads")
        self.heads = [L for L in net.layers if L.type in rules.heads]
        if not self.heads:
            kinds = [f"[{SECTION.get(t, t)}]" for t in rules.heads if rules.heads[t] is not None]
            raise UnsupportedError(f"{net.path}: no {', '.join(kinds[:-1])} or {kinds[-1]} layer: not a detector")
        if rules.always_letterbox and letterbox is False:
            raise UnsupportedError(f"{net.dialect}'s detector test always letterboxes: letterbox=False is not supported")
        self.nms = rules.nms(net, self.heads)
        self.model = net.to_torch(fuse_bn=rules.fuse_bn)
        classes = self.heads[-1].classes
        self.names = list(names) if names is not None else [str(i) for i in range(classes)]
        self.letterbox = rules.always_letterbox or (bool(net.letter_box) if letterbox is None else letterbox)
        self.thresh = rules.thresh

    def __call__(self, image: Any, *, thresh: Optional[float] = None, nms_thresh: float = 0.45) -> list[dict]:
        """Detections on an image file (or a ``(3, H, W)`` float array in [0, 1]); ``thresh`` defaults
        to the dialect's (AlexeyAB 0.25, pjreddie 0.5)."""
        outs, w, h = self.forward(image)
        return self.decode(outs, w, h, thresh=thresh, nms_thresh=nms_thresh)

    def forward(self, image: Any) -> tuple[dict, int, int]:
        """The heads' outputs (``{layer index: tensor}``) for an image, and the image's width and height."""
        import torch

        net = self.net
        if isinstance(image, np.ndarray):
            _, h, w = image.shape
            sized = (letterbox_image if self.letterbox else resize_image)(image, net.width, net.height)
        else:
            sized, w, h = network_input(image, net.width, net.height, self.letterbox)
        with torch.inference_mode():
            # only the heads: the model then keeps route concatenations lazy and drops dead outputs
            heads = self.model(torch.from_numpy(np.ascontiguousarray(sized))[None])
        return dict(zip(self.model.heads, heads)), w, h

    def decode(self, outs: Any, im_w: int, im_h: int, *, thresh: Optional[float] = None,
               nms_thresh: float = 0.45) -> list[dict]:
        """Records (:func:`.boxes.to_records`) of :meth:`boxes`."""
        thresh = self.thresh if thresh is None else thresh
        dets = self.boxes(outs, im_w, im_h, thresh=thresh, nms_thresh=nms_thresh)
        return to_records(dets, self.names, im_w, im_h, thresh=thresh)

    def boxes(self, outs: Any, im_w: int, im_h: int, *, thresh: Optional[float] = None,
              nms_thresh: float = 0.45) -> Detections:
        """Boxes from every head's output (``outs[layer index]``: a list of all outputs or a dict of the
        heads'; ``get_network_boxes``), then NMS: Darknet's detection array, in its order."""
        net = self.net
        thresh = self.thresh if thresh is None else thresh
        parts = []
        for L in self.heads:
            common = dict(classes=L.classes, net_w=net.width, net_h=net.height, im_w=im_w, im_h=im_h, thresh=thresh)
            parts.append(self.rules.heads[L.type](L, outs[L.index][0].numpy(), self.letterbox, common))
        dets = Detections.concatenate(parts)
        if nms_thresh > 0:
            dets = self.nms(dets, nms_thresh)
        return dets


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
    rules = RULES[net.dialect]
    heads = [L for L in net.layers if rules.heads.get(L.type) is not None]
    names = read_names(names_path, heads[-1].classes if heads else 0)
    detector = Detector(net, names, letterbox=True if args.letterbox else None)
    out = Path(args.output) if args.output else None
    if out is not None and len(images) > 1 and not out.is_dir():
        raise DarkweightsError(f"-o {out}: with several images, -o must be an existing directory")
    if out is not None:
        from ..atomic import check_output

        for image in images:
            target = out / (Path(image).stem + ".png") if out.is_dir() else out
            check_output(target, force=getattr(args, "force", True), inputs=[cfg, weights, *images])
    results = {}
    for image in images:
        if not Path(image).is_file():
            raise DarkweightsError("no such image file", file=image)
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
