# -*- test-case-name: tests.test_errors -*-
"""
Tests for L{xmppcomp.errors}: the RFC 6120 condition names, the SASL
C{<failure/>} element both ways, and L{UnserializableElement}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from twisted.words.xish import domish

from xmppcomp.errors import (
    SASL_CONDITIONS,
    STREAM_CONDITIONS,
    NegotiationError,
    SASLFailure,
    TLSRequiredError,
    UnserializableElement,
)
from xmppcomp.ns import NS_SASL
from xmppcomp.stream.xmlstream import checkSerializable

from .streamhelpers import parse

#: RFC 6120 section 4.9.3, sections 4.9.3.1 to 4.9.3.25.
RFC6120_STREAM_CONDITIONS = """
    bad-format bad-namespace-prefix conflict connection-timeout host-gone
    host-unknown improper-addressing internal-server-error invalid-from
    invalid-namespace invalid-xml not-authorized not-well-formed
    policy-violation remote-connection-failed reset resource-constraint
    restricted-xml see-other-host system-shutdown undefined-condition
    unsupported-encoding unsupported-feature unsupported-stanza-type
    unsupported-version
""".split()

#: RFC 6120 section 6.5, sections 6.5.1 to 6.5.11.
RFC6120_SASL_CONDITIONS = """
    aborted account-disabled credentials-expired encryption-required
    incorrect-encoding invalid-authzid invalid-mechanism malformed-request
    mechanism-too-weak not-authorized temporary-auth-failure
