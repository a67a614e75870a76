# -*- test-case-name: tests.test_httpauth_proxy -*-
"""
Tests for L{xmppcomp.httpauth._proxy.UpstreamProxyResource} with real
parts only: a recording upstream (a twisted.web L{Site} on 127.0.0.1), the
proxy served by a second L{Site} on 127.0.0.1 behind L{Gate} (a stand-in
for the protect resource: it puts the canonical segments in
C{request.postpath} and the confirmed JID in C{X-Auth-JID}, as the protect
resource does), and a real HTTP client (L{Agent}) for each user.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Sequence
from typing import IO, Any
from urllib.parse import parse_qs, quote, urlsplit

import attrs
from twisted.internet import defer, reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.logger import LogEvent, globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web.client import (
    Agent,
    FileBodyProducer,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IRequest, IResponse
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from zope.interface import implementer

from xmppcomp.httpauth._proxy import UpstreamProxyResource
from xmppcomp.httpauth._target import canonicalTarget

from .httphelpers import fetchBody, serveResource

JULIET = "juliet@capulet.lit"
ROMEO = "romeo@montague.lit"

#: Where the upstream's application lives on the upstream server.
BASE = "/base"


def normal(name: bytes) -> bytes:
    """
    A header name as a CGI or WSGI server reads it.
    """
    return name.lower().replace(b"_", b"-")


@attrs.frozen
class Seen:
    """
    A request as the upstream got it.

    @ivar headers: every header line, name as sent.
    """

    method: bytes
    uri: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    length: int
    digest: str

    def values(self, name: bytes) -> list[bytes]:
        """
        The values of the header C{name}, in any spelling.
        """
        return [v for n, v in self.headers if normal(n) == normal(name)]

    def names(self) -> set[bytes]:
        """
        The header names, normalised.
        """
        return {normal(n) for n, _ in self.headers}


class Upstream(Resource):
    """
    Records each request (headers, body length and digest, read in chunks)
    and answers as its path says (below L{BASE}):

      - C{/setcookie}: two C{Set-Cookie} headers, C{sid=} the C{v}
        argument;
      - C{/redirect}: 302 to the C{to} argument;
      - C{/hop}: hop-by-hop headers, one of them named in C{Connection};
      - C{/big}: a body of C{n} bytes, chunked;
      - C{/cut}: a C{Content-Length} of 1000 and 10 bytes, then the
        connection is closed;
      - C{/hang}: no answer (L{hanging} fires with the request);
      - anything else: 200 C{ok}, without C{Content-Type}.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Seen] = []
        self.hanging: defer.Deferred[Request] = defer.Deferred()

    def render(self, request: IRequest) -> bytes | int:
        web: Request = request  # type: ignore[assignment]
        digest = hashlib.sha256()
        length = 0
        assert web.content is not None
        while True:
            chunk = web.content.read(65536)
            if not chunk:
                break
            digest.update(chunk)
            length += len(chunk)
        self.seen.append(
            Seen(
                web.method,
                web.uri,
                tuple(
                    (name, value)
                    for name, values in web.requestHeaders.getAllRawHeaders()
                    for value in values
                ),
                length,
                digest.hexdigest(),
            )
        )
        path = urlsplit(web.uri.decode("ascii")).path
        args = parse_qs(urlsplit(web.uri.decode("ascii")).query)
        if path == BASE + "/setcookie":
            value = args["v"][0].encode("ascii")
            web.responseHeaders.setRawHeaders(
                b"Set-Cookie", [b"sid=" + value + b"; Path=/; HttpOnly", b"theme=dark"]
            )
            return b"logged in\n"
        if path == BASE + "/redirect":
            web.setResponseCode(302)
            web.responseHeaders.setRawHeaders(b"Location", [args["to"][0].encode("utf-8")])
            return b""
        if path == BASE + "/hop":
            web.responseHeaders.setRawHeaders(b"Connection", [b"X-Upstream-Hop"])
            web.responseHeaders.setRawHeaders(b"X-Upstream-Hop", [b"private"])
            web.responseHeaders.setRawHeaders(b"Keep-Alive", [b"timeout=5"])
            web.responseHeaders.setRawHeaders(b"Proxy-Authenticate", [b"Basic realm=up"])
            web.responseHeaders.setRawHeaders(b"Trailer", [b"X-Checksum"])
            web.responseHeaders.setRawHeaders(b"X-End-To-End", [b"kept"])
            web.responseHeaders.setRawHeaders(b"Content-Type", [b"text/plain"])
            return b"hop\n"
        if path == BASE + "/big":
            size = int(args["n"][0])
            block = bytes(range(256)) * 256
            sent = 0
            while sent < size:
                web.write(block[: size - sent])
                sent += len(block[: size - sent])
            web.finish()
            return NOT_DONE_YET
        if path == BASE + "/cut":
            web.responseHeaders.setRawHeaders(b"Content-Length", [b"1000"])
            web.write(b"0123456789")
            web.loseConnection()
            return NOT_DONE_YET
        if path == BASE + "/hang":
            self.hanging.callback(web)
            return NOT_DONE_YET
        web.defaultContentType = None
        return b"ok\n"


