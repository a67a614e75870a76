# -*- test-case-name: tests.test_stream_sasl -*-
"""
The initiating side of the SASL mechanisms a component uses: SCRAM (through
scramp), PLAIN and EXTERNAL, and the choice among those a server offers.

Pure logic: bytes in, bytes out.
"""

from __future__ import annotations

from scramp import ScramClient, ScramException
from zope.interface import implementer

from xmppcomp.errors import NegotiationError
from xmppcomp.interfaces import IInitiatingMechanism
from xmppcomp.stream.channelbinding import (
    TLS_EXPORTER,
    TLS_SERVER_END_POINT,
    ChannelBindingData,
)
from xmppcomp.jids import normalizeDomain
from xmppcomp.stream.sasl._scrampcompat import installTlsExporter

installTlsExporter()

SCRAM_SHA_1 = "SCRAM-SHA-1"
SCRAM_SHA_256 = "SCRAM-SHA-256"
SCRAM_SHA_1_PLUS = "SCRAM-SHA-1-PLUS"
SCRAM_SHA_256_PLUS = "SCRAM-SHA-256-PLUS"
PLAIN = "PLAIN"
EXTERNAL = "EXTERNAL"

#: The SCRAM mechanisms xmppcomp implements, strongest first.
SCRAM_MECHANISMS = (SCRAM_SHA_256_PLUS, SCRAM_SHA_1_PLUS, SCRAM_SHA_256, SCRAM_SHA_1)

#: Every mechanism xmppcomp implements, in order of preference.
ALL_MECHANISMS = (EXTERNAL,) + SCRAM_MECHANISMS + (PLAIN,)


def isPlus(mechanism: str) -> bool:
    """
    Whether C{mechanism} is a channel-binding (C{-PLUS}) SCRAM variant.
    """
    return mechanism.endswith("-PLUS")


def _noAdditionalData(name: str, additionalData: bytes | None) -> None:
    if additionalData:
        raise NegotiationError(
            f"the server sent additional data with success for {name}, "
            f"which has none"
        )


