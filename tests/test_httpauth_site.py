# -*- test-case-name: tests.test_httpauth_site -*-
"""
Tests for L{xmppcomp.httpauth._site}: the confirmer's twisted.web site
refuses oversized bodies and bodies without credentials before reading
them, gives request heads a deadline, and answers with its own C{Server}
header.

The logic runs on a L{StringTransport} with a L{MemoryReactorClock}; the
byte counts run over real loopback TCP, behind the tap's
L{ConnectionTracker}, with a raw client.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, cast

from twisted.internet import defer, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from xmppcomp.httpauth._site import ConfirmerSite, earlyRefusal
from xmppcomp.tap import ConnectionTracker

from .httphelpers import listenTracked
from .rawhttp import RawClient

PEER = IPv4Address("TCP", "127.0.0.1", 40000)
HOST = IPv4Address("TCP", "127.0.0.1", 8080)
MIB = 1024 * 1024


def basic(user: bytes = b"juliet@capulet.lit", password: bytes = b"t1") -> bytes:
    """
    The C{Authorization} value of Basic credentials.
    """
    return b"Basic " + base64.b64encode(user + b":" + password)


def head(
    method: bytes = b"POST",
    target: bytes = b"/",
    headers: Sequence[tuple[bytes, bytes]] = (),
    version: bytes = b"HTTP/1.1",
) -> bytes:
    """
    A request head: request line, C{Host} and C{headers}, empty line.
    """
    lines = [method + b" " + target + b" " + version, b"Host: files.example"]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


class Response(NamedTuple):
    """
    One HTTP response as it came on the wire.
    """

    status: int
    phrase: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> list[bytes]:
        """
        The values of the header C{name} (any case), in order.
        """
        return [value for key, value in self.headers if key.lower() == name.lower()]


def responses(data: bytes) -> list[Response]:
    """
    Split C{data} into responses (bodies delimited by C{Content-Length};
    none for 1xx).
    """
    found = []
    while data:
        top, _, data = data.partition(b"\r\n\r\n")
        lines = top.split(b"\r\n")
        _, status, phrase = lines[0].split(b" ", 2)
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b": ")
            headers.append((name, value))
        response = Response(int(status), phrase, headers, b"")
        lengths = response.header(b"content-length")
        length = int(lengths[0]) if lengths else 0
        found.append(response._replace(body=data[:length]))
        data = data[length:]
    return found


def captureEvents(testCase: SynchronousTestCase) -> list[dict[str, Any]]:
    """
    The log events emitted from now until the end of C{testCase}.
    """
    events: list[dict[str, Any]] = []
    observer = cast(ILogObserver, events.append)
    globalLogPublisher.addObserver(observer)
    testCase.addCleanup(globalLogPublisher.removeObserver, observer)
    return events


class Recorder(Resource):
    """
    A leaf that records each request it renders (method and whole body)
    and answers C{rendered N} with the body's length.

    @ivar seen: (method, body) of each request rendered.
    @ivar status: the status to answer with.
    """

    isLeaf = True

    def __init__(self, status: int = 200) -> None:
        super().__init__()
        self.seen: list[tuple[bytes, bytes]] = []
        self.status = status

    def render(self, request: Any) -> bytes:
        body = request.content.read()
        self.seen.append((request.method, body))
        request.setResponseCode(self.status)
        request.setHeader(b"content-type", b"text/plain")
        return b"rendered %d\n" % (len(body),)


class Connection:
    """
    A L{ConfirmerSite} channel on a L{StringTransport}, with a
    L{MemoryReactorClock}.
    """

    def __init__(self, site: ConfirmerSite, clock: MemoryReactorClock) -> None:
        self.site = site
        self.clock = clock
        self.channel = site.buildProtocol(PEER)
        self.transport = StringTransport(peerAddress=PEER, hostAddress=HOST)
        self.channel.makeConnection(self.transport)
        self.lost = False

    def send(self, data: bytes) -> None:
        self.channel.dataReceived(data)

    def dribble(self, data: bytes, every: float) -> None:
        """
        Send C{data} one byte at a time, C{every} seconds apart (the first
        byte now), as long as the connection is not closing.
        """
        for i in range(len(data)):
            if i:
                self.clock.advance(every)
            if self.transport.disconnecting:
                return
            self.send(data[i : i + 1])

    def answers(self) -> list[Response]:
        return responses(self.transport.value())

    def close(self) -> None:
        """
        The connection is gone (what the reactor does once it closed).
        """
        if not self.lost:
            self.lost = True
            self.channel.connectionLost(Failure(ConnectionDone()))


class SiteTestCase(SynchronousTestCase):
    """
    Builds sites on a clock, and connections to them (no tests of its own).
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.resource = Recorder()
        self.connections: list[Connection] = []
        self.addCleanup(self._closeAll)

    def _closeAll(self) -> None:
        for connection in self.connections:
            connection.close()

    def makeSite(self, **kwargs: Any) -> ConfirmerSite:
        kwargs.setdefault("accessLog", "none")
        return ConfirmerSite(self.resource, reactor=self.clock, **kwargs)

    def connect(self, site: ConfirmerSite | None = None, **kwargs: Any) -> Connection:
        connection = Connection(site or self.makeSite(**kwargs), self.clock)
        self.connections.append(connection)
        return connection

    def assertEarlyAnswer(
        self, connection: Connection, status: int, phrase: bytes, server: bytes | None = b"xmppcomp"
    ) -> Response:
        """
        C{connection} got exactly one answer, an early one with C{status}:
        complete, plain text, closing; and its connection is closing.
        """
        answers = connection.answers()
        self.assertEqual([(a.status, a.phrase) for a in answers], [(status, phrase)])
        answer = answers[0]
        self.assertTrue(connection.transport.disconnecting)
        self.assertEqual(answer.header(b"connection"), [b"close"])
        self.assertEqual(
            answer.header(b"content-type"), [b"text/plain; charset=utf-8"]
        )
        self.assertEqual(answer.header(b"x-content-type-options"), [b"nosniff"])
        self.assertEqual(answer.header(b"content-length"), [b"%d" % (len(answer.body),)])
        self.assertEqual(answer.header(b"server"), [server] if server else [])
        self.assertEqual(len(answer.header(b"date")), 1)
        self.assertTrue(answer.body.endswith(b"\n"))
        return answer


