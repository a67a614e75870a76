# -*- test-case-name: tests.test_component_e2e -*-
"""
Components against the router service over real loopback TCP with TLS
and SCRAM: the router is stopped mid-session (listener closed, every
connection dropped) and started again; the components come back with all
their names bound and the stanzas queued meanwhile are delivered. A name
the router refuses leaves the component's other names bound.
"""

from __future__ import annotations

import os
import re
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish
from wokkel.subprotocols import XMPPHandler

from xmppcomp.component import Component
from xmppcomp.stream.bind import BindError
from xmppcomp.config import RouterConfig
from xmppcomp.router.service import RouterService
from xmppcomp.stream import tls
from xmppcomp.stream.sasl import FileCredentialStore
from xmppcomp.testing import makeCertificateAuthority, writePem

DOMAIN = "example.net"
CA = makeCertificateAuthority()
SECRETS = {"alpha.example.net": "alpha's long secret", "beta.example.net": "beta's long secret"}


def chatMessage(sender: str, recipient: str, body: str) -> domish.Element:
    """
    A C{<message/>} from C{sender} to C{recipient} with C{body}.
    """
    message = domish.Element((None, "message"))
    message["from"] = sender
    message["to"] = recipient
    message.addElement("body", content=body)
    return message


class RouterCase(TestCase):
    """
    The router service on loopback TCP, and components connecting to it.
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

    def component(
        self, identity: str, *hostnames: str, retry: float = 0.05, componentClass: Any = Component
    ) -> Any:
        component = componentClass(
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


class RestartTests(RouterCase):
    """
    The router goes away and comes back.
    """

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
            message = chatMessage("room@chat.alpha.example.net", "beta.example.net", "queued %d" % (i,))
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


class WatchedComponent(Component):
    """
    A component that tells, per hostname, when it is bound and when it is
    refused: L{bound} and L{refused} give a L{Deferred} for the next such
    event of a name.

    @ivar refusals: every refusal: C{(hostname, condition, retryIn)}.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waiting: dict[tuple[str, str], list[defer.Deferred[Any]]] = {}
        self.refusals: list[tuple[str, str, float | None]] = []

    def _next(self, event: str, hostname: str) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self._waiting.setdefault((event, hostname), []).append(d)
        return d

    def _fire(self, event: str, hostname: str, value: Any) -> None:
        for d in self._waiting.pop((event, hostname), []):
            d.callback(value)

    def bound(self, hostname: str) -> defer.Deferred[Any]:
        return self._next("bound", hostname)

    def refused(self, hostname: str) -> defer.Deferred[Any]:
        return self._next("refused", hostname)

    def hostnameBound(self, hostname: str) -> None:
        self._fire("bound", hostname, hostname)

    def hostnameRefused(self, error: BindError, retryIn: float | None) -> None:
        self.refusals.append((error.hostname, error.condition, retryIn))
        self._fire("refused", error.hostname, (error.condition, retryIn))


