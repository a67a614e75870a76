# -*- test-case-name: tests.test_stream_receiving,tests.test_stream_initiating,tests.test_stream_accept,tests.test_stream_accept_initiating -*-
"""
The one adapter between the pure negotiating machines
(L{xmppcomp.stream.machine}) and a real stream: it feeds the stream's
events to the machine as inputs and carries the machine's actions out on
the stream and its transport.

It is a Twisted L{Authenticator<twisted.words.protocols.jabber.xmlstream.Authenticator>},
so a L{NegotiatingXmlStream<xmppcomp.stream.negotiating.NegotiatingXmlStream>}
drives it: C{connectionMade}, C{streamStarted} and C{interceptElement}
become the machine's C{connected}, C{header} and C{element} inputs, the
TLS handshake's end C{tlsDone}, the stream's end C{ended}, and its one
timer C{timedOut}.

The speed techniques of negotiation are options of this adapter, on public
API only: the answers of a read are written together (the stream's
C{afterRead}), and serialised features can be remembered per policy
(L{FeaturesCache}).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Generic, ParamSpec, Protocol, TypeVar, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IDelayedCall, IOpenSSLClientConnectionCreator, IOpenSSLServerConnectionCreator, IProtocol, IProtocolFactory, IReactorTime,
    IStreamClientEndpoint, ITLSTransport,
)
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import jid
from twisted.words.protocols.jabber.error import StreamError
from twisted.words.protocols.jabber.xmlstream import (
    INIT_FAILED_EVENT,
    STREAM_AUTHD_EVENT,
    Authenticator,
)
from twisted.words.xish import domish
from twisted.words.xish.xmlstream import STREAM_END_EVENT, STREAM_ERROR_EVENT
from zope.interface import implementer

from xmppcomp.interfaces import INegotiator
from xmppcomp.ns import NS_STREAMS
from xmppcomp.stream import tls
from xmppcomp.stream.limits import sourceKey
from xmppcomp.stream.initiatingmachine import NegotiationResult
from xmppcomp.stream.machine import Machine, OurHeader
from xmppcomp.stream.negotiating import peerOf

if TYPE_CHECKING:
    from xmppcomp.stream.negotiating import NegotiatingXmlStream

__all__ = ["FeaturesCache", "InitiatingAdapter", "NegotiationAdapter", "NegotiationPolicy", "connectAndNegotiate"]

_M_co = TypeVar("_M_co", bound=Machine, covariant=True)

_P = ParamSpec("_P")


class NegotiationPolicy(Protocol):
    """
    What the adapter and its stream's factory read of the policy of every
    side (L{InitiatingPolicy<xmppcomp.stream.initiating.InitiatingPolicy>},
    L{ReceivingPolicy<xmppcomp.stream.receiving.ReceivingPolicy>} and the
    XEP-0114 ones, frozen attrs classes); each adapter reads the rest of
    its own.
    """

    @property
    def maxStanzaSize(self) -> int:
        """The largest stanza accepted, in bytes."""

    @property
    def closeTimeout(self) -> float:
        """Seconds to wait for the peer's closing tag."""


