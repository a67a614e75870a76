# -*- test-case-name: tests.test_router_interop -*-
"""
A real slixmpp C{ComponentXMPP} (XEP-0114, in a subprocess) and one of our
XEP-0225 components (TLS, SCRAM, bind) exchange messages through the
router service, over loopback TCP.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish
from twisted.words.xish.xmlstream import STREAM_END_EVENT

from tests.routerhelpers import routerConfig
from xmppcomp.config import SecretRef
from xmppcomp.router.service import RouterService
from xmppcomp.stream import tls
from xmppcomp.stream.bind import BindInitiator
from xmppcomp.stream.initiating import InitiatingFactory, InitiatingPolicy
from xmppcomp.testing import makeCertificateAuthority

from .test_stream_accept import SCRIPT, ComponentProcess

DOMAIN = "example.net"
LEGACY = "legacy.example.net"
LEGACY_SECRET = "the legacy component's shared secret"
MODERN = "modern.example.net"
MODERN_SECRET = "the modern component's SCRAM secret"
CA = makeCertificateAuthority()
TIMEOUT = 8.0


class SlixmppThroughRouterTests(TestCase):
    """
    XEP-0114 and XEP-0225 components share the router's routing table.
    """

    timeout = 60

    def setUp(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        secretFile = os.path.join(directory, "legacy.secret")
        with open(secretFile, "w") as f:
            f.write(LEGACY_SECRET + "\n")
        self.service = RouterService(
            routerConfig(
                directory,
                DOMAIN,
                CA.issue(dnsNames=[DOMAIN]),
                {MODERN: MODERN_SECRET},
                acceptListen=("tcp:0:interface=127.0.0.1",),
                acceptSecrets={LEGACY: SecretRef(file=secretFile)},
            ),
            reactor,
        )
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.xep0225Port, self.xep0114Port = self.service.ports
        self.process = ComponentProcess()
        self.deadline = reactor.callLater(TIMEOUT, self._kill)
        self.addCleanup(self._stopProcess)

    def _kill(self) -> None:
        if self.process.running:
            self.process.transport.signalProcess("KILL")  # type: ignore[union-attr]

    @defer.inlineCallbacks
    def _stopProcess(self) -> Any:
        if self.deadline.active():
            self.deadline.cancel()
        self._kill()
        if self.process.transport is not None:
            yield self.process.ended

    @defer.inlineCallbacks
    def connectModern(self) -> Any:
        binder = BindInitiator([MODERN])
        factory = InitiatingFactory(
            InitiatingPolicy(
                DOMAIN,
                MODERN,
                MODERN_SECRET,
                trust=tls.CATrust([CA.certificate.original.to_cryptography()]),
                features=binder.features(),
            )
        )
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.xep0225Port.getHost().port)
        xs = yield endpoint.connect(factory)
        ended: defer.Deferred[None] = defer.Deferred()
        xs.addObserver(STREAM_END_EVENT, lambda reason: ended.called or ended.callback(None))

        @defer.inlineCallbacks
        def close() -> Any:
            if xs.transport.connected:
                xs.transport.abortConnection()
            yield ended

        self.addCleanup(close)
        yield xs.authenticator.negotiated
        return xs

    @defer.inlineCallbacks
    def test_messagesBothWays(self) -> Any:
        """
        Our XEP-0225 component writes to the slixmpp component's hostname
        and gets its echo back through the router.
        """
        modern = yield self.connectModern()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        env["PYTHONUNBUFFERED"] = "1"
        reactor.spawnProcess(
            self.process,
            sys.executable,
            [
                sys.executable,
                SCRIPT,
                LEGACY,
                LEGACY_SECRET,
                "127.0.0.1",
                str(self.xep0114Port.getHost().port),
                "--lifetime",
                str(TIMEOUT + 10),
            ],
            env=env,
        )
        yield self.process.waitFor("session_start")
        # Its greeting to user@example.net (the router's own domain) is
        # answered with an error, which it does not echo.
        bounced = yield self.process.waitFor("message")
        self.assertEqual((bounced["type"], bounced["from"]), ("error", "user@example.net"))
        self.assertEqual(self.service.router.table.lookup(LEGACY).kind, "xep0114")

        echoed: defer.Deferred[domish.Element] = defer.Deferred()
        modern.addOnetimeObserver("/message", echoed.callback)
        modern.send(
            "<message from='bot@%s/x' to='%s' type='chat'><body>hi legacy</body></message>"
            % (MODERN, LEGACY)
        )
        echo = yield echoed
        self.assertEqual(
            (echo["from"], echo["to"], str(echo.body)),
            (LEGACY, "bot@%s/x" % (MODERN,), "echo: hi legacy"),
        )
        received = [e for e in self.process.events if e["event"] == "message" and e["type"] != "error"]
        self.assertEqual(received[0]["from"], "bot@%s/x" % (MODERN,))

        modern.send("<message from='%s' to='%s'><body>quit</body></message>" % (MODERN, LEGACY))
        status = yield self.process.ended
        self.assertEqual(status, 0)
