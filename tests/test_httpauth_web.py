# -*- test-case-name: tests.test_httpauth_web -*-
"""
Tests for L{xmppcomp.httpauth._web} and L{makeConfirmer}: the protect,
proxy and forward-auth resources through L{treq.testing.StubTreq}.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request
from twisted.web.static import Data
from twisted.words.protocols.jabber.jid import JID
from wokkel.generic import XmlPipe

from xmppcomp.httpauth import (
    AccessRule,
    AccessRules,
    ConfirmationRequester,
    ConfirmationResponder,
    ConfirmationTimeout,
    ConfirmerUnavailable,
    ConfirmRequest,
    Limits,
    Outcome,
    XMPPCredentials,
    makeConfirmer,
)
from xmppcomp.httpauth._checker import ConfirmationCredentials
from xmppcomp.httpauth._errors import AccessForbidden
from xmppcomp.httpauth._frontend import Frontend
from xmppcomp.httpauth._policy import Attempt
from xmppcomp.jids import JIDCache
from xmppcomp.metrics import Metrics

from .test_httpauth_xmpp import attach


class FakeRequester:
    """
    Records what it is asked; the test answers through the Deferreds.
    """

    timeout = 30.0
    #: Where the confirmer counts; nowhere unless a test sets it.
    metrics: Metrics | None = None
    #: The JIDs the confirmer parses; its own unless a test sets it.
    jids: JIDCache | None = None

    def __init__(self) -> None:
        self.asked: list[tuple[JID, ConfirmRequest, Deferred[Outcome]]] = []

    def confirm(self, who: JID, request: ConfirmRequest) -> Deferred[Outcome]:
        d: Deferred[Outcome] = Deferred()
        self.asked.append((who, request, d))
        return d


def basic(user: str | bytes, password: str | bytes) -> dict[bytes, list[bytes]]:
    raw = (user.encode() if isinstance(user, str) else user) + b":" + (
        password.encode() if isinstance(password, str) else password
    )
    return {b"Authorization": [b"Basic " + base64.b64encode(raw)]}


JULIET = "juliet@capulet.com/balcony"

#: The sites of these tests: the URL asked about is built from the request's
#: host, which must be one of these.
FRONTEND = Frontend(allowedHosts=["files.example", "site.example", "app.example"])


class _Echo(Resource):
    """
    Answers with what it saw of the request.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []

    def render(self, request: Request) -> bytes:
        self.seen.append(
            {
                "method": request.method,
                "uri": request.uri,
                "jid": request.getHeader(b"x-auth-jid"),
                "authorization": request.getHeader(b"authorization"),
                "body": request.content.read(),
                "custom": request.getHeader(b"x-custom"),
            }
        )
        request.setResponseCode(201)
        request.setHeader(b"x-upstream", b"yes")
        return b"upstream says hi"


class _WebTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.requester = FakeRequester()
        self.confirmer = makeConfirmer(
            self.requester,
            AccessRules([AccessRule("/", anyone=True), AccessRule("/private", jids=["romeo@montague.lit"])]),
            self.clock,
            Limits(pendingPerJID=2, pendingTotal=3),
        )

    def answer(self, stub: StubTreq, outcome: Outcome | Exception, index: int = -1) -> None:
        d = self.requester.asked[index][2]
        if isinstance(outcome, Exception):
            d.errback(outcome)
        else:
            d.callback(outcome)
        stub.flush()

    def result(self, stub: StubTreq, d: Deferred[Any]) -> tuple[Any, bytes]:
        stub.flush()
        response = self.successResultOf(d)
        return response, self.successResultOf(stub.content(response))


