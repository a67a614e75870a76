# -*- test-case-name: tests.test_tap,tests.test_routertap -*-
"""
What a twistd plugin of xmppcomp sets for its whole process: the minimum
level of xmppcomp's log events and the garbage collector's tuning
(L{PluginProcess}). The plugins' C{makeService} make it, and nothing else
does: the library's services set nothing process-wide.

And how a plugin's process ends when its configuration cannot be used:
with one line, not the option list (L{ConfigExit}).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TypeVar

from twisted.internet.interfaces import IReactorCore
from twisted.python import usage

from xmppcomp.config import ConfigError
from xmppcomp.logs import LogLevelFilter

_T = TypeVar("_T")

__all__ = ["GC_THRESHOLDS", "ConfigExit", "PluginProcess"]

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

    @ivar logFilter: the L{LogLevelFilter} of C{--log-level}.
    @ivar gcTuning: whether to tune the garbage collector.
    @ivar reactor: whose start triggers the freeze; C{None}: the global
        reactor.
    @ivar command: what the plugin calls itself in its messages.
    """

    def __init__(
        self,
        logLevel: str,
        gcTuning: bool = True,
        reactor: IReactorCore | None = None,
        command: str = "twistd",
    ) -> None:
        """
        @param logLevel: the name of the lowest level of xmppcomp's log
            events to keep.
        @param gcTuning: whether to tune the garbage collector.
        @param reactor: whose start triggers the freeze; the global
            reactor by default.
        @param command: see L{command}.
        """
        self.logFilter = LogLevelFilter(logLevel)
        self.gcTuning = gcTuning
        self.reactor = reactor
        self.command = command
        self._previousThresholds: tuple[int, ...] | None = None

    @classmethod
    def fromOptions(cls, options: usage.Options, command: str = "twistd") -> PluginProcess:
        """
        The settings of a plugin's checked options (C{--log-level},
        C{--no-gc-tuning}).

        @param command: what the plugin calls itself.
        """
        return cls(options["log-level"], gcTuning=not options["no-gc-tuning"], command=command)

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
