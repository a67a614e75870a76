"""
XTLS throughput through the router: two components (alpha, beta) log in
to a RouterService on 127.0.0.1 with STARTTLS and SCRAM; alpha opens a
tunnel to beta and sends 1 MiB messages through it. Next to it, in the
same process and run, the ceiling: the same XTLS code between two handlers
joined by the in-memory router of the tests (TLS over memory BIOs, records
in base64 in XML, every stanza serialised and parsed once), from
bench/xtls_memory.py.

    python bench/xtls_router.py [--runs N] [--messages M] [--profile FILE]

Run by hand, never by the test suite; it takes well under a minute. Each
run sends M messages of 1 MiB and times from the first send to the last
message handed to beta's handlers (one way), or to both ends' handlers
(both ways, M each way at once). It also reports the highest rate of
stanzas one component session sent the router in any run, against the
router's per-session limit (RouterLimits.maxStanzasPerSecond, 5000 by
default), which closes the session when exceeded.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from twisted.internet import defer, task  # noqa: E402
from twisted.words.xish import domish  # noqa: E402

import xtls_memory  # noqa: E402
from tests.test_xtls_router import INNER_LIMIT, Deployment, Member, within  # noqa: E402
from xmppcomp.config import RouterLimits  # noqa: E402
from xmppcomp.xtls import XTLSConfiguration  # noqa: E402

PAYLOAD = xtls_memory.PAYLOAD  # 1 MiB
WINDOW = 8
#: The default, as a deployment has it.
CHUNK = XTLSConfiguration().chunkSize
#: The router's default rate limit would end a session running near the
#: ceiling; the benchmark measures the tunnel, so it lifts the limit and
#: reports the rates instead.
LIMITS = RouterLimits(maxStanzasPerSecond=10**9)
DEFAULT_RATE_LIMIT = RouterLimits().maxStanzasPerSecond


def body() -> domish.Element:
    stanza = domish.Element((None, "message"))
    stanza.addElement("body", content="x" * PAYLOAD)
    return stanza


async def timedRun(
    alpha: Member, beta: Member, tunnels: tuple[Any, Any], messages: int, bothWays: bool,
    routed: Counter[str],
) -> tuple[float, float]:
    """
    One run: C{messages} of 1 MiB from alpha to beta (and from beta to
    alpha at the same time if C{bothWays}).

    @return: MB/s per direction, and the highest stanzas/s of one session.
    """
    alphaTunnel, betaTunnel = tunnels
    atBeta = len(beta.inbox.messages) + messages
    atAlpha = len(alpha.inbox.messages) + (messages if bothWays else 0)
    before = Counter(routed)
    stanza = body()
    start = time.perf_counter()
    for _ in range(messages):
        alphaTunnel.send(stanza)
        if bothWays:
            betaTunnel.send(stanza)
    await within(
        defer.gatherResults([beta.inbox.waitFor(atBeta), alpha.inbox.waitFor(atAlpha)]), 60
    )
    elapsed = time.perf_counter() - start
    await within(defer.gatherResults([alphaTunnel.whenDrained(), betaTunnel.whenDrained()]))
    # Drop what the inbox keeps: 1 MiB bodies add up.
    for member in (alpha, beta):
        del member.inbox.messages[:]
        del member.inbox.dataIQs[:]
    sent = Counter(routed) - before
    return messages * PAYLOAD / elapsed / 1e6, max(sent.values()) / elapsed


def stats(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


async def routerRuns(reactor: Any, runs: int, messages: int, profile: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        deployment = Deployment(directory, limits=LIMITS, clock=reactor)
        # All of a run's messages are queued at once: room for them.
        overrides = {
            "window": WINDOW,
            "chunkSize": CHUNK,
            "maxStanzaSize": INNER_LIMIT,
            "maxQueuedBytes": 2 * messages * PAYLOAD,
        }
        try:
            alpha, beta = await deployment.start(alpha=overrides, beta=overrides)
            routed = deployment.routed
            alphaTunnel = await within(alpha.xtls.open(alpha.jid, beta.jid))
            betaTunnel, _ = await within(beta.events.next("opened"))
            tunnels = (alphaTunnel, betaTunnel)
            # Warm up (first records, allocations), not counted.
            await timedRun(alpha, beta, tunnels, 1, False, routed)
            results: dict[str, Any] = {}
            profiler = cProfile.Profile() if profile else None
            for label, bothWays in (("one way", False), ("both ways", True)):
                rates, stanzaRates = [], []
                for _ in range(runs):
                    if profiler is not None and not bothWays:
                        profiler.enable()
                    rate, perSession = await timedRun(
                        alpha, beta, tunnels, messages, bothWays, routed
                    )
                    if profiler is not None:
                        profiler.disable()
                    rates.append(rate)
                    stanzaRates.append(perSession)
                results[label] = (rates, max(stanzaRates))
            if profiler is not None and profile is not None:
                profiler.dump_stats(profile)
            await within(alphaTunnel.close())
            return results
        finally:
            await deployment.stop()


def memoryRuns(runs: int, messages: int) -> list[float]:
    return [xtls_memory.run(WINDOW, CHUNK, messages)[0] for _ in range(runs)]


async def main(reactor: Any, runs: int, messages: int, profile: str | None) -> None:
    began = time.perf_counter()
    ceiling = memoryRuns(runs, messages)
    routed = await routerRuns(reactor, runs, messages, profile)
    ceilingMedian = statistics.median(ceiling)
    print(
        f"XTLS, 1 MiB messages, window {WINDOW}, chunk {CHUNK} B; "
        f"{runs} runs of {messages} messages each; MB = 10^6 bytes of payload\n"
    )
    print("| path | MB/s median | min | max | ratio to ceiling (median) | peak stanzas/s of one session |")
    print("|---|---:|---:|---:|---:|---:|")
    rows: list[tuple[str, list[float], str]] = [
        ("memory BIOs, base64 in XML, no sockets (ceiling)", ceiling, "n/a"),
    ]
    for label, (rates, peak) in routed.items():
        rows.append(
            (f"router over loopback TCP+TLS+SCRAM, {label} (per direction)", rates, f"{peak:,.0f}")
        )
    for label, values, peak in rows:
        median, low, high = stats(values)
        print(
            f"| {label} | {median:.1f} | {low:.1f} | {high:.1f} | "
            f"{median / ceilingMedian:.2f} | {peak} |"
        )
    import _common

    _common.emitJSON(
        "xtls_router",
        {
            "ceilingMBps": _common.summary(ceiling),
            "paths": {
                label: {"MBps": _common.summary(rates), "fractionOfCeiling": statistics.median(rates) / ceilingMedian}
                for label, (rates, peak) in routed.items()
            },
        },
    )
    print(
        f"\nrouter's default per-session limit: {DEFAULT_RATE_LIMIT} stanzas/s "
        f"(lifted for this benchmark); total time {time.perf_counter() - began:.1f} s"
    )
    if profile:
        print(f"\nprofile of the one-way router runs (both components and the router, one process): {profile}")
        pstats.Stats(profile).sort_stats("tottime").print_stats(15)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--messages", type=int, default=8)
    parser.add_argument("--profile", metavar="FILE", default=None)
    return parser.parse_args()


if __name__ == "__main__":
    options = parse()
    run: Callable[..., Any] = lambda reactor: defer.Deferred.fromCoroutine(
        main(reactor, options.runs, options.messages, options.profile)
    )
    task.react(run)
