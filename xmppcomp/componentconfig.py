# -*- test-case-name: tests.test_tap -*-
"""
The configuration values of a component (C{twistd xmppcomp}); see
C{docs/examples/component.toml} for their TOML keys and
L{xmppcomp.config.loadComponentConfig} for loading them.
"""

from __future__ import annotations

import os

import attrs

from xmppcomp.component import ComponentLimits
from xmppcomp.configvalues import KEY_FIX, ConfigError, SecretRef, checked, strTuple
from xmppcomp.httpauth import HTTPAuthConfig
from xmppcomp.stream import tls
from xmppcomp.xtls import XTLSConfig

# ComponentLimits is defined with the component it limits, and importable from here.
__all__ = [
    "DEFAULT_EMBEDDED_DOMAIN",
    "DEFAULT_EMBEDDED_HOSTNAME",
    "PROTOCOLS",
    "SERVER_EXAMPLE",
    "ComponentConfig",
    "ComponentLimits",
    "ComponentTrust",
]

#: The domain of the embedded router when no server is configured.
DEFAULT_EMBEDDED_DOMAIN = "localhost"

#: The hostname of the component when no server and no hostname are
#: configured: a name below the embedded router's domain.
DEFAULT_EMBEDDED_HOSTNAME = "component"

@attrs.frozen
class ComponentTrust:
    """
    How the component checks the server's certificate: the system's
    certificate authorities (neither attribute set), the authorities of a
    PEM bundle, or exactly one pinned certificate.

    @ivar caFile: path of a PEM bundle of trusted authorities.
    @ivar pinned: path of the one certificate the server must present.
    """

    caFile: str | None = attrs.field(default=None, metadata=checked(
        "file", "ca.pem", "give the PEM bundle of the authorities that issued the server's certificate,"))
    pinned: str | None = attrs.field(default=None, metadata=checked(
        "file", "server.pem", "give the server's own certificate (PEM)"))

    def __attrs_post_init__(self) -> None:
        if self.caFile is not None and self.pinned is not None:
            raise ConfigError("trust: give at most one of ca_file and pinned")

    @property
    def kind(self) -> str:
        """C{"system"}, C{"ca_file"} or C{"pinned"}."""
        return "ca_file" if self.caFile is not None else "pinned" if self.pinned is not None else "system"

    def load(self) -> tls.Trust:
        """
        Read the files now and build the trust value the component takes (L{tls.trustSystem}, C{trustCAFile}...).

        @raise xmppcomp.stream.tls.CertificateFileError: a file cannot be read or holds no certificate.
        """
        if self.caFile is not None:
            return tls.trustCAFile(self.caFile)
        if self.pinned is not None:
            return tls.trustPinned(self.pinned)
        return tls.trustSystem()


#: An example of C{component.server}.
SERVER_EXAMPLE = '"tcp:host=127.0.0.1:port=5348"'

#: The protocols a component speaks, and what each is.
PROTOCOLS = {"xep0225": "jabber:client, TLS, SASL, hostname bind", "xep0114": "jabber:component:accept, handshake"}


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

    hostnames: tuple[str, ...] = attrs.field(converter=strTuple, metadata=checked("hostnames"))
    serverDomain: str = attrs.field(metadata=checked("domain", "the server's domain", "example.net"))
    identity: str = attrs.field(metadata=checked("domain", "the domain the component authenticates as"))
    server: str | None = attrs.field(default=None, metadata=checked("string", SERVER_EXAMPLE))
    protocol: str = attrs.field(default="xep0225", metadata=checked("choice", PROTOCOLS))
    secret: SecretRef | None = attrs.field(default=None, metadata=checked(
        "secret", "component", "component.secret", "COMPONENT_SECRET"))
    clientCertificate: str | None = attrs.field(default=None, metadata=checked(
        "file", "component.pem", "give the component's PEM client certificate"))
    clientKey: str | None = attrs.field(default=None, metadata=checked("file", "component.key", KEY_FIX))
    trust: ComponentTrust = attrs.field(factory=ComponentTrust, metadata=checked("trust"))
    requireTLS: bool = True
    limits: ComponentLimits = attrs.field(factory=ComponentLimits)
    embeddedPort: int = attrs.field(default=0, metadata=checked("port", toml="embedded.port"))
    httpauth: HTTPAuthConfig = attrs.field(factory=HTTPAuthConfig, metadata=checked(toml="httpauth"))
    xtls: XTLSConfig = attrs.field(factory=XTLSConfig, metadata=checked(toml="xtls"))
    baseDirectory: str = attrs.field(factory=os.getcwd, metadata=checked(toml=None))

    @property
    def embedded(self) -> bool:
        """Whether the component runs against an embedded router (no server is configured)."""
        return self.server is None
