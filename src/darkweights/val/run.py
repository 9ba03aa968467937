"""``darkweights val``: AlexeyAB's ``darknet detector map`` without Darknet, on any backend.

What ``validate_detector_map`` runs, step by step: the ``.data`` file's ``valid=`` list and ``names=``
(:mod:`.data`); the names counted against the last layer's ``classes`` (Darknet stops on a mismatch); each image
loaded and resized, or letterboxed when the cfg says ``letter_box=1``; the network (BN folded); every head decoded at
``thresh = .005`` (``hier_thresh`` 0); NMS at ``.45`` with the last detection layer's ``nms_kind``/``beta_nms`` (the
detector's own rules: :class:`darkweights.detect.run.Detector`); the labels by ``replace_image_to_label``; then
:mod:`.metric`. pjreddie's Darknet has no ``map``: with its dialect the metric is AlexeyAB's over pjreddie's
detector (always letterboxed, its decoders and NMS).

The model is built once, each image decoded once (the next batch decoded while the backend runs), and the forward
batched where the backend allows.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..errors import ArgumentError, DarkweightsError, DarkweightsWarning, DatasetError
from .data import DataFile, Labels, ListEntry, read_data_file, read_image_list, read_labels, read_names
from .metric import MapAccumulator

PathLike = Union[str, "os.PathLike[str]"]

DECODE_THRESH = 0.005  # validate_detector_map's `thresh`
NMS_THRESH = 0.45  # its `nms`
BATCH = 4  # images per forward when the backend takes any batch size
# fork -> what val computes for it instead of that fork's own `detector map`
METRIC_NOTICES = {
    "pjreddie": "pjreddie's Darknet has no `detector map`: this is AlexeyAB's metric over pjreddie's detector "
    "(letterboxed, its decoders and NMS)",
    "hankai": "hank-ai rewrote `detector map` in v5.1 (src-lib/detector_map.cpp, which also clamps label boxes to "
    "the image): this is AlexeyAB's metric, and its label rules, over hank-ai's detector",
}


def val(
    data: PathLike,
    model: Any = None,
    weights: Any = None,
    *,
    backend: Any = None,
    dialect: Any = "auto",
    width: int | None = None,
    height: int | None = None,
    iou_thresh: float = 0.5,
    thresh: float = 0.25,
    points: int = 0,
    coco: bool = False,
    batch: int | None = None,
    threads: int | None = None,
    allow_partial: bool = False,
    allow_nonfinite: bool = False,
) -> dict[str, Any]:
    """Darknet's ``detector map`` on the ``valid=`` images of the ``.data`` file ``data``, as a record.

    ``model``: a cfg path or bundled name (with ``weights``), a darkweights ``.onnx`` raw export (cfg and settings
    from its metadata), or a :class:`~darkweights.Network`; default the bundled Yolo-Fastest 1.1. ``backend``:
    ``"torch"`` (the default for a cfg), ``"onnxruntime"`` (the default for ``.onnx``; a cfg is exported to a
    temporary raw ONNX file first), ``"openvino"``, a :class:`darkweights.backends.Backend`, or any callable
    ``fn(batch (N, C, H, W) float32) -> head outputs`` (a list in head order or a dict by layer index, Darknet's
    layout). ``iou_thresh``, ``thresh`` (the confidence for precision/recall/F1/TP/FP/FN/average IoU) and
    ``points`` (0: area under the curve, 11: VOC2007, 101: COCO) are ``detector map``'s ``-iou_thresh``,
    ``-thresh`` and ``-points``. ``coco=True`` adds COCO's AP@[.5:.95] (``pycocotools``, extra ``[coco]``).
    ``batch``: images per forward (default 4, or the export's fixed batch); ``threads``: the backend's threads.
    A partial weights file or NaN/Inf weights are refused (:mod:`darkweights.policy`) unless ``allow_partial`` /
    ``allow_nonfinite``.

    Returns ``{"map", "iou_thresh", "points", "conf_thresh", "precision", "recall", "f1", "tp", "fp", "fn",
    "average_iou", "classes": [{"class_id", "name", "ap", "tp", "fp", "truths", "detections"}, ...], "images",
    "missing_labels", ...}``, all fractions (NaN, where Darknet divides 0 by 0, as ``None``);
    :func:`darkweights.val.metric.printout` renders it as Darknet prints it.
    """
    if points < 0 or not isinstance(points, int):
        raise ArgumentError(f"points must be 0 (area under the curve) or a number of recall points, not {points!r}")
    with tempfile.TemporaryDirectory(prefix="darkweights-val-") as workdir:
        job = Job.open(
            data,
            model,
            weights,
            backend,
            dialect,
            width,
            height,
            workdir,
            threads=threads,
            allow_partial=allow_partial,
            allow_nonfinite=allow_nonfinite,
        )
        return job.run(iou_thresh=iou_thresh, thresh=thresh, points=points, coco=coco, batch=batch)


class Job:
    """One evaluation: the dataset (every label file read and checked first), the network, its detector and the
    backend; nothing runs until :meth:`detections`."""

    def __init__(
        self,
        net: Any,
        detector: Any,
        backend: Any,
        names: list[str],
        images: list[ListEntry],
        truths: list[Labels],
        difficult: list[Labels] | None,
    ) -> None:
        self.net, self.detector, self.backend, self.names = net, detector, backend, names
        self.images, self.truths, self.difficult = images, truths, difficult
        self.classes = detector.heads[-1].classes  # validate_detector_map's `l.classes`: the last head's

    @classmethod
    def open(
        cls,
        data: PathLike,
        model: Any,
        weights: Any,
        backend: Any,
        dialect: Any,
        width: int | None,
        height: int | None,
        workdir: PathLike,
        *,
        threads: int | None = None,
        allow_partial: bool = False,
        allow_nonfinite: bool = False,
    ) -> Job:
        from ..backends import Backend, CallableBackend, open_backend
        from ..detect.run import Detector

        datafile = read_data_file(data)
        net, onnx = _network(model, weights, dialect, width, height)
        if onnx is None:
            if not net.has_weights:
                raise DarkweightsError(
                    "val needs the trained weights: name the .weights file after the cfg", file=net.path
                )
            net.check_usable("val", allow_partial=allow_partial, allow_nonfinite=allow_nonfinite)
        notice = METRIC_NOTICES.get(net.dialect.name)
        if notice:
            warnings.warn(notice, DarkweightsWarning, stacklevel=3)
        names = _check_classes(datafile, net)
        detector = Detector(net, names)
        classes = detector.heads[-1].classes
        images = read_image_list(datafile.path_of("valid", "list of images to evaluate"))
        if not images:
            raise DatasetError("the valid= list names no images", file=datafile.path_of("valid", ""))
        truths = [_read_truth(e, classes) for e in images]
        difficult = None
        if datafile.get("difficult") is not None:
            hard = read_image_list(datafile.path_of("difficult", "list of difficult objects"), images=False)
            if len(hard) != len(images):
                raise DatasetError(
                    f"difficult= lists {len(hard)} images, valid= {len(images)}: Darknet pairs them line by line",
                    file=datafile.path,
                    line=datafile.line("difficult"),
                )
            difficult = [_read_truth(e, classes) for e in hard]
        if isinstance(backend, Backend):
            runner = backend
        elif callable(backend):
            runner = CallableBackend(backend, [L.index for L in net.layers if L.is_head])
        else:
            name = backend or ("onnxruntime" if onnx is not None else "torch")
            runner = open_backend(name, net, onnx, workdir=workdir, threads=threads)
        return cls(net, detector, runner, names, images, truths, difficult)

    def detections(self, *, batch: int | None = None) -> Iterator[ImageResult]:
        """Each image's post-NMS detections and labels, in list order, with a progress bar over the images. The
        model is built once; each image is decoded once, the next batch in a thread while the backend runs. (Not
        in processes: a worker started by spawn or forkserver re-runs the caller's unguarded ``__main__``, and fork
        after torch has started its threads is unsafe.)"""
        from ..progress import bar

        size = self.backend.batch or batch or BATCH
        heads = self.backend.heads
        chunks = [[e.path for e in self.images[i : i + size]] for i in range(0, len(self.images), size)]
        net = self.net
        geometry = (net.channels, net.height, net.width, bool(self.detector.letterbox))
        with ThreadPoolExecutor(max_workers=1) as pool, bar(total=len(self.images), desc="val", unit="img") as progress:
            pending = pool.submit(load_batch, chunks[0], *geometry)
            for n in range(len(chunks)):
                x, sizes = pending.result()
                if n + 1 < len(chunks):
                    pending = pool.submit(load_batch, chunks[n + 1], *geometry)
                outs = self.backend.run(x)
                for i, (w, h) in enumerate(sizes):
                    dets = self.detector.boxes(
                        {L: o[i : i + 1] for L, o in zip(heads, outs)},
                        w,
                        h,
                        thresh=DECODE_THRESH,
                        nms_thresh=NMS_THRESH,
                    )
                    index = n * size + i
                    hard = None if self.difficult is None else self.difficult[index]
                    yield ImageResult(self.images[index], w, h, dets.boxes, dets.probs, self.truths[index], hard)
                progress.update(len(sizes))

    def run(
        self, *, iou_thresh: float = 0.5, thresh: float = 0.25, points: int = 0, coco: bool = False, batch: int | None
    ) -> dict[str, Any]:
        """The evaluation record (:func:`val`)."""
        start = time.perf_counter()
        record = score(
            self.detections(batch=batch),
            self.classes,
            self.names,
            iou_thresh=iou_thresh,
            thresh=thresh,
            points=points,
            coco=coco,
        )
        record.update(backend=self.backend.name, seconds=time.perf_counter() - start)
        return record


def load_batch(
    paths: Sequence[Path], channels: int, height: int, width: int, letterbox: bool
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """What ``validate_detector_map``'s loader threads make of each image (``load_image`` then ``resize_image``, or
    ``letterbox_image``), as one batch, and the images' sizes."""
    from ..detect.image import network_input

    x = np.empty((len(paths), channels, height, width), np.float32)
    sizes = []
    for i, path in enumerate(paths):
        x[i], w, h = network_input(path, width, height, letterbox)
        sizes.append((w, h))
    return x, sizes


