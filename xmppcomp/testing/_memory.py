# -*- test-case-name: tests.test_testing -*-
"""
Connections in memory, re-exported by L{xmppcomp.testing}: a transport
that pretends TLS (L{FakeTLSTransport}), two protocols connected by a
pair of them (L{MemoryConnection}), a client endpoint that connects to a
server factory that way (L{MemoryEndpoint}), and a router that
components connect to (L{MemoryRouter}).

Nothing moves by itself: a test calls L{MemoryConnection.pump} or
L{MemoryRouter.flush}, and advances the clock it gave the components
(a L{MemoryReactorClock<twisted.internet.testing.MemoryReactorClock>}).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import (
    ConnectionAborted,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
)
from twisted.internet.interfaces import (
    IAddress,
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.words.protocols.jabber.jid import JID
from zope.interface import implementer

from xmppcomp.metrics import Metrics
from xmppcomp.router.config import RouterLimits
from xmppcomp.router.service import Router
from xmppcomp.stream.acceptreceiving import AcceptFactory, AcceptPolicy
from xmppcomp.stream.receiving import ReceivingFactory, ReceivingPolicy
from xmppcomp.stream.sasl import MemoryCredentialStore

if TYPE_CHECKING:
    from OpenSSL import SSL
    from twisted.protocols.tls import TLSMemoryBIOProtocol

    from xmppcomp.component import Link

__all__ = [
    "FakeTLSTransport",
    "MemoryConnection",
    "MemoryEndpoint",
    "MemoryRouter",
    "PretendTLS",
]


@implementer(IOpenSSLClientConnectionCreator, IOpenSSLServerConnectionCreator)
class PretendTLS:
    """
    TLS options for connections in memory, where TLS is only pretended:
    the C{tlsCreator} of a L{Component<xmppcomp.component.Component>}, the
    C{tlsOptions} of a receiving policy. A L{FakeTLSTransport} records
    them in C{startTLS}; no real TLS connection can be made with them.
    """

    def clientConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        raise NotImplementedError("pretend TLS: only in-memory transports take these options")

    def serverConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        raise NotImplementedError("pretend TLS: only in-memory transports take these options")


class FakeTLSTransport(StringTransport):
    """
    A L{StringTransport<twisted.internet.testing.StringTransport>} that
    records C{startTLS} instead of doing TLS: the bytes written after it
    are plain, as before.

    @ivar tlsOptions: what C{startTLS} was called with, or C{None}.
    @ivar writtenBeforeTLS: the bytes written before C{startTLS}.
    """

    tlsOptions: object | None = None
    writtenBeforeTLS = b""

    def startTLS(self, options: object, normal: bool = True) -> None:
        """
        Record C{options} and what was written so far.
        """
        self.tlsOptions = options
        self.writtenBeforeTLS = self.value()


class _ConnectedTransport(FakeTLSTransport):
    """
    One end of a L{MemoryConnection}: what is written after
    C{loseConnection} is dropped, as a closing TCP connection would, and
    C{pauseProducing} stops the delivery of the peer's bytes until
    C{resumeProducing}.
    """

    aborted = False

    def write(self, data: bytes) -> None:
        if not self.disconnecting:
            super().write(data)

    def abortConnection(self) -> None:
        """
        Close at once: what was written and not yet delivered is lost.
        """
        self.aborted = True
        self.clear()
        self.disconnecting = True

    def pauseProducing(self) -> None:
        self.producerState = "paused"

    def resumeProducing(self) -> None:
        if self.producerState == "paused":
            self.producerState = "producing"

    def stopProducing(self) -> None:
        self.producerState = "stopped"
        self.loseConnection()


class MemoryConnection:
    """
    A client protocol and a server protocol connected in memory, each on a
    L{FakeTLSTransport}: L{pump} delivers what each wrote to the other,
    and, once one of them closed, tells both the connection is lost (the
    peer first).

    @ivar client: the client protocol.
    @ivar server: the server protocol.
    @ivar clientTransport: the client's transport.
    @ivar serverTransport: the server's transport.
    @ivar closed: whether both ends were told the connection is lost.
    """

    def __init__(
        self,
        client: IProtocol,
        server: IProtocol,
        clientAddress: IPv4Address | None = None,
        serverAddress: IPv4Address | None = None,
    ) -> None:
        """
        Connect C{server}, then C{client} (C{makeConnection}).

        @param clientAddress: the client's address (its peer's
            C{getPeer()}); C{127.0.0.1:40000} by default.
        @param serverAddress: the server's address; C{127.0.0.1:5222} by
            default.
        """
        clientAddress = clientAddress or IPv4Address("TCP", "127.0.0.1", 40000)
        serverAddress = serverAddress or IPv4Address("TCP", "127.0.0.1", 5222)
        self.client = client
        self.server = server
        self.clientTransport = _ConnectedTransport(hostAddress=clientAddress, peerAddress=serverAddress)
        self.serverTransport = _ConnectedTransport(hostAddress=serverAddress, peerAddress=clientAddress)
        self.closed = False
        server.makeConnection(self.serverTransport)
        client.makeConnection(self.clientTransport)

    def pump(self) -> bool:
        """
        Deliver what each end wrote since the last call (but nothing to an
        end that paused its transport); when nothing was left to deliver
        and an end has closed, tell both the connection is lost.

        @return: whether anything happened.
        """
        if self.closed:
            return False
        moved = False
        for source, target, protocol in (
            (self.clientTransport, self.serverTransport, self.server),
            (self.serverTransport, self.clientTransport, self.client),
        ):
            data = source.value()
            if data and target.producerState != "paused":
                source.clear()
                protocol.dataReceived(data)
                moved = True
        if moved:
            return True
        for closer, closerProtocol, peerProtocol in (
            (self.serverTransport, self.server, self.client),
            (self.clientTransport, self.client, self.server),
        ):
            if closer.disconnecting:
                self.closed = True
                self.clientTransport.disconnecting = True
                self.serverTransport.disconnecting = True
                if closer.aborted:
                    peerReason: Exception = ConnectionLost("the peer aborted the connection")
                    closerReason: Exception = ConnectionAborted()
                else:
                    peerReason = closerReason = ConnectionDone("Connection done")
                peerProtocol.connectionLost(Failure(peerReason))
                closerProtocol.connectionLost(Failure(closerReason))
                return True
        return False

    def flush(self, limit: int = 10_000) -> bool:
        """
        L{pump} until nothing happens.

        @return: whether anything happened.
        @raise AssertionError: more than C{limit} rounds.
        """
        result = False
        for _ in range(limit):
            if not self.pump():
                return result
            result = True
        raise AssertionError("the connection never went quiet")


@implementer(IStreamClientEndpoint)
class MemoryEndpoint:
    """
    A client endpoint that connects in memory to a server factory: each
    connection is a L{MemoryConnection}, added to L{connections}, which the
    test pumps. A server factory whose C{buildProtocol} returns C{None}
    refuses the connection (L{ConnectionRefusedError}).

    @ivar serverFactory: the factory of the server protocols.
    @ivar connections: every connection made, in order.
    """

    def __init__(
        self,
        serverFactory: IProtocolFactory,
        connections: list[MemoryConnection] | None = None,
    ) -> None:
        """
        @param connections: the list to add connections to (shared with
            other endpoints, say); a new one by default.
        """
        self.serverFactory = serverFactory
        self.connections: list[MemoryConnection] = [] if connections is None else connections

    def connect(self, protocolFactory: IProtocolFactory) -> defer.Deferred[IProtocol]:
        """
        Connect a protocol of C{protocolFactory} to one of the server
        factory.

        @return: a L{Deferred} that has fired with the client protocol, or
            failed with L{ConnectionRefusedError}.
        """
        port = 40000 + len(self.connections)
        clientAddress = IPv4Address("TCP", "127.0.0.1", port)
        serverAddress = IPv4Address("TCP", "127.0.0.1", 5222)
        server = self.serverFactory.buildProtocol(clientAddress)
        if server is None:
            return defer.fail(ConnectionRefusedError("the server refused the connection"))
        client = protocolFactory.buildProtocol(serverAddress)
        if client is None:
            return defer.fail(ConnectionRefusedError("the client factory built no protocol"))
        self.connections.append(MemoryConnection(client, server, clientAddress, serverAddress))
        return defer.succeed(client)

    def flush(self, limit: int = 10_000) -> bool:
        """
        Pump every connection of L{connections} until nothing happens.

        @return: whether anything happened.
        """
        return _flush(self.connections, limit)


def _flush(connections: Iterable[MemoryConnection], limit: int) -> bool:
    result = False
    for _ in range(limit):
        moved = False
        for connection in list(connections):
            moved = connection.pump() or moved
        if not moved:
            return result
        result = True
    raise AssertionError("the connections never went quiet")


@implementer(IProtocolFactory)
class _CurrentFactory:
    """
    The server factory of a L{MemoryRouter}'s endpoints for one kind of
    stream: the running router's, or none while it is down (the
    connection is refused).
    """

    def __init__(self, router: MemoryRouter, kind: str) -> None:
        self._router = router
        self._kind = kind

    def buildProtocol(self, addr: IAddress) -> IProtocol | None:
        factory = self._router.factories.get(self._kind) if self._router.up else None
        return None if factory is None else factory.buildProtocol(addr)

    def doStart(self) -> None:
        pass

    def doStop(self) -> None:
        pass


class MemoryRouter:
    """
    A router in memory that components connect to: a real
    L{Router<xmppcomp.router.service.Router>} behind the real receiving
    streams of XEP-0225 (SASL SCRAM, hostname bind) and XEP-0114 (the
    handshake), reached through L{MemoryEndpoint}s. TLS is pretended
    (L{PretendTLS}): STARTTLS is negotiated, and the bytes stay plain.

    Give each component C{endpointFactory=router.endpointFactory} and the
    router's C{reactor}, then L{flush} after anything that sends::

        router = MemoryRouter()
        secret = router.addIdentity("echo.example.net")
        component = Component(
            "memory", router.domain, ["echo.example.net"], secret=secret,
            reactor=router.reactor, endpointFactory=router.endpointFactory,
        )
        component.startService()
        router.flush()

    @ivar domain: the router's domain, the C{serverDomain} of components.
    @ivar reactor: the clock of the router and of its streams; give it to
        the components too.
    @ivar credentials: the SCRAM credentials of the XEP-0225 identities.
    @ivar acceptSecrets: XEP-0114 hostname to its secret.
    @ivar router: the running L{Router<xmppcomp.router.service.Router>}
        (a new one after each L{start}).
    @ivar factories: the receiving factories of the running router, by
        kind (C{"xep0225"}, C{"xep0114"}).
    @ivar up: whether it accepts connections.
    @ivar connections: every connection made, in order (a count of
        connection attempts that were not refused).
    @ivar metrics: where the router counts.
    """

    def __init__(
        self,
        domain: str = "example.net",
        reactor: MemoryReactorClock | None = None,
        limits: RouterLimits | None = None,
        mayBind: Callable[[str, str], bool] | None = None,
        credentials: MemoryCredentialStore | None = None,
        metrics: Metrics | None = None,
        sharedNames: Callable[[str], bool] | None = None,
    ) -> None:
        """
        @param reactor: a L{MemoryReactorClock}, made if not given.
        @param limits: the router's limits (its defaults if not given).
        @param mayBind: whether an identity may bind a hostname; by
            default, its own name and the names below it, and the
            hostnames given to L{addIdentity} and the names below them.
        @param credentials: a credential store to start from.
        @param sharedNames: whether several sessions of one identity may
            bind a hostname together (see L{Router
            <xmppcomp.router.service.Router>}); C{None}: none may.
        """
        self.domain = JID(domain).host
        self.reactor = MemoryReactorClock() if reactor is None else reactor
        self.credentials = MemoryCredentialStore() if credentials is None else credentials
        self.acceptSecrets: dict[str, str] = {}
        self.metrics = Metrics() if metrics is None else metrics
        self.connections: list[MemoryConnection] = []
        self.factories: dict[str, IProtocolFactory] = {}
        self.up = False
        self._limits = limits
        self._mayBind = mayBind
        self._sharedNames = sharedNames
        self._hostnames: dict[str, list[str]] = {}
        self._endpoints = {
            kind: MemoryEndpoint(_CurrentFactory(self, kind), self.connections)
            for kind in ("xep0225", "xep0114")
        }
        self.start()

    def addIdentity(
        self, identity: str, secret: str | None = None, hostnames: Iterable[str] = ()
    ) -> str:
        """
        Let an XEP-0225 component authenticate as C{identity}.

        @param secret: its secret (made up if not given).
        @param hostnames: names it may bind besides its own (and the names
            below them), with the default C{mayBind}.
        @return: the secret.
        """
        identity = JID(identity).host
        secret = secret if secret is not None else f"secret of {identity}, long enough"
        self.credentials.add(identity, secret)
        self._hostnames[identity] = [identity, *(JID(name).host for name in hostnames)]
        return secret

    def addAcceptName(self, hostname: str, secret: str | None = None) -> str:
        """
        Let an XEP-0114 component connect for C{hostname}.

        @param secret: its shared secret (made up if not given).
        @return: the secret.
        """
        hostname = JID(hostname).host
        secret = secret if secret is not None else f"secret of {hostname}, long enough"
        self.acceptSecrets[hostname] = secret
        return secret

    def mayBind(self, identity: str, hostname: str) -> bool:
        """
        Whether C{identity} may bind C{hostname} (see C{__init__}).
        """
        if self._mayBind is not None:
            return self._mayBind(identity, hostname)
        return any(
            hostname == name or hostname.endswith("." + name)
            for name in self._hostnames.get(identity, ())
        )

    def start(self) -> None:
        """
        Start a new router (with no sessions) and accept connections.
        """
        self.router = Router(
            self.domain,
            self.mayBind,
            RouterLimits() if self._limits is None else self._limits,
            reactor=self.reactor,
            metrics=self.metrics,
            sharedNames=self._sharedNames,
        )
        factory = ReceivingFactory(
            ReceivingPolicy(
                domains={self.domain},
                credentials=self.credentials,
                tlsOptions=PretendTLS(),
                features=self.router.receivingFeatures(),
                metrics=self.metrics,
            ),
            reactor=self.reactor,
        )
        self.router.addBootstraps(factory, "xep0225")
        acceptFactory = AcceptFactory(
            AcceptPolicy(secrets=self.acceptSecrets.get, metrics=self.metrics),
            reactor=self.reactor,
        )
        self.router.addBootstraps(acceptFactory, "xep0114")
        self.factories = {"xep0225": factory, "xep0114": acceptFactory}
        self.up = True

    def crash(self) -> None:
        """
        Drop every connection, refuse new ones until L{start}, and
        L{flush}.
        """
        self.up = False
        for connection in self.connections:
            connection.serverTransport.loseConnection()
        self.flush()

    def endpoint(self, protocol: str = "xep0225") -> MemoryEndpoint:
        """
        The endpoint of the streams of C{protocol} (C{"xep0225"} or
        C{"xep0114"}).
        """
        return self._endpoints[protocol]

    def endpointFactory(self, link: Link) -> MemoryEndpoint:
        """
        The endpoint of a component's connection, for the component's
        C{endpointFactory}: this router's, for the component's protocol.
        """
        return self.endpoint(link.component.protocol)

    def flush(self, limit: int = 10_000) -> bool:
        """
        Pump every connection until nothing happens. (Time does not pass:
        advance L{reactor} for that.)

        @return: whether anything happened.
        """
        return _flush(self.connections, limit)
