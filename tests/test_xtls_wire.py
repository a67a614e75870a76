# -*- test-case-name: tests.test_xtls_wire -*-
"""
Tests for the pure parts of XTLS: payload values, certificate identities,
the stanza stream inside a tunnel.
"""

from __future__ import annotations

import base64

from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppcomp.ns import NS_XTLS
from xmppcomp.testing import makeCertificateAuthority
from xmppcomp.xtls import CertificateMismatch, Data, Offer, Start, XTLSStanzaError, checkPeerCertificate
from xmppcomp.xtls._inner import InnerStream, serializeStanza, stampInner
from xmppcomp.xtls._wire import parseRequest


def parse(text: str) -> domish.Element:
    holder: list[domish.Element] = []
    stream = domish.elementStream()
    stream.DocumentStartEvent = holder.append
    stream.ElementEvent = lambda e: holder[0].addChild(e)
    stream.DocumentEndEvent = lambda: None
    stream.parse(f"<r xmlns='jabber:client'>{text}</r>".encode())
    return next(holder[0].elements())


class WireTests(SynchronousTestCase):
    """
    Rendering and parsing the payloads.
    """

    def test_dataRoundTrip(self) -> None:
        """
        Data renders as base64 with C{method} and parses back, white space
        in the text ignored.
        """
        element = Data(b"\x16\x03\x01hello", "x509").toElement()
        self.assertEqual(element["method"], "x509")
        again = Data.fromElement(parse(element.toXml().replace("FgMB", "Fg\n MB")))
        self.assertEqual(again, Data(b"\x16\x03\x01hello", "x509"))

    def test_dataVerbatim(self) -> None:
        """
        The base64 text is written as it is (it has nothing to escape),
        and read back whole, also when the parser delivered it in pieces.
        """
        payload = bytes(range(256)) * 200
        encoded = base64.b64encode(payload).decode("ascii")
        xml = Data(payload).toElement().toXml()
        self.assertEqual(xml, f"<data xmlns='{NS_XTLS}'>{encoded}</data>")
        element = domish.Element((NS_XTLS, "data"))
        for start in range(0, len(encoded), 1000):
            element.addContent(encoded[start : start + 1000])
        self.assertEqual(Data.fromElement(element).payload, payload)

    def test_badBase64(self) -> None:
        """
        Text that is not base64 raises C{bad-request}: not of the alphabet,
        badly padded, or not ASCII (with or without white space).
        """
        for text in ("!!!!", "AAA", "AA=A", "AAA\u00e9", "AA A\u00e9"):
            exc = self.assertRaises(
                XTLSStanzaError, Data.fromElement, parse(f"<data xmlns='{NS_XTLS}'>{text}</data>")
            )
            self.assertEqual(exc.condition, "bad-request")

    def test_startWithOffer(self) -> None:
        """
        A start with a XEP-0250 offer parses into L{Offer}.
        """
        iq = parse(
            f"<iq type='set'><start xmlns='{NS_XTLS}'><offer xmlns='urn:xmpp:tmp:c2ctls'>"
            "<keyinfo xmlns='urn:xmpp:tmp:pubkey'><name>RomeoHash</name></keyinfo><srp/>"
            "</offer></start></iq>"
        )
        self.assertEqual(parseRequest(iq), Start(Offer(["RomeoHash"], ["srp"])))

    def test_noRequest(self) -> None:
        """
        An IQ without an XTLS child is a C{bad-request}.
        """
        exc = self.assertRaises(XTLSStanzaError, parseRequest, parse("<iq type='set'/>"))
        self.assertEqual(exc.condition, "bad-request")


