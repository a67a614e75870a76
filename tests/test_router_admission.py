# -*- test-case-name: tests.test_router_admission -*-
"""
Tests for L{xmppcomp.admission} and the router's use of it: connections
that have not completed negotiation get their own caps, per source address
and in all, separate from C{max_sessions}; a source over its cap is refused
at accept time and logged once per burst; the listen backlog is
configurable. The last test holds 1,000 idle connections from 127.0.0.2
over real loopback TCP while a component from 127.0.0.3 negotiates and
binds.
"""

from __future__ import annotations

import os
import resource
from typing import Any

from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.endpoints import TCP4ClientEndpoint, serverFromString
from twisted.internet.interfaces import IProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.words.protocols.jabber.error import StreamError
from twisted.words.xish.xmlstream import STREAM_END_EVENT, STREAM_ERROR_EVENT

from xmppcomp.admission import (
    EVICTIONS,
    OTHER_SOURCES,
    TOTAL,
    Admission,
    AdmissionFactory,
    AdmissionGate,
    Admitted,
    AdmittedProtocol,
    Refused,
    fileLimitWarning,
    withBacklog,
)
from xmppcomp.config import ConfigError, RouterConfig, RouterLimits, routerConfigFromMapping
from xmppcomp.router.service import RouterService

from .test_router_service import RouterHarness


def admitted(decision: Admitted | Refused) -> Admitted:
    assert isinstance(decision, Admitted), decision
    return decision


def refused(decision: Admitted | Refused) -> Refused:
    assert isinstance(decision, Refused), decision
    return decision


