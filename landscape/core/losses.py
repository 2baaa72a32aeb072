"""The loss zoo: one short pure torch function per loss, plus the metadata that drives the UI.

`get(name)` returns a `LossSpec`; calling it as `spec(pred, target, **params)` gives the mean
loss as a tensor, `reduction="none"` the per-element (per-sample for multiclass) values.
Argument conventions (docs/ARCHITECTURE.md):

- regression: `pred`, `target` float tensors of one shape; the residual is r = target - pred.
- binary: `pred` is a score or logit f(x) of shape (N,), `target` is 0 or 1; the margin is
  m = (2 * target - 1) * f. `bce` alone takes probabilities in [0, 1] as `pred`.
- multiclass: `pred` logits (N, C); `target` class indices (N,) for cross_entropy and
  multi_margin, target probabilities (N, C) for kl_div.

Every function is written in a numerically stable form (logaddexp / logsumexp / log1p / expm1)
so that values and autograd gradients stay finite for residuals and logits from 1e-12 to 1e6.
Where torch has the same loss, ours matches its value and gradient in float64
(tests/test_losses.py). A few functions grow so fast that the true value overflows even
float64 (exp(x^2/2) for Barron's alpha = +inf, exp(-m) for the exponential loss): those
saturate at a huge finite number instead of returning inf (the gradient is 0 past that point),
the same choice as the reference implementation of Barron's loss.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

TASKS = ("regression", "binary", "multiclass")
REDUCTIONS = ("mean", "sum", "none")


_GREEK = {"alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "tau": "τ",
          "lambda": "λ", "sigma": "σ", "mu": "μ", "Delta": "Δ", "varepsilon": "ε"}  # fmt: skip


def plain_label(text: str) -> str:
    """A widget label without LaTeX: `$\\delta$` -> `δ`. Screen readers read a widget's label
    as its accessible name, and read `$\\delta$` as "dollar backslash delta dollar"."""
    out = re.sub(r"\\([A-Za-z]+)", lambda m: _GREEK.get(m.group(1), m.group(1)), text)
    return re.sub(r"[$\\{}]", "", out).replace("_", " ").strip()


@dataclass(frozen=True)
class Param:
    """A loss parameter; `default`, `min`, `max` drive its slider, `lo`/`hi` bound valid input."""

    name: str  # keyword of the loss function, e.g. "delta"
    default: float  # slider start value
    min: float  # slider lower end
    max: float  # slider upper end
    label: str  # slider label, may contain LaTeX, e.g. r"$\delta$"
    help: str = ""  # one sentence: what the parameter does
    lo: float = -math.inf  # smallest valid value (inclusive unless lo_open)
    hi: float = math.inf  # largest valid value (inclusive)
    lo_open: bool = False  # True: the value must be > lo
    allow_inf: bool = False  # True: +-inf are valid values (Barron's alpha)

    def check(self, loss: str, value) -> float:
        """Return `value` as a float, or raise ValueError naming loss, field, value and range."""
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{loss}: {self.name}={value!r} must be a real number") from None
        if math.isinf(v) and self.allow_inf:
            return v
        low_ok = v > self.lo if self.lo_open else v >= self.lo
        if math.isnan(v) or math.isinf(v) or not low_ok or v > self.hi:
            lb = "(" if self.lo_open or math.isinf(self.lo) else "["
            rb = ")" if math.isinf(self.hi) else "]"
            inf_note = " or +-inf" if self.allow_inf else ""
            raise ValueError(
                f"{loss}: {self.name}={value!r} is out of range: "
                f"must be in {lb}{self.lo:g}, {self.hi:g}{rb}{inf_note}"
            )
        return v


@dataclass(frozen=True)
class LossSpec:
    """A loss of the zoo: its function plus what a page needs to show it."""

    name: str  # registry key, e.g. "huber"
    display: str  # "Huber"
    latex: str  # formula for st.latex
    task: str  # "regression" | "binary" | "multiclass"
    params: tuple[Param, ...]
    fn: Callable  # fn(pred, target, **params) -> per-element tensor
    post: Callable | None = None  # applied after the reduction (rmse: sqrt); None for most

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise ValueError(f"{self.name}: unknown parameter {name!r}: has {self.param_names()}")

    def param_names(self) -> list[str]:
        return [p.name for p in self.params]

    def defaults(self) -> dict[str, float]:
        return {p.name: p.default for p in self.params}

    def resolve(self, **params) -> dict[str, float]:
        """Defaults overridden by `params`, each validated; unknown names raise ValueError."""
        unknown = sorted(set(params) - set(self.param_names()))
        if unknown:
            raise ValueError(
                f"{self.name}: unknown parameter(s) {unknown}: allowed {self.param_names()}"
            )
        out = self.defaults()
        for p in self.params:
            if p.name in params:
                out[p.name] = p.check(self.name, params[p.name])
        return out

    def __call__(self, pred: Tensor, target: Tensor, reduction: str = "mean", **params) -> Tensor:
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction={reduction!r} is unknown: must be one of {REDUCTIONS}")
        values = self.fn(pred, target, **self.resolve(**params))
        if reduction == "mean":
            values = values.mean()
        elif reduction == "sum":
            values = values.sum()
        return values if self.post is None else self.post(values)


# ----------------------------------------------------------------------------- helpers


def _softplus(x: Tensor) -> Tensor:
    """log(1 + e^x) without overflow, with the exact gradient sigmoid(x) everywhere.

    (F.softplus switches to x past a threshold, which is off by up to 2e-9 in value and grad.)
    """
    return torch.logaddexp(x, torch.zeros_like(x))


def _max_exponent(x: Tensor) -> float:
    """Largest t with exp(t) finite in x's dtype, minus a margin for the factors around it."""
    return math.log(torch.finfo(x.dtype).max) - 4.0


