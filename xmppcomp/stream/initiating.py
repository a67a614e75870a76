# -*- test-case-name: tests.test_stream_initiating -*-
"""
The initiating side of a component connection (XEP-0225 section 3): opens
a C{jabber:client} stream to the server, negotiates STARTTLS (checking the
server certificate), authenticates with SASL as a domain, then negotiates
the features registered for after SASL (hostname bind) until no required
feature is left (XEP-0192).
"""

from __future__ import annotations

from typing import Iterable, Sequence, cast

import attrs
from twisted.internet import defer
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IReactorTime,
    ITLSTransport,
)
from twisted.internet.ssl import PrivateCertificate
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import jid
from twisted.words.protocols.jabber.error import StreamError
from twisted.words.protocols.jabber.xmlstream import (
    INIT_FAILED_EVENT,
    STREAM_AUTHD_EVENT,
    ConnectAuthenticator,
)
from twisted.words.xish import domish
from twisted.words.xish.xmlstream import STREAM_END_EVENT, STREAM_ERROR_EVENT

from xmppcomp.errors import NegotiationError, SASLFailure, TLSRequiredError
from xmppcomp.interfaces import IInitiatingFeature, IInitiatingMechanism
from xmppcomp.iqtracker import RequestTracker, newRequestId
from xmppcomp.logs import Logger
from xmppcomp.ns import NS_CLIENT, NS_SASL, NS_SASL_CB, NS_STREAMS, NS_TLS
from xmppcomp.stream import tls
from xmppcomp.stream.features import (
    MECHANISMS,
    STARTTLS,
    OfferedFeature,
    nextFeature,
    parseFeatures,
)
from xmppcomp.stream.negotiating import NegotiatingFactory, NegotiatingXmlStream
from xmppcomp.stream.sasl import SASLInitiator, chooseMechanism
from xmppcomp.stream.xmlstream import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_STANZA_SIZE,
    parseStreamHeader,
)

log = Logger()


def _featureTuple(
    features: Iterable[IInitiatingFeature],
) -> tuple[IInitiatingFeature, ...]:
    """
    The converter of L{InitiatingPolicy.features} (a typed C{tuple}, which
    mypy's attrs plugin cannot infer from the generic builtin).
    """
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


@attrs.frozen
class NegotiationResult:
    """
    What a completed negotiation established.

    @ivar identity: the authenticated domain.
    @ivar mechanism: the SASL mechanism used.
    @ivar tlsVersion: the TLS protocol version, or C{None} without TLS.
    @ivar streamId: the id of the final stream.
    @ivar elapsed: seconds from connection to completion.
    """

    identity: str
    mechanism: str
    tlsVersion: str | None
    streamId: str | None
    elapsed: float


#: The last SASL offer (mechanisms, channel-binding types) each server
#: made, by L{_offerKey}: a component reconnects to the same server, which
#: makes the same offer, so its C{<auth/>} can be made while it waits.
_lastOffers: dict[tuple[object, ...], tuple[tuple[str, ...], tuple[str, ...] | None]] = {}
_LAST_OFFERS_KEPT = 64


def _offerKey(policy: "InitiatingPolicy") -> tuple[object, ...]:
    return (
        policy.serverDomain,
        policy.identity,
        None if policy.mechanisms is None else tuple(policy.mechanisms),
        policy.clientCertificate is not None,
    )


