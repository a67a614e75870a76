# -*- test-case-name: tests.test_wokkelcompat -*-
"""
Tests for L{xmppcomp._wokkelcompat}.
"""

from __future__ import annotations

# The shim must be imported before any wokkel module; keep this first.
import xmppcomp._wokkelcompat as compat  # isort: skip

import importlib
import sys
import types
from typing import Any

import constantly
import twisted.python
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from wokkel.generic import parseXml
from wokkel.test.helpers import TestableStreamManager


def _dispatch(manager: Any, xml: str) -> Any:
    """
    Receive a stanza on a test stream manager and return the one stanza it
    sent in response.

    @param manager: A L{TestableStreamManager}.
    @param xml: The stanza received.
    @return: The element sent.
    """
    before = len(manager.stub.output)
    manager.stub.send(parseXml(xml))
    sent = manager.stub.output[before:]
    assert len(sent) == 1, sent
    return sent[0]


class InstallTests(SynchronousTestCase):
    """
    Tests for L{compat.install} and the names it supplies.
    """

    def test_compatNames(self) -> None:
        """
        After the import, every name wokkel imports from
        C{twisted.python.compat} is importable, with Python 3 semantics.
        """
        from twisted.python.compat import (  # type: ignore[attr-defined]
            _PY3,
            StringType,
            iteritems,
            itervalues,
            unicode,
        )

        self.assertIs(_PY3, True)
        self.assertIs(unicode, str)
        self.assertIs(StringType, str)
        self.assertEqual(list(iteritems({"a": 1})), [("a", 1)])
        self.assertEqual(list(itervalues({"a": 1})), [1])

    def test_idempotent(self) -> None:
        """
        L{compat.install} was run at import; running it again supplies
        nothing and leaves the names as they were.
        """
        from twisted.python.compat import _PY3  # type: ignore[attr-defined]

        self.assertEqual(compat.install(), ())
        self.assertIs(_PY3, True)
        self.assertIs(sys.modules[compat.CONSTANTS_MODULE].Values, constantly.Values)

    def test_supplyMissingNames(self) -> None:
        """
        On a module that lacks them all, every name of L{compat.COMPAT_NAMES}
        is set, with Python 3 values; a second run sets nothing.
        """
        module = types.ModuleType("stand-in")
        self.assertEqual(
            set(compat._supplyNames(module)),
            {"_PY3", "unicode", "StringType", "iteritems", "itervalues"},
        )
        self.assertIs(module._PY3, True)
        self.assertIs(module.unicode, str)
        self.assertIs(module.StringType, str)
        mapping = {"k": "v"}
        self.assertEqual(module.iteritems(mapping), mapping.items())
        self.assertEqual(list(module.itervalues(mapping)), ["v"])
        self.assertEqual(compat._supplyNames(module), ())

    def test_keepsExistingNames(self) -> None:
        """
        A name the module already has is not replaced.
        """
        module = types.ModuleType("stand-in")
        marker = object()
        module.unicode = marker
        supplied = compat._supplyNames(module)
        self.assertNotIn("unicode", supplied)
        self.assertIs(module.unicode, marker)

    def test_supplyConstantsModule(self) -> None:
        """
        When Twisted lacks C{twisted.python.constants}, it is recreated as
        the re-export of C{constantly} it was, registered in the modules
        mapping and on the package; a second run does nothing.
        """
        modules: dict[str, types.ModuleType] = {}
        package = types.ModuleType("stand-in")
        self.assertEqual(
            compat._supplyConstants(modules, package, False),
            (compat.CONSTANTS_MODULE,),
        )
        module = modules[compat.CONSTANTS_MODULE]
        self.assertIs(package.constants, module)
        for name in compat.CONSTANTS_NAMES:
            self.assertIs(getattr(module, name), getattr(constantly, name))
        self.assertEqual(compat._supplyConstants(modules, package, False), ())

    def test_constantsModuleImportable(self) -> None:
        """
        When Twisted still ships C{twisted.python.constants}, nothing is
        created.
        """
        modules: dict[str, types.ModuleType] = {}
        self.assertEqual(
            compat._supplyConstants(modules, types.ModuleType("p"), True), ()
        )
        self.assertEqual(modules, {})

    def test_constantsImport(self) -> None:
        """
        After the import, C{twisted.python.constants} imports, both ways
        wokkel and others spell it.
        """
        from twisted.python.constants import (  # type: ignore[import-not-found]
            ValueConstant,
            Values,
        )

        self.assertIs(Values, constantly.Values)
        self.assertIs(ValueConstant, constantly.ValueConstant)
        self.assertIs(twisted.python.constants.Names, constantly.Names)  # type: ignore[attr-defined]


