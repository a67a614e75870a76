# -*- test-case-name: tests.test_httpauth_protocol -*-
"""
XEP-0070 as pure logic: credentials, the C{<confirm/>} element, the
confirmation stanzas and the classification of replies.

Nothing here touches a transport or a clock; elements are
L{twisted.words.xish.domish} data and addresses are
L{twisted.words.protocols.jabber.jid.JID} values.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from urllib.parse import unquote_to_bytes

import attrs
import idna
from twisted.words.protocols.jabber import jid
from twisted.words.xish import domish

from xmppcomp.httpauth._target import UNSAFE_DISPLAY, XML_INVALID
from xmppcomp.jids import parseJID as plainJID
from xmppcomp.ns import NS_HTTP_AUTH, NS_XMPP_STANZAS

#: The realm XEP-0070 section 4.2 requires (case-sensitive).
REALM = "xmpp"

#: The longest transaction id accepted, in characters.
MAX_TRANSACTION_ID = 1024

#: IQ error conditions meaning "this entity does not do XEP-0070 over IQ":
#: the requester then falls back to the message form.
FALLBACK_CONDITIONS = frozenset({"feature-not-implemented", "service-unavailable"})

#: The error condition meaning "the user said no" (XEP-0070 section 4.5),
#: in the IQ and the message forms alike. Any other error means the user
#: could not be asked.
DENIAL_CONDITION = "not-authorized"

#: XEP-0334, Message Processing Hints.
NS_HINTS = "urn:xmpp:hints"

#: The hints the message form carries: a confirmation is current or
#: worthless, so it must not wait in offline storage (a server then
#: bounces it, which the requester reads as "could not be asked") nor be
#: archived.
MESSAGE_HINTS = ("no-store", "no-permanent-store")

#: Plain-text replies that confirm or deny (compared case-insensitively,
#: without surrounding blanks and trailing C{.} or C{!}).
AFFIRMATIVE = frozenset({"ok", "okay", "yes"})
NEGATIVE = frozenset({"no"})


class CredentialsError(Exception):
    """
    The C{Authorization} header cannot be used for XEP-0070.

    @ivar reason: a human-readable explanation, fit for a response body.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedHeader(CredentialsError):
    """
    The header is not valid Basic or Digest for realm C{xmpp}: bad base64,
    no colon, bad percent-encoding, text that is not UTF-8, a wrong realm.
    """


class MalformedJID(CredentialsError):
    """
    The user name is not a valid JID.
    """


class MissingTransactionId(CredentialsError):
    """
    The password (Basic) or cnonce (Digest) is empty or absent.
    """


class MalformedConfirm(ValueError):
    """
    A C{<confirm/>} element lacks one of its required attributes.
    """


@attrs.frozen
class XMPPCredentials:
    """
    What an XEP-0070 C{Authorization} header carries.

    @ivar jid: who made the request, full or bare.
    @ivar transactionId: the transaction identifier, percent-decoded.
    @ivar scheme: C{"basic"} or C{"digest"}.
    """

    jid: jid.JID
    transactionId: str
    scheme: str


def decodeField(raw: bytes, what: str) -> str:
    """
    Percent-decode (RFC 3986 section 2.1) one credential field and decode
    the octets as UTF-8.

    @param what: the field's name, for the error message.
    @raise MalformedHeader: the octets are not UTF-8.
    """
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedHeader(f"the {what} is not UTF-8 after percent-decoding")


#: One character that must not reach a stanza or a displayed message:
#: those XML 1.0 forbids (C0 controls but tab, newline and carriage
#: return; lone surrogates; U+FFFE and U+FFFF), the C0 controls it allows
#: and DEL and the C1 controls, and those that make a displayed text lie
#: (bidirectional controls, line and paragraph separators).
UNSAFE_CHARACTER = re.compile(XML_INVALID.pattern + "|" + UNSAFE_DISPLAY.pattern)


def describeCharacter(character: str) -> str:
    """
    Name a character L{UNSAFE_CHARACTER} matches, for an error message:
    C{"U+202E (a bidirectional text control)"}.
    """
    code = ord(character)
    if 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF):
        kind = "a character XML does not allow"
    elif code < 0x20 or 0x7F <= code <= 0x9F:
        kind = "a control character"
    elif code in (0x2028, 0x2029):
        kind = "a line or paragraph separator"
    else:
        kind = "a bidirectional text control"
    return f"U+{code:04X} ({kind})"


