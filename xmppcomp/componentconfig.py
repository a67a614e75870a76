# -*- test-case-name: tests.test_tap -*-
"""
The configuration values of a component (C{twistd xmppcomp}); see
C{docs/examples/component.toml} for their TOML keys and
L{xmppcomp.config.loadComponentConfig} for loading them.
"""

from __future__ import annotations

import os

import attrs

from xmppcomp.configvalues import ConfigError, SecretRef, strTuple
from xmppcomp.httpauth import HTTPAuthConfig
from xmppcomp.stream import tls
from xmppcomp.xtls import XTLSConfig

#: The domain of the embedded router when no server is configured.
DEFAULT_EMBEDDED_DOMAIN = "localhost"

#: The hostname of the component when no server and no hostname are
#: configured: a name below the embedded router's domain.
DEFAULT_EMBEDDED_HOSTNAME = "component"


@attrs.frozen
class ComponentLimits:
    """
    Limits and timeouts of a component (see L{xmppcomp.component.Component}).

    @ivar maxQueued: stanzas that may wait for the connection; more fail with L{xmppcomp.component.QueueFull}.
    @ivar queueTimeout: seconds a stanza may wait for the connection.
    @ivar iqTimeout: seconds to wait for the answer to an IQ request.
    @ivar negotiationTimeout: seconds to complete stream negotiation.
    @ivar fatalRetryDelay: seconds before trying again after a failure retrying soon will not fix (wrong secret, ...).
    """

    maxQueued: int = 1000
    queueTimeout: float = 60.0
    iqTimeout: float = 30.0
    negotiationTimeout: float = 30.0
    fatalRetryDelay: float = 300.0


@attrs.frozen
class ComponentTrust:
    """
    How the component checks the server's certificate: the system's
    certificate authorities (neither attribute set), the authorities of a
    PEM bundle, or exactly one pinned certificate.

    @ivar caFile: path of a PEM bundle of trusted authorities.
    @ivar pinned: path of the one certificate the server must present.
    """

    caFile: str | None = None
    pinned: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.caFile is not None and self.pinned is not None:
            raise ConfigError("trust: give at most one of ca_file and pinned")

    @property
    def kind(self) -> str:
        """
        C{"system"}, C{"ca_file"} or C{"pinned"}.
        """
        if self.caFile is not None:
            return "ca_file"
        if self.pinned is not None:
            return "pinned"
        return "system"

    def load(self) -> tls.Trust:
        """
        Read the files now and build the trust value the component takes
        (see L{xmppcomp.stream.tls.trustSystem}, C{trustCAFile},
        C{trustPinned}).

        @raise xmppcomp.stream.tls.CertificateFileError: a file cannot be
            read or holds no certificate.
        """
        if self.caFile is not None:
            return tls.trustCAFile(self.caFile)
        if self.pinned is not None:
            return tls.trustPinned(self.pinned)
        return tls.trustSystem()


@attrs.frozen
class ComponentConfig:
    """
    The configuration of C{twistd xmppcomp}.

    @ivar server: the client endpoint string of the server, or C{None}: run against an embedded router on loopback.
    @ivar serverDomain: the server's domain (the stream's C{to}, its certificate's name), or the embedded router's.
    @ivar hostnames: the hostnames the component binds, at least one.
    @ivar identity: the domain the component authenticates as (SASL); by default the first hostname.
    @ivar protocol: C{"xep0225"} or C{"xep0114"}.
    @ivar secret: where the secret is (SCRAM/PLAIN for XEP-0225, the handshake of XEP-0114), or C{None}.
    @ivar clientCertificate: path of a PEM client certificate (SASL EXTERNAL), or C{None}.
    @ivar clientKey: path of its private key (C{None}: in the certificate file).
    @ivar trust: how the server's certificate is checked.
    @ivar requireTLS: refuse a server that offers no TLS (the default).
    @ivar limits: limits and timeouts.
    @ivar embeddedPort: the loopback TCP port of the embedded router (C{0}: any free port); only without C{server}.
    @ivar httpauth: the XEP-0070 HTTP-auth confirmer (C{[httpauth]}).
    @ivar xtls: the XTLS endpoint (C{[xtls]}).
    @ivar baseDirectory: the directory of the configuration file (the current directory without one).
    """

    hostnames: tuple[str, ...] = attrs.field(converter=strTuple)
    serverDomain: str
    identity: str
    server: str | None = None
    protocol: str = "xep0225"
    secret: SecretRef | None = None
    clientCertificate: str | None = None
    clientKey: str | None = None
    trust: ComponentTrust = attrs.field(factory=ComponentTrust)
    requireTLS: bool = True
    limits: ComponentLimits = attrs.field(factory=ComponentLimits)
    embeddedPort: int = 0
    httpauth: HTTPAuthConfig = attrs.field(factory=HTTPAuthConfig)
    xtls: XTLSConfig = attrs.field(factory=XTLSConfig)
    baseDirectory: str = attrs.field(factory=os.getcwd)

    @property
    def embedded(self) -> bool:
        """
        Whether the component runs against an embedded router (no server
        is configured).
        """
        return self.server is None
