# -*- test-case-name: tests.test_mainjob -*-
"""
The main job, C{twistd -n xmppcomp}, end to end with the real reactor: the
service tree of (almost) no options (C{--http-listen
tcp:0:interface=127.0.0.1}, so that no fixed port can clash) runs an
embedded router, the component with its XEP-0070 confirmer and XTLS
endpoint, and the demo agent (L{xmppcomp.demo}); a real HTTP client (treq
over an L{Agent} and loopback TCP) sees 401, then 200 confirmed by the
demo agent over XMPP (IQ and message forms), 403 for a C{deny-...}
transaction id, 401 with the challenge for replays; a second component
opens an XTLS tunnel to the main component through the embedded router;
everything stops cleanly.
The other modes (a directory, a proxy, forward-auth) run the same way.
"""

from __future__ import annotations

import base64
import os
import re
from typing import Any

from treq.client import HTTPClient
from twisted.internet import defer, reactor
from twisted.internet.endpoints import serverFromString
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data
from twisted.words.protocols.jabber.jid import JID
from twisted.words.protocols.jabber.xmlstream import IQ
from twisted.words.xish import domish

from xmppcomp import services, tap
from xmppcomp.component import Component
from xmppcomp.demo import DEMO_SERVICE, DEMO_XTLS_JID, DemoHints
from xmppcomp.ns import NS_DISCO_INFO, NS_XTLS
from xmppcomp.xtls import XTLSConfiguration, XTLSHandler

#: The JID the demo agent answers for.
DEMO = "demo@agent.localhost/web"

#: Bounded waits (seconds) for what takes milliseconds here.
WAIT = 20.0


def basic(who: str, transactionId: str) -> bytes:
    """
    A Basic C{Authorization} value for XEP-0070 credentials (ASCII only).
    """
    return b"Basic " + base64.b64encode(f"{who}:{transactionId}".encode("ascii"))


class _ShiftedClock:
    """
    Another clock's time plus C{shift} seconds.
    """

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self.shift = 0.0

    def seconds(self) -> float:
        return float(self._clock.seconds()) + self.shift


class _MainJobMixin:
    """
    Start the tree of C{twistd xmppcomp} with some options, and fetch with
    a real HTTP client.
    """

    addCleanup: Any
    assertEqual: Any

    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        pool = HTTPConnectionPool(reactor, persistent=True)
        self.addCleanup(pool.closeCachedConnections)
        self.http = HTTPClient(Agent(reactor, pool=pool))

    def logText(self) -> str:
        return "\n".join(formatEvent(event) for event in self.events)

    @defer.inlineCallbacks
    def start(self, *argv: str) -> Any:
        """
        Parse C{argv} (after C{--http-listen tcp:0:interface=127.0.0.1}),
        build the tree with L{tap.makeService}, start it, and wait until
        the listener listens and the components are bound.

        @return: the tree and the listener's URL.
        """
        options = tap.Options()
        options.parseOptions(["--http-listen", "tcp:0:interface=127.0.0.1", *argv])
        top = tap.makeService(options)
        # makeService installs the plugin's log level at once; stopping the
        # tree takes it out, and so does this if the test stops early.
        self.addCleanup(top.process.stop)
        top.startService()
        self.addCleanup(lambda: top.stopService() if top.running else None)
        hints = [child for child in top if isinstance(child, DemoHints)]
        self.assertEqual(len(hints), 1)
        url = yield hints[0].ready.addTimeout(WAIT, reactor)
        return top, url

    @defer.inlineCallbacks
    def fetch(
        self,
        url: str,
        credentials: tuple[str, str] | None = None,
        headers: dict[bytes, bytes] | None = None,
    ) -> Any:
        """
        GET C{url}.

        @return: the response and its body.
        """
        sent = Headers()
        for name, value in (headers or {}).items():
            sent.setRawHeaders(name, [value])
        if credentials is not None:
            sent.setRawHeaders(b"authorization", [basic(*credentials)])
        response = yield self.http.get(url, headers=sent).addTimeout(WAIT, reactor)
        body = yield response.content()
        return response, body


