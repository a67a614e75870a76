# -*- test-case-name: tests.test_failure_logs -*-
"""
What the log says when a component cannot connect (issue 20, "Errors and
logs" items 2 to 4): a certificate that does not verify, on either end, a
client certificate whose identity does not match (SASL EXTERNAL), a
connection refused, a name that does not resolve, a timeout, and an
XEP-0114 stream in clear.

The TLS failures run over real loopback TCP with real TLS and
certificates made here; the timeout runs on a L{MemoryReactorClock}; the
DNS failure on the real reactor with a resolver installed through its
public API (so no query leaves the process).
"""

from __future__ import annotations

import os
import time
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import DNSLookupError, TimeoutError
from twisted.internet.interfaces import IResolverSimple
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from tests.routerhelpers import routerConfig
from xmppcomp.component import Component
from xmppcomp.config import RouterConfig, SecretRef
from xmppcomp.router.service import RouterService
from xmppcomp.stream import tls
from xmppcomp.testing import makeCertificateAuthority, writePem

DOMAIN = "example.net"
ALPHA = "alpha.example.net"
SECRET = "alpha's long secret"
CA = makeCertificateAuthority()
OTHER_CA = makeCertificateAuthority("another test CA")


class LogCapture:
    """
    The text of every log event from now until the test ends, and a way to
    wait for one.
    """

    def __init__(self, testCase: SynchronousTestCase) -> None:
        self.texts: list[str] = []
        self._waiting: list[tuple[str, defer.Deferred[str]]] = []
        globalLogPublisher.addObserver(self)
        testCase.addCleanup(globalLogPublisher.removeObserver, self)

    def __call__(self, event: dict[str, Any]) -> None:
        text = formatEvent(event)
        self.texts.append(text)
        for entry in list(self._waiting):
            if entry[0] in text:
                self._waiting.remove(entry)
                # Not from inside the code that logs: the test goes on
                # (and may stop everything) once it is done.
                reactor.callLater(0, entry[1].callback, text)

    def matching(self, needle: str) -> list[str]:
        """
        The texts so far that contain C{needle}.
        """
        return [text for text in self.texts if needle in text]

    def next(self, needle: str) -> defer.Deferred[str]:
        """
        The first text containing C{needle}, seen already or to come.
        """
        seen = self.matching(needle)
        if seen:
            return defer.succeed(seen[0])
        d: defer.Deferred[str] = defer.Deferred()
        self._waiting.append((needle, d))
        return d


class LoopbackCase(TestCase):
    """
    A router on loopback with certificates made here, and components that
    connect to it.
    """

    timeout = 30

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.logs = LogCapture(self)

    def pem(self, certificate: Any) -> tuple[str, str]:
        return writePem(certificate, self.directory)

    def caFile(self, authority: Any, name: str) -> str:
        path = os.path.join(self.directory, name)
        with open(path, "wb") as f:
            f.write(authority.pem)
        return path

    def startRouter(self, certificate: Any = None, **options: Any) -> int:
        """
        Start a router for L{DOMAIN} with C{certificate} (by default one
        that L{CA} issued for it); return its XEP-0225 port.
        """
        service = RouterService(
            routerConfig(
                self.directory,
                DOMAIN,
                certificate or CA.issue([DOMAIN]),
                {ALPHA: SECRET},
                authorization={ALPHA: (ALPHA,)},
                **options,
            ),
            reactor,
        )
        service.startService()
        self.addCleanup(service.stopService)
        return int(service.ports[0].getHost().port)

    def startComponent(self, server: str, **options: Any) -> Component:
        options.setdefault("secret", SECRET)
        component = Component(server, DOMAIN, [ALPHA], reactor=reactor, **options)
        component.startService()
        self.addCleanup(component.stopService)
        return component


