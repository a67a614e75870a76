# -*- test-case-name: tests.test_stream_receiving -*-
"""
The XML stream both ends use while they negotiate: until negotiation is
complete, first-level elements go to the authenticator first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, ClassVar, ParamSpec

from twisted.internet import protocol
from twisted.internet.interfaces import IHandshakeListener, IReactorTime
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from zope.interface import implementer

from xmppcomp.logs import Logger
from xmppcomp.ns import NS_STREAMS
from xmppcomp.stream.xmlstream import XmppXmlStream

if TYPE_CHECKING:
    from xmppcomp.stream.adapter import NegotiationAdapter, NegotiationPolicy
    from xmppcomp.stream.machine import Machine

__all__ = [
    "NegotiatingFactory",
    "NegotiatingXmlStream",
    "peerOf",
]

_log = Logger()

_P = ParamSpec("_P")


@implementer(IHandshakeListener)
class NegotiatingXmlStream(XmppXmlStream):
    """
    An L{XmppXmlStream} whose authenticator sees every first-level element
    before negotiation completes.

    @ivar negotiated: C{True} once the authenticator declared negotiation
        complete (it also dispatches
        L{twisted.words.protocols.jabber.xmlstream.STREAM_AUTHD_EVENT}).
    """

    negotiated = False

    #: The negotiator (an L{INegotiator<xmppcomp.interfaces.INegotiator>}).
    authenticator: NegotiationAdapter[Machine]

    # Twisted's (unannotated) XmlStream sets these to None at class level,
    # which mypy takes as their only type: widen them to what is stored.
    thisEntity: JID | None  # type: ignore[assignment]
    otherEntity: JID | None  # type: ignore[assignment]
    sid: str | None  # type: ignore[assignment]

    #: Once negotiated, first-level elements go straight to this callable
    #: instead of through the event dispatcher (the router's fast path).
    #: Stream errors are still dispatched.
    elementHandler: Callable[[domish.Element], None] | None = None

    #: What L{afterRead} deferred while a read is being handled, or
    #: C{None} outside one.
    _afterRead: list[tuple[Callable[..., object], tuple[object, ...], dict[str, object]]] | None = None

    def dataReceived(self, data: bytes) -> None:
        if self.negotiated:
            # Routing: nothing is deferred (afterRead calls at once), and
            # the reactor flushes once per turn, for every session alike.
            XmppXmlStream.dataReceived(self, data)
            return
        outer = self._afterRead is None
        if outer:
            self._afterRead = []
        try:
            XmppXmlStream.dataReceived(self, data)
            # The peer waits for our answer at every step of negotiation:
            # hand it to the kernel now rather than a reactor turn or two
            # later (see xmppcomp.stream.xmlstream.flushWrites).
            self.flush()
        finally:
            if outer:
                deferred, self._afterRead = self._afterRead or [], None
                for f, args, kwargs in deferred:
                    try:
                        f(*args, **kwargs)
                    except Exception:
                        # Bookkeeping must not break the stream, nor keep
                        # the rest from running.
                        _log.failure("after a read, {f!r} failed", f=f)

    def handshakeCompleted(self) -> None:
        """
        The TLS layer under this stream finished its handshake: tell the
        authenticator (L{INegotiator.tlsHandshakeCompleted
        <xmppcomp.interfaces.INegotiator.tlsHandshakeCompleted>}).
        """
        self.authenticator.tlsHandshakeCompleted()

    def afterRead(self, f: Callable[_P, object], *args: _P.args, **kwargs: _P.kwargs) -> None:
        """
        Call C{f(*args, **kwargs)} once the read being handled is done and
        its answers are flushed: for bookkeeping, such as log lines, that
        the peer need not wait for. Outside a read of a negotiating stream
        (and once negotiated), call it now.
        """
        if self._afterRead is None:
            f(*args, **kwargs)
        else:
            self._afterRead.append((f, args, kwargs))

    def onElement(self, element: domish.Element) -> None:
        if (
            not self.negotiated
            and not (element.uri == NS_STREAMS and element.name == "error")
            and self.authenticator.interceptElement(element)
        ):
            return
        # (Intercepting may have completed negotiation.)
        if self.negotiated and self.elementHandler is not None and element.uri != NS_STREAMS:
            self.elementHandler(element)
            return
        XmppXmlStream.onElement(self, element)


def peerOf(xs: XmppXmlStream, unknown: str = "?") -> str:
    """
    The peer address of a stream, for messages and log lines.
    """
    transport = xs.transport
    if transport is None:
        return unknown
    try:
        return str(transport.getPeer())
    except Exception:
        return unknown


class NegotiatingFactory(protocol.Factory):
    """
    Builds a L{NegotiatingXmlStream} per connection, with the authenticator
    L{makeAuthenticator} returns and the limits of C{policy}.

    @cvar authenticatorType: what L{makeAuthenticator} calls with the
        policy and the reactor: the authenticator class of a subclass.

    @ivar policy: the policy value of every stream (it has
        C{maxStanzaSize} and C{closeTimeout}).
    @ivar reactor: schedules the streams' timers.
    @ivar bootstraps: C{(event, observer)} pairs added to every new stream,
        as in L{twisted.words.xish.xmlstream.BootstrapMixin}: observe
        L{twisted.words.protocols.jabber.xmlstream.STREAM_AUTHD_EVENT} to
        learn of negotiated streams before their first stanza.
    """

    def __init__(self, policy: NegotiationPolicy, reactor: IReactorTime | None = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        self.policy = policy
        self.reactor = reactor
        self.bootstraps: list[tuple[str, Callable[..., object]]] = []

    def addBootstrap(self, event: str, observer: Callable[..., object]) -> None:
        """
        Add C{observer} for C{event} on every stream built from now on.
        """
        self.bootstraps.append((event, observer))

    authenticatorType: ClassVar[type[NegotiationAdapter[Machine]]]

    def makeAuthenticator(self) -> NegotiationAdapter[Machine]:
        """
        The authenticator of a new stream: an L{authenticatorType} of the
        policy and the reactor.
        """
        return self.authenticatorType(self.policy, self.reactor)

    def buildProtocol(self, addr: object) -> NegotiatingXmlStream:
        xs = NegotiatingXmlStream(
            self.makeAuthenticator(),
            reactor=self.reactor,
            maxStanzaSize=self.policy.maxStanzaSize,
            closeTimeout=self.policy.closeTimeout,
        )
        xs.factory = self
        for event, observer in self.bootstraps:
            xs.addObserver(event, observer)
        return xs
