# -*- test-case-name: tests.test_stream_e2e -*-
"""
End-to-end stream negotiation over real loopback TCP with real TLS:
certificates generated here, the initiating side against the receiving
side, for each SASL mechanism and for each way it must fail.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.trial.unittest import TestCase
from twisted.words.xish.xmlstream import STREAM_END_EVENT

from xmppcomp.errors import SASLFailure, TLSRequiredError
from xmppcomp.stream import tls
from xmppcomp.stream.initiating import InitiatingFactory, InitiatingPolicy
from xmppcomp.stream.receiving import ReceivingFactory, ReceivingPolicy
from xmppcomp.stream.sasl import MemoryCredentialStore
from xmppcomp.testing import makeCertificateAuthority

SERVER = "example.net"
IDENTITY = "comp.example.net"
SECRET = "a long shared secret for the component"

CA = makeCertificateAuthority()
OTHER_CA = makeCertificateAuthority("some other CA")
SERVER_CERT = CA.issue(dnsNames=[SERVER])
WRONG_NAME_CERT = CA.issue(dnsNames=["not-example.org"])
UNTRUSTED_CERT = OTHER_CA.issue(dnsNames=[SERVER])
CLIENT_CERT = CA.issue(dnsNames=[IDENTITY], xmppAddrs=[IDENTITY], client=True)
STORE = MemoryCredentialStore()
STORE.add(IDENTITY, SECRET)
TRUST = tls.CATrust([CA.certificate.original.to_cryptography()])


def tls12Options(certificate: Any) -> CertificateOptions:
    """
    Server options that stop at TLS 1.2, for tls-server-end-point binding.
    """
    return CertificateOptions(
        privateKey=certificate.privateKey.original.to_cryptography_key(),
        certificate=certificate.original.to_cryptography(),
        raiseMinimumTo=TLSVersion.TLSv1_2,
        lowerMaximumSecurityTo=TLSVersion.TLSv1_2,
    )


class LoopbackNegotiationTests(TestCase):
    """
    A component negotiates with a receiving side over 127.0.0.1.
    """

    def setUp(self) -> None:
        self.streams: list[Any] = []
        self.ended: list[defer.Deferred[None]] = []
        self.buildHooks: list[Any] = []

    def track(self, xs: Any) -> None:
        d: defer.Deferred[None] = defer.Deferred()
        xs.addObserver(STREAM_END_EVENT, lambda reason: d.called or d.callback(None))
        self.streams.append(xs)
        self.ended.append(d)

    def listen(self, serverTLS: Any = "default", **policyArgs: Any) -> Any:
        if serverTLS == "default":
            serverTLS = tls.serverTLSOptions(SERVER_CERT, clientCAs=[CA.certificate])
        policyArgs.setdefault("domains", {SERVER})
        policyArgs.setdefault("credentials", STORE)
        if serverTLS is None:
            policyArgs["allowPlaintext"] = True
        factory = ReceivingFactory(ReceivingPolicy(tlsOptions=serverTLS, **policyArgs))
        self.servers: list[Any] = []
        build = factory.buildProtocol

        def buildProtocol(addr: Any) -> Any:
            xs = build(addr)
            self.servers.append(xs)
            self.track(xs)
            for hook in self.buildHooks:
                hook(xs)
            return xs

        factory.buildProtocol = buildProtocol  # type: ignore[method-assign]
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(self.shutdown, port)
        return port

    @defer.inlineCallbacks
    def shutdown(self, port: Any) -> Any:
        for xs in self.streams:
            if xs.transport is not None and xs.transport.connected:
                xs.transport.abortConnection()
        yield defer.gatherResults(self.ended)
        yield port.stopListening()

    def connect(self, port: Any, **policyArgs: Any) -> defer.Deferred[Any]:
        policyArgs.setdefault("serverDomain", SERVER)
        policyArgs.setdefault("identity", IDENTITY)
        if "clientCertificate" not in policyArgs:
            policyArgs.setdefault("secret", SECRET)
        policyArgs.setdefault("trust", TRUST)
        factory = InitiatingFactory(InitiatingPolicy(**policyArgs))
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)

        def connected(xs: Any) -> Any:
            self.track(xs)
            self.client = xs
            return xs.authenticator.negotiated

        return endpoint.connect(factory).addCallback(connected)

    @defer.inlineCallbacks
    def negotiate(self, mechanisms: list[str] | None = None, serverTLS: Any = "default", **clientArgs: Any) -> Any:
        port = self.listen(serverTLS)
        result = yield self.connect(port, mechanisms=mechanisms, **clientArgs)
        (server,) = self.servers
        self.assertTrue(server.negotiated)
        self.assertEqual(server.authenticator.identity, IDENTITY)
        self.assertEqual(server.authenticator.mechanism, result.mechanism)
        self.assertEqual(result.identity, IDENTITY)
        # The stream carries stanzas both ways once negotiated.
        received: defer.Deferred[Any] = defer.Deferred()
        server.addOnetimeObserver("/message", received.callback)
        self.client.send("<message to='x@%s'><body>ping</body></message>" % (SERVER,))
        message = yield received
        self.assertEqual(str(message.body), "ping")
        yield self.client.closeStream()
        return result

    @defer.inlineCallbacks
    def test_scramSha1(self) -> Any:
        """
        SCRAM-SHA-1 (the mandatory-to-implement mechanism) over TLS.
        """
        result = yield self.negotiate(["SCRAM-SHA-1"])
        self.assertEqual(result.mechanism, "SCRAM-SHA-1")
        self.assertIn(result.tlsVersion, ("TLSv1.2", "TLSv1.3"))

    @defer.inlineCallbacks
    def test_scramSha256(self) -> Any:
        """
        SCRAM-SHA-256 over TLS.
        """
        result = yield self.negotiate(["SCRAM-SHA-256"])
        self.assertEqual(result.mechanism, "SCRAM-SHA-256")

    @defer.inlineCallbacks
    def test_strongestIsScramSha256PlusOnTLS13(self) -> Any:
        """
        Left to choose, the component takes SCRAM-SHA-256-PLUS, bound to the
        TLS 1.3 session with tls-exporter.
        """
        result = yield self.negotiate()
        self.assertEqual(result.mechanism, "SCRAM-SHA-256-PLUS")
        self.assertEqual(result.tlsVersion, "TLSv1.3")

    @defer.inlineCallbacks
    def test_scramSha1Plus(self) -> Any:
        """
        SCRAM-SHA-1-PLUS with channel binding.
        """
        result = yield self.negotiate(["SCRAM-SHA-1-PLUS"])
        self.assertEqual(result.mechanism, "SCRAM-SHA-1-PLUS")

    @defer.inlineCallbacks
    def test_plusOnTLS12(self) -> Any:
        """
        On TLS 1.2, SCRAM-SHA-256-PLUS binds with tls-server-end-point.
        """
        result = yield self.negotiate(serverTLS=tls12Options(SERVER_CERT))
        self.assertEqual(result.mechanism, "SCRAM-SHA-256-PLUS")
        self.assertEqual(result.tlsVersion, "TLSv1.2")

    @defer.inlineCallbacks
    def test_plain(self) -> Any:
        """
        PLAIN inside TLS, checked against the stored SCRAM keys.
        """
        result = yield self.negotiate(["PLAIN"])
        self.assertEqual(result.mechanism, "PLAIN")

    @defer.inlineCallbacks
    def test_external(self) -> Any:
        """
        EXTERNAL with a client certificate whose identity is the domain,
        and no secret at all.
        """
        result = yield self.negotiate(clientCertificate=CLIENT_CERT)
        self.assertEqual(result.mechanism, "EXTERNAL")

    @defer.inlineCallbacks
    def test_pinned(self) -> Any:
        """
        A pinned server certificate is accepted without any CA.
        """
        result = yield self.negotiate(trust=tls.trustPinned(SERVER_CERT))
        self.assertEqual(result.identity, IDENTITY)

    @defer.inlineCallbacks
    def test_wrongSecret(self) -> Any:
        """
        A wrong secret fails with the SASL condition C{not-authorized}.
        """
        port = self.listen()
        d = self.connect(port, secret="not the secret")
        failure = yield self.assertFailure(d, SASLFailure)
        self.assertEqual(failure.condition, "not-authorized")
        yield defer.gatherResults(self.ended)
        self.assertIsNone(self.servers[0].authenticator.identity)

    @defer.inlineCallbacks
    def assertTLSRefused(self, serverCert: Any = None, **clientArgs: Any) -> Any:
        serverTLS = tls.serverTLSOptions(serverCert) if serverCert is not None else "default"
        port = self.listen(serverTLS)
        d = self.connect(port, **clientArgs)
        yield self.assertFailure(d, Exception)
        yield defer.gatherResults(self.ended)
        (server,) = self.servers
        # Nothing was authenticated: no SASL exchange ever started.
        self.assertIsNone(server.authenticator.machine.sasl)
        self.assertFalse(server.negotiated)

    def test_wrongCertificateName(self) -> Any:
        """
        A server certificate for another name aborts in TLS, before any
        credential is sent.
        """
        return self.assertTLSRefused(WRONG_NAME_CERT)

    def test_untrustedChain(self) -> Any:
        """
        A server certificate from an untrusted CA aborts in TLS.
        """
        return self.assertTLSRefused(UNTRUSTED_CERT)

    def test_pinMismatch(self) -> Any:
        """
        Another certificate than the pinned one is refused, though it is
        valid for the name and issued by a trusted CA.
        """
        return self.assertTLSRefused(SERVER_CERT, trust=tls.trustPinned(CA.issue(dnsNames=[SERVER])))

    @defer.inlineCallbacks
    def test_serverWithoutTLS(self) -> Any:
        """
        A server that offers no TLS is refused with L{TLSRequiredError},
        and no credential is sent.
        """
        port = self.listen(serverTLS=None)
        d = self.connect(port)
        yield self.assertFailure(d, TLSRequiredError)
        yield defer.gatherResults(self.ended)
        self.assertIsNone(self.servers[0].authenticator.machine.sasl.mechanism)


    @defer.inlineCallbacks
    def test_flushSeam(self) -> Any:
        """
        Without an immediate flush (L{xmppcomp.stream.xmlstream.flushWrites}
        flushes nothing on Twisted's public API, wherever the negotiators
        ask for it), negotiation over TLS 1.3 completes, every answer left
        to the reactor.
        """
        flushed: list[bool] = []

        def watch(xs: Any) -> None:
            flush = xs.flush

            def recordingFlush() -> bool:
                result: bool = flush()
                flushed.append(result)
                return result

            xs.flush = recordingFlush

        self.buildHooks.append(watch)
        result = yield self.negotiate(["SCRAM-SHA-256"])
        self.assertEqual(result.mechanism, "SCRAM-SHA-256")
        self.assertEqual(result.tlsVersion, "TLSv1.3")
        self.assertNotIn(True, flushed)

    @defer.inlineCallbacks
    def assertSameRefusal(self, serverCert: Any, **clientArgs: Any) -> Any:
        """
        A certificate refused with the creator the policy builds fails
        negotiation with the same reason as with a given C{tlsCreator}.
        """
        reasons = []
        for ahead in (True, False):
            if not ahead:
                trust = clientArgs.pop("trust", TRUST)
                clientArgs["tlsCreator"] = tls.clientTLSOptions(SERVER, trust)
            self.streams, self.ended = [], []
            port = self.listen(tls.serverTLSOptions(serverCert))
            failure = yield self.assertFailure(self.connect(port, **clientArgs), Exception)
            yield defer.gatherResults(self.ended)
            reasons.append(type(failure))
        self.assertEqual(reasons[0], reasons[1])
        return reasons[0]

    @defer.inlineCallbacks
    def test_wrongNameRefusedAlike(self) -> Any:
        """
        A certificate for another name: the component reports the identity
        check's error either way.
        """
        reason = yield self.assertSameRefusal(WRONG_NAME_CERT)
        self.assertTrue(issubclass(reason, tls.CertificateNameMismatch), reason)

    def test_untrustedRefusedAlike(self) -> Any:
        """
        A certificate from an untrusted authority: the same failure either
        way.
        """
        return self.assertSameRefusal(UNTRUSTED_CERT)

    def test_pinMismatchRefusedAlike(self) -> Any:
        """
        A certificate other than the pinned one: the same failure either
        way.
        """
        return self.assertSameRefusal(SERVER_CERT, trust=tls.trustPinned(CA.issue(dnsNames=[SERVER])))


    @defer.inlineCallbacks
    def test_saslPreparedWhenTheOfferRepeats(self) -> Any:
        """
        Once a server's SASL offer is known, the component makes its
        C{<auth/>} for that offer while the server answers the TLS
        handshake, with the new connection's channel binding; it is sent
        only if the server makes the same offer again, and authenticates
        (SCRAM-SHA-256-PLUS: the binding is this connection's). A
        different offer gets a choice made afresh.
        """
        from xmppcomp.stream.initiating import OfferMemory

        # The component's memory of offers, shared by its connections.
        offers = OfferMemory()
        used: list[bool] = []
        first = yield self.negotiate(offers=offers)
        used.append(self.client.authenticator.machine.saslMadeAhead)
        second = yield self.negotiate(offers=offers)
        used.append(self.client.authenticator.machine.saslMadeAhead)
        self.assertEqual(used, [False, True])
        self.assertEqual((first.mechanism, second.mechanism), ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256-PLUS"))

        port = self.listen(allowPlain=False)
        other = yield self.connect(port, offers=offers)
        used.append(self.client.authenticator.machine.saslMadeAhead)
        yield self.client.closeStream()
        self.assertEqual(used, [False, True, False])
        self.assertEqual(other.mechanism, "SCRAM-SHA-256-PLUS")