class EarlyRefusalTests(SynchronousTestCase):
    """
    L{earlyRefusal} decides from the head alone.
    """

    def refusal(self, length: int | None, *authorization: bytes, maxBody: int = 100) -> Any:
        headers = Headers()
        if authorization:
            headers.setRawHeaders(b"Authorization", list(authorization))
        return earlyRefusal(headers, length, maxBody)

    def test_declaredTooLarge(self) -> None:
        """
        A declared length over C{maxBody} gets 413, credentials or not; one
        of exactly C{maxBody} bytes goes on.
        """
        self.assertEqual(self.refusal(101, basic())[0], 413)
        self.assertEqual(self.refusal(10**11)[0], 413)
        self.assertIn("100 bytes", self.refusal(101, basic())[1])
        self.assertIsNone(self.refusal(100, basic()))

    def test_bodyNeedsCredentials(self) -> None:
        """
        A body (declared or chunked) without usable credentials gets 401:
        no header, an empty one, a scheme other than Basic and Digest, or
        Basic that does not decode to C{user:password}. A request without a
        body goes on, credentials or not: the resource answers it.
        """
        self.assertIsNone(self.refusal(0))
        self.assertIsNone(self.refusal(0, b"Bearer x"))
        for length in (1, None):
            self.assertEqual(self.refusal(length)[0], 401)
            for value in (
                b"",
                b"Bearer abc",
                b"Negotiate YII=",
                b"Basic",
                b"Basic !!!!",
                b"Basic " + base64.b64encode(b"no colon"),
            ):
                self.assertEqual(self.refusal(length, value)[0], 401, value)

    def test_usableCredentials(self) -> None:
        """
        Basic decoding to C{user:password} (any case of the scheme) and any
        Digest header let the body through; the resource checks them. The
        last C{Authorization} header counts, as for the resource.
        """
        for value in (
            basic(),
            b"basic " + base64.b64encode(b"juliet@capulet.lit:t1"),
            b'Digest username="juliet@capulet.lit", realm="xmpp"',
            b"DIGEST x",
        ):
            self.assertIsNone(self.refusal(10, value), value)
        self.assertIsNone(self.refusal(10, b"Bearer x", basic()))
        self.assertEqual(self.refusal(10, basic(), b"Bearer x")[0], 401)

    def test_reasons(self) -> None:
        """
        The reason says what is wrong, for the user to read.
        """
        self.assertIn("Credentials are needed", self.refusal(5)[1])
        self.assertIn("'bearer'", self.refusal(5, b"Bearer x")[1])
        self.assertIn("Malformed Basic", self.refusal(5, b"Basic !!")[1])


