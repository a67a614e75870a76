# -*- test-case-name: tests.test_authz -*-
"""
Tests for L{xmppcomp.authz}.
"""

from __future__ import annotations

import operator
import tomllib

import attrs
from twisted.trial.unittest import SynchronousTestCase

from xmppcomp.authz import (
    HostnamePattern,
    HostnamePatterns,
    HostnamePolicy,
    PolicyError,
    canonicalHostname,
)

COMP = "comp.example.com"
MUC = "muc.example.com"


class CanonicalHostnameTests(SynchronousTestCase):
    """
    Tests for L{canonicalHostname}.
    """

    def test_caseAndTrailingDot(self) -> None:
        """
        Case is folded and a single trailing dot removed.
        """
        self.assertEqual(canonicalHostname("Chat.EXAMPLE.com."), "chat.example.com")

    def test_unicodeToAscii(self) -> None:
        """
        A Unicode label becomes its A-label, after nameprep (case folding of
        non-ASCII letters too); an A-label stays as it is.
        """
        self.assertEqual(
            canonicalHostname("b\u00fccher.example"), "xn--bcher-kva.example"
        )
        self.assertEqual(
            canonicalHostname("B\u00dcCHER.example"), "xn--bcher-kva.example"
        )
        self.assertEqual(
            canonicalHostname("XN--BCHER-KVA.example"), "xn--bcher-kva.example"
        )

    def test_invalid(self) -> None:
        """
        Names that are not hostnames raise L{ValueError} naming the input.
        """
        for name in [
            "",
            ".",
            "a..b",
            "a b.example",
            "user@example.com",
            "example.com/res",
            "-dash.example",
            "x" * 64 + ".example",
            ".".join(["a" * 60] * 5),
            "xn--zz.example",
        ]:
            with self.assertRaises(ValueError, msg=name):
                canonicalHostname(name)
        e = self.assertRaises(ValueError, canonicalHostname, "a..b")
        self.assertIn("'a..b'", str(e))


class HostnamePatternTests(SynchronousTestCase):
    """
    Tests for L{HostnamePattern}.
    """

    def test_parseExact(self) -> None:
        """
        A name without C{*} is an exact pattern of its canonical labels.
        """
        self.assertEqual(
            HostnamePattern.parse("Chat.Example.com"),
            HostnamePattern(labels=("chat", "example", "com"), wildcard=False),
        )

    def test_parseWildcard(self) -> None:
        """
        C{*.suffix} is a wildcard over the canonical suffix.
        """
        pattern = HostnamePattern.parse("*.Example.COM")
        self.assertEqual(
            pattern, HostnamePattern(labels=("example", "com"), wildcard=True)
        )
        self.assertEqual(str(pattern), "*.example.com")

    def test_bareStarRefused(self) -> None:
        """
        A bare C{*} (or C{*.}) is refused as too broad, with a message that
        says so.
        """
        for text in ["*", "*."]:
            e = self.assertRaises(PolicyError, HostnamePattern.parse, text)
            self.assertIn(repr(text), str(e))
            self.assertIn("every hostname", str(e))

    def test_malformedNamed(self) -> None:
        """
        Malformed patterns are refused with a L{PolicyError} (a
        L{ValueError}) whose message names the pattern.
        """
        for text in [
            "",
            "a.*.example.com",
            "*example.com",
            "**.example.com",
            "*.*.example.com",
            "foo*.example.com",
            "*.",
            "*.a..b",
            "chat example.com",
            "user@example.com",
            " chat.example.com",
            "x" * 64 + ".example",
        ]:
            e = self.assertRaises(PolicyError, HostnamePattern.parse, text)
            self.assertIsInstance(e, ValueError)
            self.assertIn(repr(text), str(e))

    def test_notAString(self) -> None:
        """
        A pattern that is not a string is refused.
        """
        e = self.assertRaises(PolicyError, HostnamePattern.parse, 42)
        self.assertIn("42", str(e))

    def test_frozen(self) -> None:
        """
        Patterns are immutable values.
        """
        pattern = HostnamePattern.parse("chat.example.com")
        self.assertRaises(
            attrs.exceptions.FrozenInstanceError,
            setattr,
            pattern,
            "wildcard",
            True,
        )


