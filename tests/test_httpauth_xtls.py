# -*- test-case-name: tests.test_httpauth_xtls -*-
"""
XEP-0070 confirmations through XTLS (issue 21): a L{ConfirmationRequester}
asking with C{endToEnd} opens a real TLS tunnel to the user's full JID and
takes only the answer that comes back through it; a
L{ConfirmationResponder} answers through the tunnel the request came
through. Both ends are wokkel handlers on a L{StanzaRouter}, which plays
the XMPP server: everything between them crosses it as XML text, and the
malicious-server tests make it forge and tamper.
"""

from __future__ import annotations

import base64
import os
import re
from typing import Any
from xml.etree.ElementTree import Element

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber import error
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from tests.xtlshelpers import Recorder, StdlibPeer
from xmppcomp.httpauth import (
    ConfirmationRequester,
    ConfirmationResponder,
    ConfirmationTimeout,
    EndToEndRequired,
    IncomingConfirmation,
)
from xmppcomp.httpauth._protocol import Answer, ConfirmRequest, Outcome
from xmppcomp.ns import NS_CLIENT, NS_HTTP_AUTH
from xmppcomp.metrics import Metrics
from xmppcomp.testing import CertificateAuthority, StanzaRouter, makeCertificateAuthority
from xmppcomp.xtls import XTLSConfiguration, XTLSHandler

CONFIRMER = JID("confirmer.example")
ALICE = JID("alice@user.example/phone")
KEY = "k" * 40
REQUEST = ConfirmRequest("tx-1", "GET", "https://site.example/")


class _Router(StanzaRouter):
    """
    A L{StanzaRouter} that can be told to change what it carries: the
    malicious server.

    @ivar rewrite: called with each stanza's XML text; returns what is
        delivered instead (the text itself to pass it on).
    """

    def __init__(self, reactor: Clock) -> None:
        super().__init__(reactor)
        self.rewrite = lambda text: text
        self.seen: list[str] = []

    def enqueue(self, text: str) -> None:
        self.seen.append(text)
        super().enqueue(self.rewrite(text))


class Ends:
    """
    The confirmer (C{confirmer.example}: requester and XTLS endpoint) and
    the user's client (C{alice@user.example}: responder and XTLS endpoint),
    with certificates from one authority. Without C{aliceClient}, the
    user's domain is left for another end (a L{StdlibPeer}).
    """

    def __init__(
        self,
        policy: Any = None,
        aliceCertificate: Any = None,
        aliceXTLS: dict[str, object] | None = None,
        confirmerXTLS: bool = True,
        requireXTLS: bool = True,
        authority: CertificateAuthority | None = None,
        responder: bool = True,
        aliceClient: bool = True,
        confirmerUsers: tuple[str, ...] = (),
    ) -> None:
        self.clock = Clock()
        self.router = _Router(self.clock)
        self.authority = authority or makeCertificateAuthority()
        self.asked: list[IncomingConfirmation] = []
        self.answers: list[bool | Deferred[bool]] = []
        self.policy = policy or self._record
        self.confirmerTLS = XTLSHandler(
            XTLSConfiguration(
                certificate=self.authority.issue(
                    dnsNames=[CONFIRMER.host], xmppAddrs=confirmerUsers, client=True
                ),
                trust=[self.authority.certificate],
            ),
            clock=self.clock,
        )
        self.metrics = Metrics()
        self.requester = ConfirmationRequester(
            CONFIRMER,
            self.clock,
            timeout=60,
            metrics=self.metrics,
            makeKey=lambda: KEY,
            xtls=self.confirmerTLS if confirmerXTLS else None,
        )
        self.router.attach(CONFIRMER.host, self.confirmerTLS, None, self.requester)
        if not aliceClient:
            return
        settings: dict[str, object] = {
            "certificate": aliceCertificate
            or self.authority.issue(xmppAddrs=[ALICE.userhost()], client=True),
            "trust": [self.authority.certificate],
        }
        settings.update(aliceXTLS or {})
        self.aliceTLS = XTLSHandler(XTLSConfiguration(**settings), clock=self.clock)  # type: ignore[arg-type]
        self.responder = ConfirmationResponder(self.policy, xtls=self.aliceTLS, requireXTLS=requireXTLS)
        handlers = [self.responder] if responder else []
        self.aliceEnd = self.router.attach(ALICE.host, self.aliceTLS, None, *handlers)

    def _record(self, incoming: IncomingConfirmation) -> bool | Deferred[bool]:
        self.asked.append(incoming)
        return self.answers.pop(0) if self.answers else True

    def confirm(self, who: JID = ALICE, endToEnd: bool = True) -> Deferred[Answer]:
        d = self.requester.confirm(who, REQUEST, endToEnd=endToEnd)
        self.router.flush()
        return d

    def plaintext(self) -> list[str]:
        """
        What crossed the server mentioning XEP-0070 in the clear.
        """
        return [text for text in self.router.seen if "http-auth" in text or "tx-1" in text]


