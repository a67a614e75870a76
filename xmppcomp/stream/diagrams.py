# -*- test-case-name: tests.test_diagrams -*-
"""
The state diagrams of C{docs/state-machines/}, generated from the machines
they draw. The command::

    python -m xmppcomp.stream.diagrams [--check] [DIRECTORY]

writes C{<name>.dot} for each machine of L{DIAGRAMS} into C{DIRECTORY}
(C{docs/state-machines} of the source tree by default); with C{--check}
it writes nothing and exits with status 1 if a file differs from what the
code generates, naming it.

The four negotiators' diagrams come from their transition tables
(L{Table.dot<xmppcomp.stream.machine.Table.dot>}). The XTLS tunnel's comes
from its Automat machine, through Automat's public C{asDigraph()} (which
needs the C{graphviz} Python package): its transitions are read from that
graph and written in the same shape as the tables' diagrams, sorted, so
that the file does not change from one run to the next (Automat's own
output follows Python's set order).

C{component.dot} and C{confirmation.dot} have no machine behind them: they
are drawn by hand.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import cast

__all__ = ["DEFAULT_DIRECTORY", "DIAGRAMS", "check", "generate", "main", "write"]


def _table(dotted: str) -> Callable[[], str]:
    """
    The diagram of the machine class C{dotted} (C{module.Class}), from its
    C{table}; the module is imported when the diagram is made.
    """

    def make() -> str:
        module, name = dotted.rsplit(".", 1)
        machine = getattr(importlib.import_module(module), name)
        text: str = machine.table.dot()
        return text

    return make


def xtlsDiagram() -> str:
    """
    The XTLS tunnel's diagram, from its Automat machine's C{asDigraph()}:
    one edge per pair of states, labelled with its C{input/output} pairs,
    the initial state bold and the states nothing leaves drawn final.
    """
    from automat import TypeMachine

    from xmppcomp.xtls._tunnel import TunnelCore, TunnelInputs, makeTunnel

    # makeTunnel() is annotated as the factory it is; it is also the typed
    # Automat machine, whose public asDigraph() draws it.
    machine = cast(TypeMachine[TunnelInputs, TunnelCore], makeTunnel())
    source: str = machine.asDigraph().source
    return _automatDot("xtls", "xmppcomp.xtls._tunnel.makeTunnel", source)


_NODE = re.compile(r"^\s*(\w+) \[(.*)\]\s*$")
_INTO = re.compile(r"^\s*(\w+) -> (t\d+):tableport:w\b")
_OUT = re.compile(r"^\s*(t\d+):tableport:e -> (\w+)\s*$")
_INPUT = re.compile(r'<font face="menlo-italic">([^<]*)</font>')
_OUTPUT = re.compile(r'<font point-size="9">([^<]*)</font>')


def _automatDot(name: str, origin: str, source: str) -> str:
    """
    Rewrite the graph Automat's C{asDigraph()} made (its C{source}) as a
    diagram of our shape.

    @raise ValueError: the graph is not in the shape Automat draws.
    """
    states: list[str] = []
    initial = None
    labels: dict[str, tuple[str, str]] = {}
    sources: dict[str, str] = {}
    targets: dict[str, str] = {}
    for line in source.splitlines():
        into = _INTO.match(line)
        if into is not None:
            sources[into.group(2)] = into.group(1)
            continue
        out = _OUT.match(line)
        if out is not None:
            targets[out.group(1)] = out.group(2)
            continue
        node = _NODE.match(line)
        if node is None or node.group(1) in ("graph", "node", "edge"):
            continue
        identifier, attributes = node.groups()
        if "tableport" in attributes:
            inputs = _INPUT.findall(attributes)
            outputs = _OUTPUT.findall(attributes)
            if len(inputs) != 1:
                raise ValueError("unexpected transition node %r" % (line,))
            labels[identifier] = (inputs[0], ",".join(outputs))
        else:
            states.append(identifier)
            if "style=bold" in attributes:
                initial = identifier
    if initial is None or not labels or set(labels) != set(sources) or set(labels) != set(targets):
        raise ValueError("not a graph of Automat's asDigraph()")
    edges: dict[tuple[str, str], list[str]] = {}
    for transition, (input, output) in labels.items():
        edges.setdefault((sources[transition], targets[transition]), []).append("%s/%s" % (input, output))
    final = sorted(
        state for state in states if all(target == state for (s, target) in edges if s == state)
    )
    lines = [
        "// Generated from %s's Automat machine (asDigraph) by" % (origin,),
        "// `python -m xmppcomp.stream.diagrams`: do not edit by hand.",
        "digraph %s {" % (name,),
        "  rankdir=LR;",
        "  %s [style=bold];" % (initial,),
    ]
    lines += ["  %s [shape=doublecircle];" % (state,) for state in final]
    for (source_, target), pairs in sorted(edges.items(), key=lambda item: (item[0][0], sorted(item[1]))):
        lines.append('  %s -> %s [label="%s"];' % (source_, target, "\\n".join(sorted(pairs))))
    lines.append("}")
    return "\n".join(lines) + "\n"


#: Each generated diagram's name (its file is C{<name>.dot}) and what
#: makes it.
DIAGRAMS: dict[str, Callable[[], str]] = {
    "receiving": _table("xmppcomp.stream.receiving.ReceivingMachine"),
    "initiating": _table("xmppcomp.stream.initiating.InitiatingMachine"),
    "accept": _table("xmppcomp.stream.acceptreceiving.AcceptMachine"),
    "accept-initiating": _table("xmppcomp.stream.accept.AcceptInitiatingMachine"),
    "xtls": xtlsDiagram,
}

#: Where the diagrams are kept in the source tree.
DEFAULT_DIRECTORY = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "docs",
    "state-machines",
)


def generate(name: str) -> str:
    """
    The text of diagram C{name}, as the code generates it now.
    """
    return DIAGRAMS[name]()


def check(directory: str = DEFAULT_DIRECTORY) -> list[str]:
    """
    The names of the diagrams whose file in C{directory} is missing or
    differs from what the code generates.
    """
    stale = []
    for name in DIAGRAMS:
        path = os.path.join(directory, name + ".dot")
        try:
            with open(path, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current != generate(name):
            stale.append(name)
    return stale


def write(directory: str = DEFAULT_DIRECTORY) -> list[str]:
    """
    Write every diagram into C{directory}.

    @return: the paths written.
    """
    paths = []
    for name in DIAGRAMS:
        path = os.path.join(directory, name + ".dot")
        with open(path, "w", encoding="utf-8") as f:
            f.write(generate(name))
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """
    The command line: write the diagrams, or check them (C{--check}).

    @return: the exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m xmppcomp.stream.diagrams",
        description="Generate the state diagrams of docs/state-machines from the machines.",
    )
    parser.add_argument("--check", action="store_true", help="write nothing; fail if a file is stale")
    parser.add_argument("directory", nargs="?", default=DEFAULT_DIRECTORY)
    options = parser.parse_args(argv)
    if options.check:
        stale = check(options.directory)
        for name in stale:
            print("%s.dot differs from what the code generates" % (name,), file=sys.stderr)
        return 1 if stale else 0
    for path in write(options.directory):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
