"""``detect`` on YOLO9000 (``[region] tree=``) = AlexeyAB Darknet's ``detector test``.

References in tests/data/oracle/alexeyab_tree_detections (README there): tools/darknet_oracle/detect_alexeyab.c
on the ``alexeyab_yolo9000`` oracle case (shared yolo9000.cfg minified, synthetic 9418-node tree, weights
regenerated from their seed: tests/oracle_cases.py) and the sample photos. AlexeyAB decodes [region] with
``get_region_boxes``: ``hierarchy_predictions``, then the highest class index whose product is ``> .5`` keeps
that product, unscaled, when the objectness passes ``-thresh`` (``-hier`` and the cfg's ``map=`` do not reach it).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

pytest.importorskip("torch", reason="the [torch] extra is not installed")

import darkweights as dw
from darkweights import DarkweightsWarning
from darkweights.detect.boxes import get_region_detections
from darkweights.detect.run import Detector
from darkweights.tree import hierarchy_predictions

from .conftest import DATA
from .detect_reference import DOG, differences, record_order, reference_image
from .oracle_cases import materialise

REFS = DATA / "oracle" / "alexeyab_tree_detections"
CASES = sorted(p.stem for p in REFS.glob("*.json"))


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    d = materialise(DATA / "oracle" / "alexeyab_yolo9000", tmp_path_factory.mktemp("y9k"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DarkweightsWarning)
        return Detector(dw.load(d / "model.cfg", d / "model.weights"))


def _ref(name: str) -> dict:
    return json.loads((REFS / f"{name}.json").read_text())


def test_the_references_are_there() -> None:
    assert len(CASES) == 6 and "alexeyab_yolo9000_dog" in CASES


@pytest.mark.parametrize("case", CASES)
def test_same_detections_as_alexeyab(case: str, detector) -> None:
    ref = _ref(case)
    outs, w, h = detector.forward(reference_image(ref))
    dets = detector.boxes(outs, w, h, thresh=ref["thresh"], nms_thresh=ref["nms"])
    assert len(dets) == ref["nboxes"] == 12  # w*h*n: 2x2 cells, 3 anchors
    records = detector.decode(outs, w, h, thresh=ref["thresh"], nms_thresh=ref["nms"])
    ours, theirs, prob, obj = differences(records, ref)
    box = np.abs(ours[:, 3:7] - theirs[:, 3:7]) / np.maximum(1.0, np.abs(theirs[:, 3:7]))
    assert prob.max() <= 1e-5 and obj.max() == 0 and box.max() <= 1e-5, (prob.max(), box.max())
    assert [(r["det_index"], r["class_id"]) for r in records] == record_order(ref["detections"])
    # one class per box, the product itself (not times the objectness), and never below .5
    assert len({r["det_index"] for r in records}) == len(records) and min(r["prob"] for r in records) > 0.5


def test_the_tree_decides_the_classes(detector) -> None:
    """Decoded as a flat softmax head (no tree), the same outputs give other classes and scores."""
    ref = _ref("alexeyab_yolo9000_dog")
    outs, w, h = detector.forward(DOG)
    L = detector.heads[-1]
    flat = get_region_detections(
        outs[L.index][0].numpy(),
        anchors=L.anchors,
        num=L.slots,
        classes=L.classes,
        grid_w=2,
        grid_h=2,
        net_w=64,
        net_h=64,
        im_w=w,
        im_h=h,
        thresh=ref["thresh"],
    )
    assert (flat.probs > 0).sum() != len(ref["detections"]) or sorted(
        int(c) for c in np.nonzero(flat.probs)[1]
    ) != sorted(r[1] for r in ref["detections"])


def test_map_gives_the_200_mapped_classes(detector) -> None:
    """With a map (validate_detector's; detector test passes none): objectness x product of map[j], j < 200."""
    outs, w, h = detector.forward(DOG)
    L = detector.heads[-1]
    out = outs[L.index][0].numpy()
    tree = detector.trees[L.index]
    mapping = list(np.random.default_rng(0).choice(L.classes, 200, replace=False))
    common = dict(
        anchors=L.anchors,
        num=L.slots,
        classes=L.classes,
        grid_w=2,
        grid_h=2,
        net_w=64,
        net_h=64,
        im_w=w,
        im_h=h,
        thresh=0.01,
        tree=tree,
    )
    dets = get_region_detections(out, map=mapping, **common)
    rows = out.reshape(12, -1)
    want = rows[:, 4:5] * hierarchy_predictions(rows[:, 5:].copy(), tree)[:, mapping]
    assert np.allclose(dets.probs[:, :200], np.where(want > 0.01, want, 0), rtol=1e-6)
    assert not dets.probs[:, 200:].any()
    with pytest.raises(ValueError, match="reads 200"):
        get_region_detections(out, map=mapping[:10], **common)


def test_cli_detect_and_a_missing_tree(tmp_path, capsys) -> None:
    """``darkweights detect CFG WEIGHTS IMAGE --json`` decodes the tree; without the tree file: one line, exit 2."""
    from darkweights.cli import main

    ref = _ref("alexeyab_yolo9000_dog")
    d = materialise(DATA / "oracle" / "alexeyab_yolo9000", tmp_path)
    args = [
        "detect",
        str(d / "model.cfg"),
        str(d / "model.weights"),
        str(DOG),
        "--thresh",
        str(ref["thresh"]),
        "--json",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DarkweightsWarning)
        assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert sorted((r["class_id"], round(r["prob"], 5)) for r in printed) == sorted(
        (r[1], round(r[2], 5)) for r in ref["detections"]
    )
    (d / "model.tree").unlink()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.cfg:" in err[0] and "tree=model.tree: no such file" in err[0]
