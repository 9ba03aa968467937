"""JPEG decoder that reproduces Darknet's stb_image (darkweights.detect.jpeg).

Bit-exactness against stb_image is proven by the Darknet fixture (the network input
Darknet built from dog.jpg) and, for a progressive scan script Pillow cannot write, by
the hash of stb_image's own decode; the other tests are self-contained: Pillow encodes,
and our decode must be close to Pillow's (libjpeg-turbo rounds differently by a few
levels), identical across encodings with the same coefficients (baseline/progressive,
restart markers, Huffman tables), and fail cleanly on bad data.
"""

from __future__ import annotations

import base64
import hashlib
import io
import time
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


# ---------------------------------------------------------------- (3) progressive


def _noisy_image(h: int, w: int, seed: int) -> np.ndarray:
    """Smooth content plus noise: many non-zero high-frequency coefficients."""
    noise = np.random.default_rng(seed).integers(-24, 25, size=(h, w, 3))
    return np.clip(_smooth_image(h, w, seed) + noise, 0, 255).astype(np.uint8)


def _progressive_pair(arr: np.ndarray, mode: str = "RGB", **kw) -> tuple[bytes, bytes]:
    """The same image, quality and subsampling written baseline and progressive.

    libjpeg quantises identically in both modes, so the two files hold the same
    coefficients and an stb-exact decoder must give the same pixels for both.
    """
    baseline = _encode(arr, mode, **kw)
    progressive = _encode(arr, mode, progressive=True, **kw)
    assert b"\xff\xc0" in baseline and b"\xff\xc2" in progressive  # SOF0 / SOF2
    return baseline, progressive


@pytest.mark.parametrize("subsampling", [0, 1, 2])  # 4:4:4, 4:2:2, 4:2:0
@pytest.mark.parametrize("quality", [25, 75, 95, 100])
@pytest.mark.parametrize("size", [(23, 37), (37, 23), (65, 129), (8, 8), (1, 1), (17, 6)])
def test_progressive_matches_baseline(subsampling: int, quality: int, size: tuple[int, int]) -> None:
    h, w = size
    make = _noisy_image if quality % 2 else _smooth_image
    arr = make(h, w, seed=quality + 3 * subsampling + h * w)
    baseline, progressive = _progressive_pair(arr, quality=quality, subsampling=subsampling)
    rgb = decode_jpeg(progressive)
    assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, decode_jpeg(baseline))
    grey = decode_jpeg(progressive, channels=1)
    np.testing.assert_array_equal(grey, decode_jpeg(baseline, channels=1))


@pytest.mark.parametrize("mode", ["L", "CMYK"])
@pytest.mark.parametrize("size", [(29, 41), (1, 9), (64, 48)])
def test_progressive_grey_and_cmyk(mode: str, size: tuple[int, int]) -> None:
    arr = _noisy_image(*size, seed=size[0])
    baseline, progressive = _progressive_pair(arr, mode, quality=90)
    for channels in (3, 1):
        ours = decode_jpeg(progressive, channels=channels)
        assert ours.shape == size + ((3,) if channels == 3 else ())
        np.testing.assert_array_equal(ours, decode_jpeg(baseline, channels=channels))


@pytest.mark.parametrize("subsampling", [0, 1, 2])
def test_progressive_restart_intervals(subsampling: int) -> None:
    """Restart markers reset the DC predictions and EOB runs of every kind of scan."""
    arr = _noisy_image(43, 70, seed=12)
    baseline = decode_jpeg(_encode(arr, quality=85, subsampling=subsampling))
    tested = 0
    for kw in [
        dict(restart_marker_blocks=1),
        dict(restart_marker_blocks=3),
        dict(restart_marker_rows=1),
        dict(restart_marker_rows=2),
    ]:
        data = _encode(arr, quality=85, subsampling=subsampling, progressive=True, **kw)
        if not _restart_supported(data):
            continue
        tested += 1
        np.testing.assert_array_equal(decode_jpeg(data), baseline, err_msg=str(kw))
    if not tested:
        pytest.skip("this Pillow cannot write restart markers in progressive mode")


