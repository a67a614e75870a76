# -*- test-case-name: tests.test_stream_sasl -*-
"""
The receiving entity's side of SASL negotiation (RFC 6120 section 6.4):
elements in, elements out, no I/O.

Failures and retries: every C{<failure/>} the receiver answers counts as a
failed attempt, except C{<aborted/>} (the initiator gave up on its own and
no credential was tested). When the count reaches C{maxAttempts}, the
step says C{tooManyFailures} and the caller closes the stream with the
C{policy-violation} stream error (RFC 6120 section 6.4.5).

SCRAM with an authzid: scramp builds the GS2 header, and so the
channel-binding input, without one, so an authzid cannot be carried
through it; a SCRAM exchange with an authzid fails with C{invalid-authzid}
(the identity is the SCRAM user name anyway). PLAIN and EXTERNAL take one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Callable

import attrs
from scramp import ScramException, ScramMechanism
from scramp.core import ClientFirstBare
from scramp.utils import ServerError
from twisted.words.xish import domish

from xmppcomp.errors import SASLFailure
from xmppcomp.interfaces import ICredentialStore
from xmppcomp.ns import NS_SASL, NS_SASL_CB
from xmppcomp.stream.channelbinding import ChannelBindingData
from xmppcomp.jids import normalizeDomain
from xmppcomp.stream.sasl._scrampcompat import installTlsExporter
from xmppcomp.stream.sasl._wire import decodeData, saslElement
from xmppcomp.stream.sasl.mechanisms import (
    ALL_MECHANISMS,
    EXTERNAL,
    PLAIN,
    SCRAM_MECHANISMS,
    isPlus,
)
from xmppcomp.stream.sasl.store import MIN_ITERATIONS, ScramKeys, deriveKeys

installTlsExporter()

#: Per-process key for the fake SCRAM salts of unknown identities: the same
#: name gets the same salt on every attempt, as a real one would.
_FAKE_SALT_KEY = os.urandom(32)

_HASH_OF_SCRAM = {
    "SCRAM-SHA-1": "sha-1",
    "SCRAM-SHA-1-PLUS": "sha-1",
    "SCRAM-SHA-256": "sha-256",
    "SCRAM-SHA-256-PLUS": "sha-256",
}

_DIGEST_SIZE = {"sha-1": 20, "sha-256": 32}

#: How scramp's C{ServerError} values become RFC 6120 conditions.
_SCRAMP_CONDITIONS = {
    ServerError.INVALID_ENCODING: "malformed-request",
    ServerError.EXTENSIONS_NOT_SUPPORTED: "malformed-request",
    ServerError.INVALID_USERNAME_ENCODING: "malformed-request",
    ServerError.OTHER_ERROR: "malformed-request",
    ServerError.INVALID_PROOF: "not-authorized",
    ServerError.UNKNOWN_USER: "not-authorized",
    ServerError.CHANNEL_BINDINGS_DONT_MATCH: "not-authorized",
    ServerError.SERVER_DOES_SUPPORT_CHANNEL_BINDING: "not-authorized",
    ServerError.CHANNEL_BINDING_NOT_SUPPORTED: "not-authorized",
    ServerError.UNSUPPORTED_CHANNEL_BINDING_TYPE: "not-authorized",
    ServerError.NO_RESOURCES: "temporary-auth-failure",
}


def scrampFailure(error: ScramException) -> SASLFailure:
    """
    The SASL failure for a scramp error: a wrong proof, an unknown user or a
    channel-binding problem is C{not-authorized}; a store that could not
    answer (C{no-resources}) is C{temporary-auth-failure}; bad syntax or
    encoding inside the SCRAM messages is C{malformed-request}.
    """
    condition = _SCRAMP_CONDITIONS.get(error.server_error, "malformed-request")
    if condition == "not-authorized" and error.server_error in (
        ServerError.INVALID_PROOF,
        ServerError.UNKNOWN_USER,
    ):
        # Never say which of the two it was.
        return SASLFailure(condition)
    if condition == "temporary-auth-failure":
        return SASLFailure(condition, "the credential store is unavailable")
    return SASLFailure(condition, error.args[0] if error.args else None)


def _fakeSalt(hashName: str, name: str) -> bytes:
    return hmac.new(
        _FAKE_SALT_KEY, f"{hashName}\x00{name}".encode("utf-8"), hashlib.sha256
    ).digest()


def _fakeKeys(hashName: str, name: str) -> ScramKeys:
    """
    Keys for a name that is unknown: a stable salt and random keys no proof
    can match, so an unknown identity fails exactly like a wrong secret.
    """
    size = _DIGEST_SIZE[hashName]
    return ScramKeys(
        salt=_fakeSalt(hashName, name),
        iterations=MIN_ITERATIONS,
        storedKey=os.urandom(size),
        serverKey=os.urandom(size),
    )


@attrs.frozen
class SASLStep:
    """
    What the receiving entity does after one SASL element.

    @ivar reply: the element to send: C{<challenge/>}, C{<success/>} or
        C{<failure/>}.
    @ivar identity: the authenticated domain, only with C{<success/>}.
    @ivar tooManyFailures: the initiator failed too often: after sending
        C{reply}, close the stream with C{policy-violation}.
    """

    reply: domish.Element = attrs.field(eq=False)
    identity: str | None = None
    tooManyFailures: bool = False


@attrs.frozen
class _Challenge:
    data: bytes


@attrs.frozen
class _Success:
    identity: str
    additionalData: bytes | None


_Result = _Challenge | _Success
#: L{ICredentialStore.scramKeys}: a L{ScramKeys} or C{None}, unchecked.
_Lookup = Callable[[str, str], object]


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SASLFailure("malformed-request", f"{what} is not UTF-8") from None


def _unescapeSaslname(value: str) -> str:
    rest = value.replace("=2C", "").replace("=3D", "")
    if "=" in rest:
        raise SASLFailure("malformed-request", "bad '=' escape in the SCRAM authzid")
    return value.replace("=2C", ",").replace("=3D", "=")


class _ScramExchange:
    """
    One SCRAM exchange, computed by scramp; see L{SASLReceiver}.

    @ivar _identity: the domain whose real keys scramp was given, if any.
    """

    def __init__(
        self,
        mechanism: str,
        lookup: _Lookup,
        channelBinding: ChannelBindingData | None,
        plusOffered: bool,
    ) -> None:
        self._mechanism = mechanism
        self._hashName = _HASH_OF_SCRAM[mechanism]
        self._lookup = lookup
        self._channelBinding = channelBinding
        self._plusOffered = plusOffered
        self._server: object = None
        self._identity: str | None = None

    def _authFn(self, username: str) -> tuple[bytes, bytes, bytes, int]:
        """
        scramp's C{auth_fn}. Unknown and invalid names get fake keys; an
        exception from the store becomes scramp's C{no-resources}.
        """
        try:
            domain = normalizeDomain(username)
        except ValueError:
            keys = _fakeKeys(self._hashName, username)
        else:
            found = self._lookup(domain, self._hashName)
            if found is None:
                keys = _fakeKeys(self._hashName, domain)
            else:
                if not isinstance(found, ScramKeys):
                    raise TypeError(f"the store returned {found!r}")
                keys = found
                self._identity = domain
        return (keys.salt, keys.storedKey, keys.serverKey, keys.iterations)

    def _checkAuthzid(self, authzidPart: str, bare: str) -> None:
        if not authzidPart.startswith("a=") or len(authzidPart) < 3:
            raise SASLFailure("malformed-request", "bad authzid in the GS2 header")
        authzid = _unescapeSaslname(authzidPart[2:])
        try:
            authcid = str(ClientFirstBare(bare)["n"])
        except ScramException as e:
            raise scrampFailure(e) from e
        try:
            same = normalizeDomain(authzid) == normalizeDomain(authcid)
        except ValueError as e:
            raise SASLFailure("invalid-authzid", str(e)) from e
        if not same:
            raise SASLFailure("invalid-authzid", "the authzid must equal the user name")
        raise SASLFailure(
            "invalid-authzid",
            "an authzid is not supported with SCRAM; omit it "
            "(the identity is the user name)",
        )

    def start(self, data: bytes) -> _Result:
        if not data:
            raise SASLFailure(
                "malformed-request", f"{self._mechanism} needs the client-first message"
            )
        message = _utf8(data, "the client-first message")
        parts = message.split(",", 2)
        if len(parts) != 3:
            raise SASLFailure("malformed-request", "no GS2 header")
        flag, authzidPart, bare = parts
        if authzidPart:
            self._checkAuthzid(authzidPart, bare)
        binding: tuple[str, bytes] | None = None
        if flag.startswith("p="):
            if not isPlus(self._mechanism):
                raise SASLFailure(
                    "malformed-request",
                    f"channel binding requested with {self._mechanism}; "
                    f"use {self._mechanism}-PLUS",
                )
            cbName = flag[2:]
            cbData = (
                None
                if self._channelBinding is None
                else self._channelBinding.get(cbName)
            )
            if cbData is None:
                raise SASLFailure(
                    "not-authorized",
                    f"channel-binding type {cbName!r} is not available here",
                )
            binding = (cbName, cbData)
        elif flag in ("n", "y"):
            if isPlus(self._mechanism):
                raise SASLFailure(
                    "malformed-request",
                    f"{self._mechanism} requires the GS2 flag 'p=TYPE', not {flag!r}",
                )
            if flag == "y" and self._plusOffered:
                raise SASLFailure(
                    "not-authorized",
                    "the client reports it supports channel binding but saw no "
                    "-PLUS mechanism, which was offered: possible downgrade",
                )
        else:
            raise SASLFailure("malformed-request", f"bad GS2 flag {flag!r}")
        try:
            server = ScramMechanism(self._mechanism).make_server(
                self._authFn, channel_binding=binding
            )
            server.set_client_first(message)
            serverFirst = server.get_server_first()
        except ScramException as e:
            raise scrampFailure(e) from e
        self._server = server
        return _Challenge(serverFirst.encode("utf-8"))

    def step(self, data: bytes) -> _Result:
        server = self._server
        if server is None:
            raise SASLFailure("malformed-request", "unexpected response")
        self._server = None
        message = _utf8(data, "the client-final message")
        try:
            server.set_client_final(message)  # type: ignore[attr-defined]
            serverFinal = server.get_server_final()  # type: ignore[attr-defined]
        except ScramException as e:
            raise scrampFailure(e) from e
        if self._identity is None:
            # Unreachable: fake keys cannot verify. Fail closed all the same.
            raise SASLFailure("not-authorized")
        return _Success(self._identity, serverFinal.encode("utf-8"))


class _PlainExchange:
    """
    PLAIN (RFC 4616), checked against the stored SCRAM keys: the secret is
    salted and iterated with the stored salt and count and the StoredKeys
    compared in constant time.
    """

    def __init__(self, lookup: _Lookup) -> None:
        self._lookup = lookup

    def _keys(self, domain: str) -> tuple[str, ScramKeys | None]:
        try:
            for hashName in ("sha-256", "sha-1"):
                keys = self._lookup(domain, hashName)
                if keys is not None:
                    if not isinstance(keys, ScramKeys):
                        raise TypeError(f"the store returned {keys!r}")
                    return hashName, keys
        except Exception as e:
            raise SASLFailure(
                "temporary-auth-failure", "the credential store is unavailable"
            ) from e
        return "sha-256", None

    def start(self, data: bytes) -> _Result:
        parts = data.split(b"\x00")
        if len(parts) != 3:
            raise SASLFailure(
                "malformed-request", "PLAIN expects authzid NUL authcid NUL passwd"
            )
        authzid, authcid, secret = (_utf8(p, "the PLAIN message") for p in parts)
        if not authcid or not secret:
            raise SASLFailure("malformed-request", "empty PLAIN authcid or password")
        try:
            domain = normalizeDomain(authcid)
        except ValueError as e:
            raise SASLFailure("not-authorized", str(e)) from e
        if authzid:
            try:
                sameIdentity = normalizeDomain(authzid) == domain
            except ValueError as e:
                raise SASLFailure("invalid-authzid", str(e)) from e
            if not sameIdentity:
                raise SASLFailure(
                    "invalid-authzid", "the authzid must equal the authcid"
                )
        hashName, keys = self._keys(domain)
        reference = keys if keys is not None else _fakeKeys(hashName, domain)
        try:
            derived = deriveKeys(
                secret, hashName, salt=reference.salt, iterations=reference.iterations
            )
        except ValueError:
            raise SASLFailure("not-authorized") from None
        if keys is None or not hmac.compare_digest(derived.storedKey, keys.storedKey):
            raise SASLFailure("not-authorized")
        return _Success(domain, None)

    def step(self, data: bytes) -> _Result:
        raise SASLFailure("malformed-request", "PLAIN takes no response")


class _ExternalExchange:
    """
    EXTERNAL (RFC 4422 appendix A) with the domains of the verified client
    certificate.
    """

    def __init__(self, peerIdentities: frozenset[str]) -> None:
        self._peerIdentities = peerIdentities

    def start(self, data: bytes) -> _Result:
        if data:
            text = _utf8(data, "the EXTERNAL authzid")
            try:
                authzid = normalizeDomain(text)
            except ValueError as e:
                raise SASLFailure("invalid-authzid", str(e)) from e
            if authzid not in self._peerIdentities:
                raise SASLFailure(
                    "invalid-authzid",
                    f"the client certificate is for {self._names()} and "
                    f"was expected for {authzid}",
                )
            return _Success(authzid, None)
        if len(self._peerIdentities) == 1:
            return _Success(next(iter(self._peerIdentities)), None)
        raise SASLFailure(
            "not-authorized",
            f"the client certificate is for {self._names()}; send the one "
            "to authenticate as (the authzid)",
        )

    def _names(self) -> str:
        names = sorted(self._peerIdentities)
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]

    def step(self, data: bytes) -> _Result:
        raise SASLFailure("malformed-request", "EXTERNAL takes no response")


_Exchange = _ScramExchange | _PlainExchange | _ExternalExchange


class SASLReceiver:
    """
    The receiving entity's SASL negotiation for one stream.

    Offer L{featureElements} in C{<stream:features/>}, pass every element in
    the SASL namespace to L{receive} and send back each step's reply. After
    a step with an identity, the initiator restarts the stream.

    @ivar _offered: the mechanisms offered on this stream.
    @ivar _exchange: the exchange in progress, or C{None}.
    @ivar _awaitingInitial: the initiator sent C{<auth/>} without an
        initial response and was sent an empty challenge.
    @ivar _failures: the failed attempts so far.
    @ivar _identity: the authenticated domain once SASL succeeded.
    """

    def __init__(
        self,
        store: ICredentialStore,
        *,
        tlsActive: bool,
        channelBinding: ChannelBindingData | None,
        peerIdentities: frozenset[str] = frozenset(),
        mechanisms: list[str] | None = None,
        allowPlain: bool = True,
        requireChannelBinding: bool = False,
        maxAttempts: int = 3,
    ) -> None:
        """
        @param store: where the SCRAM keys are.
        @param tlsActive: whether the stream is encrypted.
        @param channelBinding: the TLS session's binding data, or C{None}.
        @param peerIdentities: the domains of the verified client
            certificate, for EXTERNAL; names that are not domains are left
            out.
        @param mechanisms: the mechanisms to support, default all of
            L{ALL_MECHANISMS}.
        @param allowPlain: whether PLAIN may be used (only ever inside TLS).
        @param requireChannelBinding: refuse SCRAM without channel binding
            and PLAIN (C{mechanism-too-weak}).
        @param maxAttempts: failed attempts (aborts excluded) at which a step
            says C{tooManyFailures}.
        @raise TypeError: C{store} does not provide L{ICredentialStore}.
        @raise ValueError: an unknown mechanism or C{maxAttempts} below 1.
        """
        if not ICredentialStore.providedBy(store):
            raise TypeError(f"{store!r} does not provide ICredentialStore")
        configured = list(ALL_MECHANISMS if mechanisms is None else mechanisms)
        unknown = [m for m in configured if m not in ALL_MECHANISMS]
        if unknown:
            raise ValueError(f"unsupported SASL mechanisms: {unknown}")
        if maxAttempts < 1:
            raise ValueError("maxAttempts must be at least 1")
        self._store = store
        self._tlsActive = tlsActive
        self._channelBinding = channelBinding
        identities = set()
        for name in peerIdentities:
            try:
                identities.add(normalizeDomain(name))
            except ValueError:
                pass
        self._peerIdentities = frozenset(identities)
        self._configured = configured
        self._allowPlain = allowPlain
        self._requireChannelBinding = requireChannelBinding
        self._maxAttempts = maxAttempts
        self._cbTypes = [] if channelBinding is None else channelBinding.available()
        self._offered = [
            m for m in ALL_MECHANISMS if m in configured and self._refusal(m) is None
        ]
        self._exchange: _Exchange | None = None
        self._awaitingInitial = False
        self._failures = 0
        #: The mechanism of the exchange in progress or that succeeded.
        self.mechanism: str | None = None
        self._identity: str | None = None

    def _refusal(self, mechanism: str) -> SASLFailure | None:
        """
        Why C{mechanism} cannot be used on this stream, or C{None}.
        """
        if mechanism not in ALL_MECHANISMS:
            return SASLFailure("invalid-mechanism", f"unknown mechanism {mechanism!r}")
        if mechanism not in self._configured:
            return SASLFailure("invalid-mechanism", f"{mechanism} is not offered")
        if mechanism == PLAIN:
            if not self._tlsActive:
                return SASLFailure("encryption-required", "PLAIN requires TLS")
            if not self._allowPlain or self._requireChannelBinding:
                return SASLFailure("mechanism-too-weak", "PLAIN is not allowed here")
        if mechanism in SCRAM_MECHANISMS and not isPlus(mechanism):
            if self._requireChannelBinding:
                return SASLFailure(
                    "mechanism-too-weak",
                    "channel binding is required: use a -PLUS mechanism",
                )
        if isPlus(mechanism) and not self._cbTypes:
            return SASLFailure(
                "invalid-mechanism", f"{mechanism} needs TLS channel binding"
            )
        if mechanism == EXTERNAL and not self._peerIdentities:
            return SASLFailure(
                "invalid-mechanism",
                "EXTERNAL needs a verified client certificate that names a domain "
                "(a DNS-ID or an XmppAddr); none was presented, or it names none",
            )
        return None

    def offeredMechanisms(self) -> list[str]:
        """
        The mechanisms offered on this stream, preferred first: EXTERNAL
        only with a verified client certificate, C{-PLUS} only with channel
        binding, PLAIN only inside TLS and when allowed.
        """
        return list(self._offered)

    def featuresKey(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """
        What L{featureElements} depends on: equal keys, equal elements.
        """
        return (tuple(self._offered), tuple(self._cbTypes))

    def featureElements(self) -> list[domish.Element]:
        """
        The stream features: C{<mechanisms/>} with C{<required/>}
        (XEP-0192), and XEP-0440 C{<sasl-channel-binding/>} listing the
        channel-binding types when a C{-PLUS} mechanism is offered.
        """
        mechanisms = domish.Element((NS_SASL, "mechanisms"))
        for name in self._offered:
            mechanisms.addElement("mechanism", content=name)
        mechanisms.addElement("required")
        features = [mechanisms]
        if any(isPlus(m) for m in self._offered):
            cb = domish.Element((NS_SASL_CB, "sasl-channel-binding"))
            for cbType in self._cbTypes:
                cb.addElement("channel-binding")["type"] = cbType
            features.append(cb)
        return features

    @property
    def failures(self) -> int:
        """
        The failed attempts so far (aborts not included).
        """
        return self._failures

    def _fail(self, failure: SASLFailure) -> SASLStep:
        self._exchange = None
        self._awaitingInitial = False
        if failure.condition != "aborted":
            self._failures += 1
        return SASLStep(
            reply=failure.toElement(),
            tooManyFailures=self._failures >= self._maxAttempts,
        )

    def _newExchange(self, mechanism: str) -> _Exchange:
        if mechanism == PLAIN:
            return _PlainExchange(self._store.scramKeys)
        if mechanism == EXTERNAL:
            return _ExternalExchange(self._peerIdentities)
        return _ScramExchange(
            mechanism,
            self._store.scramKeys,
            self._channelBinding,
            any(isPlus(m) for m in self._offered),
        )

    def _result(self, result: _Result) -> SASLStep:
        if isinstance(result, _Challenge):
            return SASLStep(reply=saslElement("challenge", result.data))
        self._exchange = None
        self._identity = result.identity
        return SASLStep(
            reply=saslElement("success", result.additionalData),
            identity=result.identity,
        )

    def receive(self, element: domish.Element) -> SASLStep:
        """
        Process one element from the initiating entity.

        C{<auth/>} starts an exchange (restarting one in progress); without
        an initial response it is answered with an empty challenge, and the
        next C{<response/>} carries it (RFC 6120 section 6.4.2); C{=} is an
        empty initial response. C{<response/>} continues the exchange;
        C{<abort/>} ends it with C{aborted}. Anything else, and anything
        after success, is C{malformed-request}.
        """
        if self._identity is not None:
            return self._fail(
                SASLFailure("malformed-request", "SASL negotiation already succeeded")
            )
        if element.uri != NS_SASL:
            return self._fail(SASLFailure("malformed-request", "not a SASL element"))
        try:
            if element.name == "abort":
                raise SASLFailure("aborted")
            if element.name == "auth":
                return self._receiveAuth(element)
            if element.name == "response":
                return self._receiveResponse(element)
            raise SASLFailure("malformed-request", f"unexpected <{element.name}/>")
        except SASLFailure as failure:
            return self._fail(failure)

    def _decode(self, element: domish.Element) -> bytes | None:
        try:
            return decodeData(element)
        except ValueError as e:
            raise SASLFailure("incorrect-encoding", str(e)) from e

    def _receiveAuth(self, element: domish.Element) -> SASLStep:
        self._exchange = None
        self._awaitingInitial = False
        mechanism = element.getAttribute("mechanism")
        if not mechanism:
            raise SASLFailure("invalid-mechanism", "no mechanism named")
        refusal = self._refusal(mechanism)
        if refusal is not None:
            raise refusal
        initial = self._decode(element)
        exchange = self._newExchange(mechanism)
        self.mechanism = mechanism
        if initial is None:
            self._exchange = exchange
            self._awaitingInitial = True
            return SASLStep(reply=saslElement("challenge", b""))
        result = exchange.start(initial)
        self._exchange = exchange
        return self._result(result)

    def _receiveResponse(self, element: domish.Element) -> SASLStep:
        exchange = self._exchange
        if exchange is None:
            raise SASLFailure("malformed-request", "no authentication in progress")
        data = self._decode(element) or b""
        if self._awaitingInitial:
            self._awaitingInitial = False
            return self._result(exchange.start(data))
        return self._result(exchange.step(data))
