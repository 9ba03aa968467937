"""draw_detections writes a PNG atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image

from darkweights.detect import class_color, draw_detections

RECORDS = [
    {
        "class": "dog",
        "class_id": 16,
        "prob": 0.88,
        "x": 40.0,
        "y": 30.0,
        "w": 40.0,
        "h": 30.0,
        "left": 20.0,
        "top": 15.0,
        "det_index": 0,
    },
    {
        "class": "cat",
        "class_id": 15,
        "prob": 0.40,
        "x": 40.0,
        "y": 30.0,
        "w": 40.0,
        "h": 30.0,
        "left": 20.0,
        "top": 15.0,
        "det_index": 0,
    },
    {
        "class": "car",
        "class_id": 2,
        "prob": 0.51,
        "x": 90.0,
        "y": 60.0,
        "w": 60.0,
        "h": 50.0,
        "left": 60.0,
        "top": 35.0,
        "det_index": 1,
    },  # partly outside the image: clipped
]


def test_draw_writes_png_and_leaves_no_temp_file(tmp_path: Path) -> None:
    im = np.full((3, 64, 96), 0.5, np.float32)  # Darknet layout (C, H, W)
    out = draw_detections(im, RECORDS, tmp_path / "pred.png")
    assert out == tmp_path / "pred.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.png"]
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (96, 64) and img.mode == "RGB"
        arr = np.asarray(img)
    assert (arr != 128).any()  # something was drawn
    assert tuple(arr[45, 20]) == class_color(16)  # left edge of the dog box, best class's colour
    # overwriting an existing file works and still leaves no temporaries
    draw_detections(im, RECORDS[:1], out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.png"]


def test_draw_from_file_and_failure_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(np.zeros((64, 96, 3), np.uint8)).save(src)
    draw_detections(src, RECORDS, tmp_path / "a.png")
    assert (tmp_path / "a.png").exists()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(OSError):
        draw_detections(src, RECORDS, tmp_path / "b.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "in.png"]


def test_labels_scale_with_the_image_and_fit_small_ones(tmp_path: Path) -> None:
    """Box lines and label text grow with the image; a label wider than a small image shrinks to fit."""
    from darkweights.detect.draw import label_scale

    assert label_scale(96, 64) == (2, 11)
    line, size = label_scale(4000, 3000)
    assert (line, size) == (15, 94)

    sizes = [label_scale(w, w * 3 // 4)[1] for w in (640, 1280, 3840)]
    assert sizes == sorted(sizes) and 5.5 < sizes[2] / sizes[0] < 6.5  # proportional to the image
    # a long label on a tiny image is drawn smaller than the default font so that it fits
    long = [{**RECORDS[0], "class": "a-very-long-class-name"}]
    out = draw_detections(np.zeros((40, 60, 3), np.uint8), long, tmp_path / "tiny.png")
    with Image.open(out) as img:
        arr = np.asarray(img)
    filled = np.nonzero((arr == class_color(16)).all(axis=2).any(axis=0))[0]
    assert filled.size and filled.max() - filled.min() < 60
