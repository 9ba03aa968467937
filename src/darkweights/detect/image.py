"""Darknet's detector input pipeline: image loading, bilinear resize, letterbox.

Images are float32 arrays shaped ``(C, H, W)`` with values in [0, 1], the layout of
Darknet's ``image`` struct (``AB:src/image.c``), so they can be fed to a network
as ``im[None]`` without transposing.

The resize is a bit-faithful float32 re-implementation of AlexeyAB's
``resize_image`` (including its edge quirks). Baseline and progressive JPEGs are
decoded by :mod:`.jpeg`, which reproduces Darknet's stb_image bit for bit; everything
else (PNG, arithmetic-coded JPEG, ...) uses Pillow, whose decoders may differ from
stb_image by a few grey levels on some pixels.
"""

from __future__ import annotations

import os
from typing import Union

import numpy as np

from ..errors import ArgumentError, ImageError
from ..limits import JPEG_PIXELS_PER_BYTE, MAX_IMAGE_PIXELS, PNG_PIXELS_PER_BYTE
from .jpeg import JPEGError, decode_jpeg, is_jpeg, jpeg_size

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["load_image", "resize_image", "letterbox_image", "letterbox_geometry", "image_to_uint8"]


def load_image(path: PathLike, channels: int = 3) -> np.ndarray:
    """Decode an image file to float32 ``(channels, H, W)`` in [0, 1], as Darknet's ``load_image``.

    Darknet (``AB:src/image.c:load_image_stb``) decodes with stb_image forced to
    ``channels`` components and divides the 8-bit values by 255. Like stb_image, EXIF
    orientation is ignored and an alpha channel is dropped (not composited).

    Baseline and progressive (Huffman, 8-bit) JPEGs are decoded by
    :func:`.jpeg.decode_jpeg`, bit-identical to stb_image. Other formats, JPEG flavours
    it does not implement (arithmetic, lossless, ...) and JPEGs it rejects as corrupt go
    through Pillow, which is imported lazily because it is an optional dependency.
    """
    if channels not in (1, 3):
        raise ArgumentError(f"channels must be 1 or 3, got {channels}")
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ImageError(f"cannot read image: {exc.strerror or exc}", file=str(path)) from None
    if not raw:
        raise ImageError("empty file, not an image", file=str(path), offset=0)
    data = None
    jpeg_error = None
    if is_jpeg(raw):
        dims = jpeg_size(raw)
        if dims is not None:
            check_image_size(dims[0], dims[1], len(raw), JPEG_PIXELS_PER_BYTE, path)
        try:
            data = decode_jpeg(raw, channels)
        except JPEGError as exc:  # unsupported flavour or corrupt data: let Pillow try
            jpeg_error = exc
    if data is None:
        try:
            data = _load_with_pillow(path, channels)
        except ImageError as exc:
            if jpeg_error is None:
                raise
            raise ImageError(f"cannot read image: {jpeg_error}", file=str(path)) from exc
    if data.ndim == 2:
        data = data[:, :, None]
    # HWC uint8 -> CHW float32; Darknet computes (float)byte / 255. in double, then
    # stores a float, which is what float64 division followed by astype gives.
    chw = np.ascontiguousarray(data.transpose(2, 0, 1))
    return (chw.astype(np.float64) / 255.0).astype(np.float32)


def check_image_size(width: int, height: int, file_bytes: int, pixels_per_byte: int, path: PathLike) -> None:
    """Refuse, before decoding, a declared size that is absurd or more than the file can hold."""
    pixels = width * height
    if width <= 0 or height <= 0:
        raise ImageError(f"the header declares a {width}x{height} image", file=str(path))
    if pixels > MAX_IMAGE_PIXELS:
        raise ImageError(
            f"the header declares a {width}x{height} image, more than the {MAX_IMAGE_PIXELS:,}-pixel "
            "limit (darkweights.limits.MAX_IMAGE_PIXELS)",
            file=str(path),
        )
    if pixels > pixels_per_byte * file_bytes + 4096:
        raise ImageError(
            f"the header declares a {width}x{height} image, which a {file_bytes:,}-byte file cannot "
            "hold: truncated or corrupt",
            file=str(path),
            offset=file_bytes,
        )


def _load_with_pillow(path: PathLike, channels: int) -> np.ndarray:
    """Decode with Pillow to uint8 ``(H, W, 3)`` or ``(H, W)``, stb_image's conventions."""
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImageError(
            "reading this image needs Pillow (pip install 'darkweights[detect]' or pillow)", file=str(path)
        ) from exc
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(path)
        with img:
            w, h = img.size
            check_image_size(w, h, os.path.getsize(path), PNG_PIXELS_PER_BYTE, path)
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                # stb_image reduces 16-bit samples to 8 bits by keeping the high byte.
                arr16 = np.asarray(img, dtype=np.uint32)
                gray = (np.clip(arr16, 0, 65535) >> 8).astype(np.uint8)
                img = Image.fromarray(gray, mode="L")
            img = img.convert("RGB" if channels == 3 else "L")
            data = np.asarray(img, dtype=np.uint8)
    except ImageError:
        raise
    except (
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
        TypeError,
        MemoryError,
        Image.DecompressionBombWarning,
        Image.DecompressionBombError,
    ) as exc:  # Pillow's decoders raise all of these on corrupt data
        raise ImageError(f"cannot read image: {str(exc) or type(exc).__name__}", file=str(path)) from None
    return data


def _as_chw(im: np.ndarray) -> np.ndarray:
    if im.ndim != 3:
        raise ArgumentError(f"expected an image shaped (C, H, W), got shape {im.shape}")
    return np.asarray(im, dtype=np.float32)