class EarlyAnswerTests(SiteTestCase):
    """
    The site answers at the end of the head, before reading the body,
    when the body is too large or comes without usable credentials.
    """

    def test_declaredTooLarge(self) -> None:
        """
        A declared C{Content-Length} of 100 GB gets 413 as soon as the head
        is in, with credentials too; the body that follows is dropped and
        the resource never sees the request.
        """
        connection = self.connect()
        connection.send(
            head(headers=[(b"Authorization", basic()), (b"Content-Length", b"%d" % (10**11,))])
        )
        answer = self.assertEarlyAnswer(connection, 413, b"Content Too Large")
        self.assertIn(b"100000000000 bytes", answer.body)
        self.assertIn(b"1048576", answer.body)
        written = connection.transport.value()
        connection.send(b"x" * MIB)
        self.assertEqual(connection.transport.value(), written)
        self.assertEqual(self.resource.seen, [])

    def test_bodyWithoutCredentials(self) -> None:
        """
        A body without credentials gets 401 with C{Basic realm="xmpp"} as
        soon as the head is in; the resource never sees it.
        """
        connection = self.connect(maxBody=100 * MIB)
        connection.send(head(headers=[(b"Content-Length", b"60000000")]) + b"x" * 1000)
        answer = self.assertEarlyAnswer(connection, 401, b"Unauthorized", server=b"xmppcomp")
        self.assertEqual(answer.header(b"www-authenticate"), [b'Basic realm="xmpp"'])
        self.assertIn(b"Credentials are needed", answer.body)
        connection.send(b"x" * MIB)
        self.assertEqual(self.resource.seen, [])

    def test_unusableCredentials(self) -> None:
        """
        A body with an unsupported scheme, or with Basic credentials that
        do not decode, gets 401 before it is read; Digest goes on to the
        resource (which checks it).
        """
        for value in (b"Bearer abc", b"Basic " + base64.b64encode(b"no colon")):
            connection = self.connect()
            connection.send(
                head(headers=[(b"Authorization", value), (b"Content-Length", b"5")])
            )
            self.assertEarlyAnswer(connection, 401, b"Unauthorized")
        connection = self.connect()
        connection.send(
            head(headers=[(b"Authorization", b'Digest username="x"'), (b"Content-Length", b"5")])
            + b"hello"
        )
        self.assertEqual(self.resource.seen, [(b"POST", b"hello")])

    def test_challenge(self) -> None:
        """
        The site's C{challenge} gives the C{WWW-Authenticate} values of an
        early 401, in order; it gets the request, its headers and client
        address known.
        """
        asked: list[tuple[str, bytes | None]] = []

        def challenge(request: IRequest) -> Sequence[bytes]:
            asked.append((request.getClientAddress().host, request.getHeader(b"content-length")))
            return [b'Basic realm="xmpp"', b'Digest realm="xmpp", nonce="n1"']

        connection = self.connect(challenge=challenge)
        connection.send(head(headers=[(b"Content-Length", b"7")]))
        answer = self.assertEarlyAnswer(connection, 401, b"Unauthorized")
        self.assertEqual(
            answer.header(b"www-authenticate"),
            [b'Basic realm="xmpp"', b'Digest realm="xmpp", nonce="n1"'],
        )
        self.assertEqual(asked, [("127.0.0.1", b"7")])

    def test_chunkedWithoutCredentials(self) -> None:
        """
        A chunked body without credentials gets 401 at the end of the head.
        """
        connection = self.connect()
        connection.send(head(headers=[(b"Transfer-Encoding", b"chunked")]) + b"5\r\nhello\r\n")
        self.assertEarlyAnswer(connection, 401, b"Unauthorized")
        connection.send(b"0\r\n\r\n")
        self.assertEqual(self.resource.seen, [])

    def test_chunkedOverLimit(self) -> None:
        """
        A chunked body with credentials is read until it grows past
        C{maxBody}: then 413, and the rest is dropped; one within the limit
        reaches the resource whole.
        """
        connection = self.connect(maxBody=1000)
        connection.send(
            head(headers=[(b"Authorization", basic()), (b"Transfer-Encoding", b"chunked")])
        )
        connection.send(b"258\r\n" + b"a" * 600 + b"\r\n")
        self.assertEqual(connection.transport.value(), b"")
        connection.send(b"258\r\n" + b"b" * 600 + b"\r\n")
        answer = self.assertEarlyAnswer(connection, 413, b"Content Too Large")
        self.assertIn(b"1000 bytes", answer.body)
        connection.send(b"258\r\n" + b"c" * 600 + b"\r\n0\r\n\r\n")
        self.assertEqual(self.resource.seen, [])

        connection = self.connect(maxBody=1000)
        connection.send(
            head(headers=[(b"Authorization", basic()), (b"Transfer-Encoding", b"chunked")])
            + b"1f4\r\n"
            + b"a" * 500
            + b"\r\n1f4\r\n"
            + b"b" * 500
            + b"\r\n0\r\n\r\n"
        )
        self.assertEqual(self.resource.seen, [(b"POST", b"a" * 500 + b"b" * 500)])

    def test_chunkedOverLimitInOneRead(self) -> None:
        """
        A whole chunked body over the limit arriving at once gets one 413,
        and is not rendered.
        """
        connection = self.connect(maxBody=10)
        connection.send(
            head(headers=[(b"Authorization", basic()), (b"Transfer-Encoding", b"chunked")])
            + b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n"
        )
        self.assertEarlyAnswer(connection, 413, b"Content Too Large")
        self.assertEqual(self.resource.seen, [])

    def test_bodyWithinLimit(self) -> None:
        """
        A body with credentials and within C{maxBody} (exactly at it, too)
        reaches the resource whole; one byte more is refused.
        """
        connection = self.connect(maxBody=1000)
        body = os.urandom(1000)
        connection.send(
            head(headers=[(b"Authorization", basic()), (b"Content-Length", b"1000")]) + body[:10]
        )
        connection.send(body[10:])
        self.assertEqual(self.resource.seen, [(b"POST", body)])
        [answer] = connection.answers()
        self.assertEqual((answer.status, answer.body), (200, b"rendered 1000\n"))

        connection = self.connect(maxBody=1000)
        connection.send(head(headers=[(b"Authorization", basic()), (b"Content-Length", b"1001")]))
        self.assertEarlyAnswer(connection, 413, b"Content Too Large")
        self.assertEqual(len(self.resource.seen), 1)

    def test_withoutBodyGoesOn(self) -> None:
        """
        A request without a body and without credentials reaches the
        resource (which answers 401 itself); one with a body does not.
        """
        connection = self.connect()
        connection.send(head(b"GET") + head(headers=[(b"Content-Length", b"3")]) + b"abc")
        self.assertEqual(self.resource.seen, [(b"GET", b"")])
        first, second = connection.answers()
        self.assertEqual((first.status, second.status), (200, 401))

    def test_expectContinue(self) -> None:
        """
        C{Expect: 100-continue} without credentials gets the 401 and no
        C{100 Continue}; with credentials, the client is told to go on.
        """
        connection = self.connect(maxBody=100 * MIB)
        connection.send(
            head(headers=[(b"Expect", b"100-continue"), (b"Content-Length", b"60000000")])
        )
        self.assertNotIn(b"100 Continue", connection.transport.value())
        self.assertEarlyAnswer(connection, 401, b"Unauthorized")

        connection = self.connect()
        connection.send(
            head(
                headers=[
                    (b"Authorization", basic()),
                    (b"Expect", b"100-continue"),
                    (b"Content-Length", b"5"),
                ]
            )
        )
        self.assertEqual(connection.transport.value(), b"HTTP/1.1 100 Continue\r\n\r\n")
        connection.send(b"hello")
        self.assertEqual(self.resource.seen, [(b"POST", b"hello")])

    def test_serverHeader(self) -> None:
        """
        The early answer carries the configured C{Server} header, or none.
        """
        connection = self.connect(serverHeader=b"gateway")
        connection.send(head(headers=[(b"Content-Length", b"1")]))
        self.assertEarlyAnswer(connection, 401, b"Unauthorized", server=b"gateway")
        connection = self.connect(serverHeader=None)
        connection.send(head(headers=[(b"Content-Length", b"1")]))
        self.assertEarlyAnswer(connection, 401, b"Unauthorized", server=None)

    def test_logged(self) -> None:
        """
        Each early answer is logged at info with the client address, the
        status and the reason (the access log does not see it).
        """
        events = captureEvents(self)
        connection = self.connect()
        connection.send(head(headers=[(b"Content-Length", b"%d" % (10**11,))]))
        [event] = [e for e in events if e.get("status") == 413]
        self.assertEqual(event["log_level"], LogLevel.info)
        self.assertEqual(event["client"], "127.0.0.1:40000")
        self.assertIn("over the limit", event["reason"])

    def test_endsCleanly(self) -> None:
        """
        Once the refused connection is closed, nothing is left: no error
        logged, no timer pending on the reactor.
        """
        connection = self.connect()
        connection.send(head(headers=[(b"Content-Length", b"10")]) + b"12345")
        self.assertEarlyAnswer(connection, 401, b"Unauthorized")
        connection.close()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_clientNotReading(self) -> None:
        """
        A refused connection that does not close (a client that reads
        nothing) is aborted after the channel's C{abortTimeout}.
        """
        connection = self.connect()
        connection.send(head(headers=[(b"Content-Length", b"10")]))
        self.assertEarlyAnswer(connection, 401, b"Unauthorized")
        self.clock.advance(connection.channel.abortTimeout - 0.5)
        self.assertFalse(connection.transport.disconnected)
        self.clock.advance(0.5)
        self.assertTrue(connection.transport.disconnected)


