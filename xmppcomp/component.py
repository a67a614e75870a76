# -*- test-case-name: tests.test_component -*-
"""
L{Component}: the initiating side of component connections as a Twisted
service. It connects to a server (XEP-0225, or XEP-0114 for the servers
people run today), binds its hostnames, reconnects with backoff after any
loss and binds them all again, and hosts wokkel-style handlers.

Handlers see one stream, a L{ComponentStream}, whatever the connections
underneath: with XEP-0225 one connection carries every hostname; with
XEP-0114 there is one connection per hostname, and stanzas go out on the
connection of their C{from} hostname.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any, Callable, Iterator, Sequence

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet import defer, protocol
from twisted.internet.endpoints import clientFromString, wrapClientTLS
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import error as jerror
from twisted.words.protocols.jabber import jid
from twisted.words.protocols.jabber.xmlstream import TimeoutError
from twisted.words.xish import domish, utility
from twisted.words.xish.xmlstream import STREAM_END_EVENT

from xmppcomp.errors import NegotiationError, SASLFailure, TLSRequiredError
from xmppcomp.logs import Logger
from xmppcomp.metrics import NEGOTIATION_FAILURES
from xmppcomp.ns import NS_CLIENT, NS_COMPONENT_ACCEPT, NS_PING
from xmppcomp.router.routing import domainOf
from xmppcomp.stream.xmlstream import checkSerializable
from xmppcomp.stream.bind import BIND_NAMESPACES, BindError, BindInitiator, bindRequest, boundHostname

log = Logger()

#: Stream errors that retrying soon will not fix.
_FATAL_STREAM_CONDITIONS = frozenset(
    {"not-authorized", "host-unknown", "invalid-namespace", "conflict", "invalid-from", "policy-violation"}
)
#: SASL failures that retrying soon will not fix.
_FATAL_SASL_CONDITIONS = frozenset(
    {"not-authorized", "invalid-authzid", "invalid-mechanism", "mechanism-too-weak", "account-disabled", "credentials-expired", "encryption-required"}
)


class QueueFull(Exception):
    """
    A stanza could not wait for the connection: the queue was full.
    """


class QueueTimeout(Exception):
    """
    A stanza waited longer than allowed for the connection to come back.
    """


class NotConnected(Exception):
    """
    No connection carries the hostname a stanza comes from.
    """


def isFatal(failure: Failure) -> bool:
    """
    Whether a connection failure calls for a long pause before the next try
    (wrong credentials, certificate mismatch, a refused name) rather than
    the normal backoff.
    """
    value = failure.value
    if isinstance(value, SASLFailure):
        return value.condition in _FATAL_SASL_CONDITIONS
    if isinstance(value, jerror.StreamError):
        return value.condition in _FATAL_STREAM_CONDITIONS
    if isinstance(value, (BindError, TLSRequiredError)):
        return True
    if isinstance(value, NegotiationError):
        return "timed out" not in str(value) and "not complete after" not in str(value)
    name = type(value).__name__
    module = type(value).__module__
    # A certificate that did not verify: OpenSSL.SSL.Error or
    # service_identity's VerificationError, as the TLS layer reports them.
    return module.startswith(("OpenSSL", "service_identity")) or name in (
        "VerificationError",
        "PinnedCertificateMismatch",
    )


def failureCondition(failure: Failure) -> str:
    """
    The C{condition} label of a failed connection in
    C{xmppcomp_negotiation_failures_total}: the SASL failure, stream error
    or bind error condition when there is one (C{not-authorized},
    C{host-unknown}, C{conflict}, ...), else the exception's class name
    (C{TLSRequiredError}, C{NegotiationError}, C{ConnectionDone}, ...),
    so that the label takes a bounded set of values.
    """
    condition = getattr(failure.value, "condition", None)
    if isinstance(condition, str) and condition:
        return condition
    return type(failure.value).__name__


class ComponentStream(utility.EventDispatcher):
    """
    The stream the handlers of a L{Component} see: received stanzas of
    every connection are dispatched here; what handlers send goes out on
    the connection of its C{from} hostname, or waits in the component's
    bounded queue while that connection is down.

    @ivar component: the component.
    """

    def __init__(self, component: "Component") -> None:
        super().__init__()
        self.component = component
        self.namespace = component.namespace
        self.iqDeferreds: dict[str, defer.Deferred[domish.Element]] = {}
        self.iqDefaultTimeout: float | None = component.iqTimeout
        self.addObserver('/iq[@type="result"]', self._onResponse, priority=100)
        self.addObserver('/iq[@type="error"]', self._onResponse, priority=100)

    def send(self, obj: domish.Element | str) -> None:
        self.component.send(obj)

    def _callLater(self, *args: Any, **kwargs: Any) -> Any:
        return self.component.reactor.callLater(*args, **kwargs)

    def _onResponse(self, iq: domish.Element) -> None:
        d = self.iqDeferreds.pop(iq.getAttribute("id", ""), None)
        if d is None:
            return
        iq.handled = True  # type: ignore[attr-defined]  # a flag domish.Element does not declare
        if iq["type"] == "error":
            d.errback(jerror.exceptionFromStanza(iq))
        else:
            d.callback(iq)

    def lost(self, reason: Failure) -> None:
        """
        Every connection is gone: fail the IQs waiting for an answer (their
        fate is unknown) and tell observers.
        """
        pending, self.iqDeferreds = self.iqDeferreds, {}
        for d in pending.values():
            d.errback(ConnectionLost("the connection was lost before the answer came"))
        self.dispatch(reason, STREAM_END_EVENT)


class _Link:
    """
    One connection of a component: every hostname over XEP-0225, or one
    hostname over XEP-0114.

    @ivar hostnames: the names this connection binds (XEP-0225) or is for
        (XEP-0114).
    @ivar xmlstream: the negotiated stream, or C{None} while down.
    """

    def __init__(self, component: "Component", hostnames: list[str]) -> None:
        self.component = component
        self.hostnames = hostnames
        self.xmlstream: Any = None
        self.binder: BindInitiator | None = None
        self.lastFailure: Failure | None = None
        self.failures = 0
        self._pingCall: Any = None
        #: The L{xmppcomp.stream.initiating.NegotiationResult} of the
        #: current (or last) connection.
        self.negotiation: Any = None
        self.service = ClientService(
            component.endpointFor(self),
            _LinkFactory(self),
            retryPolicy=self._retryDelay,
            clock=component.reactor,
            prepareConnection=self._prepare,
        )

    def _retryDelay(self, failedAttempts: int) -> float:
        # ClientService counts only failed TCP connects (a connection whose
        # negotiation failed counts as made), so the link keeps its own
        # count of consecutive failures, reset once negotiated.
        self.failures += 1
        delay = self.component.retryPolicy(self.failures)
        if self.lastFailure is not None and isFatal(self.lastFailure):
            delay = max(delay, self.component.fatalRetryDelay)
        return delay

    def buildProtocol(self, addr: Any) -> Any:
        return self.component.buildStream(self, addr)

    def _prepare(self, proxy: Any) -> defer.Deferred[None]:
        """
        Wait for negotiation. This always fires with C{None} (never fails):
        ClientService cannot handle a failed preparation whose connection
        is lost afterwards, so a failed negotiation is recorded, its stream
        closes, and ClientService sees an ordinary connection loss.
        """
        # ClientService hands us its proxy; attributes must be set on the
        # stream itself.
        xs = getattr(proxy, "_protocol", proxy)

        def failed(failure: Failure) -> None:
            self.lastFailure = failure
            NEGOTIATION_FAILURES.labels("initiating", failureCondition(failure)).inc()
            log.warn(
                "{name}: connecting to {server} failed ({why}){hint}",
                name=", ".join(self.hostnames),
                server=self.component.server,
                why=_why(failure),
                hint="; waiting at least %g s before the next try" % (self.component.fatalRetryDelay,)
                if isFatal(failure)
                else "",
            )

        def ready(result: Any) -> None:
            self.negotiation = result
            self.lastFailure = None
            self.failures = 0
            self.xmlstream = xs
            xs.elementHandler = self.component._received
            xs.addObserver(STREAM_END_EVENT, lambda reason: self._lost(xs, reason))
            self.component._linkReady(self)
            self._schedulePing()

        return xs.authenticator.negotiated.addCallbacks(ready, failed)

    # Silent peers (RFC 6120 section 4.5): an XEP-0199 ping to the server
    # every keepaliveInterval; any answer, even an error, proves the
    # connection alive; none within keepaliveTimeout drops it, and the
    # link reconnects.

    def _schedulePing(self) -> None:
        interval = self.component.keepaliveInterval
        if interval is not None:
            self._pingCall = self.component.reactor.callLater(interval, self._ping)

    def _cancelPing(self) -> None:
        call, self._pingCall = self._pingCall, None
        if call is not None and call.active():
            call.cancel()

    def _ping(self) -> None:
        self._pingCall = None
        xs = self.xmlstream
        if xs is None:
            return
        iq = domish.Element((None, "iq"))
        iq["type"] = "get"
        iq["from"] = self.hostnames[0]
        iq["to"] = self.component.serverDomain
        iq.addElement((NS_PING, "ping"))

        def answered(_: object) -> None:
            if self.xmlstream is xs:
                self._schedulePing()

        def failed(failure: Failure) -> None:
            if failure.check(TimeoutError) and self.xmlstream is xs:
                log.warn(
                    "{name}: no answer from {server} to a ping within {timeout} s; "
                    "dropping the connection",
                    name=", ".join(self.hostnames),
                    server=self.component.server,
                    timeout=self.component.keepaliveTimeout,
                )
                xs.transport.abortConnection()
            elif failure.check(jerror.StanzaError):
                answered(None)

        self.component.request(iq, timeout=self.component.keepaliveTimeout).addCallbacks(answered, failed)

    def _lost(self, xs: Any, reason: Failure) -> None:
        if self.xmlstream is not xs:
            return
        self._cancelPing()
        self.xmlstream = None
        ended = getattr(xs, "streamEnded", None) or reason
        log.info(
            "{name}: connection to {server} ended ({why}){next}",
            name=", ".join(self.hostnames),
            server=self.component.server,
            why=_why(ended),
            next="; reconnecting" if self.component.running else "",
        )
        self.component._linkLost(self, reason)


class _LinkFactory(protocol.ClientFactory):
    """
    Builds a fresh negotiating stream, with the link's current hostnames,
    for each connection attempt.
    """

    def __init__(self, link: _Link) -> None:
        self.link = link

    def buildProtocol(self, addr: Any) -> Any:
        return self.link.buildProtocol(addr)


class Component(Service):
    """
    An XMPP server component: connects, binds its hostnames, reconnects,
    and hosts handlers.

    Handlers are wokkel C{XMPPHandler}s: C{handler.setHandlerParent(component)}
    (or L{addHandler}). They get a L{ComponentStream} as C{xmlstream}, and
    C{connectionInitialized} once the component is connected and bound
    (again after each reconnection).

    @ivar server: the server: a Twisted client endpoint string
        (C{tcp:host=...:port=...}; C{tls:host=...:port=...} for direct TLS)
        or an L{IStreamClientEndpoint}.
    @ivar hostnames: the hostnames this component binds (again after each
        reconnection).
    @ivar protocol: C{"xep0225"} or C{"xep0114"}.
    @ivar handlers: the handlers (a component is their
        C{XMPPHandlerCollection}; it is not a C{MultiService}, whose
        iteration would clash with that).
    @ivar xmlstream: the L{ComponentStream} while connected, else C{None}.
    @ivar keepaliveInterval: seconds between XEP-0199 pings to the server
        (C{None}: no pings); a ping unanswered for C{keepaliveTimeout}
        seconds drops the connection, which then reconnects.
    """

    def __init__(
        self,
        server: str | Any,
        serverDomain: str,
        hostnames: Sequence[str],
        secret: str | None = None,
        identity: str | None = None,
        protocol: str = "xep0225",
        clientCertificate: Any = None,
        trust: Any = None,
        requireTLS: bool = True,
        reactor: Any = None,
        maxQueued: int = 1000,
        queueTimeout: float = 60.0,
        iqTimeout: float | None = 30.0,
        retryPolicy: Callable[[int], float] | None = None,
        fatalRetryDelay: float = 300.0,
        negotiationTimeout: float = 30.0,
        tlsCreator: Any = None,
        keepaliveInterval: float | None = 60.0,
        keepaliveTimeout: float = 30.0,
    ) -> None:
        if protocol not in ("xep0225", "xep0114"):
            raise ValueError("protocol must be 'xep0225' or 'xep0114', not %r" % (protocol,))
        if not hostnames:
            raise ValueError("a component needs at least one hostname")
        if protocol == "xep0114" and secret is None:
            raise ValueError("an XEP-0114 component needs the shared secret")
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        self.server = server
        self.serverDomain = serverDomain
        self.hostnames = [jid.JID(name).host for name in hostnames]
        self.identity = identity or self.hostnames[0]
        self.secret = secret
        self.protocol = protocol
        self.namespace = NS_COMPONENT_ACCEPT if protocol == "xep0114" else NS_CLIENT
        self.clientCertificate = clientCertificate
        self.trust = trust
        self.tlsCreator = tlsCreator
        self.requireTLS = requireTLS
        self.reactor = reactor
        self.maxQueued = maxQueued
        self.queueTimeout = queueTimeout
        self.iqTimeout = iqTimeout
        self.retryPolicy = retryPolicy or backoffPolicy(
            initialDelay=1.0, maxDelay=60.0, factor=1.5, jitter=random.random
        )
        self.fatalRetryDelay = fatalRetryDelay
        self.keepaliveInterval = keepaliveInterval
        self.keepaliveTimeout = keepaliveTimeout
        self.negotiationTimeout = negotiationTimeout
        self.handlers: list[Any] = []
        self.xmlstream: ComponentStream | None = None
        self._queue: deque[tuple[domish.Element, float, defer.Deferred[None] | None]] = deque()
        self._links: list[_Link] = []
        self._expiry: Any = None
        self._readyWaiters: list[defer.Deferred[None]] = []
        if protocol == "xep0225":
            self._links.append(_Link(self, self.hostnames))
        else:
            self._links.extend(_Link(self, [name]) for name in self.hostnames)

    # XMPPHandlerCollection, as wokkel's handlers expect of their parent.

    def __iter__(self) -> Iterator[Any]:
        return iter(self.handlers)

    def addHandler(self, handler: Any) -> None:
        self.handlers.append(handler)
        if self.xmlstream is not None:
            handler.makeConnection(self.xmlstream)
            handler.connectionInitialized()

    def removeHandler(self, handler: Any) -> None:
        self.handlers.remove(handler)

    # Connections.

    def endpointFor(self, link: _Link) -> Any:
        """
        The client endpoint of a connection: the C{server} endpoint string,
        where C{tls:HOST:PORT} means direct TLS with the same certificate
        checks as STARTTLS.
        """
        description = self.server
        if not isinstance(description, str):
            # An IStreamClientEndpoint given directly.
            return description
        if description.startswith("tls:") and self.protocol == "xep0225":
            tcp = clientFromString(self.reactor, "tcp:" + description[len("tls:"):])
            return wrapClientTLS(self._policy(link).tlsOptions(), tcp)
        return clientFromString(self.reactor, description)

    def _policy(self, link: _Link) -> Any:
        from xmppcomp.stream.initiating import InitiatingPolicy

        link.binder = BindInitiator(link.hostnames)
        return InitiatingPolicy(
            serverDomain=self.serverDomain,
            identity=self.identity,
            secret=self.secret,
            clientCertificate=self.clientCertificate,
            trust=self.trust,
            tlsCreator=self.tlsCreator,
            requireTLS=self.requireTLS,
            hostname=link.hostnames[0],
            features=link.binder.features(),
            negotiationTimeout=self.negotiationTimeout,
            directTLS=isinstance(self.server, str) and self.server.startswith("tls:"),
        )

    def buildStream(self, link: _Link, addr: Any) -> Any:
        """
        A new negotiating stream for one connection attempt of C{link}.
        """
        if self.protocol == "xep0114":
            from xmppcomp.stream.accept import AcceptInitiatingFactory, AcceptInitiatingPolicy

            assert self.secret is not None
            factory: Any = AcceptInitiatingFactory(
                AcceptInitiatingPolicy(
                    hostname=link.hostnames[0],
                    secret=self.secret,
                    negotiationTimeout=self.negotiationTimeout,
                ),
                reactor=self.reactor,
            )
        else:
            from xmppcomp.stream.initiating import InitiatingFactory

            factory = InitiatingFactory(self._policy(link), reactor=self.reactor)
        return factory.buildProtocol(addr)

    def startService(self) -> None:
        super().startService()
        for link in self._links:
            link.service.startService()

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        yield super().stopService()
        for link in self._links:
            link._cancelPing()
            if link.xmlstream is not None:
                link.xmlstream.closeStream()
        yield defer.gatherResults([link.service.stopService() for link in self._links])
        self._failQueue(NotConnected("the component was stopped"))

    def whenReady(self) -> defer.Deferred[None]:
        """
        Fires on the reactor turn after every connection is negotiated and
        bound.
        """
        d: defer.Deferred[None] = defer.Deferred()
        self._readyWaiters.append(d)
        self._notifyReady()
        return d

    def _notifyReady(self) -> None:
        if all(link.xmlstream is not None for link in self._links):
            waiters, self._readyWaiters = self._readyWaiters, []
            for d in waiters:
                # On the next reactor turn: readiness is noticed inside
                # ClientService's connection preparation, and a caller that
                # stopped the component right there would leave
                # ClientService stopped with the connection still open.
                self.reactor.callLater(0, d.callback, None)

    # Readiness.

    def _linkReady(self, link: _Link) -> None:
        if link.binder is not None and link.binder.bound:
            link.hostnames[:] = link.binder.bound
        log.info(
            "{server}: bound {names} over {protocol}",
            server=self.server,
            names=", ".join(link.hostnames),
            protocol=self.protocol,
        )
        if self.xmlstream is None:
            self.xmlstream = ComponentStream(self)
            for handler in list(self.handlers):
                handler.makeConnection(self.xmlstream)
                handler.connectionInitialized()
            self.componentReady(self.xmlstream)
        self._flushQueue()
        self._notifyReady()

    def _linkLost(self, link: _Link, reason: Failure) -> None:
        if any(other.xmlstream is not None for other in self._links):
            return
        stream, self.xmlstream = self.xmlstream, None
        if stream is None:
            return
        for handler in list(self.handlers):
            handler.connectionLost(reason)
        stream.lost(reason)
        self.componentLost(reason)

    # Hooks for subclasses.

    def componentReady(self, xmlstream: ComponentStream) -> None:
        """
        Called when the component is connected and bound, after the
        handlers were initialised (again after each reconnection). A
        subclass adds its observers to C{xmlstream} here, e.g.
        C{xmlstream.addObserver("/message", self.onMessage)}.
        """

    def componentLost(self, reason: Failure) -> None:
        """
        Called when every connection of the component is lost (it
        reconnects by itself).
        """

    @property
    def negotiations(self) -> list[Any]:
        """
        The L{xmppcomp.stream.initiating.NegotiationResult} of each
        connection (mechanism, TLS version, elapsed time), C{None} for a
        connection never negotiated.
        """
        return [link.negotiation for link in self._links]

    def isConnected(self, hostname: str | None = None) -> bool:
        """
        Whether a connection carries C{hostname} (any, if C{None}).
        """
        return self._linkFor(hostname) is not None

    def _linkFor(self, hostname: str | None) -> _Link | None:
        for link in self._links:
            if link.xmlstream is None:
                continue
            if hostname is None or hostname in link.hostnames:
                return link
        return None

    # Receiving.

    def _received(self, element: domish.Element) -> None:
        if self.xmlstream is not None:
            self.xmlstream.dispatch(element)

    # Sending.

    def send(self, obj: domish.Element | str) -> None:
        """
        Send a stanza now, or queue it while its connection is down; a
        stanza that cannot wait is logged as an error (use L{sendOrFail}
        to get the failure instead).
        """
        self.sendOrFail(obj).addErrback(
            lambda failure: log.error(
                "stanza not sent: {why}", why=failure.getErrorMessage()
            )
        )

    def sendOrFail(self, obj: domish.Element | str) -> defer.Deferred[None]:
        """
        Send a stanza now, or once its connection is back.

        @return: a L{Deferred} that fires when the stanza is written, or
            fails with L{QueueFull}, L{QueueTimeout} or L{NotConnected}.
        @raise UnserializableElement: the stanza would not be well-formed
            XML (a character XML 1.0 forbids); nothing is sent or queued,
            and the stream stays up.
        """
        if isinstance(obj, str):
            # Raw XML (wokkel sends a few strings): only for an open stream.
            link = self._linkFor(None)
            if link is None:
                return defer.fail(NotConnected("raw XML cannot wait for a connection"))
            link.xmlstream.send(obj)
            return defer.succeed(None)
        hostname = domainOf(obj.getAttribute("from", "")) if obj.hasAttribute("from") else None
        if hostname is not None and hostname not in self.hostnames:
            return defer.fail(NotConnected("%s is not a hostname of this component" % (hostname,)))
        link = self._linkFor(hostname)
        if link is not None and not self._queue:
            link.xmlstream.send(obj)
            return defer.succeed(None)
        if len(self._queue) >= self.maxQueued:
            return defer.fail(QueueFull("%d stanzas are waiting already" % (len(self._queue),)))
        # Checked now, not when the queue is flushed into a new stream.
        checkSerializable(obj.toXml(), obj)
        d: defer.Deferred[None] = defer.Deferred()
        self._queue.append((obj, self.reactor.seconds(), d))
        self._scheduleExpiry()
        return d

    def _flushQueue(self) -> None:
        while self._queue:
            element, queued, d = self._queue[0]
            hostname = domainOf(element.getAttribute("from", "")) if element.hasAttribute("from") else None
            link = self._linkFor(hostname)
            if link is None:
                return
            self._queue.popleft()
            link.xmlstream.send(element)
            if d is not None:
                d.callback(None)
        self._cancelExpiry()

    def _cancelExpiry(self) -> None:
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None

    def _scheduleExpiry(self) -> None:
        if self._expiry is not None and self._expiry.active():
            return
        if not self._queue:
            return
        oldest = self._queue[0][1]
        delay = max(0.0, oldest + self.queueTimeout - self.reactor.seconds())
        self._expiry = self.reactor.callLater(delay, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        now = self.reactor.seconds()
        while self._queue and self._queue[0][1] + self.queueTimeout <= now:
            element, queued, d = self._queue.popleft()
            if d is not None:
                d.errback(
                    QueueTimeout(
                        "%s waited %g s for a connection" % (element.name, self.queueTimeout)
                    )
                )
        self._scheduleExpiry()

    def _failQueue(self, reason: Exception) -> None:
        self._cancelExpiry()
        queue, self._queue = self._queue, deque()
        for element, queued, d in queue:
            if d is not None:
                d.errback(reason)

    def request(self, iq: domish.Element, timeout: float | None = None) -> defer.Deferred[domish.Element]:
        """
        Send an IQ request and wait for its answer.

        @param iq: an C{<iq type='get'/>} or C{'set'} element; an id is
            added if it has none.
        @param timeout: seconds to wait for the answer once sent (default
            L{iqTimeout}).
        @return: a L{Deferred} firing with the result, or failing with the
            L{StanzaError<twisted.words.protocols.jabber.error.StanzaError>}
            answered, a L{TimeoutError}, L{QueueFull}, L{QueueTimeout} or
            L{ConnectionLost}.
        """
        if not iq.getAttribute("id"):
            iq.addUniqueId()
        answer: defer.Deferred[domish.Element] = defer.Deferred()
        limit = self.iqTimeout if timeout is None else timeout

        def sent(_: None) -> defer.Deferred[domish.Element]:
            stream = self.xmlstream
            if stream is None:
                raise ConnectionLost("the connection was lost right after sending")
            stream.iqDeferreds[iq["id"]] = answer
            if limit is not None:
                call = self.reactor.callLater(limit, expire, limit)
                answer.addBoth(lambda result: (call.active() and call.cancel(), result)[1])
            return answer

        def expire(seconds: float) -> None:
            stream = self.xmlstream
            if stream is not None:
                stream.iqDeferreds.pop(iq["id"], None)
            if not answer.called:
                answer.errback(TimeoutError("no answer to IQ %s within %g s" % (iq["id"], seconds)))

        return self.sendOrFail(iq).addCallback(sent)

    # Hostnames.

    def bind(self, hostname: str) -> defer.Deferred[str]:
        """
        Bind another hostname now, and again after every reconnection.

        Over XEP-0225 it is bound on the open stream; over XEP-0114 a new
        connection is made for it.

        @return: a L{Deferred} firing with the bound name, or failing with
            the L{StanzaError} the server answered (or the connection
            failure, for XEP-0114).
        """
        name = jid.JID(hostname).host
        if name in self.hostnames:
            return defer.succeed(name)
        if self.protocol == "xep0114":
            link = _Link(self, [name])
            self._links.append(link)
            self.hostnames.append(name)
            if self.running:
                link.service.startService()
            return self.whenReady().addCallback(lambda _: name)
        link = self._links[0]
        if link.xmlstream is None:
            return defer.fail(NotConnected("not connected; %s will be bound on connection" % (name,)))

        def bound(result: str) -> str:
            if name not in self.hostnames:
                self.hostnames.append(name)
            if name not in link.hostnames:
                link.hostnames.append(name)
            return result

        namespace = self._bindNamespace(link)
        d = self.request(bindRequest(name, namespace))
        return d.addCallback(boundHostname, namespace, name).addCallback(bound)

    def unbind(self, hostname: str) -> defer.Deferred[None]:
        """
        Unbind a hostname; it is not bound again after reconnection.
        """
        name = jid.JID(hostname).host
        if name not in self.hostnames:
            return defer.fail(ValueError("%s is not a hostname of this component" % (name,)))
        if self.protocol == "xep0114":
            link = next(link for link in self._links if link.hostnames == [name])
            self._links.remove(link)
            self.hostnames.remove(name)
            return link.service.stopService()
        link = self._links[0]
        self.hostnames.remove(name)
        if name in link.hostnames:
            link.hostnames.remove(name)
        if link.xmlstream is None:
            return defer.succeed(None)
        namespace = self._bindNamespace(link)
        return self.request(bindRequest(name, namespace, "unbind")).addCallback(lambda _: None)

    def _bindNamespace(self, link: _Link) -> str:
        if link.binder is not None and link.binder.namespace:
            return link.binder.namespace
        return BIND_NAMESPACES[0]


def _why(reason: Any) -> str:
    if isinstance(reason, Failure):
        value = reason.value
        if isinstance(value, jerror.StreamError):
            return "stream error %s" % (value.condition,)
        return str(value) or type(value).__name__
    return str(reason)
