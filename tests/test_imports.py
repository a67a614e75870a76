# -*- test-case-name: tests.test_imports -*-
"""
No import loops in xmppcomp.

Every module of the package is parsed with L{ast} (nothing is imported);
each C{import} and C{from ... import} of an xmppcomp module is an edge of
a graph from the importing module to the imported one, and the test fails
on any cycle in that graph, naming its modules and the lines that import.

What counts as an import:

  - Imports at module level, and B{function-local imports too}: a module
    that imports another inside a function depends on it as much as one
    that does so at the top; the function-local form only moves the loop
    from import time to call time, and so hides it. Counting them is what
    makes "no loops" mean "the modules form layers".
  - Importing C{a.b.c} from outside the package C{a.b} runs C{a/b/__init__}
    first, which imports whatever it re-exports: that is an edge to
    C{a.b} as well. From inside C{a.b} it is not (the package is already
    being imported).
  - Not the imports under C{if TYPE_CHECKING:}: they never run, and they
    exist to name in annotations the types of a module that depends on
    this one (a machine and the protocol it drives). mypy checks them.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator, Mapping

from twisted.trial.unittest import SynchronousTestCase

import xmppcomp

#: Module name to the modules it imports, each with the lines that do.
Graph = Mapping[str, Mapping[str, list[int]]]


def modulesOf(directory: str, package: str) -> dict[str, str]:
    """
    The modules of a package on disk.

    @param directory: the package's directory.
    @param package: its dotted name.
    @return: dotted module name to file path (a package's name to its
        C{__init__.py}).
    """
    modules = {}
    for folder, _, files in os.walk(directory):
        parts = os.path.relpath(folder, directory).split(os.sep)
        prefix = ".".join([package] + [p for p in parts if p != "."])
        for name in files:
            if name.endswith(".py"):
                module = prefix if name == "__init__.py" else prefix + "." + name[:-3]
                modules[module] = os.path.join(folder, name)
    return modules


def _isTypeChecking(node: ast.AST) -> bool:
    """
    Whether C{node} is C{if TYPE_CHECKING:} (or C{typing.TYPE_CHECKING}).
    """
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """
    The import statements of a module, at any depth (functions, classes,
    C{try} blocks), except under C{if TYPE_CHECKING:}.
    """
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        elif _isTypeChecking(child):
            assert isinstance(child, ast.If)
            for node in child.orelse:
                yield from _imports(ast.Module(body=[node], type_ignores=[]))
        else:
            yield from _imports(child)


def _targets(
    node: ast.Import | ast.ImportFrom, module: str, isPackage: bool, modules: Mapping[str, str]
) -> Iterator[str]:
    """
    The modules of C{modules} an import statement in C{module} imports.
    """
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".")
            if not isPackage:
                base = base[:-1]
            base = base[: len(base) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        # "from a import b" imports the module a.b when there is one.
        names = [source + "." + alias.name for alias in node.names] + [source]
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if not name or module.startswith(name + "."):
            # Not ours, or a package the importer is inside of.
            continue
        yield name
        # The packages above it that the importer is not inside of.
        parent = name.rpartition(".")[0]
        while parent and not (module == parent or module.startswith(parent + ".")):
            yield parent
            parent = parent.rpartition(".")[0]


def importGraph(modules: Mapping[str, str]) -> dict[str, dict[str, list[int]]]:
    """
    The imports between C{modules} (see the module docstring for what
    counts).

    @param modules: dotted name to file path, as from L{modulesOf}.
    """
    graph: dict[str, dict[str, list[int]]] = {module: {} for module in modules}
    for module, path in modules.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        isPackage = os.path.basename(path) == "__init__.py"
        for node in _imports(tree):
            for target in _targets(node, module, isPackage, modules):
                if target != module:
                    lines = graph[module].setdefault(target, [])
                    if node.lineno not in lines:
                        lines.append(node.lineno)
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """
    One cycle through each group of modules that import each other
    (each strongly connected component of more than one module).

    @return: each cycle as the modules along it, the first repeated at
        the end; sorted.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    onStack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        onStack.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in onStack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                onStack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    found = []
    for component in components:
        # The shortest way from the first module back to itself.
        start = min(component)
        paths = {start: [start]}
        queue = [start]
        cycle: list[str] | None = None
        while queue and cycle is None:
            v = queue.pop(0)
            for w in sorted(graph[v]):
                if w == start:
                    cycle = paths[v] + [start]
                    break
                if w in component and w not in paths:
                    paths[w] = paths[v] + [w]
                    queue.append(w)
        assert cycle is not None
        found.append(cycle)
    return sorted(found)


