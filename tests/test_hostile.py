"""Hostile input, second round (issue #18): each input that once gave exit 70, ran partial or non-finite weights
as a whole model, or inflated a bomb, is now one located error (exit 2, one `darkweights: error:` line naming the
file and the line / offset / layer / key), leaves no output, and stays within 2x the input file of memory.
Also the one metadata record: a corrupt value in any format (.npz, .safetensors, .pt, .onnx) is such an error."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import darkweights as dw
from darkweights import export
from darkweights.cli import main
from darkweights.errors import ArrayError, CfgError, ShapeError, UnsupportedError
from darkweights.synth import init

REPO = Path(__file__).resolve().parents[1]
SMALL = "[net]\nwidth=16\nheight=16\nchannels=3\n[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\n"
SMALL += "activation=leaky\n[maxpool]\nsize=2\nstride=2\n[convolutional]\nfilters=2\nsize=1\nactivation=linear\n"


def listing(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def fails(capsys, argv: list, *needles: str) -> str:
    """Run the CLI: exit 2, exactly one error line holding every needle, no traceback."""
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("darkweights: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, Path]:
    cfg = tmp_path / "small.cfg"
    cfg.write_text(SMALL)
    init(dw.load(cfg), tmp_path / "small.weights", seed=2)
    return cfg, tmp_path / "small.weights"


# -- the exit-70 inputs ------------------------------------------------------------------------------


def test_init_negative_seed(small, capsys, tmp_path):
    cfg, _ = small
    fails(capsys, ["init", cfg, "-o", tmp_path / "x.weights", "--seed", "-1"], "--seed -1")
    assert not (tmp_path / "x.weights").exists()


def test_implicit_mean_inf(capsys, tmp_path):
    cfg = tmp_path / "imp.cfg"
    cfg.write_text(SMALL + "[implicit]\nfilters=4\nmean=inf\n")
    fails(capsys, ["init", cfg, "-o", tmp_path / "x.weights"], "imp.cfg:18", "layer 3 [implicit]", "not be finite")


def _safetensors(entries: dict, data: bytes) -> bytes:
    head = json.dumps(entries).encode()
    return struct.pack("<Q", len(head)) + head + data


def test_safetensors_header_nested_deep(small, capsys, tmp_path):
    cfg, _ = small
    deep = "[" * 100_000 + "]" * 100_000
    for head in (deep, '{"a": ' + deep + "}", '{"__metadata__": {"header": "' + deep + '"}}'):
        path = tmp_path / "deep.safetensors"
        path.write_bytes(struct.pack("<Q", len(head)) + head.encode())
        fails(capsys, ["pack", path, "-o", tmp_path / "o.weights"], "deep.safetensors", "nested deeper")
        fails(capsys, ["pack", cfg, path, "-o", tmp_path / "o.weights"], "deep.safetensors")
    assert not (tmp_path / "o.weights").exists()


def _export_kinds(net, tmp_path: Path) -> dict[str, Path]:
    """The network's arrays in every format that carries metadata."""
    out = {suffix: tmp_path / f"m{suffix}" for suffix in (".npz", ".safetensors")}
    for path in out.values():
        net.save(path)
    if _has("torch"):
        out[".pt"] = tmp_path / "m.pt"
        net.save(out[".pt"])
        if _has("onnx"):
            out[".onnx"] = tmp_path / "m.onnx"
            net.save(out[".onnx"])
    return out


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _with_meta(path: Path, key: str, value: str) -> None:
    """Rewrite one metadata value of an export in place (each format's own container)."""
    suffix = path.suffix
    if suffix == ".npz":
        with np.load(path) as z:
            entries = {k: z[k] for k in z.files}
        meta = json.loads(str(entries["__darkweights__"]))
        meta[key] = value
        entries["__darkweights__"] = np.array(json.dumps(meta))
        np.savez(path, **entries)
    elif suffix == ".safetensors":
        raw = path.read_bytes()
        (hlen,) = struct.unpack("<Q", raw[:8])
        head = json.loads(raw[8 : 8 + hlen])
        head["__metadata__"][key] = value
        new = json.dumps(head).encode()
        new += b" " * (-(8 + len(new)) % 8)
        # offsets are relative to the data section: it moves with the header, intact
        path.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + hlen :])
    elif suffix == ".pt":
        import torch

        obj = torch.load(path, weights_only=True)
        obj["__darkweights__"][key] = value
        torch.save(obj, path)
    else:
        import onnx

        proto = onnx.load(str(path))
        for p in proto.metadata_props:
            if p.key == key:
                p.value = value
                break
        else:
            e = proto.metadata_props.add()
            e.key, e.value = key, value
        onnx.save(proto, str(path))


