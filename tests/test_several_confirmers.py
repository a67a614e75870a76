# -*- test-case-name: tests.test_several_confirmers -*-
"""
Several confirmers, one truth (issue 19, "Proof"): two C{twistd xmppcomp}
processes (L{tests.confirmers}) behind one component hostname, sharing one
private Redis (L{tests.redisserver}), answer XEP-0070 confirmations that a
real HTTP client sends to both HTTP listeners in turn:

  - L{EjabberdTests}: on a real ejabberd 23.01 (L{tests.ejabberd}) over
    XEP-0114, which spreads the stanzas for the name over both
    connections at random; the answers come from a real slixmpp user
    logged in to ejabberd (C{tests/slixmpp_client.py}). Every confirmation
    asks its full JID (IQ) or its bare JID (message) in turn.
  - L{RouterTests}: on the project's router (in this process) with the
    C{shared_names} opt-in, the confirmers connecting over XEP-0225
    (STARTTLS, SCRAM, bind); the router has no client logins, so the
    "users" are a slixmpp component serving the users' domain
    (C{tests/slixmpp_client.py --component}). Full JIDs (IQ: the router
    returns each answer to the session that asked) and bare JIDs of
    several users (message: the router balances the answers by the
    user's bare JID, so many reach the instance that did not ask and are
    relayed over Redis).

The scenarios (L{ScenariosMixin}), the same on both:

  - 500 confirmations, 20 in flight, alternating between the listeners:
    every one 200, no timeout, no error; each transaction id asked once;
    answers were relayed between the instances;
  - a transaction id used on one instance is refused (401, replay) on the
    other;
  - C{kill -9} of one instance under load: its waiting requests fail,
    the other goes on answering, and no transaction id is ever confirmed
    twice (counted);
  - Redis stopped under load: 503 with C{Retry-After}, nothing granted
    while it is down, and the instances recover by themselves once it is
    started again. The test Redis runs with persistence (an append-only
    file), so that its restart keeps the data: a Redis that came back
    I{empty} is detected (its epoch key is gone) and the confirmers fail
    closed until an operator acts, by design (docs/protocols/xep0070.md,
    "Failing closed");
  - a rolling restart under load (SIGTERM: the instance drains, then
    starts again), the client retrying a 503 or a refused connection on
    the other instance as a load balancer would: every confirmation ends
    200, exactly once.

Never skipped: without redis-server or ejabberd the tests fail, saying
that C{.ci/run} installs them. Every wait is bounded and polls through
the reactor; all traffic stays on loopback.
"""

from __future__ import annotations

import base64
import collections
import os
import re
import signal
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import attrs
from twisted.internet import defer, reactor, task
from twisted.logger import Logger
from twisted.trial.unittest import TestCase
from twisted.web._newclient import ResponseNeverReceived
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers

from xmppcomp.config import SecretRef

from .confirmers import ConfirmerProcess, ConfirmerSettings, logTails, startConfirmers
from .ejabberd import EjabberdHarness, requireEjabberd, startEjabberd
from .prosody import LOOPBACK
from .redisserver import RedisHarness, RedisServer, requireRedis, startRedis
from .slixmppuser import UserProcess, startUser, startUsersComponent
from .test_router_e2e import AUTHORIZATION, CA, DOMAIN, SECRETS, startRouter

log = Logger()

#: Confirmations in flight at once.
CONCURRENCY = 20

#: Confirmations of the main run.
COUNT = 500

#: Seconds one HTTP request may take (the confirmers give a user 15 s).
REQUEST_TIMEOUT = 30.0

#: Seconds any other wait may take.
WAIT = 30.0

#: Seconds between two polls.
POLL = 0.05

#: Attempts of one confirmation at most when the client retries.
MAX_ATTEMPTS = 40

#: The client address of a second browser (X-Forwarded-For from a trusted
#: proxy: loopback).
OTHER_CLIENT = "192.0.2.7"


