"""DPS jobs through maap-py, at arm's length: one interface over maap-py 4.x and the OGC API.

* :class:`LegacyDps` wraps a maap-py 4.x ``MAAP`` (``submitJob``, ``getJobStatus``,
  ``getJobResult``: the WPS endpoints under ``/api/dps/job``).
* :class:`OgcDps` wraps anything with maap-py 5.x's ``submit_job``, ``get_job_status`` and
  ``get_job_result`` (each answering a ``requests.Response``): a maap-py 5.x ``MAAP``, or
  :class:`OgcHttp`, which speaks the same OGC API Processes endpoints itself (maap-py 4.2,
  which MAAP's images pin, does not know them).

``MAAP()`` calls the network in its constructor: :func:`connect` builds one only when a
command needs it, for the host given (``$MAAP_API_HOST`` by default).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urljoin, urlparse

import requests

from ..errors import AuthError, BadInput, ServiceError, Unreachable, one_line

DEFAULT_HOST = "api.maap-project.org"


class DpsStatus(StrEnum):
    """A job's state in the ledger: DPS's own states, plus two of the client's."""

    PLANNED = "planned"  # not submitted yet
    SUBMIT_FAILED = "submit_failed"  # the submit was refused; submitted again on a rerun
    ACCEPTED = "accepted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DISMISSED = "dismissed"
    DEDUPED = "deduped"
    OFFLINE = "offline"

    @property
    def finished(self) -> bool:
        """DPS will not change it any more."""
        return self in (DpsStatus.SUCCEEDED, DpsStatus.FAILED, DpsStatus.DISMISSED,
                        DpsStatus.DEDUPED)

    @property
    def resubmit(self) -> bool:
        """A rerun of ``dps submit`` submits the job again (an offline job is not: DPS
        queues it again itself)."""
        return self in (DpsStatus.PLANNED, DpsStatus.SUBMIT_FAILED, DpsStatus.FAILED,
                        DpsStatus.DISMISSED)


# DPS (WPS) and OGC API Processes names of the same states.
_STATUS = {"accepted": DpsStatus.ACCEPTED, "running": DpsStatus.RUNNING,
           "succeeded": DpsStatus.SUCCEEDED, "successful": DpsStatus.SUCCEEDED,
           "failed": DpsStatus.FAILED, "dismissed": DpsStatus.DISMISSED,
           "deduped": DpsStatus.DEDUPED, "offline": DpsStatus.OFFLINE,
           "job-queued": DpsStatus.ACCEPTED, "job-started": DpsStatus.RUNNING,
           "job-completed": DpsStatus.SUCCEEDED, "job-failed": DpsStatus.FAILED,
           "job-revoked": DpsStatus.DISMISSED, "job-offline": DpsStatus.OFFLINE}


def parse_status(text: str) -> DpsStatus:
    """A DPS or OGC status word as a :class:`DpsStatus`.

    Examples
    --------
    >>> [parse_status(s).value for s in ("Succeeded", "successful", "job-started")]
    ['succeeded', 'succeeded', 'running']
    """
    try:
        return _STATUS[text.strip().lower()]
    except KeyError:
        raise ServiceError(f"DPS answered an unknown job status {text!r}") from None


@dataclass(frozen=True)
class JobResult:
    """What DPS says a finished job left: output URLs, and the error text of a failure."""

    urls: tuple[str, ...]
    error: str | None = None


class DpsApi(Protocol):
    """What fan-out needs from DPS."""

    api: str

    def submit(self, algorithm: str, version: str, queue: str,
               inputs: list[tuple[str, str]], tag: str) -> str:
        """Submit one job; its id."""

    def status(self, job_id: str) -> DpsStatus:
        """A job's status."""

    def result(self, job_id: str) -> JobResult:
        """A finished job's output URLs (and error text)."""


def _service_error(what: str, exc: Exception) -> ServiceError:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    kind = AuthError if status in (401, 403) else Unreachable
    return kind(f"MAAP could not {what} ({exc.__class__.__name__}"
                f"{f', HTTP {status}' if status else ''}: {one_line(exc)})")


