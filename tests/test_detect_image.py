"""Darknet image pre-processing: resize_image, letterbox_image, load_image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from darkweights.detect.image import letterbox_geometry, letterbox_image, load_image, resize_image

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "fixtures"


def _reference_resize(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """Slow, literal transcription of AB:src/image.c:resize_image, one pixel at a time.

    Every intermediate is a numpy float32 scalar, so each C float operation rounds
    the same way.
    """
    c, ih, iw = im.shape
    if iw == w and ih == h:
        return im.copy()
    f = np.float32
    part = np.zeros((c, ih, w), f)
    w_scale = f(iw - 1) / f(w - 1) if w > 1 else f(np.inf)
    h_scale = f(ih - 1) / f(h - 1) if h > 1 else f(np.inf)
    for k in range(c):
        for r in range(ih):
            for col in range(w):
                if col == w - 1 or iw == 1:
                    val = im[k, r, iw - 1]
                else:
                    sx = f(col) * w_scale
                    ix = int(sx)
                    dx = sx - f(ix)
                    val = (f(1) - dx) * im[k, r, ix] + dx * im[k, r, ix + 1]
                part[k, r, col] = val
    out = np.zeros((c, h, w), f)
    for k in range(c):
        for r in range(h):
            sy = f(r) * h_scale
            iy = int(sy)
            dy = sy - f(iy)
            for col in range(w):
                out[k, r, col] = (f(1) - dy) * part[k, iy, col]
            if r == h - 1 or ih == 1:
                continue
            for col in range(w):
                out[k, r, col] = out[k, r, col] + dy * part[k, iy + 1, col]
    return out


@pytest.mark.parametrize(
    "src,dst",
    [
        ((7, 5), (4, 3)),  # shrink
        ((5, 4), (13, 11)),  # enlarge
        ((9, 6), (9, 10)),  # width unchanged, height changed
        ((1, 6), (4, 5)),  # one-column source
        ((6, 1), (5, 3)),  # one-row source
        ((17, 13), (2, 2)),
        ((31, 29), (23, 37)),  # scales that do not divide evenly: float rounding in sx/sy matters
    ],
)
def test_resize_matches_literal_darknet_formula(src: tuple[int, int], dst: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(src) * 100 + sum(dst))
    (iw, ih), (w, h) = src, dst
    im = rng.random((3, ih, iw), dtype=np.float32)
    got = resize_image(im, w, h)
    assert got.dtype == np.float32 and got.shape == (3, h, w)
    # Same float32 operations in the same order: bit-identical, not just close.
    np.testing.assert_array_equal(got, _reference_resize(im, w, h))


def test_resize_quirks() -> None:
    im = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6) / 50
    assert np.array_equal(resize_image(im, 6, 4), im)  # same size: plain copy
    out = resize_image(im, 11, 7)
    # corners are aligned ((in-1)/(out-1) scale), last column is copied exactly
    assert np.array_equal(out[:, :, -1][:, 0], im[:, 0, -1])
    assert np.array_equal(out[:, 0, 0], im[:, 0, 0])


def test_letterbox_geometry_and_padding() -> None:
    rng = np.random.default_rng(3)
    im = rng.random((3, 30, 60), dtype=np.float32)  # 60 wide, 30 high
    assert letterbox_geometry(60, 30, 32, 32) == (32, 16)
    assert letterbox_geometry(30, 60, 32, 32) == (16, 32)
    assert letterbox_geometry(60, 31, 32, 32) == (32, (31 * 32) // 60)
    boxed = letterbox_image(im, 32, 32)
    assert boxed.shape == (3, 32, 32)
    # resized content centred vertically at (32-16)//2 = 8, grey 0.5 elsewhere
    np.testing.assert_array_equal(boxed[:, 8:24, :], resize_image(im, 32, 16))
    assert np.all(boxed[:, :8, :] == 0.5) and np.all(boxed[:, 24:, :] == 0.5)


def test_load_image_png_roundtrip(tmp_path: Path) -> None:
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(rgb, mode="RGB").save(path)
    im = load_image(path)
    assert im.shape == (3, 5, 7) and im.dtype == np.float32
    np.testing.assert_array_equal(im, (rgb.transpose(2, 0, 1) / 255.0).astype(np.float32))
    # RGBA: alpha dropped, not composited (stb_image with 3 requested channels)
    rgba = np.dstack([rgb, np.full((5, 7), 7, np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), im)


def test_pipeline_vs_darknet_network_input() -> None:
    """load_image (stb_image-exact JPEG decode) + resize_image vs the input Darknet built for dog.jpg."""
    npz = FIXTURES / "detections" / "darknet_input_dog_320x320.npz"
    photo = SHARED / "images" / "dog.jpg"
    if not npz.exists() or not photo.exists():
        pytest.skip(f"Darknet reference fixtures not found beside the checkout ({FIXTURES})")
    pytest.importorskip("PIL")
    ref = np.load(npz)["input"]
    ours = resize_image(load_image(photo), 320, 320)
    # baseline JPEGs go through darkweights.detect.jpeg, which reproduces stb_image byte for byte,
    # and resize_image reproduces Darknet's float arithmetic: the input is identical
    assert np.array_equal(ours, ref)
