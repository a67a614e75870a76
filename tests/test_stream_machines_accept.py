# -*- test-case-name: tests.test_stream_machines_accept -*-
"""
Table tests of the XEP-0114 machines,
L{xmppcomp.stream.acceptreceiving.AcceptMachine} and
L{xmppcomp.stream.accept.AcceptInitiatingMachine}: for each (state, input)
of their tables, the actions a L{RecordingIO} records and the next state.
Every transition of each table is taken by a test below
(L{CoverageTests} checks it), and every refusal condition.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any

from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.error import StreamError
from twisted.words.xish import domish

from xmppcomp.errors import NegotiationError
from xmppcomp.ns import NS_COMPONENT_ACCEPT, NS_STREAMS
from xmppcomp.stream.accept import AcceptInitiatingMachine
from xmppcomp.stream.acceptreceiving import AcceptMachine
from xmppcomp.stream.initiating import NegotiationResult
from xmppcomp.stream.limits import AuthFailureLimiter
from xmppcomp.stream.machine import OurHeader

from . import machinehelpers
from .machinehelpers import (
    MachineTestCase,
    RecordingIO,
    Transition,
    described,
    internetNamesUsedBy,
    parse,
    parseHeader,
    rowsNotTaken,
    transitionsOf,
)

HOSTNAME = "comp.example.net"
SECRET = "s3cret-shared-with-the-component"
SECRETS = {HOSTNAME: SECRET}
STREAM_ID = "4f2a9c1e-stream"
ACCEPT = NS_COMPONENT_ACCEPT

#: The transitions the tests below take: (table, state, input, behaviour,
#: next state).
TAKEN: set[Transition] = set()

#: Mark a test as taking (state, input, next state) transitions of a table.
takes = functools.partial(machinehelpers.takes, TAKEN)


def sha1Hex(text: str) -> str:
    """
    The hex SHA-1 of C{text}, computed without the code under test.
    """
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def componentHeader(to: str | None = HOSTNAME, namespace: str = ACCEPT, prefix: str = "stream") -> domish.Element:
    """
    The root of a component's stream header.
    """
    toAttribute = "" if to is None else " to='%s'" % (to,)
    return parseHeader(
        "<%s:stream xmlns='%s' xmlns:%s='%s'%s>" % (prefix, namespace, prefix, NS_STREAMS, toAttribute)
    )


def serverHeader(streamId: str | None = STREAM_ID, namespace: str = ACCEPT, prefix: str = "stream") -> domish.Element:
    """
    The root of a server's answer to a component.
    """
    idAttribute = "" if streamId is None else " id='%s'" % (streamId,)
    return parseHeader(
        "<%s:stream xmlns='%s' xmlns:%s='%s' from='%s'%s>"
        % (prefix, namespace, prefix, NS_STREAMS, HOSTNAME, idAttribute)
    )


# The receiving side.


class AcceptMachineTests(MachineTestCase):
    """
    L{AcceptMachine}: the router side of XEP-0114.
    """

    table = AcceptMachine.table

    def machine(
        self,
        secrets: Callable[[str], str | None] = SECRETS.get,
        limiter: AuthFailureLimiter | None = None,
        state: str = "header",
    ) -> tuple[AcceptMachine, RecordingIO]:
        """
        A machine in C{state} (reached through its inputs), and its IO with
        nothing recorded.
        """
        io = RecordingIO(now=100.0)
        machine = AcceptMachine(io, secrets, limiter, 30.0)
        if state != "header":
            machine.connected()
            if state == "refused":
                machine.timedOut()
            else:
                machine.header(componentHeader())
                if state == "complete":
                    machine.element(self.handshakeFor(machine))
        self.assertEqual(machine.state, state)
        io.take()
        return machine, io

    def handshakeFor(self, machine: AcceptMachine, secret: str = SECRET) -> domish.Element:
        assert machine.streamId is not None
        return parse("<handshake>%s</handshake>" % (sha1Hex(machine.streamId + secret),), ACCEPT)

    def blockedLimiter(self) -> AuthFailureLimiter:
        limiter = AuthFailureLimiter(maxFailures=2, window=60.0)
        limiter.failed("1.2.3.4", 100.0)
        limiter.failed("1.2.3.4", 100.0)
        return limiter

    def assertRefused(self, io: RecordingIO, condition: str, text: str | None, header: bool = False) -> None:
        expected: list[tuple[Any, ...]] = []
        if header:
            expected.append(("describe", OurHeader(ACCEPT, (0, 0), id=None)))
        expected += [("cancelTimer",), ("countRefusal", condition), ("refuse", condition, text)]
        actions = io.take()
        if header:
            # The header of the refusal carries the stream id chosen.
            self.assertEqual(actions[0][0], "describe")
            expected[0] = ("describe", OurHeader(ACCEPT, (0, 0), id=actions[0][1].id))
        self.assertEqual(actions, expected)

    @takes(AcceptMachine.table, ("header", "connected", "header"))
    def test_connected(self) -> None:
        """
        A connection starts the negotiation timeout.
        """
        machine, io = self.machine()
        self.step(machine, "connected")
        self.assertEqual(io.take(), [("startTimer", 30.0)])
        self.assertEqual(machine.started, 100.0)
        self.assertEqual(machine.state, "header")

    @takes(AcceptMachine.table, ("header", "connected", "refused"))
    def test_connectedBlocked(self) -> None:
        """
        A connection from a source that failed too often is refused at once
        with C{policy-violation}, under our header, without a timer.
        """
        machine, io = self.machine(limiter=self.blockedLimiter())
        self.step(machine, "connected")
        actions = io.take()
        self.assertEqual(actions[0], ("describe", OurHeader(ACCEPT, (0, 0))))
        self.assertEqual(actions[1:3], [("cancelTimer",), ("countRefusal", "policy-violation")])
        self.assertEqual(actions[3][:2], ("refuse", "policy-violation"))
        self.assertIn("handshakes", actions[3][2])
        self.assertIsNone(io.timer)
        self.assertEqual(machine.state, "refused")

    @takes(AcceptMachine.table, ("header", "header", "handshake"))
    def test_header(self) -> None:
        """
        A good header gets ours: from the normalised hostname, with a fresh
        id and no version; the secret is kept for the handshake.
        """
        looked: list[str] = []

        def lookup(hostname: str) -> str | None:
            looked.append(hostname)
            return SECRETS.get(hostname)

        machine, io = self.machine(secrets=lookup)
        machine.connected()
        io.take()
        self.step(machine, "header", componentHeader(to="Comp.EXAMPLE.net"))
        assert machine.streamId is not None
        self.assertGreaterEqual(len(machine.streamId), 32)
        self.assertEqual(io.take(), [("sendHeader", OurHeader(ACCEPT, (0, 0), ours=HOSTNAME, id=machine.streamId))])
        self.assertEqual(looked, [HOSTNAME])
        self.assertEqual(machine.secret, SECRET)
        self.assertIsNone(machine.hostname)
        self.assertEqual(machine.state, "handshake")

    def refuseHeader(self, root: domish.Element, condition: str, text: str, **kwargs: Any) -> AcceptMachine:
        machine, io = self.machine(**kwargs)
        machine.connected()
        io.take()
        self.step(machine, "header", root)
        self.assertRefused(io, condition, text, header=True)
        self.assertEqual(machine.state, "refused")
        self.assertIsNone(machine.secret)
        return machine

    @takes(AcceptMachine.table, ("header", "header", "refused"))
    def test_headerInvalidNamespace(self) -> None:
        """
        A header of another namespace is refused with C{invalid-namespace}.
        """
        self.refuseHeader(componentHeader(namespace="jabber:client"), "invalid-namespace", "bad stream header")

    @takes(AcceptMachine.table, ("header", "header", "refused"))
    def test_headerBadPrefix(self) -> None:
        """
        The streams namespace under another prefix is refused with
        C{bad-namespace-prefix}.
        """
        self.refuseHeader(componentHeader(prefix="s"), "bad-namespace-prefix", "bad stream header")

    @takes(AcceptMachine.table, ("header", "header", "refused"))
    def test_headerNotAHostname(self) -> None:
        """
        A missing C{to}, or one that is not a hostname, is refused with
        C{host-unknown} without a lookup.
        """

        def lookup(hostname: str) -> str | None:
            raise AssertionError("looked up")

        for to in [None, "user@" + HOSTNAME]:
            machine = self.refuseHeader(componentHeader(to=to), "host-unknown", "bad stream header", secrets=lookup)
            self.assertEqual(machine.requested, to)

    @takes(AcceptMachine.table, ("header", "header", "refused"))
    def test_headerUnknownHost(self) -> None:
        """
        A hostname without a secret is refused with C{host-unknown}.
        """
        self.refuseHeader(componentHeader(to="unknown.example.net"), "host-unknown", "no component with this hostname")

    @takes(AcceptMachine.table, ("header", "header", "refused"))
    def test_headerLookupFails(self) -> None:
        """
        A secret lookup that raises is refused with
        C{internal-server-error}, and logged.
        """

        def broken(hostname: str) -> str | None:
            raise RuntimeError("database down")

        self.refuseHeader(componentHeader(), "internal-server-error", "secret lookup failed", secrets=broken)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    @takes(AcceptMachine.table, ("refused", "header", "refused"))
    def test_headerAfterRefusal(self) -> None:
        """
        The header of a stream refused at connection is not answered.
        """
        machine, io = self.machine(limiter=self.blockedLimiter())
        machine.connected()
        io.take()
        self.step(machine, "header", componentHeader())
        self.assertEqual(io.take(), [])
        self.assertEqual(machine.state, "refused")

    @takes(AcceptMachine.table, ("handshake", "element", "complete"))
    def test_handshake(self) -> None:
        """
        The right handshake (any hex case, surrounded by whitespace) is
        answered with an empty C{<handshake/>}; negotiation succeeds and
        the secret is forgotten.
        """
        machine, io = self.machine(state="handshake")
        assert machine.streamId is not None
        digest = sha1Hex(machine.streamId + SECRET).upper()
        consumed = self.step(machine, "element", parse("<handshake>\n %s\n</handshake>" % (digest,), ACCEPT))
        self.assertTrue(consumed)
        self.assertEqual(
            io.take(),
            [("cancelTimer",), ("send", "<handshake xmlns='%s'/>" % (ACCEPT,)), ("succeeded", None)],
        )
        self.assertEqual(machine.hostname, HOSTNAME)
        self.assertIsNone(machine.secret)
        self.assertEqual(machine.state, "complete")

    @takes(AcceptMachine.table, ("handshake", "element", "refused"))
    def test_wrongHandshake(self) -> None:
        """
        A wrong handshake is refused with C{not-authorized} and counted
        against the source; the secret is forgotten.
        """
        limiter = AuthFailureLimiter(maxFailures=1, window=60.0)
        machine, io = self.machine(limiter=limiter, state="handshake")
        self.assertTrue(self.step(machine, "element", self.handshakeFor(machine, "wrong")))
        self.assertRefused(io, "not-authorized", "wrong handshake")
        self.assertIsNone(machine.secret)
        self.assertIsNotNone(limiter.refusal("1.2.3.4", 100.0, "handshakes"))
        self.assertIsNone(machine.hostname)

    @takes(AcceptMachine.table, ("handshake", "element", "refused"))
    def test_handshakeBlocked(self) -> None:
        """
        A handshake from a source that failed too often meanwhile is
        refused with C{policy-violation}, unchecked.
        """
        limiter = AuthFailureLimiter(maxFailures=1, window=60.0)
        machine, io = self.machine(limiter=limiter, state="handshake")
        limiter.failed("1.2.3.4", 100.0)
        self.assertTrue(self.step(machine, "element", self.handshakeFor(machine)))
        actions = io.take()
        self.assertEqual(actions[:2], [("cancelTimer",), ("countRefusal", "policy-violation")])
        self.assertEqual(actions[2][:2], ("refuse", "policy-violation"))
        self.assertEqual(len(actions), 3)
        self.assertIsNone(machine.hostname)

    @takes(AcceptMachine.table, ("handshake", "element", "refused"))
    def test_stanzaBeforeHandshake(self) -> None:
        """
        A stanza before the handshake is refused with C{not-authorized}.
        """
        for stanza in ["<message/>", "<presence/>", "<iq type='get' id='1'/>"]:
            machine, io = self.machine(state="handshake")
            self.assertTrue(self.step(machine, "element", parse(stanza, ACCEPT)))
            self.assertRefused(io, "not-authorized", "stanza before the handshake")
            self.assertIsNone(machine.secret)

    @takes(AcceptMachine.table, ("handshake", "element", "refused"))
    def test_otherElement(self) -> None:
        """
        Any other element, a handshake of another namespace included, is
        refused with C{unsupported-stanza-type}.
        """
        for xml, namespace, name in [
            ("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", "urn:ietf:params:xml:ns:xmpp-tls", "starttls"),
            ("<handshake xmlns='urn:example:other'>00</handshake>", "urn:example:other", "handshake"),
            ("<route/>", ACCEPT, "route"),
        ]:
            machine, io = self.machine(state="handshake")
            self.assertTrue(self.step(machine, "element", parse(xml, ACCEPT)))
            self.assertRefused(
                io, "unsupported-stanza-type", "unexpected {%s}%s before the handshake" % (namespace, name)
            )

    @takes(AcceptMachine.table, ("handshake", "element", "handshake"))
    def test_elementAfterPeerError(self) -> None:
        """
        Elements that follow the peer's stream error are dropped.
        """
        machine, io = self.machine(state="handshake")
        io.ended = True
        self.assertTrue(self.step(machine, "element", parse("<message/>", ACCEPT)))
        self.assertEqual(io.take(), [])
        self.assertEqual(machine.state, "handshake")

    @takes(AcceptMachine.table, ("complete", "element", "complete"))
    def test_elementAfterHandshake(self) -> None:
        """
        Once negotiated, elements are passed on.
        """
        machine, io = self.machine(state="complete")
        self.assertFalse(self.step(machine, "element", parse("<handshake/>", ACCEPT)))
        self.assertEqual(io.take(), [])

    @takes(AcceptMachine.table, ("refused", "element", "refused"))
    def test_elementAfterRefusal(self) -> None:
        """
        Elements that arrive while a refused stream closes are dropped.
        """
        machine, io = self.machine(state="refused")
        self.assertTrue(self.step(machine, "element", parse("<message/>", ACCEPT)))
        self.assertEqual(io.take(), [])

    @takes(AcceptMachine.table, ("header", "timedOut", "refused"), ("handshake", "timedOut", "refused"))
    def test_timedOut(self) -> None:
        """
        No handshake within the negotiation timeout: C{connection-timeout}
        (with our header if none was sent).
        """
        machine, io = self.machine()
        machine.connected()
        io.take()
        self.step(machine, "timedOut")
        self.assertRefused(io, "connection-timeout", "no handshake after 30 seconds")
        machine, io = self.machine(state="handshake")
        self.step(machine, "timedOut")
        self.assertRefused(io, "connection-timeout", "no handshake after 30 seconds")
        self.assertIsNone(machine.secret)

    @takes(
        AcceptMachine.table,
        ("header", "tlsDone", "header"),
        ("handshake", "tlsDone", "handshake"),
        ("complete", "tlsDone", "complete"),
        ("refused", "tlsDone", "refused"),
    )
    def test_tlsDone(self) -> None:
        """
        The TLS handshake of a direct TLS listener changes nothing.
        """
        for state in self.table.states:
            machine, io = self.machine(state=state)
            self.step(machine, "tlsDone")
            self.assertEqual(io.take(), [])
            self.assertEqual(machine.state, state)

    @takes(
        AcceptMachine.table,
        ("header", "ended", "header"),
        ("handshake", "ended", "handshake"),
        ("complete", "ended", "complete"),
        ("refused", "ended", "refused"),
    )
    def test_ended(self) -> None:
        """
        The end of the stream leaves no timer behind and forgets the
        secret.
        """
        for state in self.table.states:
            machine, io = self.machine(state=state)
            self.step(machine, "ended", Failure(Exception("gone")))
            self.assertEqual(io.take(), [("cancelTimer",)])
            self.assertIsNone(machine.secret)
            self.assertEqual(machine.state, state)


# The initiating side.


class AcceptInitiatingMachineTests(MachineTestCase):
    """
    L{AcceptInitiatingMachine}: the component side of XEP-0114.
    """

    table = AcceptInitiatingMachine.table

    def machine(self, state: str = "header") -> tuple[AcceptInitiatingMachine, RecordingIO]:
        """
        A connected machine in C{state} (reached through its inputs), and
        its IO with nothing recorded.
        """
        io = RecordingIO(now=100.0, peer="the server")
        machine = AcceptInitiatingMachine(io, HOSTNAME, SECRET, 30.0, 5.0)
        machine.connected()
        if state == "failed":
            machine.timedOut()
        elif state != "header":
            machine.header(serverHeader(None if state == "no-id" else STREAM_ID))
            if state == "complete":
                machine.element(parse("<handshake/>", ACCEPT))
        self.assertEqual(machine.state, state)
        io.take()
        return machine, io

    def assertFailed(self, io: RecordingIO, type: type, message: str, *after: tuple[Any, ...]) -> None:
        self.assertEqual(described(io.take()), [("cancelTimer",), ("failed", type, message), *after])

    @takes(AcceptInitiatingMachine.table, ("header", "connected", "header"))
    def test_connected(self) -> None:
        """
        On connection the negotiation timeout starts and our header goes
        out: to our hostname, without C{from} or version.
        """
        io = RecordingIO(now=100.0)
        machine = AcceptInitiatingMachine(io, HOSTNAME, SECRET, 30.0, 5.0)
        self.step(machine, "connected")
        self.assertEqual(
            io.take(),
            [("startTimer", 30.0), ("sendHeader", OurHeader(ACCEPT, (0, 0), theirs=HOSTNAME))],
        )
        self.assertEqual(machine.started, 100.0)

    @takes(AcceptInitiatingMachine.table, ("header", "header", "handshake"))
    def test_header(self) -> None:
        """
        The server's header with an id gets our handshake for it.
        """
        machine, io = self.machine()
        self.step(machine, "header", serverHeader())
        self.assertEqual(
            io.take(),
            [
                ("describe", OurHeader(ACCEPT, (0, 0), ours=HOSTNAME, theirs=HOSTNAME, id=STREAM_ID)),
                ("send", "<handshake xmlns='%s'>%s</handshake>" % (ACCEPT, sha1Hex(STREAM_ID + SECRET))),
            ],
        )
        self.assertEqual(machine.state, "handshake")

    @takes(AcceptInitiatingMachine.table, ("header", "header", "no-id"))
    def test_headerWithoutId(self) -> None:
        """
        A header without id waits C{closeTimeout} for a stream error.
        """
        machine, io = self.machine()
        self.step(machine, "header", serverHeader(None))
        self.assertEqual(io.take(), [("startTimer", 5.0)])
        self.assertEqual(machine.state, "no-id")

    @takes(AcceptInitiatingMachine.table, ("header", "header", "failed"))
    def test_badHeader(self) -> None:
        """
        A header of another namespace, or with another prefix, fails
        negotiation and is answered with the stream error.
        """
        for root, condition in [
            (serverHeader(namespace="jabber:client"), "invalid-namespace"),
            (serverHeader(prefix="s"), "bad-namespace-prefix"),
        ]:
            machine, io = self.machine()
            self.step(machine, "header", root)
            self.assertFailed(
                io,
                NegotiationError,
                "the server sent a bad stream header: %s" % (condition,),
                ("refuse", condition, None),
            )
            self.assertEqual(machine.state, "failed")

    @takes(AcceptInitiatingMachine.table, ("handshake", "element", "complete"))
    def test_accepted(self) -> None:
        """
        The server's C{<handshake/>} completes negotiation with a
        L{NegotiationResult}.
        """
        machine, io = self.machine(state="handshake")
        io.clock = 100.25
        self.assertTrue(self.step(machine, "element", parse("<handshake/>", ACCEPT)))
        self.assertEqual(
            io.take(),
            [
                ("cancelTimer",),
                (
                    "succeeded",
                    NegotiationResult(
                        identity=HOSTNAME, mechanism="handshake", tlsVersion=None, streamId=STREAM_ID, elapsed=0.25
                    ),
                ),
            ],
        )

    @takes(AcceptInitiatingMachine.table, ("handshake", "element", "failed"))
    def test_unexpectedElement(self) -> None:
        """
        Anything but the handshake fails negotiation, with
        C{unsupported-stanza-type}.
        """
        machine, io = self.machine(state="handshake")
        self.assertTrue(self.step(machine, "element", parse("<message/>", ACCEPT)))
        self.assertFailed(
            io,
            NegotiationError,
            "unexpected {%s}message from the server before the handshake was accepted" % (ACCEPT,),
            ("refuse", "unsupported-stanza-type", None),
        )

    @takes(AcceptInitiatingMachine.table, ("no-id", "element", "failed"))
    def test_elementWithoutId(self) -> None:
        """
        An element after a header without id fails negotiation for the
        missing id, and closes the stream.
        """
        machine, io = self.machine(state="no-id")
        self.assertTrue(self.step(machine, "element", parse("<handshake/>", ACCEPT)))
        self.assertFailed(io, NegotiationError, "the server's stream header has no id", ("close",))

    @takes(AcceptInitiatingMachine.table, ("complete", "element", "complete"))
    def test_elementAfterwards(self) -> None:
        """
        Once negotiated, elements are passed on.
        """
        machine, io = self.machine(state="complete")
        self.assertFalse(self.step(machine, "element", parse("<message/>", ACCEPT)))
        self.assertEqual(io.take(), [])

    @takes(AcceptInitiatingMachine.table, ("failed", "element", "failed"))
    def test_elementAfterFailure(self) -> None:
        """
        Elements that arrive while a failed stream closes are dropped.
        """
        machine, io = self.machine(state="failed")
        self.assertTrue(self.step(machine, "element", parse("<handshake/>", ACCEPT)))
        self.assertEqual(io.take(), [])

    @takes(
        AcceptInitiatingMachine.table,
        ("header", "timedOut", "failed"),
        ("handshake", "timedOut", "failed"),
    )
    def test_timedOut(self) -> None:
        """
        Not accepted within the negotiation timeout: negotiation fails and
        the stream is closed.
        """
        for state in ["header", "handshake"]:
            machine, io = self.machine(state=state)
            self.step(machine, "timedOut")
            self.assertFailed(
                io,
                NegotiationError,
                "the server did not accept component %s within 30 seconds" % (HOSTNAME,),
                ("close",),
            )

    @takes(AcceptInitiatingMachine.table, ("no-id", "timedOut", "failed"))
    def test_timedOutWithoutId(self) -> None:
        """
        No stream error after a header without id: negotiation fails for
        the missing id, and the stream is closed.
        """
        machine, io = self.machine(state="no-id")
        self.step(machine, "timedOut")
        self.assertFailed(io, NegotiationError, "the server's stream header has no id", ("close",))

    @takes(
        AcceptInitiatingMachine.table,
        ("header", "ended", "failed"),
        ("handshake", "ended", "failed"),
    )
    def test_ended(self) -> None:
        """
        A stream error or the end of the connection fails negotiation with
        it.
        """
        for state in ["header", "handshake"]:
            for reason in [Failure(StreamError("not-authorized")), Failure(Exception("gone"))]:
                machine, io = self.machine(state=state)
                self.step(machine, "ended", reason)
                self.assertEqual(io.take(), [("cancelTimer",), ("failed", reason)])

    @takes(AcceptInitiatingMachine.table, ("no-id", "ended", "failed"))
    def test_endedWithoutId(self) -> None:
        """
        After a header without id, the server's stream error is why
        negotiation failed; a lost connection is not, the missing id is.
        """
        machine, io = self.machine(state="no-id")
        error = Failure(StreamError("host-unknown"))
        self.step(machine, "ended", error)
        self.assertEqual(io.take(), [("cancelTimer",), ("failed", error)])
        machine, io = self.machine(state="no-id")
        self.step(machine, "ended", Failure(Exception("gone")))
        self.assertFailed(io, NegotiationError, "the server's stream header has no id")

    @takes(
        AcceptInitiatingMachine.table,
        ("complete", "ended", "complete"),
        ("failed", "ended", "failed"),
    )
    def test_endedAfterwards(self) -> None:
        """
        The end of the stream after negotiation succeeded or failed reports
        nothing more.
        """
        for state in ["complete", "failed"]:
            machine, io = self.machine(state=state)
            self.step(machine, "ended", Failure(Exception("gone")))
            self.assertEqual(io.take(), [])

    @takes(
        AcceptInitiatingMachine.table,
        ("header", "tlsDone", "header"),
        ("no-id", "tlsDone", "no-id"),
        ("handshake", "tlsDone", "handshake"),
        ("complete", "tlsDone", "complete"),
        ("failed", "tlsDone", "failed"),
    )
    def test_tlsDone(self) -> None:
        """
        The TLS handshake of a direct TLS connection changes nothing.
        """
        for state in self.table.states:
            machine, io = self.machine(state=state)
            self.step(machine, "tlsDone")
            self.assertEqual(io.take(), [])
            self.assertEqual(machine.state, state)


class CoverageTests(SynchronousTestCase):
    """
    The tests above take every transition of both tables, and the machines
    are pure.
    """

    def test_everyTransitionTaken(self) -> None:
        """
        Every (state, input, behaviour, next state) of each table is taken
        by a test of this module, and no other.
        """
        for table in [AcceptMachine.table, AcceptInitiatingMachine.table]:
            taken = {t for t in TAKEN if t[0] == table.name}
            self.assertEqual(taken, transitionsOf(table), table.name)

    def test_everyRowTaken(self) -> None:
        """
        Every row of each table, L{ANY<xmppcomp.stream.machine.ANY>} rows
        included, applies to a transition taken.
        """
        for table in [AcceptMachine.table, AcceptInitiatingMachine.table]:
            self.assertEqual(rowsNotTaken(table, TAKEN), set(), table.name)

    def test_noTwistedInternet(self) -> None:
        """
        The machines' code uses nothing of C{twisted.internet}.
        """
        for machine in [AcceptMachine, AcceptInitiatingMachine]:
            self.assertEqual(internetNamesUsedBy(machine), set(), machine.__name__)
