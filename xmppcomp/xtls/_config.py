# -*- test-case-name: tests.test_config -*-
"""
The configuration values of the XTLS endpoint of C{twistd xmppcomp} (the
C{[xtls]} table of C{docs/examples/component.toml}).
"""

from __future__ import annotations

import attrs

from xmppcomp.configvalues import KEY_FIX, checked


@attrs.frozen
class XTLSLimits:
    """
    Limits of the XTLS endpoint (the defaults of L{xmppcomp.xtls.XTLSConfiguration}).

    @ivar maxTunnels: the most tunnels at once.
    @ivar maxTunnelsPerPeer: the most tunnels with one peer (bare JID).
    @ivar window: the most unacknowledged data IQs per tunnel.
    @ivar chunkSize: the most TLS bytes in one data IQ.
    @ivar maxStanzaSize: bytes of one stanza inside a tunnel.
    @ivar maxPendingRequests: IQ requests through one tunnel waiting for
        their reply (which goes back through the tunnel).
    """

    maxTunnels: int = 64
    maxTunnelsPerPeer: int = 4
    window: int = 8
    chunkSize: int = 32 * 1024
    maxStanzaSize: int = 256 * 1024
    maxPendingRequests: int = 32


@attrs.frozen
class XTLSConfig:
    """
    The XTLS endpoint of C{twistd xmppcomp} (the C{[xtls]} table).

    Without C{certificate}: with the embedded router, an in-memory authority issues one at startup
    (L{xmppcomp.embedded.EmbeddedRouter.issueXTLSCertificate}); with a server, the endpoint answers
    C{service-unavailable} (and says so in the log).

    @ivar enabled: whether the endpoint accepts and opens tunnels.
    @ivar certificate: path of the component's PEM certificate for XTLS.
    @ivar key: path of its private key (C{None}: in the certificate file).
    @ivar trust: path of a PEM bundle of the authorities that issue the peers' certificates.
    @ivar pins: bare JIDs (or domains) to the SHA-256 fingerprints of the
        certificates they may present (C{[xtls.pins]}), normalised as the
        logs print them; see L{xmppcomp.xtls.XTLSConfiguration.pins}.
    @ivar limits: the limits.
    """

    enabled: bool = True
    certificate: str | None = attrs.field(default=None, metadata=checked(
        "file", "xtls.pem", "give the component's PEM certificate for XTLS"))
    key: str | None = attrs.field(default=None, metadata=checked("file", "xtls.key", KEY_FIX))
    trust: str | None = attrs.field(default=None, metadata=checked(
        "file", "xtls-ca.pem", "give a PEM bundle of the authorities that issue the peers' certificates,"))
    pins: dict[str, tuple[str, ...]] = attrs.field(factory=dict, metadata=checked("pins"))
    limits: XTLSLimits = attrs.field(factory=XTLSLimits)
