# -*- test-case-name: tests.test_component -*-
"""
Tests for L{xmppcomp.component.Component}: connected in memory to a real
L{Router} (L{xmppcomp.testing.MemoryRouter}, pretend TLS), driven by a
L{MemoryReactorClock}.
"""

from __future__ import annotations

from typing import Any

import attrs

from twisted.internet import defer
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.error import StanzaError, StreamError
from twisted.words.protocols.jabber.xmlstream import TimeoutError
from twisted.words.xish import domish
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler

from xmppcomp.component import Component, ComponentLimits, Link, NotConnected, QueueFull, QueueTimeout, isFatal
from xmppcomp.config import RouterLimits
from xmppcomp.errors import SASLFailure
from xmppcomp.metrics import Metrics
from xmppcomp.stream.bind import BindError, NoHostnameBound
from xmppcomp.testing import MemoryEndpoint, MemoryRouter, PretendTLS

from .test_iqtracker import ID_PATTERN, mismatched
from .test_router_service import SECRETS, STORE, mayBind

DOMAIN = "example.net"

#: The XEP-0114 names of the in-memory router, and their secret.
ACCEPT_SECRETS = {"legacy.example.net": "legacy secret, long enough"}


class Network(MemoryRouter):
    """
    The in-memory router of these tests: L{DOMAIN}, the identities of
    L{tests.test_router_service} (its credentials and C{mayBind}), and the
    XEP-0114 names of L{ACCEPT_SECRETS}; it can go down and come back
    (C{crash}, C{start}).
    """

    def __init__(self, clock: MemoryReactorClock, **limits: Any) -> None:
        super().__init__(
            DOMAIN,
            clock,
            limits=RouterLimits(**limits),
            mayBind=mayBind,
            credentials=STORE,
        )
        self.acceptSecrets.update(ACCEPT_SECRETS)


