# -*- test-case-name: tests.test_httpauth_e2e -*-
"""
XEP-0070 end to end with real parts only: a real Prosody on loopback
(L{tests.prosody}), our L{Component} connected to it over XEP-0114 hosting
a L{ConfirmationRequester}, a twisted.web L{Site} on 127.0.0.1 serving
L{Confirmer.protect} of a small page (HTML, CSS, image), a user logged in
to Prosody who sees the confirmation requests and answers them as each
test decides, and a real HTTP client (treq over an L{Agent} and TCP).

What it proves, over the wire: 401 with C{Basic realm="xmpp"} first; the
IQ form for a full JID and the message form for a bare JID reach the user
with the method, the full URL and the transaction id; an approval gives
200 and a denial 403 (IQ error, message error, plain-text "no"); a
plain-text "yes" in the thread approves; the page's assets fetched with
the same credentials are asked once; a replayed transaction id is 403; a
user who never answers gets a 504 within the requester's timeout, and
asking again with the same credentials works; an IQ answered with
C{feature-not-implemented} falls back to the message form; our own
L{ConfirmationResponder}, on a second resource of the user, answers both
forms.

Skipped only when the prosody binaries are missing (CI installs them).

L{ConfirmerMixin} is shared with L{tests.test_httpauth_nginx}.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import treq
from treq.client import HTTPClient
from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.resource import IResource, Resource
from twisted.web.static import Data
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.protocols.jabber.jid import JID
from twisted.words.protocols.jabber.xmlstream import (
    INIT_FAILED_EVENT,
    STREAM_AUTHD_EVENT,
    toResponse,
)
from twisted.words.xish import domish
from wokkel.subprotocols import StreamManager

from xmppcomp.component import Component
from xmppcomp.httpauth import (
    JID_HEADER,
    AccessRules,
    ConfirmationRequester,
    ConfirmationResponder,
    ConfirmerSite,
    ConfirmRequest,
    IncomingConfirmation,
    Limits,
    makeConfirmer,
)
from xmppcomp.httpauth._frontend import loopbackFrontend
from xmppcomp.ns import NS_HTTP_AUTH
from xmppcomp.tap import ConnectionTracker

from .httphelpers import listenTracked
from .prosody import clientFactory
from .test_prosody import ProsodyMixin

#: The page and its assets.
PAGE = b"<html><link rel=stylesheet href=style.css><img src=logo.png>hi</html>\n"
CSS = b"body { color: #333 }\n"
PNG = b"\x89PNG\r\n\x1a\n-not-really-an-image-"

#: Characters left as they are when percent-encoding a credential field:
#: printable US-ASCII but C{%} (and C{:} in the user name).
_PASSWORD_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in "%")
_USER_SAFE = _PASSWORD_SAFE.replace(":", "")


def basic(who: str, transactionId: str) -> bytes:
    """
    An XEP-0070 Basic C{Authorization} value (section 4.3.1): non-ASCII
    characters (and C{%}) percent-encoded as UTF-8, then base64.
    """
    userid = quote(who, safe=_USER_SAFE, encoding="utf-8")
    password = quote(transactionId, safe=_PASSWORD_SAFE, encoding="utf-8")
    return b"Basic " + base64.b64encode(("%s:%s" % (userid, password)).encode("ascii"))


def confirmOf(stanza: domish.Element) -> ConfirmRequest:
    """
    The C{<confirm/>} a stanza carries.
    """
    for child in stanza.elements(NS_HTTP_AUTH, "confirm"):
        return ConfirmRequest.fromElement(child)
    raise AssertionError("no confirm element in %s" % (stanza.toXml(),))


def threadOf(stanza: domish.Element) -> str:
    """
    The text of the C{<thread/>} of a stanza (in its stream's namespace).
    """
    for child in stanza.elements():
        if child.name == "thread":
            return str(child)
    raise AssertionError("no thread in %s" % (stanza.toXml(),))


class WhoAmI(Resource):
    """
    Answers with the JID the protected resource was given in
    L{JID_HEADER}.
    """

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return request.getHeader(JID_HEADER) or b"(none)"


def pageTree() -> Resource:
    """
    A page with a style sheet, an image, and C{/whoami}.
    """
    root = Resource()
    root.putChild(b"index.html", Data(PAGE, "text/html"))
    root.putChild(b"style.css", Data(CSS, "text/css"))
    root.putChild(b"logo.png", Data(PNG, "image/png"))
    root.putChild(b"whoami", WhoAmI())
    return root


class ConfirmingUser:
    """
    The test user, logged in to Prosody and available (so messages to its
    bare JID reach it): queues each confirmation request it receives and
    answers as the test says.

    @ivar xs: the client's stream.
    @ivar jid: its full JID.
    @ivar requests: IQ gets and messages carrying C{<confirm/>}, in the
        order received.
    @ivar received: how many were received in all.
    """

    def __init__(self, xs: Any) -> None:
        self.xs = xs
        self.jid: JID = xs.authenticator.jid
        self.requests: defer.DeferredQueue[domish.Element] = defer.DeferredQueue()
        self.received = 0
        confirm = "/confirm[@xmlns='%s']" % (NS_HTTP_AUTH,)
        xs.addObserver("/iq[@type='get']" + confirm, self._received)
        xs.addObserver("/message" + confirm, self._received)

    def _received(self, stanza: domish.Element) -> None:
        if stanza.getAttribute("type") == "error":
            return
        stanza.handled = True
        self.received += 1
        self.requests.put(stanza)

    def becomeAvailable(self) -> defer.Deferred[Any]:
        """
        Send initial presence; fires when the server reflects it back,
        so the session is available before any message to the bare JID.
        """
        echoed: defer.Deferred[Any] = defer.Deferred()

        def onPresence(presence: domish.Element) -> None:
            if presence.getAttribute("from") == self.jid.full() and not echoed.called:
                echoed.callback(presence)

        self.xs.addObserver("/presence", onPresence)
        self.xs.send(domish.Element((None, "presence")))
        return echoed

    def approveIQ(self, iq: domish.Element) -> None:
        self.xs.send(toResponse(iq, "result"))

    def denyIQ(self, iq: domish.Element) -> None:
        self.xs.send(StanzaError("not-authorized", "auth").toResponse(iq))

    def _reply(self, message: domish.Element, kind: str) -> domish.Element:
        reply = domish.Element((None, "message"))
        reply["to"] = message["from"]
        reply["type"] = kind
        reply.addElement("thread", content=threadOf(message))
        return reply

    def approveMessage(self, message: domish.Element) -> None:
        """
        Answer the message form with the same thread and C{<confirm/>}
        (XEP-0070 example 9).
        """
        reply = self._reply(message, "normal")
        reply.addChild(confirmOf(message).toElement())
        self.xs.send(reply)

    def denyMessage(self, message: domish.Element) -> None:
        """
        Deny the message form with a message error carrying the thread,
        the C{<confirm/>} and C{not-authorized} (XEP-0070 example 11).
        """
        reply = self._reply(message, "error")
        reply.addChild(confirmOf(message).toElement())
        reply.addChild(StanzaError("not-authorized", "auth").getElement())
        self.xs.send(reply)

    def answerText(self, message: domish.Element, text: str) -> None:
        """
        Answer the message form in plain text, in the same thread, as a
        user of a client without XEP-0070 support would.
        """
        reply = self._reply(message, "chat")
        reply.addElement("body", content=text)
        self.xs.send(reply)


class ConfirmerMixin(ProsodyMixin):
    """
    A real Prosody; our L{Component} connected to it (XEP-0114) hosting a
    L{ConfirmationRequester}; a L{Confirmer} using it; the test user logged
    in and available (L{ConfirmingUser}); a real HTTP client.

    The ledger (sessions, used transaction ids) runs on its own
    L{task.Clock} so a test can end a session, 5 minutes by default,
    without waiting; everything else (sockets, XMPP, the requester's
    timeout) runs on the real reactor.

    @ivar requesterTimeout: seconds the requester waits for an answer.
    """

    requesterTimeout = 10.0

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield ProsodyMixin.setUp(self)
        server = self.server
        self.requester = ConfirmationRequester(
            JID(server.componentName), reactor, timeout=self.requesterTimeout
        )
        self.service = Component(
            "tcp:host=%s:port=%d" % (server.host, server.componentPort),
            server.domain,
            [server.componentName],
            secret=server.componentSecret,
            protocol="xep0114",
            reactor=reactor,
            retryPolicy=lambda attempt: 0.2,
        )
        self.requester.setHandlerParent(self.service)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        yield self.wait(self.service.whenReady(), "component ready")

        self.ledgerClock = task.Clock()
        self.limits = Limits()
        self.confirmer = makeConfirmer(
            self.requester, AccessRules.anyone(), self.ledgerClock, self.limits
        )

        self.user = ConfirmingUser((yield self.client()))
        yield self.wait(self.user.becomeAvailable(), "the user's presence echoed")

        pool = HTTPConnectionPool(reactor, persistent=True)
        self.addCleanup(pool.closeCachedConnections)
        self.http = HTTPClient(Agent(reactor, pool=pool))

    def listen(self, resource: IResource) -> defer.Deferred[int]:
        """
        Serve C{resource} with a L{ConfirmerSite} on a free port of
        127.0.0.1; a cleanup stops listening and closes the connections.

        @return: the port number.
        """
        tracker = ConnectionTracker(ConfirmerSite(resource, reactor=reactor))
        d: defer.Deferred[int] = listenTracked(self, tracker, wait=self.wait)
        return d

    def fetch(
        self,
        url: str,
        credentials: tuple[str, str] | None = None,
        method: str = "GET",
        host: str | None = None,
    ) -> defer.Deferred[tuple[Any, bytes]]:
        """
        Make an HTTP request with the real client.

        @param credentials: JID and transaction id for Basic, or L{None}.
        @param host: a C{Host} header other than the URL's authority.
        @return: fires with the response and its body.
        """
        headers = Headers()
        if credentials is not None:
            headers.setRawHeaders(b"authorization", [basic(*credentials)])
        if host is not None:
            headers.setRawHeaders(b"host", [host.encode("ascii")])
        d = self.http.request(method, url, headers=headers)
        d.addCallback(lambda r: treq.content(r).addCallback(lambda body: (r, body)))
        return self.wait(d, "answer to %s %s" % (method, url))

    def nextRequest(self) -> defer.Deferred[domish.Element]:
        """
        The next confirmation request the user receives.
        """
        return self.wait(self.user.requests.get(), "confirmation request at the user")

    def assertAsked(
        self, stanza: domish.Element, form: str, transactionId: str, url: str, method: str = "GET"
    ) -> None:
        """
        C{stanza} is the IQ (C{form="iq"}) or message form of the request
        for C{method} on C{url} with C{transactionId}, from the component
        to the user.
        """
        self.assertEqual(stanza["from"], self.server.componentName)
        self.assertEqual(confirmOf(stanza), ConfirmRequest(transactionId, method, url))
        if form == "iq":
            self.assertEqual((stanza.name, stanza["type"]), ("iq", "get"))
            self.assertEqual(stanza["to"], self.user.jid.full())
        else:
            self.assertEqual((stanza.name, stanza["type"]), ("message", "normal"))
            self.assertEqual(JID(stanza["to"]).userhost(), self.user.jid.userhost())
            body = str(stanza.body)
            self.assertIn(url, body)
            self.assertIn(transactionId, body)
            self.assertTrue(threadOf(stanza))


class ProtectedSiteTests(ConfirmerMixin, TestCase):
    """
    L{Confirmer.protect} in front of a twisted.web page, asked through
    Prosody.
    """

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield ConfirmerMixin.setUp(self)
        self.port = yield self.listen(self.confirmer.protect(pageTree(), loopbackFrontend()))

    def url(self, path: str) -> str:
        return "http://127.0.0.1:%d%s" % (self.port, path)

    @defer.inlineCallbacks
    def test_challenge(self) -> Any:
        """
        Without credentials the answer is 401 with C{Basic realm="xmpp"}
        first, then Digest, and a body saying what to send.
        """
        response, body = yield self.fetch(self.url("/index.html"))
        self.assertEqual(response.code, 401)
        challenges = response.headers.getRawHeaders(b"www-authenticate")
        self.assertEqual(challenges[0], b'Basic realm="xmpp"')
        self.assertTrue(challenges[1].startswith(b'Digest realm="xmpp"'), challenges)
        self.assertIn(b"JID", body)
        self.assertEqual(self.user.received, 0)

    @defer.inlineCallbacks
    def test_iqApproved(self) -> Any:
        """
        A full JID is asked with an IQ get naming the method, the full URL
        and the transaction id; its result lets the page through, and the
        page is told the JID.
        """
        who = self.user.jid.full()
        self.assertEqual(who, self.server.userJID + "/test")
        pending = self.fetch(self.url("/index.html"), (who, "tx-approve"))
        iq = yield self.nextRequest()
        self.assertAsked(iq, "iq", "tx-approve", self.url("/index.html"))
        self.assertNoResult(pending)
        self.user.approveIQ(iq)
        response, body = yield pending
        self.assertEqual((response.code, body), (200, PAGE))
        response, body = yield self.fetch(self.url("/whoami"), (who, "tx-approve"))
        self.assertEqual((response.code, body), (200, who.encode("utf-8")))
        self.assertEqual(self.user.received, 1)

    @defer.inlineCallbacks
    def test_iqDenied(self) -> Any:
        """
        A C{not-authorized} IQ error from the user is a 403; the
        transaction id is then used up (a replay, 401, without asking).
        """
        who = self.user.jid.full()
        pending = self.fetch(self.url("/index.html"), (who, "tx-deny"))
        iq = yield self.nextRequest()
        self.assertAsked(iq, "iq", "tx-deny", self.url("/index.html"))
        self.user.denyIQ(iq)
        response, body = yield pending
        self.assertEqual(response.code, 403)
        self.assertIn(b"denied", body)
        response, body = yield self.fetch(self.url("/index.html"), (who, "tx-deny"))
        self.assertEqual(response.code, 401)
        self.assertIn(b"used already", body)
        self.assertEqual(self.user.received, 1)

    @defer.inlineCallbacks
    def test_iqFallbackToMessage(self) -> Any:
        """
        A full JID whose client answers the IQ form with
        C{feature-not-implemented} is asked again with the message form at
        that same full JID (XEP-0070 section 4.5); approving that lets the
        page through.
        """
        who = self.user.jid.full()
        url = self.url("/index.html")
        pending = self.fetch(url, (who, "tx-fallback"))
        iq = yield self.nextRequest()
        self.assertAsked(iq, "iq", "tx-fallback", url)
        self.user.xs.send(StanzaError("feature-not-implemented", "cancel").toResponse(iq))
        message = yield self.nextRequest()
        self.assertAsked(message, "message", "tx-fallback", url)
        self.assertEqual(message["to"], who)
        self.user.approveMessage(message)
        response, body = yield pending
        self.assertEqual((response.code, body), (200, PAGE))

    @defer.inlineCallbacks
    def test_otherResourceIsReported(self) -> Any:
        """
        Asked at a resource that is offline, the IQ bounces, the message
        form goes to that full JID, and Prosody delivers it to the
        account's online resource (RFC 6121 section 8.5.3.2.1), which
        confirms: the page names the JID that actually confirmed, not the
        one asked, in C{X-Auth-JID}.
        """
        asked = self.user.jid.userhost() + "/gone"
        url = self.url("/whoami")
        pending = self.fetch(url, (asked, "tx-other"))
        message = yield self.nextRequest()
        self.assertEqual((message.name, message["to"]), ("message", asked))
        self.user.approveMessage(message)
        response, body = yield pending
        self.assertEqual(response.code, 200)
        self.assertEqual(body, self.user.jid.full().encode("utf-8"))
        # The session reports the confirmer too.
        response, body = yield self.fetch(url, (asked, "tx-other"))
        self.assertEqual((response.code, body), (200, self.user.jid.full().encode("utf-8")))

    @defer.inlineCallbacks
    def test_percentEncodedTransactionId(self) -> Any:
        """
        A transaction id with non-ASCII characters, percent-encoded as
        UTF-8 before base64, reaches the user decoded.
        """
        who = self.user.jid.full()
        transactionId = "na\u00efve \u2615 100%"
        pending = self.fetch(self.url("/index.html"), (who, transactionId))
        iq = yield self.nextRequest()
        self.assertAsked(iq, "iq", transactionId, self.url("/index.html"))
        self.user.approveIQ(iq)
        response, body = yield pending
        self.assertEqual((response.code, body), (200, PAGE))

    @defer.inlineCallbacks
    def test_replay(self) -> Any:
        """
        Within its session the transaction id passes only for the same
        site: from another site (another allowed C{Host}) it is a 401.
        After the session, the same transaction id is a replay: 401, and
        the user is not asked again. A C{Host} outside the allowed names
        is a 400.
        """
        who = self.user.jid.full()
        pending = self.fetch(self.url("/index.html"), (who, "tx-once"))
        self.user.approveIQ((yield self.nextRequest()))
        response, _ = yield pending
        self.assertEqual(response.code, 200)

        response, body = yield self.fetch(
            self.url("/index.html"), (who, "tx-once"), host="localhost:%d" % self.port
        )
        self.assertEqual(response.code, 401)
        self.assertIn(b"another site", body)
        response, body = yield self.fetch(
            self.url("/index.html"), (who, "tx-once"), host="other.example:%d" % self.port
        )
        self.assertEqual(response.code, 400)

        self.ledgerClock.advance(self.limits.sessionLifetime + 1)
        response, body = yield self.fetch(self.url("/index.html"), (who, "tx-once"))
        self.assertEqual(response.code, 401)
        self.assertIn(b"used already", body)
        self.assertEqual(self.user.received, 1)

    @defer.inlineCallbacks
    def test_assetsAskedOnce(self) -> Any:
        """
        A browser sends the same credentials for the page and each asset:
        the user is asked once. Sequentially, the assets pass in the
        session without asking; all at once, the requests wait for the one
        confirmation pending.
        """
        who = self.user.jid.full()
        pending = self.fetch(self.url("/index.html"), (who, "tx-page"))
        self.user.approveIQ((yield self.nextRequest()))
        response, body = yield pending
        self.assertEqual((response.code, body), (200, PAGE))
        for path, content in (("/style.css", CSS), ("/logo.png", PNG)):
            response, body = yield self.fetch(self.url(path), (who, "tx-page"))
            self.assertEqual((response.code, body), (200, content))
        self.assertEqual(self.user.received, 1)

        burst = [
            self.fetch(self.url(path), (who, "tx-burst"))
            for path in ("/index.html", "/style.css", "/logo.png")
        ]
        iq = yield self.nextRequest()
        self.assertEqual(confirmOf(iq).transactionId, "tx-burst")
        self.user.approveIQ(iq)
        answers = yield defer.gatherResults(burst)
        self.assertEqual(
            [(r.code, body) for r, body in answers], [(200, PAGE), (200, CSS), (200, PNG)]
        )
        # Nothing else was asked before this next request's confirmation.
        pending = self.fetch(self.url("/index.html"), (who, "tx-sentinel"))
        iq = yield self.nextRequest()
        self.assertEqual(confirmOf(iq).transactionId, "tx-sentinel")
        self.user.denyIQ(iq)
        yield pending
        self.assertEqual(self.user.received, 3)

    @defer.inlineCallbacks
    def test_timeout(self) -> Any:
        """
        A user who never answers gets a 504 once the requester's timeout
        (2 s here) has passed, saying so; the transaction id is not used
        up, so the same credentials ask again, and that approval passes.
        """
        self.requester.timeout = 2.0
        who = self.user.jid.full()
        started = reactor.seconds()
        pending = self.fetch(self.url("/index.html"), (who, "tx-slow"))
        ignored = yield self.nextRequest()
        response, body = yield pending
        self.assertEqual(response.code, 504)
        self.assertIn(b"did not confirm within 2 seconds", body)
        self.assertGreaterEqual(reactor.seconds() - started, 2.0)

        pending = self.fetch(self.url("/index.html"), (who, "tx-slow"))
        iq = yield self.nextRequest()
        self.assertNotEqual(iq["id"], ignored["id"])
        self.assertAsked(iq, "iq", "tx-slow", self.url("/index.html"))
        self.user.approveIQ(iq)
        response, body = yield pending
        self.assertEqual((response.code, body), (200, PAGE))

    @defer.inlineCallbacks
    def test_messageApproved(self) -> Any:
        """
        A bare JID is asked with a message (thread, human-readable body,
        C{<confirm/>}); echoing the thread and C{<confirm/>} approves.
        """
        who = self.user.jid.userhost()
        pending = self.fetch(self.url("/style.css"), (who, "tx-msg"))
        message = yield self.nextRequest()
        self.assertAsked(message, "message", "tx-msg", self.url("/style.css"))
        self.user.approveMessage(message)
        response, body = yield pending
        self.assertEqual((response.code, body), (200, CSS))

    @defer.inlineCallbacks
    def test_messageDenied(self) -> Any:
        """
        A message error in the thread, with the C{<confirm/>} and
        C{not-authorized}, denies: 403.
        """
        who = self.user.jid.userhost()
        pending = self.fetch(self.url("/index.html"), (who, "tx-msg-no"))
        message = yield self.nextRequest()
        self.assertAsked(message, "message", "tx-msg-no", self.url("/index.html"))
        self.user.denyMessage(message)
        response, body = yield pending
        self.assertEqual(response.code, 403)
        self.assertIn(b"denied", body)

    @defer.inlineCallbacks
    def test_messagePlainText(self) -> Any:
        """
        A user whose client knows nothing of XEP-0070 answers in the same
        thread: "yes" approves, "no" denies.
        """
        who = self.user.jid.userhost()
        pending = self.fetch(self.url("/index.html"), (who, "tx-yes"))
        message = yield self.nextRequest()
        self.assertAsked(message, "message", "tx-yes", self.url("/index.html"))
        self.user.answerText(message, "yes")
        response, body = yield pending
        self.assertEqual((response.code, body), (200, PAGE))

        pending = self.fetch(self.url("/logo.png"), (who, "tx-no"))
        message = yield self.nextRequest()
        self.assertAsked(message, "message", "tx-no", self.url("/logo.png"))
        self.user.answerText(message, "No.")
        response, _ = yield pending
        self.assertEqual(response.code, 403)

    @defer.inlineCallbacks
    def test_libraryResponder(self) -> Any:
        """
        Our own L{ConfirmationResponder}, hosted by a second resource of
        the user logged in to Prosody, answers the requester, IQ form (its
        full JID) and message form (the bare JID, once it is the
        resource with the highest priority): its policy sees each request
        and its answers give 200 and 403.
        """
        factory = clientFactory(self.server, resource="responder")
        manager = StreamManager(factory)
        seen: list[IncomingConfirmation] = []

        def policy(incoming: IncomingConfirmation) -> bool:
            seen.append(incoming)
            return incoming.request.transactionId.startswith("tx-lib-yes")

        ConfirmationResponder(policy).setHandlerParent(manager)
        authenticated: defer.Deferred[Any] = defer.Deferred()
        factory.addBootstrap(STREAM_AUTHD_EVENT, authenticated.callback)
        factory.addBootstrap(INIT_FAILED_EVENT, authenticated.errback)
        yield self.connect(factory, self.server.c2sPort)
        xs = yield self.wait(authenticated, "responder login")
        who = xs.authenticator.jid.full()

        response, body = yield self.fetch(self.url("/index.html"), (who, "tx-lib-yes"))
        self.assertEqual((response.code, body), (200, PAGE))
        response, _ = yield self.fetch(self.url("/index.html"), (who, "tx-lib-no"))
        self.assertEqual(response.code, 403)

        # Available with a higher priority than the test user's resource,
        # the responder alone gets the message form for the bare JID.
        echoed: defer.Deferred[Any] = defer.Deferred()
        xs.addObserver(
            "/presence",
            lambda p: p.getAttribute("from") == who and not echoed.called and echoed.callback(p),
        )
        presence = domish.Element((None, "presence"))
        presence.addElement("priority", content="5")
        xs.send(presence)
        yield self.wait(echoed, "the responder's presence echoed")
        bare = self.user.jid.userhost()
        response, body = yield self.fetch(self.url("/logo.png"), (bare, "tx-lib-yes-msg"))
        self.assertEqual((response.code, body), (200, PNG))
        response, _ = yield self.fetch(self.url("/logo.png"), (bare, "tx-lib-no-msg"))
        self.assertEqual(response.code, 403)

        self.assertEqual(
            [
                (i.sender.full(), i.recipient.full(), i.viaMessage, i.request, bool(i.thread))
                for i in seen
            ],
            [
                (
                    self.server.componentName,
                    who,
                    False,
                    ConfirmRequest(tx, "GET", self.url("/index.html")),
                    False,
                )
                for tx in ("tx-lib-yes", "tx-lib-no")
            ]
            + [
                (
                    self.server.componentName,
                    bare,
                    True,
                    ConfirmRequest(tx, "GET", self.url("/logo.png")),
                    True,
                )
                for tx in ("tx-lib-yes-msg", "tx-lib-no-msg")
            ],
        )
        self.assertEqual(self.user.received, 0)
