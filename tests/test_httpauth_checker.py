# -*- test-case-name: tests.test_httpauth_checker -*-
"""
Tests for L{xmppcomp.httpauth._checker} and L{xmppcomp.httpauth._errors}:
every way a confirmation ends maps to one error of the table of answers,
and what could not be asked consumes nothing.
"""

from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.jid import JID

from xmppcomp.httpauth import (
    AccessForbidden,
    ConfirmationCredentials,
    ConfirmationDenied,
    ConfirmationFailed,
    ConfirmationTimeout,
    ConfirmerUnavailable,
    CouldNotAsk,
    EndToEndRequired,
    RateLimited,
    Replayed,
    XMPPConfirmationChecker,
)
from xmppcomp.httpauth._policy import AccessRule, AccessRules, Attempt, Ledger, Limits
from xmppcomp.httpauth._protocol import ConfirmRequest, Outcome, XMPPCredentials, parseJID
from xmppcomp.metrics import Metrics

from .test_httpauth_web import FakeRequester

JULIET = parseJID("juliet@capulet.lit/balcony")


def attempt(
    who: JID = JULIET,
    transactionId: str = "t1",
    client: str = "192.0.2.1",
    path: str = "/page.html",
    method: str = "GET",
) -> Attempt:
    return Attempt(
        XMPPCredentials(who, transactionId, "basic"),
        method,
        "https://files.example" + path,
        client,
        path,
    )


class ErrorTableTests(SynchronousTestCase):
    """
    The errors carry the statuses of the table of answers.
    """

    def test_statuses(self) -> None:
        """
        Each error has its status for protect and proxy, and one of 401 and
        403 for forward-auth.
        """
        table: dict[type[ConfirmationFailed], tuple[int, int]] = {
            ConfirmationDenied: (403, 403),
            CouldNotAsk: (401, 401),
            Replayed: (401, 401),
            AccessForbidden: (403, 403),
            RateLimited: (429, 403),
            ConfirmerUnavailable: (503, 403),
            ConfirmationTimeout: (504, 401),
        }
        for error, statuses in table.items():
            self.assertTrue(issubclass(error, ConfirmationFailed))
            self.assertEqual((error.status, error.forwardStatus), statuses, error)

    def test_retryAfter(self) -> None:
        """
        L{RateLimited} carries the C{Retry-After} given; a
        L{ConfirmerUnavailable} always has one, 5 seconds unless given.
        """
        self.assertEqual(RateLimited("slow", 9).retryAfter, 9)
        self.assertEqual(ConfirmerUnavailable("down").retryAfter, 5)
        self.assertEqual(ConfirmerUnavailable("down", 30).retryAfter, 30)
        self.assertIsNone(Replayed("again").retryAfter)