class AdmissionTests(SynchronousTestCase):
    """
    L{Admission}: the counts, the caps, the fair eviction and the bursts of
    refusals.
    """

    def test_perSource(self) -> None:
        """
        A source holding C{maxPerSource} connections is refused the next,
        while another source is admitted.
        """
        admission = Admission(maxTotal=10, maxPerSource=2)
        admitted(admission.admit("192.0.2.1", 0))
        admitted(admission.admit("192.0.2.1", 0))
        refusal = refused(admission.admit("192.0.2.1", 0))
        self.assertEqual((refusal.reason, refusal.held, refusal.limit), ("source", 2, 2))
        admitted(admission.admit("192.0.2.2", 0))
        self.assertEqual((admission.count("192.0.2.1"), admission.count("192.0.2.2"), admission.total), (2, 1, 3))
        self.assertEqual((admission.admitted, admission.refused), (3, 1))

    def test_release(self) -> None:
        """
        A released connection (authenticated, or closed) no longer counts:
        its source may open another. Releasing twice changes nothing.
        """
        admission = Admission(maxTotal=10, maxPerSource=1)
        ticket = admitted(admission.admit("192.0.2.1", 0)).ticket
        refused(admission.admit("192.0.2.1", 0))
        admission.release(ticket)
        admission.release(ticket)
        self.assertEqual((admission.count("192.0.2.1"), admission.total), (0, 0))
        self.assertFalse(ticket.counted)
        admitted(admission.admit("192.0.2.1", 0))
        self.assertEqual(list(admission.sources()), [("192.0.2.1", 1)])

    def test_totalRefusesWhenShared(self) -> None:
        """
        When C{maxTotal} are held and no source holds two more than the
        newcomer's, the newcomer is refused.
        """
        admission = Admission(maxTotal=3, maxPerSource=3)
        for source in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
            admitted(admission.admit(source, 0))
        refusal = refused(admission.admit("192.0.2.4", 0))
        self.assertEqual((refusal.reason, refusal.held, refusal.limit), ("total", 3, 3))
        self.assertEqual(admission.total, 3)

    def test_totalEvictsTheLargest(self) -> None:
        """
        When C{maxTotal} are held and a source holds at least two more than
        the newcomer's, that source's oldest connection is evicted
        (released) for the newcomer; the source cannot take the room back.
        """
        admission = Admission(maxTotal=4, maxPerSource=4)
        tickets = [admitted(admission.admit("192.0.2.1", 0)).ticket for _ in range(3)]
        admitted(admission.admit("192.0.2.2", 0))
        decision = admitted(admission.admit("192.0.2.3", 0))
        self.assertIs(decision.evicted, tickets[0])
        self.assertFalse(tickets[0].counted)
        self.assertEqual(
            (admission.count("192.0.2.1"), admission.count("192.0.2.3"), admission.total, admission.evicted),
            (2, 1, 4, 1),
        )
        # 192.0.2.1 holds 2 and 192.0.2.2 and .3 hold 1: nobody holds two
        # more than 192.0.2.1, so it is refused, and 192.0.2.2 is too.
        self.assertEqual(refused(admission.admit("192.0.2.1", 0)).reason, "total")
        self.assertEqual(refused(admission.admit("192.0.2.2", 0)).reason, "total")
        # A fifth source still gets in, at 192.0.2.1's expense.
        self.assertIs(admitted(admission.admit("192.0.2.5", 0)).evicted, tickets[1])
        self.assertTrue(decision.burstStarted)
        self.assertEqual([(b.key, b.refused) for b in admission.ended(100) if b.key == EVICTIONS], [(EVICTIONS, 2)])

    def test_evictionFollowsTheLargest(self) -> None:
        """
        The source evicted from is the one holding the most, also after
        counts changed by releases.
        """
        admission = Admission(maxTotal=6, maxPerSource=6)
        a = [admitted(admission.admit("a", 0)).ticket for _ in range(3)]
        b = [admitted(admission.admit("b", 0)).ticket for _ in range(3)]
        admission.release(a[2])
        admission.release(a[1])
        admitted(admission.admit("c", 0))
        admitted(admission.admit("c", 0))
        # a: 1, b: 3, c: 2, full: d (0) evicts from b.
        self.assertIs(admitted(admission.admit("d", 0)).evicted, b[0])
        # a: 1, b: 2, c: 2, d: 1: e (0) evicts from b or c.
        evicted = admitted(admission.admit("e", 0)).evicted
        assert evicted is not None
        self.assertIn(evicted.source, ("b", "c"))
        self.assertEqual(sorted(count for _, count in admission.sources()), [1, 1, 1, 1, 2])

    def test_unlimitedSource(self) -> None:
        """
        A connection without a source key counts in the total only: it is
        never refused per source nor evicted, and it refuses when the
        total is full unless some source holds two or more.
        """
        admission = Admission(maxTotal=3, maxPerSource=1)
        kept = [admitted(admission.admit(None, 0)).ticket for _ in range(2)]
        admitted(admission.admit("192.0.2.1", 0))
        self.assertEqual(refused(admission.admit(None, 0)).reason, "total")
        self.assertEqual(refused(admission.admit("192.0.2.2", 0)).reason, "total")
        self.assertTrue(all(ticket.counted for ticket in kept))
        self.assertEqual((admission.count(None), admission.total), (0, 3))

    def test_bursts(self) -> None:
        """
        The first refusal of a source starts a burst, the following ones
        are counted in it; a burst ends C{burstQuiet} seconds after its
        last refusal, and the next refusal starts another. The total has
        its own burst.
        """
        admission = Admission(maxTotal=2, maxPerSource=1, burstQuiet=10.0)
        admitted(admission.admit("a", 0))
        self.assertIsNone(admission.nextBurstEnd())
        self.assertTrue(refused(admission.admit("a", 1)).burstStarted)
        self.assertFalse(refused(admission.admit("a", 5)).burstStarted)
        self.assertFalse(refused(admission.admit("a", 14)).burstStarted)
        admitted(admission.admit("b", 14))
        total = refused(admission.admit("c", 15))
        self.assertEqual((total.reason, total.burstStarted), ("total", True))
        self.assertEqual(admission.nextBurstEnd(), 24.0)
        self.assertEqual(admission.ended(23.9), [])
        [burst] = admission.ended(24.0)
        self.assertEqual((burst.key, burst.started, burst.last, burst.refused), ("a", 1, 14, 3))
        [burst] = admission.ended(25.0)
        self.assertEqual((burst.key, burst.refused), (TOTAL, 1))
        self.assertTrue(refused(admission.admit("a", 30)).burstStarted)

    def test_burstNotCollected(self) -> None:
        """
        A refusal after a burst ended but before anyone collected it starts
        a new burst; the old one is still returned by C{ended}.
        """
        admission = Admission(maxTotal=2, maxPerSource=1, burstQuiet=10.0)
        admitted(admission.admit("a", 0))
        refused(admission.admit("a", 1))
        refused(admission.admit("a", 2))
        self.assertTrue(refused(admission.admit("a", 12)).burstStarted)
        self.assertEqual(admission.nextBurstEnd(), float("-inf"))
        [old] = admission.ended(12)
        self.assertEqual((old.started, old.refused), (1, 2))
        [new] = admission.ended(100)
        self.assertEqual((new.started, new.refused), (12, 1))

    def test_burstsBounded(self) -> None:
        """
        Beyond C{maxBursts} sources in bursts, the refusals of further
        sources are counted together.
        """
        admission = Admission(maxTotal=100, maxPerSource=1, maxBursts=2)
        for source in "abcd":
            admitted(admission.admit(source, 0))
        started = [refused(admission.admit(source, 0)).burstStarted for source in "abcd"]
        self.assertEqual(started, [True, True, True, False])
        bursts = {burst.key: burst.refused for burst in admission.ended(100)}
        self.assertEqual(bursts, {"a": 1, "b": 1, OTHER_SOURCES: 2})

    def test_invalid(self) -> None:
        """
        Caps below 1 and a quiet period that is not positive are refused.
        """
        self.assertRaises(ValueError, Admission, 0, 1)
        self.assertRaises(ValueError, Admission, 1, 0)
        self.assertRaises(ValueError, Admission, 1, 1, 0.0)


