# -*- test-case-name: tests.test_xtls_pins -*-
"""
Tests for pinned fingerprints of the XTLS endpoint
(L{xmppcomp.xtls.XTLSConfiguration.pins}): real TLS between two in-memory
endpoints.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes
from twisted.internet.defer import Deferred
from twisted.internet.ssl import PrivateCertificate
from twisted.logger import LogEvent, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber import error

from tests.test_xtls_events import captureTunnelEvents
from tests.xtlshelpers import Pair
from xmppcomp.stream.tls import formatFingerprint
from xmppcomp.testing import makeCertificateAuthority
from xmppcomp.xtls import (
    PinMismatch,
    Tunnel,
    XTLSConfiguration,
    parseFingerprint,
    pinKey,
)


def _digest(certificate: PrivateCertificate) -> bytes:
    return certificate.original.to_cryptography().fingerprint(hashes.SHA256())


class PinTests(SynchronousTestCase):
    """
    Pinned fingerprints (L{XTLSConfiguration.pins}), with real TLS between
    two in-memory endpoints (L{Pair}): C{alice.example} opens a tunnel to
    C{bob.example}.
    """

    def setUp(self) -> None:
        self.events = captureTunnelEvents(self)
        self.authority = makeCertificateAuthority()
        self.aliceCertificate = self.authority.issue(dnsNames=["alice.example"], client=True)

    def pair(self, bob: dict[str, object], alice: dict[str, object] | None = None) -> Pair:
        aliceConfig: dict[str, object] = {"certificate": self.aliceCertificate}
        aliceConfig.update(alice or {})
        return Pair(self.authority, aliceConfig=aliceConfig, bobConfig=bob)

    def open(self, pair: Pair) -> Deferred[Tunnel]:
        d = pair.alice.open(pair.aliceJID, pair.bobJID)
        pair.router.flush()
        return d

    def refusedAtBob(self) -> LogEvent:
        [event] = [e for e in self.events if e["local"] == "bob.example" and e["xtls"] == "refused"]
        return event

    def test_pinnedMatchOpens(self) -> None:
        """
        A peer presenting its pinned certificate gets a tunnel; the
        fingerprint may be written with colons in either case or without.
        """
        for text in (formatFingerprint(_digest(self.aliceCertificate)),
                     _digest(self.aliceCertificate).hex(":"), _digest(self.aliceCertificate).hex()):
            pair = self.pair({"pins": {"alice.example": [text]}})
            self.successResultOf(self.open(pair))
            self.assertEqual(len(pair.bob.tunnels), 1)

    def test_pinnedButChangedRefused(self) -> None:
        """
        A pinned peer presenting another certificate, even one the trusted
        authority issued for its name, is refused with C{not-acceptable};
        the log line names the peer, the presented fingerprint and the
        pinned one.
        """
        pinned = _digest(self.authority.issue(dnsNames=["alice.example"], client=True))
        pair = self.pair({"pins": {"alice.example": [pinned]}})
        failure = self.failureResultOf(self.open(pair), error.StanzaError)
        self.assertEqual(failure.value.condition, "not-acceptable")
        self.assertEqual((pair.alice.tunnels, pair.bob.tunnels), ([], []))
        event = self.refusedAtBob()
        self.assertEqual(event["condition"], "not-acceptable")
        self.assertEqual(event["peer"], "alice.example")
        presented = formatFingerprint(_digest(self.aliceCertificate))
        self.assertIn(f"SHA-256 fingerprint {presented} is not pinned for alice.example", event["reason"])
        self.assertIn(f"(pinned: {formatFingerprint(pinned)})", event["reason"])
        self.assertIn(presented, formatEvent(event))

    def test_initiatorPinsResponder(self) -> None:
        """
        The initiator checks the responder's certificate against its pins
        too: a changed one fails the open with L{PinMismatch}.
        """
        pinned = _digest(self.authority.issue(dnsNames=["bob.example"], client=True))
        pair = self.pair({}, {"pins": {"bob.example": pinned}})
        failure = self.failureResultOf(self.open(pair), PinMismatch)
        self.assertEqual(failure.value.pinned, (pinned,))
        self.assertEqual((pair.alice.tunnels, pair.bob.tunnels), ([], []))

    def test_rotation(self) -> None:
        """
        With the old and the new fingerprint pinned, both certificates are
        accepted.
        """
        newCertificate = self.authority.issue(dnsNames=["alice.example"], client=True)
        pins = {"alice.example": [_digest(self.aliceCertificate), formatFingerprint(_digest(newCertificate))]}
        for certificate in (self.aliceCertificate, newCertificate):
            pair = self.pair({"pins": pins}, {"certificate": certificate})
            tunnel = self.successResultOf(self.open(pair))
            self.assertEqual(tunnel.peer, pair.bobJID)

    def test_pinsAloneSuffice(self) -> None:
        """
        A pinned certificate needs no authority: one from an authority the
        responder does not trust opens, even with no trust at all.
        """
        other = makeCertificateAuthority("other CA")
        certificate = other.issue(dnsNames=["alice.example"], client=True)
        for trust in ([self.authority.certificate], []):
            pair = self.pair(
                {"pins": {"alice.example": [_digest(certificate)]}, "trust": trust},
                {"certificate": certificate, "trust": [self.authority.certificate]},
            )
            self.successResultOf(self.open(pair))

    def test_pinnedIdentityStillChecked(self) -> None:
        """
        A pinned certificate must still name the peer.
        """
        certificate = self.authority.issue(dnsNames=["mallory.example"], client=True)
        pair = self.pair({"pins": {"alice.example": [_digest(certificate)]}}, {"certificate": certificate})
        failure = self.failureResultOf(self.open(pair), error.StanzaError)
        self.assertEqual(failure.value.condition, "not-acceptable")
        self.assertIn("no DNS-ID or XmppAddr", self.refusedAtBob()["reason"])

    def test_unpinnedPeerUsesTrust(self) -> None:
        """
        A peer without a pin is checked against the authorities as before:
        accepted if they issued its certificate, refused otherwise.
        """
        pins = {"carol.example": [b"\x01" * 32]}
        self.successResultOf(self.open(self.pair({"pins": pins})))
        other = makeCertificateAuthority("other CA")
        pair = self.pair({"pins": pins}, {"certificate": other.issue(dnsNames=["alice.example"], client=True)})
        self.assertEqual(self.failureResultOf(self.open(pair), error.StanzaError).value.condition, "not-acceptable")

    def test_pinsWithoutTrustRefuseUnpinned(self) -> None:
        """
        With pins and no authority, a peer without a pin is refused, and
        the log says why.
        """
        pair = self.pair({"pins": {"carol.example": [b"\x01" * 32]}, "trust": []})
        self.assertTrue(pair.bob.configuration.active)
        failure = self.failureResultOf(self.open(pair), error.StanzaError)
        self.assertEqual(failure.value.condition, "not-acceptable")
        self.assertIn("no pinned fingerprint for alice.example and no trusted authority",
                      self.refusedAtBob()["reason"])

    def test_userAndDomainPins(self) -> None:
        """
        A user is checked against the pins of its bare JID (the key
        normalised as a JID) or, when it has none, of its domain.
        """
        user = self.authority.issue(xmppAddrs=["alice@alice.example"], client=True)
        other = _digest(self.authority.issue(xmppAddrs=["alice@alice.example"], client=True))
        for pins, opens in (
            ({"Alice@ALICE.example": _digest(user).hex()}, True),
            ({"alice.example": [_digest(user)]}, True),
            ({"alice.example": [other]}, False),
            ({"alice@alice.example": [other], "alice.example": [_digest(user)]}, False),
        ):
            pair = Pair(
                self.authority,
                aliceConfig={"certificate": user},
                bobConfig={"pins": pins},
                aliceJID="alice@alice.example/home",
            )
            d = self.open(pair)
            if opens:
                self.successResultOf(d)
            else:
                self.failureResultOf(d, error.StanzaError)

    def test_badPins(self) -> None:
        """
        The configuration refuses keys that are not bare JIDs and
        fingerprints that are not SHA-256.
        """
        for pins, message in (
            ({"alice@example/r": [b"\x01" * 32]}, "without a resource"),
            ({"alice.example": ["ab:cd"]}, "64 hex digits"),
            ({"alice.example": ["zz" * 32]}, "'z' is not a hex digit"),
            ({"alice.example": ["abc:d"]}, "two hex digits"),
            ({"alice.example": [b"\x01"]}, "SHA-256 digests"),
            ({"alice.example": []}, "at least one"),
        ):
            with self.assertRaises(ValueError) as caught:
                XTLSConfiguration(pins=pins)
            self.assertIn(message, str(caught.exception))


class ParseTests(SynchronousTestCase):
    """
    L{parseFingerprint} and L{pinKey}.
    """

    def test_fingerprint(self) -> None:
        """
        With or without colons, in either case: the same 32 bytes.
        """
        digest = bytes(range(32))
        for text in (digest.hex(), digest.hex(":"), digest.hex(":").upper(), f"  {digest.hex().upper()} "):
            self.assertEqual(parseFingerprint(text), digest)

    def test_key(self) -> None:
        """
        Keys are bare JIDs or domains, normalised as L{JID.userhost}.
        """
        self.assertEqual(pinKey("Alice@Example.NET"), "alice@example.net")
        self.assertEqual(pinKey("Example.NET"), "example.net")
        self.assertEqual(pinKey("alice@example.net."), "alice@example.net")
        self.assertRaises(ValueError, pinKey, ".")
        self.assertRaises(ValueError, pinKey, "a@b@c")


class DocumentationTests(SynchronousTestCase):
    """
    The blocks of C{docs/protocols/xtls.md} marked as checked by these
    tests load (that page is not one of L{tests.test_snippets.pages}).
    """

    def test_pins(self) -> None:
        """
        The C{[xtls.pins]} example loads: a user's pin and a domain's two.
        """
        from tests.test_snippets import DOCS, loadComponentSnippet, parseSnippets

        with open(os.path.join(DOCS, "protocols", "xtls.md"), encoding="utf-8") as f:
            [block] = [s for s in parseSnippets(f.read(), "docs/protocols/xtls.md") if s.test == self.id()]
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        # A component with a server needs [httpauth] settled; this one runs no confirmer.
        pins = loadComponentSnippet("[httpauth]\nenabled = false\n" + block.body, directory).xtls.pins
        self.assertEqual(sorted(pins), ["alice@example.net", "example.org"])
        self.assertEqual(len(pins["example.org"]), 2)
        self.assertEqual(pins["alice@example.net"][0], pins["example.org"][0])
