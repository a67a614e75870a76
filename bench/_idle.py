"""
Idle TCP connections for the flood benchmarks (bench/http_idle.py,
bench/preauth_flood.py): open many connections from one loopback source
address, send nothing, and keep count of what the server did with them
(kept open, closed, refused). Run by hand only; never imported by the
test suite.
"""

from __future__ import annotations

import resource
from typing import Any

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure


def raiseFileLimit(wanted: int) -> int:
    """
    Raise this process's soft C{RLIMIT_NOFILE} towards C{wanted}, up to the
    hard limit.

    @return: the soft limit now.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


class IdleConnection(Protocol):
    """
    Sends nothing; records whether (and when) the server closed it.
    """

    def __init__(self, pool: "IdlePool") -> None:
        self.pool = pool
        self.open = False

    def connectionMade(self) -> None:
        self.open = True
        self.pool.connected += 1

    def dataReceived(self, data: bytes) -> None:
        self.pool.bytesReceived += len(data)

    def connectionLost(self, reason: Failure = Failure(Exception("closed"))) -> None:
        if self.open:
            self.open = False
            if not self.pool.closing:
                self.pool.closedByServer += 1


class IdlePool:
    """
    C{count} idle connections from C{source} to C{host}:C{port}.

    @ivar connected: connections that were established.
    @ivar failed: connection attempts that failed (refused, reset).
    @ivar closedByServer: established connections the server closed.
    @ivar bytesReceived: what the server wrote to them, in all.
    """

    def __init__(self, reactor: Any, host: str, port: int, source: str) -> None:
        self.endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=30, bindAddress=(source, 0))
        self.protocols: list[IdleConnection] = []
        self.connected = 0
        self.failed = 0
        self.closedByServer = 0
        self.bytesReceived = 0
        self.closing = False

    @property
    def held(self) -> int:
        """
        Connections open now.
        """
        return sum(1 for p in self.protocols if p.open)

    @defer.inlineCallbacks
    def open(self, count: int, batch: int = 100) -> Any:
        """
        Open C{count} connections, C{batch} at a time.
        """
        factory = Factory()
        factory.buildProtocol = lambda addr: IdleConnection(self)  # type: ignore[method-assign]

        def failed(failure: Failure) -> None:
            self.failed += 1

        started = 0
        while started < count:
            n = min(batch, count - started)
            started += n
            ds = [self.endpoint.connect(factory).addCallbacks(self.protocols.append, failed) for _ in range(n)]
            yield defer.gatherResults(ds)

    def close(self) -> None:
        """
        Abort every connection still open.
        """
        self.closing = True
        for p in self.protocols:
            if p.open and p.transport is not None:
                p.transport.abortConnection()


def ensureFileLimit(idle: int, wanted: int, needed: int) -> None:
    """
    Raise this process's file limit to C{idle + wanted}; exit if it cannot
    reach C{idle + needed}.
    """
    nofile = raiseFileLimit(idle + wanted)
    if nofile < idle + needed:
        raise SystemExit("this process may open %d files; --idle %d needs more (ulimit -n)" % (nofile, idle))


def runAll(name: str, arguments: Any, oneRun: Any) -> list[dict[str, Any]]:
    """
    Run the reactor for C{arguments.runs} calls of C{oneRun(arguments,
    serial)} (serials from 1), one after the other.

    @return: what each run returned, in order.
    @raise SystemExit: a run failed (with its traceback).
    """
    from twisted.internet import reactor

    results: list[dict[str, Any]] = []
    errors: list[str] = []

    @defer.inlineCallbacks
    def go() -> Any:
        try:
            for serial in range(arguments.runs):
                results.append((yield oneRun(arguments, serial + 1)))
        except Exception:
            import traceback

            errors.append(traceback.format_exc())
        finally:
            reactor.stop()

    reactor.callWhenRunning(go)
    reactor.run()
    if errors:
        raise SystemExit("%s failed:\n%s" % (name, errors[0]))
    return results