class LegacyDps:
    """maap-py 4.x: ``submitJob(identifier, algo_id, version, queue, **inputs)`` and friends."""

    api = "legacy"

    def __init__(self, maap: Any):
        self._maap = maap

    def submit(self, algorithm: str, version: str, queue: str,
               inputs: list[tuple[str, str]], tag: str) -> str:
        try:
            job = self._maap.submitJob(identifier=tag, algo_id=algorithm, version=version,
                                       queue=queue, **dict(inputs))
        except Exception as exc:
            raise _service_error(f"submit job {tag}", exc) from None
        # A refused submit (e.g. an expired MAAP_PGT) does not raise: status 'failed', no id.
        job_id, status = getattr(job, "id", None), str(getattr(job, "status", ""))
        if not job_id or status.lower() != "success":
            detail = getattr(job, "error_details", None) or f"status {status or 'unknown'}"
            code = getattr(job, "response_code", None)
            kind = AuthError if code in (401, 403) else ServiceError
            raise kind(f"DPS refused job {tag}: {' '.join(str(detail).split())[:300]}")
        return str(job_id)

    def status(self, job_id: str) -> DpsStatus:
        try:
            text = self._maap.getJobStatus(job_id)
        except Exception as exc:
            raise _service_error(f"read the status of job {job_id}", exc) from None
        return parse_status(str(text))

    def result(self, job_id: str) -> JobResult:
        try:
            items = [str(u) for u in self._maap.getJobResult(job_id) or [] if u]
        except Exception as exc:
            raise _service_error(f"read the result of job {job_id}", exc) from None
        urls = tuple(u for u in items if "://" in u and " " not in u.strip())
        rest = [u for u in items if u not in urls]
        return JobResult(urls, " ".join(" ".join(rest).split())[:500] if rest else None)


class OgcClient(Protocol):
    """maap-py 5.x's job calls (each answers a ``requests.Response``)."""

    def submit_job(self, process_id: Any, inputs: dict[str, str], queue: str,
                   dedup: Any = None, tag: str | None = None) -> Any: ...

    def get_job_status(self, job_id: str) -> Any: ...

    def get_job_result(self, job_id: str) -> Any: ...


def _json(response: Any, what: str) -> Any:
    if not 200 <= int(response.status_code) < 300:
        kind = AuthError if response.status_code in (401, 403) else ServiceError
        raise kind(f"MAAP could not {what} (HTTP {response.status_code}: "
                   f"{' '.join(str(response.text).split())[:200]})")
    try:
        return response.json()
    except ValueError:
        raise ServiceError(f"MAAP answered no JSON to {what}") from None


def _ogc(what: str, call: Callable[[], Any]) -> Any:
    """One OGC call's JSON answer; maap-py's own failures become service errors."""
    try:
        response = call()
    except Exception as exc:
        raise _service_error(what, exc) from None
    return _json(response, what)


def _urls(doc: Any) -> list[str]:
    """Every URL in an OGC results document, in document order."""
    if isinstance(doc, str):
        return [doc] if "://" in doc and " " not in doc.strip() else []
    if isinstance(doc, dict):
        return [u for v in doc.values() for u in _urls(v)]
    if isinstance(doc, list):
        return [u for v in doc for u in _urls(v)]
    return []


class OgcDps:
    """The OGC API Processes route (maap-py 5.x): jobs of a deployed process id."""

    api = "ogc"

    def __init__(self, client: OgcClient, process_id: str):
        self._client = client
        self.process_id = process_id

    def submit(self, algorithm: str, version: str, queue: str,
               inputs: list[tuple[str, str]], tag: str) -> str:
        what = f"submit job {tag} to process {self.process_id}"
        doc = _ogc(what, lambda: self._client.submit_job(self.process_id, dict(inputs), queue,
                                                         tag=tag))
        job_id = doc.get("jobID") or doc.get("id") if isinstance(doc, dict) else None
        if not job_id:
            raise ServiceError(f"MAAP answered no jobID to {what}")
        return str(job_id)

    def status(self, job_id: str) -> DpsStatus:
        what = f"read the status of job {job_id}"
        doc = _ogc(what, lambda: self._client.get_job_status(job_id))
        return parse_status(str(doc.get("status", "") if isinstance(doc, dict) else doc))

    def result(self, job_id: str) -> JobResult:
        what = f"read the result of job {job_id}"
        doc = _ogc(what, lambda: self._client.get_job_result(job_id))
        error = None
        if isinstance(doc, dict) and doc.get("traceback"):
            error = " ".join(str(doc["traceback"]).split())[:500]
        return JobResult(tuple(dict.fromkeys(_urls(doc))), error)


