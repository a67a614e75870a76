# -*- test-case-name: tests.test_router_admission -*-
"""
Connection admission: caps on the connections a listener holds for peers
that have not proved who they are, per source address and in all, applied
when a connection is accepted.

The router counts each XEP-0225 or XEP-0114 connection from its accept
until its negotiation completes (it authenticated and, for XEP-0225, bound
its names: from then on it is a session, counted by C{max_sessions}) or
until it closes. The HTTP-auth confirmer counts each open connection of its
web listener. A source is an IPv4 address or the C{/64} network of an IPv6
address (L{xmppcomp.stream.limits.sourceKey}).

Decisions, at accept time and before a byte is read or written:

  - a source that holds C{maxPerSource} counted connections already is
    refused;
  - when C{maxTotal} are held in all, the oldest connection of the source
    holding the most is closed to make room, if that source holds at least
    two more than the newcomer's; otherwise the newcomer is refused. So
    the connections end up shared evenly between sources, and a full total
    refuses a newcomer only when every source holds about as many as the
    others: locking everyone out takes about C{maxTotal} distinct sources;
  - a refused connection is closed at once (its transport aborted): the
    wrapped factory builds nothing for it, nothing is read from it or
    written to it. Refusing costs an C{accept()} and a C{close()};
    answering with a stream error would cost a parser, a header and a
    write per connection, spent on the one peer that is flooding.

Refusals and evictions are logged once per burst, not once per connection:
the first refusal of a source (or of the total), or the first eviction, is
a warning; the following ones are counted; when none of that kind came for
L{BURST_QUIET} seconds, one line says how many there were.

The caps are configured by L{xmppcomp.router.config.RouterLimits}
(C{max_negotiating}, C{max_negotiating_per_source}) and
L{xmppcomp.httpauth.HTTPAuthConfig} (C{max_connections},
C{max_connections_per_source}).

L{Admission} is the pure logic (counts, fair eviction, bursts; the caller
passes the time). L{AdmissionGate} shares one L{Admission} between
listeners, and L{AdmissionGate.wrap} makes the thin
L{twisted.protocols.policies}-style wrapping factory for each listener's
factory. L{withBacklog} puts a listen backlog into a server endpoint
string.
"""

from __future__ import annotations

import ipaddress
from typing import Callable, Iterable, Iterator, cast

