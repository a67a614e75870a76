# -*- test-case-name: tests.test_xtls_events -*-
"""
What the XTLS endpoint logs about its tunnels: one line at C{info} when a
tunnel opens, one when it is refused (by this end or by the peer, with the
stanza error condition) and one when it closes (with the bytes each way),
all under the namespace C{xmppcomp.xtls}, with the peer's JID and the
subject and SHA-256 fingerprint of its certificate as fields of their own.
The field C{xtls} says which line an event is: C{opened}, C{refused} or
C{closed} (with C{opened} false for a tunnel that ended during its
handshake for another reason than a refusal: a timeout, a lost stream).

Which endings count as refusals is decided here (L{refusalOf}), as a
value; the handler counts and logs what it returns. Nothing here imports
from C{twisted.internet}.
"""

from __future__ import annotations

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from twisted.words.protocols.jabber import error

from xmppcomp.logs import Logger
from xmppcomp.xtls._exceptions import HandshakeFailed, XTLSStanzaError
from xmppcomp.xtls._tunnel import conditionFor

__all__ = [
    "BY_LOCAL",
    "BY_PEER",
    "Refusal",
    "certificateFields",
    "describeEnd",
    "logClosed",
    "logOpened",
    "logRefused",
    "refusalOf",
]

log = Logger(namespace="xmppcomp.xtls")

#: L{Refusal.by} when this end refused.
BY_LOCAL = "local"
#: L{Refusal.by} when the peer refused.
BY_PEER = "peer"

_OPENED = (
    "XTLS tunnel with {peer} opened ({role}, as {local}): peer certificate {certificate};"
    " {protocol} {cipher}"
)
_REFUSED = {
    BY_LOCAL: (
        "XTLS tunnel with {peer} refused ({role}, as {local}): {condition} ({reason});"
        " peer certificate {certificate}"
    ),
    BY_PEER: (
        "XTLS tunnel with {peer} refused by the peer ({role}, as {local}): {condition}"
        " ({reason}); peer certificate {certificate}"
    ),
}
_CLOSED = (
    "XTLS tunnel with {peer} closed ({role}, as {local}): {reason}; {bytesIn} bytes in,"
    " {bytesOut} bytes out in {seconds:.1f} s; peer certificate {certificate}"
)
_ENDED = (
    "XTLS tunnel with {peer} ended before it opened ({role}, as {local}): {reason};"
    " peer certificate {certificate}"
)


@attrs.frozen
class Refusal:
    """
    Why a tunnel was refused.

    @ivar by: L{BY_LOCAL} (this end answered a start or a data IQ with an
        error) or L{BY_PEER} (the peer answered ours with one).
    @ivar condition: the stanza error condition, as on the wire
        (C{resource-constraint}, C{not-acceptable}, ...).
    @ivar reason: what the condition stands for here, for the log: a
        limit and its value, a certificate's problem, the peer's text.
    """

    by: str
    condition: str
    reason: str


def refusalOf(reason: Exception | None) -> Refusal | None:
    """
    The refusal behind the end of a tunnel that never opened, if it was
    one: a stanza error we answered (an L{XTLSStanzaError}, or a failed
    handshake or refused certificate, answered with L{conditionFor}'s
    C{not-acceptable}) or one the peer answered (a
    L{twisted.words.protocols.jabber.error.StanzaError}). Anything else
    (a timeout, unavailable presence, a lost stream, a replaced or closed
    tunnel) is no refusal: C{None}.
    """
    if isinstance(reason, (XTLSStanzaError, HandshakeFailed)):
        answered = conditionFor(reason)
        text = str(reason) if isinstance(reason, HandshakeFailed) else answered.text
        return Refusal(BY_LOCAL, answered.condition, text or "no explanation")
    if isinstance(reason, error.StanzaError):
        return Refusal(BY_PEER, reason.condition, reason.text or "no explanation given")
    return None


