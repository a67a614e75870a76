"""
Router memory per idle component session: a fresh router process (bench/
_router_ours.py) per run; a warm-up of 20 sessions opened and closed; its
RSS; then 1,000 XEP-0225 sessions (TCP, STARTTLS with TLS 1.3,
SCRAM-SHA-256, one name bound each) opened from this process and left
idle for a second; RSS again. Reported: (RSS after - RSS before) / 1,000.

    python bench/memory.py [--runs 5] [--sessions 1000]

Run by hand, never by the test suite. Loopback only, bounded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
from _common import LOOPBACK  # noqa: E402
from negotiation_load import DOMAIN, IDENTITY, SECRET  # noqa: E402

from twisted.internet import defer, reactor, task  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint  # noqa: E402

CONCURRENCY = 16
TIMEOUT = 30.0


class Sessions:
    def __init__(self, port: int, files: _common.RouterFiles) -> None:
        self.port = port
        self.trust = files.trust()
        self.streams: list[Any] = []
        self.serial = 0

    @defer.inlineCallbacks
    def open(self) -> Any:
        from xmppcomp.stream.bind import BindInitiator
        from xmppcomp.stream.initiating import InitiatingFactory, InitiatingPolicy

        self.serial += 1
        binder = BindInitiator(["s%d.%s" % (self.serial, IDENTITY)])
        factory = InitiatingFactory(
            InitiatingPolicy(
                DOMAIN, IDENTITY, SECRET, trust=self.trust, mechanisms=["SCRAM-SHA-256"], features=binder.features()
            ),
            reactor,
        )
        xs = yield TCP4ClientEndpoint(reactor, LOOPBACK, self.port).connect(factory)
        self.streams.append(xs)
        yield xs.authenticator.negotiated.addTimeout(TIMEOUT, reactor)

    @defer.inlineCallbacks
    def openMany(self, count: int) -> Any:
        remaining = [count]

        @defer.inlineCallbacks
        def worker() -> Any:
            while remaining[0] > 0:
                remaining[0] -= 1
                yield self.open()

        yield defer.gatherResults([worker() for _ in range(CONCURRENCY)], consumeErrors=True)

    def abortAll(self) -> None:
        for xs in self.streams:
            if xs.transport is not None:
                xs.transport.abortConnection()
        self.streams = []


@defer.inlineCallbacks
def oneRun(directory: str, files: _common.RouterFiles, sessions: int) -> Any:
    process, info = _common.startOurRouter(directory, files, IDENTITY, sessions + 100)
    try:
        load = Sessions(info["xep0225"], files)
        yield load.openMany(20)
        load.abortAll()
        yield task.deferLater(reactor, 1.0, lambda: None)
        before = _common.rssBytes(process.pid)
        yield load.openMany(sessions)
        yield task.deferLater(reactor, 1.0, lambda: None)
        after = _common.rssBytes(process.pid)
        load.abortAll()
        return {"rssBefore": before, "rssAfter": after, "perSessionKiB": (after - before) / sessions / 1024}
    finally:
        _common.stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=1000)
    arguments = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="xmppcomp-bench-memory-")
    files = _common.RouterFiles(directory, DOMAIN, {IDENTITY: SECRET}, {})
    outcome: dict[str, Any] = {"runs": []}

    @defer.inlineCallbacks
    def go() -> Any:
        try:
            for _ in range(arguments.runs):
                outcome["runs"].append((yield oneRun(directory, files, arguments.sessions)))
        except Exception as e:
            outcome["error"] = repr(e)
        finally:
            reactor.stop()

    try:
        reactor.callWhenRunning(go)
        reactor.run()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    runs = outcome["runs"]
    if len(runs) < arguments.runs:
        raise SystemExit("memory benchmark failed: %s" % (outcome.get("error"),))
    perSession = _common.summary([r["perSessionKiB"] for r in runs])
    baseline = _common.summary([r["rssBefore"] / 2**20 for r in runs])
    print(
        "## Memory: router RSS per idle XEP-0225 session (TLS 1.3, SCRAM, 1 name), %d sessions, %d runs; median (min–max)\n"
        % (arguments.sessions, arguments.runs)
    )
    print(
        _common.table(
            ["KiB per idle session", "router RSS before, MiB"],
            [[_common.fmt(perSession, 1), _common.fmt(baseline, 1)]],
        )
    )
    _common.emitJSON("memory", {"sessions": arguments.sessions, "perSessionKiB": perSession, "rssBeforeMiB": baseline, "raw": runs})


if __name__ == "__main__":
    main()
