"""`import darkweights` and opening a model stay light: no numpy, torch, cv2 or PIL until arrays are touched."""

from __future__ import annotations

import subprocess
import sys

from .conftest import DATA

PROBE = """
import sys
import darkweights
net = darkweights.load(sys.argv[1])
net.weights_bytes()
import darkweights.cli
heavy = sorted(m for m in ("numpy", "torch", "cv2", "PIL") if m in sys.modules)
print(",".join(heavy))
"""


def test_import_and_layout_need_no_heavy_modules():
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(DATA / "yolov4.cfg")], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
