# -*- test-case-name: tests.test_stream_receiving -*-
"""
Tests for L{xmppcomp.stream.receiving}: the receiving side's negotiation,
driven through a L{StringTransport} and a L{Clock}, no sockets.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.xmlstream import STREAM_AUTHD_EVENT
from twisted.words.xish import domish
from twisted.words.xish.xmlstream import STREAM_START_EVENT
from zope.interface import implementer
from zope.interface.verify import verifyObject

from xmppcomp.interfaces import IReceivingFeature
from xmppcomp.ns import NS_SASL, NS_TLS
from xmppcomp.stream.adapter import FeaturesCache
from xmppcomp.stream.features import featuresElement, markRequired
from xmppcomp.stream.receiving import ReceivingFactory, ReceivingPolicy
from xmppcomp.stream.sasl import (
    MemoryCredentialStore,
    PlainInitiator,
    SASLInitiator,
    ScramInitiator,
)
from xmppcomp.testing import FakeTLSTransport, PretendTLS

from .streamhelpers import PeerReader, header, read, streamErrorCondition

IDENTITY = "comp.example.net"
SECRET = "correct horse battery staple"
STORE = MemoryCredentialStore()
STORE.add(IDENTITY, SECRET)

#: Stands in for TLS options; FakeTLSTransport only records it.
TLS_OPTIONS = PretendTLS()

TEST_NS = "urn:xmppcomp:test:feature"


@implementer(IReceivingFeature)
@attrs.define
class OneShotFeature:
    """
    A required post-SASL feature negotiated by one IQ set carrying
    C{<go xmlns=TEST_NS/>}, standing in for the XEP-0225 bind.
    """

    done: bool = False
    #: How many times its feature element was asked for.
    offered: int = 0

    def featureElement(self, session: Any) -> domish.Element | None:
        self.offered += 1
        if self.done:
            return None
        return markRequired(domish.Element((TEST_NS, "go")))

    def isRequired(self, session: Any) -> bool:
        return not self.done

    def handleElement(self, session: Any, element: domish.Element) -> bool:
        if element.name != "iq" or element.firstChildElement() is None:
            return False
        if element.firstChildElement().uri != TEST_NS:
            return False
        self.done = True
        reply = domish.Element((None, "iq"))
        reply["type"] = "result"
        reply["id"] = element.getAttribute("id", "")
        session.xmlstream.send(reply)
        return True


class Harness:
    """
    One receiving stream on a fake transport, and a reader for what it
    writes.
    """

    def __init__(self, **policyArgs: Any) -> None:
        policyArgs.setdefault("domains", {"example.net"})
        policyArgs.setdefault("credentials", STORE)
        policyArgs.setdefault("tlsOptions", TLS_OPTIONS)
        self.policy = ReceivingPolicy(**policyArgs)
        self.clock = MemoryReactorClock()
        self.factory = ReceivingFactory(self.policy, reactor=self.clock)
        self.authd: list[Any] = []
        self.factory.addBootstrap(STREAM_AUTHD_EVENT, self.authd.append)
        self.xs = self.factory.buildProtocol(None)
        self.transport = FakeTLSTransport()
        self.xs.makeConnection(self.transport)
        self.reader = PeerReader()

    def send(self, data: bytes | str) -> list[domish.Element]:
        if isinstance(data, str):
            data = data.encode()
        self.xs.dataReceived(data)
        return read(self.transport, self.reader)

    def startTLS(self) -> list[domish.Element]:
        self.send(header())
        self.send("<starttls xmlns='%s'/>" % (NS_TLS,))
        return self.send(header())

    def authenticate(self, mechanism: Any) -> list[domish.Element]:
        sasl = SASLInitiator(mechanism)
        replies = self.send(sasl.start().toXml())
        while replies and replies[-1].name == "challenge":
            response = sasl.receive(replies[-1])
            assert response is not None
            replies = self.send(response.toXml())
        if replies and replies[0].name == "success":
            sasl.receive(replies[0])
        self.last = sasl
        return replies


def mechanismNames(features: domish.Element) -> list[str]:
    mechanisms = features.firstChildElement()
    assert mechanisms is not None
    return [str(m) for m in mechanisms.elements(NS_SASL, "mechanism")]


class HeaderTests(SynchronousTestCase):
    """
    The receiving side checks the initiating stream header.
    """

    def assertRefused(self, data: bytes, condition: str) -> Harness:
        h = Harness()
        elements = h.send(data)
        self.assertEqual(len(h.reader.headers), 1, "a header precedes the error")
        self.assertEqual([streamErrorCondition(e) for e in elements], [condition])
        self.assertTrue(h.reader.ended)
        return h

    def test_hostUnknown(self) -> None:
        """
        A C{to} that is not a served domain gets C{host-unknown}.
        """
        self.assertRefused(header(to="elsewhere.example"), "host-unknown")

    def test_missingTo(self) -> None:
        """
        A header without C{to} gets C{host-unknown}.
        """
        self.assertRefused(header(to=None), "host-unknown")

    def test_invalidNamespace(self) -> None:
        """
        A C{jabber:component:accept} stream on the XEP-0225 port gets
        C{invalid-namespace}.
        """
        self.assertRefused(header(namespace="jabber:component:accept"), "invalid-namespace")

    def test_unsupportedVersion(self) -> None:
        """
        A header without version 1.x gets C{unsupported-version}.
        """
        self.assertRefused(header(version=None), "unsupported-version")
        self.assertRefused(header(version="2.0"), "unsupported-version")

    def test_badFormatVersion(self) -> None:
        """
        A version that is not two dotted numbers gets C{bad-format}.
        """
        self.assertRefused(header(version="one"), "bad-format")

    def test_responseHeader(self) -> None:
        """
        The response header comes from the served domain, is addressed to
        the initiator's C{from}, has version 1.0 and a fresh id of at least
        128 bits.
        """
        h = Harness()
        h.send(header())
        root = h.reader.headers[0]
        self.assertEqual(root.defaultUri, "jabber:client")
        self.assertEqual(root["from"], "example.net")
        self.assertEqual(root["to"], IDENTITY)
        self.assertEqual(root["version"], "1.0")
        self.assertGreaterEqual(len(root["id"]), 32)
        int(root["id"], 16)


class TLSStageTests(SynchronousTestCase):
    """
    Before TLS only STARTTLS is offered, and required.
    """

    def test_onlyStartTLSRequired(self) -> None:
        """
        The first features are C{<starttls><required/></starttls>} alone.
        """
        h = Harness()
        (features,) = h.send(header())
        self.assertEqual(
            [child.toXml() for child in features.elements()],
            ["<starttls xmlns='%s'><required/></starttls>" % (NS_TLS,)],
        )

    def test_proceed(self) -> None:
        """
        C{<starttls/>} is answered with C{<proceed/>}, written before TLS
        starts with the configured options.
        """
        h = Harness()
        h.send(header())
        h.xs.dataReceived(b"<starttls xmlns='%s'/>" % NS_TLS.encode())
        self.assertIs(h.transport.tlsOptions, TLS_OPTIONS)
        self.assertEqual(h.transport.writtenBeforeTLS, b"<proceed xmlns='%s'/>" % NS_TLS.encode())

    def test_injectionAfterStartTLSDropped(self) -> None:
        """
        Plaintext sent behind C{<starttls/>} in the same read is dropped,
        never taken as if it had arrived inside TLS (STARTTLS command
        injection).
        """
        h = Harness()
        h.send(header())
        plain = PlainInitiator(IDENTITY, SECRET)
        injected = SASLInitiator(plain).start().toXml()
        h.send("<starttls xmlns='%s'/>%s" % (NS_TLS, injected))
        self.assertEqual([e.name for e in h.reader.elements[-1:]], ["proceed"])
        (features,) = h.send(header())
        self.assertEqual(features.firstChildElement().name, "mechanisms")
        self.assertIn("PLAIN", mechanismNames(features))

    def test_stanzaBeforeNegotiation(self) -> None:
        """
        A stanza before negotiation is complete gets C{not-authorized}.
        """
        h = Harness()
        h.send(header())
        elements = h.send("<message to='a@example.net'><body>hi</body></message>")
        self.assertEqual([streamErrorCondition(e) for e in elements], ["not-authorized"])

    def test_authBeforeTLS(self) -> None:
        """
        An C{<auth/>} before TLS gets the SASL failure
        C{encryption-required}.
        """
        h = Harness()
        h.send(header())
        (failure,) = h.send(SASLInitiator(PlainInitiator(IDENTITY, SECRET)).start().toXml())
        self.assertEqual(failure.name, "failure")
        self.assertEqual(failure.firstChildElement().name, "encryption-required")

    def test_unexpectedElement(self) -> None:
        """
        An unknown first-level element during negotiation gets
        C{unsupported-stanza-type}.
        """
        h = Harness()
        h.send(header())
        elements = h.send("<bogus xmlns='urn:bogus'/>")
        self.assertEqual([streamErrorCondition(e) for e in elements], ["unsupported-stanza-type"])


class SASLStageTests(SynchronousTestCase):
    """
    After TLS the SASL mechanisms are offered and required.
    """

    def test_mechanismsAfterTLS(self) -> None:
        """
        After STARTTLS the restarted stream has a new id and offers the
        SCRAM mechanisms and PLAIN (inside TLS), with C{<required/>}.
        """
        h = Harness()
        (features,) = h.startTLS()
        first, second = h.reader.headers
        self.assertNotEqual(first["id"], second["id"])
        mechanisms = features.firstChildElement()
        self.assertEqual((mechanisms.uri, mechanisms.name), (NS_SASL, "mechanisms"))
        self.assertIn("required", [c.name for c in mechanisms.elements()])
        self.assertEqual(
            sorted(mechanismNames(features)), ["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"]
        )

    def test_featuresRememberedByWhatTheyOffer(self) -> None:
        """
        The serialised features of the STARTTLS and SASL stages are made
        once per distinct offer and remembered in the policy's
        C{featuresCache}: streams with the same offer get the same bytes, a
        policy that offers something else gets its own (never the first
        one's, even from a cache shared between policies), and each is
        what serialising the elements gives.
        """
        cache = FeaturesCache()
        seen = []
        for allowPlain in (True, False, True):
            h = Harness(allowPlain=allowPlain, featuresCache=cache)
            (features,) = h.startTLS()
            names = mechanismNames(features)
            self.assertEqual("PLAIN" in names, allowPlain)
            sasl = h.xs.authenticator.machine.sasl
            assert sasl is not None
            fresh = featuresElement(sasl.featureElements()).toXml(
                prefixes=h.xs.prefixes,
                defaultUri=h.xs.namespace,
                prefixesInScope=list(h.xs.prefixes.values()),
            )
            key = ("sasl", h.xs.namespace) + sasl.featuresKey()
            self.assertEqual(cache.get(key, self.fail), fresh)
            seen.append(names)
        self.assertEqual(seen[0], seen[2])
        self.assertEqual(sorted(key[0] for key in cache.keys()), ["sasl", "sasl", "tls"])
        self.assertIsNot(Harness().policy.featuresCache, Harness().policy.featuresCache)

    def test_startTLSAgain(self) -> None:
        """
        STARTTLS inside TLS ends the stream with C{policy-violation}.
        """
        h = Harness()
        h.startTLS()
        elements = h.send("<starttls xmlns='%s'/>" % (NS_TLS,))
        self.assertEqual([streamErrorCondition(e) for e in elements], ["policy-violation"])

    def test_scramThenComplete(self) -> None:
        """
        SCRAM-SHA-256 succeeds with the server signature; the stream
        restarts with a new id, and with no further feature registered,
        negotiation is complete: the authenticated event fires and stanzas
        are dispatched to observers.
        """
        h = Harness()
        h.startTLS()
        (success,) = h.authenticate(
            ScramInitiator("SCRAM-SHA-256", IDENTITY, SECRET, None, False)
        )
        self.assertEqual(success.name, "success")
        self.assertTrue(h.last.done)
        self.assertEqual(h.authd, [])
        (features,) = h.send(header())
        self.assertEqual(list(features.elements()), [])
        self.assertEqual(len({root["id"] for root in h.reader.headers}), 3)
        self.assertEqual(h.authd, [h.xs])
        self.assertEqual(h.xs.authenticator.identity, IDENTITY)
        self.assertEqual(h.reader.headers[-1]["to"], IDENTITY)
        received: list[domish.Element] = []
        h.xs.addObserver("/message", received.append)
        h.send("<message to='x@example.net'/>")
        self.assertEqual(len(received), 1)

    def test_tooManyFailures(self) -> None:
        """
        After C{maxAuthAttempts} failed attempts the stream ends with
        C{policy-violation}; earlier failures let the initiator retry.
        """
        h = Harness(maxAuthAttempts=2)
        h.startTLS()
        wrong = lambda: ScramInitiator("SCRAM-SHA-1", IDENTITY, "wrong", None, False)
        (failure,) = h.authenticate(wrong())
        self.assertEqual(failure.firstChildElement().name, "not-authorized")
        elements = h.authenticate(wrong())
        self.assertEqual(elements[0].firstChildElement().name, "not-authorized")
        self.assertEqual([streamErrorCondition(e) for e in elements[1:]], ["policy-violation"])

    def test_plaintextOptIn(self) -> None:
        """
        Without TLS options the policy refuses unless plaintext is
        explicitly allowed; then SASL is offered at once, without PLAIN.
        """
        self.assertRaises(ValueError, ReceivingPolicy, {"example.net"}, STORE)
        h = Harness(tlsOptions=None, allowPlaintext=True)
        (features,) = h.send(header())
        self.assertEqual(sorted(mechanismNames(features)), ["SCRAM-SHA-1", "SCRAM-SHA-256"])


class FeatureHookTests(SynchronousTestCase):
    """
    Features registered for after SASL are offered, may consume elements,
    and hold back completion while required.
    """

    def setUp(self) -> None:
        self.feature = OneShotFeature()
        verifyObject(IReceivingFeature, self.feature)
        self.h = Harness(features=[self.feature])
        self.h.startTLS()
        self.h.authenticate(ScramInitiator("SCRAM-SHA-1", IDENTITY, SECRET, None, False))

    def test_offeredAndRequired(self) -> None:
        """
        The registered feature is advertised with C{<required/>} and
        negotiation is not complete yet.
        """
        (features,) = self.h.send(header())
        self.assertEqual(
            [child.toXml() for child in features.elements()],
            ["<go xmlns='%s'><required/></go>" % (TEST_NS,)],
        )
        self.assertEqual(self.h.authd, [])

    def test_featuresMadeAhead(self) -> None:
        """
        The features that answer the header after SASL are made as soon as
        SASL succeeded, while the peer restarts its stream, then sent as
        they are: the header's read makes none.
        """
        made = self.feature.offered
        self.assertEqual(made, 1, "made once SASL succeeded, before the header")
        (features,) = self.h.send(header())
        self.assertEqual(self.feature.offered, made)
        self.assertEqual(
            [child.toXml() for child in features.elements()],
            ["<go xmlns='%s'><required/></go>" % (TEST_NS,)],
        )

    def test_completesAfterTheRead(self) -> None:
        """
        The element that makes negotiation complete is answered, and so is
        the next one a feature takes in the same read (a component sends
        all its bind requests at once), before the session is set up: the
        authenticated event fires once the read is handled.
        """
        self.h.send(header())
        order: list[str] = []
        write = self.h.transport.write

        def recordingWrite(data: bytes) -> None:
            order.append("answer")
            write(data)

        self.h.transport.write = recordingWrite  # type: ignore[method-assign]
        self.h.xs.addObserver(STREAM_AUTHD_EVENT, lambda xs: order.append("authenticated"))
        go = b"<iq type='set' id='%s'><go xmlns='" + TEST_NS.encode() + b"'/></iq>"
        self.h.xs.dataReceived(go % (b"g1",) + go % (b"g2",))
        self.assertEqual(order, ["answer", "answer", "authenticated"])

    def test_stanzaRightAfterCompletion(self) -> None:
        """
        A stanza in the same read as the element that completed
        negotiation completes it first, then goes where a negotiated
        stream's stanzas go: not refused.
        """
        self.h.send(header())
        seen: list[str] = []
        self.h.xs.addObserver(STREAM_AUTHD_EVENT, lambda xs: seen.append("authenticated"))
        self.h.xs.addObserver("/message", lambda m: seen.append(m["to"]))
        elements = self.h.send(
            "<iq type='set' id='g1'><go xmlns='%s'/></iq><message to='x@example.net'/>" % (TEST_NS,)
        )
        self.assertEqual([(e.name, e.getAttribute("type")) for e in elements], [("iq", "result")])
        self.assertEqual(seen, ["authenticated", "x@example.net"])
        self.assertTrue(self.h.xs.negotiated)

    def test_stanzaBeforeFeature(self) -> None:
        """
        A stanza the feature does not consume gets C{not-authorized}.
        """
        self.h.send(header())
        elements = self.h.send("<message to='x@example.net'/>")
        self.assertEqual([streamErrorCondition(e) for e in elements], ["not-authorized"])

    def test_featureCompletes(self) -> None:
        """
        Once the feature is negotiated, negotiation completes.
        """
        self.h.send(header())
        (reply,) = self.h.send("<iq type='set' id='g1'><go xmlns='%s'/></iq>" % (TEST_NS,))
        self.assertEqual((reply.name, reply["type"], reply["id"]), ("iq", "result", "g1"))
        self.assertEqual(self.h.authd, [self.h.xs])


class AfterReadTests(SynchronousTestCase):
    """
    L{NegotiatingXmlStream.afterRead} while negotiating.
    """

    def test_afterTheRead(self) -> None:
        """
        Outside a read it calls at once; inside one, once the read is
        handled and its answers flushed; a callback that fails is logged,
        the others still run and the stream stays up.
        """
        h = Harness()
        calls: list[str] = []
        h.xs.afterRead(calls.append, "now")
        self.assertEqual(calls, ["now"])

        def broken() -> None:
            raise ValueError("bookkeeping went wrong")

        def watching(xs: object) -> None:
            h.xs.afterRead(broken)
            h.xs.afterRead(calls.append, "after the read")
            calls.append("during")

        # Observers of the header run inside the read that brought it.
        h.xs.addObserver(STREAM_START_EVENT, watching)
        (features,) = h.send(header())
        self.assertEqual(features.firstChildElement().name, "starttls")
        self.assertEqual(calls, ["now", "during", "after the read"])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        (proceed,) = h.send("<starttls xmlns='%s'/>" % (NS_TLS,))
        self.assertEqual(proceed.name, "proceed")
        self.assertIsNone(h.xs.streamEnded)


class TimeoutTests(SynchronousTestCase):
    """
    Negotiation is bounded in time.
    """

    def test_negotiationTimeout(self) -> None:
        """
        A stream that does not finish negotiating within
        C{negotiationTimeout} is closed with C{connection-timeout}.
        """
        h = Harness(negotiationTimeout=5)
        h.send(header())
        h.clock.advance(4.9)
        self.assertEqual(read(h.transport, h.reader), [])
        h.clock.advance(0.2)
        elements = read(h.transport, h.reader)
        self.assertEqual([streamErrorCondition(e) for e in elements], ["connection-timeout"])

    def test_timeoutCancelled(self) -> None:
        """
        Completing negotiation cancels the timeout.
        """
        h = Harness(negotiationTimeout=5, tlsOptions=None, allowPlaintext=True)
        h.send(header())
        h.authenticate(ScramInitiator("SCRAM-SHA-1", IDENTITY, SECRET, None, False))
        h.send(header())
        self.assertEqual(h.authd, [h.xs])
        self.assertEqual(h.clock.getDelayedCalls(), [])
