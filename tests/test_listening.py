# -*- test-case-name: tests.test_listening -*-
"""
Tests for L{xmppcomp.listening}: a listener that cannot listen says where,
which setting gives the address and why (L{ListenError}); the services
that listen raise it; the twistd plugins' trees end the process with its
line instead (L{xmppcomp._process.PluginProcess.listening}). The real
processes are in L{tests.test_plugin_exits}.
"""

from __future__ import annotations

import errno
import io
import os
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from tests.test_httpauth_listener import configuration
from xmppcomp import services
from xmppcomp._process import ListenExit, PluginProcess
from xmppcomp.config import componentConfigFromMapping
from xmppcomp.configvalues import SecretRef
from xmppcomp.embedded import EmbeddedRouter
from xmppcomp.httpauth import HTTPAuthListener
from xmppcomp.listening import ListenError, describeAddress
from xmppcomp.router.config import RouterConfig
from xmppcomp.router.service import RouterService

IN_USE = OSError(errno.EADDRINUSE, "Address already in use")


class ListenErrorTests(SynchronousTestCase):
    """
    L{ListenError} is a L{CannotListenError} whose message is one line.
    """

    def test_message(self) -> None:
        """
        The message names the address, the setting and the reason, in
        lower case.
        """
        error = ListenError(
            "httpauth.listen or --http-listen",
            "tcp:8080:interface=127.0.0.1",
            CannotListenError("127.0.0.1", 8080, IN_USE),
        )
        self.assertEqual(
            str(error),
            "cannot listen on 127.0.0.1:8080 (set by httpauth.listen or --http-listen): address already in use",
        )

    def test_keepsTheError(self) -> None:
        """
        It is a L{CannotListenError} with the address and the socket error
        of the one it replaces, and keeps the setting and the endpoint
        string.
        """
        error = ListenError("listen or --listen", "tcp:5348", CannotListenError("", 5348, IN_USE))
        self.assertIsInstance(error, CannotListenError)
        self.assertEqual((error.interface, error.port, error.socketError), ("", 5348, IN_USE))
        self.assertEqual((error.setting, error.description), ("listen or --listen", "tcp:5348"))

    def test_addresses(self) -> None:
        """
        Every interface is C{0.0.0.0}; IPv6 hosts are bracketed; a UNIX
        socket is its path.
        """
        self.assertEqual(describeAddress("", 5348), "0.0.0.0:5348")
        self.assertEqual(describeAddress("::1", 5348), "[::1]:5348")
        self.assertEqual(describeAddress(None, "/run/x.sock"), "/run/x.sock")

    def test_otherReasons(self) -> None:
        """
        A reason that is not an L{OSError} with a C{strerror} is its text.
        """
        denied = CannotListenError("", 80, OSError(errno.EACCES, "Permission denied"))
        self.assertTrue(str(ListenError("x", "tcp:80", denied)).endswith("(set by x): permission denied"))
        odd = CannotListenError("", 80, ValueError("Strange"))
        self.assertTrue(str(ListenError("x", "tcp:80", odd)).endswith("(set by x): strange"))


@implementer(IListeningPort)
class _Port:
    """
    A listening port that knows whether it was stopped.
    """

    def __init__(self, port: int) -> None:
        self.address = IPv4Address("TCP", "127.0.0.1", port)
        self.stopped = False

    def startListening(self) -> None:
        pass

    def stopListening(self) -> Deferred[None]:
        self.stopped = True
        return succeed(None)

    def getHost(self) -> IPv4Address:
        return self.address


class _BusyReactor(MemoryReactorClock):
    """
    A memory reactor on which some TCP ports are taken.

    @ivar busy: the taken ports.
    @ivar ports: the ports it listens on.
    """

    def __init__(self, *busy: int) -> None:
        super().__init__()
        self.busy = set(busy)
        self.ports: list[_Port] = []

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> _Port:
        if port in self.busy:
            raise CannotListenError(interface, port, IN_USE)
        self.tcpServers.append((port, factory, backlog, interface))
        listening = _Port(port)
        self.ports.append(listening)
        return listening


