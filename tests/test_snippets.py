# -*- test-case-name: tests.test_snippets -*-
"""
Every code block of the pages people follow step by step (C{README.md},
C{docs/quickstart.md}, C{docs/tutorials/*.md}, C{docs/howto/*.md}) is
either checked by a test or marked as not runnable here, with the reason.

The convention
==============

The line just before a block's opening fence (at the fence's indentation,
so inside a list item too) is an HTML comment of one of two forms, which
neither Sphinx nor GitHub shows::

    <!-- snippet: checked by tests.test_snippets.RouterHowtoTests.test_steps -->
    <!-- snippet: not run: the reason, in words -->

C{checked by} names the test (module, class, method) that runs the block;
that test finds the blocks marked with its own name (L{snippetsFor}), so a
mark cannot name a block the test does not read. L{MarkTests} fails for a
block with no mark, a malformed mark, or a mark naming no test. MyST
directives (C{{note}}, C{{literalinclude}}, C{{toctree}}, ...) are not
code blocks; C{docs/examples/} is run by C{tests/test_examples.py}.

How each kind is checked
========================

Shell (C{sh})
    Run by C{bash -e -o pipefail} in a fresh temporary directory, which
    holds a C{docs} link to the checkout's C{docs/} (so a step "from the
    top of the checkout" finds C{docs/examples/}), with the Python
    environment of the tests first on C{PATH} (C{twistd},
    C{xmppcomp-credentials}) and the checkout on C{PYTHONPATH}. The blocks
    of one test run in page order, as one script, so that C{cd} and the
    files of a step carry over. A command that runs until stopped (a
    server) is started on its own with a bound, its listening ports
    replaced by free ones with the command line options that override the
    file (C{--listen}, C{--accept-listen}), and stopped with SIGTERM once
    its log says it listens.

TOML (C{toml})
    Loaded through the configuration loader
    (L{xmppcomp.config.componentConfigFromMapping} or
    L{routerConfigFromMapping<xmppcomp.config.routerConfigFromMapping>}),
    in a temporary directory holding every file the snippet names (a
    secret file holds a secret; C{/etc/xmppcomp/} is that directory).
    I{The wrapping rule:} a snippet is a part of the file its page names.
    A part of a component's file without a C{[component]} table gets
    L{MINIMAL_COMPONENT} in front, and an C{[httpauth]} table that names
    neither C{public_origin} nor C{allowed_hosts} (which a component with
    a server must have, unless C{enabled = false}) gets
    L{MINIMAL_HTTPAUTH} at its top; a part of a router's file gets
    L{MINIMAL_ROUTER} in front (its top-level keys) and a C{[tls]} table
    with the test's certificate after it, unless it has its own. Nothing
    else is added or changed.

nginx (C{nginx})
    Put inside the C{http} block of a minimal private configuration (its
    pid file, logs and temporary paths in a temporary directory) and
    checked with C{nginx -t} by the real nginx (L{checkNginx}): the
    paths of C{ssl_certificate} and C{ssl_certificate_key} are replaced
    by a certificate and key made by the test, nothing else.

Python (C{python})
    Executed, in page order, as one module, with what the page says is
    already there (C{reactor}, C{component}, a configuration) given by the
    test: a L{MemoryReactorClock} and components connected to a
    L{xmppcomp.testing.MemoryRouter}. A snippet that connects to a TCP
    endpoint of its own (C{tcp:host=127.0.0.1:port=5348}) is connected to
    the memory router by the test (L{connectPending}).
"""

from __future__ import annotations

import glob
import importlib
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
import tomllib
from typing import Any

import attrs
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

#: The top of the checkout.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The Sphinx source directory.
DOCS = os.path.join(ROOT, "docs")

#: The mark before a block.
_MARK = re.compile(r"^<!-- snippet: (?:checked by (?P<test>[A-Za-z_][\w.]*)|not run: (?P<reason>\S.*?)) -->$")

#: An opening or closing fence: its indentation, its fence and the rest.
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")

#: What a part of a component's file is wrapped in (see the module's
#: docstring): the smallest C{[component]} table that names a server.
MINIMAL_COMPONENT = (
    "[component]\n"
    'server = "tcp:host=127.0.0.1:port=5348"\n'
    'server_domain = "example.net"\n'
    'hostnames = ["comp.example.net"]\n'
    'secret = { file = "comp.secret" }\n\n'
)

#: What an C{[httpauth]} table that names neither C{public_origin} nor
#: C{allowed_hosts} (nor C{enabled}) gets first (see the module's docstring).
MINIMAL_HTTPAUTH = 'public_origin = "https://example.net"\n'

#: What a part of a router's file is preceded by (see the module's
#: docstring); a C{[tls]} table with the test's certificate follows it.
MINIMAL_ROUTER = 'domain = "example.net"\ncredentials = "credentials.json"\n'

