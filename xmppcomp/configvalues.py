# -*- test-case-name: tests.test_config -*-
"""
What the configurations of several packages share: the error a
configuration problem raises, and where a secret comes from.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable

import attrs


class ConfigError(ValueError):
    """A configuration error; the message names the option and the fix."""


@attrs.frozen
class SecretRef:
    """
    Where a secret comes from: a file (its first line, stripped) or an
    environment variable. Exactly one is set.

    @ivar file: path of a file holding the secret.
    @ivar env: name of an environment variable holding the secret.
    @ivar what: what the secret is for, for error messages.
    """

    file: str | None = None
    env: str | None = None
    what: str = "secret"

    def __attrs_post_init__(self) -> None:
        if (self.file is None) == (self.env is None):
            raise ConfigError(f"{self.what}: give exactly one of 'file' or 'env' for the secret")

    def read(self) -> str:
        """
        Read the secret now.

        @raise ConfigError: the file is unreadable or empty, or the variable is unset or empty; the message says which.
        """
        if self.file is not None:
            try:
                with open(self.file, encoding="utf-8") as f:
                    value = f.readline().strip()
            except OSError as e:
                raise ConfigError(f"{self.what}: cannot read secret file {self.file}: {e.strerror}") from e
            if not value:
                raise ConfigError(f"{self.what}: secret file {self.file} is empty")
            return value
        assert self.env is not None
        value = os.environ.get(self.env, "").strip()
        if not value:
            raise ConfigError(f"{self.what}: environment variable {self.env} is unset or empty")
        return value


def strTuple(items: Iterable[str]) -> tuple[str, ...]:
    """The converter of tuples of strings (a typed C{tuple}, which mypy's attrs plugin cannot infer)."""
    return tuple(items)


def keeping(check: Callable[[str], object]) -> Callable[[str], str]:
    """A parser for L{checked} that keeps the text C{check} accepts, not what it makes of it."""
    return lambda text: (check(text), text)[1]


def checked(*check: object, toml: str | None = "") -> dict[str, object]:
    """
    The metadata of a field L{xmppcomp.config} reads: C{check}, the name of
    the loader's hook that checks its TOML value (if its type does not say)
    and what the hook takes after the key and the value (such as an example
    and the fix); C{toml}, its TOML key if not its name in snake case
    (C{None}: not read from TOML).
    """
    return {"check": check, "toml": toml}


#: The fix of a private key file that is missing or not a file.
KEY_FIX = "give the certificate's private key"
