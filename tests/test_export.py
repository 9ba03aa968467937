"""extract -> pack: .npz and .safetensors exports turn back into the exact .weights bytes."""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest

import darkweights as dw
from darkweights.cli import main
from darkweights.export import export_arrays, read_arrays
from darkweights.synth import init

from .conftest import DATA, FIXTURES, MODELS, fixture_cases, need_shared


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _cases() -> list[tuple[str, str]]:
    out = [
        (str(MODELS / m / f"{m}.cfg"), str(MODELS / m / f"{m}.weights"))
        for m in ("yolo-fastest-1.1", "yolo-fastest-1.1-xl")
    ]
    out += [(str(FIXTURES / c / "model.cfg"), str(FIXTURES / c / "model.weights")) for c in fixture_cases()]
    return out


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
@pytest.mark.parametrize("cfg, weights", _cases(), ids=lambda v: v.split("/")[-2] if "/" in v else v)
def test_extract_pack_sha256(cfg, weights, fmt, tmp_path, quiet):
    need_shared(FIXTURES)
    arrays = tmp_path / f"a.{fmt}"
    out = tmp_path / "out.weights"
    assert main(["extract", cfg, weights, "-o", str(arrays)]) == 0
    assert main(["pack", cfg, str(arrays), "-o", str(out)]) == 0
    assert sha(out) == sha(weights)
    if fmt == "safetensors":  # the file alone carries the cfg and header
        out2 = tmp_path / "out2.weights"
        assert main(["pack", str(arrays), "-o", str(out2)]) == 0
        assert sha(out2) == sha(weights)


def test_bundled_extract_pack(tmp_path):
    m = dw.default_model()
    for fmt in ("npz", "safetensors"):
        a, out = tmp_path / f"m.{fmt}", tmp_path / f"m.{fmt}.weights"
        assert main(["extract", str(m.cfg), str(m.weights), "-o", str(a)]) == 0
        assert main(["pack", str(m.cfg), str(a), "-o", str(out)]) == 0
        assert out.read_bytes() == m.weights.read_bytes()


def test_safetensors_layout_is_standard(tmp_path):
    """The file is plain safetensors: other readers see the same names, shapes and values."""
    net = dw.load(DATA / "yolov4-tiny.cfg", width=96, height=96)
    w = tmp_path / "r.weights"
    init(net, w, seed=2)
    net.load_weights(w)
    st = tmp_path / "r.safetensors"
    export_arrays(net, st)
    raw = st.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    assert header["__metadata__"]["format"] == "darkweights"
    assert header["layer_000.weights"] == {
        "dtype": "F32",
        "shape": [32, 3, 3, 3],
        "data_offsets": header["layer_000.weights"]["data_offsets"],
    }
    arrays, meta = read_arrays(st)
    for k, v in net.arrays().items():
        assert np.array_equal(arrays[k], v)
    try:
        from safetensors.numpy import load_file
    except ImportError:
        return
    ref = load_file(str(st))
    assert set(ref) == set(arrays) | {"__darknet_header__"}
    assert all(np.array_equal(ref[k], arrays[k]) for k in arrays)
    assert ref["__darknet_header__"].tobytes() == w.read_bytes()[:20]


def test_safetensors_data_section_is_the_weights_file(tmp_path):
    m = dw.default_model()
    st = tmp_path / "m.safetensors"
    export_arrays(dw.load(m.cfg, m.weights), st)
    raw = st.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert (8 + n) % 8 == 0 and raw[8 + n :] == m.weights.read_bytes()


def test_extract_subset_of_layers(tmp_path):
    m = dw.default_model()
    a = tmp_path / "sub.npz"
    assert main(["extract", str(m.cfg), str(m.weights), "-o", str(a), "--layers", "0,2-3"]) == 0
    arrays, meta = read_arrays(a)
    assert sorted({k.split(".")[0] for k in arrays}) == ["layer_000", "layer_002", "layer_003"]
    assert meta["dialect"] == "alexeyab" and "[net]" in meta["cfg"]


def test_edit_arrays_then_pack(tmp_path):
    """The way back after editing numbers: change one array, pack, read the change back."""
    m = dw.default_model()
    a = tmp_path / "m.npz"
    export_arrays(dw.load(m.cfg, m.weights), a)
    arrays, meta = read_arrays(a)
    arrays["layer_000.biases"] = arrays["layer_000.biases"] + 1
    out = tmp_path / "edited.weights"
    dw.save_weights(arrays, out, cfg=m.cfg, header=json.loads(meta["header"]))
    back = dw.load(m.cfg, out).arrays()
    orig = dw.load(m.cfg, m.weights).arrays()
    assert np.array_equal(back["layer_000.biases"], orig["layer_000.biases"] + 1)
    assert np.array_equal(back["layer_001.weights"], orig["layer_001.weights"])


def test_pack_from_torch_state_dict(tmp_path):
    """Fine-tuned in PyTorch, saved with torch.save: pack it home byte-identically."""
    torch = pytest.importorskip("torch", reason="the [torch] extra is not installed")
    m = dw.default_model()
    net = dw.load(m.cfg, m.weights)
    pt = tmp_path / "model.pt"
    torch.save(net.to_torch().state_dict(), pt)
    out = tmp_path / "back.weights"
    assert main(["pack", str(m.cfg), str(pt), "-o", str(out)]) == 0
    # the header is not part of a state_dict: the default AlexeyAB header (seen=0) is written
    assert out.read_bytes()[20:] == m.weights.read_bytes()[20:]
    bad = tmp_path / "evil.pt"
    torch.save({"layers.0.conv.weight": object()}, bad)
    assert main(["pack", str(m.cfg), str(bad), "-o", str(tmp_path / "x.weights")]) == 2
    assert not (tmp_path / "x.weights").exists()
