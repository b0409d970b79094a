"""Whole columns of stored texts decoded at once, for the common shapes of two types.

A bulk read decodes one column of metadata texts at a time (``ColumnDecoder``). Most texts
repeat and decode once each, but two common columns hold a different text in every row: the
base-62 epoch milliseconds of a ``datetime`` and the ``<b62 int>.<fraction>`` text of a
``number``. Decoding those a value at a time in Python was a sixth of a 20 000-record read; here
numpy and Arrow's compute kernels do it for the whole column. Each function returns None when a
text has another shape, and the caller then takes the value-at-a-time path, which knows every
rule: these fast paths only accept texts whose value they compute exactly as it would.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..encoding.numbers import ALPHABET_62

#: base-62 digit of each byte, -1 for a byte outside the alphabet
_B62_DIGITS = np.full(256, -1, np.int64)
_B62_DIGITS[np.frombuffer(ALPHABET_62.encode("ascii"), np.uint8)] = np.arange(62)
#: 62**10 < 2**63 <= 62**11: longer texts could overflow int64
_B62_MAX_WIDTH = 10
#: ``encode_decimal`` text of a number in (-10, 10): its base-62 integer part is one decimal
#: digit, so the text is the decimal literal of the value (JS's ``decodeDecimal`` reads it so)
_SMALL_DECIMAL = r"^-?[0-9](\.[0-9]+)?$"


def b62_column(texts: Sequence[str]) -> np.ndarray | None:
    """The integers of base-62 texts (an optional ``-`` and 1-10 digits) as int64; None when
    any has another shape."""
    if not texts:
        return np.empty(0, np.int64)
    negative = [text[:1] == "-" for text in texts]
    if any(negative):
        values = b62_column([text[1:] if sign else text for text, sign in zip(texts, negative)])
        if values is not None:
            values[np.array(negative)] *= -1
        return values
    lengths = np.fromiter(map(len, texts), np.int64, len(texts))
    width = int(lengths.max())
    if width > _B62_MAX_WIDTH or int(lengths.min()) == 0:
        return None
    try:
        packed = np.array(texts, dtype=f"S{width}")  # short texts padded with NUL bytes
    except UnicodeEncodeError:
        return None
    codes = packed.view(np.uint8).reshape(len(texts), width)
    digits = _B62_DIGITS[codes]
    inside = np.arange(width) < lengths[:, None]  # the text's own bytes, not the padding
    if (digits[inside] < 0).any() or (codes[~inside] != 0).any():
        return None  # a byte outside the alphabet (a sign, an ISO date, a NUL inside the text)
    values = np.zeros(len(texts), np.int64)
    for column in range(width):
        step = inside[:, column]
        values = np.where(step, values * 62 + digits[:, column], values)
    return values


def small_decimal_column(texts: Sequence[str | None]) -> pa.Array | None:
    """float64 of ``number`` texts (None: no value) when every text is a number in (-10, 10)
    as ``encode_decimal`` writes it; None otherwise. Arrow's cast reads decimal text correctly
    rounded, as Python's ``float`` and JS's ``Number`` do."""
    array = pa.array(texts, pa.string())
    if array.null_count == len(array):
        return None
    if not pc.all(pc.match_substring_regex(array, _SMALL_DECIMAL)).as_py():  # nulls skipped
        return None
    return pc.cast(array, pa.float64())
