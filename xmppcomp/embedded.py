# -*- test-case-name: tests.test_embedded -*-
"""
An embedded router on loopback, so that C{twistd -n xmppcomp} runs on a
fresh machine with no XMPP server configured.

L{EmbeddedRouter} is a service that runs a
L{RouterService<xmppcomp.router.service.RouterService>} on C{127.0.0.1}
with everything a component needs made up at startup and never written
anywhere lasting:

  - a self-signed certificate (ECDSA P-256) for the router's domain,
    generated in memory; the component trusts exactly that certificate
    (L{trustPinned<xmppcomp.stream.tls.trustPinned>});
  - a random secret for the component (C{secrets.token_urlsafe(32)}), kept
    in memory only and never logged;
  - the SCRAM keys of that secret, and the authorization of the
    component's hostnames (and the names below them, for names bound
    later);
  - more identities with their own secrets and hostnames, added with
    L{EmbeddedRouter.addIdentity} before it starts (the demo agent of
    L{xmppcomp.demo} is one);
  - an in-memory certificate authority for XTLS, which issues the
    certificates of the components on this router
    (L{EmbeddedRouter.issueXTLSCertificate}) and which they all trust
    (L{EmbeddedRouter.xtlsTrust}).

L{RouterService<xmppcomp.router.service.RouterService>} reads its
certificate and credentials from files, so the certificate, its key and
the credentials are written to a private directory (C{tempfile.mkdtemp},
mode 0700) when the service starts, and the directory is deleted when it
stops.

The component reaches the router with L{EmbeddedRouter.clientEndpoint},
which connects to the port the router actually listens on (by default a
free port picked by the system). L{EmbeddedComponent} is a
L{Component<xmppcomp.component.Component>} wired that way;
L{EmbeddedRouter.watch} logs once the component is connected and bound.
"""

from __future__ import annotations

import datetime
import os
import secrets
import shutil
import tempfile
from typing import Any, Generator, Sequence, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import CannotListenError, ConnectError
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IProtocol, IProtocolFactory, IReactorTime, IStreamClientEndpoint
from twisted.internet.ssl import Certificate, PrivateCertificate
from zope.interface import implementer

from xmppcomp import _x509
from xmppcomp.component import Component
from xmppcomp.componentconfig import DEFAULT_EMBEDDED_DOMAIN
from xmppcomp.router.config import RouterConfig
from xmppcomp.listening import ListenError
from xmppcomp.logs import Logger
from xmppcomp.metrics import Metrics
from xmppcomp.router.service import RouterService
from xmppcomp.stream import tls
from xmppcomp.stream.sasl import FileCredentialStore

__all__ = ["EmbeddedComponent", "EmbeddedRouter", "negotiationSummary"]

log = Logger()

#: The only interface the embedded router listens on.
LOOPBACK = "127.0.0.1"

#: How long the generated certificates are valid from now.
_VALIDITY = datetime.timedelta(days=365)

#: How long before now they are valid from (for clocks a little behind).
_SKEW = datetime.timedelta(minutes=5)


