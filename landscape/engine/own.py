"""Your own network and data: load a model, its weights, a data set and a loss, and slice them.

Everything here is a user's spec, so everything is checked before any long work, and every
bad spec is one ``ValueError`` naming what is wrong:

- model: ``MODULE:FUNCTION`` (the current folder is on the import path, as with
  ``python -m``) called with JSON keyword arguments;
- weights: ``.safetensors`` (preferred), or a ``.pt``/``.pth``/``.bin`` state dict read with
  ``torch.load(weights_only=True)`` only, so a file that would unpickle arbitrary objects is
  refused before any of its code runs; missing, unexpected and wrongly shaped keys are each
  named with both shapes;
- data: ``.npz`` with arrays ``X`` and ``y``, a CSV (the upload parser and its messages,
  without the web caps; the last column is the target), or ``MODULE:FUNCTION`` returning a
  ``torch.utils.data.Dataset`` or ``(X, y)``;
- loss: a name of the loss zoo or ``MODULE:FUNCTION`` (``fn(output, y)`` -> the batch mean);
  default cross-entropy for integer targets, MSE for float targets.

Evaluation streams mini-batches and combines them weighted by their size, so the result is
the exact mean over the whole set (a zoo loss with a final transform, such as rmse's square
root, is applied to the exact mean) while memory stays bounded by one batch. Each batch goes
through ``landscape.engine.batched.evaluate`` when it supports the model on the CPU, else through
``landscape.engine.surface.loop_evaluate``: the same two paths as the built-in runs.

``open_model(...)`` returns an ``OwnModel`` with ``line``, ``plane``, ``pca_plane`` and
``interpolation`` methods that return ``landscape.engine.surface.Surface`` objects.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
import math
import os
import re
import sys
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from landscape.core import directions as D
from landscape.core import losses
from landscape.core.pointwise import accuracy
from landscape.data import upload
from landscape.engine import batched
from landscape.engine import surface as S
from landscape.engine.distributed import digest
from landscape.engine.subject import Subject

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
DATA_SUFFIXES = (".npz", ".csv")
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
DIR_TYPES = ("weights", "states")
DEFAULT_BATCH = 256  # samples per evaluation batch: bounds activation memory
MAX_BATCH = 2**20
PROBE_ROWS = 2  # samples of the check that the data fits the model, before long work
SPEC_RE = re.compile(r"^([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*):([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)$")
# Targets the zoo's non-regression losses adapt: binary ones take probabilities/logits in
# one column, these two take a probability target.
_PROB_INPUT = ("bce",)
_PROB_TARGET = ("kl_div",)


# ----------------------------------------------------------------------------- small checks


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


def natural_key(text: str) -> list:
    """Sort key that orders ``ckpt_2`` before ``ckpt_10`` (digit runs compare as numbers)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(text))]


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    text = str(spec)
    if not DEVICE_PATTERN.fullmatch(text):
        raise ValueError(
            f"--device {text!r} is not allowed: must be auto, cpu, cuda, cuda:N or mps"
        )
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {text!r}: CUDA is not available on this machine")
        index = int(text.split(":")[1]) if ":" in text else 0
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"--device {text!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    if text == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ValueError("--device 'mps': Apple's MPS backend is not available on this machine")
    return torch.device(text)


def import_object(spec: str, what: str) -> Callable:
    """The callable ``MODULE:FUNCTION`` names; the current folder is on the import path."""
    if not isinstance(spec, str) or not SPEC_RE.match(spec):
        raise ValueError(
            f"{what} {spec!r} must look like MODULE:FUNCTION (e.g. my_models:make_net)"
        )
    module_name, _, attr = spec.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # as `python -m` does for the folder it runs in
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise ValueError(
                f"{what} {spec!r}: no module named {e.name!r} (in the current folder {cwd} "
                "or installed)"
            ) from None
        raise ValueError(f"{what} {spec!r}: importing {module_name!r} failed: {_one(e)}") from None
    except Exception as e:  # the user's module raised while being imported
        raise ValueError(f"{what} {spec!r}: importing {module_name!r} failed: {_one(e)}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{what} {spec!r}: module {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{what} {spec!r}: {attr!r} is a {type(obj).__name__}, not a function")
    return obj


