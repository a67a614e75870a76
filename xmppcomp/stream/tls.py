# -*- test-case-name: tests.test_stream_tls -*-
"""
TLS for component connections, both ends.

The initiating side (the component) builds its connection creator with
L{clientTLSOptions} from a server domain and a trust value
(L{trustSystem}, L{trustCAFile} or L{trustPinned}); the receiving side
builds its options with L{serverTLSOptions}. Both then call
C{transport.startTLS(options)}.

Once the handshake is done, L{channelBindingFor} gives what SCRAM-*-PLUS
binds to, L{tlsVersionOf} the protocol version, and
L{peerCertificateIdentities} the domains a verified client certificate
asserts (for SASL EXTERNAL).

TLS 1.2 is the minimum everywhere. The server's certificate is always
verified, name included (with C{service_identity}); a failed check fails
the handshake, so nothing is sent to the wrong server.
"""

from __future__ import annotations

import os
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Union

import attrs
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ObjectIdentifier
from OpenSSL import SSL
from OpenSSL.crypto import X509, X509StoreFlags
from service_identity import CertificateError, VerificationError
from service_identity.cryptography import verify_certificate_hostname
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IOpenSSLServerConnectionCreator
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    PrivateCertificate,
    TLSVersion,
    optionsForClientTLS,
    platformTrust,
    trustRootFromCertificates,
)
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from xmppcomp.logs import Logger
from xmppcomp.stream.channelbinding import ChannelBindingData

if TYPE_CHECKING:
    # Twisted documents the trust roots it builds with this interface but
    # does not export it; only the annotations use it.
    from twisted.internet._sslverify import IOpenSSLTrustRoot
    from zope.interface.declarations import Provides

__all__ = [
    "CATrust",
    "CertificateFileError",
    "CertificateNameMismatch",
    "CertificateVerificationError",
    "ClientCertificateOptions",
    "InvalidCertificate",
    "PinnedCertificateMismatch",
    "UntrustedCertificate",
    "PinnedTrust",
    "SystemTrust",
    "Trust",
    "certificateIdentities",
    "ServerEndPoints",
    "channelBindingFor",
    "clientTLSOptions",
    "describeTrust",
    "formatFingerprint",
    "loadCertificates",
    "loadPrivateCertificate",
    "peerCertificateIdentities",
    "serverTLSOptions",
    "tlsConnectionOf",
    "tlsServerEndPoint",
    "tlsVersionOf",
    "trustCAFile",
    "trustPinned",
    "trustSystem",
]

_log = Logger()

#: The lowest protocol version either end accepts.
MINIMUM_TLS_VERSION = TLSVersion.TLSv1_2

#: id-on-xmppAddr (RFC 6120 section 13.7.1.4).
ID_ON_XMPPADDR = ObjectIdentifier("1.3.6.1.5.5.7.8.5")

#: RFC 9266 section 2.
_EXPORTER_LABEL = b"EXPORTER-Channel-Binding"


class CertificateFileError(ValueError):
    """
    A certificate, key or CA file cannot be used. The message names the file
    and the problem.

    @ivar path: the file, or C{None} when the PEM data was given directly.
    """

    def __init__(self, path: str | None, problem: str) -> None:
        message = problem if path is None else f"{path}: {problem}"
        super().__init__(message)
        self.path = path


class CertificateVerificationError(Exception):
    """
    A peer's certificate did not pass: the reason a TLS connection of
    L{clientTLSOptions}, or of L{serverTLSOptions} with client CAs, was
    lost. The message says what was presented and what was expected, for
    the log.

    @ivar fingerprint: the SHA-256 digest of the (leaf) certificate
        presented, or C{None} when it is not known.
    """

    def __init__(self, message: str, fingerprint: bytes | None = None) -> None:
        super().__init__(message)
        self.fingerprint = fingerprint


class UntrustedCertificate(CertificateVerificationError):
    """
    The certificate presented does not chain to an authority of the
    configured trust.

    @ivar issuer: the issuer that is not trusted (RFC 4514 form).
    @ivar trust: where trusted authorities were looked for ("the system
        store", a CA file, ...).
    """

    def __init__(self, what: str, trust: str, issuer: str, fingerprint: bytes | None) -> None:
        super().__init__(
            f"{what} is not signed by a CA in {trust}; issuer {issuer}"
            + _fingerprintClause(fingerprint),
            fingerprint,
        )
        self.issuer = issuer
        self.trust = trust


