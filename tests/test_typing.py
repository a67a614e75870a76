# -*- test-case-name: tests.test_typing -*-
"""
The package type-checks: mypy, with the mypy-zope plugin and the settings
of C{mypy.ini} (strict mode, issue 18), reports no error (issue #9).
"""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

#: The repository root, where C{mypy.ini} is.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Seconds mypy may take (a cold cache takes a few).
TIMEOUT = 300


class MypyTests(SynchronousTestCase):
    """
    mypy is clean on the package.
    """

    def test_clean(self) -> None:
        """
        C{python -m mypy --config-file mypy.ini}, run from the repository
        root, exits with status 0; on failure its report is the message.
        """
        result = subprocess.run(
            [sys.executable, "-m", "mypy", "--config-file", "mypy.ini"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=TIMEOUT,
        )
        self.assertEqual(
            result.returncode,
            0,
            f"mypy exited with status {result.returncode}:\n{result.stdout}",
        )

    def test_strict(self) -> None:
        """
        C{mypy.ini} checks the package in strict mode (issue 18), relaxing
        only the three checks the untyped libraries force, and exempts no
        xmppcomp module.
        """
        import configparser

        config = configparser.ConfigParser()
        config.read(os.path.join(ROOT, "mypy.ini"))
        main = config["mypy"]
        self.assertEqual(main.get("strict"), "True")
        relaxed = {
            key: main[key]
            for key in main
            if key not in ("plugins", "python_version", "files", "strict")
        }
        self.assertEqual(
            relaxed,
            {"allow_untyped_calls": "True", "warn_return_any": "False", "allow_subclassing_any": "True"},
        )
        exempted = [section for section in config.sections() if section.startswith("mypy-xmppcomp")]
        self.assertEqual(exempted, [])
