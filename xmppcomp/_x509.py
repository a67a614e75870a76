# -*- test-case-name: tests.test_embedded,tests.test_stream_tls -*-
"""
Certificates made in memory: what the embedded router's certificate and
XTLS authority (L{xmppcomp.embedded}) and the test certificates of
L{xmppcomp.testing} share. Keys are ECDSA P-256.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID
from twisted.internet.ssl import PrivateCertificate

__all__ = [
    "ID_ON_XMPPADDR",
    "authorityCertificate",
    "certificateBuilder",
    "keyUsage",
    "newKey",
    "privateCertificate",
    "privateKeyPEM",
    "subjectAltNames",
]

#: id-on-xmppAddr (RFC 6120 section 13.7.1.4).
ID_ON_XMPPADDR = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.5")


def _derLength(length: int) -> bytes:
    """
    Encode a DER length: the short form below 128, the long form above.
    """
    if length < 0x80:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def _derUTF8String(text: str) -> bytes:
    """
    Encode C{text} as a DER UTF8String, the value of an XmppAddr otherName.
    """
    content = text.encode("utf-8")
    return b"\x0c" + _derLength(len(content)) + content


def subjectAltNames(dnsNames: Sequence[str], xmppAddrs: Sequence[str] = ()) -> list[x509.GeneralName]:
    """
    The subjectAltNames of a certificate: DNS-IDs, then XmppAddrs
    (id-on-xmppAddr otherNames holding a UTF8String).
    """
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dnsNames]
    names.extend(x509.OtherName(ID_ON_XMPPADDR, _derUTF8String(addr)) for addr in xmppAddrs)
    return names


def newKey() -> ec.EllipticCurvePrivateKey:
    """
    A fresh ECDSA P-256 key.
    """
    return ec.generate_private_key(ec.SECP256R1())


def keyUsage(**usages: bool) -> x509.KeyUsage:
    """
    A key usage extension with the usages named (C{digital_signature=True},
    ...), every other one off.
    """
    flags = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    flags.update(usages)
    return x509.KeyUsage(**flags)


def certificateBuilder(
    commonName: str,
    publicKey: ec.EllipticCurvePublicKey,
    issuer: x509.Name | None,
    before: datetime.timedelta,
    after: datetime.timedelta,
) -> x509.CertificateBuilder:
    """
    A certificate with its subject, issuer, key, a random serial number
    and its validity, and no extension yet.

    @param commonName: the subject's only attribute.
    @param issuer: the issuer's name, or C{None} for a self-signed one.
    @param before: how long before now the certificate is valid from.
    @param after: how long after now it is valid until.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, commonName)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if issuer is None else issuer)
        .public_key(publicKey)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - before)
        .not_valid_after(now + after)
    )


def authorityCertificate(
    commonName: str,
    key: ec.EllipticCurvePrivateKey,
    before: datetime.timedelta,
    after: datetime.timedelta,
) -> x509.Certificate:
    """
    The self-signed certificate of a certificate authority that issues
    end-entity certificates only (path length 0).

    @param key: the authority's private key.
    @param before: how long before now the certificate is valid from.
    @param after: how long after now it is valid until.
    """
    return (
        certificateBuilder(commonName, key.public_key(), None, before, after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(keyUsage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )


def privateKeyPEM(key: PrivateKeyTypes) -> bytes:
    """
    C{key} in PEM (PKCS #8), unencrypted.
    """
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def privateCertificate(
    certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> PrivateCertificate:
    """
    A C{cryptography} certificate and its key as Twisted's type.
    """
    return PrivateCertificate.loadPEM(
        privateKeyPEM(key) + certificate.public_bytes(serialization.Encoding.PEM)
    )
