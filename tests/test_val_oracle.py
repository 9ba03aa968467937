"""``darkweights val`` against AlexeyAB's own ``darknet detector map`` printouts (tests/data/val/darknet, README there).

Every case must print Darknet's lines character for character: detections_count and unique_truth_count, each
class's AP (2 decimals of a percent) with its TP/FP, precision/recall/F1 and TP/FP/FN/average IoU at the threshold,
and the mAP (6 decimals). The ``repo5`` cases run on data inside the repo (the bundled Yolo-Fastest 1.1 and five
photos); the others add the six photos of ``../shared/images`` and the Yolo-Fastest 1.1-xl model of
``../shared/models``, and skip without them.
"""

from __future__ import annotations

import re
import warnings

import pytest

from .conftest import NO_SHARED, SHARED
from .val_cases import CASES, VAL, Case, darknet_block, make_set, model_files

pytest.importorskip("torch", reason="the [torch] extra is not installed")
pytest.importorskip("PIL", reason="the [detect] extra (Pillow) is not installed: the set has a PNG")

_DETECTIONS: dict = {}


def _need(case: Case) -> None:
    if case.shared and not (SHARED / "images").exists():
        pytest.skip(NO_SHARED)
    if case.model == "xl" and not (SHARED / "models").exists():
        pytest.skip(NO_SHARED)


def _evaluated(case: Case, tmp_path_factory) -> tuple:
    """The images evaluated once per (set, model, difficult): detection is the slow part, the settings are not."""
    from darkweights import DarkweightsWarning
    from darkweights.val.run import Job

    key = (case.labels, case.model, case.shared, case.difficult)
    if key not in _DETECTIONS:
        root = make_set(tmp_path_factory.mktemp("valset"), case.labels, case.shared)
        cfg, weights = model_files(case.model, root)
        data = root / ("coco-difficult.data" if case.difficult else "coco.data")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DarkweightsWarning)
            job = Job.open(data, cfg, weights, None, "auto", None, None, root)
            _DETECTIONS[key] = (job.classes, job.names, list(job.detections()))
    return _DETECTIONS[key]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_printout_is_darknets(case: Case, tmp_path_factory) -> None:
    from darkweights import DarkweightsWarning
    from darkweights.val.metric import printout
    from darkweights.val.run import score

    _need(case)
    classes, names, results = _evaluated(case, tmp_path_factory)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DarkweightsWarning)
        record = score(results, classes, names, **case.settings)
    want = darknet_block(case.printout)
    assert printout(record) and [line for line in printout(record) if line] == want
    # the same, as numbers: mAP to 1e-6 (Darknet prints %f), each class's AP to 5e-5 (it prints 2 decimals of %)
    darknet_map = float(re.search(r"\(mAP@[\d.]+\) = ([\d.]+)", case.printout).group(1))
    assert abs(record["map"] - darknet_map) <= 5e-7
    aps = [float(m) / 100 for m in re.findall(r"ap = ([\d.]+)%", case.printout)]
    assert len(aps) == 80 and all(abs(c["ap"] - a) <= 5e-5 for c, a in zip(record["classes"], aps))
    assert 0 < record["map"] < 1 and any(0 < c["ap"] < 1 for c in record["classes"])  # neither 0 nor 1


def test_missing_label_files_are_counted(tmp_path_factory) -> None:
    case = next(c for c in CASES if c.name == "fastest_p0")
    _need(case)
    from darkweights import DarkweightsWarning
    from darkweights.val.run import score

    classes, names, results = _evaluated(case, tmp_path_factory)
    with pytest.warns(DarkweightsWarning, match="1 of 11 images have no label file"):
        record = score(results, classes, names)
    assert record["missing_labels"] == 1 and record["images"] == 11
    assert "Can't open label file" in case.printout  # Darknet's warning for the same image (scream.jpg)


def test_val_end_to_end_in_repo(tmp_path, monkeypatch) -> None:
    """``darkweights.val`` from the .data file of tests/data/val/repo5, run from another directory: Darknet's
    printout."""
    import darkweights
    from darkweights.val.metric import printout

    monkeypatch.chdir(tmp_path)
    record = darkweights.val(VAL / "repo5" / "coco.data")  # the bundled Yolo-Fastest 1.1
    case = next(c for c in CASES if c.name == "repo5_p0")
    assert [line for line in printout(record) if line] == darknet_block(case.printout)
    assert record["images"] == 5 and record["missing_labels"] == 0 and record["backend"] == "torch"
