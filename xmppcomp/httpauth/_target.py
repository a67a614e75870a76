# -*- test-case-name: tests.test_httpauth_target -*-
"""
The HTTP request target, C{Host} and origin, as one canonical form each.

This is the confirmer's security boundary. The access rules decide on a
path, the user is asked about a URL and the web server serves a file or
forwards a request; if any two of them read the same bytes differently
(C{/%73ub} against C{/sub}, C{/public/../private}, C{//private}), the
decision is about another resource than the one served. So the confirmer
must I{decide on, ask about, and serve one canonical path}:
L{canonicalTarget} decodes once, resolves dot segments and collapses
repeated slashes, and refuses, with a reason, everything that another
reader (nginx, Caddy, a file system) could understand differently.

Values that end up in a stanza or in a message shown to a person are
checked here too (L{isXMLSafe}, L{isDisplaySafe}): one character that XML
1.0 forbids would make the XMPP server drop the component's stream.

Pure logic: nothing here touches a transport, a clock or a reactor.
"""

from __future__ import annotations

import ipaddress
import re
from functools import cached_property
from urllib.parse import quote, unquote_to_bytes

import attrs

#: The longest request target accepted, in bytes.
MAX_TARGET = 8192

#: The longest method accepted, in characters.
MAX_METHOD = 32

#: Characters of an RFC 3986 C{pchar} kept as they are in an encoded
#: segment, besides the unreserved ones (which L{quote} always keeps).
_PCHAR_SAFE = "!$&'()*+,;=:@"

#: Unreserved characters (RFC 3986 section 2.3): their escapes are decoded
#: in a query.
_UNRESERVED = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)

#: Characters RFC 3986 allows raw in a query: C{pchar / "/" / "?"}.
_QUERY_RAW = _UNRESERVED | frozenset(_PCHAR_SAFE + "/?")

_PRINTABLE = re.compile(rb"[\x21-\x7e]*")
_ABSOLUTE = re.compile(rb"(?i:https?)://[^/?]*")
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_ENCODED_SLASH = re.compile(rb"%(?:2[fF]|5[cC])")
_CONTROL_BYTE = re.compile(rb"[\x00-\x1f\x7f]")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_PORT = re.compile(r"[0-9]{1,5}")
_ORIGIN = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)", re.DOTALL)

#: One character that XML 1.0 forbids (section 2.2, C{Char}): C0 controls
#: other than tab, newline and carriage return, surrogates, U+FFFE, U+FFFF.
XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

#: One character that can make a displayed message lie: C0 and C1 controls
#: (and DEL), the bidirectional controls and the line and paragraph
#: separators.
UNSAFE_DISPLAY = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)


class BadTarget(ValueError):
    """
    A request target, method, C{Host} or origin that has no single
    canonical reading, and so must be refused before anyone is asked.

    @ivar reason: a human-readable explanation, fit for a response body;
        it never repeats the offending input.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@attrs.frozen
class Target:
    """
    A canonical request target: the one form that is checked against the
    access rules, put in the URL the user is asked about, and served.

    @ivar segments: the decoded path segments, no dot segments and no empty
        one but the last, which is C{""} when the path ends with C{/}; the
        path C{/} is C{("",)}.
    @ivar query: the normalised query (see L{normaliseQuery}), or L{None}
        when the target had no C{?}.
    """

    segments: tuple[str, ...]
    query: str | None = None

    # Computed once per target: a request needs each form more than once
    # (the rules, the asked URL, the rewritten request).

    @cached_property
    def path(self) -> str:
        """
        The decoded path, for the access rules and the file system.
        """
        return "/" + "/".join(self.segments)

    @cached_property
    def encodedPath(self) -> str:
        """
        The path with each segment percent-encoded as UTF-8, keeping only
        the characters of an RFC 3986 C{pchar}: printable ASCII, safe in
        XML, and read back by L{canonicalTarget} as the same segments.
        """
        return "/" + "/".join(quote(s, safe=_PCHAR_SAFE) for s in self.segments)

    def encoded(self, withQuery: bool = True) -> str:
        """
        The target as it goes on the wire or into the asked URL.

        @param withQuery: whether to include the query (operators may keep
            it from crossing the XMPP server).
        """
        if withQuery and self.query is not None:
            return self.encodedPath + "?" + self.query
        return self.encodedPath


def _unescape(raw: bytes, what: str) -> bytes:
    """
    Check that every C{%} starts a two-digit hexadecimal escape, then
    decode them all, once.

    @raise BadTarget: for a C{%} not followed by two hexadecimal digits.
    """
    if _BAD_ESCAPE.search(raw):
        raise BadTarget(f"bad percent-encoding in the {what}")
    return unquote_to_bytes(raw)


def normaliseQuery(raw: bytes | str) -> str:
    """
    Normalise a query string (RFC 3986 section 6.2.2), so that the user is
    asked about one spelling of it: the escape of an unreserved character
    is decoded, other escapes are kept with upper-case hexadecimal digits,
    characters a query allows raw are kept (C{+} too), and every other byte
    is percent-encoded (a C{str} is encoded as UTF-8 first).

    @return: printable ASCII, safe in XML.
    @raise BadTarget: for a C{%} not followed by two hexadecimal digits.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if _BAD_ESCAPE.search(data):
        raise BadTarget("bad percent-encoding in the query")
    out: list[str] = []
    i = 0
    while i < len(data):
        c = chr(data[i])
        if c == "%":
            decoded = chr(int(data[i + 1 : i + 3], 16))
            escape = "%" + data[i + 1 : i + 3].decode("ascii").upper()
            out.append(decoded if decoded in _UNRESERVED else escape)
            i += 3
            continue
        out.append(c if c in _QUERY_RAW else f"%{data[i]:02X}")
        i += 1
    return "".join(out)


