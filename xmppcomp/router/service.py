# -*- test-case-name: tests.test_router_service -*-
"""
The receiving side as a service: accepts XEP-0225 components (TLS, SASL,
hostname bind) and XEP-0114 components (handshake) into one routing table
and routes stanzas between them.

L{Router} holds the table and the sessions and applies the decisions of
L{xmppcomp.router.routing.decide}; L{RouterService} wires listeners,
credentials and certificates from a L{xmppcomp.config.RouterConfig}.
"""

from __future__ import annotations

from collections import deque
from functools import partial
from typing import Any, Callable

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import jid
from twisted.words.protocols.jabber.error import StanzaError, StreamError
from twisted.words.protocols.jabber.xmlstream import STREAM_AUTHD_EVENT, toResponse
from twisted.words.xish import domish
from twisted.words.xish.xmlstream import STREAM_CONNECTED_EVENT, STREAM_END_EVENT

from xmppcomp.config import RouterConfig, RouterLimits
from xmppcomp.ns import NS_CLIENT, NS_COMPONENT_ACCEPT, NS_DISCO_INFO, NS_PING
from xmppcomp.router.routing import (
    Bounce,
    Deliver,
    Drop,
    Local,
    RoutingTable,
    StreamFault,
    decide,
    domainOf,
    translateNamespace,
)
from xmppcomp.stream.bind import HostnameBinder, bindChild, bindFeatures

log = Logger()

#: IQ requests tracked per session while they await the session's answer,
#: so that they can be answered with an error if the session goes away.
MAX_PENDING_IQS = 10000


