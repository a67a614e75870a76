# -*- test-case-name: tests.test_stream_accept_initiating -*-
"""
Tests for L{xmppcomp.stream.accept}: the component side of XEP-0114.

The unit tests drive one stream through a L{StringTransport} and a
L{MemoryReactorClock}; the in-memory tests connect it to our own receiving
side (L{xmppcomp.stream.acceptreceiving.AcceptFactory}) through
L{xmppcomp.testing.MemoryConnection}. The tests against a real Prosody are in
L{tests.test_prosody}.
"""

from __future__ import annotations

import hashlib
from typing import Any

from twisted.internet import defer
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.error import StreamError
from twisted.words.protocols.jabber.xmlstream import (
    INIT_FAILED_EVENT,
    STREAM_AUTHD_EVENT,
)
from twisted.words.xish import domish

from xmppcomp.errors import NegotiationError
from xmppcomp.ns import NS_COMPONENT_ACCEPT, NS_STREAMS, NS_XMPP_STREAMS
from xmppcomp.stream.accept import (
    AcceptInitiatingAuthenticator,
    AcceptInitiatingFactory,
    AcceptInitiatingPolicy,
    checkServerHeader,
    negotiateAccept,
)
from xmppcomp.stream.acceptreceiving import AcceptFactory, AcceptPolicy
from xmppcomp.stream.initiating import NegotiationResult
from xmppcomp.stream.negotiating import NegotiatingXmlStream
from xmppcomp.testing import MemoryConnection

from .streamhelpers import PeerReader, read, streamErrorCondition

HOSTNAME = "comp.example.net"
SECRET = "s3cret-shared-with-the-server"
STREAM_ID = "4f2a9c1e-stream"


def sha1Hex(text: str) -> str:
    """
    The lowercase hex SHA-1 of C{text}, computed independently of the code
    under test.
    """
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def serverHeader(
    streamId: str | None = STREAM_ID,
    namespace: str = NS_COMPONENT_ACCEPT,
    prefix: str = "stream",
) -> str:
    """
    The header a XEP-0114 server answers with (as Prosody does: C{from} the
    component, an id, no version).
    """
    idAttribute = "" if streamId is None else " id='%s'" % (streamId,)
    return "<%s:stream xmlns='%s' xmlns:%s='%s' from='%s'%s>" % (
        prefix,
        namespace,
        prefix,
        NS_STREAMS,
        HOSTNAME,
        idAttribute,
    )


def streamError(condition: str) -> str:
    """
    A C{<stream:error/>} with C{condition}.
    """
    return "<stream:error><%s xmlns='%s'/></stream:error>" % (condition, NS_XMPP_STREAMS)


class Harness:
    """
    One component stream on a L{StringTransport}.

    @ivar outcome: what C{negotiated} fired with, once it has.
    @ivar authenticated: the streams L{STREAM_AUTHD_EVENT} was dispatched
        with.
    @ivar initFailed: the failures L{INIT_FAILED_EVENT} was dispatched with.
    """

    def __init__(self, transport: StringTransport | None = None, **policyArgs: Any) -> None:
        policyArgs.setdefault("hostname", HOSTNAME)
        policyArgs.setdefault("secret", SECRET)
        self.policy = AcceptInitiatingPolicy(**policyArgs)
        self.clock = MemoryReactorClock()
        self.factory = AcceptInitiatingFactory(self.policy, reactor=self.clock)
        self.authenticated: list[NegotiatingXmlStream] = []
        self.initFailed: list[Failure] = []
        self.factory.addBootstrap(STREAM_AUTHD_EVENT, self.authenticated.append)
        self.factory.addBootstrap(INIT_FAILED_EVENT, self.initFailed.append)
        self.xs = self.factory.buildProtocol(None)
        self.transport = StringTransport() if transport is None else transport
        self.xs.makeConnection(self.transport)
        self.reader = PeerReader()
        self.outcome: list[Any] = []
        self.xs.authenticator.negotiated.addBoth(self.outcome.append)

    def send(self, data: str) -> list[domish.Element]:
        """
        Feed C{data} from the server; return what the component wrote.
        """
        self.xs.dataReceived(data.encode("utf-8"))
        return read(self.transport, self.reader)

    def handshake(self) -> list[domish.Element]:
        """
        Send the server's header; return what the component wrote.
        """
        read(self.transport, self.reader)
        return self.send(serverHeader())

    def negotiationTimers(self) -> list[Any]:
        """
        The pending timers of the authenticator (not of the stream's close).
        """
        return [
            call
            for call in self.clock.getDelayedCalls()
            if getattr(call.func, "__self__", None) is self.xs.authenticator
        ]

    def failure(self) -> Failure:
        """
        The failure C{negotiated} fired with.
        """
        (outcome,) = self.outcome
        assert isinstance(outcome, Failure), outcome
        return outcome


