# -*- test-case-name: tests.test_stream_accept_initiating,tests.test_stream_machines_accept -*-
"""
The initiating (component) side of a XEP-0114 connection
(C{jabber:component:accept}), to the servers people already run: Prosody,
ejabberd, Openfire.

The component opens a stream to its own hostname, without version; the
server answers with a stream id; the component proves it knows the shared
secret with C{<handshake>hex(SHA-1(id + secret))</handshake>}; an empty
C{<handshake/>} back completes the negotiation, and a stream error
(C{not-authorized}, C{conflict}, C{host-unknown}...) refuses it.

The negotiation is L{AcceptInitiatingMachine}, a pure machine with an
explicit transition table (see L{xmppcomp.stream.machine}) built on
L{checkServerHeader} here and L{xmppcomp.stream.handshake.handshakeDigest};
L{AcceptInitiatingAuthenticator} carries it out on a L{NegotiatingXmlStream}
through the one adapter (L{xmppcomp.stream.adapter.NegotiationAdapter}),
with the same shape as L{xmppcomp.stream.initiating} has for XEP-0225: a
C{negotiated} L{Deferred} firing with a L{NegotiationResult}.
"""

from __future__ import annotations

from typing import TypeVar

import attrs
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.python.failure import Failure
from twisted.words.protocols.jabber.error import StreamError
from twisted.words.xish import domish

from xmppcomp.errors import NegotiationError
from xmppcomp.logs import Logger
from xmppcomp.ns import NS_COMPONENT_ACCEPT
from xmppcomp.stream.adapter import InitiatingAdapter, connectAndNegotiate
from xmppcomp.stream.handshake import handshakeDigest, normaliseHostname
from xmppcomp.stream.header import checkStreamRoot
from xmppcomp.stream.initiating import NegotiationResult
from xmppcomp.stream.machine import (
    ANY,
    InitiatingSide,
    NegotiationIO,
    OurHeader,
    Table,
    rows,
)
from xmppcomp.stream.negotiating import NegotiatingFactory, NegotiatingXmlStream
from xmppcomp.stream.xmlstream import DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_STANZA_SIZE

__all__ = [
    "HANDSHAKE_MECHANISM",
    "AcceptInitiatingAuthenticator",
    "AcceptInitiatingFactory",
    "AcceptInitiatingMachine",
    "AcceptInitiatingPolicy",
    "checkServerHeader",
    "negotiateAccept",
]

log = Logger()

#: The C{mechanism} of the L{NegotiationResult} of a XEP-0114 stream.
HANDSHAKE_MECHANISM = "handshake"

#: The handshake element (XEP-0114 section 3).
HANDSHAKE = (NS_COMPONENT_ACCEPT, "handshake")


_Number = TypeVar("_Number", int, float)


def _positive(instance: object, attribute: attrs.Attribute[_Number], value: _Number) -> None:
    if not value > 0:
        raise ValueError("%s must be positive" % (attribute.name,))


