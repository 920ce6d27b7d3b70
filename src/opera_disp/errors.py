"""The one error tree of opera-disp and the table of process exit codes.

Every error a user can cause, and every failure of a granule or a service, is an
:class:`OperaDispError`; each class carries the exit code the command line returns for it
and a message that is one line, names the bad value and says what is allowed. Messages
never hold secrets: remote errors carry URLs without their query strings.

Anything else that escapes (``TypeError``, ``KeyError`` ...) is a bug, never a tolerated
granule failure.

Examples
--------
>>> BadInput("bbox 'x' is malformed").exit_code
<ExitCode.BAD_INPUT: 2>
>>> issubclass(AuthError, ServiceError), ServiceError.exit_code.value
(True, 4)
"""

from __future__ import annotations

import re
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of ``opera-disp`` and ``run.sh``."""

    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    NO_MATCH = 3
    SERVICE = 4
    INTERRUPTED = 130
    TERMINATED = 143


#: What each exit code means (the README's table is checked against this).
EXIT_CODES: dict[ExitCode, str] = {
    ExitCode.OK: "success (failed granules, if any, within the tolerated percentage)",
    ExitCode.FAILED: "more granules failed than tolerated, or an internal error (a bug)",
    ExitCode.BAD_INPUT: "bad input: a value the user must fix (one line names it)",
    ExitCode.NO_MATCH: "nothing matched: no granule for the search",
    ExitCode.SERVICE: "a service could not be reached or refused authentication "
                      "(CMR, Earthdata Login, ASF, S3)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C, SIGINT): granules in flight finished, summary "
                          "`interrupted`",
    ExitCode.TERMINATED: "terminated (SIGTERM, e.g. a cancelled DPS job): as 130",
}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C (exit 143 instead of 130)."""


class OperaDispError(Exception):
    """Root of every error opera-disp raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILED


# -- the user's inputs -------------------------------------------------------------------

class BadInput(OperaDispError, ValueError):
    """A value the user must fix (exit 2)."""

    exit_code = ExitCode.BAD_INPUT


class NotADispName(BadInput):
    """A name that is not an OPERA L3 DISP-S1 granule name."""


class OutsideFrame(BadInput):
    """The requested area or window does not intersect the frame grid."""


class NoMatch(OperaDispError):
    """No granule matched the inputs (exit 3)."""

    exit_code = ExitCode.NO_MATCH


# -- services: CMR, Earthdata Login, ASF, S3 ---------------------------------------------

class ServiceError(OperaDispError):
    """A service could not be reached or refused us (exit 4)."""

    exit_code = ExitCode.SERVICE


class CmrError(ServiceError):
    """CMR could not be reached or failed a search after retries.

    ``status`` is the last HTTP status, or None when CMR could not be reached.
    """

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class CmrRejected(BadInput):
    """CMR rejected the search itself (HTTP 400): its own text says why."""

    status = 400


class Unreachable(ServiceError):
    """A data host kept failing (connection errors, timeouts, 429, 5xx) after retries."""


class AuthError(ServiceError):
    """Earthdata Login refused us, or no credentials were available."""


class EulaError(AuthError):
    """ASF requires the user to accept its EULA first."""


class S3Forbidden(AuthError):
    """S3 answered 403 (typically: not running in AWS us-west-2)."""


# -- one granule --------------------------------------------------------------------------

class GranuleError(OperaDispError):
    """One granule could not be processed; the job records it and goes on (exit 1)."""


class GranuleReadError(GranuleError):
    """A granule could not be read (truncated, corrupt, not DISP-S1)."""


class RemoteError(GranuleReadError):
    """A remote read failed for this granule (404, bad ranges, short reads)."""


class RangeIgnored(RemoteError):
    """The server answered a Range request with the whole body."""


class OutputError(GranuleError):
    """An output could not be written or failed validation."""


class CogError(OutputError):
    """A raster could not be encoded as a COG (wrong rows, unsupported type, too large)."""


def redact(text: str) -> str:
    """Remove what a URL must not show, and credential-looking tokens, from a message.

    The one place every printed URL goes through: messages, logs, summaries, exceptions.
    Any ``scheme://user:password@host`` loses its ``user:password@`` (a password in
    ``--cmr-url``, a proxy's); an HTTP(S) URL loses its query string (presigned
    signatures); ``Bearer``/``Basic`` credentials are replaced.

    Examples
    --------
    >>> redact("GET https://h/x.nc?X-Amz-Signature=abc failed; Bearer eyJhbGciOi.x.y")
    'GET https://h/x.nc?… failed; Bearer <redacted>'
    >>> redact("CMR at https://me:p@ss@cmr.example:8443/search is down")
    'CMR at https://cmr.example:8443/search is down'
    """
    # userinfo ends at the last '@' before the host's path, query or fragment
    text = re.sub(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s'\"<>]*@", r"\1", text)
    text = re.sub(r"(https?://[^\s?'\"]+)\?[^\s'\"]*", r"\1?…", text)
    return re.sub(r"(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", r"\1 <redacted>", text)


def one_line(exc: BaseException) -> str:
    """An exception as one safe line: whitespace folded, secrets redacted, else its class.

    Examples
    --------
    >>> one_line(ValueError("a\\n  b")), one_line(KeyError())
    ('a b', 'KeyError')
    >>> one_line(OSError("https://h/g.nc?X-Amz-Signature=s3cr3t refused"))
    'https://h/g.nc?… refused'
    """
    return redact(" ".join(str(exc).split())) or exc.__class__.__name__