class InitiatingAuthenticator(ConnectAuthenticator):
    """
    Negotiates one outgoing component stream.

    @ivar negotiated: a L{Deferred} that fires with a L{NegotiationResult}
        once no required feature is left, or fails with the reason
        negotiation stopped (L{NegotiationError}, L{SASLFailure},
        L{StreamError}, or the connection loss, e.g. a certificate that
        did not verify).
    @ivar requests: the L{RequestTracker<xmppcomp.iqtracker.RequestTracker>}
        of the requests L{request} sent, waiting for their answers.
    @ivar _stage: C{"header"}, C{"tls"}, C{"sasl"}, C{"features"} or
        C{"complete"}.
    """

    namespace = NS_CLIENT

    #: The stream, from L{associateWithStream} on (Twisted's base class
    #: starts it as C{None}; nothing here runs before it is associated).
    xmlstream: NegotiatingXmlStream

    def __init__(self, policy: InitiatingPolicy, reactor: IReactorTime) -> None:
        super().__init__(policy.serverDomain)
        self.policy = policy
        self._reactor = reactor
        self.negotiated: defer.Deferred[NegotiationResult] = defer.Deferred()
        self.tlsActive = policy.directTLS
        self.tlsVersion: str | None = None
        self._stage = "header"
        self._sasl: SASLInitiator | None = None
        self._done: set[tuple[str, str]] = set()
        self._timeout: object | None = None
        self._started = 0.0
        self.requests = RequestTracker(policy.serverDomain, reactor, requester="negotiation")
        self._speculation: tuple[tuple[tuple[str, ...], tuple[str, ...] | None], SASLInitiator, domish.Element] | None = None

    def associateWithStream(self, xs: NegotiatingXmlStream) -> None:
        super().associateWithStream(xs)
        xs.addObserver(STREAM_END_EVENT, self._onStreamEnd)
        xs.addObserver(STREAM_ERROR_EVENT, self._onStreamError)

    def connectionMade(self) -> None:
        xs = self.xmlstream
        xs.namespace = NS_CLIENT
        xs.otherEntity = jid.internJID(self.policy.serverDomain)
        xs.thisEntity = jid.internJID(self.policy.hostname or self.policy.identity)
        self._started = self._reactor.seconds()
        self._timeout = self._reactor.callLater(
            self.policy.negotiationTimeout, self._negotiationTimedOut
        )
        xs.sendHeader()
        # Out now, not on the next reactor turn: the server answers it.
        xs.flush()

    def streamStarted(self, rootElement: domish.Element) -> None:
        try:
            parseStreamHeader(rootElement, NS_CLIENT)
        except StreamError as e:
            self._fail(
                NegotiationError(
                    "the server sent a bad stream header: %s" % (e.condition,)
                )
            )
            self.xmlstream.sendStreamError(e)
            return
        self.xmlstream.sid = rootElement.getAttribute("id")

    def interceptElement(self, element: domish.Element) -> bool:
        """
        Handle the negotiation elements the server sends; anything else is
        dispatched as usual (features negotiated after SASL observe their
        own answers).
        """
        if self._stage == "failed" or self.xmlstream.streamEnded is not None:
            # Negotiation is over (we refused the server or the stream
            # ended): nothing more is negotiated.
            return True
        key = (element.uri, element.name)
        if key == (NS_STREAMS, "features"):
            self._onFeatures(element)
            return True
        if self._stage == "tls" and element.uri == NS_TLS:
            if element.name == "proceed":
                self._startTLS()
            else:
                self._fail(NegotiationError("the server refused STARTTLS"))
                assert self.xmlstream.transport is not None
                self.xmlstream.transport.loseConnection()
            return True
        if self._stage == "sasl" and element.uri == NS_SASL:
            self._onSASL(element)
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
        if self._stage == "failed" or self.negotiated.called:
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

    def _failRequests(self, reason: Failure) -> None:
        self.requests.failAll(reason)

    def _onFeatures(self, element: domish.Element) -> None:
        offered = parseFeatures(element)
        keys = {feature.key for feature in offered}
        if not self.tlsActive:
            if STARTTLS in keys:
                self._stage = "tls"
                self.xmlstream.send(domish.Element(STARTTLS))
                return
            if self.policy.requireTLS:
                self._failAndClose(
                    TLSRequiredError(
                        "%s did not offer STARTTLS, and this component requires "
                        "TLS" % (self.policy.serverDomain,)
                    )
                )
                return
            log.warn(
                "INSECURE: {server} offers no TLS; continuing in plaintext because "
                "requireTLS is off (never do this outside tests)",
                server=self.policy.serverDomain,
            )
        if self._stage in ("header", "tls"):
            self._startSASL(element, offered)
            return
        self._stage = "features"
        self._walk(offered)

    def _startTLS(self) -> None:
        xs = self.xmlstream
        # STARTTLS is only offered over TCP, whose transports provide it.
        cast(ITLSTransport, xs.transport).startTLS(self.policy.tlsOptions())
        # The ClientHello leaves before the rest of the setup.
        xs.flush()
        self.policy.tlsDeclarations.keep(xs.transport)
        xs.reset()
        self.tlsActive = True
        xs.sendHeader()

    def tlsHandshakeCompleted(self) -> None:
        """
        Our stream's TLS handshake is complete (our Finished and the new
        stream header are about to leave): if this server's last SASL offer
        is known, make the C{<auth/>} for it while the server answers.
        """
        offer = _lastOffers.get(_offerKey(self.policy))
        if offer is not None and self._stage == "tls":
            self._reactor.callLater(0, self._speculateSASL, offer)

    def _speculateSASL(self, offer: tuple[tuple[str, ...], tuple[str, ...] | None]) -> None:
        """
        Make the SASL initiator and C{<auth/>} the offer C{offer} would
        lead to, once our Finished and header are out. L{_startSASL} uses
        them only if the server makes exactly that offer again, so the
        choice is the one it would make itself.
        """
        if self._stage != "tls" or not self.tlsActive or self.negotiated.called:
            return
        xs = self.xmlstream
        xs.flush()
        try:
            mechanism = self._chooseMechanism(list(offer[0]), None if offer[1] is None else list(offer[1]))
        except NegotiationError:
            return
        sasl = SASLInitiator(mechanism)
        self._speculation = (offer, sasl, sasl.start())

    def _chooseMechanism(self, mechanisms: list[str], serverCbTypes: list[str] | None) -> IInitiatingMechanism:
        return chooseMechanism(
            mechanisms,
            identity=self.policy.identity,
            secret=self.policy.secret,
            channelBinding=tls.channelBindingFor(self.xmlstream.transport, isServer=False),
            serverCbTypes=serverCbTypes,
            tlsActive=self.tlsActive,
            haveClientCertificate=self.policy.clientCertificate is not None,
            allowed=list(self.policy.mechanisms)
            if self.policy.mechanisms is not None
            else None,
        )

    def _startSASL(self, features: domish.Element, offered: list[OfferedFeature]) -> None:
        byKey = {feature.key: feature.element for feature in offered}
        if MECHANISMS not in byKey:
            self._failAndClose(
                NegotiationError(
                    "%s offered no SASL mechanisms" % (self.policy.serverDomain,)
                )
            )
            return
        mechanisms = [
            str(m).strip()
            for m in byKey[MECHANISMS].elements(NS_SASL, "mechanism")
        ]
        serverCbTypes = None
        cbFeature = byKey.get((NS_SASL_CB, "sasl-channel-binding"))
        if cbFeature is not None:
            serverCbTypes = [
                child.getAttribute("type", "")
                for child in cbFeature.elements(NS_SASL_CB, "channel-binding")
            ]
        offer = (tuple(mechanisms), None if serverCbTypes is None else tuple(serverCbTypes))
        key = _offerKey(self.policy)
        if _lastOffers.get(key) != offer:
            if len(_lastOffers) >= _LAST_OFFERS_KEPT:
                _lastOffers.clear()
            _lastOffers[key] = offer
        speculation, self._speculation = self._speculation, None
        if speculation is not None and speculation[0] == offer:
            # The same offer as last time: the choice made ahead (with this
            # connection's channel binding) is the one made now.
            sasl, auth = speculation[1], speculation[2]
        else:
            try:
                mechanism = self._chooseMechanism(mechanisms, serverCbTypes)
            except NegotiationError as e:
                self._failAndClose(e)
                return
            sasl = SASLInitiator(mechanism)
            auth = sasl.start()
        self.tlsVersion = tls.tlsVersionOf(self.xmlstream.transport)
        self._stage = "sasl"
        self._sasl = sasl
        self.xmlstream.send(auth)

    def _onSASL(self, element: domish.Element) -> None:
        assert self._sasl is not None
        try:
            reply = self._sasl.receive(element)
        except (SASLFailure, NegotiationError) as e:
            self._failAndClose(e)
            return
        if reply is not None:
            self.xmlstream.send(reply)
            return
        if self._sasl.done:
            xs = self.xmlstream
            self._stage = "features-pending"
            xs.reset()
            xs.sendHeader()
            # While the server restarts its stream: the log line, and the
            # requests of features that can make them ahead (the hostname
            # bind).
            xs.afterRead(
                log.debug,
                "authenticated to {server} as {identity}",
                server=self.policy.serverDomain,
                identity=self.policy.identity,
            )
            xs.afterRead(self._prepareFeatures)

    def _prepareFeatures(self) -> None:
        if self._stage != "features-pending":
            return
        for feature in self.policy.features:
            prepare = getattr(feature, "prepare", None)
            if prepare is not None:
                try:
                    prepare(self.xmlstream)
                except Exception:
                    log.failure("preparing {feature!r} ahead failed", feature=feature)

    def _walk(self, offered: list[OfferedFeature]) -> None:
        known = {feature.key: feature for feature in self.policy.features}
        try:
            feature = nextFeature(offered, known, self._done)
        except NegotiationError as e:
            self._failAndClose(e)
            return
        if feature is None:
            self._complete()
            return
        d = defer.maybeDeferred(
            known[feature.key].negotiate, self.xmlstream, feature.element
        )

        def negotiated(_: object) -> None:
            self._done.add(feature.key)
            self._walk(offered)

        d.addCallbacks(negotiated, self._failAndCloseFailure)

    def _complete(self) -> None:
        if self._stage == "complete" or self.negotiated.called:
            return
        self._stage = "complete"
        self._cancelTimeout()
        if len(self.requests):
            self._failRequests(
                Failure(NegotiationError("negotiation completed before this request was answered"))
            )
        xs = self.xmlstream
        xs.negotiated = True
        assert self._sasl is not None
        result = NegotiationResult(
            identity=self.policy.identity,
            mechanism=self._sasl.mechanism.name,
            tlsVersion=self.tlsVersion,
            streamId=xs.sid,
            elapsed=self._reactor.seconds() - self._started,
        )
        xs.dispatch(xs, STREAM_AUTHD_EVENT)
        self.negotiated.callback(result)
        # Logged once the stream is handed over.
        log.info(
            "stream to {server} negotiated as {identity} ({mechanism}, {tls}) "
            "in {ms:.1f} ms",
            server=self.policy.serverDomain,
            identity=result.identity,
            mechanism=result.mechanism,
            tls=result.tlsVersion or "no TLS",
            ms=result.elapsed * 1000,
        )

    def _fail(self, reason: Exception | Failure) -> None:
        self._cancelTimeout()
        if self.negotiated.called:
            return
        failure = reason if isinstance(reason, Failure) else Failure(reason)
        log.info(
            "stream negotiation with {server} failed: {reason}",
            server=self.policy.serverDomain,
            reason=failure.getErrorMessage(),
        )
        self._stage = "failed"
        self.xmlstream.dispatch(failure, INIT_FAILED_EVENT)
        self.negotiated.errback(failure)
        self._failRequests(failure)

    def _failAndClose(self, reason: Exception) -> None:
        self._fail(reason)
        self.xmlstream.closeStream()

    def _failAndCloseFailure(self, failure: Failure) -> None:
        self._fail(failure)
        self.xmlstream.closeStream()

    def _negotiationTimedOut(self) -> None:
        self._timeout = None
        self._fail(
            NegotiationError(
                "stream negotiation with %s not complete after %g seconds"
                % (self.policy.serverDomain, self.policy.negotiationTimeout)
            )
        )
        self.xmlstream.closeStream()

    def _cancelTimeout(self) -> None:
        if self._timeout is not None:
            self._timeout.cancel()  # type: ignore[attr-defined]
            self._timeout = None

    def _onStreamError(self, failure: Failure) -> None:
        self._fail(failure)

    def _onStreamEnd(self, reason: Failure) -> None:
        self._fail(reason)


class InitiatingFactory(NegotiatingFactory):
    """
    Builds the negotiating stream of one outgoing XEP-0225 connection, for
    an L{InitiatingPolicy}; use with an endpoint
    (C{endpoint.connect(factory)}).
    """

    def makeAuthenticator(self) -> InitiatingAuthenticator:
        return InitiatingAuthenticator(self.policy, self.reactor)


def negotiate(endpoint: object, policy: InitiatingPolicy, reactor: IReactorTime | None = None) -> "defer.Deferred[tuple[NegotiatingXmlStream, NegotiationResult]]":
    """
    Connect to C{endpoint} and negotiate a stream.

    @param endpoint: an L{twisted.internet.interfaces.IStreamClientEndpoint}.
    @return: a L{Deferred} firing with C{(xmlstream, result)} once
        negotiation is complete, or failing with why it did not.
    """
    factory = InitiatingFactory(policy, reactor)
    d = endpoint.connect(factory)  # type: ignore[attr-defined]

    def connected(xs: NegotiatingXmlStream) -> "defer.Deferred[tuple[NegotiatingXmlStream, NegotiationResult]]":
        return xs.authenticator.negotiated.addCallback(lambda result: (xs, result))

    return d.addCallback(connected)