def _segment(raw: bytes) -> str:
    """
    Decode one raw path segment, once.

    @raise BadTarget: for a bad escape, a decoded control character or
        bytes that are not UTF-8.
    """
    decoded = _unescape(raw, "path")
    if _CONTROL_BYTE.search(decoded):
        raise BadTarget("the path holds a control character")
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise BadTarget("the path is not UTF-8") from None


def canonicalTarget(raw: bytes) -> Target:
    """
    Read an HTTP request target into its one canonical form.

    The target is in origin form (C{/a/b?q}) or absolute form
    (C{http://h/a?q}); the authority of the absolute form is ignored, as
    the URL asked about comes from configuration only. The path is
    percent-decoded exactly once, dot segments (also encoded ones, such as
    C{%2e%2E}) are resolved and repeated slashes collapsed: what nginx
    (C{merge_slashes}) and Caddy do before they pick a location. Whatever
    they or a file system could read otherwise is refused: an encoded C{/}
    or C{\\}, a raw C{\\}, a decoded control character, bytes that are not
    UTF-8, a path that would leave the root.

    @param raw: the request target as received.
    @raise BadTarget: for a target that has no single reading, or another
        form (C{*}, authority form), or a fragment, or bytes outside
        printable ASCII, or more than L{MAX_TARGET} bytes.
    """
    if len(raw) > MAX_TARGET:
        raise BadTarget("the request target is too long")
    if not _PRINTABLE.fullmatch(raw):
        raise BadTarget("the request target holds bytes outside printable ASCII")
    if b"#" in raw:
        raise BadTarget("the request target holds a fragment")
    absolute = _ABSOLUTE.match(raw)
    if absolute is not None:
        raw = raw[absolute.end() :]
        if not raw.startswith(b"/"):
            raw = b"/" + raw
    elif not raw.startswith(b"/"):
        raise BadTarget("the request target is neither a path nor an http(s) URL")
    rawPath, question, rawQuery = raw.partition(b"?")
    if b"\\" in rawPath:
        raise BadTarget("the path holds a backslash")
    if _ENCODED_SLASH.search(rawPath):
        raise BadTarget("the path holds an encoded slash or backslash")
    parts = rawPath[1:].split(b"/")
    segments: list[str] = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        name = _segment(part)
        if name == "..":
            if not segments:
                raise BadTarget("the path leaves the root")
            segments.pop()
        elif name not in ("", "."):
            segments.append(name)
            continue
        if last:
            segments.append("")
    query = normaliseQuery(rawQuery) if question else None
    return Target(tuple(segments), query)


def checkMethod(raw: bytes | str) -> str:
    """
    Check an HTTP method: an RFC 9110 token of at most L{MAX_METHOD}
    characters. Methods are case-sensitive, so it is returned as given.

    @raise BadTarget: for anything else.
    """
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    if not _TOKEN.fullmatch(text):
        raise BadTarget("the method is not an HTTP token of at most 32 characters")
    return text