@implementer(IInitiatingMechanism)
class ScramInitiator:
    """
    The client side of SCRAM-SHA-1, SCRAM-SHA-256 and their C{-PLUS} forms
    (RFC 5802, RFC 7677), computed by scramp.

    The GS2 channel-binding flag is C{p=TYPE} for a C{-PLUS} mechanism;
    for the others, C{y} when we could bind but the server offered no
    C{-PLUS} mechanism (so a server that does support binding detects a
    downgrade), and C{n} otherwise.

    The server's signature (C{v=}) is required, with C{<success/>} or, for
    a server that cannot send additional data with success, in a final
    challenge (RFC 6120 section 6.3.10): this authenticates the server.

    @ivar name: the mechanism name.
    @ivar _client: the scramp client.
    @ivar _state: C{"initial"}, C{"first-sent"}, C{"final-sent"},
        C{"verified"} (the signature came in a challenge) or C{"done"}.
    """

    def __init__(
        self,
        name: str,
        identity: str,
        secret: str,
        channelBinding: tuple[str, bytes] | None,
        serverSupportsPlus: bool,
    ) -> None:
        """
        @param name: one of L{SCRAM_MECHANISMS}.
        @param identity: our domain, sent as the SCRAM user name.
        @param secret: the shared secret.
        @param channelBinding: the binding type and data of our TLS session,
            or C{None} when we have none. Required for C{-PLUS}.
        @param serverSupportsPlus: whether the server offered any C{-PLUS}
            mechanism.
        @raise ValueError: an unknown mechanism, an identity that is not a
            domain, a missing binding for C{-PLUS}, or an unusable secret.
        """
        if name not in SCRAM_MECHANISMS:
            raise ValueError(f"not a supported SCRAM mechanism: {name!r}")
        normalizeDomain(identity)
        if isPlus(name):
            if channelBinding is None:
                raise ValueError(f"{name} needs channel-binding data")
            scrampBinding: tuple[str, bytes] | None = channelBinding
        elif channelBinding is not None and not serverSupportsPlus:
            # Flag "y": scramp sends it for a non-PLUS mechanism with a binding.
            scrampBinding = channelBinding
        else:
            scrampBinding = None
        self.name = name
        try:
            self._client = ScramClient(
                [name], identity, secret, channel_binding=scrampBinding
            )
        except ScramException as e:
            raise ValueError(f"cannot use {name}: {e}") from e
        self._state = "initial"

    def getInitialResponse(self) -> bytes:
        """
        The client-first message.
        """
        if self._state != "initial":
            raise NegotiationError("SCRAM exchange already started")
        self._state = "first-sent"
        first: str = self._client.get_client_first()
        return first.encode("utf-8")

    def getResponse(self, challenge: bytes) -> bytes:
        """
        Answer the server-first message with the client-final message, or
        verify a server-final message sent as a challenge.

        @raise NegotiationError: the challenge is not what SCRAM expects, or
            carries a server error or a wrong signature.
        """
        try:
            message = challenge.decode("utf-8")
        except UnicodeDecodeError:
            raise NegotiationError(f"{self.name}: challenge is not UTF-8") from None
        try:
            if self._state == "first-sent":
                self._client.set_server_first(message)
                self._state = "final-sent"
                # One PBKDF2 per negotiation (~1 ms): scramp's public API
                # takes no salted password to reuse across reconnects.
                final: str = self._client.get_client_final()
                return final.encode("utf-8")
            if self._state == "final-sent":
                self._client.set_server_final(message)
                self._state = "verified"
                return b""
        except ScramException as e:
            raise NegotiationError(f"{self.name}: bad challenge: {e}") from e
        raise NegotiationError(f"{self.name}: unexpected challenge")

    def checkSuccess(self, additionalData: bytes | None) -> None:
        """
        Verify the server signature that came with C{<success/>}.

        @raise NegotiationError: no signature (and none came as a challenge)
            or a wrong one: the server did not prove it knows our keys.
        """
        if self._state == "verified" and not additionalData:
            self._state = "done"
            return
        if self._state != "final-sent":
            raise NegotiationError(
                f"{self.name}: the server reported success before the exchange "
                f"was complete"
            )
        if not additionalData:
            raise NegotiationError(
                f"{self.name}: the server sent no signature (v=) with success; "
                f"it did not authenticate itself"
            )
        try:
            self._client.set_server_final(additionalData.decode("utf-8"))
        except (ScramException, UnicodeDecodeError) as e:
            raise NegotiationError(
                f"{self.name}: the server signature is missing or wrong: {e}"
            ) from e
        self._state = "done"


@implementer(IInitiatingMechanism)
class _OneMessageInitiator:
    """
    The client side of a mechanism that sends one message, its initial
    response (or in answer to an empty challenge, for a server that did
    not see it), and expects no additional data with success.

    @ivar _message: the message, set by the subclass.
    """

    name: str
    _message: bytes

    def getInitialResponse(self) -> bytes:
        return self._message

    def getResponse(self, challenge: bytes) -> bytes:
        """
        An empty challenge is answered with the message; anything else is
        an error.
        """
        if challenge == b"":
            return self._message
        raise NegotiationError(f"{self.name}: the server sent an unexpected challenge")

    def checkSuccess(self, additionalData: bytes | None) -> None:
        _noAdditionalData(self.name, additionalData)


@implementer(IInitiatingMechanism)
class PlainInitiator(_OneMessageInitiator):
    """
    The client side of PLAIN (RFC 4616), with an empty authzid. Use it only
    inside TLS. Its message is C{NUL authcid NUL secret}.
    """

    name = PLAIN

    def __init__(self, identity: str, secret: str) -> None:
        """
        @param identity: our domain, the authcid.
        @param secret: the shared secret.
        @raise ValueError: the identity is not a domain or the secret is
            empty or contains NUL.
        """
        normalizeDomain(identity)
        if not secret or "\x00" in secret:
            raise ValueError("a PLAIN secret must be non-empty and contain no NUL")
        self._message = (
            b"\x00" + identity.encode("utf-8") + b"\x00" + secret.encode("utf-8")
        )


@implementer(IInitiatingMechanism)
class ExternalInitiator(_OneMessageInitiator):
    """
    The client side of EXTERNAL (RFC 4422 appendix A): the TLS client
    certificate authenticates us. Its message is the authzid, or empty
    (sent as C{=}).
    """

    name = EXTERNAL

    def __init__(self, authzid: str | None) -> None:
        """
        @param authzid: the domain to act as, or C{None} to let the server
            derive it from the certificate.
        @raise ValueError: the authzid is not a domain.
        """
        if authzid is not None:
            normalizeDomain(authzid)
            self._message = authzid.encode("utf-8")
        else:
            self._message = b""


