# -*- test-case-name: tests.test_config -*-
"""
Loading the configuration of the twistd plugins from one TOML file merged
with command line options (options win), with cattrs, into the frozen
attrs classes each package defines (L{xmppcomp.router.config},
L{xmppcomp.componentconfig}, L{xmppcomp.httpauth.HTTPAuthConfig},
L{xmppcomp.xtls.XTLSConfig}; importable from here too). The keys are in
C{docs/examples/router.toml} and C{docs/examples/component.toml}.

Relative paths resolve against the directory of the TOML file, those given
on the command line against the current directory. Endpoint strings are
parsed without listening or connecting. Every problem raises
L{ConfigError}, whose message names the file (or the option), the key
(such as C{limits.max_sessions}) and the fix; unknown keys are errors.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import tomllib
from typing import Callable, Iterator, Mapping, TypeVar, cast

import attrs
from cattrs import Converter
from cattrs.errors import ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn, override
from twisted.internet.endpoints import clientFromString, serverFromString
from twisted.internet.interfaces import IHostnameResolver, IReactorPluggableNameResolver
from twisted.words.protocols.jabber import jid
from zope.interface import implementer

from xmppcomp.authz import HostnamePolicy, PolicyError
from xmppcomp.component import directTLSEndpoint
from xmppcomp.componentconfig import (
    DEFAULT_EMBEDDED_DOMAIN, DEFAULT_EMBEDDED_HOSTNAME, PROTOCOLS, SERVER_EXAMPLE, ComponentConfig, ComponentLimits,
    ComponentTrust,
)
from xmppcomp.configvalues import ConfigError, SecretRef
from xmppcomp.httpauth import (
    DEFAULT_HTTP_LISTEN, HTTPAUTH_MODES, LOOPBACK_HOSTS, AccessRule, AccessRules, BadTarget, HTTPAuthConfig, Limits,
    bareJID, checkAccessLog, checkPrefix, ruleDomain,
)
from xmppcomp.jids import InvalidDomain, normalizeDomain
from xmppcomp.router.config import (
    CREATE_CREDENTIALS, DEFAULT_ACCEPT_LISTEN, DEFAULT_ROUTER_LISTEN, RouterConfig, RouterLimits,
)
from xmppcomp.stream import tls
from xmppcomp.stream.sasl.store import CredentialFileError, FileCredentialStore
from xmppcomp.xtls import XTLSConfig, XTLSLimits, parseFingerprint, pinKey

__all__ = [
    "COMPONENT_LIMIT_KEYS", "DEFAULT_ACCEPT_LISTEN", "DEFAULT_EMBEDDED_DOMAIN", "DEFAULT_EMBEDDED_HOSTNAME",
    "DEFAULT_HTTP_LISTEN", "DEFAULT_ROUTER_LISTEN", "HTTPAUTH_LIMIT_KEYS", "HTTPAUTH_MODES", "LOOPBACK_HOSTS",
    "ROUTER_LIMIT_KEYS", "XTLS_LIMIT_KEYS", "ComponentConfig", "ComponentLimits", "ComponentTrust", "ConfigError",
    "HTTPAuthConfig", "Override", "RouterConfig", "RouterLimits", "SecretRef", "XTLSConfig", "XTLSLimits",
    "componentConfigFromMapping", "loadComponentConfig", "loadRouterConfig", "routerConfigFromMapping", "tomlKeys",
]

_T = TypeVar("_T")


@attrs.frozen
class Override:
    """
    A value given outside the TOML file, such as a command line option; it
    wins over the file's value for the same key.

    @ivar value: the value, of the type the TOML key takes; relative paths
        in it resolve against the current directory.
    @ivar origin: how to name it in error messages, e.g. C{"--max-sessions"}.
    """

    value: object
    origin: str


#: The lowest value of integer limits whose lowest is not 1.
_LOWEST = {"maxStanzaSize": 10000, "maxBody": 0}

_SECRET = '{{ file = "{}" }} or {{ env = "{}" }}'


def _snake(name: str) -> str:
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _key(cls: type, a: attrs.Attribute[object]) -> str | None:
    """The TOML key of C{a}, in its table (every other key of L{ComponentConfig} is in C{[component]})."""
    toml = a.metadata.get("toml", "")
    return ("component." if cls is ComponentConfig else "") + _snake(a.name) if toml == "" else toml


def _limitKeys(cls: type) -> Mapping[str, tuple[str, bool, int]]:
    """
    The keys of a table of limits: TOML key to the attribute, whether it is
    an integer (else a number of seconds), and its lowest allowed value.
    """
    return {_snake(a.name): (a.name, a.type is int, _LOWEST.get(a.name, 1 if a.type is int else 0))
            for a in attrs.fields(attrs.resolve_types(cls))}


ROUTER_LIMIT_KEYS = _limitKeys(RouterLimits)
COMPONENT_LIMIT_KEYS = _limitKeys(ComponentLimits)
HTTPAUTH_LIMIT_KEYS = _limitKeys(Limits)
XTLS_LIMIT_KEYS = _limitKeys(XTLSLimits)


def _typeName(value: object) -> str:
    """The TOML name of the type of C{value}, for error messages."""
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array", dict: "a table"}
    return names.get(type(value), f"a {type(value).__name__}")


def _didYouMean(value: str, known: list[str]) -> str:
    close = difflib.get_close_matches(value, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@implementer(IReactorPluggableNameResolver)
class _NoReactor:
    """What endpoint strings are parsed with: endpoints are built, never used."""

    nameResolver = None

    def installNameResolver(self, resolver: IHostnameResolver) -> IHostnameResolver:
        raise NotImplementedError()


class _Loader:
    """
    Structures one TOML document, merged with overrides, into a root class
    with a cattrs L{Converter} of its own, whose hooks know each key.

    @ivar doc: the document, tables of the root class flattened to dotted
        keys (C{tls.certificate}).
    @ivar keys: every dotted key the root class reads, tables included.
    """

    def __init__(self, root: type, data: object, source: str, base: str | None,
                 overrides: Mapping[str, Override] | None) -> None:
        self.source, self.origins = source, {name: given.origin for name, given in (overrides or {}).items()}
        self.base = os.path.dirname(os.path.abspath(source)) if base is None else base
        self.converter = Converter(forbid_extra_keys=True, detailed_validation=False)
        self.prefixes: dict[type, str] = {}
        self.keys: set[str] = set()
        self._register(root, "")
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: the configuration must be a table of keys, not {_typeName(data)}")
        data, given = copy.deepcopy(dict(data)), {name: o.value for name, o in (overrides or {}).items()}
        # An override of the trust replaces the file's; the file's XTLS
        # certificate and key go together.
        drop = ["component.trust"] if any(k.startswith("component.trust.") for k in given) else []
        drop += ["xtls.certificate", "xtls.key"] if {"xtls.certificate", "xtls.key"} & set(given) else []
        for name, value in [(name, None) for name in drop] + list(given.items()):
            if name not in self.keys or name in ("authorization", "accept.secrets", "httpauth.rules"):
                raise ValueError(f"{name!r} cannot be overridden")
            *tables, last = name.split(".")
            node: object = data
            for table in tables:
                node = node.setdefault(table, {}) if isinstance(node, dict) else None
            if isinstance(node, dict) and value is None:
                node.pop(last, None)
            elif isinstance(node, dict):
                node[last] = value
        flat = {k.split(".")[0] for k in self.keys if "." in k and k.split(".")[0] not in self.keys}
        self.doc: dict[str, object] = {}
        for name, value in data.items():
            if name in flat:
                self.doc.update({f"{name}.{sub}": v for sub, v in self._table(name, value).items()})
            else:
                self.doc[name] = value

    def _register(self, cls: type, prefix: str) -> None:
        self.prefixes[cls] = prefix
        fields = {}
        for a in attrs.fields(attrs.resolve_types(cls)):
            local = _key(cls, a)
            fields[a.name] = override(omit=True)
            if local is not None:
                self.keys.add(prefix + local)
                fields[a.name] = override(rename=local, struct_hook=self._hook(cls, a, prefix + local))
        # cattrs types **fields as if they could be its own keywords.
        structure: Callable[[Mapping[str, object], object], object] = make_dict_structure_fn(
            cls, self.converter, **fields)  # type: ignore[arg-type]
        self.converter.register_structure_hook(cls, structure)

    def _hook(self, cls: type, a: attrs.Attribute[object], key: str) -> Callable[[object, object], object]:
        """The cattrs structure hook (value, type) of C{key}, the attribute C{a} of C{cls}."""
        check, kind = a.metadata.get("check"), cast(type, a.type)
        if kind is ComponentTrust:
            self._register(ComponentTrust, key + ".")
            self.keys.add(key + ".system")
        if check:
            hook = getattr(self, check[0])
            return lambda value, _: hook(key, value, *check[1:])
        if attrs.has(kind):
            self._register(kind, key + ".")
            return lambda value, _: self.table(key, value, kind)
        if kind is bool:
            return lambda value, _: self.boolean(key, value)
        assert kind in (int, float), (cls, a.name)
        lowest = _LOWEST.get(a.name, int(kind is int))
        return lambda value, _: self.number(key, value, a.default, kind is int, lowest)

    def table(self, key: str, value: object, kind: type[_T]) -> _T:
        """The table C{value} as C{kind}, whose own checks' C{ValueError} names C{key}."""
        try:
            return self.converter.structure(self._table(key, value), kind)
        except ConfigError:
            raise
        except ValueError as e:
            raise self.error(key, f": {e}") from None

    def structure(self, cls: type[_T]) -> _T:
        try:
            return self.converter.structure(self.doc, cls)
        except ForbiddenExtraKeysError as e:
            raise self.unknown(self.prefixes[e.cl] + sorted(e.extra_fields)[0]) from None

    def unknown(self, key: str) -> ConfigError:
        """The error for an unknown key, with the nearest known key as a hint."""
        table, _, name = key.rpartition(".")
        known = sorted(self.known(table))
        if not table and name in self.known("component"):
            return ConfigError(f"{self.source}: {name!r} is a key of the [component] table; "
                               "move it below a [component] line")
        hint = " (allow_plaintext is a top-level key, above every [table])" if key == "tls.allow_plaintext" \
            else _didYouMean(name, known)
        return ConfigError(f"{self.source}: unknown key {key!r}{hint}; fix its spelling or remove it. "
                           f"Keys allowed in {f'[{table}]' if table else 'the top level'}: {', '.join(known)}")

    def known(self, table: str) -> set[str]:
        """The keys of C{table} (C{""}: the top level)."""
        start = table + "." if table else ""
        return {k[len(start):].split(".")[0] for k in self.keys if k.startswith(start)}

    def given(self, key: str) -> str | None:
        """
        The option that gave C{key} (possibly with an index, C{listen[1]}),
        named as in a message, or C{None} if the file did.
        """
        for name, origin in self.origins.items():
            if key == name or key.startswith((name + "[", name + ".")):
                return origin + key[len(name):]
        return None

    def where(self, key: str) -> str:
        """How to name C{key} in a message: the option or the file, and the key."""
        return self.given(key) or f"{self.source}: {key}"

    def error(self, key: str, text: str) -> ConfigError:
        """An error about C{key}; C{text} follows its name (C{" must be ..."})."""
        return ConfigError(self.where(key) + text)

    def missing(self, key: str, fix: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key} is missing; {fix}")

    # Hooks: each takes the dotted key and the value, then what
    # parameterises it (an example, the fix), and returns the value to store.

    def _table(self, key: str, value: object) -> Mapping[str, object]:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{self.source}: {key} must be a table ([{key}] with keys below it), "
                              f"not {_typeName(value)}")
        return value

    def boolean(self, key: str, value: object) -> bool:
        if not isinstance(value, bool):
            raise self.error(key, f" must be true or false, not {_typeName(value)}")
        return value

    def number(self, key: str, value: object, default: object, integer: bool, lowest: int) -> int | float:
        name = key.rsplit(".", 1)[-1]
        if integer:
            if type(value) is not int:
                raise self.error(key, f" must be an integer, not {_typeName(value)}; write it as, for example, "
                                 f"{name} = {default}")
            if value < lowest:
                why = " (RFC 6120 section 13.12: stanzas up to 10000 bytes must pass)" if lowest == 10000 else ""
                raise self.error(key, f" must be at least {lowest}{why}, not {value}; raise it (the default is "
                                 f"{default})")
            return value
        if type(value) is not int and type(value) is not float:
            raise self.error(key, f" must be a number of seconds, not {_typeName(value)}; write it as, for "
                             f"example, {name} = {default:g}")
        if not 0 < value < float("inf"):
            raise self.error(key, f" must be a finite number of seconds above 0, not {value}; raise it (the "
                             f"default is {default:g})")
        return float(value)

    def string(self, key: str, value: object, example: str) -> str:
        if not isinstance(value, str) or not value.strip():
            kind = "empty" if value == "" else "blank" if isinstance(value, str) else _typeName(value)
            raise self.error(key, f" must be a non-empty string, not {kind}; write it as {example}")
        return value

    def array(self, key: str, value: object, what: str, example: str, entry: Callable[[str, object], _T],
              nonEmpty: bool = False) -> tuple[_T, ...]:
        """The array C{value} of C{what} (such as C{example}), each item given to C{entry} with its key (C{KEY[i]})."""
        if not isinstance(value, list) or (nonEmpty and not value):
            kind = f'a single string; write it as ["{value}"]' if isinstance(value, str) else \
                "an empty array" if value == [] else _typeName(value)
            some = "a non-empty" if nonEmpty else "an"
            raise self.error(key, f" must be {some} array of {what} such as {example}, not {kind}")
        return tuple(entry(f"{key}[{i}]", item) for i, item in enumerate(value))

    def parsedStrings(self, key: str, value: object, parse: Callable[[str], _T], what: str, example: str,
                      fix: str = "", items: str = "strings") -> tuple[_T, ...]:
        """The array of C{items} C{value} (such as C{example}), each read by C{parse} as in L{parsed}."""
        return self.array(key, value, items, f'["{example}"]', lambda at, item: self.parsed(at, item, parse, what,
                                                                                            example, fix))

    def parsed(self, key: str, value: object, parse: Callable[[str], _T], what: str, example: str,
               fix: str = "", entry: bool = False) -> _T:
        """
        The string C{value} (an C{entry} of an array may be empty) read by
        C{parse}, whose C{ValueError} becomes C{KEY: 'VALUE' is not WHAT
        (WHY); FIX} (by default: give WHAT, such as "EXAMPLE"); without
        C{what}, C{KEY: WHY[; FIX]} (C{parse}'s reasons name the value).
        """
        if not (entry and isinstance(value, str)):
            value = self.string(key, value, f'"{example}"')
        try:
            return parse(value)
        except (ValueError, jid.InvalidFormat) as e:
            why = e.reason if isinstance(e, (InvalidDomain, BadTarget)) else str(e)
            if what:
                why, fix = f"{value!r} is not {what} ({why})", fix or f'give {what}, such as "{example}"'
            raise self.error(key, f": {why}" + (f"; {fix}" if fix else "")) from None

    def optional(self, key: str, value: object, parse: Callable[[str], _T], what: str, example: str,
                 fix: str) -> _T | None:
        """The same as L{parsed}, where C{""} is C{None} (none)."""
        return None if value == "" else self.parsed(key, value, parse, what, example, fix)

    def choice(self, key: str, value: object, choices: Mapping[str, str]) -> str:
        value = self.string(key, value, f'"{next(iter(choices))}"')
        if value not in choices:
            options = [f'"{c}" ({what})' for c, what in choices.items()]
            raise self.error(key, f" must be {', '.join(options[:-1])} or {options[-1]}, not {value!r}"
                             f"{_didYouMean(value, list(choices))}")
        return value

    def domain(self, key: str, value: object, what: str, example: str = "component.example.net") -> str:
        return self.parsed(key, value, normalizeDomain, "a domain", example, what)

    def hostnames(self, key: str, value: object) -> tuple[str, ...]:
        names = self.array(key, value, "hostnames", '["component.example.net"]', lambda at, item: self.domain(
            at, item, "a hostname the component binds"), nonEmpty=True)
        for i, name in enumerate(names):
            if name in names[:i]:
                raise self.error(f"{key}[{i}]", f": the hostname {name!r} is listed twice; remove one")
        return names

    def endpoint(self, key: str, value: object, example: str, client: str = "", entry: bool = False) -> str:
        """A server endpoint string, or with C{client} (the protocol) a client one (C{tls:} becomes C{ssl:})."""
        if entry and not isinstance(value, str):
            raise self.error(key, f' must be an endpoint string such as "{example}", not {_typeName(value)}')
        def parse(text: str) -> str:
            try:
                if client:
                    clientFromString(_NoReactor(), directTLSEndpoint(text, client) or text)
                else:
                    serverFromString(_NoReactor(), text)
            except Exception as e:
                raise ValueError(f"{type(e).__name__}: {e}") from e
            return text
        other = '"tls:host=xmpp.example.net:port=5223" (direct TLS)' if client else \
            '"ssl:8443:privateKey=key.pem:certKey=cert.pem" (TLS; Twisted\'s endpoint strings)'
        return self.parsed(key, value, parse, f"a valid {'client' if client else 'server'} endpoint string", example,
                           f'write it as, for example, "{example}" ({"STARTTLS" if client else "loopback only"}) or '
                           f"{other}", entry)

    def endpoints(self, key: str, value: object, example: str) -> tuple[str, ...]:
        return self.array(key, value, "endpoint strings", f'["{example}"]',
                          lambda at, item: self.endpoint(at, item, example, entry=True))

    def path(self, key: str, value: object, example: str) -> str:
        base = self.base if self.given(key) is None else os.getcwd()
        return os.path.normpath(os.path.join(base, os.path.expanduser(self.string(key, value, example))))

    def file(self, key: str, value: object, example: str, fix: str, orFix: str = " or fix the path",
             kind: str = "regular file") -> str:
        """The path C{value} of an existing file of that C{kind} (C{"regular file"} or C{"directory"})."""
        path = self.path(key, value, f'"{example}"')
        if not (os.path.isdir if kind == "directory" else os.path.isfile)(path):
            what = f"{path} is not a {kind}" if os.path.exists(path) else f"the {kind.split()[-1]} {path} does not exist"
            raise self.error(key, f": {what}; {fix}{orFix}")
        return path

    def directory(self, key: str, value: object, example: str, fix: str) -> str:
        return self.file(key, value, example, fix, "", "directory")

    def secret(self, key: str, value: object, who: str, file: str, env: str) -> SecretRef:
        example = _SECRET.format(file, env)
        if isinstance(value, str):
            raise self.error(key, f": a secret is never written in the configuration; put it in a file readable only "
                             f'by the {who} and write {{ file = "{file}" }}, or put it in an environment variable and '
                             'write { env = "VARIABLE" }')
        if not isinstance(value, Mapping):
            raise self.error(key, f" must be {example}, not {_typeName(value)}")
        unknown = sorted(set(value) - {"file", "env"})
        if unknown or len(value) != 1:
            first = f"unknown key {unknown[0]!r}; the only keys are 'file' and 'env'" if unknown else \
                "give exactly one of 'file' or 'env'"
            raise self.error(key, f": {first}: {example}")
        if "file" in value:
            fix = "write the secret on its first line (mode 0600)"
            return SecretRef(file=self.file(key + ".file", value["file"], file, fix), what=self.where(key))
        return SecretRef(env=self.string(key + ".env", value["env"], f'"{env}"'), what=self.where(key))

    def keyed(self, key: str, value: object, parse: Callable[[str], str], what: str, example: str, fix: str,
              twice: str) -> Iterator[tuple[str, str, object]]:
        """The entries (C{KEY."NAME"}, NAME read by C{parse}, value) of the table C{value}; C{twice} refuses repeats."""
        seen: set[str] = set()
        for given, item in self._table(key, value).items():
            where = f'{key}."{given}"'
            name = self.parsed(where, given, parse, what, example, fix)
            if name in seen:
                raise self.error(where, ": " + twice.format(repr(name)))
            seen.add(name)
            yield where, name, item

    def secrets(self, key: str, value: object) -> dict[str, SecretRef]:
        entries = self.keyed(key, value, normalizeDomain, "a hostname", "component.example.net",
                             "each key is the hostname of an XEP-0114 component", "the hostname {} is listed twice")
        return {name: self.secret(where, ref, "router", f"{name}.secret", "LEGACY_SECRET")
                for where, name, ref in entries}

    def authorization(self, key: str, value: object) -> dict[str, tuple[str, ...]]:
        table = cast(Mapping[str, list[str]], self._table(key, value))  # fromConfig checks the patterns' types
        try:
            HostnamePolicy.fromConfig(table)
        except PolicyError as e:
            raise self.error(key, f': {e}; each entry is "identity" = ["hostname", "*.domain", ...]') from e
        return {identity: tuple(patterns) for identity, patterns in table.items()}

    def certificates(self, certKey: str, cert: str | None, keyKey: str, key: str | None, fix: str,
                     keyExample: str) -> None:
        """
        Check that C{cert} and C{key} (or C{cert} alone) hold a certificate
        and its unencrypted private key (L{tls.loadPrivateCertificate}).
        """
        if cert is None and key is not None:
            raise self.error(keyKey, f" is given without a certificate; add {fix}")
        try:
            if cert is not None:
                tls.loadPrivateCertificate(cert, key)
        except tls.CertificateFileError as e:
            at = keyKey if key is not None and e.path == key else certKey
            hint = f"; or give its private key with {keyKey} = {keyExample}" if key is None else ""
            raise self.error(at, f": {e}; give the PEM certificate and its unencrypted private key{hint}") from e

    def credentials(self, key: str, path: str | None) -> None:
        """
        Check that the credentials file at C{path} can be read and is well
        formed (L{FileCredentialStore.load}; a file that does not exist is
        refused before, by L{file}).
        """
        if path is None:
            return
        try:
            FileCredentialStore(path).load()
        except CredentialFileError as e:
            raise self.error(key, f": {e}; fix it there, or move the file away and add the domains again "
                             "(xmppcomp-credentials FILE add DOMAIN)") from e
        except OSError as e:
            raise self.error(key, f": cannot read {path}: {e.strerror}; make it readable by the router") from e

    def authorities(self, key: str, path: str | None) -> None:
        try:
            if path is not None:
                tls.loadCertificates(path)
        except tls.CertificateFileError as e:
            raise self.error(key, f": {e}; give a PEM bundle of CA certificates") from e

    def pins(self, key: str, value: object) -> dict[str, tuple[str, ...]]:
        """
        The XTLS pins: bare JIDs (or domains) to SHA-256 fingerprints, one
        string or an array of them (old and new, while a user rotates),
        normalised as the logs print them (L{tls.formatFingerprint}).
        """
        example = '"AB:CD:...:EF" (64 hex digits, the colons optional)'
        def fingerprints(where: str, given: object) -> tuple[str, ...]:
            given = [given] if isinstance(given, str) else given
            if not isinstance(given, list) or not given:
                kind = "an empty array" if given == [] else _typeName(given)
                raise self.error(where, f" must be a fingerprint {example} or an array of them, not {kind}")
            fix = f"give the fingerprint as {example}, as the XTLS log or `openssl x509 -noout -fingerprint -sha256` " \
                "prints it"
            return tuple(dict.fromkeys(
                tls.formatFingerprint(self.parsed(f"{where}[{i}]", text, parseFingerprint, "a SHA-256 fingerprint",
                                                  "AB:CD:...:EF", fix)) for i, text in enumerate(given)))
        entries = self.keyed(key, value, pinKey, "a bare JID or a domain", "alice@example.net",
                             'each key is a bare JID or a domain, such as "alice@example.net" = "AB:CD:..."',
                             "{} is pinned twice (keys are compared as bare JIDs); merge the fingerprints into one "
                             "array")
        return {bare: fingerprints(where, given) for where, bare, given in entries}

    def trust(self, key: str, value: object) -> ComponentTrust:
        table = self._table(key, value)
        given = [k for k in ("ca_file", "pinned", "system") if k in table]
        if len(given) > 1:
            raise self.error(f"{key}.{given[1]}", ": give exactly one of ca_file, pinned or system = true "
                             f"in [component.trust], not both {given[0]} and {given[1]}; remove one")
        if given == ["system"] and not self.boolean(f"{key}.system", table["system"]):
            raise self.error(f"{key}.system", ' = false leaves nothing to trust; give ca_file = "ca.pem" '
                             'or pinned = "server.pem" instead, or system = true')
        trust = self.converter.structure({k: v for k, v in table.items() if k != "system"}, ComponentTrust)
        try:
            trust.load()
        except tls.CertificateFileError as e:
            raise self.error(f"{key}.{given[0]}", f": {e}; give the server's certificate or its "
                             "authorities in PEM") from e
        return trust

    def rules(self, key: str, value: object) -> AccessRules:
        example = ('[[httpauth.rules]] prefix = "/", jids = ["alice@example.net"], '
                   'domains = ["example.net"], anyone = false')
        if not isinstance(value, list) or not value:
            raise self.error(key, f" must be a non-empty array of tables, each written as {example}; "
                             "remove it to let any JID through")
        rules: list[AccessRule] = []
        for at, rule in ((f"{key}[{i}]", rule) for i, rule in enumerate(value)):
            if not isinstance(rule, Mapping):
                raise self.error(at, f" must be a table, not {_typeName(rule)}; write each rule as {example}")
            keys = ["anyone", "domains", "jids", "prefix", "require_xtls"]
            for name in sorted(set(rule) - set(keys)):
                raise self.error(at, f": unknown key {name!r}{_didYouMean(name, keys)}; the keys of a rule are "
                                 "prefix, jids, domains, anyone and require_xtls")
            if "prefix" not in rule:
                raise self.error(at, ': prefix is missing; add prefix = "/" (the URL path the rule covers, '
                                 "and everything below it)")
            given = rule["prefix"]
            fix = f'write it as "/{given}"' if isinstance(given, str) and given[:1] != "/" else \
                'give the URL path the rule covers as requests are read, such as "/docs/"'
            prefix = self.parsed(f"{at}.prefix", given, checkPrefix, "a URL path", "/", fix)
            if any(other.prefix == prefix for other in rules):
                raise self.error(at, f": another rule has the prefix {prefix!r}; merge the two")
            jids = self.parsedStrings(f"{at}.jids", rule.get("jids", []), bareJID, "a JID", "alice@example.net",
                                      'give bare JIDs such as "alice@example.net"')
            domains = self.parsedStrings(f"{at}.domains", rule.get("domains", []), ruleDomain, "a domain",
                                         "example.net", 'give domains (every JID at them is allowed), such as '
                                         '"example.net"')
            xtls = rule.get("require_xtls", False)
            xtlsFor = [] if isinstance(xtls, bool) else self.parsedStrings(
                f"{at}.require_xtls", xtls, bareJID, "a bare JID or a domain", "alice@example.net",
                'give true (every JID of the rule), or bare JIDs and domains such as "alice@example.net"')
            rules.append(AccessRule(prefix, jids=jids, domains=domains,
                                    anyone=self.boolean(f"{at}.anyone", rule.get("anyone", False)),
                                    requireXTLS=xtls is True, xtlsFor=xtlsFor))
        return AccessRules(rules)

    def accessLog(self, key: str, value: object) -> str:
        text = self.string(key, value, '"log"')
        try:
            return checkAccessLog(text if text in ("log", "none") else self.path(key, value, '"access.log"'))
        except ValueError as e:
            raise self.error(key, f': {e}; give "log" (the twistd log), "none", or a file in an existing '
                             "directory") from None

    def port(self, key: str, value: object) -> int:
        if type(value) is not int or not 0 <= value <= 65535:
            raise self.error(key, f" must be a TCP port number from 0 to 65535 (0: any free port), not {value!r}")
        return value