def _forgedResult() -> str:
    return (
        f"<iq type='result' id='{KEY}' from='{ALICE.full()}' to='{CONFIRMER.full()}'/>"
    )


def _forgedMessage() -> str:
    return (
        f"<message from='{ALICE.full()}' to='{CONFIRMER.full()}'><thread>{KEY}</thread>"
        f"<confirm xmlns='http://jabber.org/protocol/http-auth' id='tx-1' method='GET' "
        f"url='https://site.example/'/></message>"
    )


class ThroughTunnelTests(SynchronousTestCase):
    """
    Confirmations that must come through XTLS.
    """

    def setUp(self) -> None:
        self.events: list[LogEvent] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def logged(self, text: str) -> list[str]:
        return [formatEvent(e) for e in self.events if text in formatEvent(e)]

    def test_tunnelledYes(self) -> None:
        """
        The question goes through a tunnel opened for it; the user's yes
        comes back through it: allowed, by the full JID asked. Nothing of
        the question or the answer crossed the server in the clear, and
        the policy was told the request was tunnelled.
        """
        ends = Ends()
        answer = self.successResultOf(ends.confirm())
        self.assertEqual(answer, Answer(Outcome.ALLOW, ALICE))
        [incoming] = ends.asked
        self.assertTrue(incoming.tunnelled)
        self.assertEqual((incoming.sender, incoming.recipient), (CONFIRMER, ALICE))
        self.assertEqual(ends.plaintext(), [])
        self.assertEqual(len(ends.confirmerTLS.tunnels), 1)

    def test_tunnelledNo(self) -> None:
        """
        A no through the tunnel denies.
        """
        ends = Ends()
        ends.answers.append(False)
        self.assertEqual(self.successResultOf(ends.confirm()).outcome, Outcome.DENY)

    def test_tunnelReused(self) -> None:
        """
        A second confirmation to the same JID goes through the open tunnel;
        two asked at once share one tunnel being opened.
        """
        ends = Ends()
        keys = iter(["a" * 40, "b" * 40, "c" * 40])
        ends.requester._makeKey = lambda: next(keys)
        first = ends.requester.confirm(ALICE, REQUEST, endToEnd=True)
        second = ends.requester.confirm(ALICE, ConfirmRequest("tx-2", "GET", "https://site.example/"), endToEnd=True)
        ends.router.flush()
        self.assertEqual(self.successResultOf(first).outcome, Outcome.ALLOW)
        self.assertEqual(self.successResultOf(second).outcome, Outcome.ALLOW)
        starts = [t for t in ends.router.seen if "<start" in t]
        self.assertEqual(len(starts), 1)
        third = ends.requester.confirm(ALICE, ConfirmRequest("tx-3", "GET", "https://site.example/"), endToEnd=True)
        ends.router.flush()
        self.assertEqual(self.successResultOf(third).outcome, Outcome.ALLOW)
        self.assertEqual(len([t for t in ends.router.seen if "<start" in t]), 1)

    def test_bareJID(self) -> None:
        """
        A bare JID cannot be tunnelled to: L{EndToEndRequired} saying a
        full JID is needed, and nothing is sent.
        """
        ends = Ends()
        failure = self.failureResultOf(ends.confirm(JID("alice@user.example")), EndToEndRequired)
        self.assertIn("a full JID is needed for this site", failure.value.reason)
        self.assertEqual(ends.router.seen, [])

    def test_requesterWithoutXTLS(self) -> None:
        """
        A requester given no XTLS endpoint cannot ask end to end.
        """
        ends = Ends(confirmerXTLS=False)
        failure = self.failureResultOf(ends.confirm(), EndToEndRequired)
        self.assertIn("no working XTLS endpoint", failure.value.reason)
        self.assertEqual(ends.router.seen, [])

    def test_clientWithoutXTLS(self) -> None:
        """
        A client whose XTLS is off refuses the tunnel
        (C{service-unavailable}): 401's reason says its client does not do
        XTLS, and the user was not asked in the clear.
        """
        ends = Ends(aliceXTLS={"enabled": False})
        failure = self.failureResultOf(ends.confirm(), EndToEndRequired)
        self.assertIn("requires an end-to-end confirmation through XTLS", failure.value.reason)
        self.assertIn("its client does not do XTLS (service-unavailable)", failure.value.reason)
        self.assertEqual(ends.asked, [])
        self.assertEqual(ends.plaintext(), [])

    def test_wrongCertificate(self) -> None:
        """
        A client whose certificate names another user (from the trusted
        authority) is refused: the tunnel does not open, nobody is asked.
        """
        authority = makeCertificateAuthority()
        ends = Ends(
            authority=authority,
            aliceCertificate=authority.issue(xmppAddrs=["mallory@user.example"], client=True),
        )
        failure = self.failureResultOf(ends.confirm(), EndToEndRequired)
        self.assertIn("its certificate was refused", failure.value.reason)
        self.assertIn("alice@user.example", failure.value.reason)
        self.assertEqual(ends.asked, [])

    def test_untrustedCertificate(self) -> None:
        """
        A certificate from an authority the confirmer does not trust is
        refused.
        """
        other = makeCertificateAuthority()
        ends = Ends(aliceCertificate=other.issue(xmppAddrs=[ALICE.userhost()], client=True),
                    aliceXTLS={"trust": [makeCertificateAuthority().certificate]})
        self.failureResultOf(ends.confirm(), EndToEndRequired)
        self.assertEqual(ends.asked, [])

    def test_tunnelClosesBeforeAnswer(self) -> None:
        """
        The tunnel closing while the user has not answered ends the
        confirmation with L{EndToEndRequired}, at once.
        """
        ends = Ends()
        ends.answers.append(Deferred())
        d = ends.confirm()
        self.assertNoResult(d)
        [tunnel] = ends.aliceTLS.tunnels
        tunnel.close()
        ends.router.flush()
        failure = self.failureResultOf(d, EndToEndRequired)
        self.assertIn("tunnel to alice@user.example/phone closed before the answer", failure.value.reason)

    def test_clientDoesNotAnswerInTunnel(self) -> None:
        """
        A client that takes the tunnel but answers the question inside it
        with C{feature-not-implemented} cannot confirm end to end: no
        fallback to the message form.
        """
        ends = Ends(responder=False)
        d = ends.confirm()
        self.assertNoResult(d)
        [tunnel] = ends.aliceTLS.tunnels
        # What a client without XEP-0070 answers, through the tunnel.
        iq = _tunnelIQ(KEY, "error")
        iq.addChild(error.StanzaError("feature-not-implemented").getElement())
        tunnel.send(iq)
        ends.router.flush()
        failure = self.failureResultOf(d, EndToEndRequired)
        self.assertIn("does not answer confirmations through XTLS (feature-not-implemented)",
                      failure.value.reason)
        self.assertEqual(len([t for t in ends.router.seen if "<message" in t]), 0)


