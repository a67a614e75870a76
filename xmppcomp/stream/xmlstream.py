# -*- test-case-name: tests.test_stream_xmlstream -*-
"""
The restricted XML stream of RFC 6120 (sections 4 and 11), built on
L{twisted.words.protocols.jabber.xmlstream}.

Three layers, from the inside out:

  - L{RestrictedElementStream} is an expat-based
    L{domish.ExpatElementStream} that refuses what RFC 6120 section 11.1
    forbids (DTDs, comments, processing instructions, entity references other
    than the five predefined ones) and bounds the bytes of each top-level
    stanza, of the stream header and of whatever sits between stanzas, before
    they are buffered.
  - L{parseStreamHeader}, L{checkHost} and L{newStreamId} are pure functions
    over parsed elements and strings, used by both ends of a stream;
    L{checkSerializable} refuses serialised XML holding a character that
    XML 1.0 forbids.
  - L{XmppXmlStream} is the thin Twisted adapter: it maps parse errors to
    stream errors (C{restricted-xml}, C{policy-violation},
    C{not-well-formed}), performs the closing handshake of RFC 6120 section
    4.4 with a timeout, and sets C{TCP_NODELAY}. It never writes an element
    or string that L{checkSerializable} refuses: that one is refused with
    L{xmppcomp.errors.UnserializableElement}, and the stream stays up.
"""

from __future__ import annotations

import pyexpat
import re
import secrets
from enum import Enum, auto
from typing import Any, Callable, Collection, cast
from xml.sax.saxutils import quoteattr

from attrs import frozen
from twisted.internet.abstract import FileDescriptor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import error, jid
from twisted.words.protocols.jabber import xmlstream as jabberxmlstream
from twisted.words.xish import domish
from twisted.words.xish.xmlstream import STREAM_ERROR_EVENT

from xmppcomp.errors import UnserializableElement
from xmppcomp.logs import Logger
from xmppcomp.ns import NS_STREAMS, NS_XML

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_MAX_STANZA_DEPTH",
    "DEFAULT_MAX_STANZA_SIZE",
    "RestrictedElementStream",
    "RestrictedXMLError",
    "STREAM_PREFIXES",
    "StanzaTooDeep",
    "StanzaTooLarge",
    "StreamHeader",
    "XML_FORBIDDEN",
    "XmppXmlStream",
    "checkHost",
    "checkSerializable",
    "conditionForParserError",
    "flushWrites",
    "newStreamId",
    "parseStreamHeader",
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

#: The default number of seconds to wait for the peer's closing
#: C{</stream:stream>} after sending ours (RFC 6120 section 4.4).
DEFAULT_CLOSE_TIMEOUT = 10.0

#: The largest slice of received data handed to expat at once. The parser
#: never holds more than the limit plus one slice.
_SLICE_SIZE = 16 * 1024

#: RFC 7622 section 3: each part of a JID is at most 1023 bytes.
_MAX_JID_PART = 1023

#: Top-level stanzas parsed shallow while raw capture is on.
_SHALLOW_NAMES = frozenset({"message", "presence"})

_PLAIN_DOMAIN = re.compile(
    r"\A[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z"
)

_VERSION = re.compile(r"\A([0-9]+)\.([0-9]+)\Z")

#: One character outside XML 1.0's C{Char} production (section 2.2): a C0
#: control other than tab, newline and carriage return, a surrogate (in a
#: Python C{str} only a lone one can occur), U+FFFE or U+FFFF. Serialised
#: XML holding one is not well-formed, and a peer ends the stream with
#: C{not-well-formed}.
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

_START_TAG = re.compile(r"\s*<([^\s/>]+)")


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
    return frozenset(
        pyexpat.errors.codes[getattr(pyexpat.errors, name)]
        for name in names
        if hasattr(pyexpat.errors, name)
    )


_ENTITY_ERROR_CODES = _entityErrorCodes()


class RestrictedXMLError(domish.ParserError):
    """
    The peer sent XML that RFC 6120 section 11.1 forbids: a DTD, a comment, a
    processing instruction or an entity reference other than the predefined
    ones. It maps to the C{restricted-xml} stream error.
    """


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
_UNSAFE_NAMESPACE = frozenset("<&'\"")


def conditionForParserError(reason: domish.ParserError) -> str:
    """
    The RFC 6120 stream error condition for a parse error.

    @param reason: raised by L{RestrictedElementStream.parse}.
    @return: C{restricted-xml} for L{RestrictedXMLError},
        C{policy-violation} for L{StanzaTooLarge}, C{not-well-formed} for any
        other L{domish.ParserError}.
    """
    if isinstance(reason, RestrictedXMLError):
        return "restricted-xml"
    if isinstance(reason, (StanzaTooLarge, RefusedNamespace)):
        return "policy-violation"
    return "not-well-formed"


def _newElement(
    name: str, attrs: dict[Any, str], defaultUri: str | None, localPrefixes: dict[str, str]
) -> domish.Element:
    """
    The element domish's expat stream makes for a start tag that expat
    reports as C{name} (C{"uri local"}) with C{attrs}, once the document has
    started: the same element, made with fewer steps.
    """
    for key in attrs:
        if " " in key:
            # Namespaced attributes (xml:lang): their keys become (uri,
            # name) tuples, after the others, as domish orders them.
            plain: dict[Any, str] = {}
            qualified: dict[Any, str] = {}
            for k, v in attrs.items():
                if " " in k:
                    qualified[tuple(k.rsplit(" ", 1))] = v
                else:
                    plain[k] = v
            plain.update(qualified)
            attrs = plain
            break
    uri, space, local = name.rpartition(" ")
    if not space:
        uri, local = "", name
    element = domish.Element.__new__(domish.Element)
    element.localPrefixes = localPrefixes
    element.uri = uri
    element.name = local
    if defaultUri is None and uri not in localPrefixes.values():
        # (An undeclared default namespace, xmlns=''.)
        defaultUri = uri
    element.defaultUri = defaultUri
    element.attributes = attrs
    element.children = []
    element.parent = None
    return element


