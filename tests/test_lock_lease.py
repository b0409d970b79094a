"""PluginStorage locks are leases: a holder learns when its lease lapsed and another worker took over.

The clock is a ``FakeClock`` (no sleeps); the lock object's ETag is the only thing renew and
release trust, so each scenario runs on every backend (memory, file, moto, SeaweedFS).
"""

from __future__ import annotations

import pytest

from conftest import FakeClock
from s3db_nb import ConflictError, PluginStorage
from s3db_nb.errors import LockLostError

TTL = 10  # seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def storage(backend, clock) -> PluginStorage:
    return PluginStorage(backend.make(), "lease", clock=clock)


@pytest.fixture
def other(backend, clock) -> PluginStorage:
    """A second worker on the same store (its own client, same clock)."""
    return PluginStorage(backend.make(), "lease", clock=clock)


def test_a_renewed_lease_keeps_other_workers_out(storage, other, clock):
    a = storage.acquire_lock("job", ttl=TTL, worker_id="A")
    clock.advance(TTL - 1)
    assert a.renew() is a and a.valid
    clock.advance(TTL - 1)  # past the first lease, inside the renewed one
    assert other.acquire_lock("job", ttl=TTL, worker_id="B") is None
    assert a.valid and storage.release_lock(a) is True


def test_after_the_ttl_b_takes_over_and_a_renew_raises_while_b_still_holds(storage, other, clock):
    a = storage.acquire_lock("job", ttl=TTL, worker_id="A")
    clock.advance(TTL + 1)
    assert not a.valid  # the handle knows its lease lapsed without asking the store
    b = other.acquire_lock("job", ttl=TTL, worker_id="B")
    assert b is not None and b.valid
    with pytest.raises(LockLostError, match=r"'job'.*another worker took the lock over") as info:
        a.renew()
    assert isinstance(info.value, ConflictError) and a.lost and not a.valid
    assert other.is_locked("job") and b.valid
    assert storage.release_lock(a) is False  # A cannot remove B's lock either
    assert b.renew() is b and other.release_lock(b) is True


def test_the_context_manager_raises_at_exit_when_the_lock_was_taken_over(storage, other, clock):
    with pytest.raises(LockLostError, match="could not be released"), storage.lock("job", ttl=TTL, worker_id="A"):
        clock.advance(TTL + 1)
        b = other.acquire_lock("job", ttl=TTL, worker_id="B")
        assert b is not None
    assert other.is_locked("job") and b.valid and not b.lost


def test_an_error_inside_the_block_wins_and_carries_the_lost_lock_note(storage, other, clock):
    with pytest.raises(RuntimeError, match="work failed") as info, storage.lock("job", ttl=TTL, worker_id="A"):
        clock.advance(TTL + 1)
        assert other.acquire_lock("job", ttl=TTL, worker_id="B") is not None
        raise RuntimeError("work failed")
    assert any("another worker took the lock over" in note for note in info.value.__notes__)


def test_a_lapsed_lease_nobody_took_over_can_still_be_renewed(storage, other, clock):
    a = storage.acquire_lock("job", ttl=TTL, worker_id="A")
    clock.advance(TTL + 1)
    assert not a.valid
    a.renew(ttl=2 * TTL)
    assert a.valid and a.ttl == 2 * TTL and other.acquire_lock("job", worker_id="B") is None


@pytest.mark.parametrize("how", ["handle", "name-and-token"])
def test_a_released_handle_is_invalid_and_cannot_be_renewed(storage, how):
    a = storage.acquire_lock("job", ttl=TTL)
    assert storage.release_lock(a if how == "handle" else "job", None if how == "handle" else a.token) is True
    if how == "handle":
        assert a.released and not a.valid
    with pytest.raises(LockLostError):
        a.renew()
    assert not a.valid


def test_a_normal_block_releases_without_error(storage):
    with storage.lock("job", ttl=TTL) as held:
        assert held.valid
    assert held.released and not held.lost and not storage.is_locked("job")