def tomlKeys(root: type) -> Mapping[str, frozenset[str]]:
    """The keys of each table of the TOML file of C{root} (L{RouterConfig} or L{ComponentConfig}; C{""}: the top)."""
    loader = _Loader(root, {}, "", None, None)
    tables = {""} | {k.rpartition(".")[0] for k in loader.keys}
    return {table: frozenset(loader.known(table)) for table in tables}


def routerConfigFromMapping(data: Mapping[str, object], source: str, overrides: Mapping[str, Override] | None = None,
                            baseDirectory: str | None = None) -> RouterConfig:
    """
    Build and check the router's configuration from a parsed TOML document
    (see C{docs/examples/router.toml} for its keys).

    @param data: the document, as L{tomllib.load} returns it.
    @param source: the file it came from, named in error messages.
    @param overrides: dotted TOML keys (C{"limits.max_sessions"}) to values
        that win over the document's (a list replaces the document's).
    @param baseDirectory: where relative paths of the document resolve (by
        default the directory of C{source}).
    @raise ConfigError: any problem with a key or between keys.
    @raise ValueError: an override of a key that cannot be overridden.
    """
    loader = _Loader(RouterConfig, data, source, baseDirectory, overrides)
    if "domain" not in loader.doc:
        raise loader.missing("domain", 'add domain = "example.net" (the router\'s own domain) at the top')
    config: RouterConfig = loader.structure(RouterConfig)
    add = 'add tls.certificate = "router.pem"'
    if config.certificate is None and config.key is not None:
        raise loader.missing("tls.certificate", f"tls.key is given without a certificate; {add}")
    loader.certificates("tls.certificate", config.certificate, "tls.key", config.key, add, '"router.key"')
    loader.authorities("tls.client_cas", config.clientCAs)
    loader.credentials("credentials", config.credentials)
    if config.clientCAs is not None and config.certificate is None:
        raise loader.missing("tls.certificate", f"tls.client_cas (SASL EXTERNAL) needs TLS; {add}")
    if not config.listen and not config.acceptSecrets:
        raise ConfigError(f'{source}: nothing to serve: listen is empty and accept.secrets has no component; '
                          'give listen = ["tcp:5348:interface=127.0.0.1"] or XEP-0114 components in [accept.secrets]')
    if config.listen and config.certificate is None and not config.allowPlaintext:
        raise loader.missing("tls.certificate", 'XEP-0225 components need TLS: add [tls] certificate = "router.pem" '
                             'and key = "router.key" (allow_plaintext = true turns TLS off, for tests only)')
    if config.listen and config.credentials is None and config.clientCAs is None:
        raise loader.missing("credentials", "XEP-0225 components cannot authenticate without it (or "
                             f'tls.client_cas); add credentials = "credentials.json" and {CREATE_CREDENTIALS}')
    return config


