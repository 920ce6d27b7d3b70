"""One retry rule for every HTTP service (CMR, ASF, Earthdata Login, s3credentials).

Connection errors, timeouts, 429 and 5xx answers are retried with exponential backoff,
honouring the server's ``Retry-After``; anything else is the caller's to judge. A
``Retry-After`` longer than the policy's cap is not waited at all: the service is down for
now, and the caller hears so at once instead of sleeping for hours.
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

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

from .errors import BadInput


class TooSlow(requests.exceptions.ReadTimeout):
    """A body arriving below the minimum rate (:class:`Deadlines`): a timeout, retried."""


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

    def asks_too_much(self, retry_after: str | None) -> float | None:
        """The seconds a ``Retry-After`` asks for when over ``retry_after_cap``, else None.

        Examples
        --------
        >>> RetryPolicy(retry_after_cap=30).asks_too_much("100000")
        100000.0
        >>> RetryPolicy(retry_after_cap=30).asks_too_much("30") is None
        True
        """
        try:
            asked = float(retry_after) if retry_after is not None else None
        except ValueError:
            return None
        return asked if asked is not None and asked > self.retry_after_cap else None

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


@dataclass(frozen=True)
class Deadlines:
    """How long one try of a request may take.

    Attributes
    ----------
    connect
        Seconds to open the connection (TCP and TLS).
    read
        Seconds to the first byte of the answer, and the longest silence within it.
    min_rate
        Bytes per second a body must average once its first byte is in: a try that has
        received ``n`` bytes ends when ``read + n / min_rate`` seconds have passed since
        the request was sent (a server sending one byte a second is cut after about
        ``read`` seconds). A silence ends a try at ``read`` at the latest, so a try lasts at
        most ``read + length / min_rate + read`` seconds for a body of ``length`` bytes.
    """

    connect: float
    read: float
    min_rate: float = 4096.0

    @property
    def timeout(self) -> tuple[float, float]:
        """``(connect, read)`` as requests takes it."""
        return (self.connect, self.read)

    def too_slow(self, elapsed: float, received: int) -> bool:
        """Whether a try ``elapsed`` seconds old with ``received`` bytes is under the rate.

        Examples
        --------
        >>> d = Deadlines(3, 10, 1000)
        >>> d.too_slow(9, 0), d.too_slow(11, 0), d.too_slow(11, 2000), d.too_slow(13, 2000)
        (False, True, False, True)
        """
        return elapsed > self.read + received / self.min_rate

    @classmethod
    def from_env(cls, name: str, default: Deadlines,
                 env: dict[str, str] | None = None) -> Deadlines:
        """``$name`` as ``CONNECT,READ[,MIN_RATE]`` (seconds, seconds, bytes/s), else
        ``default``.

        Examples
        --------
        >>> Deadlines.from_env("X", Deadlines(10, 30), {"X": "1,2"})
        Deadlines(connect=1.0, read=2.0, min_rate=4096.0)
        >>> Deadlines.from_env("X", Deadlines(10, 30), {"X": "1"})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        opera_disp.errors.BadInput: $X '1' is not CONNECT,READ[,MIN_RATE] ...
        """
        text = (env if env is not None else os.environ).get(name, "").strip()
        if not text:
            return default
        try:
            parts = [float(v) for v in text.split(",")]
        except ValueError:
            parts = []
        if len(parts) not in (2, 3) or not all(0 < v < float("inf") for v in parts):
            raise BadInput(f"${name} {text!r} is not CONNECT,READ[,MIN_RATE] (seconds, seconds, "
                           "bytes/s, each positive), e.g. 10,30 or 10,30,4096")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else default.min_rate)


#: Data hosts (ASF, its presigned S3 URLs, mirrors, s3credentials, an S3 endpoint): a
#: connection is made in seconds or not at all; S3 and ASF's redirector send a first byte
#: in well under a second, so 30 s of silence is a hung server; 4 KiB/s per connection
#: (a job keeps up to 16 open on one link) catches a trickle, never a slow but healthy
#: link.
DATA_DEADLINES = Deadlines(10.0, 30.0, 4096.0)


def data_deadlines() -> Deadlines:
    """The data hosts' deadlines: ``$OPERA_DISP_HTTP_TIMEOUT`` or :data:`DATA_DEADLINES`."""
    return Deadlines.from_env("OPERA_DISP_HTTP_TIMEOUT", DATA_DEADLINES)


