# -*- test-case-name: tests.test_config -*-
"""
Configuration values of the twistd plugins, as frozen attrs classes, and
their loading from one TOML file (stdlib C{tomllib}) merged with command
line options (options win).

Secrets never appear in these values as literals from argv: they are
referenced by file or environment variable (L{SecretRef}) and read when the
service starts.

The router's TOML file (C{twistd xmppcomp-router --config FILE}; a complete,
commented example is C{docs/examples/router.toml})::

    domain = "example.net"                  # required: the router's domain
    listen = ["tcp:5348:interface=127.0.0.1"]   # XEP-0225 listeners
    credentials = "credentials.json"        # SCRAM keys (xmppcomp-credentials)
    allow_plaintext = false                 # true: no TLS. FOR TESTS ONLY.

    [tls]
    certificate = "router.pem"              # required unless allow_plaintext
    key = "router.key"                      # optional: else in certificate
    client_cas = "clients-ca.pem"           # optional: enables SASL EXTERNAL

    [authorization]                         # identity = hostname patterns
    "comp.example.net" = ["comp.example.net", "*.comp.example.net"]

    [accept]                                # XEP-0114
    listen = ["tcp:5347:interface=127.0.0.1"]
    [accept.secrets]                        # never a literal string
    "legacy.example.net" = { file = "legacy.secret" }
    "other.example.net" = { env = "OTHER_SECRET" }

    [limits]                                # every value > 0
    max_sessions = 1000
    max_names_per_session = 64
    max_stanzas_per_second = 5000
    max_stanza_size = 262144                # at least 10000 (RFC 6120)
    negotiation_timeout = 30                # seconds
    max_auth_attempts = 3
    close_timeout = 10                      # seconds

Relative paths (credentials, TLS files, secret files) resolve against the
directory of the TOML file; paths given on the command line resolve
against the current directory. Endpoint strings are checked with
L{twisted.internet.endpoints.serverFromString} against a
L{twisted.internet.testing.MemoryReactor}, so nothing listens while
loading; note that file names I{inside} an endpoint string (C{ssl:...}) are
resolved by Twisted against the current directory, not the TOML file's.

Every problem raises L{ConfigError}, whose message names the file (or the
command line option), the key (such as C{limits.max_sessions}) and the fix.
Unknown keys are errors, so typos do not pass silently.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from typing import Any, Mapping

import attrs

#: Default listen endpoints: loopback only.
DEFAULT_ROUTER_LISTEN = ("tcp:5348:interface=127.0.0.1",)
DEFAULT_ACCEPT_LISTEN = ("tcp:5347:interface=127.0.0.1",)


class ConfigError(ValueError):
    """
    A configuration error; the message names the option and the fix.
    """


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
            raise ConfigError(
                f"{self.what}: give exactly one of 'file' or 'env' for the secret"
            )

    def read(self) -> str:
        """
        Read the secret now.

        @raise ConfigError: the file is unreadable or empty, or the variable
            is unset or empty; the message names which.
        """
        if self.file is not None:
            try:
                with open(self.file, encoding="utf-8") as f:
                    value = f.readline().strip()
            except OSError as e:
                raise ConfigError(
                    f"{self.what}: cannot read secret file {self.file}: {e.strerror}"
                ) from e
            if not value:
                raise ConfigError(f"{self.what}: secret file {self.file} is empty")
            return value
        assert self.env is not None
        value = os.environ.get(self.env, "").strip()
        if not value:
            raise ConfigError(
                f"{self.what}: environment variable {self.env} is unset or empty"
            )
        return value


@attrs.frozen
class RouterLimits:
    """
    Limits of the router, each explicit.

    @ivar maxSessions: concurrent component sessions (XEP-0225 and XEP-0114
        together); more are refused with C{resource-constraint}.
    @ivar maxNamesPerSession: hostnames one session may bind
        (C{resource-constraint} beyond).
    @ivar maxStanzasPerSecond: stanzas per second one session may send,
        averaged over a one-second bucket; beyond, the stream ends with
        C{policy-violation}.
    @ivar maxStanzaSize: bytes of one stanza (C{policy-violation} beyond).
    @ivar negotiationTimeout: seconds to complete stream negotiation.
    @ivar maxAuthAttempts: failed SASL attempts before the stream closes.
    @ivar closeTimeout: seconds to wait for a peer's closing tag.
    """

    maxSessions: int = 1000
    maxNamesPerSession: int = 64
    maxStanzasPerSecond: int = 5000
    maxStanzaSize: int = 256 * 1024
    negotiationTimeout: float = 30.0
    maxAuthAttempts: int = 3
    closeTimeout: float = 10.0


@attrs.frozen
class RouterConfig:
    """
    The configuration of C{twistd xmppcomp-router}.

    @ivar domain: the router's own domain: the C{to} of component streams,
        the name on its certificate, and the address of its own disco and
        ping.
    @ivar listen: endpoint strings of the XEP-0225 listeners.
    @ivar acceptListen: endpoint strings of the XEP-0114 listeners (only
        used when C{acceptSecrets} is not empty).
    @ivar certificate: path of the PEM certificate (chain) of C{domain}.
    @ivar key: path of its private key (C{None}: in the certificate file).
    @ivar clientCAs: path of a PEM bundle of CAs whose client certificates
        allow SASL EXTERNAL, or C{None}.
    @ivar credentials: path of the SCRAM credentials file (managed with
        C{xmppcomp-credentials}).
    @ivar authorization: identity to the hostname patterns it may bind
        (see L{xmppcomp.authz.HostnamePolicy}).
    @ivar acceptSecrets: XEP-0114 hostname to its shared secret.
    @ivar limits: the limits.
    @ivar allowPlaintext: accept XEP-0225 streams without TLS; for tests.
    """

    domain: str
    credentials: str | None = None
    certificate: str | None = None
    key: str | None = None
    clientCAs: str | None = None
    listen: tuple[str, ...] = attrs.field(default=DEFAULT_ROUTER_LISTEN, converter=tuple)
    acceptListen: tuple[str, ...] = attrs.field(default=DEFAULT_ACCEPT_LISTEN, converter=tuple)
    authorization: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    acceptSecrets: Mapping[str, SecretRef] = attrs.field(factory=dict)
    limits: RouterLimits = attrs.field(factory=RouterLimits)
    allowPlaintext: bool = False


@attrs.frozen
class Override:
    """
    A value given outside the TOML file, such as a command line option; it
    wins over the file's value for the same key.

    @ivar value: the value, of the type the TOML key takes (a string, a
        list of strings, an int or a float, a bool); relative paths resolve
        against the current directory.
    @ivar origin: how to name it in error messages, e.g. C{"--max-sessions"}.
    """

    value: object
    origin: str


#: Limits keys of the C{[limits]} table: TOML key to the L{RouterLimits}
#: attribute, whether it must be an integer, and its lowest allowed value.
ROUTER_LIMIT_KEYS: Mapping[str, tuple[str, bool, int]] = {
    "max_sessions": ("maxSessions", True, 1),
    "max_names_per_session": ("maxNamesPerSession", True, 1),
    "max_stanzas_per_second": ("maxStanzasPerSecond", True, 1),
    # RFC 6120 section 13.12: a server must not block stanzas under 10000
    # bytes.
    "max_stanza_size": ("maxStanzaSize", True, 10000),
    "negotiation_timeout": ("negotiationTimeout", False, 0),
    "max_auth_attempts": ("maxAuthAttempts", True, 1),
    "close_timeout": ("closeTimeout", False, 0),
}

#: The keys of each table of the router's TOML file; C{""} is the top level.
_ROUTER_TABLES: Mapping[str, frozenset[str]] = {
    "": frozenset(
        {
            "domain",
            "listen",
            "credentials",
            "allow_plaintext",
            "tls",
            "authorization",
            "accept",
            "limits",
        }
    ),
    "tls": frozenset({"certificate", "key", "client_cas"}),
    "accept": frozenset({"listen", "secrets"}),
    "limits": frozenset(ROUTER_LIMIT_KEYS),
}

#: Keys that may be given as an L{Override}.
ROUTER_OVERRIDE_KEYS = frozenset(
    {
        "domain",
        "listen",
        "credentials",
        "allow_plaintext",
        "tls.certificate",
        "tls.key",
        "tls.client_cas",
        "accept.listen",
    }
    | {"limits." + key for key in ROUTER_LIMIT_KEYS}
)

_CREATE_CREDENTIALS = "create it with: xmppcomp-credentials FILE add DOMAIN"


@attrs.frozen
class _Value:
    """
    One configured value and where it came from.

    @ivar value: the raw value (from TOML or an L{Override}).
    @ivar where: the prefix of error messages about it, naming the file and
        the key, or the option.
    @ivar base: the directory relative paths in it resolve against.
    """

    value: Any
    where: str
    base: str


def _typeName(value: object) -> str:
    """
    The TOML name of the type of C{value}, for error messages.
    """
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


def _unknownKey(source: str, table: str, key: str) -> ConfigError:
    """
    The error for an unknown key, with the nearest known key as a hint.
    """
    known = _ROUTER_TABLES[table]
    dotted = f"{table}.{key}" if table else key
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    if table == "tls" and key == "allow_plaintext":
        hint = " (allow_plaintext is a top-level key, above every [table])"
    where = f"[{table}]" if table else "the top level"
    return ConfigError(
        f"{source}: unknown key {dotted!r}{hint}; fix its spelling or remove "
        f"it. Keys allowed in {where}: {', '.join(sorted(known))}"
    )


def _collect(
    data: Mapping[str, Any], source: str, base: str
) -> dict[str, _Value]:
    """
    Flatten the router's TOML document to dotted keys, refusing unknown
    keys and tables that are not tables. C{authorization} and
    C{accept.secrets} stay whole.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: the configuration must be a table of keys, not "
            f"{_typeName(data)}"
        )
    values: dict[str, _Value] = {}
    for key, value in data.items():
        if key not in _ROUTER_TABLES[""]:
            raise _unknownKey(source, "", key)
        if key in ("tls", "accept", "limits"):
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"{source}: {key} must be a table ([{key}] with keys below "
                    f"it), not {_typeName(value)}"
                )
            for subkey, subvalue in value.items():
                if subkey not in _ROUTER_TABLES[key]:
                    raise _unknownKey(source, key, subkey)
                dotted = f"{key}.{subkey}"
                values[dotted] = _Value(subvalue, f"{source}: {dotted}", base)
        else:
            values[key] = _Value(value, f"{source}: {key}", base)
    return values


