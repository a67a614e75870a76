# -*- test-case-name: tests.test_stream_features -*-
"""
Stream features with C{<required/>} (XEP-0192), as pure logic.

The receiving side builds C{<stream:features/>} from feature elements; the
initiating side parses what it received into L{OfferedFeature} values and
asks L{nextFeature} what to negotiate next, or whether negotiation is
complete (no required feature left).
"""

from __future__ import annotations

from typing import Collection, Iterable

import attrs
from twisted.words.xish import domish

from xmppcomp.errors import NegotiationError
from xmppcomp.ns import NS_SASL, NS_STREAMS, NS_TLS

#: Features RFC 6120 makes mandatory-to-negotiate even when a peer leaves
#: out C{<required/>} (section 5.3.1 for STARTTLS when the initiator
#: insists on TLS, section 6.3.1 for SASL).
ALWAYS_REQUIRED = frozenset({(NS_SASL, "mechanisms")})

STARTTLS = (NS_TLS, "starttls")
MECHANISMS = (NS_SASL, "mechanisms")


def markRequired(element: domish.Element) -> domish.Element:
    """
    Add C{<required/>} (in the feature's own namespace) to a feature element.

    @return: C{element}, for chaining.
    """
    element.addElement((element.uri, "required"))
    return element


def isMarkedRequired(element: domish.Element) -> bool:
    """
    Whether a feature element carries a C{<required/>} child.
    """
    return any(child.name == "required" for child in element.elements())


def featuresElement(children: Iterable[domish.Element]) -> domish.Element:
    """
    Wrap feature elements in C{<stream:features/>}.
    """
    features = domish.Element((NS_STREAMS, "features"))
    for child in children:
        features.addChild(child)
    return features


@attrs.frozen
class OfferedFeature:
    """
    One feature the receiving side advertised.

    @ivar key: C{(namespace, name)} of the feature element.
    @ivar element: the element itself.
    @ivar required: whether negotiation is incomplete until it is negotiated.
    """

    key: tuple[str, str]
    element: domish.Element = attrs.field(eq=False)
    required: bool


def parseFeatures(features: domish.Element) -> list[OfferedFeature]:
    """
    The features in a received C{<stream:features/>}, in document order.
    """
    offered = []
    for child in features.elements():
        key = (child.uri or "", child.name)
        required = isMarkedRequired(child) or key in ALWAYS_REQUIRED
        offered.append(OfferedFeature(key, child, required))
    return offered


def nextFeature(
    offered: list[OfferedFeature],
    known: Collection[tuple[str, str]],
    done: Collection[tuple[str, str]] = (),
) -> OfferedFeature | None:
    """
    Decide what the initiating side negotiates next.

    Required features come first, in the order offered; a voluntary feature
    is never negotiated by this walk (the caller may choose to).

    @param offered: what the receiving side advertised.
    @param known: keys of the features this side can negotiate.
    @param done: keys already negotiated on this stream.
    @return: the next required feature, or C{None} when none is left and
        negotiation is complete.
    @raise NegotiationError: a required feature this side cannot negotiate.
    """
    for feature in offered:
        if not feature.required or feature.key in done:
            continue
        if feature.key not in known:
            raise NegotiationError(
                "the server requires stream feature {%s}%s, which this "
                "component cannot negotiate" % feature.key
            )
        return feature
    return None
