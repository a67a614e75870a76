# -*- test-case-name: tests.test_xtls_handler,tests.test_xtls_e2e -*-
"""
The Twisted side of XTLS: L{XTLSHandler}, a wokkel subprotocol handler that
answers the IQs of C{urn:xmpp:tmp:xtls}, sends its own, tracks their
answers with timeouts, and drives one L{xmppcomp.xtls._tunnel} machine per
tunnel; L{Tunnel}, the application's handle on one tunnel; and
L{XTLSConfiguration}.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Optional, TypeVar, cast

import attrs
from cryptography import x509
from OpenSSL import SSL
from prometheus_client import Counter, Gauge
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.ssl import Certificate, PrivateCertificate
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import error
from twisted.words.protocols.jabber.jid import JID, InvalidFormat
from twisted.words.protocols.jabber.xmlstream import TimeoutError
from twisted.words.xish import domish
import xmppcomp._wokkelcompat  # noqa: F401  (before any wokkel module)
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler
from zope.interface import implementer

from xmppcomp.interfaces import IStanzaFilters
from xmppcomp.iqtracker import RequestTracker
from xmppcomp.jids import JIDCache
from xmppcomp.logs import Logger
from xmppcomp.metrics import Metrics, NoCount
from xmppcomp.ns import NS_XTLS
from xmppcomp.xtls._engine import TLSEngine, makeContext
from xmppcomp.xtls._events import (
    BY_LOCAL,
    Refusal,
    describeEnd,
    logClosed,
    logOpened,
    logRefused,
    refusalOf,
)
from xmppcomp.xtls._exceptions import (
    PeerUnavailable,
    TunnelBusy,
    TunnelClosed,
    TunnelReplaced,
    XTLSError,
    XTLSStanzaError,
)
from xmppcomp.xtls._identity import certificateHash, parseFingerprint, pinKey, pinsFor
from xmppcomp.xtls._interfaces import ITunnelObserver
from xmppcomp.xtls._tunnel import Tunnel as _TunnelMachine
from xmppcomp.xtls._tunnel import TunnelCore, TunnelInputs
from xmppcomp.xtls._wire import (
    Close,
    Closed,
    Data,
    Offer,
    Proceed,
    Start,
    hasPriority,
    parseRequest,
)

__all__ = ["Tunnel", "XTLSConfiguration", "XTLSHandler"]

_log = Logger()

_XTLS_SET = f"/iq[@type='set']/*[@xmlns='{NS_XTLS}']"

#: The start of the private ids the handler gives IQ requests that came
#: through a tunnel (L{XTLSHandler._deliver}).
_PRIVATE_ID = "xtls-private-"


@attrs.frozen
class _Waiting:
    """
    An IQ request that came through a tunnel and waits for its reply, by
    the private id it was dispatched with.

    @ivar tunnel: the tunnel it came through, where its reply goes.
    @ivar id: the id the peer gave it (C{None}: none), which its reply
        gets back.
    @ivar local: its C{to}, normalised (L{XTLSHandler._address}): its
        reply's C{from}.
    @ivar peer: its C{from}, normalised: its reply's C{to}.
    """

    tunnel: Tunnel
    id: str | None
    local: str
    peer: str


class _MeteredEngine(TLSEngine):
    """
    A L{TLSEngine} that counts the application bytes it decrypts
    (C{direction="in"}) and encrypts (C{"out"}) in
    C{xmppcomp_xtls_bytes_total}, and keeps the counts of its own tunnel;
    the TLS records themselves (handshake, framing) are not counted. Here
    rather than in L{xmppcomp.xtls._engine}, which stays free of metrics.

    @ivar received: the application bytes decrypted by this engine.
    @ivar sent: the application bytes encrypted by this engine.
    """

    def __init__(
        self,
        context: SSL.Context,
        isClient: bool,
        peer: JID,
        bytesIn: Counter | NoCount,
        bytesOut: Counter | NoCount,
        pins: tuple[bytes, ...] | None = None,
        authorities: bool = True,
    ) -> None:
        """
        @param bytesIn: counts the bytes decrypted (a bound child of
            L{Metrics.xtlsBytes}, or L{NoCount}).
        @param bytesOut: counts the bytes encrypted.
        """
        super().__init__(context, isClient, peer, pins, authorities)
        self._bytesIn = bytesIn
        self._bytesOut = bytesOut
        self.received = 0
        self.sent = 0

    def receive(self, data: bytes) -> bytes:
        plaintext = super().receive(data)
        if plaintext:
            self._bytesIn.inc(len(plaintext))
            self.received += len(plaintext)
        return plaintext

    def write(self, data: bytes) -> None:
        super().write(data)
        self._bytesOut.inc(len(data))
        self.sent += len(data)


_Number = TypeVar("_Number", int, float)
_T = TypeVar("_T")


def _failWaiters(waiters: list[Deferred[_T]], failure: BaseException) -> None:
    """Fail every Deferred of C{waiters} with C{failure}, emptying it first (in place)."""
    pending, waiters[:] = list(waiters), []
    for d in pending:
        d.errback(Failure(failure))


class _Refused(XTLSStanzaError):
    """
    This end refuses a tunnel: the stanza error the peer gets (or L{open}
    fails with), and a more precise reason for the log, which the peer
    does not see (the limit and its value, why XTLS is off).

    @ivar detail: the reason for the log.
    """

    def __init__(self, condition: str, text: str | None, detail: str) -> None:
        super().__init__(condition, text)
        self.detail = detail


def _positive(instance: object, attribute: attrs.Attribute[_Number], value: _Number) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, not {value!r}")


def _certificateTuple(trust: Iterable[Certificate]) -> tuple[Certificate, ...]:
    """
    The converter of L{XTLSConfiguration.trust} (a typed C{tuple}, which
    mypy's attrs plugin cannot infer from the generic builtin).
    """
    return tuple(trust)


def _pinTable(pins: Mapping[str, Iterable[bytes | str]]) -> dict[str, tuple[bytes, ...]]:
    """
    The converter of L{XTLSConfiguration.pins}: keys normalised as bare
    JIDs (L{pinKey}), fingerprints as SHA-256 digests (bytes, or text that
    L{parseFingerprint} reads).

    @raise ValueError: a key is not a bare JID, a fingerprint is not
        SHA-256, or a key has no fingerprint.
    """
    table: dict[str, tuple[bytes, ...]] = {}
    for key, fingerprints in pins.items():
        if isinstance(fingerprints, (str, bytes)):
            fingerprints = [fingerprints]
        digests = tuple(
            parseFingerprint(f) if isinstance(f, str) else bytes(f) for f in fingerprints
        )
        if not digests or any(len(d) != 32 for d in digests):
            raise ValueError(f"the pins of {key!r} must be SHA-256 digests (32 bytes), at least one")
        name = pinKey(key)
        table[name] = table.get(name, ()) + digests
    return table


@attrs.frozen
class XTLSConfiguration:
    """
    How an L{XTLSHandler} behaves.

    @ivar certificate: our certificate and key; without one XTLS is off.
    @ivar trust: the authorities that issue the certificates of peers.
    @ivar pins: bare JIDs (or domains) to the SHA-256 digests of the
        certificates they may present. A peer whose bare JID, or failing
        that its domain, is pinned must present one of them, whatever
        C{trust} says (pins alone vouch for it: its chain is not checked);
        others are checked against C{trust}, and refused when it is empty.
        Either way the certificate must name the peer.
    @ivar acceptPolicy: C{acceptPolicy(local, peer)} says whether to accept
        a start from C{peer}; C{None} accepts everybody (whose certificate
        then has to verify).
    @ivar enabled: C{False} answers every start with C{service-unavailable}.
    @ivar maxTunnels: the most tunnels at once.
    @ivar maxTunnelsPerPeer: the most tunnels with one peer (bare JID).
    @ivar window: the most unacknowledged data IQs per tunnel.
    @ivar chunkSize: the most TLS bytes in one data IQ (before base64).
    @ivar ackTimeout: seconds to wait for the answer to one of our IQs
        before the tunnel is closed as L{PeerUnavailable}.
    @ivar maxStanzaSize: the limit, in bytes, on a stanza inside a tunnel.
    @ivar maxQueuedBytes: the most bytes one tunnel queues for sending
        beyond its window; L{Tunnel.send} raises L{TunnelBusy} above it.
    @ivar maxPendingRequests: the most IQ requests (C{get}, C{set}) that
        came through one tunnel and wait for their reply, whose reply will
        go back through the tunnel (with a parent that offers
        L{IStanzaFilters<xmppcomp.interfaces.IStanzaFilters>}); a request
        beyond it is answered C{resource-constraint} through the tunnel
        and not handed to the handlers.
    """

    certificate: Optional[PrivateCertificate] = None
    trust: tuple[Certificate, ...] = attrs.field(converter=_certificateTuple, default=())
    pins: Mapping[str, tuple[bytes, ...]] = attrs.field(converter=_pinTable, factory=dict)
    acceptPolicy: Optional[Callable[[JID, JID], bool]] = None
    enabled: bool = True
    maxTunnels: int = attrs.field(default=64, validator=_positive)
    maxTunnelsPerPeer: int = attrs.field(default=4, validator=_positive)
    window: int = attrs.field(default=8, validator=_positive)
    chunkSize: int = attrs.field(default=32 * 1024, validator=_positive)
    ackTimeout: float = attrs.field(default=30.0, validator=_positive)
    maxStanzaSize: int = attrs.field(default=256 * 1024, validator=_positive)
    maxQueuedBytes: int = attrs.field(default=4 * 1024 * 1024, validator=_positive)
    maxPendingRequests: int = attrs.field(default=32, validator=_positive)

    @property
    def active(self) -> bool:
        """
        Whether starts can be accepted: enabled, with a certificate, and
        authorities or pins to check the peers' certificates.
        """
        return self.enabled and self.certificate is not None and bool(self.trust or self.pins)


class Tunnel:
    """
    One XTLS tunnel, seen from this end.

    @ivar local: our full JID.
    @ivar peer: the peer's full JID.
    @ivar initiator: whether we started it (and are the TLS client).
    @ivar peerOffer: the XEP-0250 offer the peer sent, if any.
    @ivar isOpen: whether stanzas can be sent.
    @ivar _engine: the TLS engine, once the handshake started.
    @ivar _createdAt: when the start was sent or received (the handler's
        clock), for the duration in the log line of its end.
    @ivar _closeRequested: whether this end asked for the close (to tell,
        in the log, who closed an orderly closed tunnel).
    """

    def __init__(self, handler: XTLSHandler, local: JID, peer: JID, initiator: bool) -> None:
        self.local = local
        self.peer = peer
        self.initiator = initiator
        self.peerOffer: Offer | None = None
        self.isOpen = False
        self._handler = handler
        self._detached = False
        self._released = False
        self._reason: Exception | None = None
        self._openWaiters: list[Deferred[Tunnel]] = []
        self._closeWaiters: list[Deferred[None]] = []
        self._drainWaiters: list[Deferred[None]] = []
        self._engine: _MeteredEngine | None = None
        self._createdAt = handler._clock.seconds()
        self._closeRequested = False
        #: The private ids of the requests that came through this tunnel
        #: and wait for their reply (L{XTLSHandler._pending}).
        self._pending: set[str] = set()
        #: Replies to such requests given before the tunnel opened at this
        #: end (the peer sent them with its last handshake flight).
        self._held: list[domish.Element] = []
        self._core = TunnelCore(
            io=_IQLink(handler, self),
            local=local,
            peer=peer,
            makeEngine=self._newEngine,
            window=handler.configuration.window,
            chunkSize=handler.configuration.chunkSize,
            maxStanzaSize=handler.configuration.maxStanzaSize,
        )
        self._machine: TunnelInputs = _TunnelMachine(self._core)

    def __repr__(self) -> str:
        role = "initiator" if self.initiator else "responder"
        return f"<Tunnel {self.local.full()} -> {self.peer.full()} ({role})>"

    @property
    def role(self) -> str:
        """
        C{initiator} (we started the tunnel and are the TLS client) or
        C{responder}.
        """
        return "initiator" if self.initiator else "responder"

    @property
    def bytesReceived(self) -> int:
        """
        The application bytes received through the tunnel (decrypted; the
        TLS records around them are not counted).
        """
        return 0 if self._engine is None else self._engine.received

    @property
    def bytesSent(self) -> int:
        """
        The application bytes sent through the tunnel: the serialised
        stanzas, before encryption.
        """
        return 0 if self._engine is None else self._engine.sent

    @property
    def key(self) -> tuple[str, str]:
        """
        What identifies the tunnel: (our full JID, the peer's full JID).
        """
        return (self.local.full(), self.peer.full())

    def peerCertificate(self) -> x509.Certificate | None:
        """
        The peer's verified certificate, once the handshake saw it.
        """
        engine = self._core.engine
        return None if engine is None else engine.peerCertificate()

    def protocolVersion(self) -> str | None:
        """
        The negotiated TLS version, such as C{TLSv1.3}.
        """
        engine = self._core.engine
        return None if engine is None else engine.protocolVersion()

    def cipherName(self) -> str | None:
        """
        The negotiated cipher suite.
        """
        engine = self._core.engine
        return None if engine is None else engine.cipherName()

    def send(self, stanza: domish.Element) -> None:
        """
        Encrypt a stanza and send it over as many data IQs as it takes. Its
        C{to} and C{from} may be left out: the receiver fills them in.

        The reply to a request that came through this tunnel may be sent
        here directly (built from the request, it carries the request's
        private id, which is replaced by the peer's id here, and the
        request no longer waits), or the usual way, on the stream: the
        handler's send filter then brings it here (see L{XTLSHandler}).

        @raise TunnelClosed: the tunnel is not open.
        @raise TunnelBusy: more than C{maxQueuedBytes} would be queued.
        """
        if not self.isOpen:
            raise TunnelClosed(f"{self!r} is not open")
        if self._core.queuedBytes > self._handler.configuration.maxQueuedBytes:
            raise TunnelBusy(f"{self._core.queuedBytes} bytes already queued")
        if self._pending:
            self._handler._repliedDirectly(self, stanza)
        self._machine.send(stanza)

    def whenDrained(self) -> Deferred[None]:
        """
        A L{Deferred} that fires once all that was sent is acknowledged
        (at once if it is), or fails if the tunnel closes first.
        """
        if self._released:
            return fail(self._reason or TunnelClosed("closed"))
        if self._core.idle:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._drainWaiters.append(d)
        return d

    @property
    def reason(self) -> Exception | None:
        """
        Why the tunnel ended, if it ended on an error (a refusal, a lost
        stream, a timeout); C{None} while it is open or after a clean close.
        """
        return self._reason

    def whenClosed(self) -> Deferred[None]:
        """
        A L{Deferred} that fires with C{None} when the tunnel is closed,
        however that happens.
        """
        if self._released:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._closeWaiters.append(d)
        return d

    def close(self) -> Deferred[None]:
        """
        Close the tunnel: send C{<close/>} and release it once the peer
        answered (or failed to).

        @return: fires when the tunnel is released.
        """
        d = self.whenClosed()
        self._closeRequested = True
        self._machine.close()
        return d

    def _newEngine(self, isClient: bool) -> TLSEngine:
        self._engine = self._handler._newEngine(isClient, self.peer)
        return self._engine

    def _presentedCertificate(self) -> x509.Certificate | None:
        """
        The certificate the peer presented, verified or refused.
        """
        return None if self._engine is None else self._engine.presentedCertificate()

    # Called by _IQLink.

    def _opened(self) -> None:
        self.isOpen = True
        held, self._held = self._held, []
        for reply in held:
            self._handler._sendInTunnel(self, reply)
        self._handler._tunnelsOpen.inc()
        self._handler._tunnelsOpened.inc()
        logOpened(
            self.local.full(),
            self.peer.full(),
            self.role,
            self.peerCertificate(),
            self.protocolVersion(),
            self.cipherName(),
        )
        # Observers first: code awaiting open() then sees their state.
        self._handler._notify("tunnelOpened", self)
        waiters, self._openWaiters = self._openWaiters, []
        for d in waiters:
            d.callback(self)

    def _drained(self) -> None:
        waiters, self._drainWaiters = self._drainWaiters, []
        for d in waiters:
            d.callback(None)

    def _closed(self, reason: Exception | None) -> None:
        wasOpen = self.isOpen
        if wasOpen:
            self._handler._tunnelsOpen.dec()
        self.isOpen = False
        self._released = True
        self._reason = reason
        self._handler._forget(self)
        self._handler._tunnelGone(self)
        if self._held:
            _log.info(
                "XTLS: {count} replies to requests through the tunnel with {peer} are dropped, not "
                "sent in the clear: the tunnel closed before it opened",
                count=len(self._held),
                peer=self.peer.full(),
            )
            self._held = []
        self._handler._ended(self, wasOpen, reason)
        # Observers first: code awaiting close() then sees their state.
        self._handler._notify("tunnelClosed", self, reason)
        failure = reason if reason is not None else TunnelClosed("closed")
        _failWaiters(self._openWaiters, failure)
        _failWaiters(self._drainWaiters, failure)
        closers, self._closeWaiters = self._closeWaiters, []
        for d in closers:
            d.callback(None)


@attrs.define
class _IQLink:
    """
    The L{xmppcomp.xtls._tunnel.TunnelIO} of one tunnel: IQs through the
    handler.
    """

    _handler: XTLSHandler
    _tunnel: Tunnel

    def _current(self) -> bool:
        return not self._tunnel._detached and not self._tunnel._released

    def _failed(self, reason: Failure) -> None:
        if not self._current():
            return
        # The errbacks of our IQ requests carry exceptions, not None.
        exception = cast(Exception, reason.value)
        if isinstance(exception, TimeoutError):
            exception = PeerUnavailable(str(exception))
        self._tunnel._machine.fail(exception)

    def sendStart(self, offer: Offer | None) -> None:
        d = self._handler._request(self._tunnel, Start(offer).toElement())

        def proceeded(iq: domish.Element) -> None:
            if not self._current():
                return
            for child in iq.elements(NS_XTLS, "proceed"):
                self._tunnel.peerOffer = Proceed.fromElement(child).offer
                self._tunnel._machine.proceed()
                return
            self._tunnel._machine.fail(XTLSError("the answer to start has no proceed"))

        d.addCallbacks(proceeded, self._failed)

    def sendData(self, data: Data) -> None:
        d = self._handler._request(self._tunnel, data.toElement())

        def acknowledged(iq: domish.Element) -> None:
            if self._current():
                self._tunnel._machine.acknowledged()

        d.addCallbacks(acknowledged, self._failed)

    def sendClose(self) -> None:
        d = self._handler._request(self._tunnel, Close().toElement())

        def closed(result: object) -> None:
            if self._current():
                self._tunnel._machine.closedReceived()

        d.addBoth(closed)

    def deliver(self, stanza: domish.Element) -> None:
        self._handler._deliver(stanza, self._tunnel)

    def opened(self) -> None:
        self._tunnel._opened()

    def drained(self) -> None:
        self._tunnel._drained()

    def closed(self, reason: Exception | None) -> None:
        self._tunnel._closed(reason)


def _droppedReply(peer: str, why: str) -> None:
    """
    Log a reply to a request that came through the tunnel with C{peer}
    as dropped, for C{why}: it is never sent in the clear instead.
    """
    _log.info(
        "XTLS: a reply to a request through the tunnel with {peer} is dropped, not sent in the clear: {why}",
        peer=peer,
        why=why,
    )


def _jidOf(iq: domish.Element, attribute: str, jids: JIDCache) -> JID:
    value = iq.getAttribute(attribute)
    if not value:
        raise _error("bad-request", f"no {attribute} address")
    try:
        return jids(value)
    except (InvalidFormat, UnicodeError, ValueError) as e:
        raise _error("jid-malformed", str(e)) from e


#: Error types where Twisted's defaults differ from the protoXEP's examples
#: (C{not-acceptable} is C{cancel} there) or Twisted knows no default.
_ERROR_TYPES = {
    "not-acceptable": "cancel",
    "policy-violation": "modify",
    "resource-constraint": "wait",
}


def _stanzaError(e: XTLSStanzaError) -> error.StanzaError:
    """
    The stanza error answering an IQ that raised C{e}.
    """
    return _error(e.condition, e.text)


def _error(condition: str, text: str | None = None) -> error.StanzaError:
    kind = _ERROR_TYPES.get(condition)
    if kind is None and condition not in error.STANZA_CONDITIONS:
        kind = "cancel"
    return error.StanzaError(condition, type=kind, text=text)


def _discoFeature(var: str) -> Any:  # Any: wokkel is untyped
    """
    A L{wokkel.disco.DiscoFeature} (C{xmppcomp._wokkelcompat}, imported
    above, lets C{wokkel.disco} import on recent Twisted).
    """
    from wokkel.disco import DiscoFeature

    return DiscoFeature(var)


@implementer(IDisco)
class XTLSHandler(XMPPHandler, IQHandlerMixin):
    """
    The XTLS endpoint: answers C{start}, C{data} and C{close} IQs, opens
    tunnels with L{open}, and hands the stanzas that arrive through tunnels
    to the same handlers as all others, by dispatching them on the XML
    stream with C{xtlsEncrypted = True} set on the element object.

    Put it in a L{Component<xmppcomp.component.Component>}, or a wokkel
    L{StreamManager<wokkel.subprotocols.StreamManager>} (or any parent with
    C{send}), with C{setHandlerParent}.

    Replies go back the way their request came. With a parent that offers
    L{IStanzaFilters<xmppcomp.interfaces.IStanzaFilters>} (a
    L{Component<xmppcomp.component.Component>} does), each IQ C{get} or
    C{set} that came through a tunnel is dispatched with a private C{id}
    (unguessable, never sent out: handlers must not copy it into stanzas
    they send elsewhere), its own id kept in the C{xtlsId} attribute of
    the element object; the IQ C{result} or C{error} a handler sends for
    it the usual way (C{self.send}, C{xmlstream.send}: wokkel's
    C{IQHandlerMixin} and disco handlers, ...), which carries the private
    id and the request's C{to} as C{from} and C{from} as C{to}, goes into
    that tunnel with the peer's id instead of onto the stream.
    No request in the clear can take a tunnelled request's reply: its id
    cannot be a private one. When the tunnel closed meanwhile, the reply
    is dropped and logged, never sent in the clear. At most
    C{maxPendingRequests} requests per tunnel wait for their reply (more
    are answered C{resource-constraint} through the tunnel and not handed
    to the handlers). With a parent without the seam (a plain wokkel
    C{StreamManager}), ids are left alone and replies to tunnelled
    requests go in the clear, as the handler warns when it is given such
    a parent: send them with L{reply} yourself.

    Metrics (the L{Metrics} given, if any): C{xmppcomp_xtls_tunnels}
    counts the open tunnels (from the end of the handshake to the
    release), C{xmppcomp_xtls_bytes_total} the application bytes
    through them, by direction (C{in}, C{out}),
    C{xmppcomp_xtls_tunnels_opened_total} the tunnels opened, and
    C{xmppcomp_xtls_tunnels_refused_total} those refused before they
    opened, by who refused (C{by}: C{local} or C{peer}) and stanza error
    C{condition}.

    Logs (namespace C{xmppcomp.xtls}, at C{info}; see
    L{xmppcomp.xtls._events}): each tunnel opened, refused (a start this
    end answered with an error, an L{open} its own limits refused, a
    handshake either end refused) and closed, with the peer's JID, the
    subject and SHA-256 fingerprint of its certificate and, at the close,
    the bytes each way.

    @ivar configuration: the L{XTLSConfiguration}.
    @ivar _tunnels: the live tunnels, by L{Tunnel.key}.
    @ivar _requests: our IQs waiting for an answer
        (L{xmppcomp.iqtracker.RequestTracker}): unguessable ids, and a
        result only from the peer's full JID (an error also from its bare
        JID or domain, its server bouncing), within C{ackTimeout}.
    @ivar _observers: the L{ITunnelObserver}s.
    @ivar _pending: the IQ requests that came through a tunnel and wait
        for their reply, by private id.
    @ivar _orphans: the private ids of requests whose tunnel closed before
        their reply (reply dropped if it comes), to the peer's JID, oldest
        first; at most C{maxTunnels * maxPendingRequests}.
    @ivar _filtering: the parent whose stanza filters this handler uses,
        or C{None}.
    """

    iqHandlers = {
        f"/iq[@type='set']/start[@xmlns='{NS_XTLS}']": "_onStart",
        f"/iq[@type='set']/data[@xmlns='{NS_XTLS}']": "_onData",
        f"/iq[@type='set']/close[@xmlns='{NS_XTLS}']": "_onClose",
    }

    def __init__(
        self,
        configuration: XTLSConfiguration,
        clock: IReactorTime | None = None,
        metrics: Metrics | None = None,
        jids: JIDCache | None = None,
    ) -> None:
        """
        @param configuration: certificate, trust, policy and limits.
        @param clock: for the acknowledgement timeouts; the global reactor
            when C{None}.
        @param metrics: where tunnels and bytes are counted; not counted
            without it.
        @param jids: the parsed JIDs to share (its owner's); the handler's
            own without it.
        """
        super().__init__()
        self.configuration = configuration
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        self._clock: IReactorTime = clock
        self._jids = JIDCache() if jids is None else jids
        self._tunnelsOpen: Gauge | NoCount = NoCount() if metrics is None else metrics.xtlsTunnels
        self._bytesIn: Counter | NoCount = NoCount() if metrics is None else metrics.xtlsBytes.labels("in")
        self._bytesOut: Counter | NoCount = NoCount() if metrics is None else metrics.xtlsBytes.labels("out")
        self._tunnelsOpened: Counter | NoCount = (
            NoCount() if metrics is None else metrics.xtlsTunnelsOpened
        )
        self._tunnelsRefused: Counter | NoCount = (
            NoCount() if metrics is None else metrics.xtlsTunnelsRefused
        )
        self._tunnels: dict[tuple[str, str], Tunnel] = {}
        self._requests = RequestTracker(
            clock=clock, requester="xtls", metrics=metrics, jids=self._jids
        )
        self._observers: list[ITunnelObserver] = []
        self._contexts: dict[bool, SSL.Context] = {}
        self._pending: dict[str, _Waiting] = {}
        self._orphans: OrderedDict[str, str] = OrderedDict()
        self._filtering: IStanzaFilters | None = None

    # Public API

    def addObserver(self, observer: ITunnelObserver) -> None:
        """
        Tell C{observer} about tunnels opening and closing.
        """
        self._observers.append(observer)

    def removeObserver(self, observer: ITunnelObserver) -> None:
        """
        Stop telling C{observer}.
        """
        self._observers.remove(observer)

    @property
    def tunnels(self) -> Sequence[Tunnel]:
        """
        The live tunnels.
        """
        return list(self._tunnels.values())

    def tunnelFor(self, local: JID, peer: JID) -> Tunnel | None:
        """
        The live tunnel between C{local} and C{peer}, if any.
        """
        return self._tunnels.get((local.full(), peer.full()))

    def reply(self, request: domish.Element, reply: domish.Element) -> None:
        """
        Send C{reply} to C{request}, a stanza that came through a tunnel
        (stamped: C{xtlsEncrypted}, C{xtlsLocal}, C{xtlsPeer}), back
        through that tunnel: held until it opens if it is still being
        established, dropped and logged if it is gone, never sent in the
        clear. Under a parent with stanza filters an IQ reply sent the
        usual way goes there by itself; this is for other parents, and for
        replies that are not IQs. A reply built from the request carries
        its private id: the peer gets its own id back (L{Tunnel.send}).
        """
        tunnel = self.tunnelFor(request.xtlsLocal, request.xtlsPeer)
        if tunnel is None:
            _droppedReply(request.xtlsPeer.full(), "the tunnel is gone")
            return
        self._sendInTunnel(tunnel, reply)

    def open(self, local: JID, peer: JID, offer: bool = False) -> Deferred[Tunnel]:
        """
        Open a tunnel to C{peer}: send C{<start/>}, then run the TLS
        handshake as the client. A live tunnel between the same JIDs is
        closed first.

        If the peer sends its own start at the same time and its JID sorts
        first, its start wins: the returned L{Deferred} then fires with the
        tunnel the peer started.

        @param local: our full JID (one of our hostnames, or a JID at one).
        @param peer: the peer's full JID.
        @param offer: include our XEP-0250 offer (certificate hash).
        @return: fires with the open L{Tunnel}; fails with
            L{XTLSStanzaError} when a limit is reached or XTLS is off, with
            L{twisted.words.protocols.jabber.error.StanzaError} when the
            peer refused, with L{xmppcomp.xtls.HandshakeFailed} when TLS or
            the certificate check failed.
        """
        if not self.configuration.active:
            self._refusedHere(local.full(), peer.full(), "initiator", self._inactive())
            return fail(XTLSStanzaError("service-unavailable", "XTLS is not enabled"))
        existing = self._tunnels.get((local.full(), peer.full()))
        if existing is not None:
            self._forget(existing)
            existing._closeRequested = True
            existing._machine.close()
        try:
            self._checkLimits(peer)
        except XTLSStanzaError as e:
            self._refusedHere(local.full(), peer.full(), "initiator", e)
            return fail(e)
        tunnel = Tunnel(self, local, peer, initiator=True)
        d: Deferred[Tunnel] = Deferred()
        tunnel._openWaiters.append(d)
        self._tunnels[tunnel.key] = tunnel
        tunnel._machine.initiate(self._ownOffer() if offer else None)
        return d

    def getDiscoInfo(
        self, requestor: JID, target: JID, nodeIdentifier: str = ""
    ) -> Deferred[list[object]]:
        """
        Disco#info: the C{urn:xmpp:tmp:xtls} feature on the root node, when
        XTLS is enabled.
        """
        if nodeIdentifier or not self.configuration.active:
            return succeed([])
        return succeed([_discoFeature(NS_XTLS)])

    def getDiscoItems(
        self, requestor: JID, target: JID, nodeIdentifier: str = ""
    ) -> Deferred[list[object]]:
        """
        Disco#items: none.
        """
        return succeed([])

    # XMPPHandler

    def setHandlerParent(self, parent: Any) -> None:  # Any: wokkel's parent is untyped
        """
        Join C{parent}; use its send filters if it offers them
        (L{IStanzaFilters<xmppcomp.interfaces.IStanzaFilters>}), so that
        replies to tunnelled requests go back through their tunnel, and
        warn otherwise that they will go in the clear.
        """
        super().setHandlerParent(parent)
        if IStanzaFilters.providedBy(parent):
            filters: IStanzaFilters = parent
            filters.addSendFilter(self._filterSend)
            self._filtering = filters
        else:
            _log.warn(
                "XTLS endpoint: its parent {parent!r} cannot hand it the replies of other handlers: "
                "replies to requests that come through a tunnel (disco, IQ handlers) will be sent in "
                "the clear, outside the tunnel. Put it in an xmppcomp.Component (which lets it send "
                "them through their tunnel), or reply with xtls.reply(request, reply).",
                parent=parent,
            )

    def disownHandlerParent(self, parent: Any) -> None:  # Any: wokkel's parent is untyped
        """
        Leave C{parent}, and its send filters.
        """
        filters, self._filtering = self._filtering, None
        if filters is not None:
            filters.removeSendFilter(self._filterSend)
        super().disownHandlerParent(parent)

    def connectionInitialized(self) -> None:
        """
        Observe the XTLS requests, the answers to ours and unavailable
        presence.
        """
        xs = self.xmlstream
        xs.addObserver(_XTLS_SET, self.handleRequest)
        xs.addObserver("/iq[@type='result']", self._onResponse, 1)
        xs.addObserver("/iq[@type='error']", self._onResponse, 1)
        xs.addObserver("/presence[@type='unavailable']", self._onUnavailable)

    def connectionLost(self, reason: Failure) -> None:
        """
        The stream is gone, and every tunnel with it.
        """
        self._requests.failAll(PeerUnavailable("the XML stream was lost"))
        for tunnel in list(self._tunnels.values()):
            tunnel._machine.fail(PeerUnavailable("the XML stream was lost"))
        super().connectionLost(reason)

    # Requests from peers

    def _onStart(self, iq: domish.Element) -> domish.Element:
        """
        Answer a start: C{<proceed/>}, or the error refusing it, which is
        counted and logged.
        """
        try:
            return self._acceptStart(iq)
        except XTLSStanzaError as e:
            self._refusedStart(iq, e)
            raise _stanzaError(e) from e
        except error.StanzaError as e:
            self._refusedStart(iq, e)
            raise

    def _refusedStart(self, iq: domish.Element, e: XTLSStanzaError | error.StanzaError) -> None:
        local = iq.getAttribute("to") or "(no address)"
        peer = iq.getAttribute("from") or "(no address)"
        self._refusedHere(local, peer, "responder", e)

    def _acceptStart(self, iq: domish.Element) -> domish.Element:
        """
        Make the tunnel a start asks for.

        @return: the C{<proceed/>}.
        @raise XTLSStanzaError: refused (L{_Refused} with the reason for
            the log).
        @raise error.StanzaError: an address is missing or malformed.
        """
        if not self.configuration.active:
            raise self._inactive()
        local, peer = _jidOf(iq, "to", self._jids), _jidOf(iq, "from", self._jids)
        start = parseRequest(iq)
        assert isinstance(start, Start)
        policy = self.configuration.acceptPolicy
        if policy is not None and not policy(local, peer):
            raise _Refused("not-acceptable", None, "the accept policy declined the peer")
        key = (local.full(), peer.full())
        existing = self._tunnels.get(key)
        waiters: list[Deferred[Tunnel]] = []
        if existing is not None:
            if existing.initiator and existing._core.engine is None:
                # Both started: the start of the JID that sorts first wins.
                if hasPriority(iq["to"], iq["from"]):
                    raise _Refused(
                        "conflict",
                        None,
                        "both ends started at once; ours has priority and goes on",
                    )
                # Theirs wins: our open() gets the tunnel they start; the
                # conflict answering our start will be ignored.
                existing._detached = True
                waiters = existing._openWaiters
                self._forget(existing)
            else:
                self._forget(existing)
                existing._machine.fail(TunnelReplaced("the peer started a new tunnel"))
        try:
            self._checkLimits(peer)
        except XTLSStanzaError as e:
            for d in waiters:
                d.errback(e)
            raise
        tunnel = Tunnel(self, local, peer, initiator=False)
        tunnel.peerOffer = start.offer
        tunnel._openWaiters.extend(waiters)
        self._tunnels[key] = tunnel
        tunnel._machine.accept()
        return Proceed(None if start.offer is None else self._ownOffer()).toElement()

    def _onData(self, iq: domish.Element) -> Deferred[None]:
        local, peer = _jidOf(iq, "to", self._jids), _jidOf(iq, "from", self._jids)
        tunnel = self._tunnels.get((local.full(), peer.full()))
        if tunnel is None:
            raise _error("item-not-found")
        try:
            data = parseRequest(iq)
        except XTLSStanzaError as e:
            tunnel._machine.fail(e)
            raise _stanzaError(e) from e
        assert isinstance(data, Data)
        answered: Deferred[None] = Deferred()

        def answer(problem: XTLSStanzaError | None) -> None:
            if problem is None:
                answered.callback(None)
            else:
                answered.errback(_stanzaError(problem))

        tunnel._machine.receive(data, answer)
        return answered

    def _onClose(self, iq: domish.Element) -> domish.Element:
        local, peer = _jidOf(iq, "to", self._jids), _jidOf(iq, "from", self._jids)
        tunnel = self._tunnels.get((local.full(), peer.full()))
        if tunnel is None:
            raise _error("item-not-found")
        tunnel._machine.closeReceived()
        return Closed().toElement()

    def _onUnavailable(self, presence: domish.Element) -> None:
        try:
            sender = self._jids(presence.getAttribute("from", ""))
        except (InvalidFormat, UnicodeError, ValueError):
            return
        for tunnel in list(self._tunnels.values()):
            if tunnel.peer == sender or (
                sender.resource is None and tunnel.peer.userhost() == sender.userhost()
            ):
                tunnel._machine.fail(PeerUnavailable(f"{sender.full()} is unavailable"))

    # Our requests

    def _request(self, tunnel: Tunnel, payload: domish.Element) -> Deferred[domish.Element]:
        iq = domish.Element((None, "iq"))
        iq["type"] = "set"
        iq["to"] = tunnel.peer.full()
        iq["from"] = tunnel.local.full()
        iq.addChild(payload)
        d: Deferred[domish.Element] = Deferred()
        identifier = self._requests.expect(
            iq, d.callback, d.errback, timeout=self.configuration.ackTimeout
        )
        try:
            self.send(iq)
        except Exception:
            self._requests.forget(identifier)
            raise
        return d

    def _onResponse(self, iq: domish.Element) -> None:
        if getattr(iq, "handled", False):
            return
        self._requests.receive(iq)

    # Helpers for tunnels

    def _ownOffer(self) -> Offer:
        certificate = self.configuration.certificate
        assert certificate is not None
        return Offer([certificateHash(certificate.original.to_cryptography())])

    def _context(self, isClient: bool) -> SSL.Context:
        context = self._contexts.get(isClient)
        if context is None:
            configuration = self.configuration
            assert configuration.certificate is not None
            context = makeContext(
                configuration.certificate.original.to_cryptography(),
                configuration.certificate.privateKey.original.to_cryptography_key(),
                [c.original.to_cryptography() for c in configuration.trust],
                isClient,
                requireTrust=not configuration.pins,
            )
            self._contexts[isClient] = context
        return context

    def _newEngine(self, isClient: bool, peer: JID) -> _MeteredEngine:
        configuration = self.configuration
        return _MeteredEngine(
            self._context(isClient),
            isClient,
            peer,
            self._bytesIn,
            self._bytesOut,
            pinsFor(configuration.pins, peer),
            bool(configuration.trust),
        )

    def _checkLimits(self, peer: JID) -> None:
        configuration = self.configuration
        if len(self._tunnels) >= configuration.maxTunnels:
            raise _Refused(
                "resource-constraint",
                "too many tunnels",
                f"tunnel limit reached: {len(self._tunnels)} open, maxTunnels is "
                f"{configuration.maxTunnels}",
            )
        samePeer = sum(
            1 for t in self._tunnels.values() if t.peer.userhost() == peer.userhost()
        )
        if samePeer >= configuration.maxTunnelsPerPeer:
            raise _Refused(
                "resource-constraint",
                "too many tunnels with this peer",
                f"per-peer limit reached: {samePeer} open with {peer.userhost()}, "
                f"maxTunnelsPerPeer is {configuration.maxTunnelsPerPeer}",
            )

    def _inactive(self) -> _Refused:
        """
        The refusal of every tunnel while XTLS is not active, saying why.
        """
        configuration = self.configuration
        if not configuration.enabled:
            why = "XTLS is disabled"
        elif configuration.certificate is None:
            why = "XTLS has no certificate"
        else:
            why = "XTLS trusts no authority and pins no certificate for the peers"
        return _Refused("service-unavailable", None, why)

    def _refused(
        self, local: str, peer: str, role: str, refusal: Refusal, certificate: x509.Certificate | None
    ) -> None:
        """
        Count and log a refused tunnel.
        """
        self._tunnelsRefused.labels(refusal.by, refusal.condition).inc()
        logRefused(local, peer, role, refusal, certificate)

    def _refusedHere(self, local: str, peer: str, role: str, e: XTLSStanzaError | error.StanzaError) -> None:
        """
        Count and log a tunnel this end refused before making it: a start
        answered with C{e}, or an L{open} failed with it.
        """
        reason = e.detail if isinstance(e, _Refused) else (e.text or "no explanation")
        self._refused(local, peer, role, Refusal(BY_LOCAL, e.condition, reason), None)

    def _ended(self, tunnel: Tunnel, wasOpen: bool, reason: Exception | None) -> None:
        """
        Count and log the end of a tunnel: a refusal if it never opened
        and a stanza error ended it (L{refusalOf}), otherwise its close.
        """
        local, peer = tunnel.local.full(), tunnel.peer.full()
        certificate = tunnel._presentedCertificate()
        refusal = None if wasOpen else refusalOf(reason)
        if refusal is not None:
            self._refused(local, peer, tunnel.role, refusal, certificate)
            return
        logClosed(
            local,
            peer,
            tunnel.role,
            describeEnd(reason, tunnel._closeRequested),
            wasOpen,
            tunnel.bytesReceived,
            tunnel.bytesSent,
            self._clock.seconds() - tunnel._createdAt,
            certificate,
        )

    def _forget(self, tunnel: Tunnel) -> None:
        if self._tunnels.get(tunnel.key) is tunnel:
            del self._tunnels[tunnel.key]

    def _deliver(self, stanza: domish.Element, tunnel: Tunnel) -> None:
        if self.xmlstream is None:
            _log.warn("dropping a stanza from a tunnel: no XML stream")
            return
        if (
            self._filtering is not None
            and stanza.name == "iq"
            and stanza.getAttribute("type") in ("get", "set")
            and not self._expectReply(stanza, tunnel)
        ):
            return
        self.xmlstream.dispatch(stanza)

    # Replies to tunnelled requests

    def _address(self, value: str | None) -> str:
        """
        An address of a request or reply as a key: its full JID
        normalised, or the text itself when it is no JID.
        """
        if value is None:
            return ""
        try:
            return self._jids(value).full()
        except (InvalidFormat, UnicodeError, ValueError):
            return value

    def _expectReply(self, iq: domish.Element, tunnel: Tunnel) -> bool:
        """
        Give C{iq}, an IQ request that came through C{tunnel}, a private
        id, and remember that its reply goes back through C{tunnel} with
        its own id; or refuse it, through the tunnel, beyond
        C{maxPendingRequests}.

        @return: whether to hand C{iq} to the handlers.
        """
        limit = self.configuration.maxPendingRequests
        if len(tunnel._pending) >= limit:
            self._refuseInTunnel(
                tunnel, iq, "resource-constraint",
                f"{limit} requests through this tunnel wait for their answer already",
            )
            return False
        private = _PRIVATE_ID + secrets.token_urlsafe(16)
        self._pending[private] = _Waiting(
            tunnel,
            iq.getAttribute("id"),
            self._address(iq.getAttribute("to")),
            self._address(iq.getAttribute("from")),
        )
        tunnel._pending.add(private)
        iq["id"] = private
        return True

    def _refuseInTunnel(self, tunnel: Tunnel, iq: domish.Element, condition: str, text: str) -> None:
        _log.info(
            "XTLS: a request through the tunnel with {peer} is refused ({condition}): {text}",
            peer=tunnel.peer.full(),
            condition=condition,
            text=text,
        )
        self._sendInTunnel(tunnel, _error(condition, text).toResponse(iq))

    def _sendInTunnel(self, tunnel: Tunnel, reply: domish.Element) -> None:
        """
        Send C{reply} through C{tunnel}; hold it until the tunnel opens if
        it is still being established (a request may come with the peer's
        last handshake flight), at most C{maxPendingRequests} of them;
        drop it (logged) if it cannot go, never in the clear.
        """
        if not tunnel.isOpen and not tunnel._released:
            if len(tunnel._held) < self.configuration.maxPendingRequests:
                tunnel._held.append(reply)
                return
            _droppedReply(tunnel.peer.full(), "too many replies wait for the tunnel to open")
            return
        try:
            tunnel.send(reply)
        except XTLSError as e:
            _droppedReply(tunnel.peer.full(), str(e))

    def _filterSend(self, stanza: domish.Element) -> bool:
        """
        The send filter: take an IQ reply to a request that came through
        a tunnel (its private id, from the request's C{to} to its
        C{from}), and send it through that tunnel with the peer's id (or
        drop it when the tunnel is gone).
        """
        if stanza.name != "iq" or stanza.getAttribute("type") not in ("result", "error"):
            return False
        private = stanza.getAttribute("id", "")
        if not private.startswith(_PRIVATE_ID):
            return False
        waiting = self._pending.get(private)
        # Left out, an address is the request's (the receiver fills it in).
        sender, recipient = stanza.getAttribute("from"), stanza.getAttribute("to")
        if waiting is not None and (
            sender is None or self._address(sender) == waiting.local
        ) and (recipient is None or self._address(recipient) == waiting.peer):
            self._answered(private, waiting, stanza)
            self._sendInTunnel(waiting.tunnel, stanza)
            return True
        peer = self._orphans.pop(private, None)
        why = "the tunnel closed before it" if peer is not None else (
            "it is addressed to another JID than the request came from" if waiting is not None
            else "no request waits for it")
        # A private id never leaves the process, nor does what answers it.
        _droppedReply(peer or (waiting.peer if waiting is not None else "(unknown)"), f"{why} (id {private})")
        return True

    def _answered(self, private: str, waiting: _Waiting, reply: domish.Element) -> None:
        """
        The request C{waiting} (private id C{private}) is answered by
        C{reply}: it no longer waits, and C{reply} gets the peer's id.
        """
        del self._pending[private]
        waiting.tunnel._pending.discard(private)
        if waiting.id is None:
            del reply["id"]
        else:
            reply["id"] = waiting.id

    def _repliedDirectly(self, tunnel: Tunnel, stanza: domish.Element) -> None:
        """
        C{stanza} is given to L{Tunnel.send}: if it replies to a request
        that came through C{tunnel} (its private id), that request no
        longer waits, and C{stanza} gets the peer's id.
        """
        if stanza.name != "iq" or stanza.getAttribute("type") not in ("result", "error"):
            return
        private = stanza.getAttribute("id", "")
        if private in tunnel._pending:
            self._answered(private, self._pending[private], stanza)

    def _tunnelGone(self, tunnel: Tunnel) -> None:
        """
        C{tunnel} is released: its requests' replies, if they come, are
        dropped.
        """
        privates, tunnel._pending = tunnel._pending, set()
        if not privates:
            return
        peer = tunnel.peer.full()
        for private in privates:
            del self._pending[private]
            self._orphans[private] = peer
        bound = self.configuration.maxTunnels * self.configuration.maxPendingRequests
        while len(self._orphans) > bound:
            self._orphans.popitem(last=False)

    def _notify(self, event: str, *args: object) -> None:
        for observer in list(self._observers):
            try:
                getattr(observer, event)(*args)
            except Exception:
                _log.failure("XTLS observer {observer!r} failed", observer=observer)
