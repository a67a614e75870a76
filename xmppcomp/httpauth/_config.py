# -*- test-case-name: tests.test_config -*-
"""
The configuration values of the XEP-0070 confirmer of C{twistd xmppcomp}
(the C{[httpauth]} table of C{docs/examples/component.toml}).
"""

from __future__ import annotations

import attrs

from xmppcomp.httpauth._policy import AccessRules, Limits

#: Default endpoint of the HTTP-auth listener: loopback only.
DEFAULT_HTTP_LISTEN = "tcp:8080:interface=127.0.0.1"

#: The ways the HTTP-auth confirmer is reached (see
#: L{xmppcomp.httpauth.Confirmer}).
HTTPAUTH_MODES = ("protect", "proxy", "forward-auth")

#: The host names the embedded main job's confirmer answers to when
#: neither public_origin nor allowed_hosts is set.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


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
    rules: AccessRules = attrs.field(factory=AccessRules.anyone)
    limits: Limits = attrs.field(factory=Limits)
    metrics: bool = False
    serverTiming: bool = False
    accessLog: str = "log"

