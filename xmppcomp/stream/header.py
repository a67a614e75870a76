# -*- test-case-name: tests.test_stream_xmlstream -*-
"""
Received stream headers, checked (RFC 6120 sections 4.7 and 4.9.3), and
stream ids: pure functions the negotiating machines use.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection

from attrs import frozen
from twisted.words.protocols.jabber import error, jid
from twisted.words.xish import domish

from xmppcomp.jids import domainOrNone, plainDomain
from xmppcomp.ns import NS_STREAMS, NS_XML

__all__ = [
    "StreamHeader",
    "checkHost",
    "checkStreamRoot",
    "newStreamId",
    "parseStreamHeader",
]

#: RFC 7622 section 3: a localpart and a resourcepart are at most 1023
#: bytes each (the domainpart's rule is L{xmppcomp.jids.normalizeDomain}).
_MAX_JID_PART = 1023

_VERSION = re.compile(r"\A([0-9]+)\.([0-9]+)\Z")


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

    The domainpart follows the package's one rule for names
    (L{xmppcomp.jids.normalizeDomain}: lowercase, IDNA ASCII form, no
    trailing dot); a localpart and a resourcepart are prepared by
    Twisted's stringprep, which is lenient (it accepts an empty localpart
    or resourcepart and unbounded lengths), so this adds the checks of
    RFC 7622. L{jid.internJID} is not used: it would cache every string a
    peer sends.

    @return: the normalised JID string, or L{None} if C{value} is not a JID.
    """
    domain = plainDomain(value)
    if domain is not None:
        # The usual stream header address: a plain ASCII domain, no
        # stringprep and no IDNA.
        return domain
    bare, slash, resource = value.partition("/")
    if slash and not resource:
        return None
    local, at, host = bare.partition("@")
    if not at:
        local, host = "", local
    elif not local:
        return None
    domain = domainOrNone(host)
    if domain is None:
        return None
    if not local and not resource:
        return domain
    try:
        # The domainpart is checked already: a placeholder stands for it.
        parsed = jid.JID(tuple=(local or None, "x", resource or None))
    except Exception:
        return None
    for part in (parsed.user, parsed.resource):
        if part is not None and len(part.encode("utf-8")) > _MAX_JID_PART:
            return None
    full = domain
    if parsed.user:
        full = f"{parsed.user}@{full}"
    if parsed.resource:
        full = f"{full}/{parsed.resource}"
    return full


def checkStreamRoot(root: domish.Element, expectedNamespace: str) -> None:
    """
    Check the name and namespaces of a received stream header.

    @param root: the root element, as passed to C{onDocumentStart}.
    @param expectedNamespace: the content namespace this end speaks, like
        C{jabber:client}.
    @raise error.StreamError: C{invalid-namespace} if the root is not
        C{<stream>} in C{http://etherx.jabber.org/streams} or the default
        namespace is not C{expectedNamespace}; C{bad-namespace-prefix} if the
        streams namespace is not bound to the C{stream} prefix.
    """
    if root.uri != NS_STREAMS or root.name != "stream":
        raise error.StreamError("invalid-namespace")
    if (root.localPrefixes or {}).get("stream") != NS_STREAMS:
        raise error.StreamError("bad-namespace-prefix")
    if root.defaultUri != expectedNamespace:
        raise error.StreamError("invalid-namespace")


def parseStreamHeader(root: domish.Element, expectedNamespace: str) -> StreamHeader:
    """
    Check a received stream header (RFC 6120 section 4.7 and 4.9.3).

    @param root: the root element, as passed to C{onDocumentStart}.
    @param expectedNamespace: as in L{checkStreamRoot}.
    @return: the header's attributes.
    @raise error.StreamError: what L{checkStreamRoot} raises;
        C{unsupported-version} if C{version} is missing or its major number
        is not 1; C{bad-format} if C{version} is not two dotted numbers;
        C{host-unknown} if C{to} is not a JID; C{invalid-from} if C{from} is
        not a JID.
    """
    checkStreamRoot(root, expectedNamespace)
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
