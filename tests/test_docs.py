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

from twisted.trial.unittest import SynchronousTestCase

#: The top of the checkout.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: The Sphinx source directory.
DOCS = os.path.join(ROOT, "docs")

#: Seconds a build may take before the test fails.
TIMEOUT = 600

#: The state diagrams, each shown on the state machines page.
DIAGRAMS = ("receiving", "initiating", "component", "confirmation", "xtls")


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
            "howto/xep0114-servers.html",
            "howto/router.html",
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
            self.fail("Graphviz's dot is not on PATH: install the Debian package 'graphviz' (apt-get install -y graphviz)")
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