class ProtectTests(_WebTestCase):
    """
    Tests for L{Confirmer.protect} around a tree of resources.
    """

    def setUp(self) -> None:
        super().setUp()
        # A tree of static.Data: static.File streams with a pull producer,
        # which StubTreq's in-memory transport never pulls.
        root = Resource()
        private = Resource()
        root.putChild(b"private", private)
        for parent, name, content in [
            (root, b"index.html", b"<html/>"),
            (root, b"style.css", b"body{}"),
            (root, b"logo.png", b"PNG"),
            (private, b"x.txt", b"secret"),
        ]:
            parent.putChild(name, Data(content, "application/octet-stream"))
        self.stub = StubTreq(self.confirmer.protect(root, FRONTEND))

    def get(self, path: str, headers: dict[bytes, list[bytes]] | None = None, method: str = "GET") -> tuple[Any, bytes]:
        d = self.stub.request(method, "http://files.example" + path, headers=headers)
        return self.result(self.stub, d)

    def test_noCredentials(self) -> None:
        """
        Without credentials: 401 with C{Basic realm="xmpp"} first, then a
        Digest challenge for realm xmpp with a nonce; the body says what
        to enter.
        """
        response, body = self.get("/index.html")
        self.assertEqual(response.code, 401)
        [first, second] = response.headers.getRawHeaders(b"www-authenticate")
        self.assertEqual(first, b'Basic realm="xmpp"')
        self.assertTrue(second.startswith(b'Digest realm="xmpp", '), second)
        self.assertIn(b"nonce=", second)
        self.assertIn(b"opaque=", second)
        self.assertIn(b"JID", body)
        self.assertEqual(self.requester.asked, [])

    def test_credentialsParsedWithTheRequestersJIDs(self) -> None:
        """
        The JIDs of the credentials are parsed with the requester's
        L{JIDCache} (which parses its answers too): two requests from one
        JID reach it as the very same L{JID}, and without a cache of the
        requester's the confirmer keeps one of its own, never a
        process-wide one.
        """
        for shared in (JIDCache(), None):
            requester = FakeRequester()
            requester.jids = shared
            confirmer = makeConfirmer(requester, AccessRules.anyone(), self.clock)
            stub = StubTreq(confirmer.protect(Data(b"x", "text/plain"), FRONTEND))
            for transaction in ("t1", "t2"):
                stub.get("http://files.example/a", headers=basic("juliet@capulet.lit", transaction))
                stub.flush()
            (first, _, _), (second, _, _) = requester.asked
            self.assertEqual(first, JID("juliet@capulet.lit"))
            self.assertIs(first, second)
            if shared is not None:
                self.assertIs(shared("juliet@capulet.lit"), first)

    def test_badCredentials(self) -> None:
        """
        A malformed header, JID or transaction id, or an unknown scheme:
        401 with the challenge and a body saying what is wrong.
        """
        cases = [
            ({b"Authorization": [b"Basic !!!"]}, b"malformed Basic header"),
            (basic("juliet@@capulet.com", "t"), b"not a valid JID"),
            (basic(JULIET, ""), b"transaction id"),
            ({b"Authorization": [b"Bearer abc"]}, b"unsupported scheme"),
        ]
        for headers, reason in cases:
            response, body = self.get("/index.html", headers)
            self.assertEqual(response.code, 401, body)
            self.assertIn(reason, body)
            self.assertEqual(len(response.headers.getRawHeaders(b"www-authenticate")), 2)
        self.assertEqual(self.requester.asked, [])

    def test_allowed(self) -> None:
        """
        Valid credentials ask the JID with the method, the full URL and the
        percent-decoded transaction id; confirmed, the file is served.
        """
        d = self.stub.get("http://files.example/index.html", headers=basic("juliet@capulet.com%2Fbalcony", "caf%C3%A9"))
        self.stub.flush()
        self.assertNoResult(d)
        [(who, request, _)] = self.requester.asked
        self.assertEqual(who, JID(JULIET))
        self.assertEqual(request, ConfirmRequest("café", "GET", "http://files.example/index.html"))
        self.answer(self.stub, Outcome.ALLOW)
        response, body = self.result(self.stub, d)
        self.assertEqual((response.code, body), (200, b"<html/>"))

    def test_sessionAskedOnce(self) -> None:
        """
        The browser sends the same credentials for every asset of the page:
        the JID is asked once, and the other assets pass.
        """
        d = self.stub.get("http://files.example/index.html", headers=basic(JULIET, "t1"))
        self.stub.flush()
        self.answer(self.stub, Outcome.ALLOW)
        self.assertEqual(self.result(self.stub, d)[0].code, 200)
        for path, content in [("/style.css", b"body{}"), ("/logo.png", b"PNG")]:
            response, body = self.get(path, basic(JULIET, "t1"))
            self.assertEqual((response.code, body), (200, content))
        self.assertEqual(len(self.requester.asked), 1)

    def test_sessionExpired(self) -> None:
        """
        After the session, the same credentials are a replay: 401 with the
        challenge (a browser asks again after a 401, never after a 403),
        nobody asked.
        """
        d = self.stub.get("http://files.example/index.html", headers=basic(JULIET, "t1"))
        self.stub.flush()
        self.answer(self.stub, Outcome.ALLOW)
        self.result(self.stub, d)
        self.clock.advance(Limits().sessionLifetime)
        response, body = self.get("/style.css", basic(JULIET, "t1"))
        self.assertEqual(response.code, 401)
        self.assertEqual(len(response.headers.getRawHeaders(b"www-authenticate")), 2)
        self.assertIn(b"used already", body)
        self.assertEqual(len(self.requester.asked), 1)

    def test_denied(self) -> None:
        """
        A denial is a 403; the same transaction id again is a replay, 401,
        without asking.
        """
        d = self.stub.get("http://files.example/index.html", headers=basic(JULIET, "t1"))
        self.stub.flush()
        self.answer(self.stub, Outcome.DENY)
        response, body = self.result(self.stub, d)
        self.assertEqual(response.code, 403)
        self.assertIn(b"denied", body)
        response, _ = self.get("/index.html", basic(JULIET, "t1"))
        self.assertEqual(response.code, 401)
        self.assertEqual(len(self.requester.asked), 1)

    def test_timeout(self) -> None:
        """
        No answer in time: 504 saying so; the transaction id is not used,
        so retrying asks again.
        """
        d = self.stub.get("http://files.example/index.html", headers=basic(JULIET, "t1"))
        self.stub.flush()
        self.answer(self.stub, ConfirmationTimeout(f"{JULIET} did not confirm within 30 seconds"))
        response, body = self.result(self.stub, d)
        self.assertEqual(response.code, 504)
        self.assertIn(b"did not confirm", body)
        self.stub.get("http://files.example/index.html", headers=basic(JULIET, "t1"))
        self.stub.flush()
        self.assertEqual(len(self.requester.asked), 2)

    def test_unavailable(self) -> None:
        """
        A component that is not connected: 503 with Retry-After.
        """
        d = self.stub.get("http://files.example/index.html", headers=basic(JULIET, "t1"))
        self.stub.flush()
        self.answer(self.stub, ConfirmerUnavailable("not connected", 7))
        response, _ = self.result(self.stub, d)
        self.assertEqual(response.code, 503)
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"7"])

    def test_limits(self) -> None:
        """
        Beyond the pending limit for a JID: 429 with Retry-After; beyond
        the total: 429 with Retry-After too (a limit, not an outage).
        """
        for n in range(2):
            self.stub.get(f"http://files.example/index.html?{n}", headers=basic(JULIET, f"t{n}"))
        self.stub.flush()
        self.clock.advance(5)
        response, body = self.get("/index.html", basic(JULIET, "t3"))
        self.assertEqual(response.code, 429)
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"25"])
        self.stub.get("http://files.example/index.html", headers=basic("romeo@montague.lit", "t"))
        self.stub.flush()
        response, body = self.get("/index.html", basic("nurse@capulet.com", "t"))
        self.assertEqual(response.code, 429)
        self.assertEqual(response.phrase, b"Too Many Requests")
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"25"])
        self.assertEqual(len(self.requester.asked), 3)

    def test_accessRules(self) -> None:
        """
        A JID the access rules do not allow on a path: 403, nobody asked;
        an allowed JID is asked.
        """
        response, body = self.get("/private/x.txt", basic(JULIET, "t1"))
        self.assertEqual(response.code, 403)
        self.assertIn(b"may not access /private/x.txt", body)
        self.assertEqual(self.requester.asked, [])
        d = self.stub.get("http://files.example/private/x.txt", headers=basic("romeo@montague.lit", "t1"))
        self.stub.flush()
        self.answer(self.stub, Outcome.ALLOW)
        self.assertEqual(self.result(self.stub, d)[1], b"secret")

    def digestHeader(self, path: str, cnonce: str, uri: str | None = None) -> dict[bytes, list[bytes]]:
        response, _ = self.get(path)
        challenge = response.headers.getRawHeaders(b"www-authenticate")[1].decode()
        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        value = (
            f'Digest username="juliet@capulet.com", realm="xmpp", nonce="{fields["nonce"]}", '
            f'uri="{uri or path}", qop=auth, nc=00000001, cnonce="{cnonce}", '
            f'response="6629fae49393a05397450978507c4ef1", opaque="{fields["opaque"]}"'
        )
        return {b"Authorization": [value.encode()]}

    def test_digest(self) -> None:
        """
        Digest: the username is the JID and the cnonce the transaction id
        (percent-decoded), with the nonce and opaque of our challenge.
        """
        headers = self.digestHeader("/index.html", "0a4f%E2%82%AC")
        d = self.stub.get("http://files.example/index.html", headers=headers)
        self.stub.flush()
        [(who, request, _)] = self.requester.asked
        self.assertEqual((who, request.transactionId), (JID("juliet@capulet.com"), "0a4f€"))
        self.answer(self.stub, Outcome.ALLOW)
        self.assertEqual(self.result(self.stub, d)[0].code, 200)

    def test_digestBadOpaque(self) -> None:
        """
        A Digest header whose opaque we did not issue: 401.
        """
        headers = self.digestHeader("/index.html", "c")
        headers[b"Authorization"] = [re.sub(rb'opaque="[^"]*"', b'opaque="x-eA=="', headers[b"Authorization"][0])]
        response, body = self.get("/index.html", headers)
        self.assertEqual(response.code, 401)
        self.assertIn(b"opaque", body)

    def test_digestWrongURI(self) -> None:
        """
        A Digest C{uri} that is not the URL requested: 400.
        """
        response, body = self.get("/index.html", self.digestHeader("/index.html", "c", uri="/other"))
        self.assertEqual(response.code, 400)
        self.assertIn(b"uri", body)

    def test_headThenPost(self) -> None:
        """
        Credentials confirmed with HEAD pass a following GET of the same
        URL unasked; a POST with them is asked again (an unsafe method
        always asks, a deliberate deviation from XEP-0070 section 5.1), and
        once confirmed it reaches the resource with its body.
        """
        echo = _Echo()
        stub = StubTreq(self.confirmer.protect(echo, FRONTEND))
        d = stub.head("http://files.example/upload", headers=basic(JULIET, "t1"))
        stub.flush()
        self.answer(stub, Outcome.ALLOW)
        self.assertEqual(self.result(stub, d)[0].code, 201)
        d = stub.get("http://files.example/upload", headers=basic(JULIET, "t1"))
        self.assertEqual(self.result(stub, d)[0].code, 201)
        self.assertEqual(len(self.requester.asked), 1)
        d = stub.post("http://files.example/upload", data=b"payload", headers=basic(JULIET, "t1"))
        stub.flush()
        self.assertEqual(len(self.requester.asked), 2)
        self.assertEqual(self.requester.asked[1][1].method, "POST")
        self.answer(stub, Outcome.ALLOW)
        response, _ = self.result(stub, d)
        self.assertEqual(response.code, 201)
        self.assertEqual(echo.seen[-1]["body"], b"payload")

    def test_jidHeader(self) -> None:
        """
        The protected resource sees the confirmed JID in X-Auth-JID (never
        the client's own), and not the Authorization header.
        """
        echo = _Echo()
        stub = StubTreq(self.confirmer.protect(echo, FRONTEND))
        headers = basic(JULIET, "t1")
        headers[b"X-Auth-JID"] = [b"admin@example.com"]
        d = stub.get("http://files.example/", headers=headers)
        stub.flush()
        self.answer(stub, Outcome.ALLOW)
        self.result(stub, d)
        self.assertEqual(echo.seen[0]["jid"], JULIET.encode())
        self.assertIsNone(echo.seen[0]["authorization"])


