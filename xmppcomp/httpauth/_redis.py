# -*- test-case-name: tests.test_httpauth_store -*-
"""
L{RedisStore}: the confirmer's state on a Redis server that several
confirmers share (issue 19), with the rules of L{Ledger} unchanged.

Round trips: one confirmation that is asked and answered costs B{2} Redis
round trips, each one C{EVALSHA} of a Lua script that runs atomically on
the server: L{RedisStore.decide} (session and window passes, replay and
pending checks, every limit, and taking the attempt token and writing the
pending entry) and L{RedisStore.settle} (remembering the transaction id,
opening the session and window). A request that passes in a session or a
window, or is refused, costs 1. An answer that reached another instance
costs that instance 1 more (C{PUBLISH}). After Redis lost its script
cache (a restart), the first call of each script on a connection sends the
script itself (C{EVAL}): still one round trip; a C{NOSCRIPT} reply in the
middle of a connection costs one more, once.

Single use: a transaction id is asked for by at most one request at a time
(the pending entry, written by the same script that checks it), and an
allow is granted only if the pending entry the asker wrote is still its own
when the answer is recorded (a random token in the entry): there is no
read-then-write between instances.

Time: the scripts compare expiry times with the store's clock (passed in;
the instances' clocks must agree to well within a second, as NTP keeps
them), and every key also gets a Redis TTL of the same lifetime so that
Redis forgets what expired. The key layout is in
C{docs/protocols/xep0070.md}, section "Shared state on Redis".

Failing closed: every command has a timeout (L{RedisStore} C{timeout}, 1 s
by default, on the clock passed in); past it, or with Redis unreachable,
refused at start-up, or without the epoch it had, an operation fails with
L{StoreUnavailable} (503 with C{Retry-After}) and grants nothing. A timed
out connection is dropped; both connections reconnect by themselves
(L{ClientService}, with backoff). One log line says when an outage starts
and one when it ends.

Durability: at each connection the store checks that C{maxmemory-policy}
is C{noeviction} (refusing to serve otherwise), and reads the epoch key,
which the first instance writes at first use. A Redis that lost its data
has no epoch (or another one): every instance that knew the old one fails
closed until an operator acts (see the docs).

txredisapi imports the global reactor: it is imported only when a store
connects, never with this module. Its public protocol classes
(C{RedisProtocol}, C{SubscriberProtocol}) are used over this store's own
endpoint and L{ClientService}, on the reactor passed in; TLS is Twisted's
(L{wrapClientTLS} with L{optionsForClientTLS}: the certificate is checked
for the server name).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import attrs
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import CancelledError, Deferred, TimeoutError, fail, gatherResults, inlineCallbacks, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import jid
from zope.interface import implementer

from xmppcomp.admission import splitEndpoint
from xmppcomp.httpauth._errors import StoreUnavailable
from xmppcomp.httpauth._policy import (
    WINDOW_METHODS,
    SAFE_METHODS,
    AccessRules,
    Ask,
    Attempt,
    Decision,
    Join,
    Limits,
    Pass,
    Refuse,
    bucketRetryAfter,
    refusal,
    retryAfter,
)
from xmppcomp.httpauth._store import IConfirmationStore, RelayReceiver, newInstanceId
from xmppcomp.logs import Logger

if TYPE_CHECKING:
    from collections.abc import Generator

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_TIMEOUT",
    "PENDING_GRACE",
    "RedisStore",
    "parseRedisEndpoint",
]

log = Logger()

#: The default key prefix.
DEFAULT_PREFIX = "xmppcomp:"

#: Default seconds each Redis command may take.
DEFAULT_TIMEOUT = 1.0

#: Default seconds a connection attempt may take.
DEFAULT_CONNECT_TIMEOUT = 5.0

#: Default longest delay, in seconds, between two connection attempts.
DEFAULT_RECONNECT_MAX_DELAY = 5.0

#: Seconds a pending entry outlives its deadline in Redis, so that the
#: owner's own timeout (which abandons it) comes first.
PENDING_GRACE = 5.0

#: The one policy that never evicts keys.
NOEVICTION = "noeviction"


def parseRedisEndpoint(value: str) -> tuple[str, int]:
    """
    The host and port of a Redis endpoint string,
    C{tcp:host=HOST:port=PORT} (Twisted's client endpoint syntax, a colon
    in the host escaped as C{\\:}).

    @raise ValueError: any other form, with what to write instead.
    """
    example = 'write it as "tcp:host=127.0.0.1:port=6379"'
    if not isinstance(value, str) or not value.startswith("tcp:"):
        raise ValueError(
            f"{value!r} is not a Redis endpoint: only tcp:host=...:port=... is supported "
            f"(TLS is set apart, with tls = true); {example}"
        )
    fields = splitEndpoint(value[len("tcp:"):])
    given: dict[str, str] = {}
    for field in fields:
        name, equals, text = field.partition("=")
        if not equals:
            raise ValueError(f"{value!r}: {field!r} has no name; {example}")
        if name not in ("host", "port"):
            raise ValueError(
                f"{value!r}: unknown parameter {name!r}; a Redis endpoint takes host and port "
                f"only; {example}"
            )
        if name in given:
            raise ValueError(f"{value!r}: {name} is given twice; {example}")
        given[name] = text
    missing = [name for name in ("host", "port") if not given.get(name)]
    if missing:
        raise ValueError(f"{value!r}: {missing[0]} is missing; {example}")
    port = given["port"]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r}: the port must be a number from 1 to 65535; {example}")
    return given["host"], int(port)


# The scripts. Each first checks the epoch (KEYS[last] holds it; ARGV[1]
# is the one this store knows) and answers {'epoch'} when it differs.

_COMMON = """
local now = tonumber(ARGV[2])
local function live(key)
  local raw = redis.call('GET', key)
  if not raw then return nil end
  local entry = cjson.decode(raw)
  if entry.e <= now then return nil end
  return entry
