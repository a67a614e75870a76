# -*- test-case-name: tests.test_xtls_tunnel -*-
"""
Tests for L{xmppcomp.xtls._tunnel}: the XTLS tunnel machine on its own,
without the IQ handler. Its inputs are driven by hand; its outputs are
recorded by a fake L{TunnelIO} and a fake TLS engine, then (at the end)
by two machines with real L{TLSEngine}s joined by an in-memory pipe.

Every transition of C{docs/state-machines/xtls.dot} is taken by one test
below (L{DiagramTests} checks that the two agree).
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Callable
from typing import Optional

from automat import NoTransition
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppcomp.testing import makeCertificateAuthority
from xmppcomp.xtls._engine import TLSEngine, makeContext
from xmppcomp.xtls._exceptions import (
    CertificateMismatch,
    HandshakeFailed,
    TunnelClosed,
    XTLSError,
    XTLSStanzaError,
)
from xmppcomp.xtls._tunnel import Tunnel, TunnelCore, TunnelInputs
from xmppcomp.xtls._wire import METHOD_X509, Data, Offer

#: The diagram the machine must match.
DIAGRAM = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "docs",
    "state-machines",
    "xtls.dot",
)

LOCAL = JID("alice@a.example/home")
PEER = JID("bob@b.example/work")

#: The transitions the tests below take: (state, input, output, next state).
TAKEN: set[tuple[str, str, str, str]] = set()


def transition(
    source: str, event: str, output: str, target: str
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """
    Mark a test as the one that takes a transition of the diagram.
    """

    def mark(test: Callable[..., None]) -> Callable[..., None]:
        TAKEN.add((source, event, output, target))
        return test

    return mark


def diagramTransitions() -> set[tuple[str, str, str, str]]:
    """
    The transitions of C{xtls.dot}: each edge's label lists
    C{input/output} pairs, one a line.
    """
    edges = set()
    with open(DIAGRAM, encoding="utf-8") as f:
        for line in f:
            match = re.match(r'\s*(\w+) -> (\w+) \[label="([^"]*)"\];', line)
            if match is None:
                continue
            source, target, label = match.groups()
            for pair in label.split("\\n"):
                event, output = pair.split("/")
                edges.add((source, event, output, target))
    return edges


class RecordingIO:
    """
    A L{xmppcomp.xtls._tunnel.TunnelIO} that records each call as a tuple,
    C{(name, *arguments)}, in L{calls}.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def sendStart(self, offer: Offer | None) -> None:
        self.calls.append(("sendStart", offer))

    def sendData(self, data: Data) -> None:
        self.calls.append(("sendData", data))

    def sendClose(self) -> None:
        self.calls.append(("sendClose",))

    def deliver(self, stanza: domish.Element) -> None:
        self.calls.append(("deliver", stanza))

    def opened(self) -> None:
        self.calls.append(("opened",))

    def drained(self) -> None:
        self.calls.append(("drained",))

    def closed(self, reason: Exception | None) -> None:
        self.calls.append(("closed", reason))

    def names(self) -> list[object]:
        """
        The names of the calls, in order.
        """
        return [call[0] for call in self.calls]

    def sent(self) -> list[Data]:
        """
        The data IQs sent, in order.
        """
        return [call[1] for call in self.calls if call[0] == "sendData"]  # type: ignore[misc]


class FakeEngine:
    """
    A stand-in for L{TLSEngine} whose "encryption" is the identity.

    @ivar isClient: as given to C{makeEngine}.
    @ivar handshakeComplete: whether the handshake is done.
    @ivar started: how many times L{start} was called.
    @ivar received: what L{receive} was given, in order.
    @ivar written: what L{write} was given, in order.
    @ivar pending: what L{outgoing} returns next.
    @ivar greeting: the bytes L{start} makes pending (a ClientHello).
    @ivar completeOnReceive: the next L{receive} completes the handshake.
    @ivar reply: the bytes each L{receive} of the handshake makes pending.
    @ivar receiveError: raised by L{receive}, if set.
    @ivar writeError: raised by L{write}, if set.
    """

    def __init__(
        self,
        isClient: bool,
        greeting: bytes = b"",
        completeOnReceive: bool = False,
        reply: bytes = b"",
        receiveError: Exception | None = None,
        writeError: Exception | None = None,
    ) -> None:
        self.isClient = isClient
        self.handshakeComplete = False
        self.started = 0
        self.received: list[bytes] = []
        self.written: list[bytes] = []
        self.pending = b""
        self.greeting = greeting
        self.completeOnReceive = completeOnReceive
        self.reply = reply
        self.receiveError = receiveError
        self.writeError = writeError

    def start(self) -> None:
        self.started += 1
        self.pending += self.greeting

    def receive(self, data: bytes) -> bytes:
        self.received.append(data)
        if self.receiveError is not None:
            raise self.receiveError
        if self.handshakeComplete:
            return data
        self.pending += self.reply
        if self.completeOnReceive:
            self.handshakeComplete = True
        return b""

    def write(self, data: bytes) -> None:
        if self.writeError is not None:
            raise self.writeError
        self.written.append(data)
        self.pending += data

    def outgoing(self) -> bytes:
        out, self.pending = self.pending, b""
        return out