class NamedComponent(Component):
    """
    A component that records what it is told of each hostname:
    C{("bound", name)}, C{("refused", name, condition, retryIn)},
    C{("lost", name)}.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events: list[tuple[Any, ...]] = []

    def hostnameBound(self, hostname: str) -> None:
        self.events.append(("bound", hostname))

    def hostnameRefused(self, error: BindError, retryIn: float | None) -> None:
        self.events.append(("refused", error.hostname, error.condition, retryIn))

    def hostnameLost(self, hostname: str) -> None:
        self.events.append(("lost", hostname))

    def take(self) -> list[tuple[Any, ...]]:
        """
        The events recorded since the last call.
        """
        events, self.events = self.events, []
        return events


def makeComponent(network: Network, identity: str, *hostnames: str, **kwargs: Any) -> Component:
    """
    A component connected to C{network} through its C{endpointFactory}.
    """
    kwargs.setdefault("retryPolicy", lambda attempt: 2.0 ** attempt)
    kwargs.setdefault("endpointFactory", network.endpointFactory)
    componentClass = kwargs.pop("componentClass", Component)
    protocol = kwargs.get("protocol", "xep0225")
    secret = kwargs.pop("secret", ACCEPT_SECRETS[identity] if protocol == "xep0114" else SECRETS[identity])
    component = componentClass(
        "memory",
        DOMAIN,
        hostnames or (identity,),
        secret=secret,
        identity=identity if protocol == "xep0225" else None,
        reactor=network.reactor,
        tlsCreator=PretendTLS(),
        **kwargs,
    )
    assert isinstance(component, Component)
    return component


class Recorder(XMPPHandler):
    """
    Records what the handler framework tells it and the messages it gets.
    """

    def __init__(self) -> None:
        super().__init__()
        self.initialized = 0
        self.lost = 0
        self.messages: list[domish.Element] = []

    def connectionInitialized(self) -> None:
        self.initialized += 1
        self.xmlstream.addObserver("/message", self.messages.append)

    def connectionLost(self, reason: Failure) -> None:
        self.lost += 1


class AsyncTimeHandler(XMPPHandler, IQHandlerMixin):
    """
    An C{async def} IQ handler.
    """

    iqHandlers = {"/iq[@type='get']/time[@xmlns='urn:example:time']": "onTime"}

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver("/iq[@type='get']", self.handleRequest)

    async def onTime(self, iq: domish.Element) -> domish.Element:
        await defer.succeed(None)
        element = domish.Element(("urn:example:time", "time"))
        element.addElement("utc", content="2026-11-22T00:00:00Z")
        return element


class TestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.network = Network(self.clock)
        self.addCleanup(self._stopAll)
        self.components: list[Component] = []

    def component(self, identity: str, *hostnames: str, **kwargs: Any) -> Component:
        component = makeComponent(self.network, identity, *hostnames, **kwargs)
        component.startService()
        self.components.append(component)
        self.network.flush()
        return component

    def assertNextAttemptAfter(self, seconds: int) -> None:
        """
        No new connection attempt in the next C{seconds - 1} seconds, and
        one in the second after.
        """
        attempts = len(self.network.connections)
        self.clock.advance(seconds - 1)
        self.network.flush()
        self.assertEqual(len(self.network.connections), attempts)
        self.clock.advance(1)
        self.network.flush()
        self.assertEqual(len(self.network.connections), attempts + 1)

    def _stopAll(self) -> None:
        for component in self.components:
            if component.running:
                component.stopService()
        self.network.flush()


class ConnectionTests(TestCase):
    """
    Connecting, binding and handlers.
    """

    def test_noNewConnectionWhileStopping(self) -> None:
        """
        Once the component stops, a link whose connection ends while the
        other streams finish their closing handshakes asks ClientService to
        wait an hour (its stop cancels the wait) instead of connecting again:
        a connection made during the stop is one ClientService cannot take
        back cleanly.
        """
        component = self.component("alpha.example.net", "alpha.example.net")
        [link] = component.links
        self.assertLess(link._retryDelay(1), 3600)  # type: ignore[attr-defined]
        component.stopService()
        self.assertEqual(link._retryDelay(2), 3600)  # type: ignore[attr-defined]
        self.network.flush()

    def test_bindsAndInitializesHandlers(self) -> None:
        """
        The component connects, binds all its hostnames, and initialises
        its handlers once.
        """
        recorder = Recorder()
        alpha = makeComponent(self.network, "alpha.example.net", "alpha.example.net", "chat.alpha.example.net")
        recorder.setHandlerParent(alpha)
        alpha.startService()
        self.components.append(alpha)
        self.network.flush()
        self.assertTrue(alpha.isConnected("chat.alpha.example.net"))
        self.assertEqual(recorder.initialized, 1)
        session = self.network.router.table.lookup("chat.alpha.example.net")
        self.assertEqual(session.names, ["alpha.example.net", "chat.alpha.example.net"])

    def test_stanzasReachHandlers(self) -> None:
        """
        Stanzas from another component reach the handlers.
        """
        recorder = Recorder()
        alpha = self.component("alpha.example.net")
        recorder.setHandlerParent(alpha)
        beta = self.component("beta.example.net")
        message = domish.Element((None, "message"))
        message["from"] = "beta.example.net"
        message["to"] = "alpha.example.net"
        message.addElement("body", content="hi")
        beta.send(message)
        self.network.flush()
        self.assertEqual([str(m.body) for m in recorder.messages], ["hi"])

    def test_requestAndAsyncHandler(self) -> None:
        """
        L{Component.request} fires with the result an C{async def} handler
        of the other component returned.
        """
        alpha = self.component("alpha.example.net")
        beta = self.component("beta.example.net")
        AsyncTimeHandler().setHandlerParent(beta)
        iq = domish.Element((None, "iq"))
        iq["type"] = "get"
        iq["from"] = "alpha.example.net"
        iq["to"] = "beta.example.net"
        iq.addElement(("urn:example:time", "time"))
        d = alpha.request(iq)
        self.network.flush()
        result = self.successResultOf(d)
        self.assertEqual(str(result.time.utc), "2026-11-22T00:00:00Z")

    def test_requestError(self) -> None:
        """
        A stanza error answer fails the request with it.
        """
        alpha = self.component("alpha.example.net")
        iq = domish.Element((None, "iq"))
        iq["type"] = "get"
        iq["from"] = "alpha.example.net"
        iq["to"] = "nobody.example.net"
        iq.addElement(("urn:example:time", "time"))
        d = alpha.request(iq)
        self.network.flush()
        self.assertEqual(self.failureResultOf(d, StanzaError).value.condition, "service-unavailable")

    def test_requestTimeout(self) -> None:
        """
        An unanswered request fails with L{TimeoutError} after its timeout.
        """
        alpha = self.component("alpha.example.net")
        self.component("beta.example.net")
        iq = domish.Element((None, "iq"))
        iq["type"] = "get"
        iq["from"] = "alpha.example.net"
        iq["to"] = "beta.example.net"
        iq.addElement(("urn:example:nobody-answers", "query"))
        d = alpha.request(iq, timeout=5)
        self.network.flush()
        self.assertNoResult(d)
        self.clock.advance(5)
        self.failureResultOf(d, TimeoutError)

    def test_bindAndUnbindLater(self) -> None:
        """
        L{Component.bind} binds another name on the open stream and
        L{Component.unbind} releases it.
        """
        alpha = self.component("alpha.example.net")
        d = alpha.bind("extra.alpha.example.net")
        self.network.flush()
        self.assertEqual(self.successResultOf(d), "extra.alpha.example.net")
        self.assertEqual(alpha.hostnames, ["alpha.example.net", "extra.alpha.example.net"])
        self.assertIsNotNone(self.network.router.table.lookup("extra.alpha.example.net"))
        d = alpha.unbind("extra.alpha.example.net")
        self.network.flush()
        self.successResultOf(d)
        self.assertIsNone(self.network.router.table.lookup("extra.alpha.example.net"))

    def test_bindRefused(self) -> None:
        """
        A refused bind fails with the stanza error.
        """
        alpha = self.component("alpha.example.net")
        d = alpha.bind("beta.example.net")
        self.network.flush()
        self.assertEqual(self.failureResultOf(d, StanzaError).value.condition, "not-allowed")
        self.assertNotIn("beta.example.net", alpha.hostnames)


def query(sender: str, recipient: str) -> domish.Element:
    """
    An IQ get nobody answers by itself.
    """
    iq = domish.Element((None, "iq"))
    iq["type"] = "get"
    iq["from"] = sender
    iq["to"] = recipient
    iq.addElement(("urn:example:nobody-answers", "query"))
    return iq


def chat(sender: str, recipient: str, body: str) -> domish.Element:
    message = domish.Element((None, "message"))
    message["from"] = sender
    message["to"] = recipient
    message.addElement("body", content=body)
    return message


def answerTo(iq: domish.Element, sender: str, kind: str = "result") -> domish.Element:
    """
    An answer to C{iq} from C{sender}: a result, or an error with
    C{conflict} (any error the request would take as the server's
    refusal).
    """
    reply = domish.Element((None, "iq"))
    reply["type"] = kind
    reply["id"] = iq["id"]
    reply["from"] = sender
    reply["to"] = iq.getAttribute("from", "alpha.example.net")
    if kind == "error":
        error = reply.addElement("error")
        error["type"] = "cancel"
        error.addElement(("urn:ietf:params:xml:ns:xmpp-stanzas", "conflict"))
    return reply


class RequestMatchingTests(TestCase):
    """
    L{Component.request} takes an answer only from the entity asked, and
    its ids cannot be guessed (issue 16, item 1).
    """

    def test_spoofedAnswerIgnored(self) -> None:
        """
        A result or an error with the request's id from another component
        does not complete L{Component.request} (counting it:
        L{test_spoofedAnswerCounted}); the answer of the entity asked still
        completes it.
        """
        alpha = self.component("alpha.example.net")
        beta = self.component("beta.example.net")
        gamma = self.component("gamma.example.net")
        iq = query("alpha.example.net", "beta.example.net")
        d = alpha.request(iq)
        self.network.flush()
        gamma.send(answerTo(iq, "gamma.example.net"))
        gamma.send(answerTo(iq, "gamma.example.net", "error"))
        self.network.flush()
        self.assertNoResult(d)
        beta.send(answerTo(iq, "beta.example.net"))
        self.network.flush()
        self.assertEqual(self.successResultOf(d).getAttribute("from"), "beta.example.net")


    def test_spoofedAnswerCounted(self) -> None:
        """
        The answers of L{test_spoofedAnswerIgnored} from another
        component count as mismatched (C{component}) in the L{Metrics}
        of the component that asked, and in no other.
        """
        metrics, others = Metrics(), Metrics()
        alpha = self.component("alpha.example.net", metrics=metrics)
        beta = self.component("beta.example.net", metrics=others)
        gamma = self.component("gamma.example.net", metrics=others)
        iq = query("alpha.example.net", "beta.example.net")
        d = alpha.request(iq)
        self.network.flush()
        gamma.send(answerTo(iq, "gamma.example.net"))
        gamma.send(answerTo(iq, "gamma.example.net", "error"))
        self.network.flush()
        self.assertNoResult(d)
        self.assertEqual(mismatched(metrics, "component"), 2)
        self.assertEqual(mismatched(others, "component"), 0)
        beta.send(answerTo(iq, "beta.example.net"))
        self.network.flush()
        self.successResultOf(d)
        self.assertEqual(mismatched(metrics, "component"), 2)

    def test_privateMetrics(self) -> None:
        """
        A component given no L{Metrics} counts in one of its own, shared
        by its request tracker; two such components share nothing.
        """
        alpha = self.component("alpha.example.net")
        beta = self.component("beta.example.net")
        self.assertIsInstance(alpha.metrics, Metrics)
        self.assertIsNot(alpha.metrics, beta.metrics)
        self.assertIsNot(alpha.jids, beta.jids)
        assert alpha.xmlstream is not None
        self.assertIs(alpha.xmlstream.requests.jids, alpha.jids)

    def test_unguessableIds(self) -> None:
        """
        Requests without an id get 128 random bits each, not domish's
        counter (C{H_1}, C{H_2}, ...).
        """
        alpha = self.component("alpha.example.net")
        first, second = query("alpha.example.net", "beta.example.net"), query("alpha.example.net", "beta.example.net")
        for iq in (first, second):
            alpha.request(iq).addErrback(lambda failure: None)
        self.assertRegex(first["id"], ID_PATTERN)
        self.assertRegex(second["id"], ID_PATTERN)
        self.assertNotEqual(first["id"], second["id"])

    def test_spoofedBindAnswerIgnored(self) -> None:
        """
        A bind (no C{to}: the server answers) is not refused by an error
        with its id from another component; the server's answer binds the
        name.
        """
        alpha = self.component("alpha.example.net")
        gamma = self.component("gamma.example.net")
        session = self.network.router.table.lookup("alpha.example.net")
        held: list[Any] = []
        realHandle = session.binder.handle
        # The router holds the bind request until the spoof is delivered.
        session.binder.handle = lambda iq, send, later=None: held.append((iq, send))  # type: ignore[method-assign]
        d = alpha.bind("extra.alpha.example.net")
        self.network.flush()
        ((request, send),) = held
        self.assertRegex(request["id"], ID_PATTERN)
        gamma.send(answerTo(request, "gamma.example.net", "error"))
        self.network.flush()
        self.assertNoResult(d)
        realHandle(request, send)
        self.network.flush()
        self.assertEqual(self.successResultOf(d), "extra.alpha.example.net")
        self.assertTrue(alpha.isConnected("extra.alpha.example.net"))

    def test_malformedAddressRefused(self) -> None:
        """
        A request to an address that is no JID fails at once with
        L{ValueError}: no answer could be told from a spoof.
        """
        alpha = self.component("alpha.example.net")
        self.failureResultOf(alpha.request(query("alpha.example.net", "a@b@c")), ValueError)


class NameIndependenceTests(TestCase):
    """
    A refused hostname does not take the others down (issue 16, item 4).
    """

    def named(self, identity: str, *hostnames: str, **kwargs: Any) -> NamedComponent:
        component = self.component(identity, *hostnames, componentClass=NamedComponent, **kwargs)
        assert isinstance(component, NamedComponent)
        return component

    def test_conflictKeepsOtherNames(self) -> None:
        """
        With names a and b, b bound by another session: a is bound and
        routable, b is reported (C{conflict}, retried in the policy's
        delay) and bound on the same connection once the other session
        goes away.
        """
        holder = self.component("alpha.example.net", "chat.alpha.example.net")
        second = self.named("alpha.example.net", "alpha.example.net", "chat.alpha.example.net")
        inbox = Recorder()
        inbox.setHandlerParent(second)
        beta = self.component("beta.example.net")
        table = self.network.router.table
        session = table.lookup("alpha.example.net")
        self.assertIsNot(session, table.lookup("chat.alpha.example.net"))
        self.assertEqual(
            second.take(),
            [("bound", "alpha.example.net"), ("refused", "chat.alpha.example.net", "conflict", 2.0)],
        )
        self.assertTrue(second.isConnected("alpha.example.net"))
        self.assertFalse(second.isConnected("chat.alpha.example.net"))
        self.assertEqual(second.boundHostnames, ["alpha.example.net"])
        beta.send(chat("beta.example.net", "alpha.example.net", "to a"))
        self.network.flush()
        self.assertEqual([str(m.body) for m in inbox.messages], ["to a"])

        connections = len(self.network.connections)
        holder.stopService()
        self.network.flush()
        self.clock.advance(2)
        self.network.flush()
        self.assertEqual(second.take(), [("bound", "chat.alpha.example.net")])
        self.assertIs(table.lookup("chat.alpha.example.net"), session)
        self.assertEqual(len(self.network.connections), connections)
        beta.send(chat("beta.example.net", "room@chat.alpha.example.net", "to b"))
        self.network.flush()
        self.assertEqual([str(m.body) for m in inbox.messages], ["to a", "to b"])
        self.assertEqual(inbox.initialized, 1)

    def test_conflictBackoffGrows(self) -> None:
        """
        While the other session keeps the name, it is tried again after
        the policy's delay of its count of refusals (2, 4, 8 s here), and
        the other names stay bound on the same connection.
        """
        self.component("alpha.example.net", "chat.alpha.example.net")
        second = self.named("alpha.example.net", "alpha.example.net", "chat.alpha.example.net")
        session = self.network.router.table.lookup("alpha.example.net")
        delays = [event[3] for event in second.take() if event[0] == "refused"]
        for delay in (2.0, 4.0):
            self.clock.advance(delay - 0.1)
            self.network.flush()
            self.assertEqual(second.take(), [])
            self.clock.advance(0.1)
            self.network.flush()
            delays.extend(event[3] for event in second.take())
        self.assertEqual(delays, [2.0, 4.0, 8.0])
        self.assertIs(self.network.router.table.lookup("alpha.example.net"), session)

    def test_notAllowedKeepsOthers(self) -> None:
        """
        A name the server does not allow is reported and not tried again
        on this connection; the other names stay; a stanza from it fails
        at once; an explicit L{Component.bind} tries again (and fails with
        the L{BindError}); the next connection tries it again.
        """
        alpha = self.named("alpha.example.net", "alpha.example.net", "beta.example.net")
        self.assertEqual(
            alpha.take(),
            [("bound", "alpha.example.net"), ("refused", "beta.example.net", "not-allowed", None)],
        )
        session = self.network.router.table.lookup("alpha.example.net")
        self.clock.advance(1000)
        self.network.flush()
        self.assertEqual(alpha.take(), [])
        self.assertIs(self.network.router.table.lookup("alpha.example.net"), session)
        self.assertTrue(alpha.isConnected("alpha.example.net"))
        self.failureResultOf(alpha.sendOrFail(chat("beta.example.net", "gamma.example.net", "x")), NotConnected)
        failure = self.failureResultOf(_flushed(self, alpha.bind("beta.example.net")), BindError)
        self.assertIsInstance(failure.value, StanzaError)
        self.assertEqual((failure.value.hostname, failure.value.condition), ("beta.example.net", "not-allowed"))
        self.assertEqual(alpha.take(), [("refused", "beta.example.net", "not-allowed", None)])
        self.assertIn("beta.example.net", alpha.hostnames)
        self.network.crash()
        self.network.start()
        for _ in range(5):
            self.clock.advance(2)
            self.network.flush()
        self.assertEqual(
            alpha.take(),
            [
                ("lost", "alpha.example.net"),
                ("bound", "alpha.example.net"),
                ("refused", "beta.example.net", "not-allowed", None),
            ],
        )

    def test_everyNameNotAllowedPauses(self) -> None:
        """
        When every name is refused with C{not-allowed}, each is reported,
        and the connection waits C{fatalRetryDelay} before trying again.
        """
        component = self.named(
            "alpha.example.net", "beta.example.net", "gamma.example.net",
            retryPolicy=lambda n: 1.0, fatalRetryDelay=300,
        )
        self.assertEqual(
            component.take(),
            [
                ("refused", "beta.example.net", "not-allowed", None),
                ("refused", "gamma.example.net", "not-allowed", None),
            ],
        )
        self.assertNextAttemptAfter(300)
        self.assertFalse(component.isConnected())

    def test_everyNameConflictNotPaused(self) -> None:
        """
        When every name is refused with C{conflict}, the connection is not
        paused: it tries again after the names' own backoff (2 s, then
        4 s), and binds once the other session is gone.
        """
        holder = self.component("alpha.example.net")
        second = self.named("alpha.example.net", fatalRetryDelay=300)
        self.assertEqual(second.take(), [("refused", "alpha.example.net", "conflict", 2.0)])
        attempts = len(self.network.connections)
        self.clock.advance(2)
        self.network.flush()
        self.assertEqual(len(self.network.connections), attempts + 1)
        self.assertEqual(second.take(), [("refused", "alpha.example.net", "conflict", 4.0)])
        holder.stopService()
        self.network.flush()
        self.clock.advance(4)
        self.network.flush()
        self.assertEqual(second.take(), [("bound", "alpha.example.net")])
        self.assertTrue(second.isConnected("alpha.example.net"))

    def test_refusedNameDoesNotHoldOthersBack(self) -> None:
        """
        A stanza from a name waiting to be bound again waits (and is sent
        once it is bound); stanzas from the bound names go at once.
        """
        holder = self.component("alpha.example.net", "chat.alpha.example.net")
        second = self.named("alpha.example.net", "alpha.example.net", "chat.alpha.example.net")
        inbox = Recorder()
        beta = self.component("beta.example.net")
        inbox.setHandlerParent(beta)
        waiting = second.sendOrFail(chat("room@chat.alpha.example.net", "beta.example.net", "from b"))
        now = second.sendOrFail(chat("alpha.example.net", "beta.example.net", "from a"))
        self.network.flush()
        self.successResultOf(now)
        self.assertNoResult(waiting)
        self.assertEqual([str(m.body) for m in inbox.messages], ["from a"])
        holder.stopService()
        self.network.flush()
        self.clock.advance(2)
        self.network.flush()
        self.successResultOf(waiting)
        self.assertEqual([str(m.body) for m in inbox.messages], ["from a", "from b"])

    def test_explicitBindConflictRetried(self) -> None:
        """
        L{Component.bind} of a name bound elsewhere fails with the
        C{conflict} L{BindError}; the name is kept and bound once free.
        """
        holder = self.component("alpha.example.net", "chat.alpha.example.net")
        second = self.named("alpha.example.net")
        second.take()
        failure = self.failureResultOf(_flushed(self, second.bind("chat.alpha.example.net")), BindError)
        self.assertEqual(failure.value.condition, "conflict")
        self.assertEqual(second.take(), [("refused", "chat.alpha.example.net", "conflict", 2.0)])
        self.assertIn("chat.alpha.example.net", second.hostnames)
        holder.stopService()
        self.network.flush()
        self.clock.advance(2)
        self.network.flush()
        self.assertEqual(second.take(), [("bound", "chat.alpha.example.net")])

    def test_xep0114ConflictUsesNormalBackoff(self) -> None:
        """
        Over XEP-0114 a name connected already is a C{conflict} stream
        error: reported, and tried again with the normal growing backoff
        (2 s, then 4 s), not C{fatalRetryDelay}; it connects once the
        other connection is gone.
        """
        holder = self.component("legacy.example.net", protocol="xep0114")
        self.assertTrue(holder.isConnected("legacy.example.net"))
        second = self.named("legacy.example.net", protocol="xep0114", fatalRetryDelay=300)
        refusals = [event for event in second.take() if event[0] == "refused"]
        self.assertEqual(refusals, [("refused", "legacy.example.net", "conflict", 2.0)])
        self.clock.advance(2)
        self.network.flush()
        refusals = [event for event in second.take() if event[0] == "refused"]
        self.assertEqual(refusals, [("refused", "legacy.example.net", "conflict", 4.0)])
        holder.stopService()
        self.network.flush()
        self.clock.advance(4)
        self.network.flush()
        self.assertTrue(second.isConnected("legacy.example.net"))


class ConflictDuringHandshake(Protocol):
    """
    An XEP-0114 server that, like Prosody when the name is connected
    already, answers the handshake with a C{conflict} stream error.
    """

    def dataReceived(self, data: bytes) -> None:
        if b"<stream:stream" in data:
            self.transport.write(  # type: ignore[union-attr]
                b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
                b"xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='legacy.example.net'>"
            )
        if b"<handshake" in data:
            self.transport.write(  # type: ignore[union-attr]
                b"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                b"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Component already connected</text>"
                b"</stream:error></stream:stream>"
            )
            self.transport.loseConnection()  # type: ignore[union-attr]


class HandshakeConflictTests(TestCase):
    """
    A server that refuses the XEP-0114 handshake with C{conflict} (as
    Prosody does for a name connected already).
    """

    def test_normalBackoff(self) -> None:
        """
        The refusal is reported for the name, and the connection is tried
        again with the normal growing backoff (2 s, then 4 s), not after
        C{fatalRetryDelay}.
        """
        component = self.component(
            "legacy.example.net", protocol="xep0114", fatalRetryDelay=300,
            componentClass=NamedComponent,
            endpointFactory=lambda link: MemoryEndpoint(
                Factory.forProtocol(ConflictDuringHandshake), self.network.connections
            ),
        )
        assert isinstance(component, NamedComponent)
        self.assertEqual(component.take(), [("refused", "legacy.example.net", "conflict", 2.0)])
        attempts = len(self.network.connections)
        self.clock.advance(2)
        self.network.flush()
        self.assertEqual(len(self.network.connections), attempts + 1)
        self.assertEqual(component.take(), [("refused", "legacy.example.net", "conflict", 4.0)])


def _flushed(case: TestCase, d: defer.Deferred[Any]) -> defer.Deferred[Any]:
    """
    C{d}, once the in-memory network moved everything.
    """
    case.network.flush()
    return d


class ReconnectionTests(TestCase):
    """
    Losing the server: backoff, rebinding, queueing.
    """

    def test_reconnectsAndRebinds(self) -> None:
        """
        After the router crashes and comes back, the component reconnects
        with backoff, binds every name again (including one bound later),
        and its handlers are initialised again.
        """
        recorder = Recorder()
        alpha = makeComponent(self.network, "alpha.example.net", "alpha.example.net", "a.alpha.example.net")
        recorder.setHandlerParent(alpha)
        alpha.startService()
        self.components.append(alpha)
        self.network.flush()
        alpha.bind("b.alpha.example.net")
        self.network.flush()
        self.network.crash()
        self.assertFalse(alpha.isConnected())
        self.assertEqual(recorder.lost, 1)
        self.network.start()
        for _ in range(20):
            self.clock.advance(1)
            self.network.flush()
        self.assertTrue(alpha.isConnected())
        self.assertEqual(recorder.initialized, 2)
        session = self.network.router.table.lookup("alpha.example.net")
        self.assertEqual(session.names, ["alpha.example.net", "a.alpha.example.net", "b.alpha.example.net"])

    def test_backoffSchedule(self) -> None:
        """
        While the server is down, attempts follow the retry policy; a
        fatal failure (wrong secret) waits at least C{fatalRetryDelay}.
        """
        delays: list[int] = []
        self.network.crash()
        alpha = self.component(
            "alpha.example.net", retryPolicy=lambda n: (delays.append(n), 1.0)[1]
        )
        self.clock.advance(1)
        self.clock.advance(1)
        self.assertEqual(delays, [1, 2, 3])
        self.assertFalse(alpha.isConnected())

    def test_fatalBackoff(self) -> None:
        """
        Wrong credentials are not retried in a tight loop.
        """
        beta = self.component("beta.example.net", secret="wrong", retryPolicy=lambda n: 1.0, fatalRetryDelay=300)
        self.assertNextAttemptAfter(300)
        self.assertFalse(beta.isConnected())

    def test_queuedWhileDown(self) -> None:
        """
        Stanzas sent while disconnected wait and go out after
        reconnection, in order.
        """
        alpha = self.component("alpha.example.net")
        beta = self.component("beta.example.net")
        recorder = Recorder()
        recorder.setHandlerParent(beta)
        self.network.crash()
        sent = []
        for i in range(3):
            message = domish.Element((None, "message"))
            message["from"] = "alpha.example.net"
            message["to"] = "beta.example.net"
            message.addElement("body", content=str(i))
            sent.append(alpha.sendOrFail(message))
        for d in sent:
            self.assertNoResult(d)
        self.network.start()
        for _ in range(20):
            self.clock.advance(1)
            self.network.flush()
        for d in sent:
            self.successResultOf(d)
        self.assertEqual([str(m.body) for m in recorder.messages], ["0", "1", "2"])

    def test_queueLimits(self) -> None:
        """
        A full queue fails at once; a stanza that waits too long fails
        with L{QueueTimeout}; fire-and-forget failures are logged.
        """
        alpha = self.component("alpha.example.net", maxQueued=1, queueTimeout=10)
        first = self.assertQueueOfOneFor10Seconds(alpha)
        alpha.send(first)
        alpha.send(first)
        errors = self.flushLoggedErrors()
        self.assertEqual(errors, [])

    def test_queueLimitsFromLimits(self) -> None:
        """
        The queue's limits can come in one L{ComponentLimits} value
        (C{limits}); the component's attributes read them.
        """
        alpha = self.component("alpha.example.net", limits=ComponentLimits(maxQueued=1, queueTimeout=10))
        self.assertEqual((alpha.maxQueued, alpha.queueTimeout), (1, 10))
        self.assertQueueOfOneFor10Seconds(alpha)

    def assertQueueOfOneFor10Seconds(self, alpha: Component) -> domish.Element:
        """
        With the network down, one stanza of C{alpha} waits and a second
        fails at once with L{QueueFull}; the first fails with
        L{QueueTimeout} after 10 seconds.

        @return: the stanza sent.
        """
        self.network.crash()
        first = domish.Element((None, "message"))
        first["from"] = "alpha.example.net"
        first["to"] = "beta.example.net"
        waiting = alpha.sendOrFail(first)
        self.failureResultOf(alpha.sendOrFail(first), QueueFull)
        self.clock.advance(10)
        self.failureResultOf(waiting, QueueTimeout)
        return first

    def test_requestTimeoutFromLimits(self) -> None:
        """
        A request with no timeout of its own waits C{limits.iqTimeout}.
        """
        d = self.unanswered(limits=ComponentLimits(iqTimeout=7))
        self.clock.advance(6)
        self.assertNoResult(d)
        self.clock.advance(1)
        self.failureResultOf(d, TimeoutError)

    def test_inFlightRequestFailsOnLoss(self) -> None:
        """
        A request whose answer can no longer come fails with
        L{ConnectionLost} when the connection drops.
        """
        d = self.unanswered()
        self.network.crash()
        self.failureResultOf(d, ConnectionLost)

    def unanswered(self, **kwargs: Any) -> defer.Deferred[domish.Element]:
        """
        The request of a component C{alpha.example.net} (made with
        C{kwargs}) to C{beta.example.net}, which answers nothing, sent.
        """
        alpha = self.component("alpha.example.net", **kwargs)
        self.component("beta.example.net")
        iq = domish.Element((None, "iq"))
        iq["type"] = "get"
        iq["from"] = "alpha.example.net"
        iq["to"] = "beta.example.net"
        iq.addElement(("urn:example:nobody-answers", "query"))
        d = alpha.request(iq)
        self.network.flush()
        return d


class LimitsTests(SynchronousTestCase):
    """
    A L{Component}'s C{limits}, and the keyword arguments and attributes
    named after their fields.
    """

    def make(self, **kwargs: Any) -> Component:
        return Component(
            "tcp:host=127.0.0.1:port=5347", DOMAIN, ["alpha.example.net"], secret="s", reactor=MemoryReactorClock(), **kwargs
        )

    def test_defaults(self) -> None:
        """
        Without C{limits} or keywords, the limits are L{ComponentLimits}'
        defaults.
        """
        component = self.make()
        self.assertEqual(component.limits, ComponentLimits())
        self.assertEqual(component.iqTimeout, ComponentLimits().iqTimeout)

    def test_keywordsOverrideLimits(self) -> None:
        """
        A keyword given overrides that field of C{limits}; the others
        come from C{limits}. C{iqTimeout=None} (no limit) leaves
        C{limits.iqTimeout} as it is.
        """
        given = ComponentLimits(maxQueued=5, queueTimeout=6.0, iqTimeout=7.0, fatalRetryDelay=8.0)
        component = self.make(limits=given, maxQueued=2, maxRetryDelay=4.0, iqTimeout=None)
        self.assertEqual(component.limits, attrs.evolve(given, maxQueued=2, maxRetryDelay=4.0))
        self.assertEqual(
            (component.maxQueued, component.queueTimeout, component.fatalRetryDelay, component.maxRetryDelay),
            (2, 6.0, 8.0, 4.0),
        )
        self.assertIsNone(component.iqTimeout)

    def test_setAttribute(self) -> None:
        """
        Setting an attribute named after a field of C{limits} changes that
        field.
        """
        component = self.make()
        component.negotiationTimeout = 12.0
        self.assertEqual(component.limits, ComponentLimits(negotiationTimeout=12.0))
        self.assertEqual(component.negotiationTimeout, 12.0)

    def test_configLimits(self) -> None:
        """
        L{xmppcomp.componentconfig.ComponentLimits}, the configuration's,
        is the component's.
        """
        from xmppcomp import componentconfig

        self.assertIs(componentconfig.ComponentLimits, ComponentLimits)


class FatalTests(SynchronousTestCase):
    """
    L{isFatal} tells failures worth a long pause.
    """

    def test_classification(self) -> None:
        """
        Wrong credentials, refused names, certificate errors and some
        stream errors are fatal; a lost connection or timeout is not.
        """
        self.assertTrue(isFatal(Failure(SASLFailure("not-authorized"))))
        self.assertFalse(isFatal(Failure(SASLFailure("temporary-auth-failure"))))
        self.assertTrue(isFatal(Failure(BindError("x.example.net", "not-allowed"))))
        self.assertTrue(isFatal(Failure(StreamError("host-unknown"))))
        self.assertFalse(isFatal(Failure(StreamError("system-shutdown"))))
        self.assertFalse(isFatal(Failure(ConnectionLost())))


class RefusalFatalTests(SynchronousTestCase):
    """
    L{isFatal}: refusals that retrying may fix are not fatal.
    """

    def test_refusalsWorthRetrying(self) -> None:
        """
        A C{conflict} (a bind error, or XEP-0114's stream error) and a
        C{resource-constraint} are not fatal; every name refused for good
        is; a mix with one name worth retrying is not.
        """
        self.assertFalse(isFatal(Failure(StreamError("conflict"))))
        self.assertFalse(isFatal(Failure(BindError("x.example.net", "conflict"))))
        self.assertFalse(isFatal(Failure(BindError("x.example.net", "resource-constraint"))))
        notAllowed = BindError("x.example.net", "not-allowed")
        conflict = BindError("y.example.net", "conflict")
        self.assertTrue(isFatal(Failure(NoHostnameBound([notAllowed]))))
        self.assertFalse(isFatal(Failure(NoHostnameBound([notAllowed, conflict]))))


class KeepaliveTests(TestCase):
    """
    Silent servers are detected with XEP-0199 pings (RFC 6120 section 4.5).
    """

    def test_answeredPingsKeepTheConnection(self) -> None:
        """
        The router answers the pings; the connection stays.
        """
        alpha = self.component("alpha.example.net", keepaliveInterval=60, keepaliveTimeout=10)
        for _ in range(5):
            self.clock.advance(60)
            self.network.flush()
        self.assertTrue(alpha.isConnected())

    def test_silentServerDropped(self) -> None:
        """
        When the server stops answering, the connection is dropped after
        the ping timeout, and the component reconnects.
        """
        alpha = self.component(
            "alpha.example.net", keepaliveInterval=60, keepaliveTimeout=10, retryPolicy=lambda n: 1.0
        )
        recorder = Recorder()
        recorder.setHandlerParent(alpha)
        # The router goes silent: it reads but answers nothing.
        self.network.router._local = lambda session, stanza: None  # type: ignore[method-assign]
        self.clock.advance(60)
        self.network.flush()
        self.assertTrue(alpha.isConnected())
        self.clock.advance(10)
        self.network.flush()
        self.assertEqual(recorder.lost, 1)
        self.clock.advance(1)
        self.network.flush()
        self.assertTrue(alpha.isConnected())
        self.assertEqual(recorder.initialized, 2)


class EndpointFactoryTests(TestCase):
    """
    The endpoint of each connection comes from C{endpointFactory}; the
    deprecated L{Component.endpointFor} keeps working.
    """

    def test_factoryGetsEachLink(self) -> None:
        """
        C{endpointFactory} is called with each connection's L{Link}: one
        per hostname over XEP-0114, with its component and hostnames.
        """
        asked: list[tuple[Component, tuple[str, ...]]] = []

        def factory(link: Link) -> MemoryEndpoint:
            asked.append((link.component, tuple(link.hostnames)))
            return self.network.endpointFactory(link)

        component = self.component(
            "legacy.example.net", protocol="xep0114", endpointFactory=factory
        )
        self.assertEqual(asked, [(component, ("legacy.example.net",))])
        self.assertTrue(component.isConnected("legacy.example.net"))
        [link] = component.links
        self.assertTrue(link.connected)
        self.assertEqual(list(link.bound), ["legacy.example.net"])

    def test_endpointForDeprecated(self) -> None:
        """
        Calling L{Component.endpointFor} warns, pointing at
        C{endpointFactory}, and returns the factory's endpoint.
        """
        component = makeComponent(self.network, "alpha.example.net")
        [link] = component.links
        endpoint = component.endpointFor(link)  # type: ignore[arg-type]
        self.assertIs(endpoint, self.network.endpoint("xep0225"))
        [warning] = self.flushWarnings([self.test_endpointForDeprecated])
        self.assertIs(warning["category"], DeprecationWarning)
        self.assertIn("Component.endpointFor was deprecated in xmppcomp 0.1.0", warning["message"])
        self.assertIn("endpointFactory parameter", warning["message"])

    def test_overrideStillUsed(self) -> None:
        """
        A subclass that overrides L{Component.endpointFor} is warned when
        made, and its endpoint is used.
        """
        network = self.network

        class Overriding(Component):
            def endpointFor(self, link: Any) -> Any:
                return network.endpoint("xep0225")

        component = self.component("alpha.example.net", componentClass=Overriding, endpointFactory=None)
        [warning] = self.flushWarnings([makeComponent])
        self.assertIs(warning["category"], DeprecationWarning)
        self.assertIn("Overriding endpointFor", warning["message"])
        self.assertIn("Overriding.endpointFor", warning["message"])
        self.assertIn("endpointFactory parameter", warning["message"])
        self.assertTrue(component.isConnected("alpha.example.net"))


class StanzaFilterTests(TestCase):
    """
    L{Component.addSendFilter} and L{Component.addReceiveFilter}
    (L{IStanzaFilters}).
    """

    def test_provides(self) -> None:
        """
        A component provides L{IStanzaFilters}.
        """
        from zope.interface.verify import verifyObject

        from xmppcomp.interfaces import IStanzaFilters

        self.assertTrue(verifyObject(IStanzaFilters, makeComponent(self.network, "alpha.example.net")))

    def test_sendFilterTakesOver(self) -> None:
        """
        A send filter sees each element sent, in the order filters were
        added; one that returns C{True} took it over: it is not sent (nor
        given to the filters after it), and L{Component.sendOrFail} fires.
        Raw XML text is not filtered. Once removed, a filter sees nothing.
        """
        recorder = Recorder()
        alpha = self.component("alpha.example.net")
        recorder.setHandlerParent(alpha)
        beta = self.component("beta.example.net")
        seen: list[tuple[str, str]] = []

        def first(stanza: domish.Element) -> bool:
            seen.append(("first", str(stanza.body)))
            return str(stanza.body) == "taken"

        def second(stanza: domish.Element) -> bool:
            seen.append(("second", str(stanza.body)))
            return False

        beta.addSendFilter(first)
        beta.addSendFilter(second)
        self.assertIsNone(self.successResultOf(beta.sendOrFail(chat("beta.example.net", "alpha.example.net", "taken"))))
        beta.send(chat("beta.example.net", "alpha.example.net", "passed"))
        beta.send("<message from='beta.example.net' to='alpha.example.net'><body>raw</body></message>")
        self.network.flush()
        self.assertEqual(seen, [("first", "taken"), ("first", "passed"), ("second", "passed")])
        self.assertEqual([str(m.body) for m in recorder.messages], ["passed", "raw"])

        beta.removeSendFilter(first)
        beta.removeSendFilter(second)
        beta.send(chat("beta.example.net", "alpha.example.net", "taken"))
        self.network.flush()
        self.assertEqual(len(seen), 3)
        self.assertEqual([str(m.body) for m in recorder.messages], ["passed", "raw", "taken"])
        self.assertRaises(ValueError, beta.removeSendFilter, first)

    def test_sendFilterFailsClosed(self) -> None:
        """
        A send filter that raises keeps the stanza: not sent, and
        L{Component.sendOrFail} fails with the exception.
        """
        recorder = Recorder()
        alpha = self.component("alpha.example.net")
        recorder.setHandlerParent(alpha)
        beta = self.component("beta.example.net")

        def broken(stanza: domish.Element) -> bool:
            raise RuntimeError("cannot decide")

        beta.addSendFilter(broken)
        d = beta.sendOrFail(chat("beta.example.net", "alpha.example.net", "kept"))
        self.network.flush()
        self.failureResultOf(d, RuntimeError)
        self.assertEqual(recorder.messages, [])

    def test_receiveFilter(self) -> None:
        """
        A receive filter sees each stanza received before the handlers; one
        that returns C{True} took it over: it is not dispatched. One that
        raises drops the stanza (logged). Once removed, a filter sees
        nothing.
        """
        recorder = Recorder()
        alpha = self.component("alpha.example.net")
        recorder.setHandlerParent(alpha)
        beta = self.component("beta.example.net")
        seen: list[str] = []

        def keep(stanza: domish.Element) -> bool:
            if stanza.name != "message":
                return False
            seen.append(str(stanza.body))
            if str(stanza.body) == "broken":
                raise RuntimeError("cannot decide")
            return str(stanza.body) == "taken"

        alpha.addReceiveFilter(keep)
        for body in ("taken", "passed", "broken"):
            beta.send(chat("beta.example.net", "alpha.example.net", body))
        self.network.flush()
        self.assertEqual(seen, ["taken", "passed", "broken"])
        self.assertEqual([str(m.body) for m in recorder.messages], ["passed"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        alpha.removeReceiveFilter(keep)
        beta.send(chat("beta.example.net", "alpha.example.net", "taken"))
        self.network.flush()
        self.assertEqual([str(m.body) for m in recorder.messages], ["passed", "taken"])
        self.assertRaises(ValueError, alpha.removeReceiveFilter, keep)
