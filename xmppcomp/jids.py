# -*- test-case-name: tests.test_jids -*-
"""
Parsing JIDs on hot paths, remembered.

Twisted's L{jid.JID} runs pure-Python stringprep (IDNA nameprep) on every
parse. The same few addresses come by again and again (a server's domain
in every stream header, the agent and confirmer in every XEP-0070 stanza,
the two ends of an XTLS tunnel in every data IQ), and profiles put
stringprep at a sixth to a third of the CPU of the stream negotiation, the
confirmer and XTLS. L{parseJID} keeps recent parses in a bounded dict.

The strings come from the wire, so the cache is bounded twice: by count
(L{CACHE_SIZE}; when full it is emptied and fills again, which costs less
memory per entry than an LRU's bookkeeping) and by length (texts longer
than L{MAX_CACHED_LENGTH} are parsed each time and never kept), so a peer
sending ever-new long addresses costs at most a few MiB. An invalid JID
raises each time: exceptions are not cached. Unlike L{jid.internJID},
nothing grows without bound.
"""

from __future__ import annotations

from twisted.words.protocols.jabber import jid

from xmppcomp._memo import boundedMemo

#: How many parsed JIDs are remembered at most.
CACHE_SIZE = 4096

#: Texts longer than this are parsed but not remembered. RFC 7622 allows
#: 1023 bytes per part; real addresses are far shorter.
MAX_CACHED_LENGTH = 512

_cache: dict[str, jid.JID] = {}


@boundedMemo(_cache, CACHE_SIZE, MAX_CACHED_LENGTH)
def parseJID(text: str) -> jid.JID:
    """
    C{jid.JID(text)}, remembered when C{text} is short.

    @raise jid.InvalidFormat: (or another exception of Twisted's stringprep,
        such as C{UnicodeError}) C{text} is not a valid JID.
    """
    return jid.JID(text)
