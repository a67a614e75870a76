# -*- test-case-name: tests.test_readme -*-
"""
README.md's two commands stay true: CI runs exactly the test command.
"""

import re
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

TOP = Path(__file__).resolve().parent.parent


def readmeCommands() -> list[str]:
    text = (TOP / "README.md").read_text()
    return re.findall(r"```sh\n(.*?)\n```", text, re.S)


class ReadmeTests(SynchronousTestCase):
    """
    The README gives exactly two commands, and CI runs the second.
    """

    def test_twoCommands(self) -> None:
        """
        README.md has exactly two shell commands: install and run the main
        job with twistd, install and run the tests with trial.
        """
        commands = readmeCommands()
        self.assertEqual(len(commands), 2)
        self.assertIn("twistd -n xmppcomp", commands[0])
        self.assertIn("twisted.trial tests", commands[1])

    def test_ciRunsReadmeTestCommand(self) -> None:
        """
        C{.ci/run} contains README's test command verbatim, as a line of its
        own.
        """
        command = readmeCommands()[1]
        lines = (TOP / ".ci" / "run").read_text().splitlines()
        self.assertIn(command, lines)
