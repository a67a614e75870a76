# -*- test-case-name: tests.test_mainjob -*-
"""
The demo of C{twistd -n xmppcomp} with no server configured: everything a
full XEP-0070 confirmation needs, on one machine.

Without a server, the component runs against an embedded router
(L{xmppcomp.embedded}). Nobody is logged in to that router to confirm
anything, so L{addDemo} starts a second component on it, the B{demo
agent}, at the hostname C{agent.<router domain>} (C{agent.localhost} by
default). The router delivers every stanza addressed to that hostname or
to any JID at it (C{demo@agent.localhost/web}, ...) to the agent, which
answers XEP-0070 confirmation requests with a L{ConfirmationResponder}
and L{demoPolicy}:

  - a transaction id starting with C{deny} is denied (the HTTP client
    gets 403);
  - one starting with C{wait} is left unanswered, as by a user who never
    looks (the HTTP client gets 504 after C{[httpauth] timeout});
    C{bench/confirmer.py} uses it to hold confirmations pending;
  - any other is confirmed (200).

Two demo users live at the agent: C{demo@agent.localhost} confirms in the
clear, and C{secure@agent.localhost} confirms only through an XTLS
tunnel (issue 21): the agent has its own XTLS endpoint, with a
certificate naming C{secure@agent.localhost} issued by the embedded
router's XTLS authority, and answers that JID's plaintext questions
C{policy-violation}; the main job's access rules require XTLS for it
(L{demoRules}), so the confirmer opens a tunnel to
C{secure@agent.localhost/web}, checks the certificate and takes only the
answer that comes back through it. A bare C{secure@agent.localhost} gets
401 ("a full JID is needed").

It logs each request it answers. Once the HTTP listener listens and both
components are bound, L{addDemo}'s hints service logs the C{curl}
commands to try with the listener's real address: no credentials (401),
C{tx-1} (200, confirmed by the agent), C{deny-2} (403), and the XTLS
user's C{tx-3} (200, confirmed through a tunnel).

The built-in page served in C{protect} mode when no directory is
configured (L{DemoPage}) lives here too.
"""

from __future__ import annotations

from html import escape

import attrs
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.words.protocols.jabber import jid
from twisted.web.resource import Resource

from xmppcomp.component import Component
from xmppcomp.disco import addDiscovery
from xmppcomp.embedded import EmbeddedComponent, EmbeddedRouter
from xmppcomp.httpauth import (
    JID_HEADER,
    ConfirmationResponder,
    HTTPAuthListener,
    IncomingConfirmation,
    listeningURL,
)
from xmppcomp.httpauth import AccessRules
from xmppcomp.logs import Logger
from xmppcomp.xtls import XTLSConfiguration, XTLSHandler, XTLSLimits

__all__ = [
    "DEMO_AGENT",
    "DEMO_JID",
    "DEMO_XTLS_JID",
    "DemoPage",
    "addDemo",
    "demoAgentHost",
    "demoPolicy",
    "demoRules",
]

log = Logger()

#: The first label of the demo agent's hostname (below the router's domain).
DEMO_AGENT = "agent"

#: The localpart and resource of the JID the hints use, at the agent's
#: hostname.
DEMO_JID = "demo@%s/web"

#: The demo user who confirms only through XTLS, at the agent's hostname.
DEMO_XTLS_JID = "secure@%s/web"

#: Transaction ids starting with this are denied by L{demoPolicy}.
DENY_PREFIX = "deny"

#: Transaction ids starting with this are never answered by L{demoPolicy}.
WAIT_PREFIX = "wait"

#: The name of the demo agent in the service tree.
DEMO_SERVICE = "demo-agent"


def demoAgentHost(domain: str) -> str:
    """
    The demo agent's hostname on an embedded router for C{domain}.
    """
    return "%s.%s" % (DEMO_AGENT, domain)


def _xtlsUser(agentHost: str) -> str:
    return jid.JID(DEMO_XTLS_JID % (agentHost,)).userhost()


