"""
The confirmer's HTTP listener against idle connections (issue #16, item
3): C{twistd -n xmppcomp} (embedded router, confirmer, demo agent) runs in
its own process with C{RLIMIT_NOFILE} at C{--server-nofile} (20,000, as
C{ulimit -n} here); this process opens C{--idle} TCP connections to the
HTTP listener from C{--sources} loopback addresses (127.0.0.2, 127.0.0.4,
...; 9,000 from 127.0.0.2 by default) that send nothing, then a
legitimate client on 127.0.0.3 opens a new connection and does a whole
confirmation (401, then credentials, then 200).

    python bench/http_idle.py [--idle 9000] [--sources 1] [--runs 3]
                              [--server-nofile 20000] [--httpauth 'KEY = VALUE' ...]

Reported per run: idle connections established, still held by the server
when the legitimate client came, and closed or refused by it; the
legitimate client's TCP connect, its 401 and its confirmation (status and
milliseconds, or "no answer" after C{--deadline} seconds); the server
process's open file descriptors and RSS with the idle connections held.
C{--httpauth} adds lines to the C{[httpauth]} table (for instance
C{'max_idle_per_source = 100'}).

Run by hand, never by the test suite. Loopback only, bounded in count and
time.
"""

from __future__ import annotations

import argparse
import base64
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
from _httpload import HTTPLoadConnection  # noqa: E402
from _idle import IdlePool, ensureFileLimit, runAll  # noqa: E402

from twisted.internet import defer, reactor, task  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol  # noqa: E402

#: The attacker's addresses (127.0.0.2, 127.0.1.x) stand for clients on
#: other machines: only 127.0.0.1 is a trusted proxy here (the default,
#: 127.0.0.0/8, would exempt them from the cap per source).
CONFIG = """
[httpauth]
listen = "tcp:{port}:interface=127.0.0.1"
allowed_hosts = ["127.0.0.1"]
trusted_proxies = ["127.0.0.1"]
access_log = "none"
{extra}
"""

#: The demo agent of the embedded router confirms every request to it.
AGENT = "agent.localhost"
LEGITIMATE = "127.0.0.3"
START_TIMEOUT = 30.0


def sourceAddresses(count: int) -> list[str]:
    """
    C{count} loopback source addresses, none of them 127.0.0.1 (the
    server's) or 127.0.0.3 (the legitimate client's).
    """
    addresses = ["127.0.0.2"] + ["127.0.1.%d" % (i,) for i in range(1, 255)]
    if count > len(addresses):
        raise SystemExit("--sources: at most %d" % (len(addresses),))
    return addresses[:count]


class Confirmer:
    """
    C{twistd -n xmppcomp} in its own process, listening for HTTP on a
    free loopback port.
    """

    def __init__(self, directory: str, nofile: int, extra: list[str]) -> None:
        (self.port,) = _common.freePorts(1)
        config = os.path.join(directory, "component.toml")
        with open(config, "w") as f:
            f.write(CONFIG.format(port=self.port, extra="\n".join(extra)))

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        log = open(os.path.join(directory, "twistd.out"), "ab")
        self.process = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "twistd"), "--logfile", os.path.join(directory, "xmppcomp.log"),
             "--pidfile", os.path.join(directory, "twistd.pid"), "-n", "xmppcomp", "--config", config],
            cwd=_common.ROOT,
            stdout=log,
            stderr=log,
            env=dict(os.environ, PYTHONPATH=_common.ROOT),
            preexec_fn=limit,
        )
        log.close()
        self.pid = self.process.pid
        try:
            _common.waitForPort(self.port, timeout=START_TIMEOUT, process=self.process)
        except BaseException:
            self.stop()
            raise

    def fds(self) -> int:
        return len(os.listdir("/proc/%d/fd" % (self.pid,)))

    def stop(self) -> None:
        _common.stop(self.process)


def requestBytes(port: int, who: str | None = None, transactionId: str | None = None) -> bytes:
    host = b"127.0.0.1:%d" % (port,)
    if who is None:
        return b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % (host,)
    token = base64.b64encode(("%s:%s" % (who, transactionId)).encode("utf-8"))
    return b"GET / HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\n\r\n" % (host, token)


@defer.inlineCallbacks
def legitimate(port: int, serial: int, deadline: float) -> Any:
    """
    One whole confirmation on a new connection from 127.0.0.3.

    @return: a dict: connect, challenge and confirm in ms (or None), the
        final status, and the error if any.
    """
    result: dict[str, Any] = {"connect": None, "challenge": None, "confirm": None, "status": None, "error": None}
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=deadline, bindAddress=(LEGITIMATE, 0))
    start = time.perf_counter()
    connection: HTTPLoadConnection | None = None
    try:
        connection = yield connectProtocol(endpoint, HTTPLoadConnection()).addTimeout(deadline, reactor)
        result["connect"] = (time.perf_counter() - start) * 1000
        mark = time.perf_counter()
        challenge = yield connection.request(requestBytes(port)).addTimeout(deadline, reactor)
        result["challenge"] = (time.perf_counter() - mark) * 1000
        result["status"] = challenge.code
        if challenge.code == 401:
            mark = time.perf_counter()
            who = "user%d@%s/web" % (serial, AGENT)
            response = yield connection.request(requestBytes(port, who, "idle-%d-%d" % (os.getpid(), serial))).addTimeout(
                deadline, reactor
            )
            result["confirm"] = (time.perf_counter() - mark) * 1000
            result["status"] = response.code
    except Exception as e:
        result["error"] = "%s after %.0f ms" % (type(e).__name__, (time.perf_counter() - start) * 1000)
    finally:
        if connection is not None and connection.transport is not None:
            connection.transport.abortConnection()
    return result