class RouterSession:
    """
    One component stream attached to the router.

    @ivar xmlstream: the stream.
    @ivar kind: C{"xep0225"} or C{"xep0114"}.
    @ivar identity: the authenticated domain (XEP-0225) or the hostname
        (XEP-0114), once known.
    @ivar binder: the hostnames bound (XEP-0225); for XEP-0114 the single
        hostname is bound through it too.
    @ivar pending: IQ requests delivered to this session and not answered
        yet, by C{(id, sender domain)}.
    """

    def __init__(self, router: "Router", xmlstream: Any, kind: str) -> None:
        self.router = router
        self.xmlstream = xmlstream
        self.kind = kind
        #: The content namespace of the stream.
        self.namespace = NS_COMPONENT_ACCEPT if kind == "xep0114" else NS_CLIENT
        self.identity: str | None = None
        self.binder: HostnameBinder | None = None
        self.pending: dict[tuple[str, str], deque[tuple[str, str, str]]] = {}
        self.pendingCount = 0
        self._windowStart = 0.0
        self._windowCount = 0

    @property
    def names(self) -> list[str]:
        """
        The hostnames routed to this session.
        """
        return self.binder.bound if self.binder is not None else []

    def send(self, element: domish.Element) -> None:
        self.xmlstream.send(element)

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
    @ivar sessions: the attached sessions.
    """

    def __init__(
        self,
        domain: str,
        mayBind: Callable[[str, str], bool],
        limits: RouterLimits = RouterLimits(),
        reactor: IReactorTime | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor  # type: ignore[assignment]
        self.domain = jid.JID(domain).host
        self._mayBind = mayBind
        self.limits = limits
        self.reactor = reactor
        self.table: RoutingTable[RouterSession] = RoutingTable()
        self.sessions: dict[Any, RouterSession] = {}
        self._closing = False

    # The hostname registry used by HostnameBinder.

    def mayBind(self, identity: str, hostname: str) -> bool:
        if hostname == self.domain:
            return False
        return self._mayBind(identity, hostname)

    def claim(self, hostname: str, owner: object) -> bool:
        return self.table.claim(hostname, owner)  # type: ignore[arg-type]

    def release(self, hostname: str, owner: object) -> None:
        if self.table.release(hostname, owner):  # type: ignore[arg-type]
            self._failPending(owner, hostname)  # type: ignore[arg-type]

    # Attaching streams.

    def receivingFeatures(self) -> list[Any]:
        """
        The post-SASL features of XEP-0225 streams: hostname bind in both
        namespaces.
        """
        return bindFeatures(self.binderFor)

    def binderFor(self, authenticator: Any) -> HostnameBinder:
        session = self.sessions[authenticator.xmlstream]
        if session.binder is None:
            session.identity = authenticator.identity
            session.binder = HostnameBinder(
                authenticator.identity, session, self, self.limits.maxNamesPerSession
            )
        return session.binder

    def addBootstraps(self, factory: Any, kind: str) -> None:
        """
        Attach every stream C{factory} builds to this router.
        """
        factory.addBootstrap(STREAM_CONNECTED_EVENT, lambda xs: self.attach(xs, kind))
        factory.addBootstrap(STREAM_AUTHD_EVENT, self.authenticated)

    def attach(self, xs: Any, kind: str) -> RouterSession | None:
        """
        A stream connected: make its session, or refuse it when the router
        is full or shutting down.
        """
        if self._closing or len(self.sessions) >= self.limits.maxSessions:
            # The error goes out before the peer's header: ours comes first.
            xs.thisEntity = jid.JID(self.domain)
            xs.namespace = NS_COMPONENT_ACCEPT if kind == "xep0114" else NS_CLIENT
            condition = "system-shutdown" if self._closing else "resource-constraint"
            log.warn(
                "refusing a {kind} connection: {condition} ({count} sessions)",
                kind=kind,
                condition=condition,
                count=len(self.sessions),
            )
            xs.sendStreamError(StreamError(condition, text="the router is full" if not self._closing else None))
            return None
        session = RouterSession(self, xs, kind)
        self.sessions[xs] = session
        xs.addObserver(STREAM_END_EVENT, lambda reason: self.detach(session, reason))
        return session

    def authenticated(self, xs: Any) -> None:
        """
        A stream completed negotiation: from now on its stanzas are routed.
        """
        session = self.sessions.get(xs)
        if session is None:
            return
        if session.kind == "xep0114":
            hostname = xs.authenticator.hostname
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
        capture = getattr(xs, "captureRawStanzas", None)
        if capture is not None:
            capture()
        xs.elementHandler = partial(self.route, session)
        log.info(
            "{kind} session of {identity} from {peer} routes {names}",
            kind=session.kind,
            identity=session.identity,
            peer=_peer(xs),
            names=", ".join(session.names),
        )

    def detach(self, session: RouterSession, reason: Failure) -> None:
        """
        A stream ended: remove its routes at once and answer what it left
        unanswered.
        """
        if self.sessions.pop(session.xmlstream, None) is None:
            return
        names = session.binder.releaseAll() if session.binder is not None else []
        self._failPending(session, None)
        ended = getattr(session.xmlstream, "streamEnded", None) or reason
        log.info(
            "{kind} session of {identity} ended ({why}); released {names}",
            kind=session.kind,
            identity=session.identity or "(unauthenticated)",
            why=_why(ended),
            names=", ".join(names) or "no names",
        )

    # Routing.

    def route(self, session: RouterSession, stanza: domish.Element) -> None:
        """
        Route one stanza a negotiated session sent.
        """
        if session.overRate(self.reactor.seconds(), self.limits.maxStanzasPerSecond):
            self._fault(session, "policy-violation", "more than %d stanzas per second" % (self.limits.maxStanzasPerSecond,))
            return
        if stanza.name == "iq":
            if bindChild(stanza) is not None:
                to = stanza.getAttribute("to")
                if not to or domainOf(to) == self.domain:
                    if session.kind == "xep0225" and session.binder is not None:
                        session.send(session.binder.handle(stanza))
                    else:
                        session.send(StanzaError("feature-not-implemented", text="XEP-0114 sessions bind by handshake").toResponse(stanza))
                    return
        decision = decide(stanza, session.names, self.table, self.domain)
        if isinstance(decision, Deliver):
            self._deliver(session, decision.route, stanza)
            return
        if isinstance(decision, StreamFault):
            self._fault(session, decision.condition, decision.text)
            return
        stanza = _fullElement(session, stanza)
        if isinstance(decision, Local):
            self._local(session, stanza)
        elif isinstance(decision, Bounce):
            session.send(StanzaError(decision.condition, text=decision.text).toResponse(stanza))
        else:
            assert isinstance(decision, Drop)
            log.info("{identity}: dropped: {reason}", identity=session.identity, reason=decision.reason)

    def _deliver(self, sender: RouterSession, target: RouterSession, stanza: domish.Element) -> None:
        """
        Hand C{stanza} to C{target}: as the bytes it arrived as when its
        stream kept them (they take on the target's content namespace just
        as L{translateNamespace} would move them), else translated and
        serialised.
        """
        if stanza.name == "iq":
            kind = stanza.getAttribute("type")
            if kind in ("get", "set"):
                self._track(sender, target, stanza)
            elif kind in ("result", "error"):
                self._untrack(sender, stanza)
        rawBytesOf = getattr(sender.xmlstream, "rawBytesOf", None)
        raw = rawBytesOf(stanza) if rawBytesOf is not None else None
        if raw is not None:
            sendRaw = getattr(target.xmlstream, "sendRaw", None)
            if sendRaw is not None:
                sendRaw(raw)
            else:
                target.xmlstream.send(raw)
            return
        stanza = _fullElement(sender, stanza)
        if sender.namespace != target.namespace:
            translateNamespace(stanza, sender.namespace, target.namespace)
        target.send(stanza)

    def _track(self, sender: RouterSession, target: RouterSession, iq: domish.Element) -> None:
        if target.pendingCount >= MAX_PENDING_IQS:
            return
        origin = iq["from"]
        key = (iq.getAttribute("id", ""), domainOf(origin) or "")
        target.pending.setdefault(key, deque()).append((origin, iq["to"], iq.getAttribute("id", "")))
        target.pendingCount += 1

    def _untrack(self, answerer: RouterSession, iq: domish.Element) -> None:
        key = (iq.getAttribute("id", ""), domainOf(iq["to"]) or "")
        entries = answerer.pending.get(key)
        if not entries:
            return
        entries.popleft()
        answerer.pendingCount -= 1
        if not entries:
            del answerer.pending[key]

    def _failPending(self, session: RouterSession, hostname: str | None) -> None:
        """
        Answer with C{service-unavailable} the IQ requests C{session} will
        never answer: those to C{hostname}, or all when C{None}.
        """
        for key in list(session.pending):
            entries = session.pending[key]
            kept: deque[tuple[str, str, str]] = deque()
            for origin, recipient, iqId in entries:
                if hostname is not None and domainOf(recipient) != hostname:
                    kept.append((origin, recipient, iqId))
                    continue
                session.pendingCount -= 1
                self._answerVanished(origin, recipient, iqId)
            if kept:
                session.pending[key] = kept
            else:
                del session.pending[key]

    def _answerVanished(self, origin: str, recipient: str, iqId: str) -> None:
        domain = domainOf(origin)
        sender = self.table.lookup(domain) if domain else None
        if sender is None:
            return
        error = domish.Element((None, "iq"))
        error["type"] = "error"
        error["from"] = recipient
        error["to"] = origin
        error["id"] = iqId
        error.addChild(
            StanzaError("service-unavailable", text="%s went away before answering" % (recipient,)).getElement()
        )
        sender.send(error)

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
                if (child.uri, child.name) == (NS_PING, "ping"):
                    session.send(toResponse(stanza, "result"))
                    return
            session.send(StanzaError("service-unavailable").toResponse(stanza))
            return
        if stanza.name == "presence" and kind in (None, "unavailable"):
            # Directed presence to the router: it keeps no presence state.
            log.debug("presence to the router from {sender}", sender=stanza.getAttribute("from"))
            return
        if kind != "error":
            session.send(StanzaError("service-unavailable").toResponse(stanza))

    def _discoInfo(self, iq: domish.Element) -> domish.Element:
        reply = toResponse(iq, "result")
        query = reply.addElement((NS_DISCO_INFO, "query"))
        identity = query.addElement("identity")
        identity["category"] = "server"
        identity["type"] = "im"
        identity["name"] = "xmppcomp router"
        for feature in (NS_DISCO_INFO, NS_PING):
            query.addElement("feature")["var"] = feature
        return reply

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


def _fullElement(session: RouterSession, stanza: domish.Element) -> domish.Element:
    """
    The complete stanza, children included: streams with raw capture parse
    messages and presences shallow (see
    L{xmppcomp.stream.xmlstream.XmppXmlStream.fullElement}).
    """
    full = getattr(session.xmlstream, "fullElement", None)
    return full(stanza) if full is not None else stanza


def _ignoreElement(element: domish.Element) -> None:
    """
    Element sink of a session being ended.
    """


def _peer(xs: Any) -> str:
    try:
        return str(xs.transport.getPeer())
    except Exception:
        return "?"


def _why(reason: Any) -> str:
    if isinstance(reason, Failure):
        value = reason.value
        if isinstance(value, StreamError):
            return "stream error %s" % (value.condition,)
        return reason.getErrorMessage() or reason.type.__name__
    return str(reason)


class RouterService(MultiService):
    """
    C{twistd xmppcomp-router}: the listeners and the router of a
    L{RouterConfig}.

    @ivar router: the L{Router}, once started.
    @ivar ports: the listening ports, once started.
    """

    def __init__(self, config: RouterConfig, reactor: Any = None) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        self.config = config
        self.reactor = reactor
        self.router: Router | None = None
        self.ports: list[Any] = []

    def startService(self) -> None:
        from xmppcomp.authz import HostnamePolicy
        from xmppcomp.stream import tls
        from xmppcomp.stream.acceptreceiving import AcceptFactory, AcceptPolicy
        from xmppcomp.stream.receiving import ReceivingFactory, ReceivingPolicy
        from xmppcomp.stream.sasl import FileCredentialStore, MemoryCredentialStore

        config = self.config
        limits = config.limits
        policy = HostnamePolicy.fromConfig(dict(config.authorization))
        router = Router(config.domain, policy.mayBind, limits, self.reactor)
        if config.credentials is not None:
            store: Any = FileCredentialStore(config.credentials)
            store.load()
        else:
            store = MemoryCredentialStore()
        tlsOptions = None
        if config.certificate is not None:
            certificate = tls.loadPrivateCertificate(config.certificate, config.key)
            clientCAs = tls.loadCertificates(config.clientCAs) if config.clientCAs else None
            tlsOptions = tls.serverTLSOptions(certificate, clientCAs)
        receiving = ReceivingFactory(
            ReceivingPolicy(
                domains={router.domain},
                credentials=store,
                tlsOptions=tlsOptions,
                allowPlaintext=config.allowPlaintext,
                maxAuthAttempts=limits.maxAuthAttempts,
                negotiationTimeout=limits.negotiationTimeout,
                maxStanzaSize=limits.maxStanzaSize,
                closeTimeout=limits.closeTimeout,
                features=router.receivingFeatures(),
            ),
            reactor=self.reactor,
        )
        router.addBootstraps(receiving, "xep0225")
        listeners = [(endpoint, receiving) for endpoint in config.listen]
        if config.acceptSecrets:
            secrets = {
                jid.JID(hostname).host: ref.read() for hostname, ref in config.acceptSecrets.items()
            }
            accept = AcceptFactory(
                AcceptPolicy(
                    secrets=secrets.get,
                    negotiationTimeout=limits.negotiationTimeout,
                    maxStanzaSize=limits.maxStanzaSize,
                    closeTimeout=limits.closeTimeout,
                ),
                reactor=self.reactor,
            )
            router.addBootstraps(accept, "xep0114")
            listeners += [(endpoint, accept) for endpoint in config.acceptListen]
        self.router = router
        for description, factory in listeners:
            failures: list[Failure] = []
            d = serverFromString(self.reactor, description).listen(factory)
            d.addCallbacks(self.ports.append, failures.append)
            if failures:
                failures[0].raiseException()
            log.info("router {domain} listening on {endpoint}", domain=router.domain, endpoint=description)
        super().startService()

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        yield super().stopService()
        ports, self.ports = self.ports, []
        yield defer.gatherResults([defer.maybeDeferred(port.stopListening) for port in ports])
        if self.router is not None:
            yield self.router.shutdown()