class WithBacklogTests(SynchronousTestCase):
    """
    L{withBacklog} sets the listen backlog of a server endpoint string.
    """

    def listened(self, description: str) -> tuple[int, str]:
        reactor = MemoryReactorClock()
        serverFromString(reactor, description).listen(Factory())
        (_, _, backlog, interface) = reactor.tcpServers[0]
        return backlog, interface

    def test_added(self) -> None:
        """
        C{tcp}, C{tcp6} and C{ssl} strings without a backlog get one, which
        the listener uses; escaped colons stay part of their value.
        """
        self.assertEqual(withBacklog("tcp:5348:interface=127.0.0.1", 511), "tcp:5348:interface=127.0.0.1:backlog=511")
        self.assertEqual(self.listened(withBacklog("tcp:5348:interface=127.0.0.1", 511)), (511, "127.0.0.1"))
        self.assertEqual(self.listened(withBacklog("tcp6:5348:interface=\\:\\:1", 300)), (300, "::1"))
        self.assertEqual(withBacklog("SSL:5223:privateKey=k.pem", 7), "SSL:5223:privateKey=k.pem:backlog=7")
        self.assertEqual(withBacklog("unix:/run/x.sock", 9), "unix:/run/x.sock:backlog=9")

    def test_kept(self) -> None:
        """
        A string that gives its own backlog keeps it; other endpoint types
        are left alone.
        """
        self.assertEqual(withBacklog("tcp:5348:backlog=64", 511), "tcp:5348:backlog=64")
        self.assertEqual(self.listened(withBacklog("tcp:port=5348:backlog=64", 511))[0], 64)
        self.assertEqual(withBacklog("systemd:domain=INET:index=0", 511), "systemd:domain=INET:index=0")
        self.assertEqual(withBacklog("tcp:5348:interface=a\\:backlog=1", 511), "tcp:5348:interface=a\\:backlog=1:backlog=511")


class Recorder(Protocol):
    """
    A wrapped protocol that records what happens to it.
    """

    def __init__(self) -> None:
        self.made = False
        self.lost: Failure | None = None

    def connectionMade(self) -> None:
        self.made = True

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:
        self.lost = reason


class RecorderFactory(Factory):
    protocol = Recorder  # type: ignore[assignment]

    def __init__(self) -> None:
        self.built: list[Recorder] = []

    def buildProtocol(self, addr: Any) -> Recorder:
        p = Recorder()
        self.built.append(p)
        return p


def peer(host: str, port: int = 40000) -> IPv4Address:
    return IPv4Address("TCP", host, port)