def componentConfigFromMapping(data: Mapping[str, object], source: str, overrides: Mapping[str, Override] | None = None,
                               baseDirectory: str | None = None) -> ComponentConfig:
    """
    The same as L{routerConfigFromMapping}, for the component (see
    C{docs/examples/component.toml}).

    Without C{component.server}, the component runs against an embedded
    router on loopback (L{xmppcomp.embedded.EmbeddedRouter}), which makes
    its own certificate and secret: C{secret}, C{client_certificate} and
    C{[component.trust]} are then refused, C{server_domain} names the
    embedded router's domain (default C{localhost}), and C{hostnames}
    defaults to C{component.<that domain>}. An override of any
    C{component.trust.*} key replaces the file's whole C{[component.trust]}
    table; one of C{xtls.certificate} or C{xtls.key} replaces both of the
    file's; C{component.secret} takes C{{"file": PATH}} or C{{"env": NAME}}.
    """
    loader = _Loader(ComponentConfig, data, source, baseDirectory, overrides)
    doc = loader.doc
    embedded = "component.server" not in doc
    protocol = loader.choice("component.protocol", doc.get("component.protocol", "xep0225"), PROTOCOLS)
    if not embedded:
        loader.endpoint("component.server", doc["component.server"], SERVER_EXAMPLE.strip('"'), protocol)
        if protocol == "xep0114":
            # Before any file is read: what XEP-0114 cannot use is the
            # error to fix first, not a missing file it would not use.
            _acceptKeys(loader, str(doc["component.server"]))
    if embedded:
        trust = doc.get("component.trust")
        present: list[str] = [k for k in ("component.secret", "component.client_certificate", "component.client_key")
                              if k in doc]
        present += [f"component.trust.{k}" for k in trust if k in loader.known("component.trust")] \
            if isinstance(trust, dict) else []
        if present:
            raise loader.error(present[0], ": no server is configured, so the component runs against an embedded "
                               "router that makes its own certificate and secret; set component.server (e.g. "
                               f"{SERVER_EXAMPLE}) to use this, or remove it")
        domain = loader.domain("component.server_domain", doc.setdefault(
            "component.server_domain", DEFAULT_EMBEDDED_DOMAIN), "the embedded router's domain")
        doc.setdefault("component.hostnames", [f"{DEFAULT_EMBEDDED_HOSTNAME}.{domain}"])
    elif "embedded.port" in doc:
        raise loader.error("embedded.port", ": the embedded router only runs without component.server; "
                           "remove [embedded] or component.server")
    elif "component.server_domain" not in doc:
        raise loader.missing("component.server_domain", 'add server_domain = "example.net" to [component]: '
                             "the domain of the server at component.server, which its certificate must carry")
    elif "component.hostnames" not in doc:
        raise loader.missing("component.hostnames", 'add hostnames = ["component.example.net"] to '
                             "[component]: the names the component binds")
    doc.setdefault("component.identity", loader.hostnames("component.hostnames", doc["component.hostnames"])[0])
    config: ComponentConfig = loader.structure(ComponentConfig)
    if embedded and config.protocol != "xep0225":
        raise loader.error("component.protocol", ": the embedded router (used because no server is configured) "
                           "speaks XEP-0225; set component.server to connect to an XEP-0114 server, or use "
                           'protocol = "xep0225"')
    if embedded and config.serverDomain in config.hostnames:
        raise loader.error(f"component.hostnames[{config.hostnames.index(config.serverDomain)}]",
                           f": {config.serverDomain!r} is the embedded router's own domain, which no component "
                           f'may bind; use a name below it, such as "component.{config.serverDomain}"')
    secretExample = _SECRET.format("component.secret", "COMPONENT_SECRET")
    if not embedded and config.protocol == "xep0114":
        if config.secret is None:
            raise loader.missing("component.secret", "an XEP-0114 component authenticates with the shared "
                                 f"secret the server has for it; add secret = {secretExample} to [component]")
    elif not embedded and config.secret is None and config.clientCertificate is None:
        raise loader.missing("component.secret", "the component cannot authenticate without a secret or a "
                             f"client certificate; add secret = {secretExample} (and store its SCRAM keys on "
                             f"the server: xmppcomp-credentials FILE add {config.identity}) or "
                             'client_certificate = "component.pem" to [component]')
    loader.certificates("component.client_certificate", config.clientCertificate, "component.client_key",
                        config.clientKey, 'client_certificate = "component.pem" to [component]', '"component.key"')
    xtls = config.xtls
    if xtls.certificate is None and xtls.trust is not None:
        raise loader.error("xtls.trust", ' is given without a certificate; add certificate = "xtls.pem" to '
                           "[xtls] (the component's certificate for its hostnames)")
    if xtls.certificate is not None and xtls.trust is None and not xtls.pins:
        raise loader.missing("xtls.trust", "a peer's certificate cannot be checked without it: add trust = "
                             "\"xtls-ca.pem\" to [xtls] (a PEM bundle of the authorities that issue the "
                             "peers' certificates), or pin the peers' fingerprints in [xtls.pins]")
    loader.certificates("xtls.certificate", xtls.certificate, "xtls.key", xtls.key,
                        'certificate = "xtls.pem" to [xtls]', '"xtls.key"')
    loader.authorities("xtls.trust", xtls.trust)
    return attrs.evolve(config, httpauth=_httpauth(loader, config, embedded), baseDirectory=loader.base)


