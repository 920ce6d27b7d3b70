"""One retry rule for every HTTP service (CMR, ASF, Earthdata Login, s3credentials).

Connection errors, timeouts, 429 and 5xx answers are retried with exponential backoff,
honouring the server's ``Retry-After`` (capped); anything else is the caller's to judge.
A ``Retry-After`` can lengthen a wait, never shorten it below the backoff: ``Retry-After:
0`` still waits the exponential backoff (a server that says "now" five times in a row
must not get five tries within milliseconds).

Examples
--------
>>> p = RetryPolicy(retries=3, backoff=0.5, retry_after_cap=10)
>>> p.wait(0), p.wait(2), p.wait(0, "120"), p.wait(1, "soon")
(0.5, 2.0, 10.0, 1.0)
>>> p.wait(0, "0"), p.wait(2, "0"), p.wait(1, "3")
(0.5, 2.0, 3.0)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

#: Failures worth another try: the request may succeed when sent again.
TRANSIENT = (requests.ConnectionError, requests.Timeout,
             requests.exceptions.ChunkedEncodingError)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    Attributes
    ----------
    retries
        Tries after the first one.
    backoff
        Wait before the first retry, in seconds; doubles each time.
    retry_after_cap
        Longest wait a server's ``Retry-After`` can ask for, in seconds. The backoff is
        the floor of every wait: a shorter ``Retry-After`` (``0`` included) does not
        shorten it.
    connect_retries
        Tries after the first one when no connection could be made at all (refused, no
        route, DNS, connect timeout); None: ``retries``. A service that cannot be reached
        is said so in seconds, not after the whole backoff.
    """

    retries: int = 4
    backoff: float = 0.2
    retry_after_cap: float = 30.0
    connect_retries: int | None = None

    def wait(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait after failed try ``attempt`` (0-based).

        The exponential backoff ``backoff * 2**attempt``, or the server's ``Retry-After``
        (in seconds, capped at ``retry_after_cap``) when that is longer.
        """
        default: float = self.backoff * 2**attempt  # int ** int is Any to mypy
        if retry_after is None:
            return default
        try:
            asked = min(float(self.retry_after_cap), max(0.0, float(retry_after)))
        except ValueError:
            return default
        return max(default, asked)


def not_connected(exc: BaseException) -> bool:
    """Whether a request failed before any connection was made (nothing was sent).

    Examples
    --------
    >>> not_connected(requests.exceptions.ConnectTimeout())
    True
    >>> not_connected(requests.exceptions.ReadTimeout())
    False
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError):
        return False
    import urllib3.exceptions

    reason = getattr(exc.args[0], "reason", exc.args[0]) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError | ConnectionRefusedError)


def send_with_retries(send: Callable[[], requests.Response], policy: RetryPolicy, *,
                      give_up: Callable[[str, int | None], Exception],
                      sleep: Callable[[float], None] = time.sleep) -> requests.Response:
    """Call ``send`` until it answers anything but 429/5xx, or the tries run out.

    Parameters
    ----------
    send
        Sends the request once.
    policy
        How often and how long to retry.
    give_up
        Builds the exception raised when the tries run out, from a one-line reason
        (``"HTTP 503 after 5 tries"``) and the last HTTP status (None: no answer).
    sleep
        Injected for tests.
    """
    connect_failures = 0
    for attempt in range(policy.retries + 1):
        last = attempt == policy.retries
        try:
            resp = send()
        except TRANSIENT as exc:
            if not_connected(exc):
                connect_failures += 1
                if policy.connect_retries is not None and \
                        connect_failures > policy.connect_retries:
                    last = True
            if last:
                raise give_up(f"{exc.__class__.__name__} after {attempt + 1} tries",
                              None) from None
            sleep(policy.wait(attempt))
            continue
        if resp.status_code == 429 or resp.status_code >= 500:
            if last:
                raise give_up(f"HTTP {resp.status_code} after {attempt + 1} tries",
                              resp.status_code)
            sleep(policy.wait(attempt, resp.headers.get("Retry-After")))
            continue
        return resp
    raise AssertionError("unreachable")
