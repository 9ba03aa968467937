"""Baseline JPEG decoder that reproduces Darknet's stb_image (darkweights.detect.jpeg).

Bit-exactness against stb_image is proven by the Darknet fixture (the network input
Darknet built from dog.jpg); the other tests are self-contained: Pillow encodes, and
our decode must be close to Pillow's (libjpeg-turbo rounds differently by a few levels),
identical across encodings with the same coefficients, and fail cleanly on bad data.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from darkweights.detect.image import load_image, resize_image
from darkweights.detect.jpeg import JPEGError, JPEGUnsupportedError, decode_jpeg, is_jpeg
from darkweights.errors import DarkweightsError

SHARED = Path(__file__).resolve().parents[2] / "shared"

Image = pytest.importorskip("PIL.Image")


def _smooth_image(h: int, w: int, seed: int) -> np.ndarray:
    """Photo-like test content: random colours on a coarse grid, bicubic-interpolated."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC))


def _encode(arr: np.ndarray, mode: str = "RGB", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, "JPEG", **kw)
    return buf.getvalue()


def _pillow_rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


# ---------------------------------------------------------------- (1) Darknet fixture


def test_dog_matches_darknet_network_input_exactly() -> None:
    """stb_image decode + Darknet resize of dog.jpg, as dumped from Darknet: 0 differences."""
    npz = SHARED / "fixtures" / "detections" / "darknet_input_dog_320x320.npz"
    photo = SHARED / "images" / "dog.jpg"
    if not npz.exists() or not photo.exists():
        pytest.skip(f"Darknet reference fixtures not found beside the checkout ({SHARED})")
    ref = np.load(npz)["input"]
    ours = resize_image(load_image(photo), 320, 320)
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)


def test_dog_is_decoded_by_our_decoder() -> None:
    photo = SHARED / "images" / "dog.jpg"
    if not photo.exists():
        pytest.skip(f"sample images not found beside the checkout ({SHARED})")
    raw = photo.read_bytes()
    rgb = decode_jpeg(raw)
    assert rgb.shape == (576, 768, 3) and rgb.dtype == np.uint8
    im = load_image(photo)
    np.testing.assert_array_equal(im, (rgb.transpose(2, 0, 1) / 255.0).astype(np.float32))
    grey = decode_jpeg(raw, channels=1)
    grey_im = load_image(photo, channels=1)
    np.testing.assert_array_equal(grey_im[0], (grey / 255.0).astype(np.float32))


# ---------------------------------------------------------------- (2) vs Pillow


def _restart_supported(data: bytes) -> bool:
    return b"\xff\xdd" in data  # DRI marker; older Pillow ignores the restart options


@pytest.mark.parametrize("subsampling", [0, 1, 2])  # 4:4:4, 4:2:2, 4:2:0
@pytest.mark.parametrize("quality", [30, 75, 95, 100])
@pytest.mark.parametrize("size", [(37, 53), (8, 8), (16, 6), (61, 45), (1, 1), (2, 3)])
def test_close_to_pillow(subsampling: int, quality: int, size: tuple[int, int]) -> None:
    h, w = size
    arr = _smooth_image(h, w, seed=quality * 7 + subsampling + h * w)
    data = _encode(arr, quality=quality, subsampling=subsampling)
    assert is_jpeg(data)
    ours = decode_jpeg(data)
    assert ours.shape == (h, w, 3) and ours.dtype == np.uint8
    diff = np.abs(ours.astype(np.int16) - _pillow_rgb(data).astype(np.int16))
    if subsampling and 2 < w < 5:
        # libjpeg-turbo replicates chroma (no "fancy" upsampling) when the subsampled
        # width is <= 2 pixels; stb_image interpolates. Nothing to compare here.
        return
    if subsampling == 1 and w >= 5:
        # stb's horizontal 2x upsampler weights its last even output pixel 3:1 towards the
        # *left* chroma sample (libjpeg: towards the right one); skip that column.
        diff[:, 2 * ((w + 1) // 2) - 2] = 0
    assert diff.max() <= 3


@pytest.mark.parametrize("subsampling", [0, 1, 2])
def test_restart_intervals_and_huffman_tables_do_not_change_pixels(subsampling: int) -> None:
    """Restart markers and optimised Huffman tables re-encode the same coefficients."""
    arr = _smooth_image(43, 70, seed=11)
    plain = decode_jpeg(_encode(arr, quality=85, subsampling=subsampling))
    optimised = _encode(arr, quality=85, subsampling=subsampling, optimize=True)
    np.testing.assert_array_equal(decode_jpeg(optimised), plain)
    variants = [
        dict(restart_marker_blocks=1),
        dict(restart_marker_blocks=3),
        dict(restart_marker_rows=1),
        dict(restart_marker_rows=2, optimize=True),
    ]
    tested = 0
    for kw in variants:
        data = _encode(arr, quality=85, subsampling=subsampling, **kw)
        if not _restart_supported(data):
            continue
        tested += 1
        np.testing.assert_array_equal(decode_jpeg(data), plain, err_msg=str(kw))
    if not tested:
        pytest.skip("this Pillow cannot write restart markers")


def test_grey_and_single_channel() -> None:
    arr = _smooth_image(29, 41, seed=5)
    grey_jpeg = _encode(arr, mode="L", quality=90)
    rgb = decode_jpeg(grey_jpeg)
    assert rgb.shape == (29, 41, 3)
    # stb replicates the grey channel for three requested channels
    assert np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])
    one = decode_jpeg(grey_jpeg, channels=1)
    assert one.shape == (29, 41)
    np.testing.assert_array_equal(one, rgb[..., 0])
    with Image.open(io.BytesIO(grey_jpeg)) as im:
        assert np.abs(one.astype(int) - np.asarray(im).astype(int)).max() <= 3
    # colour JPEG, one channel: stb returns the decoded Y plane
    colour = _encode(arr, quality=90, subsampling=2)
    with Image.open(io.BytesIO(colour)) as im:
        im.draft("YCbCr", im.size)
        y = np.asarray(im)[..., 0]
    y_ours = decode_jpeg(colour, channels=1)
    assert y_ours.shape == (29, 41)
    assert np.abs(y_ours.astype(int) - y.astype(int)).max() <= 3
    with pytest.raises(ValueError, match="channels"):
        decode_jpeg(colour, channels=2)