def _one(e: BaseException) -> str:
    """``Type: message`` on one line."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def parse_kwargs(kwargs: str | dict | None) -> dict:
    """``--model-kwargs``: a JSON object (or a dict already) -> dict."""
    if kwargs is None or kwargs == "":
        return {}
    if isinstance(kwargs, str):
        try:
            kwargs = json.loads(kwargs)
        except json.JSONDecodeError as e:
            raise ValueError(f"--model-kwargs {kwargs[:80]!r} is not valid JSON: {e}") from None
        except RecursionError:  # the parser's depth bound: the interpreter's recursion limit
            raise ValueError(
                "--model-kwargs is nested too deeply: keyword arguments are shallow JSON"
            ) from None
    if not isinstance(kwargs, dict):
        raise ValueError(
            f"--model-kwargs must be a JSON object like '{{\"width\": 64}}', got {kwargs!r}"
        )
    return kwargs


def _existing_file(path, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{what} {str(path)!r}: no such file")
    return p


# ----------------------------------------------------------------------------- model + weights


def build_model(factory: str, kwargs: str | dict | None = None) -> nn.Module:
    """Import ``MODULE:FUNCTION`` and call it with the keyword arguments; must give a Module."""
    fn = import_object(factory, "--model-factory")
    kw = parse_kwargs(kwargs)
    try:
        model = fn(**kw)
    except Exception as e:
        raise ValueError(f"--model-factory {factory!r} raised {_one(e)} (kwargs {kw})") from None
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"--model-factory {factory!r} returned a {type(model).__name__}: must return a "
            "torch.nn.Module"
        )
    return model


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Tensors of a ``.safetensors`` file or of a ``weights_only`` torch state dict.

    A torch file is read with ``torch.load(weights_only=True)``: its unpickler only builds
    tensors and plain containers, so a file that needs any other object is refused and none
    of its code runs. A ``{"state_dict": {...}}`` wrapper (Lightning's layout) is unwrapped.
    """
    p = _existing_file(path, "--weights")
    suffix = p.suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise ValueError(
            f"--weights {str(path)!r}: unknown kind {suffix or '(no suffix)'!r}: must be one of "
            f"{list(WEIGHT_SUFFIXES)}"
        )
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(p), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise ValueError(
                f"--weights {str(path)!r} is not a readable safetensors file: {_one(e)}"
            ) from None
    else:
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # UnpicklingError for anything beyond tensors and containers
            why = re.search(r"Unsupported (?:global: GLOBAL|operand) \S+", str(e))
            raise ValueError(
                f"--weights {str(path)!r} is refused: torch.load(weights_only=True) cannot read "
                f"it ({why.group(0) if why else _one(e)[:200]}); it needs unpickling of objects "
                "other than tensors: save model.state_dict(), or use .safetensors"
            ) from None
        if isinstance(state, dict) and set(state) & {"state_dict", "model_state_dict"}:
            inner = state.get("state_dict", state.get("model_state_dict"))
            state = inner if isinstance(inner, dict) else state
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise ValueError(
            f"--weights {str(path)!r} is not a state dict: must map parameter names to tensors"
        )
    return state


def check_state_dict(model: nn.Module, state: dict[str, Tensor], what: str) -> None:
    """Raise ValueError naming every missing, unexpected and wrongly shaped key."""
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state.items()}
    missing = [f"{k} {want[k]}" for k in want if k not in have]
    extra = [f"{k} {have[k]}" for k in have if k not in want]
    shapes = [
        f"{k}: model {want[k]}, file {have[k]}" for k in want if k in have and want[k] != have[k]
    ]
    parts = []
    if missing:
        parts.append(f"missing keys (model shape) {missing}")
    if extra:
        parts.append(f"unexpected keys (file shape) {extra}")
    if shapes:
        parts.append(f"wrong shapes {shapes}")
    if parts:
        raise ValueError(f"{what} does not fit the model: " + "; ".join(parts))


def load_weights(model: nn.Module, path: str | os.PathLike, what: str = "--weights") -> None:
    """Read ``path`` and copy it into ``model`` (strict: every key, every shape)."""
    state = read_state_dict(path)
    check_state_dict(model, state, f"{what} {str(path)!r}")
    model.load_state_dict(state, strict=True)


def state_of(model: nn.Module, path: str | os.PathLike, what: str) -> dict[str, Tensor]:
    """The full state (parameters and buffers) ``path`` gives ``model``, checked, as copies."""
    state = read_state_dict(path)
    check_state_dict(model, state, f"{what} {str(path)!r}")
    ref = model.state_dict()
    return {k: state[k].to(ref[k].dtype).clone() for k in ref}


# ----------------------------------------------------------------------------- data


