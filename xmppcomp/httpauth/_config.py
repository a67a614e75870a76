# -*- test-case-name: tests.test_config -*-
"""
The configuration values of the XEP-0070 confirmer of C{twistd xmppcomp}
(the C{[httpauth]} table of C{docs/examples/component.toml}).
"""

from __future__ import annotations

import attrs

from xmppcomp.configvalues import SecretRef, checked, keeping
from xmppcomp.httpauth._frontend import PROFILES, allowedHost, parseNetworks
from xmppcomp.httpauth._health import checkHealthPath
from xmppcomp.httpauth._policy import AccessRules, Limits
from xmppcomp.httpauth._proxy import checkUpstream
from xmppcomp.httpauth._redis import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_PREFIX,
    DEFAULT_RECONNECT_MAX_DELAY,
    DEFAULT_TIMEOUT,
    parseRedisEndpoint,
)
from xmppcomp.httpauth._site import checkServerHeaderValue
from xmppcomp.httpauth._target import parseOrigin

#: Default endpoint of the HTTP-auth listener: loopback only.
DEFAULT_HTTP_LISTEN = "tcp:8080:interface=127.0.0.1"

#: The ways the HTTP-auth confirmer is reached (see
#: L{xmppcomp.httpauth.Confirmer}).
HTTPAUTH_MODES = ("protect", "proxy", "forward-auth")
_MODES = dict(zip(HTTPAUTH_MODES, ("serve a directory", "reverse-proxy to upstream",
                                   "for nginx auth_request, Traefik, Caddy")))

#: The web servers forward-auth answers (L{PROFILES}), and what they send.
_WEB_SERVERS = {name: f"forward-auth headers {p.uri.decode()}, {p.client.decode()}" for name, p in PROFILES.items()}

#: The host names the embedded main job's confirmer answers to when
#: neither public_origin nor allowed_hosts is set.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@attrs.frozen
class StoreConfig:
    """
    Where the confirmer keeps its state (the C{[httpauth.store]} table): in
    the process (the default), or on a Redis server that several
    confirmers share (L{xmppcomp.httpauth.RedisStore}).

    @ivar redis: the Redis endpoint, C{"tcp:host=HOST:port=PORT"}; C{None}: in memory.
    @ivar prefix: prepended to every Redis key and channel of this confirmer.
    @ivar password: Redis C{AUTH} password (a file or an environment variable), or C{None}.
    @ivar timeout: seconds each Redis command may take; past it the request fails closed (503).
    @ivar connectTimeout: seconds a connection attempt to Redis may take.
    @ivar reconnectMaxDelay: the longest wait, in seconds, between two connection attempts.
    @ivar tls: whether to speak TLS to Redis, checking its certificate.
    @ivar caFile: with C{tls}, a PEM bundle of the CAs to trust; C{None}: the system's.
    @ivar serverName: with C{tls}, the name the certificate must carry; C{None}: the endpoint's host.
    @raise ValueError: C{caFile} or C{serverName} is given without C{tls}.
    """

    redis: str | None = attrs.field(default=None, metadata=checked(
        "parsed", keeping(parseRedisEndpoint), "", "tcp:host=127.0.0.1:port=6379"))
    prefix: str = attrs.field(default=DEFAULT_PREFIX, metadata=checked("string", f'"{DEFAULT_PREFIX}"'))
    password: SecretRef | None = attrs.field(default=None, metadata=checked(
        "secret", "confirmer", "redis.password", "REDIS_PASSWORD"))
    timeout: float = DEFAULT_TIMEOUT
    connectTimeout: float = DEFAULT_CONNECT_TIMEOUT
    reconnectMaxDelay: float = DEFAULT_RECONNECT_MAX_DELAY
    tls: bool = False
    caFile: str | None = attrs.field(default=None, metadata=checked(
        "file", "redis-ca.pem", "give the PEM bundle of the CAs that sign the Redis server's certificate"))
    serverName: str | None = attrs.field(default=None, metadata=checked(
        "domain", "the name in the Redis server's certificate", "redis.example.net"))

    def __attrs_post_init__(self) -> None:
        if not self.tls and (self.caFile is not None or self.serverName is not None):
            raise ValueError(f"{'ca_file' if self.serverName is None else 'server_name'} is a TLS setting, and tls "
                             "is false; add tls = true (or remove it)")


