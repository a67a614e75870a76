"""
Helpers shared by the stream tests: reading what a stream wrote, one
stream document at a time. (The fake TLS transport is
L{xmppcomp.testing.FakeTLSTransport}.)
"""

from __future__ import annotations

from twisted.internet.testing import StringTransport
from twisted.words.xish import domish

from xmppcomp.ns import NS_STREAMS, NS_XMPP_STREAMS


class PeerReader:
    """
    Parses the bytes one end wrote, as the other end would: a new
    C{<stream:stream>} header starts a new document (after STARTTLS and
    SASL restarts).

    @ivar headers: every stream header read, in order.
    @ivar elements: every first-level element read, in order.
    @ivar ended: whether the closing tag was read.
    """

    def __init__(self) -> None:
        self.headers: list[domish.Element] = []
        self.elements: list[domish.Element] = []
        self.ended = False
        self._stream: object | None = None

    def feed(self, data: bytes) -> list[domish.Element]:
        """
        Parse C{data}, returning the first-level elements it held.
        """
        before = len(self.elements)
        while data:
            start = data.find(b"<stream:stream")
            if start == 0 or self._stream is None:
                self._newDocument()
                if start > 0:
                    data = data[start:]
            nextStart = data.find(b"<stream:stream", 1)
            chunk, data = (data, b"") if nextStart == -1 else (data[:nextStart], data[nextStart:])
            self._stream.parse(chunk)  # type: ignore[attr-defined]
            if nextStart != -1:
                self._stream = None
        return self.elements[before:]

    def _newDocument(self) -> None:
        stream = domish.elementStream()
        stream.DocumentStartEvent = self.headers.append
        stream.ElementEvent = self.elements.append
        stream.DocumentEndEvent = self._end
        self._stream = stream

    def _end(self) -> None:
        self.ended = True


def read(transport: StringTransport, reader: PeerReader) -> list[domish.Element]:
    """
    Read and clear what was written to C{transport}.
    """
    data = transport.value()
    transport.clear()
    return reader.feed(data)


def streamErrorCondition(element: domish.Element) -> str | None:
    """
    The condition of a C{<stream:error/>}, or C{None} if C{element} is
    not one.
    """
    if (element.uri, element.name) != (NS_STREAMS, "error"):
        return None
    for child in element.elements():
        if child.uri == NS_XMPP_STREAMS and child.name != "text":
            return child.name
    return None


def header(
    to: str | None = "example.net",
    fromHost: str | None = "comp.example.net",
    namespace: str = "jabber:client",
    version: str | None = "1.0",
) -> bytes:
    """
    An initiating stream header.
    """
    attrs = [
        "xmlns='%s'" % (namespace,),
        "xmlns:stream='%s'" % (NS_STREAMS,),
    ]
    if to is not None:
        attrs.append("to='%s'" % (to,))
    if fromHost is not None:
        attrs.append("from='%s'" % (fromHost,))
    if version is not None:
        attrs.append("version='%s'" % (version,))
    return ("<?xml version='1.0'?><stream:stream %s>" % " ".join(attrs)).encode()


def parse(xml: str) -> domish.Element:
    """
    Parse one element, as a C{jabber:client} stream delivers it (a child of
    the root).
    """
    parsed: list[domish.Element] = []
    stream = domish.elementStream()
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = parsed.append
    stream.DocumentEndEvent = lambda: None
    stream.parse(f"<stream xmlns='jabber:client'>{xml}".encode("utf-8"))
    [element] = parsed
    return element