class RestrictedElementStream(domish.ExpatElementStream):
    """
    An element stream that accepts only the XML subset of RFC 6120 section 11
    and bounds the memory a peer can make it hold.

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

    The limit replaces the per-buffer check of
    L{domish.ExpatElementStream}: L{parse} is overridden and
    C{maxStanzaSize} is this stream's own limit.

    Once L{parse} has raised, the stream is dead: every later call raises
    the same error again without touching expat.

    With C{captureRaw} set, each top-level stanza's bytes as received (from
    the C{<} of its start tag to the C{>} of its end tag, found with expat's
    C{CurrentByteIndex}) are kept while C{ElementEvent} handles it, so that
    a router can forward them without serialising the element again (see
    L{rawBytesOf}). They are kept only when they mean the same in any
    C{jabber:client} or C{jabber:component:accept} stream: the stream
    header declared no prefix but C{stream}, and the stanza does not
    declare the stream's content namespace itself (a stanza that inherits
    it takes on the receiving stream's content namespace, exactly as
    L{xmppcomp.router.routing.translateNamespace} would move it). An empty
    top-level element (C{<presence/>}) has no raw bytes: expat reports
    where it ends, and a stanza whose text ends in C{/>} cannot be told
    from it there.

    While raw capture is on, C{<message/>} and C{<presence/>} stanzas whose
    bytes can be forwarded are parsed I{shallow}: the top-level element
    gets its attributes, but what it contains is only checked by expat, not
    built into elements (the router routes on the top-level attributes and
    forwards the raw bytes). Their handler calls L{fullElement} for the
    complete element. A shallow stanza whose bytes cannot be forwarded is
    parsed again in full before it is dispatched.

    Elements nest at most C{maxDepth} levels below the stream root (a
    top-level stanza is level 1): the start tag of an element one level
    deeper raises L{StanzaTooDeep} at once, on both the full and the shallow
    path, before anything more of the stanza is buffered.

    @ivar maxStanzaSize: the limit, in bytes, on each segment.
    @ivar maxDepth: the limit on nesting levels below the stream root.
    @ivar captureRaw: whether to keep each stanza's raw bytes; it may be
        turned on at any time and applies from the next stanza whose bytes
        are all seen after that.
    @ivar lastElement: the top-level element being dispatched, while
        C{captureRaw} is set and its raw bytes are known, else L{None}.
    @ivar lastRaw: the raw bytes of C{lastElement}, else L{None}.
    @ivar lastShallow: whether C{lastElement} was parsed shallow.
    @ivar _fed: how many bytes were handed to expat so far.
    @ivar _segmentStart: the byte offset where the current segment starts.
    @ivar _error: the error that killed the stream, or L{None}.
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
        super().__init__()
        self.maxStanzaSize = maxStanzaSize
        self.maxDepth = maxDepth
        # The level of the element being built on the full path (the
        # top-level stanza is 1).
        self._level = 0
        # Every element takes at least four bytes, so the byte limit already
        # bounds the element count; keep the base class's check out of the way.
        self.maxElementCount = maxStanzaSize
        self._fed = 0
        # The last chunk fed before the current one (see _atDeclaration).
        self._previous = b""
        self._segmentStart = 0
        self._error: domish.ParserError | None = None
        self._discarded = False
        self.captureRaw = False
        self.lastElement: domish.Element | None = None
        self.lastRaw: bytes | None = None
        self.lastShallow = False
        self._shallow = False
        self._sawChild = False
        self._depth = 0
        # Raw capture: the chunks fed since the current stanza started, the
        # absolute offset of the first one, where the stanza started, whether
        # the header allows raw forwarding and whether the stanza redeclared
        # the content namespace.
        self._chunks: list[bytes] = []
        self._chunksStart = 0
        self._stanzaStart = 0
        self._rawSafe = False
        self._redeclared = False
        self._contentNamespace: str | None = None

        parser = self.parser
        parser.StartDoctypeDeclHandler = self._onDoctype
        parser.CommentHandler = self._onComment
        parser.ProcessingInstructionHandler = self._onProcessingInstruction
        parser.EntityDeclHandler = self._onEntityDecl
        parser.UnparsedEntityDeclHandler = self._onEntityDecl
        parser.SkippedEntityHandler = self._onSkippedEntity
        parser.ExternalEntityRefHandler = self._onExternalEntityRef
        parser.StartNamespaceDeclHandler = self._onStartNamespace
        parser.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
        # Expat 2.6 may defer parsing a partial token until much more data
        # arrives; on a stream that would hold back a complete stanza. The
        # cost it protects against is bounded here by maxStanzaSize.
        setDeferral = getattr(parser, "SetReparseDeferralEnabled", None)
        if setDeferral is not None:
            setDeferral(False)

    def parse(self, buffer: bytes) -> None:
        """
        Feed received bytes to the parser, which calls the C{DocumentStartEvent},
        C{ElementEvent} and C{DocumentEndEvent} callbacks as it goes.

        @param buffer: received bytes.
        @raise RestrictedXMLError: the data holds XML that RFC 6120 forbids.
        @raise StanzaTooLarge: a segment went over C{maxStanzaSize}.
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
            size = min(budget, _SLICE_SIZE, end - position)
            if position == 0 and size == end:
                chunk = buffer
            else:
                chunk = buffer[position : position + size]
            position += size
            capture = self.captureRaw
            if capture:
                if not self._chunks:
                    self._chunksStart = self._fed
                self._chunks.append(chunk)
            self._fed += size
            try:
                self.parser.Parse(chunk)
            except self.error as e:
                if e.code in _ENTITY_ERROR_CODES or self._atDeclaration(chunk):
                    raise RestrictedXMLError(str(e)) from e
                raise domish.ParserError(str(e)) from e
            self._previous = chunk
            if capture:
                self._trimChunks()

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

    def _trimChunks(self) -> None:
        """
        Forget the fed chunks that no stanza still being parsed needs.
        """
        chunks = self._chunks
        # Between stanzas, keep what expat has not turned into events yet:
        # it may be the start of the next stanza's tag.
        start = self._segmentStart if self.currElem is None else self._stanzaStart
        while chunks and self._chunksStart + len(chunks[0]) <= start:
            self._chunksStart += len(chunks.pop(0))

    def _stanzaBytes(self, hasContent: bool) -> bytes | None:
        """
        The bytes of the top-level stanza whose end expat reports now, or
        L{None} if they were not all kept, it is an empty-element tag, or
        it cannot be told from one.

        @param hasContent: whether the stanza is known to contain something
            (then it has an end tag).
        """
        chunks = self._chunks
        if len(chunks) == 1 and self._chunksStart <= self._stanzaStart:
            # The common case, with _locateEnd and _throughEndTag inline
            # (once per routed stanza).
            data = chunks[0]
            at = self.parser.CurrentByteIndex - self._chunksStart
            if at <= self._stanzaStart - self._chunksStart:
                return None
        else:
            located = self._locateEnd()
            if located is None:
                return None
            data, at = located
        # For an end tag expat reports where its '</' starts; for an
        # empty-element tag, where the tag ends, which may also be followed
        # by '</' (of the stream). Without known content, what precedes an
        # end tag is the start tag's '>' (never after '/') or text, which
        # may end in '/>' too: that is left alone.
        if data[at : at + 2] != b"</":
            return None
        if not hasContent and data[at - 2 : at] == b"/>":
            return None
        # An end tag holds no attribute values: its first '>' ends it.
        close = data.find(b">", at)
        if close == -1:
            return None
        return data[self._stanzaStart - self._chunksStart : close + 1]

    def _locateEnd(self) -> tuple[bytes, int] | None:
        """
        The kept bytes of the current stanza (from the start of the first
        kept chunk) and the offset in them that expat reports for the end
        event; L{None} if the stanza's start was not kept.
        """
        chunks = self._chunks
        start = self._stanzaStart
        if not chunks or self._chunksStart > start:
            return None
        endTag = self.parser.CurrentByteIndex
        if endTag <= start:
            return None
        if len(chunks) == 1:
            data = chunks[0]
        else:
            # Join from the stanza's start only: what came before is not
            # needed again, and would pile up from stanza to stanza.
            data = b"".join(chunks)[start - self._chunksStart :]
            self._chunksStart = start
            chunks[:] = [data]
        return data, endTag - self._chunksStart

    def _throughEndTag(self, data: bytes, at: int) -> bytes | None:
        """
        The stanza's bytes when an end tag starts at C{at}.
        """
        # An end tag holds no attribute values: its first '>' ends it.
        close = data.find(b">", at)
        if close == -1:
            return None
        return data[self._stanzaStart - self._chunksStart : close + 1]

    def _shallowStanzaBytes(self) -> bytes | None:
        """
        For a shallow stanza without forwardable bytes: the bytes to parse
        it from in full, or L{None} if it is an empty-element tag (then the
        shallow element is complete).
        """
        located = self._locateEnd()
        if located is None:
            return None
        data, at = located
        if data[at : at + 2] != b"</":
            return None
        if data[at - 2 : at] == b"/>":
            # Either an empty-element tag followed by the stream's end tag,
            # or text ending in '/>': only the former parses on its own.
            try:
                self.parseFull(data[self._stanzaStart - self._chunksStart : at])
            except (domish.ParserError, IndexError):
                pass
            else:
                return None
        return self._throughEndTag(data, at)

    def discard(self) -> None:
        """
        Stop delivering events: the stream was restarted (after STARTTLS or
        SASL) and whatever followed in the same read belongs to no stream.
        Dropping it is what defeats STARTTLS command injection: plaintext
        sent behind C{<starttls/>} or C{<proceed/>} must never be taken as
        if it had arrived inside TLS.
        """
        self._discarded = True
        self.DocumentStartEvent = self.ElementEvent = _ignore
        self.DocumentEndEvent = _ignoreEnd

    # Segment accounting

    def _onStartElement(self, name: str, attrs: dict[Any, str]) -> None:
        """
        Start a new segment where the stream header or a top-level stanza
        begins; inside a shallow stanza, count the element and build
        nothing.
        """
        if self._shallow:
            depth = self._depth = self._depth + 1
            if depth >= self.maxDepth:
                # The stanza is level 1, so this element is at depth + 1.
                raise self._tooDeep()
            self._sawChild = True
            # Prefixes it declared would otherwise go to the next element.
            if self.localPrefixes:
                self.localPrefixes = {}
            return
        if not self.documentStarted:
            self._segmentStart = self.parser.CurrentByteIndex
            self._rawSafe = all(prefix == "stream" for prefix in self.localPrefixes)
            super()._onStartElement(name, attrs)
            self._contentNamespace = self.defaultNsStack[-1]
            return
        if self.currElem is not None:
            level = self._level + 1
            if level > self.maxDepth:
                raise self._tooDeep()
            self._level = level
            super()._onStartElement(name, attrs)
            return
        self._level = 1
        start = self._segmentStart = self._stanzaStart = self.parser.CurrentByteIndex
        # A top-level stanza: what domish.ExpatElementStream._onStartElement
        # does for it, without its general case (the routing hot path).
        self.elementCount += 1
        if self.elementCount > self.maxElementCount:
            raise domish.ParserError("Maximum element count exceeded")
        element = self.currElem = _newElement(name, attrs, self.defaultNsStack[-1], self.localPrefixes)
        self.localPrefixes = {}
        if (
            self.captureRaw
            and self._rawSafe
            and element is not None
            and element.name in _SHALLOW_NAMES
            and element.uri == self._contentNamespace
            and self._chunks
            and self._chunksStart <= start
        ):
            # Until its end, the start and end handlers only count
            # elements (the same handlers: swapping expat's handlers costs
            # more than the test), and text is not even reported.
            self._shallow = True
            self._sawChild = False
            self._depth = 0
            self.parser.CharacterDataHandler = None

    def _tooDeep(self) -> StanzaTooDeep:
        return StanzaTooDeep(
            f"elements nested more than {self.maxDepth} levels deep in a stanza"
        )

    def parseFull(self, data: bytes) -> domish.Element:
        """
        Parse the raw bytes of one stanza of this stream into a complete
        element, in the stream's content namespace.

        @param data: what L{lastRaw} held.
        """
        inner = RestrictedElementStream(self.maxStanzaSize, self.maxDepth)
        got: list[domish.Element] = []
        inner.DocumentStartEvent = _ignore
        inner.ElementEvent = got.append
        inner.DocumentEndEvent = _ignoreEnd
        inner.parse(
            b"<stream:stream xmlns:stream='%s' xmlns=%s>"
            % (
                NS_STREAMS.encode(),
                quoteattr(self._contentNamespace or "").encode("utf-8"),
            )
        )
        inner.parse(data)
        return got[0]

    def _onEndElement(self, name: str) -> None:
        """
        Start a new segment where a top-level stanza ends; with
        C{captureRaw}, make the stanza's raw bytes known while it is
        dispatched.
        """
        if self._shallow:
            if self._depth:
                # An element inside a shallow stanza.
                self._depth -= 1
                return
            # The shallow stanza's own end.
            self.parser.CharacterDataHandler = self._onCdata
        current = self.currElem
        topLevel = current is not None and current.parent is None
        if current is not None:
            self._level -= 1
        if topLevel and (self.captureRaw or self._shallow):
            assert current is not None  # topLevel says so
            shallow, self._shallow = self._shallow, False
            raw = self._stanzaBytes(self._sawChild if shallow else bool(current.children))
            if raw is not None and self._rawSafe and not self._redeclared:
                self.lastElement = current
                self.lastRaw = raw
                self.lastShallow = shallow
            elif shallow:
                # Its children were skipped and its bytes cannot be
                # forwarded: build it in full.
                full = raw if raw is not None else self._shallowStanzaBytes()
                if full is not None:
                    self.currElem = self.parseFull(full)
        if not topLevel:
            super()._onEndElement(name)
            return
        try:
            # What domish.ExpatElementStream._onEndElement does for a
            # top-level element, without its other cases (once per stanza).
            self.ElementEvent(self.currElem)  # type: ignore[misc]  # domish declares it None until set
            self.currElem = None
            self.elementCount = 0
            self.stanzaSize = 0
        finally:
            self.lastElement = self.lastRaw = None
            self.lastShallow = False
            self._redeclared = False
        self._segmentStart = self.parser.CurrentByteIndex

    def _onStartNamespace(self, prefix: str | None, uri: str) -> None:
        """
        Note a stanza that declares the stream's content namespace itself:
        its raw bytes would not move to another content namespace.
        """
        if uri and not _UNSAFE_NAMESPACE.isdisjoint(uri):
            raise RefusedNamespace("a namespace name with <, &, ' or \" is not accepted: %r" % (uri[:100],))
        super()._onStartNamespace(prefix, uri)
        if self.documentStarted and uri == self._contentNamespace:
            self._redeclared = True

    def _onCdata(self, data: str) -> None:
        """
        Character data between stanzas (whitespace keepalives) has been
        consumed: it no longer counts against the limit.
        """
        if self.currElem is None:
            length = len(data) if data.isascii() else len(data.encode("utf-8"))
            # Line-end normalisation and character references only make the
            # reported data shorter than its bytes, so this never overshoots.
            self._segmentStart = self.parser.CurrentByteIndex + length
        else:
            self.currElem.addContent(data)

    # Restricted XML (RFC 6120 section 11.1)

    def _onDoctype(self, *args: object) -> None:
        raise RestrictedXMLError("document type declaration")

    def _onComment(self, data: str) -> None:
        raise RestrictedXMLError("comment")

    def _onProcessingInstruction(self, target: str, data: str) -> None:
        raise RestrictedXMLError("processing instruction")

    def _onEntityDecl(self, *args: object) -> None:
        raise RestrictedXMLError("entity declaration")

    def _onSkippedEntity(self, *args: object) -> None:
        raise RestrictedXMLError("entity reference")

    def _onExternalEntityRef(self, *args: object) -> int:
        raise RestrictedXMLError("external entity reference")


