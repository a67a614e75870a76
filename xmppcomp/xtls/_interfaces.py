# -*- test-case-name: tests.test_xtls_handler -*-
"""
The seam of the XTLS endpoint: who hears about tunnels opening and closing.
"""

from __future__ import annotations

from zope.interface import Interface

__all__ = ["ITunnelObserver"]


class ITunnelObserver(Interface):
    """
    Told when tunnels open and close; register with
    L{xmppcomp.xtls.XTLSHandler.addObserver}.
    """

    def tunnelOpened(tunnel: object) -> None:
        """
        A tunnel (a L{xmppcomp.xtls.Tunnel}) completed its handshake, as
        initiator or responder.
        """

    def tunnelClosed(tunnel: object, reason: Exception | None) -> None:
        """
        A tunnel was closed and released: C{reason} is C{None} for an
        orderly close, otherwise the error that closed it (a
        L{twisted.words.protocols.jabber.error.StanzaError} the peer
        answered, an L{xmppcomp.xtls.HandshakeFailed}, a
        L{xmppcomp.xtls.PeerUnavailable}, ...).
        """
