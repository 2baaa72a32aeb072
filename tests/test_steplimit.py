"""The step-size limit of a quadratic loss, against torch's own Hessian and real training."""

import numpy as np
import pytest
import torch

from landscape.data.config import Config
from landscape.measures import steplimit
from landscape.training.loop import train


def test_lambda_max_matches_torch_hessian_of_the_training_loss():
    cfg = steplimit.DEMO
    run_model = train(cfg.replace(epochs=1)).model()
    ds = cfg.make_dataset()
    params = [p.detach().clone() for p in run_model.parameters()]  # (1, 1) weight, (1,) bias

    def loss(w, b):
        return torch.mean((ds.X_train.double() @ w.T + b - ds.y_train.double()[:, None]) ** 2)

    H = torch.autograd.functional.hessian(loss, tuple(p.double() for p in params))
    H = np.array([[H[0][0].item(), H[0][1].item()], [H[1][0].item(), H[1][1].item()]])
    lam, limit = steplimit.quadratic_limit(cfg)
    assert lam == pytest.approx(np.linalg.eigvalsh(H)[-1], rel=1e-9)
    assert limit == pytest.approx(2 / lam)


def test_just_below_converges_and_just_above_diverges():
    below, above = steplimit.demo_configs((0.95, 1.05))
    rb, ra = train(below), train(above)
    assert not rb.diverged and rb.history["train_loss"][-1] < 0.2
    assert ra.diverged and ra.diverged_epoch > 10  # it takes a while: the swing grows slowly
    # the see-saw: the top-eigenvector coordinate of the weights flips sign every step
    traj = ra.trajectory - rb.trajectory[-1]
    ds = above.make_dataset()
    A = np.hstack([ds.X_train.double().numpy(), np.ones((ds.n_train, 1))])
    v = np.linalg.eigh(A.T @ A)[1][:, -1]
    c = traj[5:] @ v
    assert (np.sign(c[1:]) != np.sign(c[:-1])).mean() > 0.9
    assert abs(c[-1]) > 5 * abs(c[0])


def test_only_quadratic_losses_are_accepted():
    with pytest.raises(ValueError, match="quadratic"):
        steplimit.quadratic_limit(Config(dataset="sine", model="mlp", loss="mse"))
