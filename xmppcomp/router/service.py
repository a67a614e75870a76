# -*- test-case-name: tests.test_router_service -*-
"""
The receiving side as a service: accepts XEP-0225 components (TLS, SASL,
hostname bind) and XEP-0114 components (handshake) into one routing table
and routes stanzas between them.

L{Router} holds the table and the sessions and applies the decisions of
L{xmppcomp.router.routing.decide}; L{RouterService} wires listeners,
credentials and certificates from a L{xmppcomp.router.config.RouterConfig}.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Generator, Protocol, TypedDict, cast

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IProtocolFactory, IPushProducer, IReactorTime, ITransport
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import jid
from twisted.words.protocols.jabber.error import StanzaError, StreamError
from twisted.words.protocols.jabber.xmlstream import STREAM_AUTHD_EVENT, toResponse
from twisted.words.xish import domish
from twisted.words.xish.xmlstream import STREAM_CONNECTED_EVENT, STREAM_END_EVENT, STREAM_ERROR_EVENT
from zope.interface import implementer

from xmppcomp.router.config import RouterConfig, RouterLimits
from xmppcomp.interfaces import IRawStanzaParser, IReceivingSession
from xmppcomp.listening import ListenError
from xmppcomp.logs import Logger
from xmppcomp.metrics import Metrics
from xmppcomp.ns import NS_CLIENT, NS_COMPONENT_ACCEPT, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING
from xmppcomp.router.rawstanzas import RawStanzaParser
from xmppcomp.jids import domainOf, normalizeDomain
from xmppcomp.router.routing import (
    DEPARTED,
    Bounce,
    Deliver,
    Drop,
    Local,
    RoutingTable,
    StreamFault,
    bounceOf,
    boundRoute,
    decide,
    mayBounce,
    sizeAtMost,
    translateNamespace,
)
from xmppcomp.stream.bind import BindFeature, HostnameBinder, bindChild, bindFeatures
from xmppcomp.admission import Admission, AdmissionGate, fileLimitWarning, withBacklog
from xmppcomp.authz import HostnamePatterns, HostnamePolicy
from xmppcomp.stream import tls
from xmppcomp.stream.acceptreceiving import AcceptAuthenticator, AcceptFactory, AcceptPolicy
from xmppcomp.stream.receiving import (
    STREAM_CLOSED_EVENT,
    AuthFailureLimiter,
    ReceivingFactory,
    ReceivingPolicy,
)
from xmppcomp.stream.sasl import FileCredentialStore, MemoryCredentialStore
from xmppcomp.stream.negotiating import NegotiatingFactory, NegotiatingXmlStream, peerOf
from xmppcomp.stream.xmlstream import checkSerializable

if TYPE_CHECKING:
    from twisted.web.server import Site

log = Logger()


class _FlowControlled(Protocol):
    """
    What the router uses of a session's transport besides L{ITransport}:
    TCP transports, and TLS over them, are push producers and consumers.
    """

    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...

    def registerProducer(self, producer: IPushProducer, streaming: bool) -> None: ...


def _flowControlled(transport: ITransport | None) -> _FlowControlled:
    """
    C{transport} as what it is: Twisted types a protocol's transport as
    an L{ITransport} (or C{None}), less than its listeners' transports are.
    """
    return cast(_FlowControlled, transport)

#: IQ requests tracked per session while they await the session's answer,
#: so that they can be answered with an error if the session goes away.
#: The same bound applies to the requests a session sends from shared names,
#: remembered so that their answers come back to it
#: (L{RoutingTable.recordRequest
#: <xmppcomp.router.routing.RoutingTable.recordRequest>}).
MAX_PENDING_IQS = 10000

#: The disco#items node of the router that lists the bound shared names;
#: C{shared-names/NAME} lists the sessions of one.
SHARED_NAMES_NODE = "shared-names"


@implementer(IPushProducer)
class RouterSession:
    """
    One component stream attached to the router.

    Once negotiated, a session is registered as the streaming producer of
    its stream's transport: the transport calls L{pauseProducing} when its
    write buffer is full (the peer stopped reading) and L{resumeProducing}
    when it drained. While paused, the router counts the bytes it still
    writes to the session in C{queued} and never queues more than
    L{RouterLimits.maxBufferedBytes}, its own answers included (see
    L{Router._deliver} and L{send}).

    A session ends with its stream (L{Router.end}), which is usually
    before its connection is lost (L{Router.detach}): from then on nothing
    is written to it and nothing it sends is routed.

    @ivar xmlstream: the stream.
    @ivar kind: C{"xep0225"} or C{"xep0114"}.
    @ivar identity: the authenticated domain (XEP-0225) or the hostname
        (XEP-0114), once known.
    @ivar binder: the hostnames bound (XEP-0225); for XEP-0114 the single
        hostname is bound through it too.
    @ivar pending: IQ requests delivered to this session and not answered
        yet, by C{(id, sender domain)}.
    @ivar paused: whether the transport asked us to stop writing.
    @ivar queued: bytes written to the transport since it paused.
    @ivar dropped: stanzas not written since it paused: errors and IQ
        results (which are never bounced) and the router's own answers that
        would have gone over the limit.
    @ivar readPaused: whether the router stopped reading from this session
        because what it writes back to it went over the limit.
    @ivar ended: whether its stream ended (see L{Router.end}).
    @ivar unsent: what the router had to say to it after its stream ended,
        and did not write (counted, logged when its connection is lost).
    @ivar late: stanzas it sent after its stream ended, not routed
        (counted, logged when its connection is lost).
    @ivar idleTimer: the pending idle check, or L{None}.
    @ivar pingSentAt: when the router pinged the silent session, or
        L{None} if it did not.
    @ivar established: whether its negotiation completed and it counts
        towards L{RouterLimits.maxSessions}.
    @ivar parser: the parser of its stream (see L{newParser}), or L{None}
        if the stream does not parse with one (then nothing is forwarded
        raw).
    @ivar capturing: whether its parsers keep raw bytes (once negotiated).
    @ivar sharedNames: how many of its names are shared (bound by other
        sessions of its identity too, or open to them).
    """

    established = False
    paused = False
    queued = 0
    dropped = 0
    readPaused = False
    ended = False
    unsent = 0
    late = 0
    idleTimer: IDelayedCall | None = None
    pingSentAt: float | None = None
    parser: IRawStanzaParser | None = None
    capturing = False
    sharedNames = 0

    def __init__(self, router: "Router", xmlstream: NegotiatingXmlStream, kind: str) -> None:
        self.router = router
        self.xmlstream = xmlstream
        self.kind = kind
        #: The content namespace of the stream.
        self.namespace = NS_COMPONENT_ACCEPT if kind == "xep0114" else NS_CLIENT
        self.identity: str | None = None
        self.binder: HostnameBinder | None = None
        # Lists, not deques: almost every key holds one entry, and an empty
        # deque alone is ~600 bytes (tracemalloc, bench/confirmer.py).
        self.pending: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
        self.pendingCount = 0
        self._windowStart = 0.0
        self._windowCount = 0

    def newParser(self, maxStanzaSize: int, maxDepth: int) -> RawStanzaParser:
        """
        Make the parser of this session's stream (the stream's parser
        factory, see L{IXmppStream.setParserFactory
        <xmppcomp.interfaces.IXmppStream.setParserFactory>}): one that can
        keep raw bytes, keeping them once the session is negotiated.
        """
        parser = RawStanzaParser(maxStanzaSize, maxDepth)
        if self.capturing:
            parser.captureRawStanzas()
        self.parser = parser
        return parser

    def captureRawStanzas(self) -> None:
        """
        From now on, keep each stanza's raw bytes, to forward them as they
        came.
        """
        self.capturing = True
        if self.parser is not None:
            self.parser.captureRawStanzas()

    def rawBytesOf(self, stanza: domish.Element) -> bytes | None:
        """
        The bytes C{stanza}, which this session sent and which is being
        handled, arrived as, if they can be forwarded (see
        L{IRawStanzaParser.rawBytesOf
        <xmppcomp.interfaces.IRawStanzaParser.rawBytesOf>}); else L{None}.
        """
        parser = self.parser
        return parser.rawBytesOf(stanza) if parser is not None else None

    def fullElement(self, stanza: domish.Element) -> domish.Element:
        """
        C{stanza}, which this session sent and which is being handled, with
        everything it contains: messages and presences are parsed shallow
        (see L{RawStanzaParser}).
        """
        parser = self.parser
        return parser.fullElement(stanza) if parser is not None else stanza

    @property
    def names(self) -> list[str]:
        """
        The hostnames routed to this session.
        """
        return self.binder.bound if self.binder is not None else []

    def send(self, element: domish.Element) -> None:
        """
        Send something the router itself says to this session (an answer, a
        bounce, a ping).

        Once the stream ended nothing is written: it is counted in
        C{unsent} (and logged when the connection is lost). While the
        transport is paused it is counted in C{queued}; what would take
        C{queued} over L{RouterLimits.maxBufferedBytes} is not written but
        counted in C{dropped}, and the router stops reading from the
        session until its transport drains, so that a peer that sends
        without reading cannot grow its own buffer through the router's
        answers.
        """
        if self.ended:
            self.unsent += 1
            log.debug(
                "not writing <{name} id={id}/> to {identity}: its stream ended",
                name=element.name,
                id=element.getAttribute("id"),
                identity=self.identity,
            )
            return
        if not self.paused:
            self.xmlstream.send(element)
            return
        data = checkSerializable(element.toXml(), element).encode("utf-8")
        if self.queued + len(data) <= self.router.limits.maxBufferedBytes:
            self.queued += len(data)
            self.xmlstream.send(data)
            return
        self.countDropped("the router's answers")
        if not self.readPaused:
            self.readPaused = True
            log.warn(
                "{identity} does not read: not reading from it until it does",
                identity=self.identity,
            )
            _flowControlled(self.xmlstream.transport).pauseProducing()

    def countDropped(self, what: str) -> None:
        """
        Count a stanza not written to this paused session (C{what} it is,
        for the log line of the first one in a pause).
        """
        self.dropped += 1
        if self.dropped == 1:
            log.warn(
                "{identity} does not read and has {queued} bytes queued: not writing {what} to it",
                identity=self.identity,
                queued=self.queued,
                what=what,
            )

    # IPushProducer, for the stream's transport.

    def pauseProducing(self) -> None:
        if not self.paused:
            self.paused = True
            self.queued = 0

    def resumeProducing(self) -> None:
        if not self.paused:
            return
        self.paused = False
        self.queued = 0
        if self.dropped:
            log.warn(
                "{identity} reads again; {count} errors, IQ results or answers of the router to it were not written meanwhile",
                identity=self.identity,
                count=self.dropped,
            )
            self.dropped = 0
        if self.readPaused:
            self.readPaused = False
            transport = self.xmlstream.transport
            if transport is not None:
                _flowControlled(transport).resumeProducing()

    def stopProducing(self) -> None:
        self.paused = True

    def overRate(self, now: float, limit: int) -> bool:
        """
        Count one stanza; whether the session went over C{limit} stanzas in
        the current one-second window.
        """
        if now - self._windowStart >= 1.0:
            self._windowStart = now
            self._windowCount = 0
        self._windowCount += 1
        return self._windowCount > limit

    def __repr__(self) -> str:
        return "<RouterSession %s %s %s>" % (self.kind, self.identity, self.names)


class Router:
    """
    The routing table, the sessions, and the router's own domain.

    @ivar domain: the router's own domain.
    @ivar table: bound hostname to session.
    @ivar sessions: the attached sessions, negotiating ones included.
    @ivar established: how many of them completed negotiation (at most
        L{RouterLimits.maxSessions}; the connections still negotiating are
        limited by L{RouterService}'s admission, not here).
    @ivar metrics: where sessions, bound names, routed and bounced stanzas
        are counted.
    """

    def __init__(
        self,
        domain: str,
        mayBind: Callable[[str, str], bool],
        limits: RouterLimits = RouterLimits(),
        reactor: IReactorTime | None = None,
        metrics: Metrics | None = None,
        sharedNames: Callable[[str], bool] | None = None,
    ) -> None:
        """
        @param metrics: where to count; a registry of this router's own
            when not given.
        @param sharedNames: whether several sessions of the same identity
            may bind a hostname together (and share its stanzas, see
            L{RoutingTable.claim <xmppcomp.router.routing.RoutingTable.claim>});
            C{None}: no name is shared, a second session gets C{conflict}.
        """
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        self.domain = normalizeDomain(domain)
        self._mayBind = mayBind
        self.limits = limits
        self.reactor = reactor
        self.metrics = Metrics() if metrics is None else metrics
        self._routed = self.metrics.stanzasRouted
        self.table: RoutingTable[RouterSession] = RoutingTable(sharedNames, MAX_PENDING_IQS)
        self._sharing = sharedNames is not None
        self.sessions: dict[NegotiatingXmlStream, RouterSession] = {}
        self.established = 0
        self._closing = False
        self._pings = 0

    # The hostname registry used by HostnameBinder.

    def mayBind(self, identity: str, hostname: str) -> bool:
        if hostname == self.domain:
            return False
        return self._mayBind(identity, hostname)

    def claim(self, hostname: str, owner: object) -> bool:
        """
        Route C{hostname} to the session C{owner}. A shared name (see
        C{sharedNames}) bound already takes it as one more session if it
        is of the same kind (XEP-0225 or XEP-0114) and identity (the SASL
        identity, or the XEP-0114 hostname whose secret it gave) as the
        sessions the name has.
        """
        session = cast(RouterSession, owner)
        if session.ended:
            # A bind handled after its stream ended: the name stays free.
            return False
        claimed = self.table.claim(hostname, session, (session.kind, session.identity))
        if claimed:
            self.metrics.routerBoundNames.set(len(self.table))
            shared = self.table.sharedRoute(hostname)
            if shared is not None:
                session.sharedNames += 1
                self.metrics.routerNameSessions.labels(hostname).set(len(shared))
                if len(shared) > 1:
                    log.info(
                        "{identity} binds the shared name {hostname} again: {count} sessions",
                        identity=session.identity,
                        hostname=hostname,
                        count=len(shared),
                    )
        return claimed

    def release(self, hostname: str, owner: object) -> None:
        session = cast(RouterSession, owner)
        shared = self.table.sharedRoute(hostname)
        if self.table.release(hostname, session):
            self.metrics.routerBoundNames.set(len(self.table))
            if shared is not None:
                session.sharedNames -= 1
                if shared.routes:
                    self.metrics.routerNameSessions.labels(hostname).set(len(shared))
                else:
                    self.metrics.routerNameSessions.remove(hostname)
            self._failPending(session, hostname)

    # Attaching streams.

    def receivingFeatures(self) -> list[BindFeature]:
        """
        The post-SASL features of XEP-0225 streams: hostname bind in both
        namespaces.
        """
        return bindFeatures(self.binderFor)

    def binderFor(self, authenticator: IReceivingSession) -> HostnameBinder:
        session = self.sessions[authenticator.xmlstream]
        if session.binder is None:
            session.identity = authenticator.identity
            session.binder = HostnameBinder(
                authenticator.identity, session, self, self.limits.maxNamesPerSession
            )
        return session.binder

    def addBootstraps(self, factory: NegotiatingFactory, kind: str) -> None:
        """
        Attach every stream C{factory} builds to this router.
        """
        factory.addBootstrap(STREAM_CONNECTED_EVENT, lambda xs: self.attach(xs, kind))
        factory.addBootstrap(STREAM_AUTHD_EVENT, self.authenticated)

    def attach(self, xs: NegotiatingXmlStream, kind: str) -> RouterSession | None:
        """
        A stream connected: make its session, or refuse it when the router
        is full or shutting down.
        """
        if self._closing or self.established >= self.limits.maxSessions:
            # The error goes out before the peer's header: ours comes first.
            xs.thisEntity = jid.JID(self.domain)
            xs.namespace = NS_COMPONENT_ACCEPT if kind == "xep0114" else NS_CLIENT
            condition = "system-shutdown" if self._closing else "resource-constraint"
            log.warn(
                "refusing a {kind} connection: {condition} ({count} sessions)",
                kind=kind,
                condition=condition,
                count=self.established,
            )
            self.metrics.countNegotiationFailure("receiving", condition)
            xs.sendStreamError(StreamError(condition, text="the router is full" if not self._closing else None))
            return None
        session = RouterSession(self, xs, kind)
        self.sessions[xs] = session
        # Nothing was received yet: the stream parses with the session's
        # parser from its first byte on.
        xs.setParserFactory(session.newParser)
        self.metrics.routerSessions.labels(kind).inc()
        # The listeners' streams say when the stream ends, whichever side
        # ends it (STREAM_CLOSED_EVENT); any stream says when a stream error
        # goes either way, and when the connection is lost.
        xs.addObserver(STREAM_CLOSED_EVENT, lambda reason: self.end(session, reason))
        xs.addObserver(STREAM_ERROR_EVENT, lambda reason: self.end(session, reason))
        xs.addObserver(STREAM_END_EVENT, lambda reason: self.detach(session, reason))
        return session

    def authenticated(self, xs: NegotiatingXmlStream) -> None:
        """
        A stream completed negotiation: from now on its stanzas are routed.
        """
        session = self.sessions.get(xs)
        if session is None or session.ended:
            return
        if self.established >= self.limits.maxSessions:
            self.metrics.countNegotiationFailure("receiving", "resource-constraint")
            self._fault(session, "resource-constraint", "the router is full: %d sessions" % (self.established,))
            return
        session.established = True
        self.established += 1
        if session.kind == "xep0114":
            # The AcceptFactory's streams: hostname is set once negotiated.
            hostname = cast(str, cast(AcceptAuthenticator, xs.authenticator).hostname)
            session.identity = hostname
            session.binder = HostnameBinder(hostname, session, self, 1)
            if hostname == self.domain or not self.claim(hostname, session):
                log.warn(
                    "XEP-0114 component for {hostname}: the name is bound already",
                    hostname=hostname,
                )
                xs.sendStreamError(StreamError("conflict", text="%s is bound already" % (hostname,)))
                return
            session.binder.bound.append(hostname)
        session.captureRawStanzas()
        xs.elementHandler = partial(self.route, session)
        transport = xs.transport
        if transport is not None:
            try:
                _flowControlled(transport).registerProducer(session, True)
            except RuntimeError:
                log.warn("{identity}: the transport has a producer already; no back-pressure", identity=session.identity)
        session.idleTimer = self.reactor.callLater(self.limits.idleTimeout, self._checkIdle, session)
        # An XEP-0225 stream's negotiation was logged at info already, and
        # each name it binds is; an XEP-0114 stream's line names its host.
        (log.info if session.kind == "xep0114" else log.debug)(
            "{kind} session of {identity} from {peer} routes {names}",
            kind=session.kind,
            identity=session.identity,
            peer=peerOf(xs),
            names=", ".join(session.names),
        )

    def end(self, session: RouterSession, reason: Failure | str) -> None:
        """
        The stream of C{session} ended, whichever side ended it and however
        (a stream error either way, a closing tag either way, the
        connection lost), which may be long before its connection is
        lost: release its names at once, so that stanzas to them bounce
        with C{service-unavailable} and another session may bind them;
        answer the IQ requests it will never answer; route nothing more it
        sends and write nothing more to it (see L{RouterSession.send}).
        """
        if session.ended:
            return
        session.ended = True
        xs = session.xmlstream
        xs.elementHandler = partial(_countLate, session)
        timer, session.idleTimer = session.idleTimer, None
        if timer is not None and timer.active():
            timer.cancel()
        names = session.binder.releaseAll() if session.binder is not None else []
        self._failPending(session, None)
        log.info(
            "{kind} session of {identity} ended ({why}); released {names}",
            kind=session.kind,
            identity=session.identity or "(unauthenticated)",
            why=_why(xs.streamEnded or reason),
            names=", ".join(names) or "no names",
        )

    def detach(self, session: RouterSession, reason: Failure) -> None:
        """
        The connection of C{session} is lost: its stream has ended too (see
        L{end}), and the session is gone.
        """
        self.end(session, reason)
        if self.sessions.pop(session.xmlstream, None) is None:
            return
        if session.established:
            self.established -= 1
        self.metrics.routerSessions.labels(session.kind).dec()
        if session.unsent or session.late:
            log.info(
                "{identity}: after its stream ended, {unsent} answers of the router to it were not written"
                " and {late} stanzas it sent were not routed",
                identity=session.identity or "(unauthenticated)",
                unsent=session.unsent,
                late=session.late,
            )

    # Routing.

    def route(self, session: RouterSession, stanza: domish.Element) -> None:
        """
        Route one stanza a negotiated session sent.
        """
        # The time of the read that brought the stanza: no clock read per
        # stanza.
        if session.overRate(session.xmlstream.lastReceived, self.limits.maxStanzasPerSecond):
            self._fault(session, "policy-violation", "more than %d stanzas per second" % (self.limits.maxStanzasPerSecond,))
            return
        if stanza.name == "iq":
            if bindChild(stanza) is not None:
                to = stanza.getAttribute("to")
                if not to or domainOf(to) == self.domain:
                    if session.kind == "xep0225" and session.binder is not None:
                        session.binder.handle(stanza, session.send)
                    else:
                        self._bounce(session, stanza, "feature-not-implemented", "XEP-0114 sessions bind by handshake")
                    return
        target = boundRoute(stanza, session.names, self.table)
        if target is not None:
            self._deliver(session, target, stanza)
            return
        decision = decide(stanza, session.names, self.table, self.domain)
        if isinstance(decision, Deliver):
            self._deliver(session, decision.route, stanza)
            return
        if isinstance(decision, StreamFault):
            self._fault(session, decision.condition, decision.text)
            return
        if isinstance(decision, Local):
            self._local(session, stanza)
        elif isinstance(decision, Bounce):
            self.metrics.stanzasBounced(decision.condition).inc()
            self._bounce(session, stanza, decision.condition, decision.text)
        else:
            assert isinstance(decision, Drop)
            log.info("{identity}: dropped: {reason}", identity=session.identity, reason=decision.reason)

    def _deliver(self, sender: RouterSession, target: RouterSession, stanza: domish.Element) -> None:
        """
        Hand C{stanza} to C{target}: as the bytes it arrived as when its
        stream kept them (they take on the target's content namespace just
        as L{translateNamespace} would move them), else translated and
        serialised.

        While C{target}'s transport is paused, at most
        L{RouterLimits.maxBufferedBytes} are queued to it; a stanza beyond
        is bounced with C{resource-constraint} (errors and IQ results,
        which are never bounced, are counted and logged).
        """
        name = stanza.name
        parser = sender.parser
        raw = parser.rawBytesOf(stanza) if parser is not None else None
        if target.paused:
            if raw is None:
                stanza = _forwarded(sender, target, stanza)
                raw = stanza.toXml().encode("utf-8")
            if target.queued + len(raw) > self.limits.maxBufferedBytes:
                self._overflow(sender, target, stanza)
                return
            target.queued += len(raw)
        if name == "iq":
            kind = stanza.getAttribute("type")
            if kind in ("get", "set"):
                self._track(sender, target, stanza)
            elif kind in ("result", "error"):
                self._untrack(sender, stanza)
        routed = self._routed
        if name in routed:
            routed[name] += 1
        if raw is not None:
            target.xmlstream.sendRaw(raw)
            return
        target.xmlstream.send(_forwarded(sender, target, stanza))

    def _overflow(self, sender: RouterSession, target: RouterSession, stanza: domish.Element) -> None:
        """
        C{target} does not read and has C{maxBufferedBytes} queued: bounce
        C{stanza} with C{resource-constraint}, or count it if it is an
        error or an IQ result.
        """
        if mayBounce(stanza):
            self.metrics.stanzasBounced("resource-constraint").inc()
            if stanza.uri != sender.namespace and stanza.uri == target.namespace:
                # Moved into the target's namespace to measure it: back.
                translateNamespace(stanza, target.namespace, sender.namespace)
            self._bounce(
                sender,
                stanza,
                "resource-constraint",
                "%s is not reading its stream; %d bytes are queued to it"
                % (", ".join(target.names) or target.identity, target.queued),
            )
            return
        target.countDropped("errors and IQ results")

    def _bounce(self, session: RouterSession, stanza: domish.Element, condition: str, text: str | None) -> None:
        """
        Answer C{stanza}, which C{session} sent and which is being handled,
        with the stanza error C{condition}: its payload comes back too only
        if the stanza takes at most L{RouterLimits.maxBouncePayload} bytes
        (see L{bounceOf}); a larger one is not even parsed in full.
        """
        limit = self.limits.maxBouncePayload
        raw = session.rawBytesOf(stanza)
        echo = len(raw) <= limit if raw is not None else sizeAtMost(stanza, limit)
        if echo:
            stanza = session.fullElement(stanza)
        session.send(bounceOf(stanza, condition, text, echo))

    def _track(self, sender: RouterSession, target: RouterSession, iq: domish.Element) -> None:
        if sender.sharedNames:
            # Its answer must come back to this session, not to the one
            # the answerer's conversation is balanced to.
            senderDomain = self.table.domainOf(iq["from"])
            if senderDomain is not None:
                self.table.recordRequest(sender, senderDomain, iq)
        if target.pendingCount >= MAX_PENDING_IQS:
            return
        origin = iq["from"]
        key = (iq.getAttribute("id", ""), self.table.domainOf(origin) or "")
        entry = (origin, iq["to"], iq.getAttribute("id", ""))
        entries = target.pending.get(key)
        if entries is None:
            target.pending[key] = [entry]
        else:
            entries.append(entry)
        target.pendingCount += 1

    def _untrack(self, answerer: RouterSession, iq: domish.Element) -> None:
        key = (iq.getAttribute("id", ""), self.table.domainOf(iq["to"]) or "")
        entries = answerer.pending.get(key)
        if not entries:
            return
        del entries[0]
        answerer.pendingCount -= 1
        if not entries:
            del answerer.pending[key]

    def _failPending(self, session: RouterSession, hostname: str | None) -> None:
        """
        Answer the IQ requests C{session} will never answer: those to
        C{hostname}, or all when C{None}. Those whose senders are gone too
        are counted in one log line.

        The error is C{service-unavailable} (RFC 6120 section 8.3.3.19,
        type C{cancel}) when the name they were sent to is no longer bound:
        asking again fails too. When the name is still bound, by the other
        sessions of a shared name, it is C{recipient-unavailable} (section
        8.3.3.13, type C{wait}: the intended recipient is temporarily
        unavailable): asking again reaches one of them. (That section
        forbids the condition where it would reveal availability the
        sender may not know; a component's sessions are not presence, and
        the name stays bound either way.)
        """
        unanswerable = 0
        for key in list(session.pending):
            entries = session.pending[key]
            kept: list[tuple[str, str, str]] = []
            for origin, recipient, iqId in entries:
                if hostname is not None and domainOf(recipient) != hostname:
                    kept.append((origin, recipient, iqId))
                    continue
                session.pendingCount -= 1
                if not self._answerVanished(origin, recipient, iqId, session):
                    unanswerable += 1
            if kept:
                session.pending[key] = kept
            else:
                del session.pending[key]
        if unanswerable:
            log.info(
                "{count} IQ requests to {identity} went unanswered, and their senders are gone too",
                count=unanswerable,
                identity=session.identity,
            )

    def _answerVanished(self, origin: str, recipient: str, iqId: str, gone: RouterSession) -> bool:
        """
        Answer the IQ request C{iqId} from C{origin} to C{recipient}, which
        the session C{gone} will not answer, with C{service-unavailable},
        or C{recipient-unavailable} if the name of C{recipient} is still
        bound (see L{_failPending}).

        @return: whether C{origin}'s name is still bound (if not, there is
            no one to tell).
        """
        domain = domainOf(origin)
        if not domain:
            return False
        error = domish.Element((None, "iq"))
        error["type"] = "error"
        error["from"] = recipient
        error["to"] = origin
        error["id"] = iqId
        sender = self.table.routeFor(domain, error)
        if sender is None or sender is DEPARTED:
            return False
        recipientDomain = domainOf(recipient)
        if recipientDomain and self.table.routesOf(recipientDomain):
            condition = "recipient-unavailable"
            text = "the session of %s that had this request went away; ask again" % (recipientDomain,)
        else:
            condition = "service-unavailable"
            text = "%s went away before answering" % (recipient,)
        error.addChild(StanzaError(condition, text=text).getElement())
        self.metrics.stanzasBounced(condition).inc()
        sender.send(error)
        return True

    def _local(self, session: RouterSession, stanza: domish.Element) -> None:
        kind = stanza.getAttribute("type")
        if stanza.name == "iq":
            if kind in ("result", "error"):
                return
            child = stanza.firstChildElement()
            if kind == "get" and child is not None:
                if (child.uri, child.name) == (NS_DISCO_INFO, "query") and not child.getAttribute("node"):
                    session.send(self._discoInfo(stanza))
                    return
                if (child.uri, child.name) == (NS_DISCO_ITEMS, "query") and self._sharing:
                    self._discoItems(session, stanza, child.getAttribute("node"))
                    return
                if (child.uri, child.name) == (NS_PING, "ping"):
                    session.send(toResponse(stanza, "result"))
                    return
            self._bounce(session, stanza, "service-unavailable", None)
            return
        if stanza.name == "presence" and kind in (None, "unavailable"):
            # Directed presence to the router: it keeps no presence state.
            log.debug("presence to the router from {sender}", sender=stanza.getAttribute("from"))
            return
        if kind != "error":
            self._bounce(session, stanza, "service-unavailable", None)

    def _discoInfo(self, iq: domish.Element) -> domish.Element:
        reply = toResponse(iq, "result")
        query = reply.addElement((NS_DISCO_INFO, "query"))
        identity = query.addElement("identity")
        identity["category"] = "server"
        identity["type"] = "im"
        identity["name"] = "xmppcomp router"
        # disco#items lists shared names: only with the opt-in.
        features = (NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING) if self._sharing else (NS_DISCO_INFO, NS_PING)
        for feature in features:
            query.addElement("feature")["var"] = feature
        return reply

    def _discoItems(self, session: RouterSession, iq: domish.Element, node: str | None) -> None:
        """
        Answer a disco#items request to the router (when names may be
        shared; without, it is not a feature of the router and gets
        C{service-unavailable}): with no node, an item
        per bound shared name, named with its count of sessions (C{"2
        sessions"}); with the node C{shared-names/NAME}, an item per
        session of that shared name, named by its kind and its number
        among them (C{"xep0225 session 1 of 2"}), the names of their peers
        left out. Other nodes get C{item-not-found}. Unshared names are not
        listed: each has one session, and the router does not tell every
        component about every other.
        """
        if node is not None and not node.startswith(SHARED_NAMES_NODE + "/"):
            self._bounce(session, iq, "item-not-found", None)
            return
        reply = toResponse(iq, "result")
        query = reply.addElement((NS_DISCO_ITEMS, "query"))
        if node is None:
            for hostname, count in sorted(self.table.sharedNames().items()):
                item = query.addElement("item")
                item["jid"] = hostname
                item["node"] = "%s/%s" % (SHARED_NAMES_NODE, hostname)
                item["name"] = "%d session%s" % (count, "" if count == 1 else "s")
        else:
            query["node"] = node
            hostname = node[len(SHARED_NAMES_NODE) + 1 :]
            shared = self.table.sharedRoute(hostname)
            if shared is None:
                self._bounce(session, iq, "item-not-found", None)
                return
            for index, member in enumerate(shared.routes, 1):
                item = query.addElement("item")
                item["jid"] = hostname
                item["name"] = "%s session %d of %d" % (member.kind, index, len(shared))
        session.send(reply)

    # Silent peers (RFC 6120 section 4.5).

    def _checkIdle(self, session: RouterSession) -> None:
        """
        The idle timer of C{session} fired: if nothing arrived for
        C{idleTimeout} seconds, ping it (XEP-0199, from the router's
        domain); if nothing arrived within C{pingTimeout} seconds of the
        ping, end it with C{connection-timeout}. Received data only updates
        the stream's C{lastReceived}; the timer reads it.
        """
        session.idleTimer = None
        xs = session.xmlstream
        if self.sessions.get(xs) is not session or session.ended:
            return
        limits = self.limits
        now = self.reactor.seconds()
        last = xs.lastReceived
        if session.pingSentAt is not None:
            if last >= session.pingSentAt:
                session.pingSentAt = None
            else:
                self._fault(
                    session,
                    "connection-timeout",
                    "nothing received for %g seconds, nor within %g seconds of a ping"
                    % (limits.idleTimeout, limits.pingTimeout),
                )
                return
        silent = now - last
        if silent < limits.idleTimeout:
            session.idleTimer = self.reactor.callLater(limits.idleTimeout - silent, self._checkIdle, session)
            return
        session.pingSentAt = now
        session.send(self._ping(session))
        session.idleTimer = self.reactor.callLater(limits.pingTimeout, self._checkIdle, session)

    def _ping(self, session: RouterSession) -> domish.Element:
        self._pings += 1
        iq = domish.Element((None, "iq"))
        iq["type"] = "get"
        iq["from"] = self.domain
        iq["to"] = session.names[0] if session.names else (session.identity or self.domain)
        iq["id"] = "router-ping-%d" % (self._pings,)
        iq.addElement((NS_PING, "ping"))
        return iq

    def _fault(self, session: RouterSession, condition: str, text: str) -> None:
        log.warn(
            "ending the session of {identity}: {condition} ({text})",
            identity=session.identity,
            condition=condition,
            text=text,
        )
        session.xmlstream.elementHandler = _ignoreElement
        session.xmlstream.sendStreamError(StreamError(condition, text=text))

    # Shutdown.

    def shutdown(self) -> defer.Deferred[None]:
        """
        End every session with C{system-shutdown}.

        @return: a L{Deferred} that fires once all their connections are
            closed.
        """
        self._closing = True
        ended = []
        for xs in list(self.sessions):
            d: defer.Deferred[None] = defer.Deferred()
            xs.addObserver(STREAM_END_EVENT, lambda reason, d=d: d.called or d.callback(None))
            ended.append(d)
            xs.sendStreamError(StreamError("system-shutdown"))
        return defer.gatherResults(ended).addCallback(lambda _: None)


def _ignoreElement(element: domish.Element) -> None:
    """
    Element sink of a session being ended.
    """


def _countLate(session: RouterSession, element: domish.Element) -> None:
    """
    Element sink of a session whose stream ended: counted, not routed.
    """
    session.late += 1


def _forwarded(sender: RouterSession, target: RouterSession, stanza: domish.Element) -> domish.Element:
    """
    C{stanza}, which C{sender} sent and which is being handled, complete
    (see L{RouterSession.fullElement}) and in C{target}'s content
    namespace.
    """
    stanza = sender.fullElement(stanza)
    if sender.namespace != target.namespace:
        translateNamespace(stanza, sender.namespace, target.namespace)
    return stanza


def _why(reason: object) -> str:
    if isinstance(reason, Failure):
        value = reason.value
        if isinstance(value, StreamError):
            return "stream error %s" % (value.condition,)
        assert reason.type is not None
        return reason.getErrorMessage() or reason.type.__name__
    return str(reason)


def metricsSite(metrics: Metrics) -> Site:
    """
    A twisted.web site serving C{metrics} (L{Metrics.resource}) at
    C{/metrics} (and nothing else).
    """
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    root = Resource()
    root.putChild(b"metrics", metrics.resource())
    site = Site(root)
    site.displayTracebacks = False
    return site


class _StreamLimits(TypedDict):
    """
    What the XEP-0225 and XEP-0114 listeners' policies share: the limits of
    their streams, the auth failure limiter and where they count.
    """

    negotiationTimeout: float
    maxStanzaSize: int
    closeTimeout: float
    maxStanzaDepth: int
    authFailures: AuthFailureLimiter | None
    metrics: Metrics | None


class RouterService(MultiService):
    """
    C{twistd xmppcomp-router}: the listeners and the router of a
    L{RouterConfig}.

    @ivar router: the L{Router}, once started.
    @ivar ports: the listening ports, once started (the metrics listener,
        if configured, last).
    @ivar authFailures: the L{AuthFailureLimiter} shared by the XEP-0225
        and XEP-0114 listeners, once started.
    @ivar admission: the L{AdmissionGate<xmppcomp.admission.AdmissionGate>}
        shared by the XEP-0225 and XEP-0114 listeners (connections not
        negotiated yet, per source and in all), once started.
    @ivar metrics: the router's metrics (served on C{metricsListen}).
    """

    def __init__(self, config: RouterConfig, reactor: IReactorTime | None = None, metrics: Metrics | None = None) -> None:
        """
        @param metrics: where the router counts; a registry of this
            service's own when not given.
        """
        super().__init__()
        self.metrics = Metrics() if metrics is None else metrics
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        self.config = config
        self.reactor = reactor
        self.router: Router | None = None
        self.authFailures: AuthFailureLimiter | None = None
        self.admission: AdmissionGate | None = None
        self.ports: list[IListeningPort] = []

    def startService(self) -> None:
        """
        Make the router and listen on every configured endpoint.

        @raise ListenError: an endpoint cannot listen; the message names
            the address, the setting that gives it and the reason. The
            ports opened before it are closed again.
        """
        config = self.config
        limits = config.limits
        policy = HostnamePolicy.fromConfig(dict(config.authorization))
        shared = HostnamePatterns.parse(config.sharedNames)
        router = Router(
            config.domain, policy.mayBind, limits, self.reactor, self.metrics, shared.matches if shared else None
        )
        # One limiter for every listener: failures count per source address
        # whichever protocol they used.
        authFailures = AuthFailureLimiter(
            maxFailures=limits.authFailureLimit, window=limits.authFailureWindow
        )
        self.authFailures = authFailures
        # One gate for every XMPP listener: a connection counts per source
        # address and in all until its negotiation completes.
        admission = AdmissionGate(
            Admission(limits.maxNegotiating, limits.maxNegotiatingPerSource),
            self.reactor,
            "connections not negotiated yet",
        )
        self.admission = admission
        if config.credentials is not None:
            fileStore = FileCredentialStore(config.credentials)
            fileStore.load()
            store: FileCredentialStore | MemoryCredentialStore = fileStore
        else:
            store = MemoryCredentialStore()
        tlsOptions = None
        if config.certificate is not None:
            certificate = tls.loadPrivateCertificate(config.certificate, config.key)
            clientCAs = tls.loadCertificates(config.clientCAs) if config.clientCAs else None
            tlsOptions = tls.serverTLSOptions(
                certificate, clientCAs, clientCAsSource=f"tls.client_cas ({config.clientCAs})" if clientCAs else None
            )
        streamLimits: _StreamLimits = {
            "negotiationTimeout": limits.negotiationTimeout,
            "maxStanzaSize": limits.maxStanzaSize,
            "closeTimeout": limits.closeTimeout,
            "maxStanzaDepth": limits.maxStanzaDepth,
            "authFailures": authFailures,
            "metrics": self.metrics,
        }
        receiving = ReceivingFactory(
            ReceivingPolicy(
                domains={router.domain},
                credentials=store,
                tlsOptions=tlsOptions,
                allowPlaintext=config.allowPlaintext,
                maxAuthAttempts=limits.maxAuthAttempts,
                features=router.receivingFeatures(),
                **streamLimits,
            ),
            reactor=self.reactor,
        )
        router.addBootstraps(receiving, "xep0225")
        receiving.addBootstrap(STREAM_AUTHD_EVENT, admission.authenticated)
        listeners: list[tuple[str, IProtocolFactory, str]] = [
            (endpoint, admission.wrap(receiving), "listen or --listen") for endpoint in config.listen
        ]
        if config.acceptSecrets:
            secrets = {
                normalizeDomain(hostname): ref.read() for hostname, ref in config.acceptSecrets.items()
            }
            accept = AcceptFactory(
                AcceptPolicy(secrets=secrets.get, **streamLimits),
                reactor=self.reactor,
            )
            router.addBootstraps(accept, "xep0114")
            accept.addBootstrap(STREAM_AUTHD_EVENT, admission.authenticated)
            wrapped = admission.wrap(accept)
            listeners += [(endpoint, wrapped, "accept.listen or --accept-listen") for endpoint in config.acceptListen]
        if config.metricsListen is not None:
            listeners.append((config.metricsListen, metricsSite(self.metrics), "metrics_listen or --metrics-listen"))
        self.router = router
        for description, factory, setting in listeners:
            failures: list[Failure] = []
            d = serverFromString(self.reactor, withBacklog(description, limits.listenBacklog)).listen(factory)
            d.addCallbacks(self.ports.append, failures.append)
            if failures:
                self._stopListening()
                error = failures[0].value
                if isinstance(error, CannotListenError):
                    raise ListenError(setting, description, error) from error
                failures[0].raiseException()
            log.info("router {domain} listening on {endpoint}", domain=router.domain, endpoint=description)
        warning = fileLimitWarning(
            limits.maxSessions + limits.maxNegotiating,
            "[limits] max_sessions and max_negotiating",
            [port.getHost() for port in self.ports],
        )
        if warning is not None:
            log.warn("{warning}", warning=warning)
        super().startService()

    def _stopListening(self) -> None:
        """
        A listener cannot listen: close the ports opened before it, so the
        failed start holds none.
        """
        ports, self.ports = self.ports, []
        for port in ports:
            port.stopListening()

    # Any: inlineCallbacks types what is yielded as Deferred[Any], and
    # MultiService.stopService may give None.
    @defer.inlineCallbacks
    def stopService(self) -> Generator[Any, object, None]:
        yield super().stopService()
        ports, self.ports = self.ports, []
        yield defer.gatherResults([defer.maybeDeferred(port.stopListening) for port in ports])
        if self.admission is not None:
            self.admission.stop()
        if self.router is not None:
            yield self.router.shutdown()
