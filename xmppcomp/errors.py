# -*- test-case-name: tests.test_errors -*-
"""
Errors that C{twisted.words.protocols.jabber.error} lacks: the SASL failure
conditions of RFC 6120 section 6.5 and the stream and stanza conditions that
RFC 6120 added after RFC 3920.

Stream errors themselves are L{twisted.words.protocols.jabber.error.StreamError}
instances; this module only names the conditions.
"""

from __future__ import annotations

from twisted.words.xish import domish

from xmppcomp.ns import NS_SASL

#: RFC 6120 section 4.9.3 stream error conditions.
STREAM_CONDITIONS = frozenset(
    {
        "bad-format",
        "bad-namespace-prefix",
        "conflict",
        "connection-timeout",
        "host-gone",
        "host-unknown",
        "improper-addressing",
        "internal-server-error",
        "invalid-from",
        "invalid-namespace",
        "invalid-xml",
        "not-authorized",
        "not-well-formed",
        "policy-violation",
        "remote-connection-failed",
        "reset",
        "resource-constraint",
        "restricted-xml",
        "see-other-host",
        "system-shutdown",
        "undefined-condition",
        "unsupported-encoding",
        "unsupported-feature",
        "unsupported-stanza-type",
        "unsupported-version",
    }
)

#: RFC 6120 section 6.5 SASL failure conditions.
SASL_CONDITIONS = frozenset(
    {
        "aborted",
        "account-disabled",
        "credentials-expired",
        "encryption-required",
        "incorrect-encoding",
        "invalid-authzid",
        "invalid-mechanism",
        "malformed-request",
        "mechanism-too-weak",
        "not-authorized",
        "temporary-auth-failure",
    }
)


class ConditionError(Exception):
    """
    An error that names an XMPP condition, with an optional explanation:
    C{condition}, or C{condition: text}, as a string.

    @ivar condition: the condition, as on the wire.
    @ivar text: optional human-readable explanation.
    """

    def __init__(self, condition: str, text: str | None = None) -> None:
        super().__init__(condition, text)
        self.condition = condition
        self.text = text

    def __str__(self) -> str:
        if self.text:
            return f"{self.condition}: {self.text}"
        return self.condition


class SASLFailure(ConditionError):
    """
    A SASL negotiation failed with an RFC 6120 condition.

    Raised by the receiving side's logic to make it answer C{<failure/>}, and
    by the initiating side when the receiving entity answered C{<failure/>}.

    @ivar condition: one of L{SASL_CONDITIONS}.
    @ivar text: optional human-readable explanation.
    """

    def __init__(self, condition: str, text: str | None = None) -> None:
        if condition not in SASL_CONDITIONS:
            raise ValueError(f"unknown SASL failure condition {condition!r}")
        super().__init__(condition, text)

    def __str__(self) -> str:
        return "SASL failure " + super().__str__()

    def toElement(self) -> domish.Element:
        """
        Render as C{<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>}.
        """
        failure = domish.Element((NS_SASL, "failure"))
        failure.addElement(self.condition)
        if self.text:
            failure.addElement("text", content=self.text)
        return failure

    @classmethod
    def fromElement(cls, element: domish.Element) -> "SASLFailure":
        """
        Parse a received C{<failure/>} element. An unknown or missing
        condition becomes C{not-authorized} (RFC 6120 section 6.5 allows
        clients to treat unknown conditions as such), keeping the text.
        """
        condition = "not-authorized"
        text = None
        for child in element.elements():
            if child.uri != NS_SASL:
                continue
            if child.name == "text":
                text = str(child)
            elif child.name in SASL_CONDITIONS:
                condition = child.name
        return cls(condition, text)


class NegotiationError(Exception):
    """
    The initiating entity could not complete stream negotiation: a required
    feature it cannot negotiate, TLS required but not offered, no usable
    SASL mechanism, and the like. The message says which.
    """


class TLSRequiredError(NegotiationError):
    """
    TLS is required by the initiating entity but the receiving entity did
    not offer STARTTLS.
    """


class UnserializableElement(ValueError):
    """
    An element that would not be well-formed XML 1.0 once serialised: a
    text or attribute value holds a character XML 1.0 forbids (a C0
    control other than tab, newline and carriage return, a lone
    surrogate, U+FFFE or U+FFFF). The stream refuses to write it, and only
    it: the stream stays up (a peer would end it with C{not-well-formed}).

    @ivar reason: what is wrong, for logs and for the caller's error.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