class ServiceTests(SynchronousTestCase):
    """
    The services that listen raise L{ListenError} naming their setting;
    an application that builds them gets the exception.
    """

    def test_httpauth(self) -> None:
        """
        The HTTP-auth listener of a component's tree names C{[httpauth]
        listen} and C{--http-listen}.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        config = configuration(directory, listen="tcp:8080:interface=127.0.0.1")
        top = services.serviceFromConfig(config, _BusyReactor(8080))
        error = self.assertRaises(ListenError, top.privilegedStartService)
        self.assertEqual(
            str(error),
            "cannot listen on 127.0.0.1:8080 (set by httpauth.listen or --http-listen): address already in use",
        )
        self.assertEqual(error.description, "tcp:8080:interface=127.0.0.1")

    def test_listenerWithoutSetting(self) -> None:
        """
        An L{HTTPAuthListener} that is not told its setting raises the
        endpoint's error as it is.
        """
        listener = HTTPAuthListener(TCP4ServerEndpoint(_BusyReactor(8080), 8080), Factory(), "tcp:8080", "a site")
        error = self.assertRaises(CannotListenError, listener.privilegedStartService)
        self.assertNotIsInstance(error, ListenError)

    def router(self, reactor: _BusyReactor, **keys: Any) -> RouterService:
        config = RouterConfig(domain="example.net", allowPlaintext=True, **keys)
        return RouterService(config, reactor)

    def test_routerListen(self) -> None:
        """
        A router's XEP-0225 listener names C{listen} and C{--listen}; the
        ports opened before it are closed again.
        """
        reactor = _BusyReactor(5349)
        service = self.router(
            reactor, listen=("tcp:5348:interface=127.0.0.1", "tcp:5349:interface=127.0.0.1")
        )
        error = self.assertRaises(ListenError, service.startService)
        self.assertEqual(
            str(error), "cannot listen on 127.0.0.1:5349 (set by listen or --listen): address already in use"
        )
        self.assertEqual(service.ports, [])
        self.assertEqual([port.stopped for port in reactor.ports], [True])
        self.assertFalse(service.running)

    def test_routerAcceptAndMetrics(self) -> None:
        """
        The router's XEP-0114 and metrics listeners name their settings.
        """
        os.environ["XMPPCOMP_TEST_LISTENING"] = "a secret"
        self.addCleanup(os.environ.pop, "XMPPCOMP_TEST_LISTENING")
        keys: dict[str, Any] = {
            "listen": (),
            "acceptListen": ("tcp:5347:interface=127.0.0.1",),
            "acceptSecrets": {"legacy.example.net": SecretRef(env="XMPPCOMP_TEST_LISTENING", what="x")},
        }
        error = self.assertRaises(ListenError, self.router(_BusyReactor(5347), **keys).startService)
        self.assertEqual(error.setting, "accept.listen or --accept-listen")
        keys["metricsListen"] = "tcp:9348:interface=127.0.0.1"
        reactor = _BusyReactor(9348)
        error = self.assertRaises(ListenError, self.router(reactor, **keys).startService)
        self.assertEqual(error.setting, "metrics_listen or --metrics-listen")
        self.assertEqual([port.stopped for port in reactor.ports], [True])

    def test_embedded(self) -> None:
        """
        The embedded router names C{[embedded] port} and
        C{--embedded-port}, and is left without a router service.
        """
        router = EmbeddedRouter(["component.localhost"], port=5348, reactor=_BusyReactor(5348))
        error = self.assertRaises(ListenError, router.startService)
        self.assertEqual(
            str(error),
            "cannot listen on 127.0.0.1:5348 (set by embedded.port or --embedded-port): address already in use",
        )
        self.assertIsNone(router.routerService)
        self.assertEqual(list(router), [])
        self.assertIsNone(router.directory)


class PluginTests(SynchronousTestCase):
    """
    In a twistd plugin's tree (one with a L{PluginProcess}), a listener
    that cannot listen ends the process with its line, on standard error
    and in the log, and status 1.
    """

    def process(self, command: str) -> tuple[PluginProcess, io.StringIO]:
        stderr = io.StringIO()
        process = PluginProcess("info", gcTuning=False, command=command, stderr=stderr)
        process.begin()
        self.addCleanup(process.stop)
        return process, stderr

    def logged(self) -> list[LogEvent]:
        events: list[LogEvent] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        return events

    def test_component(self) -> None:
        """
        C{twistd xmppcomp}'s tree: the HTTP-auth listener, at the
        privileged start.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        config = configuration(directory, listen="tcp:8080:interface=127.0.0.1")
        process, stderr = self.process("twistd xmppcomp")
        top = services.serviceFromConfig(config, _BusyReactor(8080), process=process)
        events = self.logged()
        exit = self.assertRaises(ListenExit, top.privilegedStartService)
        line = (
            "twistd xmppcomp: cannot listen on 127.0.0.1:8080 (set by httpauth.listen or "
            "--http-listen): address already in use"
        )
        self.assertEqual((exit.code, exit.message), (1, line))
        self.assertIsInstance(exit.__cause__, ListenError)
        self.assertEqual(stderr.getvalue(), line + "\n")
        self.assertEqual(
            [(event["log_level"].name, formatEvent(event)) for event in events if "log_level" in event],
            [("critical", line)],
        )

    def test_componentEmbedded(self) -> None:
        """
        C{twistd xmppcomp}'s tree: the embedded router, at the start.
        """
        process, stderr = self.process("twistd xmppcomp")
        config = componentConfigFromMapping(
            {"embedded": {"port": 5348}, "httpauth": {"listen": "tcp:0:interface=127.0.0.1"}},
            "twistd xmppcomp",
            baseDirectory=os.getcwd(),
        )
        top = services.serviceFromConfig(config, _BusyReactor(5348), process=process)
        top.privilegedStartService()
        exit = self.assertRaises(ListenExit, top.startService)
        self.assertEqual(
            stderr.getvalue(),
            "twistd xmppcomp: cannot listen on 127.0.0.1:5348 (set by embedded.port or --embedded-port): "
            "address already in use\n",
        )
        self.assertEqual(exit.code, 1)

    def test_router(self) -> None:
        """
        C{twistd xmppcomp-router}'s service.
        """
        process, stderr = self.process("twistd xmppcomp-router")
        config = RouterConfig(domain="example.net", allowPlaintext=True, listen=("tcp:5348",))
        service = services.routerServiceFromConfig(config, _BusyReactor(5348), process=process)
        exit = self.assertRaises(ListenExit, service.startService)
        self.assertEqual(
            exit.message,
            "twistd xmppcomp-router: cannot listen on 0.0.0.0:5348 (set by listen or --listen): address already in use",
        )
        self.assertEqual(stderr.getvalue(), exit.message + "\n")

    def test_daemon(self) -> None:
        """
        As a daemon, the line is logged and the error goes through to
        twistd (which tells its first process through a pipe that only an
        exception fills in); nothing is written to standard error, which
        a daemon does not have.
        """
        stderr = io.StringIO()
        process = PluginProcess("info", gcTuning=False, command="twistd xmppcomp-router", stderr=stderr, daemon=True)
        process.begin()
        self.addCleanup(process.stop)
        config = RouterConfig(domain="example.net", allowPlaintext=True, listen=("tcp:5348",))
        service = services.routerServiceFromConfig(config, _BusyReactor(5348), process=process)
        events = self.logged()
        error = self.assertRaises(ListenError, service.startService)
        self.assertEqual(
            [formatEvent(event) for event in events if "log_level" in event],
            [f"twistd xmppcomp-router: {error}"],
        )
        self.assertEqual(stderr.getvalue(), "")

    def test_daemonFromOptions(self) -> None:
        """
        L{PluginProcess.fromOptions} learns from twistd's options, the
        parent of the plugin's, whether it runs as a daemon: without
        C{-n}; not with it, nor without twistd.
        """
        options = usage.Options()
        options["log-level"] = "info"
        options["no-gc-tuning"] = True
        self.assertFalse(PluginProcess.fromOptions(options).daemon)
        twistd = usage.Options()
        options.parent = twistd
        twistd["nodaemon"] = True
        self.assertFalse(PluginProcess.fromOptions(options).daemon)
        twistd["nodaemon"] = False
        process = PluginProcess.fromOptions(options, "twistd xmppcomp")
        self.assertEqual((process.daemon, process.command), (True, "twistd xmppcomp"))
