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

import enum
import random
import time
import warnings
from collections import deque
from typing import Any, Callable, Final, Generator, Generic, Iterator, ParamSpec, Protocol, Sequence, TypeVar, cast, overload

import attrs
from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet import defer, protocol
from twisted.internet.endpoints import clientFromString, wrapClientTLS
from twisted.internet import error as ierror
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IAddress, IDelayedCall, IOpenSSLClientConnectionCreator, IProtocolFactory, IReactorTime, IStreamClientEndpoint,
    ITCPTransport,
)
from twisted.internet.ssl import PrivateCertificate
from twisted.python.deprecate import getDeprecationWarningString
from twisted.python.failure import Failure
from twisted.python.versions import Version
from zope.interface import implementer
from twisted.words.protocols.jabber import error as jerror
from twisted.words.protocols.jabber.xmlstream import TimeoutError
from twisted.words.xish import domish, utility
from twisted.words.xish.xmlstream import STREAM_END_EVENT

from xmppcomp.admission import splitEndpoint
from xmppcomp.errors import NegotiationError, SASLFailure, TLSRequiredError
from xmppcomp.interfaces import IStanzaFilters
from xmppcomp.iqtracker import RequestTracker, addressee, newRequestId
from xmppcomp.logs import Logger
from xmppcomp.jids import JIDCache, domainOf, normalizeDomain
from xmppcomp.metrics import Metrics
from xmppcomp.ns import NS_CLIENT, NS_COMPONENT_ACCEPT, NS_PING
from xmppcomp.stream.accept import AcceptInitiatingFactory, AcceptInitiatingPolicy
from xmppcomp.stream.initiating import InitiatingFactory, InitiatingPolicy
from xmppcomp.stream.adapter import InitiatingAdapter
from xmppcomp.stream.initiatingmachine import NegotiationResult, OfferMemory
from xmppcomp.stream.machine import Machine
from xmppcomp.stream.negotiating import NegotiatingXmlStream
from xmppcomp.stream import tls
from xmppcomp.stream.tls import CertificateVerificationError, Trust
from xmppcomp.stream.tls import TLSDeclarations
from xmppcomp.stream.xmlstream import checkSerializable
from xmppcomp.stream.bind import (
    BIND_NAMESPACES,
    BindError,
    BindInitiator,
    NoHostnameBound,
    bindRequest,
    boundHostname,
)

log = Logger()

#: A filter of L{Component.addSendFilter} or L{Component.addReceiveFilter}:
#: given a stanza, whether it took it over.
StanzaFilter = Callable[[domish.Element], bool]

def _without(filters: tuple[StanzaFilter, ...], f: StanzaFilter) -> tuple[StanzaFilter, ...]:
    """
    C{filters} without (the first) C{f}.

    @raise ValueError: C{f} is not one of them.
    """
    kept = list(filters)
    kept.remove(f)
    return tuple(kept)


#: A stanza waiting for a connection: the stanza, the hostname it comes
#: from (C{None}: no C{from}), when it was queued, and its Deferred.
_Queued = tuple[domish.Element, str | None, float, defer.Deferred[None] | None]

#: Stream errors that retrying soon will not fix. (Not C{conflict}: over
#: XEP-0114 it says the name is connected already, often a stale session
#: of the same component about to time out, so the normal backoff applies.)
_FATAL_STREAM_CONDITIONS = frozenset(
    {"not-authorized", "host-unknown", "invalid-namespace", "invalid-from", "policy-violation"}
)
#: SASL failures that retrying soon will not fix.
_FATAL_SASL_CONDITIONS = frozenset(
    {"not-authorized", "invalid-authzid", "invalid-mechanism", "mechanism-too-weak", "account-disabled", "credentials-expired", "encryption-required"}
)


@attrs.frozen
class ComponentLimits:
    """
    Limits and timeouts of a L{Component} (its C{limits}; the
    C{[component.limits]} table of C{twistd xmppcomp}).

    @ivar maxQueued: stanzas that may wait for the connection; more fail with L{QueueFull}.
    @ivar queueTimeout: seconds a stanza may wait for the connection.
    @ivar iqTimeout: seconds to wait for the answer to an IQ request.
    @ivar negotiationTimeout: seconds to complete stream negotiation.
    @ivar fatalRetryDelay: seconds before trying again after a failure retrying soon will not fix (wrong secret, ...).
    @ivar maxRetryDelay: the ceiling, in seconds, of the growing delay between attempts after other failures.
    """

    maxQueued: int = 1000
    queueTimeout: float = 60.0
    iqTimeout: float = 30.0
    negotiationTimeout: float = 30.0
    fatalRetryDelay: float = 300.0
    maxRetryDelay: float = 60.0


class _FromLimits(enum.Enum):
    """
    The default of L{Component}'s keyword arguments named after a field of
    L{ComponentLimits}: that field of its C{limits}.
    """

    FROM_LIMITS = "from limits"


_FROM_LIMITS: Final = _FromLimits.FROM_LIMITS

_T = TypeVar("_T")


class _Limit(Generic[_T]):
    """
    An attribute of a L{Component} that is the field of the same name of
    its C{limits}: reading it reads the field; setting it replaces
    C{limits} by a copy with that field changed.
    """

    def __set_name__(self, owner: type[Component], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, component: None, owner: type[Component]) -> _Limit[_T]: ...

    @overload
    def __get__(self, component: Component, owner: type[Component]) -> _T: ...

    def __get__(self, component: Component | None, owner: type[Component]) -> _T | _Limit[_T]:
        if component is None:
            return self
        value: _T = getattr(component.limits, self.name)
        return value

    def __set__(self, component: Component, value: _T) -> None:
        changed: dict[str, Any] = {self.name: value}  # Any: the field's type, which is _T
        component.limits = attrs.evolve(component.limits, **changed)


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


def directTLSEndpoint(description: str, protocol: str) -> str | None:
    """
    The TCP endpoint string over which the component makes direct TLS
    itself, with the same certificate checks as STARTTLS: for XEP-0225, a
    C{server} of C{tls:HOST:PORT} is made over C{tcp:HOST:PORT}.

    @param description: the C{server} client endpoint string.
    @param protocol: C{"xep0225"} or C{"xep0114"}.
    @return: that TCP endpoint string, or C{None} when C{description} is
        used as it is.
    """
    if description.startswith("tls:") and protocol == "xep0225":
        return "tcp:" + description[len("tls:"):]
    return None


def isFatal(failure: Failure) -> bool:
    """
    Whether a connection failure calls for a long pause before the next try
    (wrong credentials, a certificate mismatch, every hostname refused for
    good) rather than the normal backoff.

    A refused hostname alone is not: names are independent, and the others
    stay bound. Negotiation fails on refusals only when no name at all
    could be bound (L{NoHostnameBound}); that is fatal only when no
    refusal is worth retrying (every name C{not-allowed}, say), not when
    one is C{conflict} or C{resource-constraint}.
    """
    value = failure.value
    if isinstance(value, SASLFailure):
        return value.condition in _FATAL_SASL_CONDITIONS
    if isinstance(value, jerror.StreamError):
        return value.condition in _FATAL_STREAM_CONDITIONS
    if isinstance(value, BindError):
        return not value.retryable
    if isinstance(value, TLSRequiredError):
        return True
    if isinstance(value, NegotiationError):
        return "timed out" not in str(value) and "not complete after" not in str(value)
    if isinstance(value, CertificateVerificationError):
        # The server's certificate did not verify (tls.clientTLSOptions).
        return True
    name = type(value).__name__
    module = type(value).__module__
    # Another TLS failure (OpenSSL.SSL.Error: no common protocol version,
    # say) or a certificate check of a creator not made by
    # tls.clientTLSOptions (service_identity's VerificationError).
    return module.startswith(("OpenSSL", "service_identity")) or name == "VerificationError"