class HostnamePatternsTests(SynchronousTestCase):
    """
    L{HostnamePatterns}: a set of names given as patterns (the router's
    C{shared_names}).
    """

    def test_matches(self) -> None:
        """
        Exact names and wildcards match in canonical form; a name that is
        not a hostname matches nothing; no patterns is false.
        """
        patterns = HostnamePatterns.parse(["Component.Example.NET.", "*.balanced.example.net"])
        self.assertTrue(patterns)
        self.assertTrue(patterns.matches("component.example.net"))
        self.assertTrue(patterns.matches("a.b.balanced.example.net"))
        self.assertFalse(patterns.matches("balanced.example.net"))
        self.assertFalse(patterns.matches("other.example.net"))
        self.assertFalse(patterns.matches("bad..name"))
        self.assertFalse(HostnamePatterns.parse([]))
        self.assertFalse(HostnamePatterns().matches("component.example.net"))

    def test_errors(self) -> None:
        """
        A string instead of a list, or a malformed pattern, is refused
        with a L{PolicyError} naming the pattern and its index.
        """
        error = self.assertRaises(PolicyError, HostnamePatterns.parse, "component.example.net")
        self.assertIn("must be a list of strings, not str", str(error))
        error = self.assertRaises(PolicyError, HostnamePatterns.parse, ["ok.example.net", "*"])
        self.assertIn("pattern 1: the hostname pattern '*' is refused", str(error))


