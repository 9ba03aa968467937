"""verify.Report: rows, worst and first diverging layer, text and JSON output."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from darkweights import verify

from .conftest import SHARED

FIXTURES = Path(os.environ.get("DARKWEIGHTS_FIXTURES", SHARED / "fixtures"))


def make_report() -> verify.Report:
    rows = [
        verify.Row(0, "convolutional", 1e-7, 1.0, 1e-7, 1e-5, True),
        verify.Row(1, "maxpool", 2e-5, 1.0, 2e-5, 1e-5, False),
        verify.Row(2, "yolo", 3e-4, 1.0, 3e-4, 1e-5, False),
    ]
    return verify.Report("demo", "end-to-end", rows, [{"index": 3, "type": "cost", "reason": "not saved"}])


def test_report_summary() -> None:
    r = make_report()
    assert not r.ok
    assert r.first_divergence.index == 1
    assert r.worst.index == 2
    assert r.max_rel == pytest.approx(3e-4)


def test_report_table_and_json() -> None:
    r = make_report()
    text = r.to_table()
    assert "FAILED" in text and "first diverging layer: 1 [maxpool]" in text and "skipped" in text
    assert "worst: layer 2 [yolo]" in text
    assert "    0  convolutional" not in r.to_table(only_failures=True)
    data = json.loads(r.to_json())
    assert data["ok"] is False and data["first_divergence"]["index"] == 1 and len(data["rows"]) == 3
    assert data["worst"]["index"] == 2


def test_compare_arrays_edge_cases() -> None:
    assert verify.compare_arrays(np.ones(3), np.ones(4))[2] == math.inf
    d, s, rel, note = verify.compare_arrays(np.array([1.0, np.nan]), np.array([1.0, np.nan]))
    assert rel == 0 and "NaN" in note
    assert verify.compare_arrays(np.array([1.0, np.nan]), np.array([1.0, 2.0]))[2] == math.inf
    assert verify.compare_arrays(np.array([1.0, 2.0]), np.array([1.0, 2.5]))[2] == pytest.approx(0.2)


@pytest.mark.skipif(not (FIXTURES / "yolov3-tiny" / "layers.json").exists(), reason="fixture absent")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_fixture_report_json_round_trip() -> None:
    r = verify.compare_with_fixture(FIXTURES / "yolov3-tiny", teacher_forcing=True)
    data = json.loads(r.to_json())
    assert data["ok"] and data["mode"] == "teacher-forced" and data["layers_compared"] == len(r.rows)
    assert data["meta"]["tolerance_rule"] == "1e-5 per layer"