class Harness:
    """
    One tunnel machine with a L{RecordingIO} and L{FakeEngine}s.

    @ivar engineOptions: the keyword arguments of each new L{FakeEngine}.
    @ivar engines: the engines made, in order.
    @ivar answers: what the C{answer} of each L{receive} was called with.
    """

    def __init__(
        self,
        window: int = 8,
        chunkSize: int = 32 * 1024,
        maxStanzaSize: int = 256 * 1024,
        **engineOptions: object,
    ) -> None:
        self.io = RecordingIO()
        self.engineOptions = engineOptions
        self.engines: list[FakeEngine] = []
        self.answers: list[Optional[XTLSStanzaError]] = []
        self.core = TunnelCore(
            io=self.io,
            local=LOCAL,
            peer=PEER,
            makeEngine=self.makeEngine,  # type: ignore[arg-type]
            window=window,
            chunkSize=chunkSize,
            maxStanzaSize=maxStanzaSize,
        )
        self.machine: TunnelInputs = Tunnel(self.core)

    def makeEngine(self, isClient: bool) -> FakeEngine:
        engine = FakeEngine(isClient, **self.engineOptions)  # type: ignore[arg-type]
        self.engines.append(engine)
        return engine

    @property
    def engine(self) -> FakeEngine:
        """
        The engine the tunnel made.
        """
        [engine] = self.engines
        return engine

    def receive(self, payload: bytes, method: str | None = None) -> None:
        """
        A data IQ arrives.
        """
        self.machine.receive(Data(payload, method), self.answers.append)

    def reset(self) -> None:
        """
        Forget the calls and answers so far.
        """
        del self.io.calls[:]
        del self.answers[:]


def idle(**options: object) -> Harness:
    return Harness(**options)  # type: ignore[arg-type]


def awaitingProceed(**options: object) -> Harness:
    h = Harness(**options)  # type: ignore[arg-type]
    h.machine.initiate(None)
    h.reset()
    return h


def handshaking(**options: object) -> Harness:
    """
    A responder that accepted the start, its handshake not complete.
    """
    h = Harness(**options)  # type: ignore[arg-type]
    h.machine.accept()
    h.reset()
    return h


def established(**options: object) -> Harness:
    """
    A responder that answered the client's hello with its flight (which
    was acknowledged), then completed the handshake on the client's
    finished flight.
    """
    h = Harness(reply=b"server flight", **options)  # type: ignore[arg-type]
    h.machine.accept()
    h.receive(b"client hello", METHOD_X509)
    while not h.core.idle:
        h.machine.acknowledged()
    h.engine.completeOnReceive, h.engine.reply = True, b""
    h.receive(b"client finished")
    assert h.io.names()[-1] == "opened", h.io.calls
    h.reset()
    return h


def closing(**options: object) -> Harness:
    h = established(**options)
    h.machine.close()
    h.reset()
    return h


def closed(**options: object) -> Harness:
    h = Harness(**options)  # type: ignore[arg-type]
    h.machine.closeReceived()
    h.reset()
    return h


def message(body: str = "hi") -> domish.Element:
    stanza = domish.Element(("jabber:client", "message"))
    stanza.addElement("body", content=body)
    return stanza


class MachineTestCase(SynchronousTestCase):
    """
    Helpers to check where a machine is.
    """

    def stateOf(self, h: Harness) -> str:
        """
        Find the machine's state by its answers to two probes (which may
        change it): C{send} works only when established; C{receive} has
        no transition in C{idle}, is refused with C{unexpected-request}
        before proceed, fed to the engine while handshaking, acknowledged
        unread while closing and refused with C{item-not-found} once
        closed.
        """
        try:
            h.machine.send(message("probe"))
        except TunnelClosed:
            pass
        else:
            return "established"
        fed = sum(len(engine.received) for engine in h.engines)
        answers: list[Optional[XTLSStanzaError]] = []
        try:
            h.machine.receive(Data(b"probe"), answers.append)
        except NoTransition:
            return "idle"
        if sum(len(engine.received) for engine in h.engines) > fed:
            return "handshaking"
        [answer] = answers
        if answer is None:
            return "closing"
        return {"unexpected-request": "awaitingProceed", "item-not-found": "closed"}[
            answer.condition
        ]

    def assertState(self, h: Harness, state: str) -> None:
        """
        The machine is in C{state}.
        """
        self.assertEqual(self.stateOf(h), state)


class DiagramTests(SynchronousTestCase):
    """
    The diagram and the tests agree.
    """

    def test_everyTransitionTaken(self) -> None:
        """
        The tests of this module take each of the 44 transitions of
        C{docs/state-machines/xtls.dot}, and no other.
        """
        self.assertEqual(len(diagramTransitions()), 44)
        self.assertEqual(TAKEN, diagramTransitions())


class IdleTests(MachineTestCase):
    """
    A tunnel that nothing happened to yet.
    """

    @transition("idle", "initiate", "sendStart", "awaitingProceed")
    def test_initiate(self) -> None:
        """
        Initiating sends C{<start/>} with the offer given and makes no
        engine yet: the TLS client starts on proceed.
        """
        h = idle()
        offer = Offer(["abc"])
        h.machine.initiate(offer)
        self.assertEqual(h.io.calls, [("sendStart", offer)])
        self.assertEqual(h.engines, [])
        self.assertState(h, "awaitingProceed")

    @transition("idle", "accept", "startServer", "handshaking")
    def test_accept(self) -> None:
        """
        Accepting a start makes a server engine and starts it, and sends
        nothing: the initiator speaks first.
        """
        h = idle(greeting=b"")
        h.machine.accept()
        self.assertEqual(h.io.calls, [])
        self.assertFalse(h.engine.isClient)
        self.assertEqual(h.engine.started, 1)
        self.assertState(h, "handshaking")

    @transition("idle", "close", "finish", "closed")
    def test_close(self) -> None:
        """
        Closing a tunnel that was never started releases it at once, as an
        orderly close, with nothing sent.
        """
        h = idle()
        h.machine.close()
        self.assertEqual(h.io.calls, [("closed", None)])
        self.assertState(h, "closed")

    @transition("idle", "closeReceived", "finish", "closed")
    def test_closeReceived(self) -> None:
        """
        A C{<close/>} from the peer releases an idle tunnel as an orderly
        close.
        """
        h = idle()
        h.machine.closeReceived()
        self.assertEqual(h.io.calls, [("closed", None)])
        self.assertState(h, "closed")

    @transition("idle", "fail", "finishFailed", "closed")
    def test_fail(self) -> None:
        """
        A failure releases an idle tunnel with that failure as the reason.
        """
        h = idle()
        reason = XTLSError("gone")
        h.machine.fail(reason)
        self.assertEqual(h.io.calls, [("closed", reason)])
        self.assertState(h, "closed")

    @transition("idle", "send", "refuseSend", "idle")
    def test_send(self) -> None:
        """
        Sending on a tunnel not started raises L{TunnelClosed} and changes
        nothing.
        """
        h = idle()
        self.assertRaises(TunnelClosed, h.machine.send, message())
        self.assertEqual(h.io.calls, [])
        self.assertState(h, "idle")