#: The certificate table of a router's file without one.
_ROUTER_TLS = '\n[tls]\ncertificate = "router.pem"\nkey = "router.key"\n'


def pages() -> list[str]:
    """
    The pages whose blocks must be checked or marked, relative to the top
    of the checkout.
    """
    found = ["README.md", os.path.join("docs", "quickstart.md")]
    for section in ("tutorials", "howto"):
        found += sorted(
            os.path.relpath(path, ROOT) for path in glob.glob(os.path.join(DOCS, section, "*.md"))
        )
    return found


@attrs.frozen
class Snippet:
    """
    A fenced code block of a page.

    @ivar page: the page, relative to the top of the checkout.
    @ivar line: the line of its opening fence (from 1).
    @ivar info: its info string (C{sh}, C{toml}, ..., or C{{note}} for a
        directive).
    @ivar body: its text, without the fence's indentation.
    @ivar mark: the comment on the line before it, or L{None}.
    """

    page: str
    line: int
    info: str
    body: str
    mark: str | None

    @property
    def language(self) -> str:
        return self.info.split()[0] if self.info.strip() else ""

    @property
    def isDirective(self) -> bool:
        return self.info.startswith("{")

    @property
    def test(self) -> str | None:
        match = _MARK.match(self.mark or "")
        return match.group("test") if match else None

    @property
    def reason(self) -> str | None:
        match = _MARK.match(self.mark or "")
        return match.group("reason") if match else None

    def where(self) -> str:
        return f"{self.page}:{self.line} ({self.info or 'no language'})"


def parseSnippets(text: str, page: str) -> list[Snippet]:
    """
    The fenced blocks of a MyST or CommonMark page, indented ones (in
    list items) included, with the mark before each.
    """
    lines = text.splitlines()
    found = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = len(opening.group("indent")), opening.group("fence")
        previous = lines[index - 1].strip() if index > 0 else ""
        body = []
        start = index
        index += 1
        while index < len(lines):
            closing = _FENCE.match(lines[index])
            if (
                closing is not None
                and closing.group("fence")[0] == fence[0]
                and len(closing.group("fence")) >= len(fence)
                and not closing.group("info").strip()
            ):
                break
            line = lines[index]
            body.append(line[indent:] if line[:indent].strip() == "" else line)
            index += 1
        found.append(
            Snippet(
                page=page,
                line=start + 1,
                info=opening.group("info").strip(),
                body="\n".join(body),
                mark=previous if previous.startswith("<!--") else None,
            )
        )
        index += 1
    return found


def allSnippets() -> list[Snippet]:
    """
    The code blocks (not the directives) of every page of L{pages}.
    """
    found = []
    for page in pages():
        with open(os.path.join(ROOT, page), encoding="utf-8") as f:
            found += [s for s in parseSnippets(f.read(), page) if not s.isDirective]
    return found


def snippetsFor(testCase: SynchronousTestCase, language: str | None = None) -> list[Snippet]:
    """
    The blocks marked as checked by C{testCase}'s test method, in page
    order, optionally only those of one language; at least one.
    """
    name = testCase.id()
    found = [s for s in allSnippets() if s.test == name and (language is None or s.language == language)]
    if not found:
        raise AssertionError(f"no {language or ''} block is marked 'checked by {name}'")
    return found


# Shell


def sandbox(testCase: SynchronousTestCase) -> str:
    """
    A fresh directory for a test's shell steps, with a C{docs} link to
    the checkout's documentation.
    """
    directory = os.path.abspath(testCase.mktemp())
    os.makedirs(directory)
    os.symlink(DOCS, os.path.join(directory, "docs"))
    return directory


def shellEnvironment() -> dict[str, str]:
    """
    The environment of shell steps: the tests' Python environment first on
    C{PATH} (with C{/usr/sbin}), the checkout on C{PYTHONPATH}.
    """
    environment = dict(os.environ)
    path = [os.path.dirname(sys.executable), *environment.get("PATH", "").split(os.pathsep), "/usr/sbin"]
    environment["PATH"] = os.pathsep.join(p for p in path if p)
    environment["PYTHONPATH"] = ROOT
    return environment


