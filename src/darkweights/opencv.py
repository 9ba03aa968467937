"""``verify --against opencv``: our forward against OpenCV's independent Darknet importer, per layer.

OpenCV (random BN statistics only, see the fixtures README) normalises with BN epsilon 1e-6 (Darknet
1e-5), so our faithful model is held to ``rel <= 2e-4`` per layer (measured: <= 7e-5 on
yolov4/yolov4-tiny/yolov7-tiny/efficientnet_b0 at 128 px); with ``bn_eps="opencv"`` our model uses
OpenCV's epsilon and is held to ``1e-5`` (measured: <= 1.5e-6). Fusion and Winograd are disabled.
OpenCV decodes ``[yolo]``/``[region]`` itself; those heads are compared in OpenCV's decoded form
(:func:`head_rows_like_opencv`), skipping the class scores OpenCV zeroed (threshold/NMS).
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArgumentError, UnsupportedError
from .heads import NUMPY, Head, decode
from .verify import Report, Row, compare_arrays

OPENCV_TOLERANCE = 2e-4
OPENCV_MATCHED_EPS_TOLERANCE = 1e-5


ATTACHED = {
    "bn",
    "relu",
    "leaky",
    "mish",
    "swish",
    "logistic",
    "tanh",
    "elu",
    "selu",
    "relu6",
    "hardtan",
    "sigmoid",
    "gelu",
    "hardswish",
    "power",
}


def opencv_layer_map(names: Sequence[str]) -> dict[int, str]:
    """Darknet layer index -> the OpenCV layer holding its output.

    OpenCV's Darknet importer names layers ``<kind>_<index>``; activations and batch-norm are
    separate layers attached to the preceding primary layer (their number is off by one), a
    ``[yolo]`` head is ``permute_<i>`` then ``yolo_<i>`` and a ``[region]`` ``permute_<i>`` then
    ``detection_out``. The last OpenCV layer of each
    Darknet layer holds its output.
    """
    out: dict[int, str] = {}
    current: int | None = None
    for name in names:
        m = re.match(r"^(.*)_(\d+)$", name)
        if not m:  # e.g. "detection_out", OpenCV's [region]: belongs to the current layer
            if current is not None:
                out[current] = name
            continue
        kind, number = m.group(1), int(m.group(2))
        if kind in ATTACHED and current is not None:
            out[current] = name
            continue
        current = number
        out[number] = name
    return out


def _cfg_for_size(net: Any) -> str:
    """The cfg text with ``[net]`` width/height/channels set to the network's (OpenCV reads them)."""
    want = {"width": net.width, "height": net.height, "channels": net.channels}
    if not net.input.is_image:  # only inputs=: OpenCV needs an image, a 1x1 one with inputs channels is the same
        want = {"width": 1, "height": 1, "channels": net.inputs}
    out: list[str] = []
    in_net, written = False, set()
    for line in net.cfg.text.splitlines():
        stripped = re.sub(r"\s", "", line)
        if stripped.startswith("["):
            if in_net:  # leaving [net]: add the keys it did not have
                out.extend(f"{k}={v}" for k, v in want.items() if k not in written)
            in_net = stripped in ("[net]", "[network]") and not out
            out.append(line)
            continue
        key = stripped.split("=", 1)[0]
        if in_net and key in want:
            if key not in written:  # first occurrence wins in Darknet; drop duplicates
                out.append(f"{key}={want[key]}")
                written.add(key)
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def head_rows_like_opencv(head: Head, y: np.ndarray, net_w: int, net_h: int) -> np.ndarray:
    """Our head's output in OpenCV's decoded rows ``(H*W*n, 5+K)``: x, y, w, h relative to the network input,
    the objectness entry, ``objectness * class`` unthresholded, cell-major then anchor. A projection of
    :func:`darkweights.heads.decode`, the decode ``detect`` runs (Darknet's float rules)."""
    c = decode(head, y, NUMPY, net_w=net_w, net_h=net_h)
    rows = np.concatenate([c.boxes, c.scale[:, None], c.probs], axis=1)
    if head.order == "slot":  # pjreddie [region]: slot-major candidates
        rows = rows.reshape(head.slots, -1, rows.shape[1]).transpose(1, 0, 2).reshape(-1, rows.shape[1])
    return rows


