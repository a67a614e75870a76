# -*- test-case-name: tests.test_httpauth_frontend -*-
"""
What the confirmer believes about an HTTP request, as pure logic: where the
protected site is (its public origin, or the host names it answers to),
which proxies may describe the original request and the client, and which
headers each supported web server uses for that (its I{profile}).

This is the trust boundary between the browser, the web server and the
confirmer (C{docs/security.md}): a header that describes the original
request or the client is read only when the connection comes from a
trusted proxy, and only the headers of the configured web server's
profile are read. The URL a user is asked about is built from the
configuration and the canonical path (L{xmppcomp.httpauth._target}),
never from a URL the client chose.

Nothing here imports C{twisted.internet}.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar, Union

import attrs

from xmppcomp.httpauth._target import (
    BadTarget,
    HostPort,
    Origin,
    Target,
    parseHost,
    parseOrigin,
)

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
_V = TypeVar("_V")

#: The proxies trusted by default: loopback only.
LOOPBACK: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


@attrs.frozen
class WebServerProfile:
    """
    Which request headers a web server that delegates authentication
    (forward-auth) uses to describe the original request.

    The forward-auth endpoint reads these headers and no others, and only
    from a trusted proxy: a header the web server does not set itself
    would come from the client.

    @ivar name: C{"nginx"}, C{"traefik"} or C{"caddy"}.
    @ivar method: the header carrying the original method.
    @ivar uri: the header carrying the original request target, raw (path
        and query as the client sent them).
    @ivar host: the header carrying the original C{Host}.
    @ivar scheme: the header carrying the original scheme.
    @ivar client: the header carrying the client's address.
    @ivar clientIsList: whether C{client} is an C{X-Forwarded-For} list,
        whose rightmost entry not a trusted proxy is the client; else it
        holds one address.
    """

    name: str
    method: bytes
    uri: bytes
    host: bytes
    scheme: bytes
    client: bytes
    clientIsList: bool

    @classmethod
    def family(cls, name: str, prefix: bytes, uri: bytes, client: bytes, clientIsList: bool) -> WebServerProfile:
        """
        The profile of a web server whose headers describing the original
        request are one family: C{prefix} followed by C{Method}, C{uri},
        C{Host} and C{Proto} (C{uri} is spelled as the web server's
        documentation does; header names are matched case-insensitively).

        @param client: the header carrying the client's address.
        @param clientIsList: see L{clientIsList}.
        """
        return cls(
            name,
            method=prefix + b"Method",
            uri=prefix + uri,
            host=prefix + b"Host",
            scheme=prefix + b"Proto",
            client=client,
            clientIsList=clientIsList,
        )


#: The supported web servers. nginx's are the headers the tutorial's
#: C{proxy_set_header} lines set (which replace a client's copy); Traefik's
#: ForwardAuth and Caddy's C{forward_auth} set the C{X-Forwarded-*} ones
#: themselves.
_TRAEFIK = WebServerProfile.family("traefik", b"X-Forwarded-", b"Uri", client=b"X-Forwarded-For", clientIsList=True)

PROFILES: Mapping[str, WebServerProfile] = {
    "nginx": WebServerProfile.family("nginx", b"X-Original-", b"URI", client=b"X-Real-IP", clientIsList=False),
    "traefik": _TRAEFIK,
    # Caddy's forward_auth sets the same headers as Traefik's ForwardAuth.
    "caddy": attrs.evolve(_TRAEFIK, name="caddy"),
}


class Untrusted(ValueError):
    """
    A request describes itself in a way the confirmer does not believe: a
    host outside the allowed list, a forward-auth request from a peer that
    is not a trusted proxy, a missing or malformed profile header.

    @ivar reason: a human-readable explanation.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parseAddress(text: str) -> IPAddress | None:
    """
    An IP address as a proxy writes it (C{X-Real-IP}, an
    C{X-Forwarded-For} entry): bare, or IPv6 in brackets; an IPv4-mapped
    IPv6 address is its IPv4 address. C{None} if it is not one.
    """
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parseNetworks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """
    Networks or addresses (C{"127.0.0.1"}, C{"10.0.0.0/8"}, C{"::1"}).

    @raise ValueError: one is neither.
    """
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)


