"""Shared fixtures of the seed ports: a fresh in-memory database per test, closed afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

import s3db_nb
from s3db_nb import Database


@pytest.fixture
def db() -> Iterator[Database]:
    """``new S3db({connectionString}); await db.connect()`` on a store no other test sees."""
    database = s3db_nb.connect(f"memory://seeds-{uuid.uuid4().hex}")
    yield database
    database.disconnect()
