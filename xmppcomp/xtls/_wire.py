# -*- test-case-name: tests.test_xtls_wire -*-
"""
The XTLS payloads as values: parsing and rendering the children of the IQs
of C{urn:xmpp:tmp:xtls}, and the priority rule for simultaneous starts.

Pure logic: C{domish} and C{jid} are used as data only, nothing here imports
from C{twisted.internet}.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import ClassVar, Self, Union

import attrs
from twisted.words.xish import domish

from xmppcomp.ns import NS_XTLS
from xmppcomp.xtls._exceptions import XTLSStanzaError

__all__ = [
    "METHOD_X509",
    "NS_C2CTLS",
    "NS_PUBKEY",
    "Close",
    "Closed",
    "Data",
    "Offer",
    "Proceed",
    "Start",
    "hasPriority",
    "parseRequest",
]

#: XEP-0250 offers.
NS_C2CTLS = "urn:xmpp:tmp:c2ctls"

#: XEP-0189 key information inside an offer.
NS_PUBKEY = "urn:xmpp:tmp:pubkey"

#: The only TLS method this endpoint implements.
METHOD_X509 = "x509"


def _strTuple(items: Iterable[str]) -> tuple[str, ...]:
    """
    The converter of L{Offer}'s fields (a typed C{tuple}, which mypy's attrs
    plugin cannot infer from the generic builtin).
    """
    return tuple(items)


@attrs.frozen
class Offer:
    """
    A XEP-0250 offer: the key information the sender can be identified by
    and the other methods it supports.

    @ivar keyNames: the C{<name/>} of each C{<keyinfo/>}; for X.509, the
        certificate hash (see L{xmppcomp.xtls.certificateHash}).
    @ivar methods: the names of the other children, such as C{srp}.
    """

    keyNames: tuple[str, ...] = attrs.field(converter=_strTuple, default=())
    methods: tuple[str, ...] = attrs.field(converter=_strTuple, default=())

    def toElement(self) -> domish.Element:
        """
        Render as C{<offer xmlns='urn:xmpp:tmp:c2ctls'/>}.
        """
        offer = domish.Element((NS_C2CTLS, "offer"))
        for name in self.keyNames:
            keyInfo = offer.addElement((NS_PUBKEY, "keyinfo"))
            keyInfo.addElement("name", content=name)
        for method in self.methods:
            offer.addElement(method)
        return offer

    @classmethod
    def fromElement(cls, element: domish.Element) -> Offer:
        """
        Parse an C{<offer/>}; unknown content is ignored.
        """
        keyNames = []
        methods = []
        for child in element.elements():
            if child.name == "keyinfo" and child.uri == NS_PUBKEY:
                for name in child.elements(NS_PUBKEY, "name"):
                    keyNames.append(str(name).strip())
            elif child.uri == NS_C2CTLS:
                methods.append(child.name)
        return cls(keyNames, methods)


@attrs.frozen
class _Offering:
    """
    An XTLS element whose only content is an optional XEP-0250 offer.

    @cvar _name: the element's name.
    @ivar offer: the sender's offer, if it sent one.
    """

    _name: ClassVar[str]

    offer: Offer | None = None

    def toElement(self) -> domish.Element:
        """
        Render as C{<NAME xmlns='urn:xmpp:tmp:xtls'/>}, with the offer.
        """
        element = domish.Element((NS_XTLS, self._name))
        if self.offer is not None:
            element.addChild(self.offer.toElement())
        return element

    @classmethod
    def fromElement(cls, element: domish.Element) -> Self:
        """
        Parse the element, and the first offer in it.
        """
        for child in element.elements(NS_C2CTLS, "offer"):
            return cls(Offer.fromElement(child))
        return cls()


@attrs.frozen
class Start(_Offering):
    """
    C{<start/>}: the initiator asks for a tunnel.

    @ivar offer: the initiator's XEP-0250 offer, if it sent one.
    """

    _name = "start"


@attrs.frozen
class Proceed(_Offering):
    """
    C{<proceed/>}: the responder agrees, in the result of a start.

    @ivar offer: the responder's XEP-0250 offer, if any.
    """

    _name = "proceed"


@attrs.frozen
class Data:
    """
    C{<data/>}: TLS bytes.

    @ivar payload: the bytes (base64 on the wire).
    @ivar method: the TLS method, sent on the first data of a tunnel only.
    """

    payload: bytes
    method: str | None = None

    def toElement(self) -> domish.Element:
        """
        Render as C{<data xmlns='urn:xmpp:tmp:xtls'>BASE64</data>}.
        """
        element = domish.Element((NS_XTLS, "data"))
        if self.method is not None:
            element["method"] = self.method
        # Base64 has nothing to escape: added as raw XML, the text is
        # written as it is instead of scanned for &, <, > and quotes (a
        # data IQ carries up to chunkSize * 4 / 3 characters).
        element.addRawXml(base64.b64encode(self.payload).decode("ascii"))
        return element

    @classmethod
    def fromElement(cls, element: domish.Element) -> Data:
        """
        Parse a C{<data/>}. White space in the base64 text is ignored.

        @raise XTLSStanzaError: C{bad-request} when the text is not base64.
        """
        text = str(element)
        try:
            try:
                # Most senders add no white space: decode the text as it is.
                payload = base64.b64decode(text, validate=True)
            except binascii.Error:
                payload = base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError) as e:
            raise XTLSStanzaError("bad-request", "the data is not base64") from e
        return cls(payload, element.getAttribute("method"))


@attrs.frozen
class _Empty:
    """
    An XTLS element without content.

    @cvar _name: the element's name.
    """

    _name: ClassVar[str]

    def toElement(self) -> domish.Element:
        """
        Render as C{<NAME xmlns='urn:xmpp:tmp:xtls'/>}.
        """
        return domish.Element((NS_XTLS, self._name))

    @classmethod
    def fromElement(cls, element: domish.Element) -> Self:
        """
        Parse the element.
        """
        return cls()


@attrs.frozen
class Close(_Empty):
    """
    C{<close/>}: either end closes the tunnel.
    """

    _name = "close"


@attrs.frozen
class Closed(_Empty):
    """
    C{<closed/>}: the answer to a close.
    """

    _name = "closed"


#: What an IQ set of the XTLS namespace can carry.
Request = Union[Start, Data, Close]

_REQUESTS: dict[str, type[Start] | type[Data] | type[Close]] = {
    "start": Start,
    "data": Data,
    "close": Close,
}


def parseRequest(iq: domish.Element) -> Request:
    """
    Parse the XTLS child of an IQ set.

    @raise XTLSStanzaError: C{bad-request} when there is no such child, or
        its content is invalid.
    """
    for child in iq.elements(NS_XTLS):
        kind = _REQUESTS.get(child.name)
        if kind is not None:
            return kind.fromElement(child)
    raise XTLSStanzaError("bad-request", "no XTLS request in the IQ")


def hasPriority(own: str, other: str) -> bool:
    """
    Whether our start wins over the other party's when both started at the
    same time: the start of the party whose JID sorts first in C{i;octet}
    collation (RFC 4790 section 9.3) has priority.

    The full JIDs are compared as they appear on the wire (the C{to} and
    C{from} of the received start), byte by byte in UTF-8.

    @param own: our full JID.
    @param other: the other party's full JID.
    """
    return own.encode("utf-8") < other.encode("utf-8")