def _string(item: _Value, example: str) -> str:
    if not isinstance(item.value, str) or not item.value.strip():
        raise ConfigError(
            f"{item.where} must be a non-empty string, not "
            f"{_typeName(item.value) if item.value != '' else 'empty'}; "
            f"write it as {example}"
        )
    return item.value


def _path(item: _Value, example: str) -> str:
    value = os.path.expanduser(_string(item, example))
    return os.path.normpath(os.path.join(item.base, value))


def _existingFile(item: _Value, example: str, fix: str) -> str:
    path = _path(item, example)
    if not os.path.exists(path):
        raise ConfigError(f"{item.where}: the file {path} does not exist; {fix}")
    if not os.path.isfile(path):
        raise ConfigError(f"{item.where}: {path} is not a regular file; {fix}")
    return path


def _bool(item: _Value) -> bool:
    if not isinstance(item.value, bool):
        raise ConfigError(
            f"{item.where} must be true or false, not {_typeName(item.value)}"
        )
    return item.value


def _checkEndpoint(where: str, description: str) -> None:
    """
    Parse a server endpoint string without listening.

    @raise ConfigError: it does not parse.
    """
    # Imported here: loading a configuration must not install a reactor.
    from twisted.internet.endpoints import serverFromString
    from twisted.internet.testing import MemoryReactor

    try:
        serverFromString(MemoryReactor(), description)
    except Exception as e:
        raise ConfigError(
            f"{where}: {description!r} is not a valid server endpoint string "
            f"({type(e).__name__}: {e}); write it as, for example, "
            "\"tcp:5348:interface=127.0.0.1\" (see Twisted's endpoint strings)"
        ) from e


