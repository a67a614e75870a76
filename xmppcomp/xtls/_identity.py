# -*- test-case-name: tests.test_xtls_identity -*-
"""
Does a certificate belong to a JID?

A domain JID (a service, like a component's hostname) is checked against the
certificate's DNS-IDs (wildcards allowed, with C{service_identity}) and its
XmppAddr subjectAltNames that are domains; a JID with a local part (a user)
is checked against the XmppAddr subjectAltNames (id-on-xmppAddr, RFC 6120
section 13.7.1.4), compared as bare JIDs after stringprep. The subject's
common name is never used.

Pinned fingerprints (L{parseFingerprint}, L{pinKey}, L{pinsFor}): a peer
whose bare JID, or failing that its domain, has pins must present a
certificate whose SHA-256 fingerprint is one of them.

Pure logic: C{cryptography} and C{jid} only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from service_identity import CertificateError, VerificationError
from service_identity.cryptography import verify_certificate_hostname
from twisted.words.protocols.jabber.jid import JID, InvalidFormat

from xmppcomp.stream.tls import certificateIdentities, formatFingerprint, xmppAddresses
from xmppcomp.xtls._exceptions import CertificateMismatch, PinMismatch

__all__ = [
    "certificateHash",
    "checkPeerCertificate",
    "checkPinned",
    "parseFingerprint",
    "pinKey",
    "pinsFor",
    "xmppAddresses",
]

_HEX = re.compile(r"\A[0-9a-f]*\Z")


def parseFingerprint(text: str) -> bytes:
    """
    A SHA-256 fingerprint as people write it: 64 hex digits, in pairs
    joined by colons (as the logs and C{openssl x509 -fingerprint -sha256}
    print it) or not, in either case.

    @return: the 32 bytes of the digest.
    @raise ValueError: not 32 bytes of hex; the message says what is wrong.
    """
    compact = text.strip().lower()
    if ":" in compact:
        pairs = compact.split(":")
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError("with colons, every byte is two hex digits, as in AB:CD:...")
        compact = "".join(pairs)
    if not _HEX.match(compact):
        bad = next(c for c in compact if c not in "0123456789abcdef")
        raise ValueError(f"{bad!r} is not a hex digit")
    if len(compact) != 64:
        raise ValueError(f"a SHA-256 fingerprint has 64 hex digits (32 bytes), not {len(compact)}")
    return bytes.fromhex(compact)


def pinKey(text: str) -> str:
    """
    The key of a pin: the bare JID (or the domain) C{text} names, as
    L{JID.userhost} normalises it (stringprep, lowercase domain), the
    domain's trailing dot removed (RFC 7622 section 3.2), as in the
    addresses of peers.

    @raise ValueError: C{text} is not a JID, or has a resource.
    """
    try:
        address = JID(text.strip())
        if address.host.endswith("."):
            address = JID(tuple=(address.user, address.host[:-1], address.resource))
    except (InvalidFormat, UnicodeError) as e:
        raise ValueError(str(e) or "not a valid JID") from None
    except Exception:  # Twisted's stringprep raises more (IndexError for "a@.")
        raise ValueError("not a valid JID") from None
    if address.resource is not None:
        raise ValueError("a pin is for a bare JID or a domain, without a resource")
    return address.userhost()


def pinsFor(pins: Mapping[str, tuple[bytes, ...]], peer: JID) -> tuple[bytes, ...] | None:
    """
    The fingerprints pinned for C{peer}: those of its bare JID or, failing
    that, of its domain; C{None} when neither is pinned.
    """
    found = pins.get(peer.userhost())
    if found is None:
        found = pins.get(peer.host)
    return found


def checkPinned(certificate: x509.Certificate, peer: JID, pinned: tuple[bytes, ...]) -> None:
    """
    Check that C{certificate} is one of the pinned ones of C{peer}.

    @raise PinMismatch: it is not; the message names the peer, the
        presented fingerprint and the pinned ones.
    """
    presented = certificate.fingerprint(hashes.SHA256())
    if presented not in pinned:
        raise PinMismatch(
            peer.full(),
            f"SHA-256 fingerprint {formatFingerprint(presented)} is not pinned for "
            f"{peer.userhost()} (pinned: {', '.join(formatFingerprint(p) for p in pinned)})",
            presented,
            pinned,
        )


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
