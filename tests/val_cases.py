"""The labelled sets of ``tests/data/val`` (see its README) assembled as Darknet ran them, and Darknet's printouts."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .conftest import DATA, MODELS, SHARED

VAL = DATA / "val"
SHARED_IMAGES = ("dog.jpg", "eagle.jpg", "giraffe.jpg", "horses.jpg", "person.jpg", "scream.jpg")
REPO_IMAGES = ("astronaut.jpg", "camera.png", "chelsea.jpg", "coffee.jpg", "rocket.jpg")
XL = MODELS / "yolo-fastest-1.1-xl" / "yolo-fastest-1.1-xl"


@dataclass(frozen=True)
class Case:
    """One ``darknet detector map`` run: its printout, the set, the model and the settings."""

    name: str
    labels: str  # the labels directory of tests/data/val
    model: str  # "fastest", "xl" or "fastest-letterbox"
    shared: bool = True  # the set includes the six photos of ../shared/images
    settings: dict = field(default_factory=dict)  # darkweights.val keywords (= the Darknet flags)
    difficult: bool = False

    @property
    def printout(self) -> str:
        return (VAL / "darknet" / f"{self.name}.txt").read_text()


CASES = [
    Case("repo5_p0", "labels-xl", "fastest", shared=False),
    Case("repo5_p101", "labels-xl", "fastest", shared=False, settings={"points": 101}),
    Case("repo5_thresh999", "labels-xl", "fastest", shared=False, settings={"thresh": 0.999}),  # 0/0: -nan
    Case("fastest_p0", "labels-xl", "fastest"),
    Case("fastest_p11", "labels-xl", "fastest", settings={"points": 11}),
    Case("fastest_p101", "labels-xl", "fastest", settings={"points": 101}),
    Case("fastest_iou75", "labels-xl", "fastest", settings={"iou_thresh": 0.75}),
    Case("fastest_thresh50", "labels-xl", "fastest", settings={"thresh": 0.5}),
    Case("fastest_letterbox", "labels-xl", "fastest-letterbox"),
    Case("fastest_difficult", "labels-xl", "fastest", difficult=True),
    Case("xl_p0", "labels-fastest", "xl"),
    Case("xl_p11", "labels-fastest", "xl", settings={"points": 11}),
    Case("xl_p101", "labels-fastest", "xl", settings={"points": 101}),
    Case("xl_iou75", "labels-fastest", "xl", settings={"iou_thresh": 0.75}),
]


def make_set(root: Path, labels: str, shared: bool) -> Path:
    """The set as Darknet evaluated it: ``root/img/`` with the images and their label files, ``valid.txt`` naming
    ``img/<image>`` in Darknet's order, ``coco.names``, ``coco.data`` and ``coco-difficult.data`` (``difficult.txt``:
    ``dif/<image>``, whose labels are labels-fastest)."""
    from darkweights import default_model

    images = [SHARED / "images" / n for n in SHARED_IMAGES] if shared else []
    images += [VAL / "repo5" / "img" / n for n in REPO_IMAGES]
    (root / "img").mkdir(parents=True)
    (root / "dif").mkdir()
    for image in images:
        shutil.copy(image, root / "img" / image.name)
        label = VAL / labels / (image.stem + ".txt")
        if label.exists():
            shutil.copy(label, root / "img" / label.name)
        shutil.copy(VAL / "labels-fastest" / (image.stem + ".txt"), root / "dif" / (image.stem + ".txt"))
    (root / "valid.txt").write_text("".join(f"img/{p.name}\n" for p in images))
    (root / "difficult.txt").write_text("".join(f"dif/{p.name}\n" for p in images))
    shutil.copy(default_model().names, root / "coco.names")
    (root / "coco.data").write_text("classes=80\nvalid=valid.txt\nnames=coco.names\n")
    (root / "coco-difficult.data").write_text(
        "classes=80\nvalid=valid.txt\nnames=coco.names\ndifficult=difficult.txt\n"
    )
    return root


def model_files(model: str, root: Path) -> tuple[Path, Path]:
    """cfg and weights of a case's model; ``fastest-letterbox`` is Yolo-Fastest 1.1 with ``letter_box=1`` added
    after ``[net]`` (written into ``root``)."""
    from darkweights import default_model

    if model == "xl":
        return XL.parent / (XL.name + ".cfg"), XL.parent / (XL.name + ".weights")
    bundled = default_model()  # byte-identical to ../shared/models/yolo-fastest-1.1
    if model == "fastest":
        return bundled.cfg, bundled.weights
    text = bundled.cfg.read_text().replace("[net]\n", "[net]\nletter_box=1\n", 1)
    cfg = root / "yolo-fastest-1.1-letterbox.cfg"
    cfg.write_text(text)
    return cfg, bundled.weights


def darknet_block(text: str) -> list[str]:
    """The lines ``detector map`` prints from ``detections_count`` to the mAP line, without its ``rank = ...\\r``
    progress and blank lines."""
    lines = [line for line in text.replace("\r", "\n").split("\n") if line.strip() and not line.startswith(" rank = ")]
    start = next(i for i, line in enumerate(lines) if line.startswith(" detections_count"))
    end = next(i for i, line in enumerate(lines) if line.startswith(" mean average precision (mAP@"))
    return lines[start : end + 1]
