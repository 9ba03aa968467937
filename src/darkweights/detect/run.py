"""``darkweights detect``: Darknet's ``detector test`` pipeline on the PyTorch rebuild.

AlexeyAB (and hank-ai): load_image → resize_image (or letterbox_image when the cfg asks) →
forward with BN folded (as ``fuse_conv_batchnorm`` does) → decode every
``[yolo]``/``[Gaussian_yolo]``/``[region]`` head → NMS with the last head's
``nms_kind``/``beta_nms`` → records. pjreddie (``PJ:examples/detector.c:test_detector``):
always letterbox_image → forward without folding → decode every ``[yolo]``/``[region]`` head
its way → ``do_nms_sort`` over the last layer's class count → records. The fork's
:class:`~darkweights.dialects.DetectorRules` give the defaults (threshold, letterbox, BN folding)
and name the :data:`PIPELINES` entry (decoders and NMS) its ``detector test`` runs.

:func:`detect` is the Python API: it returns records and never prints; the CLI renders them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..dialects import DetectorRules
from ..errors import DarkweightsError, DarkweightsWarning, UnsupportedError
from ..layers import LAYER_TYPES
from ..tree import load_tree
from .boxes import (
    Detections,
    do_nms_sort_pjreddie,
    get_gaussian_yolo_detections,
    get_region_detections,
    get_region_detections_pjreddie,
    get_yolo_detections,
    get_yolo_detections_pjreddie,
    nms,
    to_records,
)
from .image import letterbox_image, network_input, resize_image

# A head decoder: (layer, its l.output for image 0, letterboxed?, keyword arguments common to all heads).
Decoder = Callable[[Any, np.ndarray, bool, dict], Detections]
NmsFn = Callable[[Detections, float], Detections]


def _ab_yolo(L: Any, out: np.ndarray, letterbox: bool, common: dict) -> Detections:
    return get_yolo_detections(
        out, anchors=L.anchors, mask=L.mask, new_coords=bool(L.new_coords), letterbox=letterbox, **common
    )


def _ab_gaussian_yolo(L: Any, out: np.ndarray, letterbox: bool, common: dict) -> Detections:
    return get_gaussian_yolo_detections(
        out, anchors=L.anchors, mask=L.mask, yolo_point=L.yolo_point, letterbox=letterbox, **common
    )


def _ab_region(L: Any, out: np.ndarray, letterbox: bool, common: dict) -> Detections:
    return get_region_detections(
        out,
        anchors=L.anchors,
        num=L.num,
        coords=L.coords,
        grid_w=L.output.w,
        grid_h=L.output.h,
        letterbox=letterbox,
        **common,
    )


def _ab_nms(net: Any, heads: Sequence[Any]) -> NmsFn:
    last = heads[-1]  # AB's test_detector uses the last detection head's settings
    return partial(nms, nms_kind=last.nms_kind, beta_nms=last.beta_nms)


def _pj_yolo(L: Any, out: np.ndarray, letterbox: bool, common: dict) -> Detections:
    return get_yolo_detections_pjreddie(out, anchors=L.anchors, mask=L.mask, **common)  # always letterboxed


def _pj_region(L: Any, out: np.ndarray, letterbox: bool, common: dict) -> Detections:
    return get_region_detections_pjreddie(
        out,
        anchors=L.anchors,
        num=L.num,
        coords=L.coords,
        background=bool(L.background),
        grid_w=L.output.w,
        grid_h=L.output.h,
        **common,
    )


def _pj_nms(net: Any, heads: Sequence[Any]) -> NmsFn:
    """pjreddie's ``test_detector`` runs ``do_nms_sort`` with ``net->layers[net->n-1].classes`` (and
    ``make_network_boxes`` sizes every prob array by it): only detection-like layers have classes."""
    classes = {L.classes for L in heads}
    if len(classes) > 1:
        raise UnsupportedError(
            f"{net.path}: the detection heads disagree on the number of classes "
            f"({sorted(classes)}); pjreddie's test_detector would overflow its prob arrays"
        )
    (k,) = classes
    last = net.layers[-1]
    n = last.classes if last.is_head or last.type == "iseg" else 0
    if n < k:
        warnings.warn(
            f"{net.path}: pjreddie's test_detector takes the class count for its NMS and its drawing from "
            f"the last layer (layer {last.index} [{last.type}]: {n} classes, the heads have {k}): it "
            f"suppresses and draws only classes < {n}; darkweights reports all {k}, with NMS over "
            f"classes < {n} as pjreddie computes it",
            DarkweightsWarning,
            stacklevel=3,
        )
    return partial(do_nms_sort_pjreddie, classes=min(n, k))


@dataclass(frozen=True)
class Pipeline:
    """The code of one fork's ``get_network_boxes`` and NMS (:attr:`DetectorRules.pipeline` names it)."""

    heads: Mapping[str, Decoder | None]  # layer types its get_network_boxes collects; None: not decoded here
    nms: Callable[[Any, Sequence[Any]], NmsFn]  # (net, heads) -> the NMS it runs


PIPELINES = {
    "alexeyab": Pipeline(
        heads={"yolo": _ab_yolo, "gaussian_yolo": _ab_gaussian_yolo, "region": _ab_region}, nms=_ab_nms
    ),
    "pjreddie": Pipeline(heads={"yolo": _pj_yolo, "region": _pj_region, "detection": None}, nms=_pj_nms),
}