class AwaitingProceedTests(MachineTestCase):
    """
    The initiator sent C{<start/>} and waits for C{<proceed/>}.
    """

    @transition("awaitingProceed", "proceed", "startClient", "handshaking")
    def test_proceed(self) -> None:
        """
        On proceed the initiator makes a client engine, starts it and sends
        its first flight in a data IQ that carries C{method='x509'}.
        """
        h = awaitingProceed(greeting=b"client hello")
        h.machine.proceed()
        self.assertTrue(h.engine.isClient)
        self.assertEqual(h.engine.started, 1)
        self.assertEqual(h.io.calls, [("sendData", Data(b"client hello", METHOD_X509))])
        self.assertState(h, "handshaking")

    def test_proceedEngineFails(self) -> None:
        """
        When the client engine cannot be made (a C{ValueError}, such as a
        peer domain IDNA cannot encode) or cannot start, the tunnel is
        released with that reason and nothing is sent.
        """
        for error in (ValueError("label too long"), HandshakeFailed("no protocols")):
            h = awaitingProceed()

            def broken(isClient: bool) -> FakeEngine:
                raise error

            h.core.makeEngine = broken  # type: ignore[assignment]
            h.machine.proceed()
            self.assertEqual(h.io.calls, [("closed", error)])
            self.assertState(h, "closed")

    @transition("awaitingProceed", "receive", "refuseEarlyData", "awaitingProceed")
    def test_receive(self) -> None:
        """
        Data before proceed is answered C{unexpected-request}, and the
        tunnel is then released with that error.
        """
        h = awaitingProceed()
        h.receive(b"early", METHOD_X509)
        [answer] = h.answers
        assert answer is not None
        self.assertEqual(answer.condition, "unexpected-request")
        self.assertEqual(h.io.calls, [("closed", answer)])
        self.assertEqual(h.engines, [])
        self.assertState(h, "closed")

    @transition("awaitingProceed", "send", "refuseSend", "awaitingProceed")
    def test_send(self) -> None:
        """
        Sending before the tunnel is open raises L{TunnelClosed}.
        """
        h = awaitingProceed()
        self.assertRaises(TunnelClosed, h.machine.send, message())
        self.assertEqual(h.io.calls, [])
        self.assertState(h, "awaitingProceed")

    @transition("awaitingProceed", "close", "sendClose", "closing")
    def test_close(self) -> None:
        """
        Closing while the start is unanswered sends C{<close/>} and waits
        for its answer.
        """
        h = awaitingProceed()
        h.machine.close()
        self.assertEqual(h.io.calls, [("sendClose",)])
        self.assertState(h, "closing")

    @transition("awaitingProceed", "closeReceived", "finish", "closed")
    def test_closeReceived(self) -> None:
        """
        A C{<close/>} from the peer releases the tunnel as an orderly close.
        """
        h = awaitingProceed()
        h.machine.closeReceived()
        self.assertEqual(h.io.calls, [("closed", None)])
        self.assertState(h, "closed")

    @transition("awaitingProceed", "fail", "finishFailed", "closed")
    def test_fail(self) -> None:
        """
        A failure (the start refused, say) releases the tunnel with it.
        """
        h = awaitingProceed()
        reason = XTLSStanzaError("not-acceptable")
        h.machine.fail(reason)
        self.assertEqual(h.io.calls, [("closed", reason)])
        self.assertState(h, "closed")


class HandshakingTests(MachineTestCase):
    """
    The TLS handshake runs.
    """

    @transition("handshaking", "receive", "feed", "handshaking")
    def test_receive(self) -> None:
        """
        A data IQ during the handshake is fed to the engine and
        acknowledged, and the engine's answer is sent (the first data IQ
        this end sends carries C{method}); the handshake is not complete,
        so nothing opens.
        """
        h = handshaking(reply=b"server flight")
        h.receive(b"client hello", METHOD_X509)
        self.assertEqual(h.engine.received, [b"client hello"])
        self.assertEqual(h.answers, [None])
        self.assertEqual(h.io.calls, [("sendData", Data(b"server flight", METHOD_X509))])
        self.assertState(h, "handshaking")

    @transition("handshaking", "acknowledged", "acknowledgedHandshake", "handshaking")
    def test_acknowledged(self) -> None:
        """
        An acknowledgement during the handshake frees a place in the window
        for the next queued data IQ; with the handshake incomplete nothing
        opens.
        """
        h = awaitingProceed(window=1, chunkSize=4, greeting=b"aaaabbbb")
        h.machine.proceed()
        self.assertEqual(h.io.sent(), [Data(b"aaaa", METHOD_X509)])
        h.reset()
        h.machine.acknowledged()
        self.assertEqual(h.io.calls, [("sendData", Data(b"bbbb"))])
        self.assertEqual(h.core.unacknowledged, 1)
        self.assertState(h, "handshaking")

    @transition("handshaking", "established", "announceOpen", "established")
    def test_established(self) -> None:
        """
        The internal C{established} input announces the tunnel open.
        """
        h = handshaking()
        h.machine.established()
        self.assertEqual(h.io.calls, [("opened",)])
        self.assertState(h, "established")

    @transition("handshaking", "send", "refuseSend", "handshaking")
    def test_send(self) -> None:
        """
        Sending during the handshake raises L{TunnelClosed}; the engine
        gets nothing.
        """
        h = handshaking()
        self.assertRaises(TunnelClosed, h.machine.send, message())
        self.assertEqual((h.io.calls, h.engine.written), ([], []))
        self.assertState(h, "handshaking")

    @transition("handshaking", "close", "sendClose", "closing")
    def test_close(self) -> None:
        """
        Closing during the handshake drops what was queued and sends
        C{<close/>}.
        """
        h = awaitingProceed(window=1, chunkSize=4, greeting=b"aaaabbbb")
        h.machine.proceed()
        self.assertEqual(h.core.queuedBytes, 4)
        h.reset()
        h.machine.close()
        self.assertEqual(h.io.calls, [("sendClose",)])
        self.assertEqual((list(h.core.queue), h.core.queuedBytes), ([], 0))
        self.assertState(h, "closing")

    @transition("handshaking", "closeReceived", "finish", "closed")
    def test_closeReceived(self) -> None:
        """
        A C{<close/>} from the peer releases the tunnel as an orderly close.
        """
        h = handshaking()
        h.machine.closeReceived()
        self.assertEqual(h.io.calls, [("closed", None)])
        self.assertState(h, "closed")

    @transition("handshaking", "fail", "finishFailed", "closed")
    def test_fail(self) -> None:
        """
        A failure releases the tunnel with it, never opened.
        """
        h = handshaking()
        reason = HandshakeFailed("alert")
        h.machine.fail(reason)
        self.assertEqual(h.io.calls, [("closed", reason)])
        self.assertState(h, "closed")