def runShell(
    testCase: SynchronousTestCase, script: str, cwd: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """
    Run C{script} with bash (C{-e -o pipefail}) in C{cwd}; fail the test
    unless it succeeds.
    """
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=cwd,
        env=shellEnvironment(),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    testCase.assertEqual(
        result.returncode, 0, f"script:\n{script}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def freePort() -> int:
    """
    A TCP port of 127.0.0.1 that was free a moment ago.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def runUntilListening(
    testCase: SynchronousTestCase, command: str, cwd: str, listening: str, timeout: float = 60
) -> str:
    """
    Start the long-running C{command} with bash in C{cwd}, wait until its
    output holds C{listening}, then stop it with SIGTERM (SIGKILL after 10
    seconds more).

    @return: its output.
    """
    process = subprocess.Popen(
        ["bash", "-c", "exec " + command],
        cwd=cwd,
        env=shellEnvironment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert process.stdout is not None
    received = b""
    try:
        # Wake on each chunk of output (or its end), never on a timer.
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout
            while listening.encode() not in received:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    break
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk:
                    break
                received += chunk
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        received += process.stdout.read()
        process.stdout.close()
    output = received.decode("utf-8", "replace")
    testCase.assertIn(listening, output, f"{command}\n{output}")
    return output


# TOML


def _secretFiles(text: str, directory: str) -> None:
    for name in re.findall(r'\{\s*file\s*=\s*"([^"]+)"\s*\}', text):
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write("a secret, long enough for the tests\n")


def loadComponentSnippet(text: str, directory: str) -> Any:
    """
    Load a part of a component's file (the wrapping rule of the module's
    docstring) in C{directory}.
    """
    from xmppcomp.config import componentConfigFromMapping

    text = text.replace('"/etc/xmppcomp/', '"')
    if not re.search(r"^\[component\]", text, re.M):
        text = MINIMAL_COMPONENT + text
    if not re.search(r"^(public_origin|allowed_hosts|enabled)\s*=", text, re.M):
        text = re.sub(r"^\[httpauth\]\n", lambda m: m.group(0) + MINIMAL_HTTPAUTH, text, count=1, flags=re.M)
    _secretFiles(text, directory)
    return componentConfigFromMapping(tomllib.loads(text), "snippet", baseDirectory=directory)


def loadRouterSnippet(text: str, directory: str) -> Any:
    """
    Load a part of a router's file (the wrapping rule of the module's
    docstring) in C{directory}, with a certificate and an empty
    credentials file made here.
    """
    from xmppcomp.config import routerConfigFromMapping
    from xmppcomp.stream.sasl import FileCredentialStore
    from xmppcomp.testing import selfSigned, writePem

    text = text.replace('"/etc/xmppcomp/', '"')
    if not re.search(r"^domain\s*=", text, re.M):
        text = MINIMAL_ROUTER + text
    if not re.search(r"^\[tls\]", text, re.M):
        text += _ROUTER_TLS
        certificate, key = writePem(selfSigned(["example.net"]), directory)
        os.replace(certificate, os.path.join(directory, "router.pem"))
        os.replace(key, os.path.join(directory, "router.key"))
    credentials = os.path.join(directory, "credentials.json")
    if not os.path.exists(credentials):
        FileCredentialStore(credentials).save()
    _secretFiles(text, directory)
    return routerConfigFromMapping(tomllib.loads(text), "snippet", baseDirectory=directory)


# nginx


def checkNginx(testCase: SynchronousTestCase, text: str) -> None:
    """
    Fail the test unless the real nginx accepts C{text}, put in the
    C{http} block of a private configuration, with C{nginx -t}; its
    certificate paths are replaced by a certificate made here.
    """
    from xmppcomp.testing import selfSigned, writePem

    from .nginx import nginxAvailable, nginxPath

    problem = nginxAvailable()
    if problem is not None:
        testCase.fail(problem)
    binary = nginxPath()
    assert binary is not None
    directory = os.path.abspath(testCase.mktemp())
    os.makedirs(directory)
    certificate, key = writePem(selfSigned(["example.net"]), directory)
    text = re.sub(r"^(\s*ssl_certificate)\s+[^;]+;", rf"\1 {certificate};", text, flags=re.M)
    text = re.sub(r"^(\s*ssl_certificate_key)\s+[^;]+;", rf"\1 {key};", text, flags=re.M)
    temp = os.path.join(directory, "temp")
    os.makedirs(temp)
    paths = "\n".join(
        f"    {kind}_temp_path {os.path.join(temp, kind)};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = os.path.join(directory, "nginx.conf")
    with open(conf, "w") as f:
        f.write(
            f"pid {directory}/nginx.pid;\nerror_log {directory}/error.log;\n"
            f"events {{ }}\nhttp {{\n    access_log off;\n{paths}\n{text}\n}}\n"
        )
    result = subprocess.run(
        [binary, "-t", "-p", directory, "-c", conf, "-e", f"{directory}/error.log"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    testCase.assertEqual(result.returncode, 0, f"{result.stderr}\n{text}")
    testCase.assertIn("test is successful", result.stderr)


# Python


def connectPending(reactor: MemoryReactorClock, router: Any, host: str, port: int) -> None:
    """
    Connect every TCP connection a snippet asked C{reactor} for (to
    C{host}:C{port}, its server) to the memory router instead.
    """
    pending, reactor.tcpClients[:] = list(reactor.tcpClients), []
    for (clientHost, clientPort, factory, _, _) in pending:
        assert (clientHost, clientPort) == (host, port), (clientHost, clientPort)
        router.endpoint().connect(factory)
    router.flush()


def loadExample(name: str) -> Any:
    """
    The module of C{docs/examples/NAME}.
    """
    from .test_examples import loadExample as load

    return load(name)


class MarkTests(SynchronousTestCase):
    """
    Every code block of the pages is marked, and each mark is well formed
    and names a test that exists.
    """

    def test_everyBlockMarked(self) -> None:
        """
        No code block lacks a mark, and every mark is one of the two forms.
        """
        unmarked = [s.where() for s in allSnippets() if s.test is None and s.reason is None]
        self.assertEqual(unmarked, [])

    def test_testsExist(self) -> None:
        """
        Every C{checked by} names a test method of a module of C{tests}.
        """
        missing = []
        for snippet in allSnippets():
            if snippet.test is None:
                continue
            moduleName, className, methodName = snippet.test.rsplit(".", 2)
            try:
                cls = getattr(importlib.import_module(moduleName), className)
                getattr(cls, methodName)
            except (ImportError, AttributeError):
                missing.append(f"{snippet.where()}: {snippet.test}")
            else:
                if not (moduleName.startswith("tests.") and methodName.startswith("test_")):
                    missing.append(f"{snippet.where()}: {snippet.test} is not a test")
        self.assertEqual(missing, [])

    def test_parse(self) -> None:
        """
        Indented fences (in list items) are blocks, with their indentation
        taken off; the comment on the line before is the mark; directives
        are recognised; a longer fence holds a shorter one.
        """
        text = (
            "<!-- snippet: not run: why -->\n"
            "```sh\n"
            "echo a\n"
            "```\n\n"
            "1. step\n\n"
            "   <!-- snippet: checked by tests.test_snippets.MarkTests.test_parse -->\n"
            "   ```toml\n"
            "   a = 1\n"
            "     b = 2\n"
            "   ```\n\n"
            "````{note}\n"
            "```python\n"
            "````\n"
            "```\n"
            "plain\n"
            "```\n"
        )
        snippets = parseSnippets(text, "page.md")
        self.assertEqual(
            [(s.line, s.info, s.body, s.test, s.reason, s.isDirective) for s in snippets],
            [
                (2, "sh", "echo a", None, "why", False),
                (9, "toml", "a = 1\n  b = 2", "tests.test_snippets.MarkTests.test_parse", None, False),
                (14, "{note}", "```python", None, None, True),
                (17, "", "plain", None, None, False),
            ],
        )


class ShellSnippetTests(SynchronousTestCase):
    """
    The shell steps that stand on their own.
    """

    def test_credentials(self) -> None:
        """
        The commands of C{xmppcomp-credentials} in the credentials how-to
        run in order, each line on its own with a secret on its standard
        input (where the terminal would be): add, change, remove, list,
        and add from C{comp.secret}, which then is the only entry.
        """
        from xmppcomp.stream.sasl import FileCredentialStore

        [block] = snippetsFor(self, "sh")
        directory = sandbox(self)
        with open(os.path.join(directory, "comp.secret"), "w") as f:
            f.write("the secret in comp.secret, long enough\n")
        lines = [line for line in block.body.splitlines() if line.strip()]
        self.assertEqual(len(lines), 5)
        for line in lines:
            runShell(self, line, directory, stdin="a secret typed at the prompt, long enough\n")
        store = FileCredentialStore(os.path.join(directory, "credentials.json"))
        store.load()
        self.assertEqual(list(store.identities()), ["comp.example.net"])

    def test_pluginHelp(self) -> None:
        """
        C{twistd xmppcomp --help} lists the component's options.
        """
        [block] = snippetsFor(self, "sh")
        output = runShell(self, block.body, sandbox(self)).stdout
        for option in ("--config", "--server", "--server-domain", "--hostname", "--secret-file"):
            self.assertIn(option, output)

    def test_oneModule(self) -> None:
        """
        The command that runs one test module runs it, with the tests'
        own environment as C{.venv}, from the top of a copy of the
        checkout's C{tests} (a link).
        """
        [block] = snippetsFor(self, "sh")
        directory = sandbox(self)
        os.symlink(sys.prefix, os.path.join(directory, ".venv"))
        os.symlink(os.path.join(ROOT, "tests"), os.path.join(directory, "tests"))
        result = runShell(self, block.body, directory, timeout=300)
        self.assertIn("PASSED", result.stdout)


class RouterHowtoTests(SynchronousTestCase):
    """
    C{docs/howto/router.md} works as written from an empty directory.
    """

    def test_steps(self) -> None:
        """
        The how-to's steps, run in order in a fresh directory, make every
        file C{docs/examples/router.toml} names, so the copied example
        loads unchanged; C{twistd xmppcomp-router --help} works; and the
        router starts from the example with its run command (with free
        ports given by C{--listen} and C{--accept-listen}), and stops on
        SIGTERM.
        """
        from xmppcomp.config import loadRouterConfig

        blocks = snippetsFor(self, "sh")
        steps, run = blocks[:-1], blocks[-1]
        directory = sandbox(self)
        runShell(self, "\n".join(block.body for block in steps), directory)
        routerDirectory = os.path.join(directory, "router")
        config = loadRouterConfig(os.path.join(routerDirectory, "router.toml"))
        self.assertEqual(config.domain, "example.net")
        self.assertEqual(config.clientCAs, os.path.join(routerDirectory, "clients-ca.pem"))
        self.assertEqual(list(config.acceptSecrets), ["legacy.example.net"])
        self.assertEqual(len(config.acceptSecrets["legacy.example.net"].read()), 64)

        commands = [line.split("#")[0].strip() for line in run.body.splitlines() if line.strip()]
        [helpCommand] = [c for c in commands if c.endswith("--help")]
        [serve] = [c for c in commands if " -n " in c]
        self.assertIn("--listen", runShell(self, helpCommand, routerDirectory).stdout)
        serve += " --listen tcp:%d:interface=127.0.0.1 --accept-listen tcp:%d:interface=127.0.0.1" % (
            freePort(),
            freePort(),
        )
        output = runUntilListening(self, serve, routerDirectory, "router example.net listening on")
        self.assertNotIn("Traceback", output)

    def test_clientCertificate(self) -> None:
        """
        The client certificate the how-to issues is one the router's
        authority verifies, for C{comp.example.net}.
        """
        from cryptography import x509
        from OpenSSL import crypto

        from xmppcomp.stream.tls import loadCertificates, loadPrivateCertificate

        steps = "tests.test_snippets.RouterHowtoTests.test_steps"
        [block] = [s for s in allSnippets() if s.test == steps and "clients-ca.pem" in s.body]
        directory = sandbox(self)
        runShell(self, block.body, directory)
        certificate = loadPrivateCertificate(
            os.path.join(directory, "comp.pem"), os.path.join(directory, "comp.key")
        )
        [authority] = loadCertificates(os.path.join(directory, "clients-ca.pem"))
        store = crypto.X509Store()
        store.add_cert(authority.original)
        crypto.X509StoreContext(store, certificate.original).verify_certificate()
        names = certificate.original.to_cryptography().extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
        self.assertEqual(names.value.get_values_for_type(x509.DNSName), ["comp.example.net"])


class TomlSnippetTests(SynchronousTestCase):
    """
    TOML snippets load through the configuration loader, wrapped as the
    module's docstring says.
    """

    def directory(self) -> str:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        return directory

    def test_metrics(self) -> None:
        """
        The observability how-to's C{[httpauth] metrics = true} turns the
        metrics on.
        """
        [block] = snippetsFor(self, "toml")
        config = loadComponentSnippet(block.body, self.directory())
        self.assertTrue(config.httpauth.metrics)

    def test_sharedNames(self) -> None:
        """
        The router how-to's C{shared_names} loads, both patterns.
        """
        [block] = snippetsFor(self, "toml")
        config = loadRouterSnippet(block.body, self.directory())
        self.assertEqual(tuple(config.sharedNames), ("auth.comp.example.net", "*.pool.comp.example.net"))

    def test_requireXTLS(self) -> None:
        """
        The XTLS confirmations how-to's rules load: C{require_xtls} for
        every JID of C{/admin}, for Alice only under C{/wiki}.
        """
        from xmppcomp.testing import makeCertificateAuthority, writePem

        [block] = snippetsFor(self, "toml")
        directory = self.directory()
        authority = makeCertificateAuthority()
        certificate, key = writePem(authority.issue(dnsNames=["comp.example.net"], client=True), directory)
        os.replace(certificate, os.path.join(directory, "xtls.pem"))
        os.replace(key, os.path.join(directory, "xtls.key"))
        with open(os.path.join(directory, "users-ca.pem"), "wb") as f:
            f.write(authority.pem)
        rules = loadComponentSnippet(block.body, directory).httpauth.rules
        self.assertEqual(
            [(r.prefix, r.requireXTLS, sorted(r.xtlsFor)) for r in rules.rules],
            [("/", False, []), ("/admin", True, []), ("/wiki", False, ["alice@example.net"])],
        )

    def test_xep0114Component(self) -> None:
        """
        The XEP-0114 how-to's C{[component]} table loads as it is: the
        protocol, the server, the name and the secret file.
        """
        [block] = snippetsFor(self, "toml")
        directory = self.directory()
        config = loadComponentSnippet(block.body, directory)
        self.assertEqual(
            (config.protocol, config.server, config.serverDomain, config.hostnames),
            ("xep0114", "tcp:host=127.0.0.1:port=5347", "example.net", ("comp.example.net",)),
        )
        self.assertEqual(config.secret.read(), "a secret, long enough for the tests")


class NginxSnippetTests(SynchronousTestCase):
    """
    nginx snippets pass C{nginx -t} (L{checkNginx}).
    """

    def test_protectASite(self) -> None:
        """
        The tutorial's complete C{server} block, with its TLS certificate
        lines, passes.
        """
        [block] = snippetsFor(self, "nginx")
        self.assertIn("ssl_certificate ", block.body)
        self.assertIn("ssl_certificate_key ", block.body)
        checkNginx(self, block.body)


class _MemoryRouterMixin:
    """
    A L{MemoryRouter} for C{example.net}, and components connected to it.
    """

    addCleanup: Any
    successResultOf: Any
    assertTrue: Any
    mktemp: Any

    def setUpRouter(self) -> Any:
        from xmppcomp.testing import MemoryRouter

        self.router = MemoryRouter("example.net")
        return self.router

    def started(self, component: Any) -> Any:
        """
        Start C{component}, connect it, and stop it at the end of the test.
        """
        component.startService()
        self.router.flush()

        def stop() -> None:
            stopped = component.stopService()
            self.router.flush()
            self.successResultOf(stopped)

        self.addCleanup(stop)
        return component

    def memoryComponent(self, hostname: str, *handlers: Any) -> Any:
        """
        A started component for C{hostname} with C{handlers}, connected
        and bound.
        """
        from xmppcomp.component import Component

        component = Component(
            "memory",
            self.router.domain,
            [hostname],
            secret=self.router.addIdentity(hostname),
            reactor=self.router.reactor,
            endpointFactory=self.router.endpointFactory,
        )
        for handler in handlers:
            handler.setHandlerParent(component)
        self.started(component)
        self.assertTrue(component.isConnected(hostname))
        return component

    def secretDirectory(self, secret: str) -> str:
        """
        A new directory holding C{comp.secret}, which holds C{secret}.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        with open(os.path.join(directory, "comp.secret"), "w") as f:
            f.write(secret + "\n")
        return directory

    def inDirectory(self, directory: str) -> None:
        """
        Work in C{directory} until the end of the test.
        """
        here = os.getcwd()
        os.chdir(directory)
        self.addCleanup(os.chdir, here)


