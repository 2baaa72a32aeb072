"""Validation helpers shared by every module that checks user-facing values.

Each raises one ``ValueError`` whose message names the field, the value and what is
allowed, e.g. ``"lr=-1.0 is out of range: must be in (0, 1000000.0]"``: pages show it as
it is, the command line prints it on one line. A command-line flag is named as typed
(``"--res 0 is out of range: must be in [2, 201]"``): a name starting with "-" is a flag.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from torch import Tensor


def shown(name: str, value) -> str:
    """``name=value`` for a field, ``--flag value`` for a command-line flag."""
    return f"{name} {value}" if name.startswith("-") else f"{name}={value!r}"


def range_error(name: str, value, allowed: str) -> ValueError:
    """``name=value is out of range: must be <allowed>``."""
    return ValueError(f"{shown(name, value)} is out of range: must be {allowed}")


def _interval(lo, hi, open_lo: bool) -> str:
    return f"{'(' if open_lo else '['}{lo}, {hi}]"


def int_in(name: str, value, lo: int, hi: int) -> int:
    """``value`` if it is an integer (not a bool) in [lo, hi]; else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{shown(name, value)} must be an integer in [{lo}, {hi}]")
    if not lo <= value <= hi:
        raise range_error(name, value, f"in [{lo}, {hi}]")
    return int(value)


def number_in(name: str, value, lo: float, hi: float, open_lo: bool = False) -> float:
    """``value`` if it is a finite real number in [lo, hi] ((lo, hi] with open_lo)."""
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    if not ok or not math.isfinite(value):
        raise ValueError(
            f"{shown(name, value)} must be a finite number in {_interval(lo, hi, open_lo)}"
        )
    if value > hi or value < lo or (open_lo and value == lo):
        raise range_error(name, value, f"in {_interval(lo, hi, open_lo)}")
    return float(value)


def choice_error(name: str, value, choices: Iterable) -> ValueError:
    return ValueError(f"{shown(name, value)} is not allowed: must be one of {list(choices)}")


def choice(name: str, value, choices: Iterable):
    """``value`` if it is one of ``choices``; else ValueError listing them."""
    choices = tuple(choices)
    if value not in choices:
        raise choice_error(name, value, choices)
    return value


def interval(axis: str, lo: float, hi: float, bound: float) -> None:
    """``{axis}min=lo``, ``{axis}max=hi``: finite, |.| <= bound, hi > lo."""
    for name, v in ((f"{axis}min", lo), (f"{axis}max", hi)):
        ok = isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
        if not ok or not math.isfinite(v) or abs(v) > bound:
            raise range_error(name, v, f"finite with |{name}| <= {bound:g}")
    if not hi > lo:
        raise ValueError(f"{axis}max={hi!r} must be greater than {axis}min={lo!r}")


def data_pair(data, name: str = "data") -> tuple:
    """``data`` as a pair ``(X, y)`` of non-empty tensors of equal length; else ValueError."""
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise ValueError(f"{name}={type(data).__name__} is not allowed: must be a pair (X, y)")
    X, y = data
    if not (isinstance(X, Tensor) and isinstance(y, Tensor)) or len(X) != len(y) or not len(X):
        raise ValueError(
            f"{name}=(X, y) must be non-empty tensors of equal length, got "
            f"{getattr(X, 'shape', type(X))} and {getattr(y, 'shape', type(y))}"
        )
    return X, y


def flag_range(flag: str, lo: float, hi: float, bound: float) -> tuple[float, float]:
    """A command-line range ``--xrange MIN MAX``: two finite numbers, MIN < MAX, |.| <= bound."""
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{flag} {lo:g} {hi:g}: must be two finite numbers MIN < MAX")
    if max(abs(lo), abs(hi)) > bound:
        raise ValueError(f"{flag} {lo:g} {hi:g}: |MIN| and |MAX| must be at most {bound:g}")
    return float(lo), float(hi)


def positive_text(text: str, kind: type = float):
    """``kind(text)`` if it is a finite number > 0 (a command-line value); else ValueError."""
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a {kind.__name__}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{text!r} must be a positive finite number")
    return value
