# -*- test-case-name: tests.test_httpauth_hostile -*-
"""
A raw HTTP/1.1 client for tests: it sends the bytes it is given, exactly
(as C{curl --path-as-is} would; an HTTP client library would normalise the
path), from a chosen loopback source address, and reads the answer until
the server closes the connection.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import attrs
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure


@attrs.frozen
class RawAnswer:
    """
    An HTTP answer as bytes.

    @ivar raw: everything the server sent.
    """

    raw: bytes

    @property
    def status(self) -> int:
        """
        The status code of the first answer.
        """
        return int(self.raw.split(b" ", 2)[1])

    @property
    def body(self) -> bytes:
        """
        What follows the first blank line.
        """
        return self.raw.partition(b"\r\n\r\n")[2]

    def header(self, name: bytes) -> list[bytes]:
        """
        The values of header C{name} in the first answer.
        """
        head = self.raw.partition(b"\r\n\r\n")[0]
        values = []
        for line in head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower():
                values.append(value.strip())
        return values


class RawClient(Protocol):
    """
    Writes what it is given and keeps what comes back; C{done} fires with
    it when the connection is closed.

    @ivar onData: called with the client after each piece received, if
        given.
    """

    def __init__(self, data: bytes, onData: Callable[[RawClient], None] | None = None) -> None:
        self.data = data
        self.received = b""
        self.onData = onData
        self.done: defer.Deferred[bytes] = defer.Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.data)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if self.onData is not None:
            self.onData(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.done.callback(self.received)


def basicValue(who: str, transactionId: str) -> bytes:
    """
    A Basic C{Authorization} value for XEP-0070: JID and transaction id
    percent-encoded (so either may hold C{:} or anything else), then
    base64.
    """
    raw = quote(who, safe="@/").encode("ascii") + b":" + quote(transactionId, safe="").encode("ascii")
    return b"Basic " + base64.b64encode(raw)


@defer.inlineCallbacks
def rawRequest(
    reactor: Any,
    port: int,
    target: bytes,
    headers: list[tuple[bytes, bytes]] = [],
    method: bytes = b"GET",
    source: str = "127.0.0.1",
    host: bytes | None = None,
) -> Any:
    """
    Send one request on a new connection to 127.0.0.1:C{port} from
    C{source} (any 127.x.y.z address works on Linux) with
    C{Connection: close}, and read the answer.

    @param host: the C{Host} value; by default C{127.0.0.1:PORT}.
    @return: a L{Deferred} firing with a L{RawAnswer}.
    """
    lines = [method + b" " + target + b" HTTP/1.1"]
    lines.append(b"Host: " + (host if host is not None else b"127.0.0.1:%d" % (port,)))
    lines += [name + b": " + value for name, value in headers]
    lines.append(b"Connection: close")
    data = b"\r\n".join(lines) + b"\r\n\r\n"
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5, bindAddress=(source, 0))
    protocol = yield endpoint.connect(Factory.forProtocol(lambda: RawClient(data)))
    answer = yield protocol.done.addTimeout(30, reactor)
    return RawAnswer(answer)