class PolicyTests(SynchronousTestCase):
    """
    L{AcceptInitiatingPolicy} validates its values and hides the secret.
    """

    def test_defaults(self) -> None:
        """
        The timeouts and limit have defaults.
        """
        policy = AcceptInitiatingPolicy(hostname=HOSTNAME, secret=SECRET)
        self.assertEqual(policy.negotiationTimeout, 30.0)
        self.assertGreater(policy.maxStanzaSize, 0)
        self.assertGreater(policy.closeTimeout, 0)

    def test_secretNotInRepr(self) -> None:
        """
        The secret is not part of the policy's C{repr}.
        """
        text = repr(AcceptInitiatingPolicy(hostname=HOSTNAME, secret=SECRET))
        self.assertIn(HOSTNAME, text)
        self.assertNotIn(SECRET, text)

    def test_badHostname(self) -> None:
        """
        A hostname that is not a domain is refused.
        """
        for bad in ["", "user@comp.example.net", "comp.example.net/r"]:
            self.assertRaises(ValueError, AcceptInitiatingPolicy, hostname=bad, secret=SECRET)

    def test_emptySecret(self) -> None:
        """
        An empty secret is refused.
        """
        self.assertRaises(ValueError, AcceptInitiatingPolicy, hostname=HOSTNAME, secret="")

    def test_nonPositiveLimits(self) -> None:
        """
        Timeouts and the stanza limit must be positive.
        """
        for name in ["negotiationTimeout", "maxStanzaSize", "closeTimeout"]:
            self.assertRaises(
                ValueError,
                AcceptInitiatingPolicy,
                hostname=HOSTNAME,
                secret=SECRET,
                **{name: 0},
            )


class CheckServerHeaderTests(SynchronousTestCase):
    """
    L{checkServerHeader} checks the server's header and returns its id.
    """

    def parse(self, text: str) -> domish.Element:
        roots: list[domish.Element] = []
        stream = domish.elementStream()
        stream.DocumentStartEvent = roots.append
        stream.parse(text.encode("utf-8"))
        (root,) = roots
        return root

    def test_id(self) -> None:
        """
        A good header yields its id.
        """
        self.assertEqual(checkServerHeader(self.parse(serverHeader())), STREAM_ID)

    def test_wrongNamespace(self) -> None:
        """
        A header in another content namespace is C{invalid-namespace}.
        """
        root = self.parse(serverHeader(namespace="jabber:client"))
        e = self.assertRaises(StreamError, checkServerHeader, root)
        self.assertEqual(e.condition, "invalid-namespace")

    def test_wrongPrefix(self) -> None:
        """
        The streams namespace bound to another prefix is
        C{bad-namespace-prefix}.
        """
        root = self.parse(serverHeader(prefix="s"))
        e = self.assertRaises(StreamError, checkServerHeader, root)
        self.assertEqual(e.condition, "bad-namespace-prefix")

    def test_notAStream(self) -> None:
        """
        A root that is not C{<stream:stream>} is C{invalid-namespace}.
        """
        root = self.parse(
            "<stream:foo xmlns='%s' xmlns:stream='%s' id='x'>"
            % (NS_COMPONENT_ACCEPT, NS_STREAMS)
        )
        e = self.assertRaises(StreamError, checkServerHeader, root)
        self.assertEqual(e.condition, "invalid-namespace")

    def test_missingId(self) -> None:
        """
        A header without id (or with an empty one) is a L{NegotiationError}.
        """
        self.assertRaises(NegotiationError, checkServerHeader, self.parse(serverHeader(None)))
        self.assertRaises(NegotiationError, checkServerHeader, self.parse(serverHeader("")))