class EstablishedTests(MachineTestCase):
    """
    The tunnel is open.
    """

    @transition("established", "send", "encrypt", "established")
    def test_send(self) -> None:
        """
        A stanza is serialised without its content namespace, encrypted,
        and sent in a data IQ without C{method} (only the first carries
        it).
        """
        h = established()
        h.machine.send(message("secret"))
        payload = b"<message><body>secret</body></message>"
        self.assertEqual(h.engine.written, [payload])
        self.assertEqual(h.io.calls, [("sendData", Data(payload))])
        self.assertState(h, "established")

    def test_sendEngineFails(self) -> None:
        """
        When the engine cannot encrypt, the tunnel is released with the
        engine's error and nothing is sent.
        """
        h = established()
        reason = HandshakeFailed("bad record mac")
        h.engine.writeError = reason
        h.machine.send(message())
        self.assertEqual(h.io.calls, [("closed", reason)])
        self.assertState(h, "closed")

    @transition("established", "receive", "feed", "established")
    def test_receive(self) -> None:
        """
        A data IQ is acknowledged and its stanzas are delivered in order,
        with the missing C{from} and C{to} filled in from the tunnel and
        marked as encrypted.
        """
        h = established()
        h.receive(b"<message><body>1</body></message><iq type='get' id='q'/>")
        self.assertEqual(h.answers, [None])
        self.assertEqual(h.io.names(), ["deliver", "deliver"])
        first, second = (call[1] for call in h.io.calls)
        assert isinstance(first, domish.Element) and isinstance(second, domish.Element)
        self.assertEqual([first.name, second.name], ["message", "iq"])
        self.assertEqual((first["from"], first["to"]), (PEER.full(), LOCAL.full()))
        self.assertTrue(first.xtlsEncrypted)
        self.assertEqual(first.xtlsPeer, PEER)
        self.assertState(h, "established")

    @transition("established", "acknowledged", "acknowledgedData", "established")
    def test_acknowledged(self) -> None:
        """
        The acknowledgement of the last data IQ outstanding reports the
        tunnel drained.
        """
        h = established()
        h.machine.send(message())
        h.reset()
        h.machine.acknowledged()
        self.assertEqual(h.io.calls, [("drained",)])
        self.assertEqual(h.core.unacknowledged, 0)
        self.assertState(h, "established")

    @transition("established", "established", "nothing", "established")
    def test_established(self) -> None:
        """
        A second C{established} announces nothing again.
        """
        h = established()
        h.machine.established()
        self.assertEqual(h.io.calls, [])
        self.assertState(h, "established")

    @transition("established", "close", "sendClose", "closing")
    def test_close(self) -> None:
        """
        Closing an open tunnel drops what the window held back and sends
        C{<close/>}.
        """
        h = established(window=1)
        h.machine.send(message("1"))
        h.machine.send(message("2"))
        self.assertEqual(len(h.core.queue), 1)
        h.reset()
        h.machine.close()
        self.assertEqual(h.io.calls, [("sendClose",)])
        self.assertEqual((list(h.core.queue), h.core.queuedBytes), ([], 0))
        self.assertState(h, "closing")

    @transition("established", "closeReceived", "finish", "closed")
    def test_closeReceived(self) -> None:
        """
        A C{<close/>} from the peer releases the tunnel as an orderly close.
        """
        h = established()
        h.machine.closeReceived()
        self.assertEqual(h.io.calls, [("closed", None)])
        self.assertState(h, "closed")

    @transition("established", "fail", "finishFailed", "closed")
    def test_fail(self) -> None:
        """
        A failure (the peer went away, say) releases the tunnel with it.
        """
        h = established()
        reason = TunnelClosed("peer unavailable")
        h.machine.fail(reason)
        self.assertEqual(h.io.calls, [("closed", reason)])
        self.assertState(h, "closed")