# 19x27, 4:2:0, restart interval of 2 MCUs, made lossless from a baseline file with
# jpegtran -scans, with a scan script Pillow never writes: an interleaved DC scan of
# two of three components, non-interleaved DC scans, DC successive approximation from
# Al=2 (refined in an interleaved and in single-component scans), AC bands split at
# 1/2/10/21 first sent at Al=0..4 and refined one bit at a time.
_CUSTOM_SCANS_JPEG = (
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAUDBAQEAwUEBAQFBQUGBwwIBwcHBw8LCwkMEQ8SEhEPERETFhwXExQa"
    "FRERGCEYGh0dHx8fExciJCIeJBweHx7/2wBDAQUFBQcGBw4ICA4eFBEUHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4e"
    "Hh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh7/wgARCAATABsDASIAAhEBAxEB/8QAGAAAAwEBAAAAAAAAAAAAAAAA"
    "AAMEAQL/xAAWAQEBAQAAAAAAAAAAAAAAAAABAwX/3QAEAAL/2gAKAgEAAxAAAAIm6wqjdHo//9CG4Bawl//EABUB"
    "AQEAAAAAAAAAAAAAAAAAAAUD/9oACAECEAAAAF4//9BEn//EABgQAAMBAQAAAAAAAAAAAAAAAAABAgME/9oACAEB"
    "AAEBA8j/0Gf/0Uv/0rP/0+Pf/9ST/8QAHhAAAgAGAwAAAAAAAAAAAAAAAAECAxAREjETIlH/2gAIAQEAAgkEeOzv"
    "Ef/QiwVia/P/0XyDs7H/0nT/0zR//9TVP//EACERAAICAQIHAAAAAAAAAAAAAAECAAMEEhMFBhQhNVFx/9oACAED"
    "AQEUAcOvq7DS7anTuBMCnUp3W2z6n//Q5a8k84uSMp/s/8QAGBEAAwEBAAAAAAAAAAAAAAAAAAERYRD/2gAIAQMB"
    "FT8Air0Tun//0Of/xAAfEQABBAAHAAAAAAAAAAAAAAADAAECEQQFIyQ0UXH/2gAIAQIBAT8BPoHk5HqfaYOOG1il"
    "dr//0C84XqzN9zJf/8QAGxAAAgIDAQAAAAAAAAAAAAAAABEBEAISUUH/2gAIAQEACj8CQsen/9Bx2v/R1Qoj0//S"
    "df/Tr//Ur//aAAoCAQADAAAAIY5//9AP/wD/xAAWEAEBAQAAAAAAAAAAAAAAAAAQAAH/2gAIAQEAAQEyu//QH//R"
    "H//SH//TD//Uu//EABoQAAIDAQEAAAAAAAAAAAAAAAARARAhMUH/2gAIAQEAAglDA0H/0JpwD//R9SWD/9LKR//T"
    "7T//1K//xAAZEAACAwEAAAAAAAAAAAAAAAABEAARIVH/2gAIAQEAAgky2jQH/9BED//RupM//9IjIDz/01f/1F//"
    "xAAYEAEBAQEBAAAAAAAAAAAAAAABABEhMf/aAAgBAQABCSFBhp1//9CxXaf/0dYq3//SXCKM/9P1gdZ//9Qj3er/"
    "xAAdEAACAgIDAQAAAAAAAAAAAAAAIQEREEExUWGR/9oACAEBAAo/IZXYxaH/0PIT8P/RjmWy0j//0q94/9MZ/9S8"
    "f//aAAgBAQAAABA//9C//9E//9K//9N//9R//9oACAEDAAAAED//0H//xAAhEAACAwABAwUAAAAAAAAAAAABEQAh"
    "MXFBUYGRscHR4f/aAAgBAQABPxA1myST7hatPK7z/9A/IGEio5svTH//0dyWGfVGwCROz//SZzNMOHJreL8n/9Oo"
    "BVD4g4CAJsrmf//UM1FuvmVUVQ9p/8QAHBEBAAICAwEAAAAAAAAAAAAAAQAhEUExUWFx/9oACAECAQE/ECZMQrb5"
    "g3AhBfKgr2jx8n//0LgwwI7Z/8QAGREBAAMBAQAAAAAAAAAAAAAAAQARIUGh/9oACAEDAQEUEFor4EUNuh//0PES"
    "snqf/9k="
)
# SHA-256 of stbi_load(..., 3) and stbi_load(..., 1) of that file (stb_image 2.30)
_CUSTOM_SCANS_STB_SHA256 = {
    3: "60843c0d4cc9580160307c579d8ad73e0cd571cace69c43f989a466a59e8b4bb",
    1: "3db32f9441d95140024686114d236158cd6465fd8d537352c2a81f45895af657",
}


