# -*- test-case-name: tests.test_stream_bind -*-
"""
XEP-0225 hostname binding, both ends.

Two namespaces are spoken: the seed's C{urn:xmpp:tmp:component} (0.1: an
empty bind result) and C{urn:xmpp:component:0} (0.2, the one deployed
servers use: the bind result repeats the bound hostname). The receiving
side advertises both and answers in the namespace of each request; the
initiating side uses C{urn:xmpp:component:0} when offered, else the seed's.

The pure part (L{parseBindRequest}, L{HostnameBinder}) takes and returns
elements; L{BindFeature} adapts it to the receiving negotiation and
L{BindInitiator} drives it from a component.
"""

from __future__ import annotations

from typing import Any, Callable, Generator, Iterable, Protocol, Sequence

import attrs
from twisted.internet import defer
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.protocols.jabber.xmlstream import IQ, toResponse
from twisted.words.xish import domish
from zope.interface import implementer

from xmppcomp.interfaces import (
    IInitiatingFeature,
    IInitiatingSession,
    IReceivingFeature,
    IReceivingSession,
)
from xmppcomp.iqtracker import newRequestId
from xmppcomp.jids import MAX_DOMAIN_LENGTH, InvalidDomain, normalizeDomain, plainDomain
from xmppcomp.logs import Logger
from xmppcomp.ns import NS_COMPONENT_0, NS_COMPONENT_TMP
from xmppcomp.stream.features import markRequired

log = Logger()

#: Bind namespaces, preferred first.
BIND_NAMESPACES = (NS_COMPONENT_0, NS_COMPONENT_TMP)

#: The longest hostname accepted, in octets of its ASCII form
#: (L{xmppcomp.jids.MAX_DOMAIN_LENGTH}).
MAX_HOSTNAME_LENGTH = MAX_DOMAIN_LENGTH


def _callNow(f: Callable[..., object], *args: object, **kwargs: object) -> None:
    """
    Call C{f(*args, **kwargs)} at once: L{HostnameBinder.handle}'s C{later}
    when it is given none.
    """
    f(*args, **kwargs)


@attrs.frozen
class BindRequest:
    """
    A parsed bind or unbind request.

    @ivar action: C{"bind"} or C{"unbind"}.
    @ivar namespace: the namespace the request used; the answer uses it too.
    @ivar hostname: the hostname, normalised (nameprep, lowercase).
    """

    action: str
    namespace: str
    hostname: str


def bindChild(iq: domish.Element) -> domish.Element | None:
    """
    The C{<bind/>} or C{<unbind/>} child of an IQ set in a bind namespace,
    or C{None} if C{iq} is no bind request.
    """
    if iq.name != "iq" or iq.getAttribute("type") != "set":
        return None
    for child in iq.elements():
        if child.uri in BIND_NAMESPACES and child.name in ("bind", "unbind"):
            return child
        return None
    return None


def normalizeHostname(text: str) -> str:
    """
    Normalise the text of a C{<hostname/>} with the package's one rule
    for names, L{xmppcomp.jids.normalizeDomain} (lowercase, IDNA ASCII
    form, no trailing dot); white space around it is dropped.

    @raise StanzaError: C{bad-request} when it is not a bare domain.
    """
    text = text.strip()
    if not text:
        raise StanzaError("bad-request", text="missing hostname")
    plain = plainDomain(text)
    if plain is not None:
        return plain
    try:
        return normalizeDomain(text)
    except InvalidDomain as e:
        raise StanzaError("bad-request", text="malformed hostname: %s" % (e.reason,)) from e


def parseBindRequest(iq: domish.Element) -> BindRequest | None:
    """
    Parse a bind or unbind request.

    @return: the request, or C{None} if C{iq} is not one.
    @raise StanzaError: C{bad-request} for a missing or malformed hostname.
    """
    child = bindChild(iq)
    if child is None:
        return None
    hostnames = list(child.elements(child.uri, "hostname"))
    if len(hostnames) != 1:
        raise StanzaError("bad-request", text="exactly one <hostname/> is required")
    return BindRequest(child.name, child.uri, normalizeHostname(str(hostnames[0])))


