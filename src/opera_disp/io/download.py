"""Download whole granules: parallel, resumable, verified, atomic.

A partial download lives next to its target as ``<name>.nc.part`` and is resumed with Range
requests; the file is checked against the catalog's size and checksum before it is renamed
into place. An existing file is skipped only when it is complete: its size matches the
catalog's (or, when the catalog does not know it, the remote file's) and so does the
catalog's checksum when known. A shorter one is resumed from where it stops, anything
else is downloaded again; either way the result is verified.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..catalog.refs import GranuleRef
from ..errors import OperaDispError, ServiceError, one_line
from .source import ByteSource

log = logging.getLogger(__name__)
PIECE = 8 * 1024 * 1024


@dataclass(frozen=True)
class Downloaded:
    """Outcome of one download.

    ``status`` is ``downloaded``, ``resumed``, ``skipped`` or ``failed``; ``service`` marks
    a failure caused by a service (Earthdata Login, ASF, S3), which the command line
    reports with exit code 4 when every failure is one.
    """

    name: str
    path: Path | None
    status: Literal["downloaded", "resumed", "skipped", "failed"]
    bytes: int = 0
    reason: str | None = None
    service: bool = False


def _verify(path: Path, ref: GranuleRef, remote_size: int | None = None) -> str | None:
    """None if the file matches the catalog (and ``remote_size``, if given), else the reason."""
    size = path.stat().st_size
    if ref.size and size != ref.size:
        return f"size {size} differs from the catalog's {ref.size}"
    if remote_size is not None and size != remote_size:
        return f"size {size} differs from the remote file's {remote_size}"
    if ref.checksum and set(ref.checksum[1]) != {"0"}:
        algo, want = ref.checksum
        if algo in hashlib.algorithms_available:
            with open(path, "rb") as fh:
                got = hashlib.file_digest(fh, algo).hexdigest()
            if got.lower() != want.lower():
                return f"{algo} {got} differs from the catalog's {want}"
    return None


def _take_over(target: Path, part: Path, size: int) -> None:
    """An incomplete ``target`` shorter than the remote ``size`` becomes the part to resume
    (unless a longer part exists). Otherwise it stays until a verified download replaces it.
    """
    have = target.stat().st_size
    if have < size and (not part.exists() or part.stat().st_size < have):
        os.replace(target, part)


def download_one(ref: GranuleRef, outdir: Path, source: ByteSource,
                 progress: Callable[[int], object] | None = None) -> Downloaded:
    """Download (or resume, or skip) one granule; errors become a ``failed`` outcome."""
    target = outdir / ref.product.filename
    part = target.with_name(target.name + ".part")
    try:
        if target.exists():
            # Without the catalog's size, the remote file's size judges completeness.
            why = _verify(target, ref, None if ref.size else source.size)
            if why is None:
                return Downloaded(ref.name, target, "skipped")
            _take_over(target, part, source.size)
            log.info("%s exists but is not complete (%s): fetching it again", target, why)
        total = source.size
        have = part.stat().st_size if part.exists() else 0
        if have > total:
            part.unlink()
            have = 0
        status: Literal["resumed", "downloaded"] = "resumed" if have else "downloaded"
        with open(part, "ab") as fh:
            while have < total:
                n = min(PIECE, total - have)
                data = source.read_ranges([(have, n)])[0]
                fh.write(data)
                have += len(data)
                if progress:
                    progress(len(data))
            fh.flush()
            os.fsync(fh.fileno())
        reason = _verify(part, ref, total)
        if reason is not None:
            part.unlink(missing_ok=True)
            return Downloaded(ref.name, None, "failed", have, f"{ref.name}: {reason}")
        os.replace(part, target)
        return Downloaded(ref.name, target, status, have)
    except (OperaDispError, OSError) as exc:
        return Downloaded(ref.name, None, "failed", 0, one_line(exc),
                          service=isinstance(exc, ServiceError))
    finally:
        source.close()


def download(refs: list[GranuleRef], outdir: Path, *, open_source: Callable[[GranuleRef],
             ByteSource], workers: int = 4, show_progress: bool | None = None
             ) -> list[Downloaded]:
    """Download granules in parallel with a byte progress bar."""
    from ..progress import bar as progress_bar

    outdir.mkdir(parents=True, exist_ok=True)
    total = sum(r.size or 0 for r in refs)
    bar = progress_bar(show_progress, total=total or None, unit="B", unit_scale=True,
                       desc="download")
    results = []
    with ThreadPoolExecutor(workers) as pool:
        futures = {pool.submit(download_one, r, outdir, open_source(r), bar.update): r
                   for r in refs}
        for fut in as_completed(futures):
            res = fut.result()
            results.append(res)
            if res.status == "failed":
                log.warning("download of %s failed: %s", res.name, res.reason)
    bar.close()
    order = {r.name: i for i, r in enumerate(refs)}
    return sorted(results, key=lambda d: order[d.name])
