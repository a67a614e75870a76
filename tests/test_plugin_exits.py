# -*- test-case-name: tests.test_plugin_exits -*-
"""
C{twistd xmppcomp}, C{twistd xmppcomp-router} and C{xmppcomp-credentials}
as real processes, started the way an operator starts them: a
configuration they cannot use, or a port that is taken, ends them with one
line on standard error and status 1: no option list, no traceback.

These run real processes and bind real loopback sockets, which the rest of
the suite avoids: what is tested here is what twistd does with what the
plugins raise (L{xmppcomp._process.ConfigExit},
L{xmppcomp._process.ListenExit}), which only a real twistd shows.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
from typing import Any

from twisted.trial.unittest import SynchronousTestCase


def _waitForDaemon(pidfile: str, seconds: float = 30.0) -> None:
    """
    Wait (bounded) for the daemon named in C{pidfile}, if it is still
    there, to exit: twistd's first process exits on the daemon's word,
    before the daemon has finished stopping and removed its pid file.
    Waits on a pidfd (no polling); a daemon already gone returns at once.
    """
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
        fd = os.pidfd_open(pid)
    except (OSError, ValueError):
        return
    try:
        select.select([fd], [], [], seconds)
    finally:
        os.close(fd)

#: The checkout the children import xmppcomp (and its twistd plugins) from.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: twistd's entry point, for C{python -c}.
TWISTD = "from twisted.scripts.twistd import run; run()"

#: Seconds a child may take; each takes one or two.
TIMEOUT = 60


class _ProcessMixin:
    """
    Run a command in a directory of its own, with this checkout first on
    C{PYTHONPATH}.
    """

    mktemp: Any

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.directory, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def spawn(self, *argv: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in [ROOT, env.get("PYTHONPATH", "")] if p)
        env["PYTHONUNBUFFERED"] = "1"
        return subprocess.run(
            [sys.executable, *argv],
            cwd=self.directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def twistd(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """
        C{twistd -n --pidfile= --logfile=twistd.log ARGV}: in the
        foreground, its log in C{twistd.log}, so its standard output and
        error hold only what it prints itself.
        """
        return self.spawn("-c", TWISTD, "-n", "--pidfile=", "--logfile=twistd.log", *argv)

    def log(self) -> str:
        try:
            with open(os.path.join(self.directory, "twistd.log"), encoding="utf-8") as f:
                return f.read()
        except FileNotFoundError:
            return ""


class ConfigErrorTests(_ProcessMixin, SynchronousTestCase):
    """
    A configuration file the plugins cannot use ends twistd with the error
    alone: where (the file and key) and what to change, on standard error,
    with status 1, before anything starts.
    """

    def assertOneLine(self, result: subprocess.CompletedProcess[str], line: str) -> None:
        self.assertEqual((result.returncode, result.stderr, result.stdout), (1, line + "\n", ""))
        self.assertEqual(self.log(), "")

    def test_component(self) -> None:
        """
        C{twistd xmppcomp --config FILE} with a key of the wrong type.
        """
        self.write("bad.toml", '[component]\nhostnames = "a.example"\n')
        result = self.twistd("xmppcomp", "--config", "bad.toml")
        self.assertOneLine(
            result,
            'twistd xmppcomp: bad.toml: component.hostnames must be a non-empty array of hostnames such as '
            '["component.example.net"], not a single string; write it as ["a.example"]',
        )

    def test_componentUnknownKey(self) -> None:
        """
        An unknown key of C{twistd xmppcomp}'s file is named, with the key
        it was probably meant to be.
        """
        self.write("bad.toml", '[component]\nhostnames = ["a.example"]\nsevrer = "tcp:host=a:port=1"\n')
        result = self.twistd("xmppcomp", "--config", "bad.toml")
        self.assertEqual((result.returncode, result.stdout), (1, ""))
        self.assertTrue(
            result.stderr.startswith(
                "twistd xmppcomp: bad.toml: unknown key 'component.sevrer' (did you mean 'server'?); "
                "fix its spelling or remove it. Keys allowed in [component]: "
            ),
            result.stderr,
        )
        self.assertEqual(result.stderr.count("\n"), 1, result.stderr)

    def test_router(self) -> None:
        """
        C{twistd xmppcomp-router --config FILE} with a key of the wrong
        type.
        """
        self.write("bad.toml", 'domain = "example.net"\nlisten = "tcp:5348"\n')
        result = self.twistd("xmppcomp-router", "--config", "bad.toml")
        self.assertOneLine(
            result,
            'twistd xmppcomp-router: bad.toml: listen must be an array of endpoint strings such as '
            '["tcp:5348:interface=127.0.0.1"], not a single string; write it as ["tcp:5348"]',
        )

    def test_routerMalformedCredentials(self) -> None:
        """
        The router's credentials file is read when the options are
        checked: a malformed one is named with the key that names it and
        the fix, instead of a traceback once twistd starts.
        """
        credentials = self.write("credentials.json", "{not json")
        self.write(
            "router.toml",
            'domain = "example.net"\nallow_plaintext = true\ncredentials = "credentials.json"\n'
            'listen = ["tcp:0:interface=127.0.0.1"]\n',
        )
        result = self.twistd("xmppcomp-router", "--config", "router.toml")
        self.assertOneLine(
            result,
            f"twistd xmppcomp-router: router.toml: credentials: {credentials}: not a JSON document: "
            "Expecting property name enclosed in double quotes: line 1 column 2 (char 1); fix it there, "
            "or move the file away and add the domains again (xmppcomp-credentials FILE add DOMAIN)",
        )

    def test_optionSyntaxKeepsUsage(self) -> None:
        """
        An option of the wrong type is a usage error: twistd prints the
        option list, then the error, as for any plugin.
        """
        result = self.twistd("xmppcomp", "--max-queued", "many")
        self.assertEqual(result.returncode, 1)
        self.assertIn("Usage: twistd [options]", result.stdout)
        self.assertTrue(
            result.stdout.endswith(": --max-queued must be a whole number, not 'many'\n"), result.stdout
        )

    def test_credentials(self) -> None:
        """
        C{xmppcomp-credentials} ends with one line and status 1 on a
        malformed credentials file, naming the file, the entry and the
        fix, and leaves the file as it was.
        """
        document = '{"version": 1, "identities": {"comp.example.net": {"sha-1": {}}}}'
        path = self.write("credentials.json", document)
        result = self.spawn("-m", "xmppcomp.credentials", path, "list")
        line = (
            f"xmppcomp-credentials: error: malformed credentials file, left untouched: {path}: "
            "identity 'comp.example.net', 'sha-1': expected exactly the keys "
            "['iterations', 'salt', 'serverKey', 'storedKey'], found []; fix it there, or move "
            "the file away and add the domains again"
        )
        self.assertEqual((result.returncode, result.stderr, result.stdout), (1, line + "\n", ""))
        with open(path, encoding="utf-8") as f:
            self.assertEqual(f.read(), document)


class PortInUseTests(_ProcessMixin, SynchronousTestCase):
    """
    A port that is taken ends twistd with one line naming the address, the
    setting and the option that give it, and why: on standard error and in
    the log, with status 1, and no traceback.
    """

    def setUp(self) -> None:
        super().setUp()
        taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        self.port = taken.getsockname()[1]

    def assertCannotListen(self, result: subprocess.CompletedProcess[str], line: str) -> None:
        self.assertEqual((result.returncode, result.stderr, result.stdout), (1, line + "\n", ""))
        log = self.log()
        self.assertIn(f"#critical] {line}\n", log)
        self.assertNotIn("Traceback", log)

    def test_httpauth(self) -> None:
        """
        The HTTP-auth confirmer's port (C{[httpauth] listen},
        C{--http-listen}).
        """
        result = self.twistd("xmppcomp", "--http-listen", f"tcp:{self.port}:interface=127.0.0.1")
        self.assertCannotListen(
            result,
            f"twistd xmppcomp: cannot listen on 127.0.0.1:{self.port} "
            "(set by httpauth.listen or --http-listen): address already in use",
        )

    def test_embedded(self) -> None:
        """
        The embedded router's port (C{[embedded] port},
        C{--embedded-port}).
        """
        result = self.twistd(
            "xmppcomp", "--http-listen", "tcp:0:interface=127.0.0.1", "--embedded-port", str(self.port)
        )
        self.assertCannotListen(
            result,
            f"twistd xmppcomp: cannot listen on 127.0.0.1:{self.port} "
            "(set by embedded.port or --embedded-port): address already in use",
        )

    def router(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """
        C{twistd xmppcomp-router} without TLS, with an empty credentials
        file, and C{argv}.
        """
        self.write("credentials.json", '{"version": 1, "identities": {}}')
        return self.twistd(
            "xmppcomp-router", "--domain", "example.net", "--allow-plaintext",
            "--credentials", "credentials.json", *argv,
        )

    def test_routerListen(self) -> None:
        """
        A port of the router's XEP-0225 listeners (C{listen}, C{--listen}),
        the second one given.
        """
        result = self.router("--listen", "tcp:0:interface=127.0.0.1", "--listen", f"tcp:{self.port}:interface=127.0.0.1")
        self.assertCannotListen(
            result,
            f"twistd xmppcomp-router: cannot listen on 127.0.0.1:{self.port} "
            "(set by listen or --listen): address already in use",
        )

    def test_routerAcceptListen(self) -> None:
        """
        A port of the router's XEP-0114 listeners (C{[accept] listen},
        C{--accept-listen}).
        """
        self.write("legacy.secret", "a shared secret\n")
        self.write("credentials.json", '{"version": 1, "identities": {}}')
        self.write(
            "router.toml",
            'domain = "example.net"\nallow_plaintext = true\ncredentials = "credentials.json"\n'
            f'listen = ["tcp:0:interface=127.0.0.1"]\n[accept]\nlisten = ["tcp:{self.port}:interface=127.0.0.1"]\n'
            '[accept.secrets]\n"legacy.example.net" = { file = "legacy.secret" }\n',
        )
        result = self.twistd("xmppcomp-router", "--config", "router.toml")
        self.assertCannotListen(
            result,
            f"twistd xmppcomp-router: cannot listen on 127.0.0.1:{self.port} "
            "(set by accept.listen or --accept-listen): address already in use",
        )

    def test_routerMetrics(self) -> None:
        """
        The router's metrics port (C{metrics_listen}, C{--metrics-listen}).
        """
        result = self.router(
            "--listen", "tcp:0:interface=127.0.0.1", "--metrics-listen", f"tcp:{self.port}:interface=127.0.0.1"
        )
        self.assertCannotListen(
            result,
            f"twistd xmppcomp-router: cannot listen on 127.0.0.1:{self.port} "
            "(set by metrics_listen or --metrics-listen): address already in use",
        )

    def test_daemon(self) -> None:
        """
        As a daemon (no C{-n}), the line is in the log, and twistd's first
        process, which waits on the terminal for the daemon's word, says
        that an error occurred, with the start of the line, and exits with
        status 1 (instead of waiting forever); the pid file is removed.
        """
        result = self.spawn(
            "-c", TWISTD, "--pidfile=twistd.pid", "--logfile=twistd.log",
            "xmppcomp", "--http-listen", f"tcp:{self.port}:interface=127.0.0.1",
        )
        self.assertEqual((result.returncode, result.stdout), (1, ""))
        self.assertTrue(
            result.stderr.startswith(
                f"An error has occurred: b'xmppcomp.listening.ListenError: cannot listen on 127.0.0.1:{self.port} "
            ),
            result.stderr,
        )
        self.assertIn(
            f"#critical] twistd xmppcomp: cannot listen on 127.0.0.1:{self.port} "
            "(set by httpauth.listen or --http-listen): address already in use\n",
            self.log(),
        )
        pidfile = os.path.join(self.directory, "twistd.pid")
        _waitForDaemon(pidfile)
        self.assertFalse(os.path.exists(pidfile))