def _networks(values: Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    return tuple(
        value if not isinstance(value, str) else ipaddress.ip_network(value, strict=False)
        for value in values
    )


def allowedHost(value: str) -> str:
    """
    The host C{value} names, as L{Frontend.allowedHosts} keeps it: a host
    name (L{parseHost}), or an IP address, IPv6 bare or in brackets.

    @raise ValueError: it is neither, or it has a port, with the reason.
    """
    address = parseAddress(value)
    if address is not None:
        return str(address)
    parsed = parseHost(value)
    if parsed.port is not None:
        raise ValueError("it has a port; give the host name only: any port of it is allowed")
    return parsed.host


def _hosts(values: Iterable[str]) -> frozenset[str]:
    return frozenset(allowedHost(value) for value in values)


def _origin(value: Origin | str | None) -> Origin | None:
    if isinstance(value, str):
        return parseOrigin(value)
    return value


def _profile(value: WebServerProfile | str) -> WebServerProfile:
    if isinstance(value, WebServerProfile):
        return value
    try:
        return PROFILES[value]
    except KeyError:
        raise ValueError(
            f"unknown web server {value!r}; one of {', '.join(sorted(PROFILES))}"
        ) from None


@attrs.frozen
class Frontend:
    """
    What the confirmer trusts of the requests it gets.

    @ivar publicOrigin: the origin clients use (C{https://example.net}):
        the URL asked about is this origin and the canonical path, whatever
        the C{Host} header says.
    @ivar allowedHosts: host names (no port) the site answers to; the URL
        asked about then uses the request's host (and port), which must be
        one of them, else the request is refused (400; 403 in forward-auth).
        With L{publicOrigin} too, the host is checked and the origin used.
    @ivar trustedProxies: the networks whose connections may describe the
        original request and client (forward-auth headers,
        C{X-Forwarded-For}, C{X-Forwarded-Proto}); loopback by default.
    @ivar webServer: the forward-auth profile (L{PROFILES}).
    @ivar askQuery: whether the query string is part of the URL the user
        is asked about (and so crosses the XMPP server); on by default,
        since the query is part of what the user approves.
    @raise ValueError: neither L{publicOrigin} nor L{allowedHosts} is set.
    """

    publicOrigin: Origin | None = attrs.field(default=None, converter=_origin)
    allowedHosts: frozenset[str] = attrs.field(default=frozenset(), converter=_hosts)
    trustedProxies: tuple[IPNetwork, ...] = attrs.field(default=LOOPBACK, converter=_networks)
    webServer: WebServerProfile = attrs.field(default=PROFILES["nginx"], converter=_profile)
    askQuery: bool = True

    # What was decided for recent peers and Host values: one request after
    # another comes from the same few (~1 us each instead of ~5, parsing
    # an address or a host name). Bounded: the values come from clients.
    _trustedPeers: dict[str, bool] = attrs.field(factory=dict, init=False, eq=False, repr=False)
    _hosts: dict[str, HostPort | str] = attrs.field(factory=dict, init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.publicOrigin is None and not self.allowedHosts:
            raise ValueError(
                "the confirmer needs the public origin of the site "
                "(public_origin = \"https://example.net\") or the host names it "
                "answers to (allowed_hosts = [\"example.net\"]): the URL a user "
                "is asked to confirm is built from them, never from the request"
            )

    def isTrusted(self, peer: str) -> bool:
        """
        Whether C{peer} (the connection's address) is a trusted proxy.
        """
        known = self._trustedPeers.get(peer)
        if known is not None:
            return known
        address = parseAddress(peer)
        trusted = address is not None and any(address in net for net in self.trustedProxies)
        _remember(self._trustedPeers, peer, trusted)
        return trusted

    def clientOf(
        self, peer: str, forwardedFor: Sequence[str], trusted: bool | None = None
    ) -> str:
        """
        The client's address: the peer, unless it is a trusted proxy; then
        the rightmost C{X-Forwarded-For} entry that is not a trusted proxy
        (entries to its left were written by the client and are not
        believed). An entry that is not an address stops the walk at the
        last trusted hop.

        @param forwardedFor: the raw C{X-Forwarded-For} header values, in
            order.
        @param trusted: L{isTrusted} of C{peer}, when the caller knows it.
        """
        if trusted is None:
            trusted = self.isTrusted(peer)
        if not trusted or not forwardedFor:
            return peer
        entries = [e for value in forwardedFor for e in value.split(",")]
        client = peer
        for entry in reversed(entries):
            address = parseAddress(entry)
            if address is None:
                return client
            client = str(address)
            if not any(address in net for net in self.trustedProxies):
                return client
        return client

    def urlFor(self, scheme: str, host: str | None, target: Target) -> str:
        """
        The URL a user is asked about: from L{publicOrigin} (or the
        checked host and C{scheme}) and the canonical target.

        @param scheme: C{"http"} or C{"https"}, as the client connected.
        @param host: the original C{Host} value, or C{None} if absent.
        @raise Untrusted: the host is missing, malformed or not allowed.
        """
        checked: HostPort | None = None
        if self.allowedHosts:
            if not host:
                raise Untrusted("the request has no Host header")
            known = self._hosts.get(host)
            if known is None:
                try:
                    known = parseHost(host)
                    if known.host not in self.allowedHosts:
                        known = f"this site does not answer to the host {known.host!r}"
                except BadTarget as e:
                    known = f"the Host header is not valid: {e.reason}"
                _remember(self._hosts, host, known)
            if isinstance(known, str):
                raise Untrusted(known)
            checked = known
        path = target.encoded(self.askQuery)
        if self.publicOrigin is not None:
            return str(self.publicOrigin) + path
        assert checked is not None
        port = checked.port
        if port == {"http": 80, "https": 443}.get(scheme):
            port = None
        origin = Origin(scheme, checked.host, port)
        return str(origin) + path


#: Peers and Host values remembered per L{Frontend}, at most.
_REMEMBERED = 256


def _remember(cache: dict[str, _V], key: str, value: _V) -> None:
    """
    Keep C{value} for C{key} in C{cache}, emptied when full (keys come
    from clients); long keys are not kept.
    """
    if len(key) > 300:
        return
    if len(cache) >= _REMEMBERED:
        cache.clear()
    cache[key] = value


def loopbackFrontend(**kwargs: object) -> Frontend:
    """
    A L{Frontend} for a confirmer reached on loopback (the embedded main
    job, tests): the host names C{127.0.0.1}, C{localhost} and C{::1}.
    """
    return Frontend(allowedHosts=frozenset({"127.0.0.1", "localhost", "::1"}), **kwargs)  # type: ignore[arg-type]


__all__ = [
    "Frontend",
    "LOOPBACK",
    "PROFILES",
    "allowedHost",
    "Untrusted",
    "WebServerProfile",
    "loopbackFrontend",
    "parseAddress",
    "parseNetworks",
]