class ServerCertificateTests(LoopbackCase):
    """
    A server certificate that does not verify: the component says what it
    was presented, and what it expected.
    """

    @defer.inlineCallbacks
    def test_untrustedCA(self) -> Any:
        """
        A server certificate from a CA outside the configured trust: the
        log names the CA file looked in, the certificate's issuer and its
        fingerprint, and the pause before the next try.
        """
        certificate = CA.issue([DOMAIN])
        port = self.startRouter(certificate)
        otherFile = self.caFile(OTHER_CA, "other-ca.pem")
        server = f"tcp:host=127.0.0.1:port={port}"
        self.startComponent(server, trust=tls.trustCAFile(otherFile))
        line = yield self.logs.next("connecting to")
        self.assertEqual(
            line,
            f"{ALPHA}: connecting to {server} failed (the server's certificate for example.net is not "
            f"signed by a CA in the CA file {otherFile}; issuer CN=xmppcomp test CA, SHA-256 fingerprint "
            f"{tls.formatFingerprint(_digest(certificate))}); waiting at least 300 s before the next try",
        )

    @defer.inlineCallbacks
    def test_systemStore(self) -> Any:
        """
        With the system's CAs (the default), the log says so.
        """
        port = self.startRouter()
        self.patch(os, "environ", {k: v for k, v in os.environ.items() if not k.startswith("SSL_CERT_")})
        self.startComponent(f"tcp:host=127.0.0.1:port={port}")
        line = yield self.logs.next("connecting to")
        self.assertIn("is not signed by a CA in the system store; issuer CN=xmppcomp test CA,", line)

    @defer.inlineCallbacks
    def test_wrongName(self) -> Any:
        """
        A trusted certificate for other names: the log says which names it
        is for and which was expected.
        """
        certificate = CA.issue(["xmpp.example.org", "example.org"])
        port = self.startRouter(certificate)
        self.startComponent(f"tcp:host=127.0.0.1:port={port}", trust=tls.trustCAFile(self.caFile(CA, "ca.pem")))
        line = yield self.logs.next("connecting to")
        self.assertIn(
            "failed (the server's certificate for example.net is for example.org and xmpp.example.org and was "
            "expected for example.net; issuer CN=xmppcomp test CA, SHA-256 fingerprint "
            f"{tls.formatFingerprint(_digest(certificate))});",
            line,
        )

    @defer.inlineCallbacks
    def test_pinnedMismatch(self) -> Any:
        """
        Another certificate than the pinned one: the log gives both
        fingerprints and the pinned file.
        """
        presented = CA.issue([DOMAIN])
        pinned = CA.issue([DOMAIN])
        pinnedFile, _ = self.pem(pinned)
        port = self.startRouter(presented)
        self.startComponent(f"tcp:host=127.0.0.1:port={port}", trust=tls.trustPinned(pinnedFile))
        line = yield self.logs.next("connecting to")
        self.assertIn(
            f"failed (the server's certificate for example.net (SHA-256 fingerprint "
            f"{tls.formatFingerprint(_digest(presented))}, issuer CN=xmppcomp test CA) is not the pinned "
            f"certificate ({pinnedFile}, SHA-256 fingerprint {tls.formatFingerprint(_digest(pinned))}));",
            line,
        )


class ClientCertificateTests(LoopbackCase):
    """
    On the router, a client certificate that does not verify, or whose
    identity does not match: the router's log says why.
    """

    @defer.inlineCallbacks
    def test_untrustedClientCertificate(self) -> Any:
        """
        A client certificate from a CA outside tls.client_cas: the router
        names it, the file and the issuer, and the fingerprint.
        """
        clientCAs = self.caFile(CA, "clients-ca.pem")
        port = self.startRouter(clientCAs=clientCAs)
        clientCert = OTHER_CA.issue([ALPHA], client=True)
        self.startComponent(
            f"tcp:host=127.0.0.1:port={port}", secret=None, clientCertificate=clientCert,
            trust=tls.trustCAFile(clientCAs),
        )
        line = yield self.logs.next("session of (unauthenticated) ended")
        self.assertEqual(
            line,
            f"xep0225 session of (unauthenticated) ended (the client certificate for {ALPHA} is not signed "
            f"by a CA in tls.client_cas ({clientCAs}); issuer CN=another test CA, SHA-256 fingerprint "
            f"{tls.formatFingerprint(_digest(clientCert))}); released no names",
        )
        line = yield self.logs.next("connecting to")
        self.assertTrue(
            line.endswith("; if the server checks client certificates, it may have refused ours (see its log))"),
            line,
        )

    @defer.inlineCallbacks
    def test_externalIdentityMismatch(self) -> Any:
        """
        A trusted client certificate for other domains than the identity
        the component authenticates as: the router logs the SASL EXTERNAL
        failure with the certificate's names and the identity asked, and
        the component logs the same reason.
        """
        clientCAs = self.caFile(CA, "clients-ca.pem")
        port = self.startRouter(clientCAs=clientCAs)
        clientCert = CA.issue(["gamma.example.net", "delta.example.net"], client=True)
        self.startComponent(
            f"tcp:host=127.0.0.1:port={port}", secret=None, clientCertificate=clientCert,
            trust=tls.trustCAFile(clientCAs),
        )
        reason = ("invalid-authzid (the client certificate is for delta.example.net and gamma.example.net and "
                  f"was expected for {ALPHA})")
        line = yield self.logs.next("with EXTERNAL failed")
        self.assertRegex(line, r"^authentication of .*127\.0\.0\.1.* with EXTERNAL failed: ")
        self.assertTrue(line.endswith(reason), line)
        line = yield self.logs.next("connecting to")
        self.assertIn(ALPHA, line)
        self.assertIn("the client certificate is for delta.example.net and gamma.example.net and was expected "
                      f"for {ALPHA}", line)