@dataclass
class Data:
    """Samples to evaluate on, read in batches: ``(X, y)`` arrays or a torch Dataset."""

    arrays: tuple | None = None  # (X, y): numpy arrays or tensors sharing a first dim
    dataset: torch.utils.data.Dataset | None = None
    indices: np.ndarray | None = None  # the subset evaluated (None: all, in order)
    source: str = ""  # how the user named it

    def __len__(self) -> int:
        if self.indices is not None:
            return len(self.indices)
        return len(self.arrays[0]) if self.arrays is not None else len(self.dataset)

    def total(self) -> int:
        """Samples before ``--max-samples``."""
        return len(self.arrays[0]) if self.arrays is not None else len(self.dataset)

    def subset(self, max_samples: int | None, seed: int = 0) -> Data:
        """A fixed random subset of ``max_samples`` samples (sorted indices; seeded)."""
        if max_samples is None:
            return self
        n = self.total()
        if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
            raise ValueError(f"--max-samples {max_samples!r} must be an integer >= 1")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"--sample-seed {seed!r} must be an integer >= 0")
        if max_samples >= n:
            return self
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randperm(n, generator=gen)[:max_samples].sort().values.numpy()
        return Data(self.arrays, self.dataset, idx, self.source)

    def batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """``(X, y)`` tensors of at most ``batch_size`` samples each, in order."""
        n = len(self)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            yield self.batch(start, stop)

    def batch(self, start: int, stop: int) -> tuple[Tensor, Tensor]:
        if self.arrays is not None:
            X, y = self.arrays
            sel = slice(start, stop) if self.indices is None else self.indices[start:stop]
            return _tensor(X[sel]), _tensor(y[sel])
        idx = range(start, stop) if self.indices is None else self.indices[start:stop]
        items = [self.dataset[int(i)] for i in idx]
        try:
            X, y = torch.utils.data.default_collate(items)
        except (TypeError, ValueError, RuntimeError) as e:
            raise ValueError(
                f"--data {self.source!r}: items must be (input, target) pairs of tensors or "
                f"numbers: {_one(e)}"
            ) from None
        return _tensor(X), _tensor(y)

    def digest(self, batch_size: int) -> str:
        """sha256 of every sample (inputs and targets, in order), read batch by batch."""

        return digest([digest(X, y) for X, y in self.batches(batch_size)])

    def all(self) -> tuple[Tensor, Tensor]:
        """Every sample in one pair (curvature and tests; memory of the whole set)."""
        return self.batch(0, len(self))


def _tensor(a) -> Tensor:
    t = torch.as_tensor(np.ascontiguousarray(a) if isinstance(a, np.ndarray) else a)
    if t.dtype == torch.float64:
        return t.float()  # user data is float64 more often than the model is
    if t.dtype in (torch.int32, torch.int16, torch.int8, torch.uint8):
        return t.long()
    return t


def _check_pair(X, y, where: str):
    if X.ndim == 0 or y.ndim == 0 or len(X) != len(y) or len(X) == 0:
        raise ValueError(
            f"--data {where}: X has shape {tuple(X.shape)} and y {tuple(y.shape)}: they must "
            "share a first dimension of at least 1 (one row per sample)"
        )
    for name, a in (("X", X), ("y", y)):
        kind = a.dtype.kind if isinstance(a, np.ndarray) else None
        if (kind is not None and kind not in "biuf") or (
            isinstance(a, Tensor) and (a.is_complex() or a.dtype == torch.bool)
        ):
            raise ValueError(f"--data {where}: {name} has dtype {a.dtype}: must be numbers")
        # NaN or inf evaluates to a surface of NaN: refused before any work, by sample
        finite = np.isfinite(a.reshape(len(a), -1)) if isinstance(a, np.ndarray) else None
        if finite is None and isinstance(a, Tensor) and a.is_floating_point():
            finite = torch.isfinite(a.reshape(len(a), -1)).numpy()
        if finite is not None and not finite.all():
            i = int(np.flatnonzero(~finite.all(1))[0])
            raise ValueError(
                f"--data {where}: {name} of sample {i} (counting from 0) is not finite "
                f"({np.asarray(a[i]).reshape(-1)[~finite[i]][0]}): every value must be a number"
            )
    return X, y


def _check_labels(data: Data, n_out: int, loss: str) -> None:
    """Integer targets of a zoo loss on an output of ``n_out`` > 1 columns are class indices
    in [0, n_out): checked for every sample before any work, naming the first bad one."""
    if data.arrays is None or n_out < 2 or ":" in loss:
        return
    y = data.arrays[1]
    y = y.numpy() if isinstance(y, Tensor) else np.asarray(y)
    if y.dtype.kind not in "iub" or y.ndim != 1:
        return
    bad = (y < 0) | (y >= n_out)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"--data {data.source!r}: the label of sample {i} (counting from 0) is {y[i]}: the "
            f"model gives {n_out} classes, so labels must be in [0, {n_out - 1}]"
        )


