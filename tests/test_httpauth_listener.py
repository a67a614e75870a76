# -*- test-case-name: tests.test_httpauth_listener -*-
"""
Tests for the confirmer's web listener (L{xmppcomp.tap.HTTPAuthListener}):
its open connections are capped per client address and in all
(C{[httpauth] max_connections_per_source}, C{max_connections}; trusted
proxies count in the total only), refused connections are closed at accept
time without a byte, and its listen backlog is C{[httpauth]
listen_backlog}.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectError
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from xmppcomp import tap
from xmppcomp.admission import AdmissionFactory, sourceKeyExcept
from xmppcomp.config import ConfigError, componentConfigFromMapping


def configuration(directory: str, **httpauth: Any) -> Any:
    """
    A component configuration naming a server (nothing connects to it
    here), whose confirmer listens on a free loopback port with the
    C{[httpauth]} keys given.
    """
    secret = os.path.join(directory, "comp.secret")
    with open(secret, "w") as f:
        f.write("the component's secret\n")
    table = {
        "listen": "tcp:0:interface=127.0.0.1",
        "public_origin": "https://www.example.net",
        "access_log": "none",
    }
    table.update(httpauth)
    return componentConfigFromMapping(
        {
            "component": {
                "server": "tcp:host=127.0.0.1:port=5348",
                "server_domain": "example.net",
                "hostnames": ["comp.example.net"],
                "secret": {"file": secret},
            },
            "httpauth": table,
            "xtls": {"enabled": False},
        },
        os.path.join(directory, "component.toml"),
    )


class ConfigTests(SynchronousTestCase):
    """
    The C{[httpauth]} keys of the caps and the backlog.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def test_defaults(self) -> None:
        """
        By default: 10,000 open connections in all, 256 per address, a
        backlog of 511.
        """
        httpauth = configuration(self.directory).httpauth
        self.assertEqual(
            (httpauth.maxConnections, httpauth.maxConnectionsPerSource, httpauth.listenBacklog),
            (10000, 256, 511),
        )

    def test_keys(self) -> None:
        """
        The keys set the values; below 1, or not an integer, is an error
        that names the key.
        """
        httpauth = configuration(
            self.directory, max_connections=50, max_connections_per_source=5, listen_backlog=64
        ).httpauth
        self.assertEqual(
            (httpauth.maxConnections, httpauth.maxConnectionsPerSource, httpauth.listenBacklog), (50, 5, 64)
        )
        for key in ("max_connections", "max_connections_per_source", "listen_backlog"):
            for bad in (0, "10", 1.5):
                error = self.assertRaises(ConfigError, configuration, self.directory, **{key: bad})
                self.assertIn("httpauth." + key, str(error))


class SourceKeyExceptTests(SynchronousTestCase):
    """
    L{sourceKeyExcept}: client addresses per source, trusted proxies in the
    total only.
    """

    def test_trusted(self) -> None:
        """
        Peers in the trusted networks get no source key; others get theirs
        (IPv6 per /64, an IPv4-mapped address as IPv4).
        """
        sourceOf = sourceKeyExcept(["127.0.0.1", "10.0.0.0/8", "2001:db8:1::/48"])
        self.assertIsNone(sourceOf(IPv4Address("TCP", "127.0.0.1", 1)))
        self.assertIsNone(sourceOf(IPv4Address("TCP", "10.1.2.3", 1)))
        self.assertIsNone(sourceOf(IPv6Address("TCP", "::ffff:10.1.2.3", 1)))
        self.assertIsNone(sourceOf(IPv6Address("TCP", "2001:db8:1:2::5", 1)))
        self.assertEqual(sourceOf(IPv4Address("TCP", "127.0.0.2", 1)), "127.0.0.2")
        self.assertEqual(sourceOf(IPv6Address("TCP", "2001:db8:2::5", 1)), "2001:db8:2::/64")
        self.assertEqual(sourceKeyExcept([])(IPv4Address("TCP", "127.0.0.1", 1)), "127.0.0.1")
        self.assertRaises(ValueError, sourceKeyExcept, ["not an address"])


class ServiceTests(SynchronousTestCase):
    """
    L{tap.serviceFromConfig} puts the caps and the backlog on the
    confirmer's listener.
    """

    def test_wired(self) -> None:
        """
        The listener listens with the configured backlog, through a gate
        with the configured caps, and stops the gate when it stops.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        config = configuration(directory, max_connections=40, max_connections_per_source=4, listen_backlog=33)
        memory = MemoryReactorClock()
        top = tap.serviceFromConfig(config, memory)
        listener = top.getServiceNamed(tap.HTTPAUTH_SERVICE)
        listener.startService()
        [(_, factory, backlog, interface)] = memory.tcpServers
        self.assertEqual((backlog, interface), (33, "127.0.0.1"))
        self.assertIs(factory, listener.factory)
        self.assertIsInstance(factory.wrappedFactory, AdmissionFactory)
        self.assertIs(factory.wrappedFactory.gate, listener.gate)
        admission = listener.gate.admission
        self.assertEqual((admission.maxTotal, admission.maxPerSource), (40, 4))
        self.successResultOf(listener.stopService())


class Client(Protocol):
    """
    A client connection: what it received, and when it was closed.
    """

    def __init__(self) -> None:
        self.received = b""
        self.closed: defer.Deferred[None] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:
        self.closed.callback(None)


class LoopbackTests(TestCase):
    """
    The confirmer's listener over real loopback TCP.
    """

    timeout = 30

    @defer.inlineCallbacks
    def test_capPerSource(self) -> Any:
        """
        With C{max_connections_per_source = 3}: three idle connections
        from 127.0.0.2 are held, its fourth is closed at accept without a
        byte; a client at 127.0.0.3 is answered meanwhile, and a trusted
        proxy (127.0.0.1) may open more than three.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        config = configuration(
            directory, max_connections_per_source=3, trusted_proxies=["127.0.0.1"]
        )
        top = tap.serviceFromConfig(config, reactor)
        listener = top.getServiceNamed(tap.HTTPAUTH_SERVICE)
        listener.startService()
        self.addCleanup(listener.stopService)
        port = (yield listener.whenListening()).getHost().port

        def connect(source: str) -> defer.Deferred[Client]:
            endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, bindAddress=(source, 0))
            return connectProtocol(endpoint, Client())

        held = []
        for _ in range(3):
            held.append((yield connect("127.0.0.2")))
        try:
            fourth = yield connect("127.0.0.2")
            yield fourth.closed
            self.assertEqual(fourth.received, b"")
        except ConnectError:
            # Reset before the connection completed here: refused all the same.
            pass
        self.assertEqual(listener.gate.admission.count("127.0.0.2"), 3)
        self.assertFalse(any(client.closed.called for client in held))

        client = yield connect("127.0.0.3")
        client.transport.write(b"GET / HTTP/1.1\r\nHost: www.example.net\r\nConnection: close\r\n\r\n")
        yield client.closed
        self.assertTrue(client.received.startswith(b"HTTP/1.1 401 "), client.received[:200])

        proxied = []
        for _ in range(5):
            proxied.append((yield connect("127.0.0.1")))
        probe = yield connect("127.0.0.1")
        probe.transport.write(b"GET / HTTP/1.1\r\nHost: www.example.net\r\nConnection: close\r\n\r\n")
        yield probe.closed
        self.assertTrue(probe.received.startswith(b"HTTP/1.1 401 "), probe.received[:200])
        self.assertFalse(any(client.closed.called for client in proxied))

        for c in held + proxied:
            c.transport.abortConnection()
        yield defer.gatherResults([c.closed for c in held + proxied])