def _digest(certificate: Any) -> bytes:
    from cryptography.hazmat.primitives import hashes

    return bytes(certificate.original.to_cryptography().fingerprint(hashes.SHA256()))


class ConnectionRefusedTests(LoopbackCase):
    """
    Nothing listens at the server's address.
    """

    @defer.inlineCallbacks
    def test_refused(self) -> Any:
        """
        A closed loopback port: the log says the connection was refused,
        gives the target as host:port, the delay and the time of the next
        try; Twisted's own line names the target too.
        """
        listening = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory.forProtocol(Protocol))
        port = listening.getHost().port
        yield listening.stopListening()
        self.startComponent(f"tcp:host=127.0.0.1:port={port}", retryPolicy=lambda attempt: 7.0)
        before = time.time()
        line = yield self.logs.next("cannot connect")
        after = time.time()
        prefix = (f"{ALPHA}: cannot connect to 127.0.0.1:{port} (connection refused: nothing listens there, or "
                  "a firewall refuses); trying again in 7 s (at ")
        self.assertTrue(line.startswith(prefix), line)
        at = line[len(prefix):-1]
        self.assertIn(at, {time.strftime("%H:%M:%S", time.localtime(t + 7)) for t in (before, after)})
        scheduled = yield self.logs.next("Scheduling retry 1")
        self.assertEqual(scheduled, f"Scheduling retry 1 to connect 127.0.0.1:{port} in 7.0 seconds.")


@implementer(IResolverSimple)
class _NoSuchName:
    """
    A resolver that knows no name, as the system's answers for a name
    under C{.invalid} (RFC 6761), without asking anyone.
    """

    def __init__(self) -> None:
        self.asked: list[str] = []

    def getHostByName(self, name: str, timeout: Any = None) -> defer.Deferred[str]:
        self.asked.append(name)
        return defer.fail(DNSLookupError(f"address {name!r} not found: [Errno -2] Name or service not known"))


class DNSFailureTests(LoopbackCase):
    """
    The server's name does not resolve.
    """

    @defer.inlineCallbacks
    def test_dnsFailure(self) -> Any:
        """
        A name under C{.invalid}: the log says its DNS lookup failed.
        """
        resolver = _NoSuchName()
        previous = reactor.installResolver(resolver)
        self.addCleanup(reactor.installResolver, previous)
        self.startComponent("tcp:host=xmpp.nowhere.invalid:port=5222", retryPolicy=lambda attempt: 5.0)
        line = yield self.logs.next("cannot connect")
        self.assertIn(
            f"{ALPHA}: cannot connect to xmpp.nowhere.invalid:5222 (DNS lookup of xmpp.nowhere.invalid failed: "
            "address 'xmpp.nowhere.invalid' not found: [Errno -2] Name or service not known); trying again in 5 s",
            line,
        )
        self.assertEqual(resolver.asked, ["xmpp.nowhere.invalid"])


