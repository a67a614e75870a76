# -*- test-case-name: tests.test_router_fastpath -*-
"""
The router's fast path: each stanza's raw bytes are captured by the parser
(L{xmppcomp.router.rawstanzas.RawStanzaParser} with C{captureRaw}) and forwarded unchanged,
messages and presences are parsed shallow; everything else falls back to
the complete element, serialised. The routing rules hold on both paths.
"""

from __future__ import annotations

import hashlib
import random
import re


from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.xish import domish

from xmppcomp.ns import NS_CLIENT, NS_COMPONENT_ACCEPT
from xmppcomp.stream.acceptreceiving import AcceptFactory, AcceptPolicy
from xmppcomp.router.rawstanzas import RawStanzaParser

from .test_router_service import RouterHarness

HEADER = (
    b"<stream:stream xmlns='jabber:client'"
    b" xmlns:stream='http://etherx.jabber.org/streams' to='example.net'>"
)

STANZAS = [
    b"<message from='a.example.net' to='b.example.net'><body>hello</body></message>",
    # Double quotes, whitespace in tags, references, UTF-8, a payload.
    b'<message  from="a.example.net"\n to="b.example.net" ><body>x &amp; &lt;y&gt; &#x41; \xc3\xa9\xe2\x82\xac</body >'
    b"<x xmlns='urn:example' n='1'><y/></x></message >",
    b"<iq type='get' id='1' from='a.example.net' to='b.example.net'><query xmlns='urn:example'/></iq>",
    b"<presence from='a.example.net' to='b.example.net'><status>away</status></presence>",
]


class Collector:
    """
    A parser with raw capture on, recording for each top-level element
    the element and the raw bytes it had while it was dispatched.
    """

    def __init__(self, header: bytes = HEADER, capture: bool = True) -> None:
        self.stream = RawStanzaParser()
        self.stream.captureRaw = capture
        self.got: list[tuple[domish.Element, bytes | None, bool]] = []
        self.stream.DocumentStartEvent = lambda root: None
        self.stream.ElementEvent = self._element
        self.stream.DocumentEndEvent = lambda: None
        self.stream.parse(header)

    def _element(self, element: domish.Element) -> None:
        stream = self.stream
        raw = stream.lastRaw if stream.lastElement is element else None
        shallow = stream.lastShallow if stream.lastElement is element else False
        self.got.append((element, raw, shallow))

    def feed(self, data: bytes, size: int) -> None:
        for start in range(0, len(data), size):
            self.stream.parse(data[start : start + size])


def complete(data: bytes) -> domish.Element:
    """
    The element a parser without raw capture builds from C{data}.
    """
    collector = Collector(capture=False)
    collector.feed(data, len(data))
    [(element, _, _)] = collector.got
    return element


