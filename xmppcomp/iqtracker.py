# -*- test-case-name: tests.test_iqtracker -*-
"""
Waiting for the answers to our IQ requests: one L{RequestTracker} for every
part of xmppcomp that sends an C{<iq type='get'|'set'/>} and waits for its
C{result} or C{error} (L{Component.request<xmppcomp.component.Component.request>},
the XTLS handler's IQs, the hostname binds during negotiation).

An answer completes a request only when both its C{id} and its sender
match. Ids are unguessable (L{newRequestId}: 128 random bits), and the
sender must be one the request's L{AnswerRule} accepts; the default,
L{defaultRule}, follows RFC 6120 section 8.1.2.1:

  - a C{result} only from the exact entity asked (its C{to}, compared as a
    JID: case-folded and nameprepped);
  - an C{error} also from that entity's bare JID or its domain (a server
    bounces for its accounts and resources);
  - no C{from} at all only when the request went to the server the stream
    is connected to (no C{to}, or C{to} its domain).

Anything else that carries the id of a pending request is no answer: it is
left alone (not marked handled, so the stream's other observers see it),
counted in C{xmppcomp_iq_answers_mismatched_total} and logged at debug
level with both addresses, and the request keeps waiting for its real
answer.

This module is protocol logic: it uses domish and JIDs as data, and a
clock (an L{IReactorTime} provider) only for the timeouts it is asked to
keep; it imports nothing else from C{twisted.internet}. Callers turn its
callbacks into L{Deferred<twisted.internet.defer.Deferred>}s themselves.
"""

from __future__ import annotations

import secrets
from typing import Callable, Protocol

import attrs
from prometheus_client import Counter
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import jid
from twisted.words.protocols.jabber.error import exceptionFromStanza
from twisted.words.protocols.jabber.xmlstream import TimeoutError
from twisted.words.xish import domish

from xmppcomp.jids import JIDCache, parseJID
from xmppcomp.logs import Logger
from xmppcomp.metrics import Metrics, NoCount

__all__ = [
    "AnswerRule",
    "REQUEST_ID_BYTES",
    "RequestTracker",
    "SentRequest",
    "addressee",
    "defaultRule",
    "fromAskedOrBareJID",
    "newRequestId",
]

log = Logger()

#: Random bytes in a request id: 128 bits, 22 characters of URL-safe
#: base64 (RFC 4648 section 5: letters, digits, C{-} and C{_}).
REQUEST_ID_BYTES = 16


def newRequestId() -> str:
    """
    A fresh, unguessable IQ id: L{REQUEST_ID_BYTES} random bytes from
    L{secrets}, URL-safe base64 without padding.
    """
    return secrets.token_urlsafe(REQUEST_ID_BYTES)


def addressee(
    iq: domish.Element, parse: Callable[[str], jid.JID] = parseJID
) -> jid.JID | None:
    """
    The entity an IQ request asks: its C{to} as a JID, or C{None} when it
    has no C{to} (the server the stream goes to answers it).

    @param parse: parses the C{to} (a L{JIDCache}, say).
    @raise ValueError: the C{to} is not a valid JID; no answer could be
        matched to such a request.
    """
    to = iq.getAttribute("to")
    if to is None:
        return None
    try:
        return parse(to)
    except Exception as e:
        # Twisted's stringprep raises more than InvalidFormat on bad input.
        raise ValueError("cannot wait for an answer from the malformed address %r" % (to,)) from e


@attrs.frozen
class SentRequest:
    """
    A request waiting for its answer, as an L{AnswerRule} sees it.

    @ivar id: the request's id.
    @ivar to: the entity asked (the request's C{to}), or C{None} when the
        request had no C{to}.
    @ivar server: the domain of the server the stream is connected to, as
        a JID, or C{None} when the tracker was not told.
    """

    id: str
    to: jid.JID | None
    server: jid.JID | None


