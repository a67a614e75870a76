# -*- test-case-name: tests.test_xtls_wire,tests.test_xtls_tunnel -*-
"""
The XML inside a tunnel: stanzas one after the other, with no stream header
(one is accepted if the peer sends it), parsed with the restricted parser of
RFC 6120 section 11 and a size limit per stanza.

Pure logic: C{domish} and C{jid} as data, nothing from C{twisted.internet}.
"""

from __future__ import annotations

from twisted.words.protocols.jabber.jid import JID, InvalidFormat
from twisted.words.xish import domish

from xmppcomp.ns import NS_CLIENT, NS_STREAMS
from xmppcomp.stream.parser import StanzaParser, StanzaTooLarge, conditionForParserError
from xmppcomp.stream.xmlstream import checkSerializable
from xmppcomp.xtls._exceptions import XTLSStanzaError

__all__ = ["InnerStream", "serializeStanza", "stampInner"]

#: The header the receiver imagines in front of a tunnel's content.
_IMPLIED_HEADER = (
    f"<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAMS}'>"
).encode("ascii")

#: How many leading bytes decide whether the peer sent a header.
_SNIFF = len(b"<stream:")


def serializeStanza(stanza: domish.Element) -> bytes:
    """
    Serialise a stanza for the tunnel: the content namespace is left out
    (the receiver reads C{jabber:client}), other namespaces kept.
    """
    return checkSerializable(stanza.toXml(defaultUri=stanza.uri or ""), stanza).encode("utf-8")


class InnerStream:
    """
    Parse the decrypted content of a tunnel into stanzas.

    @ivar _parser: the restricted parser, created once the first bytes tell
        whether the peer sent a stream header.
    @ivar _head: the first bytes, kept until that is known.
    @ivar _stanzas: the stanzas completed by the current L{feed}.
    """

    def __init__(self, maxStanzaSize: int) -> None:
        """
        @param maxStanzaSize: the limit on each stanza, in bytes.
        """
        self._maxStanzaSize = maxStanzaSize
        self._parser: StanzaParser | None = None
        self._head = b""
        self._stanzas: list[domish.Element] = []

    def _makeParser(self, peerHeader: bool) -> StanzaParser:
        parser = StanzaParser(self._maxStanzaSize)
        parser.DocumentStartEvent = lambda root: None
        parser.ElementEvent = self._stanzas.append
        parser.DocumentEndEvent = lambda: None
        if not peerHeader:
            parser.parse(_IMPLIED_HEADER)
        return parser

    def feed(self, data: bytes) -> list[domish.Element]:
        """
        Parse decrypted bytes.

        @return: the stanzas they completed, in order.
        @raise XTLSStanzaError: C{bad-request} for XML that is not
            well-formed or not allowed (RFC 6120 section 11),
            C{policy-violation} for a stanza over the limit.
        """
        if self._parser is None:
            self._head += data
            stripped = self._head.lstrip()
            if len(stripped) < _SNIFF and (
                b"<?xml".startswith(stripped) or b"<stream:".startswith(stripped)
            ):
                # Could still become a header: wait for more.
                if len(self._head) > self._maxStanzaSize:
                    raise XTLSStanzaError("policy-violation", "endless white space")
                return []
            peerHeader = stripped.startswith((b"<?xml", b"<stream:"))
            data, self._head = self._head, b""
            try:
                self._parser = self._makeParser(peerHeader)
            except domish.ParserError as e:  # pragma: no cover - constant header
                raise XTLSStanzaError("internal-server-error", str(e)) from e
        try:
            self._parser.parse(data)
        except domish.ParserError as e:
            condition = conditionForParserError(e)
            if isinstance(e, StanzaTooLarge):
                raise XTLSStanzaError("policy-violation", str(e)) from e
            raise XTLSStanzaError("bad-request", f"{condition}: {e}") from e
        stanzas = list(self._stanzas)
        del self._stanzas[:]
        return stanzas


def stampInner(
    stanza: domish.Element, local: JID, peer: JID
) -> domish.Element | None:
    """
    Prepare a stanza that arrived through a tunnel for the handlers: fill in
    a missing C{to} (the local JID) and C{from} (the peer's), and mark it
    with C{xtlsEncrypted = True}, C{xtlsPeer} (the tunnel's peer JID) and
    C{xtlsLocal} (its local JID: the tunnel is the handler's
    C{tunnelFor(xtlsLocal, xtlsPeer)}) and C{xtlsId} (the C{id} the peer
    gave it, or C{None}: the handler may give an IQ request a private
    C{id}), attributes of the Python object, never on the wire.

    A stanza claiming to come from somebody else than the tunnel's peer
    (another bare JID) is refused: it would borrow the tunnel's
    authentication.

    @return: the stanza, or C{None} when it is refused.
    """
    sender = stanza.getAttribute("from")
    if sender is None:
        stanza["from"] = peer.full()
    else:
        try:
            claimed = JID(sender)
        except (InvalidFormat, UnicodeError, ValueError):
            return None
        if claimed.userhost() != peer.userhost():
            return None
    if stanza.getAttribute("to") is None:
        stanza["to"] = local.full()
    stanza.xtlsEncrypted = True  # type: ignore[attr-defined]
    stanza.xtlsPeer = peer  # type: ignore[attr-defined]
    stanza.xtlsLocal = local  # type: ignore[attr-defined]
    stanza.xtlsId = stanza.getAttribute("id")  # type: ignore[attr-defined]
    return stanza