@dataclass
class ImageResult:
    """One evaluated image: its list entry and size, Darknet's post-NMS detection array (``boxes (N, 4)`` relative
    ``x, y, w, h``, ``probs (N, classes)``), its labels and its difficult labels (``difficult=``)."""

    entry: ListEntry
    width: int
    height: int
    boxes: np.ndarray
    probs: np.ndarray
    truth: Labels
    difficult: Labels | None = None


def score(
    results: Iterable[ImageResult],
    classes: int,
    names: Sequence[str],
    *,
    iou_thresh: float = 0.5,
    thresh: float = 0.25,
    points: int = 0,
    coco: bool = False,
) -> dict[str, Any]:
    """``validate_detector_map``'s numbers for evaluated images (:mod:`.metric`), as :func:`val`'s record."""
    acc = MapAccumulator(classes, iou_thresh=iou_thresh, thresh=thresh)
    collector = None
    if coco:
        from .coco import CocoCollector

        collector = CocoCollector(classes)
    missing: list[Path] = []
    for r in results:
        if r.truth.missing:
            missing.append(r.truth.path)
        hard = () if r.difficult is None else (r.difficult.ids, r.difficult.boxes)
        acc.add(r.boxes, r.probs, r.truth.ids, r.truth.boxes, *hard)
        if collector is not None:
            collector.add(r.width, r.height, r.boxes, r.probs, r.truth.ids, r.truth.boxes)
    if missing:
        warnings.warn(
            f"{len(missing)} of {acc.images} images have no label file (e.g. {missing[0]}): no objects, as "
            "Darknet counts them",
            DarkweightsWarning,
            stacklevel=2,
        )
    if acc.images and not acc.entries:
        warnings.warn(
            "no detections at all: every AP is 0 (Darknet reads outside its arrays here)",
            DarkweightsWarning,
            stacklevel=2,
        )
    record = acc.result(points, list(names)).to_dict()
    record.update(images=acc.images, missing_labels=len(missing))
    if collector is not None:
        record.update(collector.evaluate())
    return record


