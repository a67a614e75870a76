# -*- test-case-name: tests.test_stream_parser,tests.test_stream_xmlstream -*-
"""
The parser of a received XML stream: restricted XML (RFC 6120 section 11)
with a size limit and a depth limit, built on the public API of pyexpat,
that makes L{domish.Element}s through their public constructor and
methods.

L{StanzaParser} calls three callbacks, as L{domish.ExpatElementStream}
does: C{DocumentStartEvent} with the root element (the stream header),
C{ElementEvent} with each complete top-level element (a stanza), and
C{DocumentEndEvent} at the root's end tag. The elements it builds are the
ones L{domish.ExpatElementStream} builds from the same bytes (names,
namespaces, attributes in their order, prefixes, text). It is no subclass
of it: it owns its expat parser and its state.

The router's variant, which keeps each stanza's raw bytes for forwarding
and parses messages and presences shallow, is
L{xmppcomp.router.rawstanzas.RawStanzaParser}; it builds on the hooks of
L{StanzaParser} documented as such (the methods whose names start with
C{_handle} and C{_feed}).
"""

from __future__ import annotations

import pyexpat
from typing import Callable, NoReturn

from twisted.words.xish import domish
from zope.interface import implementer

from xmppcomp.interfaces import IStanzaParser

__all__ = [
    "DEFAULT_MAX_STANZA_DEPTH",
    "DEFAULT_MAX_STANZA_SIZE",
    "RefusedNamespace",
    "RestrictedXMLError",
    "StanzaParser",
    "StanzaTooDeep",
    "StanzaTooLarge",
    "conditionForParserError",
]

#: The default limit, in bytes, on one top-level stanza, on the stream header
#: and on the unparsed bytes between stanzas.
DEFAULT_MAX_STANZA_SIZE = 256 * 1024

#: The default limit on how deeply elements nest below the stream root: a
#: top-level stanza is at depth 1, its children at depth 2. Serialising a
#: stanza with domish recurses once per level, so without a limit a small
#: stanza nested a few thousand levels deep (7 bytes a level) would make
#: forwarding or bouncing it raise C{RecursionError}.
DEFAULT_MAX_STANZA_DEPTH = 64

#: The largest slice of received data handed to expat at once. The parser
#: never holds more than the limit plus one slice.
SLICE_SIZE = 16 * 1024


def _entityErrorCodes() -> frozenset[int]:
    """
    The expat error codes that mean an entity reference or declaration was
    met: RFC 6120 section 11.1 forbids those, so they are C{restricted-xml}
    rather than C{not-well-formed}. Names unknown to this expat are skipped.
    """
    names = [
        "XML_ERROR_UNDEFINED_ENTITY",
        "XML_ERROR_RECURSIVE_ENTITY_REF",
        "XML_ERROR_BINARY_ENTITY_REF",
        "XML_ERROR_ATTRIBUTE_EXTERNAL_ENTITY_REF",
        "XML_ERROR_EXTERNAL_ENTITY_HANDLING",
        "XML_ERROR_PARAM_ENTITY_REF",
        "XML_ERROR_ENTITY_DECLARED_IN_PE",
        "XML_ERROR_AMPLIFICATION_LIMIT_BREACH",
        "XML_ERROR_ASYNC_ENTITY",
    ]
    messages = pyexpat.errors.codes
    return frozenset(
        messages[getattr(pyexpat.errors, name)] for name in names if hasattr(pyexpat.errors, name)
    )


_ENTITY_ERROR_CODES = _entityErrorCodes()


class RestrictedXMLError(domish.ParserError):
    """
    The peer sent XML that RFC 6120 section 11.1 forbids: a DTD, a comment, a
    processing instruction or an entity reference other than the predefined
    ones. It maps to the C{restricted-xml} stream error.
    """


def _refusal(what: str) -> Callable[..., NoReturn]:
    """
    An expat handler that refuses C{what} with L{RestrictedXMLError}.
    """

    def refuse(*args: object) -> NoReturn:
        raise RestrictedXMLError(what)

    return refuse