class CanonicalJIDTests(_WebTestCase):
    """
    A user's JID is decided on, asked and served in one form: A-labels as
    U-labels, no trailing dot (L{canonicalJID<xmppcomp.httpauth._protocol.canonicalJID>}).
    """

    def test_spellingsOneUser(self) -> None:
        """
        C{alice@xn--bcher-kva.example} and C{alice@bücher.example.} with
        the same transaction id are one confirmation: asked once, of
        C{alice@bücher.example}; the protected resource (which answers
        201) sees that form;
        both spellings pass in the session, and a third spelling is no
        fresh transaction id: the single-use key is the same.
        """
        echo = _Echo()
        stub = StubTreq(self.confirmer.protect(echo, FRONTEND))
        first = stub.get("http://files.example/", headers=basic("alice@xn--bcher-kva.example", "t1"))
        second = stub.get("http://files.example/", headers=basic("alice@bücher.example.", "t1"))
        stub.flush()
        [(who, _, _)] = self.requester.asked
        self.assertEqual(who.full(), "alice@bücher.example")
        self.answer(stub, Outcome.ALLOW)
        for d in (first, second):
            self.assertEqual(self.result(stub, d)[0].code, 201)
        self.assertEqual({seen["jid"] for seen in echo.seen}, {"alice@bücher.example".encode()})
        self.clock.advance(Limits().sessionLifetime)
        response, body = self.result(stub, stub.get("http://files.example/", headers=basic("ALICE@XN--BCHER-KVA.EXAMPLE", "t1")))
        self.assertEqual(response.code, 401)
        self.assertIn(b"used already", body)
        self.assertEqual(len(self.requester.asked), 1)

    def test_limitsCountOneUser(self) -> None:
        """
        The per-JID limit of pending confirmations (2 here) counts both
        spellings as one user.
        """
        for n, user in enumerate(["alice@bücher.example", "alice@xn--bcher-kva.example"]):
            self.stub = StubTreq(self.confirmer.protect(_Echo(), FRONTEND))
            self.stub.get("http://files.example/", headers=basic(user, f"p{n}"))
        response, _ = self.result(self.stub, self.stub.get(
            "http://files.example/", headers=basic("alice@xn--bcher-kva.example.", "p9")))
        self.assertEqual(response.code, 429)
        self.assertEqual(len(self.requester.asked), 2)

    def test_notAnALabel(self) -> None:
        """
        A label that looks like an A-label and is none: 401 naming it,
        nobody asked.
        """
        stub = StubTreq(self.confirmer.protect(_Echo(), FRONTEND))
        response, body = self.result(stub, stub.get("http://files.example/", headers=basic("alice@xn--abc.example", "t1")))
        self.assertEqual(response.code, 401)
        self.assertIn(b"'xn--abc' in its domain is no valid A-label", body)
        self.assertEqual(self.requester.asked, [])