# Stream headers


@frozen
class StreamHeader:
    """
    The checked attributes of a received stream header.

    @ivar namespace: the default namespace (content namespace) of the stream.
    @ivar to: the C{to} attribute as a normalised JID string, or L{None}.
    @ivar from_: the C{from} attribute as a normalised JID string, or L{None}.
    @ivar id: the C{id} attribute, or L{None}.
    @ivar version: the C{version} attribute as C{(major, minor)}.
    @ivar lang: the C{xml:lang} attribute, or L{None}.
    """

    namespace: str
    to: str | None
    from_: str | None
    id: str | None
    version: tuple[int, int]
    lang: str | None


def _normaliseJID(value: str) -> str | None:
    """
    Validate and normalise an address from a stream header.

    Twisted's L{jid.JID} is lenient (it accepts an empty localpart or
    resourcepart and unbounded lengths), so this adds the checks of RFC 7622.
    L{jid.internJID} is not used: it would cache every string a peer sends.

    @return: the normalised JID string, or L{None} if C{value} is not a JID.
    """
    if len(value) <= _MAX_JID_PART and _PLAIN_DOMAIN.match(value) is not None:
        # The usual stream header address: an ASCII domain whose nameprep
        # is lowercasing (letters, digits, inner hyphens; labels of at most
        # 63). Stringprep in pure Python costs far more.
        return value.lower()
    bare, slash, resource = value.partition("/")
    if slash and not resource:
        return None
    local, at, _ = bare.partition("@")
    if at and not local:
        return None
    try:
        parsed = jid.JID(value)
    except Exception:
        return None
    for part in (parsed.user, parsed.host, parsed.resource):
        if part is not None and len(part.encode("utf-8")) > _MAX_JID_PART:
            return None
    full: str = parsed.full()
    return full


