# -*- test-case-name: tests.test_webserver_headers -*-
"""
What the harnesses of real web servers in front of an XEP-0070
forward-auth endpoint (L{tests.nginx}, L{tests.caddy}) share: finding the
binary, failing (never skipping) a test when it is missing, and
L{WebServerHarness}, which runs one private server in the foreground on a
free port of 127.0.0.1 with everything it writes in a private prefix
directory, waits until it accepts connections, starts it again on a new
port when another process took the picked one, and stops it.

A module says which server with a subclass of L{WebServerHarness} (its
configuration, command line and environment), a subclass of L{WebSite},
and its own error class.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import attrs
from twisted.internet import defer, task
from twisted.logger import Logger

from .prosody import (
    LOOPBACK,
    _Process,
    accepts,
    fileTail,
    freePorts,
    notInstalled,
    requireInstalled,
    startFor,
)

__all__ = [
    "PortTaken",
    "WebServerHarness",
    "WebSite",
    "binaryPath",
    "missingBinary",
]

log = Logger()

#: Seconds a server may take from spawning to accepting TCP connections.
START_TIMEOUT = 20.0

#: How many times a server is started on a fresh port when one was taken.
START_ATTEMPTS = 3

#: Seconds between two connection attempts while a server starts.
POLL_INTERVAL = 0.05


def waitExplained(
    testCase: Any, d: defer.Deferred[Any], what: str, seconds: float, logTail: Callable[[], str]
) -> defer.Deferred[Any]:
    """
    Wait for C{d} at most C{seconds}; on timeout fail C{testCase}, saying
    what was awaited, with the end of the server's log (C{logTail()}).
    """
    from twisted.internet import reactor

    d.addTimeout(seconds, reactor)

    def explain(failure: Any) -> Any:
        if failure.check(defer.TimeoutError):
            raise testCase.failureException("no %s within %g s\n%s" % (what, seconds, logTail()))
        return failure

    return d.addErrback(explain)


def binaryPath(executable: str, candidates: Sequence[str]) -> str | None:
    """
    The binary C{executable} on C{PATH}, else the first of C{candidates}
    (where Debian installs it: C{/usr/sbin} is not always on C{PATH}) that
    can be run, or L{None} if it is not installed.
    """
    found = shutil.which(executable)
    if found is not None:
        return found
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def missingBinary(executable: str, candidates: Sequence[str], what: str) -> str | None:
    """
    Whether C{executable}, of the Debian package of the same name, is
    installed.

    @param what: the server's name, for the message.
    @return: L{None} if it is, else the reason the tests against C{what}
        cannot run, with how to install it
    """
    if binaryPath(executable, candidates) is not None:
        return None
    where = " nor in ".join(["PATH", *(os.path.dirname(c) for c in candidates)])
    return notInstalled(what, executable, [executable], where)


class PortTaken(Exception):
    """
    Another process took the picked port before the server could bind it.
    """


@attrs.frozen
class WebSite:
    """
    A running private web server.

    @ivar host: the address it listens on (C{127.0.0.1}).
    @ivar port: the port it listens on.
    @ivar authPort: the port of the forward-auth endpoint it asks.
    @ivar prefix: the private directory.
    @ivar root: the directory of the static files it serves.
    @ivar logFile: its (error) log.
    """

    host: str
    port: int
    authPort: int
    prefix: str
    root: str
    logFile: str

    def url(self, path: str) -> str:
        """
        The URL of C{path} (which starts with C{/}) on this server.
        """
        return "http://%s:%d%s" % (self.host, self.port, path)


class WebServerHarness:
    """
    Prepares, starts and stops one private web server; a subclass says
    which.

    @cvar name: the server's name, for messages.
    @cvar executable: the binary's name (and its Debian package's).
    @cvar candidates: where Debian installs the binary.
    @cvar error: what L{start} fails with.
    @cvar siteClass: the L{WebSite} it runs.
    @cvar configName: the configuration file's name in the prefix.
    @cvar logName: the log file's name in the prefix.
    @cvar logLabel: what messages call the log.
    @cvar bindFailure: what the server says when it cannot bind its port.
    @cvar directories: directories to make in the prefix (besides the
        root of the static files).
    @cvar harnessAttribute: the attribute of a test case that
        L{startForTest} sets to the harness.

    @ivar site: what L{start} set up.
    @ivar configFile: the configuration file.
    """

    name: ClassVar[str]
    executable: ClassVar[str]
    candidates: ClassVar[Sequence[str]]
    error: ClassVar[type[Exception]]
    siteClass: ClassVar[type[WebSite]]
    configName: ClassVar[str]
    logName: ClassVar[str]
    logLabel: ClassVar[str]
    bindFailure: ClassVar[str]
    directories: ClassVar[Sequence[str]] = ()
    harnessAttribute: ClassVar[str]

    def __init__(
        self,
        authPort: int,
        files: Mapping[str, bytes],
        reactor: Any = None,
        directory: str | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        """
        @param authPort: the port of the forward-auth endpoint on
            127.0.0.1.
        @param files: static files to serve, relative path (e.g.
            C{"private/index.html"}) to content.
        @param reactor: spawns the server and schedules the waits; the
            global reactor if L{None}.
        @param directory: an empty or missing directory to use as prefix;
            a temporary one (removed by L{stop}) if L{None}.
        @param extra: more configuration text for the site, each block
            possibly of several lines (see the module's C{configuration}).
        """
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        self._reactor = reactor
        self._ownDirectory = directory is None
        if directory is None:
            directory = tempfile.mkdtemp(prefix="xmppcomp-%s-" % (self.executable,))
        prefix = os.path.abspath(directory)
        self.configFile = os.path.join(prefix, self.configName)
        self._files = dict(files)
        self._extra = tuple(extra)
        (port,) = freePorts(1)
        self.site = self.siteClass(
            host=LOOPBACK,
            port=port,
            authPort=authPort,
            prefix=prefix,
            root=os.path.join(prefix, "html"),
            logFile=os.path.join(prefix, self.logName),
        )
        self._process: _Process | None = None

    @classmethod
    def path(cls) -> str | None:
        """
        The server's binary, or L{None} if it is not installed.
        """
        return binaryPath(cls.executable, cls.candidates)

    @classmethod
    def available(cls) -> str | None:
        """
        Whether the server is installed.

        @return: L{None} if it is, else the reason its tests cannot run,
            with how to install it
        """
        return missingBinary(cls.executable, cls.candidates, cls.name)

    @classmethod
    def require(cls) -> None:
        """
        Fail the calling test, with how to install it, when the server is
        missing (see L{tests.prosody.requireInstalled}).
        """
        requireInstalled(cls.available())

    @classmethod
    def startForTest(
        cls,
        testCase: Any,
        authPort: int,
        files: Mapping[str, bytes],
        reactor: Any = None,
        extra: Sequence[str] = (),
    ) -> defer.Deferred[Any]:
        """
        Start a private server for one test in the test's own temporary
        directory (kept under C{_trial_temp} to read after a failure); a
        cleanup of C{testCase} stops it. The harness is set as the
        attribute L{harnessAttribute} of C{testCase}.

        @param authPort: the port of the forward-auth endpoint on
            127.0.0.1.
        @param files: static files, relative path to content.
        @param extra: more configuration text for the site (see the
            module's C{configuration}).
        @return: a L{defer.Deferred} firing with the L{WebSite}.
        """
        harness = cls(authPort, files, reactor, testCase.mktemp(), extra)
        return startFor(testCase, harness, cls.harnessAttribute)

    def configuration(self) -> str:
        """
        The configuration file's text for L{site}.
        """
        raise NotImplementedError()

    def arguments(self) -> list[str]:
        """
        The command line, the program's name first.
        """
        raise NotImplementedError()

    def environment(self) -> dict[str, str]:
        """
        The child's whole environment.
        """
        return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}

    def ready(self) -> bool:
        """
        Whether the server says it is ready (checked before the port).
        """
        return True

    def _write(self) -> None:
        """
        Write the configuration and the static files, and make the
        directories.
        """
        site = self.site
        for path in (site.root, *(os.path.join(site.prefix, d) for d in self.directories)):
            os.makedirs(path, exist_ok=True)
        for relative, content in self._files.items():
            path = os.path.join(site.root, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(content)
        with open(self.configFile, "w", encoding="utf-8") as f:
            f.write(self.configuration())

    @defer.inlineCallbacks
    def start(self) -> Any:
        """
        Write everything, start the server in the foreground and wait
        until it is L{ready} and accepts TCP connections; if another
        process took the port, start again on a new one, up to
        L{START_ATTEMPTS} times.

        @return: a L{Deferred} firing with the L{WebSite}, or failing with
            L{error} (the server is then stopped).
        """
        if self._process is not None:
            raise self.error("this harness already started %s" % (self.name,))
        path = self.path()
        if path is None:
            raise self.error(self.available() or "%s not found" % (self.executable,))
        for attempt in range(1, START_ATTEMPTS + 1):
            self._write()
            if os.path.exists(self.site.logFile):
                os.remove(self.site.logFile)
            process = self._process = _Process()
            self._reactor.spawnProcess(
                process,
                path,
                self.arguments(),
                env=self.environment(),
                path=self.site.prefix,
            )
            try:
                yield self._waitForPort(process)
            except PortTaken as e:
                yield self._stopProcess()
                if attempt == START_ATTEMPTS:
                    yield self.stop()
                    raise self.error(str(e))
                log.info("{name} could not listen ({reason}); new port", name=self.name, reason=e)
                (port,) = freePorts(1)
                self.site = attrs.evolve(self.site, port=port)
                continue
            except BaseException:
                yield self.stop()
                raise
            break
        return self.site

    @defer.inlineCallbacks
    def _waitForPort(self, process: _Process) -> Any:
        deadline = self._reactor.seconds() + START_TIMEOUT
        site = self.site
        while True:
            if not process.running:
                yield process.ended
                text = process.describe() + "\n" + self._logFileTail()
                if self.bindFailure in text:
                    raise PortTaken("%s could not listen: %s" % (self.name, text))
                raise self.error("%s exited while starting: %s" % (self.name, text))
            if self.ready() and (yield accepts(self._reactor, site.host, site.port)):
                return
            if self._reactor.seconds() > deadline:
                raise self.error(
                    "%s did not listen on %s:%d within %g s: %s\n%s"
                    % (
                        self.name,
                        site.host,
                        site.port,
                        START_TIMEOUT,
                        process.describe(),
                        self._logFileTail(),
                    )
                )
            yield task.deferLater(self._reactor, POLL_INTERVAL, lambda: None)

    @defer.inlineCallbacks
    def stop(self) -> Any:
        """
        Stop the server (SIGTERM, then SIGKILL after
        L{tests.prosody.STOP_TIMEOUT} seconds) and wait for its end; remove
        the prefix if the harness made it. Calling it again does no harm.
        """
        yield self._stopProcess()
        if self._ownDirectory:
            shutil.rmtree(self.site.prefix, ignore_errors=True)

    def _stopProcess(self) -> Any:
        if self._process is None:
            return defer.succeed(None)
        return self._process.stop(self._reactor, self.name)

    def _logFileTail(self) -> str:
        """
        The end of the server's log file.
        """
        return fileTail(self.site.logFile, self.logLabel)

    def logTail(self) -> str:
        """
        The end of the server's log, for failure messages.
        """
        return self._logFileTail()
