"""Hostile input, briefly (a minute at most): every generated cfg, weights file, array set, array file and
image ends in a located DarkweightsError or succeeds; never another exception, a hang or a huge allocation.

The generators are those of the long run (``python fuzz/run.py --cases 100000``); hypothesis picks and
shrinks the seeds. The targeted tests below pin the resource guards with numbers.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import darkweights as dw  # noqa: E402
from darkweights.errors import ArrayError, CfgError, DarkweightsError, ImageError, ShapeError  # noqa: E402
from fuzz.cases import GENERATORS, run_case  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = {
    "cfg": 150,
    "cfg_big": 5,
    "weights": 100,
    "arrays": 80,
    "array_file": 40,
    "image": 100,
    "safetensors_header": 40,
    "archive_bomb": 15,
    "onnx": 30,
}


@pytest.mark.parametrize("family", sorted(GENERATORS))
def test_fuzz_family(family: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    if family == "onnx":  # its seed is exported once (torch), then only read back (onnx)
        pytest.importorskip("onnx", reason="the ONNX family needs the [onnx] extra")
        pytest.importorskip("torch", reason="the ONNX family's seed is exported with the [onnx] extra")
    tmp = tmp_path_factory.mktemp(family)

    @settings(
        max_examples=EXAMPLES[family],
        deadline=10_000,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(st.integers(0, 2**32 - 1))
    def check(seed: int) -> None:
        import random

        case = GENERATORS[family](random.Random(seed), tmp)
        out = run_case(case, time_limit=10.0)
        assert out.status in ("ok", "error"), f"seed {seed}: {out.status} {out.kind}\n{out.detail}"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check()


# -- resource guards ---------------------------------------------------------------------------------------

CONV = "[net]\nwidth={w}\nheight={h}\nchannels=3\n\n[convolutional]\nfilters={f}\nsize=3\npad=1\nactivation=leaky\n"


def test_absurd_filters_rejected_before_allocating() -> None:
    """Refused from the numbers alone (memory, not time, is measured: timings fail on a loaded machine)."""
    import tracemalloc

    text = CONV.format(w=416, h=416, f=2147483647)
    tracemalloc.start()
    try:
        with pytest.raises(ShapeError) as info:
            dw.load("absurd.cfg", cfg_text=text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.line == 6 and info.value.layer == 0  # the [convolutional] section
    assert "overflow" in str(info.value) and "absurd.cfg:6" in str(info.value)
    assert peak < 4 << 20, f"{peak:,} bytes allocated to refuse it"


def test_huge_input_rejected_with_line() -> None:
    """Refused from the numbers alone: nothing of the 3e10-value input is allocated (memory, not time, is
    measured: a timed assertion fails on a loaded machine)."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(CfgError, match=r"huge.cfg:1: \[net\] input 100000x100000x3"):
            dw.load("huge.cfg", cfg_text=CONV.format(w=100000, h=100000, f=16))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"{peak:,} bytes allocated to refuse it"


@pytest.mark.parametrize("value", ["99999999999999999999", "1" * 400, "-2147483649"])
def test_ints_beyond_darknets_int(value: str) -> None:
    with pytest.raises(CfgError, match="32-bit int") as info:
        dw.load("x.cfg", cfg_text=CONV.format(w=16, h=16, f=value))
    assert info.value.line == 7  # the filters= line