import attrs
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import (
    IAddress, IDelayedCall, IProtocol, IProtocolFactory, IReactorTime, ITCPTransport, ITransport,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure

from xmppcomp.stream.limits import ipAddressOf, sourceKey
from xmppcomp.logs import Logger

log = Logger()

#: Seconds without a refusal of one kind that end its burst.
BURST_QUIET = 10.0

#: Bursts tracked apart at most; beyond, the refusals of further sources
#: are counted together under L{OTHER_SOURCES}.
MAX_BURSTS = 1000

#: The burst key of refusals because the total is reached.
TOTAL = "(in all)"

#: The burst key of the sources beyond L{MAX_BURSTS}.
OTHER_SOURCES = "(other sources)"

#: The burst key of evictions (connections closed to make room).
EVICTIONS = "(evictions)"


@attrs.define(eq=False, repr=False)
class Ticket:
    """
    One admitted connection, while it counts.

    @ivar source: its source key, or C{None} for a connection that is not
        limited per source (only counted in the total, never evicted).
    @ivar owner: what the caller attached to it (the connection).
    @ivar counted: whether it still counts (not released).
    """

    source: str | None
    owner: object = None
    counted: bool = True

    def __repr__(self) -> str:
        return "<Ticket %s%s>" % (self.source, "" if self.counted else " released")


@attrs.frozen
class Admitted:
    """
    The connection is admitted.

    @ivar ticket: its ticket: L{Admission.release} it when it no longer
        counts.
    @ivar evicted: the ticket of a connection to close to make room for it
        (already released), or C{None}.
    @ivar burstStarted: whether that eviction starts a burst of evictions
        (log it; the following ones are counted, see L{Admission.ended}).
    """

    ticket: Ticket
    evicted: Ticket | None = None
    burstStarted: bool = False


@attrs.frozen
class Refused:
    """
    The connection is refused.

    @ivar source: its source key, or C{None}.
    @ivar reason: C{"source"} (its source holds C{maxPerSource}) or
        C{"total"} (C{maxTotal} are held, and no source holds enough more
        than this one to give one up).
    @ivar held: the connections its source holds (C{"source"}) or all hold
        (C{"total"}).
    @ivar limit: the cap that was reached.
    @ivar burstStarted: whether this refusal starts a burst (log it; the
        following ones of the burst are counted, see L{Admission.ended}).
    """

    source: str | None
    reason: str
    held: int
    limit: int
    burstStarted: bool


@attrs.define
class Burst:
    """
    Refusals of one kind that followed one another.

    @ivar key: the source key, L{TOTAL}, L{OTHER_SOURCES} or L{EVICTIONS}.
    @ivar started: the time of the first.
    @ivar last: the time of the last.
    @ivar refused: how many (refused or evicted connections).
    """

    key: str
    started: float
    last: float
    refused: int = 1


class Admission:
    """
    Counts connections per source and in all, decides which new ones are
    admitted (see the module's docstring), and groups refusals in bursts.

    Pure logic: every method takes the time when it needs it; nothing here
    touches a transport.

    @ivar maxTotal: connections counted in all at most.
    @ivar maxPerSource: connections counted per source at most.
    @ivar burstQuiet: seconds without a refusal that end a burst.
    @ivar total: connections counted now.
    @ivar admitted: connections admitted so far.
    @ivar refused: connections refused so far.
    @ivar evicted: connections evicted so far.
    """

    def __init__(
        self,
        maxTotal: int,
        maxPerSource: int,
        burstQuiet: float = BURST_QUIET,
        maxBursts: int = MAX_BURSTS,
    ) -> None:
        """
        @raise ValueError: a cap below 1, or a C{burstQuiet} that is not
            positive.
        """
        if maxTotal < 1 or maxPerSource < 1 or maxBursts < 1:
            raise ValueError("maxTotal, maxPerSource and maxBursts must be at least 1")
        if not burstQuiet > 0:
            raise ValueError("burstQuiet must be positive")
        self.maxTotal = maxTotal
        self.maxPerSource = maxPerSource
        self.burstQuiet = burstQuiet
        self._maxBursts = maxBursts
        self.total = 0
        self.admitted = 0
        self.refused = 0
        self.evicted = 0
        #: Source key to its counted tickets, oldest first.
        self._bySource: dict[str, dict[Ticket, None]] = {}
        #: Count to the sources holding that many, for the fair eviction.
        self._sizes: dict[int, dict[str, None]] = {}
        self._largest = 0
        self._bursts: dict[str, Burst] = {}
        self._over: list[Burst] = []

    def count(self, source: str | None) -> int:
        """
        Connections counted for C{source} now (0 for C{None}).
        """
        if source is None:
            return 0
        tickets = self._bySource.get(source)
        return len(tickets) if tickets is not None else 0

    def admit(self, source: str | None, now: float) -> Admitted | Refused:
        """
        Decide on a new connection from C{source}.

        @param source: its source key, or C{None} for a connection not
            limited per source (a trusted proxy, a UNIX socket).
        @param now: the time, for the bursts of refusals.
        """
        held = self.count(source)
        if source is not None and held >= self.maxPerSource:
            return self._refuse(source, "source", held, self.maxPerSource, now)
        evicted = None
        evictionStarted = False
        if self.total >= self.maxTotal:
            if self._largest < held + 2:
                return self._refuse(source, "total", self.total, self.maxTotal, now)
            victim = next(iter(self._sizes[self._largest]))
            evicted = next(iter(self._bySource[victim]))
            self.release(evicted)
            self.evicted += 1
            evictionStarted = self._count(EVICTIONS, now)
        ticket = Ticket(source)
        if source is not None:
            tickets = self._bySource.get(source)
            if tickets is None:
                tickets = self._bySource[source] = {}
            tickets[ticket] = None
            self._resized(source, held, held + 1)
        self.total += 1
        self.admitted += 1
        return Admitted(ticket, evicted, evicted is not None and evictionStarted)

    def release(self, ticket: Ticket) -> None:
        """
        C{ticket}'s connection no longer counts: it authenticated, or it
        closed. Releasing a ticket again does nothing.
        """
        if not ticket.counted:
            return
        ticket.counted = False
        self.total -= 1
        source = ticket.source
        if source is None:
            return
        tickets = self._bySource[source]
        held = len(tickets)
        del tickets[ticket]
        if not tickets:
            del self._bySource[source]
        self._resized(source, held, held - 1)

    def _resized(self, source: str, before: int, after: int) -> None:
        if before:
            sources = self._sizes[before]
            del sources[source]
            if not sources:
                del self._sizes[before]
                if self._largest == before:
                    # Counts move by one: the next largest is one less.
                    self._largest = after
        if after:
            self._sizes.setdefault(after, {})[source] = None
            if after > self._largest:
                self._largest = after

    def _refuse(self, source: str | None, reason: str, held: int, limit: int, now: float) -> Refused:
        self.refused += 1
        key = source if reason == "source" and source is not None else TOTAL
        if key not in self._bursts and len(self._bursts) >= self._maxBursts:
            key = OTHER_SOURCES
        return Refused(source, reason, held, limit, self._count(key, now))

    def _count(self, key: str, now: float) -> bool:
        """
        Count one event in the burst of C{key}.

        @return: whether it starts the burst.
        """
        burst = self._bursts.get(key)
        if burst is not None and now - burst.last >= self.burstQuiet:
            # Over, though nobody collected it yet: a new burst starts.
            self._over.append(self._bursts.pop(key))
            burst = None
        if burst is None:
            self._bursts[key] = Burst(key, now, now)
            return True
        burst.refused += 1
        burst.last = now
        return False

    def ended(self, now: float) -> list[Burst]:
        """
        Forget and return the bursts without a refusal for C{burstQuiet}
        seconds.
        """
        over, self._over = self._over, []
        for burst in [b for b in self._bursts.values() if now - b.last >= self.burstQuiet]:
            del self._bursts[burst.key]
            over.append(burst)
        return over

    def nextBurstEnd(self) -> float | None:
        """
        When the next burst ends if no refusal extends it, or C{None} when
        there is none.
        """
        if self._over:
            return float("-inf")
        if not self._bursts:
            return None
        return min(burst.last for burst in self._bursts.values()) + self.burstQuiet

    def sources(self) -> Iterator[tuple[str, int]]:
        """
        The sources counted now, with their counts.
        """
        for source, tickets in self._bySource.items():
            yield source, len(tickets)


def withBacklog(description: str, backlog: int) -> str:
    """
    The server endpoint string C{description} with C{backlog=} set to
    C{backlog}, for the endpoint types whose parsers take one (C{tcp},
    C{tcp6}, C{ssl}, C{unix}). A string that gives its own C{backlog=}, or
    of another type (C{systemd:}, whose socket was made by someone else),
    is returned as it is.

    @param backlog: the most connections the kernel queues, established
        and not yet accepted (it caps it at C{net.core.somaxconn}).
    """
    parts = splitEndpoint(description)
    if not parts or parts[0].lower() not in ("tcp", "tcp6", "ssl", "unix"):
        return description
    if any(part.split("=", 1)[0] == "backlog" for part in parts[1:] if "=" in part):
        return description
    return "%s:backlog=%d" % (description, backlog)


def splitEndpoint(description: str) -> list[str]:
    """
    The colon-separated parts of an endpoint string, as Twisted's parser
    reads them: C{\\:} does not separate, and backslash escapes are undone.
    """
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for character in description:
        if escaped:
            current.append(character)
            escaped = False
        elif character == "\\":
            escaped = True
        elif character == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(character)
    parts.append("".join(current))
    return parts


# The Twisted adapter.


class _Refusal(Protocol):
    """
    What a refused connection gets: its transport is aborted as soon as it
    is made, before anything is read or written. (Returning C{None} from
    C{buildProtocol} would be cheaper over plain TCP, but a TLS listener's
    factory wraps whatever this factory returns and cannot take C{None}.)
    """

    def connectionMade(self) -> None:
        cast(ITCPTransport, self.transport).abortConnection()


class AdmittedProtocol(ProtocolWrapper):
    """
    The wrapper of an admitted connection: releases its ticket when it
    closes.

    It wraps the protocol side only: the wrapped protocol gets the real
    transport, so what it writes (every routed stanza) goes straight to
    it, and the transport's interfaces (C{startTLS}, the TLS connection
    behind it) are the transport's own; only what arrives passes through
    here, one call per read.

    @ivar ticket: the connection's L{Ticket}.
    """

    def __init__(self, factory: "AdmissionFactory", wrappedProtocol: IProtocol, ticket: Ticket) -> None:
        super().__init__(factory, wrappedProtocol)
        self.ticket = ticket
        self._gate = factory.gate

    def makeConnection(self, transport: ITransport) -> None:
        """
        Register with the factory and connect the wrapped protocol to
        C{transport} itself.
        """
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)
        self.wrappedProtocol.makeConnection(transport)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._gate.release(self.ticket, self.wrappedProtocol)
        super().connectionLost(reason)


