# -*- test-case-name: tests.test_metrics -*-
"""
Tests for the component side's metrics (L{xmppcomp.metrics}): each
instrumentation point (failed component connections, XEP-0070
confirmations, XTLS tunnels and bytes) driven in memory with a L{Clock},
counting in a L{Metrics} of the test's own; C{/metrics} on the HTTP-auth
listener of C{twistd xmppcomp} (the resource, the option, the warning for
a public listener); and the main job with C{--metrics}, scraped over real
loopback TCP after one confirmation.
"""

from __future__ import annotations

from typing import Any

from treq.testing import StubTreq
from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.static import Data
from twisted.words.protocols.jabber.error import StreamError
from wokkel.generic import XmlPipe

from xmppcomp import tap
from xmppcomp._process import ConfigExit
from xmppcomp.component import failureCondition
from xmppcomp.errors import SASLFailure, TLSRequiredError
from xmppcomp.httpauth import (
    ConfirmationRequester,
    ConfirmationTimeout,
    ConfirmerUnavailable,
    Outcome,
)
from xmppcomp.metrics import Metrics
from xmppcomp.stream.bind import BindError
from xmppcomp.xtls._inner import serializeStanza

from tests.test_component import TestCase as ComponentTestCase
from tests.test_httpauth_xmpp import COMPONENT, JULIET, REQUEST, attach, iqError, reply
from tests.test_mainjob import DEMO, _MainJobMixin
from tests.test_xtls_e2e import message
from tests.xtlshelpers import Pair


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    """
    The current value of a sample of C{metrics} (0 when it does not exist
    yet).
    """
    return metrics.value(name, labels)


class Delta:
    """
    The change of some samples of a L{Metrics} since it was made.
    """

    def __init__(self, metrics: Metrics, *samples: tuple[str, dict[str, str]]) -> None:
        self._metrics = metrics
        self._samples = samples
        self._before = [sample(metrics, name, **labels) for name, labels in samples]

    def __call__(self) -> list[float]:
        return [
            sample(self._metrics, name, **labels) - before
            for (name, labels), before in zip(self._samples, self._before)
        ]


def failures(condition: str) -> tuple[str, dict[str, str]]:
    return (
        "xmppcomp_negotiation_failures_total",
        {"side": "initiating", "condition": condition},
    )


def confirmations(outcome: str) -> tuple[str, dict[str, str]]:
    return ("xmppcomp_httpauth_confirmations_total", {"outcome": outcome})


SECONDS_COUNT = ("xmppcomp_httpauth_confirmation_seconds_count", {})
SECONDS_SUM = ("xmppcomp_httpauth_confirmation_seconds_sum", {})
TUNNELS = ("xmppcomp_xtls_tunnels", {})
BYTES_IN = ("xmppcomp_xtls_bytes_total", {"direction": "in"})
BYTES_OUT = ("xmppcomp_xtls_bytes_total", {"direction": "out"})


class FailureConditionTests(SynchronousTestCase):
    """
    Tests for L{failureCondition}, the C{condition} label.
    """

    def test_conditions(self) -> None:
        """
        SASL failures, stream errors and bind errors give their condition;
        anything else its class name.
        """
        self.assertEqual(failureCondition(Failure(SASLFailure("not-authorized"))), "not-authorized")
        self.assertEqual(failureCondition(Failure(StreamError("host-unknown"))), "host-unknown")
        self.assertEqual(
            failureCondition(Failure(BindError("x.example.net", "conflict"))), "conflict"
        )
        self.assertEqual(
            failureCondition(Failure(TLSRequiredError("no STARTTLS"))), "TLSRequiredError"
        )
        self.assertEqual(failureCondition(Failure(ValueError())), "ValueError")


