"""Pickle-free bytes for results (landscapes, comparisons): one .npz per object.

The object tree (dataclasses, lists, tuples, dicts with string keys, numbers, strings, None,
NumPy arrays, torch tensors, ``Run``) is written as one JSON skeleton plus one array entry per
array. Reading never unpickles (``allow_pickle=False``) and rebuilds only the dataclasses
registered under a stable type tag (``register``) through their constructors, so a validated type (``Config``, ``SurfaceRequest``,
``Settings``) is validated again on the way in: a file cannot name a class to build.
"""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import torch

from landscape.data.config import Config
from landscape.engine.surface import Surface
from landscape.storage import formats
from landscape.training.loop import Run

FORMAT = "landscape-object/1"

# Stable type tag -> dataclass a stored object may contain. Files name types by these tags,
# never by module path, so moving a module never makes stored entries undecodable. The types
# of this layer and below are registered here; pipeline result types register themselves
# (``register``) when their module is imported.
_TYPES: dict[str, type] = {}
_TAGS: dict[type, str] = {}

# The tags version 0.1 wrote ("module:Class" of the old flat layout), read as their stable tag.
LEGACY_TAGS = {
    "landscape.training:Config": "config",
    "landscape.config:Config": "config",
    "landscape.surface:Surface": "surface",
    "landscape.pictures:SurfaceRequest": "surface-request",
    "landscape.slices:SliceRequest": "slice-request",
    "landscape.slices:SliceResult": "slice-result",
    "landscape.comparisons:Settings": "comparison-settings",
    "landscape.comparisons:Panel": "comparison-panel",
    "landscape.comparisons:PanelResult": "comparison-panel-result",
    "landscape.comparisons:Comparison": "comparison",
}


def register(tag: str, kind: type) -> type:
    """Let ``kind`` (a dataclass) be stored under the stable ``tag``; returns ``kind``."""
    if not dataclasses.is_dataclass(kind):
        raise TypeError(f"{kind!r} is not a dataclass")
    if _TYPES.get(tag, kind) is not kind:
        raise ValueError(f"type tag {tag!r} is already registered for {_TYPES[tag]!r}")
    _TYPES[tag] = kind
    _TAGS[kind] = tag
    return kind


register("config", Config)
register("surface", Surface)


def to_bytes(obj) -> bytes:
    """``obj`` as .npz bytes (see the module docstring for what it may contain)."""
    arrays: dict[str, np.ndarray] = {}

    def enc(x):
        if x is None or isinstance(x, bool | str):
            return x
        if isinstance(x, int | float):
            return {"f": repr(float(x))} if isinstance(x, float) else x
        if isinstance(x, np.generic):
            return enc(x.item())
        if isinstance(x, Run):
            return {"run": _put(arrays, np.frombuffer(formats.run_to_bytes(x), np.uint8))}
        if isinstance(x, torch.Tensor):
            return {"t": _put(arrays, x.detach().cpu().numpy())}
        if isinstance(x, np.ndarray):
            if x.dtype == object:
                raise ValueError("object arrays are never stored")
            return {"a": _put(arrays, x)}
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            tag = _TAGS.get(type(x))
            if tag is None:
                raise ValueError(f"{type(x).__qualname__} is not a storable type")
            fields = {f.name: enc(getattr(x, f.name)) for f in dataclasses.fields(x) if f.init}
            return {"dc": tag, "v": fields}
        if isinstance(x, tuple):
            return {"tu": [enc(v) for v in x]}
        if isinstance(x, list):
            return [enc(v) for v in x]
        if isinstance(x, dict):
            if not all(isinstance(k, str) for k in x):
                raise ValueError("only dicts with string keys are stored")
            return {"d": {k: enc(v) for k, v in x.items()}}
        raise ValueError(f"a {type(x).__name__} is not storable")

    skeleton = {"format": FORMAT, "root": enc(obj)}
    arrays["skeleton"] = np.frombuffer(json.dumps(skeleton).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _put(arrays: dict, a: np.ndarray) -> str:
    key = f"x{len(arrays)}"
    arrays[key] = a
    return key


def from_bytes(b: bytes):
    """Inverse of ``to_bytes``; ValueError if ``b`` is not such a file (never unpickles)."""
    try:
        with np.load(io.BytesIO(b), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        skeleton = json.loads(arrays.pop("skeleton").tobytes().decode())
        if not isinstance(skeleton, dict) or skeleton.get("format") != FORMAT:
            raise ValueError("not a stored landscape object")
        return _dec(skeleton["root"], arrays)
    except (OSError, KeyError, TypeError, AttributeError, ImportError, RecursionError) as e:
        raise ValueError(f"damaged stored object: {e!r}") from None
    except (ValueError, UnicodeDecodeError, EOFError) as e:
        raise ValueError(f"damaged stored object: {e}") from None


def _dec(x, arrays: dict):
    if x is None or isinstance(x, bool | int | str):
        return x
    if isinstance(x, list):
        return [_dec(v, arrays) for v in x]
    if not isinstance(x, dict) or len(x) not in (1, 2):
        raise ValueError(f"unexpected node {type(x).__name__}")
    if "f" in x:
        return float(x["f"])
    if "a" in x:
        return arrays[x["a"]].copy()
    if "t" in x:
        return torch.from_numpy(arrays[x["t"]].copy())
    if "run" in x:
        return formats.run_from_bytes(arrays[x["run"]].tobytes())
    if "tu" in x:
        return tuple(_dec(v, arrays) for v in x["tu"])
    if "d" in x:
        return {str(k): _dec(v, arrays) for k, v in x["d"].items()}
    if "dc" in x:
        tag = x["dc"]
        kind = _TYPES.get(LEGACY_TAGS.get(tag, tag)) if isinstance(tag, str) else None
        if kind is None:
            raise ValueError(f"{tag!r} is not a storable type")
        return kind(**{str(k): _dec(v, arrays) for k, v in x["v"].items()})
    raise ValueError(f"unexpected node {sorted(x)}")
