# -*- test-case-name: tests.test_ejabberd -*-
"""
Interoperability with a real ejabberd 23.01, run on loopback with a
private configuration by L{tests.ejabberd}, and real slixmpp users logged
in to it (C{tests/slixmpp_client.py}, driven by L{tests.slixmppuser}).

What it proves, over the wire:
  - our L{Component} (C{protocol="xep0114"}) connects to ejabberd's
    C{ejabberd_service} listener; a user's messages and IQs reach its
    handlers and the answers reach the user, and its own requests reach
    the user;
  - ejabberd accepts a second connection for a hostname that is already
    connected (no C{conflict}) and spreads the stanzas for that name over
    both, stanza by stanza by default; with C{domain_balancing} of type
    C{bare_source} each sender sticks to one connection, and with fewer
    connections than C{component_number} a sender's stanzas may vanish
    without an error; without C{component_number} every connection for the
    name fails; with the listener's C{global_routes} left at its default
    (C{true}), a connection for one declared name receives the stanzas of
    every other;
  - a wrong secret and an undeclared hostname both end with a
    C{not-authorized} stream error (Prosody says C{host-unknown} for the
    latter); a hostname that is one of ejabberd's own virtual hosts with
    C{conflict};
  - the service tree of C{twistd xmppcomp} (C{--protocol xep0114}) asks a
    user logged in to ejabberd with XEP-0070 (an IQ to a full JID, a
    message to a bare JID) and answers 200 or 403 as the user decides.

Never skipped: without ejabberd the tests fail, saying that C{.ci/run}
installs it.

L{EjabberdMixin} and L{tests.ejabberd.startEjabberd} are the base of the
tests that run several confirmers behind one hostname.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
from collections.abc import Mapping
from typing import Any, ClassVar

from treq.client import HTTPClient
from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.words.protocols.jabber.error import StreamError
from twisted.words.xish import domish
from twisted.words.xish.xmlstream import STREAM_END_EVENT
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler

from xmppcomp import services, tap
from xmppcomp.component import Component
from xmppcomp.stream.accept import AcceptInitiatingFactory, AcceptInitiatingPolicy

from .webserver import waitExplained
from .ejabberd import (
    COMPONENT,
    EjabberdHarness,
    EjabberdServer,
    configuration,
    controlConfiguration,
    ejabberdAvailable,
    requireEjabberd,
    startEjabberd,
)
from .slixmppuser import UserProcess, startUser

#: Seconds any one wait (a connection, a negotiation, a stanza) may take.
WAIT = 20.0

#: A namespace for the test IQs.
TEST_NS = "urn:xmppcomp:test:ejabberd"


class Echo(XMPPHandler, IQHandlerMixin):
    """
    Answers each message with C{"echo from LABEL: BODY"} and each IQ get in
    L{TEST_NS} with C{<answer>LABEL</answer>}; keeps the messages.

    @ivar label: names the component it serves, in its answers.
    @ivar messages: the messages received, in order (errors left out).
    @ivar queue: the same, to wait for.
    """

    iqHandlers: ClassVar[dict[str, str]] = {
        "/iq[@type='get']/query[@xmlns='%s']" % TEST_NS: "onQuery"
    }

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label
        self.messages: list[domish.Element] = []
        self.queue: defer.DeferredQueue[domish.Element] = defer.DeferredQueue()

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver("/message", self.onMessage)
        self.xmlstream.addObserver("/iq[@type='get']", self.handleRequest)

    def onMessage(self, message: domish.Element) -> None:
        if message.getAttribute("type") == "error":
            return
        self.messages.append(message)
        self.queue.put(message)
        reply = domish.Element((None, "message"))
        reply["from"] = message["to"]
        reply["to"] = message["from"]
        reply["type"] = message.getAttribute("type", "normal")
        reply.addElement("body", content="echo from %s: %s" % (self.label, message.body))
        self.send(reply)

    def onQuery(self, iq: domish.Element) -> domish.Element:
        answer = domish.Element((TEST_NS, "answer"))
        answer.addContent(self.label)
        return answer

    def bodies(self) -> list[str]:
        return [str(message.body) for message in self.messages]


class EjabberdMixin:
    """
    Starts a private ejabberd for each test and offers waits, our
    components and slixmpp users on it; mixed into L{TestCase}s.

    @cvar components: the component hostnames ejabberd declares.
    @cvar users: the accounts it has.
    @cvar balancing: its C{domain_balancing} option.
    @cvar globalRoutes: its component listener's C{global_routes}.
    @ivar server: the running L{EjabberdServer}.
    """

    timeout = 120
    components: tuple[str, ...] = (COMPONENT,)
    users: tuple[str, ...] = ("juliet",)
    balancing: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    globalRoutes = False

    addCleanup: Any
    failureException: Any
    ejabberdHarness: EjabberdHarness

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        requireEjabberd()
        self.server: EjabberdServer = yield startEjabberd(
            self, self.components, self.users, self.balancing, self.globalRoutes
        )

    def wait(self, d: defer.Deferred[Any], what: str) -> defer.Deferred[Any]:
        """
        Wait for C{d} at most L{WAIT} seconds; on timeout fail the test,
        saying what was awaited, with the end of ejabberd's log.
        """
        return waitExplained(self, d, what, WAIT, lambda: self.ejabberdHarness.logTail())

    def user(self, name: str = "juliet", resource: str = "web") -> defer.Deferred[UserProcess]:
        """
        Log the slixmpp user C{name} in on C{resource}; it is available
        (messages to its bare JID reach it) when this fires.
        """
        d: defer.Deferred[UserProcess] = startUser(self, self.server, name, resource)
        return d

    def next(self, user: UserProcess, event: str) -> defer.Deferred[dict[str, Any]]:
        """
        The user's next event called C{event}, within L{WAIT} seconds.
        """
        d = user.next(event)
        d.addTimeout(WAIT, reactor)

        def explain(failure: Failure) -> Failure:
            if failure.check(defer.TimeoutError):
                raise self.failureException(
                    "no %r event within %g s: %s\n%s"
                    % (event, WAIT, user.describe(), self.ejabberdHarness.logTail())
                )
            return failure

        return d.addErrback(explain)

    def component(
        self,
        hostname: str | None = None,
        secret: str | None = None,
        handlers: tuple[XMPPHandler, ...] = (),
        **options: Any,
    ) -> Component:
        """
        Start our L{Component} over XEP-0114 on ejabberd's component port
        for C{hostname} (the first declared one by default) with its
        secret; a cleanup stops it.
        """
        name = hostname or self.server.componentName
        service = Component(
            self.server.componentEndpoint,
            self.server.domain,
            [name],
            secret=secret if secret is not None else self.server.secretOf(name),
            protocol="xep0114",
            reactor=reactor,
            retryPolicy=lambda attempt: 0.2,
            **options,
        )
        for handler in handlers:
            handler.setHandlerParent(service)
        service.startService()
        self.addCleanup(service.stopService)
        return service

    @defer.inlineCallbacks
    def negotiate(self, hostname: str, secret: str) -> Any:
        """
        Open one XEP-0114 stream to ejabberd as C{hostname} with
        C{secret}, with the stream machinery alone (no reconnection); a
        cleanup closes it.

        @return: the stream; its C{authenticator.negotiated} tells the
            outcome.
        """
        policy = AcceptInitiatingPolicy(
            hostname=hostname, secret=secret, negotiationTimeout=WAIT, closeTimeout=5.0
        )
        factory = AcceptInitiatingFactory(policy, reactor)
        ended: defer.Deferred[None] = defer.Deferred()
        factory.addBootstrap(STREAM_END_EVENT, lambda reason: ended.called or ended.callback(None))
        endpoint = TCP4ClientEndpoint(reactor, self.server.host, self.server.componentPort, timeout=5)
        xs = yield self.wait(endpoint.connect(factory), "TCP connection to the component port")

        def close() -> defer.Deferred[None]:
            if xs.transport is not None and xs.transport.connected:
                xs.transport.abortConnection()
            return self.wait(ended, "end of the connection")

        self.addCleanup(close)
        return xs


class ComponentTests(EjabberdMixin, TestCase):
    """
    Our L{Component}, XEP-0114 mode, served by ejabberd, and a slixmpp user.
    """

    @defer.inlineCallbacks
    def test_messagesAndIQ(self) -> Any:
        """
        A user's message reaches the component's handler with the user's
        full JID, and its echo reaches the user; the user's IQ get is
        answered; a message and a ping the component sends reach the user,
        who answers the ping.
        """
        echo = Echo("A")
        service = self.component(handlers=(echo,))
        yield self.wait(service.whenReady(), "component ready")
        user = yield self.user()
        name = self.server.componentName

        user.message(name, "hello component")
        received = yield self.wait(echo.queue.get(), "message at the component")
        self.assertEqual(
            (received["from"], received["to"], str(received.body)),
            (user.jid, name, "hello component"),
        )
        reply = yield self.next(user, "message")
        self.assertEqual((reply["from"], reply["body"]), (name, "echo from A: hello component"))

        user.iq(name, TEST_NS, "q1")
        result = yield self.next(user, "iq_result")
        self.assertEqual(
            (result["tag"], result["type"], result["from"], result["payload"]),
            ("q1", "result", name, "A"),
        )

        notice = domish.Element((None, "message"))
        notice["from"] = name
        notice["to"] = user.jid
        notice.addElement("body", content="from the component")
        yield service.sendOrFail(notice)
        pushed = yield self.next(user, "message")
        self.assertEqual((pushed["from"], pushed["body"]), (name, "from the component"))

        ping = domish.Element((None, "iq"))
        ping["type"] = "get"
        ping["from"] = name
        ping["to"] = user.jid
        ping.addElement(("urn:xmpp:ping", "ping"))
        answer = yield self.wait(service.request(ping), "ping answer")
        self.assertEqual((answer["type"], answer["from"]), ("result", user.jid))

    @defer.inlineCallbacks
    def test_serverAnswersPing(self) -> Any:
        """
        ejabberd (with C{mod_ping}) answers an XEP-0199 ping to its domain,
        the component's keepalive, with a result.
        """
        service = self.component()
        yield self.wait(service.whenReady(), "component ready")
        ping = domish.Element((None, "iq"))
        ping["type"] = "get"
        ping["from"] = self.server.componentName
        ping["to"] = self.server.domain
        ping.addElement(("urn:xmpp:ping", "ping"))
        answer = yield self.wait(service.request(ping), "ping answer")
        self.assertEqual((answer["type"], answer["from"]), ("result", self.server.domain))
        self.assertTrue(service.isConnected(self.server.componentName))

    @defer.inlineCallbacks
    def test_wrongSecret(self) -> Any:
        """
        With the wrong secret ejabberd ends the stream with a
        C{not-authorized} stream error; our component counts it under that
        condition and waits C{fatalRetryDelay} before trying again.
        """
        xs = yield self.negotiate(self.server.componentName, "not the secret")
        failure = yield self.wait(
            self.assertFailure(xs.authenticator.negotiated, StreamError), "refusal"
        )
        self.assertEqual(failure.condition, "not-authorized")

        service = self.component(secret="not the secret either", fatalRetryDelay=300.0)
        yield self.waitForFailure(service, "not-authorized")
        self.assertFalse(service.isConnected())
        self.assertEqual(
            service.metrics.value(
                "xmppcomp_negotiation_failures_total",
                {"side": "initiating", "condition": "not-authorized"},
            ),
            1,
        )

    @defer.inlineCallbacks
    def test_undeclaredHostname(self) -> Any:
        """
        A hostname ejabberd does not declare is refused like a wrong
        secret, with C{not-authorized} (not C{host-unknown}, which Prosody
        sends), and our component reports that condition.
        """
        xs = yield self.negotiate("nobody.example.net", "any secret")
        failure = yield self.wait(
            self.assertFailure(xs.authenticator.negotiated, StreamError), "refusal"
        )
        self.assertEqual(failure.condition, "not-authorized")
        service = self.component("nobody.example.net", secret="any secret")
        yield self.waitForFailure(service, "not-authorized")
        yield self.ejabberdHarness.waitForLog(
            "Domain nobody.example.net is unconfigured for external component"
        )

    @defer.inlineCallbacks
    def test_ownDomain(self) -> Any:
        """
        A component that claims one of ejabberd's own virtual hosts is
        refused with a C{conflict} stream error, before the handshake.
        """
        xs = yield self.negotiate(self.server.domain, "any secret")
        failure = yield self.wait(
            self.assertFailure(xs.authenticator.negotiated, StreamError), "refusal"
        )
        self.assertEqual(failure.condition, "conflict")

    @defer.inlineCallbacks
    def waitForFailure(self, service: Component, condition: str) -> Any:
        """
        Wait until C{service} has counted a failed negotiation with
        C{condition}, looking every 50 ms, at most L{WAIT} seconds.
        """
        labels = {"side": "initiating", "condition": condition}
        deadline = reactor.seconds() + WAIT
        while service.metrics.value("xmppcomp_negotiation_failures_total", labels) < 1:
            if reactor.seconds() > deadline:
                raise self.failureException(
                    "no %s failure counted within %g s\n%s"
                    % (condition, WAIT, self.ejabberdHarness.logTail())
                )
            yield task.deferLater(reactor, 0.05, lambda: None)


class SecondConnectionTests(EjabberdMixin, TestCase):
    """
    Two connections for one hostname: ejabberd accepts both and balances.
    """

    users = ("juliet", "romeo")

    @defer.inlineCallbacks
    def twoComponents(self) -> Any:
        """
        Start components A and B for the same hostname; wait until both
        are connected.
        """
        a, b = Echo("A"), Echo("B")
        first = self.component(handlers=(a,))
        yield self.wait(first.whenReady(), "component A ready")
        second = self.component(handlers=(b,))
        yield self.wait(second.whenReady(), "component B ready")
        return first, second, a, b

    @defer.inlineCallbacks
    def exchange(self, user: UserProcess, count: int, prefix: str) -> Any:
        """
        The user sends C{count} messages to the component hostname, one
        after the other's echo.

        @return: who echoed each, in order (C{"A"} or C{"B"}).
        """
        who = []
        for index in range(count):
            user.message(self.server.componentName, "%s-%d" % (prefix, index))
            reply = yield self.next(user, "message")
            label, _, body = reply["body"][len("echo from ") :].partition(": ")
            self.assertEqual(body, "%s-%d" % (prefix, index))
            self.assertEqual(reply["from"], self.server.componentName)
            who.append(label)
        return who

    @defer.inlineCallbacks
    def test_bothAccepted(self) -> Any:
        """
        A second connection for a hostname that is connected already is
        accepted, without C{conflict}; the first stays up, and stanzas to
        the name go to one or the other, chosen for each stanza: 40
        messages from one user reach both, and every one is answered.
        """
        first, second, a, b = yield self.twoComponents()
        self.assertTrue(first.isConnected() and second.isConnected())
        user = yield self.user()
        who = yield self.exchange(user, 40, "m")
        self.assertEqual(len(a.messages) + len(b.messages), 40)
        self.assertEqual(sorted(a.bodies() + b.bodies()), sorted("m-%d" % i for i in range(40)))
        self.assertGreater(who.count("A"), 0, who)
        self.assertGreater(who.count("B"), 0, who)
        for service in (first, second):
            self.assertEqual(service.metrics.value("xmppcomp_negotiation_failures_total"), 0)

        # The user's IQs are answered by either too; the result of each
        # goes back to the user, whichever connection answered.
        labels = []
        for index in range(20):
            user.iq(self.server.componentName, TEST_NS, "q%d" % index)
            result = yield self.next(user, "iq_result")
            self.assertEqual((result["tag"], result["type"]), ("q%d" % index, "result"))
            labels.append(result["payload"])
        self.assertEqual(set(labels), {"A", "B"})

    @defer.inlineCallbacks
    def test_oneLeaves(self) -> Any:
        """
        When one of the two connections ends, every stanza goes to the
        other.
        """
        first, _, _, _ = yield self.twoComponents()
        user = yield self.user()
        yield first.stopService()
        who = yield self.exchange(user, 10, "after")
        self.assertEqual(who, ["B"] * 10)


class BalancingTests(EjabberdMixin, TestCase):
    """
    ejabberd's C{domain_balancing} (a top-level option, not one of the
    listener): with C{type: bare_source}, the stanzas of one sender (bare
    JID) always go to the same connection. C{component_number} is required
    by 23.01 when the name is listed, and makes that many slots: stanzas
    hashed to a slot without a connection are dropped, with no error to
    the sender.

    With 23.01's hash (C{erlang:phash2}), juliet's bare JID falls on the
    first slot of two and romeo's on the second.
    """

    users = ("juliet", "romeo")
    balancing: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        COMPONENT: {"type": "bare_source", "component_number": 2}
    }

    @defer.inlineCallbacks
    def test_stickyPerSender(self) -> Any:
        """
        With two connections, all of juliet's messages go to one and all
        of romeo's to the other.
        """
        a, b = Echo("A"), Echo("B")
        first = self.component(handlers=(a,))
        yield self.wait(first.whenReady(), "component A ready")
        second = self.component(handlers=(b,))
        yield self.wait(second.whenReady(), "component B ready")
        juliet = yield self.user("juliet")
        romeo = yield self.user("romeo")
        labels: dict[str, set[str]] = {}
        for index in range(10):
            for user in (juliet, romeo):
                user.message(self.server.componentName, "m-%d" % index)
                reply = yield self.next(user, "message")
                labels.setdefault(user.jid or "", set()).add(reply["body"].split(":")[0])
        self.assertEqual(
            labels,
            {juliet.jid: {"echo from A"}, romeo.jid: {"echo from B"}},
        )

    @defer.inlineCallbacks
    def test_beyondComponentNumber(self) -> Any:
        """
        A third connection, beyond C{component_number: 2}, is accepted but
        gets no slot: nothing is routed to it.
        """
        echoes = [Echo("A"), Echo("B"), Echo("C")]
        for echo in echoes:
            service = self.component(handlers=(echo,))
            yield self.wait(service.whenReady(), "component %s ready" % (echo.label,))
        juliet = yield self.user("juliet")
        romeo = yield self.user("romeo")
        for index in range(5):
            for user in (juliet, romeo):
                user.message(self.server.componentName, "m-%d" % index)
                yield self.next(user, "message")
        self.assertEqual([len(echo.messages) for echo in echoes], [5, 5, 0])

    @defer.inlineCallbacks
    def test_emptySlotDrops(self) -> Any:
        """
        With one connection of C{component_number: 2}, juliet's messages
        reach it, and romeo's vanish: no error comes back to him.
        """
        a = Echo("A")
        service = self.component(handlers=(a,))
        yield self.wait(service.whenReady(), "component ready")
        juliet = yield self.user("juliet")
        romeo = yield self.user("romeo")
        romeo.message(self.server.componentName, "lost")
        # Once juliet has romeo's next message, ejabberd has routed his
        # first one too; her own message to the component, and its echo,
        # come after it.
        romeo.message(juliet.jid or "", "marker")
        marker = yield self.next(juliet, "message")
        self.assertEqual(marker["body"], "marker")
        juliet.message(self.server.componentName, "kept")
        reply = yield self.next(juliet, "message")
        self.assertEqual(reply["body"], "echo from A: kept")
        self.assertEqual(a.bodies(), ["kept"])
        self.assertEqual(romeo.all("message"), [])


class BalancingWithoutNumberTests(EjabberdMixin, TestCase):
    """
    ejabberd 23.01 accepts C{domain_balancing} without
    C{component_number} in its configuration, but then fails every
    connection for that name once the handshake is accepted.
    """

    users = ()
    balancing: ClassVar[Mapping[str, Mapping[str, Any]]] = {COMPONENT: {"type": "source"}}

    @defer.inlineCallbacks
    def test_connectionCrashes(self) -> Any:
        """
        The component's handshake is accepted, then the connection's
        process crashes on the missing key, and the component never
        becomes ready.
        """
        service = self.component()
        yield self.ejabberdHarness.waitForLog("{badkey,component_number}", WAIT)
        self.assertFalse(service.isConnected())


class GlobalRoutesTests(EjabberdMixin, TestCase):
    """
    With the listener's C{global_routes: true} (ejabberd's default), a
    connection for any one of the listener's hostnames is a route for all
    of them.
    """

    components = ("a.example.net", "b.example.net")
    globalRoutes = True

    @defer.inlineCallbacks
    def test_otherNameArrives(self) -> Any:
        """
        A message to C{b.example.net} reaches the component connected as
        C{a.example.net} only.
        """
        echo = Echo("A")
        service = self.component("a.example.net", handlers=(echo,))
        yield self.wait(service.whenReady(), "component ready")
        user = yield self.user()
        user.message("b.example.net", "for b")
        received = yield self.wait(echo.queue.get(), "message at the component")
        self.assertEqual((received["to"], str(received.body)), ("b.example.net", "for b"))


def basic(who: str, transactionId: str) -> bytes:
    """
    A Basic C{Authorization} value for XEP-0070 credentials (ASCII only).
    """
    return b"Basic " + base64.b64encode(("%s:%s" % (who, transactionId)).encode("ascii"))


class ConfirmerTests(EjabberdMixin, TestCase):
    """
    The service tree of C{twistd xmppcomp --protocol xep0114} on ejabberd:
    its XEP-0070 confirmer asks a slixmpp user logged in to ejabberd.
    """

    @defer.inlineCallbacks
    def startTree(self, *argv: str) -> Any:
        """
        Build the tree of C{twistd xmppcomp} for ejabberd's component
        (secret in a file), start it, and wait until the component is
        ready and the HTTP listener listens.

        @return: the tree and the listener's base URL.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        secretFile = os.path.join(directory, "comp.secret")
        with open(secretFile, "w") as f:
            f.write(self.server.componentSecret + "\n")
        configFile = os.path.join(directory, "component.toml")
        with open(configFile, "w") as f:
            f.write('[httpauth]\nallowed_hosts = ["127.0.0.1"]\n')
        options = tap.Options()
        options.parseOptions(
            [
                "--protocol",
                "xep0114",
                "--server",
                self.server.componentEndpoint,
                "--server-domain",
                self.server.domain,
                "--hostname",
                self.server.componentName,
                "--secret-file",
                secretFile,
                "--http-listen",
                "tcp:0:interface=127.0.0.1",
                "--config",
                configFile,
                *argv,
            ]
        )
        top = tap.makeService(options)
        self.addCleanup(top.process.stop)
        top.startService()
        self.addCleanup(lambda: top.stopService() if top.running else None)
        component = top.getServiceNamed(services.COMPONENT_SERVICE)
        yield self.wait(component.whenReady(), "component ready")
        listener = top.getServiceNamed(services.HTTPAUTH_SERVICE)
        port = yield self.wait(listener.whenListening(), "HTTP listener")
        pool = HTTPConnectionPool(reactor, persistent=True)
        self.addCleanup(pool.closeCachedConnections)
        self.http = HTTPClient(Agent(reactor, pool=pool))
        return top, "http://127.0.0.1:%d/" % (port.getHost().port,)

    @defer.inlineCallbacks
    def fetch(self, url: str, credentials: tuple[str, str] | None = None) -> Any:
        """
        GET C{url}, with XEP-0070 Basic credentials if given.

        @return: the response and its body.
        """
        headers = Headers()
        if credentials is not None:
            headers.setRawHeaders(b"authorization", [basic(*credentials)])
        response = yield self.wait(self.http.get(url, headers=headers), "answer to GET " + url)
        body = yield self.wait(response.content(), "body of " + url)
        return response, body

    @defer.inlineCallbacks
    def test_confirmations(self) -> Any:
        """
        A full JID is asked with an IQ, a bare JID with a message; the user
        confirms (200) or denies (403) each by its transaction id; the
        transaction id is asked about once, a replay outside the session
        is refused without asking.
        """
        _, url = yield self.startTree()
        user = yield self.user()
        response, body = yield self.fetch(url)
        self.assertEqual(response.code, 401)

        response, body = yield self.fetch(url, (user.jid, "tx-1"))
        self.assertEqual(response.code, 200, body)
        asked = yield self.next(user, "confirm")
        self.assertEqual(
            (asked["form"], asked["id"], asked["method"], asked["url"], asked["from"]),
            ("iq", "tx-1", "GET", url, self.server.componentName),
        )

        response, body = yield self.fetch(url, (self.server.userJID, "tx-2"))
        self.assertEqual(response.code, 200, body)
        asked = yield self.next(user, "confirm")
        self.assertEqual((asked["form"], asked["id"]), ("message", "tx-2"))

        response, body = yield self.fetch(url, (user.jid, "deny-3"))
        self.assertEqual(response.code, 403, body)
        asked = yield self.next(user, "confirm")
        self.assertEqual((asked["form"], asked["id"], asked["answer"]), ("iq", "deny-3", "deny"))

        response, body = yield self.fetch(url, (self.server.userJID, "deny-4"))
        self.assertEqual(response.code, 403, body)
        asked = yield self.next(user, "confirm")
        self.assertEqual((asked["form"], asked["answer"]), ("message", "deny"))

        response, body = yield self.fetch(url, (user.jid, "deny-3"))
        self.assertEqual(response.code, 401, body)
        self.assertIn(b"used already", body)
        self.assertEqual(len(user.all("confirm")), 4)