def test_cmyk_adobe() -> None:
    """Four components with an Adobe APP14 marker (Pillow writes inverted CMYK)."""
    arr = _smooth_image(24, 40, seed=9)
    data = _encode(arr, mode="CMYK", quality=95)
    ours = decode_jpeg(data)
    assert ours.shape == (24, 40, 3)
    assert np.abs(ours.astype(int) - _pillow_rgb(data).astype(int)).max() <= 3


# ---------------------------------------------------------------- (3) fallback to Pillow


def test_progressive_falls_back_to_pillow(tmp_path: Path) -> None:
    arr = _smooth_image(30, 50, seed=2)
    data = _encode(arr, quality=90, progressive=True)
    with pytest.raises(JPEGUnsupportedError, match="progressive"):
        decode_jpeg(data)
    path = tmp_path / "progressive.jpg"
    path.write_bytes(data)
    im = load_image(path)
    expected = (_pillow_rgb(data).transpose(2, 0, 1) / 255.0).astype(np.float32)
    np.testing.assert_array_equal(im, expected)


def test_unsupported_precision_is_reported() -> None:
    data = bytearray(_encode(_smooth_image(16, 16, seed=1), quality=90))
    sof = data.index(b"\xff\xc0")
    data[sof + 4] = 12  # sample precision
    with pytest.raises(JPEGUnsupportedError, match="12-bit"):
        decode_jpeg(bytes(data))


# ---------------------------------------------------------------- (4) bad data


def test_truncated_jpeg_raises_clear_error(tmp_path: Path) -> None:
    data = _encode(_smooth_image(40, 60, seed=4), quality=90)
    sos = data.index(b"\xff\xda")
    with pytest.raises(JPEGError, match="truncated"):
        decode_jpeg(data[: sos + 40])  # inside the entropy-coded data
    with pytest.raises(JPEGError, match="truncated"):
        decode_jpeg(data[:30])  # inside the headers
    with pytest.raises(JPEGError, match="SOI"):
        decode_jpeg(b"not a jpeg at all")
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: sos + 40])
    with pytest.raises(DarkweightsError, match="cannot read image"):
        load_image(path)


def test_corrupt_segments_raise_clear_errors() -> None:
    data = _encode(_smooth_image(16, 24, seed=6), quality=90)
    dqt = data.index(b"\xff\xdb")
    bad = bytearray(data)
    bad[dqt + 4] = 0x27  # DQT precision 2
    with pytest.raises(JPEGError, match="DQT"):
        decode_jpeg(bytes(bad))
    dht = data.index(b"\xff\xc4")
    bad = bytearray(data)
    bad[dht + 5 : dht + 21] = bytes([2, 2] + [0] * 14)  # more 2-bit codes than exist
    with pytest.raises(JPEGError, match="Huffman"):
        decode_jpeg(bytes(bad))


def test_damaged_files_never_crash_or_hang() -> None:
    """Random truncations, byte changes and deletions: an image or a JPEGError, nothing else."""
    rng = np.random.default_rng(0)
    sources = [
        _encode(_smooth_image(33, 47, seed=1), quality=75, subsampling=2),
        _encode(_smooth_image(20, 30, seed=3), quality=95, subsampling=0),
        _encode(_smooth_image(25, 25, seed=8), quality=60, subsampling=1, restart_marker_blocks=2),
    ]
    outcomes = {"image": 0, "error": 0}
    for i in range(300):
        src = sources[i % len(sources)]
        data = bytearray(src)
        kind = i % 3
        if kind == 0:
            data = data[: rng.integers(2, len(data))]
        elif kind == 1:
            for _ in range(rng.integers(1, 4)):
                data[rng.integers(0, len(data))] = rng.integers(0, 256)
        else:
            start = int(rng.integers(0, len(data)))
            del data[start : start + int(rng.integers(1, 40))]
        try:
            out = decode_jpeg(bytes(data))
        except JPEGError as exc:
            assert str(exc)
            outcomes["error"] += 1
        else:
            assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
            outcomes["image"] += 1
    assert outcomes["error"] > 0 and outcomes["image"] > 0
