# -*- test-case-name: tests.test_router_service -*-
"""
Tests for L{xmppcomp.router.service.Router}: XEP-0225 components negotiate
with the router in memory (L{xmppcomp.testing.MemoryEndpoint}, pretend
TLS, real SASL and bind), bind names and exchange stanzas through it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.error import StanzaError, StreamError
from twisted.words.protocols.jabber.xmlstream import IQ
from twisted.words.xish import domish
from twisted.words.xish.xmlstream import STREAM_ERROR_EVENT

from xmppcomp.config import RouterLimits
from xmppcomp.ns import NS_COMPONENT_0, NS_COMPONENT_TMP, NS_DISCO_INFO, NS_PING
from xmppcomp.router.service import Router
from xmppcomp.stream.bind import BindError, BindInitiator, bind, unbind
from xmppcomp.stream.initiating import InitiatingAuthenticator, InitiatingFactory, InitiatingPolicy
from xmppcomp.stream.receiving import ReceivingFactory, ReceivingPolicy
from xmppcomp.stream.sasl import MemoryCredentialStore
from xmppcomp.testing import MemoryConnection, MemoryEndpoint, PretendTLS


DOMAIN = "example.net"
SECRETS = {
    "alpha.example.net": "alpha secret, long enough",
    "beta.example.net": "beta secret, long enough",
    "gamma.example.net": "gamma secret, long enough",
}
STORE = MemoryCredentialStore()
for _identity, _secret in SECRETS.items():
    STORE.add(_identity, _secret)


def mayBind(identity: str, hostname: str) -> bool:
    """
    Each identity may bind its own name, names below it, and the shared
    name C{shared.example.net}.
    """
    return (
        hostname == identity
        or hostname.endswith("." + identity)
        or hostname == "shared.example.net"
    )


class Component:
    """
    One connected component: its stream, what it received, its
    connection.
    """

    def __init__(self, xs: Any, connection: MemoryConnection, binder: BindInitiator) -> None:
        self.xs = xs
        self.connection = connection
        self.binder = binder
        self.received: list[domish.Element] = []
        self.streamErrors: list[str] = []
        xs.addObserver("/message", self.received.append)
        xs.addObserver("/presence", self.received.append)
        xs.addObserver("/iq[@type='get']", self.received.append)
        xs.addObserver(STREAM_ERROR_EVENT, self._streamError)

    def _streamError(self, failure: Any) -> None:
        if isinstance(failure.value, StreamError):
            self.streamErrors.append(failure.value.condition)

    def send(self, xml: str) -> None:
        self.xs.send(xml)


class RouterHarness:
    """
    A router and the components connected to it in memory.
    """

    def __init__(self, testCase: SynchronousTestCase, **limits: Any) -> None:
        self.testCase = testCase
        self.clock = MemoryReactorClock()
        self.router = Router(DOMAIN, mayBind, RouterLimits(**limits), self.clock)
        self.factory = ReceivingFactory(
            ReceivingPolicy(
                domains={DOMAIN},
                credentials=STORE,
                tlsOptions=PretendTLS(),
                features=self.router.receivingFeatures(),
                # As RouterService wires it: refusals count with the rest.
                metrics=self.router.metrics,
            ),
            reactor=self.clock,
        )
        self.router.addBootstraps(self.factory, "xep0225")
        self.endpoint = MemoryEndpoint(self.factory)

    def connect(self, identity: str, *hostnames: str) -> tuple[Component, defer.Deferred[Any]]:
        binder = BindInitiator(hostnames or (identity,))
        clientFactory = InitiatingFactory(
            InitiatingPolicy(
                DOMAIN,
                identity,
                SECRETS[identity],
                tlsCreator=PretendTLS(),
                features=binder.features(),
            ),
            reactor=self.clock,
        )
        client = self.testCase.successResultOf(self.endpoint.connect(clientFactory))
        component = Component(client, self.endpoint.connections[-1], binder)
        self.flush()
        return component, client.authenticator.negotiated

    def component(self, identity: str, *hostnames: str) -> Component:
        component, negotiated = self.connect(identity, *hostnames)
        self.testCase.successResultOf(negotiated)
        return component

    def flush(self) -> None:
        self.endpoint.flush()


def message(sender: str, recipient: str, body: str, kind: str | None = None) -> str:
    typeAttr = " type='%s'" % (kind,) if kind else ""
    return "<message from='%s' to='%s'%s><body>%s</body></message>" % (
        sender,
        recipient,
        typeAttr,
        body,
    )


def _condition(stanza: domish.Element) -> str | None:
    from twisted.words.protocols.jabber.error import exceptionFromStanza

    if stanza.getAttribute("type") != "error":
        return None
    return exceptionFromStanza(stanza).condition


class BindTests(SynchronousTestCase):
    """
    Hostname binding against the router.
    """

    def setUp(self) -> None:
        self.h = RouterHarness(self)

    def test_bindSeveral(self) -> None:
        """
        A component binds each of its hostnames during negotiation, in
        C{urn:xmpp:component:0}; they are all routed to its session.
        """
        alpha = self.h.component("alpha.example.net", "alpha.example.net", "chat.alpha.example.net")
        self.assertEqual(alpha.binder.namespace, NS_COMPONENT_0)
        self.assertEqual(alpha.binder.bound, ["alpha.example.net", "chat.alpha.example.net"])
        session = self.h.router.table.lookup("chat.alpha.example.net")
        assert session is not None
        self.assertEqual(session.identity, "alpha.example.net")
        self.assertEqual(session.names, ["alpha.example.net", "chat.alpha.example.net"])

    def test_bindResultRepeatsHostname(self) -> None:
        """
        In C{urn:xmpp:component:0} the bind result repeats the hostname; in
        the seed namespace it is an empty result.
        """
        alpha = self.h.component("alpha.example.net")
        d0 = bind(alpha.xs, "Two.Alpha.Example.Net", NS_COMPONENT_0)
        dTmp = bind(alpha.xs, "three.alpha.example.net", NS_COMPONENT_TMP)
        self.h.flush()
        self.assertEqual(self.successResultOf(d0), "two.alpha.example.net")
        self.assertEqual(self.successResultOf(dTmp), "three.alpha.example.net")
        self.assertIsNotNone(self.h.router.table.lookup("three.alpha.example.net"))

    def test_conflict(self) -> None:
        """
        A name bound by another session, or already by this one, gets
        C{conflict}.
        """
        alpha = self.h.component("alpha.example.net", "alpha.example.net", "shared.example.net")
        beta = self.h.component("beta.example.net")
        d = bind(beta.xs, "shared.example.net")
        again = bind(alpha.xs, "alpha.example.net")
        self.h.flush()
        self.assertEqual(self.failureResultOf(d, StanzaError).value.condition, "conflict")
        self.assertEqual(self.failureResultOf(again, StanzaError).value.condition, "conflict")

    def test_notAllowed(self) -> None:
        """
        A name the identity may not use gets C{not-allowed}, and so does
        the router's own domain.
        """
        alpha = self.h.component("alpha.example.net")
        d = bind(alpha.xs, "beta.example.net")
        own = bind(alpha.xs, DOMAIN)
        self.h.flush()
        self.assertEqual(self.failureResultOf(d, StanzaError).value.condition, "not-allowed")
        self.assertEqual(self.failureResultOf(own, StanzaError).value.condition, "not-allowed")

    def test_notAllowedDuringNegotiation(self) -> None:
        """
        A refused name during negotiation fails it with L{BindError}
        naming the hostname and condition.
        """
        component, negotiated = self.h.connect("alpha.example.net", "beta.example.net")
        failure = self.failureResultOf(negotiated, BindError)
        self.assertEqual((failure.value.hostname, failure.value.condition), ("beta.example.net", "not-allowed"))

    def test_bindRequestsTogether(self) -> None:
        """
        L{BindInitiator} sends the bind requests of all its names at once,
        before any answer (one round trip, not one per name), and waits
        for every answer: a refused name leaves the others bound (it is
        listed in C{refused}), and no answer is left unhandled.
        """
        from twisted.internet.testing import StringTransport
        from twisted.words.protocols.jabber import xmlstream

        names = ["a.alpha.example.net", "b.alpha.example.net", "c.alpha.example.net"]
        binder = BindInitiator(names)
        xs = xmlstream.XmlStream(xmlstream.Authenticator())
        xmlstream.upgradeWithIQResponseTracker(xs)
        transport = StringTransport()
        xs.makeConnection(transport)
        xs.dataReceived(
            "<stream:stream xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
        )
        transport.clear()
        negotiated = binder.negotiate(xs, NS_COMPONENT_0)
        sent = transport.value().decode("utf-8")
        self.assertEqual(sent.count("<iq "), 3)
        for name in names:
            self.assertIn("<hostname>%s</hostname>" % (name,), sent)
        ids = list(xs.iqDeferreds)
        self.assertEqual(len(ids), 3)
        self.assertNoResult(negotiated)
        xs.dataReceived("<iq type='result' id='%s'/>" % (ids[0],))
        xs.dataReceived("<iq type='result' id='%s'/>" % (ids[2],))
        self.assertNoResult(negotiated)
        xs.dataReceived(
            "<iq type='error' id='%s'><error type='cancel'><conflict "
            "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>" % (ids[1],)
        )
        self.successResultOf(negotiated)
        self.assertEqual(binder.bound, [names[0], names[2]])
        self.assertEqual([(r.hostname, r.condition) for r in binder.refused], [(names[1], "conflict")])

    def test_badRequest(self) -> None:
        """
        A missing or malformed hostname gets C{bad-request}.
        """
        alpha = self.h.component("alpha.example.net")
        replies: list[Any] = []
        for payload in (
            "<bind xmlns='%s'/>" % (NS_COMPONENT_0,),
            "<bind xmlns='%s'><hostname>a@b.example.net</hostname></bind>" % (NS_COMPONENT_0,),
            "<bind xmlns='%s'><hostname>bad..alpha.example.net</hostname></bind>" % (NS_COMPONENT_TMP,),
        ):
            iq = IQ(alpha.xs, "set")
            iq.addRawXml(payload)
            replies.append(iq.send())
        self.h.flush()
        for d in replies:
            self.assertEqual(self.failureResultOf(d, StanzaError).value.condition, "bad-request")

    def test_unbind(self) -> None:
        """
        Unbind answers a result and removes the route at once; a name not
        bound gets C{item-not-found}; stanzas to the unbound name bounce.
        """
        alpha = self.h.component("alpha.example.net", "alpha.example.net", "chat.alpha.example.net")
        beta = self.h.component("beta.example.net")
        d = unbind(alpha.xs, "chat.alpha.example.net")
        missing = unbind(alpha.xs, "nothing.alpha.example.net")
        self.h.flush()
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.failureResultOf(missing, StanzaError).value.condition, "item-not-found")
        self.assertIsNone(self.h.router.table.lookup("chat.alpha.example.net"))
        beta.send(message("beta.example.net", "room@chat.alpha.example.net", "hi"))
        self.h.flush()
        (bounce,) = beta.received
        self.assertEqual(_condition(bounce), "service-unavailable")

    def test_answerBeforeLogLine(self) -> None:
        """
        L{HostnameBinder.handle} hands the answer to its C{send} before it
        logs the change or the refusal: the peer waits for the answer, not
        for the log.
        """
        from twisted.logger import globalLogPublisher

        from xmppcomp.stream.bind import HostnameBinder, bindRequest

        order: list[tuple[str, str]] = []

        def observe(event: dict[str, Any]) -> None:
            if event.get("log_namespace") == "xmppcomp.stream.bind":
                order.append(("log", event.get("condition") or event.get("action")))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        class Registry:
            def mayBind(self, identity: str, hostname: str) -> bool:
                return mayBind(identity, hostname)

            def claim(self, hostname: str, owner: object) -> bool:
                return True

            def release(self, hostname: str, owner: object) -> None:
                pass

        binder = HostnameBinder("alpha.example.net", object(), Registry(), 4)

        def send(reply: domish.Element) -> None:
            order.append(("send", reply["type"]))

        binder.handle(bindRequest("chat.alpha.example.net"), send)
        binder.handle(bindRequest("chat.alpha.example.net", action="unbind"), send)
        binder.handle(bindRequest("beta.example.net"), send)
        self.assertEqual(
            order,
            [
                ("send", "result"),
                ("log", "bound"),
                ("send", "result"),
                ("log", "unbound"),
                ("send", "error"),
                ("log", "not-allowed"),
            ],
        )

    def test_answersBeforeLogLines(self) -> None:
        """
        A component's bind requests arrive together; the router answers
        them all before it logs the names bound and the negotiation (the
        log lines wait for the end of the read, L{afterRead}).
        """
        from twisted.logger import globalLogPublisher

        order: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            namespace = event.get("log_namespace")
            if namespace == "xmppcomp.stream.bind" and event.get("action") == "bound":
                order.append("log " + event["hostname"])
            elif namespace == "xmppcomp.stream.receiving" and "negotiated" in event.get("log_format", ""):
                order.append("log negotiated")

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        build = self.h.factory.buildProtocol

        def buildProtocol(addr: Any) -> Any:
            xs = build(addr)
            connectionMade = xs.connectionMade

            def watchWrites() -> None:
                write = xs.transport.write

                def recordingWrite(data: bytes) -> None:
                    if b"type='result'" in data:
                        order.append("answer")
                    write(data)

                xs.transport.write = recordingWrite
                connectionMade()

            xs.connectionMade = watchWrites
            return xs

        self.h.factory.buildProtocol = buildProtocol  # type: ignore[method-assign]
        self.h.component("alpha.example.net", "alpha.example.net", "chat.alpha.example.net")
        self.assertEqual(
            order,
            ["answer", "answer", "log alpha.example.net", "log negotiated", "log chat.alpha.example.net"],
        )

    def test_afterReadOnceNegotiated(self) -> None:
        """
        On a negotiated stream, L{NegotiatingXmlStream.afterRead} calls at
        once, even inside a read: routing defers nothing.
        """
        from xmppcomp.stream.negotiating import NegotiatingXmlStream

        alpha = self.h.component("alpha.example.net")
        xs = alpha.xs
        self.assertIsInstance(xs, NegotiatingXmlStream)
        calls: list[Any] = []
        xs.afterRead(calls.append, "now")
        xs.addObserver("/message", lambda m: xs.afterRead(calls.append, "inside") or calls.append("after it"))
        xs.dataReceived(b"<message to='alpha.example.net'/>")
        self.assertEqual(calls, ["now", "inside", "after it"])

    def test_bindRequestsMadeAhead(self) -> None:
        """
        Once SASL has succeeded, while the router restarts the stream, the
        component makes its bind requests (serialised as the stream sends
        them); the requests it sends are those, and bind the names.
        """
        made: list[list[str]] = []
        prepare = BindInitiator.prepare

        def recordingPrepare(binder: Any, xs: Any, namespace: str) -> None:
            prepare(binder, xs, namespace)
            made.append([xml for iq, xml in binder._prepared[2]])

        self.patch(BindInitiator, "prepare", recordingPrepare)
        sent: list[str] = []
        send = InitiatingAuthenticator.request

        def recordingRequest(authenticator: Any, iq: Any, xml: Any = None) -> Any:
            sent.append(xml)
            return send(authenticator, iq, xml)

        self.patch(InitiatingAuthenticator, "request", recordingRequest)
        alpha = self.h.component("alpha.example.net", "alpha.example.net", "chat.alpha.example.net")
        self.assertEqual(alpha.binder.bound, ["alpha.example.net", "chat.alpha.example.net"])
        self.assertEqual(len(made), 2)  # asked by both bind namespaces, made once
        self.assertEqual(made[0], made[1])
        self.assertEqual(sent, made[0])
        self.assertIn("<hostname>chat.alpha.example.net</hostname>", sent[1])

    def test_requestSerialisedAheadNeedsItsId(self) -> None:
        """
        A request serialised ahead must carry the id it was serialised
        with.
        """
        component, negotiated = self.h.connect("alpha.example.net")
        iq = domish.Element((None, "iq"))
        iq["type"] = "get"
        authenticator = InitiatingAuthenticator(component.xs.authenticator.policy, self.h.clock)
        authenticator.xmlstream = component.xs
        self.assertRaises(ValueError, authenticator.request, iq, "<iq type='get'/>")

    def test_maxNames(self) -> None:
        """
        Beyond C{maxNamesPerSession} a bind gets C{resource-constraint}.
        """
        h = RouterHarness(self, maxNamesPerSession=2)
        alpha = h.component("alpha.example.net", "alpha.example.net", "a.alpha.example.net")
        d = bind(alpha.xs, "b.alpha.example.net")
        h.flush()
        self.assertEqual(self.failureResultOf(d, StanzaError).value.condition, "resource-constraint")


class RoutingTests(SynchronousTestCase):
    """
    Stanzas between components through the router.
    """

    def setUp(self) -> None:
        self.h = RouterHarness(self)
        self.alpha = self.h.component("alpha.example.net", "alpha.example.net", "chat.alpha.example.net")
        self.beta = self.h.component("beta.example.net", "beta.example.net", "pubsub.beta.example.net")

    def test_messagesInOrder(self) -> None:
        """
        Messages to a bound name, and to JIDs at it, arrive in order with
        their addresses intact.
        """
        for i in range(50):
            self.alpha.send(message("room@chat.alpha.example.net/nick", "user@pubsub.beta.example.net/r", "m%d" % i))
        self.alpha.send(message("alpha.example.net", "beta.example.net", "last"))
        self.h.flush()
        bodies = [str(m.body) for m in self.beta.received]
        self.assertEqual(bodies, ["m%d" % i for i in range(50)] + ["last"])
        first = self.beta.received[0]
        self.assertEqual(
            (first["from"], first["to"]),
            ("room@chat.alpha.example.net/nick", "user@pubsub.beta.example.net/r"),
        )

    def test_iqRoundTrip(self) -> None:
        """
        An IQ get is delivered and its result comes back to the sender.
        """
        iq = IQ(self.alpha.xs, "get")
        iq["from"] = "alpha.example.net"
        iq.addElement(("urn:example", "query"))
        d = iq.send("pubsub.beta.example.net")
        self.h.flush()
        (request,) = self.beta.received
        reply = domish.Element((None, "iq"))
        reply["type"] = "result"
        reply["id"] = request["id"]
        reply["from"] = request["to"]
        reply["to"] = request["from"]
        self.beta.xs.send(reply)
        self.h.flush()
        self.assertEqual(self.successResultOf(d)["from"], "pubsub.beta.example.net")
        session = self.h.router.table.lookup("beta.example.net")
        self.assertEqual(session.pending, {})

    def test_vanishedRouteAnswersInFlightIQ(self) -> None:
        """
        When the recipient disconnects before answering, the sender's IQ
        gets C{service-unavailable} back, not silence.
        """
        iq = IQ(self.alpha.xs, "get")
        iq["from"] = "alpha.example.net"
        iq.addElement(("urn:example", "query"))
        d = iq.send("beta.example.net")
        self.h.flush()
        self.assertEqual(len(self.beta.received), 1)
        self.beta.xs.transport.loseConnection()
        self.h.flush()
        self.assertEqual(self.failureResultOf(d, StanzaError).value.condition, "service-unavailable")
        self.assertIsNone(self.h.router.table.lookup("beta.example.net"))
        self.assertIsNone(self.h.router.table.lookup("pubsub.beta.example.net"))

    def test_unbindAnswersInFlightIQ(self) -> None:
        """
        Unbinding a name answers the IQs in flight to it.
        """
        iq = IQ(self.alpha.xs, "get")
        iq["from"] = "alpha.example.net"
        iq.addElement(("urn:example", "query"))
        d = iq.send("pubsub.beta.example.net")
        self.h.flush()
        unbind(self.beta.xs, "pubsub.beta.example.net")
        self.h.flush()
        self.assertEqual(self.failureResultOf(d, StanzaError).value.condition, "service-unavailable")

    def test_bounces(self) -> None:
        """
        Undeliverable stanzas bounce to the sender with the right
        condition: C{service-unavailable} for an unbound name of the
        router's domain, C{remote-server-not-found} elsewhere.
        """
        self.alpha.send(message("alpha.example.net", "x@nobody.example.net", "a"))
        self.alpha.send(message("alpha.example.net", "x@elsewhere.org", "b"))
        self.h.flush()
        self.assertEqual(
            [(_condition(m), m["from"], m["to"], str(m.body)) for m in self.alpha.received],
            [
                ("service-unavailable", "x@nobody.example.net", "alpha.example.net", "a"),
                ("remote-server-not-found", "x@elsewhere.org", "alpha.example.net", "b"),
            ],
        )

    def test_noBounceForErrors(self) -> None:
        """
        An undeliverable error or IQ result is not answered (no loops).
        """
        self.alpha.send(message("alpha.example.net", "x@nobody.example.net", "a", kind="error"))
        self.alpha.send("<iq type='result' id='1' from='alpha.example.net' to='nobody.example.net'/>")
        self.alpha.send(message("alpha.example.net", "beta.example.net", "still routed"))
        self.h.flush()
        self.assertEqual(self.alpha.received, [])
        self.assertEqual([str(m.body) for m in self.beta.received], ["still routed"])

    def test_spoofedFrom(self) -> None:
        """
        A C{from} that is not a name of the sending session ends its
        stream with C{invalid-from}; its names are released.
        """
        self.alpha.send(message("beta.example.net", "beta.example.net", "spoof"))
        self.h.flush()
        self.assertEqual(self.alpha.streamErrors, ["invalid-from"])
        self.assertEqual(self.beta.received, [])
        self.assertIsNone(self.h.router.table.lookup("alpha.example.net"))

    def test_missingFrom(self) -> None:
        """
        A stanza without C{from} ends the stream with
        C{improper-addressing}.
        """
        self.alpha.send("<message to='beta.example.net'/>")
        self.h.flush()
        self.assertEqual(self.alpha.streamErrors, ["improper-addressing"])

    def test_ownDomain(self) -> None:
        """
        The router answers disco#info with its identity and features and
        XEP-0199 pings; other IQs and messages to it get
        C{service-unavailable}.
        """
        results = []
        for child in ((NS_DISCO_INFO, "query"), (NS_PING, "ping"), ("urn:other", "query")):
            iq = IQ(self.alpha.xs, "get")
            iq["from"] = "alpha.example.net"
            iq.addElement(child)
            results.append(iq.send(DOMAIN))
        self.alpha.send(message("alpha.example.net", DOMAIN, "hello router"))
        self.h.flush()
        info = self.successResultOf(results[0])
        query = info.firstChildElement()
        self.assertEqual(
            [(i["category"], i["type"]) for i in query.elements(NS_DISCO_INFO, "identity")],
            [("server", "im")],
        )
        self.assertEqual(
            sorted(f["var"] for f in query.elements(NS_DISCO_INFO, "feature")),
            sorted([NS_DISCO_INFO, NS_PING]),
        )
        self.assertEqual(self.successResultOf(results[1])["type"], "result")
        self.assertEqual(self.failureResultOf(results[2], StanzaError).value.condition, "service-unavailable")
        (bounce,) = self.alpha.received
        self.assertEqual(_condition(bounce), "service-unavailable")


class LimitTests(SynchronousTestCase):
    """
    The router's limits are enforced with clear errors.
    """

    def test_rate(self) -> None:
        """
        More stanzas in one second than C{maxStanzasPerSecond} end the
        stream with C{policy-violation}; the limit is per second.
        """
        h = RouterHarness(self, maxStanzasPerSecond=10)
        alpha = h.component("alpha.example.net")
        beta = h.component("beta.example.net")
        for i in range(10):
            alpha.send(message("alpha.example.net", "beta.example.net", str(i)))
        h.flush()
        h.clock.advance(1)
        for i in range(10):
            alpha.send(message("alpha.example.net", "beta.example.net", str(i)))
        h.flush()
        self.assertEqual(alpha.streamErrors, [])
        alpha.send(message("alpha.example.net", "beta.example.net", "one too many"))
        h.flush()
        self.assertEqual(alpha.streamErrors, ["policy-violation"])
        self.assertEqual(len(beta.received), 20)

    def test_maxSessions(self) -> None:
        """
        A connection beyond C{maxSessions} is refused with
        C{resource-constraint}.
        """
        h = RouterHarness(self, maxSessions=2)
        h.component("alpha.example.net")
        h.component("beta.example.net")
        gamma, negotiated = h.connect("gamma.example.net")
        self.failureResultOf(negotiated, StreamError)
        self.assertEqual(gamma.streamErrors, ["resource-constraint"])

    def test_shutdown(self) -> None:
        """
        Shutting down sends C{system-shutdown} to every session and fires
        once they are all closed.
        """
        h = RouterHarness(self)
        alpha = h.component("alpha.example.net")
        beta = h.component("beta.example.net")
        d = h.router.shutdown()
        h.flush()
        self.assertEqual(alpha.streamErrors, ["system-shutdown"])
        self.assertEqual(beta.streamErrors, ["system-shutdown"])
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(h.router.sessions, {})
        self.assertEqual(len(h.router.table), 0)
