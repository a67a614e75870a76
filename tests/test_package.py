# -*- test-case-name: tests.test_package -*-
"""
The package's public names resolve.
"""

from twisted.trial.unittest import SynchronousTestCase

import xmppcomp


class PublicAPITests(SynchronousTestCase):
    """
    Every name in C{xmppcomp.__all__} is importable from C{xmppcomp}.
    """

    def test_exports(self) -> None:
        """
        Each exported name resolves to the object of its module, and an
        unknown name raises L{AttributeError}.
        """
        from xmppcomp.component import Component

        for name in xmppcomp.__all__:
            self.assertIsNotNone(getattr(xmppcomp, name), name)
        self.assertIs(xmppcomp.Component, Component)
        self.assertRaises(AttributeError, getattr, xmppcomp, "NoSuchThing")
