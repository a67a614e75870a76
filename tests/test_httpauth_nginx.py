# -*- test-case-name: tests.test_httpauth_nginx -*-
"""
XEP-0070 behind a real nginx (the Debian package, private configuration,
L{tests.nginx}): nginx serves static files and protects C{/private/} with
C{auth_request} pointing at L{Confirmer.forwardAuth}, served by a
twisted.web L{Site} on 127.0.0.1; the confirmer asks the user logged in to
a real Prosody through our L{Component} (the setup of
L{tests.test_httpauth_e2e.ConfirmerMixin}).

What it proves: nginx answers 401 with the confirmer's C{Basic
realm="xmpp"} challenge; credentials the XMPP user approves give 200 and
nginx's static content (and the JID in C{X-Auth-JID}); denied ones 403;
the user is asked about the exact URL the browser requested (port
included); the page's assets pass in the session without asking again; a
user who never answers gets 401 again (nginx turns anything but 2xx, 401
and 403 into a 500, so the forward-auth endpoint maps a timeout to a new
challenge).

Skipped only when the nginx or prosody binaries are missing (CI installs
both).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from xmppcomp.httpauth._frontend import loopbackFrontend

from .nginx import requireNginx, startNginx
from .test_httpauth_e2e import CSS, PAGE, PNG, ConfirmerMixin, confirmOf

#: What nginx serves from its private root.
FILES = {
    "private/index.html": PAGE,
    "private/style.css": CSS,
    "private/logo.png": PNG,
    "public/hello.txt": b"hello, anyone\n",
}


class NginxForwardAuthTests(ConfirmerMixin, TestCase):
    """
    nginx C{auth_request} in front of static files, answered by our
    forward-auth endpoint, confirmed over XMPP.
    """

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        requireNginx()
        yield ConfirmerMixin.setUp(self)
        authPort = yield self.listen(self.confirmer.forwardAuth(loopbackFrontend()))
        self.site = yield startNginx(self, authPort, FILES)

    def wait(self, d: defer.Deferred[Any], what: str) -> defer.Deferred[Any]:
        """
        Like L{ConfirmerMixin.wait}, with the end of nginx's error log in
        the failure message too.
        """

        def explain(failure: Any) -> Any:
            if failure.check(self.failureException):
                harness = getattr(self, "nginxHarness", None)
                if harness is not None:
                    raise self.failureException(
                        "%s\n%s" % (failure.value, harness.logTail())
                    )
            return failure

        return ConfirmerMixin.wait(self, d, what).addErrback(explain)

    @defer.inlineCallbacks
    def test_challenge(self) -> Any:
        """
        Without credentials nginx answers 401 with the confirmer's first
        challenge, C{Basic realm="xmpp"}; the public location needs none.
        """
        response, _ = yield self.fetch(self.site.url("/private/index.html"))
        self.assertEqual(response.code, 401)
        self.assertEqual(
            response.headers.getRawHeaders(b"www-authenticate"), [b'Basic realm="xmpp"']
        )
        response, body = yield self.fetch(self.site.url("/public/hello.txt"))
        self.assertEqual((response.code, body), (200, FILES["public/hello.txt"]))
        self.assertEqual(self.user.received, 0)

    @defer.inlineCallbacks
    def test_approved(self) -> Any:
        """
        Credentials the user approves (IQ form) give nginx's static file,
        with the JID in C{X-Auth-JID}; the user was asked about the URL
        the client requested; the page's assets then pass without asking.
        """
        who = self.user.jid.full()
        url = self.site.url("/private/index.html")
        pending = self.fetch(url, (who, "nginx-yes"))
        iq = yield self.nextRequest()
        self.assertAsked(iq, "iq", "nginx-yes", url)
        self.user.approveIQ(iq)
        response, body = yield pending
        self.assertEqual((response.code, body), (200, PAGE))
        self.assertEqual(response.headers.getRawHeaders(b"x-auth-jid"), [who.encode("utf-8")])
        self.assertEqual(response.headers.getRawHeaders(b"www-authenticate"), None)

        for path, content in (("/private/style.css", CSS), ("/private/logo.png", PNG)):
            response, body = yield self.fetch(self.site.url(path), (who, "nginx-yes"))
            self.assertEqual((response.code, body), (200, content))
        self.assertEqual(self.user.received, 1)

    @defer.inlineCallbacks
    def test_denied(self) -> Any:
        """
        Credentials the user denies give 403 from nginx, and nginx's body
        is not the protected file; the transaction id is used up (a
        replay: 401, so the browser asks for new credentials).
        """
        who = self.user.jid.full()
        url = self.site.url("/private/index.html")
        pending = self.fetch(url, (who, "nginx-no"))
        iq = yield self.nextRequest()
        self.assertAsked(iq, "iq", "nginx-no", url)
        self.user.denyIQ(iq)
        response, body = yield pending
        self.assertEqual(response.code, 403)
        self.assertNotIn(PAGE, body)
        response, _ = yield self.fetch(url, (who, "nginx-no"))
        self.assertEqual(response.code, 401)
        self.assertEqual(self.user.received, 1)

    @defer.inlineCallbacks
    def test_messageForm(self) -> Any:
        """
        A bare JID is asked with a message; a plain-text "yes" in the
        thread gives the file through nginx.
        """
        who = self.user.jid.userhost()
        url = self.site.url("/private/style.css")
        pending = self.fetch(url, (who, "nginx-msg"))
        message = yield self.nextRequest()
        self.assertAsked(message, "message", "nginx-msg", url)
        self.user.answerText(message, "yes")
        response, body = yield pending
        self.assertEqual((response.code, body), (200, CSS))

    @defer.inlineCallbacks
    def test_timeout(self) -> Any:
        """
        A user who never answers (requester timeout 2 s) gets 401 with the
        challenge again, not nginx's 500; answering the next attempt with
        the same credentials lets the file through.
        """
        self.requester.timeout = 2.0
        who = self.user.jid.full()
        url = self.site.url("/private/index.html")
        pending = self.fetch(url, (who, "nginx-slow"))
        ignored = yield self.nextRequest()
        response, _ = yield pending
        self.assertEqual(response.code, 401)
        self.assertEqual(
            response.headers.getRawHeaders(b"www-authenticate"), [b'Basic realm="xmpp"']
        )
        pending = self.fetch(url, (who, "nginx-slow"))
        iq = yield self.nextRequest()
        self.assertNotEqual(iq["id"], ignored["id"])
        self.assertEqual(confirmOf(iq).transactionId, "nginx-slow")
        self.user.approveIQ(iq)
        response, body = yield pending
        self.assertEqual((response.code, body), (200, PAGE))


class NginxBypassTests(ConfirmerMixin, TestCase):
    """
    Before: behind nginx configured as the tutorial said,
    C{/public/../private/secret.txt}, C{/%70rivate/secret.txt},
    C{//private/secret.txt} and C{/./private/secret.txt} gave 200 to a
    user the access rules do not allow on C{/private/}, since the rules saw
    the raw URI and nginx served the decoded one; and a client's
    C{X-Original-URL} chose the URL the user was asked about.
    """

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        requireNginx()
        yield ConfirmerMixin.setUp(self)
        from xmppcomp.httpauth import AccessRule, AccessRules, makeConfirmer

        self.confirmer = makeConfirmer(
            self.requester,
            AccessRules([AccessRule("/", anyone=True), AccessRule("/private/", jids=["romeo@montague.lit"])]),
            self.ledgerClock,
            self.limits,
        )
        authPort = yield self.listen(self.confirmer.forwardAuth(loopbackFrontend()))
        files = dict(FILES)
        files["private/secret.txt"] = b"the secret\n"
        self.site = yield startNginx(self, authPort, files)

    @defer.inlineCallbacks
    def test_bypassesRefused(self) -> Any:
        """
        Each spelling of C{/private/secret.txt} is decided on as that path:
        403 from nginx, nobody asked, the secret not served.
        """
        from twisted.internet import reactor

        from .rawhttp import basicValue, rawRequest

        for target in [
            b"/public/../private/secret.txt",
            b"/%70rivate/secret.txt",
            b"//private/secret.txt",
            b"/./private/secret.txt",
            b"/private%2fsecret.txt",
        ]:
            answer = yield self.wait(
                rawRequest(
                    reactor,
                    self.site.port,
                    target,
                    [(b"Authorization", basicValue(self.user.jid.full(), "t1"))],
                ),
                "nginx's answer",
            )
            self.assertEqual(answer.status, 403, target)
            self.assertNotIn(b"the secret", answer.body)
        self.assertEqual(self.user.received, 0)

    @defer.inlineCallbacks
    def test_clientURLIgnored(self) -> Any:
        """
        A client's C{X-Original-URL} (which nginx passes on) does not
        choose the URL the user is asked about.
        """
        from twisted.internet import reactor

        from .rawhttp import basicValue, rawRequest

        pending = self.wait(
            rawRequest(
                reactor,
                self.site.port,
                b"/public/../private/index.html",
                [
                    (b"Authorization", basicValue(self.user.jid.full(), "t2")),
                    (b"X-Original-URL", b"https://bank.example/transfer?to=mallory"),
                    (b"X-Forwarded-Host", b"bank.example"),
                ],
            ),
            "nginx's answer",
        )
        answer = yield pending
        # Only romeo may see /private/: refused without asking, whatever
        # URL the client claimed.
        self.assertEqual(answer.status, 403)
        self.assertEqual(self.user.received, 0)
        pending = self.wait(
            rawRequest(
                reactor,
                self.site.port,
                b"/public/./hello.txt?x=1",
                [(b"X-Original-URL", b"https://bank.example/transfer")],
            ),
            "nginx's answer",
        )
        answer = yield pending
        self.assertEqual(answer.status, 200)
