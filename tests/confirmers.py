# -*- test-case-name: tests.test_several_confirmers -*-
"""
A test harness that runs C{twistd xmppcomp} (the XEP-0070 confirmer) as
real processes, several of them behind one component hostname and sharing
one Redis (issue 19).

Each L{ConfirmerProcess} has a private directory with its configuration
(C{component.toml}: the server, the protocol, the secret in a file, the
hostname, C{[httpauth]} on a free loopback port with a health path and a
drain timeout, C{[httpauth.store]} on the Redis given (if any), and
C{[xtls]} and C{[[httpauth.rules]]} if given, else no XTLS), its secret
and its log. L{ConfirmerProcess.start} spawns::

    python -c "from twisted.scripts.twistd import run; run()" \\
        -n --pidfile= --logfile=twistd.log xmppcomp --config component.toml

with this interpreter (C{sys.executable}) and this checkout on
C{PYTHONPATH}, and waits until the health endpoint answers 200 (the
component's stream is up, the listener takes requests, Redis answers),
polling through the reactor. It can be sent SIGTERM (it drains, then
exits) or SIGKILL, and started again on the same port; a cleanup of the
test stops it (SIGTERM, then SIGKILL). The end of its log goes into every
failure message (L{ConfirmerProcess.logTail}).

Use it from a L{twisted.trial.unittest.TestCase}::

    settings = ConfirmerSettings(server=..., serverDomain=..., ...)
    one, two = yield startConfirmers(self, settings, 2)
    # one.url, one.kill(), (yield one.terminate()), (yield one.start())
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from twisted.internet import defer, task
from twisted.web.client import Agent, readBody

from .prosody import LOOPBACK, _Process, fileTail, freePorts

__all__ = [
    "HEALTH_PATH",
    "PUBLIC_ORIGIN",
    "ConfirmerError",
    "ConfirmerProcess",
    "ConfirmerSettings",
    "configuration",
    "logTails",
    "startConfirmers",
]

#: The checkout the children import xmppcomp (and its twistd plugin) from.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The origin of the site every confirmer protects.
PUBLIC_ORIGIN = "https://www.example.net"

#: Where the health endpoint is.
HEALTH_PATH = "/.xmppcomp/health"

#: Seconds a confirmer may take from spawning to a healthy answer.
START_TIMEOUT = 30.0

#: Seconds between two looks at the health endpoint while it starts.
POLL_INTERVAL = 0.05

#: Seconds a confirmer may take to exit after SIGTERM (it drains first)
#: before it gets SIGKILL.
STOP_TIMEOUT = 30.0

#: Seconds one health request may take.
HEALTH_TIMEOUT = 5.0


class ConfirmerError(Exception):
    """
    A confirmer process could not be started or stopped; the message
    carries the end of its log.
    """


@attrs.frozen
class ConfirmerSettings:
    """
    What the confirmers behind one hostname share.

    @ivar server: the server's client endpoint string.
    @ivar serverDomain: the server's domain.
    @ivar protocol: C{"xep0114"} or C{"xep0225"}.
    @ivar hostname: the component hostname they all bind.
    @ivar secret: the component's secret (written to a file).
    @ivar redis: the Redis endpoint string of C{[httpauth.store]}, or
        L{None} for no C{[httpauth.store]} (one confirmer alone).
    @ivar prefix: the Redis key prefix.
    @ivar identity: the SASL identity (XEP-0225), or L{None}.
    @ivar caFile: the PEM bundle the server's certificate is checked
        against (XEP-0225), or L{None}.
    @ivar timeout: seconds a user has to confirm (C{[httpauth] timeout}).
    @ivar drainTimeout: C{[httpauth] drain_timeout}.
    @ivar limits: C{[httpauth.limits]}, raised for load from one address.
    @ivar xtls: the C{[xtls]} table (C{certificate}, C{key}, C{trust}), or
        L{None} for C{enabled = false}.
    @ivar rules: the C{[[httpauth.rules]]} tables, in order; none for the
        default (everybody everywhere).
    @ivar directory: C{[httpauth] directory}, the site served, or L{None}
        for the built-in page.
    """

    server: str
    serverDomain: str
    protocol: str
    hostname: str
    secret: str = attrs.field(repr=False)
    redis: str | None
    prefix: str = "xmppcomp-test:"
    identity: str | None = None
    caFile: str | None = None
    timeout: float = 15.0
    drainTimeout: float = 15.0
    limits: Mapping[str, int] = attrs.field(
        factory=lambda: {
            "pending_per_jid": 1000,
            "pending_total": 2000,
            "attempts_per_client": 100000,
            "attempt_window": 60,
            "max_remembered": 100000,
            "remembered_per_jid": 100000,
            "remembered_per_domain": 100000,
        }
    )
    xtls: Mapping[str, str] | None = None
    rules: Sequence[Mapping[str, Any]] = ()
    directory: str | None = None


def _toml(value: Any) -> str:
    """
    A TOML value for a string, a number, a boolean or a list of strings:
    JSON's forms, which TOML reads the same.
    """
    return json.dumps(value)


def configuration(settings: ConfirmerSettings, httpPort: int, secretFile: str) -> str:
    """
    The C{component.toml} of one confirmer listening on C{httpPort}.
    """
    component = {
        "server": settings.server,
        "server_domain": settings.serverDomain,
        "protocol": settings.protocol,
        "hostnames": [settings.hostname],
    }
    if settings.identity is not None:
        component["identity"] = settings.identity
    lines = ["# Written by xmppcomp's tests/confirmers.py for one test; loopback only.", "[component]"]
    lines += ["%s = %s" % (key, _toml(value)) for key, value in component.items()]
    lines.append("secret = { file = %s }" % (_toml(secretFile),))
    if settings.caFile is not None:
        lines += ["[component.trust]", "ca_file = %s" % (_toml(settings.caFile),)]
    lines += [
        "[component.limits]",
        # A dead server is noticed and retried soon in a test.
        "negotiation_timeout = 10",
        "[httpauth]",
        "listen = %s" % (_toml("tcp:%d:interface=%s" % (httpPort, LOOPBACK)),),
        # One site behind both: the URL asked about, and the sessions,
        # are the same whichever instance answers.
        "public_origin = %s" % (_toml(PUBLIC_ORIGIN),),
        'allowed_hosts = ["127.0.0.1"]',
        'access_log = "none"',
        "health_path = %s" % (_toml(HEALTH_PATH),),
        "drain_timeout = %s" % (_toml(settings.drainTimeout),),
        "timeout = %s" % (_toml(settings.timeout),),
    ]
    if settings.directory is not None:
        lines.append("directory = %s" % (_toml(settings.directory),))
    lines.append("[httpauth.limits]")
    lines += ["%s = %s" % (key, _toml(value)) for key, value in settings.limits.items()]
    for rule in settings.rules:
        lines.append("[[httpauth.rules]]")
        lines += ["%s = %s" % (key, _toml(value)) for key, value in rule.items()]
    if settings.redis is not None:
        lines += [
            "[httpauth.store]",
            "redis = %s" % (_toml(settings.redis),),
            "prefix = %s" % (_toml(settings.prefix),),
            # Back soon after Redis comes back.
            "reconnect_max_delay = 0.5",
        ]
    lines.append("[xtls]")
    if settings.xtls is None:
        lines.append("enabled = false")
    else:
        lines += ["%s = %s" % (key, _toml(value)) for key, value in settings.xtls.items()]
    return "\n".join(lines) + "\n"


class ConfirmerProcess:
    """
    One C{twistd xmppcomp} process: started, signalled, started again.

    @ivar name: names it in messages (C{"confirmer 1"}).
    @ivar port: its HTTP port (the same across restarts).
    @ivar directory: its private directory.
    @ivar logFile: twistd's log.
    @ivar starts: how many times it was started.
    """

    def __init__(self, reactor: Any, directory: str, name: str, settings: ConfirmerSettings) -> None:
        self._reactor = reactor
        self.name = name
        self.settings = settings
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        (self.port,) = freePorts(1)
        self.logFile = os.path.join(self.directory, "twistd.log")
        self.configFile = os.path.join(self.directory, "component.toml")
        self._secretFile = os.path.join(self.directory, "comp.secret")
        self._process: _Process | None = None
        self.starts = 0
        self._agent = Agent(reactor)

    @property
    def url(self) -> str:
        """
        The base URL of its HTTP listener.
        """
        return "http://%s:%d/" % (LOOPBACK, self.port)

    @property
    def running(self) -> bool:
        """
        Whether its process runs.
        """
        return self._process is not None and self._process.running

    @property
    def pid(self) -> int | None:
        """
        Its process id while it runs.
        """
        if self._process is None or self._process.transport is None:
            return None
        pid: int | None = self._process.transport.pid
        return pid

    def _write(self) -> None:
        fd = os.open(self._secretFile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(self.settings.secret + "\n")
        with open(self.configFile, "w", encoding="utf-8") as f:
            f.write(configuration(self.settings, self.port, self._secretFile))

    @defer.inlineCallbacks
    def start(self) -> Any:
        """
        Write its configuration, spawn it, and wait until its health
        endpoint answers 200.

        @raise ConfirmerError: it exited, or was not healthy within
            L{START_TIMEOUT} seconds (it is then stopped).
        """
        if self.running:
            raise ConfirmerError("%s runs already" % (self.name,))
        self._write()
        process = self._process = _Process()
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT
        env["PYTHONUNBUFFERED"] = "1"
        self._reactor.spawnProcess(
            process,
            sys.executable,
            [
                sys.executable,
                "-c",
                "from twisted.scripts.twistd import run; run()",
                "-n",
                "--pidfile=",
                "--logfile=%s" % (self.logFile,),
                "xmppcomp",
                "--config",
                self.configFile,
            ],
            env=env,
            path=self.directory,
        )
        self.starts += 1
        deadline = self._reactor.seconds() + START_TIMEOUT
        last = "no answer yet"
        while True:
            if not process.running:
                yield process.ended
                raise ConfirmerError(
                    "%s exited while starting: %s\n%s" % (self.name, process.describe(), self.logTail())
                )
            code, body = yield self.health()
            if code == 200:
                return self
            last = "%s %s" % (code, body)
            if self._reactor.seconds() > deadline:
                yield self.stop()
                raise ConfirmerError(
                    "%s was not healthy within %g s (last: %s)\n%s"
                    % (self.name, START_TIMEOUT, last, self.logTail())
                )
            yield task.deferLater(self._reactor, POLL_INTERVAL, lambda: None)

    @defer.inlineCallbacks
    def health(self) -> Any:
        """
        Ask its health endpoint once.

        @return: a L{Deferred} firing with the status code and the JSON
            body, or C{(None, why)} when it did not answer.
        """
        d = self._agent.request(b"GET", (self.url.rstrip("/") + HEALTH_PATH).encode("ascii"))
        d.addTimeout(HEALTH_TIMEOUT, self._reactor)
        try:
            response = yield d
            body = yield readBody(response)
        except Exception as e:
            return None, "%s: %s" % (type(e).__name__, e)
        try:
            return response.code, json.loads(body)
        except ValueError:
            return response.code, body

    def kill(self) -> None:
        """
        SIGKILL it (it has no chance to answer anything).
        """
        if self._process is not None:
            self._process.kill("KILL")

    def terminate(self) -> defer.Deferred[int | None]:
        """
        SIGTERM it (it drains, then exits).

        @return: fires with its exit code once it has exited.
        """
        if self._process is None:
            return defer.succeed(None)
        self._process.kill("TERM")
        return self.ended()

    def ended(self) -> defer.Deferred[int | None]:
        """
        Fires with the exit code once it has exited (each call its own
        L{Deferred}).
        """
        process = self._process
        if process is None or not process.running:
            return defer.succeed(None if process is None else process.exitCode)
        d: defer.Deferred[int | None] = defer.Deferred()

        def done(result: Any) -> Any:
            d.callback(process.exitCode)
            return result

        process.ended.addBoth(done)
        return d

    @property
    def exitCode(self) -> int | None:
        """
        The exit code of its last process (L{None}: a signal, or still
        running).
        """
        return None if self._process is None else self._process.exitCode

    @property
    def exitSignal(self) -> int | None:
        """
        The signal that ended its last process, if one did.
        """
        return None if self._process is None else self._process.signal

    def stop(self) -> defer.Deferred[Any]:
        """
        SIGTERM, SIGKILL after L{STOP_TIMEOUT} seconds, and wait until it
        has exited. Calling it again does no harm.
        """
        if self._process is None:
            return defer.succeed(None)
        d: defer.Deferred[Any] = self._process.stop(self._reactor, self.name)
        return d

    def logText(self) -> str:
        """
        Its whole log (every start of it).
        """
        try:
            with open(self.logFile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def logTail(self) -> str:
        """
        The end of its log and of what it printed, for failure messages.
        """
        printed = "" if self._process is None else self._process.describe()
        return "%s\n%s: %s" % (fileTail(self.logFile, self.name + " log"), self.name, printed)


@defer.inlineCallbacks
def startConfirmers(
    testCase: Any, settings: ConfirmerSettings, count: int = 2, reactor: Any = None
) -> Any:
    """
    Start C{count} confirmers with C{settings}, each in a directory of the
    test's own, one after the other (each binds the name and is healthy
    before the next starts); a cleanup of C{testCase} stops them all.

    @return: a L{Deferred} firing with the list of L{ConfirmerProcess}.
    """
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        reactor = globalReactor
    processes: list[ConfirmerProcess] = []
    for index in range(1, count + 1):
        process = ConfirmerProcess(reactor, testCase.mktemp(), "confirmer %d" % (index,), settings)
        testCase.addCleanup(process.stop)
        processes.append(process)
        yield process.start()
    return processes


def logTails(processes: Sequence[ConfirmerProcess]) -> str:
    """
    The ends of the logs of C{processes}, for failure messages.
    """
    return "\n".join(process.logTail() for process in processes)