def _endpoints(item: _Value) -> tuple[str, ...]:
    value = item.value
    example = '["tcp:5348:interface=127.0.0.1"]'
    if isinstance(value, str):
        raise ConfigError(
            f"{item.where} must be an array of endpoint strings, not a single "
            f"string; write it as [{value!r}]".replace("'", '"')
        )
    if not isinstance(value, (list, tuple)):
        raise ConfigError(
            f"{item.where} must be an array of endpoint strings such as "
            f"{example}, not {_typeName(value)}"
        )
    result = []
    for index, description in enumerate(value):
        if not isinstance(description, str):
            raise ConfigError(
                f"{item.where}[{index}] must be an endpoint string such as "
                f"\"tcp:5348:interface=127.0.0.1\", not {_typeName(description)}"
            )
        _checkEndpoint(f"{item.where}[{index}]", description)
        result.append(description)
    return tuple(result)


def _limit(item: _Value, key: str) -> int | float:
    attribute, integer, lowest = ROUTER_LIMIT_KEYS[key]
    value = item.value
    if integer:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(
                f"{item.where} must be an integer, not {_typeName(value)}; "
                f"write it as, for example, {key} = "
                f"{getattr(RouterLimits(), attribute)}"
            )
        if value < lowest:
            why = (
                " (RFC 6120 section 13.12: stanzas up to 10000 bytes must pass)"
                if key == "max_stanza_size"
                else ""
            )
            raise ConfigError(
                f"{item.where} must be at least {lowest}{why}, not {value}; "
                f"raise it (the default is {getattr(RouterLimits(), attribute)})"
            )
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(
            f"{item.where} must be a number of seconds, not {_typeName(value)}; "
            f"write it as, for example, {key} = "
            f"{getattr(RouterLimits(), attribute):g}"
        )
    if not value > 0 or value != value or value == float("inf"):
        raise ConfigError(
            f"{item.where} must be a finite number of seconds above 0, not "
            f"{value}; raise it (the default is "
            f"{getattr(RouterLimits(), attribute):g})"
        )
    return float(value)


