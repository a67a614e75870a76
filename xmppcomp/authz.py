# -*- test-case-name: tests.test_authz -*-
"""
Which hostnames each authenticated identity may bind (XEP-0225 section 4).

A component authenticates with SASL as a domain, its I{identity}; it then
asks to bind hostnames. L{HostnamePolicy} answers, for one identity and one
hostname, whether the bind is allowed; the router answers C{not-allowed}
when it is not.

This module is pure logic: it imports nothing from C{twisted.internet}.

Names are compared in the package's one normal form of names (see
L{canonicalHostname} and L{xmppcomp.jids.normalizeDomain}): lowercase,
every label in its ASCII form (IDNA), so C{"B\\u00dcCHER.example"},
C{"b\\u00fccher.example"} and C{"xn--bcher-kva.example"} are the same
name. A single trailing dot is ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

import attrs

from xmppcomp.jids import MAX_DOMAIN_LENGTH, InvalidDomain, normalizeDomain

#: The longest hostname accepted, in octets of its ASCII form, without a
#: trailing dot (L{xmppcomp.jids.MAX_DOMAIN_LENGTH}).
MAX_HOSTNAME_LENGTH = MAX_DOMAIN_LENGTH


class PolicyError(ValueError):
    """
    A hostname policy cannot be built: an identity that is not a domain, a
    pattern that is malformed or too broad, or a value of the wrong type.
    The message names the identity and the pattern at fault.
    """


def _labels(name: str) -> tuple[str, ...]:
    """
    The canonical labels of the hostname C{name} (L{canonicalHostname}).

    @raise InvalidDomain: (a L{ValueError}) C{name} is not a valid hostname.
    """
    return tuple(normalizeDomain(name).split("."))


def canonicalHostname(name: str) -> str:
    """
    The form in which L{HostnamePolicy} compares hostnames: the package's
    one normal form of names (L{xmppcomp.jids.normalizeDomain}), every
    label in its ASCII (A-label) form, lowercase, no trailing dot.

    @param name: a hostname, in Unicode or ASCII form, any case.
    @return: e.g. C{"xn--bcher-kva.example"} for C{"B\\u00fccher.Example."}.
    @raise InvalidDomain: (a L{ValueError}) C{name} is not a valid
        hostname (see L{xmppcomp.jids.normalizeDomain}); the message names
        it.
    """
    return ".".join(_labels(name))


@attrs.frozen
class HostnamePattern:
    """
    One hostname pattern: an exact name, or a wildcard that matches the
    names below a domain.

    A wildcard C{*.example.com} matches every name with at least one more
    label than C{example.com} under it: C{a.example.com} and also
    C{a.b.example.com} (any depth; unlike a certificate wildcard, it is
    not limited to one label, because a component that owns a subdomain
    is usually trusted with the whole tree under it). It never matches
    C{example.com} itself: list that name too if it is wanted.

    @ivar labels: the canonical labels of the name (of the suffix, for a
        wildcard), see L{canonicalHostname}.
    @ivar wildcard: whether this is a C{*.} wildcard.
    """

    labels: tuple[str, ...]
    wildcard: bool

    @classmethod
    def parse(cls, text: str) -> HostnamePattern:
        """
        Parse a pattern: C{"chat.example.com"} or C{"*.example.com"}.

        @raise PolicyError: the pattern is a bare C{*} (it would allow every
            name), has a C{*} anywhere but as the whole first label, or is
            not a valid hostname. The message names the pattern.
        """
        if not isinstance(text, str):
            raise PolicyError(
                f"a hostname pattern must be a string, not {type(text).__name__}: "
                f"{text!r}"
            )
        if text in ("*", "*."):
            raise PolicyError(
                f"the hostname pattern {text!r} is refused: it would allow every "
                "hostname; list the names or use '*.example.com'"
            )
        wildcard = text.startswith("*.")
        rest = text[2:] if wildcard else text
        if "*" in rest:
            raise PolicyError(
                f"the hostname pattern {text!r} is malformed: '*' is only allowed "
                "as the whole first label, as in '*.example.com'"
            )
        try:
            labels = _labels(rest)
        except InvalidDomain as e:
            raise PolicyError(f"the hostname pattern {text!r} is malformed: {e.reason}") from e
        return cls(labels=labels, wildcard=wildcard)

    def matches(self, labels: tuple[str, ...]) -> bool:
        """
        Whether the hostname with the canonical C{labels} matches.
        """
        if not self.wildcard:
            return labels == self.labels
        return len(labels) > len(self.labels) and labels[-len(self.labels) :] == (
            self.labels
        )

    def __str__(self) -> str:
        name = ".".join(self.labels)
        return "*." + name if self.wildcard else name


@attrs.frozen
class HostnamePatterns:
    """
    A set of hostnames given as patterns (L{HostnamePattern}: exact names
    and C{*.domain} wildcards), such as the router's C{shared_names}: the
    names several sessions of one identity may bind together.

    @ivar patterns: the parsed patterns, in the order given.
    """

    patterns: tuple[HostnamePattern, ...] = ()

    @classmethod
    def parse(cls, texts: Iterable[str]) -> HostnamePatterns:
        """
        Parse a list of patterns, such as
        C{["component.example.net", "*.balanced.example.net"]}.

        @raise PolicyError: C{texts} is a string rather than a list, or one
            of the patterns is malformed or too broad (see
            L{HostnamePattern.parse}); the message names the pattern and its
            index.
        """
        if isinstance(texts, (str, bytes)) or not isinstance(texts, Iterable):
            raise PolicyError(
                f"the hostname patterns must be a list of strings, not {type(texts).__name__}"
            )
        parsed = []
        for index, text in enumerate(texts):
            try:
                parsed.append(HostnamePattern.parse(text))
            except PolicyError as e:
                raise PolicyError(f"pattern {index}: {e}") from e
        return cls(tuple(parsed))

    def matches(self, hostname: str) -> bool:
        """
        Whether C{hostname} matches one of the patterns; compared in
        canonical form (L{canonicalHostname}), C{False} for a name that is
        not a valid hostname.
        """
        try:
            labels = _labels(hostname)
        except ValueError:
            return False
        return any(pattern.matches(labels) for pattern in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)


def _convertRules(
    value: Mapping[str, Iterable[str]] | Mapping[str, tuple[HostnamePattern, ...]],
) -> Mapping[str, tuple[HostnamePattern, ...]]:
    """
    Validate C{{identity: [pattern, ...]}} and return it with every identity
    canonical and every pattern parsed, read-only.

    @raise PolicyError: see L{HostnamePolicy.fromConfig}.
    """
    if not isinstance(value, Mapping):
        raise PolicyError(
            "the authorization must be a mapping of identity to a list of "
            f"hostname patterns, not {type(value).__name__}"
        )
    rules: dict[str, tuple[HostnamePattern, ...]] = {}
    spelling: dict[str, str] = {}
    for identity, patterns in value.items():
        if not isinstance(identity, str):
            raise PolicyError(f"the identity {identity!r} must be a string")
        try:
            key = canonicalHostname(identity)
        except InvalidDomain as e:
            raise PolicyError(f"the identity {identity!r} is not a domain: {e.reason}") from e
        if key in rules:
            raise PolicyError(
                f"the identities {spelling[key]!r} and {identity!r} are the same "
                "domain; list it once"
            )
        if isinstance(patterns, (str, bytes)) or not isinstance(patterns, Iterable):
            raise PolicyError(
                f"the patterns of identity {identity!r} must be a list of "
                f"strings, not {type(patterns).__name__}"
            )
        parsed = []
        for pattern in patterns:
            if isinstance(pattern, HostnamePattern):
                parsed.append(pattern)
                continue
            try:
                parsed.append(HostnamePattern.parse(pattern))
            except PolicyError as e:
                raise PolicyError(f"identity {identity!r}: {e}") from e
        rules[key] = tuple(parsed)
        spelling[key] = identity
    return MappingProxyType(rules)


@attrs.frozen
class HostnamePolicy:
    """
    Which hostnames each authenticated identity may bind.

    Built from C{{identity: [pattern, ...]}}, where an identity is the
    domain a component authenticated as and a pattern is an exact hostname
    or a C{*.domain} wildcard (see L{HostnamePattern}).

    An identity I{with} an entry may bind exactly the names its patterns
    match; its own name is not implied, so list it if it is wanted; an
    empty list allows nothing. An identity I{without} an entry may bind
    only its own name (the domain it authenticated as) when
    C{defaultOwnName} is true, and nothing otherwise.

    @ivar rules: canonical identity (see L{canonicalHostname}) to its
        parsed patterns; read-only.
    @ivar defaultOwnName: whether an identity without an entry may bind
        its own name.
    """

    rules: Mapping[str, tuple[HostnamePattern, ...]] = attrs.field(
        converter=_convertRules, factory=dict, hash=False
    )
    defaultOwnName: bool = attrs.field(default=True, kw_only=True)

    @defaultOwnName.validator
    def _checkDefaultOwnName(
        self, attribute: "attrs.Attribute[bool]", value: bool
    ) -> None:
        if not isinstance(value, bool):
            raise PolicyError(
                f"defaultOwnName must be a bool, not {type(value).__name__}"
            )

    @classmethod
    def fromConfig(
        cls, mapping: Mapping[str, Iterable[str]] | None, defaultOwnName: bool = True
    ) -> HostnamePolicy:
        """
        Build a policy from configuration, such as the C{authorization}
        table of the router's TOML file::

            [authorization]
            "comp.example.com" = ["comp.example.com", "*.comp.example.com"]
            "muc.example.com" = ["chat.example.com"]

        @param mapping: identity to a list (or tuple) of pattern strings;
            C{None} is an empty mapping.
        @param defaultOwnName: see L{HostnamePolicy.defaultOwnName}.
        @raise PolicyError: C{mapping} is not a mapping; an identity is
            not a string or not a domain, or is listed twice (after
            normalisation); its patterns are not a list of strings; a
            pattern is a bare C{*} or malformed. The message names the
            identity and the pattern.
        """
        return cls({} if mapping is None else mapping, defaultOwnName=defaultOwnName)

    def mayBind(self, identity: str, hostname: str) -> bool:
        """
        Whether the component authenticated as C{identity} may bind
        C{hostname}.

        Both names are compared in canonical form (L{canonicalHostname}),
        so case, a trailing dot and Unicode versus ASCII (IDNA) spellings
        do not matter.

        @param identity: the authenticated SASL identity, a domain.
        @param hostname: the hostname asked for.
        @return: C{False} also when either name is not a valid hostname;
            the caller answers a malformed hostname with C{bad-request}
            before asking.
        """
        try:
            identityLabels = _labels(identity)
            hostLabels = _labels(hostname)
        except ValueError:
            return False
        patterns = self.rules.get(".".join(identityLabels))
        if patterns is None:
            return self.defaultOwnName and hostLabels == identityLabels
        return any(pattern.matches(hostLabels) for pattern in patterns)
