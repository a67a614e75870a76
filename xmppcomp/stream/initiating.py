# -*- test-case-name: tests.test_stream_initiating -*-
"""
The initiating side of a component connection (XEP-0225 section 3): opens
a C{jabber:client} stream to the server, negotiates STARTTLS (checking the
server certificate), authenticates with SASL as a domain, then negotiates
the features registered for after SASL (hostname bind) until no required
feature is left (XEP-0192).
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence, TypeVarTuple

import attrs
from twisted.internet import defer
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IReactorTime, IStreamClientEndpoint
from twisted.internet.ssl import PrivateCertificate
from twisted.python.failure import Failure
from twisted.words.xish import domish
from zope.interface import implementer

from xmppcomp.errors import NegotiationError
from xmppcomp.interfaces import IInitiatingFeature, IInitiatingSession
from xmppcomp.iqtracker import RequestTracker, newRequestId
from xmppcomp.logs import Logger
from xmppcomp.metrics import Metrics
from xmppcomp.stream import tls
from xmppcomp.stream.adapter import InitiatingAdapter, connectAndNegotiate
from xmppcomp.stream.channelbinding import ChannelBindingData
from xmppcomp.stream.initiatingmachine import (
    InitiatingMachine,
    NegotiationResult,
    OfferMemory,
)
from xmppcomp.stream.machine import OurHeader
from xmppcomp.stream.negotiating import NegotiatingFactory, NegotiatingXmlStream
from xmppcomp.stream.xmlstream import DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_STANZA_SIZE

__all__ = [
    "InitiatingAuthenticator",
    "InitiatingFactory",
    "InitiatingMachine",
    "InitiatingPolicy",
    "NegotiationResult",
    "OfferMemory",
    "negotiate",
]

log = Logger()

_Ts = TypeVarTuple("_Ts")

# The converter of InitiatingPolicy.features: typed, as mypy's attrs plugin
# cannot infer the type from the generic builtin.
def _featureTuple(features: Iterable[IInitiatingFeature]) -> tuple[IInitiatingFeature, ...]:
    return tuple(features)


@attrs.frozen
class InitiatingPolicy:
    """
    How the initiating side (a component) negotiates its stream.

    @ivar serverDomain: the server's domain: the C{to} of the stream header
        and the name its certificate must carry.
    @ivar identity: the domain the component authenticates as.
    @ivar secret: the shared secret for SCRAM or PLAIN, or C{None} when a
        client certificate is used (SASL EXTERNAL).
    @ivar clientCertificate: a L{twisted.internet.ssl.PrivateCertificate}
        presented in TLS for SASL EXTERNAL, or C{None}.
    @ivar trust: how the server certificate is verified (see
        L{xmppcomp.stream.tls.trustSystem}, C{trustCAFile},
        C{trustPinned}); C{None} means the system store.
    @ivar tlsCreator: an explicit
        L{twisted.internet.interfaces.IOpenSSLClientConnectionCreator} to
        use instead of the one built from C{trust} and
        C{clientCertificate}.
    @ivar requireTLS: refuse to go on without STARTTLS (the default). When
        C{False} a server that offers no TLS is accepted, loudly.
    @ivar mechanisms: the SASL mechanisms this side may use, or C{None}
        for all it implements.
    @ivar hostname: the C{from} of the stream header (the component's
        default hostname); C{None} means C{identity}.
    @ivar features: what to negotiate after SASL, such as the hostname
        bind.
    @ivar negotiationTimeout: seconds from connection to the end of
        negotiation.
    @ivar directTLS: the connection is TLS from its first byte (a C{tls:}
        endpoint wrapped with L{tlsOptions}), so STARTTLS is skipped.
    @ivar tlsDeclarations: keeps the TLS layer's interface declarations
        warm (L{tls.TLSDeclarations}); a component passes its own, shared by
        its connections.
    @ivar metrics: where answers that match no request are counted
        (L{Metrics.iqAnswersMismatched}); nothing is counted without one.
    @ivar offers: the SASL offers servers made (L{OfferMemory}), so that
        the C{<auth/>} for a server's usual offer is made while waiting for
        it; a component passes its own, shared by its connections.
    """

    serverDomain: str
    identity: str
    secret: str | None = attrs.field(default=None, repr=False)
    clientCertificate: PrivateCertificate | None = attrs.field(default=None, repr=False)
    trust: tls.Trust | None = None
    tlsCreator: IOpenSSLClientConnectionCreator | None = None
    requireTLS: bool = True
    mechanisms: Sequence[str] | None = None
    hostname: str | None = None
    features: Sequence[IInitiatingFeature] = attrs.field(default=(), converter=_featureTuple)
    negotiationTimeout: float = 30.0
    maxStanzaSize: int = DEFAULT_MAX_STANZA_SIZE
    closeTimeout: float = DEFAULT_CLOSE_TIMEOUT
    directTLS: bool = False
    tlsDeclarations: tls.TLSDeclarations = attrs.field(
        factory=tls.TLSDeclarations, eq=False, repr=False
    )
    offers: OfferMemory = attrs.field(factory=OfferMemory, eq=False, repr=False)
    metrics: Metrics | None = attrs.field(default=None, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.secret is None and self.clientCertificate is None:
            raise ValueError(
                "a component needs a secret or a client certificate to authenticate"
            )

    def tlsOptions(self) -> IOpenSSLClientConnectionCreator:
        """
        The TLS connection creator that checks the server certificate for
        L{serverDomain}.
        """
        if self.tlsCreator is not None:
            return self.tlsCreator
        trust = self.trust if self.trust is not None else tls.trustSystem()
        return tls.clientTLSOptions(self.serverDomain, trust, self.clientCertificate)


@implementer(IInitiatingSession)
class InitiatingAuthenticator(InitiatingAdapter[InitiatingMachine]):
    """
    Negotiates one outgoing component stream: the adapter of an
    L{InitiatingMachine}.

    @ivar negotiated: a L{Deferred} that fires with a L{NegotiationResult}
        once no required feature is left, or fails with the reason
        negotiation stopped (L{NegotiationError}, L{SASLFailure},
        L{StreamError}, or the connection loss, e.g. a certificate that
        did not verify).
    @ivar requests: the L{RequestTracker<xmppcomp.iqtracker.RequestTracker>}
        of the requests L{request} sent, waiting for their answers.
    """

    policy: InitiatingPolicy

    def __init__(self, policy: InitiatingPolicy, reactor: IReactorTime) -> None:
        self.requests = RequestTracker(
            policy.serverDomain, reactor, requester="negotiation", metrics=policy.metrics
        )
        super().__init__(policy, reactor)

    def makeMachine(self) -> InitiatingMachine:
        return InitiatingMachine(self, self.policy)

    def streamStarted(self, rootElement: domish.Element) -> None:
        self.xmlstream.sid = rootElement.getAttribute("id")
        super().streamStarted(rootElement)

    def interceptElement(self, element: domish.Element) -> bool:
        """
        Handle the negotiation elements the server sends, and the answers
        to L{request}s; anything else is dispatched as usual.
        """
        if self.machine.element(element):
            return True
        if element.name == "iq" and len(self.requests):
            # Answers to our requests (matched by id and sender); anything
            # else, a spoofed answer included, is dispatched as usual.
            return self.requests.receive(element)
        return False

    def request(self, iq: domish.Element, xml: str | None = None) -> defer.Deferred[domish.Element]:
        """
        Send an IQ request while negotiating, for a feature negotiated
        after SASL (such as the hostname bind), and get its answer.

        The answer is matched before the stream dispatches it, by its
        C{id} and its sender (L{xmppcomp.iqtracker.defaultRule}: a request
        with no C{to} goes to the server, whose answer has no C{from} or
        the server's domain), with no per-request timer: the negotiation
        timeout bounds the wait.

        @param iq: an C{<iq type='get'/>} or C{type='set'}; it is given an
            unguessable C{id} (L{xmppcomp.iqtracker.newRequestId}) if it
            has none.
        @param xml: C{iq} serialised as this stream sends it, made ahead
            (then C{iq} must have its C{id} already); C{None}: serialise
            it now.
        @return: a L{Deferred} firing with the C{result}, failing with the
            L{twisted.words.protocols.jabber.error.StanzaError} of an
            C{error}, or with why negotiation stopped if it stops first.
        """
        if self.machine.state in ("failed", "complete"):
            return defer.fail(NegotiationError("not negotiating: no request can be sent"))
        if not iq.getAttribute("id"):
            if xml is not None:
                raise ValueError("a request serialised ahead needs its id")
            iq["id"] = newRequestId()
        d: defer.Deferred[domish.Element] = defer.Deferred()
        try:
            self.requests.expect(iq, d.callback, d.errback)
        except ValueError as e:
            return defer.fail(e)
        self.xmlstream.send(iq if xml is None else xml)
        return d

    # InitiatingIO, besides NegotiationAdapter's.

    def tlsOptions(self) -> IOpenSSLClientConnectionCreator:
        return self.policy.tlsOptions()

    def tlsDeclarations(self) -> tls.TLSDeclarations:
        return self.policy.tlsDeclarations

    def channelBinding(self) -> ChannelBindingData | None:
        return tls.channelBindingFor(self.xmlstream.transport, isServer=False)

    def tlsVersion(self) -> str | None:
        return tls.tlsVersionOf(self.xmlstream.transport)

    def streamId(self) -> str | None:
        return self.xmlstream.sid

    def disconnect(self) -> None:
        transport = self.xmlstream.transport
        assert transport is not None
        transport.loseConnection()

    def callSoon(self, f: Callable[[*_Ts], object], *args: *_Ts) -> None:
        self.reactor.callLater(0, f, *args)

    def prepareFeatures(self) -> None:
        if self.machine.state != "restarting":
            return
        for feature in self.policy.features:
            try:
                feature.prepare(self)
            except Exception:
                log.failure("preparing {feature!r} ahead failed", feature=feature)

    def negotiateFeature(self, feature: IInitiatingFeature, element: domish.Element) -> None:
        d = defer.maybeDeferred(feature.negotiate, self, element)
        d.addCallbacks(lambda _: self.machine.featureDone(feature.key), self.machine.featureFailed)

    def sendHeader(self, header: OurHeader) -> None:
        super().sendHeader(header)
        # Out now, not on the next reactor turn: the server answers it.
        self.xmlstream.flush()

    def succeeded(self, result: object) -> None:
        if len(self.requests):
            self.requests.failAll(
                Failure(NegotiationError("negotiation completed before this request was answered"))
            )
        super().succeeded(result)

    def failed(self, reason: Exception | Failure) -> None:
        failure = reason if isinstance(reason, Failure) else Failure(reason)
        super().failed(failure)
        self.requests.failAll(failure)


class InitiatingFactory(NegotiatingFactory):
    """
    Builds the negotiating stream of one outgoing XEP-0225 connection, for
    an L{InitiatingPolicy}; use with an endpoint
    (C{endpoint.connect(factory)}).
    """

    authenticatorType = InitiatingAuthenticator


def negotiate(endpoint: IStreamClientEndpoint, policy: InitiatingPolicy, reactor: IReactorTime | None = None) -> "defer.Deferred[tuple[NegotiatingXmlStream, NegotiationResult]]":
    """
    Connect to C{endpoint} and negotiate a stream.

    @param endpoint: an L{twisted.internet.interfaces.IStreamClientEndpoint}.
    @return: a L{Deferred} firing with C{(xmlstream, result)} once
        negotiation is complete, or failing with why it did not.
    """
    return connectAndNegotiate(endpoint, InitiatingFactory(policy, reactor))