class HostnamePolicyTests(SynchronousTestCase):
    """
    Tests for L{HostnamePolicy}.
    """

    def test_exact(self) -> None:
        """
        An exact pattern allows that name and nothing else, not even names
        below it.
        """
        policy = HostnamePolicy({COMP: ["chat.example.com"]})
        self.assertTrue(policy.mayBind(COMP, "chat.example.com"))
        self.assertFalse(policy.mayBind(COMP, "a.chat.example.com"))
        self.assertFalse(policy.mayBind(COMP, "example.com"))
        self.assertFalse(policy.mayBind(COMP, "chat.example.org"))

    def test_exactNotForOthers(self) -> None:
        """
        A pattern applies only to the identity it is listed under.
        """
        policy = HostnamePolicy({COMP: ["chat.example.com"], MUC: [MUC]})
        self.assertFalse(policy.mayBind(MUC, "chat.example.com"))
        self.assertTrue(policy.mayBind(MUC, MUC))

    def test_wildcard(self) -> None:
        """
        C{*.example.com} matches a name one label below C{example.com}, but
        not C{example.com} itself, nor a name that merely ends with the
        same characters.
        """
        policy = HostnamePolicy({COMP: ["*.example.com"]})
        self.assertTrue(policy.mayBind(COMP, "chat.example.com"))
        self.assertFalse(policy.mayBind(COMP, "example.com"))
        self.assertFalse(policy.mayBind(COMP, "badexample.com"))
        self.assertFalse(policy.mayBind(COMP, "example.com.evil.org"))
        self.assertFalse(policy.mayBind(COMP, "com"))

    def test_wildcardDepth(self) -> None:
        """
        A wildcard matches at any depth below its suffix.
        """
        policy = HostnamePolicy({COMP: ["*.comp.example.com"]})
        self.assertTrue(policy.mayBind(COMP, "a.comp.example.com"))
        self.assertTrue(policy.mayBind(COMP, "a.b.comp.example.com"))
        self.assertTrue(policy.mayBind(COMP, "x.y.z.comp.example.com"))
        self.assertFalse(policy.mayBind(COMP, "comp.example.com"))
        self.assertFalse(policy.mayBind(COMP, "a.example.com"))

    def test_wildcardAndExact(self) -> None:
        """
        A name and the tree below it are allowed by listing both.
        """
        policy = HostnamePolicy({COMP: [COMP, "*." + COMP]})
        self.assertTrue(policy.mayBind(COMP, COMP))
        self.assertTrue(policy.mayBind(COMP, "a." + COMP))
        self.assertFalse(policy.mayBind(COMP, MUC))

    def test_case(self) -> None:
        """
        Identities, patterns and hostnames are compared without regard to
        case, and a trailing dot does not matter.
        """
        policy = HostnamePolicy(
            {"COMP.Example.com": ["Chat.EXAMPLE.com", "*.Rooms.Example.Com"]}
        )
        self.assertTrue(policy.mayBind("comp.example.COM", "CHAT.example.com"))
        self.assertTrue(policy.mayBind(COMP, "chat.example.com."))
        self.assertTrue(policy.mayBind(COMP + ".", "A.ROOMS.example.com"))

    def test_idna(self) -> None:
        """
        Unicode and ASCII (IDNA) spellings of a name are the same name, in
        patterns, identities and hostnames alike.
        """
        policy = HostnamePolicy(
            {
                COMP: ["b\u00fccher.example", "*.xn--caf-dma.example"],
                "xn--mnchen-3ya.example": ["*.m\u00fcnchen.example"],
            }
        )
        self.assertTrue(policy.mayBind(COMP, "xn--bcher-kva.example"))
        self.assertTrue(policy.mayBind(COMP, "B\u00dcCHER.example"))
        self.assertTrue(policy.mayBind(COMP, "b\u00fccher.example"))
        self.assertTrue(policy.mayBind(COMP, "men\u00fc.caf\u00e9.example"))
        self.assertFalse(policy.mayBind(COMP, "bucher.example"))
        self.assertTrue(
            policy.mayBind("m\u00fcnchen.example", "a.xn--mnchen-3ya.example")
        )
        self.assertTrue(
            policy.mayBind("M\u00dcNCHEN.example", "a.m\u00fcnchen.example")
        )

    def test_noEntryOwnName(self) -> None:
        """
        By default, an identity without an entry may bind its own name (in
        any spelling) and nothing else.
        """
        policy = HostnamePolicy({MUC: ["chat.example.com"]})
        self.assertTrue(policy.mayBind(COMP, COMP))
        self.assertTrue(policy.mayBind(COMP, "Comp.Example.Com."))
        self.assertFalse(policy.mayBind(COMP, "a." + COMP))
        self.assertFalse(policy.mayBind(COMP, "chat.example.com"))
        self.assertTrue(
            HostnamePolicy().mayBind("b\u00fccher.example", "xn--bcher-kva.example")
        )

    def test_noEntryDefaultOff(self) -> None:
        """
        With C{defaultOwnName=False}, an identity without an entry may bind
        nothing, not even its own name.
        """
        policy = HostnamePolicy({MUC: [MUC]}, defaultOwnName=False)
        self.assertFalse(policy.mayBind(COMP, COMP))
        self.assertTrue(policy.mayBind(MUC, MUC))

    def test_entryDoesNotImplyOwnName(self) -> None:
        """
        An identity with an entry may bind only what its patterns match:
        its own name is not implied, and an empty list allows nothing.
        """
        policy = HostnamePolicy({COMP: ["chat.example.com"], MUC: []})
        self.assertFalse(policy.mayBind(COMP, COMP))
        self.assertFalse(policy.mayBind(MUC, MUC))

    def test_invalidNamesNotAllowed(self) -> None:
        """
        A hostname or identity that is not a valid hostname is never
        allowed; L{HostnamePolicy.mayBind} does not raise.
        """
        policy = HostnamePolicy({COMP: ["*.example.com"]})
        for hostname in [
            "",
            "a b.example.com",
            "*.example.com",
            "u@x.example.com",
            "a..example.com",
        ]:
            self.assertFalse(policy.mayBind(COMP, hostname), hostname)
        self.assertFalse(policy.mayBind("not a domain", "not a domain"))
        self.assertFalse(policy.mayBind("", ""))

    def test_bareStarRefused(self) -> None:
        """
        A bare C{*} is refused when the policy is built, with a message
        naming the identity and the pattern.
        """
        e = self.assertRaises(PolicyError, HostnamePolicy, {COMP: [COMP, "*"]})
        self.assertIn(repr(COMP), str(e))
        self.assertIn("'*'", str(e))
        self.assertIn("every hostname", str(e))

    def test_malformedPatternRefused(self) -> None:
        """
        A malformed pattern is refused when the policy is built, with a
        message naming the pattern.
        """
        e = self.assertRaises(
            PolicyError,
            HostnamePolicy.fromConfig,
            {COMP: ["ok.example.com", "a.*.example"]},
        )
        self.assertIn("'a.*.example'", str(e))
        self.assertIn(repr(COMP), str(e))

    def test_identityNotADomain(self) -> None:
        """
        An identity that is not a domain is refused, named.
        """
        e = self.assertRaises(PolicyError, HostnamePolicy, {"user@example.com": []})
        self.assertIn("'user@example.com'", str(e))

    def test_identityListedTwice(self) -> None:
        """
        Two spellings of the same identity are refused rather than merged.
        """
        e = self.assertRaises(
            PolicyError,
            HostnamePolicy,
            {"b\u00fccher.example": [], "xn--bcher-kva.example": []},
        )
        self.assertIn("same domain", str(e))

    def test_frozenAndEqual(self) -> None:
        """
        A policy is an immutable value: its rules cannot be changed, and
        policies built from equivalent mappings are equal (and hash alike).
        """
        mapping = {COMP: ["chat.example.com"]}
        policy = HostnamePolicy(mapping)
        mapping[COMP].append("*.example.com")
        self.assertFalse(policy.mayBind(COMP, "other.example.com"))
        self.assertRaises(TypeError, operator.setitem, policy.rules, MUC, ())
        self.assertRaises(
            attrs.exceptions.FrozenInstanceError,
            setattr,
            policy,
            "defaultOwnName",
            False,
        )
        same = HostnamePolicy({"Comp.Example.Com": ("CHAT.example.com",)})
        self.assertEqual(policy, same)
        self.assertEqual(hash(policy), hash(same))
        self.assertNotEqual(policy, HostnamePolicy(mapping))
        self.assertNotEqual(policy, attrs.evolve(policy, defaultOwnName=False))