class CheckerTests(SynchronousTestCase):
    """
    Tests for L{XMPPConfirmationChecker}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.requester = FakeRequester()
        self.metrics = self.requester.metrics = Metrics()
        self.ledger = Ledger(
            self.clock,
            AccessRules([AccessRule("/", anyone=True), AccessRule("/private", jids=["romeo@montague.lit"])]),
            Limits(undeliverablePerTarget=2),
        )
        self.checker = XMPPConfirmationChecker(self.requester, self.ledger, self.clock)

    def check(self, a: Attempt) -> Deferred[str]:
        return self.checker.requestAvatarId(ConfirmationCredentials(a))

    def answer(self, result: Outcome | Exception) -> None:
        d = self.requester.asked[-1][2]
        if isinstance(result, Exception):
            d.errback(result)
        else:
            d.callback(result)

    def test_deny(self) -> None:
        """
        The user's no fails with L{ConfirmationDenied} (403); the
        transaction id is used up: using it again is L{Replayed}.
        """
        d = self.check(attempt())
        self.answer(Outcome.DENY)
        self.assertEqual(self.failureResultOf(d, ConfirmationDenied).value.status, 403)
        self.failureResultOf(self.check(attempt()), Replayed)

    def test_undeliverableOutcome(self) -> None:
        """
        A requester firing with L{Outcome.UNDELIVERABLE} (rather than
        failing with L{CouldNotAsk}) gets the same: L{CouldNotAsk} (401),
        for the asker and the requests that joined it, consuming nothing:
        the same transaction id asks again, and once allowed fires with
        the JID and passes in its session.
        """
        d = self.check(attempt())
        joined = self.check(attempt(path="/favicon.ico"))
        self.answer(Outcome.UNDELIVERABLE)
        self.assertEqual(self.failureResultOf(d, CouldNotAsk).value.status, 401)
        self.failureResultOf(joined, CouldNotAsk)
        self.assertEqual((self.ledger.rememberedCount, self.ledger.pendingCount), (0, 0))
        d = self.check(attempt())
        self.assertEqual(len(self.requester.asked), 2)
        self.answer(Outcome.ALLOW)
        self.assertEqual(self.successResultOf(d), JULIET.full())
        self.assertEqual(self.successResultOf(self.check(attempt())), JULIET.full())
        self.assertEqual(len(self.requester.asked), 2)

    def test_undeliverableCounted(self) -> None:
        """
        Undeliverable confirmations count against their client address and
        domain: past L{Limits.undeliverablePerTarget}, L{RateLimited} (429,
        403 in forward-auth) with a C{Retry-After}, for that pair only.
        Timeouts and an unavailable link do not count; they pass as they
        are.
        """
        for n, error in enumerate(
            [
                ConfirmationTimeout("late"),
                CouldNotAsk("bounced"),
                ConfirmerUnavailable("down"),
                ConfirmationTimeout("late"),
                CouldNotAsk("bounced"),
            ]
        ):
            d = self.check(attempt(transactionId="t%d" % (n,)))
            self.answer(error)
            self.assertIs(self.failureResultOf(d, type(error)).value, error)
        self.assertEqual(self.ledger.rememberedCount, 0)
        self.assertNoResult(self.check(attempt(transactionId="t1", client="192.0.2.3")))
        refused = self.failureResultOf(self.check(attempt(transactionId="x")), RateLimited).value
        self.assertEqual((refused.status, refused.forwardStatus, refused.retryAfter), (429, 403, 300))
        self.assertNoResult(self.check(attempt(transactionId="x", client="192.0.2.2")))
        self.assertNoResult(
            self.check(attempt(who=parseJID("romeo@montague.lit"), transactionId="x"))
        )

    def test_unexpectedFailure(self) -> None:
        """
        Anything else the requester fails with (or raises) is logged and
        becomes L{ConfirmerUnavailable} (503, with a C{Retry-After}),
        consuming nothing; a cancellation passes as it is.
        """
        d = self.check(attempt())
        self.answer(ZeroDivisionError())
        error = self.failureResultOf(d, ConfirmerUnavailable).value
        self.assertEqual((error.status, error.retryAfter), (503, 5))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

        def raising(who: JID, request: ConfirmRequest) -> Deferred[Outcome]:
            raise KeyError("bug")

        self.requester.confirm = raising  # type: ignore[method-assign]
        self.failureResultOf(self.check(attempt()), ConfirmerUnavailable)
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)
        self.assertEqual(self.ledger.pendingCount, 0)
        self.requester.confirm = lambda who, request: fail(CancelledError())  # type: ignore[method-assign]
        self.failureResultOf(self.check(attempt()), CancelledError)
        self.assertEqual(self.ledger.pendingCount, 0)

    def test_refusalsNotCountedWithoutMetrics(self) -> None:
        """
        A requester without metrics (C{metrics = None}): the refusals are
        counted nowhere, and refused all the same.
        """
        requester = FakeRequester()
        checker = XMPPConfirmationChecker(requester, self.ledger, self.clock)
        credentials = ConfirmationCredentials(attempt(path="/private/x"))
        self.failureResultOf(checker.requestAvatarId(credentials), AccessForbidden)
        self.assertEqual(self.metrics.value("xmppcomp_httpauth_refusals_total", {"reason": "forbidden"}), 0)

    def test_refusals(self) -> None:
        """
        The ledger's refusals fail with L{AccessForbidden} (403),
        L{Replayed} (401) and L{RateLimited} (429 with Retry-After), and
        each counts in C{xmppcomp_httpauth_refusals_total} by reason.
        """

        def count(reason: str) -> float:
            return self.metrics.value("xmppcomp_httpauth_refusals_total", {"reason": reason})

        before = [count(r) for r in ("forbidden", "replayed", "rate_limited")]
        self.failureResultOf(self.check(attempt(path="/private/x")), AccessForbidden)
        d = self.check(attempt())
        self.answer(Outcome.ALLOW)
        self.successResultOf(d)
        self.failureResultOf(self.check(attempt(client="198.51.100.1")), Replayed)
        for n in range(3):
            self.check(attempt(transactionId="p%d" % (n,)))
        refused = self.failureResultOf(self.check(attempt(transactionId="p9")), RateLimited).value
        self.assertEqual(refused.retryAfter, 30)
        after = [count(r) for r in ("forbidden", "replayed", "rate_limited")]
        self.assertEqual([a - b for a, b in zip(after, before)], [1.0, 1.0, 1.0])


class _BouncingRequester:
    """
    Confirms Juliet's requests at once; every other JID's bounces at once
    (L{CouldNotAsk}), as a real requester's would for unknown accounts.
    """

    timeout = 30.0
    metrics = None
    jids = None

    def __init__(self) -> None:
        self.asked = 0

    def confirm(self, who: JID, request: ConfirmRequest) -> Deferred[Outcome]:
        self.asked += 1
        if who.user == "juliet":
            return succeed(Outcome.ALLOW)
        return fail(CouldNotAsk(f"{who.full()} could not be asked"))


class _EndToEndRequester(FakeRequester):
    """
    A requester that can ask through XTLS, recording how it was asked.
    """

    def __init__(self) -> None:
        super().__init__()
        self.endToEnd: list[bool] = []

    def confirm(self, who: JID, request: ConfirmRequest, endToEnd: bool = False) -> Deferred[Outcome]:
        self.endToEnd.append(endToEnd)
        return super().confirm(who, request)


class EndToEndTests(SynchronousTestCase):
    """
    The checker asks through XTLS where the access rules require it
    (issue 21), and asks requesters that know nothing of XTLS as before.
    """

    rules = AccessRules([AccessRule("/", anyone=True), AccessRule("/secure", anyone=True, requireXTLS=True)])

    def test_endToEndWhereRequired(self) -> None:
        """
        Under a C{require_xtls} rule the requester is asked with
        C{endToEnd=True}; elsewhere without it.
        """
        requester = _EndToEndRequester()
        checker = XMPPConfirmationChecker(requester, Ledger(Clock(), self.rules), Clock())
        checker.requestAvatarId(ConfirmationCredentials(attempt(path="/secure/a")))
        checker.requestAvatarId(ConfirmationCredentials(attempt(transactionId="t2")))
        self.assertEqual(requester.endToEnd, [True, False])
        requester.asked[0][2].callback(Outcome.ALLOW)

    def test_oldRequester(self) -> None:
        """
        A requester whose C{confirm} takes no C{endToEnd} still serves the
        paths that do not require XTLS.
        """
        requester = FakeRequester()
        checker = XMPPConfirmationChecker(requester, Ledger(Clock(), self.rules), Clock())
        d = checker.requestAvatarId(ConfirmationCredentials(attempt()))
        requester.asked[0][2].callback(Outcome.ALLOW)
        self.assertEqual(self.successResultOf(d), JULIET.full())

    def test_bareJIDRefused(self) -> None:
        """
        A bare JID under a C{require_xtls} rule gets L{EndToEndRequired}
        (401) without anybody asked.
        """
        requester = _EndToEndRequester()
        checker = XMPPConfirmationChecker(requester, Ledger(Clock(), self.rules), Clock())
        d = checker.requestAvatarId(ConfirmationCredentials(attempt(who=parseJID("juliet@capulet.lit"),
                                                                    path="/secure/a")))
        failure = self.failureResultOf(d, EndToEndRequired)
        self.assertEqual((failure.value.status, failure.value.forwardStatus), (401, 401))
        self.assertEqual(requester.asked, [])


class JunkTests(SynchronousTestCase):
    """
    Junk aimed at a domain cannot lock its legitimate users out (issue 15,
    item 5).
    """

    def test_junkDoesNotLockOut(self) -> None:
        """
        100,000 junk attempts at Juliet's own domain, from as many
        C{127.x.y.z} addresses, each asked and undeliverable, interleaved
        with Juliet's confirmations from another address: every one of
        Juliet's gets through, the junk consumes no room in the replay
        memory, and the tables of tracked addresses stay bounded.
        """
        clock = Clock()
        clock.advance(1_800_000_000)
        limits = Limits()
        ledger = Ledger(clock, AccessRules.anyone(), limits)
        requester = _BouncingRequester()
        checker = XMPPConfirmationChecker(requester, ledger, clock)
        targets = [parseJID("nobody%d@capulet.lit" % (n,)) for n in range(200)]
        juliet = parseJID("juliet@capulet.lit/balcony")
        junk: list[type] = []
        allowed: list[str] = []
        onJunk = lambda f: junk.append(f.value.__class__)  # noqa: E731
        for n in range(1, 100_001):
            client = "127.%d.%d.%d" % (n >> 16, (n >> 8) & 255, n & 255)
            who = targets[n % 200]
            d = checker.requestAvatarId(ConfirmationCredentials(attempt(who, "junk%d" % (n,), client, "/")))
            d.addCallbacks(allowed.append, onJunk)
            if n % 1000 == 0:
                clock.advance(5)
                mine = checker.requestAvatarId(
                    ConfirmationCredentials(attempt(juliet, "juliet%d" % (n,), "192.0.2.10", "/page.html"))
                )
                self.assertEqual(self.successResultOf(mine), juliet.full(), n)
                self.assertLessEqual(ledger.trackedCount, 2 * limits.maxTrackedClients)
        self.assertEqual(allowed, [])
        self.assertEqual(junk, [CouldNotAsk] * 100_000)
        self.assertEqual(requester.asked, 100_100)
        self.assertEqual(ledger.rememberedCount, 100)
        self.assertEqual(list(ledger._usedByJID), ["juliet@capulet.lit"])
        self.assertEqual(ledger.pendingCount, 0)
        self.assertEqual(ledger.trackedCount, 2 * limits.maxTrackedClients)
