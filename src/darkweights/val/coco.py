"""COCO-style AP@[.5:.95] of the same detections and labels, computed by ``pycocotools`` (extra ``[coco]``).

Darknet has no such figure; modern papers quote it. The detections are every (detection, class) with
``prob > 0`` after the cfg's NMS (what ``detector map`` ranks), the boxes in image pixels; COCOeval keeps the 100
best per image, and averages over the classes that have truths (Darknet's mAP averages over all classes).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class CocoCollector:
    """Truths and detections of each image, in pixels, for COCOeval."""

    classes: int
    images: list[dict] = field(default_factory=list)
    truths: list[dict] = field(default_factory=list)
    detections: list[np.ndarray] = field(default_factory=list)

    def add(
        self, im_w: int, im_h: int, boxes: np.ndarray, probs: np.ndarray, truth_ids: np.ndarray, truth_boxes: np.ndarray
    ) -> None:
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "width": im_w, "height": im_h})
        for cls, box in zip(truth_ids.tolist(), _pixels(truth_boxes, im_w, im_h).tolist()):
            self.truths.append(
                {
                    "id": len(self.truths) + 1,
                    "image_id": image_id,
                    "category_id": int(cls),
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
        det, cls = np.nonzero(probs > 0)
        if det.size:
            rows = np.empty((det.size, 7), np.float64)
            rows[:, 0] = image_id
            rows[:, 1:5] = _pixels(boxes[det], im_w, im_h)
            rows[:, 5] = probs[det, cls]
            rows[:, 6] = cls
            self.detections.append(rows)

    def evaluate(self) -> dict[str, Any]:
        """``coco_map`` (AP@[.5:.95]), ``coco_map50``, ``coco_map75`` by COCOeval, quietly."""
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO()
            gt.dataset = {
                "images": self.images,
                "annotations": self.truths,
                "categories": [{"id": c, "name": str(c)} for c in range(self.classes)],
            }
            gt.createIndex()
            if not self.detections or not self.truths:
                return {"coco_map": 0.0, "coco_map50": 0.0, "coco_map75": 0.0}
            dt = gt.loadRes(np.concatenate(self.detections))
            ev = COCOeval(gt, dt, "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return {"coco_map": float(ev.stats[0]), "coco_map50": float(ev.stats[1]), "coco_map75": float(ev.stats[2])}


def _pixels(boxes: np.ndarray, im_w: int, im_h: int) -> np.ndarray:
    """Relative ``(cx, cy, w, h)`` -> COCO's ``(left, top, w, h)`` in pixels."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = np.empty_like(b)
    out[:, 0] = (b[:, 0] - b[:, 2] / 2) * im_w
    out[:, 1] = (b[:, 1] - b[:, 3] / 2) * im_h
    out[:, 2] = b[:, 2] * im_w
    out[:, 3] = b[:, 3] * im_h
    return out