class HeaderTests(SynchronousTestCase):
    """
    The component opens a C{jabber:component:accept} stream to its hostname.
    """

    def test_header(self) -> None:
        """
        The header is in C{jabber:component:accept}, C{to} the hostname,
        without C{from} or version.
        """
        h = Harness()
        read(h.transport, h.reader)
        (root,) = h.reader.headers
        self.assertEqual((root.uri, root.name), (NS_STREAMS, "stream"))
        self.assertEqual(root.defaultUri, NS_COMPONENT_ACCEPT)
        self.assertEqual(root.getAttribute("to"), HOSTNAME)
        self.assertFalse(root.hasAttribute("from"))
        self.assertFalse(root.hasAttribute("version"))
        self.assertFalse(root.hasAttribute("id"))
        self.assertEqual(h.outcome, [])

    def test_authenticatorType(self) -> None:
        """
        The factory builds a L{NegotiatingXmlStream} with an
        L{AcceptInitiatingAuthenticator} and the policy's limits.
        """
        h = Harness(maxStanzaSize=1234, closeTimeout=3.0)
        self.assertIsInstance(h.xs, NegotiatingXmlStream)
        self.assertIsInstance(h.xs.authenticator, AcceptInitiatingAuthenticator)
        self.assertIs(h.xs.factory, h.factory)
        self.assertEqual((h.xs.maxStanzaSize, h.xs.closeTimeout), (1234, 3.0))

    def test_handshakeSent(self) -> None:
        """
        On the server's header the component sends the hex SHA-1 of the
        stream id followed by the secret.
        """
        h = Harness()
        (handshake,) = h.handshake()
        self.assertEqual((handshake.uri, handshake.name), (NS_COMPONENT_ACCEPT, "handshake"))
        self.assertEqual(str(handshake), sha1Hex(STREAM_ID + SECRET))
        self.assertEqual(h.xs.sid, STREAM_ID)
        self.assertEqual(h.outcome, [])
        self.assertFalse(h.xs.negotiated)

    def test_badNamespace(self) -> None:
        """
        A server header in the wrong namespace fails negotiation with a
        L{NegotiationError}, sends C{invalid-namespace} and no handshake.
        """
        h = Harness()
        read(h.transport, h.reader)
        elements = h.send(serverHeader(namespace="jabber:server"))
        self.assertEqual([streamErrorCondition(e) for e in elements], ["invalid-namespace"])
        h.failure().trap(NegotiationError)
        self.assertIn("invalid-namespace", h.failure().getErrorMessage())
        self.assertTrue(h.reader.ended)
        self.assertEqual(len(h.initFailed), 1)

    def test_missingIdThenStreamError(self) -> None:
        """
        A server refusing the hostname may send a header without id, then
        the stream error (Prosody does for C{host-unknown}): negotiation
        fails with that L{StreamError}, and no handshake is sent.
        """
        h = Harness()
        read(h.transport, h.reader)
        self.assertEqual(h.send(serverHeader(None)), [])
        self.assertEqual(h.outcome, [])
        self.assertEqual(h.send(streamError("host-unknown")), [])
        self.assertEqual(h.failure().value.condition, "host-unknown")
        self.assertTrue(h.reader.ended)
        self.assertEqual(h.negotiationTimers(), [])

    def test_missingIdThenNothing(self) -> None:
        """
        A header without id and no stream error within C{closeTimeout}
        fails negotiation with a L{NegotiationError}; the component closes
        without a handshake.
        """
        h = Harness(closeTimeout=2.0)
        read(h.transport, h.reader)
        self.assertEqual(h.send(serverHeader(None)), [])
        h.clock.advance(1.9)
        self.assertEqual(h.outcome, [])
        h.clock.advance(0.1)
        h.failure().trap(NegotiationError)
        self.assertIn("no id", h.failure().getErrorMessage())
        self.assertEqual(read(h.transport, h.reader), [])
        self.assertTrue(h.reader.ended)
        self.assertEqual(h.authenticated, [])

    def test_missingIdThenClosed(self) -> None:
        """
        A header without id followed by the end of the connection fails
        negotiation with a L{NegotiationError} naming the missing id.
        """
        h = Harness()
        read(h.transport, h.reader)
        h.send(serverHeader(None))
        h.xs.connectionLost(Failure(ConnectionDone()))
        h.failure().trap(NegotiationError)
        self.assertIn("no id", h.failure().getErrorMessage())
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_missingIdThenElement(self) -> None:
        """
        A header without id followed by any other element fails
        negotiation at once with a L{NegotiationError}.
        """
        h = Harness()
        read(h.transport, h.reader)
        h.send(serverHeader(None))
        self.assertEqual(h.send("<handshake/>"), [])
        h.failure().trap(NegotiationError)
        self.assertFalse(h.xs.negotiated)
        self.assertTrue(h.reader.ended)


