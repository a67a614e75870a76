# -*- test-case-name: tests.test_router_shared -*-
"""
Shared names in the router (the C{shared_names} opt-in): several sessions
of one identity bind one name and share its stanzas. Components negotiate
with a real L{Router<xmppcomp.router.service.Router>} in memory
(L{xmppcomp.testing.MemoryRouter}: pretend TLS, real SASL, bind and
XEP-0114 handshake), over XEP-0225 and over XEP-0114.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.error import StanzaError, StreamError, exceptionFromStanza
from twisted.words.xish import domish
from twisted.words.xish.xmlstream import STREAM_END_EVENT, STREAM_ERROR_EVENT

from xmppcomp.authz import HostnamePatterns
from xmppcomp.ns import NS_DISCO_INFO, NS_DISCO_ITEMS
from xmppcomp.router.service import RouterSession
from xmppcomp.stream.accept import AcceptInitiatingFactory, AcceptInitiatingPolicy
from xmppcomp.stream.bind import BindInitiator, bind
from xmppcomp.stream.initiating import InitiatingFactory, InitiatingPolicy
from xmppcomp.testing import MemoryRouter, PretendTLS

#: The identity whose sessions share BALANCED, and the name.
OWNER = "comp.example.net"
BALANCED = "balanced.example.net"
#: Another identity allowed to bind BALANCED (and LEGACY).
RIVAL = "rival.example.net"
#: The XEP-0114 name whose sessions share it.
LEGACY = "legacy.example.net"
#: The third party: its users write to the shared names.
USERS = "users.example.net"
SHARED = HostnamePatterns.parse([BALANCED, LEGACY])


class Peer:
    """
    One connected component: its stream, and what it received.
    """

    def __init__(self, xs: Any) -> None:
        self.xs = xs
        self.received: list[domish.Element] = []
        self.streamErrors: list[str] = []
        self.ended = False
        xs.addObserver("/message", self.received.append)
        xs.addObserver("/iq", self.received.append)
        xs.addObserver(STREAM_ERROR_EVENT, self._streamError)
        xs.addObserver(STREAM_END_EVENT, self._ended)

    def _streamError(self, failure: Any) -> None:
        if isinstance(failure.value, StreamError):
            self.streamErrors.append(failure.value.condition)

    def _ended(self, reason: object) -> None:
        self.ended = True

    def send(self, xml: str) -> None:
        self.xs.send(xml)

    def take(self, kind: str | None = None) -> list[domish.Element]:
        """
        What it received (of IQ C{type} C{kind}, or everything), taken
        away.
        """
        taken = [s for s in self.received if kind is None or s.getAttribute("type") == kind]
        # In place: the observers append to this list.
        self.received[:] = [s for s in self.received if s not in taken]
        return taken


def condition(stanza: domish.Element) -> str:
    return exceptionFromStanza(stanza).condition


def message(sender: str, recipient: str, body: str) -> str:
    return "<message from='%s' to='%s'><body>%s</body></message>" % (sender, recipient, body)


def iq(kind: str, sender: str, recipient: str, iqId: str) -> str:
    payload = "<query xmlns='urn:example'/>" if kind in ("get", "set") else ""
    return "<iq type='%s' from='%s' to='%s' id='%s'>%s</iq>" % (kind, sender, recipient, iqId, payload)


def reply(request: domish.Element, kind: str = "result") -> str:
    return iq(kind, request["to"], request["from"], request["id"])


class SharedNameMixin:
    """
    The behaviour of a shared name, whichever protocol its sessions speak:
    L{name} is the shared name, L{connectShared} connects one more session
    of its identity.
    """

    name: str
    router: MemoryRouter
    secrets: dict[str, str]

    # SynchronousTestCase's, for mypy.
    assertEqual: Any
    assertTrue: Any
    assertIn: Any
    successResultOf: Any
    failureResultOf: Any

    def makeRouter(self, sharedNames: Any = SHARED.matches) -> MemoryRouter:
        router = MemoryRouter(sharedNames=sharedNames)
        self.secrets = {
            OWNER: router.addIdentity(OWNER, hostnames=[BALANCED]),
            RIVAL: router.addIdentity(RIVAL, hostnames=[BALANCED, LEGACY]),
            USERS: router.addIdentity(USERS),
        }
        router.addAcceptName(LEGACY)
        return router

    def setUp(self) -> None:
        self.router = self.makeRouter()
        self.users = self.connect0225(USERS, USERS)
        self.shared = [self.connectShared(), self.connectShared()]

    def connectShared(self) -> Peer:
        raise NotImplementedError()

    def connect0225(self, identity: str, *hostnames: str, router: MemoryRouter | None = None) -> Peer:
        router = router or self.router
        binder = BindInitiator(hostnames)
        factory = InitiatingFactory(
            InitiatingPolicy(
                router.domain,
                identity,
                self.secrets[identity],
                tlsCreator=PretendTLS(),
                features=binder.features(),
            ),
            reactor=router.reactor,
        )
        xs = self.successResultOf(router.endpoint("xep0225").connect(factory))
        peer = Peer(xs)
        router.flush()
        self.successResultOf(xs.authenticator.negotiated)
        return peer

    def connect0114(self, hostname: str, router: MemoryRouter | None = None) -> Peer:
        router = router or self.router
        factory = AcceptInitiatingFactory(
            AcceptInitiatingPolicy(hostname, router.acceptSecrets[hostname]), reactor=router.reactor
        )
        xs = self.successResultOf(router.endpoint("xep0114").connect(factory))
        peer = Peer(xs)
        router.flush()
        return peer

    def sessionOf(self, peer: Peer) -> RouterSession:
        for xs, session in self.router.router.sessions.items():
            if session.names and xs.transport.getPeer() == peer.xs.transport.getHost():
                return session
        raise AssertionError("no session for %r" % (peer,))

    def sendFromUsers(self, count: int, start: int = 0) -> dict[str, set[int]]:
        """
        The users send C{count} messages to the shared name, from 10 bare
        JIDs (with several resources); which shared sessions each bare JID
        reached, by index in L{shared}.
        """
        for i in range(start, start + count):
            sender = "user%d@%s/r%d" % (i % 10, USERS, i % 3)
            self.users.send(message(sender, self.name, "m%d" % (i,)))
        self.router.flush()
        reached: dict[str, set[int]] = {}
        total = 0
        for index, peer in enumerate(self.shared):
            for stanza in peer.take():
                self.assertEqual(stanza.name, "message")
                reached.setdefault(stanza["from"].split("/")[0], set()).add(index)
                total += 1
        self.assertEqual(total, count)
        return reached

    def test_bound(self) -> None:
        """
        Both sessions are bound to the name; the metrics and the router's
        disco#items say so.
        """
        routes = self.router.router.table.routesOf(self.name)
        self.assertEqual(len(routes), 2)
        metrics = self.router.metrics
        self.assertEqual(metrics.value("xmppcomp_router_name_sessions", {"hostname": self.name}), 2)
        self.assertEqual(metrics.value("xmppcomp_router_bound_names"), 2)
        self.users.send(
            "<iq type='get' from='%s' to='%s' id='info'><query xmlns='%s'/></iq>"
            % (USERS, self.router.domain, NS_DISCO_INFO)
        )
        self.users.send(
            "<iq type='get' from='%s' to='%s' id='items'><query xmlns='%s'/></iq>"
            % (USERS, self.router.domain, NS_DISCO_ITEMS)
        )
        self.users.send(
            "<iq type='get' from='%s' to='%s' id='node'><query xmlns='%s' node='shared-names/%s'/></iq>"
            % (USERS, self.router.domain, NS_DISCO_ITEMS, self.name)
        )
        self.router.flush()
        info, items, node = self.users.take("result")
        features = [f["var"] for f in info.query.elements(NS_DISCO_INFO, "feature")]
        self.assertIn(NS_DISCO_ITEMS, features)
        listed = [(i["jid"], i["name"], i["node"]) for i in items.query.elements(NS_DISCO_ITEMS, "item")]
        self.assertEqual(listed, [(self.name, "2 sessions", "shared-names/" + self.name)])
        sessions = [i["name"] for i in node.query.elements(NS_DISCO_ITEMS, "item")]
        kind = self.sessionOf(self.shared[0]).kind
        self.assertEqual(sessions, ["%s session 1 of 2" % (kind,), "%s session 2 of 2" % (kind,)])

    def test_balanced(self) -> None:
        """
        100 messages from 10 bare JIDs: each bare JID's messages all reach
        one session, and both sessions get some.
        """
        reached = self.sendFromUsers(100)
        self.assertEqual(len(reached), 10)
        for bare, indexes in reached.items():
            self.assertEqual(len(indexes), 1, bare)
        self.assertEqual(set().union(*reached.values()), {0, 1})
        # The same again: conversations stay where they are.
        self.assertEqual(self.sendFromUsers(100, 100), reached)

    def test_answerAffinity(self) -> None:
        """
        The answer to an IQ request a shared session sent comes back to
        that session, whoever the answerer is.
        """
        for index, peer in enumerate(self.shared):
            for j in range(10):
                peer.send(iq("get", self.name, "user%d@%s/r" % (j, USERS), "q%d-%d" % (index, j)))
        self.router.flush()
        requests = self.users.take("get")
        self.assertEqual(len(requests), 20)
        for n, request in enumerate(requests):
            self.users.send(reply(request, "result" if n % 4 else "error"))
        self.router.flush()
        for index, peer in enumerate(self.shared):
            answers = sorted(a["id"] for a in peer.take())
            self.assertEqual(answers, sorted("q%d-%d" % (index, j) for j in range(10)))

    def test_leave(self) -> None:
        """
        When a session leaves, the other gets every message, and the
        metrics say one session.
        """
        before = self.sendFromUsers(100)
        self.shared[0].xs.transport.loseConnection()
        self.router.flush()
        self.shared = [self.shared[1]]
        after = self.sendFromUsers(100)
        self.assertEqual(set(after), set(before))
        self.assertEqual(set().union(*after.values()), {0})
        self.assertEqual(
            self.router.metrics.value("xmppcomp_router_name_sessions", {"hostname": self.name}), 1
        )

    def test_inFlightToDeparted(self) -> None:
        """
        IQ requests in flight to a session that leaves are answered with
        C{recipient-unavailable} (type C{wait}) while the name has other
        sessions, and with C{service-unavailable} when the last one leaves.
        """
        for j in range(10):
            self.users.send(iq("get", "user%d@%s/r" % (j, USERS), self.name, "u%d" % (j,)))
        self.router.flush()
        held = [[r["id"] for r in peer.take("get")] for peer in self.shared]
        self.assertTrue(held[0] and held[1], held)
        self.shared[0].xs.transport.loseConnection()
        self.router.flush()
        errors = self.users.take("error")
        self.assertEqual(sorted(e["id"] for e in errors), sorted(held[0]))
        for error in errors:
            self.assertEqual(condition(error), "recipient-unavailable")
            self.assertEqual(exceptionFromStanza(error).type, "wait")
        self.shared[1].xs.transport.loseConnection()
        self.router.flush()
        errors = self.users.take("error")
        self.assertEqual(sorted(e["id"] for e in errors), sorted(held[1]))
        self.assertEqual({condition(e) for e in errors}, {"service-unavailable"})
        self.assertEqual(self.router.router.table.routesOf(self.name), ())
        self.assertEqual(self.router.metrics.value("xmppcomp_router_name_sessions", {"hostname": self.name}), 0)

    def test_answerToDepartedDropped(self) -> None:
        """
        The answer to a request of a session that left reaches no other
        session: nobody there asked.
        """
        self.shared[0].send(iq("get", self.name, "user1@%s" % (USERS,), "gone"))
        self.router.flush()
        (request,) = self.users.take("get")
        self.shared[0].xs.transport.loseConnection()
        self.router.flush()
        self.users.send(reply(request))
        self.router.flush()
        self.assertEqual(self.shared[1].take(), [])
        self.assertEqual(self.users.take(), [])

    def test_noOptIn(self) -> None:
        """
        Without the opt-in, a second session of the same identity for the
        name gets C{conflict}, as before.
        """
        self.router = self.makeRouter(sharedNames=None)
        self.connectShared()
        self.assertSecondRefused()


class XEP0225SharedNameTests(SharedNameMixin, SynchronousTestCase):
    """
    Two XEP-0225 sessions of one SASL identity share a name.
    """

    name = BALANCED

    def connectShared(self) -> Peer:
        return self.connect0225(OWNER, BALANCED)

    def assertSecondRefused(self) -> None:
        peer = self.connect0225(OWNER, OWNER)
        d = bind(peer.xs, BALANCED)
        self.router.flush()
        self.assertEqual(self.failureResultOf(d, StanzaError).value.condition, "conflict")

    def test_otherIdentity(self) -> None:
        """
        A session of another identity, though allowed to bind the name,
        gets C{conflict}.
        """
        rival = self.connect0225(RIVAL, RIVAL)
        d = bind(rival.xs, BALANCED)
        self.router.flush()
        self.assertEqual(self.failureResultOf(d, StanzaError).value.condition, "conflict")
        self.assertEqual(len(self.router.router.table.routesOf(BALANCED)), 2)


class XEP0114SharedNameTests(SharedNameMixin, SynchronousTestCase):
    """
    Two XEP-0114 sessions of one hostname (the same secret) share it.
    """

    name = LEGACY

    def connectShared(self) -> Peer:
        peer = self.connect0114(LEGACY)
        self.assertEqual(peer.streamErrors, [])
        return peer

    def assertSecondRefused(self) -> None:
        peer = self.connect0114(LEGACY)
        self.assertEqual(peer.streamErrors, ["conflict"])

    def test_otherIdentity(self) -> None:
        """
        An XEP-0225 session allowed to bind the XEP-0114 name gets
        C{conflict}: the name's sessions authenticated with its secret, not
        as a SASL identity.
        """
        rival = self.connect0225(RIVAL, RIVAL)
        d = bind(rival.xs, LEGACY)
        self.router.flush()
        self.assertEqual(self.failureResultOf(d, StanzaError).value.condition, "conflict")

    def test_otherKindFirst(self) -> None:
        """
        Once an XEP-0225 session holds the name, an XEP-0114 session for it
        gets C{conflict}.
        """
        self.router = self.makeRouter()
        self.connect0225(RIVAL, LEGACY)
        peer = self.connect0114(LEGACY)
        self.assertEqual(peer.streamErrors, ["conflict"])
