# -*- test-case-name: tests.test_stream_machines -*-
"""
The shape every stream negotiator has: an explicit transition table, a
machine that follows it, and the actions it asks for.

A negotiator (L{xmppcomp.stream.receiving.ReceivingMachine},
L{xmppcomp.stream.initiating.InitiatingMachine},
L{xmppcomp.stream.acceptreceiving.AcceptMachine},
L{xmppcomp.stream.accept.AcceptInitiatingMachine}) is pure: parsed
elements and events go in through its input methods (L{Machine.connected},
L{Machine.header}, L{Machine.element}, L{Machine.tlsDone},
L{Machine.timedOut}, L{Machine.ended}...), and actions come out through
the L{NegotiationIO} it was given (send, start TLS, reset the parser,
refuse with a condition, close, negotiated, failed). It imports nothing of
C{twisted.internet}; one adapter,
L{xmppcomp.stream.adapter.NegotiationAdapter}, carries the actions out on
a real stream.

Every machine's L{Table} lists each (state, input) it accepts, the
behaviour that runs and the states it may lead to. Its diagram
(L{Table.dot}) is generated from the table: the files in
C{docs/state-machines/} are checked against it by the tests.

Common behaviour lives once, here: the receiving sides' refusals, the
per-source limiter and the negotiation timeout (L{ReceivingSide}), and
the initiating sides' failures (L{InitiatingSide}).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar, ParamSpec, Protocol

import attrs
from twisted.python.failure import Failure
from twisted.words.xish import domish

from xmppcomp.logs import Logger

if TYPE_CHECKING:
    from xmppcomp.stream.limits import AuthFailureLimiter

__all__ = [
    "ANY",
    "SAME",
    "InitiatingSide",
    "Machine",
    "NegotiationIO",
    "OurHeader",
    "ReceivingSide",
    "Row",
    "STANZA_NAMES",
    "Table",
    "isStanza",
]

log = Logger()

_P = ParamSpec("_P")

#: In a L{Row}: the row applies in every state that has no row of its own
#: for the input.
ANY = "*"

#: Among a L{Row}'s targets: the behaviour may also keep the state.
SAME = "="

#: The three stanza kinds (RFC 6120 section 8).
STANZA_NAMES = frozenset({"message", "presence", "iq"})


def isStanza(element: domish.Element) -> bool:
    """
    Whether a first-level element is a stanza of the stream's content
    namespace (C{jabber:client} or C{jabber:component:accept}): what the
    receiving sides refuse with C{not-authorized} before negotiation is
    complete.
    """
    return element.name in STANZA_NAMES and element.uri in (
        "jabber:client",
        "jabber:component:accept",
    )


@attrs.frozen
class Row:
    """
    One line of a L{Table}.

    @ivar state: the state the row applies in, or L{ANY}.
    @ivar input: the input's name (a method of the machine).
    @ivar behaviour: the name of the machine's method that runs; it
        returns the next state, or L{None}: the row's only target, or the
        same state when the targets are empty or include L{SAME}.
    @ivar targets: the states the behaviour may lead to, L{SAME} for the
        state it runs in; empty means the state does not change (a loop).
    """

    state: str
    input: str
    behaviour: str
    targets: tuple[str, ...] = ()


@attrs.frozen
class Table:
    """
    A machine's explicit transition table.

    @ivar name: the machine's name (the diagram's).
    @ivar initial: the state a new machine starts in.
    @ivar states: every state, in the order they are drawn.
    @ivar rows: the rows, specific states before L{ANY}.
    """

    name: str
    initial: str
    states: tuple[str, ...]
    rows: tuple[Row, ...]
    _index: dict[tuple[str, str], Row] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        index: dict[tuple[str, str], Row] = {}
        known = set(self.states)
        if self.initial not in known:
            raise ValueError("initial state %r is not a state" % (self.initial,))
        for row in self.rows:
            if row.state != ANY and row.state not in known:
                raise ValueError("row %r: unknown state" % (row,))
            for target in row.targets:
                if target not in known and target != SAME:
                    raise ValueError("row %r: unknown target %r" % (row, target))
            if (row.state, row.input) in index:
                raise ValueError("two rows for %r" % ((row.state, row.input),))
            index[(row.state, row.input)] = row
        for row in self.rows:
            if row.state == ANY:
                for state in self.states:
                    index.setdefault((state, row.input), row)
        object.__setattr__(self, "_index", index)

    def lookup(self, state: str, input: str) -> Row | None:
        """
        The row for C{input} in C{state}, or L{None} if the table has
        none.
        """
        return self._index.get((state, input))

    @property
    def inputs(self) -> tuple[str, ...]:
        """
        Every input the table names, in order of first appearance.
        """
        return tuple(dict.fromkeys(row.input for row in self.rows))

    def transitions(self) -> list[tuple[str, str, str, str]]:
        """
        Every (state, input, behaviour, next state) the table allows, with
        the L{ANY} rows expanded to the states they apply in.
        """
        result = []
        for state in self.states:
            for input in self.inputs:
                row = self._index.get((state, input))
                if row is None:
                    continue
                for target in row.targets or (state,):
                    result.append((state, input, row.behaviour, state if target == SAME else target))
        return result

    def dot(self) -> str:
        """
        The table as a Graphviz digraph: one node per state, one edge per
        transition, labelled C{input / behaviour}; edges of the same pair
        of states are merged into one label.
        """
        edges: dict[tuple[str, str], list[str]] = {}
        for state, input, behaviour, target in self.transitions():
            edges.setdefault((state, target), []).append("%s / %s" % (input, behaviour))
        lines = [
            "// Generated from %s's transition table by" % (self.name,),
            "// `python -m xmppcomp.stream.diagrams`: do not edit by hand.",
            "digraph %s {" % (_quote(self.name),),
            "  rankdir=LR;",
            '  node [shape=box, style=rounded, fontname="Helvetica"];',
            '  edge [fontname="Helvetica", fontsize=10];',
            '  start [shape=point];',
            "  start -> %s;" % (_quote(self.initial),),
        ]
        for state in self.states:
            lines.append("  %s;" % (_quote(state),))
        for (source, target), labels in edges.items():
            lines.append(
                "  %s -> %s [label=%s];"
                % (_quote(source), _quote(target), _quote("\\n".join(labels)))
            )
        lines.append("}")
        return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"%s"' % (text.replace('"', '\\"'),)


@attrs.frozen
class OurHeader:
    """
    What our stream header says.

    @ivar namespace: the content namespace (C{jabber:client},
        C{jabber:component:accept}).
    @ivar version: C{(1, 0)}, or C{(0, 0)} for none (XEP-0114).
    @ivar ours: our name (the C{from}), or L{None}.
    @ivar theirs: the peer's name (the C{to}), or L{None}.
    @ivar id: the stream id (the receiving side's), or L{None}.
    """

    namespace: str
    version: tuple[int, int]
    ours: str | None = None
    theirs: str | None = None
    id: str | None = None


class NegotiationIO(Protocol):
    """
    What a negotiating machine asks of the stream it negotiates: actions
    out, and a few facts about the link in.

    L{xmppcomp.stream.adapter.NegotiationAdapter} provides it on a real
    stream; the table tests record the calls.
    """

    # Facts about the link.

    def now(self) -> float:
        """
        The current time in seconds (the reactor's).
        """

    def peer(self) -> str:
        """
        The peer's address, for log lines.
        """

    def source(self) -> str | None:
        """
        The key failed authentications are counted under (see
        L{xmppcomp.stream.receiving.sourceKey}), or L{None}.
        """

    def encrypted(self) -> bool:
        """
        Whether the connection is under TLS now (a TLS listener's is from
        the start).
        """

    def streamEnded(self) -> bool:
        """
        Whether the stream has ended (a stream error sent or received).
        """

    # Actions.

    def sendHeader(self, header: OurHeader) -> None:
        """
        Send our stream header.
        """

    def describe(self, header: OurHeader) -> None:
        """
        Say what our stream header is, without sending it (a stream error
        sent before it carries it).
        """

    def send(self, element: domish.Element | str) -> None:
        """
        Send an element, or its serialisation.
        """

    def startTLS(self) -> None:
        """
        Start TLS on the connection, with the policy's options, and reset
        the parser (the next bytes start a new stream).
        """

    def resetParser(self) -> None:
        """
        The next bytes start a new stream (after SASL).
        """

    def refuse(self, condition: str, text: str | None) -> None:
        """
        Send the stream error C{condition} and close the stream.
        """

    def close(self) -> None:
        """
        Close the stream gracefully (our closing tag, then the peer's).
        """

    def startTimer(self, seconds: float) -> None:
        """
        Call the machine's L{Machine.timedOut} in C{seconds}, replacing any
        timer started before.
        """

    def cancelTimer(self) -> None:
        """
        Cancel the timer, if any.
        """

    def afterRead(self, f: Callable[_P, object], *args: _P.args, **kwargs: _P.kwargs) -> None:
        """
        Call C{f(*args, **kwargs)} once the read being handled is done and
        its answers are out (now, outside a read).
        """

    def succeeded(self, result: object) -> None:
        """
        (Named so that an adapter may keep a C{negotiated} L{Deferred}, as
        the initiating sides' do.) Negotiation is complete: from now on elements go where a
        negotiated stream's go. C{result} is the side's result (a
        L{xmppcomp.stream.initiating.NegotiationResult} on the initiating
        sides, L{None} on the receiving ones).
        """

    def failed(self, reason: Exception | Failure) -> None:
        """
        (Initiating sides.) Negotiation failed, for C{reason}.
        """

    def countRefusal(self, condition: str) -> None:
        """
        (Receiving sides.) Count a refused stream or SASL attempt, by its
        condition.
        """


class Machine:
    """
    A negotiator following its L{table}: each input method looks up the
    row for the current state and runs its behaviour.

    @cvar table: the transition table.
    @ivar state: the current state.
    @ivar io: where the actions go.
    """

    table: ClassVar[Table]

    def __init__(self, io: NegotiationIO) -> None:
        self.io = io
        self.state = self.table.initial

    def fire(self, input: str, *args: object) -> object:
        """
        Take C{input} in the current state.

        @return: what the behaviour returned besides the next state: the
            behaviour of an C{element} row returns whether it consumed the
            element.
        @raise LookupError: the table has no row for it: an input that
            cannot come in that state (a feature's answer before any
            feature was asked, say); the table tests pin which.
        """
        row = self.table.lookup(self.state, input)
        if row is None:
            raise LookupError("%s has no row for %r in state %r" % (self.table.name, input, self.state))
        outcome = getattr(self, row.behaviour)(*args)
        if isinstance(outcome, tuple):
            target, value = outcome
        else:
            target, value = outcome, None
        if target is None:
            if not row.targets or SAME in row.targets:
                target = self.state
            elif len(row.targets) == 1:
                target = row.targets[0]
            else:
                raise AssertionError(
                    "%s: %s must say which of %r comes next" % (self.table.name, row.behaviour, row.targets)
                )
        elif target not in row.targets and not (
            target == self.state and (not row.targets or SAME in row.targets)
        ):
            raise AssertionError(
                "%s: %s may not lead from %r to %r" % (self.table.name, row.behaviour, self.state, target)
            )
        self.state = target
        return value

    # Inputs every machine takes.

    def connected(self) -> None:
        """
        The connection is made.
        """
        self.fire("connected")

    def header(self, root: domish.Element) -> None:
        """
        The peer's stream header arrived.
        """
        self.fire("header", root)

    def element(self, element: domish.Element) -> bool:
        """
        A first-level element arrived before negotiation completed.

        @return: whether negotiation consumed it (else it is dispatched as
            a negotiated stream's elements are).
        """
        return bool(self.fire("element", element))

    def tlsDone(self) -> None:
        """
        The TLS handshake under the stream completed.
        """
        self.fire("tlsDone")

    def timedOut(self) -> None:
        """
        The timer the machine started expired.
        """
        self.fire("timedOut")

    def ended(self, reason: object) -> None:
        """
        The stream ended: a stream error was sent or received, or the
        connection was lost.
        """
        self.fire("ended", reason)

    # Behaviours shared by every table.

    def ignore(self, *args: object) -> None:
        """
        Nothing to do.
        """
        return

    def consume(self, element: domish.Element) -> tuple[None, bool]:
        """
        Drop an element: the stream is closing, nothing more is negotiated.
        """
        return None, True

    def passOn(self, element: domish.Element) -> tuple[None, bool]:
        """
        Negotiation is complete: the element goes where a negotiated
        stream's elements go.
        """
        return None, False


class ReceivingSide(Machine):
    """
    What the receiving sides (XEP-0225 and XEP-0114) share: the per-source
    limiter, the negotiation timeout and the refusals.

    @cvar what: what failed authentications are called in the limiter's
        refusal (C{"authentications"}, C{"handshakes"}).
    @ivar limiter: counts failed authentications per source, or L{None}.
    @ivar negotiationTimeout: seconds from connection to the end of
        negotiation.
    @ivar started: when the connection was made.
    @ivar sourceKey: the peer's limiter key.
    """

    what: ClassVar[str] = "authentications"

    def __init__(self, io: NegotiationIO, limiter: AuthFailureLimiter | None, negotiationTimeout: float) -> None:
        super().__init__(io)
        self.limiter = limiter
        self.negotiationTimeout = negotiationTimeout
        self.started = 0.0
        self.sourceKey: str | None = None

    def refusalHeader(self) -> OurHeader:
        """
        The header a stream error sent before ours carries.
        """
        raise NotImplementedError()

    def logRefusal(self, condition: str, text: str | None) -> None:
        """
        Say why the stream is refused.
        """
        log.info(
            "closing stream from {peer}: {condition} ({text})",
            peer=self.io.peer(),
            condition=condition,
            text=text,
        )

    def refuse(self, condition: str, text: str | None) -> str:
        """
        Close the stream with the stream error C{condition}: from then on
        whatever the peer sends while the stream closes is dropped.

        @return: C{"refused"}, the next state.
        """
        # The state first: what the actions set off (observers of the
        # stream error) finds the stream refused.
        self.state = "refused"
        self.logRefusal(condition, text)
        self.io.cancelTimer()
        self.io.countRefusal(condition)
        self.io.refuse(condition, text)
        return "refused"

    def blocked(self) -> str | None:
        """
        The refusal text if the peer's source failed too often, else
        L{None}.
        """
        if self.limiter is None:
            return None
        return self.limiter.refusal(self.sourceKey, self.io.now(), self.what)

    def countFailure(self) -> None:
        """
        Count one failed authentication from the peer's source.
        """
        if self.limiter is not None:
            self.limiter.failed(self.sourceKey, self.io.now())

    def start(self) -> str | None:
        """
        (C{connected}.) Refuse a blocked source at once, else start the
        negotiation timeout.
        """
        self.started = self.io.now()
        self.sourceKey = self.io.source()
        text = self.blocked()
        if text is not None:
            self.io.describe(self.refusalHeader())
            return self.refuse("policy-violation", text)
        self.io.startTimer(self.negotiationTimeout)
        return None

    def expire(self) -> str:
        """
        (C{timedOut}.) Negotiation took too long.
        """
        return self.refuse(
            "connection-timeout",
            "stream negotiation not complete after %g seconds" % (self.negotiationTimeout,),
        )

    def stop(self, reason: object) -> None:
        """
        (C{ended}.) The stream ended: no timer is left behind.
        """
        self.io.cancelTimer()


class InitiatingSide(Machine):
    """
    What the initiating sides (XEP-0225 and XEP-0114) share: a failure is
    reported once, with its reason, and ends negotiation.

    @ivar negotiationTimeout: seconds from connection to the end of
        negotiation.
    @ivar started: when the connection was made.
    """

    def __init__(self, io: NegotiationIO, negotiationTimeout: float) -> None:
        super().__init__(io)
        self.negotiationTimeout = negotiationTimeout
        self.started = 0.0

    def describeFailure(self, reason: Exception | Failure) -> None:
        """
        Log why negotiation failed.
        """
        log.info("stream negotiation with {peer} failed: {reason}", peer=self.io.peer(), reason=_message(reason))

    def fail(self, reason: Exception | Failure) -> str:
        """
        Negotiation failed: cancel the timer, log and report it.

        @return: C{"failed"}, the next state.
        """
        # The state first: what reporting the failure sets off (a caller
        # closing the stream) finds negotiation over.
        self.state = "failed"
        self.io.cancelTimer()
        self.describeFailure(reason)
        self.io.failed(reason)
        return "failed"

    def failAndClose(self, reason: Exception | Failure) -> str:
        """
        L{fail}, then close the stream.
        """
        state = self.fail(reason)
        self.io.close()
        return state

    def lost(self, reason: object) -> str:
        """
        (C{ended}.) The stream ended before negotiation completed: that is
        why it failed.
        """
        return self.fail(reason)  # type: ignore[arg-type]


def _message(reason: object) -> str:
    if isinstance(reason, Failure):
        return str(reason.getErrorMessage())
    return str(reason)


def rows(*specs: tuple[str | Sequence[str], str, str, str | Iterable[str]]) -> tuple[Row, ...]:
    """
    Rows from C{(states, input, behaviour, targets)} tuples, where
    C{states} and C{targets} may be one name or several.
    """
    result = []
    for states, input, behaviour, targets in specs:
        names = (states,) if isinstance(states, str) else tuple(states)
        goals = (targets,) if isinstance(targets, str) else tuple(targets)
        for state in names:
            result.append(Row(state, input, behaviour, goals))
    return tuple(result)
