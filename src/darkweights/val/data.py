"""Darknet datasets read as Darknet reads them: the ``.data`` file, image lists, ``.names``, label files.

Used by ``darkweights val`` (AlexeyAB's ``detector map``) and by training. The rules, from AlexeyAB's
sources (``src/option_list.c``, ``src/data.c``, ``src/utils.c``):

* ``.data`` (``read_data_cfg``): each line loses *every* space and tab (``strip``), blank lines and lines
  starting with ``#`` or ``;`` are skipped, ``key=value`` splits at the first ``=``; the first line with a key
  wins (``option_find`` walks from the front);
* paths (``valid=``, ``names=``, the lines of an image list) are opened as written, from the working
  directory. darkweights also looks beside the file that names them when that finds nothing (Darknet would
  stop there), so a dataset can be evaluated from any directory;
* lists (``get_paths``/``fgetl``): one path a line, the line ending (``\\n``, ``\\r\\n``) removed, nothing else;
* ``.names`` (``get_labels_custom``): one name a line, and *every* line counts, blank ones too;
* an image's label file (``replace_image_to_label``): :data:`LABEL_RULES`; YOLO lines ``class cx cy w h``,
  relative to the image. A missing label file is an image without objects (AlexeyAB prints a warning and
  goes on). Darknet reads labels with ``fscanf("%d %f %f %f %f")`` across line ends, so a line with 4 fields
  silently shifts every later box and a class id ``>= classes`` writes past its arrays: both are refused here,
  naming the file and line.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

from ..errors import DarkweightsWarning, DatasetError
from ..limits import MAX_DATA_TEXT_BYTES

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "LABEL_RULES",
    "DataFile",
    "Labels",
    "ListEntry",
    "label_path",
    "read_data_file",
    "read_image_list",
    "read_labels",
    "read_names",
    "resolve",
]


def read_text(path: PathLike, what: str) -> str:
    """A dataset text file, whole (bounded by :data:`~darkweights.limits.MAX_DATA_TEXT_BYTES`)."""
    try:
        size = os.path.getsize(path)
        if size > MAX_DATA_TEXT_BYTES:
            raise DatasetError(
                f"{what} of {size:,} bytes: more than the {MAX_DATA_TEXT_BYTES:,}-byte limit "
                "(darkweights.limits.MAX_DATA_TEXT_BYTES)",
                file=path,
            )
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", errors="surrogateescape")
    except OSError as exc:
        raise DatasetError(f"cannot read the {what}: {exc.strerror or exc}", file=path) from None


def fgetl_lines(text: str) -> Iterator[str]:
    """The lines Darknet's ``fgetl`` loop returns: line ends (``\\n``, ``\\r\\n``) removed, a last line without
    ``\\n`` kept, no empty line after a final ``\\n``."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        yield line[:-1] if line.endswith("\r") else line


def resolve(written: str, beside: PathLike | None = None) -> Path | None:
    """Where Darknet opens ``written`` (the working directory), else the same relative path beside the file
    ``beside`` that names it; ``None`` when neither exists."""
    p = Path(written)
    if p.exists():
        return p
    if beside is not None and not p.is_absolute():
        q = Path(beside).parent / p
        if q.exists():
            return q
    return None


@dataclass(frozen=True)
class DataOption:
    """One ``key=value`` of a ``.data`` file, with its line."""

    value: str
    line: int


class DataFile:
    """A Darknet ``.data`` file (``classes=``, ``train=``, ``valid=``, ``names=``, ``backup=`` ...)."""

    def __init__(self, path: PathLike, options: dict[str, DataOption]) -> None:
        self.path = Path(path)
        self.options = options

    def __repr__(self) -> str:
        return f"<DataFile {self.path}: {', '.join(self.options)}>"

    def get(self, key: str) -> str | None:
        opt = self.options.get(key)
        return None if opt is None else opt.value

    def line(self, key: str) -> int | None:
        opt = self.options.get(key)
        return None if opt is None else opt.line

    @property
    def classes(self) -> int | None:
        """``classes=`` (``None`` when absent). Darknet reads it with ``atoi``; a value that is not a number
        is refused rather than read as 0."""
        opt = self.options.get("classes")
        if opt is None:
            return None
        m = re.match(r"[+-]?\d+", opt.value)
        if not m or int(m.group()) < 0:
            raise DatasetError(f"classes={opt.value!r}: expected a number of classes", file=self.path, line=opt.line)
        return int(m.group())

    def path_of(self, key: str, what: str, *, default: str | None = None) -> Path:
        """The file ``key=`` names, resolved (:func:`resolve`); ``default`` is Darknet's when the key is absent
        (``None``: the key is required)."""
        opt = self.options.get(key)
        if opt is None:
            if default is None:
                raise DatasetError(f"no {key}= line: where is the {what}?", file=self.path)
            found = resolve(default)
            if found is None:
                raise DatasetError(
                    f"no {key}= line, and Darknet's default {default} does not exist: name the {what}", file=self.path
                )
            return found
        found = resolve(opt.value, self.path)
        if found is None:
            note = " (Darknet removes every space and tab from .data lines)" if " " in opt.value else ""
            raise DatasetError(
                f"{key}={opt.value}: no such file, from the working directory or beside the .data file{note}",
                file=self.path,
                line=opt.line,
            )
        return found


