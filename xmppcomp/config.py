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
    metrics_listen = "tcp:9348:interface=127.0.0.1"   # optional: /metrics

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
    max_stanza_depth = 64                   # nesting levels in a stanza
    max_buffered_bytes = 1048576            # per session, while it does not read
    max_bounce_payload = 4096               # bytes of a stanza a bounce echoes
    idle_timeout = 120                      # seconds of silence, then a ping
    ping_timeout = 30                       # seconds for an answer to it
    auth_failure_limit = 10                 # failed authentications per source
    auth_failure_window = 60                # ... within this many seconds
    max_negotiating = 2000                  # connections not negotiated yet, in all
    max_negotiating_per_source = 200        # ... per address (IPv6: per /64)
    listen_backlog = 511                    # connections the kernel queues

The component's TOML file (C{twistd xmppcomp --config FILE}; a complete,
commented example is C{docs/examples/component.toml}; see
L{loadComponentConfig})::

    [component]
    server = "tcp:host=127.0.0.1:port=5348"  # absent: embedded router
    server_domain = "example.net"           # required with server
    protocol = "xep0225"                    # or "xep0114"
    hostnames = ["comp.example.net"]        # required with server
    identity = "comp.example.net"           # default: the first hostname
    secret = { file = "comp.secret" }       # or { env = "NAME" }; never inline
    client_certificate = "comp.pem"         # SASL EXTERNAL (optional)
    client_key = "comp.key"
    require_tls = true

    [component.trust]                       # exactly one; default system
    ca_file = "ca.pem"                      # or pinned = "server.pem"
                                            # or system = true
    [component.limits]                      # every value > 0
    max_queued = 1000
    queue_timeout = 60
    iq_timeout = 30
    negotiation_timeout = 30
    fatal_retry_delay = 300

    [embedded]                              # only without server
    port = 0                                # loopback port; 0: any free

    [httpauth]                              # XEP-0070 confirmer (HTTPAuthConfig)
    enabled = true
    listen = "tcp:8080:interface=127.0.0.1" # Twisted server endpoint string
    mode = "protect"                        # or "proxy", "forward-auth"
    directory = "site"                      # protect: served (default: demo page)
    upstream = "http://127.0.0.1:8000"      # proxy only
    public_origin = "https://example.net"   # scheme://authority clients use
    allowed_hosts = ["example.net"]         # or: host names the site answers to
    trusted_proxies = ["127.0.0.1", "::1"]  # may describe the original request
    web_server = "nginx"                    # forward-auth: or "traefik", "caddy"
    ask_query = true                        # the query is part of what is asked
    max_body = 1048576                      # bytes; 413 beyond, before reading
    max_connections = 10000                 # open HTTP connections in all
    max_connections_per_source = 256        # ... per address (not trusted proxies)
    listen_backlog = 511                    # connections the kernel queues
    head_timeout = 10                       # seconds for a request's head
    server_header = "xmppcomp"              # "" for no Server header
    follow_symlinks = false                 # protect: links out of directory
    list_directories = false                # protect: list index-less dirs
    exact_resource = false                  # a full JID must answer itself
    timeout = 120                           # seconds the user has to confirm
    from = "comp.example.net"               # default: the first hostname
    metrics = false                         # serve /metrics (Prometheus)
    server_timing = false                   # Server-Timing: xmpp;dur=MS
    access_log = "log"                      # or "none", or a file path
    [[httpauth.rules]]                      # default: prefix "/", anyone
    prefix = "/"
    jids = ["alice@example.net"]
    domains = ["example.net"]
    anyone = false
    [httpauth.limits]                       # see xmppcomp.httpauth.Limits
    pending_per_jid = 3
    pending_total = 100
    session_lifetime = 300
    window_lifetime = 60
    replay_memory = 86400
    max_remembered = 100000
    remembered_per_jid = 1000               # used ids remembered per bare JID
    remembered_per_domain = 10000           # ... per domain (fair shares)
    attempts_per_client = 30                # asked per client address ...
    attempt_window = 60                     # ... per this many seconds (429)
    undeliverable_per_target = 5            # bounces per (client, domain) ...
    undeliverable_window = 600              # ... per this many seconds (429)
    max_tracked_clients = 10000             # rate-limit entries kept

    [xtls]                                  # XTLS endpoint (XTLSConfig)
    enabled = true
    certificate = "xtls.pem"                # embedded: made up when absent
    key = "xtls.key"
    trust = "xtls-ca.pem"                   # CAs of the peers' certificates
    [xtls.limits]
    max_tunnels = 64
    max_tunnels_per_peer = 4
    window = 8
    chunk_size = 32768
    max_stanza_size = 262144

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
from typing import Any, Iterable, Mapping

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
        together) that completed negotiation; more are refused with
        C{resource-constraint}. Connections still negotiating count
        towards C{maxNegotiating} instead.
    @ivar maxNamesPerSession: hostnames one session may bind
        (C{resource-constraint} beyond).
    @ivar maxStanzasPerSecond: stanzas per second one session may send,
        averaged over a one-second bucket; beyond, the stream ends with
        C{policy-violation}.
    @ivar maxStanzaSize: bytes of one stanza (C{policy-violation} beyond).
    @ivar negotiationTimeout: seconds to complete stream negotiation.
    @ivar maxAuthAttempts: failed SASL attempts before the stream closes.
    @ivar closeTimeout: seconds to wait for a peer's closing tag.
    @ivar maxStanzaDepth: levels elements may nest below the stream root
        (a stanza is level 1); deeper is C{policy-violation}.
    @ivar maxBufferedBytes: bytes the router queues to one session while
        its transport is paused (the peer does not read), its own answers
        and bounces included; stanzas beyond are bounced with
        C{resource-constraint}, errors, IQ results and the router's answers
        beyond are counted and logged, not written.
    @ivar maxBouncePayload: bytes of an undeliverable stanza that its
        bounce echoes: a stanza up to this size comes back whole inside
        its error; a larger one only as its addressing, id and type with
        the error (RFC 6120 section 8.3.1 allows either).
    @ivar idleTimeout: seconds without data from a negotiated session
        before the router pings it (XEP-0199).
    @ivar pingTimeout: seconds to wait for any data after that ping before
        closing with C{connection-timeout}.
    @ivar authFailureLimit: failed authentications (SASL or XEP-0114
        handshake) from one source address within C{authFailureWindow}
        seconds before that source is refused (C{policy-violation}).
    @ivar authFailureWindow: see C{authFailureLimit}.
    @ivar maxNegotiating: connections whose negotiation is not complete
        (not authenticated and bound yet), in all; they do not count
        towards C{maxSessions} until it is. When reached, a new connection
        is refused at accept time unless a source holds at least two more
        than its source does, whose oldest is closed to make room (see
        L{xmppcomp.admission}).
    @ivar maxNegotiatingPerSource: the same, per source address (an IPv4
        address, or the C{/64} of an IPv6 address): beyond, connections
        from that source are refused at accept time (closed before any
        byte is read or written; logged once per burst).
    @ivar listenBacklog: the listen backlog of every listener whose
        endpoint string does not give its own C{backlog=} (the kernel caps
        it at C{net.core.somaxconn}).
    """

    maxSessions: int = 1000
    maxNamesPerSession: int = 64
    maxStanzasPerSecond: int = 5000
    maxStanzaSize: int = 256 * 1024
    negotiationTimeout: float = 30.0
    maxAuthAttempts: int = 3
    closeTimeout: float = 10.0
    maxStanzaDepth: int = 64
    maxBufferedBytes: int = 4 * 256 * 1024
    maxBouncePayload: int = 4096
    idleTimeout: float = 120.0
    pingTimeout: float = 30.0
    authFailureLimit: int = 10
    authFailureWindow: float = 60.0
    maxNegotiating: int = 2000
    maxNegotiatingPerSource: int = 200
    listenBacklog: int = 511


def _strTuple(items: Iterable[str]) -> tuple[str, ...]:
    """
    The converter of the endpoint and hostname fields (a typed C{tuple},
    which mypy's attrs plugin cannot infer from the generic builtin).
    """
    return tuple(items)


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
    @ivar metricsListen: endpoint string of an HTTP listener serving the
        Prometheus metrics at C{/metrics}, or C{None} (the default: off).
    """

    domain: str
    credentials: str | None = None
    certificate: str | None = None
    key: str | None = None
    clientCAs: str | None = None
    listen: tuple[str, ...] = attrs.field(default=DEFAULT_ROUTER_LISTEN, converter=_strTuple)
    acceptListen: tuple[str, ...] = attrs.field(default=DEFAULT_ACCEPT_LISTEN, converter=_strTuple)
    authorization: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    acceptSecrets: Mapping[str, SecretRef] = attrs.field(factory=dict)
    limits: RouterLimits = attrs.field(factory=RouterLimits)
    allowPlaintext: bool = False
    metricsListen: str | None = None


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
    "max_stanza_depth": ("maxStanzaDepth", True, 1),
    "max_buffered_bytes": ("maxBufferedBytes", True, 1),
    "max_bounce_payload": ("maxBouncePayload", True, 1),
    "idle_timeout": ("idleTimeout", False, 0),
    "ping_timeout": ("pingTimeout", False, 0),
    "auth_failure_limit": ("authFailureLimit", True, 1),
    "auth_failure_window": ("authFailureWindow", False, 0),
    "max_negotiating": ("maxNegotiating", True, 1),
    "max_negotiating_per_source": ("maxNegotiatingPerSource", True, 1),
    "listen_backlog": ("listenBacklog", True, 1),
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
            "metrics_listen",
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
        "metrics_listen",
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


def _unknownKey(
    source: str,
    table: str,
    key: str,
    tables: Mapping[str, frozenset[str]] | None = None,
) -> ConfigError:
    """
    The error for an unknown key, with the nearest known key as a hint.

    @param tables: the keys of each table (by default the router's).
    """
    known = (_ROUTER_TABLES if tables is None else tables)[table]
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


def _limit(
    item: _Value,
    key: str,
    keys: Mapping[str, tuple[str, bool, int]] | None = None,
    defaults: object | None = None,
) -> Any:
    """
    Check one limit.

    @param keys: the limit keys of the table (by default the router's).
    @param defaults: an instance holding the default values (by default
        L{RouterLimits()}), named in error messages.
    @return: an C{int} or a C{float}, as C{keys} says; typed C{Any}
        because the results are passed by keyword to the limits classes,
        whose fields have one type or the other.
    """
    if keys is None:
        keys = ROUTER_LIMIT_KEYS
    attribute, integer, lowest = keys[key]
    if defaults is None:
        defaults = RouterLimits()
    value = item.value
    if integer:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(
                f"{item.where} must be an integer, not {_typeName(value)}; "
                f"write it as, for example, {key} = "
                f"{getattr(defaults, attribute)}"
            )
        if value < lowest:
            why = (
                " (RFC 6120 section 13.12: stanzas up to 10000 bytes must pass)"
                if key == "max_stanza_size"
                else ""
            )
            raise ConfigError(
                f"{item.where} must be at least {lowest}{why}, not {value}; "
                f"raise it (the default is {getattr(defaults, attribute)})"
            )
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(
            f"{item.where} must be a number of seconds, not {_typeName(value)}; "
            f"write it as, for example, {key} = "
            f"{getattr(defaults, attribute):g}"
        )
    if not value > 0 or value != value or value == float("inf"):
        raise ConfigError(
            f"{item.where} must be a finite number of seconds above 0, not "
            f"{value}; raise it (the default is "
            f"{getattr(defaults, attribute):g})"
        )
    return float(value)


def _domain(item: _Value) -> str:
    # The package's one rule for names.
    from xmppcomp.jids import InvalidDomain, normalizeDomain

    value = _string(item, 'domain = "example.net"')
    try:
        return normalizeDomain(value)
    except InvalidDomain as e:
        raise ConfigError(
            f"{item.where}: {value!r} is not a domain ({e.reason}); give the "
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
    from xmppcomp.jids import InvalidDomain, normalizeDomain

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
        except InvalidDomain as e:
            raise ConfigError(
                f"{where}: {hostname!r} is not a hostname ({e.reason}); each key is "
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
    for name, override in (overrides or {}).items():
        if name not in ROUTER_OVERRIDE_KEYS:
            raise ValueError(f"{name!r} cannot be overridden")
        values[name] = _Value(override.value, override.origin, os.getcwd())

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
    metricsListen = None
    if "metrics_listen" in values:
        item = values["metrics_listen"]
        metricsListen = _string(item, '"tcp:9348:interface=127.0.0.1"')
        _checkEndpoint(item.where, metricsListen)

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
        metricsListen=metricsListen,
    )


def _readTOML(path: str) -> dict[str, Any]:
    """
    Read and parse a TOML file.

    @raise ConfigError: the file cannot be read or is not valid TOML (the
        message gives the line).
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
    return data


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
    data = _readTOML(path)
    return routerConfigFromMapping(data, path, overrides)


# The component (twistd xmppcomp).

#: The domain of the embedded router when no server is configured.
DEFAULT_EMBEDDED_DOMAIN = "localhost"

#: The hostname of the component when no server and no hostname are
#: configured: a name below the embedded router's domain.
DEFAULT_EMBEDDED_HOSTNAME = "component"


@attrs.frozen
class ComponentLimits:
    """
    Limits and timeouts of a component (see L{xmppcomp.component.Component}).

    @ivar maxQueued: stanzas that may wait while the connection is down;
        more fail with L{QueueFull<xmppcomp.component.QueueFull>}.
    @ivar queueTimeout: seconds a stanza may wait for the connection.
    @ivar iqTimeout: seconds to wait for the answer to an IQ request.
    @ivar negotiationTimeout: seconds to complete stream negotiation.
    @ivar fatalRetryDelay: seconds to wait before trying again after a
        failure that retrying soon will not fix (wrong secret, certificate
        mismatch, refused hostname).
    """

    maxQueued: int = 1000
    queueTimeout: float = 60.0
    iqTimeout: float = 30.0
    negotiationTimeout: float = 30.0
    fatalRetryDelay: float = 300.0


#: Keys of the C{[component.limits]} table: TOML key to the
#: L{ComponentLimits} attribute, whether it must be an integer, and its
#: lowest allowed value.
COMPONENT_LIMIT_KEYS: Mapping[str, tuple[str, bool, int]] = {
    "max_queued": ("maxQueued", True, 1),
    "queue_timeout": ("queueTimeout", False, 0),
    "iq_timeout": ("iqTimeout", False, 0),
    "negotiation_timeout": ("negotiationTimeout", False, 0),
    "fatal_retry_delay": ("fatalRetryDelay", False, 0),
}


@attrs.frozen
class ComponentTrust:
    """
    How the component checks the server's certificate: the system's
    certificate authorities (neither attribute set), the authorities of a
    PEM bundle, or exactly one pinned certificate.

    @ivar caFile: path of a PEM bundle of trusted authorities.
    @ivar pinned: path of the one certificate the server must present.
    """

    caFile: str | None = None
    pinned: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.caFile is not None and self.pinned is not None:
            raise ConfigError("trust: give at most one of ca_file and pinned")

    @property
    def kind(self) -> str:
        """
        C{"system"}, C{"ca_file"} or C{"pinned"}.
        """
        if self.caFile is not None:
            return "ca_file"
        if self.pinned is not None:
            return "pinned"
        return "system"

    def load(self) -> object:
        """
        Read the files now and build the trust value the component takes
        (see L{xmppcomp.stream.tls.trustSystem}, C{trustCAFile},
        C{trustPinned}).

        @raise xmppcomp.stream.tls.CertificateFileError: a file cannot be
            read or holds no certificate.
        """
        from xmppcomp.stream import tls

        if self.caFile is not None:
            return tls.trustCAFile(self.caFile)
        if self.pinned is not None:
            return tls.trustPinned(self.pinned)
        return tls.trustSystem()


#: Default endpoint of the HTTP-auth listener: loopback only.
DEFAULT_HTTP_LISTEN = "tcp:8080:interface=127.0.0.1"

#: The ways the HTTP-auth confirmer is reached (see
#: L{xmppcomp.httpauth.Confirmer}).
HTTPAUTH_MODES = ("protect", "proxy", "forward-auth")


def _defaultRules() -> Any:
    from xmppcomp.httpauth._policy import AccessRules

    return AccessRules.anyone()


def _defaultHTTPLimits() -> Any:
    from xmppcomp.httpauth._policy import Limits

    return Limits()


@attrs.frozen
class HTTPAuthConfig:
    """
    The XEP-0070 HTTP-auth confirmer of C{twistd xmppcomp} (the
    C{[httpauth]} table).

    @ivar enabled: whether it runs.
    @ivar listen: the Twisted server endpoint string of its web listener.
    @ivar mode: C{"protect"} (serve C{directory}, or a built-in demo page),
        C{"proxy"} (reverse-proxy to C{upstream}) or C{"forward-auth"}
        (answer a web server's C{auth_request} / ForwardAuth).
    @ivar directory: the directory served in C{protect} mode, or C{None}
        for the built-in demo page.
    @ivar upstream: the upstream URL of C{proxy} mode.
    @ivar publicOrigin: the scheme and authority clients use
        (C{https://example.net}): the URL a user is asked about is this
        origin and the canonical path; or C{None}.
    @ivar allowedHosts: host names (no port) the site answers to: the URL
        asked about is then built from the request's host, which must be
        one of them (400 otherwise). One of C{publicOrigin} and
        C{allowedHosts} is required; the embedded main job defaults to the
        loopback names.
    @ivar trustedProxies: addresses or networks whose connections may
        describe the original request and client (forward-auth headers,
        C{X-Forwarded-For}, C{X-Forwarded-Proto}): loopback by default.
    @ivar webServer: the forward-auth profile: C{"nginx"}, C{"traefik"} or
        C{"caddy"} (which headers carry the original request).
    @ivar askQuery: whether the query string is in the URL the user is
        asked about (it crosses the XMPP server); C{True} by default.
    @ivar maxConnections: open connections of the web listener, in all
        (idle keep-alive ones included); when reached, a new connection
        is refused at accept time unless a source holds at least two more
        than its source does, whose oldest is closed to make room (see
        L{xmppcomp.admission}).
    @ivar maxConnectionsPerSource: open connections per client address (an
        IPv4 address, or the C{/64} of an IPv6 address), trusted proxies
        excepted (they carry many clients; they count in
        C{maxConnections} only): beyond, that address's connections are
        refused at accept time (closed before anything is read or written;
        logged once per burst).
    @ivar listenBacklog: the listen backlog of the web listener, unless
        C{listen} gives its own C{backlog=}.
    @ivar maxBody: bytes of a request body at most (413 beyond; refused
        before it is read).
    @ivar headTimeout: seconds a request's head (request line and headers)
        may take to arrive (408 beyond).
    @ivar serverHeader: the C{Server} header of every answer, or C{None}
        for none.
    @ivar followSymlinks: protect mode: whether symbolic links that lead
        out of the directory are followed.
    @ivar listDirectories: protect mode: whether directories without an
        index page are listed.
    @ivar exactResource: whether a full JID asked must answer from that
        very resource; by default another resource of the account may
        (the server delivered the request there), and it is reported as
        the confirmer.
    @ivar timeout: seconds the user has to confirm.
    @ivar fromHostname: the hostname of the component that asks; C{None}:
        the component's first hostname.
    @ivar rules: who may access which paths
        (L{xmppcomp.httpauth.AccessRules}).
    @ivar limits: pending limits and lifetimes
        (L{xmppcomp.httpauth.Limits}).
    @ivar metrics: whether the listener also serves C{/metrics}
        (L{xmppcomp.metrics}, Prometheus text format, unauthenticated).
    @ivar serverTiming: whether answers to requests that asked over XMPP
        carry C{Server-Timing: xmpp;dur=MS}, the confirmation's round trip.
    @ivar accessLog: where a line per HTTP request goes: C{"log"} (the
        twistd log, the default), C{"none"}, or the path of a file
        (twisted.web's combined log format, written without going through
        the log system).
    """

    enabled: bool = True
    listen: str = DEFAULT_HTTP_LISTEN
    mode: str = "protect"
    directory: str | None = None
    upstream: str | None = None
    publicOrigin: str | None = None
    allowedHosts: tuple[str, ...] = ()
    trustedProxies: tuple[str, ...] = ("127.0.0.0/8", "::1")
    webServer: str = "nginx"
    askQuery: bool = True
    maxBody: int = 1024 * 1024
    maxConnections: int = 10000
    maxConnectionsPerSource: int = 256
    listenBacklog: int = 511
    headTimeout: float = 10.0
    serverHeader: str | None = "xmppcomp"
    followSymlinks: bool = False
    listDirectories: bool = False
    exactResource: bool = False
    timeout: float = 120.0
    fromHostname: str | None = None
    rules: Any = attrs.field(factory=_defaultRules)
    limits: Any = attrs.field(factory=_defaultHTTPLimits)
    metrics: bool = False
    serverTiming: bool = False
    accessLog: str = "log"


@attrs.frozen
class XTLSLimits:
    """
    Limits of the XTLS endpoint (see
    L{xmppcomp.xtls.XTLSConfiguration}, whose defaults these are).

    @ivar maxTunnels: the most tunnels at once.
    @ivar maxTunnelsPerPeer: the most tunnels with one peer (bare JID).
    @ivar window: the most unacknowledged data IQs per tunnel.
    @ivar chunkSize: the most TLS bytes in one data IQ.
    @ivar maxStanzaSize: bytes of one stanza inside a tunnel.
    """

    maxTunnels: int = 64
    maxTunnelsPerPeer: int = 4
    window: int = 8
    chunkSize: int = 32 * 1024
    maxStanzaSize: int = 256 * 1024


@attrs.frozen
class XTLSConfig:
    """
    The XTLS endpoint of C{twistd xmppcomp} (the C{[xtls]} table).

    Without C{certificate}: with the embedded router, a certificate for the
    component's hostnames is issued at startup by an in-memory authority
    (see L{xmppcomp.embedded.EmbeddedRouter.issueXTLSCertificate}); with a
    server, the endpoint answers C{service-unavailable} (and says so in the
    log).

    @ivar enabled: whether the endpoint accepts and opens tunnels.
    @ivar certificate: path of the component's PEM certificate for XTLS.
    @ivar key: path of its private key (C{None}: in the certificate file).
    @ivar trust: path of a PEM bundle of the authorities that issue the
        peers' certificates.
    @ivar limits: the limits.
    """

    enabled: bool = True
    certificate: str | None = None
    key: str | None = None
    trust: str | None = None
    limits: XTLSLimits = attrs.field(factory=XTLSLimits)


@attrs.frozen
class ComponentConfig:
    """
    The configuration of C{twistd xmppcomp}.

    @ivar server: the client endpoint string of the server
        (C{tcp:host=...:port=...}; C{tls:host=...:port=...} for direct TLS),
        or C{None}: no server, run against an embedded router on loopback
        (see L{xmppcomp.embedded}).
    @ivar serverDomain: the server's domain (the C{to} of the stream and the
        name its certificate must carry); with no server, the embedded
        router's domain.
    @ivar hostnames: the hostnames the component binds, at least one.
    @ivar identity: the domain the component authenticates as (SASL); by
        default the first hostname.
    @ivar protocol: C{"xep0225"} or C{"xep0114"}.
    @ivar secret: where the secret is (SCRAM/PLAIN for XEP-0225, the
        handshake of XEP-0114), or C{None}.
    @ivar clientCertificate: path of a PEM client certificate (SASL
        EXTERNAL), or C{None}.
    @ivar clientKey: path of its private key (C{None}: in the certificate
        file).
    @ivar trust: how the server's certificate is checked.
    @ivar requireTLS: refuse a server that offers no TLS (the default).
    @ivar limits: limits and timeouts.
    @ivar embeddedPort: the loopback TCP port of the embedded router (C{0}:
        any free port); only used without C{server}.
    @ivar httpauth: the XEP-0070 HTTP-auth confirmer (C{[httpauth]}).
    @ivar xtls: the XTLS endpoint (C{[xtls]}).
    @ivar baseDirectory: the directory of the configuration file (the
        current directory without one).
    """

    hostnames: tuple[str, ...] = attrs.field(converter=_strTuple)
    serverDomain: str
    identity: str
    server: str | None = None
    protocol: str = "xep0225"
    secret: SecretRef | None = None
    clientCertificate: str | None = None
    clientKey: str | None = None
    trust: ComponentTrust = attrs.field(factory=ComponentTrust)
    requireTLS: bool = True
    limits: ComponentLimits = attrs.field(factory=ComponentLimits)
    embeddedPort: int = 0
    httpauth: HTTPAuthConfig = attrs.field(factory=HTTPAuthConfig)
    xtls: XTLSConfig = attrs.field(factory=XTLSConfig)
    baseDirectory: str = attrs.field(factory=os.getcwd)

    @property
    def embedded(self) -> bool:
        """
        Whether the component runs against an embedded router (no server
        is configured).
        """
        return self.server is None


#: Keys of the C{[httpauth.limits]} table: TOML key to the
#: L{xmppcomp.httpauth.Limits} attribute, whether it must be an integer,
#: and its lowest allowed value.
HTTPAUTH_LIMIT_KEYS: Mapping[str, tuple[str, bool, int]] = {
    "pending_per_jid": ("pendingPerJID", True, 1),
    "pending_total": ("pendingTotal", True, 1),
    "session_lifetime": ("sessionLifetime", False, 0),
    "window_lifetime": ("windowLifetime", False, 0),
    "replay_memory": ("replayMemory", False, 0),
    "max_remembered": ("maxRemembered", True, 1),
    "remembered_per_jid": ("rememberedPerJID", True, 1),
    "remembered_per_domain": ("rememberedPerDomain", True, 1),
    "attempts_per_client": ("attemptsPerClient", True, 1),
    "attempt_window": ("attemptWindow", False, 0),
    "undeliverable_per_target": ("undeliverablePerTarget", True, 1),
    "undeliverable_window": ("undeliverableWindow", False, 0),
    "max_tracked_clients": ("maxTrackedClients", True, 1),
}

#: Keys of the C{[xtls.limits]} table, likewise for L{XTLSLimits}.
XTLS_LIMIT_KEYS: Mapping[str, tuple[str, bool, int]] = {
    "max_tunnels": ("maxTunnels", True, 1),
    "max_tunnels_per_peer": ("maxTunnelsPerPeer", True, 1),
    "window": ("window", True, 1),
    "chunk_size": ("chunkSize", True, 1),
    # RFC 6120 section 13.12: stanzas up to 10000 bytes must pass.
    "max_stanza_size": ("maxStanzaSize", True, 10000),
}

#: The keys of each table of the component's TOML file; C{""} is the top
#: level. C{component.secret} and C{httpauth.rules} are taken whole.
_COMPONENT_TABLES: Mapping[str, frozenset[str]] = {
    "": frozenset({"component", "embedded", "httpauth", "xtls"}),
    "component": frozenset(
        {
            "server",
            "server_domain",
            "protocol",
            "identity",
            "hostnames",
            "secret",
            "client_certificate",
            "client_key",
            "require_tls",
            "trust",
            "limits",
        }
    ),
    "component.trust": frozenset({"ca_file", "pinned", "system"}),
    "component.limits": frozenset(COMPONENT_LIMIT_KEYS),
    "embedded": frozenset({"port"}),
    "httpauth": frozenset(
        {
            "enabled",
            "listen",
            "mode",
            "directory",
            "upstream",
            "public_origin",
            "allowed_hosts",
            "trusted_proxies",
            "web_server",
            "ask_query",
            "max_body",
            "max_connections",
            "max_connections_per_source",
            "listen_backlog",
            "head_timeout",
            "server_header",
            "follow_symlinks",
            "list_directories",
            "exact_resource",
            "timeout",
            "from",
            "rules",
            "limits",
            "metrics",
            "server_timing",
            "access_log",
        }
    ),
    "httpauth.limits": frozenset(HTTPAUTH_LIMIT_KEYS),
    "xtls": frozenset({"enabled", "certificate", "key", "trust", "limits"}),
    "xtls.limits": frozenset(XTLS_LIMIT_KEYS),
}

#: Keys that may be given as an L{Override}. C{component.secret} takes a
#: mapping (C{{"file": PATH}} or C{{"env": NAME}}) and replaces the file's
#: secret; any C{component.trust.*} override replaces the file's whole
#: C{[component.trust]} table; an C{xtls.certificate} or C{xtls.key}
#: override replaces both of the file's.
COMPONENT_OVERRIDE_KEYS = frozenset(
    {
        "component.server",
        "component.server_domain",
        "component.protocol",
        "component.identity",
        "component.hostnames",
        "component.secret",
        "component.client_certificate",
        "component.client_key",
        "component.require_tls",
        "component.trust.ca_file",
        "component.trust.pinned",
        "component.trust.system",
        "embedded.port",
        "httpauth.enabled",
        "httpauth.listen",
        "httpauth.mode",
        "httpauth.directory",
        "httpauth.upstream",
        "httpauth.metrics",
        "xtls.enabled",
        "xtls.certificate",
        "xtls.key",
        "xtls.trust",
    }
    | {"component.limits." + key for key in COMPONENT_LIMIT_KEYS}
)

_SECRET_EXAMPLE = '{ file = "component.secret" } or { env = "COMPONENT_SECRET" }'


def _collectComponent(
    data: Mapping[str, Any], source: str, base: str
) -> dict[str, _Value]:
    """
    Flatten the component's TOML document to dotted keys, refusing unknown
    keys and tables that are not tables.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: the configuration must be a table of keys, not "
            f"{_typeName(data)}"
        )
    values: dict[str, _Value] = {}

    def walk(table: str, mapping: Mapping[str, Any]) -> None:
        for key, value in mapping.items():
            dotted = f"{table}.{key}" if table else key
            if key not in _COMPONENT_TABLES[table]:
                if table == "" and key in _COMPONENT_TABLES["component"]:
                    raise ConfigError(
                        f"{source}: {key!r} is a key of the [component] table; "
                        f"move it below a [component] line"
                    )
                raise _unknownKey(source, table, key, _COMPONENT_TABLES)
            if dotted in _COMPONENT_TABLES:
                if not isinstance(value, Mapping):
                    raise ConfigError(
                        f"{source}: {dotted} must be a table ([{dotted}] with "
                        f"keys below it), not {_typeName(value)}"
                    )
                walk(dotted, value)
            else:
                values[dotted] = _Value(value, f"{source}: {dotted}", base)

    walk("", data)
    return values


def _hostname(item: _Value, what: str) -> str:
    from xmppcomp.jids import InvalidDomain, normalizeDomain

    value = _string(item, '"component.example.net"')
    try:
        return normalizeDomain(value)
    except InvalidDomain as e:
        raise ConfigError(
            f"{item.where}: {value!r} is not a domain ({e.reason}); give {what}, "
            'such as "component.example.net"'
        ) from e


def _hostnames(item: _Value) -> tuple[str, ...]:
    value = item.value
    example = '["component.example.net"]'
    if isinstance(value, str):
        raise ConfigError(
            f"{item.where} must be an array of hostnames, not a single "
            f"string; write it as [{value!r}]".replace("'", '"')
        )
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(
            f"{item.where} must be a non-empty array of hostnames such as "
            f"{example}, not "
            f"{'an empty array' if isinstance(value, (list, tuple)) else _typeName(value)}"
        )
    names: list[str] = []
    for index, hostname in enumerate(value):
        name = _hostname(
            _Value(hostname, f"{item.where}[{index}]", item.base),
            "a hostname the component binds",
        )
        if name in names:
            raise ConfigError(
                f"{item.where}[{index}]: the hostname {name!r} is listed twice; "
                "remove one"
            )
        names.append(name)
    return tuple(names)


def _checkClientEndpoint(item: _Value, protocol: str) -> str:
    """
    Parse the server's client endpoint string without connecting.

    @raise ConfigError: it does not parse.
    """
    # Imported here: loading a configuration must not install a reactor.
    from twisted.internet.endpoints import clientFromString
    from twisted.internet.testing import MemoryReactor

    description = _string(item, '"tcp:host=127.0.0.1:port=5348"')
    parsed = description
    if description.startswith("tls:") and protocol == "xep0225":
        # The component makes direct TLS itself, over TCP, with the same
        # certificate checks as STARTTLS.
        parsed = "tcp:" + description[len("tls:"):]
    try:
        clientFromString(MemoryReactor(), parsed)
    except Exception as e:
        raise ConfigError(
            f"{item.where}: {description!r} is not a valid client endpoint "
            f"string ({type(e).__name__}: {e}); write it as, for example, "
            '"tcp:host=127.0.0.1:port=5348" (STARTTLS) or '
            '"tls:host=xmpp.example.net:port=5223" (direct TLS)'
        ) from e
    return description


def _secretRef(item: _Value) -> SecretRef:
    ref = item.value
    where = item.where
    if isinstance(ref, str):
        raise ConfigError(
            f"{where}: a secret is never written in the configuration; put "
            "it in a file readable only by the component and write "
            'secret = { file = "component.secret" }, or put it in an '
            'environment variable and write secret = { env = "VARIABLE" }'
        )
    if not isinstance(ref, Mapping):
        raise ConfigError(f"{where} must be {_SECRET_EXAMPLE}, not {_typeName(ref)}")
    unknown = set(ref) - {"file", "env"}
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {sorted(unknown)[0]!r}; the only keys are "
            f"'file' and 'env': {_SECRET_EXAMPLE}"
        )
    if len(ref) != 1:
        raise ConfigError(f"{where}: give exactly one of 'file' or 'env': {_SECRET_EXAMPLE}")
    if "file" in ref:
        path = _existingFile(
            _Value(ref["file"], f"{where}.file", item.base),
            '"component.secret"',
            "write the secret on its first line (mode 0600) or fix the path",
        )
        return SecretRef(file=path, what=where)
    variable = _string(_Value(ref["env"], f"{where}.env", item.base), '"COMPONENT_SECRET"')
    return SecretRef(env=variable, what=where)


def _trust(values: Mapping[str, _Value], source: str) -> ComponentTrust:
    from xmppcomp.stream import tls

    given = [key for key in ("ca_file", "pinned", "system") if "component.trust." + key in values]
    if len(given) > 1:
        item = values["component.trust." + given[1]]
        raise ConfigError(
            f"{item.where}: give exactly one of ca_file, pinned or system = "
            f"true in [component.trust], not both {given[0]} and {given[1]}; "
            "remove one"
        )
    if not given:
        return ComponentTrust()
    item = values["component.trust." + given[0]]
    if given[0] == "system":
        if not _bool(item):
            raise ConfigError(
                f"{item.where} = false leaves nothing to trust; give "
                'ca_file = "ca.pem" or pinned = "server.pem" instead, or '
                "system = true"
            )
        return ComponentTrust()
    if given[0] == "ca_file":
        path = _existingFile(
            item,
            '"ca.pem"',
            "give the PEM bundle of the authorities that issued the "
            "server's certificate, or fix the path",
        )
        loader: Any = tls.trustCAFile
        fix = "give a PEM bundle of CA certificates"
    else:
        path = _existingFile(
            item,
            '"server.pem"',
            "give the server's own certificate (PEM) or fix the path",
        )
        loader = tls.trustPinned
        fix = "give the server's certificate in PEM"
    try:
        loader(path)
    except tls.CertificateFileError as e:
        raise ConfigError(f"{item.where}: {e}; {fix}") from e
    return ComponentTrust(caFile=path) if given[0] == "ca_file" else ComponentTrust(pinned=path)


def _clientCertificate(
    values: Mapping[str, _Value], source: str
) -> tuple[str | None, str | None]:
    from xmppcomp.stream import tls

    certificateItem = values.get("component.client_certificate")
    keyItem = values.get("component.client_key")
    if certificateItem is None:
        if keyItem is not None:
            raise ConfigError(
                f"{keyItem.where} is given without a certificate; add "
                'client_certificate = "component.pem" to [component]'
            )
        return None, None
    certificate = _existingFile(
        certificateItem,
        '"component.pem"',
        "give the component's PEM client certificate or fix the path",
    )
    key = None
    if keyItem is not None:
        key = _existingFile(
            keyItem, '"component.key"', "give the certificate's private key or fix the path"
        )
    try:
        tls.loadPrivateCertificate(certificate, key)
    except tls.CertificateFileError as e:
        where = keyItem.where if keyItem is not None and e.path == key else certificateItem.where
        raise ConfigError(
            f"{where}: {e}; give the PEM client certificate and its "
            "unencrypted private key (client_key, or in the certificate file)"
        ) from e
    return certificate, key


def _port(item: _Value) -> int:
    value = item.value
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigError(
            f"{item.where} must be a TCP port number from 0 to 65535 (0: any "
            f"free port), not {value!r}"
        )
    return value


def _endpointString(item: _Value, example: str) -> str:
    """
    A server endpoint string, parsed without listening.
    """
    from twisted.internet.endpoints import serverFromString
    from twisted.internet.testing import MemoryReactor

    description = _string(item, f'"{example}"')
    try:
        serverFromString(MemoryReactor(), description)
    except Exception as e:
        raise ConfigError(
            f"{item.where}: {description!r} is not a valid server endpoint "
            f"string ({type(e).__name__}: {e}); write it as, for example, "
            f'"{example}" (loopback only) or "ssl:8443:privateKey=key.pem:'
            'certKey=cert.pem" (HTTPS; Twisted\'s endpoint strings)'
        ) from e
    return description


def _existingDirectory(item: _Value, example: str, fix: str) -> str:
    path = _path(item, example)
    if not os.path.isdir(path):
        what = "does not exist" if not os.path.exists(path) else "is not a directory"
        raise ConfigError(f"{item.where}: {path} {what}; {fix}")
    return path


def _httpURL(item: _Value, example: str, what: str, origin: bool) -> str:
    from urllib.parse import urlsplit

    value = _string(item, f'"{example}"')
    try:
        parts = urlsplit(value)
        parts.port
    except ValueError as e:
        raise ConfigError(
            f"{item.where}: {value!r} is not a URL ({e}); give {what}, such as "
            f'"{example}"'
        ) from e
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{item.where}: {value!r} is not an http:// or https:// URL with a "
            f'host; give {what}, such as "{example}"'
        )
    if origin:
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError(
                f"{item.where}: {value!r} has a path, query or fragment; give "
                f'only the scheme and authority, such as "{example}"'
            )
        return f"{parts.scheme}://{parts.netloc}"
    return value


def _stringList(item: _Value, example: str) -> list[str]:
    value = item.value
    if not isinstance(value, (list, tuple)):
        raise ConfigError(
            f"{item.where} must be an array of strings such as {example}, not "
            f"{_typeName(value)}"
        )
    for index, entry in enumerate(value):
        if not isinstance(entry, str) or not entry.strip():
            raise ConfigError(
                f"{item.where}[{index}] must be a non-empty string, not "
                f"{_typeName(entry) if entry != '' else 'empty'}; write the "
                f"array as {example}"
            )
    return list(value)


_RULE_KEYS = frozenset({"prefix", "jids", "domains", "anyone"})
_RULE_EXAMPLE = (
    '[[httpauth.rules]] prefix = "/", jids = ["alice@example.net"], '
    'domains = ["example.net"], anyone = false'
)


def _rules(item: _Value) -> Any:
    """
    The C{[[httpauth.rules]]} array of tables, as
    L{xmppcomp.httpauth.AccessRules}.
    """
    from twisted.words.protocols.jabber import jid

    from xmppcomp.httpauth._policy import AccessRule, AccessRules

    value = item.value
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(
            f"{item.where} must be a non-empty array of tables, each written "
            f"as {_RULE_EXAMPLE}; remove it to let any JID through"
        )
    rules: list[AccessRule] = []
    for index, rule in enumerate(value):
        where = f"{item.where}[{index}]"
        if not isinstance(rule, Mapping):
            raise ConfigError(
                f"{where} must be a table, not {_typeName(rule)}; write each "
                f"rule as {_RULE_EXAMPLE}"
            )
        unknown = sorted(set(rule) - _RULE_KEYS)
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(_RULE_KEYS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{where}: unknown key {unknown[0]!r}{hint}; the keys of a rule "
                "are prefix, jids, domains and anyone"
            )
        if "prefix" not in rule:
            raise ConfigError(
                f'{where}: prefix is missing; add prefix = "/" (the URL path '
                "the rule covers, and everything below it)"
            )
        prefix = _string(_Value(rule["prefix"], f"{where}.prefix", item.base), '"/"')
        if not prefix.startswith("/"):
            raise ConfigError(
                f"{where}.prefix must be a URL path starting with '/', not "
                f"{prefix!r}; write it as \"/{prefix}\""
            )
        if any(other.prefix == prefix for other in rules):
            raise ConfigError(
                f"{where}: another rule has the prefix {prefix!r}; merge the two"
            )
        address: jid.JID | None
        jids: list[str] = []
        if "jids" in rule:
            jidsItem = _Value(rule["jids"], f"{where}.jids", item.base)
            for position, text in enumerate(
                _stringList(jidsItem, '["alice@example.net"]')
            ):
                try:
                    address = jid.JID(text)
                except (jid.InvalidFormat, UnicodeError, ValueError) as e:
                    raise ConfigError(
                        f"{where}.jids[{position}]: {text!r} is not a JID ({e}); "
                        'give bare JIDs such as "alice@example.net"'
                    ) from e
                jids.append(address.userhost())
        domains: list[str] = []
        if "domains" in rule:
            domainsItem = _Value(rule["domains"], f"{where}.domains", item.base)
            for position, text in enumerate(_stringList(domainsItem, '["example.net"]')):
                try:
                    address = jid.JID(text)
                except (jid.InvalidFormat, UnicodeError, ValueError) as e:
                    address = None
                    problem = str(e)
                else:
                    problem = "a JID, not a domain"
                if address is None or address.user or address.resource:
                    raise ConfigError(
                        f"{where}.domains[{position}]: {text!r} is not a domain "
                        f'({problem}); give domains such as "example.net" (every '
                        "JID at them is allowed)"
                    )
                domains.append(address.host)
        anyone = (
            _bool(_Value(rule["anyone"], f"{where}.anyone", item.base))
            if "anyone" in rule
            else False
        )
        rules.append(AccessRule(prefix, jids=jids, domains=domains, anyone=anyone))
    return AccessRules(rules)


#: The host names the embedded main job's confirmer answers to when
#: neither public_origin nor allowed_hosts is set.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _httpauth(
    values: Mapping[str, _Value],
    source: str,
    hostnames: tuple[str, ...],
    embedded: bool = False,
) -> HTTPAuthConfig:
    """
    The C{[httpauth]} table, checked.
    """
    from xmppcomp.httpauth._policy import Limits

    def get(key: str) -> _Value | None:
        return values.get("httpauth." + key)

    enabled = _bool(item) if (item := get("enabled")) is not None else True
    listen = (
        _endpointString(item, DEFAULT_HTTP_LISTEN)
        if (item := get("listen")) is not None
        else DEFAULT_HTTP_LISTEN
    )
    mode = "protect"
    if (item := get("mode")) is not None:
        mode = _string(item, '"protect"')
        if mode not in HTTPAUTH_MODES:
            close = difflib.get_close_matches(mode, HTTPAUTH_MODES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f'{item.where} must be "protect" (serve a directory), "proxy" '
                '(reverse-proxy to upstream) or "forward-auth" (for nginx '
                f"auth_request, Traefik, Caddy), not {mode!r}{hint}"
            )
    directory = None
    if (item := get("directory")) is not None:
        if mode != "protect":
            raise ConfigError(
                f"{item.where}: a directory is only served in protect mode, and "
                f'mode is "{mode}"; remove directory or set mode = "protect"'
            )
        directory = _existingDirectory(
            item,
            '"site"',
            "give the directory of files to serve behind the confirmation, or "
            "remove directory for the built-in demo page",
        )
    upstream = None
    if (item := get("upstream")) is not None:
        if mode != "proxy":
            raise ConfigError(
                f"{item.where}: upstream is only used in proxy mode, and mode "
                f'is "{mode}"; remove upstream or set mode = "proxy"'
            )
        upstream = _httpURL(
            item, "http://127.0.0.1:8000", "the URL of the site to proxy to", False
        )
    elif mode == "proxy":
        raise ConfigError(
            f"{source}: httpauth.upstream is missing; proxy mode forwards "
            'confirmed requests to it: add upstream = "http://127.0.0.1:8000" '
            "to [httpauth]"
        )
    publicOrigin = None
    if (item := get("public_origin")) is not None:
        publicOrigin = _httpURL(
            item,
            "https://www.example.net",
            "the scheme and authority clients use",
            True,
        )
        from xmppcomp.httpauth._target import BadTarget, parseOrigin

        try:
            publicOrigin = str(parseOrigin(publicOrigin))
        except BadTarget as e:
            raise ConfigError(
                f'{item.where}: {e.reason}; give only the scheme and host, such as "https://www.example.net"'
            ) from None
    allowedHosts: tuple[str, ...] = ()
    if (item := get("allowed_hosts")) is not None:
        from xmppcomp.httpauth._target import BadTarget, parseHost

        hosts = []
        for index, entry in enumerate(_stringList(item, '["example.net"]')):
            if entry.count(":") > 1 and not entry.startswith("["):
                # A bare IPv6 address such as ::1 (with a port it needs
                # brackets, and a port is refused below anyway).
                entry = f"[{entry}]"
            try:
                parsed = parseHost(entry)
            except BadTarget as e:
                raise ConfigError(
                    f"{item.where}[{index}]: {entry!r} is not a host name ({e.reason}); "
                    'give names such as "example.net"'
                ) from None
            if parsed.port is not None:
                raise ConfigError(
                    f"{item.where}[{index}]: {entry!r} has a port; give the host "
                    "name only (any port of it is allowed)"
                )
            hosts.append(parsed.host)
        allowedHosts = tuple(hosts)
    if publicOrigin is None and not allowedHosts and enabled:
        if not embedded:
            raise ConfigError(
                f"{source}: [httpauth] needs public_origin (the scheme and "
                'authority users type, such as "https://example.net") or '
                'allowed_hosts (the host names of the site, such as '
                '["example.net"]): the URL a user is asked to confirm is built '
                "from them, never from what the request claims. A component "
                "that runs no confirmer sets enabled = false in [httpauth] "
                "(or --no-httpauth)"
            )
        allowedHosts = LOOPBACK_HOSTS
    trustedProxies: tuple[str, ...] = ("127.0.0.0/8", "::1")
    if (item := get("trusted_proxies")) is not None:
        import ipaddress

        entries = _stringList(item, '["127.0.0.1", "10.0.0.0/8"]') if item.value != [] else []
        for index, entry in enumerate(entries):
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ConfigError(
                    f"{item.where}[{index}]: {entry!r} is not an IP address or "
                    'network; give entries such as "127.0.0.1" or "10.0.0.0/8"'
                ) from None
        trustedProxies = tuple(entry.strip() for entry in entries)
    webServer = "nginx"
    if (item := get("web_server")) is not None:
        from xmppcomp.httpauth._frontend import PROFILES

        webServer = _string(item, '"nginx"')
        if webServer not in PROFILES:
            raise ConfigError(
                f"{item.where} must be one of {', '.join(sorted(PROFILES))} (the web "
                f"server in front of the forward-auth endpoint), not {webServer!r}"
            )
    defaults = HTTPAuthConfig()

    def limit(key: str, attribute: str, integer: bool = True, lowest: int = 1) -> Any:
        """
        The number under C{key}, checked, or L{HTTPAuthConfig}'s default.
        """
        if (item := get(key)) is None:
            return getattr(defaults, attribute)
        return _limit(item, key, {key: (attribute, integer, lowest)}, defaults)

    maxBody = int(limit("max_body", "maxBody", lowest=0))
    maxConnections = int(limit("max_connections", "maxConnections"))
    maxConnectionsPerSource = int(limit("max_connections_per_source", "maxConnectionsPerSource"))
    listenBacklog = int(limit("listen_backlog", "listenBacklog"))
    headTimeout = float(limit("head_timeout", "headTimeout", integer=False, lowest=0))
    serverHeader: str | None = "xmppcomp"
    if (item := get("server_header")) is not None:
        serverHeader = _string(item, '"xmppcomp"') if item.value != "" else None
        if serverHeader is not None and not all(0x20 < ord(c) < 0x7F or c == " " for c in serverHeader):
            raise ConfigError(f"{item.where} must be printable ASCII, or \"\" for no Server header")
    timeout = float(limit("timeout", "timeout", integer=False, lowest=0))
    fromHostname = hostnames[0]
    if (item := get("from")) is not None:
        name = _hostname(item, "the hostname of the component that asks")
        if name not in hostnames:
            raise ConfigError(
                f"{item.where}: {name!r} is not one of the component's "
                f"hostnames ({', '.join(hostnames)}); give one of them (the "
                "confirmation requests come from it)"
            )
        fromHostname = name
    rules = _rules(item) if (item := get("rules")) is not None else _defaultRules()
    limits = Limits(
        **{
            HTTPAUTH_LIMIT_KEYS[key][0]: _limit(
                values["httpauth.limits." + key], key, HTTPAUTH_LIMIT_KEYS, Limits()
            )
            for key in HTTPAUTH_LIMIT_KEYS
            if "httpauth.limits." + key in values
        }
    )
    return HTTPAuthConfig(
        enabled=enabled,
        listen=listen,
        mode=mode,
        directory=directory,
        upstream=upstream,
        publicOrigin=publicOrigin,
        allowedHosts=allowedHosts,
        trustedProxies=trustedProxies,
        webServer=webServer,
        askQuery=_bool(item) if (item := get("ask_query")) is not None else True,
        maxBody=maxBody,
        maxConnections=maxConnections,
        maxConnectionsPerSource=maxConnectionsPerSource,
        listenBacklog=listenBacklog,
        headTimeout=headTimeout,
        serverHeader=serverHeader,
        followSymlinks=_bool(item) if (item := get("follow_symlinks")) is not None else False,
        listDirectories=_bool(item) if (item := get("list_directories")) is not None else False,
        exactResource=_bool(item) if (item := get("exact_resource")) is not None else False,
        timeout=timeout,
        fromHostname=fromHostname,
        rules=rules,
        limits=limits,
        metrics=_bool(item) if (item := get("metrics")) is not None else False,
        serverTiming=_bool(item) if (item := get("server_timing")) is not None else False,
        accessLog=_accessLog(item) if (item := get("access_log")) is not None else "log",
    )


