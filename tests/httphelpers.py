# -*- test-case-name: tests.test_httpauth_proxy -*-
"""
Helpers of the HTTP tests on real loopback sockets: serving a factory on a
free port of 127.0.0.1 behind the tap's L{ConnectionTracker} until the
test ends, and one request with a real L{Agent}, read to its end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IProtocolFactory
from twisted.web.client import readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer
from twisted.web.resource import IResource
from twisted.web.server import Site

from xmppcomp.tap import ConnectionTracker

__all__ = ["fetchBody", "listenTracked", "serveResource"]

#: Bounds a wait: called with a L{defer.Deferred} and what it waits for,
#: returns one that fails the test if it takes too long.
Waiter = Callable[[defer.Deferred[Any], str], defer.Deferred[Any]]


@defer.inlineCallbacks
def listenTracked(
    testCase: Any,
    tracker: ConnectionTracker,
    listenOn: IProtocolFactory | None = None,
    wait: Waiter | None = None,
) -> Any:
    """
    Listen with C{tracker} on a free port of 127.0.0.1 until C{testCase}
    ends: a cleanup stops listening and closes the tracker's connections.

    @param listenOn: a factory wrapping C{tracker} to listen with instead.
    @param wait: bounds the wait for the connections to close, if given.
    @return: a L{defer.Deferred} firing with the port number.
    """
    port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
        tracker if listenOn is None else listenOn
    )

    @defer.inlineCallbacks
    def stop() -> Any:
        yield port.stopListening()
        closed = tracker.closeAll()
        yield closed if wait is None else wait(closed, "HTTP connections closed")

    testCase.addCleanup(stop)
    return port.getHost().port


def serveResource(
    testCase: Any, resource: IResource, wait: Waiter | None = None
) -> defer.Deferred[int]:
    """
    Serve C{resource} with a plain twisted.web L{Site} with
    L{listenTracked}.

    @return: a L{defer.Deferred} firing with the port number.
    """
    d: defer.Deferred[int] = listenTracked(testCase, ConnectionTracker(Site(resource)), wait=wait)
    return d


@defer.inlineCallbacks
def fetchBody(
    agent: IAgent,
    method: bytes,
    url: bytes,
    headers: Headers | None = None,
    body: IBodyProducer | None = None,
    wait: Waiter | None = None,
) -> Any:
    """
    Send one request with C{agent} and read the response's body.

    @param wait: bounds the wait for the answer and for its body, if
        given.
    @return: a L{defer.Deferred} firing with the response and its body.
    """

    def bounded(d: defer.Deferred[Any], what: str) -> defer.Deferred[Any]:
        return d if wait is None else wait(d, "%s %r" % (what, url))

    response = yield bounded(agent.request(method, url, headers, body), "answer to")
    content = yield bounded(readBody(response), "body of")
    return response, content