def read_data_file(path: PathLike) -> DataFile:
    """Parse a ``.data`` file as ``read_data_cfg`` does (see the module notes). Lines Darknet cannot parse and
    repeated keys are warned about: Darknet skips the first and uses the first of the second."""
    text = read_text(path, ".data file")
    options: dict[str, DataOption] = {}
    for number, raw in enumerate(fgetl_lines(text), 1):
        line = re.sub(r"[ \t\r\n]", "", raw)
        if not line or line[0] in "#;":
            continue
        key, eq, value = line.partition("=")
        if not eq or not value:
            warnings.warn(
                f"{path}:{number}: {raw.strip()!r} is not key=value; Darknet ignores the line",
                DarkweightsWarning,
                stacklevel=2,
            )
            continue
        if key in options:
            warnings.warn(
                f"{path}:{number}: {key}= given again (first at line {options[key].line}); Darknet uses the first",
                DarkweightsWarning,
                stacklevel=2,
            )
            continue
        options[key] = DataOption(value, number)
    return DataFile(path, options)


@dataclass(frozen=True)
class ListEntry:
    """One line of an image list: the path as written, where it was found, the list file and its line."""

    written: str
    path: Path
    line: int
    source: Path

    def label_file(self, rule: str = "alexeyab") -> Path:
        """The image's label file (:func:`label_path` of the path as written), found as the image was: from the
        working directory, else beside the list."""
        written = label_path(self.written, rule)
        return resolve(os.fspath(written), self.source) or written


def read_image_list(path: PathLike, *, images: bool = True) -> list[ListEntry]:
    """The images of a list file (``valid=``, ``train=``), each resolved (:func:`resolve`, beside the list).

    Darknet would evaluate a blank 10x10 image for a line it cannot load (``load_image``'s fallback), so an
    empty line or a missing image is refused here, naming the list's line. ``images=False``: a list whose images
    are never opened (``difficult=``, read only for its label files); a path that is not found stays as written."""
    text = read_text(path, "image list")
    entries = []
    for number, written in enumerate(fgetl_lines(text), 1):
        if not written:
            raise DatasetError(
                "empty line: Darknet would evaluate a blank 10x10 image for it; remove the line",
                file=path,
                line=number,
            )
        found = resolve(written, path)
        if not images:
            found = found or Path(written)
        elif found is None or not found.is_file():
            raise DatasetError(
                f"no such image {written!r} (from the working directory or beside the list)", file=path, line=number
            )
        entries.append(ListEntry(written, found, number, Path(path)))
    return entries


def read_names(path: PathLike) -> list[str]:
    """Class names, one a line, as ``get_labels_custom`` counts them: every line, blank ones too."""
    return list(fgetl_lines(read_text(path, "names file")))


# --------------------------------------------------------------------------- label files

_AB_DIRS = (
    ("/images/train2017/", "/labels/train2017/"),
    ("/images/val2017/", "/labels/val2017/"),
    ("/JPEGImages/", "/labels/"),
    ("\\images\\train2017\\", "\\labels\\train2017\\"),
    ("\\images\\val2017\\", "\\labels\\val2017\\"),
    ("\\images\\train2014\\", "\\labels\\train2014\\"),
    ("\\images\\val2014\\", "\\labels\\val2014\\"),
    ("/images/train2014/", "/labels/train2014/"),
    ("/images/val2014/", "/labels/val2014/"),
    ("\\JPEGImages\\", "\\labels\\"),
)
_AB_EXTENSIONS = (".jpg", ".JPG", ".jpeg", ".JPEG", ".png", ".PNG", ".bmp", ".BMP", ".ppm", ".PPM", ".tiff", ".TIFF")
_PJ_REPLACE = (
    ("images", "labels"),
    ("JPEGImages", "labels"),
    ("raw", "labels"),
    (".jpg", ".txt"),
    (".png", ".txt"),
    (".JPG", ".txt"),
    (".JPEG", ".txt"),
)


