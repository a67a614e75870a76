# -*- test-case-name: tests.test_xtls_identity -*-
"""
Tests for L{xmppcomp.xtls._identity} (does a certificate name a JID?) and
for the TLS engine of L{xmppcomp.xtls._engine}: two engines over memory
BIOs, with certificates made by L{xmppcomp.testing}, no transport.
"""

from __future__ import annotations

import datetime
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.ssl import PrivateCertificate
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.jid import JID

from xmppcomp.testing import CertificateAuthority, makeCertificateAuthority, selfSigned
from xmppcomp.xtls._engine import TLS12_CIPHERS, TLSEngine, makeContext
from xmppcomp.xtls._exceptions import CertificateMismatch, HandshakeFailed
from xmppcomp.xtls._identity import certificateHash, checkPeerCertificate, xmppAddresses

AUTHORITY = makeCertificateAuthority()
OTHER_AUTHORITY = makeCertificateAuthority("another test CA")

ALICE_JID = JID("alice@a.example/home")
BOB_JID = JID("bob@b.example/work")

ALICE = AUTHORITY.issue(xmppAddrs=["alice@a.example"], client=True)
BOB = AUTHORITY.issue(xmppAddrs=["bob@b.example"], client=True)
MALLORY = AUTHORITY.issue(xmppAddrs=["mallory@m.example"], client=True)


def leaf(privateCertificate: PrivateCertificate) -> x509.Certificate:
    """
    The C{cryptography} form of a test certificate.
    """
    return privateCertificate.original.to_cryptography()


def issue(dnsNames: tuple[str, ...] = (), xmppAddrs: tuple[str, ...] = ()) -> x509.Certificate:
    """
    A certificate of L{AUTHORITY} with these names.
    """
    return leaf(AUTHORITY.issue(dnsNames=dnsNames, xmppAddrs=xmppAddrs))


