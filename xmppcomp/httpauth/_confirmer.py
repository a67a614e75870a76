# -*- test-case-name: tests.test_httpauth_web -*-
"""
Wiring: one L{Confirmer} per XMPP requester, making the three kinds of
protected resources, which share the ledger (so a session opened through
one is honoured by the others) and the Digest nonce secret.
"""

from __future__ import annotations

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.web.guard import BasicCredentialFactory, DigestCredentialFactory
from twisted.web.resource import IResource

from xmppcomp.httpauth._checker import Requester, XMPPConfirmationChecker
from xmppcomp.httpauth._policy import AccessRules, Ledger, Limits
from xmppcomp.httpauth._protocol import REALM
from xmppcomp.httpauth._web import (
    ForwardAuthResource,
    ProtectedResource,
    UpstreamProxyResource,
    _Authenticator,
)


@attrs.frozen
class Confirmer:
    """
    Makes XEP-0070 protected resources.

    @ivar checker: the twisted.cred checker (usable on its own too).
    @ivar ledger: the shared memory of transaction ids and sessions.
    @ivar _authenticator: header decoding (Basic first, then Digest, realm
        C{xmpp}) around the checker.
    """

    checker: XMPPConfirmationChecker
    ledger: Ledger
    _authenticator: _Authenticator

    def protect(self, wrapped: IResource, publicOrigin: str | None = None) -> IResource:
        """
        Protect a local resource (and its children), e.g. a
        L{twisted.web.static.File} directory.

        @param publicOrigin: scheme and authority clients use, when they
            differ from what this server sees (behind a TLS terminator).
        """
        return ProtectedResource(wrapped, self._authenticator, publicOrigin)

    def proxy(
        self, upstream: str, client: object, publicOrigin: str | None = None
    ) -> IResource:
        """
        Protect a reverse proxy to C{upstream}.

        @param client: a L{treq.client.HTTPClient} to reach the upstream.
        """
        return ProtectedResource(
            UpstreamProxyResource(upstream, client), self._authenticator, publicOrigin
        )

    def forwardAuth(self) -> IResource:
        """
        The endpoint for nginx C{auth_request}, Traefik ForwardAuth and
        Caddy C{forward_auth}.
        """
        return ForwardAuthResource(self._authenticator)


def makeConfirmer(
    requester: Requester,
    rules: AccessRules,
    clock: IReactorTime,
    limits: Limits | None = None,
    serverTiming: bool = False,
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
    """
    ledger = Ledger(clock, rules, limits if limits is not None else Limits())
    checker = XMPPConfirmationChecker(requester, ledger, clock)
    realm = REALM.encode("ascii")
    factories = (BasicCredentialFactory(realm), DigestCredentialFactory(b"md5", realm))
    return Confirmer(checker, ledger, _Authenticator(checker, factories, serverTiming))
