"""A local fake of the MAAP API's job endpoints, as maap-py 4.x and 5.x call them.

* ``GET /api/environment/config``: the client configuration ``MAAP()`` reads first.
* ``GET /api/members/self``: the profile ``submitJob`` reads the username from.
* maap-py 4.x (WPS): ``POST /api/dps/job`` (WPS Execute XML) answers ``StatusInfo`` XML
  with the job id; ``GET /api/dps/job/<id>/status`` the status XML; ``GET
  /api/dps/job/<id>`` the ``wps:Result`` XML (output URLs; a failed job's traceback).
* maap-py 5.x (OGC API Processes): ``POST /api/ogc/processes/<pid>/execution`` answers
  202 ``{"jobID"}``; ``GET /api/ogc/jobs/<id>`` the status; ``.../results`` the outputs.
* ``/files/<path>``: the workspace bucket over HTTP (GET and HEAD), as the result's
  https URL serves it.

Each job walks through the statuses ``script(inputs)`` gives it, one per status request;
when it reaches ``Succeeded``, ``runner(job, folder)`` writes its outputs into its
``dps_output`` folder under ``workspace``.
"""

from __future__ import annotations

import json
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

WPS = "http://www.opengis.net/wps/2.0"
OWS = "http://www.opengis.net/ows/2.0"
TOKEN = "fake-maap-token"


@dataclass
class FakeJob:
    """A submitted job."""

    id: str
    api: str
    algorithm: str
    inputs: list[tuple[str, str]]
    tag: str
    queue: str
    statuses: list[str]
    step: int = 0
    folder: Path | None = None
    error: str = "Traceback: opera-disp exited 1"

    @property
    def status(self) -> str:
        return self.statuses[min(self.step, len(self.statuses) - 1)]


@dataclass
class FakeMaap:
    """State of the fake: jobs, scripted outcomes, the workspace, the request log."""

    workspace: Path
    script: Callable[[dict[str, str]], list[str]] = lambda inputs: ["Accepted", "Running",
                                                                    "Succeeded"]
    runner: Callable[[FakeJob, Path], None] | None = None
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    refuse_next: int = 0  # submits refused with HTTP ``refuse_code`` (maap-py: status failed)
    refuse_code: int = 400
    base: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def config(self) -> dict[str, Any]:
        return {"service": {"maap_api_root": f"{self.base}/api", "maap_token": TOKEN,
                            "tiler_endpoint": f"{self.base}/tiler"},
                "search": {"indexed_attributes": []},
                "maap_endpoint": {
                    "dps_job": "dps/job", "member": "members/self", "processes_ogc":
                    "ogc/processes", "jobs_ogc": "ogc/jobs", "deployment_jobs_ogc":
                    "ogc/deploymentJobs", "algorithm_register": "mas/algorithm",
                    "algorithm_build": "dps/algorithm/build", "mas_algo": "mas/algorithm",
                    "member_dps_token": "members/dps/userImage", "requester_pays":
                    "members/self/awsAccess/requesterPaysBucket", "edc_credentials":
                    "members/self/awsAccess/edcCredentials/{endpoint_uri}",
                    "workspace_bucket_credentials": "members/self/awsAccess/workspaceBucket",
                    "s3_signed_url": "members/self/presignedUrlS3/{bucket}/{key}",
                    "wmts": "wmts", "search_granule_url": "cmr/granules",
                    "search_collection_url": "cmr/collections"}}

    def submit(self, api: str, algorithm: str, inputs: list[tuple[str, str]], tag: str,
               queue: str) -> FakeJob:
        with self.lock:
            job = FakeJob(str(uuid.uuid4()), api, algorithm, inputs, tag, queue,
                          self.script(dict(inputs)))
            self.jobs[job.id] = job
            return job

    def advance(self, job: FakeJob) -> str:
        with self.lock:
            job.step += 1
            if job.status == "Succeeded" and job.folder is None:
                n = len([j for j in self.jobs.values() if j.folder is not None])
                name, version = job.algorithm.split(":", 1)
                job.folder = (self.workspace / "dps_output" / name / version / job.tag /
                              f"2026/12/01/17/00/{n:02d}/{n:06d}")
                job.folder.mkdir(parents=True)
                if self.runner is not None:
                    self.runner(job, job.folder)
            return job.status

    def result_urls(self, job: FakeJob) -> list[str]:
        assert job.folder is not None
        rel = job.folder.relative_to(self.workspace).as_posix()
        return [f"{self.base}/files/{rel}", f"s3://s3.amazonaws.com:80/fake-bucket/alice/{rel}",
                f"https://s3.console.aws.amazon.com/s3/buckets/fake-bucket/alice/{rel}/"]