def _compare_decoded_head(
    head: Head, net: Any, mine: np.ndarray, ref: np.ndarray, z_max: float
) -> tuple[float, float, float, str]:
    """Compare decoded head rows ``(H*W*n, 5+K)`` part by part, each where it is well-conditioned.

    Box sizes are ``exp(t) * anchor``: with random weights ``t`` reaches ~20, so ``exp`` turns a
    relative 1e-5 difference of the head's input (float noise, OpenCV's BN epsilon) into values
    up to 1e8 whose error swamps every other number in one max-normalised error. They are
    compared as ``t = log(w * norm / anchor)``, the linear output the network computed, relative
    to its own range. x, y, objectness and class scores are logistic (products of them): compared
    as they are, relative to what a relative error of the head's input ``z`` can move them
    (``sigma' <= 1/4``, at most two factors: ``0.5 * max|z|``), not to their own range of ~1.
    A wrong model moves ``t`` or the logistic parts beyond that and still fails (and the layer
    before the head is compared raw); a right one no longer fails because of ``exp``.
    """
    n = head.slots
    anchors = np.array(head.anchors, np.float64).reshape(-1, 2)
    norm = (net.width, net.height) if head.anchor_units == "input" else head.grid[::-1]
    row_anchor = anchors[np.arange(mine.shape[0]) % n]  # rows are (y, x, anchor)
    keep = ref[:, 5:] != 0  # OpenCV zeroes class scores below its threshold / after NMS
    parts = {
        "xy": (mine[:, 0:2], ref[:, 0:2]),
        "objectness": (mine[:, 4], ref[:, 4]),
        "classes": (mine[:, 5:][keep], ref[:, 5:][keep]),
    }
    if head.new_coords:
        parts["wh"] = (mine[:, 2:4], ref[:, 2:4])  # (2 logistic)^2 * anchor: bounded, compared as is
    else:

        def raw(v: np.ndarray) -> np.ndarray:
            with np.errstate(divide="ignore"):
                return np.log(np.maximum(np.asarray(v, np.float64), 1e-37) * np.array(norm) / row_anchor)

        parts["wh (log)"] = (raw(mine[:, 2:4]), raw(ref[:, 2:4]))
    results = {}
    for name, (a, b) in parts.items():
        diff, scale, rel, extra = compare_arrays(a, b)
        if not name.startswith("wh (log)") and math.isfinite(rel) and diff > 0:
            scale = max(scale, 0.5 * z_max)
            rel = diff / scale
        results[name] = (diff, scale, rel, extra)
    worst = max(results, key=lambda k: results[k][2])
    diff, scale, rel, extra = results[worst]
    detail = ", ".join(f"{k} {v[2]:.2g}" for k, v in results.items())
    return diff, scale, rel, f"worst part {worst}; {detail}" + (f"; {extra}" if extra else "")


def compare_with_opencv(
    net: Any,
    x: Any = None,
    *,
    tolerance: float | None = None,
    model: Any = None,
    fuse_bn: bool = False,
    bn_eps: str = "darknet",
    seed: int = 0,
    winograd: bool = True,
) -> Report:
    """Run ``net`` with OpenCV's Darknet importer (``cv2.dnn.readNetFromDarknet``) and with our model
    on ``x`` ``(C, H, W)`` or ``(1, C, H, W)`` (default: ``numpy.random.default_rng(seed).random`` in
    [0, 1) at the network's input size), and compare every layer OpenCV exposes.

    Use weights with random BN statistics (``darkweights init``: variance 0.5..1.5): OpenCV's
    BN epsilon is 1e-6, Darknet's 1e-5, which calibrated statistics amplify (fixtures README).
    ``bn_eps="darknet"`` compares our Darknet-faithful model (tolerance 2e-4: the epsilon gap alone
    moves each BN layer by up to ~1e-5 and accumulates); ``bn_eps="opencv"`` rebuilds our model with
    OpenCV's epsilon so that everything else is compared tightly (tolerance 1e-5).
    """
    import cv2  # lazy: optional dependency
    import torch

    from .torch import build

    if not net.has_weights:
        raise ArgumentError("compare_with_opencv needs a network with weights (darkweights.load(cfg, weights))")
    flat = not net.input.is_image  # a cfg giving only [net] inputs= (pjreddie's gru/rnn cfgs)
    if x is None:
        shape = (net.inputs,) if flat else (net.channels, net.height, net.width)
        x = np.random.default_rng(seed).random(shape, dtype=np.float32)
    x = np.asarray(x, np.float32)
    if x.ndim == (1 if flat else 3):
        x = x[None]
    # OpenCV reads the pair from memory (the cfg re-sized to this network, the weights file's
    # bytes) before our model is built: a cfg it cannot import fails fast, in one line
    cvnet = _opencv_net(net)
    if bn_eps not in ("darknet", "opencv"):
        raise ArgumentError(f"bn_eps must be 'darknet' or 'opencv', not {bn_eps!r}")
    if tolerance is None:
        tolerance = OPENCV_TOLERANCE if bn_eps == "darknet" else OPENCV_MATCHED_EPS_TOLERANCE
    if model is None:
        model = build(net, fuse_bn=fuse_bn, winograd=winograd)
    if bn_eps == "opencv":
        for m in model.modules():
            if hasattr(m, "running_var") and hasattr(m, "eps"):
                m.eps = 1e-6
    ours = model(torch.from_numpy(np.ascontiguousarray(x)), all_outputs=True)
    names = list(cvnet.getLayerNames())
    mapping = opencv_layer_map(names)
    wanted = [mapping[i] for i in sorted(mapping) if i < len(net.layers)]
    with _opencv_errors(net):
        cvnet.setInput(x.reshape(x.shape[0], -1, 1, 1) if flat else x)
        results = dict(zip(wanted, cvnet.forward(wanted)))
    report = Report(
        Path(net.path or "network").name,
        "opencv",
        meta={
            "opencv": cv2.__version__,
            "input_shape": list(x.shape),
            "tolerance_rule": f"{tolerance:g} per layer",
            "bn_eps": bn_eps,
            "fusion": False,
            "winograd": False,
        },
    )
    variances = [a for k, a in net.arrays().items() if k.endswith("rolling_variance")]
    if variances and bn_eps == "darknet":
        smallest = float(min(float(np.min(a)) for a in variances))
        report.meta["bn_variance_min"] = smallest
        if smallest < 0.05:
            report.meta["warning"] = (
                f"BN rolling variances go down to {smallest:.3g}: OpenCV's BN epsilon (1e-6, Darknet 1e-5) then moves "
                "outputs far beyond float rounding. Compare on random-statistics weights (darkweights init) or pass "
                "bn_eps='opencv'"
            )
    with np.errstate(over="ignore", invalid="ignore"):
        _fill_opencv_rows(report, net, ours, results, mapping, tolerance)
    return report


