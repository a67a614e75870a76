# -*- test-case-name: tests.test_stream_accept -*-
"""
The receiving (router) side of a XEP-0114 component connection
(C{jabber:component:accept}), so that components written for the servers
people run (slixmpp's C{ComponentXMPP}, wokkel's C{Component}) can connect.

The component opens a stream to its own hostname; this side answers with a
fresh stream id and no version or features, and the component proves it
knows the shared secret with C{<handshake>hex(SHA-1(id + secret))</handshake>}.
An empty C{<handshake/>} accepts it; from then on stanzas are dispatched by
the stream as usual.

The decisions live in L{xmppcomp.stream.handshake}; this module wires them
to a L{NegotiatingXmlStream}, like L{xmppcomp.stream.receiving} does for
XEP-0225.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.words.protocols.jabber import jid
from twisted.words.protocols.jabber.error import StreamError
from twisted.words.protocols.jabber.xmlstream import (
    STREAM_AUTHD_EVENT,
    ListenAuthenticator,
)
from twisted.words.xish import domish
from twisted.words.xish.xmlstream import STREAM_END_EVENT

from xmppcomp.logs import Logger
from xmppcomp.ns import NS_COMPONENT_ACCEPT, NS_STREAMS
from xmppcomp.stream.handshake import checkAcceptHeader, checkHandshake
from xmppcomp.stream.negotiating import NegotiatingXmlStream, isStanza, peerOf
from xmppcomp.stream.receiving import AuthFailureLimiter, ListeningFactory, countRefusal, sourceKey
from xmppcomp.stream.xmlstream import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_STANZA_DEPTH,
    DEFAULT_MAX_STANZA_SIZE,
    newStreamId,
)

__all__ = ["AcceptAuthenticator", "AcceptFactory", "AcceptPolicy"]

log = Logger()

#: The handshake element (XEP-0114 section 3).
HANDSHAKE = (NS_COMPONENT_ACCEPT, "handshake")

#: How much of an unchecked C{to} attribute goes into a log line.
_LOGGED_TO = 100


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
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
    @ivar maxStanzaSize: bytes one stanza may take (C{policy-violation}
        beyond).
    @ivar closeTimeout: seconds to wait for the peer's closing tag.
    @ivar maxStanzaDepth: levels elements may nest below the stream root
        (C{policy-violation} beyond).
    @ivar authFailures: counts wrong handshakes per source address and
        refuses sources that failed too often (C{policy-violation}); see
        L{AuthFailureLimiter}. C{None} turns the limit off.
    """

    secrets: Callable[[str], str | None] = attrs.field(
        validator=attrs.validators.is_callable()
    )
    negotiationTimeout: float = attrs.field(default=30.0, validator=_positive)
    maxStanzaSize: int = attrs.field(default=DEFAULT_MAX_STANZA_SIZE, validator=_positive)
    closeTimeout: float = attrs.field(default=DEFAULT_CLOSE_TIMEOUT, validator=_positive)
    maxStanzaDepth: int = attrs.field(default=DEFAULT_MAX_STANZA_DEPTH, validator=_positive)
    authFailures: AuthFailureLimiter | None = attrs.field(factory=AuthFailureLimiter)


