# -*- test-case-name: tests.test_stream_xmlstream -*-
"""
Tests for L{xmppcomp.stream.xmlstream}.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs
from twisted.internet import defer, protocol, reactor
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import deferLater
from twisted.internet.testing import StringTransport
from twisted.internet.task import Clock
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.words.protocols.jabber import error, jid
from twisted.words.protocols.jabber import xmlstream as jabberxmlstream
from twisted.words.xish import domish
from twisted.words.xish.xmlstream import STREAM_END_EVENT, STREAM_ERROR_EVENT
from zope.interface import implementer

from xmppcomp.errors import UnserializableElement
from xmppcomp.ns import NS_CLIENT, NS_STREAMS, NS_XMPP_STREAMS
from xmppcomp.stream.parser import StanzaParser
from xmppcomp.stream.xmlstream import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_STANZA_SIZE,
    RefusedNamespace,
    RestrictedXMLError,
    StanzaTooLarge,
    StreamHeader,
    XML_FORBIDDEN,
    XmppXmlStream,
    checkHost,
    checkSerializable,
    conditionForParserError,
    flushWrites,
    newStreamId,
    parseStreamHeader,
)

HEADER = (
    b"<?xml version='1.0'?>"
    b"<stream:stream xmlns='jabber:client'"
    b" xmlns:stream='http://etherx.jabber.org/streams'"
    b" to='example.com' version='1.0'>"
)

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<stream:stream xmlns='jabber:client'
 xmlns:stream='http://etherx.jabber.org/streams'
 to='example.com' version='1.0'><message><body>&lol9;</body></message>"""

FOOTER = b"</stream:stream>"


def errorBytes(condition: str) -> bytes:
    """
    The exact bytes of a stream error as L{XmppXmlStream} writes it.
    """
    return (
        b"<stream:error><"
        + condition.encode("ascii")
        + b" xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
    )


def conditionOf(reason: Failure | None) -> str:
    """
    The condition of the L{error.StreamError} in C{reason}.
    """
    assert reason is not None
    assert isinstance(reason.value, error.StreamError)
    condition: str = reason.value.condition
    return condition


def parserOf(xs: XmppXmlStream) -> StanzaParser:
    """
    The current parser of C{xs}.
    """
    assert isinstance(xs.stream, StanzaParser)
    return xs.stream


def stanzaOfSize(size: int, name: str = "message") -> bytes:
    """
    A C{<name><body>aaa...</body></name>} stanza of exactly C{size} bytes.
    """
    head = f"<{name}><body>".encode("ascii")
    tail = f"</body></{name}>".encode("ascii")
    return head + b"a" * (size - len(head) - len(tail)) + tail


@attrs.define
class ParsedOutput:
    """
    What a peer would parse from the bytes an L{XmppXmlStream} wrote.

    @ivar root: the stream header, or L{None}.
    @ivar elements: the top-level elements.
    @ivar ended: whether C{</stream:stream>} was seen.
    """

    root: domish.Element | None = None
    elements: list[domish.Element] = attrs.Factory(list)
    ended: bool = False


def parseOutput(data: bytes) -> ParsedOutput:
    """
    Parse what was written with a plain (unrestricted) domish element
    stream, as a peer would.
    """
    output = ParsedOutput()

    def ended() -> None:
        output.ended = True

    stream = domish.ExpatElementStream()
    stream.DocumentStartEvent = lambda root: setattr(output, "root", root)
    stream.ElementEvent = output.elements.append
    stream.DocumentEndEvent = ended
    stream.parse(data)
    return output


class ReceivingAuthenticator(jabberxmlstream.ListenAuthenticator):
    """
    A receiving-side authenticator that answers the peer's header with its
    own and does nothing else.
    """

    namespace = NS_CLIENT

    def associateWithStream(self, xs: jabberxmlstream.XmlStream) -> None:
        super().associateWithStream(xs)
        xs.namespace = self.namespace

    def streamStarted(self, rootElement: domish.Element) -> None:
        super().streamStarted(rootElement)
        assert self.xmlstream is not None
        self.xmlstream.sendHeader()


class InitiatingAuthenticator(jabberxmlstream.ConnectAuthenticator):
    """
    An initiating-side authenticator that sends its header on connect.
    """

    namespace = NS_CLIENT

    def streamStarted(self, rootElement: domish.Element) -> None:
        jabberxmlstream.Authenticator.streamStarted(self, rootElement)


class NoDelayTransport(StringTransport):
    """
    A transport that records C{setTcpNoDelay}.
    """

    noDelay: bool | None = None

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.noDelay = enabled


class BrokenNoDelayTransport(StringTransport):
    """
    A transport whose C{setTcpNoDelay} fails, as on some socket types.
    """

    def setTcpNoDelay(self, enabled: bool) -> None:
        raise OSError("not a TCP socket")


class ParserSpy:
    """
    Wraps an expat parser, recording the size of each buffer handed to it.
    """

    def __init__(self, parser: Any) -> None:
        self._parser = parser
        self.fed: list[int] = []

    def Parse(self, data: bytes, isFinal: bool = False) -> int:
        self.fed.append(len(data))
        result: int = self._parser.Parse(data, isFinal)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)


class ElementCollector:
    """
    Hooks the callbacks of an element stream and records what they get.
    """

    def __init__(self, stream: StanzaParser) -> None:
        self.roots: list[domish.Element] = []
        self.elements: list[domish.Element] = []
        self.ended = 0
        stream.DocumentStartEvent = self.roots.append
        stream.ElementEvent = self.elements.append
        stream.DocumentEndEvent = self._end

    def _end(self) -> None:
        self.ended += 1


def feedUntilError(
    parse: Callable[[bytes], object], data: bytes, pieceSize: int
) -> tuple[int, BaseException | None]:
    """
    Feed C{data} in pieces until C{parse} raises.

    @return: how many bytes were offered, up to and including the piece
        that raised, and the exception (or L{None}).
    """
    offered = 0
    for start in range(0, len(data), pieceSize):
        piece = data[start : start + pieceSize]
        offered += len(piece)
        try:
            parse(piece)
        except Exception as e:
            return offered, e
    return offered, None


class ConstantsTests(SynchronousTestCase):
    """
    Tests for the module's defaults.
    """

    def test_defaults(self) -> None:
        """
        The default stanza limit is 256 KiB and the close timeout 10 s.
        """
        self.assertEqual(DEFAULT_MAX_STANZA_SIZE, 262144)
        self.assertEqual(DEFAULT_CLOSE_TIMEOUT, 10.0)

    def test_exceptionsAreParserErrors(self) -> None:
        """
        Both parse errors are L{domish.ParserError}s, so existing code that
        catches parse errors catches them too.
        """
        self.assertTrue(issubclass(RestrictedXMLError, domish.ParserError))
        self.assertTrue(issubclass(StanzaTooLarge, domish.ParserError))

    def test_conditionForParserError(self) -> None:
        """
        Each parse error maps to its RFC 6120 stream error condition.
        """
        self.assertEqual(
            conditionForParserError(RestrictedXMLError("x")), "restricted-xml"
        )
        self.assertEqual(conditionForParserError(StanzaTooLarge("x")), "policy-violation")
        self.assertEqual(
            conditionForParserError(domish.ParserError("x")), "not-well-formed"
        )


