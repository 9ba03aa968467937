"""Darknet's class hierarchy files (YOLO9000): ``tree=`` of ``[softmax]``/``[region]``.

A tree file has one node per line, ``name parent`` (``data/9k.tree``: ``n02084071 1045``), the parent
an index into the lines before (``-1`` for a root). ``read_tree`` (``src/tree.c``) groups *consecutive*
lines with the same parent: each group is one softmax; ``child[p]`` is the group whose parent is
``p``. The tree never changes the stored arrays (``parse_softmax``/``parse_region`` only read it into
``l.softmax_tree``), so shapes, layout and ``inspect`` never need the file; the forward and ``detect``
do, and find it as Darknet does (the path as written, relative to the working directory), else beside
the cfg.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import CfgError

if TYPE_CHECKING:
    from .layers import Layer
    from .network import Network

_INT = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class Tree:
    """``tree`` of ``src/tree.c``: per node its ``parent``, ``child`` group (-1: none), ``group``, ``leaf``;
    per group its ``offset`` and ``size`` (groups are contiguous runs of nodes)."""

    names: tuple[str, ...]
    parent: np.ndarray
    child: np.ndarray
    group: np.ndarray
    leaf: np.ndarray
    offset: np.ndarray
    size: np.ndarray

    @property
    def n(self) -> int:
        return len(self.names)

    @property
    def groups(self) -> int:
        return len(self.size)


def parse_tree(text: str) -> Tree:
    """``read_tree``: every line is a node (``sscanf("%s %d")``: a missing parent is -1); a new group
    starts wherever the parent differs from the previous line's. ``child[parent] = group`` as pjreddie's
    ``read_tree`` sets it (AlexeyAB's never allocates ``child``: its ``hierarchy_top_prediction`` would
    dereference NULL, but its ``detector test`` never calls it)."""
    names, parents = [], []
    for line in text.splitlines():
        fields = line.split(None, 1)
        names.append(fields[0] if fields else "")
        m = _INT.match(fields[1].lstrip()) if len(fields) > 1 else None
        parents.append(int(m.group()) if m else -1)
    n = len(names)
    parent = np.array(parents, dtype=np.int64)
    group = np.zeros(n, dtype=np.int64)
    offsets, sizes, last, size = [], [], -1, 0
    for i, p in enumerate(parents):
        if p != last:
            offsets.append(i - size)
            sizes.append(size)
            size, last = 0, p
        group[i] = len(sizes)
        size += 1
    offsets.append(n - size)
    sizes.append(size)
    child = np.full(n, -1, dtype=np.int64)
    leaf = np.ones(n, dtype=bool)
    for i, p in enumerate(parents):
        if p >= 0:
            if p >= n:
                raise ValueError(f"line {i + 1}: parent {p} is not a node of the tree ({n} lines)")
            child[p] = group[i]
            leaf[p] = False
    return Tree(
        tuple(names), parent, child, group, leaf, np.array(offsets, dtype=np.int64), np.array(sizes, dtype=np.int64)
    )


def read_data_file(layer: Layer, net: Network, key: str = "tree") -> tuple[str, str]:
    """``(where, text)`` of the file an option such as ``tree=`` names: ``net.data_files[value]`` if given
    (text in memory: a fixture's synthetic tree), else the file as written (Darknet's ``fopen``, relative to
    the working directory), else relative to the cfg's folder; a clear error naming the cfg line if none."""
    value = getattr(layer, key)
    given = net.data_files
    if value in given:
        return f"{value} (in memory)", given[value]
    path = _find(layer, net.path, key, value)
    return str(path), path.read_text(errors="replace")


def _find(layer: Layer, cfg_path: str | None, key: str, value: str) -> Path:
    tried = [Path(value)]
    if cfg_path and not os.path.isabs(value):
        tried.append(Path(os.path.dirname(os.path.abspath(cfg_path))) / value)
    for p in tried:
        if p.is_file():
            return p
    opt = layer.section.find(key)
    where = f"{os.path.abspath(value)} (the working directory, as Darknet reads it)" + "".join(
        f" nor {p} (beside the cfg)" for p in tried[1:]
    )
    raise layer.error(
        f"[{layer.section.name}] {key}={value}: no such file: neither {where}; the forward needs it, "
        "shapes and weights do not",
        CfgError,
        option=opt,
    )


def load_tree(layer: Layer, net: Network, count: int) -> Tree:
    """The layer's tree, checked against the ``count`` values it is applied to."""
    path, text = read_data_file(layer, net)
    try:
        tree = parse_tree(text)
    except ValueError as e:
        raise layer.error(f"tree file {path}: {e}", CfgError) from None
    if tree.n > count:
        raise layer.error(
            f"tree file {path} has {tree.n} nodes but the layer has {count} values to apply it to: "
            "Darknet would read past its buffer",
            CfgError,
        )
    return tree


# --------------------------------------------------------------------------- decoding (src/tree.c)
# (hierarchy_top_prediction, pjreddie's get_region_detections without a map, is not needed: pjreddie's
# [region] tree= forward is refused, see darkweights.torch.families.region.PJ_REGION_TREE)


def hierarchy_predictions(p: np.ndarray, tree: Tree) -> np.ndarray:
    """``hierarchy_predictions(.., only_leaves=0)`` on the last axis, in place: each node times its parent's
    (already multiplied) value, in node order (float32, as Darknet)."""
    for j in np.nonzero(tree.parent >= 0)[0]:
        p[..., j] *= p[..., tree.parent[j]]
    return p
