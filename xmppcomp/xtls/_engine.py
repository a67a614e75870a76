# -*- test-case-name: tests.test_xtls_identity,tests.test_xtls_tunnel -*-
"""
TLS over a memory BIO: bytes in, bytes out, no transport.

Why a bare pyOpenSSL C{Connection} without a socket rather than Twisted's
L{twisted.protocols.tls.TLSMemoryBIOProtocol} over a transport that writes
IQs: the tunnel has to decide where the TLS bytes go (how many per C{<data/>}
IQ, how many IQs may be unacknowledged, which IQ carries C{method}), when
the handshake counts as complete (only once the peer acknowledged our last
flight, see L{xmppcomp.xtls._tunnel}), and which error condition answers
which IQ. With a memory BIO all of that is plain code over bytes that runs
without a reactor, a transport or a protocol, and its tests need no I/O at
all; a fake transport under L{TLSMemoryBIOProtocol} would instead spread
the same decisions over C{write}/C{loseConnection}/C{connectionLost}
callbacks. This module imports nothing from C{twisted.internet}.

Protocol versions and suites: TLS 1.2 and 1.3 only; in TLS 1.2 only
ephemeral (EC)DHE key exchange with AEAD suites (AES-GCM, ChaCha20-Poly1305);
every TLS 1.3 suite is AEAD. The protoXEP makes
C{TLS_RSA_WITH_3DES_EDE_CBC_SHA} and C{TLS_DH_RSA_WITH_AES_256_CBC_SHA}
mandatory to implement: both are obsolete (3DES is vulnerable to Sweet32,
static-DH and RSA key transport have no forward secrecy, CBC with
MAC-then-encrypt has a long history of padding oracles) and current OpenSSL
builds no longer offer them (3DES is off at the default security level and
static DH_RSA suites were removed in OpenSSL 1.1.0), so this endpoint does
not offer them either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NoReturn, Union

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from OpenSSL import SSL
from OpenSSL.crypto import X509
from twisted.words.protocols.jabber.jid import JID

from xmppcomp.xtls._exceptions import CertificateMismatch, HandshakeFailed
from xmppcomp.xtls._identity import checkPeerCertificate, checkPinned

__all__ = ["TLS12_CIPHERS", "TLSEngine", "makeContext"]

#: The TLS 1.2 suites offered: forward secret and AEAD only.
TLS12_CIPHERS = (
    b"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    b"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    b"DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256"
)

_READ_SIZE = 64 * 1024


def _readAll(read: Callable[[int], bytes]) -> bytes:
    """
    What C{read} (the connection's C{recv} or C{bio_read}) gives, chunk
    after chunk, until it has no more (C{WantReadError}) or the peer's
    close_notify (C{ZeroReturnError}: the tunnel's <close/> does the rest).
    """
    chunks = []
    while True:
        try:
            chunks.append(read(_READ_SIZE))
        except (SSL.WantReadError, SSL.ZeroReturnError):
            return b"".join(chunks)

_VERIFY_MODE = SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT

#: The private keys pyOpenSSL can use (C{SSL.Context.use_privatekey}).
PrivateKey = Union[
    dsa.DSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
    rsa.RSAPrivateKey,
]


def makeContext(
    certificate: x509.Certificate,
    privateKey: PrivateKey,
    trust: Sequence[x509.Certificate],
    isClient: bool,
    requireTrust: bool = True,
) -> SSL.Context:
    """
    A context for one end of XTLS tunnels: our certificate, the authorities
    we trust for the peer's, TLS 1.2 minimum, AEAD suites only, peer
    certificate required at both ends.

    @param isClient: for the initiator (TLS client); otherwise the
        responder, which requests a client certificate from the authorities
        in C{trust}.
    @param requireTrust: C{False} when pinned fingerprints vouch for some
        peers (L{TLSEngine}'s C{pins}), so that C{trust} may be empty.
    @raise ValueError: C{trust} is empty (and required): a peer certificate
        could never be verified.
    """
    if not trust and requireTrust:
        raise ValueError("no trusted certificate authority for XTLS peers")
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(
        SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION | SSL.OP_CIPHER_SERVER_PREFERENCE
    )
    context.set_cipher_list(TLS12_CIPHERS)
    context.use_certificate(certificate)
    context.use_privatekey(privateKey)
    context.check_privatekey()
    store = context.get_cert_store()
    assert store is not None
    authorities = [X509.from_cryptography(authority) for authority in trust]
    for authority in authorities:
        store.add_cert(authority)
    if not isClient:
        for authority in authorities:
            context.add_client_ca(authority)
        context.set_session_id(b"xmppcomp-xtls")
    # Replaced per connection by TLSEngine, which checks the peer's JID.
    context.set_verify(_VERIFY_MODE, lambda *args: bool(args[-1]))
    return context


class TLSEngine:
    """
    One end of a TLS session over memory BIOs.

    Feed what the peer sent to L{receive}, which gives back the decrypted
    application data; give application data to L{write}; send what
    L{outgoing} returns to the peer.

    @ivar peer: the JID the peer's certificate must name.
    @ivar isClient: whether this end is the TLS client.
    @ivar pins: the SHA-256 digests one of which the peer's certificate
        must have, or C{None}: the peer is not pinned, and its chain must
        verify to an authority of the context. A pinned certificate needs no
        authority (its chain, validity dates included, is not checked: the
        pin is the trust anchor, as DANE-EE); it must still name the peer.
    @ivar authorities: whether the context trusts any authority (for the
        message refusing an unpinned peer when it trusts none).
    @ivar handshakeComplete: whether the handshake is done at this end.
    @ivar _connection: the pyOpenSSL connection, without a socket.
    @ivar _verifyError: why the certificate check refused the peer, kept
        for the error the failed handshake raises.
    @ivar _presented: the peer's own certificate (the leaf of its chain)
        as the certificate check saw it, accepted or not.
    """

    def __init__(
        self,
        context: SSL.Context,
        isClient: bool,
        peer: JID,
        pins: tuple[bytes, ...] | None = None,
        authorities: bool = True,
    ) -> None:
        self.peer = peer
        self.isClient = isClient
        self.pins = pins
        self.authorities = authorities
        self.handshakeComplete = False
        self._verifyError: CertificateMismatch | None = None
        self._presented: x509.Certificate | None = None
        connection = SSL.Connection(context, None)
        connection.set_verify(_VERIFY_MODE, self._verify)
        if isClient:
            connection.set_tlsext_host_name(peer.host.encode("idna"))
            connection.set_connect_state()
        else:
            connection.set_accept_state()
        self._connection = connection

    def _verify(
        self, connection: SSL.Connection, certificate: X509, errno: int, depth: int, ok: int
    ) -> bool:
        """
        OpenSSL's verify callback: the chain must verify (or, for a pinned
        peer, the leaf must be pinned), and the leaf must name the peer.
        """
        self._notePresented(connection, certificate, depth)
        if self.pins is not None:
            return self._verifyPinned(certificate, depth, self.pins)
        if not ok:
            if self._verifyError is None:
                reason = X509_VERIFY_REASONS.get(errno, f"verify error {errno}")
                if not self.authorities:
                    reason = (
                        f"no pinned fingerprint for {self.peer.userhost()} and no trusted "
                        "authority for peers without one"
                    )
                self._verifyError = CertificateMismatch(self.peer.full(), reason)
            return False
        if depth != 0:
            return True
        try:
            checkPeerCertificate(certificate.to_cryptography(), self.peer)
        except CertificateMismatch as e:
            self._verifyError = e
            return False
        return True

    def _verifyPinned(self, certificate: X509, depth: int, pins: tuple[bytes, ...]) -> bool:
        """
        The verify callback for a pinned peer: OpenSSL's verdict on the
        chain is ignored (OpenSSL calls again for the leaf, at depth 0,
        after any error above it that this accepted), the leaf must be
        pinned and name the peer. L{_advance} checks both again once the
        handshake is done.
        """
        if depth != 0:
            return True
        leaf = certificate.to_cryptography()
        try:
            checkPinned(leaf, self.peer, pins)
            checkPeerCertificate(leaf, self.peer)
        except CertificateMismatch as e:
            self._verifyError = e
            return False
        return True

    def _notePresented(self, connection: SSL.Connection, certificate: X509, depth: int) -> None:
        """
        Keep the peer's own certificate for L{presentedCertificate}: the
        one checked at depth 0 or, when the check stops higher up the
        chain, the first of the chain the peer sent (which OpenSSL shows
        the client only).
        """
        if depth == 0:
            self._presented = certificate.to_cryptography()
        elif self._presented is None:
            chain = connection.get_peer_cert_chain(as_cryptography=True)
            if chain:
                self._presented = chain[0]

    def _raise(self, error: SSL.Error) -> NoReturn:
        if self._verifyError is not None:
            raise self._verifyError from error
        raise HandshakeFailed(f"TLS failed: {error}") from error

    def start(self) -> None:
        """
        Start the handshake; at the client, this puts the ClientHello in
        L{outgoing}.
        """
        self._advance()

    def _advance(self) -> None:
        if self.handshakeComplete:
            return
        try:
            self._connection.do_handshake()
        except SSL.WantReadError:
            return
        except SSL.Error as e:
            self._raise(e)
        if self.pins is not None:
            # Fail closed whatever path the handshake took.
            leaf = self._connection.get_peer_certificate(as_cryptography=True)
            if leaf is None:
                raise CertificateMismatch(self.peer.full(), "no certificate presented")
            checkPinned(leaf, self.peer, self.pins)
            checkPeerCertificate(leaf, self.peer)
        self.handshakeComplete = True

    def receive(self, data: bytes) -> bytes:
        """
        Process bytes from the peer.

        @return: the application data they completed, possibly empty.
        @raise CertificateMismatch: the peer's certificate was refused.
        @raise HandshakeFailed: any other TLS failure, an alert from the
            peer included.
        """
        if data:
            # An empty <data/> is valid base64 of nothing; pyOpenSSL's
            # bio_write refuses an empty write (WantReadError).
            self._connection.bio_write(data)
        self._advance()
        if not self.handshakeComplete:
            return b""
        try:
            return _readAll(self._connection.recv)
        except SSL.Error as e:
            self._raise(e)

    def write(self, data: bytes) -> None:
        """
        Encrypt application data into L{outgoing}.

        @raise HandshakeFailed: the session is not usable.
        """
        view = memoryview(data)
        while view:
            try:
                sent = self._connection.send(view[:16384])
            except SSL.Error as e:
                self._raise(e)
            view = view[sent:]

    def outgoing(self) -> bytes:
        """
        Take the bytes waiting to be sent to the peer.
        """
        return _readAll(self._connection.bio_read)

    def peerCertificate(self) -> x509.Certificate | None:
        """
        The peer's certificate, once the handshake has seen it.
        """
        return self._connection.get_peer_certificate(as_cryptography=True)

    def presentedCertificate(self) -> x509.Certificate | None:
        """
        The certificate the peer presented for itself, verified or refused:
        L{peerCertificate} once the handshake accepted it; after a refusal,
        the certificate refused, which a server does not see when the check
        stopped at an authority above it (an untrusted chain).
        """
        return self.peerCertificate() or self._presented

    def protocolVersion(self) -> str:
        """
        The negotiated version, such as C{TLSv1.3}.
        """
        return self._connection.get_protocol_version_name()

    def cipherName(self) -> str | None:
        """
        The negotiated cipher suite.
        """
        return self._connection.get_cipher_name()


#: Readable reasons for the X.509 verification errors one meets most.
X509_VERIFY_REASONS = {
    2: "unable to get issuer certificate",
    10: "certificate has expired",
    9: "certificate is not yet valid",
    18: "self-signed certificate",
    19: "self-signed certificate in the chain",
    20: "unable to get local issuer certificate (untrusted authority)",
    21: "unable to verify the first certificate",
    26: "unsuitable certificate purpose",
}
