# -*- test-case-name: tests.test_httpauth_store -*-
"""
A test harness that runs a real Redis (the Debian package C{redis-server})
on loopback with a private configuration, as L{tests.prosody} and
L{tests.nginx} run theirs.

The configuration is written to a private directory (the test's own
temporary one): a free port of 127.0.0.1 (C{bind 127.0.0.1}, no Unix
socket), no persistence (C{save ""}, C{appendonly no}) unless asked for
(then an append-only file in the private directory, C{appendonly yes}),
the eviction policy given (C{noeviction} by default), C{daemonize no} (it
runs in the foreground as the harness's child) and its working directory
and log file in the private directory; it never reads C{/etc/redis} nor
touches a system Redis. L{RedisHarness.start} waits until it answers
C{PING}; L{stop} stops it by its PID (SIGTERM, then SIGKILL), and
L{restart} starts it again on the same port: empty, or, with persistence,
with what it held (Redis writes its append-only file out on SIGTERM).

Use it from a L{twisted.trial.unittest.TestCase}::

    redis = yield startRedis(self)
    store = RedisStore(reactor, redis.host, redis.port, ...)
"""

from __future__ import annotations

import os
import shutil
import signal
from typing import Any

import attrs
from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from .prosody import LOOPBACK, _Process, fileTail, freePorts, notInstalled, requireInstalled

__all__ = ["RedisError", "RedisHarness", "RedisServer", "requireRedis", "startRedis"]

log = Logger()

#: Where Debian installs it.
REDIS_SERVER = "/usr/bin/redis-server"

#: Seconds Redis may take from spawning to answering PING.
START_TIMEOUT = 20.0

#: Seconds between two PINGs while Redis starts.
POLL_INTERVAL = 0.05


class RedisError(Exception):
    """
    The private Redis could not be started.
    """


@attrs.frozen
class RedisServer:
    """
    A running private Redis.

    @ivar host: its address (127.0.0.1).
    @ivar port: its port.
    @ivar directory: its private directory (configuration, log).
    """

    host: str
    port: int
    directory: str

    @property
    def endpoint(self) -> str:
        """
        Its endpoint string, as C{[httpauth.store] redis} takes it.
        """
        return f"tcp:host={self.host}:port={self.port}"


def redisAvailable() -> str | None:
    """
    L{None} if redis-server is installed, else why the tests against it
    cannot run, with how to install it (C{.ci/run} does).
    """
    missing = [] if os.access(REDIS_SERVER, os.X_OK) else ["redis-server"]
    return notInstalled("Redis", "redis-server", missing, os.path.dirname(REDIS_SERVER))


def requireRedis() -> None:
    """
    Fail the calling test, with how to install it, when redis-server is
    missing: a failure, never a skip (C{.ci/run} installs it).
    """
    requireInstalled(redisAvailable())


class _Ping(Protocol):
    def __init__(self) -> None:
        self.answered: defer.Deferred[bool] = defer.Deferred()
        self._data = b""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(b"PING\r\n")

    def dataReceived(self, data: bytes) -> None:
        self._data += data
        if b"\r\n" in self._data and not self.answered.called:
            # A Redis with a password answers NOAUTH: it answers.
            self.answered.callback(self._data.startswith((b"+PONG", b"-NOAUTH")))
            assert self.transport is not None
            self.transport.loseConnection()

    def connectionLost(self, reason: object = None) -> None:
        if not self.answered.called:
            self.answered.callback(False)


class _Command(Protocol):
    """
    Sends one command (a RESP array) and fires with its reply: the text of
    a status, error or integer line, the bulk string (L{None} for a null
    one).
    """

    def __init__(self, args: tuple[str, ...]) -> None:
        self.reply: defer.Deferred[str | None] = defer.Deferred()
        self._args = args
        self._data = b""

    def connectionMade(self) -> None:
        assert self.transport is not None
        parts = [b"*%d\r\n" % (len(self._args),)]
        for arg in self._args:
            data = arg.encode("utf-8")
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.transport.write(b"".join(parts))

    def dataReceived(self, data: bytes) -> None:
        self._data += data
        line, found, rest = self._data.partition(b"\r\n")
        if not found or self.reply.called:
            return
        if line.startswith(b"$"):
            size = int(line[1:])
            if size < 0:
                value: str | None = None
            elif len(rest) >= size + 2:
                value = rest[:size].decode("utf-8")
            else:
                return
        else:
            value = line.decode("utf-8")
        self.reply.callback(value)
        assert self.transport is not None
        self.transport.loseConnection()

    def connectionLost(self, reason: object = None) -> None:
        if not self.reply.called:
            self.reply.errback(RedisError("the connection closed before the reply"))


def _answers(reactor: Any, host: str, port: int) -> defer.Deferred[bool]:
    """
    Whether a Redis at C{host}:C{port} answers C{PING} now.
    """
    endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=1)
    d = endpoint.connect(Factory.forProtocol(_Ping))
    return d.addCallbacks(lambda p: p.answered, lambda _: False)


