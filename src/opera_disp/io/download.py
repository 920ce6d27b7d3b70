"""Download whole granules: parallel, resumable, verified end to end, atomic.

A partial download lives next to its target as ``<name>.nc.part`` and is resumed with Range
requests. Every byte is hashed as it is written (SHA-256, and the catalog's algorithm when
CMR gave a checksum): the file is checked against the catalog's size and checksum before it
is renamed into place, and then recorded in the folder's manifest,
``download-manifest.json`` (:class:`Manifest`): its size, SHA-256, the server's ``ETag``
and ``Last-Modified``, CMR's checksum and where it came from.

A rerun re-hashes every file the manifest lists: one that no longer matches its record
(damaged in place, even with the same size) or the catalog is downloaded again; a shorter
one is resumed from where it stops, and a resumed file that fails its check is downloaded
once more from the start. A file the manifest does not list is judged by the catalog's
size and checksum (without the catalog's size, by the remote file's) and recorded. A
failure (a checksum that differs from CMR's, a refused request) is recorded in the manifest
for that granule while the others finish. :func:`verify_folder` checks a folder against its
manifest without any network (``opera-disp download --verify``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ..catalog.refs import GranuleRef
from ..errors import BadInput, OperaDispError, RemoteError, ServiceError, one_line
from ..files import PlantedLink, read_document, write_json
from ..times import iso
from .auth import public_url
from .source import ByteSource

log = logging.getLogger(__name__)
PIECE = 8 * 1024 * 1024
MANIFEST_NAME = "download-manifest.json"
MANIFEST_SCHEMA = "opera-disp/download-manifest/1"


@dataclass(frozen=True)
class Downloaded:
    """Outcome of one download.

    ``status`` is ``downloaded``, ``resumed``, ``skipped`` (complete and verified: its
    bytes hashed again) or ``failed``; ``service`` marks a failure caused by a service
    (Earthdata Login, ASF, S3), which the command line reports with exit code 4 when every
    failure is one.
    """

    name: str
    path: Path | None
    status: Literal["downloaded", "resumed", "skipped", "failed"]
    bytes: int = 0
    reason: str | None = None
    service: bool = False


def catalog_checksum(ref: GranuleRef) -> tuple[str, str] | None:
    """The catalog's checksum when it is usable: a known algorithm, not a placeholder of
    zeros (CMR records of some collections hold ``000…``).

    Examples
    --------
    >>> from opera_disp.product import DispProduct
    >>> n = "OPERA_L3_DISP-S1_IW_F40291_VV_20160705T005555Z_20160729T005559Z_v1.0_20250724T212204Z"
    >>> ref = GranuleRef(DispProduct.from_name(n), "x.nc", checksum=("md5", "0" * 32))
    >>> catalog_checksum(ref) is None
    True
    """
    if ref.checksum is None or set(ref.checksum[1]) <= {"0"}:
        return None
    algo, value = ref.checksum
    return (algo, value.lower()) if algo in hashlib.algorithms_available else None


class Hashes:
    """SHA-256 and the catalog's checksum of bytes as they are written."""

    def __init__(self, catalog: tuple[str, str] | None):
        self.catalog = catalog
        self.sha256 = hashlib.sha256()
        self.other = hashlib.new(catalog[0]) if catalog and catalog[0] != "sha256" else None
        self.size = 0

    def update(self, data: bytes | memoryview) -> None:
        """Add the next bytes."""
        self.sha256.update(data)
        if self.other is not None:
            self.other.update(data)
        self.size += len(data)

    def update_from(self, path: Path, upto: int | None = None) -> None:
        """Add the bytes of ``path`` (its first ``upto`` bytes)."""
        left = upto
        with open(path, "rb") as fh:
            while left is None or left > 0:
                data = fh.read(PIECE if left is None else min(PIECE, left))
                if not data:
                    break
                self.update(data)
                if left is not None:
                    left -= len(data)

    def catalog_mismatch(self) -> str | None:
        """Why the bytes do not match the catalog's checksum, or None."""
        if self.catalog is None:
            return None
        algo, want = self.catalog
        got = (self.other or self.sha256).hexdigest()
        return None if got == want else f"{algo} {got} differs from the catalog's {want}"


