# -*- test-case-name: tests.test_stream_tls -*-
"""
Tests for L{xmppcomp.stream.tls} and the certificate helpers of
L{xmppcomp.testing}.

The handshakes are real pyOpenSSL handshakes, in memory over
L{xmppcomp.testing.MemoryConnection}, except in L{LoopbackSTARTTLSTests},
which runs STARTTLS over real loopback TCP.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from OpenSSL import SSL
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.interfaces import (
    IHandshakeListener,
    IOpenSSLClientConnectionCreator,
    IReactorTCP,
)
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    PrivateCertificate,
    TLSVersion,
)
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from xmppcomp.stream import tls
from xmppcomp.stream.channelbinding import (
    TLS_EXPORTER,
    TLS_SERVER_END_POINT,
    ChannelBindingData,
)
from xmppcomp.testing import (
    CertificateAuthority,
    MemoryConnection,
    makeCertificateAuthority,
    selfSigned,
    writePem,
)

SERVER = "example.com"
COMPONENT = "component.example.com"
XMPPADDR = ObjectIdentifier("1.3.6.1.5.5.7.8.5")

# One authority and a few certificates for the whole module: each costs
# little, but there is no reason to make them again for every test.
_ca = makeCertificateAuthority()
_otherCA = makeCertificateAuthority("another test CA")
_serverCert = _ca.issue([SERVER])


def _crypto(certificate: Certificate) -> x509.Certificate:
    return certificate.original.to_cryptography()


def _fingerprint(certificate: Certificate) -> str:
    return _crypto(certificate).fingerprint(hashes.SHA256()).hex(":").upper()


def _caTrust(authority: CertificateAuthority) -> tls.CATrust:
    return tls.CATrust([_crypto(authority.certificate)])


# In-memory handshakes.


@implementer(IHandshakeListener)
class _Recorder(Protocol):
    """
    An application protocol that records what happens to it.

    @ivar greeting: written as soon as connected, that is before the
        handshake: TLS must hold it back until the peer is verified.
    """

    def __init__(self, greeting: bytes = b"") -> None:
        self.greeting = greeting
        self.received: list[bytes] = []
        self.handshakeDone = False
        self.lostReason: Failure | None = None

    def connectionMade(self) -> None:
        if self.greeting:
            self.transport.write(self.greeting)

    def handshakeCompleted(self) -> None:
        self.handshakeDone = True

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)

    def connectionLost(self, reason: Failure) -> None:
        self.lostReason = reason


@attrs.frozen
class _Session:
    """
    Both ends of an in-memory TLS connection.
    """

    client: _Recorder
    server: _Recorder
    clientTLS: TLSMemoryBIOProtocol
    serverTLS: TLSMemoryBIOProtocol
    connection: MemoryConnection


def _connect(
    serverOptions: object, clientOptions: object, greeting: bytes = b"secret"
) -> _Session:
    """
    Run a TLS handshake in memory and pump until both ends are quiet. The
    client writes C{greeting} before the handshake.
    """
    clock = Clock()
    client, server = _Recorder(greeting), _Recorder()
    serverFactory = TLSMemoryBIOFactory(
        serverOptions, False, Factory.forProtocol(lambda: server), clock
    )
    clientFactory = TLSMemoryBIOFactory(
        clientOptions, True, Factory.forProtocol(lambda: client), clock
    )
    clientTLS = clientFactory.buildProtocol(None)
    serverTLS = serverFactory.buildProtocol(None)
    connection = MemoryConnection(clientTLS, serverTLS)
    # TLS holds small writes back to the next turn of the clock: let it
    # turn until nothing moves.
    while True:
        clock.advance(0)
        if not connection.flush():
            break
    return _Session(client, server, clientTLS, serverTLS, connection)


def _legacyOptions(
    certificate: PrivateCertificate | None = None,
) -> CertificateOptions:
    """
    Options of a peer that speaks only TLS 1.1, as old software might.
    """
    keyAndCertificate = {}
    if certificate is not None:
        keyAndCertificate = {
            "privateKey": certificate.privateKey.original.to_cryptography_key(),
            "certificate": certificate.original.to_cryptography(),
        }
    options = CertificateOptions(
        insecurelyLowerMinimumTo=TLSVersion.TLSv1_1,
        lowerMaximumSecurityTo=TLSVersion.TLSv1_1,
        **keyAndCertificate,
    )
    # TLS 1.1 needs SHA-1 in the handshake, which security level 1 forbids.
    options.getContext().set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    return options


def _serverOptionsUpTo12(
    certificate: PrivateCertificate, clientCAs: Sequence[Certificate] | None = None
) -> CertificateOptions:
    """
    L{tls.serverTLSOptions}, capped at TLS 1.2.
    """
    options = tls.serverTLSOptions(certificate, clientCAs)
    options.getContext().set_max_proto_version(SSL.TLS1_2_VERSION)
    return options


# Certificates with arbitrary subjectAltNames, for the pure functions.


def _certificate(
    names: Sequence[x509.GeneralName] = (),
    commonName: str = "ignored.example",
    signatureHash: hashes.HashAlgorithm | None = None,
    ed: bool = False,
) -> x509.Certificate:
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    if ed:
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, commonName)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(list(names)), critical=False
        )
    if ed:
        return builder.sign(key, None)
    return builder.sign(key, signatureHash or hashes.SHA256())


def _expired(dnsNames: Sequence[str]) -> PrivateCertificate:
    """
    A self-signed certificate for C{dnsNames} that expired yesterday.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dnsNames[0])])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dnsNames]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    keyPEM = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return PrivateCertificate.loadPEM(
        keyPEM + certificate.public_bytes(serialization.Encoding.PEM)
    )


def _xmppAddr(text: str) -> x509.OtherName:
    content = text.encode("utf-8")
    assert len(content) < 128
    return x509.OtherName(XMPPADDR, b"\x0c" + bytes([len(content)]) + content)


#: A self-signed certificate with the signature algorithm ecdsa-with-SHA1.
_SHA1_SIGNED = b"""-----BEGIN CERTIFICATE-----
MIIBgzCCASqgAwIBAgIUNcKzyBfIUr8uQy9HoyyaSuBkeZ0wCQYHKoZIzj0EATAX
MRUwEwYDVQQDDAxzaGExLmV4YW1wbGUwIBcNMjYxMTIyMDIyOTQxWhgPMjEyNjEw
MjkwMjI5NDFaMBcxFTATBgNVBAMMDHNoYTEuZXhhbXBsZTBZMBMGByqGSM49AgEG
CCqGSM49AwEHA0IABJFUwTBGwLJ11j6DJ8oJUOQmezL0OeTenWtyHuePqODWVx4h
2tfldYiP+xJSrKWDtXm/gEgLpi62yD8N8wODXd2jUzBRMB0GA1UdDgQWBBQH114/
01/ti9M0uuq4q4mEEL4pYzAfBgNVHSMEGDAWgBQH114/01/ti9M0uuq4q4mEEL4p
YzAPBgNVHRMBAf8EBTADAQH/MAkGByqGSM49BAEDSAAwRQIhAKcq90LbmwfsvUBu
k3DOL1zJbpxwPvjak3NpWK7UCsOPAiB4SLq38elgKDd9ha24WROP/gM6kIjyWU6S
r9ZJ9eObpQ==
-----END CERTIFICATE-----
"""


