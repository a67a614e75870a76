# -*- test-case-name: tests.test_httpauth_target -*-
"""
Tests for L{xmppcomp.httpauth._target}: the one canonical form of a request
target, a method, a C{Host} header and an origin, and the checks on text
that goes into a stanza or a displayed message.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from xmppcomp.httpauth._target import (
    MAX_TARGET,
    UNSAFE_DISPLAY,
    XML_INVALID,
    BadTarget,
    HostPort,
    Origin,
    Target,
    canonicalTarget,
    checkMethod,
    isDisplaySafe,
    isXMLSafe,
    normaliseQuery,
    parseHost,
    parseOrigin,
)

#: Deterministic and bounded: the same examples on every run, no deadline,
#: no example database.
PROPERTY = settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

#: Pieces of request targets, good and bad, the tricky ones weighted in.
# fmt: off
_PIECES = [
    b"/", b"/", b"/", b".", b"..", b"%2e", b"%2E", b"a", b"b", b"sub", b"%73",
    b"%25", b"%2f", b"%5C", b"\\", b"%00", b"%1f", b"%7f", b"%ff", b"%c3%a9",
    b"%e2%80%ae", b"%ef%bf%be", b"?", b"%", b"%4", b"%zz", b"#", b" ", b";",
    b"=", b"&", b"+", b"~", b"%7e", b'"', b"<", b":", b"@", b"\x01", b"\x80",
    b"%3f", b"%23", b"%20", b"*",
]
# fmt: on
_targets = st.one_of(
    st.lists(st.sampled_from(_PIECES), max_size=24).map(lambda p: b"/" + b"".join(p)),
    st.lists(st.sampled_from(_PIECES), max_size=24).map(
        lambda p: b"http://evil.example" + b"".join(p)
    ),
    st.binary(max_size=40),
)

#: Segment text a canonical target may hold: no C0 control, no DEL, no
#: surrogate, no slash or backslash.
_segmentText = st.text(
    st.characters(
        exclude_categories=["Cs"],
        exclude_characters="".join(map(chr, range(0x20))) + "\x7f/\\",
    ),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", ".."))

#: What a path may not hold.
# fmt: off
_BAD_PIECES = [
    b"%00", b"%01", b"%1F", b"%7f", b"%2f", b"%2F", b"%5c", b"%5C", b"\\",
    b"%ff", b"%C0%AF", b"%e2%82", b"%4", b"%zz", b"%", b"#", b" ", b"\x00",
    b"\x7f", b"\x80", b"\t",
]
# fmt: on
_plain = st.text("abcxyz019-._~", max_size=6).map(str.encode)
#: The same without hexadecimal digits, to follow a bad escape.
_nonHex = st.text("xyz-._~", max_size=6).map(str.encode)

_printableASCII = re.compile(r"[\x21-\x7e]*")


def _refusal(testCase: SynchronousTestCase, function: object, *args: object) -> str:
    """
    Call C{function} and check that it raises L{BadTarget} with a reason.

    @return: the reason.
    """
    error = testCase.assertRaises(BadTarget, function, *args)
    testCase.assertIsInstance(error.reason, str)
    testCase.assertTrue(error.reason)
    return error.reason


class CanonicalTargetTests(SynchronousTestCase):
    """
    Tests for L{canonicalTarget}: one path for the decision, the question
    and the serving.
    """

    def assertCanonical(self, raw: bytes, path: str, query: str | None = None) -> None:
        """
        C{raw} is read as the decoded path C{path} and the query C{query}.
        """
        target = canonicalTarget(raw)
        self.assertEqual((target.path, target.query), (path, query))

    def test_issueBypassesProtectMode(self) -> None:
        """
        The protect-mode bypasses of the issue read as the path they serve:
        an escaped letter is decoded and a C{.} segment dropped.
        """
        self.assertCanonical(b"/%73ub/a.txt", "/sub/a.txt")
        self.assertCanonical(b"/./sub/a.txt", "/sub/a.txt")

    def test_issueBypassesBehindNginx(self) -> None:
        """
        The nginx bypasses of the issue all read as C{/private/secret.txt}:
        C{..} resolved, escapes decoded, repeated slashes collapsed.
        """
        for raw in [
            b"/public/../private/secret.txt",
            b"/%70rivate/secret.txt",
            b"//private/secret.txt",
            b"/./private/secret.txt",
        ]:
            self.assertCanonical(raw, "/private/secret.txt")

    def test_encodedDotSegments(self) -> None:
        """
        Dot segments spelled with escapes, in any case, are resolved too.
        """
        self.assertCanonical(b"/a/%2e%2E/b", "/b")
        self.assertCanonical(b"/a/%2E/b", "/a/b")
        self.assertCanonical(b"/a/.%2e/b/", "/b/")

    def test_decodedOnce(self) -> None:
        """
        Percent-decoding is done once: an escaped C{%} stays a C{%}.
        """
        target = canonicalTarget(b"/%2573ub")
        self.assertEqual(target.segments, ("%73ub",))
        self.assertEqual(target.encodedPath, "/%2573ub")

    def test_trailingSlashAndRoot(self) -> None:
        """
        A trailing slash is the empty last segment; the root is C{("",)},
        also when reached by dot segments.
        """
        self.assertEqual(canonicalTarget(b"/").segments, ("",))
        self.assertEqual(canonicalTarget(b"/a/").segments, ("a", ""))
        self.assertEqual(canonicalTarget(b"/a//").segments, ("a", ""))
        self.assertEqual(canonicalTarget(b"/a/.").segments, ("a", ""))
        self.assertEqual(canonicalTarget(b"/a/..").segments, ("",))
        self.assertEqual(canonicalTarget(b"/.").segments, ("",))
        self.assertEqual(canonicalTarget(b"///").segments, ("",))
        self.assertEqual(canonicalTarget(b"/a").segments, ("a",))

    def test_utf8(self) -> None:
        """
        Escaped UTF-8 is decoded in C{path} and encoded again, with
        upper-case hexadecimal digits, in C{encodedPath}.
        """
        target = canonicalTarget(b"/caf%c3%a9/%e2%82%ac")
        self.assertEqual(target.path, "/caf\u00e9/\u20ac")
        self.assertEqual(target.encodedPath, "/caf%C3%A9/%E2%82%AC")

    def test_pcharKept(self) -> None:
        """
        The encoded path keeps unreserved characters and the sub-delimiters,
        C{:} and C{@} of a C{pchar}, and escapes everything else.
        """
        target = Target(("a-._~!$&'()*+,;=:@", 'sp ce?#%"<>', ""))
        self.assertEqual(
            target.encodedPath, "/a-._~!$&'()*+,;=:@/sp%20ce%3F%23%25%22%3C%3E/"
        )

    def test_encoded(self) -> None:
        """
        C{encoded} gives the encoded path and the query, or the path alone
        when asked to leave the query out or when there was no C{?}.
        """
        target = canonicalTarget(b"/a%20b?x=1")
        self.assertEqual(target.encoded(), "/a%20b?x=1")
        self.assertEqual(target.encoded(withQuery=False), "/a%20b")
        self.assertEqual(canonicalTarget(b"/a").encoded(), "/a")
        self.assertEqual(canonicalTarget(b"/a?").encoded(), "/a?")
        self.assertEqual(canonicalTarget(b"/a?").query, "")

    def test_absoluteForm(self) -> None:
        """
        In absolute form the authority is ignored: only the path and the
        query are kept.
        """
        self.assertEqual(
            canonicalTarget(b"http://evil.example/x?y"), Target(("x",), "y")
        )
        self.assertEqual(
            canonicalTarget(b"HTTPS://evil.example:1/x/../y"), Target(("y",))
        )
        self.assertEqual(canonicalTarget(b"http://evil.example"), Target(("",)))
        self.assertEqual(canonicalTarget(b"http://evil.example?q"), Target(("",), "q"))

    def test_queryNormalised(self) -> None:
        """
        The query is normalised: unreserved escapes decoded, other escapes in
        upper case, C{+} kept.
        """
        self.assertCanonical(b"/?a=%7e&b=%2f&c=%e2%82%ac", "/", "a=~&b=%2F&c=%E2%82%AC")
        self.assertCanonical(b"/p?a+b=c/d?e:f@g", "/p", "a+b=c/d?e:f@g")

    def test_queryRawEncoded(self) -> None:
        """
        Characters a query may not hold raw are percent-encoded, among them
        C{"}, C{<} and a backslash (which only the path refuses).
        """
        self.assertCanonical(b'/?a="<>"&b=\\', "/", "a=%22%3C%3E%22&b=%5C")

    def test_queryBadEscape(self) -> None:
        """
        A bad escape in the query is refused.
        """
        _refusal(self, canonicalTarget, b"/?a=%zz")
        _refusal(self, canonicalTarget, b"/?a=%4")

    def test_issueRefusals(self) -> None:
        """
        The requests the issue lists are refused with a reason: NUL, encoded
        slash or backslash, a raw backslash, invalid UTF-8, a path that
        leaves the root.
        """
        for raw in [
            b"/%00",
            b"/a%2fb",
            b"/a%2Fb",
            b"/a%5Cb",
            b"/a%5cb",
            b"/a\\b",
            b"/%ff",
            b"/..",
            b"/a/../../b",
            b"/%2e%2e/x",
        ]:
            _refusal(self, canonicalTarget, raw)

    def test_controlCharacters(self) -> None:
        """
        Decoded C0 controls and DEL are refused, raw or escaped; so are raw
        spaces and bytes above 0x7e.
        """
        for raw in [
            b"/%01",
            b"/%1f",
            b"/%7F",
            b"/a\x01",
            b"/a b",
            b"/\x7f",
            b"/\xc3\xa9",
            b"/\t",
        ]:
            _refusal(self, canonicalTarget, raw)

    def test_badEscapes(self) -> None:
        """
        A C{%} not followed by two hexadecimal digits is refused.
        """
        for raw in [b"/%4", b"/%zz", b"/%", b"/a%g0"]:
            _refusal(self, canonicalTarget, raw)

    def test_notUTF8(self) -> None:
        """
        Decoded bytes that are not UTF-8 are refused, overlong forms too.
        """
        for raw in [b"/%c0%af", b"/%e2%82", b"/%80", b"/%ed%a0%80"]:
            _refusal(self, canonicalTarget, raw)

    def test_otherForms(self) -> None:
        """
        The asterisk form, the authority form, other schemes, relative
        paths, empty targets and fragments are refused.
        """
        for raw in [
            b"*",
            b"example.net:443",
            b"ftp://example.net/a",
            b"a/b",
            b"",
            b"?q",
            b"/a#b",
            b"/a?b#c",
        ]:
            _refusal(self, canonicalTarget, raw)

    def test_tooLong(self) -> None:
        """
        A target of L{MAX_TARGET} bytes is read; one byte more is refused.
        """
        canonicalTarget(b"/" + b"a" * (MAX_TARGET - 1))
        _refusal(self, canonicalTarget, b"/" + b"a" * MAX_TARGET)

    def test_reasonDoesNotEcho(self) -> None:
        """
        The reason does not repeat the offending input.
        """
        reason = _refusal(self, canonicalTarget, b"/<script>%00")
        self.assertNotIn("script", reason)


class CanonicalTargetPropertyTests(SynchronousTestCase):
    """
    Properties of L{canonicalTarget} over many generated targets.
    """

    @PROPERTY
    @given(_targets)
    def test_idempotent(self, raw: bytes) -> None:
        """
        A target is either refused with a reason, or its encoded form is
        read back as the same target.
        """
        try:
            target = canonicalTarget(raw)
        except BadTarget as e:
            self.assertTrue(e.reason)
            return
        self.assertEqual(canonicalTarget(target.encoded().encode()), target)

    @PROPERTY
    @given(_targets)
    def test_encodedSafe(self, raw: bytes) -> None:
        """
        The encoded form of a target is printable ASCII and safe in XML.
        """
        try:
            target = canonicalTarget(raw)
        except BadTarget:
            return
        encoded = target.encoded()
        self.assertTrue(_printableASCII.fullmatch(encoded), encoded)
        self.assertTrue(isXMLSafe(encoded))
        self.assertTrue(encoded.startswith("/"))

    @PROPERTY
    @given(_targets)
    def test_noEmptyOrDotSegments(self, raw: bytes) -> None:
        """
        No path read from a target holds C{//}, or a C{.} or C{..} segment;
        only the last segment may be empty.
        """
        try:
            target = canonicalTarget(raw)
        except BadTarget:
            return
        for path in [target.path, target.encodedPath]:
            self.assertNotIn("//", path)
            self.assertFalse({".", ".."} & set(path.split("/")), path)
        self.assertNotIn("", target.segments[:-1])
        self.assertTrue(target.segments)
        for segment in target.segments:
            self.assertNotIn("/", segment)
            self.assertIsNone(re.search("[\x00-\x1f\x7f]", segment))

    @PROPERTY
    @given(_plain, st.sampled_from(_BAD_PIECES), _nonHex, st.booleans())
    def test_badPiecesRefused(
        self, before: bytes, piece: bytes, after: bytes, absolute: bool
    ) -> None:
        """
        A path holding any of the refused pieces is refused with a reason,
        wherever the piece stands and in either form.
        """
        raw = b"/" + before + piece + after
        if absolute:
            raw = b"http://h" + raw
        _refusal(self, canonicalTarget, raw)

    @PROPERTY
    @given(
        st.lists(_plain.filter(lambda s: s not in (b"", b".", b"..")), max_size=5),
        st.integers(1, 3),
    )
    def test_leavingTheRootRefused(self, names: list[bytes], extra: int) -> None:
        """
        More C{..} segments than names before them are refused.
        """
        dots = [b"..", b"%2e%2e", b".%2E"] * 2
        raw = b"/" + b"/".join(names + dots[: len(names) + extra]) + b"/x"
        _refusal(self, canonicalTarget, raw)

    @PROPERTY
    @given(st.lists(_segmentText, min_size=1, max_size=5), st.booleans())
    def test_segmentsRoundTrip(self, names: list[str], slash: bool) -> None:
        """
        Any segments without control characters, read back from their
        encoded path, are the same segments.
        """
        target = Target(tuple(names + [""] if slash else names))
        self.assertEqual(canonicalTarget(target.encodedPath.encode()), target)


class NormaliseQueryTests(SynchronousTestCase):
    """
    Tests for L{normaliseQuery}.
    """

    def test_examples(self) -> None:
        """
        Unreserved escapes are decoded, others upper-cased, C{+} kept, and
        a raw space or C{"} encoded.
        """
        self.assertEqual(
            normaliseQuery(b"a=%7e&b=%2f&c=%e2%82%ac"), "a=~&b=%2F&c=%E2%82%AC"
        )
        self.assertEqual(normaliseQuery(b"a+b"), "a+b")
        self.assertEqual(normaliseQuery(b'a b"'), "a%20b%22")
        self.assertEqual(normaliseQuery("\u00e9\x00"), "%C3%A9%00")
        self.assertEqual(normaliseQuery(b"%41%2d%00"), "A-%00")

    def test_badEscapes(self) -> None:
        """
        A C{%} not followed by two hexadecimal digits is refused.
        """
        for raw in [b"a=%zz", b"%", b"a%4", "%g1"]:
            _refusal(self, normaliseQuery, raw)

    @PROPERTY
    @given(
        st.one_of(
            st.binary(max_size=30), st.lists(st.sampled_from(_PIECES)).map(b"".join)
        )
    )
    def test_idempotent(self, raw: bytes) -> None:
        """
        A normalised query is printable ASCII, safe in XML and normalised
        already.
        """
        try:
            query = normaliseQuery(raw)
        except BadTarget as e:
            self.assertTrue(e.reason)
            return
        self.assertTrue(_printableASCII.fullmatch(query), query)
        self.assertNotIn("#", query)
        self.assertEqual(normaliseQuery(query), query)


class CheckMethodTests(SynchronousTestCase):
    """
    Tests for L{checkMethod}.
    """

    def test_accepted(self) -> None:
        """
        Tokens are returned as given, as text.
        """
        for method in ["GET", "POST", "PROPFIND", "get", "M-SEARCH"]:
            self.assertEqual(checkMethod(method), method)
        self.assertEqual(checkMethod(b"PROPFIND"), "PROPFIND")
        self.assertEqual(checkMethod("X" * 32), "X" * 32)

    def test_refused(self) -> None:
        """
        The empty string, spaces, controls, non-ASCII, separators and more
        than 32 characters are refused.
        """
        for method in [
            "",
            "G ET",
            "GET\x00",
            "X" * 33,
            "G\u00c9T",
            "GET/",
            b"G\xffT",
            "(GET)",
        ]:
            _refusal(self, checkMethod, method)


class ParseHostTests(SynchronousTestCase):
    """
    Tests for L{parseHost} and L{HostPort}.
    """

    def test_names(self) -> None:
        """
        Names are lower-cased and lose their trailing dot.
        """
        self.assertEqual(parseHost("Example.NET."), HostPort("example.net"))
        self.assertEqual(parseHost(b"example.net:8080"), HostPort("example.net", 8080))
        self.assertEqual(parseHost("localhost"), HostPort("localhost"))

    def test_addresses(self) -> None:
        """
        IPv4 dotted quads and bracketed IPv6 addresses are read; IPv6 is
        kept compressed and without brackets.
        """
        self.assertEqual(parseHost("127.0.0.1"), HostPort("127.0.0.1"))
        self.assertEqual(parseHost("[::1]:8443"), HostPort("::1", 8443))
        self.assertEqual(parseHost("[2001:DB8:0:0::1]"), HostPort("2001:db8::1"))

    def test_idna(self) -> None:
        """
        A non-ASCII name becomes IDNA A-labels, from text or UTF-8 bytes.
        """
        self.assertEqual(
            parseHost("b\u00fccher.example"), HostPort("xn--bcher-kva.example")
        )
        self.assertEqual(
            parseHost("B\u00fccher.example:81".encode()),
            HostPort("xn--bcher-kva.example", 81),
        )

    def test_labelLengths(self) -> None:
        """
        Labels hold 1 to 63 characters, names at most 253.
        """
        self.assertEqual(parseHost("a" * 63 + ".x").host, "a" * 63 + ".x")
        _refusal(self, parseHost, "a" * 64 + ".x")
        longest = ".".join(["a" * 63] * 3 + ["b" * 61])
        self.assertEqual(parseHost(longest).host, longest)
        _refusal(self, parseHost, longest + "b")
        _refusal(self, parseHost, "a..b")

    def test_refused(self) -> None:
        """
        Empty values, spaces, user information, bad ports, controls, labels
        that start or end with a hyphen and other junk are refused.
        """
        for raw in [
            "",
            ".",
            "a b",
            "user@host",
            "host:0",
            "host:99999",
            "host:abc",
            "host:",
            "host:80:80",
            "\x01host",
            "host\x00",
            "-bad-.example",
            "under_score.example",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[fe80::1%eth0]",
            "[example.net]",
            "::1",
            "256.0.0.1",
            "127.1",
            "0x7f.1",
            "example.123",
            b"\xff",
            "b\u00fccher\u202e.example",
        ]:
            _refusal(self, parseHost, raw)

    def test_authority(self) -> None:
        """
        C{authority} writes the host and port as in a URL.
        """
        self.assertEqual(HostPort("example.net").authority(), "example.net")
        self.assertEqual(HostPort("example.net", 8080).authority(), "example.net:8080")
        self.assertEqual(HostPort("::1", 8443).authority(), "[::1]:8443")
        self.assertEqual(HostPort("::1").authority(), "[::1]")

    @PROPERTY
    @given(st.text(st.sampled_from("aZ0-._:[]@ \x01\u00fc9f"), max_size=20))
    def test_authorityRoundTrip(self, raw: str) -> None:
        """
        A value is either refused with a reason, or its authority is read
        back as the same host and port, in lower-case printable ASCII.
        """
        try:
            hostPort = parseHost(raw)
        except BadTarget as e:
            self.assertTrue(e.reason)
            return
        self.assertEqual(parseHost(hostPort.authority()), hostPort)
        self.assertTrue(_printableASCII.fullmatch(hostPort.authority()))
        self.assertEqual(hostPort.host, hostPort.host.lower())


class ParseOriginTests(SynchronousTestCase):
    """
    Tests for L{parseOrigin} and L{Origin}.
    """

    def test_examples(self) -> None:
        """
        Origins are lower-cased, lose a trailing slash and their scheme's
        default port.
        """
        for text, expected in [
            ("https://Example.net/", "https://example.net"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("https://example.net:443", "https://example.net"),
            ("HTTP://[::1]:80", "http://[::1]"),
            ("http://example.net:443", "http://example.net:443"),
        ]:
            self.assertEqual(str(parseOrigin(text)), expected)
        self.assertEqual(
            parseOrigin("https://example.net:8443"),
            Origin("https", "example.net", 8443),
        )

    def test_refused(self) -> None:
        """
        Other schemes, paths, user information, queries, fragments, bare
        names and bad hosts are refused with a L{ValueError}.
        """
        for text in [
            "ftp://x",
            "https://x/path",
            "https://u@x",
            "https://x?q",
            "https://x#f",
            "example.net",
            "https://",
            "https://x:0",
            "https://a b",
        ]:
            error = self.assertRaises(ValueError, parseOrigin, text)
            self.assertTrue(str(error))


class TextSafetyTests(SynchronousTestCase):
    """
    Tests for L{isXMLSafe}, L{XML_INVALID}, L{isDisplaySafe} and
    L{UNSAFE_DISPLAY}.
    """

    def test_xmlUnsafe(self) -> None:
        """
        Non-characters U+FFFE and U+FFFF, C0 controls but tab, newline and
        carriage return, and lone surrogates are not XML-safe.
        """
        for text in ["\ufffe", "a\uffff", "\x01", "\x00", "\ud800", "\udfff"]:
            self.assertFalse(isXMLSafe(text), repr(text))
            self.assertTrue(XML_INVALID.search(text))

    def test_xmlSafe(self) -> None:
        """
        Tab, newline, carriage return, accented letters and characters
        beyond the BMP are XML-safe.
        """
        for text in ["\t", "\n", "\r", "\u00e9", "\U0001f600", "\ufffd", "", "plain"]:
            self.assertTrue(isXMLSafe(text), repr(text))

    def test_displayUnsafe(self) -> None:
        """
        Bidi controls, line and paragraph separators, C0 and C1 controls and
        DEL are not safe to display.
        """
        for text in [
            "\u202e",
            "a\u2028b",
            "\u2029",
            "\x85",
            "\x1b[31m",
            "\n",
            "\x7f",
            "\u061c",
            "\u200e",
            "\u200f",
            "\u202a",
            "\u2066",
            "\u2069",
        ]:
            self.assertFalse(isDisplaySafe(text), repr(text))
            self.assertTrue(UNSAFE_DISPLAY.search(text))

    def test_displaySafe(self) -> None:
        """
        Ordinary text, accents and emoji are safe to display.
        """
        for text in ["a7374jnjlalasdf82", "caf\u00e9", "\U0001f600", ""]:
            self.assertTrue(isDisplaySafe(text), repr(text))
