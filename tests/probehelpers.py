"""
Running a probe in a fresh interpreter: one in which no other test has
imported xmppcomp (or anything else) yet, for the tests that check what
importing xmppcomp does to the process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import xmppcomp

__all__ = ["runProbe"]


def runProbe(testCase: SynchronousTestCase, probe: str) -> dict[str, object]:
    """
    Run the Python source C{probe} in a fresh interpreter that imports
    this checkout's xmppcomp, and read its report.

    @param testCase: the test, which fails if the probe does not exit
        successfully (with its standard error as the message).
    @param probe: source whose last line of output is its report, a JSON
        object.
    @return: the report.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(xmppcomp.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=120,
    )
    testCase.assertEqual(result.returncode, 0, result.stderr)
    report: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return report