class HostnameRegistry(Protocol):
    """
    What a L{HostnameBinder} asks of the router.
    """

    def mayBind(self, identity: str, hostname: str) -> bool:
        """Whether C{identity} is authorised to bind C{hostname}."""

    def claim(self, hostname: str, owner: object) -> bool:
        """Route C{hostname} to C{owner}; C{False} if it is bound already."""

    def release(self, hostname: str, owner: object) -> None:
        """Stop routing C{hostname} to C{owner}."""


class HostnameBinder:
    """
    The hostnames one authenticated session has bound, and the answers to
    its bind and unbind requests.

    @ivar identity: the authenticated domain of the session.
    @ivar owner: what the registry routes the names to (the session).
    @ivar bound: the bound hostnames, in binding order.
    @ivar maxNames: the most names the session may bind.
    """

    def __init__(
        self,
        identity: str,
        owner: object,
        registry: HostnameRegistry,
        maxNames: int = 64,
    ) -> None:
        self.identity = identity
        self.owner = owner
        self.registry = registry
        self.maxNames = maxNames
        self.bound: list[str] = []

    def handle(
        self,
        iq: domish.Element,
        send: Callable[[domish.Element], object],
        later: Callable[..., None] | None = None,
    ) -> None:
        """
        Answer a bind or unbind request.

        The answer is handed to C{send} before the change is logged: the
        peer waits for the answer, not for the log.

        @param iq: an IQ for which L{bindChild} is not C{None}.
        @param send: sends the IQ result or error back.
        @param later: called as C{later(f, *args, **kwargs)} to log; it may
            defer the call (as L{NegotiatingXmlStream.afterRead
            <xmppcomp.stream.negotiating.NegotiatingXmlStream.afterRead>}
            does, until the answers of the read are out). C{None}: log at
            once.
        """
        emit = later if later is not None else _callNow
        try:
            request = parseBindRequest(iq)
            assert request is not None
            if request.action == "bind":
                self._bind(request.hostname)
            else:
                self._unbind(request.hostname)
        except StanzaError as e:
            # A fresh answer with the addressing, the id and the error, not
            # the request echoed (RFC 6120 section 8.3.1 allows leaving it
            # out; a request may carry up to max_stanza_size of junk).
            answer = toResponse(iq, "error")
            answer.addChild(e.getElement())
            send(answer)
            emit(
                log.info,
                "{identity}: {action} refused: {condition}",
                identity=self.identity,
                action=bindChild(iq).name,  # type: ignore[union-attr]
                condition=e.condition,
            )
            return
        reply = toResponse(iq, "result")
        if request.action == "bind" and request.namespace == NS_COMPONENT_0:
            reply.addElement((NS_COMPONENT_0, "bind")).addElement(
                "hostname", content=request.hostname
            )
        send(reply)
        emit(
            log.info,
            "{identity} {action} {hostname}",
            identity=self.identity,
            action="bound" if request.action == "bind" else "unbound",
            hostname=request.hostname,
        )

    def _bind(self, hostname: str) -> None:
        if hostname in self.bound:
            raise StanzaError("conflict", text="%s is bound already" % (hostname,))
        if not self.registry.mayBind(self.identity, hostname):
            raise StanzaError(
                "not-allowed",
                text="%s may not bind %s" % (self.identity, hostname),
            )
        if len(self.bound) >= self.maxNames:
            raise StanzaError(
                "resource-constraint",
                text="at most %d hostnames per session" % (self.maxNames,),
            )
        if not self.registry.claim(hostname, self.owner):
            raise StanzaError("conflict", text="%s is bound already" % (hostname,))
        self.bound.append(hostname)

    def _unbind(self, hostname: str) -> None:
        if hostname not in self.bound:
            raise StanzaError("item-not-found", text="%s is not bound" % (hostname,))
        self.bound.remove(hostname)
        self.registry.release(hostname, self.owner)

    def releaseAll(self) -> list[str]:
        """
        Release every bound name (the session ended).

        @return: the names released.
        """
        names, self.bound = self.bound, []
        for hostname in names:
            self.registry.release(hostname, self.owner)
        return names