class PythonSnippetTests(_MemoryRouterMixin, SynchronousTestCase):
    """
    The Python snippets of the tutorials and how-tos run against the
    memory router.
    """

    def test_handlersAttach(self) -> None:
        """
        The handlers tutorial's "Attach it", given a configuration that
        names a server, the reactor and the example's C{TimeHandler},
        builds, starts and connects a component that answers an entity
        time request and lists the feature in disco#info.
        """
        from twisted.words.protocols.jabber.xmlstream import IQ

        from xmppcomp.config import componentConfigFromMapping

        [block] = snippetsFor(self, "python")
        router = self.setUpRouter()
        directory = self.secretDirectory(router.addIdentity("comp.example.net"))
        config = componentConfigFromMapping(
            tomllib.loads(
                "[component]\n"
                'server = "tcp:host=127.0.0.1:port=5348"\n'
                'server_domain = "example.net"\n'
                'hostnames = ["time.comp.example.net"]\n'
                'identity = "comp.example.net"\n'
                'secret = { file = "comp.secret" }\n'
                "[httpauth]\n"
                "enabled = false\n"
            ),
            "test",
            baseDirectory=directory,
        )
        module = loadExample("handler_component.py")
        namespace: dict[str, Any] = {"config": config, "reactor": router.reactor, "TimeHandler": module.TimeHandler}
        exec(compile(block.body, block.page, "exec"), namespace)
        component = namespace["component"]
        self.addCleanup(lambda: (component.stopService(), router.flush()))
        connectPending(router.reactor, router, "127.0.0.1", 5348)
        self.assertTrue(component.isConnected("time.comp.example.net"))

        tester = self.memoryComponent("tester.example.net")
        iq = IQ(None, "get")
        iq["from"] = "tester.example.net"
        iq["to"] = "time.comp.example.net"
        iq.addElement((module.NS_TIME, "time"))
        answer = tester.request(iq)
        router.flush()
        self.assertEqual(self.successResultOf(answer)["type"], "result")

    def test_subclassInCode(self) -> None:
        """
        The subclass tutorial's "Build one in code", run by its
        C{task.react} (the memory router's clock as the reactor) with
        C{comp.secret} and C{router.pem} in the directory, connects the
        echo component and binds its name; it echoes.
        """
        from twisted.internet import task
        from twisted.words.xish import domish

        from xmppcomp.testing import selfSigned, writePem

        from .test_examples import Inbox

        [block] = snippetsFor(self, "python")
        router = self.setUpRouter()
        directory = self.secretDirectory(router.addIdentity("comp.example.net"))
        certificate, _ = writePem(selfSigned(["example.net"]), directory)
        os.replace(certificate, os.path.join(directory, "router.pem"))
        self.inDirectory(directory)
        made: list[Any] = []

        class EchoComponent(loadExample("echo_component.py").EchoComponent):  # type: ignore[misc]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                made.append(self)

        ran: list[Any] = []
        self.patch(task, "react", lambda main: ran.append(main(router.reactor)))
        exec(compile(block.body, block.page, "exec"), {"__name__": "tutorial", "EchoComponent": EchoComponent})
        [component] = made
        self.addCleanup(lambda: (component.stopService(), router.flush()))
        connectPending(router.reactor, router, "127.0.0.1", 5348)
        router.reactor.advance(0)
        router.flush()
        [main] = ran
        self.successResultOf(main)
        self.assertTrue(component.isConnected("echo.comp.example.net"))

        inbox = Inbox()
        tester = self.memoryComponent("tester.example.net", inbox)
        message = domish.Element((None, "message"))
        message["from"] = "tester.example.net"
        message["to"] = "echo.comp.example.net"
        message.addElement("body", content="hello")
        tester.send(message)
        router.flush()
        [reply] = inbox.messages
        self.assertEqual(str(reply.body), "hello")

    def test_xep0114Component(self) -> None:
        """
        The XEP-0114 how-to's C{Component}, with the secret of
        C{comp.secret}, connects with the handshake and binds its name
        (the test gives it the memory router's clock and endpoints).
        """
        import xmppcomp.component

        [block] = snippetsFor(self, "python")
        router = self.setUpRouter()
        directory = self.secretDirectory(router.addAcceptName("comp.example.net"))
        self.inDirectory(directory)

        class InMemory(xmppcomp.component.Component):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs.setdefault("reactor", router.reactor)
                kwargs.setdefault("endpointFactory", router.endpointFactory)
                super().__init__(*args, **kwargs)

        self.patch(xmppcomp.component, "Component", InMemory)
        namespace: dict[str, Any] = {"__name__": "howto"}
        exec(compile(block.body, block.page, "exec"), namespace)
        component = self.started(namespace["component"])
        self.assertEqual(component.protocol, "xep0114")
        self.assertTrue(component.isConnected("comp.example.net"))


