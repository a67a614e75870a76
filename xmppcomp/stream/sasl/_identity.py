# -*- test-case-name: tests.test_stream_sasl -*-
"""
The SASL identity of a component: a domain (XEP-0225 section 3).
"""

from __future__ import annotations

import re

from twisted.words.protocols.jabber import jid

#: A plain ASCII hostname: letters, digits and inner hyphens, labels of 1 to
#: 63 characters. Nameprep of such a name is lowercasing, so it skips the
#: pure-Python stringprep (most of the cost of a negotiation's names).
_PLAIN_HOSTNAME = re.compile(
    r"\A[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z"
)

#: RFC 7622: a domainpart is at most 1023 bytes.
_MAX_DOMAIN = 1023


def plainHostname(value: str) -> str | None:
    """
    C{value} lowercased if it is a plain ASCII hostname (see
    L{_PLAIN_HOSTNAME}), whose nameprep is exactly that; else L{None}, and
    the caller takes the full path.
    """
    if len(value) <= _MAX_DOMAIN and _PLAIN_HOSTNAME.match(value) is not None:
        return value.lower()
    return None


def normalizeDomain(value: str) -> str:
    """
    Check that C{value} is a domain identifier and return its canonical form.

    The simple user name of every mechanism, and any authzid, must be a
    domain (XEP-0225 section 3): not empty, no C{@} or C{/}, and valid for
    nameprep as a JID domainpart. A single trailing dot is removed
    (RFC 7622 section 3.2).

    L{jid.JID} is used rather than L{jid.internJID}: this runs on names an
    unauthenticated peer sends, and C{internJID} caches every name forever.

    @param value: the name as received or configured.
    @return: the nameprepped domain, e.g. C{"comp.example.com"}.
    @raise ValueError: C{value} is not a domain.
    """
    if not isinstance(value, str):
        raise ValueError(f"a domain must be a str, not {type(value).__name__}")
    if value.endswith(".") and not value.endswith(".."):
        value = value[:-1]
    if not value:
        raise ValueError("the identity must be a domain, not empty")
    plain = plainHostname(value)
    if plain is not None:
        return plain
    if "@" in value or "/" in value:
        raise ValueError(f"the identity {value!r} must be a domain (no '@' or '/')")
    try:
        parsed = jid.JID(value)
    except Exception as e:
        raise ValueError(f"the identity {value!r} is not a valid domain: {e}") from e
    if parsed.user is not None or parsed.resource is not None or not parsed.host:
        raise ValueError(f"the identity {value!r} must be a domain")
    return parsed.host
