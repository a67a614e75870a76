# -*- test-case-name: tests.test_logs -*-
"""
Log output for machines: one JSON object per line.

xmppcomp logs through L{twisted.logger} with structured fields
(C{log.info("... {who} ...", who=...)}), so every event already carries
its values apart from its text. L{json} is a log observer factory for
twistd's C{--logger} option, which takes the fully qualified name of a
callable without arguments returning an L{ILogObserver}::

    twistd -n --logger=xmppcomp.logs.json xmppcomp

writes every event to standard output as a line of JSON
(L{twisted.logger.jsonFileLogObserver} with no record separator: JSON
Lines rather than RFC 7464 sequences), read back with
L{twisted.logger.eventsFromJSONLogFile}, C{jq}, or a log shipper. Each
line has Twisted's fields (C{log_format}, C{log_namespace}, C{log_level},
C{log_time}, C{log_flattened}, the event's own fields) and two more:
C{log_text}, the formatted message, and, for an event with a failure,
C{log_traceback}.

Daemons (twistd without C{-n}) send standard output to C{/dev/null}: run
with C{-n} under a supervisor (systemd, a container runtime) that collects
standard output.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    LogEvent,
    formatEvent,
    jsonFileLogObserver,
)
from zope.interface import implementer

__all__ = ["JSONLinesObserver", "json", "jsonObserver"]


@implementer(ILogObserver)
class JSONLinesObserver:
    """
    Writes each event as one line of JSON, with its formatted text
    (C{log_text}) and, when it carries a failure, the traceback
    (C{log_traceback}) added to a copy of the event (other observers see
    the event unchanged).

    @ivar _lines: the L{FileLogObserver} writing the lines.
    """

    def __init__(self, outFile: IO[Any]) -> None:
        """
        @param outFile: where the lines go (a text file, or a binary one,
            which then gets UTF-8).
        """
        self._lines: FileLogObserver = jsonFileLogObserver(outFile, recordSeparator="")

    def __call__(self, event: LogEvent) -> None:
        event = dict(event)
        event["log_text"] = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            try:
                event["log_traceback"] = failure.getTraceback()
            except Exception:
                event["log_traceback"] = repr(failure)
        self._lines(event)


def jsonObserver(outFile: IO[Any] | None = None) -> JSONLinesObserver:
    """
    A L{JSONLinesObserver} on C{outFile}.

    @param outFile: where the lines go; standard output (as it is when the
        observer is made) by default.
    """
    return JSONLinesObserver(sys.stdout if outFile is None else outFile)


def json() -> JSONLinesObserver:
    """
    The observer factory of C{twistd --logger=xmppcomp.logs.json}: JSON
    Lines on standard output.
    """
    return jsonObserver()