@implementer(IAgent)
class RecordingAgent:
    """
    An L{IAgent} that records the URL of each request and passes it on.
    """

    def __init__(self, agent: IAgent) -> None:
        self._agent = agent
        self.urls: list[bytes] = []

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,
    ) -> defer.Deferred[IResponse]:
        self.urls.append(uri)
        return self._agent.request(method, uri, headers, bodyProducer)


class ReadRecorder:
    """
    A request body file that records the size asked of each C{read}.
    """

    def __init__(self, wrapped: IO[bytes]) -> None:
        self._wrapped = wrapped
        self.sizes: list[int | None] = []

    def read(self, size: int | None = None) -> bytes:
        self.sizes.append(size)
        if size is None:
            return self._wrapped.read()
        return self._wrapped.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._wrapped.seek(offset, whence)

    def tell(self) -> int:
        return self._wrapped.tell()

    def close(self) -> None:
        self._wrapped.close()


class Gate(Resource):
    """
    What the protect resource does before it renders the proxy: the
    canonical, decoded segments below the mount point in
    C{request.postpath}, the mount point in C{request.prepath}, the client's
    C{X-Auth-JID} replaced by the confirmed JID (here the Basic user name,
    unchecked).

    @ivar recorders: the body files, when C{recordReads}.
    """

    isLeaf = True

    def __init__(
        self, proxy: IResource, mount: Sequence[str] = (), recordReads: bool = False
    ) -> None:
        super().__init__()
        self._proxy = proxy
        self._mount = tuple(mount)
        self._recordReads = recordReads
        self.recorders: list[ReadRecorder] = []

    def render(self, request: IRequest) -> bytes | int:
        segments = canonicalTarget(request.uri).segments
        assert segments[: len(self._mount)] == self._mount, segments
        request.prepath = [s.encode("utf-8") for s in self._mount]
        request.postpath = [s.encode("utf-8") for s in segments[len(self._mount) :]]
        request.requestHeaders.removeHeader(b"X-Auth-JID")
        authorization = request.getHeader(b"authorization")
        if authorization is not None:
            user = base64.b64decode(authorization.split(b" ")[1]).split(b":")[0]
            request.requestHeaders.setRawHeaders(b"X-Auth-JID", [user])
        if self._recordReads:
            recorder = ReadRecorder(request.content)
            self.recorders.append(recorder)
            request.content = recorder
        return self._proxy.render(request)


def basic(user: str) -> bytes:
    return b"Basic " + base64.b64encode(user.encode("utf-8") + b":tx1")


