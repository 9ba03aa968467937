"""Shared test helpers.

The core suite runs on data inside the repo (tests/data). Tests that compare with what the
real Darknet computed read ``../shared/fixtures`` (beside the checkout) and skip, saying so,
when it is absent.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures"
SHARED_CFG = SHARED / "cfg"
MODELS = SHARED / "models"

NO_SHARED = f"Darknet reference data not found at {SHARED} (CI places shared/ beside the checkout)"


def need_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(NO_SHARED)
    return path


@pytest.fixture
def fixtures_dir() -> Path:
    return need_shared(FIXTURES)


def fixture_cases() -> list[str]:
    """Names of the per-layer fixture directories (empty when shared/ is absent)."""
    if not FIXTURES.exists():
        return []
    return sorted(p.name for p in FIXTURES.iterdir() if (p / "model.weights").exists())


def shipped_cfgs() -> list[str]:
    if not SHARED_CFG.exists():
        return []
    return sorted(str(p.relative_to(SHARED_CFG)) for p in SHARED_CFG.rglob("*.cfg"))


def darknet_shapes(cfg_rel: str) -> dict:
    return json.loads((FIXTURES / "shapes" / Path(cfg_rel).with_suffix(".json")).read_text())


@pytest.fixture
def quiet():
    """Silence darkweights' own warnings inside a test."""
    from darkweights import DarkweightsWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DarkweightsWarning)
        yield


def write_cfg(tmp_path: Path, text: str, name: str = "t.cfg") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p
