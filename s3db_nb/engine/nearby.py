"""Where other databases are, next to one that holds nothing: the "did you mean" of a typo.

Connecting to a folder, bucket or prefix without ``s3db.json`` is how a new database starts, and
also what a typo looks like (``file://./dta`` for ``./data``). ``nearby_databases`` looks one
level around the path it was given, its children and then its siblings, for an ``s3db.json``. Cost:
on ``file://`` two folder listings; on S3 one LIST per level plus one HEAD per candidate prefix
(at most ``limit``).
"""

from __future__ import annotations

import dataclasses
import os

from ..clients.base import StorageClient
from ..connection import ConnectionConfig, make_client
from ..errors import S3DBError
from .catalog import CATALOG_KEY


def nearby_databases(config: ConnectionConfig, client: StorageClient, limit: int = 10) -> list[str]:
    """URLs (credentials masked) of the databases beside or below ``config``'s location."""
    if config.scheme == "memory":
        return []
    if config.scheme == "file":
        return _nearby_folders(str(getattr(client, "root", config.path or ".")), limit)
    return _nearby_prefixes(config, limit)


def _nearby_folders(root: str, limit: int) -> list[str]:
    found: list[str] = []
    parent = os.path.dirname(root.rstrip(os.sep)) or os.sep
    for folder in (root, parent):  # below first: a folder of databases names them, a typo its siblings
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            path = entry.path
            if path != root and entry.is_dir(follow_symlinks=False) and os.path.isfile(os.path.join(path, CATALOG_KEY)):
                found.append(f"file://{path}")
                if len(found) >= limit:
                    return found
    return found


def _nearby_prefixes(config: ConnectionConfig, limit: int) -> list[str]:
    prefix = config.prefix.strip("/")
    parent = prefix.rpartition("/")[0]
    root = make_client(dataclasses.replace(config, prefix="", read_only=True))
    found: list[str] = []
    try:
        for level in dict.fromkeys((f"{parent}/" if parent else "", f"{prefix}/" if prefix else "")):
            page = root.list_page(level, delimiter="/", limit=200)
            for candidate in page.common_prefixes:
                if candidate.strip("/") == prefix or not root.exists(candidate + CATALOG_KEY):
                    continue
                found.append(dataclasses.replace(config, prefix=candidate.strip("/")).masked_url)
                if len(found) >= limit:
                    return found
    except S3DBError:  # a bucket we cannot list: no suggestion rather than an error
        return found
    finally:
        root.close()
    return found


__all__ = ["nearby_databases"]
