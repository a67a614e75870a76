# -*- test-case-name: tests.test_httpauth_web -*-
"""
The HTTP side of XEP-0070: twisted.web resources sharing one checker.

  - L{ProtectedResource} wraps a local resource (a directory, for
    instance) or the reverse proxy
    (L{xmppcomp.httpauth._proxy.UpstreamProxyResource});
  - L{ForwardAuthResource} answers a web server that delegates
    authentication (nginx C{auth_request}, Traefik ForwardAuth, Caddy
    C{forward_auth}).

Every value that goes into a stanza is checked here, before anyone is
asked: the method is a token, the path is canonical
(L{xmppcomp.httpauth._target}), the host is allowed and the URL asked
about is built from the configuration (L{Frontend}); the JID and
transaction id are checked when the credentials are decoded. The path
decided on, asked about and served (or forwarded) is that one canonical
path: the request's C{postpath}, C{path} and C{uri} are replaced with it
before the protected resource sees the request.

The answers follow the table in C{docs/protocols/xep0070.md}: protect and
proxy answer 200, 400, 401 (always with the challenge), 403, 429, 503 and
504; forward-auth only 200, 401 and 403, because nginx turns anything else
into a 500.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from twisted.cred.error import LoginFailed
from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import ICredentialFactory, IRequest
from twisted.web.resource import IResource, Resource, getChildForRequest
from twisted.web.server import NOT_DONE_YET

from zope.interface import implementer

from xmppcomp.httpauth._checker import ConfirmationCredentials, XMPPConfirmationChecker
from xmppcomp.httpauth._errors import ConfirmationFailed
from xmppcomp.httpauth._http import clientGone, normalName
from xmppcomp.httpauth._frontend import Frontend, Untrusted, parseAddress
from xmppcomp.httpauth._policy import Attempt
from xmppcomp.httpauth._protocol import (
    REALM,
    CredentialsError,
    MalformedHeader,
    credentialsFromBasic,
    credentialsFromDigest,
)
from xmppcomp.httpauth._target import BadTarget, Target, canonicalTarget, checkMethod
from xmppcomp.jids import JIDCache
from xmppcomp.logs import Logger

#: The header carrying the confirmed JID: set on forward-auth 200 answers
#: and on requests passed to a protected resource (a client's own copies,
#: in every spelling, are removed first).
JID_HEADER = b"X-Auth-JID"


class BadRequest(Exception):
    """
    The request is wrong in a way new credentials will not fix: 400 (403
    in forward-auth).

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


#: Reason phrases twisted.web does not know (RFC 6585, RFC 9110).
_PHRASES = {429: b"Too Many Requests", 413: b"Content Too Large"}


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
        self.status = status
        self.reason = reason
        self.headers = headers

    def render(self, request: IRequest) -> bytes:
        request.setResponseCode(self.status, _PHRASES.get(self.status))
        for name, value in self.headers:
            request.responseHeaders.addRawHeader(name, value)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"x-content-type-options", b"nosniff")
        return self.reason.encode("utf-8") + b"\n"


def _peer(request: IRequest) -> str:
    """
    The address of the connection's peer (the client, or a proxy).
    """
    address = request.getClientAddress()
    return str(getattr(address, "host", address))


def stripJIDHeaders(headers: Headers) -> None:
    """
    Remove every header a client may have sent to pass for the confirmed
    JID: L{JID_HEADER} in any case, and with C{_} for C{-} (some servers
    and frameworks treat C{X_Auth_JID} as C{X-Auth-JID}).
    """
    for name, _ in list(headers.getAllRawHeaders()):
        if normalName(name) == b"x-auth-jid":
            headers.removeHeader(name)


class _Authenticator:
    """
    What the three resources share: decode the header, ask the checker.

    @ivar _checker: the checker.
    @ivar _factories: Basic first, then Digest.
    @ivar _jids: parses the JIDs of the credentials: the confirmer's
        L{JIDCache} (its requester's), so that a user name coming back
        is not stringprepped again.
    """

    _log = Logger()

    def __init__(
        self,
        checker: XMPPConfirmationChecker,
        factories: Sequence[ICredentialFactory],
        serverTiming: bool = False,
        jids: JIDCache | None = None,
    ) -> None:
        """
        @param jids: the parsed JIDs to share; one of its own when not
            given.
        """
        self._checker = checker
        self._factories = factories
        self._serverTiming = serverTiming
        self._jids = JIDCache() if jids is None else jids

    def challengeValues(self, request: IRequest) -> list[bytes]:
        """
        The C{WWW-Authenticate} values for C{request}: Basic, then Digest.
        """
        return challenges(self._factories, request)

    def challenge(self, request: IRequest, reason: str) -> _Answer:
        """
        A 401 with both challenges and C{reason} as body.
        """
        headers = [(b"WWW-Authenticate", value) for value in self.challengeValues(request)]
        return _Answer(401, reason, headers)

    def authenticate(
        self,
        request: IRequest,
        method: str,
        url: str,
        path: str,
        targets: Sequence[bytes],
        client: str,
    ) -> Deferred[str]:
        """
        Check the credentials of C{request} for C{method} on C{url}.

        @param path: the canonical, decoded path (the access rules decide
            on it).
        @param targets: the forms of the request target a Digest C{uri}
            may take: as the client sent it, and canonical.
        @return: fires with the JID; fails with L{CredentialsError} (401),
            L{BadRequest} (400) or L{ConfirmationFailed}.
        """
        try:
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
                credentials = credentialsFromBasic(decoded.username, decoded.password, self._jids)
            else:
                fields = decoded.fields
                credentials = credentialsFromDigest(fields, self._jids)
                uri = fields.get("uri")
                if uri not in (*targets, url.encode("utf-8")):
                    raise BadRequest("the Digest uri is not the URL requested")
            confirmation = ConfirmationCredentials(Attempt(credentials, method, url, client, path))
            d = self._checker.requestAvatarId(confirmation)
            if self._serverTiming:
                d.addBoth(_addServerTiming, request, confirmation)
            return d
        except Exception:
            # Whatever the checks raise fails the Deferred, as
            # maybeDeferred would.
            return fail()


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


