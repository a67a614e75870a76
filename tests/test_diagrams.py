# -*- test-case-name: tests.test_diagrams -*-
"""
Tests for L{xmppcomp.stream.diagrams}: the committed state diagrams are
what the machines generate, and Graphviz renders each one.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
from contextlib import redirect_stderr, redirect_stdout

from twisted.trial.unittest import SynchronousTestCase

from xmppcomp.stream import diagrams
from xmppcomp.stream.diagrams import DEFAULT_DIRECTORY, DIAGRAMS, _automatDot, generate

#: The diagrams with no machine behind them.
HAND_DRAWN = ("component", "confirmation")

#: Where Debian's C{graphviz} package puts C{dot}; else it is looked up
#: on C{PATH}.
DOT = "/usr/bin/dot"


def dotCommand() -> str | None:
    """
    The path of Graphviz's C{dot}, or L{None}.
    """
    if os.access(DOT, os.X_OK):
        return DOT
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory, "dot")
        if os.access(candidate, os.X_OK):
            return candidate
    return None


class CommittedTests(SynchronousTestCase):
    """
    The files of C{docs/state-machines} agree with the code.
    """

    def test_registered(self) -> None:
        """
        The four negotiators and the XTLS tunnel have generated diagrams.
        """
        self.assertEqual(
            sorted(DIAGRAMS), ["accept", "accept-initiating", "initiating", "receiving", "xtls"]
        )

    def test_upToDate(self) -> None:
        """
        Each committed diagram is exactly what the code generates: run
        C{python -m xmppcomp.stream.diagrams} after changing a machine.
        """
        for name in DIAGRAMS:
            with open(os.path.join(DEFAULT_DIRECTORY, name + ".dot"), encoding="utf-8") as f:
                committed = f.read()
            self.assertEqual(
                committed,
                generate(name),
                "%s.dot is stale: run python -m xmppcomp.stream.diagrams" % (name,),
            )

    def test_generatedMarked(self) -> None:
        """
        Generated diagrams say so in their first lines; hand-drawn ones say
        that they are.
        """
        for name in DIAGRAMS:
            self.assertIn("do not edit by hand", generate(name).split("\n")[1], name)
        for name in HAND_DRAWN:
            with open(os.path.join(DEFAULT_DIRECTORY, name + ".dot"), encoding="utf-8") as f:
                self.assertTrue(f.readline().startswith("// Hand-drawn"), name)

    def test_stable(self) -> None:
        """
        Generating twice gives the same text.
        """
        for name in DIAGRAMS:
            self.assertEqual(generate(name), generate(name), name)

    def test_xtlsStableAcrossHashSeeds(self) -> None:
        """
        The XTLS diagram does not depend on the interpreter's hash seed
        (Automat's own graph follows set order).
        """
        texts = set()
        for seed in ("1", "2", "3"):
            env = dict(os.environ, PYTHONHASHSEED=seed)
            env["PYTHONPATH"] = os.pathsep.join(
                [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
                + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
            )
            result = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    (
                        "import sys; from xmppcomp.stream.diagrams import generate;"
                        " sys.stdout.write(generate('xtls'))"
                    ),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            texts.add(result.stdout)
        self.assertEqual(len(texts), 1)

    def test_rendered(self) -> None:
        """
        Graphviz's C{dot} renders every diagram of C{docs/state-machines},
        generated or hand-drawn, as SVG.
        """
        dot = dotCommand()
        if dot is None:
            # Fail rather than skip: a run without dot must not pass for
            # one with it.
            self.fail("Graphviz's dot is not installed: apt-get install -y graphviz (.ci/run installs it)")
        for name in [*DIAGRAMS, *HAND_DRAWN]:
            path = os.path.join(DEFAULT_DIRECTORY, name + ".dot")
            result = subprocess.run([dot, "-Tsvg", path], capture_output=True, text=True, check=False)
            self.assertEqual(result.returncode, 0, "%s: %s" % (name, result.stderr))
            self.assertIn("<svg", result.stdout, name)


class CommandTests(SynchronousTestCase):
    """
    C{python -m xmppcomp.stream.diagrams} writes and checks the files.
    """

    def run_(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            status = diagrams.main(list(argv))
        return status, out.getvalue(), err.getvalue()

    def test_writeThenCheck(self) -> None:
        """
        The files written pass the check; a changed file fails it, named.
        """
        with tempfile.TemporaryDirectory() as directory:
            status, out, _ = self.run_(directory)
            self.assertEqual(status, 0)
            self.assertEqual(len(out.splitlines()), len(DIAGRAMS))
            self.assertEqual(self.run_("--check", directory)[0], 0)
            with open(os.path.join(directory, "accept.dot"), "a", encoding="utf-8") as f:
                f.write("// edited\n")
            status, _, err = self.run_("--check", directory)
            self.assertEqual(status, 1)
            self.assertIn("accept.dot", err)
            os.remove(os.path.join(directory, "xtls.dot"))
            status, _, err = self.run_("--check", directory)
            self.assertIn("xtls.dot", err)

    def test_automatShape(self) -> None:
        """
        A graph that is not in the shape Automat draws is refused rather
        than drawn empty.
        """
        self.assertRaises(ValueError, _automatDot, "x", "x", "digraph { a -> b }")
