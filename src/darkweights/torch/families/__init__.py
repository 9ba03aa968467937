"""The PyTorch module of every layer family, one family per file, each registered under the catalogue's
``type`` (:data:`darkweights.torch.MODULES`). Importing this package registers them all.

Recurrent layers (``rnn``, ``gru``, ``lstm``, ``crnn``, ``conv_lstm``; darknet-format.md §5.15) compute the
first forward call after parsing, i.e. every hidden/cell state zero and ``time_steps=1`` (what the
``synth_recurrent`` fixture records). Darknet keeps the state between ``network_predict`` calls; these modules
are stateless and always start from zero, so a sequence has to be fed as separate networks' first calls to
match Darknet. The sub-layers are complete connected/convolutional layers (own bias or BN, own activation), so
``W*0`` still contributes ``act(BN(0))``.
"""

from . import (  # noqa: F401  (registration side effect)
    activation,
    avgpool,
    batchnorm,
    connected,
    conv_lstm,
    convolutional,
    crnn,
    crop,
    deconvolutional,
    detection,
    gru,
    history,
    identity,
    implicit,
    iseg,
    l2norm,
    local,
    local_avgpool,
    logistic,
    lstm,
    maxpool,
    normalization,
    region,
    reorg,
    rnn,
    route,
    sam,
    scale_channels,
    shortcut,
    softmax,
    upsample,
    yolo,
)
