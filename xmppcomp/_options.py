# -*- test-case-name: tests.test_tap,tests.test_routertap -*-
"""
What the command-line options of the two twistd plugins (C{twistd
xmppcomp}, L{xmppcomp.tap}, and C{twistd xmppcomp-router},
L{xmppcomp.routertap}) share: C{--config}, C{--log-level} and
C{--no-gc-tuning}, and how the options given turn into L{Override}s of the
TOML keys (L{PluginOptions}).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from twisted.python import usage

from xmppcomp._process import ConfigExit
from xmppcomp.config import ConfigError, Override
from xmppcomp.logs import LOG_LEVEL_OPTION, checkLogLevelOption

__all__ = [
    "CONFIG_OPTION",
    "GC_TUNING_FLAG",
    "NEGOTIATION_TIMEOUT_OPTION",
    "PluginOptions",
    "limitOptions",
]

#: The C{--config} option of both plugins (L{usage.Options} parameter form).
CONFIG_OPTION = ["config", "c", None, "The TOML configuration file."]

#: The C{--negotiation-timeout} option of both plugins.
NEGOTIATION_TIMEOUT_OPTION = [
    "negotiation-timeout",
    None,
    None,
    "Seconds to complete stream negotiation.",
]

#: The C{--no-gc-tuning} flag of both plugins (L{usage.Options} flag form).
GC_TUNING_FLAG = [
    "no-gc-tuning",
    None,
    "Leave Python's garbage collector as it is (by default the plugin "
    "freezes the objects made at startup and collects less often).",
]


def limitOptions(
    limitKeys: Mapping[str, tuple[str, bool, int]], prefix: str
) -> tuple[dict[str, str], dict[str, bool]]:
    """
    The options of a table of limits: each TOML key C{max_things} of the
    table is the option C{--max-things}.

    @param limitKeys: the table's keys, to the attribute, whether the value
        is an integer and its lowest value (as
        L{xmppcomp.config.ROUTER_LIMIT_KEYS}).
    @param prefix: the table's key path with its dot, e.g. C{"limits."}.
    @return: the option names to their TOML keys, and the option names to
        whether they take an integer (or else seconds), for
        L{PluginOptions.parameterKeys} and L{PluginOptions.numbers}.
    """
    keys = {name.replace("_", "-"): prefix + name for name in limitKeys}
    numbers = {name.replace("_", "-"): integer for name, (_, integer, _) in limitKeys.items()}
    return keys, numbers


class PluginOptions(usage.Options):
    """
    The options of a twistd plugin of xmppcomp: C{--config},
    C{--log-level} and C{--no-gc-tuning} (gathered by L{usage.Options}
    with the subclass's own), and the options that take one value turned
    into L{Override}s of the TOML keys they stand for (L{overrides}).

    A subclass names those options (L{parameterKeys}, L{numbers}) and
    loads its configuration in L{load}; L{postOptions} checks the log
    level and ends the process on a L{ConfigError} with only its message
    (L{ConfigExit}).

    Two kinds of errors, two outputs. Option syntax (an unknown option,
    a number that is not one, options that exclude each other, nothing
    given) is a L{usage.UsageError}: twistd prints the option list, then
    the error. A value the configuration cannot use, from the file or
    from an option, is a L{ConfigError} whose message names the file and
    key, or the option, and the fix: the process prints that message
    alone on standard error and exits with status 1, because the option
    list would bury it.

    @cvar command: what the plugin calls itself in its messages, e.g.
        C{"twistd xmppcomp"}.
    @cvar parameterKeys: option name to the TOML key it overrides, for the
        options that take one value.
    @cvar numbers: of those, the ones that take a number: option name to
        whether it is a whole number (else a number of seconds).
    """

    optParameters = [CONFIG_OPTION, LOG_LEVEL_OPTION]
    optFlags = [GC_TUNING_FLAG]

    command: ClassVar[str] = "twistd"
    parameterKeys: ClassVar[Mapping[str, str]] = {}
    numbers: ClassVar[Mapping[str, bool]] = {}

    def number(self, name: str) -> int | float:
        """
        The value of the numeric option C{name}, as the integer or float it
        takes.

        @raise usage.UsageError: it is not a number.
        """
        integer = self.numbers[name]
        text = self[name]
        try:
            return int(text) if integer else float(text)
        except ValueError:
            kind = "a whole number" if integer else "a number of seconds"
            raise usage.UsageError(f"--{name} must be {kind}, not {text!r}")

    def overrides(self) -> dict[str, Override]:
        """
        The values given explicitly on the command line for the options of
        L{parameterKeys}, by TOML key.

        @raise usage.UsageError: a number is not one.
        """
        overrides: dict[str, Override] = {}
        for name, key in self.parameterKeys.items():
            if self[name] is not None:
                value = self.number(name) if name in self.numbers else self[name]
                overrides[key] = Override(value, f"--{name}")
        return overrides

    def load(self, overrides: dict[str, Override]) -> None:
        """
        Load and check the configuration, with C{overrides} winning over
        the file, and keep it on C{self}.

        @raise ConfigError: the configuration is not usable.
        @raise usage.UsageError: the options are not enough.
        """
        raise NotImplementedError(self.load)

    def postOptions(self) -> None:
        """
        Check C{--log-level}, then load the file if one is given, override
        it with the options given, and check the result (L{load}).

        @raise usage.UsageError: the options are malformed (option syntax).
        @raise ConfigExit: the configuration is not usable; the message
            names the file and key, or the option, and the fix.
        """
        checkLogLevelOption(self)
        overrides = self.overrides()
        try:
            self.load(overrides)
        except ConfigError as e:
            raise ConfigExit(self.command, e) from e