class AcceptedTests(SynchronousTestCase):
    """
    The server's C{<handshake/>} completes negotiation.
    """

    def test_accepted(self) -> None:
        """
        C{negotiated} fires with a L{NegotiationResult}: the hostname, the
        C{handshake} mechanism, no TLS, the stream id and the time taken;
        the stream is marked negotiated and L{STREAM_AUTHD_EVENT} is
        dispatched once.
        """
        h = Harness()
        h.handshake()
        h.clock.advance(0.25)
        self.assertEqual(h.send("<handshake/>"), [])
        self.assertEqual(
            h.outcome,
            [
                NegotiationResult(
                    identity=HOSTNAME,
                    mechanism="handshake",
                    tlsVersion=None,
                    streamId=STREAM_ID,
                    elapsed=0.25,
                )
            ],
        )
        self.assertTrue(h.xs.negotiated)
        self.assertEqual(h.authenticated, [h.xs])
        self.assertEqual(h.initFailed, [])
        self.assertEqual(h.xs.thisEntity.full(), HOSTNAME)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_stanzasAfterwards(self) -> None:
        """
        After negotiation, stanzas reach the stream's observers and the
        component can send.
        """
        h = Harness()
        h.handshake()
        h.send("<handshake/>")
        received: list[domish.Element] = []
        h.xs.addObserver("/message", received.append)
        h.send("<message from='user@example.net' to='%s'><body>hi</body></message>" % HOSTNAME)
        self.assertEqual([str(m.body) for m in received], ["hi"])
        reply = domish.Element((NS_COMPONENT_ACCEPT, "message"))
        reply["to"] = "user@example.net"
        reply.addElement("body", content="hello")
        h.xs.send(reply)
        (sent,) = read(h.transport, h.reader)
        self.assertEqual(str(sent.body), "hello")

    def test_laterLossIgnored(self) -> None:
        """
        Losing the connection after negotiation does not touch C{negotiated}
        again.
        """
        h = Harness()
        h.handshake()
        h.send("<handshake/>")
        h.xs.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(len(h.outcome), 1)
        self.assertIsInstance(h.outcome[0], NegotiationResult)


