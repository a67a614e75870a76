# -*- test-case-name: tests.test_httpauth_xmpp -*-
"""
The XMPP side of XEP-0070: L{ConfirmationRequester} asks a JID to confirm
an HTTP request, L{ConfirmationResponder} answers such questions through a
policy callback.

Both are thin wokkel handlers around the pure logic in
L{xmppcomp.httpauth._protocol}.
"""

from __future__ import annotations

import secrets
from functools import partial
from collections.abc import Callable
from typing import Union

import attrs
from prometheus_client import Counter, Gauge, Histogram
from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import jid
from twisted.words.protocols.jabber.error import STANZA_CONDITIONS, StanzaError
from twisted.words.protocols.jabber.xmlstream import toResponse
from twisted.words.xish import domish
from wokkel.subprotocols import XMPPHandler
from zope.interface import implementer

from xmppcomp.errors import UnserializableElement
from xmppcomp.iqtracker import RequestTracker
from xmppcomp.httpauth._errors import (
    DEFAULT_UNAVAILABLE_RETRY_AFTER,
    ConfirmationFailed,
    ConfirmationTimeout,
    ConfirmerUnavailable,
    CouldNotAsk,
    EndToEndRequired,
)
from xmppcomp.logs import Logger
from xmppcomp.metrics import Metrics, NoCount
from xmppcomp.httpauth._protocol import (
    Answer,
    ConfirmRequest,
    MalformedConfirm,
    Outcome,
    outcomeOfIQError,
    classifyMessageReply,
    confirmationIQ,
    confirmationMessage,
    errorCondition,
    findConfirm,
    stanzaChildren,
)
from xmppcomp.httpauth._store import INSTANCE_ID_BYTES, IConfirmationStore
from xmppcomp.jids import JIDCache
from xmppcomp.ns import NS_HTTP_AUTH
from xmppcomp.stream.parser import StanzaParser
from xmppcomp.xtls import (
    CertificateMismatch,
    HandshakeFailed,
    ITunnelObserver,
    Tunnel,
    XTLSError,
    XTLSHandler,
    checkPeerCertificate,
)

#: Default seconds to wait for an answer.
DEFAULT_TIMEOUT = 120.0

#: Default seconds a tunnel a requester opened stays open without a
#: confirmation in it.
DEFAULT_TUNNEL_IDLE_TIMEOUT = 60.0

_CONFIRM = f"/confirm[@xmlns='{NS_HTTP_AUTH}']"

#: The stanza error conditions named in the reason of a L{CouldNotAsk}:
#: Twisted's (RFC 3920's) and RFC 6120's C{policy-violation}; any other
#: name a peer sends is not repeated to the HTTP client.
_CONDITIONS = frozenset(STANZA_CONDITIONS) | {"policy-violation"}

#: The C{outcome} labels of C{xmppcomp_httpauth_confirmations_total}.
_OUTCOMES = ("allow", "deny", "undeliverable", "timeout", "unavailable")


def _outcomeLabel(result: Answer | Failure) -> str | None:
    """
    The C{outcome} label of how a confirmation ended, or C{None} for an
    ending that is not counted (the HTTP client went away and the
    confirmation was cancelled).
    """
    if isinstance(result, Answer):
        return result.outcome.value
    if result.check(CouldNotAsk):
        return "undeliverable"
    if result.check(ConfirmationTimeout):
        return "timeout"
    if result.check(ConfirmerUnavailable):
        return "unavailable"
    return None


def randomKey() -> str:
    """
    A random, unguessable stanza id or thread (160 bits, hex).
    """
    return secrets.token_hex(20)


def ownedKey(instanceId: str) -> str:
    """
    A random stanza id or thread (L{randomKey}) that names the instance
    that asks: C{INSTANCE-RANDOM}, so that an answer reaching another
    instance can be relayed to it (L{ownerOfKey}).
    """
    return f"{instanceId}-{randomKey()}"


_HEX = frozenset("0123456789abcdef")


def ownerOfKey(key: str) -> str | None:
    """
    The instance id in a key made by L{ownedKey}, or C{None} for any other
    string.
    """
    owner, dash, rest = key.partition("-")
    if (
        not dash
        or len(owner) != 2 * INSTANCE_ID_BYTES
        or len(rest) != 40
        or not _HEX.issuperset(owner)
        or not _HEX.issuperset(rest)
    ):
        return None
    return owner


@attrs.define
class _Pending:
    """
    One confirmation being asked.

    @ivar who: the JID asked (full for the IQ and XTLS forms, else as given).
    @ivar request: what is asked.
    @ivar form: C{"iq"}, C{"message"} or C{"xtls"} (an IQ inside an XTLS
        tunnel, answered only through it).
    @ivar key: the random stanza id (and thread, for a message).
    @ivar deferred: fires with the L{Answer}.
    @ivar started: when it was asked (the requester's clock, in seconds).
    @ivar counted: whether it counts in the pending confirmations gauge.
    """

    who: jid.JID
    request: ConfirmRequest
    form: str
    key: str
    started: float = 0.0
    counted: bool = False
    tunnel: Tunnel | None = None
    # Set right after: its canceller needs the entry.
    deferred: Deferred[Answer] = attrs.field(init=False)


