# -*- test-case-name: tests.test_names -*-
"""
Tests for the package's one rule for names (L{xmppcomp.jids.normalizeDomain}
and L{xmppcomp.jids.domainOf}): a table of edge cases, each with the one
answer the whole package gives, and checks that every part that takes a
name (SASL identities, the XEP-0114 handshake, XEP-0225 bind, stream
headers, routing, authorization, configuration) gives that same answer.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber import error
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.xish import domish

from xmppcomp import jids
from xmppcomp.ns import NS_CLIENT, NS_COMPONENT_0, NS_COMPONENT_ACCEPT, NS_STREAMS

#: A name of exactly 253 octets: three labels of 63 and one of 61.
NAME_253 = ".".join(["a" * 63] * 3 + ["b" * 61])
#: A name of 254 octets.
NAME_254 = ".".join(["a" * 63] * 3 + ["b" * 62])

#: Each case and its one answer: the normal form, or C{None} when it is
#: not a domain.
CASES: list[tuple[str, str | None]] = [
    # Case and the trailing dot (RFC 7622 section 3.2).
    ("example.com", "example.com"),
    ("Example.COM.", "example.com"),
    ("localhost", "localhost"),
    ("example.com..", None),
    # IDNA: U-labels become A-labels; an xn-- label must be a valid A-label.
    ("\u00fc.example", "xn--tda.example"),
    ("B\u00fccher.Example.", "xn--bcher-kva.example"),
    ("B\u00dcCHER.example", "xn--bcher-kva.example"),
    ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("XN--BCHER-KVA.Example", "xn--bcher-kva.example"),
    ("\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25.com", "example.com"),
    ("xn--zz.example", None),
    ("xn--abc.example", None),
    ("xn--.example", None),
    ("xn--a-.example", None),
    # Lengths: 63 octets a label, 253 a name, in the ASCII form.
    ("a" * 63 + ".example", "a" * 63 + ".example"),
    ("a" * 64 + ".example", None),
    ("\u00fc" * 60 + ".example", None),
    (NAME_253, NAME_253),
    (NAME_253 + ".", NAME_253),
    (NAME_254, None),
    # Empty labels.
    ("", None),
    (".", None),
    ("a..b", None),
    (".a", None),
    # IP literals.
    ("127.0.0.1", None),
    ("127.0.0.1.", None),
    ("[::1]", None),
    ("::1", None),
    # Characters.
    ("a b.example", None),
    (" example.com", None),
    ("example.com ", None),
    ("a_b.example", None),
    ("-a.example", None),
    ("a-.example", None),
    ("ab--c.example", "ab--c.example"),
    ("a*.example", None),
    ("example.com:5347", None),
    # JIDs are not domains.
    ("user@example.com", None),
    ("@example.com", None),
    ("example.com/resource", None),
]


def _isJID(name: str) -> bool:
    """
    Whether C{name} has a localpart or a resourcepart: where a JID is
    expected (a stream header, L{jids.domainOf}) it is no domain but an
    address whose domain follows the rule.
    """
    return "@" in name or "/" in name


class TableTests(SynchronousTestCase):
    """
    L{jids.normalizeDomain} and its helpers give each case its answer.
    """

    def test_normalizeDomain(self) -> None:
        """
        Each case gives its normal form, or L{jids.InvalidDomain} (a
        L{ValueError}) whose message names it.
        """
        for name, expected in CASES:
            if expected is None:
                e = self.assertRaises(jids.InvalidDomain, jids.normalizeDomain, name)
                self.assertIsInstance(e, ValueError)
                self.assertTrue(str(e).startswith(repr(name)[:30]), str(e))
                self.assertLess(len(str(e)), 400)
                self.assertTrue(e.reason, name)
            else:
                self.assertEqual(jids.normalizeDomain(name), expected, name)

    def test_domainOrNone(self) -> None:
        """
        L{jids.domainOrNone} is L{jids.normalizeDomain} with L{None}.
        """
        for name, expected in CASES:
            self.assertEqual(jids.domainOrNone(name), expected, name)

    def test_plainDomainAgrees(self) -> None:
        """
        Where the fast path answers, it gives the table's answer; it
        answers for plain ASCII names.
        """
        for name, expected in CASES:
            plain = jids.plainDomain(name)
            if plain is not None:
                self.assertEqual(plain, expected, name)
        for name in ["Example.COM.", "localhost", NAME_253, NAME_253 + "."]:
            self.assertIsNotNone(jids.plainDomain(name), name)
        for name in ["xn--bcher-kva.example", "\u00fc.example", "127.0.0.1", NAME_254]:
            self.assertIsNone(jids.plainDomain(name), name)

    def test_longTexts(self) -> None:
        """
        A text longer than RFC 7622's 1023 bytes is refused before any
        IDNA work; messages show long texts and labels shortened.
        """
        for text in ["a" * 5000, "\u00fc" * 5000 + ".example", "a" * 5000 + ".example"]:
            e = self.assertRaises(jids.InvalidDomain, jids.normalizeDomain, text)
            self.assertIn(f"({len(text)} characters)", str(e))
            self.assertLess(len(str(e)), 400)
        e = self.assertRaises(jids.InvalidDomain, jids.normalizeDomain, "a" * 500 + ".example")
        self.assertIn("(500 characters)", e.reason)
        self.assertLess(len(str(e)), 400)

    def test_notAString(self) -> None:
        """
        Only a str is a domain.
        """
        self.assertRaises(jids.InvalidDomain, jids.normalizeDomain, b"example.com")
        self.assertRaises(jids.InvalidDomain, jids.normalizeDomain, None)

    def test_domainOf(self) -> None:
        """
        L{jids.domainOf} gives the normal domain of a JID, by the same rule;
        the localpart and resourcepart do not matter.
        """
        for name, expected in CASES:
            if not _isJID(name):
                self.assertEqual(jids.domainOf(name), expected, name)
                self.assertEqual(jids.domainOf("User@" + name + "/Res@x/y"), expected, name)
        self.assertEqual(jids.domainOf("user@Example.COM."), "example.com")
        self.assertEqual(jids.domainOf("example.com/a@b"), "example.com")
        self.assertIsNone(jids.domainOf("user@"))
        self.assertIsNone(jids.domainOf("a@b@example.com"))


class EveryDeciderTests(SynchronousTestCase):
    """
    Each part of the package that decides what a name is gives the
    table's answer, through its public path.
    """

    def test_saslIdentity(self) -> None:
        """
        A SASL identity (XEP-0225 section 3) is stored and looked up in the
        normal form; a name that is not a domain is refused.
        """
        from xmppcomp.stream.sasl import MemoryCredentialStore, deriveKeys

        keys = deriveKeys("secret", "sha-1", iterations=4096)
        for name, expected in CASES:
            store = MemoryCredentialStore()
            if expected is None:
                self.assertRaises(ValueError, store.setKeys, name, "sha-1", keys)
                self.assertIsNone(store.scramKeys(name, "sha-1"), name)
            else:
                store.setKeys(name, "sha-1", keys)
                self.assertEqual(store.identities(), [expected], name)
                self.assertIs(store.scramKeys(expected, "sha-1"), keys)

    def test_handshakeHostname(self) -> None:
        """
        The hostname of an XEP-0114 stream header (C{to}).
        """
        from xmppcomp.stream.handshake import checkAcceptHeader, normaliseHostname

        for name, expected in CASES:
            self.assertEqual(normaliseHostname(name), expected, name)
            root = domish.Element(
                (NS_STREAMS, "stream"),
                defaultUri=NS_COMPONENT_ACCEPT,
                localPrefixes={"stream": NS_STREAMS},
            )
            root["to"] = name
            if expected is None:
                e = self.assertRaises(error.StreamError, checkAcceptHeader, root)
                self.assertEqual(e.condition, "host-unknown")
            else:
                self.assertEqual(checkAcceptHeader(root), expected, name)

    def test_bindHostname(self) -> None:
        """
        The hostname of an XEP-0225 bind request; white space around the
        element's text is dropped first.
        """
        from xmppcomp.stream.bind import parseBindRequest

        def parse(text: str) -> str:
            iq = domish.Element((None, "iq"))
            iq["type"] = "set"
            bind = iq.addElement((NS_COMPONENT_0, "bind"))
            bind.addElement("hostname", content=text)
            request = parseBindRequest(iq)
            assert request is not None
            return request.hostname

        for name, expected in CASES:
            if name != name.strip():
                self.assertEqual(parse(name), jids.normalizeDomain(name.strip()))
            elif expected is None:
                e = self.assertRaises(StanzaError, parse, name)
                self.assertEqual(e.condition, "bad-request")
            else:
                self.assertEqual(parse(name), expected, name)

    def test_streamHeader(self) -> None:
        """
        The C{to} of a stream header (RFC 6120 section 4.7); a JID there
        has its domainpart normalised by the rule.
        """
        from xmppcomp.stream.header import parseStreamHeader

        def to(value: str) -> str | None:
            root = domish.Element(
                (NS_STREAMS, "stream"),
                defaultUri=NS_CLIENT,
                localPrefixes={"stream": NS_STREAMS},
            )
            root["version"] = "1.0"
            root["to"] = value
            try:
                return parseStreamHeader(root, NS_CLIENT).to
            except error.StreamError as e:
                self.assertEqual(e.condition, "host-unknown")
                return None

        for name, expected in CASES:
            if not _isJID(name):
                self.assertEqual(to(name), expected, name)
        self.assertEqual(to("User@B\u00fccher.Example./Res"), "user@xn--bcher-kva.example/Res")
        self.assertIsNone(to("user@127.0.0.1"))
        self.assertIsNone(to("user@a..b"))

    def test_routing(self) -> None:
        """
        The router's table remembers the rule's L{jids.domainOf}, and
        gives its answers.
        """
        from xmppcomp.router.routing import RoutingTable

        table: RoutingTable[str] = RoutingTable()
        for name, expected in CASES:
            if not _isJID(name):
                for _ in range(2):
                    self.assertEqual(table.domainOf(name), expected, name)
                    self.assertEqual(table.domainOf("u@" + name + "/r"), expected, name)

    def test_component(self) -> None:
        """
        The initiating side uses the rule's L{jids.domainOf}, not the
        router's.
        """
        from xmppcomp import component

        self.assertIs(component.domainOf, jids.domainOf)

    def test_componentHostnames(self) -> None:
        """
        A component keeps its hostnames, and the names it binds or
        unbinds, in the one form, so that its own C{from} is one of them
        whichever spelling it was given.
        """
        from xmppcomp.component import Component

        component = Component("tcp:127.0.0.1:1", "example.net", ["B\u00fccher.Example.", "chat.example.net"], secret="s" * 32)
        self.assertEqual(component.hostnames, ["xn--bcher-kva.example", "chat.example.net"])
        self.assertEqual(component.identity, "xn--bcher-kva.example")
        self.assertEqual(jids.domainOf("bot@B\u00fccher.example/r"), component.hostnames[0])
        self.assertRaises(ValueError, Component, "tcp:127.0.0.1:1", "example.net", ["a..b"], secret="s" * 32)

    def test_routerDomain(self) -> None:
        """
        The router's domain is kept in the one form.
        """
        from xmppcomp.config import RouterLimits
        from xmppcomp.router.service import Router

        router = Router("Example.NET.", lambda identity, hostname: True, RouterLimits(), reactor=None)
        self.assertEqual(router.domain, "example.net")

    def test_disco(self) -> None:
        """
        Service discovery answers for a hostname whichever spelling the
        configuration or the request uses.
        """
        from twisted.words.protocols.jabber.jid import JID

        from xmppcomp.disco import ComponentIdentity

        for configured, asked in [("B\u00fccher.example", "xn--bcher-kva.example"), ("xn--bcher-kva.example", "b\u00fccher.example")]:
            disco = ComponentIdentity({configured: []})
            answers = disco.getDiscoInfo(JID("someone@example.net"), JID(asked))
            self.assertTrue(answers, (configured, asked))

    def test_authz(self) -> None:
        """
        The hostname policy (XEP-0225 section 4) compares names in the
        normal form.
        """
        from xmppcomp.authz import HostnamePolicy, canonicalHostname

        policy = HostnamePolicy()
        for name, expected in CASES:
            if expected is None:
                self.assertRaises(ValueError, canonicalHostname, name)
                self.assertFalse(policy.mayBind(name, name), name)
            else:
                self.assertEqual(canonicalHostname(name), expected, name)
                self.assertTrue(policy.mayBind(name, expected), name)

    def test_config(self) -> None:
        """
        The router's C{domain}, the keys of C{[accept.secrets]} and a
        component's C{hostnames} follow the rule (C{localhost} aside, which
        a component may not bind for another reason).
        """
        from xmppcomp.config import (
            ConfigError,
            componentConfigFromMapping,
            routerConfigFromMapping,
        )

        directory = self.mktemp()
        os.makedirs(directory)
        # A credentials file with no identities (the configuration reads it).
        with open(os.path.join(directory, "credentials.json"), "w") as f:
            f.write('{"version": 1, "identities": {}}')
        source = os.path.join(directory, "router.toml")
        base = {"credentials": "credentials.json", "allow_plaintext": True}
        for name, expected in CASES:
            secrets = {"accept": {"secrets": {name: {"env": "SECRET"}}}}
            component = {"component": {"hostnames": [name]}}
            if expected is None:
                self.assertRaises(
                    ConfigError, routerConfigFromMapping, {**base, "domain": name}, source
                )
                self.assertRaises(
                    ConfigError,
                    routerConfigFromMapping,
                    {**base, "domain": "example.net", **secrets},
                    source,
                )
                self.assertRaises(
                    ConfigError, componentConfigFromMapping, component, "c.toml", None, directory
                )
            else:
                router = routerConfigFromMapping({**base, "domain": name}, source)
                self.assertEqual(router.domain, expected, name)
                router = routerConfigFromMapping(
                    {**base, "domain": "example.net", **secrets}, source
                )
                self.assertEqual(list(router.acceptSecrets), [expected], name)
                if expected == "localhost":
                    # The embedded router's own domain, which no component
                    # binds.
                    continue
                config = componentConfigFromMapping(component, "c.toml", None, directory)
                self.assertEqual(config.hostnames, (expected,), name)
