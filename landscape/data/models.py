"""Small networks for the datasets in `landscape.data.datasets`, built from a training Config.

- `linear`: one Linear layer (logistic/softmax regression for classification, a line for 1D
  regression). Images are flattened first.
- `mlp`: `depth` hidden Linear layers of `width` units, each followed by the activation (and
  BatchNorm1d before it when `batchnorm`).
- `cnn`: the small digits CNN, channels scaled by `width` (default 32):
    conv 1->w/2 3x3 (pad 1), act, conv w/2->w 3x3 (pad 1), act, maxpool 2,
    flatten (w*4*4), linear -> 2w, act, linear -> classes.
  With width=32 on digits that is 160 + 4,640 + 32,832 + 650 = 38,282 parameters, the
  benchmark model of the landscape engine. `depth` is not used.
- `resmlp`: input Linear to `width`, then `depth` residual blocks
  h <- act(h + W2 act(W1 h)), then a Linear head.
- `rescnn`: conv stem 1->w/2, then `depth` residual conv blocks (two 3x3 convs), maxpool 2,
  flatten, Linear head.
- `resnet`: the CIFAR ResNet of He et al. (2016) that Li et al. slice: a 3x3 conv stem to
  `width` channels, three stages of `depth` blocks (two 3x3 convs each) at width, 2*width and
  4*width channels, the first block of stages 2 and 3 with stride 2, global average pooling and
  a Linear head: 6*depth + 2 layers (depth 3 -> ResNet-20, 9 -> ResNet-56). Where a stage
  changes shape the shortcut subsamples by 2 and pads the new channels with zeros (He et al.'s
  option A), so it has no parameters and the no-skip twin has the same parameter shapes.

`skip=False` removes the identity path of every residual block and nothing else: the two nets
have exactly the same parameter names and shapes, so their loss landscapes can be compared
direction for direction (Li et al. 2018, Fig. 5). `batchnorm=True` adds BatchNorm after every
hidden Linear/conv (before the activation).

The output head has one unit for regression data and for binary losses, and `n_classes` units
for multiclass losses and for regression losses on classification data (applied to softmax vs
one-hot, see `landscape.training.loop`). Weights are initialised from `config.seed` without touching
torch's global random state.
"""

from __future__ import annotations

import torch
from torch import nn

from landscape.core import losses

MODELS = {
    "linear": "Linear / logistic",
    "mlp": "MLP",
    "cnn": "Small CNN (images)",
    "resmlp": "Residual MLP",
    "rescnn": "Residual CNN (images)",
    "resnet": "ResNet, stride-2 stages (images)",
}
IMAGE_MODELS = ("cnn", "rescnn", "resnet")
RESIDUAL_MODELS = ("resmlp", "rescnn", "resnet")
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


def output_size(loss_task: str, dataset) -> int:
    """Units in the head: 1 for regression data or a binary loss, else n_classes."""
    if dataset.task == "regression" or loss_task == "binary":
        return 1
    return dataset.n_classes


class ResBlock(nn.Module):
    """Two layers f(h) = L2(act(L1(h))); forward is act(h + f(h)) with skip, act(f(h)) without."""

    def __init__(self, layer1, layer2, act: str, skip: bool):
        super().__init__()
        self.layer1, self.layer2 = layer1, layer2
        self.act1, self.act2 = ACTIVATIONS[act](), ACTIVATIONS[act]()
        self.skip = skip

    def forward(self, h):
        out = self.layer2(self.act1(self.layer1(h)))
        return self.act2(h + out if self.skip else out)


class StageBlock(nn.Module):
    """A `resnet` block: conv(stride) -> BN -> act -> conv -> BN, plus the shortcut (with skip),
    then act. The shortcut is x[:, :, ::s, ::s] zero-padded to the new channel count: no
    parameters, so removing it changes nothing else."""

    def __init__(self, c_in, c_out, stride, act: str, skip: bool, bn: bool):
        super().__init__()
        conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.layer1 = nn.Sequential(conv1, nn.BatchNorm2d(c_out)) if bn else conv1
        self.layer2 = _conv(c_out, c_out, bn)
        self.act1, self.act2 = ACTIVATIONS[act](), ACTIVATIONS[act]()
        self.stride, self.pad, self.skip = stride, c_out - c_in, skip

    def forward(self, h):  # (B, c_in, H, W) -> (B, c_out, H / stride, W / stride)
        out = self.layer2(self.act1(self.layer1(h)))
        if not self.skip:
            return self.act2(out)
        short = h[:, :, :: self.stride, :: self.stride]
        if self.pad:
            short = nn.functional.pad(short, (0, 0, 0, 0, 0, self.pad))
        return self.act2(out + short)


