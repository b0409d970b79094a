"""Record ids (the nanoid URL alphabet s3db.js uses) and plugin attribute keys (§5.3)."""

from __future__ import annotations

import hashlib
import os

from ..errors import InvalidArgumentError
from .jstext import utf8_bytes
from .numbers import b62_encode

ID_ALPHABET = "useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict"
# nanoid's own method: the alphabet has 64 symbols, so the low 6 bits of a random byte pick one
# uniformly (256 = 4 x 64); a byte translation does the whole id in one C call
_BYTE_TO_SYMBOL = bytes(ord(ID_ALPHABET[byte & 63]) for byte in range(256))


def new_id(size: int = 22) -> str:
    """Random id from the nanoid URL alphabet (s3db.js default: 22 chars, ~131 bits), from the OS CSPRNG."""
    if size < 1:
        raise InvalidArgumentError("id size must be at least 1")
    return os.urandom(size).translate(_BYTE_TO_SYMBOL).decode("ascii")


def plugin_attribute_key(plugin_name: str, attr: str) -> str:
    """Short key of a plugin-owned attribute (§5.3): ``p`` + 3 chars from SHA-256.

    ``GraphPlugin``/``snapshot`` → ``pasb``. Collision suffixes are the caller's job.
    """
    digest = hashlib.sha256(utf8_bytes(f"{plugin_name}:{attr}")).digest()
    num = int.from_bytes(digest[:4], "big")
    return "p" + b62_encode(num).rjust(3, "0")[:3].lower()