def _failureAnswer(
    authenticator: _Authenticator, request: IRequest, failure: Failure, forwardAuth: bool = False
) -> _Answer:
    """
    The answer to a request that is not let through, per the table in
    C{docs/protocols/xep0070.md}: every 401 carries the challenge; in
    forward-auth only 401 and 403 (nginx turns anything else into a 500),
    keeping C{Retry-After}.
    """
    error = failure.value
    if isinstance(error, CredentialsError):
        return authenticator.challenge(request, error.reason)
    if isinstance(error, BadRequest):
        return _Answer(403 if forwardAuth else 400, error.reason)
    if isinstance(error, ConfirmationFailed):
        status = error.forwardStatus if forwardAuth else error.status
        if status == 401:
            return authenticator.challenge(request, error.reason)
        headers = []
        if error.retryAfter is not None:
            headers.append((b"Retry-After", b"%d" % (error.retryAfter,)))
        return _Answer(status, error.reason, headers)
    _Authenticator._log.failure("XEP-0070 check failed", failure=failure)
    return _Answer(403 if forwardAuth else 500, "internal error")


def _single(request: IRequest, name: bytes) -> str | None:
    """
    The one value of header C{name}, or C{None} if absent.

    @raise BadRequest: it is given more than once, or is not ASCII.
    """
    values = request.requestHeaders.getRawHeaders(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"{name.decode('ascii')} is given more than once")
    try:
        return values[0].decode("ascii").strip()
    except UnicodeDecodeError:
        raise BadRequest(f"{name.decode('ascii')} is not ASCII") from None


def _values(request: IRequest, name: bytes) -> list[str]:
    return [value.decode("latin-1") for value in request.requestHeaders.getRawHeaders(name, [])]


def _edge(request: IRequest, frontend: Frontend) -> tuple[str, Target, str, str]:
    """
    Check a request made to a protected resource (protect and proxy
    modes) and describe it: the method, the canonical target, the URL to
    ask about, and the client's address.

    @raise BadRequest: a bad method, target or host.
    """
    peer = _peer(request)
    try:
        method = checkMethod(request.method)
        target = canonicalTarget(request.uri)
        trusted = frontend.isTrusted(peer)
        secure = request.isSecure()
        if not secure and trusted:
            secure = _single(request, b"x-forwarded-proto") == "https"
        host = _single(request, b"host")
        url = frontend.urlFor("https" if secure else "http", host, target)
    except (BadTarget, Untrusted) as e:
        raise BadRequest(e.reason) from None
    forwarded = _values(request, b"x-forwarded-for") if trusted else ()
    return method, target, url, frontend.clientOf(peer, forwarded, trusted)


class ProtectedResource(Resource):
    """
    Put XEP-0070 confirmation in front of a resource and its children.

    Like L{twisted.web.guard.HTTPAuthSessionWrapper}, it consumes no path
    segment. The request is checked first (L{_edge}); its C{postpath},
    C{path} and C{uri} then become the canonical ones, so the wrapped
    resource serves the path that was decided on and asked about. The
    wrapped resource sees the confirmed JID in L{JID_HEADER} (a client's
    copies are removed), and never the client's C{Authorization} header.

    @ivar _wrapped: the protected resource.
    @ivar _authenticator: checks requests.
    @ivar _frontend: what is trusted of requests.
    """

    isLeaf = False

    def __init__(
        self,
        wrapped: IResource,
        authenticator: _Authenticator,
        frontend: Frontend,
    ) -> None:
        super().__init__()
        self._wrapped = wrapped
        self._authenticator = authenticator
        self._frontend = frontend
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
        stripJIDHeaders(request.requestHeaders)
        raw = request.uri
        try:
            method, target, url, client = _edge(request, self._frontend)
        except BadRequest as e:
            return _Answer(400, e.reason)
        mount = len(request.prepath)
        segments = [segment.encode("utf-8") for segment in target.segments]
        if segments[:mount] != request.prepath:
            return _Answer(400, "the path is not canonical where this site is mounted")
        # One canonical form from here on: what the rules decide on, the
        # user is asked about, and the wrapped resource serves.
        request.postpath = segments[mount:]
        canonical = target.encoded().encode("ascii")
        request.uri = canonical
        request.path = target.encodedPath.encode("ascii")
        d = self._authenticator.authenticate(
            request, method, url, target.path, (raw, canonical), client
        )
        return _Checking(self, d)

    # Both answer a failure with twisted.web's 500 and log it (what
    # Request.process does for resources rendered at once) and never raise:
    # no errback is needed after them, one callback entry less per request.

    def _allowed(self, who: str, request: IRequest) -> None:
        if clientGone(request):
            return
        try:
            request.requestHeaders.removeHeader(b"authorization")
            request.requestHeaders.setRawHeaders(JID_HEADER, [who.encode("utf-8")])
            request.render(getChildForRequest(self._wrapped, request))  # type: ignore[attr-defined]
        except BaseException:
            request.processingFailed(Failure())  # type: ignore[attr-defined]

    def _refused(self, failure: Failure, request: IRequest) -> None:
        if clientGone(request):
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


