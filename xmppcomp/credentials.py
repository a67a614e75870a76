# -*- test-case-name: tests.test_credentials -*-
"""
C{xmppcomp-credentials}: manage the router's credentials file.

The file holds, for each component identity (a domain), the salted and
iterated SCRAM keys of its secret (see
L{xmppcomp.stream.sasl.store.FileCredentialStore}); never the secret.
Usage::

    xmppcomp-credentials FILE add DOMAIN [--iterations N] [--stdin]
    xmppcomp-credentials FILE change DOMAIN [--iterations N] [--stdin]
    xmppcomp-credentials FILE remove DOMAIN
    xmppcomp-credentials FILE list

(or C{python -m xmppcomp.credentials ...}).

The secret is never taken from the command line, where other users could
read it in the process list and it would land in shell history. When
standard input is a terminal it is asked for twice, without echo; otherwise
(or with C{--stdin}) it is the first line of standard input, without its
line ending. An empty secret is refused; one shorter than
L{RECOMMENDED_SECRET_LENGTH} characters is accepted with a warning.

The file is rewritten atomically with mode 0600.

Exit status: 0 on success; 1 when the operation is refused or fails (the
domain already exists for C{add}, or does not for C{change} and
C{remove}; secrets that do not match; an empty or unusable secret; the
file cannot be read or written, or is malformed); 2 for a usage error, a
DOMAIN that is not a domain, or a bad iteration count. The file is left
untouched whenever the status is not 0. Errors are one line on standard
error; only usage errors print the usage with it.
"""

from __future__ import annotations

import argparse
import getpass as _getpass
import sys
from typing import IO, TYPE_CHECKING, Callable, NoReturn

from xmppcomp.authz import canonicalHostname
from xmppcomp.jids import normalizeDomain
from xmppcomp.stream.sasl.store import (
    HASH_NAMES,
    MIN_ITERATIONS,
    CredentialFileError,
    FileCredentialStore,
)

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

#: A secret shorter than this many characters gets a warning.
RECOMMENDED_SECRET_LENGTH = 16

#: The iteration count of C{add} when C{--iterations} is not given.
DEFAULT_ITERATIONS = MIN_ITERATIONS

#: Exit status: success.
EXIT_OK = 0
#: Exit status: the operation was refused or failed, or the credentials
#: file cannot be used.
EXIT_REFUSED = 1
#: Exit status: bad usage or arguments.
EXIT_USAGE = 2

_PROG = "xmppcomp-credentials"


class _Exit(Exception):
    """
    Leave L{main} with a status; the message, if any, is already written.

    @ivar status: the exit status.
    """

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """
    An argument parser that writes to the streams given to L{main} and
    raises L{_Exit} instead of calling C{sys.exit}.

    @ivar _stdout: where help goes.
    @ivar _stderr: where usage errors go.
    """

    _stdout: IO[str]
    _stderr: IO[str]

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        if not message:
            return
        stream = self._stdout if file is sys.stdout else self._stderr
        stream.write(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            self._stderr.write(message)
        raise _Exit(status)


def _positiveIterations(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"the iteration count must be an integer, not {text!r}"
        ) from None
    if value < MIN_ITERATIONS:
        raise argparse.ArgumentTypeError(
            f"the iteration count must be at least {MIN_ITERATIONS}, not {value}"
        )
    return value


def _makeParser(stdout: IO[str], stderr: IO[str]) -> _Parser:
    top = _Parser(
        prog=_PROG,
        allow_abbrev=False,
        description=(
            "Manage the SCRAM credentials file of the xmppcomp router. "
            "Secrets are read from a prompt or from standard input, never "
            "from the command line, and only their salted keys are stored."
        ),
    )
    top._stdout = stdout
    top._stderr = stderr
    top.add_argument("file", metavar="FILE", help="the credentials file (JSON)")
    commands = top.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )

    def command(name: str, help: str) -> _Parser:
        sub: _Parser = commands.add_parser(
            name, help=help, description=help, allow_abbrev=False
        )
        sub._stdout = stdout
        sub._stderr = stderr
        return sub

    def secretOptions(sub: _Parser, iterationsHelp: str) -> None:
        sub.add_argument("domain", metavar="DOMAIN", help="the component's domain")
        sub.add_argument(
            "--iterations",
            metavar="N",
            type=_positiveIterations,
            default=None,
            help=iterationsHelp,
        )
        sub.add_argument(
            "--stdin",
            action="store_true",
            help=(
                "read the secret from the first line of standard input even "
                "when it is a terminal"
            ),
        )

    secretOptions(
        command("add", "add a domain and its secret (refused if it exists)"),
        f"PBKDF2 iteration count (default {DEFAULT_ITERATIONS}, "
        f"at least {MIN_ITERATIONS})",
    )
    secretOptions(
        command("change", "set a new secret for an existing domain"),
        f"PBKDF2 iteration count (default: the domain's current count; "
        f"at least {MIN_ITERATIONS})",
    )
    remove = command("remove", "remove a domain")
    remove.add_argument("domain", metavar="DOMAIN", help="the component's domain")
    command("list", "list the domains and their iteration counts (never keys)")
    return top


