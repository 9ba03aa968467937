"""YOLO9000's class trees (``tree=`` in [softmax] and [region], ``map=``): reading them as Darknet's
read_tree does, finding the file as Darknet does (working directory) or beside the cfg, shapes without
the file, and what the oracle fixtures say the forward computes (tests/test_oracle_fixtures.py compares
every layer)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import darkweights
from darkweights.errors import CfgError, UnsupportedError
from darkweights.synth import map_text, tree_text
from darkweights.tree import hierarchy_predictions, parse_tree

from .conftest import DATA, SHARED_CFG, need_shared
from .oracle_cases import materialise

ORACLE = DATA / "oracle"

# 0,1 roots; 2,3,4 under 0; 5,6 under 1; 7,8 under 3
SMALL = "a -1\nb -1\nc 0\nd 0\ne 0\nf 1\ng 1\nh 3\ni 3\n"

REGION_CFG = """[net]
width=2
height=2
channels=3

[convolutional]
filters={filters}
size=1
activation=linear

[region]
classes={classes}
num=1
coords=4
softmax=1
tree={tree}
"""


def test_read_tree_groups_runs_of_one_parent() -> None:
    t = parse_tree(SMALL)
    assert t.n == 9 and t.groups == 4
    assert t.offset.tolist() == [0, 2, 5, 7] and t.size.tolist() == [2, 3, 2, 2]
    assert t.group.tolist() == [0, 0, 1, 1, 1, 2, 2, 3, 3]
    assert t.child.tolist() == [1, 2, -1, 3, -1, -1, -1, -1, -1]  # pjreddie's read_tree
    assert t.leaf.tolist() == [False, False, True, False, True, True, True, True, True]
    # sscanf("%s %d"): a line without a parent is a root, a blank line a node named ""
    assert parse_tree("x\n\ny 0\n").parent.tolist() == [-1, -1, 0]


def test_hierarchy_predictions_follow_tree_c() -> None:
    t = parse_tree(SMALL)
    p = np.array([0.7, 0.3, 0.2, 0.5, 0.3, 0.6, 0.4, 0.9, 0.1], dtype=np.float32)
    h = hierarchy_predictions(p.copy(), t)
    assert np.allclose(h[[2, 3, 7]], [0.14, 0.35, 0.315])  # c = .2*.7, d = .5*.7, h = .9*.5*.7


def test_synthetic_trees_are_realistic_and_seeded() -> None:
    text = tree_text(9418, 3)
    t = parse_tree(text)
    assert t.n == 9418 and text == tree_text(9418, 3) and text != tree_text(9418, 4)
    assert 100 < t.groups < t.n and t.size.max() >= 20 and t.leaf.sum() > t.n / 2
    assert (t.parent < np.arange(t.n)).all()  # parents come first, as in 9k.tree
    assert len(map_text(9418, 1).splitlines()) == 200


def test_the_tree_changes_no_stored_array(tmp_path) -> None:
    """parse_softmax/parse_region only read the file into l.softmax_tree: layout and shapes without it."""
    with_tree = darkweights.load(
        tmp_path / "a.cfg", cfg_text=REGION_CFG.format(filters=14, classes=9, tree="nowhere/9k.tree")
    )
    plain = darkweights.load(
        tmp_path / "b.cfg", cfg_text=REGION_CFG.format(filters=14, classes=9, tree="").replace("tree=\n", "")
    )
    assert [(p.name, p.shape, p.offset) for p in with_tree.layout()] == [
        (p.name, p.shape, p.offset) for p in plain.layout()
    ]
    assert [L.output for L in with_tree.layers] == [L.output for L in plain.layers]
    assert "tree=nowhere/9k.tree" in with_tree.layers[1].describe()


def test_shared_yolo9000_inspects_without_its_tree(capsys) -> None:
    cfg = need_shared(SHARED_CFG / "yolo9000.cfg")
    from darkweights.cli import main

    assert main(["inspect", str(cfg)]) == 0
    assert "tree=data/9k.tree" in capsys.readouterr().out
    net = darkweights.load(cfg)
    with pytest.raises(CfgError, match=r"tree=data/9k.tree: no such file") as e:
        net.to_torch()
    assert e.value.line is not None and e.value.layer == 24


def test_the_tree_is_found_as_darknet_does_then_beside_the_cfg(tmp_path, monkeypatch) -> None:
    pytest.importorskip("torch", reason="the [torch] extra is not installed")
    (tmp_path / "cfgdir").mkdir()
    cfg = tmp_path / "cfgdir" / "m.cfg"
    cfg.write_text(REGION_CFG.format(filters=14, classes=9, tree="t.tree"))
    monkeypatch.chdir(tmp_path)
    net = darkweights.load(cfg)
    with pytest.raises(CfgError, match="no such file") as e:
        net.to_torch()
    assert e.value.line == cfg.read_text().splitlines().index("tree=t.tree") + 1 and e.value.file == str(cfg)
    (tmp_path / "cfgdir" / "t.tree").write_text(SMALL)  # beside the cfg
    assert net.to_torch().layers[1].tree.groups == 4
    (tmp_path / "t.tree").write_text("a -1\nb -1\nc -1\n")  # the working directory wins, as in Darknet's fopen
    assert net.to_torch().layers[1].tree.groups == 1


def test_a_tree_larger_than_the_layer_is_refused(tmp_path) -> None:
    pytest.importorskip("torch", reason="the [torch] extra is not installed")
    (tmp_path / "t.tree").write_text(tree_text(12, 0))
    net = darkweights.load(tmp_path / "m.cfg", cfg_text=REGION_CFG.format(filters=14, classes=9, tree="t.tree"))
    with pytest.raises(CfgError, match="12 nodes but the layer has 9"):
        net.to_torch()


def test_pjreddie_region_tree_is_refused_saying_why(tmp_path) -> None:
    pytest.importorskip("torch", reason="the [torch] extra is not installed")
    (tmp_path / "t.tree").write_text(SMALL)
    net = darkweights.load(
        tmp_path / "m.cfg", cfg_text=REGION_CFG.format(filters=14, classes=9, tree="t.tree"), dialect="pjreddie"
    )
    with pytest.raises(UnsupportedError, match="temperature 0"):
        net.to_torch()


def test_the_oracle_softmax_is_per_tree_group(tmp_path) -> None:
    """What Darknet stored is one softmax per group (sums of 1), not one over all 9418 classes."""
    d = materialise(ORACLE / "alexeyab_darknet9000", tmp_path)
    meta = json.loads((d / "layers.json").read_text())
    t = parse_tree((d / "model.tree").read_text())
    out = np.load(d / "outputs.npz")["layer_025"].astype(np.float64)
    assert t.n == 9418 and meta["layers"][25]["type"] == "softmax"
    sums = np.zeros(t.groups)
    np.add.at(sums, t.group, out)
    assert np.allclose(sums, 1, atol=1e-5)
    # region rows of yolo9000: sigmoid objectness, then the same per-group softmax over entries 5..
    d = materialise(ORACLE / "alexeyab_yolo9000", tmp_path)
    rows = np.load(d / "outputs.npz")["layer_024"].reshape(-1, 5 + 9418).astype(np.float64)
    t = parse_tree((d / "model.tree").read_text())
    sums = np.zeros((rows.shape[0], t.groups))
    for r in range(rows.shape[0]):
        np.add.at(sums[r], t.group, rows[r, 5:])
    assert np.allclose(sums, 1, atol=1e-5) and ((rows[:, 4] > 0) & (rows[:, 4] < 1)).all()


def test_numload_builds_without_a_file(quiet) -> None:
    pytest.importorskip("torch", reason="the [torch] extra is not installed")
    import torch

    cfg = ORACLE / "pjreddie_tree" / "model.cfg"
    net = darkweights.load(cfg, dialect="pjreddie")
    net.layers[-1].tree = None  # the softmax tree is not what this test is about
    model = net.to_torch()
    assert model.state_dict()["layers.0.conv.weight"].shape == (16, 3, 3, 3)
    assert model(torch.rand(1, 3, 12, 12)).shape == (1, 40)


def test_numload_beyond_the_filters_is_refused(tmp_path) -> None:
    text = (ORACLE / "pjreddie_tree" / "model.cfg").read_text().replace("numload=10", "numload=17")
    with pytest.raises(darkweights.DarkweightsError, match="numload=17 must be between 0 and filters=16") as e:
        darkweights.load(tmp_path / "m.cfg", cfg_text=text, dialect="pjreddie")
    assert e.value.line == text.splitlines().index("numload=17") + 1
