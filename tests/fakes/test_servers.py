"""The fake range server's shared-link bandwidth limit (for the benchmarks)."""

from __future__ import annotations

import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .servers import Server, ServerState


def _get(url: str, first: int, last: int) -> bytes:
    req = urllib.request.Request(url, headers={"Range": f"bytes={first}-{last}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        body: bytes = r.read()
    return body


def test_bandwidth_is_shared_by_all_connections(tmp_path: Path) -> None:
    blob = bytes(range(256)) * 4096 * 2  # 2 MiB
    (tmp_path / "f.bin").write_bytes(blob)
    rate = 4e6  # bytes/s
    state = ServerState(files={"f.bin": tmp_path / "f.bin"}, bandwidth=rate)
    srv = Server(state).start()
    try:
        url = f"{srv.url}/plain/f.bin"
        t0 = time.monotonic()
        assert _get(url, 0, 999_999) == blob[:1_000_000]
        one = time.monotonic() - t0
        assert one >= 1e6 / rate * 0.95
        # Four connections at once share the one link: 4 MB take >= 1 s, not 0.25 s.
        t0 = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            parts = list(pool.map(lambda k: _get(url, k * 250_000, k * 250_000 + 999_999),
                                  range(4)))
        four = time.monotonic() - t0
        assert [len(p) for p in parts] == [1_000_000] * 4
        assert parts[3] == blob[750_000:1_750_000]
        assert four >= 4e6 / rate * 0.95
        # Without a limit the same transfer is quick (the limit is what made it slow).
        state.bandwidth = 0.0
        t0 = time.monotonic()
        _get(url, 0, 999_999)
        assert time.monotonic() - t0 < one
    finally:
        srv.shutdown()
