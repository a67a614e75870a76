# -*- test-case-name: tests.test_httpauth_nginx -*-
"""
A test harness that runs a real nginx (the Debian package C{nginx}) on
loopback with a private configuration, in front of an XEP-0070
forward-auth endpoint (L{xmppcomp.httpauth.Confirmer.forwardAuth}).

Everything nginx writes stays in a private prefix directory: the
configuration, the pid file, the error and access logs, the temporary
directories and the static files it serves. It runs in the foreground as a
single process (C{daemon off; master_process off;}), listens on a free port
of 127.0.0.1 only (never port 80), and never reads C{/etc/nginx} nor
touches a system nginx. C{-e} sends even the messages of the start, before
the configuration is read, to the private error log.

The configuration protects C{/private/} with C{auth_request}. The auth
subrequest goes to the confirmer with the headers of its C{nginx} profile,
each set with C{proxy_set_header}, which replaces a copy the client sent
(nginx passes every other client header on as it came, so the endpoint
must read these and no others):

  - C{X-Original-Method}: C{$request_method};
  - C{X-Original-URI}: C{$request_uri}, the request target exactly as the
    client sent it: not decoded, dot segments and repeated slashes kept,
    with the query (for an absolute-form target, its path and query);
  - C{X-Original-Host}: C{$http_host}, the client's C{Host} header with
    the port (C{$host} drops it); not sent at all when the client sent no
    C{Host} (HTTP/1.0);
  - C{X-Original-Proto}: C{$scheme};
  - C{X-Real-IP}: C{$remote_addr}, the client's address.

C{Host} gets C{$http_host} too (harmless: the profile does not read it).
The subrequest carries no body (C{proxy_pass_request_body off} and an
empty C{Content-Length}). On a 401, nginx 1.22's auth_request module
itself copies the I{first} C{WWW-Authenticate} header of the auth answer
to the client (the confirmer puts Basic first); the common recipe of
C{auth_request_set $auth_www $upstream_http_www_authenticate} plus
C{add_header WWW-Authenticate $auth_www always} would send it twice, so it
is not used. The confirmed JID is passed on in C{X-Auth-JID} with
C{auth_request_set} and C{add_header}. C{/public/} is served without
authentication. A test may add C{location} blocks of its own
(C{extraLocations}).

Use it from a L{twisted.trial.unittest.TestCase}::

    requireNginx()
    site = yield startNginx(self, authPort, {"private/index.html": b"..."})
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
    "NginxError",
    "NginxHarness",
    "NginxSite",
    "configuration",
    "nginxAvailable",
    "startNginx",
]

log = Logger()

#: Where Debian installs the binary (C{/usr/sbin} is not always on C{PATH}).
_CANDIDATES = ("/usr/sbin/nginx",)

#: Seconds nginx may take from spawning to accepting TCP connections.
START_TIMEOUT = 20.0

#: How many times nginx is started on a fresh port when one was taken.
START_ATTEMPTS = 3

#: Seconds between two connection attempts while nginx starts.
POLL_INTERVAL = 0.05

#: How much of the error log goes into an error message.
_LOG_TAIL = 4000

#: The location the auth subrequest goes to.
AUTH_LOCATION = "/_xmppauth"


class NginxError(Exception):
    """
    nginx could not be started or stopped; the message carries its output
    and the end of its error log.
    """


class _PortTaken(NginxError):
    """
    Another process took the picked port before nginx could bind it.
    """


def nginxPath() -> str | None:
    """
    The nginx binary, or L{None} if it is not installed.
    """
    found = shutil.which("nginx")
    if found is not None:
        return found
    for candidate in _CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def nginxAvailable() -> str | None:
    """
    Whether nginx is installed.

    @return: L{None} if it is, else the reason the nginx tests cannot run
    """
    if nginxPath() is None:
        return (
            "nginx not found on PATH nor in /usr/sbin: install the Debian "
            "package 'nginx' (apt-get install -y nginx) to run the tests "
            "against a real nginx"
        )
    return None


def requireNginx() -> None:
    """
    Fail the calling test, with how to install it, when nginx is missing.
    A failure, not a skip: a run that did not test against nginx must not
    look like one that did (C{.ci/run} installs it).
    """
    reason = nginxAvailable()
    if reason is not None:
        raise FailTest(reason)


@attrs.frozen
class NginxSite:
    """
    A running private nginx.

    @ivar host: the address it listens on (C{127.0.0.1}).
    @ivar port: the port it listens on.
    @ivar authPort: the port of the forward-auth endpoint it asks.
    @ivar prefix: the private directory.
    @ivar root: the directory of the static files it serves.
    @ivar errorLog: its error log.
    """

    host: str
    port: int
    authPort: int
    prefix: str
    root: str
    errorLog: str

    def url(self, path: str) -> str:
        """
        The URL of C{path} (which starts with C{/}) on this nginx.
        """
        return "http://%s:%d%s" % (self.host, self.port, path)


def _quoted(value: str) -> str:
    """
    An nginx string literal for C{value} (a path of ours: no quotes, no
    newlines).
    """
    if any(c in value for c in "\"'\\\n\r;{}$"):
        raise ValueError("unexpected character in %r" % (value,))
    return '"%s"' % (value,)


def configuration(site: NginxSite, extraLocations: Sequence[str] = ()) -> str:
    """
    The private nginx configuration for C{site}.

    @param extraLocations: more C{location} blocks (nginx text, each
        possibly of several lines) for the C{server} block, after the
        harness's own.
    """
    q = _quoted
    prefix = site.prefix
    temp = os.path.join(prefix, "temp")
    return "\n".join(
        [
            "# Written by xmppcomp's tests/nginx.py for one test; loopback only.",
            "daemon off;",
            "master_process off;",
            "worker_processes 1;",
            "pid %s;" % q(os.path.join(prefix, "nginx.pid")),
            "error_log %s info;" % q(site.errorLog),
            "events { worker_connections 64; }",
            "http {",
            "    access_log %s;" % q(os.path.join(prefix, "access.log")),
            "    client_body_temp_path %s;" % q(os.path.join(temp, "body")),
            "    proxy_temp_path %s;" % q(os.path.join(temp, "proxy")),
            "    fastcgi_temp_path %s;" % q(os.path.join(temp, "fastcgi")),
            "    uwsgi_temp_path %s;" % q(os.path.join(temp, "uwsgi")),
            "    scgi_temp_path %s;" % q(os.path.join(temp, "scgi")),
            "    types { text/html html; text/css css; image/png png; text/plain txt; }",
            "    default_type application/octet-stream;",
            "    server {",
            "        listen %s:%d;" % (site.host, site.port),
            "        server_name localhost;",
            "        root %s;" % q(site.root),
            "        location /public/ { }",
            "        location /private/ {",
            "            auth_request %s;" % (AUTH_LOCATION,),
            # On a 401 nginx itself passes the first WWW-Authenticate of
            # the auth answer on (the confirmer puts Basic first); an
            # add_header for it would send it twice.
            "            auth_request_set $auth_jid $upstream_http_x_auth_jid;",
            "            add_header X-Auth-JID $auth_jid;",
            "        }",
            "        location = %s {" % (AUTH_LOCATION,),
            "            internal;",
            "            proxy_pass http://%s:%d/;" % (site.host, site.authPort),
            "            proxy_pass_request_body off;",
            '            proxy_set_header Content-Length "";',
            # $http_host keeps the port, $host would drop it.
            "            proxy_set_header Host $http_host;",
            # The nginx profile; proxy_set_header replaces a client's copy.
            "            proxy_set_header X-Original-Method $request_method;",
            "            proxy_set_header X-Original-URI $request_uri;",
            "            proxy_set_header X-Original-Host $http_host;",
            "            proxy_set_header X-Original-Proto $scheme;",
            "            proxy_set_header X-Real-IP $remote_addr;",
            "        }",
        ]
        + ["        " + line for block in extraLocations for line in block.splitlines()]
        + [
            "    }",
            "}",
            "",
        ]
    )


class NginxHarness:
    """
    Prepares, starts and stops one private nginx.

    @ivar site: what L{start} set up.
    @ivar configFile: the configuration file.
    """

    def __init__(
        self,
        authPort: int,
        files: Mapping[str, bytes],
        reactor: Any = None,
        directory: str | None = None,
        extraLocations: Sequence[str] = (),
    ) -> None:
        """
        @param authPort: the port of the forward-auth endpoint on
            127.0.0.1.
        @param files: static files to serve, relative path (e.g.
            C{"private/index.html"}) to content.
        @param reactor: spawns nginx and schedules the waits; the global
            reactor if L{None}.
        @param directory: an empty or missing directory to use as prefix;
            a temporary one (removed by L{stop}) if L{None}.
        @param extraLocations: more C{location} blocks for the C{server}
            block (see L{configuration}).
        """
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        self._reactor = reactor
        self._ownDirectory = directory is None
        if directory is None:
            import tempfile

            directory = tempfile.mkdtemp(prefix="xmppcomp-nginx-")
        prefix = os.path.abspath(directory)
        self.configFile = os.path.join(prefix, "nginx.conf")
        self._files = dict(files)
        self._extraLocations = tuple(extraLocations)
        (port,) = freePorts(1)
        self.site = NginxSite(
            host=LOOPBACK,
            port=port,
            authPort=authPort,
            prefix=prefix,
            root=os.path.join(prefix, "html"),
            errorLog=os.path.join(prefix, "error.log"),
        )
        self._process: _Process | None = None

    def _write(self) -> None:
        """
        Write the configuration, the static files, and make the
        temporary directories.
        """
        site = self.site
        os.makedirs(os.path.join(site.prefix, "temp"), exist_ok=True)
        for relative, content in self._files.items():
            path = os.path.join(site.root, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(content)
        with open(self.configFile, "w", encoding="utf-8") as f:
            f.write(configuration(site, self._extraLocations))

    @defer.inlineCallbacks
    def start(self) -> Any:
        """
        Write everything, start nginx in the foreground and wait until it
        accepts TCP connections; if another process took the port, start
        again on a new one, up to L{START_ATTEMPTS} times.

        @return: a L{Deferred} firing with the L{NginxSite}, or failing
            with L{NginxError} (nginx is then stopped).
        """
        if self._process is not None:
            raise NginxError("this harness already started nginx")
        path = nginxPath()
        if path is None:
            raise NginxError(nginxAvailable() or "nginx not found")
        for attempt in range(1, START_ATTEMPTS + 1):
            self._write()
            if os.path.exists(self.site.errorLog):
                os.remove(self.site.errorLog)
            process = self._process = _Process()
            site = self.site
            self._reactor.spawnProcess(
                process,
                path,
                ["nginx", "-p", site.prefix, "-c", self.configFile, "-e", site.errorLog],
                env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")},
                path=site.prefix,
            )
            try:
                yield self._waitForPort(process)
            except _PortTaken as e:
                yield self._stopProcess()
                if attempt == START_ATTEMPTS:
                    yield self.stop()
                    raise NginxError(str(e))
                log.info("nginx could not listen ({reason}); new port", reason=e)
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
                text = process.describe() + "\n" + self.logTail()
                if "Address already in use" in text:
                    raise _PortTaken("nginx could not listen: " + text)
                raise NginxError("nginx exited while starting: " + text)
            if (yield self._accepts()):
                return
            if self._reactor.seconds() > deadline:
                raise NginxError(
                    "nginx did not listen on %s:%d within %g s: %s\n%s"
                    % (
                        self.site.host,
                        self.site.port,
                        START_TIMEOUT,
                        process.describe(),
                        self.logTail(),
                    )
                )
            yield task.deferLater(self._reactor, POLL_INTERVAL, lambda: None)

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
        Stop nginx (SIGTERM, then SIGKILL after L{tests.prosody.STOP_TIMEOUT} seconds)
        and wait for its end; remove the prefix if the harness made it.
        Calling it again does no harm.
        """
        yield self._stopProcess()
        if self._ownDirectory:
            shutil.rmtree(self.site.prefix, ignore_errors=True)

    def _stopProcess(self) -> Any:
        if self._process is None:
            return defer.succeed(None)
        return self._process.stop(self._reactor, "nginx")

    def logTail(self) -> str:
        """
        The end of nginx's error log, for failure messages.
        """
        try:
            with open(self.site.errorLog, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - _LOG_TAIL))
                data = f.read()
        except OSError as e:
            return "(no nginx error log: %s)" % (e,)
        return "nginx error log (%s), end:\n%s" % (
            self.site.errorLog,
            data.decode("utf-8", "replace"),
        )


def startNginx(
    testCase: Any,
    authPort: int,
    files: Mapping[str, bytes],
    reactor: Any = None,
    extraLocations: Sequence[str] = (),
) -> defer.Deferred[NginxSite]:
    """
    Start a private nginx for one test in the test's own temporary
    directory (kept under C{_trial_temp} to read after a failure); a
    cleanup of C{testCase} stops it. The harness is set as
    C{testCase.nginxHarness}.

    @param authPort: the port of the forward-auth endpoint on 127.0.0.1.
    @param files: static files, relative path to content.
    @param extraLocations: more C{location} blocks for the C{server} block
        (see L{configuration}).
    """
    harness = NginxHarness(
        authPort, files, reactor, directory=testCase.mktemp(), extraLocations=extraLocations
    )
    testCase.addCleanup(harness.stop)
    testCase.nginxHarness = harness
    d: defer.Deferred[NginxSite] = harness.start()
    return d
