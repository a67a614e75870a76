# -*- test-case-name: tests.test_xtls_events -*-
"""
Tests for what L{xmppcomp.xtls.XTLSHandler} logs and counts about its
tunnels (L{xmppcomp.xtls._events}): the lines of a tunnel opened, refused
and closed, captured with a L{twisted.logger} observer, and the counters
C{xmppcomp_xtls_tunnels_opened_total} and
C{xmppcomp_xtls_tunnels_refused_total}; through real handlers, with real
TLS handshakes in memory where there is one.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from twisted.internet.ssl import PrivateCertificate
from twisted.logger import (
    LogEvent,
    LogLevel,
    eventAsJSON,
    formatEvent,
    globalLogPublisher,
)
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber import error
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from tests.test_xtls_e2e import message
from tests.test_xtls_handler import Scripted, condition
from tests.xtlshelpers import Pair
from xmppcomp.metrics import Metrics
from xmppcomp.ns import NS_XTLS
from xmppcomp.testing import makeCertificateAuthority
from xmppcomp.xtls import CertificateMismatch, PeerUnavailable, Tunnel, XTLSStanzaError
from xmppcomp.xtls._inner import serializeStanza

OPENED = "xmppcomp_xtls_tunnels_opened_total"
REFUSED = "xmppcomp_xtls_tunnels_refused_total"


def captureTunnelEvents(testCase: SynchronousTestCase) -> list[LogEvent]:
    """
    Record the log events of the namespace C{xmppcomp.xtls} until the end
    of the test.
    """
    events: list[LogEvent] = []

    def observer(event: LogEvent) -> None:
        if event.get("log_namespace") == "xmppcomp.xtls":
            events.append(event)

    globalLogPublisher.addObserver(observer)
    testCase.addCleanup(globalLogPublisher.removeObserver, observer)
    return events


def kind(event: LogEvent) -> str:
    """
    Which line an event is: C{opened}, C{refused} or C{closed}.
    """
    return str(event["xtls"])


def at(events: list[LogEvent], local: str) -> list[LogEvent]:
    """
    The events of the end whose JID is C{local}.
    """
    return [e for e in events if e["local"] == local]


def fingerprint(certificate: PrivateCertificate | x509.Certificate) -> str:
    """
    The SHA-256 fingerprint of a certificate, as the log gives it.
    """
    if isinstance(certificate, PrivateCertificate):
        certificate = certificate.original.to_cryptography()
    return certificate.fingerprint(hashes.SHA256()).hex(":")


def refused(metrics: Metrics, by: str, condition: str) -> float:
    """
    The count of tunnels refused by C{by} with C{condition}.
    """
    return metrics.value(REFUSED, {"by": by, "condition": condition})


def refusals(metrics: Metrics) -> list[tuple[dict[str, str], float]]:
    """
    Every sample of the refusal counter: its labels and value.
    """
    return [
        (sample.labels, sample.value)
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == REFUSED
    ]


class _Base(SynchronousTestCase):
    def setUp(self) -> None:
        self.events = captureTunnelEvents(self)
        self.metrics = Metrics()

    def pair(self, **kwargs: Any) -> Pair:
        return Pair(metrics=self.metrics, **kwargs)

    def openPair(self, pair: Pair, local: JID | None = None) -> Tunnel:
        d = pair.alice.open(local or pair.aliceJID, pair.bobJID)
        pair.router.flush()
        return self.successResultOf(d)

    def only(self, local: str) -> LogEvent:
        [event] = at(self.events, local)
        return event


class OpenedTests(_Base):
    """
    The line of a tunnel that opened.
    """

    def test_opened(self) -> None:
        """
        Each end logs the tunnel opened, at C{info}, with the peer's JID,
        our JID, its role, the subject and SHA-256 fingerprint of the
        peer's certificate, and the TLS version and suite; each counts it.
        """
        pair = self.pair()
        tunnel = self.openPair(pair)
        alice, bob = self.only("alice.example"), self.only("bob.example")
        for event in (alice, bob):
            self.assertEqual(kind(event), "opened")
            self.assertEqual(event["log_level"], LogLevel.info)
        self.assertEqual(
            (alice["peer"], alice["role"], alice["subject"]),
            ("bob.example", "initiator", "CN=bob.example"),
        )
        self.assertEqual(alice["fingerprint"], fingerprint(pair.bob.configuration.certificate))
        self.assertEqual(
            (bob["peer"], bob["role"], bob["subject"]),
            ("alice.example", "responder", "CN=alice.example"),
        )
        self.assertEqual(bob["fingerprint"], fingerprint(pair.alice.configuration.certificate))
        self.assertEqual(alice["protocol"], tunnel.protocolVersion())
        self.assertEqual(alice["cipher"], tunnel.cipherName())
        self.assertEqual(
            formatEvent(alice),
            f"XTLS tunnel with bob.example opened (initiator, as alice.example): peer "
            f"certificate CN=bob.example, SHA-256 {alice['fingerprint']}; "
            f"{tunnel.protocolVersion()} {tunnel.cipherName()}",
        )
        self.assertEqual(self.metrics.value(OPENED), 2.0)

    def test_json(self) -> None:
        """
        The fields survive Twisted's JSON form (what C{--logger
        xmppcomp.logs.json} writes), each as its own key.
        """
        pair = self.pair()
        self.openPair(pair)
        line = json.loads(eventAsJSON(self.only("alice.example")))
        self.assertEqual(line["xtls"], "opened")
        self.assertEqual(line["peer"], "bob.example")
        self.assertEqual(line["subject"], "CN=bob.example")
        self.assertEqual(len(line["fingerprint"]), 32 * 3 - 1)


class ClosedTests(_Base):
    """
    The line of a tunnel released.
    """

    def test_closedWithBytes(self) -> None:
        """
        Closing logs, at each end, who closed the tunnel, the application
        bytes each way (the serialised stanzas, not the TLS records), the
        seconds since the start and the peer's certificate; the tunnel
        gives the same counts.
        """
        pair = self.pair()
        aliceTunnel = self.openPair(pair)
        [bobTunnel] = pair.bob.tunnels
        toBob, toAlice = message(1000), message(30)
        aliceTunnel.send(toBob)
        bobTunnel.send(toAlice)
        pair.router.flush()
        bigger, smaller = len(serializeStanza(toBob)), len(serializeStanza(toAlice))
        pair.clock.advance(90)
        del self.events[:]
        self.successResultOf(self.closing(pair, aliceTunnel))
        alice, bob = self.only("alice.example"), self.only("bob.example")
        self.assertEqual(kind(alice), "closed")
        self.assertEqual(kind(bob), "closed")
        self.assertTrue(alice["opened"] and bob["opened"])
        self.assertEqual(
            (alice["reason"], alice["bytesIn"], alice["bytesOut"], alice["seconds"]),
            ("closed by us", smaller, bigger, 90.0),
        )
        self.assertEqual(
            (bob["reason"], bob["bytesIn"], bob["bytesOut"]),
            ("closed by the peer", bigger, smaller),
        )
        self.assertEqual((aliceTunnel.bytesReceived, aliceTunnel.bytesSent), (smaller, bigger))
        self.assertEqual((bobTunnel.bytesReceived, bobTunnel.bytesSent), (bigger, smaller))
        self.assertEqual(alice["subject"], "CN=bob.example")
        self.assertEqual(alice["fingerprint"], fingerprint(pair.bob.configuration.certificate))
        self.assertEqual(alice["log_level"], LogLevel.info)
        self.assertEqual(
            formatEvent(alice),
            f"XTLS tunnel with bob.example closed (initiator, as alice.example): closed by "
            f"us; {smaller} bytes in, {bigger} bytes out in 90.0 s; peer certificate "
            f"CN=bob.example, SHA-256 {alice['fingerprint']}",
        )
        self.assertEqual(refusals(self.metrics), [])

    def closing(self, pair: Pair, tunnel: Tunnel) -> Any:
        d = tunnel.close()
        pair.router.flush()
        return d

    def test_streamLost(self) -> None:
        """
        A tunnel released because the stream was lost logs the reason.
        """
        pair = self.pair()
        self.openPair(pair)
        del self.events[:]
        pair.alice.connectionLost(Failure(Exception("gone")))
        alice = self.only("alice.example")
        self.assertEqual(kind(alice), "closed")
        self.assertEqual(alice["reason"], "PeerUnavailable: the XML stream was lost")
        self.assertEqual((alice["bytesIn"], alice["bytesOut"]), (0, 0))

    def test_endedBeforeOpening(self) -> None:
        """
        A tunnel whose start nobody answers ends before it opened: logged
        with the reason, and neither opened nor refused.
        """
        s = Scripted(ackTimeout=3.0, metrics=self.metrics)
        d = s.handler.open(JID("comp.example"), JID("peer.example/r"))
        s.clock.advance(3.0)
        self.failureResultOf(d, PeerUnavailable)
        [event] = self.events
        self.assertEqual(kind(event), "closed")
        self.assertFalse(event["opened"])
        self.assertIn("ended before it opened", formatEvent(event))
        self.assertTrue(event["reason"].startswith("PeerUnavailable: "), event["reason"])
        self.assertEqual(event["certificate"], "not seen")
        self.assertEqual(self.metrics.value(OPENED), 0)
        self.assertEqual(refusals(self.metrics), [])


class RefusedLimitTests(_Base):
    """
    Tunnels refused by a limit.
    """

    def test_tunnelLimit(self) -> None:
        """
        A start beyond C{maxTunnels} is logged as refused by this end with
        C{resource-constraint} and the limit; the peer logs that it was
        refused with that condition. Each counts its side.
        """
        pair = self.pair(bobConfig={"maxTunnels": 1})
        self.openPair(pair)
        del self.events[:]
        d = pair.alice.open(JID("alice.example/second"), pair.bobJID)
        pair.router.flush()
        self.failureResultOf(d, error.StanzaError)
        bob = self.only("bob.example")
        self.assertEqual(kind(bob), "refused")
        self.assertEqual(
            (bob["peer"], bob["role"], bob["by"], bob["condition"], bob["reason"]),
            (
                "alice.example/second",
                "responder",
                "local",
                "resource-constraint",
                "tunnel limit reached: 1 open, maxTunnels is 1",
            ),
        )
        self.assertEqual(bob["log_level"], LogLevel.info)
        self.assertEqual(
            formatEvent(bob),
            "XTLS tunnel with alice.example/second refused (responder, as bob.example): "
            "resource-constraint (tunnel limit reached: 1 open, maxTunnels is 1); "
            "peer certificate not seen",
        )
        alice = self.only("alice.example/second")
        self.assertEqual(
            (alice["by"], alice["condition"], alice["role"]),
            ("peer", "resource-constraint", "initiator"),
        )
        self.assertEqual(
            formatEvent(alice),
            "XTLS tunnel with bob.example refused by the peer (initiator, as "
            "alice.example/second): resource-constraint (too many tunnels); peer "
            "certificate not seen",
        )
        self.assertEqual(refused(self.metrics, "local", "resource-constraint"), 1)
        self.assertEqual(refused(self.metrics, "peer", "resource-constraint"), 1)
        self.assertEqual(self.metrics.value(OPENED), 2)

    def test_perPeerLimit(self) -> None:
        """
        A start beyond C{maxTunnelsPerPeer} from one bare JID is logged as
        refused with the per-peer limit.
        """
        pair = self.pair(bobConfig={"maxTunnelsPerPeer": 1})
        self.openPair(pair)
        del self.events[:]
        d = pair.alice.open(JID("alice.example/second"), pair.bobJID)
        pair.router.flush()
        self.failureResultOf(d, error.StanzaError)
        bob = self.only("bob.example")
        self.assertEqual(
            (bob["by"], bob["condition"], bob["reason"]),
            (
                "local",
                "resource-constraint",
                "per-peer limit reached: 1 open with alice.example, maxTunnelsPerPeer is 1",
            ),
        )
        self.assertEqual(refused(self.metrics, "local", "resource-constraint"), 1)

    def test_ownOpenOverLimit(self) -> None:
        """
        An L{XTLSHandler.open} that our own limit refuses sends nothing and
        is logged and counted as refused here.
        """
        pair = self.pair(aliceConfig={"maxTunnels": 1})
        self.openPair(pair)
        del self.events[:]
        d = pair.alice.open(JID("alice.example/second"), pair.bobJID)
        self.failureResultOf(d, XTLSStanzaError)
        alice = self.only("alice.example/second")
        self.assertEqual(
            (alice["role"], alice["by"], alice["condition"], alice["reason"]),
            ("initiator", "local", "resource-constraint", "tunnel limit reached: 1 open, maxTunnels is 1"),
        )
        self.assertEqual(refused(self.metrics, "local", "resource-constraint"), 1)


class RefusedCertificateTests(_Base):
    """
    Tunnels whose handshake refused a certificate.
    """

    def test_nameMismatch(self) -> None:
        """
        A certificate that does not name the peer: the end that checked it
        logs the refusal (C{not-acceptable}) with the problem and the
        subject and fingerprint of the certificate it refused; the other
        end logs that the peer refused it, with the same reason.
        """
        authority = makeCertificateAuthority()
        mallory = authority.issue(dnsNames=["mallory.example"], client=True)
        pair = self.pair(authority=authority, bobConfig={"certificate": mallory})
        d = pair.alice.open(pair.aliceJID, pair.bobJID)
        pair.router.flush()
        self.failureResultOf(d, CertificateMismatch)
        alice, bob = self.only("alice.example"), self.only("bob.example")
        problem = "certificate of bob.example: no DNS-ID or XmppAddr for the domain bob.example"
        self.assertEqual(kind(alice), "refused")
        self.assertEqual(
            (alice["by"], alice["condition"], alice["reason"], alice["subject"]),
            ("local", "not-acceptable", problem, "CN=mallory.example"),
        )
        self.assertEqual(alice["fingerprint"], fingerprint(mallory))
        self.assertEqual(
            formatEvent(alice),
            f"XTLS tunnel with bob.example refused (initiator, as alice.example): "
            f"not-acceptable ({problem}); peer certificate CN=mallory.example, SHA-256 "
            f"{fingerprint(mallory)}",
        )
        self.assertEqual(kind(bob), "refused")
        self.assertEqual(
            (bob["by"], bob["condition"], bob["reason"], bob["role"]),
            ("peer", "not-acceptable", problem, "responder"),
        )
        self.assertEqual(refused(self.metrics, "local", "not-acceptable"), 1)
        self.assertEqual(refused(self.metrics, "peer", "not-acceptable"), 1)
        self.assertEqual(self.metrics.value(OPENED), 0)

    def test_clientNameMismatch(self) -> None:
        """
        The responder refusing the initiator's certificate logs the
        certificate it refused too (it checked the leaf).
        """
        authority = makeCertificateAuthority()
        mallory = authority.issue(dnsNames=["mallory.example"], client=True)
        pair = self.pair(authority=authority, aliceConfig={"certificate": mallory})
        d = pair.alice.open(pair.aliceJID, pair.bobJID)
        pair.router.flush()
        self.failureResultOf(d, error.StanzaError)
        bob = self.only("bob.example")
        self.assertEqual(
            (bob["by"], bob["condition"], bob["subject"], bob["fingerprint"]),
            ("local", "not-acceptable", "CN=mallory.example", fingerprint(mallory)),
        )
        self.assertEqual(self.only("alice.example")["by"], "peer")

    def test_untrustedAuthority(self) -> None:
        """
        A certificate from an authority the initiator does not trust: the
        refusal names the verification error and the certificate refused.
        """
        pair = self.pair(aliceConfig={"trust": [makeCertificateAuthority().certificate]})
        d = pair.alice.open(pair.aliceJID, pair.bobJID)
        pair.router.flush()
        self.failureResultOf(d, CertificateMismatch)
        alice = self.only("alice.example")
        self.assertEqual(
            (alice["by"], alice["condition"], alice["reason"], alice["subject"]),
            (
                "local",
                "not-acceptable",
                "certificate of bob.example: self-signed certificate in the chain",
                "CN=bob.example",
            ),
        )
        self.assertEqual(alice["fingerprint"], fingerprint(pair.bob.configuration.certificate))
        self.assertEqual(self.only("bob.example")["by"], "peer")

    def test_untrustedClientAuthority(self) -> None:
        """
        The responder refusing the initiator's authority logs the
        verification error; OpenSSL stops above the initiator's own
        certificate and does not show it to a server, so the line says the
        certificate was not seen.
        """
        pair = self.pair(bobConfig={"trust": [makeCertificateAuthority().certificate]})
        d = pair.alice.open(pair.aliceJID, pair.bobJID)
        pair.router.flush()
        self.failureResultOf(d, error.StanzaError)
        bob = self.only("bob.example")
        self.assertEqual(
            (bob["by"], bob["condition"], bob["reason"]),
            ("local", "not-acceptable", "certificate of alice.example: self-signed certificate in the chain"),
        )
        self.assertEqual((bob["subject"], bob["fingerprint"], bob["certificate"]), (None, None, "not seen"))


class RefusedStartTests(_Base):
    """
    Starts and data refused by the protocol, driven by a scripted peer.
    """

    def scripted(self, **config: object) -> Scripted:
        return Scripted(metrics=self.metrics, **config)

    def assertRefusedHere(self, condition: str, reason: str, peer: str = "peer.example/r") -> LogEvent:
        [event] = self.events
        self.assertEqual(kind(event), "refused")
        self.assertEqual(
            (event["peer"], event["local"], event["by"], event["condition"], event["reason"]),
            (peer, "comp.example", "local", condition, reason),
        )
        self.assertEqual(refused(self.metrics, "local", condition), 1)
        return event

    def test_disabled(self) -> None:
        """
        A start while XTLS is disabled: C{service-unavailable}, and why.
        """
        s = self.scripted(enabled=False)
        self.assertEqual(condition(s.start()), "service-unavailable")
        self.assertRefusedHere("service-unavailable", "XTLS is disabled")

    def test_noCertificate(self) -> None:
        """
        A start without a certificate configured says so.
        """
        s = self.scripted(certificate=None)
        self.assertEqual(condition(s.start()), "service-unavailable")
        self.assertRefusedHere("service-unavailable", "XTLS has no certificate")

    def test_policy(self) -> None:
        """
        A start the accept policy declines: C{not-acceptable}.
        """
        s = self.scripted(acceptPolicy=lambda local, peer: False)
        self.assertEqual(condition(s.start()), "not-acceptable")
        self.assertRefusedHere("not-acceptable", "the accept policy declined the peer")

    def test_conflict(self) -> None:
        """
        The peer's start that loses against ours: C{conflict}, saying that
        ours goes on.
        """
        s = self.scripted(local="comp.example")
        s.handler.open(JID("comp.example"), JID("peer.example/r"))
        s.router.flush()
        self.assertEqual(condition(s.start()), "conflict")
        self.assertRefusedHere("conflict", "both ends started at once; ours has priority and goes on")

    def test_noSender(self) -> None:
        """
        A start without C{from}: C{bad-request}, logged with no address.
        """
        s = self.scripted()
        iq = domish.Element((None, "iq"))
        iq["type"], iq["to"] = "set", "comp.example"
        iq.addElement((NS_XTLS, "start"))
        exc = self.assertRaises(error.StanzaError, s.handler._onStart, iq)
        self.assertEqual(exc.condition, "bad-request")
        self.assertRefusedHere("bad-request", "no from address", peer="(no address)")

    def test_emptySender(self) -> None:
        """
        An empty C{from} is no address either (not a C{RuntimeError} from
        L{JID}).
        """
        s = self.scripted()
        iq = domish.Element((None, "iq"))
        iq["type"], iq["to"], iq["from"] = "set", "comp.example", ""
        iq.addElement((NS_XTLS, "start"))
        exc = self.assertRaises(error.StanzaError, s.handler._onStart, iq)
        self.assertEqual(exc.condition, "bad-request")
        self.assertRefusedHere("bad-request", "no from address", peer="(no address)")

    def test_badData(self) -> None:
        """
        A first data IQ that is not base64: the tunnel is refused with
        C{bad-request}; it ends there, with no close line.
        """
        s = self.scripted()
        s.start()
        answer = s.request(f"<data xmlns='{NS_XTLS}' method='x509'>not base64!</data>")
        self.assertEqual(condition(answer), "bad-request")
        event = self.assertRefusedHere("bad-request", "the data is not base64")
        self.assertEqual(event["role"], "responder")

    def test_otherMethod(self) -> None:
        """
        A TLS method other than C{x509}: C{feature-not-implemented}.
        """
        s = self.scripted()
        s.start()
        answer = s.request(f"<data xmlns='{NS_XTLS}' method='srp'>AAAA</data>")
        self.assertEqual(condition(answer), "feature-not-implemented")
        self.assertRefusedHere("feature-not-implemented", "TLS method 'srp' not implemented")

    def test_notTLS(self) -> None:
        """
        Bytes that are no TLS handshake: C{not-acceptable}, with OpenSSL's
        reason.
        """
        s = self.scripted()
        s.start()
        s.request(f"<data xmlns='{NS_XTLS}' method='x509'>AAAAAAAAAAAA</data>")
        [event] = self.events
        self.assertEqual((event["by"], event["condition"]), ("local", "not-acceptable"))
        self.assertTrue(event["reason"].startswith("TLS failed: "), event["reason"])

    def test_peerRefusesStart(self) -> None:
        """
        Our start answered with an error: refused by the peer, with its
        condition and text.
        """
        s = self.scripted()
        d = s.handler.open(JID("comp.example"), JID("peer.example/r"))
        s.router.flush()
        [start] = s.requestsFromHandler("start")
        s.answer(
            start,
            "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
            "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>off for maintenance</text></error>",
            "error",
        )
        self.failureResultOf(d, error.StanzaError)
        [event] = self.events
        self.assertEqual(
            (event["role"], event["by"], event["condition"], event["reason"]),
            ("initiator", "peer", "service-unavailable", "off for maintenance"),
        )
        self.assertEqual(refused(self.metrics, "peer", "service-unavailable"), 1)