class ProxyTests(TestCase):
    """
    L{UpstreamProxyResource} between a real client and a real upstream.
    """

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.upstream = Upstream()
        self.upstreamPort = yield self.listen(self.upstream)
        self.upstreamOrigin = "http://127.0.0.1:%d" % (self.upstreamPort,)
        self.agent = RecordingAgent(Agent(reactor))
        self.client = Agent(reactor)

    def listen(self, resource: IResource) -> defer.Deferred[int]:
        """
        Serve C{resource} on a free port of 127.0.0.1 until the test ends.

        @return: the port number.
        """
        return serveResource(self, resource)

    @defer.inlineCallbacks
    def proxy(
        self,
        mount: Sequence[str] = (),
        upstream: str | None = None,
        recordReads: bool = False,
    ) -> Any:
        """
        Serve a proxy to the upstream (L{BASE} on the recording upstream by
        default) behind a L{Gate}.

        @return: the L{Gate}.
        """
        if upstream is None:
            upstream = self.upstreamOrigin + BASE
        gate = Gate(UpstreamProxyResource(upstream, self.agent), mount, recordReads)
        port = yield self.listen(gate)
        self.proxyOrigin = b"http://127.0.0.1:%d" % (port,)
        return gate

    def fetch(
        self,
        target: bytes,
        user: str | None = JULIET,
        headers: dict[bytes, list[bytes]] | None = None,
        method: bytes = b"GET",
        body: IBodyProducer | None = None,
    ) -> defer.Deferred[tuple[IResponse, bytes]]:
        """
        Request C{target} from the proxy as C{user}.

        @return: the response and its body.
        """
        given = Headers(headers or {})
        if user is not None:
            given.setRawHeaders(b"Authorization", [basic(user)])
        return fetchBody(self.client, method, self.proxyOrigin + target, given, body)

    @defer.inlineCallbacks
    def test_noSharedCookies(self) -> Any:
        """
        The upstream's C{Set-Cookie} headers reach the client that asked,
        unchanged; the next request, from another user (or the same one
        without the cookie), carries no cookie to the upstream: the proxy
        keeps no jar.
        """
        yield self.proxy()
        response, _ = yield self.fetch(b"/setcookie?v=J", JULIET)
        self.assertEqual(
            response.headers.getRawHeaders(b"set-cookie"),
            [b"sid=J; Path=/; HttpOnly", b"theme=dark"],
        )
        yield self.fetch(b"/page", ROMEO)
        yield self.fetch(b"/page", JULIET)
        self.assertEqual(len(self.upstream.seen), 3)
        for seen in self.upstream.seen[1:]:
            self.assertEqual(seen.values(b"cookie"), [])

    @defer.inlineCallbacks
    def test_clientCookiesPassed(self) -> Any:
        """
        Each client's cookies reach the upstream unchanged with its own
        request, and only with it.
        """
        yield self.proxy()
        yield self.fetch(b"/page", JULIET, {b"Cookie": [b"sid=J; theme=dark"]})
        yield self.fetch(b"/page", ROMEO, {b"Cookie": [b"sid=R"]})
        juliet, romeo = self.upstream.seen
        self.assertEqual(juliet.values(b"cookie"), [b"sid=J; theme=dark"])
        self.assertEqual(romeo.values(b"cookie"), [b"sid=R"])

    @defer.inlineCallbacks
    def test_openRedirectNotFollowed(self) -> Any:
        """
        An upstream redirect to another origin reaches the client as it is,
        C{Location} unchanged, and the proxy fetches nothing else.
        """
        yield self.proxy()
        response, _ = yield self.fetch(b"/redirect?to=http%3A%2F%2Finternal.example%2Fsecret")
        self.assertEqual(response.code, 302)
        self.assertEqual(
            response.headers.getRawHeaders(b"location"), [b"http://internal.example/secret"]
        )
        self.assertEqual(len(self.agent.urls), 1)
        self.assertEqual(len(self.upstream.seen), 1)

    @defer.inlineCallbacks
    def assertLocation(self, location: str, expected: bytes, mount: bytes = b"/app") -> Any:
        """
        Assert that the upstream's C{Location: location} reaches the client
        as C{expected}, and that nothing else was fetched.

        @param mount: where the proxy is.
        """
        before = len(self.agent.urls)
        query = "to=" + quote(location, safe="/:@!$'()*,;=")
        response, _ = yield self.fetch(mount + b"/redirect?" + query.encode("ascii"))
        self.assertEqual(response.code, 302)
        self.assertEqual(response.headers.getRawHeaders(b"location"), [expected], location)
        self.assertEqual(len(self.agent.urls), before + 1)

    @defer.inlineCallbacks
    def test_redirectIntoUpstreamRewritten(self) -> Any:
        """
        A C{Location} at the upstream's origin, at or below its base path
        (absolute URL or path-absolute reference), becomes the same place
        below the proxy on the client's side: a path-absolute reference
        made of the proxy's mount point (percent-encoded) and the rest;
        the query and fragment are kept.
        """
        yield self.proxy(mount=["app"])
        origin = self.upstreamOrigin
        yield self.assertLocation(origin + BASE + "/landing?x=1#top", b"/app/landing?x=1#top")
        yield self.assertLocation(origin.upper().replace("HTTP", "http") + BASE + "/a", b"/app/a")
        yield self.assertLocation(BASE + "/landing", b"/app/landing")
        yield self.assertLocation(BASE, b"/app")
        yield self.assertLocation(BASE + "/", b"/app/")
        yield self.assertLocation("//127.0.0.1:%d%s/x" % (self.upstreamPort, BASE), b"/app/x")

    @defer.inlineCallbacks
    def test_redirectElsewhereUntouched(self) -> Any:
        """
        A C{Location} at another origin (host, port or scheme), outside the
        upstream's base path, or relative, is passed unchanged.
        """
        yield self.proxy(mount=["app"])
        port = self.upstreamPort
        for location in (
            "http://127.0.0.1:%d/other" % (port,),
            "http://127.0.0.1:%d%sment" % (port, BASE),
            "http://127.0.0.1:%d%s/x" % (port + 1, BASE),
            "https://127.0.0.1:%d%s/x" % (port, BASE),
            "http://localhost:%d%s/x" % (port, BASE),
            "http://user@127.0.0.1:%d%s/x" % (port, BASE),
            "/other",
            BASE + "ment/x",
            "landing",
            "../up",
        ):
            yield self.assertLocation(location, location.encode("utf-8"))

    @defer.inlineCallbacks
    def test_redirectAtRoot(self) -> Any:
        """
        With the proxy at the root of the client's side, the upstream's
        base path is taken off; a C{Location} that would then read as
        another host (C{//host}, C{/\\host}) is left as the upstream sent
        it.
        """
        yield self.proxy()
        origin = self.upstreamOrigin
        yield self.assertLocation(origin + BASE + "/x?y", b"/x?y", mount=b"")
        yield self.assertLocation(BASE, b"/", mount=b"")
        for location in (
            BASE + "//evil.example/x",
            origin + BASE + "//evil.example/x",
            BASE + "/\\evil.example/x",
        ):
            yield self.assertLocation(location, location.encode("ascii"), mount=b"")

    @defer.inlineCallbacks
    def test_redirectMountEncoded(self) -> Any:
        """
        The proxy's mount point in a rewritten C{Location} is
        percent-encoded (UTF-8).
        """
        yield self.proxy(mount=["données", "app"])
        response, _ = yield self.fetch(
            b"/donn%C3%A9es/app/redirect?to=" + (BASE + "/in").encode("ascii")
        )
        self.assertEqual(response.headers.getRawHeaders(b"location"), [b"/donn%C3%A9es/app/in"])

    @defer.inlineCallbacks
    def test_upstreamRootBase(self) -> Any:
        """
        With an upstream URL without a path, every path goes through as it
        is and every C{Location} at the upstream's origin is rewritten.
        """
        yield self.proxy(mount=["app"], upstream=self.upstreamOrigin)
        response, _ = yield self.fetch(
            b"/app" + BASE.encode("ascii") + b"/redirect?to=%2Fbase%2Fx"
        )
        self.assertEqual(self.upstream.seen[0].uri, b"/base/redirect?to=%2Fbase%2Fx")
        self.assertEqual(response.headers.getRawHeaders(b"location"), [b"/app/base/x"])

    @defer.inlineCallbacks
    def test_largeBodyStreamed(self) -> Any:
        """
        A 30 MB request body reaches the upstream whole, read from the
        request's file in bounded chunks (never a C{read()} of it all).
        """
        gate = yield self.proxy(recordReads=True)
        size = 30 * 1024 * 1024
        body = (bytes(range(256)) * 4096) * (size // (256 * 4096))
        self.assertEqual(len(body), size)
        response, content = yield self.fetch(
            b"/upload", method=b"POST", body=FileBodyProducer(io.BytesIO(body))
        )
        self.assertEqual((response.code, content), (200, b"ok\n"))
        (seen,) = self.upstream.seen
        self.assertEqual((seen.length, seen.digest), (size, hashlib.sha256(body).hexdigest()))
        self.assertEqual(seen.values(b"content-length"), [b"%d" % (size,)])
        (recorder,) = gate.recorders
        self.assertTrue(recorder.sizes)
        self.assertNotIn(None, recorder.sizes)
        self.assertTrue(all(s is not None and 0 < s <= 1024 * 1024 for s in recorder.sizes))

    @defer.inlineCallbacks
    def test_emptyBodies(self) -> Any:
        """
        A GET without a body goes without one (no C{Content-Length}); a
        POST with an empty body goes with C{Content-Length: 0}.
        """
        yield self.proxy()
        yield self.fetch(b"/page")
        yield self.fetch(b"/page", method=b"POST", body=FileBodyProducer(io.BytesIO(b"")))
        get, post = self.upstream.seen
        self.assertEqual(get.values(b"content-length"), [])
        self.assertEqual(post.values(b"content-length"), [b"0"])
        self.assertEqual(post.length, 0)

    @defer.inlineCallbacks
    def test_hopByHopRequestHeaders(self) -> Any:
        """
        Hop-by-hop request headers, one named in C{Connection} included,
        do not reach the upstream; end-to-end ones do, unchanged.
        """
        yield self.proxy()
        yield self.fetch(
            b"/page",
            headers={
                b"Connection": [b"X-Client-Hop, keep-alive"],
                b"X-Client-Hop": [b"private"],
                b"Keep-Alive": [b"timeout=300"],
                b"TE": [b"trailers"],
                b"Trailer": [b"X-Checksum"],
                b"Upgrade": [b"websocket"],
                b"Proxy-Authorization": [b"Basic cHJveHk6c2VjcmV0"],
                b"Proxy-Connection": [b"keep-alive"],
                b"X-End-To-End": [b"a, b", b"c"],
                b"Accept": [b"text/plain"],
            },
        )
        (seen,) = self.upstream.seen
        for name in (
            b"x-client-hop",
            b"keep-alive",
            b"te",
            b"trailer",
            b"upgrade",
            b"proxy-authorization",
            b"proxy-connection",
        ):
            self.assertEqual(seen.values(name), [], name)
        self.assertNotIn(b"x-client-hop", b" ".join(seen.values(b"connection")).lower())
        self.assertEqual(b", ".join(seen.values(b"x-end-to-end")), b"a, b, c")
        self.assertEqual(seen.values(b"accept"), [b"text/plain"])

    @defer.inlineCallbacks
    def test_hopByHopResponseHeaders(self) -> Any:
        """
        Hop-by-hop response headers do not reach the client; end-to-end
        ones do. (A header the upstream names in its C{Connection} header
        is not among them: L{Agent} keeps C{Connection} to itself.)
        """
        yield self.proxy()
        response, content = yield self.fetch(b"/hop")
        self.assertEqual(content, b"hop\n")
        headers = response.headers
        for name in (b"keep-alive", b"proxy-authenticate", b"trailer"):
            self.assertFalse(headers.hasHeader(name), name)
        self.assertEqual(headers.getRawHeaders(b"x-end-to-end"), [b"kept"])
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"text/plain"])

    @defer.inlineCallbacks
    def test_identityHeaders(self) -> Any:
        """
        The client's C{X-Auth-JID}, in every spelling, is dropped and the
        confirmed JID set once; C{Authorization} is dropped; C{Host} is the
        upstream's.
        """
        yield self.proxy()
        yield self.fetch(
            b"/page",
            ROMEO,
            {
                b"X-Auth-JID": [b"juliet@capulet.lit"],
                b"x_auth_jid": [b"juliet@capulet.lit"],
                b"X_Auth_JID": [b"juliet@capulet.lit"],
                b"X-AUTH_jid": [b"juliet@capulet.lit"],
            },
        )
        (seen,) = self.upstream.seen
        self.assertEqual(seen.values(b"x-auth-jid"), [ROMEO.encode("ascii")])
        self.assertEqual(seen.values(b"authorization"), [])
        self.assertEqual(seen.values(b"host"), [b"127.0.0.1:%d" % (self.upstreamPort,)])

    @defer.inlineCallbacks
    def test_forwardedHeaders(self) -> Any:
        """
        C{X-Forwarded-For} gets the client's address appended to what the
        client sent, or is just that address; C{X-Forwarded-Proto} and
        C{X-Forwarded-Host} describe the request this server got, whatever
        the client sent in them (in any spelling), as do C{Forwarded} and
        C{X-Real-IP}, which are dropped.
        """
        yield self.proxy()
        yield self.fetch(b"/page")
        yield self.fetch(
            b"/page",
            headers={
                b"X-Forwarded-For": [b"203.0.113.7, 198.51.100.1", b"192.0.2.9"],
                b"X-Forwarded-Proto": [b"https"],
                b"X-Forwarded-Host": [b"bank.example"],
                b"X_Forwarded_Host": [b"bank.example"],
                b"Forwarded": [b"for=192.0.2.1;host=bank.example"],
                b"X-Real-IP": [b"192.0.2.1"],
            },
        )
        plain, spoofed = self.upstream.seen
        self.assertEqual(plain.values(b"x-forwarded-for"), [b"127.0.0.1"])
        self.assertEqual(
            spoofed.values(b"x-forwarded-for"),
            [b"203.0.113.7, 198.51.100.1, 192.0.2.9, 127.0.0.1"],
        )
        host = self.proxyOrigin[len(b"http://") :]
        for seen in (plain, spoofed):
            self.assertEqual(seen.values(b"x-forwarded-proto"), [b"http"])
            self.assertEqual(seen.values(b"x-forwarded-host"), [host])
            self.assertEqual(seen.values(b"forwarded"), [])
            self.assertEqual(seen.values(b"x-real-ip"), [])

    @defer.inlineCallbacks
    def test_noEncodingAdded(self) -> Any:
        """
        The proxy adds no C{Accept-Encoding} towards the upstream, and no
        C{Content-Encoding} or C{Content-Type} towards the client.
        """
        yield self.proxy()
        response, _ = yield self.fetch(b"/page")
        (seen,) = self.upstream.seen
        self.assertEqual(seen.values(b"accept-encoding"), [])
        self.assertFalse(response.headers.hasHeader(b"content-encoding"))
        self.assertFalse(response.headers.hasHeader(b"content-type"))

    @defer.inlineCallbacks
    def test_upstreamDown(self) -> Any:
        """
        An upstream that cannot be reached is a 502 with a plain-text reason
        (and C{nosniff}), logged.
        """
        events: list[LogEvent] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        closed = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
            Site(Resource())
        )
        port = closed.getHost().port
        yield closed.stopListening()
        yield self.proxy(upstream="http://127.0.0.1:%d/" % (port,))
        response, content = yield self.fetch(b"/page")
        self.assertEqual(response.code, 502)
        self.assertEqual(
            response.headers.getRawHeaders(b"content-type"), [b"text/plain; charset=utf-8"]
        )
        self.assertEqual(response.headers.getRawHeaders(b"x-content-type-options"), [b"nosniff"])
        self.assertIn(b"upstream", content)
        self.assertTrue(
            [e for e in events if "could not be reached" in e.get("log_format", "")], events
        )

    @defer.inlineCallbacks
    def test_canonicalSegmentsEncoded(self) -> Any:
        """
        The decoded canonical segments go to the upstream percent-encoded
        as UTF-8 (RFC 3986 C{pchar} kept) after the upstream's path, with
        the normalised query.
        """
        yield self.proxy()
        yield self.fetch(b"/donn%C3%A9es/a%20b.txt?q=%7e&x=a%2fb")
        yield self.fetch(b"/a:b@c!$&'()*+,;=/%25")
        yield self.fetch(b"/dir/?")
        first, second, third = self.upstream.seen
        self.assertEqual(first.uri, b"/base/donn%C3%A9es/a%20b.txt?q=~&x=a%2Fb")
        self.assertEqual(second.uri, b"/base/a:b@c!$&'()*+,;=/%25")
        # An empty query goes as none (the Agent's URI leaves out a lone ?).
        self.assertEqual(third.uri, b"/base/dir/")

    @defer.inlineCallbacks
    def test_responseStreamed(self) -> Any:
        """
        A large chunked answer reaches the client whole.
        """
        yield self.proxy()
        size = 5 * 1024 * 1024 + 17
        response, content = yield self.fetch(b"/big?n=%d" % (size,))
        self.assertEqual(response.code, 200)
        self.assertEqual(len(content), size)
        self.assertEqual(content[:256], bytes(range(256)))

    @defer.inlineCallbacks
    def test_contentLength(self) -> Any:
        """
        The upstream's C{Content-Length} reaches the client, for GET and
        for HEAD (which has no body).
        """
        yield self.proxy()
        response, content = yield self.fetch(b"/page")
        # The Agent keeps Content-Length to itself, but for HEAD.
        self.assertEqual((response.length, content), (3, b"ok\n"))
        response, content = yield self.fetch(b"/page", method=b"HEAD")
        self.assertEqual(response.headers.getRawHeaders(b"content-length"), [b"3"])
        self.assertEqual(content, b"")
        self.assertEqual([seen.method for seen in self.upstream.seen], [b"GET", b"HEAD"])

    @defer.inlineCallbacks
    def test_upstreamCutMidBody(self) -> Any:
        """
        An upstream that drops its connection in the middle of a body makes
        the client's response fail, rather than look whole.
        """
        yield self.proxy()
        d = self.fetch(b"/cut")
        yield self.assertFailure(d, ResponseFailed)

    @defer.inlineCallbacks
    def test_clientGone(self) -> Any:
        """
        A client that goes away while the upstream has not answered stops
        the upstream request, and nothing is written or finished for it
        (no error logged).
        """
        yield self.proxy()
        asked = self.client.request(b"GET", self.proxyOrigin + b"/hang")
        upstreamRequest = yield self.upstream.hanging
        upstreamGone = upstreamRequest.notifyFinish()
        asked.cancel()
        yield self.assertFailure(asked, ResponseNeverReceived)
        yield self.assertFailure(upstreamGone, ConnectionDone, ConnectionLost)


class ConstructorTests(TestCase):
    """
    L{UpstreamProxyResource} checks its upstream URL.
    """

    def test_badUpstream(self) -> None:
        """
        An upstream URL that is not http(s) with a host, or has a query,
        fragment or user information, is refused.
        """
        agent = Agent(reactor)
        for url in (
            "ftp://example.net/",
            "http:///path",
            "http://example.net/?q",
            "http://example.net/#f",
            "http://user:pw@example.net/",
            "http://example.net:99999/",
            "http://exämple.net/",
        ):
            self.assertRaises(ValueError, UpstreamProxyResource, url, agent)
