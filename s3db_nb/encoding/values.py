"""Python-native views of incoming values, shared by every encoder.

Records arrive from dicts, pandas and Arrow: numbers may be numpy scalars or Decimals, lists
may be numpy arrays, and NaN/NaT mean "no value". These helpers give one view of each.
"""

from __future__ import annotations

import datetime as _dt
import decimal as _decimal
import math
from typing import Any


def as_number(value: Any) -> int | float | None:
    """Python-native numeric view of ``value`` (int, float, Decimal, numpy scalar), else None."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, _decimal.Decimal):
        return float(value)
    kind = scalar_kind(value)
    if kind in ("i", "u", "b"):
        return int(value.item())
    if kind == "f":
        return float(value.item())
    return None


def scalar_kind(value: Any) -> str | None:
    """numpy dtype kind of a numpy scalar / 0-d array (``"i"``, ``"f"``, ``"b"``, ``"M"``…), else None."""
    if getattr(value, "shape", None) != () or not hasattr(value, "item"):
        return None
    return getattr(getattr(value, "dtype", None), "kind", None)


def as_list(value: Any) -> list[Any] | None:
    """List view of a list, tuple or numpy array, else None (strings and bytes are not lists)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        items = value.tolist()
        return items if isinstance(items, list) else None
    return None


def is_missing(value: Any) -> bool:
    """None, NaN and NaT are "no value" for encoders (JS null/undefined)."""
    if value is None:
        return True
    if isinstance(value, (float, _dt.datetime)) or scalar_kind(value) in ("f", "M"):
        # NaN and NaT are the only values unequal to themselves.
        return bool(value != value)
    return False


def finite_number(value: Any) -> float | None:
    """The value as a finite float, else None (non-numbers, NaN and ±Infinity)."""
    num = as_number(value)
    if num is None:
        return None
    f = float(num)
    return f if math.isfinite(f) else None
