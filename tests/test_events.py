"""EventEmitter: a failing listener is reported as a ``ListenerWarning`` with its traceback, and
the emit goes on with the other listeners (the write that emitted the event is already stored)."""

from __future__ import annotations

import warnings

import pytest

import s3db_nb
from s3db_nb.errors import ListenerWarning, S3DBWarning
from s3db_nb.events import EventEmitter


def failing_listener(record):
    raise ValueError(f"cannot index {record['id']}")


def test_a_failing_listener_is_warned_about_with_its_traceback():
    emitter = EventEmitter()
    emitter.on("inserted", failing_listener)
    with pytest.warns(ListenerWarning) as caught:
        emitter.emit("inserted", {"id": "ana"})
    [report] = caught
    text = str(report.message)
    assert text.startswith("listener test_events.failing_listener for event 'inserted' failed:\nTraceback (most recent call last):")
    assert "raise ValueError(f\"cannot index {record['id']}\")" in text and text.endswith("ValueError: cannot index ana")
    assert (report.message.event, report.message.listener) == ("inserted", "test_events.failing_listener")
    assert isinstance(report.message.error, ValueError)


def test_listener_warnings_can_be_filtered_as_s3db_warnings():
    emitter = EventEmitter()
    emitter.on("inserted", failing_listener)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=S3DBWarning)
        emitter.emit("inserted", {"id": "ana"})
    assert caught == []


def test_the_listeners_after_a_failing_one_still_run():
    emitter = EventEmitter()
    calls = []
    emitter.on("inserted", lambda record: calls.append(("first", record["id"])))
    emitter.on("inserted", failing_listener)
    emitter.on("inserted", lambda record: calls.append(("third", record["id"])))
    with pytest.warns(ListenerWarning, match="cannot index ana"):
        assert emitter.emit("inserted", {"id": "ana"}) == 3
    assert calls == [("first", "ana"), ("third", "ana")]


def test_with_warnings_as_errors_every_listener_has_run_before_the_error():
    emitter = EventEmitter()
    calls = []
    emitter.on("inserted", failing_listener)
    emitter.on("inserted", lambda record: calls.append(record["id"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ListenerWarning)
        with pytest.raises(ListenerWarning, match="cannot index ana"):
            emitter.emit("inserted", {"id": "ana"})
    assert calls == ["ana"]


def test_each_failing_listener_gets_its_own_warning():
    emitter = EventEmitter()
    emitter.on("deleted", failing_listener)
    emitter.on("deleted", lambda record: 1 / 0)
    with pytest.warns(ListenerWarning) as caught:
        emitter.emit("deleted", {"id": "bob"})
    assert [type(w.message.error).__name__ for w in caught] == ["ValueError", "ZeroDivisionError"]


def test_a_failing_resource_listener_does_not_undo_the_insert():
    db = s3db_nb.connect("memory://events-listener")
    try:
        users = db.create_resource("users", attributes={"name": "string"})
        users.on("inserted", failing_listener)
        with pytest.warns(ListenerWarning, match="for event 'inserted' failed"):
            users.insert({"id": "ana", "name": "Ana"})
        assert dict(users.get("ana")) == {"id": "ana", "name": "Ana"}
    finally:
        db.disconnect()
