# -*- test-case-name: tests.test_httpauth_checker -*-
"""
The twisted.cred side of XEP-0070: credentials that carry the HTTP method,
the URL, the canonical path and the client address along with the JID and
transaction id, and a checker that asks the JID (once per transaction id)
and keeps the store (L{IConfirmationStore}: a L{Ledger} by default) up to
date.
"""

from __future__ import annotations

from typing import Protocol, cast

import attrs
from prometheus_client import Counter
from twisted.cred.checkers import ICredentialsChecker
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import jid
from zope.interface import implementer

from xmppcomp.httpauth._errors import (
    AccessForbidden,
    ConfirmationDenied,
    ConfirmationFailed,
    ConfirmerUnavailable,
    CouldNotAsk,
    RateLimited,
    Replayed,
    StoreUnavailable,
)
from xmppcomp.httpauth._policy import Ask, Attempt, Decision, Join, Ledger, Pass, Refuse
from xmppcomp.httpauth._store import IConfirmationStore, MemoryStore
from xmppcomp.httpauth._protocol import Answer, ConfirmRequest, Outcome
from xmppcomp.interfaces import IXMPPConfirmationCredentials
from xmppcomp.logs import Logger
from xmppcomp.jids import JIDCache
from xmppcomp.metrics import Metrics


@implementer(IXMPPConfirmationCredentials)
@attrs.define
class ConfirmationCredentials:
    """
    Provider of L{IXMPPConfirmationCredentials}.

    @ivar attempt: the credentials, method, URL, client address and path.
    @ivar roundTrip: set by the checker when it asked over XMPP for these
        credentials: seconds from asking to the answer (or the failure).
    @ivar askedAt: when the checker asked (its clock), or C{None}.
    """

    attempt: Attempt
    roundTrip: float | None = None
    askedAt: float | None = None


class Requester(Protocol):
    """
    What the checker needs of L{xmppcomp.httpauth.ConfirmationRequester}.

    @ivar timeout: seconds each confirmation may take.
    @ivar metrics: where the confirmer counts (the requests it refused
        without asking, here); C{None}: nowhere.
    @ivar jids: the requester's L{JIDCache}, which the confirmer also
        parses the credentials' JIDs with; C{None}: the confirmer keeps
        its own.
    """

    timeout: float
    metrics: Metrics | None
    jids: JIDCache | None

    def confirm(
        self, who: jid.JID, request: ConfirmRequest, endToEnd: bool = False
    ) -> Deferred[Answer] | Deferred[Outcome]:
        """
        Ask C{who} to confirm C{request}: fire with an L{Answer} saying who
        answered (a bare L{Outcome} means C{who} did), L{Outcome.ALLOW} or
        L{Outcome.DENY} (L{Outcome.UNDELIVERABLE} is taken as
        L{CouldNotAsk}), or fail with a L{ConfirmationFailed}.

        @param endToEnd: the question and the answer must go through an
            XTLS tunnel to C{who} (a full JID); passed only when C{True},
            so a requester that cannot do it may leave it out (and such
            confirmations then fail).
        """


#: The C{reason} label of C{xmppcomp_httpauth_refusals_total} of each
#: refusal.
_REFUSAL_LABELS: tuple[tuple[type[ConfirmationFailed], str], ...] = (
    (AccessForbidden, "forbidden"),
    (Replayed, "replayed"),
    (RateLimited, "rate_limited"),
)


#: No requests joined (L{XMPPConfirmationChecker._waiting}), without a new
#: list per confirmation.
_NONE: tuple[Deferred[str], ...] = ()


