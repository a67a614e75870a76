# -*- test-case-name: tests.test_httpauth_web -*-
"""
Wiring: one L{Confirmer} per XMPP requester, making the three kinds of
protected resources, which share the store (so a session opened through
one is honoured by the others) and the Digest nonce secret.
"""

from __future__ import annotations

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.web.guard import BasicCredentialFactory, DigestCredentialFactory
from twisted.web.iweb import IAgent, IRequest
from twisted.web.resource import IResource

from xmppcomp.httpauth._checker import Requester, XMPPConfirmationChecker
from xmppcomp.httpauth._policy import AccessRules, Ledger, Limits
from xmppcomp.httpauth._protocol import REALM
from xmppcomp.httpauth._frontend import Frontend
from xmppcomp.httpauth._proxy import UpstreamProxyResource
from xmppcomp.httpauth._store import IConfirmationStore, MemoryStore
from xmppcomp.httpauth._web import ForwardAuthResource, ProtectedResource, _Authenticator
from xmppcomp.jids import JIDCache


@attrs.frozen
class Confirmer:
    """
    Makes XEP-0070 protected resources.

    @ivar checker: the twisted.cred checker (usable on its own too).
    @ivar ledger: the shared memory of transaction ids and sessions, when
        it is in this process (the L{MemoryStore}'s); C{None} for another
        store (L{store}).
    @ivar _authenticator: header decoding (Basic first, then Digest, realm
        C{xmpp}) around the checker.
    """

    checker: XMPPConfirmationChecker
    ledger: Ledger | None
    _authenticator: _Authenticator

    @property
    def store(self) -> IConfirmationStore:
        """
        Where the state is: the checker's store.
        """
        return self.checker.store

    def protect(self, wrapped: IResource, frontend: Frontend | str) -> IResource:
        """
        Protect a local resource (and its children), e.g. a
        L{xmppcomp.httpauth.ConfinedFile} directory.

        @param frontend: where the site is and which proxies are trusted;
            a string is the site's public origin (C{"https://example.net"}).
        """
        return ProtectedResource(wrapped, self._authenticator, _frontend(frontend))

    def proxy(self, upstream: str, agent: IAgent, frontend: Frontend | str) -> IResource:
        """
        Protect a reverse proxy to C{upstream}.

        @param agent: reaches the upstream, e.g. a
            L{twisted.web.client.Agent} (no cookie jar: cookies pass
            through per request, never shared between users).
        @param frontend: see L{protect}.
        """
        checked = _frontend(frontend)
        return ProtectedResource(
            UpstreamProxyResource(upstream, agent, checked.publicOrigin),
            self._authenticator,
            checked,
        )

    def challenges(self, request: IRequest) -> list[bytes]:
        """
        The C{WWW-Authenticate} values of a 401 for C{request} (Basic
        first, then Digest, realm C{xmpp}), for answers made outside the
        resources (L{xmppcomp.httpauth.ConfirmerSite}'s early refusals).
        """
        return self._authenticator.challengeValues(request)

    def forwardAuth(self, frontend: Frontend | str) -> IResource:
        """
        The endpoint for nginx C{auth_request}, Traefik ForwardAuth and
        Caddy C{forward_auth}.

        @param frontend: see L{protect}; its C{webServer} names the headers
            read, and only from its C{trustedProxies}.
        """
        return ForwardAuthResource(self._authenticator, _frontend(frontend))


def _frontend(value: Frontend | str) -> Frontend:
    return Frontend(publicOrigin=value) if isinstance(value, str) else value


def makeConfirmer(
    requester: Requester,
    rules: AccessRules,
    clock: IReactorTime,
    limits: Limits | None = None,
    serverTiming: bool = False,
    jids: JIDCache | None = None,
    store: IConfirmationStore | None = None,
) -> Confirmer:
    """
    Make a L{Confirmer}.

    @param requester: asks JIDs, usually a
        L{xmppcomp.httpauth.ConfirmationRequester} attached to the
        component's stream manager; its C{timeout} bounds each wait.
    @param rules: who may access which paths.
    @param clock: the time source for sessions, windows and replays.
    @param limits: lifetimes and pending limits (defaults: L{Limits}()).
    @param serverTiming: answers to requests that asked over XMPP carry
        C{Server-Timing: xmpp;dur=MS}, the confirmation's round trip.
    @param jids: parses the JIDs of the credentials of every request; by
        default the requester's own L{JIDCache} (a
        L{ConfirmationRequester<xmppcomp.httpauth.ConfirmationRequester>}'s
        C{jids}, which parses the answers too), else one of the
        confirmer's own.
    @param store: where the state is kept, e.g. a
        L{RedisStore<xmppcomp.httpauth.RedisStore>} shared by several
        confirmers (made with the same C{rules} and C{limits}); by default
        a L{MemoryStore} of a new L{Ledger}.
    """
    if jids is None:
        jids = requester.jids
    ledger: Ledger | None = None
    if store is None:
        ledger = Ledger(clock, rules, limits if limits is not None else Limits())
        store = MemoryStore(ledger)
    elif isinstance(store, MemoryStore):
        ledger = store.ledger
    checker = XMPPConfirmationChecker(requester, store, clock)
    realm = REALM.encode("ascii")
    factories = (BasicCredentialFactory(realm), DigestCredentialFactory(b"md5", realm))
    return Confirmer(checker, ledger, _Authenticator(checker, factories, serverTiming, jids))