class ConfirmationRequester(XMPPHandler):
    """
    Ask JIDs to confirm HTTP requests (XEP-0070 section 4.5).

    A full JID gets an IQ get; if it answers C{feature-not-implemented} or
    C{service-unavailable}, that same full JID gets the message form
    (XEP-0070 section 4.5). A bare JID gets the message form: a thread, a body saying what to answer and when
    the request expires, the C{<confirm/>} element and XEP-0334 no-store
    hints. Replies are matched on a random id (stanza id or thread) I{and}
    on the sender: an IQ result only from the full JID asked, errors also
    from its bare JID or domain; a message from the JID asked or, unless
    C{exactResource}, another resource of its account. The answer says who
    gave it (L{Answer.by}), and that JID is reported as the confirmer.

    Outcomes: a result, the echoed C{<confirm/>} or an affirmative text
    allow; C{not-authorized} or a "no" text deny; any other error (a
    bounce: offline, unknown account or domain; a server error; the
    message form bouncing after a fallback) fails with L{CouldNotAsk}, and
    so does a request the stream refuses to send
    (L{xmppcomp.errors.UnserializableElement}), which is forgotten while
    the rest goes on.

    Metrics (in the L{Metrics} given, if any): each confirmation asked
    counts once in
    C{xmppcomp_httpauth_confirmations_total} by outcome (C{allow},
    C{deny}, C{undeliverable}, C{timeout}, C{unavailable}; one cancelled
    because the HTTP client went away is not counted), and the seconds to
    an answer (allow or deny) go to
    C{xmppcomp_httpauth_confirmation_seconds}, measured on the requester's
    clock; a plaintext answer refused for a confirmation asked through XTLS
    counts in C{xmppcomp_httpauth_plaintext_answers_refused_total}.

    @ivar fromJid: the address confirmations are sent from (the
        component's hostname).
    @ivar timeout: seconds to wait for an answer.
    @ivar unavailableRetryAfter: seconds in the C{Retry-After} of a
        L{ConfirmerUnavailable}.
    @ivar exactResource: whether a full JID asked must answer from that
        very resource (another resource's answer to the message form is
        then ignored); off by default.
    @ivar metrics: where it counts (and the confirmer that asks through
        it, L{xmppcomp.httpauth._checker.Requester.metrics}), or C{None}.
    @ivar jids: the parsed JIDs of the answers (shared with its request
        tracker).
    @ivar _counted: the outcome counters, bound once.
    @ivar _clock: schedules timeouts; its C{seconds()} is also the POSIX
        time the message form says the request expires at.
    @ivar _makeKey: makes random ids.
    @ivar _pending: random id to pending confirmation, oldest first.
    @ivar _sweep: the one timer for all timeouts: due when the oldest
        pending confirmation times out (a timer per confirmation cost
        ~300 bytes each, tracemalloc of bench/confirmer.py).
    @ivar _initialized: whether the stream is up.
    @ivar xtls: the XTLS endpoint that end-to-end confirmations go through
        (L{confirm} with C{endToEnd}), or C{None}: such confirmations then
        fail with L{EndToEndRequired}.
    @ivar tunnelIdleTimeout: seconds a tunnel this requester opened stays
        open with no confirmation in it (for the user's next one), before
        it is closed; tunnels count against the XTLS endpoint's limits.
    @ivar relay: the store that passes answers between the instances of a
        confirmer (L{IConfirmationStore.relay}), or C{None} for one alone.
        With it, ids and threads name this instance (L{ownedKey}); an
        answer for another instance's confirmation is relayed to that
        instance, which matches it exactly as if it had received it (on
        the random id I{and} the sender), and an answer relayed here is
        matched the same way. An answer for an instance that is gone is
        dropped and logged.
    """

    _log = Logger()

    #: The largest relayed answer taken, in bytes.
    maxRelayedSize = 64 * 1024

    def __init__(
        self,
        fromJid: jid.JID,
        clock: IReactorTime,
        timeout: float = DEFAULT_TIMEOUT,
        makeKey: Callable[[], str] = randomKey,
        unavailableRetryAfter: int = DEFAULT_UNAVAILABLE_RETRY_AFTER,
        exactResource: bool = False,
        metrics: Metrics | None = None,
        jids: JIDCache | None = None,
        relay: IConfirmationStore | None = None,
        xtls: XTLSHandler | None = None,
        tunnelIdleTimeout: float = DEFAULT_TUNNEL_IDLE_TIMEOUT,
    ) -> None:
        """
        @param metrics: where to count; nowhere without it.
        @param jids: the parsed JIDs to share (its owner's); its own
            without it.
        @param relay: see L{relay}; ids name its instance unless
            C{makeKey} is given.
        """
        super().__init__()
        self.relay = relay
        if relay is not None:
            relay.listen(self._relayed, self._relayLost)
            if makeKey is randomKey:
                instanceId: str = relay.instanceId
                makeKey = partial(ownedKey, instanceId)
        self.metrics = metrics
        self.jids = JIDCache() if jids is None else jids
        self._counted: dict[str, Counter | NoCount] = {
            outcome: NoCount() if metrics is None else metrics.confirmations.labels(outcome)
            for outcome in _OUTCOMES
        }
        self._pendingGauge: Gauge | NoCount = NoCount() if metrics is None else metrics.pendingConfirmations
        self._seconds: Histogram | NoCount = NoCount() if metrics is None else metrics.confirmationSeconds
        self._plaintextRefused: Counter | NoCount = (
            NoCount() if metrics is None else metrics.plaintextAnswersRefused
        )
        self.exactResource = exactResource
        self.fromJid = fromJid
        self.timeout = timeout
        self.unavailableRetryAfter = unavailableRetryAfter
        self._clock = clock
        self._makeKey = makeKey
        self._pending: dict[str, _Pending] = {}
        self._sweep: IDelayedCall | None = None
        self._onCancel = self._cancelled  # bound once, not per confirmation
        self._onIQResult = self._iqResult
        self._onIQError = self._iqError
        self._initialized = False
        # The IQ form's answers: matched on the random id and the sender
        # (a result only from the full JID asked, an error also from its
        # bare JID or domain); the timeouts stay this requester's one sweep.
        self._requests = self._newTracker()
        # The XTLS form's answers: only what arrives through the tunnel.
        self._tunnelRequests = self._newTracker()
        self.xtls = xtls
        #: Full JID to the confirmations waiting for a tunnel to open to it.
        self._opening: dict[str, list[_Pending]] = {}
        self.tunnelIdleTimeout = tunnelIdleTimeout
        #: The tunnels this requester opened, to how many confirmations
        #: wait in each, and the timers closing those with none.
        self._ownTunnels: dict[Tunnel, int] = {}
        self._idleTimers: dict[Tunnel, IDelayedCall] = {}
        if xtls is not None:
            xtls.addObserver(_TunnelWatch(self))

    def _newTracker(self) -> RequestTracker:
        return RequestTracker(requester="httpauth", metrics=self.metrics, jids=self.jids)

    def connectionInitialized(self) -> None:
        """
        Watch IQ replies and messages, ahead of other handlers.
        """
        self._initialized = True
        xs = self.xmlstream
        plain = self.relay is None and self.xtls is None
        answers = self._requests.receive if plain else self._onIQAnswer
        xs.addObserver('/iq[@type="result"]', answers, priority=1)
        xs.addObserver('/iq[@type="error"]', answers, priority=1)
        xs.addObserver("/message", self._onMessage, priority=1)

    def connectionLost(self, reason: Failure) -> None:
        """
        Answers cannot arrive any more: fail every pending confirmation with
        L{ConfirmerUnavailable}.
        """
        self._initialized = False
        super().connectionLost(reason)
        self._requests = self._newTracker()
        self._tunnelRequests = self._newTracker()
        self._opening = {}
        self._ownTunnels = {}
        timers, self._idleTimers = self._idleTimers, {}
        for timer in timers.values():
            if timer.active():
                timer.cancel()
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            self._fail(
                entry,
                ConfirmerUnavailable(
                    "the connection to the XMPP server was lost before "
                    f"{entry.who.full()} answered",
                    self.unavailableRetryAfter,
                ),
            )

    @property
    def pendingCount(self) -> int:
        """
        How many confirmations are waiting for an answer.
        """
        return len(self._pending)

    def confirm(
        self, who: jid.JID, request: ConfirmRequest, endToEnd: bool = False
    ) -> Deferred[Answer]:
        """
        Ask C{who} to confirm C{request}.

        With C{endToEnd}, the request goes as an IQ inside an XTLS tunnel
        to C{who} (a full JID), opened for it unless one is open (L{xtls}),
        and only an answer that arrives through that tunnel counts: a
        plaintext one, however right it looks, is refused and logged (the
        server could have forged it). No tunnel (a bare JID, a client
        without XTLS, a certificate refused, the tunnel closing before the
        answer) fails with L{EndToEndRequired}, which says why.

        @return: a L{Deferred} firing with an L{Answer} (L{Outcome.ALLOW}
            or L{Outcome.DENY}, and who answered), or failing with
            L{CouldNotAsk} when the
            request bounced or could not be sent, with
            L{ConfirmationTimeout} when no answer comes within L{timeout}
            seconds, or with L{ConfirmerUnavailable} when the stream is
            down. Cancelling it forgets the confirmation.
        """
        if not self._initialized or self.xmlstream is None:
            self._counted["unavailable"].inc()
            return fail(
                ConfirmerUnavailable(
                    "the component is not connected to its XMPP server",
                    self.unavailableRetryAfter,
                )
            )
        if endToEnd:
            refused = self._cannotTunnel(who)
            if refused is not None:
                self._counted["undeliverable"].inc()
                return fail(refused)
            form = "xtls"
        else:
            form = "iq" if who.resource else "message"
        entry = _Pending(who, request, form, self._makeKey(), self._clock.seconds())
        # A partial rather than a closure: fewer objects per pending
        # confirmation.
        entry.deferred = Deferred(partial(self._onCancel, entry))
        self._pendingGauge.inc()
        entry.counted = True
        self._send(entry)
        self._scheduleSweep()
        return entry.deferred

    def _scheduleSweep(self) -> None:
        """
        Have L{_sweepExpired} run when the oldest pending confirmation
        times out, unless it is scheduled already.
        """
        if self._sweep is not None or not self._pending:
            return
        oldest = next(iter(self._pending.values()))
        delay = max(0.0, oldest.started + self.timeout - self._clock.seconds())
        self._sweep = self._clock.callLater(delay, self._sweepExpired)

    def _sweepExpired(self) -> None:
        """
        Time out every pending confirmation asked L{timeout} seconds ago or
        more, oldest first, up to the first that is not due. (One that fell
        back to the message form went to the end: it times out with the
        next sweep after its time, that is, at most as much later as it was
        asked before the one then first.)
        """
        self._sweep = None
        now = self._clock.seconds()
        due = []
        for entry in self._pending.values():
            if entry.started + self.timeout > now:
                break
            due.append(entry)
        for entry in due:
            self._timedOut(entry)
        self._scheduleSweep()

    def _send(self, entry: _Pending) -> None:
        """
        Send C{entry}'s request in its form. If the stream refuses the
        stanza (L{UnserializableElement}: it would not be well-formed),
        fail this confirmation with L{CouldNotAsk} and forget it.
        """
        self._pending[entry.key] = entry
        if entry.form == "xtls":
            self._sendThroughTunnel(entry)
            return
        if entry.form == "iq":
            stanza = confirmationIQ(self.fromJid, entry.who, entry.key, entry.request)
            # The same two bound methods for every request (the entry is
            # found again by its id): no closure per pending confirmation.
            self._requests.expect(stanza, self._onIQResult, self._onIQError)
        else:
            expiresAt = entry.started + self.timeout
            stanza = confirmationMessage(
                self.fromJid,
                entry.who,
                entry.key,
                entry.request,
                expiresAt,
                expiresAt - self._clock.seconds(),
            )
        try:
            self.send(stanza)
        except UnserializableElement as e:
            self._failLogged(
                entry,
                CouldNotAsk(
                    f"the confirmation request for {entry.who.full()} could "
                    f"not be sent: {e.reason}"
                ),
                LogLevel.warn,
                "The stream refused the XEP-0070 confirmation request for "
                "{who}: {reason}",
                reason=e.reason,
            )

    def _cancelled(self, entry: _Pending, d: Deferred[Answer]) -> None:
        self._forget(entry)

    def _forget(self, entry: _Pending) -> None:
        if entry.counted:
            entry.counted = False
            self._pendingGauge.dec()
        if self._pending.get(entry.key) is entry:
            del self._pending[entry.key]
            if entry.form == "iq":
                self._requests.forget(entry.key)
            elif entry.form == "xtls":
                self._tunnelRequests.forget(entry.key)
        tunnel, entry.tunnel = entry.tunnel, None
        if tunnel is not None and tunnel in self._ownTunnels:
            self._ownTunnels[tunnel] -= 1
            self._closeWhenIdle(tunnel)
        if not self._pending and self._sweep is not None:
            if self._sweep.active():
                self._sweep.cancel()
            self._sweep = None

    def _finish(self, entry: _Pending, result: Answer | Failure) -> None:
        self._forget(entry)
        if not entry.deferred.called:
            counter = self._counted.get(_outcomeLabel(result) or "")
            if counter is not None:
                counter.inc()
            if isinstance(result, Answer):
                self._seconds.observe(self._clock.seconds() - entry.started)
            if isinstance(result, Failure):
                entry.deferred.errback(result)
            else:
                entry.deferred.callback(result)

    def _fail(self, entry: _Pending, reason: Exception) -> None:
        self._finish(entry, Failure(reason))

    def _failLogged(
        self, entry: _Pending, error: Exception, level: LogLevel, text: str, **fields: object
    ) -> None:
        """
        Log C{text} at C{level}, with the JID asked as the field C{who} and
        C{fields}, then end C{entry} with C{error}.
        """
        self._log.emit(level, text, who=entry.who.full(), **fields)
        self._fail(entry, error)

    def _timedOut(self, entry: _Pending) -> None:
        self._failLogged(
            entry,
            ConfirmationTimeout(f"{entry.who.full()} did not confirm within {self.timeout:g} seconds"),
            LogLevel.info,
            "No XEP-0070 answer from {who} within {timeout} seconds",
            timeout=self.timeout,
        )

    def _iqResult(self, iq: domish.Element) -> None:
        """
        The full JID asked answered the IQ form with a result: allowed.
        """
        entry = self._pending.get(iq.getAttribute("id", ""))
        if entry is not None and entry.form == "iq":
            self._finishAnswer(entry, Outcome.ALLOW, iq)

    def _iqError(self, error: object) -> None:
        """
        An error came back for the IQ form, from the JID asked, its bare JID
        or its domain: C{not-authorized} denies, C{feature-not-implemented}
        or C{service-unavailable} falls back to the message form, anything
        else could not be asked.
        """
        if not isinstance(error, StanzaError):
            # The stream went away (connectionLost fails the entries).
            return
        # exceptionFromStanza keeps the error stanza as .stanza, which
        # StanzaError does not declare.
        stanza: domish.Element = error.stanza  # type: ignore[attr-defined]
        entry = self._pending.get(stanza.getAttribute("id", ""))
        if entry is None or entry.form != "iq":
            return
        outcome = outcomeOfIQError(error.condition)
        if outcome is Outcome.FALLBACK:
            self._unregister(entry)
            entry.form = "message"
            entry.key = self._makeKey()
            self._send(entry)
            return
        self._finishAnswer(entry, outcome, stanza)

    def _finishAnswer(
        self, entry: _Pending, outcome: Outcome, reply: domish.Element
    ) -> None:
        """
        End C{entry} with the L{Outcome} of C{reply}: an answer, or
        L{CouldNotAsk} for L{Outcome.UNDELIVERABLE}.
        """
        if outcome is not Outcome.UNDELIVERABLE:
            by = self.jids(reply["from"])  # classified: present and valid
            if by != entry.who:
                self._log.info(
                    "The XEP-0070 request for {asked} was answered by {by} "
                    "({outcome})",
                    asked=entry.who.full(),
                    by=by.full(),
                    outcome=outcome.value,
                )
            self._finish(entry, Answer(outcome, by))
            return
        condition = errorCondition(reply)
        answered = (
            f"an error ({condition})" if condition in _CONDITIONS else "an error"
        )
        self._fail(
            entry,
            CouldNotAsk(
                f"{entry.who.full()} could not be asked: the confirmation "
                f"request came back with {answered}"
            ),
        )

    def _unregister(self, entry: _Pending) -> None:
        self._pending.pop(entry.key, None)

    def _onIQAnswer(self, iq: domish.Element) -> None:
        """
        An IQ result or error: the answer to a question asked through a
        tunnel if it came through one, this instance's answer, or another's
        to relay. A plaintext answer with the id of a question asked
        through a tunnel is refused.
        """
        if getattr(iq, "xtlsEncrypted", False):
            # Only through the tunnel the question went through: an answer
            # through another one leaves the question waiting.
            if self._tunnelAnswer(iq) is not None and self._tunnelRequests.receive(iq):
                return
        elif self._refusedPlaintext(iq, iq.getAttribute("id", "")):
            return
        if not self._requests.receive(iq) and not getattr(iq, "handled", False):
            self._relayAway(iq, iq.getAttribute("id", ""))

    def _refusedPlaintext(self, stanza: domish.Element, key: str) -> bool:
        """
        Refuse C{stanza}, which did not come through a tunnel, if C{key}
        is that of a question asked through one: log it (the XMPP server,
        or someone it lets through, tried to answer for the user) and mark
        it handled; the confirmation goes on waiting for the tunnel.
        """
        entry = self._pending.get(key)
        if entry is None or entry.form != "xtls" or getattr(stanza, "xtlsEncrypted", False):
            return False
        stanza.handled = True  # type: ignore[attr-defined]  # a flag domish.Element does not declare
        self._plaintextRefused.inc()
        self._log.warn(
            "Refused a plaintext answer from {sender} to the XEP-0070 confirmation asked of "
            "{who} through XTLS (only an answer through the tunnel counts; the XMPP server "
            "or a peer tried to answer for the user)",
            sender=stanza.getAttribute("from", "(no sender)"),
            who=entry.who.full(),
        )
        return True

    # XTLS

    def _cannotTunnel(self, who: jid.JID) -> EndToEndRequired | None:
        """
        Why no confirmation can go through a tunnel to C{who}, or C{None}
        when one may.
        """
        if not who.resource:
            return EndToEndRequired(
                "a full JID is needed for this site: it requires an end-to-end confirmation "
                "through XTLS, and a bare JID cannot be tunnelled to"
            )
        if self.xtls is None or not self.xtls.configuration.active:
            return EndToEndRequired(
                "this site requires an end-to-end confirmation through XTLS, and the confirmer "
                "has no working XTLS endpoint"
            )
        return None

    def _sendThroughTunnel(self, entry: _Pending) -> None:
        """
        Ask C{entry} through the open tunnel to its JID, or once one opens.
        """
        xtls = self.xtls
        assert xtls is not None
        tunnel = xtls.tunnelFor(self.fromJid, entry.who)
        if tunnel is not None and tunnel.isOpen:
            self._askInTunnel(entry, tunnel)
            return
        peer = entry.who.full()
        waiting = self._opening.get(peer)
        if waiting is not None:
            waiting.append(entry)
            return
        self._opening[peer] = [entry]
        xtls.open(self.fromJid, entry.who).addCallbacks(
            self._tunnelOpened, self._tunnelFailed, errbackArgs=(entry.who,)
        )

    def _tunnelOpened(self, tunnel: Tunnel) -> None:
        self._ownTunnels.setdefault(tunnel, 0)
        for entry in self._opening.pop(tunnel.peer.full(), []):
            if self._pending.get(entry.key) is entry:
                self._askInTunnel(entry, tunnel)
        self._closeWhenIdle(tunnel)

    def _closeWhenIdle(self, tunnel: Tunnel) -> None:
        """
        Close C{tunnel}, one this requester opened, L{tunnelIdleTimeout}
        seconds from now unless a confirmation uses it meanwhile.
        """
        if self._ownTunnels.get(tunnel) != 0 or tunnel in self._idleTimers or not tunnel.isOpen:
            return
        self._idleTimers[tunnel] = self._clock.callLater(self.tunnelIdleTimeout, self._closeIdle, tunnel)

    def _closeIdle(self, tunnel: Tunnel) -> None:
        del self._idleTimers[tunnel]
        if self._ownTunnels.get(tunnel) == 0:
            self._log.debug(
                "Closing the XTLS tunnel to {peer}: no XEP-0070 confirmation in it for {seconds} seconds",
                peer=tunnel.peer.full(),
                seconds=self.tunnelIdleTimeout,
            )
            tunnel.close()

    def _useTunnel(self, tunnel: Tunnel) -> None:
        """
        A confirmation is asked in C{tunnel}: it is not idle.
        """
        if tunnel in self._ownTunnels:
            self._ownTunnels[tunnel] += 1
            timer = self._idleTimers.pop(tunnel, None)
            if timer is not None and timer.active():
                timer.cancel()

    def _tunnelFailed(self, reason: Failure, who: jid.JID) -> None:
        why = _tunnelProblem(reason)
        for entry in self._opening.pop(who.full(), []):
            if self._pending.get(entry.key) is entry:
                self._log.info(
                    "No XTLS tunnel to {who} for an XEP-0070 confirmation: {why}",
                    who=who.full(),
                    why=why,
                )
                self._fail(
                    entry,
                    EndToEndRequired(
                        "this site requires an end-to-end confirmation through XTLS, and no "
                        f"tunnel to {who.full()} could be opened: {why}"
                    ),
                )

    def _askInTunnel(self, entry: _Pending, tunnel: Tunnel) -> None:
        """
        Check that the tunnel's certificate names C{entry}'s JID, and send
        the question inside it.
        """
        try:
            checkPeerCertificate(tunnel.peerCertificate(), entry.who)
        except CertificateMismatch as e:
            self._fail(entry, EndToEndRequired(
                f"this site requires an end-to-end confirmation through XTLS, and the tunnel's "
                f"certificate does not name {entry.who.full()}: {e}"))
            return
        entry.tunnel = tunnel
        self._useTunnel(tunnel)
        stanza = confirmationIQ(self.fromJid, entry.who, entry.key, entry.request)
        self._tunnelRequests.expect(stanza, self._onTunnelResult, self._onTunnelError)
        try:
            tunnel.send(stanza)
        except (XTLSError, UnserializableElement) as e:
            self._fail(entry, EndToEndRequired(
                f"the confirmation request could not be sent through the XTLS tunnel to "
                f"{entry.who.full()}: {e}"))

    def _tunnelAnswer(self, iq: domish.Element) -> _Pending | None:
        """
        The confirmation C{iq} answers, if it came through the very tunnel
        the question went through (to the JID asked, whose certificate the
        tunnel checked).
        """
        entry = self._tunnelEntry(iq)
        if entry is None or entry.tunnel is None or self.xtls is None:
            return None
        local, peer = getattr(iq, "xtlsLocal", None), getattr(iq, "xtlsPeer", None)
        if peer != entry.who or local is None or self.xtls.tunnelFor(local, peer) is not entry.tunnel:
            return None
        return entry

    # The tunnel tracker is offered only answers that _tunnelAnswer matched
    # (_onIQAnswer): its callbacks need only find the entry again.

    def _tunnelEntry(self, iq: domish.Element) -> _Pending | None:
        entry = self._pending.get(iq.getAttribute("id", ""))
        return entry if entry is not None and entry.form == "xtls" else None

    def _onTunnelResult(self, iq: domish.Element) -> None:
        entry = self._tunnelEntry(iq)
        if entry is not None:
            self._finishAnswer(entry, Outcome.ALLOW, iq)

    def _onTunnelError(self, error: object) -> None:
        if not isinstance(error, StanzaError):
            return
        stanza: domish.Element = error.stanza  # type: ignore[attr-defined]
        entry = self._tunnelEntry(stanza)
        if entry is None:
            return
        outcome = outcomeOfIQError(error.condition)
        if outcome is Outcome.FALLBACK:
            self._fail(entry, EndToEndRequired(
                f"this site requires an end-to-end confirmation through XTLS, and the client of "
                f"{entry.who.full()} does not answer confirmations through XTLS "
                f"({error.condition})"))
            return
        self._finishAnswer(entry, outcome, stanza)

    def _tunnelClosed(self, tunnel: Tunnel, reason: Exception | None) -> None:
        """
        A tunnel closed: the confirmations asked through it can no longer
        be answered.
        """
        self._ownTunnels.pop(tunnel, None)
        timer = self._idleTimers.pop(tunnel, None)
        if timer is not None and timer.active():
            timer.cancel()
        for entry in [e for e in self._pending.values() if e.tunnel is tunnel]:
            why = "closed" if reason is None else f"closed: {reason}"
            self._fail(entry, EndToEndRequired(
                f"the XTLS tunnel to {entry.who.full()} {why} before the answer"))

    def _relayAway(self, stanza: domish.Element, key: str) -> bool:
        """
        Relay C{stanza} to the instance C{key} names, if that is another
        one.
        """
        relay = self.relay
        owner = ownerOfKey(key)
        if relay is None or owner is None or owner == relay.instanceId:
            return False
        stanza.handled = True  # type: ignore[attr-defined]  # a flag domish.Element does not declare
        d = relay.relay(owner, stanza.toXml())
        d.addCallbacks(
            self._relayDone, self._relayFailed, callbackArgs=(owner, key), errbackArgs=(owner, key)
        )
        return True

    def _relayDone(self, delivered: bool, owner: str, key: str) -> None:
        if not delivered:
            self._log.info(
                "An XEP-0070 answer ({key}) for the confirmer instance {owner} arrived here, "
                "but that instance is gone: dropped",
                key=key,
                owner=owner,
            )

    def _relayFailed(self, reason: Failure, owner: str, key: str) -> None:
        self._log.info(
            "An XEP-0070 answer ({key}) for the confirmer instance {owner} could not be "
            "relayed: {reason}",
            key=key,
            owner=owner,
            reason=reason.getErrorMessage(),
        )

    def _relayLost(self, reason: ConfirmationFailed) -> None:
        """
        The store's channel for relayed answers went down: end every
        confirmation waiting here with C{reason} (an answer may have been
        lost on the way, and none could be recorded without the store).
        """
        if self._pending:
            self._log.warn(
                "Ending {count} pending XEP-0070 confirmations: {reason}",
                count=len(self._pending),
                reason=str(reason),
            )
        for entry in list(self._pending.values()):
            self._fail(entry, reason)

    def _relayed(self, text: str) -> None:
        """
        Another instance relayed an answer here: match it as if the stream
        had received it (never relayed on).
        """
        stanza = _parseRelayed(text, self.maxRelayedSize)
        if stanza is None:
            self._log.warn("A relayed XEP-0070 answer is not one stanza; dropped")
            return
        if stanza.name == "iq" and stanza.getAttribute("type") in ("result", "error"):
            matched = self._requests.receive(stanza)
        elif stanza.name == "message":
            matched = self._matchMessage(stanza)
        else:
            matched = False
        if not matched:
            self._log.info(
                "A relayed XEP-0070 answer matches no confirmation waiting here (over, or not "
                "from the JID asked); dropped"
            )

    def _onMessage(self, message: domish.Element) -> None:
        if self._matchMessage(message) or self.relay is None:
            return
        if getattr(message, "handled", False):
            return
        for key in _messageKeys(message):
            if self._relayAway(message, key):
                return

    def _matchMessage(self, message: domish.Element) -> bool:
        """
        Match C{message} with a confirmation asked in the message form.
        """
        for key in _messageKeys(message):
            if self._refusedPlaintext(message, key):
                return True
            entry = self._pending.get(key)
            if entry is None or entry.form != "message":
                continue
            outcome = classifyMessageReply(
                message, entry.key, entry.who, entry.request, self.exactResource
            )
            if outcome is None:
                continue
            message.handled = True  # type: ignore[attr-defined]  # a flag domish.Element does not declare
            self._finishAnswer(entry, outcome, message)
            return True
        return False


