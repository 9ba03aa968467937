"""JPEG decoder (baseline and progressive) that reproduces Darknet's stb_image bit for bit.

Darknet (AlexeyAB) reads images with ``stbi_load`` (stb_image v2.30, ``3rdparty/stb``).
Other decoders (libjpeg-turbo in Pillow/OpenCV) use different IDCT rounding and chroma
upsampling and differ from it by a few grey levels, which is enough to move detection
probabilities by several 1e-3. This module re-implements the *arithmetic* stb_image
uses, written from its documented behaviour:

* entropy decoding: sequential (SOF0/SOF1) and progressive (SOF2) Huffman, 8-bit
  samples, 1, 3 or 4 components, any integral sampling factors 1..4, restart
  intervals, several scans, up to four Huffman and quantisation tables (8- or 16-bit).
  Progressive scans (spectral selection, successive approximation, EOB runs) fill
  per-component buffers of *unscaled* coefficients with stb's rules (C ``short``
  values, single-component scans covering only the component's own blocks);
  they are dequantised at the end, with the quantisation tables in force then,
  as ``stbi__jpeg_finish`` does, and go through the same stages as baseline blocks;
* dequantisation with C ``short`` wrap-around of each product (``(short)(v * q)``);
* the integer "islow" IDCT (jidctint constants scaled by 4096, 2 extra bits after
  the column pass, ``+ 65536 + (128 << 17)`` then ``>> 17`` after the row pass), in
  the form of stb's SSE2 kernel, which x86-64 builds use: the sums ``s0±s4``,
  ``s1+s7`` and ``s3+s5`` are 16-bit lane additions, the column-pass results are
  saturated to 16 bits, everything else is 32-bit two's complement. For any
  realistic input this equals stb's scalar kernel;
* stb's chroma upsampling ("fancy" triangle filters for 2x horizontal, 2x vertical
  and 2x2 — including the swapped weights of its horizontal filter at the last
  even output pixel — and pixel replication for every other ratio);
* stb's reduced-precision YCbCr->RGB (``y << 20 | 1 << 19``, constants
  ``(int)(c * 4096 + .5) << 8``, Cb term of G masked to its high 16 bits, ``>> 20``,
  clamp), RGB/Adobe transform detection, CMYK/YCCK conversion with stb's rounded
  8x8 multiply, and its grey formula for one requested channel.

Everything after the Huffman decode is vectorised over all blocks/pixels with NumPy;
the Huffman decode itself is a table-driven pure-Python loop (one 16-bit table lookup
per coefficient, including the magnitude bits when they fit). Progressive refinement
scans locate their correction bits in that loop and apply them with NumPy; a
progressive file takes about twice as long as the same image in baseline.

Unlike stb_image, which pads truncated data with zero bits and returns whatever it
decoded, :func:`decode_jpeg` raises :class:`JPEGError` for corrupt or truncated data,
and :class:`JPEGUnsupportedError` (both ``ValueError``) for JPEG flavours it does not
implement (arithmetic coding, lossless, hierarchical, 12-bit), so callers can fall
back to another decoder. A progressive file must end with EOI: without it stb skips
its final pass and returns pixels it never computed.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from functools import lru_cache, partial

import numpy as np

from ..errors import ArgumentError, ImageError

__all__ = ["decode_jpeg", "JPEGError", "JPEGUnsupportedError", "is_jpeg"]


class JPEGError(ImageError, ValueError):
    """Corrupt or truncated JPEG data (a :class:`~darkweights.errors.ImageError`; still a ``ValueError``)."""


class JPEGUnsupportedError(JPEGError):
    """A valid JPEG flavour this decoder does not implement (e.g. arithmetic coding)."""


def is_jpeg(data: bytes) -> bool:
    """True if ``data`` starts with a JPEG SOI marker."""
    return len(data) >= 2 and data[0] == 0xFF and data[1] == 0xD8


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the first frame header, without decoding; None if not found.

    Lets the caller refuse a declared size the file cannot hold before anything is allocated.
    """
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        m = data[pos + 1]
        if m == 0xFF:
            pos += 1
            continue
        if 0xD0 <= m <= 0xD9 or m == 0x01:
            pos += 2
            continue
        length = (data[pos + 2] << 8) | data[pos + 3]
        if m in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            if pos + 9 > n:
                return None
            return (data[pos + 7] << 8) | data[pos + 8], (data[pos + 5] << 8) | data[pos + 6]
        if length < 2:
            return None
        pos += 2 + length
    return None


# Position in the 8x8 block (row-major) of the i-th coefficient in zig-zag order.
_ZIGZAG = np.array(
    [
        0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
        12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
        35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
        58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
    ],
    dtype=np.intp,
)  # fmt: skip

_SOF_UNSUPPORTED = {
    0xC3: "lossless JPEG (SOF3)",
    0xC5: "hierarchical JPEG (SOF5)",
    0xC6: "hierarchical progressive JPEG (SOF6)",
    0xC7: "hierarchical lossless JPEG (SOF7)",
    0xC9: "arithmetic-coded JPEG (SOF9)",
    0xCA: "arithmetic-coded progressive JPEG (SOF10)",
    0xCB: "arithmetic-coded lossless JPEG (SOF11)",
    0xCD: "arithmetic-coded hierarchical JPEG (SOF13)",
    0xCE: "arithmetic-coded hierarchical progressive JPEG (SOF14)",
    0xCF: "arithmetic-coded hierarchical lossless JPEG (SOF15)",
    0xCC: "arithmetic-coded JPEG (DAC marker)",
}

_MAX_DIM = 1 << 24  # STBI_MAX_DIMENSIONS
_EOB_JUMP = 100  # run advance used to encode end-of-block in the AC tables
_BLOCK_MAX_BYTES = 256  # a block's codes + magnitudes take at most 64 * 31 bits
_IDCT_CHUNK = 32768  # blocks per vectorised IDCT step (bounds temporary memory)


# --------------------------------------------------------------------------- Huffman


def _canonical_codes(counts: Sequence[int]) -> list[tuple[int, int]]:
    """(code, length) for each symbol of a DHT table, in symbol order (JPEG Annex C)."""
    out = []
    code = 0
    for length in range(1, 17):
        for _ in range(counts[length - 1]):
            out.append((code, length))
            code += 1
        if code - 1 >= (1 << length) and counts[length - 1]:
            raise JPEGError(f"corrupt JPEG: Huffman table has too many codes of length {length}")
        code <<= 1
    return out


