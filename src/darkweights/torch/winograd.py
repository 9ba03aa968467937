"""Winograd F(2x2, 3x3) for 3x3 stride-1 "same" convolutions on the CPU (inference only).

Darknet computes every convolution directly (im2col + GEMM). oneDNN's direct kernels already run
at the machine's peak, so the only way to beat OpenCV (which uses Winograd for these layers) is
fewer multiplications: each 2x2 output tile is computed from a 4x4 input tile with 16 products
per channel pair instead of 36 (Lavin & Gray, 2015, "Fast Algorithms for Convolutional Neural
Networks"). F(2,3) only adds, subtracts and halves, so its rounding is as good as the direct
sum's (measured: max |Δ| / max |y| 3e-7..9e-7 against float64, oneDNN's direct kernels 1e-6..3e-6).

Layout (NHWC throughout, batch ``N``):
  1. pad the input by 1 (and to an even size), transform rows then columns into
     ``V (N, th, tw, 16, C)``: ``B^T d B`` of every 4x4 tile (tiles overlap by 2);
  2. the 16 products ``U_g V_g`` (``U = G w G^T``, ``g = 4i + j``) are one grouped 1x1
     convolution, ``16`` groups of ``C -> K``, run by oneDNN on prepacked weights; the bias is
     added to group 5 alone, which ``A^T . A`` spreads to all four outputs of a tile;
  3. ``A^T M A`` back to ``(N, H, W, K)``, cropped to odd sizes; the activation in place.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# G of F(2,3) (filter transform), in float64 so that U is rounded once
_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))
BIAS_GROUP = 5  # (i, j) = (1, 1): A^T e_1 = (1, 1), so this product reaches all four outputs

# below this many channels in and out the transforms cost more than the saved products
# (measured on yolov4-tiny's layers: 64 -> 64 at 52x52 is a loss, 128 -> 128 a gain)
MIN_CHANNELS = 128


def eligible(
    size: int, stride: tuple[int, int], padding: int, dilation: int, groups: int, channels: int, filters: int
) -> bool:
    """A 3x3, stride 1, pad 1, dense convolution wide enough to gain from Winograd."""
    return (
        size == 3
        and stride == (1, 1)
        and padding == 1
        and dilation == 1
        and groups == 1
        and min(channels, filters) >= MIN_CHANNELS
    )


def transform_weights(w: torch.Tensor) -> torch.Tensor:
    """``U = G w G^T`` for every filter: ``(K, C, 3, 3)`` -> grouped 1x1 weights ``(16 K, C, 1, 1)``."""
    k, c = w.shape[:2]
    g = torch.tensor(_G, dtype=torch.float64)
    u = torch.einsum("ia,kcab,jb->ijkc", g, w.detach().to(torch.float64), g)  # (4, 4, K, C)
    return u.reshape(16 * k, c, 1, 1).to(torch.float32).contiguous()


def transform_bias(bias: torch.Tensor | None, filters: int) -> torch.Tensor:
    out = torch.zeros(16, filters, dtype=torch.float32)
    if bias is not None:
        out[BIAS_GROUP] = bias.detach()
    return out.reshape(-1)


def conv3x3(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor, filters: int) -> torch.Tensor:
    """``conv2d(x, w, b, padding=1)`` via F(2,3); ``packed``/``bias`` from :func:`pack` inputs.

    Returns an ``(N, K, H, W)`` tensor in channels_last memory.
    """
    n, c, h, w = x.shape
    th, tw = -(-h // 2), -(-w // 2)
    xh = x.permute(0, 2, 3, 1)  # NHWC view (free for channels_last input)
    p = F.pad(xh, (0, 0, 1, 2 * tw + 1 - w, 1, 2 * th + 1 - h))  # (N, 2th+2, 2tw+2, C)
    wp = 2 * tw + 2

    # rows: B^T d over the row index of every tile, for whole padded rows at once
    r = torch.empty(n, th, wp, 4, c, dtype=x.dtype)
    row = lambda i: p[:, i : i + 2 * th : 2]  # noqa: E731  rows 2t + i
    torch.sub(row(0), row(2), out=r[:, :, :, 0])
    torch.add(row(1), row(2), out=r[:, :, :, 1])
    torch.sub(row(2), row(1), out=r[:, :, :, 2])
    torch.sub(row(1), row(3), out=r[:, :, :, 3])
    # columns: (B^T d) B
    v = torch.empty(n, th, tw, 4, 4, c, dtype=x.dtype)
    col = lambda j: r[:, :, j : j + 2 * tw : 2]  # noqa: E731  columns 2u + j
    torch.sub(col(0), col(2), out=v[:, :, :, :, 0])
    torch.add(col(1), col(2), out=v[:, :, :, :, 1])
    torch.sub(col(2), col(1), out=v[:, :, :, :, 2])
    torch.sub(col(1), col(3), out=v[:, :, :, :, 3])

    # the 16 products: a grouped 1x1 convolution over the tiles (NHWC: the tile's 16 x C values)
    vx = v.view(n, th, tw, 16 * c).permute(0, 3, 1, 2)
    m = torch.ops.mkldnn._convolution_pointwise(vx, packed, bias, [0, 0], [1, 1], [1, 1], 16, "none", [], "")
    m = m.permute(0, 2, 3, 1).reshape(n, th, tw, 4, 4, filters)

    # A^T M A with A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]: rows, then columns into the output tiles
    s = torch.empty(n, th, 2, tw, 4, filters, dtype=x.dtype)
    torch.add(m[:, :, :, 0], m[:, :, :, 1], out=s[:, :, 0]).add_(m[:, :, :, 2])
    torch.sub(m[:, :, :, 1], m[:, :, :, 2], out=s[:, :, 1]).sub_(m[:, :, :, 3])
    y = torch.empty(n, th, 2, tw, 2, filters, dtype=x.dtype)
    torch.add(s[..., 0, :], s[..., 1, :], out=y[:, :, :, :, 0]).add_(s[..., 2, :])
    torch.sub(s[..., 1, :], s[..., 2, :], out=y[:, :, :, :, 1]).sub_(s[..., 3, :])
    y = y.view(n, 2 * th, 2 * tw, filters)
    if 2 * th != h or 2 * tw != w:
        y = y[:, :h, :w].contiguous()
    return y.permute(0, 3, 1, 2)