def _read_npz(path: Path) -> Data:
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            if "X" not in names or "y" not in names:
                raise ValueError(
                    f"--data {str(path)!r} has arrays {names}: it must hold arrays 'X' and 'y'"
                )
            X, y = z["X"], z["y"]
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"--data {str(path)!r} is not a readable .npz file: {_one(e)}") from None
    except ValueError as e:
        if "--data" in str(e):
            raise
        raise ValueError(f"--data {str(path)!r}: {_one(e)} (object arrays are refused)") from None
    return Data(arrays=_check_pair(X, y, repr(str(path))), source=str(path))


def _read_csv(path: Path) -> Data:
    """The upload parser without the web caps; the last column is the target.

    Integer targets stay the file's class indices (the model was trained on them); any other
    number is a float target; a text label is refused (the model's class order is unknown).
    """

    try:
        X, y = upload.to_arrays(
            upload.read_table(path.read_bytes(), math.inf, sys.maxsize, sys.maxsize)
        )
    except ValueError as e:
        raise ValueError(f"--data {str(path)!r}: {e}") from None
    if np.all(y == np.round(y)):
        if y.min() < 0:
            raise ValueError(f"--data {str(path)!r}: integer targets must be class indices >= 0")
        y = y.astype(np.int64)
    else:
        y = y.astype(np.float32)
    return Data(arrays=(X.astype(np.float32), y), source=str(path))


def load_data(spec: str) -> Data:
    """``.npz`` (X, y), ``.csv`` (last column = target) or ``MODULE:FUNCTION``."""
    if not isinstance(spec, str) or not spec:
        raise ValueError("--data is required: a .npz, a .csv or MODULE:FUNCTION")
    suffix = Path(spec).suffix.lower()
    if suffix in DATA_SUFFIXES:
        p = _existing_file(spec, "--data")
        return _read_npz(p) if suffix == ".npz" else _read_csv(p)
    if not SPEC_RE.match(spec):
        raise ValueError(
            f"--data {spec!r} is not allowed: must be a .npz file with arrays X and y, a .csv "
            "file, or MODULE:FUNCTION"
        )
    fn = import_object(spec, "--data")
    try:
        out = fn()
    except Exception as e:
        raise ValueError(f"--data {spec!r} raised {_one(e)}") from None
    if isinstance(out, torch.utils.data.Dataset):
        try:
            n = len(out)
        except TypeError:
            raise ValueError(
                f"--data {spec!r} returned a Dataset without len(): use a map-style Dataset"
            ) from None
        if n == 0:
            raise ValueError(f"--data {spec!r} returned an empty Dataset")
        return Data(dataset=out, source=spec)
    if isinstance(out, (tuple, list)) and len(out) == 2:
        X, y = (a if isinstance(a, (np.ndarray, Tensor)) else np.asarray(a) for a in out)
        return Data(arrays=_check_pair(X, y, repr(spec)), source=spec)
    raise ValueError(
        f"--data {spec!r} returned a {type(out).__name__}: must return a torch Dataset or a "
        "pair (X, y)"
    )


# ----------------------------------------------------------------------------- loss


@dataclass(frozen=True)
class Loss:
    """A loss as the mean of per-batch values, then ``post`` on the exact mean (rmse: sqrt).

    ``batch(output, y)`` returns the mean over the batch; batches are combined weighted by
    their number of samples, which gives the mean over the whole set exactly.
    """

    name: str
    batch: Callable[[Tensor, Tensor], Tensor]
    post: Callable[[float], float] | None = None

    def __call__(self, output: Tensor, y: Tensor) -> Tensor:
        """The loss of one full batch (the same as streaming one batch)."""
        v = self.batch(output, y)
        return v if self.post is None else self.post(torch.as_tensor(v))


def _flat_pred(out: Tensor, y: Tensor, name: str) -> Tensor:
    """One prediction per sample: (N,) from (N,) or (N, 1)."""
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.shape != y.shape:
        raise ValueError(
            f"--loss {name!r}: the model gives outputs of shape {tuple(out.shape)} for targets "
            f"of shape {tuple(y.shape)}: they must match (or outputs (N, 1) for targets (N,))"
        )
    return out


