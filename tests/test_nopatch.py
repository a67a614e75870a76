# -*- test-case-name: tests.test_nopatch -*-
"""
xmppcomp does not monkey-patch scramp or pyOpenSSL (issue 17, item 3).

A fresh interpreter (so that no other test has imported xmppcomp yet)
imports scramp's and pyOpenSSL's modules, remembers every module
attribute and every attribute in the C{__dict__} of every class they
define, imports every module of xmppcomp, and reports each attribute that
is no longer the very same object (changed, added or removed).
"""

from __future__ import annotations

import textwrap

from twisted.trial.unittest import SynchronousTestCase

from .probehelpers import runProbe

#: Attributes xmppcomp is allowed to change, each a named compatibility
#: shim that issue 17 keeps: C{_scrampcompat.installTlsExporter} moves
#: C{tls-exporter} into scramp's supported channel-binding types until
#: scramp lists it itself.
ALLOWED = frozenset(
    {
        "scramp.core.CbName.SUPPORTED_TYPES",
        "scramp.core.CbName.UNSUPPORTED_TYPES",
    }
)

_PROBE = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys, types

    WATCHED = ("scramp", "OpenSSL")

    def watchedModules():
        return sorted(
            (name, module)
            for name, module in list(sys.modules.items())
            if module is not None and name.split(".")[0] in WATCHED
        )

    def namespace(module):
        # pyOpenSSL's crypto is a cryptography _ModuleWithDeprecations
        # proxy that copies names into itself on first access: read the
        # module it wraps.
        wrapped = vars(module).get("_module")
        if type(module) is not types.ModuleType and isinstance(wrapped, types.ModuleType):
            module = wrapped
        return vars(module)

    def snapshot():
        seen = {}
        for name, module in watchedModules():
            for attr, value in list(namespace(module).items()):
                seen[name + "." + attr] = value
                if isinstance(value, type) and value.__module__ == name:
                    for cattr, cvalue in list(vars(value).items()):
                        seen[name + "." + attr + "." + cattr] = cvalue
        return seen

    for top in WATCHED:
        module = importlib.import_module(top)
        for info in pkgutil.walk_packages(module.__path__, top + "."):
            try:
                importlib.import_module(info.name)
            except ImportError:
                pass
    before = snapshot()
    beforeModules = {name for name, _ in watchedModules()}

    import xmppcomp
    failed = {}
    for info in pkgutil.walk_packages(xmppcomp.__path__, "xmppcomp."):
        try:
            importlib.import_module(info.name)
        except Exception as e:
            failed[info.name] = repr(e)
    after = snapshot()
    changed = sorted(
        key
        for key in before.keys() | after.keys()
        if key.rsplit(".", 1)[0] in beforeModules or key in before
        if before.get(key, before) is not after.get(key, after)
    )
    print(json.dumps({"changed": changed, "failed": failed}))
    """
)


class NoMonkeyPatchingTests(SynchronousTestCase):
    """
    Importing xmppcomp leaves scramp and pyOpenSSL as they were.
    """

    def _probe(self) -> dict[str, object]:
        return runProbe(self, _PROBE)

    def test_everyModuleImports(self) -> None:
        """
        Every module of xmppcomp imports (else the check below would miss
        what it does).
        """
        self.assertEqual(self._probe()["failed"], {})

    def test_scrampAndOpenSSLUnchanged(self) -> None:
        """
        After every module of xmppcomp is imported, each module attribute
        and class attribute of scramp and pyOpenSSL is the very object it
        was before, but for the named shims in L{ALLOWED}. (Attributes
        set on instances, such as C{set_connect_state} on one
        C{OpenSSL.SSL.Connection}, are not covered.)
        """
        changed = set(self._probe()["changed"])  # type: ignore[arg-type]
        self.assertEqual(sorted(changed - ALLOWED), [])

    def test_allowedShimsStillNeeded(self) -> None:
        """
        Each shim in L{ALLOWED} still changes something: once scramp no
        longer needs it, this fails and says to delete it.
        """
        changed = set(self._probe()["changed"])  # type: ignore[arg-type]
        self.assertEqual(sorted(ALLOWED - changed), [])
