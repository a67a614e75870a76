# -*- test-case-name: tests.test_component_e2e -*-
"""
Components against the router service over real loopback TCP with TLS
and SCRAM: the router is stopped mid-session (listener closed, every
connection dropped) and started again; the components come back with all
their names bound and the stanzas queued meanwhile are delivered.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish
from wokkel.subprotocols import XMPPHandler

from xmppcomp.component import Component
from xmppcomp.config import RouterConfig
from xmppcomp.router.service import RouterService
from xmppcomp.stream import tls
from xmppcomp.stream.sasl import FileCredentialStore
from xmppcomp.testing import makeCertificateAuthority, writePem

DOMAIN = "example.net"
CA = makeCertificateAuthority()
SECRETS = {"alpha.example.net": "alpha's long secret", "beta.example.net": "beta's long secret"}


class RestartTests(TestCase):
    """
    The router goes away and comes back.
    """

    timeout = 60

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.certPath, self.keyPath = writePem(CA.issue(dnsNames=[DOMAIN]), self.directory)
        self.credentials = os.path.join(self.directory, "credentials.json")
        store = FileCredentialStore(self.credentials)
        for identity, secret in SECRETS.items():
            store.add(identity, secret)
        store.save()
        self.service = self.startRouter("tcp:0:interface=127.0.0.1")
        self.port = self.service.ports[0].getHost().port

    def startRouter(self, listen: str) -> RouterService:
        service = RouterService(
            RouterConfig(
                domain=DOMAIN,
                credentials=self.credentials,
                certificate=self.certPath,
                key=self.keyPath,
                listen=(listen,),
                authorization={identity: (identity, "*." + identity) for identity in SECRETS},
            ),
            reactor,
        )
        service.startService()
        self.addCleanup(lambda: service.stopService() if service.running else None)
        return service

    def component(self, identity: str, *hostnames: str, retry: float = 0.05) -> Component:
        component = Component(
            "tcp:host=127.0.0.1:port=%d" % (self.port,),
            DOMAIN,
            hostnames or [identity],
            secret=SECRETS[identity],
            identity=identity,
            trust=tls.CATrust([CA.certificate.original.to_cryptography()]),
            reactor=reactor,
            retryPolicy=lambda attempt: retry,
        )
        component.startService()
        self.addCleanup(component.stopService)
        return component

    @defer.inlineCallbacks
    def test_restart(self) -> Any:
        """
        Stop the router, queue stanzas, start it again: both components
        reconnect, bind every name again, and the queued stanzas arrive in
        order.
        """
        # beta retries ten times faster than alpha, so that it is back
        # (negotiating takes ~7 ms here) before alpha's queue flushes.
        alpha = self.component("alpha.example.net", "alpha.example.net", "chat.alpha.example.net", retry=0.5)
        beta = self.component("beta.example.net", retry=0.05)
        inbox = Inbox(count=3)
        inbox.setHandlerParent(beta)
        alphaWatch = Inbox(count=0)
        alphaWatch.setHandlerParent(alpha)
        yield defer.gatherResults([alpha.whenReady(), beta.whenReady()])

        yield self.service.stopService()
        yield alphaWatch.lost
        self.assertFalse(alpha.isConnected())
        sent = []
        for i in range(3):
            message = domish.Element((None, "message"))
            message["from"] = "room@chat.alpha.example.net"
            message["to"] = "beta.example.net"
            message.addElement("body", content="queued %d" % (i,))
            sent.append(alpha.sendOrFail(message))

        self.service = self.startRouter("tcp:%d:interface=127.0.0.1" % (self.port,))
        yield defer.gatherResults(sent)
        yield defer.gatherResults([alpha.whenReady(), beta.whenReady()])
        table = self.service.router.table
        self.assertEqual(
            table.lookup("chat.alpha.example.net").names,
            ["alpha.example.net", "chat.alpha.example.net"],
        )
        self.assertIsNotNone(table.lookup("beta.example.net"))
        yield inbox.full
        self.assertEqual([str(m.body) for m in inbox.messages], ["queued 0", "queued 1", "queued 2"])
        self.assertEqual(inbox.initialized, 2)


class Inbox(XMPPHandler):
    """
    Collects messages across reconnections; C{full} fires at C{count},
    C{lost} at the first connection loss.
    """

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count
        self.messages: list[domish.Element] = []
        self.initialized = 0
        self.full: defer.Deferred[None] = defer.Deferred()
        self.lost: defer.Deferred[None] = defer.Deferred()

    def connectionLost(self, reason: Any) -> None:
        if not self.lost.called:
            self.lost.callback(None)

    def connectionInitialized(self) -> None:
        self.initialized += 1
        self.xmlstream.addObserver("/message", self.onMessage)

    def onMessage(self, message: domish.Element) -> None:
        self.messages.append(message)
        if len(self.messages) == self.count:
            self.full.callback(None)
