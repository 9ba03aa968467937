"""Resource guards: sane limits every size read from a user's file is checked against first.

Sizes come from cfg options, ``.weights`` headers, ``.npz``/``.safetensors`` headers and image
headers. Each is checked here against the file that carries it and an absolute limit before
anything is allocated from it, so a file that claims more than it holds fails in
milliseconds with a located error instead of exhausting memory.
"""

from __future__ import annotations

from typing import Any

from .errors import ArrayError

# Darknet holds every count (l.outputs, l.inputs, l.nweights, filters, width...) in a C int:
# beyond this its arithmetic overflows, so no cfg that works in Darknet exceeds it.
INT_MAX = 2**31 - 1
# A cfg is text: real ones are under 100 kB, MAX_LAYERS layers take ~0.5 MB; 16 MiB leaves room for comments.
MAX_CFG_BYTES = 16 << 20
# Metadata of an exported file: the cfg text (MAX_CFG_BYTES) and a few short values.
MAX_META_BYTES = MAX_CFG_BYTES + (1 << 20)
# A safetensors JSON header: the cfg text (MAX_CFG_BYTES) and ~100 bytes per array (~50,000 arrays for
# MAX_LAYERS layers); the format itself allows 100 MiB, which parsed as JSON would take several times that.
MAX_JSON_HEADER = MAX_CFG_BYTES + (16 << 20)
# JSON nesting: our headers are 3 deep; a hostile one 100,000 deep would exhaust the C stack or raise
# RecursionError from inside json.
MAX_JSON_DEPTH = 32
# Layers of one cfg: the largest real Darknet cfgs have under 400 (cspx-p7-mish: 375). Darknet itself has no
# limit (its count is an int); darkweights refuses more than this, with the line of the first layer too many,
# before building any: parsing costs ~30-100 us and ~2 kB a layer, so the limit bounds a cfg to about a second
# and 25 MB.
MAX_LAYERS = 10_000
# Anchors of one detection head: Darknet callocs 2*num floats (and a mask of num ints) before any
# other check; real cfgs use at most a few dozen.
MAX_ANCHORS = 1 << 16
# Decoded image size: 8K x 8K. Darknet itself would take more, but a detector input resized from
# a bigger photo gains nothing, and the float32 copy alone is 12 bytes a pixel.
MAX_IMAGE_PIXELS = 1 << 26
# Fewest bytes a compressed image can spend per pixel, to bound what a header may claim:
# a Huffman JPEG needs at least one bit per 8x8 block (a DC code), so 512 pixels a byte; deflate
# expands at most ~1032:1 and a PNG row of 1-bit pixels packs 8 pixels a byte.
JPEG_PIXELS_PER_BYTE = 512
PNG_PIXELS_PER_BYTE = 8 * 1032


def bounded_json(
    text: str | bytes,
    *,
    what: str,
    file: str | None = None,
    offset: int | None = None,
    max_bytes: int = MAX_META_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """``json.loads`` with a size and a nesting bound, every failure an :class:`ArrayError` naming ``what``
    (and ``file``/``offset``); ``NaN``/``Infinity`` literals are refused (no format here writes them)."""
    import json

    if len(text) > max_bytes:
        raise ArrayError(f"{what}: {len(text):,} bytes of JSON, more than {max_bytes:,}", file=file, offset=offset)

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        value = json.loads(text, parse_constant=constant)
    except RecursionError:
        raise ArrayError(f"{what}: JSON nested deeper than {max_depth} levels", file=file, offset=offset) from None
    except (ValueError, UnicodeDecodeError) as exc:
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ArrayError(f"{what}: not valid JSON ({detail})", file=file, offset=offset) from None
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise ArrayError(f"{what}: JSON nested deeper than {max_depth} levels", file=file, offset=offset)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, (dict, list)))
    return value


# Darknet dataset text (``.data`` files, image lists, label files, ``.names``): read whole, so bounded first.
MAX_DATA_TEXT_BYTES = 1 << 30