def _ignore(element: object) -> None:
    """
    Event sink of a discarded parser.
    """


def _ignoreEnd() -> None:
    """
    Document-end sink of a discarded parser.
    """


def parseStreamHeader(root: domish.Element, expectedNamespace: str) -> StreamHeader:
    """
    Check a received stream header (RFC 6120 section 4.7 and 4.9.3).

    @param root: the root element, as passed to C{onDocumentStart}.
    @param expectedNamespace: the content namespace this end speaks, like
        C{jabber:client}.
    @return: the header's attributes.
    @raise error.StreamError: C{invalid-namespace} if the root is not
        C{<stream>} in C{http://etherx.jabber.org/streams} or the default
        namespace is not C{expectedNamespace}; C{bad-namespace-prefix} if the
        streams namespace is not bound to the C{stream} prefix;
        C{unsupported-version} if C{version} is missing or its major number
        is not 1; C{bad-format} if C{version} is not two dotted numbers;
        C{host-unknown} if C{to} is not a JID; C{invalid-from} if C{from} is
        not a JID.
    """
    if root.uri != NS_STREAMS or root.name != "stream":
        raise error.StreamError("invalid-namespace")
    if (root.localPrefixes or {}).get("stream") != NS_STREAMS:
        raise error.StreamError("bad-namespace-prefix")
    if root.defaultUri != expectedNamespace:
        raise error.StreamError("invalid-namespace")

    versionText = root.getAttribute("version")
    if versionText is None:
        raise error.StreamError("unsupported-version")
    match = _VERSION.match(versionText)
    if match is None:
        raise error.StreamError("bad-format")
    try:
        version = (int(match.group(1)), int(match.group(2)))
    except ValueError:
        raise error.StreamError("bad-format") from None
    if version[0] != 1:
        raise error.StreamError("unsupported-version")

    to = root.getAttribute("to")
    if to is not None:
        to = _normaliseJID(to)
        if to is None:
            raise error.StreamError("host-unknown")
    from_ = root.getAttribute("from")
    if from_ is not None:
        from_ = _normaliseJID(from_)
        if from_ is None:
            raise error.StreamError("invalid-from")

    return StreamHeader(
        namespace=expectedNamespace,
        to=to,
        from_=from_,
        id=root.getAttribute("id"),
        version=version,
        lang=root.getAttribute((NS_XML, "lang")),
    )


