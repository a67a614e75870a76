# -*- test-case-name: tests.test_logs -*-
"""
Log levels, and log output for machines: one JSON object per line.

xmppcomp's modules log through L{Logger}, Twisted's logger: every event
goes to Twisted's observers, debug included, as with any library; an
application embedding xmppcomp filters them as it filters its own. twistd
writes every event it gets, so C{twistd xmppcomp} and C{twistd
xmppcomp-router} make a L{LogLevelFilter} of C{--log-level} (C{info} by
default) and install it while their service runs: an event of an
xmppcomp logger below its level is then dropped where it is made, before
any observer sees it (a debug line on a hot path costs a set lookup)::

    twistd -n xmppcomp-router --config router.toml --log-level debug

Importing xmppcomp installs nothing; only a plugin's C{makeService} does.

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
from typing import IO, TYPE_CHECKING

from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    LogEvent,
    LogLevel,
    formatEvent,
    jsonFileLogObserver,
)
from twisted.logger import Logger as _TwistedLogger
from zope.interface import implementer

if TYPE_CHECKING:
    from twisted.python import usage

__all__ = [
    "LOG_LEVELS",
    "LOG_LEVEL_OPTION",
    "checkLogLevelOption",
    "DEFAULT_LOG_LEVEL",
    "JSONLinesObserver",
    "LogLevelFilter",
    "Logger",
    "json",
    "jsonObserver",
    "parseLogLevel",
]

#: The level names, lowest first.
LOG_LEVELS: tuple[str, ...] = tuple(level.name for level in LogLevel.iterconstants())

#: The minimum level of C{twistd xmppcomp} and C{twistd xmppcomp-router}.
DEFAULT_LOG_LEVEL = "info"

#: Every level.
_ALL: frozenset[LogLevel] = frozenset(LogLevel.iterconstants())

#: The filters installed (L{LogLevelFilter.install}), the last one in
#: force; none until a plugin installs one.
_installed: list[LogLevelFilter] = []
#: The levels L{Logger} lets through: those of the filter in force, every
#: level when none is.
_enabled: frozenset[LogLevel] = _ALL


def parseLogLevel(name: str) -> str:
    """
    Check a level name (case-insensitive).

    @return: the name, in lower case.
    @raise ValueError: not a level; the message lists the levels.
    """
    lowered = name.strip().lower()
    if lowered not in LOG_LEVELS:
        raise ValueError(f"{name!r} is not a log level; use one of: {', '.join(LOG_LEVELS)}")
    return lowered


class LogLevelFilter:
    """
    The minimum level of xmppcomp's log events, for a program that owns
    its process (the twistd plugins make one of C{--log-level}).

    While installed (L{install}), the events of L{Logger}s below it are
    dropped before they are made; when several are installed, the last.
    Nothing is dropped while none is.

    @ivar minimum: the name of the lowest level let through.
    @ivar enabled: the levels let through.
    """

    def __init__(self, minimum: str = DEFAULT_LOG_LEVEL) -> None:
        """
        @param minimum: the name of the lowest level let through (any
            case).
        @raise ValueError: not a level (see L{parseLogLevel}).
        """
        self.minimum = parseLogLevel(minimum)
        self.enabled: frozenset[LogLevel] = frozenset(
            LogLevel.levelWithName(n) for n in LOG_LEVELS[LOG_LEVELS.index(self.minimum):]
        )

    def __repr__(self) -> str:
        return f"LogLevelFilter({self.minimum!r})"

    @property
    def installed(self) -> bool:
        """
        Whether this filter is installed (in force or not).
        """
        return any(f is self for f in _installed)

    def install(self) -> None:
        """
        Put this filter in force, until L{uninstall}.
        """
        _installed.append(self)
        _update()

    def uninstall(self) -> None:
        """
        Take this filter out; the one installed before it, if any, is in
        force again. Nothing happens if it is not installed.
        """
        for i in range(len(_installed) - 1, -1, -1):
            if _installed[i] is self:
                del _installed[i]
                break
        _update()


def _update() -> None:
    global _enabled
    _enabled = _installed[-1].enabled if _installed else _ALL


#: The C{--log-level} option of the twistd plugins (L{usage.Options}
#: parameter form).
LOG_LEVEL_OPTION = [
    "log-level",
    None,
    DEFAULT_LOG_LEVEL,
    "Lowest level of xmppcomp's log events to write: "
    + ", ".join(LOG_LEVELS)
    + f" (default {DEFAULT_LOG_LEVEL}).",
]


def checkLogLevelOption(options: usage.Options) -> None:
    """
    Check and normalise the C{--log-level} (L{LOG_LEVEL_OPTION}) of a
    plugin's L{twisted.python.usage.Options}.

    @raise twisted.python.usage.UsageError: not a level; the message lists
        the levels.
    """
    from twisted.python.usage import UsageError

    try:
        options["log-level"] = parseLogLevel(options["log-level"])
    except ValueError as e:
        raise UsageError(f"--log-level: {e}") from e


class Logger(_TwistedLogger):
    """
    L{twisted.logger.Logger} that drops the events below the level of the
    L{LogLevelFilter} installed, if any, before making them: a debug line
    costs a set lookup instead of an event passed through every observer,
    and is not written by twistd, which writes all it gets.
    """

    def emit(self, level: LogLevel, format: str | None = None, **kwargs: object) -> None:
        if level not in _enabled:
            return
        super().emit(level, format, **kwargs)


@implementer(ILogObserver)
class JSONLinesObserver:
    """
    Writes each event as one line of JSON, with its formatted text
    (C{log_text}) and, when it carries a failure, the traceback
    (C{log_traceback}) added to a copy of the event (other observers see
    the event unchanged).

    @ivar _lines: the L{FileLogObserver} writing the lines.
    """

    def __init__(self, outFile: IO[str] | IO[bytes]) -> None:
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


def jsonObserver(outFile: IO[str] | IO[bytes] | None = None) -> JSONLinesObserver:
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