def _accessLog(item: _Value) -> str:
    """
    C{"log"}, C{"none"}, or a file path resolved against the
    configuration's directory, whose directory must exist.
    """
    value = _string(item, '"log"')
    if value in ("log", "none"):
        return value
    path = _path(item, '"/var/log/xmppcomp/access.log"')
    if not os.path.isdir(os.path.dirname(path)):
        raise ConfigError(
            f'{item.where}: the directory of {path} does not exist; give "log" (the '
            f'twistd log), "none", or a file in an existing directory'
        )
    return path


def _xtls(values: Mapping[str, _Value], source: str) -> XTLSConfig:
    """
    The C{[xtls]} table, checked; the certificate, key and trust files are
    read now.
    """
    from xmppcomp.stream import tls

    enabled = (
        _bool(values["xtls.enabled"]) if "xtls.enabled" in values else True
    )
    certificateItem = values.get("xtls.certificate")
    keyItem = values.get("xtls.key")
    trustItem = values.get("xtls.trust")
    certificate = key = trust = None
    if certificateItem is None:
        for item in (keyItem, trustItem):
            if item is not None:
                raise ConfigError(
                    f"{item.where} is given without a certificate; add "
                    'certificate = "xtls.pem" to [xtls] (the component\'s '
                    "certificate for its hostnames)"
                )
    else:
        certificate = _existingFile(
            certificateItem,
            '"xtls.pem"',
            "give the component's PEM certificate for XTLS or fix the path",
        )
        if keyItem is not None:
            key = _existingFile(
                keyItem, '"xtls.key"', "give the certificate's private key or fix the path"
            )
        if trustItem is None:
            raise ConfigError(
                f"{source}: xtls.trust is missing; a peer's certificate cannot "
                'be checked without it: add trust = "xtls-ca.pem" to [xtls] '
                "(a PEM bundle of the authorities that issue the peers' "
                "certificates)"
            )
        trust = _existingFile(
            trustItem,
            '"xtls-ca.pem"',
            "give a PEM bundle of the authorities that issue the peers' "
            "certificates, or fix the path",
        )
        try:
            tls.loadPrivateCertificate(certificate, key)
        except tls.CertificateFileError as e:
            where = keyItem.where if keyItem is not None and e.path == key else certificateItem.where
            raise ConfigError(
                f"{where}: {e}; give the PEM certificate and its unencrypted "
                "private key (key, or in the certificate file)"
            ) from e
        try:
            tls.loadCertificates(trust)
        except tls.CertificateFileError as e:
            raise ConfigError(
                f"{trustItem.where}: {e}; give a PEM bundle of CA certificates"
            ) from e
    limits = XTLSLimits(
        **{
            XTLS_LIMIT_KEYS[name][0]: _limit(
                values["xtls.limits." + name], name, XTLS_LIMIT_KEYS, XTLSLimits()
            )
            for name in XTLS_LIMIT_KEYS
            if "xtls.limits." + name in values
        }
    )
    return XTLSConfig(
        enabled=enabled, certificate=certificate, key=key, trust=trust, limits=limits
    )


