# -*- test-case-name: tests.test_credentials -*-
"""
Tests for L{xmppcomp.credentials}, the C{xmppcomp-credentials} command.
"""

from __future__ import annotations

import base64
import configparser
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import attrs
from twisted.trial.unittest import SynchronousTestCase

from xmppcomp.credentials import (
    DEFAULT_ITERATIONS,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    main,
)
from xmppcomp.stream.sasl.store import (
    HASH_NAMES,
    FileCredentialStore,
    ScramKeys,
    deriveKeys,
)

TOP = Path(__file__).resolve().parent.parent

DOMAIN = "comp.example.com"
OTHER = "other.example.com"
SECRET = "correct horse battery st\u00e4ple"
NEW_SECRET = "another long secret, changed"
SHORT = "tiny"


class TerminalInput(io.StringIO):
    """
    Standard input that claims to be a terminal.
    """

    def isatty(self) -> bool:
        return True


@attrs.define
class FakeGetpass:
    """
    Answers prompts from a list, recording them.

    @ivar answers: what to answer, in order.
    @ivar prompts: the prompts asked so far.
    """

    answers: list[str]
    prompts: list[str] = attrs.field(factory=list)

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.answers.pop(0)


@attrs.frozen
class Result:
    """
    What one run of the command did.
    """

    status: int
    out: str
    err: str


def verifies(keys: ScramKeys | None, secret: str, hashName: str) -> bool:
    """
    Whether C{keys} are the SCRAM keys of C{secret}: derive them again with
    the stored salt and iteration count and compare.
    """
    if keys is None:
        return False
    return (
        deriveKeys(secret, hashName, salt=keys.salt, iterations=keys.iterations) == keys
    )