class AnswerRule(Protocol):
    """
    Whether an IQ answer with the id of a request may answer it.
    """

    def __call__(self, request: SentRequest, kind: str, sender: jid.JID | None) -> bool:
        """
        @param request: the request.
        @param kind: the answer's type, C{"result"} or C{"error"}.
        @param sender: the answer's C{from} as a JID, or C{None} when it has
            none (an answer whose C{from} is not a valid JID never gets
            here: it answers nothing).
        @return: C{True} if the answer completes the request.
        """


def _isServer(entity: jid.JID | None, server: jid.JID | None) -> bool:
    return entity is not None and server is not None and entity == server


def defaultRule(request: SentRequest, kind: str, sender: jid.JID | None) -> bool:
    """
    RFC 6120 section 8.1.2.1: a C{result} only from the entity asked; an
    C{error} also from its bare JID or its domain; no C{from} only for a
    request to the server itself (no C{to}, or C{to} the server's domain).
    A request with no C{to} is answered by the server: from its domain, or
    with no C{from}.
    """
    asked = request.to
    if sender is None:
        return asked is None or _isServer(asked, request.server)
    if asked is None:
        return _isServer(sender, request.server)
    if sender == asked:
        return True
    if kind != "error":
        return False
    # The bare JID or the domain of the entity asked: its server bouncing.
    return (
        sender.resource is None
        and sender.host == asked.host
        and (sender.user is None or sender.user == asked.user)
    )


def fromAskedOrBareJID(request: SentRequest, kind: str, sender: jid.JID | None) -> bool:
    """
    A wider rule: a C{result} or an C{error} from the entity asked or from
    its bare JID (as an XEP-0070 asker accepts: the account's server
    answering on its behalf), and an C{error} from its domain.
    """
    if defaultRule(request, kind, sender):
        return True
    asked = request.to
    return sender is not None and asked is not None and sender == asked.userhostJID()


