# -*- test-case-name: tests.test_stream_parser -*-
"""
Tests for L{xmppcomp.stream.parser} (the stream's parser on pyexpat's
public API), for the router's L{xmppcomp.router.rawstanzas} (the raw-bytes
variant), and for how L{xmppcomp.stream.xmlstream.XmppXmlStream} makes
its parsers.

The restricted-XML and size-limit behaviour of the stream's parser is
tested in L{tests.test_stream_xmlstream}, the depth limit in
L{tests.test_router_hardening}, the router's use of raw bytes in
L{tests.test_router_fastpath}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber import xmlstream as jabberxmlstream
from twisted.words.xish import domish
from twisted.words.xish.xmlstream import STREAM_CONNECTED_EVENT
from zope.interface.verify import verifyObject

from xmppcomp.interfaces import IRawStanzaParser, IStanzaParser, IXmppStream
from xmppcomp.router.rawstanzas import RawStanzaParser
from xmppcomp.stream.parser import (
    RefusedNamespace,
    RestrictedXMLError,
    StanzaParser,
    StanzaTooDeep,
    StanzaTooLarge,
)
from xmppcomp.stream.xmlstream import XmppXmlStream

HEADER = (
    b"<stream:stream xmlns='jabber:client'"
    b" xmlns:stream='http://etherx.jabber.org/streams' to='example.net'>"
)

#: Stanzas covering what domish keeps: namespaces (default, prefixed,
#: undeclared), attributes (namespaced, with references), text (references,
#: CDATA, UTF-8, line ends), nesting.
STANZAS = [
    b"<message from='a@example.net' to='b@example.net'><body>hello</body></message>",
    b'<message  from="a@example.net"\r\n to="b@example.net" xml:lang="en" type="chat">'
    b"<body>x &amp; &lt;y&gt; &#x41;\r\n\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80</body >"
    b"<x xmlns='urn:example' n='1'><y a='&apos;&quot;'/>t<![CDATA[<not a tag/>]]></x></message >",
    b"<iq xmlns:e='urn:example' e:flag='1' type='set' id='2'><e:q e:n='2'><e:r/>text</e:q></iq>",
    b"<message xmlns='' to='b'><body>undeclared</body></message>",
    b"<x xmlns='urn:other' a='1'><y><z xmlns='urn:third'/></y>tail</x>",
    b"<presence/>",
    b"<presence from='a@example.net'><status>away</status><c xmlns='http://jabber.org/protocol/caps' ver='v'/></presence>",
]


def _shape(element: domish.Element) -> object:
    """
    Everything of an element and its descendants that domish keeps, in
    order: names, namespaces, attributes (in their order), prefixes, text,
    and that each child knows its parent.
    """
    children = []
    for child in element.children:
        if isinstance(child, str):
            children.append(child)
        else:
            assert child.parent is element
            children.append(_shape(child))
    return (
        element.uri,
        element.name,
        element.defaultUri,
        list(element.attributes.items()),
        dict(element.localPrefixes),
        children,
    )


class Events:
    """
    The callbacks of a parser, recorded.
    """

    def __init__(self, parser: Any) -> None:
        self.parser = parser
        self.log: list[tuple[str, Any]] = []
        parser.DocumentStartEvent = lambda root: self.log.append(("start", root))
        parser.ElementEvent = self.element
        parser.DocumentEndEvent = lambda: self.log.append(("end", None))

    def element(self, element: domish.Element) -> None:
        raw = None
        if isinstance(self.parser, RawStanzaParser):
            raw = self.parser.rawBytesOf(element)
            element = self.parser.fullElement(element)
        self.log.append(("element", (element, raw)))

    def elements(self) -> list[domish.Element]:
        return [value[0] for kind, value in self.log if kind == "element"]

    def raws(self) -> list[bytes | None]:
        return [value[1] for kind, value in self.log if kind == "element"]


def feed(parser: Any, data: bytes, size: int) -> None:
    """
    Feed C{data} to C{parser} in slices of C{size} bytes.
    """
    for start in range(0, len(data), size):
        parser.parse(data[start : start + size])


def stock(data: bytes) -> tuple[domish.Element, list[domish.Element], bool]:
    """
    What L{domish.ExpatElementStream} makes of C{data}: the root, the
    top-level elements, whether the document ended.
    """
    stream = domish.ExpatElementStream()
    roots: list[domish.Element] = []
    got: list[domish.Element] = []
    ended: list[bool] = []
    stream.DocumentStartEvent = roots.append
    stream.ElementEvent = got.append
    stream.DocumentEndEvent = lambda: ended.append(True)
    stream.parse(data)
    return roots[0], got, bool(ended)


class StanzaParserTests(SynchronousTestCase):
    """
    L{StanzaParser} builds what L{domish.ExpatElementStream} builds, on
    public API only.
    """

    parserType: Any = StanzaParser

    def test_interface(self) -> None:
        """
        The parser provides L{IStanzaParser} and is no subclass of domish's
        parser.
        """
        parser = self.parserType()
        self.assertTrue(verifyObject(IStanzaParser, parser))
        self.assertNotIsInstance(parser, domish.ExpatElementStream)

    def test_sameAsDomish(self) -> None:
        """
        The root, each top-level element and the document end come as
        domish's parser makes them, in order, however the bytes are
        sliced (a byte at a time splits UTF-8 characters and tags).
        """
        data = HEADER + b"\n ".join(STANZAS) + b"</stream:stream>"
        root, expected, ended = stock(data)
        self.assertTrue(ended)
        for size in (1, 3, 17, len(data)):
            parser = self.parserType()
            events = Events(parser)
            feed(parser, data, size)
            kinds = [kind for kind, _ in events.log]
            self.assertEqual(kinds, ["start"] + ["element"] * len(STANZAS) + ["end"], size)
            self.assertEqual(_shape(events.log[0][1]), _shape(root))
            self.assertEqual([_shape(e) for e in events.elements()], [_shape(e) for e in expected], size)
            for element in events.elements():
                self.assertIsNone(element.parent)

    def test_rootPrefixes(self) -> None:
        """
        The root element has the prefixes and default namespace the header
        declared, as C{parseStreamHeader} expects.
        """
        parser = self.parserType()
        events = Events(parser)
        parser.parse(HEADER)
        [(kind, root)] = events.log
        self.assertEqual(kind, "start")
        self.assertEqual((root.uri, root.name), ("http://etherx.jabber.org/streams", "stream"))
        self.assertEqual(root.defaultUri, "jabber:client")
        self.assertEqual(root.localPrefixes, {"stream": "http://etherx.jabber.org/streams"})
        self.assertEqual(root["to"], "example.net")

    def test_refusedEverywhere(self) -> None:
        """
        Comments, processing instructions, undefined entities and unsafe
        namespace names are refused inside stanzas, and deep nesting and
        oversized stanzas too, whatever the stanza (with raw capture on,
        for the router's parser: messages are then parsed shallow).
        """
        cases: list[tuple[bytes, type[Exception]]] = [
            (b"<message><body><!-- c --></body></message>", RestrictedXMLError),
            (b"<message><body><?pi x?></body></message>", RestrictedXMLError),
            (b"<message><body>&ent;</body></message>", RestrictedXMLError),
            (b"<message><x xmlns='urn:a&amp;b'/></message>", RefusedNamespace),
            (b"<message><x xmlns:p='urn:&lt;'/></message>", RefusedNamespace),
            (b"<message>" + b"<x>" * 5 + b"</x>" * 5 + b"</message>", StanzaTooDeep),
            (b"<message><body>" + b"a" * 2000 + b"</body></message>", StanzaTooLarge),
            (b"<message><body>x</bod></message>", domish.ParserError),
        ]
        for stanza, exception in cases:
            for name in (b"message", b"iq"):
                data = stanza.replace(b"message", name)
                parser = self.parserType(1024, 4)
                if isinstance(parser, RawStanzaParser):
                    parser.captureRawStanzas()
                events = Events(parser)
                parser.parse(HEADER + b"<presence from='a'><status>s</status></presence>")
                self.assertRaises(exception, feed, parser, data, 7)
                self.assertEqual(len(events.elements()), 1, data)
                # Dead from then on.
                self.assertRaises(exception, parser.parse, b"<presence/>")

    def test_discard(self) -> None:
        """
        Once discarded (from within a callback, as a stream restart does),
        nothing more is delivered, and what follows in the same data is
        dropped even if it is not well-formed.
        """
        parser = self.parserType()
        got: list[str] = []

        def element(element: domish.Element) -> None:
            got.append(element.name)
            if element.name == "proceed":
                parser.discard()

        parser.ElementEvent = element
        parser.parse(HEADER + b"<proceed/><message><body>injected</body></message><<<")
        parser.parse(b"<message/>")
        self.assertEqual(got, ["proceed"])

    def test_callbackError(self) -> None:
        """
        An exception raised by a callback goes to the caller of C{parse},
        and the parser is dead from then on.
        """
        parser = self.parserType()

        def element(element: domish.Element) -> None:
            raise ZeroDivisionError()

        parser.ElementEvent = element
        self.assertRaises(ZeroDivisionError, parser.parse, HEADER + b"<message/>")
        self.assertRaises(domish.ParserError, parser.parse, b"<message/>")


class RawStanzaParserTests(StanzaParserTests):
    """
    L{RawStanzaParser} behaves as L{StanzaParser} (the tests above, with
    raw capture off unless they turn it on), and keeps raw bytes.
    """

    parserType = RawStanzaParser

    def test_rawInterface(self) -> None:
        """
        The router's parser provides L{IRawStanzaParser}.
        """
        self.assertTrue(verifyObject(IRawStanzaParser, RawStanzaParser()))

    def test_sameAsDomishWithCapture(self) -> None:
        """
        With raw capture on, the complete element (L{fullElement}) of each
        stanza is domish's, however the bytes are sliced.
        """
        data = HEADER + b"\n ".join(STANZAS) + b"</stream:stream>"
        _, expected, _ = stock(data)
        for size in (1, 3, 17, len(data)):
            parser = RawStanzaParser()
            parser.captureRawStanzas()
            events = Events(parser)
            feed(parser, data, size)
            self.assertEqual([_shape(e) for e in events.elements()], [_shape(e) for e in expected], size)

    def test_rawBytesByteByByte(self) -> None:
        """
        Fed a byte at a time (every chunk boundary falls inside a tag, a
        reference, a UTF-8 character, a CR LF), each stanza's raw bytes are
        exactly the bytes received: quoting, whitespace, line ends,
        references and CDATA untouched. The empty-element C{<presence/>}
        has none (its end cannot be told from text ending in C{/>}).
        """
        data = HEADER + b" \r\n".join(STANZAS) + b"\n"
        expected = [None if stanza.endswith(b"/>") else stanza for stanza in STANZAS]
        for size in (1, 2, 5, 4096):
            parser = RawStanzaParser()
            parser.captureRawStanzas()
            events = Events(parser)
            feed(parser, data, size)
            self.assertEqual(events.raws(), expected, size)

    def test_rawBytesOnlyWhileDispatched(self) -> None:
        """
        The raw bytes are known for the stanza being dispatched only:
        before capture is turned on, and after the callback returns, there
        are none, and L{fullElement} returns the element given.
        """
        parser = RawStanzaParser()
        got: list[domish.Element] = []
        parser.ElementEvent = got.append
        parser.parse(HEADER + STANZAS[0])
        self.assertIsNone(parser.rawBytesOf(got[0]))
        parser.captureRawStanzas()
        parser.parse(STANZAS[0])
        self.assertIsNone(parser.rawBytesOf(got[1]))
        self.assertIs(parser.fullElement(got[1]), got[1])
        self.assertEqual(got[1].children, [])

    def test_captureFromNextStanza(self) -> None:
        """
        Capture turned on in the middle of a stanza applies from the next
        one: the stanza whose start was not kept is built in full.
        """
        parser = RawStanzaParser()
        events = Events(parser)
        parser.parse(HEADER + STANZAS[0][:20])
        parser.captureRawStanzas()
        parser.parse(STANZAS[0][20:] + STANZAS[0])
        self.assertEqual(events.raws(), [None, STANZAS[0]])
        self.assertEqual(str(events.elements()[0].body), "hello")

    def test_parseFull(self) -> None:
        """
        L{RawStanzaParser.parseFull} parses one stanza's raw bytes in the
        stream's content namespace.
        """
        parser = RawStanzaParser()
        parser.parse(HEADER.replace(b"jabber:client", b"jabber:component:accept"))
        full = parser.parseFull(STANZAS[0])
        self.assertEqual((full.uri, full.body.uri), ("jabber:component:accept", "jabber:component:accept"))


class Authenticator(jabberxmlstream.Authenticator):
    """
    An authenticator that does nothing.
    """


class XmppXmlStreamParserTests(SynchronousTestCase):
    """
    L{XmppXmlStream} makes its parsers itself, through public protocol
    methods, from the factory it is given.
    """

    def stream(self) -> XmppXmlStream:
        xs = XmppXmlStream(Authenticator(), reactor=Clock(), maxStanzaSize=4096, maxDepth=7)
        return xs

    def test_interface(self) -> None:
        """
        The stream provides L{IXmppStream}.
        """
        xs = self.stream()
        xs.makeConnection(StringTransport())
        self.assertTrue(verifyObject(IXmppStream, xs))

    def test_defaultParser(self) -> None:
        """
        By default the stream parses with a L{StanzaParser} with its limits,
        made when the connection is made.
        """
        xs = self.stream()
        self.assertIsNone(xs.stream)
        xs.makeConnection(StringTransport())
        self.assertIs(type(xs.stream), StanzaParser)
        self.assertEqual((xs.stream.maxStanzaSize, xs.stream.maxDepth), (4096, 7))

    def test_factoryAtConnect(self) -> None:
        """
        A factory set while C{STREAM_CONNECTED_EVENT} is dispatched (as the
        router does) replaces the parser at once: it parses the first byte.
        """
        xs = self.stream()
        made: list[RawStanzaParser] = []

        def factory(size: int, depth: int) -> RawStanzaParser:
            made.append(RawStanzaParser(size, depth))
            return made[-1]

        xs.addObserver(STREAM_CONNECTED_EVENT, lambda xs: xs.setParserFactory(factory))
        elements: list[domish.Element] = []
        xs.addObserver("/message", elements.append)
        xs.makeConnection(StringTransport())
        [parser] = made
        self.assertIs(xs.stream, parser)
        self.assertEqual((parser.maxStanzaSize, parser.maxDepth), (4096, 7))
        xs.dataReceived(HEADER + STANZAS[0])
        self.assertEqual(len(elements), 1)

    def test_factoryAfterData(self) -> None:
        """
        A factory set once the parser was fed applies from the next reset;
        the old parser is discarded then.
        """
        xs = self.stream()
        xs.makeConnection(StringTransport())
        first = xs.stream
        xs.dataReceived(HEADER)
        xs.setParserFactory(RawStanzaParser)
        self.assertIs(xs.stream, first)
        xs.reset()
        self.assertIsInstance(xs.stream, RawStanzaParser)
        got: list[domish.Element] = []
        first.ElementEvent = got.append
        first.parse(STANZAS[0])
        self.assertEqual(got, [])

    def test_resetSendsHeaderAgain(self) -> None:
        """
        After L{XmppXmlStream.reset} our header counts as not sent.
        """
        xs = self.stream()
        xs.makeConnection(StringTransport())
        xs.namespace = "jabber:client"
        xs.sendHeader()
        self.assertTrue(xs.headerSent)
        xs.reset()
        self.assertFalse(xs.headerSent)
