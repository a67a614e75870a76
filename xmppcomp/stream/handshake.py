# -*- test-case-name: tests.test_stream_accept -*-
"""
The pure parts of the XEP-0114 component protocol (C{jabber:component:accept}):
the handshake digest and the check of an incoming stream header.

Nothing here touches a transport; L{xmppcomp.stream.acceptreceiving} wires
these functions to a stream.
"""

from __future__ import annotations

import hmac

from twisted.words.protocols.jabber import error
from twisted.words.protocols.jabber.xmlstream import hashPassword
from twisted.words.xish import domish

from xmppcomp.jids import domainOrNone
from xmppcomp.ns import NS_COMPONENT_ACCEPT
from xmppcomp.stream.header import checkStreamRoot

__all__ = [
    "checkAcceptHeader",
    "checkHandshake",
    "handshakeDigest",
    "normaliseHostname",
]

def handshakeDigest(streamId: str, secret: str) -> str:
    """
    The handshake a component sends (XEP-0114 section 3): the lowercase hex
    SHA-1 of the stream id followed by the shared secret, UTF-8 encoded.

    @param streamId: the C{id} of the receiving side's stream header.
    @param secret: the shared secret.
    @return: 40 lowercase hex digits.
    """
    digest: str = hashPassword(streamId, secret)
    return digest.lower()


def checkHandshake(streamId: str, secret: str, received: str) -> bool:
    """
    Whether a received handshake proves knowledge of C{secret}.

    Surrounding whitespace and the case of the hex digits are ignored. The
    comparison takes the same time wherever the digests differ.

    @param streamId: the C{id} this side sent in its stream header.
    @param secret: the shared secret for the component's hostname.
    @param received: the character data of the component's C{<handshake/>}.
    """
    expected = handshakeDigest(streamId, secret).encode("ascii")
    offered = received.strip().lower().encode("utf-8")
    return hmac.compare_digest(expected, offered)


def normaliseHostname(value: str) -> str | None:
    """
    Normalise a component hostname with the package's one rule for names,
    L{xmppcomp.jids.normalizeDomain}: lowercase, IDNA ASCII form, without a
    trailing dot (RFC 7622 section 3.2).

    @param value: the C{to} attribute of a stream header.
    @return: the normalised hostname, or L{None} if C{value} is not a
        domain.
    """
    return domainOrNone(value)


def checkAcceptHeader(root: domish.Element) -> str:
    """
    Check the stream header a component sends (XEP-0114 section 3).

    A C{version} attribute is not required: XEP-0114 streams have none, or
    C{0.0}. Whatever the component sent, the reply carries no version and
    no features.

    @param root: the root element, as passed to C{streamStarted}.
    @return: the normalised hostname the component asks to be (the C{to}
        attribute).
    @raise error.StreamError: C{invalid-namespace} if the root is not
        C{<stream>} in C{http://etherx.jabber.org/streams} or the default
        namespace is not C{jabber:component:accept};
        C{bad-namespace-prefix} if the streams namespace is not bound to
        the C{stream} prefix; C{host-unknown} if C{to} is missing or not a
        domain.
    """
    checkStreamRoot(root, NS_COMPONENT_ACCEPT)
    to = root.getAttribute("to")
    hostname = None if to is None else normaliseHostname(to)
    if hostname is None:
        raise error.StreamError("host-unknown")
    return hostname