def failureCondition(failure: Failure) -> str:
    """
    The C{condition} label of a failed connection in
    C{xmppcomp_negotiation_failures_total}: the SASL failure, stream error
    or bind error condition when there is one (C{not-authorized},
    C{host-unknown}, C{conflict}, ...; the first refusal's, when every
    hostname was refused), else the exception's class name
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
    @ivar requests: the L{RequestTracker<xmppcomp.iqtracker.RequestTracker>}
        of L{Component.request}: an answer completes a request only with
        its id and from a sender allowed to answer it.
    """

    def __init__(self, component: "Component") -> None:
        super().__init__()
        self.component = component
        self.namespace = component.namespace
        self.requests = RequestTracker(
            component.serverDomain,
            component.reactor,
            requester="component",
            metrics=component.metrics,
            jids=component.jids,
        )
        # Read by Twisted's IQ.send, which keeps a tracker of its own on
        # this object (by id alone): Component.request is the one to use.
        self.iqDefaultTimeout: float | None = component.iqTimeout
        self.addObserver('/iq[@type="result"]', self.requests.receive, priority=100)
        self.addObserver('/iq[@type="error"]', self.requests.receive, priority=100)

    def send(self, obj: domish.Element | str) -> None:
        self.component.send(obj)

    def lost(self, reason: Failure) -> None:
        """
        Every connection is gone: fail the IQs waiting for an answer (their
        fate is unknown) and tell observers.
        """
        self.requests.failAll(ConnectionLost("the connection was lost before the answer came"))
        self.dispatch(reason, STREAM_END_EVENT)


_P = ParamSpec("_P")


class Handler(Protocol):
    """
    What a L{Component} calls on its handlers: wokkel's C{XMPPHandler}
    (untyped) is one.
    """

    def makeConnection(self, xs: ComponentStream) -> None:
        """
        The component's stream is up.
        """

    def connectionInitialized(self) -> None:
        """
        At least one hostname is bound.
        """

    def connectionLost(self, reason: Failure) -> None:
        """
        Every connection is gone.
        """


class Link(Protocol):
    """
    One connection of a L{Component}, as its C{endpointFactory} and
    L{Component.links} show it: every hostname over XEP-0225, or one
    hostname over XEP-0114. Read it; do not change it.
    """

    @property
    def component(self) -> Component:
        """
        The component this connection belongs to.
        """

    @property
    def hostnames(self) -> Sequence[str]:
        """
        The names this connection binds (XEP-0225) or is for (XEP-0114,
        one name).
        """

    @property
    def bound(self) -> Sequence[str]:
        """
        The names bound on the current connection (a name the server
        refused is in L{hostnames} but not here).
        """

    @property
    def connected(self) -> bool:
        """
        Whether the connection is up and negotiated.
        """

    @property
    def lastFailure(self) -> Failure | None:
        """
        Why the last attempt to connect or negotiate failed, or C{None}
        (none yet, or negotiated since).
        """

    @property
    def negotiation(self) -> NegotiationResult | None:
        """
        The L{NegotiationResult<xmppcomp.stream.initiating.NegotiationResult>}
        of the current (or last) connection, or C{None} before the first
        one (and over XEP-0114).
        """


#: The version that deprecated L{Component.endpointFor}.
_ENDPOINT_FOR_DEPRECATED = Version("xmppcomp", 0, 1, 0)

#: What to use instead of L{Component.endpointFor}.
_ENDPOINT_FOR_REPLACEMENT = (
    "the endpointFactory parameter of xmppcomp.component.Component "
    "(a callable taking the Link and returning its IStreamClientEndpoint)"
)


class _Name:
    """
    What the component knows of one of its hostnames between binds.

    @ivar failures: refusals since it was last bound (its backoff).
    @ivar refusal: the last refusal on the current connection, or C{None}.
    @ivar retry: the call that binds it again on the open stream, or
        C{None}.
    """

    def __init__(self) -> None:
        self.failures = 0
        self.refusal: BindError | None = None
        self.retry: IDelayedCall | None = None

    def cancelRetry(self) -> None:
        call, self.retry = self.retry, None
        if call is not None and call.active():
            call.cancel()


#: The retry delay a link asks for while its component stops: longer than
#: any closing handshake, and cancelled by the stop.
_STOPPING_RETRY_DELAY = 3600.0