class RefusedTests(SynchronousTestCase):
    """
    A stream error, a timeout, a lost connection or an unexpected element
    fails negotiation.
    """

    def test_streamErrors(self) -> None:
        """
        A stream error from the server (C{not-authorized} for a wrong
        secret, C{conflict}, C{host-unknown}) fails C{negotiated} with that
        L{StreamError}; L{STREAM_AUTHD_EVENT} is not dispatched, and the
        component closes its side.
        """
        for condition in ["not-authorized", "conflict", "host-unknown"]:
            h = Harness()
            h.handshake()
            h.send(streamError(condition))
            self.assertEqual(h.failure().trap(StreamError), StreamError)
            self.assertEqual(h.failure().value.condition, condition)
            self.assertFalse(h.xs.negotiated)
            self.assertEqual(h.authenticated, [])
            self.assertEqual(len(h.initFailed), 1)
            self.assertTrue(h.reader.ended)
            self.assertTrue(h.transport.disconnecting)

    def test_streamErrorRightAfterHeader(self) -> None:
        """
        A server that refuses the hostname sends its header and the error
        together (C{host-unknown}); the failure is that L{StreamError}.
        """
        h = Harness()
        read(h.transport, h.reader)
        h.send(serverHeader() + streamError("host-unknown"))
        self.assertEqual(h.failure().value.condition, "host-unknown")

    def test_closedByServer(self) -> None:
        """
        The server closing its stream before the handshake is accepted fails
        C{negotiated} with the connection loss.
        """
        h = Harness()
        h.handshake()
        h.send("</stream:stream>")
        self.assertTrue(h.reader.ended)
        self.assertTrue(h.transport.disconnecting)
        h.xs.connectionLost(Failure(ConnectionDone()))
        h.failure().trap(ConnectionDone)

    def test_connectionLost(self) -> None:
        """
        A connection lost before the handshake is accepted fails
        C{negotiated} with the reason, and cancels the timeout.
        """
        h = Harness()
        h.handshake()
        h.xs.connectionLost(Failure(ConnectionLost("reset")))
        h.failure().trap(ConnectionLost)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_timeout(self) -> None:
        """
        No C{<handshake/>} within C{negotiationTimeout} fails negotiation
        with a L{NegotiationError} and closes the stream.
        """
        h = Harness(negotiationTimeout=5.0)
        h.handshake()
        h.clock.advance(4.9)
        self.assertEqual(h.outcome, [])
        h.clock.advance(0.2)
        h.failure().trap(NegotiationError)
        self.assertIn("5 seconds", h.failure().getErrorMessage())
        read(h.transport, h.reader)
        self.assertTrue(h.reader.ended)

    def test_timeoutWithoutHeader(self) -> None:
        """
        A server that never answers the header also times out.
        """
        h = Harness(negotiationTimeout=2.0)
        h.clock.advance(2.0)
        h.failure().trap(NegotiationError)

    def test_unexpectedElement(self) -> None:
        """
        A stanza before the handshake is accepted fails negotiation with a
        L{NegotiationError} and an C{unsupported-stanza-type} stream error;
        it does not reach observers.
        """
        h = Harness()
        h.handshake()
        received: list[domish.Element] = []
        h.xs.addObserver("/message", received.append)
        elements = h.send("<message to='%s'><body>early</body></message>" % HOSTNAME)
        self.assertEqual(
            [streamErrorCondition(e) for e in elements], ["unsupported-stanza-type"]
        )
        h.failure().trap(NegotiationError)
        self.assertIn("message", h.failure().getErrorMessage())
        self.assertEqual(received, [])
        self.assertEqual(len(h.initFailed), 1)


class _Address:
    """
    A stand-in peer address.
    """

    def __str__(self) -> str:
        return "IPv4Address(TCP, '192.0.2.5', 5347)"


class LoggingTests(SynchronousTestCase):
    """
    Outcomes are logged with the hostname and the server; the secret and
    the digest never are.
    """

    def logged(self, reply: str) -> list[str]:
        with capturedLogs() as events:
            h = Harness(StringTransport(peerAddress=_Address()))  # type: ignore[arg-type]
            h.handshake()
            h.send(reply)
        texts = [formatEvent(e) for e in events]
        raw = repr(list(events)) + "\n".join(texts)
        self.assertNotIn(SECRET, raw)
        self.assertNotIn(sha1Hex(STREAM_ID + SECRET), raw)
        return texts

    def test_accepted(self) -> None:
        """
        Acceptance is logged with the hostname and the server address.
        """
        (line,) = [t for t in self.logged("<handshake/>") if "accepted" in t]
        self.assertIn(HOSTNAME, line)
        self.assertIn("192.0.2.5", line)

    def test_refused(self) -> None:
        """
        A refusal is logged with the hostname and the condition.
        """
        texts = self.logged(streamError("not-authorized"))
        (line,) = [t for t in texts if "not accepted" in t]
        self.assertIn(HOSTNAME, line)
        self.assertIn("not-authorized", line)


class FakeEndpoint:
    """
    An endpoint that connects a factory's protocol to a L{StringTransport}.
    """

    def __init__(self) -> None:
        self.transport = StringTransport()
        self.protocol: Any = None

    def connect(self, factory: Any) -> defer.Deferred[Any]:
        self.protocol = factory.buildProtocol(None)
        self.protocol.makeConnection(self.transport)
        return defer.succeed(self.protocol)