class HeadDeadlineTests(SiteTestCase):
    """
    A request head must arrive within C{headTimeout} seconds of its first
    byte; the idle time between requests is not counted.
    """

    def test_slowHead(self) -> None:
        """
        A head sent one byte every 3 s (each byte restarts the idle
        timeout) gets 408 10 s after its first byte, and is closed.
        """
        connection = self.connect()
        connection.dribble(head(b"GET"), every=3)
        self.assertEqual(self.clock.seconds(), 12)
        answer = self.assertEarlyAnswer(connection, 408, b"Request Timeout")
        self.assertIn(b"10 seconds", answer.body)
        self.assertEqual(self.resource.seen, [])

    def test_slowRequestLine(self) -> None:
        """
        The clock starts with the first byte of the request line: a line
        that never ends gets 408 at C{headTimeout}.
        """
        connection = self.connect(headTimeout=4)
        connection.send(b"GE")
        self.clock.advance(3.9)
        self.assertEqual(connection.transport.value(), b"")
        self.clock.advance(0.1)
        self.assertEarlyAnswer(connection, 408, b"Request Timeout")

    def test_slowHeaders(self) -> None:
        """
        A quick request line followed by headers that never end gets 408.
        """
        connection = self.connect()
        connection.send(b"GET / HTTP/1.1\r\nHost: files.example\r\n")
        self.clock.advance(5)
        connection.send(b"X-Slow: 1\r\n")
        self.clock.advance(5)
        self.assertEarlyAnswer(connection, 408, b"Request Timeout")

    def test_bodyNotCounted(self) -> None:
        """
        A head complete within the deadline is served, however slowly its
        body comes (the idle timeout governs the body); the next request's
        head has its own deadline.
        """
        connection = self.connect()
        connection.dribble(
            head(headers=[(b"Authorization", basic()), (b"Content-Length", b"5")]), every=0.05
        )
        self.assertLess(self.clock.seconds(), 10)
        connection.dribble(b"hello", every=8)
        self.assertEqual(self.resource.seen, [(b"POST", b"hello")])
        self.assertEqual([a.status for a in connection.answers()], [200])
        self.clock.advance(1)
        connection.send(b"GET / HTTP/1.1\r\n")
        self.clock.advance(10)
        self.assertEqual([a.status for a in connection.answers()], [200, 408])

    def test_keepAliveIdle(self) -> None:
        """
        A kept-alive connection idle for longer than the head deadline (but
        less than the idle timeout) stays open; the next request's head has
        C{headTimeout} from its own first byte.
        """
        connection = self.connect()
        self.assertEqual(connection.channel.timeOut, 60)
        connection.send(head(b"GET"))
        self.assertEqual([a.status for a in connection.answers()], [200])
        self.clock.advance(50)
        self.assertFalse(connection.transport.disconnecting)
        connection.send(b"GET /next HTTP/1.1\r\n")
        self.clock.advance(9.9)
        self.assertFalse(connection.transport.disconnecting)
        self.clock.advance(0.1)
        self.assertEqual([a.status for a in connection.answers()], [200, 408])
        self.assertTrue(connection.transport.disconnecting)

    def test_keepAliveRequestsEachHaveDeadline(self) -> None:
        """
        Requests on one kept-alive connection, each head taking 8 s of a 10
        s deadline, are all served.
        """
        connection = self.connect()
        for _ in range(3):
            connection.send(b"GET / HTTP/1.1\r\n")
            self.clock.advance(8)
            connection.send(b"Host: files.example\r\n\r\n")
            self.clock.advance(30)
        self.assertEqual([a.status for a in connection.answers()], [200, 200, 200])
        connection.send(b"G")
        self.clock.advance(10)
        self.assertEqual([a.status for a in connection.answers()], [200, 200, 200, 408])

    def test_emptyLinesDoNotStartClock(self) -> None:
        """
        The empty line some clients send after a body does not start the
        head clock: the connection stays open for the idle timeout; a
        request line does.
        """
        connection = self.connect()
        connection.send(head(headers=[(b"Authorization", basic()), (b"Content-Length", b"2")]))
        connection.send(b"ab\r\n")
        self.clock.advance(30)
        self.assertEqual([a.status for a in connection.answers()], [200])
        self.assertFalse(connection.transport.disconnecting)
        connection.send(b"GET / HTTP/1.1\r\n")
        self.clock.advance(10)
        self.assertEqual([a.status for a in connection.answers()], [200, 408])

    def test_pipelined(self) -> None:
        """
        Pipelined requests are all served; the clock of a head buffered
        while the previous request was handled starts when that one is
        done.
        """
        connection = self.connect()
        connection.send(head(b"GET", b"/1") + head(b"GET", b"/2") + b"GET /3 HTTP/1.1\r\n")
        self.assertEqual([a.status for a in connection.answers()], [200, 200])
        self.clock.advance(9.9)
        self.assertFalse(connection.transport.disconnecting)
        self.clock.advance(0.1)
        self.assertEqual([a.status for a in connection.answers()], [200, 200, 408])

    def test_configurable(self) -> None:
        """
        C{headTimeout} sets the deadline; L{None} means none (the idle
        timeout still applies).
        """
        connection = self.connect(headTimeout=2.5)
        connection.send(b"GET / HTTP/1.1\r\n")
        self.clock.advance(2.5)
        self.assertEarlyAnswer(connection, 408, b"Request Timeout")

        connection = self.connect(headTimeout=None)
        connection.dribble(b"GET / HTTP/1.1\r\n", every=10)
        self.assertFalse(connection.transport.disconnecting)
        self.assertEqual(connection.transport.value(), b"")

    def test_endsCleanly(self) -> None:
        """
        A connection closed in the middle of a head leaves no timer and no
        error; so does one closed after a 408.
        """
        connection = self.connect()
        connection.send(b"GET / HTTP/1.1\r\n")
        connection.close()
        connection = self.connect()
        connection.send(b"GET / HTTP/1.1\r\n")
        self.clock.advance(10)
        self.assertEarlyAnswer(connection, 408, b"Request Timeout")
        connection.close()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_badSettings(self) -> None:
        """
        A negative C{maxBody}, a C{headTimeout} that is not positive, an
        empty C{accessLog} or one that is a directory or in none, and a
        C{serverHeader} that is not printable
        ASCII (a line break would add headers) are refused.
        """
        self.assertRaises(ValueError, self.makeSite, maxBody=-1)
        self.assertRaises(ValueError, self.makeSite, headTimeout=0)
        self.assertRaises(ValueError, self.makeSite, accessLog="")
        for header in (b"", b"gw\r\nX-Injected: 1", b"caf\xc3\xa9"):
            self.assertRaises(ValueError, self.makeSite, serverHeader=header)
        self.assertRaises(ValueError, self.makeSite, accessLog=self.mktemp() + "/missing/access.log")
        directory = self.mktemp()
        os.makedirs(directory)
        self.assertRaises(ValueError, self.makeSite, accessLog=directory)