def canonicalJID(parsed: jid.JID) -> jid.JID:
    """
    The one form of a user's JID the confirmer decides, asks and keeps
    on: C{parsed} (stringprepped) with its domain's trailing dot stripped
    and its A-labels as U-labels (RFC 7622 section 3.2: a domainpart holds
    U-labels, and C{juliet@capulet.lit.} is C{juliet@capulet.lit}). So
    C{alice@xn--bcher-kva.example.} and C{alice@bücher.example} are one
    address: one key for single use and limits, one match for the access
    rules, and the address asked.

    @raise MalformedJID: nothing is left of the domain, or an A-label is
        not one (IDNA 2008).
    """
    host = parsed.host
    if host.endswith("."):
        if len(host) == 1:
            raise MalformedJID("the user name is not a valid JID: its domain is empty")
        host = host[:-1]
    if "xn--" in host:  # stringprep lower-cased it
        labels = host.split(".")
        for i, label in enumerate(labels):
            if label.startswith("xn--"):
                try:
                    labels[i] = idna.decode(label)
                except idna.IDNAError:
                    raise MalformedJID(
                        f"the user name is not a valid JID: {label[:100]!r} in its domain is no valid A-label "
                        "(IDNA 2008)"
                    ) from None
        host = ".".join(labels)
    if host == parsed.host:
        return parsed
    try:
        return jid.JID(tuple=(parsed.user, host, parsed.resource))
    except Exception:
        # Twisted's stringprep raises more than InvalidFormat on bad input.
        raise MalformedJID("the user name is not a valid JID") from None


def parseJID(text: str, jids: Callable[[str], jid.JID] = plainJID) -> jid.JID:
    """
    Parse and normalise the JID given as user name: stringprep, then
    L{canonicalJID} (no trailing dot, U-labels). The result is
    fit for an XML attribute (checked, though stringprep refuses every
    character that would not be).

    @param jids: parses a JID text: the confirmer's
        L{JIDCache<xmppcomp.jids.JIDCache>} (its requester's), so that
        the same user names are not stringprepped on every request; by
        default parsed each time.
    @raise MalformedJID: it is empty or not a valid JID.
    """
    if not text:
        raise MalformedJID("the user name must be your JID, and it is empty")
    unsafe = UNSAFE_CHARACTER.search(text)
    if unsafe is not None:
        raise MalformedJID(
            "the user name is not a valid JID: it contains "
            + describeCharacter(unsafe.group())
        )
    try:
        parsed = canonicalJID(jids(text))
    except MalformedJID:
        raise
    except Exception:
        # Twisted's stringprep raises more than InvalidFormat on bad input.
        raise MalformedJID(f"the user name {text[:100]!r} is not a valid JID")
    # RFC 7622 section 3: each part at most 1023 bytes; Twisted does not
    # check, and the name would go into a stanza to an arbitrary domain.
    for part in (parsed.user, parsed.host, parsed.resource):
        if part is not None and len(part.encode("utf-8")) > _MAX_JID_PART:
            raise MalformedJID("the user name is not a valid JID: a part is too long")
    if UNSAFE_CHARACTER.search(parsed.full()) is not None:
        raise MalformedJID(f"the user name {text[:100]!r} is not a valid JID")
    return parsed


#: RFC 7622 section 3: the most bytes of one part of a JID.
_MAX_JID_PART = 1023


def checkTransactionId(text: str) -> str:
    """
    Check a decoded transaction id: it goes into an XML attribute and into
    the body of the message form, which a person reads.

    @raise MissingTransactionId: it is empty.
    @raise MalformedHeader: it is too long, or holds a character of
        L{UNSAFE_CHARACTER}: one XML 1.0 forbids, a control character, or
        one that makes a displayed message lie (a bidirectional control, a
        line or paragraph separator); the reason names it (C{U+XXXX}).
    """
    if not text:
        raise MissingTransactionId(
            "the password must be a transaction id of your choosing, and it is empty"
        )
    if len(text) > MAX_TRANSACTION_ID:
        raise MalformedHeader(
            f"the transaction id is longer than {MAX_TRANSACTION_ID} characters"
        )
    unsafe = UNSAFE_CHARACTER.search(text)
    if unsafe is not None:
        raise MalformedHeader(
            "the transaction id contains " + describeCharacter(unsafe.group())
        )
    return text