def describe(cycle: list[str], graph: Graph) -> str:
    """
    A cycle with the lines that import along it, e.g. C{a (line 3) -> b
    (line 9) -> a}.
    """
    steps = [
        "%s (line %s)" % (a, ", ".join(map(str, graph[a][b]))) for a, b in zip(cycle, cycle[1:])
    ]
    return " -> ".join(steps + [cycle[-1]])


class NoImportCycleTests(SynchronousTestCase):
    """
    The modules of xmppcomp import each other in layers, without loops.
    """

    def test_noCycles(self) -> None:
        """
        No module of xmppcomp imports, directly or through others, a module
        that imports it, counting function-local imports.
        """
        graph = importGraph(modulesOf(os.path.dirname(xmppcomp.__file__), "xmppcomp"))
        self.assertIn("xmppcomp.services", graph["xmppcomp.tap"])
        found = [describe(cycle, graph) for cycle in cycles(graph)]
        self.assertEqual(found, [], "import loops:\n  " + "\n  ".join(found))


class ImportGraphTests(SynchronousTestCase):
    """
    L{importGraph} and L{cycles} on a small package written for the test.
    """

    def package(self, files: Mapping[str, str]) -> dict[str, dict[str, list[int]]]:
        """
        The import graph of a package C{pkg} made of C{files} (path below
        the package to source).
        """
        root = self.mktemp()
        for path, source in files.items():
            full = os.path.join(root, "pkg", path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w", encoding="utf-8") as f:
                f.write(source)
        return importGraph(modulesOf(os.path.join(root, "pkg"), "pkg"))

    def test_functionLocal(self) -> None:
        """
        An import inside a function counts: it closes a loop as well as
        one at the top.
        """
        graph = self.package(
            {
                "__init__.py": "",
                "a.py": "from pkg.b import f\n",
                "b.py": "def f():\n    from pkg import a\n    return a\n",
            }
        )
        self.assertEqual(cycles(graph), [["pkg.a", "pkg.b", "pkg.a"]])
        self.assertEqual(
            describe(["pkg.a", "pkg.b", "pkg.a"], graph),
            "pkg.a (line 1) -> pkg.b (line 2) -> pkg.a",
        )

    def test_typeChecking(self) -> None:
        """
        An import under C{if TYPE_CHECKING:} does not count; one in its
        C{else} does.
        """
        graph = self.package(
            {
                "__init__.py": "",
                "a.py": "import pkg.b\n",
                "b.py": (
                    "from typing import TYPE_CHECKING\n"
                    "if TYPE_CHECKING:\n"
                    "    from pkg.a import x\n"
                    "else:\n"
                    "    import pkg.c\n"
                ),
                "c.py": "",
            }
        )
        self.assertEqual(graph["pkg.b"], {"pkg.c": [5]})
        self.assertEqual(cycles(graph), [])

    def test_packageInit(self) -> None:
        """
        Importing a module of a subpackage from outside it runs the
        subpackage's C{__init__} too, and what that imports; relative
        imports resolve.
        """
        graph = self.package(
            {
                "__init__.py": "",
                "sub/__init__.py": "from ._impl import g\n",
                "sub/_impl.py": "from .. import user\n",
                "user.py": "from pkg.sub._impl import g\n",
            }
        )
        self.assertEqual(graph["pkg.user"], {"pkg.sub._impl": [1], "pkg.sub": [1]})
        self.assertEqual(graph["pkg.sub"], {"pkg.sub._impl": [1]})
        self.assertEqual(
            cycles(graph), [["pkg.sub", "pkg.sub._impl", "pkg.user", "pkg.sub"]]
        )