class OgcHttp:
    """maap-py 5.x's OGC job calls spoken directly (for installs that pin maap-py 4.x).

    The endpoints come from the host's ``/api/environment/config`` (``processes_ogc``,
    ``jobs_ogc``), as maap-py reads them; requests carry its headers (the config's
    ``maap_token`` and ``proxy-ticket: $MAAP_PGT``).
    """

    def __init__(self, host: str, session: requests.Session | None = None,
                 timeout: float = 60.0):
        base = host if urlparse(host).scheme else \
            f"{os.environ.get('MAAP_API_HOST_SCHEME', 'https')}://{host}"
        self._session = session or requests.Session()
        self._timeout = timeout
        config_url = urljoin(base.rstrip("/") + "/",
                             os.environ.get("MAAP_API_CONFIG_ENDPOINT", "api/environment/config"))
        try:
            response = self._session.get(config_url, timeout=timeout)
            response.raise_for_status()
            config = response.json()
            root = urlparse(config["service"]["maap_api_root"]).path.rstrip("/") + "/"
            api_root = urljoin(config_url, root)
            endpoints = config["maap_endpoint"]
            self.processes = urljoin(api_root, str(endpoints["processes_ogc"]).strip("/"))
            self.jobs = urljoin(api_root, str(endpoints["jobs_ogc"]).strip("/"))
            token = str(config["service"].get("maap_token") or "")
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            raise _service_error(f"read its configuration from {config_url}",
                                 exc) from None
        self._headers = {"Accept": "application/json"}
        if token.lower().startswith(("basic", "bearer")):
            self._headers["Authorization"] = token
        elif token:
            self._headers["token"] = token
        if os.environ.get("MAAP_PGT"):
            self._headers["proxy-ticket"] = os.environ["MAAP_PGT"]

    def submit_job(self, process_id: Any, inputs: dict[str, str], queue: str,
                   dedup: Any = None, tag: str | None = None) -> requests.Response:
        body: dict[str, Any] = {"inputs": inputs, "queue": queue}
        if dedup is not None:
            body["dedup"] = dedup
        if tag is not None:
            body["tag"] = tag
        return self._session.post(f"{self.processes}/{process_id}/execution", json=body,
                                  headers=self._headers, timeout=self._timeout)

    def get_job_status(self, job_id: str) -> requests.Response:
        return self._session.get(f"{self.jobs}/{job_id}", headers=self._headers,
                                 timeout=self._timeout)

    def get_job_result(self, job_id: str) -> requests.Response:
        return self._session.get(f"{self.jobs}/{job_id}/results", headers=self._headers,
                                 timeout=self._timeout)


class ApiKind(StrEnum):
    """Which DPS route to use: ``auto`` picks by the installed maap-py's major version."""

    AUTO = "auto"
    LEGACY = "legacy"
    OGC = "ogc"


def maap_py_major() -> int | None:
    """The installed maap-py's major version (None: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return int(version("maap-py").split(".")[0])
    except (PackageNotFoundError, ValueError):
        return None


def connect(api: ApiKind = ApiKind.AUTO, host: str | None = None,
            process_id: str | None = None) -> DpsApi:
    """A :class:`DpsApi` for ``host`` (default ``$MAAP_API_HOST`` or MAAP's production API).

    ``auto`` takes the legacy route with maap-py 4.x and the OGC route with 5.x. The OGC
    route needs the deployed process's id; with maap-py 4.x installed it speaks the OGC
    endpoints itself (:class:`OgcHttp`).
    """
    host = host or os.environ.get("MAAP_API_HOST") or DEFAULT_HOST
    major = maap_py_major()
    if api is ApiKind.AUTO:
        api = ApiKind.OGC if (major or 0) >= 5 else ApiKind.LEGACY
    if api is ApiKind.OGC:
        if not process_id:
            raise BadInput("the OGC route submits to a deployed process: give --process-id "
                           "(maap.describe_algorithm shows it)")
        client: OgcClient = _maap(host) if (major or 0) >= 5 else OgcHttp(host)
        return OgcDps(client, process_id)
    if major is None or major >= 5:
        raise BadInput("the legacy route needs maap-py 4.x (pip install 'maap-py==4.2.0'); "
                       "with maap-py 5.x use --api ogc")
    return LegacyDps(_maap(host))


def _maap(host: str) -> Any:
    try:
        from maap.maap import MAAP  # lazily: maap-py creates boto3 clients on import
    except ImportError:
        raise BadInput("maap-py is not installed (pip install 'maap-py==4.2.0')") from None
    try:
        return MAAP(maap_host=host)
    except Exception as exc:  # maap-py fails with AttributeError when its config GET fails
        raise Unreachable(f"MAAP at {host} could not be reached "
                          f"({exc.__class__.__name__}: {one_line(exc)})") from None