class _Command:
    """
    One run of the command, with its streams.

    @ivar _stdin: where a piped secret is read.
    @ivar _stdout: results.
    @ivar _stderr: errors and warnings.
    @ivar _getpass: asks for a secret without echo.
    """

    def __init__(
        self,
        stdin: IO[str] | None,
        stdout: IO[str],
        stderr: IO[str],
        getpass: Callable[[str], str],
    ) -> None:
        self._stdin = stdin
        self._stdout = stdout
        self._stderr = stderr
        self._getpass = getpass

    def fail(self, status: int, message: str) -> NoReturn:
        self._stderr.write(f"{_PROG}: error: {message}\n")
        raise _Exit(status)

    def warn(self, message: str) -> None:
        self._stderr.write(f"{_PROG}: warning: {message}\n")

    def domain(self, value: str) -> str:
        """
        The normalised form of DOMAIN, as the SASL receiver looks it up.
        """
        try:
            canonicalHostname(value)
            return normalizeDomain(value)
        except ValueError as e:
            self.fail(EXIT_USAGE, f"invalid DOMAIN: {e}")

    def load(self, path: str) -> FileCredentialStore:
        store = FileCredentialStore(path)
        try:
            store.load()
        except CredentialFileError as e:
            self.fail(
                EXIT_REFUSED,
                f"malformed credentials file, left untouched: {e}; fix it "
                "there, or move the file away and add the domains again",
            )
        except OSError as e:
            self.fail(EXIT_REFUSED, f"cannot read {path}: {e.strerror or e}")
        return store

    def save(self, store: FileCredentialStore) -> None:
        try:
            store.save()
        except OSError as e:
            self.fail(EXIT_REFUSED, f"cannot write {store.path}: {e.strerror or e}")

    def _isTerminal(self) -> bool:
        isatty = getattr(self._stdin, "isatty", None)
        try:
            return bool(isatty is not None and isatty())
        except (OSError, ValueError):
            return False

    def secret(self, domain: str, forceStdin: bool) -> str:
        """
        Read the secret for C{domain}: prompted twice on a terminal,
        otherwise one line of standard input.
        """
        if forceStdin or not self._isTerminal():
            if self._stdin is None:
                self.fail(EXIT_REFUSED, "no standard input to read the secret from")
            line = self._stdin.readline()
            secret = line[:-1] if line.endswith("\n") else line
            if secret.endswith("\r"):
                secret = secret[:-1]
        else:
            secret = self._getpass(f"Secret for {domain}: ")
            if not secret:
                self.fail(EXIT_REFUSED, "the secret must not be empty")
            again = self._getpass(f"Secret for {domain} (again): ")
            if again != secret:
                self.fail(EXIT_REFUSED, "the secrets do not match; nothing changed")
        if not secret:
            self.fail(EXIT_REFUSED, "the secret must not be empty")
        if len(secret) < RECOMMENDED_SECRET_LENGTH:
            self.warn(
                f"the secret is shorter than {RECOMMENDED_SECRET_LENGTH} "
                "characters; a long random secret is recommended"
            )
        return secret

    def store(
        self,
        store: FileCredentialStore,
        domain: str,
        secret: str,
        iterations: int,
    ) -> None:
        try:
            store.add(domain, secret, iterations=iterations)
        except ValueError as e:
            self.fail(EXIT_REFUSED, f"cannot use this secret: {e}")
        self.save(store)

    def run(self, args: argparse.Namespace) -> int:
        if args.command == "list":
            return self.list(args.file)
        domain = self.domain(args.domain)
        store = self.load(args.file)
        stored = self.find(store, domain)
        exists = stored is not None
        if args.command == "add":
            if stored is not None:
                self.fail(
                    EXIT_REFUSED,
                    f"{stored} is already in {args.file}; use 'change' to set "
                    "a new secret",
                )
            iterations = (
                DEFAULT_ITERATIONS if args.iterations is None else args.iterations
            )
            secret = self.secret(domain, args.stdin)
            self.store(store, domain, secret, iterations)
            self._stdout.write(f"added {domain} to {args.file}\n")
        elif not exists:
            self.fail(
                EXIT_REFUSED,
                f"{domain} is not in {args.file}"
                + ("; use 'add'" if args.command == "change" else ""),
            )
        elif args.command == "change":
            assert stored is not None
            domain = stored
            iterations = (
                self.currentIterations(store, domain)
                if args.iterations is None
                else args.iterations
            )
            secret = self.secret(domain, args.stdin)
            self.store(store, domain, secret, iterations)
            self._stdout.write(f"changed the secret of {domain} in {args.file}\n")
        else:
            assert stored is not None
            domain = stored
            store.remove(domain)
            self.save(store)
            self._stdout.write(f"removed {domain} from {args.file}\n")
        return EXIT_OK

    @staticmethod
    def find(store: FileCredentialStore, domain: str) -> str | None:
        """
        The stored spelling of C{domain}: itself, or an entry that is the
        same name in another IDNA form (C{xn--bcher-kva.example} for
        C{b\u00fccher.example}), or C{None}.
        """
        if domain in store.identities():
            return domain
        wanted = canonicalHostname(domain)
        for stored in store.identities():
            try:
                if canonicalHostname(stored) == wanted:
                    return stored
            except ValueError:
                continue
        return None

    @staticmethod
    def currentIterations(store: FileCredentialStore, domain: str) -> int:
        counts = [
            keys.iterations
            for hashName in HASH_NAMES
            if (keys := store.scramKeys(domain, hashName)) is not None
        ]
        return max(counts, default=DEFAULT_ITERATIONS)

    def list(self, path: str) -> int:
        store = self.load(path)
        identities = store.identities()
        if not identities:
            self._stderr.write(f"{_PROG}: no credentials in {path}\n")
        for domain in identities:
            counts = " ".join(
                f"{hashName}={keys.iterations}"
                for hashName in HASH_NAMES
                if (keys := store.scramKeys(domain, hashName)) is not None
            )
            self._stdout.write(f"{domain}\titerations: {counts}\n")
        return EXIT_OK


def main(
    argv: list[str] | None = None,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    getpass: Callable[[str], str] | None = None,
) -> int:
    """
    Run C{xmppcomp-credentials}.

    @param argv: the arguments, without the program name; C{None} for
        C{sys.argv[1:]}.
    @param stdin: where a secret is read when it is not a terminal (or
        with C{--stdin}); C{None} for C{sys.stdin}.
    @param stdout: where results and help go; C{None} for C{sys.stdout}.
    @param stderr: where errors and warnings go; C{None} for C{sys.stderr}.
    @param getpass: asks for a secret without echo, given the prompt;
        C{None} for L{getpass.getpass}.
    @return: the exit status (see the module docstring).
    """
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    getpass = _getpass.getpass if getpass is None else getpass
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = _makeParser(stdout, stderr).parse_args(argv)
        return _Command(stdin, stdout, stderr, getpass).run(args)
    except _Exit as e:
        return e.status


if __name__ == "__main__":
    sys.exit(main())