def make_loss(spec: str | None, y_example: Tensor, params: dict | None = None) -> Loss:
    """The loss ``--loss`` names for targets like ``y_example`` (None: CE or MSE by dtype)."""
    integer = not torch.is_floating_point(y_example)
    if spec is None:
        spec = "cross_entropy" if integer else "mse"
    if ":" in spec:
        if params:
            raise ValueError("--loss-param only applies to losses of the zoo")
        fn = import_object(spec, "--loss")
        return Loss(spec, lambda out, y: fn(out, y))

    try:
        zoo = losses.get(spec)
    except ValueError as e:
        raise ValueError(f"--loss {spec!r}: {e} (or MODULE:FUNCTION)") from None
    kw = zoo.resolve(**(params or {}))
    post = None if zoo.post is None else (lambda v: float(zoo.post(torch.as_tensor(v))))

    def mean(values: Tensor) -> Tensor:
        return values.mean()

    if zoo.task == "multiclass":
        if not integer:
            raise ValueError(
                f"--loss {spec!r} is a classification loss: it needs integer class targets, "
                f"but y is {y_example.dtype}; use a regression loss such as mse"
            )
        if spec in _PROB_TARGET:
            return Loss(
                spec,
                lambda out, y: mean(zoo.fn(out, F.one_hot(y, out.shape[1]).to(out.dtype), **kw)),
                post,
            )
        return Loss(spec, lambda out, y: mean(zoo.fn(out, y, **kw)), post)
    if zoo.task == "binary":

        def binary(out, y):
            if integer and bool(((y != 0) & (y != 1)).any()):
                raise ValueError(f"--loss {spec!r} is binary: targets must be 0 or 1")
            p = _flat_pred(out, y, spec)
            p = torch.sigmoid(p) if spec in _PROB_INPUT else p
            return mean(zoo.fn(p, y.to(p.dtype), **kw))

        return Loss(spec, binary, post)

    def regression(out, y):
        if integer:  # Li et al.'s MSE option: softmax vs one-hot, all N*C entries
            p, t = torch.softmax(out, 1), F.one_hot(y, out.shape[1]).to(out.dtype)
        else:
            p, t = (_flat_pred(out, y, spec) if y.ndim == 1 else out), y.to(out.dtype)
        return mean(zoo.fn(p, t, **kw))

    return Loss(spec, regression, post)


# ----------------------------------------------------------------------------- evaluation


def _fast_path(model: nn.Module, device: torch.device, method: str):
    """``batched.evaluate`` when it supports the model on this device, else the loop."""
    if method not in S.METHODS:
        raise ValueError(f"method={method!r} is not allowed: must be one of {list(S.METHODS)}")
    if method == "loop":
        return S.loop_evaluate, "loop"

    usable = device.type == "cpu" and batched.supports(model)  # its kernels are CPU ones
    if method == "batched" and not usable:
        raise ValueError("method='batched' does not support this model/device: use auto or loop")
    return (batched.evaluate, "batched") if usable else (S.loop_evaluate, "loop")


def _split_direction(d: dict[str, Tensor], params: dict, buffers: dict, name: str):
    """A direction over parameters (and, for dir_type states, float buffers) -> two dicts."""
    unknown = [k for k in d if k not in params and k not in buffers]
    missing = [k for k in params if k not in d]
    if unknown or missing:
        raise ValueError(f"{name}: keys {unknown or missing} do not match the model's state")
    for k, t in d.items():
        ref = params.get(k, buffers.get(k))
        if tuple(t.shape) != tuple(ref.shape):
            raise ValueError(f"{name}[{k!r}] shape={tuple(t.shape)} must be {tuple(ref.shape)}")
    pd = {k: d[k].detach().to(params[k]) for k in params}
    bd = {k: d[k].detach().to(buffers[k]) for k in buffers if k in d and bool(d[k].any())}
    return pd, bd


