"""
Routing throughput on loopback: component A sends 200-byte messages to
component B through a router, with a window of 100 in flight (A sends
more only as B receives). The same run measures, pair by pair:

  - C{ours-0225}: xmppcomp's router, XEP-0225 on both legs (TLS, SCRAM,
    hostname bind);
  - C{ours-0114}: xmppcomp's router, XEP-0114 on both legs (plaintext
    handshake, as the peers below speak);
  - C{wokkel}: wokkel.component's Router with XMPPComponentServerFactory,
    XEP-0114 on both legs;
  - C{prosody}: Prosody 0.12 (private configuration on loopback), two
    XEP-0114 components.

Each router runs in its own process; the two components of every pair run
in this (the load) process. Each run sends the same count to every router
in turn; ratios are taken run by run. Reported per router: messages per
second, router CPU µs per message, load-process CPU µs per message.

The load components are minimal: after negotiation (xmppcomp's own
initiating stack for XEP-0225; a raw XEP-0114 handshake otherwise) they
write pre-serialised bytes and count C{</message>} in what they receive,
so the routers, not the load, are the bottleneck.

    python bench/routing.py [--runs 5] [--count 20000] [--only ours-0225,...]
        [--cprofile OUT]

Run by hand, never by the test suite. Everything stays on 127.0.0.1; each
run is bounded in count and time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
from _common import LOOPBACK  # noqa: E402

from twisted.internet import defer, reactor  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint  # noqa: E402
from twisted.internet.protocol import Factory, Protocol  # noqa: E402

MESSAGE_SIZE = 200
WINDOW = 100
#: Seconds one run may take before it counts as failed.
RUN_TIMEOUT = 60.0

DOMAIN = "example.net"
SCRAM = {"alpha.example.net": "alpha's benchmark secret", "beta.example.net": "beta's benchmark secret"}
ACCEPT_SECRET = "a shared component secret"
PEERS = ("ours-0225", "ours-0114", "wokkel", "prosody")


def message(sender: str, recipient: str, size: int = MESSAGE_SIZE) -> bytes:
    """
    A C{<message/>} of exactly C{size} bytes.
    """
    head = "<message from='%s' to='%s' type='chat' id='bench-000001'><body>" % (sender, recipient)
    tail = "</body></message>"
    padding = size - len(head) - len(tail)
    assert padding > 0
    return (head + "x" * padding + tail).encode("ascii")


class Counter:
    """
    Counts C{</message>} end tags in received bytes, across reads.
    """

    MARK = b"</message>"

    def __init__(self) -> None:
        self.count = 0
        self._tail = b""
        self.onCount: Any = None
        self.error: bytes | None = None

    def feed(self, data: bytes) -> None:
        data = self._tail + data
        n = data.count(self.MARK)
        if b"<stream:error" in data or b"<error" in data:
            self.error = data[-2000:]
        self._tail = data[-(len(self.MARK) - 1) :]
        if n:
            self.count += n
            if self.onCount is not None:
                self.onCount(n)


class RawAccept(Protocol):
    """
    A minimal XEP-0114 component: header, handshake, then raw bytes.
    """

    def __init__(self, hostname: str, secret: str) -> None:
        self.hostname = hostname
        self.secret = secret
        self.buffer = b""
        self.ready: defer.Deferred[RawAccept] = defer.Deferred()
        self.counter = Counter()
        self.phase = "header"

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)
        self.transport.write(
            (
                "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept'"
                " xmlns:stream='http://etherx.jabber.org/streams' to='%s'>" % (self.hostname,)
            ).encode()
        )

    def dataReceived(self, data: bytes) -> None:
        if self.phase == "ready":
            self.counter.feed(data)
            return
        self.buffer += data
        if b"<stream:error" in self.buffer:
            self.phase = "failed"
            self.ready.errback(RuntimeError("stream error: %r" % (self.buffer,)))
            return
        if self.phase == "header":
            match = re.search(rb"""<stream:stream[^>]*\sid=(['"])([^'"]+)\1""", self.buffer)
            if match:
                digest = hashlib.sha1(match.group(2) + self.secret.encode()).hexdigest()
                self.transport.write(b"<handshake>" + digest.encode() + b"</handshake>")
                self.phase = "handshake"
        if self.phase == "handshake" and (b"<handshake/>" in self.buffer or b"<handshake></handshake>" in self.buffer):
            self.phase = "ready"
            rest = self.buffer.split(b"handshake", 2)[-1]
            self.buffer = b""
            self.ready.callback(self)
            self.counter.feed(rest)

    def write(self, data: bytes) -> None:
        self.transport.write(data)


@defer.inlineCallbacks
def connectAccept(port: int, hostname: str, secret: str) -> Any:
    protocol = RawAccept(hostname, secret)
    yield TCP4ClientEndpoint(reactor, LOOPBACK, port).connect(Factory.forProtocol(lambda: protocol))
    result = yield protocol.ready
    return result


class Negotiated225:
    """
    An XEP-0225 component negotiated with xmppcomp's initiating stack
    (STARTTLS, SCRAM-SHA-256-PLUS, bind), then switched to raw bytes.
    """

    def __init__(self, xs: Any) -> None:
        self.xs = xs
        self.counter = Counter()
        xs.dataReceived = self.counter.feed

    def write(self, data: bytes) -> None:
        self.xs.transport.write(data)


@defer.inlineCallbacks
def connect225(port: int, files: _common.RouterFiles, identity: str) -> Any:
    from xmppcomp.stream.bind import BindInitiator
    from xmppcomp.stream.initiating import InitiatingFactory, InitiatingPolicy

    binder = BindInitiator([identity])
    factory = InitiatingFactory(
        InitiatingPolicy(DOMAIN, identity, SCRAM[identity], trust=files.trust(), features=binder.features()),
        reactor,
    )
    xs = yield TCP4ClientEndpoint(reactor, LOOPBACK, port).connect(factory)
    yield xs.authenticator.negotiated
    return Negotiated225(xs)


def flow(sender: Any, receiver: Any, payload: bytes, count: int, window: int = WINDOW) -> defer.Deferred[None]:
    """
    Send C{count} copies of C{payload} from C{sender}, at most C{window}
    not yet received by C{receiver}; fires when all have arrived.
    """
    done: defer.Deferred[None] = defer.Deferred()
    state = {"sent": 0, "received": 0}
    counter = receiver.counter
    start = counter.count

    def pump() -> None:
        n = min(count - state["sent"], state["received"] + window - state["sent"])
        if n > 0:
            state["sent"] += n
            sender.write(payload * n)

    def onCount(n: int) -> None:
        state["received"] = counter.count - start
        if state["received"] >= count:
            counter.onCount = None
            if not done.called:
                done.callback(None)
            return
        pump()

    counter.onCount = onCount
    pump()

    def timedOut() -> None:
        if not done.called:
            counter.onCount = None
            done.errback(
                RuntimeError(
                    "timed out: %d of %d received; last error bytes: %r"
                    % (state["received"], count, counter.error)
                )
            )

    timer = reactor.callLater(RUN_TIMEOUT, timedOut)
    done.addBoth(lambda r: (timer.active() and timer.cancel(), r)[1])
    return done


class Peer:
    """
    One router under test: its process id and its two components.
    """

    def __init__(self, name: str, pid: int, sender: Any, receiver: Any, payload: bytes) -> None:
        self.name = name
        self.pid = pid
        self.sender = sender
        self.receiver = receiver
        self.payload = payload

    @defer.inlineCallbacks
    def measure(self, count: int) -> Any:
        routerBefore = _common.cpuSeconds(self.pid)
        loadBefore = _common.ownCpuSeconds()
        start = time.perf_counter()
        yield flow(self.sender, self.receiver, self.payload, count)
        elapsed = time.perf_counter() - start
        routerCpu = _common.cpuSeconds(self.pid) - routerBefore
        loadCpu = _common.ownCpuSeconds() - loadBefore
        return {
            "rate": count / elapsed,
            "routerUs": routerCpu / count * 1e6,
            "loadUs": loadCpu / count * 1e6,
        }


def prosodyConfig(directory: str, port: int, components: dict[str, str], logFile: str) -> str:
    """
    A private Prosody configuration: loopback only, no client or server
    ports, two XEP-0114 components, TCP_NODELAY, info-level log to a file.
    Built like tests/prosody.py's, with two components.
    """
    from tests.prosody import _luaString as q

    lines = [
        "-- Written by xmppcomp's bench/routing.py; loopback only.",
        "run_as_root = true",
        "daemonize = false",
        "data_path = %s" % q(os.path.join(directory, "data")),
        "pidfile = %s" % q(os.path.join(directory, "prosody.pid")),
        "certificates = %s" % q(os.path.join(directory, "certs")),
        "plugin_paths = {}",
        "interfaces = { %s }" % q(LOOPBACK),
        "local_interfaces = { %s }" % q(LOOPBACK),
        "c2s_ports = {}",
        "c2s_direct_tls_ports = {}",
        "legacy_ssl_ports = {}",
        "s2s_ports = {}",
        "component_ports = { %d }" % port,
        "component_interfaces = { %s }" % q(LOOPBACK),
        "network_settings = { nagle = false }",
        "modules_enabled = {}",
        'modules_disabled = { "s2s", "offline", "c2s" }',
        "log = { info = %s }" % q(logFile),
        "",
        "VirtualHost %s" % q("prosody.test"),
        "",
    ]
    for hostname, secret in components.items():
        lines += ["Component %s" % q(hostname), "    component_secret = %s" % q(secret), ""]
    return "\n".join(lines)


def startProsody(directory: str) -> tuple[subprocess.Popen[bytes], int]:
    for sub in ("data", "certs"):
        os.makedirs(os.path.join(directory, sub), exist_ok=True)
    (port,) = _common.freePorts(1)
    config = os.path.join(directory, "prosody.cfg.lua")
    with open(config, "w") as f:
        f.write(
            prosodyConfig(
                directory,
                port,
                {"a.prosody.test": ACCEPT_SECRET, "b.prosody.test": ACCEPT_SECRET},
                os.path.join(directory, "prosody.log"),
            )
        )
    out = open(os.path.join(directory, "prosody.out"), "ab")
    process = subprocess.Popen(
        [shutil.which("prosody") or "prosody", "-F", "--config", config],
        stdout=out,
        stderr=out,
        cwd=directory,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": directory, "LANG": "C.UTF-8"},
    )
    _common.waitForPort(port, process=process)
    return process, port


def setUp(directory: str, only: list[str], cprofile: str | None) -> tuple[list[subprocess.Popen[Any]], dict[str, Any]]:
    """
    Start the routers of C{only}; return the processes and what to
    connect to.
    """
    processes: list[subprocess.Popen[Any]] = []
    targets: dict[str, Any] = {}
    if any(name.startswith("ours") for name in only):
        files = _common.RouterFiles(
            directory,
            DOMAIN,
            SCRAM,
            {"a.accept.example.net": ACCEPT_SECRET, "b.accept.example.net": ACCEPT_SECRET},
        )
        spec = {
            "domain": DOMAIN,
            "credentials": files.credentials,
            "certificate": files.certificate,
            "key": files.key,
            "authorization": {identity: [identity] for identity in SCRAM},
            "accept": files.secretFiles,
            "log": os.path.join(directory, "ours.log"),
            "limits": {"maxStanzasPerSecond": 10_000_000},
        }
        specPath = os.path.join(directory, "ours.json")
        with open(specPath, "w") as f:
            json.dump(spec, f)
        args = [specPath] + (["--cprofile", cprofile] if cprofile else [])
        process, info = _common.startPython("_router_ours.py", *args, logPath=os.path.join(directory, "ours.err"))
        processes.append(process)
        targets["ours"] = (process.pid, info, files)
    if "wokkel" in only:
        process, info = _common.startPython(
            "_router_wokkel.py", ACCEPT_SECRET, os.path.join(directory, "wokkel.log"),
            logPath=os.path.join(directory, "wokkel.err"),
        )
        processes.append(process)
        targets["wokkel"] = (process.pid, info)
    if "prosody" in only:
        if shutil.which("prosody") is None:
            print("prosody not installed: skipped", file=sys.stderr)
        else:
            prosodyDir = os.path.join(directory, "prosody")
            process, port = startProsody(prosodyDir)
            processes.append(process)
            targets["prosody"] = (process.pid, {"xep0114": port})
    return processes, targets


@defer.inlineCallbacks
def connectPeers(only: list[str], targets: dict[str, Any]) -> Any:
    peers = []
    for name in only:
        if name == "ours-0225" and "ours" in targets:
            pid, info, files = targets["ours"]
            a = yield connect225(info["xep0225"], files, "alpha.example.net")
            b = yield connect225(info["xep0225"], files, "beta.example.net")
            payload = message("alpha.example.net", "beta.example.net")
        elif name == "ours-0114" and "ours" in targets:
            pid, info, files = targets["ours"]
            a = yield connectAccept(info["xep0114"], "a.accept.example.net", ACCEPT_SECRET)
            b = yield connectAccept(info["xep0114"], "b.accept.example.net", ACCEPT_SECRET)
            payload = message("a.accept.example.net", "b.accept.example.net")
        elif name == "wokkel" and "wokkel" in targets:
            pid, info = targets["wokkel"]
            a = yield connectAccept(info["xep0114"], "a.wokkel.test", ACCEPT_SECRET)
            b = yield connectAccept(info["xep0114"], "b.wokkel.test", ACCEPT_SECRET)
            payload = message("a.wokkel.test", "b.wokkel.test")
        elif name == "prosody" and "prosody" in targets:
            pid, info = targets["prosody"]
            a = yield connectAccept(info["xep0114"], "a.prosody.test", ACCEPT_SECRET)
            b = yield connectAccept(info["xep0114"], "b.prosody.test", ACCEPT_SECRET)
            payload = message("a.prosody.test", "b.prosody.test")
        else:
            continue
        assert len(payload) == MESSAGE_SIZE
        peers.append(Peer(name, pid, a, b, payload))
    return peers


@defer.inlineCallbacks
def measureAll(peers: list[Peer], runs: int, count: int) -> Any:
    for peer in peers:
        yield peer.measure(max(count // 10, 1000))  # warm-up
    results: dict[str, list[dict[str, float]]] = {peer.name: [] for peer in peers}
    for _ in range(runs):
        for peer in peers:
            results[peer.name].append((yield peer.measure(count)))
    return results


def report(results: dict[str, list[dict[str, float]]], runs: int, count: int) -> dict[str, Any]:
    names = list(results)
    rows = []
    data: dict[str, Any] = {"messageBytes": MESSAGE_SIZE, "window": WINDOW, "count": count, "runs": runs, "routers": {}}
    for name in names:
        series = results[name]
        entry = {key: _common.summary([r[key] for r in series]) for key in ("rate", "routerUs", "loadUs")}
        entry["raw"] = series
        data["routers"][name] = entry
        rows.append(
            [
                name,
                _common.fmt(entry["rate"], 0),
                _common.fmt(entry["routerUs"]),
                _common.fmt(entry["loadUs"]),
            ]
        )
    ratios = {}
    ratioRows = []
    for ours in ("ours-0225", "ours-0114"):
        for peer in ("wokkel", "prosody"):
            if ours in results and peer in results:
                values = [a["rate"] / b["rate"] for a, b in zip(results[ours], results[peer])]
                key = "%s/%s" % (ours, peer)
                ratios[key] = _common.summary(values)
                ratioRows.append([key, _common.fmt(ratios[key], 2)])
    data["ratios"] = ratios
    print(
        "## Routing: %d-byte messages, window %d, %d per run, %d runs; median (min–max)\n"
        % (MESSAGE_SIZE, WINDOW, count, runs)
    )
    print(_common.table(["router", "msg/s", "router CPU µs/msg", "load CPU µs/msg"], rows))
    if ratioRows:
        print("\nThroughput ratios, taken run by run (same run, same count):\n")
        print(_common.table(["ratio", "median (min–max)"], ratioRows))
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--only", default=",".join(PEERS))
    parser.add_argument("--cprofile", default=None, help="write a cProfile of our router here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    arguments = parser.parse_args()
    only = [name for name in arguments.only.split(",") if name]
    directory = tempfile.mkdtemp(prefix="xmppcomp-bench-routing-")
    processes, targets = setUp(directory, only, arguments.cprofile)
    outcome: dict[str, Any] = {}

    @defer.inlineCallbacks
    def run() -> Any:
        try:
            peers = yield connectPeers(only, targets)
            outcome["results"] = yield measureAll(peers, arguments.runs, arguments.count)
        except Exception as e:
            outcome["error"] = repr(e)
        finally:
            reactor.stop()

    try:
        reactor.callWhenRunning(run)
        reactor.run()
    finally:
        for process in processes:
            _common.stop(process)
        if not arguments.keep:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            print("kept", directory, file=sys.stderr)
    if "results" not in outcome:
        raise SystemExit("routing benchmark failed: %s" % (outcome.get("error"),))
    data = report(outcome["results"], arguments.runs, arguments.count)
    _common.emitJSON("routing", data)


if __name__ == "__main__":
    main()