def _domain(item: _Value) -> str:
    # Imported here: the stream package is not needed to merely import
    # this module.
    from xmppcomp.stream.sasl._identity import normalizeDomain

    value = _string(item, 'domain = "example.net"')
    try:
        return normalizeDomain(value)
    except ValueError as e:
        raise ConfigError(
            f"{item.where}: {value!r} is not a domain ({e}); give the "
            'router\'s domain name, such as "example.net"'
        ) from e


def _authorization(item: _Value) -> dict[str, tuple[str, ...]]:
    from xmppcomp.authz import HostnamePolicy, PolicyError

    value = item.value
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{item.where} must be a table of identity = [patterns], such as "
            '[authorization] "comp.example.net" = ["*.comp.example.net"], '
            f"not {_typeName(value)}"
        )
    try:
        HostnamePolicy.fromConfig(value)
    except PolicyError as e:
        raise ConfigError(
            f"{item.where}: {e}; each entry is \"identity\" = "
            '["hostname", "*.domain", ...]'
        ) from e
    return {identity: tuple(patterns) for identity, patterns in value.items()}


def _secrets(item: _Value) -> dict[str, SecretRef]:
    from xmppcomp.stream.sasl._identity import normalizeDomain

    value = item.value
    example = '{ file = "legacy.secret" } or { env = "LEGACY_SECRET" }'
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{item.where} must be a table of hostname = {example}, not "
            f"{_typeName(value)}"
        )
    secrets: dict[str, SecretRef] = {}
    for hostname, ref in value.items():
        where = f'{item.where}."{hostname}"'
        try:
            name = normalizeDomain(hostname)
        except ValueError as e:
            raise ConfigError(
                f"{where}: {hostname!r} is not a hostname ({e}); each key is "
                "the hostname of an XEP-0114 component"
            ) from e
        if name in secrets:
            raise ConfigError(f"{where}: the hostname {name!r} is listed twice")
        if isinstance(ref, str):
            raise ConfigError(
                f"{where}: a secret is never written in the configuration; "
                "put it in a file readable only by the router and write "
                f'{{ file = "{name}.secret" }}, or put it in an environment '
                f'variable and write {{ env = "VARIABLE" }}'
            )
        if not isinstance(ref, Mapping):
            raise ConfigError(
                f"{where} must be {example}, not {_typeName(ref)}"
            )
        unknown = set(ref) - {"file", "env"}
        if unknown:
            raise ConfigError(
                f"{where}: unknown key {sorted(unknown)[0]!r}; the only keys "
                f"are 'file' and 'env': {example}"
            )
        if len(ref) != 1:
            raise ConfigError(
                f"{where}: give exactly one of 'file' or 'env': {example}"
            )
        if "file" in ref:
            fileItem = _Value(ref["file"], f"{where}.file", item.base)
            path = _existingFile(
                fileItem,
                '"legacy.secret"',
                "write the secret on its first line (mode 0600) or fix the path",
            )
            secrets[name] = SecretRef(file=path, what=where)
        else:
            variable = _string(
                _Value(ref["env"], f"{where}.env", item.base), '"LEGACY_SECRET"'
            )
            secrets[name] = SecretRef(env=variable, what=where)
    return secrets


