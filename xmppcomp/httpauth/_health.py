# -*- test-case-name: tests.test_httpauth_health -*-
"""
The health endpoint of the HTTP-auth listener, for load balancers
(C{[httpauth] health_path}): C{GET} or C{HEAD} of that one path answers
200 when every check passes and 503 otherwise, with a JSON body naming
each check, such as C{{"status": "ok", "checks": {"xmpp": true,
"accepting": true}}}. It needs no credentials and says nothing but
those booleans; no confirmation is asked for it.

The checks the services add (L{xmppcomp.services.addHTTPAuth}):
C{xmpp}, whether the component has a stream up; C{accepting}, whether
the listener still takes requests (C{false} while it drains on
shutdown); and C{store}, whether the shared store answers, when one is
configured.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping

from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request

from xmppcomp.logs import Logger

__all__ = ["Check", "HealthResource", "checkHealthPath", "withHealth"]

log = Logger()

#: A check: true when healthy; it may answer later (a Deferred), and a
#: failure counts as unhealthy.
Check = Callable[[], "bool | Deferred[bool]"]


class HealthResource(Resource):
    """
    Runs its checks for each C{GET} or C{HEAD} and answers 200 or 503
    (see the module docstring); other methods get 405.

    @ivar checks: each check by the name the body gives it.
    """

    isLeaf = True

    def __init__(self, checks: Mapping[str, Check]) -> None:
        super().__init__()
        self.checks = dict(checks)

    def render_GET(self, request: Request) -> int:
        names = list(self.checks)

        def run(name: str) -> Deferred[bool]:
            def unhealthy(failure: Failure) -> bool:
                log.info("health check {name} failed: {reason}", name=name, reason=failure.getErrorMessage())
                return False

            return maybeDeferred(self.checks[name]).addCallback(bool).addErrback(unhealthy)

        def answer(results: list[bool]) -> None:
            if gone:  # the client left
                return
            checks = dict(zip(names, results))
            healthy = all(results)
            body = json.dumps({"status": "ok" if healthy else "unavailable", "checks": checks}).encode("ascii")
            request.setResponseCode(200 if healthy else 503)
            request.setHeader(b"Content-Type", b"application/json")
            request.setHeader(b"Cache-Control", b"no-store")
            request.setHeader(b"Content-Length", b"%d" % (len(body),))
            if not healthy:
                request.setHeader(b"Retry-After", b"1")
            if request.method != b"HEAD":
                request.write(body)
            request.finish()

        gone: list[Failure] = []
        request.notifyFinish().addErrback(gone.append)
        gatherResults([run(name) for name in names]).addCallback(answer)
        return NOT_DONE_YET

    render_HEAD = render_GET


class _HealthAndSite(Resource):
    """
    The root of the HTTP-auth listener with a health path: that path is
    the L{HealthResource}; every other goes to the confirmer's resource
    unchanged.
    """

    def __init__(self, site: IResource, segments: list[bytes], health: HealthResource) -> None:
        super().__init__()
        self.site = site
        self.segments = segments
        self.health = health

    def getChildWithDefault(self, path: bytes, request: IRequest) -> IResource:
        if [path, *request.postpath] == self.segments:
            return self.health
        # Put the segment back: the site resolves the whole path itself.
        request.postpath.insert(0, request.prepath.pop())
        return self.site

    def render(self, request: IRequest) -> bytes | int:
        return self.site.render(request)


def checkHealthPath(path: str) -> str:
    """
    Check the path of a health endpoint (L{withHealth}, C{[httpauth]
    health_path}): segments of letters, digits and C{. _ ~ -}, each after
    a C{/}, none of them C{.} or C{..}, such as C{"/.xmppcomp/health"}.

    @return: C{path}.
    @raise ValueError: it is not one.
    """
    if not re.fullmatch(r"(/(?!\.\.?(/|$))[A-Za-z0-9._~-]+)+", path):
        raise ValueError("not segments of letters, digits and . _ ~ -, each after a '/', none of them . or ..")
    return path


def withHealth(resource: IResource, path: str, checks: Mapping[str, Check]) -> IResource:
    """
    C{resource}, with C{path} (such as C{"/.xmppcomp/health"}) answering
    the health C{checks} beside it.

    @raise ValueError: C{path} is not one (L{checkHealthPath}).
    """
    return _HealthAndSite(resource, checkHealthPath(path).encode("ascii").split(b"/")[1:], HealthResource(checks))
