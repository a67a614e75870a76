# -*- test-case-name: tests.test_stream_sasl -*-
"""
The SASL data inside XMPP elements (RFC 6120 section 6.4): base64 in the
element's character data, C{=} for present-but-empty, nothing for absent.
"""

from __future__ import annotations

import base64
import binascii

from twisted.words.xish import domish

from xmppcomp.ns import NS_SASL


def saslElement(name: str, data: bytes | None = None) -> domish.Element:
    """
    An element in the SASL namespace carrying C{data}: base64, C{=} when
    C{data} is empty, no character data when it is C{None}.
    """
    element = domish.Element((NS_SASL, name))
    if data is not None:
        element.addContent(base64.b64encode(data).decode("ascii") if data else "=")
    return element


def elementText(element: domish.Element) -> str:
    """
    All character data directly inside C{element}.
    """
    return "".join(c for c in element.children if isinstance(c, str))


def decodeData(element: domish.Element) -> bytes | None:
    """
    The SASL data of C{element}.

    @return: C{None} when the element has no character data, C{b""} for
        C{=}, else the decoded bytes.
    @raise ValueError: the data is not valid base64 (RFC 4648, no
        whitespace inside; whitespace around it is tolerated).
    """
    text = elementText(element).strip()
    if not text:
        return None
    if text == "=":
        return b""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as e:
        raise ValueError(f"invalid base64 SASL data: {e}") from e