class CredentialsCommandTests(SynchronousTestCase):
    """
    Tests for L{main}, driven in process with fake streams.
    """

    def setUp(self) -> None:
        self.path = self.mktemp()

    def run_(
        self,
        *argv: str,
        stdin: io.StringIO | None = None,
        getpass: FakeGetpass | None = None,
    ) -> Result:
        """
        Run the command on C{self.path} with C{argv}.

        A C{getpass} that is not expected to be called fails the test if
        it is.
        """
        out, err = io.StringIO(), io.StringIO()

        def unexpected(prompt: str) -> str:
            self.fail(f"getpass called unexpectedly: {prompt!r}")

        status = main(
            [self.path, *argv],
            stdin=io.StringIO("") if stdin is None else stdin,
            stdout=out,
            stderr=err,
            getpass=unexpected if getpass is None else getpass,
        )
        return Result(status, out.getvalue(), err.getvalue())

    def add(self, domain: str = DOMAIN, secret: str = SECRET, *extra: str) -> Result:
        result = self.run_("add", domain, *extra, stdin=io.StringIO(secret + "\n"))
        self.assertEqual(result.status, EXIT_OK, result.err)
        return result

    def stored(self) -> FileCredentialStore:
        store = FileCredentialStore(self.path)
        store.load()
        return store

    def assertVerifies(self, domain: str, secret: str) -> None:
        store = self.stored()
        for hashName in HASH_NAMES:
            self.assertTrue(
                verifies(store.scramKeys(domain, hashName), secret, hashName),
                f"{hashName} keys of {domain} do not verify",
            )

    def fileBytes(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read()

    def assertNoSecretIn(self, data: bytes, secret: str) -> None:
        """
        C{secret} appears in C{data} neither as UTF-8 nor JSON-escaped.
        """
        self.assertNotIn(secret.encode("utf-8"), data)
        self.assertNotIn(json.dumps(secret)[1:-1].encode("ascii"), data)

    # add

    def test_addFromStdin(self) -> None:
        """
        C{add} reads the secret from one line of a standard input that is
        not a terminal, and stores keys that verify it, for every hash.
        """
        result = self.add()
        self.assertIn(DOMAIN, result.out)
        self.assertEqual(result.err, "")
        self.assertEqual(self.stored().identities(), [DOMAIN])
        self.assertVerifies(DOMAIN, SECRET)
        for hashName in HASH_NAMES:
            keys = self.stored().scramKeys(DOMAIN, hashName)
            assert keys is not None
            self.assertEqual(keys.iterations, DEFAULT_ITERATIONS)
            self.assertFalse(verifies(keys, SECRET + "x", hashName))

    def test_addReadsOnlyOneLine(self) -> None:
        """
        Only the first line is the secret: its line ending (LF or CRLF) is
        not part of it, and further lines are not read.
        """
        stdin = io.StringIO(SECRET + "\r\nsecond line\n")
        result = self.run_("add", DOMAIN, stdin=stdin)
        self.assertEqual(result.status, EXIT_OK, result.err)
        self.assertVerifies(DOMAIN, SECRET)
        self.assertEqual(stdin.read(), "second line\n")

    def test_addLastLineWithoutNewline(self) -> None:
        """
        A secret at the end of input without a line ending is accepted as is.
        """
        result = self.run_("add", DOMAIN, stdin=io.StringIO(SECRET))
        self.assertEqual(result.status, EXIT_OK, result.err)
        self.assertVerifies(DOMAIN, SECRET)

    def test_addNormalisesDomain(self) -> None:
        """
        DOMAIN is stored in its normalised form (nameprep, no trailing dot),
        as the SASL receiver looks it up.
        """
        self.add("Comp.EXAMPLE.com.")
        self.assertEqual(self.stored().identities(), [DOMAIN])
        self.assertVerifies(DOMAIN, SECRET)

    def test_addIterations(self) -> None:
        """
        C{--iterations} sets the PBKDF2 iteration count.
        """
        self.add(DOMAIN, SECRET, "--iterations", "5000")
        for hashName in HASH_NAMES:
            keys = self.stored().scramKeys(DOMAIN, hashName)
            assert keys is not None
            self.assertEqual(keys.iterations, 5000)
        self.assertVerifies(DOMAIN, SECRET)

    def test_addBadIterations(self) -> None:
        """
        An iteration count below the minimum, or not an integer, is a usage
        error; nothing is written.
        """
        for value in ["100", "many", "-5000"]:
            result = self.run_(
                "add", DOMAIN, "--iterations", value, stdin=io.StringIO(SECRET + "\n")
            )
            self.assertEqual(result.status, EXIT_USAGE, value)
            self.assertIn("iteration", result.err)
        self.assertFalse(os.path.exists(self.path))

    def test_addKeepsOthers(self) -> None:
        """
        Adding a domain keeps the entries already in the file.
        """
        self.add(DOMAIN, SECRET)
        self.add(OTHER, NEW_SECRET)
        self.assertEqual(self.stored().identities(), [DOMAIN, OTHER])
        self.assertVerifies(DOMAIN, SECRET)
        self.assertVerifies(OTHER, NEW_SECRET)

    def test_addExistingRefused(self) -> None:
        """
        C{add} refuses a domain that is already there (in any spelling),
        suggests C{change}, asks for no secret and leaves the file as it was.
        """
        self.add()
        before = self.fileBytes()
        for spelling in [DOMAIN, "COMP.example.com."]:
            result = self.run_("add", spelling, stdin=TerminalInput(""))
            self.assertEqual(result.status, EXIT_REFUSED)
            self.assertIn("change", result.err)
            self.assertIn(DOMAIN, result.err)
        self.assertEqual(self.fileBytes(), before)

    def test_addOtherIdnaSpellingRefused(self) -> None:
        """
        The Unicode and ASCII forms of a domain are the same domain: adding
        one when the other is stored is refused.
        """
        self.add("b\u00fccher.example")
        result = self.run_(
            "add", "xn--bcher-kva.example", stdin=io.StringIO(NEW_SECRET + "\n")
        )
        self.assertEqual(result.status, EXIT_REFUSED)
        self.assertIn("xn--bcher-kva.example", result.err)
        self.assertEqual(self.stored().identities(), ["xn--bcher-kva.example"])

    def test_invalidDomain(self) -> None:
        """
        A DOMAIN that is not a domain is a usage error with a clear message,
        for every command that takes one; nothing is written.
        """
        for domain in [
            "user@example.com",
            "a b.example",
            "",
            "a..b",
            "x" * 64 + ".example",
        ]:
            for command in ["add", "change", "remove"]:
                result = self.run_(command, domain, stdin=io.StringIO(SECRET + "\n"))
                self.assertEqual(result.status, EXIT_USAGE, (command, domain))
                self.assertIn("invalid DOMAIN", result.err)
                self.assertIn(repr(domain), result.err)
        self.assertFalse(os.path.exists(self.path))

    # secrets

    def test_emptySecretRefused(self) -> None:
        """
        An empty line, or no input at all, is refused; nothing is written.
        """
        for text in ["\n", "", "\r\n"]:
            result = self.run_("add", DOMAIN, stdin=io.StringIO(text))
            self.assertEqual(result.status, EXIT_REFUSED, repr(text))
            self.assertIn("empty", result.err)
        self.assertFalse(os.path.exists(self.path))

    def test_shortSecretWarns(self) -> None:
        """
        A secret shorter than 16 characters is accepted with a warning on
        standard error; one of 16 is accepted silently.
        """
        result = self.add(DOMAIN, SHORT)
        self.assertIn("warning", result.err)
        self.assertIn("16", result.err)
        self.assertVerifies(DOMAIN, SHORT)
        result = self.add(OTHER, "x" * 16)
        self.assertEqual(result.err, "")

    def test_unusableSecretRefused(self) -> None:
        """
        A secret SASLprep refuses (a control character) is refused with a
        message; nothing is written.
        """
        result = self.run_("add", DOMAIN, stdin=io.StringIO("bell\x07bell-bell-bell\n"))
        self.assertEqual(result.status, EXIT_REFUSED)
        self.assertIn("secret", result.err)
        self.assertFalse(os.path.exists(self.path))

    def test_getpassMatch(self) -> None:
        """
        On a terminal the secret is asked twice with getpass; when both
        answers match it is stored, and standard input is not read.
        """
        getpass = FakeGetpass([SECRET, SECRET])
        stdin = TerminalInput("not the secret\n")
        result = self.run_("add", DOMAIN, stdin=stdin, getpass=getpass)
        self.assertEqual(result.status, EXIT_OK, result.err)
        self.assertEqual(len(getpass.prompts), 2)
        self.assertIn(DOMAIN, getpass.prompts[0])
        self.assertVerifies(DOMAIN, SECRET)
        self.assertEqual(stdin.read(), "not the secret\n")

    def test_getpassMismatch(self) -> None:
        """
        When the two answers differ, nothing is written and the status is 1.
        """
        getpass = FakeGetpass([SECRET, SECRET + "!"])
        result = self.run_("add", DOMAIN, stdin=TerminalInput(""), getpass=getpass)
        self.assertEqual(result.status, EXIT_REFUSED)
        self.assertIn("do not match", result.err)
        self.assertEqual(getpass.answers, [])
        self.assertFalse(os.path.exists(self.path))

    def test_getpassMismatchOnChange(self) -> None:
        """
        A mismatch on C{change} leaves the stored keys as they were.
        """
        self.add()
        before = self.fileBytes()
        getpass = FakeGetpass([NEW_SECRET, NEW_SECRET[:-1]])
        result = self.run_("change", DOMAIN, stdin=TerminalInput(""), getpass=getpass)
        self.assertEqual(result.status, EXIT_REFUSED)
        self.assertEqual(self.fileBytes(), before)

    def test_getpassEmpty(self) -> None:
        """
        An empty answer to the prompt is refused at once.
        """
        getpass = FakeGetpass(["", ""])
        result = self.run_("add", DOMAIN, stdin=TerminalInput(""), getpass=getpass)
        self.assertEqual(result.status, EXIT_REFUSED)
        self.assertIn("empty", result.err)
        self.assertEqual(len(getpass.prompts), 1)
        self.assertFalse(os.path.exists(self.path))

    def test_stdinOptionForcesStdin(self) -> None:
        """
        C{--stdin} reads the secret from standard input even on a terminal.
        """
        result = self.run_("add", DOMAIN, "--stdin", stdin=TerminalInput(SECRET + "\n"))
        self.assertEqual(result.status, EXIT_OK, result.err)
        self.assertVerifies(DOMAIN, SECRET)

    def test_noSecretOnCommandLine(self) -> None:
        """
        There is no way to give the secret as an argument: an extra
        positional argument or a secret-like option is a usage error, and
        nothing is written.
        """
        for argv in [
            ["add", DOMAIN, SECRET],
            ["add", DOMAIN, "--secret", SECRET],
            ["add", DOMAIN, "--password", SECRET],
            ["add", DOMAIN, "--secret=" + SECRET],
            ["change", DOMAIN, SECRET],
            ["add", DOMAIN, "--s"],
        ]:
            result = self.run_(*argv, stdin=io.StringIO(SECRET + "\n"))
            self.assertEqual(result.status, EXIT_USAGE, argv)
            self.assertIn("usage:", result.err)
        self.assertFalse(os.path.exists(self.path))

    def test_fileNeverContainsSecret(self) -> None:
        """
        After add and change, the file's bytes contain neither secret.
        """
        self.add(DOMAIN, SECRET)
        self.add(OTHER, SHORT)
        self.assertNoSecretIn(self.fileBytes(), SECRET)
        self.assertNoSecretIn(self.fileBytes(), SHORT)
        result = self.run_("change", DOMAIN, stdin=io.StringIO(NEW_SECRET + "\n"))
        self.assertEqual(result.status, EXIT_OK, result.err)
        for secret in [SECRET, SHORT, NEW_SECRET]:
            self.assertNoSecretIn(self.fileBytes(), secret)

    def test_mode0600(self) -> None:
        """
        The file is written with mode 0600, also when it existed with a
        wider mode.
        """
        self.add()
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        os.chmod(self.path, 0o644)
        self.add(OTHER)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)

    def test_unwritable(self) -> None:
        """
        A file in a directory that does not exist cannot be written: status
        1 and a message naming the file.
        """
        self.path = os.path.join(self.mktemp(), "missing-dir", "creds.json")
        result = self.run_("add", DOMAIN, stdin=io.StringIO(SECRET + "\n"))
        self.assertEqual(result.status, EXIT_REFUSED)
        self.assertIn("cannot write", result.err)
        self.assertIn(self.path, result.err)

    # change

    def test_change(self) -> None:
        """
        C{change} replaces the keys with those of the new secret (fresh
        salts), keeping the iteration count unless told, and other entries.
        """
        self.add(DOMAIN, SECRET, "--iterations", "5000")
        self.add(OTHER, SECRET)
        old = self.stored().scramKeys(DOMAIN, "sha-256")
        result = self.run_("change", DOMAIN, stdin=io.StringIO(NEW_SECRET + "\n"))
        self.assertEqual(result.status, EXIT_OK, result.err)
        self.assertIn(DOMAIN, result.out)
        self.assertVerifies(DOMAIN, NEW_SECRET)
        self.assertVerifies(OTHER, SECRET)
        new = self.stored().scramKeys(DOMAIN, "sha-256")
        assert old is not None and new is not None
        self.assertEqual(new.iterations, 5000)
        self.assertNotEqual(new.salt, old.salt)
        self.assertFalse(verifies(new, SECRET, "sha-256"))

    def test_changeIterations(self) -> None:
        """
        C{change --iterations} sets a new iteration count.
        """
        self.add()
        result = self.run_(
            "change",
            DOMAIN,
            "--iterations",
            "6000",
            stdin=io.StringIO(NEW_SECRET + "\n"),
        )
        self.assertEqual(result.status, EXIT_OK, result.err)
        keys = self.stored().scramKeys(DOMAIN, "sha-1")
        assert keys is not None
        self.assertEqual(keys.iterations, 6000)
        self.assertVerifies(DOMAIN, NEW_SECRET)

    def test_changeOtherSpelling(self) -> None:
        """
        C{change} finds the entry under another spelling of its domain
        (case, IDNA form) and updates it in place.
        """
        self.add("b\u00fccher.example")
        result = self.run_(
            "change", "XN--BCHER-KVA.example", stdin=io.StringIO(NEW_SECRET + "\n")
        )
        self.assertEqual(result.status, EXIT_OK, result.err)
        self.assertEqual(self.stored().identities(), ["xn--bcher-kva.example"])
        self.assertVerifies("b\u00fccher.example", NEW_SECRET)

    def test_changeMissingRefused(self) -> None:
        """
        C{change} refuses a domain that is not there, suggests C{add}, asks
        for no secret and writes nothing.
        """
        self.add()
        before = self.fileBytes()
        result = self.run_("change", OTHER, stdin=TerminalInput(""))
        self.assertEqual(result.status, EXIT_REFUSED)
        self.assertIn("add", result.err)
        self.assertIn(OTHER, result.err)
        self.assertEqual(self.fileBytes(), before)

    def test_changeMissingFile(self) -> None:
        """
        C{change} on a file that does not exist is refused, and does not
        create it.
        """
        result = self.run_("change", DOMAIN, stdin=io.StringIO(SECRET + "\n"))
        self.assertEqual(result.status, EXIT_REFUSED)
        self.assertFalse(os.path.exists(self.path))

    # remove

    def test_remove(self) -> None:
        """
        C{remove} deletes the entry and keeps the others.
        """
        self.add(DOMAIN)
        self.add(OTHER, NEW_SECRET)
        result = self.run_("remove", "Comp.Example.com")
        self.assertEqual(result.status, EXIT_OK, result.err)
        self.assertIn(DOMAIN, result.out)
        self.assertEqual(self.stored().identities(), [OTHER])
        self.assertVerifies(OTHER, NEW_SECRET)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)

    def test_removeMissingRefused(self) -> None:
        """
        C{remove} of a domain that is not there is refused; the file is as
        it was.
        """
        self.add()
        before = self.fileBytes()
        result = self.run_("remove", OTHER)
        self.assertEqual(result.status, EXIT_REFUSED)
        self.assertIn(OTHER, result.err)
        self.assertEqual(self.fileBytes(), before)

    # list

    def test_list(self) -> None:
        """
        C{list} prints one line per domain with its iteration counts, and
        nothing of the keys or salts.
        """
        self.add(DOMAIN, SECRET, "--iterations", "5000")
        self.add(OTHER, NEW_SECRET)
        result = self.run_("list")
        self.assertEqual(result.status, EXIT_OK)
        lines = result.out.splitlines()
        self.assertEqual(len(lines), 2)
        self.assertTrue(lines[0].startswith(DOMAIN))
        self.assertIn("sha-1=5000", lines[0])
        self.assertIn("sha-256=5000", lines[0])
        self.assertTrue(lines[1].startswith(OTHER))
        self.assertIn(f"sha-256={DEFAULT_ITERATIONS}", lines[1])
        store = self.stored()
        for domain in [DOMAIN, OTHER]:
            for hashName in HASH_NAMES:
                keys = store.scramKeys(domain, hashName)
                assert keys is not None
                for value in [keys.salt, keys.storedKey, keys.serverKey]:
                    self.assertNotIn(base64.b64encode(value).decode(), result.out)
                    self.assertNotIn(value.hex(), result.out)
        self.assertNotIn("Key", result.out)
        self.assertNotIn("salt", result.out)

    def test_listEmpty(self) -> None:
        """
        C{list} on a missing file says there are no credentials (on standard
        error) and succeeds, without creating the file.
        """
        result = self.run_("list")
        self.assertEqual(result.status, EXIT_OK)
        self.assertEqual(result.out, "")
        self.assertIn("no credentials", result.err)
        self.assertFalse(os.path.exists(self.path))

    # malformed file

    def test_malformedFileUntouched(self) -> None:
        """
        Every command refuses a malformed file with status 1 and one line
        naming it, the problem and the fix (no usage), and leaves its bytes
        and mode as they were.
        """
        documents = [
            b"{not json",
            b'{"version": 2, "identities": {}}',
            b'{"version": 1, "identities": {"comp.example.com": {"sha-1": {}}}}',
        ]
        for document in documents:
            with open(self.path, "wb") as f:
                f.write(document)
            os.chmod(self.path, 0o640)
            for argv in [
                ["add", OTHER],
                ["change", DOMAIN],
                ["remove", DOMAIN],
                ["list"],
            ]:
                result = self.run_(*argv, stdin=io.StringIO(SECRET + "\n"))
                self.assertEqual(result.status, EXIT_REFUSED, (document, argv))
                self.assertTrue(
                    result.err.startswith(
                        f"xmppcomp-credentials: error: malformed credentials file, left untouched: {self.path}: "
                    ),
                    result.err,
                )
                self.assertTrue(
                    result.err.endswith(
                        "; fix it there, or move the file away and add the domains again\n"
                    ),
                    result.err,
                )
                self.assertEqual(result.err.count("\n"), 1, result.err)
                self.assertNotIn("usage", result.err)
                self.assertEqual(result.out, "")
                self.assertEqual(self.fileBytes(), document)
                self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o640)

    # usage

    def test_help(self) -> None:
        """
        C{-h} prints the usage, naming every command, to standard output
        and succeeds.
        """
        result = self.run_("-h")
        self.assertEqual(result.status, EXIT_OK)
        for command in ["add", "change", "remove", "list"]:
            self.assertIn(command, result.out)
        self.assertEqual(result.err, "")

    def test_usageErrors(self) -> None:
        """
        A missing or unknown command is a usage error, reported on standard
        error.
        """
        for argv in [[], ["frobnicate"], ["add"]]:
            result = self.run_(*argv)
            self.assertEqual(result.status, EXIT_USAGE, argv)
            self.assertIn("usage:", result.err)
            self.assertEqual(result.out, "")


