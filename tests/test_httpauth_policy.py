# -*- test-case-name: tests.test_httpauth_policy -*-
"""
Tests for L{xmppcomp.httpauth._policy}: access rules, single-use
transaction ids, sessions, the HEAD/OPTIONS window and limits.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import attrs
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.jid import JID

from xmppcomp.httpauth._errors import AccessForbidden, RateLimited, Replayed
from xmppcomp.httpauth._policy import (
    AccessRule,
    AccessRules,
    Ask,
    Attempt,
    Decision,
    Join,
    Ledger,
    Limits,
    Pass,
    Refuse,
)
from xmppcomp.httpauth._protocol import XMPPCredentials, parseJID


def attempt(
    who: str = "juliet@capulet.com/balcony",
    transactionId: str = "t1",
    url: str = "https://files.example/page.html",
    method: str = "GET",
    client: str = "192.0.2.1",
    path: str | None = None,
) -> Attempt:
    """
    An attempt; its path is the URL's unless given.
    """
    if path is None:
        path = urlsplit(url).path or "/"
    return Attempt(
        XMPPCredentials(parseJID(who), transactionId, "basic"), method, url, client, path
    )


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
        A prefix must start with a slash, and be a path as requests are
        read: no empty, C{.} or C{..} segment but an empty last one.
        """
        self.assertRaises(ValueError, AccessRule, "private")
        for prefix in ("", "//", "/a//b", "/a/./b", "/a/.."):
            self.assertRaises(ValueError, AccessRule, prefix)
        self.assertEqual([AccessRule(p).prefix for p in ("/", "/a/", "/a/.b")], ["/", "/a/", "/a/.b"])

    def test_domainNotJID(self) -> None:
        """
        A rule's domain is a domain, not a JID with a user or resource.
        """
        self.assertRaises(ValueError, AccessRule, "/", domains=["juliet@capulet.lit"])
        self.assertRaises(ValueError, AccessRule, "/", domains=["capulet.lit/r"])

    def test_trailingDot(self) -> None:
        """
        JIDs and domains of rules lose their trailing dot (RFC 7622 section
        3.2), as credentials do: C{capulet.lit.} in a rule is
        C{capulet.lit}.
        """
        rules = AccessRules(
            [
                AccessRule("/j", jids=["juliet@capulet.lit."]),
                AccessRule("/d", domains=["capulet.lit."]),
            ]
        )
        self.assertEqual(rules.rules[0].jids, frozenset({"juliet@capulet.lit"}))
        self.assertEqual(rules.rules[1].domains, frozenset({"capulet.lit"}))
        who = parseJID("juliet@capulet.lit./r")
        self.assertTrue(rules.allows("/j", who))
        self.assertTrue(rules.allows("/d", who))


    def test_aLabels(self) -> None:
        """
        A rule that names a domain in A-labels lets in its users however
        they spell it, and one in U-labels too (both are kept as U-labels,
        as credentials are).
        """
        rules = AccessRules(
            [
                AccessRule("/a", domains=["xn--bcher-kva.example"]),
                AccessRule("/u", jids=["alice@bücher.example"]),
            ]
        )
        self.assertEqual(rules.rules[0].domains, frozenset({"bücher.example"}))
        for typed in ("alice@xn--bcher-kva.example/r", "alice@bücher.example"):
            who = parseJID(typed)
            self.assertTrue(rules.allows("/a", who), typed)
            self.assertTrue(rules.allows("/u", who), typed)
        self.assertRaises(ValueError, AccessRule, "/", domains=["xn--abc.example"])