def checkHost(header: StreamHeader, domains: Collection[str]) -> None:
    """
    Check that a stream header is addressed to one of our domains.

    @param header: from L{parseStreamHeader}; its C{to} is normalised.
    @param domains: the domains this end serves; normalised here too.
    @raise error.StreamError: C{host-unknown} if C{to} is missing or not
        one of C{domains}.
    """
    if header.to is None or header.to not in {_normaliseJID(d) for d in domains}:
        raise error.StreamError("host-unknown")


def newStreamId() -> str:
    """
    A fresh stream id with 128 random bits, for every stream a receiving
    entity opens, restarts included.
    """
    return secrets.token_hex(16)


def _shown(text: str) -> str:
    """
    C{text} with each character L{XML_FORBIDDEN} matches written as
    C{U+XXXX}: safe to log, and to put in XML.
    """
    return XML_FORBIDDEN.sub(lambda match: "U+%04X" % (ord(match.group()),), text)


def _whereIn(element: domish.Element, char: str) -> str:
    """
    Where C{char} first occurs in C{element}: in an attribute or in the
    text of which descendant (or of C{element} itself), for an error
    message. Only called once a character was refused, so the walk costs
    nothing on the way out.
    """
    stack = [element]
    while stack:
        current = stack.pop()
        for key, value in current.attributes.items():
            name = key if isinstance(key, str) else "{%s}%s" % key
            if char in name or char in value:
                where = "attribute %s of <%s/>" % (_shown(name), _shown(current.name))
                break
        else:
            if any(isinstance(child, str) and char in child for child in current.children):
                where = "the text of <%s/>" % (_shown(current.name),)
            else:
                stack.extend(
                    child
                    for child in reversed(current.children)
                    if isinstance(child, domish.Element)
                )
                continue
        if current is not element:
            where += " in <%s/>" % (_shown(element.name),)
        return where
    return "<%s/>" % (_shown(element.name),)


def checkSerializable(text: str, element: domish.Element | None = None) -> str:
    """
    Check that serialised XML holds only characters XML 1.0 allows (see
    L{XML_FORBIDDEN}): what L{XmppXmlStream.send} checks before it writes.
    One compiled regular expression search, a fraction of a microsecond for
    a typical stanza.

    @param text: the serialised element (or other XML text).
    @param element: the element C{text} was serialised from, if any, to
        say where the character is.
    @return: C{text}, unchanged.
    @raise UnserializableElement: a character is outside XML 1.0's C{Char}
        production; its reason names the character as C{U+XXXX} and the
        element, and holds no forbidden character itself.
    """
    bad = XML_FORBIDDEN.search(text)
    if bad is None:
        return text
    char = bad.group()
    if element is not None:
        where = _whereIn(element, char)
    else:
        tag = _START_TAG.match(text)
        where = "<%s/>" % (_shown(tag.group(1)),) if tag is not None else "XML text"
    raise UnserializableElement(
        "U+%04X in %s is not allowed in XML 1.0" % (ord(char), where)
    )


# The protocol