def _handler(state: FakeMaap) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, code: int, doc: Any) -> None:
            self._send(code, json.dumps(doc).encode())

        def _xml(self, text: str) -> None:
            self._send(200, text.encode(), "application/xml")

        def _body(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def _record(self, body: bytes = b"") -> None:
            state.requests.append((self.command, self.path, dict(self.headers.items()), body))

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            self._record()
            path = self.path.split("?", 1)[0]
            if path == "/api/environment/config":
                return self._json(200, state.config())
            if path.startswith("/files/"):
                f = state.workspace / path[len("/files/"):]
                return self._send(200, f.read_bytes(), "application/octet-stream") \
                    if f.is_file() else self._send(404, b"not found", "text/plain")
            if self.headers.get("token") != TOKEN:
                return self._send(401, b"no token", "text/plain")
            if path == "/api/members/self":
                return self._json(200, {"username": "alice"})
            parts = path.strip("/").split("/")
            if parts[:3] == ["api", "dps", "job"] and len(parts) >= 4:
                job = state.jobs.get(parts[3])
                if job is None:
                    return self._send(404, b"no such job", "text/plain")
                if parts[4:] == ["status"]:
                    status = state.advance(job)
                    return self._xml(f'<wps:StatusInfo xmlns:wps="{WPS}"><wps:JobID>{job.id}'
                                     f"</wps:JobID><wps:Status>{status}</wps:Status>"
                                     "</wps:StatusInfo>")
                if not parts[4:]:
                    return self._xml(self._wps_result(job))
            if parts[:3] == ["api", "ogc", "jobs"] and len(parts) >= 4:
                job = state.jobs.get(parts[3])
                if job is None:
                    return self._json(404, {"title": "no such job"})
                if not parts[4:]:
                    status = state.advance(job)
                    ogc = {"Succeeded": "successful"}.get(status, status.lower())
                    return self._json(200, {"jobID": job.id, "status": ogc, "type": "process"})
                if parts[4:] == ["results"]:
                    if job.status == "Failed":
                        return self._json(200, {"traceback": job.error})
                    return self._json(200, {"output": [{"href": u, "type": "directory"}
                                                       for u in state.result_urls(job)]})
            self._send(404, b"unknown endpoint", "text/plain")

        def _wps_result(self, job: FakeJob) -> str:
            if job.status == "Failed":
                datas = [f"<wps:Data>{job.error}</wps:Data>"]
                out_id = "traceback"
            else:
                datas = [f"<wps:Data>{u}</wps:Data>".replace("&", "&amp;")
                         for u in state.result_urls(job)]
                out_id = "output-2026-12-01T17:00:00"
            return (f'<wps:Result xmlns:wps="{WPS}"><wps:JobID>{job.id}</wps:JobID>'
                    f'<wps:Output id="{out_id}">{"".join(datas)}</wps:Output></wps:Result>')

        def do_POST(self) -> None:
            body = self._body()
            self._record(body)
            path = self.path.split("?", 1)[0]
            if self.headers.get("token") != TOKEN:
                return self._send(401, b"no token", "text/plain")
            if path == "/api/dps/job":
                root = ET.fromstring(body)
                ident = root.findtext(f"{{{OWS}}}Identifier") or ""
                inputs = [(i.get("id") or "", i.findtext(f"{{{WPS}}}Data/{{{WPS}}}LiteralValue")
                           or "") for i in root.findall(f"{{{WPS}}}Input")]
                if state.refuse_next > 0:
                    state.refuse_next -= 1
                    return self._send(state.refuse_code, b"queue not allowed for this user",
                                      "text/plain")
                named = dict(inputs)
                job = state.submit("legacy", ident.removeprefix("job-"),
                                   [(k, v) for k, v in inputs if k not in
                                    ("identifier", "queue", "username")],
                                   named.get("identifier", ""), named.get("queue", ""))
                return self._xml(f'<wps:StatusInfo xmlns:wps="{WPS}"><wps:JobID>{job.id}'
                                 "</wps:JobID><wps:Status>Accepted</wps:Status>"
                                 "</wps:StatusInfo>")
            parts = path.strip("/").split("/")
            if parts[:3] == ["api", "ogc", "processes"] and parts[4:] == ["execution"]:
                doc = json.loads(body)
                job = state.submit("ogc", f"process-{parts[3]}:ogc",
                                   list(doc["inputs"].items()), doc.get("tag", ""),
                                   doc["queue"])
                return self._json(202, {"jobID": job.id, "status": "accepted"})
            self._send(404, b"unknown endpoint", "text/plain")

    return Handler


class FakeMaapServer:
    """The fake on loopback (a context manager); ``url`` is its base URL."""

    def __init__(self, workspace: Path):
        self.state = FakeMaap(workspace=workspace)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.state.base = self.url
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeMaapServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