def credentialsFromBasic(
    username: bytes, password: bytes, jids: Callable[[str], jid.JID] = plainJID
) -> XMPPCredentials:
    """
    XEP-0070 section 4.3.1: the Basic user id is the JID, the password the
    transaction id, both percent-encoded before base64.

    @param username: the user id as the base64 decoding gave it.
    @param password: the password as the base64 decoding gave it.
    @param jids: parses the JID (see L{parseJID}).
    """
    who = parseJID(decodeField(username, "user name"), jids)
    transactionId = checkTransactionId(decodeField(password, "password"))
    return XMPPCredentials(who, transactionId, "basic")


def credentialsFromDigest(
    fields: Mapping[str, bytes], jids: Callable[[str], jid.JID] = plainJID
) -> XMPPCredentials:
    """
    XEP-0070 section 4.3.2: the Digest username is the JID, the cnonce the
    transaction id, both percent-encoded.

    The C{response} hash cannot be checked (there is no password); the
    nonce and opaque are checked by the credential factory that parsed the
    header.

    @param fields: the parsed header fields, names to raw values.
    @param jids: parses the JID (see L{parseJID}).
    """
    realm = fields.get("realm")
    if realm is not None and realm != REALM.encode("ascii"):
        raise MalformedHeader(f"the Digest realm must be {REALM!r}")
    username = fields.get("username")
    if not username:
        raise MalformedJID("the Digest username must be your JID, and it is absent")
    who = parseJID(decodeField(username, "user name"), jids)
    cnonce = fields.get("cnonce")
    if not cnonce:
        raise MissingTransactionId(
            "the Digest cnonce must be a transaction id, and it is absent"
        )
    transactionId = checkTransactionId(decodeField(cnonce, "cnonce"))
    return XMPPCredentials(who, transactionId, "digest")


@attrs.frozen
class ConfirmRequest:
    """
    The C{<confirm xmlns='http://jabber.org/protocol/http-auth'/>} element.

    @ivar transactionId: the C{id} attribute.
    @ivar method: the HTTP method, e.g. C{"GET"}.
    @ivar url: the full URL requested.
    """

    transactionId: str
    method: str
    url: str

    def toElement(self) -> domish.Element:
        """
        Render as a C{<confirm/>} element.
        """
        confirm = domish.Element((NS_HTTP_AUTH, "confirm"))
        confirm["id"] = self.transactionId
        confirm["method"] = self.method
        confirm["url"] = self.url
        return confirm

    @classmethod
    def fromElement(cls, element: domish.Element) -> ConfirmRequest:
        """
        Parse a C{<confirm/>} element.

        @raise MalformedConfirm: it is not one, or an attribute is missing.
        """
        if (element.uri, element.name) != (NS_HTTP_AUTH, "confirm"):
            raise MalformedConfirm("not an http-auth confirm element")
        values = []
        for name in ("id", "method", "url"):
            value = element.getAttribute(name)
            if not value:
                raise MalformedConfirm(f"confirm lacks the {name!r} attribute")
            values.append(value)
        return cls(*values)


def findConfirm(stanza: domish.Element) -> domish.Element | None:
    """
    The first C{<confirm/>} child of C{stanza}, if any.
    """
    for child in stanza.elements(NS_HTTP_AUTH, "confirm"):
        return child
    return None


def expiryText(expiresAt: float, expiresIn: float) -> str:
    """
    When a confirmation request expires, for the body of the message
    form: C{"This request expires in 120 seconds, at 2026-12-06 15:47:12
    UTC; an answer after that is ignored."}

    @param expiresAt: POSIX time of the expiry.
    @param expiresIn: seconds from sending to the expiry.
    """
    seconds = max(0, math.ceil(expiresIn))
    try:
        at = datetime.fromtimestamp(expiresAt, timezone.utc)
    except (OverflowError, ValueError, OSError):
        when = ""
    else:
        when = at.strftime(", at %Y-%m-%d %H:%M:%S UTC")
    unit = "second" if seconds == 1 else "seconds"
    return (
        f"This request expires in {seconds} {unit}{when}; an answer after "
        f"that is ignored."
    )


