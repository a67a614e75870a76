# -*- test-case-name: tests.test_httpauth_proxy -*-
"""
Proxy mode's reverse proxy: L{UpstreamProxyResource} forwards a confirmed
request to the upstream and streams the answer back.

It is a plain HTTP/1.1 reverse proxy with the habits of one (nginx's
C{proxy_pass}), and none of an HTTP client library's: it keeps no cookie
jar (the upstream's C{Set-Cookie} goes to the one client it answers, and
each request carries only its own client's cookies), follows no redirect
(a 3xx goes back to the client; following it on the server would let an
open redirect on the upstream fetch internal pages for the client), and
never holds a body in memory (the request body is streamed from the file
twisted.web received it into, the response body from the upstream
connection to the client's, paused while the client does not read).

It sits inside the protect resource, which has confirmed the request,
checked its method, target and C{Host}, put the canonical path segments in
C{request.postpath} and the confirmed JID in the C{X-Auth-JID} request
header.

Headers (RFC 9110 section 7.6.1):

  - hop-by-hop headers are dropped both ways: C{Connection},
    C{Keep-Alive}, C{Proxy-Connection}, C{TE}, C{Trailer},
    C{Transfer-Encoding}, C{Upgrade}, C{Proxy-Authenticate},
    C{Proxy-Authorization}, and every header named in C{Connection};
  - towards the upstream: C{Host} is the upstream's; C{Authorization} is
    dropped (the confirmation consumed it); C{Content-Length} and
    C{Expect} are the proxy's own business; C{X-Auth-JID} is the
    confirmed JID, every other copy dropped, in any spelling (names are
    compared without regard to case, C{_} and C{-} alike, as CGI and WSGI
    servers read them); C{X-Forwarded-For} gets the client's address
    appended; C{X-Forwarded-Proto} and C{X-Forwarded-Host} describe the
    request as this server got it (or the configured public origin), and
    a client's copies of them, and of C{Forwarded} and C{X-Real-IP}, in
    any spelling, are dropped; no C{Accept-Encoding} is added;
  - towards the client: everything else the upstream sent, unchanged
    (C{Set-Cookie} included), but C{Server} and C{Date}, which are this
    server's (as nginx does); C{Location} is rewritten when it points
    into the upstream (see L{UpstreamProxyResource}).

There is no C{Upgrade} (so no WebSocket) through the proxy.
"""

from __future__ import annotations

from typing import cast
from urllib.parse import SplitResult, quote, urlsplit

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import maybeDeferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger as TwistedLogger
from twisted.python.failure import Failure
from twisted.web.client import FileBodyProducer, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent, IBodyProducer, IRequest, IResponse
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from xmppcomp.httpauth._http import clientGone, normalName
from xmppcomp.httpauth._target import BadTarget, HostPort, Origin, canonicalTarget
from xmppcomp.logs import Logger

__all__ = ["UpstreamProxyResource", "checkUpstream"]

#: The header carrying the confirmed JID (the protect resource sets it).
_JID_HEADER = b"X-Auth-JID"

#: Characters of an RFC 3986 C{pchar} kept as they are in an encoded
#: segment, besides the unreserved ones.
_PCHAR_SAFE = "!$&'()*+,;=:@"

#: Hop-by-hop headers (RFC 9110 section 7.6.1), lower case.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)

#: Request headers not passed to the upstream as the client sent them, in
#: the form of L{normalName<xmppcomp.httpauth._http.normalName>}.
_REQUEST_OWN = frozenset(
    {
        b"host",
        b"authorization",
        b"content-length",
        b"expect",
        b"x-auth-jid",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"forwarded",
        b"x-real-ip",
    }
)

#: Response headers this server sets itself.
_RESPONSE_OWN = frozenset({b"server", b"date"})

_DEFAULT_PORTS = {"http": 80, "https": 443}

#: Answers without a body, whose length says nothing.
_NO_BODY = frozenset({204, 304}) | frozenset(range(100, 200))


def _connectionNamed(headers: Headers) -> frozenset[bytes]:
    """
    The headers named in C{Connection} (normalised names).
    """
    named = set()
    for value in headers.getRawHeaders(b"connection", []):
        for token in value.split(b","):
            token = token.strip()
            if token:
                named.add(normalName(token))
    return frozenset(named)


