# -*- test-case-name: tests.test_httpauth_checker -*-
"""
Why a confirmation did not let a request through, with the HTTP statuses
each reason maps to.

The web layer reads only L{ConfirmationFailed.status} (protect and proxy
modes), L{ConfirmationFailed.forwardStatus} (forward-auth, which may only
answer 200, 401 or 403: nginx turns anything else into a 500),
L{ConfirmationFailed.reason} and L{ConfirmationFailed.retryAfter}; it never
looks at the class. A 401 always carries the challenge.

  - L{ConfirmationDenied}: 403, 403 in forward-auth; the user said no.
  - L{CouldNotAsk}: 401, 401; a bounce, any other error.
  - L{EndToEndRequired}: 401, 401; the site requires a confirmation
    through XTLS, and none could be had (a bare JID, no tunnel, a
    certificate refused).
  - L{Replayed}: 401, 401; a used id, an expired session.
  - L{AccessForbidden}: 403, 403; the access rules.
  - L{RateLimited}: 429, 403; rate and pending limits.
  - L{ConfirmerUnavailable}: 503, 403; the XMPP link is unavailable.
  - L{StoreUnavailable}: 503, 403; the shared store (Redis) is
    unreachable, slow, refused at start-up or lost its data.
  - L{ConfirmationTimeout}: 504, 401; the user never answered.
"""

from __future__ import annotations

from twisted.cred.error import UnauthorizedLogin

#: Seconds in the C{Retry-After} of a L{ConfirmerUnavailable} when whoever
#: raises it knows no better.
DEFAULT_UNAVAILABLE_RETRY_AFTER = 5


class ConfirmationFailed(Exception):
    """
    Base of the reasons a request is not let through.

    @cvar status: the HTTP status for the protect and proxy resources.
    @cvar forwardStatus: the HTTP status for forward-auth: 401 or 403 only.
    @ivar reason: a human-readable explanation, fit for a response body.
    @ivar retryAfter: seconds for a C{Retry-After} header, or C{None}.
    """

    status = 403
    forwardStatus = 403

    def __init__(self, reason: str, retryAfter: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryAfter = retryAfter


class ConfirmationDenied(ConfirmationFailed, UnauthorizedLogin):
    """
    The user said no: a C{not-authorized} error, or a "no" reply. 403 in
    every mode; the transaction id is used up.
    """


class CouldNotAsk(ConfirmationFailed, UnauthorizedLogin):
    """
    The user could not be asked: the confirmation bounced, or came back
    with an error other than C{not-authorized} (offline, unknown account,
    unknown domain, a server error), or could not even be sent. 401 in
    every mode (the browser asks for credentials again); it consumes
    nothing: the transaction id may be used again.
    """

    status = 401
    forwardStatus = 401


class EndToEndRequired(CouldNotAsk):
    """
    The access rules require this confirmation to come through an XTLS
    tunnel (C{require_xtls}), and it could not: the credentials name a bare
    JID (nothing to tunnel to), the user's client does not do XTLS or
    refused the tunnel, its certificate was refused, or the tunnel closed
    before the answer. 401 in every mode, like L{CouldNotAsk}, and it
    consumes nothing; L{ConfirmationFailed.reason} says which.
    """


class Replayed(ConfirmationFailed, UnauthorizedLogin):
    """
    The transaction id was used already, or is being confirmed for another
    request, or its session has expired or belongs to another site or
    client address. 401 in every mode, so that a browser asks for new
    credentials (it never does after a 403); nobody is asked.
    """

    status = 401
    forwardStatus = 401


class AccessForbidden(ConfirmationFailed, UnauthorizedLogin):
    """
    The access rules do not let this JID at this path: 403 in every mode,
    and nobody is asked.
    """


class RateLimited(ConfirmationFailed):
    """
    A rate or pending limit: attempts per client address, undeliverable
    confirmations per client address and target domain, confirmations
    pending per JID or in total, transaction ids remembered per JID, per
    domain or in total. 429 (403 in forward-auth), always with a
    C{Retry-After}; nobody is asked.
    """

    status = 429
    forwardStatus = 403

    def __init__(self, reason: str, retryAfter: int) -> None:
        super().__init__(reason, retryAfter)


class ConfirmationTimeout(ConfirmationFailed):
    """
    The JID did not answer in time: 504 (401 in forward-auth, so the
    browser asks again). The transaction id is not used up.
    """

    status = 504
    forwardStatus = 401


class ConfirmerUnavailable(ConfirmationFailed):
    """
    The component is not connected to its XMPP server, or lost the
    connection while waiting: 503 (403 in forward-auth), always with a
    C{Retry-After} (L{DEFAULT_UNAVAILABLE_RETRY_AFTER} seconds unless told
    otherwise).
    """

    status = 503
    forwardStatus = 403

    def __init__(
        self, reason: str, retryAfter: int = DEFAULT_UNAVAILABLE_RETRY_AFTER
    ) -> None:
        super().__init__(reason, retryAfter)


class StoreUnavailable(ConfirmerUnavailable):
    """
    The store that keeps the confirmer's state (L{xmppcomp.httpauth.RedisStore})
    could not answer: unreachable, slower than its timeout, refused at
    start-up (an evicting Redis), or lost its data. 503 (403 in
    forward-auth) with C{Retry-After}, as L{ConfirmerUnavailable}: the
    confirmer fails closed and grants nothing.
    """