class _Link:
    """
    One connection of a component: every hostname over XEP-0225, or one
    hostname over XEP-0114.

    @ivar hostnames: the names this connection binds (XEP-0225) or is for
        (XEP-0114).
    @ivar bound: the names bound on the current connection (a name the
        server refused is in L{hostnames} but not here).
    @ivar xmlstream: the negotiated stream, or C{None} while down.
    """

    def __init__(self, component: "Component", hostnames: list[str]) -> None:
        self.component = component
        self.hostnames = hostnames
        self.bound: list[str] = []
        self.xmlstream: NegotiatingXmlStream | None = None
        self.binder: BindInitiator | None = None
        self.lastFailure: Failure | None = None
        self.failures = 0
        self._failuresBeforeReady = 0
        self._nextDelay: float | None = None
        self._pingCall: IDelayedCall | None = None
        self._building: NegotiatingXmlStream | None = None
        #: The L{xmppcomp.stream.initiating.NegotiationResult} of the
        #: current (or last) connection.
        self.negotiation: NegotiationResult | None = None
        self.service = ClientService(
            _ReportingEndpoint(component._endpointOf(self), self, component._target()),
            _LinkFactory(self),
            retryPolicy=self._retryDelay,
            clock=component.reactor,
            prepareConnection=self._prepare,
        )

    @property
    def connected(self) -> bool:
        return self.xmlstream is not None

    def _retryDelay(self, failedAttempts: int) -> float:
        # ClientService counts only failed TCP connects (a connection whose
        # negotiation failed counts as made), so the link keeps its own
        # count of consecutive failures, reset once negotiated.
        if not self.component.running:
            # Stopping: the streams are closing (Component.stopService waits
            # for the closing handshakes before it stops the ClientServices);
            # no new connection meanwhile, which ClientService could not take
            # back cleanly once its stop begins. Its stop cancels this wait.
            return _STOPPING_RETRY_DELAY
        if self._nextDelay is not None:
            # Worked out (and reported) when the failure was seen.
            delay, self._nextDelay = self._nextDelay, None
            return delay
        return self._delay()

    def _delay(self) -> float:
        """
        The delay before the next attempt after one more failure: the
        retry policy's; at least C{fatalRetryDelay} after a fatal failure;
        when every name was refused and one of them is worth retrying, the
        shortest backoff among those names.
        """
        self.failures += 1
        delay = self.component.retryPolicy(self.failures)
        last = self.lastFailure
        if last is not None:
            if isFatal(last):
                delay = max(delay, self.component.fatalRetryDelay)
            elif isinstance(last.value, NoHostnameBound):
                delay = self.component._namesBackoff(last.value.refusals)
        return delay

    def connectFailed(self, failure: Failure, target: _Target) -> Failure:
        """
        An attempt to connect failed before any connection (refused, DNS,
        timeout): log why, and when the next attempt comes.
        """
        if failure.check(defer.CancelledError) or not self.service.running:
            # Stopping: no next attempt.
            return failure
        self.lastFailure = failure
        self.component.metrics.countNegotiationFailure("initiating", failureCondition(failure))
        delay = self._nextDelay = self._delay()
        log.warn(
            "{name}: cannot connect to {target} ({why}); trying again in {delay:.3g} s (at {at})",
            name=", ".join(self.hostnames),
            target=target.address,
            why=target.why(failure),
            delay=delay,
            at=time.strftime("%H:%M:%S", time.localtime(self.component.reactor.seconds() + delay)),
        )
        return failure

    def buildProtocol(self, addr: IAddress | None) -> NegotiatingXmlStream:
        # Remembered for _prepare: ClientService hands that its own proxy
        # of this stream, whose wrapped protocol is not public.
        self._building = self.component.buildStream(self, addr)
        return self._building

    def _prepare(self, proxy: object) -> defer.Deferred[None]:
        """
        Wait for negotiation. This always fires with C{None} (never fails):
        ClientService cannot handle a failed preparation whose connection
        is lost afterwards, so a failed negotiation is recorded, its stream
        closes, and ClientService sees an ordinary connection loss.
        """
        # ClientService hands us its proxy of the stream; attributes must
        # be set on the stream itself, which this link built for this very
        # connection (ClientService makes one connection at a time, and
        # prepares it right after building it).
        xs, self._building = self._building, None
        assert xs is not None, "a connection prepared that this link did not build"

        def failed(failure: Failure) -> None:
            self.lastFailure = failure
            self.component.metrics.countNegotiationFailure("initiating", failureCondition(failure))
            refusals = self._refusalsOf(failure)
            if refusals:
                # Each name keeps its own count; the delay is worked out
                # now so that the log line and the application know it.
                for refusal in refusals:
                    self.component._noteRefusal(refusal)
                self._nextDelay = self._delay()
            why = _why(failure)
            if self.component.clientCertificate is not None and failure.check(ConnectionLost, ConnectionDone):
                # A server that refuses a client certificate (TLS 1.3)
                # drops the connection after our side of the handshake,
                # often without saying why.
                why += "; if the server checks client certificates, it may have refused ours (see its log)"
            if isFatal(failure):
                hint = "; waiting at least %g s before the next try" % (self.component.fatalRetryDelay,)
            elif self._nextDelay is not None:
                hint = "; trying again in %.3g s" % (self._nextDelay,)
            else:
                hint = ""
            log.warn(
                "{name}: connecting to {server} failed ({why}){hint}",
                name=", ".join(self.hostnames),
                server=self.component.server,
                why=why,
                hint=hint,
            )
            for refusal in refusals:
                self.component._reportRefusal(
                    refusal, self._nextDelay if refusal.retryable else None
                )

        def ready(result: NegotiationResult) -> None:
            self.negotiation = result
            self.lastFailure = None
            self._nextDelay = None
            self._failuresBeforeReady = self.failures
            self.failures = 0
            self.xmlstream = xs
            xs.elementHandler = self.component._received
            xs.addObserver(STREAM_END_EVENT, lambda reason: self._lost(xs, reason))
            self.component._linkReady(self)
            self._schedulePing()

        # buildStream's factories give their streams initiating adapters.
        authenticator = cast("InitiatingAdapter[Machine]", xs.authenticator)
        return authenticator.negotiated.addCallbacks(ready, failed)

    def _refusalsOf(self, failure: Failure) -> list[BindError]:
        """
        The hostnames a failed connection reports refused: every name, when
        none could be bound (XEP-0225); the connection's name, when an
        XEP-0114 server answered C{conflict} (it is connected already).
        """
        value = failure.value
        if isinstance(value, NoHostnameBound):
            return list(value.refusals)
        if (
            self.component.protocol == "xep0114"
            and isinstance(value, jerror.StreamError)
            and value.condition == "conflict"
        ):
            return [BindError(self.hostnames[0], "conflict", value.text)]
        return []

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
        if xs is None or not self.bound:
            return
        iq = domish.Element((None, "iq"))
        iq["type"] = "get"
        iq["from"] = self.bound[0]
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
                # A connected stream's transport: TCP, TLS over it, or
                # xmppcomp.testing's in-memory one; each can abort.
                cast(ITCPTransport, xs.transport).abortConnection()
            elif failure.check(jerror.StanzaError):
                answered(None)

        self.component.request(iq, timeout=self.component.keepaliveTimeout).addCallbacks(answered, failed)

    def _lost(self, xs: NegotiatingXmlStream, reason: Failure) -> None:
        if self.xmlstream is not xs:
            return
        self._cancelPing()
        self.xmlstream = None
        ended = xs.streamEnded or reason
        refusals = self._refusalsOf(ended) if isinstance(ended, Failure) else []
        if refusals:
            # An XEP-0114 server that took the handshake and then said the
            # name is connected already: a failed attempt, not a
            # connection that worked, so the backoff keeps growing.
            self.failures = self._failuresBeforeReady
            self.lastFailure = ended
            for refusal in refusals:
                self.component._noteRefusal(refusal)
            self._nextDelay = self._delay()
        log.info(
            "{name}: connection to {server} ended ({why}){next}",
            name=", ".join(self.hostnames),
            server=self.component.server,
            why=_why(ended),
            next="; reconnecting" if self.component.running else "",
        )
        self.component._linkLost(self, reason)
        for refusal in refusals:
            self.component._reportRefusal(refusal, self._nextDelay)


class _Target:
    """
    Where a component connects, as its messages name it.

    @ivar address: C{host:port} when the endpoint string says, else the
        endpoint's description.
    @ivar host: the host name, or C{None}.
    @ivar timeout: the endpoint's connect timeout in seconds, or C{None}.
    """

    def __init__(self, address: str, host: str | None = None, timeout: float | None = None) -> None:
        self.address = address
        self.host = host
        self.timeout = timeout

    @classmethod
    def of(cls, server: str | IStreamClientEndpoint) -> _Target:
        """
        The target of a C{server} endpoint string (C{tcp:}, C{tls:} and
        their C{host=}/C{port=}/C{timeout=} or positional forms), or of an
        endpoint given directly.
        """
        if not isinstance(server, str):
            return cls(repr(server))
        kind, _, rest = server.partition(":")
        if kind not in ("tcp", "tls", "tcp6", "ssl"):
            return cls(server)
        positional: list[str] = []
        named: dict[str, str] = {}
        for part in splitEndpoint(rest):
            key, sep, value = part.partition("=")
            if sep:
                named[key] = value
            else:
                positional.append(part)
        host = named.get("host", positional[0] if positional else None)
        port = named.get("port", positional[1] if len(positional) > 1 else None)
        if host is None or port is None:
            return cls(server)
        try:
            timeout: float | None = float(named.get("timeout", "30"))
        except ValueError:
            timeout = None
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return cls(address, host, timeout)

    def why(self, failure: Failure) -> str:
        """
        Why connecting failed, in words.
        """
        value = failure.value
        if isinstance(value, ierror.ConnectionRefusedError):
            return "connection refused: nothing listens there, or a firewall refuses"
        if isinstance(value, ierror.DNSLookupError):
            detail = str(value.args[0]) if value.args else ""
            return f"DNS lookup of {self.host or self.address} failed" + (f": {detail}" if detail else "")
        if isinstance(value, (ierror.TimeoutError, ierror.TCPTimedOutError)):
            within = "" if self.timeout is None else f" within {self.timeout:g} s"
            return f"timed out: no answer{within}"
        if isinstance(value, ierror.NoRouteError):
            return "no route to the host"
        return str(value) or type(value).__name__


