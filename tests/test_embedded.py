# -*- test-case-name: tests.test_embedded -*-
"""
Tests for L{xmppcomp.embedded}: the router on loopback that
C{twistd xmppcomp} runs when no server is configured.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from twisted.internet import defer, reactor
from twisted.internet.error import CannotListenError, ConnectError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from xmppcomp import embedded as embeddedModule
from xmppcomp.component import Component
from xmppcomp.embedded import EmbeddedComponent, EmbeddedRouter, negotiationSummary
from xmppcomp.metrics import Metrics
from xmppcomp.stream import tls


def settle() -> defer.Deferred[None]:
    """
    Wait one reactor turn. L{Component.whenReady} fires inside the
    ClientService's preparation of the connection, before the ClientService
    counts it as connected; stopping the component in that very call chain
    leaves the ClientService stopped with the connection still open (its
    loss then raises Automat's NoTransition). Tests that stop right after
    whenReady wait a turn first.
    """
    return deferLater(reactor, 0, lambda: None)


class EmbeddedRouterUnitTests(SynchronousTestCase):
    """
    What an L{EmbeddedRouter} makes up before it starts.
    """

    def test_certificate(self) -> None:
        """
        The certificate is a self-signed ECDSA P-256 server certificate for
        the domain, and the trust given to the component pins exactly it.
        """
        router = EmbeddedRouter(["component.dev.test"], domain="dev.test")
        certificate = x509.load_pem_x509_certificate(router.certificatePEM)
        self.assertEqual(certificate.issuer, certificate.subject)
        key = certificate.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        self.assertEqual(key.curve.name, "secp256r1")
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        self.assertEqual(names.value.get_values_for_type(x509.DNSName), ["dev.test"])
        trust = router.trust
        self.assertIsInstance(trust, tls.PinnedTrust)
        self.assertEqual(trust.certificate, certificate)

    def test_secret(self) -> None:
        """
        Each router makes its own long random secret, which its repr does
        not show.
        """
        first = EmbeddedRouter(["component.localhost"])
        second = EmbeddedRouter(["component.localhost"])
        self.assertGreaterEqual(len(first.secret), 43)
        self.assertNotEqual(first.secret, second.secret)
        self.assertNotIn(first.secret, repr(first))
        self.assertNotIn(first.secret, repr(first.__dict__.get("routerService")))

    def test_defaults(self) -> None:
        """
        The domain is localhost; the identity is the first hostname; it may
        bind its hostnames and names below them.
        """
        router = EmbeddedRouter(["a.localhost", "b.localhost"])
        self.assertEqual(router.domain, "localhost")
        self.assertEqual(router.identity, "a.localhost")
        self.assertEqual(router.listenPort, 0)
        self.assertEqual(
            router.authorization(),
            {"a.localhost": ("a.localhost", "*.a.localhost", "b.localhost", "*.b.localhost")},
        )

    def test_addIdentity(self) -> None:
        """
        L{EmbeddedRouter.addIdentity} adds an identity with its own long
        random secret and hostnames, authorised with the names below them;
        L{EmbeddedComponent} logs in as it when given its identity.
        """
        router = EmbeddedRouter(["component.localhost"], reactor=reactor)
        secret = router.addIdentity("agent.localhost", ["agent.localhost"])
        self.assertGreaterEqual(len(secret), 43)
        self.assertNotEqual(secret, router.secret)
        self.assertEqual(router.secretFor("agent.localhost"), secret)
        self.assertEqual(router.secretFor("component.localhost"), router.secret)
        self.assertEqual(router.hostnamesOf("agent.localhost"), ("agent.localhost",))
        self.assertEqual(
            router.authorization(),
            {
                "component.localhost": ("component.localhost", "*.component.localhost"),
                "agent.localhost": ("agent.localhost", "*.agent.localhost"),
            },
        )
        agent = EmbeddedComponent(router, identity="agent.localhost")
        self.assertEqual(
            (agent.identity, agent.hostnames, agent.secret),
            ("agent.localhost", ["agent.localhost"], secret),
        )
        self.assertRaises(KeyError, router.secretFor, "nobody.localhost")

    def test_addIdentityRefused(self) -> None:
        """
        An existing identity, a hostname that overlaps another identity's
        (or is the router's domain), no hostname, or a running router are
        refused.
        """
        router = EmbeddedRouter(["component.localhost"])
        router.addIdentity("agent.localhost", ["agent.localhost"])
        self.assertRaises(ValueError, router.addIdentity, "agent.localhost", ["x.localhost"])
        self.assertRaises(ValueError, router.addIdentity, "component.localhost", ["x.localhost"])
        self.assertRaises(ValueError, router.addIdentity, "x.localhost", ["a.component.localhost"])
        self.assertRaises(ValueError, router.addIdentity, "x.localhost", ["agent.localhost"])
        self.assertRaises(ValueError, router.addIdentity, "x.localhost", ["localhost"])
        self.assertRaises(ValueError, router.addIdentity, "x.localhost", [])
        router.running = True
        self.assertRaises(RuntimeError, router.addIdentity, "x.localhost", ["x.localhost"])

    def test_xtlsCertificates(self) -> None:
        """
        The in-memory XTLS authority (made once) issues certificates for
        hostnames, usable as TLS client and server, that it signed and
        that L{xmppcomp.xtls} accepts for those names.
        """
        from cryptography.x509.oid import ExtendedKeyUsageOID
        from twisted.words.protocols.jabber.jid import JID

        from xmppcomp.xtls import CertificateMismatch, checkPeerCertificate

        router = EmbeddedRouter(["component.localhost"])
        (authority,) = router.xtlsTrust
        self.assertEqual(router.xtlsTrust, (authority,))
        issued = router.issueXTLSCertificate(["component.localhost", "x.localhost"])
        certificate = issued.original.to_cryptography()
        ca = authority.original.to_cryptography()
        self.assertEqual(certificate.issuer, ca.subject)
        certificate.verify_directly_issued_by(ca)
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertEqual(
            set(usages), {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        )
        checkPeerCertificate(certificate, JID("x.localhost"))
        self.assertRaises(CertificateMismatch, checkPeerCertificate, certificate, JID("y.localhost"))
        self.assertTrue(
            ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        )
        self.assertRaises(ValueError, router.issueXTLSCertificate, [])

    def test_noHostnames(self) -> None:
        """
        A router for no hostname is an error.
        """
        self.assertRaises(ValueError, EmbeddedRouter, [])

    def test_endpointBeforeStart(self) -> None:
        """
        The client endpoint provides L{IStreamClientEndpoint} and fails to
        connect while the router does not listen.
        """
        router = EmbeddedRouter(["component.localhost"])
        endpoint = router.clientEndpoint()
        self.assertTrue(verifyObject(IStreamClientEndpoint, endpoint))
        self.assertIsNone(router.port)
        self.failureResultOf(endpoint.connect(Factory.forProtocol(Protocol)), ConnectError)

    def test_embeddedComponent(self) -> None:
        """
        An L{EmbeddedComponent} takes the router's domain, hostnames,
        identity, secret and trust, and connects through its endpoint.
        """
        router = EmbeddedRouter(["a.localhost", "b.localhost"], reactor=reactor)
        component = EmbeddedComponent(router, maxQueued=7)
        self.assertEqual(component.serverDomain, "localhost")
        self.assertEqual(component.hostnames, ["a.localhost", "b.localhost"])
        self.assertEqual(component.identity, "a.localhost")
        self.assertEqual(component.secret, router.secret)
        self.assertEqual(component.trust, router.trust)
        self.assertEqual(component.maxQueued, 7)
        assert component.endpointFactory is not None
        [link] = component.links
        endpoint = component.endpointFactory(link)
        self.assertTrue(verifyObject(IStreamClientEndpoint, endpoint))
        self.assertIsNone(router.port)
        # Not listening yet: the router's endpoint says so.
        self.failureResultOf(endpoint.connect(Factory.forProtocol(Protocol)), ConnectError)
        self.assertEqual(negotiationSummary(component), "SASL, no TLS")


    def test_metrics(self) -> None:
        """
        An L{EmbeddedRouter} counts in the L{Metrics} it is given, or in
        one of its own; so does an L{EmbeddedComponent}, and the two may
        share one.
        """
        metrics = Metrics()
        router = EmbeddedRouter(["a.localhost"], reactor=reactor, metrics=metrics)
        self.assertIs(router.metrics, metrics)
        self.assertIs(EmbeddedComponent(router, metrics=metrics).metrics, metrics)
        other = EmbeddedRouter(["a.localhost"], reactor=reactor)
        self.assertIsInstance(other.metrics, Metrics)
        self.assertIsNot(other.metrics, metrics)
        self.assertIsNot(EmbeddedComponent(other).metrics, other.metrics)


class EmbeddedRouterTests(TestCase):
    """
    An L{EmbeddedRouter} running on loopback with the real reactor.
    """

    timeout = 30

    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def logText(self) -> str:
        return "\n".join(formatEvent(event) for event in self.events)

    def start(self, router: EmbeddedRouter) -> EmbeddedRouter:
        router.startService()
        self.addCleanup(lambda: router.stopService() if router.running else None)
        return router

    @defer.inlineCallbacks
    def test_privateFiles(self) -> Any:
        """
        While running, the certificate, key and SCRAM keys are in a private
        directory (0700, files 0600) holding no secret; it is removed on
        stop.
        """
        router = self.start(EmbeddedRouter(["component.localhost"], reactor=reactor))
        directory = router.directory
        assert directory is not None
        self.assertEqual(stat.S_IMODE(os.stat(directory).st_mode), 0o700)
        names = sorted(os.listdir(directory))
        self.assertEqual(names, ["credentials.json", "router.key", "router.pem"])
        for name in names:
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode) & 0o077, 0)
        with open(os.path.join(directory, "credentials.json")) as f:
            text = f.read()
        self.assertIn("component.localhost", json.loads(text)["identities"])
        self.assertNotIn(router.secret, text)
        yield router.stopService()
        self.assertFalse(os.path.exists(directory))
        self.assertIsNone(router.directory)
        self.assertIsNone(router.port)

    @defer.inlineCallbacks
    def test_connectsAndLogs(self) -> Any:
        """
        The router listens on 127.0.0.1 and says where; an
        L{EmbeddedComponent} connects, binds, and L{EmbeddedRouter.watch}
        logs it with the mechanism; the secret is never logged.
        """
        router = self.start(EmbeddedRouter(["component.localhost"], reactor=reactor))
        port = router.routerService.ports[0].getHost()  # type: ignore[union-attr]
        self.assertEqual((port.host, port.port), ("127.0.0.1", router.port))
        self.assertIn("embedded router for localhost on 127.0.0.1:%d" % (router.port,), self.logText())
        component = EmbeddedComponent(router, reactor=reactor)
        watched = router.watch(component)
        component.startService()
        self.addCleanup(component.stopService)
        yield watched
        yield settle()
        table = router.routerService.router.table  # type: ignore[union-attr]
        self.assertIsNotNone(table.lookup("component.localhost"))
        self.assertRegex(
            self.logText(),
            r"component component\.localhost connected and bound \(SCRAM-SHA-\d+(-PLUS)?, TLSv1\.[23]\)",
        )
        self.assertNotIn(router.secret, self.logText())

    @defer.inlineCallbacks
    def test_sharedMetrics(self) -> Any:
        """
        The router given a L{Metrics} hands it to its
        L{RouterService<xmppcomp.router.service.RouterService>}: a
        component given the same one shows the router's counts (its
        session, its bound name) next to its own in one exposition.
        """
        metrics = Metrics()
        router = self.start(
            EmbeddedRouter(["component.localhost"], reactor=reactor, metrics=metrics)
        )
        self.assertIs(router.routerService.metrics, metrics)  # type: ignore[union-attr]
        component = EmbeddedComponent(router, reactor=reactor, metrics=metrics)
        component.startService()
        self.addCleanup(component.stopService)
        yield component.whenReady()
        yield settle()
        self.assertEqual(metrics.value("xmppcomp_router_bound_names"), 1.0)
        exposition = metrics.exposition()
        self.assertIn(b"xmppcomp_router_sessions{", exposition)
        self.assertIn(b"# TYPE xmppcomp_bind_refusals_total counter", exposition)

    @defer.inlineCallbacks
    def test_authorization(self) -> Any:
        """
        The component's identity may bind names below its hostnames (a
        second connection binds one), not other names of the domain.
        """
        router = self.start(EmbeddedRouter(["component.localhost"], reactor=reactor))
        mayBind = router.routerService.router.mayBind  # type: ignore[union-attr]
        self.assertTrue(mayBind("component.localhost", "x.component.localhost"))
        self.assertFalse(mayBind("component.localhost", "other.localhost"))
        self.assertFalse(mayBind("component.localhost", "localhost"))
        second = Component(
            "tcp:host=127.0.0.1:port=%d" % (router.port,),
            router.domain,
            ["x.component.localhost"],
            secret=router.secret,
            identity=router.identity,
            trust=router.trust,
            reactor=reactor,
        )
        second.startService()
        self.addCleanup(second.stopService)
        yield second.whenReady()
        yield settle()
        self.assertIsNotNone(router.routerService.router.table.lookup("x.component.localhost"))  # type: ignore[union-attr]

    @defer.inlineCallbacks
    def test_configuredPort(self) -> Any:
        """
        A configured port is used, on 127.0.0.1.
        """
        probe = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        free = probe.getHost().port
        yield probe.stopListening()
        router = self.start(EmbeddedRouter(["component.localhost"], port=free, reactor=reactor))
        self.assertEqual(router.port, free)

    def test_listenFailureCleansUp(self) -> None:
        """
        When the port is taken, starting fails and the private directory is
        removed.
        """
        taken = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        self.addCleanup(taken.stopListening)
        made: list[str] = []
        realMkdtemp = tempfile.mkdtemp

        def mkdtemp(**kwargs: Any) -> str:
            made.append(realMkdtemp(**kwargs))
            return made[-1]

        self.patch(embeddedModule.tempfile, "mkdtemp", mkdtemp)
        router = EmbeddedRouter(["component.localhost"], port=taken.getHost().port, reactor=reactor)
        self.assertRaises(CannotListenError, router.startService)
        self.assertEqual(len(made), 1)
        self.assertFalse(os.path.exists(made[0]))
        self.assertIsNone(router.directory)
