"""darkweights detect = darknet detector test: same detections on the real models and sample photos."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch", reason="the [torch] extra is not installed")
pytest.importorskip("PIL", reason="the [detect] extra (Pillow) is not installed")

import darkweights as dw
from darkweights.cli import main
from darkweights.detect.run import Detector, read_names

from .conftest import FIXTURES, MODELS, SHARED, need_shared

CASES = [
    (m, img) for m in ("yolo-fastest-1.1", "yolo-fastest-1.1-xl") for img in ("dog", "horses", "person", "giraffe")
]


def _detector(model: str) -> Detector:
    d = MODELS / model
    net = dw.load(d / f"{model}.cfg", d / f"{model}.weights")
    return Detector(net, read_names(MODELS / "coco.names", 80))


def _match(ours: list[dict], ref: list[dict], px: float = 1.0, prob: float = 1e-3) -> None:
    assert len(ours) == len(ref), (
        [(r["class"], round(r["prob"], 4)) for r in ours],
        [(r["class"], round(r["prob"], 4)) for r in ref],
    )
    for a, b in zip(ours, ref):
        assert a["class"] == b["class"] and a["class_id"] == b["class_id"]
        assert abs(a["prob"] - b["prob"]) <= prob, (a, b)
        for k in ("x", "y", "w", "h"):
            assert abs(a[k] - b[k]) <= px, (k, a, b)


@pytest.mark.parametrize("model, image", CASES)
def test_same_detections_as_darknet(model, image):
    need_shared(FIXTURES / "detections" / model)
    ref = json.loads((FIXTURES / "detections" / model / f"{image}.json").read_text())
    ours = _detector(model)(SHARED / "images" / f"{image}.jpg")
    _match(ours, ref)  # the acceptance bar: class, box within 1 px, probability within 1e-3
    _match(ours, ref, px=0.01, prob=1e-4)  # measured: boxes equal to 4 decimals, probabilities within 3.3e-6


def test_on_darknets_exact_input():
    """Feed Darknet's own network input for dog.jpg: isolates the network + decode + NMS from image decoding."""
    need_shared(FIXTURES / "detections")
    x = np.load(FIXTURES / "detections" / "darknet_input_dog_320x320.npz")["input"]
    det = _detector("yolo-fastest-1.1")
    settings = json.loads((FIXTURES / "detections" / "yolo-fastest-1.1" / "settings.json").read_text())
    w, h = settings["images"]["dog"]["w"], settings["images"]["dog"]["h"]
    import torch

    with torch.inference_mode():
        outs = det.model(torch.from_numpy(x)[None], all_outputs=True)
    # decode through the same code path: a fake image of the original size whose resize is x itself
    ours = det.decode(outs, w, h)
    ref = json.loads((FIXTURES / "detections" / "yolo-fastest-1.1" / "dog.json").read_text())
    _match(ours, ref, px=0.01, prob=1e-5)


def test_cli_detect_bundled_model(tmp_path, capsys):
    """`darkweights detect --sample` works with nothing but the installed package."""
    out = tmp_path / "dog.png"
    assert main(["detect", "--sample", "-o", str(out), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    classes = [r["class"] for r in records]
    assert {"car", "dog", "bicycle"} <= set(classes)
    assert set(records[0]) == {"class", "class_id", "prob", "x", "y", "w", "h"}
    assert not [p for p in tmp_path.iterdir() if p.name != "dog.png"]


def test_cli_detect_rejects_non_detector(tmp_path, capsys):
    cfg = tmp_path / "c.cfg"
    cfg.write_text("[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=2\nactivation=linear\n")
    w = tmp_path / "c.weights"
    assert main(["init", str(cfg), "-o", str(w)]) == 0
    img = SHARED / "images" / "dog.jpg"
    if not img.exists():
        img = dw.default_model().cfg.parent / "dog.jpg"
    assert main(["detect", str(cfg), str(w), str(img)]) == 2
    assert "not a detector" in capsys.readouterr().err
