"""Synthesis of valid random weights for any cfg (``darkweights init``): demos, tests, benchmarks.

Values follow the fixtures' recipe, as each layer family declares it (``Layer.init_range``): weights
``U(±sqrt(3/fan_in))``, biases and BN means ``U(±0.1)``, BN scales and variances ``U(0.5, 1.5)``
(positive variances), weighted-shortcut weights ``U(0.5, 1.5)``, implicit constants ``mean + U(±std)``.
Arrays are generated one at a time and streamed to disk, so a 250 MB file never needs 250 MB of memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from .errors import ArgumentError, WeightsError
from .network import Network
from .progress import bar
from .weightsfile import FLOAT, Header, Param, output

CHUNK = 1 << 22  # floats generated at a time when streaming to disk (16 MiB)


def value_range(net: Network, p: Param) -> tuple[float, float]:
    """The uniform range an array is drawn from: its layer family's :meth:`~darkweights.layers.Layer.init_range`."""
    layer = net.layers[p.layer]
    spec = next(s for s in layer.stored() if s.name == p.name)
    return layer.init_range(spec)


def random_array(net: Network, p: Param, rng: np.random.Generator) -> np.ndarray:
    lo, hi = value_range(net, p)
    return rng.uniform(lo, hi, size=p.shape).astype(FLOAT)


def random_arrays(net: Network, seed: int = 0, *, header: Header | None = None) -> Iterator[tuple[Param, np.ndarray]]:
    """``(Param, array)`` for every array Darknet's saver writes, in file order."""
    rng = np.random.default_rng(seed)
    for p in net.layout(header, mode="save"):
        yield p, random_array(net, p, rng)


def init(
    net: Network, path: str | Path | IO[bytes], seed: int = 0, *, header: Header | None = None, mode: str = "save"
) -> int:
    """Write a valid ``.weights`` file of random values for ``net``; returns its size in bytes.

    ``path`` is a file name (written atomically) or an open binary file (``io.BytesIO`` ...).

    Generates at most 16 MiB at a time (the same values as :func:`random_arrays`: the
    generator's stream does not depend on how it is split) and checks the free disk space
    first, so a cfg asking for an absurd size fails cleanly instead of filling the disk.
    ``mode="load"``: the layout Darknet's loader reads where it differs from the saver's (pjreddie
    ``numload``).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**128:
        raise ArgumentError(f"--seed {seed!r}: expected an integer from 0 to 2**128-1")
    header = header or Header.for_dialect(net.dialect)
    params = net.layout(header, mode=mode)
    total = params[-1].end if params else header.size
    if isinstance(path, (str, os.PathLike)):
        directory = os.path.dirname(os.path.abspath(path))
        import shutil

        free = shutil.disk_usage(directory).free if os.path.isdir(directory) else None
        if free is not None and total > free:
            raise WeightsError(
                f"the cfg needs a {total:,}-byte weights file but only {free:,} bytes are free", file=os.fspath(path)
            )
    rng = np.random.default_rng(seed)
    with output(path, inputs=[net.path]) as f, bar(total=total, desc="init", unit="B", unit_scale=True) as progress:
        f.write(header.to_bytes())
        for p in params:
            lo, hi = value_range(net, p)
            for start in range(0, p.count, CHUNK):
                n = min(CHUNK, p.count - start)
                f.write(rng.uniform(lo, hi, size=n).astype(FLOAT).data)
                progress.update(4 * n)
    return total


def tree_text(classes: int, seed: int = 0, *, roots: int = 0, branching: tuple[int, int] = (2, 12)) -> str:
    """A synthetic Darknet class tree (``name parent`` per line, the format of ``data/9k.tree``) with
    ``classes`` nodes, for tests: breadth-first like WordTree (a root group, then each expanded node's
    children as one contiguous group), groups of ``branching`` nodes (2..12), a few large ones and single-child
    chains (their softmax is 1), the rest leaves."""
    rng = np.random.default_rng(seed)
    roots = roots or min(classes, int(rng.integers(2, 8)))
    parents = [-1] * roots
    frontier = list(range(roots))
    while len(parents) < classes and frontier:
        node = frontier.pop(0)
        if rng.random() < 0.35 and frontier:
            continue  # stays a leaf (the last node of the frontier is always expanded: the tree reaches `classes`)
        r = rng.random()
        k = (
            1 if r < 0.25 else int(rng.integers(20, 60) if r > 0.95 else rng.integers(branching[0], branching[1] + 1))
        )  # 1: a chain
        k = min(k, classes - len(parents))
        frontier.extend(range(len(parents), len(parents) + k))
        parents.extend([node] * k)
    return "".join(f"n{i:08d} {p}\n" for i, p in enumerate(parents))


def map_text(classes: int, seed: int = 0, count: int = 200) -> str:
    """A synthetic ``map=`` file (``coco9k.map``: one tree node per line; Darknet reads 200)."""
    rng = np.random.default_rng(seed)
    return "".join(f"{int(v)}\n" for v in rng.choice(classes, size=count, replace=count > classes))