@implementer(IReceivingFeature)
class BindFeature:
    """
    The receiving side's bind feature in one namespace. A session (the
    receiving authenticator) gets its L{HostnameBinder} from C{binderFor};
    negotiation is complete once a hostname is bound.

    @ivar namespace: the bind namespace advertised.
    @ivar binderFor: gives the binder of a session.
    """

    def __init__(self, namespace: str, binderFor: Callable[[IReceivingSession], HostnameBinder]) -> None:
        self.namespace = namespace
        self.binderFor = binderFor

    def featureElement(self, session: IReceivingSession) -> domish.Element | None:
        return markRequired(domish.Element((self.namespace, "bind")))

    def isRequired(self, session: IReceivingSession) -> bool:
        return not self.binderFor(session).bound

    def handleElement(self, session: IReceivingSession, element: domish.Element) -> bool:
        child = bindChild(element)
        if child is None or child.uri != self.namespace:
            return False
        # The answer is not flushed here: a component sends all its bind
        # requests at once, and the stream flushes the answers of a read
        # together once the read is handled, before the bookkeeping
        # (session setup, log lines) that C{afterRead} defers. One write
        # instead of one per name: the component waits for them all.
        self.binderFor(session).handle(element, session.send, session.afterRead)
        return True


def bindFeatures(binderFor: Callable[[IReceivingSession], HostnameBinder]) -> list[BindFeature]:
    """
    The bind features of both namespaces, C{urn:xmpp:component:0} first.
    """
    return [BindFeature(namespace, binderFor) for namespace in BIND_NAMESPACES]


#: Refusals worth trying again later: the name may be free soon (a stale
#: session of the same component that has not timed out yet), or the
#: server short of room. Any error of type C{wait} is one too. Any other
#: refusal (C{not-allowed}, C{bad-request}, ...) is not tried again before
#: the next connection or an explicit bind.
RETRYABLE_CONDITIONS = frozenset({"conflict", "resource-constraint"})


class BindError(StanzaError):
    """
    The server refused to bind a hostname.

    It is the L{StanzaError} the server answered, with the hostname.

    @ivar hostname: the hostname.
    @ivar condition: the stanza error condition the server gave.
    """

    def __init__(
        self, hostname: str, condition: str, text: str | None = None, type: str | None = None
    ) -> None:
        super().__init__(condition, type=type, text=text)
        self.hostname = hostname

    @classmethod
    def fromStanzaError(cls, hostname: str, error: StanzaError) -> "BindError":
        """
        The refusal of C{hostname} the server answered with C{error}.
        """
        refusal = cls(hostname, error.condition, error.text, error.type)
        refusal.appCondition = error.appCondition
        return refusal

    @property
    def retryable(self) -> bool:
        """
        Whether trying again later may succeed: C{conflict},
        C{resource-constraint}, or any error of type C{wait}.
        """
        return self.condition in RETRYABLE_CONDITIONS or self.type == "wait"

    def __str__(self) -> str:
        message = "could not bind %s: %s" % (self.hostname, self.condition)
        return message + (" (%s)" % (self.text,) if self.text else "")


class NoHostnameBound(BindError):
    """
    Negotiation bound no hostname at all: the server refused every one.
    It carries the first refusal's hostname and condition.

    @ivar refusals: every refusal, in the order the names were asked.
    """

    def __init__(self, refusals: Sequence[BindError]) -> None:
        if not refusals:
            raise ValueError("no refusal")
        first = refusals[0]
        super().__init__(first.hostname, first.condition, first.text, first.type)
        self.refusals: tuple[BindError, ...] = tuple(refusals)

    @property
    def retryable(self) -> bool:
        """
        Whether any of the names may be bound by trying again later.
        """
        return any(refusal.retryable for refusal in self.refusals)

    def __str__(self) -> str:
        return "no hostname bound: " + "; ".join(
            "%s %s" % (refusal.hostname, refusal.condition) for refusal in self.refusals
        )