class FromConfigTests(SynchronousTestCase):
    """
    Tests for L{HostnamePolicy.fromConfig}.
    """

    def test_tomlShape(self) -> None:
        """
        A table of identity to a list of strings, as TOML gives it, builds
        the policy; tuples are accepted as well as lists.
        """
        table = tomllib.loads(
            "[authorization]\n"
            '"comp.example.com" = ["comp.example.com", "*.comp.example.com"]\n'
            '"muc.example.com" = ["chat.example.com"]\n'
        )["authorization"]
        policy = HostnamePolicy.fromConfig(table)
        self.assertTrue(policy.mayBind(COMP, "x." + COMP))
        self.assertTrue(policy.mayBind(MUC, "chat.example.com"))
        self.assertFalse(policy.mayBind(MUC, MUC))
        self.assertEqual(
            policy, HostnamePolicy.fromConfig({k: tuple(v) for k, v in table.items()})
        )

    def test_none(self) -> None:
        """
        C{None} is an empty policy, honouring C{defaultOwnName}.
        """
        self.assertEqual(HostnamePolicy.fromConfig(None), HostnamePolicy())
        policy = HostnamePolicy.fromConfig(None, defaultOwnName=False)
        self.assertFalse(policy.defaultOwnName)
        self.assertFalse(policy.mayBind(COMP, COMP))

    def test_wrongTypes(self) -> None:
        """
        Values of the wrong type are refused with L{PolicyError}: a mapping
        that is not one, an identity that is not a string, patterns given as
        one string (which would otherwise be read character by character),
        a pattern that is not a string, a C{defaultOwnName} that is not a
        bool.
        """
        cases: list[object] = [
            ["comp.example.com"],
            "comp.example.com",
            {1: ["a.example"]},
            {COMP: "chat.example.com"},
            {COMP: b"chat.example.com"},
            {COMP: None},
            {COMP: [None]},
            {COMP: [["chat.example.com"]]},
        ]
        for case in cases:
            self.assertRaises(PolicyError, HostnamePolicy.fromConfig, case)
        e = self.assertRaises(
            PolicyError, HostnamePolicy.fromConfig, {COMP: "chat.example.com"}
        )
        self.assertIn("list of strings", str(e))
        self.assertRaises(
            PolicyError, HostnamePolicy.fromConfig, {}, defaultOwnName="yes"
        )
