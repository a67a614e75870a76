# -*- test-case-name: tests.test_router_hardening -*-
"""
The router against hostile or broken peers: deeply nested stanzas, peers
that stop reading (back-pressure), large stanzas that bounce, DTDs after
the stream header, silent peers (RFC 6120 section 4.5), and the
per-source authentication failure limit shared by its listeners.
"""

from __future__ import annotations

import os

from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.xish import domish

from xmppcomp.config import (
    RouterConfig,
    RouterLimits,
    SecretRef,
    routerConfigFromMapping,
    Override,
)
from xmppcomp.router.service import RouterService
from xmppcomp.stream.acceptreceiving import AcceptFactory, AcceptPolicy
from xmppcomp.stream.receiving import ReceivingFactory
from xmppcomp.router.rawstanzas import RawStanzaParser
from xmppcomp.stream.parser import StanzaParser
from xmppcomp.stream.xmlstream import (
    DEFAULT_MAX_STANZA_DEPTH,
    StanzaTooDeep,
    StanzaTooLarge,
    conditionForParserError,
)

from .test_router_fastpath import SECRET, AcceptSession
from .test_router_service import RouterHarness

HEADER = (
    b"<stream:stream xmlns='jabber:client'"
    b" xmlns:stream='http://etherx.jabber.org/streams' to='example.net'>"
)
A = "a.accept.example.net"
B = "b.accept.example.net"


def nested(levels: int, name: bytes = b"message", sender: str = A, recipient: str = B) -> bytes:
    """
    A stanza whose innermost element is at depth C{levels} (the stanza
    itself is depth 1).
    """
    inner = levels - 1
    return (
        b"<%s from='%s' to='%s'>" % (name, sender.encode(), recipient.encode())
        + b"<x>" * inner
        + b"</x>" * inner
        + b"</%s>" % (name,)
    )


def parse(data: bytes, capture: bool, maxDepth: int = DEFAULT_MAX_STANZA_DEPTH) -> list[domish.Element]:
    stream = RawStanzaParser(maxDepth=maxDepth)
    stream.captureRaw = capture
    got: list[domish.Element] = []
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = got.append
    stream.DocumentEndEvent = lambda: None
    stream.parse(HEADER)
    stream.parse(data)
    return got


class DepthLimitTests(SynchronousTestCase):
    """
    L{StanzaParser} and the router's L{RawStanzaParser} bound how deeply
    elements nest.
    """

    def test_atTheLimit(self) -> None:
        """
        A stanza nested exactly C{maxDepth} levels passes on the full and
        the shallow path.
        """
        for capture in (False, True):
            for name in (b"message", b"iq"):
                [element] = parse(nested(DEFAULT_MAX_STANZA_DEPTH, name), capture)
                self.assertEqual(element.name, name.decode())

    def test_overTheLimit(self) -> None:
        """
        One level more raises L{StanzaTooDeep}, a L{StanzaTooLarge} that
        maps to C{policy-violation}, on the full path (an iq, or any stanza
        without raw capture) and on the shallow path (a message with raw
        capture); nothing is delivered.
        """
        for capture in (False, True):
            for name in (b"message", b"iq"):
                e = self.assertRaises(
                    StanzaTooDeep, parse, nested(DEFAULT_MAX_STANZA_DEPTH + 1, name), capture
                )
                self.assertIsInstance(e, StanzaTooLarge)
                self.assertEqual(conditionForParserError(e), "policy-violation")

    def test_configurable(self) -> None:
        """
        C{maxDepth} sets the limit; it must be positive.
        """
        self.assertEqual(len(parse(nested(3), True, maxDepth=3)), 1)
        self.assertRaises(StanzaTooDeep, parse, nested(4), True, maxDepth=3)
        self.assertRaises(StanzaTooDeep, parse, nested(4), False, maxDepth=3)
        self.assertRaises(ValueError, StanzaParser, maxDepth=0)
        self.assertRaises(ValueError, RawStanzaParser, maxDepth=0)

    def test_refusedBeforeBuffering(self) -> None:
        """
        The error is raised at the first start tag too deep: the rest of
        a huge nested stanza is never parsed, and the stream stays dead.
        """
        for parserType in (StanzaParser, RawStanzaParser):
            stream = parserType(maxDepth=4)
            stream.DocumentStartEvent = lambda root: None
            stream.ElementEvent = lambda element: None
            stream.parse(HEADER)
            stream.parse(b"<iq from='a' to='b'>" + b"<x>" * 3)
            self.assertRaises(StanzaTooDeep, stream.parse, b"<x>")
            self.assertRaises(StanzaTooDeep, stream.parse, b"</x>")

    def test_siblingsDoNotAddUp(self) -> None:
        """
        Depth is nesting, not element count: many siblings at depth 2 pass.
        """
        data = b"<iq from='a' to='b'>" + b"<x><y/></x>" * 500 + b"</iq>"
        [element] = parse(data, False, maxDepth=3)
        self.assertEqual(len(element.children), 500)