def _read_truth(entry: ListEntry, classes: int) -> Labels:
    """The labels of a list entry (:meth:`.data.ListEntry.label_file`)."""
    path = entry.label_file()
    if path.suffix != ".txt":
        # Darknet warns "Failed to infer label file name" and reads the image itself as labels: no boxes
        warnings.warn(
            f"{entry.written}: no label file name for this extension (Darknet reads no objects for it)",
            DarkweightsWarning,
            stacklevel=3,
        )
        return Labels(np.zeros(0, np.int32), np.zeros((0, 4), np.float32), path, missing=True)
    return read_labels(path, classes)


def _network(model: Any, weights: Any, dialect: Any, width: int | None, height: int | None) -> tuple[Any, Any]:
    """The network to evaluate and the ONNX file that holds it (``None`` for a cfg)."""
    from ..network import Network, load

    if model is None:
        from ..api import default_model

        bundled = default_model()
        model, weights = bundled.cfg, bundled.weights
    if isinstance(model, Network):
        net, onnx = model, None
    elif str(model).lower().endswith(".onnx"):
        from ..backends.onnx_backend import onnx_network

        if weights is not None:
            raise ArgumentError("an .onnx model holds its weights: give no weights file")
        if width or height:
            raise ArgumentError("an .onnx model has a fixed input size: --width/--height do not apply")
        net, _ = onnx_network(model, dialect=None if dialect == "auto" else dialect)
        onnx = model
    else:
        net, onnx = load(model, weights, dialect=dialect, width=width, height=height), None
    return net, onnx


def _check_classes(data: DataFile, net: Any) -> list[str]:
    """The class names, checked as ``validate_detector_map`` checks them (names = the last layer's ``classes``,
    else Darknet stops) and ``classes=`` against the network (Darknet's ``map`` ignores it; training reads it)."""
    last = net.layers[-1]
    classes = getattr(last, "classes", 0) or 0
    names_path = data.path_of("names", "class names file", default="data/names.list")
    names = read_names(names_path)
    if len(names) != classes:
        blank = sum(1 for n in names if not n)
        note = f" ({blank} of them blank: Darknet counts every line)" if blank else ""
        raise DatasetError(
            f"{len(names)} names{note}, but the last layer (layer {last.index} [{last.type}], cfg line {last.line}) "
            f"has classes={classes}; Darknet's detector map stops here",
            file=names_path,
        )
    declared = data.classes
    if declared is not None and declared != classes:
        raise DatasetError(
            f"classes={declared}, but the network's last layer has classes={classes} (layer {last.index}, cfg "
            f"{net.path} line {last.line})",
            file=data.path,
            line=data.line("classes"),
        )
    return names