def read_body(resp: requests.Response, limit: int, deadlines: Deadlines, started: float, *,
              truncate: bool = False) -> bytes:
    """A streamed answer's body, at most ``limit`` bytes, within ``deadlines``.

    Reads what each receive brings (``read1``), so the rate is checked between pieces and
    memory stays bounded by ``limit``: an endless body costs ``limit + 1`` bytes, never
    more. The pieces are joined once, as requests' own ``content`` does.

    Parameters
    ----------
    resp
        An answer sent with ``stream=True``; closed when the body is refused.
    limit
        The most bytes accepted.
    deadlines
        The minimum rate (and the first-byte allowance) of this try.
    started
        ``time.monotonic()`` when the request was sent.
    truncate
        Return the first ``limit`` bytes of a longer body instead of refusing it (an error
        page read for its message).

    Raises
    ------
    BodyTooLong
        When the answer announces, or sends, more than ``limit`` bytes.
    TooSlow
        When the body falls below ``deadlines.min_rate``.
    requests.exceptions.ChunkedEncodingError, requests.exceptions.ReadTimeout
        On a dropped connection or a silence (retried like requests' own).
    """
    import urllib3.exceptions

    announced = resp.headers.get("Content-Length", "").strip()
    if not truncate and announced.isdigit() and int(announced) > limit:
        resp.close()
        raise BodyTooLong(int(announced), limit, resp.status_code)
    pieces: list[bytes] = []
    got = 0
    want = limit if truncate else limit + 1  # one byte more tells a longer body
    try:
        while got < want:
            if deadlines.too_slow(time.monotonic() - started, got):
                resp.close()
                raise TooSlow(f"body slower than {deadlines.min_rate:g} B/s (the minimum rate; "
                              "OPERA_DISP_HTTP_TIMEOUT or OPERA_DISP_CMR_TIMEOUT sets it)")
            piece = resp.raw.read1(min(1 << 20, want - got), decode_content=True)
            if not piece:
                break
            pieces.append(piece)
            got += len(piece)
    except requests.RequestException:  # TooSlow: an OSError too, but already ours
        raise
    except urllib3.exceptions.ReadTimeoutError as exc:
        resp.close()
        raise requests.exceptions.ReadTimeout(str(exc)) from None
    except (urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError, OSError) as exc:
        resp.close()
        raise requests.exceptions.ChunkedEncodingError(str(exc)) from None
    if got > limit:
        resp.close()
        raise BodyTooLong(None, limit, resp.status_code)
    if truncate:
        resp.close()
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


class BodyTooLong(Exception):
    """An answer longer than asked: ``announced`` its Content-Length (None: it sent more),
    ``status`` its HTTP status. Not a service fault: the caller says what it means."""

    def __init__(self, announced: int | None, limit: int, status: int):
        super().__init__(f"HTTP {status} announced {announced} bytes" if announced is not None
                         else f"HTTP {status} sent more than {limit} bytes")
        self.announced = announced
        self.limit = limit
        self.status = status


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
                      sleep: Callable[[float], None] = time.sleep,
                      budget: float | None = None, try_time: float = 0.0) -> requests.Response:
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
    budget
        Seconds from the first try after which no try starts (None: the tries bound it);
        a try is counted as lasting ``try_time`` seconds, so the last one ends in time.
    """
    connect_failures = 0
    first = time.monotonic()

    def out_of_time(wait: float) -> bool:
        # No try starts that could not end within the budget (each lasts up to try_time).
        return budget is not None and time.monotonic() - first + wait + try_time > budget

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
            if last or out_of_time(policy.wait(attempt)):
                what = str(exc) if isinstance(exc, TooSlow) else exc.__class__.__name__
                raise give_up(f"{what} after {attempt + 1} tries", None) from None
            sleep(policy.wait(attempt))
            continue
        if resp.status_code == 429 or resp.status_code >= 500:
            asked = policy.asks_too_much(resp.headers.get("Retry-After"))
            if asked is not None:
                resp.close()
                raise give_up(f"HTTP {resp.status_code} with Retry-After {asked:g} s, longer "
                              f"than the {policy.retry_after_cap:g} s opera-disp waits; try "
                              "again later", resp.status_code)
            wait = policy.wait(attempt, resp.headers.get("Retry-After"))
            if last or out_of_time(wait):
                raise give_up(f"HTTP {resp.status_code} after {attempt + 1} tries",
                              resp.status_code)
            resp.close()  # a streamed answer: give its connection back before the wait
            sleep(wait)
            continue
        return resp
    raise AssertionError("unreachable")
