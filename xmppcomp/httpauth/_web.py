# -*- test-case-name: tests.test_httpauth_web -*-
"""
The HTTP side of XEP-0070: three twisted.web resources sharing one
checker.

  - L{ProtectedResource} wraps a local resource (a
    L{twisted.web.static.File} directory, for instance);
  - L{UpstreamProxyResource}, wrapped in a L{ProtectedResource}, forwards
    allowed requests to an upstream URL through a treq client;
  - L{ForwardAuthResource} answers a web server that delegates
    authentication (nginx C{auth_request}, Traefik ForwardAuth, Caddy
    C{forward_auth}).

Response codes, protect and proxy:

  - 200 (or whatever the wrapped resource answers): confirmed, or within a
    session or a HEAD/OPTIONS window;
  - 400: a Digest C{uri} that is not the request's, no C{Host} header;
  - 401 with C{WWW-Authenticate: Basic realm="xmpp"} first, then
    C{Digest realm="xmpp", ...}: no credentials, an unknown scheme, a
    malformed header, JID or transaction id; the body says which;
  - 403: denied, replayed transaction id, refused by the access rules;
  - 429 / 503 with C{Retry-After}: too many confirmations pending for the
    JID / in total; 503 also when the component is not connected;
  - 504: no answer within the timeout (the transaction id is not used up:
    retrying with the same credentials asks again);
  - 502: the upstream could not be reached (proxy).

Forward-auth answers only 200, 401 and 403 (nginx turns anything else into
a 500): a timeout becomes 401 with the challenge (the browser asks for
credentials again, so the user can retry), and limits, an unavailable
component, a bad Digest C{uri} and missing C{X-Original-*} /
C{X-Forwarded-*} headers become 403 (the C{Retry-After} header is still
set for limits). A 200 carries C{X-Auth-JID}.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar
from urllib.parse import urlsplit

from twisted.cred.error import LoginFailed
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import ICredentialFactory, IRequest
from twisted.web.resource import IResource, Resource, getChildForRequest
from twisted.web.server import NOT_DONE_YET

from zope.interface import implementer

from xmppcomp.httpauth._checker import ConfirmationCredentials, XMPPConfirmationChecker
from xmppcomp.httpauth._errors import ConfirmationFailed, ConfirmationTimeout
from xmppcomp.httpauth._policy import Attempt
from xmppcomp.httpauth._protocol import (
    REALM,
    CredentialsError,
    MalformedHeader,
    credentialsFromBasic,
    credentialsFromDigest,
)
from xmppcomp.logs import Logger

#: The header carrying the confirmed JID: set on forward-auth 200 answers
#: and on requests passed to a protected resource (a client's own copy is
#: removed first).
JID_HEADER = b"X-Auth-JID"

#: Hop-by-hop headers (RFC 9110 section 7.6.1) and those the proxy resets.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    }
)


class BadRequest(Exception):
    """
    The request is wrong in a way new credentials will not fix: 400.

    @ivar reason: a human-readable explanation.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _quote(value: bytes) -> bytes:
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _ascii(value: str | bytes) -> bytes:
    return value.encode("ascii") if isinstance(value, str) else value


def challenges(factories: Sequence[ICredentialFactory], request: IRequest) -> list[bytes]:
    """
    The C{WWW-Authenticate} values, in the order of C{factories}, C{realm}
    first in each (XEP-0070 example 2).
    """
    values = []
    for factory in factories:
        challenge = {_ascii(k): _ascii(v) for k, v in factory.getChallenge(request).items()}
        realm = challenge.pop(b"realm")
        params = [b"realm=" + _quote(realm)]
        for key, value in challenge.items():
            params.append(key + b"=" + _quote(value))
        values.append(factory.scheme.capitalize() + b" " + b", ".join(params))
    return values


class _Answer(Resource):
    """
    A leaf answering with a status, a plain-text reason and headers.
    """

    isLeaf = True

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        super().__init__()
        self._status = status
        self._reason = reason
        self._headers = headers

    def render(self, request: IRequest) -> bytes:
        request.setResponseCode(self._status)
        for name, value in self._headers:
            request.responseHeaders.addRawHeader(name, value)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return self._reason.encode("utf-8") + b"\n"


def _clientAddress(request: IRequest) -> str:
    address = request.getClientAddress()
    return str(getattr(address, "host", address))