class AdmissionFactory(WrappingFactory[AdmittedProtocol]):
    """
    Wraps a listener's factory: each accepted connection is put to the
    gate's L{Admission} before the wrapped factory builds anything.

    @ivar gate: the L{AdmissionGate}.
    """

    protocol = AdmittedProtocol

    def __init__(self, wrappedFactory: IProtocolFactory, gate: "AdmissionGate") -> None:
        super().__init__(wrappedFactory)
        self.gate = gate

    # Twisted types WrappingFactory.buildProtocol as giving only wrappers;
    # a refusal is a plain Protocol, and IProtocolFactory allows None.
    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:  # type: ignore[override]
        decision = self.gate.admit(addr)
        if isinstance(decision, Refused):
            return _Refusal()
        try:
            inner = self.wrappedFactory.buildProtocol(addr)
        except BaseException:
            self.gate.admission.release(decision.ticket)
            raise
        if inner is None:
            self.gate.admission.release(decision.ticket)
            return None
        wrapper = AdmittedProtocol(self, inner, decision.ticket)
        decision.ticket.owner = wrapper
        self.gate.track(inner, decision.ticket)
        return wrapper


class AdmissionGate:
    """
    One L{Admission} shared by listeners, with the source of each
    connection, the log of refusals (once per burst) and the timer that
    ends bursts.

    @ivar admission: the L{Admission}.
    @ivar what: what is counted, for the log (C{"connections not
        negotiated yet"}).
    """

    def __init__(
        self,
        admission: Admission,
        reactor: IReactorTime,
        what: str,
        sourceOf: Callable[[IAddress | None], str | None] | None = None,
    ) -> None:
        """
        @param sourceOf: the source key of a peer address, or C{None} for
            a peer not limited per source; by default
            L{xmppcomp.stream.limits.sourceKey}.
        """
        if sourceOf is None:
            sourceOf = sourceKey
        self.admission = admission
        self.what = what
        self._reactor = reactor
        self._sourceOf = sourceOf
        self._tickets: dict[IProtocol, Ticket] = {}
        self._timer: IDelayedCall | None = None

    def wrap(self, factory: IProtocolFactory) -> AdmissionFactory:
        """
        The wrapping factory to listen with instead of C{factory}.
        """
        return AdmissionFactory(factory, self)

    def admit(self, address: IAddress | None) -> Admitted | Refused:
        """
        Decide on a connection from C{address}: log a refusal that starts
        a burst, close the connection evicted for it.
        """
        source = self._sourceOf(address)
        decision = self.admission.admit(source, self._reactor.seconds())
        if isinstance(decision, Refused):
            if decision.burstStarted:
                self._logRefusal(decision)
            return decision
        evicted = decision.evicted
        if evicted is not None and isinstance(evicted.owner, AdmittedProtocol):
            self._tickets.pop(evicted.owner.wrappedProtocol, None)
            if decision.burstStarted:
                log.warn(
                    "{total} {what} are held in all (the limit): closing the oldest "
                    "of the {count} from {source} to make room for one from "
                    "{newcomer}; further evictions are counted and logged when "
                    "they stop",
                    count=self.admission.count(evicted.source) + 1,
                    what=self.what,
                    source=evicted.source,
                    newcomer=source or "a source not limited per address",
                    total=self.admission.maxTotal,
                )
                self._schedule()
            if evicted.owner.transport is not None:
                cast(ITCPTransport, evicted.owner.transport).abortConnection()
        return decision

    def track(self, protocol: IProtocol, ticket: Ticket) -> None:
        """
        Remember C{ticket} as C{protocol}'s (the wrapped factory's
        protocol), for L{authenticated}.
        """
        self._tickets[protocol] = ticket

    def authenticated(self, protocol: IProtocol) -> None:
        """
        C{protocol} (built by a wrapped factory) authenticated: it no
        longer counts. Fit for an C{xmlstream} bootstrap.
        """
        ticket = self._tickets.pop(protocol, None)
        if ticket is not None:
            self.admission.release(ticket)

    def release(self, ticket: Ticket, protocol: IProtocol) -> None:
        """
        C{protocol}'s connection closed.
        """
        self._tickets.pop(protocol, None)
        self.admission.release(ticket)

    def _logRefusal(self, refused: Refused) -> None:
        if refused.reason == "source":
            log.warn(
                "refusing connections from {source}: it holds {held} {what} "
                "(the limit per source); further refusals are counted and "
                "logged when they stop",
                source=refused.source,
                held=refused.held,
                what=self.what,
            )
        else:
            log.warn(
                "refusing connections: {held} {what} are held in all (the "
                "limit), none of them by a source holding two more than "
                "{source}; further refusals are counted and logged when they stop",
                held=refused.held,
                what=self.what,
                source=refused.source or "the newcomer",
            )
        self._schedule()

    def _schedule(self) -> None:
        if self._timer is not None and self._timer.active():
            return
        when = self.admission.nextBurstEnd()
        if when is None:
            self._timer = None
            return
        self._timer = self._reactor.callLater(max(0.0, when - self._reactor.seconds()), self._endBursts)

    def _endBursts(self) -> None:
        self._timer = None
        self._logEnded(self.admission.ended(self._reactor.seconds()))
        self._schedule()

    def _logEnded(self, bursts: list[Burst]) -> None:
        for burst in bursts:
            if burst.key == EVICTIONS:
                log.warn(
                    "closed {refused} of the oldest {what} in {seconds:.1f} s to make "
                    "room for sources holding fewer (the limit in all)",
                    refused=burst.refused,
                    seconds=burst.last - burst.started,
                    what=self.what,
                )
                continue
            log.warn(
                "refused {refused} connections from {source} in {seconds:.1f} s "
                "(over the limit of {what})",
                refused=burst.refused,
                source=burst.key,
                seconds=burst.last - burst.started,
                what=self.what,
            )

    def stop(self) -> None:
        """
        Log the bursts still going on and stop the timer (the listeners
        stopped).
        """
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._logEnded(self.admission.ended(float("inf")))



