# -*- test-case-name: tests.test_router_e2e -*-
"""
The router as a service over real loopback TCP, with real TLS
(certificates made here) and SCRAM from a credentials file: XEP-0225
components bind names and exchange stanzas through it.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber.error import StanzaError, StreamError
from twisted.words.protocols.jabber.xmlstream import IQ
from twisted.words.xish import domish
from twisted.words.xish.xmlstream import STREAM_END_EVENT, STREAM_ERROR_EVENT

from tests.routerhelpers import routerConfig
from xmppcomp.router.service import RouterService
from xmppcomp.stream import tls
from xmppcomp.stream.bind import BindError, BindInitiator, bind
from xmppcomp.stream.initiating import InitiatingFactory, InitiatingPolicy
from xmppcomp.testing import makeCertificateAuthority

DOMAIN = "example.net"
CA = makeCertificateAuthority()
ROUTER_CERT = CA.issue(dnsNames=[DOMAIN])
SECRETS = {"alpha.example.net": "alpha's long secret", "beta.example.net": "beta's long secret"}
AUTHORIZATION = {
    "alpha.example.net": ("alpha.example.net", "*.alpha.example.net"),
    "beta.example.net": ("beta.example.net", "*.beta.example.net"),
}


def startRouter(testCase: Any, directory: str | None = None, **options: Any) -> RouterService:
    """
    Start a router for C{testCase}, stopped by its cleanup: L{ROUTER_CERT}
    and a credentials file of L{SECRETS} written to C{directory} (a new one
    by default), XEP-0225 listening on an ephemeral loopback port, and
    C{options} for the rest of its L{RouterConfig}.
    """
    if directory is None:
        directory = testCase.mktemp()
        os.makedirs(directory)
    service = RouterService(routerConfig(directory, DOMAIN, ROUTER_CERT, SECRETS, **options), reactor)
    service.startService()
    testCase.addCleanup(service.stopService)
    return service


class Component:
    """
    A component connected to the router over TCP.
    """

    def __init__(self, xs: Any, binder: BindInitiator) -> None:
        self.xs = xs
        self.binder = binder
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.streamErrors: list[str] = []
        self._waiting: list[tuple[str, defer.Deferred[domish.Element]]] = []
        xs.addObserver(STREAM_END_EVENT, lambda reason: self.ended.called or self.ended.callback(None))
        xs.addObserver(STREAM_ERROR_EVENT, self._streamError)

    def _streamError(self, failure: Any) -> None:
        if isinstance(failure.value, StreamError):
            self.streamErrors.append(failure.value.condition)

    def next(self, xpath: str) -> defer.Deferred[domish.Element]:
        d: defer.Deferred[domish.Element] = defer.Deferred()
        self.xs.addOnetimeObserver(xpath, d.callback)
        return d


class RouterEndToEndTests(TestCase):
    """
    Two XEP-0225 components, two names each, through the router.
    """

    def setUp(self) -> Any:
        self.service = startRouter(self, authorization=AUTHORIZATION)
        (self.port,) = self.service.ports
        self.components: list[Component] = []
        self.addCleanup(self.closeComponents)

    @defer.inlineCallbacks
    def closeComponents(self) -> Any:
        for component in self.components:
            if component.xs.transport is not None and component.xs.transport.connected:
                component.xs.transport.abortConnection()
        yield defer.gatherResults([c.ended for c in self.components])

    @defer.inlineCallbacks
    def connect(self, identity: str, *hostnames: str, secret: str | None = None) -> Any:
        binder = BindInitiator(hostnames or (identity,))
        factory = InitiatingFactory(
            InitiatingPolicy(
                DOMAIN,
                identity,
                secret or SECRETS[identity],
                trust=tls.CATrust([CA.certificate.original.to_cryptography()]),
                features=binder.features(),
            )
        )
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port)
        xs = yield endpoint.connect(factory)
        component = Component(xs, binder)
        self.components.append(component)
        result = yield xs.authenticator.negotiated
        return component, result

    @defer.inlineCallbacks
    def test_exchange(self) -> Any:
        """
        Both components negotiate TLS, SCRAM and bind two names; messages
        and an IQ go both ways; when one disconnects, the other's IQ to it
        gets an error, not silence.
        """
        alpha, result = yield self.connect("alpha.example.net", "alpha.example.net", "chat.alpha.example.net")
        self.assertEqual(result.mechanism, "SCRAM-SHA-256-PLUS")
        beta, _ = yield self.connect("beta.example.net", "beta.example.net", "pubsub.beta.example.net")
        self.assertEqual(alpha.binder.bound, ["alpha.example.net", "chat.alpha.example.net"])
        self.assertEqual(beta.binder.bound, ["beta.example.net", "pubsub.beta.example.net"])

        got = beta.next("/message")
        alpha.xs.send(
            "<message from='room@chat.alpha.example.net' to='node@pubsub.beta.example.net'>"
            "<body>hello beta</body></message>"
        )
        message = yield got
        self.assertEqual((message["from"], str(message.body)), ("room@chat.alpha.example.net", "hello beta"))

        got = alpha.next("/message")
        beta.xs.send("<message from='beta.example.net' to='alpha.example.net'><body>hello alpha</body></message>")
        message = yield got
        self.assertEqual(str(message.body), "hello alpha")

        request = beta.next("/iq[@type='get']")
        iq = IQ(alpha.xs, "get")
        iq["from"] = "chat.alpha.example.net"
        iq.addElement(("urn:example:time", "time"))
        answered = iq.send("pubsub.beta.example.net")
        received = yield request
        reply = domish.Element((None, "iq"))
        reply["type"] = "result"
        reply["id"] = received["id"]
        reply["from"] = received["to"]
        reply["to"] = received["from"]
        beta.xs.send(reply)
        result = yield answered
        self.assertEqual(result["from"], "pubsub.beta.example.net")

        request = beta.next("/iq[@type='get']")
        iq = IQ(alpha.xs, "get")
        iq["from"] = "alpha.example.net"
        iq.addElement(("urn:example:time", "time"))
        unanswered = iq.send("beta.example.net")
        yield request
        beta.xs.transport.loseConnection()
        failure = yield self.assertFailure(unanswered, StanzaError)
        self.assertEqual(failure.condition, "service-unavailable")

    @defer.inlineCallbacks
    def test_duplicateAndUnauthorized(self) -> Any:
        """
        A duplicate bind gets C{conflict}, an unauthorized one
        C{not-allowed}; during negotiation the latter fails it.
        """
        alpha, _ = yield self.connect("alpha.example.net", "alpha.example.net", "x.alpha.example.net")
        duplicate = yield self.assertFailure(bind(alpha.xs, "x.alpha.example.net"), StanzaError)
        self.assertEqual(duplicate.condition, "conflict")
        other = yield self.assertFailure(bind(alpha.xs, "x.beta.example.net"), StanzaError)
        self.assertEqual(other.condition, "not-allowed")
        error = yield self.assertFailure(
            self.connect("beta.example.net", "alpha.example.net"), BindError
        )
        self.assertEqual((error.hostname, error.condition), ("alpha.example.net", "not-allowed"))

    @defer.inlineCallbacks
    def test_spoofedFrom(self) -> Any:
        """
        A stanza from a name the session did not bind ends its stream with
        C{invalid-from}, and the router keeps serving the others.
        """
        alpha, _ = yield self.connect("alpha.example.net")
        beta, _ = yield self.connect("beta.example.net")
        alpha.xs.send("<message from='beta.example.net' to='beta.example.net'><body>spoof</body></message>")
        yield alpha.ended
        self.assertEqual(alpha.streamErrors, ["invalid-from"])
        got = beta.next("/iq[@type='result']")
        iq = IQ(beta.xs, "get")
        iq["from"] = "beta.example.net"
        iq.addElement(("urn:xmpp:ping", "ping"))
        iq.send(DOMAIN)
        pong = yield got
        self.assertEqual(pong["from"], DOMAIN)

    @defer.inlineCallbacks
    def test_wrongSecret(self) -> Any:
        """
        A wrong secret from the credentials file fails SASL.
        """
        from xmppcomp.errors import SASLFailure

        failure = yield self.assertFailure(
            self.connect("alpha.example.net", secret="not alpha's secret"), SASLFailure
        )
        self.assertEqual(failure.condition, "not-authorized")

    @defer.inlineCallbacks
    def test_shutdown(self) -> Any:
        """
        Stopping the service ends every session with C{system-shutdown}.
        """
        alpha, _ = yield self.connect("alpha.example.net")
        yield self.service.stopService()
        yield alpha.ended
        self.assertEqual(alpha.streamErrors, ["system-shutdown"])