class GateTests(SynchronousTestCase):
    """
    L{AdmissionGate} and its L{AdmissionFactory}: refusals at accept time,
    releases when a connection authenticates or closes, evictions, and the
    log once per burst.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.events: list[dict[str, Any]] = []

        def observe(event: dict[str, Any]) -> None:
            if event.get("log_namespace") == "xmppcomp.admission":
                self.events.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def connect(self, factory: AdmissionFactory, host: str, port: int = 40000) -> tuple[IProtocol, StringTransport]:
        address = peer(host, port)
        protocol = factory.buildProtocol(address)
        assert protocol is not None
        transport = StringTransport(peerAddress=address)
        protocol.makeConnection(transport)
        return protocol, transport

    def test_refusedAtAccept(self) -> None:
        """
        A connection from a source over its cap is aborted as soon as it is
        made: the wrapped factory builds nothing for it and nothing is
        written. Other sources are admitted.
        """
        gate = AdmissionGate(Admission(10, 2), self.clock, "things")
        wrapped = RecorderFactory()
        factory = gate.wrap(wrapped)
        for port in (1, 2):
            _, transport = self.connect(factory, "192.0.2.1", port)
            self.assertFalse(transport.disconnecting)
        _, transport = self.connect(factory, "192.0.2.1", 3)
        self.assertTrue(transport.disconnected)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(len(wrapped.built), 2)
        _, transport = self.connect(factory, "192.0.2.2")
        self.assertFalse(transport.disconnecting)
        self.assertEqual(len(wrapped.built), 3)
        self.assertEqual(gate.admission.count("192.0.2.1"), 2)

    def test_ipv6Network(self) -> None:
        """
        IPv6 peers count per /64; an IPv4-mapped address counts as its
        IPv4 address; a peer that is not IP counts in the total only.
        """
        gate = AdmissionGate(Admission(10, 1), self.clock, "things")
        factory = gate.wrap(RecorderFactory())

        def build(address: Any) -> bool:
            return isinstance(factory.buildProtocol(address), AdmittedProtocol)

        self.assertTrue(build(IPv6Address("TCP", "2001:db8::1", 1)))
        self.assertFalse(build(IPv6Address("TCP", "2001:db8::ffff:2", 2)))
        self.assertEqual(gate.admission.count("2001:db8::/64"), 1)
        self.assertTrue(build(IPv6Address("TCP", "2001:db8:0:1::1", 3)))
        self.assertTrue(build(IPv6Address("TCP", "::ffff:192.0.2.7", 4)))
        self.assertFalse(build(peer("192.0.2.7")))
        for _ in range(3):
            self.assertTrue(build(UNIXAddress(b"/run/x.sock")))
        self.assertEqual(gate.admission.total, 6)

    def test_closedOrAuthenticated(self) -> None:
        """
        A connection stops counting when it closes, or when the gate hears
        that it authenticated; it still closes normally afterwards.
        """
        gate = AdmissionGate(Admission(10, 2), self.clock, "things")
        wrapped = RecorderFactory()
        factory = gate.wrap(wrapped)
        first, _ = self.connect(factory, "192.0.2.1", 1)
        self.connect(factory, "192.0.2.1", 2)
        first.connectionLost(Failure(Exception("gone")))
        self.assertEqual(gate.admission.count("192.0.2.1"), 1)
        self.assertIsNotNone(wrapped.built[0].lost)
        gate.authenticated(wrapped.built[1])
        self.assertEqual(gate.admission.total, 0)
        self.connect(factory, "192.0.2.1", 3)
        self.connect(factory, "192.0.2.1", 4)
        self.assertEqual(gate.admission.count("192.0.2.1"), 2)

    def test_eviction(self) -> None:
        """
        When the total is full, the oldest connection of the source holding
        the most is aborted for a newcomer from another source. Evictions
        are logged once per burst too.
        """
        gate = AdmissionGate(Admission(4, 4), self.clock, "things")
        factory = gate.wrap(RecorderFactory())
        transports = [self.connect(factory, "192.0.2.1", port)[1] for port in (1, 2, 3, 4)]
        _, newcomer = self.connect(factory, "192.0.2.2")
        self.assertFalse(newcomer.disconnecting)
        self.assertEqual([t.disconnected for t in transports], [True, False, False, False])
        self.assertEqual((gate.admission.count("192.0.2.1"), gate.admission.total), (3, 4))
        self.connect(factory, "192.0.2.3")
        self.assertEqual([t.disconnected for t in transports], [True, True, False, False])
        self.assertEqual(len(self.events), 1)
        self.assertEqual((self.events[0]["source"], self.events[0]["count"]), ("192.0.2.1", 4))
        self.clock.advance(10)
        self.assertEqual(len(self.events), 2)
        self.assertEqual(self.events[1]["refused"], 2)

    def test_wrappedFactoryFails(self) -> None:
        """
        When the wrapped factory builds nothing, or raises, the connection
        does not stay counted.
        """
        gate = AdmissionGate(Admission(10, 1), self.clock, "things")

        class Nothing(Factory):
            def buildProtocol(self, addr: Any) -> None:
                return None

        class Broken(Factory):
            def buildProtocol(self, addr: Any) -> Protocol:
                raise RuntimeError("broken")

        self.assertIsNone(gate.wrap(Nothing()).buildProtocol(peer("192.0.2.1")))
        self.assertRaises(RuntimeError, gate.wrap(Broken()).buildProtocol, peer("192.0.2.1"))
        self.assertEqual(gate.admission.total, 0)

    def test_loggedOncePerBurst(self) -> None:
        """
        The first refusal of a burst is a warning naming the source; the
        others are only counted until the burst ends, and then one line
        says how many there were.
        """
        gate = AdmissionGate(Admission(10, 1), self.clock, "things")
        factory = gate.wrap(RecorderFactory())
        self.connect(factory, "192.0.2.1", 1)
        for port in range(2, 102):
            self.connect(factory, "192.0.2.1", port)
            self.clock.advance(0.05)
        self.assertEqual(len(self.events), 1)
        self.assertEqual((self.events[0]["source"], self.events[0]["held"]), ("192.0.2.1", 1))
        self.clock.advance(10)
        self.assertEqual(len(self.events), 2)
        self.assertEqual((self.events[1]["source"], self.events[1]["refused"]), ("192.0.2.1", 100))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.connect(factory, "192.0.2.1", 200)
        self.assertEqual(len(self.events), 3)
        gate.stop()
        self.assertEqual((len(self.events), self.events[3]["refused"]), (4, 1))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_fileLimitWarning(self) -> None:
        """
        The caps are compared with the process's file limit: a warning
        names them when they do not fit and a listener is reachable from
        other machines; none for loopback listeners.
        """
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            soft = 2**31
        public = [peer("127.0.0.1"), IPv6Address("TCP", "::", 5348)]
        self.assertIsNone(fileLimitWarning(1, "[limits] x", public))
        warning = fileLimitWarning(soft, "[limits] x", public)
        assert warning is not None
        self.assertIn("[limits] x allow %d connections" % (soft,), warning)
        self.assertIn("ulimit -n", warning)
        loopback = [peer("127.0.0.1"), IPv6Address("TCP", "::1", 5348), UNIXAddress(b"/run/x")]
        self.assertIsNone(fileLimitWarning(soft, "[limits] x", loopback))


class RouterCountsTests(SynchronousTestCase):
    """
    The router counts towards C{max_sessions} only the sessions that
    completed negotiation.
    """

    def test_negotiatingNotCounted(self) -> None:
        """
        With C{maxSessions=1}, a connection that sent nothing does not
        keep a component from negotiating; once that component's session
        is up, the next one is refused with C{resource-constraint}, and the
        idle connection is still there. When the session ends, another
        component takes its place.
        """
        h = RouterHarness(self, maxSessions=1)
        idle = h.factory.buildProtocol(None)
        idleTransport = StringTransport()
        idle.makeConnection(idleTransport)
        alpha = h.component("alpha.example.net")
        self.assertEqual(alpha.binder.bound, ["alpha.example.net"])
        _, negotiated = h.connect("beta.example.net")
        failure = self.failureResultOf(negotiated, StreamError)
        self.assertEqual(failure.value.condition, "resource-constraint")
        self.assertFalse(idleTransport.disconnecting)
        self.assertEqual(h.router.established, 1)
        alpha.xs.transport.loseConnection()
        h.flush()
        self.assertEqual(h.router.established, 0)
        gamma = h.component("gamma.example.net")
        self.assertEqual(gamma.binder.bound, ["gamma.example.net"])
        self.assertFalse(idleTransport.disconnecting)


class ConfigTests(SynchronousTestCase):
    """
    C{[limits]} has the keys of the admission and the backlog, and the
    router service uses them.
    """

    def test_keys(self) -> None:
        """
        C{max_negotiating}, C{max_negotiating_per_source} and
        C{listen_backlog} set the L{RouterLimits}; below 1 is an error
        naming the key.
        """
        config = routerConfigFromMapping(
            {
                "domain": "example.net",
                "listen": [],
                "accept": {"secrets": {"a.example.net": {"env": "X"}}},
                "limits": {"max_negotiating": 50, "max_negotiating_per_source": 5, "listen_backlog": 128},
            },
            "router.toml",
        )
        self.assertEqual(
            (config.limits.maxNegotiating, config.limits.maxNegotiatingPerSource, config.limits.listenBacklog),
            (50, 5, 128),
        )
        defaults = RouterLimits()
        self.assertEqual(
            (defaults.maxNegotiating, defaults.maxNegotiatingPerSource, defaults.listenBacklog), (2000, 200, 511)
        )
        for key in ("max_negotiating", "max_negotiating_per_source", "listen_backlog"):
            error = self.assertRaises(
                ConfigError,
                routerConfigFromMapping,
                {
                    "domain": "example.net",
                    "listen": [],
                    "accept": {"secrets": {"a.example.net": {"env": "X"}}},
                    "limits": {key: 0},
                },
                "router.toml",
            )
            self.assertIn("limits." + key, str(error))

    def test_serviceListeners(self) -> None:
        """
        Every XMPP listener of the service is wrapped by one shared gate
        with the configured caps, and listens with the configured backlog
        unless its endpoint string gives one.
        """
        os.environ["XMPPCOMP_TEST_ADMISSION_SECRET"] = "secret"
        self.addCleanup(os.environ.pop, "XMPPCOMP_TEST_ADMISSION_SECRET", None)
        from xmppcomp.config import SecretRef

        config = RouterConfig(
            domain="example.net",
            listen=("tcp:5348:interface=127.0.0.1",),
            acceptListen=("tcp:5347:interface=127.0.0.1:backlog=20",),
            acceptSecrets={"a.example.net": SecretRef(env="XMPPCOMP_TEST_ADMISSION_SECRET")},
            allowPlaintext=True,
            limits=RouterLimits(maxNegotiating=30, maxNegotiatingPerSource=3, listenBacklog=77),
        )
        reactor = MemoryReactorClock()
        service = RouterService(config, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        [(_, receiving, backlog, _), (_, accept, acceptBacklog, _)] = reactor.tcpServers
        self.assertEqual((backlog, acceptBacklog), (77, 20))
        self.assertIsInstance(receiving, AdmissionFactory)
        self.assertIsInstance(accept, AdmissionFactory)
        self.assertIs(receiving.gate, service.admission)
        self.assertIs(accept.gate, service.admission)
        admission = service.admission.admission
        self.assertEqual((admission.maxTotal, admission.maxPerSource), (30, 3))


def raiseFileLimit(testCase: TestCase, needed: int) -> None:
    """
    Make sure this process may open C{needed} files, raising its soft
    limit up to the hard limit for the test's duration; fail with what to
    do when the hard limit is too low.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        testCase.fail(
            "this test holds %d connections open and needs %d files, but the "
            "hard limit of open files is %d: raise it (ulimit -Hn) and run "
            "again" % (needed // 2, needed, hard)
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    testCase.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))