@attrs.frozen
class HTTPAuthConfig:
    """
    The XEP-0070 HTTP-auth confirmer of C{twistd xmppcomp} (the
    C{[httpauth]} table).

    @ivar enabled: whether it runs.
    @ivar listen: the Twisted server endpoint string of its web listener.
    @ivar mode: one of L{HTTPAUTH_MODES}: serve C{directory}, reverse-proxy to C{upstream}, or answer a web server.
    @ivar directory: the directory served in C{protect} mode, or C{None} for the built-in demo page.
    @ivar upstream: the upstream URL of C{proxy} mode.
    @ivar publicOrigin: the scheme and authority clients use: the URL a user is asked about is it and the path.
    @ivar allowedHosts: host names (no port), one of which the URL asked about is built from (400 for others).
    @ivar trustedProxies: addresses or networks that may describe the original request (forwarded headers).
    @ivar webServer: the forward-auth profile, one of L{PROFILES<xmppcomp.httpauth.PROFILES>}.
    @ivar askQuery: whether the query string is in the URL the user is asked about (it crosses the XMPP server).
    @ivar maxConnections: open connections of the web listener, in all; beyond, see L{xmppcomp.admission}.
    @ivar maxConnectionsPerSource: the same per client address (trusted proxies excepted); beyond, refused.
    @ivar listenBacklog: the listen backlog of the web listener, unless C{listen} gives its own C{backlog=}.
    @ivar maxBody: bytes of a request body at most (413 beyond; refused before it is read).
    @ivar headTimeout: seconds a request's head may take to arrive (408 beyond).
    @ivar serverHeader: the C{Server} header of every answer, or C{None} for none.
    @ivar followSymlinks: protect mode: whether symbolic links that lead out of the directory are followed.
    @ivar listDirectories: protect mode: whether directories without an index page are listed.
    @ivar exactResource: whether a full JID asked must answer from that very resource, not another of the account.
    @ivar timeout: seconds the user has to confirm.
    @ivar fromHostname: the hostname of the component that asks; C{None}: the component's first hostname.
    @ivar rules: who may access which paths (L{xmppcomp.httpauth.AccessRules}).
    @ivar limits: pending limits and lifetimes (L{xmppcomp.httpauth.Limits}).
    @ivar metrics: whether the listener also serves C{/metrics} (Prometheus text format, unauthenticated).
    @ivar serverTiming: whether answers carry C{Server-Timing: xmpp;dur=MS}, the XMPP confirmation's round trip.
    @ivar accessLog: where a line per request goes: C{"log"} (twistd's), C{"none"}, or a file (combined format).
    @ivar healthPath: the path of the health endpoint for load balancers (L{withHealth<xmppcomp.httpauth.withHealth>}),
        or C{None} for none.
    @ivar drainTimeout: seconds the requests in flight have to finish when the service stops; new ones get 503 meanwhile.
    @ivar tunnelIdleTimeout: seconds an XTLS tunnel the confirmer opened for confirmations (C{require_xtls}) stays
        open with none in it, before it is closed.
    @ivar store: where the state is kept (L{StoreConfig}): in memory, or on Redis.
    """

    enabled: bool = True
    listen: str = attrs.field(default=DEFAULT_HTTP_LISTEN, metadata=checked("endpoint", DEFAULT_HTTP_LISTEN))
    mode: str = attrs.field(default="protect", metadata=checked("choice", _MODES))
    directory: str | None = attrs.field(default=None, metadata=checked(
        "directory", "site", "give the directory of files to serve behind the confirmation, or remove directory for "
        "the built-in demo page"))
    upstream: str | None = attrs.field(default=None, metadata=checked(
        "parsed", checkUpstream, "an upstream URL", "http://127.0.0.1:8000", "give the URL of the site to proxy to (http "
        'or https, a host, an optional port and path), such as "http://127.0.0.1:8000"'))
    publicOrigin: str | None = attrs.field(default=None, metadata=checked(
        "parsed", lambda text: str(parseOrigin(text)), "", "https://www.example.net",  # its reasons name the value
        'give only the scheme and authority clients use, such as "https://www.example.net"'))
    allowedHosts: tuple[str, ...] = attrs.field(default=(), metadata=checked(
        "parsedStrings", allowedHost, "a host name", "example.net"))
    trustedProxies: tuple[str, ...] = attrs.field(default=("127.0.0.0/8", "::1"), metadata=checked(
        "parsedStrings", lambda text: (parseNetworks((text,)), text.strip())[1], "an IP address or network", "10.0.0.0/8"))
    webServer: str = attrs.field(default="nginx", metadata=checked("choice", _WEB_SERVERS))
    askQuery: bool = True
    maxBody: int = 1024 * 1024
    maxConnections: int = 10000
    maxConnectionsPerSource: int = 256
    listenBacklog: int = 511
    headTimeout: float = 10.0
    serverHeader: str | None = attrs.field(default="xmppcomp", metadata=checked(
        "optional", checkServerHeaderValue, "a Server header", "xmppcomp",
        'give printable ASCII such as "xmppcomp", or "" for no Server header'))
    followSymlinks: bool = False
    listDirectories: bool = False
    exactResource: bool = False
    timeout: float = 120.0
    fromHostname: str | None = attrs.field(default=None, metadata=checked(
        "domain", "the hostname of the component that asks", toml="from"))
    rules: AccessRules = attrs.field(factory=AccessRules.anyone, metadata=checked("rules"))
    limits: Limits = attrs.field(factory=Limits)
    metrics: bool = False
    serverTiming: bool = False
    accessLog: str = attrs.field(default="log", metadata=checked("accessLog"))
    healthPath: str | None = attrs.field(default=None, metadata=checked(
        "optional", checkHealthPath, "a health path", "/.xmppcomp/health",
        'give one such as "/.xmppcomp/health", or "" for no health endpoint'))
    drainTimeout: float = 30.0
    tunnelIdleTimeout: float = 60.0
    store: StoreConfig = attrs.field(factory=StoreConfig)