def describeEnd(reason: Exception | None, closedByUs: bool) -> str:
    """
    How a tunnel ended, for the log: who closed it, or the error that did.

    @param reason: what the tunnel machine gave (C{None} for an orderly
        close).
    @param closedByUs: whether this end asked for the close.
    """
    if reason is None:
        return "closed by us" if closedByUs else "closed by the peer"
    if isinstance(reason, error.StanzaError):
        text = f" ({reason.text})" if reason.text else ""
        return f"the peer answered {reason.condition}{text}"
    if isinstance(reason, XTLSStanzaError):
        return f"we answered {reason}"
    return f"{type(reason).__name__}: {reason}"


def certificateFields(certificate: x509.Certificate | None) -> dict[str, str | None]:
    """
    The log fields of a peer's certificate: C{subject} (RFC 4514),
    C{fingerprint} (SHA-256 of the DER form, lowercase hex pairs joined by
    colons) and C{certificate}, both for the text; C{None} and C{"not
    seen"} when there is none.
    """
    if certificate is None:
        return {"subject": None, "fingerprint": None, "certificate": "not seen"}
    subject = certificate.subject.rfc4514_string()
    fingerprint = certificate.fingerprint(hashes.SHA256()).hex(":")
    return {
        "subject": subject,
        "fingerprint": fingerprint,
        "certificate": f"{subject or '(empty subject)'}, SHA-256 {fingerprint}",
    }


def _logTunnel(
    text: str,
    event: str,
    local: str,
    peer: str,
    role: str,
    certificate: x509.Certificate | None,
    **fields: object,
) -> None:
    """
    Log one of a tunnel's lines: C{event} as the field C{xtls}, the ends,
    C{fields} and the peer's certificate (L{certificateFields}).
    """
    log.info(text, xtls=event, local=local, peer=peer, role=role, **fields, **certificateFields(certificate))


def logOpened(
    local: str,
    peer: str,
    role: str,
    certificate: x509.Certificate | None,
    protocol: str | None,
    cipher: str | None,
) -> None:
    """
    Log a tunnel that completed its handshake.

    @param local: our full JID.
    @param peer: the peer's full JID.
    @param role: C{initiator} (we started it and are the TLS client) or
        C{responder}.
    @param certificate: the peer's verified certificate.
    @param protocol: the TLS version.
    @param cipher: the cipher suite.
    """
    _logTunnel(_OPENED, "opened", local, peer, role, certificate, protocol=protocol, cipher=cipher)


def logRefused(
    local: str, peer: str, role: str, refusal: Refusal, certificate: x509.Certificate | None
) -> None:
    """
    Log a tunnel refused before it opened: a start we answered with an
    error, or a tunnel whose handshake either end refused.

    @param certificate: the certificate the peer presented, accepted or
        not, if the handshake got that far.
    """
    _logTunnel(
        _REFUSED[refusal.by],
        "refused",
        local,
        peer,
        role,
        certificate,
        by=refusal.by,
        condition=refusal.condition,
        reason=refusal.reason,
    )


def logClosed(
    local: str,
    peer: str,
    role: str,
    reason: str,
    opened: bool,
    bytesIn: int,
    bytesOut: int,
    seconds: float,
    certificate: x509.Certificate | None,
) -> None:
    """
    Log a tunnel released for anything but a refusal.

    @param reason: how it ended (L{describeEnd}).
    @param opened: whether it had opened (otherwise it ended during the
        handshake: a timeout, unavailable presence, a lost stream, ...).
    @param bytesIn: the application bytes it decrypted.
    @param bytesOut: the application bytes it encrypted.
    @param seconds: from the start sent or received to the release.
    """
    _logTunnel(
        _CLOSED if opened else _ENDED,
        "closed",
        local,
        peer,
        role,
        certificate,
        reason=reason,
        opened=opened,
        bytesIn=bytesIn,
        bytesOut=bytesOut,
        seconds=seconds,
    )