@pytest.mark.parametrize("channels", [3, 1])
def test_progressive_custom_scan_script_matches_stb(channels: int) -> None:
    data = base64.b64decode("".join(_CUSTOM_SCANS_JPEG))
    ours = decode_jpeg(data, channels=channels)
    assert ours.shape[:2] == (19, 27)
    assert hashlib.sha256(ours.tobytes()).hexdigest() == _CUSTOM_SCANS_STB_SHA256[channels]


def _dqt(table: int, values: bytes) -> bytes:
    return b"\xff\xdb\x00\x43" + bytes([table]) + values


def test_progressive_dequantises_with_the_tables_in_force_at_the_end() -> None:
    """stb keeps progressive coefficients unscaled until EOI (stbi__jpeg_finish), so a
    quantisation table redefined after a scan applies to the whole image."""
    arr = _noisy_image(24, 40, seed=21)
    baseline, progressive = _progressive_pair(arr, quality=80, subsampling=2)
    head = progressive.index(_dqt(0, b""))
    old = progressive[head + 5 : head + 69]
    new = bytes(min(255, 2 * v) for v in old)
    rescaled = decode_jpeg(progressive[:head] + _dqt(0, new) + progressive[head + 69 :])
    assert not np.array_equal(rescaled, decode_jpeg(progressive))
    after_first_scan = progressive.index(b"\xff\xc4", progressive.index(b"\xff\xda"))
    before_eoi = len(progressive) - 2
    for at in (after_first_scan, before_eoi):
        redefined = progressive[:at] + _dqt(0, new) + progressive[at:]
        np.testing.assert_array_equal(decode_jpeg(redefined), rescaled)
    # a baseline scan is dequantised as it is decoded: a later DQT changes nothing
    at = len(baseline) - 2
    np.testing.assert_array_equal(decode_jpeg(baseline[:at] + _dqt(0, new) + baseline[at:]), decode_jpeg(baseline))


def _scan_headers(data: bytes) -> list[int]:
    """Offsets of the SOS markers (0xFF 0xDA cannot occur inside entropy-coded data)."""
    out, i = [], data.find(b"\xff\xda")
    while i >= 0:
        out.append(i)
        i = data.find(b"\xff\xda", i + 1)
    return out


def _with_scan_params(data: bytes, scan: int, ss: int, se: int, ahal: int) -> bytes:
    sos = _scan_headers(data)[scan]
    end = sos + 2 + ((data[sos + 2] << 8) | data[sos + 3])
    return data[: end - 3] + bytes([ss, se, ahal]) + data[end:]


def test_progressive_scan_parameters_are_validated() -> None:
    _, data = _progressive_pair(_smooth_image(24, 32, seed=3), quality=80)
    scans = _scan_headers(data)
    assert len(scans) >= 6
    dc, ac = 0, 1  # libjpeg's script: interleaved DC first, then an AC band of Y
    bad = {
        "mixes DC and AC": [(dc, 0, 5, 0x01), (ac, 0, 5, 0x02)],
        # Ss > Se, Se > 63, Al > 13, Ah > 13
        "bad progressive scan": [(ac, 6, 5, 0x02), (ac, 1, 64, 0x02), (ac, 1, 5, 0x0E), (ac, 1, 5, 0xE0)],  # fmt: skip
    }
    for message, cases in bad.items():
        for scan, ss, se, ahal in cases:
            with pytest.raises(JPEGError, match=message):
                decode_jpeg(_with_scan_params(data, scan, ss, se, ahal))
    # an AC scan before the component's first DC scan: drop the DC scan
    without_dc = data[: scans[0]] + data[data.index(b"\xff\xc4", scans[0]) :]
    with pytest.raises(JPEGError, match="before its first DC scan"):
        decode_jpeg(without_dc)


