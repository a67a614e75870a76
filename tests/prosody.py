# -*- test-case-name: tests.test_prosody -*-
"""
A test harness that runs a real Prosody (the Debian package C{prosody}) on
loopback, with a private configuration: its own directory for data, pid
file, log and configuration, ports picked free on 127.0.0.1, one virtual
host with a user account, and one XEP-0114 component. It never touches
C{/etc/prosody} or the system service.

Use it from a L{twisted.trial.unittest.TestCase}::

    requireProsody()
    server = yield startProsody(self)   # stopped by a cleanup
    endpoint = TCP4ClientEndpoint(reactor, server.host, server.componentPort)

The test client logs in over plaintext with PLAIN: the configuration allows
it (C{c2s_require_encryption = false}, C{allow_unencrypted_plain_auth =
true}) because Prosody listens on 127.0.0.1 only and the account is a
throwaway one. Never copy that configuration to a real server.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Sequence
from typing import Any

import attrs
from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.trial.unittest import FailTest
from twisted.words.protocols.jabber import client, jid, xmlstream

__all__ = [
    "PlaintextClientAuthenticator",
    "ProsodyError",
    "ProsodyHarness",
    "ProsodyServer",
    "accepts",
    "clientFactory",
    "fileTail",
    "freePorts",
    "notInstalled",
    "prosodyAvailable",
    "requireInstalled",
    "requireProsody",
    "startFor",
    "startProsody",
]

log = Logger()

#: The address Prosody listens on.
LOOPBACK = "127.0.0.1"

#: The virtual host the test user lives on.
DOMAIN = "example.test"

#: The XEP-0114 component Prosody accepts.
COMPONENT = "comp.example.test"

#: The test user's localpart.
USERNAME = "user"

#: Seconds Prosody may take from spawning to accepting TCP connections.
START_TIMEOUT = 20.0

#: How many times Prosody is started on fresh ports when one was taken.
START_ATTEMPTS = 3

#: Seconds between two connection attempts while Prosody starts.
POLL_INTERVAL = 0.05

#: Seconds Prosody may take to exit after SIGTERM before it gets SIGKILL,
#: and then again after SIGKILL before the harness gives up waiting.
STOP_TIMEOUT = 10.0

#: Seconds C{prosodyctl register} may take.
REGISTER_TIMEOUT = 20.0

#: How much of Prosody's log goes into an error message.
_LOG_TAIL = 4000

#: What Prosody 0.12 logs (core/portmanager.lua) when it cannot listen.
_BIND_FAILURES = ("Failed to open server port", "Failed to activate service")


class ProsodyError(Exception):
    """
    Prosody could not be prepared, started or stopped; the message carries
    what it printed and the end of its log.
    """


class _PortTaken(ProsodyError):
    """
    Prosody could not listen on a picked port: another process took it
    between the pick and Prosody's bind.
    """


def prosodyAvailable() -> str | None:
    """
    Whether the Prosody binaries are installed.

    @return: L{None} if C{prosody} and C{prosodyctl} are on C{PATH}, else
        the reason the Prosody tests cannot run.
    """
    missing = [name for name in ("prosody", "prosodyctl") if shutil.which(name) is None]
    return notInstalled("Prosody", "prosody", missing)


def notInstalled(
    what: str, package: str, missing: Sequence[str], where: str = "PATH"
) -> str | None:
    """
    Why the tests against C{what} cannot run, with how to install it.

    @param package: the Debian package that installs it.
    @param missing: the programs not found; nothing missing gives L{None}.
    @param where: where they were looked for.
    """
    if not missing:
        return None
    return (
        "%s not found on %s: install the Debian package '%s' "
        "(apt-get install -y %s) to run the tests against a real "
        "%s; .ci/run installs it" % (" and ".join(missing), where, package, package, what)
    )


def requireInstalled(reason: str | None) -> None:
    """
    Fail the calling test with C{reason} (what is missing and how to
    install it), unless it is L{None}. A failure, not a skip: a run that
    did not test against the real program must not look like one that did
    (C{.ci/run} installs it).
    """
    if reason is not None:
        raise FailTest(reason)


def requireProsody() -> None:
    """
    Fail the calling test, with how to install it, when Prosody is missing
    (see L{requireInstalled}).
    """
    requireInstalled(prosodyAvailable())


@attrs.frozen
class ProsodyServer:
    """
    A running private Prosody: where to connect and with what.

    @ivar host: the address it listens on (C{127.0.0.1}).
    @ivar domain: the virtual host.
    @ivar c2sPort: the client-to-server port.
    @ivar componentPort: the XEP-0114 component port.
    @ivar componentName: the component's hostname.
    @ivar componentSecret: the component's shared secret.
    @ivar userJID: the test user's bare JID.
    @ivar userPassword: the test user's password.
    @ivar directory: the private directory (configuration, data, log).
    @ivar logFile: Prosody's log file.
    """

    host: str
    domain: str
    c2sPort: int
    componentPort: int
    componentName: str
    componentSecret: str = attrs.field(repr=False)
    userJID: str
    userPassword: str = attrs.field(repr=False)
    directory: str
    logFile: str

    def jidOf(self, user: str) -> str:
        """
        The bare JID of the account C{user} (a localpart) on L{domain}.
        """
        return "%s@%s" % (user, self.domain)

    def passwordOf(self, user: str) -> str:
        """
        The password of the account C{user}: only the test user has one.
        """
        if self.jidOf(user) != self.userJID:
            raise KeyError(user)
        return self.userPassword


def _luaString(value: str) -> str:
    """
    A Lua string literal for C{value}.
    """
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\0", "\\0")
    )
    return '"%s"' % (escaped,)


def freePorts(count: int, host: str = LOOPBACK) -> list[int]:
    """
    Ports that are free on C{host} right now: each is bound to port 0,
    and all are held open together so that they differ, then closed.

    Another process could take one before Prosody binds it; on loopback in
    a test run that is unlikely, and Prosody then fails to start with a
    clear message.
    """
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def configuration(server: ProsodyServer, pidFile: str, dataPath: str, certificates: str) -> str:
    """
    The private Prosody configuration for C{server}.
    """
    q = _luaString
    return "\n".join(
        [
            "-- Written by xmppcomp's tests/prosody.py for one test; loopback only.",
            # Test containers often run as root; Prosody otherwise refuses.
            "run_as_root = true",
            "daemonize = false",
            "data_path = %s" % q(dataPath),
            "pidfile = %s" % q(pidFile),
            "certificates = %s" % q(certificates),
            "plugin_paths = {}",
            "interfaces = { %s }" % q(server.host),
            "local_interfaces = { %s }" % q(server.host),
            "c2s_ports = { %d }" % server.c2sPort,
            "c2s_interfaces = { %s }" % q(server.host),
            "c2s_direct_tls_ports = {}",
            "legacy_ssl_ports = {}",
            "s2s_ports = {}",
            "component_ports = { %d }" % server.componentPort,
            "component_interfaces = { %s }" % q(server.host),
            'modules_enabled = { "saslauth" }',
            'modules_disabled = { "s2s", "offline" }',
            'authentication = "internal_plain"',
            # Plaintext login for the test client: loopback only.
            "allow_unencrypted_plain_auth = true",
            "c2s_require_encryption = false",
            "s2s_require_encryption = false",
            "allow_registration = false",
            "log = { debug = %s }" % q(server.logFile),
            "",
            "VirtualHost %s" % q(server.domain),
            "",
            "Component %s" % q(server.componentName),
            "    component_secret = %s" % q(server.componentSecret),
            "",
        ]
    )


class _Process(ProcessProtocol):
    """
    Collects a child's output and tells when it ends.

    @ivar output: what it wrote to standard output and standard error.
    @ivar ended: fires with the exit code (or L{None} for a signal) when
        the process has ended.
    """

    def __init__(self) -> None:
        self.output = b""
        self.running = False
        self.exitCode: int | None = None
        self.signal: int | None = None
        self.ended: defer.Deferred[int | None] = defer.Deferred()

    def connectionMade(self) -> None:
        self.running = True
        assert self.transport is not None
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        self.running = False
        if reason.check(ProcessDone, ProcessTerminated):
            self.exitCode = reason.value.exitCode
            self.signal = reason.value.signal
        self.ended.callback(self.exitCode)

    def kill(self, signalName: str) -> None:
        """
        Send a signal, if the process still runs.
        """
        if self.running and self.transport is not None:
            try:
                self.transport.signalProcess(signalName)
            except Exception:
                # It ended between the check and the signal.
                pass

    @defer.inlineCallbacks
    def stop(self, reactor: Any, what: str) -> Any:
        """
        SIGTERM, SIGKILL after L{STOP_TIMEOUT} seconds, and wait until the
        process has ended.

        @param what: the program's name, for the log line.
        """
        if self.transport is None:
            return
        if self.running:
            self.kill("TERM")
            try:
                yield _within(reactor, self.ended, STOP_TIMEOUT, lambda: self.kill("KILL"))
            except ProsodyError:
                log.warn(
                    "{what} did not exit within {timeout} s of SIGTERM; killed",
                    what=what,
                    timeout=STOP_TIMEOUT,
                )
        elif not self.ended.called:
            yield self.ended

    def describe(self) -> str:
        return "exit code %r, signal %r, output:\n%s" % (
            self.exitCode,
            self.signal,
            self.output.decode("utf-8", "replace")[-_LOG_TAIL:],
        )


def _within(
    reactor: Any, d: defer.Deferred[Any], seconds: float, onTimeout: Any
) -> defer.Deferred[Any]:
    """
    Wait for C{d} at most C{seconds}; on timeout call C{onTimeout()} (which
    must make C{d} fire, e.g. by killing a process) and fail with
    L{ProsodyError}.
    """
    result: defer.Deferred[Any] = defer.Deferred()
    timedOut = []

    def expire() -> None:
        timedOut.append(True)
        onTimeout()

    timer: IDelayedCall = reactor.callLater(seconds, expire)

    def done(value: Any) -> None:
        if timer.active():
            timer.cancel()
        if timedOut:
            result.errback(ProsodyError("timed out after %g s" % (seconds,)))
        else:
            result.callback(value)

    d.addBoth(done)
    return result


class ProsodyHarness:
    """
    Prepares, starts and stops one private Prosody.

    @ivar server: what L{start} set up.
    @ivar directory: the private directory.
    @ivar configFile: the configuration file.
    """

    def __init__(self, reactor: Any = None, directory: str | None = None) -> None:
        """
        @param reactor: spawns processes and schedules the waits; the global
            reactor if L{None}.
        @param directory: an empty or missing directory to keep everything
            in; a fresh temporary directory (removed by L{stop}) if L{None}.
        """
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        self._reactor = reactor
        self._ownDirectory = directory is None
        if directory is None:
            directory = tempfile.mkdtemp(prefix="xmppcomp-prosody-")
        self.directory = os.path.abspath(directory)
        self.configFile = os.path.join(self.directory, "prosody.cfg.lua")
        c2sPort, componentPort = freePorts(2)
        self.server = ProsodyServer(
            host=LOOPBACK,
            domain=DOMAIN,
            c2sPort=c2sPort,
            componentPort=componentPort,
            componentName=COMPONENT,
            componentSecret=secrets.token_hex(16),
            userJID="%s@%s" % (USERNAME, DOMAIN),
            userPassword=secrets.token_hex(12),
            directory=self.directory,
            logFile=os.path.join(self.directory, "prosody.log"),
        )
        self._process: _Process | None = None

    def _environment(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": self.directory,
            "LANG": "C.UTF-8",
        }

    def _write(self) -> None:
        """
        Write the configuration and create the directories it names.
        """
        dataPath = os.path.join(self.directory, "data")
        certificates = os.path.join(self.directory, "certs")
        for path in (self.directory, dataPath, certificates):
            os.makedirs(path, mode=0o700, exist_ok=True)
        text = configuration(
            self.server,
            pidFile=os.path.join(self.directory, "prosody.pid"),
            dataPath=dataPath,
            certificates=certificates,
        )
        fd = os.open(self.configFile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)

    def _spawn(self, process: _Process, executable: str, *args: str) -> None:
        path = shutil.which(executable)
        if path is None:
            raise ProsodyError(prosodyAvailable() or "%s not found" % (executable,))
        self._reactor.spawnProcess(
            process,
            path,
            [executable, *args],
            env=self._environment(),
            path=self.directory,
        )

    @defer.inlineCallbacks
    def _register(self) -> Any:
        """
        Create the test user with C{prosodyctl register}, offline, with the
        private configuration.
        """
        server = self.server
        user, _, domain = server.userJID.partition("@")
        process = _Process()
        self._spawn(
            process,
            "prosodyctl",
            "--config",
            self.configFile,
            "register",
            user,
            domain,
            server.userPassword,
        )
        try:
            code = yield _within(
                self._reactor, process.ended, REGISTER_TIMEOUT, lambda: process.kill("KILL")
            )
        except ProsodyError as e:
            raise ProsodyError("prosodyctl register: %s; %s" % (e, process.describe()))
        if code != 0:
            raise ProsodyError("prosodyctl register failed: " + process.describe())

    @defer.inlineCallbacks
    def start(self) -> Any:
        """
        Write the configuration, register the user, start C{prosody -F}
        and wait until both ports accept TCP connections. If another
        process took one of the picked ports in the meantime, Prosody is
        started again on new ports, up to L{START_ATTEMPTS} times.

        @return: a L{Deferred} firing with the L{ProsodyServer}, or failing
            with L{ProsodyError} (Prosody is then stopped).
        """
        if self._process is not None:
            raise ProsodyError("this harness already started Prosody")
        self._write()
        yield self._register()
        for attempt in range(1, START_ATTEMPTS + 1):
            if os.path.exists(self.server.logFile):
                os.remove(self.server.logFile)
            process = self._process = _Process()
            self._spawn(process, "prosody", "-F", "--config", self.configFile)
            try:
                yield self._waitForPorts(process)
            except _PortTaken as e:
                yield self._stopProcess()
                if attempt == START_ATTEMPTS:
                    yield self.stop()
                    raise ProsodyError(str(e))
                log.info("Prosody could not listen ({reason}); new ports", reason=e)
                c2sPort, componentPort = freePorts(2)
                self.server = attrs.evolve(
                    self.server, c2sPort=c2sPort, componentPort=componentPort
                )
                self._write()
                continue
            except BaseException:
                yield self.stop()
                raise
            break
        log.info(
            "Prosody running on {host}: c2s {c2s}, component {component}",
            host=self.server.host,
            c2s=self.server.c2sPort,
            component=self.server.componentPort,
        )
        return self.server

    @defer.inlineCallbacks
    def _waitForPorts(self, process: _Process) -> Any:
        """
        Try to connect to each port every L{POLL_INTERVAL} seconds until it
        accepts, Prosody exits, or L{START_TIMEOUT} passes.
        """
        deadline = self._reactor.seconds() + START_TIMEOUT
        for port in (self.server.componentPort, self.server.c2sPort):
            while True:
                if not process.running:
                    raise ProsodyError(
                        "prosody exited while starting: %s\n%s"
                        % (process.describe(), self.logTail())
                    )
                failed = self._bindFailure()
                if failed is not None:
                    raise _PortTaken(
                        "prosody could not listen: %s\n%s" % (failed, self.logTail())
                    )
                if (yield self._accepts(port)):
                    break
                if self._reactor.seconds() > deadline:
                    raise ProsodyError(
                        "prosody did not listen on %s:%d within %g s: %s\n%s"
                        % (
                            self.server.host,
                            port,
                            START_TIMEOUT,
                            process.describe(),
                            self.logTail(),
                        )
                    )
                yield task.deferLater(self._reactor, POLL_INTERVAL, lambda: None)

    def _bindFailure(self) -> str | None:
        """
        The log line saying Prosody could not open a port (another process
        took one of the picked ports), if there is one: Prosody goes on
        running without it, so waiting longer would not help.
        """
        try:
            with open(self.server.logFile, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return None
        for line in lines:
            if any(marker in line for marker in _BIND_FAILURES):
                return line
        return None

    def _accepts(self, port: int) -> defer.Deferred[bool]:
        return accepts(self._reactor, self.server.host, port)

    @defer.inlineCallbacks
    def stop(self) -> Any:
        """
        Stop Prosody: SIGTERM, then SIGKILL if it has not exited within
        L{STOP_TIMEOUT} seconds; wait for it to end. Remove the directory
        if the harness made it. Calling it again does no harm.
        """
        yield self._stopProcess()
        if self._ownDirectory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _stopProcess(self) -> Any:
        """
        Stop the Prosody process, if one was started, and wait for its end.
        """
        if self._process is None:
            return defer.succeed(None)
        return self._process.stop(self._reactor, "Prosody")

    def logTail(self) -> str:
        """
        The end of Prosody's log, for error messages.
        """
        return fileTail(self.server.logFile, "Prosody log")


def startProsody(testCase: Any, reactor: Any = None) -> defer.Deferred[ProsodyServer]:
    """
    Start a private Prosody for one test; a cleanup of C{testCase} stops it.

    Its directory is the test's own temporary directory (under
    C{_trial_temp}), so the configuration and log stay there to read after
    a failure.

    The harness is also set as C{testCase.prosodyHarness}, for
    L{ProsodyHarness.logTail} in failure messages.

    @param testCase: a L{twisted.trial.unittest.TestCase}.
    @param reactor: the reactor; the global one if L{None}.
    @return: a L{Deferred} firing with the L{ProsodyServer}.
    """
    harness = ProsodyHarness(reactor, directory=testCase.mktemp())
    return startFor(testCase, harness, "prosodyHarness")


def startFor(testCase: Any, harness: Any, attribute: str) -> defer.Deferred[Any]:
    """
    Start C{harness} for one test: a cleanup of C{testCase} stops it, and
    it is set as C{testCase.<attribute>} (for its C{logTail} in failure
    messages).

    @return: what C{harness.start()} returns.
    """
    testCase.addCleanup(harness.stop)
    setattr(testCase, attribute, harness)
    d: defer.Deferred[Any] = harness.start()
    return d


def accepts(reactor: Any, host: str, port: int) -> defer.Deferred[bool]:
    """
    Whether C{host}:C{port} accepts a TCP connection now; the connection
    is closed at once.
    """
    endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=1)

    def connected(protocol: Protocol) -> bool:
        assert protocol.transport is not None
        protocol.transport.abortConnection()
        return True

    d = endpoint.connect(Factory.forProtocol(Protocol))
    return d.addCallbacks(connected, lambda _: False)


def fileTail(path: str, label: str) -> str:
    """
    The end (L{_LOG_TAIL} characters at most) of the log C{path}, called
    C{label}, for error messages.
    """
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - _LOG_TAIL))
            data = f.read()
    except OSError as e:
        return "(no %s: %s)" % (label, e)
    return "%s (%s), end:\n%s" % (label, path, data.decode("utf-8", "replace"))


class PlaintextClientAuthenticator(client.XMPPAuthenticator):
    """
    A Twisted client authenticator that skips STARTTLS, for the private
    Prosody on loopback, which offers no TLS and allows plaintext PLAIN.
    Never use it anywhere else.
    """

    def associateWithStream(self, xs: xmlstream.XmlStream) -> None:
        super().associateWithStream(xs)
        xs.initializers = [
            init
            for init in xs.initializers
            if not isinstance(init, xmlstream.TLSInitiatingInitializer)
        ]


def clientFactory(server: ProsodyServer, resource: str = "test") -> xmlstream.XmlStreamFactory:
    """
    A Twisted XMPP client factory that logs in as the test user of
    C{server} over plaintext on loopback; observe
    L{xmlstream.STREAM_AUTHD_EVENT} and L{xmlstream.INIT_FAILED_EVENT} with
    C{addBootstrap}.
    """
    userJID = jid.JID("%s/%s" % (server.userJID, resource))
    return xmlstream.XmlStreamFactory(
        PlaintextClientAuthenticator(userJID, server.userPassword)
    )
