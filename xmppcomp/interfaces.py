"""
The zope.interface seams of xmppcomp.

Methods are declared without C{self}, as zope.interface expects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec

from twisted.cred.credentials import ICredentials
from zope.interface import Attribute, Interface

__all__ = [
    "ICredentialStore",
    "IInitiatingFeature",
    "IInitiatingMechanism",
    "IInitiatingSession",
    "INegotiator",
    "IRawStanzaParser",
    "IReceivingFeature",
    "IReceivingSession",
    "IStanzaFilters",
    "IStanzaParser",
    "IXMPPConfirmationCredentials",
    "IXmppStream",
]

_P = ParamSpec("_P")

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred
    from twisted.words.xish import domish


class ICredentialStore(Interface):
    """
    Where the receiving side looks up SCRAM keys. A store never holds the
    plaintext secret: only salt, iteration count, StoredKey and ServerKey
    (RFC 5802 section 3), per hash function.
    """

    def scramKeys(identity: str, hashName: str) -> object:
        """
        The keys for C{identity} (a domain) and C{hashName} (C{"sha-1"} or
        C{"sha-256"}).

        @return: a L{xmppcomp.stream.sasl.store.ScramKeys}, or C{None} if
            the identity is unknown or has no keys for that hash.
        @raise Exception: if the store cannot answer now (the caller then
            answers C{temporary-auth-failure}).
        """


class IInitiatingMechanism(Interface):
    """
    The initiating side of one SASL mechanism: bytes in, bytes out, no I/O.
    """

    name = Attribute("The IANA mechanism name, e.g. C{'SCRAM-SHA-256-PLUS'}.")

    def getInitialResponse() -> bytes | None:
        """
        The initial response sent inside C{<auth/>}, or C{None} for none.
        """

    def getResponse(challenge: bytes) -> bytes:
        """
        The response to a server challenge.

        @raise xmppcomp.errors.NegotiationError: the challenge is invalid.
        """

    def checkSuccess(additionalData: bytes | None) -> None:
        """
        Verify the additional data that came with C{<success/>} (for SCRAM,
        the server signature, which authenticates the server).

        @raise xmppcomp.errors.NegotiationError: the server did not prove
            knowledge of the credentials.
        """


class INegotiator(Interface):
    """
    What a negotiating stream (L{xmppcomp.stream.negotiating.NegotiatingXmlStream})
    calls on its authenticator besides Twisted's C{Authenticator} methods.
    """

    def interceptElement(element: domish.Element) -> bool:
        """
        Offer a first-level element received before negotiation completed.

        @return: C{True} if negotiation consumed it, C{False} to dispatch it
            as a negotiated stream's elements are.
        """

    def tlsHandshakeCompleted() -> None:
        """
        The TLS handshake under the stream completed.
        """


class IReceivingSession(Interface):
    """
    One incoming stream's negotiation, as the features negotiated after
    SASL (L{IReceivingFeature}) see it.
    """

    xmlstream = Attribute("The stream being negotiated.")
    identity = Attribute("The authenticated domain (C{str}), once SASL succeeded.")

    def send(element: domish.Element | str) -> None:
        """
        Send an element (or its serialisation) on the stream.
        """

    def afterRead(f: Callable[_P, object], *args: _P.args, **kwargs: _P.kwargs) -> None:
        """
        Call C{f(*args, **kwargs)} once the read being handled is done and
        its answers are written: for bookkeeping the peer need not wait
        for.
        """


class IInitiatingSession(Interface):
    """
    One outgoing stream's negotiation, as the features negotiated after
    SASL (L{IInitiatingFeature}) see it.
    """

    xmlstream = Attribute("The stream being negotiated.")

    def serialize(element: domish.Element) -> str:
        """
        C{element} serialised as the stream sends it.
        """

    def request(iq: domish.Element, xml: str | None = None) -> Deferred[domish.Element]:
        """
        Send an IQ request and get its answer, matched by id and sender
        before the stream dispatches it; the negotiation timeout bounds
        the wait.

        @param xml: C{iq} serialised ahead (then it has its C{id}), or
            C{None}.
        """


class IReceivingFeature(Interface):
    """
    A stream feature the receiving side offers after SASL (for example the
    XEP-0225 hostname bind), registered with the receiving authenticator.
    """

    def featureElement(session: IReceivingSession) -> domish.Element | None:
        """
        The element to advertise in C{<stream:features/>} for this session,
        or C{None} when the feature is not offered (any more).
        """

    def isRequired(session: IReceivingSession) -> bool:
        """
        Whether negotiation is incomplete until this feature is negotiated.
        """

    def handleElement(session: IReceivingSession, element: domish.Element) -> bool:
        """
        Offer a first-level element received before negotiation completed.

        @return: C{True} if this feature consumed the element (it answers
            through C{session.send} itself), C{False} to let others try.
        """


class IInitiatingFeature(Interface):
    """
    The initiating side of a stream feature negotiated after SASL (for
    example the XEP-0225 hostname bind).
    """

    key = Attribute("C{(namespace, name)} of the advertised feature element.")

    def prepare(session: IInitiatingSession) -> None:
        """
        Called once SASL has succeeded, while the server restarts the
        stream: make ahead what L{negotiate} will send (or nothing).
        """

    def negotiate(session: IInitiatingSession, feature: domish.Element) -> Deferred[None]:
        """
        Negotiate the feature on an authenticated stream.

        @param feature: the advertised feature element.
        @return: a L{Deferred} that fires when the feature is negotiated,
            or fails to abort negotiation.
        """


class IXMPPConfirmationCredentials(ICredentials, Interface):
    """
    XEP-0070 credentials together with the request they are for: a checker
    needs the method and the full URL to ask the JID.

    (C{Interface} is listed as a base beside C{ICredentials}, which already
    derives from it, so that pydoctor sees an interface without Twisted's
    inventory.)
    """

    attempt = Attribute("The L{xmppcomp.httpauth.Attempt}.")


class IStanzaParser(Interface):
    """
    The parser of the bytes an XML stream receives
    (L{xmppcomp.stream.parser.StanzaParser}, or the router's
    L{xmppcomp.router.rawstanzas.RawStanzaParser}): restricted XML with
    size and depth limits, turned into a root element and top-level
    elements, each handed to a callback.
    """

    DocumentStartEvent = Attribute("Called with the root element (the stream header).")
    ElementEvent = Attribute("Called with each complete top-level element (a stanza).")
    DocumentEndEvent = Attribute("Called, without argument, at the root's end tag.")
    maxStanzaSize = Attribute("The limit in bytes on a stanza, the header and what is between stanzas.")
    maxDepth = Attribute("The limit on nesting levels below the root (a stanza is level 1).")

    def parse(data: bytes) -> None:
        """
        Parse received bytes, calling the callbacks as elements complete.

        @raise twisted.words.xish.domish.ParserError: the data is not
            allowed (L{xmppcomp.stream.parser.conditionForParserError}
            gives the stream error for it); the parser is dead from then on.
        """

    def discard() -> None:
        """
        Call no callback any more, whatever follows (the stream restarted).
        """


class IRawStanzaParser(IStanzaParser):
    """
    A parser that can keep each top-level stanza's bytes as received, for
    the router to forward them without serialising the element again, and
    may hand over a stanza I{shallow} (its top-level attributes only, what
    it contains checked but not built): see
    L{xmppcomp.router.rawstanzas.RawStanzaParser}.
    """

    def captureRawStanzas() -> None:
        """
        Keep the raw bytes of the stanzas whose bytes are all seen from now
        on.
        """

    def rawBytesOf(element: domish.Element) -> bytes | None:
        """
        The bytes C{element} arrived as, if it is the top-level stanza being
        handed over right now and they can be forwarded unchanged into any
        C{jabber:client} or C{jabber:component:accept} stream; else
        L{None}. They are only valid if the element was not changed.
        """

    def fullElement(element: domish.Element) -> domish.Element:
        """
        C{element} with everything it contains: C{element} itself, or, if it
        is the stanza being handed over and was parsed shallow, a complete
        copy parsed from its raw bytes. Call it before looking below a
        stanza's top-level attributes.
        """


class IXmppStream(Interface):
    """
    What the router uses of an XMPP stream besides Twisted's C{XmlStream}
    API: L{xmppcomp.stream.xmlstream.XmppXmlStream} provides it.
    """

    streamEnded = Attribute(
        "L{None} while the stream is open; then why it ended: a L{Failure} of the"
        " stream error sent or received, or the reason the connection was lost."
    )
    lastReceived = Attribute(
        "When data was last received, in reactor seconds (the connection time until then)."
    )

    def setParserFactory(factory: Callable[[int, int], IStanzaParser]) -> None:
        """
        Parse with parsers from C{factory}, called with the stream's
        C{maxStanzaSize} and C{maxDepth}: the current parser is replaced at
        once if it was fed nothing yet, else from the next restart of the
        stream on.
        """

    def sendRaw(data: bytes) -> None:
        """
        Send bytes that are already one or more serialised stanzas (such as
        an L{IRawStanzaParser} kept), unless the stream is closed; unlike
        C{send}, nothing is checked.
        """


class IStanzaFilters(Interface):
    """
    A handlers' parent (L{xmppcomp.component.Component} provides it) that
    lets a handler take stanzas over on their way out or in: a filter is a
    callable given each stanza (a L{domish.Element}) and returning whether
    it took the stanza over, in which case nothing else happens to it. The
    XTLS endpoint uses it to send the replies to requests that came
    through a tunnel back through that tunnel.

    Filters run in the order they were added; with none, nothing is
    called. A filter runs on every stanza: it must be quick, and leave the
    stanzas it does not take alone.
    """

    def addSendFilter(f: Callable[[domish.Element], bool]) -> None:
        """
        Give C{f} each stanza the handlers send (elements, not raw XML
        text) before it is sent or queued; when C{f} returns C{True} it
        took the stanza over, and it is neither sent nor queued.
        """

    def removeSendFilter(f: Callable[[domish.Element], bool]) -> None:
        """
        Stop giving stanzas to C{f}.

        @raise ValueError: C{f} is not a send filter.
        """

    def addReceiveFilter(f: Callable[[domish.Element], bool]) -> None:
        """
        Give C{f} each stanza received from the server before it is
        dispatched to the handlers; when C{f} returns C{True} it took the
        stanza over, and it is not dispatched.
        """

    def removeReceiveFilter(f: Callable[[domish.Element], bool]) -> None:
        """
        Stop giving stanzas to C{f}.

        @raise ValueError: C{f} is not a receive filter.
        """
