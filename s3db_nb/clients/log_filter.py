"""Keep credentials out of botocore, boto3, s3transfer and urllib3 log records.

With DEBUG logging on, botocore logs every request it signs: the ``Authorization`` header
(which names the access key id), ``X-Amz-Security-Token``, presigned ``X-Amz-Credential``
query strings and the string it signs. ``S3Client`` calls ``protect()`` with its credentials;
a ``logging.Filter`` on those libraries' loggers then rewrites each record's message with
the known credentials and those header values replaced by ``***`` before any handler sees it.

A filter on a logger only sees records logged on that very logger (not its children), so it
is added to every existing logger under the four names; ``protect()`` runs at each client's
creation, when botocore has imported the modules that log requests.
"""

from __future__ import annotations

import logging
import re
import threading

LIBRARIES = ("botocore", "boto3", "s3transfer", "urllib3")
MASK = "***"
#: shortest credential we replace by value (shorter strings would mask ordinary words)
MIN_SECRET_LENGTH = 4

# header values and query parameters that carry or reveal credentials, in the forms botocore
# logs them: dict reprs ('Authorization': b'...'), raw headers (Authorization: ...) and URLs
_PATTERNS = (
    re.compile(
        r"(?P<name>['\"]?(?:Authorization|X-Amz-Security-Token)['\"]?\s*[:=]\s*b?['\"]?)(?P<value>[^'\"\r\n,}]+(?:,\s*(?:SignedHeaders|Signature)=[^'\"\r\n,}]+)*)",
        re.IGNORECASE,
    ),
    re.compile(
        r"(?P<name>(?:X-Amz-Credential|X-Amz-Security-Token|X-Amz-Signature|AWSAccessKeyId|Signature)=)(?P<value>[^&\s'\"]+)", re.IGNORECASE
    ),
    re.compile(r"(?P<name>Credential=)(?P<value>[^,\s'\"]+)"),
    re.compile(
        r"(?P<name>['\"](?:aws_)?(?:access_key(?:_id)?|secret_(?:access_)?key|session_token|token)['\"]\s*:\s*['\"])(?P<value>[^'\"]+)",
        re.IGNORECASE,
    ),
)


class CredentialFilter(logging.Filter):
    """Masks registered credentials and credential-bearing headers in a record's message."""

    def __init__(self) -> None:
        super().__init__("s3db_nb-credentials")
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()

    def add(self, *values: str | None) -> None:
        """Remember credentials to mask from now on (their percent-encoded forms too)."""
        from urllib.parse import quote

        fresh = {v for v in values if v and len(v) >= MIN_SECRET_LENGTH}
        fresh |= {quote(v, safe="") for v in fresh}
        with self._lock:
            self._secrets = self._secrets | fresh

    def scrub(self, text: str) -> str:
        """``text`` with every known credential and signed header value replaced by ``***``."""
        for secret in sorted(self._secrets, key=len, reverse=True):  # longest first: one may contain another
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group("name") + MASK, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a record whose args do not fit its format: show the format alone
            message = str(record.msg)
        record.msg = self.scrub(message)
        record.args = None  # the arguments were rendered (and scrubbed) into the message
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        return True


_FILTER = CredentialFilter()


def credential_filter() -> CredentialFilter:
    """The one filter shared by every client (credentials of every client are masked everywhere)."""
    return _FILTER


def protect(access_key_id: str | None = None, secret_access_key: str | None = None, session_token: str | None = None) -> None:
    """Mask these credentials (and signed headers) in every record of the AWS/HTTP libraries'
    loggers, attaching the filter to any such logger that does not have it yet."""
    _FILTER.add(access_key_id, secret_access_key, session_token)
    manager = logging.Logger.manager
    with _FILTER._lock:
        names = [name for name in list(manager.loggerDict) if name.split(".", 1)[0] in LIBRARIES]
        for name in {*names, *LIBRARIES}:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