def _encodeSegment(segment: bytes) -> str:
    """
    Percent-encode one decoded path segment (UTF-8), keeping an RFC 3986
    C{pchar}.
    """
    return quote(segment, safe=_PCHAR_SAFE)


def _port(parts: SplitResult) -> int:
    """
    The port of a split http(s) URL, its scheme's default if none.

    @raise ValueError: for a port that is not a number from 0 to 65535.
    """
    port = parts.port
    return _DEFAULT_PORTS[parts.scheme.lower()] if port is None else port


def checkUpstream(upstream: str) -> str:
    """
    Check the URL of an upstream (L{UpstreamProxyResource}, C{[httpauth]
    upstream}): C{http} or C{https}, a host, an optional port and path; no
    query, fragment or user information; ASCII.

    @return: C{upstream}.
    @raise ValueError: it is not, with the reason.
    """
    if not upstream.isascii():
        raise ValueError("it is not ASCII; percent-encode the path, and write a host name in its xn-- form")
    parts = urlsplit(upstream)
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("not an http:// or https:// URL with a host")
    if parts.query or parts.fragment or "?" in upstream or "#" in upstream:
        raise ValueError("it has a query or fragment; each request's own query is forwarded")
    if parts.username is not None or parts.password is not None:
        raise ValueError("it holds user information; credentials for the upstream are not supported")
    _port(parts)
    return upstream