def _clamped_log(p: Tensor) -> Tensor:
    """log(p) clamped at -100 as torch's BCELoss does, with a 0 (not NaN) gradient at p = 0."""
    pos = p > 0
    safe = torch.where(pos, p, torch.ones_like(p))
    return torch.where(pos, torch.log(safe), torch.full_like(p, -math.inf)).clamp_min(-100.0)


def _safe_sqrt(x: Tensor) -> Tensor:
    """sqrt with gradient 0 (not inf/NaN) at x = 0: the subgradient of |r| at 0."""
    pos = x > 0
    return torch.where(
        pos, torch.sqrt(torch.where(pos, x, torch.ones_like(x))), torch.zeros_like(x)
    )


def _check_same_shape(name: str, pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"{name}: pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}: "
            "they must match (no silent broadcasting)"
        )


def _margin(name: str, pred: Tensor, target: Tensor) -> Tensor:
    """m = (2y - 1) f for targets y in {0, 1}: positive when the score has the right sign."""
    _check_same_shape(name, pred, target)
    t = target.to(pred.dtype)
    if not bool(((t == 0) | (t == 1)).all()):
        raise ValueError(f"{name}: target must be 0 or 1 (binary labels)")
    return (2 * t - 1) * pred


def _residual(name: str, pred: Tensor, target: Tensor) -> Tensor:
    _check_same_shape(name, pred, target)
    return target - pred


# ----------------------------------------------------------------------------- regression


def mse(pred, target):
    return _residual("mse", pred, target) ** 2


def mae(pred, target):
    return _residual("mae", pred, target).abs()


def rmse_sq(pred, target):
    """Per-element r^2; the spec's `post` takes the sqrt after the mean (so "none" gives |r|)."""
    return _residual("rmse", pred, target) ** 2


def msle(pred, target):
    """(log(1 + pred) - log(1 + target))^2 for targets >= 0.

    Negative targets raise ValueError. Negative predictions are clamped to 0 (the Keras
    convention): a net's output may wander below 0 during training and must not crash it;
    there the loss is flat, so the gradient is 0.
    """
    _check_same_shape("msle", pred, target)
    if bool((target < 0).any()):
        raise ValueError("msle: target must be >= 0 (it compares log(1 + y))")
    return (torch.log1p(pred.clamp_min(0)) - torch.log1p(target)) ** 2


def huber(pred, target, delta):
    a = _residual("huber", pred, target).abs()
    return torch.where(a <= delta, 0.5 * a**2, delta * (a - 0.5 * delta))


