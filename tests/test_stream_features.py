# -*- test-case-name: tests.test_stream_features -*-
"""
Tests for L{xmppcomp.stream.features}: XEP-0192 required flags and the
initiating side's walk.
"""

from twisted.trial.unittest import SynchronousTestCase
from twisted.words.xish import domish

from xmppcomp.errors import NegotiationError
from xmppcomp.ns import NS_COMPONENT_TMP, NS_STREAMS, NS_TLS
from xmppcomp.stream.features import (
    MECHANISMS,
    STARTTLS,
    featuresElement,
    isMarkedRequired,
    markRequired,
    nextFeature,
    parseFeatures,
)

BIND = (NS_COMPONENT_TMP, "bind")


def _features(*children: domish.Element) -> domish.Element:
    # Round-trip through XML, as the initiating side sees a parsed element.
    xml = featuresElement(children).toXml()
    parsed = []
    stream = domish.elementStream()
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = parsed.append
    stream.DocumentEndEvent = lambda: None
    stream.parse(b"<stream:stream xmlns:stream='%s'>" % NS_STREAMS.encode())
    stream.parse(xml.encode())
    return parsed[0]


class RequiredFlagTests(SynchronousTestCase):
    """
    C{<required/>} is added in the feature's namespace and read back.
    """

    def test_markRequired(self) -> None:
        """
        L{markRequired} adds a C{<required/>} child in the feature's own
        namespace, as XEP-0192 shows.
        """
        element = markRequired(domish.Element(STARTTLS))
        self.assertEqual(
            element.toXml(),
            "<starttls xmlns='%s'><required/></starttls>" % (NS_TLS,),
        )
        self.assertTrue(isMarkedRequired(element))

    def test_notRequired(self) -> None:
        """
        A feature without C{<required/>} is voluntary.
        """
        self.assertFalse(isMarkedRequired(domish.Element(BIND)))

    def test_featuresElement(self) -> None:
        """
        L{featuresElement} wraps the features in C{<stream:features/>}.
        """
        features = featuresElement([domish.Element(STARTTLS)])
        self.assertEqual((features.uri, features.name), (NS_STREAMS, "features"))
        self.assertEqual([c.name for c in features.elements()], ["starttls"])

    def test_parse(self) -> None:
        """
        L{parseFeatures} keeps document order and reads the required flag;
        SASL is mandatory-to-negotiate even without the flag (RFC 6120).
        """
        mechanisms = domish.Element(MECHANISMS)
        mechanisms.addElement("mechanism", content="SCRAM-SHA-1")
        offered = parseFeatures(
            _features(mechanisms, markRequired(domish.Element(BIND)), domish.Element(("urn:x", "extra")))
        )
        self.assertEqual(
            [(f.key, f.required) for f in offered],
            [(MECHANISMS, True), (BIND, True), (("urn:x", "extra"), False)],
        )


class WalkTests(SynchronousTestCase):
    """
    L{nextFeature} says what to negotiate next and when negotiation is
    complete.
    """

    def test_complete(self) -> None:
        """
        With no required feature left, negotiation is complete.
        """
        offered = parseFeatures(_features(domish.Element(("urn:x", "extra"))))
        self.assertIsNone(nextFeature(offered, known=[]))

    def test_requiredKnown(self) -> None:
        """
        A required feature this side knows is the next step; once done,
        negotiation is complete.
        """
        offered = parseFeatures(_features(markRequired(domish.Element(BIND))))
        feature = nextFeature(offered, known=[BIND])
        assert feature is not None
        self.assertEqual(feature.key, BIND)
        self.assertIsNone(nextFeature(offered, known=[BIND], done=[BIND]))

    def test_requiredUnknown(self) -> None:
        """
        A required feature this side cannot negotiate is an error that
        names the feature.
        """
        offered = parseFeatures(_features(markRequired(domish.Element(("urn:x", "odd")))))
        e = self.assertRaises(NegotiationError, nextFeature, offered, [BIND])
        self.assertIn("{urn:x}odd", str(e))

    def test_order(self) -> None:
        """
        Required features are taken in the order offered.
        """
        offered = parseFeatures(
            _features(
                markRequired(domish.Element(("urn:a", "one"))),
                markRequired(domish.Element(("urn:b", "two"))),
            )
        )
        known = [("urn:a", "one"), ("urn:b", "two")]
        first = nextFeature(offered, known)
        assert first is not None
        second = nextFeature(offered, known, done=[first.key])
        assert second is not None
        self.assertEqual((first.key, second.key), (("urn:a", "one"), ("urn:b", "two")))
