# -*- test-case-name: tests.test_wokkelcompat -*-
"""
Make wokkel 18.0.0 importable on the Twisted versions xmppcomp supports.

wokkel 18.0.0 imports Python 2 compatibility names that Twisted has since
removed. Without this module, C{import wokkel.disco} (and C{data_form},
C{ping}, C{pubsub}, C{muc}) fails on Twisted 24.7 and later; C{generic},
C{subprotocols}, C{iwokkel} and C{xmppim} import fine.

What L{install} supplies, only where Twisted lacks it, with Python 3
semantics:

  - C{twisted.python.compat._PY3 = True}: removed from Twisted; imported by
    C{wokkel.data_form} (hence C{disco}, C{ping}, C{pubsub}), which uses it
    to choose Python 3 dictionary views.
  - C{twisted.python.compat.unicode}, C{StringType} (C{str}),
    C{iteritems}, C{itervalues} (C{d.items()}, C{d.values()}): still present
    but deprecated in Twisted 26 (so wokkel's imports of them emit
    C{DeprecationWarning}s, which are left alone); supplied here only when a
    later Twisted removes them. C{iterkeys} and C{nativeString} are not
    needed: wokkel imports neither from Twisted.
  - the module C{twisted.python.constants}: removed from Twisted in favour
    of the C{constantly} package it re-exported; imported by C{wokkel.muc}.
    It is recreated, as the same re-export of C{constantly}, only if it
    cannot be imported.

Nothing on disk is changed, Twisted is not pinned and no existing name is
replaced; a second call to L{install} does nothing.

Import order: every xmppcomp module that uses wokkel must C{import
xmppcomp._wokkelcompat} before its first wokkel import (the import runs
L{install}), as L{xmppcomp.disco} does. Importing wokkel first fails with
C{ImportError: cannot import name '_PY3'} and, since the failed module is
not cached, importing it again after this module works.

To delete this module once a fixed wokkel is released: require that wokkel
version in C{setup.cfg}, remove the C{_wokkelcompat} imports (C{grep -rn
_wokkelcompat xmppcomp tests}), and delete this file and
C{tests/test_wokkelcompat.py}.
"""

from __future__ import annotations

import importlib.util
import sys
import types
import warnings
from collections.abc import ItemsView, Mapping, MutableMapping, ValuesView
from typing import TypeVar

import twisted.python
import twisted.python.compat

__all__ = ["install"]

_K = TypeVar("_K")
_V = TypeVar("_V")


def _iteritems(d: Mapping[_K, _V]) -> ItemsView[_K, _V]:
    """
    Python 3 replacement for C{twisted.python.compat.iteritems}.

    @param d: A mapping.
    @return: C{d.items()}.
    """
    return d.items()


def _itervalues(d: Mapping[_K, _V]) -> ValuesView[_V]:
    """
    Python 3 replacement for C{twisted.python.compat.itervalues}.

    @param d: A mapping.
    @return: C{d.values()}.
    """
    return d.values()


#: The names wokkel 18.0.0 imports from C{twisted.python.compat}, with
#: values of Python 3 semantics.
COMPAT_NAMES: Mapping[str, object] = {
    "_PY3": True,
    "unicode": str,
    "StringType": str,
    "iteritems": _iteritems,
    "itervalues": _itervalues,
}

#: The module C{wokkel.muc} imports, removed from Twisted.
CONSTANTS_MODULE = "twisted.python.constants"

#: What Twisted's C{twisted.python.constants} re-exported from C{constantly}.
CONSTANTS_NAMES = (
    "NamedConstant",
    "ValueConstant",
    "FlagConstant",
    "Names",
    "Values",
    "Flags",
)


def _has(module: object, name: str) -> bool:
    """
    Tell whether C{module} has an attribute, without emitting the
    deprecation warning that looking up a deprecated one would.

    @param module: A module (or module proxy).
    @param name: The attribute name.
    @return: C{True} if C{module} has it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return hasattr(module, name)


def _supplyNames(module: object) -> tuple[str, ...]:
    """
    Set each of L{COMPAT_NAMES} on C{module} unless it already has it.

    @param module: C{twisted.python.compat}, or a stand-in in tests.
    @return: The names set by this call.
    """
    supplied = []
    for name, value in COMPAT_NAMES.items():
        if not _has(module, name):
            setattr(module, name, value)
            supplied.append(name)
    return tuple(supplied)


def _supplyConstants(
    modules: MutableMapping[str, types.ModuleType],
    package: object,
    constantsImportable: bool,
) -> tuple[str, ...]:
    """
    Recreate C{twisted.python.constants} as a re-export of C{constantly},
    unless it is importable or already recreated.

    @param modules: C{sys.modules}, or a stand-in in tests.
    @param package: C{twisted.python}, or a stand-in in tests; the new
        module is also set as its C{constants} attribute.
    @param constantsImportable: Whether Twisted itself still ships the
        module.
    @return: C{(CONSTANTS_MODULE,)} if this call created it, else C{()}.
    """
    if constantsImportable or CONSTANTS_MODULE in modules:
        return ()
    try:
        import constantly
    except ImportError:  # pragma: no cover - Twisted depends on constantly
        return ()
    module = types.ModuleType(
        CONSTANTS_MODULE,
        "Re-export of C{constantly}, recreated by xmppcomp._wokkelcompat.",
    )
    for name in CONSTANTS_NAMES:
        setattr(module, name, getattr(constantly, name))
    setattr(module, "__all__", list(CONSTANTS_NAMES))
    modules[CONSTANTS_MODULE] = module
    setattr(package, "constants", module)
    return (CONSTANTS_MODULE,)


def _constantsImportable() -> bool:
    """
    Tell whether C{twisted.python.constants} exists, without importing it.

    @return: C{True} if Twisted ships it, or it is already in C{sys.modules}.
    """
    if CONSTANTS_MODULE in sys.modules:
        return True
    return importlib.util.find_spec(CONSTANTS_MODULE) is not None


def install() -> tuple[str, ...]:
    """
    Supply the names wokkel 18.0.0 needs and Twisted no longer has.

    Idempotent: it only adds what is missing, so calls after the first
    (including the one made when this module is imported) do nothing.

    @return: What this call supplied: names set on
        C{twisted.python.compat}, then C{'twisted.python.constants'} if that
        module was created. Empty when nothing was missing.
    """
    # The import system resolves "from twisted.python.compat import ..."
    # through sys.modules (where Twisted keeps a deprecation proxy).
    supplied = _supplyNames(sys.modules["twisted.python.compat"])
    supplied += _supplyConstants(
        sys.modules, twisted.python, _constantsImportable()
    )
    return supplied


install()
