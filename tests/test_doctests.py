"""The docstring examples run (they use the bundled model, so they need no files)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "darkweights",
    "darkweights.view",
    "darkweights.report",
    "darkweights.models",
    "darkweights.flops",
    "darkweights.network",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    if name != "darkweights.flops":
        assert result.attempted > 0, f"{name} has no examples"
