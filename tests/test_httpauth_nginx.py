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
        authPort = yield self.listen(self.confirmer.forwardAuth())
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
        is not the protected file; the transaction id stays refused.
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
        self.assertEqual(response.code, 403)
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