def smooth_l1(pred, target, beta):
    a = _residual("smooth_l1", pred, target).abs()
    if beta == 0:  # torch's convention: beta = 0 is exactly L1
        return a
    return torch.where(a < beta, 0.5 * a**2 / beta, a - 0.5 * beta)


def pseudo_huber(pred, target, delta):
    """delta^2 (sqrt(1 + u^2) - 1), u = r / delta, as delta^2 u^2 / (sqrt(1 + u^2) + 1).

    The rewrite avoids the cancellation of sqrt(1 + u^2) - 1 at tiny u, and u * (u / (h + 1))
    keeps u^2 from overflowing at huge u.
    """
    u = _residual("pseudo_huber", pred, target) / delta
    h = torch.hypot(u, torch.ones_like(u))
    return delta**2 * u * (u / (h + 1))


def log_cosh(pred, target):
    """log(cosh r), two exact rewrites, each used where it is accurate.

    |r| >= 1: |r| + log(1 + e^{-2|r|}) - log 2 (cosh itself would overflow at |r| > 710);
    |r| < 1: log1p(2 sinh(r/2)^2), since cosh r - 1 = 2 sinh(r/2)^2 (no cancellation at tiny r).
    """
    a = _residual("log_cosh", pred, target).abs()
    small = a < 1
    s = torch.sinh(0.5 * torch.where(small, a, torch.zeros_like(a)))  # 0 keeps big a out of sinh
    return torch.where(small, torch.log1p(2 * s**2), a + _softplus(-2 * a) - math.log(2.0))


def quantile(pred, target, tau):
    """Pinball loss: tau * r above the prediction, (1 - tau) * |r| below it."""
    r = _residual("quantile", pred, target)
    return r * (tau - (r < 0).to(r.dtype))


def barron(pred, target, alpha, c):
    """Barron's general and adaptive robust loss (CVPR 2019), shape alpha, scale c.

    rho(x) = |a-2|/a * (((x/c)^2 / |a-2| + 1)^(a/2) - 1), with its limits exact:
    a = 2: L2 (x/c)^2 / 2; a = 0: Cauchy log(1 + (x/c)^2 / 2); a = -inf: Welsch
    1 - exp(-(x/c)^2 / 2); a = +inf: exp((x/c)^2 / 2) - 1. The general case is computed as
    |a-2|/a * expm1(a/2 * log1p((x/c)^2 / |a-2|)), which is accurate right up to the
    singular points a -> 0 and a -> 2 (no 0/0 cancellation); for a < 2 it is rewritten with
    (e^t - 1)/t so that even a subnormal alpha gives no inf * 0. For a > 2 the exponent is
    clamped so the value saturates at a huge finite number instead of overflowing.
    """
    x = _residual("barron", pred, target)
    s = (x / c) ** 2  # squared scaled residual
    if alpha == 2:
        return 0.5 * s
    if alpha == 0:
        return torch.log1p(0.5 * s)
    if alpha == -math.inf:
        return -torch.expm1(-0.5 * s)
    if alpha == math.inf:
        return torch.expm1((0.5 * s).clamp_max(_max_exponent(s)))
    b = abs(alpha - 2)
    log_base = torch.log1p(s / b)
    t = (0.5 * alpha) * log_base
    if alpha > 2:  # grows like |x|^alpha: clamp the exponent so the value stays finite
        return (b / alpha) * torch.expm1(t.clamp_max(_max_exponent(s)))
    # b/alpha * expm1(t) == (b * log_base / 2) * expm1(t)/t: no b/alpha blow-up at tiny alpha
    return (0.5 * b) * log_base * _exprel(t)


def _exprel(t: Tensor) -> Tensor:
    """(e^t - 1) / t; its Taylor series 1 + t/2 + t^2/6 near 0 (exact to 1e-19 there, and
    free of the 0/0 and 1/t^2 underflow that break the quotient and its gradient)."""
    small = t.abs() < 1e-6
    safe = torch.where(small, torch.ones_like(t), t)
    return torch.where(small, 1 + t / 2 + t**2 / 6, torch.expm1(safe) / safe)


def barron_bound(alpha: float) -> float:
    """sup over x of Barron's rho for alpha < 0: |alpha - 2| / |alpha| (1 at -inf)."""
    if alpha >= 0:
        return math.inf
    return 1.0 if alpha == -math.inf else abs(alpha - 2) / abs(alpha)


