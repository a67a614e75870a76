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

    def test_notRemembered(self) -> None:
        """
        Nothing is kept at module level: each parse is a new object.
        """
        self.assertIsNot(jids.parseJID("a@once.example"), jids.parseJID("a@once.example"))


class JIDCacheTests(SynchronousTestCase):
    """
    Tests for L{jids.JIDCache}.
    """

    def test_parsesLikeTwisted(self) -> None:
        """
        The result is what L{jid.JID} makes of the text, normalised.
        """
        parsed = jids.JIDCache()("User@Example.COM/Res")
        self.assertEqual(parsed, jid.JID("user@example.com/Res"))
        self.assertEqual(parsed.full(), "user@example.com/Res")

    def test_remembered(self) -> None:
        """
        The same short text gives the very same object, from the same
        cache; another cache keeps its own.
        """
        cache = jids.JIDCache()
        self.assertIs(cache("a@remembered.example"), cache("a@remembered.example"))
        self.assertIn("a@remembered.example", cache)
        other = jids.JIDCache()
        self.assertNotIn("a@remembered.example", other)
        self.assertIsNot(other("a@remembered.example"), cache("a@remembered.example"))

    def test_longNotRemembered(self) -> None:
        """
        A text longer than L{jids.MAX_CACHED_LENGTH} is parsed each time and
        never kept.
        """
        cache = jids.JIDCache()
        text = "u@" + "x" * 60 + "." + "y" * jids.MAX_CACHED_LENGTH + ".example"
        first = cache(text)
        self.assertIsNot(cache(text), first)
        self.assertEqual(first, jid.JID(text))
        self.assertNotIn(text, cache)
        self.assertEqual(len(cache), 0)

    def test_invalidRaisesEachTime(self) -> None:
        """
        An invalid JID raises every time; nothing is kept for it.
        """
        cache = jids.JIDCache()
        for _ in range(2):
            self.assertRaises(jid.InvalidFormat, cache, "a@b@c.example")
        self.assertNotIn("a@b@c.example", cache)

    def test_bounded(self) -> None:
        """
        At most L{jids.CACHE_SIZE} parses are kept (or the size given).
        """
        cache = jids.JIDCache()
        for n in range(jids.CACHE_SIZE + 10):
            cache("bounded%d.example" % (n,))
            self.assertLessEqual(len(cache), jids.CACHE_SIZE)
        self.assertIn("bounded%d.example" % (jids.CACHE_SIZE + 9,), cache)
        small = jids.JIDCache(size=3, maxLength=20)
        for n in range(7):
            small("s%d.example" % (n,))
            self.assertLessEqual(len(small), 3)
        small("a-longer-name.example.net")
        self.assertNotIn("a-longer-name.example.net", small)
