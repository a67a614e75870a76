# -*- test-case-name: tests.test_stream_sasl -*-
"""
Three exact speed-ups for scramp, measured on the negotiation benchmark
(cProfile of C{bench/negotiation_load.py}):

 - C{saslprep} of printable ASCII is the identity (RFC 4013: nothing in
   0x20-0x7E is mapped, changed by NFKC, prohibited or right-to-left), so
   it is returned as it is instead of walking scramp's pure-Python
   stringprep tables (twice per client exchange, for the user name and the
   secret; about a tenth of a millisecond each). Anything else goes
   through scramp's C{saslprep} unchanged.

 - The client's SaltedPassword (PBKDF2, 4096 rounds: ~0.5-1 ms) is
   remembered per (hash, secret, salt, iterations), as RFC 5802 section
   5.1 suggests, because a server sends the same salt and iteration count
   each time a component reconnects. Only computations made inside
   L{clientSaltedPasswordCache} (the client's final message) are
   remembered: the server side never is. At most
   L{SALTED_PASSWORDS_KEPT} are kept, in this process's memory, which
   holds the secret itself anyway.

 - A nonce (RFC 5802: printable ASCII but ','; scramp's C{Nonce}) is
   checked with one regular expression instead of a Python generator
   over its characters (about 800 calls per negotiation on the router,
   400 on the component). A nonce the expression refuses goes through
   scramp's own check, which raises its own error.

The change is global to scramp in this process. L{install} is idempotent;
C{mechanisms.py} and C{receiving.py} call it. Delete this module if scramp grows both.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from scramp import core as _scrampCore

#: How many salted passwords the client side remembers.
SALTED_PASSWORDS_KEPT = 16

_inClient: ContextVar[bool] = ContextVar("xmppcomp.scram.client", default=False)
_salted: OrderedDict[tuple[str, bytes, bytes, int], bytes] = OrderedDict()


@contextmanager
def clientSaltedPasswordCache() -> Iterator[None]:
    """
    Within this block, scramp's PBKDF2 results are remembered.
    """
    token = _inClient.set(True)
    try:
        yield
    finally:
        _inClient.reset(token)


def _fastSaslprep(original: Callable[[str], str]) -> Callable[[str], str]:
    def saslprep(source: str) -> str:
        if source.isascii() and source.isprintable():
            return source
        return original(source)

    saslprep.__wrapped__ = original  # type: ignore[attr-defined]
    return saslprep


def _rememberingHi(original: Callable[..., bytes]) -> Callable[..., bytes]:
    def hi(hf: Any, password: Any, salt: Any, iterations: Any) -> bytes:
        if not _inClient.get():
            return original(hf, password, salt, iterations)
        key = (hf().name, bytes(password), bytes(salt), int(iterations))
        salted = _salted.get(key)
        if salted is None:
            salted = _salted[key] = original(hf, password, salt, iterations)
            while len(_salted) > SALTED_PASSWORDS_KEPT:
                _salted.popitem(last=False)
        else:
            _salted.move_to_end(key)
        return salted

    hi.__wrapped__ = original  # type: ignore[attr-defined]
    return hi


#: What RFC 5802 allows in a nonce, and nothing else: at least one
#: character of 0x21-0x7E but ','.
_VALID_NONCE = re.compile(r"[\x21-\x2b\x2d-\x7e]+\Z")


def _fastNonceInit(original: Callable[..., None]) -> Callable[..., None]:
    def __init__(self: Any, nonce: Any) -> None:
        if type(nonce) is str and _VALID_NONCE.match(nonce):
            self.nonce = nonce
            return
        original(self, nonce)

    __init__.__wrapped__ = original  # type: ignore[attr-defined]
    return __init__


def install(core: Any = _scrampCore) -> None:
    """
    Wrap C{core.saslprep}, C{core.hi} and C{core.Nonce.__init__}.
    Idempotent.

    @param core: the module to change; scramp's C{core} unless a test
        passes a stand-in.
    """
    if not hasattr(core.saslprep, "__wrapped__"):
        core.saslprep = _fastSaslprep(core.saslprep)
    if not hasattr(core.hi, "__wrapped__"):
        core.hi = _rememberingHi(core.hi)
    if not hasattr(core.Nonce.__init__, "__wrapped__"):
        core.Nonce.__init__ = _fastNonceInit(core.Nonce.__init__)
