# -*- test-case-name: tests.test_router_streamend -*-
"""
A session's names end with its stream, not with its TCP connection.

L{StreamEndTests}: the router's listeners over real loopback TCP
(XEP-0225 with real TLS, and XEP-0114), driven by raw peers that write
bytes and read what comes back. Each ending peer ends its stream (a stream
error either way, or a closing tag) and then keeps its TCP connection
open, saying nothing more, as a hung or careless peer does; the router's
C{close_timeout} is an hour there, so nothing ends by a timer.

The other tests drive the listeners' streams (L{ListeningXmlStream}) and
L{Router.end<xmppcomp.router.service.Router.end>} in memory.
"""

from __future__ import annotations

import base64
import os
import re
from typing import Any, Callable

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.words.protocols.jabber.error import StreamError
from twisted.words.xish import domish

from xmppcomp.config import RouterLimits, SecretRef
from xmppcomp.stream.acceptreceiving import AcceptFactory, AcceptPolicy
from xmppcomp.stream.handshake import handshakeDigest
from xmppcomp.stream.receiving import STREAM_CLOSED_EVENT, ListeningXmlStream

from .test_router_e2e import CA, DOMAIN, SECRETS, startRouter
from .test_router_fastpath import SECRET, AcceptSession
from .test_router_service import RouterHarness, _condition, message

#: XEP-0114 hostnames (handshake); the XEP-0225 identities (SASL) are
#: test_router_e2e's SECRETS.
ACCEPT_SECRETS = {
    "old.example.net": "old's long secret",
    "other.example.net": "other's long secret",
}
STREAMS = "http://etherx.jabber.org/streams"
#: Longer than any test: a stream that ends must not wait for it.
CLOSE_TIMEOUT = 3600.0
#: XEP-0114 names of the in-memory tests.
A = "a.accept.example.net"
B = "b.accept.example.net"


class RawPeer(Protocol):
    """
    A peer that writes the bytes it is given and keeps everything it
    reads, for tests of what is on the wire.

    @ivar received: every byte read so far.
    @ivar lost: fires when the connection is lost.
    """

    def __init__(self) -> None:
        self.received = bytearray()
        self._consumed = 0
        self._waiting: tuple[re.Pattern[bytes], defer.Deferred[bytes]] | None = None
        self.lost: defer.Deferred[None] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        self._match()

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:
        if self._waiting is not None:
            pattern, d = self._waiting
            self._waiting = None
            d.errback(AssertionError("connection lost before %r arrived; got %r" % (pattern.pattern, self.unread())))
        self.lost.callback(None)

    def write(self, data: bytes) -> None:
        """
        Write C{data} as given.
        """
        assert self.transport is not None
        self.transport.write(data)

    def unread(self) -> bytes:
        """
        What arrived after the last match.
        """
        return bytes(self.received[self._consumed :])

    def expect(self, pattern: bytes) -> defer.Deferred[bytes]:
        """
        Wait for C{pattern} (a regular expression) in what arrives after the
        last match.

        @return: fires with the bytes from the last match through this one.
        """
        assert self._waiting is None
        d: defer.Deferred[bytes] = defer.Deferred()
        self._waiting = (re.compile(pattern, re.S), d)
        self._match()
        return d

    def _match(self) -> None:
        if self._waiting is None:
            return
        pattern, d = self._waiting
        found = pattern.search(self.received, self._consumed)
        if found is None:
            return
        self._waiting = None
        got = bytes(self.received[self._consumed : found.end()])
        self._consumed = found.end()
        d.callback(got)


def streamHeader(namespace: str, to: str, sender: str | None = None) -> bytes:
    fromAttr = " from='%s'" % (sender,) if sender else ""
    version = " version='1.0'" if namespace == "jabber:client" else ""
    return (
        "<stream:stream xmlns='%s' xmlns:stream='%s' to='%s'%s%s>" % (namespace, STREAMS, to, fromAttr, version)
    ).encode()


#: A stream error or the answer to the IQ with id C{sync}.
UNTIL_SYNC = rb"<stream:error>.*?</stream:error>|<iq [^>]*id='sync'[^>]*(?:/>|>.*?</iq>)"