# ----------------------------------------------------------------------------- binary


def zero_one(pred, target):
    """1 if the margin is <= 0 else 0. For pictures: its gradient is 0 almost everywhere."""
    m = _margin("zero_one", pred, target)
    return (m <= 0).to(m.dtype) + 0 * m  # `0 * m` keeps the graph: backward gives 0, no error


def hinge(pred, target):
    return torch.relu(1 - _margin("hinge", pred, target))


def squared_hinge(pred, target):
    return torch.relu(1 - _margin("squared_hinge", pred, target)) ** 2


def logistic(pred, target):
    """Binary cross-entropy on a logit: y log(1 + e^-f) + (1 - y) log(1 + e^f).

    Equals log(1 + e^-m) for 0/1 labels and also accepts soft targets in [0, 1], exactly like
    torch's BCEWithLogitsLoss. `logistic` and `bce_logits` are two names for it.
    """
    _check_same_shape("logistic", pred, target)
    t = target.to(pred.dtype)
    if bool(((t < 0) | (t > 1)).any()):
        raise ValueError("logistic/bce_logits: target must be in [0, 1]")
    return t * _softplus(-pred) + (1 - t) * _softplus(pred)


def bce(pred, target):
    """Binary cross-entropy on probabilities pred in [0, 1], logs clamped at -100 like torch."""
    _check_same_shape("bce", pred, target)
    if bool(((pred < 0) | (pred > 1)).any()):
        raise ValueError("bce: pred must be a probability in [0, 1] (use bce_logits for logits)")
    t = target.to(pred.dtype)
    return -(t * _clamped_log(pred) + (1 - t) * _clamped_log(1 - pred))


def exponential(pred, target):
    """AdaBoost's exp(-m), saturating at a huge finite value for very negative margins."""
    m = _margin("exponential", pred, target)
    return torch.exp((-m).clamp_max(_max_exponent(m)))


def focal(pred, target, gamma, alpha):
    """Focal loss (Lin et al. 2017) on a logit: alpha_t (1 - p_t)^gamma * CE, p_t = sigmoid(m).

    alpha_t = alpha for positives, 1 - alpha for negatives (as torchvision's
    sigmoid_focal_loss). (1 - p_t)^gamma is computed as exp(gamma * log sigmoid(-m)), so the
    gradient stays finite where 1 - p_t underflows to 0 even for 0 < gamma < 1.
    """
    m = _margin("focal", pred, target)
    t = target.to(pred.dtype)
    alpha_t = alpha * t + (1 - alpha) * (1 - t)
    log_1m_pt = -_softplus(m)  # log(1 - p_t) = log sigmoid(-m), exact gradient everywhere
    return alpha_t * torch.exp(gamma * log_1m_pt) * _softplus(-m)


# ----------------------------------------------------------------------------- multiclass


def _check_classes(name: str, logits: Tensor, target: Tensor) -> None:
    if logits.ndim != 2 or target.shape != logits.shape[:1]:
        raise ValueError(
            f"{name}: want logits (N, C) and class indices (N,), got {tuple(logits.shape)} "
            f"and {tuple(target.shape)}"
        )
    if bool(((target < 0) | (target >= logits.shape[1])).any()):
        raise ValueError(f"{name}: class indices must be in [0, {logits.shape[1] - 1}]")


def cross_entropy(pred, target, label_smoothing):
    """-(1 - eps) log p_y - (eps / C) sum_c log p_c of logits (N, C) and class indices (N,)."""
    _check_classes("cross_entropy", pred, target)
    return cross_entropy_values(pred, target, label_smoothing, dim=1)


