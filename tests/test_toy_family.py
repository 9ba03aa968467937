"""A layer family registered by a test (tests/toy_family.py, one module) answers every concern of the
conformance suite, and a family that forgets one fails, naming itself.

The registries are restored after each test, so the toy family never leaks into the others.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator

import pytest

pytest.importorskip("torch", reason="the toy family has a PyTorch module")

import torch

import darkweights as dw
from darkweights.layers import HEADERS, LAYER_TYPES, ArraySpec
from darkweights.layers.base import AB, register
from darkweights.torch import MODULES

from . import conformance as C


@pytest.fixture
def registries() -> Iterator[None]:
    saved = dict(LAYER_TYPES), dict(HEADERS), dict(MODULES)
    yield
    for live, old in zip((LAYER_TYPES, HEADERS, MODULES), saved):
        live.clear()
        live.update(old)
    sys.modules.pop("tests.toy_family", None)


@pytest.fixture
def toy(registries: None):
    return importlib.import_module("tests.toy_family")


def test_the_toy_family_answers_every_concern(toy, tmp_path) -> None:
    cls = toy.SwishGate
    example = C.Example(cls, "alexeyab", toy.EXAMPLE)
    C.check_registration(cls)
    C.check_forks(cls, example)
    C.check_shape(cls, example)
    C.check_arrays(cls, example)
    C.check_init_range(cls, example)
    C.check_reads(cls, example)
    C.check_bflops_value(cls, example)
    C.check_torch(cls, example)
    C.check_onnx(cls, example, tmp_path)
    C.check_cells(cls, example)
    C.check_head(cls, example)
    # no Darknet build has it: nothing recorded to compare with
    assert C.check_bflops(cls) == 0 and C.check_darknet_shapes(cls) == 0
    # what the rest of the package derives from the family, without a line of its own
    net = example.net
    assert "swish_gate" in dw.dialects.ALEXEYAB.sections and "swish_gate" not in dw.dialects.PJREDDIE.sections
    assert net.layers[-1].reads() == [0] and net[-1].weights.shape == (4,)
    assert 0.5 <= float(net[-1].weights.min()) and float(net[-1].weights.max()) <= 1.5
    with pytest.raises(dw.CfgError, match=r"\[swish_gate\] is not supported by pjreddie Darknet \(only by AlexeyAB\)"):
        dw.load("toy.cfg", cfg_text=toy.EXAMPLE, dialect="pjreddie")


def test_a_family_without_forks_is_refused(registries: None) -> None:
    with pytest.raises(RuntimeError, match="NoForks.*must declare the forks"):
        register(type("NoForks", (dw.layers.Layer,), {"type": "no_forks", "headers": ("no_forks",)}))


def test_a_forgotten_concern_fails_naming_the_family(toy) -> None:
    cls = toy.SwishGate
    # no init range: its (c,) weights would be drawn as fan-in 1 without a word; now init refuses, naming it
    plain = type(
        "PlainGate",
        (cls,),
        {"type": "plain_gate", "headers": ("plain_gate",), "init_range": dw.layers.Layer.init_range},
    )
    register(plain)
    MODULES["plain_gate"] = MODULES["swish_gate"]
    with pytest.raises(NotImplementedError, match="PlainGate: array weights declares no fan_in"):
        _ = C.Example(plain, "alexeyab", toy.EXAMPLE.replace("swish_gate", "plain_gate")).net
    # a module that reads a layer its family's reads() does not list: caught by the reads check
    blind = type("BlindGate", (cls,), {"type": "blind_gate", "headers": ("blind_gate",), "reads": lambda self: []})
    register(blind)

    def forward(self, x, outs):
        return self.image(x) * torch.sigmoid(outs[self.index - 2] * self.weight.view(1, -1, 1, 1))

    MODULES["blind_gate"] = type("BlindModule", (MODULES["swish_gate"],), {"forward": forward})
    example = C.Example(blind, "alexeyab", toy.EXAMPLE.replace("swish_gate", "blind_gate"))
    with pytest.raises(AssertionError, match=r"BlindGate.*fails when it is given only the outputs its family's reads"):
        C.check_reads(blind, example)
    # no PyTorch module
    lone = type("LoneGate", (cls,), {"type": "lone_gate", "headers": ("lone_gate",)})
    register(lone)
    with pytest.raises(AssertionError, match="LoneGate.*has no PyTorch module"):
        C.check_registration(lone)
    # a state_dict name the catalogue does not declare
    renamed = type(
        "RenamedGate",
        (cls,),
        {
            "type": "renamed_gate",
            "headers": ("renamed_gate",),
            "arrays": lambda self: [ArraySpec("weights", (self.input.c,), "weights", "gain")],
        },
    )
    register(renamed)
    MODULES["renamed_gate"] = MODULES["swish_gate"]
    example = C.Example(renamed, "alexeyab", toy.EXAMPLE.replace("swish_gate", "renamed_gate"))
    with pytest.raises(AssertionError, match="lacks \\['gain'\\]"):
        C.check_arrays(renamed, example)
    assert AB in cls.forks
