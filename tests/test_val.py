"""``darkweights val``: the metric on cases worked out by hand, Darknet's dataset rules, bad input, the CLI, the
backends (ONNX, OpenVINO, a callable) and the README example. Darknet's own printouts: tests/test_val_oracle.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from darkweights import DarkweightsWarning
from darkweights.cli import main
from darkweights.errors import DatasetError
from darkweights.val.data import label_path, read_data_file, read_image_list, read_labels, read_names
from darkweights.val.metric import MapAccumulator, average_precision, printout

from .conftest import REPO
from .val_cases import CASES, VAL, darknet_block

REPO5 = VAL / "repo5"
REPO5_MAP = 0.060417  # Darknet's printout (tests/data/val/darknet/repo5_p0.txt)


def box(x: float, y: float, w: float = 0.1, h: float = 0.1) -> list[float]:
    return [x, y, w, h]


# --------------------------------------------------------------------------- the metric, by hand

# one image, class 0, three truths; detections in rank order TP FP TP FP TP
TRUTHS = np.array([box(0.1, 0.1), box(0.5, 0.5), box(0.9, 0.9)], np.float32)
DETS = np.array([box(0.1, 0.1), box(0.3, 0.7), box(0.5, 0.5), box(0.7, 0.3), box(0.9, 0.9)], np.float32)
PROBS = np.array([[0.9, 0], [0.8, 0], [0.7, 0], [0.6, 0], [0.5, 0]], np.float32)


def hand_case(thresh: float = 0.55) -> MapAccumulator:
    acc = MapAccumulator(2, thresh=thresh)
    acc.add(DETS, PROBS, np.zeros(3, np.int64), TRUTHS)
    return acc


def test_ap_worked_out_by_hand() -> None:
    # precision 1, 1/2, 2/3, 1/2, 3/5 at recall 1/3, 1/3, 2/3, 2/3, 1
    # area: (1 - 2/3) * 3/5 + (2/3 - 1/3) * 2/3 + 1/3 * 1 = 34/45
    r0 = hand_case().result(0)
    assert r0.classes[0].ap == pytest.approx(float(Fraction(34, 45)), abs=1e-15)
    assert r0.map == pytest.approx(float(Fraction(34, 90)), abs=1e-15)  # class 1 (no truths, no detections): 0
    # 11 points: recall 0..0.3 -> 1 (4 levels), 0.4..0.6 -> 2/3 (3), 0.7..1 -> 3/5 (4)
    assert hand_case().result(11).classes[0].ap == pytest.approx((4 + 2 + 2.4) / 11, abs=1e-15)
    # 101 points: 34 levels at 1, 33 at 2/3, 34 at 3/5
    assert hand_case().result(101).classes[0].ap == pytest.approx((34 + 22 + 20.4) / 101, abs=1e-12)


def test_counts_at_the_threshold_by_hand() -> None:
    r = hand_case(0.55).result(0)
    assert (r.tp, r.fp, r.fn) == (2, 2, 1)
    assert r.precision == pytest.approx(0.5) and r.recall == pytest.approx(2 / 3, rel=1e-6)
    assert r.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3), rel=1e-6)
    assert r.average_iou == pytest.approx(0.5)  # two IoUs of 1 over TP + FP = 4: Darknet's divisor
    assert (r.classes[0].tp, r.classes[0].fp, r.classes[0].truths, r.classes[0].detections) == (2, 2, 3, 5)


def test_a_second_hit_on_a_truth_is_a_false_positive_even_when_the_first_was_below_the_threshold() -> None:
    acc = MapAccumulator(1)
    # Darknet's array order: a weak box on the truth first, then the strong one on the same truth
    acc.add(
        np.array([box(0.5, 0.5, 0.11), box(0.5, 0.5)], np.float32),
        np.array([[0.1], [0.9]], np.float32),
        [0],
        [box(0.5, 0.5)],
    )
    r = acc.result()
    assert (r.tp, r.fp) == (0, 1)  # the strong box counts as FP at 0.25: the weak one reached the truth first
    assert r.classes[0].ap == 1.0  # ranked by probability, the strong one is the TP


def test_ties_keep_the_image_order() -> None:
    for first_fp, want in ((True, 0.5), (False, 1.0)):
        acc = MapAccumulator(1)
        fp = (np.array([box(0.2, 0.2)], np.float32), np.array([[0.5]], np.float32), [], np.zeros((0, 4)))
        tp = (np.array([box(0.5, 0.5)], np.float32), np.array([[0.5]], np.float32), [0], [box(0.5, 0.5)])
        for image in (fp, tp) if first_fp else (tp, fp):
            acc.add(*image)
        assert acc.result().classes[0].ap == want  # glibc's qsort is a merge sort: equal probabilities keep order


def test_difficult_boxes_leave_the_ranking_but_count_as_false_positives_at_the_threshold() -> None:
    acc = MapAccumulator(1)
    dets = np.array([box(0.5, 0.5), box(0.2, 0.2)], np.float32)
    acc.add(dets, np.array([[0.9], [0.8]], np.float32), [0], [box(0.5, 0.5)], [0], [box(0.2, 0.2)])
    r = acc.result()
    assert r.detections == 1 and (r.tp, r.fp) == (1, 1) and r.classes[0].ap == 1.0


def test_nothing_above_the_threshold_prints_nan_as_darknet() -> None:
    r = hand_case(0.95).result(0).to_dict()
    assert r["precision"] is None and r["f1"] is None and r["recall"] == 0.0
    lines = printout(r)
    assert " for conf_thresh = 0.95, precision = -nan, recall = 0.00, F1-score = -nan " in lines
    json.dumps(r)  # valid JSON: NaN is null


def test_average_precision_edge_cases() -> None:
    assert average_precision(np.zeros(0, bool), 3) == 0.0
    assert average_precision(np.array([False, False]), 0) == 0.0  # detections of a class without truths
    assert average_precision(np.array([True]), 1, points=1) == 0.0  # one point: Darknet divides 0 by 0


# --------------------------------------------------------------------------- Darknet's dataset rules


def test_data_file_is_read_as_darknet_reads_it(tmp_path: Path) -> None:
    p = tmp_path / "x.data"
    p.write_text("# comment\n; another\nclasses= 2\r\nnames = my names.txt\nvalid=a.txt\nvalid=b.txt\nbroken=\n")
    with pytest.warns(DarkweightsWarning) as got:
        d = read_data_file(p)
    assert d.classes == 2 and d.get("names") == "mynames.txt"  # strip(): every space and tab goes
    assert d.get("valid") == "a.txt" and d.line("valid") == 5  # the first one wins
    text = " | ".join(str(w.message) for w in got)
    assert "x.data:6: valid= given again (first at line 5)" in text and "x.data:7: 'broken=' is not key=value" in text


@pytest.mark.parametrize(
    "rule, image, label",
    [
        ("alexeyab", "data/obj/x.jpg", "data/obj/x.txt"),
        ("alexeyab", "data/images/x.jpg", "data/images/x.txt"),  # a plain images/ is not mapped in AlexeyAB
        ("alexeyab", "/coco/images/val2017/x.jpg", "/coco/labels/val2017/x.txt"),
        ("alexeyab", "VOC/JPEGImages/x.JPEG", "VOC/labels/x.txt"),
        ("alexeyab", "a.jpg/x.png ", "a.jpg/x.txt"),  # trimmed; only the extension at the end
        ("alexeyab", "x.webp", "x.webp"),  # no rule: Darknet warns and reads the image as text
        ("pjreddie", "data/images/x.jpg", "data/labels/x.txt"),
        ("pjreddie", "raw/x.png", "labels/x.txt"),
        ("hankai", "data/x.y/img.jpeg", "data/x.y/img.txt"),
        ("hankai", "data.v2/img", "data.txt"),  # everything from the last dot
    ],
)
def test_label_path_rules(rule: str, image: str, label: str) -> None:
    assert str(label_path(image, rule)) == str(Path(label))


def test_names_count_every_line_and_labels_are_checked(tmp_path: Path) -> None:
    (tmp_path / "n.names").write_text("a\n\nb\r\n")
    assert read_names(tmp_path / "n.names") == ["a", "", "b"]
    lab = tmp_path / "x.txt"
    lab.write_text("1 0.5 0.5 0.2 0.2\n\n0 .1 .2 1e-1 0.3\n")
    got = read_labels(lab, 2)
    assert got.ids.tolist() == [1, 0] and got.boxes.dtype == np.float32 and got.boxes[1, 0] == np.float32(0.1)
    assert read_labels(tmp_path / "none.txt", 2).missing
    for text, message in [
        ("0 0.5 0.5 0.2\n", r"x.txt:1: 4 fields, expected 5"),
        ("0 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0.2\n", r"x.txt:2: class id 2 is outside 0..1"),
        ("0 nan 0.5 0.2 0.2\n", r"'nan' is not a finite number"),
        ("1_0 0.5 0.5 0.2 0.2\n", r"class id '1_0' is not an integer"),
    ]:
        lab.write_text(text)
        with pytest.raises(DatasetError, match=message):
            read_labels(lab, 2)


def test_image_lists(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    lst = tmp_path / "list.txt"
    lst.write_text("a.jpg\r\n")
    (entry,) = read_image_list(lst)  # found beside the list
    assert entry.path == tmp_path / "a.jpg" and entry.written == "a.jpg" and entry.line == 1
    lst.write_text("a.jpg\n\nb.jpg\n")
    with pytest.raises(DatasetError, match=r"list.txt:2: empty line"):
        read_image_list(lst)
    lst.write_text("a.jpg\nb.jpg\n")
    with pytest.raises(DatasetError, match=r"list.txt:2: no such image 'b.jpg'"):
        read_image_list(lst)


# --------------------------------------------------------------------------- bad input through the CLI


def broken_set(tmp_path: Path, change) -> Path:
    root = tmp_path / "set"
    shutil.copytree(REPO5, root)
    change(root)
    return root / "coco.data"


def _write(rel: str, text: str):
    return lambda root: (root / rel).write_text(text)


BAD = [
    ("no valid=", _write("coco.data", "classes=80\nnames=coco.names\n"), r"coco.data: no valid= line"),
    (
        "missing image",
        _write("valid.txt", "img/astronaut.jpg\nimg/camera.png\nimg/gone.jpg\n"),
        r"valid.txt:3: no such image 'img/gone.jpg'",
    ),
    ("4 fields", _write("img/astronaut.txt", "0 0.5 0.5 0.3\n"), r"img/astronaut.txt:1: 4 fields, expected 5"),
    (
        "class >= classes",
        _write("img/astronaut.txt", "80 0.5 0.5 0.3 0.3\n"),
        r"astronaut.txt:1: class id 80 is outside",
    ),
    (
        "names",
        lambda root: (root / "coco.names").write_text((root / "coco.names").read_text() + "\n"),
        r"coco.names: 81 names \(1 of them blank: Darknet counts every line\), but the last layer \(layer 130 \[yolo\]",
    ),
    ("classes=", _write("coco.data", "classes=20\nvalid=valid.txt\nnames=coco.names\n"), r"coco.data:1: classes=20"),
]


@pytest.mark.parametrize("name, change, message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_located_error(name, change, message, tmp_path, capsys) -> None:
    pytest.importorskip("torch", reason="the [torch] extra is not installed")
    data = broken_set(tmp_path, change)
    before = sorted(p.name for p in data.parent.rglob("*"))
    assert main(["val", str(data), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("darkweights: error: "), err
    import re

    assert re.search(message, err[0]), err[0]
    assert sorted(p.name for p in data.parent.rglob("*")) == before  # nothing written, inputs untouched


def test_a_missing_label_file_is_a_warning_and_a_count(tmp_path, capsys) -> None:
    pytest.importorskip("torch", reason="the [torch] extra is not installed")
    data = broken_set(tmp_path, lambda root: (root / "img" / "rocket.txt").unlink())
    assert main(["val", str(data), "--json"]) == 0
    out = capsys.readouterr()
    record = json.loads(out.out)
    assert record["missing_labels"] == 1 and record["images"] == 5
    assert "warning: 1 of 5 images have no label file" in out.err


def test_partial_weights_are_refused(tmp_path, capsys) -> None:
    from darkweights import default_model, load

    bundled = default_model()
    net = load(bundled.cfg, bundled.weights)
    cut = tmp_path / "partial.weights"
    last = net.params()[-1].layer
    cut.write_bytes(Path(bundled.weights).read_bytes()[: min(p.offset for p in net.params() if p.layer == last)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DarkweightsWarning)
        assert main(["val", str(bundled.cfg), str(cut), str(REPO5 / "coco.data")]) == 2
    assert "partial weights" in capsys.readouterr().err


# --------------------------------------------------------------------------- CLI, JSON, backends


def test_cli_json_record(capsys) -> None:
    pytest.importorskip("torch", reason="the [torch] extra is not installed")
    assert main(["val", str(REPO5 / "coco.data"), "--json", "--points", "101", "--iou-thresh", "0.5"]) == 0
    record = json.loads(capsys.readouterr().out)
    for key in ("map", "iou_thresh", "points", "conf_thresh", "precision", "recall", "f1", "tp", "fp", "fn"):
        assert key in record
    assert record["points"] == 101 and len(record["classes"]) == 80 and record["images"] == 5
    assert set(record["classes"][0]) >= {"class_id", "name", "ap", "tp", "fp"}
    want = darknet_block(next(c for c in CASES if c.name == "repo5_p101").printout)
    assert [line for line in printout(record) if line] == want


def test_callable_backend_gives_the_same_numbers() -> None:
    torch = pytest.importorskip("torch", reason="the [torch] extra is not installed")
    import darkweights

    net = darkweights.load("yolo-fastest")
    model = net.to_torch(fuse_bn=True)
    calls = []

    def forward(x: np.ndarray) -> list:
        calls.append(x.shape)
        with torch.inference_mode():
            return model(torch.from_numpy(x))

    record = darkweights.val(REPO5 / "coco.data", net, backend=forward, batch=2)
    assert calls == [(2, 3, 320, 320), (2, 3, 320, 320), (1, 3, 320, 320)]
    assert f"{record['map']:.6f}" == f"{REPO5_MAP:.6f}" and record["backend"] == "callable"


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
    import darkweights
    from darkweights.onnx import export_onnx

    net = darkweights.load("yolo-fastest")
    root = tmp_path_factory.mktemp("exports")
    out = {"raw": root / "raw.onnx", "fp16": root / "fp16.onnx"}
    export_onnx(net, out["raw"], batch="dynamic")
    export_onnx(net, out["fp16"], fp16=True)  # batch 1: one image a forward
    return out


@pytest.mark.parametrize(
    "kind, backend, tol",
    [("raw", None, 1e-3), ("raw", "openvino", 1e-3), ("fp16", None, 5e-3), ("raw", "torch", 5e-7)],
)
def test_onnx_exports(exports, kind, backend, tol, capsys) -> None:
    if backend == "openvino":
        pytest.importorskip("openvino", reason="openvino is not installed (the [openvino] extra)")
    args = ["val", str(exports[kind]), str(REPO5 / "coco.data"), "--json"] + (["--backend", backend] if backend else [])
    assert main(args) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["backend"] == (backend or "onnxruntime")
    assert abs(record["map"] - REPO5_MAP) <= tol, record["map"]


def test_decoded_exports_are_refused(exports, tmp_path, capsys) -> None:
    import onnx

    proto = onnx.load(str(exports["raw"]))
    for p in proto.metadata_props:  # what `export --outputs decoded` records
        if p.key == "onnx_outputs":
            p.value = "decoded"
    onnx.save(proto, str(tmp_path / "d.onnx"))
    assert main(["val", str(tmp_path / "d.onnx"), str(REPO5 / "coco.data")]) == 2
    assert "an --outputs decoded export" in capsys.readouterr().err


def test_coco_map_by_pycocotools(capsys) -> None:
    pytest.importorskip("pycocotools", reason="pycocotools is not installed (the [coco] extra)")
    pytest.importorskip("torch", reason="the [torch] extra is not installed")
    assert main(["val", str(REPO5 / "coco.data"), "--coco"]) == 0
    out = capsys.readouterr().out
    assert " COCO AP@[.5:.95] = " in out and "mean average precision (mAP@0.50) = 0.060417" in out


# --------------------------------------------------------------------------- the README example


def shown_lines_are_printed(command: str, shown: str) -> None:
    """``command`` (``darkweights ...``) run from the repository root prints every line of ``shown`` (``...`` and
    the timing line aside)."""
    args = command.split("#")[0].split()
    assert args[:2] == ["darkweights", "val"]
    proc = subprocess.run([sys.executable, "-m", "darkweights", *args[1:]], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    printed = [line.rstrip() for line in proc.stdout.splitlines()]
    for line in shown.splitlines():
        if line.strip() and line.strip() != "..." and "images/s" not in line:
            assert line.rstrip() in printed, line


def test_readme_example() -> None:
    """The README's `val` block and its printout."""
    text = (REPO / "README.md").read_text()
    block = text.split("test_readme_example runs it", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    shown = text.split("<!-- val printout -->", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    shown_lines_are_printed(block.strip().splitlines()[0], shown)


def test_cli_reference_example() -> None:
    """docs/cli.md's `val` example (darkweights.cli.val.PRINTOUT)."""
    from darkweights.cli.val import PRINTOUT as EXAMPLE

    command, *shown = EXAMPLE.splitlines()
    assert f"```text\n{EXAMPLE}```" in (REPO / "docs" / "cli.md").read_text()
    shown_lines_are_printed(command.removeprefix("$ "), "\n".join(shown))


def test_pjreddie_has_no_map_so_its_detector_gets_alexeyabs_metric() -> None:
    pytest.importorskip("torch", reason="the [torch] extra is not installed")
    import darkweights

    with pytest.warns(DarkweightsWarning, match="pjreddie's Darknet has no `detector map`"):
        record = darkweights.val(REPO5 / "coco.data", dialect="pjreddie")
    assert record["images"] == 5 and 0 < record["map"] < 1


def test_an_image_without_a_label_name_rule_has_no_objects(tmp_path: Path) -> None:
    from darkweights.val.data import ListEntry
    from darkweights.val.run import _read_truth

    entry = ListEntry("x.webp", tmp_path / "x.webp", 1, tmp_path / "list.txt")
    with pytest.warns(DarkweightsWarning, match="no label file name for this extension"):
        truth = _read_truth(entry, 80)
    assert truth.missing and len(truth) == 0