def basic(who: str, transactionId: str) -> bytes:
    """
    A Basic C{Authorization} value for XEP-0070 credentials (ASCII only).
    """
    return b"Basic " + base64.b64encode(("%s:%s" % (who, transactionId)).encode("ascii"))


@attrs.define
class Attempt:
    """
    One HTTP request of a confirmation.

    @ivar instance: the index of the confirmer it went to.
    @ivar sentAt: when it was sent (the reactor's seconds).
    @ivar answeredAt: when it ended, or L{None} while in flight.
    @ivar status: the status code, or L{None} if no answer came.
    @ivar retryAfter: the C{Retry-After} header, if any.
    @ivar error: why no answer came (the exception's type), or L{None}.
    @ivar body: the answer's body.
    """

    instance: int
    sentAt: float
    answeredAt: float | None = None
    status: int | None = None
    retryAfter: bytes | None = None
    error: str | None = None
    body: bytes = b""

    def describe(self) -> str:
        return "#%d %s%s" % (
            self.instance + 1,
            self.status if self.status is not None else self.error,
            " " + self.body[:120].decode("utf-8", "replace").strip() if self.body else "",
        )


@attrs.define
class Confirmation:
    """
    One transaction id asked for, with every attempt.
    """

    jid: str
    transactionId: str
    attempts: list[Attempt] = attrs.field(factory=list)

    @property
    def final(self) -> Attempt:
        """
        The last attempt.
        """
        return self.attempts[-1]

    @property
    def granted(self) -> int:
        """
        How many of its attempts were answered 200.
        """
        return sum(1 for attempt in self.attempts if attempt.status == 200)

    def describe(self) -> str:
        return "%s %s: %s" % (
            self.jid,
            self.transactionId,
            ", ".join(attempt.describe() for attempt in self.attempts),
        )


#: How a request fails when its instance dies under it.
GONE = ("ResponseNeverReceived", "ResponseFailed", "RequestTransmissionFailed", "RequestNotSent")

#: When the client tries the next instance: a 503 (draining, or the store
#: is down), a refused connection, an answer that never came.
RETRY_ALL = frozenset({"503", "refused", "lost"})


def retryKind(attempt: Attempt) -> str | None:
    """
    What a load balancer would retry C{attempt} for, or L{None}.
    """
    if attempt.status == 503:
        return "503"
    if attempt.error in ("ConnectionRefusedError", "ConnectError"):
        return "refused"
    if attempt.error in ("ResponseNeverReceived", "RequestTransmissionFailed", "RequestNotSent"):
        return "lost"
    return None


class Client:
    """
    A real HTTP client of the confirmers: an L{Agent} with a pool of
    persistent connections, no automatic retry (the retries are the load
    balancer's, L{Load}'s).
    """

    def __init__(self, confirmers: Sequence[ConfirmerProcess]) -> None:
        self.confirmers = confirmers
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = CONCURRENCY
        self.pool.retryAutomatically = False
        self.agent = Agent(reactor, pool=self.pool)
        self.inFlight: list[Attempt] = []

    @defer.inlineCallbacks
    def attempt(self, instance: int, jid: str, transactionId: str, client: str | None = None) -> Any:
        """
        GET the root of the confirmer C{instance} with the credentials
        C{jid}:C{transactionId} (from the address C{client}, given to a
        trusted proxy's X-Forwarded-For, if set).

        @return: a L{Deferred} firing with the L{Attempt} (never failing).
        """
        headers = Headers({b"authorization": [basic(jid, transactionId)]})
        if client is not None:
            headers.setRawHeaders(b"x-forwarded-for", [client.encode("ascii")])
        attempt = Attempt(instance, reactor.seconds())
        self.inFlight.append(attempt)
        d = self.agent.request(b"GET", self.confirmers[instance].url.encode("ascii"), headers)
        d.addTimeout(REQUEST_TIMEOUT, reactor)
        try:
            response = yield d
            attempt.body = yield readBody(response).addTimeout(REQUEST_TIMEOUT, reactor)
            attempt.status = response.code
            attempt.retryAfter = (response.headers.getRawHeaders(b"retry-after") or [None])[0]
        except defer.TimeoutError:
            attempt.error = "timeout"
        except ResponseNeverReceived as e:
            attempt.error = "ResponseNeverReceived"
            attempt.body = str([reason.getErrorMessage() for reason in e.reasons]).encode("utf-8")
        except Exception as e:
            attempt.error = type(e).__name__
            attempt.body = str(e).encode("utf-8")
        attempt.answeredAt = reactor.seconds()
        self.inFlight.remove(attempt)
        return attempt

    def close(self) -> defer.Deferred[None]:
        return self.pool.closeCachedConnections()