def componentConfigFromMapping(
    data: Mapping[str, Any],
    source: str,
    overrides: Mapping[str, Override] | None = None,
    baseDirectory: str | None = None,
) -> ComponentConfig:
    """
    Build and check the component's configuration from a parsed TOML
    document (see C{docs/examples/component.toml} for its keys), with
    C{overrides} winning over the document.

    Without C{component.server}, the component runs against an embedded
    router on loopback (L{xmppcomp.embedded.EmbeddedRouter}), which makes
    its own certificate and secret: C{secret}, C{client_certificate} and
    C{[component.trust]} are then refused, C{server_domain} names the
    embedded router's domain (default C{localhost}), and C{hostnames}
    defaults to C{component.<that domain>}.

    @param data: the document, as L{tomllib.load} returns it.
    @param source: the file it came from, named in error messages.
    @param overrides: dotted TOML keys (L{COMPONENT_OVERRIDE_KEYS}) to
        values given elsewhere, such as on the command line.
    @param baseDirectory: where relative paths of the document resolve;
        by default the directory of C{source}. Relative paths in
        C{overrides} resolve against the current directory.
    @raise ConfigError: unknown keys, wrong types, a secret written inline,
        a malformed endpoint string, a missing or unusable file, a missing
        secret, an inconsistent combination. The message names the file
        and key (or the option) and the fix.
    """
    if baseDirectory is None:
        baseDirectory = os.path.dirname(os.path.abspath(source))
    values = _collectComponent(data, source, baseDirectory)
    overrides = overrides or {}
    if any(key.startswith("component.trust.") for key in overrides):
        for key in list(values):
            if key.startswith("component.trust."):
                del values[key]
    if "xtls.certificate" in overrides or "xtls.key" in overrides:
        # The file's certificate and key go together.
        values.pop("xtls.certificate", None)
        values.pop("xtls.key", None)
    for key, override in overrides.items():
        if key not in COMPONENT_OVERRIDE_KEYS:
            raise ValueError(f"{key!r} cannot be overridden")
        values[key] = _Value(override.value, override.origin, os.getcwd())

    def missing(key: str, fix: str) -> ConfigError:
        return ConfigError(f"{source}: {key} is missing; {fix}")

    protocol = "xep0225"
    if "component.protocol" in values:
        item = values["component.protocol"]
        protocol = _string(item, '"xep0225"')
        if protocol not in ("xep0225", "xep0114"):
            raise ConfigError(
                f'{item.where} must be "xep0225" (jabber:client, TLS, SASL, '
                'hostname bind) or "xep0114" (jabber:component:accept, '
                f"handshake), not {protocol!r}"
            )

    server = None
    if "component.server" in values:
        server = _checkClientEndpoint(values["component.server"], protocol)

    limits = ComponentLimits(
        **{
            COMPONENT_LIMIT_KEYS[key][0]: _limit(
                values["component.limits." + key],
                key,
                COMPONENT_LIMIT_KEYS,
                ComponentLimits(),
            )
            for key in COMPONENT_LIMIT_KEYS
            if "component.limits." + key in values
        }
    )
    requireTLS = (
        _bool(values["component.require_tls"]) if "component.require_tls" in values else True
    )
    embeddedPort = _port(values["embedded.port"]) if "embedded.port" in values else 0
    xtls = _xtls(values, source)

    if server is None:
        for key in (
            "component.secret",
            "component.client_certificate",
            "component.client_key",
            "component.trust.ca_file",
            "component.trust.pinned",
            "component.trust.system",
        ):
            if key in values:
                raise ConfigError(
                    f"{values[key].where}: no server is configured, so the "
                    "component runs against an embedded router that makes its "
                    "own certificate and secret; set component.server "
                    '(e.g. "tcp:host=127.0.0.1:port=5348") to use this, or '
                    "remove it"
                )
        if protocol != "xep0225":
            raise ConfigError(
                f"{values['component.protocol'].where}: the embedded router "
                "(used because no server is configured) speaks XEP-0225; set "
                "component.server to connect to an XEP-0114 server, or use "
                'protocol = "xep0225"'
            )
        serverDomain = (
            _hostname(values["component.server_domain"], "the embedded router's domain")
            if "component.server_domain" in values
            else DEFAULT_EMBEDDED_DOMAIN
        )
        hostnames = (
            _hostnames(values["component.hostnames"])
            if "component.hostnames" in values
            else (f"{DEFAULT_EMBEDDED_HOSTNAME}.{serverDomain}",)
        )
        for index, name in enumerate(hostnames):
            if name == serverDomain:
                where = values["component.hostnames"].where
                raise ConfigError(
                    f"{where}[{index}]: {name!r} is the embedded router's own "
                    "domain, which no component may bind; use a name below it, "
                    f'such as "component.{serverDomain}"'
                )
        identity = (
            _hostname(values["component.identity"], "the domain the component authenticates as")
            if "component.identity" in values
            else hostnames[0]
        )
        return ComponentConfig(
            hostnames=hostnames,
            serverDomain=serverDomain,
            identity=identity,
            requireTLS=requireTLS,
            limits=limits,
            embeddedPort=embeddedPort,
            httpauth=_httpauth(values, source, hostnames, embedded=True),
            xtls=xtls,
            baseDirectory=baseDirectory,
        )

    if "embedded.port" in values:
        raise ConfigError(
            f"{values['embedded.port'].where}: the embedded router only runs "
            "without component.server; remove [embedded] or component.server"
        )
    if "component.server_domain" not in values:
        raise missing(
            "component.server_domain",
            'add server_domain = "example.net" to [component]: the domain of '
            "the server at component.server, which its certificate must carry",
        )
    serverDomain = _hostname(values["component.server_domain"], "the server's domain")
    if "component.hostnames" not in values:
        raise missing(
            "component.hostnames",
            'add hostnames = ["component.example.net"] to [component]: the '
            "names the component binds",
        )
    hostnames = _hostnames(values["component.hostnames"])
    identity = (
        _hostname(values["component.identity"], "the domain the component authenticates as")
        if "component.identity" in values
        else hostnames[0]
    )
    secret = _secretRef(values["component.secret"]) if "component.secret" in values else None
    clientCertificate, clientKey = _clientCertificate(values, source)
    trust = _trust(values, source)
    if protocol == "xep0114":
        if secret is None:
            raise missing(
                "component.secret",
                "an XEP-0114 component authenticates with the shared secret "
                f"the server has for it; add secret = {_SECRET_EXAMPLE} to "
                "[component]",
            )
        for key in ("component.client_certificate", "component.identity"):
            if key in values:
                raise ConfigError(
                    f"{values[key].where}: XEP-0114 has no SASL, so no "
                    "identity or client certificate; remove it, or use "
                    'protocol = "xep0225"'
                )
    elif secret is None and clientCertificate is None:
        raise missing(
            "component.secret",
            f"the component cannot authenticate without a secret or a client "
            f"certificate; add secret = {_SECRET_EXAMPLE} (and store its SCRAM "
            "keys on the server: xmppcomp-credentials FILE add "
            f"{identity}) or client_certificate = \"component.pem\" to [component]",
        )
    return ComponentConfig(
        hostnames=hostnames,
        serverDomain=serverDomain,
        identity=identity,
        server=server,
        protocol=protocol,
        secret=secret,
        clientCertificate=clientCertificate,
        clientKey=clientKey,
        trust=trust,
        requireTLS=requireTLS,
        limits=limits,
        httpauth=_httpauth(values, source, hostnames),
        xtls=xtls,
        baseDirectory=baseDirectory,
    )


def loadComponentConfig(
    path: str, overrides: Mapping[str, Override] | None = None
) -> ComponentConfig:
    """
    Read the component's TOML file (see C{docs/examples/component.toml})
    and build its configuration; relative paths in it resolve against its
    directory.

    @param path: the TOML file.
    @param overrides: see L{componentConfigFromMapping}.
    @raise ConfigError: the file cannot be read or is not valid TOML (the
        message gives the line), or see L{componentConfigFromMapping}.
    """
    data = _readTOML(path)
    return componentConfigFromMapping(data, path, overrides)