class ImportOrderTests(SynchronousTestCase):
    """
    Importing a wokkel module before L{compat.install} has run fails; after,
    it works.
    """

    def setUp(self) -> None:
        """
        Put a stand-in C{twisted.python.compat} holding only what Twisted 26
        still has in C{sys.modules}, and forget C{wokkel.data_form}; both
        are restored after the test.
        """
        import wokkel
        import wokkel.data_form  # noqa: F401 (so that there is one to restore)

        saved = {
            name: sys.modules[name]
            for name in ("twisted.python.compat", "wokkel.data_form")
        }
        savedAttribute = wokkel.data_form  # type: ignore[attr-defined]

        def restore() -> None:
            sys.modules.update(saved)
            wokkel.data_form = savedAttribute  # type: ignore[attr-defined]

        self.addCleanup(restore)
        stale = types.ModuleType("twisted.python.compat")
        for name in ("unicode", "StringType", "iteritems", "itervalues"):
            setattr(stale, name, compat.COMPAT_NAMES[name])
        sys.modules["twisted.python.compat"] = stale
        del sys.modules["wokkel.data_form"]

    def test_importOrder(self) -> None:
        """
        Without the shim, C{wokkel.data_form} (which C{wokkel.disco} and
        C{wokkel.ping} import) fails to import for want of C{_PY3}; the
        failure is not cached, so after L{compat.install} it imports, taking
        the Python 3 branch.
        """
        with self.assertRaises(ImportError) as caught:
            importlib.import_module("wokkel.data_form")
        self.assertIn("_PY3", str(caught.exception))
        self.assertNotIn("wokkel.data_form", sys.modules)

        self.assertEqual(compat.install(), ("_PY3",))
        dataForm = importlib.import_module("wokkel.data_form")
        self.assertIs(dataForm.Form.keys, dataForm.Form.iterkeys)


class WokkelTests(SynchronousTestCase):
    """
    With the shim, the wokkel modules that failed to import work.
    """

    def test_modulesImport(self) -> None:
        """
        C{wokkel.disco}, C{data_form}, C{ping}, C{pubsub} and C{muc} import.
        """
        expected = {
            "wokkel.disco": "DiscoHandler",
            "wokkel.data_form": "Form",
            "wokkel.ping": "PingHandler",
            "wokkel.pubsub": "PubSubService",
            "wokkel.muc": "MUCClient",
        }
        for name, attribute in expected.items():
            module = importlib.import_module(name)
            self.assertTrue(hasattr(module, attribute), name)

    def test_mucConstants(self) -> None:
        """
        C{wokkel.muc}'s constants, built on the recreated
        C{twisted.python.constants}, work.
        """
        from wokkel import muc

        self.assertIs(muc.STATUS_CODE.lookupByValue(110), muc.STATUS_CODE.SELF_PRESENCE)

    def test_dataForm(self) -> None:
        """
        A data form round-trips through its element, and its mapping
        methods are the Python 3 ones.
        """
        from wokkel import data_form

        form = data_form.Form(
            "submit", fields=[data_form.Field(var="colour", value="blue")]
        )
        parsed = data_form.Form.fromElement(form.toElement())
        self.assertEqual(list(parsed.keys()), ["colour"])
        self.assertEqual(parsed.getValues(), {"colour": "blue"})

    def test_discoHandlerAnswers(self) -> None:
        """
        A wokkel C{DiscoHandler} answers a disco#info request with the
        identity and features of its sibling handlers.
        """
        from wokkel import disco
        from wokkel.iwokkel import IDisco
        from wokkel.subprotocols import XMPPHandler
        from zope.interface import implementer

        @implementer(IDisco)
        class Identity(XMPPHandler):
            def getDiscoInfo(self, requestor: Any, target: Any, node: str = "") -> Any:
                return [disco.DiscoIdentity("component", "generic", "Test")]

            def getDiscoItems(self, requestor: Any, target: Any, node: str = "") -> Any:
                return []

        manager = TestableStreamManager(reactor=Clock())
        disco.DiscoHandler().setHandlerParent(manager)
        Identity().setHandlerParent(manager)
        response = _dispatch(
            manager,
            "<iq type='get' id='d1' from='user@example.org/r'"
            " to='comp.example.org'>"
            "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        )
        self.assertEqual(
            (response["type"], response["id"], response["to"], response["from"]),
            ("result", "d1", "user@example.org/r", "comp.example.org"),
        )
        info = disco.DiscoInfo.fromElement(response.query)
        self.assertEqual(info.identities, {("component", "generic"): "Test"})

    def test_pingHandlerAnswers(self) -> None:
        """
        A wokkel C{PingHandler} answers a ping with an empty result.
        """
        from wokkel import ping

        manager = TestableStreamManager(reactor=Clock())
        ping.PingHandler().setHandlerParent(manager)
        response = _dispatch(
            manager,
            "<iq type='get' id='p1' from='user@example.org/r'"
            " to='comp.example.org'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        self.assertEqual(
            (response["type"], response["id"], response["to"], response["from"]),
            ("result", "p1", "user@example.org/r", "comp.example.org"),
        )
        self.assertEqual(list(response.elements()), [])


class StillNeededTests(SynchronousTestCase):
    """
    The shim is one of issue 17's two named exceptions: it stays only while
    wokkel cannot import without it.
    """

    def test_wokkelNeedsIt(self) -> None:
        """
        In a fresh interpreter that never imports xmppcomp, the wokkel
        modules xmppcomp uses do not all import on this Twisted. Once they
        do (a fixed wokkel, or a Twisted that has the names again), this
        fails: delete L{xmppcomp._wokkelcompat} as its docstring says.
        """
        import subprocess

        probe = (
            "import importlib, sys\n"
            "failed = []\n"
            "for name in ('wokkel.data_form', 'wokkel.disco', 'wokkel.ping', 'wokkel.muc'):\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except ImportError as e:\n"
            "        failed.append('%s: %s' % (name, e))\n"
            "assert 'xmppcomp' not in sys.modules\n"
            "print('\\n'.join(failed))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
        )
        self.assertNotEqual(
            result.stdout.strip(),
            "",
            "wokkel imports without xmppcomp._wokkelcompat now: delete the shim",
        )