def confirmationBody(
    request: ConfirmRequest,
    expiresAt: float | None = None,
    expiresIn: float | None = None,
) -> str:
    """
    The human-readable body of the message form (XEP-0070 example 7): what
    was asked, the transaction id, when the request expires (so that a
    message read hours later does not read as current), and how to answer.

    @param expiresAt: POSIX time the request expires, or C{None} to say
        nothing of it.
    @param expiresIn: seconds from sending to the expiry (with
        C{expiresAt}).
    """
    expiry = ""
    if expiresAt is not None and expiresIn is not None:
        expiry = expiryText(expiresAt, expiresIn) + "\n"
    return (
        f"Someone (maybe you) has requested the following URL:\n"
        f"{request.method} {request.url}\n"
        f"The transaction identifier is:\n"
        f"{request.transactionId}\n"
        f"{expiry}"
        f'If you wish to confirm the request, please reply to this message '
        f'by typing "OK". If not, please reply with "No".'
    )


def confirmationIQ(
    sender: jid.JID, recipient: jid.JID, stanzaId: str, request: ConfirmRequest
) -> domish.Element:
    """
    The IQ form, for a full JID (XEP-0070 example 6).

    @param stanzaId: a random, unguessable stanza id.
    """
    iq = domish.Element((None, "iq"))
    iq["type"] = "get"
    iq["from"] = sender.full()
    iq["to"] = recipient.full()
    iq["id"] = stanzaId
    iq.addChild(request.toElement())
    return iq


def confirmationMessage(
    sender: jid.JID,
    recipient: jid.JID,
    key: str,
    request: ConfirmRequest,
    expiresAt: float | None = None,
    expiresIn: float | None = None,
) -> domish.Element:
    """
    The message form, for a bare JID (XEP-0070 example 7): a C{<thread/>},
    a human-readable C{<body/>} (saying when the request expires, see
    L{confirmationBody}), the C{<confirm/>} element, and the XEP-0334
    hints of L{MESSAGE_HINTS} (not to be stored offline nor archived).

    @param key: a random, unguessable value used as stanza id and thread.
    """
    message = domish.Element((None, "message"))
    message["type"] = "normal"
    message["from"] = sender.full()
    # The address asked, as it is: a full JID whose client does not do the
    # IQ form gets the message at that same resource (XEP-0070 section
    # 4.5), which does not widen who may answer.
    message["to"] = recipient.full()
    message["id"] = key
    message.addElement("thread", content=key)
    message.addElement("body", content=confirmationBody(request, expiresAt, expiresIn))
    message.addChild(request.toElement())
    for hint in MESSAGE_HINTS:
        message.addElement((NS_HINTS, hint))
    return message


class Outcome(enum.Enum):
    """
    What a reply to a confirmation request means.

    @cvar ALLOW: the user confirmed.
    @cvar DENY: the user said no: a C{not-authorized} error (what
        L{xmppcomp.httpauth.ConfirmationResponder} answers for no), or a
        "no" reply.
    @cvar FALLBACK: the full JID does not do XEP-0070 over IQ; ask again
        with the message form.
    @cvar UNDELIVERABLE: the user could not be asked: any other error, a
        bounce (offline, unknown account or domain, a server error).
    """

    ALLOW = "allow"
    DENY = "deny"
    FALLBACK = "fallback"
    UNDELIVERABLE = "undeliverable"


@attrs.frozen
class Answer:
    """
    An answer to a confirmation request, and who gave it.

    @ivar outcome: L{Outcome.ALLOW} or L{Outcome.DENY}.
    @ivar by: the JID that answered: the JID asked, or (message form)
        another resource of its account that the server delivered the
        request to. Reported as the confirmer, never the JID asked in its
        place.
    """

    outcome: Outcome
    by: jid.JID


def stanzaChildren(stanza: domish.Element, name: str) -> list[domish.Element]:
    """
    The children of C{stanza} named C{name} in the stanza's own namespace:
    C{<thread/>}, C{<body/>}, C{<error/>}. From the wire that namespace is
    the stream's (C{jabber:client}, C{jabber:component:accept}); for a
    stanza built locally it is usually none. (C{elements(None, name)}
    matches only the latter.)
    """
    return [
        child
        for child in stanza.elements()
        if child.name == name and child.uri == stanza.uri
    ]


def errorCondition(stanza: domish.Element) -> str | None:
    """
    The defined condition of an error stanza, or C{None} if it has none.
    """
    for error in stanzaChildren(stanza, "error"):
        for child in error.elements():
            if child.uri == NS_XMPP_STANZAS and child.name != "text":
                return str(child.name)
    return None


def _sender(stanza: domish.Element) -> jid.JID | None:
    value = stanza.getAttribute("from")
    if not value:
        return None
    try:
        return plainJID(value)
    except Exception:
        return None


