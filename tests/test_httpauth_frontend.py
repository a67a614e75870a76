# -*- test-case-name: tests.test_httpauth_frontend -*-
"""
Tests for L{xmppcomp.httpauth._frontend}: where the site is, which
proxies are trusted, and the web-server profiles.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from xmppcomp.httpauth._frontend import (
    PROFILES,
    Frontend,
    Untrusted,
    WebServerProfile,
    loopbackFrontend,
    parseAddress,
)
from xmppcomp.httpauth._target import canonicalTarget


class FrontendTests(SynchronousTestCase):
    """
    Tests for L{Frontend}.
    """

    def test_needsOriginOrHosts(self) -> None:
        """
        A frontend with neither a public origin nor allowed hosts cannot
        be made: the URL asked about would have to come from the request.
        """
        e = self.assertRaises(ValueError, Frontend)
        self.assertIn("public_origin", str(e))

    def test_publicOriginWins(self) -> None:
        """
        With a public origin, the URL asked about is that origin and the
        canonical target, whatever the Host header says.
        """
        frontend = Frontend(publicOrigin="https://Example.net/")
        target = canonicalTarget(b"/a/../%62?x=%7e")
        self.assertEqual(
            frontend.urlFor("http", "evil.example", target), "https://example.net/b?x=~"
        )

    def test_askQueryOff(self) -> None:
        """
        With C{askQuery} off, the query does not go into the URL asked
        about.
        """
        frontend = Frontend(publicOrigin="https://example.net", askQuery=False)
        self.assertEqual(
            frontend.urlFor("https", None, canonicalTarget(b"/a?token=secret")),
            "https://example.net/a",
        )

    def test_allowedHosts(self) -> None:
        """
        With allowed hosts, the URL uses the request's scheme, host and
        port; a host outside the list, a missing or malformed one, is
        refused.
        """
        frontend = Frontend(allowedHosts=["example.net", "www.example.net"])
        target = canonicalTarget(b"/x")
        self.assertEqual(frontend.urlFor("https", "WWW.example.net.", target), "https://www.example.net/x")
        self.assertEqual(
            frontend.urlFor("http", "example.net:8080", target), "http://example.net:8080/x"
        )
        self.assertEqual(frontend.urlFor("http", "example.net:80", target), "http://example.net/x")
        for host in ["evil.example", None, "", "example.net@evil.example", "exa mple.net", "example.net\x01"]:
            self.assertRaises(Untrusted, frontend.urlFor, "https", host, target)

    def test_allowedHostsWithPort(self) -> None:
        """
        An allowed host is a name; one with a port is refused when the
        frontend is made.
        """
        self.assertRaises(ValueError, Frontend, allowedHosts=["example.net:443"])

    def test_loopback(self) -> None:
        """
        L{loopbackFrontend} answers to the loopback names on any port.
        """
        frontend = loopbackFrontend()
        target = canonicalTarget(b"/")
        self.assertEqual(frontend.urlFor("http", "localhost:8080", target), "http://localhost:8080/")
        self.assertEqual(frontend.urlFor("http", "[::1]:8080", target), "http://[::1]:8080/")
        self.assertRaises(Untrusted, frontend.urlFor, "http", "example.net:8080", target)

    def test_trustedProxies(self) -> None:
        """
        Loopback is trusted by default; other addresses are not; the list
        takes networks.
        """
        frontend = loopbackFrontend()
        self.assertTrue(frontend.isTrusted("127.0.0.1"))
        self.assertTrue(frontend.isTrusted("127.3.4.5"))
        self.assertTrue(frontend.isTrusted("::1"))
        self.assertTrue(frontend.isTrusted("::ffff:127.0.0.1"))
        self.assertFalse(frontend.isTrusted("192.0.2.1"))
        self.assertFalse(frontend.isTrusted("not an address"))
        other = loopbackFrontend(trustedProxies=["10.0.0.0/8"])
        self.assertTrue(other.isTrusted("10.1.2.3"))
        self.assertFalse(other.isTrusted("127.0.0.1"))

    def test_clientOf(self) -> None:
        """
        The client is the peer unless the peer is a trusted proxy; then it
        is the rightmost X-Forwarded-For entry that is not a trusted proxy,
        and what the client wrote to the left of it is not believed.
        """
        frontend = loopbackFrontend(trustedProxies=["127.0.0.0/8", "10.0.0.0/8"])
        # Untrusted peer: its header is ignored.
        self.assertEqual(frontend.clientOf("192.0.2.7", ["203.0.113.9"]), "192.0.2.7")
        # Trusted peer, one hop.
        self.assertEqual(frontend.clientOf("127.0.0.1", ["192.0.2.7"]), "192.0.2.7")
        # A client-forged entry on the left, two trusted hops on the right.
        self.assertEqual(
            frontend.clientOf("127.0.0.1", ["6.6.6.6, 192.0.2.7", "10.0.0.2"]), "192.0.2.7"
        )
        # Nothing forwarded: the proxy itself.
        self.assertEqual(frontend.clientOf("127.0.0.1", []), "127.0.0.1")
        # Garbage stops the walk at the last trusted hop.
        self.assertEqual(frontend.clientOf("127.0.0.1", ["junk, 10.0.0.2"]), "10.0.0.2")
        # Brackets and mapped addresses.
        self.assertEqual(frontend.clientOf("127.0.0.1", ["[2001:db8::1]"]), "2001:db8::1")

    def test_parseAddress(self) -> None:
        """
        L{parseAddress} takes bare and bracketed addresses and unmaps
        IPv4-mapped IPv6 ones.
        """
        self.assertEqual(str(parseAddress(" 192.0.2.1 ")), "192.0.2.1")
        self.assertEqual(str(parseAddress("::ffff:192.0.2.1")), "192.0.2.1")
        self.assertIsNone(parseAddress("192.0.2.1:80"))
        self.assertIsNone(parseAddress(""))

    def test_profiles(self) -> None:
        """
        nginx carries the original request in C{X-Original-*} headers and
        the client in C{X-Real-IP}; Traefik and Caddy in C{X-Forwarded-*},
        the client in C{X-Forwarded-For}. An unknown web server is refused.
        """
        self.assertEqual(PROFILES["nginx"].uri, b"X-Original-URI")
        self.assertEqual(PROFILES["nginx"].client, b"X-Real-IP")
        self.assertEqual(PROFILES["caddy"].uri, b"X-Forwarded-Uri")
        self.assertTrue(PROFILES["traefik"].clientIsList)
        self.assertEqual(loopbackFrontend(webServer="caddy").webServer, PROFILES["caddy"])
        self.assertRaises(ValueError, loopbackFrontend, webServer="apache")

    def test_profileFamily(self) -> None:
        """
        L{WebServerProfile.family} names the method, URI, host and scheme
        headers from one prefix; nginx's and Traefik's profiles are such
        families.
        """
        profile = WebServerProfile.family("nginx", b"X-Original-", b"URI", client=b"X-Real-IP", clientIsList=False)
        self.assertEqual(
            profile,
            WebServerProfile(
                "nginx",
                method=b"X-Original-Method",
                uri=b"X-Original-URI",
                host=b"X-Original-Host",
                scheme=b"X-Original-Proto",
                client=b"X-Real-IP",
                clientIsList=False,
            ),
        )
        self.assertEqual(PROFILES["nginx"], profile)
        self.assertEqual(
            (PROFILES["traefik"].method, PROFILES["traefik"].host, PROFILES["traefik"].scheme),
            (b"X-Forwarded-Method", b"X-Forwarded-Host", b"X-Forwarded-Proto"),
        )

    def test_rememberedDecisionsBounded(self) -> None:
        """
        Decisions about peers and Host values are remembered, the same the
        second time (a refused host stays refused), and the memory stays
        bounded however many values clients send.
        """
        from xmppcomp.httpauth._frontend import _REMEMBERED

        frontend = loopbackFrontend()
        target = canonicalTarget(b"/")
        for _ in range(2):
            self.assertRaises(Untrusted, frontend.urlFor, "http", "evil.example", target)
            self.assertEqual(frontend.urlFor("http", "localhost:1", target), "http://localhost:1/")
            self.assertTrue(frontend.isTrusted("127.0.0.1"))
            self.assertFalse(frontend.isTrusted("192.0.2.1"))
        for n in range(3 * _REMEMBERED):
            self.assertRaises(Untrusted, frontend.urlFor, "http", "h%d.example" % (n,), target)
            frontend.isTrusted("192.0.%d.%d" % (n // 256, n % 256))
        self.assertLessEqual(len(frontend._hosts), _REMEMBERED)
        self.assertLessEqual(len(frontend._trustedPeers), _REMEMBERED)