class ForwardAuthResource(Resource):
    """
    An authentication endpoint for web servers that delegate it: nginx
    C{auth_request}, Traefik ForwardAuth, Caddy C{forward_auth}.

    It answers only requests from a trusted proxy
    (L{Frontend.trustedProxies}), and reads the original request from the
    headers of the configured web server's profile
    (L{Frontend.webServer}) and from no others: the method, the raw
    request target (canonicalised here the way the web server does, and
    refused if ambiguous), the host and scheme (when the URL asked about is
    built from the allowed hosts), and the client's address.

    Answers are only 200 (with L{JID_HEADER}), 401 (with the challenge)
    and 403 (with C{Retry-After} for limits and an unavailable link).

    @ivar _authenticator: checks requests.
    @ivar _frontend: what is trusted of requests.
    """

    isLeaf = True

    def __init__(self, authenticator: _Authenticator, frontend: Frontend) -> None:
        super().__init__()
        self._authenticator = authenticator
        self._frontend = frontend

    def _original(self, request: IRequest) -> tuple[str, Target, str, str, str]:
        """
        The original request: method, canonical target, the raw target as
        the web server sent it, the URL to ask about, the client address.

        @raise BadRequest: anything missing, ambiguous or untrusted.
        """
        frontend = self._frontend
        profile = frontend.webServer
        peer = _peer(request)
        if not frontend.isTrusted(peer):
            raise BadRequest(
                f"forward-auth requests are accepted only from trusted proxies, "
                f"and {peer} is not one (trusted_proxies)"
            )
        method = _single(request, profile.method)
        raw = _single(request, profile.uri)
        if method is None or raw is None:
            raise BadRequest(
                f"forward-auth ({profile.name}) needs the original method in "
                f"{profile.method.decode()} and URI in {profile.uri.decode()}"
            )
        scheme = _single(request, profile.scheme)
        if scheme is None and frontend.publicOrigin is None:
            raise BadRequest(
                f"forward-auth ({profile.name}) needs the original scheme in "
                f"{profile.scheme.decode()}"
            )
        if scheme is not None and scheme not in ("http", "https"):
            raise BadRequest(f"{profile.scheme.decode()} must be http or https")
        try:
            target = canonicalTarget(raw.encode("ascii"))
            url = frontend.urlFor(scheme or "https", _single(request, profile.host), target)
            method = checkMethod(method)
        except (BadTarget, Untrusted) as e:
            raise BadRequest(e.reason) from None
        if profile.clientIsList:
            forwarded = _values(request, profile.client)
            if not forwarded:
                raise BadRequest(f"forward-auth needs the client address in {profile.client.decode()}")
            client = frontend.clientOf(peer, forwarded)
        else:
            given = _single(request, profile.client)
            address = parseAddress(given) if given else None
            if address is None:
                raise BadRequest(
                    f"forward-auth needs the client address in {profile.client.decode()}"
                )
            client = str(address)
        return method, target, raw, url, client

    def render(self, request: IRequest) -> int:
        try:
            method, target, raw, url, client = self._original(request)
        except BadRequest as e:
            request.write(_Answer(403, e.reason).render(request))
            request.finish()
            return NOT_DONE_YET
        d = self._authenticator.authenticate(
            request,
            method,
            url,
            target.path,
            (raw.encode("ascii"), target.encoded().encode("ascii")),
            client,
        )

        def allowed(who: str) -> None:
            request.setResponseCode(200)
            request.setHeader(JID_HEADER, who.encode("utf-8"))
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.setHeader(b"x-content-type-options", b"nosniff")
            request.write(b"OK\n")

        def refused(failure: Failure) -> None:
            answer = _failureAnswer(self._authenticator, request, failure, forwardAuth=True)
            request.write(answer.render(request))

        d.addCallbacks(allowed, refused)
        d.addBoth(lambda _: None if clientGone(request) else request.finish())
        return NOT_DONE_YET