def flushWrites(transport: object) -> bool:
    """
    Hand what was written to C{transport} during this reactor turn to the
    kernel now, instead of when the turn ends.

    Twisted buffers writes: TLS records are made on the next reactor turn
    (C{BufferingTLSTransport} aggregates small writes), and bytes reach the
    socket when the reactor next finds it writable. That is right for
    throughput, but during negotiation the peer is idle until our answer
    arrives: flushing before the bookkeeping that follows an answer
    (starting TLS, logging, session setup) lets the peer work meanwhile.

    Only a plain TCP transport (TLS started on it or not) with nothing
    unusual going on is flushed: not closing (whose completion only the
    reactor may handle), and no producer that a drained buffer would
    resume from here (a pull producer, or a paused push producer; a
    running push producer is left alone by a write). Errors are left in
    place for the reactor to find on its next write, as it would have.

    @return: whether anything was flushed.
    """
    if not isinstance(transport, FileDescriptor):
        return False
    if (
        not transport.connected
        or transport.disconnecting
        or (
            transport.producer is not None
            and (not transport.streamingProducer or transport.producerPaused)
        )
        or getattr(transport, "_writeDisconnecting", False)
        or getattr(transport, "_writeDisconnected", False)
    ):
        return False
    if getattr(transport, "TLS", False):
        # twisted.protocols.tls.BufferingTLSTransport aggregates small
        # writes until the next turn; a TLS layer without that aggregator
        # makes its records at once.
        aggregator = getattr(getattr(transport, "protocol", None), "_aggregator", None)
        flush = getattr(aggregator, "flush", None)
        if flush is not None:
            flush()
    if not transport.dataBuffer and not transport._tempDataBuffer:
        return False
    transport.doWrite()
    return True


#: The prefixes of a stream that declares only C{stream:} (Twisted's
#: default), and how its header starts (see L{XmppXmlStream.sendHeader}).
STREAM_PREFIXES = {NS_STREAMS: "stream"}
_HEADER_START = "<stream:stream xmlns:stream='%s' xmlns='" % (NS_STREAMS,)


class _State(Enum):
    """
    The closing state of an L{XmppXmlStream}.
    """

    #: Open in both directions.
    OPEN = auto()
    #: We sent our closing tag (or a stream error) and wait for the peer's
    #: closing tag or for the close timeout.
    CLOSING = auto()
    #: We called C{loseConnection} and wait for C{connectionLost}.
    DISCONNECTING = auto()
    #: The connection is lost.
    CLOSED = auto()