def demoRules(rules: AccessRules, agentHost: str) -> AccessRules:
    """
    C{rules}, with confirmations for the demo's XTLS user
    (L{DEMO_XTLS_JID}) required through XTLS wherever they apply.
    """
    user = _xtlsUser(agentHost)
    return AccessRules(
        attrs.evolve(rule, xtlsFor=rule.xtlsFor | {user}) for rule in rules.rules
    )


def demoPolicy(incoming: IncomingConfirmation) -> bool | Deferred[bool]:
    """
    The demo agent's answer: confirm, unless the transaction id starts
    with C{deny} (deny) or C{wait} (no answer ever: a L{Deferred} that
    never fires, dropped with the request). Logs each answer.
    """
    if incoming.request.transactionId.startswith(WAIT_PREFIX):
        log.debug(
            "demo agent: leaving {method} {url} for {who} unanswered (transaction id {transaction!r})",
            method=incoming.request.method,
            url=incoming.request.url,
            who=incoming.recipient.full(),
            transaction=incoming.request.transactionId,
        )
        return Deferred()
    allowed = not incoming.request.transactionId.startswith(DENY_PREFIX)
    log.info(
        "demo agent: {verdict} {method} {url} for {who} (transaction id "
        "{transaction!r}, asked by {asker} via {form}{tunnel}){why}",
        verdict="confirmed" if allowed else "denied",
        method=incoming.request.method,
        url=incoming.request.url,
        who=incoming.recipient.full(),
        transaction=incoming.request.transactionId,
        asker=incoming.sender.full(),
        form="message" if incoming.viaMessage else "IQ",
        tunnel=" through XTLS" if incoming.tunnelled else "",
        why="" if allowed else " (it starts with %r)" % (DENY_PREFIX,),
    )
    return allowed


_PAGE = """\
<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>xmppcomp</title></head>
<body>
<h1>Confirmed over XMPP</h1>
<p>Hello, <strong>{jid}</strong>. This page is protected by the XEP-0070
HTTP-auth confirmer of <code>twistd xmppcomp</code>: your JID confirmed this
request.</p>
<p>To serve your own files instead, set <code>directory</code> in the
<code>[httpauth]</code> table of the configuration, or give
<code>--http-directory DIR</code>.</p>
</body>
</html>
"""


class DemoPage(Resource):
    """
    The page served in C{protect} mode when no directory is configured:
    C{/} greets the confirmed JID (from L{JID_HEADER}); any other path
    gets a 404.
    """

    isLeaf = True

    def render_GET(self, request: IRequest) -> bytes:
        if request.postpath not in ([], [b""]):
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"Not found: this demo has only one page, /\n"
        who = request.getHeader(JID_HEADER)
        jid = who.decode("utf-8", "replace") if who else "(unknown)"
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return _PAGE.format(jid=escape(jid)).encode("utf-8")


