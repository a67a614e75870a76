# -*- test-case-name: tests.test_xtls_e2e -*-
"""
Two XTLS endpoints in memory: real TLS handshakes, certificate checks,
stanzas of 10 bytes to 1 MiB both ways; and an independent peer built on
the standard library's C{ssl} module, proving the tunnel carries standard
TLS.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber import error
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from tests.xtlshelpers import Pair, Recorder, StdlibPeer, attachHandler
from xmppcomp.ns import NS_XTLS
from xmppcomp.testing import StanzaRouter, makeCertificateAuthority
from xmppcomp.xtls import HandshakeFailed, Tunnel, TunnelClosed, xmppAddresses

_BIG = {"maxStanzaSize": 2 * 1024 * 1024}


def message(size: int) -> domish.Element:
    """
    A message whose body has C{size} characters.
    """
    stanza = domish.Element((None, "message"))
    stanza.addElement("body", content="x" * size)
    return stanza


class TunnelTests(SynchronousTestCase):
    """
    Two L{xmppcomp.xtls.XTLSHandler}s through the in-memory router.
    """

    def openPair(self, pair: Pair) -> tuple[Tunnel, Tunnel]:
        d = pair.alice.open(pair.aliceJID, pair.bobJID)
        pair.router.flush()
        aliceTunnel = self.successResultOf(d)
        [bobTunnel] = pair.bob.tunnels
        return aliceTunnel, bobTunnel

    def test_exchange(self) -> None:
        """
        A tunnel opens; messages from 10 bytes to 1 MiB go both ways, in
        order, arrive with C{to}/C{from} filled in from the carrying IQ and
        marked C{xtlsEncrypted}; the peers' certificates name them; closing
        releases both ends.
        """
        pair = Pair(aliceConfig=_BIG, bobConfig=_BIG)
        aliceEvents, bobEvents = Recorder(), Recorder()
        pair.alice.addObserver(aliceEvents)
        pair.bob.addObserver(bobEvents)
        aliceTunnel, bobTunnel = self.openPair(pair)
        self.assertTrue(aliceTunnel.isOpen and bobTunnel.isOpen)
        self.assertIn(aliceTunnel.protocolVersion(), ("TLSv1.2", "TLSv1.3"))
        self.assertIn("bob.example", str(aliceTunnel.peerCertificate().extensions))
        self.assertIn("alice.example", str(bobTunnel.peerCertificate().extensions))
        self.assertEqual(aliceEvents.events, [("opened", aliceTunnel, None)])
        self.assertEqual(bobEvents.events, [("opened", bobTunnel, None)])

        atBob: list[domish.Element] = []
        atAlice: list[domish.Element] = []
        pair.bobEnd.addObserver("/message", atBob.append)
        pair.aliceEnd.addObserver("/message", atAlice.append)
        sizes = [10, 1000, 100_000, 1024 * 1024]
        for size in sizes:
            aliceTunnel.send(message(size))
            bobTunnel.send(message(size))
        pair.router.flush()
        self.assertEqual([len(str(m.body)) for m in atBob], sizes)
        self.assertEqual([len(str(m.body)) for m in atAlice], sizes)
        for m in atBob:
            self.assertEqual((m["from"], m["to"]), ("alice.example", "bob.example"))
            self.assertTrue(m.xtlsEncrypted)
        for m in atAlice:
            self.assertEqual((m["from"], m["to"]), ("bob.example", "alice.example"))
        self.assertIsNone(self.successResultOf(aliceTunnel.whenDrained()))

        d = aliceTunnel.close()
        pair.router.flush()
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual((pair.alice.tunnels, pair.bob.tunnels), ([], []))
        self.assertEqual(aliceEvents.events[-1], ("closed", aliceTunnel, None))
        self.assertEqual(bobEvents.events[-1], ("closed", bobTunnel, None))
        self.assertRaises(TunnelClosed, aliceTunnel.send, message(1))

    def test_plaintextNeverOnTheWire(self) -> None:
        """
        What the router carries does not contain the stanza's content.
        """
        pair = Pair()
        aliceTunnel, _ = self.openPair(pair)
        secret = domish.Element((None, "message"))
        secret.addElement("body", content="SECRET-MARKER")
        aliceTunnel.send(secret)
        pair.router.flush()
        wire = "".join(pair.aliceEnd.sent)
        self.assertNotIn("SECRET-MARKER", wire)
        self.assertIn(f"<data xmlns='{NS_XTLS}'>", wire)

    def test_userJIDs(self) -> None:
        """
        Between user JIDs, certificates are checked by XmppAddr.
        """
        pair = Pair(aliceJID="alice@alice.example/home", bobJID="bob@bob.example/work")
        aliceTunnel, bobTunnel = self.openPair(pair)
        self.assertEqual(
            xmppAddresses(aliceTunnel.peerCertificate()), frozenset({"bob@bob.example"})
        )
        self.assertEqual(bobTunnel.peer, JID("alice@alice.example/home"))

    def test_window(self) -> None:
        """
        At most C{window} data IQs are unacknowledged at any time.
        """
        pair = Pair(aliceConfig={"window": 2, "chunkSize": 1024})
        aliceTunnel, _ = self.openPair(pair)
        before = len(pair.aliceEnd.sent)
        aliceTunnel.send(message(50_000))
        self.assertEqual(len(pair.aliceEnd.sent) - before, 2)
        self.assertNoResult(aliceTunnel.whenDrained())
        pair.router.flush()
        self.assertGreater(len(pair.aliceEnd.sent) - before, 40)
        self.successResultOf(aliceTunnel.whenDrained())

    def test_simultaneousOpen(self) -> None:
        """
        When both ends open at once, both get the one tunnel started by the
        JID that sorts first.
        """
        pair = Pair()
        fromAlice = pair.alice.open(pair.aliceJID, pair.bobJID)
        fromBob = pair.bob.open(pair.bobJID, pair.aliceJID)
        pair.router.flush()
        aliceTunnel = self.successResultOf(fromAlice)
        bobTunnel = self.successResultOf(fromBob)
        self.assertTrue(aliceTunnel.initiator)
        self.assertFalse(bobTunnel.initiator)
        self.assertEqual((len(pair.alice.tunnels), len(pair.bob.tunnels)), (1, 1))

    def test_nameMismatch(self) -> None:
        """
        A server certificate for another name fails the handshake: the open
        fails with L{HandshakeFailed} and both ends are released.
        """
        authority = makeCertificateAuthority()
        pair = Pair(
            authority,
            bobConfig={"certificate": authority.issue(dnsNames=["mallory.example"], client=True)},
        )
        d = pair.alice.open(pair.aliceJID, pair.bobJID)
        pair.router.flush()
        failure = self.failureResultOf(d, HandshakeFailed)
        self.assertIn("bob.example", str(failure.value))
        self.assertEqual((pair.alice.tunnels, pair.bob.tunnels), ([], []))

    def test_clientNameMismatch(self) -> None:
        """
        A client certificate for another name fails too: the responder
        answers with an error, which fails the initiator's open.
        """
        authority = makeCertificateAuthority()
        pair = Pair(
            authority,
            aliceConfig={"certificate": authority.issue(dnsNames=["mallory.example"], client=True)},
        )
        d = pair.alice.open(pair.aliceJID, pair.bobJID)
        pair.router.flush()
        failure = self.failureResultOf(d, error.StanzaError)
        self.assertEqual(failure.value.condition, "not-acceptable")
        self.assertEqual((pair.alice.tunnels, pair.bob.tunnels), ([], []))

    def test_untrustedAuthority(self) -> None:
        """
        A certificate from an authority the other end does not trust fails
        the handshake.
        """
        other = makeCertificateAuthority("other CA")
        pair = Pair(
            bobConfig={"certificate": other.issue(dnsNames=["bob.example"], client=True)},
        )
        d = pair.alice.open(pair.aliceJID, pair.bobJID)
        pair.router.flush()
        failure = self.failureResultOf(d, HandshakeFailed)
        self.assertIn("untrusted", str(failure.value))
        self.assertEqual((pair.alice.tunnels, pair.bob.tunnels), ([], []))


class IndependentPeerTests(SynchronousTestCase):
    """
    Our endpoint against the standard library's TLS.
    """

    def setUp(self) -> None:
        self.authority = makeCertificateAuthority()
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        self.router = StanzaRouter()
        from twisted.internet.task import Clock

        from xmppcomp.xtls import XTLSConfiguration, XTLSHandler

        self.handler = XTLSHandler(
            XTLSConfiguration(
                certificate=self.authority.issue(dnsNames=["comp.example"], client=True),
                trust=[self.authority.certificate],
            ),
            clock=Clock(),
        )
        self.end = attachHandler(self.router, "comp.example", self.handler, Clock())
        self.messages: list[domish.Element] = []
        self.end.addObserver("/message", self.messages.append)

    def exchange(self, tunnel: Tunnel, peer: StdlibPeer) -> None:
        tunnel.send(message(10))
        tunnel.send(message(200_000))
        self.router.flush()
        self.assertTrue(peer.plaintext.startswith(b"<message><body>xxxxxxxxxx</body></message>"))
        self.assertEqual(len(peer.plaintext), 2 * len(b"<message><body></body></message>") + 200_010)
        peer.write(b"<message type='chat'><body>from the ssl module</body></message>")
        self.router.flush()
        [received] = self.messages
        self.assertEqual(str(received.body), "from the ssl module")
        self.assertEqual(received["from"], "std.example")
        self.assertTrue(received.xtlsEncrypted)

    def test_stdlibServer(self) -> None:
        """
        We open a tunnel to a peer whose TLS server is C{ssl.SSLObject}:
        the handshake completes with mutual certificates and stanzas go
        both ways.
        """
        peer = StdlibPeer(self.router, self.authority, "std.example", server=True, directory=self.directory)
        d = self.handler.open(JID("comp.example"), JID("std.example"))
        self.router.flush()
        tunnel = self.successResultOf(d)
        self.assertTrue(peer.handshakeDone)
        self.assertIn("comp.example", str(peer.tls.getpeercert()))
        self.exchange(tunnel, peer)

    def test_stdlibClient(self) -> None:
        """
        A peer whose TLS client is C{ssl.SSLObject} opens a tunnel to us.
        """
        peer = StdlibPeer(self.router, self.authority, "std.example", server=False, directory=self.directory)
        peer.start("comp.example")
        self.router.flush()
        self.assertTrue(peer.handshakeDone)
        [tunnel] = self.handler.tunnels
        self.assertTrue(tunnel.isOpen)
        self.assertEqual(tunnel.peerCertificate().subject.rfc4514_string(), "CN=std.example")
        self.exchange(tunnel, peer)
