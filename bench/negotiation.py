"""
Negotiation on loopback: one transcript of the XML a component and the
router exchange (SASL payloads elided), then the time from TCP connect to
"negotiated and bound" for sequential connections, per mechanism.

    python bench/negotiation.py [--runs N] [--no-transcript]

Run by hand, never by the test suite. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from twisted.internet import defer, task  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint  # noqa: E402
from twisted.words.xish.xmlstream import STREAM_CONNECTED_EVENT, STREAM_END_EVENT  # noqa: E402

from xmppcomp.config import RouterConfig  # noqa: E402
from xmppcomp.router.service import RouterService  # noqa: E402
from xmppcomp.stream import tls  # noqa: E402
from xmppcomp.stream.bind import BindInitiator  # noqa: E402
from xmppcomp.stream.initiating import InitiatingFactory, InitiatingPolicy  # noqa: E402
from xmppcomp.stream.sasl import FileCredentialStore  # noqa: E402
from xmppcomp.testing import makeCertificateAuthority, writePem  # noqa: E402

DOMAIN = "example.net"
IDENTITY = "comp.example.net"
SECRET = "a benchmark secret of some length"
SASL_PAYLOAD = re.compile(
    r"(<(auth|response|challenge|success)\b[^>]*>)([^<]+)(</\2>)"
)


def elide(data: str) -> str:
    """
    Replace SASL payloads by their length.
    """
    return SASL_PAYLOAD.sub(lambda m: "%s[%d base64 chars elided]%s" % (m.group(1), len(m.group(3)), m.group(4)), data)


@defer.inlineCallbacks
def negotiateOnce(reactor: Any, port: int, trust: Any, mechanisms: list[str] | None, transcript: list[str] | None) -> Any:
    binder = BindInitiator([IDENTITY, "chat." + IDENTITY])
    factory = InitiatingFactory(
        InitiatingPolicy(DOMAIN, IDENTITY, SECRET, trust=trust, mechanisms=mechanisms, features=binder.features()),
        reactor,
    )
    if transcript is not None:

        def record(xs: Any) -> None:
            xs.rawDataOutFn = lambda data: transcript.append("C: " + elide(data.decode("utf-8", "replace")))
            xs.rawDataInFn = lambda data: transcript.append("S: " + elide(data.decode("utf-8", "replace")))

        factory.addBootstrap(STREAM_CONNECTED_EVENT, record)
    start = time.perf_counter()
    xs = yield TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(factory)
    result = yield xs.authenticator.negotiated
    elapsed = time.perf_counter() - start
    ended: defer.Deferred[None] = defer.Deferred()
    xs.addObserver(STREAM_END_EVENT, lambda reason: ended.called or ended.callback(None))
    xs.closeStream()
    yield ended
    return elapsed, result


@defer.inlineCallbacks
def main(reactor: Any, runs: int, showTranscript: bool) -> Any:
    directory = tempfile.mkdtemp()
    ca = makeCertificateAuthority()
    certPath, keyPath = writePem(ca.issue(dnsNames=[DOMAIN]), directory)
    credentials = os.path.join(directory, "credentials.json")
    store = FileCredentialStore(credentials)
    store.add(IDENTITY, SECRET)
    store.save()
    service = RouterService(
        RouterConfig(
            domain=DOMAIN,
            credentials=credentials,
            certificate=certPath,
            key=keyPath,
            listen=("tcp:0:interface=127.0.0.1",),
            authorization={IDENTITY: (IDENTITY, "*." + IDENTITY)},
        ),
        reactor,
    )
    service.startService()
    port = service.ports[0].getHost().port
    trust = tls.CATrust([ca.certificate.original.to_cryptography()])
    from twisted.logger import globalLogBeginner

    globalLogBeginner.beginLoggingTo([], redirectStandardIO=False, discardBuffer=True)
    if showTranscript:
        transcript: list[str] = []
        yield negotiateOnce(reactor, port, trust, None, transcript)
        print("## Transcript (SCRAM-SHA-256-PLUS, TLS 1.3; after STARTTLS the bytes shown are inside TLS)\n")
        print("```")
        for line in transcript:
            print(line)
        print("```\n")
    rows = []
    for mechanisms in (["SCRAM-SHA-256-PLUS"], ["SCRAM-SHA-256"], ["SCRAM-SHA-1"], ["PLAIN"]):
        times = []
        for _ in range(runs):
            elapsed, result = yield negotiateOnce(reactor, port, trust, mechanisms, None)
            times.append(elapsed * 1000)
        rows.append((mechanisms[0], statistics.median(times), min(times), max(times), runs))
    print("## Connect to negotiated and 2 names bound, loopback, sequential\n")
    print("| mechanism | median ms | min ms | max ms | runs |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, median, low, high, n in rows:
        print("| %s | %.2f | %.2f | %.2f | %d |" % (name, median, low, high, n))
    yield service.stopService()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--no-transcript", action="store_true")
    arguments = parser.parse_args()
    task.react(lambda reactor: main(reactor, arguments.runs, not arguments.no_transcript))
