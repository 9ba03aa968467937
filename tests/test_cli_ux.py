"""The command line as a user meets it: help on one screen, one spelling per option, models by name,
inspect's table plain when piped and coloured on a terminal, --json for machines."""

from __future__ import annotations

import argparse
import json

import pytest

from darkweights import cli, models

SCREEN = 40


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def help_text(parser: argparse.ArgumentParser, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "80")
    return parser.format_help()


def test_every_help_fits_one_screen(monkeypatch):
    assert len(help_text(cli.build_parser(), monkeypatch).splitlines()) <= SCREEN
    for name, p in subparsers().items():
        lines = help_text(p, monkeypatch).splitlines()
        assert len(lines) <= SCREEN, f"`darkweights {name} --help` is {len(lines)} lines"


def test_same_option_names_for_the_same_things():
    spellings: dict[str, set[tuple[str, ...]]] = {}
    for p in subparsers().values():
        for a in p._actions:
            if a.option_strings and a.dest != "help":
                spellings.setdefault(a.dest, set()).add(tuple(a.option_strings))
    mixed = {dest: s for dest, s in spellings.items() if len(s) > 1}
    assert not mixed, f"one thing, several spellings: {mixed}"
    # the shared concepts keep their one spelling
    assert spellings["output"] == {("-o", "--output")}
    assert spellings["json"] == {("--json",)}
    assert spellings["dialect"] == {("--dialect",)}
    # every option says what it does
    for name, p in subparsers().items():
        for a in p._actions:
            if a.option_strings and a.dest != "help":
                assert a.help, f"darkweights {name} {a.option_strings[-1]} has no help"


def test_models_by_name(capsys, tmp_path, monkeypatch):
    assert cli.main(["models", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["models"]
    names = [m["name"] for m in listed]
    assert names[0] == "yolo-fastest-1.1" and listed[0]["weights"] and "yolov4" in names and "yolov7" in names
    v4 = listed[names.index("yolov4")]
    assert (v4["layers"], v4["params"], v4["weights_bytes"]) == (162, 64429405, 257717640)
    assert models.find("yolov4.cfg").cfg.name == "yolov4.cfg" and models.find("nonesuch") is None
    monkeypatch.chdir(tmp_path)
    assert cli.main(["inspect", "yolov4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cfg"].endswith("yolov4.cfg")
    # a file of that name wins over the bundled one
    (tmp_path / "yolov4").write_text("[net]\nwidth=8\nheight=8\nchannels=1\n[maxpool]\nsize=2\nstride=2\n")
    assert cli.main(["inspect", "yolov4", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["layers"]) == 1
    assert cli.main(["inspect", "no-such-model"]) == 2


def test_inspect_plain_when_piped_coloured_on_a_terminal(capsys, monkeypatch):
    assert cli.main(["inspect", "yolo-fastest", "--stats"]) == 0
    plain = capsys.readouterr().out
    assert "\033[" not in plain
    head = plain.splitlines()[0].split()
    assert head[:5] == ["layer", "type", "filters", "size/strd(dil)", "input"]
    assert "Total BFLOPS 0.252" in plain and "version 0.2.5" in plain and "dialect: alexeyab (auto:" in plain
    assert "no NaN/Inf, no dead (all-zero) filters" in plain
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("COLUMNS", "90")
    assert cli.main(["inspect", "yolo-fastest"]) == 0
    tty = capsys.readouterr().out
    assert "\033[1m" in tty
    assert (
        max(len(line.replace("\033[1m", "").replace("\033[2m", "").replace("\033[0m", "")) for line in tty.splitlines())
        <= 90
    )
    monkeypatch.setenv("NO_COLOR", "1")
    assert cli.main(["inspect", "yolo-fastest"]) == 0
    assert "\033[" not in capsys.readouterr().out


def test_stats_flag_dead_filters_and_nan(tmp_path, capsys):
    import numpy as np

    import darkweights

    cfg = "[net]\nwidth=8\nheight=8\nchannels=2\n[convolutional]\nfilters=3\nsize=3\npad=1\n"
    (tmp_path / "t.cfg").write_text(cfg)
    net = darkweights.load(str(tmp_path / "t.cfg"))
    arrays = {"layer_000.biases": np.ones(3, np.float32), "layer_000.weights": np.ones((3, 2, 3, 3), np.float32)}
    arrays["layer_000.weights"][1] = 0  # filter 1 is dead
    darkweights.save_weights(arrays, tmp_path / "t.weights", net=net)
    assert cli.main(["inspect", str(tmp_path / "t.cfg"), str(tmp_path / "t.weights"), "--stats", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    w = data["layers"][0]["arrays"][1]
    assert w["name"] == "weights" and w["stats"]["dead"] == 1 and w["stats"]["nan"] == 0
    assert data["layers"][0]["bflops"] == pytest.approx(2 * 2 * 3 * 9 * 64 / 1e9, rel=1e-6)
    assert cli.main(["inspect", str(tmp_path / "t.cfg"), str(tmp_path / "t.weights"), "--stats"]) == 0
    out = capsys.readouterr().out
    assert "dead filters 1/3" in out and "dead (all-zero) filters in layers 0" in out
