# -*- test-case-name: tests.test_memo,tests.test_jids,tests.test_router_routing -*-
"""
One bounded memo for the string-keyed caches on hot paths (parsed JIDs,
domains of addresses). The keys come from the wire or from HTTP clients,
so the memory is bounded twice: by count (when full the memo is emptied
and fills again, cheaper per entry than an LRU's bookkeeping) and,
optionally, by key length (longer keys are computed each time and never
kept). Exceptions are not remembered.

Each memo belongs to the object that makes it (a routing table, a request
tracker, a confirmer): nothing is kept at module level, so importing
xmppcomp keeps nothing and two owners never see each other's keys.
"""

from __future__ import annotations

from typing import Callable, Generic, Protocol, TypeVar

__all__ = ["BoundedMemo"]

_K = TypeVar("_K", str, bytes)
_V = TypeVar("_V")
_MISSING: object = object()
_D = TypeVar("_D")
_K_contra = TypeVar("_K_contra", contravariant=True)
_V_co = TypeVar("_V_co", covariant=True)


class _Get(Protocol[_K_contra, _V_co]):
    """
    A dict's C{get} with a default: the value of C{key}, or C{default}.
    """

    def __call__(self, key: _K_contra, default: _D, /) -> _V_co | _D: ...


class BoundedMemo(Generic[_K, _V]):
    """
    The results of a function of one string (or bytes), remembered.

    @ivar size: at most this many results are kept.
    @ivar maxKeyLength: longer keys are not remembered; C{None}: any.
    @ivar _compute: the function.
    @ivar _results: key to result.
    """

    __slots__ = ("size", "maxKeyLength", "_compute", "_results", "get")

    def __init__(
        self, compute: Callable[[_K], _V], size: int, maxKeyLength: int | None = None
    ) -> None:
        """
        @param compute: the function whose results are remembered.
        @param size: at most this many results.
        @param maxKeyLength: longer keys are not remembered; C{None}: any.
        """
        self.size = size
        self.maxKeyLength = maxKeyLength
        self._compute: Callable[[_K], _V] = compute
        self._results: dict[_K, _V] = {}
        #: C{get(key, default)}: the remembered result of C{key}, or
        #: C{default} (the dict's own C{get}, for the hottest callers: no
        #: call of ours in between).
        self.get: _Get[_K, _V] = self._results.get

    def __call__(self, key: _K) -> _V:
        """
        C{compute(key)}, remembered when C{key} is short enough.

        @raise Exception: what C{compute} raises (never remembered).
        """
        results = self._results
        found = results.get(key, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        value = self._compute(key)
        if self.maxKeyLength is None or len(key) <= self.maxKeyLength:
            if len(results) >= self.size:
                results.clear()
            results[key] = value
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._results

    def __len__(self) -> int:
        return len(self._results)

    def clear(self) -> None:
        """
        Forget every result.
        """
        self._results.clear()