def _acceptKeys(loader: _Loader, server: str) -> None:
    """
    The checks of an XEP-0114 component's keys: no SASL (so no identity or
    client certificate); over plain TCP no TLS (so no explicit
    C{require_tls = true}, which is the default, and no CA file or pinned
    certificate; C{system = true}, the default, names no file).
    """
    doc, trust = loader.doc, loader.doc.get("component.trust")
    direct = 'connect with direct TLS if the server offers it (server = "tls:host=HOST:port=PORT", checked ' \
             "against [component.trust])"
    if not server.startswith("tls:") and doc.get("component.require_tls") is True:
        raise loader.error("component.require_tls", ': protocol = "xep0114" over plain TCP has no TLS to '
                           "require: the stream and the handshake's digest of the secret cross the network in "
                           "clear. Remove require_tls (or set it to false to say you know), or " + direct)
    files = [k for k in ("ca_file", "pinned") if k in trust] if isinstance(trust, dict) else []
    if not server.startswith("tls:") and files:
        raise loader.error(f"component.trust.{files[0]}", ': protocol = "xep0114" over plain TCP checks no '
                           "certificate; remove [component.trust], or " + direct)
    for key in ("component.client_certificate", "component.client_key", "component.identity"):
        if key in doc:
            raise loader.error(key, ": XEP-0114 has no SASL, so no identity or client certificate; "
                               'remove it, or use protocol = "xep0225"')