class AcceptAuthenticator(ListenAuthenticator):
    """
    Accepts one incoming XEP-0114 component stream.

    The negotiation has three stages, in C{_stage}:

      - C{"header"}: waiting for the component's stream header;
      - C{"handshake"}: our header is sent, waiting for C{<handshake/>};
      - C{"complete"}: the handshake succeeded; elements are no longer
        intercepted, and L{STREAM_AUTHD_EVENT} was dispatched;
      - C{"refused"}: a stream error was sent; elements that arrive while
        the stream closes are dropped.

    @ivar policy: the L{AcceptPolicy}.
    @ivar hostname: the normalised hostname of the component once the
        handshake succeeded, else L{None}.
    @ivar _reactor: schedules the negotiation timeout.
    @ivar _stage: see above.
    @ivar _requested: the normalised hostname from the header, once
        checked; not yet authenticated.
    @ivar _secret: the shared secret for C{_requested}; never logged.
    @ivar _timeout: the pending negotiation timeout, or L{None}.
    @ivar _started: when the connection was made, in reactor seconds.
    """

    namespace = NS_COMPONENT_ACCEPT

    #: The stream, from L{associateWithStream} on (Twisted's base class
    #: starts it as C{None}; nothing here runs before it is associated).
    xmlstream: NegotiatingXmlStream

    def __init__(self, policy: AcceptPolicy, reactor: IReactorTime) -> None:
        """
        @param policy: how to accept components.
        @param reactor: schedules the negotiation timeout.
        """
        super().__init__()
        self.policy = policy
        self.hostname: str | None = None
        self._reactor = reactor
        self._stage = "header"
        self._requested: str | None = None
        self._secret: str | None = None
        self._timeout: IDelayedCall | None = None
        self._started = 0.0
        self._source: str | None = None

    def associateWithStream(self, xs: NegotiatingXmlStream) -> None:
        """
        Also cancel the negotiation timeout when the stream ends.
        """
        super().associateWithStream(xs)
        xs.addObserver(STREAM_END_EVENT, self._onStreamEnd)

    def connectionMade(self) -> None:
        """
        Refuse a source that failed too often, else start the negotiation
        timeout.
        """
        self._started = self._reactor.seconds()
        assert self.xmlstream.transport is not None
        self._source = sourceKey(self.xmlstream.transport.getPeer())
        if self._sourceBlocked():
            return
        self._timeout = self._reactor.callLater(
            self.policy.negotiationTimeout, self._negotiationTimedOut
        )

    def streamStarted(self, rootElement: domish.Element) -> None:
        """
        Check the component's header and answer with ours: from the
        requested hostname, with a fresh id, without version or features.
        """
        if self._stage == "refused":
            return
        xs = self.xmlstream
        xs.namespace = NS_COMPONENT_ACCEPT
        xs.version = (0, 0)
        xs.sid = newStreamId()
        xs.prefixes = {NS_STREAMS: "stream"}
        try:
            hostname = checkAcceptHeader(rootElement)
        except StreamError as e:
            self._refuse(e.condition, _loggedTo(rootElement), "bad stream header")
            return
        try:
            secret = self.policy.secrets(hostname)
        except Exception:
            log.failure(
                "looking up the secret for {hostname} from {peer} failed",
                hostname=hostname,
                peer=peerOf(xs),
            )
            self._refuse("internal-server-error", hostname, "secret lookup failed")
            return
        if secret is None:
            self._refuse("host-unknown", hostname, "no component with this hostname")
            return
        self._requested = hostname
        self._secret = secret
        xs.thisEntity = jid.JID(tuple=(None, hostname, None))
        xs.sendHeader()
        self._stage = "handshake"

    def interceptElement(self, element: domish.Element) -> bool:
        """
        Handle a first-level element received before the handshake
        succeeded.

        @return: C{True} if negotiation consumed it.
        """
        if self._stage == "complete":
            return False
        if self._stage == "refused" or self.xmlstream.streamEnded is not None:
            # Refused, or the peer sent a stream error: the stream is
            # closing, nothing more is negotiated.
            return True
        if self._stage == "handshake" and (element.uri, element.name) == HANDSHAKE:
            if self._sourceBlocked():
                return True
            self._onHandshake(element)
            return True
        if isStanza(element):
            return self._refuse(
                "not-authorized", self._requested, "stanza before the handshake"
            )
        return self._refuse(
            "unsupported-stanza-type",
            self._requested,
            "unexpected {%s}%s before the handshake" % (element.uri, element.name),
        )

    def _onHandshake(self, element: domish.Element) -> None:
        """
        Check the component's handshake: accept the stream, or refuse it
        with C{not-authorized}.
        """
        xs = self.xmlstream
        assert self._requested is not None and self._secret is not None
        assert xs.sid is not None
        received = "".join(child for child in element.children if isinstance(child, str))
        accepted = checkHandshake(xs.sid, self._secret, received)
        self._secret = None
        if not accepted:
            if self.policy.authFailures is not None:
                self.policy.authFailures.failed(self._source, self._reactor.seconds())
            self._refuse("not-authorized", self._requested, "wrong handshake")
            return
        self._stage = "complete"
        self._cancelTimeout()
        self.hostname = self._requested
        xs.otherEntity = jid.JID(tuple=(None, self.hostname, None))
        xs.send(domish.Element(HANDSHAKE))
        xs.negotiated = True
        log.info(
            "component {hostname} accepted from {peer} in {ms:.1f} ms",
            hostname=self.hostname,
            peer=peerOf(xs),
            ms=(self._reactor.seconds() - self._started) * 1000,
        )
        xs.dispatch(xs, STREAM_AUTHD_EVENT)

    def _refuse(self, condition: str, hostname: str | None, text: str) -> bool:
        """
        Log why the stream is refused and close it with a stream error.

        @return: C{True}, so that L{interceptElement} can return it.
        """
        log.info(
            "refusing component stream from {peer} for {hostname}: {condition} ({text})",
            peer=peerOf(self.xmlstream),
            hostname=hostname,
            condition=condition,
            text=text,
        )
        self._stage = "refused"
        self._secret = None
        self._cancelTimeout()
        countRefusal(condition)
        self.xmlstream.sendStreamError(StreamError(condition, text=text))
        return True

    def _sourceBlocked(self) -> bool:
        """
        Refuse the stream with C{policy-violation} if its source address
        gave too many wrong handshakes.

        @return: whether it was refused.
        """
        limiter = self.policy.authFailures
        text = None
        if limiter is not None:
            text = limiter.refusal(self._source, self._reactor.seconds(), "handshakes")
        if text is None:
            return False
        xs = self.xmlstream
        xs.namespace = NS_COMPONENT_ACCEPT
        xs.version = (0, 0)
        xs.prefixes = {NS_STREAMS: "stream"}
        self._refuse("policy-violation", self._requested, text)
        return True

    def _negotiationTimedOut(self) -> None:
        self._timeout = None
        self._refuse(
            "connection-timeout",
            self._requested,
            "no handshake after %g seconds" % (self.policy.negotiationTimeout,),
        )

    def _cancelTimeout(self) -> None:
        if self._timeout is not None:
            if self._timeout.active():
                self._timeout.cancel()
            self._timeout = None

    def _onStreamEnd(self, reason: object) -> None:
        self._cancelTimeout()
        self._secret = None


def _loggedTo(root: domish.Element) -> str | None:
    """
    The unchecked C{to} of a refused header, shortened for the log.
    """
    to = root.getAttribute("to")
    if to is None:
        return None
    return str(to)[:_LOGGED_TO]



class AcceptFactory(ListeningFactory):
    """
    Builds a negotiating XEP-0114 stream per accepted connection (a
    L{ListeningXmlStream<xmppcomp.stream.receiving.ListeningXmlStream>}),
    for an L{AcceptPolicy}; the authenticator's C{hostname} says which
    component was accepted.
    """

    def makeAuthenticator(self) -> AcceptAuthenticator:
        return AcceptAuthenticator(self.policy, self.reactor)