class CertificateAuthorityTests(SynchronousTestCase):
    """
    Tests for the certificate helpers of L{xmppcomp.testing}.
    """

    def test_issuedNames(self) -> None:
        """
        L{CertificateAuthority.issue} puts the DNS names and the XmppAddrs in
        the subjectAltName extension, the XmppAddrs as UTF8String otherNames.
        """
        issued = _crypto(_ca.issue(["a.example"], ["b.example", "ü.example"]))
        san = issued.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
        self.assertEqual(san.get_values_for_type(x509.DNSName), ["a.example"])
        self.assertEqual(
            [(o.type_id, o.value) for o in san.get_values_for_type(x509.OtherName)],
            [
                (XMPPADDR, b"\x0c\x09b.example"),
                (XMPPADDR, b"\x0c\x0a" + "ü.example".encode("utf-8")),
            ],
        )

    def test_issuedIsEndEntity(self) -> None:
        """
        An issued certificate is not a CA, is signed by the authority, and
        allows server authentication, plus client authentication when asked.
        """
        server = _crypto(_ca.issue(["a.example"]))
        client = _crypto(_ca.issue(["a.example"], client=True))
        authority = _crypto(_ca.certificate)
        for issued in server, client:
            constraints = issued.extensions.get_extension_for_class(
                x509.BasicConstraints
            )
            self.assertFalse(constraints.value.ca)
            self.assertEqual(issued.issuer, authority.subject)
            issued.verify_directly_issued_by(authority)
        def usages(certificate: x509.Certificate) -> list[ObjectIdentifier]:
            return list(
                certificate.extensions.get_extension_for_class(
                    x509.ExtendedKeyUsage
                ).value
            )

        self.assertEqual(usages(server), [ExtendedKeyUsageOID.SERVER_AUTH])
        self.assertEqual(
            usages(client),
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        )

    def test_authority(self) -> None:
        """
        The authority's certificate is a self-signed CA with the given common
        name, and C{pem} is that certificate in PEM.
        """
        authority = makeCertificateAuthority("My CA")
        certificate = _crypto(authority.certificate)
        self.assertTrue(
            certificate.extensions.get_extension_for_class(
                x509.BasicConstraints
            ).value.ca
        )
        self.assertEqual(
            certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
            "My CA",
        )
        certificate.verify_directly_issued_by(certificate)
        self.assertEqual(x509.load_pem_x509_certificate(authority.pem), certificate)

    def test_selfSigned(self) -> None:
        """
        L{selfSigned} makes a certificate signed by its own key, naming the
        DNS names, that is not a CA.
        """
        certificate = _crypto(selfSigned(["a.example", "b.example"]))
        certificate.verify_directly_issued_by(certificate)
        self.assertEqual(
            tls.certificateIdentities(certificate), {"a.example", "b.example"}
        )
        self.assertFalse(
            certificate.extensions.get_extension_for_class(
                x509.BasicConstraints
            ).value.ca
        )

    def test_writePem(self) -> None:
        """
        L{writePem} writes the certificate and the key to two PEM files in
        the directory and returns their paths.
        """
        directory = self.mktemp()
        os.mkdir(directory)
        certPath, keyPath = writePem(_serverCert, directory)
        self.assertEqual(
            (os.path.dirname(certPath), os.path.dirname(keyPath)),
            (directory, directory),
        )
        with open(certPath, "rb") as f:
            self.assertEqual(
                x509.load_pem_x509_certificate(f.read()), _crypto(_serverCert)
            )
        with open(keyPath, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        self.assertEqual(
            key.public_key(),  # type: ignore[union-attr]
            _crypto(_serverCert).public_key(),
        )


class LoadingTests(SynchronousTestCase):
    """
    Tests for the loaders: L{tls.loadPrivateCertificate},
    L{tls.loadCertificates}, L{tls.trustCAFile} and L{tls.trustPinned}.
    """

    def setUp(self) -> None:
        self.directory = self.mktemp()
        os.mkdir(self.directory)
        self.certPath, self.keyPath = writePem(_serverCert, self.directory)

    def write(self, name: str, content: bytes) -> str:
        path = os.path.join(self.directory, name)
        with open(path, "wb") as f:
            f.write(content)
        return path

    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def assertNamesFile(self, error: tls.CertificateFileError, path: str) -> None:
        self.assertEqual(error.path, path)
        self.assertIn(path, str(error))

    def test_loadPrivateCertificate(self) -> None:
        """
        A certificate and its key load from two files.
        """
        loaded = tls.loadPrivateCertificate(self.certPath, self.keyPath)
        self.assertEqual(_crypto(loaded), _crypto(_serverCert))
        self.assertEqual(
            loaded.privateKey.original.to_cryptography_key().public_key(),
            _crypto(_serverCert).public_key(),
        )

    def test_loadCombinedFile(self) -> None:
        """
        Without a key path the key comes from the certificate file, whatever
        the order of the two; certificates after the first are ignored.
        """
        combined = self.write(
            "combined.pem",
            self.read(self.certPath) + _ca.pem + self.read(self.keyPath),
        )
        loaded = tls.loadPrivateCertificate(combined)
        self.assertEqual(_crypto(loaded), _crypto(_serverCert))

    def test_missingCertificateFile(self) -> None:
        """
        A missing certificate file is an error naming it.
        """
        missing = os.path.join(self.directory, "missing.crt")
        error = self.assertRaises(
            tls.CertificateFileError, tls.loadPrivateCertificate, missing, self.keyPath
        )
        self.assertNamesFile(error, missing)
        self.assertIn("cannot read", str(error))

    def test_missingKeyFile(self) -> None:
        """
        A missing key file is an error naming it, not the certificate.
        """
        missing = os.path.join(self.directory, "missing.key")
        error = self.assertRaises(
            tls.CertificateFileError, tls.loadPrivateCertificate, self.certPath, missing
        )
        self.assertNamesFile(error, missing)

    def test_invalidCertificate(self) -> None:
        """
        A certificate file without a valid PEM certificate is an error naming
        it.
        """
        for content in b"", b"not a certificate\n", self.read(self.keyPath):
            garbage = self.write("garbage.crt", content)
            error = self.assertRaises(
                tls.CertificateFileError,
                tls.loadPrivateCertificate,
                garbage,
                self.keyPath,
            )
            self.assertNamesFile(error, garbage)

    def test_invalidKey(self) -> None:
        """
        A key file without a valid PEM key is an error naming it.
        """
        garbage = self.write("garbage.key", self.read(self.certPath))
        error = self.assertRaises(
            tls.CertificateFileError, tls.loadPrivateCertificate, self.certPath, garbage
        )
        self.assertNamesFile(error, garbage)
        self.assertIn("private key", str(error))

    def test_encryptedKey(self) -> None:
        """
        An encrypted key is refused with an error naming its file.
        """
        key = _serverCert.privateKey.original.to_cryptography_key()
        encrypted = self.write(
            "encrypted.key",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"password"),
            ),
        )
        error = self.assertRaises(
            tls.CertificateFileError,
            tls.loadPrivateCertificate,
            self.certPath,
            encrypted,
        )
        self.assertNamesFile(error, encrypted)
        self.assertIn("encrypted", str(error))

    def test_keyOfAnotherCertificate(self) -> None:
        """
        A key that does not belong to the certificate is an error naming both
        files.
        """
        _, otherKey = writePem(_ca.issue([SERVER]), self.directory)
        error = self.assertRaises(
            tls.CertificateFileError,
            tls.loadPrivateCertificate,
            self.certPath,
            otherKey,
        )
        self.assertNamesFile(error, otherKey)
        self.assertIn(self.certPath, str(error))

    def test_loadCertificates(self) -> None:
        """
        L{tls.loadCertificates} returns every certificate of a file, in
        order.
        """
        chain = self.write("chain.pem", self.read(self.certPath) + _ca.pem)
        self.assertEqual(
            [_crypto(c) for c in tls.loadCertificates(chain)],
            [_crypto(_serverCert), _crypto(_ca.certificate)],
        )

    def test_trustCAFile(self) -> None:
        """
        L{tls.trustCAFile} trusts every certificate of the bundle and
        remembers the file.
        """
        bundle = self.write("bundle.pem", _ca.pem + _otherCA.pem)
        self.assertEqual(
            tls.trustCAFile(bundle),
            tls.CATrust(
                [_crypto(_ca.certificate), _crypto(_otherCA.certificate)], bundle
            ),
        )

    def test_trustCAFileErrors(self) -> None:
        """
        A missing, empty or invalid CA file is an error naming it.
        """
        missing = os.path.join(self.directory, "missing.pem")
        empty = self.write("empty.pem", b"")
        invalid = self.write(
            "invalid.pem",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        for path in missing, empty, invalid:
            error = self.assertRaises(tls.CertificateFileError, tls.trustCAFile, path)
            self.assertNamesFile(error, path)

    def test_trustPinnedSources(self) -> None:
        """
        L{tls.trustPinned} pins the same certificate whether given as PEM
        bytes, a path, or a L{Certificate}; from a file with a chain it pins
        the first certificate.
        """
        expected = tls.PinnedTrust(_crypto(_serverCert))
        chain = self.write("chain.pem", self.read(self.certPath) + _ca.pem)
        self.assertEqual(tls.trustPinned(self.read(self.certPath)), expected)
        self.assertEqual(tls.trustPinned(self.certPath), attrs.evolve(expected, source=self.certPath))
        self.assertEqual(tls.trustPinned(chain), attrs.evolve(expected, source=chain))
        self.assertEqual(tls.trustPinned(_serverCert), expected)
        self.assertEqual(
            expected.fingerprint, _crypto(_serverCert).fingerprint(hashes.SHA256())
        )

    def test_trustPinnedErrors(self) -> None:
        """
        L{tls.trustPinned} of a missing file names it; of bytes that are not
        a certificate, says so.
        """
        missing = os.path.join(self.directory, "missing.pem")
        error = self.assertRaises(tls.CertificateFileError, tls.trustPinned, missing)
        self.assertNamesFile(error, missing)
        error = self.assertRaises(tls.CertificateFileError, tls.trustPinned, b"junk")
        self.assertIsNone(error.path)
        self.assertIn("no valid PEM certificate", str(error))


class ClientTrustTests(SynchronousTestCase):
    """
    The initiating side verifies the server with L{tls.clientTLSOptions}.
    """

    def assertRefused(self, session: _Session, reasonType: type[Exception]) -> None:
        """
        The handshake failed at the client for C{reasonType}, both ends are
        disconnected, and the data the client wrote early never reached the
        server's application.
        """
        self.assertFalse(session.client.handshakeDone)
        self.assertFalse(session.server.handshakeDone)
        self.assertIsNotNone(session.client.lostReason)
        self.assertIsNotNone(session.server.lostReason)
        assert session.client.lostReason is not None
        self.assertIsInstance(session.client.lostReason.value, reasonType)
        self.assertEqual(session.server.received, [])
        self.assertIsNone(tls.channelBindingFor(session.clientTLS, isServer=False))

    def test_provider(self) -> None:
        """
        L{tls.clientTLSOptions} returns a client connection creator, for every
        kind of trust.
        """
        for trust in tls.trustSystem(), _caTrust(_ca), tls.trustPinned(_serverCert):
            self.assertTrue(
                verifyObject(
                    IOpenSSLClientConnectionCreator, tls.clientTLSOptions(SERVER, trust)
                )
            )

    def test_creatorReused(self) -> None:
        """
        The same server domain, trust and client certificate give the same
        creator (one OpenSSL context, not one per connection), and reusing
        it checks every connection afresh: a good server, a wrong one, then
        a good one again.
        """
        creator = tls.clientTLSOptions(SERVER, _caTrust(_ca))
        self.assertIs(tls.clientTLSOptions(SERVER, _caTrust(_ca)), creator)
        for certificate, ok in [(_serverCert, True), (_ca.issue(["other.example"]), False), (_serverCert, True)]:
            session = _connect(tls.serverTLSOptions(certificate), tls.clientTLSOptions(SERVER, _caTrust(_ca)))
            if ok:
                self.assertTrue(session.client.handshakeDone)
                self.assertEqual(b"".join(session.server.received), b"secret")
            else:
                self.assertRefused(session, tls.CertificateNameMismatch)

    def test_creatorPerArguments(self) -> None:
        """
        Another domain, trust, client certificate object or system store
        location gives another creator.
        """
        creator = tls.clientTLSOptions(SERVER, _caTrust(_ca))
        self.assertIsNot(tls.clientTLSOptions("other.example", _caTrust(_ca)), creator)
        self.assertIsNot(tls.clientTLSOptions(SERVER, _caTrust(_otherCA)), creator)
        self.assertIsNot(tls.clientTLSOptions(SERVER, _caTrust(_ca), _serverCert), creator)
        self.assertIsNot(
            tls.clientTLSOptions(SERVER, _caTrust(_ca), _serverCert),
            tls.clientTLSOptions(SERVER, _caTrust(_ca), _ca.issue([SERVER])),
        )
        system = tls.clientTLSOptions(SERVER, tls.trustSystem())
        self.patch(os, "environ", dict(os.environ, SSL_CERT_FILE="/nonexistent/ca.pem"))
        self.assertIsNot(tls.clientTLSOptions(SERVER, tls.trustSystem()), system)

    def test_creatorsBounded(self) -> None:
        """
        Only the last few creators are kept.
        """
        for n in range(tls._CLIENT_CREATORS_KEPT + 5):
            tls.clientTLSOptions("host%d.example" % (n,), _caTrust(_ca))
        self.assertEqual(len(tls._clientCreators), tls._CLIENT_CREATORS_KEPT)

    def test_notTrust(self) -> None:
        """
        Anything but a trust value is refused.
        """
        self.assertRaises(TypeError, tls.clientTLSOptions, SERVER, _ca.certificate)

    def test_trustedCA(self) -> None:
        """
        A server whose certificate a trusted CA issued for the server domain
        is accepted, and the data written before the handshake arrives.
        """
        session = _connect(
            tls.serverTLSOptions(_serverCert),
            tls.clientTLSOptions(SERVER, _caTrust(_ca)),
        )
        self.assertTrue(session.client.handshakeDone)
        self.assertTrue(session.server.handshakeDone)
        self.assertEqual(b"".join(session.server.received), b"secret")
        self.assertIsNone(session.client.lostReason)

    def test_trustedCAWithChain(self) -> None:
        """
        The server can send intermediate certificates after its own; a chain
        to the trusted CA passes.
        """
        session = _connect(
            tls.serverTLSOptions(_serverCert, chain=[_ca.certificate]),
            tls.clientTLSOptions(SERVER, _caTrust(_ca)),
        )
        self.assertTrue(session.client.handshakeDone)
        self.assertEqual(b"".join(session.server.received), b"secret")

    def test_wrongName(self) -> None:
        """
        A trusted certificate for other names fails the handshake with a
        L{tls.CertificateNameMismatch} that says which names it is for and
        which was expected, with its issuer and fingerprint.
        """
        certificate = _ca.issue(["other.example", "b.example"], ["xmpp.example"])
        session = _connect(
            tls.serverTLSOptions(certificate),
            tls.clientTLSOptions(SERVER, _caTrust(_ca)),
        )
        self.assertRefused(session, tls.CertificateNameMismatch)
        assert session.client.lostReason is not None
        error = session.client.lostReason.value
        self.assertEqual(
            str(error),
            "the server's certificate for example.com is for b.example, "
            "other.example and xmpp.example and was expected for example.com; "
            "issuer CN=xmppcomp test CA, SHA-256 fingerprint "
            + _fingerprint(certificate),
        )
        self.assertEqual(error.names, ("b.example", "other.example", "xmpp.example"))
        self.assertEqual(error.expected, SERVER)

    def test_untrustedChain(self) -> None:
        """
        A certificate for the right name from an authority that is not
        trusted fails the handshake with a L{tls.UntrustedCertificate}
        naming where trusted authorities were looked for, the issuer and
        the fingerprint of the server's certificate, whether or not the
        server sends its issuer along.
        """
        certificate = _otherCA.issue([SERVER])
        trust = tls.CATrust([_crypto(_ca.certificate)], "/etc/xmppcomp/ca.pem")
        for chain, issuer in ([], "CN=another test CA"), ([_otherCA.certificate], "CN=another test CA (self-signed)"):
            session = _connect(
                tls.serverTLSOptions(certificate, chain=chain),
                tls.clientTLSOptions(SERVER, trust),
            )
            self.assertRefused(session, tls.UntrustedCertificate)
            assert session.client.lostReason is not None
            self.assertEqual(
                str(session.client.lostReason.value),
                "the server's certificate for example.com is not signed by a CA "
                f"in the CA file /etc/xmppcomp/ca.pem; issuer {issuer}, SHA-256 "
                "fingerprint " + _fingerprint(certificate),
            )

    def test_systemTrust(self) -> None:
        """
        The system store does not trust a test authority.
        """
        self.patch(os, "environ", {k: v for k, v in os.environ.items() if not k.startswith("SSL_CERT_")})
        session = _connect(
            tls.serverTLSOptions(_serverCert),
            tls.clientTLSOptions(SERVER, tls.trustSystem()),
        )
        self.assertRefused(session, tls.UntrustedCertificate)
        assert session.client.lostReason is not None
        self.assertIn(
            "is not signed by a CA in the system store; issuer CN=xmppcomp test CA,",
            str(session.client.lostReason.value),
        )

    def test_describeTrust(self) -> None:
        """
        L{tls.describeTrust} names where each kind of trust looks: the
        system store (and the environment variables that move it), the CA
        file, the pinned file.
        """
        self.patch(os, "environ", {"SSL_CERT_FILE": "/x/ca.pem"})
        self.assertEqual(tls.describeTrust(tls.trustSystem()), "the system store (SSL_CERT_FILE=/x/ca.pem)")
        self.patch(os, "environ", {})
        self.assertEqual(tls.describeTrust(tls.trustSystem()), "the system store")
        self.assertEqual(tls.describeTrust(_caTrust(_ca)), "the configured CA certificates")
        self.assertEqual(tls.describeTrust(tls.CATrust([], "ca.pem")), "the CA file ca.pem")
        pinned = tls.PinnedTrust(_crypto(_serverCert))
        self.assertEqual(tls.describeTrust(pinned), "the pinned certificate")
        self.assertEqual(tls.describeTrust(attrs.evolve(pinned, source="r.pem")), "the pinned certificate r.pem")

    def test_pinnedSelfSigned(self) -> None:
        """
        A pinned self-signed certificate is accepted.
        """
        certificate = selfSigned([SERVER])
        session = _connect(
            tls.serverTLSOptions(certificate),
            tls.clientTLSOptions(SERVER, tls.trustPinned(certificate)),
        )
        self.assertTrue(session.client.handshakeDone)
        self.assertEqual(b"".join(session.server.received), b"secret")

    def test_pinnedWhateverIssuer(self) -> None:
        """
        A pinned certificate is accepted although its issuer is not trusted,
        even when the server sends that issuer along.
        """
        for chain in [], [_ca.certificate]:
            session = _connect(
                tls.serverTLSOptions(_serverCert, chain=chain),
                tls.clientTLSOptions(SERVER, tls.trustPinned(_serverCert)),
            )
            self.assertTrue(session.client.handshakeDone)
            self.assertEqual(b"".join(session.server.received), b"secret")

    def test_pinnedExpired(self) -> None:
        """
        Pinning does not lift the validity period: an expired pinned
        certificate fails the handshake.
        """
        certificate = _expired([SERVER])
        session = _connect(
            tls.serverTLSOptions(certificate),
            tls.clientTLSOptions(SERVER, tls.trustPinned(certificate)),
        )
        self.assertRefused(session, tls.InvalidCertificate)
        assert session.client.lostReason is not None
        expiry = _crypto(certificate).not_valid_after_utc
        self.assertEqual(
            str(session.client.lostReason.value),
            f"the server's certificate for example.com expired on {expiry:%Y-%m-%d %H:%M:%S} UTC; "
            "issuer CN=example.com, SHA-256 fingerprint " + _fingerprint(certificate),
        )

    def test_pinnedOtherCertificate(self) -> None:
        """
        Another certificate for the same name from the same issuer fails the
        handshake.
        """
        presented = _ca.issue([SERVER])
        pinned = attrs.evolve(tls.trustPinned(_serverCert), source="/etc/xmppcomp/router.pem")
        for chain in [], [_ca.certificate]:
            session = _connect(
                tls.serverTLSOptions(presented, chain=chain),
                tls.clientTLSOptions(SERVER, pinned),
            )
            self.assertRefused(session, tls.PinnedCertificateMismatch)
            assert session.client.lostReason is not None
            self.assertEqual(
                str(session.client.lostReason.value),
                "the server's certificate for example.com (SHA-256 fingerprint "
                f"{_fingerprint(presented)}, issuer CN=xmppcomp test CA) is not the "
                "pinned certificate (/etc/xmppcomp/router.pem, SHA-256 fingerprint "
                f"{_fingerprint(_serverCert)})",
            )

    def test_pinnedIsNotAnAuthority(self) -> None:
        """
        Pinning a CA certificate does not trust what that CA issues: only the
        pinned certificate itself passes.
        """
        session = _connect(
            tls.serverTLSOptions(_serverCert),
            tls.clientTLSOptions(SERVER, tls.trustPinned(_ca.certificate)),
        )
        self.assertRefused(session, tls.PinnedCertificateMismatch)

    def test_pinnedWrongName(self) -> None:
        """
        The pinned certificate must still carry the server domain.
        """
        session = _connect(
            tls.serverTLSOptions(_serverCert),
            tls.clientTLSOptions("other.example", tls.trustPinned(_serverCert)),
        )
        self.assertRefused(session, tls.CertificateNameMismatch)
        assert session.client.lostReason is not None
        self.assertIn(
            "is for example.com and was expected for other.example;",
            str(session.client.lostReason.value),
        )


class VersionTests(SynchronousTestCase):
    """
    TLS 1.2 is the minimum at both ends.
    """

    def test_legacyPeersSpeakTLS11(self) -> None:
        """
        This OpenSSL still speaks TLS 1.1 when both ends allow it, so the
        refusals below come from xmppcomp's options.
        """
        session = _connect(_legacyOptions(_serverCert), _legacyOptions())
        self.assertTrue(session.client.handshakeDone)
        self.assertEqual(tls.tlsVersionOf(session.clientTLS), "TLSv1.1")

    def test_serverRefusesTLS11(self) -> None:
        """
        The receiving side refuses a client that offers at most TLS 1.1: its
        context disables every version below 1.2.
        """
        options = tls.serverTLSOptions(_serverCert)
        disabled = options.getContext().set_options(0)
        for flag in SSL.OP_NO_SSLv3, SSL.OP_NO_TLSv1, SSL.OP_NO_TLSv1_1:
            self.assertTrue(disabled & flag)
        self.assertFalse(disabled & SSL.OP_NO_TLSv1_2)
        session = _connect(options, _legacyOptions())
        self.assertFalse(session.server.handshakeDone)
        self.assertIsInstance(session.server.lostReason.value, SSL.Error)
        self.assertEqual(session.server.received, [])

    def test_clientRefusesTLS11(self) -> None:
        """
        The initiating side refuses a server that speaks at most TLS 1.1.
        """
        session = _connect(
            _legacyOptions(_serverCert), tls.clientTLSOptions(SERVER, _caTrust(_ca))
        )
        self.assertFalse(session.client.handshakeDone)
        self.assertIsInstance(session.client.lostReason.value, SSL.Error)
        self.assertEqual(session.server.received, [])


class ClientCertificateTests(SynchronousTestCase):
    """
    The receiving side requests a client certificate, verifies it, and
    L{tls.peerCertificateIdentities} reads the domains it asserts.
    """

    def test_identities(self) -> None:
        """
        A client certificate from a client CA is verified, and its DNS-IDs
        and bare-domain XmppAddrs are the identities.
        """
        clientCert = _ca.issue(
            [COMPONENT, "*.wild.example"],
            ["Other.Example.com", "user@example.com", "example.com/resource"],
            client=True,
        )
        session = _connect(
            tls.serverTLSOptions(_serverCert, [_ca.certificate]),
            tls.clientTLSOptions(SERVER, _caTrust(_ca), clientCert),
        )
        self.assertTrue(session.server.handshakeDone)
        self.assertEqual(
            tls.peerCertificateIdentities(session.serverTLS),
            {COMPONENT, "other.example.com"},
        )

    def test_untrustedClientCertificate(self) -> None:
        """
        A client certificate from another authority fails the handshake
        with a L{tls.UntrustedCertificate} naming the certificate, where the
        client CAs come from, its issuer and its fingerprint.
        """
        clientCert = _otherCA.issue([COMPONENT], client=True)
        session = _connect(
            tls.serverTLSOptions(
                _serverCert, [_ca.certificate], clientCAsSource="tls.client_cas (clients-ca.pem)"
            ),
            tls.clientTLSOptions(SERVER, _caTrust(_ca), clientCert),
        )
        self.assertFalse(session.server.handshakeDone)
        assert session.server.lostReason is not None
        self.assertIsInstance(session.server.lostReason.value, tls.UntrustedCertificate)
        self.assertEqual(
            str(session.server.lostReason.value),
            "the client certificate for component.example.com is not signed by a CA in "
            "tls.client_cas (clients-ca.pem); issuer CN=another test CA, SHA-256 fingerprint "
            + _fingerprint(clientCert),
        )
        self.assertEqual(session.server.received, [])

    def test_expiredClientCertificate(self) -> None:
        """
        An expired client certificate fails the handshake with a
        L{tls.InvalidCertificate} saying when it expired.
        """
        clientCert = _expired([COMPONENT])
        session = _connect(
            tls.serverTLSOptions(_serverCert, [clientCert]),
            tls.clientTLSOptions(SERVER, _caTrust(_ca), clientCert),
        )
        self.assertFalse(session.server.handshakeDone)
        assert session.server.lostReason is not None
        self.assertIsInstance(session.server.lostReason.value, tls.InvalidCertificate)
        self.assertIn(
            "the client certificate for component.example.com expired on ",
            str(session.server.lostReason.value),
        )

    def test_noClientCertificate(self) -> None:
        """
        A client certificate is requested, not required: a client without one
        connects, with no identities.
        """
        session = _connect(
            tls.serverTLSOptions(_serverCert, [_ca.certificate]),
            tls.clientTLSOptions(SERVER, _caTrust(_ca)),
        )
        self.assertTrue(session.server.handshakeDone)
        self.assertEqual(b"".join(session.server.received), b"secret")
        self.assertEqual(tls.peerCertificateIdentities(session.serverTLS), frozenset())

    def test_notRequested(self) -> None:
        """
        Without client CAs the server asks for no certificate, so a client
        that has one connects without presenting it.
        """
        session = _connect(
            tls.serverTLSOptions(_serverCert),
            tls.clientTLSOptions(
                SERVER, _caTrust(_ca), _ca.issue([COMPONENT], client=True)
            ),
        )
        self.assertTrue(session.server.handshakeDone)
        self.assertIsNone(session.serverTLS.getHandle().get_peer_certificate())
        self.assertEqual(tls.peerCertificateIdentities(session.serverTLS), frozenset())

    def test_emptyClientCAs(self) -> None:
        """
        An empty list of client CAs is a mistake, not a way to say none.
        """
        self.assertRaises(ValueError, tls.serverTLSOptions, _serverCert, [])

    def test_noTLS(self) -> None:
        """
        Without TLS there are no identities.
        """
        self.assertEqual(tls.peerCertificateIdentities(StringTransport()), frozenset())


class CertificateIdentitiesTests(SynchronousTestCase):
    """
    Tests for L{tls.certificateIdentities}.
    """

    def test_dnsNames(self) -> None:
        """
        DNS-IDs are identities, lowercased; wildcards are not.
        """
        certificate = _certificate(
            [
                x509.DNSName("A.Example"),
                x509.DNSName("*.b.example"),
                x509.DNSName("c.example"),
            ]
        )
        self.assertEqual(
            tls.certificateIdentities(certificate), {"a.example", "c.example"}
        )

    def test_xmppAddrs(self) -> None:
        """
        XmppAddrs that are bare domains are identities, lowercased; JIDs with
        a local part or a resource are not.
        """
        certificate = _certificate(
            [
                _xmppAddr("Comp.Example"),
                _xmppAddr("ü.example"),
                _xmppAddr("user@d.example"),
                _xmppAddr("e.example/resource"),
            ]
        )
        self.assertEqual(
            tls.certificateIdentities(certificate), {"comp.example", "ü.example"}
        )

    def test_longXmppAddr(self) -> None:
        """
        An XmppAddr longer than 127 bytes, whose DER length takes the long
        form, is decoded.
        """
        name = "a" * 60 + "." + "b" * 60 + ".example"
        certificate = _crypto(_ca.issue(xmppAddrs=[name]))
        otherName = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.OtherName)[0]
        self.assertEqual(otherName.value[:3], b"\x0c\x81" + bytes([len(name)]))
        self.assertEqual(tls.certificateIdentities(certificate), {name})

    def test_malformedXmppAddrs(self) -> None:
        """
        XmppAddr values that are not a UTF8String holding a domain are
        ignored, as are other otherNames.
        """
        certificate = _certificate(
            [
                # IA5String instead of UTF8String.
                x509.OtherName(XMPPADDR, b"\x16\x0bbad.example"),
                # Invalid UTF-8.
                x509.OtherName(XMPPADDR, b"\x0c\x02\xc3\x28"),
                # Empty.
                x509.OtherName(XMPPADDR, b"\x0c\x00"),
                # SRVName (RFC 4985), not an XmppAddr.
                x509.OtherName(
                    ObjectIdentifier("1.3.6.1.5.5.7.8.7"),
                    b"\x16\x18_xmpp-server.srv.example",
                ),
                _xmppAddr("good.example"),
            ]
        )
        self.assertEqual(tls.certificateIdentities(certificate), {"good.example"})

    def test_decodeUTF8String(self) -> None:
        """
        The DER decoder behind XmppAddrs takes short and long lengths and
        refuses what DER forbids, which C{cryptography} will not even put in a
        certificate.
        """
        decode = tls._decodeUTF8String
        self.assertEqual(decode(b"\x0c\x03a.b"), "a.b")
        self.assertEqual(decode(b"\x0c\x81\x80" + b"a" * 128), "a" * 128)
        self.assertEqual(decode(b"\x0c\x82\x01\x00" + b"a" * 256), "a" * 256)
        for bad in [
            b"",
            b"\x0c",
            b"\x0c\x04a.b",  # too short
            b"\x0c\x02a.b",  # trailing data
            b"\x0c\x81\x03a.b",  # long form for a short length
            b"\x0c\x82\x00\x80" + b"a" * 128,  # leading zero
            b"\x0c\x80",  # indefinite length
            b"\x0c\x85\x00\x00\x00\x00\x01a",  # absurd length of length
        ]:
            self.assertIsNone(decode(bad), bad)

    def test_commonNameIgnored(self) -> None:
        """
        The subject's common name asserts nothing; nor does a certificate
        without subjectAltNames.
        """
        self.assertEqual(
            tls.certificateIdentities(_certificate(commonName="cn.example")),
            frozenset(),
        )
        self.assertEqual(tls.certificateIdentities(_crypto(_ca.issue())), frozenset())


