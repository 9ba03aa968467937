"""Shared by test_detect_alexeyab.py and test_detect_pjreddie.py: reading the reference detection files
that tools/darknet_oracle/detect_*.c wrote, and setting our records beside them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from darkweights.api import default_model

from .conftest import SHARED, need_shared

DOG = default_model().cfg.parent / "dog.jpg"  # the same file as ../shared/images/dog.jpg


def reference_image(ref: dict) -> Path:
    """The photo a reference was made on: the bundled dog.jpg (always there), else ../shared/images."""
    name = Path(ref["image"]).name
    return DOG if name == "dog.jpg" else need_shared(SHARED / "images" / name)


def rows(records: list[dict]) -> np.ndarray:
    """Records as the reference's rows (index, class, prob, x, y, w, h, objectness), in array order."""
    out = [[r["det_index"], r["class_id"], r["prob"], *r["bbox_relative"], r["objectness"]] for r in records]
    return np.array(sorted(out), dtype=np.float64).reshape(-1, 8)


def differences(records: list[dict], ref: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(ours, theirs, prob_rel, objectness_rel)`` after asserting the same count, array order and classes;
    the box columns are ``[:, 3:7]`` of both."""
    ours, theirs = rows(records), np.array(ref["detections"], dtype=np.float64).reshape(-1, 8)
    assert ours.shape == theirs.shape, (ours[:, :2].tolist(), theirs[:, :2].tolist())
    assert (ours[:, :2] == theirs[:, :2]).all(), "detection index / class differ"
    prob = np.abs(ours[:, 2] - theirs[:, 2]) / theirs[:, 2]
    obj = np.abs(ours[:, 7] - theirs[:, 7]) / theirs[:, 7]
    return ours, theirs, prob, obj


def record_order(rows: np.ndarray) -> list[tuple[int, int]]:
    """to_records' order of reference rows: prob descending, ties in array then class order (stable)."""
    order = sorted(range(len(rows)), key=lambda i: -rows[i][2])
    return [(int(rows[i][0]), int(rows[i][1])) for i in order]
