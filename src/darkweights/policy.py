"""When weights may run as a whole model: the one policy of ``detect``, ``export``, ``verify`` and ``val``.

A partial file (one that ends at a layer boundary, like ``darknet53.conv.74``) leaves the later layers
without weights, and NaN/Inf values propagate through Darknet's forward: either way the numbers a command
would print are not the model's. Those commands refuse them unless told (``--allow-partial``,
``--allow-nonfinite``); ``inspect``, ``extract`` and ``pack`` keep reading them (``inspect`` reports both,
``extract`` warns about non-finite values).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import WeightsError

if TYPE_CHECKING:
    from .network import Network


def nonfinite(net: Network) -> list[tuple[str, int, int]]:
    """``(export key, layer, count)`` of every bound array holding NaN or Inf, in file order."""
    import numpy as np

    out = []
    params = {p.key: p for p in net.params()}
    for key, arr in net.arrays().items():
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if bad:
            out.append((key, params[key].layer, bad))
    return out


def check_usable(net: Network, purpose: str, *, allow_partial: bool = False, allow_nonfinite: bool = False) -> None:
    """Refuse (a located :class:`WeightsError`) weights that are partial or not finite, unless allowed.
    ``purpose`` names the command in the message (``"detect"``)."""
    if not net.has_weights:
        return
    where = net.weights_path or "weights"
    if net.cutoff is not None and not allow_partial:
        held = net.cutoff
        first = net.layers[held] if held < len(net.layers) else None
        missing = f"layer {held} [{first.section.name}] (cfg line {first.line})" if first else f"layer {held}"
        raise WeightsError(
            f"partial weights file: it holds layers 0..{held - 1} of {len(net.layers)}; the first missing is "
            f"{missing}. {purpose} would run the rest on no weights: pass --allow-partial to do it anyway",
            file=where,
            layer=held,
        )
    if not allow_nonfinite:
        bad = nonfinite(net)
        if bad:
            key, layer, count = bad[0]
            more = f" ({len(bad)} arrays, {sum(b[2] for b in bad):,} values in all)" if len(bad) > 1 else ""
            offset = next(p.offset for p in net.params() if p.key == key)
            raise WeightsError(
                f"{key} holds {count:,} NaN/Inf values{more}: {purpose} would compute garbage from them; "
                "pass --allow-nonfinite to run anyway",
                file=where,
                offset=offset,
                layer=layer,
            )
