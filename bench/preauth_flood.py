"""
A component negotiating while idle connections flood the router (issue
#16, item 3): the router (bench/_router_ours.py, its default limits: 1,000
sessions) runs in its own process; this process opens C{--idle}
connections that send nothing from C{--sources} loopback addresses
(127.0.0.2, then 127.0.1.1, 127.0.1.2, ...), 25 at a time, and holds
them; then a component from 127.0.0.3 does the whole negotiation (TCP,
STARTTLS with TLS 1.3, SCRAM-SHA-256, bind of one name).

    python bench/preauth_flood.py [--idle 1000] [--sources 1] [--runs 5]

Reported per run, in a fresh router process: the component's negotiation
time from TCP connect to its name bound, alone first, then with the idle
connections held (or the stream error that refused it); the idle
connections the router kept, closed or refused; the router's RSS growth per
idle connection it kept, and its CPU for taking the flood. No timing is
asserted anywhere: tests/test_router_admission.py checks the behaviour,
this measures it.

Run by hand, never by the test suite. Loopback only, bounded in count and
time (every negotiation has C{TIMEOUT} seconds).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
from _idle import IdlePool, ensureFileLimit, runAll  # noqa: E402

from twisted.internet import defer, reactor, task  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint  # noqa: E402
from twisted.words.xish.xmlstream import STREAM_END_EVENT, STREAM_ERROR_EVENT  # noqa: E402

DOMAIN = "example.net"
IDENTITY = "comp.example.net"
SECRET = "the flood benchmark's component secret"
MECHANISM = "SCRAM-SHA-256"
LEGITIMATE = "127.0.0.3"
#: Seconds one negotiation may take.
TIMEOUT = 30.0


def sourceAddresses(count: int) -> list[str]:
    addresses = ["127.0.0.2"] + ["127.0.1.%d" % (i,) for i in range(1, 255)]
    if count > len(addresses):
        raise SystemExit("--sources: at most %d" % (len(addresses),))
    return addresses[:count]


@defer.inlineCallbacks
def negotiate(port: int, trust: Any, serial: int) -> Any:
    """
    One component negotiation from 127.0.0.3, then a clean close.

    @return: (milliseconds or None, the stream error or failure or None).
    """
    from xmppcomp.stream.bind import BindInitiator
    from xmppcomp.stream.initiating import InitiatingFactory, InitiatingPolicy

    name = "n%d.%s" % (serial, IDENTITY)
    binder = BindInitiator([name])
    factory = InitiatingFactory(
        InitiatingPolicy(DOMAIN, IDENTITY, SECRET, trust=trust, mechanisms=[MECHANISM], features=binder.features()),
        reactor,
    )
    errors: list[str] = []
    start = time.perf_counter()
    endpoint = TCP4ClientEndpoint(reactor, _common.LOOPBACK, port, timeout=TIMEOUT, bindAddress=(LEGITIMATE, 0))
    try:
        xs = yield endpoint.connect(factory).addTimeout(TIMEOUT, reactor)
    except Exception as e:
        return None, "connect: %s" % (type(e).__name__,)
    ended: defer.Deferred[None] = defer.Deferred()
    xs.addObserver(STREAM_END_EVENT, lambda reason: ended.called or ended.callback(None))
    xs.addObserver(STREAM_ERROR_EVENT, lambda f: errors.append(getattr(f.value, "condition", str(f.value))))
    try:
        yield xs.authenticator.negotiated.addTimeout(TIMEOUT, reactor)
        elapsed = (time.perf_counter() - start) * 1000
        assert binder.bound == [name], binder.bound
        outcome: tuple[float | None, str | None] = (elapsed, None)
    except Exception as e:
        condition = getattr(e, "condition", None)
        outcome = (None, errors[0] if errors else condition or "%s: %s" % (type(e).__name__, e))
    if xs.transport is not None and xs.transport.connected:
        xs.transport.loseConnection()
    yield ended.addTimeout(TIMEOUT, reactor)
    return outcome


@defer.inlineCallbacks
def oneRun(arguments: argparse.Namespace, serial: int) -> Any:
    directory = tempfile.mkdtemp(prefix="bench-preauth-")
    files = _common.RouterFiles(directory, DOMAIN, {IDENTITY: SECRET}, {})
    trust = files.trust()
    router, info = _common.startOurRouter(directory, files, IDENTITY, 1000)
    pid = info["pid"]
    port = info["xep0225"]
    pools: list[IdlePool] = []
    try:
        # The first negotiation of a process pays SCRAM's PBKDF2 (then
        # remembered, as a reconnecting component does): not measured.
        yield negotiate(port, trust, serial * 10)
        alone, aloneError = yield negotiate(port, trust, serial * 10 + 1)
        rssBefore = _common.rssBytes(pid)
        cpuBefore = _common.cpuSeconds(pid)
        sources = sourceAddresses(arguments.sources)
        perSource = [arguments.idle // len(sources) + (1 if i < arguments.idle % len(sources) else 0) for i in range(len(sources))]
        for source, count in zip(sources, perSource):
            pool = IdlePool(reactor, _common.LOOPBACK, port, source)
            pools.append(pool)
            yield pool.open(count, batch=25)
        # The router takes the last ones out of its accept queue.
        yield task.deferLater(reactor, arguments.settle, lambda: None)
        cpu = _common.cpuSeconds(pid) - cpuBefore
        held = sum(p.held for p in pools)
        rss = _common.rssBytes(pid) - rssBefore
        loaded, loadedError = yield negotiate(port, trust, serial * 10 + 2)
        return {
            "alone": alone,
            "aloneError": aloneError,
            "loaded": loaded,
            "loadedError": loadedError,
            "connected": sum(p.connected for p in pools),
            "failed": sum(p.failed for p in pools),
            "closedByServer": sum(p.closedByServer for p in pools),
            "bytesFromServer": sum(p.bytesReceived for p in pools),
            "held": held,
            "heldAfter": sum(p.held for p in pools),
            "rssPerHeldKiB": rss / 1024 / max(held, 1),
            "routerCpuMs": cpu * 1000,
        }
    finally:
        for pool in pools:
            pool.close()
        _common.stop(router)
        shutil.rmtree(directory, ignore_errors=True)


def ms(value: float | None, error: str | None) -> str:
    return "%.1f" % (value,) if value is not None else "refused: %s" % (error,)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--sources", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--settle", type=float, default=0.5, help="seconds between the last idle connection and the component")
    arguments = parser.parse_args()
    ensureFileLimit(arguments.idle, 200, 50)
    from xmppcomp.logs import LogLevelFilter

    LogLevelFilter("info").install()
    results = runAll("preauth_flood", arguments, oneRun)
    print(
        "\nComponent negotiation (TCP, STARTTLS, %s, bind) from %s with %d idle connections from %d source(s) held open\n"
        % (MECHANISM, LEGITIMATE, arguments.idle, arguments.sources)
    )
    print(
        _common.table(
            ["run", "alone ms", "with the idle connections ms", "idle kept", "closed by the router (refused or evicted)", "bytes to them", "router RSS KiB per kept", "router CPU ms"],
            [
                [
                    str(i + 1),
                    ms(r["alone"], r["aloneError"]),
                    ms(r["loaded"], r["loadedError"]),
                    str(r["held"]),
                    str(r["failed"] + r["closedByServer"]),
                    str(r["bytesFromServer"]),
                    "%.1f" % (r["rssPerHeldKiB"],),
                    "%.0f" % (r["routerCpuMs"],),
                ]
                for i, r in enumerate(results)
            ],
        )
    )
    loaded = [r["loaded"] for r in results if r["loaded"] is not None]
    alone = [r["alone"] for r in results if r["alone"] is not None]
    if loaded and alone:
        print(
            "\nMedian: %.1f ms alone, %.1f ms with the idle connections held (%d of %d runs negotiated)."
            % (statistics.median(alone), statistics.median(loaded), len(loaded), len(results))
        )
    else:
        print("\nThe component was refused in every run under the flood.")
    _common.emitJSON("preauth_flood", {"arguments": vars(arguments), "runs": results})


if __name__ == "__main__":
    main()