class ClosingTests(MachineTestCase):
    """
    We sent C{<close/>} and wait for its answer.
    """

    @transition("closing", "closedReceived", "finish", "closed")
    def test_closedReceived(self) -> None:
        """
        The answer to our close releases the tunnel as an orderly close.
        """
        h = closing()
        h.machine.closedReceived()
        self.assertEqual(h.io.calls, [("closed", None)])
        self.assertState(h, "closed")

    @transition("closing", "closeReceived", "finish", "closed")
    def test_closeReceived(self) -> None:
        """
        The peer's own close, crossing ours, releases the tunnel too.
        """
        h = closing()
        h.machine.closeReceived()
        self.assertEqual(h.io.calls, [("closed", None)])
        self.assertState(h, "closed")

    @transition("closing", "fail", "finishFailed", "closed")
    def test_fail(self) -> None:
        """
        A failure while closing releases the tunnel with it.
        """
        h = closing()
        reason = XTLSError("timeout")
        h.machine.fail(reason)
        self.assertEqual(h.io.calls, [("closed", reason)])
        self.assertState(h, "closed")

    @transition("closing", "receive", "ignoreData", "closing")
    def test_receive(self) -> None:
        """
        Data still in flight is acknowledged but not decrypted or delivered.
        """
        h = closing()
        h.receive(b"<message/>")
        self.assertEqual(h.answers, [None])
        self.assertEqual(h.io.calls, [])
        self.assertEqual(h.engine.received, [b"client hello", b"client finished"])
        self.assertState(h, "closing")

    @transition("closing", "send", "refuseSend", "closing")
    def test_send(self) -> None:
        """
        Sending while closing raises L{TunnelClosed}.
        """
        h = closing()
        self.assertRaises(TunnelClosed, h.machine.send, message())
        self.assertEqual((h.io.calls, h.engine.written), ([], []))
        self.assertState(h, "closing")

    @transition("closing", "close", "nothing", "closing")
    def test_close(self) -> None:
        """
        Closing again sends no second C{<close/>}.
        """
        h = closing()
        h.machine.close()
        self.assertEqual(h.io.calls, [])
        self.assertState(h, "closing")

    @transition("closing", "acknowledged", "nothing", "closing")
    def test_acknowledged(self) -> None:
        """
        A late acknowledgement sends nothing more (the queue was dropped)
        and reports nothing.
        """
        h = established(window=1)
        h.machine.send(message("1"))
        h.machine.send(message("2"))
        h.machine.close()
        h.reset()
        h.machine.acknowledged()
        self.assertEqual(h.io.calls, [])
        self.assertState(h, "closing")

    @transition("closing", "established", "nothing", "closing")
    def test_established(self) -> None:
        """
        A late C{established} does not announce the tunnel open.
        """
        h = closing()
        h.machine.established()
        self.assertEqual(h.io.calls, [])
        self.assertState(h, "closing")

    @transition("closing", "proceed", "nothing", "closing")
    def test_proceed(self) -> None:
        """
        A proceed arriving after we closed starts no engine.
        """
        h = awaitingProceed()
        h.machine.close()
        h.reset()
        h.machine.proceed()
        self.assertEqual((h.io.calls, h.engines), ([], []))
        self.assertState(h, "closing")


class ClosedTests(MachineTestCase):
    """
    The tunnel is released: late events change nothing, and the
    L{TunnelIO} hears of the end once.
    """

    @transition("closed", "receive", "refuseData", "closed")
    def test_receive(self) -> None:
        """
        Data for a released tunnel is answered C{item-not-found}.
        """
        h = closed()
        h.receive(b"late")
        [answer] = h.answers
        assert answer is not None
        self.assertEqual(answer.condition, "item-not-found")
        self.assertEqual(h.io.calls, [])
        self.assertState(h, "closed")

    @transition("closed", "send", "refuseSend", "closed")
    def test_send(self) -> None:
        """
        Sending on a released tunnel raises L{TunnelClosed}.
        """
        h = closed()
        self.assertRaises(TunnelClosed, h.machine.send, message())
        self.assertEqual(h.io.calls, [])
        self.assertState(h, "closed")

    @transition("closed", "acknowledged", "nothing", "closed")
    def test_acknowledged(self) -> None:
        """
        A late acknowledgement does nothing.
        """
        h = closed()
        h.machine.acknowledged()
        self.assertEqual(h.io.calls, [])
        self.assertState(h, "closed")

    @transition("closed", "close", "nothing", "closed")
    def test_close(self) -> None:
        """
        Closing a released tunnel sends nothing and reports nothing.
        """
        h = closed()
        h.machine.close()
        self.assertEqual(h.io.calls, [])
        self.assertState(h, "closed")

    @transition("closed", "closeReceived", "nothing", "closed")
    def test_closeReceived(self) -> None:
        """
        A second C{<close/>} from the peer reports nothing again.
        """
        h = closed()
        h.machine.closeReceived()
        self.assertEqual(h.io.calls, [])
        self.assertState(h, "closed")

    @transition("closed", "closedReceived", "nothing", "closed")
    def test_closedReceived(self) -> None:
        """
        The answer to a close that arrives after the peer's own close
        reports nothing again.
        """
        h = closed()
        h.machine.closedReceived()
        self.assertEqual(h.io.calls, [])
        self.assertState(h, "closed")

    @transition("closed", "established", "nothing", "closed")
    def test_established(self) -> None:
        """
        A late C{established} does not announce the tunnel open.
        """
        h = closed()
        h.machine.established()
        self.assertEqual(h.io.calls, [])
        self.assertState(h, "closed")

    @transition("closed", "fail", "nothingWith", "closed")
    def test_fail(self) -> None:
        """
        A failure after the end is not reported: the first reason stands.
        """
        h = closed()
        h.machine.fail(XTLSError("late"))
        self.assertEqual(h.io.calls, [])
        self.assertState(h, "closed")

    @transition("closed", "proceed", "nothing", "closed")
    def test_proceed(self) -> None:
        """
        A proceed for a released tunnel starts no engine.
        """
        h = closed()
        h.machine.proceed()
        self.assertEqual((h.io.calls, h.engines), ([], []))
        self.assertState(h, "closed")