def _assumedServerCbTypes(channelBinding: ChannelBindingData) -> list[str]:
    types = [TLS_SERVER_END_POINT]
    if channelBinding.tlsVersion == "TLSv1.3":
        types.insert(0, TLS_EXPORTER)
    return types


def chooseMechanism(
    offered: list[str],
    *,
    identity: str | None,
    secret: str | None,
    channelBinding: ChannelBindingData | None,
    serverCbTypes: list[str] | None,
    tlsActive: bool,
    haveClientCertificate: bool,
    allowed: list[str] | None = None,
) -> IInitiatingMechanism:
    """
    Pick the strongest mechanism both ends support: EXTERNAL when we have a
    client certificate, then SCRAM-SHA-256-PLUS, SCRAM-SHA-1-PLUS,
    SCRAM-SHA-256, SCRAM-SHA-1, and PLAIN only inside TLS.

    The channel-binding type is the first of C{channelBinding.available()}
    the server supports. Without a XEP-0440 list from the server, it is
    assumed to support C{tls-server-end-point} and, on TLS 1.3,
    C{tls-exporter}.

    @param offered: the mechanism names the server offered.
    @param identity: our domain (needed for everything but EXTERNAL); it is
        also the authzid sent with EXTERNAL.
    @param secret: the shared secret, or C{None} when we have none.
    @param channelBinding: our TLS session's binding data, or C{None}.
    @param serverCbTypes: the types from the server's
        C{<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'/>}, or C{None}
        if it sent none.
    @param tlsActive: whether the stream is encrypted.
    @param haveClientCertificate: whether we presented a client certificate.
    @param allowed: if given, only these mechanisms may be used.
    @raise NegotiationError: nothing fits; the message names what was
        offered and why each candidate was not usable.
    """
    offeredSet = set(offered)
    allowedSet = set(ALL_MECHANISMS if allowed is None else allowed)
    serverSupportsPlus = any(isPlus(m) for m in offered)

    cbType: str | None = None
    if channelBinding is not None:
        serverTypes = (
            _assumedServerCbTypes(channelBinding)
            if serverCbTypes is None
            else serverCbTypes
        )
        for candidate in channelBinding.available():
            if candidate in serverTypes:
                cbType = candidate
                break
    binding: tuple[str, bytes] | None = None
    if channelBinding is not None and cbType is not None:
        data = channelBinding.get(cbType)
        assert data is not None
        binding = (cbType, data)
    # For flag "y": any binding we have, when the server offered no -PLUS.
    anyBinding: tuple[str, bytes] | None = binding
    if anyBinding is None and channelBinding is not None and not serverSupportsPlus:
        for candidate in channelBinding.available():
            data = channelBinding.get(candidate)
            if data is not None:
                anyBinding = (candidate, data)
                break

    reasons: list[str] = []
    for name in ALL_MECHANISMS:
        if name not in offeredSet:
            continue
        if name not in allowedSet:
            reasons.append(f"{name}: not allowed by configuration")
            continue
        if name == EXTERNAL:
            if not haveClientCertificate:
                reasons.append(f"{name}: no client certificate")
                continue
            return ExternalInitiator(identity)
        if secret is None or identity is None:
            reasons.append(f"{name}: no identity and secret configured")
            continue
        if isPlus(name):
            if binding is None:
                reasons.append(f"{name}: no channel-binding type in common")
                continue
            return ScramInitiator(name, identity, secret, binding, serverSupportsPlus)
        if name in SCRAM_MECHANISMS:
            return ScramInitiator(
                name,
                identity,
                secret,
                None if serverSupportsPlus else anyBinding,
                serverSupportsPlus,
            )
        if name == PLAIN:
            if not tlsActive:
                reasons.append(f"{name}: refused without TLS")
                continue
            return PlainInitiator(identity, secret)
    detail = "; ".join(reasons) if reasons else "none of them is implemented"
    raise NegotiationError(
        f"no usable SASL mechanism: the server offered {list(offered)} ({detail})"
    )
