# -*- test-case-name: tests.test_httpauth_checker -*-
"""
Why a confirmation did not let a request through, with the HTTP status
each reason maps to.
"""

from __future__ import annotations

from twisted.cred.error import UnauthorizedLogin


class ConfirmationFailed(Exception):
    """
    Base of the reasons a request is not let through.

    @cvar status: the HTTP status for the protect and proxy resources.
    @ivar reason: a human-readable explanation, fit for a response body.
    @ivar retryAfter: seconds for a C{Retry-After} header, or C{None}.
    """

    status = 403

    def __init__(self, reason: str, retryAfter: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryAfter = retryAfter


class ConfirmationDenied(ConfirmationFailed, UnauthorizedLogin):
    """
    The user denied the request (or the request bounced): 403.
    """


class AccessForbidden(ConfirmationFailed, UnauthorizedLogin):
    """
    The access rules do not let this JID at this path, or the transaction id
    was used already (replay): 403, and nobody is asked.
    """


class TooManyPending(ConfirmationFailed):
    """
    Too many confirmations pending for this JID (429) or in total (503).
    """

    def __init__(self, reason: str, retryAfter: int | None, status: int) -> None:
        super().__init__(reason, retryAfter)
        self.status = status


class ConfirmationTimeout(ConfirmationFailed):
    """
    The JID did not answer in time: 504.
    """

    status = 504


class ConfirmerUnavailable(ConfirmationFailed):
    """
    The component is not connected to its XMPP server, or lost the
    connection while waiting: 503.
    """

    status = 503