class ComponentMetricsTests(ComponentTestCase):
    """
    A component whose connection fails counts it in
    C{xmppcomp_negotiation_failures_total{side="initiating"}}.
    """

    def setUp(self) -> None:
        super().setUp()
        #: Where the components made by the tests count.
        self.metrics = Metrics()

    def component(self, identity: str, *hostnames: str, **kwargs: Any) -> Any:
        """
        A component counting in L{metrics}.
        """
        kwargs.setdefault("metrics", self.metrics)
        return super().component(identity, *hostnames, **kwargs)

    def test_wrongSecret(self) -> None:
        """
        A wrong secret counts one C{not-authorized} per attempt.
        """
        delta = Delta(self.metrics, failures("not-authorized"))
        beta = self.component(
            "beta.example.net", secret="wrong", retryPolicy=lambda n: 1.0, fatalRetryDelay=10
        )
        self.assertFalse(beta.isConnected())
        self.assertEqual(delta(), [1.0])
        self.clock.advance(10)
        self.network.flush()
        self.assertEqual(delta(), [2.0])

    def test_bindRefused(self) -> None:
        """
        A hostname the server refuses counts in
        C{xmppcomp_bind_refusals_total} by hostname and condition; the
        component stays connected with its other name, so no negotiation
        failed. When every name is refused, the negotiation failure counts
        the first refusal's condition.
        """
        delta = Delta(
            self.metrics,
            failures("not-allowed"),
            ("xmppcomp_bind_refusals_total", {"hostname": "beta.example.net", "condition": "not-allowed"}),
        )
        alpha = self.component("alpha.example.net", "alpha.example.net", "beta.example.net")
        self.assertTrue(alpha.isConnected("alpha.example.net"))
        self.assertEqual(delta(), [0.0, 1.0])
        lone = self.component("alpha.example.net", "beta.example.net")
        self.assertFalse(lone.isConnected())
        self.assertEqual(delta(), [1.0, 2.0])

    def test_successNotCounted(self) -> None:
        """
        A connection that negotiates counts nothing.
        """
        delta = Delta(self.metrics, failures("not-authorized"), failures("not-allowed"))
        alpha = self.component("alpha.example.net")
        self.assertTrue(alpha.isConnected())
        self.assertEqual(delta(), [0.0, 0.0])