class IdentityTests(SynchronousTestCase):
    """
    L{checkPeerCertificate}.
    """

    def setUp(self) -> None:
        self.authority = makeCertificateAuthority()

    def cert(self, **kw: object):  # type: ignore[no-untyped-def]
        return self.authority.issue(**kw).original.to_cryptography()  # type: ignore[arg-type]

    def test_domainByDNSID(self) -> None:
        """
        A domain JID matches a DNS-ID, wildcards included; not another name.
        """
        checkPeerCertificate(self.cert(dnsNames=["a.example"]), JID("a.example/r"))
        checkPeerCertificate(self.cert(dnsNames=["*.svc.example"]), JID("a.svc.example"))
        self.assertRaises(
            CertificateMismatch, checkPeerCertificate, self.cert(dnsNames=["b.example"]), JID("a.example")
        )

    def test_userByXmppAddr(self) -> None:
        """
        A user JID matches an XmppAddr of its bare JID, never a DNS-ID.
        """
        checkPeerCertificate(self.cert(xmppAddrs=["Juliet@Capulet.example"]), JID("juliet@capulet.example/balcony"))
        self.assertRaises(
            CertificateMismatch,
            checkPeerCertificate,
            self.cert(dnsNames=["capulet.example"]),
            JID("juliet@capulet.example"),
        )
        self.assertRaises(
            CertificateMismatch,
            checkPeerCertificate,
            self.cert(xmppAddrs=["romeo@capulet.example"]),
            JID("juliet@capulet.example"),
        )

    def test_noCertificate(self) -> None:
        """
        No certificate, no match.
        """
        self.assertRaises(CertificateMismatch, checkPeerCertificate, None, JID("a.example"))


class InnerStreamTests(SynchronousTestCase):
    """
    The stanza stream inside a tunnel.
    """

    def test_noHeader(self) -> None:
        """
        Stanzas one after the other, split anywhere, parse in order.
        """
        stream = InnerStream(1000)
        data = b"<message><body>a</body></message> <iq type='get' id='1'/>"
        stanzas = []
        for i in range(len(data)):
            stanzas.extend(stream.feed(data[i : i + 1]))
        self.assertEqual([s.name for s in stanzas], ["message", "iq"])
        self.assertEqual(stanzas[0].uri, "jabber:client")

    def test_peerHeader(self) -> None:
        """
        A stream header (with an XML declaration) from the peer is accepted.
        """
        stream = InnerStream(1000)
        stanzas = stream.feed(
            b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            b"xmlns:stream='http://etherx.jabber.org/streams'><message/>"
        )
        self.assertEqual([s.name for s in stanzas], ["message"])

    def test_restricted(self) -> None:
        """
        Comments are refused (C{bad-request}); a stanza over the limit is a
        C{policy-violation}.
        """
        exc = self.assertRaises(XTLSStanzaError, InnerStream(1000).feed, b"<message/><!-- x -->")
        self.assertEqual(exc.condition, "bad-request")
        exc = self.assertRaises(
            XTLSStanzaError, InnerStream(100).feed, b"<message><body>" + b"x" * 200 + b"</body></message>"
        )
        self.assertEqual(exc.condition, "policy-violation")

    def test_stamp(self) -> None:
        """
        Missing addresses are filled in, the stanza marked (its id in
        C{xtlsId}); a stanza from
        another bare JID than the peer is refused.
        """
        stanza = stampInner(parse("<message/>"), JID("b.example"), JID("a.example/r"))
        assert stanza is not None
        self.assertEqual((stanza["from"], stanza["to"], stanza.xtlsEncrypted), ("a.example/r", "b.example", True))
        self.assertIsNone(stanza.xtlsId)
        stanza = stampInner(parse("<iq type='get' id='q1'/>"), JID("b.example"), JID("a.example/r"))
        assert stanza is not None
        self.assertEqual(stanza.xtlsId, "q1")
        self.assertIsNone(stampInner(parse("<message from='evil.example'/>"), JID("b.example"), JID("a.example")))

    def test_serializeDropsContentNamespace(self) -> None:
        """
        The content namespace is not written; others are.
        """
        stanza = domish.Element(("jabber:component:accept", "message"))
        stanza.addElement(("urn:x", "x"))
        self.assertEqual(serializeStanza(stanza), b"<message><x xmlns='urn:x'/></message>")
