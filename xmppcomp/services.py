# -*- test-case-name: tests.test_tap,tests.test_routertap,tests.test_mainjob -*-
"""
The service trees of the twistd plugins, assembled from configuration
values: the one place that knows which services a configuration makes and
how they are wired. The plugins' C{makeService} (L{xmppcomp.tap},
L{xmppcomp.routertap}) call it; an application builds the same trees, or
parts of them, with the same functions.

The tree of a component (L{serviceFromConfig}, C{twistd xmppcomp})::

    ComponentServices
      EmbeddedRouter "embedded-router"  (only without a server; starts first)
      StoreService "httpauth-store"     (only with [httpauth.store] redis:
                                         the confirmer's state on Redis;
                                         starts before the component and
                                         the listener and stops after
                                         them, so that the answers the
                                         component still receives while
                                         it closes are relayed)
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
      DemoHints                         (logs the curl commands to try)

The router (L{routerServiceFromConfig}, C{twistd xmppcomp-router}) is one
L{RouterService}, which makes its own listeners.

Nothing here sets anything process-wide: a plugin hands its
L{PluginProcess} to the tree, which starts and stops it with itself.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

import attrs
from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IReactorTime
from twisted.internet.ssl import Certificate, PrivateCertificate
from twisted.web.client import Agent
from twisted.web.resource import IResource
from twisted.words.protocols.jabber.jid import JID

from xmppcomp._process import PluginProcess
from xmppcomp.admission import Admission, AdmissionGate, sourceKeyExcept, withBacklog
from xmppcomp.component import Component
from xmppcomp.config import ComponentConfig, ConfigError, HTTPAuthConfig, RouterConfig
from xmppcomp.demo import DemoPage, addDemo, demoAgentHost, demoRules
from xmppcomp.disco import addDiscovery
from xmppcomp.embedded import EmbeddedComponent, EmbeddedRouter, negotiationSummary
from xmppcomp.httpauth import (
    ConfinedFile,
    ConfirmationRequester,
    Confirmer,
    ConfirmerSite,
    Frontend,
    HTTPAuthListener,
    IConfirmationStore,
    RedisStore,
    makeConfirmer,
    Check,
    withHealth,
    parseRedisEndpoint,
)
from xmppcomp.logs import Logger
from xmppcomp.metrics import Metrics, withMetrics
from xmppcomp.router.service import RouterService
from xmppcomp.stream import tls
from xmppcomp.xtls import XTLSConfiguration, XTLSHandler

__all__ = [
    "COMPONENT_SERVICE",
    "EMBEDDED_SERVICE",
    "HTTPAUTH_SERVICE",
    "STORE_SERVICE",
    "ComponentServices",
    "StoreService",
    "PluginRouterService",
    "addHTTPAuth",
    "addServices",
    "addStore",
    "addXTLS",
    "makeComponent",
    "routerServiceFromConfig",
    "serviceFromConfig",
]

log = Logger()

_T = TypeVar("_T")

#: Names of the services in the component's tree.
COMPONENT_SERVICE = "component"
EMBEDDED_SERVICE = "embedded-router"
HTTPAUTH_SERVICE = "httpauth"
STORE_SERVICE = "httpauth-store"


class StoreService(Service):
    """
    Starts and stops a confirmer's store (its connections to Redis). A
    store that cannot start yet is logged, and keeps trying by itself: the
    confirmer answers 503 meanwhile.

    @ivar store: the store.
    """

    def __init__(self, store: IConfirmationStore) -> None:
        self.store = store

    def startService(self) -> None:
        super().startService()
        self.store.start().addErrback(
            lambda reason: log.error(
                "The confirmer's store is not ready: {reason}; answering 503 until it is",
                reason=reason.getErrorMessage(),
            )
        )

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        return self.store.stop()


def redisStoreFromConfig(httpauth: HTTPAuthConfig, reactor: IReactorTime) -> RedisStore:
    """
    The L{RedisStore} of C{[httpauth.store]}: read its password now, and
    its CA file when TLS is on.

    @raise ConfigError: the password or the CA file cannot be read.
    """
    store = httpauth.store
    assert store.redis is not None
    host, port = parseRedisEndpoint(store.redis)
    options = None
    if store.tls:
        try:
            trust = tls.trustCAFile(store.caFile) if store.caFile is not None else tls.trustSystem()
        except tls.CertificateFileError as e:
            raise ConfigError(f"[httpauth.store] ca_file: {e}") from e
        options = tls.clientTLSOptions(store.serverName or host, trust)
    return RedisStore(
        reactor,
        host,
        port,
        httpauth.rules,
        httpauth.limits,
        prefix=store.prefix,
        password=store.password.read() if store.password is not None else None,
        timeout=store.timeout,
        connectTimeout=store.connectTimeout,
        reconnectMaxDelay=store.reconnectMaxDelay,
        tls=options,
    )


def makeComponent(
    config: ComponentConfig,
    reactor: IReactorTime | None = None,
    componentClass: type[Component] | None = None,
    metrics: Metrics | None = None,
) -> Component:
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
    if config.server is None:
        raise ValueError("no server: use an EmbeddedRouter (see serviceFromConfig)")
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
        limits=config.limits,
    )


def _frontend(httpauth: HTTPAuthConfig) -> Frontend:
    """
    The L{Frontend<xmppcomp.httpauth.Frontend>} of the configured
    confirmer: where the site is, which proxies are trusted, which web
    server's headers forward-auth reads.
    """
    return Frontend(
        publicOrigin=httpauth.publicOrigin,
        allowedHosts=frozenset(httpauth.allowedHosts),
        trustedProxies=httpauth.trustedProxies,
        webServer=httpauth.webServer,
        askQuery=httpauth.askQuery,
    )


def _httpResource(httpauth: HTTPAuthConfig, confirmer: Confirmer, reactor: IReactorTime) -> tuple[IResource, str]:
    """
    The confirmer's resource for the configured mode, and what it serves
    (for the log).
    """
    frontend = _frontend(httpauth)
    if httpauth.mode == "proxy":
        assert httpauth.upstream is not None  # the configuration requires it in proxy mode
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
    return (
        confirmer.protect(DemoPage(), frontend),
        "protects a built-in demo page (set [httpauth] directory or "
        "--http-directory to serve files)",
    )


def _describeRules(httpauth: HTTPAuthConfig) -> str:
    """
    Who may access what, for the log.
    """
    return "; ".join(
        "%s: %s%s"
        % (
            rule.prefix,
            "anyone"
            if rule.anyone
            else ", ".join(sorted(rule.jids) + ["*@" + d for d in sorted(rule.domains)])
            or "nobody",
            " (confirmed through XTLS)"
            if rule.requireXTLS
            else " (through XTLS for %s)" % ", ".join(sorted(rule.xtlsFor))
            if rule.xtlsFor
            else "",
        )
        for rule in httpauth.rules.rules
    )


def addStore(parent: MultiService, config: ComponentConfig, reactor: IReactorTime) -> RedisStore | None:
    """
    Add the confirmer's shared store of C{[httpauth.store]} (a
    L{StoreService} named L{STORE_SERVICE}, child of C{parent}), if the
    confirmer is on and the table names a Redis.

    Add it before the component: the tree stops its children in reverse
    order, and the store must outlive the component's closing handshake,
    in which answers for another instance may still arrive and be relayed.

    @return: the store, or C{None} when there is none to add.
    """
    httpauth = config.httpauth
    if not httpauth.enabled or httpauth.store.redis is None:
        return None
    store = redisStoreFromConfig(httpauth, reactor)
    storeService = StoreService(store)
    storeService.setName(STORE_SERVICE)
    storeService.setServiceParent(parent)
    return store


def addHTTPAuth(
    parent: MultiService,
    component: Component,
    config: ComponentConfig,
    metrics: Metrics | None = None,
    store: RedisStore | None = None,
    xtls: XTLSHandler | None = None,
) -> HTTPAuthListener:
    """
    Add the XEP-0070 HTTP-auth confirmer: a L{ConfirmationRequester
    <xmppcomp.httpauth.ConfirmationRequester>} on C{component}, asking from
    C{[httpauth] from}, and a twisted.web L{Site} serving the configured
    mode on the C{listen} endpoint (an L{HTTPAuthListener} named
    L{HTTPAUTH_SERVICE}, child of C{parent}).

    @param metrics: where the confirmer counts, and what C{/metrics}
        serves (with C{[httpauth] metrics}); a registry of the
        confirmer's own when not given.
    @param store: the shared store that L{addStore} added to the tree
        before the component; without it, a C{[httpauth.store]} that names
        a Redis gets its store added here (after the component, so it
        stops first).
    @param xtls: the component's XTLS endpoint (L{addXTLS}), which
        confirmations the access rules require through XTLS
        (C{require_xtls}) go through; without it they fail (401).
    @return: the L{HTTPAuthListener}.
    @raise ConfigError: the C{listen} endpoint is not one.
    """
    httpauth = config.httpauth
    reactor = component.reactor
    if metrics is None:
        metrics = Metrics()
    asker = httpauth.fromHostname or component.hostnames[0]
    if store is None:
        store = addStore(parent, config, reactor)
    requester = ConfirmationRequester(
        JID(asker),
        reactor,
        timeout=httpauth.timeout,
        exactResource=httpauth.exactResource,
        metrics=metrics,
        relay=store,
        xtls=xtls,
        tunnelIdleTimeout=httpauth.tunnelIdleTimeout,
    )
    requester.setHandlerParent(component)
    _warnFewTunnels(config)
    # One JIDCache for the user names of the requests and the answers.
    confirmer = makeConfirmer(
        requester,
        httpauth.rules,
        reactor,
        httpauth.limits,
        serverTiming=httpauth.serverTiming,
        jids=requester.jids,
        store=store,
    )
    resource, what = _httpResource(httpauth, confirmer, reactor)
    if store is not None:
        what += f"; state on Redis at {store.where} (instance {store.instanceId})"
    if httpauth.metrics:
        resource = withMetrics(resource, metrics)
        what += "; /metrics (Prometheus, no authentication)"
    if httpauth.healthPath is not None:
        checks: dict[str, Check] = {"xmpp": component.isConnected, "accepting": lambda: not site.draining}
        if store is not None:
            checks["store"] = store.ping
        resource = withHealth(resource, httpauth.healthPath, checks)
        what += f"; {httpauth.healthPath} (health for load balancers, no authentication)"
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
    listener = HTTPAuthListener(
        endpoint,
        site,
        httpauth.listen,
        "%s; confirmations asked from %s, %gs to answer; access: %s"
        % (what, asker, httpauth.timeout, _describeRules(httpauth)),
        metrics=httpauth.metrics,
        gate=gate,
        drainTimeout=httpauth.drainTimeout,
        setting="httpauth.listen or --http-listen",
    )
    listener.confirmer = confirmer
    listener.setName(HTTPAUTH_SERVICE)
    listener.setServiceParent(parent)
    return listener


def addXTLS(component: Component, config: ComponentConfig, metrics: Metrics | None = None) -> XTLSHandler:
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
    xtls = config.xtls
    certificate: PrivateCertificate | None = None
    trust: tuple[Certificate, ...] = ()
    embedded = getattr(component, "embeddedRouter", None)
    if xtls.certificate is not None:
        try:
            certificate = tls.loadPrivateCertificate(xtls.certificate, xtls.key)
            if xtls.trust is not None:
                trust = tuple(tls.loadCertificates(xtls.trust))
        except tls.CertificateFileError as e:
            raise ConfigError(str(e)) from e
        origin = "certificate %s, peers' authorities from %s" % (
            xtls.certificate, xtls.trust or "nowhere (pinned peers only)")
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
            pins=dict(xtls.pins),
            enabled=xtls.enabled,
            **attrs.asdict(limits, recurse=False),
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
            "XTLS endpoint (urn:xmpp:tmp:xtls) for {names}: {origin}; {pinned} "
            "pinned peer(s); at most {tunnels} tunnels, {perPeer} per peer",
            names=names,
            origin=origin,
            pinned=len(xtls.pins),
            tunnels=limits.maxTunnels,
            perPeer=limits.maxTunnelsPerPeer,
        )
    return handler


def _warnFewTunnels(config: ComponentConfig) -> None:
    """
    Warn when C{[xtls.limits] max_tunnels} is below the tunnels that
    confirmations through XTLS may need at once: each user asked through
    XTLS holds one, so confirmations beyond the tunnels fail (401) before
    the confirmer's own limit is reached. A rule that requires XTLS of all
    its JIDs or of a domain may need C{[httpauth.limits] pending_total}; one
    that names bare JIDs, one each.
    """
    rules = config.httpauth.rules.rules
    tunnels, pending = config.xtls.limits.maxTunnels, config.httpauth.limits.pendingTotal
    named = {who for rule in rules for who in rule.xtlsFor}
    wide = any(rule.requireXTLS for rule in rules) or any("@" not in who for who in named)
    needed = pending if wide else min(pending, len(named))
    if tunnels < needed:
        log.warn(
            "[xtls.limits] max_tunnels ({tunnels}) is below the {needed} confirmations through XTLS "
            "that may wait at once ([httpauth.limits] pending_total is {pending}; the access rules "
            "require XTLS of {whom}): each user asked through XTLS holds a tunnel, so users beyond "
            "{tunnels} at once get 401. Raise max_tunnels to at least {needed}.",
            tunnels=tunnels,
            needed=needed,
            pending=pending,
            whom="every JID of a rule or of a domain" if wide else f"{len(named)} JIDs",
        )


def addServices(
    parent: MultiService,
    component: Component,
    config: ComponentConfig,
    metrics: Metrics | None = None,
    store: RedisStore | None = None,
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
    @param store: the confirmer's shared store, if L{addStore} added one
        (see L{addHTTPAuth}).
    @raise ConfigError: a file cannot be read any more.
    """
    xtls = None
    if config.xtls.enabled:
        xtls = addXTLS(component, config, metrics)
    else:
        log.info("the XTLS endpoint is off ([xtls] enabled = false or --no-xtls)")
    if config.httpauth.enabled:
        addHTTPAuth(parent, component, config, metrics, store, xtls)
    else:
        log.info("the HTTP-auth confirmer is off ([httpauth] enabled = false or --no-httpauth)")


