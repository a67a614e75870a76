# -*- test-case-name: tests.test_httpauth_site -*-
"""
The confirmer's twisted.web site: L{ConfirmerSite}, a
L{Site<twisted.web.server.Site>} that refuses what it must before reading
a request body, and gives up on request heads that dribble in.

Early refusals happen at the end of the request head, when the headers are
known and nothing of the body has been read (L{ConfirmerRequest.gotLength}):

  - 413 C{Content Too Large}: a declared C{Content-Length} over the
    site's C{maxBody}; a chunked body that grows past it while it arrives
    gets the same answer then;
  - 401 C{Unauthorized}, with the challenges: a request that will carry a
    body (C{Content-Length} above 0, or chunked) without usable
    credentials: no C{Authorization} header, a scheme other than Basic or
    Digest, or Basic credentials whose base64 does not decode to
    C{user:password} (L{earlyRefusal}); the resource would answer 401
    anyway, after having read the body;
  - 408 C{Request Timeout}: the request head (request line and headers) did
    not arrive within C{headTimeout} seconds of its first byte (empty lines
    before a request line do not start the clock). The keep-alive idle time
    between requests is the site's C{timeOut}, as with any twisted.web site.

An early answer is a complete HTTP/1.1 response written at once
(C{Connection: close}, C{Content-Length}, C{Content-Type: text/plain;
charset=utf-8}, C{X-Content-Type-Options: nosniff}, C{Date} and the
site's C{Server} header), after which the connection is closed: the body
is read into nothing, an C{Expect: 100-continue} gets no C{100 Continue},
the resource never sees the request, and the access log does not either,
so each early answer is logged at info (client address, status, reason).

Every response rendered by the site carries the configured C{Server}
header instead of twisted.web's C{TwistedWeb/x.y} (or none at all), and the
status codes twisted.web has no reason phrase for (429 among them) get
theirs (L{REASON_PHRASES}).

The seams are twisted.web's public ones: L{Request.gotLength
<twisted.web.http.Request.gotLength>}, C{handleContentChunk},
C{requestReceived}, C{setResponseCode} and C{write} in L{ConfirmerRequest};
L{HTTPChannel.allHeadersReceived
<twisted.web.http.HTTPChannel.allHeadersReceived>}, C{dataReceived},
C{lineReceived}, C{requestDone} and C{connectionLost} in
L{ConfirmerChannel}; and the
factory's C{protocol} and C{requestFactory} in L{ConfirmerSite}. The site
speaks HTTP/1.1 only (its channel is a plain L{HTTPChannel
<twisted.web.http.HTTPChannel>}, and it offers no C{h2} in ALPN).
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Callable, Sequence
from typing import cast

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.http import HTTPChannel, datetimeToString
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from xmppcomp.httpauth._protocol import REALM
from xmppcomp.logs import Logger

__all__ = [
    "DEFAULT_HEAD_TIMEOUT",
    "DEFAULT_MAX_BODY",
    "DEFAULT_SERVER_HEADER",
    "REASON_PHRASES",
    "ConfirmerChannel",
    "ConfirmerRequest",
    "checkAccessLog",
    "checkServerHeaderValue",
    "ConfirmerSite",
    "earlyRefusal",
]

log = Logger()

#: The largest request body accepted by default, in bytes (1 MiB).
DEFAULT_MAX_BODY = 1024 * 1024

#: The default time a client has to send a whole request head, in seconds.
DEFAULT_HEAD_TIMEOUT = 10.0

#: The default C{Server} header: the product, no version.
DEFAULT_SERVER_HEADER = b"xmppcomp"

#: Reason phrases (RFC 9110, RFC 6585) for the status codes this site
#: answers early and those twisted.web has none for; a resource's
#: C{setResponseCode(code)} without a message gets these.
REASON_PHRASES: dict[int, bytes] = {
    401: b"Unauthorized",
    408: b"Request Timeout",
    413: b"Content Too Large",
    421: b"Misdirected Request",
    422: b"Unprocessable Content",
    426: b"Upgrade Required",
    428: b"Precondition Required",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    451: b"Unavailable For Legal Reasons",
    503: b"Service Unavailable",
    511: b"Network Authentication Required",
}

_ACCESS_LOG_NOWHERE = "none"
_ACCESS_LOG_TWISTD = "log"


def _bodyTooLarge(maxBody: int, length: int | None = None) -> tuple[int, str]:
    if length is None:
        return 413, f"The request body is over the limit of {maxBody} bytes."
    return 413, f"The request body ({length} bytes) is over the limit of {maxBody} bytes."


def _credentialsProblem(header: bytes | None) -> str | None:
    """
    Why the C{Authorization} header C{header} can not be credentials for
    the confirmer, or L{None} if it may be (Digest, or Basic that decodes
    to C{user:password} the way L{BasicCredentialFactory
    <twisted.web.guard.BasicCredentialFactory>} decodes it; the resource
    checks the rest).
    """
    if header is None or not header.strip():
        return (
            f"Credentials are needed before a request body is sent: your JID as "
            f"user name and a transaction id of your choosing as password "
            f"(realm {REALM!r})."
        )
    scheme, _, response = header.strip().partition(b" ")
    scheme = scheme.lower()
    if scheme == b"digest":
        return None
    if scheme != b"basic":
        shown = scheme[:32].decode("latin-1")
        return f"Unsupported authentication scheme {shown!r}; use Basic or Digest."
    try:
        decoded = binascii.a2b_base64(response.strip() + b"===")
    except binascii.Error:
        decoded = b""
    if b":" not in decoded:
        return (
            "Malformed Basic credentials: they must be the base64 of "
            "JID:transaction-id."
        )
    return None


def earlyRefusal(headers: Headers, length: int | None, maxBody: int) -> tuple[int, str] | None:
    """
    Whether a request whose head is C{headers} is refused before its body
    is read.

    @param headers: the request headers.
    @param length: the body length the head declares; L{None} for a
        chunked body, C{0} for none.
    @param maxBody: the largest body accepted, in bytes.
    @return: L{None} to go on; else the status (413 for a declared body
        over C{maxBody}, 401 for a body without usable credentials, see
        L{_credentialsProblem}) and a plain-text reason.
    """
    if length is not None and length > maxBody:
        return _bodyTooLarge(maxBody, length)
    if length == 0:
        return None
    values = headers.getRawHeaders(b"authorization")
    problem = _credentialsProblem(values[-1] if values else None)
    if problem is not None:
        return 401, problem
    return None


def _describe(address: object) -> str:
    """
    C{host:port} (C{[host]:port} for IPv6) of an IP address, else the
    address as text.
    """
    if isinstance(address, IPv6Address):
        return f"[{address.host}]:{address.port}"
    if isinstance(address, IPv4Address):
        return f"{address.host}:{address.port}"
    return str(address)


class ConfirmerChannel(HTTPChannel):
    """
    The HTTP/1.1 channel of a L{ConfirmerSite}: an L{HTTPChannel} with a
    deadline for each request head, and L{answerEarly} for answers written
    before (or instead of) rendering.

    The head clock starts with the first byte of a head that is not part of
    an empty line (L{dataReceived}: a connection's first request, or the
    first one after the previous response was done), or with the first line
    of a head pipelined behind the previous request, parsed once that one
    is done (L{lineReceived}); it stops when the head is complete
    (L{allHeadersReceived}). Bodies and keep-alive idle time are not
    counted.

    @ivar site: the L{ConfirmerSite} (set by L{Site.buildProtocol
        <twisted.web.server.Site.buildProtocol>}).
    @ivar _awaitingHead: whether the next bytes belong to a request head.
    @ivar _headCall: the pending head deadline, if the clock runs.
    @ivar _abortCall: after an early answer, the call that aborts the
        connection if it is still not closed after C{abortTimeout} seconds
        (a client that does not read).
    @ivar _answered: whether an early answer was written.
    """

    site: ConfirmerSite
    _awaitingHead = True
    _headCall: IDelayedCall | None = None
    _abortCall: IDelayedCall | None = None
    _answered = False

    def dataReceived(self, data: bytes) -> None:
        if self._answered:
            return
        if self._awaitingHead and self._headCall is None and data.strip(b"\r\n"):
            self._startHeadClock()
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        # A line pipelined behind a request is parsed from the buffer once
        # that request is done, without passing through dataReceived.
        if self._awaitingHead and self._headCall is None and line:
            self._startHeadClock()
        super().lineReceived(line)

    def allHeadersReceived(self) -> None:
        self._awaitingHead = False
        self._stopHeadClock()
        super().allHeadersReceived()

    def requestDone(self, request: http.Request) -> None:
        # Bytes pipelined meanwhile are parsed from here on (through
        # dataReceived or lineReceived), and start the next head's clock.
        self._awaitingHead = True
        super().requestDone(request)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self._stopHeadClock()
        if self._abortCall is not None:
            if self._abortCall.active():
                self._abortCall.cancel()
            self._abortCall = None
        super().connectionLost(reason)

    def _startHeadClock(self) -> None:
        if self.site.headTimeout is not None:
            self._headCall = self.callLater(self.site.headTimeout, self._headTimedOut)

    def _stopHeadClock(self) -> None:
        if self._headCall is not None:
            if self._headCall.active():
                self._headCall.cancel()
            self._headCall = None

    def _headTimedOut(self) -> None:
        self._headCall = None
        self.answerEarly(
            408,
            "The request head (request line and headers) did not arrive within "
            f"{self.site.headTimeout:g} seconds.",
        )

    def answerEarly(
        self, status: int, reason: str, headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        """
        Write a complete plain-text answer and close the connection; log it
        at info (the access log does not see it). Any request of this
        connection is left unanswered otherwise, and any further bytes
        received are dropped. Only the first call writes.

        @param status: the status code (one of L{REASON_PHRASES}).
        @param reason: the body, one line of text.
        @param headers: more headers (C{WWW-Authenticate}), in order.
        """
        if self._answered:
            return
        self._answered = True
        self._awaitingHead = False
        self._stopHeadClock()
        # The abort call below bounds the close instead of the idle timeout.
        self.setTimeout(None)
        log.info(
            "HTTP {status} to {client} before the request was handled: {reason}",
            status=status,
            client=_describe(self.getPeer()),
            reason=reason,
        )
        body = reason.encode("utf-8") + b"\n"
        answer = Headers()
        if self.site.serverHeader is not None:
            answer.addRawHeader(b"Server", self.site.serverHeader)
        answer.addRawHeader(b"Date", datetimeToString(self.site.reactor.seconds()))
        answer.addRawHeader(b"Connection", b"close")
        answer.addRawHeader(b"Content-Type", b"text/plain; charset=utf-8")
        answer.addRawHeader(b"Content-Length", b"%d" % (len(body),))
        answer.addRawHeader(b"X-Content-Type-Options", b"nosniff")
        for name, value in headers:
            answer.addRawHeader(name, value)
        self.writeHeaders(
            b"HTTP/1.1", b"%d" % (status,), REASON_PHRASES.get(status, b"Error"), answer
        )
        self.write(body)
        self.loseConnection()
        if self.abortTimeout is not None:
            self._abortCall = self.callLater(self.abortTimeout, self._abort)

    def _abort(self) -> None:
        self._abortCall = None
        self.forceAbortClient()


class ConfirmerRequest(Request):
    """
    A request of a L{ConfirmerSite}: refused at the end of its head when
    L{earlyRefusal} says so, or while a chunked body grows past the site's
    C{maxBody}; never rendered once refused. Its responses carry the site's
    C{Server} header.

    @ivar _refused: whether this request was answered early.
    @ivar _bodyLength: the body bytes received so far.
    """

    _refused = False
    _bodyLength = 0

    def _confirmerChannel(self) -> ConfirmerChannel:
        return cast(ConfirmerChannel, self.channel)

    def gotLength(self, length: int | None) -> None:
        """
        Refuse the request if L{earlyRefusal} says so (and make sure no
        C{100 Continue} follows), else prepare for the body as
        twisted.web does.
        """
        channel = self._confirmerChannel()
        site = channel.site
        refusal = earlyRefusal(self.requestHeaders, length, site.maxBody)
        if refusal is None:
            super().gotLength(length)
            return
        self._refused = True
        # HTTPChannel.allHeadersReceived answers "Expect: 100-continue"
        # right after this returns, unless the header is gone.
        self.requestHeaders.removeHeader(b"expect")
        status, reason = refusal
        headers: list[tuple[bytes, bytes]] = []
        if status == 401:
            headers = [(b"WWW-Authenticate", value) for value in site.challenges(self)]
        channel.answerEarly(status, reason, headers)

    def handleContentChunk(self, data: bytes) -> None:
        """
        Keep the body (up to the site's C{maxBody}; past it, answer 413),
        or drop it once refused.
        """
        if self._refused:
            return
        self._bodyLength += len(data)
        channel = self._confirmerChannel()
        if self._bodyLength > channel.site.maxBody:
            self._refused = True
            status, reason = _bodyTooLarge(channel.site.maxBody)
            channel.answerEarly(status, reason)
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """
        Handle the request as twisted.web does, unless it was refused; while
        the site drains (L{ConfirmerSite.drain}), answer 503 instead.
        """
        if self._refused:
            return
        site = self._confirmerChannel().site
        if site.draining:
            self._refused = True
            self._confirmerChannel().answerEarly(
                503, "this confirmer is shutting down; try again", [(b"Retry-After", b"1")]
            )
            return
        site.started(self)
        super().requestReceived(command, path, version)

    def setResponseCode(self, code: int, message: bytes | None = None) -> None:
        """
        Set the status; without C{message}, the reason phrase comes from
        L{REASON_PHRASES} when twisted.web has none.
        """
        if message is None and code in REASON_PHRASES:
            message = REASON_PHRASES[code]
        super().setResponseCode(code, message)

    def write(self, data: bytes) -> None:
        """
        Write as twisted.web does; before the headers are, put the site's
        C{Server} header in place of any other.
        """
        if not self.startedWriting and self.channel is not None:
            server = self._confirmerChannel().site.serverHeader
            self.responseHeaders.removeHeader(b"server")
            if server is not None:
                self.responseHeaders.setRawHeaders(b"Server", [server])
        super().write(data)


def _basicChallenge(request: IRequest) -> Sequence[bytes]:
    """
    The C{WWW-Authenticate} values of an early 401 from a site given no
    C{challenge}: C{Basic realm="xmpp"} only.
    """
    return [b'Basic realm="%s"' % (REALM.encode("ascii"),)]


def checkAccessLog(accessLog: str) -> str:
    """
    Check where an access log goes (L{ConfirmerSite}, C{[httpauth]
    access_log}): C{"log"}, C{"none"}, or a file to append to, which is
    no directory and whose directory exists.

    @return: C{accessLog}.
    @raise ValueError: it cannot be one, with the reason.
    """
    if not accessLog:
        raise ValueError('accessLog must be "log", "none" or a file path')
    if accessLog in (_ACCESS_LOG_TWISTD, _ACCESS_LOG_NOWHERE):
        return accessLog
    if os.path.isdir(accessLog):
        raise ValueError(f"{accessLog} is a directory")
    if not os.path.isdir(os.path.dirname(os.path.abspath(accessLog))):
        raise ValueError(f"the directory of {accessLog} does not exist")
    return accessLog


def checkServerHeaderValue(value: str) -> str:
    """
    Check a C{Server} header value (L{ConfirmerSite}, C{[httpauth]
    server_header}): printable ASCII, not empty.

    @return: C{value}.
    @raise ValueError: it is not.
    """
    if not value or not all(" " <= c <= "~" for c in value):
        raise ValueError("not printable ASCII")
    return value


class ConfirmerSite(Site):
    """
    The confirmer's L{Site<twisted.web.server.Site>}: bodies are refused
    early or capped, request heads have a deadline, the C{Server} header is
    the configured one, and the access log goes where C{accessLog} says.
    See the module's docstring for the answers.

    It does not parse form bodies into C{request.args} (the confirmer
    reads none, and a proxied body goes upstream as it came).

    @ivar maxBody: the largest request body accepted, in bytes.
    @ivar headTimeout: seconds a client has to send a request head from
        its first byte, or L{None} for no limit.
    @ivar serverHeader: the C{Server} header of every response, or L{None}
        for none.
    @ivar accessLog: C{"log"}, C{"none"} or a file path.
    @ivar reactor: the reactor (time and C{callLater}) the site and its
        channels use.
    """

    protocol = ConfirmerChannel  # type: ignore[assignment]
    requestFactory = ConfirmerRequest

    def __init__(
        self,
        resource: IResource,
        *,
        reactor: IReactorTime,
        maxBody: int = DEFAULT_MAX_BODY,
        headTimeout: float | None = DEFAULT_HEAD_TIMEOUT,
        challenge: Callable[[IRequest], Sequence[bytes]] | None = None,
        serverHeader: bytes | None = DEFAULT_SERVER_HEADER,
        accessLog: str = _ACCESS_LOG_TWISTD,
    ) -> None:
        """
        @param resource: the root resource.
        @param reactor: provides L{IReactorTime}: the idle timeout, the
            head deadline and the access log's timestamps use it.
        @param maxBody: the largest request body accepted, in bytes (a
            larger declared C{Content-Length}, or a chunked body growing
            past it, gets 413).
        @param headTimeout: seconds from the first byte of a request head
            to its end, else 408; L{None} for no limit.
        @param challenge: gives the C{WWW-Authenticate} values of an early
            401, in order, for a request whose headers and client address
            are known (its method and URI are not, yet); L{None} for
            C{Basic realm="xmpp"} only.
        @param serverHeader: the C{Server} header value of every response,
            or L{None} to send none.
        @param accessLog: where the access log goes: C{"log"}, the twistd
            log; C{"none"}, nowhere; anything else, that file.
        @raise ValueError: for a negative C{maxBody}, a C{headTimeout} that
            is not positive, an C{accessLog} that cannot be one
            (L{checkAccessLog}), or a C{serverHeader} that is not printable
            ASCII (L{checkServerHeaderValue}).
        """
        if maxBody < 0:
            raise ValueError(f"maxBody must not be negative: {maxBody!r}")
        if headTimeout is not None and not headTimeout > 0:
            raise ValueError(f"headTimeout must be positive: {headTimeout!r}")
        checkAccessLog(accessLog)
        if serverHeader is not None:
            checkServerHeaderValue(serverHeader.decode("latin-1"))
        logPath = None if accessLog in (_ACCESS_LOG_TWISTD, _ACCESS_LOG_NOWHERE) else accessLog
        super().__init__(
            resource, logPath=logPath, reactor=reactor, parsePOSTFormSubmission=False
        )
        self.maxBody = maxBody
        self.headTimeout = headTimeout
        self.serverHeader = serverHeader
        self.accessLog = accessLog
        self._challenge = challenge or _basicChallenge
        self.draining = False
        self.inFlight = 0
        self._drained: list[Deferred[int]] = []

    def started(self, request: http.Request) -> None:
        """
        Count C{request} in L{inFlight} until it is answered or its
        connection is gone.
        """
        self.inFlight += 1
        request.notifyFinish().addBoth(self._finished)

    def _finished(self, result: object) -> None:
        self.inFlight -= 1
        if not self.inFlight:
            drained, self._drained = self._drained, []
            for d in drained:
                d.callback(0)

    def drain(self, timeout: float) -> Deferred[int]:
        """
        Stop taking requests: from now on each new request is answered 503
        (C{Retry-After: 1}) and its connection closed; the requests in
        flight go on.

        @param timeout: seconds to wait for the requests in flight.
        @return: fires when none is left in flight, or after C{timeout}
            seconds with the number still in flight (the caller closes
            their connections).
        """
        self.draining = True
        if not self.inFlight:
            return succeed(0)
        d: Deferred[int] = Deferred()
        self._drained.append(d)
        timer = self.reactor.callLater(timeout, self._drainTimedOut, d)

        def stopTimer(left: int) -> int:
            if timer.active():
                timer.cancel()
            return left

        return d.addCallback(stopTimer)

    def _drainTimedOut(self, d: Deferred[int]) -> None:
        if d in self._drained:
            self._drained.remove(d)
            d.callback(self.inFlight)

    def challenges(self, request: IRequest) -> Sequence[bytes]:
        """
        The C{WWW-Authenticate} values of an early 401 to C{request}.
        """
        return self._challenge(request)

    def log(self, request: http.Request) -> None:
        """
        Write C{request}'s access log line, unless the access log goes
        nowhere.
        """
        if self.accessLog == _ACCESS_LOG_NOWHERE:
            return
        super().log(request)

    def acceptableProtocols(self) -> list[bytes]:
        """
        HTTP/1.1 only: the channel does not speak HTTP/2.
        """
        return [b"http/1.1"]
