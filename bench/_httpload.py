"""
A lean HTTP/1.1 load client for the benchmarks: one keep-alive TCP
connection per simulated client, one request at a time, responses parsed
from the wire (status line, headers, a body framed by Content-Length or
chunked encoding). It does what a browser's connection does and nothing
more, so that the load process spends far less CPU per request than the
server it measures (treq, a full client, spent more than the whole
confirmer; see bench/README.md). Run by hand only.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure


class HTTPError(Exception):
    """
    The server sent something that is not an HTTP/1.1 response, or closed
    the connection with a request outstanding.
    """


class Response:
    """
    A status code, headers (lower-case names; of a repeated header, the
    first value) and body.
    """

    __slots__ = ("code", "headers", "body")

    def __init__(self, code: int, headers: dict[bytes, bytes], body: bytes) -> None:
        self.code = code
        self.headers = headers
        self.body = body


class HTTPLoadConnection(Protocol):
    """
    One client connection. L{request} sends raw request bytes and returns
    a Deferred firing with the L{Response}.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._waiting: defer.Deferred[Response] | None = None
        self._head: tuple[int, dict[bytes, bytes]] | None = None
        self._length: int | None = None
        self._chunked = False
        self._body: list[bytes] = []

    def request(self, raw: bytes) -> defer.Deferred[Response]:
        assert self._waiting is None, "one request at a time"
        self._waiting = defer.Deferred()
        assert self.transport is not None
        self.transport.write(raw)
        return self._waiting

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        try:
            while self._parse():
                pass
        except HTTPError as e:
            self._fail(Failure(e))
            assert self.transport is not None
            self.transport.loseConnection()

    def _parse(self) -> bool:
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return False
            lines = self._buffer[:end].split(b"\r\n")
            self._buffer = self._buffer[end + 4 :]
            version, _, rest = lines[0].partition(b" ")
            if not version.startswith(b"HTTP/1."):
                raise HTTPError("not an HTTP response: %r" % (lines[0][:80],))
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers.setdefault(name.strip().lower(), value.strip())
            self._head = (int(rest[:3]), headers)
            self._chunked = headers.get(b"transfer-encoding", b"").lower() == b"chunked"
            self._length = None if self._chunked else int(headers.get(b"content-length", b"0"))
            self._body = []
        if self._chunked:
            return self._parseChunk()
        assert self._length is not None
        if len(self._buffer) < self._length:
            return False
        self._body.append(self._buffer[: self._length])
        self._buffer = self._buffer[self._length :]
        self._done()
        return True

    def _parseChunk(self) -> bool:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            return False
        size = int(self._buffer[:end].split(b";")[0], 16)
        if size == 0:
            trailer = self._buffer.find(b"\r\n\r\n", end)
            if trailer < 0:
                return False
            self._buffer = self._buffer[trailer + 4 :]
            self._done()
            return True
        if len(self._buffer) < end + 2 + size + 2:
            return False
        self._body.append(self._buffer[end + 2 : end + 2 + size])
        self._buffer = self._buffer[end + 2 + size + 2 :]
        return True

    def _done(self) -> None:
        assert self._head is not None
        code, headers = self._head
        self._head = None
        waiting, self._waiting = self._waiting, None
        if waiting is None:
            raise HTTPError("a response nobody asked for")
        waiting.callback(Response(code, headers, b"".join(self._body)))

    def _fail(self, failure: Failure) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.errback(failure)

    def connectionLost(self, reason: Failure = Failure(HTTPError("closed"))) -> None:
        self._fail(Failure(HTTPError("connection closed with a request outstanding")))


def connectMany(endpoint: Any, count: int, batch: int = 100) -> defer.Deferred[list[HTTPLoadConnection]]:
    """
    Open C{count} connections to C{endpoint}, C{batch} at a time (so the
    listen backlog never overflows and no SYN is retried).
    """

    @defer.inlineCallbacks
    def go() -> Any:
        factory = Factory.forProtocol(HTTPLoadConnection)
        connections: list[HTTPLoadConnection] = []
        while len(connections) < count:
            n = min(batch, count - len(connections))
            connections.extend((yield defer.gatherResults([endpoint.connect(factory) for _ in range(n)])))
        return connections

    return go()