def _tunnelIQ(key: str, kind: str) -> domish.Element:
    iq = domish.Element((None, "iq"))
    iq["type"] = kind
    iq["id"] = key
    return iq


class MaliciousServerTests(SynchronousTestCase):
    """
    The XMPP server forges answers and tampers with tunnel data: never an
    allow.
    """

    def setUp(self) -> None:
        self.events: list[LogEvent] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def refusals(self) -> list[str]:
        return [formatEvent(e) for e in self.events if "Refused a plaintext answer" in formatEvent(e)]

    def test_forgedResultRefused(self) -> None:
        """
        While the user has not answered, the server injects an IQ result
        from the user's full JID with the very id of the question (the
        worst case: it cannot read the id inside the tunnel): refused and
        logged; the confirmation goes on and ends with the user's own
        answer through the tunnel, a no.
        """
        ends = Ends()
        pending: Deferred[bool] = Deferred()
        ends.answers.append(pending)
        d = ends.confirm()
        self.assertNoResult(d)
        ends.router.enqueue(_forgedResult())
        ends.router.flush()
        self.assertNoResult(d)
        [line] = self.refusals()
        self.assertEqual(
            ends.metrics.registry.get_sample_value("xmppcomp_httpauth_plaintext_answers_refused_total"), 1
        )
        self.assertIn("from alice@user.example/phone", line)
        self.assertIn("through XTLS", line)
        pending.callback(False)
        ends.router.flush()
        self.assertEqual(self.successResultOf(d).outcome, Outcome.DENY)

    def test_forgedResultThenSilence(self) -> None:
        """
        A forged plaintext result and no answer from the user: the
        confirmation times out, it is never allowed.
        """
        ends = Ends()
        ends.answers.append(Deferred())
        d = ends.confirm()
        ends.router.enqueue(_forgedResult())
        ends.router.flush()
        ends.clock.advance(61)
        self.failureResultOf(d, ConfirmationTimeout)
        self.assertEqual(len(self.refusals()), 1)

    def test_forgedMessageRefused(self) -> None:
        """
        A forged plaintext message answer carrying the question's key as
        its thread and the echoed C{<confirm/>} is refused as well.
        """
        ends = Ends()
        ends.answers.append(Deferred())
        d = ends.confirm()
        ends.router.enqueue(_forgedMessage())
        ends.router.flush()
        self.assertNoResult(d)
        self.assertEqual(len(self.refusals()), 1)
        ends.clock.advance(61)
        self.failureResultOf(d, ConfirmationTimeout)

    def test_answerThroughAnotherTunnel(self) -> None:
        """
        An answer through another tunnel of the same user (to another JID
        at the confirmer) is no answer: the question keeps waiting, and the
        answer through its own tunnel decides.
        """
        ends = Ends(confirmerUsers=("other@confirmer.example",))
        pending: Deferred[bool] = Deferred()
        ends.answers.append(pending)
        d = ends.confirm()
        other = ends.aliceTLS.open(ALICE, JID("other@confirmer.example"))
        ends.router.flush()
        side = self.successResultOf(other)
        iq = _tunnelIQ(KEY, "result")
        iq["to"] = CONFIRMER.full()
        side.send(iq)
        ends.router.flush()
        self.assertNoResult(d)
        pending.callback(False)
        ends.router.flush()
        self.assertEqual(self.successResultOf(d).outcome, Outcome.DENY)

    def test_tunnelledMessageNotCalledPlaintext(self) -> None:
        """
        A message that came through the tunnel with the question's key as
        its thread is no plaintext answer (no warning), and no answer
        either: the question was an IQ.
        """
        ends = Ends()
        ends.answers.append(Deferred())
        d = ends.confirm()
        [tunnel] = ends.aliceTLS.tunnels
        message = domish.Element((None, "message"))
        message.addElement("thread", content=KEY)
        tunnel.send(message)
        ends.router.flush()
        self.assertNoResult(d)
        self.assertEqual(self.refusals(), [])

    def test_serverAnswersStartForClient(self) -> None:
        """
        The server answers the start itself, claiming the client cannot do
        XTLS (the downgrade XTLS's start is open to): no confirmation in
        the clear follows, the request fails with L{EndToEndRequired}.
        """
        ends = Ends()

        def answerStart(text: str) -> str:
            if "<start" in text:
                ident = re.search(r"id=['\"]([^'\"]+)", text)
                assert ident is not None
                return (
                    f"<iq type='error' id='{ident.group(1)}' from='{ALICE.full()}' "
                    f"to='{CONFIRMER.full()}'><error type='cancel'><service-unavailable "
                    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
                )
            return text

        ends.router.rewrite = answerStart
        self.failureResultOf(ends.confirm(), EndToEndRequired)
        self.assertEqual(ends.asked, [])
        self.assertEqual(ends.plaintext(), [])

    def test_tamperedData(self) -> None:
        """
        Once the tunnel is open, the server flips a bit in the TLS records
        of the user's answer: the confirmer's TLS refuses the record, answers
        that data IQ C{not-acceptable}, and the tunnel ends at both ends;
        the confirmation fails with L{EndToEndRequired}, never allowed.
        """
        ends = Ends()
        pending: Deferred[bool] = Deferred()
        ends.answers.append(pending)
        d = ends.confirm()
        self.assertNoResult(d)
        recorder = Recorder()
        ends.aliceTLS.addObserver(recorder)

        def tamper(text: str) -> str:
            if "<data" in text and f"from='{ALICE.full()}'" in text.replace('"', "'"):
                payload = re.search(r"<data[^>]*>([^<]+)</data>", text)
                assert payload is not None
                raw = bytearray(base64.b64decode(payload.group(1)))
                raw[-1] ^= 0x01
                return text.replace(payload.group(1), base64.b64encode(bytes(raw)).decode("ascii"))
            return text

        ends.router.rewrite = tamper
        pending.callback(True)
        ends.router.flush()
        failure = self.failureResultOf(d, EndToEndRequired)
        self.assertIn("closed", failure.value.reason)
        self.assertEqual((ends.confirmerTLS.tunnels, ends.aliceTLS.tunnels), ([], []))
        [(event, _, reason)] = [e for e in recorder.events if e[0] == "closed"]
        self.assertIsInstance(reason, error.StanzaError)
        assert isinstance(reason, error.StanzaError)
        self.assertEqual(reason.condition, "not-acceptable")
        errors = [t for t in ends.router.seen if "not-acceptable" in t and f"to='{ALICE.full()}'" in t.replace('"', "'")]
        self.assertEqual(len(errors), 1)


