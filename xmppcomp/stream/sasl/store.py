# -*- test-case-name: tests.test_stream_sasl -*-
"""
Credential stores for the receiving side: salted, iterated SCRAM keys
(RFC 5802 section 3) per domain and hash function, never the secret itself.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile

import attrs
from scramp import ScramException, ScramMechanism
from zope.interface import implementer

from xmppcomp.interfaces import ICredentialStore
from xmppcomp.jids import normalizeDomain

#: Hash names a store keeps keys for, with their SCRAM mechanism and
#: digest size in bytes.
_HASHES: dict[str, tuple[str, int]] = {
    "sha-1": ("SCRAM-SHA-1", 20),
    "sha-256": ("SCRAM-SHA-256", 32),
}

#: The hash names L{MemoryCredentialStore.add} derives keys for.
HASH_NAMES = tuple(_HASHES)

#: The smallest iteration count accepted (RFC 7677 section 4; scramp's floor).
MIN_ITERATIONS = 4096

#: The version of the JSON file format of L{FileCredentialStore}.
FILE_VERSION = 1


def _checkIterations(
    instance: object, attribute: "attrs.Attribute[int]", value: int
) -> None:
    if type(value) is not int or value < MIN_ITERATIONS:
        raise ValueError(
            f"iterations must be an int of at least {MIN_ITERATIONS}, not {value!r}"
        )


def _checkNonEmptyBytes(
    instance: object, attribute: "attrs.Attribute[bytes]", value: bytes
) -> None:
    if not isinstance(value, bytes) or not value:
        raise ValueError(f"{attribute.name} must be non-empty bytes")


#: The shortest salt accepted (scramp's floor).
MIN_SALT_LENGTH = 12


def _checkSalt(
    instance: object, attribute: "attrs.Attribute[bytes]", value: bytes
) -> None:
    if not isinstance(value, bytes) or len(value) < MIN_SALT_LENGTH:
        raise ValueError(f"salt must be bytes of length {MIN_SALT_LENGTH} or more")


@attrs.frozen
class ScramKeys:
    """
    What the receiving side needs to check a SCRAM proof for one identity
    and one hash function (RFC 5802 section 3).

    @ivar salt: the salt, at least 12 bytes.
    @ivar iterations: the PBKDF2 iteration count.
    @ivar storedKey: C{H(ClientKey)}.
    @ivar serverKey: C{HMAC(SaltedPassword, "Server Key")}.
    """

    salt: bytes = attrs.field(validator=_checkSalt)
    iterations: int = attrs.field(validator=_checkIterations)
    storedKey: bytes = attrs.field(validator=_checkNonEmptyBytes, repr=False)
    serverKey: bytes = attrs.field(validator=_checkNonEmptyBytes, repr=False)


def scramMechanismFor(hashName: str) -> str:
    """
    The non-PLUS SCRAM mechanism name for C{hashName}.

    @raise ValueError: an unsupported hash name.
    """
    try:
        return _HASHES[hashName][0]
    except KeyError:
        raise ValueError(
            f"unsupported hash {hashName!r}; expected one of {list(_HASHES)}"
        ) from None


def deriveKeys(
    secret: str,
    hashName: str,
    salt: bytes | None = None,
    iterations: int = 4096,
) -> ScramKeys:
    """
    Derive the SCRAM keys of C{secret} with scramp's C{make_auth_info}.

    @param secret: the shared secret (SASLprep is applied by scramp).
    @param hashName: C{"sha-1"} or C{"sha-256"}.
    @param salt: the salt, or C{None} for a fresh random one.
    @param iterations: the PBKDF2 iteration count, at least 4096.
    @raise ValueError: an unsupported hash, a salt shorter than 12 bytes, too
        few iterations, or a secret SASLprep refuses.
    """
    mechanism = ScramMechanism(scramMechanismFor(hashName))
    try:
        saltOut, storedKey, serverKey, iterationsOut = mechanism.make_auth_info(
            secret, iteration_count=iterations, salt=salt
        )
    except ScramException as e:
        raise ValueError(f"cannot derive SCRAM keys: {e}") from e
    return ScramKeys(
        salt=saltOut,
        iterations=iterationsOut,
        storedKey=storedKey,
        serverKey=serverKey,
    )


@implementer(ICredentialStore)
class MemoryCredentialStore:
    """
    Credentials held in memory.

    Identities are domains, normalised (nameprep) when added and looked up.

    @ivar _entries: domain -> hash name -> keys.
    """

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, ScramKeys]] = {}

    def add(self, identity: str, secret: str, iterations: int = 4096) -> None:
        """
        Store the keys of C{secret} for C{identity}, for SHA-1 and SHA-256,
        each with its own fresh salt; the secret itself is not kept.
        Replaces what was stored for that identity.

        @raise ValueError: C{identity} is not a domain, or the secret or
            iteration count is unusable.
        """
        domain = normalizeDomain(identity)
        self._entries[domain] = {
            hashName: deriveKeys(secret, hashName, iterations=iterations)
            for hashName in HASH_NAMES
        }

    def setKeys(self, identity: str, hashName: str, keys: ScramKeys) -> None:
        """
        Store already derived keys for C{identity} and C{hashName}.

        @raise ValueError: C{identity} is not a domain or C{hashName} is not
            supported.
        """
        scramMechanismFor(hashName)
        domain = normalizeDomain(identity)
        self._entries.setdefault(domain, {})[hashName] = keys

    def remove(self, identity: str) -> None:
        """
        Forget C{identity}.

        @raise KeyError: it is not stored.
        """
        try:
            domain = normalizeDomain(identity)
        except ValueError:
            raise KeyError(identity) from None
        del self._entries[domain]

    def identities(self) -> list[str]:
        """
        The stored domains, sorted.
        """
        return sorted(self._entries)

    def scramKeys(self, identity: str, hashName: str) -> ScramKeys | None:
        """
        See L{ICredentialStore.scramKeys}. A name that is not a domain is
        simply unknown.
        """
        try:
            domain = normalizeDomain(identity)
        except ValueError:
            return None
        return self._entries.get(domain, {}).get(hashName)


class CredentialFileError(ValueError):
    """
    A credential file cannot be read: not JSON, an unknown version, or an
    entry that is not a valid set of SCRAM keys. The message names the file
    and the offending entry.
    """


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


@implementer(ICredentialStore)
class FileCredentialStore(MemoryCredentialStore):
    """
    Credentials in a JSON file::

        {"version": 1,
         "identities": {
           "comp.example.com": {
             "sha-1": {"salt": B64, "iterations": 4096,
                       "storedKey": B64, "serverKey": B64},
             "sha-256": {...}}}}

    The constructor does no I/O: call L{load} to read the file and L{save}
    to write back what L{add} and L{remove} changed in memory.

    @ivar path: the file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = os.fspath(path)

    def load(self) -> None:
        """
        Replace the credentials in memory with those in the file; a missing
        file means no credentials. Nothing changes if the file is malformed.

        @raise CredentialFileError: the file is malformed.
        @raise OSError: the file exists but cannot be read.
        """
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            self._entries = {}
            return
        self._entries = self._parse(raw)

    def _fail(self, message: str) -> CredentialFileError:
        return CredentialFileError(f"{self.path}: {message}")

    def _parse(self, raw: bytes) -> dict[str, dict[str, ScramKeys]]:
        try:
            document = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise self._fail(f"not a JSON document: {e}") from e
        if not isinstance(document, dict):
            raise self._fail("the top level must be a JSON object")
        version = document.get("version")
        if version != FILE_VERSION or type(version) is not int:
            raise self._fail(
                f"unsupported version {version!r}; expected {FILE_VERSION}"
            )
        identities = document.get("identities")
        if not isinstance(identities, dict):
            raise self._fail("'identities' must be a JSON object")
        entries: dict[str, dict[str, ScramKeys]] = {}
        for name, hashes in identities.items():
            try:
                domain = normalizeDomain(name)
            except ValueError as e:
                raise self._fail(f"identity {name!r}: {e}") from e
            if domain in entries:
                raise self._fail(f"identity {name!r} is listed twice")
            if not isinstance(hashes, dict) or not hashes:
                raise self._fail(
                    f"identity {name!r}: must be a non-empty object of hash names"
                )
            entries[domain] = {}
            for hashName, fields in hashes.items():
                entries[domain][hashName] = self._parseKeys(name, hashName, fields)
        return entries

    def _parseKeys(self, name: str, hashName: str, fields: object) -> ScramKeys:
        where = f"identity {name!r}, {hashName!r}"
        if hashName not in _HASHES:
            raise self._fail(
                f"{where}: unsupported hash; expected one of {list(_HASHES)}"
            )
        if not isinstance(fields, dict):
            raise self._fail(f"{where}: must be an object")
        expected = {"salt", "iterations", "storedKey", "serverKey"}
        if set(fields) != expected:
            raise self._fail(
                f"{where}: expected exactly the keys {sorted(expected)}, "
                f"found {sorted(fields)}"
            )
        decoded: dict[str, bytes] = {}
        for key in ("salt", "storedKey", "serverKey"):
            value = fields[key]
            if not isinstance(value, str):
                raise self._fail(f"{where}: {key} must be a base64 string")
            try:
                decoded[key] = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as e:
                raise self._fail(f"{where}: {key} is not valid base64") from e
        digestSize = _HASHES[hashName][1]
        for key in ("storedKey", "serverKey"):
            if len(decoded[key]) != digestSize:
                raise self._fail(
                    f"{where}: {key} must be {digestSize} bytes, "
                    f"not {len(decoded[key])}"
                )
        try:
            return ScramKeys(
                salt=decoded["salt"],
                iterations=fields["iterations"],
                storedKey=decoded["storedKey"],
                serverKey=decoded["serverKey"],
            )
        except ValueError as e:
            raise self._fail(f"{where}: {e}") from e

    def _serialise(self) -> bytes:
        identities = {
            domain: {
                hashName: {
                    "salt": _b64(keys.salt),
                    "iterations": keys.iterations,
                    "storedKey": _b64(keys.storedKey),
                    "serverKey": _b64(keys.serverKey),
                }
                for hashName, keys in sorted(hashes.items())
            }
            for domain, hashes in sorted(self._entries.items())
        }
        document = {"version": FILE_VERSION, "identities": identities}
        return (json.dumps(document, indent=2) + "\n").encode("utf-8")

    def save(self) -> None:
        """
        Write the credentials to the file atomically (a temporary file in
        the same directory, flushed to disk, then renamed over it), with
        mode 0600.

        @raise OSError: the file cannot be written; the old file is intact.
        """
        data = self._serialise()
        directory = os.path.dirname(os.path.abspath(self.path))
        fd, tmpPath = tempfile.mkstemp(
            dir=directory, prefix="." + os.path.basename(self.path) + ".", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmpPath, self.path)
        except BaseException:
            try:
                os.unlink(tmpPath)
            except OSError:
                pass
            raise
        try:
            dirFd = os.open(directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dirFd)
        except OSError:
            pass
        finally:
            os.close(dirFd)
