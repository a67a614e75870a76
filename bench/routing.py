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
write pre-serialised bytes, so the routers, not the load, are the
bottleneck. Every message has a unique, sequential id; each receiver
checks count, order and addressing per sender (L{Checker}), for the
peers as for ours, and a lost, duplicated, reordered or misaddressed
message ends the benchmark with a non-zero exit saying what was wrong.

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
from twisted.internet.task import deferLater  # noqa: E402

MESSAGE_SIZE = 200
WINDOW = 100
#: Seconds one run may take before it counts as failed.
RUN_TIMEOUT = 60.0
#: Seconds to wait after the last run for anything a router sends late.
QUIET = 0.5

DOMAIN = "example.net"
SCRAM = {"alpha.example.net": "alpha's benchmark secret", "beta.example.net": "beta's benchmark secret"}
ACCEPT_SECRET = "a shared component secret"
PEERS = ("ours-0225", "ours-0114", "wokkel", "prosody")


def messageTemplate(sender: str, recipient: str, size: int = MESSAGE_SIZE) -> bytes:
    """
    A C{<message/>} of exactly C{size} bytes once its C{%010d} (the id's
    sequence number, below 10**10) is filled in.
    """
    head = "<message from='%s' to='%s' type='chat' id='bench-%%010d'><body>" % (sender, recipient)
    tail = "</body></message>"
    padding = size - (len(head) - 5 + 10) - len(tail)
    assert padding > 0
    return (head + "x" * padding + tail).encode("ascii")


def message(sender: str, recipient: str, size: int = MESSAGE_SIZE, sequence: int = 1) -> bytes:
    """
    A C{<message/>} of exactly C{size} bytes, with id C{bench-<sequence>}
    (ten digits).
    """
    return messageTemplate(sender, recipient, size) % (sequence,)


def messages(sender: str, recipient: str, first: int, count: int, size: int = MESSAGE_SIZE) -> bytes:
    """
    C{count} messages of C{size} bytes each, one after another, with the
    sequential ids C{first}, C{first + 1}, ...
    """
    template = messageTemplate(sender, recipient, size)
    return b"".join([template % (i,) for i in range(first, first + count)])


class Counter:
    """
    Counts C{</message>} end tags in received bytes, across reads (for
    C{load.py}, whose messages all carry the same id; C{routing.py} checks
    every message with L{Checker}).
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


class DeliveryError(Exception):
    """
    A router lost, duplicated, reordered or misaddressed a message.
    """


#: Any C{<message>} start tag, and the attributes in it (either quote).
_START = re.compile(rb"<message(\s[^>]*)?>")
_ATTRIBUTE = re.compile(rb"""([\w:.-]+)\s*=\s*(?:'([^']*)'|"([^"]*)")""")
_ID = re.compile(rb"bench-(\d{10})\Z")
_END = b"</message>"