""".split()


class ConditionTests(SynchronousTestCase):
    """
    The condition names are exactly RFC 6120's.
    """

    def test_stream(self) -> None:
        """
        L{STREAM_CONDITIONS} holds the 25 stream error conditions of
        RFC 6120 section 4.9.3, RFC 3920's C{xml-not-well-formed} not among
        them.
        """
        self.assertEqual(len(RFC6120_STREAM_CONDITIONS), 25)
        self.assertEqual(STREAM_CONDITIONS, frozenset(RFC6120_STREAM_CONDITIONS))
        self.assertNotIn("xml-not-well-formed", STREAM_CONDITIONS)

    def test_sasl(self) -> None:
        """
        L{SASL_CONDITIONS} holds the 11 SASL failure conditions of RFC 6120
        section 6.5.
        """
        self.assertEqual(len(RFC6120_SASL_CONDITIONS), 11)
        self.assertEqual(SASL_CONDITIONS, frozenset(RFC6120_SASL_CONDITIONS))


class SASLFailureTests(SynchronousTestCase):
    """
    L{SASLFailure}: a condition and an optional text, to and from
    C{<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>}.
    """

    def test_unknownCondition(self) -> None:
        """
        A condition RFC 6120 does not define cannot be raised: a
        C{ValueError} naming it.
        """
        error = self.assertRaises(ValueError, SASLFailure, "bad-password")
        self.assertIn("'bad-password'", str(error))

    def test_attributes(self) -> None:
        """
        The condition and text are kept; the message names both.
        """
        failure = SASLFailure("not-authorized", "wrong password")
        self.assertEqual((failure.condition, failure.text), ("not-authorized", "wrong password"))
        self.assertEqual(str(failure), "SASL failure not-authorized: wrong password")
        self.assertEqual(str(SASLFailure("aborted")), "SASL failure aborted")
        self.assertIsNone(SASLFailure("aborted").text)

    def test_toElement(self) -> None:
        """
        The element carries the condition, then the text, in the SASL
        namespace.
        """
        self.assertEqual(
            SASLFailure("temporary-auth-failure", "try later").toElement().toXml(),
            f"<failure xmlns='{NS_SASL}'><temporary-auth-failure/>"
            "<text>try later</text></failure>",
        )
        self.assertEqual(
            SASLFailure("aborted").toElement().toXml(),
            f"<failure xmlns='{NS_SASL}'><aborted/></failure>",
        )

    def test_roundTrip(self) -> None:
        """
        Every condition, with and without a text, parses back from the
        element it renders (serialised and parsed again).
        """
        for condition in sorted(SASL_CONDITIONS):
            for text in (None, "why: <&>"):
                xml = SASLFailure(condition, text).toElement().toXml()
                again = SASLFailure.fromElement(parse(xml))
                self.assertEqual((again.condition, again.text), (condition, text))

    def test_textFirst(self) -> None:
        """
        The text may come before the condition, with an C{xml:lang}.
        """
        failure = SASLFailure.fromElement(
            parse(
                f"<failure xmlns='{NS_SASL}'><text xml:lang='en'>expired</text>"
                "<credentials-expired/></failure>"
            )
        )
        self.assertEqual((failure.condition, failure.text), ("credentials-expired", "expired"))

    def test_unknownReceived(self) -> None:
        """
        A received failure with an unknown condition, or none, is
        C{not-authorized} (RFC 6120 section 6.5), its text kept.
        """
        for xml in (
            f"<failure xmlns='{NS_SASL}'><bad-password/><text>no</text></failure>",
            f"<failure xmlns='{NS_SASL}'><text>no</text></failure>",
        ):
            failure = SASLFailure.fromElement(parse(xml))
            self.assertEqual((failure.condition, failure.text), ("not-authorized", "no"))

    def test_otherNamespacesIgnored(self) -> None:
        """
        Children in other namespaces are neither a condition nor the text.
        """
        failure = SASLFailure.fromElement(
            parse(
                f"<failure xmlns='{NS_SASL}'><aborted xmlns='urn:example'/>"
                "<text xmlns='urn:example'>spoofed</text></failure>"
            )
        )
        self.assertEqual((failure.condition, failure.text), ("not-authorized", None))


class NegotiationErrorTests(SynchronousTestCase):
    """
    The initiating side's negotiation errors.
    """

    def test_tlsRequired(self) -> None:
        """
        L{TLSRequiredError} is a L{NegotiationError}: one C{except} catches
        every way negotiation cannot complete.
        """
        self.assertTrue(issubclass(TLSRequiredError, NegotiationError))
        self.assertEqual(str(TLSRequiredError("no STARTTLS offered")), "no STARTTLS offered")


class UnserializableElementTests(SynchronousTestCase):
    """
    L{UnserializableElement}, as L{checkSerializable} raises it.
    """

    def test_value(self) -> None:
        """
        It is a C{ValueError} carrying its reason.
        """
        error = UnserializableElement("U+0000 in <body/>")
        self.assertIsInstance(error, ValueError)
        self.assertEqual((error.reason, str(error)), ("U+0000 in <body/>", "U+0000 in <body/>"))

    def test_forbidden(self) -> None:
        """
        Each kind of character XML 1.0 forbids (C0 controls other than tab,
        newline and carriage return, lone surrogates, U+FFFE, U+FFFF), in a
        text or an attribute, is refused; the reason names it as U+XXXX and
        where it is, and holds no forbidden character itself.
        """
        for char in ("\x00", "\x08", "\x0b", "\x0c", "\x1f", "\ud800", "\udfff", "\ufffe", "\uffff"):
            code = "U+%04X" % (ord(char),)
            message = domish.Element(("jabber:client", "message"))
            message.addElement("body", content="a" + char)
            error = self.assertRaises(UnserializableElement, checkSerializable, message.toXml(), message)
            self.assertIn(code, error.reason)
            self.assertIn("<body/>", error.reason)
            self.assertNotIn(char, error.reason)
            message = domish.Element(("jabber:client", "message"))
            message["id"] = char
            error = self.assertRaises(UnserializableElement, checkSerializable, message.toXml(), message)
            self.assertIn(code, error.reason)
            self.assertIn("attribute id", error.reason)

    def test_allowed(self) -> None:
        """
        Tab, newline, carriage return, the rest of the BMP and the
        characters beyond it pass unchanged.
        """
        text = "<body>\t\n\r é \ue000 \ufffd \U0001f600</body>"
        self.assertIs(checkSerializable(text), text)