class ResponseHeaderTests(SiteTestCase):
    """
    Every response of the site carries its C{Server} header, and status
    codes get their reason phrases.
    """

    def statusAndServer(self, resource: Resource, **kwargs: Any) -> tuple[int, list[bytes]]:
        self.resource = resource  # type: ignore[assignment]
        connection = self.connect(**kwargs)
        connection.send(head(b"GET", b"/x"))
        [answer] = connection.answers()
        return answer.status, answer.header(b"server")

    def test_default(self) -> None:
        """
        By default the C{Server} header is C{xmppcomp}, without a version,
        on rendered pages and twisted.web's error pages alike.
        """
        self.assertEqual(self.statusAndServer(Recorder()), (200, [b"xmppcomp"]))
        self.assertEqual(self.statusAndServer(Resource()), (404, [b"xmppcomp"]))

    def test_configured(self) -> None:
        """
        C{serverHeader} replaces the header, even one the resource set; with
        L{None}, there is none.
        """

        class OwnServer(Recorder):
            def render(self, request: Any) -> bytes:
                request.setHeader(b"Server", b"upstream/1.0")
                return super().render(request)

        self.assertEqual(
            self.statusAndServer(OwnServer(), serverHeader=b"gateway"), (200, [b"gateway"])
        )
        self.assertEqual(self.statusAndServer(OwnServer(), serverHeader=None), (200, []))
        self.assertEqual(self.statusAndServer(Resource(), serverHeader=None), (404, []))

    def test_reasonPhrases(self) -> None:
        """
        429 (which twisted.web has no phrase for) is C{Too Many Requests};
        a phrase the resource gives is kept.
        """
        connection = self.connect()
        self.resource.status = 429
        connection.send(head(b"GET"))
        [answer] = connection.answers()
        self.assertEqual((answer.status, answer.phrase), (429, b"Too Many Requests"))

        class Phrased(Resource):
            isLeaf = True

            def render(self, request: Any) -> bytes:
                request.setResponseCode(429, b"Slow Down")
                return b""

        self.resource = Phrased()  # type: ignore[assignment]
        connection = self.connect()
        connection.send(head(b"GET"))
        [answer] = connection.answers()
        self.assertEqual((answer.status, answer.phrase), (429, b"Slow Down"))