class ResponderTests(SynchronousTestCase):
    """
    L{ConfirmationResponder} with XTLS.
    """

    def test_plaintextRefusedWhenXTLSRequired(self) -> None:
        """
        With C{requireXTLS}, a plaintext question is answered
        C{policy-violation} without asking the policy: the asker cannot
        confirm in the clear (401, nothing consumed).
        """
        ends = Ends()
        failure = self.failureResultOf(ends.confirm(endToEnd=False))
        self.assertEqual(failure.type.__name__, "CouldNotAsk")
        self.assertIn("policy-violation", failure.value.reason)
        self.assertEqual(ends.asked, [])
        [reply] = [t for t in ends.router.seen if "policy-violation" in t]
        self.assertIn(ConfirmationResponder.XTLS_ONLY, reply)

    def test_plaintextAnsweredWithoutRequirement(self) -> None:
        """
        Without C{requireXTLS}, a plaintext question is answered in the
        clear, as before, and the policy sees it was not tunnelled.
        """
        ends = Ends(requireXTLS=False)
        self.assertEqual(self.successResultOf(ends.confirm(endToEnd=False)).outcome, Outcome.ALLOW)
        [incoming] = ends.asked
        self.assertFalse(incoming.tunnelled)


_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


class IndependentUserTests(SynchronousTestCase):
    """
    The user's end is the independent peer of L{tests.test_xtls_e2e}: TLS
    from the standard library's C{ssl} (L{StdlibPeer}, a TLS server whose
    certificate names the user's XmppAddr and which verifies the
    confirmer's), the question read with C{xml.etree}, the answer written
    by hand through its TLS.
    """

    def setUp(self) -> None:
        self.events: list[LogEvent] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        self.ends = Ends(aliceClient=False)
        directory = self.mktemp()
        os.makedirs(directory)
        self.user = StdlibPeer(
            self.ends.router, self.ends.authority, ALICE.full(), server=True, directory=directory
        )

    def ask(self) -> tuple[Deferred[Answer], Element]:
        """
        Ask the user end to end: the tunnel opens, and the user's TLS
        decrypts the question, an IQ get with the C{<confirm/>}.
        """
        d = self.ends.confirm()
        self.assertNoResult(d)
        self.assertTrue(self.user.handshakeDone)
        certificate = self.user.tls.getpeercert()
        assert certificate is not None
        self.assertIn(("DNS", CONFIRMER.host), certificate["subjectAltName"])
        [question] = self.user.stanzas
        self.assertEqual(question.tag, f"{{{NS_CLIENT}}}iq")
        self.assertEqual(
            (question.get("type"), question.get("to"), question.get("from")),
            ("get", ALICE.full(), CONFIRMER.full()),
        )
        [confirm] = question.findall(f"{{{NS_HTTP_AUTH}}}confirm")
        self.assertEqual(
            (confirm.get("id"), confirm.get("method"), confirm.get("url")),
            ("tx-1", "GET", "https://site.example/"),
        )
        self.assertEqual(self.ends.plaintext(), [])
        return d, question

    def test_yes(self) -> None:
        """
        The user's result through its TLS allows, by the full JID asked.
        """
        d, question = self.ask()
        self.user.write(f"<iq type='result' id='{question.get('id')}'/>".encode())
        self.ends.router.flush()
        self.assertEqual(self.successResultOf(d), Answer(Outcome.ALLOW, ALICE))
        self.assertEqual(self.ends.plaintext(), [])

    def test_no(self) -> None:
        """
        A C{not-authorized} error through its TLS denies.
        """
        d, question = self.ask()
        self.user.write(
            f"<iq type='error' id='{question.get('id')}'><error type='auth'>"
            f"<not-authorized xmlns='{_STANZAS}'/></error></iq>".encode()
        )
        self.ends.router.flush()
        self.assertEqual(self.successResultOf(d), Answer(Outcome.DENY, ALICE))

    def test_plaintextAnswerRefused(self) -> None:
        """
        The user's end answering in plaintext, outside the tunnel, with
        the question's id: refused and logged, never allowed; the
        confirmation times out.
        """
        d, question = self.ask()
        self.user.end.send(
            f"<iq type='result' id='{question.get('id')}' from='{ALICE.full()}' "
            f"to='{CONFIRMER.full()}'/>"
        )
        self.ends.router.flush()
        self.assertNoResult(d)
        refusals = [formatEvent(e) for e in self.events if "Refused a plaintext answer" in formatEvent(e)]
        self.assertEqual(len(refusals), 1)
        self.ends.clock.advance(61)
        self.failureResultOf(d, ConfirmationTimeout)


