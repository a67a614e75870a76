# -*- test-case-name: tests.test_stream_receiving,tests.test_stream_machines_receiving -*-
"""
The receiving side of a component connection (XEP-0225 section 3): checks
the stream header, offers STARTTLS, then SASL, then whatever features are
registered (hostname bind), and refuses stanzas until negotiation is
complete.

The decisions live in the pure machine
(L{xmppcomp.stream.receivingmachine.ReceivingMachine}, re-exported here);
L{ReceivingAuthenticator} carries them out on a L{NegotiatingXmlStream}.
The listeners of both receiving sides (XEP-0225 and XEP-0114) share
L{ListeningXmlStream} and L{ListeningFactory}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import attrs
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from xmppcomp.interfaces import ICredentialStore, IReceivingFeature, IReceivingSession
from xmppcomp.jids import JIDCache
from xmppcomp.logs import Logger
from xmppcomp.metrics import Metrics
from xmppcomp.stream import tls
from xmppcomp.stream.adapter import FeaturesCache, NegotiationAdapter, NegotiationPolicy
from xmppcomp.stream.channelbinding import ChannelBindingData
from xmppcomp.stream.features import featuresElement
from xmppcomp.stream.header import newStreamId
from xmppcomp.stream.limits import AuthFailureLimiter, sourceKey
from xmppcomp.stream.negotiating import NegotiatingFactory, NegotiatingXmlStream
from xmppcomp.stream.receivingmachine import ReceivingMachine
from xmppcomp.stream.xmlstream import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_STANZA_DEPTH,
    DEFAULT_MAX_STANZA_SIZE,
)
from zope.interface import implementer

__all__ = [
    "STREAM_CLOSED_EVENT",
    "AuthFailureLimiter",
    "ListeningFactory",
    "ListeningPolicy",
    "ListeningXmlStream",
    "ReceivingAuthenticator",
    "ReceivingFactory",
    "ReceivingMachine",
    "ReceivingPolicy",
    "sourceKey",
]

log = Logger()


def _validateDomains(instance: object, attribute: object, value: frozenset[str]) -> None:
    if not value:
        raise ValueError("a receiving side needs at least one served domain")


# The converters of ReceivingPolicy.domains and features: typed, as mypy's
# attrs plugin cannot infer the types from the generic builtins.
def _domainSet(domains: Iterable[str]) -> frozenset[str]:
    return frozenset(domains)


def _featureTuple(features: Iterable[IReceivingFeature]) -> tuple[IReceivingFeature, ...]:
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
    @ivar serverEndPoints: the C{tls-server-end-point} of our certificate,
        remembered per TLS context for channel binding
        (L{tls.ServerEndPoints}).
    @ivar tlsDeclarations: keeps the TLS layer's interface declarations
        warm for this policy's connections (L{tls.TLSDeclarations}).
    @ivar featuresCache: the serialised C{<stream:features/>} of the
        STARTTLS and SASL stages, remembered by what they offer
        (L{FeaturesCache}); share one between policies to pool them.
    @ivar jids: the parsed JIDs of the names in stream headers,
        remembered (L{JIDCache}).
    @ivar metrics: where refused streams and SASL attempts are counted
        (by condition), or L{None}.
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
    serverEndPoints: tls.ServerEndPoints = attrs.field(
        factory=tls.ServerEndPoints, eq=False, repr=False
    )
    featuresCache: FeaturesCache = attrs.field(factory=FeaturesCache, eq=False, repr=False)
    jids: JIDCache = attrs.field(factory=JIDCache, eq=False, repr=False)
    metrics: Metrics | None = attrs.field(default=None, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.tlsOptions is None and not self.allowPlaintext:
            raise ValueError(
                "the receiving side needs TLS options (a certificate and key); "
                "plaintext streams need allowPlaintext=True, for tests only"
            )
        if self.maxAuthAttempts < 1:
            raise ValueError("maxAuthAttempts must be at least 1")


@implementer(IReceivingSession)
class ReceivingAuthenticator(NegotiationAdapter[ReceivingMachine]):
    """
    Negotiates one incoming component stream: the adapter of a
    L{ReceivingMachine}, and the session the features registered for after
    SASL see (L{IReceivingSession}).
    """

    initiating = False

    def __init__(self, policy: ReceivingPolicy, reactor: IReactorTime) -> None:
        super().__init__(policy, reactor)
        self.policy: ReceivingPolicy = policy

    def makeMachine(self) -> ReceivingMachine:
        return ReceivingMachine(self, self.policy, self)

    # What the router and the features read.

    @property
    def identity(self) -> str | None:
        """
        The authenticated domain once SASL succeeded, else L{None}.
        """
        return self.machine.identity

    @property
    def mechanism(self) -> str | None:
        """
        The SASL mechanism that succeeded, else L{None}.
        """
        return self.machine.mechanism

    @property
    def tlsActive(self) -> bool:
        """
        Whether the connection is under TLS (STARTTLS completed, or a TLS
        listener).
        """
        return self.machine.tlsActive

    def checkComplete(self) -> None:
        """
        Finish negotiation if no registered feature is required any more.
        Features call this after they changed what they require.
        """
        self.machine.checkComplete()

    # ReceivingIO, besides NegotiationAdapter's.

    def newStreamId(self) -> str:
        return newStreamId()

    def channelBinding(self) -> ChannelBindingData | None:
        return tls.channelBindingFor(
            self.xmlstream.transport, isServer=True, ownEndPoints=self.policy.serverEndPoints
        )

    def peerIdentities(self) -> frozenset[str]:
        return tls.peerCertificateIdentities(self.xmlstream.transport)

    def featuresXml(
        self, key: tuple[object, ...] | None, build: Callable[[], list[domish.Element]]
    ) -> str:
        """
        The features serialised, remembered in the policy's
        L{ReceivingPolicy.featuresCache} under C{key} unless it is
        L{None}.
        """

        def make() -> str:
            return self.serialize(featuresElement(build()))

        if key is None:
            return make()
        return self.policy.featuresCache.get(key, make)

    def entity(self, name: str) -> jid.JID:
        """
        The JID C{name}, from the policy's L{ReceivingPolicy.jids}.
        """
        return self.policy.jids(name)

    def tlsOptions(self) -> IOpenSSLServerConnectionCreator:
        # Only offered (state "tls") with tlsOptions.
        options = self.policy.tlsOptions
        assert options is not None
        return options

    def startTLS(self) -> None:
        # The peer starts its handshake as soon as <proceed/> arrives; ours
        # takes longer to set up (a tenth of a millisecond), so it is set
        # up meanwhile rather than before <proceed/> leaves.
        self.xmlstream.flush()
        super().startTLS()

    def tlsDeclarations(self) -> tls.TLSDeclarations:
        return self.policy.tlsDeclarations

    def countRefusal(self, condition: str) -> None:
        metrics = self.policy.metrics
        if metrics is not None:
            metrics.countNegotiationFailure("receiving", condition)


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


class ListeningPolicy(NegotiationPolicy, Protocol):
    """
    The policy of a receiving side (L{ReceivingPolicy}, or
    L{AcceptPolicy<xmppcomp.stream.acceptreceiving.AcceptPolicy>}), as
    L{ListeningFactory} reads it.
    """

    @property
    def maxStanzaDepth(self) -> int:
        """The deepest nesting of elements accepted in a stanza."""


class ListeningFactory(NegotiatingFactory):
    """
    Builds a L{ListeningXmlStream} per accepted connection, with the
    authenticator L{makeAuthenticator} returns and the limits of C{policy}
    (which also has C{maxStanzaDepth}).
    """

    policy: ListeningPolicy

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

    authenticatorType = ReceivingAuthenticator