@implementer(ITunnelObserver)
@attrs.define
class _TunnelWatch:
    """
    The L{ITunnelObserver<xmppcomp.xtls.ITunnelObserver>} of a
    L{ConfirmationRequester}: tells it when a tunnel closes.
    """

    _requester: ConfirmationRequester

    def tunnelOpened(self, tunnel: object) -> None:
        pass

    def tunnelClosed(self, tunnel: object, reason: Exception | None) -> None:
        if isinstance(tunnel, Tunnel):
            self._requester._tunnelClosed(tunnel, reason)


def _tunnelProblem(reason: Failure) -> str:
    """
    Why a tunnel did not open (C{reason}), for the user's 401 and the log.
    """
    error = reason.value
    if isinstance(error, StanzaError):
        if error.condition in ("feature-not-implemented", "service-unavailable"):
            return f"its client does not do XTLS ({error.condition})"
        text = f": {error.text}" if error.text else ""
        return f"it refused the tunnel ({error.condition}{text})"
    if isinstance(error, CertificateMismatch):
        return f"its certificate was refused: {error}"
    if isinstance(error, HandshakeFailed):
        return f"the TLS handshake failed: {error}"
    return reason.getErrorMessage()


def _messageKeys(message: domish.Element) -> list[str]:
    """
    The keys a message may answer: its threads, and its id if an error.
    """
    keys = [str(thread) for thread in stanzaChildren(message, "thread")]
    if message.getAttribute("type") == "error":
        keys.append(message.getAttribute("id", ""))
    return keys