def test_progressive_is_loaded_by_our_decoder(tmp_path: Path) -> None:
    arr = _noisy_image(30, 50, seed=2)
    baseline, progressive = _progressive_pair(arr, quality=90)
    path = tmp_path / "progressive.jpg"
    path.write_bytes(progressive)
    expected = (decode_jpeg(baseline).transpose(2, 0, 1) / 255.0).astype(np.float32)
    np.testing.assert_array_equal(load_image(path), expected)
    pillow = (_pillow_rgb(progressive).transpose(2, 0, 1) / 255.0).astype(np.float32)
    assert not np.array_equal(load_image(path), pillow)  # not decoded by Pillow


# ---------------------------------------------------------------- (4) fallback to Pillow


def test_unsupported_flavour_falls_back_to_pillow(tmp_path: Path, monkeypatch) -> None:
    data = _encode(_smooth_image(30, 50, seed=2), quality=90)
    path = tmp_path / "image.jpg"
    path.write_bytes(data)

    def unsupported(raw: bytes, channels: int = 3) -> np.ndarray:
        raise JPEGUnsupportedError("unsupported JPEG flavour: arithmetic-coded JPEG (SOF9)")

    monkeypatch.setattr("darkweights.detect.image.decode_jpeg", unsupported)
    expected = (_pillow_rgb(data).transpose(2, 0, 1) / 255.0).astype(np.float32)
    np.testing.assert_array_equal(load_image(path), expected)


def test_unsupported_precision_is_reported() -> None:
    data = bytearray(_encode(_smooth_image(16, 16, seed=1), quality=90))
    sof = data.index(b"\xff\xc0")
    data[sof + 4] = 12  # sample precision
    with pytest.raises(JPEGUnsupportedError, match="12-bit"):
        decode_jpeg(bytes(data))


# ---------------------------------------------------------------- (5) bad data


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


def _timed_decode(data: bytes) -> np.ndarray:
    """decode_jpeg, failing the test if one small file takes more than 60 s: a hang guard, far above any
    machine's decode time (milliseconds), not a speed check."""
    start = time.perf_counter()
    try:
        return decode_jpeg(data)
    finally:
        assert time.perf_counter() - start < 60.0


@pytest.mark.parametrize("subsampling", [0, 2])
def test_truncated_progressive_jpeg_raises_clear_error(subsampling: int) -> None:
    """Cut anywhere -- headers, any scan, between scans, before EOI: always a JPEGError
    (without EOI, stb would return pixels it never computed)."""
    kw = dict(restart_marker_blocks=2) if subsampling == 0 else {}
    arr = _noisy_image(21, 35, seed=5)
    data = _encode(arr, quality=90, subsampling=subsampling, progressive=True, **kw)
    scans = _scan_headers(data)
    cuts = set(range(2, len(data), 3)) | {len(data) - 1, len(data) - 2}
    cuts |= {i + d for i in scans for d in (3, 12, 20, 40)}  # inside each scan header/data
    for cut in sorted(cuts):
        with pytest.raises(JPEGError, match="truncated"):
            _timed_decode(data[:cut])


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
        _encode(_noisy_image(33, 47, seed=1), quality=75, subsampling=2, progressive=True),
        _encode(_noisy_image(20, 30, seed=3), quality=95, subsampling=0, progressive=True),
        _encode(
            _noisy_image(25, 25, seed=8),
            quality=60,
            subsampling=1,
            progressive=True,
            restart_marker_blocks=2,
        ),  # fmt: skip
        _encode(_noisy_image(19, 21, seed=4), "L", quality=85, progressive=True),
    ]
    outcomes = {"image": 0, "error": 0}
    for i in range(700):
        src = sources[i % len(sources)]
        data = bytearray(src)
        kind = i % 4
        if kind == 0:
            data = data[: rng.integers(2, len(data))]
        elif kind == 1:
            for _ in range(rng.integers(1, 4)):
                data[rng.integers(0, len(data))] = rng.integers(0, 256)
        elif kind == 2:
            start = int(rng.integers(0, len(data)))
            del data[start : start + int(rng.integers(1, 40))]
        else:  # one flipped bit, in the entropy-coded data more often than not
            at = int(rng.integers(len(data) // 4, len(data)))
            data[at] ^= 1 << int(rng.integers(0, 8))
        try:
            out = _timed_decode(bytes(data))
        except JPEGError as exc:
            assert str(exc)
            outcomes["error"] += 1
        else:
            assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
            outcomes["image"] += 1
    assert outcomes["error"] > 0 and outcomes["image"] > 0
