"""Output layers: yolo, Gaussian_yolo, region, detection, softmax, cost, contrastive."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from ..cfg import Options
from ..errors import DarkweightsWarning
from ..limits import MAX_ANCHORS
from .base import AB, ALL_FORKS, HK, PJ, Layer, Shape, register
from .builder import Builder

if TYPE_CHECKING:
    from ..heads import Head

YOLO_POINTS = ("center", "left_top", "right_bottom")  # parse_gaussian_yolo


def check_num(opts: Options, key: str, default: int) -> int:
    """The anchor count, before anchors are padded to it (Darknet callocs ``2 * num`` floats)."""
    n = opts.int(key, default)
    if n > MAX_ANCHORS:
        raise opts.error(
            f"{key}={n}: more than {MAX_ANCHORS:,} anchors (darkweights.limits.MAX_ANCHORS)", opts.section.find(key)
        )
    return n


NMS_KINDS = ("default", "greedynms", "diounms")  # parse_yolo

YOLO_TRAINING = (
    "max",
    "jitter",
    "resize",
    "ignore_thresh",
    "truth_thresh",
    "iou_thresh",
    "random",
    "map",
    "counters_per_class",
    "label_smooth_eps",
    "objectness_smooth",
    "iou_normalizer",
    "obj_normalizer",
    "cls_normalizer",
    "delta_normalizer",
    "iou_loss",
    "iou_thresh_kind",
    "max_delta",
    "focal_loss",
    "track_history_size",
    "sim_thresh",
    "dets_for_track",
    "dets_for_show",
    "track_ciou_norm",
    "embedding_layer",
    "show_details",
)


class _YoloBase(Layer):
    entries = 5  # x, y, w, h, objectness (+ classes)
    box = (0, 1, 2, 3)  # entries of tx, ty, tw, th
    uncertainty: tuple[int, ...] = ()
    box_correction = "yolo"
    nms_kinds: tuple[str, ...] = NMS_KINDS
    reads_new_coords = False
    reads_yolo_point = False

    def parse(self, opts: Options, builder: Builder) -> None:
        self.classes = opts.int("classes", 20)
        self.num = check_num(opts, "num", 1)  # Darknet's l.total: the anchors of all heads
        mask = opts.ints("mask")
        self.mask = mask if mask is not None else list(range(self.num))
        anchors = opts.floats("anchors")
        # AB/HK read at most 2*num anchor values; missing ones default to 0.5 (make_yolo_layer)
        self.anchors = ((anchors or [])[: 2 * self.num] + [0.5] * (2 * self.num))[: 2 * self.num]
        self.scale_x_y = opts.float("scale_x_y", 1.0)
        self.new_coords = opts.int("new_coords", 0) if self.reads_new_coords else 0
        kinds = self.nms_kinds
        self.nms_kind = opts.str("nms_kind", "default") or "default"
        if self.nms_kind not in kinds:
            if self.dialect.strict_syntax:
                raise opts.error(
                    f"nms_kind={self.nms_kind!r}: expected one of {', '.join(kinds)}", self.section.find("nms_kind")
                )
            self.nms_kind = "default"  # AB falls back silently
        self.beta_nms = opts.float("beta_nms", 0.6)
        self.yolo_point = (opts.str("yolo_point", "center") if self.reads_yolo_point else None) or "center"
        if self.yolo_point not in YOLO_POINTS:
            option = self.section.find("yolo_point")
            if self.dialect.strict_syntax:  # HK get_yolo_point_types_from_name: fatal
                raise opts.error(f"yolo_point={self.yolo_point!r}: expected one of {', '.join(YOLO_POINTS)}", option)
            # AB parse_gaussian_yolo: anything but left_top/right_bottom silently means center
            warnings.warn(
                f"{builder.path}:{option.line if option else self.line}: yolo_point={self.yolo_point!r} is "
                f"not one of {', '.join(YOLO_POINTS)}: Darknet uses center",
                DarkweightsWarning,
                stacklevel=4,
            )
            self.yolo_point = "center"
        self.need_image()
        bad = [m for m in self.mask if not 0 <= m < self.num]
        if bad:
            # Darknet accepts this and reads past its anchor array; decoding such a head is undefined
            warnings.warn(
                f"{builder.path}:{self.line}: layer {self.index} [{self.section.name}]: mask {bad} refers to "
                f"anchors beyond num={self.num}",
                DarkweightsWarning,
                stacklevel=2,
            )
        n = len(self.mask)
        c = n * (self.classes + self.entries)
        if c != self.input.c:
            raise self.shape_error(
                f"the [convolutional] before it must have filters={c} = {n} masks x (classes {self.classes} + "
                f"{self.entries}), not {self.input.c}"
            )
        self.output = Shape.image(c, self.input.h, self.input.w)

    def head(self) -> Head:
        from ..heads import Head  # imported on use: `import darkweights` stays light

        pairs = [(self.anchors[2 * m], self.anchors[2 * m + 1]) for m in self.mask if 0 <= m < self.num]
        problem = (
            "" if len(pairs) == len(self.mask) else f"mask {self.mask} refers to anchors beyond the {self.num} given"
        )
        return Head(
            index=self.index,
            type=self.type,
            classes=self.classes,
            anchors=tuple(pairs),
            grid=(self.output.h, self.output.w),
            entries=self.classes + self.entries,
            box=self.box,
            objectness=self.entries - 1,
            first_class=self.entries,
            uncertainty=self.uncertainty,
            new_coords=bool(self.new_coords),
            scale_x_y=self.scale_x_y,
            yolo_point=self.yolo_point,
            box_correction=self.box_correction,
            nms_kind=self.nms_kind,
            beta_nms=self.beta_nms,
            problem=problem,
        )

    def describe(self) -> str:
        s = f"{len(self.mask)}x({self.classes}+{self.entries})"
        if self.scale_x_y != 1:
            s += f" sxy {self.scale_x_y:g}"
        return s + (" new_coords" if self.new_coords else "")


@register
class Yolo(_YoloBase):
    """``[yolo]`` head (§3.5.12, §5.10.1)."""

    type = "yolo"
    headers = ("yolo",)
    forks = ALL_FORKS
    unread = {PJ: frozenset({"scale_x_y", "new_coords"})}
    node_color = "#bbf7d0"
    training_options = YOLO_TRAINING
    reads_new_coords = True


@register
class GaussianYolo(_YoloBase):
    """``[Gaussian_yolo]``: 9 + classes entries per anchor (§5.10.2). The header is case-sensitive."""

    type = "gaussian_yolo"
    headers = ("Gaussian_yolo",)
    forks = frozenset({AB, HK})
    training_options = (*YOLO_TRAINING, "uc_normalizer")
    nms_kinds = (*NMS_KINDS, "cornersnms")  # parse_gaussian_yolo also knows cornersnms
    reads_yolo_point = True
    entries = 9  # x, sigma x, y, sigma y, w, sigma w, h, sigma h, objectness (+ classes)
    box = (0, 2, 4, 6)
    uncertainty = (1, 3, 5, 7)
    box_correction = "gaussian"  # correct_gaussian_yolo_boxes


@register
class Region(Layer):
    """``[region]`` (YOLOv2); anchors in grid units (§3.5.14, §5.10.3)."""

    type = "region"
    headers = ("region",)
    forks = ALL_FORKS
    unread = {AB: frozenset({"background"}), HK: frozenset({"background"})}
    node_color = "#bbf7d0"
    data_is_flat = True  # AlexeyAB's forward transposes l.output to rows; pjreddie's is kept flat as well
    training_options = (
        "max",
        "log",
        "sqrt",
        "rescore",
        "thresh",
        "classfix",
        "absolute",
        "random",
        "bias_match",
        "coord_scale",
        "object_scale",
        "noobject_scale",
        "mask_scale",
        "class_scale",
        "jitter",
        "resize",
        "focal_loss",
        "map",
    )  # map=: class-id mapping of the truth, training only

    def parse(self, opts: Options, builder: Builder) -> None:
        self.coords = opts.int("coords", 4)
        self.classes = opts.int("classes", 20)
        self.num = check_num(opts, "num", 1)
        self.softmax = opts.int("softmax", 0)
        self.background = opts.int("background", 0)  # pjreddie's option
        anchors = opts.floats("anchors") or []
        self.anchors = (anchors[: 2 * self.num] + [0.5] * (2 * self.num))[: 2 * self.num]
        # read only into l.softmax_tree (parse_region): no stored array changes (darkweights.tree)
        self.tree = opts.str("tree", None)
        self.nms_kind, self.beta_nms = "default", 0.6  # [region] has no nms options
        self.need_image()
        c = self.num * (self.coords + self.classes + 1)
        if c * self.input.h * self.input.w != self.input.size:
            raise self.shape_error(
                f"the [convolutional] before it must have filters={c} = num {self.num} x "
                f"(coords {self.coords} + classes {self.classes} + 1), not {self.input.c}"
            )
        self.output = Shape.image(c, self.input.h, self.input.w)

    def head(self) -> Head:
        from ..heads import CONSTANT, GATE, Head  # imported on use: `import darkweights` stays light

        pairs = [(self.anchors[2 * i], self.anchors[2 * i + 1]) for i in range(self.num)]
        common = dict(
            index=self.index,
            type=self.type,
            classes=self.classes,
            anchors=tuple(pairs),
            grid=(self.output.h, self.output.w),
            entries=self.coords + 1 + self.classes,
            coords=self.coords,
            anchor_units="grid",
            tree=self.tree,
        )
        if self.dialect.region_anchor_major:
            # pjreddie get_region_detections: its forward activated x, y; slot-major candidates; background=1
            # has no objectness (scale 1)
            objectness = None if self.background else self.coords
            return Head(
                **common, objectness=objectness, first_class=self.coords + 1, objectness_rule=GATE, order="slot"
            )
        # AlexeyAB get_region_boxes: rows, logistic on x, y at decode, every candidate with objectness 1
        problem = (
            ""
            if self.coords == 4
            else f"[region] coords={self.coords}: Darknet's get_region_boxes decodes coords=4 only"
        )
        return Head(**common, layout="rows", xy_logistic=True, objectness_rule=CONSTANT, problem=problem)

    def describe(self) -> str:
        return (
            f"{self.num}x({self.coords}+1+{self.classes})"
            + (" softmax" if self.softmax else "")
            + (f" tree={self.tree}" if self.tree else "")
        )


@register
class Detection(Layer):
    """``[detection]`` (YOLOv1): flat ``side^2 * ((1+coords)*num + classes)`` values (§5.10.4)."""

    type = "detection"
    headers = ("detection",)
    forks = frozenset({PJ, AB})
    training_options = (
        "max",
        "coord_scale",
        "forced",
        "object_scale",
        "noobject_scale",
        "class_scale",
        "jitter",
        "resize",
        "random",
        "reorg",
        "rescore",
    )

    def parse(self, opts: Options, builder: Builder) -> None:
        self.coords = opts.int("coords", 1)
        self.classes = opts.int("classes", 1)
        self.num = opts.int("num", 1)
        self.side = opts.int("side", 7)
        self.softmax = opts.int("softmax", 0)
        self.sqrt = opts.int("sqrt", 0)
        need = self.side * self.side * ((1 + self.coords) * self.num + self.classes)
        if need != self.input.size:
            raise self.shape_error(
                f"side {self.side}^2 x ((1+coords {self.coords}) x num {self.num} + classes "
                f"{self.classes}) = {need} values expected, the input has {self.input.size}"
            )
        self.output = Shape.flat(self.input.size)

    def head(self) -> Head:
        from ..heads import Head  # imported on use: `import darkweights` stays light

        # YOLOv1 boxes are per cell, not anchors (get_detection_detections)
        entries = (1 + self.coords) * self.num + self.classes
        problem = "detect does not decode [detection] heads"
        return Head(
            index=self.index,
            type=self.type,
            classes=self.classes,
            anchors=(),
            grid=(self.side, self.side),
            entries=entries,
            problem=problem,
        )


@register
class Softmax(Layer):
    """``[softmax]``: grouped softmax with temperature over the flat input (§5.11)."""

    type = "softmax"
    headers = ("softmax", "soft")
    forks = ALL_FORKS
    unread = {PJ: frozenset({"spatial"})}
    training_options = ("noloss",)

    def parse(self, opts: Options, builder: Builder) -> None:
        self.groups = opts.int("groups", 1)
        self.temperature = opts.float("temperature", 1.0)
        self.tree = opts.str("tree", None)  # read into l.softmax_tree only (parse_softmax): no stored array
        self.spatial = opts.float("spatial", 0.0)  # AlexeyAB's option
        if self.groups < 1 or self.input.size % self.groups:
            raise self.shape_error(f"groups={self.groups} must divide the {self.input.size} inputs")
        self.output = Shape.flat(self.input.size)

    def describe(self) -> str:
        return " ".join(
            s
            for s in (
                f"groups {self.groups}" if self.groups > 1 else "",
                f"T={self.temperature:g}" if self.temperature != 1 else "",
                f"tree={self.tree}" if self.tree else "",
            )
            if s
        )


class _Loss(Layer):
    """A training loss: at inference its output is a flat copy of the input size, never read."""

    def parse(self, opts: Options, builder: Builder) -> None:
        self.output = Shape.flat(self.input.size)


@register
class Cost(_Loss):
    """``[cost]``: training loss; identity/absent at inference (§3.5.17)."""

    type = "cost"
    headers = ("cost",)
    forks = ALL_FORKS
    network_output = False  # get_network_output: the last layer that is not [cost]
    training_options = ("type", "scale", "ratio", "noobj", "thresh")


@register
class Contrastive(_Loss):
    """``[contrastive]``: training-only loss; a terminal no-op at inference."""

    type = "contrastive"
    headers = ("contrastive",)
    forks = frozenset({AB, HK})
    training_options = ("classes", "yolo_layer", "temperature", "cls_normalizer", "max_delta", "contrastive_neg_max")