def _alexeyab_label(path: str) -> str:
    """``AB:src/utils.c:replace_image_to_label``: the first occurrence of each COCO/VOC image folder becomes
    ``labels`` (a plain ``/images/`` does *not*: that line is commented out in AlexeyAB), spaces and tabs
    trimmed at both ends, then a known image extension at the very end becomes ``.txt``."""
    for old, new in _AB_DIRS:
        path = path.replace(old, new, 1)
    path = path.strip(" \t")
    for ext in _AB_EXTENSIONS:
        if path.endswith(ext):
            path = path[: -len(ext)] + ".txt"
    return path


def _pjreddie_label(path: str) -> str:
    """``PJ:src/data.c:fill_truth_detection``: the first occurrence of each string replaced, anywhere."""
    for old, new in _PJ_REPLACE:
        path = path.replace(old, new, 1)
    return path


def _hankai_label(path: str) -> str:
    """``hank-ai:src-lib/utils.cpp:replace_image_to_label``: everything from the last ``.`` becomes ``.txt``."""
    dot = path.rfind(".")
    return (path[:dot] if dot >= 0 else path) + ".txt"


# fork -> its image path -> label path rule (``detector map`` is AlexeyAB's: darkweights val uses "alexeyab")
LABEL_RULES: dict[str, Callable[[str], str]] = {
    "alexeyab": _alexeyab_label,
    "pjreddie": _pjreddie_label,
    "hankai": _hankai_label,
}


def label_path(image: PathLike, rule: str = "alexeyab") -> Path:
    """The label file Darknet reads for ``image`` (the path as written in the list), by the fork's rule."""
    try:
        fn = LABEL_RULES[rule]
    except KeyError:
        raise DatasetError(f"unknown label rule {rule!r}; one of {', '.join(LABEL_RULES)}") from None
    return Path(fn(os.fspath(image)))


@dataclass(frozen=True)
class Labels:
    """The objects of one image: class ids ``(n,)`` int32 and boxes ``(n, 4)`` float32 ``(cx, cy, w, h)``
    relative to the image, in file order. ``missing``: there was no label file (no objects, as Darknet)."""

    ids: np.ndarray
    boxes: np.ndarray
    path: Path
    missing: bool = False

    def __len__(self) -> int:
        return int(self.ids.shape[0])


_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def read_labels(path: PathLike, classes: int) -> Labels:
    """A YOLO label file: one ``class cx cy w h`` a line (blank lines skipped). A missing file is no objects
    (``missing=True``); a line without exactly five numbers, a class id outside ``0..classes-1`` or a value that
    is not a finite number is refused, naming the file and line."""
    p = Path(path)
    if not p.is_file():
        return Labels(np.zeros(0, np.int32), np.zeros((0, 4), np.float32), p, missing=True)
    ids: list[int] = []
    values: list[list[float]] = []
    for number, line in enumerate(read_text(p, "label file").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise DatasetError(
                f"{len(fields)} fields, expected 5: class cx cy w h (Darknet's fscanf would read on into the "
                "next line and shift every later box)",
                file=p,
                line=number,
            )
        if not _INT.fullmatch(fields[0]):
            raise DatasetError(f"class id {fields[0]!r} is not an integer", file=p, line=number)
        cls = int(fields[0])
        if not 0 <= cls < classes:
            raise DatasetError(
                f"class id {cls} is outside 0..{classes - 1} (the network has {classes} classes; Darknet would "
                "write past its per-class counts)",
                file=p,
                line=number,
            )
        bad = next((f for f in fields[1:] if not _FLOAT.fullmatch(f)), None)
        if bad is not None:
            raise DatasetError(f"{bad!r} is not a finite number", file=p, line=number)
        ids.append(cls)
        values.append([float(f) for f in fields[1:]])
    boxes = np.asarray(values, np.float32).reshape(-1, 4)  # fscanf %f: float
    if not np.isfinite(boxes).all():
        raise DatasetError("a box value overflows float32", file=p)
    return Labels(np.asarray(ids, np.int32), boxes, p)