class RenderFailureTests(_WebTestCase):
    """
    A protected resource that fails while rendering, once the request is
    confirmed, gets twisted.web's 500 and a logged error, not a hang.
    """

    def test_500(self) -> None:
        class Broken(Resource):
            isLeaf = True

            def render(self, request: Request) -> bytes:
                raise RuntimeError("broken page")

        stub = StubTreq(self.confirmer.protect(Broken(), FRONTEND))
        d = stub.get("http://files.example/page", headers=basic(JULIET, "t1"))
        stub.flush()
        self.answer(stub, Outcome.ALLOW)
        response, _ = self.result(stub, d)
        self.assertEqual(response.code, 500)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_500Traversing(self) -> None:
        """
        Likewise when finding the child below the protected resource fails.
        """
        class BrokenTree(Resource):
            def getChild(self, path: bytes, request: Request) -> Resource:
                raise RuntimeError("broken tree")

        stub = StubTreq(self.confirmer.protect(BrokenTree(), FRONTEND))
        d = stub.get("http://files.example/a/b", headers=basic(JULIET, "t1"))
        stub.flush()
        self.answer(stub, Outcome.ALLOW)
        response, _ = self.result(stub, d)
        self.assertEqual(response.code, 500)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class ClientGoneTests(_WebTestCase):
    """
    An HTTP client that goes away while its confirmation is pending: the
    answer that comes later writes nothing and logs no error (twisted.web
    would log "Request.finish called on a request after its connection
    was lost" as critical).
    """

    def connect(self, resource: Resource, headers: bytes) -> tuple[Any, StringTransport]:
        from twisted.internet.address import IPv4Address
        from twisted.web.server import Site

        channel = Site(resource, reactor=Clock()).buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
        # The web server's connection, from loopback (a trusted proxy).
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 50000))
        channel.makeConnection(transport)
        channel.dataReceived(b"GET /page HTTP/1.1\r\nHost: files.example\r\n" + headers + b"\r\n")
        return channel, transport

    def credentials(self, transactionId: str) -> bytes:
        return b"Authorization: " + basic(JULIET, transactionId)[b"Authorization"][0] + b"\r\n"

    def goneThenAnswered(self, resource: Resource, headers: bytes, outcome: Outcome | Exception) -> None:
        from twisted.internet.error import ConnectionDone

        channel, transport = self.connect(resource, headers)
        self.assertEqual(len(self.requester.asked), 1)
        self.assertEqual(transport.value(), b"")
        channel.connectionLost(Failure(ConnectionDone()))
        d = self.requester.asked[0][2]
        if isinstance(outcome, Exception):
            d.errback(outcome)
        else:
            d.callback(outcome)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_protect(self) -> None:
        """
        Protect mode, allowed or denied after the client left.
        """
        root = Resource()
        root.putChild(b"page", Data(b"ok", "text/plain"))
        for n, outcome in enumerate([Outcome.ALLOW, Outcome.DENY]):
            self.requester.asked.clear()
            self.goneThenAnswered(self.confirmer.protect(root, FRONTEND), self.credentials("t%d" % (n,)), outcome)

    def test_timeout(self) -> None:
        """
        Protect mode, timed out after the client left.
        """
        from xmppcomp.httpauth import ConfirmationTimeout

        root = Resource()
        root.putChild(b"page", Data(b"ok", "text/plain"))
        self.goneThenAnswered(self.confirmer.protect(root, FRONTEND), self.credentials("t1"), ConfirmationTimeout("late"))

    def test_forwardAuth(self) -> None:
        """
        Forward-auth mode.
        """
        headers = (
            b"X-Original-Method: GET\r\nX-Original-URI: /page\r\n"
            b"X-Original-Host: files.example\r\nX-Original-Proto: https\r\n"
            b"X-Real-IP: 192.0.2.1\r\n" + self.credentials("t1")
        )
        self.goneThenAnswered(self.confirmer.forwardAuth(FRONTEND), headers, Outcome.ALLOW)


