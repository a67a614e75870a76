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
from twisted.internet.defer import Deferred, fail
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
from xmppcomp.httpauth._policy import Attempt

from .test_httpauth_xmpp import attach


class FakeRequester:
    """
    Records what it is asked; the test answers through the Deferreds.
    """

    timeout = 30.0

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
        self.stub = StubTreq(self.confirmer.protect(root))

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
        After the session, the same credentials are a replay: 403, nobody
        asked.
        """
        d = self.stub.get("http://files.example/index.html", headers=basic(JULIET, "t1"))
        self.stub.flush()
        self.answer(self.stub, Outcome.ALLOW)
        self.result(self.stub, d)
        self.clock.advance(Limits().sessionLifetime)
        response, body = self.get("/style.css", basic(JULIET, "t1"))
        self.assertEqual(response.code, 403)
        self.assertIn(b"used already", body)
        self.assertEqual(len(self.requester.asked), 1)

    def test_denied(self) -> None:
        """
        A denial is a 403; the same transaction id again is a 403 without
        asking.
        """
        d = self.stub.get("http://files.example/index.html", headers=basic(JULIET, "t1"))
        self.stub.flush()
        self.answer(self.stub, Outcome.DENY)
        response, body = self.result(self.stub, d)
        self.assertEqual(response.code, 403)
        self.assertIn(b"denied", body)
        response, _ = self.get("/index.html", basic(JULIET, "t1"))
        self.assertEqual(response.code, 403)
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
        A component that is not connected: 503.
        """
        d = self.stub.get("http://files.example/index.html", headers=basic(JULIET, "t1"))
        self.stub.flush()
        self.answer(self.stub, ConfirmerUnavailable("not connected"))
        self.assertEqual(self.result(self.stub, d)[0].code, 503)

    def test_limits(self) -> None:
        """
        Beyond the pending limit for a JID: 429 with Retry-After; beyond
        the total: 503 with Retry-After.
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
        self.assertEqual(response.code, 503)
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
        Credentials confirmed with HEAD pass for the following POST to the
        same URL, which carries its body.
        """
        echo = _Echo()
        stub = StubTreq(self.confirmer.protect(echo))
        d = stub.head("http://files.example/upload", headers=basic(JULIET, "t1"))
        stub.flush()
        self.answer(stub, Outcome.ALLOW)
        self.assertEqual(self.result(stub, d)[0].code, 201)
        d = stub.post("http://files.example/upload", data=b"payload", headers=basic(JULIET, "t1"))
        response, _ = self.result(stub, d)
        self.assertEqual(response.code, 201)
        self.assertEqual(echo.seen[-1]["body"], b"payload")
        self.assertEqual(len(self.requester.asked), 1)

    def test_jidHeader(self) -> None:
        """
        The protected resource sees the confirmed JID in X-Auth-JID (never
        the client's own), and not the Authorization header.
        """
        echo = _Echo()
        stub = StubTreq(self.confirmer.protect(echo))
        headers = basic(JULIET, "t1")
        headers[b"X-Auth-JID"] = [b"admin@example.com"]
        d = stub.get("http://files.example/", headers=headers)
        stub.flush()
        self.answer(stub, Outcome.ALLOW)
        self.result(stub, d)
        self.assertEqual(echo.seen[0]["jid"], JULIET.encode())
        self.assertIsNone(echo.seen[0]["authorization"])


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

        stub = StubTreq(self.confirmer.protect(Broken()))
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

        stub = StubTreq(self.confirmer.protect(BrokenTree()))
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

        channel = Site(resource).buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
        transport = StringTransport()
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
            self.goneThenAnswered(self.confirmer.protect(root), self.credentials("t%d" % (n,)), outcome)

    def test_timeout(self) -> None:
        """
        Protect mode, timed out after the client left.
        """
        from xmppcomp.httpauth import ConfirmationTimeout

        root = Resource()
        root.putChild(b"page", Data(b"ok", "text/plain"))
        self.goneThenAnswered(self.confirmer.protect(root), self.credentials("t1"), ConfirmationTimeout("late"))

    def test_forwardAuth(self) -> None:
        """
        Forward-auth mode.
        """
        headers = b"X-Original-Method: GET\r\nX-Original-URI: /page\r\n" + self.credentials("t1")
        self.goneThenAnswered(self.confirmer.forwardAuth(), headers, Outcome.ALLOW)


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
        return StubTreq(confirmer.protect(root))

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
        stub = StubTreq(self.confirmer.forwardAuth())
        headers = {
            b"X-Original-Method": [b"GET"],
            b"X-Original-URI": [b"/page"],
            b"X-Forwarded-Proto": [b"https"],
            b"X-Forwarded-Host": [b"app.example"],
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
    Tests for L{Confirmer.proxy}, the upstream a stub resource reached
    through a second L{StubTreq}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.upstream = _Echo()
        self.upstreamClient = StubTreq(self.upstream)
        root = Resource()
        root.putChild(b"app", self.confirmer.proxy("http://upstream.internal/base", self.upstreamClient))
        self.stub = StubTreq(root)

    def test_postForwarded(self) -> None:
        """
        An allowed POST reaches the upstream with method, path below the
        mount point (encoding kept), query, headers and body; the
        upstream's status, headers and body come back.
        """
        headers = basic(JULIET, "t1")
        headers[b"X-Custom"] = [b"kept"]
        d = self.stub.post("http://front.example/app/a%20b/c?x=1&y=2", data=b"form=data", headers=headers)
        self.stub.flush()
        [(_, request, _)] = self.requester.asked
        self.assertEqual(request, ConfirmRequest("t1", "POST", "http://front.example/app/a%20b/c?x=1&y=2"))
        self.answer(self.stub, Outcome.ALLOW)
        self.upstreamClient.flush()
        response, body = self.result(self.stub, d)
        self.assertEqual((response.code, body), (201, b"upstream says hi"))
        self.assertEqual(response.headers.getRawHeaders(b"x-upstream"), [b"yes"])
        [seen] = self.upstream.seen
        self.assertEqual(seen["method"], b"POST")
        self.assertEqual(seen["uri"], b"/base/a%20b/c?x=1&y=2")
        self.assertEqual(seen["body"], b"form=data")
        self.assertEqual(seen["custom"], b"kept")
        self.assertEqual(seen["jid"], JULIET.encode())
        self.assertIsNone(seen["authorization"])

    def test_denied(self) -> None:
        """
        A denied request never reaches the upstream.
        """
        d = self.stub.get("http://front.example/app/x", headers=basic(JULIET, "t1"))
        self.stub.flush()
        self.answer(self.stub, Outcome.DENY)
        self.assertEqual(self.result(self.stub, d)[0].code, 403)
        self.assertEqual(self.upstream.seen, [])

    def test_upstreamDown(self) -> None:
        """
        An unreachable upstream: 502.
        """

        class Down:
            def request(self, *args: object, **kwargs: object) -> Deferred[object]:
                return fail(ConnectionRefusedError())

        stub = StubTreq(self.confirmer.proxy("http://upstream.internal", Down()))
        d = stub.get("http://front.example/x", headers=basic(JULIET, "t1"))
        stub.flush()
        self.answer(stub, Outcome.ALLOW)
        response, body = self.result(stub, d)
        self.assertEqual(response.code, 502)
        self.assertEqual(len(self.flushLoggedErrors(ConnectionRefusedError)), 1)


class ForwardAuthTests(_WebTestCase):
    """
    Tests for L{Confirmer.forwardAuth}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.stub = StubTreq(self.confirmer.forwardAuth())

    def check(self, headers: dict[bytes, list[bytes]]) -> Deferred[Any]:
        d = self.stub.get("http://127.0.0.1:8080/auth", headers=headers)
        self.stub.flush()
        return d

    def nginx(self, credentials: dict[bytes, list[bytes]] | None = None, client: bytes = b"203.0.113.5") -> dict[bytes, list[bytes]]:
        headers = {
            b"X-Original-Method": [b"POST"],
            b"X-Original-URI": [b"/page?x=1"],
            b"X-Forwarded-Proto": [b"https"],
            b"X-Forwarded-Host": [b"app.example"],
            b"X-Real-IP": [client],
        }
        headers.update(credentials or {})
        return headers

    def test_allowed(self) -> None:
        """
        nginx style: the original method and URL rebuilt from the headers
        are asked for; 200 carries X-Auth-JID.
        """
        d = self.check(self.nginx(basic(JULIET, "t1")))
        [(_, request, _)] = self.requester.asked
        self.assertEqual(request, ConfirmRequest("t1", "POST", "https://app.example/page?x=1"))
        self.answer(self.stub, Outcome.ALLOW)
        response, _ = self.result(self.stub, d)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"x-auth-jid"), [JULIET.encode()])

    def test_traefik(self) -> None:
        """
        Traefik and Caddy style X-Forwarded-* headers work the same way.
        """
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
        response, _ = self.result(self.stub, self.check(self.nginx()))
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

    def test_sessionPerClient(self) -> None:
        """
        The session is scoped to the client address the web server reports:
        the same credentials from another address are a 403, from the same
        address they pass unasked.
        """
        d = self.check(self.nginx(basic(JULIET, "t1")))
        self.answer(self.stub, Outcome.ALLOW)
        self.result(self.stub, d)
        response, _ = self.result(self.stub, self.check(self.nginx(basic(JULIET, "t1"))))
        self.assertEqual(response.code, 200)
        response, _ = self.result(self.stub, self.check(self.nginx(basic(JULIET, "t1"), client=b"198.51.100.1")))
        self.assertEqual(response.code, 403)
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
            ConfirmationCredentials(Attempt(credentials, "GET", "http://a.example/", "192.0.2.1"))
        )
        second = self.confirmer.checker.requestAvatarId(
            ConfirmationCredentials(Attempt(credentials, "GET", "http://a.example/x.css", "192.0.2.1"))
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
            ConfirmationCredentials(Attempt(credentials, "GET", "http://a.example/private", "192.0.2.1"))
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
        stub = StubTreq(makeConfirmer(requester, AccessRules.anyone(), clock).protect(page))
        d = stub.get("http://files.example/", headers=basic(JULIET, "yes-please"))
        stub.flush()
        self.assertEqual(self.successResultOf(d).code, 201)
        d = stub.get("http://files.example/", headers=basic("juliet@capulet.com", "nope"))
        stub.flush()
        self.assertEqual(self.successResultOf(d).code, 403)
        self.assertEqual(decisions, [(JULIET, True), ("juliet@capulet.com", False)])