class LoopbackRouter:
    """
    A mixin for L{TestCase}s: a router service listening on loopback
    (XEP-0225 with TLS and SCRAM or PLAIN, XEP-0114), and raw peers for it.

    @cvar limits: the router's limits; C{close_timeout} an hour by default.
    """

    limits = RouterLimits(closeTimeout=CLOSE_TIMEOUT)

    addCleanup: Callable[..., None]
    mktemp: Callable[[], str]

    def setUp(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        acceptSecrets = {}
        for hostname, secret in ACCEPT_SECRETS.items():
            path = os.path.join(directory, hostname + ".secret")
            with open(path, "w") as f:
                f.write(secret + "\n")
            acceptSecrets[hostname] = SecretRef(file=path)
        self.service = startRouter(
            self,
            directory,
            acceptListen=("tcp:0:interface=127.0.0.1",),
            acceptSecrets=acceptSecrets,
            limits=self.limits,
        )
        self.xep0225Port, self.xep0114Port = (port.getHost().port for port in self.service.ports)
        self.peers: list[RawPeer] = []
        # (Cleanups run last first: the peers go before the router, stopped
        # by startRouter's cleanup, waits for their connections to close.)
        self.addCleanup(self.closePeers)

    def closePeers(self) -> defer.Deferred[Any]:
        for peer in self.peers:
            if peer.transport is not None and peer.transport.connected:  # type: ignore[attr-defined]
                peer.transport.abortConnection()  # type: ignore[attr-defined]
        return defer.gatherResults([peer.lost for peer in self.peers])

    @defer.inlineCallbacks
    def connect(self, port: int) -> Any:
        peer = yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), RawPeer())
        self.peers.append(peer)
        return peer

    @defer.inlineCallbacks
    def xep0225(self, identity: str, hostname: str) -> Any:
        """
        A raw XEP-0225 peer: STARTTLS (checking the router's certificate),
        SASL PLAIN as C{identity}, then a bind of C{hostname}.

        @return: the peer and the bytes of the bind's answer.
        """
        peer = yield self.connect(self.xep0225Port)
        peer.write(streamHeader("jabber:client", DOMAIN, identity))
        yield peer.expect(rb"</stream:features>")
        peer.write(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        yield peer.expect(rb"<proceed[^>]*/>")
        peer.transport.startTLS(optionsForClientTLS(DOMAIN, trustRoot=CA.certificate))
        peer.write(streamHeader("jabber:client", DOMAIN, identity))
        yield peer.expect(rb"</stream:features>")
        plain = base64.b64encode(b"\0" + identity.encode() + b"\0" + SECRETS[identity].encode())
        peer.write(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + plain + b"</auth>")
        yield peer.expect(rb"<success[^>]*(?:/>|>.*?</success>)")
        peer.write(streamHeader("jabber:client", DOMAIN, identity))
        yield peer.expect(rb"</stream:features>")
        answer = yield self.bind(peer, hostname)
        return peer, answer

    @defer.inlineCallbacks
    def bind(self, peer: RawPeer, hostname: str) -> Any:
        """
        Bind C{hostname} on a negotiated raw XEP-0225 peer.

        @return: the bytes of the answer (a result or an error).
        """
        peer.write(
            b"<iq type='set' id='bind-%s'><bind xmlns='urn:xmpp:component:0'><hostname>%s</hostname></bind></iq>"
            % (hostname.encode(), hostname.encode())
        )
        answer = yield peer.expect(rb"<iq [^>]*id='bind-%s'[^>]*(?:/>|>.*?</iq>)" % (re.escape(hostname.encode()),))
        return answer

    @defer.inlineCallbacks
    def xep0114(self, hostname: str) -> Any:
        """
        A raw XEP-0114 peer that completed the handshake for C{hostname}.

        @return: the peer, and what the router said after the handshake up
            to the answer of a ping (or a stream error).
        """
        peer = yield self.connect(self.xep0114Port)
        peer.write(streamHeader("jabber:component:accept", hostname))
        header = yield peer.expect(rb"<stream:stream[^>]*>")
        streamId = re.search(rb"id='([^']+)'", header)
        assert streamId is not None, header
        digest = handshakeDigest(streamId.group(1).decode(), ACCEPT_SECRETS[hostname])
        peer.write(b"<handshake>%s</handshake>" % (digest.encode(),))
        yield peer.expect(rb"<handshake\s*/>|<stream:error>.*?</stream:error>")
        answer = yield self.sync(peer, hostname)
        return peer, answer

    def sync(self, peer: RawPeer, sender: str) -> defer.Deferred[bytes]:
        """
        Ping the router from C{sender}: what the router wrote to C{peer}
        before the answer to the ping came before it, as the router
        writes to a stream in order.

        @return: fires with everything read up to that answer (or to a
            stream error).
        """
        peer.write(
            b"<iq type='get' id='sync' from='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
            % (sender.encode(), DOMAIN.encode())
        )
        return peer.expect(UNTIL_SYNC)

    def routerWroteFooter(self, hostname: str) -> defer.Deferred[None]:
        """
        Fire once the router has handled the read in which the stream of
        the session that bound C{hostname} ended: when the router's closing
        tag goes out on it, plus one reactor turn, whatever the router did
        with the session's names. For peers that stop reading, so cannot
        tell from what they read.
        """
        router = self.service.router
        assert router is not None
        (xs,) = [session.xmlstream for session in router.sessions.values() if hostname in session.names]
        d: defer.Deferred[None] = defer.Deferred()
        previous = xs.rawDataOutFn

        def written(data: bytes) -> None:
            if previous is not None:
                previous(data)
            if b"</stream:stream>" in data and not d.called:
                reactor.callLater(0, d.callback, None)

        xs.rawDataOutFn = written
        return d



class StreamEndTests(LoopbackRouter, TestCase):
    """
    The names of a session are released the moment its stream ends, on the
    XEP-0225 and the XEP-0114 listener alike.
    """

    @defer.inlineCallbacks
    def checkReleased(self, hostname: str, kind: str, sender: RawPeer | None = None) -> Any:
        """
        The stream of the session that bound C{hostname} has ended and its
        TCP connection is still open: a message and an IQ to C{hostname}
        from C{sender} (a new session of C{beta.example.net} if C{None})
        bounce with C{service-unavailable}, and a new session binds it.
        """
        if sender is None:
            sender, _ = yield self.xep0225("beta.example.net", "beta.example.net")
        sender.write(
            b"<message from='beta.example.net' to='x@%s' id='m1'><body>are you there?</body></message>"
            b"<iq type='get' from='beta.example.net' to='%s' id='q1'><query xmlns='jabber:iq:version'/></iq>"
            % (hostname.encode(), hostname.encode())
        )
        said = yield self.sync(sender, "beta.example.net")
        self.assertRegex(
            said,
            rb"<message [^>]*type='error'[^>]*>.*<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>.*</message>",
        )
        self.assertIn(b"id='m1'", said)
        self.assertRegex(said, rb"<iq [^>]*id='q1'[^>]*>.*<service-unavailable ")
        self.assertRegex(said, rb"<iq [^>]*type='error'[^>]*id='q1'|<iq [^>]*id='q1'[^>]*type='error'")
        if kind == "xep0114":
            _, answer = yield self.xep0114(hostname)
            self.assertNotIn(b"stream:error", answer)
            self.assertRegex(answer, rb"type='result'")
        else:
            _, answer = yield self.xep0225("alpha.example.net", hostname)
            self.assertRegex(answer, rb"type='result'")
            self.assertNotIn(b"conflict", answer)

    @defer.inlineCallbacks
    def test_xep0225StreamErrorFromRouter(self) -> Any:
        """
        The router ends an XEP-0225 stream with a stream error
        (C{invalid-from}); the peer keeps its TCP connection open and never
        closes its stream. The session's names are released at once.
        """
        peer, answer = yield self.xep0225("alpha.example.net", "alpha.example.net")
        self.assertRegex(answer, rb"type='result'")
        peer.write(b"<message from='beta.example.net' to='beta.example.net'/>")
        yield peer.expect(rb"<invalid-from .*</stream:stream>")
        yield self.checkReleased("alpha.example.net", "xep0225")
        self.assertTrue(peer.transport.connected)

    @defer.inlineCallbacks
    def test_xep0225ClosingTagFromPeer(self) -> Any:
        """
        An XEP-0225 peer sends its closing tag, then neither reads nor
        closes TLS or TCP. The session's names are released at once.
        """
        peer, _ = yield self.xep0225("alpha.example.net", "alpha.example.net")
        ended = self.routerWroteFooter("alpha.example.net")
        peer.write(b"</stream:stream>")
        peer.transport.pauseProducing()
        yield ended
        yield self.checkReleased("alpha.example.net", "xep0225")
        self.assertTrue(peer.transport.connected)

    @defer.inlineCallbacks
    def test_xep0225StreamErrorFromPeer(self) -> Any:
        """
        An XEP-0225 peer sends a stream error, then neither reads nor
        closes. The session's names are released at once.
        """
        peer, _ = yield self.xep0225("alpha.example.net", "alpha.example.net")
        ended = self.routerWroteFooter("alpha.example.net")
        peer.write(
            b"<stream:error><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
        )
        peer.transport.pauseProducing()
        yield ended
        yield self.checkReleased("alpha.example.net", "xep0225")
        self.assertTrue(peer.transport.connected)

    @defer.inlineCallbacks
    def test_xep0114StreamErrorFromRouter(self) -> Any:
        """
        The router ends an XEP-0114 stream with a stream error
        (C{invalid-from}); the peer keeps TCP open and never closes its
        stream. Its hostname is released at once: stanzas to it bounce and
        a new XEP-0114 session for it is accepted.
        """
        peer, answer = yield self.xep0114("old.example.net")
        self.assertNotIn(b"stream:error", answer)
        peer.write(b"<message from='other.example.net' to='beta.example.net'/>")
        yield peer.expect(rb"<invalid-from .*</stream:stream>")
        yield self.checkReleased("old.example.net", "xep0114")
        self.assertTrue(peer.transport.connected)

    @defer.inlineCallbacks
    def test_xep0114ClosingTagFromPeer(self) -> Any:
        """
        An XEP-0114 peer that stopped reading sends its closing tag: the
        router cannot even write its own closing tag out, yet the name is
        released at once.
        """
        peer, _ = yield self.xep0114("old.example.net")
        peer.transport.pauseProducing()
        # Fill the router's buffers towards the peer, the kernel's first,
        # until the router holds max_buffered_bytes for it and bounces: its
        # closing tag then waits behind what the peer does not read.
        sender, _ = yield self.xep0225("beta.example.net", "beta.example.net")
        body = b"x" * 200000
        for n in range(500):
            sender.write(
                b"<message from='beta.example.net' to='old.example.net' id='fill%d'><body>%s</body></message>"
                % (n, body)
            )
            said = yield self.sync(sender, "beta.example.net")
            if b"<resource-constraint " in said:
                break
        else:
            self.fail("the router never stopped writing to a peer that does not read")
        ended = self.routerWroteFooter("old.example.net")
        peer.write(b"</stream:stream>")
        yield ended
        yield self.checkReleased("old.example.net", "xep0114", sender)


class ListeningStreamTests(SynchronousTestCase):
    """
    L{ListeningXmlStream} dispatches L{STREAM_CLOSED_EVENT} once, the
    moment its stream ends, whichever way, while the connection is still
    open.
    """

    def setUp(self) -> None:
        self.harness = RouterHarness(self)
        self.accept = AcceptFactory(AcceptPolicy(secrets={A: SECRET}.get), reactor=self.harness.clock)

    def stream(self) -> tuple[ListeningXmlStream, list[object]]:
        """
        A negotiated XEP-0114 stream over a StringTransport, and the
        reasons its L{STREAM_CLOSED_EVENT}s carried.
        """
        session = AcceptSession(self.harness, self.accept, A)
        xs = session.xs
        self.assertIsInstance(xs, ListeningXmlStream)
        reasons: list[object] = []
        xs.addObserver(STREAM_CLOSED_EVENT, reasons.append)
        return xs, reasons

    def test_eachWay(self) -> None:
        """
        The peer's closing tag, a stream error either way, our closing tag,
        and a connection lost first: one event each, with why.
        """
        xs, reasons = self.stream()
        xs.dataReceived(b"</stream:stream>")
        self.assertEqual(reasons, ["closing tag from the peer"])

        xs, reasons = self.stream()
        xs.dataReceived(b"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>")
        [reason] = reasons
        self.assertEqual(reason.value.condition, "conflict")  # type: ignore[attr-defined]

        xs, reasons = self.stream()
        xs.sendStreamError(StreamError("policy-violation"))
        [reason] = reasons
        self.assertEqual(reason.value.condition, "policy-violation")  # type: ignore[attr-defined]

        xs, reasons = self.stream()
        xs.closeStream()
        self.assertEqual(reasons, ["closing tag sent"])
        xs.dataReceived(b"</stream:stream>")
        xs.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(reasons, ["closing tag sent"])

        xs, reasons = self.stream()
        lost = Failure(ConnectionLost())
        xs.connectionLost(lost)
        self.assertEqual(reasons, [lost])
        self.assertIs(xs.closedBy, lost)


class RouterStreamEndTests(SynchronousTestCase):
    """
    L{Router.end}: the names of a session go the moment its stream ends,
    while its connection is still open (a StringTransport that is never
    closed), and nothing is written to it afterwards.
    """

    def setUp(self) -> None:
        self.harness = RouterHarness(self)
        self.router = self.harness.router
        self.accept = AcceptFactory(AcceptPolicy(secrets={A: SECRET, B: SECRET}.get), reactor=self.harness.clock)
        self.router.addBootstraps(self.accept, "xep0114")

    def ended(self, end: Callable[[AcceptSession], None]) -> AcceptSession:
        """
        Connect A and B; B sends A an IQ request; C{end} ends A's stream.
        Check that A's name is free at once while A's transport is still
        open, and that B's IQ got C{service-unavailable}.
        """
        a = AcceptSession(self.harness, self.accept, A)
        b = AcceptSession(self.harness, self.accept, B)
        b.xs.dataReceived(b"<iq type='get' id='q1' from='%s' to='%s'><query xmlns='urn:x'/></iq>" % (B.encode(), A.encode()))
        self.assertIn(b"id='q1'", a.take())
        end(a)
        self.assertIsNone(self.router.table.lookup(A))
        self.assertFalse(a.transport.disconnected)
        self.assertTrue(self.router.sessions[a.xs].ended)
        answer = b.take()
        self.assertRegex(answer, rb"<iq [^>]*type='error'")
        self.assertIn(b"id='q1'", answer)
        self.assertIn(b"<service-unavailable ", answer)
        return a

    def test_eachWay(self) -> None:
        """
        The peer's closing tag, its stream error, the router's stream error
        and the router's closing tag each release the names at once; a new
        session binds the name, and stanzas to it go there.
        """
        for end in [
            lambda a: a.xs.dataReceived(b"</stream:stream>"),
            lambda a: a.xs.dataReceived(
                b"<stream:error><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
            ),
            lambda a: a.xs.dataReceived(b"<message from='%s' to='%s'/>" % (B.encode(), B.encode())),
            lambda a: a.xs.closeStream(),
        ]:
            a = self.ended(end)
            again = AcceptSession(self.harness, self.accept, A)
            self.assertIs(self.router.table.lookup(A), self.router.sessions[again.xs])
            for xs in list(self.router.sessions):
                xs.connectionLost(Failure(ConnectionDone()))
            self.assertEqual(a.transport.value().count(b"</stream:stream>"), 1)

    def test_nothingWrittenAfterTheEnd(self) -> None:
        """
        Once its stream ended, the router writes nothing more to a session
        (its answers are counted in C{unsent}), routes nothing it still
        sends (counted in C{late}), and logs both counts when the
        connection is lost.
        """
        a = self.ended(lambda a: a.xs.sendStreamError(StreamError("system-shutdown")))
        session = self.router.sessions[a.xs]
        a.take()
        session.send(domish.Element((None, "message")))
        self.harness.clock.advance(self.router.limits.idleTimeout + self.router.limits.pingTimeout + 1)
        a.xs.dataReceived(b"<message from='%s' to='%s'><body>late</body></message>" % (A.encode(), B.encode()))
        self.assertEqual(a.take(), b"")
        self.assertEqual((session.unsent, session.late), (1, 1))
        logged: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        a.xs.connectionLost(Failure(ConnectionDone()))
        self.assertIn((1, 1), [(event.get("unsent"), event.get("late")) for event in logged])
        self.assertNotIn(a.xs, self.router.sessions)

    def test_xep0225(self) -> None:
        """
        The same for an XEP-0225 session, its names bound with bind: the
        peer's closing tag frees both names at once, another session binds
        them, and a message to one bounces in between.
        """
        alpha = self.harness.component("alpha.example.net", "alpha.example.net", "chat.alpha.example.net")
        beta = self.harness.component("beta.example.net")
        [server] = [xs for xs, s in self.router.sessions.items() if "alpha.example.net" in s.names]
        server.dataReceived(b"</stream:stream>")
        self.assertIsNone(self.router.table.lookup("alpha.example.net"))
        self.assertIsNone(self.router.table.lookup("chat.alpha.example.net"))
        self.assertFalse(server.transport.disconnected)
        beta.send(message("beta.example.net", "room@chat.alpha.example.net", "lost?"))
        self.harness.flush()
        self.assertEqual([_condition(m) for m in beta.received], ["service-unavailable"])
        self.assertEqual(alpha.received, [])
        self.harness.component("alpha.example.net", "alpha.example.net", "chat.alpha.example.net")

    def test_lateBindRefused(self) -> None:
        """
        A name an ended session still tries to claim stays free.
        """
        a = self.ended(lambda a: a.xs.dataReceived(b"</stream:stream>"))
        session = self.router.sessions[a.xs]
        self.assertFalse(self.router.claim("late.example.net", session))
        self.assertIsNone(self.router.table.lookup("late.example.net"))