def _selfSignedCertificate(domain: str) -> tuple[bytes, bytes]:
    """
    Make a self-signed server certificate for C{domain} in memory.

    @return: the certificate and its unencrypted private key, in PEM.
    """
    key = _x509.newKey()
    certificate = (
        _x509.certificateBuilder(domain, key.public_key(), None, _SKEW, _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return (
        certificate.public_bytes(serialization.Encoding.PEM),
        _x509.privateKeyPEM(key),
    )


class _XTLSAuthority:
    """
    An in-memory certificate authority (ECDSA P-256) for the XTLS
    certificates of the components on an embedded router; its key is never
    written anywhere.

    @ivar certificate: the authority's self-signed certificate.
    @ivar _key: its private key.
    """

    def __init__(self, domain: str) -> None:
        self._key = _x509.newKey()
        self.certificate = _x509.authorityCertificate(
            "xmppcomp embedded XTLS CA (%s)" % (domain,), self._key, _SKEW, _VALIDITY
        )

    def issue(self, hostnames: Sequence[str], xmppAddrs: Sequence[str] = ()) -> PrivateCertificate:
        """
        A certificate with a fresh key for C{hostnames} (DNS-IDs) and
        C{xmppAddrs} (bare JIDs of users, as XmppAddr names), usable at
        both ends of a TLS handshake (XTLS initiators are TLS clients,
        responders TLS servers).
        """
        key = _x509.newKey()
        certificate = (
            _x509.certificateBuilder(
                [*hostnames, *xmppAddrs][0], key.public_key(), self.certificate.subject, _SKEW, _VALIDITY
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_x509.keyUsage(digital_signature=True), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.SubjectAlternativeName(_x509.subjectAltNames(hostnames, xmppAddrs)),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        return _x509.privateCertificate(certificate, key)


def _writePrivate(path: str, data: bytes) -> None:
    """
    Write C{data} to a new file readable by its owner only.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


@implementer(IStreamClientEndpoint)
class _EmbeddedEndpoint:
    """
    Connects to the port an L{EmbeddedRouter} listens on, looked up at each
    connection attempt (the port is only known once the router listens).

    @ivar _router: the router.
    """

    def __init__(self, router: "EmbeddedRouter") -> None:
        self._router = router

    def connect(self, protocolFactory: IProtocolFactory) -> defer.Deferred[IProtocol]:
        port = self._router.port
        if port is None:
            return defer.fail(ConnectError(string="the embedded router is not listening"))
        return TCP4ClientEndpoint(self._router.reactor, LOOPBACK, port).connect(
            protocolFactory
        )


class EmbeddedRouter(MultiService):
    """
    A router on C{127.0.0.1} for one component (and the few more added with
    L{addIdentity}), with a certificate and secrets made up at startup.

    The certificate and secret are made when this object is made, so a
    component can be built with L{secret}, L{trust} and L{clientEndpoint}
    before the service starts; add the router to the service tree before
    the component, so it listens first (see L{xmppcomp.tap.makeService}).

    @ivar domain: the router's domain (the C{to} of the component's stream,
        the name of the certificate).
    @ivar identity: the domain the component authenticates as.
    @ivar hostnames: the component's hostnames; the identity may bind them
        and any name below them.
    @ivar listenPort: the configured port (C{0}: any free port).
    @ivar reactor: the reactor.
    @ivar routerService: the running
        L{RouterService<xmppcomp.router.service.RouterService>}, or C{None}.
    @ivar directory: the private directory of the certificate, key and
        credentials while running, or C{None}.
    @ivar _secret: the component's secret (never logged; see L{secret}).
    @ivar _others: identity to the hostnames and secret of each identity
        added with L{addIdentity}.
    @ivar metrics: where the router counts (sessions, bound names, routed
        and bounced stanzas, refused negotiations): given to its
        L{RouterService<xmppcomp.router.service.RouterService>} at each
        start, so the twistd plugin's one L{Metrics} shows them on the
        component's C{/metrics}; a registry of the router's own unless
        given one.
    @ivar _xtlsAuthority: the XTLS authority, made when first needed.
    """

    def __init__(
        self,
        hostnames: Sequence[str],
        domain: str = DEFAULT_EMBEDDED_DOMAIN,
        identity: str | None = None,
        port: int = 0,
        reactor: IReactorTime | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """
        @param metrics: where the router counts (see L{metrics}).
        """
        super().__init__()
        if not hostnames:
            raise ValueError("the embedded router needs the component's hostnames")
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        self.domain = domain
        self.hostnames = tuple(hostnames)
        self.identity = identity or self.hostnames[0]
        self.listenPort = port
        self.reactor = reactor
        self.metrics = Metrics() if metrics is None else metrics
        self.routerService: RouterService | None = None
        self.directory: str | None = None
        self._certificatePEM, self._keyPEM = _selfSignedCertificate(domain)
        self._secret = secrets.token_urlsafe(32)
        self._others: dict[str, tuple[tuple[str, ...], str]] = {}
        self._xtlsAuthority: _XTLSAuthority | None = None

    def __repr__(self) -> str:
        return "<EmbeddedRouter %s on %s:%s>" % (self.domain, LOOPBACK, self.port)

    @property
    def secret(self) -> str:
        """
        The component's secret; give it to the component and nowhere else.
        """
        return self._secret

    @property
    def certificatePEM(self) -> bytes:
        """
        The router's self-signed certificate, in PEM.
        """
        return self._certificatePEM

    @property
    def trust(self) -> tls.PinnedTrust:
        """
        What the component trusts: exactly the router's certificate.
        """
        return tls.trustPinned(self._certificatePEM)

    @property
    def port(self) -> int | None:
        """
        The TCP port the router listens on, or C{None} when it does not.
        """
        if self.routerService is None or not self.routerService.ports:
            return None
        # It listens on tcp:...:interface=127.0.0.1 (IListeningPort.getHost is typed IAddress).
        return int(cast(IPv4Address, self.routerService.ports[0].getHost()).port)

    def clientEndpoint(self) -> IStreamClientEndpoint:
        """
        An endpoint that connects to the router wherever it listens.
        """
        return _EmbeddedEndpoint(self)

    def addIdentity(self, identity: str, hostnames: Sequence[str]) -> str:
        """
        Let one more component log in, as C{identity} with a secret of its
        own, and bind C{hostnames} and the names below them. Call it before
        the router starts.

        @return: that component's secret (see also L{secretFor}).
        @raise ValueError: the identity exists, or a hostname is already
            one of another identity's (or below it), or is the router's
            domain.
        @raise RuntimeError: the router runs already.
        """
        if self.running:
            raise RuntimeError("add identities before the embedded router starts")
        if not hostnames:
            raise ValueError("an identity needs hostnames")
        if identity == self.identity or identity in self._others:
            raise ValueError("the identity %r exists already" % (identity,))
        taken = list(self.hostnames) + [
            name for names, _ in self._others.values() for name in names
        ]
        for name in hostnames:
            if name == self.domain:
                raise ValueError("%r is the router's own domain" % (name,))
            for other in taken:
                if name == other or name.endswith("." + other) or other.endswith("." + name):
                    raise ValueError(
                        "%r overlaps %r, which another identity may bind" % (name, other)
                    )
        secret = secrets.token_urlsafe(32)
        self._others[identity] = (tuple(hostnames), secret)
        return secret

    def secretFor(self, identity: str) -> str:
        """
        The secret of C{identity}: the component's, or one added with
        L{addIdentity}.

        @raise KeyError: no such identity.
        """
        if identity == self.identity:
            return self._secret
        return self._others[identity][1]

    def hostnamesOf(self, identity: str) -> tuple[str, ...]:
        """
        The hostnames C{identity} binds.

        @raise KeyError: no such identity.
        """
        if identity == self.identity:
            return self.hostnames
        return self._others[identity][0]

    def authorization(self) -> dict[str, tuple[str, ...]]:
        """
        What each identity may bind: its hostnames, and the names below
        them.
        """
        result: dict[str, tuple[str, ...]] = {}
        for identity in [self.identity, *self._others]:
            patterns: list[str] = []
            for name in self.hostnamesOf(identity):
                patterns += [name, "*." + name]
            result[identity] = tuple(patterns)
        return result

    def _authority(self) -> _XTLSAuthority:
        if self._xtlsAuthority is None:
            self._xtlsAuthority = _XTLSAuthority(self.domain)
        return self._xtlsAuthority

    def issueXTLSCertificate(self, hostnames: Sequence[str], xmppAddrs: Sequence[str] = ()) -> PrivateCertificate:
        """
        Issue an XTLS certificate (and key) for C{hostnames}, and the users
        C{xmppAddrs} (bare JIDs, as XmppAddr names), from the router's
        in-memory authority, which every component given L{xtlsTrust}
        trusts.
        """
        if not hostnames and not xmppAddrs:
            raise ValueError("a certificate needs at least one hostname or JID")
        return self._authority().issue(hostnames, xmppAddrs)

    @property
    def xtlsTrust(self) -> tuple[Certificate, ...]:
        """
        The authority that issues L{issueXTLSCertificate}'s certificates,
        for L{xmppcomp.xtls.XTLSConfiguration.trust}.
        """
        return (
            Certificate.loadPEM(
                self._authority().certificate.public_bytes(serialization.Encoding.PEM)
            ),
        )

    def startService(self) -> None:
        """
        Write the certificate, key and credentials to a private directory
        and start the router on loopback.

        @raise ListenError: it cannot listen on its port.
        """
        # mkdtemp makes the directory with mode 0700.
        directory = tempfile.mkdtemp(prefix="xmppcomp-embedded-")
        self.directory = directory
        try:
            certificate = os.path.join(directory, "router.pem")
            key = os.path.join(directory, "router.key")
            credentials = os.path.join(directory, "credentials.json")
            _writePrivate(certificate, self._certificatePEM)
            _writePrivate(key, self._keyPEM)
            store = FileCredentialStore(credentials)
            store.add(self.identity, self._secret)
            for identity, (_, secret) in self._others.items():
                store.add(identity, secret)
            store.save()
            service = RouterService(
                RouterConfig(
                    domain=self.domain,
                    credentials=credentials,
                    certificate=certificate,
                    key=key,
                    listen=("tcp:%d:interface=%s" % (self.listenPort, LOOPBACK),),
                    authorization=self.authorization(),
                ),
                self.reactor,
                metrics=self.metrics,
            )
            service.setServiceParent(self)
            self.routerService = service
            try:
                super().startService()
            except CannotListenError as e:
                self.routerService = None
                service.disownServiceParent()
                raise ListenError(
                    "embedded.port or --embedded-port", service.config.listen[0], e
                ) from e
        except BaseException:
            self._removeDirectory()
            raise
        log.info(
            "embedded router for {domain} on {address}:{port} (self-signed "
            "certificate and component secret made up at startup, in "
            "{directory} until it stops)",
            domain=self.domain,
            address=LOOPBACK,
            port=self.port,
            directory=directory,
        )

    # Any: inlineCallbacks types what is yielded as Deferred[Any], and
    # MultiService.stopService may give None.
    @defer.inlineCallbacks
    def stopService(self) -> Generator[Any, object, None]:
        try:
            yield super().stopService()
        finally:
            service, self.routerService = self.routerService, None
            if service is not None:
                service.disownServiceParent()
            self._removeDirectory()

    def _removeDirectory(self) -> None:
        directory, self.directory = self.directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def watch(self, component: Component) -> defer.Deferred[None]:
        """
        Log once C{component} is connected and bound.

        @return: a L{Deferred} that fires after logging.
        """

        def ready(_: None) -> None:
            log.info(
                "component {names} connected and bound ({how})",
                names=", ".join(component.hostnames),
                how=negotiationSummary(component),
            )

        return component.whenReady().addCallback(ready)


class EmbeddedComponent(Component):
    """
    A L{Component} connected to an L{EmbeddedRouter}: its server, domain,
    secret and trust are the router's, and its C{endpointFactory} gives
    the router's L{client endpoint<EmbeddedRouter.clientEndpoint>}.

    @ivar embeddedRouter: the router.
    """

    def __init__(
        self, embeddedRouter: EmbeddedRouter, identity: str | None = None,
        **kwargs: Any,  # Any: Component's keyword arguments, each of its own type
    ) -> None:
        """
        @param identity: the identity to log in as: the router's component
            (the default) or one added with L{EmbeddedRouter.addIdentity};
            the component binds that identity's hostnames.
        """
        self.embeddedRouter = embeddedRouter
        if identity is None:
            identity = embeddedRouter.identity
        kwargs.setdefault("reactor", embeddedRouter.reactor)
        kwargs.setdefault("endpointFactory", lambda link: embeddedRouter.clientEndpoint())
        super().__init__(
            "embedded router (%s)" % (LOOPBACK,),
            embeddedRouter.domain,
            embeddedRouter.hostnamesOf(identity),
            secret=embeddedRouter.secretFor(identity),
            identity=identity,
            trust=embeddedRouter.trust,
            **kwargs,
        )


def negotiationSummary(component: Component) -> str:
    """
    How the component's connections were negotiated, for log lines: the
    SASL mechanism (or the XEP-0114 handshake) and the TLS version.
    """
    if component.protocol == "xep0114":
        return "XEP-0114 handshake"
    summaries = []
    for link in component.links:
        result = link.negotiation if link.connected else None
        if result is None:
            summaries.append("SASL, no TLS")
        else:
            summaries.append("%s, %s" % (result.mechanism, result.tlsVersion or "no TLS"))
    return "; ".join(summaries) or "not connected"
