# -*- test-case-name: tests.test_httpauth_drain -*-
"""
Tests for the confirmer's graceful drain (L{ConfirmerSite.drain}, run by
L{HTTPAuthListener.stopService} on SIGTERM) and its health endpoint for
load balancers (L{xmppcomp.httpauth.withHealth}, C{[httpauth]
health_path}).

The logic runs on a L{StringTransport} with a L{MemoryReactorClock}; the
listener's stop runs over real loopback TCP with a real HTTP client.
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectError
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, readBody
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from xmppcomp import services
from xmppcomp.httpauth import ConfirmerSite, HTTPAuthListener, withHealth

from .test_httpauth_listener import Client, configuration
from .test_httpauth_site import SiteTestCase, head


class Held(Resource):
    """
    A leaf that holds each request until the test answers it.

    @ivar held: the requests waiting, in order.
    @ivar arrived: fires when the first request arrives.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.held: list[Request] = []
        self.arrived: Deferred[None] = Deferred()

    def render(self, request: Any) -> int:
        self.held.append(request)
        if not self.arrived.called:
            self.arrived.callback(None)
        return NOT_DONE_YET

    def answer(self, body: bytes = b"done\n") -> None:
        request = self.held.pop(0)
        request.setHeader(b"Content-Length", b"%d" % (len(body),))
        request.write(body)
        request.finish()


class DrainTests(SiteTestCase):
    """
    L{ConfirmerSite.drain}: requests in flight finish, new ones get 503.
    """

    def setUp(self) -> None:
        super().setUp()
        self.resource = Held()  # type: ignore[assignment]

    def test_nothingInFlight(self) -> None:
        """
        With no request in flight the drain is over at once, and the site
        is draining from then on.
        """
        site = self.makeSite()
        self.assertEqual(self.successResultOf(site.drain(30)), 0)
        self.assertTrue(site.draining)

    def test_inFlightFinishes(self) -> None:
        """
        A request in flight when the drain starts is answered as usual,
        and the drain ends when it is; meanwhile a new request, on a new
        connection or on a kept-alive one, gets 503 with Retry-After and
        its connection closed, and the resource never sees it.
        """
        site = self.makeSite()
        first = self.connect(site)
        first.send(head(b"GET", b"/a"))
        self.assertEqual(site.inFlight, 1)
        drained = site.drain(30)
        self.assertNoResult(drained)
        late = self.connect(site)
        late.send(head(b"GET", b"/b"))
        answer = self.assertEarlyAnswer(late, 503, b"Service Unavailable")
        self.assertEqual(answer.header(b"retry-after"), [b"1"])
        self.assertIn(b"shutting down", answer.body)
        self.assertEqual(len(self.resource.held), 1)  # type: ignore[attr-defined]
        self.resource.answer()  # type: ignore[attr-defined]
        [ok] = first.answers()
        self.assertEqual((ok.status, ok.body), (200, b"done\n"))
        self.assertEqual(self.successResultOf(drained), 0)
        # The same (kept-alive) connection's next request is refused too.
        first.send(head(b"GET", b"/c"))
        self.assertEqual([a.status for a in first.answers()], [200, 503])
        self.assertTrue(first.transport.disconnecting)

    def test_timeout(self) -> None:
        """
        A request still in flight after the timeout ends the drain with
        the count left (the listener then closes its connection).
        """
        site = self.makeSite()
        self.connect(site).send(head(b"GET", b"/a"))
        drained = site.drain(5)
        self.clock.advance(4.9)
        self.assertNoResult(drained)
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(drained), 1)

    def test_lostConnection(self) -> None:
        """
        A request whose client went away no longer counts: the drain ends,
        and its timer is gone.
        """
        site = self.makeSite()
        connection = self.connect(site)
        connection.send(head(b"GET", b"/a"))
        drained = site.drain(5)
        connection.close()
        self.assertEqual(self.successResultOf(drained), 0)
        self.assertEqual(site.inFlight, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [c for c in self.clock.getDelayedCalls() if c.active()])
        self.assertFalse(any(c.func == site._drainTimedOut for c in self.clock.getDelayedCalls()))


