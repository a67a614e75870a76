# -*- test-case-name: tests.test_stream_machines_initiating,tests.test_stream_initiating -*-
"""
The initiating side of XEP-0225 (a component) as a pure machine: the
server's header and elements in, actions out (L{InitiatingIO}); no I/O.

L{xmppcomp.stream.initiating.InitiatingAuthenticator} is its adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVarTuple

import attrs
from twisted.python.failure import Failure
from twisted.words.protocols.jabber.error import StreamError
from twisted.words.xish import domish

from xmppcomp.errors import NegotiationError, SASLFailure, TLSRequiredError
from xmppcomp.logs import Logger
from xmppcomp.ns import NS_CLIENT, NS_SASL, NS_SASL_CB, NS_STREAMS, NS_TLS
from xmppcomp.stream.features import (
    MECHANISMS,
    STARTTLS,
    OfferedFeature,
    nextFeature,
    parseFeatures,
)
from xmppcomp.stream.header import parseStreamHeader
from xmppcomp.stream.machine import SAME, InitiatingSide, NegotiationIO, OurHeader, Table, _message, rows
from xmppcomp.stream.sasl import SASLInitiator, chooseMechanism

if TYPE_CHECKING:
    from xmppcomp.interfaces import IInitiatingFeature, IInitiatingMechanism
    from xmppcomp.stream.channelbinding import ChannelBindingData
    from xmppcomp.stream.initiating import InitiatingPolicy

__all__ = ["InitiatingIO", "InitiatingMachine", "NegotiationResult", "Offer", "OfferMemory"]

log = Logger()

_Ts = TypeVarTuple("_Ts")

#: A server's SASL offer: its mechanisms, and its channel-binding types
#: (L{None} when it listed none).
Offer = tuple[tuple[str, ...], "tuple[str, ...] | None"]


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


class OfferMemory:
    """
    The last SASL offer each server made, so that a component reconnecting
    to the same server (which makes the same offer) can make its
    C{<auth/>} while it waits for it: an option of the initiating side,
    owned by a component (one per component, shared by its connections).

    @ivar size: at most this many servers are remembered; when full the
        memory is emptied.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._offers: dict[tuple[object, ...], Offer] = {}

    def get(self, key: tuple[object, ...]) -> Offer | None:
        """
        The offer remembered for C{key}, or L{None}.
        """
        return self._offers.get(key)

    def remember(self, key: tuple[object, ...], offer: Offer) -> None:
        """
        Remember C{offer} for C{key}.
        """
        if self._offers.get(key) == offer:
            return
        if len(self._offers) >= self.size:
            self._offers.clear()
        self._offers[key] = offer

    def __len__(self) -> int:
        return len(self._offers)


class InitiatingIO(NegotiationIO, Protocol):
    """
    The initiating side's actions and facts besides L{NegotiationIO}'s.
    """

    def channelBinding(self) -> "ChannelBindingData | None":
        """
        The TLS session's channel-binding data (client side), or L{None}.
        """

    def tlsVersion(self) -> str | None:
        """
        The TLS protocol version, or L{None} without TLS.
        """

    def streamId(self) -> str | None:
        """
        The id of the server's current stream header.
        """

    def disconnect(self) -> None:
        """
        Drop the connection without closing the stream (the server
        refused STARTTLS: RFC 6120 section 5.4.2.2 has it close both).
        """

    def callSoon(self, f: Callable[[*_Ts], object], *args: *_Ts) -> None:
        """
        Call C{f(*args)} on the next reactor turn, once what is written now
        has left.
        """

    def prepareFeatures(self) -> None:
        """
        Let the features negotiated after SASL make ahead what they will
        send (L{IInitiatingFeature.prepare}).
        """

    def negotiateFeature(self, feature: "IInitiatingFeature", element: domish.Element) -> None:
        """
        Negotiate C{feature} (advertised as C{element}); the machine's
        C{featureDone} or C{featureFailed} follows.
        """


def _offerKey(policy: "InitiatingPolicy") -> tuple[object, ...]:
    return (
        policy.serverDomain,
        policy.identity,
        None if policy.mechanisms is None else tuple(policy.mechanisms),
        policy.clientCertificate is not None,
    )