class WindowTests(MachineTestCase):
    """
    How TLS bytes become data IQs: chunks, a window of unacknowledged IQs,
    a queue behind it.
    """

    def test_chunks(self) -> None:
        """
        The engine's output is cut into data IQs of at most C{chunkSize}
        bytes, in order; only the first IQ of the tunnel carries C{method}.
        """
        h = awaitingProceed(chunkSize=4, greeting=b"0123456789")
        h.machine.proceed()
        self.assertEqual(
            h.io.sent(), [Data(b"0123", METHOD_X509), Data(b"4567"), Data(b"89")]
        )
        self.assertEqual(h.core.unacknowledged, 3)

    def test_window(self) -> None:
        """
        No more than C{window} data IQs are unacknowledged; the rest waits
        in the queue (counted in C{queuedBytes}) and goes out, in order,
        one per acknowledgement. The tunnel is drained only when the last
        one is acknowledged.
        """
        h = established(window=2, chunkSize=10)
        stanza = message("x" * 25)
        h.machine.send(stanza)
        total = len(stanza.toXml(defaultUri="jabber:client").encode())
        self.assertEqual(len(h.io.sent()), 2)
        self.assertEqual(h.core.queuedBytes, total - 20)
        while h.core.queue:
            h.machine.acknowledged()
        h.machine.acknowledged()
        self.assertNotIn("drained", h.io.names())
        h.machine.acknowledged()
        self.assertEqual(h.io.names()[-1], "drained")
        self.assertEqual(h.io.names().count("drained"), 1)
        sent = h.io.sent()
        self.assertEqual(b"".join(d.payload for d in sent), h.engine.written[0])
        self.assertTrue(all(len(d.payload) <= 10 for d in sent))
        self.assertEqual((h.core.queuedBytes, h.core.unacknowledged), (0, 0))


class HandshakeVerdictTests(MachineTestCase):
    """
    The tunnel opens only once the handshake is complete I{and} the peer
    acknowledged every data IQ we sent: in TLS 1.3 the client finishes
    before the server has checked the client's certificate.
    """

    def client(self) -> Harness:
        """
        An initiator whose engine completes the handshake on the server's
        flight and answers it with a last flight.
        """
        h = awaitingProceed(greeting=b"hello", completeOnReceive=True, reply=b"finished")
        h.machine.proceed()
        h.machine.acknowledged()
        h.reset()
        h.receive(b"server flight")
        return h

    def test_waitsForLastAcknowledgement(self) -> None:
        """
        With the handshake complete at this end but the last flight
        unacknowledged, the tunnel is not open; the acknowledgement opens
        it.
        """
        h = self.client()
        self.assertTrue(h.engine.handshakeComplete)
        self.assertEqual(h.io.calls, [("sendData", Data(b"finished"))])
        self.assertNotIn("opened", h.io.names())
        h.machine.acknowledged()
        self.assertEqual(h.io.names()[-1], "opened")
        self.assertState(h, "established")

    def test_waitsForEveryAcknowledgement(self) -> None:
        """
        A last flight carried by several data IQs opens the tunnel only when
        the last of them is acknowledged, not the first.
        """
        h = awaitingProceed(chunkSize=4, greeting=b"helo", completeOnReceive=True, reply=b"finished")
        h.machine.proceed()
        h.machine.acknowledged()
        h.receive(b"server flight")
        self.assertEqual(h.io.sent()[1:], [Data(b"fini"), Data(b"shed")])
        h.machine.acknowledged()
        self.assertNotIn("opened", h.io.names())
        h.machine.acknowledged()
        self.assertEqual(h.io.names()[-1], "opened")

    def test_refusedLastFlight(self) -> None:
        """
        An error answering the last flight (the server refused the client's
        certificate) releases the tunnel with that error; it never opened.
        """
        h = self.client()
        reason = XTLSStanzaError("not-acceptable", "certificate")
        h.machine.fail(reason)
        self.assertEqual(h.io.names(), ["sendData", "closed"])
        self.assertIs(h.io.calls[-1][1], reason)
        self.assertState(h, "closed")

    def test_serverOpensOnCompletion(self) -> None:
        """
        The responder, whose last flight was acknowledged before the
        client's last flight arrived, opens as soon as the handshake
        completes, without sending anything more.
        """
        h = handshaking(reply=b"server flight")
        h.receive(b"hello", METHOD_X509)
        h.machine.acknowledged()
        h.engine.completeOnReceive = True
        h.engine.reply = b""
        h.reset()
        h.receive(b"client finished")
        self.assertEqual(h.io.calls, [("opened",)])
        self.assertEqual(h.answers, [None])


class FeedErrorTests(MachineTestCase):
    """
    What a data IQ that cannot be processed is answered with; every such
    error releases the tunnel.
    """

    def assertRefused(self, h: Harness, condition: str) -> Exception | None:
        [answer] = h.answers
        assert answer is not None
        self.assertEqual(answer.condition, condition)
        self.assertEqual(h.io.names(), ["closed"])
        self.assertState(h, "closed")
        reason = h.io.calls[0][1]
        assert reason is None or isinstance(reason, Exception)
        return reason

    def test_otherMethod(self) -> None:
        """
        A C{method} other than x509 is answered C{feature-not-implemented}
        without reaching the engine.
        """
        h = handshaking()
        h.receive(b"hello", "srp")
        self.assertRefused(h, "feature-not-implemented")
        self.assertEqual(h.engine.received, [])

    def test_certificateMismatch(self) -> None:
        """
        The engine refusing the peer's certificate is answered
        C{not-acceptable}; the tunnel is released with the
        L{CertificateMismatch}.
        """
        h = handshaking()
        mismatch = CertificateMismatch(PEER.full(), "no XmppAddr")
        h.engine.receiveError = mismatch
        h.receive(b"client flight", METHOD_X509)
        self.assertIs(self.assertRefused(h, "not-acceptable"), mismatch)

    def test_handshakeFailed(self) -> None:
        """
        Any other TLS failure is answered C{not-acceptable} too.
        """
        h = established()
        h.engine.receiveError = HandshakeFailed("bad record mac")
        h.receive(b"garbage")
        self.assertRefused(h, "not-acceptable")

    def test_badInnerXML(self) -> None:
        """
        Decrypted content that is not allowed XML (a comment) is answered
        C{bad-request}, and nothing of it is delivered.
        """
        h = established()
        h.receive(b"<message/><!-- no -->")
        self.assertRefused(h, "bad-request")
        self.assertNotIn("deliver", h.io.names())

    def test_innerStanzaTooLarge(self) -> None:
        """
        A stanza inside over C{maxStanzaSize} is answered
        C{policy-violation}.
        """
        h = established(maxStanzaSize=100)
        h.receive(b"<message><body>" + b"x" * 200 + b"</body></message>")
        self.assertRefused(h, "policy-violation")