class ServerTimingTests(_WebTestCase):
    """
    With C{serverTiming}, answers to requests that asked over XMPP carry
    the confirmation's round trip in C{Server-Timing}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.confirmer = makeConfirmer(
            self.requester, AccessRules.anyone(), self.clock, Limits(), serverTiming=True
        )

    def timing(self, response: Any) -> list[bytes] | None:
        return response.headers.getRawHeaders(b"server-timing")

    def page(self, confirmer: Any) -> StubTreq:
        root = Resource()
        root.putChild(b"", Data(b"ok", "text/plain"))
        return StubTreq(confirmer.protect(root, FRONTEND))

    def test_allowedAndDenied(self) -> None:
        """
        200 and 403 after a confirmation say how long it took, in
        milliseconds by the confirmer's clock.
        """
        stub = self.page(self.confirmer)
        for n, (outcome, code) in enumerate([(Outcome.ALLOW, 200), (Outcome.DENY, 403)]):
            d = stub.get("http://files.example/", headers=basic(JULIET, "t%d" % (n,)))
            stub.flush()
            self.clock.advance(1.25)
            self.answer(stub, outcome)
            response, _ = self.result(stub, d)
            self.assertEqual(response.code, code)
            self.assertEqual(self.timing(response), [b'xmpp;dur=1250.000;desc="XEP-0070 confirmation"'])

    def test_forwardAuth(self) -> None:
        """
        The forward-auth endpoint says it too, for the web server's log.
        """
        stub = StubTreq(self.confirmer.forwardAuth(FRONTEND))
        headers = {
            b"X-Original-Method": [b"GET"],
            b"X-Original-URI": [b"/page"],
            b"X-Original-Proto": [b"https"],
            b"X-Original-Host": [b"app.example"],
            b"X-Real-IP": [b"192.0.2.1"],
        }
        headers.update(basic(JULIET, "t1"))
        d = stub.get("http://127.0.0.1/auth", headers=headers)
        stub.flush()
        self.clock.advance(0.002)
        self.answer(stub, Outcome.ALLOW)
        response, _ = self.result(stub, d)
        self.assertEqual(response.code, 200)
        self.assertEqual(self.timing(response), [b'xmpp;dur=2.000;desc="XEP-0070 confirmation"'])

    def test_notAsked(self) -> None:
        """
        Answers that asked nothing over XMPP (the challenge, a session)
        carry no timing; nor does anything when the option is off.
        """
        stub = self.page(self.confirmer)
        response, _ = self.result(stub, stub.get("http://files.example/"))
        self.assertEqual(response.code, 401)
        self.assertIsNone(self.timing(response))
        d = stub.get("http://files.example/", headers=basic(JULIET, "t1"))
        stub.flush()
        self.answer(stub, Outcome.ALLOW)
        self.result(stub, d)
        response, _ = self.result(stub, stub.get("http://files.example/", headers=basic(JULIET, "t1")))
        self.assertEqual(response.code, 200)
        self.assertIsNone(self.timing(response))
        plain = makeConfirmer(self.requester, AccessRules.anyone(), self.clock)
        stub = self.page(plain)
        d = stub.get("http://files.example/", headers=basic(JULIET, "t9"))
        stub.flush()
        self.answer(stub, Outcome.ALLOW)
        response, _ = self.result(stub, d)
        self.assertEqual(response.code, 200)
        self.assertIsNone(self.timing(response))


class ProxyTests(_WebTestCase):
    """
    Tests for L{Confirmer.proxy} in front of an upstream resource reached
    through L{treq.testing.RequestTraversalAgent} (the proxy itself is
    tested over real TCP in L{tests.test_httpauth_proxy}).
    """

    def setUp(self) -> None:
        super().setUp()
        from treq.testing import RequestTraversalAgent

        self.upstream = _Echo()
        self.upstreamAgent = RequestTraversalAgent(self.upstream)
        self.stub = StubTreq(
            self.confirmer.proxy("http://upstream.internal/base", self.upstreamAgent, FRONTEND)
        )

    def test_postForwarded(self) -> None:
        """
        An allowed DELETE is asked about with its canonical URL and query,
        and reaches the upstream below its base with method, canonical
        path, query and headers; the upstream's status, headers and body
        come back. (Bodies are streamed by the proxy's cooperator, which
        needs a running reactor: they are tested over real TCP in
        L{tests.test_httpauth_proxy}.)
        """
        headers = basic(JULIET, "t1")
        headers[b"X-Custom"] = [b"kept"]
        d = self.stub.delete("http://app.example/a%20b/./c?x=1&y=%7e", headers=headers)
        self.stub.flush()
        [(_, request, _)] = self.requester.asked
        self.assertEqual(request, ConfirmRequest("t1", "DELETE", "http://app.example/a%20b/c?x=1&y=~"))
        self.answer(self.stub, Outcome.ALLOW)
        self.upstreamAgent.flush()
        response, body = self.result(self.stub, d)
        self.assertEqual((response.code, body), (201, b"upstream says hi"))
        self.assertEqual(response.headers.getRawHeaders(b"x-upstream"), [b"yes"])
        [seen] = self.upstream.seen
        self.assertEqual(seen["method"], b"DELETE")
        self.assertEqual(seen["uri"], b"/base/a%20b/c?x=1&y=~")
        self.assertEqual(seen["body"], b"")
        self.assertEqual(seen["custom"], b"kept")
        self.assertEqual(seen["jid"], JULIET.encode())
        self.assertIsNone(seen["authorization"])

    def test_denied(self) -> None:
        """
        A denied request never reaches the upstream.
        """
        d = self.stub.get("http://app.example/x", headers=basic(JULIET, "t1"))
        self.stub.flush()
        self.answer(self.stub, Outcome.DENY)
        self.assertEqual(self.result(self.stub, d)[0].code, 403)
        self.assertEqual(self.upstream.seen, [])


class ForwardAuthTests(_WebTestCase):
    """
    Tests for L{Confirmer.forwardAuth}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.stub = StubTreq(self.confirmer.forwardAuth(FRONTEND))

    def check(self, headers: dict[bytes, list[bytes]]) -> Deferred[Any]:
        d = self.stub.get("http://127.0.0.1:8080/auth", headers=headers)
        self.stub.flush()
        return d

    def nginx(
        self,
        credentials: dict[bytes, list[bytes]] | None = None,
        client: bytes = b"203.0.113.5",
        method: bytes = b"GET",
    ) -> dict[bytes, list[bytes]]:
        headers = {
            b"X-Original-Method": [method],
            b"X-Original-URI": [b"/page?x=1"],
            b"X-Original-Proto": [b"https"],
            b"X-Original-Host": [b"app.example"],
            b"X-Real-IP": [client],
        }
        headers.update(credentials or {})
        return headers

    def test_allowed(self) -> None:
        """
        nginx style: the original method and URL rebuilt from the headers
        are asked for; 200 carries X-Auth-JID.
        """
        d = self.check(self.nginx(basic(JULIET, "t1"), method=b"POST"))
        [(_, request, _)] = self.requester.asked
        self.assertEqual(request, ConfirmRequest("t1", "POST", "https://app.example/page?x=1"))
        self.answer(self.stub, Outcome.ALLOW)
        response, _ = self.result(self.stub, d)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"x-auth-jid"), [JULIET.encode()])

    def test_traefik(self) -> None:
        """
        With the Traefik (or Caddy) profile, the X-Forwarded-* headers
        carry the original request, and the client is the rightmost
        X-Forwarded-For entry.
        """
        self.stub = StubTreq(
            self.confirmer.forwardAuth(
                Frontend(allowedHosts=["dav.example"], webServer="traefik")
            )
        )
        headers = basic(JULIET, "t1")
        headers.update(
            {
                b"X-Forwarded-Method": [b"PUT"],
                b"X-Forwarded-Uri": [b"/dav/file.txt"],
                b"X-Forwarded-Proto": [b"http"],
                b"X-Forwarded-Host": [b"dav.example:8443"],
                b"X-Forwarded-For": [b"10.0.0.1, 198.51.100.9"],
            }
        )
        self.check(headers)
        [(_, request, _)] = self.requester.asked
        self.assertEqual(request, ConfirmRequest("t1", "PUT", "http://dav.example:8443/dav/file.txt"))

    def test_noCredentials(self) -> None:
        """
        No credentials: 401 with Basic first (nginx passes only the first
        WWW-Authenticate).
        """
        response, body = self.result(self.stub, self.check(self.nginx()))
        self.assertEqual(response.code, 401)
        self.assertEqual(response.headers.getRawHeaders(b"www-authenticate")[0], b'Basic realm="xmpp"')

    def test_missingHeaders(self) -> None:
        """
        Without the original method and URI: 403 (not 400, which nginx
        would turn into a 500), naming the headers to set.
        """
        response, body = self.result(self.stub, self.check(basic(JULIET, "t1")))
        self.assertEqual(response.code, 403)
        self.assertIn(b"X-Original-URI", body)

    def test_onlyAllowedCodes(self) -> None:
        """
        Denied, limits and unavailable become 403 (limits keep Retry-After);
        a timeout becomes 401 with the challenge.
        """
        d = self.check(self.nginx(basic(JULIET, "a")))
        self.answer(self.stub, Outcome.DENY)
        self.assertEqual(self.result(self.stub, d)[0].code, 403)

        d = self.check(self.nginx(basic(JULIET, "b")))
        self.answer(self.stub, ConfirmationTimeout("no answer"))
        response, _ = self.result(self.stub, d)
        self.assertEqual(response.code, 401)
        self.assertEqual(response.headers.getRawHeaders(b"www-authenticate")[0], b'Basic realm="xmpp"')

        d = self.check(self.nginx(basic(JULIET, "c")))
        self.answer(self.stub, ConfirmerUnavailable("not connected"))
        self.assertEqual(self.result(self.stub, d)[0].code, 403)

        self.check(self.nginx(basic(JULIET, "d")))
        self.check(self.nginx(basic(JULIET, "e")))
        response, _ = self.result(self.stub, self.check(self.nginx(basic(JULIET, "f"))))
        self.assertEqual(response.code, 403)
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"30"])

    def test_replayIs401(self) -> None:
        """
        A replayed transaction id is a 401 in forward-auth too: the browser
        asks for new credentials.
        """
        d = self.check(self.nginx(basic(JULIET, "a")))
        self.answer(self.stub, Outcome.DENY)
        self.assertEqual(self.result(self.stub, d)[0].code, 403)
        response, _ = self.result(self.stub, self.check(self.nginx(basic(JULIET, "a"))))
        self.assertEqual(response.code, 401)
        self.assertEqual(len(self.requester.asked), 1)

    def test_sessionPerClient(self) -> None:
        """
        The session is scoped to the client address the web server reports:
        the same credentials from another address are a replay (401), from
        the same address they pass unasked.
        """
        d = self.check(self.nginx(basic(JULIET, "t1")))
        self.answer(self.stub, Outcome.ALLOW)
        self.result(self.stub, d)
        response, _ = self.result(self.stub, self.check(self.nginx(basic(JULIET, "t1"))))
        self.assertEqual(response.code, 200)
        response, _ = self.result(self.stub, self.check(self.nginx(basic(JULIET, "t1"), client=b"198.51.100.1")))
        self.assertEqual(response.code, 401)
        self.assertEqual(len(self.requester.asked), 1)