class StanzaParserTests(SynchronousTestCase):
    """
    Tests for L{StanzaParser}.
    """

    def setUp(self) -> None:
        self.stream = StanzaParser(1024)
        self.collected = ElementCollector(self.stream)

    def assertRestricted(self, data: bytes) -> RestrictedXMLError:
        """
        Parsing C{data} raises L{RestrictedXMLError}.
        """
        exc: RestrictedXMLError = self.assertRaises(
            RestrictedXMLError, self.stream.parse, data
        )
        return exc

    def test_wellFormedStream(self) -> None:
        """
        A header, stanzas and the closing tag give a root, elements and the
        document end.
        """
        self.stream.parse(HEADER + b"<message to='a@b'/><presence/>" + FOOTER)
        self.assertEqual([r.name for r in self.collected.roots], ["stream"])
        self.assertEqual(
            [(e.uri, e.name) for e in self.collected.elements],
            [(NS_CLIENT, "message"), (NS_CLIENT, "presence")],
        )
        self.assertEqual(self.collected.ended, 1)

    def test_predefinedEntitiesAndCharacterReferences(self) -> None:
        """
        The five predefined entities and character references are allowed,
        in text and in attribute values.
        """
        self.stream.parse(
            HEADER + b"<message id='&amp;&#65;&quot;'>"
            b"<body>&lt;&gt;&amp;&quot;&apos;&#65;&#x42;&#x20AC;</body></message>"
        )
        [message] = self.collected.elements
        self.assertEqual(message["id"], '&A"')
        self.assertEqual(str(message.body), "<>&\"'AB\u20ac")

    def test_unsafeNamespaceRefused(self) -> None:
        """
        A namespace name holding a character domish would write unescaped
        (C{<}, C{&}, C{'}, C{"}) is refused with C{policy-violation}: once
        forwarded or bounced it would be broken XML for the recipient
        (found by the atheris harness).
        """
        for uri in (b"urn:x&lt;", b"urn:x&amp;y", b"urn:x&apos;", b"urn:x&quot;"):
            stream = StanzaParser(1024)
            ElementCollector(stream)
            stream.parse(HEADER)
            e = self.assertRaises(
                RefusedNamespace, stream.parse, b"<message><x xmlns='" + uri + b"'/></message>"
            )
            self.assertEqual(conditionForParserError(e), "policy-violation")

    def test_xmlDeclarationAllowed(self) -> None:
        """
        The XML declaration is not a processing instruction and is allowed.
        """
        self.stream.parse(b"<?xml version='1.0' encoding='UTF-8'?>" + HEADER[21:])
        self.assertEqual(len(self.collected.roots), 1)

    def test_doctype(self) -> None:
        """
        A document type declaration is restricted XML.
        """
        self.assertRestricted(b"<?xml version='1.0'?><!DOCTYPE stream>" + HEADER[21:])
        self.assertEqual(self.collected.roots, [])

    def test_billionLaughs(self) -> None:
        """
        The billion laughs payload is refused at its DOCTYPE: no entity is
        declared or expanded and no element is produced.
        """
        exc = self.assertRestricted(BILLION_LAUGHS)
        self.assertIn("document type declaration", str(exc))
        self.assertEqual(self.collected.roots, [])
        self.assertEqual(self.collected.elements, [])

    def test_externalEntity(self) -> None:
        """
        An external entity declaration never gets resolved: the DOCTYPE that
        holds it is refused.
        """
        self.assertRestricted(
            b"<!DOCTYPE s [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>"
            b"<s>&xxe;</s>"
        )
        self.assertEqual(self.collected.roots, [])

    def test_commentInProlog(self) -> None:
        """
        A comment before the stream header is restricted XML.
        """
        self.assertRestricted(b"<!-- hi -->" + HEADER[21:])

    def test_commentInStanza(self) -> None:
        """
        A comment inside a stanza is restricted XML, and the stanza is not
        delivered.
        """
        self.stream.parse(HEADER)
        self.assertRestricted(b"<message><!-- hi --></message>")
        self.assertEqual(self.collected.elements, [])

    def test_processingInstruction(self) -> None:
        """
        A processing instruction between stanzas is restricted XML.
        """
        self.stream.parse(HEADER)
        self.assertRestricted(b"<?php echo 1; ?>")

    def test_processingInstructionInProlog(self) -> None:
        """
        A processing instruction other than the XML declaration, before the
        header, is restricted XML.
        """
        self.assertRestricted(
            b"<?xml version='1.0'?><?xml-stylesheet href='a.xsl'?>" + HEADER[21:]
        )

    def test_undefinedEntity(self) -> None:
        """
        An entity reference other than the predefined five is restricted
        XML, not merely not well-formed.
        """
        self.stream.parse(HEADER)
        self.assertRestricted(b"<message><body>&foo;</body></message>")
        self.assertEqual(self.collected.elements, [])

    def test_undefinedEntityInAttribute(self) -> None:
        """
        An undefined entity in an attribute value is restricted XML.
        """
        self.stream.parse(HEADER)
        self.assertRestricted(b"<message to='&foo;'/>")

    def test_notWellFormed(self) -> None:
        """
        Malformed XML raises a plain L{domish.ParserError}, which maps to
        C{not-well-formed}.
        """
        self.stream.parse(HEADER)
        exc = self.assertRaises(domish.ParserError, self.stream.parse, b"<a></b>")
        self.assertEqual(conditionForParserError(exc), "not-well-formed")

    def test_deadAfterError(self) -> None:
        """
        After an error, every later call raises the same error and produces
        no events, even for good data.
        """
        self.stream.parse(HEADER)
        first = self.assertRestricted(b"<!-- x -->")
        second = self.assertRaises(
            RestrictedXMLError, self.stream.parse, b"<message/>"
        )
        self.assertIs(first, second)
        self.assertEqual(self.collected.elements, [])

    def test_oversizedStanzaRefusedEarly(self) -> None:
        """
        A 1 MiB stanza against a 1 KiB limit is refused as soon as the limit
        is crossed: the rest is never offered to expat, and expat never
        holds more than the limit of the stanza's bytes.
        """
        spy = ParserSpy(self.stream.parser)
        self.stream.parser = spy  # type: ignore[assignment]
        self.stream.parse(HEADER)
        headerFed = sum(spy.fed)
        stanza = stanzaOfSize(1024 * 1024)
        offered, exc = feedUntilError(self.stream.parse, stanza, 100)
        self.assertIsInstance(exc, StanzaTooLarge)
        self.assertEqual(conditionForParserError(exc), "policy-violation")  # type: ignore[arg-type]
        # The error came with the piece that crossed the limit.
        self.assertLessEqual(offered, 1024 + 100)
        self.assertLessEqual(sum(spy.fed) - headerFed, 1024)
        self.assertEqual(self.collected.elements, [])

    def test_oversizedStanzaInOneBuffer(self) -> None:
        """
        A huge stanza arriving in a single buffer is still cut into bounded
        slices: expat sees no more than the limit of it.
        """
        stream = StanzaParser(64 * 1024)
        collected = ElementCollector(stream)
        spy = ParserSpy(stream.parser)
        stream.parser = spy  # type: ignore[assignment]
        stream.parse(HEADER)
        headerFed = sum(spy.fed)
        self.assertRaises(
            StanzaTooLarge, stream.parse, stanzaOfSize(1024 * 1024)
        )
        self.assertLessEqual(max(spy.fed), 16 * 1024)
        self.assertLessEqual(sum(spy.fed) - headerFed, 64 * 1024)
        self.assertEqual(collected.elements, [])

    def test_stanzaExactlyAtLimit(self) -> None:
        """
        A stanza of exactly the limit passes, whether it arrives whole or
        byte by byte.
        """
        self.stream.parse(HEADER)
        stanza = stanzaOfSize(1024)
        self.stream.parse(stanza)
        for i in range(len(stanza)):
            self.stream.parse(stanza[i : i + 1])
        self.assertEqual(len(self.collected.elements), 2)
        self.assertEqual(len(str(self.collected.elements[0].body)), 1024 - 32)

    def test_stanzaOneByteOverLimit(self) -> None:
        """
        A stanza one byte over the limit is refused and never delivered,
        even when it arrives in one buffer.
        """
        self.stream.parse(HEADER)
        self.assertRaises(StanzaTooLarge, self.stream.parse, stanzaOfSize(1025))
        self.assertEqual(self.collected.elements, [])

    def test_manyStanzasInOneBuffer(self) -> None:
        """
        The limit applies to each stanza, not to the buffer: many stanzas
        near the limit in one buffer all pass.
        """
        self.stream.parse(HEADER)
        self.stream.parse(stanzaOfSize(1000) * 20)
        self.assertEqual(len(self.collected.elements), 20)

    def test_hugeHeader(self) -> None:
        """
        A stream header larger than the limit is refused before it is
        buffered.
        """
        header = b"<stream:stream xmlns='jabber:client' junk='" + b"x" * 10_000_000
        offered, exc = feedUntilError(self.stream.parse, header, 4096)
        self.assertIsInstance(exc, StanzaTooLarge)
        self.assertLessEqual(offered, 1024 + 4096)
        self.assertEqual(self.collected.roots, [])

    def test_endlessWhitespaceBeforeHeader(self) -> None:
        """
        Whitespace before the stream header counts against the limit.
        """
        offered, exc = feedUntilError(self.stream.parse, b" " * 100_000, 100)
        self.assertIsInstance(exc, StanzaTooLarge)
        self.assertLessEqual(offered, 1024 + 100)

    def test_partialTagBetweenStanzas(self) -> None:
        """
        Bytes between stanzas that the parser must hold (an unfinished tag)
        count against the limit.
        """
        self.stream.parse(HEADER + b"<presence/>")
        offered, exc = feedUntilError(
            self.stream.parse, b"<message " + b"a" * 100_000, 100
        )
        self.assertIsInstance(exc, StanzaTooLarge)
        self.assertLessEqual(offered, 1024 + 100)

    def test_whitespaceKeepalivesDoNotAddUp(self) -> None:
        """
        Whitespace keepalives between stanzas are consumed by the parser and
        do not add up to the limit over the life of a stream.
        """
        self.stream.parse(HEADER)
        for _ in range(5000):
            self.stream.parse(b" ")
        self.stream.parse(b"\r\n" * 2000)
        self.stream.parse(stanzaOfSize(1000))
        self.assertEqual(len(self.collected.elements), 1)

    def test_baseClassLimitsDoNotApply(self) -> None:
        """
        The configured limit replaces the 10 MiB limit of
        L{domish.ExpatElementStream}: a larger stanza passes under a larger
        limit.
        """
        stream = StanzaParser(12 * 1024 * 1024)
        collected = ElementCollector(stream)
        stream.parse(HEADER)
        stream.parse(stanzaOfSize(11 * 1024 * 1024))
        self.assertEqual(len(collected.elements), 1)
        self.assertEqual(stream.maxStanzaSize, 12 * 1024 * 1024)

    def test_limitMustBePositive(self) -> None:
        """
        A limit below one byte is refused.
        """
        self.assertRaises(ValueError, StanzaParser, 0)