class ChannelBindingTests(SynchronousTestCase):
    """
    Tests for L{tls.channelBindingFor}, L{tls.tlsVersionOf} and
    L{tls.tlsServerEndPoint} over in-memory handshakes.
    """

    def assertSameBinding(self, session: _Session, version: str) -> None:
        serverSide = tls.channelBindingFor(session.serverTLS, isServer=True)
        clientSide = tls.channelBindingFor(session.clientTLS, isServer=False)
        self.assertIsNotNone(serverSide)
        self.assertEqual(serverSide, clientSide)
        assert serverSide is not None
        self.assertEqual(serverSide.tlsVersion, version)
        self.assertEqual(
            serverSide.tlsServerEndPoint,
            _crypto(_serverCert).fingerprint(hashes.SHA256()),
        )
        assert serverSide.tlsExporter is not None
        self.assertEqual(len(serverSide.tlsExporter), 32)
        self.assertEqual(tls.tlsVersionOf(session.serverTLS), version)
        self.assertEqual(tls.tlsVersionOf(session.clientTLS), version)

    def test_tls13(self) -> None:
        """
        Over TLS 1.3 both ends compute the same binding data, and offer
        C{tls-exporter} first.
        """
        session = _connect(
            tls.serverTLSOptions(_serverCert),
            tls.clientTLSOptions(SERVER, _caTrust(_ca)),
        )
        self.assertSameBinding(session, "TLSv1.3")
        binding = tls.channelBindingFor(session.clientTLS, isServer=False)
        assert binding is not None
        self.assertEqual(binding.available(), [TLS_EXPORTER, TLS_SERVER_END_POINT])

    def test_serverEndPointPerContext(self) -> None:
        """
        The server end's C{tls-server-end-point} is remembered per TLS
        context: every connection of a listener gets its own certificate's
        hash, and a listener with another certificate gets that one's, not
        the first's.
        """
        otherCert = _ca.issue(dnsNames=[SERVER])
        first = tls.serverTLSOptions(_serverCert)
        other = tls.serverTLSOptions(otherCert)
        client = tls.clientTLSOptions(SERVER, _caTrust(_ca))
        endPoints = tls.ServerEndPoints()
        for remembered in (None, endPoints):
            seen = []
            for options, certificate in ((first, _serverCert), (other, otherCert), (first, _serverCert)):
                session = _connect(options, client)
                serverSide = tls.channelBindingFor(session.serverTLS, isServer=True, ownEndPoints=remembered)
                clientSide = tls.channelBindingFor(session.clientTLS, isServer=False)
                assert serverSide is not None and clientSide is not None
                expected = _crypto(certificate).fingerprint(hashes.SHA256())
                self.assertEqual(serverSide.tlsServerEndPoint, expected)
                self.assertEqual(clientSide.tlsServerEndPoint, expected)
                seen.append(expected)
            self.assertNotEqual(seen[0], seen[1])
        # Remembered by the object, one per context (the two listeners').
        self.assertEqual(len(endPoints), 2)

    def test_tls12(self) -> None:
        """
        Over TLS 1.2 both ends compute the same binding data, and offer only
        C{tls-server-end-point}.
        """
        session = _connect(
            _serverOptionsUpTo12(_serverCert),
            tls.clientTLSOptions(SERVER, _caTrust(_ca)),
        )
        self.assertSameBinding(session, "TLSv1.2")
        binding = tls.channelBindingFor(session.serverTLS, isServer=True)
        assert binding is not None
        self.assertEqual(binding.available(), [TLS_SERVER_END_POINT])

    def test_sessionsDiffer(self) -> None:
        """
        Two sessions with the same certificates export different bytes.
        """
        exported = []
        for _ in range(2):
            session = _connect(
                tls.serverTLSOptions(_serverCert),
                tls.clientTLSOptions(SERVER, _caTrust(_ca)),
            )
            binding = tls.channelBindingFor(session.clientTLS, isServer=False)
            assert binding is not None
            exported.append(binding.tlsExporter)
        self.assertNotEqual(exported[0], exported[1])

    def test_beforeHandshake(self) -> None:
        """
        Before the handshake is complete there is a connection but no
        binding and no version.
        """
        clock = Clock()
        factory = TLSMemoryBIOFactory(
            tls.clientTLSOptions(SERVER, _caTrust(_ca)),
            True,
            Factory.forProtocol(Protocol),
            clock,
        )
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(StringTransport())
        self.assertIsInstance(tls.tlsConnectionOf(protocol), SSL.Connection)
        self.assertIsNone(tls.channelBindingFor(protocol, isServer=False))
        self.assertIsNone(tls.tlsVersionOf(protocol))
        self.assertEqual(tls.peerCertificateIdentities(protocol), frozenset())

    def test_noTLS(self) -> None:
        """
        A transport without TLS has no connection, binding or version.
        """
        transport = StringTransport()
        self.assertIsNone(tls.tlsConnectionOf(transport))
        self.assertIsNone(tls.channelBindingFor(transport, isServer=True))
        self.assertIsNone(tls.tlsVersionOf(transport))

    def test_serverEndPointHash(self) -> None:
        """
        C{tls-server-end-point} hashes with the signature's hash function,
        SHA-256 in place of SHA-1, and is undefined for Ed25519.
        """
        sha384 = _certificate(signatureHash=hashes.SHA384())
        self.assertEqual(
            tls.tlsServerEndPoint(sha384), sha384.fingerprint(hashes.SHA384())
        )
        sha512 = _certificate(signatureHash=hashes.SHA512())
        self.assertEqual(
            tls.tlsServerEndPoint(sha512), sha512.fingerprint(hashes.SHA512())
        )
        # cryptography no longer signs with SHA-1; "openssl req -sha1" did.
        sha1 = x509.load_pem_x509_certificate(_SHA1_SIGNED)
        self.assertIsInstance(sha1.signature_hash_algorithm, hashes.SHA1)
        self.assertEqual(tls.tlsServerEndPoint(sha1), sha1.fingerprint(hashes.SHA256()))
        self.assertIsNone(tls.tlsServerEndPoint(_certificate(ed=True)))


