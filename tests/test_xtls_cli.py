# -*- test-case-name: tests.test_xtls_cli -*-
"""
C{xmppcomp-xtls} (L{xmppcomp.xtlsclient}) as a subprocess, against the
router service on loopback TCP (XEP-0225 with TLS and SCRAM, or XEP-0114),
and a peer component whose XTLS endpoint echoes what arrives through a
tunnel; and over XEP-0114 against a private Prosody (L{tests.prosody}),
with its test user as the peer.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish
from wokkel.subprotocols import StreamManager, XMPPHandler

from tests.routerhelpers import routerConfig
from xmppcomp.component import Component
from xmppcomp.config import SecretRef
from xmppcomp.router.service import RouterService
from xmppcomp.stream import tls
from xmppcomp.testing import makeCertificateAuthority, writePem
from xmppcomp.xtls import XTLSConfiguration, XTLSHandler

from .prosody import clientFactory
from .test_prosody import ProsodyMixin

DOMAIN = "example.net"
CLI = "cli.example.net"
PEER = "peer.example.net"
SECRETS = {CLI: "the client's long secret", PEER: "the peer's long secret"}
CA = makeCertificateAuthority()
#: Seconds the command may run in a test; it is then killed.
COMMAND_TIMEOUT = 40.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Run(ProcessProtocol):
    """
    A subprocess given C{stdin}, its output gathered until it ends.
    """

    def __init__(self, stdin: bytes) -> None:
        self.stdin = stdin
        self.out = b""
        self.err = b""
        self.ended: defer.Deferred[int] = defer.Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.stdin)
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(reason.value.exitCode)

    def kill(self) -> defer.Deferred[object]:
        """
        Kill the process if it still runs; fires once it ended.
        """
        if not self.ended.called:
            assert self.transport is not None
            self.transport.signalProcess("KILL")
        return self.ended.addErrback(lambda failure: None)


class _Echo(XMPPHandler):  # type: ignore[misc]
    """
    Records the messages that arrive through a tunnel and sends each back
    through it, prefixed with C{echo: }; or closes the tunnel.

    @ivar close: C{None} to echo every message; C{"at once"} to close the
        tunnel on the first message, without an echo; C{"after echo"} to
        echo the first message and close once the echo is acknowledged.
    """

    def __init__(self, xtls: XTLSHandler, close: str | None = None) -> None:
        super().__init__()
        self.xtls = xtls
        self.close = close
        self.received: list[str] = []

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver("/message", self.onMessage)

    def onMessage(self, message: domish.Element) -> None:
        if not getattr(message, "xtlsEncrypted", False):
            return
        self.received.append(str(message.body))
        tunnel = next(t for t in self.xtls.tunnels if t.peer.full() == message["from"])
        if self.close == "at once":
            tunnel.close()
            return
        reply = domish.Element((None, "message"))
        reply.addElement("body", content="echo: " + str(message.body))
        tunnel.send(reply)
        if self.close == "after echo":
            tunnel.whenDrained().addCallback(lambda _: tunnel.close())


class _CommandMixin:
    """
    Writes the CLI's TOML file in C{self.directory} and runs the CLI.
    """

    directory: str
    caPath: str

    def writeFile(self, component: str, xtls: str | None = None, hostname: str = CLI) -> str:
        """
        The CLI's TOML file: C{component} is the body of its
        C{[component]} table; C{xtls} replaces its C{[xtls]} table
        (default: a certificate for C{hostname} from L{CA}).
        """
        if xtls is None:
            certPath, keyPath = writePem(CA.issue(dnsNames=[hostname], client=True), self.directory)
            xtls = f'certificate = "{certPath}"\nkey = "{keyPath}"\ntrust = "{self.caPath}"\n'
        path = os.path.join(self.directory, "cli.toml")
        with open(path, "w") as f:
            f.write(f"[component]\n{component}\n[xtls]\n{xtls}")
        return path

    def writeSecret(self, secret: str) -> None:
        """
        The component's secret, in C{cli.secret}.
        """
        with open(os.path.join(self.directory, "cli.secret"), "w") as f:
            f.write(secret)

    def command(self, config: str, stdin: bytes, *args: str) -> defer.Deferred[int]:
        """
        Run the CLI with C{args}, C{stdin} and C{--timeout 10}: fires with
        its status, or fails after L{COMMAND_TIMEOUT} seconds (it is then
        killed).
        """
        self.process = _Run(stdin)
        env = dict(os.environ, PYTHONPATH=ROOT)
        reactor.spawnProcess(
            self.process,
            sys.executable,
            [sys.executable, "-m", "xmppcomp.xtlsclient", "--config", config, "--timeout", "10", *args],
            env=env,
            path=self.directory,
        )
        self.addCleanup(self.process.kill)
        ended: defer.Deferred[int] = defer.Deferred()
        self.process.ended.chainDeferred(ended)
        return ended.addTimeout(COMMAND_TIMEOUT, reactor)


class XTLSCommandTests(_CommandMixin, TestCase):
    """
    C{python -m xmppcomp.xtlsclient} against a router and a peer.
    """

    timeout = 60

    def setUp(self) -> Any:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.caPath = os.path.join(self.directory, "ca.pem")
        with open(self.caPath, "wb") as f:
            f.write(CA.pem)
        acceptSecret = os.path.join(self.directory, "accept.secret")
        with open(acceptSecret, "w") as f:
            f.write(SECRETS[CLI])
        self.router = RouterService(
            routerConfig(
                self.directory,
                DOMAIN,
                CA.issue(dnsNames=[DOMAIN]),
                SECRETS,
                authorization={identity: (identity,) for identity in SECRETS},
                acceptListen=("tcp:0:interface=127.0.0.1",),
                acceptSecrets={CLI: SecretRef(file=acceptSecret)},
            ),
            reactor,
        )
        self.router.startService()
        self.addCleanup(self.router.stopService)
        self.port, self.acceptPort = (port.getHost().port for port in self.router.ports)

    def startPeer(self, xtls: bool = True, close: str | None = None) -> _Echo:
        """
        The peer component, with an XTLS endpoint that accepts tunnels
        (or none, if not C{xtls}), and an L{_Echo} closing as C{close}
        says.
        """
        peer = Component(
            f"tcp:host=127.0.0.1:port={self.port}",
            DOMAIN,
            [PEER],
            secret=SECRETS[PEER],
            trust=tls.CATrust([CA.certificate.original.to_cryptography()]),
            reactor=reactor,
            retryPolicy=lambda attempt: 0.05,
        )
        handler = XTLSHandler(
            XTLSConfiguration(
                certificate=CA.issue(dnsNames=[PEER], client=True) if xtls else None,
                trust=[CA.certificate] if xtls else [],
            ),
            clock=reactor,
        )
        handler.setHandlerParent(peer)
        echo = _Echo(handler, close)
        echo.setHandlerParent(peer)
        peer.startService()
        self.addCleanup(peer.stopService)
        self.peer = peer
        return echo

    def writeConfig(self, xtls: str | None = None, server: bool = True, protocol: str = "xep0225") -> str:
        """
        The CLI's TOML file, connecting with C{protocol} (to the router's
        XEP-0225 or XEP-0114 port); C{xtls} replaces its C{[xtls]} table.
        """
        self.writeSecret(SECRETS[CLI])
        port = self.acceptPort if protocol == "xep0114" else self.port
        component = (
            f'server = "tcp:host=127.0.0.1:port={port}"\nserver_domain = "{DOMAIN}"\n'
            f'protocol = "{protocol}"\nhostnames = ["{CLI}"]\nsecret = {{ file = "cli.secret" }}\n'
            if server
            else ""
        )
        if server and protocol == "xep0225":
            component += f'\n[component.trust]\nca_file = "{self.caPath}"\n'
        return self.writeFile(component, xtls)

    @defer.inlineCallbacks
    def test_sendAndEcho(self) -> Any:
        """
        Each line of standard input reaches the peer through the tunnel;
        the echoes are printed; at the end of input the tunnel closes and
        the command exits 0.
        """
        echo = self.startPeer()
        yield self.waitPeer()
        status = yield self.command(self.writeConfig(), b"hello\nsecond line\n", "--to", PEER, "--expect", "2")
        self.assertEqual((status, self.process.err), (0, b""))
        self.assertEqual(echo.received, ["hello", "second line"])
        self.assertEqual(self.process.out, b"echo: hello\necho: second line\n")

    @defer.inlineCallbacks
    def test_xep0114SendAndEcho(self) -> Any:
        """
        With C{protocol = "xep0114"}, the command connects to the router's
        XEP-0114 port with the handshake, and the tunnel to the XEP-0225
        peer carries the lines and their echoes as over XEP-0225.
        """
        echo = self.startPeer()
        yield self.waitPeer()
        config = self.writeConfig(protocol="xep0114")
        status = yield self.command(config, b"hello\nsecond line\n", "--to", PEER, "--expect", "2")
        self.assertEqual((status, self.process.err), (0, b""))
        self.assertEqual(echo.received, ["hello", "second line"])
        self.assertEqual(self.process.out, b"echo: hello\necho: second line\n")

    @defer.inlineCallbacks
    def test_peerClosesBeforeEndOfInput(self) -> Any:
        """
        The peer closes the tunnel on the first line, while standard input
        has many more (more than the window of data IQs holds): one line
        on standard error, status 1, and the command ends.
        """
        echo = self.startPeer(close="at once")
        yield self.waitPeer()
        stdin = b"".join(b"line %d %s\n" % (i, b"x" * 100) for i in range(10000))
        status = yield self.command(self.writeConfig(), stdin, "--to", PEER)
        self.assertEqual(status, 1)
        self.assertEqual(
            self.process.err,
            b"xmppcomp-xtls: tunnel to peer.example.net: closed by the peer before all of standard input "
            b"was sent and acknowledged\n",
        )
        self.assertEqual((self.process.out, echo.received[:1]), (b"", ["line 0 " + "x" * 100]))

    @defer.inlineCallbacks
    def test_peerClosesBeforeExpected(self) -> Any:
        """
        The peer echoes one line and closes the tunnel while the command
        waits for C{--expect 2} stanzas: the echo is printed, then one
        line on standard error, status 1.
        """
        self.startPeer(close="after echo")
        yield self.waitPeer()
        status = yield self.command(self.writeConfig(), b"hello\n", "--to", PEER, "--expect", "2")
        self.assertEqual(status, 1)
        self.assertEqual(
            self.process.err,
            b"xmppcomp-xtls: tunnel to peer.example.net: closed by the peer after 1 of the 2 stanzas expected\n",
        )
        self.assertEqual(self.process.out, b"echo: hello\n")

    @defer.inlineCallbacks
    def test_peerClosesWhenDone(self) -> Any:
        """
        A peer that closes the tunnel once it echoed all that was expected
        does not make the command fail.
        """
        self.startPeer(close="after echo")
        yield self.waitPeer()
        status = yield self.command(self.writeConfig(), b"hello\n", "--to", PEER, "--expect", "1")
        self.assertEqual((status, self.process.err, self.process.out), (0, b"", b"echo: hello\n"))

    @defer.inlineCallbacks
    def test_refused(self) -> Any:
        """
        A peer without an XTLS endpoint refuses the tunnel: one line on
        standard error, status 1.
        """
        echo = self.startPeer(xtls=False)
        yield self.waitPeer()
        status = yield self.command(self.writeConfig(), b"hello\n", "--to", PEER)
        self.assertEqual(status, 1)
        self.assertEqual(
            self.process.err, b"xmppcomp-xtls: tunnel to peer.example.net refused: service-unavailable\n"
        )
        self.assertEqual((self.process.out, echo.received), (b"", []))

    @defer.inlineCallbacks
    def test_wrongCertificate(self) -> Any:
        """
        Our certificate names another JID: the peer refuses it.
        """
        self.startPeer()
        yield self.waitPeer()
        wrongCert, wrongKey = writePem(CA.issue(dnsNames=["mallory.example.net"], client=True), self.directory)
        config = self.writeConfig(f'certificate = "{wrongCert}"\nkey = "{wrongKey}"\ntrust = "{self.caPath}"\n')
        status = yield self.command(config, b"hello\n", "--to", PEER)
        self.assertEqual(status, 1)
        self.assertTrue(
            self.process.err.startswith(
                b"xmppcomp-xtls: tunnel to peer.example.net refused: not-acceptable (certificate of "
                b"cli.example.net: "
            ),
            self.process.err,
        )
        self.assertEqual(self.process.err.count(b"\n"), 1)

    @defer.inlineCallbacks
    def test_noXTLSCertificate(self) -> Any:
        """
        Without C{[xtls] certificate}: one line, status 1, before
        connecting.
        """
        status = yield self.command(self.writeConfig(""), b"", "--to", PEER)
        self.assertEqual(status, 1)
        self.assertEqual(
            self.process.err,
            b"xmppcomp-xtls: %s: [xtls] certificate and trust are missing: a tunnel needs our "
            b"certificate and the authorities of the peer's\n" % (os.path.join(self.directory, "cli.toml").encode(),),
        )

    @defer.inlineCallbacks
    def test_noServer(self) -> Any:
        """
        Without C{component.server}: one line, status 1.
        """
        status = yield self.command(self.writeConfig(server=False), b"", "--to", PEER)
        self.assertEqual(status, 1)
        self.assertIn(b"component.server is missing", self.process.err)
        self.assertEqual(self.process.err.count(b"\n"), 1)

    @defer.inlineCallbacks
    def test_configError(self) -> Any:
        """
        A configuration error is printed as the plugins print it: one line.
        """
        status = yield self.command(self.writeConfig('trust = "ca.pem"\n'), b"", "--to", PEER)
        self.assertEqual(status, 1)
        self.assertTrue(self.process.err.startswith(b"xmppcomp-xtls: "), self.process.err)
        self.assertIn(b"xtls.trust", self.process.err)
        self.assertEqual(self.process.err.count(b"\n"), 1)

    @defer.inlineCallbacks
    def test_cannotConnect(self) -> Any:
        """
        Nothing listens at the server's address: one line after the
        timeout, status 1.
        """
        config = self.writeConfig()
        yield self.router.stopService()
        status = yield self.command(config, b"", "--to", PEER, "--timeout", "0.5")
        self.assertEqual(status, 1)
        self.assertTrue(self.process.err.startswith(b"xmppcomp-xtls: cannot connect to tcp:host=127.0.0.1"),
                        self.process.err)
        self.assertEqual(self.process.err.count(b"\n"), 1)

    def waitPeer(self) -> defer.Deferred[None]:
        """
        Fires once the peer is bound.
        """
        return self.peer.whenReady()


class XTLSCommandProsodyTests(_CommandMixin, ProsodyMixin, TestCase):
    """
    C{python -m xmppcomp.xtlsclient} with C{protocol = "xep0114"} against a
    private Prosody (L{tests.prosody}; failing, not skipped, without it):
    the command is Prosody's component, the peer its test user, whose
    client has an XTLS endpoint.
    """

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield super().setUp()
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.caPath = os.path.join(self.directory, "ca.pem")
        with open(self.caPath, "wb") as f:
            f.write(CA.pem)

    @defer.inlineCallbacks
    def test_sendAndEcho(self) -> Any:
        """
        The command connects to Prosody's component port with the
        handshake and opens a tunnel to the user's full JID; the user's
        echoes come back through it; status 0.
        """
        factory = clientFactory(self.server)
        user = StreamManager(factory)
        handler = XTLSHandler(
            XTLSConfiguration(
                certificate=CA.issue(xmppAddrs=[self.server.userJID], client=True), trust=[CA.certificate]
            ),
            clock=reactor,
        )
        handler.setHandlerParent(user)
        echo = _Echo(handler)
        echo.setHandlerParent(user)
        xs = yield self.client(factory)
        self.writeSecret(self.server.componentSecret)
        config = self.writeFile(
            f'server = "tcp:host={self.server.host}:port={self.server.componentPort}"\n'
            f'server_domain = "{self.server.domain}"\nprotocol = "xep0114"\n'
            f'hostnames = ["{self.server.componentName}"]\nsecret = {{ file = "cli.secret" }}\n',
            hostname=self.server.componentName,
        )
        peer = xs.authenticator.jid.full()
        status = yield self.wait(
            self.command(config, b"hello\nsecond line\n", "--to", peer, "--expect", "2"), "the command's end"
        )
        self.assertEqual((status, self.process.err), (0, b""))
        self.assertEqual(echo.received, ["hello", "second line"])
        self.assertEqual(self.process.out, b"echo: hello\necho: second line\n")
