"""
The XEP-0070 confirmer under load: C{twistd -n xmppcomp} (embedded router,
component with the confirmer, demo agent answering every confirmation), as
README's main job runs it, in its own process; HTTP clients here (one
keep-alive connection each, bench/_httpload.py), each confirmation being a
401 challenge, then the request with credentials, the confirm IQ to the
agent and back through the router, then 200.

    python bench/confirmer.py [--clients 1000] [--runs 5] [--sequential 200] [--pending 2000]

Three measurements, each in a fresh server process but the first two
sharing one:

 - one at a time: one client, C{--sequential} confirmations per run:
   latency of the request with credentials, and the latency it adds over
   the XMPP round trip (HTTP latency minus the round trip the confirmer
   reports in C{Server-Timing}, request by request);
 - C{--clients} concurrent clients, one confirmation each per run:
   confirmations/s, the same latencies, CPU per confirmation of the
   server process (router, confirmer and agent together) and of this load
   process, and the server's CPU-bound capacity (1 / its CPU);
 - memory: C{--pending} idle keep-alive connections, then a confirmation
   the agent never answers (transaction id C{wait-...}) on each; RSS per
   idle connection and per pending confirmation (the growth from the
   first to the second state, over C{--pending}).

Every figure is the median (min–max) over the runs. Every confirmation
must end in 200: anything else is counted as an error. Run by hand, never
by the test suite; everything stays on 127.0.0.1, bounded in count and
time.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
from _httpload import HTTPLoadConnection, connectMany  # noqa: E402

from twisted.internet import defer, reactor, task  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint  # noqa: E402

#: The confirmer's configuration. The site is the listener itself (the
#: clients send C{Host: 127.0.0.1:PORT}). Every client of the benchmark
#: connects from 127.0.0.1 and the JIDs come back run after run, so the
#: limits meant for abuse would measure themselves rather than the
#: confirmer: the attempts per client address (30 per 60 s by default) and
#: the fair shares of the replay memory per bare JID (1,000: the
#: sequential phase alone asks one JID over 1,000 times) and per domain
#: (10,000: every JID is at the agent's domain) are lifted, and only
#: those; the total (max_remembered, 100,000) holds every transaction id
#: of a full run. Nothing bounces, so the undeliverable limit never
#: applies.
CONFIG = """
[httpauth]
listen = "tcp:{port}:interface=127.0.0.1:backlog=1024"
allowed_hosts = ["127.0.0.1"]
server_timing = {serverTiming}
metrics = true
access_log = "{accessLog}"
timeout = 600
[httpauth.limits]
pending_per_jid = {pending}
pending_total = {pending}
attempts_per_client = 1000000000
remembered_per_jid = 1000000000
remembered_per_domain = 1000000000
"""

#: The agent's hostname; the JIDs asked are at it. Set by L{Server}.
AGENT = "agent.localhost"
#: Seconds the server may take to come up with its components bound.
START_TIMEOUT = 30.0

#: The [httpauth] access_log of the confirmer (--access-log).
ACCESS_LOG = ["none"]

#: The component table of the confirmer in the separate topology.
COMPONENT = """
[component]
server = "tcp:host=127.0.0.1:port={routerPort}"
server_domain = "{domain}"
hostnames = ["{identity}"]
identity = "{identity}"
secret = {{ file = "confirmer.secret" }}
[component.trust]
ca_file = "ca.pem"
[xtls]
enabled = false
"""

DOMAIN = "example.net"
CONFIRMER = "confirmer.example.net"
SEPARATE_AGENT = "agent.example.net"


class Server:
    """
    What answers the HTTP clients, in one of two topologies:

     - C{embedded}: C{twistd -n xmppcomp} with no server, as README's main
       job runs it: embedded router, confirmer and demo agent in one
       process;
     - C{separate}: as deployed: the router (bench/_router_ours.py), the
       confirmer (C{twistd -n xmppcomp} connected to it over XEP-0225, TLS,
       SCRAM) and the agent (bench/_agent.py, XEP-0114, standing for the
       users' clients) each in its own process.

    @ivar pid: the process whose CPU and memory are the confirmer's.
    @ivar others: the other processes (their CPU is reported apart).
    """

    def __init__(
        self, directory: str, pending: int, topology: str, serverTiming: bool = True, extra: str = ""
    ) -> None:
        """
        @param extra: TOML tables added to the confirmer's configuration.
        """
        global AGENT
        self.processes: list[subprocess.Popen[bytes]] = []
        (self.port,) = _common.freePorts(1)
        config = os.path.join(directory, "component.toml")
        text = CONFIG.format(
            port=self.port, pending=pending, accessLog=ACCESS_LOG[0], serverTiming="true" if serverTiming else "false"
        ) + extra
        try:
            if topology == "separate":
                AGENT = SEPARATE_AGENT
                text = self._separate(directory) + text
            else:
                AGENT = "agent.localhost"
            with open(config, "w") as f:
                f.write(text)
            log = open(os.path.join(directory, "twistd.log"), "ab")
            process = subprocess.Popen(
                [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "--logfile", os.path.join(directory, "xmppcomp.log"),
                 "--pidfile", os.path.join(directory, "twistd.pid"), "-n", "xmppcomp", "--config", config],
                cwd=_common.ROOT,
                stdout=log,
                stderr=log,
                env=dict(os.environ, PYTHONPATH=_common.ROOT),
            )
            log.close()
            self.processes.append(process)
            self.pid = process.pid
            self.others = [p.pid for p in self.processes[:-1]]
            _common.waitForPort(self.port, timeout=START_TIMEOUT, process=process)
        except BaseException:
            self.stop()
            raise

    def _separate(self, directory: str) -> str:
        secret = os.urandom(16).hex()
        agentSecret = os.urandom(16).hex()
        files = _common.RouterFiles(directory, DOMAIN, {CONFIRMER: secret}, {SEPARATE_AGENT: agentSecret})
        with open(os.path.join(directory, "ca.pem"), "wb") as f:
            f.write(files.ca.certificate.dumpPEM())
        fd = os.open(os.path.join(directory, "confirmer.secret"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")
        info = _common.startRouterAndAgent(
            directory, files, {CONFIRMER: [CONFIRMER]}, SEPARATE_AGENT, agentSecret, self.processes
        )
        return COMPONENT.format(routerPort=info["xep0225"], domain=DOMAIN, identity=CONFIRMER)

    def othersCpu(self) -> float:
        return sum(_common.cpuSeconds(pid) for pid in self.others)

    def stop(self) -> None:
        for process in reversed(self.processes):
            _common.stop(process)


class Requests:
    """
    The raw requests of one server.
    """

    def __init__(self, port: int) -> None:
        self.host = b"127.0.0.1:%d" % (port,)
        self.plain = b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.host,)
        self.metrics = b"GET /metrics HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.host,)

    def withCredentials(self, who: str, transactionId: str) -> bytes:
        token = base64.b64encode(("%s:%s" % (who, transactionId)).encode("utf-8"))
        return b"GET / HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\n\r\n" % (self.host, token)


def serverTimingMs(headers: dict[bytes, bytes]) -> float | None:
    for part in headers.get(b"server-timing", b"").split(b";"):
        if part.startswith(b"dur="):
            return float(part[4:])
    return None


@defer.inlineCallbacks
def confirmOnce(connection: HTTPLoadConnection, requests: Requests, who: str, transactionId: str) -> Any:
    """
    One confirmation: 401, then credentials. Returns (status, latency ms,
    added ms or None).
    """
    challenge = yield connection.request(requests.plain)
    if challenge.code != 401 or not challenge.headers.get(b"www-authenticate", b"").startswith(b"Basic realm=\"xmpp\""):
        return (challenge.code, float("nan"), None)
    start = time.perf_counter()
    response = yield connection.request(requests.withCredentials(who, transactionId))
    latency = (time.perf_counter() - start) * 1000
    xmpp = serverTimingMs(response.headers)
    return (response.code, latency, None if xmpp is None else latency - xmpp)


@defer.inlineCallbacks
def waitReady(port: int, requests: Requests) -> Any:
    """
    Wait until a confirmation succeeds: the embedded router, the
    component and the agent are connected and bound.
    """
    [connection] = yield connectMany(TCP4ClientEndpoint(reactor, _common.LOOPBACK, port), 1)
    deadline = time.monotonic() + START_TIMEOUT
    attempt = 0
    while True:
        attempt += 1
        code, _, _ = yield confirmOnce(connection, requests, "ready@%s/web" % (AGENT,), "ready-%d" % (attempt,))
        if code == 200:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("no confirmation succeeded within %g s (last: %d)" % (START_TIMEOUT, code))
        yield task.deferLater(reactor, 0.1, lambda: None)
    connection.transport.loseConnection()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(fraction * (len(ordered) - 1)))))]


def latencies(results: list[tuple[int, float, float | None]]) -> dict[str, float]:
    ok = [r for r in results if r[0] == 200]
    latency = [r[1] for r in ok]
    added = [r[2] for r in ok if r[2] is not None]
    nan = float("nan")
    return {
        "p50": statistics.median(latency) if latency else nan,
        "p99": percentile(latency, 0.99) if latency else nan,
        "addedP50": statistics.median(added) if added else nan,
        "addedP99": percentile(added, 0.99) if added else nan,
    }


def statuses(results: list[tuple[int, float, float | None]]) -> dict[int, int]:
    counted: dict[int, int] = {}
    for code, _, _ in results:
        counted[code] = counted.get(code, 0) + 1
    return counted


@defer.inlineCallbacks
def sequentialRuns(port: int, requests: Requests, count: int, runs: int, tag: str) -> Any:
    [connection] = yield connectMany(TCP4ClientEndpoint(reactor, _common.LOOPBACK, port), 1)
    out = []
    for run in range(runs):
        results = []
        start = time.perf_counter()
        for i in range(count):
            results.append((yield confirmOnce(connection, requests, "solo@%s/web" % (AGENT,), "%s-seq%d-%d" % (tag, run, i))))
        elapsed = time.perf_counter() - start
        out.append({"rate": count / elapsed, **latencies(results), "statuses": statuses(results)})
    connection.transport.loseConnection()
    return out


@defer.inlineCallbacks
def concurrentRuns(port: int, requests: Requests, server: Server, clients: int, runs: int, tag: str) -> Any:
    connections = yield connectMany(TCP4ClientEndpoint(reactor, _common.LOOPBACK, port), clients)
    # One challenge on each first, so the server has every connection.
    yield defer.gatherResults([c.request(requests.plain) for c in connections])
    out = []
    for run in range(runs):
        serverBefore = _common.cpuSeconds(server.pid)
        othersBefore = server.othersCpu()
        loadBefore = _common.ownCpuSeconds()
        start = time.perf_counter()
        results = yield defer.gatherResults(
            [
                confirmOnce(c, requests, "user%d@%s/web" % (i, AGENT), "%s-run%d-tx%d" % (tag, run, i))
                for i, c in enumerate(connections)
            ]
        )
        elapsed = time.perf_counter() - start
        serverCpu = _common.cpuSeconds(server.pid) - serverBefore
        othersCpu = server.othersCpu() - othersBefore
        loadCpu = _common.ownCpuSeconds() - loadBefore
        out.append(
            {
                "rate": clients / elapsed,
                **latencies(results),
                "serverUs": serverCpu / clients * 1e6,
                "othersUs": othersCpu / clients * 1e6,
                "capacity": clients / serverCpu if serverCpu else float("inf"),
                "loadUs": loadCpu / clients * 1e6,
                "statuses": statuses(results),
            }
        )
    for c in connections:
        c.transport.loseConnection()
    return out


@defer.inlineCallbacks
def pacedRuns(port: int, requests: Requests, server: Server, clients: int, rate: float, seconds: float, runs: int, tag: str) -> Any:
    """
    Open-loop load: C{clients} keep-alive connections, and a confirmation
    started every 1/C{rate} seconds on the next idle one, for C{seconds}.
    Latency is then what a request meets at that throughput, not the
    queue a closed loop of C{clients} builds by construction.
    """
    connections = yield connectMany(TCP4ClientEndpoint(reactor, _common.LOOPBACK, port), clients)
    yield defer.gatherResults([c.request(requests.plain) for c in connections])
    out = []
    for run in range(runs):
        idle = list(connections)
        results: list[tuple[int, float, float | None]] = []
        busy = [0]
        finished: defer.Deferred[None] = defer.Deferred()
        total = int(rate * seconds)
        started = [0]
        starved = [0]

        def done(result: tuple[int, float, float | None], connection: HTTPLoadConnection) -> None:
            results.append(result)
            idle.append(connection)
            busy[0] -= 1
            if started[0] == total and busy[0] == 0 and not finished.called:
                finished.callback(None)

        def tick() -> None:
            due = min(total, int((time.perf_counter() - begin) * rate) + 1)
            while started[0] < due:
                if not idle:
                    starved[0] += 1
                    break
                connection = idle.pop(0)
                n = started[0]
                started[0] += 1
                busy[0] += 1
                confirmOnce(connection, requests, "user%d@%s/web" % (n % clients, AGENT), "%s-paced%d-%d" % (tag, run, n)).addCallback(done, connection)
            if started[0] < total:
                nextAt = begin + started[0] / rate
                reactor.callLater(max(0.0, nextAt - time.perf_counter()), tick)
            elif busy[0] == 0 and not finished.called:
                finished.callback(None)

        serverBefore = _common.cpuSeconds(server.pid)
        othersBefore = server.othersCpu()
        begin = time.perf_counter()
        tick()
        yield finished
        elapsed = time.perf_counter() - begin
        serverCpu = _common.cpuSeconds(server.pid) - serverBefore
        othersCpu = server.othersCpu() - othersBefore
        out.append(
            {
                "rate": len(results) / elapsed,
                **latencies(results),
                "serverUs": serverCpu / max(1, len(results)) * 1e6,
                "othersUs": othersCpu / max(1, len(results)) * 1e6,
                "starved": starved[0],
                "statuses": statuses(results),
            }
        )
    for c in connections:
        c.transport.loseConnection()
    return out


@defer.inlineCallbacks
def pendingGauge(port: int, requests: Requests) -> Any:
    [connection] = yield connectMany(TCP4ClientEndpoint(reactor, _common.LOOPBACK, port), 1)
    response = yield connection.request(requests.metrics)
    connection.transport.loseConnection()
    for line in response.body.decode("utf-8").splitlines():
        if line.startswith("xmppcomp_httpauth_pending_confirmations "):
            return float(line.split()[1])
    raise RuntimeError("no pending gauge in /metrics")


@defer.inlineCallbacks
def memoryRun(port: int, requests: Requests, pid: int, pending: int) -> Any:
    connections = yield connectMany(TCP4ClientEndpoint(reactor, _common.LOOPBACK, port), pending)
    yield defer.gatherResults([c.request(requests.plain) for c in connections])
    yield task.deferLater(reactor, 0.5, lambda: None)
    idle = _common.rssBytes(pid)
    waiting = [
        c.request(requests.withCredentials("held%d@%s/web" % (i, AGENT), "wait-%d" % (i,)))
        for i, c in enumerate(connections)
    ]
    for w in waiting:
        w.addErrback(lambda f: None)  # the connections close with these pending
    deadline = time.monotonic() + 30
    while (yield pendingGauge(port, requests)) < pending:
        if time.monotonic() > deadline:
            raise RuntimeError("the confirmations did not all become pending")
        yield task.deferLater(reactor, 0.2, lambda: None)
    yield task.deferLater(reactor, 0.5, lambda: None)
    held = _common.rssBytes(pid)
    for c in connections:
        c.transport.loseConnection()
    return {"idle": idle, "held": held, "perPending": (held - idle) / pending}


@defer.inlineCallbacks
def measure(arguments: argparse.Namespace) -> Any:
    outcome: dict[str, Any] = {}
    directory = tempfile.mkdtemp(prefix="xmppcomp-confirmer-")
    try:
        # Memory in a fresh server each run: RSS growth is honest only
        # before earlier requests left freed memory to reuse.
        memory = []
        for run in range(arguments.memoryRuns):
            # server_timing off, as by default: it costs a callback per request.
            server = Server(directory, arguments.pending, arguments.topology, serverTiming=False)
            try:
                requests = Requests(server.port)
                yield waitReady(server.port, requests)
                base = _common.rssBytes(server.pid)
                memory.append({"base": base, **(yield memoryRun(server.port, requests, server.pid, arguments.pending))})
            finally:
                server.stop()
        outcome["memory"] = memory
        server = Server(directory, max(arguments.clients, 16), arguments.topology)
        try:
            port = server.port
            requests = Requests(port)
            yield waitReady(port, requests)
            yield sequentialRuns(port, requests, 50, 1, "warm")
            outcome["sequential"] = yield sequentialRuns(port, requests, arguments.sequential, arguments.runs, "m")
            yield concurrentRuns(port, requests, server, arguments.clients, 1, "warm")
            outcome["concurrent"] = yield concurrentRuns(port, requests, server, arguments.clients, arguments.runs, "m")
            outcome["paced"] = yield pacedRuns(
                port, requests, server, arguments.clients, arguments.rate, arguments.seconds, arguments.runs, "m"
            )
        finally:
            server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return outcome


def report(arguments: argparse.Namespace, outcome: dict[str, Any]) -> None:
    S, fmt = _common.summary, _common.fmt
    rows = []
    data: dict[str, Any] = {
        "clients": arguments.clients,
        "runs": arguments.runs,
        "accessLog": arguments.accessLog,
        "pacedRate": arguments.rate,
        "topology": arguments.topology,
    }
    errors = 0
    phases = [
        ("sequential", "1 at a time", ["rate", "p50", "p99", "addedP50", "addedP99"]),
        ("concurrent", "%d concurrent, closed loop" % (arguments.clients,), ["rate", "p50", "p99", "addedP50", "addedP99", "serverUs", "capacity", "othersUs", "loadUs"]),
        ("paced", "%d connections, paced at %g/s" % (arguments.clients, arguments.rate), ["rate", "p50", "p99", "addedP50", "addedP99", "serverUs", "othersUs", "starved"]),
    ]
    for name, label, keys in phases:
        runs = outcome[name]
        summary = {k: S([r[k] for r in runs]) for k in keys}
        merged: dict[int, int] = {}
        for r in runs:
            for code, n in r["statuses"].items():
                merged[code] = merged.get(code, 0) + n
        bad = sum(n for code, n in merged.items() if code != 200)
        errors += bad
        data[name] = {**summary, "statuses": merged, "errors": bad, "raw": runs}
        cell = lambda k, d: fmt(summary[k], d) if k in summary else "–"  # noqa: E731
        rows.append(
            [label, cell("rate", 0), cell("p50", 2), cell("p99", 2), cell("addedP50", 2), cell("addedP99", 2)]
            + [cell("serverUs", 0), cell("capacity", 0)]
            + ([cell("othersUs", 0)] if arguments.topology == "separate" else [])
            + [cell("loadUs", 0)]
            + [", ".join("%d×%d" % (c, n) for c, n in sorted(merged.items())), str(bad)]
        )
    print(
        "## Confirmer (%s): 401 → credentials → confirm IQ → agent → 200, %d runs, access_log = %s; median (min–max)\n"
        % (arguments.topology, arguments.runs, arguments.accessLog)
    )
    print(
        _common.table(
            ["clients", "confirmations/s", "p50 ms", "p99 ms", "added p50 ms", "added p99 ms", "confirmer CPU µs/confirmation", "confirmer capacity /s"]
            + (["router + agent CPU µs/confirmation"] if arguments.topology == "separate" else [])
            + ["load CPU µs/confirmation", "answers", "errors"],
            rows,
        )
    )
    print(
        "\nLatency: of the request with credentials. Added: that latency minus the XMPP round trip the confirmer"
        " reports in Server-Timing, request by request. Confirmer CPU: %s; capacity = 1 / that CPU."
        " Closed loop: every client"
        " starts its next confirmation when its last ends, all at once, so the server works through a queue of"
        " %d by construction. Paced: open loop, one confirmation started every 1/rate s on the next idle"
        " connection (latency at that throughput).\n"
        % (
            "the twistd process with the confirmer only (router and agent in their own processes)"
            if arguments.topology == "separate"
            else "router, confirmer and demo agent, all in the one twistd process",
            arguments.clients,
        )
    )
    memory = outcome["memory"]
    perPending = S([m["perPending"] / 1024 for m in memory])
    perIdle = S([(m["idle"] - m["base"]) / arguments.pending / 1024 for m in memory])
    data["memory"] = {"pending": arguments.pending, "perPendingKiB": perPending, "perIdleConnectionKiB": perIdle, "raw": memory}
    print("## Confirmer memory: %d pending confirmations, a fresh server per run, %d runs\n" % (arguments.pending, len(memory)))
    print(
        _common.table(
            ["pending", "RSS per pending confirmation KiB", "RSS per idle keep-alive connection KiB", "RSS MiB: base → idle → pending (first run)"],
            [[
                str(arguments.pending),
                fmt(perPending, 2),
                fmt(perIdle, 2),
                "%.1f → %.1f → %.1f" % (memory[0]["base"] / 2**20, memory[0]["idle"] / 2**20, memory[0]["held"] / 2**20),
            ]],
        )
    )
    print(
        "\nPer pending confirmation: RSS growth of the %s from the idle connections to a confirmation pending on"
        " each, over their number: twisted.web's request, the confirmer's state, the parsed JIDs the bounded"
        " caches keep%s.\n"
        % (
            "confirmer's process" if arguments.topology == "separate" else "one process",
            "" if arguments.topology == "separate" else ", and the router's in-flight IQ",
        )
    )
    data["errors"] = errors
    _common.emitJSON("confirmer", data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sequential", type=int, default=200, help="confirmations per run, one at a time")
    parser.add_argument("--pending", type=int, default=2000, help="confirmations held pending for the memory figure")
    parser.add_argument("--memory-runs", dest="memoryRuns", type=int, default=3)
    parser.add_argument("--rate", type=float, default=1500.0, help="confirmations/s of the paced (open-loop) phase")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each paced run")
    parser.add_argument(
        "--topology",
        choices=("separate", "embedded"),
        default="separate",
        help="separate: router, confirmer and agent in three processes (as deployed); embedded: README's main job, one process",
    )
    parser.add_argument(
        "--access-log",
        dest="accessLog",
        default="none",
        help='[httpauth] access_log: "none" (default here, as behind a web server that logs requests) or "log"',
    )
    arguments = parser.parse_args()
    ACCESS_LOG[0] = arguments.accessLog
    outcome = _common.measureInReactor("confirmer", measure, arguments)
    report(arguments, outcome)


if __name__ == "__main__":
    main()
