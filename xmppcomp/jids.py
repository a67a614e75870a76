# -*- test-case-name: tests.test_jids,tests.test_names -*-
"""
Names: the one rule for domains and hostnames, and parsing JIDs on hot
paths, remembered by the object that parses them.

L{normalizeDomain} decides what a domain or hostname is and gives its one
normal form (IDNA ASCII form, lowercase, no trailing dot, at most 253
octets); L{domainOf} gives the normal domain of a JID. Every part of the
package that takes a name calls them: SASL identities, XEP-0114 and
XEP-0225 hostnames, stream header addresses, the routing table,
authorization, configuration and credentials. IDNA is the C{idna} package
(IDNA 2008 with UTS 46 mapping), which Twisted installs (through
C{hyperlink}); the standard library's C{encodings.idna} implements only
IDNA 2003.

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

import re

import idna
from twisted.words.protocols.jabber import jid

from xmppcomp._memo import BoundedMemo

__all__ = [
    "CACHE_SIZE",
    "MAX_CACHED_LENGTH",
    "MAX_DOMAIN_LENGTH",
    "MAX_LABEL_LENGTH",
    "InvalidDomain",
    "JIDCache",
    "domainOf",
    "domainOrNone",
    "normalizeDomain",
    "parseJID",
    "plainDomain",
]

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


# Names: the one rule for domains and hostnames.

#: The longest domain, in octets of its ASCII (A-label) form without a
#: trailing dot (RFC 1035 section 2.3.4 and RFC 5890, less the root label).
MAX_DOMAIN_LENGTH = 253

#: The longest label, in octets of its ASCII (A-label) form (RFC 1035).
MAX_LABEL_LENGTH = 63

#: Longer texts are refused before any IDNA work (RFC 7622 section 3.2:
#: a domainpart is at most 1023 bytes).
_MAX_TEXT = 1023

#: Texts longer than this are shortened in messages (which may go back to
#: a peer).
_SHOWN = 80

#: The ACE prefix of an IDNA A-label (RFC 5890 section 2.3.2.1).
_ACE_PREFIX = "xn--"

#: A plain ASCII hostname, an optional trailing dot included: letters,
#: digits and inner hyphens, labels of 1 to 63 characters. Its normal form
#: is itself lowercased, without the dot (unless it has an A-label or is an
#: IP address, which L{plainDomain} checks).
_PLAIN = re.compile(
    r"\A[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?\Z"
)

#: One LDH label (RFC 1123 section 2.1, RFC 5890's NR-LDH and A-labels).
_LDH_LABEL = re.compile(r"\A[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")


def _shown(text: object) -> str:
    """
    C{repr(text)}, shortened when C{text} is a long string.
    """
    if isinstance(text, str) and len(text) > _SHOWN:
        return f"{text[:_SHOWN // 2]!r}... ({len(text)} characters)"
    return repr(text)


class InvalidDomain(ValueError):
    """
    A text is not a domain (see L{normalizeDomain}).

    @ivar value: the text.
    @ivar reason: why it is not a domain, e.g. C{"it has an empty label"}
        (long texts are shortened in it and in the message).
    """

    def __init__(self, value: object, reason: str) -> None:
        super().__init__(f"{_shown(value)} is not a domain: {reason}")
        self.value = value
        self.reason = reason


def plainDomain(value: str) -> str | None:
    """
    The fast path of L{normalizeDomain}: the normal form of C{value} if it
    is a plain ASCII hostname (letters, digits and inner hyphens, labels of
    1 to 63, at most 253 octets, an optional trailing dot; no label
    starting with C{xn--}, the last label not all digits), else L{None}
    and the caller takes L{normalizeDomain}. No stringprep, no IDNA: the
    normal form of such a name is its lowercase without the dot.

    Where this answers, L{normalizeDomain} gives the same answer.
    """
    if len(value) > MAX_DOMAIN_LENGTH + 1 or _PLAIN.match(value) is None:
        return None
    lowered = value.lower()
    if lowered[-1] == ".":
        lowered = lowered[:-1]
    elif len(lowered) > MAX_DOMAIN_LENGTH:
        return None
    if _ACE_PREFIX in lowered or (
        lowered[-1].isdigit() and lowered.rpartition(".")[2].isdigit()
    ):
        return None
    return lowered


def _asciiLabel(label: str, value: str) -> str:
    """
    One label of C{value}, checked, in its ASCII form.

    @param label: one label of C{value}, UTS 46 mapped (so lowercase).
    @raise InvalidDomain: it is not an LDH label, an A-label or a U-label.
    """
    if not label:
        raise InvalidDomain(value, "it has an empty label")
    if label.isascii():
        if _LDH_LABEL.match(label) is None:
            if len(label) > MAX_LABEL_LENGTH:
                raise InvalidDomain(
                    value, f"the label {_shown(label)} is longer than {MAX_LABEL_LENGTH} octets"
                )
            raise InvalidDomain(
                value,
                f"the label {_shown(label)} has a character other than letters, digits "
                "and inner hyphens",
            )
        if not label.startswith(_ACE_PREFIX):
            return label
        # An A-label must decode to a valid U-label that encodes back to it.
        try:
            valid = idna.alabel(idna.ulabel(label)).decode("ascii") == label
        except (idna.IDNAError, UnicodeError):
            valid = False
        if not valid:
            raise InvalidDomain(value, f"{_shown(label)} is not a valid A-label")
        return label
    try:
        ascii = idna.alabel(label).decode("ascii")
    except (idna.IDNAError, UnicodeError) as e:
        raise InvalidDomain(value, f"the label {_shown(label)} is not valid IDNA ({e})") from e
    if len(ascii) > MAX_LABEL_LENGTH:
        raise InvalidDomain(
            value,
            f"the label {_shown(label)} is longer than {MAX_LABEL_LENGTH} octets in ASCII form",
        )
    return ascii


def normalizeDomain(value: str) -> str:
    """
    THE rule for domains and hostnames in xmppcomp: check that C{value}
    is one and return its normal form, the form in which every part of
    the package stores and compares names (SASL identities, XEP-0114 and
    XEP-0225 hostnames, stream header addresses, routing, authorization,
    configuration, credentials).

    The normal form is the name's IDNA ASCII form: every label an LDH
    label or an A-label, lowercase, no trailing dot.

      - Case: ignored; the result is lowercase (C{"Example.COM"} is
        C{"example.com"}).
      - Trailing dot: one is removed (RFC 7622 section 3.2), so
        C{"example.com."} is C{"example.com"}; C{"example.com.."} has an
        empty label and is refused.
      - IDNA: a label with non-ASCII characters is mapped (UTS 46,
        non-transitional, STD3 rules: case folded, width and compatibility
        forms mapped) and converted to its A-label (IDNA 2008, RFC 5891):
        C{"B\\u00fccher.example"} is C{"xn--bcher-kva.example"}. A label
        that starts with C{xn--} must be a valid A-label (it decodes to a
        valid U-label that encodes back to it), else the name is refused.
        So the Unicode and the ASCII spellings of a name are one name.
      - Characters: ASCII labels are letters, digits and hyphens, not
        starting or ending with a hyphen (RFC 1123 section 2.1). Spaces,
        C{"@"}, C{"/"}, C{"_"}, C{":"}, brackets are refused: a JID with a
        localpart or resourcepart is not a domain.
      - Empty labels: refused (C{"a..b"}, C{".a"}, C{""}, C{"."}).
      - Length: at most 63 octets per label and 253 octets for the name,
        counted in the ASCII form without the trailing dot (RFC 1035
        section 2.3.4). This is stricter than RFC 7622's 1023 bytes for a
        domainpart: every name here is a DNS hostname.
      - IP literals: refused. C{"[::1]"} has characters no hostname has,
        and a name whose last label is all digits (C{"127.0.0.1"}) is an
        IPv4 address or no hostname (RFC 1123 section 2.1, RFC 3696
        section 2). XEP-0114 and XEP-0225 name components, their
        identities and the router by DNS hostnames.

    Plain ASCII names take a fast path (L{plainDomain}) with no IDNA code.
    Nothing is remembered here: the callers on hot paths own their memos
    (a L{xmppcomp.router.routing.RoutingTable} remembers L{domainOf}).

    @param value: the name as received or configured.
    @return: the normal form, e.g. C{"comp.example.com"}.
    @raise InvalidDomain: (a L{ValueError}) C{value} is not a domain; the
        message names it and says why.
    """
    if not isinstance(value, str):
        raise InvalidDomain(value, f"a domain is a str, not {type(value).__name__}")
    plain = plainDomain(value)
    if plain is not None:
        return plain
    if len(value) > _MAX_TEXT:
        raise InvalidDomain(
            value, f"it is longer than {MAX_DOMAIN_LENGTH} octets in ASCII form"
        )
    if "@" in value or "/" in value:
        raise InvalidDomain(
            value,
            "it must be a domain, without '@' or '/' (a JID with a localpart or "
            "resourcepart is not a domain)",
        )
    name = value
    if not name.isascii():
        try:
            # Case folding, width and compatibility mappings; refuses
            # what STD3 forbids (spaces, "@", "/", ...).
            name = idna.uts46_remap(name, std3_rules=True, transitional=False)
        except (idna.IDNAError, UnicodeError) as e:
            raise InvalidDomain(value, str(e)) from e
    else:
        name = name.lower()
    name = name.removesuffix(".")
    if not name:
        raise InvalidDomain(value, "it is empty")
    labels = [_asciiLabel(label, value) for label in name.split(".")]
    if labels[-1].isdigit():
        raise InvalidDomain(value, "it is an IP address or ends with an all-digit label")
    result = ".".join(labels)
    if len(result) > MAX_DOMAIN_LENGTH:
        raise InvalidDomain(
            value, f"it is longer than {MAX_DOMAIN_LENGTH} octets in ASCII form"
        )
    return result


def domainOrNone(value: str) -> str | None:
    """
    L{normalizeDomain}, with L{None} for a text that is not a domain.
    """
    plain = plainDomain(value)
    if plain is not None:
        return plain
    try:
        return normalizeDomain(value)
    except InvalidDomain:
        return None


def domainOf(address: str) -> str | None:
    """
    The normal form (L{normalizeDomain}) of the domainpart of a JID, or
    L{None} if it has none that is a domain.

    The domainpart is what lies between the first C{"@"} (if any) and the
    first C{"/"} (if any) (RFC 7622 section 3.1). The localpart and the
    resourcepart are not checked. Nothing is remembered: the hot paths own
    their memo (L{xmppcomp.router.routing.RoutingTable.domainOf}).
    """
    bare = address.partition("/")[0]
    local, at, domain = bare.partition("@")
    if not at:
        domain = local
    return domainOrNone(domain)