class RouterDepthTests(SynchronousTestCase):
    """
    The router ends a stream that sends a deeply nested stanza with
    C{policy-violation} instead of crashing while forwarding or bouncing.
    """

    def setUp(self) -> None:
        self.harness = RouterHarness(self)
        secrets = {A: SECRET, B: SECRET}
        self.accept = AcceptFactory(AcceptPolicy(secrets=secrets.get), reactor=self.harness.clock)
        self.harness.router.addBootstraps(self.accept, "xep0114")

    def test_deepStanzaIsPolicyViolation(self) -> None:
        """
        A 3,000-level stanza (about 21 KB, under the size limit), to a bound
        name (forwarded) or to an unbound one (bounced), as a message (shallow
        path) or an iq (full path): C{policy-violation}, nothing forwarded.
        """
        for name, recipient in [(b"message", B), (b"iq", B), (b"message", "nobody.example.net")]:
            a = AcceptSession(self.harness, self.accept, A)
            b = AcceptSession(self.harness, self.accept, B)
            data = nested(3000, name, recipient=recipient)
            self.assertLess(len(data), RouterLimits().maxStanzaSize)
            a.xs.dataReceived(data)
            out = a.take()
            self.assertIn(b"<policy-violation", out)
            self.assertIn(b"</stream:stream>", out)
            self.assertEqual(b.take(), b"")
            a.xs.connectionLost(None)
            b.xs.connectionLost(None)

    def test_policyDepthApplies(self) -> None:
        """
        The policies' C{maxStanzaDepth} reaches the streams they build.
        """
        accept = AcceptFactory(AcceptPolicy(secrets={}.get, maxStanzaDepth=5), reactor=MemoryReactorClock())
        xs = accept.buildProtocol(None)
        xs.makeConnection(StringTransport())
        self.assertEqual(xs.stream.maxDepth, 5)
        receiving = self.harness.factory
        self.assertEqual(receiving.buildProtocol(None).maxDepth, DEFAULT_MAX_STANZA_DEPTH)


def message(size: int, sender: str = A, recipient: str = B, kind: str | None = None) -> bytes:
    typeAttr = b" type='%s'" % (kind.encode(),) if kind else b""
    head = b"<message from='%s' to='%s'%s><body>" % (sender.encode(), recipient.encode(), typeAttr)
    tail = b"</body></message>"
    return head + b"x" * (size - len(head) - len(tail)) + tail