class UpstreamProxyResource(Resource):
    """
    Forward each request to an upstream and stream the answer back: the
    method, the path below this resource (the segments in
    C{request.postpath}, decoded and canonical, percent-encoded again)
    after the upstream URL's own path, the normalised query
    (L{canonicalTarget}), the end-to-end headers, the body.

    The answer keeps its status, reason phrase, end-to-end headers and
    body. A redirect is never followed. Its C{Location} (in any answer) is
    rewritten when it points at the upstream's origin and at or below the
    upstream URL's path: to the same place below this resource on the
    client's side, as a path-absolute reference built from
    C{request.prepath}. With the upstream C{http://10.0.0.2:8080/app} and
    this resource at C{/wiki/}, C{Location: http://10.0.0.2:8080/app/login}
    and C{Location: /app/login} become C{/wiki/login}; every other
    C{Location} (another origin, another path, a relative reference) is
    passed unchanged.

    An upstream that cannot be reached, or fails before the head of its
    answer, is a 502 with a plain-text reason (the L{IAgent} decides how
    long to wait for it). An upstream that fails in the middle of a body
    closes the client's connection (so the client cannot take a truncated
    body for a whole one). A client that goes away stops the upstream
    request.

    Put it in the protect resource; it is a leaf. It renders only
    requests of a twisted.web L{Site<twisted.web.server.Site>}.

    @ivar _upstream: the upstream URL, split.
    @ivar _basePath: the upstream URL's path, without its trailing C{/}.
    @ivar _host: the C{Host} header for the upstream.
    @ivar _agent: makes the requests to the upstream.
    @ivar _publicOrigin: where clients reach this server, or L{None} to
        read it from each request.
    """

    isLeaf = True
    _log = Logger()

    def __init__(self, upstream: str, agent: IAgent, publicOrigin: Origin | None = None) -> None:
        """
        @param upstream: the upstream URL, C{http} or C{https}, optionally
            with a path that is prefixed to every forwarded path (no query,
            fragment or user information).
        @param agent: the HTTP client to use: a plain
            L{twisted.web.client.Agent} (with the connection pool and
            timeouts of your choosing), not one that follows redirects,
            keeps cookies or decodes content.
        @param publicOrigin: where clients reach this server, for
            C{X-Forwarded-Proto} and C{X-Forwarded-Host}. L{None}: the
            request's connection (TLS or not) and its C{Host} header.
        @raise ValueError: for an upstream URL that is not as described.
        """
        super().__init__()
        try:
            parts = urlsplit(checkUpstream(upstream))
        except ValueError as e:
            raise ValueError(f"the upstream URL {upstream!r}: {e}") from None
        port = _port(parts)
        host = cast(str, parts.hostname)
        hostPort = HostPort(host, None if port == _DEFAULT_PORTS[parts.scheme.lower()] else port)
        self._upstream = parts
        self._basePath = parts.path.rstrip("/")
        self._host = hostPort.authority().encode("ascii")
        self._agent = agent
        self._publicOrigin = publicOrigin

    def _upstreamURL(self, request: IRequest) -> bytes:
        """
        The URL C{request} is forwarded to.

        @raise BadTarget: the request's target or path segments are not
            canonical.
        """
        segments = request.postpath
        for segment in segments:
            if segment in (b".", b"..") or b"/" in segment:
                raise BadTarget("the path is not canonical")
        path = self._basePath
        if segments:
            path += "/" + "/".join(_encodeSegment(s) for s in segments)
        query = canonicalTarget(request.uri).query
        url = self._upstream._replace(path=path or "/", query=query or "", fragment="")
        return url.geturl().encode("ascii")

    def _requestHeaders(self, request: Request) -> Headers:
        """
        The headers for the upstream: see the module docstring.
        """
        given = request.requestHeaders
        dropped = _HOP_BY_HOP | _REQUEST_OWN | _connectionNamed(given)
        headers = Headers()
        for name, values in given.getAllRawHeaders():
            if normalName(name) not in dropped:
                headers.setRawHeaders(name, values)
        headers.setRawHeaders(b"Host", [self._host])
        jid = given.getRawHeaders(_JID_HEADER)
        if jid:
            headers.setRawHeaders(_JID_HEADER, [jid[-1]])
        forwarded = [
            entry.strip()
            for value in given.getRawHeaders(b"x-forwarded-for", [])
            for entry in value.split(b",")
            if entry.strip()
        ]
        peer = request.getClientAddress()
        if isinstance(peer, (IPv4Address, IPv6Address)):
            forwarded.append(peer.host.encode("ascii"))
        else:
            forwarded.append(b"unknown")
        headers.setRawHeaders(b"X-Forwarded-For", [b", ".join(forwarded)])
        if self._publicOrigin is not None:
            proto = self._publicOrigin.scheme.encode("ascii")
            authority: bytes | None = (
                HostPort(self._publicOrigin.host, self._publicOrigin.port)
                .authority()
                .encode("ascii")
            )
        else:
            proto = b"https" if request.isSecure() else b"http"
            authority = request.getHeader(b"host")
        headers.setRawHeaders(b"X-Forwarded-Proto", [proto])
        if authority:
            headers.setRawHeaders(b"X-Forwarded-Host", [authority])
        return headers

    def _location(self, location: bytes, request: Request) -> bytes:
        """
        C{location} as the client must see it: rewritten when it points at
        the upstream's origin and at or below its path.
        """
        try:
            text = location.decode("ascii")
            target = urlsplit(text)
            if target.scheme or target.netloc:
                scheme = (target.scheme or self._upstream.scheme).lower()
                if (
                    target.username is not None
                    or target.password is not None
                    or scheme != self._upstream.scheme.lower()
                    or target.hostname != self._upstream.hostname
                    or _port(target._replace(scheme=scheme)) != _port(self._upstream)
                ):
                    return location
            elif not text.startswith("/"):
                # Relative: the paths below match on both sides.
                return location
        except (UnicodeDecodeError, ValueError):
            return location
        path = target.path
        base = self._basePath
        if path != base and not path.startswith(base + "/"):
            return location
        prefix = "".join("/" + _encodeSegment(s) for s in request.prepath or [])
        below = (prefix + path[len(base) :]) or "/"
        if below.startswith(("//", "/\\")):
            # A browser reads it as another host: leave the upstream's.
            return location
        rewritten = target._replace(scheme="", netloc="", path=below)
        return rewritten.geturl().encode("ascii")

    def render(self, request: IRequest) -> int | bytes:
        """
        Forward C{request}; answer when the upstream does.
        """
        web = cast(Request, request)
        try:
            url = self._upstreamURL(request)
        except BadTarget as e:
            return _plain(web, 400, e.reason)
        headers = self._requestHeaders(web)
        # The answer has the upstream's Content-Type, or none.
        web.defaultContentType = None
        body: IBodyProducer | None = None
        if web.content is not None:
            producer = FileBodyProducer(web.content)
            if producer.length != 0:
                body = producer
        sent = maybeDeferred(self._agent.request, web.method, url, headers, body)
        web.notifyFinish().addErrback(lambda _: sent.cancel())
        sent.addCallbacks(
            self._relay,
            self._unreachable,
            callbackArgs=(web, url),
            errbackArgs=(web, url),
        )
        sent.addErrback(self._failed, web)
        return NOT_DONE_YET

    def _relay(self, response: IResponse, request: Request, url: bytes) -> None:
        """
        Pass C{response} on to the client.
        """
        if clientGone(request):
            response.deliverBody(_Discard())
            return
        request.setResponseCode(response.code, response.phrase)
        given = response.headers
        dropped = _HOP_BY_HOP | _RESPONSE_OWN | _connectionNamed(given)
        for name, values in given.getAllRawHeaders():
            if normalName(name) in dropped:
                continue
            if name.lower() == b"location":
                values = [self._location(value, request) for value in values]
            request.responseHeaders.setRawHeaders(name, values)
        # The Agent keeps Content-Length to itself but for HEAD, where it
        # is among the headers copied above.
        if (
            request.method != b"HEAD"
            and response.length != UNKNOWN_LENGTH
            and response.code not in _NO_BODY
        ):
            request.responseHeaders.setRawHeaders(b"Content-Length", [b"%d" % (response.length,)])
        response.deliverBody(_BodyRelay(request, url, self._log))

    def _unreachable(self, failure: Failure, request: Request, url: bytes) -> None:
        """
        Answer 502 for an upstream that could not be reached, unless the
        client went away (which cancelled the upstream request).
        """
        if clientGone(request):
            self._log.debug(
                "the client left before upstream {url} answered", url=url.decode("ascii")
            )
            return
        self._log.error(
            "upstream {url} could not be reached: {error}",
            url=url.decode("ascii"),
            error=failure.getErrorMessage(),
        )
        request.write(_plain(request, 502, "The upstream server could not be reached."))
        request.finish()

    def _failed(self, failure: Failure, request: Request) -> None:
        """
        Log a bug in relaying, and close the client's connection.
        """
        self._log.failure("relaying an upstream answer failed", failure=failure)
        request.loseConnection()