class ConfirmationMetricsTests(SynchronousTestCase):
    """
    L{ConfirmationRequester} counts each confirmation by outcome and
    observes the seconds to an answer on its clock.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.pipe = XmlPipe()
        self.metrics = Metrics()
        self.requester = ConfirmationRequester(COMPONENT, self.clock, timeout=60, metrics=self.metrics)
        attach(self.requester, self.pipe.source)
        self.received: list[Any] = []
        self.pipe.sink.addObserver("/*", self.received.append)
        self.delta = Delta(
            self.metrics,
            confirmations("allow"),
            confirmations("deny"),
            confirmations("timeout"),
            confirmations("unavailable"),
            SECONDS_COUNT,
            SECONDS_SUM,
        )

    def test_allow(self) -> None:
        """
        A confirmation allowed after 2.5 seconds: C{allow} + 1, one
        observation of 2.5 seconds.
        """
        buckets = Delta(
            self.metrics,
            ("xmppcomp_httpauth_confirmation_seconds_bucket", {"le": "1.0"}),
            ("xmppcomp_httpauth_confirmation_seconds_bucket", {"le": "2.5"}),
        )
        d = self.requester.confirm(JULIET, REQUEST)
        self.clock.advance(2.5)
        self.pipe.sink.send(reply(self.received[0], JULIET.full()))
        self.assertIs(self.successResultOf(d).outcome, Outcome.ALLOW)
        self.assertEqual(self.delta(), [1.0, 0.0, 0.0, 0.0, 1.0, 2.5])
        self.assertEqual(buckets(), [0.0, 1.0])

    def test_deny(self) -> None:
        """
        A denial after 4 seconds: C{deny} + 1, one observation of 4
        seconds.
        """
        d = self.requester.confirm(JULIET, REQUEST)
        self.clock.advance(4)
        self.pipe.sink.send(iqError(self.received[0], JULIET.full(), "not-authorized"))
        self.assertIs(self.successResultOf(d).outcome, Outcome.DENY)
        self.assertEqual(self.delta(), [0.0, 1.0, 0.0, 0.0, 1.0, 4.0])

    def test_fallbackCountsOnce(self) -> None:
        """
        A full JID that falls back to the message form counts once, with
        the time from the first question.
        """
        d = self.requester.confirm(JULIET, REQUEST)
        self.clock.advance(1)
        self.pipe.sink.send(iqError(self.received[0], JULIET.full(), "service-unavailable"))
        message = self.received[1]
        self.assertEqual(message.name, "message")
        self.clock.advance(2)
        answer = message.__class__((None, "message"))
        answer["from"] = JULIET.full()
        answer["to"] = message["from"]
        answer["type"] = "normal"
        answer.addElement("thread", content=str(message.thread))
        answer.addChild(message.confirm)
        self.pipe.sink.send(answer)
        self.assertIs(self.successResultOf(d).outcome, Outcome.ALLOW)
        self.assertEqual(self.delta(), [1.0, 0.0, 0.0, 0.0, 1.0, 3.0])

    def test_timeout(self) -> None:
        """
        No answer in time: C{timeout} + 1, no observation (there was no
        answer).
        """
        d = self.requester.confirm(JULIET, REQUEST)
        self.clock.advance(60)
        self.failureResultOf(d, ConfirmationTimeout)
        self.assertEqual(self.delta(), [0.0, 0.0, 1.0, 0.0, 0.0, 0.0])

    def test_unavailable(self) -> None:
        """
        Asking while not connected, and losing the stream with a
        confirmation pending, each count C{unavailable}.
        """
        requester = ConfirmationRequester(COMPONENT, self.clock, metrics=self.metrics)
        self.failureResultOf(requester.confirm(JULIET, REQUEST), ConfirmerUnavailable)
        d = self.requester.confirm(JULIET, REQUEST)
        self.requester.connectionLost(Failure(Exception("gone")))
        self.failureResultOf(d, ConfirmerUnavailable)
        self.assertEqual(self.delta(), [0.0, 0.0, 0.0, 2.0, 0.0, 0.0])

    def test_pendingGauge(self) -> None:
        """
        C{xmppcomp_httpauth_pending_confirmations} counts confirmations
        asked and not finished, whatever ends them: an answer (after a
        fallback to the message form too), a timeout, a cancel, the stream
        lost; never below what it was.
        """
        pending = Delta(self.metrics, ("xmppcomp_httpauth_pending_confirmations", {}))
        answered = self.requester.confirm(JULIET, REQUEST)
        stillPending = self.requester.confirm(JULIET, REQUEST)
        cancelled = self.requester.confirm(JULIET, REQUEST)
        lost = self.requester.confirm(JULIET, REQUEST)
        self.assertEqual(pending(), [4.0])
        self.pipe.sink.send(iqError(self.received[0], JULIET.full(), "service-unavailable"))
        self.assertEqual(pending(), [4.0])
        message = self.received[-1]
        self.assertEqual(message.name, "message")
        answer = message.__class__((None, "message"))
        answer["from"] = JULIET.full()
        answer["to"] = message["from"]
        answer["type"] = "normal"
        answer.addElement("thread", content=str(message.thread))
        answer.addChild(message.confirm)
        self.pipe.sink.send(answer)
        self.assertIs(self.successResultOf(answered).outcome, Outcome.ALLOW)
        self.assertEqual(pending(), [3.0])
        cancelled.cancel()
        self.failureResultOf(cancelled)
        self.assertEqual(pending(), [2.0])
        self.requester.connectionLost(Failure(Exception("gone")))
        self.failureResultOf(lost, ConfirmerUnavailable)
        self.failureResultOf(stillPending, ConfirmerUnavailable)
        self.assertEqual(pending(), [0.0])
        self.clock.advance(60)
        self.assertEqual(pending(), [0.0])
        later = self.requester.confirm(JULIET, REQUEST)
        self.assertEqual(pending(), [0.0])
        self.failureResultOf(later, ConfirmerUnavailable)

    def test_pendingGaugeTimeout(self) -> None:
        """
        A confirmation that times out leaves the gauge.
        """
        pending = Delta(self.metrics, ("xmppcomp_httpauth_pending_confirmations", {}))
        d = self.requester.confirm(JULIET, REQUEST)
        self.assertEqual(pending(), [1.0])
        self.clock.advance(60)
        self.failureResultOf(d, ConfirmationTimeout)
        self.assertEqual(pending(), [0.0])

    def test_cancelledNotCounted(self) -> None:
        """
        A confirmation cancelled (the HTTP client went away) is not
        counted, and its late answer neither.
        """
        d = self.requester.confirm(JULIET, REQUEST)
        d.cancel()
        self.failureResultOf(d)
        self.pipe.sink.send(reply(self.received[0], JULIET.full()))
        self.assertEqual(self.delta(), [0.0] * 6)


class XTLSMetricsTests(SynchronousTestCase):
    """
    L{xmppcomp.xtls.XTLSHandler} keeps C{xmppcomp_xtls_tunnels} and
    C{xmppcomp_xtls_bytes_total}.
    """

    def test_tunnelAndBytes(self) -> None:
        """
        Opening a tunnel counts it at both ends (both are in this process);
        a stanza sent counts its serialised size out at the sender and in
        at the receiver (the handshake is not counted); closing takes the
        tunnels away again.
        """
        metrics = Metrics()
        pair = Pair(metrics=metrics)
        delta = Delta(metrics, TUNNELS, BYTES_IN, BYTES_OUT)
        d = pair.alice.open(pair.aliceJID, pair.bobJID)
        pair.router.flush()
        tunnel = self.successResultOf(d)
        self.assertEqual(delta(), [2.0, 0.0, 0.0])
        stanza = message(1000)
        size = len(serializeStanza(stanza))
        tunnel.send(stanza)
        pair.router.flush()
        self.assertEqual(delta(), [2.0, size, size])
        closed = tunnel.close()
        pair.router.flush()
        self.successResultOf(closed)
        self.assertEqual(delta(), [0.0, size, size])

    def test_failedHandshakeNotCounted(self) -> None:
        """
        A tunnel whose handshake fails (the peer's authority is not
        trusted) never counts as open.
        """
        metrics = Metrics()
        pair = Pair(bobConfig={"trust": [Pair().authority.certificate]}, metrics=metrics)
        delta = Delta(metrics, TUNNELS)
        d = pair.alice.open(pair.aliceJID, pair.bobJID)
        pair.router.flush()
        self.failureResultOf(d)
        self.assertEqual(delta(), [0.0])

    def test_lostStreamReleases(self) -> None:
        """
        Tunnels released because the stream was lost leave the gauge.
        """
        metrics = Metrics()
        pair = Pair(metrics=metrics)
        delta = Delta(metrics, TUNNELS)
        d = pair.alice.open(pair.aliceJID, pair.bobJID)
        pair.router.flush()
        self.successResultOf(d)
        pair.alice.connectionLost(Failure(Exception("gone")))
        pair.bob.connectionLost(Failure(Exception("gone")))
        self.assertEqual(delta(), [0.0])


class _Site(Resource):
    """
    A site with a page at C{/} and C{/a/b}, recording the paths it saw.
    """

    def __init__(self) -> None:
        super().__init__()
        self.putChild(b"", Data(b"root", "text/plain"))
        a = Resource()
        a.putChild(b"b", Data(b"a/b", "text/plain"))
        self.putChild(b"a", a)
        self.putChild(b"metricsx", Data(b"not metrics", "text/plain"))


class MetricsResourceTests(SynchronousTestCase):
    """
    L{tap.withMetrics}: C{/metrics} next to the confirmer's resource.
    """

    def setUp(self) -> None:
        self.metrics = Metrics()
        self.treq = StubTreq(tap.withMetrics(_Site(), self.metrics))

    def get(self, url: str) -> tuple[int, bytes, Any]:
        response = self.successResultOf(self.treq.get(url))
        body = self.successResultOf(response.content())
        return response.code, body, response.headers

    def test_metrics(self) -> None:
        """
        C{/metrics} is the Prometheus text format of every xmppcomp
        metric.
        """
        code, body, headers = self.get("http://127.0.0.1/metrics")
        self.assertEqual(code, 200)
        self.assertTrue(
            headers.getRawHeaders(b"content-type")[0].startswith(b"text/plain;")
        )
        for name in (
            b"xmppcomp_negotiation_failures_total",
            b"xmppcomp_httpauth_confirmations_total",
            b"xmppcomp_httpauth_confirmation_seconds",
            b"xmppcomp_xtls_tunnels",
            b"xmppcomp_xtls_bytes_total",
            b"xmppcomp_xtls_tunnels_opened_total",
            b"xmppcomp_xtls_tunnels_refused_total",
        ):
            self.assertIn(b"# TYPE " + name, body)
        self.assertNotIn(b"_created", body)

    def test_otherPathsUnchanged(self) -> None:
        """
        Every other path reaches the site as without metrics.
        """
        self.assertEqual(self.get("http://127.0.0.1/")[:2], (200, b"root"))
        self.assertEqual(self.get("http://127.0.0.1/a/b")[:2], (200, b"a/b"))
        self.assertEqual(self.get("http://127.0.0.1/metricsx")[:2], (200, b"not metrics"))
        self.assertEqual(self.get("http://127.0.0.1/nothing")[0], 404)
        self.assertEqual(self.get("http://127.0.0.1/metrics/more")[0], 404)


class _Port:
    def __init__(self, address: Any) -> None:
        self.address = address

    def getHost(self) -> Any:
        return self.address


class ListenerTests(SynchronousTestCase):
    """
    The option, the key, and what the listener says about C{/metrics}.
    """

    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def warnings(self) -> list[str]:
        return [
            event["log_format"]
            for event in self.events
            if event.get("log_level") is not None
            and event["log_level"].name == "warn"
            and "/metrics" in event.get("log_format", "")
        ]

    def test_option(self) -> None:
        """
        C{--metrics} turns metrics on; they are off by default.
        """
        options = tap.Options()
        options.parseOptions([])
        self.assertFalse(options.componentConfig.httpauth.metrics)
        options = tap.Options()
        options.parseOptions(["--metrics"])
        self.assertTrue(options.componentConfig.httpauth.metrics)

    def test_key(self) -> None:
        """
        C{[httpauth] metrics = true} turns metrics on.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("[httpauth]\nmetrics = true\n")
        options = tap.Options()
        options.parseOptions(["--config", path])
        self.assertTrue(options.componentConfig.httpauth.metrics)

    def test_withoutListener(self) -> None:
        """
        Metrics without the HTTP-auth listener are refused: the process
        ends with the message alone.
        """
        options = tap.Options()
        error = self.assertRaises(
            ConfigExit, options.parseOptions, ["--metrics", "--no-httpauth"]
        )
        self.assertEqual(
            error.code,
            "twistd xmppcomp: --metrics: /metrics is served on the HTTP-auth listener, "
            "which is off ([httpauth] enabled = false or --no-httpauth); turn "
            "it on, or leave out [httpauth] metrics = true and --metrics",
        )

    def listening(self, address: Any, metrics: bool = True) -> None:
        listener = tap.HTTPAuthListener(
            None, Resource(), "tcp:8080", "a site", metrics=metrics
        )
        listener._listening(_Port(address))

    def test_publicWarns(self) -> None:
        """
        Listening on any non-loopback address with metrics logs a warning
        that they are public there.
        """
        self.listening(IPv4Address("TCP", "0.0.0.0", 8080))
        self.listening(IPv4Address("TCP", "192.0.2.1", 8080))
        self.listening(IPv6Address("TCP", "::", 8080))
        warnings = self.warnings()
        self.assertEqual(len(warnings), 3)
        self.assertIn("public", warnings[0])

    def test_loopbackQuiet(self) -> None:
        """
        On loopback (IPv4, IPv6, IPv4-mapped) or a UNIX socket, or without
        metrics, no warning.
        """
        self.listening(IPv4Address("TCP", "127.0.0.1", 8080))
        self.listening(IPv6Address("TCP", "::1", 8080))
        self.listening(IPv6Address("TCP", "::ffff:127.0.0.1", 8080))
        self.listening(UNIXAddress(b"/tmp/web.sock"))
        self.listening(IPv4Address("TCP", "0.0.0.0", 8080), metrics=False)
        self.assertEqual(self.warnings(), [])

    def test_isPublic(self) -> None:
        """
        L{tap.isPublic} is true for addresses other machines may reach.
        """
        self.assertTrue(tap.isPublic(IPv4Address("TCP", "10.0.0.1", 1)))
        self.assertTrue(tap.isPublic(IPv6Address("TCP", "fe80::1%eth0", 1)))
        self.assertFalse(tap.isPublic(IPv4Address("TCP", "127.0.0.2", 1)))
        self.assertFalse(tap.isPublic(UNIXAddress(None)))