class SubprocessTests(SynchronousTestCase):
    """
    C{python -m xmppcomp.credentials} as a real process.
    """

    def test_addThroughStdin(self) -> None:
        """
        Run as a module with the secret piped on standard input, the command
        writes an entry that verifies the secret, in a 0600 file that does
        not contain it.
        """
        path = os.path.abspath(self.mktemp())
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in [str(TOP), env.get("PYTHONPATH", "")] if p
        )
        completed = subprocess.run(
            [sys.executable, "-m", "xmppcomp.credentials", path, "add", DOMAIN],
            input=(SECRET + "\n").encode("utf-8"),
            capture_output=True,
            cwd=str(TOP),
            env=env,
            timeout=120,
        )
        self.assertEqual(completed.returncode, 0, completed.stderr)
        self.assertIn(DOMAIN.encode("ascii"), completed.stdout)
        store = FileCredentialStore(path)
        store.load()
        for hashName in HASH_NAMES:
            self.assertTrue(
                verifies(store.scramKeys(DOMAIN, hashName), SECRET, hashName)
            )
        with open(path, "rb") as f:
            data = f.read()
        self.assertNotIn(SECRET.encode("utf-8"), data)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)


class EntryPointTests(SynchronousTestCase):
    """
    The console script is declared.
    """

    def test_consoleScript(self) -> None:
        """
        C{setup.cfg} declares the C{xmppcomp-credentials} console script,
        pointing at L{main}.
        """
        parser = configparser.ConfigParser()
        parser.read(TOP / "setup.cfg")
        scripts = parser.get("options.entry_points", "console_scripts")
        entries = {
            name.strip(): target.strip()
            for name, target in (
                line.split("=") for line in scripts.strip().splitlines()
            )
        }
        self.assertEqual(
            entries.get("xmppcomp-credentials"), "xmppcomp.credentials:main"
        )