class XTLSTutorialTests(_MemoryRouterMixin, SynchronousTestCase):
    """
    C{docs/tutorials/xtls-tunnel.md} runs: its Python blocks in order, as
    one module, between two components on the memory router.
    """

    def test_tunnel(self) -> None:
        """
        The in-memory certificates are made; the same certificate and
        authority, written to PEM files, load from disk; Alice's endpoint
        is built from them; C{talk} opens a tunnel to Bob, prints its TLS
        version and cipher, sends the message, waits until it is acknowledged and closes; Bob's
        C{onMessage} sees it, marked C{xtlsEncrypted}.
        """
        from twisted.internet import defer

        from xmppcomp.testing import writePem
        from xmppcomp.xtls import XTLSConfiguration, XTLSHandler

        from .test_examples import Inbox

        blocks = snippetsFor(self, "python")
        self.assertEqual(len(blocks), 5)
        certificates, files, endpoint, talk, receiving = blocks
        router = self.setUpRouter()
        namespace: dict[str, Any] = {"__name__": "tutorial"}
        exec(compile(certificates.body, certificates.page, "exec"), namespace)
        inMemory, authority = namespace["ours"], namespace["ca"]

        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        certificate, key = writePem(inMemory, directory)
        os.replace(certificate, os.path.join(directory, "alice.pem"))
        os.replace(key, os.path.join(directory, "alice.key"))
        with open(os.path.join(directory, "xtls-ca.pem"), "wb") as f:
            f.write(authority.pem)
        self.inDirectory(directory)
        exec(compile(files.body, files.page, "exec"), namespace)
        self.assertIsNot(namespace["ours"], inMemory)
        self.assertEqual(namespace["ours"].digest("sha256"), inMemory.digest("sha256"))
        self.assertEqual([c.digest("sha256") for c in namespace["peers"]], [authority.certificate.digest("sha256")])

        bob = XTLSHandler(
            XTLSConfiguration(
                certificate=authority.issue(dnsNames=["bob.comp.example.net"], client=True),
                trust=[authority.certificate],
            ),
            clock=router.reactor,
        )
        inbox = Inbox()
        self.memoryComponent("bob.comp.example.net", bob, inbox)
        exec(compile(receiving.body, receiving.page, "exec"), namespace)
        alice = self.memoryComponent("alice.comp.example.net")
        namespace.update(reactor=router.reactor, component=alice)
        exec(compile(endpoint.body, endpoint.page, "exec"), namespace)
        router.flush()
        printed: list[tuple[Any, ...]] = []
        namespace["print"] = lambda *values: printed.append(values)
        exec(compile(talk.body, talk.page, "exec"), namespace)
        done = defer.ensureDeferred(namespace["talk"](namespace["xtls"]))
        for _ in range(100):
            if done.called:
                break
            router.flush()
            router.reactor.advance(0)
        self.successResultOf(done)
        [(label, version, cipher)] = printed
        self.assertEqual(label, "open:")
        self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
        self.assertIsInstance(cipher, str)
        [message] = inbox.messages
        namespace["onMessage"](message)
        self.assertTrue(message.xtlsEncrypted)
        self.assertEqual(str(message.body), "only Bob can read this")