@attrs.define
class _Pending:
    request: SentRequest
    rule: AnswerRule
    onResult: Callable[[domish.Element], object]
    onError: Callable[[Exception | Failure], object]
    timer: IDelayedCall | None = None

    def stopTimer(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()


class RequestTracker:
    """
    The requests one stream (or one handler on it) is waiting for, and the
    rule that tells their answers.

    Use: L{expect} each request as it is sent, and hand every
    C{<iq type='result'/>} and C{<iq type='error'/>} the stream receives to
    L{receive}; call L{failAll} when the stream is gone.

    @ivar server: the domain of the server the stream is connected to (a
        JID), or C{None}.
    @ivar requester: who waits (C{"component"}, C{"xtls"},
        C{"negotiation"}, C{"httpauth"}, ...): the C{requester} label of
        C{xmppcomp_iq_answers_mismatched_total}.
    @ivar jids: parses the addresses of requests and answers.
    """

    def __init__(
        self,
        serverDomain: str | None = None,
        clock: IReactorTime | None = None,
        requester: str = "component",
        makeId: Callable[[], str] = newRequestId,
        *,
        metrics: Metrics | None = None,
        jids: JIDCache | None = None,
    ) -> None:
        """
        @param serverDomain: the domain of the server the stream is
            connected to: a request to it (or with no C{to}) may be
            answered without a C{from}. C{None}: no request is.
        @param clock: keeps the timeouts given to L{expect}; without one,
            no timeout can be given.
        @param requester: the metric label (a small fixed set of values).
        @param makeId: makes the ids of requests that have none.
        @param metrics: where ignored answers are counted
            (L{Metrics.iqAnswersMismatched}); not counted without it.
        @param jids: the parsed JIDs to share (its owner's); one of the
            tracker's own without it.
        """
        self.jids = JIDCache() if jids is None else jids
        self.server = None if serverDomain is None else self.jids(serverDomain)
        self.requester = requester
        self._clock = clock
        self._makeId = makeId
        self._pending: dict[str, _Pending] = {}
        self._mismatched: Counter | NoCount = (
            NoCount() if metrics is None else metrics.iqAnswersMismatched.labels(requester)
        )

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, requestId: object) -> bool:
        return requestId in self._pending

    def expect(
        self,
        iq: domish.Element,
        onResult: Callable[[domish.Element], object],
        onError: Callable[[Exception | Failure], object],
        timeout: float | None = None,
        rule: AnswerRule = defaultRule,
    ) -> str:
        """
        Wait for the answer to C{iq}, which is about to be sent (or was just
        sent).

        @param iq: the request; it gets an id from C{makeId} if it has none
            (a caller that sets its own should make it as unguessable).
        @param onResult: called with the C{<iq type='result'/>} that
            answers it.
        @param onError: called with the
            L{StanzaError<twisted.words.protocols.jabber.error.StanzaError>}
            of an C{<iq type='error'/>} that answers it (the stanza is its
            C{stanza} attribute), with a L{TimeoutError} when C{timeout}
            passes first, or with what L{failAll} is given.
        @param timeout: seconds to wait, or C{None} for no limit here.
        @param rule: who may answer; L{defaultRule} unless a caller needs a
            wider one (such as L{fromAskedOrBareJID}).
        @return: the request's id.
        @raise ValueError: the id is that of a request still waiting, the
            C{to} is not a valid JID, or a timeout was given to a tracker
            without a clock.
        """
        to = addressee(iq, self.jids)
        if timeout is not None and self._clock is None:
            raise ValueError("this tracker has no clock to keep a timeout")
        requestId = iq.getAttribute("id")
        if not requestId:
            requestId = self._makeId()
            while requestId in self._pending:
                requestId = self._makeId()
            iq["id"] = requestId
        elif requestId in self._pending:
            raise ValueError("a request with this id is waiting for its answer already")
        entry = _Pending(SentRequest(requestId, to, self.server), rule, onResult, onError)
        if timeout is not None:
            assert self._clock is not None
            entry.timer = self._clock.callLater(timeout, self._timedOut, requestId, entry, timeout)
        self._pending[requestId] = entry
        return requestId

    def receive(self, iq: domish.Element) -> bool:
        """
        Offer an IQ the stream received. A C{result} or C{error} with the id
        of a waiting request, from a sender its rule accepts, completes it
        and is marked handled (C{iq.handled = True}); any other IQ is left
        as it is.

        @return: whether C{iq} completed a request.
        """
        kind = iq.getAttribute("type")
        if kind != "result" and kind != "error":
            return False
        requestId = iq.getAttribute("id")
        entry = self._pending.get(requestId) if requestId else None
        if entry is None:
            return False
        senderText = iq.getAttribute("from")
        sender: jid.JID | None = None
        accepted = True
        if senderText is not None:
            try:
                sender = self.jids(senderText)
            except Exception:
                accepted = False
        if accepted:
            accepted = entry.rule(entry.request, kind, sender)
        if not accepted:
            self._mismatched.inc()
            log.debug(
                "ignored an IQ {kind} from {sender} with the id of a request to "
                "{asked}: not an answer it accepts ({requester})",
                kind=kind,
                sender=senderText if senderText is not None else "(no from)",
                asked=entry.request.to.full() if entry.request.to is not None else "the server",
                requester=self.requester,
            )
            return False
        del self._pending[requestId]
        entry.stopTimer()
        iq.handled = True  # type: ignore[attr-defined]  # a flag domish.Element does not declare
        if kind == "error":
            entry.onError(exceptionFromStanza(iq))
        else:
            entry.onResult(iq)
        return True

    def forget(self, requestId: str) -> bool:
        """
        Stop waiting for a request, without calling anything.

        @return: whether it was waiting.
        """
        entry = self._pending.pop(requestId, None)
        if entry is None:
            return False
        entry.stopTimer()
        return True

    def failAll(self, reason: Exception | Failure) -> None:
        """
        No answer can come any more (the stream is gone): call every
        waiting request's C{onError} with C{reason}, and forget them all.
        """
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            entry.stopTimer()
        for entry in pending.values():
            entry.onError(reason)

    def _timedOut(self, requestId: str, entry: _Pending, seconds: float) -> None:
        if self._pending.get(requestId) is not entry:
            return
        del self._pending[requestId]
        asked = entry.request.to
        entry.onError(
            TimeoutError(
                "no answer from %s within %g s"
                % (asked.full() if asked is not None else "the server", seconds)
            )
        )