class MainJobTests(_MainJobMixin, TestCase):
    """
    The tree of no options, started with the real reactor.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_confirmFlow(self) -> Any:
        """
        Without credentials: 401 with the Basic challenge first; with
        C{tx-1}: 200, confirmed by the demo agent over XMPP (an IQ to
        C{demo@agent.localhost/web}, routed by the embedded router to the
        agent), and again within the session; the same credentials for
        another site (C{Host}): a replay, 401 with the challenge (a browser
        asks for new credentials); C{deny-2}: 403; a bare JID is asked
        with the message form: 200. The log shows the curl commands with
        the real port, and each answer of the agent.
        """
        top, url = yield self.start()
        port = top.getServiceNamed(services.HTTPAUTH_SERVICE).port.getHost().port
        self.assertEqual(url, f"http://127.0.0.1:{port}/")

        response, body = yield self.fetch(url)
        self.assertEqual(response.code, 401)
        self.assertEqual(
            response.headers.getRawHeaders(b"www-authenticate")[0], b'Basic realm="xmpp"'
        )

        response, body = yield self.fetch(url, (DEMO, "tx-1"))
        self.assertEqual(response.code, 200, body)
        self.assertIn(DEMO.encode("ascii"), body)
        response, body = yield self.fetch(url, (DEMO, "tx-1"))
        self.assertEqual(response.code, 200, body)
        self.assertEqual(self.logText().count("demo agent: confirmed"), 1)

        response, body = yield self.fetch(
            url, (DEMO, "tx-1"), {b"host": f"localhost:{port}".encode("ascii")}
        )
        self.assertEqual(response.code, 401, body)
        self.assertEqual(
            response.headers.getRawHeaders(b"www-authenticate")[0], b'Basic realm="xmpp"'
        )
        self.assertIn(b"another site or client", body)

        response, body = yield self.fetch(url, (DEMO, "deny-2"))
        self.assertEqual(response.code, 403, body)
        self.assertIn(b"denied", body)

        response, body = yield self.fetch(url, ("demo@agent.localhost", "tx-3"))
        self.assertEqual(response.code, 200, body)

        response, body = yield self.fetch(url + "missing", (DEMO, "tx-1"))
        self.assertEqual(response.code, 404, body)

        yield top.stopService()
        text = self.logText()
        self.assertIn(f"curl -i {url}\n", text)
        self.assertIn(f"curl -i -u '{DEMO}:tx-1' {url}\n", text)
        self.assertIn(f"curl -i -u '{DEMO}:deny-2' {url}\n", text)
        self.assertIn(
            f"demo agent: confirmed GET {url} for {DEMO} (transaction id 'tx-1', "
            "asked by component.localhost via IQ)",
            text,
        )
        self.assertIn(f"demo agent: denied GET {url} for {DEMO} (transaction id 'deny-2'", text)
        self.assertIn("via message", text)
        self.assertIn(f"XEP-0070 HTTP-auth confirmer listening on {url}", text)
        self.assertIn("XTLS endpoint (urn:xmpp:tmp:xtls) for component.localhost", text)
        embedded = top.getServiceNamed(services.EMBEDDED_SERVICE)
        self.assertNotIn(embedded.secret, text)
        self.assertNotIn(embedded.secretFor("agent.localhost"), text)

    @defer.inlineCallbacks
    def test_replayAfterSession(self) -> Any:
        """
        With a short session (C{[httpauth.limits] session_lifetime}), the
        credentials confirmed once pass within it and are a replay after
        it: 401 with the challenge, without asking the agent again.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        config = os.path.join(directory, "component.toml")
        with open(config, "w") as f:
            f.write("[httpauth.limits]\nsession_lifetime = 0.5\n")
        top, url = yield self.start("--config", config)
        ledger = top.getServiceNamed(services.HTTPAUTH_SERVICE).confirmer.ledger
        # The ledger's clock, 0.8 seconds ahead once shifted: no waiting.
        shifted = _ShiftedClock(ledger._clock)
        ledger._clock = shifted
        response, body = yield self.fetch(url, (DEMO, "tx-1"))
        self.assertEqual(response.code, 200, body)
        response, body = yield self.fetch(url, (DEMO, "tx-1"))
        self.assertEqual(response.code, 200, body)
        shifted.shift = 0.8
        response, body = yield self.fetch(url, (DEMO, "tx-1"))
        self.assertEqual(response.code, 401, body)
        self.assertEqual(
            response.headers.getRawHeaders(b"www-authenticate")[0], b'Basic realm="xmpp"'
        )
        self.assertIn(b"used already", body)
        self.assertEqual(self.logText().count("demo agent: confirmed"), 1)

    @defer.inlineCallbacks
    def test_serverTiming(self) -> Any:
        """
        With C{server_timing = true}, a confirmed request's answer says how
        long the XMPP round trip to the demo agent took; a session pass
        asks nothing and says nothing.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        config = os.path.join(directory, "component.toml")
        with open(config, "w") as f:
            f.write("[httpauth]\nserver_timing = true\n")
        top, url = yield self.start("--config", config)
        response, body = yield self.fetch(url, (DEMO, "tx-1"))
        self.assertEqual(response.code, 200, body)
        [timing] = response.headers.getRawHeaders(b"server-timing")
        name, duration, description = timing.split(b";")
        self.assertEqual((name, description), (b"xmpp", b'desc="XEP-0070 confirmation"'))
        self.assertTrue(duration.startswith(b"dur="), timing)
        self.assertGreater(float(duration[4:]), 0.0)
        response, body = yield self.fetch(url, (DEMO, "tx-1"))
        self.assertEqual(response.code, 200, body)
        self.assertIsNone(response.headers.getRawHeaders(b"server-timing"))
        yield top.stopService()

    @defer.inlineCallbacks
    def test_accessLog(self) -> Any:
        """
        By default each HTTP request has a line in the twistd log; with
        C{access_log = "none"}, none; with a path, the lines go to that
        file instead.
        """
        top, url = yield self.start()
        yield self.fetch(url)
        yield top.stopService()
        self.assertIn('"GET / HTTP/1.1" 401', self.logText())

        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        for setting in ("none", "access.log"):
            config = os.path.join(directory, "component-%s.toml" % (setting,))
            with open(config, "w") as f:
                f.write('[httpauth]\naccess_log = "%s"\n' % (setting,))
            self.events.clear()
            top, url = yield self.start("--config", config)
            yield self.fetch(url)
            yield top.stopService()
            self.assertNotIn('"GET / HTTP/1.1" 401', self.logText())
        with open(os.path.join(directory, "access.log")) as f:
            self.assertIn('"GET / HTTP/1.1" 401', f.read())

    @defer.inlineCallbacks
    def test_xtlsTunnel(self) -> Any:
        """
        Disco#info of the component's hostname lists C{urn:xmpp:tmp:xtls};
        a second component on the embedded router, with a certificate from
        the router's in-memory XTLS authority, opens a tunnel to the
        component, whose handlers receive the stanza sent through it,
        marked as encrypted, with C{to} and C{from} filled in.
        """
        top, url = yield self.start()
        embedded = top.getServiceNamed(services.EMBEDDED_SERVICE)
        component = top.getServiceNamed(services.COMPONENT_SERVICE)
        probe = Component(
            "tcp:host=127.0.0.1:port=%d" % (embedded.port,),
            embedded.domain,
            ["probe.component.localhost"],
            secret=embedded.secret,
            identity=embedded.identity,
            trust=embedded.trust,
            reactor=reactor,
        )
        xtls = XTLSHandler(
            XTLSConfiguration(
                certificate=embedded.issueXTLSCertificate(["probe.component.localhost"]),
                trust=embedded.xtlsTrust,
            ),
            reactor,
        )
        xtls.setHandlerParent(probe)
        probe.startService()
        self.addCleanup(lambda: probe.stopService() if probe.running else None)
        yield probe.whenReady()

        iq = IQ(None, "get")
        iq["from"] = "probe.component.localhost"
        iq["to"] = "component.localhost"
        iq.addElement((NS_DISCO_INFO, "query"))
        answer = yield probe.request(iq)
        features = [f["var"] for f in answer.query.elements(NS_DISCO_INFO, "feature")]
        self.assertIn(NS_XTLS, features)

        received: defer.Deferred[domish.Element] = defer.Deferred()

        def onMessage(message: domish.Element) -> None:
            if getattr(message, "xtlsEncrypted", False) and not received.called:
                received.callback(message)

        component.xmlstream.addObserver("/message", onMessage)
        tunnel = yield xtls.open(
            JID("probe.component.localhost"), JID("component.localhost")
        ).addTimeout(WAIT, reactor)
        self.assertTrue(tunnel.isOpen)
        self.assertIn(tunnel.protocolVersion(), ("TLSv1.2", "TLSv1.3"))
        message = domish.Element((None, "message"))
        message.addElement("body", content="through the tunnel")
        tunnel.send(message)
        inner = yield received.addTimeout(WAIT, reactor)
        self.assertEqual(str(inner.body), "through the tunnel")
        self.assertEqual(inner["from"], "probe.component.localhost")
        self.assertEqual(inner["to"], "component.localhost")
        yield tunnel.close().addTimeout(WAIT, reactor)
        yield probe.stopService()
        yield top.stopService()

    @defer.inlineCallbacks
    def test_confirmedThroughXTLS(self) -> Any:
        """
        The demo's XTLS user, C{secure@agent.localhost}, confirms only
        through a tunnel (issue 21): its full JID gets 200 after the
        confirmer opened a tunnel to it (logged by both ends) and the agent
        answered through it; the bare JID gets 401 saying a full JID is
        needed; the hints name it.
        """
        top, url = yield self.start()
        secure = DEMO_XTLS_JID % ("agent.localhost",)
        response, body = yield self.fetch(url, (secure, "tx-3"))
        self.assertEqual(response.code, 200, body)
        self.assertIn(secure.encode("ascii"), body)
        response, body = yield self.fetch(url, ("secure@agent.localhost", "tx-4"))
        self.assertEqual(response.code, 401, body)
        self.assertIn(b"a full JID is needed for this site", body)
        self.assertEqual(
            response.headers.getRawHeaders(b"www-authenticate")[0], b'Basic realm="xmpp"'
        )
        yield top.stopService()
        text = self.logText()
        self.assertIn(
            f"demo agent: confirmed GET {url} for {secure} (transaction id 'tx-3', "
            "asked by component.localhost via IQ through XTLS)",
            text,
        )
        self.assertIn(f"XTLS tunnel with {secure} opened (initiator, as component.localhost)", text)
        self.assertIn(f"curl -i -u '{secure}:tx-3' {url}\n", text)
        self.assertIn("access: /: anyone (through XTLS for secure@agent.localhost)", text)

    @defer.inlineCallbacks
    def test_noXTLS(self) -> Any:
        """
        With C{--no-xtls}, disco#info of the component's hostname does not
        list XTLS; the demo agent still confirms.
        """
        top, url = yield self.start("--no-xtls")
        embedded = top.getServiceNamed(services.EMBEDDED_SERVICE)
        agent = top.getServiceNamed(DEMO_SERVICE)
        iq = IQ(None, "get")
        iq["from"] = "agent.localhost"
        iq["to"] = "component.localhost"
        iq.addElement((NS_DISCO_INFO, "query"))
        answer = yield agent.request(iq)
        features = [f["var"] for f in answer.query.elements(NS_DISCO_INFO, "feature")]
        self.assertNotIn(NS_XTLS, features)
        self.assertIn(NS_DISCO_INFO, features)
        response, body = yield self.fetch(url, (DEMO, "tx-1"))
        self.assertEqual(response.code, 200, body)
        self.assertIsNotNone(embedded.port)


class ModesTests(_MainJobMixin, TestCase):
    """
    The other ways in, through the same tree: a directory, a proxy, and
    forward-auth.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_directory(self) -> Any:
        """
        C{--http-directory} serves its files behind the confirmation.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        with open(os.path.join(directory, "hello.txt"), "w") as f:
            f.write("hello from the directory\n")
        top, url = yield self.start("--http-directory", directory)
        response, body = yield self.fetch(url + "hello.txt")
        self.assertEqual(response.code, 401)
        response, body = yield self.fetch(url + "hello.txt", (DEMO, "tx-1"))
        self.assertEqual((response.code, body), (200, b"hello from the directory\n"))

    @defer.inlineCallbacks
    def test_proxy(self) -> Any:
        """
        C{--http-mode proxy --http-upstream URL} forwards confirmed
        requests to the upstream, with the confirmed JID.
        """
        root = Resource()
        root.putChild(b"app", Data(b"from upstream\n", "text/plain"))
        upstream = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
            Site(root)
        )
        self.addCleanup(upstream.stopListening)
        top, url = yield self.start(
            "--http-mode", "proxy",
            "--http-upstream", "http://127.0.0.1:%d" % (upstream.getHost().port,),
        )
        response, body = yield self.fetch(url + "app", (DEMO, "deny-1"))
        self.assertEqual(response.code, 403)
        response, body = yield self.fetch(url + "app", (DEMO, "tx-2"))
        self.assertEqual((response.code, body), (200, b"from upstream\n"))
        yield top.stopService()
        self.assertRegex(self.logText(), re.escape("listening on %s" % (url,)) + ".*proxy to http://127.0.0.1:")

    @defer.inlineCallbacks
    def test_forwardAuth(self) -> Any:
        """
        C{--http-mode forward-auth} answers a web server's subrequest,
        described by the nginx profile's headers (from loopback, a trusted
        proxy): 401 without credentials, 200 with C{X-Auth-JID} once
        confirmed, 403 when denied. The URL asked about is built from those
        headers, a host the main job answers to (a loopback name) and the
        canonical path; a client's C{X-Original-URL} is ignored; a host
        outside the loopback names is refused (403) before anyone is asked.
        """
        top, url = yield self.start("--http-mode", "forward-auth")
        original = {
            b"x-original-method": b"GET",
            b"x-original-uri": b"/private/./a//b.txt?q=1",
            b"x-original-host": b"localhost:8443",
            b"x-original-proto": b"https",
            b"x-real-ip": b"192.0.2.7",
            b"x-original-url": b"https://bank.example/transfer?to=mallory",
        }
        response, body = yield self.fetch(url + "auth", headers=original)
        self.assertEqual(response.code, 401)
        response, body = yield self.fetch(url + "auth", (DEMO, "tx-1"), original)
        self.assertEqual(response.code, 200, body)
        self.assertEqual(response.headers.getRawHeaders(b"x-auth-jid"), [DEMO.encode("ascii")])
        response, body = yield self.fetch(url + "auth", (DEMO, "deny-2"), original)
        self.assertEqual(response.code, 403, body)
        elsewhere = dict(original)
        elsewhere[b"x-original-host"] = b"www.example.net"
        response, body = yield self.fetch(url + "auth", (DEMO, "tx-3"), elsewhere)
        self.assertEqual(response.code, 403, body)
        text = self.logText()
        self.assertIn("for demo@agent.localhost/web (transaction id 'tx-1'", text)
        self.assertIn("GET https://localhost:8443/private/a/b.txt?q=1 for", text)
        self.assertNotIn("bank.example", text)
        self.assertNotIn("transaction id 'tx-3'", text)


class DemoPolicyTests(TestCase):
    """
    Tests for L{xmppcomp.demo.demoPolicy}.
    """

    def incoming(self, transactionId: str) -> Any:
        from xmppcomp.httpauth import IncomingConfirmation
        from xmppcomp.httpauth._protocol import ConfirmRequest

        return IncomingConfirmation(
            JID("component.localhost"),
            JID(DEMO),
            ConfirmRequest(transactionId, "GET", "http://127.0.0.1:8080/"),
            False,
        )

    def test_answers(self) -> None:
        """
        C{deny...} is denied, C{wait...} never answered (a Deferred that
        does not fire), anything else confirmed.
        """
        from xmppcomp.demo import demoPolicy

        self.assertIs(demoPolicy(self.incoming("tx-1")), True)
        self.assertIs(demoPolicy(self.incoming("deny-2")), False)
        waiting = demoPolicy(self.incoming("wait-3"))
        self.assertIsInstance(waiting, defer.Deferred)
        self.assertNoResult(waiting)  # type: ignore[arg-type]
