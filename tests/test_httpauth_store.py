# -*- test-case-name: tests.test_httpauth_store -*-
"""
Tests for the confirmer's stores (L{xmppcomp.httpauth.IConfirmationStore}):
one set of interface test cases (L{StoreTestsMixin}) run against the
L{MemoryStore} and against a L{RedisStore} on a real, private redis-server
(L{tests.redisserver}); then what only a shared store does: two instances
on one Redis (replays, limits, relaying answers to their owner), and
failing closed (Redis stopped, hung, emptied, or evicting).

Each interface case runs the same calls on a reference L{Ledger} with the
same clock and checks that the store decides exactly as the ledger does:
same decision, same reason, same C{Retry-After}.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.words.xish import domish
from zope.interface import implementer
from zope.interface.verify import verifyObject

from xmppcomp.httpauth import (
    ConfirmationCredentials,
    IConfirmationStore,
    MemoryStore,
    RedisStore,
    StoreUnavailable,
    XMPPConfirmationChecker,
    parseRedisEndpoint,
)
from xmppcomp.httpauth._errors import AccessForbidden, EndToEndRequired, RateLimited, Replayed
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
from xmppcomp.httpauth._protocol import Outcome, parseJID

from .redisserver import RedisHarness, RedisServer, startRedis
from .test_httpauth_policy import attempt
from .test_httpauth_web import FakeRequester

#: Limits small enough to reach in a test.
LIMITS = Limits(
    pendingPerJID=2,
    pendingTotal=3,
    sessionLifetime=300,
    windowLifetime=60,
    replayMemory=3600,
    rememberedPerJID=3,
    rememberedPerDomain=4,
    maxRemembered=5,
    attemptsPerClient=6,
    attemptWindow=60,
    undeliverablePerTarget=2,
    undeliverableWindow=600,
)

RULES = AccessRules([
    AccessRule("/", anyone=True),
    AccessRule("/private", jids=["romeo@montague.lit"]),
    AccessRule("/secure", anyone=True, xtlsFor=["juliet@capulet.com"]),
])

#: How many reactor turns (of 10 ms) a test waits at most for a store to
#: reconnect by itself.
RECONNECT_POLLS = 500


@implementer(ILogObserver)
class _Events:
    """
    Collects the log events of one namespace.
    """

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        if str(event.get("log_namespace", "")).startswith(self.namespace):
            self.events.append(event)

    def at(self, level: LogLevel) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("log_level") == level]


def _observe(testCase: Any, namespace: str) -> _Events:
    events = _Events(namespace)
    globalLogPublisher.addObserver(events)
    testCase.addCleanup(globalLogPublisher.removeObserver, events)
    return events


class StoreTestsMixin:
    """
    The interface test cases: a subclass makes the store (L{makeStore}) on
    C{self.clock}; every decision is checked against a L{Ledger}'s.
    """

    clock: Clock
    store: IConfirmationStore
    ledger: Ledger

    def makeStore(self, limits: Limits, rules: AccessRules) -> Deferred[IConfirmationStore]:
        raise NotImplementedError()

    @inlineCallbacks
    def setUp(self) -> Any:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.ledger = Ledger(self.clock, RULES, LIMITS)
        self.store = yield self.makeStore(LIMITS, RULES)

    @inlineCallbacks
    def decide(self, a: Attempt, timeout: float = 30) -> Any:
        """
        The store's decision for C{a}, which must equal the reference
        ledger's.
        """
        decision = yield self.store.decide(a, timeout)
        self.assertEqual(decision, self.ledger.decide(a, timeout))  # type: ignore[attr-defined]
        return decision

    @inlineCallbacks
    def settle(self, a: Attempt, allowed: bool, by: str | None = None) -> Any:
        who = parseJID(by) if by is not None else None
        yield self.store.settle(a, allowed, who)
        self.ledger.settle(a, allowed, who)

    @inlineCallbacks
    def abandon(self, a: Attempt, undeliverable: bool = False) -> Any:
        yield self.store.abandon(a, undeliverable)
        self.ledger.abandon(a, undeliverable)

    @inlineCallbacks
    def confirmed(self, a: Attempt, by: str | None = None) -> Any:
        decision = yield self.decide(a)
        self.assertIsInstance(decision, Ask)  # type: ignore[attr-defined]
        yield self.settle(a, True, by)

    def refused(self, decision: Decision, error: type, reason: str) -> Refuse:
        assert isinstance(decision, Refuse), decision
        self.assertIs(decision.error, error)  # type: ignore[attr-defined]
        self.assertIn(reason, decision.reason)  # type: ignore[attr-defined]
        return decision

    def test_provides(self) -> None:
        """
        The store provides L{IConfirmationStore}, with a hex instance id.
        """
        self.assertTrue(verifyObject(IConfirmationStore, self.store))  # type: ignore[attr-defined]
        int(self.store.instanceId, 16)

    @inlineCallbacks
    def test_ping(self) -> Any:
        """
        A store that serves says so to a health check.
        """
        self.assertIs((yield self.store.ping()), True)  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_askThenJoin(self) -> Any:
        """
        New credentials are asked for; the same credentials from the same
        client and site, with a safe method, join the pending confirmation.
        """
        decision = yield self.decide(attempt())
        self.assertEqual(decision, Ask(("juliet@capulet.com", "t1")))  # type: ignore[attr-defined]
        decision = yield self.decide(attempt(url="https://files.example/a.css"))
        self.assertEqual(decision, Join(("juliet@capulet.com", "t1")))  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_forbidden(self) -> Any:
        """
        The access rules refuse without asking.
        """
        decision = yield self.decide(attempt(url="https://files.example/private/x"))
        self.refused(decision, AccessForbidden, "may not access")

    @inlineCallbacks
    def test_endToEnd(self) -> Any:
        """
        Where the rules require XTLS for a JID, the decision to ask says
        so (issue 21); a bare JID there is refused with
        L{EndToEndRequired} before anything is recorded, and other JIDs
        are asked as before.
        """
        secure = "https://files.example/secure/x"
        decision = yield self.decide(attempt(url=secure))
        self.assertEqual(decision, Ask(("juliet@capulet.com", "t1"), True))  # type: ignore[attr-defined]
        decision = yield self.decide(attempt(who="juliet@capulet.com", transactionId="t2", url=secure))
        self.refused(decision, EndToEndRequired, "a full JID is needed for this site")
        decision = yield self.decide(attempt(who="juliet@capulet.com/balcony", transactionId="t2", url=secure))
        self.assertEqual(decision, Ask(("juliet@capulet.com", "t2"), True))  # type: ignore[attr-defined]
        decision = yield self.decide(attempt(who="romeo@montague.lit", url=secure))
        self.assertEqual(decision, Ask(("romeo@montague.lit", "t1"), False))  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_session(self) -> Any:
        """
        An allow opens a session: safe methods pass, reporting who confirmed.
        """
        yield self.confirmed(attempt(), by="juliet@capulet.com/phone")
        decision = yield self.decide(attempt(url="https://files.example/a.css"))
        self.assertEqual(decision, Pass("session", parseJID("juliet@capulet.com/phone")))  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_sessionElsewhere(self) -> Any:
        """
        The session's credentials from another client address are a replay.
        """
        yield self.confirmed(attempt())
        decision = yield self.decide(attempt(client="198.51.100.9"))
        self.refused(decision, Replayed, "another site or client")

    @inlineCallbacks
    def test_deniedIsUsed(self) -> Any:
        """
        A denial uses the transaction id up.
        """
        yield self.decide(attempt())
        yield self.settle(attempt(), False)
        decision = yield self.decide(attempt())
        self.refused(decision, Replayed, "used already")

    @inlineCallbacks
    def test_sessionExpires(self) -> Any:
        """
        Past its lifetime the session is gone and the id is a replay.
        """
        yield self.confirmed(attempt())
        self.clock.advance(LIMITS.sessionLifetime + 1)
        decision = yield self.decide(attempt())
        self.refused(decision, Replayed, "used already")

    @inlineCallbacks
    def test_window(self) -> Any:
        """
        A confirmed HEAD opens a window for its URL that outlives the session
        a later denial ends.
        """
        head = attempt(method="HEAD")
        yield self.confirmed(head)
        post = attempt(method="POST")
        decision = yield self.decide(post)
        self.assertIsInstance(decision, Ask)  # type: ignore[attr-defined]
        yield self.settle(post, False)
        decision = yield self.decide(attempt())
        self.assertEqual(decision, Pass("window", parseJID("juliet@capulet.com/balcony")))  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_pendingUnsafe(self) -> Any:
        """
        A pending confirmation refuses an unsafe method with the same
        credentials (429), and other requests' use of them (a replay).
        """
        yield self.decide(attempt())
        decision = yield self.decide(attempt(method="POST"))
        self.refused(decision, RateLimited, "is pending")
        decision = yield self.decide(attempt(client="198.51.100.9"))
        self.refused(decision, Replayed, "another request")

    @inlineCallbacks
    def test_abandonConsumesNothing(self) -> Any:
        """
        An abandoned confirmation leaves the id unused.
        """
        yield self.decide(attempt())
        yield self.abandon(attempt())
        decision = yield self.decide(attempt())
        self.assertIsInstance(decision, Ask)  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_undeliverable(self) -> Any:
        """
        Undeliverable confirmations count per client address and domain.
        """
        for n in range(LIMITS.undeliverablePerTarget):
            a = attempt(transactionId=f"u{n}")
            yield self.decide(a)
            yield self.abandon(a, undeliverable=True)
        decision = yield self.decide(attempt(transactionId="u9"))
        self.refused(decision, RateLimited, "could not be delivered")
        decision = yield self.decide(attempt(transactionId="u9", who="romeo@montague.lit/r"))
        self.assertIsInstance(decision, Ask)  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_attempts(self) -> Any:
        """
        Confirmations asked count per client address (a token bucket).
        """
        for n in range(LIMITS.attemptsPerClient):
            a = attempt(transactionId=f"a{n}", who=f"user{n}@example.net/r")
            yield self.decide(a)
            yield self.abandon(a)
        decision = yield self.decide(attempt(transactionId="a9"))
        self.refused(decision, RateLimited, "were asked from 192.0.2.1")
        self.clock.advance(LIMITS.attemptWindow)
        decision = yield self.decide(attempt(transactionId="a9"))
        self.assertIsInstance(decision, Ask)  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_pendingLimits(self) -> Any:
        """
        Pending confirmations count per JID and in total.
        """
        yield self.decide(attempt(transactionId="p1"))
        self.clock.advance(1)
        yield self.decide(attempt(transactionId="p2"))
        decision = yield self.decide(attempt(transactionId="p3"))
        self.refused(decision, RateLimited, "already pending for juliet@capulet.com")
        yield self.decide(attempt(transactionId="p4", who="romeo@montague.lit/r"))
        decision = yield self.decide(attempt(transactionId="p5", who="tybalt@capulet.com/r"))
        self.refused(decision, RateLimited, "too many confirmations are pending")

    @inlineCallbacks
    def test_rememberedShares(self) -> Any:
        """
        Used ids count per JID, per domain and in total; their room frees
        up as they expire.
        """
        for n in range(LIMITS.rememberedPerJID):
            yield self.confirmed(attempt(transactionId=f"r{n}"))
            self.clock.advance(1)
        decision = yield self.decide(attempt(transactionId="r9"))
        self.refused(decision, RateLimited, "of juliet@capulet.com are remembered")
        yield self.confirmed(attempt(transactionId="n1", who="nurse@capulet.com/r"))
        decision = yield self.decide(attempt(transactionId="n2", who="nurse@capulet.com/r"))
        self.refused(decision, RateLimited, "at capulet.com are remembered")
        yield self.confirmed(attempt(transactionId="m1", who="romeo@montague.lit/r"))
        decision = yield self.decide(attempt(transactionId="m2", who="romeo@montague.lit/r"))
        self.refused(decision, RateLimited, "too many transaction ids are remembered")
        self.clock.advance(LIMITS.replayMemory)
        decision = yield self.decide(attempt(transactionId="r9"))
        self.assertIsInstance(decision, Ask)  # type: ignore[attr-defined]


class MemoryStoreTests(StoreTestsMixin, TestCase):
    """
    The interface cases against L{MemoryStore}.
    """

    def makeStore(self, limits: Limits, rules: AccessRules) -> Deferred[IConfirmationStore]:
        return defer.succeed(MemoryStore(Ledger(self.clock, rules, limits)))


def redisStore(
    testCase: TestCase,
    server: RedisServer,
    clock: Any = None,
    limits: Limits = LIMITS,
    **kwargs: Any,
) -> RedisStore:
    """
    A L{RedisStore} on C{server}, stopped by a cleanup of C{testCase}.
    """
    store = RedisStore(
        reactor, server.host, server.port, RULES, limits, clock=clock, prefix="test:", **kwargs
    )
    testCase.addCleanup(store.stop)
    return store


class RedisStoreTests(StoreTestsMixin, TestCase):
    """
    The interface cases against L{RedisStore} on a private redis-server.
    """

    @inlineCallbacks
    def makeStore(self, limits: Limits, rules: AccessRules) -> Any:
        self.server = yield startRedis(self)
        store = redisStore(self, self.server, self.clock, limits)
        yield store.start()
        return store


class EndpointTests(SynchronousTestCase):
    """
    Tests for L{parseRedisEndpoint}.
    """

    def test_parsed(self) -> None:
        """
        C{tcp:host=...:port=...} gives the host and port, in either order,
        an IPv6 address's colons escaped.
        """
        self.assertEqual(parseRedisEndpoint("tcp:host=127.0.0.1:port=6379"), ("127.0.0.1", 6379))
        self.assertEqual(parseRedisEndpoint("tcp:port=1:host=redis.example"), ("redis.example", 1))
        self.assertEqual(parseRedisEndpoint(r"tcp:host=\:\:1:port=6380"), ("::1", 6380))

    def test_refused(self) -> None:
        """
        Other forms are refused, each saying what is wrong and how to write it.
        """
        for value, message in [
            ("unix:/run/redis.sock", "only tcp:host=...:port=... is supported"),
            ("tls:host=a:port=1", "only tcp:host=...:port=... is supported"),
            ("tcp:6379", "has no name"),
            ("tcp:host=a", "port is missing"),
            ("tcp:host=a:port=0", "from 1 to 65535"),
            ("tcp:host=a:port=x", "from 1 to 65535"),
            ("tcp:host=a:port=1:timeout=3", "unknown parameter 'timeout'"),
            ("tcp:host=a:host=b:port=1", "host is given twice"),
        ]:
            with self.assertRaises(ValueError) as raised:
                parseRedisEndpoint(value)
            self.assertIn(message, str(raised.exception))
            self.assertIn('"tcp:host=127.0.0.1:port=6379"', str(raised.exception))


class SharedRedisTests(TestCase):
    """
    Two instances on one Redis act as one confirmer.
    """

    @inlineCallbacks
    def setUp(self) -> Any:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.server = yield startRedis(self)
        self.a = redisStore(self, self.server, self.clock)
        self.b = redisStore(self, self.server, self.clock)
        yield self.a.start()
        yield self.b.start()

    @inlineCallbacks
    def test_replayAcrossInstances(self) -> Any:
        """
        A transaction id confirmed through A is refused on B, and one
        pending on A cannot be asked again on B.
        """
        first = attempt()
        self.assertIsInstance((yield self.a.decide(first, 30)), Ask)
        decision = yield self.b.decide(attempt(method="POST"), 30)
        self.assertIsInstance(decision, Refuse)
        yield self.a.settle(first, True)
        decision = yield self.b.decide(attempt(client="198.51.100.9"), 30)
        self.assertEqual(decision.error, Replayed)
        decision = yield self.b.decide(attempt(transactionId="t1", who="juliet@capulet.com/other"), 30)
        self.assertEqual(decision.error, Replayed)
        self.assertIn("used already", decision.reason)

    @inlineCallbacks
    def test_pendingOnOtherInstance(self) -> Any:
        """
        A safe request joins a pending confirmation only on its owner; on
        another instance it is told to wait (429 with Retry-After).
        """
        yield self.a.decide(attempt(), 30)
        decision = yield self.a.decide(attempt(url="https://files.example/a.css"), 30)
        self.assertIsInstance(decision, Join)
        decision = yield self.b.decide(attempt(url="https://files.example/a.css"), 30)
        self.assertEqual(decision.error, RateLimited)
        self.assertIn("pending on another instance", decision.reason)
        self.assertEqual(decision.retryAfter, 30)

    @inlineCallbacks
    def test_limitsAcrossInstances(self) -> Any:
        """
        Pending confirmations, attempts and undeliverable counts add up
        across instances.
        """
        yield self.a.decide(attempt(transactionId="p1"), 30)
        yield self.b.decide(attempt(transactionId="p2"), 30)
        decision = yield self.a.decide(attempt(transactionId="p3"), 30)
        self.assertIn("2 confirmations are already pending for juliet@capulet.com", decision.reason)
        decision = yield self.b.decide(attempt(transactionId="p3", who="romeo@montague.lit/r"), 30)
        self.assertIsInstance(decision, Ask)
        decision = yield self.a.decide(attempt(transactionId="p4", who="tybalt@capulet.com/r"), 30)
        self.assertIn("too many confirmations are pending", decision.reason)
        for store, tid in [(self.a, "p1"), (self.b, "p2")]:
            yield store.abandon(attempt(transactionId=tid), undeliverable=True)
        decision = yield self.b.decide(attempt(transactionId="p5"), 30)
        self.assertIn("could not be delivered", decision.reason)

    @inlineCallbacks
    def test_relayToOwner(self) -> Any:
        """
        An answer relayed to an instance reaches its listener; one relayed
        to an instance that is gone is reported undelivered.
        """
        got: list[str] = []
        arrived: Deferred[None] = Deferred()

        def receive(text: str) -> None:
            got.append(text)
            arrived.callback(None)

        self.b.listen(receive)
        delivered = yield self.a.relay(self.b.instanceId, "<iq type='result' id='x'/>")
        self.assertTrue(delivered)
        yield arrived
        self.assertEqual(got, ["<iq type='result' id='x'/>"])
        delivered = yield self.a.relay("0123456789abcdef", "<iq type='result' id='y'/>")
        self.assertFalse(delivered)

    @inlineCallbacks
    def test_relayWhileStarting(self) -> Any:
        """
        An answer relayed by an instance whose store is still making its
        first connections waits for them, instead of failing: a confirmer
        that just started may be given answers for the other instances as
        soon as its component is bound.
        """
        got: Deferred[str] = Deferred()
        self.b.listen(got.callback)
        late = redisStore(self, self.server, self.clock)
        started = late.start()
        delivered = yield late.relay(self.b.instanceId, "<iq type='result' id='z'/>")
        self.assertTrue(delivered)
        self.assertEqual((yield got), "<iq type='result' id='z'/>")
        yield started

    @inlineCallbacks
    def test_lostPendingGrantsNothing(self) -> Any:
        """
        An allow whose pending entry is no longer the asker's (it expired
        and another request took the id) fails closed; the id is used.
        """
        yield self.a.decide(attempt(), 30)
        self.clock.advance(30 + 6)
        self.assertIsInstance((yield self.b.decide(attempt(), 30)), Ask)
        failure = yield self.assertFailure(self.a.settle(attempt(), True), StoreUnavailable)
        self.assertIn("nothing was granted", str(failure))
        yield self.b.settle(attempt(), True)


class RedisFailClosedTests(TestCase):
    """
    Redis unreachable, hung, emptied or evicting: nothing is granted, the
    answer is 503 with C{Retry-After}, one log line per outage, and the
    store reconnects by itself.
    """

    def checker(self, store: IConfirmationStore) -> tuple[XMPPConfirmationChecker, FakeRequester]:
        requester = FakeRequester()
        return XMPPConfirmationChecker(requester, store, Clock()), requester

    @inlineCallbacks
    def waitUntil(self, store: RedisStore, what: Any) -> Any:
        """
        Poll C{store.decide} (a new id each time) until C{what(decision or
        failure)}, for at most L{RECONNECT_POLLS} reactor turns.
        """
        for n in range(RECONNECT_POLLS):
            try:
                result = yield store.decide(attempt(transactionId=f"poll{n}"), 30)
            except StoreUnavailable as e:
                result = e
            if what(result):
                return result
            yield deferLater(reactor, 0.01, lambda: None)
        self.fail(f"no {what} after {RECONNECT_POLLS} polls")

    @inlineCallbacks
    def test_stoppedThenRestored(self) -> Any:
        """
        Redis stopped mid-way: a request fails closed with 503 and
        C{Retry-After}, nobody is asked, one error line is logged for the
        whole outage. Started again empty, the epoch is missing: still
        closed, one more error line saying what the operator does; once the
        operator restores the epoch, the store serves again by itself.
        """
        events = _observe(self, "xmppcomp.httpauth._redis")
        server = yield startRedis(self)
        harness: RedisHarness = self.redis  # type: ignore[attr-defined]
        store = redisStore(self, server)
        yield store.start()
        checker, requester = self.checker(store)
        d = checker.requestAvatarId(ConfirmationCredentials(attempt(transactionId="before")))
        yield deferLater(reactor, 0, lambda: None)
        yield self.waitUntil(store, lambda r: isinstance(r, Ask))
        self.assertEqual(len(requester.asked), 1)
        self.assertIs((yield store.ping()), True)
        yield harness.stop()
        for n in range(3):
            failure = yield self.assertFailure(
                checker.requestAvatarId(ConfirmationCredentials(attempt(transactionId=f"down{n}"))),
                StoreUnavailable,
            )
            self.assertEqual((failure.status, failure.forwardStatus), (503, 403))
            self.assertEqual(failure.retryAfter, 5)
        self.assertEqual(len(requester.asked), 1)
        # The confirmation in flight: its allow cannot be recorded.
        requester.asked[0][2].callback(Outcome.ALLOW)
        yield self.assertFailure(d, StoreUnavailable)
        self.assertEqual(len(events.at(LogLevel.error)), 1, events.events)
        self.assertIs((yield store.ping()), False)

        yield harness.start()
        result = yield self.waitUntil(store, lambda r: isinstance(r, StoreUnavailable) and "epoch" in str(r))
        self.assertIs((yield store.ping()), False)  # connected, but the data is gone
        self.assertIn("redis-cli SET 'test:epoch'", str(result))
        self.assertIsNone((yield harness.command("GET", "test:epoch")))
        yield harness.command("SET", "test:epoch", store.epoch or "")
        yield self.waitUntil(store, lambda r: isinstance(r, Ask))
        self.assertIs((yield store.ping()), True)
        errors = events.at(LogLevel.error)
        self.assertEqual(len(errors), 2, events.events)
        self.assertIn("redis-cli SET", errors[1]["why"])
        self.assertTrue(any("available again" in str(e.get("log_format")) for e in events.events))

    @inlineCallbacks
    def test_hungRedisTimesOut(self) -> Any:
        """
        A Redis that stops answering fails the request closed after the
        timeout (on the store's clock), and the store reconnects once it
        answers again, its data intact.
        """
        clock = Clock()
        server = yield startRedis(self)
        harness: RedisHarness = self.redis  # type: ignore[attr-defined]
        store = redisStore(self, server, clock)
        yield store.start()
        first = attempt(transactionId="kept")
        yield store.decide(first, 30)
        yield store.settle(first, True)
        harness.signal("STOP")
        self.addCleanup(harness.signal, "CONT")
        d = store.decide(attempt(transactionId="hung"), 30)
        clock.advance(0.9)
        self.assertNoResult(d)
        clock.advance(0.1)
        yield self.assertFailure(d, StoreUnavailable)
        pinged = store.ping()
        clock.advance(1.0)
        self.assertIs((yield pinged), False)
        harness.signal("CONT")
        for n in range(RECONNECT_POLLS):
            clock.advance(0.05)
            try:
                decision = yield store.decide(attempt(transactionId="kept", client="198.51.100.9"), 30)
            except StoreUnavailable as e:
                last = e
                yield deferLater(reactor, 0.01, lambda: None)
                continue
            break
        else:
            self.fail(f"the store did not reconnect: {last}")
        self.assertEqual(decision.error, Replayed)

    @inlineCallbacks
    def test_slowReplyCostsOnlyItsRequest(self) -> Any:
        """
        A reply slower than the timeout fails its own request (closed), and
        nothing else: a command sent meanwhile gets its own right answer
        once Redis answers, on the same connection; the late reply is read
        without putting the replies out of step, and the pending entry it
        made is taken back.
        """
        clock = Clock()
        server = yield startRedis(self)
        harness: RedisHarness = self.redis  # type: ignore[attr-defined]
        store = redisStore(self, server, clock)
        yield store.start()
        harness.signal("STOP")
        self.addCleanup(harness.signal, "CONT")
        slow = store.decide(attempt(transactionId="slow"), 30)
        clock.advance(0.6)
        meanwhile = store.decide(attempt(transactionId="meanwhile", client="198.51.100.7"), 30)
        clock.advance(0.4)
        yield self.assertFailure(slow, StoreUnavailable)
        self.assertNoResult(meanwhile)
        harness.signal("CONT")
        decision = yield meanwhile
        self.assertIsInstance(decision, Ask)
        self.assertEqual(decision.key[1], "meanwhile")
        # The same connection goes on, its replies in step; and the pending
        # entry the slow decision made in Redis (nobody was asked) was taken
        # back when its reply came: Juliet (at most 2 pending here) has one.
        again = yield store.decide(attempt(transactionId="other", client="198.51.100.8"), 30)
        self.assertIsInstance(again, Ask)
        self.assertEqual(again.key[1], "other")

    @inlineCallbacks
    def test_hungRedisDropped(self) -> Any:
        """
        A command left unanswered for five timeouts: the connection is taken
        as hung and dropped (logged), and made again once Redis answers.
        """
        events = _observe(self, "xmppcomp.httpauth._redis")
        clock = Clock()
        server = yield startRedis(self)
        harness: RedisHarness = self.redis  # type: ignore[attr-defined]
        store = redisStore(self, server, clock)
        yield store.start()
        harness.signal("STOP")
        self.addCleanup(harness.signal, "CONT")
        d = store.decide(attempt(transactionId="hung"), 30)
        clock.advance(1.0)
        yield self.assertFailure(d, StoreUnavailable)
        clock.advance(3.9)
        self.assertFalse(any("unanswered" in str(e.get("log_format")) for e in events.events))
        clock.advance(0.1)
        self.assertTrue(any("unanswered" in str(e.get("log_format")) for e in events.events), events.events)
        harness.signal("CONT")
        for n in range(RECONNECT_POLLS):
            clock.advance(0.05)
            try:
                decision = yield store.decide(attempt(transactionId=f"after{n}"), 30)
            except StoreUnavailable:
                yield deferLater(reactor, 0.01, lambda: None)
                continue
            break
        else:
            self.fail("the store did not reconnect")
        self.assertIsInstance(decision, Ask)

    @inlineCallbacks
    def test_evictingRedisRefused(self) -> Any:
        """
        A Redis whose maxmemory-policy is not noeviction is refused at
        start, with what to set; every request fails closed.
        """
        server = yield startRedis(self, policy="allkeys-lru")
        store = redisStore(self, server)
        failure = yield self.assertFailure(store.start(), StoreUnavailable)
        self.assertIn("maxmemory-policy 'allkeys-lru'", str(failure))
        self.assertIn("noeviction", str(failure))
        yield self.assertFailure(store.decide(attempt(), 30), StoreUnavailable)

    @inlineCallbacks
    def test_unreachable(self) -> Any:
        """
        No Redis at all: start fails, requests fail closed at once.
        """
        server = yield startRedis(self)
        harness: RedisHarness = self.redis  # type: ignore[attr-defined]
        yield harness.stop()
        store = redisStore(self, server)
        yield self.assertFailure(store.start(), StoreUnavailable)
        yield self.assertFailure(store.decide(attempt(), 30), StoreUnavailable)

    @inlineCallbacks
    def test_password(self) -> Any:
        """
        A Redis with a password: the right one serves, a wrong one is
        refused at start.
        """
        server = yield startRedis(self, password="s3cret")
        good = redisStore(self, server, password="s3cret")
        yield good.start()
        self.assertIsInstance((yield good.decide(attempt(), 30)), Ask)
        bad = redisStore(self, server, password="wrong")
        failure = yield self.assertFailure(bad.start(), StoreUnavailable)
        self.assertIn("WRONGPASS", str(failure))

    @inlineCallbacks
    def test_commandTimeoutAtConnect(self) -> Any:
        """
        A server that accepts but never answers: the connection's first
        command times out on the store's clock and start fails.
        """
        clock = Clock()
        port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        store = RedisStore(
            reactor, "127.0.0.1", port.getHost().port, RULES, LIMITS, clock=clock, prefix="test:"
        )
        self.addCleanup(store.stop)
        started = store.start()
        for n in range(RECONNECT_POLLS):
            yield deferLater(reactor, 0.01, lambda: None)
            clock.advance(0.5)
            if started.called:
                break
        yield self.assertFailure(started, StoreUnavailable)


class RelayTests(TestCase):
    """
    Two L{ConfirmationRequester}s sharing one Redis: an answer that reaches
    the instance that did not ask is relayed to the one that did, which
    matches it on the id and the sender as if it had received it.
    """

    @inlineCallbacks
    def setUp(self) -> Any:
        from wokkel.generic import XmlPipe

        from xmppcomp.httpauth import ConfirmationRequester

        from .test_httpauth_xmpp import COMPONENT, attach

        self.server = yield startRedis(self)
        self.clock = Clock()
        self.stores = [redisStore(self, self.server, self.clock) for _ in range(2)]
        self.pipes = [XmlPipe() for _ in range(2)]
        self.requesters = []
        self.sent: list[list[Any]] = []
        for store, pipe in zip(self.stores, self.pipes):
            yield store.start()
            requester = ConfirmationRequester(COMPONENT, self.clock, timeout=60, relay=store)
            attach(requester, pipe.source)
            sent: list[Any] = []
            pipe.sink.addObserver("/*", sent.append)
            self.requesters.append(requester)
            self.sent.append(sent)

    @inlineCallbacks
    def test_iqAnswerRelayed(self) -> Any:
        """
        The IQ result from the JID asked by A, arriving at B, answers A's
        confirmation; the ids name A.
        """
        from .test_httpauth_xmpp import JULIET, REQUEST, reply

        d = self.requesters[0].confirm(JULIET, REQUEST)
        [iq] = self.sent[0]
        self.assertTrue(iq["id"].startswith(self.stores[0].instanceId + "-"))
        self.pipes[1].sink.send(reply(iq, JULIET.full()))
        answer = yield d
        self.assertEqual((answer.outcome, answer.by), (Outcome.ALLOW, JULIET))

    @inlineCallbacks
    def test_relayLostEndsPending(self) -> Any:
        """
        Redis goes away while confirmations wait: they end at once with
        L{StoreUnavailable} (503), not after the user's timeout, and are
        never granted, even if the user's answer then arrives.
        """
        from .test_httpauth_xmpp import JULIET, REQUEST, reply

        d = self.requesters[0].confirm(JULIET, REQUEST)
        [iq] = self.sent[0]
        harness: RedisHarness = self.redis  # type: ignore[attr-defined]
        yield harness.stop()
        failure = yield self.assertFailure(d, StoreUnavailable)
        self.assertIn("subscription to Redis", str(failure))
        self.assertEqual(failure.status, 503)
        self.pipes[0].sink.send(reply(iq, JULIET.full()))  # too late: nothing waits

    @inlineCallbacks
    def test_messageAnswerRelayed(self) -> Any:
        """
        The reply to the message form, arriving at B, answers A's
        confirmation (a denial here).
        """
        from twisted.words.protocols.jabber.jid import JID

        from .test_httpauth_xmpp import REQUEST

        d = self.requesters[0].confirm(JID("juliet@capulet.com"), REQUEST)
        [message] = self.sent[0]
        answer = domish.Element((None, "message"))
        answer["from"] = "juliet@capulet.com/balcony"
        answer["to"] = message["from"]
        answer["type"] = "error"
        answer.addElement("thread", content=str(message.thread))
        answer.addChild(REQUEST.toElement())
        error = answer.addElement("error")
        error["type"] = "auth"
        error.addElement(("urn:ietf:params:xml:ns:xmpp-stanzas", "not-authorized"))
        self.pipes[1].sink.send(answer)
        result = yield d
        self.assertEqual(result.outcome, Outcome.DENY)

    @inlineCallbacks
    def test_wrongSenderNotMatched(self) -> Any:
        """
        A relayed result from another JID than the one asked answers
        nothing, as it would not on the asker's own stream.
        """
        from .test_httpauth_xmpp import JULIET, REQUEST, reply

        events = _observe(self, "xmppcomp.httpauth._xmpp")
        d = self.requesters[0].confirm(JULIET, REQUEST)
        [iq] = self.sent[0]
        self.pipes[1].sink.send(reply(iq, "romeo@montague.lit/r"))
        for n in range(RECONNECT_POLLS):
            if any("matches no confirmation" in str(e.get("log_format")) for e in events.events):
                break
            yield deferLater(reactor, 0.01, lambda: None)
        else:
            self.fail("the unmatched answer was not logged")
        self.assertNoResult(d)
        d.cancel()
        self.failureResultOf(d)

    @inlineCallbacks
    def test_deadOwnerDropped(self) -> Any:
        """
        An answer for an instance that is gone (no subscriber on its
        channel) is dropped and logged.
        """
        from .test_httpauth_xmpp import JULIET, REQUEST, reply

        events = _observe(self, "xmppcomp.httpauth._xmpp")
        d = self.requesters[0].confirm(JULIET, REQUEST)
        [iq] = self.sent[0]
        yield self.stores[0].stop()
        self.pipes[1].sink.send(reply(iq, JULIET.full()))
        for n in range(RECONNECT_POLLS):
            if any("that instance is gone" in str(e.get("log_format")) for e in events.events):
                break
            yield deferLater(reactor, 0.01, lambda: None)
        else:
            self.fail("the dropped answer was not logged")
        self.assertNoResult(d)
        d.cancel()
        self.failureResultOf(d)


class ServiceTreeTests(SynchronousTestCase):
    """
    C{[httpauth.store] redis} puts a L{StoreService} in the component's tree
    and the L{RedisStore} behind the confirmer and its requester.
    """

    def test_redisStoreInTree(self) -> None:
        """
        The store service comes before the component and the listener (so
        it stops after both: answers the component still receives while it
        closes its stream are relayed); the confirmer, the requester and
        the service share one store with the configured prefix.
        """
        from xmppcomp.config import componentConfigFromMapping
        from xmppcomp.services import COMPONENT_SERVICE, HTTPAUTH_SERVICE, STORE_SERVICE, serviceFromConfig

        config = componentConfigFromMapping(
            {
                "component": {
                    "hostnames": ["comp.example.net"],
                    "server": "tcp:host=127.0.0.1:port=5347",
                    "server_domain": "example.net",
                    "protocol": "xep0114",
                    "secret": {"env": "XMPPCOMP_TEST_UNUSED"},
                },
                "httpauth": {
                    "allowed_hosts": ["localhost"],
                    "store": {"redis": "tcp:host=127.0.0.1:port=6379", "prefix": "site1:"},
                },
            },
            "c.toml",
        )
        self.patch(os, "environ", {**os.environ, "XMPPCOMP_TEST_UNUSED": "x"})
        top = serviceFromConfig(config, reactor)
        names = [service.name for service in top]
        self.assertLess(names.index(STORE_SERVICE), names.index(COMPONENT_SERVICE))
        self.assertLess(names.index(STORE_SERVICE), names.index(HTTPAUTH_SERVICE))
        store = top.getServiceNamed(STORE_SERVICE).store
        self.assertIsInstance(store, RedisStore)
        listener = top.getServiceNamed(HTTPAUTH_SERVICE)
        self.assertIs(listener.confirmer.store, store)
        self.assertIsNone(listener.confirmer.ledger)
        self.assertEqual(store.where, "127.0.0.1:6379")

    def test_memoryByDefault(self) -> None:
        """
        Without C{[httpauth.store]}: no store service, a L{MemoryStore}.
        """
        from xmppcomp.config import componentConfigFromMapping
        from xmppcomp.services import HTTPAUTH_SERVICE, STORE_SERVICE, serviceFromConfig

        config = componentConfigFromMapping({"component": {"hostnames": ["comp.example.net"]}}, "c.toml")
        top = serviceFromConfig(config, reactor)
        self.assertNotIn(STORE_SERVICE, [service.name for service in top])
        self.assertIsInstance(top.getServiceNamed(HTTPAUTH_SERVICE).confirmer.store, MemoryStore)