end
local function extend(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end
local function tokens(key, capacity, window)
  local bucket = redis.call('HMGET', key, 't', 's')
  if not bucket[1] or window <= 0 then return capacity end
  local elapsed = now - tonumber(bucket[2])
  if elapsed <= 0 then return tonumber(bucket[1]) end
  return math.min(capacity, tonumber(bucket[1]) + elapsed * capacity / window)
end
local function take(key, available, window)
  local left = available - 1
  if left < 0 then left = 0 end
  redis.call('HSET', key, 't', tostring(left), 's', ARGV[2])
  redis.call('PEXPIRE', key, math.max(1, math.ceil(window * 1000)))
end
local function soonest(key)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return first[2] or ''
end
"""

# KEYS: session, window, pending, pending per JID, pending in all, used per
# JID, used per domain, used in all, attempts bucket, undeliverable bucket,
# epoch. ARGV: epoch, now, safe, site, client, who, transaction id, member
# (bare JID NUL transaction id), deadline, pending expiry, owner, token,
# pendingPerJID, pendingTotal, rememberedPerJID, rememberedPerDomain,
# maxRemembered, attemptsPerClient, attemptWindow, undeliverablePerTarget,
# undeliverableWindow.
_DECIDE = """
local epoch = redis.call('GET', KEYS[11])
if epoch ~= ARGV[1] then return {'epoch', epoch or ''} end
""" + _COMMON + """
local safe = ARGV[3] == '1'
local site, client, who, tid = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local session = live(KEYS[1])
local inSession = session ~= nil and session.s == site and session.c == client
if safe then
  if inSession then return {'pass', 'session', session.j} end
  local window = live(KEYS[2])
  if window ~= nil and window.c == client then return {'pass', 'window', window.j} end
end
if session ~= nil and not inSession then return {'refuse', 'elsewhere'} end
local used = redis.call('ZSCORE', KEYS[6], tid)
local remembered = used and tonumber(used) > now
if remembered and not inSession then return {'refuse', 'used'} end
local pending = live(KEYS[3])
if pending ~= nil then
  if pending.w ~= who or pending.s ~= site or pending.c ~= client then
    return {'refuse', 'other-request'}
  end
  if not safe then return {'refuse', 'pending-unsafe', tostring(pending.d)} end
  if pending.o == ARGV[11] then return {'join'} end
  return {'refuse', 'pending-other-instance', tostring(pending.d)}
end
local attemptWindow = tonumber(ARGV[19])
local available = tokens(KEYS[9], tonumber(ARGV[18]), attemptWindow)
if available < 1 then return {'refuse', 'attempts', tostring(available)} end
local undeliverable = tokens(KEYS[10], tonumber(ARGV[20]), tonumber(ARGV[21]))
if undeliverable < 1 then return {'refuse', 'undeliverable', tostring(undeliverable)} end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
local forJID = redis.call('ZCARD', KEYS[4])
if forJID >= tonumber(ARGV[13]) then
  return {'refuse', 'pending-jid', soonest(KEYS[4]), tostring(forJID)}
end
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
local total = redis.call('ZCARD', KEYS[5])
if total >= tonumber(ARGV[14]) then
  return {'refuse', 'pending-total', soonest(KEYS[5])}
end
if not remembered then
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
  if redis.call('ZCARD', KEYS[6]) >= tonumber(ARGV[15]) then
    return {'refuse', 'remembered-jid', soonest(KEYS[6])}
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now)
  if redis.call('ZCARD', KEYS[7]) >= tonumber(ARGV[16]) then
    return {'refuse', 'remembered-domain', soonest(KEYS[7])}
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now)
  local all = redis.call('ZCARD', KEYS[8])
  if all + total >= tonumber(ARGV[17]) then
    if all > 0 then return {'refuse', 'remembered-total', soonest(KEYS[8])} end
    return {'refuse', 'remembered-total', soonest(KEYS[5]), 'pending'}
  end
end
take(KEYS[9], available, attemptWindow)
local expires = tonumber(ARGV[10])
local ttl = math.max(1, math.ceil((expires - now) * 1000))
redis.call('SET', KEYS[3], cjson.encode({w = who, s = site, c = client, d = tonumber(ARGV[9]),
  e = expires, o = ARGV[11], k = ARGV[12]}), 'PX', ttl)