def evaluate(
    model: nn.Module,
    loss: Loss,
    data: Data,
    directions: Sequence[dict[str, Tensor]],
    coords: np.ndarray,
    accuracy_fn: Callable | None = None,
    batch_size: int = DEFAULT_BATCH,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    method: str = "auto",
) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Loss (and accuracy) at ``model + sum_j coords[k, j] * directions[j]``, streamed.

    Directions are keyed like ``named_parameters()``; for ``dir_type="states"`` they also
    carry floating-point buffers (BatchNorm running statistics), which then move with the
    point. Each batch is evaluated at every point by ``batched.evaluate`` or
    ``surface.loop_evaluate``; batch means are combined weighted by batch size. Returns
    ``(losses (K,), accuracies (K,) or None, info)``; the model is never modified.
    """
    device = torch.device(device)
    coords = np.asarray(coords, dtype=np.float64)
    work = copy.deepcopy(model).to(device).eval()
    params = {k: p.detach() for k, p in work.named_parameters()}
    buffers = {k: b.detach().clone() for k, b in work.named_buffers() if b.is_floating_point()}
    split = [_split_direction(d, params, buffers, f"d{i + 1}") for i, d in enumerate(directions)]
    pdirs = [p for p, _ in split]
    moves_buffers = any(b for _, b in split)
    center = {k: p.clone() for k, p in params.items()}
    fn, path = _fast_path(work, device, method)
    K, n = len(coords), len(data)
    sums = np.zeros(K)
    acc_sums = None if accuracy_fn is None else np.zeros(K)
    done, t0 = 0, time.perf_counter()
    live = dict(work.named_buffers())
    with torch.no_grad():
        for X, y in data.batches(batch_size):
            X, y = X.to(device), y.to(device)
            nb = len(y)
            if not moves_buffers:
                ls, accs = fn(work, loss.batch, X, y, center, pdirs, coords, accuracy_fn)
            else:  # buffers differ per point: one call per point, buffers set in place
                ls, accs = np.empty(K), None if accuracy_fn is None else np.empty(K)
                for p, point in enumerate(coords):
                    for k, b0 in buffers.items():
                        value = b0.clone()
                        for a, (_, bd) in zip(point, split):
                            if k in bd:
                                value += float(a) * bd[k]
                        live[k].copy_(value)
                    lp, ap = fn(work, loss.batch, X, y, center, pdirs, point[None, :], accuracy_fn)
                    ls[p] = lp[0]
                    if accs is not None:
                        accs[p] = ap[0]
            sums += np.asarray(ls, dtype=np.float64) * nb
            if acc_sums is not None:
                acc_sums += np.asarray(accs, dtype=np.float64) * nb
            done += nb
            if progress is not None:
                progress(done, n)
    losses = sums / n
    if loss.post is not None:
        losses = np.array([loss.post(v) for v in losses], dtype=np.float64)
    accs = None if acc_sums is None else acc_sums / n
    info = {
        "method": path,
        "seconds": time.perf_counter() - t0,
        "n_data": n,
        "n_params": int(sum(p.numel() for p in params.values())),
        "batch_size": batch_size,
        "device": str(device),
    }
    return losses, accs, info


# ----------------------------------------------------------------------------- the model


@dataclass
class OwnModel:
    """A user's model with its weights, data, loss and device: the thing being sliced."""

    model: nn.Module  # eval mode, on the CPU, the weights of --weights
    data: Data
    loss: Loss
    accuracy_fn: Callable | None
    device: torch.device
    batch_size: int = DEFAULT_BATCH
    spec: dict = field(default_factory=dict)  # JSON: factory, kwargs, files and their sha256
    trajectory: np.ndarray | None = None  # (checkpoints, P): --checkpoints then --weights

    def state(self) -> dict[str, Tensor]:
        """Parameters and floating-point buffers (the keys a ``states`` direction has)."""
        out = dict(D.weights_of(self.model))
        out.update({k: b for k, b in self.model.named_buffers() if b.is_floating_point()})
        return out

    def directions(
        self,
        n: int = 2,
        norm: str = "filter",
        ignore: str | None = "biasbn",
        seed: int = 0,
        orthogonal: bool = False,
        dir_type: str = "weights",
    ) -> list[dict[str, Tensor]]:
        """Seeded random directions (``dir_type="states"``: BatchNorm buffers move too), the
        same as the built-in runs get from ``landscape.core.directions``."""
        if dir_type not in DIR_TYPES:
            raise ValueError(f"--dir-type {dir_type!r} is not allowed: must be one of {DIR_TYPES}")
        return D.random_directions(self.model, n, norm, ignore, seed, orthogonal, dir_type)

    def evaluate(self, directions, coords, progress=None, method="auto"):
        """See ``landscape.engine.own.evaluate``: (losses, accuracies, info)."""
        return evaluate(
            self.model,
            self.loss,
            self.data,
            directions,
            coords,
            self.accuracy_fn,
            self.batch_size,
            self.device,
            progress,
            method,
        )

    def _surface(self, kind, xs, ys, dirs, progress, method, meta) -> S.Surface:
        xs = S._coords("xs", xs)
        extra = S._json_meta({"model": self.spec, **(meta or {})})
        if kind == "line":
            coords = xs[:, None]
        else:
            ys = S._coords("ys", ys)
            if xs.size * ys.size > S.MAX_POINTS:
                raise ValueError(f"grid {ys.size}x{xs.size} is too large: at most {S.MAX_POINTS}")
            gx, gy = np.meshgrid(xs, ys)  # (ny, nx); row i is ys[i]
            coords = np.stack([gx.ravel(), gy.ravel()], axis=1)
        losses, accs, info = self.evaluate(dirs, coords, progress, method)
        shape = (len(xs),) if kind == "line" else (len(ys), len(xs))
        acc = None if accs is None else accs.reshape(shape)
        if kind == "plane":
            cos = D.cosine(*(_params_only(d, self.model) for d in dirs))
            info["cosine"] = None if math.isnan(cos) else cos
        return S.Surface(kind, xs, ys, losses.reshape(shape), acc, {**extra, "kind": kind, **info})

    def line(self, direction, ts, progress=None, method="auto", meta=None) -> S.Surface:
        """Loss at ``weights + t * direction`` for each t (as ``surface.line``)."""
        return self._surface("line", ts, None, [direction], progress, method, meta)

    def plane(self, d1, d2, xs, ys, progress=None, method="auto", meta=None) -> S.Surface:
        """Loss over ``weights + x*d1 + y*d2`` (as ``surface.plane``: ``loss[i, j]`` at xs[j], ys[i])."""
        return self._surface("plane", xs, ys, [d1, d2], progress, method, meta)

    def pca(self, ignore: str | None = None, projection: str = "cos"):
        """PCA directions of the checkpoint path and its projection (``projection``: "cos"
        or "lstsq", see ``directions.project``): (d1, d2, ratio, px, py)."""
        if self.trajectory is None:
            raise ValueError(
                "PCA directions need --checkpoints (at least 2 files besides --weights)"
            )
        d1, d2, ratio = D.pca_directions(self.trajectory, self.model, ignore)
        px, py = D.project(self.trajectory, self.model, d1, d2, projection)
        return d1, d2, ratio, px, py

    def other(self, weights: str | os.PathLike, what: str = "--to") -> nn.Module:
        """A copy of the model holding another weight file (checked like --weights)."""
        end = copy.deepcopy(self.model)
        end.load_state_dict(state_of(self.model, weights, what))
        return end.eval()

    def interpolation_to(self, other_weights: str | os.PathLike) -> dict[str, Tensor]:
        """``other - weights`` over parameters and float buffers: t=1 is the other net exactly."""
        return D.interpolation_direction(self.model, self.other(other_weights), dir_type="states")

    def subject(self, weights: str | os.PathLike | None = None):
        """This model (or it with another weight file) as a ``landscape.engine.subject.Subject``; its
        data is the "train" split."""

        data: dict = {}

        def split(name: str):
            if name != "train":
                raise ValueError(
                    f"split={name!r}: your own model has one data set (--data), 'train'"
                )
            if "all" not in data:  # only the Hessian needs every sample in memory at once
                data["all"] = self.data.all()
            return data["all"]

        frozen = copy.deepcopy(self.model).eval() if weights is None else self.other(weights)
        spec = self.spec if weights is None else {**self.spec, "weights": str(weights)}
        key = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
        return Subject(
            build=lambda: copy.deepcopy(frozen),
            loss_fn=self.loss,
            splits=split,
            accuracy_fn=self.accuracy_fn,
            trajectory=self.trajectory,
            name=self.spec.get("factory", "model"),
            key=key,
        )

    def evaluator(self):
        """A ``slices.compute(evaluator=)`` that streams this model's data in batches."""

        def run(subject, dirs, coords, split="train", *, centre=None, method="auto", progress=None):
            if split != "train":
                raise ValueError(f"split={split!r}: your own model has one data set, 'train'")
            model = subject.model() if centre is None else centre
            return evaluate(
                model,
                self.loss,
                self.data,
                dirs,
                coords,
                self.accuracy_fn,
                self.batch_size,
                self.device,
                None if progress is None else (lambda done, n: progress(done, n)),
                method,
            )

        return run