class HarnessTests(TestCase):
    """
    The harness starts a private ejabberd and stops what it starts.
    """

    timeout = 120

    @defer.inlineCallbacks
    def test_startStop(self) -> Any:
        """
        L{EjabberdHarness.start} makes every account; after
        L{EjabberdHarness.stop} the Erlang VM has exited, the ports refuse
        connections, the private directory is gone and the logs and
        configuration (secrets masked) are kept.
        """
        requireEjabberd()
        keep = os.path.abspath(self.mktemp())
        harness = EjabberdHarness(
            reactor, components=["a.example.net", "b.example.net"], users=["juliet", "romeo"],
            keepLogsIn=keep,
        )
        self.addCleanup(harness.stop)
        server = yield harness.start()
        self.assertEqual(server.componentNames, ("a.example.net", "b.example.net"))
        self.assertTrue(os.path.isdir(server.directory))
        beams = harness.beamPids()
        self.assertEqual(len(beams), 1)
        for user in server.userNames:
            user = yield startUser(self, server, user)
            yield user.quit()
            self.assertEqual(user.exitCode, 0, user.describe())
        yield harness.stop()
        self.assertFalse(os.path.exists(server.directory))
        self.assertFalse(os.path.exists("/proc/%d" % beams[0]))
        for port in (server.c2sPort, server.componentPort, server.distPort):
            endpoint = TCP4ClientEndpoint(reactor, server.host, port, timeout=5)
            yield self.assertFailure(
                endpoint.connect(Factory.forProtocol(Protocol)), ConnectionRefusedError
            )
        with open(os.path.join(keep, "ejabberd.log")) as f:
            self.assertIn("is stopped in the node", f.read())
        with open(os.path.join(keep, "ejabberd.yml")) as f:
            kept = f.read()
        self.assertIn('"a.example.net":', kept)
        for name, secret in server.components:
            self.assertNotIn(secret, kept)
        self.assertIsNotNone(harness.startSeconds)
        self.assertIsNotNone(harness.stopSeconds)

    @defer.inlineCallbacks
    def test_portTaken(self) -> Any:
        """
        When another process holds a picked port, ejabberd exits with
        C{eaddrinuse} and the harness starts it again on fresh ports.
        """
        requireEjabberd()
        harness = EjabberdHarness(reactor, users=["juliet"], keepLogsIn=os.path.abspath(self.mktemp()))
        self.addCleanup(harness.stop)
        taken = harness.server.componentPort
        holder = socket.socket()
        self.addCleanup(holder.close)
        holder.bind((harness.server.host, taken))
        holder.listen(1)
        server = yield harness.start()
        self.assertNotEqual(server.componentPort, taken)
        service = Component(
            server.componentEndpoint,
            server.domain,
            [server.componentName],
            secret=server.componentSecret,
            protocol="xep0114",
            reactor=reactor,
        )
        service.startService()
        self.addCleanup(service.stopService)
        yield service.whenReady().addTimeout(WAIT, reactor)

    def test_missing(self) -> None:
        """
        Without ejabberd the reason names the package and C{.ci/run}.
        """
        if shutil.which("ejabberdctl") is None and not os.path.exists("/usr/sbin/ejabberdctl"):
            reason = ejabberdAvailable()
            assert reason is not None
            self.assertIn("apt-get install -y ejabberd", reason)
            self.assertIn(".ci/run", reason)
        else:
            self.assertIsNone(ejabberdAvailable())