class RawCaptureTests(SynchronousTestCase):
    """
    L{RawStanzaParser} with C{captureRaw}.
    """

    def test_bytesIdenticalWhateverTheSlicing(self) -> None:
        """
        Each stanza's raw bytes are exactly what was received, whether the
        data arrives a byte at a time, in odd slices or at once, with
        whitespace between stanzas.
        """
        data = b" \n".join(STANZAS) + b"\n"
        for size in (1, 2, 7, 64, len(data)):
            collector = Collector()
            collector.feed(data, size)
            self.assertEqual([raw for _, raw, _ in collector.got], STANZAS, size)

    def test_largeStanzaAcrossSlices(self) -> None:
        """
        A stanza larger than the parser's 16 KiB slice, fed in one call or
        in pieces, keeps its bytes.
        """
        big = b"<iq type='set' id='2' from='a.example.net' to='b.example.net'><d xmlns='urn:example'>%s</d></iq>" % (
            b"Q" * 100000,
        )
        for size in (1000, 70000, len(big)):
            collector = Collector()
            collector.feed(big + STANZAS[0], size)
            self.assertEqual([raw for _, raw, _ in collector.got], [big, STANZAS[0]])

    def test_mixedStanzasRandomSlices(self) -> None:
        """
        Empty IQ results, large IQs and messages, one after another without
        whitespace, in random slices: every non-empty stanza keeps exactly
        its bytes, and the parser never keeps much more than one stanza.
        """
        rng = random.Random(7)
        for trial in range(20):
            stanzas = []
            for i in range(60):
                pick = rng.random()
                if pick < 0.4:
                    stanzas.append(b"<iq to='a.example.net' from='b.example.net' id='r%d' type='result'/>" % (i,))
                elif pick < 0.7:
                    stanzas.append(
                        b"<iq type='set' id='%d' from='a.example.net' to='b.example.net'><d xmlns='urn:x'>%s</d></iq>"
                        % (i, b"Q" * rng.randint(1, 3000))
                    )
                else:
                    stanzas.append(b"<message from='a.example.net' to='b.example.net'><body>%d</body></message>" % (i,))
            data = b"".join(stanzas)
            collector = Collector()
            position = 0
            while position < len(data):
                size = rng.choice([1, 7, 100, 5000])
                collector.stream.parse(data[position : position + size])
                position += size
                kept = sum(len(chunk) for chunk in collector.stream._chunks)
                self.assertLessEqual(kept, 3100 + 5000 + 200)
            expected = [None if stanza.endswith(b"/>") else stanza for stanza in stanzas]
            self.assertEqual([raw for _, raw, _ in collector.got], expected, trial)

    def test_shallowMessageAndPresence(self) -> None:
        """
        Messages and presences are dispatched shallow (attributes only);
        IQs in full. The complete element parsed from the raw bytes equals
        what a parser without capture builds.
        """
        collector = Collector()
        collector.feed(b"".join(STANZAS), 5)
        shallow = [(element.name, flag) for element, _, flag in collector.got]
        self.assertEqual(shallow, [("message", True), ("message", True), ("iq", False), ("presence", True)])
        for (element, raw, flag), data in zip(collector.got, STANZAS):
            self.assertEqual(element["from"], "a.example.net")
            assert raw is not None
            full = collector.stream.parseFull(raw) if flag else element
            self.assertEqual(full.toXml(), complete(data).toXml())
        self.assertEqual(collector.got[0][0].children, [])

    def test_emptyElement(self) -> None:
        """
        An empty-element stanza has no raw bytes (its end cannot be told
        from text ending in C{/>}), whether another stanza or the stream's
        end follows; the stanza after it keeps its bytes.
        """
        presence = b"<presence from='a.example.net' to='b.example.net'/>"
        collector = Collector()
        collector.feed(presence + STANZAS[0] + presence + b"</stream:stream>", 3)
        raws = [raw for _, raw, _ in collector.got]
        self.assertEqual(raws, [None, STANZAS[0], None])
        self.assertEqual(collector.got[2][0].toXml(), complete(presence).toXml())

    def test_textEndingLikeAnEmptyTag(self) -> None:
        """
        A stanza with only text, ending in C{/>}, cannot be told from an
        empty-element tag where expat reports its end: it gets no raw bytes
        and, though it was parsed shallow, is dispatched complete. With a
        child element before such text, its bytes are known.
        """
        textOnly = b"<message from='a.example.net' to='b.example.net'>x/></message>"
        collector = Collector()
        collector.feed(textOnly + b"</stream:stream>", len(textOnly) + 16)
        [(element, raw, _)] = collector.got
        self.assertIsNone(raw)
        self.assertEqual(element.toXml(), complete(textOnly).toXml())

        withChild = b"<message from='a.example.net' to='b.example.net'><body>b</body>x/></message>"
        collector = Collector()
        collector.feed(withChild + b"</stream:stream>", 5)
        [(element, raw, shallow)] = collector.got
        self.assertEqual((raw, shallow), (withChild, True))
        self.assertEqual(collector.stream.parseFull(raw).toXml(), complete(withChild).toXml())

    def test_redeclaredContentNamespace(self) -> None:
        """
        A stanza that declares the stream's content namespace itself (on
        itself or on a nested stanza) gets no raw bytes: they would not
        move to another content namespace. It is dispatched complete.
        """
        for stanza in [
            b"<message xmlns='jabber:client' from='a.example.net' to='b.example.net'><body>1</body></message>",
            b"<message from='a.example.net' to='b.example.net'><forwarded xmlns='urn:xmpp:forward:0'>"
            b"<message xmlns='jabber:client' from='c@d' to='e@f'><body>2</body></message></forwarded></message>",
        ]:
            collector = Collector()
            collector.feed(stanza + STANZAS[0], 4)
            [(element, raw, _), (_, after, _)] = collector.got
            self.assertIsNone(raw)
            self.assertEqual(element.toXml(), complete(stanza).toXml())
            self.assertEqual(after, STANZAS[0])

    def test_foreignPrefixInHeader(self) -> None:
        """
        When the stream header declares a prefix other than C{stream},
        stanzas could use it: no raw bytes, no shallow parsing.
        """
        header = HEADER.replace(b" to=", b" xmlns:db='jabber:server:dialback' to=")
        collector = Collector(header)
        collector.feed(STANZAS[0], 9)
        [(element, raw, flag)] = collector.got
        self.assertEqual((raw, flag), (None, False))
        self.assertEqual(str(element.body), "hello")

    def test_captureOff(self) -> None:
        """
        Without C{captureRaw} nothing is kept and every stanza is complete.
        """
        collector = Collector(capture=False)
        collector.feed(b"".join(STANZAS), 11)
        self.assertEqual([(raw, flag) for _, raw, flag in collector.got], [(None, False)] * 4)
        self.assertEqual(collector.stream._chunks, [])


