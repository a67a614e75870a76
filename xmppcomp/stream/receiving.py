# -*- test-case-name: tests.test_stream_receiving -*-
"""
The receiving side of a component connection (XEP-0225 section 3): checks
the stream header, offers STARTTLS, then SASL, then whatever features are
registered (hostname bind), and refuses stanzas until negotiation is
complete.

The decisions live in the pure pieces (L{xmppcomp.stream.features},
L{xmppcomp.stream.sasl}, L{xmppcomp.stream.xmlstream.parseStreamHeader});
this module wires them to a L{NegotiatingXmlStream}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import cast

import attrs
from twisted.internet.interfaces import (
    IOpenSSLServerConnectionCreator,
    IReactorTime,
    ITLSTransport,
)
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import jid
from twisted.words.protocols.jabber.error import StreamError
from twisted.words.protocols.jabber.xmlstream import (
    STREAM_AUTHD_EVENT,
    ListenAuthenticator,
)
from twisted.words.xish import domish
from twisted.words.xish.xmlstream import STREAM_END_EVENT

from xmppcomp.errors import SASLFailure
from xmppcomp.interfaces import ICredentialStore, IReceivingFeature
from xmppcomp.jids import parseJID
from xmppcomp.logs import Logger
from xmppcomp.metrics import NEGOTIATION_FAILURES
from xmppcomp.ns import NS_CLIENT, NS_SASL, NS_STREAMS, NS_TLS
from xmppcomp.stream import tls
from xmppcomp.stream.features import STARTTLS, featuresElement, markRequired
from xmppcomp.stream.limits import AuthFailureLimiter, sourceKey
from xmppcomp.stream.negotiating import (
    NegotiatingFactory,
    NegotiatingXmlStream,
    callNow,
    isStanza,
    peerOf,
)
from xmppcomp.stream.sasl import SASLReceiver
from xmppcomp.stream.xmlstream import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_STANZA_DEPTH,
    DEFAULT_MAX_STANZA_SIZE,
    STREAM_PREFIXES,
    checkHost,
    newStreamId,
    parseStreamHeader,
)

log = Logger()


def _validateDomains(instance: object, attribute: object, value: frozenset[str]) -> None:
    if not value:
        raise ValueError("a receiving side needs at least one served domain")


def _domainSet(domains: Iterable[str]) -> frozenset[str]:
    """
    The converter of L{ReceivingPolicy.domains} (a typed C{frozenset},
    which mypy's attrs plugin cannot infer from the generic builtin).
    """
    return frozenset(domains)


def _featureTuple(
    features: Iterable[IReceivingFeature],
) -> tuple[IReceivingFeature, ...]:
    """
    The converter of L{ReceivingPolicy.features} (a typed C{tuple}, which
    mypy's attrs plugin cannot infer from the generic builtin).
    """
    return tuple(features)


@attrs.frozen
class ReceivingPolicy:
    """
    How the receiving side negotiates streams.

    @ivar domains: the domains this side answers for (the C{to} of a
        stream header must be one of them, else C{host-unknown}).
    @ivar credentials: where SCRAM keys are looked up.
    @ivar tlsOptions: the TLS context factory for STARTTLS (see
        L{xmppcomp.stream.tls.serverTLSOptions}); C{None} offers no TLS,
        which is refused unless C{allowPlaintext} is set.
    @ivar allowPlaintext: accept streams without TLS. For tests only; it is
        logged loudly.
    @ivar allowPlain: offer SASL PLAIN (only ever inside TLS).
    @ivar requireChannelBinding: accept only SCRAM-*-PLUS and EXTERNAL.
    @ivar maxAuthAttempts: failed SASL attempts before the stream is closed
        with C{policy-violation} (RFC 6120 section 6.4.5).
    @ivar negotiationTimeout: seconds from connection to the end of
        negotiation before the stream is closed with C{connection-timeout}.
    @ivar maxStanzaSize: bytes one stanza may take (C{policy-violation}
        beyond).
    @ivar closeTimeout: seconds to wait for the peer's closing tag.
    @ivar maxStanzaDepth: levels elements may nest below the stream root
        (C{policy-violation} beyond).
    @ivar features: features offered after SASL, in order.
    @ivar authFailures: counts failed SASL attempts per source address and
        refuses sources that failed too often (C{policy-violation}); share
        one between listeners to pool the counts, or pass C{None} to turn
        the limit off. By default each policy has its own
        L{AuthFailureLimiter} with its defaults.
    @ivar tlsDeclarations: keeps the TLS layer's interface declarations
        warm for this policy's connections (L{tls.TLSDeclarations}).
    """

    domains: frozenset[str] = attrs.field(converter=_domainSet, validator=_validateDomains)
    credentials: ICredentialStore
    tlsOptions: IOpenSSLServerConnectionCreator | None = None
    allowPlaintext: bool = False
    allowPlain: bool = True
    requireChannelBinding: bool = False
    maxAuthAttempts: int = 3
    negotiationTimeout: float = 30.0
    maxStanzaSize: int = DEFAULT_MAX_STANZA_SIZE
    closeTimeout: float = DEFAULT_CLOSE_TIMEOUT
    maxStanzaDepth: int = DEFAULT_MAX_STANZA_DEPTH
    features: Sequence[IReceivingFeature] = attrs.field(default=(), converter=_featureTuple)
    authFailures: AuthFailureLimiter | None = attrs.field(factory=AuthFailureLimiter)
    tlsDeclarations: tls.TLSDeclarations = attrs.field(
        factory=tls.TLSDeclarations, eq=False, repr=False
    )

    def __attrs_post_init__(self) -> None:
        if self.tlsOptions is None and not self.allowPlaintext:
            raise ValueError(
                "the receiving side needs TLS options (a certificate and key); "
                "plaintext streams need allowPlaintext=True, for tests only"
            )
        if self.maxAuthAttempts < 1:
            raise ValueError("maxAuthAttempts must be at least 1")


class ReceivingAuthenticator(ListenAuthenticator):
    """
    Negotiates one incoming component stream.

    @ivar identity: the authenticated domain once SASL succeeded, else
        C{None}.
    @ivar tlsActive: whether STARTTLS completed.
    @ivar mechanism: the SASL mechanism that succeeded.
    @ivar _stage: C{"tls"}, C{"sasl"}, C{"features"}, C{"completing"}
        (nothing is required any more: complete once the read being
        handled is done), C{"complete"}, or C{"refused"} once a stream
        error was sent: from then on whatever
        the peer sends while the stream closes is dropped, so a refused
        stream can never start TLS, authenticate or bind.
    """

    namespace = NS_CLIENT

    #: The stream, from L{associateWithStream} on (Twisted's base class
    #: starts it as C{None}; nothing here runs before it is associated).
    xmlstream: NegotiatingXmlStream

    def __init__(self, policy: ReceivingPolicy, reactor: IReactorTime) -> None:
        super().__init__()
        self.policy = policy
        self._reactor = reactor
        self.identity: str | None = None
        self.mechanism: str | None = None
        self.tlsActive = False
        self._stage = "tls" if policy.tlsOptions is not None else "sasl"
        self._sasl: SASLReceiver | None = None
        self._timeout: object | None = None
        self._started = 0.0
        self._source: str | None = None
        #: The features made ahead for the header that follows SASL.
        self._nextFeaturesXml: str | None = None

    def associateWithStream(self, xs: NegotiatingXmlStream) -> None:
        super().associateWithStream(xs)
        xs.addObserver(STREAM_END_EVENT, self._onStreamEnd)

    def connectionMade(self) -> None:
        if tls.tlsConnectionOf(self.xmlstream.transport) is not None:
            # A TLS listener (direct TLS): no STARTTLS on this connection.
            self.tlsActive = True
            self._stage = "sasl"
        self._started = self._reactor.seconds()
        assert self.xmlstream.transport is not None
        self._source = sourceKey(self.xmlstream.transport.getPeer())
        if self._sourceBlocked():
            return
        self._timeout = self._reactor.callLater(
            self.policy.negotiationTimeout, self._negotiationTimedOut
        )
        if self.policy.tlsOptions is None:
            log.warn(
                "INSECURE: accepting a component stream without TLS from {peer} "
                "(allowPlaintext is set; never do this outside tests)",
                peer=peerOf(self.xmlstream),
            )

    def streamStarted(self, rootElement: domish.Element) -> None:
        if self._stage == "refused":
            return
        xs = self.xmlstream
        xs.namespace = NS_CLIENT
        xs.version = (1, 0)
        xs.sid = newStreamId()
        xs.prefixes = {NS_STREAMS: "stream"}
        try:
            header = parseStreamHeader(rootElement, NS_CLIENT)
            checkHost(header, self.policy.domains)
        except StreamError as e:
            if not xs.thisEntity:
                xs.thisEntity = jid.JID(sorted(self.policy.domains)[0])
            log.info(
                "refusing stream from {peer}: {condition}",
                peer=peerOf(xs),
                condition=e.condition,
            )
            self._stage = "refused"
            self._cancelTimeout()
            countRefusal(e.condition)
            xs.sendStreamError(e)
            return
        # parseJID, not internJID: these come from the peer, and internJID
        # would cache every name sent to us; parseJID's cache is bounded.
        assert header.to is not None  # checkHost refused the stream otherwise
        xs.thisEntity = parseJID(header.to)
        if self.identity is not None:
            xs.otherEntity = parseJID(self.identity)
        elif header.from_:
            xs.otherEntity = parseJID(header.from_)
        xs.sendHeader()
        features, self._nextFeaturesXml = self._nextFeaturesXml, None
        xs.send(features if features is not None else self._featuresXml())
        if self._stage == "features":
            self.checkComplete()

    def _featuresXml(self) -> str:
        """
        Our C{<stream:features/>} for this stage, serialised as the stream
        would serialise it. The STARTTLS and SASL stages depend only on a
        few values (the mechanisms and channel-binding types offered), so
        their bytes are made once per distinct value and remembered.
        """
        xs = self.xmlstream
        cacheable = xs.prefixes == STREAM_PREFIXES
        key: tuple[object, ...] | None = None
        if self._stage == "sasl":
            sasl = self._sasl = self._newSASLReceiver()
            if cacheable:
                key = ("sasl", xs.namespace) + sasl.featuresKey()
            build: Callable[[], list[domish.Element]] = sasl.featureElements
        else:
            if cacheable and self._stage == "tls":
                key = ("tls", xs.namespace)
            build = self._features
        if key is not None:
            cached = _featuresXmlCache.get(key)
            if cached is not None:
                return cached
        elements = build()
        xml = xs.serialize(featuresElement(elements))
        if key is not None:
            if len(_featuresXmlCache) >= _FEATURES_XML_KEPT:
                _featuresXmlCache.clear()
            _featuresXmlCache[key] = xml
        return xml

    def _features(self) -> list[domish.Element]:
        """
        The feature elements of the STARTTLS stage or of the stage after
        SASL (the SASL stage's come from its L{SASLReceiver}).
        """
        if self._stage == "tls":
            return [markRequired(domish.Element(STARTTLS))]
        elements = []
        for feature in self.policy.features:
            element = feature.featureElement(self)
            if element is not None:
                elements.append(element)
        return elements

    def _newSASLReceiver(self) -> SASLReceiver:
        transport = self.xmlstream.transport
        return SASLReceiver(
            self.policy.credentials,
            tlsActive=self.tlsActive,
            channelBinding=tls.channelBindingFor(transport, isServer=True),
            peerIdentities=tls.peerCertificateIdentities(transport),
            allowPlain=self.policy.allowPlain,
            requireChannelBinding=self.policy.requireChannelBinding,
            maxAttempts=self.policy.maxAuthAttempts,
        )

    def interceptElement(self, element: domish.Element) -> bool:
        """
        Handle a first-level element received before negotiation completed.

        @return: C{True} if negotiation consumed it.
        """
        if self._stage == "complete":
            return False
        if self._stage == "refused" or self.xmlstream.streamEnded is not None:
            # Refused, or the peer sent a stream error: the stream is
            # closing, nothing more is negotiated.
            return True
        if self._stage == "tls":
            if (element.uri, element.name) == STARTTLS:
                self._startTLS()
                return True
            if element.uri == NS_SASL and element.name == "auth":
                self.xmlstream.send(SASLFailure("encryption-required").toElement())
                return True
        elif self._stage == "sasl":
            if element.uri == NS_SASL:
                self._onSASL(element)
                return True
            if element.uri == NS_TLS:
                return self._refuse(
                    "policy-violation", "TLS cannot be negotiated at this point"
                )
        elif self._stage == "completing":
            # Negotiation completes once this read is handled; more bind
            # requests are still answered here, anything else completes it
            # now and goes where a negotiated stream's elements go.
            for feature in self.policy.features:
                if feature.handleElement(self, element):
                    return True
            self._complete()
            return False
        else:
            for feature in self.policy.features:
                if feature.handleElement(self, element):
                    self.checkComplete()
                    return True
        if isStanza(element):
            return self._refuse(
                "not-authorized", "stream negotiation is not complete"
            )
        return self._refuse(
            "unsupported-stanza-type",
            "unexpected {%s}%s during stream negotiation" % (element.uri, element.name),
        )

    def _refuse(self, condition: str, text: str) -> bool:
        log.info(
            "closing stream from {peer}: {condition} ({text})",
            peer=peerOf(self.xmlstream),
            condition=condition,
            text=text,
        )
        self._stage = "refused"
        self._cancelTimeout()
        countRefusal(condition)
        self.xmlstream.sendStreamError(StreamError(condition, text=text))
        return True

    def _startTLS(self) -> None:
        xs = self.xmlstream
        xs.send(domish.Element((NS_TLS, "proceed")))
        # The peer starts its handshake as soon as <proceed/> arrives; ours
        # takes longer to set up (a tenth of a millisecond), so it is set up
        # meanwhile rather than before <proceed/> leaves. The peer's
        # ClientHello is read on a later reactor turn, after startTLS.
        xs.flush()
        # Only offered (stage "tls") with tlsOptions, over TCP.
        assert self.policy.tlsOptions is not None
        cast(ITLSTransport, xs.transport).startTLS(self.policy.tlsOptions)
        self.policy.tlsDeclarations.keep(xs.transport)
        xs.reset()
        self.tlsActive = True
        self._stage = "sasl"

    def _sourceBlocked(self) -> bool:
        """
        Refuse the stream with C{policy-violation} if its source address
        failed to authenticate too often.

        @return: whether it was refused.
        """
        limiter = self.policy.authFailures
        text = None
        if limiter is not None:
            text = limiter.refusal(self._source, self._reactor.seconds(), "authentications")
        if text is None:
            return False
        xs = self.xmlstream
        if not xs.thisEntity:
            xs.thisEntity = jid.JID(sorted(self.policy.domains)[0])
        xs.namespace = NS_CLIENT
        xs.version = (1, 0)
        xs.prefixes = {NS_STREAMS: "stream"}
        self._refuse("policy-violation", text)
        return True

    def _onSASL(self, element: domish.Element) -> None:
        assert self._sasl is not None
        if element.name == "auth" and self._sourceBlocked():
            return
        step = self._sasl.receive(element)
        xs = self.xmlstream
        xs.send(step.reply)
        if step.reply.name == "failure":
            condition = step.reply.firstChildElement()
            countRefusal(condition.name if condition is not None else "failure")
        if self.policy.authFailures is not None and _isCountedFailure(step.reply):
            self.policy.authFailures.failed(self._source, self._reactor.seconds())
        if step.identity is not None:
            self.identity = step.identity
            self.mechanism = self._sasl.mechanism
            xs.reset()
            self._stage = "features"
            # While the peer restarts its stream, make the features we
            # will answer its header with.
            self._later(self._authenticated)
        elif step.tooManyFailures:
            self._refuse("policy-violation", "too many failed authentication attempts")

    def _later(self, f: Callable[..., object], *args: object, **kwargs: object) -> None:
        """
        Call C{f} once the read being handled is done and its answers are
        out (L{NegotiatingXmlStream.afterRead}), or now on a stream
        without that.
        """
        afterRead = getattr(self.xmlstream, "afterRead", None) or callNow
        afterRead(f, *args, **kwargs)

    def _authenticated(self) -> None:
        xs = self.xmlstream
        log.debug(
            "{peer} authenticated as {identity} with {mechanism}",
            peer=peerOf(xs),
            identity=self.identity,
            mechanism=self.mechanism,
        )
        if self._stage == "features" and self._nextFeaturesXml is None:
            self._nextFeaturesXml = self._featuresXml()

    def checkComplete(self) -> None:
        """
        Finish negotiation if no registered feature is required any more.
        Features call this after they changed what they require.
        """
        if self._stage != "features":
            return
        if any(feature.isRequired(self) for feature in self.policy.features):
            return
        # Complete once the read being handled is done: a component sends
        # all its bind requests at once, and they are all answered (and
        # the answers flushed) before the session is set up. Anything else
        # in the same read completes it first (interceptElement).
        self._stage = "completing"
        self._later(self._complete)

    def _complete(self) -> None:
        if self._stage != "completing":
            return
        self._stage = "complete"
        self._cancelTimeout()
        xs = self.xmlstream
        xs.negotiated = True
        # Logged once the answers of this read are out (a component's later
        # bind requests arrive with the one that completed negotiation).
        self._later(
            log.info,
            "stream from {peer} negotiated for {identity} ({mechanism}) in {ms:.1f} ms",
            peer=peerOf(xs),
            identity=self.identity,
            mechanism=self.mechanism,
            ms=(self._reactor.seconds() - self._started) * 1000,
        )
        xs.dispatch(xs, STREAM_AUTHD_EVENT)

    def _negotiationTimedOut(self) -> None:
        self._timeout = None
        self._refuse(
            "connection-timeout",
            "stream negotiation not complete after %g seconds"
            % (self.policy.negotiationTimeout,),
        )

    def _cancelTimeout(self) -> None:
        if self._timeout is not None:
            self._timeout.cancel()  # type: ignore[attr-defined]
            self._timeout = None

    def _onStreamEnd(self, reason: object) -> None:
        self._cancelTimeout()



#: See L{ReceivingAuthenticator._featuresXml}.
_FEATURES_XML_KEPT = 64
_featuresXmlCache: dict[tuple[object, ...], str] = {}


def countRefusal(condition: str) -> None:
    """
    Count a stream (or SASL attempt) the receiving side refused, by its
    stream error or SASL failure condition, in
    L{xmppcomp.metrics.NEGOTIATION_FAILURES}.
    """
    NEGOTIATION_FAILURES.labels("receiving", condition).inc()


def _isCountedFailure(reply: domish.Element) -> bool:
    """
    Whether a SASL reply is a failure that tested a credential or broke
    the protocol (every C{<failure/>} but C{<aborted/>}).
    """
    if reply.name != "failure":
        return False
    return not any(child.name == "aborted" for child in reply.elements())


#: Dispatched once by a L{ListeningXmlStream} the moment its stream ends,
#: with why: the L{Failure} of the stream error either side sent, a C{str}
#: naming whose closing tag ended it, or the reason the connection was lost
#: first. The connection may stay open after it (the closing handshake,
#: a peer that does not close); L{STREAM_END_EVENT} comes when it is lost.
STREAM_CLOSED_EVENT = "//event/xmppcomp/stream/closed"


class ListeningXmlStream(NegotiatingXmlStream):
    """
    The stream of the receiving side's listeners (XEP-0225 and XEP-0114):
    a L{NegotiatingXmlStream} that says when the stream ends, not only when
    its connection does.

    A stream ends, whichever side ends it, the moment a stream error goes
    out or comes in, either side's closing tag goes out or comes in, or
    the connection is lost first. In the first two cases our closing tag
    goes out (in answer to the peer's, or after the error), and nothing may
    follow it (L{XmppXmlStream.send
    <xmppcomp.stream.xmlstream.XmppXmlStream.send>} drops what comes
    later), so
    L{sendFooter} is where the end is seen; the peer's closing tag is seen
    in L{onDocumentEnd} first, to say who closed. Observers of
    L{STREAM_CLOSED_EVENT} learn of it then: the router releases the
    stream's names at once, rather than when the connection is finally
    lost (after the peer's closing tag and TLS shutdown, or up to twice
    C{closeTimeout} later for a peer that keeps TCP open).

    @ivar closedBy: why the stream ended (what L{STREAM_CLOSED_EVENT}
        carried), or L{None} while it is open.
    """

    closedBy: Failure | str | None = None

    def onDocumentEnd(self) -> None:
        """
        The peer's closing tag arrived: the stream has ended.
        """
        self._closed("closing tag from the peer")
        super().onDocumentEnd()

    def sendFooter(self) -> None:
        """
        Our closing tag goes out: the stream has ended.
        """
        super().sendFooter()
        self._closed("closing tag sent")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        The connection is lost; if the stream had not ended, it ends now.
        """
        self._closed(reason)
        super().connectionLost(reason)

    def _closed(self, why: Failure | str) -> None:
        """
        Dispatch L{STREAM_CLOSED_EVENT} the first time; a stream error
        (received or sent) is the reason whenever there was one.
        """
        if self.closedBy is not None:
            return
        self.closedBy = self.streamEnded or why
        self.dispatch(self.closedBy, STREAM_CLOSED_EVENT)


class ListeningFactory(NegotiatingFactory):
    """
    Builds a L{ListeningXmlStream} per accepted connection, with the
    authenticator L{makeAuthenticator} returns and the limits of C{policy}
    (which also has C{maxStanzaDepth}).
    """

    def buildProtocol(self, addr: object) -> ListeningXmlStream:
        policy = self.policy
        xs = ListeningXmlStream(
            self.makeAuthenticator(),
            reactor=self.reactor,
            maxStanzaSize=policy.maxStanzaSize,
            closeTimeout=policy.closeTimeout,
            maxDepth=policy.maxStanzaDepth,
        )
        xs.factory = self
        for event, observer in self.bootstraps:
            xs.addObserver(event, observer)
        return xs


class ReceivingFactory(ListeningFactory):
    """
    Builds a negotiating XEP-0225 stream per accepted connection, for a
    L{ReceivingPolicy}.
    """

    def makeAuthenticator(self) -> ReceivingAuthenticator:
        return ReceivingAuthenticator(self.policy, self.reactor)
