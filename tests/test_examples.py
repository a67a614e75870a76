# -*- test-case-name: tests.test_examples -*-
"""
The examples under C{docs/examples/} work: C{component.toml} connects and
binds against a router on loopback, C{echo_component.py} echoes and
C{handler_component.py} answers entity time requests, each against a
L{RouterService} over real loopback TCP with TLS and SCRAM, talking to a
second component.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import re
import subprocess
import sys
from types import ModuleType
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.words.protocols.jabber.xmlstream import IQ
from twisted.words.xish import domish
from wokkel.subprotocols import XMPPHandler

from xmppcomp import tap
from xmppcomp.component import Component
from xmppcomp.config import RouterConfig
from xmppcomp.router.service import RouterService
from xmppcomp.stream import tls
from xmppcomp.stream.sasl import FileCredentialStore
from xmppcomp.testing import makeCertificateAuthority, writePem

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "docs", "examples")
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
COMPONENT_TOML = os.path.join(EXAMPLES, "component.toml")

DOMAIN = "example.net"
CA = makeCertificateAuthority()
SECRETS = {
    "comp.example.net": "the example component's long secret",
    "probe.example.net": "the probe's long secret",
}


def loadExample(name: str) -> ModuleType:
    """
    Import C{docs/examples/NAME} by path, as a fresh module.
    """
    path = os.path.join(EXAMPLES, name)
    spec = importlib.util.spec_from_file_location(
        "xmppcomp_example_" + name.replace(".py", ""), path
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Inbox(XMPPHandler):
    """
    Collects the messages a component receives; C{next()} fires with the
    next one.
    """

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[domish.Element] = []
        self._waiting: list[defer.Deferred[domish.Element]] = []

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver("/message", self.onMessage)

    def onMessage(self, message: domish.Element) -> None:
        self.messages.append(message)
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(message)

    def next(self) -> defer.Deferred[domish.Element]:
        d: defer.Deferred[domish.Element] = defer.Deferred()
        self._waiting.append(d)
        return d


class RouterMixin:
    """
    A router for C{example.net} on a free loopback port, with TLS (a
    certificate of L{CA}), SCRAM credentials for the identities of
    L{SECRETS} and each allowed to bind its name and the names below.

    @ivar directory: a fresh directory holding router.pem, router.key and
        credentials.json.
    """

    mktemp: Any
    addCleanup: Any

    def startRouter(self) -> RouterService:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        certificate, key = writePem(CA.issue(dnsNames=[DOMAIN]), self.directory)
        self.certificatePath = os.path.join(self.directory, "router.pem")
        self.keyPath = os.path.join(self.directory, "router.key")
        os.rename(certificate, self.certificatePath)
        os.rename(key, self.keyPath)
        credentials = os.path.join(self.directory, "credentials.json")
        store = FileCredentialStore(credentials)
        for identity, secret in SECRETS.items():
            store.add(identity, secret)
        store.save()
        service = RouterService(
            RouterConfig(
                domain=DOMAIN,
                credentials=credentials,
                certificate=self.certificatePath,
                key=self.keyPath,
                listen=("tcp:0:interface=127.0.0.1",),
                authorization={
                    identity: (identity, "*." + identity) for identity in SECRETS
                },
            ),
            reactor,
        )
        service.startService()
        self.addCleanup(lambda: service.stopService() if service.running else None)
        self.router = service
        self.port = service.ports[0].getHost().port
        self.server = "tcp:host=127.0.0.1:port=%d" % (self.port,)
        return service

    def startComponent(self, component: Component) -> Component:
        component.startService()
        self.addCleanup(component.stopService)
        return component

    def probe(self, hostname: str = "probe.example.net") -> tuple[Component, Inbox]:
        """
        Start a second component, C{probe.example.net}, collecting the
        messages it receives.
        """
        component = Component(
            self.server,
            DOMAIN,
            [hostname],
            secret=SECRETS["probe.example.net"],
            identity="probe.example.net",
            trust=tls.trustCAFile(self.writeCA()),
            reactor=reactor,
            retryPolicy=lambda attempt: 0.05,
        )
        inbox = Inbox()
        inbox.setHandlerParent(component)
        return self.startComponent(component), inbox

    def writeCA(self) -> str:
        path = os.path.join(self.directory, "ca.pem")
        with open(path, "wb") as f:
            f.write(CA.pem)
        return path


class ComponentTOMLTests(RouterMixin, TestCase):
    """
    C{docs/examples/component.toml}, copied next to the files it names,
    connects to a router and binds its hostnames.
    """

    timeout = 30

    @defer.inlineCallbacks
    def test_connectsAndBinds(self) -> Any:
        """
        The example, with its server endpoint rewritten to the router's
        free port, gives a component that connects over XEP-0225, pins the
        router's certificate, authenticates with the secret of its secret
        file, binds both hostnames, and answers disco#info for them.
        """
        self.startRouter()
        with open(os.path.join(self.directory, "comp.secret"), "w") as f:
            f.write(SECRETS["comp.example.net"] + "\n")
        with open(COMPONENT_TOML, encoding="utf-8") as f:
            text = f.read()
        text, count = re.subn(
            r'^server = "tcp:host=127\.0\.0\.1:port=5348"$',
            'server = "%s"' % (self.server,),
            text,
            flags=re.M,
        )
        self.assertEqual(count, 1)
        text, count = re.subn(
            r'^listen = "tcp:8081:interface=127\.0\.0\.1"$',
            'listen = "tcp:0:interface=127.0.0.1"',
            text,
            flags=re.M,
        )
        self.assertEqual(count, 1)
        configPath = os.path.join(self.directory, "component.toml")
        with open(configPath, "w", encoding="utf-8") as f:
            f.write(text)

        options = tap.Options()
        options.parseOptions(["--config", configPath])
        config = options.componentConfig
        self.assertEqual(config.hostnames, ("comp.example.net", "chat.comp.example.net"))
        self.assertEqual(config.trust.pinned, self.certificatePath)
        self.assertEqual(config.httpauth.publicOrigin, "https://www.example.net")
        self.assertEqual(config.httpauth.webServer, "nginx")
        services = tap.serviceFromConfig(config, reactor)
        services.startService()
        self.addCleanup(services.stopService)
        component = services.getServiceNamed(tap.COMPONENT_SERVICE)
        yield component.whenReady()
        table = self.router.router.table
        self.assertEqual(
            table.lookup("chat.comp.example.net").names,
            ["comp.example.net", "chat.comp.example.net"],
        )

        probe, inbox = self.probe()
        yield probe.whenReady()
        for hostname in config.hostnames:
            iq = IQ(None, "get")
            iq["from"] = "probe.example.net"
            iq["to"] = hostname
            iq.addElement((NS_DISCO_INFO, "query"))
            answer = yield probe.request(iq)
            self.assertEqual(answer["type"], "result")
            self.assertEqual(answer["from"], hostname)
            identity = next(answer.query.elements(NS_DISCO_INFO, "identity"))
            self.assertEqual(identity["category"], "component")


class ComponentTOMLKeysTests(SynchronousTestCase):
    """
    C{docs/examples/component.toml} says it shows every key.
    """

    def test_everyKey(self) -> None:
        """
        Every key of every table of the component's configuration appears
        in the example, set or commented out (C{key =} or C{# key =}), and
        every sub-table as its header (C{[table.key]} or
        C{[[table.key]]}, possibly commented out).
        """
        from xmppcomp.config import ComponentConfig, tomlKeys

        with open(COMPONENT_TOML, encoding="utf-8") as f:
            text = f.read()
        missing = []
        for table, keys in tomlKeys(ComponentConfig).items():
            for key in keys:
                dotted = f"{table}.{key}" if table else key
                header = r"^#?\s*\[\[?" + re.escape(dotted) + r"\]\]?\s*$"
                assignment = r"^#?\s*" + re.escape(key) + r"\s*="
                if not (re.search(header, text, re.M) or re.search(assignment, text, re.M)):
                    missing.append(dotted)
        self.assertEqual(missing, [])


class EchoComponentTests(RouterMixin, TestCase):
    """
    C{docs/examples/echo_component.py}.
    """

    timeout = 30

    @defer.inlineCallbacks
    def test_echoes(self) -> Any:
        """
        An C{EchoComponent} answers a message with its body and thread,
        from the address it was sent to; it never answers errors.
        """
        module = loadExample("echo_component.py")
        self.startRouter()
        echo = self.startComponent(
            module.EchoComponent(
                self.server,
                DOMAIN,
                ["echo.comp.example.net"],
                secret=SECRETS["comp.example.net"],
                identity="comp.example.net",
                trust=tls.trustPinned(self.certificatePath),
                reactor=reactor,
            )
        )
        probe, inbox = self.probe()
        yield defer.gatherResults([echo.whenReady(), probe.whenReady()])

        error = domish.Element((None, "message"))
        error["from"] = "probe.example.net"
        error["to"] = "room@echo.comp.example.net"
        error["type"] = "error"
        error.addElement("body", content="not to be echoed")
        probe.send(error)
        message = domish.Element((None, "message"))
        message["from"] = "alice@probe.example.net/phone"
        message["to"] = "room@echo.comp.example.net"
        message["type"] = "chat"
        message.addElement("body", content="hello, echo")
        message.addElement("thread", content="t1")
        probe.send(message)

        reply = yield inbox.next()
        self.assertEqual(reply["from"], "room@echo.comp.example.net")
        self.assertEqual(reply["to"], "alice@probe.example.net/phone")
        self.assertEqual(reply["type"], "chat")
        self.assertEqual(str(reply.body), "hello, echo")
        self.assertEqual(str(reply.thread), "t1")
        self.assertEqual(len(inbox.messages), 1)


class HandlerComponentTests(RouterMixin, TestCase):
    """
    C{docs/examples/handler_component.py}.
    """

    timeout = 30

    @defer.inlineCallbacks
    def test_entityTime(self) -> Any:
        """
        A component built like the example's C{run} (C{makeComponent},
        disco, a C{TimeHandler}) answers an XEP-0202 request with the UTC
        time, and lists C{urn:xmpp:time} in disco#info.
        """
        module = loadExample("handler_component.py")
        self.startRouter()
        secretFile = os.path.join(self.directory, "comp.secret")
        with open(secretFile, "w") as f:
            f.write(SECRETS["comp.example.net"] + "\n")
        config = module.parse(
            [
                "--server", self.server,
                "--server-domain", DOMAIN,
                "--hostname", "time.comp.example.net",
                "--identity", "comp.example.net",
                "--secret-file", secretFile,
                "--pinned", self.certificatePath,
            ]
        )
        component = tap.makeComponent(config, reactor)
        tap.addDiscovery(component)
        fixed = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone.utc)
        module.TimeHandler(now=lambda: fixed).setHandlerParent(component)
        self.startComponent(component)
        probe, inbox = self.probe()
        yield defer.gatherResults([component.whenReady(), probe.whenReady()])

        iq = IQ(None, "get")
        iq["from"] = "probe.example.net"
        iq["to"] = "time.comp.example.net"
        iq.addElement((module.NS_TIME, "time"))
        answer = yield probe.request(iq)
        self.assertEqual(answer["type"], "result")
        time = next(answer.elements(module.NS_TIME, "time"))
        self.assertEqual(str(time.tzo), "+00:00")
        self.assertEqual(str(time.utc), "2024-05-06T07:08:09.123456Z")

        iq = IQ(None, "get")
        iq["from"] = "probe.example.net"
        iq["to"] = "time.comp.example.net"
        iq.addElement((NS_DISCO_INFO, "query"))
        answer = yield probe.request(iq)
        features = {f["var"] for f in answer.query.elements(NS_DISCO_INFO, "feature")}
        self.assertIn(module.NS_TIME, features)

    @defer.inlineCallbacks
    def test_run(self) -> Any:
        """
        The example's C{run} starts the component, which answers.
        """
        module = loadExample("handler_component.py")
        self.startRouter()
        os.environ["XMPPCOMP_TEST_SECRET"] = SECRETS["comp.example.net"]
        self.addCleanup(os.environ.pop, "XMPPCOMP_TEST_SECRET", None)
        config = module.parse(
            [
                "--server", self.server,
                "--server-domain", DOMAIN,
                "--hostname", "time.comp.example.net",
                "--identity", "comp.example.net",
                "--secret-env", "XMPPCOMP_TEST_SECRET",
                "--ca-file", self.writeCA(),
            ]
        )
        triggers: list[Any] = []

        class Reactor:
            def __getattr__(self, name: str) -> Any:
                return getattr(reactor, name)

            def addSystemEventTrigger(self, *args: Any) -> None:
                triggers.append(args[-1])

        forever = module.run(Reactor(), config)
        self.assertNoResult(forever)
        self.assertEqual(len(triggers), 1)
        self.addCleanup(triggers[0])
        probe, inbox = self.probe()
        yield probe.whenReady()
        iq = IQ(None, "get")
        iq["from"] = "probe.example.net"
        iq["to"] = "time.comp.example.net"
        iq.addElement((module.NS_TIME, "time"))
        answer = yield probe.request(iq, timeout=10)
        self.assertEqual(answer["type"], "result")


class CommandLineTests(SynchronousTestCase):
    """
    The example scripts run as scripts.
    """

    def run_script(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        environment = dict(os.environ, PYTHONPATH=ROOT)
        return subprocess.run(
            [sys.executable, os.path.join(EXAMPLES, name), *args],
            capture_output=True,
            text=True,
            env=environment,
            timeout=60,
        )

    def test_help(self) -> None:
        """
        C{--help} shows how to run each example and exits successfully.
        """
        for name in ("echo_component.py", "handler_component.py"):
            result = self.run_script(name, "--help")
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn("Usage: python docs/examples/" + name, result.stdout)
            self.assertIn("--server", result.stdout)
            self.assertIn("--secret-file", result.stdout)

    def test_noServer(self) -> None:
        """
        Without a server, an example says what is missing and fails.
        """
        result = self.run_script("echo_component.py")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("error: give --server", result.stderr)

    def test_parseErrors(self) -> None:
        """
        A malformed option is reported with the usage, as an error; a value
        the configuration cannot use, in one line naming the example and
        the option, without the usage.
        """
        module = loadExample("echo_component.py")
        e = self.assertRaises(SystemExit, module.parse, ["--max-queued", "many"])
        self.assertIn("Usage: python docs/examples/echo_component.py", str(e))
        self.assertIn("error: --max-queued must be a whole number, not 'many'", str(e))
        e = self.assertRaises(SystemExit, module.parse, ["--server", "tcp:nope"])
        self.assertTrue(
            str(e).startswith("echo_component.py: --server: 'tcp:nope' is not a valid client endpoint"), str(e)
        )
        self.assertNotIn("Usage", str(e))