def commonNameOnly(name: str) -> x509.Certificate:
    """
    A certificate whose only name is its subject's common name (no
    subjectAltName at all), which L{xmppcomp.testing} cannot make.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


class CheckPeerCertificateTests(SynchronousTestCase):
    """
    L{checkPeerCertificate}: DNS-IDs and domain XmppAddrs for domain JIDs,
    XmppAddrs for user JIDs, never the common name.
    """

    def assertMismatch(self, certificate: x509.Certificate | None, peer: str, problem: str) -> None:
        error = self.assertRaises(CertificateMismatch, checkPeerCertificate, certificate, JID(peer))
        self.assertEqual((error.peer, error.problem), (JID(peer).full(), problem))
        self.assertEqual(str(error), f"certificate of {JID(peer).full()}: {problem}")

    def test_noCertificate(self) -> None:
        """
        A peer that presented no certificate is refused, saying so.
        """
        self.assertMismatch(None, "bob@b.example/work", "no certificate presented")

    def test_domainDNSID(self) -> None:
        """
        A domain JID matches a DNS-ID, whatever its case; another domain
        does not.
        """
        certificate = issue(dnsNames=("Svc.Example",))
        checkPeerCertificate(certificate, JID("svc.example"))
        checkPeerCertificate(certificate, JID("SVC.example/resource"))
        self.assertMismatch(
            certificate, "other.example", "no DNS-ID or XmppAddr for the domain other.example"
        )

    def test_domainWildcard(self) -> None:
        """
        A wildcard DNS-ID matches one label, not two and not the parent.
        """
        certificate = issue(dnsNames=("*.svc.example",))
        checkPeerCertificate(certificate, JID("a.svc.example"))
        for other in ("b.a.svc.example", "svc.example"):
            self.assertRaises(CertificateMismatch, checkPeerCertificate, certificate, JID(other))

    def test_domainInternationalised(self) -> None:
        """
        An internationalised domain JID (a U-label, as JIDs hold it)
        matches the A-label DNS-ID of its certificate.
        """
        certificate = issue(dnsNames=("xn--bcher-kva.example",))
        checkPeerCertificate(certificate, JID("bücher.example"))

    def test_domainXmppAddr(self) -> None:
        """
        A domain JID matches an XmppAddr that is that bare domain.
        """
        checkPeerCertificate(issue(xmppAddrs=("svc.example",)), JID("svc.example"))

    def test_userCertificateIsNoDomainCertificate(self) -> None:
        """
        A user's XmppAddr does not vouch for the user's domain.
        """
        self.assertMismatch(
            issue(xmppAddrs=("bob@b.example",)),
            "b.example",
            "no DNS-ID or XmppAddr for the domain b.example",
        )

    def test_userXmppAddr(self) -> None:
        """
        A user JID matches a bare XmppAddr for any resource, compared after
        stringprep (case folded).
        """
        certificate = issue(xmppAddrs=("Bob@B.Example",))
        checkPeerCertificate(certificate, JID("bob@b.example/work"))
        checkPeerCertificate(certificate, JID("bob@b.example"))
        self.assertMismatch(certificate, "eve@b.example/work", "no XmppAddr for eve@b.example")

    def test_userXmppAddrWithResource(self) -> None:
        """
        An XmppAddr with a resource matches that resource only.
        """
        certificate = issue(xmppAddrs=("bob@b.example/work",))
        checkPeerCertificate(certificate, JID("bob@b.example/work"))
        self.assertMismatch(certificate, "bob@b.example/home", "no XmppAddr for bob@b.example")

    def test_userDNSIDNotEnough(self) -> None:
        """
        A DNS-ID for the user's domain does not vouch for the user.
        """
        self.assertMismatch(
            issue(dnsNames=("b.example",)), "bob@b.example/work", "no XmppAddr for bob@b.example"
        )

    def test_malformedXmppAddrSkipped(self) -> None:
        """
        XmppAddrs that are no JID are skipped, not fatal: a valid one next
        to them still matches.
        """
        certificate = issue(xmppAddrs=("@b.example", "bob@", "bob@b.example"))
        checkPeerCertificate(certificate, JID("bob@b.example/work"))
        self.assertMismatch(
            issue(xmppAddrs=("@b.example",)), "bob@b.example", "no XmppAddr for bob@b.example"
        )

    def test_commonNameIgnored(self) -> None:
        """
        The subject's common name is never used, for a domain or a user.
        """
        self.assertRaises(
            CertificateMismatch, checkPeerCertificate, commonNameOnly("svc.example"), JID("svc.example")
        )
        self.assertRaises(
            CertificateMismatch,
            checkPeerCertificate,
            commonNameOnly("bob@b.example"),
            JID("bob@b.example"),
        )


class CertificateHashTests(SynchronousTestCase):
    """
    L{certificateHash} and L{xmppAddresses}.
    """

    def test_hash(self) -> None:
        """
        The hash is the SHA-256 of the DER form, in lowercase hex.
        """
        certificate = leaf(BOB)
        der = certificate.public_bytes(serialization.Encoding.DER)
        self.assertEqual(certificateHash(certificate), hashlib.sha256(der).hexdigest())

    def test_xmppAddresses(self) -> None:
        """
        The XmppAddrs of a certificate, as written; none for a certificate
        without subjectAltNames.
        """
        certificate = issue(dnsNames=("b.example",), xmppAddrs=("bob@b.example", "B.example"))
        self.assertEqual(xmppAddresses(certificate), frozenset({"bob@b.example", "B.example"}))
        self.assertEqual(xmppAddresses(commonNameOnly("x")), frozenset())


def context(
    privateCertificate: PrivateCertificate,
    isClient: bool,
    trust: tuple[CertificateAuthority, ...] = (AUTHORITY,),
) -> SSL.Context:
    """
    L{makeContext} for a test certificate.
    """
    return makeContext(
        leaf(privateCertificate),
        privateCertificate.privateKey.original.to_cryptography_key(),
        [authority.certificate.original.to_cryptography() for authority in trust],
        isClient,
    )


def engines(
    clientCertificate: PrivateCertificate = ALICE,
    serverCertificate: PrivateCertificate = BOB,
    clientContext: SSL.Context | None = None,
    serverContext: SSL.Context | None = None,
) -> tuple[TLSEngine, TLSEngine]:
    """
    Alice's engine (the client, expecting Bob) and Bob's (the server,
    expecting Alice), both started.
    """
    client = TLSEngine(clientContext or context(clientCertificate, True), True, BOB_JID)
    server = TLSEngine(serverContext or context(serverCertificate, False), False, ALICE_JID)
    client.start()
    server.start()
    return client, server


def shuttle(client: TLSEngine, server: TLSEngine) -> tuple[bytes, bytes]:
    """
    Carry bytes between the engines until neither has any to send.

    @return: the application data each received: (client's, server's).
    """
    toClient, toServer = [], []
    while True:
        forServer = client.outgoing()
        if forServer:
            toServer.append(server.receive(forServer))
        forClient = server.outgoing()
        if forClient:
            toClient.append(client.receive(forClient))
        if not forServer and not forClient:
            return b"".join(toClient), b"".join(toServer)


def rawOutgoing(connection: SSL.Connection) -> bytes:
    """
    What a socketless pyOpenSSL connection has to send.
    """
    chunks = []
    while True:
        try:
            chunks.append(connection.bio_read(65536))
        except SSL.WantReadError:
            return b"".join(chunks)


def rawHandshake(connection: SSL.Connection) -> None:
    try:
        connection.do_handshake()
    except SSL.WantReadError:
        pass


def rawClient(server: TLSEngine, clientContext: SSL.Context) -> SSL.Connection:
    """
    Run a handshake between a plain pyOpenSSL client on C{clientContext}
    and C{server}, as far as it goes.
    """
    client = SSL.Connection(clientContext, None)
    client.set_connect_state()
    rawHandshake(client)
    while True:
        hello = rawOutgoing(client)
        if hello:
            server.receive(hello)
        answer = server.outgoing()
        if answer:
            client.bio_write(answer)
            rawHandshake(client)
        if not hello and not answer:
            return client


class MakeContextTests(SynchronousTestCase):
    """
    L{makeContext} refuses contexts that could never work.
    """

    def test_noTrust(self) -> None:
        """
        Without a trusted authority no peer certificate could verify: a
        C{ValueError}.
        """
        self.assertRaises(
            ValueError,
            makeContext,
            leaf(BOB),
            BOB.privateKey.original.to_cryptography_key(),
            [],
            False,
        )

    def test_keyNotCertificates(self) -> None:
        """
        A private key that is not the certificate's is refused.
        """
        self.assertRaises(
            SSL.Error,
            makeContext,
            leaf(BOB),
            ALICE.privateKey.original.to_cryptography_key(),
            [leaf(BOB)],
            True,
        )


class HandshakeTests(SynchronousTestCase):
    """
    The handshake between two engines.
    """

    def test_handshake(self) -> None:
        """
        The client speaks first; both ends complete a TLS 1.3 handshake
        with an AEAD suite and see each other's certificate.
        """
        client, server = engines()
        self.assertEqual(server.outgoing(), b"")
        self.assertFalse(client.handshakeComplete or server.handshakeComplete)
        self.assertIsNone(server.peerCertificate())
        hello = client.outgoing()
        self.assertEqual(hello[:1], b"\x16")  # a handshake record
        server.receive(hello)
        self.assertEqual(shuttle(client, server), (b"", b""))
        self.assertTrue(client.handshakeComplete and server.handshakeComplete)
        self.assertEqual((client.protocolVersion(), server.protocolVersion()), ("TLSv1.3", "TLSv1.3"))
        self.assertIn(
            client.cipherName(),
            ("TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"),
        )
        self.assertEqual(client.peerCertificate(), leaf(BOB))
        self.assertEqual(server.peerCertificate(), leaf(ALICE))

    def test_tls12(self) -> None:
        """
        With a client that speaks at most TLS 1.2 the engines agree on one
        of the forward-secret AEAD suites of L{TLS12_CIPHERS}.
        """
        clientContext = context(ALICE, True)
        clientContext.set_max_proto_version(SSL.TLS1_2_VERSION)
        client, server = engines(clientContext=clientContext)
        shuttle(client, server)
        self.assertTrue(client.handshakeComplete and server.handshakeComplete)
        self.assertEqual(server.protocolVersion(), "TLSv1.2")
        suite = server.cipherName()
        assert suite is not None
        self.assertIn(suite.encode("ascii"), TLS12_CIPHERS.split(b":"))
        self.assertTrue("GCM" in suite or "CHACHA20" in suite, suite)

    def test_noCBCSuites(self) -> None:
        """
        A TLS 1.2 client offering only a CBC suite finds none in common:
        L{HandshakeFailed}.
        """
        clientContext = context(ALICE, True)
        clientContext.set_max_proto_version(SSL.TLS1_2_VERSION)
        clientContext.set_cipher_list(b"ECDHE-ECDSA-AES128-SHA")
        client, server = engines(clientContext=clientContext)
        self.assertRaises(HandshakeFailed, server.receive, client.outgoing())

    def test_serverName(self) -> None:
        """
        The client names the peer's domain in SNI, as an A-label.
        """
        serverContext = context(BOB, False)
        names: list[bytes | None] = []
        serverContext.set_tlsext_servername_callback(
            lambda connection: names.append(connection.get_servername())
        )
        client = TLSEngine(context(ALICE, True), True, JID("bob@bücher.example/work"))
        server = TLSEngine(serverContext, False, ALICE_JID)
        client.start()
        server.receive(client.outgoing())
        self.assertEqual(names, [b"xn--bcher-kva.example"])

    def test_domainPeers(self) -> None:
        """
        Two services, each known by its domain, authenticate each other
        by DNS-ID.
        """
        one = AUTHORITY.issue(dnsNames=["one.example"], client=True)
        two = AUTHORITY.issue(dnsNames=["two.example"], client=True)
        client = TLSEngine(context(one, True), True, JID("two.example"))
        server = TLSEngine(context(two, False), False, JID("one.example"))
        client.start()
        shuttle(client, server)
        self.assertTrue(client.handshakeComplete and server.handshakeComplete)

    def test_notTLS(self) -> None:
        """
        Bytes that are not TLS end the handshake with L{HandshakeFailed}.
        """
        _, server = engines()
        error = self.assertRaises(HandshakeFailed, server.receive, b"<iq type='get'/>\r\n" * 4)
        self.assertTrue(str(error).startswith("TLS failed: "), str(error))


class CertificateRefusalTests(SynchronousTestCase):
    """
    A peer certificate that is not trusted or does not name the expected
    peer ends the handshake with L{CertificateMismatch}, saying why.
    """

    def assertRefused(self, error: CertificateMismatch, peer: JID, problem: str) -> None:
        self.assertEqual((error.peer, error.problem), (peer.full(), problem))

    def test_clientRefusesWrongIdentity(self) -> None:
        """
        The client refuses a server certificate of the right authority that
        names somebody else.
        """
        client, server = engines(serverCertificate=MALLORY)
        server.receive(client.outgoing())
        error = self.assertRaises(CertificateMismatch, client.receive, server.outgoing())
        self.assertRefused(error, BOB_JID, "no XmppAddr for bob@b.example")
        self.assertFalse(client.handshakeComplete)

    def test_clientRefusesUntrustedAuthority(self) -> None:
        """
        The client refuses a server certificate naming the right peer from
        an authority it does not trust.
        """
        impostor = OTHER_AUTHORITY.issue(xmppAddrs=["bob@b.example"], client=True)
        client, server = engines(serverCertificate=impostor)
        server.receive(client.outgoing())
        error = self.assertRaises(CertificateMismatch, client.receive, server.outgoing())
        self.assertRefused(error, BOB_JID, "unable to get local issuer certificate (untrusted authority)")

    def test_clientRefusesForeignChain(self) -> None:
        """
        A server that sends the foreign authority along with its
        certificate is refused too: a root the client does not trust.
        """
        impostor = OTHER_AUTHORITY.issue(xmppAddrs=["bob@b.example"], client=True)
        client, server = engines(
            serverContext=context(impostor, False, trust=(AUTHORITY, OTHER_AUTHORITY))
        )
        server.receive(client.outgoing())
        error = self.assertRaises(CertificateMismatch, client.receive, server.outgoing())
        self.assertRefused(error, BOB_JID, "self-signed certificate in the chain")

    def test_clientRefusesSelfSigned(self) -> None:
        """
        A self-signed server certificate is refused as such.
        """
        client, server = engines(serverCertificate=selfSigned([], ["bob@b.example"]))
        server.receive(client.outgoing())
        error = self.assertRaises(CertificateMismatch, client.receive, server.outgoing())
        self.assertRefused(error, BOB_JID, "self-signed certificate")

    def test_serverRefusesWrongIdentity(self) -> None:
        """
        The server refuses a client certificate that names somebody else;
        in TLS 1.3 the client had completed its handshake already, and the
        server's alert makes its next C{receive} fail.
        """
        client, server = engines(clientCertificate=MALLORY)
        server.receive(client.outgoing())
        client.receive(server.outgoing())
        self.assertTrue(client.handshakeComplete)
        error = self.assertRaises(CertificateMismatch, server.receive, client.outgoing())
        self.assertRefused(error, ALICE_JID, "no XmppAddr for alice@a.example")
        self.assertFalse(server.handshakeComplete)
        self.assertRaises(HandshakeFailed, client.receive, server.outgoing())

    def test_serverRefusesUntrustedAuthority(self) -> None:
        """
        The server refuses a client certificate from an authority it does
        not trust.
        """
        impostor = OTHER_AUTHORITY.issue(xmppAddrs=["alice@a.example"], client=True)
        client, server = engines(clientCertificate=impostor)
        server.receive(client.outgoing())
        client.receive(server.outgoing())
        error = self.assertRaises(CertificateMismatch, server.receive, client.outgoing())
        self.assertRefused(error, ALICE_JID, "unable to get local issuer certificate (untrusted authority)")

    def test_serverRequiresClientCertificate(self) -> None:
        """
        A client that presents no certificate is refused: the server
        requires one.
        """
        bare = SSL.Context(SSL.TLS_METHOD)
        _, server = engines()
        self.assertRaises(HandshakeFailed, rawClient, server, bare)
        self.assertFalse(server.handshakeComplete)


class DataTests(SynchronousTestCase):
    """
    Application data through established engines.
    """

    def established(self) -> tuple[TLSEngine, TLSEngine]:
        client, server = engines()
        shuttle(client, server)
        return client, server

    def test_bothWays(self) -> None:
        """
        What one end writes, the other's C{receive} returns.
        """
        client, server = self.established()
        client.write(b"<message>to bob</message>")
        server.write(b"<message>to alice</message>")
        self.assertEqual(
            shuttle(client, server), (b"<message>to alice</message>", b"<message>to bob</message>")
        )

    def test_encrypted(self) -> None:
        """
        The bytes on the wire do not show the plaintext.
        """
        client, server = self.established()
        client.write(b"a secret stanza")
        wire = client.outgoing()
        self.assertNotIn(b"secret", wire)
        self.assertEqual(server.receive(wire), b"a secret stanza")

    def test_large(self) -> None:
        """
        Data much larger than a TLS record arrives whole and in order, also
        when the records arrive in small pieces.
        """
        client, server = self.established()
        data = bytes(range(256)) * 1000
        client.write(data)
        wire = client.outgoing()
        self.assertGreater(len(wire), len(data))
        received = b"".join(server.receive(wire[i : i + 1000]) for i in range(0, len(wire), 1000))
        self.assertEqual(received, data)

    def test_closeNotify(self) -> None:
        """
        The peer's TLS close (close_notify) is no error: the data before it
        is returned, and nothing after it.
        """
        _, server = engines()
        client = rawClient(server, context(ALICE, True))
        self.assertTrue(server.handshakeComplete)
        client.send(b"last words")
        try:
            client.shutdown()
        except SSL.WantReadError:
            pass
        self.assertEqual(server.receive(rawOutgoing(client)), b"last words")


class EmptyReceiveTests(SynchronousTestCase):
    """
    An empty C{<data/>} (valid base64 of no bytes) is no error.
    """

    def test_engineEmptyReceive(self) -> None:
        """
        L{TLSEngine.receive} of no bytes returns no data, before and after
        the handshake, and raises nothing (before: pyOpenSSL's
        C{WantReadError} escaped and the peer got internal-server-error).
        """
        client, server = engines()
        self.assertEqual(server.receive(b""), b"")
        shuttle(client, server)
        self.assertEqual(server.receive(b""), b"")
        self.assertEqual(client.receive(b""), b"")