def _checkTLSFiles(
    certificate: _Value, certificatePath: str, key: _Value | None, keyPath: str | None
) -> None:
    """
    Check that the certificate file holds a certificate and the key file
    (or the certificate file) an unencrypted private key that matches it.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    with open(certificatePath, "rb") as f:
        pem = f.read()
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError as e:
        raise ConfigError(
            f"{certificate.where}: {certificatePath} holds no PEM certificate "
            f"({e}); give the PEM certificate (chain) of the router's domain"
        ) from e
    keyWhere = key.where if key is not None else certificate.where
    keyFile = keyPath if keyPath is not None else certificatePath
    if keyPath is not None:
        with open(keyPath, "rb") as f:
            keyPem = f.read()
    else:
        keyPem = pem
    try:
        privateKey = serialization.load_pem_private_key(keyPem, password=None)
    except TypeError as e:
        raise ConfigError(
            f"{keyWhere}: the private key in {keyFile} is encrypted; store it "
            "unencrypted, readable only by the router "
            "(openssl pkey -in KEY -out KEY.plain)"
        ) from e
    except ValueError as e:
        fix = (
            "give its private key with tls.key = \"router.key\""
            if keyPath is None
            else "give the PEM private key of the certificate"
        )
        raise ConfigError(
            f"{keyWhere}: no usable PEM private key in {keyFile}; {fix}"
        ) from e
    publicFormat = (
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    if certificates[0].public_key().public_bytes(
        *publicFormat
    ) != privateKey.public_key().public_bytes(*publicFormat):
        raise ConfigError(
            f"{keyWhere}: the private key in {keyFile} does not match the "
            f"certificate in {certificatePath}; give the key the certificate "
            "was issued for"
        )


def _checkCAFile(item: _Value, path: str) -> None:
    from cryptography import x509

    with open(path, "rb") as f:
        pem = f.read()
    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError as e:
        raise ConfigError(
            f"{item.where}: {path} holds no PEM certificate ({e}); give a PEM "
            "bundle of the CAs that issue the components' client certificates"
        ) from e


def routerConfigFromMapping(
    data: Mapping[str, Any],
    source: str,
    overrides: Mapping[str, Override] | None = None,
    baseDirectory: str | None = None,
) -> RouterConfig:
    """
    Build and check the router's configuration from a parsed TOML document
    (see the module docstring for its keys), with C{overrides} winning over
    the document.

    @param data: the document, as L{tomllib.load} returns it.
    @param source: the file it came from, named in error messages.
    @param overrides: dotted TOML keys (L{ROUTER_OVERRIDE_KEYS}, such as
        C{"limits.max_sessions"}) to values given elsewhere, such as on the
        command line; a list given for C{listen} replaces the document's.
    @param baseDirectory: where relative paths of the document resolve;
        by default the directory of C{source}. Relative paths in
        C{overrides} resolve against the current directory.
    @raise ConfigError: unknown keys, wrong types, a missing C{domain}, a
        secret written inline, a limit below its minimum, no TLS
        certificate without C{allow_plaintext}, a malformed endpoint
        string, a missing or unusable file. The message names the file and
        key (or the option) and the fix.
    """
    if baseDirectory is None:
        baseDirectory = os.path.dirname(os.path.abspath(source))
    values = _collect(data, source, baseDirectory)
    for key, override in (overrides or {}).items():
        if key not in ROUTER_OVERRIDE_KEYS:
            raise ValueError(f"{key!r} cannot be overridden")
        values[key] = _Value(override.value, override.origin, os.getcwd())

    def missing(key: str, fix: str) -> ConfigError:
        return ConfigError(f"{source}: {key} is missing; {fix}")

    if "domain" not in values:
        raise missing(
            "domain",
            'add domain = "example.net" (the router\'s own domain) at the top',
        )
    domain = _domain(values["domain"])
    listen = (
        _endpoints(values["listen"]) if "listen" in values else DEFAULT_ROUTER_LISTEN
    )
    acceptListen = (
        _endpoints(values["accept.listen"])
        if "accept.listen" in values
        else DEFAULT_ACCEPT_LISTEN
    )
    allowPlaintext = (
        _bool(values["allow_plaintext"]) if "allow_plaintext" in values else False
    )
    acceptSecrets = (
        _secrets(values["accept.secrets"]) if "accept.secrets" in values else {}
    )
    authorization = (
        _authorization(values["authorization"])
        if "authorization" in values
        else {}
    )
    limits = RouterLimits(
        **{
            ROUTER_LIMIT_KEYS[key][0]: _limit(values["limits." + key], key)
            for key in ROUTER_LIMIT_KEYS
            if "limits." + key in values
        }
    )

    certificate = key = clientCAs = credentials = None
    certificateItem = values.get("tls.certificate")
    keyItem = values.get("tls.key")
    if certificateItem is not None:
        certificate = _existingFile(
            certificateItem,
            '"router.pem"',
            "give the PEM certificate of the router's domain (see "
            "docs/examples/router.toml for how to make one) or fix the path",
        )
    if keyItem is not None:
        if certificate is None:
            raise missing(
                "tls.certificate",
                "tls.key is given without a certificate; add "
                'tls.certificate = "router.pem"',
            )
        key = _existingFile(
            keyItem, '"router.key"', "give the certificate's private key or fix the path"
        )
    if certificate is not None and certificateItem is not None:
        _checkTLSFiles(certificateItem, certificate, keyItem, key)
    if "tls.client_cas" in values:
        item = values["tls.client_cas"]
        clientCAs = _existingFile(
            item,
            '"clients-ca.pem"',
            "give the PEM bundle of the CAs of the components' client "
            "certificates or fix the path",
        )
        _checkCAFile(item, clientCAs)
        if certificate is None:
            raise missing(
                "tls.certificate",
                "tls.client_cas (SASL EXTERNAL) needs TLS; add "
                'tls.certificate = "router.pem"',
            )
    if "credentials" in values:
        credentials = _existingFile(
            values["credentials"], '"credentials.json"', _CREATE_CREDENTIALS
        )

    if not listen and not acceptSecrets:
        raise ConfigError(
            f"{source}: nothing to serve: listen is empty and accept.secrets "
            "has no component; give listen = [\"tcp:5348:interface=127.0.0.1\"] "
            "or XEP-0114 components in [accept.secrets]"
        )
    if listen:
        if certificate is None and not allowPlaintext:
            raise missing(
                "tls.certificate",
                "XEP-0225 components need TLS: add [tls] certificate = "
                '"router.pem" and key = "router.key" (allow_plaintext = true '
                "turns TLS off, for tests only)",
            )
        if credentials is None and clientCAs is None:
            raise missing(
                "credentials",
                "XEP-0225 components cannot authenticate without it (or "
                'tls.client_cas); add credentials = "credentials.json" and '
                + _CREATE_CREDENTIALS,
            )

    return RouterConfig(
        domain=domain,
        credentials=credentials,
        certificate=certificate,
        key=key,
        clientCAs=clientCAs,
        listen=listen,
        acceptListen=acceptListen,
        authorization=authorization,
        acceptSecrets=acceptSecrets,
        limits=limits,
        allowPlaintext=allowPlaintext,
    )


def loadRouterConfig(
    path: str, overrides: Mapping[str, Override] | None = None
) -> RouterConfig:
    """
    Read the router's TOML file (see the module docstring) and build its
    configuration; relative paths in it resolve against its directory.

    @param path: the TOML file.
    @param overrides: see L{routerConfigFromMapping}.
    @raise ConfigError: the file cannot be read or is not valid TOML (the
        message gives the line), or see L{routerConfigFromMapping}.
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(
            f"{path}: cannot read the configuration file: {e.strerror}; "
            "check the path given with --config"
        ) from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(
            f"{path}: not valid TOML: {e}; fix the syntax there"
        ) from e
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not valid TOML: not UTF-8 ({e}); save it as UTF-8"
        ) from e
    return routerConfigFromMapping(data, path, overrides)
