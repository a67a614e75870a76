# -*- test-case-name: tests.test_stream_tls -*-
"""
Certificates for tests, re-exported by L{xmppcomp.testing}.

L{makeCertificateAuthority} creates a throw-away certificate authority
that issues server and client certificates with the names an XMPP
component needs (DNS-ID and XmppAddr subjectAltNames), and L{selfSigned}
makes a self-signed certificate for pinning. Keys are ECDSA P-256, so
generating them costs about a millisecond. Nothing here is fit for
production use.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from twisted.internet.ssl import Certificate, PrivateCertificate

from xmppcomp import _x509

__all__ = [
    "CertificateAuthority",
    "makeCertificateAuthority",
    "selfSigned",
    "writePem",
]

#: How long issued certificates are valid, either side of now.
_VALIDITY = datetime.timedelta(days=30)


def _commonName(dnsNames: Sequence[str], xmppAddrs: Sequence[str]) -> str:
    """
    The subject's common name: the first name, if it fits the 64 characters
    X.509 allows. Nothing relies on it; the names are in the
    subjectAltNames.
    """
    for name in [*dnsNames, *xmppAddrs]:
        if len(name) <= 64:
            return name
    return "xmppcomp test"


def _leafBuilder(
    subjectName: str,
    issuer: x509.Name | None,
    publicKey: ec.EllipticCurvePublicKey,
    dnsNames: Sequence[str],
    xmppAddrs: Sequence[str],
    client: bool,
) -> x509.CertificateBuilder:
    """
    The common part of an end-entity certificate.

    @param issuer: the issuer's name, or C{None} for a self-signed one.
    """
    usages = [ExtendedKeyUsageOID.SERVER_AUTH]
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        _x509.certificateBuilder(subjectName, publicKey, issuer, _VALIDITY, _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_x509.keyUsage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(publicKey), critical=False
        )
    )
    names = _x509.subjectAltNames(dnsNames, xmppAddrs)
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(names), critical=False
        )
    return builder


@attrs.frozen
class CertificateAuthority:
    """
    A throw-away certificate authority for tests.

    @ivar _key: the authority's private key.
    @ivar _certificate: the authority's self-signed certificate.
    """

    _key: ec.EllipticCurvePrivateKey = attrs.field(repr=False)
    _certificate: x509.Certificate

    @property
    def certificate(self) -> Certificate:
        """
        The authority's certificate, to trust it (for example with
        L{twisted.internet.ssl.trustRootFromCertificates}, or as a client CA
        of L{xmppcomp.stream.tls.serverTLSOptions}).
        """
        return Certificate.loadPEM(self.pem)

    @property
    def pem(self) -> bytes:
        """
        The authority's certificate in PEM, as a CA file holds it.
        """
        return self._certificate.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        dnsNames: Sequence[str] = (),
        xmppAddrs: Sequence[str] = (),
        client: bool = False,
    ) -> PrivateCertificate:
        """
        Issue an end-entity certificate with a fresh key.

        @param dnsNames: DNS-ID subjectAltNames.
        @param xmppAddrs: XmppAddr (id-on-xmppAddr) subjectAltNames, encoded
            as UTF8String otherNames.
        @param client: also allow the certificate for TLS client
            authentication (extended key usage C{clientAuth} in addition to
            C{serverAuth}).
        @return: the certificate and its private key.
        """
        key = _x509.newKey()
        builder = _leafBuilder(
            _commonName(dnsNames, xmppAddrs),
            self._certificate.subject,
            key.public_key(),
            dnsNames,
            xmppAddrs,
            client,
        ).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self._key.public_key()
            ),
            critical=False,
        )
        return _x509.privateCertificate(builder.sign(self._key, hashes.SHA256()), key)


def makeCertificateAuthority(
    commonName: str = "xmppcomp test CA",
) -> CertificateAuthority:
    """
    Create a new certificate authority with a fresh key.

    @param commonName: the CN of the authority's subject.
    """
    key = _x509.newKey()
    certificate = _x509.authorityCertificate(commonName, key, _VALIDITY, _VALIDITY)
    return CertificateAuthority(key, certificate)


def selfSigned(
    dnsNames: Sequence[str], xmppAddrs: Sequence[str] = ()
) -> PrivateCertificate:
    """
    Make a self-signed end-entity certificate (no CA capability), for
    pinning with L{xmppcomp.stream.tls.trustPinned}.

    @param dnsNames: DNS-ID subjectAltNames.
    @param xmppAddrs: XmppAddr subjectAltNames.
    """
    key = _x509.newKey()
    builder = _leafBuilder(
        _commonName(dnsNames, xmppAddrs),
        None,
        key.public_key(),
        dnsNames,
        xmppAddrs,
        client=True,
    )
    return _x509.privateCertificate(builder.sign(key, hashes.SHA256()), key)


def writePem(
    privateCertificate: PrivateCertificate, directory: str | os.PathLike[str]
) -> tuple[str, str]:
    """
    Write a certificate and its key to two PEM files in C{directory}, to
    test code that loads them.

    @return: the paths of the certificate file and of the key file.
    """
    serial = privateCertificate.original.get_serial_number()
    base = os.path.join(os.fspath(directory), f"{serial:x}")
    certPath, keyPath = base + ".crt", base + ".key"
    with open(certPath, "wb") as f:
        f.write(
            privateCertificate.original.to_cryptography().public_bytes(
                serialization.Encoding.PEM
            )
        )
    with open(keyPath, "wb") as f:
        f.write(_x509.privateKeyPEM(privateCertificate.privateKey.original.to_cryptography_key()))
    return certPath, keyPath