class AccessLogTests(SiteTestCase):
    """
    C{accessLog} says where the access log goes.
    """

    def served(self, accessLog: str) -> list[str]:
        """
        Serve one request with C{accessLog}; the text of the log events
        meanwhile.
        """
        events = captureEvents(self)
        site = self.makeSite(accessLog=accessLog)
        site.doStart()
        try:
            connection = self.connect(site)
            connection.send(head(b"GET", b"/logged"))
            connection.close()
        finally:
            site.doStop()
        return [str(e.get("log_io", "")) + str(e.get("message", "")) for e in events]

    def test_twistdLogOrNowhere(self) -> None:
        """
        C{"log"}: each request is a line in the twistd log; C{"none"}: no
        access log at all.
        """
        lines = self.served("log")
        self.assertTrue([line for line in lines if '"GET /logged HTTP/1.1" 200' in line], lines)
        lines = self.served("none")
        self.assertEqual([line for line in lines if "/logged" in line], [])

    def test_file(self) -> None:
        """
        A path: each request is a line of that file, and none in the twistd
        log.
        """
        path = self.mktemp()
        lines = self.served(path)
        self.assertEqual([line for line in lines if "/logged" in line], [])
        with open(path) as f:
            self.assertIn('"GET /logged HTTP/1.1" 200', f.read())


