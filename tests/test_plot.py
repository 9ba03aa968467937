"""`darkweights plot`: per-layer weight distributions and the first convolution's filters, one PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="plots need matplotlib (the [plot] extra)")
from PIL import Image

import darkweights
from darkweights import DarkweightsError
from darkweights.cli import main
from darkweights.plot import box_stats, filter_grid, first_conv, plot
from darkweights.synth import init

from .conftest import write_cfg
from .test_diff import CFG


@pytest.fixture
def net(tmp_path: Path):
    cfg = write_cfg(tmp_path, CFG)
    w = tmp_path / "m.weights"
    init(darkweights.load(cfg), w, seed=1)
    return darkweights.load(cfg, w)


def test_box_stats_and_filter_grid() -> None:
    a = np.arange(1001, dtype=np.float32) - 500
    s = box_stats(a, "3")
    assert (s["whislo"], s["q1"], s["med"], s["q3"], s["whishi"]) == (-490, -250, 0, 250, 490)
    assert list(s["fliers"]) == [-500, 500]
    w = np.random.default_rng(0).normal(size=(10, 3, 3, 3))
    g = filter_grid(w)
    assert g.shape == (3 * 4 + 1, 4 * 4 + 1, 3) and g.min() == 0 and g.max() == 1
    # tile 5 (row 1, column 1) is filter 5 scaled to its own range, channels last
    t = (w[5] - w[5].min()) / (w[5].max() - w[5].min())
    np.testing.assert_allclose(g[5:8, 5:8], t.transpose(1, 2, 0))
    assert (g[0] == 1).all() and (g[:, 4] == 1).all()  # white separators


def test_plot_writes_one_png_atomically(net, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    out = tmp_path / "w.png"
    n = plot(net, out)
    assert n == out.stat().st_size > 10_000
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width >= 700 and img.height >= 700
        arr = np.asarray(img.convert("RGB"))
    assert len(np.unique(arr.reshape(-1, 3), axis=0)) > 50  # a picture, not a blank canvas
    assert first_conv(net)[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".cfg" and p.suffix != ".weights") == ["w.png"]
    import matplotlib.pyplot as plt

    import darkweights.plot as P

    def boom(f, *a, **k):
        f.write(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(P, "distributions_figure", lambda net, plt: plt.figure(figsize=(1, 1)))  # quick to render
    monkeypatch.setattr(P, "filters_figure", lambda net, plt: None)
    monkeypatch.setattr(plt, "imsave", boom)
    with pytest.raises(OSError):
        plot(net, tmp_path / "x.png")
    assert not list(tmp_path.glob("*x.png*"))


def test_plot_cli(net, tmp_path: Path, capsys) -> None:
    out = tmp_path / "c.png"
    assert main(["plot", net.path, net.weights_path, "-o", str(out), "--quiet"]) == 0
    assert out.exists() and capsys.readouterr().err == ""
    assert main(["plot", net.path, str(tmp_path / "missing.weights"), "-o", str(tmp_path / "d.png")]) == 2
    with pytest.raises(DarkweightsError, match="need weights"):
        plot(darkweights.load(net.path), tmp_path / "e.png")