class ComponentServices(MultiService):
    """
    The top of the tree: children start in the order they were added and
    stop one after the other in reverse order, so the component closes its
    stream before the embedded router shuts down.

    @ivar metrics: where the tree's services count.
    @ivar process: the process-wide settings of C{twistd xmppcomp}
        (its C{makeService} hands them over), started and stopped with
        the tree; C{None}: none (a tree an application builds).
    """

    process: PluginProcess | None = None

    def __init__(self, metrics: Metrics | None = None) -> None:
        """
        @param metrics: where the tree's services count; a registry of
            the tree's own when not given.
        """
        super().__init__()
        self.metrics = Metrics() if metrics is None else metrics

    def privilegedStartService(self) -> None:
        """
        Let the children that listen before privileges are shed (the
        HTTP-auth listener) listen; with a plugin's L{process}, one that
        cannot ends the process with one line
        (L{PluginProcess.listening}).
        """
        if self.process is None:
            super().privilegedStartService()
        else:
            self.process.listening(super().privilegedStartService)

    def startService(self) -> None:
        """
        Start the children in order, then the plugin's L{process}; with
        one, a listener that cannot listen (the embedded router's) ends
        the process with one line (L{PluginProcess.listening}).
        """
        if self.process is None:
            super().startService()
        else:
            self.process.listening(super().startService)
            self.process.start()

    @defer.inlineCallbacks
    def stopService(self) -> Generator[defer.Deferred[None], object, None]:
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

    def __init__(self, component: Component, config: ComponentConfig) -> None:
        self.component = component
        self.config = config

    def startService(self) -> None:
        super().startService()
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
    config: ComponentConfig,
    reactor: IReactorTime | None = None,
    metrics: Metrics | None = None,
    process: PluginProcess | None = None,
) -> ComponentServices:
    """
    Build the service tree of a component's configuration (see the module
    docstring).

    @param config: the checked configuration.
    @param reactor: the reactor (default: the global one).
    @param metrics: where the tree's services count (and what C{/metrics}
        serves); a registry of the tree's own when not given.
    @param process: the process-wide settings of a plugin, started and
        stopped with the tree (L{ComponentServices.process}); C{None}, the
        default, sets nothing process-wide.
    @raise ConfigError: a file named by C{config} cannot be read any more.
    """
    top = ComponentServices(metrics)
    embedded: EmbeddedRouter | None = None
    # The demo's XTLS user is asked through XTLS (one confirmer, XTLS on).
    xtlsDemo = (
        config.embedded
        and config.httpauth.enabled
        and config.xtls.enabled
        and config.httpauth.store.redis is None
    )
    if xtlsDemo:
        httpauth = config.httpauth
        rules = demoRules(httpauth.rules, demoAgentHost(config.serverDomain))
        config = attrs.evolve(config, httpauth=attrs.evolve(httpauth, rules=rules))
    if config.embedded:
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
        component: Component = EmbeddedComponent(
            embedded,
            requireTLS=config.requireTLS,
            metrics=top.metrics,
            limits=config.limits,
        )
        embedded.watch(component)
    else:
        component = makeComponent(config, reactor, metrics=top.metrics)
    store = addStore(top, config, component.reactor)
    component.setName(COMPONENT_SERVICE)
    addDiscovery(component)
    component.setServiceParent(top)
    _ReadyLog(component, config).setServiceParent(top)
    addServices(top, component, config, top.metrics, store)
    if embedded is not None:
        listener = top.getServiceNamed(HTTPAUTH_SERVICE) if config.httpauth.enabled else None
        addDemo(top, embedded, component, listener, xtlsDemo, config.xtls.limits)
    top.process = process
    return top


