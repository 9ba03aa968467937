"""Darknet's detector pre- and post-processing (AlexeyAB ``darknet detector test``), in NumPy.

Pipeline::

    im = load_image("dog.jpg")                          # (3, H, W) float32 in [0, 1]
    x = letterbox_image(im, net_w, net_h) if letter_box else resize_image(im, net_w, net_h)
    ... run the network; take each head's l.output ...
    dets = Detections.concatenate([get_yolo_detections(out, ...) for out in heads])
    dets = nms(dets, 0.45, nms_kind, beta_nms)
    records = to_records(dets, names, im.shape[2], im.shape[1], thresh=0.25)
    draw_detections("dog.jpg", records, "predictions.png")

Pillow is needed only by :func:`load_image` and :func:`draw_detections`.
"""

from .boxes import (
    Detections,
    correct_yolo_boxes,
    get_gaussian_yolo_detections,
    get_region_detections,
    get_yolo_detections,
    to_records,
)
from .draw import class_color, draw_detections
from .image import image_to_uint8, letterbox_geometry, letterbox_image, load_image, resize_image
from .nms import NMS_KINDS, box_diou, box_diounms, box_iou, diounms_sort, do_nms_sort, nms

__all__ = [
    "NMS_KINDS",
    "Detections",
    "box_diou",
    "box_diounms",
    "box_iou",
    "class_color",
    "correct_yolo_boxes",
    "diounms_sort",
    "do_nms_sort",
    "draw_detections",
    "get_gaussian_yolo_detections",
    "get_region_detections",
    "get_yolo_detections",
    "image_to_uint8",
    "letterbox_geometry",
    "letterbox_image",
    "load_image",
    "nms",
    "resize_image",
    "to_records",
]
