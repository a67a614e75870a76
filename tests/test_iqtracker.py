# -*- test-case-name: tests.test_iqtracker -*-
"""
Tests for L{xmppcomp.iqtracker}: unguessable ids, the RFC 6120 rule of who
may answer a request, and the tracker that applies it, fed with parsed
IQs and driven by a L{Clock}.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.protocols.jabber.jid import JID
from twisted.words.protocols.jabber.xmlstream import TimeoutError
from twisted.words.xish import domish

from xmppcomp.iqtracker import (
    REQUEST_ID_BYTES,
    RequestTracker,
    SentRequest,
    defaultRule,
    fromAskedOrBareJID,
    newRequestId,
)
from xmppcomp.jids import JIDCache
from xmppcomp.metrics import Metrics

SERVER = "example.net"

#: 22 characters of URL-safe base64: 128 bits.
ID_PATTERN = re.compile(r"\A[A-Za-z0-9_-]{22}\Z")


def mismatched(metrics: Metrics, requester: str) -> float:
    """
    The count of C{xmppcomp_iq_answers_mismatched_total} for C{requester}
    in C{metrics}.
    """
    return metrics.value("xmppcomp_iq_answers_mismatched_total", {"requester": requester})


def request(to: str | None = "peer.example.org/r", id: str | None = None) -> domish.Element:
    iq = domish.Element((None, "iq"))
    iq["type"] = "get"
    iq["from"] = "comp.example.net"
    if to is not None:
        iq["to"] = to
    if id is not None:
        iq["id"] = id
    iq.addElement(("urn:example", "query"))
    return iq


def answer(iq: domish.Element, kind: str = "result", sender: str | None = None) -> domish.Element:
    """
    An answer to C{iq} of type C{kind} from C{sender} (C{None}: no
    C{from}), as the stream would dispatch it.
    """
    reply = domish.Element(("jabber:client", "iq"))
    reply["type"] = kind
    reply["id"] = iq["id"]
    reply["to"] = iq["from"]
    if sender is not None:
        reply["from"] = sender
    if kind == "error":
        error = reply.addElement("error")
        error["type"] = "cancel"
        error.addElement(("urn:ietf:params:xml:ns:xmpp-stanzas", "service-unavailable"))
    return reply


class IdTests(SynchronousTestCase):
    """
    L{newRequestId} makes ids nobody can guess.
    """

    def test_format(self) -> None:
        """
        An id is 128 random bits in 22 characters of URL-safe base64
        (safe in an XML attribute), and a thousand of them differ.
        """
        self.assertEqual(REQUEST_ID_BYTES * 8, 128)
        ids = {newRequestId() for _ in range(1000)}
        self.assertEqual(len(ids), 1000)
        for identifier in ids:
            self.assertRegex(identifier, ID_PATTERN)


class RuleTests(SynchronousTestCase):
    """
    L{defaultRule}: RFC 6120 section 8.1.2.1.
    """

    def accepts(self, to: str | None, kind: str, sender: str | None, server: str | None = SERVER) -> bool:
        sent = SentRequest(
            "x",
            None if to is None else JID(to),
            None if server is None else JID(server),
        )
        return defaultRule(sent, kind, None if sender is None else JID(sender))

    def test_resultOnlyFromTheEntityAsked(self) -> None:
        """
        A result counts only from the exact JID asked (compared as JIDs:
        the domain case-folded), not from its bare JID, its domain, another
        resource or anyone else.
        """
        asked = "juliet@capulet.example/balcony"
        self.assertTrue(self.accepts(asked, "result", asked))
        self.assertTrue(self.accepts(asked, "result", "juliet@Capulet.Example/balcony"))
        for sender in (
            "juliet@capulet.example",
            "capulet.example",
            "juliet@capulet.example/chamber",
            "romeo@capulet.example/balcony",
            "evil.example",
            SERVER,
        ):
            self.assertFalse(self.accepts(asked, "result", sender), sender)
        self.assertFalse(self.accepts(asked, "result", None))

    def test_errorAlsoFromBareJIDOrDomain(self) -> None:
        """
        An error counts from the JID asked, its bare JID or its domain (a
        server bouncing for its account), not from another account,
        resource or domain.
        """
        asked = "juliet@capulet.example/balcony"
        for sender in (asked, "juliet@capulet.example", "capulet.example"):
            self.assertTrue(self.accepts(asked, "error", sender), sender)
        for sender in (
            "juliet@capulet.example/chamber",
            "romeo@capulet.example",
            "montague.example",
            SERVER,
        ):
            self.assertFalse(self.accepts(asked, "error", sender), sender)
        self.assertFalse(self.accepts(asked, "error", None))

    def test_domainAsked(self) -> None:
        """
        Asked a domain, a result comes from that domain only; an error
        from it too (its bare JID is itself), not from an account there.
        """
        self.assertTrue(self.accepts("other.example", "result", "other.example"))
        self.assertFalse(self.accepts("other.example", "result", "user@other.example"))
        self.assertFalse(self.accepts("other.example", "error", "user@other.example"))

    def test_noFromOnlyForTheServer(self) -> None:
        """
        An answer without C{from} counts only for a request to the
        server's own domain or with no C{to}; a request with no C{to} is
        answered by the server's domain, not by anyone else.
        """
        self.assertTrue(self.accepts(SERVER, "result", None))
        self.assertTrue(self.accepts(SERVER, "error", None))
        self.assertTrue(self.accepts(None, "result", None))
        self.assertTrue(self.accepts(None, "result", SERVER))
        self.assertTrue(self.accepts(None, "error", SERVER))
        self.assertFalse(self.accepts(None, "result", "evil.example"))
        self.assertFalse(self.accepts(None, "error", "user@" + SERVER))
        self.assertFalse(self.accepts("user@" + SERVER, "result", None))
        self.assertFalse(self.accepts("other.example", "error", None))

    def test_serverUnknown(self) -> None:
        """
        Without the server's domain, only a request with no C{to} accepts
        an answer with no C{from}.
        """
        self.assertTrue(self.accepts(None, "result", None, server=None))
        self.assertFalse(self.accepts(None, "result", SERVER, server=None))
        self.assertFalse(self.accepts(SERVER, "result", None, server=None))

    def test_widerRule(self) -> None:
        """
        L{fromAskedOrBareJID} also takes a result from the bare JID asked,
        and still nothing from another account or resource.
        """
        asked = SentRequest("x", JID("juliet@capulet.example/balcony"), None)
        self.assertTrue(fromAskedOrBareJID(asked, "result", JID("juliet@capulet.example")))
        self.assertTrue(fromAskedOrBareJID(asked, "error", JID("capulet.example")))
        self.assertFalse(fromAskedOrBareJID(asked, "result", JID("capulet.example")))
        self.assertFalse(fromAskedOrBareJID(asked, "result", JID("juliet@capulet.example/chamber")))
        self.assertFalse(fromAskedOrBareJID(asked, "result", None))


class TrackerTests(SynchronousTestCase):
    """
    L{RequestTracker} matches answers by id and sender, keeps timeouts, and
    fails what is waiting when told.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.metrics = Metrics()
        self.tracker = RequestTracker(SERVER, self.clock, requester="test", metrics=self.metrics)
        self.results: list[domish.Element] = []
        self.errors: list[Any] = []

    def expect(self, iq: domish.Element, **kwargs: Any) -> str:
        return self.tracker.expect(iq, self.results.append, self.errors.append, **kwargs)

    def test_idGiven(self) -> None:
        """
        A request without an id gets an unguessable one; one with an id
        keeps it.
        """
        iq = request()
        identifier = self.expect(iq)
        self.assertEqual(iq["id"], identifier)
        self.assertRegex(identifier, ID_PATTERN)
        own = request(id="mine")
        self.assertEqual(self.expect(own), "mine")
        self.assertEqual(len(self.tracker), 2)
        self.assertIn("mine", self.tracker)

    def test_refusedRequests(self) -> None:
        """
        The id of a request still waiting, a C{to} that is not a JID, and a
        timeout without a clock raise L{ValueError}, and nothing waits.
        """
        self.expect(request(id="twice"))
        self.assertRaises(ValueError, self.expect, request(id="twice"))
        self.assertRaises(ValueError, self.expect, request(to="a@b@c"))
        clockless = RequestTracker(SERVER)
        self.assertRaises(
            ValueError, clockless.expect, request(), self.results.append, self.errors.append, 5
        )
        self.assertEqual(len(self.tracker), 1)
        self.assertEqual(len(clockless), 0)

    def test_result(self) -> None:
        """
        The result from the entity asked completes the request and is
        marked handled.
        """
        iq = request()
        self.expect(iq)
        reply = answer(iq, sender="peer.example.org/r")
        self.assertTrue(self.tracker.receive(reply))
        self.assertEqual(self.results, [reply])
        self.assertTrue(reply.handled)  # type: ignore[attr-defined]
        self.assertEqual(len(self.tracker), 0)
        self.assertFalse(self.tracker.receive(reply))

    def test_error(self) -> None:
        """
        An error from the domain asked fails the request with its
        L{StanzaError}, which carries the stanza.
        """
        iq = request()
        self.expect(iq)
        reply = answer(iq, "error", sender="peer.example.org")
        self.assertTrue(self.tracker.receive(reply))
        (error,) = self.errors
        self.assertIsInstance(error, StanzaError)
        self.assertEqual(error.condition, "service-unavailable")
        self.assertIs(error.stanza, reply)

    def test_spoofedAnswerIgnored(self) -> None:
        """
        A result with the right id from another JID, or with a C{from}
        that is no JID, completes nothing, is not marked handled, is
        counted and logged at debug with both addresses; the real answer
        still completes the request.
        """
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        before = mismatched(self.metrics, "test")
        iq = request()
        self.expect(iq)
        spoofed = answer(iq, sender="evil.example/x")
        malformed = answer(iq, sender="a@b@c")
        self.assertFalse(self.tracker.receive(spoofed))
        self.assertFalse(self.tracker.receive(malformed))
        self.assertFalse(getattr(spoofed, "handled", False))
        self.assertEqual((self.results, self.errors), ([], []))
        self.assertEqual(mismatched(self.metrics, "test") - before, 2)
        (logged, _) = [e for e in events if e.get("log_namespace") == "xmppcomp.iqtracker"]
        self.assertEqual(logged["log_level"].name, "debug")
        self.assertEqual((logged["sender"], logged["asked"]), ("evil.example/x", "peer.example.org/r"))
        real = answer(iq, sender="peer.example.org/r")
        self.assertTrue(self.tracker.receive(real))
        self.assertEqual(self.results, [real])

    def test_withoutMetricsNothingCounted(self) -> None:
        """
        A tracker given no L{Metrics} counts its ignored answers nowhere:
        not in another tracker's metrics, not in a registry of the
        process.
        """
        import prometheus_client

        before = list(prometheus_client.REGISTRY.collect())
        tracker = RequestTracker(SERVER, self.clock, requester="test")
        iq = request()
        tracker.expect(iq, self.results.append, self.errors.append)
        self.assertFalse(tracker.receive(answer(iq, sender="evil.example/x")))
        self.assertEqual(mismatched(self.metrics, "test"), 0)
        self.assertEqual(
            [m.name for m in prometheus_client.REGISTRY.collect()], [m.name for m in before]
        )

    def test_sharedJIDs(self) -> None:
        """
        A tracker parses addresses through the L{JIDCache} it is given
        (its owner's), or one of its own.
        """
        jids = JIDCache()
        tracker = RequestTracker(SERVER, self.clock, jids=jids)
        self.assertIs(tracker.jids, jids)
        self.assertIs(tracker.server, jids(SERVER))
        tracker.expect(request(), self.results.append, self.errors.append)
        self.assertIn("peer.example.org/r", jids)
        self.assertIsNot(RequestTracker(SERVER).jids, RequestTracker(SERVER).jids)

    def test_notAnAnswer(self) -> None:
        """
        A request with the id of ours, or an answer with an unknown or no
        id, is left alone and not counted.
        """
        before = mismatched(self.metrics, "test")
        iq = request()
        self.expect(iq)
        get = answer(iq, sender="peer.example.org/r")
        get["type"] = "get"
        unknown = answer(iq, sender="peer.example.org/r")
        unknown["id"] = "other"
        noId = answer(iq, sender="peer.example.org/r")
        del noId["id"]
        for stanza in (get, unknown, noId):
            self.assertFalse(self.tracker.receive(stanza))
        self.assertEqual(len(self.tracker), 1)
        self.assertEqual(mismatched(self.metrics, "test"), before)

    def test_widerRuleGiven(self) -> None:
        """
        A caller's rule decides: with L{fromAskedOrBareJID}, a result from
        the bare JID asked completes the request.
        """
        iq = request(to="juliet@capulet.example/balcony")
        self.expect(iq, rule=fromAskedOrBareJID)
        self.assertTrue(self.tracker.receive(answer(iq, sender="juliet@capulet.example")))
        self.assertEqual(len(self.results), 1)

    def test_timeout(self) -> None:
        """
        A request unanswered for its timeout fails with L{TimeoutError}
        naming the entity asked, and a late answer completes nothing.
        """
        iq = request()
        self.expect(iq, timeout=5)
        self.clock.advance(4.9)
        self.assertEqual(self.errors, [])
        self.clock.advance(0.1)
        (error,) = self.errors
        self.assertIsInstance(error, TimeoutError)
        self.assertIn("peer.example.org/r", str(error))
        self.assertFalse(self.tracker.receive(answer(iq, sender="peer.example.org/r")))

    def test_answerCancelsTimer(self) -> None:
        """
        An answer cancels the request's timer.
        """
        iq = request()
        self.expect(iq, timeout=5)
        self.tracker.receive(answer(iq, sender="peer.example.org/r"))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_failAll(self) -> None:
        """
        L{RequestTracker.failAll} fails everything waiting with the reason
        given (a L{Failure} passes as it is) and cancels the timers.
        """
        first, second = request(), request()
        self.expect(first, timeout=5)
        self.expect(second)
        reason = Failure(ConnectionError("gone"))
        self.tracker.failAll(reason)
        self.assertEqual(self.errors, [reason, reason])
        self.assertEqual(len(self.tracker), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_forget(self) -> None:
        """
        A forgotten request calls nothing and its answer completes
        nothing.
        """
        iq = request()
        identifier = self.expect(iq, timeout=5)
        self.assertTrue(self.tracker.forget(identifier))
        self.assertFalse(self.tracker.forget(identifier))
        self.assertFalse(self.tracker.receive(answer(iq, sender="peer.example.org/r")))
        self.clock.advance(10)
        self.assertEqual((self.results, self.errors), ([], []))
