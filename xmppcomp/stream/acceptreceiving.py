# -*- test-case-name: tests.test_stream_accept,tests.test_stream_machines_accept -*-
"""
The receiving (router) side of a XEP-0114 component connection
(C{jabber:component:accept}), so that components written for the servers
people run (slixmpp's C{ComponentXMPP}, wokkel's C{Component}) can connect.

The component opens a stream to its own hostname; this side answers with a
fresh stream id and no version or features, and the component proves it
knows the shared secret with C{<handshake>hex(SHA-1(id + secret))</handshake>}.
An empty C{<handshake/>} accepts it; from then on stanzas are dispatched by
the stream as usual.

The checks live in L{xmppcomp.stream.handshake}; the negotiation is
L{AcceptMachine}, a pure machine with an explicit transition table (see
L{xmppcomp.stream.machine}), and L{AcceptAuthenticator} carries it out on a
L{NegotiatingXmlStream<xmppcomp.stream.negotiating.NegotiatingXmlStream>}
through the one adapter, L{xmppcomp.stream.adapter.NegotiationAdapter}, as
L{xmppcomp.stream.receiving} does for XEP-0225.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.words.protocols.jabber import jid
from twisted.words.protocols.jabber.error import StreamError
from twisted.words.xish import domish

from xmppcomp.logs import Logger
from xmppcomp.metrics import Metrics
from xmppcomp.ns import NS_COMPONENT_ACCEPT
from xmppcomp.stream.adapter import NegotiationAdapter
from xmppcomp.stream.handshake import checkAcceptHeader, checkHandshake
from xmppcomp.stream.header import newStreamId
from xmppcomp.stream.limits import AuthFailureLimiter
from xmppcomp.stream.machine import (
    ANY,
    NegotiationIO,
    OurHeader,
    ReceivingSide,
    Table,
    isStanza,
    rows,
)
from xmppcomp.stream.receiving import ListeningFactory
from xmppcomp.stream.xmlstream import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_STANZA_DEPTH,
    DEFAULT_MAX_STANZA_SIZE,
)

__all__ = ["AcceptAuthenticator", "AcceptFactory", "AcceptMachine", "AcceptPolicy"]

log = Logger()

#: The handshake element (XEP-0114 section 3).
HANDSHAKE = (NS_COMPONENT_ACCEPT, "handshake")

#: How much of an unchecked C{to} attribute goes into a log line.
_LOGGED_TO = 100


_Number = TypeVar("_Number", int, float)


def _positive(instance: object, attribute: attrs.Attribute[_Number], value: _Number) -> None:
    if not value > 0:
        raise ValueError("%s must be positive" % (attribute.name,))


@attrs.frozen
class AcceptPolicy:
    """
    How the receiving side accepts XEP-0114 components.

    @ivar secrets: maps a normalised (lowercase) component hostname to its
        shared secret, or to L{None} when the hostname is unknown (the
        stream is then refused with C{host-unknown}). It is called once per
        stream, when the header arrives.
    @ivar negotiationTimeout: seconds from connection to a successful
        handshake before the stream is closed with C{connection-timeout}.
    @ivar maxStanzaSize: as in L{xmppcomp.stream.receiving.ReceivingPolicy}.
    @ivar closeTimeout: as in L{xmppcomp.stream.receiving.ReceivingPolicy}.
    @ivar maxStanzaDepth: as in L{xmppcomp.stream.receiving.ReceivingPolicy}.
    @ivar authFailures: counts wrong handshakes per source address and
        refuses sources that failed too often (C{policy-violation}); see
        L{AuthFailureLimiter}. C{None} turns the limit off.
    @ivar metrics: where refused streams are counted (by condition), or
        L{None}.
    """

    secrets: Callable[[str], str | None] = attrs.field(
        validator=attrs.validators.is_callable()
    )
    negotiationTimeout: float = attrs.field(default=30.0, validator=_positive)
    maxStanzaSize: int = attrs.field(default=DEFAULT_MAX_STANZA_SIZE, validator=_positive)
    closeTimeout: float = attrs.field(default=DEFAULT_CLOSE_TIMEOUT, validator=_positive)
    maxStanzaDepth: int = attrs.field(default=DEFAULT_MAX_STANZA_DEPTH, validator=_positive)
    authFailures: AuthFailureLimiter | None = attrs.field(factory=AuthFailureLimiter)
    metrics: Metrics | None = None


class AcceptMachine(ReceivingSide):
    """
    Accepts one incoming XEP-0114 component stream: a pure machine that
    follows L{table}.

    Its states:

      - C{"header"}: waiting for the component's stream header;
      - C{"handshake"}: our header is sent, waiting for C{<handshake/>};
      - C{"complete"}: the handshake succeeded; elements are no longer
        consumed, and negotiation was reported;
      - C{"refused"}: a stream error was sent; elements that arrive while
        the stream closes are dropped.

    @ivar secrets: the policy's secret lookup.
    @ivar streamId: our stream id, once the header arrived.
    @ivar requested: the hostname the component asked for, for log lines:
        the unchecked C{to} (shortened) of a refused header, else the
        normalised hostname; not authenticated.
    @ivar secret: the shared secret of C{requested} while the handshake is
        awaited, else L{None}; never logged, forgotten once used and when
        the stream is refused or ends.
    @ivar hostname: the normalised hostname of the component once the
        handshake succeeded, else L{None}.
    """

    what = "handshakes"

    table = Table(
        name="accept",
        initial="header",
        states=("header", "handshake", "complete", "refused"),
        rows=rows(
            ("header", "connected", "begin", ("header", "refused")),
            ("header", "header", "answer", ("handshake", "refused")),
            ("refused", "header", "ignore", ()),
            ("handshake", "element", "check", ("handshake", "complete", "refused")),
            ("complete", "element", "passOn", ()),
            ("refused", "element", "consume", ()),
            (("header", "handshake"), "timedOut", "expire", "refused"),
            (ANY, "tlsDone", "ignore", ()),
            (ANY, "ended", "forget", ()),
        ),
    )

    def __init__(
        self,
        io: NegotiationIO,
        secrets: Callable[[str], str | None],
        limiter: AuthFailureLimiter | None,
        negotiationTimeout: float,
    ) -> None:
        super().__init__(io, limiter, negotiationTimeout)
        self.secrets = secrets
        self.streamId: str | None = None
        self.requested: str | None = None
        self.secret: str | None = None
        self.hostname: str | None = None

    # Behaviours.

    def begin(self) -> str:
        """
        (C{connected}.) Refuse a blocked source at once, else start the
        negotiation timeout.
        """
        return self.start() or self.state

    def answer(self, root: domish.Element) -> str:
        """
        (C{header}.) Check the component's header, look its secret up and
        answer with our header: from the requested hostname, with a fresh
        id, without version or features. A refused header is answered with
        our header (without C{from}) and the stream error.
        """
        self.streamId = newStreamId()
        try:
            hostname = checkAcceptHeader(root)
        except StreamError as e:
            self.requested = _loggedTo(root)
            return self.refuseAfterHeader(e.condition, "bad stream header")
        self.requested = hostname
        try:
            secret = self.secrets(hostname)
        except Exception:  # noqa: BLE001 (any failure of the lookup is logged and refused)
            log.failure(
                "looking up the secret for {hostname} from {peer} failed",
                hostname=hostname,
                peer=self.io.peer(),
            )
            return self.refuseAfterHeader("internal-server-error", "secret lookup failed")
        if secret is None:
            return self.refuseAfterHeader("host-unknown", "no component with this hostname")
        self.secret = secret
        self.io.sendHeader(self.ourHeader(hostname))
        return "handshake"

    def check(self, element: domish.Element) -> tuple[str, bool]:
        """
        (C{element}, waiting for the handshake.) The right handshake
        completes negotiation, a wrong one is refused with
        C{not-authorized} and counted against the source; a stanza is
        refused with C{not-authorized}, anything else with
        C{unsupported-stanza-type}. Elements that follow a stream error
        from the peer are dropped.
        """
        if self.io.streamEnded():
            return self.state, True
        if (element.uri, element.name) == HANDSHAKE:
            text = self.blocked()
            if text is not None:
                return self.refuse("policy-violation", text), True
            return self.handshake(element), True
        if isStanza(element):
            return self.refuse("not-authorized", "stanza before the handshake"), True
        return (
            self.refuse(
                "unsupported-stanza-type",
                "unexpected {%s}%s before the handshake" % (element.uri, element.name),
            ),
            True,
        )

    def expire(self) -> str:
        """
        (C{timedOut}.) No handshake within the negotiation timeout.
        """
        return self.refuse(
            "connection-timeout",
            "no handshake after %g seconds" % (self.negotiationTimeout,),
        )

    def forget(self, reason: object) -> None:
        """
        (C{ended}.) No timer is left behind, and the secret is forgotten.
        """
        self.secret = None
        self.stop(reason)

    # Helpers.

    def handshake(self, element: domish.Element) -> str:
        """
        Check the component's handshake: accept the stream, or refuse it
        with C{not-authorized}.

        @return: the next state.
        """
        assert self.streamId is not None and self.secret is not None
        received = "".join(child for child in element.children if isinstance(child, str))
        accepted = checkHandshake(self.streamId, self.secret, received)
        self.secret = None
        if not accepted:
            self.countFailure()
            return self.refuse("not-authorized", "wrong handshake")
        # What succeeded() sets off sees the new state.
        self.state = "complete"
        self.hostname = self.requested
        self.io.cancelTimer()
        self.io.send(domish.Element(HANDSHAKE))
        log.info(
            "component {hostname} accepted from {peer} in {ms:.1f} ms",
            hostname=self.hostname,
            peer=self.io.peer(),
            ms=(self.io.now() - self.started) * 1000,
        )
        self.io.succeeded(None)
        return "complete"

    def ourHeader(self, hostname: str | None = None) -> OurHeader:
        """
        Our header: in C{jabber:component:accept}, without version, from
        C{hostname}, with our stream id (if chosen).
        """
        return OurHeader(NS_COMPONENT_ACCEPT, (0, 0), ours=hostname, id=self.streamId)

    def refusalHeader(self) -> OurHeader:
        return self.ourHeader()

    def refuseAfterHeader(self, condition: str, text: str) -> str:
        """
        Refuse the stream while answering its header: the stream error
        goes out with our header, without C{from}.
        """
        self.io.describe(self.ourHeader())
        return self.refuse(condition, text)

    def refuse(self, condition: str, text: str | None) -> str:
        """
        Forget the secret, then refuse as every receiving side does.
        """
        self.secret = None
        return super().refuse(condition, text)

    def logRefusal(self, condition: str, text: str | None) -> None:
        log.info(
            "refusing component stream from {peer} for {hostname}: {condition} ({text})",
            peer=self.io.peer(),
            hostname=self.requested,
            condition=condition,
            text=text,
        )


def _loggedTo(root: domish.Element) -> str | None:
    """
    The unchecked C{to} of a refused header, shortened for the log.
    """
    to = root.getAttribute("to")
    if to is None:
        return None
    return str(to)[:_LOGGED_TO]


class AcceptAuthenticator(NegotiationAdapter[AcceptMachine]):
    """
    Accepts one incoming XEP-0114 component stream: carries an
    L{AcceptMachine} out on the stream.

    @ivar policy: the L{AcceptPolicy}.
    @ivar hostname: the normalised hostname of the component once the
        handshake succeeded, else L{None}.
    """

    namespace = NS_COMPONENT_ACCEPT
    initiating = False
    policy: AcceptPolicy

    def __init__(self, policy: AcceptPolicy, reactor: IReactorTime) -> None:
        """
        @param policy: how to accept components.
        @param reactor: schedules the negotiation timeout.
        """
        self.hostname: str | None = None
        super().__init__(policy, reactor)

    def makeMachine(self) -> AcceptMachine:
        policy: AcceptPolicy = self.policy
        return AcceptMachine(self, policy.secrets, policy.authFailures, policy.negotiationTimeout)

    def countRefusal(self, condition: str) -> None:
        metrics = self.policy.metrics
        if metrics is not None:
            metrics.countNegotiationFailure("receiving", condition)

    def succeeded(self, result: object) -> None:
        """
        The component is accepted: the stream's peer is its hostname.
        """
        hostname = self.machine.hostname
        assert hostname is not None
        self.hostname = hostname
        self.xmlstream.otherEntity = jid.JID(tuple=(None, hostname, None))
        super().succeeded(result)


class AcceptFactory(ListeningFactory):
    """
    Builds a negotiating XEP-0114 stream per accepted connection (a
    L{ListeningXmlStream<xmppcomp.stream.receiving.ListeningXmlStream>}),
    for an L{AcceptPolicy}; the authenticator's C{hostname} says which
    component was accepted.
    """

    authenticatorType = AcceptAuthenticator
