# -*- test-case-name: tests.test_config -*-
"""
The router's configuration values (C{twistd xmppcomp-router}); see
C{docs/examples/router.toml} for their TOML keys and
L{xmppcomp.config.loadRouterConfig} for loading them.
"""

from __future__ import annotations

from typing import Mapping

import attrs

from xmppcomp.configvalues import SecretRef, strTuple

#: Default listen endpoints: loopback only.
DEFAULT_ROUTER_LISTEN = ("tcp:5348:interface=127.0.0.1",)
DEFAULT_ACCEPT_LISTEN = ("tcp:5347:interface=127.0.0.1",)


@attrs.frozen
class RouterLimits:
    """
    Limits of the router, each explicit.

    @ivar maxSessions: concurrent component sessions (XEP-0225 and XEP-0114
        together) that completed negotiation; more are refused with
        C{resource-constraint}. Connections still negotiating count
        towards C{maxNegotiating} instead.
    @ivar maxNamesPerSession: hostnames one session may bind
        (C{resource-constraint} beyond).
    @ivar maxStanzasPerSecond: stanzas per second one session may send,
        averaged over a one-second bucket; beyond, the stream ends with
        C{policy-violation}.
    @ivar maxStanzaSize: bytes of one stanza (C{policy-violation} beyond).
    @ivar negotiationTimeout: seconds to complete stream negotiation.
    @ivar maxAuthAttempts: failed SASL attempts before the stream closes.
    @ivar closeTimeout: seconds to wait for a peer's closing tag.
    @ivar maxStanzaDepth: levels elements may nest below the stream root
        (a stanza is level 1); deeper is C{policy-violation}.
    @ivar maxBufferedBytes: bytes the router queues to one session while
        its transport is paused (the peer does not read), its own answers
        and bounces included; stanzas beyond are bounced with
        C{resource-constraint}, errors, IQ results and the router's answers
        beyond are counted and logged, not written.
    @ivar maxBouncePayload: bytes of an undeliverable stanza that its
        bounce echoes: a stanza up to this size comes back whole inside
        its error; a larger one only as its addressing, id and type with
        the error (RFC 6120 section 8.3.1 allows either).
    @ivar idleTimeout: seconds without data from a negotiated session
        before the router pings it (XEP-0199).
    @ivar pingTimeout: seconds to wait for any data after that ping before
        closing with C{connection-timeout}.
    @ivar authFailureLimit: failed authentications (SASL or XEP-0114
        handshake) from one source address within C{authFailureWindow}
        seconds before that source is refused (C{policy-violation}).
    @ivar authFailureWindow: see C{authFailureLimit}.
    @ivar maxNegotiating: connections whose negotiation is not complete
        (not authenticated and bound yet), in all; they do not count
        towards C{maxSessions} until it is. When reached, a new connection
        is refused at accept time unless a source holds at least two more
        than its source does, whose oldest is closed to make room (see
        L{xmppcomp.admission}).
    @ivar maxNegotiatingPerSource: the same, per source address (an IPv4
        address, or the C{/64} of an IPv6 address): beyond, connections
        from that source are refused at accept time (closed before any
        byte is read or written; logged once per burst).
    @ivar listenBacklog: the listen backlog of every listener whose
        endpoint string does not give its own C{backlog=} (the kernel caps
        it at C{net.core.somaxconn}).
    """

    maxSessions: int = 1000
    maxNamesPerSession: int = 64
    maxStanzasPerSecond: int = 5000
    maxStanzaSize: int = 256 * 1024
    negotiationTimeout: float = 30.0
    maxAuthAttempts: int = 3
    closeTimeout: float = 10.0
    maxStanzaDepth: int = 64
    maxBufferedBytes: int = 4 * 256 * 1024
    maxBouncePayload: int = 4096
    idleTimeout: float = 120.0
    pingTimeout: float = 30.0
    authFailureLimit: int = 10
    authFailureWindow: float = 60.0
    maxNegotiating: int = 2000
    maxNegotiatingPerSource: int = 200
    listenBacklog: int = 511


@attrs.frozen
class RouterConfig:
    """
    The configuration of C{twistd xmppcomp-router}.

    @ivar domain: the router's own domain: the C{to} of component streams,
        the name on its certificate, and the address of its own disco and
        ping.
    @ivar listen: endpoint strings of the XEP-0225 listeners.
    @ivar acceptListen: endpoint strings of the XEP-0114 listeners (only
        used when C{acceptSecrets} is not empty).
    @ivar certificate: path of the PEM certificate (chain) of C{domain}.
    @ivar key: path of its private key (C{None}: in the certificate file).
    @ivar clientCAs: path of a PEM bundle of CAs whose client certificates
        allow SASL EXTERNAL, or C{None}.
    @ivar credentials: path of the SCRAM credentials file (managed with
        C{xmppcomp-credentials}).
    @ivar authorization: identity to the hostname patterns it may bind
        (see L{xmppcomp.authz.HostnamePolicy}).
    @ivar acceptSecrets: XEP-0114 hostname to its shared secret.
    @ivar limits: the limits.
    @ivar allowPlaintext: accept XEP-0225 streams without TLS; for tests.
    @ivar metricsListen: endpoint string of an HTTP listener serving the
        Prometheus metrics at C{/metrics}, or C{None} (the default: off).
    """

    domain: str
    credentials: str | None = None
    certificate: str | None = None
    key: str | None = None
    clientCAs: str | None = None
    listen: tuple[str, ...] = attrs.field(default=DEFAULT_ROUTER_LISTEN, converter=strTuple)
    acceptListen: tuple[str, ...] = attrs.field(default=DEFAULT_ACCEPT_LISTEN, converter=strTuple)
    authorization: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    acceptSecrets: Mapping[str, SecretRef] = attrs.field(factory=dict)
    limits: RouterLimits = attrs.field(factory=RouterLimits)
    allowPlaintext: bool = False
    metricsListen: str | None = None