class CheckerTests(_WebTestCase):
    """
    Tests for the twisted.cred checker on its own.
    """

    def test_avatarIdAndJoin(self) -> None:
        """
        Two checks of the same credentials from the same client while the
        confirmation is pending wait for the one answer; both get the JID.
        """
        credentials = XMPPCredentials(JID(JULIET), "t1", "basic")
        first = self.confirmer.checker.requestAvatarId(
            ConfirmationCredentials(Attempt(credentials, "GET", "http://a.example/", "192.0.2.1", "/"))
        )
        second = self.confirmer.checker.requestAvatarId(
            ConfirmationCredentials(Attempt(credentials, "GET", "http://a.example/x.css", "192.0.2.1", "/x.css"))
        )
        self.assertEqual(len(self.requester.asked), 1)
        self.requester.asked[0][2].callback(Outcome.ALLOW)
        self.assertEqual(self.successResultOf(first), JULIET)
        self.assertEqual(self.successResultOf(second), JULIET)

    def test_forbiddenIsUnauthorizedLogin(self) -> None:
        """
        Refusals by the access rules fail with L{AccessForbidden}.
        """
        credentials = XMPPCredentials(JID(JULIET), "t1", "basic")
        d = self.confirmer.checker.requestAvatarId(
            ConfirmationCredentials(Attempt(credentials, "GET", "http://a.example/private", "192.0.2.1", "/private"))
        )
        self.assertEqual(self.failureResultOf(d, AccessForbidden).value.status, 403)


class EndToEndTests(SynchronousTestCase):
    """
    The protect resource with a real requester, answered by a responder at
    the other end of an L{XmlPipe}.
    """

    def test_confirmedOverXMPP(self) -> None:
        """
        A full JID is asked over IQ and its confirmation serves the page; a
        bare JID is asked over message and its denial is a 403.
        """
        clock = Clock()
        pipe = XmlPipe()
        requester = ConfirmationRequester(JID("files.example"), clock, timeout=30)
        attach(requester, pipe.source)
        decisions: list[tuple[str, bool]] = []

        def policy(request: Any) -> bool:
            allowed = request.request.transactionId == "yes-please"
            decisions.append((request.recipient.full(), allowed))
            return allowed

        attach(ConfirmationResponder(policy), pipe.sink)
        page = Resource()
        page.putChild(b"", _Echo())
        stub = StubTreq(makeConfirmer(requester, AccessRules.anyone(), clock).protect(page, FRONTEND))
        d = stub.get("http://files.example/", headers=basic(JULIET, "yes-please"))
        stub.flush()
        self.assertEqual(self.successResultOf(d).code, 201)
        d = stub.get("http://files.example/", headers=basic("juliet@capulet.com", "nope"))
        stub.flush()
        self.assertEqual(self.successResultOf(d).code, 403)
        self.assertEqual(decisions, [(JULIET, True), ("juliet@capulet.com", False)])


class _Files(Resource):
    """
    A tree: C{/a.txt}, C{/sub/a.txt}, C{/private/secret.txt}; every leaf
    answers with its own path, so a test sees what was served.
    """

    def __init__(self) -> None:
        super().__init__()
        sub = Resource()
        private = Resource()
        self.putChild(b"a.txt", Data(b"/a.txt", "text/plain"))
        self.putChild(b"sub", sub)
        self.putChild(b"private", private)
        self.putChild(b"public", Resource())
        sub.putChild(b"a.txt", Data(b"/sub/a.txt", "text/plain"))
        private.putChild(b"secret.txt", Data(b"/private/secret.txt", "text/plain"))


