"""ONNX export (darkweights.onnx): every fixture exported with every layer as an output runs in onnxruntime
within verify's end-to-end rule against Darknet's own outputs; the file packs back to the same bytes; dynamic
batch; decoded / NMS outputs against ``detect``; CLI; external data; OpenCV's ONNX importer.

Fixtures: tests/data/oracle (always) and ../shared/fixtures (skipped, saying so, when absent)."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the [torch] extra is not installed")
onnx = pytest.importorskip("onnx", reason="the [onnx] extra (onnx) is not installed")
ort = pytest.importorskip("onnxruntime", reason="the [onnx] extra (onnxruntime) is not installed")

import darkweights  # noqa: E402
from darkweights import ArrayError, DarkweightsWarning, verify  # noqa: E402
from darkweights.cli import main  # noqa: E402
from darkweights.onnx import home  # noqa: E402
from darkweights.onnx.exporter import export_onnx  # noqa: E402

from .conftest import DATA, FIXTURES, MODELS, SHARED, fixture_cases, need_shared  # noqa: E402

ORACLE = DATA / "oracle"
BUNDLED = Path(darkweights.__file__).parent / "data"
ORACLE_CASES = sorted(p.parent.name for p in ORACLE.glob("*/layers.json"))
SHARED_CASES = [c for c in fixture_cases() if (FIXTURES / c / "layers.json").exists()]
OPTIONS = {"xnor_unfused": {"bug_compatible": True}}  # Darknet's unfused CPU xnor path skips BN


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def export_fixture(fixture: Path, out: Path, **options) -> tuple[dict, bytes]:
    """Export a fixture's model; returns its metadata and the weights file's bytes (made again in memory
    for the cases that do not store them)."""
    net, meta, _, _ = verify.load_fixture(fixture)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DarkweightsWarning)
        export_onnx(
            net, out, all_outputs=True, fuse_bn=bool(meta.get("fuse")), **{**OPTIONS.get(fixture.name, {}), **options}
        )
    source = net.weights_source
    return meta, bytes(source) if not isinstance(source, (str, Path)) else Path(source).read_bytes()


def check_fixture(fixture: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    meta, weights = export_fixture(fixture, model, batch="dynamic")
    report = home.compare_onnx_with_fixture(model, fixture)
    saved = [l["index"] for l in meta["layers"] if l.get("saved", True)]
    assert [r.index for r in report.rows] == saved  # every layer compared
    assert report.ok, report.to_table(only_failures=True)
    out = tmp_path / "back.weights"
    if meta.get("fuse"):  # BN statistics are gone: refused unless asked, then identity BN
        with pytest.raises(ArrayError, match="cannot be recovered"):
            home.pack_onnx(model, out)
        assert not out.exists()
        home.pack_onnx(model, out, allow_fused=True)
        assert out.stat().st_size == len(weights)
    elif "numload" in (fixture / "model.cfg").read_text():
        # pjreddie numload: the file holds K of the filters, its saver writes all of them; nothing to pack back
        with pytest.raises(ArrayError, match="has no initializer"):
            home.pack_onnx(model, out)
        assert not out.exists()
    else:
        home.pack_onnx(model, out)
        assert out.read_bytes() == weights


@pytest.mark.parametrize("name", ORACLE_CASES)
def test_oracle_fixture_exports_exactly(name: str, tmp_path: Path) -> None:
    check_fixture(ORACLE / name, tmp_path)


@pytest.mark.parametrize("name", SHARED_CASES or ["(shared fixtures absent)"])
def test_shared_fixture_exports_exactly(name: str, tmp_path: Path) -> None:
    check_fixture(need_shared(FIXTURES) / name, tmp_path)


def small_fixture() -> Path:
    return FIXTURES / "yolov4-tiny" if (FIXTURES / "yolov4-tiny").exists() else ORACLE / "hankai_tiny"


def test_full_check_metadata_and_dynamic_batch(tmp_path: Path) -> None:
    fixture = small_fixture()
    net, meta, x, _ = verify.load_fixture(fixture)
    model = tmp_path / "m.onnx"
    names = [f"class{i}" for i in range(80)]
    info = export_onnx(net, model, batch="dynamic", names=names)
    proto = onnx.load(str(model))
    onnx.checker.check_model(proto, full_check=True)
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["format"] == "darkweights" and props["cfg"] == net.cfg.text
    assert props["darkweights_version"] == darkweights.__version__ and props["dialect"] == net.dialect.name
    assert json.loads(props["input"]) == {"width": net.width, "height": net.height, "channels": net.channels}
    assert json.loads(props["names"]) == names
    heads = [l.index for l in net.layers if l.type == "yolo"]
    assert info.outputs == [f"layer_{i:03d}" for i in heads] == json.loads(props["outputs"])
    assert set(json.loads(props["anchors"])) == set(info.outputs)
    assert [i.name for i in proto.graph.input] == ["input"]
    assert info.opset == home_opset(proto) >= 18
    # stable names: every stored array is an initializer under its export key
    assert {p.key for p in net.params()} <= {t.name for t in proto.graph.initializer}
    model_t = net.to_torch()
    rng = np.random.default_rng(1)
    for n in (1, 8):
        xs = rng.random((n,) + tuple(net.input.chw), dtype=np.float32)
        got = home.run_onnx(model, xs)
        want = model_t(torch.from_numpy(xs))
        for name, w in zip(info.outputs, want):
            assert got[name].shape == tuple(w.shape)
            rel = verify.compare_arrays(got[name], w.numpy())[2]
            assert rel <= 1e-4, (n, name, rel)


def home_opset(proto) -> int:
    return max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


@pytest.mark.parametrize("opset", [13, 17])
def test_older_opsets_and_fp16(opset: int, tmp_path: Path) -> None:
    fixture = small_fixture()
    export_fixture(fixture, tmp_path / "m.onnx", opset=opset)
    assert home_opset(onnx.load(str(tmp_path / "m.onnx"))) == opset
    assert home.compare_onnx_with_fixture(tmp_path / "m.onnx", fixture).ok
    if opset == 13:
        export_fixture(fixture, tmp_path / "h.onnx", fp16=True)
        proto = onnx.load(str(tmp_path / "h.onnx"))
        assert proto.graph.initializer[0].data_type == onnx.TensorProto.FLOAT16
        assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        report = home.compare_onnx_with_fixture(tmp_path / "h.onnx", fixture, tolerance=2e-2)  # float16 rounding
        assert report.ok, report.to_table(only_failures=True)
        with pytest.raises(ArrayError, match="float16"):
            home.pack_onnx(tmp_path / "h.onnx", tmp_path / "x.weights")


@pytest.mark.parametrize("cfg", ["yolov3-tiny", "synth_geometry"])
def test_fp16_export_of_padding_maxpools(cfg: str, tmp_path: Path) -> None:
    """Darknet pads maxpool windows with -FLT_MAX, which float16 cannot hold: its lowest finite value instead."""
    import io

    from darkweights.synth import init

    sizes = {"width": 128, "height": 128} if cfg == "yolov3-tiny" else {}
    net = darkweights.load(DATA / f"{cfg}.cfg", **sizes)
    assert any(l.type == "maxpool" and l.stride_x == 1 for l in net.layers)  # the padding kind
    buf = io.BytesIO()
    init(net, buf, seed=1)
    net = darkweights.load(DATA / f"{cfg}.cfg", buf.getvalue(), **sizes)
    info = export_onnx(net, tmp_path / "h.onnx", fp16=True)
    x = np.random.default_rng(0).random((1,) + tuple(net.input.chw), dtype=np.float32)
    got = home.run_onnx(tmp_path / "h.onnx", x)
    want = net.to_torch()(torch.from_numpy(x))
    for name, w in zip(info.outputs, want if isinstance(want, list) else [want]):
        assert verify.compare_arrays(got[name], w.numpy())[2] <= 2e-2  # float16 rounding


def test_cli_export_verify_pack(tmp_path: Path, capsys) -> None:
    fixture = ORACLE / "hankai_tiny"
    cfg, weights = str(fixture / "model.cfg"), str(fixture / "model.weights")
    model = str(tmp_path / "m.onnx")
    assert main(["export", cfg, weights, "-o", model, "--all-outputs", "--dialect", "hankai"]) == 0
    assert main(["verify", "--onnx", model, "--fixture", str(fixture)]) == 0
    out = capsys.readouterr().out
    assert "first diverging layer: none" in out and "onnx end-to-end" in out
    assert main(["verify", "--onnx", model, cfg, weights, "--dialect", "hankai", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"]
    back = tmp_path / "back.weights"
    assert main(["pack", model, "-o", str(back)]) == 0
    assert sha(back) == sha(fixture / "model.weights")
    assert main(["pack", cfg, model, "-o", str(tmp_path / "b2.weights"), "--dialect", "hankai"]) == 0
    assert sha(tmp_path / "b2.weights") == sha(fixture / "model.weights")
    # errors: one line, exit 2, no output file
    assert main(["export", cfg, weights, "-o", str(tmp_path / "x.onnx"), "--opset", "11", "--dialect", "hankai"]) == 2
    assert main(["export", cfg, weights, "-o", str(tmp_path / "x.onnx"), "--batch", "0", "--dialect", "hankai"]) == 2
    assert main(["export", cfg, weights, "-o", str(tmp_path / "x.onnx"), "--opset", "99", "--dialect", "hankai"]) == 2
    assert main(["export", cfg, "-o", str(tmp_path / "x.onnx")]) == 2  # a cfg alone: no random weights exported
    assert not (tmp_path / "x.onnx").exists()
    err = capsys.readouterr().err
    assert "--opset 11: the export writes opsets 13 to" in err and "--opset 99" in err
    assert "layer" not in err and "Torch IR" not in err  # a whole-export problem, said before tracing
    assert "no weights to export" in err
    # the bundled model by name brings its own weights
    assert main(["export", "yolo-fastest-1.1", "-o", str(tmp_path / "yf.onnx"), "-q"]) == 0
    assert home.model_metadata(onnx.load(str(tmp_path / "yf.onnx")))["cfg_name"] == "yolo-fastest-1.1.cfg"


def test_a_diverging_graph_is_reported(tmp_path: Path) -> None:
    """Not a tautology: tamper with one stored array and the first diverging layer is that one."""
    fixture = ORACLE / "hankai_tiny"
    model = tmp_path / "m.onnx"
    export_fixture(fixture, model)
    proto = onnx.load(str(model))
    from onnx import numpy_helper

    target = next(t for t in proto.graph.initializer if t.name == "layer_003.weights")
    arr = numpy_helper.to_array(target).copy()
    arr.reshape(-1)[0] += 0.5
    target.CopyFrom(numpy_helper.from_array(arr, target.name))
    onnx.save(proto, str(model))
    report = home.compare_onnx_with_fixture(model, fixture)
    assert not report.ok and report.first_divergence.index == 3


def test_the_streamed_file_is_what_onnx_serializes(tmp_path: Path) -> None:
    """The writer frames the initializers itself (:mod:`darkweights.onnx.writer`): the file must be, byte for
    byte, what onnx serializes for the same model, whether the arrays come from the weights file or memory."""
    fixture = small_fixture()
    net = verify.load_fixture(fixture)[0]
    for name, options in [
        ("raw", {}),
        ("fp16", {"fp16": True}),
        ("fused", {"fuse_bn": True}),
        ("nms", {"outputs": "nms", "fuse_bn": True}),
    ]:
        out = tmp_path / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DarkweightsWarning)
            info = export_onnx(net, out, **options)
        data = out.read_bytes()
        assert len(data) == info.bytes
        assert onnx.load_from_string(data).SerializeToString() == data, name
    # the same model from the file's bytes in memory: the same graph and initializers
    again = darkweights.load(fixture / "model.cfg", (fixture / "model.weights").read_bytes(), dialect=net.dialect)
    export_onnx(again, tmp_path / "memory.onnx")
    graphs = [onnx.load(str(tmp_path / n)).graph.SerializeToString() for n in ("memory.onnx", "raw.onnx")]
    assert graphs[0] == graphs[1]


def test_arrays_changed_in_place_are_exported_as_they_are(tmp_path: Path) -> None:
    """The initializers are read from the (copy-on-write) mapped arrays, whose pages the writer hands back
    to the OS as it goes: a value changed in memory is exported, stays changed, and the file is untouched."""
    fixture = ORACLE / "hankai_tiny"
    weights = tmp_path / "model.weights"
    weights.write_bytes((fixture / "model.weights").read_bytes())
    net = darkweights.load(fixture / "model.cfg", weights, dialect="hankai")
    arrays = net.arrays()
    arrays["layer_003.weights"].flat[5] = 7.25
    export_onnx(net, tmp_path / "m.onnx")
    assert arrays["layer_003.weights"].flat[5] == 7.25
    assert weights.read_bytes() == (fixture / "model.weights").read_bytes()
    home.pack_onnx(tmp_path / "m.onnx", tmp_path / "back.weights")
    back = darkweights.load(fixture / "model.cfg", tmp_path / "back.weights", dialect="hankai").arrays()
    assert back["layer_003.weights"].flat[5] == 7.25
    assert all(np.array_equal(back[k], v) for k, v in arrays.items())


def test_a_model_over_2_gib_is_refused_before_writing() -> None:
    import io

    from darkweights import UnsupportedError
    from darkweights.onnx.writer import Blob, write_model

    def never():
        raise AssertionError("the data must not be read")

    proto = onnx.helper.make_model(onnx.helper.make_graph([], "g", [], []))
    count = 2**29 + 1  # 2 GiB + 4 bytes of float32
    f = io.BytesIO()
    with pytest.raises(UnsupportedError, match="2 GiB"):
        write_model(f, proto, [Blob("big", (count,), onnx.TensorProto.FLOAT, 4 * count, never)])
    assert f.getvalue() == b""


def test_a_model_too_big_for_one_file_is_refused_before_the_trace(tmp_path: Path, monkeypatch) -> None:
    from darkweights import UnsupportedError
    from darkweights.onnx import exporter, trace

    def no_trace(*args, **kwargs):
        raise AssertionError("traced")

    net = verify.load_fixture(ORACLE / "hankai_tiny")[0]
    monkeypatch.setattr(exporter, "MAX_PROTO", 1000)
    monkeypatch.setattr(trace, "trace_model", no_trace)
    with pytest.raises(UnsupportedError, match="2 GiB"):
        export_onnx(net, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_arrays_of_equal_value_stay_distinct_initializers(tmp_path: Path) -> None:
    """PyTorch's exporter merges parameters of equal value; a BN layer whose rolling mean equals its biases
    must still read its own arrays (and pack back to the same bytes)."""
    fixture = ORACLE / "hankai_tiny"
    net = verify.load_fixture(fixture)[0]
    params = {p.key: p for p in net.params()}
    data = bytearray((fixture / "model.weights").read_bytes())
    bias, mean = params["layer_000.biases"], params["layer_000.rolling_mean"]
    data[mean.offset : mean.end] = data[bias.offset : bias.end]
    net = darkweights.load(fixture / "model.cfg", bytes(data), dialect=net.dialect)
    export_onnx(net, tmp_path / "m.onnx")
    proto = onnx.load(str(tmp_path / "m.onnx"))
    bn = next(n for n in proto.graph.node if n.op_type == "BatchNormalization" and n.name.startswith("/layers.0/"))
    assert list(bn.input[1:]) == [
        "layer_000.scales",
        "layer_000.biases",
        "layer_000.rolling_mean",
        "layer_000.rolling_variance",
    ]
    home.pack_onnx(tmp_path / "m.onnx", tmp_path / "back.weights")
    assert (tmp_path / "back.weights").read_bytes() == bytes(data)


def test_a_shared_convolution_reads_the_owners_initializers(tmp_path: Path) -> None:
    """``share_index``: the sharing layer's Conv reads the owner's stored arrays, not a copy in a constant."""
    import io

    from darkweights.synth import init

    net = darkweights.load(DATA / "synth_geometry.cfg")
    buf = io.BytesIO()
    init(net, buf, seed=3)
    net = darkweights.load(DATA / "synth_geometry.cfg", buf.getvalue())
    sharing = next(l for l in net.layers if getattr(l, "share_index", None) is not None)
    info = export_onnx(net, tmp_path / "m.onnx", all_outputs=True)
    proto = onnx.load(str(tmp_path / "m.onnx"))
    conv = next(n for n in proto.graph.node if n.op_type == "Conv" and n.name.startswith(f"/layers.{sharing.index}/"))
    assert conv.input[1] == f"layer_{sharing.share_index:03d}.weights"
    big_constants = [
        n.name
        for n in proto.graph.node
        if n.op_type == "Constant"
        and n.name.startswith(f"/layers.{sharing.index}/")
        and any(a.t.dims and np.prod(a.t.dims) > 4 for a in n.attribute)
    ]
    assert big_constants == []
    x = np.random.default_rng(0).random((1,) + tuple(net.input.chw), dtype=np.float32)
    got = home.run_onnx(tmp_path / "m.onnx", x)
    want = net.to_torch()(torch.from_numpy(x), all_outputs=True)
    for name, w in zip(info.outputs, want):
        assert verify.compare_arrays(got[name], w.numpy())[2] <= 1e-5, name


def test_external_data_outside_the_folder_is_refused(tmp_path: Path) -> None:
    fixture = ORACLE / "hankai_tiny"
    model = tmp_path / "m.onnx"
    export_onnx(verify.load_fixture(fixture)[0], model)  # unfused: packs back to the same bytes
    proto = onnx.load(str(model))
    t = next(t for t in proto.graph.initializer if t.name == "layer_000.weights")
    (tmp_path / "data.bin").write_bytes(t.raw_data or np.asarray(onnx.numpy_helper.to_array(t)).tobytes())
    for location in ("../data.bin", str(tmp_path / "data.bin")):
        sub = tmp_path / "sub"
        sub.mkdir(exist_ok=True)
        t.ClearField("raw_data")
        t.ClearField("float_data")
        del t.external_data[:]
        t.data_location = onnx.TensorProto.EXTERNAL
        entry = t.external_data.add()
        entry.key, entry.value = "location", location
        with open(sub / "evil.onnx", "wb") as f:
            f.write(proto.SerializeToString())
        with pytest.raises(ArrayError, match="outside the model's folder"):
            home.pack_onnx(sub / "evil.onnx", tmp_path / "x.weights")
        assert not (tmp_path / "x.weights").exists()
    # inside the folder: read as usual
    t.external_data[0].value = "data.bin"
    with open(tmp_path / "ok.onnx", "wb") as f:
        f.write(proto.SerializeToString())
    home.pack_onnx(tmp_path / "ok.onnx", tmp_path / "ok.weights")
    assert sha(tmp_path / "ok.weights") == sha(fixture / "model.weights")


# -- decoded / nms against detect -------------------------------------------------------------


def real_models() -> list[tuple[Path, Path]]:
    out = [(BUNDLED / "yolo-fastest-1.1.cfg", BUNDLED / "yolo-fastest-1.1.weights")]
    xl = MODELS / "yolo-fastest-1.1-xl"
    if xl.exists():
        out.append((xl / "yolo-fastest-1.1-xl.cfg", xl / "yolo-fastest-1.1-xl.weights"))
    return out


def photos() -> list[Path]:
    shared = [SHARED / "images" / f"{n}.jpg" for n in ("dog", "giraffe", "horses", "person")]
    return [p for p in shared if p.exists()] or [BUNDLED / "dog.jpg"]


_IMAGES: list = []


def images() -> list[np.ndarray]:
    """The photos decoded once (Darknet's exact JPEG decoder is pure Python)."""
    from darkweights.detect.image import load_image

    if not _IMAGES:
        _IMAGES.extend(load_image(str(p)) for p in photos())
    return _IMAGES


def records_from_boxes(boxes: np.ndarray, scores: np.ndarray, det, w: int, h: int) -> list[dict]:
    from darkweights.detect.boxes import Detections, correct_yolo_boxes, to_records

    net = det.net
    rel = boxes / np.array([net.width, net.height, net.width, net.height], np.float32)
    rel = correct_yolo_boxes(rel, w, h, net.width, net.height, det.letterbox)
    return to_records(Detections(rel, np.ones(len(rel), np.float32), scores), det.names, w, h, det.thresh)


def assert_same_records(ours: list[dict], want: list[dict], rel: float = 0.0) -> None:
    """Same classes in the same order, boxes within 0.5 px (or ``rel`` of huge random-weight boxes), scores 1e-4."""
    assert [r["class"] for r in ours] == [r["class"] for r in want]
    for a, b in zip(ours, want):
        assert all(abs(a[k] - b[k]) <= max(0.5, rel * abs(b[k])) for k in "xywh"), (a, b)
        assert abs(a["prob"] - b["prob"]) <= 1e-4


@pytest.mark.parametrize("pair", real_models(), ids=lambda p: p[0].stem)
def test_decoded_and_nms_match_detect(pair, tmp_path: Path) -> None:
    from darkweights.detect.boxes import to_records
    from darkweights.detect.image import resize_image
    from darkweights.detect.nms import do_nms_sort
    from darkweights.detect.run import Detector

    net = darkweights.load(*pair)
    det = Detector(net, [str(i) for i in range(80)])
    export_onnx(net, tmp_path / "dec.onnx", outputs="decoded", fuse_bn=True, batch="dynamic")
    with pytest.warns(DarkweightsWarning, match="greedynms"):
        export_onnx(net, tmp_path / "nms.onnx", outputs="nms", fuse_bn=True)
    props = home.model_metadata(onnx.load(str(tmp_path / "nms.onnx")))
    assert props["nms_kind"] == "greedynms" and props["nms_exact"] == "0" and "DIoU" in props["nms_note"]
    dec, nms = home.onnx_session(tmp_path / "dec.onnx"), home.onnx_session(tmp_path / "nms.onnx")
    for im in images():
        _, h, w = im.shape
        x = resize_image(im, net.width, net.height)[None]
        outs, _, _ = det.forward(im)
        pre = det.boxes(outs, w, h, nms_thresh=0)  # detect before NMS
        boxes, scores = dec.run(["boxes", "scores"], {"input": x})
        want = to_records(pre, det.names, w, h, det.thresh)
        assert want
        assert_same_records(records_from_boxes(boxes[0], scores[0], det, w, h), want)
        # NMS: the graph's IoU suppression is Darknet's nms_kind=default
        (rows,) = nms.run(["detections"], {"input": x})
        assert (rows[:, 0] == 0).all()
        got = records_from_boxes(
            rows[:, 3:7], np.eye(80, dtype=np.float32)[rows[:, 1].astype(int)] * rows[:, 2:3], det, w, h
        )
        assert_same_records(got, to_records(do_nms_sort(pre, 0.45), det.names, w, h, det.thresh))


# -- other readers ------------------------------------------------------------------------------


def opencv_cases() -> list[tuple[Path, Path]]:
    out = [(BUNDLED / "yolo-fastest-1.1.cfg", BUNDLED / "yolo-fastest-1.1.weights")]
    tiny = FIXTURES / "yolov4-tiny"
    if tiny.exists():
        out.append((tiny / "model.cfg", tiny / "model.weights"))
    return out


@pytest.mark.parametrize("pair", opencv_cases(), ids=lambda p: p[0].parent.name)
def test_opencv_reads_the_raw_export(pair, tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2", reason="the [verify] extra (OpenCV) is not installed")
    net = darkweights.load(*pair)
    info = export_onnx(net, tmp_path / "m.onnx")
    x = np.random.default_rng(0).random((1,) + tuple(net.input.chw), dtype=np.float32)
    reader = cv2.dnn.readNetFromONNX(str(tmp_path / "m.onnx"))
    reader.setInput(x, "input")
    outs = reader.forward(info.outputs)
    ours = net.to_torch()(torch.from_numpy(x))
    for got, want in zip(outs, ours):
        assert verify.compare_arrays(got, want.numpy())[2] <= 1e-4
    home.pack_onnx(tmp_path / "m.onnx", tmp_path / "back.weights")  # and the way home, for the real models
    assert sha(tmp_path / "back.weights") == sha(pair[1])


@pytest.mark.parametrize("pair", opencv_cases(), ids=lambda p: p[0].parent.name)
def test_openvino_reads_the_raw_export(pair, tmp_path: Path) -> None:
    ov = pytest.importorskip(
        "openvino", reason="openvino is not installed here (optional interop check, pip install openvino)"
    )
    net = darkweights.load(*pair)
    info = export_onnx(net, tmp_path / "m.onnx")
    x = np.random.default_rng(0).random((1,) + tuple(net.input.chw), dtype=np.float32)
    # OpenVINO's CPU plugin computes in bfloat16 where the processor has it (this one does): ask for float32
    compiled = ov.Core().compile_model(str(tmp_path / "m.onnx"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    result = compiled([x])
    ours = net.to_torch()(torch.from_numpy(x))
    for name, want in zip(info.outputs, ours):
        assert verify.compare_arrays(result[compiled.output(name)], want.numpy())[2] <= 1e-4


def test_a_layer_that_cannot_be_exported_is_named(tmp_path: Path, monkeypatch) -> None:
    from darkweights import UnsupportedError
    from darkweights.torch.families.maxpool import Maxpool

    def broken(m, x, outs):
        raise RuntimeError("no ONNX form")

    monkeypatch.setattr(Maxpool, "portable", broken)
    net = verify.load_fixture(ORACLE / "hankai_tiny")[0]
    first = next(l for l in net.layers if l.type == "maxpool")
    with pytest.raises(UnsupportedError) as err:
        export_onnx(net, tmp_path / "m.onnx")
    e = err.value
    assert (e.layer, e.line, e.layer_type) == (first.index, first.line, "maxpool")
    assert "[maxpool]" in str(e) and "no ONNX form" in str(e) and f":{first.line}" in str(e)
    assert not (tmp_path / "m.onnx").exists()


def decode_cases() -> list[Path]:
    out = [ORACLE / "hankai_tiny"]  # [yolo] with and without new_coords
    out += [FIXTURES / n for n in ("yolov2", "Gaussian_yolov3_BDD") if (FIXTURES / n).exists()]  # [region]
    return out


@pytest.mark.parametrize("fixture", decode_cases(), ids=lambda p: p.name)
def test_decoded_heads_match_detect_decoders(fixture: Path, tmp_path: Path) -> None:
    """Every head type detect decodes, on the fixture's input (image = network input, no letterbox shift)."""
    from darkweights.detect.boxes import to_records
    from darkweights.detect.run import Detector

    net, meta, x, _ = verify.load_fixture(fixture)
    det = Detector(net)
    thresh = 0.05
    export_onnx(net, tmp_path / "dec.onnx", outputs="decoded", fuse_bn=True, thresh=thresh)
    outs, _, _ = det.forward(x)
    w, h = net.width, net.height
    want = to_records(det.boxes(outs, w, h, thresh=thresh, nms_thresh=0), det.names, w, h, thresh)
    got = home.run_onnx(tmp_path / "dec.onnx", x)
    det.thresh = thresh
    assert want, "no candidate above the threshold: the check would be empty"
    # random weights: raw w/h entries up to ~24 give boxes of up to 1e10 px, where exp() turns the network's
    # own float32 noise (~1e-5 relative) into a relative box error of ~Δt = 2e-4
    # and hundreds of candidates, some with probabilities equal to 1e-6, whose order float noise may swap:
    # every detection must have its counterpart (class, score, box), the order is checked on the real models
    ours = records_from_boxes(got["boxes"][0], got["scores"][0], det, w, h)
    assert len(ours) == len(want)
    for b in want:
        match = [
            a
            for a in ours
            if a["class"] == b["class"]
            and abs(a["prob"] - b["prob"]) <= 1e-4
            and all(abs(a[k] - b[k]) <= max(0.5, 1e-3 * abs(b[k])) for k in "xywh")
        ]
        assert match, b
        ours.remove(match[0])
