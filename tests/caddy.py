# -*- test-case-name: tests.test_webserver_headers -*-
"""
A test harness that runs a real Caddy (the Debian package C{caddy}, 2.6.2
in bookworm) on loopback with a private Caddyfile, in front of an
XEP-0070 forward-auth endpoint (L{xmppcomp.httpauth.Confirmer.forwardAuth}).

Everything Caddy writes stays in a private prefix directory: the
Caddyfile, its log, the static files it serves, and its home, data and
configuration directories (C{HOME}, C{XDG_DATA_HOME} and
C{XDG_CONFIG_HOME} of the child are the prefix: Caddy 2.6 makes an empty
C{.step} in its home, its storage under C{caddy/} of the data directory
and, on every start, writes C{autosave.json} under C{caddy/} of the
configuration directory, which C{persist_config off} would prevent but
2.6.2 does not know that global option). It runs in the foreground (C{caddy run}), with no admin
endpoint (C{admin off}) and no automatic HTTPS (C{auto_https off} and a
plain C{http://} site address, so it never tries ACME), listens on a free
port of 127.0.0.1 only (C{bind 127.0.0.1}: the site address alone would
make it listen on every interface), and never reads C{/etc/caddy} nor
touches a system Caddy.

Caddy 2.6 listens with C{SO_REUSEPORT}: a second Caddy of the same user
started on a port the first one holds does not fail, the two share it.
Ports are picked free (L{tests.prosody.freePorts}) just before the start,
so two test runs in parallel are unlikely to meet there; a port held by
any other program makes Caddy exit with C{address already in use}, and
the harness starts it again on a new port. Caddy counts as started once
its log says it serves its configuration and the port accepts a
connection (a connection alone could reach the other program).

The site protects C{/private/*} with C{forward_auth}: Caddy sends the
confirmer a C{GET} of C{/} (the C{uri /} of the block; Caddy keeps the
original query string on it) with every header of the client, plus these,
which it sets itself and so replace any copy the client sent (the
C{caddy} profile):

  - C{X-Forwarded-Method}: the original method;
  - C{X-Forwarded-Uri}: the request target as the client sent it (Caddy's
    C{{http.request.uri}}: not decoded, dot segments and repeated slashes
    kept, with the query; the path and query only for an absolute-form
    target);
  - C{X-Forwarded-Host}: the host the client asked for, port included (for
    an absolute-form target, the target's authority, not C{Host});
  - C{X-Forwarded-Proto}: C{http};
  - C{X-Forwarded-For}: the client's address alone (Caddy replaces what
    the client sent, since no C{trusted_proxies} are configured).

On a 2xx answer, C{copy_headers X-Auth-JID} sets the confirmed JID on the
request that goes on to C{file_server} (an upstream application would see
it; a 2xx answer without C{X-Auth-JID} would make Caddy 2.6.2 set the
literal text C{{http.reverse_proxy.header.X-Auth-Jid}} there rather than
remove the client's copy, but the confirmer always sends one). Caddy does
not send it to the client, so a C{header} directive after C{forward_auth}
copies it to the response, as the nginx harness does with C{add_header}.
Any other answer (401 with all its C{WWW-Authenticate} headers, 403) goes
to the client as the endpoint gave it, and nothing after C{forward_auth}
runs. C{/public/*} is served without authentication, anything else is
404. A test may add directives of its own to the site
(C{extraDirectives}).

Use it from a L{twisted.trial.unittest.TestCase}::

    requireCaddy()
    site = yield startCaddy(self, authPort, {"private/index.html": b"..."})
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.trial.unittest import FailTest

from .prosody import LOOPBACK, _Process, freePorts

__all__ = [
    "CaddyError",
    "CaddyHarness",
    "CaddySite",
    "caddyAvailable",
    "configuration",
    "requireCaddy",
    "startCaddy",
]

log = Logger()

#: Where Debian installs the binary.
_CANDIDATES = ("/usr/bin/caddy",)

#: Seconds Caddy may take from spawning to accepting TCP connections.
START_TIMEOUT = 20.0

#: How many times Caddy is started on a fresh port when one was taken.
START_ATTEMPTS = 3

#: Seconds between two connection attempts while Caddy starts.
POLL_INTERVAL = 0.05

#: How much of the log and output goes into an error message.
_LOG_TAIL = 4000

#: What Caddy prints when it cannot bind its port.
_BIND_FAILURE = "address already in use"

#: What Caddy logs once it listens with the whole configuration. Until
#: then, a connection that succeeds may have reached another program
#: that holds the port, while Caddy is about to exit.
_READY = b'"msg":"serving initial configuration"'


class CaddyError(Exception):
    """
    Caddy could not be started or stopped; the message carries its output
    and the end of its log.
    """


class _PortTaken(CaddyError):
    """
    Another process took the picked port before Caddy could bind it.
    """


def caddyPath() -> str | None:
    """
    The caddy binary, or L{None} if it is not installed.
    """
    found = shutil.which("caddy")
    if found is not None:
        return found
    for candidate in _CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def caddyAvailable() -> str | None:
    """
    Whether Caddy is installed.

    @return: L{None} if it is, else the reason the Caddy tests cannot run
    """
    if caddyPath() is None:
        return (
            "caddy not found on PATH nor in /usr/bin: install the Debian "
            "package 'caddy' (apt-get install -y caddy) to run the tests "
            "against a real Caddy"
        )
    return None


def requireCaddy() -> None:
    """
    Fail the calling test, with how to install it, when Caddy is missing.
    A failure, not a skip: a run that did not test against Caddy must not
    look like one that did (C{.ci/run} installs it).
    """
    reason = caddyAvailable()
    if reason is not None:
        raise FailTest(reason)


@attrs.frozen
class CaddySite:
    """
    A running private Caddy.

    @ivar host: the address it listens on (C{127.0.0.1}).
    @ivar port: the port it listens on.
    @ivar authPort: the port of the forward-auth endpoint it asks.
    @ivar prefix: the private directory (also its C{HOME} and XDG data and
        configuration directories).
    @ivar root: the directory of the static files it serves.
    @ivar logFile: its log (JSON lines).
    """

    host: str
    port: int
    authPort: int
    prefix: str
    root: str
    logFile: str

    def url(self, path: str) -> str:
        """
        The URL of C{path} (which starts with C{/}) on this Caddy.
        """
        return "http://%s:%d%s" % (self.host, self.port, path)


def _quoted(value: str) -> str:
    """
    A Caddyfile string token for C{value} (a path of ours: no quotes, no
    backslashes, no newlines, no placeholders).
    """
    if any(c in value for c in "\"'`\\\n\r{}#"):
        raise ValueError("unexpected character in %r" % (value,))
    return '"%s"' % (value,)


def configuration(site: CaddySite, extraDirectives: Sequence[str] = ()) -> str:
    """
    The private Caddyfile for C{site}.

    @param extraDirectives: more directives or blocks (Caddyfile text, each
        possibly of several lines) for the site block, after the
        harness's C{/private/*} and before the final 404.
    """
    q = _quoted
    return "\n".join(
        [
            "# Written by xmppcomp's tests/caddy.py for one test; loopback only.",
            "{",
            "\tadmin off",
            "\tauto_https off",
            # Stopping waits for requests in progress at most this long.
            "\tgrace_period 2s",
            "\tlog {",
            "\t\toutput file %s {" % q(site.logFile),
            "\t\t\troll_disabled",
            "\t\t}",
            "\t\tlevel INFO",
            "\t}",
            "}",
            "",
            "http://%s:%d {" % (site.host, site.port),
            "\tbind %s" % (site.host,),
            "\troot * %s" % q(site.root),
            "\thandle /public/* {",
            "\t\tfile_server",
            "\t}",
            "\thandle /private/* {",
            # route keeps this order (Caddy would otherwise sort header
            # before forward_auth); only a 2xx answer goes on past
            # forward_auth.
            "\t\troute {",
            "\t\t\tforward_auth %s:%d {" % (site.host, site.authPort),
            "\t\t\t\turi /",
            "\t\t\t\tcopy_headers X-Auth-JID",
            "\t\t\t}",
            # copy_headers sets it on the request only; the client gets
            # it from this.
            "\t\t\theader X-Auth-JID {http.request.header.X-Auth-JID}",
            "\t\t\tfile_server",
            "\t\t}",
            "\t}",
        ]
        + ["\t" + line for block in extraDirectives for line in block.splitlines()]
        + [
            "\thandle {",
            "\t\trespond 404",
            "\t}",
            "}",
            "",
        ]
    )


class CaddyHarness:
    """
    Prepares, starts and stops one private Caddy.

    @ivar site: what L{start} set up.
    @ivar configFile: the Caddyfile.
    """

    def __init__(
        self,
        authPort: int,
        files: Mapping[str, bytes],
        reactor: Any = None,
        directory: str | None = None,
        extraDirectives: Sequence[str] = (),
    ) -> None:
        """
        @param authPort: the port of the forward-auth endpoint on
            127.0.0.1.
        @param files: static files to serve, relative path (e.g.
            C{"private/index.html"}) to content.
        @param reactor: spawns Caddy and schedules the waits; the global
            reactor if L{None}.
        @param directory: an empty or missing directory to use as prefix;
            a temporary one (removed by L{stop}) if L{None}.
        @param extraDirectives: more directives for the site block (see
            L{configuration}).
        """
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        self._reactor = reactor
        self._ownDirectory = directory is None
        if directory is None:
            import tempfile

            directory = tempfile.mkdtemp(prefix="xmppcomp-caddy-")
        prefix = os.path.abspath(directory)
        self.configFile = os.path.join(prefix, "Caddyfile")
        self._files = dict(files)
        self._extraDirectives = tuple(extraDirectives)
        (port,) = freePorts(1)
        self.site = CaddySite(
            host=LOOPBACK,
            port=port,
            authPort=authPort,
            prefix=prefix,
            root=os.path.join(prefix, "html"),
            logFile=os.path.join(prefix, "caddy.log"),
        )
        self._process: _Process | None = None

    def _write(self) -> None:
        """
        Write the Caddyfile and the static files.
        """
        site = self.site
        os.makedirs(site.root, exist_ok=True)
        for relative, content in self._files.items():
            path = os.path.join(site.root, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(content)
        with open(self.configFile, "w", encoding="utf-8") as f:
            f.write(configuration(site, self._extraDirectives))

    def _environment(self) -> dict[str, str]:
        """
        The child's whole environment: its home, data and configuration
        directories are the prefix.
        """
        prefix = self.site.prefix
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": prefix,
            "XDG_DATA_HOME": prefix,
            "XDG_CONFIG_HOME": prefix,
        }

    @defer.inlineCallbacks
    def start(self) -> Any:
        """
        Write everything, start Caddy in the foreground and wait until it
        logs that it serves its configuration and accepts TCP connections;
        if another process took the port, start again on a new one, up to
        L{START_ATTEMPTS} times.

        @return: a L{Deferred} firing with the L{CaddySite}, or failing
            with L{CaddyError} (Caddy is then stopped).
        """
        if self._process is not None:
            raise CaddyError("this harness already started Caddy")
        path = caddyPath()
        if path is None:
            raise CaddyError(caddyAvailable() or "caddy not found")
        for attempt in range(1, START_ATTEMPTS + 1):
            self._write()
            if os.path.exists(self.site.logFile):
                os.remove(self.site.logFile)
            process = self._process = _Process()
            self._reactor.spawnProcess(
                process,
                path,
                ["caddy", "run", "--config", self.configFile, "--adapter", "caddyfile"],
                env=self._environment(),
                path=self.site.prefix,
            )
            try:
                yield self._waitForPort(process)
            except _PortTaken as e:
                yield self._stopProcess()
                if attempt == START_ATTEMPTS:
                    yield self.stop()
                    raise CaddyError(str(e))
                log.info("Caddy could not listen ({reason}); new port", reason=e)
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
        while True:
            if not process.running:
                yield process.ended
                text = process.describe() + "\n" + self._logFileTail()
                if _BIND_FAILURE in text:
                    raise _PortTaken("Caddy could not listen: " + text)
                raise CaddyError("Caddy exited while starting: " + text)
            if self._logged(_READY) and (yield self._accepts()):
                return
            if self._reactor.seconds() > deadline:
                raise CaddyError(
                    "Caddy did not listen on %s:%d within %g s: %s\n%s"
                    % (
                        self.site.host,
                        self.site.port,
                        START_TIMEOUT,
                        process.describe(),
                        self._logFileTail(),
                    )
                )
            yield task.deferLater(self._reactor, POLL_INTERVAL, lambda: None)

    def _logged(self, marker: bytes) -> bool:
        """
        Whether Caddy's log has C{marker}.
        """
        try:
            with open(self.site.logFile, "rb") as f:
                return marker in f.read()
        except OSError:
            return False

    @defer.inlineCallbacks
    def _accepts(self) -> Any:
        endpoint = TCP4ClientEndpoint(self._reactor, self.site.host, self.site.port, timeout=1)
        try:
            protocol = yield endpoint.connect(Factory.forProtocol(Protocol))
        except Exception:
            return False
        protocol.transport.abortConnection()
        return True

    @defer.inlineCallbacks
    def stop(self) -> Any:
        """
        Stop Caddy (SIGTERM, then SIGKILL after L{tests.prosody.STOP_TIMEOUT}
        seconds) and wait for its end; remove the prefix if the harness
        made it. Calling it again does no harm.
        """
        yield self._stopProcess()
        if self._ownDirectory:
            shutil.rmtree(self.site.prefix, ignore_errors=True)

    def _stopProcess(self) -> Any:
        if self._process is None:
            return defer.succeed(None)
        return self._process.stop(self._reactor, "Caddy")

    def _logFileTail(self) -> str:
        """
        The end of Caddy's log file.
        """
        try:
            with open(self.site.logFile, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - _LOG_TAIL))
                data = f.read()
        except OSError as e:
            return "(no Caddy log: %s)" % (e,)
        return "Caddy log (%s), end:\n%s" % (self.site.logFile, data.decode("utf-8", "replace"))

    def logTail(self) -> str:
        """
        The end of Caddy's log and of what it printed (what it says
        before it reads the Caddyfile, and why it exits), for failure
        messages.
        """
        if self._process is None:
            return self._logFileTail()
        printed = self._process.output.decode("utf-8", "replace")[-_LOG_TAIL:]
        return "%s\nCaddy's output, end:\n%s" % (self._logFileTail(), printed)


def startCaddy(
    testCase: Any,
    authPort: int,
    files: Mapping[str, bytes],
    reactor: Any = None,
    extraDirectives: Sequence[str] = (),
) -> defer.Deferred[CaddySite]:
    """
    Start a private Caddy for one test in the test's own temporary
    directory (kept under C{_trial_temp} to read after a failure); a
    cleanup of C{testCase} stops it. The harness is set as
    C{testCase.caddyHarness}.

    @param authPort: the port of the forward-auth endpoint on 127.0.0.1.
    @param files: static files, relative path to content.
    @param extraDirectives: more directives for the site block (see
        L{configuration}).
    """
    harness = CaddyHarness(
        authPort, files, reactor, directory=testCase.mktemp(), extraDirectives=extraDirectives
    )
    testCase.addCleanup(harness.stop)
    testCase.caddyHarness = harness
    d: defer.Deferred[CaddySite] = harness.start()
    return d