#: Restricted XML (RFC 6120 section 11.1): the expat handlers of what it
#: forbids, each with its refusal.
_RESTRICTED: tuple[tuple[str, Callable[..., NoReturn]], ...] = tuple(
    (handler, _refusal(what))
    for handler, what in [
        ("StartDoctypeDeclHandler", "document type declaration"),
        ("CommentHandler", "comment"),
        ("ProcessingInstructionHandler", "processing instruction"),
        ("EntityDeclHandler", "entity declaration"),
        ("UnparsedEntityDeclHandler", "entity declaration"),
        ("SkippedEntityHandler", "entity reference"),
        ("ExternalEntityRefHandler", "external entity reference"),
    ]
)


class StanzaTooLarge(domish.ParserError):
    """
    A top-level stanza, the stream header, or the unparsed bytes between
    stanzas exceeded the size limit. It maps to the C{policy-violation}
    stream error.
    """


class StanzaTooDeep(StanzaTooLarge):
    """
    Elements of a top-level stanza nest deeper than the depth limit. Like
    L{StanzaTooLarge}, it maps to the C{policy-violation} stream error.
    """


class RefusedNamespace(domish.ParserError):
    """
    A namespace name holds a character that needs escaping in an attribute
    (C{<}, C{&}, C{'} or C{"}). C{domish} writes namespace declarations
    without escaping, so such a stanza, once forwarded or bounced, would be
    broken XML for its recipient; it is refused with C{policy-violation}.
    (Real namespace names are URIs and have no use for these characters.)
    """


#: Characters refused in namespace names (see L{RefusedNamespace}).
UNSAFE_NAMESPACE = frozenset("<&'\"")


def conditionForParserError(reason: domish.ParserError) -> str:
    """
    The RFC 6120 stream error condition for a parse error.

    @param reason: raised by L{StanzaParser.parse}.
    @return: C{restricted-xml} for L{RestrictedXMLError},
        C{policy-violation} for L{StanzaTooLarge} and L{RefusedNamespace},
        C{not-well-formed} for any other L{domish.ParserError}.
    """
    if isinstance(reason, RestrictedXMLError):
        return "restricted-xml"
    if isinstance(reason, (StanzaTooLarge, RefusedNamespace)):
        return "policy-violation"
    return "not-well-formed"


def _qualifiedAttributes(attrs: dict[str, str]) -> dict[str | tuple[str, str], str]:
    """
    C{attrs} as expat reports them (a namespaced attribute's key is
    C{"uri name"}) turned into domish's keys: C{(uri, name)} tuples, after
    the plain keys, as L{domish.ExpatElementStream} orders them.
    """
    plain: dict[str | tuple[str, str], str] = {}
    qualified: dict[str | tuple[str, str], str] = {}
    for key, value in attrs.items():
        if " " in key:
            uri, name = key.rsplit(" ", 1)
            qualified[(uri, name)] = value
        else:
            plain[key] = value
    plain.update(qualified)
    return plain


def ignoreElement(element: domish.Element) -> None:
    """
    Element sink of a discarded or unhooked parser.
    """


def ignoreEnd() -> None:
    """
    Document-end sink of a discarded or unhooked parser.
    """


