# -*- test-case-name: tests.test_config -*-
"""
The router's configuration values (C{twistd xmppcomp-router}); see
C{docs/examples/router.toml} for their TOML keys and
L{xmppcomp.config.loadRouterConfig} for loading them.
"""

from __future__ import annotations

from typing import Mapping

import attrs

from xmppcomp.authz import HostnamePattern
from xmppcomp.configvalues import KEY_FIX, SecretRef, checked, keeping, strTuple

#: Default listen endpoints: loopback only.
DEFAULT_ROUTER_LISTEN = ("tcp:5348:interface=127.0.0.1",)
DEFAULT_ACCEPT_LISTEN = ("tcp:5347:interface=127.0.0.1",)

#: How the credentials file is made.
CREATE_CREDENTIALS = "create it with: xmppcomp-credentials FILE add DOMAIN"


@attrs.frozen
class RouterLimits:
    """
    Limits of the router, each explicit.

    @ivar maxSessions: negotiated component sessions at once (XEP-0225 and XEP-0114); beyond, C{resource-constraint}.
    @ivar maxNamesPerSession: hostnames one session may bind (C{resource-constraint} beyond).
    @ivar maxStanzasPerSecond: stanzas a session may send per second (one-second bucket); beyond, C{policy-violation}.
    @ivar maxStanzaSize: bytes of one stanza (C{policy-violation} beyond).
    @ivar negotiationTimeout: seconds to complete stream negotiation.
    @ivar maxAuthAttempts: failed SASL attempts before the stream closes.
    @ivar closeTimeout: seconds to wait for a peer's closing tag.
    @ivar maxStanzaDepth: levels elements may nest below the stream root (a stanza is 1; C{policy-violation} beyond).
    @ivar maxBufferedBytes: bytes queued to a session that does not read; stanzas beyond bounce, the rest is logged.
    @ivar maxBouncePayload: bytes of an undeliverable stanza its bounce echoes; larger ones only their addressing.
    @ivar idleTimeout: seconds without data from a negotiated session before the router pings it (XEP-0199).
    @ivar pingTimeout: seconds to wait for any data after that ping before closing with C{connection-timeout}.
    @ivar authFailureLimit: failed authentications from one address within C{authFailureWindow} before it is refused.
    @ivar authFailureWindow: see C{authFailureLimit}.
    @ivar maxNegotiating: connections still negotiating, in all; beyond, see L{xmppcomp.admission}.
    @ivar maxNegotiatingPerSource: the same per source address (IPv4, or an IPv6 C{/64}); beyond, refused at accept.
    @ivar listenBacklog: the backlog of listeners whose endpoint string has no C{backlog=} (capped by the kernel).
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

    @ivar domain: the router's own domain: the C{to} of component streams, its certificate's name, its disco address.
    @ivar listen: endpoint strings of the XEP-0225 listeners.
    @ivar acceptListen: endpoint strings of the XEP-0114 listeners (used when C{acceptSecrets} is not empty).
    @ivar certificate: path of the PEM certificate (chain) of C{domain}.
    @ivar key: path of its private key (C{None}: in the certificate file).
    @ivar clientCAs: path of a PEM bundle of CAs whose client certificates allow SASL EXTERNAL, or C{None}.
    @ivar credentials: path of the SCRAM credentials file (managed with C{xmppcomp-credentials}).
    @ivar authorization: identity to the hostname patterns it may bind (L{xmppcomp.authz.HostnamePolicy}).
    @ivar sharedNames: hostname patterns (as in C{authorization}) of the names several sessions of one identity may
        bind together, their stanzas balanced between them (L{xmppcomp.authz.HostnamePatterns}); empty: none, a
        second session for a bound name gets C{conflict}.
    @ivar acceptSecrets: XEP-0114 hostname to its shared secret.
    @ivar limits: the limits.
    @ivar allowPlaintext: accept XEP-0225 streams without TLS; for tests.
    @ivar metricsListen: endpoint string of an HTTP listener of Prometheus metrics at C{/metrics}, or C{None} (off).
    """

    domain: str = attrs.field(metadata=checked("domain", "the router's domain name", "example.net"))
    credentials: str | None = attrs.field(default=None, metadata=checked(
        "file", "credentials.json", CREATE_CREDENTIALS, ""))
    certificate: str | None = attrs.field(default=None, metadata=checked(
        "file", "router.pem", "give the PEM certificate of the router's domain (see docs/examples/router.toml for how "
        "to make one)", toml="tls.certificate"))
    key: str | None = attrs.field(default=None, metadata=checked("file", "router.key", KEY_FIX, toml="tls.key"))
    clientCAs: str | None = attrs.field(default=None, metadata=checked(
        "file", "clients-ca.pem", "give the PEM bundle of the CAs of the components' client certificates",
        toml="tls.client_cas"))
    listen: tuple[str, ...] = attrs.field(default=DEFAULT_ROUTER_LISTEN, converter=strTuple, metadata=checked(
        "endpoints", DEFAULT_ROUTER_LISTEN[0]))
    acceptListen: tuple[str, ...] = attrs.field(default=DEFAULT_ACCEPT_LISTEN, converter=strTuple, metadata=checked(
        "endpoints", DEFAULT_ACCEPT_LISTEN[0], toml="accept.listen"))
    authorization: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict, metadata=checked("authorization"))
    sharedNames: tuple[str, ...] = attrs.field(default=(), converter=strTuple, metadata=checked(
        "parsedStrings", keeping(HostnamePattern.parse), "", "component.example.net", "write the names as in "
        '[authorization], such as ["component.example.net", "*.balanced.example.net"]', "hostname patterns"))
    acceptSecrets: Mapping[str, SecretRef] = attrs.field(factory=dict, metadata=checked(
        "secrets", toml="accept.secrets"))
    limits: RouterLimits = attrs.field(factory=RouterLimits)
    allowPlaintext: bool = False
    metricsListen: str | None = attrs.field(default=None, metadata=checked("endpoint", "tcp:9348:interface=127.0.0.1"))
