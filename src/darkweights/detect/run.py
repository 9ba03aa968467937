"""``darkweights detect``: Darknet's ``detector test`` pipeline on the PyTorch rebuild.

AlexeyAB (and hank-ai): load_image → resize_image (or letterbox_image when the cfg asks) →
forward with BN folded (as ``fuse_conv_batchnorm`` does) → decode every
``[yolo]``/``[Gaussian_yolo]``/``[region]`` head → NMS with the last head's
``nms_kind``/``beta_nms`` → records. pjreddie (``PJ:examples/detector.c:test_detector``):
always letterbox_image → forward without folding → decode every ``[yolo]``/``[region]`` head
→ ``do_nms_sort`` over the last layer's class count → records. Each head decodes as its
:class:`~darkweights.heads.Head` record says (the fork's layout is the family's business); the fork's
:class:`~darkweights.dialects.DetectorRules` give the defaults (threshold, letterbox, BN folding)
and name the :data:`PIPELINES` entry (box correction and NMS) its ``detector test`` runs. A head
darkweights cannot decode (``[detection]``) is refused, as Darknet's detector collects every head.

:func:`detect` is the Python API: it returns records and never prints; the CLI renders them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import numpy as np

from ..dialects import DetectorRules
from ..errors import DarkweightsError, DarkweightsWarning, UnsupportedError
from ..heads import Head
from ..tree import load_tree
from .boxes import Detections, correct_boxes_pjreddie, correct_yolo_boxes, head_detections, to_records
from .image import letterbox_image, network_input, resize_image
from .nms import do_nms_sort_pjreddie, nms

# The box correction of a fork's get_network_boxes: (head, boxes, im_w, im_h, net_w, net_h, letterbox) -> boxes
Correct = Callable[[Head, np.ndarray, int, int, int, int, bool], np.ndarray]
NmsFn = Callable[[Detections, float], Detections]


def _ab_correct(
    head: Head, boxes: np.ndarray, im_w: int, im_h: int, net_w: int, net_h: int, letterbox: bool
) -> np.ndarray:
    """AlexeyAB: ``correct_yolo_boxes`` (``[Gaussian_yolo]``: its own ``correct_gaussian_yolo_boxes``)."""
    return correct_yolo_boxes(boxes, im_w, im_h, net_w, net_h, letterbox, gaussian=head.box_correction == "gaussian")


def _pj_correct(
    head: Head, boxes: np.ndarray, im_w: int, im_h: int, net_w: int, net_h: int, letterbox: bool
) -> np.ndarray:
    """pjreddie: always the letterbox correction (its test_detector always letterboxes)."""
    return correct_boxes_pjreddie(boxes, im_w, im_h, net_w, net_h)


def _ab_nms(net: Any, heads: Sequence[Head]) -> NmsFn:
    last = heads[-1]  # AB's test_detector uses the last detection head's settings
    return partial(nms, nms_kind=last.nms_kind, beta_nms=last.beta_nms)


def _pj_nms(net: Any, heads: Sequence[Head]) -> NmsFn:
    """pjreddie's ``test_detector`` runs ``do_nms_sort`` with ``net->layers[net->n-1].classes`` (and
    ``make_network_boxes`` sizes every prob array by it): only detection-like layers have classes."""
    classes = {h.classes for h in heads}
    if len(classes) > 1:
        raise UnsupportedError(
            f"{net.path}: the detection heads disagree on the number of classes "
            f"({sorted(classes)}); pjreddie's test_detector would overflow its prob arrays"
        )
    (k,) = classes
    last = net.layers[-1]
    n = last.classes
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
    """What one fork's ``get_network_boxes`` and NMS do around the heads' decode (:attr:`DetectorRules.pipeline`
    names it): the box correction and the NMS it runs."""

    correct: Correct
    nms: Callable[[Any, Sequence[Head]], NmsFn]  # (net, heads) -> the NMS it runs


PIPELINES = {
    "alexeyab": Pipeline(correct=_ab_correct, nms=_ab_nms),
    "pjreddie": Pipeline(correct=_pj_correct, nms=_pj_nms),
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
        self.pipeline = PIPELINES[rules.pipeline]
        self.heads: list[Head] = [h for h in (L.head() for L in net.layers) if h is not None]
        if not self.heads:
            raise UnsupportedError(f"{net.path}: no detection head ([yolo], [Gaussian_yolo], [region]): not a detector")
        if rules.always_letterbox and letterbox is False:
            raise UnsupportedError(
                f"{net.dialect.title}'s detector test always letterboxes: letterbox=False is not supported"
            )
        for h in self.heads:
            if h.problem:
                L = net.layers[h.index]
                raise UnsupportedError(f"{net.path}: layer {L.index} [{L.type}]: {h.problem}")
        self.nms = self.pipeline.nms(net, self.heads)
        # YOLO9000 [region] tree= (the model has read it already; here for the decoding)
        self.trees = {h.index: load_tree(net.layers[h.index], net, h.classes) for h in self.heads if h.tree}
        classes = self.heads[-1].classes
        self.names = list(names) if names is not None else [str(i) for i in range(classes)]
        self.letterbox = rules.always_letterbox or (bool(net.letter_box) if letterbox is None else letterbox)
        self.thresh = rules.thresh

    @cached_property
    def model(self) -> Any:
        """The PyTorch model (BN folded as the dialect's ``detector test`` does), built on first use: a detector
        whose heads another backend computes (``darkweights val --backend onnxruntime``) never builds it."""
        return self.net.to_torch(fuse_bn=self.rules.fuse_bn)

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
        heads', tensors or arrays with a batch dimension, item 0 read; ``get_network_boxes``), then NMS:
        Darknet's detection array, in its order."""
        net = self.net
        thresh = self.thresh if thresh is None else thresh
        parts = []
        for h in self.heads:
            dets = head_detections(
                h,
                np.asarray(outs[h.index][0]),
                net_w=net.width,
                net_h=net.height,
                thresh=thresh,
                tree=self.trees.get(h.index),
            )
            dets.boxes = self.pipeline.correct(h, dets.boxes, im_w, im_h, net.width, net.height, self.letterbox)
            parts.append(dets)
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
