# -*- test-case-name: tests.test_httpauth_listener,tests.test_metrics -*-
"""
The confirmer's web listener (L{HTTPAuthListener}): a service that listens
on a server endpoint, fails the start when it cannot, logs where it
listens, and closes the connections it knows of (L{ConnectionTracker})
when it stops.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Generator

from twisted.application.internet import StreamServerEndpointService
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IAddress,
    IListeningPort,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.protocols.policies import WrappingFactory

from xmppcomp.admission import AdmissionGate, fileLimitWarning
from xmppcomp.httpauth._confirmer import Confirmer
from xmppcomp.httpauth._site import ConfirmerSite
from xmppcomp.listening import ListenError
from xmppcomp.logs import Logger

__all__ = ["ConnectionTracker", "HTTPAuthListener", "isPublic", "listeningURL"]

log = Logger()


def listeningURL(port: IListeningPort, secure: bool) -> str | None:
    """
    The URL a local client reaches a listening port at, or C{None} when it
    is not a TCP port.

    @param port: the L{IListeningPort<twisted.internet.interfaces.IListeningPort>}.
    @param secure: whether it speaks HTTPS.
    """
    address = port.getHost()
    host = getattr(address, "host", None)
    number = getattr(address, "port", None)
    if host is None or number is None:
        return None
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = "[%s]" % (host,)
    return "%s://%s:%d/" % ("https" if secure else "http", host, number)


def isPublic(address: IAddress) -> bool:
    """
    Whether a listening address may be reached from other machines: an
    IPv4 or IPv6 address that is not loopback (C{0.0.0.0} and C{::}
    included). UNIX sockets are not (their file permissions decide).
    """
    host = getattr(address, "host", None)
    if not isinstance(host, str):
        return False
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_loopback


#: Seconds a connection has to take its last bytes once the listener
#: closes it after a drain, before it is aborted.
_CLOSE_GRACE = 5.0


class ConnectionTracker(WrappingFactory):
    """
    Knows the open connections of a server factory (the web listener), to
    close them when it stops (browsers keep idle connections open); tests
    use it to close and wait for every connection too.
    """

    def __init__(self, wrapped: IProtocolFactory) -> None:
        super().__init__(wrapped)
        self._idle: list[defer.Deferred[None]] = []

    def unregisterProtocol(self, p: IProtocol) -> None:
        super().unregisterProtocol(p)
        if not self.protocols:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)

    def closeAll(self, clock: IReactorTime | None = None, grace: float = 0.0) -> defer.Deferred[None]:
        """
        Close every open connection: at once (abort), or with C{clock}
        after writing what is buffered, aborting those still open
        C{grace} seconds later (a client that does not read).

        @return: fires once none is left.
        """
        if not self.protocols:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._idle.append(d)
        if clock is None:
            self._abortAll()
            return d
        for p in list(self.protocols):
            p.transport.loseConnection()
        timer = clock.callLater(grace, self._abortAll)
        return d.addCallback(lambda _: timer.cancel() if timer.active() else None)

    def _abortAll(self) -> None:
        for p in list(self.protocols):
            p.transport.abortConnection()


class HTTPAuthListener(StreamServerEndpointService):
    """
    The web listener of the HTTP-auth confirmer: a
    L{StreamServerEndpointService} that fails the start (and so twistd)
    when it cannot listen, and logs where it listens.

    When it cannot listen, its start raises L{ListenError} (a
    L{CannotListenError}) naming the address, the L{setting} and the
    reason, if it knows the setting; otherwise the endpoint's error.

    @ivar description: the endpoint string.
    @ivar what: what it serves, for the log.
    @ivar secure: whether it speaks HTTPS (an C{ssl:} endpoint).
    @ivar metrics: whether it serves C{/metrics} too
        (L{withMetrics<xmppcomp.metrics.withMetrics>}).
    @ivar port: the L{IListeningPort} while listening, else C{None}.
    @ivar confirmer: the L{Confirmer<xmppcomp.httpauth.Confirmer>} behind
        it (its C{ledger} says how many confirmations are pending), once
        L{addHTTPAuth<xmppcomp.services.addHTTPAuth>} set it.
    @ivar gate: the L{AdmissionGate<xmppcomp.admission.AdmissionGate>}
        that caps its open connections per source and in all, or C{None}.
    @ivar setting: what gives its endpoint, as a message names it (e.g.
        C{"httpauth.listen or --http-listen"}), or C{None}.
    """

    _raiseSynchronously = True

    def __init__(
        self,
        endpoint: IStreamServerEndpoint,
        factory: IProtocolFactory,
        description: str,
        what: str,
        metrics: bool = False,
        gate: AdmissionGate | None = None,
        drainTimeout: float = 0.0,
        setting: str | None = None,
    ) -> None:
        """
        @param gate: an L{AdmissionGate<xmppcomp.admission.AdmissionGate>}
            every connection is put to before C{factory} sees it, or
            C{None} for no caps.
        @param drainTimeout: when C{factory} is a L{ConfirmerSite}, the
            seconds its requests in flight have to finish once the service
            stops (L{ConfirmerSite.drain}).
        @param setting: see L{setting}.
        """
        super().__init__(endpoint, ConnectionTracker(factory if gate is None else gate.wrap(factory)))
        self.gate = gate
        self.description = description
        self.what = what
        self.metrics = metrics
        self.secure = description.split(":", 1)[0].lower() == "ssl"
        self.port: IListeningPort | None = None
        self.confirmer: Confirmer | None = None
        self.site = factory if isinstance(factory, ConfirmerSite) else None
        self.drainTimeout = drainTimeout
        self.setting = setting
        self._listeners: list[defer.Deferred[IListeningPort]] = []

    def privilegedStartService(self) -> None:
        """
        Listen.

        @raise ListenError: it cannot, and it knows its L{setting}.
        @raise CannotListenError: it cannot, and it does not.
        """
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            if self.setting is None:
                raise
            raise ListenError(self.setting, self.description, e) from e
        assert self._waitingForPort is not None
        self._waitingForPort.addCallback(self._listening)

    def _listening(self, port: IListeningPort | None) -> IListeningPort | None:
        if port is None:
            # Failed (and logged), or cancelled.
            return port
        self.port = port
        if self.gate is not None:
            warning = fileLimitWarning(
                self.gate.admission.maxTotal, "[httpauth] max_connections", [port.getHost()]
            )
            if warning is not None:
                log.warn("{warning}", warning=warning)
        log.info(
            "XEP-0070 HTTP-auth confirmer listening on {where} ({endpoint}): {what}",
            where=listeningURL(port, self.secure) or port.getHost(),
            endpoint=self.description,
            what=self.what,
        )
        if self.metrics:
            if isPublic(port.getHost()):
                log.warn(
                    "/metrics is served without authentication on {endpoint}, "
                    "which is not a loopback address: the metrics are public "
                    "there. Keep the HTTP-auth listener on loopback "
                    "(--http-listen tcp:8080:interface=127.0.0.1) or restrict "
                    "/metrics in the proxy in front of it.",
                    endpoint=self.description,
                )
            else:
                log.info(
                    "Prometheus metrics at /metrics on {endpoint}",
                    endpoint=self.description,
                )
        listeners, self._listeners = self._listeners, []
        for d in listeners:
            d.callback(port)
        return port

    def whenListening(self) -> defer.Deferred[IListeningPort]:
        """
        Fires with the L{IListeningPort} once listening (at once if it
        does).
        """
        if self.port is not None:
            return defer.succeed(self.port)
        d: defer.Deferred[IListeningPort] = defer.Deferred()
        self._listeners.append(d)
        return d

    @defer.inlineCallbacks
    def stopService(self) -> Generator[defer.Deferred[None] | defer.Deferred[int], object, None]:
        """
        Stop listening, let the requests in flight finish within
        C{drainTimeout} seconds while new ones on open connections get 503
        (L{ConfirmerSite.drain}), then close the open connections (pending
        confirmations still left included) and wait until they are gone.
        """
        self.port = None
        yield super().stopService()
        if self.site is not None:
            if self.site.inFlight:
                log.info(
                    "Draining the HTTP-auth confirmer: {count} requests in flight, {timeout:g} seconds to finish",
                    count=self.site.inFlight,
                    timeout=self.drainTimeout,
                )
            left = yield self.site.drain(self.drainTimeout)
            if left:
                log.warn("{count} HTTP requests were still in flight after the drain; closing them", count=left)
            # The last answers may still be in the write buffers.
            yield self.factory.closeAll(self.site.reactor, _CLOSE_GRACE)
        yield self.factory.closeAll()
        if self.gate is not None:
            self.gate.stop()
