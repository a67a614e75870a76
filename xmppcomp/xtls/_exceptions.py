# -*- test-case-name: tests.test_xtls_wire -*-
"""
Exceptions of the XTLS endpoint.

Pure: nothing here imports from C{twisted.internet}; the IQ handler turns
L{XTLSStanzaError} into a L{twisted.words.protocols.jabber.error.StanzaError}
answer.
"""

from __future__ import annotations

from xmppcomp.errors import ConditionError

__all__ = [
    "CertificateMismatch",
    "HandshakeFailed",
    "PeerUnavailable",
    "PinMismatch",
    "TunnelBusy",
    "TunnelClosed",
    "TunnelReplaced",
    "XTLSError",
    "XTLSStanzaError",
]


class XTLSError(Exception):
    """
    Base class of the XTLS errors.
    """


class XTLSStanzaError(XTLSError, ConditionError):
    """
    A request cannot be accepted; the IQ is answered with this RFC 6120
    stanza error condition (type C{cancel}, or C{modify} for
    C{bad-request}).

    @ivar condition: the stanza error condition, such as C{item-not-found}.
    @ivar text: an optional human-readable explanation.
    """


class HandshakeFailed(XTLSError):
    """
    The TLS handshake, or TLS processing later on, failed. The message has
    OpenSSL's reason.
    """


class CertificateMismatch(HandshakeFailed):
    """
    The peer's certificate is not trusted, or does not carry the peer's JID.

    @ivar peer: the JID the certificate was checked against, as a string.
    """

    def __init__(self, peer: str, problem: str) -> None:
        super().__init__(f"certificate of {peer}: {problem}")
        self.peer = peer
        self.problem = problem


class PinMismatch(CertificateMismatch):
    """
    The peer has pinned fingerprints and its certificate is not one of
    them (refused even if an authority would vouch for it).

    @ivar presented: the SHA-256 digest of the certificate presented.
    @ivar pinned: the pinned SHA-256 digests.
    """

    def __init__(self, peer: str, problem: str, presented: bytes, pinned: tuple[bytes, ...]) -> None:
        super().__init__(peer, problem)
        self.presented = presented
        self.pinned = pinned


class TunnelClosed(XTLSError):
    """
    The tunnel is closed (by either end), or not yet open, so nothing can be
    sent over it.
    """


class TunnelReplaced(TunnelClosed):
    """
    The peer started a new tunnel for the same pair of JIDs, which replaced
    this one.
    """


class PeerUnavailable(TunnelClosed):
    """
    The peer went away: it sent C{unavailable} presence, the stream to the
    server was lost, or a data IQ was not acknowledged in time.
    """


class TunnelBusy(XTLSError):
    """
    More data is queued for sending than the configured limit allows; wait
    for L{xmppcomp.xtls.Tunnel.whenDrained}.
    """