class Manifest:
    """The download folder's record of its complete files (``download-manifest.json``).

    Written atomically after every completed or failed download, by a read-merge-write
    under a lock on the folder (``flock`` of the folder itself), so two processes
    downloading into one folder never lose each other's records.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / MANIFEST_NAME
        self._lock = threading.Lock()
        self.files: dict[str, dict[str, Any]] = self._read().get("files", {})

    def _read(self) -> dict[str, Any]:
        """The manifest on disk ({} when there is none)."""
        if not self.path.exists():
            return {}
        try:
            doc = json.loads(read_document(self.path))
        except (OSError, ValueError, RecursionError, PlantedLink):
            doc = None
        if not isinstance(doc, dict) or doc.get("schema") != MANIFEST_SCHEMA or \
                not isinstance(doc.get("files", {}), dict) or \
                not isinstance(doc.get("failed", {}), dict):
            raise BadInput(f"{str(self.path)!r} is not an opera-disp download manifest; "
                           "move it away or choose another --output")
        files = {k: v for k, v in doc.get("files", {}).items() if _plain_name(k) and
                 isinstance(v, dict)}
        return {**doc, "files": files}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The manifest on disk, to change and write back, under the folder's lock."""
        with self._lock:
            fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                with contextlib.suppress(OSError):  # a file system without flock: this
                    fcntl.flock(fd, fcntl.LOCK_EX)  # process's own lock still holds
                doc = self._read() or {"schema": MANIFEST_SCHEMA}
                doc.setdefault("files", {})
                doc.setdefault("failed", {})
                yield doc
                write_json(self.path, doc)
                self.files = doc["files"]
            finally:
                os.close(fd)  # releases the lock

    def record(self, name: str, entry: dict[str, Any]) -> None:
        """Record ``name`` as complete (and no longer failed or partial)."""
        with self._locked() as doc:
            doc["files"][name] = entry
            doc["failed"].pop(name, None)
            doc.get("partial", {}).pop(name, None)
            if not doc.get("partial", True):
                doc.pop("partial")

    def fail(self, name: str, reason: str) -> None:
        """Record why ``name`` could not be downloaded."""
        with self._locked() as doc:
            doc["failed"][name] = {"reason": reason, "at": _now()}

    def partial(self, name: str) -> dict[str, Any] | None:
        """The server's validators when ``name``'s partial download started."""
        with self._lock:
            got = self._read().get("partial", {}).get(name)
        return got if isinstance(got, dict) else None

    def start(self, name: str, validators: dict[str, str]) -> None:
        """Remember the server's validators of a partial download (to resume it safely)."""
        if not validators:
            return
        with self._locked() as doc:
            doc.setdefault("partial", {})[name] = _validator_record(validators)


def _plain_name(name: object) -> bool:
    """A file name of the folder itself (no path), as the manifest may hold."""
    return isinstance(name, str) and bool(name) and "/" not in name and "\\" not in name \
        and name not in (".", "..") and not any(ord(c) < 32 for c in name)


def _now() -> str:
    return iso(datetime.now(UTC), timespec="seconds")


def _validator_record(validators: dict[str, str]) -> dict[str, str | None]:
    return {"etag": validators.get("ETag"), "last_modified": validators.get("Last-Modified")}


def _entry(ref: GranuleRef, hashes: Hashes, validators: dict[str, str]) -> dict[str, Any]:
    """A manifest record of a complete file."""
    checksum = catalog_checksum(ref)
    return {"bytes": hashes.size, "sha256": hashes.sha256.hexdigest(),
            **_validator_record(validators),
            "cmr_checksum": {"algorithm": checksum[0], "value": checksum[1]}
            if checksum else None,
            "source": public_url(ref.location), "completed": _now()}


def _judge_existing(path: Path, ref: GranuleRef, entry: dict[str, Any] | None,
                    remote_size: Callable[[], int]) -> tuple[str | None, bool, Hashes | None]:
    """Whether an existing file is complete: (reason it is not, whether it is only short
    and may be resumed, its hashes when read)."""
    size = path.stat().st_size
    want = entry.get("bytes") if entry else None
    if not isinstance(want, int):
        want = ref.size or remote_size()
    if size != want:
        return f"size {size} differs from the expected {want}", size < want, None
    if ref.size and size != ref.size:
        return f"size {size} differs from the catalog's {ref.size}", size < ref.size, None
    hashes = Hashes(catalog_checksum(ref))
    hashes.update_from(path)
    if entry and hashes.sha256.hexdigest() != entry.get("sha256"):
        return (f"sha256 differs from the manifest's {entry.get('sha256')} (damaged since "
                "it was downloaded)"), False, hashes
    return hashes.catalog_mismatch(), False, hashes