class DeliveryTests(MachineTestCase):
    """
    What stanzas from inside a tunnel reach the L{TunnelIO}.
    """

    def delivered(self, h: Harness) -> list[domish.Element]:
        return [call[1] for call in h.io.calls if call[0] == "deliver"]  # type: ignore[misc]

    def test_split(self) -> None:
        """
        A stanza split over several data IQs is delivered once, when
        complete.
        """
        h = established()
        h.receive(b"<message><bo")
        self.assertEqual(self.delivered(h), [])
        h.receive(b"dy>x</body></message>")
        [stanza] = self.delivered(h)
        self.assertEqual(str(stanza.body), "x")
        self.assertEqual(h.answers, [None, None])

    def test_otherSender(self) -> None:
        """
        A stanza claiming another bare JID than the peer's is not delivered
        (it would borrow the tunnel's authentication); one from another
        resource of the peer is, with its addresses kept.
        """
        h = established()
        h.receive(
            b"<message from='mallory@m.example/x'/>"
            b"<message from='bob@b.example/phone' to='alice@a.example'/>"
        )
        [stanza] = self.delivered(h)
        self.assertEqual((stanza["from"], stanza["to"]), ("bob@b.example/phone", "alice@a.example"))
        self.assertEqual(h.answers, [None])
        self.assertState(h, "established")


class ReentrancyTests(MachineTestCase):
    """
    An L{TunnelIO} may answer synchronously (a synchronous XML pipe): the
    input it makes while an output runs is handled right after.
    """

    def test_synchronousAcknowledgement(self) -> None:
        """
        A C{sendData} that acknowledges at once leaves the tunnel drained,
        with nothing outstanding.
        """
        h = established()
        original = h.io.sendData

        def sendData(data: Data) -> None:
            original(data)
            h.machine.acknowledged()

        h.io.sendData = sendData  # type: ignore[method-assign]
        h.machine.send(message())
        self.assertEqual(h.io.names(), ["sendData", "drained"])
        self.assertEqual(h.core.unacknowledged, 0)

    def test_synchronousCloseAnswer(self) -> None:
        """
        A C{sendClose} answered at once releases the tunnel as an orderly
        close.
        """
        h = established()
        original = h.io.sendClose

        def sendClose() -> None:
            original()
            h.machine.closedReceived()

        h.io.sendClose = sendClose  # type: ignore[method-assign]
        h.machine.close()
        self.assertEqual(h.io.calls, [("sendClose",), ("closed", None)])
        self.assertState(h, "closed")


# Two machines with real TLS engines.

_AUTHORITY = makeCertificateAuthority()
_ALICE = _AUTHORITY.issue(xmppAddrs=["alice@a.example"], client=True)
_BOB = _AUTHORITY.issue(xmppAddrs=["bob@b.example"], client=True)
_MALLORY = _AUTHORITY.issue(xmppAddrs=["mallory@m.example"], client=True)


class PipeIO:
    """
    The L{TunnelIO} of one end of a L{Pipe}: each IQ and its answer is a
    step of the pipe's queue, as a stream would deliver them.
    """

    def __init__(self, pipe: Pipe, name: str) -> None:
        self.pipe = pipe
        self.name = name
        self.events: list[tuple[object, ...]] = []

    @property
    def machine(self) -> TunnelInputs:
        return self.pipe.machines[self.name]

    @property
    def other(self) -> TunnelInputs:
        return self.pipe.machines["bob" if self.name == "alice" else "alice"]

    def sendStart(self, offer: Offer | None) -> None:
        def start() -> None:
            self.other.accept()
            self.pipe.later(self.machine.proceed)

        self.pipe.later(start)

    def sendData(self, data: Data) -> None:
        def answer(problem: XTLSStanzaError | None) -> None:
            if problem is None:
                self.pipe.later(self.machine.acknowledged)
            else:
                self.pipe.later(lambda: self.machine.fail(problem))

        self.pipe.later(lambda: self.other.receive(data, answer))

    def sendClose(self) -> None:
        def close() -> None:
            self.other.closeReceived()
            self.pipe.later(self.machine.closedReceived)

        self.pipe.later(close)

    def deliver(self, stanza: domish.Element) -> None:
        self.events.append(("deliver", stanza))

    def opened(self) -> None:
        self.events.append(("opened",))

    def drained(self) -> None:
        self.events.append(("drained",))

    def closed(self, reason: Exception | None) -> None:
        self.events.append(("closed", reason))


