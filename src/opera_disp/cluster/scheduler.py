"""``--scheduler``: a LocalCluster of this machine (``local[:N]``) or a running scheduler.

Examples
--------
>>> parse_scheduler("local:3"), parse_scheduler("local")
(SchedulerSpec(address=None, local_workers=3), SchedulerSpec(address=None, local_workers=2))
>>> parse_scheduler("tcp://10.0.0.5:8786").label
'tcp://10.0.0.5:8786'
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import BadInput, Unreachable, one_line

log = logging.getLogger(__name__)
DEFAULT_LOCAL_WORKERS = 2
MAX_LOCAL_WORKERS = 256
WAIT_FOR_WORKERS = 60.0  # seconds a running scheduler may take to have a worker
#: Seconds a scheduler's host may take to accept a TCP connection before the job is refused.
PROBE_SECONDS = 5.0
#: Schemes whose address is a TCP host and port (others, e.g. gateway://, are not probed).
_TCP_SCHEMES = ("tcp", "tls")


@dataclass(frozen=True)
class SchedulerSpec:
    """Where the tasks go: ``address`` of a running scheduler, or N local worker processes."""

    address: str | None = None
    local_workers: int = DEFAULT_LOCAL_WORKERS

    @property
    def label(self) -> str:
        """How the summary names it."""
        return self.address if self.address else f"local:{self.local_workers}"


def parse_scheduler(text: str) -> SchedulerSpec:
    """``local``, ``local:N`` or a scheduler address (``tcp://host:port``, ``tls://…``,
    ``gateway://…``, ``host:port``).

    Raises
    ------
    BadInput
        For anything else, one line naming the value.
    """
    value = text.strip()
    m = re.fullmatch(r"local(?::(\d+))?", value)
    if m:
        n = int(m.group(1)) if m.group(1) else DEFAULT_LOCAL_WORKERS
        if not 1 <= n <= MAX_LOCAL_WORKERS:
            raise BadInput(f"scheduler {text!r}: local workers must be 1..{MAX_LOCAL_WORKERS}")
        return SchedulerSpec(local_workers=n)
    if re.fullmatch(r"[a-z]+://[^\s/]+(/\S*)?", value) or \
            re.fullmatch(r"[A-Za-z0-9.\-]+:\d+", value):
        try:  # the shape is right; the host and port must parse too (tcp://[::1, :99999)
            urlsplit(value if "://" in value else f"tcp://{value}").port  # noqa: B018
        except ValueError as exc:
            raise BadInput(f"scheduler {text!r} is not a well-formed address ({exc}); "
                           "expected local, local:N or e.g. tcp://host:8786") from None
        return SchedulerSpec(address=value)
    raise BadInput(f"scheduler {text!r} is not local, local:N or an address like "
                   "tcp://host:8786")


def check_reachable(spec: SchedulerSpec, timeout: float = PROBE_SECONDS) -> None:
    """Refuse a scheduler address nobody listens on before any work: a refused connection
    at once, a host that does not answer within ``timeout`` seconds (distributed's own
    connect would wait 30 s and retry).

    Raises
    ------
    Unreachable
        One line naming the address, why, and the way out (``local:2``); exit code 4.

    Examples
    --------
    >>> check_reachable(parse_scheduler("local:2"))  # nothing to probe
    """
    if spec.address is None:
        return
    url = urlsplit(spec.address if "://" in spec.address else f"tcp://{spec.address}")
    if url.scheme not in _TCP_SCHEMES or url.hostname is None or url.port is None:
        return
    hint = "check the address, or run on this machine with --scheduler local:2"
    try:
        with socket.create_connection((url.hostname, url.port), timeout=timeout):
            pass
    except ConnectionRefusedError:
        raise Unreachable(f"dask scheduler {spec.address} refused the connection (nothing "
                          f"listens there); {hint}") from None
    except TimeoutError:
        raise Unreachable(f"dask scheduler {spec.address} did not answer within "
                          f"{timeout:g} s; {hint}") from None
    except socket.gaierror as exc:
        raise Unreachable(f"dask scheduler {spec.address}: host {url.hostname!r} is unknown "
                          f"({exc.strerror or exc}); {hint}") from None
    except OSError as exc:
        raise Unreachable(f"dask scheduler {spec.address} cannot be reached "
                          f"({exc.strerror or exc}); {hint}") from None


def worker_count(client: Any) -> int:
    """Workers the scheduler has now."""
    return len(client.scheduler_info(n_workers=-1).get("workers", {}))


@contextlib.contextmanager
def open_client(spec: SchedulerSpec) -> Iterator[Any]:
    """A ``distributed.Client`` on ``spec`` (a LocalCluster of worker processes is started
    and stopped here); waits until the scheduler has a worker."""
    import distributed

    dist: Any = distributed  # distributed's constructors are untyped
    with contextlib.ExitStack() as stack:
        if spec.address is None:
            # The workers' scratch space (dask-scratch-space) in a folder of the job's own,
            # removed after the cluster stops: nothing is left in TMPDIR.
            scratch = stack.enter_context(tempfile.TemporaryDirectory(
                prefix="opera-disp-dask-", ignore_cleanup_errors=True))
            import dask

            stack.enter_context(dask.config.set({"temporary-directory": scratch}))
            # One task per worker process: each granule already runs its own decoding and
            # compression threads.
            cluster = stack.enter_context(dist.LocalCluster(
                n_workers=spec.local_workers, threads_per_worker=1, processes=True,
                dashboard_address=":0", silence_logs=logging.WARNING,
                local_directory=scratch))
            client = stack.enter_context(dist.Client(cluster))
        else:
            try:
                client = stack.enter_context(dist.Client(spec.address, timeout=30))
            except ValueError as exc:  # an address distributed cannot parse
                raise BadInput(f"scheduler {spec.address!r} is not a usable address "
                               f"({one_line(exc)}); expected e.g. tcp://host:8786") from None
            except (OSError, TimeoutError) as exc:
                raise Unreachable(f"dask scheduler {spec.address} cannot be reached "
                                  f"({one_line(exc)})") from None
            except (MemoryError, EOFError, UnicodeDecodeError) as exc:
                # Something listens there, but its first bytes are no dask handshake (an
                # HTTP server, a proxy): distributed reads a garbage frame length.
                raise Unreachable(f"{spec.address} answered, but not as a dask scheduler "
                                  f"({exc.__class__.__name__}); check the address, or run "
                                  "on this machine with --scheduler local:2") from None
        try:
            client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS)
        except TimeoutError:
            raise Unreachable(f"dask scheduler {spec.label} has no worker after "
                              f"{WAIT_FOR_WORKERS:.0f} s") from None
        log.info("dask dashboard: %s", client.dashboard_link)
        yield client
