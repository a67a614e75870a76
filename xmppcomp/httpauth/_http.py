# -*- test-case-name: tests.test_httpauth_web,tests.test_httpauth_proxy -*-
"""
Small facts about twisted.web requests and HTTP header names that the
confirmer's resources and its proxy share.
"""

from __future__ import annotations

from twisted.web.iweb import IRequest


def normalName(name: bytes) -> bytes:
    """
    A header name as CGI and WSGI servers see it: case and the difference
    between C{_} and C{-} do not count (so C{X_Auth_JID} is C{x-auth-jid}).
    """
    return name.lower().replace(b"_", b"-")


def clientGone(request: IRequest) -> bool:
    """
    Whether the HTTP client went away while its request waited (for the
    confirmation, or the upstream): twisted.web then drops the request's
    channel, writes become no-ops, and finishing raises (logged as
    critical). Such a request is left alone.
    """
    # IRequest does not declare the channel; twisted.web's Request has it.
    return getattr(request, "channel", request) is None