class _Authenticator:
    """
    What the three resources share: decode the header, ask the checker.

    @ivar _checker: the checker.
    @ivar _factories: Basic first, then Digest.
    """

    _log = Logger()

    def __init__(
        self,
        checker: XMPPConfirmationChecker,
        factories: Sequence[ICredentialFactory],
        serverTiming: bool = False,
    ) -> None:
        self._checker = checker
        self._factories = factories
        self._serverTiming = serverTiming

    def challenge(self, request: IRequest, reason: str) -> _Answer:
        """
        A 401 with both challenges and C{reason} as body.
        """
        headers = [(b"WWW-Authenticate", value) for value in challenges(self._factories, request)]
        return _Answer(401, reason, headers)

    def authenticate(
        self, request: IRequest, method: str, url: str, target: bytes, client: str
    ) -> Deferred[str]:
        """
        Check the credentials of C{request} for C{method} on C{url}.

        @param target: the request target the client used (for the Digest
            C{uri} check).
        @return: fires with the JID; fails with L{CredentialsError} (401),
            L{BadRequest} (400) or L{ConfirmationFailed}.
        """
        return maybeDeferred(self._authenticate, request, method, url, target, client)

    def _authenticate(
        self, request: IRequest, method: str, url: str, target: bytes, client: str
    ) -> Deferred[str]:
        header = request.getHeader(b"authorization")
        if not header:
            raise CredentialsError(
                f"Credentials needed: your JID as user name and a transaction id "
                f"of your choosing as password (realm {REALM!r})."
            )
        scheme, _, response = header.strip().partition(b" ")
        for factory in self._factories:
            if factory.scheme == scheme.lower():
                break
        else:
            raise MalformedHeader(
                f"unsupported scheme {scheme.decode('latin-1')!r}; use Basic or Digest"
            )
        try:
            decoded = factory.decode(response.strip(), request)
        except LoginFailed as e:
            raise MalformedHeader(f"malformed {scheme.decode('latin-1')} header: {e}")
        if factory.scheme == b"basic":
            credentials = credentialsFromBasic(decoded.username, decoded.password)
        else:
            fields = decoded.fields
            credentials = credentialsFromDigest(fields)
            uri = fields.get("uri")
            if uri not in (target, url.encode("utf-8")):
                raise BadRequest("the Digest uri is not the URL requested")
        confirmation = ConfirmationCredentials(Attempt(credentials, method, url, client))
        d = self._checker.requestAvatarId(confirmation)
        if self._serverTiming:
            d.addBoth(_addServerTiming, request, confirmation)
        return d


_T = TypeVar("_T")


def _addServerTiming(result: _T, request: IRequest, confirmation: ConfirmationCredentials) -> _T:
    """
    Say how long the XMPP confirmation took, if this request asked one, in
    a C{Server-Timing} header (milliseconds), and pass C{result} on.
    """
    if confirmation.roundTrip is not None:
        request.setHeader(
            b"Server-Timing",
            b'xmpp;dur=%.3f;desc="XEP-0070 confirmation"' % (confirmation.roundTrip * 1000,),
        )
    return result


def _failureAnswer(authenticator: _Authenticator, request: IRequest, failure: Failure) -> _Answer:
    """
    The answer for protect and proxy resources.
    """
    error = failure.value
    if isinstance(error, CredentialsError):
        return authenticator.challenge(request, error.reason)
    if isinstance(error, BadRequest):
        return _Answer(400, error.reason)
    if isinstance(error, ConfirmationFailed):
        headers = []
        if error.retryAfter is not None:
            headers.append((b"Retry-After", b"%d" % (error.retryAfter,)))
        return _Answer(error.status, error.reason, headers)
    _Authenticator._log.failure("XEP-0070 check failed", failure=failure)
    return _Answer(500, "internal error")


def requestURL(request: IRequest, publicOrigin: str | None) -> str:
    """
    The full URL of C{request}.

    @param publicOrigin: the scheme and authority clients use (for a
        server behind a TLS terminator), or C{None} to take the scheme
        from the connection and the authority from C{Host}.
    @raise BadRequest: no C{Host} header and no C{publicOrigin}.
    """
    target = request.uri.decode("latin-1")
    if target.startswith(("http://", "https://")):
        return target
    if publicOrigin is not None:
        return publicOrigin.rstrip("/") + target
    host = request.getHeader(b"host")
    if not host:
        raise BadRequest("the request has no Host header")
    scheme = "https" if request.isSecure() else "http"
    return f"{scheme}://{host.decode('latin-1')}{target}"


