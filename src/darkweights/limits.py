"""Resource guards: sane limits every size read from a user's file is checked against first.

Sizes come from cfg options, ``.weights`` headers, ``.npz``/``.safetensors`` headers and image
headers. Each is checked here against the file that carries it and an absolute limit before
anything is allocated from it, so a file that claims more than it holds fails in
milliseconds with a located error instead of exhausting memory.
"""

from __future__ import annotations

# Darknet holds every count (l.outputs, l.inputs, l.nweights, filters, width...) in a C int:
# beyond this its arithmetic overflows, so no cfg that works in Darknet exceeds it.
INT_MAX = 2**31 - 1
# A cfg is text: 64 MiB holds ~1 million layers; anything larger is not a cfg.
MAX_CFG_BYTES = 64 << 20
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
