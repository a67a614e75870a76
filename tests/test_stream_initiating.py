# -*- test-case-name: tests.test_stream_initiating -*-
"""
Tests for L{xmppcomp.stream.initiating}: the component side's feature
walk, driven through a L{StringTransport}, and both ends negotiating with
each other in memory (L{xmppcomp.testing.MemoryConnection}), no sockets.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.error import StanzaError, StreamError
from twisted.words.protocols.jabber.xmlstream import IQ
from twisted.words.xish import domish
from zope.interface import implementer
from zope.interface.verify import verifyObject

from xmppcomp.errors import NegotiationError, SASLFailure, TLSRequiredError
from xmppcomp.interfaces import IInitiatingFeature
from xmppcomp.ns import NS_COMPONENT_0, NS_SASL, NS_STREAMS, NS_TLS
from xmppcomp.stream.bind import BindInitiator, NoHostnameBound, bindChild
from xmppcomp.stream.features import markRequired
from xmppcomp.stream.initiating import InitiatingFactory, InitiatingPolicy
from xmppcomp.stream.receiving import ReceivingFactory, ReceivingPolicy
from xmppcomp.testing import FakeTLSTransport, MemoryConnection, PretendTLS

from .streamhelpers import PeerReader, read
from .test_iqtracker import ID_PATTERN
from .test_stream_receiving import IDENTITY, SECRET, STORE, TEST_NS, OneShotFeature

SERVER_HEADER = (
    "<stream:stream xmlns='jabber:client' xmlns:stream='%s' from='example.net' "
    "id='%s' version='1.0'>"
)


@implementer(IInitiatingFeature)
@attrs.define
class GoFeature:
    """
    The initiating half of L{OneShotFeature}: one IQ set.
    """

    key: tuple[str, str] = (TEST_NS, "go")
    negotiated: int = 0

    def prepare(self, session: Any) -> None:
        pass

    def negotiate(self, session: Any, feature: domish.Element) -> defer.Deferred[Any]:
        iq = IQ(session.xmlstream, "set")
        iq.addElement((TEST_NS, "go"))
        self.negotiated += 1
        return iq.send()


class Harness:
    """
    One initiating stream on a fake transport.
    """

    def __init__(self, **policyArgs: Any) -> None:
        policyArgs.setdefault("serverDomain", "example.net")
        policyArgs.setdefault("identity", IDENTITY)
        policyArgs.setdefault("secret", SECRET)
        policyArgs.setdefault("tlsCreator", PretendTLS())
        self.policy = InitiatingPolicy(**policyArgs)
        self.clock = MemoryReactorClock()
        self.xs = InitiatingFactory(self.policy, reactor=self.clock).buildProtocol(None)
        self.transport = FakeTLSTransport()
        self.xs.makeConnection(self.transport)
        self.reader = PeerReader()
        self.result = self.xs.authenticator.negotiated
        self.outcome: list[Any] = []
        self.result.addBoth(self.outcome.append)

    def send(self, data: str) -> list[domish.Element]:
        self.xs.dataReceived(data.encode())
        return read(self.transport, self.reader)

    def features(self, *children: str, streamId: str = "s1") -> list[domish.Element]:
        return self.send(
            (SERVER_HEADER % (NS_STREAMS, streamId))
            + "<stream:features>%s</stream:features>" % "".join(children)
        )


STARTTLS = "<starttls xmlns='%s'><required/></starttls>" % (NS_TLS,)
SCRAM_SHA_1 = (
    "<mechanisms xmlns='%s'><mechanism>SCRAM-SHA-1</mechanism><required/></mechanisms>"
    % (NS_SASL,)
)


class InitiatingTests(SynchronousTestCase):
    """
    The initiating side walks the features it is offered.
    """

    def test_header(self) -> None:
        """
        The component opens a C{jabber:client} stream to the server domain,
        from its hostname, version 1.0.
        """
        h = Harness(hostname="first.comp.example.net")
        read(h.transport, h.reader)
        (root,) = h.reader.headers
        self.assertEqual(root.defaultUri, "jabber:client")
        self.assertEqual(
            (root["to"], root["from"], root["version"]),
            ("example.net", "first.comp.example.net", "1.0"),
        )

    def test_startTLS(self) -> None:
        """
        Offered STARTTLS is taken first; on C{<proceed/>} TLS starts with
        the policy's creator and a new header goes out.
        """
        h = Harness()
        read(h.transport, h.reader)
        (starttls,) = h.features(STARTTLS)
        self.assertEqual((starttls.uri, starttls.name), (NS_TLS, "starttls"))
        h.send("<proceed xmlns='%s'/>" % (NS_TLS,))
        self.assertIs(h.transport.tlsOptions, h.policy.tlsCreator)
        self.assertEqual(len(h.reader.headers), 2)

    def test_tlsRequiredNotOffered(self) -> None:
        """
        A server that offers no STARTTLS fails negotiation with
        L{TLSRequiredError} before any credential is sent, and the stream
        is closed.
        """
        h = Harness()
        read(h.transport, h.reader)
        elements = h.features(SCRAM_SHA_1)
        self.assertEqual(elements, [])
        self.assertTrue(h.reader.ended)
        h.outcome[0].trap(TLSRequiredError)
        self.assertIn("did not offer STARTTLS", h.outcome[0].getErrorMessage())

    def test_startTLSFailure(self) -> None:
        """
        A C{<failure/>} answer to STARTTLS fails negotiation.
        """
        h = Harness()
        h.features(STARTTLS)
        h.send("<failure xmlns='%s'/>" % (NS_TLS,))
        h.outcome[0].trap(NegotiationError)
        self.assertTrue(h.transport.disconnecting)

    def test_plaintextOptIn(self) -> None:
        """
        With C{requireTLS} off, a server without TLS is used for SASL, and
        PLAIN is never chosen outside TLS.
        """
        h = Harness(requireTLS=False)
        read(h.transport, h.reader)
        (auth,) = h.features(
            "<mechanisms xmlns='%s'><mechanism>PLAIN</mechanism>"
            "<mechanism>SCRAM-SHA-1</mechanism></mechanisms>" % (NS_SASL,)
        )
        self.assertEqual(auth["mechanism"], "SCRAM-SHA-1")

    def test_noMechanisms(self) -> None:
        """
        Features without SASL mechanisms after TLS fail negotiation.
        """
        h = Harness(requireTLS=False)
        h.features()
        h.outcome[0].trap(NegotiationError)
        self.assertIn("no SASL mechanisms", h.outcome[0].getErrorMessage())

    def test_noUsableMechanism(self) -> None:
        """
        Only mechanisms this side cannot use fail negotiation with a
        message naming them.
        """
        h = Harness(requireTLS=False)
        h.features(
            "<mechanisms xmlns='%s'><mechanism>DIGEST-MD5</mechanism></mechanisms>"
            % (NS_SASL,)
        )
        h.outcome[0].trap(NegotiationError)
        self.assertIn("DIGEST-MD5", h.outcome[0].getErrorMessage())

    def test_saslFailure(self) -> None:
        """
        A SASL C{<failure/>} fails negotiation with L{SASLFailure} and its
        condition, and the stream is closed.
        """
        h = Harness(requireTLS=False)
        h.features(SCRAM_SHA_1)
        h.send("<failure xmlns='%s'><not-authorized/></failure>" % (NS_SASL,))
        h.outcome[0].trap(SASLFailure)
        self.assertEqual(h.outcome[0].value.condition, "not-authorized")
        self.assertTrue(h.reader.ended)

    def test_badServerHeader(self) -> None:
        """
        A server header in the wrong namespace fails negotiation.
        """
        h = Harness()
        h.send(
            "<stream:stream xmlns='jabber:server' xmlns:stream='%s' id='x' "
            "version='1.0'>" % (NS_STREAMS,)
        )
        h.outcome[0].trap(NegotiationError)

    def test_serverStreamError(self) -> None:
        """
        A stream error from the server fails negotiation with it.
        """
        h = Harness()
        h.send(
            (SERVER_HEADER % (NS_STREAMS, "s1"))
            + "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
            "</stream:error>"
        )
        h.outcome[0].trap(StreamError)
        self.assertEqual(h.outcome[0].value.condition, "host-unknown")

    def test_timeout(self) -> None:
        """
        Negotiation that does not complete in time fails and closes.
        """
        h = Harness(negotiationTimeout=3)
        h.features(STARTTLS)
        h.clock.advance(3)
        h.outcome[0].trap(NegotiationError)
        self.assertIn("not complete after 3 seconds", h.outcome[0].getErrorMessage())

    def test_needsCredentials(self) -> None:
        """
        A policy without a secret or a client certificate is refused.
        """
        self.assertRaises(ValueError, InitiatingPolicy, "example.net", IDENTITY)


def pair(
    serverArgs: dict[str, Any], clientArgs: dict[str, Any], flush: bool = True
) -> tuple[Any, Any, MemoryConnection, MemoryReactorClock]:
    """
    Connect a receiving and an initiating stream in memory; negotiate
    unless C{flush} is false.
    """
    clock = MemoryReactorClock()
    serverArgs.setdefault("domains", {"example.net"})
    serverArgs.setdefault("credentials", STORE)
    serverArgs.setdefault("tlsOptions", PretendTLS())
    clientArgs.setdefault("serverDomain", "example.net")
    clientArgs.setdefault("identity", IDENTITY)
    clientArgs.setdefault("secret", SECRET)
    clientArgs.setdefault("tlsCreator", PretendTLS())
    serverFactory = ReceivingFactory(ReceivingPolicy(**serverArgs), reactor=clock)
    clientFactory = InitiatingFactory(InitiatingPolicy(**clientArgs), reactor=clock)
    connection = MemoryConnection(clientFactory.buildProtocol(None), serverFactory.buildProtocol(None))
    if flush:
        connection.flush()
    return connection.server, connection.client, connection, clock


class InMemoryNegotiationTests(SynchronousTestCase):
    """
    Both ends negotiate with each other in memory, with pretend TLS
    (L{MemoryConnection}, L{PretendTLS}).
    """

    def test_complete(self) -> None:
        """
        Both ends complete: TLS, SCRAM-SHA-256, then the required post-SASL
        feature; the result names the mechanism and identity.
        """
        serverFeature = OneShotFeature()
        clientFeature = GoFeature()
        verifyObject(IInitiatingFeature, clientFeature)
        server, client, connection, clock = pair(
            {"features": [serverFeature]}, {"features": [clientFeature]}
        )
        connection.flush()
        result = self.successResultOf(client.authenticator.negotiated)
        self.assertEqual(result.identity, IDENTITY)
        self.assertEqual(result.mechanism, "SCRAM-SHA-256")
        self.assertTrue(server.negotiated and client.negotiated)
        self.assertEqual(server.authenticator.identity, IDENTITY)
        self.assertEqual(clientFeature.negotiated, 1)
        self.assertTrue(serverFeature.done)
        self.assertTrue(server.authenticator.tlsActive)

    def test_stanzasFlowAfterwards(self) -> None:
        """
        After negotiation, a stanza sent by the component reaches the
        receiving side's observers.
        """
        server, client, connection, clock = pair({}, {})
        self.successResultOf(client.authenticator.negotiated)
        received: list[domish.Element] = []
        server.addObserver("/message", received.append)
        message = domish.Element((None, "message"))
        message["to"] = "someone@example.net"
        message.addElement("body", content="hello")
        client.send(message)
        connection.flush()
        self.assertEqual([str(m.body) for m in received], ["hello"])

    def test_wrongSecret(self) -> None:
        """
        A wrong secret fails negotiation with C{not-authorized}.
        """
        server, client, connection, clock = pair({}, {"secret": "wrong"})
        failure = self.failureResultOf(client.authenticator.negotiated, SASLFailure)
        self.assertEqual(failure.value.condition, "not-authorized")
        self.assertFalse(server.negotiated)

    def test_unknownRequiredFeature(self) -> None:
        """
        A required post-SASL feature the component cannot negotiate fails
        negotiation, naming it.
        """
        server, client, connection, clock = pair({"features": [OneShotFeature()]}, {})
        failure = self.failureResultOf(client.authenticator.negotiated, NegotiationError)
        self.assertIn(TEST_NS, failure.getErrorMessage())


class RefusedServerTests(SynchronousTestCase):
    """
    Once the initiating side refused the server, nothing more is
    negotiated.
    """

    def test_noNegotiationAfterBadHeader(self) -> None:
        """
        Features sent after a server header the component refused are
        ignored: C{negotiated} fails once, with the refusal, and never
        fires again.
        """
        h = Harness(requireTLS=False)
        h.send(
            "<stream:stream xmlns='jabber:server' xmlns:stream='%s' id='x' "
            "version='1.0'><stream:features>%s</stream:features>" % (NS_STREAMS, SCRAM_SHA_1)
        )
        self.assertEqual(len(h.outcome), 1)
        h.outcome[0].trap(NegotiationError)
        self.assertFalse(h.xs.negotiated)
        self.assertFalse(any(e.name == "auth" for e in h.reader.elements))


@implementer(IInitiatingFeature)
@attrs.define
class AskFeature:
    """
    An initiating feature that asks its question with the
    authenticator's C{request}, and records what came of it.
    """

    key: tuple[str, str] = (TEST_NS, "go")
    outcomes: list[Any] = attrs.Factory(list)

    def prepare(self, session: Any) -> None:
        pass

    def negotiate(self, session: Any, feature: domish.Element) -> defer.Deferred[Any]:
        iq = domish.Element((None, "iq"))
        iq["type"] = "set"
        iq.addElement((TEST_NS, "go"))
        d = session.request(iq)
        d.addBoth(lambda outcome: self.outcomes.append(outcome) or outcome)
        return d


@attrs.define
class ScriptedFeature(OneShotFeature):
    """
    The receiving half: answers C{<go/>} with what C{answers} holds (XML
    with C{%(id)s} for the request's id), in order; with nothing when it
    is empty.
    """

    answers: list[str] = attrs.Factory(list)
    asked: list[str] = attrs.Factory(list)

    def handleElement(self, session: Any, element: domish.Element) -> bool:
        if element.name != "iq" or element.firstChildElement() is None:
            return False
        self.asked.append(element.getAttribute("id", ""))
        for answer in self.answers:
            session.xmlstream.send(answer % {"id": element.getAttribute("id", "")})
        self.done = bool(self.answers)
        return True


class RequestTests(SynchronousTestCase):
    """
    L{InitiatingAuthenticator.request}: the IQs features send while
    negotiating, answered by id before dispatch.
    """

    def negotiate(self, *answers: str, **clientArgs: Any) -> tuple[Any, AskFeature, ScriptedFeature, Any, MemoryReactorClock]:
        serverFeature = ScriptedFeature(answers=list(answers))
        clientFeature = AskFeature()
        server, client, connection, clock = pair(
            {"features": [serverFeature]}, {"features": [clientFeature], **clientArgs}, flush=False
        )
        self.dispatched: list[domish.Element] = []
        client.addObserver("/iq", self.dispatched.append)
        connection.flush()
        return client, clientFeature, serverFeature, connection, clock

    def test_result(self) -> None:
        """
        The C{result} with the request's id fires it, and is not
        dispatched to the stream's observers; negotiation completes.
        """
        client, ask, scripted, connection, clock = self.negotiate("<iq type='result' id='%(id)s'/>")
        self.successResultOf(client.authenticator.negotiated)
        ((answer,), (asked,)) = (ask.outcomes, scripted.asked)
        self.assertEqual((answer["type"], answer["id"]), ("result", asked))
        self.assertEqual(self.dispatched, [])
        self.assertEqual(len(client.authenticator.requests), 0)

    def test_error(self) -> None:
        """
        An C{error} fails the request with its L{StanzaError}, and so
        negotiation.
        """
        client, ask, scripted, connection, clock = self.negotiate(
            "<iq type='error' id='%(id)s'><error type='cancel'>"
            "<not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        )
        failure = self.failureResultOf(client.authenticator.negotiated, StanzaError)
        self.assertEqual(failure.value.condition, "not-allowed")
        self.assertEqual(ask.outcomes[0].value.condition, "not-allowed")

    def test_onlyAnAnswerAnswers(self) -> None:
        """
        A request from the server that reuses the id, or a result with
        another id, is no answer: they go to the stream's observers, and
        the request waits for its own result.
        """
        client, ask, scripted, connection, clock = self.negotiate(
            "<iq type='get' id='%(id)s'><query xmlns='jabber:iq:version'/></iq>",
            "<iq type='result' id='other-%(id)s'/>",
            "<iq type='result' id='%(id)s'/>",
        )
        self.successResultOf(client.authenticator.negotiated)
        self.assertEqual([iq["type"] for iq in self.dispatched], ["get", "result"])
        self.assertEqual(ask.outcomes[0]["id"], scripted.asked[0])

    def test_timeout(self) -> None:
        """
        Unanswered, the request fails when the negotiation timeout does.
        """
        client, ask, scripted, connection, clock = self.negotiate(negotiationTimeout=5)
        self.assertEqual(len(scripted.asked), 1)
        self.assertEqual(ask.outcomes, [])
        clock.advance(5)
        connection.flush()
        self.failureResultOf(client.authenticator.negotiated, NegotiationError)
        self.assertIn("not complete after 5 seconds", ask.outcomes[0].getErrorMessage())
        self.assertEqual(len(client.authenticator.requests), 0)

    def test_streamEnds(self) -> None:
        """
        Unanswered, the request fails when the stream ends, with the same
        reason as negotiation.
        """
        client, ask, scripted, connection, clock = self.negotiate()
        client.transport.loseConnection()
        connection.flush()
        failure = self.failureResultOf(client.authenticator.negotiated)
        self.assertIs(ask.outcomes[0], failure)

    def test_notNegotiating(self) -> None:
        """
        Once negotiation is over, C{request} fails at once and sends
        nothing.
        """
        client, ask, scripted, connection, clock = self.negotiate("<iq type='result' id='%(id)s'/>")
        self.successResultOf(client.authenticator.negotiated)
        iq = domish.Element((None, "iq"))
        iq["type"] = "get"
        self.failureResultOf(client.authenticator.request(iq), NegotiationError)
        self.assertEqual(len(client.authenticator.requests), 0)

    def test_spoofedAnswersDispatched(self) -> None:
        """
        During negotiation an answer must come from the server (no
        C{from}, or its domain): a result with the request's id from
        another JID answers nothing; it goes to the stream's observers
        and the request waits for the server's own answer (from its
        domain here). (Counting them: L{test_spoofedAnswersCounted}.)
        """
        client, ask, scripted, connection, clock = self.negotiate(
            "<iq type='result' id='%(id)s' from='evil.example.net'><spoof/></iq>",
            "<iq type='result' id='%(id)s' from='someone@example.net'><spoof/></iq>",
            "<iq type='result' id='%(id)s' from='example.net'/>",
        )
        self.successResultOf(client.authenticator.negotiated)
        self.assertEqual(
            [iq.getAttribute("from") for iq in self.dispatched],
            ["evil.example.net", "someone@example.net"],
        )
        self.assertEqual(ask.outcomes[0].getAttribute("from"), "example.net")

    def test_spoofedAnswersCounted(self) -> None:
        """
        The spoofed answers of L{test_spoofedAnswersDispatched} count in
        C{xmppcomp_iq_answers_mismatched_total} (C{negotiation}) of the
        policy's L{Metrics}; the server's own answer does not.
        """
        from xmppcomp.metrics import Metrics

        metrics = Metrics()
        name = "xmppcomp_iq_answers_mismatched_total"
        before = metrics.value(name, {"requester": "negotiation"})
        client, ask, scripted, connection, clock = self.negotiate(
            "<iq type='result' id='%(id)s' from='evil.example.net'><spoof/></iq>",
            "<iq type='result' id='%(id)s' from='someone@example.net'><spoof/></iq>",
            "<iq type='result' id='%(id)s' from='example.net'/>",
            metrics=metrics,
        )
        self.successResultOf(client.authenticator.negotiated)
        self.assertEqual(metrics.value(name, {"requester": "negotiation"}), before + 2)

    def test_unguessableIds(self) -> None:
        """
        A request without an id gets 128 random bits, not a counter.
        """
        client, ask, scripted, connection, clock = self.negotiate("<iq type='result' id='%(id)s'/>")
        (asked,) = scripted.asked
        self.assertRegex(asked, ID_PATTERN)


@attrs.define
class ScriptedBindFeature(ScriptedFeature):
    """
    L{ScriptedFeature} advertised as the XEP-0225 bind of
    C{urn:xmpp:component:0}.
    """

    def featureElement(self, session: Any) -> domish.Element | None:
        if self.done:
            return None
        return markRequired(domish.Element((NS_COMPONENT_0, "bind")))


_CONFLICT = (
    "<iq type='error' id='%(id)s'><error type='cancel'>"
    "<conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
)
_NOT_ALLOWED = (
    "<iq type='error' id='%(id)s'><error type='cancel'>"
    "<not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
)
_BOUND = "<iq type='result' id='%(id)s'/>"


@attrs.define
class PerNameBindFeature(ScriptedBindFeature):
    """
    Answers each bind request with the template C{byName} holds for its
    hostname.
    """

    byName: dict[str, str] = attrs.Factory(dict)

    def handleElement(self, session: Any, element: domish.Element) -> bool:
        child = bindChild(element)
        if child is None:
            return False
        hostname = str(next(child.elements(child.uri, "hostname"))).strip()
        session.xmlstream.send(self.byName[hostname] % {"id": element.getAttribute("id", "")})
        self.done = self.done or self.byName[hostname] == _BOUND
        return True


class PartialBindTests(SynchronousTestCase):
    """
    L{BindInitiator}: names are independent; negotiation fails on
    refusals only when no name is bound.
    """

    def negotiate(self, **byName: str) -> tuple[BindInitiator, Any]:
        names = [name.replace("_", ".") for name in byName]
        binder = BindInitiator(names)
        server = PerNameBindFeature(byName={name.replace("_", "."): answer for name, answer in byName.items()})
        _, client, connection, clock = pair({"features": [server]}, {"features": binder.features()})
        return binder, client

    def test_someRefused(self) -> None:
        """
        With one name bound, negotiation completes; the refusals are
        listed in C{refused} with their hostname and condition.
        """
        binder, client = self.negotiate(a_example_net=_BOUND, b_example_net=_CONFLICT, c_example_net=_NOT_ALLOWED)
        self.successResultOf(client.authenticator.negotiated)
        self.assertEqual(binder.bound, ["a.example.net"])
        self.assertEqual(
            [(r.hostname, r.condition, r.retryable) for r in binder.refused],
            [("b.example.net", "conflict", True), ("c.example.net", "not-allowed", False)],
        )

    def test_allRefused(self) -> None:
        """
        With every name refused, negotiation fails with
        L{NoHostnameBound}, carrying every refusal; it is worth retrying
        when one of them is.
        """
        binder, client = self.negotiate(a_example_net=_NOT_ALLOWED, b_example_net=_CONFLICT)
        failure = self.failureResultOf(client.authenticator.negotiated, NoHostnameBound)
        self.assertEqual([r.hostname for r in failure.value.refusals], ["a.example.net", "b.example.net"])
        self.assertEqual((failure.value.hostname, failure.value.condition), ("a.example.net", "not-allowed"))
        self.assertTrue(failure.value.retryable)


class BindAnswerTests(SynchronousTestCase):
    """
    The bind requests of negotiation (L{BindInitiator} through the
    authenticator's C{request}) take their answers from the server only.
    """

    def test_spoofedBindResult(self) -> None:
        """
        A bind result with the request's id from another JID binds nothing:
        the name bound is the one the server's answer names, and the
        spoofed result is dispatched as any other stanza.
        """
        binder = BindInitiator([IDENTITY])
        server = ScriptedBindFeature(
            answers=[
                "<iq type='result' id='%(id)s' from='evil.example.net'>"
                "<bind xmlns='urn:xmpp:component:0'><hostname>evil.example.net</hostname></bind></iq>",
                "<iq type='result' id='%(id)s'>"
                "<bind xmlns='urn:xmpp:component:0'><hostname>" + IDENTITY + "</hostname></bind></iq>",
            ]
        )
        _, client, connection, clock = pair({"features": [server]}, {"features": binder.features()}, flush=False)
        dispatched: list[domish.Element] = []
        client.addObserver("/iq", dispatched.append)
        connection.flush()
        self.successResultOf(client.authenticator.negotiated)
        self.assertEqual(binder.bound, [IDENTITY])
        self.assertEqual([iq.getAttribute("from") for iq in dispatched], ["evil.example.net"])
        (asked,) = server.asked
        self.assertRegex(asked, ID_PATTERN)
