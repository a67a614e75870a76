# -*- test-case-name: tests.test_stream_receiving,tests.test_stream_accept -*-
"""
The per-source limit on failed authentications that both receiving sides
(XEP-0225 and XEP-0114) apply: pure logic, the caller passes the time.
"""

from __future__ import annotations

import ipaddress

import attrs
from twisted.internet.address import IPv4Address, IPv6Address

__all__ = ["AuthFailureLimiter", "ipAddressOf", "sourceKey"]


def ipAddressOf(address: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """
    The IP address of a peer or listening address: an IPv6 address without
    its zone, an IPv4-mapped IPv6 address as its IPv4 address.

    @param address: what C{transport.getPeer()} or C{port.getHost()}
        returned.
    @return: the address, or C{None} for an address that is not IP (a UNIX
        socket, a test transport) or whose host is not an IP address.
    """
    if not isinstance(address, (IPv4Address, IPv6Address)):
        return None
    try:
        ip = ipaddress.ip_address(address.host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def sourceKey(address: object) -> str | None:
    """
    The key under which failed authentications from a peer address are
    counted: the IPv4 address, or the C{/64} network of an IPv6 address
    (one host usually holds a whole C{/64}). An IPv4-mapped IPv6 address
    counts as its IPv4 address.

    @param address: what C{transport.getPeer()} returned.
    @return: the key, or C{None} for an address that is not IP (a UNIX
        socket, a test transport): those are not limited.
    """
    ip = ipAddressOf(address)
    if ip is None:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@attrs.define
class AuthFailureLimiter:
    """
    Counts failed authentications per source address, in fixed windows of
    reactor time, and says which sources are blocked: after C{maxFailures}
    failures from one source within C{window} seconds of its first, that
    source is refused until the window ends.

    The receiving side refuses a new connection from a blocked source with
    the C{policy-violation} stream error before the peer sends anything,
    and closes a stream of a blocked source that starts another SASL (or
    handshake) attempt the same way; other sources are not affected. The
    choice of refusing rather than delaying is deliberate: a delayed
    attempt still holds a connection and a negotiation timer, a refusal
    costs one write.

    Memory is bounded: at most C{maxSources} sources are tracked; when a
    new one arrives and the table is full, expired entries are dropped,
    then the oldest. An attacker with more addresses than that can flush
    the table; the per-stream C{maxAuthAttempts} and the router's session
    limit still apply.

    Pure logic: the caller passes the time.

    @ivar maxFailures: failures in one window that block a source.
    @ivar window: the window length in seconds.
    @ivar maxSources: the most sources tracked at once.
    @ivar _entries: source key to C{[windowStart, failures]}, oldest
        window first.
    """

    maxFailures: int = 10
    window: float = 60.0
    maxSources: int = 10000
    _entries: dict[str, list[float]] = attrs.field(factory=dict, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.maxFailures < 1:
            raise ValueError("maxFailures must be at least 1")
        if not self.window > 0:
            raise ValueError("window must be positive")
        if self.maxSources < 1:
            raise ValueError("maxSources must be at least 1")

    def _current(self, key: str, now: float) -> list[float] | None:
        entry = self._entries.get(key)
        if entry is not None and now - entry[0] >= self.window:
            del self._entries[key]
            return None
        return entry

    def blocked(self, key: str | None, now: float) -> bool:
        """
        Whether C{key} failed too often in its current window.
        """
        if key is None:
            return False
        entry = self._current(key, now)
        return entry is not None and entry[1] >= self.maxFailures

    def failed(self, key: str | None, now: float) -> None:
        """
        Count one failed authentication from C{key}.
        """
        if key is None:
            return
        entry = self._current(key, now)
        if entry is None:
            if len(self._entries) >= self.maxSources:
                self._prune(now)
            self._entries[key] = [now, 1]
        else:
            entry[1] += 1

    def retryAfter(self, key: str | None, now: float) -> float:
        """
        Seconds until a blocked C{key} may try again (0 when not blocked).
        """
        if not self.blocked(key, now):
            return 0.0
        assert key is not None
        return self._entries[key][0] + self.window - now

    def refusal(self, key: str | None, now: float, what: str) -> str | None:
        """
        The text of the C{policy-violation} that refuses a blocked C{key}
        ("too many failed C{what} from this address; retry in N
        seconds"), or C{None} when it is not blocked.
        """
        if not self.blocked(key, now):
            return None
        return "too many failed %s from this address; retry in %d seconds" % (
            what,
            int(self.retryAfter(key, now)) + 1,
        )

    def _prune(self, now: float) -> None:
        for key in [k for k, (start, _) in self._entries.items() if now - start >= self.window]:
            del self._entries[key]
        while len(self._entries) >= self.maxSources:
            del self._entries[next(iter(self._entries))]

    def __len__(self) -> int:
        return len(self._entries)
