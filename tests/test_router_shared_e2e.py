# -*- test-case-name: tests.test_router_shared_e2e -*-
"""
Shared names end to end: the router service on real loopback TCP, with
real TLS (certificates made here) and SCRAM for XEP-0225, the handshake
for XEP-0114. Two sessions of one identity bind one name (the
C{shared_names} opt-in); a third component's users write to it.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber.error import exceptionFromStanza
from twisted.words.xish import domish
from twisted.words.xish.xmlstream import STREAM_END_EVENT

from xmppcomp.config import SecretRef
from xmppcomp.router.service import RouterService
from xmppcomp.stream import tls
from xmppcomp.stream.accept import AcceptInitiatingPolicy, negotiateAccept
from xmppcomp.stream.bind import BindInitiator
from xmppcomp.stream.initiating import InitiatingFactory, InitiatingPolicy

from .test_router_e2e import AUTHORIZATION, CA, DOMAIN, SECRETS, startRouter

#: The shared XEP-0225 name, which alpha's sessions bind.
BALANCED = "balanced.alpha.example.net"
#: The shared XEP-0114 name.
LEGACY = "legacy.example.net"
LEGACY_SECRET = "the legacy component's shared secret"
#: The users' component.
USERS = "beta.example.net"


class Inbox:
    """
    What one component received (messages and IQs), with a way to wait
    for a condition on what all inboxes hold.
    """

    def __init__(self, xs: Any) -> None:
        self.xs = xs
        self.stanzas: list[domish.Element] = []
        self.watchers: list[Callable[[], None]] = []
        self.ended: defer.Deferred[None] = defer.Deferred()
        xs.addObserver("/message", self._got)
        xs.addObserver("/iq", self._got)
        xs.addObserver(STREAM_END_EVENT, lambda reason: self.ended.called or self.ended.callback(None))

    def _got(self, stanza: domish.Element) -> None:
        self.stanzas.append(stanza)
        for watcher in list(self.watchers):
            watcher()

    def of(self, name: str, kind: str | None = None) -> list[domish.Element]:
        return [s for s in self.stanzas if s.name == name and (kind is None or s.getAttribute("type") == kind)]

    def clear(self) -> None:
        del self.stanzas[:]


def until(inboxes: list[Inbox], condition: Callable[[], bool]) -> defer.Deferred[None]:
    """
    A L{Deferred} that fires once C{condition()} holds, checked after
    each stanza any of C{inboxes} receives.
    """
    d: defer.Deferred[None] = defer.Deferred()

    def check() -> None:
        if not d.called and condition():
            for inbox in inboxes:
                inbox.watchers.remove(check)
            d.callback(None)

    for inbox in inboxes:
        inbox.watchers.append(check)
    check()
    return d


class SharedNameEndToEndMixin:
    """
    Two sessions share L{name}; the users' component writes to it.
    """

    name: str
    assertEqual: Any
    assertTrue: Any
    assertIn: Any
    mktemp: Any
    addCleanup: Any

    def setUp(self) -> Any:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        secretFile = os.path.join(directory, "legacy.secret")
        with open(secretFile, "w") as f:
            f.write(LEGACY_SECRET + "\n")
        self.service: RouterService = startRouter(
            self,
            directory,
            authorization=AUTHORIZATION,
            sharedNames=(BALANCED, LEGACY),
            acceptListen=("tcp:0:interface=127.0.0.1",),
            acceptSecrets={LEGACY: SecretRef(file=secretFile)},
        )
        self.xep0225Port, self.xep0114Port = self.service.ports
        self.inboxes: list[Inbox] = []
        self.addCleanup(self.closeAll)
        return self.connectAll()

    @defer.inlineCallbacks
    def connectAll(self) -> Any:
        self.users = yield self.connect0225(USERS, USERS)
        self.shared = [(yield self.connectShared()), (yield self.connectShared())]

    def connectShared(self) -> defer.Deferred[Inbox]:
        raise NotImplementedError()

    @defer.inlineCallbacks
    def closeAll(self) -> Any:
        for inbox in self.inboxes:
            if inbox.xs.transport is not None and inbox.xs.transport.connected:
                inbox.xs.transport.abortConnection()
        yield defer.gatherResults([inbox.ended for inbox in self.inboxes])

    @defer.inlineCallbacks
    def connect0225(self, identity: str, *hostnames: str) -> Any:
        binder = BindInitiator(hostnames)
        factory = InitiatingFactory(
            InitiatingPolicy(
                DOMAIN,
                identity,
                SECRETS[identity],
                trust=tls.CATrust([CA.certificate.original.to_cryptography()]),
                features=binder.features(),
            )
        )
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.xep0225Port.getHost().port)
        xs = yield endpoint.connect(factory)
        inbox = Inbox(xs)
        self.inboxes.append(inbox)
        result = yield xs.authenticator.negotiated
        self.assertTrue(result.mechanism.startswith("SCRAM-"))
        self.assertEqual(binder.bound, list(hostnames))
        return inbox

    @defer.inlineCallbacks
    def connect0114(self, hostname: str) -> Any:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.xep0114Port.getHost().port)
        xs, _ = yield negotiateAccept(endpoint, AcceptInitiatingPolicy(hostname, LEGACY_SECRET))
        inbox = Inbox(xs)
        self.inboxes.append(inbox)
        return inbox

    @defer.inlineCallbacks
    def sendMessages(self, count: int) -> Any:
        """
        The users send C{count} messages to the shared name, from 10 bare
        JIDs with several resources each.

        @return: which shared sessions (by index) each bare JID reached.
        """
        for inbox in self.shared:
            inbox.clear()
        for i in range(count):
            self.users.xs.send(
                "<message from='user%d@%s/r%d' to='%s'><body>m%d</body></message>"
                % (i % 10, USERS, i % 3, self.name, i)
            )
        yield until(self.shared, lambda: sum(len(inbox.of("message")) for inbox in self.shared) >= count)
        reached: dict[str, set[int]] = {}
        for index, inbox in enumerate(self.shared):
            for message in inbox.of("message"):
                reached.setdefault(message["from"].split("/")[0], set()).add(index)
        self.assertEqual(sum(len(inbox.of("message")) for inbox in self.shared), count)
        return reached

    @defer.inlineCallbacks
    def test_sharedName(self) -> Any:
        """
        100 messages from 10 bare JIDs: each bare JID's messages land on
        one session and both sessions get some. An IQ each shared session
        sends gets its result on that session. When one session
        disconnects, the IQ requests it held are answered with
        C{recipient-unavailable} and the other session gets every message.
        """
        metrics = self.service.metrics
        self.assertEqual(metrics.value("xmppcomp_router_name_sessions", {"hostname": self.name}), 2)

        reached = yield self.sendMessages(100)
        self.assertEqual(len(reached), 10)
        for bare, indexes in reached.items():
            self.assertEqual(len(indexes), 1, bare)
        self.assertEqual(set().union(*reached.values()), {0, 1})

        # IQ affinity: the users answer every request as it comes.
        def answer(request: domish.Element) -> None:
            if request.getAttribute("type") == "get":
                self.users.xs.send(
                    "<iq type='result' from='%s' to='%s' id='%s'/>" % (request["to"], request["from"], request["id"])
                )

        self.users.xs.addObserver("/iq[@type='get']", answer)
        for index, inbox in enumerate(self.shared):
            inbox.clear()
            for j in range(10):
                inbox.xs.send(
                    "<iq type='get' from='%s' to='user%d@%s/r' id='q%d-%d'><ping xmlns='urn:xmpp:ping'/></iq>"
                    % (self.name, j, USERS, index, j)
                )
        yield until(self.shared, lambda: all(len(inbox.of("iq", "result")) == 10 for inbox in self.shared))
        for index, inbox in enumerate(self.shared):
            self.assertEqual(sorted(r["id"] for r in inbox.of("iq")), sorted("q%d-%d" % (index, j) for j in range(10)))
        self.users.xs.removeObserver("/iq[@type='get']", answer)

        # In-flight requests to a session that leaves.
        for inbox in self.shared:
            inbox.clear()
        self.users.clear()
        for j in range(10):
            self.users.xs.send(
                "<iq type='get' from='user%d@%s/r' to='%s' id='u%d'><query xmlns='urn:example'/></iq>"
                % (j, USERS, self.name, j)
            )
        yield until(self.shared, lambda: sum(len(inbox.of("iq", "get")) for inbox in self.shared) == 10)
        held = [sorted(r["id"] for r in inbox.of("iq", "get")) for inbox in self.shared]
        self.assertTrue(held[0] and held[1], held)
        leaving, staying = self.shared
        leaving.xs.transport.loseConnection()
        yield leaving.ended
        yield until([self.users], lambda: len(self.users.of("iq", "error")) == len(held[0]))
        errors = self.users.of("iq", "error")
        self.assertEqual(sorted(e["id"] for e in errors), held[0])
        for error in errors:
            self.assertEqual(
                (exceptionFromStanza(error).condition, exceptionFromStanza(error).type),
                ("recipient-unavailable", "wait"),
            )

        # The other session now gets everything.
        self.shared = [staying]
        after = yield self.sendMessages(100)
        self.assertEqual(set(after), set(reached))
        self.assertEqual(set().union(*after.values()), {0})
        self.assertEqual(metrics.value("xmppcomp_router_name_sessions", {"hostname": self.name}), 1)


class XEP0225SharedNameEndToEndTests(SharedNameEndToEndMixin, TestCase):
    """
    Two XEP-0225 sessions of one SASL identity, over TLS, share a name.
    """

    timeout = 60
    name = BALANCED

    def connectShared(self) -> defer.Deferred[Inbox]:
        return self.connect0225("alpha.example.net", BALANCED)


class XEP0114SharedNameEndToEndTests(SharedNameEndToEndMixin, TestCase):
    """
    Two XEP-0114 sessions of one hostname (the same secret) share it.
    """

    timeout = 60
    name = LEGACY

    def connectShared(self) -> defer.Deferred[Inbox]:
        return self.connect0114(LEGACY)