def read_names(path: Path | None, classes: int) -> list[str]:
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
    of the network's dialect (:class:`~darkweights.dialects.DetectorRules`, :data:`PIPELINES`)."""

    def __init__(self, net: Any, names: Sequence[str] | None = None, *, letterbox: bool | None = None) -> None:
        self.net = net
        self.rules: DetectorRules = net.dialect.detector
        rules = self.rules
        self.pipeline = pipeline = PIPELINES[rules.pipeline]
        undecoded = [L for L in net.layers if L.type in pipeline.heads and pipeline.heads[L.type] is None]
        if undecoded:
            L = undecoded[0]
            raise UnsupportedError(f"{net.path}: layer {L.index} [{L.type}]: detect does not decode [{L.type}] heads")
        self.heads = [L for L in net.layers if L.type in pipeline.heads]
        if not self.heads:
            kinds = [f"[{LAYER_TYPES[t].headers[0]}]" for t in pipeline.heads if pipeline.heads[t] is not None]
            raise UnsupportedError(f"{net.path}: no {', '.join(kinds[:-1])} or {kinds[-1]} layer: not a detector")
        if rules.always_letterbox and letterbox is False:
            raise UnsupportedError(
                f"{net.dialect.title}'s detector test always letterboxes: letterbox=False is not supported"
            )
        self.nms = pipeline.nms(net, self.heads)
        self.model = net.to_torch(fuse_bn=rules.fuse_bn)
        # YOLO9000 [region] tree= (the model has read it already; here for the decoding)
        self.trees = {L.index: load_tree(L, net, L.classes) for L in self.heads if L.tree}
        classes = self.heads[-1].classes
        self.names = list(names) if names is not None else [str(i) for i in range(classes)]
        self.letterbox = rules.always_letterbox or (bool(net.letter_box) if letterbox is None else letterbox)
        self.thresh = rules.thresh

    def __call__(self, image: Any, *, thresh: float | None = None, nms_thresh: float = 0.45) -> list[dict]:
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

    def decode(
        self, outs: Any, im_w: int, im_h: int, *, thresh: float | None = None, nms_thresh: float = 0.45
    ) -> list[dict]:
        """Records (:func:`.boxes.to_records`) of :meth:`boxes`."""
        thresh = self.thresh if thresh is None else thresh
        dets = self.boxes(outs, im_w, im_h, thresh=thresh, nms_thresh=nms_thresh)
        return to_records(dets, self.names, im_w, im_h, thresh=thresh)

    def boxes(
        self, outs: Any, im_w: int, im_h: int, *, thresh: float | None = None, nms_thresh: float = 0.45
    ) -> Detections:
        """Boxes from every head's output (``outs[layer index]``: a list of all outputs or a dict of the
        heads'; ``get_network_boxes``), then NMS: Darknet's detection array, in its order."""
        net = self.net
        thresh = self.thresh if thresh is None else thresh
        parts = []
        for L in self.heads:
            common = dict(classes=L.classes, net_w=net.width, net_h=net.height, im_w=im_w, im_h=im_h, thresh=thresh)
            if L.index in self.trees:
                common["tree"] = self.trees[L.index]
            parts.append(self.pipeline.heads[L.type](L, outs[L.index][0].numpy(), self.letterbox, common))
        dets = Detections.concatenate(parts)
        if nms_thresh > 0:
            dets = self.nms(dets, nms_thresh)
        return dets


def detect(
    images: Sequence[Any],
    cfg: Any | None = None,
    weights: Any | None = None,
    *,
    names: Any | None = None,
    dialect: Any = "auto",
    width: int | None = None,
    height: int | None = None,
    thresh: float | None = None,
    nms_thresh: float = 0.45,
    letterbox: bool | None = None,
    allow_partial: bool = False,
    allow_nonfinite: bool = False,
) -> dict[str, list[dict]]:
    """Darknet's ``detector test`` on image files: ``{image: records}`` in the order given.

    ``cfg``/``weights`` default to the bundled Yolo-Fastest 1.1 (with its COCO names); ``names``
    is a ``.names`` file. Records are :func:`.boxes.to_records` dicts (``class``, ``prob``, ``x``,
    ``y``, ``w``, ``h`` in image pixels ...). Nothing is printed or drawn. A partial weights file or NaN/Inf
    weights are refused (:mod:`darkweights.policy`) unless ``allow_partial``/``allow_nonfinite``.
    """
    from ..api import default_model
    from ..network import load

    names_path = Path(names) if names else None
    if cfg is None or weights is None:
        bundled = default_model()
        cfg, weights = bundled.cfg, bundled.weights
        names_path = names_path or bundled.names
    for image in images:
        if not Path(image).is_file():
            raise DarkweightsError("no such image file", file=image)
    net = load(cfg, weights, dialect=dialect, width=width, height=height)
    net.check_usable("detect", allow_partial=allow_partial, allow_nonfinite=allow_nonfinite)
    detector = Detector(net, letterbox=letterbox)
    detector.names = read_names(names_path, detector.heads[-1].classes)
    return {str(image): detector(image, thresh=thresh, nms_thresh=nms_thresh) for image in images}