class RedisHarness:
    """
    Starts, restarts and stops one private redis-server.

    @ivar server: where it listens.
    @ivar configFile: its configuration file.
    """

    def __init__(
        self,
        directory: str,
        reactor: Any = None,
        policy: str = "noeviction",
        password: str | None = None,
        persistent: bool = False,
    ) -> None:
        """
        @param directory: an empty or missing private directory.
        @param policy: its C{maxmemory-policy}.
        @param password: its C{requirepass}, or L{None} for none.
        @param persistent: whether it keeps its data across a restart, in
            an append-only file of the private directory.
        """
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        self._reactor = reactor
        directory = os.path.abspath(directory)
        os.makedirs(directory, exist_ok=True)
        (port,) = freePorts(1)
        self.server = RedisServer(LOOPBACK, port, directory)
        self.configFile = os.path.join(directory, "redis.conf")
        self._logFile = os.path.join(directory, "redis.log")
        self._policy = policy
        self._password = password
        self._persistent = persistent
        self._process: _Process | None = None

    def configuration(self) -> str:
        """
        The configuration file's text.
        """
        lines = [
            f"port {self.server.port}",
            f"bind {self.server.host}",
            "protected-mode yes",
            'save ""',
            "appendonly %s" % ("yes" if self._persistent else "no",),
            "daemonize no",
            'supervised no',
            f"maxmemory-policy {self._policy}",
            f"dir {self.server.directory}",
            f"logfile {self._logFile}",
            "databases 1",
        ]
        if self._password is not None:
            lines.append(f"requirepass {self._password}")
        return "\n".join(line for line in lines if line) + "\n"

    @defer.inlineCallbacks
    def start(self) -> Any:
        """
        Write the configuration, start redis-server in the foreground and
        wait until it answers C{PING}.

        @return: a L{defer.Deferred} firing with the L{RedisServer}.
        """
        requireRedis()
        if self._process is not None and self._process.running:
            raise RedisError("this harness's redis-server runs already")
        with open(self.configFile, "w", encoding="utf-8") as f:
            f.write(self.configuration())
        process = self._process = _Process()
        self._reactor.spawnProcess(
            process,
            REDIS_SERVER,
            ["redis-server", self.configFile],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            path=self.server.directory,
        )
        deadline = self._reactor.seconds() + START_TIMEOUT
        server = self.server
        while True:
            if not process.running:
                yield process.ended
                raise RedisError(
                    "redis-server exited while starting: %s\n%s"
                    % (process.describe(), fileTail(self._logFile, "redis.log"))
                )
            if (yield self.answers()):
                return server
            if self._reactor.seconds() > deadline:
                yield self.stop()
                raise RedisError(
                    "redis-server did not answer on %s:%d within %g s: %s\n%s"
                    % (
                        server.host,
                        server.port,
                        START_TIMEOUT,
                        process.describe(),
                        fileTail(self._logFile, "redis.log"),
                    )
                )
            yield task.deferLater(self._reactor, POLL_INTERVAL, lambda: None)

    def answers(self) -> defer.Deferred[bool]:
        """
        Whether it answers C{PING} now.
        """
        return _answers(self._reactor, self.server.host, self.server.port)

    def command(self, *args: str) -> defer.Deferred[str | None]:
        """
        Send one command as an operator would with redis-cli (no password),
        and fire with its reply (see L{_Command}).
        """
        endpoint = TCP4ClientEndpoint(self._reactor, self.server.host, self.server.port, timeout=5)
        d = endpoint.connect(Factory.forProtocol(lambda: _Command(args)))
        return d.addCallback(lambda p: p.reply)

    def signal(self, name: str) -> None:
        """
        Send redis-server the signal C{name} (C{"STOP"}: it stops answering,
        as a Redis that hangs; C{"CONT"}: it goes on).
        """
        assert self._process is not None and self._process.transport is not None
        # By number: Twisted maps only a few names (not CONT).
        self._process.transport.signalProcess(getattr(signal, "SIG" + name))

    def stop(self) -> defer.Deferred[Any]:
        """
        Stop redis-server by its PID (SIGTERM, then SIGKILL) and wait for its
        end. Calling it again does no harm.
        """
        if self._process is None:
            return defer.succeed(None)
        d: defer.Deferred[Any] = self._process.stop(self._reactor, "redis-server")
        return d

    @defer.inlineCallbacks
    def restart(self) -> Any:
        """
        Stop it and start it again on the same port: empty, unless it is
        persistent.
        """
        yield self.stop()
        server = yield self.start()
        return server

    def remove(self) -> None:
        """
        Remove the private directory.
        """
        shutil.rmtree(self.server.directory, ignore_errors=True)


def startRedis(
    testCase: Any,
    policy: str = "noeviction",
    password: str | None = None,
    reactor: Any = None,
    persistent: bool = False,
) -> defer.Deferred[RedisServer]:
    """
    Start a private redis-server for one test, in the test's own temporary
    directory; a cleanup of C{testCase} stops it. The harness is set as
    C{testCase.redis}.

    @param persistent: see L{RedisHarness.__init__}.
    """
    harness = RedisHarness(testCase.mktemp(), reactor, policy, password, persistent)
    testCase.addCleanup(harness.stop)
    testCase.redis = harness
    d: defer.Deferred[RedisServer] = harness.start()
    return d
