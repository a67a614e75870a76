# -*- test-case-name: tests.test_xtls_tunnel -*-
"""
The life of one XTLS tunnel, as an Automat state machine (typed API); the
diagram is C{docs/state-machines/xtls.dot}.

Pure logic: the machine drives a L{TLSEngine} and an L{InnerStream} and
tells a L{TunnelIO} (the IQ handler) what to send and deliver; nothing here
imports from C{twisted.internet}. Every input returns C{None}, so that
Automat can postpone an input made while another one runs (a synchronous
XML pipe delivers the answer to a data IQ while it is being sent).

States:
  - C{idle}: created, nothing sent.
  - C{awaitingProceed}: the initiator sent C{<start/>}.
  - C{handshaking}: TLS handshake; the responder enters it when it answers
    C{<proceed/>}. The tunnel is only established once the handshake is
    complete I{and} the peer acknowledged every data IQ we sent: in TLS 1.3
    the client finishes before the server has checked the client's
    certificate, and the acknowledgement (or the error answering it) is how
    the client learns the verdict.
  - C{established}: stanzas flow.
  - C{closing}: we sent C{<close/>}.
  - C{closed}: released; the L{TunnelIO} was told why.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional, Protocol

from automat import TypeMachineBuilder, pep614
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppcomp.xtls._engine import TLSEngine
from xmppcomp.xtls._exceptions import (
    CertificateMismatch,
    TunnelClosed,
    XTLSError,
    XTLSStanzaError,
)
from xmppcomp.xtls._inner import InnerStream, serializeStanza, stampInner
from xmppcomp.xtls._wire import METHOD_X509, Data, Offer

__all__ = ["TunnelCore", "TunnelIO", "TunnelInputs", "conditionFor", "makeTunnel"]

#: Answers a received data IQ: C{None} for a result, or the error.
Answer = Callable[[Optional[XTLSStanzaError]], None]


class TunnelIO(Protocol):
    """
    What a tunnel needs from the IQ layer.
    """

    def sendStart(self, offer: Offer | None) -> None:
        """
        Send C{<start/>} to the peer; answer with L{TunnelInputs.proceed}
        or L{TunnelInputs.fail}.
        """

    def sendData(self, data: Data) -> None:
        """
        Send a C{<data/>} IQ; answer with L{TunnelInputs.acknowledged} or
        L{TunnelInputs.fail}.
        """

    def sendClose(self) -> None:
        """
        Send C{<close/>}; answer with L{TunnelInputs.closedReceived} (on
        the result, or on any error: the tunnel is gone either way).
        """

    def deliver(self, stanza: domish.Element) -> None:
        """
        Hand a stanza that arrived through the tunnel to the handlers.
        """

    def opened(self) -> None:
        """
        The tunnel is established.
        """

    def drained(self) -> None:
        """
        Everything given to L{TunnelInputs.send} was acknowledged.
        """

    def closed(self, reason: Exception | None) -> None:
        """
        The tunnel is closed and released; C{reason} is C{None} for an
        orderly close.
        """


class TunnelInputs(Protocol):
    """
    The inputs of the tunnel machine.
    """

    def initiate(self, offer: Offer | None) -> None:
        "We start a tunnel (initiator)."

    def accept(self) -> None:
        "We agreed to the peer's start (responder)."

    def proceed(self) -> None:
        "The peer answered our start with proceed."

    def receive(self, data: Data, answer: Answer) -> None:
        "A data IQ arrived; C{answer} answers it."

    def acknowledged(self) -> None:
        "The peer acknowledged one of our data IQs."

    def established(self) -> None:
        "Handshake done and our last flight acknowledged (internal)."

    def send(self, stanza: domish.Element) -> None:
        "Encrypt and send a stanza."

    def close(self) -> None:
        "Close the tunnel from our side."

    def closeReceived(self) -> None:
        "The peer closed the tunnel."

    def closedReceived(self) -> None:
        "The peer answered our close."

    def fail(self, reason: Exception) -> None:
        "Something went wrong: the tunnel is closed."


@dataclass
class TunnelCore:
    """
    The state the outputs share.

    @ivar io: the IQ layer.
    @ivar local: our full JID.
    @ivar peer: the peer's full JID.
    @ivar makeEngine: creates the TLS engine: C{makeEngine(isClient)}.
    @ivar window: how many data IQs may be unacknowledged.
    @ivar chunkSize: the most TLS bytes per data IQ.
    @ivar maxStanzaSize: the limit on each stanza inside.
    @ivar engine: the TLS engine, once the handshake starts.
    @ivar queue: TLS bytes waiting for room in the window.
    @ivar queuedBytes: their total size.
    @ivar unacknowledged: data IQs sent and not yet acknowledged.
    @ivar methodSent: whether a data IQ with C{method} was sent.
    @ivar dataReceived: whether a data IQ was received.
    """

    io: TunnelIO
    local: JID
    peer: JID
    makeEngine: Callable[[bool], TLSEngine]
    window: int = 8
    chunkSize: int = 32 * 1024
    maxStanzaSize: int = 256 * 1024
    engine: TLSEngine | None = None
    inner: InnerStream | None = None
    queue: deque[bytes] = field(default_factory=deque)
    queuedBytes: int = 0
    unacknowledged: int = 0
    methodSent: bool = False
    dataReceived: bool = False

    def pump(self) -> None:
        """
        Move the engine's output to the queue, and the queue to the wire as
        far as the window allows.
        """
        assert self.engine is not None
        out = self.engine.outgoing()
        for start in range(0, len(out), self.chunkSize):
            chunk = out[start : start + self.chunkSize]
            self.queue.append(chunk)
            self.queuedBytes += len(chunk)
        while self.queue and self.unacknowledged < self.window:
            chunk = self.queue.popleft()
            self.queuedBytes -= len(chunk)
            method = None
            if not self.methodSent:
                method, self.methodSent = METHOD_X509, True
            self.unacknowledged += 1
            self.io.sendData(Data(chunk, method))

    @property
    def idle(self) -> bool:
        """
        Nothing queued and nothing unacknowledged.
        """
        return not self.queue and self.unacknowledged == 0


def _checkMethod(core: TunnelCore, data: Data) -> None:
    if data.method is not None and data.method != METHOD_X509:
        raise XTLSStanzaError(
            "feature-not-implemented", f"TLS method {data.method!r} not implemented"
        )
    core.dataReceived = True


def conditionFor(error: Exception) -> XTLSStanzaError:
    """
    The stanza error that answers a data IQ whose processing raised
    C{error}: its own for an L{XTLSStanzaError}, C{not-acceptable} for
    anything else (a failed handshake, a refused certificate, a stanza
    inside that does not parse).
    """
    if isinstance(error, XTLSStanzaError):
        return error
    if isinstance(error, CertificateMismatch):
        return XTLSStanzaError("not-acceptable", str(error))
    return XTLSStanzaError("not-acceptable", str(error))


def makeTunnel() -> Callable[[TunnelCore], TunnelInputs]:
    """
    Build the tunnel machine.

    @return: a factory taking a L{TunnelCore} and giving its inputs.
    """
    builder = TypeMachineBuilder(TunnelInputs, TunnelCore)
    idle = builder.state("idle")
    awaitingProceed = builder.state("awaitingProceed")
    handshaking = builder.state("handshaking")
    established = builder.state("established")
    closing = builder.state("closing")
    closed = builder.state("closed")

    @pep614(idle.upon(TunnelInputs.initiate).to(awaitingProceed))
    def sendStart(inputs: TunnelInputs, core: TunnelCore, offer: Offer | None) -> None:
        core.io.sendStart(offer)

    @pep614(idle.upon(TunnelInputs.accept).to(handshaking))
    def startServer(inputs: TunnelInputs, core: TunnelCore) -> None:
        core.engine = core.makeEngine(False)
        core.inner = InnerStream(core.maxStanzaSize)
        core.engine.start()

    @pep614(awaitingProceed.upon(TunnelInputs.proceed).to(handshaking))
    def startClient(inputs: TunnelInputs, core: TunnelCore) -> None:
        try:
            core.engine = core.makeEngine(True)
            core.inner = InnerStream(core.maxStanzaSize)
            core.engine.start()
            core.pump()
        except (XTLSError, ValueError) as e:
            inputs.fail(e)

    @pep614(awaitingProceed.upon(TunnelInputs.receive).loop())
    def refuseEarlyData(
        inputs: TunnelInputs, core: TunnelCore, data: Data, answer: Answer
    ) -> None:
        error = XTLSStanzaError("unexpected-request", "data before proceed")
        answer(error)
        inputs.fail(error)

    def feed(inputs: TunnelInputs, core: TunnelCore, data: Data, answer: Answer) -> None:
        assert core.engine is not None and core.inner is not None
        try:
            _checkMethod(core, data)
            plaintext = core.engine.receive(data.payload)
            stanzas = core.inner.feed(plaintext) if plaintext else []
        except (XTLSError, ValueError) as e:
            answer(conditionFor(e))
            inputs.fail(e)
            return
        answer(None)
        core.pump()
        for stanza in stanzas:
            stamped = stampInner(stanza, core.local, core.peer)
            if stamped is not None:
                core.io.deliver(stamped)
        if core.engine.handshakeComplete and core.idle:
            inputs.established()

    handshaking.upon(TunnelInputs.receive).loop()(feed)
    established.upon(TunnelInputs.receive).loop()(feed)

    @pep614(handshaking.upon(TunnelInputs.acknowledged).loop())
    def acknowledgedHandshake(inputs: TunnelInputs, core: TunnelCore) -> None:
        assert core.engine is not None
        core.unacknowledged -= 1
        core.pump()
        if core.engine.handshakeComplete and core.idle:
            inputs.established()

    @pep614(handshaking.upon(TunnelInputs.established).to(established))
    def announceOpen(inputs: TunnelInputs, core: TunnelCore) -> None:
        core.io.opened()

    @pep614(established.upon(TunnelInputs.acknowledged).loop())
    def acknowledgedData(inputs: TunnelInputs, core: TunnelCore) -> None:
        core.unacknowledged -= 1
        core.pump()
        if core.idle:
            core.io.drained()

    @pep614(established.upon(TunnelInputs.send).loop())
    def encrypt(inputs: TunnelInputs, core: TunnelCore, stanza: domish.Element) -> None:
        assert core.engine is not None
        try:
            core.engine.write(serializeStanza(stanza))
        except XTLSError as e:
            inputs.fail(e)
            return
        core.pump()

    def refuseSend(inputs: TunnelInputs, core: TunnelCore, stanza: domish.Element) -> None:
        raise TunnelClosed("the tunnel is not open")

    for state in (idle, awaitingProceed, handshaking, closing, closed):
        state.upon(TunnelInputs.send).loop()(refuseSend)

    def sendClose(inputs: TunnelInputs, core: TunnelCore) -> None:
        core.queue.clear()
        core.queuedBytes = 0
        core.io.sendClose()

    for state in (awaitingProceed, handshaking, established):
        state.upon(TunnelInputs.close).to(closing)(sendClose)

    def finish(inputs: TunnelInputs, core: TunnelCore) -> None:
        core.queue.clear()
        core.queuedBytes = 0
        core.io.closed(None)

    def finishFailed(inputs: TunnelInputs, core: TunnelCore, reason: Exception) -> None:
        core.queue.clear()
        core.queuedBytes = 0
        core.io.closed(reason)

    for state in (idle, awaitingProceed, handshaking, established, closing):
        state.upon(TunnelInputs.closeReceived).to(closed)(finish)
        state.upon(TunnelInputs.fail).to(closed)(finishFailed)
    closing.upon(TunnelInputs.closedReceived).to(closed)(finish)

    idle.upon(TunnelInputs.close).to(closed)(finish)

    def ignoreData(inputs: TunnelInputs, core: TunnelCore, data: Data, answer: Answer) -> None:
        answer(None)

    closing.upon(TunnelInputs.receive).loop()(ignoreData)

    def refuseData(inputs: TunnelInputs, core: TunnelCore, data: Data, answer: Answer) -> None:
        answer(XTLSStanzaError("item-not-found", "the tunnel is closed"))

    closed.upon(TunnelInputs.receive).loop()(refuseData)

    def nothing(inputs: TunnelInputs, core: TunnelCore) -> None:
        return None

    def nothingWith(inputs: TunnelInputs, core: TunnelCore, reason: object) -> None:
        return None

    # Late or duplicate events after the fact change nothing.
    closing.upon(TunnelInputs.acknowledged).loop()(nothing)
    closing.upon(TunnelInputs.close).loop()(nothing)
    closing.upon(TunnelInputs.established).loop()(nothing)
    established.upon(TunnelInputs.established).loop()(nothing)
    closing.upon(TunnelInputs.proceed).loop()(nothing)
    for event in (
        TunnelInputs.acknowledged,
        TunnelInputs.close,
        TunnelInputs.closeReceived,
        TunnelInputs.closedReceived,
        TunnelInputs.established,
        TunnelInputs.proceed,
    ):
        closed.upon(event).loop()(nothing)
    closed.upon(TunnelInputs.fail).loop()(nothingWith)
    return builder.build()


#: The tunnel machine.
Tunnel = makeTunnel()