class ProtectedResource(Resource):
    """
    Put XEP-0070 confirmation in front of a resource and its children.

    Like L{twisted.web.guard.HTTPAuthSessionWrapper}, it consumes no path
    segment. The wrapped resource sees the confirmed JID in
    L{JID_HEADER}, and never the client's C{Authorization} header.

    @ivar _wrapped: the protected resource.
    @ivar _authenticator: checks requests.
    @ivar _publicOrigin: see L{requestURL}.
    """

    isLeaf = False

    def __init__(
        self,
        wrapped: IResource,
        authenticator: _Authenticator,
        publicOrigin: str | None = None,
    ) -> None:
        super().__init__()
        self._wrapped = wrapped
        self._authenticator = authenticator
        self._publicOrigin = publicOrigin
        # Bound once: a bound method made per request is 64 bytes more per
        # pending confirmation.
        self._onAllowed = self._allowed
        self._onRefused = self._refused

    def getChildWithDefault(self, path: bytes, request: IRequest) -> IResource:
        request.postpath.insert(0, request.prepath.pop())
        return self._gate(request)

    def render(self, request: IRequest) -> bytes | int:
        return self._gate(request).render(request)

    def _gate(self, request: IRequest) -> IResource:
        request.requestHeaders.removeHeader(JID_HEADER)
        try:
            url = requestURL(request, self._publicOrigin)
        except BadRequest as e:
            return _Answer(400, e.reason)
        target = request.uri
        d = self._authenticator.authenticate(
            request, request.method.decode("ascii"), url, target, _clientAddress(request)
        )
        return _Checking(self, d)

    # Both answer a failure with twisted.web's 500 and log it (what
    # Request.process does for resources rendered at once) and never raise:
    # no errback is needed after them, one callback entry less per request.

    def _allowed(self, who: str, request: IRequest) -> None:
        if _clientGone(request):
            return
        try:
            request.requestHeaders.removeHeader(b"authorization")
            request.requestHeaders.setRawHeaders(JID_HEADER, [who.encode("utf-8")])
            request.render(getChildForRequest(self._wrapped, request))  # type: ignore[attr-defined]
        except BaseException:
            request.processingFailed(Failure())  # type: ignore[attr-defined]

    def _refused(self, failure: Failure, request: IRequest) -> None:
        if _clientGone(request):
            return
        try:
            request.render(_failureAnswer(self._authenticator, request, failure))  # type: ignore[attr-defined]
        except BaseException:
            request.processingFailed(Failure())  # type: ignore[attr-defined]


@implementer(IResource)
class _Checking:
    """
    A request while its credentials are checked: once they are, the
    protected resource (traversed along the rest of the path) or the
    refusal renders.

    What twisted.web's C{DeferredResource} does, with the gate's methods
    as callbacks instead of two closures and a second resource per
    request, and as a slotted leaf rather than a L{Resource} (which has a
    dict of children): about 1 KiB less per pending confirmation (RSS,
    bench/confirmer.py).
    """

    __slots__ = ("_gate", "_checked")
    isLeaf = True

    def __init__(self, gate: ProtectedResource, checked: Deferred[str]) -> None:
        self._gate = gate
        self._checked = checked

    def getChildWithDefault(self, name: bytes, request: IRequest) -> IResource:
        return self

    def putChild(self, path: bytes, child: IResource) -> None:
        raise NotImplementedError("a request being checked has no children")

    def render(self, request: IRequest) -> int:
        gate = self._gate
        args = (request,)
        self._checked.addCallbacks(gate._onAllowed, gate._onRefused, callbackArgs=args, errbackArgs=args)
        return NOT_DONE_YET


class UpstreamProxyResource(Resource):
    """
    Forward requests to an upstream URL with a treq client: method,
    headers (less hop-by-hop ones), body, path below this resource, query.
    The answer comes back the same way; an unreachable upstream is a 502.

    Put it inside a L{ProtectedResource} (see L{Confirmer.proxy}).

    @ivar _upstream: the upstream base URL.
    @ivar _client: a L{treq.client.HTTPClient} (or L{treq.testing.StubTreq}).
    """

    isLeaf = True
    _log = Logger()

    def __init__(self, upstream: str, client: object) -> None:
        super().__init__()
        self._upstream = upstream.rstrip("/")
        self._client = client

    def _upstreamURL(self, request: IRequest) -> str:
        raw = request.uri
        if raw.startswith((b"http://", b"https://")):
            raw = raw.split(b"/", 3)[3] if raw.count(b"/") >= 3 else b""
            raw = b"/" + raw
        path, question, query = raw.partition(b"?")
        segments = path.split(b"/")
        below = segments[len(segments) - len(request.postpath) :] if request.postpath else []
        url = self._upstream + "/" + b"/".join(below).decode("latin-1")
        if question:
            url += "?" + query.decode("latin-1")
        return url

    def render(self, request: IRequest) -> int:
        headers = Headers()
        for name, values in request.requestHeaders.getAllRawHeaders():
            if name.lower() not in _HOP_BY_HOP | {b"host"}:
                headers.setRawHeaders(name, values)
        body = request.content.read() if request.content is not None else b""
        d = self._client.request(  # type: ignore[attr-defined]
            request.method.decode("ascii"),
            self._upstreamURL(request),
            headers=headers,
            data=body or None,
        )

        def relay(response: object) -> Deferred[None]:
            request.setResponseCode(response.code, response.phrase)  # type: ignore[attr-defined]
            for name, values in response.headers.getAllRawHeaders():  # type: ignore[attr-defined]
                if name.lower() not in _HOP_BY_HOP:
                    request.responseHeaders.setRawHeaders(name, values)
            return response.collect(request.write)  # type: ignore[attr-defined]

        def unreachable(failure: Failure) -> None:
            self._log.failure("upstream {url} failed", failure=failure, url=self._upstream)
            request.setResponseCode(502)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.write(b"the upstream server could not be reached\n")

        def done(_: object) -> None:
            # twisted.web.server.Request has it; IRequest does not declare it.
            if not request.finished and not _clientGone(request):  # type: ignore[attr-defined]
                request.finish()

        d.addCallback(relay).addErrback(unreachable).addBoth(done)
        return NOT_DONE_YET


