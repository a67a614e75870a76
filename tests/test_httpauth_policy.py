# -*- test-case-name: tests.test_httpauth_policy -*-
"""
Tests for L{xmppcomp.httpauth._policy}: access rules, single-use
transaction ids, sessions, the HEAD/OPTIONS window and limits.
"""

from __future__ import annotations

import attrs
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.jid import JID

from xmppcomp.httpauth._policy import (
    AccessRule,
    AccessRules,
    Ask,
    Attempt,
    Join,
    Ledger,
    Limits,
    Pass,
    Refuse,
)
from xmppcomp.httpauth._protocol import XMPPCredentials


def attempt(
    who: str = "juliet@capulet.com/balcony",
    transactionId: str = "t1",
    url: str = "https://files.example/page.html",
    method: str = "GET",
    client: str = "192.0.2.1",
) -> Attempt:
    return Attempt(XMPPCredentials(JID(who), transactionId, "basic"), method, url, client)


class AccessRulesTests(SynchronousTestCase):
    """
    Tests for L{AccessRule} and L{AccessRules}.
    """

    def setUp(self) -> None:
        self.rules = AccessRules(
            [
                AccessRule("/", anyone=True),
                AccessRule("/private", jids=["Juliet@Capulet.com/ignored"]),
                AccessRule("/team/", domains=["montague.lit"]),
            ]
        )

    def test_anyone(self) -> None:
        """
        A rule with C{anyone} lets every JID in.
        """
        self.assertTrue(self.rules.allows("/index.html", JID("x@y")))
        self.assertTrue(AccessRules.anyone().allows("/a/b", JID("x@y")))

    def test_jids(self) -> None:
        """
        A rule listing JIDs lets in any resource of those bare JIDs (JIDs
        normalised) and nobody else, and covers the prefix and below.
        """
        self.assertTrue(self.rules.allows("/private", JID("juliet@capulet.com/x")))
        self.assertTrue(self.rules.allows("/private/a", JID("juliet@capulet.com")))
        self.assertFalse(self.rules.allows("/private/a", JID("romeo@montague.lit")))

    def test_wholeSegments(self) -> None:
        """
        A prefix matches whole path segments.
        """
        self.assertTrue(self.rules.allows("/privateer", JID("romeo@montague.lit")))

    def test_domains(self) -> None:
        """
        A rule listing domains lets in every JID at them.
        """
        self.assertTrue(self.rules.allows("/team/x", JID("romeo@montague.lit/r")))
        self.assertTrue(self.rules.allows("/team", JID("benvolio@montague.lit")))
        self.assertFalse(self.rules.allows("/team/x", JID("juliet@capulet.com")))

    def test_uncovered(self) -> None:
        """
        A path no rule covers is refused.
        """
        rules = AccessRules([AccessRule("/a", anyone=True)])
        self.assertFalse(rules.allows("/b", JID("x@y")))
        self.assertIsNone(rules.ruleFor("/b"))

    def test_badPrefix(self) -> None:
        """
        A prefix must start with a slash.
        """
        self.assertRaises(ValueError, AccessRule, "private")


class SiteTests(SynchronousTestCase):
    """
    L{Attempt.site} is the scheme and authority, lower-case, one string
    object per site (bounded).
    """

    def test_shared(self) -> None:
        from xmppcomp.httpauth import _policy

        first = attempt(url="HTTPS://Files.Example/a").site
        second = attempt(url="https://files.example/b?c").site
        self.assertEqual(first, "https://files.example")
        self.assertIs(first, second)
        for n in range(_policy._SITES_KEPT + 5):
            attempt(url="https://h%d.example/" % (n,)).site
        self.assertLessEqual(len(_policy._sites), _policy._SITES_KEPT)