def download_one(ref: GranuleRef, outdir: Path, source: ByteSource,
                 progress: Callable[[int], object] | None = None,
                 manifest: Manifest | None = None) -> Downloaded:
    """Download (or resume, or verify and skip) one granule; errors become a ``failed``
    outcome, recorded in ``manifest`` when given."""
    target = outdir / ref.product.filename
    part = target.with_name(target.name + ".part")
    try:
        fresh = False
        if target.exists():
            entry = manifest.files.get(target.name) if manifest else None
            why, short, hashes = _judge_existing(target, ref, entry, lambda: source.size)
            if why is None:
                assert hashes is not None
                if manifest is not None and entry is None:
                    manifest.record(target.name, _entry(ref, hashes, {}))
                return Downloaded(ref.name, target, "skipped", 0)
            log.info("%s exists but is not complete (%s): fetching it again", target, why)
            if short:
                _take_over(target, part, source.size)
            else:
                fresh = True  # its bytes are wrong: nothing of it is kept
        result = _fetch(ref, target, part, source, progress, manifest, fresh=fresh)
        if result.status == "failed" and manifest is not None:
            manifest.fail(target.name, result.reason or "")
        return result
    except (OperaDispError, OSError) as exc:
        reason = one_line(exc)
        if manifest is not None:
            with contextlib.suppress(OSError, OperaDispError):
                manifest.fail(target.name, reason)
        return Downloaded(ref.name, None, "failed", 0, reason,
                          service=isinstance(exc, ServiceError))
    finally:
        source.close()


def _fetch(ref: GranuleRef, target: Path, part: Path, source: ByteSource,
           progress: Callable[[int], object] | None, manifest: Manifest | None, *,
           fresh: bool) -> Downloaded:
    """Download into ``part`` (resumed unless ``fresh``), verify, rename, record."""
    total = source.size
    validators: dict[str, str] = getattr(source, "validators", {})
    first = dict(validators)
    have = part.stat().st_size if part.exists() else 0
    if have and manifest is not None:
        began = manifest.partial(target.name)
        if fresh or have > total or (began and first and began != _validator_record(first)):
            if began and not fresh:
                log.info("%s changed on the server since its partial download began: "
                         "starting again", target.name)
            have = 0
    elif fresh or have > total:
        have = 0
    if not have:
        part.unlink(missing_ok=True)
        if manifest is not None:
            manifest.start(target.name, first)
    resumed = have > 0
    hashes = Hashes(catalog_checksum(ref))
    if have:
        hashes.update_from(part, have)
    with open(part, "r+b" if have else "wb") as fh:
        fh.truncate(have)
        fh.seek(have)
        while have < total:
            data = source.read_ranges([(have, min(PIECE, total - have))])[0]
            if first.get("ETag") and validators.get("ETag") not in (None, first["ETag"]):
                raise RemoteError(f"{ref.name} changed on the server during the download "
                                  f"(ETag {first['ETag']} became {validators['ETag']}); "
                                  "run it again")
            fh.write(data)
            hashes.update(data)
            have += len(data)
            if progress:
                progress(len(data))
        fh.flush()
        os.fsync(fh.fileno())
    reason = _verify(ref, hashes, total)
    if reason is not None and resumed:
        # The bytes kept from before may be what is wrong: once more, from the start.
        log.info("%s: %s after resuming: downloading it again from the start", ref.name,
                 reason)
        part.unlink(missing_ok=True)
        return _fetch(ref, target, part, source, progress, manifest, fresh=True)
    if reason is not None:
        part.unlink(missing_ok=True)
        return Downloaded(ref.name, None, "failed", have, f"{ref.name}: {reason}")
    os.replace(part, target)
    if manifest is not None:
        manifest.record(target.name, _entry(ref, hashes, validators))
    return Downloaded(ref.name, target, "resumed" if resumed else "downloaded", have)


def _verify(ref: GranuleRef, hashes: Hashes, remote_size: int) -> str | None:
    """None if the bytes match the catalog and the remote size, else the reason."""
    if ref.size and hashes.size != ref.size:
        return f"size {hashes.size} differs from the catalog's {ref.size}"
    if hashes.size != remote_size:
        return f"size {hashes.size} differs from the remote file's {remote_size}"
    return hashes.catalog_mismatch()


def _take_over(target: Path, part: Path, size: int) -> None:
    """An incomplete ``target`` shorter than the remote ``size`` becomes the part to resume
    (unless a longer part exists). Otherwise it stays until a verified download replaces it.
    """
    have = target.stat().st_size
    if have < size and (not part.exists() or part.stat().st_size < have):
        os.replace(target, part)


