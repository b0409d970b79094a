"""The snapshot manifest: the one small JSON document that says which files make a snapshot.

Published last, atomically (a rename locally, a conditional PUT in the bucket), so a reader sees
the old snapshot or the new one. It carries a SHA-256 of its own body and the size of every
file it names: a torn or hand-edited manifest, or a missing or truncated file, is detected
(``DamagedSnapshotError``) and the snapshot is rebuilt, never read. ``fingerprint`` ties it to
the resource definition and the format version: any change rebuilds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import S3DBError
from ..version import __version__

if TYPE_CHECKING:
    import pyarrow as pa

    from ..resource import Resource

#: bump when the files' layout or the stored form changes: older snapshots are rebuilt
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"


class DamagedSnapshotError(S3DBError):
    """A snapshot's manifest or files are not what a completed refresh writes (a crash, an edit)."""


@dataclass(frozen=True)
class FileEntry:
    """One Parquet file of a snapshot: its name in the snapshot folder, rows and bytes."""

    name: str
    rows: int
    bytes: int


@dataclass
class Manifest:
    """Which files hold the snapshot (base first, then deltas), the id index, and refresh figures."""

    fingerprint: str
    generation: int
    files: list[FileEntry]
    index: FileEntry
    rows: int
    refreshed_at: float  # epoch seconds of the refresh that wrote it
    refresh_s: float  # how long that refresh took
    source: str = ""  # where the records are (credentials masked)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        body = asdict(self)
        body["format"] = FORMAT_VERSION
        body["generator"] = f"s3db_nb {__version__}"
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        checksum = hashlib.sha256(text.encode()).hexdigest()
        return json.dumps({"checksum": checksum, "manifest": body}, sort_keys=True, indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse and check a manifest; ``DamagedSnapshotError`` when it is not one we wrote whole."""
        try:
            outer = json.loads(data)
            body = outer["manifest"]
            text = json.dumps(body, sort_keys=True, separators=(",", ":"))
            if hashlib.sha256(text.encode()).hexdigest() != outer["checksum"]:
                raise DamagedSnapshotError("snapshot manifest checksum mismatch")
            if body.get("format") != FORMAT_VERSION:
                raise DamagedSnapshotError(f"snapshot format {body.get('format')!r}, this version writes {FORMAT_VERSION}")
            return cls(
                fingerprint=str(body["fingerprint"]),
                generation=int(body["generation"]),
                files=[FileEntry(**f) for f in body["files"]],
                index=FileEntry(**body["index"]),
                rows=int(body["rows"]),
                refreshed_at=float(body["refreshed_at"]),
                refresh_s=float(body["refresh_s"]),
                source=str(body.get("source", "")),
                extra=dict(body.get("extra") or {}),
            )
        except DamagedSnapshotError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise DamagedSnapshotError(f"unreadable snapshot manifest: {type(exc).__name__}") from exc

    @property
    def names(self) -> set[str]:
        """Every file the manifest refers to."""
        return {f.name for f in self.files} | {self.index.name}


def fingerprint(resource: Resource, stored_schema: pa.Schema) -> str:
    """What the stored rows depend on: the resource definition, the keys of removed plugin
    attributes (their values are dropped when read) and the stored Arrow schema."""
    parts = {
        "format": FORMAT_VERSION,
        "name": resource.name,
        "definition": resource.definition(),
        "attributes": resource.schema.user_attributes(),
        "map": resource.schema.map,
        "plugin_map": resource.schema.plugin_map,
        "burned": sorted(resource.engine.burned_keys()),
        "schema": str(stored_schema),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]
