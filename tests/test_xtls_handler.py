# -*- test-case-name: tests.test_xtls_handler -*-
"""
Tests for L{xmppcomp.xtls.XTLSHandler}: each answer of the negotiation,
driven by raw IQs from a scripted peer through the in-memory router.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber import error
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from wokkel.iwokkel import IDisco
from zope.interface.verify import verifyObject

from xmppcomp.metrics import Metrics
from xmppcomp.ns import NS_XTLS
from xmppcomp.xtls import (
    ITunnelObserver,
    Offer,
    PeerUnavailable,
    TunnelReplaced,
    XTLSConfiguration,
    XTLSHandler,
    XTLSStanzaError,
    certificateHash,
)
from tests.test_iqtracker import ID_PATTERN, mismatched
from tests.xtlshelpers import Recorder, attachHandler

from twisted.internet.task import Clock

from xmppcomp.testing import StanzaRouter, makeCertificateAuthority

_AUTHORITY = makeCertificateAuthority()
_CERTIFICATE = _AUTHORITY.issue(dnsNames=["comp.example"], client=True)


class Scripted:
    """
    An L{XTLSHandler} for C{comp.example} and a peer at C{peer.example}
    that the test scripts with raw XML.
    """

    def __init__(
        self, local: str = "comp.example", metrics: Metrics | None = None, **config: object
    ) -> None:
        settings: dict[str, object] = {
            "certificate": _CERTIFICATE,
            "trust": [_AUTHORITY.certificate],
        }
        settings.update(config)
        self.clock = Clock()
        self.router = StanzaRouter()
        self.local = JID(local)
        self.handler = XTLSHandler(XTLSConfiguration(**settings), clock=self.clock, metrics=metrics)  # type: ignore[arg-type]
        self.recorder = Recorder()
        self.handler.addObserver(self.recorder)
        attachHandler(self.router, self.local.host, self.handler, self.clock)
        self.peerEnd = self.router.connect("peer.example")
        self.received: list[domish.Element] = []
        self.peerEnd.addObserver("/iq", self.received.append)
        self.serial = 0

    def request(self, payload: str, sender: str = "peer.example/r", to: str | None = None) -> domish.Element:
        """
        Send an IQ set from the peer, deliver everything, and return the
        answer to it.
        """
        self.serial += 1
        identifier = f"t{self.serial}"
        self.peerEnd.send(
            f"<iq type='set' id='{identifier}' from='{sender}'"
            f" to='{to or self.local.full()}'>{payload}</iq>"
        )
        self.router.flush()
        for iq in self.received:
            if iq.getAttribute("id") == identifier and iq["type"] in ("result", "error"):
                return iq
        raise AssertionError(f"no answer to {identifier}")

    def start(self, sender: str = "peer.example/r") -> domish.Element:
        return self.request(f"<start xmlns='{NS_XTLS}'/>", sender)

    def requestsFromHandler(self, name: str) -> list[domish.Element]:
        return [
            iq
            for iq in self.received
            if iq["type"] == "set" and any(c.name == name for c in iq.elements(NS_XTLS))
        ]

    def answer(self, iq: domish.Element, payload: str = "", kind: str = "result") -> None:
        self.peerEnd.send(
            f"<iq type='{kind}' id='{iq['id']}' from='{iq['to']}' to='{iq['from']}'>{payload}</iq>"
        )
        self.router.flush()


def condition(iq: domish.Element) -> str | None:
    """
    The stanza error condition of an IQ error, or C{None}.
    """
    if iq["type"] != "error":
        return None
    return error.exceptionFromStanza(iq).condition


class NegotiationTests(SynchronousTestCase):
    """
    The answers to C{<start/>}.
    """

    def test_proceed(self) -> None:
        """
        A start is answered by a result with C{<proceed/>}, and the tunnel
        exists from then on.
        """
        s = Scripted()
        answer = s.start()
        self.assertEqual(answer["type"], "result")
        self.assertEqual([c.name for c in answer.elements(NS_XTLS)], ["proceed"])
        self.assertEqual(len(s.handler.tunnels), 1)
        tunnel = s.handler.tunnels[0]
        self.assertEqual(tunnel.key, ("comp.example", "peer.example/r"))
        self.assertFalse(tunnel.initiator)

    def test_serviceUnavailableWhenDisabled(self) -> None:
        """
        With XTLS disabled a start gets C{service-unavailable}.
        """
        s = Scripted(enabled=False)
        self.assertEqual(condition(s.start()), "service-unavailable")
        self.assertEqual(s.handler.tunnels, [])

    def test_serviceUnavailableWithoutCertificate(self) -> None:
        """
        Without a certificate XTLS is off: C{service-unavailable}.
        """
        s = Scripted(certificate=None)
        self.assertEqual(condition(s.start()), "service-unavailable")

    def test_notAcceptableByPolicy(self) -> None:
        """
        When the accept policy declines the peer, the start gets
        C{not-acceptable} of type C{cancel}; the policy sees both JIDs.
        """
        seen: list[tuple[JID, JID]] = []

        def policy(local: JID, peer: JID) -> bool:
            seen.append((local, peer))
            return False

        s = Scripted(acceptPolicy=policy)
        answer = s.start()
        self.assertEqual(condition(answer), "not-acceptable")
        self.assertEqual(error.exceptionFromStanza(answer).type, "cancel")
        self.assertEqual(seen, [(JID("comp.example"), JID("peer.example/r"))])

    def test_offerEchoed(self) -> None:
        """
        A XEP-0250 offer in the start is parsed and answered with our own in
        the proceed: the SHA-256 hash of our certificate.
        """
        s = Scripted()
        offer = Offer(["abc123"], ["srp"]).toElement().toXml()
        answer = s.request(f"<start xmlns='{NS_XTLS}'>{offer}</start>")
        proceed = next(answer.elements(NS_XTLS, "proceed"))
        ours = Offer.fromElement(next(proceed.elements()))
        self.assertEqual(
            ours.keyNames, (certificateHash(_CERTIFICATE.original.to_cryptography()),)
        )
        self.assertEqual(s.handler.tunnels[0].peerOffer, Offer(["abc123"], ["srp"]))

    def test_noOfferNoEcho(self) -> None:
        """
        Without an offer in the start, the proceed is empty.
        """
        s = Scripted()
        proceed = next(s.start().elements(NS_XTLS, "proceed"))
        self.assertEqual(list(proceed.elements()), [])

    def test_resourceConstraintPerPeer(self) -> None:
        """
        Beyond C{maxTunnelsPerPeer} tunnels with one bare JID, a start gets
        C{resource-constraint}.
        """
        s = Scripted(maxTunnelsPerPeer=1)
        self.assertEqual(s.start("peer.example/a")["type"], "result")
        self.assertEqual(condition(s.start("peer.example/b")), "resource-constraint")
        self.assertEqual(len(s.handler.tunnels), 1)

    def test_resourceConstraintTotal(self) -> None:
        """
        Beyond C{maxTunnels} tunnels in all, a start gets
        C{resource-constraint}, and so does L{XTLSHandler.open}.
        """
        s = Scripted(maxTunnels=1)
        self.assertEqual(s.start("peer.example/a")["type"], "result")
        self.assertEqual(condition(s.start("x@peer.example/b")), "resource-constraint")
        failure = self.failureResultOf(
            s.handler.open(JID("comp.example"), JID("third.example")), XTLSStanzaError
        )
        self.assertEqual(failure.value.condition, "resource-constraint")

    def test_openWhenDisabled(self) -> None:
        """
        L{XTLSHandler.open} fails at once when XTLS is off.
        """
        s = Scripted(enabled=False)
        failure = self.failureResultOf(
            s.handler.open(JID("comp.example"), JID("peer.example/r")), XTLSStanzaError
        )
        self.assertEqual(failure.value.condition, "service-unavailable")

    def test_newStartReplaces(self) -> None:
        """
        A new start from the same pair of JIDs replaces the old tunnel,
        which is closed with L{TunnelReplaced}.
        """
        s = Scripted()
        s.start()
        old = s.handler.tunnels[0]
        self.assertEqual(s.start()["type"], "result")
        self.assertEqual(len(s.handler.tunnels), 1)
        self.assertIsNot(s.handler.tunnels[0], old)
        self.assertEqual(s.recorder.events[0][0:2], ("closed", old))
        self.assertIsInstance(s.recorder.events[0][2], TunnelReplaced)

    def test_startWithoutAddresses(self) -> None:
        """
        A start without C{from} is a C{bad-request}.
        """
        s = Scripted()
        iq = domish.Element((None, "iq"))
        iq["type"], iq["to"] = "set", "comp.example"
        iq.addElement((NS_XTLS, "start"))
        exc = self.assertRaises(error.StanzaError, s.handler._onStart, iq)
        self.assertEqual(exc.condition, "bad-request")


class ConflictTests(SynchronousTestCase):
    """
    Two simultaneous starts: the start of the JID that sorts first wins.
    """

    def test_weSortFirst(self) -> None:
        """
        When our JID sorts first, the peer's start is answered with
        C{conflict} and our start goes on: its proceed starts the handshake.
        """
        s = Scripted(local="comp.example")
        d = s.handler.open(JID("comp.example"), JID("peer.example/r"))
        s.router.flush()
        [ourStart] = s.requestsFromHandler("start")
        self.assertEqual(condition(s.start()), "conflict")
        s.answer(ourStart, f"<proceed xmlns='{NS_XTLS}'/>")
        [hello] = s.requestsFromHandler("data")
        self.assertEqual(next(hello.elements(NS_XTLS, "data"))["method"], "x509")
        self.assertTrue(s.handler.tunnels[0].initiator)
        self.assertNoResult(d)

    def test_peerSortsFirst(self) -> None:
        """
        When the peer's JID sorts first, its start is answered with
        C{proceed}; the conflict answering ours changes nothing, and our
        L{XTLSHandler.open} gets the tunnel the peer started.
        """
        s = Scripted(local="zzz.example")
        d = s.handler.open(JID("zzz.example"), JID("peer.example/r"))
        s.router.flush()
        [ourStart] = s.requestsFromHandler("start")
        self.assertEqual(s.start()["type"], "result")
        s.answer(ourStart, "<error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>", "error")
        [tunnel] = s.handler.tunnels
        self.assertFalse(tunnel.initiator)
        self.assertNoResult(d)
        self.assertEqual(s.recorder.events, [])

    def test_comparisonIsByteWise(self) -> None:
        """
        The comparison is of the full JIDs as on the wire, byte by byte:
        C{Z} (0x5A) sorts before C{a} (0x61), and a resource counts.
        """
        from xmppcomp.xtls._wire import hasPriority

        self.assertTrue(hasPriority("juliet@capulet.com/balcony", "romeo@montague.net/orchard"))
        self.assertFalse(hasPriority("romeo@montague.net/orchard", "juliet@capulet.com/balcony"))
        self.assertTrue(hasPriority("a.example", "a.example/r"))
        self.assertTrue(hasPriority("Z.example", "a.example"))
        self.assertTrue(hasPriority("x.example/\u00e9", "x.example/\u00ff\u00ff"))


class DataTests(SynchronousTestCase):
    """
    The answers to C{<data/>}.
    """

    def test_unknownTunnel(self) -> None:
        """
        Data for no tunnel gets C{item-not-found}.
        """
        s = Scripted()
        answer = s.request(f"<data xmlns='{NS_XTLS}' method='x509'>AAAA</data>")
        self.assertEqual(condition(answer), "item-not-found")

    def test_badBase64(self) -> None:
        """
        Data that is not base64 gets C{bad-request}, and the tunnel is
        closed.
        """
        s = Scripted()
        s.start()
        answer = s.request(f"<data xmlns='{NS_XTLS}' method='x509'>not base64!</data>")
        self.assertEqual(condition(answer), "bad-request")
        self.assertEqual(s.handler.tunnels, [])
        self.assertEqual(s.recorder.events[-1][0], "closed")

    def test_otherMethod(self) -> None:
        """
        A method other than C{x509} gets C{feature-not-implemented}.
        """
        s = Scripted()
        s.start()
        answer = s.request(f"<data xmlns='{NS_XTLS}' method='srp'>AAAA</data>")
        self.assertEqual(condition(answer), "feature-not-implemented")
        self.assertEqual(s.handler.tunnels, [])

    def test_beforeProceed(self) -> None:
        """
        Data for a tunnel we started, before the proceed, gets
        C{unexpected-request}, and the open fails.
        """
        s = Scripted()
        d = s.handler.open(JID("comp.example"), JID("peer.example/r"))
        s.router.flush()
        answer = s.request(f"<data xmlns='{NS_XTLS}' method='x509'>AAAA</data>")
        self.assertEqual(condition(answer), "unexpected-request")
        failure = self.failureResultOf(d, XTLSStanzaError)
        self.assertEqual(failure.value.condition, "unexpected-request")

    def test_notTLS(self) -> None:
        """
        Bytes that are no TLS handshake get C{not-acceptable} and close the
        tunnel.
        """
        s = Scripted()
        s.start()
        answer = s.request(f"<data xmlns='{NS_XTLS}' method='x509'>AAAAAAAAAAAA</data>")
        self.assertEqual(condition(answer), "not-acceptable")
        self.assertEqual(s.handler.tunnels, [])

    def test_errorReplyCloses(self) -> None:
        """
        An error answering our data closes the tunnel, and the open fails.
        """
        s = Scripted()
        d = s.handler.open(JID("comp.example"), JID("peer.example/r"))
        s.router.flush()
        [start] = s.requestsFromHandler("start")
        s.answer(start, f"<proceed xmlns='{NS_XTLS}'/>")
        [hello] = s.requestsFromHandler("data")
        s.answer(hello, "<error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>", "error")
        failure = self.failureResultOf(d, error.StanzaError)
        self.assertEqual(failure.value.condition, "not-acceptable")
        self.assertEqual(s.handler.tunnels, [])

    def test_ackTimeout(self) -> None:
        """
        Data that stays unacknowledged for C{ackTimeout} seconds closes the
        tunnel with L{PeerUnavailable}.
        """
        s = Scripted(ackTimeout=5.0)
        d = s.handler.open(JID("comp.example"), JID("peer.example/r"))
        s.router.flush()
        [start] = s.requestsFromHandler("start")
        s.answer(start, f"<proceed xmlns='{NS_XTLS}'/>")
        s.clock.advance(4.9)
        self.assertNoResult(d)
        s.clock.advance(0.2)
        self.failureResultOf(d, PeerUnavailable)
        self.assertEqual(s.handler.tunnels, [])

    def test_startTimeout(self) -> None:
        """
        A start nobody answers fails the open after C{ackTimeout}.
        """
        s = Scripted(ackTimeout=3.0)
        d = s.handler.open(JID("comp.example"), JID("peer.example/r"))
        s.clock.advance(3.0)
        self.failureResultOf(d, PeerUnavailable)

    def test_refusedStart(self) -> None:
        """
        A start answered with an error fails the open with that error.
        """
        s = Scripted()
        d = s.handler.open(JID("comp.example"), JID("peer.example/r"))
        s.router.flush()
        [start] = s.requestsFromHandler("start")
        s.answer(start, "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>", "error")
        failure = self.failureResultOf(d, error.StanzaError)
        self.assertEqual(failure.value.condition, "service-unavailable")

    def test_answerFromSomebodyElseIgnored(self) -> None:
        """
        An answer with the right id from the wrong JID is not taken.
        """
        s = Scripted()
        d = s.handler.open(JID("comp.example"), JID("peer.example/r"))
        s.router.flush()
        [start] = s.requestsFromHandler("start")
        s.peerEnd.send(
            f"<iq type='result' id='{start['id']}' from='peer.example/other' to='comp.example'>"
            f"<proceed xmlns='{NS_XTLS}'/></iq>"
        )
        s.router.flush()
        self.assertEqual(s.requestsFromHandler("data"), [])
        self.assertNoResult(d)

    def test_unguessableIds(self) -> None:
        """
        Our start and data IQs carry ids of 128 random bits, each its own,
        not a counter after the handler's address.
        """
        s = Scripted()
        s.handler.open(JID("comp.example"), JID("peer.example/r"))
        s.router.flush()
        [start] = s.requestsFromHandler("start")
        s.answer(start, f"<proceed xmlns='{NS_XTLS}'/>")
        [hello] = s.requestsFromHandler("data")
        for iq in (start, hello):
            self.assertRegex(iq["id"], ID_PATTERN)
        self.assertNotEqual(start["id"], hello["id"])

    def test_spoofedAckCounted(self) -> None:
        """
        An acknowledgement of our data with the right id from another JID
        is not taken, and is counted as mismatched; the peer's own
        acknowledgement still is, and the data does not time out.
        """
        metrics = Metrics()
        s = Scripted(metrics=metrics, ackTimeout=5.0)
        before = mismatched(metrics, "xtls")
        d = s.handler.open(JID("comp.example"), JID("peer.example/r"))
        s.router.flush()
        [start] = s.requestsFromHandler("start")
        s.answer(start, f"<proceed xmlns='{NS_XTLS}'/>")
        [hello] = s.requestsFromHandler("data")
        s.peerEnd.send(f"<iq type='result' id='{hello['id']}' from='evil.example' to='comp.example'/>")
        s.router.flush()
        self.assertEqual(mismatched(metrics, "xtls") - before, 1)
        s.answer(hello)
        s.clock.advance(5.0)
        self.assertNoResult(d)
        self.assertEqual(len(s.handler.tunnels), 1)

    def test_bounceFromPeerServer(self) -> None:
        """
        An error answering our start from the peer's domain (its server
        bouncing: the resource is offline) fails the open at once, with
        that error, instead of after C{ackTimeout}.
        """
        s = Scripted(ackTimeout=30.0)
        d = s.handler.open(JID("comp.example"), JID("peer.example/r"))
        s.router.flush()
        [start] = s.requestsFromHandler("start")
        s.peerEnd.send(
            f"<iq type='error' id='{start['id']}' from='peer.example' to='comp.example'>"
            "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
            "</error></iq>"
        )
        s.router.flush()
        failure = self.failureResultOf(d, error.StanzaError)
        self.assertEqual(failure.value.condition, "service-unavailable")


class CloseTests(SynchronousTestCase):
    """
    C{<close/>}, and the other ways a tunnel ends.
    """

    def test_close(self) -> None:
        """
        A close is answered by a result with C{<closed/>}; the tunnel is
        released and the observers told.
        """
        s = Scripted()
        s.start()
        tunnel = s.handler.tunnels[0]
        answer = s.request(f"<close xmlns='{NS_XTLS}'/>")
        self.assertEqual(answer["type"], "result")
        self.assertEqual([c.name for c in answer.elements(NS_XTLS)], ["closed"])
        self.assertEqual(s.handler.tunnels, [])
        self.assertEqual(s.recorder.events, [("closed", tunnel, None)])

    def test_closeUnknown(self) -> None:
        """
        A close for no tunnel gets C{item-not-found}.
        """
        s = Scripted()
        self.assertEqual(condition(s.request(f"<close xmlns='{NS_XTLS}'/>")), "item-not-found")

    def test_localClose(self) -> None:
        """
        L{Tunnel.close} sends C{<close/>} and fires once answered.
        """
        s = Scripted()
        s.start()
        tunnel = s.handler.tunnels[0]
        d = tunnel.close()
        s.router.flush()
        [close] = s.requestsFromHandler("close")
        self.assertNoResult(d)
        s.answer(close, f"<closed xmlns='{NS_XTLS}'/>")
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(s.handler.tunnels, [])

    def test_unavailablePresence(self) -> None:
        """
        Unavailable presence from the peer closes its tunnels with
        L{PeerUnavailable}; from its bare JID, those of all its resources.
        """
        s = Scripted()
        s.start("peer.example/a")
        s.start("u@peer.example/b")
        s.peerEnd.send("<presence type='unavailable' from='peer.example/a' to='comp.example'/>")
        s.router.flush()
        self.assertEqual([t.peer.full() for t in s.handler.tunnels], ["u@peer.example/b"])
        self.assertIsInstance(s.recorder.events[-1][2], PeerUnavailable)
        s.peerEnd.send("<presence type='unavailable' from='u@peer.example' to='comp.example'/>")
        s.router.flush()
        self.assertEqual(s.handler.tunnels, [])

    def test_connectionLost(self) -> None:
        """
        Losing the XML stream closes every tunnel.
        """
        s = Scripted()
        s.start()
        s.handler.connectionLost(None)  # type: ignore[arg-type]
        self.assertEqual(s.handler.tunnels, [])
        self.assertIsInstance(s.recorder.events[-1][2], PeerUnavailable)


class DiscoTests(SynchronousTestCase):
    """
    Service discovery.
    """

    def test_interfaces(self) -> None:
        """
        The handler provides wokkel's C{IDisco}; the recorder used in these
        tests is an L{ITunnelObserver}.
        """
        s = Scripted()
        self.assertTrue(verifyObject(IDisco, s.handler))
        self.assertTrue(verifyObject(ITunnelObserver, s.recorder))

    def test_feature(self) -> None:
        """
        Disco#info lists C{urn:xmpp:tmp:xtls} on the root node, rendered as
        a C{<feature/>}.
        """
        s = Scripted()
        features = self.successResultOf(
            s.handler.getDiscoInfo(JID("a.example"), JID("comp.example"))
        )
        self.assertEqual([str(f) for f in features], [NS_XTLS])
        self.assertEqual(features[0].toElement()["var"], NS_XTLS)  # type: ignore[attr-defined]
        self.assertEqual(
            self.successResultOf(
                s.handler.getDiscoInfo(JID("a.example"), JID("comp.example"), "node")
            ),
            [],
        )

    def test_noFeatureWhenDisabled(self) -> None:
        """
        With XTLS off, no feature is listed.
        """
        s = Scripted(enabled=False)
        self.assertEqual(
            self.successResultOf(s.handler.getDiscoInfo(JID("a.example"), JID("comp.example"))),
            [],
        )