class BackPressureTests(SynchronousTestCase):
    """
    Stanzas to a session whose transport is paused are queued up to
    C{maxBufferedBytes}, then bounced with C{resource-constraint}.
    """

    LIMIT = 20000

    def setUp(self) -> None:
        self.harness = RouterHarness(self, maxBufferedBytes=self.LIMIT)
        secrets = {A: SECRET, B: SECRET}
        self.accept = AcceptFactory(AcceptPolicy(secrets=secrets.get), reactor=self.harness.clock)
        self.harness.router.addBootstraps(self.accept, "xep0114")
        self.a = AcceptSession(self.harness, self.accept, A)
        self.b = AcceptSession(self.harness, self.accept, B)

    def test_sessionIsTheProducer(self) -> None:
        """
        A negotiated session registers as the streaming producer of its
        transport.
        """
        session = self.harness.router.sessions[self.b.xs]
        self.assertIs(self.b.transport.producer, session)
        self.assertTrue(self.b.transport.streaming)

    def test_boundedWhilePaused(self) -> None:
        """
        While B does not read, at most C{maxBufferedBytes} are written to
        its transport however much A sends; the rest is bounced to A with
        C{resource-constraint}, one error per stanza.
        """
        self.b.transport.producer.pauseProducing()
        stanza = message(1000)
        for _ in range(200):
            self.a.xs.dataReceived(stanza)
        written = self.b.take()
        self.assertLessEqual(len(written), self.LIMIT)
        self.assertEqual(written.count(b"</message>"), self.LIMIT // 1000)
        bounced = self.a.take()
        self.assertEqual(bounced.count(b"<resource-constraint"), 200 - self.LIMIT // 1000)
        self.assertEqual(bounced.count(b"type='error'"), 200 - self.LIMIT // 1000)

    def test_resumeDeliversAgain(self) -> None:
        """
        Once the transport resumes, stanzas flow again, with a fresh budget.
        """
        producer = self.b.transport.producer
        producer.pauseProducing()
        for _ in range(30):
            self.a.xs.dataReceived(message(1000))
        self.b.take()
        self.a.take()
        producer.resumeProducing()
        for _ in range(30):
            self.a.xs.dataReceived(message(1000))
        self.assertEqual(self.b.take().count(b"</message>"), 30)
        self.assertEqual(self.a.take(), b"")

    def test_errorsNotBounced(self) -> None:
        """
        Errors and IQ results over the limit are dropped and counted, never
        bounced (that could loop).
        """
        self.b.transport.producer.pauseProducing()
        for _ in range(25):
            self.a.xs.dataReceived(message(1000, kind="error"))
        self.a.xs.dataReceived(
            b"<iq type='result' id='1' from='%s' to='%s'><x xmlns='urn:x'>%s</x></iq>"
            % (A.encode(), B.encode(), b"y" * 2000)
        )
        self.assertEqual(self.a.take(), b"")
        session = self.harness.router.sessions[self.b.xs]
        self.assertEqual(session.dropped, 25 + 1 - self.LIMIT // 1000)

    def test_bouncedIQNotTracked(self) -> None:
        """
        A bounced IQ request is not remembered as awaiting B's answer.
        """
        producer = self.b.transport.producer
        producer.pauseProducing()
        self.a.xs.dataReceived(message(self.LIMIT))
        self.a.xs.dataReceived(b"<iq type='get' id='q' from='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % (A.encode(), B.encode()))
        self.assertIn(b"<resource-constraint", self.a.take())
        self.assertEqual(self.harness.router.sessions[self.b.xs].pendingCount, 0)

    def test_ownRepliesStopReading(self) -> None:
        """
        A session that sends without reading cannot grow its own buffer
        through the router's answers: past the limit the router stops
        reading from it until its transport drains.
        """
        producer = self.a.transport.producer
        producer.pauseProducing()
        for _ in range(40):
            self.a.xs.dataReceived(message(1000, recipient="nobody.example.net"))
        self.assertEqual(self.a.transport.producerState, "paused")
        producer.resumeProducing()
        self.assertEqual(self.a.transport.producerState, "producing")


    def test_ownRepliesWithinLimit(self) -> None:
        """
        What the router itself writes to a paused session (here bounces of
        stanzas to an unbound name) stays within C{maxBufferedBytes} too:
        an answer that does not fit is not written but counted, and the
        router stops reading from that session.
        """
        producer = self.a.transport.producer
        producer.pauseProducing()
        for _ in range(40):
            self.a.xs.dataReceived(message(1000, recipient="nobody.example.net"))
        written = self.a.take()
        self.assertLessEqual(len(written), self.LIMIT)
        bounces = written.count(b"<service-unavailable")
        self.assertGreater(bounces, 0)
        session = self.harness.router.sessions[self.a.xs]
        self.assertEqual(session.queued, len(written))
        self.assertEqual(session.dropped, 40 - bounces)
        self.assertEqual(self.a.transport.producerState, "paused")


def elementsOf(data: bytes) -> list[domish.Element]:
    """
    The top-level elements an XEP-0114 component reads in C{data}.
    """
    got: list[domish.Element] = []
    stream = StanzaParser()
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = got.append
    stream.DocumentEndEvent = lambda: None
    stream.parse(
        b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>"
    )
    stream.parse(data)
    return got


class BouncePayloadTests(SynchronousTestCase):
    """
    A bounce echoes the payload of a stanza of at most C{maxBouncePayload}
    bytes; a larger stanza comes back as its addressing, id and type with
    the error only (RFC 6120 section 8.3.1), whichever way it bounced.
    """

    def setUp(self) -> None:
        self.harness = RouterHarness(self, maxBufferedBytes=5000)
        secrets = {A: SECRET, B: SECRET}
        self.accept = AcceptFactory(AcceptPolicy(secrets=secrets.get), reactor=self.harness.clock)
        self.harness.router.addBootstraps(self.accept, "xep0114")
        self.a = AcceptSession(self.harness, self.accept, A)

    def bounce(self, data: bytes) -> tuple[domish.Element, int]:
        """
        Send C{data} from A; the one stanza A gets back, and its size.
        """
        self.a.xs.dataReceived(data)
        written = self.a.take()
        [answer] = elementsOf(written)
        return answer, len(written)

    def checkBare(self, answer: domish.Element, name: str, condition: str) -> None:
        self.assertEqual(answer.name, name)
        self.assertEqual(
            (answer["type"], answer["id"], answer["to"], answer["from"]),
            ("error", "s1", A, "nobody.example.net"),
        )
        self.assertEqual([child.name for child in answer.elements()], ["error"])
        self.assertEqual(answer.error.firstChildElement().name, condition)

    def test_largeStanzasBounceBare(self) -> None:
        """
        A 10,000-byte message (forwardable bytes, parsed shallow), IQ
        (parsed in full) and a message whose bytes are not kept (it
        declares the content namespace itself, so its size is estimated
        from the element) to an unbound name: each comes back without its
        payload, in well under a kilobyte.
        """
        pad = b"x" * 10000
        for name, data in [
            ("message", b"<message from='%s' to='nobody.example.net' id='s1' type='chat'><body>%s</body></message>"),
            ("iq", b"<iq from='%s' to='nobody.example.net' id='s1' type='set'><q xmlns='urn:x'>%s</q></iq>"),
            (
                "message",
                b"<message xmlns='jabber:component:accept' from='%s' to='nobody.example.net' id='s1'>"
                b"<body>%s</body></message>",
            ),
        ]:
            answer, size = self.bounce(data % (A.encode(), pad))
            self.checkBare(answer, name, "service-unavailable")
            self.assertLess(size, 600)

    def test_smallStanzasEchoed(self) -> None:
        """
        A stanza of at most C{maxBouncePayload} bytes comes back whole,
        with the error after its payload.
        """
        limit = RouterLimits().maxBouncePayload
        head = b"<message from='%s' to='nobody.example.net' id='s1'><body>" % (A.encode(),)
        tail = b"</body></message>"
        data = head + b"y" * (limit - len(head) - len(tail)) + tail
        self.assertEqual(len(data), limit)
        answer, _ = self.bounce(data)
        self.assertEqual([child.name for child in answer.elements()], ["body", "error"])
        self.assertEqual(str(answer.body), "y" * (limit - len(head) - len(tail)))

    def test_overflowBounceBare(self) -> None:
        """
        A large stanza bounced with C{resource-constraint} (its recipient
        does not read) comes back without its payload too.
        """
        b = AcceptSession(self.harness, self.accept, B)
        b.transport.producer.pauseProducing()
        data = b"<message from='%s' to='%s' id='s1'><body>%s</body></message>" % (A.encode(), B.encode(), b"z" * 8000)
        self.a.xs.dataReceived(data)
        answer, size = [(e, len(self.a.transport.value())) for e in elementsOf(self.a.take())][0]
        self.assertEqual(answer["from"], B)
        self.assertEqual([child.name for child in answer.elements()], ["error"])
        self.assertEqual(answer.error.firstChildElement().name, "resource-constraint")
        self.assertEqual(b.take(), b"")

    def test_routerDomainBounceBare(self) -> None:
        """
        A large message to the router's own domain is answered without its
        payload.
        """
        self.a.xs.dataReceived(
            b"<message from='%s' to='example.net' id='s1'><body>%s</body></message>" % (A.encode(), b"w" * 9000)
        )
        [answer] = elementsOf(self.a.take())
        self.assertEqual([child.name for child in answer.elements()], ["error"])
        self.assertEqual(answer.error.firstChildElement().name, "service-unavailable")

    def test_configurable(self) -> None:
        """
        C{maxBouncePayload} sets the size above which the payload is left
        out.
        """
        self.harness = RouterHarness(self, maxBouncePayload=100)
        self.accept = AcceptFactory(AcceptPolicy(secrets={A: SECRET}.get), reactor=self.harness.clock)
        self.harness.router.addBootstraps(self.accept, "xep0114")
        self.a = AcceptSession(self.harness, self.accept, A)
        answer, _ = self.bounce(b"<message from='%s' to='nobody.example.net' id='s1'><body>%s</body></message>" % (A.encode(), b"v" * 200))
        self.checkBare(answer, "message", "service-unavailable")


class RestrictedXMLTests(SynchronousTestCase):
    """
    A DTD (any markup declaration) after the stream header is
    C{restricted-xml}, as before the header: between stanzas, inside a
    stanza, on both listeners, before and after negotiation.
    """

    def setUp(self) -> None:
        self.harness = RouterHarness(self)
        self.accept = AcceptFactory(AcceptPolicy(secrets={A: SECRET}.get), reactor=self.harness.clock)
        self.harness.router.addBootstraps(self.accept, "xep0114")

    def test_negotiatedAcceptStream(self) -> None:
        """
        After the handshake (the router's raw forwarding path), between
        stanzas or inside one, a declaration split across reads or not.
        """
        for reads in [
            [b"<!DOCTYPE stream [<!ENTITY x 'lol'>]>"],
            [b"<message from='%s' to='%s'/><!ENTITY x 'y'>" % (A.encode(), B.encode())],
            [b"<message from='%s' to='%s'><body><!ELEMENT body ANY>" % (A.encode(), B.encode())],
            [b"<", b"!DOCTYPE x>"],
            [b"<!", b"DOCTYPE x>"],
        ]:
            a = AcceptSession(self.harness, self.accept, A)
            for data in reads:
                a.xs.dataReceived(data)
            out = a.take()
            self.assertIn(b"<restricted-xml xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>", out, reads)
            self.assertTrue(out.endswith(b"</stream:stream>"), out)
            a.xs.connectionLost(None)

    def test_beforeNegotiation(self) -> None:
        """
        Right after the header, on the XEP-0225 and the XEP-0114 listener.
        """
        for factory, namespace, to in [
            (self.harness.factory, b"jabber:client", b"example.net"),
            (self.accept, b"jabber:component:accept", A.encode()),
        ]:
            xs = factory.buildProtocol(None)
            transport = StringTransport()
            xs.makeConnection(transport)
            xs.dataReceived(
                b"<stream:stream xmlns='%s' xmlns:stream='http://etherx.jabber.org/streams'"
                b" to='%s' version='1.0'><!DOCTYPE stream>" % (namespace, to)
            )
            self.assertIn(b"<restricted-xml ", transport.value())
            xs.connectionLost(None)

    def test_otherJunkNotWellFormed(self) -> None:
        """
        What is not a declaration stays C{not-well-formed}.
        """
        a = AcceptSession(self.harness, self.accept, A)
        a.xs.dataReceived(b"<!-x>")
        self.assertIn(b"<not-well-formed ", a.take())


class SilentPeerTests(SynchronousTestCase):
    """
    The router pings a negotiated session after C{idleTimeout} seconds of
    silence and ends it with C{connection-timeout} when nothing arrives
    within C{pingTimeout}.
    """

    def setUp(self) -> None:
        self.harness = RouterHarness(self, idleTimeout=120, pingTimeout=30)
        self.clock = self.harness.clock
        secrets = {A: SECRET}
        self.accept = AcceptFactory(AcceptPolicy(secrets=secrets.get), reactor=self.clock)
        self.harness.router.addBootstraps(self.accept, "xep0114")
        self.a = AcceptSession(self.harness, self.accept, A)

    def test_pingThenTimeout(self) -> None:
        """
        Silence: a ping from the router's domain at 120 s, then the stream
        error at 150 s; the names are released when the connection goes.
        """
        self.clock.advance(119)
        self.assertEqual(self.a.take(), b"")
        self.clock.advance(1)
        out = self.a.take()
        self.assertIn(b"<ping xmlns='urn:xmpp:ping'", out)
        self.assertIn(b"from='example.net'", out)
        self.assertIn(b"to='%s'" % (A.encode(),), out)
        self.clock.advance(29)
        self.assertEqual(self.a.take(), b"")
        self.clock.advance(1)
        out = self.a.take()
        self.assertIn(b"<connection-timeout", out)
        self.assertIn(b"</stream:stream>", out)
        self.a.xs.connectionLost(None)
        self.assertIsNone(self.harness.router.table.lookup(A))

    def test_answerKeepsSession(self) -> None:
        """
        Any data after the ping (here its result) keeps the session, and the
        next ping comes after another idle period.
        """
        self.clock.advance(120)
        self.assertIn(b"urn:xmpp:ping", self.a.take())
        self.clock.advance(5)
        self.a.xs.dataReceived(b"<iq type='result' id='router-ping-1' from='%s' to='example.net'/>" % (A.encode(),))
        self.clock.advance(30)
        self.assertEqual(self.a.take(), b"")
        self.clock.advance(90)
        self.assertIn(b"urn:xmpp:ping", self.a.take())
        self.assertIn(self.a.xs, self.harness.router.sessions)

    def test_dataResetsTimer(self) -> None:
        """
        Any received byte, even a whitespace keepalive, pushes the ping back.
        """
        for _ in range(5):
            self.clock.advance(100)
            self.a.xs.dataReceived(b" ")
        self.assertEqual(self.a.take(), b"")
        self.clock.advance(120)
        self.assertIn(b"urn:xmpp:ping", self.a.take())

    def test_timerCancelledOnDetach(self) -> None:
        """
        A session that ends leaves no timer behind.
        """
        self.assertEqual(len(self.clock.getDelayedCalls()) > 0, True)
        session = self.harness.router.sessions[self.a.xs]
        timer = session.idleTimer
        self.a.xs.connectionLost(None)
        self.assertFalse(timer.active())


class AuthFailureConfigTests(SynchronousTestCase):
    """
    C{auth_failure_limit} and C{auth_failure_window} configure one limiter
    that the router's XEP-0225 and XEP-0114 listeners share.
    """

    def test_config(self) -> None:
        """
        The TOML keys and their command line overrides reach
        L{RouterLimits}; bad values are refused.
        """
        config = routerConfigFromMapping(
            {
                "domain": "example.net",
                "listen": [],
                "accept": {"secrets": {A: {"env": "X"}}},
                "limits": {"auth_failure_limit": 4, "auth_failure_window": 300, "max_stanza_depth": 32},
            },
            "router.toml",
            {"limits.idle_timeout": Override(60.0, "--idle-timeout")},
        )
        self.assertEqual(config.limits.authFailureLimit, 4)
        self.assertEqual(config.limits.authFailureWindow, 300.0)
        self.assertEqual(config.limits.maxStanzaDepth, 32)
        self.assertEqual(config.limits.idleTimeout, 60.0)
        from xmppcomp.config import ConfigError

        for key, value in [("auth_failure_limit", 0), ("auth_failure_window", -1), ("max_buffered_bytes", "1")]:
            self.assertRaises(
                ConfigError,
                routerConfigFromMapping,
                {"domain": "example.net", "listen": [], "accept": {"secrets": {A: {"env": "X"}}}, "limits": {key: value}},
                "router.toml",
            )

    def test_oneSharedLimiter(self) -> None:
        """
        L{RouterService} builds one L{AuthFailureLimiter} with the
        configured values and gives it to both policies.
        """
        os.environ["XMPPCOMP_TEST_SECRET"] = SECRET
        self.addCleanup(os.environ.pop, "XMPPCOMP_TEST_SECRET", None)
        config = RouterConfig(
            domain="example.net",
            listen=("tcp:5348:interface=127.0.0.1",),
            acceptListen=("tcp:5347:interface=127.0.0.1",),
            acceptSecrets={A: SecretRef(env="XMPPCOMP_TEST_SECRET")},
            allowPlaintext=True,
            limits=RouterLimits(authFailureLimit=2, authFailureWindow=5.0, maxStanzaDepth=16),
        )
        reactor = MemoryReactorClock()
        service = RouterService(config, reactor)
        service.startService()
        # (The listeners' factories wrapped by the admission gate.)
        factories = [server[1].wrappedFactory for server in reactor.tcpServers]
        self.assertEqual(len(factories), 2)
        receiving = [f for f in factories if isinstance(f, ReceivingFactory)][0]
        accept = [f for f in factories if isinstance(f, AcceptFactory)][0]
        limiter = receiving.policy.authFailures
        self.assertIs(accept.policy.authFailures, limiter)
        self.assertIs(service.authFailures, limiter)
        self.assertEqual((limiter.maxFailures, limiter.window), (2, 5.0))
        self.assertEqual(receiving.policy.maxStanzaDepth, 16)
        self.assertEqual(accept.policy.maxStanzaDepth, 16)
        # Two wrong handshakes block the source for the XEP-0225 listener too.
        for _ in range(2):
            limiter.failed("192.0.2.1", reactor.seconds())
        self.assertTrue(receiving.policy.authFailures.blocked("192.0.2.1", reactor.seconds()))


class AsciiFastPathTests(SynchronousTestCase):
    """
    Plain ASCII hostnames are normalised by lowercasing, without
    stringprep, to the same result as the full path; other names still
    take the full path.
    """

    PLAIN = ["comp.example.net", "Comp.EXAMPLE.net", "a-b.c1.example", "x", "a" * 63 + ".example"]
    OTHER = ["b\u00fccher.example", "-a.example", "a-.example", "a_b.example", "a" * 64 + ".example"]

    def _noStringprep(self) -> None:
        from encodings import idna

        from twisted.words.protocols.jabber import jid

        def boom(*args: object, **kw: object) -> None:
            raise AssertionError("the full path was taken")

        self.patch(jid, "JID", boom)
        self.patch(idna, "ToASCII", boom)

    def test_sameResults(self) -> None:
        """
        For every name, the fast path gives what nameprep gives (or refuses
        what it refuses).
        """
        from twisted.words.protocols.jabber import jid

        from xmppcomp.authz import canonicalHostname
        from xmppcomp.stream.bind import normalizeHostname
        from xmppcomp.jids import normalizeDomain

        for name in self.PLAIN:
            expected = jid.JID(name).host
            self.assertEqual(normalizeDomain(name), expected)
            self.assertEqual(normalizeHostname(name), expected)
            self.assertEqual(canonicalHostname(name), expected)
        self.assertEqual(canonicalHostname("B\u00fccher.Example"), "xn--bcher-kva.example")
        self.assertEqual(normalizeDomain("B\u00fccher.Example"), "xn--bcher-kva.example")
        self.assertRaises(ValueError, canonicalHostname, "a" * 64 + ".example")

    def test_noStringprepForPlainNames(self) -> None:
        """
        Plain ASCII names never reach nameprep or ToASCII.
        """
        from xmppcomp.authz import canonicalHostname
        from xmppcomp.stream.bind import normalizeHostname
        from xmppcomp.jids import normalizeDomain
        from xmppcomp.jids import plainDomain as plainHostname

        self._noStringprep()
        for name in self.PLAIN:
            self.assertEqual(normalizeDomain(name), name.lower())
            self.assertEqual(normalizeHostname(name), name.lower())
            self.assertEqual(canonicalHostname(name), name.lower())
        for name in self.OTHER:
            self.assertIsNone(plainHostname(name))
