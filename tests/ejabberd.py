# -*- test-case-name: tests.test_ejabberd -*-
"""
A test harness that runs a real ejabberd (the Debian package C{ejabberd},
23.01 on Debian 12) on loopback, with a private configuration: a client
port, an XEP-0114 component port (C{ejabberd_service}) with one or more
component hostnames, each with its own secret, one virtual host with user
accounts, and no server-to-server, HTTP or other listener. It never reads
C{/etc/ejabberd} and never touches the system service or
C{/var/lib/ejabberd}.

Use it from a L{twisted.trial.unittest.TestCase}::

    requireEjabberd()
    server = yield startEjabberd(self, components=["a.example.net"],
                                 users=["juliet", "romeo"])
    # server.componentPort, server.secretOf("a.example.net"),
    # server.jidOf("juliet"), server.passwordOf("juliet"), ...

What it takes to run ejabberd privately, as found with 23.01:

  - C{ejabberdctl} must run as root or as the user C{ejabberd}; as root it
    switches to C{ejabberd} (with C{su}). Everything ejabberd writes (the
    Mnesia spool, the logs, the pid file) is in a directory that user
    owns, under C{/tmp} (its parents must be searchable by that user, which
    a test's C{_trial_temp} in a home directory may not be). The logs and
    the configuration are copied to the test's own temporary directory
    when it stops, to read after a failure.
  - C{ejabberdctl} sources its control file (C{ejabberdctl.cfg}) after
    reading C{--config}, and Debian's sets C{EJABBERD_CONFIG_PATH}: the
    harness passes C{--ctl-config} with a private control file (which names
    the private configuration) and C{--config-dir}.
  - C{ERL_DIST_PORT} in the control file makes the Erlang node listen for
    distribution on that one port and start no C{epmd};
    C{INET_DIST_INTERFACE=127.0.0.1} keeps it on loopback. Each instance
    has its own node name and cookie (C{-setcookie}, so that nothing is
    written to the C{ejabberd} user's home).
  - The listeners' sockets are bound before ejabberd has started its
    modules; it logs C{Start accepting TCP connections at ...} for each
    listener when it is ready, and the harness waits for those lines.
  - A port another process took makes ejabberd exit with C{eaddrinuse}
    (for a listener, in its log; for the distribution port, on standard
    output); the harness then starts it again on fresh ports.
  - C{ejabberdctl register USER HOST PASSWORD} (C{mod_admin_extra}) makes
    an account once the node runs; each C{ejabberdctl} call boots an
    Erlang VM, about 0.7 s, so the accounts are made in parallel.
  - ejabberd stops cleanly and in a fraction of a second on SIGTERM to its
    Erlang VM (C{beam.smp}, the pid in its pid file), much faster than
    C{ejabberdctl stop} (a VM of its own, then a wait).

To see every stanza ejabberd routes, run the tests with
C{XMPPCOMP_EJABBERD_LOGLEVEL=debug}; the log is kept under C{_trial_temp}.

Start and stop cost (measured on two cores): ejabberd is ready about 1.6 s
after it is spawned; each account adds about 0.7 s (1 user: 2.7-3.1 s in
all, 4 users: 4.2 s); it stops about 1.1 s after SIGTERM.

The test users log in over plaintext (no certificate is configured, so
ejabberd offers no STARTTLS) with SCRAM or PLAIN: ejabberd listens on
127.0.0.1 only and the accounts are throwaway ones. Never copy that
configuration to a real server.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
from twisted.internet import defer, task
from twisted.logger import Logger

from .prosody import (
    LOOPBACK,
    ProsodyError,
    _Process,
    _within,
    accepts,
    fileTail,
    freePorts,
    requireInstalled,
    startFor,
)
from .webserver import binaryPath, missingBinary

__all__ = [
    "COMPONENT",
    "DOMAIN",
    "EjabberdError",
    "EjabberdHarness",
    "EjabberdServer",
    "configuration",
    "ejabberdAvailable",
    "requireEjabberd",
    "startEjabberd",
]

log = Logger()

#: The virtual host the test users live on.
DOMAIN = "example.net"

#: The XEP-0114 component hostname declared by default.
COMPONENT = "comp.example.net"

#: The test users made by default.
USERS = ("juliet",)

#: Where Debian installs C{ejabberdctl} (C{/usr/sbin} is not always on
#: C{PATH}).
_CANDIDATES = ("/usr/sbin/ejabberdctl",)

#: The system user Debian's ejabberd runs as; C{ejabberdctl} switches to
#: it when run as root.
EJABBERD_USER = "ejabberd"

#: Seconds ejabberd may take from spawning to accepting on its listeners
#: (it takes about 1.5 s here).
START_TIMEOUT = 40.0

#: How many times ejabberd is started on fresh ports when one was taken.
START_ATTEMPTS = 3

#: Seconds between two looks at the log while ejabberd starts.
POLL_INTERVAL = 0.05

#: Seconds ejabberd may take to exit after SIGTERM before it gets SIGKILL,
#: and then again after SIGKILL before the harness gives up waiting.
STOP_TIMEOUT = 15.0

#: Seconds one C{ejabberdctl register} may take.
REGISTER_TIMEOUT = 30.0

#: What ejabberd and Erlang say when a port is taken.
_BIND_FAILURE = "eaddrinuse"

#: What ejabberd logs for each listener once it accepts connections.
_ACCEPTING = "Start accepting TCP connections at %s:%d for %s"


class EjabberdError(Exception):
    """
    ejabberd could not be prepared, started or stopped; the message
    carries what it printed and the end of its log.
    """


class _PortTaken(EjabberdError):
    """
    ejabberd could not listen on a picked port: another process took it
    between the pick and ejabberd's bind.
    """


def ejabberdPath() -> str | None:
    """
    The C{ejabberdctl} program, or L{None} if ejabberd is not installed.
    """
    return binaryPath("ejabberdctl", _CANDIDATES)


def ejabberdAvailable() -> str | None:
    """
    Whether ejabberd is installed, and whether this process may run it.

    @return: L{None} if it can run, else the reason the ejabberd tests
        cannot run (with how to install it, when it is missing).
    """
    missing = missingBinary("ejabberdctl", _CANDIDATES, "ejabberd")
    if missing is not None:
        return missing.replace("'ejabberdctl'", "'ejabberd'").replace(
            "install -y ejabberdctl", "install -y ejabberd"
        )
    try:
        pwd.getpwnam(EJABBERD_USER)
    except KeyError:
        return "ejabberdctl is installed but the user %r is missing: reinstall the Debian package 'ejabberd' (.ci/run installs it)" % (EJABBERD_USER,)
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != EJABBERD_USER:
        return (
            "ejabberdctl runs only as root or as the user %r; run the ejabberd "
            "tests as one of them (as .ci/run does)" % (EJABBERD_USER,)
        )
    return None


def requireEjabberd() -> None:
    """
    Fail the calling test, with how to install it, when ejabberd is missing
    or cannot be run by this user (a failure, never a skip; see
    L{tests.prosody.requireInstalled}).
    """
    requireInstalled(ejabberdAvailable())


@attrs.frozen
class EjabberdServer:
    """
    A running private ejabberd: where to connect and with what.

    The attributes L{host}, L{domain}, L{c2sPort}, L{componentPort},
    L{componentName}, L{componentSecret}, L{userJID} and L{userPassword}
    are named as those of L{tests.prosody.ProsodyServer}, so code written
    for one server works with the other.

    @ivar host: the address it listens on (C{127.0.0.1}).
    @ivar domain: the virtual host.
    @ivar c2sPort: the client-to-server port (plaintext, no STARTTLS).
    @ivar componentPort: the XEP-0114 component port (C{ejabberd_service}).
    @ivar distPort: the Erlang distribution port (for C{ejabberdctl}).
    @ivar components: each component hostname, in order, with its secret.
    @ivar users: each user's localpart, in order, with its password.
    @ivar balancing: the C{domain_balancing} option, hostname to its
        options (empty: ejabberd's default, a random connection for each
        stanza).
    @ivar directory: the private directory (configuration, spool, logs).
    @ivar logFile: ejabberd's log.
    """

    host: str
    domain: str
    c2sPort: int
    componentPort: int
    distPort: int
    components: tuple[tuple[str, str], ...] = attrs.field(repr=False)
    users: tuple[tuple[str, str], ...] = attrs.field(repr=False)
    balancing: Mapping[str, Mapping[str, Any]] = attrs.field(hash=False)
    directory: str
    logFile: str

    @property
    def componentNames(self) -> tuple[str, ...]:
        """
        The component hostnames, in order.
        """
        return tuple(name for name, _ in self.components)

    @property
    def componentName(self) -> str:
        """
        The first component hostname.
        """
        return self.components[0][0]

    @property
    def componentSecret(self) -> str:
        """
        The first component hostname's secret.
        """
        return self.components[0][1]

    def secretOf(self, hostname: str) -> str:
        """
        The secret of the component hostname C{hostname}.

        @raise KeyError: it is not declared.
        """
        return dict(self.components)[hostname]

    @property
    def userNames(self) -> tuple[str, ...]:
        """
        The users' localparts, in order.
        """
        return tuple(name for name, _ in self.users)

    def jidOf(self, user: str) -> str:
        """
        The bare JID of the user C{user} (a localpart).
        """
        return "%s@%s" % (user, self.domain)

    def passwordOf(self, user: str) -> str:
        """
        The password of the user C{user} (a localpart).

        @raise KeyError: there is no such user.
        """
        return dict(self.users)[user]

    @property
    def userJID(self) -> str:
        """
        The first user's bare JID.
        """
        return self.jidOf(self.users[0][0])

    @property
    def userPassword(self) -> str:
        """
        The first user's password.
        """
        return self.users[0][1]

    @property
    def componentEndpoint(self) -> str:
        """
        The component port as a client endpoint string, for
        L{xmppcomp.component.Component} and C{twistd xmppcomp --server}.
        """
        return "tcp:host=%s:port=%d" % (self.host, self.componentPort)


def _yaml(value: str) -> str:
    """
    A YAML scalar for C{value}: a JSON string, which YAML reads as the
    same double-quoted string.
    """
    return json.dumps(value)


def configuration(server: EjabberdServer, globalRoutes: bool = False, logLevel: str = "info") -> str:
    """
    The private C{ejabberd.yml} for C{server}.

    @param globalRoutes: the C{global_routes} option of the component
        listener. ejabberd's default (C{true}) makes a connection for any
        one of the listener's hostnames receive the stanzas of I{all} of
        them; the harness defaults to C{false}, so that each connection
        serves its own hostname, as separate components do.
    @param logLevel: ejabberd's C{loglevel} (C{debug} logs every stanza
        routed).
    """
    q = _yaml
    lines = [
        "# Written by xmppcomp's tests/ejabberd.py for one test; loopback only.",
        "hosts:",
        "  - %s" % q(server.domain),
        "loglevel: %s" % (logLevel,),
        "log_rotate_count: 0",
        # No certificate: no STARTTLS, no TLS listener (loopback only).
        "certfiles: []",
        "auth_method: [internal]",
        "auth_password_format: plain",
        # No server-to-server: nothing leaves this machine.
        "s2s_access: none",
        "listen:",
        "  -",
        "    port: %d" % server.c2sPort,
        "    ip: %s" % q(server.host),
        "    module: ejabberd_c2s",
        "    access: c2s",
        "    starttls_required: false",
        "  -",
        "    port: %d" % server.componentPort,
        "    ip: %s" % q(server.host),
        "    module: ejabberd_service",
        "    global_routes: %s" % ("true" if globalRoutes else "false"),
        "    hosts:",
    ]
    for name, secret in server.components:
        lines += [
            "      %s:" % q(name),
            "        password: %s" % q(secret),
        ]
    lines += [
        "acl:",
        "  local:",
        '    user_regexp: ""',
        "access_rules:",
        "  local:",
        "    allow: local",
        "  c2s:",
        "    allow: all",
        "api_permissions:",
        '  "console commands":',
        "    from:",
        "      - ejabberd_ctl",
        "    who: all",
        '    what: "*"',
        "modules:",
        "  mod_admin_extra: {}",
        "  mod_disco: {}",
        "  mod_ping: {}",
    ]
    if server.balancing:
        lines.append("domain_balancing:")
        for name, options in server.balancing.items():
            lines.append("  %s:" % q(name))
            for key, value in options.items():
                text = str(value) if isinstance(value, int) else q(str(value))
                lines.append("    %s: %s" % (key, text))
    return "\n".join(lines) + "\n"


def controlConfiguration(
    server: EjabberdServer, nodeName: str, cookie: str, configFile: str, pidFile: str
) -> str:
    """
    The private C{ejabberdctl.cfg} (a shell fragment C{ejabberdctl}
    sources, as root) for C{server}.
    """
    for value in (nodeName, cookie, configFile, pidFile):
        if any(c in value for c in "\"'\\$`\n "):
            raise ValueError("unexpected character in %r" % (value,))
    return "\n".join(
        [
            "# Written by xmppcomp's tests/ejabberd.py for one test; loopback only.",
            "ERLANG_NODE=%s" % (nodeName,),
            'ERL_OPTIONS="-setcookie %s -env ERL_CRASH_DUMP_BYTES 0"' % (cookie,),
            "ERL_DIST_PORT=%d" % (server.distPort,),
            "INET_DIST_INTERFACE=%s" % (server.host,),
            "EJABBERD_CONFIG_PATH=%s" % (configFile,),
            "EJABBERD_PID_PATH=%s" % (pidFile,),
            "CONTRIB_MODULES_PATH=%s" % (os.path.join(server.directory, "modules"),),
            "CONTRIB_MODULES_CONF_DIR=%s" % (os.path.join(server.directory, "modules.d"),),
            "EJABBERD_BYPASS_WARNINGS=true",
            "",
        ]
    )


#: How the Erlang resolver of the private node finds C{localhost} (its
#: node name's host) without the system's C{/etc/ejabberd/inetrc}.
INETRC = '{host, {127,0,0,1}, ["localhost"]}.\n{lookup, ["file", "native"]}.\n'


def _secret() -> str:
    """
    A fresh secret or password: hexadecimal, so that it never starts with
    C{-} (a command line would take it for an option) and needs no quoting.
    """
    return secrets.token_hex(16)


def _children(pid: int) -> list[int]:
    """
    The processes whose parent is C{pid}, from C{/proc}.
    """
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % (entry,), "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name (in parentheses) may hold spaces.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry))
    return found


def _descendants(pid: int) -> list[int]:
    """
    Every process below C{pid} in the process tree, from C{/proc}.
    """
    result: list[int] = []
    unvisited = [pid]
    while unvisited:
        children = _children(unvisited.pop())
        result.extend(children)
        unvisited.extend(children)
    return result


def _command(pid: int) -> str:
    try:
        with open("/proc/%d/comm" % (pid,), encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


class EjabberdHarness:
    """
    Prepares, starts and stops one private ejabberd.

    @ivar server: what L{start} set up.
    @ivar directory: the private directory (under C{/tmp}, owned by the
        C{ejabberd} user; removed by L{stop}).
    @ivar configFile: the configuration file.
    @ivar controlFile: the C{ejabberdctl} control file.
    @ivar keepLogsIn: where L{stop} copies the logs and configuration (the
        secrets masked), or L{None}.
    @ivar startSeconds: how long the last L{start} took (ejabberd and the
        accounts), or L{None}.
    @ivar stopSeconds: how long the last L{stop} took, or L{None}.
    """

    def __init__(
        self,
        reactor: Any = None,
        components: Iterable[str] = (COMPONENT,),
        users: Iterable[str] = USERS,
        domain: str = DOMAIN,
        balancing: Mapping[str, Mapping[str, Any]] | None = None,
        globalRoutes: bool = False,
        keepLogsIn: str | None = None,
        logLevel: str | None = None,
    ) -> None:
        """
        @param reactor: spawns processes and schedules the waits; the global
            reactor if L{None}.
        @param components: the XEP-0114 component hostnames to declare,
            each given a fresh secret.
        @param users: the localparts of the accounts to make on C{domain},
            each given a fresh password.
        @param domain: the virtual host.
        @param balancing: the C{domain_balancing} option: hostname to its
            options, e.g. C{{"comp.example.net": {"type": "bare_source",
            "component_number": 2}}}.
        @param globalRoutes: the listener's C{global_routes} (see
            L{configuration}).
        @param keepLogsIn: a directory to copy the logs and configuration
            into when ejabberd stops (made if missing).
        @param logLevel: ejabberd's C{loglevel}; C{$XMPPCOMP_EJABBERD_LOGLEVEL}
            or C{info} if L{None} (C{debug} logs every stanza routed).
        """
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        self._reactor = reactor
        self._globalRoutes = globalRoutes
        self._logLevel = logLevel or os.environ.get("XMPPCOMP_EJABBERD_LOGLEVEL", "info")
        self.keepLogsIn = keepLogsIn
        self.directory = os.path.realpath(tempfile.mkdtemp(prefix="xmppcomp-ejabberd-", dir="/tmp"))
        self.configFile = os.path.join(self.directory, "ejabberd.yml")
        self.controlFile = os.path.join(self.directory, "ejabberdctl.cfg")
        self._pidFile = os.path.join(self.directory, "ejabberd.pid")
        self._cookie = secrets.token_hex(16)
        c2sPort, componentPort, distPort = freePorts(3)
        names = list(components)
        if not names:
            raise ValueError("ejabberd needs at least one component hostname here")
        self.server = EjabberdServer(
            host=LOOPBACK,
            domain=domain,
            c2sPort=c2sPort,
            componentPort=componentPort,
            distPort=distPort,
            components=tuple((name, _secret()) for name in names),
            users=tuple((user, _secret()) for user in users),
            balancing=dict(balancing or {}),
            directory=self.directory,
            logFile=os.path.join(self.directory, "logs", "ejabberd.log"),
        )
        self._process: _Process | None = None
        self._started = False
        self.startSeconds: float | None = None
        self.stopSeconds: float | None = None

    @property
    def nodeName(self) -> str:
        """
        The Erlang node name: distinct per instance (its distribution
        port is in it).
        """
        return "xmppcomp-%d@localhost" % (self.server.distPort,)

    def _owner(self) -> tuple[int, int] | None:
        """
        The uid and gid the private files must belong to: the C{ejabberd}
        user's when running as root, else none (already that user).
        """
        if os.geteuid() != 0:
            return None
        entry = pwd.getpwnam(EJABBERD_USER)
        return entry.pw_uid, entry.pw_gid

    def _write(self) -> None:
        """
        Write the configuration and control files, and make the
        directories, all owned by the C{ejabberd} user.
        """
        server = self.server
        owner = self._owner()
        made = []
        for name in ("spool", "logs", "modules", "modules.d"):
            path = os.path.join(self.directory, name)
            os.makedirs(path, mode=0o700, exist_ok=True)
            made.append(path)
        files = {
            self.configFile: configuration(server, self._globalRoutes, self._logLevel),
            self.controlFile: controlConfiguration(
                server, self.nodeName, self._cookie, self.configFile, self._pidFile
            ),
            os.path.join(self.directory, "inetrc"): INETRC,
        }
        for path, text in files.items():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            made.append(path)
        os.chmod(self.directory, 0o700)
        if owner is not None:
            for path in [self.directory, *made]:
                os.chown(path, *owner)

    def _environment(self) -> dict[str, str]:
        return {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
        }

    def _ctl(self, process: _Process, *arguments: str) -> None:
        """
        Run C{ejabberdctl} on the private instance.
        """
        path = ejabberdPath()
        if path is None:
            raise EjabberdError(ejabberdAvailable() or "ejabberdctl not found")
        self._reactor.spawnProcess(
            process,
            path,
            [
                "ejabberdctl",
                "--config-dir",
                self.directory,
                "--ctl-config",
                self.controlFile,
                "--config",
                self.configFile,
                "--spool",
                os.path.join(self.directory, "spool"),
                "--logs",
                os.path.join(self.directory, "logs"),
                *arguments,
            ],
            env=self._environment(),
            path=self.directory,
        )

    @defer.inlineCallbacks
    def start(self) -> Any:
        """
        Write the configuration, start C{ejabberdctl foreground}, wait
        until both listeners accept connections, and make the accounts. If
        another process took one of the picked ports in the meantime,
        ejabberd is started again on new ports, up to L{START_ATTEMPTS}
        times.

        @return: a L{Deferred} firing with the L{EjabberdServer}, or failing
            with L{EjabberdError} (ejabberd is then stopped).
        """
        if self._started:
            raise EjabberdError("this harness already started ejabberd")
        self._started = True
        reason = ejabberdAvailable()
        if reason is not None:
            raise EjabberdError(reason)
        began = self._reactor.seconds()
        for attempt in range(1, START_ATTEMPTS + 1):
            # A failed attempt's spool holds a Mnesia schema made for its
            # node name, which has the old distribution port in it.
            for stale in ("spool", "logs"):
                shutil.rmtree(os.path.join(self.directory, stale), ignore_errors=True)
            if os.path.exists(self._pidFile):
                os.remove(self._pidFile)
            self._write()
            process = self._process = _Process()
            self._ctl(process, "foreground")
            try:
                yield self._waitUntilReady(process)
            except _PortTaken as e:
                yield self._stopProcess()
                if attempt == START_ATTEMPTS:
                    yield self.stop()
                    raise EjabberdError(str(e))
                log.info("ejabberd could not listen ({reason}); new ports", reason=e)
                c2sPort, componentPort, distPort = freePorts(3)
                self.server = attrs.evolve(
                    self.server, c2sPort=c2sPort, componentPort=componentPort, distPort=distPort
                )
                continue
            except BaseException:
                yield self.stop()
                raise
            break
        try:
            yield self.register(*self.server.userNames)
        except BaseException:
            yield self.stop()
            raise
        self.startSeconds = self._reactor.seconds() - began
        log.info(
            "ejabberd running on {host}: c2s {c2s}, component {component}, in {seconds:.2f} s",
            host=self.server.host,
            c2s=self.server.c2sPort,
            component=self.server.componentPort,
            seconds=self.startSeconds,
        )
        return self.server

    @defer.inlineCallbacks
    def _waitUntilReady(self, process: _Process) -> Any:
        """
        Read the log every L{POLL_INTERVAL} seconds until ejabberd says it
        accepts connections on both listeners (then check that they do),
        ejabberd exits, or L{START_TIMEOUT} passes.
        """
        server = self.server
        wanted = [
            _ACCEPTING % (server.host, server.c2sPort, "ejabberd_c2s"),
            _ACCEPTING % (server.host, server.componentPort, "ejabberd_service"),
        ]
        deadline = self._reactor.seconds() + START_TIMEOUT
        while True:
            if not process.running:
                yield process.ended
                text = process.describe() + "\n" + self.logTail()
                if _BIND_FAILURE in text:
                    raise _PortTaken("ejabberd could not listen: %s" % (text,))
                raise EjabberdError("ejabberd exited while starting: %s" % (text,))
            logged = self._logText()
            if all(line in logged for line in wanted):
                for port in (server.c2sPort, server.componentPort):
                    if not (yield accepts(self._reactor, server.host, port)):
                        raise EjabberdError(
                            "ejabberd said it accepts on %s:%d but refused a connection\n%s"
                            % (server.host, port, self.logTail())
                        )
                return
            if self._reactor.seconds() > deadline:
                raise EjabberdError(
                    "ejabberd did not accept on %s:%d and %s:%d within %g s: %s\n%s"
                    % (
                        server.host,
                        server.c2sPort,
                        server.host,
                        server.componentPort,
                        START_TIMEOUT,
                        process.describe(),
                        self.logTail(),
                    )
                )
            yield task.deferLater(self._reactor, POLL_INTERVAL, lambda: None)

    def _logText(self) -> str:
        try:
            with open(self.server.logFile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    @defer.inlineCallbacks
    def register(self, *users: str) -> Any:
        """
        Make an account for each of C{users} (localparts of L{server}'s
        domain, each of which must be one of L{EjabberdServer.users}) with
        C{ejabberdctl register}, all in parallel.
        """
        server = self.server
        passwords = dict(server.users)
        processes = []
        for user in users:
            process = _Process()
            self._ctl(process, "register", user, server.domain, passwords[user])
            processes.append((user, process))
        waits = [
            _within(self._reactor, process.ended, REGISTER_TIMEOUT, lambda p=process: p.kill("KILL"))
            for _, process in processes
        ]
        results = yield defer.DeferredList(waits, consumeErrors=True)
        problems = []
        for (user, process), (ok, value) in zip(processes, results):
            if not ok:
                problems.append("%s: %s; %s" % (user, value.getErrorMessage(), process.describe()))
            elif value != 0 or b"successfully registered" not in process.output:
                problems.append("%s: %s" % (user, process.describe()))
        if problems:
            raise EjabberdError(
                "ejabberdctl register failed:\n%s\n%s" % ("\n".join(problems), self.logTail())
            )

    def beamPids(self) -> list[int]:
        """
        The Erlang VM of this instance: the pid in its pid file, else the
        C{beam.smp} processes below the C{ejabberdctl} the harness started
        (the pid file is written only once ejabberd starts).
        """
        pids = []
        try:
            with open(self._pidFile, encoding="ascii") as f:
                pids.append(int(f.read().strip()))
        except (OSError, ValueError):
            pass
        process = self._process
        if process is not None and process.transport is not None:
            root = process.transport.pid
            if root is not None:
                pids.extend(pid for pid in _descendants(root) if _command(pid) == "beam.smp")
        return sorted({pid for pid in pids if _command(pid) == "beam.smp"})

    def _signal(self, pids: Sequence[int], signum: int) -> None:
        for pid in pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    @defer.inlineCallbacks
    def _stopProcess(self) -> Any:
        """
        Stop the Erlang VM (SIGTERM: ejabberd shuts down cleanly; SIGKILL
        after L{STOP_TIMEOUT} seconds) and wait for C{ejabberdctl
        foreground} to end.
        """
        process = self._process
        if process is None:
            return
        if process.running:
            pids = self.beamPids()
            if pids:
                self._signal(pids, signal.SIGTERM)
            else:
                process.kill("TERM")

            def kill() -> None:
                self._signal(self.beamPids(), signal.SIGKILL)
                process.kill("KILL")

            try:
                yield _within(self._reactor, process.ended, STOP_TIMEOUT, kill)
            except ProsodyError:
                # What _within says on timeout.
                log.warn(
                    "ejabberd did not exit within {timeout} s of SIGTERM; killed",
                    timeout=STOP_TIMEOUT,
                )
        elif not process.ended.called:
            yield process.ended

    @defer.inlineCallbacks
    def stop(self) -> Any:
        """
        Stop ejabberd and wait for its end, keep its logs in L{keepLogsIn}
        if set, and remove the private directory. Calling it again does no
        harm.
        """
        began = self._reactor.seconds()
        yield self._stopProcess()
        if self._process is not None and self.stopSeconds is None:
            self.stopSeconds = self._reactor.seconds() - began
        self._keepLogs()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _keepLogs(self) -> None:
        """
        Copy the logs, the configuration (secrets masked) and what
        C{ejabberdctl foreground} printed to L{keepLogsIn}.
        """
        if self.keepLogsIn is None or not os.path.isdir(self.directory):
            return
        os.makedirs(self.keepLogsIn, exist_ok=True)
        logs = os.path.join(self.directory, "logs")
        if os.path.isdir(logs):
            for name in os.listdir(logs):
                source = os.path.join(logs, name)
                if os.path.isfile(source):
                    shutil.copyfile(source, os.path.join(self.keepLogsIn, name))
        text = self._masked(configuration(self.server, self._globalRoutes, self._logLevel))
        with open(os.path.join(self.keepLogsIn, "ejabberd.yml"), "w", encoding="utf-8") as f:
            f.write(text)
        if self._process is not None:
            with open(os.path.join(self.keepLogsIn, "foreground.out"), "wb") as f:
                f.write(self._process.output)

    def _masked(self, text: str) -> str:
        for _, secret in self.server.components:
            text = text.replace(secret, "(secret)")
        return text

    @defer.inlineCallbacks
    def waitForLog(self, text: str, timeout: float = 10.0) -> Any:
        """
        Wait until ejabberd's log holds C{text}: it writes its log a little
        after the fact. Looks every L{POLL_INTERVAL} seconds.

        @raise EjabberdError: not within C{timeout} seconds.
        """
        deadline = self._reactor.seconds() + timeout
        while text not in self._logText():
            if self._reactor.seconds() > deadline:
                raise EjabberdError(
                    "%r not in ejabberd's log within %g s\n%s" % (text, timeout, self.logTail())
                )
            yield task.deferLater(self._reactor, POLL_INTERVAL, lambda: None)

    def logTail(self) -> str:
        """
        The end of ejabberd's log, for error messages.
        """
        return fileTail(self.server.logFile, "ejabberd log")


def startEjabberd(
    testCase: Any,
    components: Iterable[str] = (COMPONENT,),
    users: Iterable[str] = USERS,
    balancing: Mapping[str, Mapping[str, Any]] | None = None,
    globalRoutes: bool = False,
    reactor: Any = None,
) -> defer.Deferred[EjabberdServer]:
    """
    Start a private ejabberd for one test; a cleanup of C{testCase} stops
    it. Its logs and configuration are then copied to a directory of the
    test's own (under C{_trial_temp}), to read after a failure.

    The harness is also set as C{testCase.ejabberdHarness}, for
    L{EjabberdHarness.logTail} in failure messages.

    @param testCase: a L{twisted.trial.unittest.TestCase}.
    @param components: the XEP-0114 component hostnames, each with a fresh
        secret (L{EjabberdServer.secretOf}).
    @param users: the localparts of the accounts on L{DOMAIN}, each with a
        fresh password (L{EjabberdServer.passwordOf}).
    @param balancing: the C{domain_balancing} option (see
        L{EjabberdHarness}).
    @param globalRoutes: the listener's C{global_routes} (see
        L{configuration}).
    @param reactor: the reactor; the global one if L{None}.
    @return: a L{Deferred} firing with the L{EjabberdServer}.
    """
    harness = EjabberdHarness(
        reactor,
        components=components,
        users=users,
        balancing=balancing,
        globalRoutes=globalRoutes,
        keepLogsIn=os.path.abspath(testCase.mktemp()),
    )
    return startFor(testCase, harness, "ejabberdHarness")
