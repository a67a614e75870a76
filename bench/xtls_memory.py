"""
XTLS tunnel throughput in memory: two XTLSHandlers joined by the in-test
router (every stanza serialised and parsed again), 1 MiB messages one way.
Run by hand: python bench/xtls_memory.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.words.xish import domish  # noqa: E402

from tests.xtlshelpers import Pair  # noqa: E402

PAYLOAD = 1024 * 1024


def run(window: int, chunkSize: int, count: int) -> tuple[float, int]:
    config = {"window": window, "chunkSize": chunkSize, "maxStanzaSize": 2 * PAYLOAD}
    pair = Pair(aliceConfig=config, bobConfig=config)
    d = pair.alice.open(pair.aliceJID, pair.bobJID)
    pair.router.flush()
    tunnels: list[object] = []
    d.addCallback(tunnels.append)
    [tunnel] = tunnels
    received: list[domish.Element] = []
    pair.bobEnd.addObserver("/message", received.append)
    stanza = domish.Element((None, "message"))
    stanza.addElement("body", content="x" * PAYLOAD)
    start = time.perf_counter()
    stanzas = 0
    for _ in range(count):
        tunnel.send(stanza)  # type: ignore[attr-defined]
        stanzas += pair.router.flush()
    elapsed = time.perf_counter() - start
    assert len(received) == count
    return count * PAYLOAD / elapsed / 1e6, stanzas // count


def main() -> None:
    print(f"{'window':>6} {'chunk':>7} {'MB/s':>8} {'IQs/MiB':>8}")
    for window, chunk in [(1, 4096), (8, 4096), (8, 16384), (8, 32768), (32, 32768), (8, 65536)]:
        rate, iqs = run(window, chunk, 8)
        print(f"{window:>6} {chunk:>7} {rate:>8.1f} {iqs:>8}")


if __name__ == "__main__":
    main()
