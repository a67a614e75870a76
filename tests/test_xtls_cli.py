# -*- test-case-name: tests.test_xtls_cli -*-
"""
C{xmppcomp-xtls} (L{xmppcomp.xtlsclient}) as a subprocess, against the
router service on loopback TCP with TLS and SCRAM, and a peer component
whose XTLS endpoint echoes what arrives through a tunnel.
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
from wokkel.subprotocols import XMPPHandler

from xmppcomp.component import Component
from xmppcomp.config import RouterConfig
from xmppcomp.router.service import RouterService
from xmppcomp.stream import tls
from xmppcomp.stream.sasl import FileCredentialStore
from xmppcomp.testing import makeCertificateAuthority, writePem
from xmppcomp.xtls import XTLSConfiguration, XTLSHandler

DOMAIN = "example.net"
CLI = "cli.example.net"
PEER = "peer.example.net"
SECRETS = {CLI: "the client's long secret", PEER: "the peer's long secret"}
CA = makeCertificateAuthority()
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


class _Echo(XMPPHandler):  # type: ignore[misc]
    """
    Records the messages that arrive through a tunnel and sends each back
    through it, prefixed with C{echo: }.
    """

    def __init__(self, xtls: XTLSHandler) -> None:
        super().__init__()
        self.xtls = xtls
        self.received: list[str] = []

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver("/message", self.onMessage)

    def onMessage(self, message: domish.Element) -> None:
        if not getattr(message, "xtlsEncrypted", False):
            return
        self.received.append(str(message.body))
        tunnel = next(t for t in self.xtls.tunnels if t.peer.full() == message["from"])
        reply = domish.Element((None, "message"))
        reply.addElement("body", content="echo: " + str(message.body))
        tunnel.send(reply)


class XTLSCommandTests(TestCase):
    """
    C{python -m xmppcomp.xtlsclient} against a router and a peer.
    """

    timeout = 60

    def setUp(self) -> Any:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        certPath, keyPath = writePem(CA.issue(dnsNames=[DOMAIN]), self.directory)
        self.caPath = os.path.join(self.directory, "ca.pem")
        with open(self.caPath, "wb") as f:
            f.write(CA.pem)
        credentials = os.path.join(self.directory, "credentials.json")
        store = FileCredentialStore(credentials)
        for identity, secret in SECRETS.items():
            store.add(identity, secret)
        store.save()
        self.router = RouterService(
            RouterConfig(
                domain=DOMAIN,
                credentials=credentials,
                certificate=certPath,
                key=keyPath,
                listen=("tcp:0:interface=127.0.0.1",),
                authorization={identity: (identity,) for identity in SECRETS},
            ),
            reactor,
        )
        self.router.startService()
        self.addCleanup(self.router.stopService)
        self.port = self.router.ports[0].getHost().port

    def startPeer(self, xtls: bool = True) -> _Echo:
        """
        The peer component, with an XTLS endpoint that accepts tunnels
        (or none, if not C{xtls}).
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
        echo = _Echo(handler)
        echo.setHandlerParent(peer)
        peer.startService()
        self.addCleanup(peer.stopService)
        self.peer = peer
        return echo

    def writeConfig(self, xtls: str | None = None, server: bool = True) -> str:
        """
        The CLI's TOML file; C{xtls} replaces its C{[xtls]} table.
        """
        with open(os.path.join(self.directory, "cli.secret"), "w") as f:
            f.write(SECRETS[CLI])
        certPath, keyPath = writePem(CA.issue(dnsNames=[CLI], client=True), self.directory)
        if xtls is None:
            xtls = f'certificate = "{certPath}"\nkey = "{keyPath}"\ntrust = "{self.caPath}"\n'
        component = (
            f'server = "tcp:host=127.0.0.1:port={self.port}"\nserver_domain = "{DOMAIN}"\n'
            f'hostnames = ["{CLI}"]\nsecret = {{ file = "cli.secret" }}\n\n'
            f'[component.trust]\nca_file = "{self.caPath}"\n'
            if server
            else ""
        )
        path = os.path.join(self.directory, "cli.toml")
        with open(path, "w") as f:
            f.write(f"[component]\n{component}\n[xtls]\n{xtls}")
        return path

    def command(self, config: str, stdin: bytes, *args: str) -> defer.Deferred[int]:
        self.process = _Run(stdin)
        env = dict(os.environ, PYTHONPATH=ROOT)
        reactor.spawnProcess(
            self.process,
            sys.executable,
            [sys.executable, "-m", "xmppcomp.xtlsclient", "--config", config, "--timeout", "10", *args],
            env=env,
            path=self.directory,
        )
        return self.process.ended

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