def _params_only(d: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    return {k: d[k] for k, _ in model.named_parameters()}


def _probe(model: nn.Module, data: Data, loss: Loss, acc: Callable | None, device) -> None:
    """Run the first samples through model, loss and accuracy: a misfit fails fast, in words."""
    X, y = data.batch(0, min(PROBE_ROWS, len(data)))
    work = copy.deepcopy(model).to(device).eval()
    with torch.no_grad():
        try:
            out = work(X.to(device))
        except Exception as e:
            raise ValueError(
                f"--data {data.source!r} does not fit the model: inputs of shape "
                f"{tuple(X.shape[1:])} ({X.dtype}) per sample gave {_one(e)[:300]}"
            ) from None
        if not isinstance(out, Tensor):
            raise ValueError(f"the model returned a {type(out).__name__}: must return one tensor")
        _check_labels(data, out.shape[1] if out.ndim == 2 else 0, loss.name)
        try:
            value = loss.batch(out, y.to(device))
            if torch.as_tensor(value).numel() != 1:
                raise ValueError(
                    f"it returned shape {tuple(torch.as_tensor(value).shape)}, not a scalar"
                )
            if acc is not None:
                acc(out, y.to(device))
        except Exception as e:
            raise ValueError(
                f"--loss {loss.name!r} does not fit the outputs {tuple(out.shape[1:])} "
                f"({out.dtype}) and targets {tuple(y.shape[1:])} ({y.dtype}) per sample: "
                f"{_one(e)[:300]}"
            ) from None


def _trajectory(model: nn.Module, checkpoints: Sequence[str]) -> np.ndarray:
    """(checkpoints [+ 1], P): each file's parameters in named_parameters order, then the
    final weights unless the last checkpoint holds them already."""
    files = sorted(checkpoints, key=natural_key)
    if not files:
        raise ValueError("--checkpoints matched no file")
    keys = [k for k, _ in model.named_parameters()]
    rows = []
    for f in files:
        st = state_of(model, f, "--checkpoints")
        rows.append(torch.cat([st[k].reshape(-1).double() for k in keys]).numpy())
    final_row = D.flatten(D.weights_of(model)).double().numpy()
    if not np.array_equal(rows[-1], final_row):  # the final point once, even if also listed
        rows.append(final_row)
    if len(rows) < 2:
        raise ValueError(
            "--checkpoints gave no point besides --weights: a path needs at least one more"
        )
    return np.stack(rows)


def open_model(
    factory: str,
    weights: str | os.PathLike,
    data: str | Data,
    kwargs: str | dict | None = None,
    loss: str | None = None,
    device: str = "auto",
    batch_size: int = DEFAULT_BATCH,
    max_samples: int | None = None,
    sample_seed: int = 0,
    accuracy: bool | None = None,
    checkpoints: Sequence[str] = (),
    loss_params: dict | None = None,
) -> OwnModel:
    """Build ``factory(**kwargs)``, load ``weights``, read ``data``, pick the loss; check it all.

    Every spec is checked (and the first samples run through model and loss) before this
    returns, so a bad one fails in a second with one ValueError. ``accuracy``: None = on for
    integer targets. ``checkpoints``: weight files of the training path (any order; sorted
    naturally) for PCA directions (at least 2 besides ``weights``) or the line from the first.
    """
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or not 1 <= batch_size <= MAX_BATCH
    ):
        raise ValueError(f"--batch-size {batch_size!r} must be an integer in [1, {MAX_BATCH}]")
    dev = resolve_device(device)
    wfile = _existing_file(weights, "--weights")
    ds = data if isinstance(data, Data) else load_data(data)
    ds = ds.subset(max_samples, sample_seed)
    model = build_model(factory, kwargs)
    load_weights(model, wfile)
    model.eval()
    _, y0 = ds.batch(0, 1)
    if accuracy is None:
        accuracy = not torch.is_floating_point(y0)
    fn = make_loss(loss, y0, loss_params)
    acc = accuracy_fn_for(accuracy)
    _probe(model, ds, fn, acc, dev)
    traj = _trajectory(model, checkpoints) if checkpoints else None
    spec = {
        "factory": factory,
        "kwargs": parse_kwargs(kwargs),
        "weights": str(weights),
        "weights_sha256": file_sha256(wfile),
        "data": ds.source,
        "data_sha256": file_sha256(ds.source) if Path(ds.source).is_file() else None,
        "n_samples": len(ds),
        "max_samples": max_samples,
        "sample_seed": sample_seed,
        "loss": fn.name,
        "loss_params": loss_params or {},
        "checkpoints": [
            {"file": f, "sha256": file_sha256(f)} for f in sorted(checkpoints, key=natural_key)
        ],
    }
    return OwnModel(model, ds, fn, acc, dev, batch_size, spec, traj)


def accuracy_fn_for(on: bool) -> Callable | None:
    return accuracy if on else None
