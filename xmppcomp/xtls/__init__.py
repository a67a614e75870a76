# -*- test-case-name: tests.test_xtls_handler -*-
"""
XTLS (urn:xmpp:tmp:xtls): end-to-end TLS tunnels between two XMPP entities,
the TLS records carried base64 in IQ C{<data/>} elements.

Layers, as in L{twisted.protocols.haproxy}: pure logic that imports nothing
from C{twisted.internet} (C{_wire} values, C{_identity} certificate checks,
C{_engine} TLS over a memory BIO, C{_inner} the stanza stream inside,
C{_tunnel} the Automat state machine), and the thin Twisted adapter
C{_handler} (L{XTLSHandler}, L{Tunnel}, L{XTLSConfiguration})::

    xtls = XTLSHandler(XTLSConfiguration(certificate=cert, trust=[ca]))
    xtls.setHandlerParent(component)   # an xmppcomp.Component
    tunnel = await xtls.open(JID("me.example"), JID("peer.example"))
    tunnel.send(message)
    await tunnel.close()

On a L{Component<xmppcomp.component.Component>} (or any parent providing
L{IStanzaFilters<xmppcomp.interfaces.IStanzaFilters>}), the replies the
handlers send to IQ requests that came through a tunnel go back through it.
"""

from xmppcomp.xtls._exceptions import (
    CertificateMismatch,
    HandshakeFailed,
    PeerUnavailable,
    PinMismatch,
    TunnelBusy,
    TunnelClosed,
    TunnelReplaced,
    XTLSError,
    XTLSStanzaError,
)
from xmppcomp.xtls._config import XTLSConfig, XTLSLimits
from xmppcomp.xtls._handler import Tunnel, XTLSConfiguration, XTLSHandler
from xmppcomp.xtls._identity import (
    certificateHash,
    checkPeerCertificate,
    parseFingerprint,
    pinKey,
    xmppAddresses,
)
from xmppcomp.xtls._interfaces import ITunnelObserver
from xmppcomp.xtls._wire import Close, Closed, Data, Offer, Proceed, Start

__all__ = [
    "CertificateMismatch",
    "Close",
    "Closed",
    "Data",
    "HandshakeFailed",
    "ITunnelObserver",
    "Offer",
    "PeerUnavailable",
    "PinMismatch",
    "Proceed",
    "Start",
    "Tunnel",
    "TunnelBusy",
    "TunnelClosed",
    "TunnelReplaced",
    "XTLSConfig",
    "XTLSConfiguration",
    "XTLSLimits",
    "XTLSError",
    "XTLSHandler",
    "XTLSStanzaError",
    "certificateHash",
    "checkPeerCertificate",
    "parseFingerprint",
    "pinKey",
    "xmppAddresses",
]
