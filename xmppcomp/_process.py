# -*- test-case-name: tests.test_tap,tests.test_routertap -*-
"""
What a twistd plugin of xmppcomp sets for its whole process: the minimum
level of xmppcomp's log events and the garbage collector's tuning
(L{PluginProcess}). The plugins' C{makeService} make it, and nothing else
does: the library's services set nothing process-wide.

And how a plugin's process ends when it cannot run: with one line, not
the option list (L{ConfigExit}) or a traceback (L{ListenExit}).
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from typing import IO, TypeVar

from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorCore
from twisted.python import usage

from xmppcomp.config import ConfigError
from xmppcomp.logs import Logger, LogLevelFilter

_T = TypeVar("_T")

__all__ = ["GC_THRESHOLDS", "ConfigExit", "ListenExit", "PluginProcess"]

log = Logger()

#: Allocations between young collections in the plugins' processes
#: (Python's default: 700), and the ratios of the older generations.
GC_THRESHOLDS = (10000, 10, 10)


class ConfigExit(SystemExit):
    """
    End a plugin's process because its configuration cannot be used: the
    message alone, C{"<command>: <error>"}, without twistd's option list.

    Raised while twistd parses the options or calls C{makeService}, it
    leaves twistd (which catches neither) before its log starts, so
    Python writes the message to standard error and exits with status 1.
    Only the plugins raise it: the library raises L{ConfigError}.

    A configuration made of options alone names the command as its
    source already; its message is not prefixed twice.

    @ivar error: the configuration error.
    """

    def __init__(self, command: str, error: ConfigError) -> None:
        message = str(error)
        if not message.startswith(f"{command}: "):
            message = f"{command}: {message}"
        super().__init__(message)
        self.error = error


class ListenExit(SystemExit):
    """
    End a plugin's process, with status 1, because one of its listeners
    cannot listen (L{PluginProcess.listening}): the line that says so is
    written already, to standard error and to the log.

    @ivar message: that line, C{"<command>: cannot listen on ..."}.
    """

    def __init__(self, message: str) -> None:
        super().__init__(1)
        self.message = message


class PluginProcess:
    """
    What a twistd plugin sets for its whole process, made by its
    C{makeService} and nowhere else (the library's services and
    L{serviceFromConfig<xmppcomp.services.serviceFromConfig>} set nothing
    process-wide): the minimum level of xmppcomp's log events
    (L{logFilter}, installed at once by L{begin}), and, unless
    C{--no-gc-tuning}, the garbage collector's tuning while the service
    runs. When the service stops (the trees the tests start and stop), all
    of it is undone.

    The tuning: once the reactor runs, C{gc.freeze()}: every object made
    while starting (modules, classes, configuration, certificates) leaves
    the cyclic collector's sight, and its full collections walk only what
    the connections made since. And L{GC_THRESHOLDS}: young collections
    every 10,000 allocations instead of 700, so far fewer collections under
    load, each still small. The collections were the latency outliers:
    with bench/confirmer.py at 1,500 confirmations/s, the p99 latency the
    confirmer adds over the XMPP round trip went from 10-13 ms to 2.5-5 ms
    with the freeze, and to 1.7-2.2 ms with the thresholds as well. Frozen
    objects live as long as the process anyway; cyclic garbage waits a
    little longer for its collection.

    And a listener of the tree that cannot listen ends the process with
    one line (L{listening}), which the tree calls around its start.

    @ivar logFilter: the L{LogLevelFilter} of C{--log-level}.
    @ivar gcTuning: whether to tune the garbage collector.
    @ivar reactor: whose start triggers the freeze; C{None}: the global
        reactor.
    @ivar command: what the plugin calls itself in its messages.
    @ivar daemon: whether twistd runs the plugin as a daemon (without
        C{-n}): see L{listening}.
    @ivar stderr: where L{listening} writes its line; C{None}: the
        process's standard error (C{sys.__stderr__}: twistd sends
        C{sys.stderr} to its log once it starts logging).
    """

    def __init__(
        self,
        logLevel: str,
        gcTuning: bool = True,
        reactor: IReactorCore | None = None,
        command: str = "twistd",
        stderr: IO[str] | None = None,
        daemon: bool = False,
    ) -> None:
        """
        @param logLevel: the name of the lowest level of xmppcomp's log
            events to keep.
        @param gcTuning: whether to tune the garbage collector.
        @param reactor: whose start triggers the freeze; the global
            reactor by default.
        @param command: see L{command}.
        @param stderr: see L{stderr}.
        @param daemon: see L{daemon}.
        """
        self.logFilter = LogLevelFilter(logLevel)
        self.gcTuning = gcTuning
        self.reactor = reactor
        self.command = command
        self.stderr = stderr
        self.daemon = daemon
        self._previousThresholds: tuple[int, ...] | None = None

    @classmethod
    def fromOptions(cls, options: usage.Options, command: str = "twistd") -> PluginProcess:
        """
        The settings of a plugin's checked options (C{--log-level},
        C{--no-gc-tuning}), and whether twistd, whose options are their
        parent, runs it as a daemon (C{-n} not given, where twistd has
        it).

        @param command: what the plugin calls itself.
        """
        parent = options.parent
        return cls(
            options["log-level"],
            gcTuning=not options["no-gc-tuning"],
            command=command,
            daemon=parent is not None and not parent.get("nodaemon", True),
        )

    @classmethod
    def build(
        cls, options: usage.Options, command: str, make: Callable[[PluginProcess], _T]
    ) -> _T:
        """
        What a plugin's C{makeService} does: make the settings of its
        checked options, put the log level in force (L{begin}), and build
        the service, which starts and stops the settings with itself. If
        the service cannot be built, the settings are undone.

        @param options: the plugin's checked options.
        @param command: what the plugin calls itself, for the message.
        @param make: builds the service, given the settings.
        @return: what C{make} returns.
        @raise ConfigExit: C{make} raised L{ConfigError} (a file the
            configuration names cannot be read any more); the message is
            the reason, for twistd to print instead of a traceback.
        """
        process = cls.fromOptions(options, command)
        process.begin()
        try:
            return make(process)
        except ConfigError as e:
            process.stop()
            raise ConfigExit(command, e) from e
        except BaseException:
            process.stop()
            raise

    def listening(self, start: Callable[[], None]) -> None:
        """
        Call C{start}, which starts the plugin's tree (its
        C{privilegedStartService} or C{startService}); if one of its
        listeners cannot listen (L{ListenError
        <xmppcomp.listening.ListenError>}, or any L{CannotListenError}),
        say so in one line instead of a traceback, C{"twistd xmppcomp:
        cannot listen on 127.0.0.1:8080 (set by httpauth.listen or
        --http-listen): address already in use"}, on standard error (the
        terminal of C{twistd -n}) and in the log, undo the settings, and
        end the process with status 1.

        A daemon logs the line, and lets the error through: twistd's first
        process, which waits on the terminal for the daemon's word, hears
        only of an exception (it prints C{An error has occurred:} and the
        error's first 100 characters, then exits with status 1; the pid
        file is removed); on a L{SystemExit} it would wait forever.

        @raise ListenExit: a listener cannot listen (not as a daemon).
        @raise CannotListenError: a listener cannot listen (as a daemon).
        """
        try:
            start()
        except CannotListenError as e:
            message = f"{self.command}: {e}"
            log.critical("{line}", line=message)
            if self.daemon:
                raise
            stderr = self.stderr if self.stderr is not None else sys.__stderr__
            if stderr is not None:
                stderr.write(message + "\n")
                stderr.flush()
            self.stop()
            raise ListenExit(message) from e

    def begin(self) -> None:
        """
        From now on, drop xmppcomp's log events below the level.
        """
        self.logFilter.install()

    def start(self) -> None:
        """
        The service starts: tune the garbage collector (unless told not
        to), freezing once the reactor runs.
        """
        if not self.gcTuning:
            return
        if self._previousThresholds is None:
            self._previousThresholds = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLDS)
        reactor = self.reactor
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        reactor.callWhenRunning(gc.freeze)

    def stop(self) -> None:
        """
        The service stopped: undo what L{start} and L{begin} did.
        """
        if self._previousThresholds is not None:
            gc.unfreeze()
            gc.set_threshold(*self._previousThresholds)
            self._previousThresholds = None
        self.logFilter.uninstall()