class MainJobMetricsTests(_MainJobMixin, TestCase):
    """
    C{twistd xmppcomp --metrics} with the real reactor.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_scrape(self) -> Any:
        """
        After one confirmation by the demo agent, C{GET /metrics} on the
        HTTP-auth listener shows it: C{allow} one more, the histogram's
        count one more; the hints show how to fetch it, and the listener
        says where it serves it.
        """
        top, url = yield self.start("--metrics")
        # The tree's own metrics: what this tree counted, nothing else.
        allow = sample(top.metrics, "xmppcomp_httpauth_confirmations_total", outcome="allow")
        count = sample(top.metrics, "xmppcomp_httpauth_confirmation_seconds_count")
        response, body = yield self.fetch(url, (DEMO, "tx-1"))
        self.assertEqual(response.code, 200, body)
        response, body = yield self.fetch(url + "metrics")
        self.assertEqual(response.code, 200, body)
        text = body.decode("utf-8")
        self.assertIn(
            'xmppcomp_httpauth_confirmations_total{outcome="allow"} %r\n' % (allow + 1,),
            text,
        )
        self.assertIn(
            "xmppcomp_httpauth_confirmation_seconds_count %r\n" % (count + 1,), text
        )
        response, body = yield self.fetch(url)
        self.assertEqual(response.code, 401, body)
        yield top.stopService()
        log = self.logText()
        self.assertIn(f"curl {url}metrics\n", log)
        self.assertIn("Prometheus metrics at /metrics on tcp:0:interface=127.0.0.1", log)
        self.assertNotIn("the metrics are public", log)

    @defer.inlineCallbacks
    def test_offByDefault(self) -> Any:
        """
        Without C{--metrics}, C{/metrics} is an ordinary protected path:
        401.
        """
        top, url = yield self.start()
        response, body = yield self.fetch(url + "metrics")
        self.assertEqual(response.code, 401, body)
        self.assertNotIn(b"xmppcomp_", body)
        yield top.stopService()

