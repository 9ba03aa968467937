"""What the shared fixtures do not cover, checked against the real Darknet: fixtures in
tests/data/oracle/ made by tools/darknet_oracle (CPU builds of AlexeyAB and pjreddie Darknet run on
our cfg, our ``init`` weights and a seeded input; Darknet re-saved the weights byte for byte). Same
layout as ../shared/fixtures, so they always run, with or without shared/:
``synth_conv_lstm`` ([conv_lstm], [history]), ``pjreddie_image`` (pjreddie BN, [deconvolutional],
strided [shortcut] with alpha/beta, [batchnorm], [l2norm], [reorg], [logistic], [region]),
``pjreddie_recurrent`` ([crnn] with its swapped width/height, [rnn], [gru], [lstm], [detection]),
``pjreddie_heads`` ([crop], [normalization], [local], [yolo], [avgpool], [softmax])."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch", reason="the [torch] extra is not installed")

import darkweights  # noqa: E402
from darkweights import verify  # noqa: E402
from darkweights.cli import main  # noqa: E402

from .conftest import DATA  # noqa: E402

ORACLE = DATA / "oracle"
CASES = sorted(p.parent.name for p in ORACLE.glob("*/layers.json"))


def test_the_oracle_cases_are_there() -> None:
    assert {"synth_conv_lstm", "pjreddie_image", "pjreddie_recurrent", "pjreddie_heads"} <= set(CASES)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("teacher_forcing", [True, False])
def test_matches_darknet(name: str, teacher_forcing: bool) -> None:
    report = verify.compare_with_fixture(ORACLE / name, teacher_forcing=teacher_forcing)
    meta = json.loads((ORACLE / name / "layers.json").read_text())
    assert [r.index for r in report.rows] == [l["index"] for l in meta["layers"]]
    assert report.ok, report.to_table(only_failures=True)
    assert report.max_rel <= 1e-5  # these shallow nets stay within the per-layer tolerance end to end


@pytest.mark.parametrize("name", CASES)
def test_float64_and_weights_round_trip(name: str, tmp_path) -> None:
    assert verify.compare_with_fixture(ORACLE / name, teacher_forcing=True, float64=True).ok
    dialect = json.loads((ORACLE / name / "layers.json").read_text()).get("dialect", "alexeyab")
    net = darkweights.load(ORACLE / name / "model.cfg", ORACLE / name / "model.weights", dialect=dialect)
    darkweights.save_weights(net, tmp_path / "w")
    assert (tmp_path / "w").read_bytes() == (ORACLE / name / "model.weights").read_bytes()


def test_conv_lstm_and_history_are_what_darknet_computes(capsys) -> None:
    """The layers this fixture exists for, by type, from the command line."""
    assert main(["verify", "--fixture", str(ORACLE / "synth_conv_lstm"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    types = {r["type"] for r in rows}
    assert {"conv_lstm", "history"} <= types
