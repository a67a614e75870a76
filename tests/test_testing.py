# -*- test-case-name: tests.test_testing -*-
"""
Tests for the public test helpers of L{xmppcomp.testing} that the other
tests do not exercise on their own: connections in memory (closing,
aborting, pausing, refusing), the router going down, and stanzas between
handlers.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.xish import domish
from wokkel.subprotocols import XMPPHandler

from xmppcomp.component import Component
from xmppcomp.testing import (
    FakeTLSTransport,
    MemoryConnection,
    MemoryEndpoint,
    MemoryRouter,
    PretendTLS,
    StanzaRouter,
)


class Recording(Protocol):
    """
    Records what it receives and why its connection was lost.
    """

    def __init__(self) -> None:
        self.received = b""
        self.reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.reason = reason


class Refusing(Factory):
    def buildProtocol(self, addr: Any) -> None:
        return None


class FakeTLSTransportTests(SynchronousTestCase):
    def test_startTLS(self) -> None:
        """
        C{startTLS} records its options and what was written before it;
        writing goes on in the clear.
        """
        transport = FakeTLSTransport()
        transport.write(b"<proceed/>")
        options = PretendTLS()
        transport.startTLS(options)
        transport.write(b"<stream>")
        self.assertIs(transport.tlsOptions, options)
        self.assertEqual(transport.writtenBeforeTLS, b"<proceed/>")
        self.assertEqual(transport.value(), b"<proceed/><stream>")


class MemoryConnectionTests(SynchronousTestCase):
    def connect(self) -> tuple[MemoryConnection, Recording, Recording]:
        client, server = Recording(), Recording()
        return MemoryConnection(client, server), client, server

    def test_delivers(self) -> None:
        """
        L{MemoryConnection.pump} delivers what each end wrote to the other.
        """
        connection, client, server = self.connect()
        connection.clientTransport.write(b"hello")
        connection.serverTransport.write(b"welcome")
        self.assertTrue(connection.flush())
        self.assertEqual((server.received, client.received), (b"hello", b"welcome"))
        self.assertFalse(connection.flush())

    def test_close(self) -> None:
        """
        After C{loseConnection}, what was written is delivered, then both
        ends are told the connection is done; later writes are dropped.
        """
        connection, client, server = self.connect()
        connection.serverTransport.write(b"bye")
        connection.serverTransport.loseConnection()
        connection.serverTransport.write(b"dropped")
        connection.flush()
        self.assertEqual(client.received, b"bye")
        assert client.reason is not None and server.reason is not None
        self.assertTrue(client.reason.check(ConnectionDone))
        self.assertTrue(server.reason.check(ConnectionDone))
        self.assertTrue(connection.closed)

    def test_abort(self) -> None:
        """
        After C{abortConnection}, what was not delivered is lost; the
        aborting end sees L{ConnectionAborted}, its peer L{ConnectionLost}.
        """
        connection, client, server = self.connect()
        connection.clientTransport.write(b"lost")
        connection.clientTransport.abortConnection()
        connection.flush()
        self.assertEqual(server.received, b"")
        assert client.reason is not None and server.reason is not None
        self.assertTrue(client.reason.check(ConnectionAborted))
        self.assertTrue(server.reason.check(ConnectionLost))

    def test_paused(self) -> None:
        """
        Nothing is delivered to an end whose transport is paused, until it
        resumes.
        """
        connection, client, server = self.connect()
        connection.serverTransport.pauseProducing()
        connection.clientTransport.write(b"wait")
        self.assertFalse(connection.flush())
        connection.serverTransport.resumeProducing()
        connection.flush()
        self.assertEqual(server.received, b"wait")


class MemoryEndpointTests(SynchronousTestCase):
    def test_connects(self) -> None:
        """
        L{MemoryEndpoint.connect} fires with the client protocol, connected
        to one of the server factory, and records the connection.
        """
        endpoint = MemoryEndpoint(Factory.forProtocol(Recording))
        client = self.successResultOf(endpoint.connect(Factory.forProtocol(Recording)))
        [connection] = endpoint.connections
        self.assertIs(connection.client, client)
        assert isinstance(client, Recording)
        connection.serverTransport.write(b"hi")
        endpoint.flush()
        self.assertEqual(client.received, b"hi")

    def test_refused(self) -> None:
        """
        A server factory that builds no protocol refuses the connection.
        """
        endpoint = MemoryEndpoint(Refusing())
        self.failureResultOf(endpoint.connect(Factory.forProtocol(Recording)), ConnectionRefusedError)
        self.assertEqual(endpoint.connections, [])


class MemoryRouterTests(SynchronousTestCase):
    def test_downAndUp(self) -> None:
        """
        After L{MemoryRouter.crash}, a component is disconnected and its
        attempts are refused; after L{MemoryRouter.start} it reconnects and
        binds its names again, on the new router.
        """
        router = MemoryRouter()
        secret = router.addIdentity("comp.example.net", hostnames=["other.example.org"])
        component = Component(
            "memory",
            router.domain,
            ["comp.example.net", "a.other.example.org"],
            secret=secret,
            reactor=router.reactor,
            endpointFactory=router.endpointFactory,
            retryPolicy=lambda attempt: 1.0,
        )
        component.startService()
        self.addCleanup(component.stopService)
        router.flush()
        self.assertEqual(component.boundHostnames, ["comp.example.net", "a.other.example.org"])
        router.crash()
        self.assertFalse(component.isConnected())
        router.reactor.advance(1)
        router.flush()
        self.assertEqual(len(router.connections), 1)
        router.start()
        router.reactor.advance(1)
        router.flush()
        self.assertEqual(len(router.connections), 2)
        self.assertTrue(component.isConnected("a.other.example.org"))
        self.assertIsNotNone(router.router.table.lookup("comp.example.net"))

    def test_xep0114(self) -> None:
        """
        An XEP-0114 component connects for a name added with
        L{MemoryRouter.addAcceptName}.
        """
        router = MemoryRouter()
        secret = router.addAcceptName("legacy.example.net")
        component = Component(
            "memory",
            router.domain,
            ["legacy.example.net"],
            secret=secret,
            protocol="xep0114",
            reactor=router.reactor,
            endpointFactory=router.endpointFactory,
        )
        component.startService()
        self.addCleanup(component.stopService)
        router.flush()
        self.assertTrue(component.isConnected("legacy.example.net"))


class Inbox(XMPPHandler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[domish.Element] = []

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver("/message", self.messages.append)


class StanzaRouterTests(SynchronousTestCase):
    def test_routesByDomain(self) -> None:
        """
        A stanza reaches the handler attached for the domain of its C{to},
        parsed anew; a stanza for an unknown domain is dropped.
        """
        router = StanzaRouter()
        inbox = Inbox()
        router.attach("b.example", inbox)
        sender = router.connect("a.example")
        message = domish.Element((None, "message"))
        message["to"] = "user@b.example"
        message["from"] = "a.example"
        sender.send(message)
        sender.send("<message to='nobody.example'/>")
        self.assertEqual(router.flush(), 2)
        [received] = inbox.messages
        self.assertIsNot(received, message)
        self.assertEqual(received["to"], "user@b.example")
        self.assertEqual(router.delivered, 1)
        self.assertEqual(router.dropped, ["<message to='nobody.example'/>"])
