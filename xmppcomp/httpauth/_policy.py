# -*- test-case-name: tests.test_httpauth_policy -*-
"""
What the confirmer decides before and after asking, as pure logic: access
rules per path prefix, single-use transaction ids, sessions, the HEAD and
OPTIONS window, and limits on pending confirmations.

Time comes from a C{clock} with a C{seconds()} method (an
L{twisted.internet.interfaces.IReactorTime} provider will do); nothing here
imports C{twisted.internet}.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar, Union
from urllib.parse import urlsplit

import attrs
from twisted.words.protocols.jabber import jid

from xmppcomp._memo import boundedMemo
from xmppcomp.httpauth._protocol import XMPPCredentials

#: Methods whose confirmation stays usable for a short window (XEP-0070
#: section 6).
WINDOW_METHODS = frozenset({"HEAD", "OPTIONS"})


class Clock(Protocol):
    """
    The part of L{twisted.internet.interfaces.IReactorTime} used here.
    """

    def seconds(self) -> float:
        """
        The current time in seconds.
        """


def _bareJIDs(values: Iterable[str | jid.JID]) -> frozenset[str]:
    return frozenset(
        (value if isinstance(value, jid.JID) else jid.JID(value)).userhost()
        for value in values
    )


def _domains(values: Iterable[str]) -> frozenset[str]:
    return frozenset(jid.JID(value).host for value in values)


def _prefix(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"a path prefix must start with '/': {value!r}")
    return value


@attrs.frozen
class AccessRule:
    """
    Who may access the paths under one prefix.

    @ivar prefix: a URL path prefix; it matches whole segments (C{/docs}
        matches C{/docs} and C{/docs/a}, not C{/docsecret}).
    @ivar jids: bare JIDs allowed (any of their resources).
    @ivar domains: domains whose every JID is allowed.
    @ivar anyone: whether every JID is allowed.
    """

    prefix: str = attrs.field(converter=_prefix)
    jids: frozenset[str] = attrs.field(default=frozenset(), converter=_bareJIDs)
    domains: frozenset[str] = attrs.field(default=frozenset(), converter=_domains)
    anyone: bool = False

    def covers(self, path: str) -> bool:
        """
        Whether C{path} is under this rule's prefix.
        """
        prefix = self.prefix
        if prefix.endswith("/"):
            return path.startswith(prefix) or path == prefix[:-1]
        return path == prefix or path.startswith(prefix + "/")

    def allows(self, who: jid.JID) -> bool:
        """
        Whether C{who} may access the paths this rule covers.
        """
        return self.anyone or who.userhost() in self.jids or who.host in self.domains


def _ruleTuple(rules: Iterable[AccessRule]) -> tuple[AccessRule, ...]:
    """
    The converter of L{AccessRules.rules} (a typed C{tuple}, which mypy's
    attrs plugin cannot infer from the generic builtin).
    """
    return tuple(rules)


@attrs.frozen
class AccessRules:
    """
    Access rules per path prefix; the longest covering prefix decides, and
    a path no rule covers is refused.

    @ivar rules: the rules.
    """

    rules: tuple[AccessRule, ...] = attrs.field(converter=_ruleTuple)

    @classmethod
    def anyone(cls) -> AccessRules:
        """
        Rules letting any JID through (verification only, XEP-0070 section
        4.4).
        """
        return cls((AccessRule("/", anyone=True),))

    def ruleFor(self, path: str) -> AccessRule | None:
        """
        The rule deciding for C{path}, or C{None}.
        """
        best: AccessRule | None = None
        for rule in self.rules:
            if rule.covers(path) and (best is None or len(rule.prefix) > len(best.prefix)):
                best = rule
        return best

    def allows(self, path: str, who: jid.JID) -> bool:
        """
        Whether C{who} may access C{path}.
        """
        rule = self.ruleFor(path)
        return rule is not None and rule.allows(who)


@attrs.frozen
class Limits:
    """
    How long things last and how much may be pending.

    @ivar pendingPerJID: confirmations pending for one bare JID at most;
        beyond, 429.
    @ivar pendingTotal: confirmations pending in total at most; beyond, 503.
    @ivar sessionLifetime: seconds a confirmed (JID, transaction id) passes
        again from the same site and client address.
    @ivar windowLifetime: seconds credentials confirmed with HEAD or OPTIONS
        pass again for the same JID, URL and transaction id, whatever the
        method and client address.
    @ivar replayMemory: seconds a used transaction id is remembered (and
        refused); after that, using it again asks the user again.
    @ivar maxRemembered: used transaction ids remembered at most (memory
        is bounded by count, not only by C{replayMemory}); when that many
        are remembered, new confirmations get 503 until the oldest expire
        (forgetting early would let them be replayed).
    """

    pendingPerJID: int = 3
    pendingTotal: int = 100
    sessionLifetime: float = 300.0
    windowLifetime: float = 60.0
    replayMemory: float = 86400.0
    maxRemembered: int = 100_000


#: Site strings seen lately (L{_shared}).
_sites: dict[str, str] = {}
_SITES_KEPT = 1024


@boundedMemo(_sites, _SITES_KEPT)
def _shared(site: str) -> str:
    """
    One string object per site for every pending confirmation and session
    of it, instead of one each (~70 bytes per pending confirmation). A
    bounded memo: the authority comes from the client.
    """
    return site


@attrs.frozen
class Attempt:
    """
    One HTTP request presenting XEP-0070 credentials.

    @ivar credentials: what the header carried.
    @ivar method: the HTTP method of the original request.
    @ivar url: the full URL of the original request.
    @ivar client: the client's address.
    """

    credentials: XMPPCredentials
    method: str
    url: str
    client: str

    @property
    def site(self) -> str:
        """
        The protected site: the URL's scheme and authority.
        """
        parts = urlsplit(self.url)
        return _shared(f"{parts.scheme}://{parts.netloc}".lower())

    @property
    def path(self) -> str:
        """
        The URL's path (C{/} if empty).
        """
        return urlsplit(self.url).path or "/"

    @property
    def key(self) -> tuple[str, str]:
        """
        The single-use key: bare JID and transaction id.
        """
        return (self.credentials.jid.userhost(), self.credentials.transactionId)


@attrs.frozen
class Pass:
    """
    Let the request through without asking.

    @ivar reason: C{"session"} or C{"window"}.
    """

    reason: str


@attrs.frozen
class Refuse:
    """
    Refuse the request without asking.

    @ivar status: 403, 429 or 503.
    @ivar reason: a human-readable explanation.
    @ivar retryAfter: seconds for a C{Retry-After} header, or C{None}.
    """

    status: int
    reason: str
    retryAfter: int | None = None


@attrs.frozen
class Ask:
    """
    Ask the user; the ledger now holds a pending entry for C{key}.
    """

    key: tuple[str, str]


@attrs.frozen
class Join:
    """
    A confirmation for the same credentials, site and client is pending;
    wait for its outcome instead of asking again.
    """

    key: tuple[str, str]


Decision = Union[Pass, Refuse, Ask, Join]


@attrs.frozen
class _Scope:
    # The JID object the credentials carry (shared through
    # xmppcomp.jids.parseJID), not a new string of it per entry.
    jid: jid.JID
    site: str
    client: str
    expires: float


_K = TypeVar("_K")
_V = TypeVar("_V")


def _setLast(entries: dict[_K, _V], key: _K, value: _V) -> None:
    """
    Set C{entries[key]}, moving it to the end (dicts keep insertion order).
    """
    entries.pop(key, None)
    entries[key] = value


def _dropExpired(entries: dict[_K, _V], expiry: Callable[[_V], float], now: float) -> None:
    """
    Pop entries from the front of C{entries} while they have expired.
    """
    while entries:
        key = next(iter(entries))
        if expiry(entries[key]) > now:
            return
        del entries[key]


@attrs.define
class Ledger:
    """
    The confirmer's memory: pending confirmations, used transaction ids,
    sessions and HEAD/OPTIONS windows.

    Use: L{decide} for each attempt; after an L{Ask}, exactly one of
    L{settle} (the user answered) or L{abandon} (no answer: timeout, not
    connected).

    @ivar _clock: provides C{seconds()}.
    @ivar _rules: the access rules.
    @ivar _limits: the limits.
    @ivar _pending: key to the scope and deadline of a pending confirmation.
    @ivar _used: key to when its use may be forgotten.
    @ivar _sessions: (full JID, transaction id) to its session.
    @ivar _windows: (full JID, transaction id, URL) to when it closes.
    """

    _clock: Clock
    _rules: AccessRules
    _limits: Limits = attrs.field(factory=Limits)
    _pending: dict[tuple[str, str], _Scope] = attrs.field(factory=dict, init=False)
    _used: dict[tuple[str, str], float] = attrs.field(factory=dict, init=False)
    _sessions: dict[tuple[str, str], _Scope] = attrs.field(factory=dict, init=False)
    _windows: dict[tuple[str, str, str], float] = attrs.field(factory=dict, init=False)
    _pendingPerJID: dict[str, int] = attrs.field(factory=dict, init=False)
    _nextPurge: float = attrs.field(default=-math.inf, init=False)

    def _purge(self, now: float) -> None:
        """
        Forget expired sessions, windows and used ids, at most once a second.

        Each of those dicts gets one lifetime for all its entries, and an
        entry is moved to the end whenever it is set, so the dicts are in
        order of expiry: forgetting pops from the front and stops at the
        first live entry, instead of walking every remembered id (up to
        L{Limits.maxRemembered}) each second. Should the clock step back,
        an entry is forgotten late, never early: every lookup checks its
        expiry too.
        """
        if now < self._nextPurge:
            return
        self._nextPurge = now + 1.0
        _dropExpired(self._used, lambda t: t, now)
        _dropExpired(self._sessions, lambda s: s.expires, now)
        _dropExpired(self._windows, lambda t: t, now)

    def _retryAfter(self, scopes: Iterable[_Scope], now: float) -> int:
        soonest = min((s.expires for s in scopes), default=now + 1)
        return max(1, math.ceil(soonest - now))

    def decide(self, attempt: Attempt, timeout: float) -> Decision:
        """
        Decide what to do with C{attempt}.

        @param timeout: seconds a confirmation asked now may take (for
            C{Retry-After}).
        """
        now = self._clock.seconds()
        deadline = now + timeout
        self._purge(now)
        credentials = attempt.credentials
        full = credentials.jid.full()
        transactionId = credentials.transactionId
        if not self._rules.allows(attempt.path, credentials.jid):
            return Refuse(403, f"{full} may not access {attempt.path}")

        session = self._sessions.get((full, transactionId))
        live = session is not None and session.expires > now
        if live and session is not None and (session.site, session.client) == (
            attempt.site,
            attempt.client,
        ):
            return Pass("session")
        closes = self._windows.get((full, transactionId, attempt.url))
        if closes is not None and closes > now:
            return Pass("window")
        if live:
            return Refuse(
                403,
                "this transaction id was confirmed for another site or client "
                "address; choose a new one",
            )

        key = attempt.key
        if self._used.get(key, -math.inf) > now:
            return Refuse(403, "this transaction id was used already; choose a new one")
        pending = self._pending.get(key)
        if pending is not None:
            if (pending.jid, pending.site, pending.client) == (
                credentials.jid,
                attempt.site,
                attempt.client,
            ):
                return Join(key)
            return Refuse(403, "this transaction id is being confirmed for another request")

        if self._pendingPerJID.get(key[0], 0) >= self._limits.pendingPerJID:
            # Counted as they come and go; listed only to refuse.
            forJID = [s for k, s in self._pending.items() if k[0] == key[0]]
            return Refuse(
                429,
                f"{len(forJID)} confirmations are already pending for "
                f"{key[0]}; answer them first",
                self._retryAfter(forJID, now),
            )
        if len(self._pending) >= self._limits.pendingTotal:
            return Refuse(
                503,
                "too many confirmations are pending",
                self._retryAfter(self._pending.values(), now),
            )
        if len(self._used) + len(self._pending) >= self._limits.maxRemembered:
            oldest = min(self._used.values(), default=now + 1)
            return Refuse(
                503,
                "too many transaction ids are remembered against replay",
                max(1, math.ceil(oldest - now)),
            )
        self._pending[key] = _Scope(credentials.jid, attempt.site, attempt.client, deadline)
        self._pendingPerJID[key[0]] = self._pendingPerJID.get(key[0], 0) + 1
        return Ask(key)

    def _unpend(self, key: tuple[str, str]) -> None:
        if self._pending.pop(key, None) is None:
            return
        left = self._pendingPerJID[key[0]] - 1
        if left:
            self._pendingPerJID[key[0]] = left
        else:
            del self._pendingPerJID[key[0]]

    def settle(self, attempt: Attempt, allowed: bool) -> None:
        """
        The user answered the confirmation asked for C{attempt}: the
        transaction id is used; if allowed, a session opens and, for HEAD
        and OPTIONS, a window.
        """
        now = self._clock.seconds()
        key = attempt.key
        self._unpend(key)
        _setLast(self._used, key, now + self._limits.replayMemory)
        if not allowed:
            return
        credentials = attempt.credentials
        full = credentials.jid.full()
        _setLast(
            self._sessions,
            (full, credentials.transactionId),
            _Scope(credentials.jid, attempt.site, attempt.client, now + self._limits.sessionLifetime),
        )
        if attempt.method.upper() in WINDOW_METHODS:
            _setLast(
                self._windows,
                (full, credentials.transactionId, attempt.url),
                now + self._limits.windowLifetime,
            )

    def abandon(self, attempt: Attempt) -> None:
        """
        No answer came for C{attempt} (timeout, not connected): forget the
        pending entry without using the transaction id.
        """
        self._unpend(attempt.key)

    @property
    def pendingCount(self) -> int:
        """
        How many confirmations are pending.
        """
        return len(self._pending)
