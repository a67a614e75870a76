# -*- test-case-name: tests.test_stream_accept_initiating -*-
"""
The initiating (component) side of a XEP-0114 connection
(C{jabber:component:accept}), to the servers people already run: Prosody,
ejabberd, Openfire.

The component opens a stream to its own hostname, without version; the
server answers with a stream id; the component proves it knows the shared
secret with C{<handshake>hex(SHA-1(id + secret))</handshake>}; an empty
C{<handshake/>} back completes the negotiation, and a stream error
(C{not-authorized}, C{conflict}, C{host-unknown}...) refuses it.

The pure parts are L{checkServerHeader} here and
L{xmppcomp.stream.handshake.handshakeDigest}; L{AcceptInitiatingAuthenticator}
wires them to a L{NegotiatingXmlStream}, with the same shape as
L{xmppcomp.stream.initiating} has for XEP-0225: a C{negotiated} L{Deferred}
firing with a L{NegotiationResult}.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
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

from xmppcomp.errors import NegotiationError
from xmppcomp.logs import Logger
from xmppcomp.ns import NS_COMPONENT_ACCEPT, NS_STREAMS
from xmppcomp.stream.handshake import handshakeDigest, normaliseHostname
from xmppcomp.stream.initiating import NegotiationResult
from xmppcomp.stream.negotiating import NegotiatingFactory, NegotiatingXmlStream, peerOf
from xmppcomp.stream.xmlstream import DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_STANZA_SIZE

__all__ = [
    "HANDSHAKE_MECHANISM",
    "AcceptInitiatingAuthenticator",
    "AcceptInitiatingFactory",
    "AcceptInitiatingPolicy",
    "checkServerHeader",
    "negotiateAccept",
]

log = Logger()

#: The C{mechanism} of the L{NegotiationResult} of a XEP-0114 stream.
HANDSHAKE_MECHANISM = "handshake"

#: The handshake element (XEP-0114 section 3).
HANDSHAKE = (NS_COMPONENT_ACCEPT, "handshake")


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError("%s must be positive" % (attribute.name,))


def _domain(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or normaliseHostname(value) is None:
        raise ValueError("%s must be a domain name, not %r" % (attribute.name, value))


def _secret(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    # Never put the value in the message.
    if not isinstance(value, str) or not value:
        raise ValueError("secret must be a non-empty string")


@attrs.frozen
class AcceptInitiatingPolicy:
    """
    How a component connects to a server over XEP-0114.

    @ivar hostname: the component's hostname, as configured on the server
        (Prosody's C{Component "comp.example.org"}): the C{to} of the stream
        header and the identity of the result.
    @ivar secret: the shared secret (C{component_secret}); never logged and
        left out of C{repr}.
    @ivar negotiationTimeout: seconds from connection to the server's
        C{<handshake/>} before negotiation fails with L{NegotiationError}.
    @ivar maxStanzaSize: bytes one stanza may take (C{policy-violation}
        beyond).
    @ivar closeTimeout: seconds to wait for the server's closing tag.
    """

    hostname: str = attrs.field(validator=_domain)
    secret: str = attrs.field(repr=False, validator=_secret)
    negotiationTimeout: float = attrs.field(default=30.0, validator=_positive)
    maxStanzaSize: int = attrs.field(default=DEFAULT_MAX_STANZA_SIZE, validator=_positive)
    closeTimeout: float = attrs.field(default=DEFAULT_CLOSE_TIMEOUT, validator=_positive)


def checkServerHeader(root: domish.Element) -> str:
    """
    Check the stream header a server answers a XEP-0114 component with.

    The server's header carries no version (or C{0.0}) and no features; its
    C{from} is not checked (servers disagree on it).

    @param root: the root element, as passed to C{streamStarted}.
    @return: the stream id, to compute the handshake from.
    @raise StreamError: C{invalid-namespace} if the root is not C{<stream>}
        in C{http://etherx.jabber.org/streams} or the default namespace is
        not C{jabber:component:accept}; C{bad-namespace-prefix} if the
        streams namespace is not bound to the C{stream} prefix.
    @raise NegotiationError: the header has no C{id}, so no handshake can
        be computed.
    """
    if root.uri != NS_STREAMS or root.name != "stream":
        raise StreamError("invalid-namespace")
    if (root.localPrefixes or {}).get("stream") != NS_STREAMS:
        raise StreamError("bad-namespace-prefix")
    if root.defaultUri != NS_COMPONENT_ACCEPT:
        raise StreamError("invalid-namespace")
    streamId = root.getAttribute("id")
    if not streamId:
        raise NegotiationError("the server's stream header has no id")
    return str(streamId)


class AcceptInitiatingAuthenticator(ConnectAuthenticator):
    """
    Negotiates one outgoing XEP-0114 component stream.

    The negotiation goes through these stages, in C{_stage}:

      - C{"header"}: our header is sent, waiting for the server's;
      - C{"no-id"}: the server's header had no id, so no handshake can be
        sent; waiting at most C{closeTimeout} seconds for the stream error
        a refusing server sends after such a header (Prosody does for an
        unknown hostname), which is then the reason negotiation fails;
      - C{"handshake"}: our C{<handshake/>} is sent, waiting for the
        server's;
      - C{"complete"}: the server accepted us; elements are no longer
        intercepted, and L{STREAM_AUTHD_EVENT} was dispatched;
      - C{"failed"}: negotiation failed; elements that arrive while the
        stream closes are dropped.

    @ivar policy: the L{AcceptInitiatingPolicy}.
    @ivar negotiated: a L{Deferred} that fires with a L{NegotiationResult}
        (mechanism C{"handshake"}, no TLS) once the server accepted the
        handshake, or fails with why it did not: the L{StreamError} the
        server sent (C{not-authorized}, C{conflict}, C{host-unknown}...), a
        L{NegotiationError} (bad header, timeout, unexpected element), or
        the reason the connection was lost.
    @ivar _reactor: schedules the negotiation timeout.
    @ivar _stage: see above.
    @ivar _timeout: the pending negotiation timeout, or L{None}.
    @ivar _started: when the connection was made, in reactor seconds.
    @ivar _noIdError: why negotiation fails if no stream error follows a
        header without id.
    """

    namespace = NS_COMPONENT_ACCEPT

    #: The stream, from L{associateWithStream} on (Twisted's base class
    #: starts it as C{None}; nothing here runs before it is associated).
    xmlstream: NegotiatingXmlStream

    def __init__(self, policy: AcceptInitiatingPolicy, reactor: IReactorTime) -> None:
        """
        @param policy: the hostname, secret and limits.
        @param reactor: schedules the negotiation timeout.
        """
        super().__init__(policy.hostname)
        self.policy = policy
        self.negotiated: defer.Deferred[NegotiationResult] = defer.Deferred()
        self._reactor = reactor
        self._stage = "header"
        self._timeout: IDelayedCall | None = None
        self._started = 0.0
        self._noIdError = NegotiationError("the server's stream header has no id")

    def associateWithStream(self, xs: NegotiatingXmlStream) -> None:
        """
        Also observe stream errors and the end of the stream, which fail
        the negotiation.
        """
        super().associateWithStream(xs)
        xs.addObserver(STREAM_ERROR_EVENT, self._onStreamError)
        xs.addObserver(STREAM_END_EVENT, self._onStreamEnd)

    def connectionMade(self) -> None:
        """
        Start the negotiation timeout and send our header: to our hostname,
        in C{jabber:component:accept}, without C{from} or version.
        """
        xs = self.xmlstream
        xs.namespace = NS_COMPONENT_ACCEPT
        xs.version = (0, 0)
        xs.prefixes = {NS_STREAMS: "stream"}
        xs.otherEntity = jid.JID(tuple=(None, self.policy.hostname, None))
        xs.thisEntity = None
        self._started = self._reactor.seconds()
        self._timeout = self._reactor.callLater(
            self.policy.negotiationTimeout, self._negotiationTimedOut
        )
        xs.sendHeader()

    def streamStarted(self, rootElement: domish.Element) -> None:
        """
        Check the server's header and send the handshake for its id.
        """
        xs = self.xmlstream
        if self._stage != "header":
            return
        try:
            streamId = checkServerHeader(rootElement)
        except StreamError as e:
            self._fail(
                NegotiationError(
                    "%s sent a bad stream header: %s" % (peerOf(xs, "the server"), e.condition)
                )
            )
            xs.sendStreamError(e)
            return
        except NegotiationError as e:
            # A server refusing the stream (host-unknown) may send a header
            # without id and then the stream error: wait a little for it.
            self._stage = "no-id"
            self._noIdError = e
            self._cancelTimeout()
            self._timeout = self._reactor.callLater(
                self.policy.closeTimeout, self._noIdTimedOut
            )
            return
        xs.sid = streamId
        xs.thisEntity = jid.JID(tuple=(None, self.policy.hostname, None))
        handshake = domish.Element(HANDSHAKE)
        handshake.addContent(handshakeDigest(streamId, self.policy.secret))
        self._stage = "handshake"
        xs.send(handshake)

    def interceptElement(self, element: domish.Element) -> bool:
        """
        Handle a first-level element received before negotiation completed:
        the server's C{<handshake/>} completes it; anything else fails it.

        @return: C{True} if negotiation consumed the element.
        """
        if self._stage == "complete":
            return False
        if self._stage == "failed":
            return True
        if self._stage == "no-id":
            self._fail(self._noIdError)
            self.xmlstream.closeStream()
            return True
        if self._stage == "handshake" and (element.uri, element.name) == HANDSHAKE:
            self._complete()
            return True
        self._fail(
            NegotiationError(
                "unexpected {%s}%s from %s before the handshake was accepted"
                % (element.uri, element.name, peerOf(self.xmlstream, "the server"))
            )
        )
        self.xmlstream.sendStreamError(StreamError("unsupported-stanza-type"))
        return True

    def _complete(self) -> None:
        """
        The server accepted the handshake.
        """
        self._stage = "complete"
        self._cancelTimeout()
        xs = self.xmlstream
        xs.negotiated = True
        result = NegotiationResult(
            identity=self.policy.hostname,
            mechanism=HANDSHAKE_MECHANISM,
            tlsVersion=None,
            streamId=xs.sid,
            elapsed=self._reactor.seconds() - self._started,
        )
        log.info(
            "component {hostname} accepted by {peer} in {ms:.1f} ms",
            hostname=self.policy.hostname,
            peer=peerOf(xs, "the server"),
            ms=result.elapsed * 1000,
        )
        xs.dispatch(xs, STREAM_AUTHD_EVENT)
        self.negotiated.callback(result)

    def _fail(self, reason: Exception | Failure) -> None:
        """
        Fail the negotiation, once: log why, dispatch L{INIT_FAILED_EVENT}
        and fail L{negotiated}.
        """
        self._cancelTimeout()
        if self._stage in ("complete", "failed"):
            return
        self._stage = "failed"
        failure = reason if isinstance(reason, Failure) else Failure(reason)
        if isinstance(failure.value, StreamError):
            why = "stream error %s" % (failure.value.condition,)
        else:
            why = failure.getErrorMessage()
        log.info(
            "component {hostname} not accepted by {peer}: {reason}",
            hostname=self.policy.hostname,
            peer=peerOf(self.xmlstream, "the server"),
            reason=why,
        )
        self.xmlstream.dispatch(failure, INIT_FAILED_EVENT)
        self.negotiated.errback(failure)

    def _noIdTimedOut(self) -> None:
        """
        No stream error followed a header without id.
        """
        self._timeout = None
        self._fail(self._noIdError)
        self.xmlstream.closeStream()

    def _negotiationTimedOut(self) -> None:
        self._timeout = None
        self._fail(
            NegotiationError(
                "%s did not accept component %s within %g seconds"
                % (
                    peerOf(self.xmlstream, "the server"),
                    self.policy.hostname,
                    self.policy.negotiationTimeout,
                )
            )
        )
        self.xmlstream.closeStream()

    def _cancelTimeout(self) -> None:
        if self._timeout is not None:
            if self._timeout.active():
                self._timeout.cancel()
            self._timeout = None

    def _onStreamError(self, failure: Failure) -> None:
        """
        A stream error, received or sent, ends the negotiation.
        """
        self._fail(failure)

    def _onStreamEnd(self, reason: Failure) -> None:
        """
        The connection was lost before negotiation completed.
        """
        if self._stage == "no-id":
            self._fail(self._noIdError)
        else:
            self._fail(reason)



class AcceptInitiatingFactory(NegotiatingFactory):
    """
    Builds the negotiating stream of one outgoing XEP-0114 connection, for
    an L{AcceptInitiatingPolicy}; use with an endpoint
    (C{endpoint.connect(factory)}).
    """

    def makeAuthenticator(self) -> AcceptInitiatingAuthenticator:
        return AcceptInitiatingAuthenticator(self.policy, self.reactor)


def negotiateAccept(
    endpoint: Any,
    policy: AcceptInitiatingPolicy,
    reactor: IReactorTime | None = None,
) -> defer.Deferred[tuple[NegotiatingXmlStream, NegotiationResult]]:
    """
    Connect to C{endpoint} and negotiate a XEP-0114 stream.

    @param endpoint: an L{twisted.internet.interfaces.IStreamClientEndpoint}
        to the server's component port.
    @param policy: the hostname, secret and limits.
    @param reactor: schedules timers; the global reactor if L{None}.
    @return: a L{Deferred} firing with C{(xmlstream, result)} once the
        server accepted the handshake, or failing with why it did not.
    """
    factory = AcceptInitiatingFactory(policy, reactor)
    d = endpoint.connect(factory)

    def connected(
        xs: NegotiatingXmlStream,
    ) -> defer.Deferred[tuple[NegotiatingXmlStream, NegotiationResult]]:
        negotiated: defer.Deferred[NegotiationResult] = xs.authenticator.negotiated
        return negotiated.addCallback(lambda result: (xs, result))

    return d.addCallback(connected)