class PluginRouterService(RouterService):
    """
    A L{RouterService} that starts and stops a plugin's process-wide
    settings with itself.

    @ivar process: those settings; C{None}: none.
    """

    process: PluginProcess | None = None

    def startService(self) -> None:
        """
        Start the router and its listeners, then the plugin's L{process};
        with one, a listener that cannot listen ends the process with one
        line (L{PluginProcess.listening}).
        """
        if self.process is None:
            super().startService()
        else:
            self.process.listening(super().startService)
            self.process.start()

    def stopService(self) -> defer.Deferred[None]:
        d = super().stopService()
        d.addBoth(self._stopped)
        return d

    def _stopped(self, result: _T) -> _T:
        if self.process is not None:
            self.process.stop()
        return result


def routerServiceFromConfig(
    config: RouterConfig,
    reactor: IReactorTime | None = None,
    metrics: Metrics | None = None,
    process: PluginProcess | None = None,
) -> PluginRouterService:
    """
    Build the router service of a router's configuration; it makes its
    listeners, and serves its metrics on C{metrics_listen}.

    @param config: the checked configuration.
    @param reactor: the reactor (default: the global one).
    @param metrics: where the router counts; a registry of its own when
        not given.
    @param process: the process-wide settings of a plugin, started and
        stopped with the service; C{None}, the default, sets nothing
        process-wide.
    """
    service = PluginRouterService(config, reactor=reactor, metrics=metrics)
    service.process = process
    return service