def _parseRelayed(text: str, maxSize: int) -> domish.Element | None:
    """
    Parse one relayed stanza (restricted XML, at most C{maxSize} bytes), or
    C{None} when it is not exactly one.
    """
    data = text.encode("utf-8")
    if len(data) > maxSize:
        return None
    parser = StanzaParser(maxStanzaSize=maxSize + 64)
    found: list[domish.Element] = []
    parser.ElementEvent = found.append
    try:
        parser.parse(b"<relay xmlns='jabber:component:accept'>" + data + b"</relay>")
    except Exception:
        return None
    return found[0] if len(found) == 1 else None


@attrs.frozen
class IncomingConfirmation:
    """
    A confirmation request received by L{ConfirmationResponder}.

    @ivar sender: who asks (the HTTP server's component).
    @ivar recipient: to whom it was addressed.
    @ivar request: what is to be confirmed.
    @ivar viaMessage: C{True} for the message form, C{False} for IQ.
    @ivar thread: the message's thread, if any.
    @ivar body: the message's human-readable body, if any.
    @ivar tunnelled: whether it came through an XTLS tunnel from
        C{sender} (whose certificate was checked), so that the XMPP
        servers on the way could neither read nor forge it.
    """

    sender: jid.JID
    recipient: jid.JID
    request: ConfirmRequest
    viaMessage: bool
    thread: str | None = None
    body: str | None = None
    tunnelled: bool = False


