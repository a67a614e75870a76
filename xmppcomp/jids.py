# -*- test-case-name: tests.test_jids -*-
"""
Parsing JIDs on hot paths, remembered by the object that parses them.

Twisted's L{jid.JID} runs pure-Python stringprep (IDNA nameprep) on every
parse. The same few addresses come by again and again (a server's domain
in every stream header, the agent and confirmer in every XEP-0070 stanza,
the two ends of an XTLS tunnel in every data IQ), and profiles put
stringprep at a sixth to a third of the CPU of the stream negotiation, the
confirmer and XTLS. A L{JIDCache} keeps recent parses in a bounded dict;
each object on such a path (a request tracker, an XTLS handler, the
confirmer's asker, a negotiation policy) owns one, or shares the one it
was given. L{parseJID} parses without remembering.

The strings come from the wire, so a cache is bounded twice: by count
(L{CACHE_SIZE}; when full it is emptied and fills again, which costs less
memory per entry than an LRU's bookkeeping) and by length (texts longer
than L{MAX_CACHED_LENGTH} are parsed each time and never kept), so a peer
sending ever-new long addresses costs at most a few MiB. An invalid JID
raises each time: exceptions are not cached. Unlike L{jid.internJID},
nothing grows without bound, and nothing is kept at module level.
"""

from __future__ import annotations

from twisted.words.protocols.jabber import jid

from xmppcomp._memo import BoundedMemo

__all__ = ["CACHE_SIZE", "MAX_CACHED_LENGTH", "JIDCache", "parseJID"]

#: How many parsed JIDs a L{JIDCache} remembers at most.
CACHE_SIZE = 4096

#: Texts longer than this are parsed but not remembered. RFC 7622 allows
#: 1023 bytes per part; real addresses are far shorter.
MAX_CACHED_LENGTH = 512


def parseJID(text: str) -> jid.JID:
    """
    C{jid.JID(text)}, not remembered (see L{JIDCache} for the hot paths).

    @raise jid.InvalidFormat: (or another exception of Twisted's stringprep,
        such as C{UnicodeError}) C{text} is not a valid JID.
    """
    return jid.JID(text)


class JIDCache(BoundedMemo[str, jid.JID]):
    """
    Parsed JIDs, remembered: calling it with a text is C{jid.JID(text)},
    the very same object the next time while the text is short
    (L{MAX_CACHED_LENGTH}) and the cache has not been emptied
    (L{CACHE_SIZE}).
    """

    __slots__ = ()

    def __init__(self, size: int = CACHE_SIZE, maxLength: int = MAX_CACHED_LENGTH) -> None:
        """
        @param size: at most this many parses are kept.
        @param maxLength: longer texts are parsed each time.
        """
        super().__init__(jid.JID, size, maxLength)
