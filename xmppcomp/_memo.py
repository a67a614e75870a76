# -*- test-case-name: tests.test_jids,tests.test_router_routing,tests.test_httpauth_policy -*-
"""
One bounded memo for the string-keyed caches on hot paths (parsed JIDs,
domains of addresses, site strings). The keys come from the wire or from
HTTP clients, so the memory is bounded twice: by count (when full the dict
is emptied and fills again, cheaper per entry than an LRU's bookkeeping)
and, optionally, by key length (longer keys are computed each time and
never kept). Exceptions are not remembered.
"""

from __future__ import annotations

import functools
from typing import Callable, TypeVar

_K = TypeVar("_K", str, bytes)
_V = TypeVar("_V")
_MISSING = object()


def boundedMemo(
    cache: dict[_K, _V], size: int, maxKeyLength: int | None = None
) -> Callable[[Callable[[_K], _V]], Callable[[_K], _V]]:
    """
    Remember the results of a function of one string (or bytes) in
    C{cache}.

    @param cache: where results are kept (the caller's, so it can be
        inspected).
    @param size: at most this many results.
    @param maxKeyLength: longer keys are not remembered; C{None}: any.
    """

    def decorate(compute: Callable[[_K], _V]) -> Callable[[_K], _V]:
        @functools.wraps(compute)
        def remembered(key: _K) -> _V:
            value = cache.get(key, _MISSING)
            if value is not _MISSING:
                return value  # type: ignore[return-value]
            value = compute(key)
            if maxKeyLength is None or len(key) <= maxKeyLength:
                if len(cache) >= size:
                    cache.clear()
                cache[key] = value
            return value

        return remembered

    return decorate
