# -*- test-case-name: tests.test_xtls_identity -*-
"""
Does a certificate belong to a JID?

A domain JID (a service, like a component's hostname) is checked against the
certificate's DNS-IDs (wildcards allowed, with C{service_identity}) and its
XmppAddr subjectAltNames that are domains; a JID with a local part (a user)
is checked against the XmppAddr subjectAltNames (id-on-xmppAddr, RFC 6120
section 13.7.1.4), compared as bare JIDs after stringprep. The subject's
common name is never used.

Pure logic: C{cryptography} and C{jid} only.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from service_identity import CertificateError, VerificationError
from service_identity.cryptography import verify_certificate_hostname
from twisted.words.protocols.jabber.jid import JID, InvalidFormat

from xmppcomp.stream.tls import certificateIdentities, xmppAddresses
from xmppcomp.xtls._exceptions import CertificateMismatch

__all__ = ["certificateHash", "checkPeerCertificate", "xmppAddresses"]


def certificateHash(certificate: x509.Certificate) -> str:
    """
    The SHA-256 hash of the certificate's DER form in lowercase hex: the
    key name this endpoint puts in XEP-0250 offers.
    """
    return certificate.fingerprint(hashes.SHA256()).hex()


def _matchesUser(certificate: x509.Certificate, peer: JID) -> bool:
    for address in xmppAddresses(certificate):
        try:
            claimed = JID(address)
        except (InvalidFormat, UnicodeError, ValueError):
            continue
        if claimed.userhost() != peer.userhost():
            continue
        if claimed.resource is None or claimed.resource == peer.resource:
            return True
    return False


def _matchesDomain(certificate: x509.Certificate, domain: str) -> bool:
    if domain.lower() in certificateIdentities(certificate):
        return True
    try:
        verify_certificate_hostname(certificate, domain)
    except (VerificationError, CertificateError, ValueError):
        return False
    return True


def checkPeerCertificate(certificate: x509.Certificate | None, peer: JID) -> None:
    """
    Check that C{certificate} names C{peer}: a DNS-ID (or a domain XmppAddr)
    for a domain JID, an XmppAddr for a user JID.

    @param certificate: the peer's (already chain-verified) certificate, or
        C{None} when it sent none.
    @param peer: the peer's JID.
    @raise CertificateMismatch: no certificate, or no matching name.
    """
    if certificate is None:
        raise CertificateMismatch(peer.full(), "no certificate presented")
    if peer.user is None:
        if _matchesDomain(certificate, peer.host):
            return
        raise CertificateMismatch(
            peer.full(), f"no DNS-ID or XmppAddr for the domain {peer.host}"
        )
    if _matchesUser(certificate, peer):
        return
    raise CertificateMismatch(peer.full(), f"no XmppAddr for {peer.userhost()}")