def cross_entropy_values(logits: Tensor, target: Tensor, label_smoothing=0.0, dim=-1) -> Tensor:
    """Per-sample cross-entropy with classes along ``dim``, accurate near zero loss.

    With z = logits - logit_y and m = max(0, max_{c != y} z_c): -log p_y = m + log1p(expm1(-m)
    + sum_{c != y} e^(z_c - m)); for a confident right answer (m = 0) that is log1p of the
    small terms, to float32's relative precision, where ``logsumexp(x) - x_y`` (and torch's
    log-softmax) cancel two nearly equal numbers. Smoothing: -mean_c log p_c = -log p_y -
    mean_c z_c."""
    index = target.long().unsqueeze(dim)
    shape = [1] * logits.ndim
    shape[dim] = -1
    classes = torch.arange(logits.shape[dim], device=logits.device).view(shape)
    true = logits.gather(dim, index)
    others = torch.where(classes == index, -math.inf, logits) - true  # z, the true class left out
    m = others.amax(dim, keepdim=True).clamp_min(0.0)
    rest = (others - m).exp_().sum(dim, keepdim=True)
    nll = (m + torch.log1p(torch.expm1(-m) + rest)).squeeze(dim)
    if label_smoothing == 0:
        return nll
    return nll - label_smoothing * (logits.mean(dim) - true.squeeze(dim))


