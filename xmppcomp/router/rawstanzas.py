# -*- test-case-name: tests.test_router_fastpath,tests.test_stream_parser -*-
"""
The router's fast stanza path: a L{StanzaParser} that keeps each stanza's
bytes as received, so that the router forwards them without serialising
the element again, and parses messages and presences I{shallow} (their
top-level attributes only), since the router routes on those.

Built on pyexpat's public API (C{CurrentByteIndex}, its handler
attributes) through the hooks of L{StanzaParser}; the router's sessions
make one per stream with L{IXmppStream.setParserFactory
<xmppcomp.interfaces.IXmppStream.setParserFactory>} and reach it through
L{IRawStanzaParser}.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from twisted.words.xish import domish
from zope.interface import implementer

from xmppcomp.interfaces import IRawStanzaParser
from xmppcomp.ns import NS_STREAMS
from xmppcomp.stream.parser import (
    DEFAULT_MAX_STANZA_DEPTH,
    DEFAULT_MAX_STANZA_SIZE,
    StanzaParser,
)

__all__ = ["RawStanzaParser"]

#: Top-level stanzas parsed shallow while raw capture is on.
_SHALLOW_NAMES = frozenset({"message", "presence"})


@implementer(IRawStanzaParser)
class RawStanzaParser(StanzaParser):
    """
    A L{StanzaParser} that can keep each top-level stanza's raw bytes.

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
    parsed again in full before it is dispatched. The depth limit holds on
    the shallow path too.

    @ivar captureRaw: whether to keep each stanza's raw bytes; it may be
        turned on at any time (see L{captureRawStanzas}) and applies from
        the next stanza whose bytes are all seen after that.
    @ivar lastElement: the top-level element being dispatched, while
        C{captureRaw} is set and its raw bytes are known, else L{None}.
    @ivar lastRaw: the raw bytes of C{lastElement}, else L{None}.
    @ivar lastShallow: whether C{lastElement} was parsed shallow.
    @ivar _chunks: the chunks fed since the current stanza started (or, between
        stanzas, since the start of what expat has not reported yet).
    @ivar _chunksStart: the absolute offset of the first of C{_chunks}.
    @ivar _stanzaStart: the absolute offset where the current stanza starts.
    @ivar _rawSafe: whether the stream header allows raw forwarding.
    @ivar _redeclared: whether the current stanza declared the content
        namespace itself.
    @ivar _shallow: whether the current stanza is being parsed shallow.
    @ivar _sawChild: whether the shallow stanza has a child element.
    @ivar _depth: the nesting level below a shallow stanza.
    """

    def __init__(
        self,
        maxStanzaSize: int = DEFAULT_MAX_STANZA_SIZE,
        maxDepth: int = DEFAULT_MAX_STANZA_DEPTH,
    ) -> None:
        """
        As L{StanzaParser.__init__}; raw capture starts off.
        """
        super().__init__(maxStanzaSize, maxDepth)
        self.captureRaw = False
        self.lastElement: domish.Element | None = None
        self.lastRaw: bytes | None = None
        self.lastShallow = False
        self._shallow = False
        self._sawChild = False
        self._depth = 0
        self._chunks: list[bytes] = []
        self._chunksStart = 0
        self._stanzaStart = 0
        self._rawSafe = False
        self._redeclared = False

    # IRawStanzaParser

    def captureRawStanzas(self) -> None:
        """
        Keep each stanza's raw bytes from now on (see C{captureRaw}).
        """
        self.captureRaw = True

    def rawBytesOf(self, element: domish.Element) -> bytes | None:
        """
        The bytes C{element} arrived as, if it is the top-level stanza being
        dispatched right now, raw capture is on and they can be forwarded
        unchanged; else L{None}. They are only valid if the element was not
        changed.
        """
        return self.lastRaw if self.lastElement is element else None

    def fullElement(self, element: domish.Element) -> domish.Element:
        """
        C{element} with everything it contains: the element itself, or, if
        it is the stanza being dispatched and was parsed shallow, a complete
        copy parsed from its raw bytes.
        """
        if self.lastElement is element and self.lastShallow and self.lastRaw is not None:
            return self.parseFull(self.lastRaw)
        return element

    def parseFull(self, data: bytes) -> domish.Element:
        """
        Parse the raw bytes of one stanza of this stream into a complete
        element, in the stream's content namespace.

        @param data: what L{lastRaw} held.
        """
        inner = StanzaParser(self.maxStanzaSize, self.maxDepth)
        got: list[domish.Element] = []
        inner.ElementEvent = got.append
        inner.parse(
            b"<stream:stream xmlns:stream='%s' xmlns=%s>"
            % (
                NS_STREAMS.encode(),
                quoteattr(self.contentNamespace or "").encode("utf-8"),
            )
        )
        inner.parse(data)
        return got[0]

    # Keeping the chunks

    def _feed(self, chunk: bytes) -> None:
        """
        Keep C{chunk} while raw capture is on, then parse it.
        """
        if not self.captureRaw:
            StanzaParser._feed(self, chunk)
            return
        chunks = self._chunks
        if not chunks:
            self._chunksStart = self._fed
        chunks.append(chunk)
        StanzaParser._feed(self, chunk)
        self._trimChunks()

    def _trimChunks(self) -> None:
        """
        Forget the fed chunks that no stanza still being parsed needs.
        """
        chunks = self._chunks
        # Between stanzas, keep what expat has not turned into events yet:
        # it may be the start of the next stanza's tag.
        start = self._segmentStart if self._current is None else self._stanzaStart
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
            # The common case, with _locateEndTag and _throughEndTag inline
            # (once per routed stanza).
            data = chunks[0]
            at = self.parser.CurrentByteIndex - self._chunksStart
            if at <= self._stanzaStart - self._chunksStart or data[at : at + 2] != b"</":
                return None
        else:
            located = self._locateEndTag()
            if located is None:
                return None
            data, at = located
        # Without known content, what precedes an end tag is the start
        # tag's '>' (never after '/') or text, which may end in '/>' too:
        # that is left alone.
        if not hasContent and data[at - 2 : at] == b"/>":
            return None
        return self._throughEndTag(data, at)

    def _locateEndTag(self) -> tuple[bytes, int] | None:
        """
        The kept bytes of the current stanza (from the start of the first
        kept chunk) and the offset in them where its end tag starts;
        L{None} if the stanza's start was not kept, or no end tag starts
        where expat reports the end event.

        For an end tag expat reports where its '</' starts; for an
        empty-element tag, where the tag ends, which may also be followed
        by '</' (of the stream's end tag).
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
        at = endTag - self._chunksStart
        if data[at : at + 2] != b"</":
            return None
        return data, at

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
        located = self._locateEndTag()
        if located is None:
            return None
        data, at = located
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

    # expat's handlers

    def _handleStartDocument(self, name: str, attrs: dict[str, str]) -> None:
        """
        Note whether the header declares prefixes other than C{stream}:
        stanzas could use them, so their bytes would not mean the same in
        another stream.
        """
        self._rawSafe = all(prefix == "stream" for prefix in self._prefixes)
        StanzaParser._handleStartDocument(self, name, attrs)

    def _handleStartElement(self, name: str, attrs: dict[str, str]) -> None:
        """
        As L{StanzaParser._handleStartElement}; a top-level message or presence
        whose bytes are kept is parsed shallow; inside a shallow stanza,
        count the element and build nothing.
        """
        if self._shallow:
            depth = self._depth = self._depth + 1
            if depth >= self.maxDepth:
                # The stanza is level 1, so this element is at depth + 1.
                raise self._tooDeep()
            self._sawChild = True
            # Prefixes it declared would otherwise go to the next element.
            if self._prefixes:
                self._prefixes = {}
            return
        current = self._current
        if current is not None:
            level = self._level + 1
            if level > self.maxDepth:
                raise self._tooDeep()
            self._level = level
            self._current = current.addChild(self._newElement(name, attrs))
            return
        if not self._started:
            self._handleStartDocument(name, attrs)
            return
        # A top-level stanza (the routing hot path).
        self._level = 1
        start = self._segmentStart = self._stanzaStart = self.parser.CurrentByteIndex
        element = self._current = self._newElement(name, attrs)
        if (
            self.captureRaw
            and self._rawSafe
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

    def _handleEndElement(self, name: str) -> None:
        """
        As L{StanzaParser._handleEndElement}; with C{captureRaw}, make a
        top-level stanza's raw bytes known while it is dispatched.
        """
        if self._shallow:
            if self._depth:
                # An element inside a shallow stanza.
                self._depth -= 1
                return
            # The shallow stanza's own end.
            self.parser.CharacterDataHandler = self._handleText
        current = self._current
        if current is None:
            self.DocumentEndEvent()
            return
        self._level -= 1
        parent = current.parent
        if parent is not None:
            self._current = parent
            return
        if self.captureRaw or self._shallow:
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
                    current = self.parseFull(full)
        self._current = None
        try:
            self.ElementEvent(current)
        finally:
            self.lastElement = self.lastRaw = None
            self.lastShallow = False
            self._redeclared = False
        self._segmentStart = self.parser.CurrentByteIndex

    def _handleStartNamespace(self, prefix: str | None, uri: str | None) -> None:
        """
        Note a stanza that declares the stream's content namespace itself:
        its raw bytes would not move to another content namespace.
        """
        StanzaParser._handleStartNamespace(self, prefix, uri)
        if self._started and uri == self._contentNamespace:
            self._redeclared = True