class TimeoutTests(SynchronousTestCase):
    """
    No answer from the server's address, on a clock.
    """

    def setUp(self) -> None:
        self.logs = LogCapture(self)
        self.reactor = MemoryReactorClock()

    def fail_(self, error: Exception) -> None:
        factory = self.reactor.tcpClients[-1][2]
        factory.clientConnectionFailed(self.reactor.connectors[-1], Failure(error))

    def test_timeout(self) -> None:
        """
        A connection attempt that times out: the log gives the endpoint's
        timeout, the delay and the time of the next try, which comes then.
        """
        component = Component(
            "tcp:host=192.0.2.7:port=5347:timeout=5", DOMAIN, [ALPHA], secret=SECRET, reactor=self.reactor,
            retryPolicy=lambda attempt: 2.5 * attempt,
        )
        self.reactor.advance(1000)
        component.startService()
        self.addCleanup(component.stopService)
        self.assertEqual(self.reactor.tcpClients[0][:2], ("192.0.2.7", 5347))
        self.assertEqual(self.reactor.tcpClients[0][3], 5)
        self.fail_(TimeoutError())
        (line,) = self.logs.matching("cannot connect")
        self.assertEqual(
            line,
            f"{ALPHA}: cannot connect to 192.0.2.7:5347 (timed out: no answer within 5 s); trying again in "
            f"2.5 s (at {time.strftime('%H:%M:%S', time.localtime(1002.5))})",
        )
        self.reactor.advance(2.5)
        self.assertEqual(len(self.reactor.tcpClients), 2)
        self.fail_(TimeoutError())
        self.assertIn("trying again in 5 s", self.logs.matching("cannot connect")[1])

    def test_maxRetryDelay(self) -> None:
        """
        The default backoff grows up to C{maxRetryDelay} (and its jitter of
        up to a second).
        """
        component = Component("tcp:host=192.0.2.7:port=5347", DOMAIN, [ALPHA], secret=SECRET,
                              reactor=self.reactor, maxRetryDelay=4.0)
        self.assertEqual(component.maxRetryDelay, 4.0)
        delays = [component.retryPolicy(attempt) for attempt in range(1, 30)]
        self.assertLessEqual(max(delays), 5.0)
        self.assertGreaterEqual(delays[-1], 4.0)
        self.assertLessEqual(Component("tcp:host=h:port=1", DOMAIN, [ALPHA], secret=SECRET,
                                       reactor=self.reactor).retryPolicy(100), 61.0)

    def test_other(self) -> None:
        """
        A target the endpoint string does not give as host and port is
        named as written.
        """
        component = Component("unix:/run/xmpp.sock", DOMAIN, [ALPHA], secret=SECRET, reactor=self.reactor)
        component.startService()
        self.addCleanup(component.stopService)
        _, factory, _, _ = self.reactor.unixClients[0]
        factory.clientConnectionFailed(self.reactor.connectors[-1], Failure(OSError("No such file")))
        (line,) = self.logs.matching("cannot connect")
        self.assertIn("cannot connect to unix:/run/xmpp.sock (No such file); trying again in ", line)


class AcceptInClearTests(SynchronousTestCase):
    """
    XEP-0114 over plain TCP says, once at start-up, that it is in clear.
    """

    def test_warning(self) -> None:
        """
        Starting an XEP-0114 component on a C{tcp:} server logs a warning
        that the stream and the secret's digest cross the network in clear;
        one on a C{tls:} server does not.
        """
        logs = LogCapture(self)
        memory = MemoryReactorClock()
        component = Component("tcp:host=127.0.0.1:port=5347", DOMAIN, [ALPHA], secret=SECRET,
                              protocol="xep0114", reactor=memory)
        component.startService()
        self.addCleanup(component.stopService)
        (line,) = logs.matching("INSECURE")
        self.assertEqual(
            line,
            "INSECURE: the XEP-0114 stream to 127.0.0.1:5347 is not encrypted: every stanza, and the "
            "handshake's digest of the secret (enough to guess a weak secret offline), cross the network in "
            "clear; keep it on loopback or a trusted network, or connect with direct TLS (a tls: server endpoint)",
        )
        other = Component("tls:host=127.0.0.1:port=5348", DOMAIN, [ALPHA], secret=SECRET, protocol="xep0114",
                          reactor=memory, trust=tls.trustSystem())
        other.startService()
        self.addCleanup(other.stopService)
        self.assertEqual(len(logs.matching("INSECURE")), 1)