def fileLimitWarning(needed: int, what: str, addresses: Iterable[object]) -> str | None:
    """
    A warning when this process may open fewer files than C{needed}
    (C{RLIMIT_NOFILE}, its soft limit; reading it changes nothing) and a
    listener is reachable from other machines, or C{None}. At that limit
    C{accept()} fails for everyone, whatever the caps say.

    @param needed: the connections the configured caps allow at once.
    @param what: the caps, named for the operator.
    @param addresses: the listening addresses (C{port.getHost()}); when
        all are loopback (or not IP), nobody else can run the files out.
    """
    import resource

    if not any(_reachable(address) for address in addresses):
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # A few dozen for listeners, logs, files and outgoing connections.
    if soft == resource.RLIM_INFINITY or needed + 64 <= soft:
        return None
    return (
        "%s allow %d connections at once, but this process may open only %d "
        "files (ulimit -n; hard limit %s): raise it (LimitNOFILE= under "
        "systemd) or lower those limits, or new connections will fail for "
        "everyone once the files run out"
        % (what, needed, soft, "unlimited" if hard == resource.RLIM_INFINITY else hard)
    )


def _reachable(address: object) -> bool:
    """
    Whether a listening address is an IP address other than loopback
    (C{0.0.0.0} and C{::} included).
    """
    if not isinstance(address, (IPv4Address, IPv6Address)):
        return False
    ip = ipAddressOf(address)
    # A host that is not an IP address may be reachable.
    return ip is None or not ip.is_loopback


def sourceKeyExcept(networks: Iterable[str]) -> Callable[[IAddress | None], str | None]:
    """
    A C{sourceOf} for L{AdmissionGate}: L{sourceKey
    <xmppcomp.stream.limits.sourceKey>}, except that peers in
    C{networks} (trusted proxies, which carry many clients) get C{None}:
    they are limited only in the total.

    @param networks: addresses or networks (C{"127.0.0.0/8"}, C{"::1"}).
    @raise ValueError: one of them is neither.
    """
    exempt = [ipaddress.ip_network(network, strict=False) for network in networks]

    def sourceOf(address: IAddress | None) -> str | None:
        key = sourceKey(address)
        if key is None or not exempt:
            return key
        ip = ipAddressOf(address)
        assert ip is not None  # it has a key
        if any(ip.version == network.version and ip in network for network in exempt):
            return None
        return key

    return sourceOf
