"""A wrong passphrase never destroys secrets (issue #19, item 1).

Read with the wrong passphrase, a stored secret comes back as an ``UndecryptableSecret`` (the
stored token, unchanged) with an ``UndecryptableSecretWarning``; writing it back (an update of
another field merges it in) is refused with a ``ValidationError`` naming the field, so the
passphrase the data was written with still opens it afterwards.
"""

from __future__ import annotations

import warnings

import pytest

import s3db_nb
from s3db_nb.encoding import UndecryptableSecret, decrypt_secret
from s3db_nb.errors import UndecryptableSecretWarning, ValidationError

ATTRIBUTES = {"name": "string", "token": "secret", "profile": {"pin": "secret|optional"}}


@pytest.fixture
def url(tmp_path) -> str:
    """A file:// database holding one record written with the passphrase "right"."""
    url = f"file://{tmp_path / 'data'}"
    db = s3db_nb.connect(url, passphrase="right")
    db.create_resource("users", attributes=ATTRIBUTES).insert({"id": "u1", "name": "ana", "token": "hunter2", "profile": {"pin": "1234"}})
    db.disconnect()
    return url


def test_a_wrong_passphrase_reads_the_stored_token_marked_and_warns(url):
    users = s3db_nb.connect(url, passphrase="wrong").resource("users")
    with pytest.warns(s3db_nb.UndecryptableSecretWarning, match="passphrase="):
        record = users.get("u1")
    assert isinstance(record["token"], UndecryptableSecret) and isinstance(record["profile"]["pin"], UndecryptableSecret)
    assert decrypt_secret(record["token"], "right") == "hunter2"  # the stored token itself, unchanged
    assert repr(record["token"]) == "<undecryptable secret>"
    assert record["name"] == "ana"  # everything else reads as usual


@pytest.mark.parametrize("changes", [{"name": "bob"}, {"profile": {"pin": "9999"}}])
def test_an_update_that_would_write_an_undecryptable_secret_back_is_refused(url, changes):
    users = s3db_nb.connect(url, passphrase="wrong").resource("users")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndecryptableSecretWarning)
        with pytest.raises(ValidationError, match="token.*passphrase cannot decrypt.*connect\\(url, passphrase="):
            users.update("u1", changes)
    right = s3db_nb.connect(url, passphrase="right").resource("users").get("u1")
    assert (right["name"], right["token"], right["profile"]["pin"]) == ("ana", "hunter2", "1234")


def test_replacing_every_secret_with_a_new_value_is_a_deliberate_write(url):
    users = s3db_nb.connect(url, passphrase="wrong").resource("users")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndecryptableSecretWarning)
        users.update("u1", {"token": "rotated", "profile": {"pin": "0000"}})
        assert users.get("u1")["token"] == "rotated"


def test_the_right_passphrase_warns_about_nothing(url):
    users = s3db_nb.connect(url, passphrase="right").resource("users")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UndecryptableSecretWarning)
        assert users.get("u1")["token"] == "hunter2"
        users.update("u1", {"name": "bob"})
    assert users.get("u1")["token"] == "hunter2"


def test_a_plain_value_that_is_no_token_still_reads_as_stored(tmp_path):
    """A secret some other tool stored unencrypted is not a wrong passphrase: no warning."""
    db = s3db_nb.connect(f"file://{tmp_path / 'data'}")
    users = db.create_resource("users", attributes={"token": "secret"})
    field = users.schema.leaves_by_path()["token"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UndecryptableSecretWarning)
        assert field.codec.decode("plain-text") == "plain-text"