class SiteTests(SynchronousTestCase):
    """
    L{Attempt.site} is the scheme and authority, lower-case, one string
    object per site (bounded).
    """

    def test_derived(self) -> None:
        """
        The site and the single-use key are derived from the URL and the
        credentials; the path is the one given, not the URL's.
        """
        a = attempt(url="https://Files.Example/%70rivate/a", path="/private/a")
        self.assertEqual(a.site, "https://files.example")
        self.assertEqual(a.key, ("juliet@capulet.com", "t1"))
        self.assertEqual(a.path, "/private/a")

    def test_site(self) -> None:
        """
        The site is the URL's scheme and authority, in lower case.
        """
        self.assertEqual(attempt(url="HTTPS://Files.Example/a").site, "https://files.example")
        self.assertEqual(attempt(url="https://files.example/b?c").site, "https://files.example")


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

    def confirmed(self, first: Attempt, ledger: Ledger | None = None) -> None:
        ledger = ledger or self.ledger
        self.assertIsInstance(ledger.decide(first, 30), Ask)
        ledger.settle(first, True)

    def assertRefused(
        self, decision: Decision, error: type, reason: str | None = None
    ) -> Refuse:
        """
        C{decision} refuses with C{error} (and a reason holding C{reason}).
        """
        assert isinstance(decision, Refuse), decision
        self.assertIs(decision.error, error)
        if reason is not None:
            self.assertIn(reason, decision.reason)
        return decision

    def test_sitesShared(self) -> None:
        """
        The sessions of one site share one site string, not one each; the
        ledger's memo of them is its own and bounded.
        """
        from xmppcomp.httpauth import _policy

        ledger = Ledger(
            self.clock,
            AccessRules.anyone(),
            Limits(attemptsPerClient=10_000, rememberedPerJID=10_000, rememberedPerDomain=10_000),
        )
        first = attempt(url="HTTPS://Files.Example/a", transactionId="s1")
        second = attempt(url="https://files.example/b?c", transactionId="s2")
        self.assertIsNot(first.site, second.site)
        self.confirmed(first, ledger)
        self.confirmed(second, ledger)
        sites = [scope.site for scope in ledger._sessions.values()]
        self.assertEqual(sites, ["https://files.example"] * 2)
        self.assertIs(sites[0], sites[1])
        self.assertNotIn("https://files.example", Ledger(self.clock, AccessRules.anyone())._sites)
        for n in range(_policy.SITES_KEPT + 5):
            self.confirmed(attempt(url="https://h%d.example/" % (n,), transactionId="m%d" % (n,)), ledger)
            self.assertLessEqual(len(ledger._sites), _policy.SITES_KEPT)

    def test_ask(self) -> None:
        """
        New credentials are asked for.
        """
        self.assertEqual(self.ledger.decide(attempt(), 30), Ask(("juliet@capulet.com", "t1")))
        self.assertEqual(self.ledger.pendingCount, 1)

    def test_forbidden(self) -> None:
        """
        Access rules refuse with L{AccessForbidden} (403) before asking.
        """
        ledger = Ledger(self.clock, AccessRules([AccessRule("/a", jids=["a@b"])]))
        decision = self.assertRefused(
            ledger.decide(attempt(url="https://x/a/b"), 30), AccessForbidden
        )
        self.assertEqual(decision.status, 403)
        self.assertEqual(ledger.pendingCount, 0)

    def test_rulesDecideOnPath(self) -> None:
        """
        The access rules decide on the attempt's canonical path, not on
        the path of its URL (which is encoded).
        """
        ledger = Ledger(
            self.clock,
            AccessRules([AccessRule("/", anyone=True), AccessRule("/private", jids=["a@b"])]),
        )
        self.assertRefused(
            ledger.decide(
                attempt(url="https://x/%70rivate/s.txt", path="/private/s.txt"), 30
            ),
            AccessForbidden,
            "/private/s.txt",
        )
        self.assertIsInstance(
            ledger.decide(attempt(url="https://x/private/s.txt", path="/public"), 30), Ask
        )

    def test_sessionPasses(self) -> None:
        """
        Once confirmed, the same credentials from the same client for other
        assets of the same site pass without asking, with the safe methods
        GET, HEAD and OPTIONS.
        """
        self.confirmed(attempt())
        self.clock.advance(10)
        for asset in ("style.css", "logo.png", "sub/dir/app.js"):
            for method in ("GET", "HEAD", "OPTIONS"):
                self.assertEqual(
                    self.ledger.decide(
                        attempt(url="https://files.example/" + asset, method=method), 30
                    ),
                    Pass("session", parseJID("juliet@capulet.com/balcony")),
                )

    def test_confirmerReported(self) -> None:
        """
        A session confirmed by another resource of the account than the one
        asked reports that resource on each pass, not the JID asked.
        """
        asked = attempt()
        self.assertIsInstance(self.ledger.decide(asked, 30), Ask)
        phone = parseJID("juliet@capulet.com/phone")
        self.ledger.settle(asked, True, phone)
        self.assertEqual(self.ledger.decide(attempt(url="https://files.example/a.css"), 30), Pass("session", phone))

    def test_sessionOtherClient(self) -> None:
        """
        The same credentials from another client address are a replay
        (L{Replayed}, 401), and so are they for another site.
        """
        self.confirmed(attempt())
        for other in (attempt(client="198.51.100.7"), attempt(url="https://other.example/")):
            decision = self.assertRefused(
                self.ledger.decide(other, 30), Replayed, "another site or client"
            )
            self.assertEqual(decision.status, 401)

    def test_sessionExpires(self) -> None:
        """
        After the session, the same transaction id is a replay (401).
        """
        self.confirmed(attempt())
        self.clock.advance(300)
        decision = self.assertRefused(self.ledger.decide(attempt(), 30), Replayed, "used already")
        self.assertEqual(decision.status, 401)

    def test_singleUsePerJID(self) -> None:
        """
        A used transaction id is a replay for another resource of the same
        bare JID; another JID may use the same id.
        """
        self.confirmed(attempt())
        self.assertRefused(
            self.ledger.decide(attempt(who="juliet@capulet.com/phone"), 30), Replayed
        )
        self.assertIsInstance(self.ledger.decide(attempt(who="romeo@montague.lit"), 30), Ask)

    def test_trailingDotSameKey(self) -> None:
        """
        C{juliet@capulet.com.} is C{juliet@capulet.com}: the same
        transaction id is a replay, and both count against one JID.
        """
        self.confirmed(attempt(who="juliet@capulet.com"))
        self.assertRefused(
            self.ledger.decide(attempt(who="juliet@capulet.com./phone"), 30), Replayed
        )
        self.assertIsInstance(self.ledger.decide(attempt(who="juliet@capulet.com.", transactionId="a"), 30), Ask)
        self.assertIsInstance(self.ledger.decide(attempt(who="juliet@capulet.com", transactionId="b"), 30), Ask)
        self.assertRefused(
            self.ledger.decide(attempt(who="juliet@capulet.com.", transactionId="c"), 30),
            RateLimited,
            "2 confirmations are already pending for juliet@capulet.com;",
        )

    def test_deniedIsUsed(self) -> None:
        """
        A denied transaction id is used up; no session opens.
        """
        first = attempt()
        self.ledger.decide(first, 30)
        self.ledger.settle(first, False)
        self.assertRefused(self.ledger.decide(first, 30), Replayed)

    def test_replayForgotten(self) -> None:
        """
        After C{replayMemory} seconds a used transaction id is asked for
        again, and is no longer remembered.
        """
        self.confirmed(attempt())
        self.assertEqual(self.ledger.rememberedCount, 1)
        self.clock.advance(3600)
        self.assertIsInstance(self.ledger.decide(attempt(), 30), Ask)
        self.assertEqual(self.ledger.rememberedCount, 0)

    def test_abandonDoesNotUse(self) -> None:
        """
        A confirmation that got no answer, or could not be asked, does not
        use the transaction id, and is not remembered.
        """
        for undeliverable in (False, True):
            first = attempt()
            self.assertIsInstance(self.ledger.decide(first, 30), Ask)
            self.ledger.abandon(first, undeliverable=undeliverable)
            self.assertEqual(self.ledger.pendingCount, 0)
            self.assertEqual(self.ledger.rememberedCount, 0)
        self.assertIsInstance(self.ledger.decide(first, 30), Ask)

    def test_join(self) -> None:
        """
        The same credentials from the same client and site while pending
        join the pending confirmation (safe methods); from elsewhere they
        are a replay.
        """
        self.ledger.decide(attempt(), 30)
        for method in ("GET", "HEAD", "OPTIONS"):
            self.assertEqual(
                self.ledger.decide(
                    attempt(url="https://files.example/favicon.ico", method=method), 30
                ),
                Join(("juliet@capulet.com", "t1")),
            )
        self.assertRefused(
            self.ledger.decide(attempt(client="198.51.100.7"), 30),
            Replayed,
            "being confirmed for another request",
        )

    def test_unsafeDoesNotJoin(self) -> None:
        """
        An unsafe method never joins a pending confirmation (it is always
        asked on its own): it waits, 429 with the seconds until the pending
        one times out.
        """
        self.ledger.decide(attempt(), 30)
        self.clock.advance(10)
        for method in ("POST", "PUT", "DELETE", "get"):
            decision = self.assertRefused(
                self.ledger.decide(attempt(method=method), 30), RateLimited, "pending"
            )
            self.assertEqual(decision.retryAfter, 20)

    def test_unsafeAsksInSession(self) -> None:
        """
        Within its own live session (same site and client), an unsafe
        method asks again, with the same transaction id, every time; a
        safe method still passes; the id needs no new room.
        """
        self.confirmed(attempt())
        post = attempt(method="POST", url="https://files.example/form")
        for n in range(3):
            self.assertEqual(self.ledger.decide(post, 30), Ask(("juliet@capulet.com", "t1")))
            self.assertEqual(self.ledger.decide(attempt(), 30), Pass("session", parseJID("juliet@capulet.com/balcony")))
            self.ledger.settle(post, True)
        self.assertEqual(self.ledger.rememberedCount, 1)

    def test_unsafeOutsideSession(self) -> None:
        """
        Outside its session, an unsafe method with a used transaction id is
        a replay: from another client address, for another site, and after
        the session expired.
        """
        self.confirmed(attempt())
        for other in (
            attempt(method="POST", client="198.51.100.7"),
            attempt(method="POST", url="https://other.example/"),
        ):
            self.assertEqual(self.assertRefused(self.ledger.decide(other, 30), Replayed).status, 401)
        self.clock.advance(300)
        decision = self.assertRefused(self.ledger.decide(attempt(method="POST"), 30), Replayed, "used already")
        self.assertEqual(decision.status, 401)

    def test_methodsCaseSensitive(self) -> None:
        """
        Methods are case-sensitive: C{get} is not C{GET}, so it asks
        within a session.
        """
        self.confirmed(attempt())
        self.assertIsInstance(self.ledger.decide(attempt(method="get"), 30), Ask)

    def test_denialEndsSession(self) -> None:
        """
        A denied unsafe request ends its session: the same credentials are
        then a replay.
        """
        self.confirmed(attempt())
        post = attempt(method="POST")
        self.assertIsInstance(self.ledger.decide(post, 30), Ask)
        self.ledger.settle(post, False)
        self.assertRefused(self.ledger.decide(attempt(), 30), Replayed, "used already")

    def test_headWindow(self) -> None:
        """
        Credentials confirmed with HEAD or OPTIONS pass for the same URL
        and transaction id within the window, for the safe methods from
        the same client address only; an unsafe method, another client,
        another URL are replays; after the window too. (No session here:
        its lifetime is 0.)
        """
        for method in ("HEAD", "OPTIONS"):
            ledger = Ledger(
                self.clock, AccessRules.anyone(), attrs.evolve(self.limits, sessionLifetime=0)
            )
            self.confirmed(attempt(method=method), ledger)
            self.clock.advance(59)
            for safe in ("GET", "HEAD", "OPTIONS"):
                self.assertEqual(ledger.decide(attempt(method=safe), 30), Pass("window", parseJID("juliet@capulet.com/balcony")))
            for other in (
                attempt(method="POST"),
                attempt(method="GET", client="198.51.100.7"),
                attempt(url="https://files.example/other"),
            ):
                self.assertRefused(ledger.decide(other, 30), Replayed)
            self.clock.advance(1)
            self.assertRefused(ledger.decide(attempt(), 30), Replayed)

    def test_noWindowForGet(self) -> None:
        """
        A GET opens no window.
        """
        ledger = Ledger(
            self.clock, AccessRules.anyone(), attrs.evolve(self.limits, sessionLifetime=0)
        )
        self.confirmed(attempt(), ledger)
        self.assertRefused(ledger.decide(attempt(method="HEAD"), 30), Replayed)

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
                RateLimited,
                "2 confirmations are already pending for juliet@capulet.com; "
                "answer them first",
                20,
            ),
        )
        assert isinstance(decision, Refuse)
        self.assertEqual(decision.status, 429)

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
        self.assertEqual(ledger.rememberedCount, 0)
        self.assertEqual((ledger._usedByJID, ledger._usedByDomain, list(ledger._usedOrder)), ({}, {}, []))

    def test_rememberedBounded(self) -> None:
        """
        At C{maxRemembered} used transaction ids, new confirmations get 429
        until the oldest is forgotten (it is not forgotten early, which
        would allow its replay).
        """
        ledger = Ledger(
            self.clock, AccessRules.anyone(), attrs.evolve(self.limits, maxRemembered=2)
        )
        for n, who in enumerate(["juliet@capulet.com", "romeo@montague.lit"]):
            first = attempt(who=who, transactionId="t%d" % (n,))
            self.assertIsInstance(ledger.decide(first, 30), Ask)
            ledger.settle(first, False)
        decision = self.assertRefused(
            ledger.decide(attempt(who="nurse@capulet.com", transactionId="t9"), 30),
            RateLimited,
            "remembered",
        )
        self.assertEqual((decision.status, decision.retryAfter), (429, 3600))
        self.assertIsInstance(ledger.decide(attempt(transactionId="t0"), 30), Refuse)
        self.clock.advance(3600)
        self.assertIsInstance(ledger.decide(attempt(transactionId="t9"), 30), Ask)

    def test_limitTotal(self) -> None:
        """
        Beyond C{pendingTotal} pending confirmations: 429 with Retry-After.
        """
        for n, who in enumerate(["a@x", "b@x", "c@x"]):
            self.assertIsInstance(self.ledger.decide(attempt(who=who), 30 + n), Ask)
        decision = self.assertRefused(
            self.ledger.decide(attempt(who="d@x"), 30), RateLimited, "pending"
        )
        self.assertEqual((decision.status, decision.retryAfter), (429, 30))

    def test_refuseFailure(self) -> None:
        """
        L{Refuse.failure} is the exception to fail with, with the reason
        and C{Retry-After}.
        """
        error = Refuse(RateLimited, "slow down", 7).failure()
        self.assertIsInstance(error, RateLimited)
        self.assertEqual((error.reason, error.retryAfter, error.status), ("slow down", 7, 429))


