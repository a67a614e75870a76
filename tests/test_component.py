# -*- test-case-name: tests.test_component -*-
"""
Tests for L{xmppcomp.component.Component}: connected in memory to a real
L{Router} (L{twisted.test.iosim}, pretend TLS), driven by a
L{MemoryReactorClock}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.error import ConnectionLost
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.error import StanzaError, StreamError
from twisted.words.protocols.jabber.xmlstream import TimeoutError
from twisted.words.xish import domish
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler

from xmppcomp.component import Component, QueueFull, QueueTimeout, isFatal
from xmppcomp.config import RouterLimits
from xmppcomp.errors import SASLFailure
from xmppcomp.router.service import Router
from xmppcomp.stream.bind import BindError
from xmppcomp.stream.receiving import ReceivingFactory, ReceivingPolicy

from .test_router_service import SECRETS, STORE, mayBind
from .test_stream_initiating import FakeTLSOptions

DOMAIN = "example.net"


class MemoryEndpoint:
    """
    A client endpoint that connects to a server factory in memory; the
    test pumps the connections.
    """

    def __init__(self, network: "Network") -> None:
        self.network = network

    def connect(self, factory: Any) -> defer.Deferred[Any]:
        if not self.network.up:
            return defer.fail(ConnectionRefused())
        client = factory.buildProtocol(None)
        server = self.network.factory.buildProtocol(None)
        serverTransport = iosim.makeFakeServer(server)
        clientTransport = iosim.makeFakeClient(client)
        pump = iosim.connect(server, serverTransport, client, clientTransport, greet=False)
        self.network.pumps.append(pump)
        self.network.serverTransports.append(serverTransport)
        return defer.succeed(client)


class ConnectionRefused(Exception):
    """
    The in-memory router is down.
    """


class Network:
    """
    A router reachable in memory, that can go down and come back.
    """

    def __init__(self, clock: MemoryReactorClock, **limits: Any) -> None:
        self.clock = clock
        self.up = True
        self.pumps: list[iosim.IOPump] = []
        self.serverTransports: list[Any] = []
        self.start(**limits)

    def start(self, **limits: Any) -> None:
        self.router = Router(DOMAIN, mayBind, RouterLimits(**limits), self.clock)
        self.factory = ReceivingFactory(
            ReceivingPolicy(
                domains={DOMAIN},
                credentials=STORE,
                tlsOptions=FakeTLSOptions(),
                features=self.router.receivingFeatures(),
            ),
            reactor=self.clock,
        )
        self.router.addBootstraps(self.factory, "xep0225")
        self.up = True

    def crash(self) -> None:
        """
        Drop every connection and refuse new ones.
        """
        self.up = False
        for transport in self.serverTransports:
            transport.loseConnection()
        self.flush()

    def flush(self) -> None:
        moved = True
        while moved:
            moved = False
            for pump in self.pumps:
                moved = pump.pump() or moved


class MemoryComponent(Component):
    """
    A component whose endpoint is the in-memory network.
    """

    network: Network

    def endpointFor(self, link: Any) -> Any:
        return MemoryEndpoint(self.network)


def makeComponent(network: Network, identity: str, *hostnames: str, **kwargs: Any) -> MemoryComponent:
    MemoryComponent.network = network
    kwargs.setdefault("retryPolicy", lambda attempt: 2.0 ** attempt)
    component = MemoryComponent(
        "memory",
        DOMAIN,
        hostnames or (identity,),
        secret=kwargs.pop("secret", SECRETS[identity]),
        identity=identity,
        reactor=network.clock,
        tlsCreator=FakeTLSOptions(),
        **kwargs,
    )
    return component


class Recorder(XMPPHandler):
    """
    Records what the handler framework tells it and the messages it gets.
    """

    def __init__(self) -> None:
        super().__init__()
        self.initialized = 0
        self.lost = 0
        self.messages: list[domish.Element] = []

    def connectionInitialized(self) -> None:
        self.initialized += 1
        self.xmlstream.addObserver("/message", self.messages.append)

    def connectionLost(self, reason: Failure) -> None:
        self.lost += 1


class AsyncTimeHandler(XMPPHandler, IQHandlerMixin):
    """
    An C{async def} IQ handler.
    """

    iqHandlers = {"/iq[@type='get']/time[@xmlns='urn:example:time']": "onTime"}

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver("/iq[@type='get']", self.handleRequest)

    async def onTime(self, iq: domish.Element) -> domish.Element:
        await defer.succeed(None)
        element = domish.Element(("urn:example:time", "time"))
        element.addElement("utc", content="2026-11-22T00:00:00Z")
        return element


class TestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.network = Network(self.clock)
        self.addCleanup(self._stopAll)
        self.components: list[Component] = []

    def component(self, identity: str, *hostnames: str, **kwargs: Any) -> MemoryComponent:
        component = makeComponent(self.network, identity, *hostnames, **kwargs)
        component.startService()
        self.components.append(component)
        self.network.flush()
        return component

    def _stopAll(self) -> None:
        for component in self.components:
            if component.running:
                component.stopService()
        self.network.flush()


class ConnectionTests(TestCase):
    """
    Connecting, binding and handlers.
    """

    def test_bindsAndInitializesHandlers(self) -> None:
        """
        The component connects, binds all its hostnames, and initialises
        its handlers once.
        """
        recorder = Recorder()
        alpha = makeComponent(self.network, "alpha.example.net", "alpha.example.net", "chat.alpha.example.net")
        recorder.setHandlerParent(alpha)
        alpha.startService()
        self.components.append(alpha)
        self.network.flush()
        self.assertTrue(alpha.isConnected("chat.alpha.example.net"))
        self.assertEqual(recorder.initialized, 1)
        session = self.network.router.table.lookup("chat.alpha.example.net")
        self.assertEqual(session.names, ["alpha.example.net", "chat.alpha.example.net"])

    def test_stanzasReachHandlers(self) -> None:
        """
        Stanzas from another component reach the handlers.
        """
        recorder = Recorder()
        alpha = self.component("alpha.example.net")
        recorder.setHandlerParent(alpha)
        beta = self.component("beta.example.net")
        message = domish.Element((None, "message"))
        message["from"] = "beta.example.net"
        message["to"] = "alpha.example.net"
        message.addElement("body", content="hi")
        beta.send(message)
        self.network.flush()
        self.assertEqual([str(m.body) for m in recorder.messages], ["hi"])

    def test_requestAndAsyncHandler(self) -> None:
        """
        L{Component.request} fires with the result an C{async def} handler
        of the other component returned.
        """
        alpha = self.component("alpha.example.net")
        beta = self.component("beta.example.net")
        AsyncTimeHandler().setHandlerParent(beta)
        iq = domish.Element((None, "iq"))
        iq["type"] = "get"
        iq["from"] = "alpha.example.net"
        iq["to"] = "beta.example.net"
        iq.addElement(("urn:example:time", "time"))
        d = alpha.request(iq)
        self.network.flush()
        result = self.successResultOf(d)
        self.assertEqual(str(result.time.utc), "2026-11-22T00:00:00Z")

    def test_requestError(self) -> None:
        """
        A stanza error answer fails the request with it.
        """
        alpha = self.component("alpha.example.net")
        iq = domish.Element((None, "iq"))
        iq["type"] = "get"
        iq["from"] = "alpha.example.net"
        iq["to"] = "nobody.example.net"
        iq.addElement(("urn:example:time", "time"))
        d = alpha.request(iq)
        self.network.flush()
        self.assertEqual(self.failureResultOf(d, StanzaError).value.condition, "service-unavailable")

    def test_requestTimeout(self) -> None:
        """
        An unanswered request fails with L{TimeoutError} after its timeout.
        """
        alpha = self.component("alpha.example.net")
        self.component("beta.example.net")
        iq = domish.Element((None, "iq"))
        iq["type"] = "get"
        iq["from"] = "alpha.example.net"
        iq["to"] = "beta.example.net"
        iq.addElement(("urn:example:nobody-answers", "query"))
        d = alpha.request(iq, timeout=5)
        self.network.flush()
        self.assertNoResult(d)
        self.clock.advance(5)
        self.failureResultOf(d, TimeoutError)

    def test_bindAndUnbindLater(self) -> None:
        """
        L{Component.bind} binds another name on the open stream and
        L{Component.unbind} releases it.
        """
        alpha = self.component("alpha.example.net")
        d = alpha.bind("extra.alpha.example.net")
        self.network.flush()
        self.assertEqual(self.successResultOf(d), "extra.alpha.example.net")
        self.assertIn("extra.alpha.example.net", alpha.hostnames)
        self.assertIsNotNone(self.network.router.table.lookup("extra.alpha.example.net"))
        d = alpha.unbind("extra.alpha.example.net")
        self.network.flush()
        self.successResultOf(d)
        self.assertIsNone(self.network.router.table.lookup("extra.alpha.example.net"))

    def test_bindRefused(self) -> None:
        """
        A refused bind fails with the stanza error.
        """
        alpha = self.component("alpha.example.net")
        d = alpha.bind("beta.example.net")
        self.network.flush()
        self.assertEqual(self.failureResultOf(d, StanzaError).value.condition, "not-allowed")
        self.assertNotIn("beta.example.net", alpha.hostnames)


class ReconnectionTests(TestCase):
    """
    Losing the server: backoff, rebinding, queueing.
    """

    def test_reconnectsAndRebinds(self) -> None:
        """
        After the router crashes and comes back, the component reconnects
        with backoff, binds every name again (including one bound later),
        and its handlers are initialised again.
        """
        recorder = Recorder()
        alpha = makeComponent(self.network, "alpha.example.net", "alpha.example.net", "a.alpha.example.net")
        recorder.setHandlerParent(alpha)
        alpha.startService()
        self.components.append(alpha)
        self.network.flush()
        alpha.bind("b.alpha.example.net")
        self.network.flush()
        self.network.crash()
        self.assertFalse(alpha.isConnected())
        self.assertEqual(recorder.lost, 1)
        self.network.start()
        for _ in range(20):
            self.clock.advance(1)
            self.network.flush()
        self.assertTrue(alpha.isConnected())
        self.assertEqual(recorder.initialized, 2)
        session = self.network.router.table.lookup("alpha.example.net")
        self.assertEqual(session.names, ["alpha.example.net", "a.alpha.example.net", "b.alpha.example.net"])

    def test_backoffSchedule(self) -> None:
        """
        While the server is down, attempts follow the retry policy; a
        fatal failure (wrong secret) waits at least C{fatalRetryDelay}.
        """
        delays: list[int] = []
        self.network.crash()
        alpha = self.component(
            "alpha.example.net", retryPolicy=lambda n: (delays.append(n), 1.0)[1]
        )
        self.clock.advance(1)
        self.clock.advance(1)
        self.assertEqual(delays, [1, 2, 3])
        self.assertFalse(alpha.isConnected())

    def test_fatalBackoff(self) -> None:
        """
        Wrong credentials are not retried in a tight loop.
        """
        beta = self.component("beta.example.net", secret="wrong", retryPolicy=lambda n: 1.0, fatalRetryDelay=300)
        attempts = len(self.network.pumps)
        self.clock.advance(299)
        self.network.flush()
        self.assertEqual(len(self.network.pumps), attempts)
        self.clock.advance(1)
        self.network.flush()
        self.assertEqual(len(self.network.pumps), attempts + 1)
        self.assertFalse(beta.isConnected())

    def test_queuedWhileDown(self) -> None:
        """
        Stanzas sent while disconnected wait and go out after
        reconnection, in order.
        """
        alpha = self.component("alpha.example.net")
        beta = self.component("beta.example.net")
        recorder = Recorder()
        recorder.setHandlerParent(beta)
        self.network.crash()
        sent = []
        for i in range(3):
            message = domish.Element((None, "message"))
            message["from"] = "alpha.example.net"
            message["to"] = "beta.example.net"
            message.addElement("body", content=str(i))
            sent.append(alpha.sendOrFail(message))
        for d in sent:
            self.assertNoResult(d)
        self.network.start()
        for _ in range(20):
            self.clock.advance(1)
            self.network.flush()
        for d in sent:
            self.successResultOf(d)
        self.assertEqual([str(m.body) for m in recorder.messages], ["0", "1", "2"])

    def test_queueLimits(self) -> None:
        """
        A full queue fails at once; a stanza that waits too long fails
        with L{QueueTimeout}; fire-and-forget failures are logged.
        """
        alpha = self.component("alpha.example.net", maxQueued=1, queueTimeout=10)
        self.network.crash()
        first = domish.Element((None, "message"))
        first["from"] = "alpha.example.net"
        first["to"] = "beta.example.net"
        waiting = alpha.sendOrFail(first)
        self.failureResultOf(alpha.sendOrFail(first), QueueFull)
        self.clock.advance(10)
        self.failureResultOf(waiting, QueueTimeout)
        alpha.send(first)
        alpha.send(first)
        errors = self.flushLoggedErrors()
        self.assertEqual(errors, [])

    def test_inFlightRequestFailsOnLoss(self) -> None:
        """
        A request whose answer can no longer come fails with
        L{ConnectionLost} when the connection drops.
        """
        alpha = self.component("alpha.example.net")
        self.component("beta.example.net")
        iq = domish.Element((None, "iq"))
        iq["type"] = "get"
        iq["from"] = "alpha.example.net"
        iq["to"] = "beta.example.net"
        iq.addElement(("urn:example:nobody-answers", "query"))
        d = alpha.request(iq)
        self.network.flush()
        self.network.crash()
        self.failureResultOf(d, ConnectionLost)


class FatalTests(SynchronousTestCase):
    """
    L{isFatal} tells failures worth a long pause.
    """

    def test_classification(self) -> None:
        """
        Wrong credentials, refused names, certificate errors and some
        stream errors are fatal; a lost connection or timeout is not.
        """
        self.assertTrue(isFatal(Failure(SASLFailure("not-authorized"))))
        self.assertFalse(isFatal(Failure(SASLFailure("temporary-auth-failure"))))
        self.assertTrue(isFatal(Failure(BindError("x.example.net", "not-allowed"))))
        self.assertTrue(isFatal(Failure(StreamError("host-unknown"))))
        self.assertFalse(isFatal(Failure(StreamError("system-shutdown"))))
        self.assertFalse(isFatal(Failure(ConnectionLost())))


class KeepaliveTests(TestCase):
    """
    Silent servers are detected with XEP-0199 pings (RFC 6120 section 4.5).
    """

    def test_answeredPingsKeepTheConnection(self) -> None:
        """
        The router answers the pings; the connection stays.
        """
        alpha = self.component("alpha.example.net", keepaliveInterval=60, keepaliveTimeout=10)
        for _ in range(5):
            self.clock.advance(60)
            self.network.flush()
        self.assertTrue(alpha.isConnected())

    def test_silentServerDropped(self) -> None:
        """
        When the server stops answering, the connection is dropped after
        the ping timeout, and the component reconnects.
        """
        alpha = self.component(
            "alpha.example.net", keepaliveInterval=60, keepaliveTimeout=10, retryPolicy=lambda n: 1.0
        )
        recorder = Recorder()
        recorder.setHandlerParent(alpha)
        # The router goes silent: it reads but answers nothing.
        self.network.router._local = lambda session, stanza: None  # type: ignore[method-assign]
        self.clock.advance(60)
        self.network.flush()
        self.assertTrue(alpha.isConnected())
        self.clock.advance(10)
        self.network.flush()
        self.assertEqual(recorder.lost, 1)
        self.clock.advance(1)
        self.network.flush()
        self.assertTrue(alpha.isConnected())
        self.assertEqual(recorder.initialized, 2)