#: Decides whether to confirm: C{True} confirms, C{False} denies.
ConfirmationPolicy = Callable[[IncomingConfirmation], Union[bool, "Deferred[bool]"]]


def _text(stanza: domish.Element, name: str) -> str | None:
    for child in stanzaChildren(stanza, name):
        return str(child)
    return None


class ConfirmationResponder(XMPPHandler):
    """
    Answer XEP-0070 confirmation requests, IQ and message forms, through a
    policy callback (XEP-0070 section 4.6).

    Confirming answers an IQ with a result and a message with a message of
    type C{normal} mirroring the thread and the C{<confirm/>}; denying
    answers with C{not-authorized}, as an IQ error or a message of type
    C{error} carrying the thread and the C{<confirm/>}. A policy that fails
    makes an C{internal-server-error} over IQ (which the requester takes
    as "could not be asked", consuming nothing) and a denial over message.
    Stanzas another handler marked handled are left alone.

    A request that came through an XTLS tunnel (given the L{XTLSHandler
    <xmppcomp.xtls.XTLSHandler>} that holds it, with this end's own
    certificate) is answered through the same tunnel, never in the clear;
    the policy sees L{IncomingConfirmation.tunnelled}. With
    C{requireXTLS} (for every JID, or those for which it returns C{True}),
    requests that did not come through a tunnel are answered
    C{policy-violation} (the asker cannot confirm through this end, and
    nothing is consumed) without asking the policy.

    @ivar xtls: the XTLS endpoint tunnelled requests arrive through, or
        C{None}: they are then dropped (and logged), since the answer
        would have to go in the clear.
    @ivar requireXTLS: whether only tunnelled requests are answered: for
        every JID addressed, or a callable given the JID addressed.
    @ivar _policy: the callback.
    @ivar _jids: the parsed JIDs of the requests.
    """

    _log = Logger()

    #: The text of the C{policy-violation} refusing a plaintext request
    #: with C{requireXTLS}.
    XTLS_ONLY = "this account confirms only through an XTLS tunnel (urn:xmpp:tmp:xtls)"

    def __init__(
        self,
        policy: ConfirmationPolicy,
        xtls: XTLSHandler | None = None,
        requireXTLS: bool | Callable[[jid.JID], bool] = False,
    ) -> None:
        super().__init__()
        self._policy = policy
        self._jids = JIDCache()
        self.xtls = xtls
        self.requireXTLS = requireXTLS

    def connectionInitialized(self) -> None:
        """
        Watch IQ gets and messages carrying C{<confirm/>}.
        """
        self.xmlstream.addObserver("/iq[@type='get']" + _CONFIRM, self._onIQ)
        self.xmlstream.addObserver("/message" + _CONFIRM, self._onMessage)

    def _ask(self, stanza: domish.Element, viaMessage: bool) -> Deferred[bool] | None:
        confirm = findConfirm(stanza)
        assert confirm is not None
        try:
            request = ConfirmRequest.fromElement(confirm)
            sender = self._jids(stanza["from"])
            recipient = self._jids(stanza["to"])
        except (MalformedConfirm, KeyError, jid.InvalidFormat):
            return None
        incoming = IncomingConfirmation(
            sender,
            recipient,
            request,
            viaMessage,
            _text(stanza, "thread"),
            _text(stanza, "body"),
            bool(getattr(stanza, "xtlsEncrypted", False)),
        )
        # Twisted's overloads of maybeDeferred cannot take a callable that
        # returns either a value or a Deferred of it.
        return maybeDeferred(self._policy, incoming)  # type: ignore[call-overload]

    def _answer(self, request: domish.Element, response: domish.Element) -> None:
        """
        Send C{response} to C{request}: through the tunnel C{request} came
        through (L{XTLSHandler.reply<xmppcomp.xtls.XTLSHandler.reply>}: a
        tunnel that closed meanwhile takes the answer with it, logged), or
        in the clear if it came in the clear.
        """
        if not getattr(request, "xtlsEncrypted", False):
            self.send(response)
        elif self.xtls is not None:
            self.xtls.reply(request, response)

    def _refusedForXTLS(self, stanza: domish.Element) -> bool:
        """
        Whether C{stanza} is a request this responder does not answer: in
        the clear with L{requireXTLS}, or through a tunnel it cannot
        answer through (no L{xtls}).
        """
        if getattr(stanza, "xtlsEncrypted", False):
            if self.xtls is None:
                self._log.warn(
                    "A XEP-0070 request came through an XTLS tunnel, and this responder was "
                    "given no XTLS endpoint to answer through: dropped"
                )
                return True
            return False
        requireXTLS = self.requireXTLS
        if isinstance(requireXTLS, bool):
            return requireXTLS
        try:
            recipient = self._jids(stanza.getAttribute("to", ""))
        except (jid.InvalidFormat, UnicodeError, ValueError):
            return True
        return requireXTLS(recipient)

    def _onIQ(self, iq: domish.Element) -> None:
        if getattr(iq, "handled", False):
            return
        iq.handled = True  # type: ignore[attr-defined]  # a flag domish.Element does not declare
        if self._refusedForXTLS(iq):
            if not getattr(iq, "xtlsEncrypted", False):
                self.send(StanzaError("policy-violation", "auth", self.XTLS_ONLY).toResponse(iq))
            return
        d = self._ask(iq, False)
        if d is None:
            self._answer(iq, StanzaError("bad-request").toResponse(iq))
            return

        def answer(allowed: bool) -> None:
            if allowed:
                self._answer(iq, toResponse(iq, "result"))
            else:
                self._answer(iq, StanzaError("not-authorized", "auth").toResponse(iq))

        def failed(failure: Failure) -> None:
            self._log.failure("XEP-0070 policy failed", failure=failure)
            self._answer(iq, StanzaError("internal-server-error").toResponse(iq))

        d.addCallbacks(answer, failed)

    def _onMessage(self, message: domish.Element) -> None:
        if getattr(message, "handled", False):
            return
        if message.getAttribute("type") == "error":
            return
        message.handled = True  # type: ignore[attr-defined]  # a flag domish.Element does not declare
        if self._refusedForXTLS(message):
            if not getattr(message, "xtlsEncrypted", False):
                refusal = _messageReply(message, StanzaError("policy-violation", "auth", self.XTLS_ONLY))
                if refusal is not None:
                    self.send(refusal)
            return
        d = self._ask(message, True)
        if d is None:
            return

        def reply(allowed: bool) -> None:
            response = _messageReply(
                message, None if allowed else StanzaError("not-authorized", "auth")
            )
            assert response is not None  # _ask parsed the same <confirm/>
            self._answer(message, response)

        def failed(failure: Failure) -> None:
            self._log.failure("XEP-0070 policy failed", failure=failure)
            reply(False)

        d.addCallbacks(reply, failed)


def _messageReply(message: domish.Element, error: StanzaError | None) -> domish.Element | None:
    """
    The reply to the message form of a confirmation request: type
    C{normal} confirming (C{error} is C{None}), or type C{error} with
    C{error}; the thread and the C{<confirm/>} mirrored. C{None} when the
    request's C{<confirm/>} is malformed.
    """
    confirm = findConfirm(message)
    try:
        echoed = None if confirm is None else ConfirmRequest.fromElement(confirm).toElement()
    except MalformedConfirm:
        echoed = None
    if echoed is None:
        return None
    response = domish.Element((None, "message"))
    response["to"] = message.getAttribute("from", "")
    response["from"] = message.getAttribute("to", "")
    if message.hasAttribute("id"):
        response["id"] = message["id"]
    thread = _text(message, "thread")
    if thread is not None:
        response.addElement("thread", content=thread)
    response.addChild(echoed)
    if error is None:
        response["type"] = "normal"
    else:
        response["type"] = "error"
        response.addChild(error.getElement())
    return response