def headerElement(data: bytes) -> domish.Element:
    """
    Parse a stream header into its root element.
    """
    roots: list[domish.Element] = []
    stream = domish.ExpatElementStream()
    stream.DocumentStartEvent = roots.append
    stream.parse(data)
    [root] = roots
    return root


def header(attributes: str = "", prefix: str = "stream", default: str = NS_CLIENT) -> bytes:
    """
    A stream header with the given prefix for the streams namespace, default
    namespace and extra attributes.
    """
    return (
        f"<{prefix}:stream xmlns='{default}' xmlns:{prefix}='{NS_STREAMS}'"
        f" {attributes}>"
    ).encode("utf-8")


class ParseStreamHeaderTests(SynchronousTestCase):
    """
    Tests for L{parseStreamHeader}, L{checkHost} and L{newStreamId}.
    """

    def assertStreamError(self, data: bytes, condition: str) -> None:
        """
        Parsing the header in C{data} raises a L{error.StreamError} with
        C{condition}.
        """
        exc = self.assertRaises(
            error.StreamError, parseStreamHeader, headerElement(data), NS_CLIENT
        )
        self.assertEqual(exc.condition, condition)

    def test_valid(self) -> None:
        """
        A valid header gives all its attributes, JIDs normalised.
        """
        result = parseStreamHeader(
            headerElement(
                header(
                    "to='Example.COM' from='Comp.Example.com' id='abc'"
                    " version='1.0' xml:lang='en'"
                )
            ),
            NS_CLIENT,
        )
        self.assertEqual(
            result,
            StreamHeader(
                namespace=NS_CLIENT,
                to="example.com",
                from_="comp.example.com",
                id="abc",
                version=(1, 0),
                lang="en",
            ),
        )

    def test_optionalAttributesAbsent(self) -> None:
        """
        Without C{to}, C{from}, C{id} and C{xml:lang}, those are L{None}.
        """
        result = parseStreamHeader(headerElement(header("version='1.0'")), NS_CLIENT)
        self.assertEqual((result.to, result.from_, result.id, result.lang), (None,) * 4)

    def test_higherMinorVersion(self) -> None:
        """
        A higher minor version of XMPP 1 is accepted, leading zeros ignored.
        """
        result = parseStreamHeader(headerElement(header("version='1.05'")), NS_CLIENT)
        self.assertEqual(result.version, (1, 5))

    def test_frozen(self) -> None:
        """
        L{StreamHeader} is immutable.
        """
        result = parseStreamHeader(headerElement(header("version='1.0'")), NS_CLIENT)
        self.assertRaises(attrs.exceptions.FrozenInstanceError, setattr, result, "to", "x")

    def test_wrongRootName(self) -> None:
        """
        A root other than C{stream} is C{invalid-namespace}.
        """
        self.assertStreamError(
            f"<stream:streamx xmlns='jabber:client' xmlns:stream='{NS_STREAMS}'"
            " version='1.0'>".encode(),
            "invalid-namespace",
        )

    def test_wrongStreamsNamespace(self) -> None:
        """
        A C{stream} root in another namespace is C{invalid-namespace}.
        """
        self.assertStreamError(
            b"<stream:stream xmlns='jabber:client' xmlns:stream='urn:x'"
            b" version='1.0'>",
            "invalid-namespace",
        )

    def test_wrongDefaultNamespace(self) -> None:
        """
        A default namespace other than the expected one is
        C{invalid-namespace}.
        """
        self.assertStreamError(
            header("version='1.0'", default="jabber:server"), "invalid-namespace"
        )

    def test_otherPrefix(self) -> None:
        """
        The streams namespace bound to a prefix other than C{stream} is
        C{bad-namespace-prefix}.
        """
        self.assertStreamError(
            header("version='1.0'", prefix="foobar"), "bad-namespace-prefix"
        )

    def test_noPrefix(self) -> None:
        """
        The streams namespace as the default namespace (no prefix) is
        C{bad-namespace-prefix}.
        """
        self.assertStreamError(
            f"<stream xmlns='{NS_STREAMS}' version='1.0'>".encode(),
            "bad-namespace-prefix",
        )

    def test_missingVersion(self) -> None:
        """
        A header without C{version} (pre-XMPP 1.0) is
        C{unsupported-version}.
        """
        self.assertStreamError(header("to='example.com'"), "unsupported-version")

    def test_otherMajorVersion(self) -> None:
        """
        A major version other than 1 is C{unsupported-version}.
        """
        self.assertStreamError(header("version='2.0'"), "unsupported-version")
        self.assertStreamError(header("version='0.9'"), "unsupported-version")

    def test_malformedVersion(self) -> None:
        """
        A version that is not two dotted decimal numbers is C{bad-format}.
        """
        for version in ["1", "1.0.0", "abc", "1.a", " 1.0", "1.", "\u0661.\u0660"]:
            self.assertStreamError(header(f"version='{version}'"), "bad-format")

    def test_malformedTo(self) -> None:
        """
        A C{to} that is not a JID is C{host-unknown}: it cannot name a
        domain we serve.
        """
        self.assertStreamError(
            header("to='exa mple.com' version='1.0'"), "host-unknown"
        )
        self.assertStreamError(
            header(f"to='{'a' * 1024}.com' version='1.0'"), "host-unknown"
        )

    def test_malformedFrom(self) -> None:
        """
        A C{from} that is not a JID is C{invalid-from}.
        """
        for value in ["exa mple.com", "@example.com", "a@example.com/", "a@"]:
            self.assertStreamError(
                header(f"to='example.com' from='{value}' version='1.0'"),
                "invalid-from",
            )

    def test_checkHost(self) -> None:
        """
        L{checkHost} accepts a C{to} among the domains, compared in normalised
        form.
        """
        result = parseStreamHeader(
            headerElement(header("to='Example.com' version='1.0'")), NS_CLIENT
        )
        checkHost(result, ["other.org", "EXAMPLE.com"])

    def test_checkHostUnknown(self) -> None:
        """
        A C{to} that is not one of the domains, or no C{to}, is
        C{host-unknown}.
        """
        for attributes in ["to='other.example' version='1.0'", "version='1.0'"]:
            result = parseStreamHeader(headerElement(header(attributes)), NS_CLIENT)
            exc = self.assertRaises(
                error.StreamError, checkHost, result, ["example.com"]
            )
            self.assertEqual(exc.condition, "host-unknown")

    def test_newStreamId(self) -> None:
        """
        Stream ids carry 128 random bits as 32 hex digits, fresh each time.
        """
        ids = {newStreamId() for _ in range(100)}
        self.assertEqual(len(ids), 100)
        for streamId in ids:
            self.assertEqual(len(streamId), 32)
            int(streamId, 16)