class AcceptDirectTLSTests(LoopbackCase):
    """
    XEP-0114 over a C{tls:} endpoint checks the server's certificate with
    the component's trust, for the server domain.
    """

    def startAcceptRouter(self, certificate: Any) -> int:
        certPath, keyPath = self.pem(certificate)
        secretFile = os.path.join(self.directory, "alpha.secret")
        with open(secretFile, "w") as f:
            f.write(SECRET + "\n")
        service = RouterService(
            RouterConfig(
                domain=DOMAIN,
                certificate=certPath,
                key=keyPath,
                listen=(),
                acceptListen=(f"ssl:0:interface=127.0.0.1:privateKey={keyPath}:certKey={certPath}",),
                acceptSecrets={ALPHA: SecretRef(file=secretFile)},
            ),
            reactor,
        )
        service.startService()
        self.addCleanup(service.stopService)
        return int(service.ports[0].getHost().port)

    @defer.inlineCallbacks
    def test_trusted(self) -> Any:
        """
        A server certificate the trust accepts for the server domain: the
        handshake completes and the name is bound.
        """
        port = self.startAcceptRouter(CA.issue([DOMAIN]))
        component = self.startComponent(f"tls:host=127.0.0.1:port={port}", protocol="xep0114",
                                        trust=tls.trustCAFile(self.caFile(CA, "ca.pem")))
        yield component.whenReady()
        self.assertEqual(list(component.boundHostnames), [ALPHA])
        self.assertEqual(self.logs.matching("INSECURE"), [])

    @defer.inlineCallbacks
    def test_untrusted(self) -> Any:
        """
        A server certificate from a CA outside the trust: refused, and the
        log says why as for XEP-0225.
        """
        certificate = OTHER_CA.issue([DOMAIN])
        port = self.startAcceptRouter(certificate)
        caFile = self.caFile(CA, "ca.pem")
        self.startComponent(f"tls:host=127.0.0.1:port={port}", protocol="xep0114", trust=tls.trustCAFile(caFile))
        line = yield self.logs.next("connecting to")
        self.assertIn(
            f"failed (the server's certificate for example.net is not signed by a CA in the CA file {caFile}; "
            f"issuer CN=another test CA, SHA-256 fingerprint {tls.formatFingerprint(_digest(certificate))}); "
            "waiting at least 300 s",
            line,
        )

    @defer.inlineCallbacks
    def test_wrongName(self) -> Any:
        """
        The certificate is checked for the server domain, not the
        endpoint's host.
        """
        port = self.startAcceptRouter(CA.issue(["127.0.0.1", "localhost"]))
        self.startComponent(f"tls:host=localhost:port={port}", protocol="xep0114",
                            trust=tls.trustCAFile(self.caFile(CA, "ca.pem")))
        line = yield self.logs.next("connecting to")
        self.assertIn("is for 127.0.0.1 and localhost and was expected for example.net;", line)


class TargetTests(SynchronousTestCase):
    """
    How connection messages name the server from its endpoint string.
    """

    def test_forms(self) -> None:
        """
        Named and positional C{tcp:}/C{tls:} arguments give C{host:port}
        (an IPv6 address in brackets, escapes undone) and the connect
        timeout (30 s unless given); anything else is named as written.
        """
        from xmppcomp.component import _Target

        cases = {
            "tcp:host=xmpp.example.net:port=5347": ("xmpp.example.net:5347", "xmpp.example.net", 30.0),
            "tcp:xmpp.example.net:5347:timeout=4": ("xmpp.example.net:5347", "xmpp.example.net", 4.0),
            "tls:port=5270:host=xmpp.example.net": ("xmpp.example.net:5270", "xmpp.example.net", 30.0),
            r"tcp6:host=\:\:1:port=5347": ("[::1]:5347", "::1", 30.0),
            "unix:/run/x.sock": ("unix:/run/x.sock", None, None),
            "tcp:host=h": ("tcp:host=h", None, None),
        }
        for description, expected in cases.items():
            target = _Target.of(description)
            self.assertEqual((target.address, target.host, target.timeout), expected, description)