class ConfigurationTests(SynchronousTestCase):
    """
    The private configuration keeps ejabberd on loopback, in its own
    directory, without server-to-server.
    """

    def server(self, balancing: dict[str, dict[str, Any]] | None = None) -> EjabberdServer:
        return EjabberdServer(
            host="127.0.0.1",
            domain="example.net",
            c2sPort=41001,
            componentPort=41002,
            distPort=41003,
            components=(("a.example.net", 's3"cret'), ("b.example.net", "other")),
            users=(("juliet", "pw-juliet"),),
            balancing=balancing or {},
            directory="/tmp/x",
            logFile="/tmp/x/logs/ejabberd.log",
        )

    def test_loopbackOnly(self) -> None:
        """
        Both listeners are on 127.0.0.1 and the chosen ports; there is no
        other listener, and no server-to-server.
        """
        text = configuration(self.server())
        self.assertEqual(text.count("module: "), 2)
        self.assertEqual(text.count('ip: "127.0.0.1"'), 2)
        self.assertIn("port: 41001", text)
        self.assertIn("module: ejabberd_c2s", text)
        self.assertIn("port: 41002", text)
        self.assertIn("module: ejabberd_service", text)
        self.assertIn("s2s_access: none", text)
        self.assertNotIn("/etc/", text)
        self.assertNotIn("/var/", text)

    def test_components(self) -> None:
        """
        Each hostname is declared with its secret, quoted; each connection
        routes its own name only (C{global_routes: false}) unless asked.
        """
        text = configuration(self.server())
        self.assertIn('      "a.example.net":\n        password: "s3\\"cret"\n', text)
        self.assertIn('      "b.example.net":\n        password: "other"\n', text)
        self.assertIn("global_routes: false", text)
        self.assertIn("global_routes: true", configuration(self.server(), globalRoutes=True))
        self.assertIn("mod_admin_extra: {}", text)
        self.assertNotIn("domain_balancing", text)

    def test_balancing(self) -> None:
        """
        C{domain_balancing} is a top-level option, keyed by hostname.
        """
        text = configuration(
            self.server({"a.example.net": {"type": "bare_source", "component_number": 2}})
        )
        self.assertIn(
            'domain_balancing:\n  "a.example.net":\n    type: "bare_source"\n'
            "    component_number: 2\n",
            text,
        )

    def test_control(self) -> None:
        """
        The control file names the private configuration and pid file,
        the distribution port on loopback, the node and its cookie.
        """
        text = controlConfiguration(
            self.server(), "xmppcomp-41003@localhost", "c00kie", "/tmp/x/ejabberd.yml", "/tmp/x/pid"
        )
        for line in [
            "ERLANG_NODE=xmppcomp-41003@localhost",
            'ERL_OPTIONS="-setcookie c00kie -env ERL_CRASH_DUMP_BYTES 0"',
            "ERL_DIST_PORT=41003",
            "INET_DIST_INTERFACE=127.0.0.1",
            "EJABBERD_CONFIG_PATH=/tmp/x/ejabberd.yml",
            "EJABBERD_PID_PATH=/tmp/x/pid",
        ]:
            self.assertIn(line + "\n", text)
        self.assertRaises(
            ValueError,
            controlConfiguration,
            self.server(),
            "node",
            "a cookie; rm -rf /",
            "/tmp/x/ejabberd.yml",
            "/tmp/x/pid",
        )

    def test_secretsNotInRepr(self) -> None:
        """
        The component secrets and the user passwords are not in the repr.
        """
        text = repr(self.server())
        self.assertNotIn("s3", text)
        self.assertNotIn("pw-juliet", text)

    def test_compatibleNames(self) -> None:
        """
        The first component and user are reachable under the names of
        L{tests.prosody.ProsodyServer}.
        """
        server = self.server()
        self.assertEqual(
            (server.componentName, server.componentSecret, server.userJID, server.userPassword),
            ("a.example.net", 's3"cret', "juliet@example.net", "pw-juliet"),
        )
        self.assertEqual(server.secretOf("b.example.net"), "other")
        self.assertEqual(server.componentEndpoint, "tcp:host=127.0.0.1:port=41002")