def bindRequest(hostname: str, namespace: str = NS_COMPONENT_0, action: str = "bind") -> domish.Element:
    """
    An C{<iq type='set'>} asking to bind (or, with C{action="unbind"},
    unbind) C{hostname}, with an unguessable id
    (L{xmppcomp.iqtracker.newRequestId}).
    """
    iq = domish.Element((None, "iq"))
    iq["type"] = "set"
    iq["id"] = newRequestId()
    iq.addElement((namespace, action)).addElement("hostname", content=hostname)
    return iq


def boundHostname(result: domish.Element, namespace: str, asked: str) -> str:
    """
    The hostname a bind result names (C{urn:xmpp:component:0} repeats it),
    else the one asked for.
    """
    for child in result.elements(namespace, "bind"):
        for name in child.elements(namespace, "hostname"):
            return str(name).strip()
    return asked


def bind(
    xs: object, hostname: str, namespace: str = NS_COMPONENT_0, timeout: float | None = None
) -> defer.Deferred[str]:
    """
    Bind a hostname on a stream whose responses are dispatched on it
    (during negotiation, or on a plain stream).

    The answer is matched by Twisted's own tracker of the stream (by id
    alone, the id being unguessable here); a component binds through
    L{BindInitiator} or L{Component.bind<xmppcomp.component.Component.bind>},
    whose answers must also come from the server.

    @return: a L{Deferred} firing with the bound hostname, or failing with
        the L{StanzaError} the server answered.
    """
    iq = IQ(xs, "set")
    iq["id"] = newRequestId()
    iq.timeout = timeout  # type: ignore[assignment]  # Twisted's IQ declares timeout = None
    iq.addElement((namespace, "bind")).addElement("hostname", content=hostname)
    return iq.send().addCallback(boundHostname, namespace, hostname)


def unbind(
    xs: object, hostname: str, namespace: str = NS_COMPONENT_0, timeout: float | None = None
) -> defer.Deferred[None]:
    """
    Unbind a hostname.

    @return: a L{Deferred} firing with C{None}, or failing with the
        L{StanzaError} the server answered (C{item-not-found} for a name not
        bound).
    """
    iq = IQ(xs, "set")
    iq["id"] = newRequestId()
    iq.timeout = timeout  # type: ignore[assignment]  # Twisted's IQ declares timeout = None
    iq.addElement((namespace, "unbind")).addElement("hostname", content=hostname)
    return iq.send().addCallback(lambda result: None)


@implementer(IInitiatingFeature)
@attrs.define
class _BindFeatureInitiator:
    key: tuple[str, str]
    owner: "BindInitiator"

    def prepare(self, session: IInitiatingSession) -> None:
        self.owner.prepare(session, self.key[0])

    def negotiate(self, session: IInitiatingSession, feature: domish.Element) -> defer.Deferred[None]:
        if self.owner._stream is session.xmlstream:
            # The other namespace's feature bound every name already.
            return defer.succeed(None)
        return self.owner.negotiate(session, self.key[0])