_CV_MESSAGE = re.compile(r"error: \(-?\d+:[^)]*\) (.*?)(?: in function '([^']*)')?\s*$", re.S)


@contextlib.contextmanager
def _opencv_errors(net: Any) -> Iterator[None]:
    """OpenCV's own failures (a construct its importer lacks) as one located line, OpenCV's log silenced."""
    import cv2

    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    level = logging.getLogLevel() if logging else None
    if logging:
        logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    except cv2.error as exc:
        text = str(exc).strip()
        m = _CV_MESSAGE.search(text)
        why = (m.group(1).strip() + (f" (in {m.group(2)})" if m.group(2) else "")) if m else text.splitlines()[-1]
        raise UnsupportedError(f"OpenCV {cv2.__version__} cannot run this cfg: {why}", file=net.path) from None
    finally:
        if logging and level is not None:
            logging.setLogLevel(level)


def _opencv_net(net: Any) -> Any:
    import cv2

    cfg = np.frombuffer(_cfg_for_size(net).encode(), np.uint8)
    source = net.weights_source
    if isinstance(source, memoryview):
        weights = np.frombuffer(source, np.uint8)
    else:
        weights = np.memmap(source, np.uint8, mode="r")
    with _opencv_errors(net):
        cvnet = cv2.dnn.readNetFromDarknet(cfg, weights)
        cvnet.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        cvnet.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        cvnet.enableFusion(False)
        if hasattr(cvnet, "enableWinograd"):
            cvnet.enableWinograd(False)
    return cvnet


def _fill_opencv_rows(report: Report, net: Any, ours: list, results: dict, mapping: dict, tolerance: float) -> None:
    for layer in net.layers:
        i = layer.index
        if i not in mapping:
            report.skipped.append({"index": i, "type": layer.type, "reason": "no OpenCV layer"})
            continue
        ref = np.asarray(results[mapping[i]], np.float32)
        mine = ours[i].detach().numpy()[0]
        note = mapping[i]
        head = layer.head()
        if head is not None and not head.problem:  # OpenCV decodes its heads
            mine = head_rows_like_opencv(head, mine, net.width, net.height)
            z = ours[i - 1].detach().numpy() if i > 0 else mine  # the head's input: the raw linear outputs
            z_max = float(np.max(np.abs(z))) if z.size else 0.0
            diff, scale, rel, extra = _compare_decoded_head(head, net, mine, ref.reshape(mine.shape), z_max)
            note += " (decoded by OpenCV; zeroed class scores skipped)"
        elif mine.size != ref.size:
            report.skipped.append(
                {
                    "index": i,
                    "type": layer.type,
                    "reason": f"OpenCV {mapping[i]} has {ref.size} values, ours {mine.size}",
                }
            )
            continue
        else:
            diff, scale, rel, extra = compare_arrays(mine, ref)
        report.rows.append(
            Row(
                i,
                layer.type,
                diff,
                scale,
                rel,
                tolerance,
                bool(rel <= tolerance),
                (note + (" " + extra if extra else "")).strip(),
            )
        )