class XmppXmlStreamTests(SynchronousTestCase):
    """
    Tests for L{XmppXmlStream}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.transport = StringTransport()
        self.xs = self.makeStream(self.transport)
        self.errors: list[Failure] = []
        self.xs.addObserver(STREAM_ERROR_EVENT, self.errors.append)
        self.elements: list[domish.Element] = []
        self.xs.addObserver("/*", self.elements.append)

    def makeStream(
        self,
        transport: StringTransport,
        authenticator: jabberxmlstream.Authenticator | None = None,
        maxStanzaSize: int = 1024,
    ) -> XmppXmlStream:
        """
        A receiving-side stream, connected to C{transport}, with its log
        events in C{self.logged}.
        """
        if authenticator is None:
            authenticator = ReceivingAuthenticator()
        xs = XmppXmlStream(
            authenticator,
            reactor=self.clock,
            maxStanzaSize=maxStanzaSize,
            closeTimeout=5.0,
        )
        self.logged: list[dict[str, Any]] = []
        xs._log = Logger(observer=self.logged.append)
        xs.makeConnection(transport)
        return xs

    def assertErrorSent(self, condition: str, headerReceived: bool = True) -> None:
        """
        The stream wrote the stream error with C{condition} and our closing
        tag after it, dropped the connection, told observers and logged it.
        """
        data = self.transport.value()
        self.assertTrue(
            data.endswith(errorBytes(condition) + FOOTER), f"unexpected output {data!r}"
        )
        self.assertEqual(data.count(FOOTER), 1)
        output = parseOutput(data)
        assert output.root is not None
        self.assertEqual((output.root.uri, output.root.name), (NS_STREAMS, "stream"))
        self.assertEqual(output.root.defaultUri, NS_CLIENT)
        [errorElement] = output.elements
        self.assertEqual((errorElement.uri, errorElement.name), (NS_STREAMS, "error"))
        [conditionElement] = errorElement.elements()
        self.assertEqual(
            (conditionElement.uri, conditionElement.name), (NS_XMPP_STREAMS, condition)
        )
        self.assertTrue(output.ended)
        self.assertTrue(self.transport.disconnecting)
        [reason] = self.errors
        self.assertEqual(conditionOf(reason), condition)
        self.assertEqual(conditionOf(self.xs.streamEnded), condition)
        self.assertTrue(
            any(event.get("condition") == condition for event in self.logged)
        )
        self.assertTrue(
            any(event.get("peer") == self.transport.getPeer() for event in self.logged)
        )

    def test_tcpNoDelay(self) -> None:
        """
        C{connectionMade} turns on C{TCP_NODELAY}.
        """
        transport = NoDelayTransport()
        self.makeStream(transport)
        self.assertIs(transport.noDelay, True)

    def test_tcpNoDelayFailure(self) -> None:
        """
        A transport that cannot set C{TCP_NODELAY} still gets a working
        stream.
        """
        transport = BrokenNoDelayTransport()
        xs = self.makeStream(transport)
        self.assertIsInstance(xs.stream, StanzaParser)
        xs.dataReceived(HEADER)
        self.assertTrue(transport.value().startswith(b"<stream:stream"))

    def test_initiatorSendsHeader(self) -> None:
        """
        With an initiating authenticator, the header goes out on connect and
        the default transport (no C{setTcpNoDelay}) is fine.
        """
        transport = StringTransport()
        self.makeStream(transport, InitiatingAuthenticator("example.com"))
        output = parseOutput(transport.value())
        assert output.root is not None
        self.assertEqual(output.root["to"], "example.com")

    def test_parserIsRestricted(self) -> None:
        """
        The stream parses with a L{StanzaParser} with the stream's
        limit.
        """
        self.assertIsInstance(self.xs.stream, StanzaParser)
        self.assertEqual(parserOf(self.xs).maxStanzaSize, 1024)

    def test_stanzasDelivered(self) -> None:
        """
        Good stanzas reach observers.
        """
        self.xs.dataReceived(HEADER + b"<message><body>&amp;</body></message>")
        [message] = self.elements
        self.assertEqual(str(message.body), "&")
        self.assertFalse(self.transport.disconnecting)

    def test_doctypeBeforeHeader(self) -> None:
        """
        A DOCTYPE (here the billion laughs) gets C{restricted-xml}; a
        receiving entity sends its header first.
        """
        self.xs.dataReceived(BILLION_LAUGHS)
        self.assertErrorSent("restricted-xml")
        self.assertEqual(self.elements, [])

    def test_comment(self) -> None:
        """
        A comment gets C{restricted-xml}.
        """
        self.xs.dataReceived(HEADER)
        self.xs.dataReceived(b"<message><!-- x --></message>")
        self.assertErrorSent("restricted-xml")

    def test_processingInstruction(self) -> None:
        """
        A processing instruction gets C{restricted-xml}.
        """
        self.xs.dataReceived(HEADER + b"<?foo bar?>")
        self.assertErrorSent("restricted-xml")

    def test_undefinedEntity(self) -> None:
        """
        An entity reference other than the predefined ones gets
        C{restricted-xml}.
        """
        self.xs.dataReceived(HEADER + b"<message><body>&foo;</body></message>")
        self.assertErrorSent("restricted-xml")
        self.assertEqual(self.elements, [])

    def test_notWellFormed(self) -> None:
        """
        Malformed XML gets C{not-well-formed}.
        """
        self.xs.dataReceived(HEADER + b"<message></presence>")
        self.assertErrorSent("not-well-formed")

    def test_oversizedStanza(self) -> None:
        """
        A 1 MiB stanza against a 1 KiB limit gets C{policy-violation} as soon
        as the limit is crossed; the pieces after that are not parsed.
        """
        self.xs.dataReceived(HEADER)
        spy = ParserSpy(parserOf(self.xs).parser)
        parserOf(self.xs).parser = spy  # type: ignore[assignment]
        stanza = stanzaOfSize(1024 * 1024)
        pieces = [stanza[i : i + 512] for i in range(0, len(stanza), 512)]
        self.xs.dataReceived(pieces[0])
        self.xs.dataReceived(pieces[1])
        self.assertEqual(self.errors, [])
        self.xs.dataReceived(pieces[2])
        self.assertErrorSent("policy-violation")
        fedBefore = sum(spy.fed)
        self.assertLessEqual(fedBefore, 1024)
        for piece in pieces[3:]:
            self.xs.dataReceived(piece)
        self.assertEqual(sum(spy.fed), fedBefore)
        self.assertEqual(self.elements, [])

    def test_stanzaAtLimit(self) -> None:
        """
        A stanza of exactly the limit is delivered.
        """
        self.xs.dataReceived(HEADER)
        self.xs.dataReceived(stanzaOfSize(1024))
        self.assertEqual(len(self.elements), 1)
        self.assertEqual(self.errors, [])
        self.assertFalse(self.transport.disconnecting)

    def test_hugeHeader(self) -> None:
        """
        A 10 MB stream header gets C{policy-violation} after the limit.
        """
        data = b"<stream:stream xmlns='jabber:client' x='" + b"y" * 10_000_000
        for i in range(0, 8192, 512):
            self.xs.dataReceived(data[i : i + 512])
        self.assertErrorSent("policy-violation")

    def test_dataAfterErrorIgnored(self) -> None:
        """
        After a parse error, later data (a new header, stanzas) is not
        parsed and nothing more is written.
        """
        self.xs.dataReceived(HEADER + b"<!-- x -->")
        written = self.transport.value()
        fed: list[bytes] = []
        parserOf(self.xs).parse = fed.append  # type: ignore[assignment]
        self.xs.dataReceived(HEADER + b"<message/>")
        self.xs.dataReceived(b"<!-- again -->")
        self.assertEqual(fed, [])
        self.assertEqual(self.transport.value(), written)
        self.assertEqual(self.elements, [])
        self.assertEqual(len(self.errors), 1)

    def test_parseErrorClosesAtOnce(self) -> None:
        """
        After a parse error the connection is dropped at once, without
        waiting for the peer's closing tag, and no close timer is left.
        """
        self.xs.dataReceived(HEADER + b"<a></b>")
        self.assertTrue(self.transport.disconnecting)
        self.xs.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closeStreamPeerAnswers(self) -> None:
        """
        L{XmppXmlStream.closeStream} sends our closing tag and waits; the
        peer's closing tag drops the connection, and the L{Deferred} fires
        when the connection is lost.
        """
        self.xs.dataReceived(HEADER)
        self.transport.clear()
        d = self.xs.closeStream()
        self.assertEqual(self.transport.value(), FOOTER)
        self.assertFalse(self.transport.disconnecting)
        self.assertNoResult(d)
        self.xs.dataReceived(FOOTER)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.transport.value(), FOOTER)
        self.assertNoResult(d)
        self.xs.connectionLost(Failure(ConnectionDone()))
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.errors, [])
        assert self.xs.streamEnded is not None
        self.assertIsInstance(self.xs.streamEnded.value, ConnectionDone)

    def test_closeStreamPeerSilent(self) -> None:
        """
        If the peer does not close its side, the connection is dropped after
        the close timeout.
        """
        self.xs.dataReceived(HEADER)
        d = self.xs.closeStream()
        self.clock.advance(4.9)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(self.transport.disconnecting)
        self.xs.connectionLost(Failure(ConnectionDone()))
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closeStreamIdempotent(self) -> None:
        """
        A second L{XmppXmlStream.closeStream} writes nothing more and starts
        no second timer; both L{Deferred}s fire when the connection is lost.
        """
        self.xs.dataReceived(HEADER)
        self.transport.clear()
        first = self.xs.closeStream()
        second = self.xs.closeStream()
        self.assertEqual(self.transport.value(), FOOTER)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.xs.sendStreamError(error.StreamError("system-shutdown"))
        self.assertEqual(self.transport.value(), FOOTER)
        self.xs.connectionLost(Failure(ConnectionDone()))
        self.assertIsNone(self.successResultOf(first))
        self.assertIsNone(self.successResultOf(second))
        self.assertIsNone(self.successResultOf(self.xs.closeStream()))

    def test_abortWhenPeerDoesNotRead(self) -> None:
        """
        If the connection does not close within the close timeout after
        C{loseConnection} (a peer that stopped reading), it is aborted.
        """
        self.xs.dataReceived(HEADER)
        self.xs.closeStream()
        self.clock.advance(5.0)
        self.assertTrue(self.transport.disconnecting)
        self.assertFalse(self.transport.disconnected)
        self.clock.advance(5.0)
        self.assertTrue(self.transport.disconnected)

    def test_sendAfterCloseDropped(self) -> None:
        """
        Nothing is written after our closing tag.
        """
        self.xs.dataReceived(HEADER)
        self.xs.closeStream()
        written = self.transport.value()
        self.xs.send(domish.Element((NS_CLIENT, "message")))
        self.xs.sendFooter()
        self.assertEqual(self.transport.value(), written)

    def test_peerClosesFirst(self) -> None:
        """
        When the peer closes first, we answer with our closing tag and drop
        the connection.
        """
        ended: list[Failure] = []
        self.xs.addObserver(STREAM_END_EVENT, ended.append)
        self.xs.dataReceived(HEADER)
        self.transport.clear()
        self.xs.dataReceived(FOOTER)
        self.assertEqual(self.transport.value(), FOOTER)
        self.assertTrue(self.transport.disconnecting)
        self.xs.dataReceived(b"junk")
        self.assertEqual(self.transport.value(), FOOTER)
        self.xs.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(len(ended), 1)
        self.assertEqual(self.errors, [])

    def test_receivedStreamError(self) -> None:
        """
        A received stream error is dispatched once to observers and logged,
        and we answer with our closing tag and close.
        """
        self.xs.dataReceived(HEADER)
        self.transport.clear()
        self.xs.dataReceived(
            b"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
            b"</stream:error>"
        )
        self.assertEqual(self.transport.value(), FOOTER)
        self.assertTrue(self.transport.disconnecting)
        [reason] = self.errors
        self.assertEqual(conditionOf(reason), "conflict")
        self.assertEqual(conditionOf(self.xs.streamEnded), "conflict")
        self.assertTrue(any(e.get("condition") == "conflict" for e in self.logged))
        self.xs.dataReceived(FOOTER)
        self.assertEqual(self.transport.value(), FOOTER)
        self.assertEqual(len(self.errors), 1)

    def test_sendStreamErrorHandshake(self) -> None:
        """
        L{XmppXmlStream.sendStreamError} sends the error and our closing tag,
        then waits for the peer's closing tag before dropping the connection.
        A second error sends nothing more.
        """
        self.xs.dataReceived(HEADER)
        self.transport.clear()
        self.xs.sendStreamError(error.StreamError("host-unknown"))
        self.assertEqual(self.transport.value(), errorBytes("host-unknown") + FOOTER)
        self.assertFalse(self.transport.disconnecting)
        self.xs.sendStreamError(error.StreamError("conflict"))
        self.assertEqual(self.transport.value(), errorBytes("host-unknown") + FOOTER)
        [reason] = self.errors
        self.assertEqual(conditionOf(reason), "host-unknown")
        self.xs.dataReceived(FOOTER)
        self.assertTrue(self.transport.disconnecting)

    def test_sendStreamErrorTimeout(self) -> None:
        """
        After a stream error, a silent peer is dropped after the close
        timeout.
        """
        self.xs.dataReceived(HEADER)
        self.xs.sendStreamError(error.StreamError("connection-timeout"))
        self.clock.advance(5.0)
        self.assertTrue(self.transport.disconnecting)

    def test_sendStreamErrorBeforeHeader(self) -> None:
        """
        A receiving entity that has not sent its header sends it before the
        error.
        """
        self.xs.sendStreamError(error.StreamError("system-shutdown"))
        output = parseOutput(self.transport.value())
        assert output.root is not None
        self.assertEqual(output.root.name, "stream")
        self.assertEqual([e.name for e in output.elements], ["error"])
        self.assertTrue(output.ended)

    def test_connectionLostCancelsTimers(self) -> None:
        """
        Losing the connection cancels the close timer.
        """
        self.xs.dataReceived(HEADER)
        self.xs.closeStream()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.xs.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.xs.dataReceived(b"<message/>")
        self.assertEqual(self.elements, [])

    def test_resetGivesFreshParser(self) -> None:
        """
        After L{XmppXmlStream.reset} (a TLS or SASL restart) a fresh
        restricted parser with the same limit takes a new header, and the
        limits apply to it.
        """
        self.xs.dataReceived(HEADER + b"<message/>")
        old = self.xs.stream
        self.xs.reset()
        self.transport.clear()
        self.assertIsNot(self.xs.stream, old)
        self.assertIsInstance(self.xs.stream, StanzaParser)
        self.assertEqual(parserOf(self.xs).maxStanzaSize, 1024)
        self.xs.dataReceived(HEADER + stanzaOfSize(1024))
        self.assertEqual(len(self.elements), 2)
        self.xs.dataReceived(stanzaOfSize(2048))
        self.assertErrorSent("policy-violation")
        self.assertEqual(len(self.elements), 2)

    def test_globalReactorByDefault(self) -> None:
        """
        Without an injected reactor, timers use the global reactor.
        """
        from twisted.internet import reactor

        xs = XmppXmlStream(ReceivingAuthenticator())
        xs.makeConnection(StringTransport())
        call = xs.callLater(1000, lambda: None)
        self.addCleanup(call.cancel)
        self.assertIn(call, reactor.getDelayedCalls())


class SendHeaderTests(SynchronousTestCase):
    """
    L{XmppXmlStream.sendHeader} writes its header directly: the same bytes
    as Twisted's C{sendHeader}.
    """

    def headers(self, **attributes: Any) -> tuple[bytes, bytes]:
        """
        The header ours and Twisted's stream send, both set up with
        C{attributes}.
        """
        out = []
        for stream in (
            XmppXmlStream(ReceivingAuthenticator(), reactor=Clock()),
            jabberxmlstream.XmlStream(ReceivingAuthenticator()),
        ):
            transport = StringTransport()
            stream.transport = transport
            for name, value in attributes.items():
                setattr(stream, name, value)
            stream.sendHeader()
            if isinstance(stream, XmppXmlStream):
                self.assertTrue(stream.headerSent)
            out.append(transport.value())
        return out[0], out[1]

    def test_sameAsTwisted(self) -> None:
        """
        For each kind of header the negotiations send (receiving with an
        id, initiating, XEP-0114 without a version, an id that needs
        escaping, no addresses), the bytes are Twisted's.
        """
        cases: list[dict[str, Any]] = [
            dict(namespace="jabber:client", thisEntity=jid.JID("example.net"),
                 otherEntity=jid.JID("comp.example.net"), sid="c44415cb", version=(1, 0)),
            dict(namespace="jabber:client", initiating=True, sid="ignored",
                 thisEntity=jid.JID("comp.example.net"), otherEntity=jid.JID("example.net")),
            dict(namespace="jabber:component:accept", version=(0, 0),
                 otherEntity=jid.JID("comp.example.net")),
            dict(namespace="jabber:client", thisEntity=jid.JID("user@example.net"),
                 otherEntity=None, sid="<'\"&>", version=(1, 0)),
            dict(namespace="jabber:client", thisEntity=None, otherEntity=None, sid=None),
        ]
        for attributes in cases:
            ours, theirs = self.headers(**attributes)
            self.assertEqual(ours, theirs, attributes)
        ours, _ = self.headers(**cases[0])
        self.assertEqual(
            ours,
            b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'"
            b" xmlns='jabber:client' to='comp.example.net' from='example.net'"
            b" id='c44415cb' version='1.0'>",
        )

    def test_otherPrefixes(self) -> None:
        """
        A stream declaring other prefixes (as dialback would) gets
        Twisted's header, with them declared.
        """
        prefixes = {NS_STREAMS: "stream", "jabber:server:dialback": "db"}
        ours, theirs = self.headers(namespace="jabber:server", prefixes=prefixes,
                                    thisEntity=jid.JID("example.net"))
        self.assertEqual(ours, theirs)
        self.assertIn(b"xmlns:db='jabber:server:dialback'", ours)


class FlushWritesTests(TestCase):
    """
    L{flushWrites} over real loopback TCP connections.
    """

    @defer.inlineCallbacks
    def connect(self) -> Any:
        """
        A connected pair: the server's protocol and what the client reads.
        """
        received: list[bytes] = []
        connected: defer.Deferred[Any] = defer.Deferred()
        lost: list[defer.Deferred[None]] = []

        class Peer(protocol.Protocol):
            def connectionMade(self) -> None:
                self.gone: defer.Deferred[None] = defer.Deferred()
                lost.append(self.gone)

            def connectionLost(self, reason: Any = None) -> None:
                self.gone.callback(None)

        class Server(Peer):
            def connectionMade(self) -> None:
                Peer.connectionMade(self)
                connected.callback(self)

        class Client(Peer):
            def dataReceived(self, data: bytes) -> None:
                received.append(data)

        port = reactor.listenTCP(0, protocol.Factory.forProtocol(Server), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = yield protocol.ClientCreator(reactor, Client).connectTCP("127.0.0.1", port.getHost().port)
        server = yield connected

        @defer.inlineCallbacks
        def close() -> Any:
            for p in (client, server):
                if p.transport.connected:
                    p.transport.abortConnection()
            yield defer.gatherResults(lost)

        self.addCleanup(close)
        return server, client, received

    @defer.inlineCallbacks
    def test_leftToTheReactor(self) -> Any:
        """
        Twisted has no public API to hand bytes to the kernel before the
        reactor turn ends, so L{flushWrites} does nothing and says so: the
        bytes stay with the transport, and the reactor delivers them.
        """
        server, client, received = yield self.connect()
        server.transport.write(b"<proceed/>")
        self.assertFalse(flushWrites(server.transport))
        self.assertEqual(received, [], "not sent before the reactor's turn")
        while b"".join(received) != b"<proceed/>":
            yield deferLater(reactor, 0, lambda: None)

    @defer.inlineCallbacks
    def test_producers(self) -> Any:
        """
        A transport's producer, push or pull, is never called by a flush.
        """
        calls: list[str] = []

        @implementer(IPushProducer)
        class Producer:
            def pauseProducing(self) -> None:
                calls.append("pause")

            def resumeProducing(self) -> None:
                calls.append("resume")

            def stopProducing(self) -> None:
                calls.append("stop")

        server, client, received = yield self.connect()
        server.transport.registerProducer(Producer(), True)
        server.transport.write(b"data")
        self.assertFalse(flushWrites(server.transport))
        self.assertEqual(calls, [])
        server.transport.unregisterProducer()

        server, client, received = yield self.connect()
        server.transport.registerProducer(Producer(), False)
        del calls[:]  # registering a pull producer asks it for data
        server.transport.write(b"pull")
        self.assertFalse(flushWrites(server.transport))
        self.assertEqual(calls, [])

    @defer.inlineCallbacks
    def test_notWhileClosing(self) -> Any:
        """
        A transport closing after its pending writes is left to the
        reactor, which alone finishes the close: the peer still gets the
        bytes, then the end of the connection.
        """
        server, client, received = yield self.connect()
        server.transport.write(b"</stream:stream>")
        server.transport.loseConnection()
        self.assertFalse(flushWrites(server.transport))
        yield server.gone
        yield client.gone
        self.assertEqual(b"".join(received), b"</stream:stream>")

    def test_notATCPTransport(self) -> None:
        """
        Transports that are not file descriptors (in memory, in tests) are
        left alone.
        """
        transport = StringTransport()
        transport.write(b"x")
        self.assertFalse(flushWrites(transport))
        self.assertEqual(transport.value(), b"x")
        self.assertFalse(flushWrites(None))

    def test_streamFlush(self) -> None:
        """
        L{XmppXmlStream.flush}, the seam for an upstream "write now" API,
        flushes nothing today and leaves what was sent to the transport.
        """
        xs = XmppXmlStream(jabberxmlstream.Authenticator())
        transport = StringTransport()
        xs.makeConnection(transport)
        xs.send(b"<presence/>")
        self.assertFalse(xs.flush())
        self.assertTrue(transport.value().endswith(b"<presence/>"))

class UnserializableElementTests(SynchronousTestCase):
    """
    L{XmppXmlStream.send} refuses, with L{UnserializableElement}, an element
    or a string holding a character XML 1.0 forbids: nothing is written and
    the stream stays up, where a peer would have ended it with
    C{not-well-formed}.
    """

    def setUp(self) -> None:
        self.transport = StringTransport()
        self.xs = XmppXmlStream(ReceivingAuthenticator(), reactor=Clock(), closeTimeout=5.0)
        self.logged: list[dict[str, Any]] = []
        self.xs._log = Logger(observer=self.logged.append)
        self.xs.makeConnection(self.transport)
        self.xs.dataReceived(HEADER)
        self.assertTrue(self.xs.headerSent)
        self.written = self.transport.value()
        self.logged.clear()

    def message(self, body: str = "hello", **attributes: str) -> domish.Element:
        """
        A C{<message/>} with C{body} as the text of its C{<body/>} and
        C{attributes}.
        """
        message = domish.Element((None, "message"))
        message["to"] = "juliet@example.com"
        for name, value in attributes.items():
            message[name] = value
        message.addElement("body", content=body)
        return message

    def assertRefused(self, obj: domish.Element | str, *inReason: str) -> None:
        """
        Sending C{obj} raises L{UnserializableElement} whose reason holds
        each of C{inReason} and no forbidden character, writes nothing,
        logs one warning with that reason, and leaves the stream up: a
        valid stanza sent next goes out, and a peer parses all that was
        written.
        """
        with self.assertRaises(UnserializableElement) as caught:
            self.xs.send(obj)
        reason = caught.exception.reason
        for text in inReason:
            self.assertIn(text, reason)
        self.assertIsNone(XML_FORBIDDEN.search(reason))
        self.assertEqual(self.transport.value(), self.written)
        [event] = self.logged
        self.assertEqual(event["log_level"], LogLevel.warn)
        self.assertEqual(event["reason"], reason)
        self.assertFalse(self.transport.disconnecting)
        self.assertIsNone(self.xs.streamEnded)

        self.xs.send(self.message("still here", id="next"))
        output = parseOutput(self.transport.value())
        [sent] = output.elements
        self.assertEqual((sent.name, sent["id"], str(sent.body)), ("message", "next", "still here"))
        self.assertFalse(output.ended)
        self.assertFalse(self.transport.disconnecting)

    def test_attributeFFFE(self) -> None:
        """
        U+FFFE in an attribute value is refused; the reason names the
        character, the attribute and the element.
        """
        self.assertRefused(
            self.message(id="tx\ufffe1"), "U+FFFE", "attribute id of <message/>"
        )

    def test_textFFFF(self) -> None:
        """
        U+FFFF in the text of a child is refused; the reason names the
        character, the child and the stanza.
        """
        self.assertRefused(
            self.message("confirm \uffff"), "U+FFFF", "the text of <body/> in <message/>"
        )

    def test_textControl(self) -> None:
        """
        A C0 control other than tab, newline and carriage return in text is
        refused.
        """
        self.assertRefused(self.message("a\x01b"), "U+0001", "<body/>")

    def test_loneSurrogate(self) -> None:
        """
        A lone surrogate (which UTF-8 cannot even encode) is refused the
        same way.
        """
        self.assertRefused(self.message("\ud800"), "U+D800", "<body/>")

    def test_childAttribute(self) -> None:
        """
        A forbidden character deep inside the stanza is found, and the
        reason says in which descendant.
        """
        message = self.message()
        confirm = message.addElement(("http://jabber.org/protocol/http-auth", "confirm"))
        confirm["id"] = "\x1b[31m"
        self.assertRefused(message, "U+001B", "attribute id of <confirm/> in <message/>")

    def test_badElementName(self) -> None:
        """
        A forbidden character in an element name is refused, and left out
        of the reason, which shows it as C{U+XXXX}.
        """
        self.assertRefused(domish.Element((None, "a\x02")), "U+0002", "<aU+0002/>")

    def test_string(self) -> None:
        """
        A string of serialised XML holding a forbidden character is refused
        too; the reason names its first element.
        """
        self.assertRefused("<message to='juliet@example.com'>\x0b</message>", "U+000B", "<message/>")

    def test_allowedCharacters(self) -> None:
        """
        The characters XML 1.0 allows, at the edges of each of its ranges
        and including tab, newline, carriage return, DEL and C1 controls,
        are sent as they are.
        """
        text = "\t\n\r \x7f\x85\ud7ff\ue000\ufffd\U00010000\U0010ffff"
        self.xs.send(self.message(text, id=text))
        [sent] = parseOutput(self.transport.value()).elements
        # A peer's parser normalises line ends, and white space in
        # attribute values (XML 1.0 sections 2.11 and 3.3.3).
        self.assertEqual(sent["id"], "    " + text[4:])
        self.assertEqual(str(sent.body), text.replace("\r", "\n"))
        self.assertEqual(self.logged, [])

    def test_checkSerializable(self) -> None:
        """
        L{checkSerializable} returns allowed text unchanged and refuses
        each character outside XML 1.0's C{Char} production, and only
        those.
        """
        self.assertEqual(checkSerializable("<a b='\t'>\ufffd</a>"), "<a b='\t'>\ufffd</a>")
        forbidden = [c for c in range(0x110000) if XML_FORBIDDEN.match(chr(c))]
        expected = (
            [c for c in range(0x20) if c not in (0x9, 0xA, 0xD)]
            + list(range(0xD800, 0xE000))
            + [0xFFFE, 0xFFFF]
        )
        self.assertEqual(forbidden, expected)
        for c in (0x0, 0x1F, 0xD800, 0xDFFF, 0xFFFE):
            with self.assertRaises(UnserializableElement) as caught:
                checkSerializable("<a>%s</a>" % (chr(c),))
            self.assertIn("U+%04X in <a/>" % (c,), caught.exception.reason)

    def test_serialize(self) -> None:
        """
        L{XmppXmlStream.serialize}, which negotiations use to prepare what
        they send, refuses such an element too.
        """
        self.assertRaises(UnserializableElement, self.xs.serialize, self.message("\x00"))

    def test_streamErrorText(self) -> None:
        """
        A stream error whose text cannot be written is sent without its
        text: the stream still ends properly, with the condition.
        """
        self.xs.sendStreamError(error.StreamError("policy-violation", text="bad \x01"))
        data = self.transport.value()
        self.assertTrue(data.endswith(errorBytes("policy-violation") + FOOTER), data)
        output = parseOutput(data)
        self.assertTrue(output.ended)
        self.assertEqual(conditionOf(self.xs.streamEnded), "policy-violation")