class Checker:
    """
    Checks what a receiving component reads, across reads: every
    C{<message>} comes from one of C{senders}, is addressed to
    C{recipient}, and carries id C{bench-<n>} with C{n} the next in its
    sender's sequence (1, 2, ...: nothing lost, duplicated or reordered).
    The first failure is kept in C{failure} and ends the checking.

    Cheap on the usual path: the start tag of a checked message, with its
    ten digits left open, becomes a compiled regular expression (its
    I{shape}: the router's serialisation, addressing included); every
    read's complete messages are then one C{findall} of that shape, a
    count of C{</message>}, and a comparison of the first, last and
    strictly increasing ids. A read with anything else (another shape or
    sender, a message that does not match) is checked tag by tag.
    """

    def __init__(self, recipient: str, senders: Any) -> None:
        self.recipient = recipient.encode()
        self.senders = {sender.encode() for sender in senders}
        #: Per sender, the sequence number of the next message expected.
        self.next = {sender: 1 for sender in self.senders}
        self.count = 0
        self.failure: str | None = None
        self.error: bytes | None = None
        self.onCount: Any = None
        self._tail = b""
        self._shape: Any = None
        self._shapeSender = b""

    def feed(self, data: bytes) -> None:
        if self.failure is not None:
            return
        data = self._tail + data
        end = data.rfind(_END)
        if end < 0:
            self._tail = data
            if b"<stream:error" in data or b"</stream:stream>" in data:
                self.error = data[-2000:]
                self._fail("stream error or end: %r" % (data[-500:],))
            return
        end += len(_END)
        self._tail = data[end:]
        data = data[:end]
        n = data.count(_END)
        if b"error" in data:
            # A stream error, or a bounce: said by the tag by tag check.
            self.error = data[-2000:]
        elif self._shape is not None:
            ids = self._shape.findall(data)
            if len(ids) == n:
                sender = self._shapeSender
                first = self.next[sender]
                if (
                    int(ids[0]) == first
                    and int(ids[-1]) == first + n - 1
                    and (n == 1 or all(map(bytes.__lt__, ids, ids[1:])))
                ):
                    self.next[sender] = first + n
                    self._counted(n)
                    return
        self._slow(data, n)

    def _slow(self, data: bytes, n: int) -> None:
        """
        Check C{data}'s messages tag by tag; say what is wrong, or learn
        the shape of the last message.
        """
        if b"<stream:error" in data:
            self._fail("stream error: %r" % (data[data.index(b"<stream:error") :][:500],))
            return
        tags = list(_START.finditer(data))
        if len(tags) != n:
            self.error = data[-2000:]
            self._fail("%d <message> start tags but %d </message>: %r" % (len(tags), n, data[-500:]))
            return
        for tag in tags:
            attributes = {m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
                          for m in _ATTRIBUTE.finditer(tag.group(1) or b"")}
            sender = attributes.get(b"from")
            if attributes.get(b"type") == b"error":
                self._fail("an error bounce: %r" % (data[tag.start() :][:500],))
                return
            if sender not in self.senders:
                self._fail("a message from %r; expected one from %s: %r" % (sender, sorted(self.senders), tag.group(0)))
                return
            if attributes.get(b"to") != self.recipient:
                self._fail("a message to %r delivered to %r: %r" % (attributes.get(b"to"), self.recipient, tag.group(0)))
                return
            match = _ID.match(attributes.get(b"id") or b"")
            if match is None:
                self._fail("a message without a benchmark id: %r" % (tag.group(0),))
                return
            expected = self.next[sender]
            got = int(match.group(1))
            if got > expected:
                self._fail(
                    "from %s: id %d arrived where %d was expected: %s lost (or reordered)"
                    % (sender.decode(), got, expected,
                       "id %d" % expected if got == expected + 1 else "ids %d to %d" % (expected, got - 1))
                )
                return
            if got < expected:
                self._fail(
                    "from %s: id %d arrived again or late, after %d: duplicated (or reordered)"
                    % (sender.decode(), got, expected - 1)
                )
                return
            self.next[sender] = expected + 1
        text = tags[-1].group(0)
        digits = text.rindex(b"bench-") + len(b"bench-")
        self._shape = re.compile(re.escape(text[:digits]) + rb"(\d{10})" + re.escape(text[digits + 10 :]))
        self._shapeSender = sender
        self._counted(n)

    def _counted(self, n: int) -> None:
        self.count += n
        if self.onCount is not None:
            self.onCount(n)

    def _fail(self, why: str) -> None:
        self.failure = "at %s: %s" % (self.recipient.decode(), why)
        if self.onCount is not None:
            self.onCount(0)


class RawAccept(Protocol):
    """
    A minimal XEP-0114 component: header, handshake, then raw bytes.
    """

    def __init__(self, hostname: str, secret: str, counter: Counter | Checker | None = None) -> None:
        self.hostname = hostname
        self.secret = secret
        self.buffer = b""
        self.ready: defer.Deferred[RawAccept] = defer.Deferred()
        self.counter = Counter() if counter is None else counter
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
def connectAccept(port: int, hostname: str, secret: str, peer: str | None = None) -> Any:
    """
    A raw XEP-0114 component named C{hostname}; what it reads is checked
    as sent by C{peer} (L{Checker}), or only counted if C{peer} is None.
    """
    protocol = RawAccept(hostname, secret, None if peer is None else Checker(hostname, [peer]))
    yield TCP4ClientEndpoint(reactor, LOOPBACK, port).connect(Factory.forProtocol(lambda: protocol))
    result = yield protocol.ready
    return result