class InitiatingMachine(InitiatingSide):
    """
    Negotiates one outgoing XEP-0225 stream: our header; the server's
    header and features; STARTTLS (unless the connection is TLS already);
    SASL; the stream restart; then the features registered for after SASL
    (the hostname bind) until no required one is left (XEP-0192).

    States: C{header} (our header sent, waiting for the server's
    features), C{tls} (C{<starttls/>} sent; after C{<proceed/>}, TLS and
    the new header), C{sasl} (C{<auth/>} sent), C{restarting} (SASL
    succeeded, the new header sent), C{features} (features being
    negotiated), C{complete}, C{failed}.

    @ivar policy: the L{InitiatingPolicy}.
    @ivar io: the L{InitiatingIO}.
    @ivar saslMadeAhead: whether the C{<auth/>} sent was made while the
        server answered the TLS handshake, for the offer it made last time
        (L{OfferMemory}), rather than once its features arrived.
    """

    table = Table(
        name="initiating",
        initial="header",
        states=("header", "tls", "sasl", "restarting", "features", "complete", "failed"),
        rows=rows(
            ("header", "connected", "open", ()),
            (("header", "tls", "sasl", "restarting", "features"), "header", "checkHeader", (SAME, "failed")),
            (("complete", "failed"), "header", "ignore", ()),
            ("header", "element", "expectFeatures", (SAME, "tls", "sasl", "failed")),
            ("tls", "element", "expectProceed", (SAME, "sasl", "failed")),
            ("sasl", "element", "exchange", (SAME, "restarting", "failed")),
            ("restarting", "element", "expectLaterFeatures", (SAME, "features", "complete", "failed")),
            ("features", "element", "passOn", ()),
            ("complete", "element", "passOn", ()),
            ("failed", "element", "consume", ()),
            ("tls", "tlsDone", "speculate", ()),
            (("header", "sasl", "restarting", "features", "complete", "failed"), "tlsDone", "ignore", ()),
            ("features", "featureDone", "nextFeature", ("features", "complete", "failed")),
            (("complete", "failed"), "featureDone", "ignore", ()),
            ("features", "featureFailed", "failAndClose", ("failed",)),
            (("complete", "failed"), "featureFailed", "ignore", ()),
            (("header", "tls", "sasl", "restarting", "features"), "timedOut", "expire", ("failed",)),
            (("complete", "failed"), "timedOut", "ignore", ()),
            (("header", "tls", "sasl", "restarting", "features"), "ended", "lost", ("failed",)),
            (("complete", "failed"), "ended", "ignore", ()),
        ),
    )

    io: InitiatingIO

    def __init__(self, io: InitiatingIO, policy: "InitiatingPolicy") -> None:
        super().__init__(io, policy.negotiationTimeout)
        self.policy = policy
        self.tlsActive = policy.directTLS
        self.sasl: SASLInitiator | None = None
        self.done: set[tuple[str, str]] = set()
        self.offered: list[OfferedFeature] = []
        self._speculation: tuple[Offer, SASLInitiator, domish.Element] | None = None
        self.saslMadeAhead = False

    # Inputs besides Machine's.

    def featureDone(self, key: tuple[str, str]) -> None:
        """
        The feature advertised under C{key} was negotiated.
        """
        self.fire("featureDone", key)

    def featureFailed(self, reason: Exception | Failure) -> None:
        """
        Negotiating a feature failed, for C{reason}.
        """
        self.fire("featureFailed", reason)

    # Behaviours.

    def describeFailure(self, reason: Exception | Failure) -> None:
        log.info(
            "stream negotiation with {server} failed: {reason}",
            server=self.policy.serverDomain,
            reason=_message(reason),
        )

    def open(self) -> None:
        """
        (C{connected}.) Start the timeout and send our header.
        """
        self.started = self.io.now()
        self.io.startTimer(self.negotiationTimeout)
        self.io.sendHeader(self._header())

    def _header(self) -> OurHeader:
        return OurHeader(
            namespace=NS_CLIENT,
            version=(1, 0),
            ours=self.policy.hostname or self.policy.identity,
            theirs=self.policy.serverDomain,
        )

    def checkHeader(self, root: domish.Element) -> str | None:
        """
        (C{header}.) A bad header from the server fails negotiation, and
        is answered with its stream error.
        """
        try:
            parseStreamHeader(root, NS_CLIENT)
        except StreamError as e:
            state = self.fail(NegotiationError("the server sent a bad stream header: %s" % (e.condition,)))
            self.io.refuse(e.condition, None)
            return state
        return None

    def _over(self) -> bool:
        return self.io.streamEnded()

    def expectFeatures(self, element: domish.Element) -> tuple[str | None, bool]:
        """
        (C{element} in C{header}.) The server's first features: STARTTLS,
        or SASL on a connection that is TLS already (or, loudly, without
        TLS when it is not required).
        """
        if self._over():
            return None, True
        if (element.uri, element.name) != (NS_STREAMS, "features"):
            return None, False
        offered = parseFeatures(element)
        keys = {feature.key for feature in offered}
        if not self.tlsActive:
            if STARTTLS in keys:
                self.io.send(domish.Element(STARTTLS))
                return "tls", True
            if self.policy.requireTLS:
                return self.failAndClose(
                    TLSRequiredError(
                        "%s did not offer STARTTLS, and this component requires TLS" % (self.policy.serverDomain,)
                    )
                ), True
            log.warn(
                "INSECURE: {server} offers no TLS; continuing in plaintext because "
                "requireTLS is off (never do this outside tests)",
                server=self.policy.serverDomain,
            )
        return self._startSASL(offered), True

    def expectProceed(self, element: domish.Element) -> tuple[str | None, bool]:
        """
        (C{element} in C{tls}.) C{<proceed/>} starts TLS and a new stream;
        C{<failure/>} fails negotiation; once TLS is up, the features of the
        new stream start SASL.
        """
        if self._over():
            return None, True
        if element.uri == NS_TLS and not self.tlsActive:
            if element.name == "proceed":
                self.io.startTLS()
                self.tlsActive = True
                self.io.sendHeader(self._header())
                return None, True
            state = self.fail(NegotiationError("the server refused STARTTLS"))
            self.io.disconnect()
            return state, True
        if (element.uri, element.name) == (NS_STREAMS, "features") and self.tlsActive:
            return self._startSASL(parseFeatures(element)), True
        return None, False

    def speculate(self) -> None:
        """
        (C{tlsDone} in C{tls}.) Our TLS handshake is done: if this server's
        last SASL offer is known, make the C{<auth/>} for it while the
        server answers, on the next turn (once our Finished and header
        have left).
        """
        offer = self.policy.offers.get(_offerKey(self.policy))
        if offer is not None:
            self.io.callSoon(self._speculate, offer)

    def _speculate(self, offer: Offer) -> None:
        if self.state != "tls" or not self.tlsActive:
            return
        try:
            mechanism = self._choose(list(offer[0]), None if offer[1] is None else list(offer[1]))
        except NegotiationError:
            return
        sasl = SASLInitiator(mechanism)
        self._speculation = (offer, sasl, sasl.start())

    def _choose(self, mechanisms: list[str], serverCbTypes: list[str] | None) -> "IInitiatingMechanism":
        policy = self.policy
        return chooseMechanism(
            mechanisms,
            identity=policy.identity,
            secret=policy.secret,
            channelBinding=self.io.channelBinding(),
            serverCbTypes=serverCbTypes,
            tlsActive=self.tlsActive,
            haveClientCertificate=policy.clientCertificate is not None,
            allowed=list(policy.mechanisms) if policy.mechanisms is not None else None,
        )

    def _startSASL(self, offered: list[OfferedFeature]) -> str:
        byKey = {feature.key: feature.element for feature in offered}
        if MECHANISMS not in byKey:
            return self.failAndClose(NegotiationError("%s offered no SASL mechanisms" % (self.policy.serverDomain,)))
        mechanisms = [str(m).strip() for m in byKey[MECHANISMS].elements(NS_SASL, "mechanism")]
        serverCbTypes = None
        cbFeature = byKey.get((NS_SASL_CB, "sasl-channel-binding"))
        if cbFeature is not None:
            serverCbTypes = [
                child.getAttribute("type", "") for child in cbFeature.elements(NS_SASL_CB, "channel-binding")
            ]
        offer: Offer = (tuple(mechanisms), None if serverCbTypes is None else tuple(serverCbTypes))
        self.policy.offers.remember(_offerKey(self.policy), offer)
        speculation, self._speculation = self._speculation, None
        if speculation is not None and speculation[0] == offer:
            # The same offer as last time: the choice made ahead (with this
            # connection's channel binding) is the one made now.
            sasl, auth = speculation[1], speculation[2]
            self.saslMadeAhead = True
        else:
            try:
                mechanism = self._choose(mechanisms, serverCbTypes)
            except NegotiationError as e:
                return self.failAndClose(e)
            sasl = SASLInitiator(mechanism)
            auth = sasl.start()
        self.sasl = sasl
        self.io.send(auth)
        return "sasl"

    def exchange(self, element: domish.Element) -> tuple[str | None, bool]:
        """
        (C{element} in C{sasl}.) The server's SASL challenge, success or
        failure; on success the stream restarts.
        """
        if self._over():
            return None, True
        if element.uri != NS_SASL:
            return None, False
        assert self.sasl is not None
        try:
            reply = self.sasl.receive(element)
        except (SASLFailure, NegotiationError) as e:
            return self.failAndClose(e), True
        if reply is not None:
            self.io.send(reply)
            return None, True
        if not self.sasl.done:
            return None, True
        self.io.resetParser()
        self.io.sendHeader(self._header())
        # While the server restarts its stream: the log line, and the
        # requests of features that can make them ahead (the hostname bind).
        self.io.afterRead(
            log.debug,
            "authenticated to {server} as {identity}",
            server=self.policy.serverDomain,
            identity=self.policy.identity,
        )
        self.io.afterRead(self.io.prepareFeatures)
        return "restarting", True

    def expectLaterFeatures(self, element: domish.Element) -> tuple[str | None, bool]:
        """
        (C{element} in C{restarting}.) The features of the restarted
        stream: negotiate the required ones in turn.
        """
        if self._over():
            return None, True
        if (element.uri, element.name) != (NS_STREAMS, "features"):
            return None, False
        self.offered = parseFeatures(element)
        return self._walk(), True

    def nextFeature(self, key: tuple[str, str]) -> str:
        """
        (C{featureDone}.) One more feature negotiated: on to the next.
        """
        self.done.add(key)
        return self._walk()

    def _walk(self) -> str:
        known = {feature.key: feature for feature in self.policy.features}
        try:
            feature = nextFeature(self.offered, known, self.done)
        except NegotiationError as e:
            return self.failAndClose(e)
        if feature is None:
            return self._complete()
        # The state first: the answer may come at once (a feature with
        # nothing to ask), as a featureDone input of this state.
        self.state = "features"
        self.io.negotiateFeature(known[feature.key], feature.element)
        return self.state

    def _complete(self) -> str:
        self.io.cancelTimer()
        assert self.sasl is not None
        result = NegotiationResult(
            identity=self.policy.identity,
            mechanism=self.sasl.mechanism.name,
            tlsVersion=self.io.tlsVersion(),
            streamId=self.io.streamId(),
            elapsed=self.io.now() - self.started,
        )
        self.state = "complete"
        self.io.succeeded(result)
        log.info(
            "stream to {server} negotiated as {identity} ({mechanism}, {tls}) in {ms:.1f} ms",
            server=self.policy.serverDomain,
            identity=result.identity,
            mechanism=result.mechanism,
            tls=result.tlsVersion or "no TLS",
            ms=result.elapsed * 1000,
        )
        return "complete"

    def expire(self) -> str:
        """
        (C{timedOut}.) Negotiation took too long.
        """
        return self.failAndClose(
            NegotiationError(
                "stream negotiation with %s not complete after %g seconds"
                % (self.policy.serverDomain, self.policy.negotiationTimeout)
            )
        )
