# -*- test-case-name: tests.test_tap -*-
"""
C{twistd xmppcomp}: options and service construction for a component.

The configuration comes from a TOML file (C{--config FILE}, see
L{xmppcomp.config.loadComponentConfig} and C{docs/examples/component.toml})
and from options; options given explicitly win over the file (C{--hostname}
given on the command line replaces the file's whole C{hostnames} list, and
any trust option replaces the file's C{[component.trust]}). No option takes
a secret: C{--secret-file} and C{--secret-env} name where it is.

Without a server (C{twistd -n xmppcomp} with no options at all) the
component runs against an embedded router on loopback
(L{xmppcomp.embedded.EmbeddedRouter}), so the whole thing runs on a fresh
machine, with a demo agent that confirms HTTP requests (L{xmppcomp.demo}).

The service tree L{makeService} builds::

    ComponentServices
      EmbeddedRouter "embedded-router"  (only without a server; starts first)
      Component "component"             (handlers: disco, and from
                                         addServices the XEP-0070
                                         ConfirmationRequester and the
                                         XTLSHandler)
      _ReadyLog                         (logs once connected)
      HTTPAuthListener "httpauth"       (the confirmer's twisted.web Site on
                                         the [httpauth] listen endpoint; with
                                         [httpauth] metrics = true or
                                         --metrics, also /metrics)
      EmbeddedComponent "demo-agent"    (only without a server: answers
                                         confirmations, see xmppcomp.demo)
      DemoHints                        (logs the curl commands to try)
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService, Service
from twisted.internet import defer
from twisted.protocols.policies import WrappingFactory
from twisted.python import usage
from twisted.web.resource import Resource

from xmppcomp.config import (
    COMPONENT_LIMIT_KEYS,
    ComponentConfig,
    ConfigError,
    Override,
    componentConfigFromMapping,
    loadComponentConfig,
)
from xmppcomp.logs import LOG_LEVEL_OPTION, Logger, LogLevelFilter, checkLogLevelOption
from xmppcomp.metrics import Metrics

log = Logger()

#: Allocations between young collections in the plugins' processes
#: (Python's default: 700), and the ratios of the older generations.
GC_THRESHOLDS = (10000, 10, 10)

#: The C{--no-gc-tuning} flag of both plugins (L{usage.Options} flag form).
GC_TUNING_FLAG = [
    "no-gc-tuning",
    None,
    "Leave Python's garbage collector as it is (by default the plugin "
    "freezes the objects made at startup and collects less often).",
]


#: Option name to the TOML key it overrides, for the options that take one
#: value (the repeatable C{--hostname} and the secret and trust options are
#: handled apart).
_PARAMETER_KEYS: dict[str, str] = {
    "server": "component.server",
    "server-domain": "component.server_domain",
    "protocol": "component.protocol",
    "identity": "component.identity",
    "client-certificate": "component.client_certificate",
    "client-key": "component.client_key",
    "ca-file": "component.trust.ca_file",
    "pinned": "component.trust.pinned",
    "http-listen": "httpauth.listen",
    "http-mode": "httpauth.mode",
    "http-directory": "httpauth.directory",
    "http-upstream": "httpauth.upstream",
    "xtls-certificate": "xtls.certificate",
    "xtls-key": "xtls.key",
    "xtls-trust": "xtls.trust",
} | {
    name.replace("_", "-"): "component.limits." + name for name in COMPONENT_LIMIT_KEYS
}

#: What C{twistd xmppcomp} calls itself when there is no file.
_COMMAND = "twistd xmppcomp"

#: Names of the services in the tree.
COMPONENT_SERVICE = "component"
EMBEDDED_SERVICE = "embedded-router"
HTTPAUTH_SERVICE = "httpauth"


class Options(usage.Options):
    """
    Options of C{twistd xmppcomp}.

    @ivar componentConfig: the configuration, built by L{postOptions}.
    """

    synopsis = "[--config FILE] [options]"
    longdesc = (
        "Run an XMPP server component. It connects to a server over XEP-0225 "
        "(jabber:client stream, STARTTLS, SASL as a domain, hostname bind) or "
        "XEP-0114 (jabber:component:accept handshake), binds its hostnames, "
        "answers service discovery for them, and reconnects by itself. "
        "Settings come from a TOML file (--config; see "
        "docs/examples/component.toml) and from these options, which win "
        "over the file. Secrets are never options: --secret-file and "
        "--secret-env say where the secret is. With no server configured, "
        "the component runs against an embedded router on 127.0.0.1 with a "
        "certificate and secret made up at startup, next to a demo agent that "
        "confirms HTTP requests (try: twistd -n xmppcomp). The component runs "
        "the XEP-0070 HTTP-auth confirmer (a web listener on "
        "127.0.0.1:8080 by default, [httpauth]) and an XTLS endpoint "
        "(urn:xmpp:tmp:xtls, [xtls])."
    )

    optParameters = [
        ["config", "c", None, "The TOML configuration file."],
        LOG_LEVEL_OPTION,
        [
            "server",
            "s",
            None,
            "Client endpoint of the server, e.g. tcp:host=127.0.0.1:port=5348 "
            "(STARTTLS) or tls:host=xmpp.example.net:port=5223 (direct TLS). "
            "None: an embedded router on loopback.",
        ],
        [
            "server-domain",
            None,
            None,
            "The server's domain (its certificate must carry it); without a "
            "server, the embedded router's domain (default localhost).",
        ],
        ["protocol", None, None, "xep0225 (the default) or xep0114."],
        [
            "identity",
            None,
            None,
            "The domain to authenticate as with SASL (default: the first "
            "hostname).",
        ],
        ["secret-file", None, None, "File whose first line is the secret."],
        ["secret-env", None, None, "Environment variable holding the secret."],
        ["ca-file", None, None, "Trust the CAs of this PEM bundle for the server."],
        [
            "pinned",
            None,
            None,
            "Trust exactly this (PEM) certificate for the server.",
        ],
        [
            "client-certificate",
            None,
            None,
            "PEM client certificate (for SASL EXTERNAL).",
        ],
        [
            "client-key",
            None,
            None,
            "Its private key (default: in the certificate file).",
        ],
        ["max-queued", None, None, "Stanzas that may wait while disconnected."],
        ["queue-timeout", None, None, "Seconds a stanza may wait for the connection."],
        ["iq-timeout", None, None, "Seconds to wait for an IQ answer."],
        [
            "negotiation-timeout",
            None,
            None,
            "Seconds to complete stream negotiation.",
        ],
        [
            "fatal-retry-delay",
            None,
            None,
            "Seconds to wait after a failure retrying will not fix soon.",
        ],
        [
            "embedded-port",
            None,
            None,
            "Loopback TCP port of the embedded router (default: any free one).",
        ],
        [
            "http-listen",
            None,
            None,
            "Server endpoint of the HTTP-auth confirmer, e.g. "
            "tcp:8080:interface=127.0.0.1 (the default) or "
            "ssl:8443:privateKey=key.pem:certKey=cert.pem.",
        ],
        [
            "http-mode",
            None,
            None,
            "protect (serve --http-directory, or a demo page), proxy (to "
            "--http-upstream) or forward-auth (for nginx auth_request, "
            "Traefik, Caddy).",
        ],
        ["http-directory", None, None, "Directory served in protect mode."],
        ["http-upstream", None, None, "Upstream URL of proxy mode."],
        ["xtls-certificate", None, None, "PEM certificate of the component for XTLS."],
        ["xtls-key", None, None, "Its private key (default: in the certificate file)."],
        [
            "xtls-trust",
            None,
            None,
            "PEM bundle of the authorities of XTLS peers' certificates.",
        ],
    ]

    optFlags = [
        [
            "system-trust",
            None,
            "Trust the system's CAs for the server (the default; replaces "
            "the file's [component.trust]).",
        ],
        ["no-httpauth", None, "Do not run the HTTP-auth confirmer."],
        ["no-xtls", None, "Do not run the XTLS endpoint."],
        [
            "metrics",
            None,
            "Serve the Prometheus metrics at /metrics on the HTTP-auth "
            "listener (without authentication: keep that listener on "
            "loopback, or behind a proxy that restricts /metrics).",
        ],
        GC_TUNING_FLAG,
    ]

    compData = usage.Completions(
        optActions={
            "config": usage.CompleteFiles("*.toml"),
            "secret-file": usage.CompleteFiles(),
            "ca-file": usage.CompleteFiles(),
            "pinned": usage.CompleteFiles(),
            "client-certificate": usage.CompleteFiles(),
            "client-key": usage.CompleteFiles(),
            "protocol": usage.CompleteList(["xep0225", "xep0114"]),
            "http-mode": usage.CompleteList(["protect", "proxy", "forward-auth"]),
            "http-directory": usage.CompleteDirs(),
            "xtls-certificate": usage.CompleteFiles(),
            "xtls-key": usage.CompleteFiles(),
            "xtls-trust": usage.CompleteFiles(),
        }
    )

    componentConfig: ComponentConfig

    def __init__(self) -> None:
        super().__init__()
        self["hostname"] = []

    def opt_hostname(self, hostname: str) -> None:
        """
        A hostname to bind (repeatable; replaces the file's list).
        """
        self["hostname"].append(hostname)

    def _number(self, name: str, key: str) -> int | float:
        """
        The value of the numeric option C{name}.

        @raise usage.UsageError: it is not a number.
        """
        text = self[name]
        integer = key == "embedded.port" or COMPONENT_LIMIT_KEYS[key.rsplit(".", 1)[1]][1]
        try:
            return int(text) if integer else float(text)
        except ValueError:
            kind = "a whole number" if integer else "a number of seconds"
            raise usage.UsageError(f"--{name} must be {kind}, not {text!r}")

    def overrides(self) -> dict[str, Override]:
        """
        The values given explicitly on the command line, by TOML key.

        @raise usage.UsageError: options that exclude each other are given
            together, or a number is not one.
        """
        if self["secret-file"] is not None and self["secret-env"] is not None:
            raise usage.UsageError("give --secret-file or --secret-env, not both")
        trustOptions = [
            name for name in ("ca-file", "pinned") if self[name] is not None
        ] + (["system-trust"] if self["system-trust"] else [])
        if len(trustOptions) > 1:
            raise usage.UsageError(
                "give one of --ca-file, --pinned or --system-trust, not "
                + " and ".join("--" + name for name in trustOptions)
            )
        overrides: dict[str, Override] = {}
        for name, key in _PARAMETER_KEYS.items():
            if self[name] is None:
                continue
            value: object = self[name]
            if key.startswith("component.limits."):
                value = self._number(name, key)
            overrides[key] = Override(value, f"--{name}")
        if self["embedded-port"] is not None:
            overrides["embedded.port"] = Override(
                self._number("embedded-port", "embedded.port"), "--embedded-port"
            )
        if self["hostname"]:
            overrides["component.hostnames"] = Override(list(self["hostname"]), "--hostname")
        if self["secret-file"] is not None:
            overrides["component.secret"] = Override(
                {"file": self["secret-file"]}, "--secret-file"
            )
        if self["secret-env"] is not None:
            overrides["component.secret"] = Override(
                {"env": self["secret-env"]}, "--secret-env"
            )
        if self["system-trust"]:
            overrides["component.trust.system"] = Override(True, "--system-trust")
        if self["no-httpauth"]:
            overrides["httpauth.enabled"] = Override(False, "--no-httpauth")
        if self["no-xtls"]:
            overrides["xtls.enabled"] = Override(False, "--no-xtls")
        if self["metrics"]:
            overrides["httpauth.metrics"] = Override(True, "--metrics")
        return overrides

    def postOptions(self) -> None:
        """
        Load the file if one is given, override it with the options given,
        check the result, and check that the secret can be read now.

        @raise usage.UsageError: the configuration is not usable; the
            message names the file and key, or the option, and the fix.
        """
        checkLogLevelOption(self)
        overrides = self.overrides()
        try:
            if self["config"] is not None:
                config = loadComponentConfig(self["config"], overrides)
            else:
                config = componentConfigFromMapping({}, _COMMAND, overrides, os.getcwd())
            if config.secret is not None:
                config.secret.read()
        except ConfigError as e:
            raise usage.UsageError(str(e)) from e
        if config.httpauth.metrics and not config.httpauth.enabled:
            raise usage.UsageError(
                "/metrics is served on the HTTP-auth listener, which is off "
                "([httpauth] enabled = false or --no-httpauth); turn it on, "
                "or leave out [httpauth] metrics = true and --metrics"
            )
        self.componentConfig = config


def makeComponent(
    config: ComponentConfig,
    reactor: Any = None,
    componentClass: Any = None,
    metrics: Metrics | None = None,
) -> Any:
    """
    Build the component of a configuration that names a server: read its
    secret and certificate files now.

    @param config: a configuration with a C{server}.
    @param reactor: the reactor (default: the global one).
    @param componentClass: the class to instantiate, a subclass of
        L{xmppcomp.component.Component} (the default) taking the same
        arguments.
    @param metrics: where the component counts (failed negotiations,
        refused binds, ignored answers); a registry of its own when not
        given.
    @return: a L{xmppcomp.component.Component}.
    @raise ConfigError: the secret or a certificate cannot be read (any
        more).
    """
    from xmppcomp.component import Component
    from xmppcomp.stream import tls

    if config.server is None:
        raise ValueError("no server: use an EmbeddedRouter (see makeService)")
    secret = config.secret.read() if config.secret is not None else None
    try:
        clientCertificate = (
            tls.loadPrivateCertificate(config.clientCertificate, config.clientKey)
            if config.clientCertificate is not None
            else None
        )
        trust = config.trust.load()
    except tls.CertificateFileError as e:
        raise ConfigError(str(e)) from e
    if componentClass is None:
        componentClass = Component
    return componentClass(
        config.server,
        config.serverDomain,
        config.hostnames,
        secret=secret,
        identity=config.identity if config.protocol == "xep0225" else None,
        protocol=config.protocol,
        clientCertificate=clientCertificate,
        trust=trust,
        requireTLS=config.requireTLS,
        reactor=reactor,
        metrics=metrics,
        **_limits(config),
    )


def _limits(config: ComponentConfig) -> dict[str, Any]:
    limits = config.limits
    return {
        "maxQueued": limits.maxQueued,
        "queueTimeout": limits.queueTimeout,
        "iqTimeout": limits.iqTimeout,
        "negotiationTimeout": limits.negotiationTimeout,
        "fatalRetryDelay": limits.fatalRetryDelay,
    }


def addDiscovery(component: Any) -> None:
    """
    Attach service discovery to C{component}: disco#info and disco#items
    answer for each of its hostnames (C{component/generic}), and
    C{item-not-found} for any other name.
    """
    from xmppcomp.disco import discoHandlers

    for handler in discoHandlers({name: () for name in component.hostnames}):
        handler.setHandlerParent(component)


class HTTPAuthListener(StreamServerEndpointService):
    """
    The web listener of the HTTP-auth confirmer: a
    L{StreamServerEndpointService} that fails the start (and so twistd)
    when it cannot listen, and logs where it listens.

    @ivar description: the endpoint string.
    @ivar what: what it serves, for the log.
    @ivar secure: whether it speaks HTTPS (an C{ssl:} endpoint).
    @ivar metrics: whether it serves C{/metrics} too (L{withMetrics}).
    @ivar port: the L{IListeningPort} while listening, else C{None}.
    @ivar confirmer: the L{Confirmer<xmppcomp.httpauth.Confirmer>} behind
        it (its C{ledger} says how many confirmations are pending), once
        L{addHTTPAuth} set it.
    @ivar gate: the L{AdmissionGate<xmppcomp.admission.AdmissionGate>}
        that caps its open connections per source and in all, or C{None}.
    """

    _raiseSynchronously = True

    def __init__(
        self,
        endpoint: Any,
        factory: Any,
        description: str,
        what: str,
        metrics: bool = False,
        gate: Any = None,
    ) -> None:
        """
        @param gate: an L{AdmissionGate<xmppcomp.admission.AdmissionGate>}
            every connection is put to before C{factory} sees it, or
            C{None} for no caps.
        """
        super().__init__(endpoint, ConnectionTracker(factory if gate is None else gate.wrap(factory)))
        self.gate = gate
        self.description = description
        self.what = what
        self.metrics = metrics
        self.secure = description.split(":", 1)[0].lower() == "ssl"
        self.port: Any = None
        self.confirmer: Any = None
        self._listeners: list[defer.Deferred[Any]] = []

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        assert self._waitingForPort is not None
        self._waitingForPort.addCallback(self._listening)

    def _listening(self, port: Any) -> Any:
        if port is None:
            # Failed (and logged), or cancelled.
            return port
        self.port = port
        if self.gate is not None:
            from xmppcomp.admission import fileLimitWarning

            warning = fileLimitWarning(
                self.gate.admission.maxTotal, "[httpauth] max_connections", [port.getHost()]
            )
            if warning is not None:
                log.warn("{warning}", warning=warning)
        from xmppcomp.demo import _hintURL

        log.info(
            "XEP-0070 HTTP-auth confirmer listening on {where} ({endpoint}): {what}",
            where=_hintURL(port, self.secure) or port.getHost(),
            endpoint=self.description,
            what=self.what,
        )
        if self.metrics:
            if isPublic(port.getHost()):
                log.warn(
                    "/metrics is served without authentication on {endpoint}, "
                    "which is not a loopback address: the metrics are public "
                    "there. Keep the HTTP-auth listener on loopback "
                    "(--http-listen tcp:8080:interface=127.0.0.1) or restrict "
                    "/metrics in the proxy in front of it.",
                    endpoint=self.description,
                )
            else:
                log.info(
                    "Prometheus metrics at /metrics on {endpoint}",
                    endpoint=self.description,
                )
        listeners, self._listeners = self._listeners, []
        for d in listeners:
            d.callback(port)
        return port

    def whenListening(self) -> defer.Deferred[Any]:
        """
        Fires with the L{IListeningPort} once listening (at once if it
        does).
        """
        if self.port is not None:
            return defer.succeed(self.port)
        d: defer.Deferred[Any] = defer.Deferred()
        self._listeners.append(d)
        return d

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        """
        Stop listening, then close the open connections (pending
        confirmations included) and wait until they are gone.
        """
        self.port = None
        yield super().stopService()
        yield self.factory.closeAll()
        if self.gate is not None:
            self.gate.stop()


class ConnectionTracker(WrappingFactory):
    """
    Knows the open connections of a server factory (the web listener), to
    close them when it stops (browsers keep idle connections open); tests
    use it to close and wait for every connection too.
    """

    def __init__(self, wrapped: Any) -> None:
        super().__init__(wrapped)
        self._idle: list[defer.Deferred[None]] = []

    def unregisterProtocol(self, p: Any) -> None:
        super().unregisterProtocol(p)
        if not self.protocols:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)

    def closeAll(self) -> defer.Deferred[None]:
        """
        Abort every open connection.

        @return: fires once none is left.
        """
        if not self.protocols:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._idle.append(d)
        for p in list(self.protocols):
            p.transport.abortConnection()
        return d


def isPublic(address: Any) -> bool:
    """
    Whether a listening address may be reached from other machines: an
    IPv4 or IPv6 address that is not loopback (C{0.0.0.0} and C{::}
    included). UNIX sockets are not (their file permissions decide).
    """
    host = getattr(address, "host", None)
    if not isinstance(host, str):
        return False
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_loopback


class _MetricsAndSite(Resource):
    """
    The root of the HTTP-auth listener with metrics: C{/metrics} is the
    Prometheus text (L{Metrics.resource}), without authentication; every
    other path goes to C{site}, the confirmer's resource, unchanged (its
    prepath and postpath are as without this).

    @ivar _site: the confirmer's resource.
    @ivar _metrics: the metrics resource.
    """

    def __init__(self, site: Any, metrics: Metrics) -> None:
        super().__init__()
        self._site = site
        self._metrics = metrics.resource()

    def getChildWithDefault(self, path: bytes, request: Any) -> Any:
        if path == b"metrics" and not request.postpath:
            return self._metrics
        # Put the segment back: the site resolves the whole path itself.
        request.postpath.insert(0, request.prepath.pop())
        return self._site

    def render(self, request: Any) -> Any:
        # Only reached for a request without any path segment, which
        # twisted.web does not make; serve it as the site would.
        return self._site.render(request)


def withMetrics(resource: Any, metrics: Metrics) -> Any:
    """
    C{resource}, with C{/metrics} serving C{metrics} next to it (see
    L{_MetricsAndSite}).
    """
    return _MetricsAndSite(resource, metrics)


def _frontend(httpauth: Any) -> Any:
    """
    The L{Frontend<xmppcomp.httpauth.Frontend>} of the configured
    confirmer: where the site is, which proxies are trusted, which web
    server's headers forward-auth reads.
    """
    from xmppcomp.httpauth import Frontend

    return Frontend(
        publicOrigin=httpauth.publicOrigin,
        allowedHosts=frozenset(httpauth.allowedHosts),
        trustedProxies=httpauth.trustedProxies,
        webServer=httpauth.webServer,
        askQuery=httpauth.askQuery,
    )


def _httpResource(httpauth: Any, confirmer: Any, reactor: Any) -> tuple[Any, str]:
    """
    The confirmer's resource for the configured mode, and what it serves
    (for the log).
    """
    frontend = _frontend(httpauth)
    if httpauth.mode == "proxy":
        from twisted.web.client import Agent

        # A plain Agent: no cookie jar shared between users, no redirects
        # followed (they go back to the client); a connection per request.
        agent = Agent(reactor)
        return (
            confirmer.proxy(httpauth.upstream, agent, frontend),
            "proxy to %s" % (httpauth.upstream,),
        )
    if httpauth.mode == "forward-auth":
        return (
            confirmer.forwardAuth(frontend),
            "forward-auth endpoint for %s (headers from %s only)"
            % (frontend.webServer.name, ", ".join(httpauth.trustedProxies) or "nobody"),
        )
    if httpauth.directory is not None:
        from xmppcomp.httpauth import ConfinedFile

        return (
            confirmer.protect(
                ConfinedFile(
                    httpauth.directory,
                    followSymlinks=httpauth.followSymlinks,
                    listDirectories=httpauth.listDirectories,
                ),
                frontend,
            ),
            "protects the directory %s" % (httpauth.directory,),
        )
    from xmppcomp.demo import DemoPage

    return (
        confirmer.protect(DemoPage(), frontend),
        "protects a built-in demo page (set [httpauth] directory or "
        "--http-directory to serve files)",
    )


def addHTTPAuth(
    parent: MultiService, component: Any, config: ComponentConfig, metrics: Metrics | None = None
) -> Any:
    """
    Add the XEP-0070 HTTP-auth confirmer: a L{ConfirmationRequester
    <xmppcomp.httpauth.ConfirmationRequester>} on C{component}, asking from
    C{[httpauth] from}, and a twisted.web L{Site} serving the configured
    mode on the C{listen} endpoint (an L{HTTPAuthListener} named
    L{HTTPAUTH_SERVICE}, child of C{parent}).

    @param metrics: where the confirmer counts, and what C{/metrics}
        serves (with C{[httpauth] metrics}); a registry of the
        confirmer's own when not given.
    @return: the L{HTTPAuthListener}.
    """
    from twisted.internet.endpoints import serverFromString
    from twisted.words.protocols.jabber.jid import JID

    from xmppcomp.httpauth import ConfirmationRequester, makeConfirmer

    httpauth = config.httpauth
    reactor = component.reactor
    if metrics is None:
        metrics = Metrics()
    asker = httpauth.fromHostname or component.hostnames[0]
    requester = ConfirmationRequester(
        JID(asker),
        reactor,
        timeout=httpauth.timeout,
        exactResource=httpauth.exactResource,
        metrics=metrics,
    )
    requester.setHandlerParent(component)
    # One JIDCache for the user names of the requests and the answers.
    confirmer = makeConfirmer(
        requester,
        httpauth.rules,
        reactor,
        httpauth.limits,
        serverTiming=httpauth.serverTiming,
        jids=requester.jids,
    )
    resource, what = _httpResource(httpauth, confirmer, reactor)
    if httpauth.metrics:
        resource = withMetrics(resource, metrics)
        what += "; /metrics (Prometheus, no authentication)"
    from xmppcomp.httpauth import ConfirmerSite

    site = ConfirmerSite(
        resource,
        reactor=reactor,
        maxBody=httpauth.maxBody,
        headTimeout=httpauth.headTimeout,
        challenge=confirmer.challenges,
        serverHeader=None if httpauth.serverHeader is None else httpauth.serverHeader.encode("ascii"),
        accessLog=httpauth.accessLog,
    )
    site.noisy = False
    from xmppcomp.admission import Admission, AdmissionGate, sourceKeyExcept, withBacklog

    try:
        endpoint = serverFromString(reactor, withBacklog(httpauth.listen, httpauth.listenBacklog))
    except Exception as e:
        raise ConfigError(f"httpauth.listen: {httpauth.listen!r}: {e}") from e
    # Open connections per client address and in all; trusted proxies
    # count in the total only.
    gate = AdmissionGate(
        Admission(httpauth.maxConnections, httpauth.maxConnectionsPerSource),
        reactor,
        "open HTTP connections",
        sourceKeyExcept(httpauth.trustedProxies),
    )
    rules = "; ".join(
        "%s: %s"
        % (
            rule.prefix,
            "anyone"
            if rule.anyone
            else ", ".join(sorted(rule.jids) + ["*@" + d for d in sorted(rule.domains)])
            or "nobody",
        )
        for rule in httpauth.rules.rules
    )
    listener = HTTPAuthListener(
        endpoint,
        site,
        httpauth.listen,
        "%s; confirmations asked from %s, %gs to answer; access: %s"
        % (what, asker, httpauth.timeout, rules),
        metrics=httpauth.metrics,
        gate=gate,
    )
    listener.confirmer = confirmer
    listener.setName(HTTPAUTH_SERVICE)
    listener.setServiceParent(parent)
    return listener


def addXTLS(component: Any, config: ComponentConfig, metrics: Metrics | None = None) -> Any:
    """
    Attach an L{XTLSHandler<xmppcomp.xtls.XTLSHandler>} to C{component}:
    with the configured certificate and trust; on an embedded router
    without them, with a certificate for the component's hostnames issued
    by the router's in-memory authority; with a server and no certificate,
    inactive (starts are answered C{service-unavailable}; the log says
    how to fix it). Disco then lists C{urn:xmpp:tmp:xtls} for the
    component's hostnames (through the disco handler already attached).

    @param metrics: where the handler counts tunnels and bytes; nowhere
        when not given.
    @return: the handler.
    @raise ConfigError: a file cannot be read any more.
    """
    from xmppcomp.stream import tls
    from xmppcomp.xtls import XTLSConfiguration, XTLSHandler

    xtls = config.xtls
    certificate: Any = None
    trust: tuple[Any, ...] = ()
    embedded = getattr(component, "embeddedRouter", None)
    if xtls.certificate is not None:
        assert xtls.trust is not None
        try:
            certificate = tls.loadPrivateCertificate(xtls.certificate, xtls.key)
            trust = tuple(tls.loadCertificates(xtls.trust))
        except tls.CertificateFileError as e:
            raise ConfigError(str(e)) from e
        origin = "certificate %s, peers' authorities from %s" % (xtls.certificate, xtls.trust)
    elif embedded is not None:
        certificate = embedded.issueXTLSCertificate(component.hostnames)
        trust = embedded.xtlsTrust
        origin = (
            "certificate issued at startup by the embedded router's in-memory "
            "authority, which the components on it trust"
        )
    else:
        origin = ""
    limits = xtls.limits
    handler = XTLSHandler(
        XTLSConfiguration(
            certificate=certificate,
            trust=trust,
            enabled=xtls.enabled,
            maxTunnels=limits.maxTunnels,
            maxTunnelsPerPeer=limits.maxTunnelsPerPeer,
            window=limits.window,
            chunkSize=limits.chunkSize,
            maxStanzaSize=limits.maxStanzaSize,
        ),
        component.reactor,
        metrics=metrics,
    )
    handler.setHandlerParent(component)
    names = ", ".join(component.hostnames)
    if certificate is None:
        log.warn(
            "XTLS endpoint for {names} is inactive: no certificate (starts are "
            "answered service-unavailable). Give [xtls] certificate, key and "
            "trust (or --xtls-certificate, --xtls-key, --xtls-trust), or "
            "[xtls] enabled = false (--no-xtls) to leave it out.",
            names=names,
        )
    else:
        log.info(
            "XTLS endpoint (urn:xmpp:tmp:xtls) for {names}: {origin}; at most "
            "{tunnels} tunnels, {perPeer} per peer",
            names=names,
            origin=origin,
            tunnels=limits.maxTunnels,
            perPeer=limits.maxTunnelsPerPeer,
        )
    return handler


def addServices(
    parent: MultiService, component: Any, config: ComponentConfig, metrics: Metrics | None = None
) -> None:
    """
    Add the services that work through the component to the tree: the
    XEP-0070 HTTP-auth confirmer (L{addHTTPAuth}, unless C{[httpauth]
    enabled = false}) and the XTLS endpoint (L{addXTLS}, unless C{[xtls]
    enabled = false}).

    @param parent: the top of the service tree.
    @param component: the component, already in C{parent}.
    @param config: the configuration.
    @param metrics: where they count (see L{addHTTPAuth}, L{addXTLS}).
    @raise ConfigError: a file cannot be read any more.
    """
    if config.httpauth.enabled:
        addHTTPAuth(parent, component, config, metrics)
    else:
        log.info("the HTTP-auth confirmer is off ([httpauth] enabled = false or --no-httpauth)")
    if config.xtls.enabled:
        addXTLS(component, config, metrics)
    else:
        log.info("the XTLS endpoint is off ([xtls] enabled = false or --no-xtls)")


class PluginProcess:
    """
    What a twistd plugin sets for its whole process, made by its
    C{makeService} and nowhere else (the library's services and
    L{serviceFromConfig} set nothing process-wide): the minimum level of
    xmppcomp's log events (L{logFilter}, installed at once by L{begin}),
    and, unless C{--no-gc-tuning}, the garbage collector's tuning while
    the service runs. When the service stops (the trees the tests start
    and stop), all of it is undone.

    The tuning: once the reactor runs, C{gc.freeze()}: every object made
    while starting (modules, classes, configuration, certificates) leaves
    the cyclic collector's sight, and its full collections walk only what
    the connections made since. And L{GC_THRESHOLDS}: young collections
    every 10,000 allocations instead of 700, so far fewer collections under
    load, each still small. The collections were the latency outliers:
    with bench/confirmer.py at 1,500 confirmations/s, the p99 latency the
    confirmer adds over the XMPP round trip went from 10-13 ms to 2.5-5 ms
    with the freeze, and to 1.7-2.2 ms with the thresholds as well. Frozen
    objects live as long as the process anyway; cyclic garbage waits a
    little longer for its collection.

    @ivar logFilter: the L{LogLevelFilter} of C{--log-level}.
    @ivar gcTuning: whether to tune the garbage collector.
    @ivar reactor: whose start triggers the freeze; C{None}: the global
        reactor.
    """

    def __init__(self, logLevel: str, gcTuning: bool = True, reactor: Any = None) -> None:
        """
        @param logLevel: the name of the lowest level of xmppcomp's log
            events to keep.
        @param gcTuning: whether to tune the garbage collector.
        @param reactor: whose start triggers the freeze; the global
            reactor by default.
        """
        self.logFilter = LogLevelFilter(logLevel)
        self.gcTuning = gcTuning
        self.reactor = reactor
        self._previousThresholds: tuple[int, ...] | None = None

    @classmethod
    def fromOptions(cls, options: usage.Options) -> PluginProcess:
        """
        The settings of a plugin's checked options (C{--log-level},
        C{--no-gc-tuning}).
        """
        return cls(options["log-level"], gcTuning=not options["no-gc-tuning"])

    def begin(self) -> None:
        """
        From now on, drop xmppcomp's log events below the level.
        """
        self.logFilter.install()

    def start(self) -> None:
        """
        The service starts: tune the garbage collector (unless told not
        to), freezing once the reactor runs.
        """
        if not self.gcTuning:
            return
        import gc

        if self._previousThresholds is None:
            self._previousThresholds = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLDS)
        reactor = self.reactor
        if reactor is None:
            from twisted.internet import reactor
        reactor.callWhenRunning(gc.freeze)

    def stop(self) -> None:
        """
        The service stopped: undo what L{start} and L{begin} did.
        """
        import gc

        if self._previousThresholds is not None:
            gc.unfreeze()
            gc.set_threshold(*self._previousThresholds)
            self._previousThresholds = None
        self.logFilter.uninstall()


class ComponentServices(MultiService):
    """
    The top of the tree: children start in the order they were added and
    stop one after the other in reverse order, so the component closes its
    stream before the embedded router shuts down.

    @ivar metrics: where the tree's services count.
    @ivar process: the process-wide settings of C{twistd xmppcomp}
        (L{makeService} sets them), started and stopped with the tree;
        C{None}: none (a tree built by L{serviceFromConfig}).
    """

    process: PluginProcess | None = None

    def __init__(self, metrics: Metrics | None = None) -> None:
        """
        @param metrics: where the tree's services count; a registry of
            the tree's own when not given.
        """
        super().__init__()
        self.metrics = Metrics() if metrics is None else metrics

    def startService(self) -> None:
        super().startService()
        if self.process is not None:
            self.process.start()

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        Service.stopService(self)
        try:
            for service in reversed(list(self)):
                if service.running:
                    yield defer.maybeDeferred(service.stopService)
        finally:
            if self.process is not None:
                self.process.stop()


class _ReadyLog(Service):
    """
    Logs once the component is connected and bound, and, with the embedded
    router, how to run against a real server and how to stop.
    """

    def __init__(self, component: Any, config: ComponentConfig) -> None:
        self.component = component
        self.config = config

    def startService(self) -> None:
        super().startService()
        from xmppcomp.embedded import negotiationSummary

        component = self.component
        if self.config.embedded:
            # EmbeddedRouter.watch logs the connection itself.
            component.whenReady().addCallback(
                lambda _: log.info(
                    "xmppcomp is running: component {names} on the embedded "
                    "router (no server configured: a local setup for trying "
                    "things out; to connect to a real server, give --server "
                    "or [component] server in --config FILE, see "
                    "docs/examples/component.toml). Stop it with Ctrl-C, or "
                    "kill the twistd process (twistd.pid).",
                    names=", ".join(component.boundHostnames),
                )
            )
            return
        component.whenReady().addCallback(
            lambda _: log.info(
                "component {names} connected to {server} and bound ({how})",
                names=", ".join(component.boundHostnames),
                server=component.server,
                how=negotiationSummary(component),
            )
        )


def serviceFromConfig(
    config: ComponentConfig, reactor: Any = None, metrics: Metrics | None = None
) -> ComponentServices:
    """
    Build the service tree of a configuration (see the module docstring).
    Nothing process-wide is set (see L{PluginProcess} for what
    L{makeService} adds).

    @param config: the checked configuration.
    @param reactor: the reactor (default: the global one).
    @param metrics: where the tree's services count (and what C{/metrics}
        serves); a registry of the tree's own when not given.
    @raise ConfigError: a file named by C{config} cannot be read any more.
    """
    top = ComponentServices(metrics)
    if config.embedded:
        from xmppcomp.embedded import EmbeddedComponent, EmbeddedRouter

        embedded = EmbeddedRouter(
            config.hostnames,
            domain=config.serverDomain,
            identity=config.identity,
            port=config.embeddedPort,
            reactor=reactor,
            metrics=top.metrics,
        )
        embedded.setName(EMBEDDED_SERVICE)
        embedded.setServiceParent(top)
        component: Any = EmbeddedComponent(
            embedded, requireTLS=config.requireTLS, metrics=top.metrics, **_limits(config)
        )
        embedded.watch(component)
    else:
        component = makeComponent(config, reactor, metrics=top.metrics)
    component.setName(COMPONENT_SERVICE)
    addDiscovery(component)
    component.setServiceParent(top)
    _ReadyLog(component, config).setServiceParent(top)
    addServices(top, component, config, top.metrics)
    if config.embedded:
        from xmppcomp.demo import addDemo

        listener = (
            top.getServiceNamed(HTTPAUTH_SERVICE) if config.httpauth.enabled else None
        )
        addDemo(top, embedded, component, listener)
    return top


def makeService(options: Options) -> IService:
    """
    Build the service tree for C{twistd xmppcomp} from the checked options.

    The process-wide settings (C{--log-level}, C{--no-gc-tuning}; see
    L{PluginProcess}) are made here, and only here: the log level is in
    force from now on, the rest once the tree starts; all of it ends when
    the tree stops.

    @param options: parsed L{Options}.
    @raise SystemExit: a file the configuration names cannot be read any
        more (it was when the options were checked).
    """
    process = PluginProcess.fromOptions(options)
    process.begin()
    try:
        top = serviceFromConfig(options.componentConfig, metrics=Metrics())
    except ConfigError as e:
        process.stop()
        raise SystemExit(f"{_COMMAND}: {e}") from e
    except BaseException:
        process.stop()
        raise
    top.process = process
    return top