def download(refs: list[GranuleRef], outdir: Path, *, open_source: Callable[[GranuleRef],
             ByteSource], workers: int = 4, show_progress: bool | None = None
             ) -> list[Downloaded]:
    """Download granules in parallel with a byte progress bar, recorded in the folder's
    manifest."""
    from ..progress import bar as progress_bar

    outdir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(outdir)
    total = sum(r.size or 0 for r in refs)
    bar = progress_bar(show_progress, total=total or None, unit="B", unit_scale=True,
                       desc="download")
    results = []
    with ThreadPoolExecutor(workers) as pool:
        futures = {pool.submit(_one, r, outdir, open_source, bar.update, manifest): r
                   for r in refs}
        for fut in as_completed(futures):
            res = fut.result()
            results.append(res)
            if res.status == "failed":
                log.warning("download of %s failed: %s", res.name, res.reason)
    bar.close()
    order = {r.name: i for i, r in enumerate(refs)}
    return sorted(results, key=lambda d: order[d.name])


def _one(ref: GranuleRef, outdir: Path, open_source: Callable[[GranuleRef], ByteSource],
         progress: Callable[[int], object], manifest: Manifest) -> Downloaded:
    """One granule, its source opened in its own thread (opening may fail too)."""
    try:
        source = open_source(ref)
    except (OperaDispError, OSError) as exc:
        reason = one_line(exc)
        with contextlib.suppress(OSError, OperaDispError):
            manifest.fail(ref.product.filename, reason)
        return Downloaded(ref.name, None, "failed", 0, reason,
                          service=isinstance(exc, ServiceError))
    return download_one(ref, outdir, source, progress, manifest)


@dataclass(frozen=True)
class Verified:
    """What :func:`verify_folder` found: the recorded files checked and those that match,
    one line per bad file (``name: reason``), failed downloads and ``.part`` files."""

    checked: int
    ok: int
    bad: list[str]
    failed: int
    partial: int


def verify_folder(folder: Path) -> Verified:
    """Check every file of a download folder against its manifest, without any network.

    Each file the manifest lists is re-hashed (SHA-256, and CMR's checksum when recorded)
    and its size compared; a granule file (``.nc``) the manifest does not list is bad too
    (nothing vouches for it). ``failed`` counts the downloads the manifest records as
    failed, ``partial`` the ``.part`` files left.

    Raises
    ------
    BadInput
        When the folder does not exist or holds no manifest.
    """
    if not folder.is_dir():
        raise BadInput(f"download folder {str(folder)!r} does not exist; give the folder "
                       "a download wrote into")
    manifest = Manifest(folder)
    if not manifest.path.exists():
        raise BadInput(f"download folder {str(folder)!r} has no {MANIFEST_NAME}; only a "
                       "folder opera-disp downloaded into can be verified")
    doc = manifest._read()
    bad = []
    for name, entry in sorted(manifest.files.items()):
        why = _check_entry(folder / name, entry)
        if why is not None:
            bad.append(f"{name}: {why}")
    ok = len(manifest.files) - len(bad)
    for p in sorted(folder.glob("*.nc")):
        if p.name not in manifest.files:
            bad.append(f"{p.name}: not in {MANIFEST_NAME} (nothing vouches for its bytes)")
    failed = doc.get("failed", {})
    return Verified(len(manifest.files), ok, bad,
                    sum(1 for n in failed if n not in manifest.files),
                    len(list(folder.glob("*.nc.part"))))


def _check_entry(path: Path, entry: dict[str, Any]) -> str | None:
    """Why ``path`` does not match its manifest record, or None."""
    if path.is_symlink() or not path.is_file():
        return "missing" if not os.path.lexists(path) else "not a regular file"
    size = path.stat().st_size
    if size != entry.get("bytes"):
        return f"size {size} differs from the recorded {entry.get('bytes')}"
    ck = entry.get("cmr_checksum")
    catalog = (str(ck.get("algorithm")), str(ck.get("value"))) if isinstance(ck, dict) else None
    if catalog is not None and catalog[0] not in hashlib.algorithms_available:
        catalog = None
    hashes = Hashes(catalog)
    hashes.update_from(path)
    if hashes.sha256.hexdigest() != entry.get("sha256"):
        return f"sha256 {hashes.sha256.hexdigest()} differs from the recorded {entry.get('sha256')}"
    return hashes.catalog_mismatch()
