"""Models: each builds and runs on its data, head sizes follow the loss, residual switch."""

import pytest
import torch
from torch import nn

from landscape.data import models
from landscape.data.config import Config


def _forward(cfg):
    ds = cfg.make_dataset()
    model = models.build(cfg, ds)
    return model, ds, model(ds.X_train[:7])


@pytest.mark.parametrize(
    "cfg, out_dim",
    [
        (Config(model="linear"), 2),
        (Config(model="mlp", depth=3, width=8, activation="tanh"), 2),
        (Config(model="mlp", activation="sigmoid", batchnorm=True), 2),
        (Config(model="resmlp", depth=2, width=16, activation="gelu"), 2),
        (Config(model="resmlp", skip=False, batchnorm=True), 2),
        (Config(dataset="spiral3", model="mlp"), 3),
        (Config(dataset="digits", model="linear"), 10),
        (Config(dataset="digits", model="mlp"), 10),
        (Config(dataset="digits", model="cnn"), 10),
        (Config(dataset="digits", model="cnn", batchnorm=True, width=8), 10),
        (Config(dataset="digits", model="rescnn", depth=2, width=8), 10),
        (Config(dataset="shapes", model="resnet", depth=1, width=4, batchnorm=True), 10),
        (Config(dataset="digits", model="resnet", depth=2, width=4, skip=False), 10),
        (Config(dataset="wine", model="resmlp"), 3),
        (Config(dataset="breast_cancer", model="mlp", loss="hinge"), 1),  # binary: one logit
        (Config(dataset="moons", loss="bce"), 1),
        (Config(dataset="iris", loss="mse"), 3),  # regression loss on classes: softmax vs one-hot
        (Config(dataset="sine", loss="mse"), 1),
        (Config(dataset="outliers", model="linear", loss="huber", outliers=5), 1),
    ],
    ids=lambda x: x if isinstance(x, int) else f"{x.model}-{x.dataset}-{x.loss}",
)
def test_builds_and_runs_forward(cfg, out_dim):
    model, ds, out = _forward(cfg)
    assert out.shape == (7, out_dim) and torch.isfinite(out).all()
    assert models.count_params(model) > 0


def test_cnn_has_the_documented_parameter_count():
    model, _, _ = _forward(Config(dataset="digits", model="cnn", width=32))
    assert models.count_params(model) == 160 + 4640 + 32832 + 650 == 38282


def test_count_params_counts_trainable_parameters_only():
    model, _, _ = _forward(Config(model="mlp", depth=1, width=4, batchnorm=True))
    # Linear(2,4)=12, BN(4)=8 (weight+bias; running stats are buffers), Linear(4,2)=10
    assert models.count_params(model) == 12 + 8 + 10
    model[1][0].weight.requires_grad_(False)
    assert models.count_params(model) == 12 + 8 + 10 - 8


@pytest.mark.parametrize(
    "base",
    [
        Config(model="resmlp", depth=3, width=16),
        Config(model="resmlp", depth=2, width=8, batchnorm=True),
        Config(dataset="digits", model="rescnn", depth=3, width=8),
        Config(dataset="digits", model="rescnn", depth=2, width=8, batchnorm=True),
        Config(dataset="shapes", model="resnet", depth=2, width=4, batchnorm=True),
    ],
    ids=["resmlp", "resmlp-bn", "rescnn", "rescnn-bn", "resnet-bn"],
)
def test_no_skip_keeps_every_parameter_shape_and_only_changes_the_forward(base):
    ds = base.make_dataset()
    a, b = models.build(base, ds), models.build(base.replace(skip=False), ds)
    shapes = lambda m: [(n, tuple(p.shape)) for n, p in m.named_parameters()]  # noqa: E731
    assert shapes(a) == shapes(b)
    assert [n for n, _ in a.named_buffers()] == [n for n, _ in b.named_buffers()]
    # same seed: identical weights; yet different functions (the skip path is gone)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    a.eval(), b.eval()
    x = ds.X_train[:5]
    assert not torch.allclose(a(x), b(x))
    # and the skip really is the identity: a residual block computes act(h + f(h))
    if base.model == "resnet":
        return  # its blocks are checked against F.conv2d below
    block = next(m for m in a.modules() if isinstance(m, models.ResBlock))
    h = torch.randn(4, *_block_in(base))
    f = block.layer2(block.act1(block.layer1(h)))
    torch.testing.assert_close(block(h), block.act2(h + f))