@attrs.frozen
class HostPort:
    """
    A canonical C{Host} header value.

    @ivar host: lower case, IDNA A-labels for non-ASCII input, no trailing
        dot; an IPv4 address in dotted-quad form; an IPv6 address in its
        compressed form, without brackets.
    @ivar port: the port, or L{None} when there was none.
    """

    host: str
    port: int | None = None

    def authority(self) -> str:
        """
        The host and port as they are written in a URL (brackets for IPv6).
        """
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def _hostName(text: str) -> str:
    """
    Canonicalise a reg-name or an IPv4 address.

    A name whose last label is a number (C{127.1}, C{0x7f.1}) is not taken
    as a name, because browsers read it as an IPv4 address: it must then
    be a dotted quad.

    @raise BadTarget: for anything that is neither.
    """
    if not text.isascii():
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError:
            raise BadTarget(
                "the host name is not a valid internationalised name"
            ) from None
    text = text.lower()
    text = text.removesuffix(".")
    labels = text.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:
            return str(ipaddress.IPv4Address(text))
        except ValueError:
            raise BadTarget("the host is not a valid IPv4 address") from None
    if len(text) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise BadTarget("the host is not a valid host name")
    return text


def parseHost(raw: bytes | str) -> HostPort:
    """
    Read a C{Host} header value: a host name of letter-digit-hyphen labels
    (1-63 characters each, at most 253 in all), an IPv4 dotted quad or an
    IPv6 address in brackets, then an optional port from 1 to 65535.

    @raise BadTarget: for anything else (empty, spaces, controls, user
        information, an empty or out-of-range port).
    """
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadTarget("the host is not UTF-8") from None
    else:
        text = raw
    if text.startswith("["):
        address, bracket, rest = text[1:].partition("]")
        if not bracket or "%" in address:
            raise BadTarget("the host is not a valid IPv6 address")
        try:
            host = str(ipaddress.IPv6Address(address))
        except ValueError:
            raise BadTarget("the host is not a valid IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise BadTarget("the host has text after the IPv6 address")
        portText = rest[1:] if rest else None
    else:
        name, colon, afterColon = text.partition(":")
        host = _hostName(name)
        portText = afterColon if colon else None
    port = None
    if portText is not None:
        if not _PORT.fullmatch(portText) or not 0 < int(portText) < 65536:
            raise BadTarget("the port is not a number from 1 to 65535")
        port = int(portText)
    return HostPort(host, port)


_DEFAULT_PORTS = {"http": 80, "https": 443}


@attrs.frozen
class Origin:
    """
    A configured web origin: where the protected site is, as the user sees
    it. The URL the user is asked about is built from it.

    @ivar scheme: C{"http"} or C{"https"}.
    @ivar host: as in L{HostPort.host}.
    @ivar port: the port, or L{None} for the scheme's default.
    """

    scheme: str
    host: str
    port: int | None = None

    def __str__(self) -> str:
        """
        The origin as text, such as C{https://example.net} or
        C{http://127.0.0.1:8080}: no trailing slash, no default port.
        """
        return f"{self.scheme}://{HostPort(self.host, self.port).authority()}"


def parseOrigin(text: str) -> Origin:
    """
    Read a configured origin, such as C{https://example.net}. A trailing
    C{/} is allowed; the scheme and host are lower-cased and the scheme's
    default port is dropped.

    @raise BadTarget: (a L{ValueError}) with a clear message for another
        scheme, user information, a path, a query or a fragment, or a bad
        host or port.
    """
    match = _ORIGIN.fullmatch(text)
    if match is None:
        raise BadTarget(f"{text!r} is not an origin such as https://example.net")
    scheme, authority, rest = match.group(1).lower(), match.group(2), match.group(3)
    if scheme not in _DEFAULT_PORTS:
        raise BadTarget(f"the origin {text!r} must use http or https")
    if "@" in authority:
        raise BadTarget(f"the origin {text!r} must not hold user information")
    if rest not in ("", "/"):
        raise BadTarget(f"the origin {text!r} must not have a path, query or fragment")
    try:
        hostPort = parseHost(authority)
    except BadTarget as e:
        raise BadTarget(f"the origin {text!r}: {e.reason}") from None
    port = None if hostPort.port == _DEFAULT_PORTS[scheme] else hostPort.port
    return Origin(scheme, hostPort.host, port)


def isXMLSafe(text: str) -> bool:
    """
    Whether C{text} holds only characters XML 1.0 allows, so that putting
    it in a stanza cannot make the XMPP server end the stream.
    """
    return XML_INVALID.search(text) is None


def isDisplaySafe(text: str) -> bool:
    """
    Whether C{text} can be shown to a person as it is: no control
    character, bidirectional control or line separator that could make a
    message say something else than it does.
    """
    return UNSAFE_DISPLAY.search(text) is None
