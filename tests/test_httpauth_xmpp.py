# -*- test-case-name: tests.test_httpauth_xmpp -*-
"""
Tests for L{xmppcomp.httpauth._xmpp}: a requester on one end of an
L{XmlPipe}, a responder (or the test, by hand) on the other.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.jid import JID
from twisted.words.protocols.jabber.xmlstream import toResponse
from twisted.words.xish import domish
from wokkel.generic import XmlPipe
from wokkel.subprotocols import XMPPHandler

from xmppcomp.errors import UnserializableElement
from xmppcomp.httpauth import (
    ConfirmationRequester,
    ConfirmationResponder,
    ConfirmationTimeout,
    ConfirmerUnavailable,
    ConfirmRequest,
    CouldNotAsk,
    IncomingConfirmation,
    Outcome,
)
from xmppcomp.httpauth._protocol import NS_HINTS, Answer
from xmppcomp.metrics import Metrics
from xmppcomp.ns import NS_HTTP_AUTH, NS_XMPP_STANZAS

COMPONENT = JID("files.shakespeare.lit")
JULIET = JID("juliet@capulet.com/balcony")
REQUEST = ConfirmRequest("a7374jnjlalasdf82", "GET", "https://files.shakespeare.lit/missive.html")


class _Parent:
    """
    The part of a stream manager a handler sends through.
    """

    def __init__(self, xs: object) -> None:
        self._xs = xs

    def send(self, obj: domish.Element) -> None:
        self._xs.send(obj)  # type: ignore[attr-defined]


class _RefusingParent(_Parent):
    """
    A parent whose stream refuses, as L{xmppcomp.stream.xmlstream}'s
    C{send} does for an element that would not be well-formed, every
    stanza for which C{refuse} is true.
    """

    def __init__(self, xs: object, refuse: Callable[[domish.Element], bool]) -> None:
        super().__init__(xs)
        self.refuse = refuse

    def send(self, obj: domish.Element) -> None:
        if self.refuse(obj):
            raise UnserializableElement("U+FFFE in an attribute value")
        super().send(obj)


def attach(handler: XMPPHandler, xs: object) -> None:
    """
    Connect C{handler} to C{xs} as a stream manager would.
    """
    handler.parent = _Parent(xs)
    handler.makeConnection(xs)
    handler.connectionInitialized()


def reply(stanza: domish.Element, sender: str, kind: str = "result") -> domish.Element:
    response = toResponse(stanza, kind)
    response["from"] = sender
    return response


def undeliverable(requester: ConfirmationRequester) -> float:
    """
    How many confirmations C{requester} counted C{undeliverable} so far
    (in its L{Metrics}).
    """
    assert requester.metrics is not None
    return requester.metrics.value(
        "xmppcomp_httpauth_confirmations_total", {"outcome": "undeliverable"}
    )


def iqError(iq: domish.Element, sender: str, condition: str) -> domish.Element:
    response = reply(iq, sender, "error")
    error = response.addElement("error")
    error["type"] = "cancel"
    error.addElement((NS_XMPP_STANZAS, condition))
    return response


def textReply(message: domish.Element, sender: str, text: str, thread: bool = True) -> domish.Element:
    response = domish.Element((None, "message"))
    response["from"] = sender
    response["to"] = message["from"]
    if thread:
        response.addElement("thread", content=str(message.thread))
    response.addElement("body", content=text)
    return response


class _Keys:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"key{self.count}"


class RequesterTests(SynchronousTestCase):
    """
    Tests for L{ConfirmationRequester}, the other end driven by hand.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.pipe = XmlPipe()
        self.requester = ConfirmationRequester(COMPONENT, self.clock, timeout=60, metrics=Metrics())
        attach(self.requester, self.pipe.source)
        self.received: list[domish.Element] = []
        self.pipe.sink.addObserver("/*", self.received.append)

    def test_iqForm(self) -> None:
        """
        A full JID gets an IQ get from C{fromJid} with the confirm element
        and a random id.
        """
        self.requester.confirm(JULIET, REQUEST)
        [iq] = self.received
        self.assertEqual((iq.name, iq["type"], iq["to"], iq["from"]), ("iq", "get", JULIET.full(), "files.shakespeare.lit"))
        self.assertEqual(len(iq["id"]), 40)
        self.assertEqual(ConfirmRequest.fromElement(iq.confirm), REQUEST)

    def test_randomIds(self) -> None:
        """
        Each confirmation gets its own random id.
        """
        self.requester.confirm(JULIET, REQUEST)
        self.requester.confirm(JULIET, REQUEST)
        self.assertNotEqual(self.received[0]["id"], self.received[1]["id"])

    def test_iqResult(self) -> None:
        """
        An IQ result from the JID asked allows.
        """
        d = self.requester.confirm(JULIET, REQUEST)
        self.pipe.sink.send(reply(self.received[0], JULIET.full()))
        self.assertIs(self.successResultOf(d).outcome, Outcome.ALLOW)
        self.assertEqual(self.requester.pendingCount, 0)

    def test_iqError(self) -> None:
        """
        An IQ error (C{not-authorized}) denies.
        """
        d = self.requester.confirm(JULIET, REQUEST)
        self.pipe.sink.send(iqError(self.received[0], JULIET.full(), "not-authorized"))
        self.assertIs(self.successResultOf(d).outcome, Outcome.DENY)

    def test_iqUndeliverable(self) -> None:
        """
        Any IQ error other than C{not-authorized} and the fallback
        conditions means the user could not be asked: the confirmation
        fails with L{CouldNotAsk} (401), whose reason names the JID and the
        condition, counted C{undeliverable} and not observed as an answer.
        """
        for condition in ("item-not-found", "remote-server-not-found", "internal-server-error"):
            before = undeliverable(self.requester)
            d = self.requester.confirm(JULIET, REQUEST)
            self.pipe.sink.send(iqError(self.received[-1], JULIET.full(), condition))
            error = self.failureResultOf(d, CouldNotAsk).value
            self.assertIn(JULIET.full(), error.reason)
            self.assertIn(condition, error.reason)
            self.assertEqual((error.status, error.forwardStatus), (401, 401))
            self.assertEqual(undeliverable(self.requester), before + 1)
        self.assertEqual(self.requester.pendingCount, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_iqOtherSenderIgnored(self) -> None:
        """
        A reply with the right id from another JID is ignored; the right
        sender's reply still counts.
        """
        d = self.requester.confirm(JULIET, REQUEST)
        self.pipe.sink.send(reply(self.received[0], "romeo@montague.lit/garden"))
        self.assertNoResult(d)
        self.pipe.sink.send(iqError(self.received[0], "juliet@capulet.com/other", "not-authorized"))
        self.assertNoResult(d)
        self.pipe.sink.send(reply(self.received[0], JULIET.full()))
        self.assertIs(self.successResultOf(d).outcome, Outcome.ALLOW)

    def test_fallbackToMessage(self) -> None:
        """
        C{feature-not-implemented} or C{service-unavailable} for the IQ makes
        the requester send the message form to that same full JID
        (XEP-0070 section 4.5; before, it went to the bare JID, which
        widened who could answer), with a new random thread; its answer
        decides.
        """
        for condition in ("feature-not-implemented", "service-unavailable"):
            del self.received[:]
            d = self.requester.confirm(JULIET, REQUEST)
            self.pipe.sink.send(iqError(self.received[0], JULIET.full(), condition))
            self.assertNoResult(d)
            message = self.received[1]
            self.assertEqual((message.name, message["to"]), ("message", JULIET.full()))
            self.assertNotEqual(str(message.thread), self.received[0]["id"])
            self.pipe.sink.send(textReply(message, JULIET.full(), "OK"))
            self.assertEqual(self.successResultOf(d), Answer(Outcome.ALLOW, JULIET))

    def test_otherResourceReported(self) -> None:
        """
        When another resource of the account answers the message form (a
        server may deliver it there), the answer says so: that JID is the
        confirmer, not the one asked.
        """
        d = self.requester.confirm(JULIET, REQUEST)
        self.pipe.sink.send(iqError(self.received[0], JULIET.full(), "service-unavailable"))
        self.pipe.sink.send(textReply(self.received[1], "juliet@capulet.com/phone", "OK"))
        self.assertEqual(self.successResultOf(d), Answer(Outcome.ALLOW, JID("juliet@capulet.com/phone")))

    def test_spoofedAnswerCounted(self) -> None:
        """
        An IQ result with the request's id from another JID completes
        nothing, and is counted as a mismatched answer of the C{httpauth}
        requester (the one request tracker, L{xmppcomp.iqtracker}); the
        real answer still does.
        """

        def mismatched() -> float:
            assert self.requester.metrics is not None
            return self.requester.metrics.value(
                "xmppcomp_iq_answers_mismatched_total", {"requester": "httpauth"}
            )

        before = mismatched()
        d = self.requester.confirm(JULIET, REQUEST)
        spoofed = toResponse(self.received[0], "result")
        spoofed["from"] = "romeo@montague.lit/garden"
        self.pipe.sink.send(spoofed)
        self.assertNoResult(d)
        self.assertEqual(mismatched(), before + 1)
        self.pipe.sink.send(iqError(self.received[0], JULIET.full(), "not-authorized"))
        self.assertEqual(self.successResultOf(d), Answer(Outcome.DENY, JULIET))

    def test_exactResource(self) -> None:
        """
        With C{exactResource}, another resource's answer is ignored; the
        asked resource's answer decides.
        """
        self.requester.exactResource = True
        d = self.requester.confirm(JULIET, REQUEST)
        self.pipe.sink.send(iqError(self.received[0], JULIET.full(), "service-unavailable"))
        self.pipe.sink.send(textReply(self.received[1], "juliet@capulet.com/phone", "OK"))
        self.assertNoResult(d)
        self.pipe.sink.send(textReply(self.received[1], JULIET.full(), "no"))
        self.assertEqual(self.successResultOf(d), Answer(Outcome.DENY, JULIET))

    def test_resultOnlyFromAsked(self) -> None:
        """
        An IQ result with the right id from the bare JID or the domain does
        not confirm (RFC 6120 section 8.1.2.1: a result comes from the
        entity asked); an error from the domain is a bounce.
        """
        d = self.requester.confirm(JULIET, REQUEST)
        iq = self.received[0]
        for sender in ("juliet@capulet.com", "capulet.com"):
            reply = toResponse(iq, "result")
            reply["from"] = sender
            self.pipe.sink.send(reply)
        self.assertNoResult(d)
        self.pipe.sink.send(iqError(iq, "capulet.com", "remote-server-not-found"))
        self.failureResultOf(d, CouldNotAsk)

    def test_messageForm(self) -> None:
        """
        A bare JID gets a message with thread, body and confirm.
        """
        self.requester.confirm(JULIET.userhostJID(), REQUEST)
        [message] = self.received
        self.assertEqual((message.name, message["to"], message["type"]), ("message", "juliet@capulet.com", "normal"))
        self.assertEqual(len(str(message.thread)), 40)
        self.assertIn(REQUEST.transactionId, str(message.body))
        self.assertEqual(ConfirmRequest.fromElement(message.confirm), REQUEST)

    def test_messageFormExpiryAndHints(self) -> None:
        """
        The message form says when the request expires, from the
        requester's clock and timeout (UTC, and seconds from sending), and
        carries the XEP-0334 no-store hints; after a fallback, the seconds
        left of the first question.
        """
        self.clock.advance(1_800_000_000)
        self.requester.confirm(JULIET.userhostJID(), REQUEST)
        [message] = self.received
        self.assertIn(
            "expires in 60 seconds, at 2027-01-15 08:01:00 UTC", str(message.body)
        )
        self.assertEqual(
            [c.name for c in message.elements() if c.uri == NS_HINTS],
            ["no-store", "no-permanent-store"],
        )
        self.requester.confirm(JULIET, REQUEST)
        self.clock.advance(15)
        self.pipe.sink.send(iqError(self.received[1], JULIET.full(), "service-unavailable"))
        self.assertIn(
            "expires in 45 seconds, at 2027-01-15 08:01:00 UTC", str(self.received[2].body)
        )

    def test_plainText(self) -> None:
        """
        Plain-text answers in the thread from the bare JID: OK, yes and the
        transaction id allow, no denies, other text is ignored.
        """
        for text, outcome in [("OK", Outcome.ALLOW), ("yes", Outcome.ALLOW), (REQUEST.transactionId, Outcome.ALLOW), ("No", Outcome.DENY)]:
            del self.received[:]
            d = self.requester.confirm(JULIET.userhostJID(), REQUEST)
            self.pipe.sink.send(textReply(self.received[0], "juliet@capulet.com/phone", "what is this?"))
            self.assertNoResult(d)
            self.pipe.sink.send(textReply(self.received[0], "juliet@capulet.com/phone", text))
            self.assertIs(self.successResultOf(d).outcome, outcome)

    def test_messageOtherSenderIgnored(self) -> None:
        """
        An answer in the right thread from another JID is ignored, and so
        is an answer from the right JID outside the thread.
        """
        d = self.requester.confirm(JULIET.userhostJID(), REQUEST)
        message = self.received[0]
        self.pipe.sink.send(textReply(message, "romeo@montague.lit/garden", "OK"))
        self.pipe.sink.send(textReply(message, "juliet@capulet.com/phone", "OK", thread=False))
        self.assertNoResult(d)
        self.assertEqual(self.requester.pendingCount, 1)

    def test_messageError(self) -> None:
        """
        A message of type error with C{not-authorized} denies.
        """
        d = self.requester.confirm(JULIET.userhostJID(), REQUEST)
        denial = reply(self.received[0], "juliet@capulet.com/phone", "error")
        denial.addElement("error").addElement((NS_XMPP_STANZAS, "not-authorized"))
        self.pipe.sink.send(denial)
        self.assertIs(self.successResultOf(d).outcome, Outcome.DENY)

    def test_messageBounce(self) -> None:
        """
        A bounce of the message form (an error other than
        C{not-authorized}) fails with L{CouldNotAsk}, counted
        C{undeliverable}.
        """
        before = undeliverable(self.requester)
        d = self.requester.confirm(JULIET.userhostJID(), REQUEST)
        bounce = reply(self.received[0], "juliet@capulet.com", "error")
        bounce.addElement("error").addElement((NS_XMPP_STANZAS, "service-unavailable"))
        self.pipe.sink.send(bounce)
        error = self.failureResultOf(d, CouldNotAsk).value
        self.assertIn("service-unavailable", error.reason)
        self.assertEqual(undeliverable(self.requester), before + 1)
        self.assertEqual(self.requester.pendingCount, 0)

    def test_fallbackBounce(self) -> None:
        """
        A full JID whose IQ gets C{service-unavailable} is asked with the
        message form; when that bounces too, the confirmation fails with
        L{CouldNotAsk}.
        """
        d = self.requester.confirm(JULIET, REQUEST)
        self.pipe.sink.send(iqError(self.received[0], "juliet@capulet.com", "service-unavailable"))
        message = self.received[1]
        bounce = reply(message, "juliet@capulet.com", "error")
        bounce.addElement("error").addElement((NS_XMPP_STANZAS, "service-unavailable"))
        self.pipe.sink.send(bounce)
        self.failureResultOf(d, CouldNotAsk)
        self.assertEqual(self.requester.pendingCount, 0)

    def test_unserializable(self) -> None:
        """
        When the stream refuses the request (L{UnserializableElement}),
        that confirmation fails with L{CouldNotAsk} giving the reason, is
        forgotten and counted C{undeliverable}; the others go on. So does
        a refused fallback message.
        """
        parent = _RefusingParent(self.pipe.source, lambda e: "bad" in e.toXml())
        self.requester.parent = parent
        good = self.requester.confirm(JULIET, REQUEST)
        before = undeliverable(self.requester)
        bad = self.requester.confirm(JULIET, ConfirmRequest("bad", "GET", REQUEST.url))
        error = self.failureResultOf(bad, CouldNotAsk).value
        self.assertIn("U+FFFE", error.reason)
        self.assertEqual(undeliverable(self.requester), before + 1)
        self.assertEqual(self.requester.pendingCount, 1)
        self.assertEqual(len(self.flushLoggedErrors()), 0)
        fallback = self.requester.confirm(JULIET, REQUEST)
        parent.refuse = lambda e: e.name == "message"
        self.pipe.sink.send(iqError(self.received[-1], JULIET.full(), "service-unavailable"))
        self.failureResultOf(fallback, CouldNotAsk)
        self.assertEqual(self.requester.pendingCount, 1)
        self.pipe.sink.send(reply(self.received[0], JULIET.full()))
        self.assertIs(self.successResultOf(good).outcome, Outcome.ALLOW)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_timeout(self) -> None:
        """
        No answer within the timeout fails with L{ConfirmationTimeout}
        naming the JID, frees the pending entry, and a late answer is then
        ignored.
        """
        d = self.requester.confirm(JULIET, REQUEST)
        self.clock.advance(59)
        self.assertNoResult(d)
        self.clock.advance(1)
        failure = self.failureResultOf(d, ConfirmationTimeout)
        self.assertIn(JULIET.full(), failure.value.reason)
        self.assertEqual(failure.value.status, 504)
        self.assertEqual(self.requester.pendingCount, 0)
        self.pipe.sink.send(reply(self.received[0], JULIET.full()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_timeoutsShareOneTimer(self) -> None:
        """
        Several pending confirmations share one timer: each times out
        C{timeout} seconds after it was asked, in order; answered ones
        never do; with none left pending, no timer is left either.
        """
        first = self.requester.confirm(JULIET, REQUEST)
        self.clock.advance(10)
        second = self.requester.confirm(JULIET, REQUEST)
        third = self.requester.confirm(JULIET, REQUEST)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.pipe.sink.send(reply(self.received[2], JULIET.full()))
        self.assertIs(self.successResultOf(third).outcome, Outcome.ALLOW)
        self.clock.advance(49.5)
        self.assertNoResult(first)
        self.clock.advance(0.5)
        self.failureResultOf(first, ConfirmationTimeout)
        self.assertNoResult(second)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(9.9)
        self.assertNoResult(second)
        self.clock.advance(0.1)
        self.failureResultOf(second, ConfirmationTimeout)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.requester.pendingCount, 0)

    def test_fallbackKeepsItsTime(self) -> None:
        """
        A confirmation that falls back to the message form still times out
        C{timeout} seconds after it was first asked, when it is the oldest.
        """
        d = self.requester.confirm(JULIET, REQUEST)
        self.clock.advance(5)
        self.pipe.sink.send(iqError(self.received[0], JULIET.full(), "service-unavailable"))
        self.assertEqual(self.received[1].name, "message")
        self.clock.advance(54.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.failureResultOf(d, ConfirmationTimeout)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_answerCancelsTimer(self) -> None:
        """
        An answer cancels the timeout.
        """
        self.requester.confirm(JULIET, REQUEST)
        self.pipe.sink.send(reply(self.received[0], JULIET.full()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancel(self) -> None:
        """
        Cancelling the Deferred forgets the confirmation.
        """
        d = self.requester.confirm(JULIET, REQUEST)
        d.cancel()
        self.failureResultOf(d)
        self.assertEqual(self.requester.pendingCount, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_notConnected(self) -> None:
        """
        Without a stream, confirming fails at once with
        L{ConfirmerUnavailable}.
        """
        requester = ConfirmationRequester(COMPONENT, self.clock)
        failure = self.failureResultOf(requester.confirm(JULIET, REQUEST), ConfirmerUnavailable)
        self.assertEqual(failure.value.status, 503)

    def test_unavailableRetryAfter(self) -> None:
        """
        L{ConfirmerUnavailable} always carries a C{Retry-After}: 5 seconds
        by default, or as configured, when not connected and when the
        connection is lost.
        """
        requester = ConfirmationRequester(COMPONENT, self.clock)
        failure = self.failureResultOf(requester.confirm(JULIET, REQUEST), ConfirmerUnavailable)
        self.assertEqual((failure.value.retryAfter, failure.value.forwardStatus), (5, 403))
        requester = ConfirmationRequester(COMPONENT, self.clock, unavailableRetryAfter=12)
        failure = self.failureResultOf(requester.confirm(JULIET, REQUEST), ConfirmerUnavailable)
        self.assertEqual(failure.value.retryAfter, 12)
        attach(requester, XmlPipe().source)
        d = requester.confirm(JULIET, REQUEST)
        requester.connectionLost(Failure(Exception("gone")))
        self.assertEqual(self.failureResultOf(d, ConfirmerUnavailable).value.retryAfter, 12)

    def test_connectionLost(self) -> None:
        """
        Losing the stream fails pending confirmations with
        L{ConfirmerUnavailable}.
        """
        d = self.requester.confirm(JULIET, REQUEST)
        self.requester.connectionLost(Failure(Exception("gone")))
        self.failureResultOf(d, ConfirmerUnavailable)
        self.assertEqual(self.requester.pendingCount, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class RoundTripTests(SynchronousTestCase):
    """
    A requester and a responder on the two ends of an L{XmlPipe}.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.pipe = XmlPipe()
        self.requester = ConfirmationRequester(COMPONENT, self.clock, timeout=60)
        attach(self.requester, self.pipe.source)
        self.asked: list[IncomingConfirmation] = []
        self.answer: bool | Deferred[bool] = True
        self.responder = ConfirmationResponder(self.policy)
        attach(self.responder, self.pipe.sink)
        self.toResponder: list[domish.Element] = []
        self.toRequester: list[domish.Element] = []
        self.pipe.sink.addObserver("/*", self.toResponder.append, priority=10)
        self.pipe.source.addObserver("/*", self.toRequester.append, priority=10)

    def policy(self, request: IncomingConfirmation) -> bool | Deferred[bool]:
        self.asked.append(request)
        return self.answer

    def test_iqAllow(self) -> None:
        """
        Over IQ, a policy saying yes confirms with an IQ result.
        """
        d = self.requester.confirm(JULIET, REQUEST)
        self.assertIs(self.successResultOf(d).outcome, Outcome.ALLOW)
        [asked] = self.asked
        self.assertEqual((asked.sender, asked.recipient, asked.request, asked.viaMessage), (COMPONENT, JULIET, REQUEST, False))
        self.assertEqual(self.toRequester[0]["type"], "result")

    def test_iqDeny(self) -> None:
        """
        Over IQ, a policy saying no answers C{not-authorized} with the
        confirm element, which denies.
        """
        self.answer = False
        d = self.requester.confirm(JULIET, REQUEST)
        self.assertIs(self.successResultOf(d).outcome, Outcome.DENY)
        [error] = self.toRequester
        self.assertEqual(error["type"], "error")
        self.assertEqual(error.error.firstChildElement().name, "not-authorized")
        self.assertEqual(ConfirmRequest.fromElement(error.confirm), REQUEST)

    def test_deferredPolicy(self) -> None:
        """
        The policy may answer later with a Deferred.
        """
        self.answer = Deferred()
        d = self.requester.confirm(JULIET, REQUEST)
        self.assertNoResult(d)
        self.answer.callback(True)
        self.assertIs(self.successResultOf(d).outcome, Outcome.ALLOW)

    def test_failingPolicy(self) -> None:
        """
        A failing policy answers C{internal-server-error} over IQ, which
        means the user could not be asked (L{CouldNotAsk}).
        """
        self.answer = Deferred()
        d = self.requester.confirm(JULIET, REQUEST)
        self.answer.errback(RuntimeError("broken policy"))
        self.assertIn("internal-server-error", self.failureResultOf(d, CouldNotAsk).value.reason)
        self.assertEqual(self.toRequester[0].error.firstChildElement().name, "internal-server-error")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_messageAllow(self) -> None:
        """
        Over message, a policy saying yes echoes thread and confirm in a
        message of type normal, which confirms.
        """
        d = self.requester.confirm(JULIET.userhostJID(), REQUEST)
        self.assertIs(self.successResultOf(d).outcome, Outcome.ALLOW)
        [asked] = self.asked
        self.assertTrue(asked.viaMessage)
        self.assertIn(REQUEST.url, asked.body or "")
        [echo] = self.toRequester
        self.assertEqual((echo["type"], str(echo.thread)), ("normal", asked.thread))
        self.assertEqual(ConfirmRequest.fromElement(echo.confirm), REQUEST)

    def test_messageDeny(self) -> None:
        """
        Over message, a policy saying no answers a message of type error
        with thread and confirm, which denies.
        """
        self.answer = False
        d = self.requester.confirm(JULIET.userhostJID(), REQUEST)
        self.assertIs(self.successResultOf(d).outcome, Outcome.DENY)
        [error] = self.toRequester
        self.assertEqual(error["type"], "error")
        self.assertEqual(str(error.thread), self.asked[0].thread)

    def test_fallback(self) -> None:
        """
        When the full JID answers the IQ with C{feature-not-implemented},
        the message form reaches the responder at that same full JID and
        its answer decides.
        """

        def refuseIQ(iq: domish.Element) -> None:
            iq.handled = True
            self.pipe.sink.send(iqError(iq, iq["to"], "feature-not-implemented"))

        self.pipe.sink.addObserver("/iq[@type='get']", refuseIQ, priority=5)
        d = self.requester.confirm(JULIET, REQUEST)
        self.assertIs(self.successResultOf(d).outcome, Outcome.ALLOW)
        [asked] = self.asked
        self.assertTrue(asked.viaMessage)
        self.assertEqual(asked.recipient, JULIET)

    def test_forgedAnswerIgnored(self) -> None:
        """
        An answer with the right id from a third JID does not settle a
        confirmation; the responder's does.
        """
        self.answer = Deferred()
        d = self.requester.confirm(JULIET, REQUEST)
        iq = self.toResponder[0]
        self.pipe.sink.send(reply(iq, "mallory@evil.example/x"))
        self.assertNoResult(d)
        self.answer.callback(False)
        self.assertIs(self.successResultOf(d).outcome, Outcome.DENY)

    def test_badRequest(self) -> None:
        """
        A confirm IQ lacking an attribute is answered C{bad-request} and
        the policy is not asked.
        """
        iq = domish.Element((None, "iq"))
        iq["type"] = "get"
        iq["id"] = "x"
        iq["from"] = COMPONENT.full()
        iq["to"] = JULIET.full()
        confirm = iq.addElement((NS_HTTP_AUTH, "confirm"))
        confirm["id"] = "t"
        self.pipe.source.send(iq)
        self.assertEqual(self.asked, [])
        self.assertEqual(self.toRequester[0].error.firstChildElement().name, "bad-request")

    def test_repliesNotTakenForRequests(self) -> None:
        """
        On a stream with both handlers, a message echo answering our own
        request is taken by the requester, not treated as a new request.
        """
        attach(ConfirmationResponder(self.policy), self.pipe.source)
        d = self.requester.confirm(JULIET.userhostJID(), REQUEST)
        self.assertIs(self.successResultOf(d).outcome, Outcome.ALLOW)
        self.assertEqual(len(self.asked), 1)