class TLSConnectionOfTests(SynchronousTestCase):
    """
    Tests for L{tls.tlsConnectionOf}.
    """

    def test_tlsProtocolAsTransport(self) -> None:
        """
        Over a TLS endpoint the transport is the L{TLSMemoryBIOProtocol}
        itself.
        """
        session = _connect(
            tls.serverTLSOptions(_serverCert),
            tls.clientTLSOptions(SERVER, _caTrust(_ca)),
        )
        self.assertIs(session.client.transport, session.clientTLS)
        self.assertIs(
            tls.tlsConnectionOf(session.client.transport),
            session.clientTLS.getHandle(),
        )

    def test_protocolOfTransport(self) -> None:
        """
        After C{startTLS} on a TCP transport, the connection is that of the
        transport's protocol.
        """
        protocol = TLSMemoryBIOFactory(
            tls.serverTLSOptions(_serverCert),
            False,
            Factory.forProtocol(Protocol),
            Clock(),
        ).buildProtocol(None)
        protocol.makeConnection(StringTransport())
        transport = StringTransport()
        transport.protocol = protocol  # type: ignore[attr-defined]
        self.assertIs(tls.tlsConnectionOf(transport), protocol.getHandle())


# Real TCP.


class _LineProtocol(Protocol):
    """
    Lines of bytes, for a toy STARTTLS exchange.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self.lost: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            self.lineReceived(line)

    def lineReceived(self, line: bytes) -> None:
        raise NotImplementedError()

    def connectionLost(self, reason: Failure) -> None:
        self.lost.callback(None)


class _STARTTLSServer(_LineProtocol):
    """
    Answers C{STARTTLS} with C{PROCEED} and starts TLS; answers C{BIND}
    (sent encrypted) with C{OK}, having recorded the TLS state it sees then.
    """

    def __init__(self, options: CertificateOptions) -> None:
        super().__init__()
        self.options = options
        self.connectionBeforeTLS: object = "not yet"
        self.connection: SSL.Connection | None = None
        self.binding: ChannelBindingData | None = None
        self.identities: frozenset[str] = frozenset()
        self.done: Deferred[None] = Deferred()

    def lineReceived(self, line: bytes) -> None:
        if line == b"STARTTLS":
            self.connectionBeforeTLS = tls.tlsConnectionOf(self.transport)
            self.transport.write(b"PROCEED\n")
            self.transport.startTLS(self.options)
        elif line == b"BIND":
            self.connection = tls.tlsConnectionOf(self.transport)
            self.binding = tls.channelBindingFor(self.transport, isServer=True)
            self.identities = tls.peerCertificateIdentities(self.transport)
            self.transport.write(b"OK\n")
            self.done.callback(None)


class _STARTTLSClient(_LineProtocol):
    """
    Sends C{STARTTLS}, starts TLS on C{PROCEED} and sends C{BIND} at once
    (TLS holds it until the handshake is done); on C{OK} records the TLS
    state it sees and disconnects.
    """

    def __init__(self, options: IOpenSSLClientConnectionCreator) -> None:
        super().__init__()
        self.options = options
        self.connection: SSL.Connection | None = None
        self.binding: ChannelBindingData | None = None
        self.done: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(b"STARTTLS\n")

    def lineReceived(self, line: bytes) -> None:
        if line == b"PROCEED":
            self.transport.startTLS(self.options)
            self.transport.write(b"BIND\n")
        elif line == b"OK":
            self.connection = tls.tlsConnectionOf(self.transport)
            self.binding = tls.channelBindingFor(self.transport, isServer=False)
            self.transport.loseConnection()
            self.done.callback(None)


class LoopbackSTARTTLSTests(TestCase):
    """
    STARTTLS over real loopback TCP: after C{startTLS} on a TCP transport,
    L{tls.tlsConnectionOf} finds the connection and both ends compute the
    same channel-binding data.
    """

    @inlineCallbacks
    def exchange(
        self, serverOptions: CertificateOptions, clientCertificate: PrivateCertificate
    ):  # type: ignore[no-untyped-def]
        tcp = IReactorTCP(reactor)
        server = _STARTTLSServer(serverOptions)
        port = tcp.listenTCP(
            0, Factory.forProtocol(lambda: server), interface="127.0.0.1"
        )
        self.addCleanup(port.stopListening)
        client = _STARTTLSClient(
            tls.clientTLSOptions(SERVER, _caTrust(_ca), clientCertificate)
        )
        clientFactory = ClientFactory.forProtocol(lambda: client)
        clientFactory.clientConnectionFailed = (  # type: ignore[method-assign]
            lambda connector, reason: client.done.errback(reason)
        )
        connector = tcp.connectTCP("127.0.0.1", port.getHost().port, clientFactory)
        self.addCleanup(connector.disconnect)
        yield gatherResults([server.done, client.done, server.lost, client.lost])
        return server, client

    def assertSameBinding(
        self, server: _STARTTLSServer, client: _STARTTLSClient, version: str
    ) -> None:
        self.assertIsNone(server.connectionBeforeTLS)
        self.assertIsInstance(server.connection, SSL.Connection)
        self.assertIsInstance(client.connection, SSL.Connection)
        self.assertIsNotNone(server.binding)
        self.assertEqual(server.binding, client.binding)
        assert server.binding is not None
        self.assertEqual(server.binding.tlsVersion, version)
        self.assertEqual(
            server.binding.tlsServerEndPoint,
            _crypto(_serverCert).fingerprint(hashes.SHA256()),
        )
        self.assertEqual(server.identities, {COMPONENT})

    @inlineCallbacks
    def test_tls13(self):  # type: ignore[no-untyped-def]
        """
        Over TLS 1.3 both ends of a real STARTTLS connection compute the same
        binding data, and the server sees the client certificate's
        identities.
        """
        server, client = yield self.exchange(
            tls.serverTLSOptions(_serverCert, [_ca.certificate]),
            _ca.issue([COMPONENT], client=True),
        )
        self.assertSameBinding(server, client, "TLSv1.3")

    @inlineCallbacks
    def test_tls12(self):  # type: ignore[no-untyped-def]
        """
        Over TLS 1.2, forced by the server, both ends of a real STARTTLS
        connection compute the same binding data.
        """
        server, client = yield self.exchange(
            _serverOptionsUpTo12(_serverCert, [_ca.certificate]),
            _ca.issue([COMPONENT], client=True),
        )
        self.assertSameBinding(server, client, "TLSv1.2")


class TLSDeclarationsTests(SynchronousTestCase):
    """
    Tests for L{tls.TLSDeclarations}.
    """

    def test_kept(self) -> None:
        """
        The declarations Twisted's TLS layer makes for each interface of the
        transport stay in zope's cache, so the next connection finds them;
        once per kind of transport.
        """
        import gc

        from zope.interface import Interface, implementer
        from zope.interface.declarations import InstanceDeclarations, Provides

        class IOne(Interface):
            pass

        class ITwo(Interface):
            pass

        class Layer:
            pass

        @implementer(IOne, ITwo)
        class Transport:
            protocol = Layer()

        declarations = tls.TLSDeclarations()
        declarations.keep(Transport())
        self.assertEqual(len(declarations), 1)
        gc.collect()
        for interface in (IOne, ITwo):
            self.assertIs(InstanceDeclarations.get((Layer, interface)), Provides(Layer, interface))
        declarations.keep(Transport())
        self.assertEqual(len(declarations), 1)
        # Owned by the object, not the process: another one keeps nothing.
        self.assertEqual(len(tls.TLSDeclarations()), 0)

    def test_noProtocol(self) -> None:
        """
        A transport without a protocol is left alone.
        """
        declarations = tls.TLSDeclarations()
        declarations.keep(object())
        self.assertEqual(len(declarations), 0)

    def test_bounded(self) -> None:
        """
        At most L{tls.TLSDeclarations.MOST} kinds of transport are kept.
        """
        declarations = tls.TLSDeclarations()
        for n in range(tls.TLSDeclarations.MOST + 5):
            layer = type("Layer%d" % (n,), (), {})
            transport = type("Transport%d" % (n,), (), {"protocol": layer()})
            declarations.keep(transport())
        self.assertEqual(len(declarations), tls.TLSDeclarations.MOST)

    def test_policiesOwnTheirs(self) -> None:
        """
        Each receiving and initiating policy has its own keeper by default,
        and a component shares one between its connections.
        """
        from xmppcomp.stream.initiating import InitiatingPolicy

        first = InitiatingPolicy("example.net", "comp.example.net", secret="s")
        second = InitiatingPolicy("example.net", "comp.example.net", secret="s")
        self.assertIsNot(first.tlsDeclarations, second.tlsDeclarations)
        shared = tls.TLSDeclarations()
        self.assertIs(
            InitiatingPolicy("example.net", "comp.example.net", secret="s", tlsDeclarations=shared).tlsDeclarations,
            shared,
        )