CLAIMS = r"""
import struct, sys, json, warnings, zipfile, io
import numpy as np
warnings.simplefilter("ignore")
import darkweights as dw
from darkweights.export import read_arrays
from darkweights.detect.image import load_image
d = sys.argv[1]
cases = {}
def attempt(name, fn):
    try:
        fn()
        cases[name] = "accepted"
    except dw.DarkweightsError as exc:
        cases[name] = type(exc).__name__
# a cfg claiming ~2 GB of weights, a 1 kB file
open(d + "/big.cfg", "w").write("[net]\nwidth=64\nheight=64\nchannels=3\n" +
    "[convolutional]\nfilters=1024\nsize=3\npad=1\nactivation=leaky\n" * 60)
open(d + "/small.weights", "wb").write(struct.pack("<iiiQ", 0, 2, 5, 0) + bytes(1000))
attempt("weights", lambda: dw.load(d + "/big.cfg", d + "/small.weights"))
# safetensors: a header length of 2**62; then an entry whose shape claims 1e12 floats
open(d + "/a.safetensors", "wb").write(struct.pack("<Q", 2 ** 62) + b"{}")
attempt("safetensors header", lambda: read_arrays(d + "/a.safetensors"))
head = json.dumps({"x": {"dtype": "F32", "shape": [1000000, 1000000], "data_offsets": [0, 4 * 10 ** 12]}}).encode()
open(d + "/b.safetensors", "wb").write(struct.pack("<Q", len(head)) + head + bytes(64))
attempt("safetensors entry", lambda: read_arrays(d + "/b.safetensors"))
# npz: a member whose .npy header claims 1e12 floats
npy = io.BytesIO()
np.lib.format.write_array_header_1_0(npy, {"descr": "<f4", "fortran_order": False, "shape": (10 ** 6, 10 ** 6)})
with zipfile.ZipFile(d + "/c.npz", "w") as z:
    z.writestr("x.npy", npy.getvalue() + bytes(64))
attempt("npz member", lambda: read_arrays(d + "/c.npz"))
# images: a JPEG frame header and a PNG IHDR claiming 60000x60000 pixels in a few hundred bytes
from PIL import Image
buf = io.BytesIO(); Image.new("RGB", (8, 8)).save(buf, "JPEG"); jpg = bytearray(buf.getvalue())
i = jpg.find(b"\xff\xc0"); jpg[i + 5:i + 9] = struct.pack(">HH", 60000, 60000)
open(d + "/big.jpg", "wb").write(jpg)
attempt("jpeg", lambda: load_image(d + "/big.jpg"))
jpg[i + 5:i + 9] = struct.pack(">HH", 4000, 4000)
open(d + "/mid.jpg", "wb").write(jpg)
attempt("jpeg within limits", lambda: load_image(d + "/mid.jpg"))
buf = io.BytesIO(); Image.new("RGB", (8, 8)).save(buf, "PNG"); png = bytearray(buf.getvalue())
png[16:24] = struct.pack(">II", 60000, 60000)
open(d + "/big.png", "wb").write(png)
attempt("png", lambda: load_image(d + "/big.png"))
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork + exec
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"cases": cases, "peak_rss_mb": hwm / 1024}))
"""


def test_claims_beyond_the_file_stay_under_50_mb(tmp_path: Path) -> None:
    """Files whose header, cfg or safetensors/npz header claims more than they hold: rejected, and the
    whole process (interpreter, numpy, Pillow included) peaks under 50 MB."""
    pytest.importorskip("PIL")
    if not os.path.exists("/proc/self/status"):
        pytest.skip("peak RSS is read from /proc/self/status (Linux)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", CLAIMS, str(tmp_path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["cases"] == {
        "weights": "WeightsError",
        "safetensors header": "ArrayError",
        "safetensors entry": "ArrayError",
        "npz member": "ArrayError",
        "jpeg": "ImageError",
        "jpeg within limits": "ImageError",
        "png": "ImageError",
    }, result
    assert result["peak_rss_mb"] < 50, result


# -- no code runs from user files ----------------------------------------------------------------------------


class Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # creating the marker file proves the pickle ran


def test_pickle_payloads_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    # .npz with an object array holding the payload
    with open(tmp_path / "evil.npz", "wb") as f:
        np.savez(f, **{"layer_000.biases": np.array([Payload(str(marker))], dtype=object)})
    with pytest.raises(ArrayError, match="pickle|object"):
        dw.export.read_arrays(tmp_path / "evil.npz")
    # a torch.save file whose unpickling would run it
    torch = pytest.importorskip("torch")
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"layers.0.conv.weight": Payload(str(marker))}, f)
    with pytest.raises(ArrayError, match="not a loadable PyTorch state_dict"):
        dw.export.read_arrays(tmp_path / "evil.pt")
    torch.save({"x": Payload(str(marker))}, tmp_path / "evil2.pt")
    with pytest.raises(ArrayError):
        dw.export.read_arrays(tmp_path / "evil2.pt")
    assert not marker.exists()


