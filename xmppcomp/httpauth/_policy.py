# -*- test-case-name: tests.test_httpauth_policy -*-
"""
What the confirmer decides before and after asking, as pure logic: access
rules per path prefix, single-use transaction ids (remembered per bare JID,
with fair shares), sessions, the HEAD and OPTIONS window, and the limits:
attempts per client address, undeliverable confirmations per client
address and target domain, pending confirmations.

Time comes from a C{clock} with a C{seconds()} method (an
L{twisted.internet.interfaces.IReactorTime} provider will do); nothing here
imports C{twisted.internet}.

Sessions, the window and methods (XEP-0070 section 5.1 speaks of a
subsequent request "from the same entity"; this is stricter, on purpose):

  - a confirmed (full JID, transaction id) opens a session for its site
    and client address (L{Limits.sessionLifetime}), in which the same
    credentials pass without asking, for the safe methods only (C{GET},
    C{HEAD}, C{OPTIONS}; methods are case-sensitive);
  - a confirmation of C{HEAD} or C{OPTIONS} also opens a window
    (L{Limits.windowLifetime}) for the same URL, bound to the same client
    address, passing the safe methods only;
  - any other method always asks: inside its own live session (same site
    and client address) it asks again with the same transaction id (no
    new id needed); outside it, a used transaction id is a replay. A
    denial ends the session.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, Protocol, TypeVar, Union
from urllib.parse import urlsplit

import attrs
from twisted.words.protocols.jabber import jid

from xmppcomp._memo import BoundedMemo
from xmppcomp.httpauth._errors import (
    AccessForbidden,
    EndToEndRequired,
    ConfirmationFailed,
    RateLimited,
    Replayed,
)
from xmppcomp.httpauth._protocol import MalformedJID, XMPPCredentials, canonicalJID

#: Methods that pass in a session or a window without asking (RFC 9110
#: section 9.2.1, safe methods, but C{TRACE}); methods are case-sensitive.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: Methods whose confirmation opens a short window for the same URL
#: (XEP-0070 section 5.1).
WINDOW_METHODS = frozenset({"HEAD", "OPTIONS"})


class Clock(Protocol):
    """
    The part of L{twisted.internet.interfaces.IReactorTime} used here.
    """

    def seconds(self) -> float:
        """
        The current time in seconds.
        """


def _ruleJID(value: str | jid.JID) -> jid.JID:
    """
    C{value} as a JID of an access rule, in the form users' JIDs are
    compared in (L{canonicalJID}: stringprep, no trailing dot, U-labels).

    @raise ValueError: it is not a JID (L{jid.InvalidFormat} too).
    """
    try:
        return canonicalJID(value if isinstance(value, jid.JID) else jid.JID(value))
    except jid.InvalidFormat:
        raise
    except MalformedJID as e:
        raise ValueError(e.reason.replace("the user name is not a valid JID: ", "")) from None
    except Exception:  # Twisted's stringprep raises more (IndexError for "."); so does an empty domain
        raise ValueError("not a valid JID") from None


def bareJID(value: str | jid.JID) -> str:
    """
    A bare JID (or a domain) of an access rule, as it is compared with a
    user's: stringprep, no resource, the domain's trailing dot stripped.

    @raise ValueError: it is not a JID (L{jid.InvalidFormat} too).
    """
    return _ruleJID(value).userhost()


def ruleDomain(value: str) -> str:
    """
    A domain of an access rule, as it is compared with a user's: stringprep,
    the trailing dot stripped.

    @raise ValueError: it is not a domain (L{jid.InvalidFormat} too).
    """
    parsed = _ruleJID(value)
    if parsed.user is not None or parsed.resource is not None:
        raise ValueError("it is a JID, not a domain; list it in jids, or give its domain")
    return parsed.host


def checkPrefix(value: str) -> str:
    """
    The path prefix of an access rule: a path as requests are read
    (L{canonicalTarget<xmppcomp.httpauth.canonicalTarget>}: decoded, no
    empty, C{.} or C{..} segment but an empty last one), which a rule with
    another prefix would never match.

    @return: C{value}.
    @raise ValueError: it is not one, with the reason.
    """
    segments = value.split("/")
    if segments[0] != "" or len(segments) < 2:
        raise ValueError("a path prefix must start with '/'")
    if any(s in ("", ".", "..") for s in segments[1:-1]) or segments[-1] in (".", ".."):
        raise ValueError("it has an empty, '.' or '..' segment, which no request path has")
    return value


def _bareJIDs(values: Iterable[str | jid.JID]) -> frozenset[str]:
    return frozenset(map(bareJID, values))


def _domains(values: Iterable[str]) -> frozenset[str]:
    return frozenset(map(ruleDomain, values))


@attrs.frozen
class AccessRule:
    """
    Who may access the paths under one prefix.

    @ivar prefix: a URL path prefix; it matches whole segments (C{/docs}
        matches C{/docs} and C{/docs/a}, not C{/docsecret}).
    @ivar jids: bare JIDs allowed (any of their resources); a domain's
        trailing dot is stripped, as from credentials.
    @ivar domains: domains whose every JID is allowed (likewise).
    @ivar anyone: whether every JID is allowed.
    @ivar requireXTLS: whether every confirmation for these paths must come
        through an XTLS tunnel to the user's full JID (L{requiresXTLS}).
    @ivar xtlsFor: bare JIDs and domains whose confirmations for these
        paths must come through XTLS, when not all must.
    """

    prefix: str = attrs.field(converter=checkPrefix)
    jids: frozenset[str] = attrs.field(default=frozenset(), converter=_bareJIDs)
    domains: frozenset[str] = attrs.field(default=frozenset(), converter=_domains)
    anyone: bool = False
    requireXTLS: bool = False
    xtlsFor: frozenset[str] = attrs.field(default=frozenset(), converter=_bareJIDs)

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

    def requiresXTLS(self, who: jid.JID) -> bool:
        """
        Whether C{who}'s confirmations for these paths must come through an
        XTLS tunnel: for everybody (L{requireXTLS}), or for its bare JID or
        domain (L{xtlsFor}).
        """
        return self.requireXTLS or who.userhost() in self.xtlsFor or who.host in self.xtlsFor


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

    @property
    def anyRequiresXTLS(self) -> bool:
        """
        Whether some rule requires confirmations through XTLS.
        """
        return any(rule.requireXTLS or rule.xtlsFor for rule in self.rules)

    def check(self, path: str, who: jid.JID) -> Refuse | bool:
        """
        What the rules say before anything else is decided: a L{Refuse}
        when C{who} may not access C{path} (L{AccessForbidden}), or when the
        confirmation must come through XTLS and C{who} is a bare JID, which
        no tunnel can reach (L{EndToEndRequired}); otherwise whether the
        confirmation must come through XTLS.
        """
        rule = self.ruleFor(path)
        if rule is None or not rule.allows(who):
            return refusal("forbidden", who=who.full(), path=path)
        if not rule.requiresXTLS(who):
            return False
        if not who.resource:
            return refusal("full-jid", bare=who.userhost())
        return True


@attrs.frozen
class Limits:
    """
    How long things last and how much may be pending or remembered; every
    limit refused answers 429 (403 in forward-auth) with C{Retry-After}.

    @ivar pendingPerJID: confirmations pending for one bare JID at most
        (default 3).
    @ivar pendingTotal: confirmations pending in total at most (default
        100).
    @ivar sessionLifetime: seconds a confirmed (full JID, transaction id)
        passes again, for the safe methods, from the same site and client
        address (default 300).
    @ivar windowLifetime: seconds credentials confirmed with C{HEAD} or
        C{OPTIONS} pass again for the same URL, for the safe methods, from
        the same client address (default 60).
    @ivar replayMemory: seconds a used transaction id is remembered (and
        refused); after that, using it again asks the user again (default
        86400).
    @ivar maxRemembered: used transaction ids remembered at most, pending
        confirmations included (default 100,000). Ids still remembered are
        never forgotten early (that would allow their replay): when the
        room is full, new confirmations wait until the oldest expire.
    @ivar rememberedPerJID: used transaction ids remembered for one bare
        JID at most (default 1,000); beyond, that JID waits until its own
        oldest expires, and nobody else does.
    @ivar rememberedPerDomain: likewise for all the JIDs of one domain
        (default 10,000).
    @ivar attemptsPerClient: confirmations one client address may have
        asked over XMPP in L{attemptWindow} seconds (a token bucket: that
        many at once, then at that rate; default 30).
    @ivar attemptWindow: see L{attemptsPerClient} (default 60).
    @ivar undeliverablePerTarget: confirmations that could not be asked
        (undeliverable) from one client address to one domain in
        L{undeliverableWindow} seconds at most; beyond, that address may
        not ask that domain for a while, and nothing else changes
        (default 5).
    @ivar undeliverableWindow: see L{undeliverablePerTarget} (default
        600).
    @ivar maxTrackedClients: client addresses (and, apart, pairs of client
        address and domain) whose rates are tracked at most (default
        10,000). When full, the one idle the longest is forgotten: a full
        table locks nobody out.
    """

    pendingPerJID: int = 3
    pendingTotal: int = 100
    sessionLifetime: float = 300.0
    windowLifetime: float = 60.0
    replayMemory: float = 86400.0
    maxRemembered: int = 100_000
    rememberedPerJID: int = 1_000
    rememberedPerDomain: int = 10_000
    attemptsPerClient: int = 30
    attemptWindow: float = 60.0
    undeliverablePerTarget: int = 5
    undeliverableWindow: float = 600.0
    maxTrackedClients: int = 10_000


#: How many site strings a L{Ledger} shares among its sessions at most.
SITES_KEPT = 1024


def _same(site: str) -> str:
    return site


@attrs.frozen
class Attempt:
    """
    One HTTP request presenting XEP-0070 credentials.

    @ivar credentials: what the header carried.
    @ivar method: the HTTP method of the original request (case-sensitive).
    @ivar url: the URL asked about: the configured origin, the encoded
        canonical path and the normalised query (or no query, when the
        operator keeps it private).
    @ivar client: the client's address, as the web layer decided it
        (trusted proxies resolved).
    @ivar path: the canonical decoded path; the access rules decide on it.
    @ivar site: the protected site: the URL's scheme and authority, lower
        case (derived from C{url}).
    @ivar key: the single-use key: bare JID and transaction id (derived).
    """

    credentials: XMPPCredentials
    method: str
    url: str
    client: str
    path: str
    site: str = attrs.field(init=False, eq=False, repr=False)
    key: tuple[str, str] = attrs.field(init=False, eq=False, repr=False)

    @site.default
    def _siteDefault(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}".lower()

    @key.default
    def _keyDefault(self) -> tuple[str, str]:
        return (self.credentials.jid.userhost(), self.credentials.transactionId)


@attrs.frozen
class Pass:
    """
    Let the request through without asking.

    @ivar reason: C{"session"} or C{"window"}.
    @ivar by: the JID that confirmed the session or window, or C{None}
        for the JID of the credentials.
    """

    reason: str
    by: jid.JID | None = None


@attrs.frozen
class Refuse:
    """
    Refuse the request without asking.

    @ivar error: the L{ConfirmationFailed} to fail with:
        L{AccessForbidden} (the rules), L{Replayed} (a used, pending or
        out-of-session transaction id) or L{RateLimited} (a limit).
    @ivar reason: a human-readable explanation.
    @ivar retryAfter: seconds for a C{Retry-After} header (always set for
        L{RateLimited}), or C{None}.
    """

    error: type[ConfirmationFailed]
    reason: str
    retryAfter: int | None = None

    @property
    def status(self) -> int:
        """
        The HTTP status of L{error} in the protect and proxy modes.
        """
        return self.error.status

    def failure(self) -> ConfirmationFailed:
        """
        The exception to fail with.
        """
        return self.error(self.reason, self.retryAfter)


@attrs.frozen
class Ask:
    """
    Ask the user; the ledger now holds a pending entry for C{key}.

    @ivar endToEnd: the access rules require the question and its answer
        to go through an XTLS tunnel to the user's full JID.
    """

    key: tuple[str, str]
    endToEnd: bool = False


@attrs.frozen
class Join:
    """
    A confirmation for the same credentials, site and client is pending,
    and this request is of a safe method: wait for its outcome instead of
    asking again.
    """

    key: tuple[str, str]


Decision = Union[Pass, Refuse, Ask, Join]


#: The refusals of L{Ledger.decide}, by code: the error and the reason (a
#: C{str.format} template). Every store (L{xmppcomp.httpauth.IConfirmationStore})
#: refuses with these, so that the answers are the same whichever keeps
#: the state.
REFUSALS: dict[str, tuple[type[ConfirmationFailed], str]] = {
    "forbidden": (AccessForbidden, "{who} may not access {path}"),
    "full-jid": (
        EndToEndRequired,
        "a full JID is needed for this site: it requires an end-to-end confirmation through "
        "XTLS, and a bare JID cannot be tunnelled to; give your JID with the resource of the "
        "client that will confirm, such as {bare}/phone",
    ),
    "elsewhere": (
        Replayed,
        "this transaction id was confirmed for another site or client address; choose a new one",
    ),
    "used": (Replayed, "this transaction id was used already; choose a new one"),
    "other-request": (
        Replayed,
        "this transaction id is being confirmed for another request; choose a new one",
    ),
    "pending-unsafe": (
        RateLimited,
        "a confirmation with this transaction id is pending, and a {method} request is always "
        "asked on its own; wait for it or choose a new transaction id",
    ),
    "pending-other-instance": (
        RateLimited,
        "a confirmation with this transaction id is pending on another instance of the "
        "confirmer; wait for it or choose a new transaction id",
    ),
    "attempts": (RateLimited, "too many confirmations were asked from {client}; try again later"),
    "undeliverable": (
        RateLimited,
        "too many confirmations from {client} to {domain} could not be delivered; try again later",
    ),
    "pending-jid": (
        RateLimited,
        "{count} confirmations are already pending for {bare}; answer them first",
    ),
    "pending-total": (RateLimited, "too many confirmations are pending"),
    "remembered-jid": (
        RateLimited,
        "too many transaction ids of {bare} are remembered against replay",
    ),
    "remembered-domain": (
        RateLimited,
        "too many transaction ids at {domain} are remembered against replay",
    ),
    "remembered-total": (RateLimited, "too many transaction ids are remembered against replay"),
}


def refusal(code: str, retryAfter: int | None = None, **values: object) -> Refuse:
    """
    The L{Refuse} of L{REFUSALS}C{[code]}, its reason filled with
    C{values}.
    """
    error, reason = REFUSALS[code]
    return Refuse(error, reason.format(**values), retryAfter)


def retryAfter(soonest: float, now: float) -> int:
    """
    Whole seconds from C{now} to C{soonest}, at least 1: the
    C{Retry-After} of a limit that frees up at C{soonest}.
    """
    return max(1, math.ceil(soonest - now))


def bucketRetryAfter(tokens: float, capacity: int, window: float) -> int:
    """
    Whole seconds, at least 1, until a token bucket refilled at
    C{capacity} per C{window} seconds and holding C{tokens} holds one.
    """
    rate = capacity / window if window > 0 else math.inf
    return max(1, math.ceil((1.0 - tokens) / rate))



@attrs.frozen
class _Scope:
    # The JID that confirmed (shared through the asker's JIDCache), not a
    # new string of it per entry; the site shared through the Ledger's
    # memo of them.
    jid: jid.JID
    site: str
    client: str
    expires: float


class _Pending:
    """
    A confirmation being asked: the attempt (alive anyway while it is
    pending) and its deadline.
    """

    __slots__ = ("attempt", "expires")

    def __init__(self, attempt: Attempt, expires: float) -> None:
        self.attempt = attempt
        self.expires = expires


class _DomainShare:
    """
    The used transaction ids of one domain's JIDs.

    @ivar count: how many.
    @ivar order: the L{_Share} of each, in the order they were remembered
        (the same order as L{Ledger}'s global one, of which it is the
        part of this domain).
    """

    __slots__ = ("name", "count", "order")

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.order: deque[_Share] = deque()


class _Share:
    """
    The used transaction ids of one bare JID.

    @ivar jid: the bare JID.
    @ivar domain: its domain's share.
    @ivar ids: transaction id to when it may be forgotten, in the order
        they were remembered.
    """

    __slots__ = ("jid", "domain", "ids")

    def __init__(self, bare: str, domain: _DomainShare) -> None:
        self.jid = bare
        self.domain = domain
        self.ids: dict[str, float] = {}

    def oldest(self) -> float:
        """
        When the oldest of its ids may be forgotten.
        """
        return next(iter(self.ids.values()))


_K = TypeVar("_K")
_V = TypeVar("_V")
_H = TypeVar("_H", bound=Hashable)


class _Bucket:
    __slots__ = ("tokens", "stamp")

    def __init__(self) -> None:
        self.tokens = 0.0
        self.stamp = 0.0


class _RateTable(Generic[_H]):
    """
    Token buckets per key (a client address, a pair of client address and
    domain): C{capacity} tokens, refilled at C{capacity} per C{window}
    seconds, one taken per event counted. Bounded: at most C{maxKeys}
    keys, kept in the order they were last counted; a bucket idle for
    C{window} seconds is full again and forgotten, and when the table is
    full the key idle the longest is forgotten (which only forgives it).
    A window of 0 or less limits nothing.
    """

    def __init__(self, capacity: int, window: float, maxKeys: int) -> None:
        self._capacity = float(capacity)
        self._window = window
        self._rate = capacity / window if window > 0 else math.inf
        self._maxKeys = max(1, maxKeys)
        self._buckets: OrderedDict[_H, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def available(self, key: _H, now: float) -> float:
        """
        Tokens in C{key}'s bucket at C{now}.
        """
        bucket = self._buckets.get(key)
        if bucket is None or self._rate == math.inf:
            return self._capacity
        elapsed = now - bucket.stamp
        if elapsed <= 0.0:
            return bucket.tokens
        return min(self._capacity, bucket.tokens + elapsed * self._rate)

    def retryAfter(self, tokens: float) -> int:
        """
        Whole seconds until a bucket holding C{tokens} holds one.
        """
        return bucketRetryAfter(tokens, int(self._capacity), self._window)

    def take(self, key: _H, now: float) -> None:
        """
        Take a token from C{key}'s bucket (none left stays none).
        """
        tokens = self.available(key, now) - 1.0
        buckets = self._buckets
        bucket = buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket()
            while len(buckets) >= self._maxKeys:
                buckets.popitem(last=False)
        bucket.tokens = tokens if tokens > 0.0 else 0.0
        bucket.stamp = now
        buckets[key] = bucket

    def purge(self, now: float) -> None:
        """
        Forget the buckets full again (idle for a window).
        """
        buckets = self._buckets
        while buckets:
            bucket = buckets[next(iter(buckets))]
            if bucket.stamp + self._window > now:
                return
            buckets.popitem(last=False)


def _setLast(entries: dict[_K, _V], key: _K, value: _V) -> None:
    """
    Set C{entries[key]}, moving it to the end (dicts keep insertion order).
    """
    entries.pop(key, None)
    entries[key] = value


def _dropExpired(entries: dict[_K, _V], expiry: Callable[[_V], float], now: float) -> None:
    """
    Drop the entries at the front of C{entries} that have expired, up to
    the first that has not (one pass: deleting while peeking at the front
    of a dict would walk the deleted slots again each time).
    """
    expired = []
    for key, value in entries.items():
        if expiry(value) > now:
            break
        expired.append(key)
    for key in expired:
        del entries[key]


class Ledger:
    """
    The confirmer's memory: pending confirmations, used transaction ids,
    sessions and HEAD/OPTIONS windows, and the rates of client addresses.

    Use: L{decide} for each attempt; after an L{Ask}, exactly one of
    L{settle} (the user answered: allow or deny) or L{abandon} (no answer:
    timeout, not connected, or could not be asked). Only answers use up a
    transaction id; the rest consumes nothing.

    Checks, in order: the access rules (L{AccessForbidden}); the session,
    then the window (pass, see the module's docstring); replays
    (L{Replayed}: a transaction id used already outside its own session,
    confirmed for another site or client address, or being confirmed for
    another request); then, before asking, the limits (L{RateLimited}):
    attempts per client address, undeliverable confirmations per client
    address and domain, pending per JID and in total, and the room for
    remembering the transaction id (per bare JID, per domain, in total;
    only a new id needs room). See L{Limits}.

    Used ids are kept per bare JID (L{_Share}) and per domain, with one
    global order of remembering: every id has the same lifetime, so that
    order is the order of expiry, and forgetting pops from the front. Ids
    are never forgotten before they expire; a JID or a domain whose share
    is full waits for its own oldest, and nobody else does.

    @ivar _clock: provides C{seconds()}.
    @ivar _rules: the access rules.
    @ivar _limits: the limits.
    @ivar _pending: key to the pending confirmation.
    @ivar _pendingPerJID: bare JID to how many of L{_pending} are its.
    @ivar _usedByJID: bare JID to its used ids.
    @ivar _usedByDomain: domain to its JIDs' used ids.
    @ivar _usedOrder: the L{_Share} of each used id, in the order they were
        remembered.
    @ivar _usedCount: how many used ids are remembered.
    @ivar _sessions: (full JID, transaction id) to its session.
    @ivar _windows: (full JID, transaction id, URL) to its window.
    @ivar _attempts: confirmations asked, per client address.
    @ivar _undeliverable: confirmations that could not be asked, per
        (client address, domain).
    """

    def __init__(self, clock: Clock, rules: AccessRules, limits: Limits | None = None) -> None:
        if limits is None:
            limits = Limits()
        self._clock = clock
        self._rules = rules
        self._limits = limits
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._pendingPerJID: dict[str, int] = {}
        self._usedByJID: dict[str, _Share] = {}
        self._usedByDomain: dict[str, _DomainShare] = {}
        self._usedOrder: deque[_Share] = deque()
        self._usedCount = 0
        self._sessions: dict[tuple[str, str], _Scope] = {}
        self._windows: dict[tuple[str, str, str], _Scope] = {}
        self._attempts: _RateTable[str] = _RateTable(
            limits.attemptsPerClient, limits.attemptWindow, limits.maxTrackedClients
        )
        self._undeliverable: _RateTable[tuple[str, str]] = _RateTable(
            limits.undeliverablePerTarget,
            limits.undeliverableWindow,
            limits.maxTrackedClients,
        )
        self._nextPurge = -math.inf
        # One string object per site for every session and window of it,
        # instead of one each. A bounded memo: the authority comes from
        # the client.
        self._sites: BoundedMemo[str, str] = BoundedMemo(_same, SITES_KEPT)

    def _purge(self, now: float) -> None:
        """
        Forget expired sessions, windows and used ids, and idle rates, at
        most once a second.

        Each of those gets one lifetime for all its entries, and an entry
        is moved to the end whenever it is set, so they are in order of
        expiry: forgetting pops from the front and stops at the first live
        entry, instead of walking every remembered id (up to
        L{Limits.maxRemembered}) each second. Should the clock step back,
        an entry is forgotten late, never early: every lookup checks its
        expiry too.
        """
        if now < self._nextPurge:
            return
        self._nextPurge = now + 1.0
        _dropExpired(self._sessions, lambda s: s.expires, now)
        _dropExpired(self._windows, lambda s: s.expires, now)
        self._forgetUsed(now)
        self._attempts.purge(now)
        self._undeliverable.purge(now)

    def _forgetUsed(self, now: float) -> None:
        """
        Forget the used ids that have expired, oldest first, up to the
        first that has not.
        """
        order = self._usedOrder
        while order:
            share = order[0]
            tid, expires = next(iter(share.ids.items()))
            if expires > now:
                return
            order.popleft()
            domain = share.domain
            domain.order.popleft()
            del share.ids[tid]
            self._usedCount -= 1
            domain.count -= 1
            if not share.ids:
                del self._usedByJID[share.jid]
            if not domain.count:
                del self._usedByDomain[domain.name]

    def _remember(self, attempt: Attempt, now: float) -> None:
        """
        Remember that C{attempt}'s transaction id was used, for
        L{Limits.replayMemory} seconds (an id remembered already keeps its
        place).
        """
        self._forgetUsed(now)
        bare, transactionId = attempt.key
        expires = now + self._limits.replayMemory
        share = self._usedByJID.get(bare)
        if share is None:
            host = attempt.credentials.jid.host
            domain = self._usedByDomain.get(host)
            if domain is None:
                domain = self._usedByDomain[host] = _DomainShare(host)
            share = self._usedByJID[bare] = _Share(bare, domain)
        else:
            known = share.ids.get(transactionId)
            if known is not None:
                # Still live: keep it as it is. Expired but not forgotten
                # (the clock stepped back): live again, forgotten late.
                if known <= now:
                    share.ids[transactionId] = expires
                return
        share.ids[transactionId] = expires
        domain = share.domain
        domain.count += 1
        domain.order.append(share)
        self._usedOrder.append(share)
        self._usedCount += 1

    def _isUsed(self, key: tuple[str, str], now: float) -> bool:
        share = self._usedByJID.get(key[0])
        if share is None:
            return False
        expires = share.ids.get(key[1])
        return expires is not None and expires > now

    def _retryAfter(self, soonest: float, now: float) -> int:
        return retryAfter(soonest, now)

    def decide(self, attempt: Attempt, timeout: float) -> Decision:
        """
        Decide what to do with C{attempt}.

        @param timeout: seconds a confirmation asked now may take (its
            deadline, for C{Retry-After}).
        """
        now = self._clock.seconds()
        self._purge(now)
        credentials = attempt.credentials
        who = credentials.jid
        endToEnd = self._rules.check(attempt.path, who)
        if isinstance(endToEnd, Refuse):
            return endToEnd

        transactionId = credentials.transactionId
        full = who.full()
        safe = attempt.method in SAFE_METHODS
        session = self._sessions.get((full, transactionId))
        if session is not None and session.expires <= now:
            session = None
        inSession = (
            session is not None
            and session.site == attempt.site
            and session.client == attempt.client
        )
        if safe:
            if inSession:
                assert session is not None
                return Pass("session", session.jid)
            window = self._windows.get((full, transactionId, attempt.url))
            if window is not None and window.expires > now and window.client == attempt.client:
                return Pass("window", window.jid)
        if session is not None and not inSession:
            return refusal("elsewhere")

        key = attempt.key
        remembered = self._isUsed(key, now)
        if remembered and not inSession:
            return refusal("used")
        pending = self._pending.get(key)
        if pending is not None:
            other = pending.attempt
            if (other.credentials.jid, other.site, other.client) != (
                who,
                attempt.site,
                attempt.client,
            ):
                return refusal("other-request")
            if safe:
                return Join(key)
            return refusal(
                "pending-unsafe", self._retryAfter(pending.expires, now), method=attempt.method
            )

        refused = self._limited(attempt, remembered, now)
        if refused is not None:
            return refused
        self._attempts.take(attempt.client, now)
        self._pending[key] = _Pending(attempt, now + timeout)
        self._pendingPerJID[key[0]] = self._pendingPerJID.get(key[0], 0) + 1
        return Ask(key, endToEnd)

    def _limited(self, attempt: Attempt, remembered: bool, now: float) -> Refuse | None:
        """
        The limit C{attempt} would break by asking, if any.

        @param remembered: whether its transaction id is remembered
            already (then it needs no new room).
        """
        limits = self._limits
        client = attempt.client
        tokens = self._attempts.available(client, now)
        if tokens < 1.0:
            return refusal("attempts", self._attempts.retryAfter(tokens), client=client)
        domain = attempt.credentials.jid.host
        tokens = self._undeliverable.available((client, domain), now)
        if tokens < 1.0:
            return refusal(
                "undeliverable", self._undeliverable.retryAfter(tokens), client=client, domain=domain
            )
        bare = attempt.key[0]
        if self._pendingPerJID.get(bare, 0) >= limits.pendingPerJID:
            # Counted as they come and go; listed only to refuse.
            forJID = [p.expires for k, p in self._pending.items() if k[0] == bare]
            return refusal(
                "pending-jid",
                self._retryAfter(min(forJID, default=now + 1), now),
                count=len(forJID),
                bare=bare,
            )
        if len(self._pending) >= limits.pendingTotal:
            return refusal(
                "pending-total",
                self._retryAfter(
                    min((p.expires for p in self._pending.values()), default=now + 1), now
                ),
            )
        if remembered:
            return None
        share = self._usedByJID.get(bare)
        if share is not None and len(share.ids) >= limits.rememberedPerJID:
            return refusal("remembered-jid", self._retryAfter(share.oldest(), now), bare=bare)
        domainShare = self._usedByDomain.get(domain)
        if domainShare is not None and domainShare.count >= limits.rememberedPerDomain:
            return refusal(
                "remembered-domain",
                self._retryAfter(domainShare.order[0].oldest(), now),
                domain=domain,
            )
        if self._usedCount + len(self._pending) >= limits.maxRemembered:
            if self._usedOrder:
                soonest = self._usedOrder[0].oldest()
            else:
                soonest = min((p.expires for p in self._pending.values()), default=now + 1)
            return refusal("remembered-total", self._retryAfter(soonest, now))
        return None

    def _unpend(self, key: tuple[str, str]) -> None:
        if self._pending.pop(key, None) is None:
            return
        left = self._pendingPerJID[key[0]] - 1
        if left:
            self._pendingPerJID[key[0]] = left
        else:
            del self._pendingPerJID[key[0]]

    def settle(self, attempt: Attempt, allowed: bool, by: jid.JID | None = None) -> None:
        """
        The user answered the confirmation asked for C{attempt}: the
        transaction id is used; if allowed, a session opens (or starts
        again) and, for C{HEAD} and C{OPTIONS}, a window; if denied, its
        session (if any) ends.

        @param by: who answered, when not the JID of the credentials
            (another resource of it): the session passes report it.
        """
        now = self._clock.seconds()
        self._unpend(attempt.key)
        self._remember(attempt, now)
        credentials = attempt.credentials
        sessionKey = (credentials.jid.full(), credentials.transactionId)
        if not allowed:
            self._sessions.pop(sessionKey, None)
            return
        confirmer = by if by is not None else credentials.jid
        site = self._sites(attempt.site)
        _setLast(
            self._sessions,
            sessionKey,
            _Scope(confirmer, site, attempt.client, now + self._limits.sessionLifetime),
        )
        if attempt.method in WINDOW_METHODS:
            _setLast(
                self._windows,
                (sessionKey[0], sessionKey[1], attempt.url),
                _Scope(confirmer, site, attempt.client, now + self._limits.windowLifetime),
            )

    def abandon(self, attempt: Attempt, undeliverable: bool = False) -> None:
        """
        No answer came for C{attempt}: forget the pending entry without
        using the transaction id.

        @param undeliverable: the user could not be asked (a bounce, an
            error other than C{not-authorized}): counted against the pair
            of client address and domain (L{Limits.undeliverablePerTarget}).
            A timeout or a lost connection is not.
        """
        self._unpend(attempt.key)
        if undeliverable:
            self._undeliverable.take(
                (attempt.client, attempt.credentials.jid.host), self._clock.seconds()
            )

    @property
    def pendingCount(self) -> int:
        """
        How many confirmations are pending.
        """
        return len(self._pending)

    @property
    def rememberedCount(self) -> int:
        """
        How many used transaction ids are remembered.
        """
        return self._usedCount

    @property
    def trackedCount(self) -> int:
        """
        How many rate keys are tracked: client addresses, and pairs of
        client address and domain.
        """
        return len(self._attempts) + len(self._undeliverable)
