# -*- test-case-name: tests.test_docs -*-
"""
The documentation builds: the Sphinx site in C{docs/} without a single
warning (C{-W}), with the state diagrams rendered by Graphviz or, without
it, shown as their source; and the pydoctor API reference over the package.

These are builds, not network tests: nothing here reaches the network
(Sphinx's intersphinx and pydoctor's inventories are off unless asked for,
see C{docs/conf.py} and C{docs/api.md}). Each build runs in a child
process with a timeout.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import TypeVar

import attrs
from twisted.trial.unittest import SynchronousTestCase

#: The top of the checkout.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The Sphinx source directory.
DOCS = os.path.join(ROOT, "docs")

#: Seconds a build may take before the test fails.
TIMEOUT = 600

#: The state diagrams, each shown on the state machines page.
DIAGRAMS = ("receiving", "initiating", "accept", "accept-initiating", "component", "confirmation", "xtls")


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """
    Run C{argv} from the top of the checkout, without network-dependent
    options, and collect its output.

    @param env: variables added to the environment.
    """
    environment = dict(os.environ)
    environment.pop("XMPPCOMP_DOCS_INTERSPHINX", None)
    environment.update(env or {})
    return subprocess.run(
        argv,
        cwd=ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


class SphinxTests(SynchronousTestCase):
    """
    C{sphinx-build -W -b html docs OUTPUT} succeeds with no warning.
    """

    def build(self, env: dict[str, str] | None = None) -> str:
        """
        Build the site into a fresh directory and check it succeeded
        without warnings.

        @return: the output directory.
        """
        output = os.path.abspath(self.mktemp())
        result = run(
            [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", DOCS, output],
            env,
        )
        report = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        self.assertEqual(result.returncode, 0, report)
        self.assertNotIn("WARNING", result.stderr, report)
        self.assertNotIn("ERROR", result.stderr, report)
        return output

    def page(self, output: str, name: str) -> str:
        with open(os.path.join(output, name), encoding="utf-8") as f:
            return f.read()

    def test_build(self) -> None:
        """
        The site builds without warnings, with the pages of every section
        and the API reference link.
        """
        output = self.build()
        for name in (
            "index.html",
            "quickstart.html",
            "tutorials/subclass.html",
            "tutorials/handlers.html",
            "tutorials/protect-a-site.html",
            "tutorials/xtls-tunnel.html",
            "tutorials/testing.html",
            "howto/xep0114-servers.html",
            "howto/router.html",
            "howto/several-confirmers.html",
            "howto/credentials-certificates.html",
            "howto/limits.html",
            "howto/dns.html",
            "protocols/xep0225.html",
            "protocols/xep0114.html",
            "protocols/xep0070.html",
            "protocols/xtls.html",
            "protocols/xep0192.html",
            "protocols/rfc6120.html",
            "state-machines/index.html",
            "api.html",
            "changelog.html",
        ):
            self.assertTrue(os.path.exists(os.path.join(output, name)), name)
        self.assertIn('href="api/index.html"', self.page(output, "api.html"))

    def test_examplesIncluded(self) -> None:
        """
        The tutorials show the code of the examples they are about, taken
        from C{docs/examples/}.
        """
        output = self.build()
        self.assertIn("EchoComponent", self.page(output, "tutorials/subclass.html"))
        self.assertIn("TimeHandler", self.page(output, "tutorials/handlers.html"))

    def test_diagramSources(self) -> None:
        """
        Without Graphviz's C{dot} (forced with C{XMPPCOMP_DOCS_NO_DOT}), the
        site still builds without warnings and shows each diagram as its
        C{.dot} source.
        """
        output = self.build({"XMPPCOMP_DOCS_NO_DOT": "1"})
        page = self.page(output, "state-machines/index.html")
        self.assertEqual(page.count("digraph"), len(DIAGRAMS), page)

    def test_diagramsRendered(self) -> None:
        """
        With C{dot} installed, each diagram is rendered as SVG.
        """
        if not any(
            os.access(os.path.join(d, "dot"), os.X_OK)
            for d in os.environ.get("PATH", "").split(os.pathsep)
        ):
            # Fail rather than skip, as the Prosody and nginx tests do:
            # a run without dot must not pass for one with it.
            self.fail("Graphviz's dot is not on PATH: install the Debian package 'graphviz' "
                      "(apt-get install -y graphviz); .ci/run installs it")
        output = self.build()
        page = self.page(output, "state-machines/index.html")
        images = re.findall(r"graphviz-[0-9a-f]+\.svg", page)
        self.assertEqual(len(set(images)), len(DIAGRAMS), page)

    def test_diagramFiles(self) -> None:
        """
        Every protocol machine has its C{.dot} file, and the state machines
        page shows each one.
        """
        with open(os.path.join(DOCS, "state-machines", "index.md"), encoding="utf-8") as f:
            page = f.read()
        for name in DIAGRAMS:
            self.assertTrue(os.path.exists(os.path.join(DOCS, "state-machines", name + ".dot")), name)
            self.assertIn("{graphviz} %s.dot" % (name,), page)


#: pydoctor warnings about references to other projects, which only
#: inventories (fetched over the network, or made from the installed
#: packages, see C{docs/api.md}) can resolve.
_UNRESOLVED = re.compile(r'Cannot find link target for "')


class PydoctorTests(SynchronousTestCase):
    """
    The API reference builds with pydoctor from the epytext docstrings.
    """

    def build(self) -> tuple[str, list[str]]:
        """
        Run pydoctor over the package, with no inventory.

        @return: the output directory and the warning lines.
        """
        output = os.path.abspath(self.mktemp())
        result = run(
            [
                sys.executable,
                "-m",
                "pydoctor",
                "--project-name",
                "xmppcomp",
                "--docformat",
                "epytext",
                "--html-output",
                output,
                "-q",
                "xmppcomp",
            ]
        )
        report = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        # pydoctor exits with 2 when it warned, 0 otherwise.
        self.assertIn(result.returncode, (0, 2), report)
        self.assertTrue(os.path.exists(os.path.join(output, "index.html")), report)
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        return output, lines

    def test_build(self) -> None:
        """
        pydoctor builds the reference: a page for the package and for the
        main public classes.
        """
        output, _ = self.build()
        for name in (
            "xmppcomp.html",
            "xmppcomp.component.Component.html",
            "xmppcomp.xtls.html",
        ):
            self.assertTrue(os.path.exists(os.path.join(output, name)), name)

    def test_docstrings(self) -> None:
        """
        Every docstring parses as epytext, and pydoctor has nothing to say
        except about references into other projects (which need
        inventories; C{docs/api.md}).
        """
        _, lines = self.build()
        problems = [line for line in lines if not _UNRESOLVED.search(line)]
        self.assertEqual(problems, [])


_T = TypeVar("_T")

#: The tutorial whose web-server configurations are the tested ones.
TUTORIAL = os.path.join(DOCS, "tutorials", "protect-a-site.md")

#: The address and port of the forward-auth endpoint in the tutorial (its
#: C{[httpauth] listen}); the harnesses put a free loopback port there.
TUTORIAL_AUTH = ("127.0.0.1", 8080)

#: The directory the tutorial's web servers serve; the harnesses serve a
#: private one.
TUTORIAL_ROOT = "/srv/www"


def fencedBlocks(text: str) -> list[tuple[str, str]]:
    """
    The fenced code blocks of a MyST page, in order: (info string, body).
    """
    blocks = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("```"):
            info = line[3:].strip()
            body = []
            index += 1
            while index < len(lines) and lines[index].rstrip() != "```":
                body.append(lines[index])
                index += 1
            blocks.append((info, "\n".join(body)))
        index += 1
    return blocks


def tutorialBlock(marker: str) -> str:
    """
    The one fenced block of the tutorial that holds C{marker}.
    """
    with open(TUTORIAL, encoding="utf-8") as f:
        blocks = [body for _, body in fencedBlocks(f.read()) if marker in body]
    if len(blocks) != 1:
        raise AssertionError(f"{len(blocks)} blocks of {TUTORIAL} hold {marker!r}, not one")
    return blocks[0]


def directives(text: str) -> list[str]:
    """
    The lines of an nginx configuration or a Caddyfile with comments left
    out and whitespace normalised (runs of blanks made one space, none at
    either end); empty lines are dropped. A C{#} starts a comment at the
    start of a line or after a blank (neither configuration here has one
    inside a value).
    """
    lines = []
    for line in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line)
        line = " ".join(line.split())
        if line:
            lines.append(line)
    return lines


def missingInOrder(expected: list[str], documented: list[str]) -> list[str]:
    """
    The lines of C{expected} that C{documented} lacks, where C{documented}
    must hold them all in the same order (other lines may come between).
    """
    missing = []
    position = 0
    for line in expected:
        try:
            position = documented.index(line, position) + 1
        except ValueError:
            missing.append(line)
    return missing


def _name(line: str) -> str:
    return line.split()[0]


def tutorialSite(siteClass: type[_T]) -> _T:
    """
    A harness's site description (L{tests.nginx.NginxSite},
    L{tests.caddy.CaddySite}) with the tutorial's values: its forward-auth
    endpoint at L{TUTORIAL_AUTH}, its files in L{TUTORIAL_ROOT}, and
    placeholders for what only a running test has (its own port, its
    private directory and log).
    """
    host, authPort = TUTORIAL_AUTH
    values = {
        "host": host,
        "port": 1,
        "authPort": authPort,
        "prefix": "/nonexistent",
        "root": TUTORIAL_ROOT,
        "logFile": "/nonexistent/log",
        "errorLog": "/nonexistent/log",
    }
    fields = attrs.fields(siteClass)  # type: ignore[arg-type]
    return siteClass(**{field.name: values[field.name] for field in fields if field.init})


class TutorialConfigurationTests(SynchronousTestCase):
    """
    The nginx and Caddy configurations of C{docs/tutorials/protect-a-site.md}
    are the ones the tests run against the real servers (issue 15):
    L{tests.nginx.configuration} and L{tests.caddy.configuration}, with the
    test-only values (private paths, loopback listening address and ports,
    logs, global options) replaced by a site's.
    """

    def test_nginx(self) -> None:
        """
        Every line of the tested nginx C{server} block is in the
        tutorial's nginx block, verbatim up to whitespace and in the same
        order (the C{auth_request} lines, the C{add_header}, the auth
        location with its C{proxy_pass} and every C{proxy_set_header}),
        except C{listen}, C{server_name} and C{root}, which name the test's
        own listener and directory: the tutorial has those directives with
        a site's values.
        """
        from .nginx import NginxSite, configuration

        tested = directives(configuration(tutorialSite(NginxSite)))
        server = tested[tested.index("server {") : -1]
        deployment = {"listen", "server_name", "root"}
        documented = directives(tutorialBlock("auth_request"))
        self.assertEqual(
            missingInOrder([line for line in server if _name(line) not in deployment], documented),
            [],
        )
        self.assertEqual(deployment - {_name(line) for line in documented}, set())
        for header in (
            "X-Original-Method $request_method",
            "X-Original-URI $request_uri",
            "X-Original-Host $http_host",
            "X-Original-Proto $scheme",
            "X-Real-IP $remote_addr",
        ):
            self.assertIn(f"proxy_set_header {header};", documented)

    def test_caddy(self) -> None:
        """
        Every line of the tested Caddy site block is in the tutorial's
        Caddyfile, verbatim up to whitespace and in the same order (the
        C{forward_auth} block in its C{route}, with C{uri} and
        C{copy_headers}, then the C{header} line), except the site address
        and the arguments of C{bind} and C{root}, which name the test's
        own listener and directory: the tutorial has C{bind} and C{root}
        with a site's values. The global options (no admin endpoint, no
        automatic HTTPS, the test's log) are the test's only.
        """
        from .caddy import CaddySite, configuration

        site = tutorialSite(CaddySite)
        tested = directives(configuration(site))
        address = "http://%s:%d {" % (site.host, site.port)
        block = tested[tested.index(address) + 1 : -1]
        deployment = {"bind", "root"}
        documented = directives(tutorialBlock("forward_auth"))
        self.assertEqual(
            missingInOrder([line for line in block if _name(line) not in deployment], documented),
            [],
        )
        self.assertEqual(deployment - {_name(line) for line in documented}, set())
        self.assertIn("forward_auth %s:%d {" % TUTORIAL_AUTH, documented)
        self.assertIn("copy_headers X-Auth-JID", documented)
        self.assertIn("header X-Auth-JID {http.request.header.X-Auth-JID}", documented)

    def test_missingInOrder(self) -> None:
        """
        A line missing, or out of order, is reported; lines in between
        are allowed.
        """
        self.assertEqual(missingInOrder(["a", "b"], ["a", "x", "b"]), [])
        self.assertEqual(missingInOrder(["a", "b"], ["b", "a"]), ["b"])
        self.assertEqual(missingInOrder(["a", "c"], ["a", "b"]), ["c"])

    def test_directives(self) -> None:
        """
        Comments and blank lines are left out and whitespace normalised;
        nginx variables and Caddy placeholders are kept.
        """
        self.assertEqual(
            directives(
                "  # a comment\n\n\tproxy_set_header  Host $http_host;  # why\n"
                "\theader X-Auth-JID {http.request.header.X-Auth-JID}\n"
            ),
            ["proxy_set_header Host $http_host;", "header X-Auth-JID {http.request.header.X-Auth-JID}"],
        )


class TutorialCodeTests(SynchronousTestCase):
    """
    The TOML and Python of C{docs/tutorials/protect-a-site.md} work with
    the current configuration and API.
    """

    def test_toml(self) -> None:
        """
        The tutorial's C{[httpauth]} table, under a component table that
        names a server, loads: forward-auth with the nginx profile, the
        public origin, the trusted proxies, the rule and the session
        lifetime it shows.
        """
        import tomllib

        from xmppcomp.config import componentConfigFromMapping

        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        with open(os.path.join(directory, "comp.secret"), "w") as f:
            f.write("a secret\n")
        component = (
            "[component]\n"
            'server = "tcp:host=127.0.0.1:port=5348"\n'
            'server_domain = "example.net"\n'
            'hostnames = ["auth.example.net"]\n'
            'secret = { file = "comp.secret" }\n\n'
        )
        text = component + tutorialBlock('mode = "forward-auth"')
        config = componentConfigFromMapping(
            tomllib.loads(text), "tutorial", baseDirectory=directory
        )
        httpauth = config.httpauth
        self.assertEqual(
            (httpauth.mode, httpauth.webServer, httpauth.publicOrigin, httpauth.fromHostname),
            ("forward-auth", "nginx", "https://example.net", "auth.example.net"),
        )
        self.assertEqual(tuple(httpauth.trustedProxies), ("127.0.0.1", "::1"))
        [rule] = httpauth.rules.rules
        self.assertEqual(
            (rule.prefix, rule.domains, rule.jids),
            ("/private/", frozenset({"example.net"}), frozenset({"alice@example.org"})),
        )
        self.assertEqual(httpauth.limits.sessionLifetime, 300)

    def test_python(self) -> None:
        """
        The tutorial's Python example runs: given a component (a handler
        collection here) and a reactor, it attaches the requester to the
        component and listens on 127.0.0.1:8080 with a
        L{ConfirmerSite<xmppcomp.httpauth.ConfirmerSite>}, whose protected
        directory answers a request without credentials with 401 and both
        challenges, Basic first.
        """
        from twisted.internet.address import IPv4Address
        from twisted.internet.error import ConnectionDone
        from twisted.internet.testing import MemoryReactorClock, StringTransport
        from twisted.python.failure import Failure
        from wokkel.subprotocols import XMPPHandlerCollection

        from xmppcomp.httpauth import ConfirmationRequester, ConfirmerSite

        namespace: dict[str, object] = {"__name__": "tutorial"}
        exec(compile(tutorialBlock("def serveConfirmer"), TUTORIAL, "exec"), namespace)
        component = XMPPHandlerCollection()
        reactor = MemoryReactorClock()
        namespace["serveConfirmer"](component, reactor)  # type: ignore[operator]
        [requester] = list(component)
        self.assertIsInstance(requester, ConfirmationRequester)
        [(port, site, _, interface)] = reactor.tcpServers
        self.assertEqual((port, interface), (8080, "127.0.0.1"))
        self.assertIsInstance(site, ConfirmerSite)
        channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        assert channel is not None
        transport = StringTransport(
            peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8080),
        )
        channel.makeConnection(transport)
        channel.dataReceived(b"GET /private/ HTTP/1.1\r\nHost: example.net\r\n\r\n")
        head = transport.value().split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        self.assertEqual(head[0], b"HTTP/1.1 401 Unauthorized")
        challenges = [line for line in head if line.lower().startswith(b"www-authenticate:")]
        self.assertEqual(len(challenges), 2, head)
        self.assertTrue(challenges[0].endswith(b'Basic realm="xmpp"'), challenges)
        self.assertIn(b"Digest", challenges[1])
        channel.connectionLost(Failure(ConnectionDone()))


#: The tutorial that tests a component in memory.
TESTING_TUTORIAL = os.path.join(DOCS, "tutorials", "testing.md")


class TestingTutorialTests(SynchronousTestCase):
    """
    The code of C{docs/tutorials/testing.md} runs: its Python blocks,
    executed in order as one module, define trial test cases, which pass.
    """

    def test_testsPass(self) -> None:
        """
        Every test method of the tutorial's test cases runs and passes,
        against the tutorial's handler.
        """
        from twisted.trial import reporter, runner
        from twisted.trial.unittest import SynchronousTestCase as Base

        with open(TESTING_TUTORIAL, encoding="utf-8") as f:
            blocks = [body for info, body in fencedBlocks(f.read()) if info == "python"]
        self.assertEqual(len(blocks), 2)
        namespace: dict[str, object] = {"__name__": "tutorial_testing"}
        exec(compile("\n\n".join(blocks), TESTING_TUTORIAL, "exec"), namespace)
        cases = [
            value
            for value in namespace.values()
            if isinstance(value, type) and issubclass(value, Base) and value is not Base
        ]
        self.assertEqual([case.__name__ for case in cases], ["ReverseHandlerTests"])
        suite = runner.TestLoader().loadClass(cases[0])
        result = reporter.TestResult()
        suite.run(result)
        problems = [
            f"{test}: {failure.getTraceback() if hasattr(failure, 'getTraceback') else failure}"
            for test, failure in result.errors + result.failures
        ]
        self.assertEqual(problems, [])
        self.assertEqual(result.testsRun, 2)
        self.assertTrue(result.wasSuccessful())


class SeveralConfirmersTests(SynchronousTestCase):
    """
    The configurations of C{docs/howto/several-confirmers.md} work as
    written: the confirmer's TOML and the router's load, and the nginx block
    passes C{nginx -t} with the real nginx (its certificate paths replaced
    by a certificate made here, nothing else).
    """

    def setUp(self) -> None:
        with open(os.path.join(DOCS, "howto", "several-confirmers.md"), encoding="utf-8") as f:
            self.blocks = fencedBlocks(f.read())
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def block(self, info: str, containing: str) -> str:
        [body] = [body for kind, body in self.blocks if kind == info and containing in body]
        return body

    def test_confirmerTOML(self) -> None:
        """
        The confirmer's file loads (its secret and Redis password files
        moved here): the shared name, forward-auth, the health path, the
        drain and the store.
        """
        import tomllib

        from xmppcomp.config import componentConfigFromMapping

        for name in ("auth.secret", "redis.password"):
            with open(os.path.join(self.directory, name), "w") as f:
                f.write("a secret\n")
        text = self.block("toml", "[httpauth.store]").replace("/etc/xmppcomp/", "")
        config = componentConfigFromMapping(tomllib.loads(text), "howto", baseDirectory=self.directory)
        httpauth = config.httpauth
        self.assertEqual((config.hostnames, config.protocol), (("auth.example.net",), "xep0114"))
        self.assertEqual((httpauth.mode, httpauth.healthPath, httpauth.drainTimeout),
                         ("forward-auth", "/.xmppcomp/health", 60.0))
        self.assertEqual((httpauth.store.redis, httpauth.store.prefix), ("tcp:host=127.0.0.1:port=6379", "xmppcomp:"))

    def test_routerTOML(self) -> None:
        """
        The router's lines load, under a domain: the name is shared, with
        its XEP-0114 secret.
        """
        import tomllib

        from xmppcomp.config import routerConfigFromMapping

        with open(os.path.join(self.directory, "auth.secret"), "w") as f:
            f.write("a secret\n")
        text = 'domain = "example.net"\nlisten = []\n' + self.block("toml", "shared_names")
        config = routerConfigFromMapping(tomllib.loads(text), "howto", baseDirectory=self.directory)
        self.assertEqual(tuple(config.sharedNames), ("auth.example.net",))
        self.assertEqual(list(config.acceptSecrets), ["auth.example.net"])

    def test_nginx(self) -> None:
        """
        C{nginx -t} accepts the upstream and server blocks (its certificate
        paths replaced by a certificate made here, nothing else; see
        L{tests.test_snippets.checkNginx}).
        """
        from .test_snippets import checkNginx

        checkNginx(self, self.block("nginx", "upstream xmppcomp_confirmers"))