class BindInitiator:
    """
    The component's side of hostname binding during negotiation: binds
    every configured hostname, requests sent together and answers read in
    order, in the first bind namespace the server advertised that this
    side speaks.

    Names are independent: negotiation goes on once at least one name is
    bound, and the names the server refused are listed in L{refused} for
    the component to report and try again (L{BindError.retryable}). Only
    when every name is refused does negotiation fail, with
    L{NoHostnameBound}.

    Under L{xmppcomp.stream.initiating.InitiatingAuthenticator} the
    requests go through its C{request} (answers matched by id and sender
    before dispatch, bounded by the negotiation timeout); on any other
    stream through L{bind}, each with C{timeout}.

    @ivar hostnames: the names to bind.
    @ivar timeout: seconds each request may take on a stream without
        C{authenticator.request}.
    @ivar namespace: the namespace in use on the current stream.
    @ivar bound: the names bound on the current stream, as the server
        named them.
    @ivar refused: the refusals of the current stream, in the order the
        names were asked.
    """

    def __init__(self, hostnames: Iterable[str], timeout: float | None = 30.0) -> None:
        self.hostnames: Sequence[str] = tuple(hostnames)
        if not self.hostnames:
            raise ValueError("a component needs at least one hostname to bind")
        self.timeout = timeout
        self.namespace: str | None = None
        self.bound: list[str] = []
        self.refused: list[BindError] = []
        self._stream: object | None = None
        self._prepared: tuple[object, str, list[tuple[domish.Element, str]]] | None = None

    def features(self) -> list[IInitiatingFeature]:
        """
        The initiating features to register, one per bind namespace.
        """
        return [_BindFeatureInitiator((namespace, "bind"), self) for namespace in BIND_NAMESPACES]

    def prepare(self, session: IInitiatingSession, namespace: str) -> None:
        """
        Make the bind requests of C{session} in C{namespace}, serialised as
        its stream sends them, ahead of the features that ask for them (the
        first namespace to ask is the one servers advertise first).
        """
        xs = session.xmlstream
        if self._prepared is not None and self._prepared[0] is xs:
            return
        requests = []
        for hostname in self.hostnames:
            iq = bindRequest(hostname, namespace)
            requests.append((iq, session.serialize(iq)))
        self._prepared = (xs, namespace, requests)

    # Any: DeferredList types the values of its results as Any (here a
    # bound name or a Failure).
    @defer.inlineCallbacks
    def negotiate(
        self, target: object, namespace: str
    ) -> Generator[defer.Deferred[list[tuple[bool, Any]]], list[tuple[bool, Any]], None]:
        """
        Bind every hostname on C{target}, a negotiation
        (L{IInitiatingSession}: the requests go through its C{request}) or
        a stream that tracks IQ answers (then each request has
        C{timeout}); a second bind feature of the same stream (the other
        namespace) finds the work done.

        @raise NoHostnameBound: every hostname was refused (the refusals
            are in L{refused} too).
        """
        session = target if IInitiatingSession.providedBy(target) else None
        xs = session.xmlstream if session is not None else target
        if self._stream is xs:
            return
        self._stream = xs
        self.namespace = namespace
        self.bound = []
        self.refused = []
        # Every request goes out at once: one round trip for all the names,
        # not one each (the server answers them in order). All answers are
        # awaited, so none is left unhandled.
        if session is not None:
            request = session.request
            # Under xmppcomp's InitiatingAuthenticator: the answers are
            # matched before dispatch, and the negotiation timeout bounds
            # the wait (no timer per request).
            prepared, self._prepared = self._prepared, None
            made: list[tuple[domish.Element, str | None]]
            if prepared is not None and prepared[0] is xs and prepared[1] == namespace:
                made = list(prepared[2])
            else:
                made = [(bindRequest(hostname, namespace), None) for hostname in self.hostnames]
            requests = [
                request(iq, xml).addCallback(boundHostname, namespace, hostname)
                for hostname, (iq, xml) in zip(self.hostnames, made)
            ]
        else:
            requests = [bind(xs, hostname, namespace, self.timeout) for hostname in self.hostnames]
        answers = yield defer.DeferredList(requests, consumeErrors=True)
        for hostname, (ok, value) in zip(self.hostnames, answers):
            if ok:
                self.bound.append(value)
            elif value.check(StanzaError):
                self.refused.append(BindError.fromStanzaError(hostname, value.value))
            else:
                value.raiseException()
        if not self.bound:
            raise NoHostnameBound(self.refused)
