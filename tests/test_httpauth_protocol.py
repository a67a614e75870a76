# -*- test-case-name: tests.test_httpauth_protocol -*-
"""
Tests for L{xmppcomp.httpauth._protocol}: credentials, the confirm element,
the confirmation stanzas and the classification of replies.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from xmppcomp.httpauth._protocol import (
    NS_HINTS,
    ConfirmRequest,
    MalformedConfirm,
    MalformedHeader,
    MalformedJID,
    MissingTransactionId,
    Outcome,
    XMPPCredentials,
    checkTransactionId,
    classifyIQReply,
    classifyMessageReply,
    classifyText,
    confirmationBody,
    confirmationIQ,
    confirmationMessage,
    credentialsFromBasic,
    credentialsFromDigest,
    errorCondition,
    parseJID,
)
from xmppcomp.ns import NS_HTTP_AUTH, NS_XMPP_STANZAS

REQUEST = ConfirmRequest(
    "a7374jnjlalasdf82", "GET", "https://files.shakespeare.lit:9345/missive.html"
)
JULIET = JID("juliet@capulet.com/balcony")
COMPONENT = JID("files.shakespeare.lit")


class BasicCredentialsTests(SynchronousTestCase):
    """
    Tests for L{credentialsFromBasic}.
    """

    def test_plain(self) -> None:
        """
        The user id is the JID and the password the transaction id.
        """
        self.assertEqual(
            credentialsFromBasic(b"juliet@capulet.com/balcony", b"a7374jnjlalasdf82"),
            XMPPCredentials(JULIET, "a7374jnjlalasdf82", "basic"),
        )

    def test_percentEncodedNonASCII(self) -> None:
        """
        Non-ASCII characters in the JID and the transaction id come
        percent-encoded UTF-8 (RFC 3986 section 2.1) and are decoded; the
        JID is normalised.
        """
        credentials = credentialsFromBasic(
            b"J%C3%BCrgen@M%C3%BCnchen.example/T%C3%A9l%C3%A9phone",
            b"caf%C3%A9%20%E2%98%95",
        )
        self.assertEqual(credentials.jid, JID("jürgen@münchen.example/Téléphone"))
        self.assertEqual(credentials.jid.user, "jürgen")
        self.assertEqual(credentials.transactionId, "café ☕")

    def test_percentEncodedColon(self) -> None:
        """
        A colon in the transaction id survives (only the first colon
        separates user id and password, and C{%3A} decodes to C{:}).
        """
        credentials = credentialsFromBasic(b"juliet@capulet.com", b"a%3Ab:c")
        self.assertEqual(credentials.transactionId, "a:b:c")

    def test_malformedJID(self) -> None:
        """
        A user id that is not a JID raises L{MalformedJID} naming it.
        """
        error = self.assertRaises(
            MalformedJID, credentialsFromBasic, b"juliet@@capulet.com", b"x"
        )
        self.assertIn("juliet@@capulet.com", error.reason)

    def test_emptyJID(self) -> None:
        """
        An empty user id raises L{MalformedJID}.
        """
        self.assertRaises(MalformedJID, credentialsFromBasic, b"", b"x")

    def test_missingTransactionId(self) -> None:
        """
        An empty password raises L{MissingTransactionId}.
        """
        error = self.assertRaises(
            MissingTransactionId, credentialsFromBasic, b"juliet@capulet.com", b""
        )
        self.assertIn("transaction id", error.reason)

    def test_notUTF8(self) -> None:
        """
        Percent-encoded octets that are not UTF-8 raise L{MalformedHeader}.
        """
        self.assertRaises(
            MalformedHeader, credentialsFromBasic, b"juliet%FF@capulet.com", b"x"
        )

    def test_controlCharacters(self) -> None:
        """
        A transaction id with control characters raises L{MalformedHeader}
        (it goes into an XML attribute).
        """
        self.assertRaises(
            MalformedHeader, credentialsFromBasic, b"juliet@capulet.com", b"a%00b"
        )

    def test_tooLong(self) -> None:
        """
        An overlong transaction id raises L{MalformedHeader}.
        """
        self.assertRaises(
            MalformedHeader, credentialsFromBasic, b"juliet@capulet.com", b"x" * 1025
        )

    def test_trailingDot(self) -> None:
        """
        The domain's trailing dot is stripped (RFC 7622 section 3.2):
        C{juliet@capulet.lit.} is C{juliet@capulet.lit}, with or without a
        resource, and so is a domain ending in an ideographic full stop. A
        domain that is nothing but a dot, or with an empty label, is still
        not a JID.
        """
        for raw in (b"juliet@capulet.lit.", b"juliet@capulet.lit%E3%80%82"):
            credentials = credentialsFromBasic(raw, b"x")
            self.assertEqual(credentials.jid, JID("juliet@capulet.lit"))
            self.assertEqual(credentials.jid.userhost(), "juliet@capulet.lit")
        credentials = credentialsFromBasic(b"juliet@capulet.lit./balcony", b"x")
        self.assertEqual(credentials.jid, JID("juliet@capulet.lit/balcony"))
        self.assertEqual(parseJID("capulet.lit."), JID("capulet.lit"))
        for raw in (b"juliet@.", b".", b"juliet@capulet.lit..", b"juliet@.capulet.lit"):
            self.assertRaises(MalformedJID, credentialsFromBasic, raw, b"x")

    def test_aLabels(self) -> None:
        """
        A-labels in the domain become U-labels (RFC 7622 section 3.2.1):
        C{alice@xn--bcher-kva.example} is C{alice@bücher.example}, whichever
        the user types, one address for single use, limits, the access
        rules and the question asked. A label that looks like an A-label
        and is none is refused, and the reason names it.
        """
        for raw in (b"alice@xn--bcher-kva.example/r", b"alice@XN--BCHER-KVA.example./r", "alice@Bücher.example/r".encode()):
            credentials = credentialsFromBasic(raw, b"x")
            self.assertEqual(credentials.jid.full(), "alice@bücher.example/r")
        self.assertEqual(parseJID("xn--bcher-kva.example").full(), "bücher.example")
        error = self.assertRaises(MalformedJID, parseJID, "alice@xn--abc.example")
        self.assertEqual(
            error.reason, "the user name is not a valid JID: 'xn--abc' in its domain is no valid A-label (IDNA 2008)"
        )

    def test_jidXMLSafe(self) -> None:
        """
        A JID with U+FFFE (a character XML forbids) in any part is refused,
        and the reason names it; so is one with a control character, a
        bidirectional control or a line separator.
        """
        for text in (
            "\ufffejuliet@capulet.lit",
            "juliet@capulet\ufffe.lit",
            "juliet@capulet.lit/balcony\ufffe",
        ):
            error = self.assertRaises(MalformedJID, parseJID, text)
            self.assertIn("U+FFFE", error.reason)
        for character in ("\x01", "\x85", "\u202e", "\u2066", "\u2028"):
            error = self.assertRaises(
                MalformedJID, parseJID, "juliet@capulet.lit/a" + character
            )
            self.assertIn("U+%04X" % (ord(character),), error.reason)


class TransactionIdTests(SynchronousTestCase):
    """
    Tests for L{checkTransactionId}: a transaction id goes into an XML
    attribute and into a message a person reads.
    """

    def test_refused(self) -> None:
        """
        Characters XML 1.0 forbids, C0 and C1 controls, bidirectional
        controls and line or paragraph separators raise L{MalformedHeader}
        whose reason names the character (C{U+XXXX}) and its kind. Other
        characters pass: letters of any script, symbols, emoji, joiners,
        U+FFFD, spaces.
        """
        cases = {
            "\ufffe": "XML",
            "\uffff": "XML",
            "\ud800": "XML",
            "\udfff": "XML",
            "\x00": "control",
            "\t": "control",
            "\n": "control",
            "\x1f": "control",
            "\x7f": "control",
            "\x85": "control",
            "\x9f": "control",
            "\u061c": "bidirectional",
            "\u200e": "bidirectional",
            "\u200f": "bidirectional",
            "\u202a": "bidirectional",
            "\u202e": "bidirectional",
            "\u2066": "bidirectional",
            "\u2069": "bidirectional",
            "\u2028": "separator",
            "\u2029": "separator",
        }
        for character, kind in cases.items():
            error = self.assertRaises(
                MalformedHeader, checkTransactionId, "ab" + character + "cd"
            )
            self.assertIn("U+%04X" % (ord(character),), error.reason)
            self.assertIn(kind, error.reason)
        for text in ("café ☕", "\U0001f600\u200d\U0001f4bb", "a b", "\ufffd", "مرحبا"):
            self.assertEqual(checkTransactionId(text), text)

    def test_fromHeader(self) -> None:
        """
        A percent-encoded U+202E (right-to-left override) in the password
        raises L{MalformedHeader} naming it.
        """
        error = self.assertRaises(
            MalformedHeader, credentialsFromBasic, b"juliet@capulet.com", b"abc%E2%80%AEdef"
        )
        self.assertIn("U+202E", error.reason)


class DigestCredentialsTests(SynchronousTestCase):
    """
    Tests for L{credentialsFromDigest}.
    """

    def test_usernameAndCnonce(self) -> None:
        """
        The username is the JID and the cnonce the transaction id, both
        percent-decoded.
        """
        credentials = credentialsFromDigest(
            {
                "username": b"j%C3%BCrgen@example.com",
                "realm": b"xmpp",
                "cnonce": b"0a4f%E2%82%AC",
            }
        )
        self.assertEqual(
            credentials, XMPPCredentials(JID("jürgen@example.com"), "0a4f€", "digest")
        )

    def test_wrongRealm(self) -> None:
        """
        A realm other than C{xmpp} raises L{MalformedHeader}.
        """
        self.assertRaises(
            MalformedHeader,
            credentialsFromDigest,
            {"username": b"a@b", "realm": b"XMPP", "cnonce": b"c"},
        )

    def test_missingCnonce(self) -> None:
        """
        No cnonce raises L{MissingTransactionId}.
        """
        self.assertRaises(
            MissingTransactionId,
            credentialsFromDigest,
            {"username": b"a@b", "realm": b"xmpp"},
        )

    def test_missingUsername(self) -> None:
        """
        No username raises L{MalformedJID}.
        """
        self.assertRaises(
            MalformedJID, credentialsFromDigest, {"realm": b"xmpp", "cnonce": b"c"}
        )


class ConfirmRequestTests(SynchronousTestCase):
    """
    Tests for L{ConfirmRequest}.
    """

    def test_roundTrip(self) -> None:
        """
        C{toElement} makes the confirm element of XEP-0070 section 4.5 and
        C{fromElement} reads it back.
        """
        element = REQUEST.toElement()
        self.assertEqual((element.uri, element.name), (NS_HTTP_AUTH, "confirm"))
        self.assertEqual(element["id"], "a7374jnjlalasdf82")
        self.assertEqual(element["method"], "GET")
        self.assertEqual(element["url"], REQUEST.url)
        self.assertEqual(ConfirmRequest.fromElement(element), REQUEST)

    def test_missingAttribute(self) -> None:
        """
        Each of C{id}, C{method} and C{url} is required.
        """
        for name in ("id", "method", "url"):
            element = REQUEST.toElement()
            del element.attributes[name]
            self.assertRaises(MalformedConfirm, ConfirmRequest.fromElement, element)

    def test_wrongElement(self) -> None:
        """
        Another element raises L{MalformedConfirm}.
        """
        self.assertRaises(
            MalformedConfirm, ConfirmRequest.fromElement, domish.Element((None, "x"))
        )


class StanzaFormTests(SynchronousTestCase):
    """
    Tests for L{confirmationIQ} and L{confirmationMessage}.
    """

    def test_iq(self) -> None:
        """
        The IQ form is a get to the full JID carrying the confirm element.
        """
        iq = confirmationIQ(COMPONENT, JULIET, "ha000", REQUEST)
        self.assertEqual(
            (iq.name, iq["type"], iq["to"], iq["from"], iq["id"]),
            ("iq", "get", "juliet@capulet.com/balcony", "files.shakespeare.lit", "ha000"),
        )
        self.assertEqual(ConfirmRequest.fromElement(iq.firstChildElement()), REQUEST)

    def test_message(self) -> None:
        """
        The message form goes to the JID asked as it is (a full JID after
        the IQ form failed, XEP-0070 section 4.5; a bare JID) with a
        thread, a body saying what was asked, the transaction id and how
        to answer, and the confirm element.
        """
        bare = confirmationMessage(COMPONENT, JULIET.userhostJID(), "k" * 40, REQUEST)
        self.assertEqual(bare["to"], "juliet@capulet.com")
        message = confirmationMessage(COMPONENT, JULIET, "k" * 40, REQUEST)
        self.assertEqual(message["to"], JULIET.full())
        self.assertEqual(message["type"], "normal")
        self.assertEqual(message["id"], "k" * 40)
        self.assertEqual(str(message.thread), "k" * 40)
        body = str(message.body)
        self.assertIn(REQUEST.url, body)
        self.assertIn("GET", body)
        self.assertIn("a7374jnjlalasdf82", body)
        self.assertIn('"OK"', body)
        self.assertIn('"No"', body)
        confirms = list(message.elements(NS_HTTP_AUTH, "confirm"))
        self.assertEqual([ConfirmRequest.fromElement(c) for c in confirms], [REQUEST])

    def test_messageHints(self) -> None:
        """
        The message form carries the XEP-0334 hints C{no-store} and
        C{no-permanent-store}: a confirmation must not wait in offline
        storage nor be archived.
        """
        message = confirmationMessage(COMPONENT, JULIET, "k", REQUEST)
        hints = [c.name for c in message.elements() if c.uri == NS_HINTS]
        self.assertEqual(hints, ["no-store", "no-permanent-store"])
        self.assertEqual(NS_HINTS, "urn:xmpp:hints")

    def test_messageExpiry(self) -> None:
        """
        Given the expiry, the body says when the request expires, in UTC
        and in seconds from sending, so that a message read later does not
        read as current.
        """
        message = confirmationMessage(COMPONENT, JULIET, "k", REQUEST, 1_800_000_120.0, 120.0)
        body = str(message.body)
        self.assertIn(
            "This request expires in 120 seconds, at 2027-01-15 08:02:00 UTC; "
            "an answer after that is ignored.",
            body,
        )
        self.assertIn("expires in 1 second,", confirmationBody(REQUEST, 0.5, 0.5))
        self.assertNotIn("expires", confirmationBody(REQUEST))


def _iq(kind: str, sender: str, stanzaId: str, condition: str | None = None) -> domish.Element:
    iq = domish.Element((None, "iq"))
    iq["type"] = kind
    iq["from"] = sender
    iq["id"] = stanzaId
    if condition is not None:
        error = iq.addElement("error")
        error["type"] = "cancel"
        error.addElement((NS_XMPP_STANZAS, condition))
    return iq


def _message(
    sender: str,
    thread: str | None,
    body: str | None = None,
    confirm: ConfirmRequest | None = None,
    kind: str | None = None,
    stanzaId: str | None = None,
    condition: str | None = None,
) -> domish.Element:
    message = domish.Element((None, "message"))
    message["from"] = sender
    if kind is not None:
        message["type"] = kind
    if condition is not None:
        error = message.addElement("error")
        error["type"] = "cancel"
        error.addElement((NS_XMPP_STANZAS, condition))
    if stanzaId is not None:
        message["id"] = stanzaId
    if thread is not None:
        message.addElement("thread", content=thread)
    if body is not None:
        message.addElement("body", content=body)
    if confirm is not None:
        message.addChild(confirm.toElement())
    return message


class IQReplyTests(SynchronousTestCase):
    """
    Tests for L{classifyIQReply}.
    """

    def test_result(self) -> None:
        """
        A result from the full JID asked allows.
        """
        self.assertIs(
            classifyIQReply(_iq("result", JULIET.full(), "k"), "k", JULIET), Outcome.ALLOW
        )

    def test_error(self) -> None:
        """
        A C{not-authorized} error denies.
        """
        reply = _iq("error", JULIET.full(), "k", "not-authorized")
        self.assertEqual(errorCondition(reply), "not-authorized")
        self.assertIs(classifyIQReply(reply, "k", JULIET), Outcome.DENY)

    def test_otherError(self) -> None:
        """
        Any other error, or one without a condition, means the user could
        not be asked: L{Outcome.UNDELIVERABLE}.
        """
        for condition in (
            "item-not-found",
            "remote-server-not-found",
            "recipient-unavailable",
            "internal-server-error",
            "forbidden",
            None,
        ):
            reply = _iq("error", JULIET.full(), "k", condition)
            self.assertIs(classifyIQReply(reply, "k", JULIET), Outcome.UNDELIVERABLE, condition)

    def test_fallback(self) -> None:
        """
        C{feature-not-implemented} and C{service-unavailable} mean: use the
        message form.
        """
        for condition in ("feature-not-implemented", "service-unavailable"):
            reply = _iq("error", JULIET.full(), "k", condition)
            self.assertIs(classifyIQReply(reply, "k", JULIET), Outcome.FALLBACK)

    def test_fromServerOnBehalf(self) -> None:
        """
        The bare JID (the account's server answering for it) matches too.
        """
        reply = _iq("error", "juliet@capulet.com", "k", "service-unavailable")
        self.assertIs(classifyIQReply(reply, "k", JULIET), Outcome.FALLBACK)

    def test_otherSender(self) -> None:
        """
        The right id from another JID (or another resource) is no match.
        """
        for sender in ("romeo@montague.lit/x", "juliet@capulet.com/other", "capulet.com"):
            self.assertIsNone(classifyIQReply(_iq("result", sender, "k"), "k", JULIET))

    def test_otherId(self) -> None:
        """
        Another id is no match.
        """
        self.assertIsNone(classifyIQReply(_iq("result", JULIET.full(), "j"), "k", JULIET))

    def test_noSender(self) -> None:
        """
        A reply without C{from} is no match.
        """
        reply = _iq("result", JULIET.full(), "k")
        del reply.attributes["from"]
        self.assertIsNone(classifyIQReply(reply, "k", JULIET))


class MessageReplyTests(SynchronousTestCase):
    """
    Tests for L{classifyMessageReply} and L{classifyText}.
    """

    def classify(self, message: domish.Element) -> Outcome | None:
        return classifyMessageReply(message, "k", JID("juliet@capulet.com"), REQUEST)

    def test_confirmEcho(self) -> None:
        """
        A message in the thread carrying the same confirm allows, from any
        resource of the bare JID.
        """
        self.assertIs(
            self.classify(_message("juliet@capulet.com/phone", "k", confirm=REQUEST)),
            Outcome.ALLOW,
        )

    def test_confirmMismatch(self) -> None:
        """
        A confirm for another transaction is no match.
        """
        other = ConfirmRequest("other", REQUEST.method, REQUEST.url)
        self.assertIsNone(self.classify(_message("juliet@capulet.com/a", "k", confirm=other)))

    def test_error(self) -> None:
        """
        A message of type error with C{not-authorized} (the denial of
        L{xmppcomp.httpauth.ConfirmationResponder}) in the thread, or with
        the stanza id, denies.
        """
        self.assertIs(
            self.classify(
                _message("juliet@capulet.com/a", "k", kind="error", confirm=REQUEST, condition="not-authorized")
            ),
            Outcome.DENY,
        )
        self.assertIs(
            self.classify(
                _message("juliet@capulet.com", None, kind="error", stanzaId="k", condition="not-authorized")
            ),
            Outcome.DENY,
        )

    def test_bounce(self) -> None:
        """
        A message of type error with any other condition, or none (a
        server's bounce), is L{Outcome.UNDELIVERABLE}, in the thread or
        with the stanza id.
        """
        for condition in ("service-unavailable", "item-not-found", "remote-server-not-found", None):
            self.assertIs(
                self.classify(_message("juliet@capulet.com", None, kind="error", stanzaId="k", condition=condition)),
                Outcome.UNDELIVERABLE,
            )
            self.assertIs(
                self.classify(_message("juliet@capulet.com/a", "k", kind="error", condition=condition)),
                Outcome.UNDELIVERABLE,
            )

    def test_text(self) -> None:
        """
        Plain-text answers: OK, yes, the transaction id allow; no denies;
        anything else is no answer.
        """
        for text, outcome in [
            ("OK", Outcome.ALLOW),
            ("ok.", Outcome.ALLOW),
            (" Yes! ", Outcome.ALLOW),
            ("a7374jnjlalasdf82", Outcome.ALLOW),
            ("No", Outcome.DENY),
            ("no.", Outcome.DENY),
            ("maybe", None),
            ("A7374JNJLALASDF82", None),
        ]:
            self.assertIs(
                self.classify(_message("juliet@capulet.com/a", "k", body=text)), outcome, text
            )
        self.assertIs(classifyText("okay", "x"), Outcome.ALLOW)

    def test_trailingDot(self) -> None:
        """
        A JID asked without the trailing dot matches its answers (the
        credentials' dot was stripped).
        """
        asked = parseJID("juliet@capulet.com.")
        reply = _message("juliet@capulet.com/a", "k", body="OK")
        self.assertIs(classifyMessageReply(reply, "k", asked, REQUEST), Outcome.ALLOW)
        asked = parseJID("juliet@capulet.com./balcony")
        self.assertIs(
            classifyIQReply(_iq("result", "juliet@capulet.com/balcony", "k"), "k", asked),
            Outcome.ALLOW,
        )

    def test_otherSender(self) -> None:
        """
        The right thread from another bare JID is no match.
        """
        self.assertIsNone(self.classify(_message("romeo@montague.lit/a", "k", body="OK")))
        self.assertIsNone(
            self.classify(_message("romeo@montague.lit", None, kind="error", stanzaId="k"))
        )

    def test_otherThread(self) -> None:
        """
        Another thread, or none, is no match.
        """
        self.assertIsNone(self.classify(_message("juliet@capulet.com/a", "j", body="OK")))
        self.assertIsNone(self.classify(_message("juliet@capulet.com/a", None, body="OK")))

    def test_empty(self) -> None:
        """
        A message in the thread with neither confirm nor body is no answer.
        """
        self.assertIsNone(self.classify(_message("juliet@capulet.com/a", "k")))