def test_image_errors_are_library_errors(tmp_path: Path) -> None:
    from darkweights.detect.jpeg import JPEGError, decode_jpeg

    assert issubclass(JPEGError, DarkweightsError) and issubclass(JPEGError, ValueError)
    with pytest.raises(ImageError):
        decode_jpeg(b"\xff\xd8\xff\xc0\x00\x02")
    (tmp_path / "empty.jpg").write_bytes(b"")
    from darkweights.detect.image import load_image

    with pytest.raises(ImageError, match="empty.jpg"):
        load_image(tmp_path / "empty.jpg")


def test_unknown_yolo_point_is_center_with_a_warning() -> None:
    cfg = (
        "[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=42\nsize=1\nactivation=linear\n"
        "[Gaussian_yolo]\nmask=0,1,2\nanchors=1,1,2,2,3,3\nclasses=5\nnum=3\nyolo_point=middle\n"
    )
    with pytest.warns(dw.DarkweightsWarning, match="yolo_point='middle'"):
        net = dw.load("g.cfg", cfg_text=cfg)
    assert net.layers[1].yolo_point == "center"
    with pytest.raises(CfgError, match="yolo_point='middle'") as info:  # hank-ai: fatal
        dw.load("g.cfg", cfg_text=cfg, dialect="hankai")
    assert info.value.line == 14


def test_safetensors_overlap_and_npz_stray_npy(tmp_path: Path) -> None:
    head = json.dumps(
        {
            "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
            "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
        }
    ).encode()
    (tmp_path / "o.safetensors").write_bytes(struct.pack("<Q", len(head)) + head + bytes(24))
    with pytest.raises(ArrayError, match="overlap") as info:
        dw.export.read_arrays(tmp_path / "o.safetensors")
    assert info.value.offset is not None
    np.save(tmp_path / "x.npy", np.zeros(3))
    os.replace(tmp_path / "x.npy", tmp_path / "x.npz")
    with pytest.raises(ArrayError, match="not a readable .npz"):
        dw.export.read_arrays(tmp_path / "x.npz")
    with io.BytesIO() as b:
        np.savez(b, x=np.zeros(2))
        (tmp_path / "t.npz").write_bytes(b.getvalue()[:-30])
    with pytest.raises(ArrayError, match="not a readable .npz"):
        dw.export.read_arrays(tmp_path / "t.npz")


def test_found_by_the_long_run(tmp_path: Path) -> None:
    """Regressions of cases the long fuzz run found: a zero divisor inside a recurrent layer, a corrupt
    .npy header inside an .npz, a negative kernel size."""
    crnn = "[net]\nwidth=8\nheight=8\nchannels=3\n[crnn]\nsize=3\nstride=0\nhidden=4\noutput=4\n"
    with pytest.raises(ShapeError, match="SIGFPE") as info:
        dw.load("z.cfg", cfg_text=crnn)
    assert info.value.line == 5 and info.value.layer == 0
    with pytest.raises(ShapeError, match="negative shape"):
        dw.load("n.cfg", cfg_text=CONV.format(w=16, h=16, f=4).replace("size=3", "size=-1"))
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((2, 3), np.float32))
    raw = bytearray(buf.getvalue())
    i = raw.find(b"'shape': (2, 3)")
    raw[i : i + 15] = b"'shape': (2,\x84 "
    (tmp_path / "h.npz").write_bytes(bytes(raw))
    with pytest.raises(ArrayError, match="corrupt .npy header|not a readable"):
        dw.export.read_arrays(tmp_path / "h.npz")
    with pytest.raises(CfgError, match="expected a list of numbers") as info:  # hank-ai: no digits at all
        dw.load("r.cfg", cfg_text=CONV.format(w=32, h=32, f=4) + "[route]\nlayers=abc\n", dialect="hankai")
    assert info.value.line == 12
    with pytest.raises(CfgError, match="anchors") as info:  # would pad 2**32 anchors before any other check
        dw.load("a.cfg", cfg_text=CONV.format(w=32, h=32, f=30) + "[region]\nnum=2147483647\n")
    assert info.value.layer == 1
