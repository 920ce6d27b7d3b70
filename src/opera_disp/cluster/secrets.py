"""Credentials for the workers, never in a task, a log or the summary: sealed per worker.

dask's own channels (a worker plugin, ``client.run``) carry their payloads in messages a
scheduler or worker at DEBUG logging writes out, so the credentials never travel in the
clear:

1. a worker plugin (no secret in it) makes an RSA key pair in each worker process, the
   private key never leaving that process;
2. the client reads each worker's public key, encrypts the credentials with a fresh
   Fernet key and wraps that key with the worker's public key (RSA-OAEP), then hands each
   worker its own sealed copy; only that worker can open it;
3. a worker that joins later (a restarted one) is served the same way while the job runs,
   and a task that needs credentials waits for them.

Only variables the client has are sent; they are set in the worker's environment, where
boto3, Earthdata Login and maap-py look for them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from ..errors import AuthError

log = logging.getLogger(__name__)

#: Secrets a granule task may need (Earthdata, MAAP, AWS), and settings that go with them.
CREDENTIAL_VARIABLES = (
    "EARTHDATA_TOKEN", "EARTHDATA_USERNAME", "EARTHDATA_PASSWORD", "MAAP_PGT",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
)
SETTING_VARIABLES = (
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
    "OPERA_DISP_S3_ENDPOINT", "OPERA_DISP_TRUSTED_HOSTS", "MAAP_API_HOST",
)
PLUGIN_NAME = "opera-disp-keys"
WAIT_SECONDS = 120.0  # how long a task waits for its worker's credentials

# Worker side: this process's private key and whether its credentials arrived.
_private: Any = None
_installed = threading.Event()
_lock = threading.Lock()


def client_credentials(env: Mapping[str, str] | None = None,
                       s3_output: bool = False) -> dict[str, str]:
    """The credentials (and their settings) this process has, to hand to the workers.

    With ``s3_output``, AWS credentials that boto3 finds elsewhere (a profile, an instance
    role) are resolved to temporary values here.
    """
    env = os.environ if env is None else env
    out = {k: env[k] for k in (*CREDENTIAL_VARIABLES, *SETTING_VARIABLES) if env.get(k)}
    if s3_output and "AWS_ACCESS_KEY_ID" not in out:
        import boto3

        creds = boto3.Session().get_credentials()
        if creds is not None:
            frozen = creds.get_frozen_credentials()
            out["AWS_ACCESS_KEY_ID"] = str(frozen.access_key)
            out["AWS_SECRET_ACCESS_KEY"] = str(frozen.secret_key)
            if frozen.token:
                out["AWS_SESSION_TOKEN"] = str(frozen.token)
    return out


class KeyPlugin(WorkerPlugin):
    """Gives each worker process a key pair of its own."""

    name = PLUGIN_NAME

    def setup(self, worker: Any) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        global _private
        with _lock:
            if _private is None:
                _private = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_key() -> bytes:
    """This worker's public key (PEM); run on the workers by the client."""
    from cryptography.hazmat.primitives import serialization

    with _lock:
        if _private is None:
            raise RuntimeError("no key: the opera-disp key plugin is not registered")
        return bytes(_private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def install(sealed: Mapping[str, tuple[bytes, bytes]], dask_worker: Any = None) -> bool:
    """Open this worker's sealed credentials and set them (run on the workers)."""
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    mine = sealed.get(dask_worker.address) if dask_worker is not None else None
    if mine is None:
        return False
    wrapped, token = mine
    with _lock:
        key = _private.decrypt(wrapped, padding.OAEP(
            mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(),
            label=None))
    os.environ.update(json.loads(Fernet(key).decrypt(token)))
    _installed.set()
    return True


def wait_for_credentials(timeout: float = WAIT_SECONDS) -> None:
    """Block a task until its worker's credentials arrived.

    Raises
    ------
    AuthError
        When they did not arrive in time.
    """
    if not _installed.wait(timeout):
        raise AuthError(f"this worker received no credentials from the client in "
                        f"{timeout:.0f} s")


def seal(values: Mapping[str, str], public_pem: bytes) -> tuple[bytes, bytes]:
    """``values`` encrypted for the holder of ``public_pem``'s private key."""
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    pub = serialization.load_pem_public_key(public_pem)
    if not isinstance(pub, rsa.RSAPublicKey):
        raise AuthError("a worker offered a key that is not RSA")
    key = Fernet.generate_key()
    wrapped = pub.encrypt(key, padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()),
                                            algorithm=hashes.SHA256(), label=None))
    return wrapped, Fernet(key).encrypt(json.dumps(dict(values)).encode())


class Courier:
    """Delivers sealed credentials to every worker, now and (on a thread) as workers join,
    until closed."""

    def __init__(self, client: Any, values: Mapping[str, str], interval: float = 0.5):
        self.client, self._values, self._interval = client, dict(values), interval
        self._served: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def deliver(self) -> None:
        """Serve the workers not served yet."""
        workers = set(self.client.scheduler_info(n_workers=-1).get("workers", {}))
        new = sorted(workers - self._served)
        if not new:
            return
        keys = self.client.run(public_key, workers=new)
        sealed = {addr: seal(self._values, pem) for addr, pem in keys.items()}
        done = self.client.run(install, sealed, workers=list(sealed))
        self._served |= {addr for addr, ok in done.items() if ok}

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.deliver()
            except Exception as exc:  # a worker gone between listing and serving: retry
                log.debug("credential delivery retried: %s", exc.__class__.__name__)

    def __enter__(self) -> Courier:
        self.client.register_plugin(KeyPlugin())
        self.deliver()
        self._thread = threading.Thread(target=self._loop, name="opera-disp-courier",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