def _httpauth(loader: _Loader, config: ComponentConfig, embedded: bool) -> HTTPAuthConfig:
    """The checks of C{[httpauth]} that involve several keys, and its defaults that depend on others."""
    httpauth = config.httpauth
    if httpauth.metrics and not httpauth.enabled:
        raise loader.error("httpauth.metrics", ": /metrics is served on the HTTP-auth listener, which is off ([httpauth] "
                           "enabled = false or --no-httpauth); turn it on, or leave out [httpauth] metrics = true and "
                           "--metrics")
    mode = f'mode is "{httpauth.mode}"; remove'
    if httpauth.directory is not None and httpauth.mode != "protect":
        raise loader.error("httpauth.directory", f": a directory is only served in protect mode, and {mode} "
                           'directory or set mode = "protect"')
    if httpauth.upstream is not None and httpauth.mode != "proxy":
        raise loader.error("httpauth.upstream", f": upstream is only used in proxy mode, and {mode} upstream "
                           'or set mode = "proxy"')
    if httpauth.upstream is None and httpauth.mode == "proxy":
        raise loader.missing("httpauth.upstream", 'proxy mode forwards confirmed requests to it: add upstream = '
                             '"http://127.0.0.1:8000" to [httpauth]')
    allowedHosts = httpauth.allowedHosts
    if httpauth.publicOrigin is None and not allowedHosts and httpauth.enabled:
        if not embedded:
            raise ConfigError(
                f"{loader.source}: [httpauth] needs public_origin (the scheme and authority users type, such "
                'as "https://example.net") or allowed_hosts (the host names of the site, such as '
                '["example.net"]): the URL a user is asked to confirm is built from them, never from what '
                "the request claims. A component that runs no confirmer sets enabled = false in [httpauth] "
                "(or --no-httpauth)")
        allowedHosts = LOOPBACK_HOSTS
    if httpauth.fromHostname not in (None, *config.hostnames):
        raise loader.error("httpauth.from", f": {httpauth.fromHostname!r} is not one of the component's "
                           f"hostnames ({', '.join(config.hostnames)}); give one of them (the confirmation "
                           "requests come from it)")
    _requireXTLS(loader, config, embedded)
    return attrs.evolve(httpauth, allowedHosts=allowedHosts, fromHostname=httpauth.fromHostname or config.hostnames[0])


