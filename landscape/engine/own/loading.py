"""A user's model spec, checked before any long work: ``MODULE:FUNCTION`` imports (the
current folder on the import path, as with ``python -m``) called with JSON keyword arguments,
weight files (``.safetensors`` preferred, or a torch state dict read with
``torch.load(weights_only=True)`` only, so a file that would unpickle arbitrary objects is
refused before any of its code runs; missing, unexpected and wrongly shaped keys are each
named with both shapes), the device, and file hashes. Every bad spec is one ``ValueError``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
SPEC_RE = re.compile(r"^([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*):([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)$")


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