def _dense(n_in, n_out, bn):
    return (
        nn.Sequential(nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out))
        if bn
        else nn.Linear(n_in, n_out)
    )


def _conv(c_in, c_out, bn):
    conv = nn.Conv2d(c_in, c_out, 3, padding=1)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out)) if bn else conv


def _linear(n_in, n_out, cfg):
    return nn.Sequential(nn.Flatten(), nn.Linear(n_in, n_out))


def _mlp(n_in, n_out, cfg):
    layers, width = [nn.Flatten()], cfg.width
    for i in range(cfg.depth):
        layers += [
            _dense(n_in if i == 0 else width, width, cfg.batchnorm),
            ACTIVATIONS[cfg.activation](),
        ]
    return nn.Sequential(*layers, nn.Linear(width, n_out))


def _cnn(in_shape, n_out, cfg):
    c1, c2 = max(1, cfg.width // 2), cfg.width
    c_in, h, w = in_shape
    act = ACTIVATIONS[cfg.activation]
    return nn.Sequential(
        _conv(c_in, c1, cfg.batchnorm),
        act(),
        _conv(c1, c2, cfg.batchnorm),
        act(),
        nn.MaxPool2d(2),
        nn.Flatten(),  # (B, c2 * h/2 * w/2)
        _dense(c2 * (h // 2) * (w // 2), 2 * cfg.width, cfg.batchnorm),
        act(),
        nn.Linear(2 * cfg.width, n_out),
    )


def _resmlp(n_in, n_out, cfg):
    w, bn = cfg.width, cfg.batchnorm
    blocks = [
        ResBlock(_dense(w, w, bn), _dense(w, w, bn), cfg.activation, cfg.skip)
        for _ in range(cfg.depth)
    ]
    return nn.Sequential(
        nn.Flatten(),
        _dense(n_in, w, bn),
        ACTIVATIONS[cfg.activation](),
        *blocks,
        nn.Linear(w, n_out),
    )


def _rescnn(in_shape, n_out, cfg):
    c, bn = max(1, cfg.width // 2), cfg.batchnorm
    c_in, h, w = in_shape
    blocks = [
        ResBlock(_conv(c, c, bn), _conv(c, c, bn), cfg.activation, cfg.skip)
        for _ in range(cfg.depth)
    ]
    return nn.Sequential(
        _conv(c_in, c, bn),
        ACTIVATIONS[cfg.activation](),
        *blocks,
        nn.MaxPool2d(2),
        nn.Flatten(),  # (B, c * h/2 * w/2)
        nn.Linear(c * (h // 2) * (w // 2), n_out),
    )


def _resnet(in_shape, n_out, cfg):
    w, bn, act = cfg.width, cfg.batchnorm, cfg.activation
    layers = [_conv(in_shape[0], w, bn), ACTIVATIONS[act]()]
    c = w
    for stage in range(3):
        c_out = w * 2**stage
        for b in range(cfg.depth):
            stride = 2 if stage > 0 and b == 0 else 1
            layers.append(StageBlock(c, c_out, stride, act, cfg.skip, bn))
            c = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, n_out)]  # (B, 4w) -> (B, out)
    return nn.Sequential(*layers)


def _check(cfg, dataset) -> None:
    if cfg.model not in MODELS:
        raise ValueError(f"model={cfg.model!r} is unknown: must be one of {list(MODELS)}")
    if cfg.activation not in ACTIVATIONS:
        raise ValueError(
            f"activation={cfg.activation!r} is unknown: must be one of {list(ACTIVATIONS)}"
        )
    if cfg.model in IMAGE_MODELS and len(dataset.input_shape) != 3:
        raise ValueError(
            f"model={cfg.model!r} needs image data (C, H, W) such as digits; "
            f"dataset={dataset.name!r} has input shape {dataset.input_shape}"
        )


def build(config, dataset) -> nn.Module:
    """The network `config.model` for `dataset`, initialised from `config.seed` (reproducible).

    Uses a forked RNG so building a model never changes torch's global random stream.
    """

    _check(config, dataset)
    n_out = output_size(losses.get(config.loss).task, dataset)
    shape = tuple(dataset.input_shape)
    n_in = 1
    for s in shape:
        n_in *= s
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        if config.model in IMAGE_MODELS:
            maker = {"cnn": _cnn, "rescnn": _rescnn, "resnet": _resnet}[config.model]
            return maker(shape, n_out, config)
        maker = {"linear": _linear, "mlp": _mlp, "resmlp": _resmlp}[config.model]
        return maker(n_in, n_out, config)


def count_params(model: nn.Module) -> int:
    """Number of trainable scalars (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