class Pipe:
    """
    Alice (the initiator, the TLS client) and Bob (the responder), each a
    tunnel machine with a real L{TLSEngine}, joined by a queue of IQs.
    """

    def __init__(
        self,
        aliceCertificate: object = _ALICE,
        bobCertificate: object = _BOB,
        chunkSize: int = 32 * 1024,
        window: int = 8,
    ) -> None:
        self.queue: deque[Callable[[], None]] = deque()
        self.io = {"alice": PipeIO(self, "alice"), "bob": PipeIO(self, "bob")}
        self.jids = {"alice": JID("alice@a.example/home"), "bob": JID("bob@b.example/work")}
        self.cores = {}
        certificates = {"alice": aliceCertificate, "bob": bobCertificate}
        for name, other in (("alice", "bob"), ("bob", "alice")):
            self.cores[name] = TunnelCore(
                io=self.io[name],
                local=self.jids[name],
                peer=self.jids[other],
                makeEngine=self.engineMaker(certificates[name], self.jids[other]),
                window=window,
                chunkSize=chunkSize,
            )
        self.machines = {name: Tunnel(core) for name, core in self.cores.items()}

    def engineMaker(self, certificate: object, peer: JID) -> Callable[[bool], TLSEngine]:
        def make(isClient: bool) -> TLSEngine:
            context = makeContext(
                certificate.original.to_cryptography(),  # type: ignore[attr-defined]
                certificate.privateKey.original.to_cryptography_key(),  # type: ignore[attr-defined]
                [_AUTHORITY.certificate.original.to_cryptography()],
                isClient,
            )
            return TLSEngine(context, isClient, peer)

        return make

    def later(self, step: Callable[[], None]) -> None:
        self.queue.append(step)

    def run(self) -> None:
        """
        Deliver everything, the answers that follow included.
        """
        while self.queue:
            self.queue.popleft()()

    def events(self, name: str) -> list[object]:
        return [event[0] for event in self.io[name].events]

    def open(self) -> None:
        self.machines["alice"].initiate(None)
        self.run()


class RealTLSTests(SynchronousTestCase):
    """
    Two tunnel machines with real TLS engines (certificates made by
    L{xmppcomp.testing}), their IQs carried by a queue.
    """

    def test_open(self) -> None:
        """
        The initiator is the TLS client and the responder the server; both
        ends open, once, and see each other's certificate.
        """
        pipe = Pipe()
        pipe.open()
        self.assertEqual(pipe.events("alice"), ["opened"])
        self.assertEqual(pipe.events("bob"), ["opened"])
        alice, bob = pipe.cores["alice"].engine, pipe.cores["bob"].engine
        assert alice is not None and bob is not None
        self.assertTrue(alice.isClient)
        self.assertFalse(bob.isClient)
        self.assertIn(alice.protocolVersion(), ("TLSv1.2", "TLSv1.3"))
        self.assertEqual(alice.peerCertificate(), _BOB.original.to_cryptography())
        self.assertEqual(bob.peerCertificate(), _ALICE.original.to_cryptography())

    def test_stanzas(self) -> None:
        """
        A stanza sent by either end arrives at the other with the tunnel's
        addresses filled in, marked as encrypted, and the sender is drained.
        """
        pipe = Pipe()
        pipe.open()
        pipe.machines["alice"].send(message("to bob"))
        pipe.machines["bob"].send(message("to alice"))
        pipe.run()
        for name, sender, body in (
            ("bob", "alice@a.example/home", "to bob"),
            ("alice", "bob@b.example/work", "to alice"),
        ):
            [stanza] = [e[1] for e in pipe.io[name].events if e[0] == "deliver"]
            assert isinstance(stanza, domish.Element)
            self.assertEqual((str(stanza.body), stanza["from"]), (body, sender))
            self.assertTrue(stanza.xtlsEncrypted)
            self.assertEqual(pipe.events(name)[-1], "drained")

    def test_largeStanza(self) -> None:
        """
        A stanza much larger than a data IQ, sent through a small window,
        arrives whole.
        """
        pipe = Pipe(chunkSize=1000, window=2)
        pipe.open()
        body = "y" * 100_000
        pipe.machines["alice"].send(message(body))
        pipe.run()
        [stanza] = [e[1] for e in pipe.io["bob"].events if e[0] == "deliver"]
        assert isinstance(stanza, domish.Element)
        self.assertEqual(str(stanza.body), body)

    def test_close(self) -> None:
        """
        A close from either end releases both ends as an orderly close.
        """
        pipe = Pipe()
        pipe.open()
        pipe.machines["bob"].close()
        pipe.run()
        self.assertEqual(pipe.io["alice"].events[-1], ("closed", None))
        self.assertEqual(pipe.io["bob"].events[-1], ("closed", None))
        self.assertRaises(TunnelClosed, pipe.machines["alice"].send, message())

    def test_responderRefusesInitiator(self) -> None:
        """
        The responder refuses a client certificate that does not name the
        initiator: it answers C{not-acceptable} and closes with the
        L{CertificateMismatch}. The initiator, whose TLS 1.3 handshake
        completed at its end, learns it from that answer: it closes with
        the error and never reports the tunnel open.
        """
        pipe = Pipe(aliceCertificate=_MALLORY)
        pipe.open()
        self.assertEqual(pipe.events("alice"), ["closed"])
        self.assertEqual(pipe.events("bob"), ["closed"])
        bobReason = pipe.io["bob"].events[0][1]
        self.assertIsInstance(bobReason, CertificateMismatch)
        aliceReason = pipe.io["alice"].events[0][1]
        assert isinstance(aliceReason, XTLSStanzaError)
        self.assertEqual(aliceReason.condition, "not-acceptable")

    def test_initiatorRefusesResponder(self) -> None:
        """
        The initiator refuses a server certificate that does not name the
        responder: it answers the responder's flight C{not-acceptable} and
        closes with the L{CertificateMismatch}; the responder closes with
        the error. Neither end opens.
        """
        pipe = Pipe(bobCertificate=_MALLORY)
        pipe.open()
        self.assertEqual(pipe.events("alice"), ["closed"])
        self.assertEqual(pipe.events("bob"), ["closed"])
        self.assertIsInstance(pipe.io["alice"].events[0][1], CertificateMismatch)
        bobReason = pipe.io["bob"].events[0][1]
        assert isinstance(bobReason, XTLSStanzaError)
        self.assertEqual(bobReason.condition, "not-acceptable")


class EmptyDataTests(SynchronousTestCase):
    """
    An empty data IQ on an open tunnel.
    """

    def test_tunnelEmptyData(self) -> None:
        """
        It is answered (acknowledged or refused with a stanza error), never
        left to escape as an OpenSSL exception.
        """
        pipe = Pipe()
        pipe.open()
        answers: list[object] = []
        pipe.machines["bob"].receive(Data(b""), answers.append)
        self.assertEqual(len(answers), 1)
