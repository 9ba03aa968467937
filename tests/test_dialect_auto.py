"""Forks as data: the Dialect table, ``dialect="auto"`` and the evidence it gives."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import darkweights as dw
from darkweights import dialects, verify
from darkweights.cli import main
from darkweights.layers import LAYER_TYPES
from darkweights.layers.base import register

from .conftest import DATA, FIXTURES, fixture_cases, write_cfg
from .test_oracle_fixtures import model_for

ORACLE = DATA / "oracle"
ORACLE_CASES = sorted(p.name for p in ORACLE.iterdir() if (p / "layers.json").exists())
NET = "[net]\nwidth=8\nheight=8\nchannels=3\n"


def maker(meta: dict) -> str:
    """The fork that made a fixture, as its layers.json says ("AlexeyAB <commit>", "hank-ai (...)")."""
    return dialects.from_provenance(meta.get("dialect") or meta["darknet"])


def test_the_table_covers_the_catalogue_and_the_torch_modules():
    from darkweights.torch import MODULES

    known = set().union(*(d.sections for d in dialects.DIALECTS.values()))
    assert known == set(LAYER_TYPES)
    assert set(MODULES) == set(LAYER_TYPES)


def test_registries_refuse_duplicates():
    from darkweights.torch.base import register as register_module

    with pytest.raises(RuntimeError, match="registered twice"):
        register(type("Again", (LAYER_TYPES["route"],), {"type": "route", "headers": ("route2",)}))
    with pytest.raises(RuntimeError, match="registered twice"):
        register_module("route")(type("AgainModule", (), {}))


def test_dialect_names():
    assert dialects.get("hank-ai") is dialects.HANKAI and dialects.check("AUTO") == "auto"
    with pytest.raises(dw.CfgError, match="unknown dialect 'darknet'"):
        dw.load(DATA / "yolov4-tiny.cfg", dialect="darknet")


@pytest.mark.parametrize("case", ORACLE_CASES)
def test_oracle_fixtures_are_recognised(case):
    """Every fork's oracle case: auto names its maker, and verify --fixture passes without --dialect."""
    meta = json.loads((ORACLE / case / "layers.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dw.DarkweightsWarning)
        net, _, _, _ = verify.load_fixture(ORACLE / case)
        assert net.dialect.name == maker(meta), net.dialect_choice.describe()
        assert verify.compare_with_fixture(ORACLE / case, teacher_forcing=True, model=model_for(ORACLE / case)).ok


@pytest.mark.parametrize("case", fixture_cases() or ["(shared fixtures absent)"])
def test_shared_fixtures_are_recognised_from_their_files(case):
    """The shared (AlexeyAB) fixtures: the cfg and weights alone say AlexeyAB."""
    if case.startswith("("):
        pytest.skip("Darknet reference data not found (CI places shared/ beside the checkout)")
    meta = json.loads((FIXTURES / case / "layers.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dw.DarkweightsWarning)
        net = dw.load(FIXTURES / case / "model.cfg", FIXTURES / case / "model.weights")
    assert maker(meta) == "alexeyab" and net.dialect.name == "alexeyab", net.dialect_choice.describe()


def test_evidence_lines_of_each_fork(capsys):
    """What inspect prints for a pjreddie, an AlexeyAB-only and a header-only case."""
    cases = {
        "pjreddie_image": "dialect: pjreddie (auto: not AlexeyAB or hank-ai: [deconvolutional] at line 24)",
        "pjreddie_detector": "dialect: pjreddie (auto: header 0.2.0 (written by pjreddie))",
        # nothing in these files points elsewhere: one parse, and the line says so
        "synth_conv_lstm": "dialect: alexeyab (auto: header 0.2.5; AlexeyAB reads every option and no section, "
        "geometry or comment needs another fork)",
    }
    for case, line in cases.items():
        d = ORACLE / case
        assert main(["inspect", str(d / "model.cfg"), str(d / "model.weights")]) == 0
        out, err = capsys.readouterr()
        assert line in out, out.splitlines()[-3:]
    # the header alone chose pjreddie for a BN network: one warning line says what that changes
    d = ORACLE / "pjreddie_detector"
    with pytest.warns(dw.DarkweightsWarning, match="header 0.2.0 chose pjreddie, whose batch-norm differs"):
        dw.load(d / "model.cfg", d / "model.weights")


def test_hankai_is_told_by_inline_comments_only_it_strips(tmp_path):
    text = NET + "[convolutional]\nfilters=4\nsize=3\nactivation=leaky # hank-ai strips this comment\n"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dw.DarkweightsWarning)
        net = dw.load(write_cfg(tmp_path, text))
    assert net.dialect.name == "hankai"
    assert "1 inline '#' comment(s), which only hank-ai strips" in net.dialect_choice.describe()


def test_options_only_one_fork_reads(tmp_path):
    """An AB-only option rules pjreddie out (it would ignore it); a pjreddie-only one rules AB out."""
    ab = (
        NET + "[convolutional]\nfilters=4\nsize=3\nstride=1\npad=1\ndilation=1\nactivation=mish\n"
        "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=leaky\n[shortcut]\nfrom=-2\n"
    )
    pj = (
        NET + "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"
        "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=leaky\n[shortcut]\nfrom=-2\nalpha=0.5\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dw.DarkweightsWarning)
        assert dw.load(write_cfg(tmp_path, ab, "ab.cfg")).dialect.name == "alexeyab"
        net = dw.load(write_cfg(tmp_path, pj, "pj.cfg"))
    assert net.dialect.name == "pjreddie"
    assert "not AlexeyAB, hank-ai" not in net.dialect_choice.describe()
    assert "not AlexeyAB: it ignores alpha= (line 17)" in net.dialect_choice.describe()


def test_a_bad_value_is_an_error_not_another_fork(tmp_path):
    """AB refusing weights_type=bogus must not make auto pick pjreddie, which never reads it."""
    text = NET + "[convolutional]\nfilters=3\nactivation=linear\n[shortcut]\nfrom=-1\nweights_type=bogus\n"
    with pytest.raises(dw.CfgError, match="weights_type='bogus' is not valid"):
        dw.load(write_cfg(tmp_path, text))


def test_the_common_case_parses_once(monkeypatch):
    import darkweights.auto as auto

    calls = []
    real = auto._trial
    monkeypatch.setattr(auto, "_trial", lambda *a: calls.append(a[2].name) or real(*a))
    net = dw.load(DATA / "yolov4.cfg")
    assert calls == ["alexeyab"] and net.dialect.name == "alexeyab"


def test_a_wrong_explicit_dialect_changes_the_numbers():
    """Auto is not a no-op: a pjreddie model read with AlexeyAB's rules gives other outputs."""
    import torch

    d = ORACLE / "pjreddie_detector"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dw.DarkweightsWarning)
        right = verify.compare_with_fixture(d, teacher_forcing=True)
        wrong = verify.compare_with_fixture(d, teacher_forcing=True, dialect="alexeyab")
        assert right.ok and wrong.max_rel > 5 * right.max_rel
        # with trained-like BN statistics (small variances) the difference is large
        data = bytearray((d / "model.weights").read_bytes())
        net = dw.load(d / "model.cfg", data)
        for p in net.params():
            if p.role == "rolling_variance":
                data[p.offset : p.end] = np.full(p.count, 1e-4, "<f4").tobytes()
        x = torch.from_numpy(np.load(d / "input.npy"))[None]
        outs = {
            k: dw.load(d / "model.cfg", bytes(data), dialect=k).to_torch()(x, all_outputs=True)[0]
            for k in ("pjreddie", "alexeyab")
        }
    a, b = outs["pjreddie"].numpy(), outs["alexeyab"].numpy()
    assert np.abs(a - b).max() / np.abs(a).max() > 1e-3


def test_verify_fixture_honours_an_explicit_dialect(capsys):
    d = ORACLE / "pjreddie_detector"
    assert main(["verify", "--fixture", str(d), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["meta"]["dialect"].startswith("pjreddie (auto: the files name")
    assert main(["verify", "--fixture", str(d), "--dialect", "alexeyab", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["meta"]["dialect"] == "alexeyab (explicit)"
    # a fork that cannot read the fixture is not silently replaced by the one that made it
    assert main(["verify", "--fixture", str(ORACLE / "pjreddie_image"), "--dialect", "alexeyab"]) == 2
    assert "[deconvolutional] is not supported by AlexeyAB" in capsys.readouterr().err


def test_metadata_records_the_choice(tmp_path):
    from darkweights.export import export_arrays, read_arrays

    d = ORACLE / "pjreddie_image"
    net = dw.load(d / "model.cfg", d / "model.weights")
    out = tmp_path / "a.safetensors"
    export_arrays(net, out)
    _, meta = read_arrays(out)
    assert meta["dialect"] == "pjreddie" and meta["dialect_evidence"].startswith("pjreddie (auto: not AlexeyAB")
    back = tmp_path / "back.weights"
    dw.save_weights(
        read_arrays(out)[0],
        back,
        net=dw.load(d / "model.cfg", dialect=meta["dialect"]),
        header=json.loads(meta["header"]),
    )
    assert back.read_bytes() == (d / "model.weights").read_bytes()
    assert main(["pack", str(out), "-o", str(tmp_path / "p.weights")]) == 0
    assert (tmp_path / "p.weights").read_bytes() == (d / "model.weights").read_bytes()


def test_every_fork_rule_is_a_field():
    """The records differ only in fields; each fork is a complete Dialect."""
    a, p, h = dialects.ALEXEYAB, dialects.PJREDDIE, dialects.HANKAI
    assert (a.header, p.header, h.header) == ((0, 2, 5), (0, 2, 0), (0, 2, 5))
    assert p.bn_eps == 1e-6 and not p.bn_eps_inside_sqrt and a.bn_eps_inside_sqrt
    assert a.reads("convolutional", "dilation") and not p.reads("convolutional", "dilation")
    assert p.reads("shortcut", "alpha") and not a.reads("shortcut", "alpha") and not a.reads("maxpool", "dontsave")
    assert np.isclose(a.detector.thresh, 0.25) and p.detector.always_letterbox and h.detector is a.detector
