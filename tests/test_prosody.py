# -*- test-case-name: tests.test_prosody -*-
"""
Interoperability of L{xmppcomp.stream.accept} with a real Prosody, run on
loopback with a private configuration by L{tests.prosody}.

Our component connects to Prosody's component port (XEP-0114) and a Twisted
XMPP client logs in as a user on Prosody's client port; messages and IQs go
from the client through Prosody to the component and back.

Without the C{prosody} binaries these tests fail, saying what to install
(C{.ci/run} installs the Debian package); they are never skipped.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.words.protocols.jabber.error import StreamError
from twisted.words.protocols.jabber.xmlstream import (
    INIT_FAILED_EVENT,
    IQ,
    STREAM_AUTHD_EVENT,
    toResponse,
)
from twisted.words.xish import domish
from twisted.words.xish.xmlstream import STREAM_END_EVENT

from xmppcomp.ns import NS_COMPONENT_ACCEPT
from xmppcomp.stream.accept import AcceptInitiatingFactory, AcceptInitiatingPolicy
from xmppcomp.stream.initiating import NegotiationResult

from .webserver import waitExplained
from .prosody import (
    ProsodyHarness,
    ProsodyServer,
    clientFactory,
    configuration,
    freePorts,
    requireProsody,
    startProsody,
)

#: Seconds any one wait (connection, negotiation, a stanza) may take.
WAIT = 15.0

#: A namespace for the test IQ.
TEST_NS = "urn:xmppcomp:test:prosody"


class ProsodyMixin:
    """
    Starts a private Prosody for each test and offers waits and connections
    to it; mixed into L{TestCase}s.
    """

    timeout = 120

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        requireProsody()
        self.server: ProsodyServer = yield startProsody(self)

    def wait(self, d: defer.Deferred[Any], what: str) -> defer.Deferred[Any]:
        """
        Wait for C{d} at most L{WAIT} seconds; on timeout fail the test,
        saying what was awaited, with the end of Prosody's log.
        """
        return waitExplained(
            self, d, what, WAIT, lambda: self.prosodyHarness.logTail()  # type: ignore[attr-defined]
        )

    @defer.inlineCallbacks
    def connect(self, factory: Any, port: int) -> Any:
        """
        Connect C{factory} to C{port} on Prosody's address; a cleanup
        closes the connection and waits until it is gone.

        @return: the protocol.
        """
        ended: defer.Deferred[None] = defer.Deferred()
        factory.addBootstrap(
            STREAM_END_EVENT, lambda reason: ended.called or ended.callback(None)
        )
        endpoint = TCP4ClientEndpoint(reactor, self.server.host, port, timeout=5)
        xs = yield self.wait(endpoint.connect(factory), "TCP connection to %d" % port)

        def close() -> defer.Deferred[None]:
            if xs.transport is not None and xs.transport.connected:
                xs.transport.abortConnection()
            return self.wait(ended, "end of the connection")

        self.addCleanup(close)
        return xs

    @defer.inlineCallbacks
    def component(
        self,
        secret: str | None = None,
        hostname: str | None = None,
        onAuthenticated: Callable[[Any], object] | None = None,
        closeTimeout: float = 5.0,
    ) -> Any:
        """
        Connect our component to Prosody's component port.

        @param onAuthenticated: called with the stream at
            L{STREAM_AUTHD_EVENT}, before any stanza can arrive.
        @return: the stream; its C{authenticator.negotiated} tells the
            outcome.
        """
        policy = AcceptInitiatingPolicy(
            hostname=hostname or self.server.componentName,
            secret=secret or self.server.componentSecret,
            negotiationTimeout=WAIT,
            closeTimeout=closeTimeout,
        )
        factory = AcceptInitiatingFactory(policy, reactor)
        if onAuthenticated is not None:
            factory.addBootstrap(STREAM_AUTHD_EVENT, onAuthenticated)
        xs = yield self.connect(factory, self.server.componentPort)
        return xs

    @defer.inlineCallbacks
    def client(self, factory: Any = None) -> Any:
        """
        Log the test user in on Prosody's client port.

        @param factory: the L{clientFactory} of L{server} to connect with
            (one a C{wokkel} C{StreamManager} manages, say); a new one if
            L{None}.
        @return: the client's stream, authenticated and bound.
        """
        if factory is None:
            factory = clientFactory(self.server)
        authenticated: defer.Deferred[Any] = defer.Deferred()
        factory.addBootstrap(STREAM_AUTHD_EVENT, authenticated.callback)
        factory.addBootstrap(INIT_FAILED_EVENT, authenticated.errback)
        yield self.connect(factory, self.server.c2sPort)
        xs = yield self.wait(authenticated, "client login")
        return xs



class ProsodyTests(ProsodyMixin, TestCase):
    """
    Our XEP-0114 component against a real Prosody on 127.0.0.1.
    """

    @defer.inlineCallbacks
    def echoComponent(self) -> Any:
        """
        A component that answers each message with C{"echo: "} and its body,
        and each IQ get in L{TEST_NS} with a result.

        @return: C{(stream, messages)}: the messages it received, in a
            L{defer.DeferredQueue}.
        """
        messages: defer.DeferredQueue[domish.Element] = defer.DeferredQueue()

        def onAuthenticated(xs: Any) -> None:
            def onMessage(message: domish.Element) -> None:
                messages.put(message)
                reply = domish.Element((NS_COMPONENT_ACCEPT, "message"))
                reply["from"] = message["to"]
                reply["to"] = message["from"]
                reply["type"] = message.getAttribute("type", "normal")
                reply.addElement("body", content="echo: %s" % (message.body,))
                xs.send(reply)

            def onIQ(iq: domish.Element) -> None:
                response = toResponse(iq, "result")
                response.addElement((TEST_NS, "answer"), content="42")
                xs.send(response)

            xs.addObserver("/message", onMessage)
            xs.addObserver("/iq[@type='get']/query[@xmlns='%s']" % TEST_NS, onIQ)

        xs = yield self.component(onAuthenticated=onAuthenticated)
        yield self.wait(xs.authenticator.negotiated, "component negotiation")
        return xs, messages

    @defer.inlineCallbacks
    def test_negotiates(self) -> Any:
        """
        Prosody accepts our component's handshake: C{negotiated} fires with
        the component's name and the C{handshake} mechanism.
        """
        xs = yield self.component()
        result = yield self.wait(xs.authenticator.negotiated, "component negotiation")
        self.assertIsInstance(result, NegotiationResult)
        self.assertEqual(result.identity, self.server.componentName)
        self.assertEqual(result.mechanism, "handshake")
        self.assertIsNone(result.tlsVersion)
        self.assertTrue(result.streamId)
        self.assertTrue(xs.negotiated)

    @defer.inlineCallbacks
    def test_closingHandshake(self) -> Any:
        """
        Closing the negotiated stream completes the closing handshake with
        Prosody: it answers our closing tag well before our own close
        timeout, which is longer than this test waits.
        """
        xs = yield self.component(closeTimeout=WAIT * 4)
        yield self.wait(xs.authenticator.negotiated, "component negotiation")
        yield self.wait(xs.closeStream(), "Prosody's closing tag")
        self.assertFalse(xs.transport.connected)
        self.assertFalse(xs.streamEnded.check(StreamError))

    @defer.inlineCallbacks
    def test_messageRoundTrip(self) -> Any:
        """
        A message from a logged-in client to the component reaches it with
        the client's full JID, and the component's reply reaches the
        client.
        """
        component, messages = yield self.echoComponent()
        client = yield self.client()
        clientJID = client.authenticator.jid.full()
        replies: defer.DeferredQueue[domish.Element] = defer.DeferredQueue()
        client.addObserver("/message", replies.put)

        message = domish.Element((None, "message"))
        message["to"] = self.server.componentName
        message["type"] = "chat"
        message.addElement("body", content="hello component")
        client.send(message)

        received = yield self.wait(messages.get(), "message at the component")
        self.assertEqual(received.uri, NS_COMPONENT_ACCEPT)
        self.assertEqual(received["from"], clientJID)
        self.assertEqual(received["to"], self.server.componentName)
        self.assertEqual(str(received.body), "hello component")

        reply = yield self.wait(replies.get(), "reply at the client")
        self.assertEqual(reply["from"], self.server.componentName)
        self.assertEqual(reply["to"], clientJID)
        self.assertEqual(reply.getAttribute("type"), "chat")
        self.assertEqual(str(reply.body), "echo: hello component")

    @defer.inlineCallbacks
    def test_iqRoundTrip(self) -> Any:
        """
        An IQ get from the client to the component gets the component's
        result back through Prosody.
        """
        yield self.echoComponent()
        client = yield self.client()
        iq = IQ(client, "get")
        iq["to"] = self.server.componentName
        iq.addElement((TEST_NS, "query"))
        result = yield self.wait(iq.send(), "IQ result at the client")
        self.assertEqual(result["type"], "result")
        self.assertEqual(result["from"], self.server.componentName)
        (answer,) = result.elements(TEST_NS, "answer")
        self.assertEqual(str(answer), "42")

    @defer.inlineCallbacks
    def test_wrongSecret(self) -> Any:
        """
        With the wrong secret Prosody refuses the handshake: C{negotiated}
        fails with the C{not-authorized} L{StreamError}.
        """
        xs = yield self.component(secret="not the secret")
        failure = yield self.wait(
            self.assertFailure(xs.authenticator.negotiated, StreamError),
            "refusal",
        )
        self.assertEqual(failure.condition, "not-authorized")
        self.assertFalse(xs.negotiated)

    @defer.inlineCallbacks
    def test_unknownHostname(self) -> Any:
        """
        A hostname Prosody has no component for is refused with a
        C{host-unknown} L{StreamError}.
        """
        xs = yield self.component(hostname="nobody.example.test")
        failure = yield self.wait(
            self.assertFailure(xs.authenticator.negotiated, StreamError),
            "refusal",
        )
        self.assertEqual(failure.condition, "host-unknown")

    @defer.inlineCallbacks
    def test_conflict(self) -> Any:
        """
        A second connection for a component that is already connected is
        refused with a C{conflict} L{StreamError}; the first stays up.
        """
        first = yield self.component()
        yield self.wait(first.authenticator.negotiated, "first negotiation")
        second = yield self.component()
        failure = yield self.wait(
            self.assertFailure(second.authenticator.negotiated, StreamError),
            "refusal",
        )
        self.assertEqual(failure.condition, "conflict")
        self.assertTrue(first.transport.connected)


class ConfigurationTests(SynchronousTestCase):
    """
    The private configuration keeps Prosody on loopback, in its own
    directory, without server-to-server.
    """

    def server(self, secret: str = "s3cret") -> ProsodyServer:
        return ProsodyServer(
            host="127.0.0.1",
            domain="example.test",
            c2sPort=41001,
            componentPort=41002,
            componentName="comp.example.test",
            componentSecret=secret,
            userJID="user@example.test",
            userPassword="pw",
            directory="/tmp/x",
            logFile="/tmp/x/prosody.log",
        )

    def configure(self, secret: str = "s3cret") -> str:
        return configuration(
            self.server(secret), "/tmp/x/prosody.pid", "/tmp/x/data", "/tmp/x/certs"
        )

    def test_loopbackOnly(self) -> None:
        """
        Every listener is bound to 127.0.0.1, on the chosen ports only.
        """
        text = self.configure()
        self.assertIn('interfaces = { "127.0.0.1" }', text)
        self.assertIn('c2s_interfaces = { "127.0.0.1" }', text)
        self.assertIn('component_interfaces = { "127.0.0.1" }', text)
        self.assertIn("c2s_ports = { 41001 }", text)
        self.assertIn("component_ports = { 41002 }", text)
        self.assertIn("s2s_ports = {}", text)
        self.assertIn('modules_disabled = { "s2s", "offline" }', text)

    def test_privatePaths(self) -> None:
        """
        Data, pid file, certificates and log are in the private directory;
        nothing points at the system installation.
        """
        text = self.configure()
        for line in [
            'data_path = "/tmp/x/data"',
            'pidfile = "/tmp/x/prosody.pid"',
            'certificates = "/tmp/x/certs"',
            'log = { debug = "/tmp/x/prosody.log" }',
        ]:
            self.assertIn(line, text)
        self.assertNotIn("/etc/prosody", text)
        self.assertNotIn("/var/", text)

    def test_hosts(self) -> None:
        """
        One virtual host with plaintext login for the test client, and the
        component with its secret.
        """
        text = self.configure()
        self.assertIn('VirtualHost "example.test"', text)
        self.assertIn('authentication = "internal_plain"', text)
        self.assertIn("allow_unencrypted_plain_auth = true", text)
        self.assertIn("c2s_require_encryption = false", text)
        self.assertIn('Component "comp.example.test"', text)
        self.assertIn('component_secret = "s3cret"', text)

    def test_quoting(self) -> None:
        """
        Strings are Lua literals: quotes, backslashes and newlines in them
        cannot end the string.
        """
        text = self.configure('a"b\\c\nd')
        self.assertIn('component_secret = "a\\"b\\\\c\\nd"', text)

    def test_secretsNotInRepr(self) -> None:
        """
        The component secret and the user password are not in the repr.
        """
        text = repr(self.server("s3cret-value"))
        self.assertNotIn("s3cret-value", text)
        self.assertNotIn("userPassword='pw'", text)

    def test_freePorts(self) -> None:
        """
        The ports picked are distinct and non-zero.
        """
        ports = freePorts(3)
        self.assertEqual(len(set(ports)), 3)
        self.assertNotIn(0, ports)


class HarnessTests(TestCase):
    """
    The harness stops what it starts.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_stop(self) -> Any:
        """
        After L{ProsodyHarness.stop}, Prosody has exited, its ports refuse
        connections and the harness's own temporary directory is gone.
        """
        requireProsody()
        harness = ProsodyHarness(reactor)
        self.addCleanup(harness.stop)
        server = yield harness.start()
        self.assertTrue(os.path.isdir(server.directory))
        self.assertTrue(os.path.exists(server.logFile))
        yield harness.stop()
        self.assertFalse(os.path.exists(server.directory))
        for port in (server.c2sPort, server.componentPort):
            endpoint = TCP4ClientEndpoint(reactor, server.host, port, timeout=5)
            yield self.assertFailure(
                endpoint.connect(Factory.forProtocol(Protocol)), ConnectionRefusedError
            )