def _domain(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or normaliseHostname(value) is None:
        raise ValueError("%s must be a domain name, not %r" % (attribute.name, value))


def _secret(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
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
    checkStreamRoot(root, NS_COMPONENT_ACCEPT)
    streamId = root.getAttribute("id")
    if not streamId:
        raise NegotiationError("the server's stream header has no id")
    return str(streamId)


class AcceptInitiatingMachine(InitiatingSide):
    """
    Negotiates one outgoing XEP-0114 component stream: a pure machine that
    follows L{table}.

    Its states:

      - C{"header"}: our header is sent, waiting for the server's;
      - C{"no-id"}: the server's header had no id, so no handshake can be
        sent; waiting at most C{closeTimeout} seconds for the stream error
        a refusing server sends after such a header (Prosody does for an
        unknown hostname), which is then the reason negotiation fails;
      - C{"handshake"}: our C{<handshake/>} is sent, waiting for the
        server's;
      - C{"complete"}: the server accepted us; elements are no longer
        consumed, and the L{NegotiationResult} was reported;
      - C{"failed"}: negotiation failed (and was reported, once);
        elements that arrive while the stream closes are dropped.

    @ivar hostname: the component's hostname.
    @ivar secret: the shared secret; never logged.
    @ivar closeTimeout: how long to wait for a stream error after a header
        without id.
    @ivar streamId: the server's stream id, once its header arrived.
    @ivar noIdError: why negotiation fails if no stream error follows a
        header without id.
    """

    table = Table(
        name="accept-initiating",
        initial="header",
        states=("header", "no-id", "handshake", "complete", "failed"),
        rows=rows(
            ("header", "connected", "begin", ()),
            ("header", "header", "answer", ("handshake", "no-id", "failed")),
            ("handshake", "element", "check", ("complete", "failed")),
            ("no-id", "element", "giveUp", "failed"),
            ("complete", "element", "passOn", ()),
            ("failed", "element", "consume", ()),
            (("header", "handshake"), "timedOut", "expire", "failed"),
            ("no-id", "timedOut", "giveUp", "failed"),
            (("header", "handshake"), "ended", "lost", "failed"),
            ("no-id", "ended", "lostWithoutId", "failed"),
            (("complete", "failed"), "ended", "ignore", ()),
            (ANY, "tlsDone", "ignore", ()),
        ),
    )

    def __init__(
        self,
        io: NegotiationIO,
        hostname: str,
        secret: str,
        negotiationTimeout: float,
        closeTimeout: float,
    ) -> None:
        super().__init__(io, negotiationTimeout)
        self.hostname = hostname
        self.secret = secret
        self.closeTimeout = closeTimeout
        self.streamId: str | None = None
        self.noIdError = NegotiationError("the server's stream header has no id")

    # Behaviours.

    def begin(self) -> None:
        """
        (C{connected}.) Start the negotiation timeout and send our header:
        to our hostname, in C{jabber:component:accept}, without C{from} or
        version.
        """
        self.started = self.io.now()
        self.io.startTimer(self.negotiationTimeout)
        self.io.sendHeader(OurHeader(NS_COMPONENT_ACCEPT, (0, 0), theirs=self.hostname))

    def answer(self, root: domish.Element) -> str:
        """
        (C{header}.) Check the server's header and send the handshake for
        its id. A bad header fails negotiation and is answered with the
        stream error; a header without id waits for the stream error that
        may follow it.
        """
        try:
            streamId = checkServerHeader(root)
        except StreamError as e:
            state = self.fail(
                NegotiationError("%s sent a bad stream header: %s" % (self.io.peer(), e.condition))
            )
            self.io.refuse(e.condition, None)
            return state
        except NegotiationError as e:
            self.noIdError = e
            self.io.startTimer(self.closeTimeout)
            return "no-id"
        self.streamId = streamId
        self.io.describe(
            OurHeader(
                NS_COMPONENT_ACCEPT, (0, 0), ours=self.hostname, theirs=self.hostname, id=streamId
            )
        )
        handshake = domish.Element(HANDSHAKE)
        handshake.addContent(handshakeDigest(streamId, self.secret))
        self.io.send(handshake)
        return "handshake"

    def check(self, element: domish.Element) -> tuple[str, bool]:
        """
        (C{element}, waiting for the server's handshake.) The server's
        C{<handshake/>} completes negotiation; anything else fails it, with
        C{unsupported-stanza-type}.
        """
        if (element.uri, element.name) == HANDSHAKE:
            return self.complete(), True
        state = self.fail(
            NegotiationError(
                "unexpected {%s}%s from %s before the handshake was accepted"
                % (element.uri, element.name, self.io.peer())
            )
        )
        self.io.refuse("unsupported-stanza-type", None)
        return state, True

    def giveUp(self, element: domish.Element | None = None) -> tuple[str, bool]:
        """
        (C{element} or C{timedOut}, after a header without id.) No stream
        error came: fail with why no handshake could be sent, and close.
        """
        return self.failAndClose(self.noIdError), True

    def expire(self) -> str:
        """
        (C{timedOut}.) The server did not accept us in time: fail, and
        close.
        """
        return self.failAndClose(
            NegotiationError(
                "%s did not accept component %s within %g seconds"
                % (self.io.peer(), self.hostname, self.negotiationTimeout)
            )
        )

    def lostWithoutId(self, reason: object) -> str:
        """
        (C{ended}, after a header without id.) A stream error is why
        negotiation failed; a lost connection is not, the missing id is.
        """
        if isinstance(reason, Failure) and reason.check(StreamError):
            return self.fail(reason)
        return self.fail(self.noIdError)

    # Helpers.

    def complete(self) -> str:
        """
        The server accepted the handshake: report the result.

        @return: C{"complete"}, the next state.
        """
        # What succeeded() sets off sees the new state.
        self.state = "complete"
        self.io.cancelTimer()
        result = NegotiationResult(
            identity=self.hostname,
            mechanism=HANDSHAKE_MECHANISM,
            tlsVersion=None,
            streamId=self.streamId,
            elapsed=self.io.now() - self.started,
        )
        log.info(
            "component {hostname} accepted by {peer} in {ms:.1f} ms",
            hostname=self.hostname,
            peer=self.io.peer(),
            ms=result.elapsed * 1000,
        )
        self.io.succeeded(result)
        return "complete"

    def describeFailure(self, reason: Exception | Failure) -> None:
        failure = reason if isinstance(reason, Failure) else Failure(reason)
        if isinstance(failure.value, StreamError):
            why = "stream error %s" % (failure.value.condition,)
        else:
            why = failure.getErrorMessage()
        log.info(
            "component {hostname} not accepted by {peer}: {reason}",
            hostname=self.hostname,
            peer=self.io.peer(),
            reason=why,
        )


class AcceptInitiatingAuthenticator(InitiatingAdapter[AcceptInitiatingMachine]):
    """
    Negotiates one outgoing XEP-0114 component stream: carries an
    L{AcceptInitiatingMachine} out on the stream.

    @ivar policy: the L{AcceptInitiatingPolicy}.
    @ivar negotiated: a L{Deferred} that fires with a L{NegotiationResult}
        (mechanism C{"handshake"}, no TLS) once the server accepted the
        handshake, or fails with why it did not: the L{StreamError} the
        server sent (C{not-authorized}, C{conflict}, C{host-unknown}...), a
        L{NegotiationError} (bad header, timeout, unexpected element), or
        the reason the connection was lost.
    """

    namespace = NS_COMPONENT_ACCEPT
    policy: AcceptInitiatingPolicy

    def makeMachine(self) -> AcceptInitiatingMachine:
        policy: AcceptInitiatingPolicy = self.policy
        return AcceptInitiatingMachine(
            self, policy.hostname, policy.secret, policy.negotiationTimeout, policy.closeTimeout
        )


class AcceptInitiatingFactory(NegotiatingFactory):
    """
    Builds the negotiating stream of one outgoing XEP-0114 connection, for
    an L{AcceptInitiatingPolicy}; use with an endpoint
    (C{endpoint.connect(factory)}).
    """

    authenticatorType = AcceptInitiatingAuthenticator


def negotiateAccept(
    endpoint: IStreamClientEndpoint,
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
    return connectAndNegotiate(endpoint, AcceptInitiatingFactory(policy, reactor))