class HealthTests(SiteTestCase):
    """
    The health endpoint: 200 when every check passes, else 503; JSON
    naming each check; other paths go to the site unchanged.
    """

    def site(self, **checks: Any) -> ConfirmerSite:
        self.resource = Held()  # type: ignore[assignment]
        return ConfirmerSite(withHealth(self.resource, "/.xmppcomp/health", checks), reactor=self.clock,
                             accessLog="none")

    def test_badPath(self) -> None:
        """
        A path that no request could reach (no leading slash, an empty or
        dot segment, escapes) is refused, as the configuration refuses it.
        """
        for bad in ("health", "/a/../b", "/a//b", "/a/", "/%68ealth", "/a b", ""):
            self.assertRaises(ValueError, withHealth, Held(), bad, {})

    def test_healthy(self) -> None:
        """
        Every check true: 200, C{status: ok}, not cached, nothing asked
        of the site.
        """
        connection = self.connect(self.site(xmpp=lambda: True, accepting=lambda: True))
        connection.send(head(b"GET", b"/.xmppcomp/health"))
        [answer] = connection.answers()
        self.assertEqual(answer.status, 200)
        self.assertEqual(json.loads(answer.body), {"status": "ok", "checks": {"xmpp": True, "accepting": True}})
        self.assertEqual(answer.header(b"cache-control"), [b"no-store"])
        self.assertEqual(answer.header(b"content-type"), [b"application/json"])
        self.assertEqual(self.resource.held, [])  # type: ignore[attr-defined]

    def test_unhealthy(self) -> None:
        """
        One check false, one failing, one answering later: 503 with
        Retry-After once all have answered, each named; HEAD gets the
        status without the body.
        """
        later: Deferred[bool] = Deferred()

        def broken() -> bool:
            raise RuntimeError("store unreachable")

        connection = self.connect(self.site(xmpp=lambda: False, store=broken, slow=lambda: later))
        connection.send(head(b"GET", b"/.xmppcomp/health"))
        self.assertEqual(connection.answers(), [])
        later.callback(True)
        [answer] = connection.answers()
        self.assertEqual(answer.status, 503)
        self.assertEqual(answer.header(b"retry-after"), [b"1"])
        self.assertEqual(json.loads(answer.body),
                         {"status": "unavailable", "checks": {"xmpp": False, "store": False, "slow": True}})
        connection.send(head(b"HEAD", b"/.xmppcomp/health"))
        answers = connection.transport.value().split(b"HTTP/1.1 ")
        self.assertTrue(answers[-1].startswith(b"503 "), answers[-1])
        self.assertTrue(answers[-1].endswith(b"\r\n\r\n"), answers[-1])

    def test_otherPaths(self) -> None:
        """
        Other paths, a path below the health path, and a POST to a
        different path go to the site.
        """
        site = self.site(xmpp=lambda: True)
        for target in (b"/", b"/.xmppcomp", b"/.xmppcomp/health/x", b"/a/.xmppcomp/health"):
            self.connect(site).send(head(b"GET", target))
        self.assertEqual([r.uri for r in self.resource.held],  # type: ignore[attr-defined]
                         [b"/", b"/.xmppcomp", b"/.xmppcomp/health/x", b"/a/.xmppcomp/health"])

    def test_clientGone(self) -> None:
        """
        A client that leaves before a slow check answers gets nothing
        written, and nothing fails.
        """
        later: Deferred[bool] = Deferred()
        connection = self.connect(self.site(slow=lambda: later))
        connection.send(head(b"GET", b"/.xmppcomp/health"))
        connection.close()
        later.callback(True)
        self.assertEqual(connection.answers(), [])


class ConfigTests(SynchronousTestCase):
    """
    C{[httpauth] health_path} and C{drain_timeout}.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def test_defaults(self) -> None:
        """
        No health endpoint, 30 seconds to drain.
        """
        httpauth = configuration(self.directory).httpauth
        self.assertEqual((httpauth.healthPath, httpauth.drainTimeout), (None, 30.0))

    def test_keys(self) -> None:
        """
        Both keys are read; a health path must be plain segments.
        """
        httpauth = configuration(self.directory, health_path="/.xmppcomp/health", drain_timeout=90).httpauth
        self.assertEqual((httpauth.healthPath, httpauth.drainTimeout), ("/.xmppcomp/health", 90.0))
        self.assertIsNone(configuration(self.directory, health_path="").httpauth.healthPath)
        for bad in ("health", "/a/../b", "/a//b", "/%68ealth", "/a b"):
            with self.assertRaises(Exception) as e:
                configuration(self.directory, health_path=bad)
            self.assertIn("httpauth.health_path: ", str(e.exception))
            self.assertIn('such as "/.xmppcomp/health"', str(e.exception))
        with self.assertRaises(Exception) as e:
            configuration(self.directory, drain_timeout=0)
        self.assertIn("httpauth.drain_timeout must be a finite number of seconds above 0", str(e.exception))


class LoopbackTests(TestCase):
    """
    The listener of C{twistd xmppcomp}'s tree over real loopback TCP: its
    stop drains, and the health endpoint reports the XMPP stream.
    """

    timeout = 30

    def listener(self, **httpauth: Any) -> HTTPAuthListener:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        top = services.serviceFromConfig(configuration(directory, **httpauth), reactor)
        listener = top.getServiceNamed(services.HTTPAUTH_SERVICE)
        assert isinstance(listener, HTTPAuthListener)
        return listener

    @defer.inlineCallbacks
    def test_stopDrains(self) -> Any:
        """
        Stopping the listener with a request in flight: the port closes
        at once (a new connection is refused), a new request on an open
        connection gets 503, the request in flight is answered 200, and
        only then does the stop end.
        """
        listener = self.listener(drain_timeout=20)
        held = Held()
        assert listener.site is not None
        listener.site.resource = held
        listener.startService()
        port = (yield listener.whenListening()).getHost().port
        agent = Agent(reactor)
        url = b"http://127.0.0.1:%d/a" % (port,)
        inFlight = agent.request(b"GET", url)
        idle = yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), Client())
        yield held.arrived
        stopped = listener.stopService()
        self.assertNoResult(stopped)
        with self.assertRaises(ConnectError):
            yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5), Client())
        idle.transport.write(b"GET /b HTTP/1.1\r\nHost: www.example.net\r\n\r\n")
        yield idle.closed
        self.assertTrue(idle.received.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), idle.received)
        self.assertNoResult(stopped)
        held.answer()
        response = yield inFlight
        self.assertEqual((response.code, (yield readBody(response))), (200, b"done\n"))
        yield stopped
        self.assertEqual(listener.site.inFlight, 0)

    @defer.inlineCallbacks
    def test_health(self) -> Any:
        """
        With C{health_path}: 503 while the component has no stream (its
        server here is down), naming the check.
        """
        listener = self.listener(health_path="/.xmppcomp/health")
        listener.startService()
        self.addCleanup(listener.stopService)
        port = (yield listener.whenListening()).getHost().port
        response = yield Agent(reactor).request(b"GET", b"http://127.0.0.1:%d/.xmppcomp/health" % (port,))
        body = json.loads((yield readBody(response)))
        self.assertEqual((response.code, body),
                         (503, {"status": "unavailable", "checks": {"xmpp": False, "accepting": True}}))
