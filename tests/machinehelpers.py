"""
Helpers shared by the table tests of the negotiating machines
(L{xmppcomp.stream.machine}): a L{NegotiationIO} that records the actions
a machine asks for, a way to write the elements that go in, the marking
and recording of the transitions the tests take, and a check that a
machine's code uses nothing of C{twisted.internet}.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterator
from typing import Any

from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.xish import domish

from xmppcomp.stream.machine import Machine, OurHeader, Table

__all__ = [
    "MachineTestCase",
    "RecordingIO",
    "Transition",
    "described",
    "internetNamesUsedBy",
    "parse",
    "parseHeader",
    "rowsNotTaken",
    "takes",
    "transitionsOf",
]

#: A transition taken: (table name, state, input, behaviour, next state).
Transition = tuple[str, str, str, str, str]


def takes(
    taken: set[Transition], table: Table, *transitions: tuple[str, str, str]
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """
    Mark a test (of a L{MachineTestCase}) as taking the (state, input, next
    state) C{transitions} of C{table}, and check that it does.

    @param taken: where the module records the transitions its tests
        declare, for its coverage tests; these are added to it.
    """
    declared = set()
    for state, input, target in transitions:
        row = table.lookup(state, input)
        declared.add((table.name, state, input, "?" if row is None else row.behaviour, target))
    taken.update(declared)

    def mark(test: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(test)
        def run(self: MachineTestCase) -> None:
            test(self)
            missing = declared - self.taken
            if missing:
                self.fail("not taken: %r" % (sorted(missing),))

        return run

    return mark


def transitionsOf(table: Table) -> set[Transition]:
    """
    Every transition of C{table}, as L{takes} records them.
    """
    return {(table.name, *transition) for transition in table.transitions()}


def rowsNotTaken(table: Table, taken: set[Transition]) -> set[Any]:
    """
    The rows of C{table} that apply to none of its transitions in C{taken}.
    """
    used = {table.lookup(state, input) for name, state, input, behaviour, target in taken if name == table.name}
    return set(table.rows) - used


class MachineTestCase(SynchronousTestCase):
    """
    Drives a machine input by input, recording the transitions taken.

    @ivar taken: the transitions taken, as L{takes} records them.
    """

    def setUp(self) -> None:
        self.taken: set[Transition] = set()

    def step(self, machine: Machine, input: str, *args: Any) -> Any:
        """
        Give C{machine} the input C{input}, through its input method.

        @return: what the input method returned.
        """
        before = machine.state
        row = machine.table.lookup(before, input)
        self.assertIsNotNone(row, "no row for %r in %r" % (input, before))
        assert row is not None
        result = getattr(machine, input)(*args)
        self.taken.add((machine.table.name, before, input, row.behaviour, machine.state))
        return result


def described(actions: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """
    C{actions} with each reported failure as C{("failed", type, message)}.
    """
    result = []
    for action in actions:
        if action[0] == "failed":
            failure = action[1] if isinstance(action[1], Failure) else Failure(action[1])
            action = ("failed", failure.type, failure.getErrorMessage())
        result.append(action)
    return result


class RecordingIO:
    """
    A L{NegotiationIO<xmppcomp.stream.machine.NegotiationIO>} that records
    every action as a tuple, the action's name first:

      - C{("sendHeader", header)}, C{("describe", header)} (an L{OurHeader});
      - C{("send", xml)}: an element is recorded serialised (C{toXml()}),
        a string as it is;
      - C{("startTLS",)}, C{("resetParser",)}, C{("close",)},
        C{("cancelTimer",)};
      - C{("refuse", condition, text)}, C{("countRefusal", condition)};
      - C{("startTimer", seconds)};
      - C{("afterRead",)}, then whatever the deferred call does: it runs at
        once;
      - C{("succeeded", result)}, C{("failed", reason)} (the exception or
        L{Failure} as given).

    The facts it reports are its attributes, which a test may change
    between inputs.

    @ivar actions: the actions recorded, in order.
    @ivar clock: what C{now()} returns.
    @ivar peerAddress: what C{peer()} returns.
    @ivar sourceKey: what C{source()} returns.
    @ivar tls: what C{encrypted()} returns.
    @ivar ended: what C{streamEnded()} returns.
    @ivar timer: the seconds of the timer started and not cancelled, or
        L{None}.
    """

    def __init__(
        self,
        now: float = 0.0,
        peer: str = "1.2.3.4:5",
        source: str | None = "1.2.3.4",
        tlsActive: bool = False,
        streamEnded: bool = False,
    ) -> None:
        self.actions: list[tuple[Any, ...]] = []
        self.clock = now
        self.peerAddress = peer
        self.sourceKey = source
        self.tls = tlsActive
        self.ended = streamEnded
        self.timer: float | None = None

    def take(self) -> list[tuple[Any, ...]]:
        """
        The actions recorded since the last call, which are forgotten.
        """
        actions, self.actions = self.actions, []
        return actions

    # Facts.

    def now(self) -> float:
        return self.clock

    def peer(self) -> str:
        return self.peerAddress

    def source(self) -> str | None:
        return self.sourceKey

    def encrypted(self) -> bool:
        return self.tls

    def streamEnded(self) -> bool:
        return self.ended

    # Actions.

    def sendHeader(self, header: OurHeader) -> None:
        self.actions.append(("sendHeader", header))

    def describe(self, header: OurHeader) -> None:
        self.actions.append(("describe", header))

    def send(self, element: domish.Element | str) -> None:
        if isinstance(element, domish.Element):
            element = element.toXml()
        self.actions.append(("send", element))

    def startTLS(self) -> None:
        self.actions.append(("startTLS",))

    def resetParser(self) -> None:
        self.actions.append(("resetParser",))

    def refuse(self, condition: str, text: str | None) -> None:
        self.actions.append(("refuse", condition, text))

    def close(self) -> None:
        self.actions.append(("close",))

    def startTimer(self, seconds: float) -> None:
        self.timer = seconds
        self.actions.append(("startTimer", seconds))

    def cancelTimer(self) -> None:
        self.timer = None
        self.actions.append(("cancelTimer",))

    def afterRead(self, f: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        self.actions.append(("afterRead",))
        f(*args, **kwargs)

    def succeeded(self, result: object) -> None:
        self.actions.append(("succeeded", result))

    def failed(self, reason: Exception | Failure) -> None:
        self.actions.append(("failed", reason))

    def countRefusal(self, condition: str) -> None:
        self.actions.append(("countRefusal", condition))


def parse(xml: str, namespace: str = "jabber:client") -> domish.Element:
    """
    The first-level element C{xml}, parsed as it is in a stream whose
    default namespace is C{namespace}.
    """
    elements: list[domish.Element] = []
    stream = domish.elementStream()
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = elements.append
    stream.parse(
        (
            "<stream:stream xmlns='%s' xmlns:stream='http://etherx.jabber.org/streams'>%s"
            % (namespace, xml)
        ).encode("utf-8")
    )
    (element,) = elements
    return element


def parseHeader(xml: str) -> domish.Element:
    """
    The root element of the stream header C{xml} (an unclosed
    C{<stream:stream ...>}).
    """
    roots: list[domish.Element] = []
    stream = domish.elementStream()
    stream.DocumentStartEvent = roots.append
    stream.parse(xml.encode("utf-8"))
    (root,) = roots
    return root


def internetNamesUsedBy(cls: type) -> set[str]:
    """
    The names of C{twisted.internet} (modules, or objects defined there)
    that the code of machine class C{cls} uses: the global names its
    methods, and those of its xmppcomp base classes, read, following the
    xmppcomp functions they call. A pure machine uses none.

    (Importing a machine's module in a fresh interpreter says nothing: the
    module also holds the adapter, and even C{xmppcomp.stream.machine}'s
    imports load C{twisted.internet} through Twisted's own modules.)

    @return: C{"where: name"} for each use found.
    """
    found: set[str] = set()
    seen: set[types.CodeType] = set()

    def codes(code: types.CodeType) -> Iterator[types.CodeType]:
        yield code
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                yield from codes(const)

    def scan(where: str, function: types.FunctionType) -> None:
        if function.__code__ in seen:
            return
        seen.add(function.__code__)
        namespace = function.__globals__
        for code in codes(function.__code__):
            for name in code.co_names:
                if name not in namespace:
                    continue
                value = namespace[name]
                if isinstance(value, types.ModuleType):
                    module = value.__name__
                else:
                    module = getattr(value, "__module__", None) or ""
                if module == "twisted.internet" or module.startswith("twisted.internet."):
                    found.add("%s: %s" % (where, name))
                elif isinstance(value, types.FunctionType) and module.startswith("xmppcomp"):
                    scan("%s -> %s" % (where, value.__qualname__), value)

    for klass in cls.__mro__:
        if not klass.__module__.startswith("xmppcomp"):
            continue
        for name, value in vars(klass).items():
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            elif isinstance(value, property):
                value = value.fget
            if isinstance(value, types.FunctionType):
                scan("%s.%s" % (klass.__name__, name), value)
    return found
