"""
XEP-0070 confirmations through XTLS (issue 21, part 4): the latency XTLS
adds to one confirmation, with the tunnel already open and with a tunnel
opened for it, and confirmations/s through open tunnels at 100 concurrent
clients, against the plaintext figures of the same run.

    python bench/xtls_confirm.py [--runs 5] [--sequential 100] [--clients 100] [--seconds 3]
    python bench/xtls_confirm.py --quick      # under a minute

One C{twistd -n xmppcomp} with no server (README's main job: embedded
router, confirmer and demo agent in one process), started as
C{bench/confirmer.py --topology embedded} starts it, and HTTP clients here
(C{bench/_httpload.py}: 401 → credentials → confirmation → 200). The demo
asks C{demo@agent.localhost} in plaintext (an IQ to the full JID through
the embedded router) and C{secure@agent.localhost} only through XTLS: the
confirmer opens (or reuses) a tunnel to the full JID, checks that the
agent's certificate names C{secure@agent.localhost}, asks inside it and
takes only the answer that comes back through it. So the three setups
differ only in the JID the credentials name:

 - C{plaintext}: C{demo@agent.localhost/cN};
 - C{XTLS, tunnel open}: C{secure@agent.localhost/cN}, a resource whose
   tunnel a warm-up opened (reused by every confirmation);
 - C{XTLS, tunnel opened for it}: C{secure@agent.localhost/<new>}, a
   resource never asked before, so each confirmation first opens a tunnel
   (XTLS start, TLS 1.3 handshake with certificates both ways, in base64
   data IQs through the router), then asks through it.

Measured, each setup in turn within every run (the order rotated run by
run, so the machine's drift falls on all alike; the comparisons with the
plaintext figure are taken run by run):

 - one at a time: C{--sequential} confirmations per setup and run on one
   connection: latency of the request with credentials (p50, p90, p99),
   what XTLS adds to the plaintext p50 and p99, the server's CPU per
   confirmation;
 - C{--clients} (100) concurrent clients in a closed loop for
   C{--seconds} per setup and run (every client starts its next
   confirmation when its last ends): confirmations/s, the ratio to
   plaintext, p50/p99, the server's CPU per confirmation, and the tunnels
   opened during the run (0: every confirmation went through an open
   tunnel).

The server's XTLS limits are the defaults of C{[xtls.limits]}
(C{max_tunnels} 64, C{max_tunnels_per_peer} 4): every tunnel here is with
one peer, and a tunnel stays open until a side closes it, so this
benchmark lifts both (C{XTLS_LIMITS}) for the confirmer and the demo
agent (which takes the component's limits): the limit is not what is
measured. Tunnels opened for a confirmation are never closed during the
run; the output gives how many were open at the end. As in
C{bench/confirmer.py}, the limits against abuse that every client at
127.0.0.1 and recurring JIDs would hit are lifted. Every confirmation must
end in 200; anything else is an error and the exit status is 1. Run by
hand, never by the test suite; loopback only, bounded in count and time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import confirmer  # noqa: E402
from _httpload import connectMany  # noqa: E402
from several_confirmers import Clients, closedLoop  # noqa: E402

from twisted.internet import defer, reactor  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint  # noqa: E402

#: The component's XTLS limits, lifted (see the module docstring).
XTLS_LIMITS = """
[xtls.limits]
max_tunnels = 1000000
max_tunnels_per_peer = 1000000
"""

PLAIN = "plaintext"
OPEN = "XTLS, tunnel open"
NEW = "XTLS, tunnel opened for it"
SEQUENTIAL = [PLAIN, OPEN, NEW]
CONCURRENT = [PLAIN, OPEN]


def jidOf(setup: str, client: int, serial: str = "") -> str:
    """
    The JID asked by client C{client} in C{setup} (C{serial} names the new
    resource of L{NEW}).
    """
    if setup == PLAIN:
        return "demo@agent.localhost/c%d" % (client,)
    if setup == OPEN:
        return "secure@agent.localhost/c%d" % (client,)
    return "secure@agent.localhost/new-%s" % (serial,)


@defer.inlineCallbacks
def metric(port: int, requests: confirmer.Requests, name: str) -> Any:
    """
    The value of C{name} (no labels) in the server's C{/metrics}.
    """
    [connection] = yield connectMany(TCP4ClientEndpoint(reactor, _common.LOOPBACK, port), 1)
    response = yield connection.request(requests.metrics)
    connection.transport.loseConnection()
    for line in response.body.decode("utf-8").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise RuntimeError("no %s in /metrics" % (name,))


def opened(port: int, requests: confirmer.Requests) -> Any:
    return metric(port, requests, "xmppcomp_xtls_tunnels_opened_total")


@defer.inlineCallbacks
def waitXTLS(port: int, requests: confirmer.Requests) -> Any:
    """
    One confirmation through XTLS must succeed (the demo agent's endpoint
    is up).
    """
    [connection] = yield connectMany(TCP4ClientEndpoint(reactor, _common.LOOPBACK, port), 1)
    code, _, _ = yield confirmer.confirmOnce(connection, requests, jidOf(NEW, 0, "ready"), "ready-xtls")
    connection.transport.loseConnection()
    if code != 200:
        raise RuntimeError("a confirmation through XTLS ended in %d, not 200 (see xmppcomp.log)" % (code,))


def percentiles(latency: list[float]) -> dict[str, float]:
    nan = float("nan")
    return {
        key: confirmer.percentile(latency, fraction) if latency else nan
        for key, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
    }


@defer.inlineCallbacks
def sequential(port: int, requests: confirmer.Requests, pid: int, setup: str, count: int, tag: str) -> Any:
    """
    C{count} confirmations one at a time in C{setup}, on one connection.
    """
    [connection] = yield connectMany(TCP4ClientEndpoint(reactor, _common.LOOPBACK, port), 1)
    tunnelsBefore = yield opened(port, requests)
    results = []
    cpuBefore = _common.cpuSeconds(pid)
    start = time.perf_counter()
    for i in range(count):
        who = jidOf(setup, 0, "%s-%d" % (tag, i))
        results.append((yield confirmer.confirmOnce(connection, requests, who, "%s-%d" % (tag, i))))
    elapsed = time.perf_counter() - start
    cpu = _common.cpuSeconds(pid) - cpuBefore
    connection.transport.loseConnection()
    tunnelsAfter = yield opened(port, requests)
    return {
        "rate": count / elapsed,
        **percentiles([r[1] for r in results if r[0] == 200]),
        "serverUs": cpu / count * 1e6,
        "tunnelsOpened": tunnelsAfter - tunnelsBefore,
        "statuses": confirmer.statuses(results),
    }


@defer.inlineCallbacks
def concurrent(
    port: int, requests: confirmer.Requests, pid: int, clients: Clients, setup: str, seconds: float, tag: str
) -> Any:
    """
    Every client confirms in C{setup} again and again for C{seconds}.
    """
    tunnelsBefore = yield opened(port, requests)
    cpuBefore = _common.cpuSeconds(pid)
    loadBefore = _common.ownCpuSeconds()
    start = time.perf_counter()
    results, _ = yield closedLoop(clients, "iq", seconds, tag, lambda i: jidOf(setup, i))
    elapsed = time.perf_counter() - start
    cpu = _common.cpuSeconds(pid) - cpuBefore
    load = _common.ownCpuSeconds() - loadBefore
    tunnelsAfter = yield opened(port, requests)
    count = max(1, len(results))
    statuses: dict[int, int] = {}
    for code, _ in results:
        statuses[code] = statuses.get(code, 0) + 1
    return {
        "rate": len(results) / elapsed,
        **percentiles([latency for code, latency in results if code == 200]),
        "serverUs": cpu / count * 1e6,
        "loadUs": load / count * 1e6,
        "tunnelsOpened": tunnelsAfter - tunnelsBefore,
        "statuses": statuses,
    }


def rotated(items: list[str], run: int) -> list[str]:
    k = run % len(items)
    return items[k:] + items[:k]


@defer.inlineCallbacks
def measure(arguments: argparse.Namespace) -> Any:
    directory = tempfile.mkdtemp(prefix="xmppcomp-xtls-confirm-")
    outcome: dict[str, Any] = {"directory": directory}
    server = confirmer.Server(directory, max(arguments.clients, 16), "embedded", extra=XTLS_LIMITS)
    try:
        port, pid = server.port, server.pid
        requests = confirmer.Requests(port)
        yield confirmer.waitReady(port, requests)
        yield waitXTLS(port, requests)
        for setup in SEQUENTIAL:
            yield sequential(port, requests, pid, setup, arguments.warmup, "warm-%d" % (SEQUENTIAL.index(setup),))
        seq: dict[str, list[dict[str, Any]]] = {setup: [] for setup in SEQUENTIAL}
        for run in range(arguments.runs):
            for setup in rotated(SEQUENTIAL, run):
                tag = "s%d-%d" % (run, SEQUENTIAL.index(setup))
                seq[setup].append((yield sequential(port, requests, pid, setup, arguments.sequential, tag)))
        outcome["sequential"] = seq
        shim = SimpleNamespace(port=port, requests=requests)
        clients = yield Clients.open([shim], arguments.clients)  # type: ignore[list-item]
        try:
            # Opens the clients' tunnels, and warms both setups up.
            for setup in CONCURRENT:
                yield concurrent(port, requests, pid, clients, setup, arguments.warmupSeconds, "cw-%s" % (setup[:1],))
            con: dict[str, list[dict[str, Any]]] = {setup: [] for setup in CONCURRENT}
            for run in range(arguments.runs):
                for setup in rotated(CONCURRENT, run):
                    tag = "c%d-%d" % (run, CONCURRENT.index(setup))
                    con[setup].append((yield concurrent(port, requests, pid, clients, setup, arguments.seconds, tag)))
            outcome["concurrent"] = con
        finally:
            clients.close()
        outcome["tunnels"] = yield metric(port, requests, "xmppcomp_xtls_tunnels")
        outcome["rssMiB"] = _common.rssBytes(pid) / 2**20
    finally:
        server.stop()
        if not arguments.keep:
            shutil.rmtree(directory, ignore_errors=True)
    return outcome


def runByRun(runs: dict[str, list[dict[str, Any]]], setup: str, key: str, how: Callable[[float, float], float]) -> Any:
    """
    C{how(setup's value, plaintext's value)} run by run, summarised.
    """
    return _common.summary([how(mine[key], plain[key]) for mine, plain in zip(runs[setup], runs[PLAIN])])


def summaryCell(runs: list[dict[str, Any]], key: str, digits: int) -> str:
    """
    The median (min–max) of C{key} over C{runs}.
    """
    return _common.fmt(_common.summary([r[key] for r in runs]), digits)


def errors(runs: dict[str, list[dict[str, Any]]]) -> int:
    return sum(n for rows in runs.values() for row in rows for code, n in row["statuses"].items() if code != 200)


def report(arguments: argparse.Namespace, outcome: dict[str, Any]) -> int:
    fmt = _common.fmt
    data: dict[str, Any] = {"arguments": vars(arguments), "raw": outcome, "cores": os.cpu_count()}
    seq = outcome["sequential"]
    rows = []
    for setup in SEQUENTIAL:
        runs = seq[setup]
        cell = partial(summaryCell, runs)
        if setup == PLAIN:
            added = ["–", "–", "–"]
        else:
            added = [
                fmt(runByRun(seq, setup, "p50", lambda a, b: a - b), 2),
                fmt(runByRun(seq, setup, "p99", lambda a, b: a - b), 2),
                fmt(runByRun(seq, setup, "p50", lambda a, b: a / b), 2),
            ]
        rows.append(
            [setup, cell("rate", 0), cell("p50", 2), cell("p90", 2), cell("p99", 2)]
            + added
            + [cell("serverUs", 0), "%d" % (sum(r["tunnelsOpened"] for r in runs) / len(runs),)]
        )
    print(
        "## Confirmations through XTLS, one at a time: %d per setup and run, %d runs; median (min–max)\n"
        % (arguments.sequential, arguments.runs)
    )
    print(
        _common.table(
            ["setup", "confirmations/s", "p50 ms", "p90 ms", "p99 ms", "added p50 ms", "added p99 ms",
             "p50 ratio", "server CPU µs/confirmation", "tunnels opened per run"],
            rows,
        )
    )
    con = outcome["concurrent"]
    rows = []
    for setup in CONCURRENT:
        runs = con[setup]
        cell = partial(summaryCell, runs)
        ratio = "1" if setup == PLAIN else fmt(runByRun(con, setup, "rate", lambda a, b: a / b), 3)
        rows.append(
            [setup, cell("rate", 0), ratio, cell("p50", 2), cell("p99", 2), cell("serverUs", 0),
             cell("loadUs", 0), "%d" % (sum(r["tunnelsOpened"] for r in runs),)]
        )
    print(
        "\n## Confirmations through XTLS, %d concurrent clients (closed loop), %g s per setup and run, %d runs;"
        " median (min–max)\n" % (arguments.clients, arguments.seconds, arguments.runs)
    )
    print(
        _common.table(
            ["setup", "confirmations/s", "ratio to plaintext", "p50 ms", "p99 ms", "server CPU µs/confirmation",
             "load CPU µs/confirmation", "tunnels opened (all runs)"],
            rows,
        )
    )
    bad = errors(seq) + errors(con)
    print(
        "\nLatency: of the request with credentials (401 → credentials → confirmation → 200: the confirmer, the"
        " embedded router and the demo agent are one twistd process, whose CPU is the server's). Added and"
        " ratio: against the plaintext figure of the same run, run by run. XTLS limits lifted to %s tunnels (and"
        " per peer) for the confirmer and the agent; %d tunnels open at the end, server RSS %.0f MiB. %d cores."
        " Errors (non-200): %d.\n"
        % (XTLS_LIMITS.split()[-1], outcome["tunnels"], outcome["rssMiB"], os.cpu_count() or 0, bad)
    )
    data["errors"] = bad
    _common.emitJSON("xtls_confirm", data)
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sequential", type=int, default=100, help="confirmations per setup and run, one at a time")
    parser.add_argument("--warmup", type=int, default=30, help="sequential warm-up confirmations per setup")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each concurrent run")
    parser.add_argument("--warmup-seconds", dest="warmupSeconds", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="2 runs, 40 sequential, 1.5 s: under a minute")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory (config, logs)")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.runs, arguments.sequential, arguments.seconds, arguments.warmup = 2, 40, 1.5, 10
    outcome = _common.measureInReactor("xtls_confirm", measure, arguments)
    if report(arguments, outcome):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