class XTLSConfirmationSnippetTests(_MemoryRouterMixin, SynchronousTestCase):
    """
    C{docs/howto/xtls-confirmations.md}'s responder runs: a user's
    component on the memory router answers a confirmation asked through
    XTLS, and refuses one asked in the clear.
    """

    def test_responder(self) -> None:
        """
        The snippet's responder confirms through the tunnel (C{askTheUser}
        says yes) and answers a plaintext question C{policy-violation}
        without asking.
        """
        from twisted.words.protocols.jabber.jid import JID

        from xmppcomp.httpauth import ConfirmationRequester, CouldNotAsk
        from xmppcomp.httpauth._protocol import ConfirmRequest, Outcome
        from xmppcomp.testing import makeCertificateAuthority
        from xmppcomp.xtls import XTLSConfiguration, XTLSHandler

        [block] = snippetsFor(self, "python")
        router = self.setUpRouter()
        authority = makeCertificateAuthority()
        confirmerXTLS = XTLSHandler(
            XTLSConfiguration(certificate=authority.issue(dnsNames=["confirm.example.net"], client=True),
                              trust=[authority.certificate]),
            clock=router.reactor,
        )
        requester = ConfirmationRequester(JID("confirm.example.net"), router.reactor, xtls=confirmerXTLS)
        self.memoryComponent("confirm.example.net", confirmerXTLS, requester)
        asked: list[ConfirmRequest] = []

        def askTheUser(request: ConfirmRequest) -> bool:
            asked.append(request)
            return True

        namespace: dict[str, Any] = {
            "__name__": "howto",
            "mine": authority.issue(xmppAddrs=["alice@users.example.net"], client=True),
            "confirmers": authority.certificate,
            "reactor": router.reactor,
            "stream": self.memoryComponent("users.example.net"),
            "askTheUser": askTheUser,
        }
        exec(compile(block.body, block.page, "exec"), namespace)
        alice = JID("alice@users.example.net/phone")
        request = ConfirmRequest("tx-1", "GET", "https://example.net/admin/")
        d = requester.confirm(alice, request, endToEnd=True)
        router.flush()
        self.assertEqual(self.successResultOf(d).outcome, Outcome.ALLOW)
        self.assertEqual(asked, [request])
        d = requester.confirm(alice, ConfirmRequest("tx-2", "GET", "https://example.net/admin/"))
        router.flush()
        self.assertIn("policy-violation", self.failureResultOf(d, CouldNotAsk).value.reason)
        self.assertEqual(len(asked), 1)


class PackagingTests(SynchronousTestCase):
    """
    What the development install of C{docs/quickstart.md} relies on.
    """

    def test_editableLayout(self) -> None:
        """
        C{setup.cfg} maps the packages from the top of the checkout
        (C{package_dir = =.}): setuptools then makes an editable install a
        path entry for the checkout, where Twisted's plugin discovery finds
        C{twisted/plugins/}, instead of an import hook for the packages
        alone, which hides the plugins (C{twistd xmppcomp}: "Unknown
        command"). Installing takes a virtual environment and the package
        index, so it was tried by hand, not here.
        """
        import configparser

        parser = configparser.ConfigParser()
        parser.read(os.path.join(ROOT, "setup.cfg"))
        mapping = [line.replace(" ", "") for line in parser["options"]["package_dir"].splitlines() if line.strip()]
        self.assertEqual(mapping, ["=."])
        self.assertTrue(os.path.exists(os.path.join(ROOT, "twisted", "plugins", "xmppcomp_plugin.py")))
