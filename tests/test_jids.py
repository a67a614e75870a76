# -*- test-case-name: tests.test_jids -*-
"""
Tests for L{xmppcomp.jids}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber import jid

from xmppcomp import jids


class ParseJIDTests(SynchronousTestCase):
    """
    Tests for L{jids.parseJID}.
    """

    def test_parsesLikeTwisted(self) -> None:
        """
        The result is what L{jid.JID} makes of the text, normalised.
        """
        parsed = jids.parseJID("User@Example.COM/Res")
        self.assertEqual(parsed, jid.JID("user@example.com/Res"))
        self.assertEqual(parsed.full(), "user@example.com/Res")

    def test_remembered(self) -> None:
        """
        The same short text gives the very same object.
        """
        self.assertIs(jids.parseJID("a@remembered.example"), jids.parseJID("a@remembered.example"))

    def test_longNotRemembered(self) -> None:
        """
        A text longer than L{jids.MAX_CACHED_LENGTH} is parsed each time and
        never kept.
        """
        text = "u@" + "x" * 60 + "." + "y" * jids.MAX_CACHED_LENGTH + ".example"
        first = jids.parseJID(text)
        self.assertIsNot(jids.parseJID(text), first)
        self.assertEqual(first, jid.JID(text))
        self.assertNotIn(text, jids._cache)

    def test_invalidRaisesEachTime(self) -> None:
        """
        An invalid JID raises every time; nothing is kept for it.
        """
        for _ in range(2):
            self.assertRaises(jid.InvalidFormat, jids.parseJID, "a@b@c.example")
        self.assertNotIn("a@b@c.example", jids._cache)

    def test_bounded(self) -> None:
        """
        At most L{jids.CACHE_SIZE} parses are kept.
        """
        for n in range(jids.CACHE_SIZE + 10):
            jids.parseJID("bounded%d.example" % (n,))
            self.assertLessEqual(len(jids._cache), jids.CACHE_SIZE)
        self.assertIn("bounded%d.example" % (jids.CACHE_SIZE + 9,), jids._cache)
