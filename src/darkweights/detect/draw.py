"""Draw detection records (from :func:`darkweights.detect.boxes.to_records`) onto an image.

Pillow is an optional dependency, imported inside the functions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..atomic import atomic_output
from ..errors import ArgumentError, DarkweightsError
from .image import image_to_uint8

__all__ = ["draw_detections", "class_color"]

PathLike = Union[str, "os.PathLike[str]"]

# Strong colours chosen for mutual contrast on photos (after Sasha Trubetskoy's
# "20 distinct colours", without the pastel ones, plus two).
_PALETTE = (
    "#e6194b",
    "#3cb44b",
    "#ffe119",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#42d4f4",
    "#f032e6",
    "#bfef45",
    "#469990",
    "#9a6324",
    "#800000",
    "#808000",
    "#000075",
    "#00a86b",
    "#ff6f91",
)


def _hex_rgb(h: str) -> tuple[int, int, int]:
    return int(h[1:3], 16), int(h[3:5], 16), int(h[5:7], 16)


def class_color(class_id: int) -> tuple[int, int, int]:
    """Base RGB colour of a class id: a fixed 16-colour palette, repeating every 16 ids.

    Darknet's own ramp (``AB:src/image.c:get_color``) is not reused: it gives e.g.
    COCO ``car`` and ``dog`` nearly the same cyan. :func:`draw_detections` moves a class
    to the next free palette colour when its base colour is taken in the same picture.
    """
    return _hex_rgb(_PALETTE[int(class_id) % len(_PALETTE)])


def _assign_colors(class_ids: Sequence[int]) -> dict[int, tuple[int, int, int]]:
    """Distinct colours for the classes present (base colour first, else the next free one)."""
    n = len(_PALETTE)
    used: set[int] = set()
    out: dict[int, tuple[int, int, int]] = {}
    for cid in sorted(set(class_ids)):
        slot = cid % n
        for step in range(n):
            if (slot + step) % n not in used:
                slot = (slot + step) % n
                break
        used.add(slot)
        if len(used) == n:
            used.clear()  # more than 16 classes in one picture: start reusing
        out[cid] = _hex_rgb(_PALETTE[slot])
    return out


def _to_pil(image: PathLike | np.ndarray) -> Any:
    from PIL import Image

    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.dtype != np.uint8:
            return Image.fromarray(image_to_uint8(arr), mode="RGB")  # Darknet layout (C, H, W), [0, 1]
        if arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8:
            return Image.fromarray(np.ascontiguousarray(arr), mode="RGB")  # (H, W, 3) uint8 RGB
        if arr.ndim == 2:
            return Image.fromarray(image_to_uint8(arr[None].astype(np.float32)), mode="RGB")
        raise ArgumentError(
            f"cannot draw on an array shaped {arr.shape} ({arr.dtype}); use (C,H,W) float or (H,W,3) uint8"
        )
    try:
        with Image.open(image) as img:
            return img.convert("RGB")
    except (OSError, ValueError) as exc:
        raise DarkweightsError(f"cannot read image: {exc}", file=str(image)) from exc


def _load_font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # scalable default font (Pillow >= 10.1 with FreeType)
    except TypeError:  # pragma: no cover - old Pillow
        return ImageFont.load_default()


MIN_FONT = 8  # px: the smallest label text drawn


def label_scale(width: int, height: int) -> tuple[int, int]:
    """Box line width and label font size (px) for an image: both grow with its shorter side
    (1/200 and 1/32 of it) so labels read the same on a 300 px thumbnail and a 4000 px photo;
    at least a 2 px line and an 11 px font (labels wider than the image shrink, down to 8 px)."""
    short = min(width, height)
    return max(2, int(round(short / 200))), max(11, int(round(short / 32)))


def _text_size(draw: Any, text: str, font: Any) -> tuple[int, int, int]:
    """Width, height and top offset of ``text`` as rendered."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top, top


