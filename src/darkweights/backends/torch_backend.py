"""The PyTorch rebuild as a :class:`~darkweights.backends.Backend`."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import Backend


class TorchBackend(Backend):
    """Our PyTorch model of ``net`` (with weights), BN folded when the dialect's detector folds it (AlexeyAB's
    ``detector test``/``detector map`` run ``fuse_conv_batchnorm``; pjreddie does not); any batch size.
    ``threads`` sets torch's intra-op threads, for the whole process (``torch.set_num_threads``)."""

    name = "torch"

    def __init__(self, net: Any, *, fuse_bn: bool | None = None, model: Any = None, threads: int | None = None) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.net = net
        if model is None:
            fuse = net.dialect.detector.fuse_bn if fuse_bn is None else fuse_bn
            model = net.to_torch(fuse_bn=fuse)
        self.model = model
        self.heads = list(model.heads)
        self.batch = None

    def forward(self, batch: np.ndarray) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            # only the heads: the model keeps route concatenations lazy and drops dead outputs
            outs = self.model(torch.from_numpy(np.ascontiguousarray(batch, np.float32)))
        return [o.numpy() for o in outs]
