# -*- test-case-name: tests.test_router_metrics -*-
"""
The router updates its L{Metrics} (sessions, bound names, stanzas routed
and bounced, refused negotiations) and serves them at C{/metrics} when
C{metrics_listen} is configured.
"""

from __future__ import annotations

import re

import treq
from twisted.internet import defer, reactor
from twisted.web.client import HTTPConnectionPool
from twisted.trial.unittest import SynchronousTestCase, TestCase

from xmppcomp.config import RouterConfig
from xmppcomp.metrics import Metrics
from xmppcomp.router.service import RouterService
from xmppcomp.stream.acceptreceiving import AcceptFactory, AcceptPolicy

from .test_router_fastpath import SECRET, AcceptSession
from .test_router_service import RouterHarness

A = "a.accept.example.net"
B = "b.accept.example.net"




def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.value(name, labels)


class RouterMetricsTests(SynchronousTestCase):
    """
    The router's metrics move with what it does.
    """

    def setUp(self) -> None:
        self.harness = RouterHarness(self)
        secrets = {A: SECRET, B: SECRET}
        self.accept = AcceptFactory(AcceptPolicy(secrets=secrets.get), reactor=self.harness.clock)
        self.harness.router.addBootstraps(self.accept, "xep0114")
        self.metrics = self.harness.router.metrics

    def test_sessionsAndNames(self) -> None:
        """
        Attached sessions are counted by kind; bound names follow the table.
        """
        before = value(self.metrics, "xmppcomp_router_sessions", kind="xep0114")
        a = AcceptSession(self.harness, self.accept, A)
        b = AcceptSession(self.harness, self.accept, B)
        self.assertEqual(value(self.metrics, "xmppcomp_router_sessions", kind="xep0114"), before + 2)
        self.assertEqual(value(self.metrics, "xmppcomp_router_bound_names"), 2)
        a.xs.connectionLost(None)
        self.assertEqual(value(self.metrics, "xmppcomp_router_sessions", kind="xep0114"), before + 1)
        self.assertEqual(value(self.metrics, "xmppcomp_router_bound_names"), 1)
        b.xs.connectionLost(None)
        self.assertEqual(value(self.metrics, "xmppcomp_router_sessions", kind="xep0114"), before)

    def test_routedAndBounced(self) -> None:
        """
        Each delivered stanza counts by kind; each bounce by condition.
        """
        a = AcceptSession(self.harness, self.accept, A)
        AcceptSession(self.harness, self.accept, B)
        routed = value(self.metrics, "xmppcomp_router_stanzas_routed_total", kind="message")
        iqs = value(self.metrics, "xmppcomp_router_stanzas_routed_total", kind="iq")
        bounced = value(self.metrics, "xmppcomp_router_stanzas_bounced_total", condition="service-unavailable")
        for _ in range(3):
            a.xs.dataReceived(b"<message from='%s' to='%s'><body>hi</body></message>" % (A.encode(), B.encode()))
        a.xs.dataReceived(b"<iq type='get' id='1' from='%s' to='%s'><q xmlns='urn:x'/></iq>" % (A.encode(), B.encode()))
        a.xs.dataReceived(b"<message from='%s' to='nobody.example.net'><body>hi</body></message>" % (A.encode(),))
        self.assertEqual(value(self.metrics, "xmppcomp_router_stanzas_routed_total", kind="message"), routed + 3)
        self.assertEqual(value(self.metrics, "xmppcomp_router_stanzas_routed_total", kind="iq"), iqs + 1)
        self.assertEqual(
            value(self.metrics, "xmppcomp_router_stanzas_bounced_total", condition="service-unavailable"), bounced + 1
        )

    def test_refusals(self) -> None:
        """
        Streams the receiving side refuses count by condition: a wrong
        handshake, an unknown host.
        """
        self.accept = AcceptFactory(
            AcceptPolicy(secrets={A: SECRET}.get, metrics=self.metrics),  # type: ignore[call-arg]
            reactor=self.harness.clock,
        )
        name = "xmppcomp_negotiation_failures_total"
        notAuthorized = value(self.metrics, name, side="receiving", condition="not-authorized")
        hostUnknown = value(self.metrics, name, side="receiving", condition="host-unknown")
        from twisted.internet.testing import StringTransport

        for to, data in [(A, b"<handshake>wrong</handshake>"), ("unknown.example.net", b"")]:
            xs = self.accept.buildProtocol(None)
            xs.makeConnection(StringTransport())
            xs.dataReceived(
                b"<stream:stream xmlns='jabber:component:accept'"
                b" xmlns:stream='http://etherx.jabber.org/streams' to='%s'>" % (to.encode(),) + data
            )
        self.assertEqual(value(self.metrics, name, side="receiving", condition="not-authorized"), notAuthorized + 1)
        self.assertEqual(value(self.metrics, name, side="receiving", condition="host-unknown"), hostUnknown + 1)


    def test_saslFailureCounted(self) -> None:
        """
        A SASL failure on the XEP-0225 side counts by its condition.
        """
        from .test_router_service import SECRETS

        name = "xmppcomp_negotiation_failures_total"
        before = value(self.metrics, name, side="receiving", condition="not-authorized")
        SECRETS["alpha.example.net"], saved = "a wrong secret, long enough", SECRETS["alpha.example.net"]
        self.addCleanup(SECRETS.__setitem__, "alpha.example.net", saved)
        _, negotiated = self.harness.connect("alpha.example.net")
        self.harness.flush()
        self.failureResultOf(negotiated)
        self.assertGreaterEqual(value(self.metrics, name, side="receiving", condition="not-authorized"), before + 1)