class FairShareTests(SynchronousTestCase):
    """
    The memory of used transaction ids is kept per bare JID, with shares
    per JID, per domain and in total: a JID or a domain whose share is
    full waits for its own oldest id; nobody else is affected, and no id
    is forgotten before it expires.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.limits = Limits(
            replayMemory=1000,
            rememberedPerJID=2,
            rememberedPerDomain=3,
            maxRemembered=5,
            pendingTotal=10,
        )
        self.ledger = Ledger(self.clock, AccessRules.anyone(), self.limits)

    def use(self, who: str, transactionId: str, allowed: bool = False) -> None:
        a = attempt(who=who, transactionId=transactionId)
        decision = self.ledger.decide(a, 30)
        self.assertIsInstance(decision, Ask, (who, transactionId, decision))
        self.ledger.settle(a, allowed)
        self.clock.advance(10)

    def refusal(self, who: str, transactionId: str) -> Refuse:
        decision = self.ledger.decide(attempt(who=who, transactionId=transactionId), 30)
        assert isinstance(decision, Refuse), decision
        self.assertIs(decision.error, RateLimited)
        self.assertEqual(decision.status, 429)
        return decision

    def test_perJID(self) -> None:
        """
        A JID with C{rememberedPerJID} ids remembered gets 429 with the
        seconds until its own oldest is forgotten; another JID of the same
        domain is not affected; its own used ids stay replays.
        """
        self.use("juliet@capulet.com", "a")
        self.use("romeo@montague.lit", "x")
        self.use("juliet@capulet.com", "b")
        decision = self.refusal("juliet@capulet.com", "c")
        self.assertIn("juliet@capulet.com", decision.reason)
        self.assertEqual(decision.retryAfter, 1000 - 30)
        self.assertIsInstance(self.ledger.decide(attempt(who="nurse@capulet.com", transactionId="c"), 30), Ask)
        self.assertIs(
            self.ledger.decide(attempt(who="juliet@capulet.com", transactionId="a"), 30).error,  # type: ignore[union-attr]
            Replayed,
        )
        self.clock.advance(970)
        self.assertIsInstance(self.ledger.decide(attempt(who="juliet@capulet.com", transactionId="c"), 30), Ask)

    def test_perDomain(self) -> None:
        """
        A domain with C{rememberedPerDomain} ids remembered (over its JIDs)
        gets 429 with the seconds until its own oldest is forgotten; other
        domains are not affected.
        """
        self.use("a@capulet.com", "1")
        self.use("b@capulet.com", "1")
        self.use("romeo@montague.lit", "1")
        self.use("c@capulet.com", "1")
        decision = self.refusal("d@capulet.com", "1")
        self.assertIn("capulet.com", decision.reason)
        self.assertEqual(decision.retryAfter, 1000 - 40)
        self.assertIsInstance(self.ledger.decide(attempt(who="benvolio@montague.lit", transactionId="1"), 30), Ask)

    def test_total(self) -> None:
        """
        At C{maxRemembered} ids (pending ones included), everyone gets 429
        with the seconds until the oldest is forgotten.
        """
        for n, who in enumerate(["a@one", "b@two", "c@three", "d@four", "e@five"]):
            self.use(who, "1")
        decision = self.refusal("f@six", "1")
        self.assertEqual(decision.retryAfter, 1000 - 50)

    def test_liveNeverForgotten(self) -> None:
        """
        However full the shares, no id is forgotten before it expires: each
        stays a replay until then, and is forgotten then.
        """
        self.use("juliet@capulet.com", "a")
        self.use("juliet@capulet.com", "b")
        for n in range(50):
            self.ledger.decide(attempt(who="juliet@capulet.com", transactionId="n%d" % (n,)), 30)
        self.clock.advance(1000 - 21)
        for transactionId in ("a", "b"):
            decision = self.ledger.decide(attempt(who="juliet@capulet.com", transactionId=transactionId), 30)
            assert isinstance(decision, Refuse)
            self.assertIs(decision.error, Replayed)
        self.assertEqual(self.ledger.rememberedCount, 2)
        self.clock.advance(20)
        self.assertIsInstance(self.ledger.decide(attempt(who="juliet@capulet.com", transactionId="a"), 30), Ask)
        self.assertEqual(self.ledger.rememberedCount, 0)



class RateTests(SynchronousTestCase):
    """
    Attempts that would ask over XMPP are limited per client address, and
    undeliverable confirmations per client address and target domain, in
    tables of bounded size.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.limits = Limits(
            attemptsPerClient=3,
            attemptWindow=60,
            undeliverablePerTarget=2,
            undeliverableWindow=600,
            maxTrackedClients=4,
            pendingPerJID=100,
        )
        self.ledger = Ledger(self.clock, AccessRules.anyone(), self.limits)
        self.count = 0

    def ask(self, client: str, who: str = "juliet@capulet.com", outcome: str = "allow") -> Decision:
        """
        Decide an attempt with a new transaction id; if asked, end it with
        C{outcome}: C{allow}, C{deny}, C{timeout} or C{undeliverable}.
        """
        self.count += 1
        a = attempt(who=who, client=client, transactionId="t%d" % (self.count,))
        decision = self.ledger.decide(a, 30)
        if isinstance(decision, Ask):
            if outcome in ("allow", "deny"):
                self.ledger.settle(a, outcome == "allow")
            else:
                self.ledger.abandon(a, undeliverable=outcome == "undeliverable")
        return decision

    def test_attemptsPerClient(self) -> None:
        """
        A client address may ask C{attemptsPerClient} confirmations at
        once, then one per C{attemptWindow / attemptsPerClient} seconds;
        beyond, 429 with the seconds until it may ask again. Requests that
        ask nothing (passing in a session, joining a pending confirmation)
        and refusals do not count; other addresses are not affected.
        """
        first = attempt(client="192.0.2.1", transactionId="first")
        self.assertIsInstance(self.ledger.decide(first, 30), Ask)
        for n in range(10):
            self.assertIsInstance(self.ledger.decide(first, 30), Join)
        self.ledger.settle(first, True)
        for n in range(10):
            self.assertIsInstance(self.ledger.decide(first, 30), Pass)
        for outcome in ("timeout", "undeliverable"):
            self.assertIsInstance(self.ask("192.0.2.1", outcome=outcome, who="r@x"), Ask)
        for n in range(3):
            decision = self.ask("192.0.2.1")
            assert isinstance(decision, Refuse), decision
            self.assertEqual((decision.error, decision.retryAfter), (RateLimited, 20))
            self.assertIn("192.0.2.1", decision.reason)
        self.assertIsInstance(self.ask("192.0.2.2"), Ask)
        self.clock.advance(19)
        self.assertIsInstance(self.ask("192.0.2.1"), Refuse)
        self.clock.advance(1)
        self.assertIsInstance(self.ask("192.0.2.1"), Ask)
        self.assertIsInstance(self.ask("192.0.2.1"), Refuse)

    def test_undeliverablePerTarget(self) -> None:
        """
        After C{undeliverablePerTarget} undeliverable confirmations from one
        client address to one domain, that address may not ask that domain
        (429 with Retry-After) until one is forgiven; the same address
        may ask other domains, and other addresses that domain. Answers
        and timeouts are not counted.
        """
        limits = attrs.evolve(self.limits, attemptsPerClient=100)
        self.ledger = Ledger(self.clock, AccessRules.anyone(), limits)
        for outcome in ("allow", "deny", "timeout", "undeliverable", "timeout", "undeliverable"):
            self.assertIsInstance(self.ask("192.0.2.1", "x%s@capulet.com" % (self.count,), outcome), Ask)
        decision = self.ask("192.0.2.1", "juliet@capulet.com")
        assert isinstance(decision, Refuse), decision
        self.assertEqual((decision.error, decision.retryAfter), (RateLimited, 300))
        self.assertIn("192.0.2.1 to capulet.com", decision.reason)
        self.assertIsInstance(self.ask("192.0.2.1", "romeo@montague.lit"), Ask)
        self.assertIsInstance(self.ask("192.0.2.9", "juliet@capulet.com"), Ask)
        self.clock.advance(300)
        self.assertIsInstance(self.ask("192.0.2.1", "juliet@capulet.com", "undeliverable"), Ask)
        self.assertIsInstance(self.ask("192.0.2.1", "juliet@capulet.com"), Refuse)

    def test_bounded(self) -> None:
        """
        At most C{maxTrackedClients} client addresses (and pairs of address
        and domain) are tracked: a new one makes the one idle the longest
        forgotten, which only forgives it; nobody is locked out by a full
        table. Entries idle for a whole window are forgotten.
        """
        for n in range(3):
            self.ask("192.0.2.1", outcome="undeliverable", who="x%d@capulet.com" % (n,))
        self.assertIsInstance(self.ask("192.0.2.1"), Refuse)
        for n in range(2, 50):
            self.assertIsInstance(self.ask("192.0.2.%d" % (n,), outcome="undeliverable"), Ask)
            self.assertLessEqual(len(self.ledger._attempts), 4)
            self.assertLessEqual(len(self.ledger._undeliverable), 4)
        self.assertIsInstance(self.ask("192.0.2.1"), Ask)
        self.clock.advance(600)
        self.ask("192.0.2.200", who="x@y")
        self.assertEqual(self.ledger.trackedCount, 1)