def _prefix_table(counts: bytes, values: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Symbol and code length (0: no code) for every 16-bit lookahead value."""
    sym = np.zeros(1 << 16, dtype=np.int64)
    length = np.zeros(1 << 16, dtype=np.int64)
    for (code, ln), value in zip(_canonical_codes(counts), values):
        lo = code << (16 - ln)
        hi = (code + 1) << (16 - ln)
        sym[lo:hi] = value
        length[lo:hi] = ln
    return sym, length


def _table_rows(*cols: np.ndarray) -> list:
    """``list(zip(*cols))`` of Python ints, built run by run (tables are piecewise constant)."""
    table = np.stack(cols)
    starts = np.concatenate([[0], np.flatnonzero((table[:, 1:] != table[:, :-1]).any(axis=0)) + 1])
    lengths = np.diff(np.append(starts, table.shape[1])).tolist()
    rows: list = []
    for row, n in zip(zip(*table[:, starts].tolist()), lengths):
        rows += [row] * n
    return rows


def _extend(mag: np.ndarray, s: np.ndarray) -> np.ndarray:
    """JPEG EXTEND: s-bit magnitude field -> signed value (vectorised; s may be 0)."""
    s = s.astype(np.int64)
    half = np.where(s > 0, np.left_shift(1, np.maximum(s - 1, 0)), 1)
    return np.where((s > 0) & (mag < half), mag - np.left_shift(1, s) + 1, mag)


@lru_cache(maxsize=8)  # ~5 MB per table; most files share the standard tables
def _dc_table(counts: bytes, values: bytes) -> list[tuple[int, int]]:
    """65536 entries indexed by the next 16 bits.

    ``(n, diff)``: consume ``n`` bits (code + magnitude), DC difference ``diff``;
    ``(-code_len, s)``: code + magnitude exceed 16 bits, read ``s`` magnitude bits next;
    ``(0, 0)``: no valid code (or a DC category above 15, which stb rejects).
    """
    sym, length = _prefix_table(counts, values)
    idx = np.arange(1 << 16, dtype=np.int64)
    valid = (length > 0) & (sym <= 15)
    s = np.where(valid, sym, 0)
    fits = valid & (length + s <= 16)
    mag = (idx >> np.maximum(16 - length - s, 0)) & ((np.left_shift(1, s)) - 1)
    diff = _extend(mag, s)
    n = np.where(fits, length + s, np.where(valid, -length, 0))
    v = np.where(fits, diff, np.where(valid, s, 0))
    return _table_rows(n, v)


@lru_cache(maxsize=8)  # ~5 MB per table; most files share the standard tables
def _ac_table(counts: bytes, values: bytes) -> list[tuple[int, int, int]]:
    """65536 entries ``(n, adv, value)`` indexed by the next 16 bits.

    ``n > 0``: consume ``n`` bits (code + magnitude), advance the coefficient index by
    ``adv`` (run + 1) and store ``value`` there. End-of-block (any ``s == 0`` symbol but
    ZRL, as in stb) is ``adv = _EOB_JUMP``; ZRL stores a 0 sixteen places on.
    ``n < 0``: a code of ``-n`` bits whose ``value`` magnitude bits do not fit in the
    lookahead. ``n == 0``: no valid code.
    """
    sym, length = _prefix_table(counts, values)
    idx = np.arange(1 << 16, dtype=np.int64)
    valid = length > 0
    s = sym & 15
    run = sym >> 4
    fits = valid & (length + s <= 16)
    mag = (idx >> np.maximum(16 - length - s, 0)) & ((np.left_shift(1, s)) - 1)
    val = _extend(mag, s)
    eob = valid & (s == 0) & (sym != 0xF0)
    adv = np.where(eob, _EOB_JUMP, run + 1)
    n = np.where(fits, length + s, np.where(valid, -length, 0))
    v = np.where(fits, np.where(s == 0, 0, val), np.where(valid, s, 0))
    return _table_rows(n, adv, v)


@lru_cache(maxsize=8)
def _prog_ac_table(counts: bytes, values: bytes) -> tuple[int, list[tuple[int, int, int]]]:
    """AC table for progressive scans: ``(bits, entries)`` indexed by the next ``bits`` bits.

    ``bits`` is the longest code plus magnitude, capped at 16 (refinement tables are
    small). Entries ``(n, run, value)`` as in :func:`_ac_table`, but with the raw run:
    ``value == 0`` marks the s == 0 symbols, an EOB run of class ``run`` if run < 15,
    else ZRL.
    """
    sym16, len16 = _prefix_table(counts, values)
    valid16 = len16 > 0
    bits = int(min(16, (len16 + (sym16 & 15))[valid16].max(initial=1)))
    idx = np.arange(1 << bits, dtype=np.int64)
    sym = sym16[idx << (16 - bits)]
    length = len16[idx << (16 - bits)]
    valid = length > 0
    s = sym & 15
    fits = valid & (length + s <= bits)
    mag = (idx >> np.maximum(bits - length - s, 0)) & ((np.left_shift(1, s)) - 1)
    n = np.where(fits, length + s, np.where(valid, -length, 0))
    v = np.where(fits, _extend(mag, s), np.where(valid, s, 0))
    return bits, _table_rows(n, sym >> 4, v)


def _windows(buf: bytes) -> list[int]:
    """``w[i]`` = bytes ``i..i+3`` of ``buf`` as a big-endian 32-bit int."""
    b = np.frombuffer(buf + b"\0\0\0", dtype=np.uint8).astype(np.int64)
    w = (b[:-3] << 24) | (b[1:-2] << 16) | (b[2:-1] << 8) | b[3:]
    return w.tolist()


def _intervals(segments: list[tuple[int, int]], n_units: int, restart: int) -> list[tuple[int, int, int, int]]:
    """Restart intervals of a scan: ``(first bit, end bit, first unit, units)`` each.

    A unit is an MCU of an interleaved scan or a block of a single-component one; each
    interval holds ``restart`` units (all of them without DRI) and starts on a byte.
    """
    per_interval = restart if restart else n_units
    n_intervals = -(-n_units // per_interval)
    if len(segments) < n_intervals:
        raise JPEGError(
            f"truncated or corrupt JPEG: scan has {len(segments) - 1} restart markers, expected {n_intervals - 1}"
        )
    extra = segments[n_intervals:]
    if len(extra) > 1 or (extra and extra[0][1] > extra[0][0]):
        # stb tolerates one restart marker after the last interval; anything more makes
        # it stop reading the file, so refuse rather than guess.
        raise JPEGError("corrupt JPEG: unexpected data after the last restart interval")
    return [
        (start << 3, end << 3, i * per_interval, min(per_interval, n_units - i * per_interval))
        for i, (start, end) in enumerate(segments[:n_intervals])
    ]


def _check_interval_end(p: int, limit: int, interval: int, n_intervals: int) -> None:
    if interval < n_intervals - 1 and limit - p >= 24:
        # stb looks for the restart marker within the next 24 bits and stops decoding
        # the scan if it is not there; a valid stream leaves at most 7 padding bits.
        raise JPEGError(f"corrupt JPEG: {limit - p} unused bits before restart marker {interval}")


def _truncated(where: str) -> JPEGError:
    return JPEGError(f"truncated or corrupt JPEG: entropy-coded data ends in the middle of {where}")


def _decode_scan_coefficients(
    win: list[int],
    segments: list[tuple[int, int]],
    plan: list[tuple[list, list, int]],
    n_mcus: int,
    restart: int,
    n_preds: int,
) -> array[int]:
    """Huffman-decode one scan: zig-zag coefficients of every block, in decode order.

    ``plan`` lists, for each block of an MCU, its (DC table, AC table, predictor slot).
    The DC entry of each block is the DC *value* (after prediction), not the difference.
    Returns a flat int64 array, 64 entries per block (plus padding at the end).
    ``win`` must extend at least one MCU's worth of bytes past the last segment.
    """
    bpm = len(plan)
    coef = array("q", bytes(8 * (n_mcus * bpm * 64 + 256)))
    intervals = _intervals(segments, n_mcus, restart)
    base = 0
    for interval, (p, limit, first, todo) in enumerate(intervals):
        pred = [0] * n_preds
        for mcu in range(first, first + todo):
            for dct, act, ci in plan:
                # ---- DC
                n, v = dct[(win[p >> 3] >> (16 - (p & 7))) & 0xFFFF]
                if n > 0:
                    p += n
                elif n < 0:
                    p -= n
                    if v:
                        m = (win[p >> 3] >> (32 - v - (p & 7))) & ((1 << v) - 1)
                        p += v
                        v = m if m >> (v - 1) else m - (1 << v) + 1
                else:
                    raise JPEGError(f"corrupt JPEG: bad Huffman code (DC) at entropy byte {p >> 3}")
                v += pred[ci]
                pred[ci] = v
                coef[base] = v
                # ---- AC
                k = base
                kend = base + 63
                while k < kend:
                    n, r, v = act[(win[p >> 3] >> (16 - (p & 7))) & 0xFFFF]
                    if n > 0:
                        p += n
                    elif n < 0:
                        p -= n
                        m = (win[p >> 3] >> (32 - v - (p & 7))) & ((1 << v) - 1)
                        p += v
                        v = m if m >> (v - 1) else m - (1 << v) + 1
                    else:
                        raise JPEGError(f"corrupt JPEG: bad Huffman code (AC) at entropy byte {p >> 3}")
                    k += r
                    coef[k] = v
                if k > kend and v and k < base + _EOB_JUMP:
                    raise JPEGError("corrupt JPEG: AC coefficient run past the end of a block")
                base += 64
            if p > limit:
                raise _truncated(f"MCU {mcu} of {n_mcus}")
        _check_interval_end(p, limit, interval, len(intervals))
    return coef


# Progressive scans, one restart interval (blocks ``lo`` to ``hi`` of the scan) per call.
# They update the components' coefficient buffers ``zz`` (``array('h')``, zig-zag order,
# unscaled, kept in C ``short`` range as stb stores them) and return the bit position
# after the interval. ``offsets[b]`` is where the scan's b-th block starts in its ``zz``,
# ``cis[b]`` the index of its component. The Huffman symbol-and-magnitude read is written out
# inline in each loop (as in the baseline one above), not as a shared function: a Python call
# per coefficient would double the decode time.

_Ints = Sequence[int]


def _prog_dc_first(
    win: list[int], p: int, limit: int, lo: int, hi: int, *, zz: list, cis: _Ints, offsets: _Ints,
    al: int, tables: list,
) -> int:  # fmt: skip
    """First DC scan (stb ``stbi__jpeg_decode_block_prog_dc``, ``succ_high == 0``).

    ``tables[ci]`` is component ``ci``'s DC table (:func:`_dc_table`).
    """
    pred = [0] * len(zz)
    for b in range(lo, hi):
        ci = cis[b]
        n, v = tables[ci][(win[p >> 3] >> (16 - (p & 7))) & 0xFFFF]
        if n > 0:
            p += n
        elif n < 0:
            p -= n
            if v:
                m = (win[p >> 3] >> (32 - v - (p & 7))) & ((1 << v) - 1)
                p += v
                v = m if m >> (v - 1) else m - (1 << v) + 1
        else:
            raise JPEGError(f"corrupt JPEG: bad Huffman code (DC) at entropy byte {p >> 3}")
        v += pred[ci]
        pred[ci] = v
        v <<= al
        if not -32768 <= v <= 32767:  # stb: "can't merge dc and ac"
            raise JPEGError("corrupt JPEG: DC coefficient out of range")
        zz[ci][offsets[b]] = v
        if p > limit:
            raise _truncated("a progressive DC scan")
    return p


def _prog_dc_refine(
    win: list[int], p: int, limit: int, lo: int, hi: int, *, zz: list, cis: _Ints, offsets: _Ints,
    al: int,
) -> int:  # fmt: skip
    """DC refinement: one bit per block, adding 2**al (16-bit wrap)."""
    if p + hi - lo > limit:
        raise _truncated("a progressive DC refinement scan")
    bit = 1 << al
    for b in range(lo, hi):
        if (win[p >> 3] >> (31 - (p & 7))) & 1:
            z = zz[cis[b]]
            o = offsets[b]
            z[o] = ((z[o] + bit + 0x8000) & 0xFFFF) - 0x8000
        p += 1
    return p


def _prog_ac_first(
    win: list[int], p: int, limit: int, lo: int, hi: int, *, zz: array[int], offsets: _Ints,
    ss: int, se: int, al: int, bits: int, table: list[tuple[int, int, int]],
) -> int:  # fmt: skip
    """First AC scan of band ``ss..se`` (stb ``stbi__jpeg_decode_block_prog_ac``)."""
    shift = 32 - bits
    mask = (1 << bits) - 1
    eobrun = 0
    for b in range(lo, hi):
        if eobrun:  # the block lies in an EOB run: nothing coded for it
            eobrun -= 1
            continue
        k = offsets[b] + ss
        kend = k + se - ss
        while k <= kend:
            n, r, v = table[(win[p >> 3] >> (shift - (p & 7))) & mask]
            if n > 0:
                p += n
            elif n < 0:
                p -= n
                m = (win[p >> 3] >> (32 - v - (p & 7))) & ((1 << v) - 1)
                p += v
                v = m if m >> (v - 1) else m - (1 << v) + 1
            else:
                raise JPEGError(f"corrupt JPEG: bad Huffman code (AC) at entropy byte {p >> 3}")
            if v:
                k += r
                if k > kend:
                    raise JPEGError("corrupt JPEG: AC coefficient run past the end of a band")
                zz[k] = (((v << al) + 0x8000) & 0xFFFF) - 0x8000  # (short)(v * 2**al)
                k += 1
            elif r == 15:  # ZRL
                k += 16
            else:  # EOBr: this block and 2**r - 1 + (r more bits) further blocks end here
                eobrun = (1 << r) - 1
                if r:
                    eobrun += (win[p >> 3] >> (32 - r - (p & 7))) & ((1 << r) - 1)
                    p += r
                break
        if p > limit:
            raise _truncated("a progressive AC scan")
    return p


def _prog_ac_refine(
    win: list[int], p: int, limit: int, lo: int, hi: int, *, zz: array[int], offsets: _Ints,
    ss: int, se: int, al: int, bits: int, table: list[tuple[int, int, int]], zpos: _Ints,
    zstart: _Ints, corrections: list[tuple[int, int]],
) -> int:  # fmt: skip
    """AC refinement of band ``ss..se`` (stb ``stbi__jpeg_decode_block_prog_ac``).

    Each symbol skips ``run`` coefficients that are still zero and puts +-2**al on the
    next one (nothing for ZRL/EOB). Every non-zero coefficient passed on the way -- in
    EOB-run blocks, every one in the band -- takes one correction bit. Which ones are
    zero does not change during the scan (new values land behind the walk), so
    ``zpos`` (offsets of the band's zero coefficients, in decode order; block b's start
    at ``zstart[b]``) gives each symbol's target directly, and correction bits are only
    located here, as ``(bit position, count)`` runs that the caller applies.
    """
    shift = 32 - bits
    mask = (1 << bits) - 1
    bit = 1 << al
    band = se - ss + 1
    correct = corrections.append
    eobrun = 0
    for b in range(lo, hi):
        zi = zstart[b]
        zend = zstart[b + 1]
        if eobrun:
            eobrun -= 1
            m = band - (zend - zi)
            if m:
                correct((p, m))
                p += m
        else:
            k = offsets[b] + ss
            kend = k + se - ss
            while k <= kend:
                n, r, v = table[(win[p >> 3] >> (shift - (p & 7))) & mask]
                if n > 0:
                    p += n
                elif n < 0:  # a 16-bit code followed by the sign bit
                    p -= n
                    if v != 1:
                        raise JPEGError("corrupt JPEG: bad Huffman code (AC refinement)")
                    v = 1 if (win[p >> 3] >> (31 - (p & 7))) & 1 else -1
                    p += 1
                else:
                    raise JPEGError(f"corrupt JPEG: bad Huffman code (AC) at entropy byte {p >> 3}")
                if v:
                    if v * v != 1:  # stb accepts only 1-bit magnitudes here
                        raise JPEGError("corrupt JPEG: bad Huffman code (AC refinement)")
                    v *= bit
                elif r < 15:  # EOBr: no new coefficient, refine to the end of the band
                    eobrun = (1 << r) - 1
                    if r:
                        eobrun += (win[p >> 3] >> (32 - r - (p & 7))) & ((1 << r) - 1)
                        p += r
                    r = 64
                if zi + r < zend:
                    target = zpos[zi + r]
                    m = target - k - r
                    if v:  # (ZRL "writes" 0 onto the 16th zero)
                        zz[target] = v
                    zi += r + 1
                    k = target + 1
                else:  # the band ends first
                    m = kend + 1 - k - (zend - zi)
                    k = kend + 1
                if m:
                    correct((p, m))
                    p += m
        if p > limit:
            raise _truncated("a progressive AC refinement scan")
    return p


# --------------------------------------------------------------------------- pixel stages


def _f2f(x: float) -> int:
    """stb's IDCT constant: (int)(float(x) * 4096 + 0.5) -- C truncation toward zero."""
    return int(float(np.float32(x)) * 4096 + 0.5)


_C0541 = _f2f(0.5411961)
_CM1847 = _f2f(-1.847759065)
_C0765 = _f2f(0.765366865)
_C1175 = _f2f(1.175875602)
_C0298 = _f2f(0.298631336)
_C2053 = _f2f(2.053119869)
_C3072 = _f2f(3.072711026)
_C1501 = _f2f(1.501321110)
_CM0899 = _f2f(-0.899976223)
_CM2562 = _f2f(-2.562915447)
_CM1961 = _f2f(-1.961570560)
_CM0390 = _f2f(-0.390180644)


def _wrap16(x: np.ndarray) -> np.ndarray:
    return ((x + 0x8000) & 0xFFFF) - 0x8000


def _wrap32(x: np.ndarray) -> np.ndarray:
    return ((x + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def _idct_pass(s: list[np.ndarray], bias: int, shift: int) -> list[np.ndarray]:
    """One 1-D pass of stb's SSE2 IDCT on int64 arrays holding int16 values.

    Sums of two inputs are 16-bit lane adds (wrap); products and later sums are 32-bit
    (wrap, emulated by reducing mod 2**32 before the arithmetic shift); results are
    saturated to int16 as by ``packs_epi32``.
    """
    s0, s1, s2, s3, s4, s5, s6, s7 = s
    # even part
    t2 = s2 * _C0541 + s6 * (_C0541 + _CM1847)
    t3 = s2 * (_C0541 + _C0765) + s6 * _C0541
    t0 = _wrap16(s0 + s4) << 12
    t1 = _wrap16(s0 - s4) << 12
    x0 = t0 + t3
    x3 = t0 - t3
    x1 = t1 + t2
    x2 = t1 - t2
    # odd part
    sum17 = _wrap16(s1 + s7)
    sum35 = _wrap16(s3 + s5)
    y0 = s7 * (_CM1961 + _C0298) + s3 * _CM1961
    y2 = s7 * _CM1961 + s3 * (_CM1961 + _C3072)
    y1 = s5 * (_CM0390 + _C2053) + s1 * _CM0390
    y3 = s5 * _CM0390 + s1 * (_CM0390 + _C1501)
    y4 = sum17 * (_C1175 + _CM0899) + sum35 * _C1175
    y5 = sum17 * _C1175 + sum35 * (_C1175 + _CM2562)
    x4 = y0 + y4
    x5 = y1 + y5
    x6 = y2 + y5
    x7 = y3 + y4
    x0 += bias
    x1 += bias
    x2 += bias
    x3 += bias

    def out(v: np.ndarray) -> np.ndarray:
        return np.clip(_wrap32(v) >> shift, -32768, 32767)

    return [
        out(x0 + x7), out(x1 + x6), out(x2 + x5), out(x3 + x4),
        out(x3 - x4), out(x2 - x5), out(x1 - x6), out(x0 - x7),
    ]  # fmt: skip


def _idct_blocks(blocks: np.ndarray) -> np.ndarray:
    """(N, 8, 8) dequantised int16 coefficients (row-major) -> (N, 8, 8) uint8 samples."""
    if len(blocks) > _IDCT_CHUNK:
        return np.concatenate([_idct_blocks(blocks[i : i + _IDCT_CHUNK]) for i in range(0, len(blocks), _IDCT_CHUNK)])
    d = blocks.astype(np.int64)
    # column pass: 1-D IDCT down each column (inputs are the 8 rows)
    cols = _idct_pass([d[:, r, :] for r in range(8)], 512, 10)  # cols[r] is (N, 8): row r
    # row pass: 1-D IDCT along each row (inputs are the 8 columns of the intermediate)
    inter = np.stack(cols, axis=1)  # (N, 8 rows, 8 cols)
    rows = _idct_pass([inter[:, :, c] for c in range(8)], 65536 + (128 << 17), 17)
    out = np.stack(rows, axis=2)  # rows[c] is (N, 8): column c
    return np.clip(out, 0, 255).astype(np.uint8)


def _resample_rows(n_out: int, vs: int, comp_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """stb's per-output-row choice of the 'near' and 'far' component rows."""
    near = np.empty(n_out, dtype=np.intp)
    far = np.empty(n_out, dtype=np.intp)
    ystep = vs >> 1
    line0 = line1 = 0
    ypos = 0
    half = vs >> 1
    for j in range(n_out):
        if ystep >= half:
            near[j], far[j] = line1, line0
        else:
            near[j], far[j] = line0, line1
        ystep += 1
        if ystep >= vs:
            ystep = 0
            line0 = line1
            ypos += 1
            if ypos < comp_rows:
                line1 += 1
    return near, far


def _upsample(plane: np.ndarray, hs: int, vs: int, out_h: int, out_w: int) -> np.ndarray:
    """Upsample a component plane (comp_rows, w_lores) uint8 to (out_h, out_w) as stb does."""
    near_i, far_i = _resample_rows(out_h, vs, plane.shape[0])
    p = plane.astype(np.int32)
    near = p[near_i]
    if hs == 1 and vs == 1:
        out = near
    elif hs == 1 and vs == 2:
        out = (3 * near + p[far_i] + 2) >> 2
    elif hs == 2 and vs == 1:
        w = near.shape[1]
        out = np.empty((out_h, 2 * w), dtype=np.int32)
        if w == 1:
            out[:, 0] = out[:, 1] = near[:, 0]
        else:
            out[:, 0] = near[:, 0]
            out[:, 1] = (3 * near[:, 0] + near[:, 1] + 2) >> 2
            mid = 3 * near[:, 1 : w - 1] + 2
            out[:, 2 : 2 * w - 2 : 2] = (mid + near[:, 0 : w - 2]) >> 2
            out[:, 3 : 2 * w - 2 : 2] = (mid + near[:, 2:w]) >> 2
            # stb weights the last even pixel 3:1 towards its *left* neighbour
            out[:, 2 * w - 2] = (3 * near[:, w - 2] + near[:, w - 1] + 2) >> 2
            out[:, 2 * w - 1] = near[:, w - 1]
    elif hs == 2 and vs == 2:
        t = 3 * near + p[far_i]
        w = t.shape[1]
        out = np.empty((out_h, 2 * w), dtype=np.int32)
        if w == 1:
            out[:, 0] = out[:, 1] = (t[:, 0] + 2) >> 2
        else:
            out[:, 0] = (t[:, 0] + 2) >> 2
            out[:, 1 : 2 * w - 1 : 2] = (3 * t[:, :-1] + t[:, 1:] + 8) >> 4
            out[:, 2 : 2 * w : 2] = (3 * t[:, 1:] + t[:, :-1] + 8) >> 4
            out[:, 2 * w - 1] = (t[:, w - 1] + 2) >> 2
    else:
        out = np.repeat(near, hs, axis=1)
    return out[:, :out_w]


def _fixed(x: float) -> int:
    """stb's colour constant: ((int)(x * 4096.0f + 0.5f)) << 8, in float32."""
    return int(np.float32(x) * np.float32(4096.0) + np.float32(0.5)) << 8


_CR_R = _fixed(1.40200)
_CR_G = -_fixed(0.71414)
_CB_G = -_fixed(0.34414)
_CB_B = _fixed(1.77200)


def _ycbcr_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    # every intermediate fits in int32 (|value| < 2**29)
    yf = (y.astype(np.int32) << 20) + (1 << 19)
    cr = cr.astype(np.int32) - 128
    cb = cb.astype(np.int32) - 128
    r = (yf + cr * _CR_R) >> 20
    g = (yf + cr * _CR_G + ((cb * _CB_G) & ~0xFFFF)) >> 20
    b = (yf + cb * _CB_B) >> 20
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


def _blinn(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """stb's rounded x*y/255 for bytes."""
    t = x.astype(np.int64) * y.astype(np.int64) + 128
    return ((t + (t >> 8)) >> 8).astype(np.uint8)


def _grey(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """stb's RGB -> Y for one requested channel."""
    y = r.astype(np.int32) * 77 + g.astype(np.int32) * 150 + b.astype(np.int32) * 29
    return (y >> 8).astype(np.uint8)


# --------------------------------------------------------------------------- parsing


class _Component:
    __slots__ = ("id", "h", "v", "tq", "x", "y", "bw", "bh", "coef", "done", "zz")

    def __init__(self, cid: int, h: int, v: int, tq: int) -> None:
        self.id, self.h, self.v, self.tq = cid, h, v, tq


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def need(self, n: int, what: str) -> None:
        if self.pos + n > len(self.data):
            raise JPEGError(f"truncated JPEG: file ends inside {what}")

    def u8(self) -> int:
        self.need(1, "a marker segment")
        v = self.data[self.pos]
        self.pos += 1
        return v

    def u16(self) -> int:
        self.need(2, "a marker segment")
        v = (self.data[self.pos] << 8) | self.data[self.pos + 1]
        self.pos += 2
        return v

    def segment(self, name: str) -> bytes:
        """Payload of a length-prefixed marker segment."""
        length = self.u16()
        if length < 2:
            raise JPEGError(f"corrupt JPEG: bad {name} segment length {length}")
        self.need(length - 2, f"the {name} segment")
        body = self.data[self.pos : self.pos + length - 2]
        self.pos += length - 2
        return body

    def marker(self) -> int | None:
        """Next marker code (skipping 0xFF fill bytes), or None if no marker is here."""
        data = self.data
        if self.pos >= len(data):
            return None
        if data[self.pos] != 0xFF:
            return None
        while self.pos < len(data) and data[self.pos] == 0xFF:
            self.pos += 1
        if self.pos >= len(data):
            return None
        m = data[self.pos]
        self.pos += 1
        return m


def _entropy_segments(data: bytes, pos: int) -> tuple[bytes, list[tuple[int, int]], int]:
    """Collect the entropy-coded data of a scan starting at ``pos``.

    Returns the de-stuffed bytes of all restart intervals concatenated (each interval
    starting on a byte boundary), their (start, end) offsets, and the position of the
    marker that ended the scan (or ``len(data)``). ``FF 00`` is a data byte 0xFF; runs
    of 0xFF fill bytes before a marker or a stuffed zero are skipped (as stb does).
    """
    chunks: list[bytes] = []
    segments: list[tuple[int, int]] = []
    n = len(data)
    out_len = 0
    seg_start = 0
    while True:
        ff = data.find(b"\xff", pos)
        if ff < 0:
            chunks.append(data[pos:])
            out_len += n - pos
            segments.append((seg_start, out_len))
            return b"".join(chunks), segments, n
        chunks.append(data[pos:ff])
        out_len += ff - pos
        q = ff + 1
        while q < n and data[q] == 0xFF:
            q += 1
        if q >= n:  # 0xFF at the end of the file: stb reads 0 after it, i.e. a data byte
            chunks.append(b"\xff")
            segments.append((seg_start, out_len + 1))
            return b"".join(chunks), segments, n
        c = data[q]
        if c == 0:
            chunks.append(b"\xff")
            out_len += 1
            pos = q + 1
        elif 0xD0 <= c <= 0xD7:
            segments.append((seg_start, out_len))
            seg_start = out_len
            pos = q + 1
        else:
            segments.append((seg_start, out_len))
            return b"".join(chunks), segments, ff


def decode_jpeg(data: bytes, channels: int = 3) -> np.ndarray:
    """Decode a baseline or progressive JPEG exactly as ``stbi_load(..., req_comp=channels)``.

    Returns uint8 ``(H, W, 3)`` for ``channels=3`` (grey images replicated to three
    channels) or ``(H, W)`` for ``channels=1``. Raises :class:`JPEGUnsupportedError`
    for arithmetic/lossless/hierarchical/12-bit files and
    :class:`JPEGError` for corrupt or truncated data (both are ``ValueError``).
    """
    if channels not in (1, 3):
        raise ArgumentError(f"channels must be 1 or 3, got {channels}")
    data = bytes(data)
    rd = _Reader(data)
    if rd.marker() != 0xD8:
        raise JPEGError("not a JPEG file (no SOI marker)")

    qt = [np.zeros(64, dtype=np.int64) for _ in range(4)]  # zig-zag order; stb starts with zeros
    dc_spec: dict[int, tuple[bytes, bytes]] = {}
    ac_spec: dict[int, tuple[bytes, bytes]] = {}
    restart = 0
    jfif = False
    app14: int = -1
    comps: list[_Component] = []

    def tables_and_misc(m: int) -> bool:
        """Handle DQT/DHT/DRI/APPn/COM; False if ``m`` is none of them."""
        nonlocal restart, jfif, app14
        if m == 0xDB:
            body = rd.segment("DQT")
            i = 0
            while i < len(body):
                pq, tq = body[i] >> 4, body[i] & 15
                if pq > 1 or tq > 3:
                    raise JPEGError("corrupt JPEG: bad DQT table header")
                size = 128 if pq else 64
                vals = body[i + 1 : i + 1 + size]
                if len(vals) != size:
                    raise JPEGError("corrupt JPEG: bad DQT segment length")
                arr = np.frombuffer(vals, dtype=">u2" if pq else np.uint8).astype(np.int64)
                qt[tq] = arr
                i += 1 + size
            return True
        if m == 0xC4:
            body = rd.segment("DHT")
            i = 0
            while i < len(body):
                if i + 17 > len(body):
                    raise JPEGError("corrupt JPEG: bad DHT segment length")
                tc, th = body[i] >> 4, body[i] & 15
                if tc > 1 or th > 3:
                    raise JPEGError("corrupt JPEG: bad DHT table header")
                counts = body[i + 1 : i + 17]
                total = sum(counts)
                if total > 256 or i + 17 + total > len(body):
                    raise JPEGError("corrupt JPEG: bad DHT segment length")
                values = body[i + 17 : i + 17 + total]
                _canonical_codes(counts)  # validates the code lengths
                (ac_spec if tc else dc_spec)[th] = (counts, values)
                i += 17 + total
            return True
        if m == 0xDD:
            body = rd.segment("DRI")
            if len(body) != 2:
                raise JPEGError("corrupt JPEG: bad DRI length")
            restart = (body[0] << 8) | body[1]
            return True
        if 0xE0 <= m <= 0xEF or m == 0xFE:
            body = rd.segment("APP/COM")
            if m == 0xE0 and len(body) >= 5 and body[:5] == b"JFIF\0":
                jfif = True
            elif m == 0xEE and len(body) >= 12 and body[:6] == b"Adobe\0":
                app14 = body[11]
            return True
        return False

    # ---- header up to the frame
    while True:
        m = rd.marker()
        if m is None:
            if rd.pos >= len(data):
                raise JPEGError("truncated JPEG: no frame header (SOF) found")
            rd.pos += 1  # stb skips padding between header segments
            continue
        if m in (0xC0, 0xC1, 0xC2):
            break
        if m in _SOF_UNSUPPORTED:
            raise JPEGUnsupportedError(f"unsupported JPEG flavour: {_SOF_UNSUPPORTED[m]}")
        if m == 0xD9:
            raise JPEGError("corrupt JPEG: end of image before the frame header")
        if not tables_and_misc(m):
            raise JPEGError(f"corrupt JPEG: unexpected marker 0x{m:02X} before the frame header")

    progressive = m == 0xC2
    body = rd.segment("SOF")
    if len(body) < 6:
        raise JPEGError("corrupt JPEG: bad SOF length")
    if body[0] != 8:
        raise JPEGUnsupportedError(f"unsupported JPEG flavour: {body[0]}-bit samples (only 8-bit)")
    img_y = (body[1] << 8) | body[2]
    img_x = (body[3] << 8) | body[4]
    nc = body[5]
    if img_y == 0:
        raise JPEGUnsupportedError("unsupported JPEG flavour: height defined by a DNL marker")
    if img_x == 0:
        raise JPEGError("corrupt JPEG: width 0")
    if img_x > _MAX_DIM or img_y > _MAX_DIM:
        raise JPEGError("corrupt JPEG: image too large")
    if nc not in (1, 3, 4):
        raise JPEGError(f"corrupt JPEG: bad component count {nc}")
    if len(body) != 6 + 3 * nc:
        raise JPEGError("corrupt JPEG: bad SOF length")
    if img_x * img_y * max(nc, channels) + 1 > 0x7FFFFFFF:
        raise JPEGError(f"JPEG too large for stb_image: {img_x}x{img_y}x{nc}")
    rgb_ids = 0
    for i in range(nc):
        cid, hv, tq = body[6 + 3 * i], body[7 + 3 * i], body[8 + 3 * i]
        h, v = hv >> 4, hv & 15
        if not 1 <= h <= 4 or not 1 <= v <= 4:
            raise JPEGError("corrupt JPEG: bad sampling factors")
        if tq > 3:
            raise JPEGError("corrupt JPEG: bad quantisation table index")
        if nc == 3 and cid == b"RGB"[i]:
            rgb_ids += 1
        comps.append(_Component(cid, h, v, tq))
    h_max = max(c.h for c in comps)
    v_max = max(c.v for c in comps)
    for c in comps:
        if h_max % c.h or v_max % c.v:
            raise JPEGError("corrupt JPEG: non-integral sampling ratio")
    mcu_x = -(-img_x // (8 * h_max))
    mcu_y = -(-img_y // (8 * v_max))
    for c in comps:
        c.x = (img_x * c.h + h_max - 1) // h_max
        c.y = (img_y * c.v + v_max - 1) // v_max
        c.bw = (c.x + 7) >> 3  # blocks that hold pixels
        c.bh = (c.y + 7) >> 3
        c.coef = None  # (mcu_y * v, mcu_x * h, 64) int16, natural order; allocated by a scan
        c.done = None  # (mcu_y * v, mcu_x * h) bool: blocks decoded (progressive: DC started)
        c.zz = None  # progressive only: unscaled zig-zag coefficients, same block layout

    # ---- scans
    while True:
        m = rd.marker()
        if m is None or m == 0xD9:
            break
        if m == 0xDA:
            sos = rd.segment("SOS")
            ns = sos[0] if sos else 0
            if ns < 1 or ns > 4 or ns > nc:
                raise JPEGError("corrupt JPEG: bad SOS component count")
            if len(sos) != 4 + 2 * ns:
                raise JPEGError("corrupt JPEG: bad SOS length")
            scomps = []
            for i in range(ns):
                cid, tsel = sos[1 + 2 * i], sos[2 + 2 * i]
                match = [c for c in comps if c.id == cid]
                if not match:
                    raise JPEGError(f"corrupt JPEG: scan refers to unknown component {cid}")
                td, ta = tsel >> 4, tsel & 15
                if td > 3 or ta > 3:
                    raise JPEGError("corrupt JPEG: bad Huffman table index in SOS")
                scomps.append((match[0], td, ta))
            ss, se, a = sos[1 + 2 * ns], sos[2 + 2 * ns], sos[3 + 2 * ns]
            if progressive:
                buf, segments, end = _entropy_segments(data, rd.pos)
                rd.pos = end
                _decode_progressive_scan(
                    buf, segments, scomps, comps, restart, (ss, se, a >> 4, a & 15),
                    dc_spec, ac_spec, mcu_x, mcu_y,
                )  # fmt: skip
                continue
            if any(td not in dc_spec or ta not in ac_spec for _, td, ta in scomps):
                raise JPEGError("corrupt JPEG: scan uses an undefined Huffman table")
            # the spectral-selection end (se) is ignored by stb for sequential scans
            if ss != 0 or a != 0:
                raise JPEGError("corrupt JPEG: bad spectral selection for a sequential scan")
            buf, segments, end = _entropy_segments(data, rd.pos)
            rd.pos = end
            _decode_scan(buf, segments, scomps, restart, dc_spec, ac_spec, qt, mcu_x, mcu_y)
            continue
        if m == 0xDC:  # DNL
            body = rd.segment("DNL")
            if len(body) != 2 or ((body[0] << 8) | body[1]) != img_y:
                raise JPEGError("corrupt JPEG: bad DNL marker")
            continue
        if 0xD0 <= m <= 0xD7:  # stray restart marker between scans: stb skips it
            continue
        if not tables_and_misc(m):
            break  # stb stops reading at an unknown marker and keeps what it has
    if progressive and m != 0xD9:
        # stbi__jpeg_finish (dequantise + IDCT) only runs at EOI; without it stb returns
        # pixels it never computed.
        raise JPEGError("truncated or corrupt JPEG: progressive data ends without EOI")

    # ---- pixels
    is_rgb = nc == 3 and (rgb_ids == 3 or (app14 == 0 and not jfif))
    decode_n = 1 if (nc == 3 and channels < 3 and not is_rgb) else nc
    if nc == 4 and app14 not in (0, 2):
        decode_n = 3 if channels == 3 else 1  # stb ignores the fourth channel here
    for c in comps[:decode_n]:
        if c.done is None or not c.done[: c.bh, : c.bw].all():
            raise JPEGError(f"truncated or corrupt JPEG: no scan data for component {c.id}")
        if progressive:  # stbi__jpeg_finish: with the quantisation tables current at EOI
            zz = np.frombuffer(c.zz, dtype=np.int16).reshape(c.done.shape + (64,))
            c.coef = _dequantise(zz[: c.bh, : c.bw], qt[c.tq])
    planes = []
    for c in comps[:decode_n]:
        blocks = c.coef[: c.bh, : c.bw].reshape(-1, 8, 8)
        pix = _idct_blocks(blocks).reshape(c.bh, c.bw, 8, 8).transpose(0, 2, 1, 3)
        plane = pix.reshape(c.bh * 8, c.bw * 8)[: c.y, : c.x]
        planes.append(_upsample(plane, h_max // c.h, v_max // c.v, img_y, img_x))

    if channels == 3:
        if nc == 3:
            if is_rgb:
                out = np.stack(planes, axis=-1).astype(np.uint8)
            else:
                out = _ycbcr_to_rgb(*planes)
        elif nc == 4:
            if app14 == 0:  # CMYK
                k = planes[3]
                out = np.stack([_blinn(planes[i], k) for i in range(3)], axis=-1)
            elif app14 == 2:  # YCCK
                rgb = _ycbcr_to_rgb(*planes[:3])
                k = planes[3]
                inv = 255 - rgb.astype(np.int32)
                out = np.stack([_blinn(inv[..., i], k) for i in range(3)], axis=-1)
            else:  # YCbCr + unused fourth channel
                out = _ycbcr_to_rgb(*planes[:3])
        else:
            out = np.repeat(planes[0].astype(np.uint8)[:, :, None], 3, axis=2)
        return np.ascontiguousarray(out, dtype=np.uint8)
    # one channel
    if is_rgb:
        out = _grey(*planes)
    elif nc == 4 and app14 == 0:
        k = planes[3]
        out = _grey(*(_blinn(planes[i], k) for i in range(3)))
    elif nc == 4 and app14 == 2:
        out = _blinn(255 - planes[0].astype(np.int64), planes[3])
    else:
        out = planes[0]
    return np.ascontiguousarray(out, dtype=np.uint8)


def _decode_scan(
    buf: bytes,
    segments: list[tuple[int, int]],
    scomps: list[tuple[_Component, int, int]],
    restart: int,
    dc_spec: dict[int, tuple[bytes, bytes]],
    ac_spec: dict[int, tuple[bytes, bytes]],
    qt: list[np.ndarray],
    mcu_x: int,
    mcu_y: int,
) -> None:
    """Decode one sequential scan and store its dequantised blocks in the components."""
    plan = []
    layout = []  # per scan component: (component, first block slot in the MCU, blocks)
    if len(scomps) == 1:
        c, td, ta = scomps[0]
        n_mcus = c.bw * c.bh
        plan.append((_dc_table(*dc_spec[td]), _ac_table(*ac_spec[ta]), 0))
    else:
        n_mcus = mcu_x * mcu_y
        for si, (c, td, ta) in enumerate(scomps):
            first = len(plan)
            dct, act = _dc_table(*dc_spec[td]), _ac_table(*ac_spec[ta])
            plan.extend([(dct, act, si)] * (c.h * c.v))
            layout.append((c, first))
    bpm = len(plan)
    # Every block takes at least 2 bits (a DC and an AC code), so a scan claiming more
    # blocks than its data can hold is truncated; refuse before allocating for it.
    if n_mcus * bpm * 2 > 8 * len(buf):
        raise JPEGError(f"truncated JPEG: {len(buf)} bytes of entropy-coded data cannot hold {n_mcus * bpm} blocks")
    win = _windows(buf + bytes(_BLOCK_MAX_BYTES * bpm + 16))
    coef = _decode_scan_coefficients(win, segments, plan, n_mcus, restart, len(scomps))
    zz = np.frombuffer(coef, dtype=np.int64)[: n_mcus * bpm * 64].reshape(n_mcus, bpm, 64)

    def store(c: _Component, z: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
        q = qt[c.tq]
        dc = z[..., 0] * q[0]
        if dc.size and (dc.min() < -32768 or dc.max() > 32767):
            raise JPEGError("corrupt JPEG: DC coefficient out of range")
        if c.coef is None:
            c.coef = np.zeros((mcu_y * c.v, mcu_x * c.h, 64), dtype=np.int16)
            c.done = np.zeros((mcu_y * c.v, mcu_x * c.h), dtype=bool)
        c.coef[rows, cols] = _dequantise(z, q)
        c.done[rows, cols] = True

    if len(scomps) == 1:
        c = scomps[0][0]
        z = zz[:, 0, :]
        idx = np.arange(n_mcus)
        store(c, z, idx // c.bw, idx % c.bw)
        return
    mj, mi = np.divmod(np.arange(n_mcus), mcu_x)
    for c, first in layout:
        for y in range(c.v):
            for x in range(c.h):
                z = zz[:, first + y * c.h + x, :]
                store(c, z, mj * c.v + y, mi * c.h + x)


def _dequantise(zz: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``(short)(coefficient * quant)``: zig-zag coefficients -> natural-order int16."""
    deq = _wrap16(zz.astype(np.int64) * q)
    nat = np.empty_like(deq)
    nat[..., _ZIGZAG] = deq
    return nat.astype(np.int16)


def _int_array(values: np.ndarray) -> array[int]:
    """Compact int64 storage that Python loops index quickly (unlike NumPy arrays)."""
    return array("q", values.astype(np.int64).tobytes())


def _scan_blocks(
    scomps: list[tuple[_Component, int, int]], comps: list[_Component], mcu_x: int, mcu_y: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """A progressive scan's blocks in decode order: component indices, offsets in ``zz``.

    Also returns the blocks per restart unit (MCU). As in stb, a single-component scan
    walks only that component's ceil(x / 8) by ceil(y / 8) blocks, not the MCU padding.
    """
    if len(scomps) == 1:
        c = scomps[0][0]
        rows, cols = np.divmod(np.arange(c.bh * c.bw), c.bw)
        offsets = (rows * (mcu_x * c.h) + cols) * 64
        return np.full(offsets.size, comps.index(c)), offsets, 1
    mj, mi = np.divmod(np.arange(mcu_x * mcu_y), mcu_x)
    ci_cols, off_cols = [], []
    for c, _, _ in scomps:
        for y in range(c.v):
            for x in range(c.h):
                ci_cols.append(np.full(mj.size, comps.index(c)))
                off_cols.append(((mj * c.v + y) * (mcu_x * c.h) + mi * c.h + x) * 64)
    cis = np.stack(ci_cols, axis=1).ravel()
    return cis, np.stack(off_cols, axis=1).ravel(), len(off_cols)


def _decode_progressive_scan(
    buf: bytes,
    segments: list[tuple[int, int]],
    scomps: list[tuple[_Component, int, int]],
    comps: list[_Component],
    restart: int,
    params: tuple[int, int, int, int],
    dc_spec: dict[int, tuple[bytes, bytes]],
    ac_spec: dict[int, tuple[bytes, bytes]],
    mcu_x: int,
    mcu_y: int,
) -> None:
    """Decode one progressive scan into the components' unscaled coefficients (``zz``).

    ``params`` is (Ss, Se, Ah, Al) from the SOS header. The first DC scan of a
    component allocates its ``zz``; any other scan before that is refused (stb would
    work on uninitialised memory).
    """
    ss, se, ah, al = params
    if ss > 63 or se > 63 or ss > se or ah > 13 or al > 13:
        raise JPEGError(f"corrupt JPEG: bad progressive scan (Ss={ss} Se={se} Ah={ah} Al={al})")
    if (ss == 0 or len(scomps) > 1) and se != 0:  # stb decodes interleaved scans as DC
        raise JPEGError("corrupt JPEG: progressive scan mixes DC and AC coefficients")
    cis, offsets, bpm = _scan_blocks(scomps, comps, mcu_x, mcu_y)
    zz = [c.zz for c in comps]
    args = dict(offsets=_int_array(offsets), al=al)
    if ss == 0 and ah == 0:
        # Every block takes at least one bit: refuse a truncated scan before allocating.
        if offsets.size > 8 * len(buf):
            raise JPEGError(f"truncated JPEG: {len(buf)} bytes of entropy-coded data cannot hold {offsets.size} blocks")
        tables: list = [None] * len(comps)
        for c, td, _ in scomps:
            if td not in dc_spec:
                raise JPEGError("corrupt JPEG: scan uses an undefined Huffman table")
            ci = comps.index(c)
            tables[ci] = _dc_table(*dc_spec[td])
            mine = offsets[cis == ci] // 64
            if c.zz is None:
                zz[ci] = c.zz = array("h", bytes(128 * mcu_y * c.v * mcu_x * c.h))
                c.done = np.zeros((mcu_y * c.v, mcu_x * c.h), dtype=bool)
            else:  # stb clears a block (AC included) before decoding its first DC
                np.frombuffer(c.zz, dtype=np.int16).reshape(-1, 64)[mine] = 0
            c.done.reshape(-1)[mine] = True
        decode = partial(_prog_dc_first, zz=zz, cis=_int_array(cis), tables=tables, **args)
    else:
        for c, _, ta in scomps:
            if c.zz is None:
                raise JPEGError(f"corrupt JPEG: scan for component {c.id} before its first DC scan")
            if ss and ta not in ac_spec:
                raise JPEGError("corrupt JPEG: scan uses an undefined Huffman table")
        if ss == 0:
            decode = partial(_prog_dc_refine, zz=zz, cis=_int_array(cis), **args)
        else:
            zc = scomps[0][0].zz
            bits, table = _prog_ac_table(*ac_spec[scomps[0][2]])
            args.update(zz=zc, ss=ss, se=se, bits=bits, table=table)
            if ah == 0:
                decode = partial(_prog_ac_first, **args)
            else:
                coefs = np.frombuffer(zc, dtype=np.int16)
                is_zero = coefs.reshape(-1, 64)[offsets // 64, ss : se + 1] == 0
                zb, zk = np.nonzero(is_zero)
                zstart = np.concatenate([[0], np.cumsum(is_zero.sum(axis=1))])
                corrections: list[tuple[int, int]] = []
                decode = partial(
                    _prog_ac_refine, zpos=_int_array(offsets[zb] + ss + zk),
                    zstart=_int_array(zstart), corrections=corrections, **args,
                )  # fmt: skip

    win = _windows(buf + bytes(_BLOCK_MAX_BYTES + 16))
    intervals = _intervals(segments, offsets.size // bpm, restart)
    for interval, (p, limit, first, count) in enumerate(intervals):
        p = decode(win, p, limit, first * bpm, (first + count) * bpm)
        _check_interval_end(p, limit, interval, len(intervals))

    if ss and ah and corrections:
        # The correction bits, in stream order, belong to the band's non-zero
        # coefficients in decode order; a set bit grows a magnitude lacking bit al.
        start, count = np.array(corrections, dtype=np.int64).T
        bitpos = np.repeat(start - np.cumsum(count) + count, count) + np.arange(count.sum())
        nb, nk = np.nonzero(~is_zero)
        nzpos = offsets[nb] + ss + nk
        c = coefs[nzpos].astype(np.int32)
        bit = 1 << al
        grow = (np.unpackbits(np.frombuffer(buf, dtype=np.uint8))[bitpos] == 1) & (c & bit == 0)
        coefs[nzpos[grow]] = _wrap16(np.where(c > 0, c + bit, c - bit)[grow])
