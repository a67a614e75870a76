"""
Negotiations the router sustains: C{--concurrency} components connect
again and again, each doing the full connect-to-bound (TCP, STARTTLS with
TLS 1.3, SCRAM-SHA-256, bind of 2 names), then closing. The router runs in
its own process (bench/_router_ours.py); the components in this one.

Reported per run: completed negotiations per second, p50 and p99 latency
from TCP connect to both names bound, router CPU ms per negotiation (its
closing included) and the router's CPU-bound capacity (1 / that), and
the load process's CPU per negotiation.

The components use xmppcomp's SCRAM client as it is, which runs PBKDF2
once per negotiation (scramp's public API takes no remembered salted
password; issue 17 removed the patch of scramp that cached it).

    python bench/negotiation_load.py [--runs 5] [--duration 3] [--concurrency 8]

Run by hand, never by the test suite. Loopback only, bounded in time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
from _common import LOOPBACK  # noqa: E402

from twisted.internet import defer, reactor  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint  # noqa: E402
from twisted.words.xish.xmlstream import STREAM_END_EVENT  # noqa: E402

DOMAIN = "example.net"
IDENTITY = "load.example.net"
SECRET = "the load generator's benchmark secret"
MECHANISM = "SCRAM-SHA-256"
#: Seconds one negotiation may take before the run fails.
TIMEOUT = 30.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(fraction * (len(ordered) - 1)))))
    return ordered[index]


class Load:
    def __init__(self, port: int, files: _common.RouterFiles) -> None:
        self.port = port
        self.trust = files.trust()
        self.serial = 0

    @defer.inlineCallbacks
    def once(self) -> Any:
        from xmppcomp.stream.bind import BindInitiator
        from xmppcomp.stream.initiating import InitiatingFactory, InitiatingPolicy

        self.serial += 1
        names = ["a%d.%s" % (self.serial, IDENTITY), "b%d.%s" % (self.serial, IDENTITY)]
        binder = BindInitiator(names)
        factory = InitiatingFactory(
            InitiatingPolicy(
                DOMAIN, IDENTITY, SECRET, trust=self.trust, mechanisms=[MECHANISM], features=binder.features()
            ),
            reactor,
        )
        start = time.perf_counter()
        xs = yield TCP4ClientEndpoint(reactor, LOOPBACK, self.port).connect(factory)
        ended: defer.Deferred[None] = defer.Deferred()
        xs.addObserver(STREAM_END_EVENT, lambda reason: ended.called or ended.callback(None))
        result = yield xs.authenticator.negotiated.addTimeout(TIMEOUT, reactor)
        elapsed = time.perf_counter() - start
        assert binder.bound == names, (binder.bound, names)
        assert result.mechanism == MECHANISM, result.mechanism
        xs.closeStream()
        yield ended
        return elapsed

    @defer.inlineCallbacks
    def run(self, pid: int, concurrency: int, duration: float) -> Any:
        latencies: list[float] = []
        routerBefore = _common.cpuSeconds(pid)
        loadBefore = _common.ownCpuSeconds()
        start = time.perf_counter()
        deadline = start + duration

        @defer.inlineCallbacks
        def worker() -> Any:
            while time.perf_counter() < deadline:
                latencies.append((yield self.once()))

        yield defer.gatherResults([worker() for _ in range(concurrency)], consumeErrors=True)
        elapsed = time.perf_counter() - start
        count = len(latencies)
        routerCpu = _common.cpuSeconds(pid) - routerBefore
        loadCpu = _common.ownCpuSeconds() - loadBefore
        return {
            "count": count,
            "rate": count / elapsed,
            "p50ms": percentile(latencies, 0.50) * 1000,
            "p99ms": percentile(latencies, 0.99) * 1000,
            "routerMs": routerCpu / count * 1000,
            "capacity": count / routerCpu if routerCpu else float("inf"),
            "loadMs": loadCpu / count * 1000,
        }


def asComponentProcess() -> None:
    """
    Set this process up as C{twistd xmppcomp} sets up a component's: the
    load stands for such components. Its collector settings
    (L{xmppcomp.tap.PluginProcess}), and its log level
    (C{--log-level}, C{info} by default: debug events are dropped where
    they are made).
    """
    import gc

    from xmppcomp.logs import DEFAULT_LOG_LEVEL, LogLevelFilter
    from xmppcomp.tap import GC_THRESHOLDS

    gc.set_threshold(*GC_THRESHOLDS)
    LogLevelFilter(DEFAULT_LOG_LEVEL).install()


def startRouter(directory: str, files: _common.RouterFiles, script: str, *extra: str) -> tuple[Any, dict[str, Any]]:
    """
    Start the router of this benchmark (C{script}: C{_router_ours.py}, or
    one that runs it with hooks, given the spec's path first and C{extra}
    after).

    @return: the process and the ports it printed.
    """
    return _common.startOurRouter(directory, files, IDENTITY, 10000, script, *extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--concurrency", default="1,8", help="comma-separated; one row each")
    parser.add_argument("--cprofile", default=None, help="write a cProfile of the router here")
    arguments = parser.parse_args()
    asComponentProcess()
    directory = tempfile.mkdtemp(prefix="xmppcomp-bench-negotiation-")
    files = _common.RouterFiles(directory, DOMAIN, {IDENTITY: SECRET}, {})
    extra = ["--cprofile", arguments.cprofile] if arguments.cprofile else []
    process, info = startRouter(directory, files, "_router_ours.py", *extra)
    outcome: dict[str, Any] = {}

    levels = [int(c) for c in arguments.concurrency.split(",")]

    @defer.inlineCallbacks
    def go() -> Any:
        try:
            load = Load(info["xep0225"], files)
            yield load.run(process.pid, max(levels), 1.0)  # warm-up
            outcome["levels"] = {}
            for level in levels:
                runs = outcome["levels"][level] = []
                for _ in range(arguments.runs):
                    runs.append((yield load.run(process.pid, level, arguments.duration)))
        except Exception as e:
            outcome["error"] = repr(e)
        finally:
            reactor.stop()

    try:
        _common.runWithRouter(process, go)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if "error" in outcome or "levels" not in outcome:
        raise SystemExit("negotiation benchmark failed: %s" % (outcome.get("error"),))
    keys = ("rate", "p50ms", "p99ms", "routerMs", "capacity", "loadMs")
    rows = []
    data: dict[str, Any] = {"mechanism": MECHANISM, "duration": arguments.duration, "runs": arguments.runs, "levels": {}}
    for level, runs in outcome["levels"].items():
        summary = {key: _common.summary([r[key] for r in runs]) for key in keys}
        data["levels"][str(level)] = {**summary, "raw": runs}
        rows.append([str(level)] + [_common.fmt(summary[k], 0 if k in ("rate", "capacity") else 2) for k in keys])
    print(
        "## Negotiation: connect to bound (TCP, TLS 1.3, %s, 2 names), %g s per run, %d runs; median (min–max)\n"
        % (MECHANISM, arguments.duration, arguments.runs)
    )
    print(
        _common.table(
            ["concurrent", "negotiations/s", "p50 ms", "p99 ms", "router CPU ms/negotiation", "router capacity /s", "load CPU ms/negotiation"],
            rows,
        )
    )
    print(
        "\nRouter capacity is 1 / its CPU per negotiation (closing included): the rate one router core"
        " sustains. The measured rate is bounded by the load process, which needs more CPU per"
        " negotiation than the router, on the other core."
    )
    _common.emitJSON("negotiation", data)


if __name__ == "__main__":
    main()