class CertificateNameMismatch(CertificateVerificationError):
    """
    The certificate presented is trusted but for other names.

    @ivar names: the names it is for (DNS-IDs and XmppAddrs, as written).
    @ivar expected: the name it was expected for.
    """

    def __init__(self, what: str, names: Sequence[str], expected: str, issuer: str, fingerprint: bytes) -> None:
        forWhat = "is for " + _andList(names) if names else "names no domain"
        super().__init__(
            f"{what} {forWhat} and was expected for {expected}; issuer {issuer}"
            + _fingerprintClause(fingerprint),
            fingerprint,
        )
        self.names = tuple(names)
        self.expected = expected


class InvalidCertificate(CertificateVerificationError):
    """
    The certificate presented failed another check: expired, not valid
    yet, a bad signature, the wrong purpose, ...

    @ivar reason: what failed.
    """

    def __init__(self, what: str, reason: str, issuer: str, fingerprint: bytes | None) -> None:
        super().__init__(
            f"{what} {reason}; issuer {issuer}" + _fingerprintClause(fingerprint),
            fingerprint,
        )
        self.reason = reason


class PinnedCertificateMismatch(CertificateVerificationError):
    """
    The server presented a certificate other than the pinned one; the
    reason the connection of L{clientTLSOptions} with L{trustPinned} was
    lost.

    @ivar fingerprint: the SHA-256 digest of the certificate presented.
    @ivar pinned: the SHA-256 digest of the pinned certificate, or C{None}.
    """

    def __init__(
        self,
        fingerprint: bytes,
        pinned: bytes | None = None,
        *,
        what: str = "the server's certificate",
        source: str | None = None,
        issuer: str | None = None,
    ) -> None:
        message = f"{what} (SHA-256 fingerprint {formatFingerprint(fingerprint)}"
        if issuer is not None:
            message += f", issuer {issuer}"
        message += ") is not the pinned certificate"
        if pinned is not None or source is not None:
            details = [source] if source is not None else []
            if pinned is not None:
                details.append(f"SHA-256 fingerprint {formatFingerprint(pinned)}")
            message += f" ({', '.join(details)})"
        super().__init__(message, fingerprint)
        self.pinned = pinned


def formatFingerprint(digest: bytes) -> str:
    """
    A certificate digest as people compare them: upper-case hex pairs
    joined by colons (C{openssl x509 -fingerprint -sha256} prints the
    same).
    """
    return digest.hex(":").upper()


def _fingerprintClause(fingerprint: bytes | None) -> str:
    return "" if fingerprint is None else f", SHA-256 fingerprint {formatFingerprint(fingerprint)}"