@defer.inlineCallbacks
def waitReady(port: int) -> Any:
    """
    Wait until a confirmation succeeds (embedded router, component and
    demo agent up and bound).
    """
    give = time.monotonic() + START_TIMEOUT
    serial = 0
    while True:
        serial += 1
        outcome = yield legitimate(port, 10_000_000 + serial, 5.0)
        if outcome["status"] == 200:
            return
        if time.monotonic() > give:
            raise RuntimeError("no confirmation succeeded within %g s: %r" % (START_TIMEOUT, outcome))
        yield task.deferLater(reactor, 0.2, lambda: None)


@defer.inlineCallbacks
def oneRun(arguments: argparse.Namespace, serial: int) -> Any:
    directory = tempfile.mkdtemp(prefix="bench-http-idle-")
    server = Confirmer(directory, arguments.serverNofile, arguments.httpauth)
    pools: list[IdlePool] = []
    try:
        yield waitReady(server.port)
        before = yield legitimate(server.port, serial * 10, arguments.deadline)
        fdsBefore = server.fds()
        rssBefore = _common.rssBytes(server.pid)
        sources = sourceAddresses(arguments.sources)
        perSource = [arguments.idle // len(sources) + (1 if i < arguments.idle % len(sources) else 0) for i in range(len(sources))]
        cpu0 = _common.cpuSeconds(server.pid)
        opening = time.perf_counter()
        for source, count in zip(sources, perSource):
            pool = IdlePool(reactor, "127.0.0.1", server.port, source)
            pools.append(pool)
            yield pool.open(count, arguments.batch)
        opened = time.perf_counter() - opening
        # Let the server take every connection out of its accept queue.
        yield task.deferLater(reactor, arguments.settle, lambda: None)
        cpu = _common.cpuSeconds(server.pid) - cpu0
        held = sum(p.held for p in pools)
        fds = server.fds()
        rss = _common.rssBytes(server.pid)
        during = yield legitimate(server.port, serial * 10 + 1, arguments.deadline)
        heldAfter = sum(p.held for p in pools)
        alive = server.process.poll() is None
        return {
            "idle": arguments.idle,
            "sources": len(sources),
            "connected": sum(p.connected for p in pools),
            "failed": sum(p.failed for p in pools),
            "closedByServer": sum(p.closedByServer for p in pools),
            "held": held,
            "heldAfter": heldAfter,
            "serverFds": fds,
            "serverFdsBefore": fdsBefore,
            "rssMiB": rss / 2**20,
            "rssPerIdleKiB": (rss - rssBefore) / 1024 / max(held, 1),
            "serverCpuMs": cpu * 1000,
            "openSeconds": opened,
            "before": before,
            "during": during,
            "serverAlive": alive,
            "log": os.path.join(directory, "xmppcomp.log"),
        }
    finally:
        for pool in pools:
            pool.close()
        server.stop()
        if not arguments.keep:
            shutil.rmtree(directory, ignore_errors=True)


def cell(outcome: dict[str, Any]) -> str:
    if outcome["error"] is not None:
        return "no answer (%s)" % (outcome["error"],)
    parts = ["%s" % (outcome["status"],)]
    total = sum(outcome[k] or 0.0 for k in ("connect", "challenge", "confirm"))
    parts.append("%.1f ms (connect %.1f)" % (total, outcome["connect"] or 0.0))
    return " ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=9000)
    parser.add_argument("--sources", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--server-nofile", dest="serverNofile", type=int, default=20000)
    parser.add_argument("--deadline", type=float, default=20.0, help="seconds the legitimate client waits at each step")
    parser.add_argument("--batch", type=int, default=100, help="idle connections opened at a time")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds between the last idle connection and the legitimate client")
    parser.add_argument("--httpauth", action="append", default=[], help="a line added to [httpauth]")
    parser.add_argument("--keep", action="store_true", help="keep the server's directory (its log)")
    arguments = parser.parse_args()
    ensureFileLimit(arguments.idle, 1000, 10)
    results = runAll("http_idle", arguments, oneRun)
    print(
        "\nConfirmer (twistd -n xmppcomp, RLIMIT_NOFILE %d) with %d idle connections from %d source(s); extra [httpauth]: %s\n"
        % (arguments.serverNofile, arguments.idle, arguments.sources, "; ".join(arguments.httpauth) or "none")
    )
    print(
        _common.table(
            ["run", "opened in", "established", "refused/closed", "held", "server fds", "RSS MiB", "KiB/idle", "legit. before", "legit. with idle held", "held after"],
            [
                [
                    str(i + 1),
                    "%.1f s" % (r["openSeconds"],),
                    str(r["connected"]),
                    "%d/%d" % (r["failed"], r["closedByServer"]),
                    str(r["held"]),
                    str(r["serverFds"]),
                    "%.0f" % (r["rssMiB"],),
                    "%.1f" % (r["rssPerIdleKiB"],),
                    cell(r["before"]),
                    cell(r["during"]),
                    str(r["heldAfter"]),
                ]
                for i, r in enumerate(results)
            ],
        )
    )
    _common.emitJSON("http_idle", {"arguments": vars(arguments), "runs": results})


if __name__ == "__main__":
    main()