SECRET = "a component secret"


def _shape(element: domish.Element) -> object:
    """
    Everything of an element and its descendants that domish keeps, in
    order: names, namespaces, attributes (in their order), prefixes, text.
    """
    return (
        element.uri,
        element.name,
        element.defaultUri,
        list(element.attributes.items()),
        dict(element.localPrefixes),
        [c if isinstance(c, str) else _shape(c) for c in element.children],
    )


class StockEquivalenceTests(SynchronousTestCase):
    """
    The stream builds a top-level element itself (the routing hot path)
    instead of through L{domish.ExpatElementStream}: what it builds is the
    same, to the order of the attributes.
    """

    STANZAS = STANZAS + [
        # xml:lang (a namespaced attribute), between others.
        b"<message from='a.example.net' xml:lang='en' to='b.example.net' type='chat'><body>hi</body></message>",
        # Prefixes declared on the stanza, a prefixed attribute and child.
        b"<iq xmlns:e='urn:example' e:flag='1' type='set' id='2'><e:q e:n='2'/></iq>",
        # The stream's content namespace declared again, and undeclared.
        b"<message xmlns='jabber:client' to='b.example.net'><body>x</body></message>",
        b"<message xmlns='' to='b.example.net'><body>x</body></message>",
        # Another default namespace.
        b"<x xmlns='urn:other' a='1'><y/></x>",
        b"<presence/>",
    ]

    def stock(self, data: bytes) -> domish.Element:
        stream = domish.ExpatElementStream()
        got: list[domish.Element] = []
        stream.DocumentStartEvent = lambda root: None
        stream.ElementEvent = got.append
        stream.DocumentEndEvent = lambda: None
        stream.parse(HEADER + data)
        [element] = got
        return element

    def test_sameElements(self) -> None:
        """
        With raw capture off (every element built) and on (message and
        presence shallow, then built in full by L{fullElement} where
        needed), each stanza's top-level element equals the stock one.
        """
        for data in self.STANZAS:
            expected = _shape(self.stock(data))
            self.assertEqual(_shape(complete(data)), expected, data)
            collector = Collector()
            collector.feed(data, len(data))
            [(element, _, shallow)] = collector.got
            top = _shape(element)
            self.assertEqual(top[:5], expected[:5], data)  # type: ignore[index]
            if not shallow:
                self.assertEqual(top, expected, data)