def _childText(stanza: domish.Element, name: str) -> str | None:
    for child in stanzaChildren(stanza, name):
        return str(child)
    return None


def _domainOf(who: jid.JID) -> jid.JID:
    return plainJID(who.host)


def classifyIQReply(iq: domish.Element, stanzaId: str, asked: jid.JID) -> Outcome | None:
    """
    Classify an IQ that may answer the IQ form.

    It matches only when both the id and the sender are right (RFC 6120
    section 8.1.2.1): a result only from the full JID asked; an error also
    from its bare JID or its domain (servers bounce for their accounts). A
    reply with the right id from anyone else is C{None}.

    @return: L{Outcome.ALLOW} for a result, L{Outcome.DENY} for a
        C{not-authorized} error, L{Outcome.FALLBACK} for
        C{feature-not-implemented} or C{service-unavailable} (a bounce of
        the message form that follows is then L{Outcome.UNDELIVERABLE}),
        L{Outcome.UNDELIVERABLE} for any other error, C{None} for no
        match.
    """
    if iq.getAttribute("id") != stanzaId:
        return None
    sender = _sender(iq)
    if sender is None:
        return None
    kind = iq.getAttribute("type")
    if kind == "result":
        return Outcome.ALLOW if sender == asked else None
    if kind == "error":
        if sender not in (asked, asked.userhostJID(), _domainOf(asked)):
            return None
        return outcomeOfIQError(errorCondition(iq))
    return None


def outcomeOfIQError(condition: str | None) -> Outcome:
    """
    What an error answer to the IQ form means, by its condition:
    C{not-authorized} is L{Outcome.DENY}; C{feature-not-implemented} and
    C{service-unavailable} are L{Outcome.FALLBACK} (ask with the message
    form); anything else is L{Outcome.UNDELIVERABLE}.
    """
    if condition == DENIAL_CONDITION:
        return Outcome.DENY
    if condition in FALLBACK_CONDITIONS:
        return Outcome.FALLBACK
    return Outcome.UNDELIVERABLE


def classifyText(text: str, transactionId: str) -> Outcome | None:
    """
    Classify a plain-text answer: C{OK}, C{yes} or the transaction id
    confirm; C{no} denies; anything else is not an answer.
    """
    stripped = text.strip()
    if stripped == transactionId:
        return Outcome.ALLOW
    word = stripped.rstrip(".!").strip().casefold()
    if word in AFFIRMATIVE:
        return Outcome.ALLOW
    if word in NEGATIVE:
        return Outcome.DENY
    return None


def classifyMessageReply(
    message: domish.Element,
    key: str,
    asked: jid.JID,
    request: ConfirmRequest,
    exactResource: bool = False,
) -> Outcome | None:
    """
    Classify a message that may answer the message form.

    It must come from the JID asked or, unless C{exactResource} is set and
    a full JID was asked, another resource of its account (a server may
    deliver a message for an offline resource to another one: who answered
    is then reported, see L{Answer}); an error may also come from the
    domain (a server's bounce). It must carry the thread sent (an error
    bounce may carry only the stanza id, which is the same random
    value). Then: type C{error} with C{not-authorized}
    (what L{xmppcomp.httpauth.ConfirmationResponder} answers for no)
    denies, and any other error (a server's bounce) is
    L{Outcome.UNDELIVERABLE}; the same C{<confirm/>} confirms; else a
    plain-text body is read with L{classifyText} ("no" denies).

    @param key: the random value sent as thread and stanza id.
    @return: an L{Outcome} (never C{FALLBACK}), or C{None} for no match.
    """
    sender = _sender(message)
    if sender is None:
        return None
    isError = message.getAttribute("type") == "error"
    if exactResource and asked.resource:
        allowed = sender == asked
    else:
        allowed = sender.userhostJID() == asked.userhostJID()
    if not allowed and not (isError and sender == _domainOf(asked)):
        return None
    thread = _childText(message, "thread")
    if isError:
        if thread == key or message.getAttribute("id") == key:
            if errorCondition(message) == DENIAL_CONDITION:
                return Outcome.DENY
            return Outcome.UNDELIVERABLE
        return None
    if thread != key:
        return None
    confirm = findConfirm(message)
    if confirm is not None:
        try:
            echoed = ConfirmRequest.fromElement(confirm)
        except MalformedConfirm:
            return None
        return Outcome.ALLOW if echoed == request else None
    body = _childText(message, "body")
    if body is None:
        return None
    return classifyText(body, request.transactionId)