def _andList(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# Loading certificates and keys.


def _readFile(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise CertificateFileError(
            os.fspath(path), f"cannot read the {what} file: {e.strerror or e}"
        ) from e


def _parseCertificates(data: bytes, path: str | None) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        # Also what cryptography raises for data without any certificate.
        raise CertificateFileError(path, f"no valid PEM certificate ({e})") from e
    return certificates


def _toTwisted(certificate: x509.Certificate) -> Certificate:
    return Certificate(X509.from_cryptography(certificate))


def _publicKeyInfo(publicKey: PublicKeyTypes) -> bytes:
    return publicKey.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def loadCertificates(path: str | os.PathLike[str]) -> list[Certificate]:
    """
    Load every certificate of a PEM file (a CA bundle, or a certificate
    followed by its chain), in file order.

    @raise CertificateFileError: the file cannot be read or holds no valid
        certificate.
    """
    data = _readFile(path, "certificate")
    return [_toTwisted(c) for c in _parseCertificates(data, os.fspath(path))]


def loadPrivateCertificate(
    certPath: str | os.PathLike[str], keyPath: str | os.PathLike[str] | None = None
) -> PrivateCertificate:
    """
    Load a certificate and its private key from PEM files.

    The certificate is the first one in C{certPath}; any following ones are
    its chain, which L{loadCertificates} reads for
    L{serverTLSOptions}'s C{chain}.

    @param certPath: the certificate file.
    @param keyPath: the unencrypted private key file; C{None} when the key is
        in C{certPath} too.
    @raise CertificateFileError: a file is missing or unreadable, holds no
        valid certificate or key, the key is encrypted, or the key does not
        belong to the certificate. The message names the file.
    """
    certFile = os.fspath(certPath)
    certData = _readFile(certFile, "certificate")
    certificate = _parseCertificates(certData, certFile)[0]
    if keyPath is None:
        keyFile, keyData = certFile, certData
    else:
        keyFile = os.fspath(keyPath)
        keyData = _readFile(keyFile, "private key")
    try:
        key = serialization.load_pem_private_key(keyData, password=None)
    except TypeError as e:
        raise CertificateFileError(
            keyFile, "the private key is encrypted; an unencrypted key is needed"
        ) from e
    except (ValueError, UnsupportedAlgorithm) as e:
        raise CertificateFileError(keyFile, f"no valid PEM private key ({e})") from e
    if _publicKeyInfo(key.public_key()) != _publicKeyInfo(certificate.public_key()):
        raise CertificateFileError(
            keyFile, f"the private key does not belong to the certificate in {certFile}"
        )
    keyPEM = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return PrivateCertificate.loadPEM(
        keyPEM + certificate.public_bytes(serialization.Encoding.PEM)
    )


# Trust for the initiating side.


@attrs.frozen
class SystemTrust:
    """
    Trust the certificate authorities of the system (OpenSSL's default
    verify paths, or C{SSL_CERT_FILE}).
    """

    def trustRoot(self) -> IOpenSSLTrustRoot:
        """
        The Twisted trust root for this trust.
        """
        return platformTrust()


def _certificateTuple(
    certificates: Iterable[x509.Certificate],
) -> tuple[x509.Certificate, ...]:
    """
    The converter of L{CATrust.certificates} (a typed C{tuple}, which mypy's
    attrs plugin cannot infer from the generic builtin).
    """
    return tuple(certificates)


@attrs.frozen
class CATrust:
    """
    Trust certificates issued by these authorities.

    @ivar certificates: the trusted authorities.
    @ivar source: where they were read from, for messages; or C{None}.
    """

    certificates: tuple[x509.Certificate, ...] = attrs.field(converter=_certificateTuple)
    source: str | None = None

    def trustRoot(self) -> IOpenSSLTrustRoot:
        """
        The Twisted trust root for this trust.
        """
        return trustRootFromCertificates([_toTwisted(c) for c in self.certificates])


@attrs.frozen
class PinnedTrust:
    """
    Trust exactly one certificate, whatever its issuer: the server must
    present this very certificate (compared by SHA-256 of its DER form) and
    it must still be valid and carry the server domain.

    @ivar certificate: the pinned certificate.
    @ivar source: the file it was read from, for messages; or C{None}.
    """

    certificate: x509.Certificate
    source: str | None = None

    @property
    def fingerprint(self) -> bytes:
        """
        The SHA-256 digest of the pinned certificate's DER encoding.
        """
        return self.certificate.fingerprint(hashes.SHA256())

    def trustRoot(self) -> IOpenSSLTrustRoot:
        """
        The Twisted trust root holding the pinned certificate. On its own it
        is not enough: L{clientTLSOptions} also lets that certificate anchor
        its own chain (C{PARTIAL_CHAIN}) and accepts no other certificate.
        """
        return trustRootFromCertificates([_toTwisted(self.certificate)])


#: The kinds of trust L{clientTLSOptions} accepts.
Trust = Union[SystemTrust, CATrust, PinnedTrust]


def trustSystem() -> SystemTrust:
    """
    Trust the system's certificate authorities.
    """
    return SystemTrust()


def trustCAFile(path: str | os.PathLike[str]) -> CATrust:
    """
    Trust the authorities of a PEM bundle.

    @raise CertificateFileError: the file cannot be read or holds no valid
        certificate.
    """
    source = os.fspath(path)
    data = _readFile(source, "CA")
    return CATrust(_parseCertificates(data, source), source)


def trustPinned(
    certificate: bytes | str | os.PathLike[str] | Certificate,
) -> PinnedTrust:
    """
    Trust exactly one certificate.

    @param certificate: PEM data (C{bytes}), the path of a PEM file (its
        first certificate is pinned, so a file with a certificate followed by
        its chain pins the leaf), or a L{Certificate}.
    @raise CertificateFileError: the file cannot be read, or there is no
        valid certificate.
    """
    if isinstance(certificate, Certificate):
        return PinnedTrust(certificate.original.to_cryptography())
    if isinstance(certificate, bytes):
        return PinnedTrust(_parseCertificates(certificate, None)[0])
    source = os.fspath(certificate)
    return PinnedTrust(_parseCertificates(_readFile(source, "certificate"), source)[0], source)


def describeTrust(trust: Trust) -> str:
    """
    Where a trust value looks for trusted certificates, as log messages
    name it: C{"the system store"}, C{"the CA file PATH"}, C{"the pinned
    certificate PATH"}, ...
    """
    if isinstance(trust, CATrust):
        return "the configured CA certificates" if trust.source is None else f"the CA file {trust.source}"
    if isinstance(trust, PinnedTrust):
        return "the pinned certificate" + ("" if trust.source is None else f" {trust.source}")
    location = [f"{name}={os.environ[name]}" for name in ("SSL_CERT_FILE", "SSL_CERT_DIR") if os.environ.get(name)]
    return "the system store" + (f" ({', '.join(location)})" if location else "")


# Connection creators.


#: OpenSSL's verify errors that mean "no trusted authority signed this".
_UNTRUSTED_ERRORS = frozenset({
    2,  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
    18,  # X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
    19,  # X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
    20,  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21,  # X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
})

#: Other verify errors, in words (the rest are given by number).
_VERIFY_ERRORS = {
    4: "has a signature that cannot be decrypted",
    6: "has an issuer public key that cannot be decoded",
    7: "has a bad signature",
    13: "has a malformed notBefore",
    14: "has a malformed notAfter",
    22: "has too long a chain",
    23: "is revoked",
    24: "is issued by a certificate that is not a CA",
    25: "has too long a path for its issuer's path length constraint",
    26: "is not meant for this purpose (extended key usage)",
    28: "is rejected by its issuer's trust settings",
    32: "has an issuer not allowed to sign certificates (key usage)",
}


def _rfc4514(name: x509.Name) -> str:
    return name.rfc4514_string() or "(empty)"


def _names(certificate: x509.Certificate) -> list[str]:
    """
    The names a certificate is for, as written: its DNS-IDs, then its
    XmppAddrs, sorted within each kind.
    """
    san = _subjectAltNames(certificate)
    dns = sorted(san.get_values_for_type(x509.DNSName)) if san is not None else []
    return dns + sorted(xmppAddresses(certificate) - set(dns))


@attrs.frozen
class _PeerCheck:
    """
    What the verify callback of one side checks, and how its messages name
    things.

    @ivar what: how the peer's certificate is named (C{"the server's
        certificate for example.com"}, C{"the client certificate"}).
    @ivar trust: where trusted authorities were looked for, for messages.
    @ivar hostname: the name the leaf must carry, or C{None} (the receiving
        side: SASL EXTERNAL checks the identity later).
    @ivar pinned: the SHA-256 the leaf must have, or C{None}.
    @ivar pinnedSource: the pinned file, for messages.
    @ivar namesInWhat: whether the leaf's names are added to C{what}.
    """

    what: str
    trust: str
    hostname: str | None = None
    pinned: bytes | None = None
    pinnedSource: str | None = None
    namesInWhat: bool = False

    def problem(
        self, connection: SSL.Connection, certificate: x509.Certificate, errno: int, depth: int, ok: bool
    ) -> CertificateVerificationError | None:
        """
        What is wrong at this step of OpenSSL's verification, or C{None}.
        """
        if ok and depth != 0:
            return None
        leaf = certificate if depth == 0 else self._leaf(connection)
        fingerprint = None if leaf is None else leaf.fingerprint(hashes.SHA256())
        what = self.what
        if self.namesInWhat and leaf is not None and _names(leaf):
            what = f"{what} for {_andList(_names(leaf))}"
        if self.pinned is not None and fingerprint is not None and fingerprint != self.pinned:
            return PinnedCertificateMismatch(
                fingerprint, self.pinned, what=what, source=self.pinnedSource,
                issuer=None if leaf is None else _rfc4514(leaf.issuer),
            )
        issuer = _rfc4514(certificate.issuer)
        if not ok:
            if depth != 0 and leaf is None:
                what = f"{what} (a certificate in its chain: {_rfc4514(certificate.subject)})"
            if errno in _UNTRUSTED_ERRORS:
                if certificate.issuer == certificate.subject:
                    issuer += " (self-signed)"
                return UntrustedCertificate(what, self.trust, issuer, fingerprint)
            reason = self._reason(certificate, errno, depth)
            return InvalidCertificate(what, reason, issuer, fingerprint)
        if self.hostname is not None:
            try:
                verify_certificate_hostname(certificate, self.hostname)
            except (VerificationError, CertificateError):
                assert fingerprint is not None
                return CertificateNameMismatch(self.what, _names(certificate), self.hostname, issuer, fingerprint)
        return None

    @staticmethod
    def _leaf(connection: SSL.Connection) -> x509.Certificate | None:
        """
        The peer's own certificate during verification: the first of the
        chain it sent (known then on the client side only).
        """
        chain = connection.get_peer_cert_chain(as_cryptography=True)
        return chain[0] if chain else None

    @staticmethod
    def _reason(certificate: x509.Certificate, errno: int, depth: int) -> str:
        at = "" if depth == 0 else f" (the certificate at depth {depth}: {_rfc4514(certificate.subject)})"
        if errno == 10:  # X509_V_ERR_CERT_HAS_EXPIRED
            return f"expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC{at}"
        if errno == 9:  # X509_V_ERR_CERT_NOT_YET_VALID
            return f"is not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC{at}"
        words = _VERIFY_ERRORS.get(errno, f"failed OpenSSL's verification (X509_V_ERR {errno})")
        return words + at


def _verifyCallback(
    tlsProtocol: TLSMemoryBIOProtocol, check: _PeerCheck
) -> Callable[[SSL.Connection, X509, int, int, int], bool]:
    """
    A verify callback, for C{Connection.set_verify}, that fails the
    handshake at the first problem L{_PeerCheck.problem} finds, with that
    problem as the reason the connection is lost
    (C{TLSMemoryBIOProtocol.failVerification}).

    It replaces the one Twisted installs, so it repeats its name check.
    """
    protocolRef: TLSMemoryBIOProtocol | None = tlsProtocol

    def verify(
        connection: SSL.Connection, certificate: X509, errno: int, depth: int, ok: int
    ) -> bool:
        nonlocal protocolRef
        try:
            problem = check.problem(connection, certificate.to_cryptography(), errno, depth, bool(ok))
        except BaseException:
            # Raising in an OpenSSL callback loses the exception.
            _log.failure("while verifying a certificate")
            protocolRef = None
            return False
        if problem is None:
            if depth == 0:
                # Break the cycle connection -> callback -> protocol.
                protocolRef = None
            return True
        if protocolRef is not None:
            protocolRef.failVerification(Failure(problem))
            protocolRef = None
        return False

    return verify


@implementer(IOpenSSLClientConnectionCreator)
@attrs.frozen
class _VerifyingConnectionCreator:
    """
    Wrap the creator of L{optionsForClientTLS} so that its connections
    verify the server with L{_verifyCallback}: a failure says what was
    presented and what was expected.

    With a pinned certificate (whose creator's trust root holds only that
    certificate), the pinned certificate also anchors its own chain,
    whatever its issuer, and no other certificate passes, not even one the
    pinned certificate's key signed.

    @ivar _creator: the wrapped creator.
    @ivar _check: what the callback checks.
    """

    _creator: IOpenSSLClientConnectionCreator
    _check: _PeerCheck

    def clientConnectionForTLS(
        self, tlsProtocol: TLSMemoryBIOProtocol
    ) -> SSL.Connection:
        connection = self._creator.clientConnectionForTLS(tlsProtocol)
        if self._check.pinned is not None:
            # The store belongs to the context the creator caches: setting
            # the flag again for each connection is harmless, and it is
            # read when the handshake verifies the chain.
            store = connection.get_context().get_cert_store()
            assert store is not None
            store.set_flags(X509StoreFlags.PARTIAL_CHAIN)
        connection.set_verify(
            SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
            _verifyCallback(tlsProtocol, self._check),
        )
        return connection


@implementer(IOpenSSLServerConnectionCreator)
class ClientCertificateOptions:
    """
    The receiving side's TLS options when it requests client certificates
    (L{serverTLSOptions} with C{clientCAs}): a client certificate that does
    not verify fails the handshake with a
    L{CertificateVerificationError} that says why (untrusted issuer,
    expired, ...), naming the certificate's issuer and fingerprint.

    @ivar options: the L{CertificateOptions} underneath.
    """

    def __init__(self, options: CertificateOptions, clientCAsSource: str | None) -> None:
        self.options = options
        self._check = _PeerCheck(
            "the client certificate",
            "the client CAs" if clientCAsSource is None else clientCAsSource,
            namesInWhat=True,
        )

    def getContext(self) -> SSL.Context:
        """
        The OpenSSL context every connection shares.
        """
        return self.options.getContext()

    def serverConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        context = self.getContext()
        connection = SSL.Connection(context, None)
        connection.set_verify(context.get_verify_mode(), _verifyCallback(tlsProtocol, self._check))
        return connection


def _keyAndCertificate(certificate: PrivateCertificate) -> dict[str, object]:
    """
    The C{privateKey} and C{certificate} arguments of L{CertificateOptions}
    as C{cryptography} objects: Twisted hands them on to pyOpenSSL, which
    deprecates its own types there.
    """
    return {
        "privateKey": certificate.privateKey.original.to_cryptography_key(),
        "certificate": certificate.original.to_cryptography(),
    }


class TLSDeclarations:
    """
    Keeps alive, once per kind of transport, the interface declarations
    Twisted's TLS layer makes for each connection: call L{keep} after
    C{transport.startTLS(...)}. One belongs to each router policy and each
    component (their connections share it); nothing is kept per process.

    C{TLSMemoryBIOProtocol.makeConnection} declares the interfaces of the
    transport it wraps one at a time (C{directlyProvides} per interface,
    each replacing the last). zope.interface caches declarations in a
    weak-valued dictionary, so all but the last die at once and are built
    again, each with its resolution order, on every C{startTLS}: about a
    tenth of a millisecond of CPU per connection on each side (cProfile of
    bench/negotiation_load.py). Holding them keeps zope's cache warm; it
    changes nothing else.

    @ivar _kept: (TLS protocol class, transport class) to the declarations
        kept for it; at most L{MOST} kinds.
    """

    #: Kinds of transport kept at most.
    MOST = 64

    def __init__(self) -> None:
        self._kept: dict[tuple[type, type], list[Provides]] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, transport: object) -> None:
        """
        Keep the declarations for C{transport}'s kind, if not kept yet.
        """
        from zope.interface import providedBy
        from zope.interface.declarations import Provides

        protocol = getattr(transport, "protocol", None)
        if protocol is None:
            return
        key = (type(protocol), type(transport))
        if key in self._kept or len(self._kept) >= self.MOST:
            return
        self._kept[key] = [Provides(type(protocol), interface) for interface in providedBy(transport)]


def clientTLSOptions(
    serverDomain: str,
    trust: Trust,
    clientCertificate: PrivateCertificate | None = None,
) -> IOpenSSLClientConnectionCreator:
    """
    The TLS options of the initiating side, for C{transport.startTLS}.

    The handshake fails unless the server's certificate is trusted and
    carries C{serverDomain} (checked with C{service_identity}); TLS 1.2 is
    the minimum.

    @param serverDomain: the server's domain.
    @param trust: L{trustSystem}, L{trustCAFile} or L{trustPinned}.
    @param clientCertificate: a certificate presented to the server, for
        SASL EXTERNAL; or C{None}.
    @raise TypeError: C{trust} is not one of those.
    """
    if not isinstance(trust, (SystemTrust, CATrust, PinnedTrust)):
        raise TypeError(f"not a trust value: {type(trust).__name__}")
    # A component builds a policy per connection attempt, and a new creator
    # means a new OpenSSL context with the trust store loaded again: ~0.3 ms
    # of each negotiation's CPU (cProfile of bench/negotiation_load.py).
    # Creators are reusable (each connection gets its own SSL.Connection),
    # so the last few are remembered; trust values are immutable, and the
    # client certificate is compared by identity. The system store is read
    # from where OpenSSL's environment says at the time.
    key = (serverDomain, trust, id(clientCertificate), _systemStoreLocation(trust))
    cached = _clientCreators.get(key)
    if cached is not None and cached[0] is clientCertificate:
        _clientCreators.move_to_end(key)
        return cached[1]
    creator = _newClientTLSOptions(serverDomain, trust, clientCertificate)
    _clientCreators[key] = (clientCertificate, creator)
    while len(_clientCreators) > _CLIENT_CREATORS_KEPT:
        _clientCreators.popitem(last=False)
    return creator


def _systemStoreLocation(trust: Trust) -> tuple[str | None, str | None]:
    if not isinstance(trust, SystemTrust):
        return (None, None)
    return (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


#: How many client TLS creators L{clientTLSOptions} remembers.
_CLIENT_CREATORS_KEPT = 16
_clientCreators: OrderedDict[
    tuple[str, Trust, int, tuple[str | None, str | None]],
    tuple[PrivateCertificate | None, IOpenSSLClientConnectionCreator],
] = OrderedDict()


def _newClientTLSOptions(
    serverDomain: str,
    trust: Trust,
    clientCertificate: PrivateCertificate | None,
) -> IOpenSSLClientConnectionCreator:
    extra: dict[str, object] = {"raiseMinimumTo": MINIMUM_TLS_VERSION}
    if clientCertificate is not None:
        # What optionsForClientTLS(clientCertificate=...) does, but with the
        # cryptography objects pyOpenSSL now wants instead of its own.
        extra.update(_keyAndCertificate(clientCertificate))
    creator = optionsForClientTLS(
        serverDomain,
        trustRoot=trust.trustRoot(),
        extraCertificateOptions=extra,
    )
    pinned = trust.fingerprint if isinstance(trust, PinnedTrust) else None
    check = _PeerCheck(
        f"the server's certificate for {serverDomain}",
        describeTrust(trust),
        hostname=serverDomain,
        pinned=pinned,
        pinnedSource=trust.source if isinstance(trust, PinnedTrust) else None,
    )
    return _VerifyingConnectionCreator(creator, check)


def serverTLSOptions(
    certificate: PrivateCertificate,
    clientCAs: Sequence[Certificate] | None = None,
    *,
    chain: Sequence[Certificate] = (),
    clientCAsSource: str | None = None,
) -> CertificateOptions | ClientCertificateOptions:
    """
    The TLS options of the receiving side, for C{transport.startTLS}, with
    TLS 1.2 as the minimum.

    @param certificate: the server's certificate with its private key.
    @param clientCAs: when given, a client certificate is requested (not
        required) and must be issued by one of these authorities, or the
        handshake fails with a L{CertificateVerificationError} saying why;
        L{peerCertificateIdentities} then gives the domains it asserts.
        C{None} requests none.
    @param chain: intermediate certificates sent after C{certificate}.
    @param clientCAsSource: where C{clientCAs} come from, as messages name
        it (C{"tls.client_cas (/etc/xmppcomp/clients-ca.pem)"}).
    @raise ValueError: C{clientCAs} is empty.
    """
    # Any: Twisted annotates privateKey, certificate and extraCertChain as
    # pyOpenSSL types, but hands these cryptography objects on to
    # pyOpenSSL, which accepts (and now prefers) them.
    common: dict[str, Any] = dict(
        _keyAndCertificate(certificate),
        extraCertChain=[c.original.to_cryptography() for c in chain],
        raiseMinimumTo=MINIMUM_TLS_VERSION,
    )
    if clientCAs is None:
        return CertificateOptions(**common)
    if not clientCAs:
        raise ValueError(
            "clientCAs is empty; pass None to request no client certificate"
        )
    return ClientCertificateOptions(
        CertificateOptions(
            verify=True,
            requireCertificate=False,
            caCerts=[c.original for c in clientCAs],
            **common,
        ),
        clientCAsSource,
    )


# The established session.


def tlsConnectionOf(transport: object) -> SSL.Connection | None:
    """
    The pyOpenSSL connection behind a transport, or C{None} without TLS.

    After C{startTLS} on a TCP transport, the transport's C{protocol} is the
    L{TLSMemoryBIOProtocol} that holds the connection; over a TLS endpoint
    (or in memory) the transport is that protocol itself.

    The connection is returned as soon as TLS has started, before the
    handshake is complete.
    """
    if isinstance(transport, TLSMemoryBIOProtocol):
        connection = transport.getHandle()
    else:
        protocol = getattr(transport, "protocol", None)
        if not isinstance(protocol, TLSMemoryBIOProtocol):
            return None
        connection = protocol.getHandle()
    return connection if isinstance(connection, SSL.Connection) else None


def _establishedConnectionOf(transport: object) -> SSL.Connection | None:
    """
    Like L{tlsConnectionOf}, but C{None} until the handshake is complete
    (both Finished messages exchanged).
    """
    connection = tlsConnectionOf(transport)
    if connection is None:
        return None
    if connection.get_finished() is None or connection.get_peer_finished() is None:
        return None
    return connection


def tlsVersionOf(transport: object) -> str | None:
    """
    The negotiated protocol version (C{"TLSv1.2"}, C{"TLSv1.3"}), or C{None}
    when there is no TLS or the handshake is not complete.
    """
    connection = _establishedConnectionOf(transport)
    if connection is None:
        return None
    return connection.get_protocol_version_name()


def tlsServerEndPoint(certificate: x509.Certificate) -> bytes | None:
    """
    The C{tls-server-end-point} channel binding of a server certificate
    (RFC 5929 section 4.1): its DER form hashed with the hash function of
    its signature algorithm, SHA-256 when that is MD5 or SHA-1.

    @return: the hash, or C{None} when the signature algorithm has no single
        hash function (Ed25519, Ed448), for which RFC 5929 defines nothing.
    """
    try:
        algorithm = certificate.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    if algorithm is None:
        return None
    if isinstance(algorithm, (hashes.MD5, hashes.SHA1)):
        algorithm = hashes.SHA256()
    return certificate.fingerprint(algorithm)


def channelBindingFor(
    transport: object, isServer: bool, ownEndPoints: "ServerEndPoints | None" = None
) -> ChannelBindingData | None:
    """
    The channel-binding data of the TLS session on C{transport}, the same
    bytes at both ends.

    @param isServer: whether this end is the TLS server: the
        C{tls-server-end-point} hash is of the server's certificate, our own
        on the server, the peer's on the client.
    @param ownEndPoints: (server end) where the hash of our own
        certificate is remembered per context; L{None}: computed each time.
    @return: the data, or C{None} when there is no TLS or the handshake is
        not complete.
    """
    connection = _establishedConnectionOf(transport)
    if connection is None:
        return None
    if isServer:
        if ownEndPoints is None:
            endPoint = _endPointOf(connection)
        else:
            endPoint = ownEndPoints.of(connection)
    else:
        # Not remembered: 11 µs once per negotiation, beside the client's
        # PBKDF2 (~1 ms).
        peer = connection.get_peer_certificate(as_cryptography=True)
        endPoint = None if peer is None else tlsServerEndPoint(peer)
    return ChannelBindingData(
        tlsVersion=connection.get_protocol_version_name(),
        tlsServerEndPoint=endPoint,
        tlsExporter=connection.export_keying_material(_EXPORTER_LABEL, 32),
    )


def _endPointOf(connection: SSL.Connection) -> bytes | None:
    """
    The C{tls-server-end-point} of the certificate this server end of
    C{connection} presents.
    """
    certificate = connection.get_certificate(as_cryptography=True)
    return None if certificate is None else tlsServerEndPoint(certificate)


class ServerEndPoints:
    """
    The C{tls-server-end-point} of a server's own certificate, remembered
    per L{SSL.Context} (the certificate a context serves does not change,
    and every connection of a listener shares its context): owned by a
    receiving policy, forgotten with the contexts.
    """

    def __init__(self) -> None:
        self._byContext: "weakref.WeakKeyDictionary[SSL.Context, bytes | None]" = (
            weakref.WeakKeyDictionary()
        )

    def of(self, connection: SSL.Connection) -> bytes | None:
        """
        The hash for the server end of C{connection}.
        """
        context = connection.get_context()
        try:
            return self._byContext[context]
        except KeyError:
            pass
        endPoint = _endPointOf(connection)
        if endPoint is not None:
            self._byContext[context] = endPoint
        return endPoint

    def __len__(self) -> int:
        return len(self._byContext)


def _decodeUTF8String(der: bytes) -> str | None:
    """
    Decode a DER UTF8String (tag 12), or C{None} if C{der} is anything else.
    """
    if len(der) < 2 or der[0] != 0x0C:
        return None
    length, offset = der[1], 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or len(der) < offset + count:
            return None
        length = int.from_bytes(der[offset : offset + count], "big")
        # DER wants the shortest form.
        if length < 0x80 or der[offset] == 0:
            return None
        offset += count
    if len(der) != offset + length:
        return None
    try:
        return der[offset:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _isBareDomain(name: str) -> bool:
    """
    Whether C{name} can be a domain: not empty, no wildcard, no local part,
    no resource, no white space or control character.
    """
    return bool(name) and not any(
        c in "@/*" or c.isspace() or ord(c) < 0x20 for c in name
    )


def _subjectAltNames(certificate: x509.Certificate) -> x509.SubjectAlternativeName | None:
    """
    The subjectAltName extension of a certificate, or C{None} if it has
    none or its extensions cannot be parsed.
    """
    try:
        return certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return None


def xmppAddresses(certificate: x509.Certificate) -> frozenset[str]:
    """
    The XmppAddr (id-on-xmppAddr, RFC 6120 section 13.7.1.4)
    subjectAltNames of a certificate, user JIDs included, as written.
    Unparseable extensions or values give nothing.
    """
    san = _subjectAltNames(certificate)
    if san is None:
        return frozenset()
    addresses = (
        _decodeUTF8String(otherName.value)
        for otherName in san.get_values_for_type(x509.OtherName)
        if otherName.type_id == ID_ON_XMPPADDR
    )
    return frozenset(address for address in addresses if address is not None)


def certificateIdentities(certificate: x509.Certificate) -> frozenset[str]:
    """
    The domains a certificate asserts, for SASL EXTERNAL of a component: its
    DNS-ID subjectAltNames except wildcards, and its XmppAddr
    (id-on-xmppAddr) subjectAltNames that are bare domains (no C{@}, no
    C{/}). The subject's common name is not used. Lowercased.

    A certificate whose extensions cannot be parsed asserts nothing.
    """
    san = _subjectAltNames(certificate)
    if san is None:
        return frozenset()
    names = {name.lower() for name in san.get_values_for_type(x509.DNSName) if _isBareDomain(name)}
    names.update(address.lower() for address in xmppAddresses(certificate) if _isBareDomain(address))
    return frozenset(names)


def peerCertificateIdentities(transport: object) -> frozenset[str]:
    """
    The domains the peer's verified certificate asserts (see
    L{certificateIdentities}); on the receiving side, those of the client
    certificate that L{serverTLSOptions} requested and verified.

    @return: the domains, empty when there is no TLS, the handshake is not
        complete, this end does not verify peer certificates, or the peer
        presented none.
    """
    connection = _establishedConnectionOf(transport)
    if connection is None or not connection.get_verify_mode() & SSL.VERIFY_PEER:
        return frozenset()
    certificate = connection.get_peer_certificate(as_cryptography=True)
    if certificate is None:
        return frozenset()
    return certificateIdentities(certificate)