redis.call('ZADD', KEYS[4], ARGV[10], tid)
extend(KEYS[4], ttl)
redis.call('ZADD', KEYS[5], ARGV[10], ARGV[8])
extend(KEYS[5], ttl)
return {'ask'}
"""

# KEYS: pending, pending per JID, pending in all, used per JID, used per
# domain, used in all, session, window, epoch. ARGV: epoch, now, token,
# transaction id, member, allowed, replay expiry, replay ms, confirmer,
# site, client, session expiry, session ms, window?, window expiry, window ms.
_SETTLE = """
local epoch = redis.call('GET', KEYS[9])
if epoch ~= ARGV[1] then return {'epoch', epoch or ''} end
""" + _COMMON + """
local raw = redis.call('GET', KEYS[1])
local ours = raw ~= false and cjson.decode(raw).k == ARGV[3]
if ours then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[4])
  redis.call('ZREM', KEYS[3], ARGV[5])
end
local known = redis.call('ZSCORE', KEYS[4], ARGV[4])
if not (known and tonumber(known) > now) then
  redis.call('ZADD', KEYS[4], ARGV[7], ARGV[4])
  redis.call('ZADD', KEYS[5], ARGV[7], ARGV[5])
  redis.call('ZADD', KEYS[6], ARGV[7], ARGV[5])
end
local replayMs = tonumber(ARGV[8])
extend(KEYS[4], replayMs)
extend(KEYS[5], replayMs)
extend(KEYS[6], replayMs)
if ARGV[6] ~= '1' then
  redis.call('DEL', KEYS[7])
  return {'ok'}
end
if not ours then return {'lost'} end
redis.call('SET', KEYS[7], cjson.encode({j = ARGV[9], s = ARGV[10], c = ARGV[11],
  e = tonumber(ARGV[12])}), 'PX', ARGV[13])
if ARGV[14] == '1' then
  redis.call('SET', KEYS[8], cjson.encode({j = ARGV[9], s = ARGV[10], c = ARGV[11],
    e = tonumber(ARGV[15])}), 'PX', ARGV[16])
end
return {'ok'}
"""

# KEYS: pending, pending per JID, pending in all, undeliverable bucket,
# epoch. ARGV: epoch, now, token, transaction id, member, undeliverable?,
# capacity, window.
_ABANDON = """
local epoch = redis.call('GET', KEYS[5])
if epoch ~= ARGV[1] then return {'epoch', epoch or ''} end
""" + _COMMON + """
local raw = redis.call('GET', KEYS[1])
if raw ~= false and cjson.decode(raw).k == ARGV[3] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[4])
  redis.call('ZREM', KEYS[3], ARGV[5])
end
if ARGV[6] == '1' then
  local window = tonumber(ARGV[8])
  take(KEYS[4], tokens(KEYS[4], tonumber(ARGV[7]), window), window)