def _clientGone(request: IRequest) -> bool:
    """
    Whether the HTTP client went away while its request waited (for the
    confirmation, or the upstream): twisted.web then drops the request's
    channel, writes become no-ops, and finishing raises (logged as
    critical). Such a request is left alone.
    """
    return getattr(request, "channel", request) is None


def _first(request: IRequest, *names: bytes) -> str | None:
    for name in names:
        value = request.getHeader(name)
        if value:
            return value.decode("latin-1").strip()
    return None


class ForwardAuthResource(Resource):
    """
    An authentication endpoint for web servers that delegate it: nginx
    C{auth_request}, Traefik ForwardAuth, Caddy C{forward_auth}.

    The original request comes in headers: the method in
    C{X-Original-Method} or C{X-Forwarded-Method}; the URL in
    C{X-Original-URL}, or rebuilt from C{X-Original-URI} /
    C{X-Forwarded-Uri}, C{X-Forwarded-Proto} and C{X-Forwarded-Host} /
    C{Host}; the client address in C{X-Real-IP}, else the last
    C{X-Forwarded-For} entry (the one the web server added), else the
    connection's peer. Only the web server should be able to reach this
    resource.

    Answers are only 200, 401 and 403; see the module docstring.

    @ivar _authenticator: checks requests.
    """

    isLeaf = True

    def __init__(self, authenticator: _Authenticator) -> None:
        super().__init__()
        self._authenticator = authenticator

    def _original(self, request: IRequest) -> tuple[str, str, bytes, str]:
        method = _first(request, b"x-original-method", b"x-forwarded-method")
        url = _first(request, b"x-original-url")
        target = _first(request, b"x-original-uri", b"x-forwarded-uri")
        if url is not None and target is None:
            parts = urlsplit(url)
            target = parts.path + ("?" + parts.query if parts.query else "")
        if method is None or target is None:
            raise BadRequest(
                "forward-auth needs the original method and URI in "
                "X-Original-Method and X-Original-URI (nginx) or "
                "X-Forwarded-Method and X-Forwarded-Uri (Traefik, Caddy)"
            )
        if url is None:
            proto = _first(request, b"x-forwarded-proto") or (
                "https" if request.isSecure() else "http"
            )
            host = _first(request, b"x-forwarded-host", b"host")
            if not host:
                raise BadRequest("forward-auth needs X-Forwarded-Host or Host")
            url = f"{proto}://{host}{target}"
        client = _first(request, b"x-real-ip")
        if client is None:
            forwarded = _first(request, b"x-forwarded-for")
            if forwarded:
                client = forwarded.split(",")[-1].strip()
        if not client:
            client = _clientAddress(request)
        return method.upper(), url, target.encode("latin-1"), client

    def render(self, request: IRequest) -> int:
        try:
            method, url, target, client = self._original(request)
        except BadRequest as e:
            request.write(_Answer(403, e.reason).render(request))
            request.finish()
            return NOT_DONE_YET
        d = self._authenticator.authenticate(request, method, url, target, client)

        def allowed(who: str) -> None:
            request.setResponseCode(200)
            request.setHeader(JID_HEADER, who.encode("utf-8"))
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.write(b"OK\n")

        def refused(failure: Failure) -> None:
            error = failure.value
            if isinstance(error, (CredentialsError, ConfirmationTimeout)):
                answer = self._authenticator.challenge(request, error.reason)
            else:
                answer = _failureAnswer(self._authenticator, request, failure)
                if answer._status != 403:
                    answer = _Answer(403, answer._reason, answer._headers)
            request.write(answer.render(request))

        d.addCallbacks(allowed, refused)
        d.addBoth(lambda _: None if _clientGone(request) else request.finish())
        return NOT_DONE_YET