class IdleTunnelTests(SynchronousTestCase):
    """
    Tunnels the requester opened are closed after C{tunnelIdleTimeout}
    seconds without a confirmation in them, so that they do not pile up
    against the XTLS endpoint's limits.
    """

    def test_closedWhenIdle(self) -> None:
        """
        After the answer, the tunnel stays open for the idle timeout (a
        confirmation meanwhile reuses it and restarts the count), then is
        closed at both ends.
        """
        ends = Ends()
        ends.requester.tunnelIdleTimeout = 30
        keys = iter(["a" * 40, "b" * 40])
        ends.requester._makeKey = lambda: next(keys)
        self.successResultOf(ends.confirm())
        [tunnel] = ends.confirmerTLS.tunnels
        ends.clock.advance(29)
        self.assertTrue(tunnel.isOpen)
        self.successResultOf(ends.confirm())
        self.assertEqual(ends.confirmerTLS.tunnels, [tunnel])
        ends.clock.advance(29)
        self.assertTrue(tunnel.isOpen)
        ends.clock.advance(1)
        ends.router.flush()
        self.assertFalse(tunnel.isOpen)
        self.assertEqual((ends.confirmerTLS.tunnels, ends.aliceTLS.tunnels), ([], []))

    def test_notWhileWaiting(self) -> None:
        """
        A tunnel with a confirmation waiting in it is not idle, however
        long the user takes.
        """
        ends = Ends()
        ends.requester.tunnelIdleTimeout = 5
        pending: Deferred[bool] = Deferred()
        ends.answers.append(pending)
        d = ends.confirm()
        [tunnel] = ends.confirmerTLS.tunnels
        ends.clock.advance(50)
        self.assertTrue(tunnel.isOpen)
        pending.callback(True)
        ends.router.flush()
        self.assertEqual(self.successResultOf(d).outcome, Outcome.ALLOW)
        ends.clock.advance(5)
        ends.router.flush()
        self.assertFalse(tunnel.isOpen)

    def test_peersTunnelsLeftAlone(self) -> None:
        """
        A tunnel the user opened, which the requester reused, is the
        user's to close.
        """
        ends = Ends()
        ends.requester.tunnelIdleTimeout = 5
        opened = ends.aliceTLS.open(ALICE, CONFIRMER)
        ends.router.flush()
        self.successResultOf(opened)
        self.successResultOf(ends.confirm())
        [tunnel] = ends.confirmerTLS.tunnels
        ends.clock.advance(60)
        ends.router.flush()
        self.assertTrue(tunnel.isOpen)

    def test_cancelledWhileOpening(self) -> None:
        """
        A confirmation cancelled (its HTTP client went away) while its
        tunnel opens is never asked; the tunnel, opened for nothing, closes
        after the idle timeout.
        """
        ends = Ends()
        ends.requester.tunnelIdleTimeout = 5
        d = ends.requester.confirm(ALICE, REQUEST, endToEnd=True)
        d.addErrback(lambda f: None)
        d.cancel()
        ends.router.flush()
        self.assertEqual(ends.asked, [])
        self.assertEqual(ends.requester.pendingCount, 0)
        [tunnel] = ends.confirmerTLS.tunnels
        ends.clock.advance(5)
        ends.router.flush()
        self.assertFalse(tunnel.isOpen)