class NameTests(RouterCase):
    """
    Hostnames are independent (issue 16, item 4), against the router
    service over real loopback TCP with TLS and SCRAM.
    """

    @defer.inlineCallbacks
    def watchedAndPeer(self, identity: str, hostnames: tuple[str, ...], peer: str, count: int) -> Any:
        """
        A L{WatchedComponent} of C{identity} for C{hostnames} with an
        L{Inbox} of C{count} messages, and a component of C{peer}, once
        both are ready.

        @return: the watched component, a L{Deferred} of the refusal of
            its last hostname, its inbox and the peer.
        """
        watched = self.component(identity, *hostnames, componentClass=WatchedComponent)
        refused = watched.refused(hostnames[-1])
        inbox = Inbox(count=count)
        inbox.setHandlerParent(watched)
        other = self.component(peer)
        yield defer.gatherResults([watched.whenReady(), other.whenReady()])
        return watched, refused, inbox, other

    @defer.inlineCallbacks
    def test_conflictingNameRetried(self) -> Any:
        """
        A component with names a and b, b bound by another session of the
        same identity: a is bound and routable at once, b is refused with
        C{conflict} and tried again, and bound (on the same connection)
        once the other session goes away.
        """
        holder = self.component("alpha.example.net", "chat.alpha.example.net")
        yield holder.whenReady()
        second, refused, inbox, beta = yield self.watchedAndPeer(
            "alpha.example.net", ("alpha.example.net", "chat.alpha.example.net"), "beta.example.net", count=2
        )
        condition, retryIn = yield refused
        self.assertEqual((condition, retryIn), ("conflict", 0.05))
        table = self.service.router.table
        session = table.lookup("alpha.example.net")
        self.assertIsNotNone(session)
        self.assertIsNot(table.lookup("chat.alpha.example.net"), session)
        self.assertTrue(second.isConnected("alpha.example.net"))
        self.assertFalse(second.isConnected("chat.alpha.example.net"))
        yield beta.sendOrFail(chatMessage("beta.example.net", "alpha.example.net", "to a"))

        bound = second.bound("chat.alpha.example.net")
        yield holder.stopService()
        yield bound
        self.assertIs(table.lookup("chat.alpha.example.net"), session)
        yield beta.sendOrFail(chatMessage("beta.example.net", "room@chat.alpha.example.net", "to b"))
        yield inbox.full
        self.assertEqual([str(m.body) for m in inbox.messages], ["to a", "to b"])
        self.assertEqual(inbox.initialized, 1)

    @defer.inlineCallbacks
    def test_notAllowedKeepsOthers(self) -> Any:
        """
        A name the router does not allow is refused with C{not-allowed}
        and not tried again; the component's other name is bound and
        routable.
        """
        beta, refused, inbox, alpha = yield self.watchedAndPeer(
            "beta.example.net", ("beta.example.net", "gamma.example.net"), "alpha.example.net", count=1
        )
        self.assertEqual((yield refused), ("not-allowed", None))
        self.assertTrue(beta.isConnected("beta.example.net"))
        yield alpha.sendOrFail(chatMessage("alpha.example.net", "beta.example.net", "hi"))
        yield inbox.full
        self.assertEqual(beta.refusals, [("gamma.example.net", "not-allowed", None)])


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


class LateServer(Protocol):
    """
    An XEP-0114 server on real TCP that accepts any handshake and, when the
    component sends its closing tag, sends one more message before its own
    (as a server does with the stanzas already on their way to a stream
    that closes), then closes the connection.

    @ivar streamClosed: fires when the component's closing tag arrived.
    """

    def __init__(self) -> None:
        self.buffer = b""
        self.state = "header"
        self.streamClosed: defer.Deferred[None] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        if self.state == "header" and re.search(rb"<stream:stream[^>]*>", self.buffer):
            self.transport.write(
                b"<stream:stream xmlns='jabber:component:accept' "
                b"xmlns:stream='http://etherx.jabber.org/streams' from='late.example.net' id='late1'>"
            )
            self.state = "handshake"
        if self.state == "handshake" and b"</handshake>" in self.buffer:
            self.transport.write(b"<handshake/>")
            self.state = "open"
        if self.state == "open" and b"</stream:stream>" in self.buffer:
            self.state = "closed"
            self.transport.write(
                b"<message from='peer.example.net' to='late.example.net'><body>late</body></message>"
                b"</stream:stream>"
            )
            self.transport.loseConnection()
            self.streamClosed.callback(None)


class ClosingHandshakeTests(TestCase):
    """
    L{Component.stopService} closes each stream with the closing handshake
    (RFC 6120 section 4.4) over real TCP.
    """

    timeout = 30

    @defer.inlineCallbacks
    def test_stanzaBeforeServerCloses(self) -> Any:
        """
        A stanza the server sends after the component's closing tag and
        before its own still reaches the handlers: the component reads
        until the server closes (a confirmer relays such answers for its
        other instances while it stops).
        """
        server = LateServer()
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            Factory.forProtocol(lambda: server)
        )
        self.addCleanup(port.stopListening)
        component = Component(
            "tcp:host=127.0.0.1:port=%d" % (port.getHost().port,),
            "example.net",
            ["late.example.net"],
            secret="the late secret",
            protocol="xep0114",
            reactor=reactor,
        )
        inbox = Inbox(1)
        inbox.setHandlerParent(component)
        component.startService()
        self.addCleanup(lambda: component.stopService() if component.running else None)
        yield component.whenReady()
        yield component.stopService()
        self.assertTrue(server.streamClosed.called)
        self.assertEqual([str(m.body) for m in inbox.messages], ["late"])