@implementer(IStanzaParser)
class StanzaParser:
    """
    An incremental parser of a received XML stream that accepts only the
    XML subset of RFC 6120 section 11 and bounds the memory a peer can make
    it hold.

    Received data is handed to expat in slices of at most 16 KiB, and never
    more than what is left of the current segment's budget, so a segment is
    detected as too large before its bytes are buffered. A segment is one of:

      - a top-level stanza, counted exactly from the first byte of its start
        tag to the last byte of its end tag: a stanza of C{maxStanzaSize}
        bytes passes, one byte more is refused before it is delivered;
      - the prolog before the stream header (XML declaration, whitespace);
      - the bytes from the start of the stream header, or from the end of a
        stanza, that expat has not yet turned into events, up to the start
        of the next stanza: the header itself, a partial tag, the previous
        stanza's end tag (counted conservatively). Whitespace that expat has
        reported as character data ends such a segment, so whitespace
        keepalives on a long-lived stream never add up to the limit, while
        a huge header, an endless prolog or an endless tag do.

    Elements nest at most C{maxDepth} levels below the stream root (a
    top-level stanza is level 1): the start tag of an element one level
    deeper raises L{StanzaTooDeep} at once, before anything more of the
    stanza is buffered.

    Once L{parse} has raised, the parser is dead: every later call raises
    the same error again without touching expat.

    @ivar DocumentStartEvent: called with the root element.
    @ivar ElementEvent: called with each complete top-level element.
    @ivar DocumentEndEvent: called at the root's end tag.
    @ivar maxStanzaSize: the limit, in bytes, on each segment.
    @ivar maxDepth: the limit on nesting levels below the stream root.
    @ivar parser: the expat parser (C{xml.parsers.expat.XMLParserType}).
    @ivar _fed: how many bytes were handed to expat so far.
    @ivar _segmentStart: the byte offset where the current segment starts.
    @ivar _previous: the last chunk fed before the current one (see
        L{_atDeclaration}).
    @ivar _error: the error that killed the parser, or L{None}.
    @ivar _discarded: whether L{discard} was called.
    @ivar _started: whether the root element started.
    @ivar _current: the element being built, or L{None} between stanzas.
    @ivar _level: the level of C{_current} (a top-level stanza is 1).
    @ivar _defaults: the stack of default namespaces in scope.
    @ivar _prefixes: the prefixes declared for the next start tag.
    @ivar _contentNamespace: the default namespace of the root element
        (C{jabber:client}, say), once it started.
    """

    def __init__(
        self,
        maxStanzaSize: int = DEFAULT_MAX_STANZA_SIZE,
        maxDepth: int = DEFAULT_MAX_STANZA_DEPTH,
    ) -> None:
        """
        @param maxStanzaSize: the limit on each segment, in bytes; at least 1.
        @param maxDepth: the limit on nesting levels below the stream root;
            at least 1.
        """
        if maxStanzaSize < 1:
            raise ValueError("maxStanzaSize must be positive")
        if maxDepth < 1:
            raise ValueError("maxDepth must be positive")
        self.maxStanzaSize = maxStanzaSize
        self.maxDepth = maxDepth
        self.DocumentStartEvent: Callable[[domish.Element], object] = ignoreElement
        self.ElementEvent: Callable[[domish.Element], object] = ignoreElement
        self.DocumentEndEvent: Callable[[], object] = ignoreEnd
        self._fed = 0
        self._previous = b""
        self._segmentStart = 0
        self._error: domish.ParserError | None = None
        self._discarded = False
        self._started = False
        self._current: domish.Element | None = None
        self._level = 0
        self._defaults: list[str | None] = [""]
        self._prefixes: dict[str, str] = {}
        self._contentNamespace: str | None = None

        parser = self.parser = pyexpat.ParserCreate("UTF-8", " ")
        parser.StartElementHandler = self._handleStartElement
        parser.EndElementHandler = self._handleEndElement
        parser.CharacterDataHandler = self._handleText
        parser.StartNamespaceDeclHandler = self._handleStartNamespace
        parser.EndNamespaceDeclHandler = self._handleEndNamespace
        for handler, refuse in _RESTRICTED:
            setattr(parser, handler, refuse)
        parser.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
        # Expat 2.6 may defer parsing a partial token until much more data
        # arrives; on a stream that would hold back a complete stanza. The
        # cost it protects against is bounded here by maxStanzaSize. (Older
        # expat has no such method, and does not defer.)
        if hasattr(parser, "SetReparseDeferralEnabled"):
            parser.SetReparseDeferralEnabled(False)

    @property
    def contentNamespace(self) -> str | None:
        """
        The default namespace the root element declared (the stream's
        content namespace, such as C{jabber:client}), or L{None} before the
        root started.
        """
        return self._contentNamespace

    def parse(self, buffer: bytes) -> None:
        """
        Feed received bytes to the parser, which calls the C{DocumentStartEvent},
        C{ElementEvent} and C{DocumentEndEvent} callbacks as it goes.

        @param buffer: received bytes (a C{str} is encoded as UTF-8).
        @raise RestrictedXMLError: the data holds XML that RFC 6120 forbids.
        @raise StanzaTooLarge: a segment went over C{maxStanzaSize}, or
            elements nest deeper than C{maxDepth} (L{StanzaTooDeep}).
        @raise RefusedNamespace: a namespace name holds C{<&'"}.
        @raise domish.ParserError: the data is not well-formed XML.
        """
        if self._error is not None:
            raise self._error
        if isinstance(buffer, str):
            buffer = buffer.encode("utf-8")
        try:
            self._parse(buffer)
        except domish.ParserError as e:
            if self._discarded:
                # Bytes behind a restart: dropped, whatever they were.
                return
            self._error = e
            raise
        except BaseException:
            # An event callback raised through expat, which has stopped.
            self._error = domish.ParserError("parser stopped by an exception")
            raise

    def discard(self) -> None:
        """
        Stop delivering events: the stream was restarted (after STARTTLS or
        SASL) and whatever followed in the same read belongs to no stream.
        Dropping it is what defeats STARTTLS command injection: plaintext
        sent behind C{<starttls/>} or C{<proceed/>} must never be taken as
        if it had arrived inside TLS.
        """
        self._discarded = True
        self.DocumentStartEvent = self.ElementEvent = ignoreElement
        self.DocumentEndEvent = ignoreEnd

    # Feeding expat

    def _parse(self, buffer: bytes) -> None:
        """
        Feed C{buffer} in slices that never take the current segment over
        the limit.
        """
        position = 0
        end = len(buffer)
        while position < end and not self._discarded:
            budget = self.maxStanzaSize - (self._fed - self._segmentStart)
            if budget <= 0:
                raise StanzaTooLarge(
                    f"more than {self.maxStanzaSize} bytes in a stanza,"
                    " the stream header or between stanzas"
                )
            size = min(budget, SLICE_SIZE, end - position)
            if position == 0 and size == end:
                chunk = buffer
            else:
                chunk = buffer[position : position + size]
            position += size
            self._feed(chunk)

    def _feed(self, chunk: bytes) -> None:
        """
        Hand one slice to expat (a hook: a subclass may keep the slices).

        @raise RestrictedXMLError: expat refused an entity or a markup
            declaration.
        @raise domish.ParserError: expat refused the XML otherwise.
        """
        self._fed += len(chunk)
        try:
            self.parser.Parse(chunk)
        except pyexpat.error as e:
            if e.code in _ENTITY_ERROR_CODES or self._atDeclaration(chunk):
                raise RestrictedXMLError(str(e)) from e
            raise domish.ParserError(str(e)) from e
        self._previous = chunk

    def _atDeclaration(self, chunk: bytes) -> bool:
        """
        Whether expat stopped at a markup declaration (C{<!DOCTYPE},
        C{<!ENTITY}, C{<!ELEMENT}, ...) after the stream header started:
        expat reports those as an invalid token, not as a DTD (its DTD
        handlers only see one before the root element), yet they are the
        DTDs RFC 6120 section 11.1 forbids. Expat points at the first
        letter after C{<!}, which the last chunk before C{chunk} may hold.

        @param chunk: the bytes whose parsing failed, the last fed.
        """
        data = self._previous + chunk
        at = self.parser.ErrorByteIndex - (self._fed - len(data))
        return 2 <= at < len(data) and data[at - 2 : at] == b"<!" and data[at : at + 1].isalpha()

    # Building elements (expat's handlers; hooks for subclasses)

    def _newElement(self, name: str, attrs: dict[str, str]) -> domish.Element:
        """
        The element for a start tag that expat reports as C{name}
        (C{"uri local"}, or C{local} outside any namespace) with C{attrs},
        with the prefixes declared on the tag and the default namespace in
        scope: what L{domish.ExpatElementStream} makes.
        """
        attributes: dict[str, str] | dict[str | tuple[str, str], str] = attrs
        for key in attrs:
            if " " in key:
                attributes = _qualifiedAttributes(attrs)
                break
        uri, _, local = name.rpartition(" ")
        prefixes = self._prefixes
        if prefixes:
            self._prefixes = {}
        return domish.Element((uri, local), self._defaults[-1], attributes, prefixes)

    def _handleStartDocument(self, name: str, attrs: dict[str, str]) -> None:
        """
        The root element's start tag: a new segment starts; the root goes
        to C{DocumentStartEvent}.
        """
        self._segmentStart = self.parser.CurrentByteIndex
        root = self._newElement(name, attrs)
        self._started = True
        self._contentNamespace = self._defaults[-1]
        self.DocumentStartEvent(root)

    def _handleStartElement(self, name: str, attrs: dict[str, str]) -> None:
        """
        A start tag: the root's, a top-level stanza's (a new segment starts
        there) or one inside a stanza, which is added to its parent unless
        it is too deep.
        """
        current = self._current
        if current is None:
            if not self._started:
                self._handleStartDocument(name, attrs)
                return
            self._level = 1
            self._segmentStart = self.parser.CurrentByteIndex
            self._current = self._newElement(name, attrs)
            return
        level = self._level + 1
        if level > self.maxDepth:
            raise self._tooDeep()
        self._level = level
        self._current = current.addChild(self._newElement(name, attrs))

    def _tooDeep(self) -> StanzaTooDeep:
        """
        The error for an element nested deeper than C{maxDepth}.
        """
        return StanzaTooDeep(f"elements nested more than {self.maxDepth} levels deep in a stanza")

    def _handleEndElement(self, name: str) -> None:
        """
        An end tag: the root's (the document ends), a top-level stanza's
        (it goes to C{ElementEvent}, and a new segment starts) or one
        inside a stanza.
        """
        current = self._current
        if current is None:
            self.DocumentEndEvent()
            return
        parent = current.parent
        self._level -= 1
        if parent is not None:
            self._current = parent
            return
        self._current = None
        self.ElementEvent(current)
        self._segmentStart = self.parser.CurrentByteIndex

    def _handleText(self, data: str) -> None:
        """
        Character data: the text of the element being built; between
        stanzas (whitespace keepalives) it has been consumed and no longer
        counts against the limit.
        """
        current = self._current
        if current is None:
            length = len(data) if data.isascii() else len(data.encode("utf-8"))
            # Line-end normalisation and character references only make the
            # reported data shorter than its bytes, so this never overshoots.
            self._segmentStart = self.parser.CurrentByteIndex + length
        else:
            current.addContent(data)

    def _handleStartNamespace(self, prefix: str | None, uri: str | None) -> None:
        """
        A namespace declaration on the next start tag: the default
        namespace goes on the stack, a prefix to that tag's element. A
        namespace name that domish would write out broken is refused.
        """
        if uri and not UNSAFE_NAMESPACE.isdisjoint(uri):
            raise RefusedNamespace(
                "a namespace name with <, &, ' or \" is not accepted: %r" % (uri[:100],)
            )
        if prefix is None:
            self._defaults.append(uri)
        else:
            self._prefixes[prefix] = uri  # type: ignore[assignment]  # expat gives a URI with a prefix

    def _handleEndNamespace(self, prefix: str | None) -> None:
        """
        A namespace declaration goes out of scope.
        """
        if prefix is None:
            self._defaults.pop()