def draw_detections(
    image: PathLike | np.ndarray,
    records: Sequence[Mapping[str, Any]],
    out_png_path: PathLike,
) -> Path:
    """Draw boxes with ``"class 0.88"`` labels and write a PNG atomically.

    ``image`` is a file path, a Darknet-layout ``(C, H, W)`` float array in [0, 1] or an
    ``(H, W, 3)`` uint8 RGB array; ``records`` use the :func:`to_records` convention
    (``left``, ``top``, ``w``, ``h`` in image pixels, ``class``, ``class_id``, ``prob``).
    Records of the same box (same ``det_index``, or same geometry) share one frame and one
    label, coloured by their best class; stronger boxes are drawn on top and labels are
    moved down when they would cover another label. The file is written to a temporary name in
    the destination directory and moved into place with ``os.replace``.
    """
    from PIL import ImageDraw

    img = _to_pil(image)
    im_w, im_h = img.size
    line, size = label_scale(im_w, im_h)
    font = _load_font(size)
    draw = ImageDraw.Draw(img)

    # Group records belonging to one detection box.
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for rec in records:
        key = rec.get("det_index")
        if key is None:
            key = tuple(round(float(rec[k]), 3) for k in ("left", "top", "w", "h"))
        groups.setdefault(key, []).append(rec)
    boxes = [sorted(g, key=lambda r: -float(r["prob"])) for g in groups.values()]
    boxes.sort(key=lambda g: -float(g[0]["prob"]))  # strongest first

    colors = _assign_colors([int(g[0].get("class_id", 0)) for g in boxes])
    frames = []
    for group in boxes:
        best = group[0]
        left, top = float(best["left"]), float(best["top"])
        right, bottom = left + float(best["w"]), top + float(best["h"])
        x0, x1 = (int(round(min(max(v, 0.0), im_w - 1))) for v in (left, right))
        y0, y1 = (int(round(min(max(v, 0.0), im_h - 1))) for v in (top, bottom))
        frames.append((group, colors[int(best.get("class_id", 0))], (x0, y0, x1, y1)))

    # Frames: weakest first, so the strongest boxes end up on top.
    for _, color, rect in reversed(frames):
        draw.rectangle(list(rect), outline=color, width=line)

    # Labels: placed strongest first, each at the first candidate spot that does not
    # cover an already placed label (above the box, inside its top edge, then lower).
    pad = max(2, line)
    placed: list[tuple[int, int, int, int]] = []
    labels = []
    for group, color, (x0, y0, _x1, y1) in frames:
        text = ", ".join(f"{r['class']} {float(r['prob']):.2f}" for r in group)
        label_font = font
        tw, th, toff = _text_size(draw, text, label_font)
        shrunk = size
        while tw + 2 * pad > im_w and shrunk > MIN_FONT:  # a label wider than the image: smaller, down to 8 px
            shrunk = max(MIN_FONT, int(shrunk * 0.85))
            label_font = _load_font(shrunk)
            tw, th, toff = _text_size(draw, text, label_font)
        lw, lh = tw + 2 * pad, th + 2 * pad
        lx = min(max(x0, 0), max(im_w - lw, 0))
        candidates = [y0 - lh] + [y0 + k * lh for k in range(0, max(1, (y1 - y0) // lh))] + [y1]
        candidates = [y for y in candidates if 0 <= y <= im_h - lh] or [max(min(y0, im_h - lh), 0)]
        ly = candidates[0]
        for y in candidates:
            if not any(lx < px1 and px0 < lx + lw and y < py1 and py0 < y + lh for px0, py0, px1, py1 in placed):
                ly = y
                break
        placed.append((lx, ly, lx + lw, ly + lh))
        labels.append((text, color, (lx, ly, lw, lh, toff), label_font))
    for text, color, (lx, ly, lw, lh, toff), label_font in reversed(labels):
        draw.rectangle([lx, ly, lx + lw, ly + lh], fill=color)
        luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
        text_color = (0, 0, 0) if luminance > 150 else (255, 255, 255)
        draw.text((lx + pad, ly + pad - toff), text, fill=text_color, font=label_font)

    out = Path(out_png_path)
    with atomic_output(out) as fh:
        img.save(fh, format="PNG")
    return out
