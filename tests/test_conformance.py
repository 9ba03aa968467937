"""Every registered layer family answers every concern (tests/conformance.py): registration and forks, shape
(and Darknet's recorded geometry), stored arrays and their state_dict names, reads, BFLOPs (against the
recorded AlexeyAB tables), init ranges, the torch forward, the ONNX export, the inspect cells, the head.

A family that forgets a concern fails a test whose id names it. The examples are tests/family_examples.py.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the conformance suite builds every family's PyTorch module")

from darkweights import dialects
from darkweights.layers import LAYER_TYPES

from . import conformance as C
from .conftest import FIXTURES
from .family_examples import EXAMPLES

FAMILIES = sorted(LAYER_TYPES)
CASES = [(t, i) for t in FAMILIES for i in range(len(EXAMPLES.get(t, [])))]
ONE = [(t, 0) for t in FAMILIES if EXAMPLES.get(t)]

# families no Darknet build recorded geometry for, and why (test_every_family_has_darknet_shapes)
UNRECORDED_SHAPES = {"iseg": "pjreddie-only instance-segmentation head; no oracle case runs it yet"}
# AlexeyAB families its recorded tables do not print, and why (test_bflops_match_alexeyab)
UNRECORDED_COUNTS = {
    "contrastive": "AlexeyAB's parser refuses it without a [yolo] embedding_layer= (tests/data/darknet_tables/README)"
}


def example(family: str, i: int) -> C.Example:
    dialect, cfg = EXAMPLES[family][i]
    return C.Example(LAYER_TYPES[family], dialect, cfg)


_cache: dict[tuple[str, int], C.Example] = {}


def cached(family: str, i: int) -> C.Example:
    if (family, i) not in _cache:
        _cache[(family, i)] = example(family, i)
    return _cache[(family, i)]


@pytest.mark.parametrize("family", FAMILIES)
def test_registration(family: str) -> None:
    C.check_registration(LAYER_TYPES[family])
    assert EXAMPLES.get(family), f"layer family {family!r} has no example network in tests/family_examples.py"


@pytest.mark.parametrize("family", [t for t, _ in ONE])
def test_forks(family: str) -> None:
    C.check_forks(LAYER_TYPES[family], cached(family, 0))


def test_dialect_sections_are_derived() -> None:
    """A fork knows exactly the families that declare it, and every family is known to some fork."""
    for d in dialects.DIALECTS.values():
        assert d.sections == {t for t, c in LAYER_TYPES.items() if d.name in c.forks}
    assert set().union(*(d.sections for d in dialects.DIALECTS.values())) == set(LAYER_TYPES)


@pytest.mark.parametrize(("family", "i"), CASES)
def test_shape(family: str, i: int) -> None:
    C.check_shape(LAYER_TYPES[family], cached(family, i))


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_has_darknet_shapes(family: str) -> None:
    if not FIXTURES.exists():
        pytest.skip("the Darknet fixtures (../shared/fixtures) are absent: only the oracle cases are read")
    n = C.check_darknet_shapes(LAYER_TYPES[family])
    assert (n == 0) == (family in UNRECORDED_SHAPES), (
        f"layer family {family!r}: {n} layers with Darknet's geometry; UNRECORDED_SHAPES says "
        f"{UNRECORDED_SHAPES.get(family, 'it has some')}"
    )


@pytest.mark.parametrize(("family", "i"), CASES)
def test_arrays(family: str, i: int) -> None:
    C.check_arrays(LAYER_TYPES[family], cached(family, i))


@pytest.mark.parametrize(("family", "i"), CASES)
def test_init_range(family: str, i: int) -> None:
    C.check_init_range(LAYER_TYPES[family], cached(family, i))


@pytest.mark.parametrize(("family", "i"), CASES)
def test_reads(family: str, i: int) -> None:
    C.check_reads(LAYER_TYPES[family], cached(family, i))


@pytest.mark.parametrize("family", FAMILIES)
def test_bflops_match_alexeyab(family: str) -> None:
    cls = LAYER_TYPES[family]
    n = C.check_bflops(cls)
    if dialects.ALEXEYAB.name in cls.forks:
        assert (n == 0) == (family in UNRECORDED_COUNTS), (
            f"layer family {family!r}: {n} layers in the recorded AlexeyAB tables; UNRECORDED_COUNTS says "
            f"{UNRECORDED_COUNTS.get(family, 'it has some')}"
        )
    for i in range(len(EXAMPLES.get(family, []))):
        C.check_bflops_value(cls, cached(family, i))


@pytest.mark.parametrize(("family", "i"), CASES)
def test_torch(family: str, i: int) -> None:
    C.check_torch(LAYER_TYPES[family], cached(family, i))


@pytest.mark.parametrize(("family", "i"), ONE)
def test_onnx(family: str, i: int, tmp_path) -> None:
    pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
    C.check_onnx(LAYER_TYPES[family], cached(family, i), tmp_path)


@pytest.mark.parametrize(("family", "i"), CASES)
def test_cells(family: str, i: int) -> None:
    C.check_cells(LAYER_TYPES[family], cached(family, i))


@pytest.mark.parametrize("family", FAMILIES)
def test_cells_match_alexeyab(family: str) -> None:
    C.check_ab_cells(LAYER_TYPES[family])


@pytest.mark.parametrize(("family", "i"), CASES)
def test_head(family: str, i: int) -> None:
    C.check_head(LAYER_TYPES[family], cached(family, i))
