"""A small network per layer family, for the conformance suite (tests/test_conformance.py).

``EXAMPLES[type]`` lists ``(dialect, cfg text)``; the layer under test is the last layer of the cfg. Each
family's examples exercise the options that change its concerns (arrays, geometry, reads, head, counts).
A family registered without an entry here fails the suite, naming the family.
"""

from __future__ import annotations

AB, PJ, HK = "alexeyab", "pjreddie", "hankai"


def net(w: int = 8, h: int = 8, c: int = 3) -> str:
    return f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n"


def conv(filters: int, size: int = 3, extra: str = "", activation: str = "leaky") -> str:
    pad = "pad=1\n" if size > 1 else ""
    return f"[convolutional]\nfilters={filters}\nsize={size}\n{pad}activation={activation}\n{extra}"


ANCHORS = "anchors=1,2, 3,4, 5,6, 7,8, 9,9, 2,5\n"

EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "convolutional": [
        (AB, net() + conv(8, extra="batch_normalize=1\n")),
        (AB, net(c=8) + conv(8, extra="groups=4\n", activation="mish") + conv(8, extra="groups=2\ndilation=2\n")),
        (AB, net(9, 7) + conv(4, extra="stride_x=2\nstride_y=1\nbatch_normalize=1\n", activation="swish")),
        (AB, net() + conv(8, extra="stride=2\nantialiasing=1\n")),
        (AB, net(c=32) + conv(8, extra="xnor=1\nbatch_normalize=1\nbin_output=1\n") + conv(8, extra="xnor=1\n")),
        (AB, net(c=8) + conv(8, extra="batch_normalize=1\n") + conv(8, extra="batch_normalize=1\nshare_index=0\n")),
        (PJ, net() + conv(4, extra="batch_normalize=1\nstride=2\n")),
        (HK, net() + conv(4, extra="batch_normalize=1\n", activation="relu6")),
    ],
    "deconvolutional": [
        (PJ, net() + "[deconvolutional]\nfilters=4\nsize=3\nstride=2\npad=1\nbatch_normalize=1\nactivation=leaky\n"),
        (PJ, net() + "[deconvolutional]\nfilters=4\nsize=2\nstride=2\nactivation=linear\n"),
    ],
    "local": [(AB, net() + "[local]\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n")],
    "connected": [
        (AB, net() + "[connected]\noutput=10\nactivation=leaky\nbatch_normalize=1\n"),
        (PJ, net() + "[connected]\noutput=10\nactivation=logistic\n"),
    ],
    "batchnorm": [(AB, net() + conv(4) + "[batchnorm]\n"), (PJ, net() + conv(4) + "[batchnorm]\n")],
    "maxpool": [
        (AB, net() + "[maxpool]\nsize=2\nstride=2\n"),
        (AB, net(9, 9) + "[maxpool]\nsize=3\nstride_x=2\nstride_y=1\n"),
        (AB, net(c=8) + "[maxpool]\nmaxpool_depth=1\nout_channels=3\n"),
        (AB, net() + "[maxpool]\nsize=2\nstride=2\nantialiasing=1\n"),
        (PJ, net(7, 7) + "[maxpool]\nsize=3\nstride=2\n"),
    ],
    "local_avgpool": [(AB, net(9, 9) + "[local_avgpool]\nsize=3\nstride=2\n")],
    "avgpool": [(AB, net() + "[avgpool]\n")],
    "upsample": [
        (AB, net() + "[upsample]\nstride=2\n"),
        (AB, net() + "[upsample]\nstride=-2\nscale=0.5\n"),
    ],
    "route": [
        (AB, net() + conv(4) + conv(6) + "[route]\nlayers=-1,0\n"),
        (AB, net() + conv(4) + conv(6) + "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n"),
        (PJ, net() + conv(4) + "[maxpool]\nsize=2\nstride=2\n" + "[route]\nlayers=0,1\n"),
    ],
    "shortcut": [
        (AB, net() + conv(4) + conv(4) + "[shortcut]\nfrom=-2\nactivation=linear\n"),
        (
            AB,
            net()
            + conv(4)
            + conv(6)
            + conv(4)
            + "[shortcut]\nfrom=0,1\nweights_type=per_channel\nweights_normalization=softmax\n",
        ),
        (PJ, net() + conv(4) + conv(4, extra="stride=2\n") + "[shortcut]\nfrom=0\nalpha=0.5\nbeta=2\n"),
    ],
    "scale_channels": [(AB, net() + conv(4) + "[avgpool]\n" + "[scale_channels]\nfrom=0\n")],
    "sam": [(AB, net() + conv(4) + conv(4, activation="logistic") + "[sam]\nfrom=0\n")],
    "implicit": [(AB, net() + "[implicit]\nfilters=5\nmean=1\nstd=0.1\n")],
    "reorg": [
        (AB, net(c=4) + "[reorg]\nstride=2\n"),
        (PJ, net(c=4) + "[reorg]\nstride=2\nreverse=1\n"),
    ],
    "reorg3d": [(AB, net() + "[reorg3d]\nstride=2\n")],
    "dropout": [(AB, net() + conv(4) + "[dropout]\nprobability=0.5\n")],
    "empty": [(AB, net() + conv(4) + "[silence]\n")],
    "cost": [(AB, net() + "[connected]\noutput=4\nactivation=linear\n[softmax]\n[cost]\n")],
    "contrastive": [(AB, net() + conv(4) + "[contrastive]\nclasses=4\n")],
    "activation": [(AB, net() + "[activation]\nactivation=leaky\n")],
    "logistic": [(PJ, net() + "[logistic]\n")],
    "l2norm": [(PJ, net() + conv(4) + "[l2norm]\n")],
    "iseg": [(PJ, net() + conv(6, activation="linear") + "[iseg]\nclasses=2\nids=4\n")],
    "crop": [(AB, net(10, 10) + "[crop]\ncrop_height=6\ncrop_width=8\n")],
    "normalization": [(AB, net(c=6) + "[normalization]\nsize=3\nalpha=0.01\n")],
    "history": [(AB, net() + conv(4) + "[history]\nhistory_size=3\n")],
    "rnn": [
        (AB, net() + "[rnn]\noutput=6\nhidden=5\nactivation=leaky\nbatch_normalize=1\n"),
        (PJ, net() + "[rnn]\noutput=6\nactivation=leaky\n"),
    ],
    "gru": [(AB, net() + "[gru]\noutput=6\n"), (PJ, net() + "[gru]\noutput=6\ntanh=1\nbatch_normalize=1\n")],
    "lstm": [(AB, net() + "[lstm]\noutput=6\nbatch_normalize=1\n"), (PJ, net() + "[lstm]\noutput=6\n")],
    "crnn": [
        (AB, net() + "[crnn]\nhidden=5\noutput=4\nsize=3\npad=1\nactivation=leaky\nbatch_normalize=1\n"),
        (PJ, net() + "[crnn]\nhidden_filters=5\noutput_filters=4\nactivation=leaky\n"),
    ],
    "conv_lstm": [
        (AB, net() + "[conv_lstm]\noutput=4\nsize=3\npad=1\npeephole=1\nbatch_normalize=1\nactivation=linear\n")
    ],
    "yolo": [
        (AB, net(16, 16) + conv(14, 1, activation="linear") + "[yolo]\nmask=3,4\n" + ANCHORS + "classes=2\nnum=6\n"),
        (
            AB,
            net(16, 16)
            + conv(14, 1, activation="logistic")
            + "[yolo]\nmask=0,1\n"
            + ANCHORS
            + "classes=2\nnum=6\nnew_coords=1\nscale_x_y=2\nnms_kind=diounms\n",
        ),
        (PJ, net(16, 16) + conv(21, 1, activation="linear") + "[yolo]\nmask=0,1,2\n" + ANCHORS + "classes=2\nnum=6\n"),
    ],
    "gaussian_yolo": [
        (
            AB,
            net(16, 16)
            + conv(22, 1, activation="linear")
            + "[Gaussian_yolo]\nmask=0,1\n"
            + ANCHORS
            + "classes=2\nnum=6\nyolo_point=left_top\nscale_x_y=1.1\n",
        )
    ],
    "region": [
        (
            AB,
            net(16, 16)
            + conv(21, 1, activation="linear")
            + "[region]\nanchors=1,1, 2,3, 3,2\nclasses=2\nnum=3\nsoftmax=1\n",
        ),
        (PJ, net(16, 16) + conv(21, 1, activation="linear") + "[region]\nanchors=1,1, 2,3, 3,2\nclasses=2\nnum=3\n"),
    ],
    "detection": [
        (
            AB,
            net()
            + "[connected]\noutput=44\nactivation=linear\n"
            + "[detection]\nclasses=1\ncoords=4\nnum=2\nside=2\nsoftmax=1\n",
        )
    ],
    "softmax": [
        (AB, net() + "[softmax]\ngroups=2\n"),
        (PJ, net() + "[softmax]\ngroups=1\ntemperature=2\n"),
    ],
}
