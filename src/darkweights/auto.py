"""``dialect="auto"``: read a cfg as each plausible fork would, then let the evidence decide
(:func:`darkweights.dialects.choose`)."""

from __future__ import annotations

import warnings

from . import dialects
from .cfg import read_cfg, read_cfg_text
from .dialects import Dialect, Trial
from .errors import CfgError, DarkweightsError, DarkweightsWarning
from .network import Network, PathLike
from .weightsfile import Source, peek_revision


def _trial(cfg: PathLike, text: str, fork: Dialect, sizes: dict) -> tuple[Trial, Network | None, list]:
    """Build the network under one fork's rules, keeping its warnings for later."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parsed = read_cfg(cfg, dialect=fork, text=text)  # malformed text: an error whatever the fork
        try:
            net = Network(parsed, fork, **sizes)
        except DarkweightsError as exc:
            return Trial(fork, error=exc), None, []
    # inline comments that change a value AB/pjreddie read (numbers read the same: atoi stops at '#')
    comments = sum(1 for s in net.cfg.sections for o in s.options if o.misread)
    uses_bn = any(L.uses_bn for L in net.layers)
    return Trial(fork, ignored=tuple(net._builder.ignored), inline_comments=comments, uses_bn=uses_bn), net, caught


def auto_network(
    cfg: PathLike, cfg_text: str | None, weights: Source | None, provenance: str | None, sizes: dict
) -> Network:
    """``dialect="auto"``: read the cfg as each plausible fork would, then let the evidence decide.

    AlexeyAB is tried first; the other forks are tried only when something could favour them
    (AlexeyAB refuses or ignores part of the cfg, the header says pjreddie wrote it, the cfg has
    inline comments only hank-ai strips, or the files name their maker), so the common case costs
    one parse.
    """
    text = cfg_text if cfg_text is not None else read_cfg_text(cfg)
    revision = peek_revision(weights)
    first, net, caught = _trial(cfg, text, dialects.DEFAULT, sizes)
    results = {dialects.DEFAULT.name: (first, net, caught)}
    doubt = (
        first.error is not None
        or first.ignored
        or first.inline_comments
        or provenance is not None
        or (revision is not None and revision != dialects.DEFAULT.header_revision)
    )
    if doubt:
        for fork in dialects.DIALECTS.values():
            if fork.name not in results:
                try:
                    results[fork.name] = _trial(cfg, text, fork, sizes)
                except CfgError as exc:  # hank-ai's stricter syntax refuses the text
                    results[fork.name] = (Trial(fork, error=exc), None, [])
    trials = [r[0] for r in results.values()]
    choice = dialects.choose(trials, revision, provenance=dialects.from_provenance(provenance))
    _, net, caught = results[choice.dialect.name]
    assert net is not None
    for w in caught:  # the chosen reading's warnings, as if it had been the only parse
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if choice.note:
        warnings.warn(f"{net.path}: {choice.note}", DarkweightsWarning, stacklevel=3)
    net.dialect_choice = choice
    return net