class LedgerTests(SynchronousTestCase):
    """
    Tests for L{Ledger}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.limits = Limits(
            pendingPerJID=2,
            pendingTotal=3,
            sessionLifetime=300,
            windowLifetime=60,
            replayMemory=3600,
        )
        self.ledger = Ledger(self.clock, AccessRules.anyone(), self.limits)

    def confirmed(self, first: Attempt) -> None:
        self.assertIsInstance(self.ledger.decide(first, 30), Ask)
        self.ledger.settle(first, True)

    def test_ask(self) -> None:
        """
        New credentials are asked for.
        """
        self.assertEqual(self.ledger.decide(attempt(), 30), Ask(("juliet@capulet.com", "t1")))
        self.assertEqual(self.ledger.pendingCount, 1)

    def test_forbidden(self) -> None:
        """
        Access rules refuse with 403 before asking.
        """
        ledger = Ledger(self.clock, AccessRules([AccessRule("/a", jids=["a@b"])]))
        decision = ledger.decide(attempt(url="https://x/a/b"), 30)
        self.assertIsInstance(decision, Refuse)
        assert isinstance(decision, Refuse)
        self.assertEqual(decision.status, 403)
        self.assertEqual(ledger.pendingCount, 0)

    def test_sessionPasses(self) -> None:
        """
        Once confirmed, the same credentials from the same client for other
        assets of the same site pass without asking.
        """
        self.confirmed(attempt())
        self.clock.advance(10)
        for asset in ("style.css", "logo.png", "sub/dir/app.js"):
            self.assertEqual(
                self.ledger.decide(attempt(url="https://files.example/" + asset), 30),
                Pass("session"),
            )

    def test_sessionOtherClient(self) -> None:
        """
        The same credentials from another client address are refused (a
        replay), and so are they for another site.
        """
        self.confirmed(attempt())
        for other in (attempt(client="198.51.100.7"), attempt(url="https://other.example/")):
            decision = self.ledger.decide(other, 30)
            assert isinstance(decision, Refuse)
            self.assertEqual(decision.status, 403)

    def test_sessionExpires(self) -> None:
        """
        After the session, the same transaction id is a replay.
        """
        self.confirmed(attempt())
        self.clock.advance(300)
        decision = self.ledger.decide(attempt(), 30)
        assert isinstance(decision, Refuse)
        self.assertEqual(decision.status, 403)
        self.assertIn("used already", decision.reason)

    def test_singleUsePerJID(self) -> None:
        """
        A used transaction id is refused for another resource of the same
        bare JID; another JID may use the same id.
        """
        self.confirmed(attempt())
        decision = self.ledger.decide(attempt(who="juliet@capulet.com/phone"), 30)
        assert isinstance(decision, Refuse)
        self.assertEqual(decision.status, 403)
        self.assertIsInstance(self.ledger.decide(attempt(who="romeo@montague.lit"), 30), Ask)

    def test_deniedIsUsed(self) -> None:
        """
        A denied transaction id is used up; no session opens.
        """
        first = attempt()
        self.ledger.decide(first, 30)
        self.ledger.settle(first, False)
        decision = self.ledger.decide(first, 30)
        assert isinstance(decision, Refuse)
        self.assertEqual(decision.status, 403)

    def test_replayForgotten(self) -> None:
        """
        After C{replayMemory} seconds a used transaction id is asked for
        again.
        """
        self.confirmed(attempt())
        self.clock.advance(3600)
        self.assertIsInstance(self.ledger.decide(attempt(), 30), Ask)

    def test_abandonDoesNotUse(self) -> None:
        """
        A confirmation that got no answer does not use the transaction id.
        """
        first = attempt()
        self.ledger.decide(first, 30)
        self.ledger.abandon(first)
        self.assertEqual(self.ledger.pendingCount, 0)
        self.assertIsInstance(self.ledger.decide(first, 30), Ask)

    def test_join(self) -> None:
        """
        The same credentials from the same client and site while pending
        join the pending confirmation; from elsewhere they are refused.
        """
        self.ledger.decide(attempt(), 30)
        self.assertEqual(
            self.ledger.decide(attempt(url="https://files.example/favicon.ico"), 30),
            Join(("juliet@capulet.com", "t1")),
        )
        decision = self.ledger.decide(attempt(client="198.51.100.7"), 30)
        assert isinstance(decision, Refuse)
        self.assertEqual(decision.status, 403)

    def test_headWindow(self) -> None:
        """
        Credentials confirmed with HEAD or OPTIONS pass for the same JID,
        URL and transaction id within the window, whatever the method and
        client; another URL outside the session is a replay; after the
        window they are a replay.
        """
        for method in ("HEAD", "OPTIONS"):
            self.setUp()
            self.confirmed(attempt(method=method))
            self.clock.advance(59)
            self.assertEqual(
                self.ledger.decide(attempt(method="POST", client="198.51.100.7"), 30),
                Pass("window"),
            )
            decision = self.ledger.decide(
                attempt(url="https://files.example/other", client="198.51.100.7"), 30
            )
            self.assertIsInstance(decision, Refuse)
            self.clock.advance(1)
            decision = self.ledger.decide(attempt(method="POST", client="198.51.100.7"), 30)
            self.assertIsInstance(decision, Refuse)

    def test_noWindowForGet(self) -> None:
        """
        A GET opens no window: another client is refused.
        """
        self.confirmed(attempt())
        self.assertIsInstance(
            self.ledger.decide(attempt(method="POST", client="198.51.100.7"), 30), Refuse
        )

    def test_limitPerJID(self) -> None:
        """
        Beyond C{pendingPerJID} pending confirmations for a bare JID: 429
        with the seconds until the soonest pending one times out.
        """
        self.ledger.decide(attempt(transactionId="a"), 30)
        self.clock.advance(10)
        self.ledger.decide(attempt(transactionId="b", who="juliet@capulet.com/x"), 30)
        self.clock.advance(0.5)
        decision = self.ledger.decide(attempt(transactionId="c"), 30)
        self.assertEqual(
            decision,
            Refuse(
                429,
                "2 confirmations are already pending for juliet@capulet.com; "
                "answer them first",
                20,
            ),
        )

    def test_limitPerJIDCountsAnswers(self) -> None:
        """
        Answered and abandoned confirmations free their place under
        C{pendingPerJID}, for that bare JID only, and nothing is left
        counted once none is pending.
        """
        a, b = attempt(transactionId="a"), attempt(transactionId="b")
        self.assertIsInstance(self.ledger.decide(a, 30), Ask)
        self.assertIsInstance(self.ledger.decide(b, 30), Ask)
        self.assertIsInstance(self.ledger.decide(attempt(transactionId="c"), 30), Refuse)
        self.assertIsInstance(self.ledger.decide(attempt(who="romeo@montague.lit", transactionId="c"), 30), Ask)
        self.ledger.settle(a, True)
        c = attempt(transactionId="c")
        self.assertIsInstance(self.ledger.decide(c, 30), Ask)
        self.ledger.abandon(b)
        self.ledger.abandon(b)
        d = attempt(transactionId="d")
        self.assertIsInstance(self.ledger.decide(d, 30), Ask)
        self.assertIsInstance(self.ledger.decide(attempt(transactionId="e"), 30), Refuse)
        self.ledger.settle(c, False)
        self.ledger.settle(d, True)
        self.ledger.abandon(attempt(who="romeo@montague.lit", transactionId="c"))
        self.assertEqual(self.ledger._pendingPerJID, {})

    def test_purgeForgetsExpired(self) -> None:
        """
        Used ids, sessions and windows are forgotten once expired, whatever
        order they were set in: an entry set again moves behind the others.
        """
        limits = attrs.evolve(self.limits, sessionLifetime=300, windowLifetime=60, replayMemory=600)
        ledger = Ledger(self.clock, AccessRules.anyone(), limits)
        first, second = attempt(transactionId="1", method="HEAD"), attempt(transactionId="2", method="HEAD")
        for a in (first, second):
            ledger.decide(a, 30)
            ledger.settle(a, True)
            self.clock.advance(100)
        # The first session is set again later than the second: it must
        # not shield the second from being forgotten.
        ledger.settle(first, True)
        self.assertEqual(list(ledger._sessions), [("juliet@capulet.com/balcony", "2"), ("juliet@capulet.com/balcony", "1")])
        self.clock.advance(250)
        ledger.decide(attempt(transactionId="x"), 30)
        self.assertEqual(list(ledger._sessions), [("juliet@capulet.com/balcony", "1")])
        self.assertEqual(ledger._windows, {})
        self.clock.advance(600)
        ledger.decide(attempt(transactionId="y"), 30)
        self.assertEqual(ledger._sessions, {})
        self.assertEqual(set(ledger._used), set())

    def test_rememberedBounded(self) -> None:
        """
        At C{maxRemembered} used transaction ids, new confirmations get 503
        until the oldest is forgotten (it is not forgotten early, which
        would allow its replay).
        """
        ledger = Ledger(
            self.clock, AccessRules.anyone(), attrs.evolve(self.limits, maxRemembered=2)
        )
        for n in range(2):
            first = attempt(transactionId="t%d" % (n,))
            self.assertIsInstance(ledger.decide(first, 30), Ask)
            ledger.settle(first, False)
        decision = ledger.decide(attempt(transactionId="t9"), 30)
        assert isinstance(decision, Refuse)
        self.assertEqual((decision.status, decision.retryAfter), (503, 3600))
        self.assertIsInstance(ledger.decide(attempt(transactionId="t0"), 30), Refuse)
        self.clock.advance(3600)
        self.assertIsInstance(ledger.decide(attempt(transactionId="t9"), 30), Ask)

    def test_limitTotal(self) -> None:
        """
        Beyond C{pendingTotal} pending confirmations: 503 with Retry-After.
        """
        for n, who in enumerate(["a@x", "b@x", "c@x"]):
            self.assertIsInstance(self.ledger.decide(attempt(who=who), 30 + n), Ask)
        decision = self.ledger.decide(attempt(who="d@x"), 30)
        assert isinstance(decision, Refuse)
        self.assertEqual((decision.status, decision.retryAfter), (503, 30))