class DemoHints(Service):
    """
    Logs what to try once the HTTP listener listens and both components
    are bound.

    @ivar ready: fires (with the URL, or C{None}) once the hints are
        logged; for tests.
    """

    def __init__(
        self, listener: HTTPAuthListener, components: list[Component], agentHost: str, xtls: bool = False
    ) -> None:
        self._listener = listener
        self._components = components
        self._agentHost = agentHost
        self._xtls = xtls
        self.ready: defer.Deferred[str | None] = defer.Deferred()

    def startService(self) -> None:
        super().startService()
        # Any: gatherResults takes Deferreds of one type (Deferred is
        # invariant); these fire with the port, then None for each component.
        waits: list[Deferred[Any]] = [self._listener.whenListening()]
        waits += [c.whenReady() for c in self._components]
        d = defer.gatherResults(waits, consumeErrors=True).addCallback(
            lambda results: self._log(results[0])
        )
        d.addErrback(self._failed)
        d.chainDeferred(self.ready)

    def _failed(self, failure: Failure) -> None:
        # The listener logs its own failure; say only why no hints come.
        log.info(
            "no demo hints: {why}",
            why=failure.value.subFailure.getErrorMessage()
            if isinstance(failure.value, defer.FirstError)
            else failure.getErrorMessage(),
        )

    def _log(self, port: IListeningPort) -> str | None:
        url = listeningURL(port, self._listener.secure)
        if url is None:
            return None
        who = DEMO_JID % (self._agentHost,)
        insecure = "-k " if self._listener.secure else ""
        log.info(
            "Demo: the demo agent {agent} confirms XEP-0070 requests for any JID "
            "at it, unless the transaction id starts with {deny!r}. Try:\n"
            "  curl {k}-i {url}\n"
            "      401, asks for a JID and a transaction id\n"
            "  curl {k}-i -u '{who}:tx-1' {url}\n"
            "      200, confirmed by the demo agent (the same credentials "
            "pass again from this client and site for the session lifetime; "
            "elsewhere, or later, they are a replay: 401)\n"
            "  curl {k}-i -u '{who}:deny-2' {url}\n"
            "      403, denied by the demo agent{xtls}{metrics}",
            agent=self._agentHost,
            deny=DENY_PREFIX,
            url=url,
            who=who,
            k=insecure,
            xtls="\n  curl %s-i -u '%s:tx-3' %s\n"
            "      200, confirmed end to end: through an XTLS tunnel to %s, whose "
            "certificate names it (the server only relays ciphertext)"
            % (insecure, DEMO_XTLS_JID % (self._agentHost,), url, DEMO_XTLS_JID % (self._agentHost,))
            if self._xtls
            else "",
            metrics="\n  curl %s%smetrics\n      the Prometheus metrics "
            "(confirmations by outcome, ...)" % (insecure, url)
            if self._listener.metrics
            else "",
        )
        return url


def addDemo(
    parent: MultiService,
    embedded: EmbeddedRouter,
    component: Component,
    listener: HTTPAuthListener | None,
    xtlsDemo: bool = False,
    xtlsLimits: XTLSLimits | None = None,
) -> EmbeddedComponent | None:
    """
    Add the demo agent (and, with an HTTP listener, the hints) to the tree
    of a component running on an embedded router.

    Call it before the tree starts: the agent's identity is added to the
    router (L{EmbeddedRouter.addIdentity
    <xmppcomp.embedded.EmbeddedRouter.addIdentity>}).

    @param parent: the top of the service tree, which holds C{embedded}.
    @param embedded: the L{xmppcomp.embedded.EmbeddedRouter}.
    @param component: the main component.
    @param listener: the HTTP-auth listener service
        (L{xmppcomp.httpauth.HTTPAuthListener}), or C{None}.
    @param xtlsDemo: whether the confirmer asks L{DEMO_XTLS_JID} through
        XTLS (its rules are L{demoRules}), so the hints show it.
    @param xtlsLimits: the limits of the agent's XTLS endpoint (the
        component's C{[xtls.limits]}, so that raising them raises both
        ends'); the defaults without it.
    @return: the agent (an L{xmppcomp.embedded.EmbeddedComponent}), or
        C{None} when its hostname is taken by the component.
    """
    agentHost = demoAgentHost(embedded.domain)
    try:
        embedded.addIdentity(agentHost, [agentHost])
    except ValueError as e:
        log.info("no demo agent: {why}", why=e)
        return None
    agent = EmbeddedComponent(
        embedded,
        identity=agentHost,
        maxQueued=component.maxQueued,
        negotiationTimeout=component.negotiationTimeout,
    )
    agent.setName(DEMO_SERVICE)
    addDiscovery(agent)
    user = _xtlsUser(agentHost)
    xtls = XTLSHandler(
        XTLSConfiguration(
            certificate=embedded.issueXTLSCertificate([agentHost], [user]),
            trust=embedded.xtlsTrust,
            **attrs.asdict(xtlsLimits or XTLSLimits(), recurse=False),
        ),
        clock=agent.reactor,
    )
    xtls.setHandlerParent(agent)
    ConfirmationResponder(
        demoPolicy, xtls=xtls, requireXTLS=lambda recipient: recipient.userhost() == user
    ).setHandlerParent(agent)
    agent.setServiceParent(parent)
    embedded.watch(agent)
    if listener is not None:
        DemoHints(listener, [component, agent], agentHost, xtls=xtlsDemo).setServiceParent(parent)
    return agent