def _block_in(cfg):
    return (cfg.width,) if cfg.model == "resmlp" else (cfg.width // 2, 8, 8)


def test_build_is_seeded_and_leaves_global_rng_alone():
    cfg = Config()
    ds = cfg.make_dataset()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = models.build(cfg, ds)
    after = torch.rand(3)
    b = models.build(cfg, ds)
    c = models.build(cfg.replace(seed=1), ds)
    assert torch.equal(after, expected)  # building did not consume the global stream
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


@pytest.mark.parametrize(
    "act, cls", [("relu", nn.ReLU), ("tanh", nn.Tanh), ("sigmoid", nn.Sigmoid), ("gelu", nn.GELU)]
)
def test_activation_is_used(act, cls):
    model, _, _ = _forward(Config(activation=act))
    assert sum(isinstance(m, cls) for m in model.modules()) == 2


def test_batchnorm_switch_adds_batchnorm_layers():
    plain, _, _ = _forward(Config(dataset="digits", model="cnn", width=8))
    bn, _, _ = _forward(Config(dataset="digits", model="cnn", width=8, batchnorm=True))
    count = lambda m: sum(isinstance(x, nn.modules.batchnorm._BatchNorm) for x in m.modules())  # noqa: E731
    assert count(plain) == 0 and count(bn) == 3


def test_image_model_on_flat_data_is_rejected():
    with pytest.raises(ValueError, match="model='cnn'"):
        Config(model="cnn", dataset="moons")
    # build() checks too, for configs that bypass validation of the pairing
    cfg = Config(dataset="digits", model="cnn")
    with pytest.raises(ValueError, match="image"):
        models.build(cfg, Config().make_dataset())


@pytest.mark.parametrize("depth, n_layers", [(1, 8), (3, 20), (9, 56)])
def test_resnet_has_6k_plus_2_layers_with_stride_2_stages(depth, n_layers):
    cfg = Config(dataset="shapes", model="resnet", depth=depth, width=8, batchnorm=True)
    m = models.build(cfg, cfg.make_dataset())
    convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
    linears = [c for c in m.modules() if isinstance(c, nn.Linear)]
    assert len(convs) + len(linears) == n_layers
    assert [c.out_channels for c in convs[1:]] == [8] * 2 * depth + [16] * 2 * depth + [
        32
    ] * 2 * depth
    assert sum(c.stride == (2, 2) for c in convs) == 2
    x = torch.randn(2, 3, 16, 16)
    feats = m[:-3](x)  # before pooling: 16x16 -> 8x8 -> 4x4
    assert feats.shape == (2, 32, 4, 4)


def test_resnet_block_matches_a_hand_written_forward():
    # the stage-changing block: relu(bn(conv2(relu(bn(conv1_stride2(x))))) + zero-padded x[::2, ::2])
    block = models.StageBlock(4, 8, 2, "relu", skip=True, bn=True).eval()
    with torch.no_grad():
        for bn in (block.layer1[1], block.layer2[1]):
            bn.running_mean.uniform_(-0.5, 0.5), bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(-0.2, 0.2)
    x = torch.randn(3, 4, 10, 10)

    def bn(z, m):
        return (z - m.running_mean[:, None, None]) / torch.sqrt(
            m.running_var[:, None, None] + m.eps
        ) * m.weight[:, None, None] + m.bias[:, None, None]

    c1, c2 = block.layer1[0], block.layer2[0]
    h = torch.relu(
        bn(torch.nn.functional.conv2d(x, c1.weight, c1.bias, stride=2, padding=1), block.layer1[1])
    )
    f = bn(torch.nn.functional.conv2d(h, c2.weight, c2.bias, padding=1), block.layer2[1])
    short = torch.zeros(3, 8, 5, 5)
    short[:, :4] = x[:, :, ::2, ::2]
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.relu(f + short))
        block.skip = False
        torch.testing.assert_close(block(x), torch.relu(f))