class Negotiated225:
    """
    An XEP-0225 component negotiated with xmppcomp's initiating stack
    (STARTTLS, SCRAM-SHA-256-PLUS, bind), then switched to raw bytes.
    """

    def __init__(self, xs: Any, counter: Counter | Checker | None = None) -> None:
        self.xs = xs
        self.counter = Counter() if counter is None else counter
        xs.dataReceived = self.counter.feed

    def write(self, data: bytes) -> None:
        self.xs.transport.write(data)


@defer.inlineCallbacks
def connect225(port: int, files: _common.RouterFiles, identity: str, peer: str | None = None) -> Any:
    from xmppcomp.stream.bind import BindInitiator
    from xmppcomp.stream.initiating import InitiatingFactory, InitiatingPolicy

    binder = BindInitiator([identity])
    factory = InitiatingFactory(
        InitiatingPolicy(DOMAIN, identity, SCRAM[identity], trust=files.trust(), features=binder.features()),
        reactor,
    )
    xs = yield TCP4ClientEndpoint(reactor, LOOPBACK, port).connect(factory)
    yield xs.authenticator.negotiated
    return Negotiated225(xs, None if peer is None else Checker(identity, [peer]))


def flow(sender: Any, receiver: Any, payloads: bytes, count: int, window: int = WINDOW) -> defer.Deferred[None]:
    """
    Send the C{count} messages in C{payloads} (all of the same size) from
    C{sender}, at most C{window} not yet received by C{receiver}; fires
    when all have arrived, or fails as soon as C{receiver}'s L{Checker}
    finds one lost, duplicated, reordered or misaddressed.
    """
    done: defer.Deferred[None] = defer.Deferred()
    size = len(payloads) // count
    assert size * count == len(payloads)
    state = {"sent": 0, "received": 0}
    counter = receiver.counter
    start = counter.count

    def pump() -> None:
        n = min(count - state["sent"], state["received"] + window - state["sent"])
        if n > 0:
            sent = state["sent"]
            state["sent"] = sent + n
            sender.write(payloads[sent * size : (sent + n) * size])

    def onCount(n: int) -> None:
        failure = getattr(counter, "failure", None)
        if failure is not None:
            counter.onCount = None
            if not done.called:
                done.errback(DeliveryError(failure))
            return
        state["received"] = counter.count - start
        if state["received"] >= count:
            counter.onCount = None
            if not done.called:
                if state["received"] > count:
                    done.errback(DeliveryError("%d received of %d sent" % (state["received"], count)))
                else:
                    done.callback(None)
            return
        pump()

    counter.onCount = onCount
    pump()

    def timedOut() -> None:
        if not done.called:
            counter.onCount = None
            done.errback(
                DeliveryError(
                    "timed out: %d of %d received; last error bytes: %r"
                    % (state["received"], count, counter.error)
                )
            )

    timer = reactor.callLater(RUN_TIMEOUT, timedOut)
    done.addBoth(lambda r: (timer.active() and timer.cancel(), r)[1])
    return done