def _plain(request: Request, status: int, reason: str) -> bytes:
    """
    Set C{request} up for a plain-text answer; return the body.
    """
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    return reason.encode("utf-8") + b"\n"


class _Discard(Protocol):
    """
    Takes a response body nobody wants, and closes its connection.
    """

    def connectionMade(self) -> None:
        IPushProducer(self.transport).stopProducing()


class _BodyRelay(Protocol):
    """
    Writes an upstream response's body to the client's request as it
    comes, registered as the request's producer: when the client does not
    read, twisted.web pauses the upstream connection; when the client goes
    away, it stops it.

    @ivar _request: the client's request.
    @ivar _url: the upstream URL (for the log).
    @ivar _log: the proxy's logger.
    """

    def __init__(self, request: Request, url: bytes, log: TwistedLogger) -> None:
        self._request = request
        self._url = url
        self._log = log

    def connectionMade(self) -> None:
        if clientGone(self._request):
            IPushProducer(self.transport).stopProducing()
            return
        self._request.registerProducer(self.transport, True)
        self._request.notifyFinish().addErrback(self._clientLeft)

    def _clientLeft(self, reason: Failure) -> None:
        """
        The client went away: stop reading the upstream's answer (twisted.web
        may not have stopped its producer).
        """
        IPushProducer(self.transport).stopProducing()

    def dataReceived(self, data: bytes) -> None:
        if not clientGone(self._request):
            self._request.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        request = self._request
        if clientGone(request):
            return
        request.unregisterProducer()
        if reason.check(ResponseDone, PotentialDataLoss):
            request.finish()
            return
        self._log.warn(
            "upstream {url} failed in the middle of a body: {error}",
            url=self._url.decode("ascii"),
            error=reason.getErrorMessage(),
        )
        request.loseConnection()