class _Counting(ProtocolWrapper):
    def dataReceived(self, data: bytes) -> None:
        self.factory.received[-1] += len(data)
        super().dataReceived(data)


class Counting(WrappingFactory):
    """
    Counts the bytes each connection received (C{received}, one number per
    connection, in order).
    """

    protocol = _Counting

    def __init__(self, wrapped: Any) -> None:
        super().__init__(wrapped)
        self.received: list[int] = []

    def buildProtocol(self, addr: Any) -> Any:
        self.received.append(0)
        return super().buildProtocol(addr)


class LoopbackTests(TestCase):
    """
    The site on real loopback TCP, behind the tap's L{ConnectionTracker}.
    """

    @defer.inlineCallbacks
    def listen(self, **kwargs: Any) -> Any:
        self.resource = Recorder()
        kwargs.setdefault("accessLog", "none")
        self.tracker = ConnectionTracker(ConfirmerSite(self.resource, reactor=reactor, **kwargs))
        self.counting = Counting(self.tracker)
        self.port = yield listenTracked(self, self.tracker, listenOn=self.counting)

    @defer.inlineCallbacks
    def exchange(self, data: bytes, onData: Callable[[RawClient], None] | None = None) -> Any:
        """
        Connect, write C{data}, and read until the server closes.

        @return: the responses.
        """
        client = RawClient(data, onData)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        yield connectProtocol(endpoint, client)
        received = yield client.done.addTimeout(10, reactor)
        return responses(received)

    @defer.inlineCallbacks
    def test_hugeDeclaredLength(self) -> Any:
        """
        A declared C{Content-Length} of 100 GB gets 413 at once; the server
        reads the head and nothing more, and the tracker sees the
        connection end.
        """
        yield self.listen()
        request = head(headers=[(b"Authorization", basic()), (b"Content-Length", b"%d" % 10**11)])
        [answer] = yield self.exchange(request)
        self.assertEqual((answer.status, answer.header(b"connection")), (413, [b"close"]))
        self.assertEqual(self.counting.received, [len(request)])
        self.assertEqual(self.tracker.protocols, {})
        self.assertEqual(self.resource.seen, [])

    @defer.inlineCallbacks
    def test_bodyWithoutCredentials(self) -> Any:
        """
        A 60 MB body without credentials (and a limit above that): the
        client writes the head and gets the 401 without having sent the
        body; a client sending the whole body at once gets the 401 too,
        and the server read a small part of it.
        """
        yield self.listen(maxBody=100 * MIB)
        request = head(headers=[(b"Content-Length", b"%d" % (60 * 10**6,))])
        [answer] = yield self.exchange(request)
        self.assertEqual(answer.status, 401)
        self.assertEqual(answer.header(b"www-authenticate"), [b'Basic realm="xmpp"'])
        self.assertEqual(answer.header(b"x-content-type-options"), [b"nosniff"])
        self.assertEqual(self.counting.received, [len(request)])

        [answer] = yield self.exchange(request + b"x" * (60 * 10**6))
        self.assertEqual(answer.status, 401)
        self.assertLess(self.counting.received[1], MIB)
        self.assertEqual(self.resource.seen, [])

    @defer.inlineCallbacks
    def test_expectContinue(self) -> Any:
        """
        C{Expect: 100-continue} without credentials: the 401, and no
        C{100 Continue} before it.
        """
        yield self.listen(maxBody=100 * MIB)
        request = head(headers=[(b"Expect", b"100-continue"), (b"Content-Length", b"60000000")])
        answers = yield self.exchange(request)
        self.assertEqual([a.status for a in answers], [401])

    @defer.inlineCallbacks
    def test_bodyWithinLimit(self) -> Any:
        """
        With credentials and a body within the limit, the resource renders
        and sees the whole body.
        """
        yield self.listen()
        body = os.urandom(MIB)
        request = head(
            headers=[
                (b"Authorization", basic()),
                (b"Content-Length", b"%d" % (len(body),)),
                (b"Connection", b"close"),
            ]
        )
        [answer] = yield self.exchange(request + body)
        self.assertEqual((answer.status, answer.body), (200, b"rendered %d\n" % (MIB,)))
        self.assertEqual(answer.header(b"server"), [b"xmppcomp"])
        self.assertEqual(self.resource.seen, [(b"POST", body)])

    @defer.inlineCallbacks
    def test_chunkedOverLimit(self) -> Any:
        """
        A chunked body with credentials growing past the limit gets 413.
        """
        yield self.listen(maxBody=100000)
        chunk = b"%x\r\n" % (60000,) + b"z" * 60000 + b"\r\n"
        request = head(headers=[(b"Authorization", basic()), (b"Transfer-Encoding", b"chunked")])
        answers = yield self.exchange(request + chunk * 2 + b"0\r\n\r\n")
        self.assertEqual([a.status for a in answers], [413])
        self.assertEqual(self.resource.seen, [])