class XmppXmlStream(jabberxmlstream.XmlStream):
    """
    An XMPP XML stream that parses restricted XML with size limits, sends
    the stream error for each parse error, closes with the handshake of RFC
    6120 section 4.4, and sets C{TCP_NODELAY}.

    @ivar maxStanzaSize: see L{RestrictedElementStream}.
    @ivar maxDepth: the nesting limit, see L{RestrictedElementStream}; it
        applies to the parser made at the next (re)start of the stream, so
        set it before the connection is made.
    @ivar lastReceived: when data was last received, in reactor seconds
        (the connection time until then); one clock read per read from the
        transport, not per stanza, for idle checks such as the router's.
    @ivar closeTimeout: seconds to wait for the peer's closing tag after ours.
        The same delay then bounds how long a peer that does not read can
        keep the connection: the transport is aborted after it.
    @ivar streamEnded: L{None} while the stream is open; then why it ended:
        a L{Failure} of the L{error.StreamError} we sent or received, or, if
        the stream ended without a stream error, the reason given to
        C{connectionLost}.
    @ivar _state: a L{_State}.
    @ivar _footerSent: whether C{</stream:stream>} has been written.
    @ivar _parseFailed: a parse error happened; no more data is parsed.
    @ivar _closeTimer: pending close timeout, or L{None}.
    @ivar _abortTimer: pending abort after C{loseConnection}, or L{None}.
    @ivar _closeWaiters: L{Deferred}s from L{closeStream} to fire on
        C{connectionLost}.
    """

    _log = Logger()

    def __init__(
        self,
        authenticator: jabberxmlstream.Authenticator,
        reactor: IReactorTime | None = None,
        maxStanzaSize: int = DEFAULT_MAX_STANZA_SIZE,
        closeTimeout: float = DEFAULT_CLOSE_TIMEOUT,
        maxDepth: int = DEFAULT_MAX_STANZA_DEPTH,
    ) -> None:
        """
        @param authenticator: performs stream initialisation.
        @param reactor: schedules the timers; the global reactor if L{None}.
        @param maxStanzaSize: the parser's limit in bytes.
        @param closeTimeout: seconds to wait for the peer's closing tag.
        @param maxDepth: the parser's nesting limit.
        """
        self._reactor = reactor
        self.maxStanzaSize = maxStanzaSize
        self.maxDepth = maxDepth
        self.lastReceived = 0.0
        self.closeTimeout = closeTimeout
        self.streamEnded: Failure | None = None
        self._state = _State.OPEN
        self._footerSent = False
        self._parseFailed = False
        self._closeTimer: IDelayedCall | None = None
        self._abortTimer: IDelayedCall | None = None
        self._closeWaiters: list[Deferred[None]] = []
        self._captureRaw = False
        super().__init__(authenticator)

    def _clock(self) -> IReactorTime:
        """
        The injected reactor (or the global one).
        """
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        assert self._reactor is not None
        return self._reactor

    def _callLater(
        self, delay: float, f: Callable[..., object], *args: object, **kw: object
    ) -> IDelayedCall:
        """
        Schedule a call on the injected reactor (or the global one).
        """
        return self._clock().callLater(delay, f, *args, **kw)

    def _initializeStream(self) -> None:
        """
        Use a fresh L{RestrictedElementStream}; L{reset} calls this after TLS
        and SASL. The old parser, if any, is discarded: bytes that followed
        the restart in the same read are dropped, never parsed as part of
        the new stream.
        """
        if isinstance(self.stream, RestrictedElementStream):
            self.stream.discard()
        self.stream = RestrictedElementStream(self.maxStanzaSize, self.maxDepth)
        self.stream.captureRaw = self._captureRaw
        self.stream.DocumentStartEvent = self.onDocumentStart
        self.stream.ElementEvent = self.onElement
        self.stream.DocumentEndEvent = self.onDocumentEnd

    def captureRawStanzas(self) -> None:
        """
        Keep each received stanza's raw bytes while it is handled, for
        L{rawBytesOf}; stream restarts keep the setting.
        """
        self._captureRaw = True
        if isinstance(self.stream, RestrictedElementStream):
            self.stream.captureRaw = True

    def rawBytesOf(self, element: domish.Element) -> bytes | None:
        """
        The bytes C{element} arrived as, if it is the top-level stanza being
        handled right now, raw capture is on (L{captureRawStanzas}) and they
        can be forwarded unchanged into any C{jabber:client} or
        C{jabber:component:accept} stream (see L{RestrictedElementStream});
        else L{None}. They are only valid if the element was not changed.
        """
        stream = self.stream
        if isinstance(stream, RestrictedElementStream) and stream.lastElement is element:
            return stream.lastRaw
        return None

    def fullElement(self, element: domish.Element) -> domish.Element:
        """
        C{element} with everything it contains: the element itself, or, if
        it is the stanza being handled and was parsed shallow (see
        L{RestrictedElementStream}), a complete copy parsed from its raw
        bytes. Call it before looking below a stanza's top-level attributes
        on a stream with raw capture on.
        """
        stream = self.stream
        if (
            isinstance(stream, RestrictedElementStream)
            and stream.lastElement is element
            and stream.lastShallow
            and stream.lastRaw is not None
        ):
            return stream.parseFull(stream.lastRaw)
        return element

    def _peer(self) -> object:
        """
        The peer address for log messages.
        """
        if self.transport is None:
            return None
        try:
            return self.transport.getPeer()
        except Exception:
            return None

    # Protocol events

    def connectionMade(self) -> None:
        """
        Set C{TCP_NODELAY} where the transport supports it, then start the
        stream as usual.
        """
        setTcpNoDelay = getattr(self.transport, "setTcpNoDelay", None)
        if setTcpNoDelay is not None:
            try:
                setTcpNoDelay(True)
            except (OSError, NotImplementedError, AttributeError) as e:
                self._log.debug("Cannot set TCP_NODELAY: {error}", error=e)
        self.lastReceived = self._clock().seconds()
        super().connectionMade()

    def dataReceived(self, data: bytes) -> None:
        """
        Parse received data. A parse error sends the matching stream error
        and closes the connection; later data is ignored.
        """
        if self._parseFailed or self.stream is None:
            return
        self.lastReceived = self._clock().seconds()
        try:
            if self.rawDataInFn:
                self.rawDataInFn(data)
            self.stream.parse(data)
        except domish.ParserError as e:
            self._parseFailed = True
            if self._state is not _State.OPEN:
                self._log.debug(
                    "Ignoring parse error from {peer} while closing: {reason}",
                    peer=self._peer(),
                    reason=e,
                )
                return
            condition = conditionForParserError(e)
            self._log.warn(
                "Closing XML stream from {peer} with {condition}: {reason}",
                peer=self._peer(),
                condition=condition,
                reason=str(e),
            )
            streamError = error.StreamError(condition)
            streamError.__cause__ = e
            self._endWithError(streamError, immediately=True)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Cancel pending timers, record why the stream ended, and fire the
        L{Deferred}s of L{closeStream}.
        """
        self._state = _State.CLOSED
        for timer in (self._closeTimer, self._abortTimer):
            if timer is not None and timer.active():
                timer.cancel()
        self._closeTimer = self._abortTimer = None
        if self.streamEnded is None:
            self.streamEnded = reason
        super().connectionLost(reason)
        waiters, self._closeWaiters = self._closeWaiters, []
        for waiter in waiters:
            waiter.callback(None)

    # Document events

    def onDocumentEnd(self) -> None:
        """
        The peer sent C{</stream:stream>}: finish our close, or answer with
        our own closing tag if the peer closed first.
        """
        if self._state is _State.OPEN:
            self._log.debug("Peer {peer} closed the XML stream", peer=self._peer())
            self._state = _State.CLOSING
            self._sendClosingTag()
            self._loseConnection()
        elif self._state is _State.CLOSING:
            self._loseConnection()

    def onStreamError(self, errelem: domish.Element) -> None:
        """
        The peer sent C{<stream:error/>}: log it, tell observers with
        L{STREAM_ERROR_EVENT}, answer with our closing tag and close.
        """
        streamError = error.exceptionFromStreamError(errelem)
        if self._state is not _State.OPEN:
            return
        self._log.warn(
            "Received stream error {condition} from {peer}",
            condition=streamError.condition,
            text=streamError.text,
            peer=self._peer(),
        )
        self._state = _State.CLOSING
        self.streamEnded = Failure(streamError)
        self.dispatch(Failure(streamError), STREAM_ERROR_EVENT)
        self._sendClosingTag()
        self._loseConnection()

    # Sending and closing

    def send(self, obj: Any) -> None:
        """
        Send data, unless our closing tag is already out: nothing may follow
        it (RFC 6120 section 4.4).

        An element (serialised as L{serialize} does) or a C{str} is written
        only if it is well-formed as far as characters go: one holding a
        character that XML 1.0 forbids (see L{checkSerializable}) is
        refused, and only it. Nothing is written, a warning is logged, and
        the caller gets the error; the stream stays up, where the peer would
        have ended it with C{not-well-formed}. C{bytes} are written as
        given: the caller vouches for them (see L{sendRaw}).

        @param obj: a L{domish.IElement} provider, a C{str} or C{bytes}.
        @raise UnserializableElement: C{obj} would not be well-formed XML.
        """
        if self._footerSent:
            self._log.debug("Dropping data sent after the stream was closed")
            return
        data = obj
        if not isinstance(obj, bytes):
            try:
                if isinstance(obj, str):
                    data = checkSerializable(obj).encode("utf-8")
                elif domish.IElement.providedBy(obj):
                    data = self.serialize(cast(domish.Element, obj)).encode("utf-8")
            except UnserializableElement as e:
                self._log.warn(
                    "Refusing to send to {peer} what would not be well-formed XML: {reason}",
                    peer=self._peer(),
                    reason=e.reason,
                )
                raise
        # What Twisted's send does once it has bytes.
        if self.rawDataOutFn:
            self.rawDataOutFn(data)
        assert self.transport is not None
        self.transport.write(data)

    def flush(self) -> bool:
        """
        Hand what was sent in this reactor turn to the kernel now (see
        L{flushWrites}): call it after an answer the peer waits for, before
        work that need not delay it.

        @return: whether anything was flushed.
        """
        return flushWrites(self.transport)

    def sendRaw(self, data: bytes) -> None:
        """
        Send bytes that are already one or more serialised stanzas (such as
        L{rawBytesOf} gave), unless our closing tag is already out: the
        router's forwarding path, without the checks L{send} makes for
        elements.

        In particular the characters are not checked (see
        L{checkSerializable}): bytes that expat parsed are well-formed by
        construction, and checking them would cost a decode per forwarded
        stanza. Callers must give only such bytes.
        """
        if self._footerSent:
            return
        if self.rawDataOutFn:
            self.rawDataOutFn(data)
        assert self.transport is not None
        self.transport.write(data)

    def serialize(self, element: domish.Element) -> str:
        """
        C{element} serialised as L{send} would send it: a child of our
        root, in our default namespace, with our prefixes.

        @raise UnserializableElement: the result would not be well-formed
            XML (see L{checkSerializable}), so L{send} would refuse it.
        """
        return checkSerializable(
            str(
                element.toXml(
                    prefixes=self.prefixes,
                    defaultUri=self.namespace,
                    prefixesInScope=list(self.prefixes.values()),
                )
            ),
            element,
        )

    def sendHeader(self) -> None:
        """
        Send our stream header: the bytes Twisted's C{sendHeader} sends,
        written directly instead of through a C{domish} element (a
        negotiation sends three headers from each end).

        Streams that declare prefixes besides C{stream} get Twisted's.
        """
        if self.prefixes != STREAM_PREFIXES or self.namespace is None:
            super().sendHeader()
            return
        parts = [_HEADER_START, domish.escapeToXml(self.namespace, 1), "'"]
        if self.otherEntity:
            parts += [" to='", domish.escapeToXml(self.otherEntity.userhost(), 1), "'"]
        if self.thisEntity:
            parts += [" from='", domish.escapeToXml(self.thisEntity.userhost(), 1), "'"]
        if not self.initiating and self.sid:
            parts += [" id='", domish.escapeToXml(self.sid, 1), "'"]
        if self.version >= (1, 0):
            parts.append(" version='%d.%d'" % self.version)
        parts.append(">")
        self.send("".join(parts))
        self._headerSent = True

    def sendFooter(self) -> None:
        """
        Send C{</stream:stream>}, once.
        """
        if self._footerSent:
            return
        super().sendFooter()
        self._footerSent = True

    def sendStreamError(self, streamError: error.StreamError) -> None:
        """
        Send a stream error, our closing tag, and close with the handshake
        of L{closeStream}. Does nothing once the stream is closing.

        Observers of L{STREAM_ERROR_EVENT} receive a L{Failure} of
        C{streamError}.

        @param streamError: the error to send.
        """
        self._endWithError(streamError, immediately=False)

    def closeStream(self) -> Deferred[None]:
        """
        Close the stream gracefully (RFC 6120 section 4.4): send
        C{</stream:stream>}, wait for the peer's closing tag or
        C{closeTimeout} seconds, then close the connection.

        Calling it again, or while another close is under way, starts
        nothing new.

        @return: fires with L{None} when the connection is lost.
        """
        waiter: Deferred[None] = Deferred()
        if self._state is _State.CLOSED:
            waiter.callback(None)
            return waiter
        self._closeWaiters.append(waiter)
        if self._state is _State.OPEN:
            self._state = _State.CLOSING
            self._sendClosingTag()
            self._startCloseTimer()
        return waiter

    def _endWithError(self, streamError: error.StreamError, immediately: bool) -> None:
        """
        Send C{streamError} and our closing tag, tell observers, and close:
        at once after a parse error, else after the closing handshake.
        """
        if self._state is not _State.OPEN:
            return
        self._state = _State.CLOSING
        self.streamEnded = Failure(streamError)
        if not self._headerSent and not self.initiating:
            self.sendHeader()
        if self._headerSent:
            try:
                self.send(streamError.getElement())
            except UnserializableElement:
                # Its text (or application condition) cannot be written:
                # the condition alone still ends the stream properly.
                self.send(error.StreamError(streamError.condition).getElement())
            self.sendFooter()
        self.dispatch(Failure(streamError), STREAM_ERROR_EVENT)
        if self._state is not _State.CLOSING:
            # An observer closed the connection already.
            return
        if immediately or not self._headerSent:
            self._loseConnection()
        else:
            self._startCloseTimer()

    def _sendClosingTag(self) -> None:
        """
        Send C{</stream:stream>}; a receiving entity that has not sent its
        header yet sends it first, so that what it wrote is well-formed.
        """
        if not self._headerSent and not self.initiating:
            self.sendHeader()
        if self._headerSent:
            self.sendFooter()

    def _startCloseTimer(self) -> None:
        """
        Give the peer C{closeTimeout} seconds to send its closing tag.
        """
        if self._closeTimer is None:
            self._closeTimer = self._callLater(self.closeTimeout, self._closeTimedOut)

    def _closeTimedOut(self) -> None:
        """
        The peer did not close its side in time.
        """
        self._closeTimer = None
        self._log.info(
            "Peer {peer} did not close the XML stream within {timeout} s",
            peer=self._peer(),
            timeout=self.closeTimeout,
        )
        self._loseConnection()

    def _loseConnection(self) -> None:
        """
        Close the connection after pending writes, and abort it if that takes
        longer than C{closeTimeout} (a peer that stopped reading).
        """
        if self._state is _State.CLOSED:
            return
        self._state = _State.DISCONNECTING
        if self._closeTimer is not None:
            if self._closeTimer.active():
                self._closeTimer.cancel()
            self._closeTimer = None
        assert self.transport is not None
        self.transport.loseConnection()
        if self._abortTimer is None and self._state is _State.DISCONNECTING:
            self._abortTimer = self._callLater(self.closeTimeout, self._abort)

    def _abort(self) -> None:
        """
        The connection did not close in time: abort it.
        """
        self._abortTimer = None
        abortConnection = getattr(self.transport, "abortConnection", None)
        if abortConnection is not None:
            self._log.info("Aborting the connection to {peer}", peer=self._peer())
            abortConnection()