end
return {'ok'}
"""


#: Timeouts (of C{timeout} seconds each) a command may stay unanswered
#: before the connection is taken as hung and dropped.
HUNG_TIMEOUTS = 5


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _num(value: float) -> str:
    return repr(float(value))


class StoreRefused(Exception):
    """
    The Redis server is not fit to keep the confirmer's state (it may evict
    keys, or refused the password): the store refuses to serve.
    """


@attrs.frozen
class _Keys:
    """
    The key names of one prefix (see the docs' key layout).
    """

    prefix: str

    @property
    def epoch(self) -> str:
        return self.prefix + "epoch"

    def channel(self, instance: str) -> str:
        return self.prefix + "i:" + instance

    def session(self, full: str, tid: str) -> str:
        return f"{self.prefix}s:{full}\0{tid}"

    def window(self, full: str, tid: str, url: str) -> str:
        return f"{self.prefix}w:{full}\0{tid}\0{url}"

    def pending(self, bare: str, tid: str) -> str:
        return f"{self.prefix}p:{bare}\0{tid}"

    def pendingPerJID(self, bare: str) -> str:
        return f"{self.prefix}pj:{bare}"

    @property
    def pendingAll(self) -> str:
        return self.prefix + "pa"

    def usedPerJID(self, bare: str) -> str:
        return f"{self.prefix}uj:{bare}"

    def usedPerDomain(self, domain: str) -> str:
        return f"{self.prefix}ud:{domain}"

    @property
    def usedAll(self) -> str:
        return self.prefix + "ua"

    def attempts(self, client: str) -> str:
        return f"{self.prefix}ra:{client}"

    def undeliverable(self, client: str, domain: str) -> str:
        return f"{self.prefix}ru:{client}\0{domain}"


class _ConnectionFactory(Factory):
    """
    Builds txredisapi protocols for a L{ClientService}: replies as text,
    numbers left as text (the scripts' answers are parsed here). Each
    protocol, once connected, is handed to C{prepare}, which checks it and
    closes it if it is unfit (not C{ClientService}'s C{prepareConnection}:
    a connection it rejects while still open leaves its state machine
    without a transition when that connection closes).
    """

    def __init__(self, build: Callable[[], Protocol], prepare: Callable[[Any], object]) -> None:
        self._build = build
        self._prepare = prepare

    def buildProtocol(self, addr: object) -> Protocol:
        protocol = self._build()
        protocol.factory = self
        cast(Any, protocol).whenConnected().addCallback(self._prepare)
        return protocol


def _commandProtocol() -> Protocol:
    from txredisapi import RedisProtocol  # type: ignore[import-untyped]

    class _Commands(RedisProtocol):
        lostReason: Failure | None = None

        def connectionLost(self, reason: Failure) -> None:
            # txredisapi fails the commands in flight with "Lost connection"
            # only: keep why (a TLS certificate refused, say) for the log.
            self.lostReason = reason
            super().connectionLost(reason)

    return cast(Protocol, _Commands(convertNumbers=False))


def _whyLost(protocol: Any, error: BaseException) -> str:
    """
    C{error}, a command's failure on C{protocol}, described; for a lost
    connection, why it was lost (kept by the protocol) when that says more.
    """
    reason = protocol.lostReason
    if isinstance(reason, Failure) and not reason.check(ConnectionDone):
        return _describe(reason)
    return _describe(error)


def _subscriberProtocol(receive: Callable[[str], None]) -> Protocol:
    from txredisapi import SubscriberProtocol

    class _Subscriber(SubscriberProtocol):
        lostReason: Failure | None = None

        def connectionLost(self, reason: Failure) -> None:
            self.lostReason = reason
            super().connectionLost(reason)

        def messageReceived(self, pattern: object, channel: object, message: object) -> None:
            if isinstance(message, bytes):
                message = message.decode("utf-8", "replace")
            receive(str(message))

    return cast(Protocol, _Subscriber(convertNumbers=False))


def _isResponseError(error: BaseException) -> bool:
    """
    Whether C{error} is Redis's error reply (not a lost connection).
    """
    from txredisapi import ResponseError

    return isinstance(error, ResponseError)


def _describe(reason: Failure | BaseException) -> str:
    value = reason.value if isinstance(reason, Failure) else reason
    text = str(value) or type(value).__name__
    return text


@implementer(IConfirmationStore)
class RedisStore:
    """
    The confirmer's state on Redis, shared by every confirmer with the same
    server and key prefix (and the same access rules and limits).

    @ivar instanceId: see L{IConfirmationStore.instanceId}.
    @ivar where: C{host:port}, for messages.
    @ivar epoch: the epoch this store knows, or C{None} before it has
        connected once.
    """

    def __init__(
        self,
        reactor: Any,
        host: str,
        port: int,
        rules: AccessRules,
        limits: Limits | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        password: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        connectTimeout: float = DEFAULT_CONNECT_TIMEOUT,
        reconnectMaxDelay: float = DEFAULT_RECONNECT_MAX_DELAY,
        tls: IOpenSSLClientConnectionCreator | None = None,
        clock: IReactorTime | None = None,
        instanceId: str | None = None,
    ) -> None:
        """
        @param reactor: connects (an L{IReactorTCP} and L{IReactorTime}).
        @param host: the Redis server's host name or address.
        @param port: its port.
        @param rules: the access rules (checked here, before Redis).
        @param limits: the limits and lifetimes (L{Limits}() by default).
        @param prefix: prepended to every key and channel name.
        @param password: Redis C{AUTH} password, or C{None}.
        @param timeout: seconds each command may take; past it the
            operation fails closed and the connection is dropped.
        @param connectTimeout: seconds a connection attempt may take.
        @param reconnectMaxDelay: the longest wait between two connection
            attempts.
        @param tls: TLS client options (e.g. from L{optionsForClientTLS},
            which checks the certificate), or C{None} for plain TCP.
        @param clock: the time source of timeouts and expiry times; the
            reactor by default.
        @param instanceId: this instance's id; a random one by default.
        """
        if timeout <= 0:
            raise ValueError("the timeout must be above 0 seconds")
        self._reactor = reactor
        self._clock: IReactorTime = reactor if clock is None else clock
        self._rules = rules
        self._limits = Limits() if limits is None else limits
        self._keys = _Keys(prefix)
        self._password = password
        self._timeout = timeout
        self.instanceId = newInstanceId() if instanceId is None else instanceId
        self.where = f"{host}:{port}"
        self.epoch: str | None = None
        endpoint: IStreamClientEndpoint = HostnameEndpoint(
            reactor, host, port, timeout=max(1, math.ceil(connectTimeout))
        )
        if tls is not None:
            endpoint = wrapClientTLS(tls, endpoint)
        policy = backoffPolicy(initialDelay=0.1, maxDelay=reconnectMaxDelay)
        self._commands = ClientService(
            endpoint,
            _ConnectionFactory(_commandProtocol, self._prepareCommands),
            retryPolicy=policy,
            clock=self._clock,
        )
        self._subscriptions = ClientService(
            endpoint,
            _ConnectionFactory(lambda: _subscriberProtocol(self._received), self._prepareSubscriber),
            retryPolicy=policy,
            clock=self._clock,
        )
        self._connection: Any = None
        self._subscribed: Any = None
        self._receiver: RelayReceiver | None = None
        self._lost: Callable[[StoreUnavailable], None] | None = None
        self._tokens: dict[tuple[str, str], str] = {}
        self._healthy = True
        self._cause: str | None = None
        self._reason = f"not connected to Redis at {self.where} yet"
        self._stopping = False
        self._reconnectMaxDelay = reconnectMaxDelay
        self._closing: dict[int, Any] = {}
        self._starting: list[Deferred[None]] = []

    # Connections.

    def start(self) -> Deferred[None]:
        """
        Connect both connections (commands, and this instance's channel).

        @return: fires once both are ready, or fails with
            L{StoreUnavailable} saying why the first attempt failed (both
            go on trying).
        """
        self._stopping = False
        started: Deferred[None] = Deferred()
        self._starting.append(started)
        self._commands.startService()
        self._subscriptions.startService()
        for service in (self._commands, self._subscriptions):
            service.whenConnected(failAfterFailures=1).addErrback(self._startFailed)
        return started

    def _startFailed(self, reason: Failure) -> None:
        if not reason.check(CancelledError):
            self._down(f"Redis at {self.where}: {_describe(reason)}", "unreachable")
            self._started(StoreUnavailable(f"the Redis store at {self.where}: {_describe(reason)}"))

    def _started(self, error: Exception | None = None) -> None:
        """
        Fire what L{start} returned: with C{None} once both connections are
        ready, or with C{error}; in a turn of its own (not from inside a
        transition of a L{ClientService}, which whoever waits may stop).
        """
        if error is None and (self._connection is None or self._subscribed is None):
            return
        waiting, self._starting = self._starting, []
        for d in waiting:
            result: object = Failure(error) if error is not None else None
            self._reactor.callLater(0, d.callback, result)

    def stop(self) -> Deferred[None]:
        """
        Close both connections and stop reconnecting.
        """
        self._stopping = True
        for call in self._closing.values():
            if call.active():
                call.cancel()
        self._closing.clear()
        return gatherResults(
            [self._commands.stopService(), self._subscriptions.stopService()], consumeErrors=True
        ).addCallback(lambda _: None)

    def _timed(
        self, d: Deferred[Any], protocol: Any = None, late: Callable[[Any], object] | None = None
    ) -> Deferred[Any]:
        """
        C{d}'s result, or a L{TimeoutError} once the store's C{timeout}
        seconds have passed on its clock without it.

        The command itself is not cancelled: its reply, when it comes, is
        read and dropped, so one slow reply costs the request that waited
        for it and nothing else (cancelling it would put the connection's
        replies out of step, and dropping the connection would fail every
        command in flight). The timeout is decided one reactor turn late:
        a loaded reactor runs its due timers before it reads the replies
        already received. A Redis that leaves a command unanswered for
        L{HUNG_TIMEOUTS} timeouts is taken as hung: C{protocol}'s connection
        is dropped (and made again by itself).

        @param late: called with the reply of a command that came after
            its timeout (to undo what it did), if any.
        """
        result: Deferred[Any] = Deferred()

        def settled(outcome: object) -> None:
            if timer.active():
                timer.cancel()
            if not result.called:
                result.callback(outcome)
            elif late is not None and not isinstance(outcome, Failure):
                late(outcome)

        def due() -> None:
            self._clock.callLater(0, expired)

        def expired() -> None:
            if result.called:
                return
            result.errback(TimeoutError(f"no answer from Redis within {self._timeout:g} s"))
            self._clock.callLater(self._timeout * (HUNG_TIMEOUTS - 1), hung)

        def hung() -> None:
            if not d.called and protocol is not None and protocol.transport is not None:
                log.info("Redis at {where} left a command unanswered for {seconds:g} s: reconnecting",
                         where=self.where, seconds=self._timeout * HUNG_TIMEOUTS)
                protocol.transport.abortConnection()

        timer = self._clock.callLater(self._timeout, due)
        d.addBoth(settled)
        return result

    @inlineCallbacks
    def _prepareCommands(self, protocol: Any) -> Generator[Deferred[Any], Any, None]:
        """
        A new command connection: authenticate, check the eviction policy
        and the epoch. It never fails (L{ClientService} cannot take back a
        connection it was refused while that connection is still open):
        a connection that fails a check is closed instead, at once after an
        error, and after C{reconnectMaxDelay} seconds when Redis is not fit
        (so that an evicting Redis is checked again at that pace, not in a
        loop).
        """
        try:
            if self._password is not None:
                yield self._timed(protocol.auth(self._password), protocol)
            try:
                reply = yield self._timed(
                    protocol.execute_command("CONFIG", "GET", "maxmemory-policy"), protocol
                )
            except Exception as e:
                if not _isResponseError(e):
                    raise
                raise StoreRefused(
                    f"Redis at {self.where} refused CONFIG GET maxmemory-policy ({_describe(e)}): "
                    "CONFIG is disabled or not allowed for this user, so xmppcomp cannot check that "
                    "Redis never evicts its keys (evicted keys would reopen replays); allow it "
                    "(ACL: +config|get) and set maxmemory-policy noeviction"
                ) from e
            policy = reply[1] if isinstance(reply, list) and len(reply) == 2 else None
            if policy != NOEVICTION:
                raise StoreRefused(
                    f"Redis at {self.where} has maxmemory-policy {policy!r}: it may evict keys, "
                    "which would forget used transaction ids and reopen replays; set "
                    f"maxmemory-policy {NOEVICTION} (redis.conf, or CONFIG SET maxmemory-policy "
                    f"{NOEVICTION})"
                )
            current = yield self._timed(protocol.get(self._keys.epoch), protocol)
            if current is None and self.epoch is None:
                current = yield self._newEpoch(protocol)
        except StoreRefused as e:
            self._down(str(e), "refused")
            self._closeLater(protocol, self._reconnectMaxDelay)
            self._started(StoreUnavailable(str(e)))
            return
        except Exception as e:
            self._down(f"Redis at {self.where}: {_whyLost(protocol, e)}", "unreachable")
            self._closeLater(protocol, 0)
            self._started(StoreUnavailable(self._reason))
            return
        if self.epoch is None:
            self.epoch = current
        self._connection = protocol
        protocol.whenDisconnected().addCallback(lambda _: self._commandsLost(protocol))
        if current != self.epoch:
            self._down(self._epochLost(current), "epoch")
        self._started()

    def _closeLater(self, protocol: Any, delay: float) -> None:
        """
        Close C{protocol}'s connection after C{delay} seconds (or when the
        store stops).
        """

        def close() -> None:
            self._closing.pop(id(protocol), None)
            transport = protocol.transport
            if transport is not None:
                transport.abortConnection()

        if self._stopping:
            return
        if delay <= 0:
            close()
            return
        self._closing[id(protocol)] = self._clock.callLater(delay, close)

    @inlineCallbacks
    def _newEpoch(self, protocol: Any) -> Generator[Deferred[Any], Any, str | None]:
        """
        Write a new epoch unless another instance just did; the epoch in
        Redis now.
        """
        key = self._keys.epoch
        fresh = secrets.token_hex(8)
        yield self._timed(protocol.set(key, fresh, only_if_not_exists=True), protocol)
        current: str | None = yield self._timed(protocol.get(key), protocol)
        if current == fresh:
            log.warn(
                "No epoch at {key} in Redis at {where}: this Redis is new to xmppcomp (or "
                "lost its data before any running confirmer saw it); wrote epoch {epoch}",
                key=key,
                where=self.where,
                epoch=fresh,
            )
        return current

    def _epochLost(self, current: str | None) -> str:
        key = self._keys.epoch
        what = "is missing" if current is None else f"changed to {current!r}"
        return (
            f"the epoch key {key!r} in Redis at {self.where} {what}: Redis lost its data "
            "(a restart without persistence, FLUSHALL, eviction), so used transaction ids "
            "may have been forgotten; failing closed until an operator acts: when replays of "
            "the transaction ids confirmed in the last "
            f"{self._limits.replayMemory:g} s are acceptable (or that long has passed), run "
            f"redis-cli SET '{key}' '{self.epoch}', or restart every confirmer"
        )

    def _commandsLost(self, protocol: object) -> None:
        if self._connection is protocol:
            self._connection = None
            if not self._stopping:
                self._down(f"the connection to Redis at {self.where} was lost", "unreachable")

    @inlineCallbacks
    def _prepareSubscriber(self, protocol: Any) -> Generator[Deferred[Any], Any, None]:
        """
        A new subscriber connection: authenticate, subscribe to this
        instance's channel.
        """
        try:
            if self._password is not None:
                yield self._timed(protocol.auth(self._password), protocol)
            yield self._timed(protocol.subscribe(self._keys.channel(self.instanceId)), protocol)
        except Exception as e:
            self._down(f"Redis at {self.where}: {_whyLost(protocol, e)}", "unreachable")
            self._closeLater(protocol, 0)
            self._started(StoreUnavailable(self._reason))
            return
        self._subscribed = protocol
        protocol.whenDisconnected().addCallback(lambda _: self._subscriberLost(protocol))
        self._started()

    def _subscriberLost(self, protocol: object) -> None:
        if self._subscribed is protocol:
            self._subscribed = None
            if not self._stopping:
                why = f"the subscription to Redis at {self.where} was lost"
                self._down(why, "unreachable")
                if self._lost is not None:
                    self._lost(StoreUnavailable(
                        f"the confirmer's state is unavailable ({why}): an answer relayed by another "
                        "instance may have been lost, and no answer could be recorded"))

    def _down(self, why: str, cause: str) -> None:
        """
        Fail closed with C{why}; log it once per outage, and again only if
        its C{cause} changes (C{"unreachable"}, C{"refused"}, C{"epoch"}).
        """
        self._reason = why
        if self._healthy or cause != self._cause:
            self._healthy = False
            self._cause = cause
            log.error(
                "The confirmer's Redis store is unavailable: {why}. Answering 503 and granting "
                "nothing until it is back; reconnecting by itself.",
                why=why,
            )

    def _up(self) -> None:
        """
        A command succeeded: the outage, if any, is over.
        """
        self._cause = None
        if not self._healthy:
            self._healthy = True
            log.info("The confirmer's Redis store at {where} is available again", where=self.where)

    def _unavailable(self) -> Failure:
        return Failure(StoreUnavailable(f"the confirmer's state is unavailable: {self._reason}"))

    def _run(
        self, script: str, keys: list[str], args: list[str], late: Callable[[Any], object] | None = None
    ) -> Deferred[list[str]]:
        """
        Run C{script} (EVALSHA, or EVAL when Redis does not know it yet)
        within the timeout; fail with L{StoreUnavailable}. C{late}: see
        L{_timed}.
        """
        protocol = self._connection
        if protocol is None or self._subscribed is None:
            return fail(self._unavailable())
        try:
            d: Deferred[Any] = protocol.eval(script, keys, args)
        except Exception:
            d = fail()
        d = self._timed(d, protocol, late)

        def ran(reply: object) -> list[str]:
            if not isinstance(reply, list) or not reply:
                raise StoreUnavailable(f"Redis at {self.where} answered {reply!r}")
            answer = [str(part) for part in reply]
            if answer[0] == "epoch":
                self._down(self._epochLost(answer[1] or None), "epoch")
                raise StoreUnavailable(f"the confirmer's state is unavailable: {self._reason}")
            self._up()
            return answer

        def failed(reason: Failure) -> Failure:
            if reason.check(StoreUnavailable):
                return reason
            self._down(f"Redis at {self.where}: {_describe(reason)}", "unreachable")
            return self._unavailable()

        return d.addCallbacks(ran, failed)

    # IConfirmationStore.

    def ping(self) -> Deferred[bool]:
        """
        Whether the store can serve now: both connections passed their
        checks, no lost epoch is pending an operator, and a C{PING} is
        answered within the timeout.
        """
        protocol = self._connection
        if protocol is None or self._subscribed is None or self._cause == "epoch":
            return succeed(False)
        try:
            d: Deferred[Any] = protocol.ping()
        except Exception:
            return succeed(False)
        return self._timed(d, protocol).addCallbacks(lambda _: True, lambda _: False)

    def decide(self, attempt: Attempt, timeout: float) -> Deferred[Decision]:
        who = attempt.credentials.jid
        checked = self._rules.check(attempt.path, who)
        if isinstance(checked, Refuse):
            return succeed(checked)
        now = self._clock.seconds()
        limits = self._limits
        keys = self._keys
        bare, tid = attempt.key
        full = who.full()
        domain = who.host
        token = secrets.token_hex(16)
        deadline = now + timeout
        args = [
            self.epoch or "",
            _num(now),
            "1" if attempt.method in SAFE_METHODS else "0",
            attempt.site,
            attempt.client,
            full,
            tid,
            f"{bare}\0{tid}",
            _num(deadline),
            _num(deadline + PENDING_GRACE),
            self.instanceId,
            token,
            str(limits.pendingPerJID),
            str(limits.pendingTotal),
            str(limits.rememberedPerJID),
            str(limits.rememberedPerDomain),
            str(limits.maxRemembered),
            str(limits.attemptsPerClient),
            _num(limits.attemptWindow),
            str(limits.undeliverablePerTarget),
            _num(limits.undeliverableWindow),
        ]
        d = self._run(
            _DECIDE,
            [
                keys.session(full, tid),
                keys.window(full, tid, attempt.url),
                keys.pending(bare, tid),
                keys.pendingPerJID(bare),
                keys.pendingAll,
                keys.usedPerJID(bare),
                keys.usedPerDomain(domain),
                keys.usedAll,
                keys.attempts(attempt.client),
                keys.undeliverable(attempt.client, domain),
                keys.epoch,
            ],
            args,
            lambda reply: self._lateDecision(reply, attempt, token),
        )
        return d.addCallback(self._decision, attempt, now, token)

    def _lateDecision(self, reply: object, attempt: Attempt, token: str) -> None:
        """
        A decision whose reply came after its request failed closed: a
        pending entry it made would count against the user's limits until
        it expires, with nobody asked; take it back.
        """
        if isinstance(reply, list) and reply and str(reply[0]) == "ask":
            self._tokens[attempt.key] = token
            self.abandon(attempt).addErrback(lambda _: None)

    def _decision(self, answer: list[str], attempt: Attempt, now: float, token: str) -> Decision:
        kind = answer[0]
        key = attempt.key
        if kind == "ask":
            self._tokens[key] = token
            return Ask(key, self._rules.check(attempt.path, attempt.credentials.jid) is True)
        if kind == "join":
            return Join(key)
        if kind == "pass":
            return Pass(answer[1], jid.JID(answer[2]))
        if kind != "refuse":
            raise StoreUnavailable(f"Redis at {self.where} answered {answer!r}")
        code = answer[1]
        limits = self._limits
        client = attempt.client
        domain = attempt.credentials.jid.host
        if code in ("elsewhere", "used", "other-request"):
            return refusal(code)
        if code == "pending-unsafe":
            return refusal(code, retryAfter(float(answer[2]), now), method=attempt.method)
        if code == "pending-other-instance":
            return refusal(code, retryAfter(float(answer[2]), now))
        if code == "attempts":
            return refusal(
                code,
                bucketRetryAfter(float(answer[2]), limits.attemptsPerClient, limits.attemptWindow),
                client=client,
            )
        if code == "undeliverable":
            return refusal(
                code,
                bucketRetryAfter(
                    float(answer[2]), limits.undeliverablePerTarget, limits.undeliverableWindow
                ),
                client=client,
                domain=domain,
            )
        # The soonest expiry: a used id's, or a pending entry's (its deadline
        # plus the grace); none (a limit of 0): in a second, as the ledger.
        if not answer[2]:
            soonest = now + 1
        elif code in ("pending-jid", "pending-total") or answer[3:] == ["pending"]:
            soonest = float(answer[2]) - PENDING_GRACE
        else:
            soonest = float(answer[2])
        after = retryAfter(soonest, now)
        if code == "pending-jid":
            return refusal(code, after, count=int(answer[3]), bare=key[0])
        if code in ("pending-total", "remembered-total"):
            return refusal(code, after)
        if code == "remembered-jid":
            return refusal(code, after, bare=key[0])
        if code == "remembered-domain":
            return refusal(code, after, domain=domain)
        raise StoreUnavailable(f"Redis at {self.where} answered {answer!r}")

    def settle(self, attempt: Attempt, allowed: bool, by: jid.JID | None = None) -> Deferred[None]:
        now = self._clock.seconds()
        limits = self._limits
        keys = self._keys
        bare, tid = attempt.key
        credentials = attempt.credentials
        full = credentials.jid.full()
        confirmer = (by if by is not None else credentials.jid).full()
        token = self._tokens.pop(attempt.key, "")
        args = [
            self.epoch or "",
            _num(now),
            token,
            tid,
            f"{bare}\0{tid}",
            "1" if allowed else "0",
            _num(now + limits.replayMemory),
            str(_ms(limits.replayMemory)),
            confirmer,
            attempt.site,
            attempt.client,
            _num(now + limits.sessionLifetime),
            str(_ms(limits.sessionLifetime)),
            "1" if attempt.method in WINDOW_METHODS else "0",
            _num(now + limits.windowLifetime),
            str(_ms(limits.windowLifetime)),
        ]
        d = self._run(
            _SETTLE,
            [
                keys.pending(bare, tid),
                keys.pendingPerJID(bare),
                keys.pendingAll,
                keys.usedPerJID(bare),
                keys.usedPerDomain(credentials.jid.host),
                keys.usedAll,
                keys.session(full, tid),
                keys.window(full, tid, attempt.url),
                keys.epoch,
            ],
            args,
        )

        def settled(answer: list[str]) -> None:
            if answer[0] == "lost":
                log.warn(
                    "The pending confirmation of {jid} ({tid!r}) was gone from Redis when its "
                    "answer came (expired, or taken over): nothing is granted",
                    jid=full,
                    tid=tid,
                )
                raise StoreUnavailable(
                    "the confirmation expired in the shared store before its answer was "
                    "recorded; nothing was granted, try again"
                )

        return d.addCallback(settled)

    def abandon(self, attempt: Attempt, undeliverable: bool = False) -> Deferred[None]:
        now = self._clock.seconds()
        limits = self._limits
        keys = self._keys
        bare, tid = attempt.key
        token = self._tokens.pop(attempt.key, "")
        domain = attempt.credentials.jid.host
        d = self._run(
            _ABANDON,
            [
                keys.pending(bare, tid),
                keys.pendingPerJID(bare),
                keys.pendingAll,
                keys.undeliverable(attempt.client, domain),
                keys.epoch,
            ],
            [
                self.epoch or "",
                _num(now),
                token,
                tid,
                f"{bare}\0{tid}",
                "1" if undeliverable else "0",
                str(limits.undeliverablePerTarget),
                _num(limits.undeliverableWindow),
            ],
        )
        return d.addCallback(lambda _: None)

    def relay(self, owner: str, stanza: str) -> Deferred[bool]:
        """
        Publish C{stanza} on C{owner}'s channel. While the store is still
        making its first connections (a confirmer that just started: its
        component may be bound, and given answers for the other instances,
        before Redis is ready), wait for them, at most C{timeout} seconds.
        """
        protocol = self._connection
        if protocol is None and self._starting and not self._stopping:
            ready: Deferred[None] = Deferred()
            self._starting.append(ready)
            self._timed(ready)
            return ready.addCallbacks(lambda _: self.relay(owner, stanza), lambda _: self._unavailable())
        if protocol is None:
            return fail(self._unavailable())
        try:
            d: Deferred[Any] = protocol.publish(self._keys.channel(owner), stanza)
        except Exception:
            d = fail()
        d = self._timed(d, protocol)

        def failed(reason: Failure) -> Failure:
            self._down(f"Redis at {self.where}: {_describe(reason)}", "unreachable")
            return self._unavailable()

        return d.addCallbacks(lambda receivers: int(receivers) > 0, failed)

    def listen(self, receiver: RelayReceiver, lost: Callable[[StoreUnavailable], None] | None = None) -> None:
        self._receiver = receiver
        self._lost = lost

    def _received(self, message: str) -> None:
        receiver = self._receiver
        if receiver is None:
            log.info("An answer was relayed to this instance, which has no requester; dropped")
            return
        try:
            receiver(message)
        except Exception:
            log.failure("handling a relayed XEP-0070 answer failed")