@implementer(IStreamClientEndpoint)
class _ReportingEndpoint:
    """
    The endpoint of a link's C{ClientService}: the component's endpoint,
    whose failed attempts the link reports (L{_Link.connectFailed}), and
    which Twisted's own messages name by its target.
    """

    def __init__(self, endpoint: IStreamClientEndpoint, link: _Link, target: _Target) -> None:
        self._endpoint = endpoint
        self._link = link
        self._target = target

    def connect(self, protocolFactory: IProtocolFactory) -> defer.Deferred[Any]:
        return self._endpoint.connect(protocolFactory).addErrback(self._link.connectFailed, self._target)

    def __repr__(self) -> str:
        return self._target.address


class _LinkFactory(protocol.ClientFactory):
    """
    Builds a fresh negotiating stream, with the link's current hostnames,
    for each connection attempt.
    """

    def __init__(self, link: _Link) -> None:
        self.link = link

    def buildProtocol(self, addr: IAddress | None) -> NegotiatingXmlStream:
        return self.link.buildProtocol(addr)


@implementer(IStanzaFilters)
class Component(Service):
    """
    An XMPP server component: connects, binds its hostnames, reconnects,
    and hosts handlers.

    Handlers are wokkel C{XMPPHandler}s: C{handler.setHandlerParent(component)}
    (or L{addHandler}). They get a L{ComponentStream} as C{xmlstream}, and
    C{connectionInitialized} once the component is connected with at least
    one hostname bound (again after each reconnection).

    Hostnames are independent. A name the server refuses does not unbind
    or disconnect the others: it is logged, counted in
    C{xmppcomp_bind_refusals_total} (by hostname and condition) and
    reported to L{hostnameRefused}. A C{conflict} or
    C{resource-constraint} (or any error of type C{wait}) is tried again
    on the open stream after the name's own backoff (L{bindRetryPolicy}
    of its count of refusals); any other refusal (C{not-allowed}, ...) is
    not tried again before the next connection or an explicit L{bind}.
    L{hostnameBound} is told of each name bound. The connection itself is
    paused for C{fatalRetryDelay} only after wrong credentials, a
    certificate mismatch, or when every name was refused for good; when
    every name is refused but one is worth retrying (all C{conflict}, say),
    it reconnects after the shortest backoff among them.

    Handlers may take stanzas over on their way out or in
    (L{IStanzaFilters<xmppcomp.interfaces.IStanzaFilters>}:
    L{addSendFilter}, L{addReceiveFilter}); the XTLS endpoint
    (L{xmppcomp.xtls.XTLSHandler}) does, to answer requests that came
    through a tunnel through that tunnel.

    @ivar server: the server: a Twisted client endpoint string
        (C{tcp:host=...:port=...}; C{tls:host=...:port=...} for direct TLS)
        or an L{IStreamClientEndpoint}.
    @ivar hostnames: the hostnames this component binds (again after each
        reconnection), whether bound right now or not (L{isConnected}
        tells).
    @ivar retryPolicy: seconds to wait before connecting again, from the
        count of consecutive failed attempts (1 for the first); unless
        given, a backoff from 1 s growing by half each time up to
        C{maxRetryDelay}, with up to a second of jitter.
    @ivar limits: its limits and timeouts (L{ComponentLimits}). Each but
        C{iqTimeout} is also an attribute of its own (C{maxQueued},
        C{queueTimeout}, C{negotiationTimeout}, C{fatalRetryDelay},
        C{maxRetryDelay}), which reads that field of C{limits} (and
        setting it changes the field).
    @ivar iqTimeout: seconds L{request} waits for an answer unless told:
        C{limits.iqTimeout}, unless the C{iqTimeout} argument says
        otherwise (C{None}: no limit).
    @ivar maxRetryDelay: the ceiling of that default backoff, in seconds
        (60 unless given; unused with a C{retryPolicy} of one's own).
    @ivar bindRetryPolicy: seconds to wait before binding a refused name
        again, from its count of consecutive refusals (1 for the first);
        C{retryPolicy} unless given.
    @ivar protocol: C{"xep0225"} or C{"xep0114"}.
    @ivar handlers: the handlers (a component is their
        C{XMPPHandlerCollection}; it is not a C{MultiService}, whose
        iteration would clash with that).
    @ivar xmlstream: the L{ComponentStream} while connected, else C{None}.
    @ivar keepaliveInterval: seconds between XEP-0199 pings to the server
        (C{None}: no pings); a ping unanswered for C{keepaliveTimeout}
        seconds drops the connection, which then reconnects.
    @ivar metrics: where the component counts its failed negotiations
        (C{side="initiating"}), the binds the server refused and the
        answers its requests ignored (L{Metrics}); a registry of its own
        unless given one (the twistd plugin gives the one it serves).
    @ivar jids: the parsed JIDs of this component's requests (the senders
        of their answers), in a L{JIDCache} of its own.
    @ivar endpointFactory: makes the client endpoint of each connection
        from its L{Link} (called once per connection, when the component
        is made, or when L{bind} adds an XEP-0114 connection), or C{None}
        for the endpoint C{server} describes. Tests give one that connects
        in memory (L{xmppcomp.testing.MemoryRouter.endpointFactory}).
    """

    maxQueued = _Limit[int]()
    queueTimeout = _Limit[float]()
    negotiationTimeout = _Limit[float]()
    fatalRetryDelay = _Limit[float]()
    maxRetryDelay = _Limit[float]()

    def __init__(
        self,
        server: str | IStreamClientEndpoint,
        serverDomain: str,
        hostnames: Sequence[str],
        secret: str | None = None,
        identity: str | None = None,
        protocol: str = "xep0225",
        clientCertificate: PrivateCertificate | None = None,
        trust: Trust | None = None,
        requireTLS: bool = True,
        reactor: IReactorTime | None = None,
        maxQueued: int | _FromLimits = _FROM_LIMITS,
        queueTimeout: float | _FromLimits = _FROM_LIMITS,
        iqTimeout: float | None | _FromLimits = _FROM_LIMITS,
        retryPolicy: Callable[[int], float] | None = None,
        fatalRetryDelay: float | _FromLimits = _FROM_LIMITS,
        maxRetryDelay: float | _FromLimits = _FROM_LIMITS,
        negotiationTimeout: float | _FromLimits = _FROM_LIMITS,
        tlsCreator: IOpenSSLClientConnectionCreator | None = None,
        keepaliveInterval: float | None = 60.0,
        keepaliveTimeout: float = 30.0,
        bindRetryPolicy: Callable[[int], float] | None = None,
        metrics: Metrics | None = None,
        endpointFactory: Callable[[Link], IStreamClientEndpoint] | None = None,
        limits: ComponentLimits | None = None,
    ) -> None:
        """
        @param maxQueued: overrides that field of C{limits}; likewise
            C{queueTimeout}, C{iqTimeout}, C{fatalRetryDelay},
            C{maxRetryDelay} and C{negotiationTimeout}.
        @param endpointFactory: see L{endpointFactory}; it replaces
            overriding the deprecated L{endpointFor}.
        @param limits: see L{limits}; the defaults of L{ComponentLimits}
            unless given.
        """
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
        self.hostnames = [normalizeDomain(name) for name in hostnames]
        self.identity = identity or self.hostnames[0]
        self.secret = secret
        self.protocol = protocol
        self.namespace = NS_COMPONENT_ACCEPT if protocol == "xep0114" else NS_CLIENT
        self.clientCertificate = clientCertificate
        self.metrics = Metrics() if metrics is None else metrics
        self.jids = JIDCache()
        self.endpointFactory = endpointFactory
        if type(self).endpointFor is not Component.endpointFor:
            warnings.warn(
                f"Overriding endpointFor ({type(self).__module__}."
                f"{type(self).__qualname__}.endpointFor) is deprecated: "
                + getDeprecationWarningString(
                    Component.endpointFor,
                    _ENDPOINT_FOR_DEPRECATED,
                    replacement=_ENDPOINT_FOR_REPLACEMENT,
                ),
                DeprecationWarning,
                stacklevel=2,
            )

        # Shared by this component's connections (not the process's).
        self._tlsDeclarations = TLSDeclarations()
        self._offers = OfferMemory()
        self.trust = trust
        self.tlsCreator = tlsCreator
        self.requireTLS = requireTLS
        self.reactor = reactor
        # Any: each keyword has its field's type.
        overrides: dict[str, Any] = {
            "maxQueued": maxQueued,
            "queueTimeout": queueTimeout,
            "iqTimeout": iqTimeout,
            "negotiationTimeout": negotiationTimeout,
            "fatalRetryDelay": fatalRetryDelay,
            "maxRetryDelay": maxRetryDelay,
        }
        # iqTimeout=None (no limit) is the component's alone: a limit is a number.
        self.limits = attrs.evolve(
            ComponentLimits() if limits is None else limits,
            **{name: value for name, value in overrides.items() if value is not _FROM_LIMITS and value is not None},
        )
        self.iqTimeout: float | None = None if iqTimeout is None else self.limits.iqTimeout
        self.retryPolicy = retryPolicy or backoffPolicy(
            initialDelay=min(1.0, self.maxRetryDelay), maxDelay=self.maxRetryDelay, factor=1.5, jitter=random.random
        )
        self.bindRetryPolicy = bindRetryPolicy or self.retryPolicy
        self.keepaliveInterval = keepaliveInterval
        self.keepaliveTimeout = keepaliveTimeout
        self.handlers: list[Handler] = []
        self.xmlstream: ComponentStream | None = None
        #: Stanzas waiting for a connection (the hostname found once).
        self._queue: deque[_Queued] = deque()
        #: Stanzas queued, by the hostname they come from (C{None}: no
        #: C{from}): a stanza waits only behind those of its own name.
        self._queuedFrom: dict[str | None, int] = {}
        self._names: dict[str, _Name] = {}
        self._links: list[_Link] = []
        self._expiry: IDelayedCall | None = None
        self._readyWaiters: list[defer.Deferred[None]] = []
        # Tuples, replaced (not changed) when a filter comes or goes: a
        # filter may add or remove one while they run.
        self._sendFilters: tuple[StanzaFilter, ...] = ()
        self._receiveFilters: tuple[StanzaFilter, ...] = ()
        if protocol == "xep0225":
            self._links.append(_Link(self, self.hostnames))
        else:
            self._links.extend(_Link(self, [name]) for name in self.hostnames)

    # XMPPHandlerCollection, as wokkel's handlers expect of their parent.

    def __iter__(self) -> Iterator[Handler]:
        return iter(self.handlers)

    def addHandler(self, handler: Handler) -> None:
        self.handlers.append(handler)
        if self.xmlstream is not None:
            handler.makeConnection(self.xmlstream)
            handler.connectionInitialized()

    def removeHandler(self, handler: Handler) -> None:
        self.handlers.remove(handler)

    # Stanza filters (IStanzaFilters).

    def addSendFilter(self, f: StanzaFilter) -> None:
        """
        Give C{f} every stanza L{send} and L{sendOrFail} are given (an
        element: raw XML text is not filtered) before it is sent or
        queued, after the filters added before it. When C{f} returns
        C{True} it took the stanza over (sent it another way, or dropped
        it): it is neither sent nor queued, and L{sendOrFail} fires with
        C{None}. When C{f} raises, the stanza is not sent either, and
        L{sendOrFail} fails with the exception (fail closed: a filter that
        could not decide must not let a stanza it meant to keep leave).

        Without filters, sending costs one test of an empty tuple more.
        """
        self._sendFilters = (*self._sendFilters, f)

    def removeSendFilter(self, f: StanzaFilter) -> None:
        """
        Stop giving stanzas to C{f}, a filter of L{addSendFilter}.

        @raise ValueError: C{f} is not one.
        """
        self._sendFilters = _without(self._sendFilters, f)

    def addReceiveFilter(self, f: StanzaFilter) -> None:
        """
        Give C{f} every stanza received from the server before it is
        dispatched on L{xmlstream}, after the filters added before it.
        When C{f} returns C{True} it took the stanza over: it is not
        dispatched. When C{f} raises, the stanza is dropped and the
        failure logged. (Stanzas a handler dispatches itself, such as
        those the XTLS endpoint decrypts, do not pass here.)
        """
        self._receiveFilters = (*self._receiveFilters, f)

    def removeReceiveFilter(self, f: StanzaFilter) -> None:
        """
        Stop giving stanzas to C{f}, a filter of L{addReceiveFilter}.

        @raise ValueError: C{f} is not one.
        """
        self._receiveFilters = _without(self._receiveFilters, f)

    # Connections.

    def endpointFor(self, link: _Link) -> IStreamClientEndpoint:
        """
        The client endpoint of a connection: C{endpointFactory}'s, or the
        one C{server} describes.

        Deprecated: give the component an C{endpointFactory} instead of
        overriding this (an override is still used, with a
        L{DeprecationWarning} when the component is made).
        """
        # Not @deprecated: pydoctor refuses its Version(..., 0, ...).
        warnings.warn(
            getDeprecationWarningString(
                Component.endpointFor,
                _ENDPOINT_FOR_DEPRECATED,
                replacement=_ENDPOINT_FOR_REPLACEMENT,
            ),
            DeprecationWarning,
            stacklevel=2,
        )
        if self.endpointFactory is not None:
            return self.endpointFactory(link)
        return self._serverEndpoint(link)

    def _endpointOf(self, link: _Link) -> IStreamClientEndpoint:
        """
        The endpoint a new connection uses: a subclass's override of the
        deprecated L{endpointFor}, else C{endpointFactory}'s, else the one
        C{server} describes.
        """
        if type(self).endpointFor is not Component.endpointFor:
            return self.endpointFor(link)
        if self.endpointFactory is not None:
            return self.endpointFactory(link)
        return self._serverEndpoint(link)

    def _serverEndpoint(self, link: _Link) -> IStreamClientEndpoint:
        """
        The client endpoint C{server} describes: an endpoint string, where
        C{tls:HOST:PORT} means direct TLS with the same certificate checks
        as STARTTLS, or an L{IStreamClientEndpoint} given directly.
        """
        description = self.server
        if not isinstance(description, str):
            # An IStreamClientEndpoint given directly.
            return description
        tcp = directTLSEndpoint(description, self.protocol)
        if tcp is not None:
            return wrapClientTLS(self._policy(link).tlsOptions(), clientFromString(self.reactor, tcp))
        if self.protocol == "xep0114" and description.startswith("tls:"):
            # Direct TLS for XEP-0114, checked like XEP-0225's: the trust
            # given (the system store by default) for the server domain.
            creator = self.tlsCreator or tls.clientTLSOptions(
                self.serverDomain, self.trust or tls.trustSystem(), self.clientCertificate
            )
            return wrapClientTLS(creator, clientFromString(self.reactor, "tcp:" + description[len("tls:"):]))
        return clientFromString(self.reactor, description)

    def _target(self) -> _Target:
        return _Target.of(self.server)

    def _policy(self, link: _Link) -> InitiatingPolicy:
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
            tlsDeclarations=self._tlsDeclarations,
            offers=self._offers,
            metrics=self.metrics,
        )

    def buildStream(self, link: _Link, addr: IAddress | None) -> NegotiatingXmlStream:
        """
        A new negotiating stream for one connection attempt of C{link}.
        """
        if self.protocol == "xep0114":
            assert self.secret is not None
            factory: AcceptInitiatingFactory | InitiatingFactory = AcceptInitiatingFactory(
                AcceptInitiatingPolicy(
                    hostname=link.hostnames[0],
                    secret=self.secret,
                    negotiationTimeout=self.negotiationTimeout,
                ),
                reactor=self.reactor,
            )
        else:
            factory = InitiatingFactory(self._policy(link), reactor=self.reactor)
        return factory.buildProtocol(addr)

    def startService(self) -> None:
        super().startService()
        if self.protocol == "xep0114" and isinstance(self.server, str) and not self.server.startswith("tls:"):
            log.warn(
                "INSECURE: the XEP-0114 stream to {server} is not encrypted: every stanza, and the "
                "handshake's digest of the secret (enough to guess a weak secret offline), cross the "
                "network in clear; keep it on loopback or a trusted network, or connect with direct TLS "
                "(a tls: server endpoint)",
                server=self._target().address,
            )
        for link in self._links:
            link.service.startService()

    # Any: inlineCallbacks types what is yielded as Deferred[Any], and
    # Service.stopService may give None.
    @defer.inlineCallbacks
    def stopService(self) -> Generator[Any, object, None]:
        yield super().stopService()
        for name in self._names.values():
            name.cancelRetry()
        closing = []
        for link in self._links:
            link._cancelPing()
            if link.xmlstream is not None:
                closing.append(link.xmlstream.closeStream())
        # The closing handshake (RFC 6120 section 4.4) before the
        # connections go: what the server sent before its closing tag is
        # still read and handled (an XEP-0070 answer for another confirmer
        # instance is relayed to it, say), within each stream's close
        # timeout.
        yield defer.gatherResults(closing)
        yield defer.gatherResults([link.service.stopService() for link in self._links])
        self._failQueue(NotConnected("the component was stopped"))

    def whenReady(self) -> defer.Deferred[None]:
        """
        Fires on the reactor turn after every connection is negotiated,
        each with at least one hostname bound (a name refused meanwhile is
        reported to L{hostnameRefused}; L{isConnected} tells which are
        bound).
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
        binder = link.binder
        refused = list(binder.refused) if binder is not None else []
        refusedNames = {refusal.hostname for refusal in refused}
        link.bound = [name for name in link.hostnames if name not in refusedNames]
        log.info(
            "{server}: bound {names} over {protocol}{refused}",
            server=self.server,
            names=", ".join(link.bound),
            protocol=self.protocol,
            refused="; refused: %s" % (", ".join("%s (%s)" % (r.hostname, r.condition) for r in refused),)
            if refused
            else "",
        )
        if self.xmlstream is None:
            self.xmlstream = ComponentStream(self)
            for handler in list(self.handlers):
                handler.makeConnection(self.xmlstream)
                handler.connectionInitialized()
            self.componentReady(self.xmlstream)
        for name in link.bound:
            self._nameBound(name)
        for refusal in refused:
            self._refused(link, refusal)
        self._flushQueue()
        self._notifyReady()

    def _linkLost(self, link: _Link, reason: Failure) -> None:
        for name in link.bound:
            self._callHook(self.hostnameLost, name)
        link.bound = []
        for name in link.hostnames:
            state = self._names.get(name)
            if state is not None:
                # Bound again (or refused again) with the next connection.
                state.cancelRetry()
                state.refusal = None
        if any(other.xmlstream is not None for other in self._links):
            return
        stream, self.xmlstream = self.xmlstream, None
        if stream is None:
            return
        for handler in list(self.handlers):
            handler.connectionLost(reason)
        stream.lost(reason)
        self.componentLost(reason)

    # Hostnames, one by one.

    def _nameBound(self, name: str) -> None:
        state = self._names.pop(name, None)
        if state is not None:
            state.cancelRetry()
        self._callHook(self.hostnameBound, name)

    def _callHook(self, hook: Callable[_P, None], *args: _P.args, **kwargs: _P.kwargs) -> None:
        """
        Call a per-hostname hook; what it raises is logged, and the
        component goes on.
        """
        try:
            hook(*args, **kwargs)
        except Exception:
            log.failure("{hook!r} failed", hook=hook)

    def _noteRefusal(self, refusal: BindError) -> _Name:
        """
        Count a refusal of C{refusal.hostname}: its backoff and the metric.
        """
        state = self._names.setdefault(refusal.hostname, _Name())
        state.failures += 1
        state.cancelRetry()
        self.metrics.bindRefusals.labels(refusal.hostname, refusal.condition).inc()
        return state

    def _reportRefusal(self, refusal: BindError, retryIn: float | None) -> None:
        """
        Tell the log and L{hostnameRefused} of a refusal.
        """
        if retryIn is not None:
            then = "trying again in %.3g s" % (retryIn,)
        elif refusal.retryable:
            then = "trying again with the next connection"
        else:
            then = "not trying again before the next connection or bind()"
        log.warn(
            "{server}: {hostname} was refused ({condition}{text}); {then}",
            server=self.server,
            hostname=refusal.hostname,
            condition=refusal.condition,
            text=": %s" % (refusal.text,) if refusal.text else "",
            then=then,
        )
        self._callHook(self.hostnameRefused, refusal, retryIn)

    def _refused(self, link: _Link, refusal: BindError) -> None:
        """
        The server refused a name on the open stream of C{link}: report it,
        and bind it again after its backoff if that may help; else fail
        the stanzas waiting to be sent from it.
        """
        state = self._noteRefusal(refusal)
        state.refusal = refusal
        retryIn: float | None = None
        if refusal.retryable:
            retryIn = self.bindRetryPolicy(state.failures)
            state.retry = self.reactor.callLater(retryIn, self._retryBind, link, refusal.hostname)
        else:
            self._failQueued(
                refusal.hostname,
                NotConnected("%s is not bound: the server refused it (%s)" % (refusal.hostname, refusal.condition)),
            )
        self._reportRefusal(refusal, retryIn)

    def _namesBackoff(self, refusals: Sequence[BindError]) -> float:
        """
        The shortest backoff among the refused names worth retrying.
        """
        delays = [
            self.bindRetryPolicy(self._names[r.hostname].failures if r.hostname in self._names else 1)
            for r in refusals
            if r.retryable
        ]
        return min(delays) if delays else self.fatalRetryDelay

    def _retryBind(self, link: _Link, name: str) -> None:
        state = self._names.get(name)
        if state is not None:
            state.retry = None
        if link.xmlstream is None or name not in link.hostnames or name in link.bound:
            return
        self._bindOnStream(link, name).addErrback(lambda failure: None)

    def _bindOnStream(self, link: _Link, name: str) -> defer.Deferred[str]:
        """
        Bind C{name} on the open stream of C{link}; a refusal is reported
        (and retried when it may help).

        @return: fires with the name bound, or fails with the L{BindError}
            or why the request got no answer.
        """
        namespace = self._bindNamespace(link)
        stream = link.xmlstream

        def bound(result: str) -> str:
            if link.xmlstream is stream and name not in link.bound:
                link.bound.append(name)
                log.info("{server}: bound {name}", server=self.server, name=name)
                self._nameBound(name)
                self._flushQueue()
            return result

        def failed(failure: Failure) -> str | Failure:
            if link.xmlstream is stream and name in link.bound:
                # Bound meanwhile by another request for it (a retry and
                # an explicit bind() crossing): the server refused the
                # second one only.
                return name
            if isinstance(failure.value, jerror.StanzaError) and not isinstance(failure.value, BindError):
                refusal = BindError.fromStanzaError(name, failure.value)
                if link.xmlstream is stream and name in link.hostnames:
                    self._refused(link, refusal)
                return Failure(refusal)
            if failure.check(TimeoutError) and link.xmlstream is stream and name in link.hostnames:
                # No answer in time: try again after the name's backoff.
                state = self._names.setdefault(name, _Name())
                state.failures += 1
                state.cancelRetry()
                state.retry = self.reactor.callLater(
                    self.bindRetryPolicy(state.failures), self._retryBind, link, name
                )
            return failure

        d = self.request(bindRequest(name, namespace))
        return d.addCallback(boundHostname, namespace, name).addCallbacks(bound, failed)

    # Hooks for subclasses.

    def componentReady(self, xmlstream: ComponentStream) -> None:
        """
        Called when the component is connected with at least one hostname
        bound, after the handlers were initialised (again after each
        reconnection). A subclass adds its observers to C{xmlstream} here,
        e.g. C{xmlstream.addObserver("/message", self.onMessage)}.
        L{hostnameBound} and L{hostnameRefused} follow, for each name.
        """

    def componentLost(self, reason: Failure) -> None:
        """
        Called when every connection of the component is lost (it
        reconnects by itself).
        """

    def hostnameBound(self, hostname: str) -> None:
        """
        Called when C{hostname} is bound: with each connection, after a
        retry, or after L{bind}. Stanzas to it are delivered from now on.
        """

    def hostnameRefused(self, error: BindError, retryIn: float | None) -> None:
        """
        Called when the server refused to bind a hostname. The other names
        are not affected.

        @param error: the refusal: the L{BindError} (a
            L{StanzaError<twisted.words.protocols.jabber.error.StanzaError>})
            with C{hostname}, C{condition} and C{text}.
        @param retryIn: seconds until it is tried again (a C{conflict},
            C{resource-constraint} or other error of type C{wait}: on the
            open stream after the name's backoff, or with the next
            connection when no name could be bound), or C{None} when it is
            not tried again before the next connection or an explicit
            L{bind} (C{not-allowed} and other refusals).
        """

    def hostnameLost(self, hostname: str) -> None:
        """
        Called when C{hostname} stops being bound because its connection
        ended (it is bound again with the next one), not after L{unbind}.
        """

    @property
    def links(self) -> tuple[Link, ...]:
        """
        The component's connections, in order: one over XEP-0225, one per
        hostname over XEP-0114 (a snapshot; read, do not change).
        """
        return tuple(self._links)

    @property
    def negotiations(self) -> list[NegotiationResult | None]:
        """
        The L{xmppcomp.stream.initiating.NegotiationResult} of each
        connection (mechanism, TLS version, elapsed time), C{None} for a
        connection never negotiated.
        """
        return [link.negotiation for link in self._links]

    @property
    def boundHostnames(self) -> list[str]:
        """
        The hostnames bound right now, in the order of L{hostnames}.
        """
        bound = {name for link in self._links if link.xmlstream is not None for name in link.bound}
        return [name for name in self.hostnames if name in bound]

    def isConnected(self, hostname: str | None = None) -> bool:
        """
        Whether a connection carries C{hostname}, bound (any connection,
        if C{None}).
        """
        return self._linkFor(hostname) is not None

    def _linkFor(self, hostname: str | None) -> _Link | None:
        for link in self._links:
            if link.xmlstream is None:
                continue
            if hostname is None or hostname in link.bound:
                return link
        return None

    def _streamFor(self, hostname: str | None) -> NegotiatingXmlStream | None:
        """The stream of L{_linkFor}, or C{None}."""
        link = self._linkFor(hostname)
        return None if link is None else link.xmlstream

    def _linkOfName(self, hostname: str) -> _Link | None:
        for link in self._links:
            if hostname in link.hostnames:
                return link
        return None

    # Receiving.

    def _received(self, element: domish.Element) -> None:
        if self._receiveFilters:
            for f in self._receiveFilters:
                try:
                    if f(element):
                        return
                except Exception:
                    log.failure("a receive filter failed: stanza dropped")
                    return
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

        A send filter (L{addSendFilter}) may take the stanza over first.

        @return: a L{Deferred} that fires when the stanza is written (or a
            send filter took it over), or fails with L{QueueFull},
            L{QueueTimeout}, L{NotConnected} (or what a send filter
            raised).
        @raise UnserializableElement: the stanza would not be well-formed
            XML (a character XML 1.0 forbids); nothing is sent or queued,
            and the stream stays up.
        """
        if isinstance(obj, str):
            # Raw XML (wokkel sends a few strings): only for an open stream.
            xs = self._streamFor(None)
            if xs is None:
                return defer.fail(NotConnected("raw XML cannot wait for a connection"))
            xs.send(obj)
            return defer.succeed(None)
        if self._sendFilters:
            for f in self._sendFilters:
                try:
                    if f(obj):
                        return defer.succeed(None)
                except Exception:
                    return defer.fail()
        hostname = self._fromOf(obj)
        if hostname is not None and hostname not in self.hostnames:
            return defer.fail(NotConnected("%s is not a hostname of this component" % (hostname,)))
        xs = self._streamFor(hostname)
        if xs is not None and not self._queuedFrom.get(hostname):
            xs.send(obj)
            return defer.succeed(None)
        if hostname is not None:
            refusal = self._refusedForGood(hostname)
            if refusal is not None:
                return defer.fail(
                    NotConnected("%s is not bound: the server refused it (%s)" % (hostname, refusal.condition))
                )
        if len(self._queue) >= self.maxQueued:
            return defer.fail(QueueFull("%d stanzas are waiting already" % (len(self._queue),)))
        # Checked now, not when the queue is flushed into a new stream.
        checkSerializable(obj.toXml(), obj)
        d: defer.Deferred[None] = defer.Deferred()
        self._queue.append((obj, hostname, self.reactor.seconds(), d))
        self._queuedFrom[hostname] = self._queuedFrom.get(hostname, 0) + 1
        self._scheduleExpiry()
        return d

    def _refusedForGood(self, hostname: str) -> BindError | None:
        """
        The refusal of C{hostname} on its open connection, if it will not
        be tried again before the next connection or an explicit L{bind}.
        """
        state = self._names.get(hostname)
        if state is None or state.refusal is None or state.refusal.retryable:
            return None
        link = self._linkOfName(hostname)
        if link is None or link.xmlstream is None:
            return None
        return state.refusal

    @staticmethod
    def _fromOf(element: domish.Element) -> str | None:
        return domainOf(element.getAttribute("from", "")) if element.hasAttribute("from") else None

    def _dequeued(self, hostname: str | None) -> None:
        left = self._queuedFrom.get(hostname, 0) - 1
        if left > 0:
            self._queuedFrom[hostname] = left
        else:
            self._queuedFrom.pop(hostname, None)

    def _flushQueue(self) -> None:
        """
        Send every queued stanza whose hostname is bound now, in order; the
        others keep waiting (a stanza waits only behind those from its own
        hostname).
        """
        if not self._queue:
            return
        sending: list[tuple[NegotiatingXmlStream, domish.Element, defer.Deferred[None] | None]] = []
        kept: deque[_Queued] = deque()
        for entry in self._queue:
            element, hostname, _, d = entry
            xs = self._streamFor(hostname)
            if xs is None:
                kept.append(entry)
                continue
            self._dequeued(hostname)
            sending.append((xs, element, d))
        self._queue = kept
        for xs, element, d in sending:
            xs.send(element)
        for xs, element, d in sending:
            if d is not None:
                d.callback(None)
        self._cancelExpiry()
        self._scheduleExpiry()

    def _cancelExpiry(self) -> None:
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None

    def _scheduleExpiry(self) -> None:
        if self._expiry is not None and self._expiry.active():
            return
        if not self._queue:
            return
        oldest = self._queue[0][2]
        delay = max(0.0, oldest + self.queueTimeout - self.reactor.seconds())
        self._expiry = self.reactor.callLater(delay, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        now = self.reactor.seconds()
        while self._queue and self._queue[0][2] + self.queueTimeout <= now:
            element, hostname, queued, d = self._queue.popleft()
            self._dequeued(hostname)
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
        self._queuedFrom = {}
        for element, hostname, queued, d in queue:
            if d is not None:
                d.errback(reason)

    def _failQueued(self, hostname: str, reason: Exception) -> None:
        """
        Fail the stanzas waiting to be sent from C{hostname}.
        """
        if not self._queuedFrom.get(hostname):
            return
        failing = [entry for entry in self._queue if entry[1] == hostname]
        self._queue = deque(entry for entry in self._queue if entry[1] != hostname)
        self._queuedFrom.pop(hostname, None)
        self._cancelExpiry()
        self._scheduleExpiry()
        for element, _, queued, d in failing:
            if d is not None:
                d.errback(reason)

    def request(self, iq: domish.Element, timeout: float | None = None) -> defer.Deferred[domish.Element]:
        """
        Send an IQ request and wait for its answer.

        The answer must carry the request's id and come from the entity
        asked (L{xmppcomp.iqtracker.defaultRule}, RFC 6120 section
        8.1.2.1): a C{result} only from the request's C{to} exactly; an
        C{error} also from its bare JID or domain; no C{from} only for a
        request to the server's own domain (or with no C{to}). An IQ with
        the id but from anyone else is ignored (it goes on to the other
        observers), counted in C{xmppcomp_iq_answers_mismatched_total} and
        logged at debug level; the request keeps waiting for its answer.

        @param iq: an C{<iq type='get'/>} or C{'set'} element; an
            unguessable id (L{xmppcomp.iqtracker.newRequestId}, 128 random
            bits) is added if it has none.
        @param timeout: seconds to wait for the answer once sent (default
            L{iqTimeout}).
        @return: a L{Deferred} firing with the result, or failing with the
            L{StanzaError<twisted.words.protocols.jabber.error.StanzaError>}
            answered, a L{TimeoutError}, L{QueueFull}, L{QueueTimeout},
            L{ConnectionLost}, or L{ValueError} for a C{to} that is not a
            JID or the id of a request still waiting.
        """
        try:
            addressee(iq)
        except ValueError as e:
            return defer.fail(e)
        if not iq.getAttribute("id"):
            iq["id"] = newRequestId()
        elif self.xmlstream is not None and iq["id"] in self.xmlstream.requests:
            return defer.fail(ValueError("a request with the id %r is waiting already" % (iq["id"],)))
        answer: defer.Deferred[domish.Element] = defer.Deferred()
        limit = self.iqTimeout if timeout is None else timeout

        def sent(_: None) -> defer.Deferred[domish.Element]:
            stream = self.xmlstream
            if stream is None:
                raise ConnectionLost("the connection was lost right after sending")
            stream.requests.expect(iq, answer.callback, answer.errback, limit)
            return answer

        return self.sendOrFail(iq).addCallback(sent)

    # Hostnames.

    def bind(self, hostname: str) -> defer.Deferred[str]:
        """
        Bind another hostname now, and again after every reconnection (or
        bind now a name of L{hostnames} that the server refused before).

        Over XEP-0225 it is bound on the open stream; over XEP-0114 a new
        connection is made for it.

        @return: a L{Deferred} firing with the bound name, or failing with
            the L{BindError} (a L{StanzaError}) the server answered (or the
            connection failure, for XEP-0114). After a C{conflict} or
            C{resource-constraint} the name is kept and tried again after
            its backoff (L{hostnameBound} tells when it is bound); after
            any other refusal a name that was not in L{hostnames} is
            forgotten.
        """
        name = normalizeDomain(hostname)
        if self.protocol == "xep0114":
            if name in self.hostnames:
                return defer.succeed(name)
            link = _Link(self, [name])
            self._links.append(link)
            self.hostnames.append(name)
            if self.running:
                link.service.startService()
            return self.whenReady().addCallback(lambda _: name)
        link = self._links[0]
        if name in link.bound and link.xmlstream is not None:
            return defer.succeed(name)
        if link.xmlstream is None:
            return defer.fail(NotConnected("not connected; %s will be bound on connection" % (name,)))
        known = name in self.hostnames
        state = self._names.get(name)
        if state is not None:
            # Asked explicitly: now, not after the backoff.
            state.cancelRetry()
            state.refusal = None
        if not known:
            self.hostnames.append(name)
        if name not in link.hostnames:
            # (Over XEP-0225 the link's list is L{hostnames} itself.)
            link.hostnames.append(name)

        def refused(failure: Failure) -> Failure:
            if isinstance(failure.value, BindError) and not known and not failure.value.retryable:
                # A new name refused for good is forgotten.
                self._forgetName(name)
            return failure

        return self._bindOnStream(link, name).addErrback(refused)

    def _forgetName(self, name: str) -> None:
        if name in self.hostnames:
            self.hostnames.remove(name)
        for link in self._links:
            if name in link.hostnames:
                link.hostnames.remove(name)
        state = self._names.pop(name, None)
        if state is not None:
            state.cancelRetry()
        self._failQueued(name, NotConnected("%s is no hostname of this component any more" % (name,)))

    def unbind(self, hostname: str) -> defer.Deferred[None]:
        """
        Unbind a hostname; it is not bound again after reconnection (nor
        tried again, if the server refused it).
        """
        name = normalizeDomain(hostname)
        if name not in self.hostnames:
            return defer.fail(ValueError("%s is not a hostname of this component" % (name,)))
        if self.protocol == "xep0114":
            link = next(link for link in self._links if link.hostnames == [name])
            self._links.remove(link)
            self.hostnames.remove(name)
            state = self._names.pop(name, None)
            if state is not None:
                state.cancelRetry()
            return link.service.stopService()
        link = self._links[0]
        wasBound = name in link.bound and link.xmlstream is not None
        if name in link.bound:
            link.bound.remove(name)
        self._forgetName(name)
        if not wasBound:
            return defer.succeed(None)
        namespace = self._bindNamespace(link)
        return self.request(bindRequest(name, namespace, "unbind")).addCallback(lambda _: None)

    def _bindNamespace(self, link: _Link) -> str:
        if link.binder is not None and link.binder.namespace:
            return link.binder.namespace
        return BIND_NAMESPACES[0]


def _why(reason: object) -> str:
    if isinstance(reason, Failure):
        value = reason.value
        if isinstance(value, jerror.StreamError):
            return "stream error %s" % (value.condition,)
        return str(value) or type(value).__name__
    return str(reason)