def _requireXTLS(loader: _Loader, config: ComponentConfig, embedded: bool) -> None:
    """
    The checks of access rules with C{require_xtls}: the XTLS endpoint must
    be on, with a certificate (made by the embedded router when there is
    one), and no shared store (a tunnel lives in the instance that opened
    it, and the server may deliver its data to another).
    """
    httpauth = config.httpauth
    rules = [i for i, rule in enumerate(httpauth.rules.rules) if rule.requireXTLS or rule.xtlsFor]
    if not httpauth.enabled or not rules:
        return
    at = f"httpauth.rules[{rules[0]}].require_xtls"
    why = ": confirmations through XTLS go through the component's XTLS endpoint"
    if httpauth.store.redis is not None:
        raise loader.error(at, ": confirmations through XTLS cannot be shared by several confirmers: a tunnel's "
                           "TLS state lives in the instance that opened it, and the server may deliver the "
                           "user's tunnel data to another; remove [httpauth.store] redis (run one confirmer, "
                           "or keep the XTLS-only paths on one), or remove require_xtls")
    if not config.xtls.enabled:
        raise loader.error(at, f"{why}, which is off ([xtls] enabled = false or --no-xtls); turn it on, or "
                           "remove require_xtls")
    if not embedded and config.xtls.certificate is None:
        raise loader.error(at, f"{why}, which has no certificate; add certificate = \"xtls.pem\" and trust = "
                           "\"xtls-ca.pem\" (or [xtls.pins]) to [xtls], or remove require_xtls")


def _readTOML(path: str) -> dict[str, object]:
    """
    Read and parse a TOML file.

    @raise ConfigError: it cannot be read or is not valid TOML (the message gives the line).
    """
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the configuration file: {e.strerror}; check the path "
                          "given with --config") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}; fix the syntax there") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 ({e}); save it as UTF-8") from e


def loadRouterConfig(path: str, overrides: Mapping[str, Override] | None = None) -> RouterConfig:
    """
    Read the router's TOML file C{path} and build its configuration (see
    L{routerConfigFromMapping}, and L{_readTOML} for what the file itself
    may raise); relative paths in it resolve against its directory.
    """
    return routerConfigFromMapping(_readTOML(path), path, overrides)


def loadComponentConfig(path: str, overrides: Mapping[str, Override] | None = None) -> ComponentConfig:
    """The same as L{loadRouterConfig}, for the component's file (see L{componentConfigFromMapping})."""
    return componentConfigFromMapping(_readTOML(path), path, overrides)