class Idle(Protocol):
    """
    Sends nothing; counts how the server ended it.
    """

    def __init__(self, pool: "IdlePool") -> None:
        self.pool = pool

    def connectionMade(self) -> None:
        self.pool.open += 1

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:
        self.pool.open -= 1
        self.pool.ended()


class IdlePool(Factory):
    """
    Idle connections; C{settled} fires once C{expected} of them were
    refused (closed by the server, or failed to connect).
    """

    def __init__(self, expected: int) -> None:
        self.open = 0
        self.refused = 0
        self.expected = expected
        self.protocols: list[Idle] = []
        self.settled: defer.Deferred[None] = defer.Deferred()

    def buildProtocol(self, addr: Any) -> Idle:
        p = Idle(self)
        self.protocols.append(p)
        return p

    def ended(self) -> None:
        self.refused += 1
        if self.refused == self.expected and not self.settled.called:
            self.settled.callback(None)


class FloodTests(TestCase):
    """
    Over real loopback TCP, with TLS and SCRAM: idle connections from one
    address do not keep a component at another address out.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_idleFloodFromOneSource(self) -> Any:
        """
        1,000 idle connections from 127.0.0.2: 200 are held (the cap per
        source), the other 800 are closed at accept without a byte; a
        component from 127.0.0.3 negotiates (TLS, SCRAM) and binds its
        name meanwhile, with the router's default limits (1,000 sessions).
        """
        from xmppcomp.stream.bind import BindInitiator
        from xmppcomp.stream.initiating import InitiatingFactory, InitiatingPolicy

        from .test_router_e2e import AUTHORIZATION, CA, DOMAIN, SECRETS, startRouter
        from xmppcomp.stream import tls
        from twisted.internet import reactor

        count = 1000
        raiseFileLimit(self, 2 * count + 200)
        service = startRouter(
            self,
            authorization=AUTHORIZATION,
            # The idle connections must outlive the test's own pace.
            limits=RouterLimits(negotiationTimeout=600.0),
        )
        port = service.ports[0].getHost().port
        # The default cap per source (RouterLimits.maxNegotiatingPerSource).
        perSource = 200

        pool = IdlePool(expected=count - perSource)
        flooding = TCP4ClientEndpoint(reactor, "127.0.0.1", port, bindAddress=("127.0.0.2", 0))
        failures: list[Failure] = []

        def failed(failure: Failure) -> None:
            failures.append(failure)
            pool.ended()

        # A few at a time, fewer than any listen backlog: a connection the
        # kernel could not queue would look open here and never reach the
        # router.
        for start in range(0, count, 25):
            yield defer.gatherResults([flooding.connect(pool).addErrback(failed) for _ in range(25)])

        def abortAll() -> Any:
            for p in pool.protocols:
                if p.transport is not None and p.transport.connected:
                    p.transport.abortConnection()

        self.addCleanup(abortAll)

        binder = BindInitiator(["alpha.example.net"])
        factory = InitiatingFactory(
            InitiatingPolicy(
                DOMAIN,
                "alpha.example.net",
                SECRETS["alpha.example.net"],
                trust=tls.CATrust([CA.certificate.original.to_cryptography()]),
                features=binder.features(),
            )
        )
        component = TCP4ClientEndpoint(reactor, "127.0.0.1", port, bindAddress=("127.0.0.3", 0))
        xs = yield component.connect(factory)
        ended: defer.Deferred[None] = defer.Deferred()
        xs.addObserver(STREAM_END_EVENT, lambda reason: ended.called or ended.callback(None))
        streamErrors: list[str] = []
        xs.addObserver(
            STREAM_ERROR_EVENT,
            lambda failure: streamErrors.append(getattr(failure.value, "condition", "?")),
        )

        def closeComponent() -> Any:
            if xs.transport is not None and xs.transport.connected:
                xs.transport.abortConnection()
            return ended

        self.addCleanup(closeComponent)
        yield xs.authenticator.negotiated
        self.assertEqual(binder.bound, ["alpha.example.net"])
        self.assertEqual(streamErrors, [])
        self.assertIsNotNone(service.router.table.lookup("alpha.example.net"))

        yield pool.settled
        self.assertEqual(pool.open, perSource)
        admission = service.admission.admission
        self.assertEqual(admission.count("127.0.0.2"), perSource)
        self.assertEqual(admission.count("127.0.0.3"), 0)
        self.assertEqual(service.router.established, 1)
        self.assertEqual(service.config.limits.maxNegotiatingPerSource, perSource)