class NegotiateAcceptTests(SynchronousTestCase):
    """
    L{negotiateAccept} connects and waits for the negotiation.
    """

    def test_success(self) -> None:
        """
        It fires with the stream and the result once the server accepted.
        """
        endpoint = FakeEndpoint()
        clock = MemoryReactorClock()
        d = negotiateAccept(
            endpoint, AcceptInitiatingPolicy(hostname=HOSTNAME, secret=SECRET), clock
        )
        self.assertNoResult(d)
        endpoint.protocol.dataReceived(serverHeader().encode() + b"<handshake/>")
        xs, result = self.successResultOf(d)
        self.assertIs(xs, endpoint.protocol)
        self.assertEqual(result.identity, HOSTNAME)

    def test_failure(self) -> None:
        """
        It fails with the server's stream error.
        """
        endpoint = FakeEndpoint()
        d = negotiateAccept(
            endpoint,
            AcceptInitiatingPolicy(hostname=HOSTNAME, secret=SECRET),
            MemoryReactorClock(),
        )
        endpoint.protocol.dataReceived(
            (serverHeader() + streamError("conflict")).encode()
        )
        self.assertEqual(self.failureResultOf(d, StreamError).value.condition, "conflict")


def pair(
    secrets: dict[str, str], hostname: str = HOSTNAME, secret: str = SECRET
) -> tuple[NegotiatingXmlStream, NegotiatingXmlStream, MemoryConnection]:
    """
    Connect our receiving side (knowing C{secrets}) and a component (as
    C{hostname} with C{secret}) in memory.

    @return: the server stream, the component stream, and the connection.
    """
    clock = MemoryReactorClock()
    serverFactory = AcceptFactory(AcceptPolicy(secrets=secrets.get), reactor=clock)
    clientFactory = AcceptInitiatingFactory(
        AcceptInitiatingPolicy(hostname=hostname, secret=secret), reactor=clock
    )
    server = serverFactory.buildProtocol(None)
    client = clientFactory.buildProtocol(None)
    connection = MemoryConnection(client, server)
    connection.flush()
    return server, client, connection


class InMemoryTests(SynchronousTestCase):
    """
    The component negotiates with our own XEP-0114 receiving side.
    """

    def test_success(self) -> None:
        """
        Both ends complete, agree on the stream id, and stanzas flow both
        ways.
        """
        server, client, connection = pair({HOSTNAME: SECRET})
        result = self.successResultOf(client.authenticator.negotiated)
        self.assertEqual(result.identity, HOSTNAME)
        self.assertEqual(result.streamId, server.sid)
        self.assertTrue(server.negotiated and client.negotiated)
        self.assertEqual(server.authenticator.hostname, HOSTNAME)

        toComponent: list[domish.Element] = []
        toServer: list[domish.Element] = []
        client.addObserver("/message", toComponent.append)
        server.addObserver("/message", toServer.append)
        message = domish.Element((NS_COMPONENT_ACCEPT, "message"))
        message["from"] = "user@example.net/r"
        message["to"] = HOSTNAME
        message.addElement("body", content="ping")
        server.send(message)
        connection.flush()
        (received,) = toComponent
        reply = domish.Element((NS_COMPONENT_ACCEPT, "message"))
        reply["from"] = HOSTNAME
        reply["to"] = received["from"]
        reply.addElement("body", content="pong")
        client.send(reply)
        connection.flush()
        self.assertEqual([str(m.body) for m in toServer], ["pong"])
        self.assertEqual(toServer[0]["to"], "user@example.net/r")

    def test_wrongSecret(self) -> None:
        """
        A wrong secret is refused with C{not-authorized}, on both ends.
        """
        server, client, connection = pair({HOSTNAME: SECRET}, secret="not the secret")
        failure = self.failureResultOf(client.authenticator.negotiated, StreamError)
        self.assertEqual(failure.value.condition, "not-authorized")
        self.assertFalse(server.negotiated or client.negotiated)
        self.assertIsNone(server.authenticator.hostname)

    def test_unknownHost(self) -> None:
        """
        A hostname the server does not know is refused with
        C{host-unknown}.
        """
        server, client, connection = pair({"other.example.net": SECRET})
        failure = self.failureResultOf(client.authenticator.negotiated, StreamError)
        self.assertEqual(failure.value.condition, "host-unknown")
        self.assertFalse(client.negotiated)
