# -*- test-case-name: tests.test_webserver_headers -*-
"""
What a real nginx (L{tests.nginx}) and a real Caddy (L{tests.caddy}),
configured as the tutorial says, send to a forward-auth endpoint, and
what a client can change of it: the facts the endpoint's web-server
profiles (issue 15, item 2) rely on.

The endpoint here is a recording twisted.web resource on 127.0.0.1 (no
confirmer, no XMPP): it keeps every auth subrequest and answers as the
test says, 200 with C{X-Auth-JID} or 401 with the challenges. The client
is a real HTTP client (L{Agent}) bound to C{127.0.0.2}, so that the
client's address differs from the web server's (C{127.0.0.1}, the peer
the endpoint sees).

What it proves, for each server:
  - the profile's headers carry the original method, the raw request
    target with its query, the host with its port, the scheme and the
    client's address, and the subrequest carries no body;
  - a client sending its own copies of the profile's headers changes
    none of those values, while other client headers (those of the other
    profiles included) reach the endpoint as the client sent them, which
    is why the endpoint must read its profile's headers and no others;
  - a 401 of the endpoint reaches the client with its challenge; a 200
    lets the static file through with the JID in C{X-Auth-JID};
  - the request paths that once bypassed the access rules (dot segments,
    percent-encoded letters and dots, encoded slashes, repeated slashes)
    reach the endpoint, with the raw target the client sent, and name the
    private file; those that nginx refuses itself (400) never reach it;
  - absolute-form targets and requests without C{Host}.

Fails, never skips, when nginx or Caddy is missing (C{.ci/run} installs
both).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from io import BytesIO
from typing import Any, ClassVar

import attrs
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory
from twisted.trial.unittest import TestCase
from twisted.web.client import URI, Agent, FileBodyProducer, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IResponse
from twisted.web.resource import Resource
from zope.interface import implementer

from .caddy import requireCaddy, startCaddy
from .webserver import waitExplained
from .httphelpers import fetchBody, serveResource
from .nginx import requireNginx, startNginx
from .rawhttp import RawAnswer, RawClient

#: Seconds any one exchange may take.
WAIT = 15.0

#: The address the HTTP client connects from (the web servers listen on
#: 127.0.0.1, and connect to the endpoint from there).
CLIENT = "127.0.0.2"

#: The JID the recording endpoint confirms.
JID = b"someone@example.net"

#: The challenges of the recording endpoint's 401, in the confirmer's
#: order: Basic first, then Digest.
CHALLENGES = [b'Basic realm="xmpp"', b'Digest realm="xmpp", nonce="n0nce", qop="auth"']

#: The headers of the C{nginx} and the C{caddy} profile, in the order:
#: method, request target, host, scheme, client's address.
NGINX_PROFILE = (
    b"X-Original-Method",
    b"X-Original-URI",
    b"X-Original-Host",
    b"X-Original-Proto",
    b"X-Real-IP",
)
CADDY_PROFILE = (
    b"X-Forwarded-Method",
    b"X-Forwarded-Uri",
    b"X-Forwarded-Host",
    b"X-Forwarded-Proto",
    b"X-Forwarded-For",
)

#: What a client sends in the headers of a profile the server does not
#: use, in the order of L{NGINX_PROFILE}.
FOREIGN_VALUES = (b"DELETE", b"/public/b.txt", b"bank.example", b"https", b"192.0.2.1")


def foreignHeaders(otherProfile: Sequence[bytes]) -> dict[bytes, list[bytes]]:
    """
    Client headers outside a server's profile: those of C{otherProfile}
    (with L{FOREIGN_VALUES}), C{X-Original-URL} and C{Forwarded}.
    """
    return {
        b"x-original-url": [b"https://bank.example/transfer?to=mallory"],
        **{name.lower(): [value] for name, value in zip(otherProfile, FOREIGN_VALUES)},
        b"forwarded": [b"for=192.0.2.1;host=bank.example;proto=https"],
    }


#: The private file, and the static files the servers serve.
SECRET = b"the private file\n"
FILES = {"private/a.txt": SECRET, "public/b.txt": b"public\n"}


@attrs.frozen
class Subrequest:
    """
    One auth subrequest, as the endpoint received it.

    @ivar method: its method.
    @ivar uri: its request target.
    @ivar peer: the address it came from (the web server's).
    @ivar headers: its headers, lower-case name to the values in order.
    @ivar body: its body.
    """

    method: bytes
    uri: bytes
    peer: str
    headers: Mapping[bytes, Sequence[bytes]]
    body: bytes

    def header(self, name: bytes) -> Sequence[bytes] | None:
        """
        The values of the header C{name} (any case), or L{None}.
        """
        return self.headers.get(name.lower())


class RecordingEndpoint(Resource):
    """
    A forward-auth endpoint that keeps every subrequest and answers 200
    with L{JID} in C{X-Auth-JID}, or 401 with L{CHALLENGES}.

    @ivar subrequests: what it received, in order.
    @ivar status: what it answers, 200 or 401.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.subrequests: list[Subrequest] = []
        self.status = 200

    def render(self, request: Any) -> bytes:
        headers: dict[bytes, list[bytes]] = {}
        for name, values in request.requestHeaders.getAllRawHeaders():
            headers.setdefault(name.lower(), []).extend(values)
        self.subrequests.append(
            Subrequest(
                method=request.method,
                uri=request.uri,
                peer=request.getClientAddress().host,
                headers=headers,
                body=request.content.read(),
            )
        )
        request.setResponseCode(self.status)
        if self.status == 200:
            request.responseHeaders.setRawHeaders(b"x-auth-jid", [JID])
            return b""
        request.responseHeaders.setRawHeaders(b"www-authenticate", CHALLENGES)
        request.responseHeaders.setRawHeaders(b"content-type", [b"text/plain"])
        return b"who are you?\n"


@implementer(IAgentEndpointFactory)
class _FromClientAddress:
    """
    Connects to a URI's host and port from L{CLIENT}.
    """

    def endpointForURI(self, uri: URI) -> TCP4ClientEndpoint:
        return TCP4ClientEndpoint(
            reactor, uri.host.decode("ascii"), uri.port, timeout=5, bindAddress=(CLIENT, 0)
        )


#: The request paths that once got past the access rules, each naming
#: C{/private/a.txt} once decoded, dot segments resolved and slashes
#: merged; both servers send them to the endpoint as the client sent them.
ASKED_BOTH = (
    b"/public/../private/a.txt",
    b"/./private/a.txt",
    b"/%70rivate/a.txt",
    b"//private/a.txt",
    b"/public/%2e%2e/private/a.txt",
    b"/private%2fa.txt",
    b"/private%2Fa.txt",
    b"/public%2f..%2fprivate/a.txt",
)

#: Paths that leave the root, or carry NUL: nginx answers 400 itself;
#: Caddy asks (and, allowed, serves the file, or 500 for the NUL).
ESCAPES = (
    b"/../private/a.txt",
    b"/%2e%2e/private/a.txt",
    b"/private/%2e%2e/%2e%2e/private/a.txt",
    b"/private/a.txt%00",
)


@attrs.frozen
class Shape:
    """
    What a server does with one request path.

    @ivar asked: the raw target the endpoint receives in the profile's
        URI header, or L{None} if the server does not ask.
    @ivar denied: the status the client gets when the endpoint answers
        401 (or the server's own).
    @ivar allowed: the status the client gets when the endpoint answers
        200 (200 means the private file itself).
    """

    asked: bytes | None
    denied: int
    allowed: int


class HeadersMixin:
    """
    The tests, for one web server and its profile.

    @cvar methodHeader: the header of the original method.
    @cvar uriHeader: the header of the raw request target.
    @cvar hostHeader: the header of the host.
    @cvar protoHeader: the header of the scheme.
    @cvar clientHeader: the header of the client's address.
    @cvar clientIsList: whether C{clientHeader} is a list whose rightmost
        entry is the client (C{X-Forwarded-For}), or the address alone.
    @cvar foreign: client headers outside the profile, which the server
        passes on as they are.
    @cvar challenges: the C{WWW-Authenticate} values the client gets of
        the endpoint's L{CHALLENGES}.
    @cvar shapes: request path to what the server does with it.
    @cvar absoluteHost: what the server sends in the host header for an
        absolute-form target: the client's C{Host} header (C{"header"}) or
        the target's authority (C{"target"}).
    @cvar requireServer: fails the test if the server is not installed.
    @cvar startServer: starts the server for a test, in front of the
        endpoint on a port, serving files (C{startNginx}, C{startCaddy}).
    @cvar harnessAttribute: where C{startServer} sets the harness.
    """

    methodHeader: ClassVar[bytes]
    uriHeader: ClassVar[bytes]
    hostHeader: ClassVar[bytes]
    protoHeader: ClassVar[bytes]
    clientHeader: ClassVar[bytes]
    clientIsList: ClassVar[bool]
    foreign: ClassVar[Mapping[bytes, Sequence[bytes]]]
    challenges: ClassVar[Sequence[bytes]]
    shapes: ClassVar[Mapping[bytes, Shape]]
    absoluteHost: ClassVar[str]
    requireServer: ClassVar[Callable[[], None]]
    startServer: ClassVar[Callable[..., defer.Deferred[Any]]]
    harnessAttribute: ClassVar[str]

    # From TestCase.
    addCleanup: Any
    assertEqual: Any
    assertIsNone: Any
    assertLessEqual: Any
    assertNotIn: Any
    failureException: Any

    def logTail(self) -> str:
        """
        The end of the server's log.
        """
        harness = getattr(self, self.harnessAttribute, None)
        return "" if harness is None else harness.logTail()

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.requireServer()
        self.endpoint = RecordingEndpoint()
        authPort = yield serveResource(self, self.endpoint, wait=self.wait)
        pool = HTTPConnectionPool(reactor, persistent=True)
        self.addCleanup(pool.closeCachedConnections)
        self.agent = Agent.usingEndpointFactory(reactor, _FromClientAddress(), pool=pool)
        self.site = yield self.startServer(self, authPort, FILES)
        self.authority = b"%s:%d" % (self.site.host.encode("ascii"), self.site.port)

    def wait(self, d: defer.Deferred[Any], what: str) -> defer.Deferred[Any]:
        """
        Wait for C{d} at most L{WAIT} seconds; on timeout fail the test,
        saying what was awaited, with the end of the server's log.
        """
        return waitExplained(self, d, what, WAIT, self.logTail)

    def fetch(
        self,
        target: bytes,
        method: bytes = b"GET",
        headers: Headers | None = None,
        body: FileBodyProducer | None = None,
    ) -> defer.Deferred[tuple[IResponse, bytes]]:
        """
        Send C{method} of C{target} (a raw origin-form target, sent as it
        is) to the server with the real client.

        @param body: the request's body, if any.

        @return: the response and its body.
        """
        url = b"http://" + self.authority + target
        return fetchBody(self.agent, method, url, headers, body, self.wait)

    @defer.inlineCallbacks
    def raw(self, data: bytes) -> Any:
        """
        Send C{data} as it is on a new connection from L{CLIENT}, and
        collect the answer until the server closes the connection.

        @return: the L{RawAnswer}.
        """
        endpoint = TCP4ClientEndpoint(
            reactor, self.site.host, self.site.port, timeout=5, bindAddress=(CLIENT, 0)
        )
        protocol = RawClient(data)
        yield self.wait(endpoint.connect(Factory.forProtocol(lambda: protocol)), "connection")
        answer = yield self.wait(protocol.done, "answer to %r" % (data,))
        return RawAnswer(answer)

    def only(self) -> Subrequest:
        """
        The one subrequest the endpoint received, which is taken.
        """
        subrequests, self.endpoint.subrequests = self.endpoint.subrequests, []
        self.assertEqual(len(subrequests), 1, subrequests)
        return subrequests[0]

    def clientOf(self, subrequest: Subrequest) -> bytes | None:
        """
        The client's address as the profile says: the rightmost entry of
        a list, or the one value.
        """
        values = subrequest.header(self.clientHeader)
        if values is None:
            return None
        if self.clientIsList:
            return b",".join(values).split(b",")[-1].strip()
        self.assertEqual(len(values), 1, values)
        return values[0]

    def profileOf(self, subrequest: Subrequest) -> dict[str, Any]:
        """
        The profile's values in C{subrequest}: every value of each header
        (the client's address as L{clientOf} reads it), and the body.
        """
        return {
            "method": subrequest.header(self.methodHeader),
            "uri": subrequest.header(self.uriHeader),
            "host": subrequest.header(self.hostHeader),
            "proto": subrequest.header(self.protoHeader),
            "client": self.clientOf(subrequest),
            "body": subrequest.body,
        }

    def expected(self, method: bytes, uri: bytes) -> dict[str, Any]:
        """
        The profile's values for a request of C{method} on C{uri} from
        L{CLIENT}, with no body.
        """
        return {
            "method": [method],
            "uri": [uri],
            "host": [self.authority],
            "proto": [b"http"],
            "client": CLIENT.encode("ascii"),
            "body": b"",
        }

    @defer.inlineCallbacks
    def test_profileHeaders(self) -> Any:
        """
        The auth subrequest carries, in the profile's headers, the
        original method, the raw target with its query, the host with
        its port, C{http} and the client's address (not the web server's,
        from which the subrequest comes), and no body, for a GET the
        endpoint allows and a POST with a body it refuses.
        """
        response, body = yield self.fetch(b"/private/a.txt?x=1")
        self.assertEqual((response.code, body), (200, SECRET))
        subrequest = self.only()
        self.assertEqual(subrequest.peer, "127.0.0.1")
        self.assertEqual(self.profileOf(subrequest), self.expected(b"GET", b"/private/a.txt?x=1"))

        self.endpoint.status = 401
        headers = Headers({b"content-type": [b"application/x-www-form-urlencoded"]})
        response, body = yield self.fetch(
            b"/private/a.txt?x=1&y=%2F", b"POST", headers, FileBodyProducer(BytesIO(b"a=1&b=2"))
        )
        self.assertEqual(response.code, 401)
        self.assertEqual(
            self.profileOf(self.only()), self.expected(b"POST", b"/private/a.txt?x=1&y=%2F")
        )

    @defer.inlineCallbacks
    def test_clientCopiesChangeNothing(self) -> Any:
        """
        Copies of the profile's headers that the client sends, twice each
        and with other values, change none of the values the endpoint
        receives in them; for a list of addresses the rightmost entry is
        still the client.
        """
        spoofs = {
            self.methodHeader: [b"DELETE", b"PUT"],
            self.uriHeader: [b"/public/b.txt", b"/elsewhere"],
            self.hostHeader: [b"bank.example", b"evil.example:8443"],
            self.protoHeader: [b"https", b"ftp"],
            self.clientHeader: [b"192.0.2.1, 198.51.100.7", b"203.0.113.9"],
        }
        response, body = yield self.fetch(b"/private/a.txt?x=1", headers=Headers(spoofs))
        self.assertEqual((response.code, body), (200, SECRET))
        received = self.profileOf(self.only())
        self.assertEqual(received, self.expected(b"GET", b"/private/a.txt?x=1"))

    @defer.inlineCallbacks
    def test_otherClientHeadersPassThrough(self) -> Any:
        """
        Client headers outside the profile (those of the other profiles,
        C{X-Original-URL}, C{Forwarded}) reach the endpoint exactly as
        the client sent them: the endpoint must not read them.
        """
        response, _ = yield self.fetch(b"/private/a.txt", headers=Headers(dict(self.foreign)))
        self.assertEqual(response.code, 200)
        subrequest = self.only()
        self.assertEqual(
            {name: subrequest.header(name) for name in self.foreign}, dict(self.foreign)
        )

    @defer.inlineCallbacks
    def test_unauthorized(self) -> Any:
        """
        A 401 of the endpoint, asked with the profile, reaches the client
        with its challenge, and without the file or a JID.
        """
        self.endpoint.status = 401
        response, body = yield self.fetch(b"/private/a.txt")
        self.assertEqual(response.code, 401)
        self.assertEqual(
            response.headers.getRawHeaders(b"www-authenticate"), list(self.challenges)
        )
        self.assertNotIn(SECRET, body)
        self.assertIsNone(response.headers.getRawHeaders(b"x-auth-jid"))
        self.assertEqual(self.profileOf(self.only()), self.expected(b"GET", b"/private/a.txt"))

    @defer.inlineCallbacks
    def test_authorized(self) -> Any:
        """
        A 200 of the endpoint, asked with the profile, lets the static
        file through, with the JID the endpoint gave in C{X-Auth-JID}; the
        public file needs no subrequest.
        """
        response, body = yield self.fetch(b"/private/a.txt")
        self.assertEqual((response.code, body), (200, SECRET))
        self.assertEqual(response.headers.getRawHeaders(b"x-auth-jid"), [JID])
        self.assertEqual(self.profileOf(self.only()), self.expected(b"GET", b"/private/a.txt"))
        response, body = yield self.fetch(b"/public/b.txt")
        self.assertEqual((response.code, body), (200, FILES["public/b.txt"]))
        self.assertEqual(self.endpoint.subrequests, [])

    @defer.inlineCallbacks
    def test_bypassShapes(self) -> Any:
        """
        Each request path of L{ASKED_BOTH} and L{ESCAPES} either reaches
        the endpoint (with the raw target the client sent in the profile's
        URI header, and the rest of the profile), is refused when the
        endpoint refuses, and gives the private file when it allows; or
        is refused by the server itself without asking; as C{shapes} says
        for this server.
        """
        observed = {}
        for target in self.shapes:
            self.endpoint.status = 401
            denied, _ = yield self.fetch(target)
            subrequests, self.endpoint.subrequests = self.endpoint.subrequests, []
            self.assertLessEqual(len(subrequests), 1, (target, subrequests))
            asked = None
            if subrequests:
                profile = self.profileOf(subrequests[0])
                values = profile.pop("uri")
                self.assertEqual(len(values or ()), 1, (target, values))
                asked = (values or [b""])[0]
                expected = self.expected(b"GET", asked)
                del expected["uri"]
                self.assertEqual(profile, expected, target)
            self.endpoint.status = 200
            allowed, body = yield self.fetch(target)
            self.endpoint.subrequests = []
            if allowed.code == 200:
                self.assertEqual(body, SECRET, target)
            observed[target] = Shape(asked=asked, denied=denied.code, allowed=allowed.code)
        self.assertEqual(observed, dict(self.shapes))

    @defer.inlineCallbacks
    def test_absoluteForm(self) -> Any:
        """
        For an absolute-form target the server sends its path and query in
        the profile's URI header and, in its host header, either the
        client's C{Host} header (nginx) or the target's authority (Caddy),
        as C{absoluteHost} says.
        """
        answer = yield self.raw(
            b"GET http://%s/private/a.txt?q HTTP/1.1\r\n"
            b"Host: other.example:81\r\nConnection: close\r\n\r\n" % (self.authority,)
        )
        self.assertEqual(answer.status, 200)
        received = self.profileOf(self.only())
        host = {"header": b"other.example:81", "target": self.authority}[self.absoluteHost]
        self.assertEqual((received["uri"], received["host"]), ([b"/private/a.txt?q"], [host]))


class NginxHeadersTests(HeadersMixin, TestCase):
    """
    nginx 1.22 with the C{auth_request} configuration of L{tests.nginx}:
    the C{nginx} profile.
    """

    methodHeader, uriHeader, hostHeader, protoHeader, clientHeader = NGINX_PROFILE
    clientIsList = False
    foreign = foreignHeaders(CADDY_PROFILE)
    # nginx's auth_request passes the first challenge only.
    challenges = CHALLENGES[:1]
    shapes = {
        **{target: Shape(asked=target, denied=401, allowed=200) for target in ASKED_BOTH},
        **{target: Shape(asked=None, denied=400, allowed=400) for target in ESCAPES},
    }
    absoluteHost = "header"
    requireServer = staticmethod(requireNginx)
    startServer = staticmethod(startNginx)
    harnessAttribute = "nginxHarness"

    @defer.inlineCallbacks
    def test_noHost(self) -> Any:
        """
        An HTTP/1.0 request without C{Host} is sent to the endpoint
        without C{X-Original-Host} (nor C{Host}): C{proxy_set_header} of
        an empty value sends nothing; the rest of the profile is there.
        """
        answer = yield self.raw(b"GET /private/a.txt HTTP/1.0\r\n\r\n")
        self.assertEqual(answer.status, 200)
        subrequest = self.only()
        self.assertEqual(
            (subrequest.header(b"x-original-host"), subrequest.header(b"host")), (None, None)
        )
        expected = self.expected(b"GET", b"/private/a.txt")
        expected["host"] = None
        self.assertEqual(self.profileOf(subrequest), expected)


class CaddyHeadersTests(HeadersMixin, TestCase):
    """
    Caddy 2.6.2 with the C{forward_auth} configuration of L{tests.caddy}:
    the C{caddy} profile.
    """

    methodHeader, uriHeader, hostHeader, protoHeader, clientHeader = CADDY_PROFILE
    clientIsList = True
    foreign = foreignHeaders(NGINX_PROFILE)
    # Caddy passes the endpoint's answer on whole.
    challenges = CHALLENGES
    shapes = {
        **{target: Shape(asked=target, denied=401, allowed=200) for target in ASKED_BOTH},
        **{target: Shape(asked=target, denied=401, allowed=200) for target in ESCAPES[:3]},
        # file_server cannot open a name with NUL.
        ESCAPES[3]: Shape(asked=ESCAPES[3], denied=401, allowed=500),
    }
    absoluteHost = "target"
    requireServer = staticmethod(requireCaddy)
    startServer = staticmethod(startCaddy)
    harnessAttribute = "caddyHarness"

    @defer.inlineCallbacks
    def test_clientAddressListReplaced(self) -> Any:
        """
        Caddy replaces a client's C{X-Forwarded-For} with the client's
        address alone (the client is no trusted proxy of Caddy's): not
        even the leftmost entry is the client's choice.
        """
        headers = Headers({b"x-forwarded-for": [b"192.0.2.1, 198.51.100.7", b"203.0.113.9"]})
        response, _ = yield self.fetch(b"/private/a.txt", headers=headers)
        self.assertEqual(response.code, 200)
        self.assertEqual(self.only().header(b"x-forwarded-for"), [CLIENT.encode("ascii")])

    @defer.inlineCallbacks
    def test_authQuery(self) -> Any:
        """
        Caddy asks for C{/} (the C{uri} of C{forward_auth}) with the
        original query string appended.
        """
        response, _ = yield self.fetch(b"/private/a.txt?x=1&y=%2F")
        self.assertEqual(response.code, 200)
        subrequest = self.only()
        self.assertEqual((subrequest.method, subrequest.uri), (b"GET", b"/?x=1&y=%2F"))

    @defer.inlineCallbacks
    def test_noHost(self) -> Any:
        """
        An HTTP/1.0 request without C{Host} matches no site address:
        Caddy answers (an empty 200) without asking the endpoint.
        """
        answer = yield self.raw(b"GET /private/a.txt HTTP/1.0\r\n\r\n")
        self.assertEqual(answer.status, 200)
        self.assertEqual(self.endpoint.subrequests, [])