class AcceptSession:
    """
    An XEP-0114 component stream to the router over a StringTransport:
    exactly the bytes the router writes.
    """

    def __init__(self, harness: RouterHarness, factory: AcceptFactory, hostname: str) -> None:
        self.xs = factory.buildProtocol(None)
        self.transport = StringTransport()
        self.xs.makeConnection(self.transport)
        self.xs.dataReceived(
            b"<stream:stream xmlns='jabber:component:accept'"
            b" xmlns:stream='http://etherx.jabber.org/streams' to='%s'>" % (hostname.encode(),)
        )
        match = re.search(rb"id='([^']+)'", self.transport.value())
        assert match is not None, self.transport.value()
        digest = hashlib.sha1(match.group(1) + SECRET.encode()).hexdigest()
        self.xs.dataReceived(b"<handshake>%s</handshake>" % (digest.encode(),))
        assert b"<handshake/>" in self.transport.value(), self.transport.value()
        self.transport.clear()

    def take(self) -> bytes:
        value = self.transport.value()
        self.transport.clear()
        return value


class RouterFastPathTests(SynchronousTestCase):
    """
    The router forwards raw bytes where it can and keeps every routing
    rule on both paths, between XEP-0114 and XEP-0225 streams.
    """

    def setUp(self) -> None:
        self.harness = RouterHarness(self)
        router = self.harness.router
        secrets = {"a.accept.example.net": SECRET, "b.accept.example.net": SECRET}
        self.accept = AcceptFactory(AcceptPolicy(secrets=secrets.get), reactor=self.harness.clock)
        router.addBootstraps(self.accept, "xep0114")

    def session(self, hostname: str) -> AcceptSession:
        return AcceptSession(self.harness, self.accept, hostname)

    def test_bytesForwardedUnchanged(self) -> None:
        """
        Between two XEP-0114 streams each stanza arrives byte for byte as
        sent, however the sender sliced it.
        """
        a = self.session("a.accept.example.net")
        b = self.session("b.accept.example.net")
        stanzas = [s.replace(b"a.example.net", b"a.accept.example.net").replace(b"b.example.net", b"b.accept.example.net") for s in STANZAS]
        data = b"".join(stanzas)
        for size in (1, 13, len(data)):
            for start in range(0, len(data), size):
                a.xs.dataReceived(data[start : start + size])
            self.assertEqual(b.take(), data)
        self.assertEqual(a.take(), b"")

    def test_fallbackSerialises(self) -> None:
        """
        Stanzas without raw bytes (empty elements, redeclared namespace)
        are delivered serialised, complete and in the receiving stream's
        namespace.
        """
        a = self.session("a.accept.example.net")
        b = self.session("b.accept.example.net")
        a.xs.dataReceived(
            b"<presence from='a.accept.example.net' to='b.accept.example.net'/>"
            b"<message xmlns='jabber:component:accept' from='a.accept.example.net'"
            b" to='b.accept.example.net'><body>explicit</body></message>"
        )
        received = b.take()
        reader = Collector(
            b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>",
            capture=False,
        )
        reader.feed(received, len(received))
        [(presence, _, _), (message, _, _)] = reader.got
        self.assertEqual((presence.name, presence.uri, presence["to"]), ("presence", NS_COMPONENT_ACCEPT, "b.accept.example.net"))
        self.assertEqual((message.uri, str(message.body), message.body.uri), (NS_COMPONENT_ACCEPT, "explicit", NS_COMPONENT_ACCEPT))

    def test_acceptToModernTranslates(self) -> None:
        """
        From an XEP-0114 stream to an XEP-0225 one, raw forwarded stanzas
        take on C{jabber:client} (the stanza and its C{<body/>}); payload
        namespaces stay; so do explicit redeclarations, serialised.
        """
        a = self.session("a.accept.example.net")
        beta = self.harness.component("beta.example.net")
        a.xs.dataReceived(
            b"<message from='a.accept.example.net' to='beta.example.net'><body>one</body>"
            b"<x xmlns='urn:example'/></message>"
            b"<message xmlns='jabber:component:accept' from='a.accept.example.net' to='beta.example.net'>"
            b"<body>two</body></message>"
        )
        self.harness.flush()
        first, second = beta.received
        self.assertEqual((first.uri, first.body.uri, str(first.body)), (NS_CLIENT, NS_CLIENT, "one"))
        self.assertEqual(first.x.uri, "urn:example")
        self.assertEqual((second.uri, second.body.uri, str(second.body)), (NS_CLIENT, NS_CLIENT, "two"))

    def test_modernToAcceptTranslates(self) -> None:
        """
        From an XEP-0225 stream to an XEP-0114 one, the stanza arrives in
        C{jabber:component:accept} with its payload intact.
        """
        alpha = self.harness.component("alpha.example.net")
        b = self.session("b.accept.example.net")
        alpha.send("<message from='alpha.example.net' to='b.accept.example.net'><body>hi</body></message>")
        self.harness.flush()
        received = b.take()
        self.assertEqual(received, b"<message from='alpha.example.net' to='b.accept.example.net'><body>hi</body></message>")
        reader = Collector(
            b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>",
            capture=False,
        )
        reader.feed(received, len(received))
        [(message, _, _)] = reader.got
        self.assertEqual((message.uri, message.body.uri), (NS_COMPONENT_ACCEPT, NS_COMPONENT_ACCEPT))

    def test_invalidFrom(self) -> None:
        """
        A stanza from a name the session did not bind ends its stream with
        C{invalid-from}; nothing is forwarded, raw or not.
        """
        a = self.session("a.accept.example.net")
        b = self.session("b.accept.example.net")
        a.xs.dataReceived(b"<message from='b.accept.example.net' to='b.accept.example.net'><body>spoof</body></message>")
        self.assertIn(b"invalid-from", a.take())
        self.assertEqual(b.take(), b"")

    def test_bounceCarriesShallowStanzaPayload(self) -> None:
        """
        A message to an unbound name is bounced with the original payload,
        although it was parsed shallow: the bounce is built from the
        complete element.
        """
        a = self.session("a.accept.example.net")
        a.xs.dataReceived(
            b"<message from='a.accept.example.net' to='nobody.example.net' id='m1'><body>lost</body></message>"
        )
        reader = Collector(
            b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>",
            capture=False,
        )
        data = a.take()
        reader.feed(data, len(data))
        [(bounce, _, _)] = reader.got
        self.assertEqual((bounce["type"], bounce["id"], bounce["from"]), ("error", "m1", "nobody.example.net"))
        self.assertEqual(str(bounce.body), "lost")
        self.assertIsNotNone(bounce.error)

    def test_iqTrackedOnRawPath(self) -> None:
        """
        An IQ request forwarded raw is still tracked: when its recipient
        goes away unanswered, the sender gets C{service-unavailable}.
        """
        a = self.session("a.accept.example.net")
        b = self.session("b.accept.example.net")
        request = b"<iq type='get' id='q1' from='a.accept.example.net' to='b.accept.example.net'><ping xmlns='urn:xmpp:ping'/></iq>"
        a.xs.dataReceived(request)
        self.assertEqual(b.take(), request)
        b.xs.connectionLost(Exception("gone"))  # type: ignore[arg-type]
        answer = a.take()
        self.assertIn(b"service-unavailable", answer)
        self.assertIn(b"id='q1'", answer)

    def test_rawPathUsed(self) -> None:
        """
        Negotiated router streams capture raw bytes; the forwarded stanza
        is not serialised again (it keeps the sender's quoting).
        """
        a = self.session("a.accept.example.net")
        b = self.session("b.accept.example.net")
        self.assertTrue(a.xs.stream.captureRaw)
        stanza = b'<message from="a.accept.example.net" to="b.accept.example.net"><body>q</body></message>'
        a.xs.dataReceived(stanza)
        self.assertEqual(b.take(), stanza)