class FeaturesCache:
    """
    Serialised C{<stream:features/>} remembered by what they depend on
    (the stage, the mechanisms and channel-binding types offered): an
    option of the adapter, owned by a policy, bounded in size.

    @ivar size: at most this many are kept; when full it is emptied.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._kept: dict[tuple[object, ...], str] = {}

    def get(self, key: tuple[object, ...], make: Callable[[], str]) -> str:
        """
        The features serialised for C{key}, made by C{make} the first time.
        """
        xml = self._kept.get(key)
        if xml is None:
            xml = make()
            if len(self._kept) >= self.size:
                self._kept.clear()
            self._kept[key] = xml
        return xml

    def __len__(self) -> int:
        return len(self._kept)

    def keys(self) -> list[tuple[object, ...]]:
        """
        The keys kept.
        """
        return list(self._kept)


@implementer(INegotiator)
class NegotiationAdapter(Authenticator, Generic[_M_co]):
    """
    Negotiates one stream with a machine: the base of the four
    negotiators' authenticators, which say which machine
    (L{makeMachine}) and what else they expose.

    @cvar initiating: whether this side opens the stream.
    @ivar policy: the negotiator's policy.
    @ivar machine: the negotiating machine.
    """

    initiating: ClassVar[bool] = True

    #: The stream, from L{associateWithStream} on.
    xmlstream: NegotiatingXmlStream

    def __init__(self, policy: NegotiationPolicy, reactor: IReactorTime) -> None:
        super().__init__()
        self.policy = policy
        self.reactor = reactor
        self._timer: IDelayedCall | None = None
        self.machine: _M_co = self.makeMachine()

    def makeMachine(self) -> _M_co:
        """
        The machine; subclasses say which.
        """
        raise NotImplementedError()

    # The stream's events, as inputs.

    def associateWithStream(self, xs: NegotiatingXmlStream) -> None:
        super().associateWithStream(xs)
        xs.initiating = self.initiating
        xs.addObserver(STREAM_END_EVENT, self._onEnd)
        if self.initiating:
            xs.addObserver(STREAM_ERROR_EVENT, self._onEnd)

    def connectionMade(self) -> None:
        self.machine.connected()

    def streamStarted(self, rootElement: domish.Element) -> None:
        self.machine.header(rootElement)

    def interceptElement(self, element: domish.Element) -> bool:
        """
        Offer a first-level element to the machine.

        @return: whether negotiation consumed it.
        """
        return self.machine.element(element)

    def tlsHandshakeCompleted(self) -> None:
        """
        The TLS handshake under the stream completed.
        """
        self.machine.tlsDone()

    def _onEnd(self, reason: object) -> None:
        self.machine.ended(reason)

    def _expired(self) -> None:
        self._timer = None
        self.machine.timedOut()

    # Facts.

    def now(self) -> float:
        return self.reactor.seconds()

    def peer(self) -> str:
        return peerOf(self.xmlstream, "the server" if self.initiating else "?")

    def source(self) -> str | None:
        transport = self.xmlstream.transport
        return None if transport is None else sourceKey(transport.getPeer())

    def encrypted(self) -> bool:
        return tls.tlsConnectionOf(self.xmlstream.transport) is not None

    def streamEnded(self) -> bool:
        return self.xmlstream.streamEnded is not None

    # Actions.

    def describe(self, header: OurHeader) -> None:
        xs = self.xmlstream
        xs.namespace = header.namespace
        xs.version = header.version
        xs.prefixes = {NS_STREAMS: "stream"}
        if header.id is not None:
            xs.sid = header.id
        xs.thisEntity = None if header.ours is None else self.entity(header.ours)
        xs.otherEntity = None if header.theirs is None else self.entity(header.theirs)

    def entity(self, name: str) -> jid.JID:
        """
        The JID of a name in our header (a domain); subclasses whose
        headers name full JIDs, or that remember them, say otherwise.
        """
        return jid.JID(tuple=(None, name, None))

    def sendHeader(self, header: OurHeader) -> None:
        self.describe(header)
        self.xmlstream.sendHeader()

    def send(self, element: domish.Element | str) -> None:
        self.xmlstream.send(element)

    def serialize(self, element: domish.Element) -> str:
        """
        C{element} serialised as this stream sends it.
        """
        return self.xmlstream.serialize(element)

    def startTLS(self) -> None:
        xs = self.xmlstream
        # STARTTLS is only negotiated over TCP, whose transports provide it.
        cast(ITLSTransport, xs.transport).startTLS(self.tlsOptions())
        if self.initiating:
            # The ClientHello leaves before the rest of the setup.
            xs.flush()
        self.tlsDeclarations().keep(xs.transport)
        xs.reset()

    def tlsOptions(self) -> IOpenSSLClientConnectionCreator | IOpenSSLServerConnectionCreator:
        """
        The TLS connection creator of this side; subclasses that start TLS
        say which.
        """
        raise NotImplementedError()

    def tlsDeclarations(self) -> tls.TLSDeclarations:
        """
        What keeps the TLS layer's declarations warm (the policy's);
        subclasses that start TLS say which.
        """
        raise NotImplementedError()

    def resetParser(self) -> None:
        self.xmlstream.reset()

    def refuse(self, condition: str, text: str | None) -> None:
        self.xmlstream.sendStreamError(StreamError(condition, text=text))

    def close(self) -> None:
        self.xmlstream.closeStream()

    def startTimer(self, seconds: float) -> None:
        self.cancelTimer()
        self._timer = self.reactor.callLater(seconds, self._expired)

    def cancelTimer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def afterRead(self, f: Callable[_P, object], *args: _P.args, **kwargs: _P.kwargs) -> None:
        self.xmlstream.afterRead(f, *args, **kwargs)

    def succeeded(self, result: object) -> None:
        xs = self.xmlstream
        xs.negotiated = True
        xs.dispatch(xs, STREAM_AUTHD_EVENT)

    def failed(self, reason: Exception | Failure) -> None:
        failure = reason if isinstance(reason, Failure) else Failure(reason)
        self.xmlstream.dispatch(failure, INIT_FAILED_EVENT)

    def countRefusal(self, condition: str) -> None:
        """
        Count a refusal; only the receiving sides refuse, and say where
        they count.
        """
        raise NotImplementedError()


class InitiatingAdapter(NegotiationAdapter[_M_co]):
    """
    The adapter of an initiating side (XEP-0225 or XEP-0114): what it
    negotiated, or why it failed, fires L{negotiated}.

    @ivar negotiated: a L{Deferred} that fires with the side's
        L{NegotiationResult<xmppcomp.stream.initiatingmachine.NegotiationResult>}
        once negotiation is complete, or fails with why it stopped (the
        same failure L{INIT_FAILED_EVENT} carries).
    """

    initiating = True

    def __init__(self, policy: NegotiationPolicy, reactor: IReactorTime) -> None:
        self.negotiated: Deferred[NegotiationResult] = Deferred()
        super().__init__(policy, reactor)

    def succeeded(self, result: object) -> None:
        """
        Also fire L{negotiated} with the result.
        """
        super().succeeded(result)
        # The initiating machines succeed with their NegotiationResult.
        assert isinstance(result, NegotiationResult), result
        self.negotiated.callback(result)

    def failed(self, reason: Exception | Failure) -> None:
        """
        Also fail L{negotiated}, once, with the same failure.
        """
        failure = reason if isinstance(reason, Failure) else Failure(reason)
        super().failed(failure)
        if not self.negotiated.called:
            self.negotiated.errback(failure)


def connectAndNegotiate(
    endpoint: IStreamClientEndpoint, factory: IProtocolFactory
) -> Deferred[tuple[NegotiatingXmlStream, NegotiationResult]]:
    """
    Connect to C{endpoint} with C{factory} (whose streams' authenticators
    are L{InitiatingAdapter}s) and wait for the negotiation.

    @return: a L{Deferred} firing with C{(xmlstream, result)} once
        negotiation is complete, or failing with why it did not.
    """

    def connected(protocol: IProtocol) -> Deferred[tuple[NegotiatingXmlStream, NegotiationResult]]:
        xs = cast("NegotiatingXmlStream", protocol)
        authenticator = cast(InitiatingAdapter[Machine], xs.authenticator)
        return authenticator.negotiated.addCallback(lambda result: (xs, result))

    return endpoint.connect(factory).addCallback(connected)
