"""
Router memory under bounced large stanzas (issue 16, item 6): a component
that stopped reading (B) and a sender (A) of large messages to it that
reads what comes back, by default 500 messages of 200 KB (100 MB) per run.
Once B's buffers are full, the router bounces each message to A with
C{resource-constraint}.

A fresh router process (C{_router_ours.py}, default limits) per run; A and
B are raw XEP-0114 components in this process. A sends in batches of 10
messages, each batch followed by a ping to the router, and waits for the
pong before the next batch: at most one batch (2 MB) is in flight. The
router's RSS is read after both connected (before), after every batch
(the peak), at the end, and again after B disconnected. Reported: those
figures, the growth (peak - before, end - before), bounces received by A
and their mean size; the median (min-max) over the runs.

    python bench/bounce_memory.py [--megabytes 100] [--stanza-kb 200] [--runs 3]

Run by hand, never by the test suite. Loopback only, bounded (the sender
never has more than one batch in flight; each run stops after
C{--megabytes}).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
from _common import LOOPBACK  # noqa: E402

from twisted.internet import defer, reactor  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol  # noqa: E402
from twisted.internet.protocol import Protocol  # noqa: E402

DOMAIN = "example.net"
SENDER = "a.accept.example.net"
RECEIVER = "b.accept.example.net"
SECRET = "a bench secret, long enough"
BATCH = 10
MB = 1024 * 1024
#: The start tag of a top-level stanza, and whether it is an empty element.
_START = re.compile(rb"\s*<(message|iq|presence)\b[^>]*?(/?)>")


class Raw(Protocol):
    """
    A raw XEP-0114 component: header and handshake, then it writes what it
    is given and counts what it reads (bounces, pongs).
    """

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname
        self.buffer = b""
        self.ready: defer.Deferred[Raw] = defer.Deferred()
        self.negotiated = False
        self.bounces = 0
        self.bounceBytes = 0
        self.received = 0
        self._pong: tuple[bytes, defer.Deferred[None]] | None = None

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)
        self.transport.write(
            b"<stream:stream xmlns='jabber:component:accept'"
            b" xmlns:stream='http://etherx.jabber.org/streams' to='%s'>" % (self.hostname.encode(),)
        )

    def dataReceived(self, data: bytes) -> None:
        self.received += len(data)
        self.buffer += data
        if not self.negotiated:
            match = re.search(rb"<stream:stream[^>]*\sid='([^']+)'", self.buffer)
            if match and b"<handshake" not in self.buffer:
                digest = hashlib.sha1(match.group(1) + SECRET.encode()).hexdigest()
                self.transport.write(b"<handshake>%s</handshake>" % (digest.encode(),))
                self.buffer = self.buffer[match.end() :]
            if b"<handshake/>" in self.buffer:
                self.negotiated = True
                self.buffer = self.buffer.split(b"<handshake/>", 1)[1]
                self.ready.callback(self)
            return
        # Whole stanzas only (bounces are messages of type error, pongs
        # iqs); an incomplete one stays in the buffer.
        while True:
            start = _START.match(self.buffer)
            if start is None:
                break
            if start.group(2):
                end = start.end()
            else:
                close = self.buffer.find(b"</%s>" % (start.group(1),), start.end())
                if close == -1:
                    break
                end = close + len(start.group(1)) + 3
            stanza = self.buffer[:end]
            self.buffer = self.buffer[end:]
            if start.group(1) == b"message" and b"type='error'" in stanza:
                self.bounces += 1
                self.bounceBytes += len(stanza)
            elif self._pong is not None and b"id='%s'" % (self._pong[0],) in stanza:
                _, d = self._pong
                self._pong = None
                d.callback(None)

    def ping(self, ident: bytes) -> defer.Deferred[None]:
        """
        Ping the router; fires with its answer (after everything the
        router wrote before it).
        """
        d: defer.Deferred[None] = defer.Deferred()
        self._pong = (ident, d)
        self.transport.write(
            b"<iq type='get' id='%s' from='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
            % (ident, self.hostname.encode(), DOMAIN.encode())
        )
        return d


@defer.inlineCallbacks
def connect(port: int, hostname: str) -> Any:
    protocol = yield connectProtocol(TCP4ClientEndpoint(reactor, LOOPBACK, port), Raw(hostname))
    yield protocol.ready
    return protocol


@defer.inlineCallbacks
def oneRun(port: int, pid: int, count: int, stanzaBytes: int) -> Any:
    receiver = yield connect(port, RECEIVER)
    receiver.transport.pauseProducing()
    sender = yield connect(port, SENDER)
    yield sender.ping(b"warm")
    before = _common.rssBytes(pid)
    peak = before
    head = b"<message from='%s' to='%s' id='m%%d'><body>" % (SENDER.encode(), RECEIVER.encode())
    tail = b"</body></message>"
    body = b"x" * (stanzaBytes - len(head) - len(tail) - 4)
    sent = 0
    batch = 0
    while sent < count:
        for _ in range(min(BATCH, count - sent)):
            sender.transport.write(head % (sent,) + body + tail)
            sent += 1
        batch += 1
        yield sender.ping(b"b%d" % (batch,))
        peak = max(peak, _common.rssBytes(pid))
    end = _common.rssBytes(pid)
    receiver.transport.abortConnection()
    yield sender.ping(b"after")
    after = _common.rssBytes(pid)
    sender.transport.loseConnection()
    return {
        "before": before,
        "peak": peak,
        "end": end,
        "afterClose": after,
        "growthPeak": peak - before,
        "growthEnd": end - before,
        "sentBytes": sent * stanzaBytes,
        "bounces": sender.bounces,
        "bounceBytes": sender.bounceBytes,
        "meanBounce": sender.bounceBytes / sender.bounces if sender.bounces else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--stanza-kb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    arguments = parser.parse_args()
    stanzaBytes = arguments.stanza_kb * 1000
    count = arguments.megabytes * 1000 * 1000 // stanzaBytes
    directory = tempfile.mkdtemp(prefix="bounce-memory-")
    results: list[dict[str, Any]] = []
    failures: list[Any] = []

    @defer.inlineCallbacks
    def runs() -> Any:
        files = _common.RouterFiles(directory, DOMAIN, {}, {SENDER: SECRET, RECEIVER: SECRET})
        for run in range(arguments.runs):
            spec = {
                "domain": DOMAIN,
                "credentials": files.credentials,
                "certificate": files.certificate,
                "key": files.key,
                "authorization": {},
                "accept": files.secretFiles,
                "log": os.path.join(directory, "router-%d.log" % (run,)),
            }
            specPath = os.path.join(directory, "router-%d.json" % (run,))
            with open(specPath, "w") as f:
                json.dump(spec, f)
            # A fresh router per run (the startup blocks this process
            # until it listens, which is fine between runs).
            process, info = _common.startPython(
                "_router_ours.py", specPath, logPath=os.path.join(directory, "router-%d.err" % (run,))
            )
            try:
                result = yield oneRun(info["xep0114"], info["pid"], count, stanzaBytes)
                results.append(result)
            finally:
                _common.stop(process)

    def go() -> None:
        d = runs()
        d.addErrback(failures.append)
        d.addBoth(lambda _: reactor.stop())

    try:
        reactor.callWhenRunning(go)
        reactor.run()
    finally:
        if arguments.keep:
            print("kept", directory)
        else:
            shutil.rmtree(directory, ignore_errors=True)
    if failures:
        failures[0].raiseException()

    def cell(key: str, scale: float = MB, digits: int = 1) -> str:
        return _common.fmt(_common.summary([r[key] / scale for r in results]), digits)

    print(
        "## Router RSS while %d messages of %d KB (%d MB) to a component that does not read bounce;"
        " %d runs, median (min–max)\n" % (count, arguments.stanza_kb, count * stanzaBytes // 1000000, len(results))
    )
    print(
        _common.table(
            ["figure", "value"],
            [
                ["RSS before (MiB)", cell("before")],
                ["RSS peak (MiB)", cell("peak")],
                ["RSS at the end (MiB)", cell("end")],
                ["RSS after the receiver left (MiB)", cell("afterClose")],
                ["growth, peak - before (MiB)", cell("growthPeak")],
                ["growth, end - before (MiB)", cell("growthEnd")],
                ["bounces received by the sender", cell("bounces", 1, 0)],
                ["bytes of bounces received (KiB)", cell("bounceBytes", 1024, 0)],
                ["mean bounce (bytes)", cell("meanBounce", 1, 0)],
            ],
        )
    )
    _common.emitJSON(
        "bounce_memory",
        {"count": count, "stanzaBytes": stanzaBytes, "runs": results},
    )


if __name__ == "__main__":
    main()