@pytest.mark.parametrize(
    "key, value, needle",
    [
        ("cutoff", "abc", "cutoff='abc'"),
        ("header", json.dumps({"major": 0, "minor": 1, "revision": 0, "seen": 2**32}), "seen=4294967296"),
        ("header", "{bad", "header"),
        ("input", '{"width": "x"}', "input="),
        ("dialect", "klingon", "dialect='klingon'"),
    ],
    ids=["cutoff", "seen", "header-json", "input", "dialect"],
)
def test_corrupt_metadata_in_every_format(small, capsys, tmp_path, key, value, needle):
    """The issue's examples (cutoff=abc; seen >= 2**32 with a 16-byte header) and more, in each format: one
    located error, exit 2 (was: a located error in .npz, 'internal error' exit 70 in .onnx)."""
    cfg, weights = small
    files = _export_kinds(dw.load(cfg, weights), tmp_path)
    assert set(files) >= {".npz", ".safetensors"}
    for suffix, path in files.items():
        _with_meta(path, key, value)
        line = fails(capsys, ["pack", path, "-o", tmp_path / "o.weights"], path.name, needle)
        assert "corrupt metadata" in line, (suffix, line)
        assert not (tmp_path / "o.weights").exists()


def test_onnx_external_data_missing_and_dims_against_data(small, capsys, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("torch")
    cfg, weights = small
    model = tmp_path / "m.onnx"
    dw.load(cfg, weights).save(model)
    proto = onnx.load(str(model))
    t = next(t for t in proto.graph.initializer if t.name == "layer_000.weights")
    saved = onnx.TensorProto()
    saved.CopyFrom(t)
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", "gone.bin"
    onnx.save(proto, str(tmp_path / "ext.onnx"))
    fails(capsys, ["pack", tmp_path / "ext.onnx", "-o", tmp_path / "o.weights"], "ext.onnx", "'gone.bin'", "missing")
    (tmp_path / "gone.bin").write_bytes(bytes(10))  # shorter than the dims need
    fails(capsys, ["pack", tmp_path / "ext.onnx", "-o", tmp_path / "o.weights"], "ext.onnx", "need 432 bytes")
    t.CopyFrom(saved)
    t.dims[0] += 1  # dims that disagree with the data
    onnx.save(proto, str(tmp_path / "dims.onnx"))
    fails(capsys, ["pack", tmp_path / "dims.onnx", "-o", tmp_path / "o.weights"], "dims.onnx", "layer_000.weights")
    assert not (tmp_path / "o.weights").exists()


def test_torch_build_refuses_groups_that_do_not_divide(tmp_path):
    pytest.importorskip("torch")
    cfg = tmp_path / "g.cfg"
    cfg.write_text(
        "[net]\nwidth=16\nheight=16\nchannels=232\n"
        "[convolutional]\nfilters=120\ngroups=120\nsize=3\npad=1\nactivation=linear\n"
    )
    with pytest.warns(dw.DarkweightsWarning, match="does not divide"):
        net = dw.load(cfg)  # Darknet computes it (truncated counts): inspect and the layout keep working
    with pytest.raises(UnsupportedError, match="groups=120 does not divide channels=232") as info:
        net.to_torch()
    assert info.value.line == 5 and info.value.layer == 0


@pytest.mark.parametrize("size", ["-0.5", "0"])
def test_kernel_size_below_one(size):
    with pytest.raises(ShapeError, match=f"size={size}: a kernel size below 1") as info:
        dw.load("k.cfg", cfg_text=SMALL.replace("size=3", f"size={size}"))
    assert info.value.line == 8 and info.value.layer == 0


def test_cfg_without_layers_and_too_many_layers():
    with pytest.raises(CfgError, match="no layers after") as info:
        dw.load("z.cfg", cfg_text="[net]\nwidth=8\nheight=8\nchannels=3\n")
    assert info.value.line == 1
    from darkweights.limits import MAX_LAYERS

    text = "[net]\nwidth=8\nheight=8\nchannels=3\n" + "[convolutional]\nfilters=2\nsize=1\n" * (MAX_LAYERS + 5)
    with pytest.raises(CfgError, match="more than 10,000 layers") as info:
        dw.load("big.cfg", cfg_text=text)
    assert info.value.line == 5 + 3 * MAX_LAYERS and info.value.layer == MAX_LAYERS
    dw.load("ok.cfg", cfg_text=text.rsplit("[convolutional]", 6)[0])  # at the limit: read


# -- bombs: refused before anything is inflated, memory within 2x the file ----------------------------------

BOMB = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
from darkweights import export
from darkweights.cli import main
def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) * 1024
import darkweights.export, darkweights.npzfile, numpy, zipfile  # what reading needs, loaded before the baseline
base = hwm()
code = main(sys.argv[1:])
print(json.dumps({"code": code, "growth": hwm() - base}))
"""


def _bomb_npz(path: Path, arrays: dict, meta: str | None, victim: str, floats: int) -> None:
    sys.path.insert(0, str(REPO))
    try:
        from fuzz.cases import _bomb_member, _npy_bytes
    finally:
        sys.path.remove(str(REPO))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        if meta is not None:
            z.writestr("__darkweights__.npy", _npy_bytes(np.array(meta)))
        for k, a in arrays.items():
            if k != victim:
                z.writestr(k + ".npy", _npy_bytes(np.asarray(a)))
        _bomb_member(z, victim + ".npy", (floats,))


@pytest.mark.parametrize("with_meta", [True, False], ids=["embedded-cfg", "no-metadata"])
def test_npz_bomb_refused_before_inflating(small, tmp_path, with_meta):
    """A member declaring (64 Mi,) float32 (256 MB) deflated to ~250 kB: refused by its .npy header against
    the cfg (or, with no cfg to say, by the archive's size), peak RSS growth under 2x the file + 16 MB."""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("peak RSS is read from /proc/self/status (Linux)")
    cfg, weights = small
    net = dw.load(cfg, weights)
    meta = json.dumps(export.metadata(net)) if with_meta else None
    bomb = tmp_path / "bomb.npz"
    _bomb_npz(bomb, dict(net.arrays()), meta, "layer_000.biases", 64 << 20)
    size = bomb.stat().st_size
    assert size < 1 << 20
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    argv = ["pack", bomb, "-o", tmp_path / "o.weights"] if with_meta else ["pack", cfg, bomb, "-o", tmp_path / "o2"]
    proc = subprocess.run(
        [sys.executable, "-c", BOMB, *map(str, argv)], capture_output=True, text=True, env=env, timeout=300
    )
    result = json.loads(proc.stdout)
    assert result["code"] == 2, proc.stderr
    assert "bomb.npz" in proc.stderr and "Traceback" not in proc.stderr
    assert ("expected (4,)" if with_meta else "layer_000.biases has shape (67108864,)") in proc.stderr
    assert result["growth"] < 2 * size + (16 << 20), result
    assert sorted(os.listdir(tmp_path)) == ["bomb.npz", "small.cfg", "small.weights"]
    # no cfg at all: the archive alone bounds what may be inflated
    meta_less = tmp_path / "bare.npz"
    _bomb_npz(meta_less, dict(net.arrays()), None, "layer_000.biases", 64 << 20)
    with pytest.raises(ArrayError, match="inflate to .* no cfg"):
        export.read_arrays(meta_less)


def test_zip_directory_that_lies(small, tmp_path):
    cfg, weights = small
    net = dw.load(cfg, weights)
    sys.path.insert(0, str(REPO))
    try:
        from fuzz.cases import _bomb_member
    finally:
        sys.path.remove(str(REPO))
    path = tmp_path / "lie.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("__darkweights__.npy", _npy(np.array(json.dumps(export.metadata(net)))))
        _bomb_member(z, "layer_000.biases.npy", (1024,))
        z.getinfo("layer_000.biases.npy").file_size = 1 << 40  # the central directory claims 1 TB
    with pytest.raises(ArrayError, match="more than compression can expand") as info:
        export.read_arrays(path)
    assert info.value.file == str(path) and info.value.offset is not None


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_array_shapes_checked_against_the_cfg_in_every_format(small, tmp_path):
    """A member/entry/initializer whose declared shape is not the cfg's: refused naming the array and layer."""
    cfg, weights = small
    net = dw.load(cfg, weights)
    arrays = dict(net.arrays(copy=True))
    arrays["layer_002.weights"] = np.zeros((2, 4), np.float32)  # (2, 4, 1, 1) in the cfg
    meta = export.metadata(net)
    np.savez(tmp_path / "s.npz", **arrays, __darkweights__=np.array(json.dumps(meta)))
    with pytest.raises(ArrayError, match=r"layer_002.weights has shape \(2, 4\), expected \(2, 4, 1, 1\)") as info:
        export.read_arrays(tmp_path / "s.npz")
    assert info.value.layer == 2 and info.value.file == str(tmp_path / "s.npz")


# -- partial files, NaN/Inf, --cutoff --------------------------------------------------------------------


@pytest.fixture
def partial(small, tmp_path):
    cfg, weights = small
    net = dw.load(cfg)
    end = max(p.end for p in net.layout() if p.layer == 0)
    (tmp_path / "part.weights").write_bytes(weights.read_bytes()[:end])
    return cfg, tmp_path / "part.weights"


def test_partial_weights_refused_where_they_would_run(partial, capsys, tmp_path):
    cfg, part = partial
    image = REPO / "src" / "darkweights" / "data" / "dog.jpg"
    before = listing(tmp_path)
    needles = ("part.weights", "layer 2", "holds layers 0..1 of 3", "first missing is layer 2 [convolutional]")
    if _has("onnx") and _has("torch"):
        fails(capsys, ["export", cfg, part, "-o", tmp_path / "p.onnx"], *needles, "--allow-partial")
    if _has("cv2") and _has("torch"):
        fails(capsys, ["verify", cfg, part, "--against", "opencv"], *needles)
    assert listing(tmp_path) == before
    with pytest.raises(dw.WeightsError, match="first missing is layer 2"):
        dw.load(cfg, part).check_usable("val")  # the one policy other commands call
    dw.load(cfg, part).check_usable("val", allow_partial=True)
    # inspect, extract and pack keep reading them
    assert main(["inspect", str(cfg), str(part)]) == 0
    assert main(["extract", str(cfg), str(part), "-o", str(tmp_path / "p.npz")]) == 0
    if _has("PIL") and _has("torch"):
        detector = REPO / "tests" / "data" / "yolov3-tiny.cfg"
        weights = tmp_path / "det.weights"
        init(dw.load(detector), weights)
        head = max(p.end for p in dw.load(detector).layout() if p.layer <= 4)
        weights.write_bytes(weights.read_bytes()[:head])
        fails(capsys, ["detect", detector, weights, image], "det.weights", "partial weights file")
        capsys.readouterr()
        assert main(["detect", str(detector), str(weights), str(image), "--allow-partial", "--json"]) == 0


def test_negative_cutoff_refused(small, capsys, tmp_path):
    cfg, weights = small
    with pytest.raises(SystemExit) as info:
        main(["extract", str(cfg), str(weights), "-o", str(tmp_path / "x.npz"), "--cutoff", "-1"])
    assert info.value.code == 2
    assert "not a Python slice" in capsys.readouterr().err
    with pytest.raises(dw.DarkweightsError, match="cutoff=-1") as err:
        dw.load(cfg, weights, cutoff=-1)
    assert err.value.file == str(weights)
    assert not (tmp_path / "x.npz").exists()


def test_nonfinite_policy(small, capsys, tmp_path):
    cfg, weights = small
    raw = bytearray(weights.read_bytes())
    p = next(p for p in dw.load(cfg).layout() if p.key == "layer_002.weights")
    raw[p.offset : p.offset + 8] = struct.pack("<2f", float("nan"), float("inf"))
    bad = tmp_path / "nan.weights"
    bad.write_bytes(bytes(raw))
    capsys.readouterr()
    assert main(["inspect", str(cfg), str(bad)]) == 0
    assert "NaN/Inf: 2 values in 1 arrays (layers 2)" in capsys.readouterr().out  # the footer, without --stats
    with pytest.warns(dw.DarkweightsWarning, match="2 NaN/Inf values in 1 arrays"):
        export.export_arrays(dw.load(cfg, bad), tmp_path / "nan.npz")  # extract warns, writes them
    fails(capsys, ["pack", tmp_path / "nan.npz", "-o", tmp_path / "back.weights"], "nan.npz", "2 NaN/Inf")
    capsys.readouterr()
    assert main(["pack", str(tmp_path / "nan.npz"), "-o", str(tmp_path / "back.weights"), "--allow-nonfinite"]) == 0
    assert (tmp_path / "back.weights").read_bytes() == bad.read_bytes()  # extract + pack: the same file
    with pytest.raises(dw.WeightsError, match="layer_002.weights holds 2 NaN/Inf") as info:
        dw.load(cfg, bad).check_usable("detect")
    assert info.value.offset == p.offset and info.value.layer == 2
    if _has("onnx") and _has("torch"):
        fails(capsys, ["export", cfg, bad, "-o", tmp_path / "n.onnx"], "nan.weights", "--allow-nonfinite")
        capsys.readouterr()
        assert main(["export", str(cfg), str(bad), "-o", str(tmp_path / "n.onnx"), "--allow-nonfinite"]) == 0


# -- cheap checks first; the .pt message; CLI rough edges --------------------------------------------------


def test_detect_checks_images_before_loading_torch(tmp_path):
    (tmp_path / "notes.jpg").write_text("hello")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    code = (
        "import sys\nfrom darkweights.cli import main\ncode = main(sys.argv[1:])\nprint('torch' in sys.modules, code)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "detect", str(tmp_path / "notes.jpg")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.stdout.split() == ["False", "2"], proc.stderr
    assert "notes.jpg, byte 0: not an image" in proc.stderr


def test_pt_refusal_is_a_whole_sentence(tmp_path):
    torch = pytest.importorskip("torch")

    class Payload:
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save({"x": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(ArrayError) as info:
        export.read_arrays(tmp_path / "evil.pt")
    message = info.value.message
    assert "which would run code: refused" in message and message.endswith("(weights_only)"), message


def test_pt_round_trip_carries_the_cfg(small, tmp_path):
    pytest.importorskip("torch")
    cfg, weights = small
    dw.load(cfg, weights).save(tmp_path / "m.pt")
    assert export.pack(tmp_path / "m.pt", tmp_path / "back.weights") > 0
    assert (tmp_path / "back.weights").read_bytes() == weights.read_bytes()


def test_did_you_mean_and_bom(capsys, tmp_path):
    fails(capsys, ["inspect", "yolov4-tiyn"], "did you mean 'yolov4-tiny' (a bundled model)?")
    cfg = tmp_path / "t.cfg"
    cfg.write_text(SMALL.replace("[maxpool]", "[maxpol]"))
    fails(capsys, ["inspect", cfg], "t.cfg:11", "did you mean [maxpool]?")
    cfg.write_text(SMALL.replace("activation=leaky", "activation=leakyy"))
    fails(capsys, ["inspect", cfg], "t.cfg:10", "did you mean 'leaky'?")
    cfg.write_text(SMALL.replace("filters=4", "filters=4\nfliters=4"))
    with pytest.warns(dw.DarkweightsWarning, match="fliters=4 .*did you mean 'filters'"):
        dw.load(cfg)
    fails(capsys, ["inspect", cfg, "--dialect", "hankai"], "t.cfg:8", "did you mean 'filters'?")  # an error there
    cfg.write_bytes(b"\xef\xbb\xbf" + SMALL.encode())
    with pytest.warns(dw.DarkweightsWarning, match="byte-order mark"):
        assert len(dw.load(cfg)) == 3


def test_bundled_names_where_a_cfg_is_taken(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["extract", "yolo-fastest", "-o", "yf.npz"]) == 0  # the bundled weights come along
    if _has("PIL") and _has("torch"):
        capsys.readouterr()
        image = str(REPO / "src" / "darkweights" / "data" / "dog.jpg")
        assert main(["detect", "yolo-fastest", image, "--json"]) == 0
        records = json.loads(capsys.readouterr().out)
        assert records and all(not r["class"].isdigit() for r in records)  # its coco.names came along too


def test_export_checks_free_space_before_tracing(small, tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    pytest.importorskip("torch")
    import shutil

    from darkweights.errors import OutputError

    cfg, weights = small
    net = dw.load(cfg, weights)
    built = []
    monkeypatch.setattr("darkweights.torch.build", lambda *a, **k: built.append(1))
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=100))
    with pytest.raises(OutputError, match="needs about .* bytes but only 100 are free"):
        net.save(tmp_path / "m.onnx")
    assert not built and not (tmp_path / "m.onnx").exists()


def test_every_positional_has_help_and_every_help_ends_with_an_example(monkeypatch):
    import argparse

    from darkweights import cli

    monkeypatch.setenv("COLUMNS", "80")
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        for a in p._actions:
            if not a.option_strings:
                assert a.help, f"darkweights {name}: positional {a.dest} has no help"
        last = p.format_help().rstrip().splitlines()[-1]
        assert last.startswith(f"example: darkweights {name}"), (name, last)
    assert parser.format_help().rstrip().splitlines()[-1].startswith("example: darkweights ")