class Load:
    """
    Confirmations sent by L{CONCURRENCY} workers, each to the confirmer
    after the previous one's (alternating), the user's JIDs taken in turn.

    @ivar confirmations: every confirmation begun, in order.
    """

    def __init__(
        self,
        client: Client,
        jids: Sequence[str],
        label: str,
        count: int,
        retry: frozenset[str] = frozenset(),
    ) -> None:
        """
        @param label: starts every transaction id (C{LABEL-NUMBER}).
        @param count: how many confirmations at most (L{stop} ends earlier).
        @param retry: the L{retryKind}s after which the next instance is
            tried with the same credentials, as a load balancer would.
        """
        self.client = client
        self.jids = jids
        self.label = label
        self.count = count
        self.retry = retry
        self.confirmations: list[Confirmation] = []
        self._stopped = False
        self._watchers: list[tuple[int, defer.Deferred[None]]] = []
        self._ended = 0
        self._running: defer.Deferred[list[Confirmation]] = defer.succeed([])

    def run(self) -> defer.Deferred[list[Confirmation]]:
        """
        Start the workers.

        @return: fires with the confirmations once every one has ended.
        """
        workers = [self._work() for _ in range(CONCURRENCY)]
        self._running = defer.gatherResults(workers).addCallback(lambda _: self.confirmations)
        return self._running

    def halt(self) -> defer.Deferred[None]:
        """
        L{stop}, and fire once the confirmations begun have ended (each
        within L{REQUEST_TIMEOUT}): a test's cleanup, so that nothing is
        left in flight when it fails half-way.
        """
        self.stop()
        done: defer.Deferred[None] = defer.Deferred()
        self._running.addBoth(lambda _: done.callback(None))
        return done

    def stop(self) -> None:
        """
        Begin no more confirmations.
        """
        self._stopped = True

    @property
    def ended(self) -> int:
        """
        How many confirmations have ended.
        """
        return self._ended

    def whenEnded(self, count: int) -> defer.Deferred[None]:
        """
        Fires once C{count} confirmations have ended (at most L{WAIT}
        seconds later).
        """
        if self._ended >= count:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._watchers.append((count, d))
        return d.addTimeout(WAIT, reactor)

    @defer.inlineCallbacks
    def _work(self) -> Any:
        while not self._stopped and len(self.confirmations) < self.count:
            number = len(self.confirmations)
            confirmation = Confirmation(
                self.jids[(number // 2) % len(self.jids)], "%s-%d" % (self.label, number)
            )
            self.confirmations.append(confirmation)
            yield self.confirm(confirmation, number % len(self.client.confirmers))
            self._ended += 1
            watching, self._watchers = self._watchers, []
            for count, d in watching:
                if self._ended >= count:
                    d.callback(None)
                else:
                    self._watchers.append((count, d))

    @defer.inlineCallbacks
    def confirm(self, confirmation: Confirmation, instance: int) -> Any:
        """
        Ask for C{confirmation} on the confirmer C{instance}, then on the
        next ones while the answer is one to retry; after each round of
        every instance, wait L{POLL} seconds.
        """
        count = len(self.client.confirmers)
        for number in range(MAX_ATTEMPTS):
            attempt = yield self.client.attempt(instance, confirmation.jid, confirmation.transactionId)
            confirmation.attempts.append(attempt)
            if retryKind(attempt) not in self.retry:
                return
            instance = (instance + 1) % count
            if number % count == count - 1:
                yield task.deferLater(reactor, POLL, lambda: None)


def healthy(confirmer: ConfirmerProcess) -> defer.Deferred[bool]:
    """
    Whether the health endpoint of C{confirmer} answers 200 now.
    """
    d: defer.Deferred[bool] = confirmer.health().addCallback(lambda answer: answer[0] == 200)
    return d


def statuses(confirmations: Sequence[Confirmation]) -> dict[Any, int]:
    """
    How many confirmations ended with each status (or error).
    """
    return dict(
        collections.Counter(
            c.final.status if c.final.status is not None else c.final.error for c in confirmations
        )
    )


def doubles(confirmations: Sequence[Confirmation]) -> list[Confirmation]:
    """
    The transaction ids confirmed (200) more than once, over all the
    attempts of C{confirmations} (several may share one transaction id).
    """
    granted: collections.Counter[tuple[str, str]] = collections.Counter()
    for c in confirmations:
        granted[(c.jid, c.transactionId)] += c.granted
    return [c for c in confirmations if granted[(c.jid, c.transactionId)] > 1]


class ScenariosMixin:
    """
    The scenarios, on two confirmers behind one name and one Redis; a
    subclass starts the server and the users (L{startServer},
    L{startUsers}).

    @ivar redisServer: the private Redis (persistent).
    @ivar confirmers: the two L{ConfirmerProcess}es.
    @ivar users: the slixmpp process that answers for the users.
    @ivar jids: the JIDs asked, in turn (full and bare).
    """

    timeout = 120

    #: Names the server in the counts logged.
    serverName: str
    redis: RedisHarness
    addCleanup: Any
    assertEqual: Any
    assertTrue: Any
    assertIn: Any
    assertNotIn: Any
    assertGreater: Any
    assertGreaterEqual: Any
    assertLessEqual: Any
    failureException: Any
    mktemp: Any

    def startServer(self, redis: RedisServer) -> defer.Deferred[ConfirmerSettings]:
        """
        Start the server the confirmers connect to.

        @return: fires with the confirmers' settings.
        """
        raise NotImplementedError()

    def startUsers(self) -> defer.Deferred[tuple[UserProcess, list[str]]]:
        """
        Start the slixmpp process that answers for the users.

        @return: fires with it and the JIDs to ask.
        """
        raise NotImplementedError()

    def serverLogTail(self) -> str:
        """
        The end of the server's log, for failure messages.
        """
        raise NotImplementedError()

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        requireRedis()
        self.redisServer: RedisServer = yield startRedis(self, persistent=True)
        settings = yield self.startServer(self.redisServer)
        self.confirmers: list[ConfirmerProcess] = yield startConfirmers(self, settings, 2)
        self.users, self.jids = yield self.startUsers()
        self.client = Client(self.confirmers)
        self.addCleanup(self.client.close)

    def load(self, label: str, count: int, retry: frozenset[str] = frozenset()) -> Load:
        """
        A L{Load} of C{count} confirmations on both confirmers, the users'
        JIDs in turn; a cleanup halts it.
        """
        load = Load(self.client, self.jids, label, count, retry)
        self.addCleanup(load.halt)
        return load

    def explain(self, what: str, confirmations: Sequence[Confirmation] = ()) -> str:
        """
        A failure message: C{what}, the statuses, the first bad
        confirmations, the users' events and every log's end.
        """
        bad = [c for c in confirmations if c.final.status != 200 or c.granted != 1][:10]
        return "%s\nstatuses: %r\n%s\n%s\n%s\n%s" % (
            what,
            statuses(confirmations),
            "\n".join(c.describe() for c in bad),
            self.users.describe(),
            logTails(self.confirmers),
            self.serverLogTail(),
        )

    def assertAllConfirmedOnce(self, confirmations: Sequence[Confirmation], what: str) -> None:
        """
        Every one of C{confirmations} ended 200, and none was granted twice.
        """
        self.assertEqual(statuses(confirmations), {200: len(confirmations)}, self.explain(what, confirmations))
        self.assertEqual(doubles(confirmations), [], self.explain(what + ": confirmed twice", confirmations))

    @defer.inlineCallbacks
    def until(self, condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
        """
        Poll C{condition} (which may return a L{Deferred}) every L{POLL}
        seconds until it is true, at most C{timeout} seconds.
        """
        deadline = reactor.seconds() + timeout
        while True:
            if (yield defer.maybeDeferred(condition)):
                return
            if reactor.seconds() > deadline:
                raise self.failureException(self.explain("%s: not within %g s" % (what, timeout)))
            yield task.deferLater(reactor, POLL, lambda: None)

    @defer.inlineCallbacks
    def relayed(self) -> Any:
        """
        How many answers the instances relayed to each other: the calls of
        C{PUBLISH} Redis counted (C{INFO commandstats}).
        """
        info = yield self.redis.command("INFO", "commandstats")
        found = re.search(r"cmdstat_publish:calls=(\d+)", info or "")
        return int(found.group(1)) if found else 0

    def asked(self) -> collections.Counter[str]:
        """
        How many times the users were asked about each transaction id.
        """
        return collections.Counter(event["id"] for event in self.users.all("confirm"))

    @defer.inlineCallbacks
    def test_confirmations(self) -> Any:
        """
        500 confirmations through both listeners in turn, 20 in flight:
        every one 200 (no timeout, no error), half from each instance,
        each transaction id asked once; answers reached the instance that
        did not ask and were relayed over Redis.
        """
        began = reactor.seconds()
        load = self.load("tx", COUNT)
        confirmations = yield load.run()
        seconds = reactor.seconds() - began
        self.assertAllConfirmedOnce(confirmations, "%d confirmations in %.1f s" % (COUNT, seconds))
        self.assertEqual(
            collections.Counter(c.final.instance for c in confirmations), {0: COUNT // 2, 1: COUNT // 2}
        )
        yield self.until(lambda: len(self.users.all("confirm")) >= COUNT, "every confirmation reported")
        self.assertEqual(
            self.asked(),
            {c.transactionId: 1 for c in confirmations},
            self.explain("each transaction id asked once"),
        )
        relayed = yield self.relayed()
        self.assertGreater(relayed, 0, self.explain("no answer was relayed"))
        log.info(
            "several confirmers, {count} confirmations ({server}): {seconds:.2f} s, {statuses}, "
            "{relayed} answers relayed between the instances",
            count=COUNT,
            server=self.serverName,
            seconds=seconds,
            statuses=statuses(confirmations),
            relayed=relayed,
        )

    @defer.inlineCallbacks
    def test_replayOnTheOther(self) -> Any:
        """
        A transaction id confirmed on one instance is refused on the other
        (401, used already) for another client address, and passes there
        for the same client only in the session it opened (shared too);
        one denied on one instance (403) is refused on the other (401).
        Each was asked once.
        """
        full = self.jids[0]
        bare = next(jid for jid in self.jids if "/" not in jid)
        first = yield self.client.attempt(0, full, "once")
        self.assertEqual(first.status, 200, self.explain(first.describe()))
        replay = yield self.client.attempt(1, full, "once", client=OTHER_CLIENT)
        self.assertEqual(replay.status, 401, self.explain(replay.describe()))
        self.assertIn(b"confirmed for another site or client address", replay.body)
        session = yield self.client.attempt(1, full, "once")
        self.assertEqual(session.status, 200, self.explain(session.describe()))

        denied = yield self.client.attempt(1, bare, "deny-once")
        self.assertEqual(denied.status, 403, self.explain(denied.describe()))
        replay = yield self.client.attempt(0, bare, "deny-once")
        self.assertEqual(replay.status, 401, self.explain(replay.describe()))
        self.assertIn(b"used already", replay.body)
        replay = yield self.client.attempt(0, bare, "deny-once", client=OTHER_CLIENT)
        self.assertEqual(replay.status, 401, self.explain(replay.describe()))

        yield self.until(lambda: len(self.users.all("confirm")) >= 2, "both reported")
        self.assertEqual(self.asked(), {"once": 1, "deny-once": 1}, self.explain("asked once each"))

    @defer.inlineCallbacks
    def test_killOne(self) -> Any:
        """
        C{kill -9} of instance 2 while confirmations wait on it: those
        waiting fail (their connections are gone), instance 1 goes on
        answering (the client sends there what instance 2 refuses), and no
        transaction id is ever confirmed twice, not even when those that
        failed are asked again on instance 1.
        """
        load = self.load("kill", COUNT, retry=frozenset({"refused"}))
        running = load.run()
        yield load.whenEnded(150)
        # Confirmations the users never answer (their ids start with
        # "ignore"): surely still waiting on instance 2 when it is killed,
        # whatever the pace of the others.
        heldIds = ["ignore-kill-%d" % (n,) for n in range(3)]
        held = [self.client.attempt(1, self.jids[0], tid) for tid in heldIds]
        yield self.until(lambda: all(self.asked()[tid] for tid in heldIds), "the held confirmations asked")
        waiting = [a for a in self.client.inFlight if a.instance == 1]
        killedAt = reactor.seconds()
        self.confirmers[1].kill()
        yield self.confirmers[1].ended()
        endedAt = reactor.seconds()
        self.assertEqual(self.confirmers[1].exitSignal, signal.SIGKILL)
        confirmations = yield running
        for attempt in (yield defer.gatherResults(held)):
            self.assertTrue(attempt.status is None and attempt.error in GONE,
                            self.explain("held on the killed instance: " + attempt.describe()))

        # What reached instance 2 and got no answer: the connection went.
        failed = [
            c
            for c in confirmations
            if c.final.instance == 1 and c.final.status is None and retryKind(c.final) != "refused"
        ]
        self.assertGreaterEqual(len(waiting), 1, self.explain("nothing waited on instance 2", confirmations))
        for attempt in waiting:
            self.assertTrue(
                attempt.status == 200 or attempt.error in GONE, self.explain("waiting: " + attempt.describe())
            )
        self.assertGreaterEqual(
            sum(1 for a in waiting if a.status is None), 1, self.explain("no waiting request failed", confirmations)
        )
        for c in failed:
            self.assertIn(c.final.error, GONE, self.explain(c.describe()))
        # The survivor's confirmations whose answer the server had sent to
        # the killed instance's connection: lost with it (never granted).
        lost = [c for c in confirmations if c.final.status == 504 and c.final.instance == 0]
        for c in lost:
            self.assertLess(c.final.sentAt, endedAt, self.explain("504 after the kill: " + c.describe()))
        others = [c for c in confirmations if c not in failed and c not in lost]
        self.assertAllConfirmedOnce(others, "all but the %d that failed on instance 2" % (len(failed),))
        after = [c for c in others if c.final.instance == 0 and c.final.sentAt > killedAt]
        self.assertGreater(len(after), 100, self.explain("instance 1 stopped answering", confirmations))

        # The failed ones, asked again on the survivor: never a second 200.
        again = []
        for c in failed:
            retry = Confirmation(c.jid, c.transactionId)
            retry.attempts.append((yield self.client.attempt(0, c.jid, c.transactionId)))
            again.append(retry)
        every = confirmations + again
        self.assertEqual(doubles(every), [], self.explain("confirmed twice", every))
        log.info(
            "several confirmers, kill -9 ({server}): {confirmations} confirmations, {granted} granted (200), "
            "{waiting} waiting on the killed instance, {failed} failed there, {lost} on the survivor whose "
            "answer went to the killed one (504), asked again on the survivor: {again}; confirmed twice: {twice}",
            server=self.serverName,
            confirmations=len(confirmations),
            granted=sum(c.granted for c in every),
            waiting=len(waiting),
            failed=len(failed),
            lost=len(lost),
            again=statuses(again),
            twice=len(doubles(every)),
        )

    @defer.inlineCallbacks
    def test_redisStops(self) -> Any:
        """
        Redis stopped while confirmations run: those in flight end 200 or
        503, never an error; while it is down every request gets 503 with
        Retry-After (nothing granted) and the health endpoints say so; once
        it is started again (with its data: persistence is on), the
        instances recover by themselves, and the transaction ids refused
        while it was down pass (nothing was consumed).
        """
        before = yield self.load("before", 100).run()
        self.assertAllConfirmedOnce(before, "before the outage")

        load = self.load("during", 200)
        running = load.run()
        yield load.whenEnded(50)
        yield self.redis.stop()
        stoppedAt = reactor.seconds()
        during = yield running
        # The confirmations waiting when Redis went away end 503 at once
        # (the store tells the requester its channel is gone). A 504 (the
        # user's time up, never 200) remains possible only for one asked in
        # the instant between a decision and the loss being noticed.
        self.assertTrue(set(statuses(during)) <= {200, 503, 504}, self.explain("while Redis stopped", during))
        late = [c for c in during if c.final.status == 200 and c.final.sentAt > stoppedAt]
        self.assertEqual(late, [], self.explain("granted after Redis stopped", during))

        down = yield self.load("down", 60).run()
        self.assertEqual(statuses(down), {503: 60}, self.explain("Redis down", down))
        self.assertEqual(
            [c for c in down if not (c.final.retryAfter or b"").isdigit()], [], self.explain("Retry-After", down)
        )
        for confirmer in self.confirmers:
            code, body = yield confirmer.health()
            self.assertEqual((code, body["checks"]["store"]), (503, False), self.explain(repr(body)))

        yield self.redis.start()
        for confirmer in self.confirmers:
            yield self.until(partial(healthy, confirmer), confirmer.name + " healthy again")
        after = yield self.load("after", 100).run()
        self.assertAllConfirmedOnce(after, "after the outage")
        again = self.load("down", 60)
        self.assertAllConfirmedOnce((yield again.run()), "refused while down, asked again")
        log.info(
            "several confirmers, Redis stopped ({server}): before {before}, while it stopped {during}, "
            "down {down}, after {after}",
            server=self.serverName,
            before=statuses(before),
            during=statuses(during),
            down=statuses(down),
            after=statuses(after),
        )

    @defer.inlineCallbacks
    def test_rollingRestart(self) -> Any:
        """
        A rolling restart under load: SIGTERM instance 1 (it drains: the
        requests in flight finish 200), start it again, wait until it is
        healthy, then the same for instance 2; the client retries a 503 or
        a refused connection on the other instance, as a load balancer
        would. Every confirmation ends 200, exactly once.
        """
        load = self.load("roll", 5000, retry=RETRY_ALL)
        running = load.run()
        drained = []
        for index, confirmer in enumerate(self.confirmers):
            yield load.whenEnded(load.ended + 50)
            signalled = reactor.seconds()
            yield confirmer.terminate()
            # twistd ends with the signal that stopped it, once shut down.
            self.assertEqual(
                (confirmer.exitCode, confirmer.exitSignal), (None, signal.SIGTERM), self.explain(confirmer.name)
            )
            text = confirmer.logText()
            self.assertIn("Server Shut Down.", text)
            self.assertNotIn("were still in flight after the drain", text)
            counted = re.findall(r"Draining the HTTP-auth confirmer: (\d+) requests in flight", text)
            finished = [
                a
                for c in load.confirmations
                for a in c.attempts
                if a.instance == index and a.status == 200 and signalled < (a.answeredAt or 0)
            ]
            drained.append((int(counted[-1]) if counted else 0, len(finished)))
            yield confirmer.start()
        yield load.whenEnded(load.ended + 100)
        load.stop()
        confirmations = yield running
        self.assertAllConfirmedOnce(confirmations, "rolling restart")
        for inFlight, finished in drained:
            self.assertLessEqual(inFlight, finished, self.explain("drained %r" % (drained,), confirmations))
        self.assertGreater(sum(n for n, _ in drained), 0, self.explain("nothing was in flight at SIGTERM"))
        log.info(
            "several confirmers, rolling restart ({server}): {confirmations} confirmations, all 200 once; "
            "{retried} retried ({kinds}); per instance (in flight at SIGTERM, finished 200 after it): {drained}",
            server=self.serverName,
            confirmations=len(confirmations),
            retried=sum(1 for c in confirmations if len(c.attempts) > 1),
            kinds=dict(collections.Counter(retryKind(a) for c in confirmations for a in c.attempts[:-1])),
            drained=drained,
        )


class EjabberdTests(ScenariosMixin, TestCase):
    """
    Two confirmers on a real ejabberd over XEP-0114, a slixmpp user
    logged in to it.
    """

    ejabberdHarness: EjabberdHarness
    serverName = "ejabberd"

    @defer.inlineCallbacks
    def startServer(self, redis: RedisServer) -> Any:
        requireEjabberd()
        self.server = yield startEjabberd(self, users=["juliet"])
        return ConfirmerSettings(
            server=self.server.componentEndpoint,
            serverDomain=self.server.domain,
            protocol="xep0114",
            hostname=self.server.componentName,
            secret=self.server.componentSecret,
            redis=redis.endpoint,
        )

    @defer.inlineCallbacks
    def startUsers(self) -> Any:
        user = yield startUser(self, self.server, "juliet")
        return user, [user.jid, self.server.userJID]

    def serverLogTail(self) -> str:
        return self.ejabberdHarness.logTail()


#: The confirmers' identity on the router, and their shared name.
IDENTITY = "alpha.example.net"
COMPONENT = "confirm.alpha.example.net"
#: The users' domain, served by the slixmpp component.
USERS = "users.example.net"


class RouterTests(ScenariosMixin, TestCase):
    """
    Two confirmers on the project's router with C{shared_names}, over
    XEP-0225; the users are a slixmpp component.
    """

    serverName = "router"

    def startServer(self, redis: RedisServer) -> defer.Deferred[ConfirmerSettings]:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        caFile = os.path.join(directory, "ca.pem")
        with open(caFile, "wb") as f:
            f.write(CA.pem)
        self.usersSecret = os.urandom(16).hex()
        usersSecretFile = os.path.join(directory, "users.secret")
        with open(usersSecretFile, "w") as f:
            f.write(self.usersSecret + "\n")
        self.router = startRouter(
            self,
            directory,
            authorization=AUTHORIZATION,
            sharedNames=(COMPONENT,),
            acceptListen=("tcp:0:interface=%s" % (LOOPBACK,),),
            acceptSecrets={USERS: SecretRef(file=usersSecretFile)},
        )
        xep0225, self.acceptPort = (port.getHost().port for port in self.router.ports)
        return defer.succeed(ConfirmerSettings(
            server="tcp:host=%s:port=%d" % (LOOPBACK, xep0225),
            serverDomain=DOMAIN,
            protocol="xep0225",
            hostname=COMPONENT,
            identity=IDENTITY,
            secret=SECRETS[IDENTITY],
            caFile=caFile,
            redis=redis.endpoint,
        ))

    @defer.inlineCallbacks
    def startUsers(self) -> Any:
        users = yield startUsersComponent(self, USERS, self.usersSecret, LOOPBACK, self.acceptPort)
        names = ["juliet", "romeo", "nurse", "tybalt"]
        return users, ["%s@%s/web" % (name, USERS) for name in names] + ["%s@%s" % (name, USERS) for name in names]

    def serverLogTail(self) -> str:
        return "(the router runs in the test process: its log is the test log)"