def kl_div(pred, target):
    """KL(q || softmax(pred)) per sample = sum_c q_c (log q_c - log p_c); 0 log 0 = 0."""
    if pred.shape != target.shape or pred.ndim != 2:
        raise ValueError(
            f"kl_div: want logits (N, C) and target probabilities (N, C), got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    q = target.to(pred.dtype)
    if bool((q < 0).any()) or not torch.allclose(q.sum(1), torch.ones_like(q[:, 0]), atol=1e-6):
        raise ValueError("kl_div: each target row must be probabilities (>= 0, summing to 1)")
    logp = pred - torch.logsumexp(pred, dim=1, keepdim=True)
    return (torch.xlogy(q, q) - q * logp).sum(dim=1)


def multi_margin(pred, target, margin):
    """Crammer-Singer-style multiclass hinge as torch's MultiMarginLoss (p=1):

    sum over wrong classes i of max(0, margin - f_y + f_i), divided by C.
    """
    _check_classes("multi_margin", pred, target)
    fy = pred.gather(1, target.long()[:, None])  # (N, 1)
    hinges = torch.relu(margin - fy + pred)  # (N, C); the true class gives relu(margin)
    wrong = torch.ones_like(pred).scatter(1, target.long()[:, None], 0.0)
    return (hinges * wrong).sum(dim=1) / pred.shape[1]


# ----------------------------------------------------------------------------- registry

_DELTA = Param(
    "delta", 1.0, 0.1, 5.0, r"$\delta$", "where the quadratic part ends", lo=0, lo_open=True
)

_SPECS = [
    LossSpec("mse", "MSE (L2)", r"\rho(r) = r^2", "regression", (), mse),
    LossSpec("mae", "MAE (L1)", r"\rho(r) = |r|", "regression", (), mae),
    LossSpec(
        "rmse",
        "RMSE",
        r"\mathrm{RMSE} = \sqrt{\tfrac1N \textstyle\sum_i r_i^2}\quad(\text{one point: } |r|)",
        "regression",
        (),
        rmse_sq,
        post=_safe_sqrt,
    ),
    LossSpec(
        "msle",
        "MSLE",
        r"\rho = \big(\log(1+\max(\hat y, 0)) - \log(1+y)\big)^2,\; y \ge 0",
        "regression",
        (),
        msle,
    ),
    LossSpec(
        "huber",
        "Huber",
        r"\rho(r) = \begin{cases} \tfrac12 r^2 & |r| \le \delta \\ "
        r"\delta\,(|r| - \tfrac12\delta) & |r| > \delta \end{cases}",
        "regression",
        (_DELTA,),
        huber,
    ),
    LossSpec(
        "smooth_l1",
        "Smooth L1",
        r"\rho(r) = \begin{cases} \tfrac{r^2}{2\beta} & |r| < \beta \\ "
        r"|r| - \tfrac12\beta & |r| \ge \beta \end{cases}",
        "regression",
        (Param("beta", 1.0, 0.0, 5.0, r"$\beta$", "width of the quadratic zone; 0 is L1", lo=0),),
        smooth_l1,
    ),
    LossSpec(
        "pseudo_huber",
        "Pseudo-Huber",
        r"\rho(r) = \delta^2\left(\sqrt{1 + (r/\delta)^2} - 1\right)",
        "regression",
        (_DELTA,),
        pseudo_huber,
    ),
    LossSpec("log_cosh", "Log-cosh", r"\rho(r) = \log\cosh r", "regression", (), log_cosh),
    LossSpec(
        "quantile",
        "Quantile (pinball)",
        r"\rho(r) = \max(\tau r,\; (\tau - 1)\, r)",
        "regression",
        (
            Param(
                "tau",
                0.5,
                0.05,
                0.95,
                r"$\tau$",
                "the quantile the fit aims at; 0.5 is the median",
                lo=0,
                hi=1,
            ),
        ),
        quantile,
    ),
    LossSpec(
        "barron",
        "Barron (general robust)",
        r"\rho(r) = \frac{|\alpha-2|}{\alpha}\left(\left(\frac{(r/c)^2}{|\alpha-2|} + 1\right)^{\alpha/2}"
        r" - 1\right)",
        "regression",
        (
            Param(
                "alpha",
                1.0,
                -10.0,
                4.0,
                r"$\alpha$",
                "shape: 2 = L2, 1 = pseudo-Huber, 0 = Cauchy, -2 = Geman-McClure, -inf = Welsch",
                allow_inf=True,
            ),
            Param(
                "c",
                1.0,
                0.1,
                5.0,
                "$c$",
                "scale: the width of the quadratic bowl",
                lo=0,
                lo_open=True,
            ),
        ),
        barron,
    ),
    LossSpec(
        "zero_one", "0-1", r"\ell(m) = \mathbb{1}[m \le 0],\; m = y f(x)", "binary", (), zero_one
    ),
    LossSpec("hinge", "Hinge", r"\ell(m) = \max(0,\, 1 - m)", "binary", (), hinge),
    LossSpec(
        "squared_hinge",
        "Squared hinge",
        r"\ell(m) = \max(0,\, 1 - m)^2",
        "binary",
        (),
        squared_hinge,
    ),
    LossSpec("logistic", "Logistic", r"\ell(m) = \log(1 + e^{-m})", "binary", (), logistic),
    LossSpec(
        "bce_logits",
        "BCE with logits",
        r"\ell = y\log(1+e^{-f}) + (1-y)\log(1+e^{f})",
        "binary",
        (),
        logistic,
    ),
    LossSpec("bce", "BCE (probabilities)", r"\ell = -y\log p - (1-y)\log(1-p)", "binary", (), bce),
    LossSpec("exponential", "Exponential", r"\ell(m) = e^{-m}", "binary", (), exponential),
    LossSpec(
        "focal",
        "Focal",
        r"\ell = -\alpha_t\,(1 - p_t)^{\gamma} \log p_t,\; p_t = \sigma(m)",
        "binary",
        (
            Param(
                "gamma",
                2.0,
                0.0,
                5.0,
                r"$\gamma$",
                "down-weights easy examples; 0 is logistic",
                lo=0,
            ),
            Param("alpha", 0.25, 0.0, 1.0, r"$\alpha$", "weight of the positive class", lo=0, hi=1),
        ),
        focal,
    ),
    LossSpec(
        "cross_entropy",
        "Cross-entropy",
        r"\ell = -(1-\varepsilon)\log p_y - \frac{\varepsilon}{C}\sum_{c}\log p_c",
        "multiclass",
        (
            Param(
                "label_smoothing",
                0.0,
                0.0,
                0.5,
                r"$\varepsilon$",
                "mass moved from the true class to all classes",
                lo=0,
                hi=1,
            ),
        ),
        cross_entropy,
    ),
    LossSpec(
        "kl_div",
        "KL divergence",
        r"\ell = \sum_c q_c \log \frac{q_c}{p_c}",
        "multiclass",
        (),
        kl_div,
    ),
    LossSpec(
        "multi_margin",
        "Multiclass hinge",
        r"\ell = \frac1C \sum_{i \ne y} \max(0,\, \Delta - f_y + f_i)",
        "multiclass",
        (
            Param(
                "margin", 1.0, 0.1, 5.0, r"$\Delta$", "the required gap to every wrong class", lo=0
            ),
        ),
        multi_margin,
    ),
]

REGISTRY: dict[str, LossSpec] = {s.name: s for s in _SPECS}


def get(name: str) -> LossSpec:
    """The spec of loss `name`; ValueError listing the valid names otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"loss={name!r} is unknown: must be one of {sorted(REGISTRY)}") from None


def names(task: str | None = None) -> list[str]:
    """Registered loss names in display order, optionally only those of one task."""
    if task is not None and task not in TASKS:
        raise ValueError(f"task={task!r} is unknown: must be one of {TASKS} or None")
    return [s.name for s in _SPECS if task is None or s.task == task]


# ----------------------------------------------------------------------------- curves

#: Target used when a loss that is not a function of r alone is drawn against r.
CURVE_TARGET = {"msle": 5.0}


def regression_curves(name: str, r: np.ndarray, **params) -> dict[str, np.ndarray]:
    """rho(r), its derivative psi(r) = d rho / d r and the IRLS weight psi(r) / r, over r.

    Computed by torch autograd from the loss function itself (float64), so the pictures show
    exactly what training differentiates. r = target - pred, drawn at target 0 (msle: at
    CURVE_TARGET, with pred = target - r). At r = 0 the weight psi(r)/r is 0/0; we return its
    limit estimated symmetrically at a tiny offset h: (psi(h)/h + psi(-h)/(-h)) / 2. For L1
    and quantile this is ~1/h, huge: their weight really goes to infinity at 0.
    """
    spec = get(name)
    if spec.task != "regression":
        raise ValueError(f"loss={name!r} is a {spec.task} loss: regression_curves wants regression")
    r = np.asarray(r, dtype=np.float64)
    rho, psi = _rho_psi(spec, r, params)
    zero = r == 0
    weight = np.divide(psi, r, out=np.zeros_like(psi), where=~zero)
    if zero.any():
        h = 1e-6 * max(float(np.max(np.abs(r))), 1e-3)
        _, psi_h = _rho_psi(spec, np.array([h, -h]), params)
        weight[zero] = 0.5 * (psi_h[0] / h + psi_h[1] / -h)
    return {"r": r, "rho": rho, "psi": psi, "weight": weight}


def _rho_psi(spec: LossSpec, r: np.ndarray, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per-element loss at residual r and its autograd derivative in r (float64)."""
    rt = torch.tensor(r, dtype=torch.float64, requires_grad=True)
    target = torch.full_like(rt, CURVE_TARGET.get(spec.name, 0.0))
    rho = spec(target - rt, target, reduction="none", **params)
    (psi,) = torch.autograd.grad(rho.sum(), rt)
    return rho.detach().numpy(), psi.numpy()


def margin_curve(name: str, m: np.ndarray, **params) -> np.ndarray:
    """A binary loss against the margin m = y f(x) (drawn as a positive example, f = m).

    `bce` takes probabilities, so it is drawn at p = sigmoid(m): it then equals the logistic
    loss (up to its log clamp at -100).
    """
    spec = get(name)
    if spec.task != "binary":
        raise ValueError(f"loss={name!r} is a {spec.task} loss: margin_curve wants binary")
    mt = torch.as_tensor(np.asarray(m, dtype=np.float64))
    pred = torch.sigmoid(mt) if name == "bce" else mt
    return spec(pred, torch.ones_like(mt), reduction="none", **params).numpy()


def cross_entropy_curve(
    p: np.ndarray, n_classes: int = 10, label_smoothing: float = 0.0
) -> np.ndarray:
    """Cross-entropy against the predicted probability p of the true class.

    The other C - 1 classes share 1 - p equally; logits are log-probabilities, so the spec's
    softmax gives back exactly these probabilities.
    """
    if not 2 <= int(n_classes) <= 1000:
        raise ValueError(f"n_classes={n_classes!r} is out of range: must be in [2, 1000]")
    p = np.asarray(p, dtype=np.float64)
    if np.any((p <= 0) | (p >= 1)):
        raise ValueError("p must be in the open interval (0, 1)")
    C = int(n_classes)
    pt = torch.as_tensor(p)
    rest = torch.log((1 - pt) / (C - 1))[:, None].expand(-1, C - 1)
    logits = torch.cat([torch.log(pt)[:, None], rest], dim=1)  # (N, C), true class 0
    target = torch.zeros(len(p), dtype=torch.long)
    return get("cross_entropy")(
        logits, target, reduction="none", label_smoothing=label_smoothing
    ).numpy()