@implementer(ICredentialsChecker)
class XMPPConfirmationChecker:
    """
    Check L{IXMPPConfirmationCredentials} by asking the JID over XMPP,
    unless the store (a L{Ledger}'s L{MemoryStore} by default) decides
    without asking.

    Every failure is a L{ConfirmationFailed} of the table in
    L{xmppcomp.httpauth._errors}: the ledger's refusals
    (L{AccessForbidden}, L{Replayed}, L{RateLimited}), the user's no
    (L{ConfirmationDenied}), L{CouldNotAsk} (undeliverable: the ledger
    abandons it, counting it against the client address and domain, and
    the transaction id stays unused), L{ConfirmationTimeout} and
    L{ConfirmerUnavailable} from the requester (abandoned too). Anything
    else the requester fails with is logged and becomes
    L{ConfirmerUnavailable}; a cancellation (the HTTP client went away)
    passes as it is. The store failing (L{StoreUnavailable}: Redis
    unreachable or slow) fails the request closed with it, before asking or
    after the answer: an allow is granted only once the store has recorded
    it.

    The avatar id is the JID as given, as text.

    Requests refused without asking count in the requester's metrics
    (L{Requester.metrics}), by reason.

    @ivar _requester: asks JIDs.
    @ivar store: the memory of transaction ids, sessions and limits.
    @ivar _refusals: the refusal counters by error, bound once.
    @ivar _waiting: single-use key to the Deferreds of the requests that
        joined the confirmation pending for it (the one that asked gets the
        answer through the requester's own Deferred).
    """

    credentialInterfaces = (IXMPPConfirmationCredentials,)

    _log = Logger()

    def __init__(
        self,
        requester: Requester,
        store: IConfirmationStore | Ledger,
        clock: IReactorTime | None = None,
    ) -> None:
        """
        @param store: the memory of transaction ids, sessions and limits; a
            L{Ledger} is kept in a L{MemoryStore}.
        @param clock: times each confirmation's round trip; by default the
            global reactor.
        """
        if clock is None:
            from twisted.internet import reactor

            clock = cast(IReactorTime, reactor)
        self._clock: IReactorTime = clock
        self._requester = requester
        self.store: IConfirmationStore = (
            MemoryStore(store) if isinstance(store, Ledger) else store
        )
        self._onAnswer = self._answered  # bound once, not per confirmation
        self._onDecision = self._decided
        self._waiting: dict[tuple[str, str], list[Deferred[str]]] = {}
        metrics = requester.metrics
        self._refusals: dict[type[ConfirmationFailed], Counter] = (
            {}
            if metrics is None
            else {error: metrics.confirmerRefusals.labels(label) for error, label in _REFUSAL_LABELS}
        )

    # Twisted types avatar ids as bytes; ours are the JID as text.
    def requestAvatarId(  # type: ignore[override]
        self, credentials: ConfirmationCredentials
    ) -> Deferred[str]:
        """
        Let the request through (fire with the JID) or fail with a
        L{ConfirmationFailed} saying why.
        """
        try:
            decided = self.store.decide(credentials.attempt, self._requester.timeout)
        except Exception:
            decided = fail()
        # With the memory store it has fired already, and so does this.
        return cast("Deferred[str]", decided.addCallback(self._onDecision, credentials))

    def _decided(
        self, decision: Decision, credentials: ConfirmationCredentials
    ) -> str | Failure | Deferred[str]:
        """
        Carry out the store's decision: let through, refuse, wait for the
        pending confirmation, or ask.
        """
        attempt = credentials.attempt
        who = attempt.credentials.jid
        if isinstance(decision, Pass):
            # Who confirmed, which may be another resource than asked.
            return (decision.by or who).full()
        if isinstance(decision, Refuse):
            counter = self._refusals.get(decision.error)
            if counter is not None:
                counter.inc()
            return Failure(decision.failure())
        if isinstance(decision, Join):
            waiter: Deferred[str] = Deferred()
            # Made on the first join only: most confirmations have none.
            self._waiting.setdefault(decision.key, []).append(waiter)
            return waiter
        assert isinstance(decision, Ask)
        request = ConfirmRequest(
            attempt.credentials.transactionId, attempt.method, attempt.url
        )
        credentials.askedAt = self._clock.seconds()
        try:
            # Only when asked for: requesters written before XTLS take no
            # endToEnd.
            asked = (
                self._requester.confirm(who, request, endToEnd=True)
                if decision.endToEnd
                else self._requester.confirm(who, request)
            )
        except Exception:
            asked = fail()
        # The asker gets the answer through the requester's Deferred: one
        # Deferred less per pending confirmation.
        return cast("Deferred[str]", asked.addBoth(self._onAnswer, credentials))

    def _answered(
        self, result: Answer | Outcome | Failure, credentials: ConfirmationCredentials
    ) -> Deferred[str]:
        """
        Record the answer in the store, then answer the requests that
        joined, and give the asker its result: the JID that confirmed
        (which may be another resource of the account asked), or the
        failure. An allow the store could not record is no grant: it fails
        with the store's L{StoreUnavailable}.
        """
        attempt = credentials.attempt
        if credentials.askedAt is not None:
            credentials.roundTrip = self._clock.seconds() - credentials.askedAt
        by = attempt.credentials.jid
        if isinstance(result, Answer):
            by = result.by
            result = result.outcome
        store = self.store
        outcome: str | Failure
        granted = False
        if result is Outcome.ALLOW:
            recorded = store.settle(attempt, True, by)
            outcome = by.full()
            granted = True
        elif result is Outcome.DENY:
            recorded = store.settle(attempt, False, by)
            outcome = Failure(ConfirmationDenied(f"{by.full()} denied the request"))
        elif isinstance(result, Failure):
            if result.check(CouldNotAsk):
                recorded = store.abandon(attempt, undeliverable=True)
                outcome = result
            elif result.check(ConfirmationFailed, CancelledError):
                recorded = store.abandon(attempt)
                outcome = result
            else:
                recorded = store.abandon(attempt)
                self._log.failure("XEP-0070 confirmation failed", failure=result)
                outcome = Failure(
                    ConfirmerUnavailable(
                        "the confirmation could not be asked because of an internal error"
                    )
                )
        else:
            # UNDELIVERABLE (or anything that is no answer) from a requester
            # that fires with it rather than failing with CouldNotAsk.
            recorded = store.abandon(attempt, undeliverable=True)
            outcome = Failure(
                CouldNotAsk(f"{attempt.credentials.jid.full()} could not be asked")
            )
        return recorded.addBoth(self._recorded, attempt, outcome, granted)

    def _recorded(
        self, stored: object, attempt: Attempt, outcome: str | Failure, granted: bool
    ) -> str | Failure:
        """
        The store has recorded the answer (or failed to): answer the
        requests that joined, and the asker. Only a recorded allow grants.
        """
        if isinstance(stored, Failure):
            if granted:
                # Fail closed: an allow the store could not record could be
                # replayed elsewhere.
                if not stored.check(StoreUnavailable):
                    self._log.failure("recording an XEP-0070 answer failed", failure=stored)
                    stored = Failure(
                        StoreUnavailable("the answer could not be recorded; nothing was granted")
                    )
                outcome = stored
            elif not stored.check(StoreUnavailable):
                self._log.failure("recording an XEP-0070 outcome failed", failure=stored)
        for waiter in self._waiting.pop(attempt.key, _NONE):
            if isinstance(outcome, Failure):
                waiter.errback(outcome)
            else:
                waiter.callback(outcome)
        return outcome
