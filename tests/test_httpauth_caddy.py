# -*- test-case-name: tests.test_httpauth_caddy -*-
"""
XEP-0070 behind a real Caddy (the Debian package, private configuration,
L{tests.caddy}): Caddy serves static files and protects C{/private/} with
C{forward_auth} pointing at L{Confirmer.forwardAuth} with the C{caddy}
profile; the confirmer asks the user logged in to a real Prosody through
our L{Component} (L{tests.test_httpauth_e2e.ConfirmerMixin}).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from xmppcomp.httpauth import AccessRule, AccessRules, makeConfirmer
from xmppcomp.httpauth._frontend import loopbackFrontend

from .caddy import requireCaddy, startCaddy
from .rawhttp import basicValue, rawRequest
from .test_httpauth_e2e import PAGE, ConfirmerMixin, confirmOf

FILES = {
    "private/index.html": PAGE,
    "private/secret.txt": b"the secret\n",
    "public/hello.txt": b"hello, anyone\n",
}


class CaddyForwardAuthTests(ConfirmerMixin, TestCase):
    """
    Caddy's C{forward_auth} in front of static files: C{/private/} for the
    test user, C{/private/secret.txt} for someone else.
    """

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        requireCaddy()
        yield ConfirmerMixin.setUp(self)
        self.confirmer = makeConfirmer(
            self.requester,
            AccessRules(
                [
                    AccessRule("/", anyone=True),
                    AccessRule("/private/secret.txt", jids=["romeo@montague.lit"]),
                ]
            ),
            self.ledgerClock,
            self.limits,
        )
        authPort = yield self.listen(self.confirmer.forwardAuth(loopbackFrontend(webServer="caddy")))
        self.site = yield startCaddy(self, authPort, FILES)

    def get(self, target: bytes, headers: list[tuple[bytes, bytes]] = []) -> Any:
        return self.wait(rawRequest(reactor, self.site.port, target, headers), "Caddy's answer")

    @defer.inlineCallbacks
    def test_challengeAndApproval(self) -> Any:
        """
        Without credentials Caddy passes the confirmer's 401 and its
        challenges; approved credentials give the file and the JID; the
        user is asked about the URL the client requested.
        """
        answer = yield self.get(b"/private/index.html")
        self.assertEqual(answer.status, 401)
        self.assertEqual(answer.header(b"WWW-Authenticate")[0], b'Basic realm="xmpp"')
        who = self.user.jid.full()
        pending = self.get(b"/private/index.html?a=1", [(b"Authorization", basicValue(who, "c1"))])
        iq = yield self.nextRequest()
        self.assertEqual(
            confirmOf(iq).url, "http://127.0.0.1:%d/private/index.html?a=1" % (self.site.port,)
        )
        self.user.approveIQ(iq)
        answer = yield pending
        self.assertEqual((answer.status, answer.body), (200, PAGE))
        self.assertEqual(answer.header(b"X-Auth-JID"), [who.encode("utf-8")])

    @defer.inlineCallbacks
    def test_bypassesRefused(self) -> Any:
        """
        Caddy cleans C{/../} and decodes C{%70}; the confirmer decides on
        that same path, so each spelling of C{/private/secret.txt} is 403
        for the test user, nobody asked.
        """
        who = self.user.jid.full()
        for target in [
            b"/private/x/../secret.txt",
            b"/private/%73ecret.txt",
            b"/private//secret.txt",
            b"/private/./secret.txt",
            b"/private%2fsecret.txt",
        ]:
            answer = yield self.get(target, [(b"Authorization", basicValue(who, "c2"))])
            self.assertEqual(answer.status, 403, target)
            self.assertNotIn(b"the secret", answer.body)
        self.assertEqual(self.user.received, 0)

    @defer.inlineCallbacks
    def test_clientHeadersChangeNothing(self) -> Any:
        """
        A client's own X-Forwarded-Uri, X-Forwarded-Method, X-Forwarded-Host
        and X-Original-URI do not change the URL asked about (Caddy sets
        its own X-Forwarded-*; the caddy profile reads no others).
        """
        who = self.user.jid.full()
        pending = self.get(
            b"/private/index.html",
            [
                (b"Authorization", basicValue(who, "c3")),
                (b"X-Forwarded-Uri", b"/transfer?to=mallory"),
                (b"X-Forwarded-Method", b"POST"),
                (b"X-Forwarded-Host", b"bank.example"),
                (b"X-Original-URI", b"/transfer"),
                (b"X-Forwarded-For", b"6.6.6.6"),
            ],
        )
        iq = yield self.nextRequest()
        asked = confirmOf(iq)
        self.assertEqual((asked.method, asked.url), ("GET", "http://127.0.0.1:%d/private/index.html" % (self.site.port,)))
        self.user.approveIQ(iq)
        answer = yield pending
        self.assertEqual(answer.status, 200)