class _RawTestCase(_WebTestCase):
    """
    Requests written byte for byte (as C{curl --path-as-is} would; an
    HTTP client library would normalise them) to the confirmer's resources,
    over a L{StringTransport}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.confirmer = makeConfirmer(
            self.requester,
            AccessRules(
                [
                    AccessRule("/", anyone=True),
                    AccessRule("/sub", jids=["romeo@montague.lit"]),
                    AccessRule("/private", jids=["romeo@montague.lit"]),
                ]
            ),
            self.clock,
        )

    def raw(
        self,
        resource: Resource,
        head: bytes,
        peer: str = "192.0.2.1",
    ) -> StringTransport:
        """
        Send C{head} (a request line and headers, without the blank line)
        on a new connection from C{peer}.
        """
        from twisted.internet.address import IPv4Address
        from twisted.web.server import Site

        from twisted.internet.error import ConnectionDone

        # The channel's timers on a clock of their own, not the global
        # reactor (where they would outlive the test).
        channel = Site(resource, reactor=Clock()).buildProtocol(IPv4Address("TCP", peer, 50000))
        transport = StringTransport(peerAddress=IPv4Address("TCP", peer, 50000))
        channel.makeConnection(transport)
        self.addCleanup(channel.connectionLost, Failure(ConnectionDone()))
        channel.dataReceived(head + b"\r\n\r\n")
        return transport

    def protect(self, target: bytes, who: str = JULIET, host: bytes = b"files.example", method: bytes = b"GET") -> StringTransport:
        auth = basic(who, "t1")[b"Authorization"][0]
        return self.raw(
            self.confirmer.protect(_Files(), FRONTEND),
            method + b" " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\nAuthorization: " + auth,
        )

    def status(self, transport: StringTransport) -> int:
        return int(transport.value().split(b" ", 2)[1])


class EdgeTests(_RawTestCase):
    """
    The HTTP edge of protect and proxy modes: one canonical path is
    decided on, asked about and served; what cannot be made canonical, and
    every value that would go into a stanza and is not valid, is refused
    before anyone is asked.
    """

    def test_bypassesProtect(self) -> None:
        """
        The issue's bypasses of protect mode: each spelling of C{/sub}
        is decided on as C{/sub}, so a JID the rule for C{/sub} does not
        allow gets 403 and nobody is asked.
        """
        for target in [b"/%73ub/a.txt", b"/./sub/a.txt", b"//sub/a.txt", b"/a/../sub/a.txt", b"/%2e/sub/a.txt"]:
            transport = self.protect(target)
            self.assertEqual(self.status(transport), 403, target)
            self.assertIn(b"may not access /sub/a.txt", transport.value())
        self.assertEqual(self.requester.asked, [])

    def test_canonicalAskedAndServed(self) -> None:
        """
        An allowed JID using a non-canonical spelling is asked about the
        canonical URL and served the canonical path.
        """
        transport = self.protect(b"/%73ub//./a.txt?b=%7e", who="romeo@montague.lit/phone")
        [(_, request, d)] = self.requester.asked
        self.assertEqual(request.url, "http://files.example/sub/a.txt?b=~")
        d.callback(Outcome.ALLOW)
        self.assertEqual(self.status(transport), 200)
        self.assertTrue(transport.value().endswith(b"/sub/a.txt"))

    def test_refusedBeforeAsking(self) -> None:
        """
        An encoded slash or backslash, NUL, text that is not UTF-8, a path
        leaving the root, a host outside the allowed list, a missing Host:
        400, before anyone is asked.
        """
        for target in [b"/a%2fb", b"/a%5Cb", b"/a\\b", b"/%00", b"/%ff", b"/../a.txt", b"/sub/../../a.txt"]:
            transport = self.protect(target)
            self.assertEqual(self.status(transport), 400, target)
            self.assertIn(b"X-Content-Type-Options: nosniff", transport.value())
        self.assertEqual(self.status(self.protect(b"/a.txt", host=b"evil.example")), 400)
        transport = self.raw(
            self.confirmer.protect(_Files(), FRONTEND),
            b"GET /a.txt HTTP/1.1\r\nAuthorization: " + basic(JULIET, "t1")[b"Authorization"][0],
        )
        self.assertEqual(self.status(transport), 400)
        self.assertEqual(self.requester.asked, [])

    def test_absoluteFormIgnored(self) -> None:
        """
        An absolute-form request target does not choose the URL asked
        about: its authority is ignored, the allowed Host is used.
        """
        self.protect(b"http://bank.example/a.txt?to=mallory")
        [(_, request, _)] = self.requester.asked
        self.assertEqual(request.url, "http://files.example/a.txt?to=mallory")

    def test_publicOrigin(self) -> None:
        """
        With a public origin, the URL asked about is that origin and the
        canonical path, whatever the Host header and the target say.
        """
        self.raw(
            self.confirmer.protect(_Files(), "https://www.example.net"),
            b"GET http://evil.example/%61.txt HTTP/1.1\r\nHost: other.example\r\nAuthorization: "
            + basic(JULIET, "t1")[b"Authorization"][0],
        )
        [(_, request, _)] = self.requester.asked
        self.assertEqual(request.url, "https://www.example.net/a.txt")

    def test_jidHeaderSpellings(self) -> None:
        """
        A client's X-Auth-JID in any spelling is removed before the
        protected resource sees the request.
        """
        echo = _Echo()
        auth = basic(JULIET, "t1")[b"Authorization"][0]
        self.raw(
            self.confirmer.protect(echo, FRONTEND),
            b"GET /x HTTP/1.1\r\nHost: files.example\r\nX_Auth_JID: admin@example.com\r\n"
            b"x-auth-jid: admin@example.com\r\nAuthorization: " + auth,
        )
        self.requester.asked[0][2].callback(Outcome.ALLOW)
        self.assertEqual(echo.seen[0]["jid"], JULIET.encode())

    def test_xForwardedForFromTrustedProxy(self) -> None:
        """
        Behind a trusted proxy the client is the rightmost X-Forwarded-For
        entry that is not a proxy (what the client wrote to its left is not
        believed); from anyone else, the header is ignored. The session
        opened shows which address was taken.
        """
        auth = basic(JULIET, "t1")[b"Authorization"][0]
        resource = self.confirmer.protect(_Files(), FRONTEND)
        head = b"GET /a.txt HTTP/1.1\r\nHost: files.example\r\nX-Forwarded-For: 6.6.6.6, 198.51.100.7\r\nAuthorization: "
        self.raw(resource, head + auth, peer="127.0.0.1")
        self.requester.asked[0][2].callback(Outcome.ALLOW)
        plain = b"GET /a.txt HTTP/1.1\r\nHost: files.example\r\nAuthorization: " + auth
        # The session belongs to 198.51.100.7, not to the proxy nor 6.6.6.6.
        self.assertEqual(self.status(self.raw(resource, plain, peer="198.51.100.7")), 200)
        self.assertEqual(self.status(self.raw(resource, plain, peer="6.6.6.6")), 401)
        self.assertEqual(self.status(self.raw(resource, plain, peer="127.0.0.1")), 401)
        # An untrusted peer's X-Forwarded-For is ignored: its session is its own.
        self.raw(resource, head + basic(JULIET, "t2")[b"Authorization"][0], peer="192.0.2.9")
        self.requester.asked[1][2].callback(Outcome.ALLOW)
        again = b"GET /a.txt HTTP/1.1\r\nHost: files.example\r\nAuthorization: " + basic(JULIET, "t2")[b"Authorization"][0]
        self.assertEqual(self.status(self.raw(resource, again, peer="192.0.2.9")), 200)
        self.assertEqual(self.status(self.raw(resource, again, peer="198.51.100.7")), 401)
        self.assertEqual(len(self.requester.asked), 2)


class ForwardAuthEdgeTests(_RawTestCase):
    """
    The forward-auth endpoint reads only its profile's headers, only from
    a trusted proxy, and decides on the path the web server will serve.
    """

    def forward(self, headers: dict[bytes, bytes], peer: str = "127.0.0.1", frontend: Frontend = FRONTEND) -> StringTransport:
        lines = [b"GET / HTTP/1.1", b"Host: 127.0.0.1:8080"]
        lines += [name + b": " + value for name, value in headers.items()]
        return self.raw(self.confirmer.forwardAuth(frontend), b"\r\n".join(lines), peer=peer)

    def nginx(self, uri: bytes, **extra: bytes) -> dict[bytes, bytes]:
        headers = {
            b"X-Original-Method": b"GET",
            b"X-Original-URI": uri,
            b"X-Original-Host": b"files.example",
            b"X-Original-Proto": b"https",
            b"X-Real-IP": b"203.0.113.5",
            b"Authorization": basic(JULIET, "t1")[b"Authorization"][0],
        }
        headers.update({k.replace("_", "-").encode(): v for k, v in extra.items()})
        return headers

    def test_bypassesBehindNginx(self) -> None:
        """
        The issue's bypasses behind nginx (which serves the decoded,
        dot-resolved, slash-merged path): each is decided on as
        C{/private/secret.txt}, so Juliet gets 403 and nobody is asked.
        """
        for uri in [
            b"/public/../private/secret.txt",
            b"/%70rivate/secret.txt",
            b"//private/secret.txt",
            b"/./private/secret.txt",
        ]:
            transport = self.forward(self.nginx(uri))
            self.assertEqual(self.status(transport), 403, uri)
            self.assertIn(b"may not access /private/secret.txt", transport.value())
        self.assertEqual(self.requester.asked, [])

    def test_ambiguousIs403(self) -> None:
        """
        What the web server might read differently (an encoded slash, a
        backslash, NUL) or what leaves the root: 403, nobody asked.
        """
        for uri in [b"/private%2fsecret.txt", b"/a%5c..%5cprivate", b"/%00", b"/../x", b"/%ff"]:
            self.assertEqual(self.status(self.forward(self.nginx(uri))), 403, uri)
        self.assertEqual(self.requester.asked, [])

    def test_clientHeadersIgnored(self) -> None:
        """
        X-Original-URL and X-Forwarded-Host, which nginx passes from the
        client, are not read: the URL asked about comes from the profile's
        headers and the allowed hosts.
        """
        self.forward(
            self.nginx(
                b"/a.txt",
                X_Original_URL=b"https://bank.example/transfer?to=mallory",
                X_Forwarded_Host=b"bank.example",
                X_Forwarded_Uri=b"/transfer",
            )
        )
        [(_, request, _)] = self.requester.asked
        self.assertEqual(request.url, "https://files.example/a.txt")

    def test_untrustedPeer(self) -> None:
        """
        A forward-auth request from a peer that is not a trusted proxy is
        refused (403) and nobody is asked.
        """
        transport = self.forward(self.nginx(b"/a.txt"), peer="192.0.2.50")
        self.assertEqual(self.status(transport), 403)
        self.assertIn(b"trusted proxies", transport.value())
        self.assertEqual(self.requester.asked, [])

    def test_badProfileHeaders(self) -> None:
        """
        A host outside the list, a bad method, a missing client address or
        scheme: 403 (never 400, which nginx makes a 500).
        """
        cases = [
            self.nginx(b"/a.txt", X_Original_Host=b"bank.example"),
            self.nginx(b"/a.txt", X_Original_Method=b"G\x01T"),
            self.nginx(b"/a.txt", X_Real_IP=b"somewhere"),
            self.nginx(b"/a.txt", X_Original_Proto=b"gopher"),
        ]
        for headers in cases:
            self.assertEqual(self.status(self.forward(headers)), 403, headers)
        self.assertEqual(self.requester.asked, [])

    def test_caddyProfile(self) -> None:
        """
        With the Caddy profile the X-Forwarded-* headers are read, the
        client is the rightmost X-Forwarded-For entry, and nginx's headers
        are ignored.
        """
        frontend = Frontend(allowedHosts=["files.example"], webServer="caddy")
        self.forward(
            {
                b"X-Forwarded-Method": b"GET",
                b"X-Forwarded-Uri": b"/%61.txt",
                b"X-Forwarded-Host": b"files.example",
                b"X-Forwarded-Proto": b"https",
                b"X-Forwarded-For": b"203.0.113.9",
                b"X-Original-URI": b"/elsewhere",
                b"Authorization": basic(JULIET, "t1")[b"Authorization"][0],
            },
            frontend=frontend,
        )
        [(_, request, _)] = self.requester.asked
        self.assertEqual(request.url, "https://files.example/a.txt")
