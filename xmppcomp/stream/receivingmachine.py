# -*- test-case-name: tests.test_stream_machines_receiving,tests.test_stream_receiving -*-
"""
The receiving side of XEP-0225 (the router's end of a component
connection) as a pure machine: the peer's header and elements in, actions
out (L{ReceivingIO}); no I/O.

L{xmppcomp.stream.receiving.ReceivingAuthenticator} is its adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from twisted.words.protocols.jabber.error import StreamError
from twisted.words.xish import domish

from xmppcomp.errors import SASLFailure
from xmppcomp.logs import Logger
from xmppcomp.ns import NS_CLIENT, NS_SASL, NS_TLS
from xmppcomp.stream.features import STARTTLS, markRequired
from xmppcomp.stream.header import checkHost, parseStreamHeader
from xmppcomp.stream.machine import ANY, NegotiationIO, OurHeader, ReceivingSide, Table, isStanza, rows
from xmppcomp.stream.sasl import SASLReceiver

if TYPE_CHECKING:
    from xmppcomp.interfaces import IReceivingSession
    from xmppcomp.stream.channelbinding import ChannelBindingData
    from xmppcomp.stream.receiving import ReceivingPolicy

__all__ = ["ReceivingIO", "ReceivingMachine", "isCountedFailure"]

#: The receiving side's log lines keep the namespace they always had.
log = Logger(namespace="xmppcomp.stream.receiving")

#: The states that are still negotiating (a timeout refuses them).
NEGOTIATING = ("tls", "sasl", "features", "completing")


def isCountedFailure(reply: domish.Element) -> bool:
    """
    Whether a SASL reply is a failure that tested a credential or broke
    the protocol (every C{<failure/>} but C{<aborted/>}).
    """
    if reply.name != "failure":
        return False
    return not any(child.name == "aborted" for child in reply.elements())


class ReceivingIO(NegotiationIO, Protocol):
    """
    The receiving side's facts and actions besides L{NegotiationIO}'s.
    """

    def newStreamId(self) -> str:
        """
        A fresh stream id (L{xmppcomp.stream.header.newStreamId}).
        """

    def channelBinding(self) -> ChannelBindingData | None:
        """
        The TLS session's channel-binding data (server side), or L{None}.
        """

    def peerIdentities(self) -> frozenset[str]:
        """
        The names the peer's verified TLS certificate holds (for SASL
        EXTERNAL), or none.
        """

    def featuresXml(
        self, key: tuple[object, ...] | None, build: Callable[[], list[domish.Element]]
    ) -> str:
        """
        C{<stream:features/>} with the elements C{build} makes, serialised
        as the stream sends it; the IO may remember the result under
        C{key} (L{None}: never remembered) and give it again without
        calling C{build}.
        """


class ReceivingMachine(ReceivingSide):
    """
    Negotiates one incoming XEP-0225 stream: checks the stream header,
    offers STARTTLS, then SASL, then the features registered for after
    SASL (the hostname bind), and refuses stanzas until negotiation is
    complete.

    States: C{tls} (STARTTLS offered and required), C{sasl} (SASL
    offered), C{features} (SASL succeeded: the registered features are
    offered), C{completing} (nothing is required any more: complete once
    the read being handled is done; more elements the features take are
    still answered), C{complete}, and C{refused} once a stream error was
    sent: from then on whatever the peer sends while the stream closes is
    dropped, so a refused stream can never start TLS, authenticate or
    bind.

    @ivar policy: the L{ReceivingPolicy}.
    @ivar session: what the registered features are given
        (L{IReceivingFeature<xmppcomp.interfaces.IReceivingFeature>}).
    @ivar tlsActive: whether the connection is under TLS (STARTTLS
        completed, or a TLS listener).
    @ivar sasl: the SASL negotiation of the stream once SASL was offered,
        else L{None}.
    @ivar identity: the authenticated domain once SASL succeeded, else
        L{None}.
    @ivar mechanism: the SASL mechanism that succeeded, else L{None}.
    @ivar ours: the name our last header came from, or L{None}.
    @ivar theirs: the name our last header was addressed to, or L{None}.
    @ivar ahead: the features made ahead for the header that follows
        SASL, while the peer restarts its stream, or L{None}.
    """

    table = Table(
        name="receiving",
        initial="tls",
        states=("tls", "sasl", "features", "completing", "complete", "refused"),
        rows=rows(
            ("tls", "connected", "open", ("tls", "sasl", "refused")),
            ("tls", "header", "greet", ("tls", "refused")),
            ("sasl", "header", "greet", ("sasl", "refused")),
            ("features", "header", "greet", ("features", "completing", "complete", "refused")),
            (("completing", "complete", "refused"), "header", "ignore", ()),
            ("tls", "element", "expectStartTLS", ("tls", "sasl", "refused")),
            ("sasl", "element", "exchange", ("sasl", "features", "refused")),
            ("features", "element", "offerToFeatures", ("features", "completing", "complete", "refused")),
            ("completing", "element", "offerOrComplete", ("completing", "complete")),
            ("complete", "element", "passOn", ()),
            ("refused", "element", "consume", ()),
            ("features", "prepareFeatures", "prepare", ()),
            ("features", "checkComplete", "checkRequired", ("features", "completing", "complete")),
            ("completing", "finish", "complete", ("complete",)),
            (NEGOTIATING, "timedOut", "expire", ("refused",)),
            (ANY, "prepareFeatures", "ignore", ()),
            (ANY, "checkComplete", "ignore", ()),
            (ANY, "finish", "ignore", ()),
            (ANY, "tlsDone", "ignore", ()),
            (ANY, "timedOut", "ignore", ()),
            (ANY, "ended", "stop", ()),
        ),
    )

    io: ReceivingIO

    def __init__(self, io: ReceivingIO, policy: ReceivingPolicy, session: IReceivingSession) -> None:
        super().__init__(io, policy.authFailures, policy.negotiationTimeout)
        self.policy = policy
        self.session = session
        self.tlsActive = False
        self.sasl: SASLReceiver | None = None
        self.identity: str | None = None
        self.mechanism: str | None = None
        self.ours: str | None = None
        self.theirs: str | None = None
        self.ahead: str | None = None

    # Inputs besides Machine's.

    def prepareFeatures(self) -> None:
        """
        SASL succeeded and its answer is out: make the features that will
        answer the restarted stream's header while the peer restarts it.
        """
        self.fire("prepareFeatures")

    def checkComplete(self) -> None:
        """
        A feature changed what it requires: negotiation completes if no
        feature is required any more.
        """
        self.fire("checkComplete")

    def finish(self) -> None:
        """
        The read in which nothing was required any more is handled, its
        answers are out: negotiation completes.
        """
        self.fire("finish")

    # What ReceivingSide asks.

    def _ourName(self) -> str:
        return self.ours if self.ours is not None else sorted(self.policy.domains)[0]

    def refusalHeader(self) -> OurHeader:
        return OurHeader(NS_CLIENT, (1, 0), ours=self._ourName(), theirs=self.theirs)

    def logRefusal(self, condition: str, text: str | None) -> None:
        if text is None:
            # A bad stream header.
            log.info("refusing stream from {peer}: {condition}", peer=self.io.peer(), condition=condition)
            return
        log.info(
            "closing stream from {peer}: {condition} ({text})",
            peer=self.io.peer(),
            condition=condition,
            text=text,
        )

    # Behaviours.

    def open(self) -> str:
        """
        (C{connected}.) On a TLS listener SASL comes first, else STARTTLS
        unless the policy allows plaintext; a blocked source is refused at
        once.
        """
        if self.io.encrypted():
            self.tlsActive = True
            first = "sasl"
        else:
            first = "tls" if self.policy.tlsOptions is not None else "sasl"
        refused = self.start()
        if refused is not None:
            return refused
        if self.policy.tlsOptions is None:
            log.warn(
                "INSECURE: accepting a component stream without TLS from {peer} "
                "(allowPlaintext is set; never do this outside tests)",
                peer=self.io.peer(),
            )
        return first

    def greet(self, root: domish.Element) -> str:
        """
        (C{header}.) A good header is answered with ours (a fresh stream
        id) and the features of the state; a bad one with its stream
        error.
        """
        streamId = self.io.newStreamId()
        try:
            header = parseStreamHeader(root, NS_CLIENT)
            checkHost(header, self.policy.domains)
        except StreamError as e:
            self.io.describe(
                OurHeader(NS_CLIENT, (1, 0), ours=self._ourName(), theirs=self.theirs, id=streamId)
            )
            return self.refuse(e.condition, None)
        # checkHost refused the stream otherwise.
        assert header.to is not None
        self.ours = header.to
        if self.identity is not None:
            self.theirs = self.identity
        elif header.from_:
            self.theirs = header.from_
        self.io.sendHeader(OurHeader(NS_CLIENT, (1, 0), ours=self.ours, theirs=self.theirs, id=streamId))
        xml, self.ahead = self.ahead, None
        if xml is None:
            xml = self._featuresXml()
        self.io.send(xml)
        if self.state == "features":
            return self._checkRequired()
        return self.state

    def _featuresXml(self) -> str:
        """
        Our C{<stream:features/>} for this state, serialised. Those of the
        STARTTLS and SASL states depend only on a few values (the
        mechanisms and channel-binding types offered): they are keyed by
        them, for the IO to remember.
        """
        if self.state == "tls":
            return self.io.featuresXml(("tls", NS_CLIENT), _startTLSFeatures)
        if self.state == "sasl":
            sasl = self.sasl = SASLReceiver(
                self.policy.credentials,
                tlsActive=self.tlsActive,
                channelBinding=self.io.channelBinding(),
                peerIdentities=self.io.peerIdentities(),
                allowPlain=self.policy.allowPlain,
                requireChannelBinding=self.policy.requireChannelBinding,
                maxAttempts=self.policy.maxAuthAttempts,
            )
            return self.io.featuresXml(("sasl", NS_CLIENT) + sasl.featuresKey(), sasl.featureElements)
        return self.io.featuresXml(None, self._laterFeatures)

    def _laterFeatures(self) -> list[domish.Element]:
        """
        The elements of the features registered for after SASL that are
        offered now.
        """
        elements = []
        for feature in self.policy.features:
            element = feature.featureElement(self.session)
            if element is not None:
                elements.append(element)
        return elements

    def _unexpected(self, element: domish.Element) -> tuple[str, bool]:
        """
        Refuse an element negotiation has no use for.
        """
        if isStanza(element):
            return self.refuse("not-authorized", "stream negotiation is not complete"), True
        return self.refuse(
            "unsupported-stanza-type",
            "unexpected {%s}%s during stream negotiation" % (element.uri, element.name),
        ), True

    def expectStartTLS(self, element: domish.Element) -> tuple[str, bool]:
        """
        (C{element} in C{tls}.) C{<starttls/>} is answered with
        C{<proceed/>} and starts TLS; C{<auth/>} gets the SASL failure
        C{encryption-required}.
        """
        if self.io.streamEnded():
            return self.state, True
        if (element.uri, element.name) == STARTTLS:
            self.io.send(domish.Element((NS_TLS, "proceed")))
            self.io.startTLS()
            self.tlsActive = True
            return "sasl", True
        if element.uri == NS_SASL and element.name == "auth":
            self.io.send(SASLFailure("encryption-required").toElement())
            return self.state, True
        return self._unexpected(element)

    def exchange(self, element: domish.Element) -> tuple[str, bool]:
        """
        (C{element} in C{sasl}.) A SASL step: answered; a success restarts
        the stream, too many failures (or an C{<auth/>} from a blocked
        source) refuse it. TLS again is a C{policy-violation}.
        """
        if self.io.streamEnded():
            return self.state, True
        if element.uri == NS_SASL:
            return self._step(element), True
        if element.uri == NS_TLS:
            return self.refuse("policy-violation", "TLS cannot be negotiated at this point"), True
        return self._unexpected(element)

    def _step(self, element: domish.Element) -> str:
        if element.name == "auth":
            text = self.blocked()
            if text is not None:
                return self.refuse("policy-violation", text)
        sasl = self.sasl
        assert sasl is not None  # made with the features that offered SASL
        step = sasl.receive(element)
        reply = step.reply
        self.io.send(reply)
        if reply.name == "failure":
            condition = reply.firstChildElement()
            self.io.countRefusal(condition.name if condition is not None else "failure")
            text = next((str(child) for child in reply.elements(NS_SASL, "text")), None)
            log.info(
                "authentication of {peer} with {mechanism} failed: {condition}{text}",
                peer=self.io.peer(),
                mechanism=sasl.mechanism or element.getAttribute("mechanism") or "SASL",
                condition=condition.name if condition is not None else "failure",
                text=f" ({text})" if text else "",
            )
            if isCountedFailure(reply):
                self.countFailure()
        if step.identity is not None:
            self.identity = step.identity
            self.mechanism = sasl.mechanism
            self.io.resetParser()
            # The state first: the features are made (now, outside a read)
            # in it.
            self.state = "features"
            self.io.afterRead(self.prepareFeatures)
            return "features"
        if step.tooManyFailures:
            return self.refuse("policy-violation", "too many failed authentication attempts")
        return self.state

    def offerToFeatures(self, element: domish.Element) -> tuple[str, bool]:
        """
        (C{element} in C{features}.) The registered features may take the
        element; negotiation completes when none is required any more.
        """
        if self.io.streamEnded():
            return self.state, True
        for feature in self.policy.features:
            if feature.handleElement(self.session, element):
                return self._checkRequired(), True
        return self._unexpected(element)

    def offerOrComplete(self, element: domish.Element) -> tuple[str, bool]:
        """
        (C{element} in C{completing}.) Negotiation completes once this read
        is handled: more elements the features take (a component sends all
        its bind requests at once) are still answered here; anything else
        completes it now and goes where a negotiated stream's elements go.
        """
        if self.io.streamEnded():
            return self.state, True
        for feature in self.policy.features:
            if feature.handleElement(self.session, element):
                return self.state, True
        return self.complete(), False

    def prepare(self) -> None:
        """
        (C{prepareFeatures} in C{features}.) Make the features of the
        restarted stream now, while the peer restarts it.
        """
        log.debug(
            "{peer} authenticated as {identity} with {mechanism}",
            peer=self.io.peer(),
            identity=self.identity,
            mechanism=self.mechanism,
        )
        if self.ahead is None:
            self.ahead = self.io.featuresXml(None, self._laterFeatures)

    def checkRequired(self) -> str:
        """
        (C{checkComplete} in C{features}.) See L{_checkRequired}.
        """
        return self._checkRequired()

    def _checkRequired(self) -> str:
        """
        Complete negotiation once the read being handled is done if no
        registered feature is required any more: a component sends all its
        bind requests at once, and they are all answered (and the answers
        written) before the session is set up. Anything else in the same
        read completes it first (L{offerOrComplete}).

        @return: the state now (C{complete} when the IO calls at once).
        """
        if any(feature.isRequired(self.session) for feature in self.policy.features):
            return self.state
        # The state first: the IO may call back at once (outside a read).
        self.state = "completing"
        self.io.afterRead(self.finish)
        return self.state

    def complete(self) -> str:
        """
        (C{finish} in C{completing}, or an element no feature takes.)
        Negotiation is complete.
        """
        self.state = "complete"
        self.io.cancelTimer()
        # Logged once the answers of this read are out (a component's later
        # bind requests arrive with the one that completed negotiation).
        self.io.afterRead(
            log.info,
            "stream from {peer} negotiated for {identity} ({mechanism}) in {ms:.1f} ms",
            peer=self.io.peer(),
            identity=self.identity,
            mechanism=self.mechanism,
            ms=(self.io.now() - self.started) * 1000,
        )
        self.io.succeeded(None)
        return "complete"


def _startTLSFeatures() -> list[domish.Element]:
    """
    The features of the C{tls} state: STARTTLS, required.
    """
    return [markRequired(domish.Element(STARTTLS))]
