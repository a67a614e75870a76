# -*- test-case-name: tests.test_stream_receiving -*-
"""
The XML stream both ends use while they negotiate: until negotiation is
complete, first-level elements go to the authenticator first.
"""

from __future__ import annotations

from typing import Callable

from twisted.words.xish import domish

from xmppcomp.ns import NS_STREAMS
from xmppcomp.stream.xmlstream import XmppXmlStream

#: The three stanza kinds (RFC 6120 section 8).
STANZA_NAMES = frozenset({"message", "presence", "iq"})


def isStanza(element: domish.Element) -> bool:
    """
    Whether a first-level element is a stanza of the stream's content
    namespace (C{jabber:client} or C{jabber:component:accept}).
    """
    return element.name in STANZA_NAMES and element.uri in (
        "jabber:client",
        "jabber:component:accept",
    )


class NegotiatingXmlStream(XmppXmlStream):
    """
    An L{XmppXmlStream} whose authenticator sees every first-level element
    before negotiation completes.

    @ivar negotiated: C{True} once the authenticator declared negotiation
        complete (it also dispatches
        L{twisted.words.protocols.jabber.xmlstream.STREAM_AUTHD_EVENT}).
    """

    negotiated = False

    #: Once negotiated, first-level elements go straight to this callable
    #: instead of through the event dispatcher (the router's fast path).
    #: Stream errors are still dispatched.
    elementHandler: Callable[[domish.Element], None] | None = None

    def onElement(self, element: domish.Element) -> None:
        if self.negotiated and self.elementHandler is not None:
            if element.uri != NS_STREAMS:
                self.elementHandler(element)
                return
        elif (
            not self.negotiated
            and not (element.uri == NS_STREAMS and element.name == "error")
            and self.authenticator.interceptElement(element)
        ):
            return
        XmppXmlStream.onElement(self, element)