def resize_image(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """Darknet's bilinear ``resize_image`` (``AB:src/image.c``), vectorised, in float32.

    Not the same as OpenCV/Pillow bilinear: Darknet aligns the corner pixels
    (scale ``(in-1)/(out-1)``) and resizes in two passes, first along x into an
    ``(C, in_h, w)`` buffer, then along y. Float32 rounding is reproduced step by step,
    including two edge quirks:

    * the last output column copies the last input column exactly;
    * the last output row is ``(1-dy) * row[iy]`` with *no* second term, where
      ``sy = (h-1)*h_scale`` may round to slightly above/below ``in_h-1``.
    """
    im = _as_chw(im)
    c, in_h, in_w = im.shape
    w, h = int(w), int(h)
    if w < 1 or h < 1:
        raise ArgumentError(f"target size must be positive, got {w}x{h}")
    if in_w == w and in_h == h:
        return im.copy()

    one = np.float32(1.0)
    # Horizontal pass: part[:, r, col] for every source row r.
    if w == 1 or in_w == 1:
        part = np.repeat(im[:, :, in_w - 1 : in_w], w, axis=2)
    else:
        w_scale = np.float32(in_w - 1) / np.float32(w - 1)  # float division, as in C
        cols = np.arange(w - 1, dtype=np.int64)
        sx = cols.astype(np.float32) * w_scale
        ix = sx.astype(np.int64)  # (int) truncation; sx >= 0
        dx = sx - ix.astype(np.float32)
        ix1 = np.minimum(ix + 1, in_w - 1)  # never clips for valid sizes; a guard only
        body = (one - dx) * im[:, :, ix] + dx * im[:, :, ix1]
        part = np.concatenate([body, im[:, :, in_w - 1 : in_w]], axis=2)

    # Vertical pass.
    if h == 1:
        # C computes h_scale = (in_h-1)/0 and then 0*inf = NaN for row 0 (undefined
        # behaviour); the only sensible reading is "take source row 0".
        return np.ascontiguousarray(part[:, :1, :])
    h_scale = np.float32(in_h - 1) / np.float32(h - 1)
    rows = np.arange(h, dtype=np.int64)
    sy = rows.astype(np.float32) * h_scale
    iy = sy.astype(np.int64)
    dy = sy - iy.astype(np.float32)
    iy = np.minimum(iy, in_h - 1)
    out = (one - dy)[None, :, None] * part[:, iy, :]
    if in_h > 1:
        # Every row except the last gets the second tap (the C code `continue`s on r == h-1).
        inner = rows[:-1]
        iy1 = np.minimum(iy[inner] + 1, in_h - 1)
        out[:, inner, :] = out[:, inner, :] + dy[inner][None, :, None] * part[:, iy1, :]
    return np.ascontiguousarray(out, dtype=np.float32)


def letterbox_geometry(im_w: int, im_h: int, net_w: int, net_h: int) -> tuple[int, int]:
    """Size ``(new_w, new_h)`` of the image inside a letterboxed ``net_w x net_h`` input.

    Same integer arithmetic as ``AB:src/image.c:letterbox_image`` and
    ``AB:src/yolo_layer.c:correct_yolo_boxes`` (a float comparison of the two ratios,
    then C integer division for the other side).
    """
    if float(np.float32(net_w) / np.float32(im_w)) < float(np.float32(net_h) / np.float32(im_h)):
        return net_w, (im_h * net_w) // im_w
    return (im_w * net_h) // im_h, net_h


def network_input(image: PathLike, width: int, height: int, letterbox: bool) -> tuple[np.ndarray, int, int]:
    """What ``detector test`` feeds the network: the image loaded, then resized or letterboxed to
    ``width x height``; with the image's own width and height. Errors name the file."""
    im = load_image(image)
    _, h, w = im.shape
    if letterbox:
        new_w, new_h = letterbox_geometry(w, h, width, height)
        if new_w < 1 or new_h < 1:
            raise ImageError(
                f"a {w}x{h} image letterboxed into {width}x{height} has no pixels left "
                f"({new_w}x{new_h}); Darknet would make an empty image",
                file=str(image),
            )
        return letterbox_image(im, width, height), w, h
    return resize_image(im, width, height), w, h


def letterbox_image(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """Darknet's ``letterbox_image``: resize keeping the aspect ratio, centre on 0.5 grey.

    Used instead of :func:`resize_image` when the cfg has ``[net] letter_box=1`` (or
    ``darknet detector test -letter_box``). The offset is ``(w - new_w) // 2``.
    """
    im = _as_chw(im)
    c, in_h, in_w = im.shape
    new_w, new_h = letterbox_geometry(in_w, in_h, int(w), int(h))
    resized = resize_image(im, new_w, new_h)
    boxed = np.full((c, int(h), int(w)), 0.5, dtype=np.float32)
    dx, dy = (int(w) - new_w) // 2, (int(h) - new_h) // 2
    # embed_image writes through set_pixel, which silently drops out-of-range pixels.
    x0, y0 = max(dx, 0), max(dy, 0)
    x1, y1 = min(dx + new_w, int(w)), min(dy + new_h, int(h))
    boxed[:, y0:y1, x0:x1] = resized[:, y0 - dy : y1 - dy, x0 - dx : x1 - dx]
    return boxed


def image_to_uint8(im: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` float [0, 1] -> ``(H, W, C)`` uint8 (rounded, so load/save round-trips)."""
    im = _as_chw(im)
    vals = np.rint(np.clip(im, 0.0, 1.0) * np.float32(255.0))
    out = vals.astype(np.uint8).transpose(1, 2, 0)
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    return np.ascontiguousarray(out)
