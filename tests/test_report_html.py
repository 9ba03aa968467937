"""`darkweights report`: one self-contained HTML page, checked as text and in a real headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import darkweights
from darkweights.cli import main
from darkweights.report_html import graph_svg, layer_inputs, render, write_report
from darkweights.synth import init

from .conftest import write_cfg
from .test_diff import CFG

# CFG plus a route back to layer 1 (a second arc in the graph)
ROUTED = CFG.replace("[connected]", "[route]\nlayers=-1,3\n\n[connected]")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


@pytest.fixture
def net(tmp_path: Path):
    cfg = write_cfg(tmp_path, ROUTED)
    w = tmp_path / "m.weights"
    init(darkweights.load(cfg), w, seed=2)
    return darkweights.load(cfg, w)


def test_graph_edges(net) -> None:
    assert [layer_inputs(L) for L in net.layers] == [[], [0], [1, 0], [2], [3], [4, 3], [5]]
    svg = graph_svg(net)
    assert svg.count('class="node"') == 7
    assert svg.count('class="edge-shortcut"') == 1 and svg.count('class="edge-route"') == 1


def test_page_is_self_contained(net, tmp_path: Path) -> None:
    page = render(net, plots=False)
    assert page.count('<tr class="layer"') == len(net.layers)
    assert net.dialect_choice.describe() in page.replace("&#x27;", "'")
    assert "version 0.2.5" in page and page.count('<tr class="stat"') == len(net.params())
    # nothing is fetched when the page is viewed: no src/href to anything but data: URIs
    assert not re.findall(r'(?:src|href)="(?!data:)', page)
    assert "<link" not in page and "<script" not in page
    out = tmp_path / "r.html"
    assert write_report(net, out, plots=False) == out.stat().st_size
    assert not list(tmp_path.glob(".r.html*"))


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium found (CI installs Debian's `chromium` as root in .ci/run; `apt-get install -y chromium`)")


def _run_browser(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run(
        [browser, *flags, *args], capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(profile)}
    )


def test_report_in_headless_chromium(net, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the report's plots need matplotlib (the [plot] extra)")
    browser = _browser()
    out = tmp_path / "report.html"
    assert main(["report", net.path, net.weights_path, "-o", str(out), "-q"]) == 0
    url = out.as_uri()
    dom = _run_browser(browser, tmp_path / "profile", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    # what the browser parsed: every layer row, the graph, the statistics, both plots decoded inline
    assert len(re.findall(r'<tr class="layer" id="layer-\d+"', html)) == len(net.layers)
    assert html.count('class="node"') == len(net.layers) and html.count("<svg") == 1
    assert html.count('class="edge-route"') == 1 and html.count('class="edge-shortcut"') == 1
    assert len(re.findall(r'<img class="plot" alt="(?:distributions|filters)" src="data:image/png;base64,', html)) == 2
    assert html.count('<tr class="stat"') == len(net.params())
    shot = tmp_path / "shot.png"
    res = _run_browser(browser, tmp_path / "profile2", "--window-size=1280,2400", f"--screenshot={shot}", url)
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == (1280, 2400)
        colors = img.convert("RGB").getcolors(1 << 20)
    assert colors is not None and len(colors) > 100  # text, tables, graph and plots rendered
    keep = os.environ.get("DARKWEIGHTS_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_dead_filters_and_nan_are_marked(net, tmp_path: Path) -> None:
    arrays = net.arrays(copy=True)
    arrays["layer_001.weights"][[2, 5]] = 0.0  # two dead filters
    w = tmp_path / "dead.weights"
    darkweights.save_weights(arrays, w, net=net)
    page = render(darkweights.load(net.path, w), plots=False)
    row = next(r for r in page.split('<tr class="stat">') if r.startswith('<td class="r">1</td>') and ">weights<" in r)
    assert '<td class="r bad">2</td>' in row  # the dead-filters column of layer 1's weights
    assert page.count('class="r bad"') == 1