class MetricsListenerTests(TestCase):
    """
    C{metrics_listen} serves the metrics over HTTP.
    """

    @defer.inlineCallbacks
    def test_fetchOverLoopback(self) -> None:
        """
        After routing stanzas, C{GET /metrics} on the configured loopback
        listener shows the counts; other paths are 404.
        """
        harness = RouterHarness(self)  # type: ignore[arg-type]
        # The service serves the metrics of the router that routed.
        metrics = harness.router.metrics
        accept = AcceptFactory(AcceptPolicy(secrets={A: SECRET, B: SECRET}.get), reactor=harness.clock)
        harness.router.addBootstraps(accept, "xep0114")
        a = AcceptSession(harness, accept, A)
        AcceptSession(harness, accept, B)
        before = value(metrics, "xmppcomp_router_stanzas_routed_total", kind="presence")
        for _ in range(4):
            a.xs.dataReceived(b"<presence from='%s' to='%s'><show>away</show></presence>" % (A.encode(), B.encode()))

        config = RouterConfig(
            domain="example.net",
            listen=(),
            acceptListen=(),
            metricsListen="tcp:0:interface=127.0.0.1",
            allowPlaintext=True,
        )
        service = RouterService(config, reactor, metrics=metrics)
        service.startService()
        port = service.ports[-1].getHost().port
        pool = HTTPConnectionPool(reactor, persistent=False)
        response = yield treq.get("http://127.0.0.1:%d/metrics" % (port,), pool=pool)
        self.assertEqual(response.code, 200)
        body = (yield response.text()).splitlines()
        [line] = [l for l in body if l.startswith('xmppcomp_router_stanzas_routed_total{kind="presence"}')]
        self.assertEqual(float(line.split()[-1]), before + 4)
        self.assertNotIn("_created", "\n".join(body))
        self.assertTrue(any(re.match(r"xmppcomp_router_bound_names \d", l) for l in body))
        missing = yield treq.get("http://127.0.0.1:%d/other" % (port,), pool=pool)
        self.assertEqual(missing.code, 404)
        yield missing.content()
        yield pool.closeCachedConnections()
        yield service.stopService()