class Peer:
    """
    One router under test: its process id and its two components, the
    sender's name and the receiver's, and the next id to send.
    """

    def __init__(self, name: str, pid: int, sender: Any, receiver: Any, addresses: tuple[str, str]) -> None:
        self.name = name
        self.pid = pid
        self.sender = sender
        self.receiver = receiver
        self.addresses = addresses
        self.sequence = 1

    @property
    def checked(self) -> int:
        """
        How many messages the receiver has checked so far.
        """
        return self.receiver.counter.count

    @defer.inlineCallbacks
    def measure(self, count: int) -> Any:
        # Built before the clock starts, so the load's CPU is the sending
        # and the receiver's checking only.
        payloads = messages(*self.addresses, self.sequence, count)
        self.sequence += count
        routerBefore = _common.cpuSeconds(self.pid)
        loadBefore = _common.ownCpuSeconds()
        start = time.perf_counter()
        try:
            yield flow(self.sender, self.receiver, payloads, count)
        except DeliveryError as e:
            raise DeliveryError("%s: %s" % (self.name, e)) from None
        elapsed = time.perf_counter() - start
        routerCpu = _common.cpuSeconds(self.pid) - routerBefore
        loadCpu = _common.ownCpuSeconds() - loadBefore
        return {
            "rate": count / elapsed,
            "routerUs": routerCpu / count * 1e6,
            "loadUs": loadCpu / count * 1e6,
        }

    def verify(self) -> None:
        """
        After the last run: the receiver got every id sent, once, and
        nothing since.
        """
        counter = self.receiver.counter
        if counter.failure is not None:
            raise DeliveryError("%s: %s" % (self.name, counter.failure))
        sender = self.addresses[0].encode()
        if counter.next[sender] != self.sequence or counter.count != self.sequence - 1:
            raise DeliveryError(
                "%s: %d messages sent (ids 1 to %d), %d received, next id expected %d"
                % (self.name, self.sequence - 1, self.sequence - 1, counter.count, counter.next[sender])
            )


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
            pair = ("alpha.example.net", "beta.example.net")
            a = yield connect225(info["xep0225"], files, pair[0], pair[1])
            b = yield connect225(info["xep0225"], files, pair[1], pair[0])
        elif name == "ours-0114" and "ours" in targets:
            pid, info, files = targets["ours"]
            pair = ("a.accept.example.net", "b.accept.example.net")
            a = yield connectAccept(info["xep0114"], pair[0], ACCEPT_SECRET, pair[1])
            b = yield connectAccept(info["xep0114"], pair[1], ACCEPT_SECRET, pair[0])
        elif name == "wokkel" and "wokkel" in targets:
            pid, info = targets["wokkel"]
            pair = ("a.wokkel.test", "b.wokkel.test")
            a = yield connectAccept(info["xep0114"], pair[0], ACCEPT_SECRET, pair[1])
            b = yield connectAccept(info["xep0114"], pair[1], ACCEPT_SECRET, pair[0])
        elif name == "prosody" and "prosody" in targets:
            pid, info = targets["prosody"]
            pair = ("a.prosody.test", "b.prosody.test")
            a = yield connectAccept(info["xep0114"], pair[0], ACCEPT_SECRET, pair[1])
            b = yield connectAccept(info["xep0114"], pair[1], ACCEPT_SECRET, pair[0])
        else:
            continue
        assert len(message(*pair)) == MESSAGE_SIZE
        peers.append(Peer(name, pid, a, b, pair))
    return peers


@defer.inlineCallbacks
def measureAll(peers: list[Peer], runs: int, count: int) -> Any:
    for peer in peers:
        yield peer.measure(max(count // 10, 1000))  # warm-up
    results: dict[str, list[dict[str, float]]] = {peer.name: [] for peer in peers}
    for _ in range(runs):
        for peer in peers:
            results[peer.name].append((yield peer.measure(count)))
    # Anything duplicated after the last run's last message shows here.
    yield deferLater(reactor, QUIET, lambda: None)
    for peer in peers:
        peer.verify()
    return results, {peer.name: peer.checked for peer in peers}


def report(results: dict[str, list[dict[str, float]]], checked: dict[str, int], runs: int, count: int) -> dict[str, Any]:
    names = list(results)
    rows = []
    data: dict[str, Any] = {
        "messageBytes": MESSAGE_SIZE,
        "window": WINDOW,
        "count": count,
        "runs": runs,
        "routers": {},
        "checked": checked,
        "cpuClock": "schedstat" if _common._SCHEDSTAT else "ticks",
    }
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
    print(
        "\nChecked at every receiver: each message once, in order of its sequential id, from and to the"
        " right components (%s)." % (", ".join("%s %d" % (name, n) for name, n in checked.items()),)
    )
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
            outcome["results"], outcome["checked"] = yield measureAll(peers, arguments.runs, arguments.count)
        except DeliveryError as e:
            outcome["error"] = "delivery check failed: %s" % (e,)
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
    data = report(outcome["results"], outcome["checked"], arguments.runs, arguments.count)
    _common.emitJSON("routing", data)


if __name__ == "__main__":
    main()
