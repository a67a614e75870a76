# -*- test-case-name: tests.test_tap -*-
"""
Tests for L{xmppcomp.tap} (C{twistd xmppcomp}), the component's
configuration (L{xmppcomp.config.loadComponentConfig}) and the plugin.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.application.service import IServiceMaker
from twisted.internet import defer, reactor
from twisted.logger import formatEvent, globalLogPublisher
from twisted.plugin import IPlugin
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.words.protocols.jabber.xmlstream import IQ
import xmppcomp._wokkelcompat  # noqa: F401  # isort: skip
from wokkel.disco import DiscoHandler

from xmppcomp import services, tap
from xmppcomp._process import GC_THRESHOLDS, ConfigExit, PluginProcess
from xmppcomp.component import Component
from xmppcomp.config import (
    ComponentConfig,
    ComponentLimits,
    ComponentTrust,
    ConfigError,
    HTTPAuthConfig,
    Override,
    XTLSConfig,
    componentConfigFromMapping,
    loadComponentConfig,
)
from xmppcomp.disco import ComponentIdentity
from xmppcomp.embedded import EmbeddedComponent, EmbeddedRouter
from xmppcomp.httpauth import ConfirmationRequester, HTTPAuthListener
from xmppcomp.xtls import XTLSHandler
from xmppcomp.testing import makeCertificateAuthority, selfSigned, writePem

CA = makeCertificateAuthority()

#: A complete configuration naming a server; the files are made by
#: L{_FilesMixin}.
FULL = """\
[component]
server = "tcp:host=127.0.0.1:port=5348"
server_domain = "Example.NET"
protocol = "xep0225"
hostnames = ["comp.example.net", "chat.comp.example.net"]
identity = "comp.example.net"
secret = { file = "comp.secret" }
client_certificate = "client.pem"
client_key = "client.key"
require_tls = true

[component.trust]
ca_file = "ca.pem"

[component.limits]
max_queued = 10
queue_timeout = 5
iq_timeout = 2.5
negotiation_timeout = 7
fatal_retry_delay = 60

[httpauth]
listen = "tcp:8080"
public_origin = "https://www.example.net"
tunnel_idle_timeout = 45

[xtls]
enabled = true
"""

#: The C{[httpauth]} table a configuration naming a server needs at least
#: (the URL a user is asked about is built from it), appended to the
#: configurations of tests about other tables.
ORIGIN = '[httpauth]\npublic_origin = "https://www.example.net"\n'



def assertConfigExit(testCase: Any, command: str, parse: Any, *argv: str) -> str:
    """
    C{parse(*argv)}, whose configuration cannot be used, ends the process
    with a L{ConfigExit} whose message is C{command} (once) and the
    L{ConfigError}'s, and nothing else (no usage).

    @return: that message.
    """
    e = testCase.assertRaises(ConfigExit, parse, *argv)
    testCase.assertIsInstance(e.error, ConfigError)
    message = str(e.code)
    testCase.assertTrue(message.startswith(command + ": "), message)
    testCase.assertTrue(message.endswith(str(e.error)), message)
    testCase.assertNotIn(f"{command}: {command}", message)
    testCase.assertNotIn("Usage", message)
    return message

class _FilesMixin:
    """
    A directory with a secret file, a CA file, a pinnable server
    certificate, a client certificate and key, and a garbage file.
    """

    mktemp: Any

    addCleanup: Any

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.path = lambda name: os.path.join(self.directory, name)
        self.write("comp.secret", "the component's secret\n")
        self.write("ca.pem", CA.pem.decode("ascii"))
        self.write("garbage.pem", "not a certificate\n")
        certificate, key = writePem(CA.issue(dnsNames=["comp.example.net"], client=True), self.directory)
        os.rename(certificate, self.path("client.pem"))
        os.rename(key, self.path("client.key"))
        certificate, key = writePem(selfSigned(["example.net"]), self.directory)
        os.rename(certificate, self.path("server.pem"))

    def makeService(self, options: Any) -> Any:
        """
        L{tap.makeService}, its process-wide settings undone at the end of
        the test (the tree is never started).
        """
        top = tap.makeService(options)
        self.addCleanup(top.process.stop)
        return top

    def write(self, name: str, text: str) -> str:
        with open(self.path(name), "w", encoding="utf-8") as f:
            f.write(text)
        return self.path(name)

    def load(self, text: str, overrides: dict[str, Override] | None = None) -> ComponentConfig:
        return loadComponentConfig(self.write("component.toml", text), overrides)

    def loadError(self, text: str, overrides: dict[str, Override] | None = None) -> str:
        e = self.assertRaises(ConfigError, self.load, text, overrides)  # type: ignore[attr-defined]
        return str(e)


class ComponentConfigTests(_FilesMixin, SynchronousTestCase):
    """
    L{loadComponentConfig} builds a checked L{ComponentConfig} from TOML and
    says what is wrong, where, and how to fix it.
    """

    def test_full(self) -> None:
        """
        Every key is read; relative paths resolve against the file's
        directory; the domain is normalised; [httpauth] and [xtls] are
        read.
        """
        config = self.load(FULL)
        self.assertEqual(config.server, "tcp:host=127.0.0.1:port=5348")
        self.assertEqual(config.serverDomain, "example.net")
        self.assertEqual(config.hostnames, ("comp.example.net", "chat.comp.example.net"))
        self.assertEqual(config.identity, "comp.example.net")
        self.assertEqual(config.protocol, "xep0225")
        assert config.secret is not None
        self.assertEqual(config.secret.file, self.path("comp.secret"))
        self.assertEqual(config.secret.read(), "the component's secret")
        self.assertEqual(config.clientCertificate, self.path("client.pem"))
        self.assertEqual(config.clientKey, self.path("client.key"))
        self.assertEqual(config.trust, ComponentTrust(caFile=self.path("ca.pem")))
        self.assertEqual(config.trust.kind, "ca_file")
        self.assertEqual(
            config.limits,
            ComponentLimits(maxQueued=10, queueTimeout=5.0, iqTimeout=2.5, negotiationTimeout=7.0, fatalRetryDelay=60.0),
        )
        self.assertEqual(
            config.httpauth,
            HTTPAuthConfig(
                listen="tcp:8080",
                publicOrigin="https://www.example.net",
                fromHostname="comp.example.net",
                tunnelIdleTimeout=45.0,
            ),
        )
        self.assertEqual(config.xtls, XTLSConfig())
        self.assertEqual(config.baseDirectory, self.directory)
        self.assertFalse(config.embedded)

    def test_defaults(self) -> None:
        """
        With a server, the identity defaults to the first hostname, trust
        to the system's CAs, TLS is required and the limits are defaults.
        """
        config = self.load(
            '[component]\nserver = "tls:host=xmpp.example.net:port=5223"\n'
            'server_domain = "example.net"\nhostnames = ["comp.example.net"]\n'
            'secret = { env = "COMP_SECRET" }\n' + ORIGIN
        )
        self.assertEqual(config.identity, "comp.example.net")
        self.assertEqual(config.trust.kind, "system")
        self.assertTrue(config.requireTLS)
        self.assertEqual(config.limits, ComponentLimits())
        self.assertEqual(config.secret.env, "COMP_SECRET")  # type: ignore[union-attr]
        self.assertEqual(
            config.httpauth,
            HTTPAuthConfig(publicOrigin="https://www.example.net", fromHostname="comp.example.net"),
        )

    def test_embedded(self) -> None:
        """
        Without a server: the embedded router's domain is localhost and the
        component is component.localhost, unless configured.
        """
        config = componentConfigFromMapping({}, "x.toml")
        self.assertTrue(config.embedded)
        self.assertEqual(config.serverDomain, "localhost")
        self.assertEqual(config.hostnames, ("component.localhost",))
        self.assertEqual(config.identity, "component.localhost")
        self.assertEqual(config.embeddedPort, 0)
        config = self.load(
            '[component]\nserver_domain = "dev.test"\n[embedded]\nport = 5348\n'
        )
        self.assertEqual(config.hostnames, ("component.dev.test",))
        self.assertEqual(config.embeddedPort, 5348)

    def test_missingFile(self) -> None:
        """
        A missing file is named, with what to check.
        """
        e = self.assertRaises(ConfigError, loadComponentConfig, self.path("nope.toml"))
        self.assertIn(self.path("nope.toml"), str(e))
        self.assertIn("cannot read the configuration file", str(e))
        self.assertIn("--config", str(e))

    def test_badTOML(self) -> None:
        """
        Invalid TOML is reported with its line.
        """
        message = self.loadError("[component\n")
        self.assertIn("not valid TOML", message)
        self.assertIn("line 1", message)

    def test_unknownKeys(self) -> None:
        """
        Unknown keys, at any level, are errors naming the file, the dotted
        key, the nearest known key and the keys allowed.
        """
        message = self.loadError('[component]\nhostname = ["a.example"]\n')
        self.assertIn(self.path("component.toml"), message)
        self.assertIn("unknown key 'component.hostname'", message)
        self.assertIn("did you mean 'hostnames'", message)
        message = self.loadError("[component.trust]\ncafile = 'ca.pem'\n")
        self.assertIn("'component.trust.cafile'", message)
        self.assertIn("did you mean 'ca_file'", message)
        message = self.loadError("[component.limits]\nmax_queue = 3\n")
        self.assertIn("did you mean 'max_queued'", message)
        message = self.loadError("[compnent]\n")
        self.assertIn("did you mean 'component'", message)
        message = self.loadError('server = "tcp:host=a:port=1"\n')
        self.assertIn("move it below a [component] line", message)

    def test_badEndpoint(self) -> None:
        """
        An endpoint string Twisted cannot parse as a client endpoint is
        refused, with examples.
        """
        for bad in ("tcp:5348", "bogus:1", "tcp:host=a:port=x"):
            message = self.loadError(f'[component]\nserver = "{bad}"\n')
            self.assertIn("component.server", message)
            self.assertIn("not a valid client endpoint string", message)
            self.assertIn("tcp:host=127.0.0.1:port=5348", message)

    def test_inlineSecret(self) -> None:
        """
        A secret written in the file is refused, with how to do it.
        """
        message = self.loadError(FULL.replace('secret = { file = "comp.secret" }', 'secret = "hunter2"'))
        self.assertIn("component.secret", message)
        self.assertIn("never written in the configuration", message)
        self.assertNotIn("hunter2", message)

    def test_secretForms(self) -> None:
        """
        A secret table has exactly one of file and env; the file exists.
        """
        message = self.loadError(FULL.replace('{ file = "comp.secret" }', '{ file = "a", env = "B" }'))
        self.assertIn("exactly one of 'file' or 'env'", message)
        message = self.loadError(FULL.replace('{ file = "comp.secret" }', '{ path = "a" }'))
        self.assertIn("unknown key 'path'", message)
        message = self.loadError(FULL.replace('{ file = "comp.secret" }', '{ file = "missing.secret" }'))
        self.assertIn("component.secret.file", message)
        self.assertIn("does not exist", message)

    def test_missingSecret(self) -> None:
        """
        XEP-0114 needs a secret; XEP-0225 a secret or a client certificate.
        """
        base = (
            '[component]\nserver = "tcp:host=127.0.0.1:port=5347"\n'
            'server_domain = "example.net"\nhostnames = ["legacy.example.net"]\n'
        )
        message = self.loadError(base + 'protocol = "xep0114"\n')
        self.assertIn("component.secret is missing", message)
        self.assertIn("XEP-0114", message)
        message = self.loadError(base)
        self.assertIn("component.secret is missing", message)
        self.assertIn("client_certificate", message)
        config = self.load(
            base + 'client_certificate = "client.pem"\nclient_key = "client.key"\n' + ORIGIN
        )
        self.assertEqual(config.clientCertificate, self.path("client.pem"))

    def test_xep0114NoSASL(self) -> None:
        """
        XEP-0114 has no SASL identity nor client certificate.
        """
        base = (
            '[component]\nserver = "tcp:host=127.0.0.1:port=5347"\n'
            'server_domain = "example.net"\nhostnames = ["legacy.example.net"]\n'
            'protocol = "xep0114"\nsecret = { file = "comp.secret" }\n'
        )
        self.assertEqual(self.load(base + ORIGIN).protocol, "xep0114")
        message = self.loadError(base + 'identity = "legacy.example.net"\n')
        self.assertIn("XEP-0114 has no SASL", message)
        message = self.loadError(base.replace("xep0114", "xep9999"))
        self.assertIn('must be "xep0225"', message)

    def test_unreadableCertificates(self) -> None:
        """
        Trust and client certificate files that hold no certificate (or a
        key that is not the certificate's) are refused, naming the key.
        """
        message = self.loadError(FULL.replace('ca_file = "ca.pem"', 'ca_file = "garbage.pem"'))
        self.assertIn("component.trust.ca_file", message)
        self.assertIn("no valid PEM certificate", message)
        message = self.loadError(FULL.replace('ca_file = "ca.pem"', 'pinned = "garbage.pem"'))
        self.assertIn("component.trust.pinned", message)
        message = self.loadError(FULL.replace('client_certificate = "client.pem"', 'client_certificate = "garbage.pem"'))
        self.assertIn("component.client_certificate", message)
        message = self.loadError(FULL.replace('client_key = "client.key"', 'client_key = "ca.pem"'))
        self.assertIn("component.client_key", message)
        message = self.loadError(FULL.replace('client_certificate = "client.pem"\n', ""))
        self.assertIn("without a certificate", message)

    def test_trustChoices(self) -> None:
        """
        [component.trust] takes exactly one of ca_file, pinned, system =
        true; system = false alone is refused.
        """
        message = self.loadError(FULL.replace('ca_file = "ca.pem"', 'ca_file = "ca.pem"\npinned = "server.pem"'))
        self.assertIn("exactly one of ca_file, pinned or system", message)
        message = self.loadError(FULL.replace('ca_file = "ca.pem"', "system = false"))
        self.assertIn("leaves nothing to trust", message)
        config = self.load(FULL.replace('ca_file = "ca.pem"', "system = true"))
        self.assertEqual(config.trust.kind, "system")
        config = self.load(FULL.replace('ca_file = "ca.pem"', 'pinned = "server.pem"'))
        self.assertEqual(config.trust, ComponentTrust(pinned=self.path("server.pem")))

    def test_limits(self) -> None:
        """
        Limits have their type and are above 0.
        """
        message = self.loadError(FULL.replace("max_queued = 10", "max_queued = 0"))
        self.assertIn("component.limits.max_queued must be at least 1", message)
        message = self.loadError(FULL.replace("max_queued = 10", 'max_queued = "10"'))
        self.assertIn("must be an integer", message)
        message = self.loadError(FULL.replace("iq_timeout = 2.5", "iq_timeout = -1"))
        self.assertIn("component.limits.iq_timeout must be a finite number of seconds above 0", message)
        self.assertIn("the default is 30", message)

    def test_missingServerKeys(self) -> None:
        """
        With a server, server_domain and hostnames are required; hostnames
        is a non-empty array of domains without repeats.
        """
        base = '[component]\nserver = "tcp:host=127.0.0.1:port=5348"\nsecret = { file = "comp.secret" }\n'
        message = self.loadError(base + 'hostnames = ["a.example"]\n')
        self.assertIn("component.server_domain is missing", message)
        base += 'server_domain = "example.net"\n'
        message = self.loadError(base)
        self.assertIn("component.hostnames is missing", message)
        message = self.loadError(base + "hostnames = []\n")
        self.assertIn("non-empty array", message)
        message = self.loadError(base + 'hostnames = "a.example"\n')
        self.assertIn('write it as ["a.example"]', message)
        message = self.loadError(base + 'hostnames = ["a.example", "A.example"]\n')
        self.assertIn("listed twice", message)
        message = self.loadError(base + 'hostnames = ["user@a.example"]\n')
        self.assertIn("component.hostnames[0]", message)
        self.assertIn("is not a domain", message)

    def test_embeddedRefusals(self) -> None:
        """
        Without a server, what the embedded router provides is refused, as
        are XEP-0114, the router's own domain as a hostname, and [embedded]
        next to a server.
        """
        for line in (
            'secret = { file = "comp.secret" }',
            'client_certificate = "client.pem"',
            '[component.trust]\npinned = "server.pem"',
        ):
            message = self.loadError("[component]\n" + line + "\n")
            self.assertIn("no server is configured", message)
            self.assertIn("set component.server", message)
        message = self.loadError('[component]\nprotocol = "xep0114"\n')
        self.assertIn("speaks XEP-0225", message)
        message = self.loadError('[component]\nhostnames = ["localhost"]\n')
        self.assertIn("the embedded router's own domain", message)
        message = self.loadError(FULL + "[embedded]\nport = 1\n")
        self.assertIn("only runs without component.server", message)
        message = self.loadError("[embedded]\nport = 70000\n")
        self.assertIn("from 0 to 65535", message)

    def test_httpauthAndXTLSTables(self) -> None:
        """
        [httpauth] and [xtls] must be tables, and their keys are checked
        (see L{tests.test_config} for each key); empty, they give the
        defaults, and without a server the confirmer answers to the
        loopback host names.
        """
        message = self.loadError('httpauth = "yes"\n')
        self.assertIn("httpauth must be a table", message)
        message = self.loadError("[xtls]\nanything = 1\n")
        self.assertIn("unknown key 'xtls.anything'", message)
        config = self.load("[httpauth]\n[xtls]\n")
        self.assertEqual(
            (config.httpauth, config.xtls),
            (
                HTTPAuthConfig(
                    allowedHosts=("127.0.0.1", "localhost", "::1"),
                    fromHostname="component.localhost",
                ),
                XTLSConfig(),
            ),
        )

    def test_httpauthNewKeys(self) -> None:
        """
        Every C{[httpauth]} key about where the site is, whom to trust and
        what to accept, and every C{[httpauth.limits]} key about the
        replay memory and per-client limits, is read into
        L{HTTPAuthConfig}; allowed host names are normalised (lower case,
        no trailing dot); C{server_header = ""} means no C{Server} header.
        """
        from xmppcomp.httpauth import Limits

        config = self.load(
            FULL.replace(
                'listen = "tcp:8080"\n',
                'listen = "tcp:8080"\n'
                'allowed_hosts = ["www.example.net", "Example.NET."]\n'
                'trusted_proxies = ["10.0.0.0/8", "192.0.2.7", "::1"]\n'
                'web_server = "caddy"\n'
                "ask_query = false\n"
                "max_body = 4096\n"
                "head_timeout = 2.5\n"
                'server_header = ""\n'
                "follow_symlinks = true\n"
                "list_directories = true\n",
            )
            + "[httpauth.limits]\n"
            "remembered_per_jid = 11\n"
            "remembered_per_domain = 12\n"
            "attempts_per_client = 13\n"
            "attempt_window = 14.5\n"
            "undeliverable_per_target = 15\n"
            "undeliverable_window = 16\n"
            "max_tracked_clients = 17\n"
        )
        httpauth = config.httpauth
        self.assertEqual(httpauth.publicOrigin, "https://www.example.net")
        self.assertEqual(httpauth.allowedHosts, ("www.example.net", "example.net"))
        self.assertEqual(httpauth.trustedProxies, ("10.0.0.0/8", "192.0.2.7", "::1"))
        self.assertEqual(httpauth.webServer, "caddy")
        self.assertIs(httpauth.askQuery, False)
        self.assertEqual(httpauth.maxBody, 4096)
        self.assertEqual(httpauth.headTimeout, 2.5)
        self.assertIsNone(httpauth.serverHeader)
        self.assertIs(httpauth.followSymlinks, True)
        self.assertIs(httpauth.listDirectories, True)
        self.assertEqual(
            httpauth.limits,
            Limits(
                rememberedPerJID=11,
                rememberedPerDomain=12,
                attemptsPerClient=13,
                attemptWindow=14.5,
                undeliverablePerTarget=15,
                undeliverableWindow=16.0,
                maxTrackedClients=17,
            ),
        )
        config = self.load(
            FULL.replace(
                'public_origin = "https://www.example.net"',
                'allowed_hosts = ["www.example.net"]\nserver_header = "web"',
            )
        )
        self.assertIsNone(config.httpauth.publicOrigin)
        self.assertEqual(config.httpauth.allowedHosts, ("www.example.net",))
        self.assertEqual(config.httpauth.serverHeader, "web")

    def test_httpauthDefaults(self) -> None:
        """
        Left out, the new C{[httpauth]} keys give: loopback trusted as a
        proxy, the nginx profile, the query asked about, bodies up to 1
        MiB, 10 seconds for a request's head, C{Server: xmppcomp}, no
        symbolic link out of the directory and no directory listing.
        """
        httpauth = self.load(FULL).httpauth
        self.assertEqual(httpauth.allowedHosts, ())
        self.assertEqual(httpauth.trustedProxies, ("127.0.0.0/8", "::1"))
        self.assertEqual(httpauth.webServer, "nginx")
        self.assertIs(httpauth.askQuery, True)
        self.assertEqual(httpauth.maxBody, 1024 * 1024)
        self.assertEqual(httpauth.headTimeout, 10.0)
        self.assertEqual(httpauth.serverHeader, "xmppcomp")
        self.assertIs(httpauth.followSymlinks, False)
        self.assertIs(httpauth.listDirectories, False)

    def test_httpauthNeedsOrigin(self) -> None:
        """
        With a server, a confirmer with neither C{public_origin} nor
        C{allowed_hosts} (or with an empty list of hosts) is refused, with
        an error naming both keys; a confirmer turned off needs neither.
        """
        bare = FULL.replace('public_origin = "https://www.example.net"\n', "")
        for text in (bare, bare.replace("[xtls]", 'allowed_hosts = []\n\n[xtls]')):
            message = self.loadError(text)
            self.assertIn(self.path("component.toml"), message)
            self.assertIn("[httpauth] needs public_origin", message)
            self.assertIn("or allowed_hosts", message)
        message = self.loadError(FULL.split("[httpauth]")[0])
        self.assertIn("public_origin", message)
        self.assertIn("allowed_hosts", message)
        config = self.load(bare.replace("[xtls]", "enabled = false\n\n[xtls]"))
        self.assertFalse(config.httpauth.enabled)

    def test_httpauthEmbeddedHosts(self) -> None:
        """
        Without a server, the confirmer answers to the loopback host names
        C{127.0.0.1}, C{localhost} and C{::1} unless C{public_origin} or
        C{allowed_hosts} says otherwise.
        """
        loopback = ("127.0.0.1", "localhost", "::1")
        self.assertEqual(componentConfigFromMapping({}, "x.toml").httpauth.allowedHosts, loopback)
        self.assertEqual(self.load("[httpauth]\n").httpauth.allowedHosts, loopback)
        httpauth = self.load('[httpauth]\nallowed_hosts = ["dev.test"]\n').httpauth
        self.assertEqual(httpauth.allowedHosts, ("dev.test",))
        httpauth = self.load('[httpauth]\npublic_origin = "http://dev.test:8080"\n').httpauth
        self.assertEqual((httpauth.publicOrigin, httpauth.allowedHosts), ("http://dev.test:8080", ()))

    def test_httpauthBadNewKeys(self) -> None:
        """
        A host with a port or that is no host name, an entry of
        C{trusted_proxies} that is no address or network, and a web server
        without a profile are refused, naming the key (and the entry).
        """
        def fails(line: str, *expected: str) -> None:
            message = self.loadError(
                FULL.replace('listen = "tcp:8080"\n', 'listen = "tcp:8080"\n' + line + "\n")
            )
            self.assertIn(self.path("component.toml"), message)
            for text in expected:
                self.assertIn(text, message)

        fails('allowed_hosts = ["example.net:443"]', "httpauth.allowed_hosts[0]", "'example.net:443'", "port")
        fails('allowed_hosts = ["example.net", "a b"]', "httpauth.allowed_hosts[1]", "'a b'", "not a host name")
        fails('allowed_hosts = "example.net"', "httpauth.allowed_hosts must be an array")
        fails('trusted_proxies = ["not-an-ip"]', "httpauth.trusted_proxies[0]", "'not-an-ip'",
              "not an IP address or network")
        fails('web_server = "apache"', 'httpauth.web_server must be "nginx" (forward-auth headers X-Original-URI, '
              'X-Real-IP), "traefik" (forward-auth headers X-Forwarded-Uri, X-Forwarded-For) or "caddy"', "'apache'")
        fails("max_body = -1", "httpauth.max_body must be at least 0")
        fails("head_timeout = 0", "httpauth.head_timeout must be a finite number of seconds above 0")
        fails('server_header = "a\\nb"', "httpauth.server_header: 'a\\nb' is not a Server header (not printable ASCII)",
              'or "" for no Server header')
        fails('ask_query = "no"', "httpauth.ask_query must be true or false")
        fails("follow_symlinks = 1", "httpauth.follow_symlinks must be true or false")
        fails("list_directories = 0", "httpauth.list_directories must be true or false")
        message = self.loadError(FULL + "[httpauth.limits]\nattempts_per_client = 0\n")
        self.assertIn("httpauth.limits.attempts_per_client must be at least 1", message)
        message = self.loadError(
            FULL.replace('public_origin = "https://www.example.net"', 'public_origin = "https://u@www.example.net"')
        )
        self.assertIn("httpauth.public_origin", message)
        self.assertIn("user information", message)

    def test_httpauthExactResource(self) -> None:
        """
        C{exact_resource} is off by default and read when given; it reaches
        the confirmer's requester.
        """
        self.assertFalse(self.load(FULL).httpauth.exactResource)
        config = self.load(
            FULL.replace('listen = "tcp:8080"\n', 'listen = "tcp:8080"\nexact_resource = true\n')
        )
        self.assertTrue(config.httpauth.exactResource)

    def test_httpauthBareIPv6Host(self) -> None:
        """
        A bare IPv6 address is an allowed host as the embedded default
        has it (C{"::1"}), as is its bracketed form.
        """
        for entry in ('"::1"', '"[::1]"'):
            config = self.load(
                FULL.replace('listen = "tcp:8080"\n', 'listen = "tcp:8080"\nallowed_hosts = [%s]\n' % (entry,))
            )
            self.assertEqual(config.httpauth.allowedHosts, ("::1",))

    def test_overrides(self) -> None:
        """
        Overrides win over the file; a trust override replaces the whole
        [component.trust] table; errors name the option.
        """
        config = self.load(
            FULL,
            {
                "component.hostnames": Override(["other.example.net"], "--hostname"),
                "component.trust.pinned": Override(self.path("server.pem"), "--pinned"),
                "component.limits.max_queued": Override(3, "--max-queued"),
                "component.secret": Override({"env": "X"}, "--secret-env"),
            },
        )
        self.assertEqual(config.hostnames, ("other.example.net",))
        self.assertEqual(config.identity, "comp.example.net")
        self.assertEqual(config.trust, ComponentTrust(pinned=self.path("server.pem")))
        self.assertEqual(config.limits.maxQueued, 3)
        self.assertEqual(config.secret.env, "X")  # type: ignore[union-attr]
        message = self.loadError(FULL, {"component.server": Override("tcp:1", "--server")})
        self.assertTrue(message.startswith("--server: 'tcp:1' is not a valid"), message)
        self.assertRaises(ValueError, self.load, FULL, {"component.bogus": Override(1, "--bogus")})


class OptionsTests(_FilesMixin, SynchronousTestCase):
    """
    L{tap.Options} builds a checked L{ComponentConfig} from the file and
    the options, options winning.
    """

    def parse(self, *argv: str) -> tap.Options:
        options = tap.Options()
        options.parseOptions(list(argv))
        return options

    def configExit(self, *argv: str) -> str:
        """
        Parse C{argv}, which the configuration cannot use (see
        L{assertConfigExit}).
        """
        return assertConfigExit(self, "twistd xmppcomp", self.parse, *argv)

    def test_noOptions(self) -> None:
        """
        No options at all: the embedded setup.
        """
        config = self.parse().componentConfig
        self.assertTrue(config.embedded)
        self.assertEqual(config.hostnames, ("component.localhost",))

    def test_configFile(self) -> None:
        """
        C{--config} alone gives the file's configuration.
        """
        config = self.parse("--config", self.write("c.toml", FULL)).componentConfig
        self.assertEqual(config, loadComponentConfig(self.path("c.toml")))

    def test_optionsWin(self) -> None:
        """
        Options override the file; C{--hostname} is repeatable and replaces
        the file's list; relative option paths resolve against the current
        directory.
        """
        os.environ["XMPPCOMP_TAP_SECRET"] = "from the environment"
        self.addCleanup(os.environ.pop, "XMPPCOMP_TAP_SECRET")
        cwd = os.getcwd()
        os.chdir(self.directory)
        self.addCleanup(os.chdir, cwd)
        config = self.parse(
            "--config", self.write("c.toml", FULL),
            "--server", "tcp:host=::1:port=1",
            "--server-domain", "other.example",
            "--hostname", "a.other.example",
            "--hostname", "b.other.example",
            "--identity", "other.example",
            "--secret-env", "XMPPCOMP_TAP_SECRET",
            "--pinned", "server.pem",
            "--max-queued", "5",
            "--queue-timeout", "1.5",
            "--iq-timeout", "2",
            "--negotiation-timeout", "3",
            "--fatal-retry-delay", "4",
        ).componentConfig
        self.assertEqual(config.server, "tcp:host=::1:port=1")
        self.assertEqual(config.serverDomain, "other.example")
        self.assertEqual(config.hostnames, ("a.other.example", "b.other.example"))
        self.assertEqual(config.identity, "other.example")
        self.assertEqual(config.secret.read(), "from the environment")  # type: ignore[union-attr]
        self.assertEqual(config.trust, ComponentTrust(pinned=self.path("server.pem")))
        self.assertEqual(config.limits, ComponentLimits(5, 1.5, 2.0, 3.0, 4.0))

    def test_withoutFile(self) -> None:
        """
        Options alone can describe a component connecting to a server
        without the confirmer (C{--no-httpauth}); with the confirmer, which
        needs C{public_origin} or C{allowed_hosts} (no option gives them),
        they are refused (L{ConfigExit}), naming both keys.
        """
        argv = (
            "--server", "tcp:host=127.0.0.1:port=5347",
            "--server-domain", "example.net",
            "--protocol", "xep0114",
            "--hostname", "legacy.example.net",
            "--secret-file", self.path("comp.secret"),
            "--system-trust",
        )
        e = self.configExit(*argv)
        self.assertIn("[httpauth] needs public_origin", str(e))
        self.assertIn("allowed_hosts", str(e))
        config = self.parse(*argv, "--no-httpauth").componentConfig
        self.assertFalse(config.httpauth.enabled)
        self.assertEqual(config.protocol, "xep0114")
        self.assertEqual(config.secret.file, self.path("comp.secret"))  # type: ignore[union-attr]
        self.assertEqual(config.trust.kind, "system")

    def test_exclusiveOptions(self) -> None:
        """
        Two secret sources, or two trust options, are usage errors.
        """
        e = self.assertRaises(usage.UsageError, self.parse, "--secret-file", "a", "--secret-env", "B")
        self.assertIn("not both", str(e))
        e = self.assertRaises(usage.UsageError, self.parse, "--ca-file", "a", "--pinned", "b")
        self.assertIn("--ca-file and --pinned", str(e))
        e = self.assertRaises(usage.UsageError, self.parse, "--pinned", "b", "--system-trust")
        self.assertIn("--pinned and --system-trust", str(e))

    def test_numbers(self) -> None:
        """
        Numeric options that are not numbers name the option.
        """
        e = self.assertRaises(usage.UsageError, self.parse, "--max-queued", "many")
        self.assertIn("--max-queued must be a whole number", str(e))
        e = self.assertRaises(usage.UsageError, self.parse, "--iq-timeout", "soon")
        self.assertIn("--iq-timeout must be a number of seconds", str(e))
        e = self.assertRaises(usage.UsageError, self.parse, "--embedded-port", "x")
        self.assertIn("--embedded-port", str(e))
        self.assertEqual(self.parse("--embedded-port", "5348").componentConfig.embeddedPort, 5348)

    def test_configErrorExits(self) -> None:
        """
        A configuration error, in the file or in an option's value, ends
        the process with its message alone (L{ConfigExit}), not with a
        usage error and the option list.
        """
        e = self.configExit("--config", self.path("nope.toml"))
        self.assertIn("cannot read the configuration file", str(e))
        e = self.configExit("--server", "tcp:1")
        self.assertIn("--server: 'tcp:1'", str(e))

    def test_secretReadable(self) -> None:
        """
        The secret must be readable when the options are checked: an unset
        variable ends the process with a message naming it.
        """
        os.environ.pop("XMPPCOMP_UNSET", None)
        e = self.configExit(
            "--config", self.write("c.toml", FULL),
            "--secret-env", "XMPPCOMP_UNSET",
        )
        self.assertIn("XMPPCOMP_UNSET is unset or empty", str(e))

    def test_noSecretOptions(self) -> None:
        """
        No option takes a secret itself: only where it is.
        """
        names = [
            p[0] for cls in tap.Options.__mro__ for p in vars(cls).get("optParameters", [])
        ]
        self.assertIn("config", names)
        self.assertEqual(
            sorted(name for name in names if "secret" in name or "password" in name),
            ["secret-env", "secret-file"],
        )
        self.assertRaises(usage.UsageError, self.parse, "--secret", "hunter2")

    def test_help(self) -> None:
        """
        The help text lists the options and explains the embedded router.
        """
        text = str(tap.Options())
        for option in (
            "--config", "--server", "--hostname", "--secret-file", "--pinned", "--max-queued",
            "--http-listen", "--http-mode", "--http-directory", "--http-upstream",
            "--no-httpauth", "--no-xtls", "--xtls-certificate", "--xtls-key", "--xtls-trust",
        ):
            self.assertIn(option, text)
        self.assertIn("embedded router", text)

    def test_httpOptions(self) -> None:
        """
        The C{--http-*} options win over C{[httpauth]}; a relative
        C{--http-directory} resolves against the current directory;
        C{--no-httpauth} turns the confirmer off.
        """
        os.makedirs(self.path("site"))
        cwd = os.getcwd()
        os.chdir(self.directory)
        self.addCleanup(os.chdir, cwd)
        self.write(
            "c.toml",
            '[httpauth]\nlisten = "tcp:8080"\nmode = "proxy"\n'
            'upstream = "http://127.0.0.1:9000"\ntimeout = 5\n',
        )
        config = self.parse("--config", self.path("c.toml")).componentConfig
        self.assertEqual(
            (config.httpauth.mode, config.httpauth.upstream, config.httpauth.timeout),
            ("proxy", "http://127.0.0.1:9000", 5.0),
        )
        config = self.parse(
            "--config", self.path("c.toml"),
            "--http-listen", "tcp:0:interface=127.0.0.1",
            "--http-upstream", "https://upstream.example:8443/app",
        ).componentConfig
        self.assertEqual(config.httpauth.listen, "tcp:0:interface=127.0.0.1")
        self.assertEqual(config.httpauth.upstream, "https://upstream.example:8443/app")
        config = self.parse("--http-mode", "protect", "--http-directory", "site").componentConfig
        self.assertEqual(config.httpauth.directory, self.path("site"))
        config = self.parse("--http-mode", "forward-auth").componentConfig
        self.assertEqual(config.httpauth.mode, "forward-auth")
        self.assertTrue(config.httpauth.enabled)
        self.assertFalse(self.parse("--no-httpauth").componentConfig.httpauth.enabled)

    def test_httpOptionErrors(self) -> None:
        """
        Bad C{--http-*} values end the process with a message naming the
        option and the fix.
        """
        e = self.configExit("--http-listen", "tcp:eighty")
        self.assertIn("--http-listen: 'tcp:eighty' is not a valid server endpoint", str(e))
        e = self.configExit("--http-mode", "proxy")
        self.assertIn("httpauth.upstream is missing", str(e))
        e = self.configExit("--http-mode", "guard")
        self.assertIn('--http-mode must be "protect"', str(e))
        e = self.configExit("--http-upstream", "http://x")
        self.assertIn("--http-upstream: upstream is only used in proxy mode", str(e))
        e = self.configExit("--http-directory", self.path("nope"))
        self.assertIn("does not exist", str(e))
        e = self.configExit("--http-mode", "proxy", "--http-upstream", "ftp://x")
        self.assertIn("not an http:// or https:// URL", str(e))

    def test_xtlsOptions(self) -> None:
        """
        C{--xtls-certificate}, C{--xtls-key} and C{--xtls-trust} give the
        XTLS certificate and trust; C{--xtls-certificate} replaces the
        file's certificate I{and} key; C{--no-xtls} turns XTLS off.
        """
        certificate, key = writePem(CA.issue(dnsNames=["component.localhost"], client=True), self.directory)
        other, otherKey = writePem(CA.issue(dnsNames=["component.localhost"], client=True), self.directory)
        config = self.parse(
            "--xtls-certificate", certificate, "--xtls-key", key, "--xtls-trust", self.path("ca.pem")
        ).componentConfig
        self.assertEqual(
            config.xtls, XTLSConfig(certificate=certificate, key=key, trust=self.path("ca.pem"))
        )
        self.write(
            "c.toml",
            '[xtls]\ncertificate = "%s"\nkey = "%s"\ntrust = "ca.pem"\n' % (other, otherKey),
        )
        self.assertEqual(self.parse("--config", self.path("c.toml")).componentConfig.xtls.key, otherKey)
        # The file's key does not belong to this certificate: it goes too.
        both = open(certificate).read() + open(key).read()
        self.write("both.pem", both)
        config = self.parse(
            "--config", self.path("c.toml"), "--xtls-certificate", self.path("both.pem")
        ).componentConfig
        self.assertEqual((config.xtls.certificate, config.xtls.key), (self.path("both.pem"), None))
        self.assertEqual(config.xtls.trust, self.path("ca.pem"))
        e = self.configExit(
            "--xtls-certificate", certificate, "--xtls-key", otherKey,
            "--xtls-trust", self.path("ca.pem"),
        )
        self.assertIn("--xtls-key", str(e))
        e = self.configExit("--xtls-certificate", certificate, "--xtls-key", key)
        self.assertIn("xtls.trust is missing", str(e))
        self.assertFalse(self.parse("--no-xtls").componentConfig.xtls.enabled)


class PluginTests(SynchronousTestCase):
    """
    The C{xmppcomp} plugin is a lazy L{ServiceMaker} for L{xmppcomp.tap}.
    """

    def test_serviceMaker(self) -> None:
        """
        The plugin module defines C{xmppcomp}, pointing at L{xmppcomp.tap}.
        """
        from twisted.plugins import xmppcomp_plugin

        maker = xmppcomp_plugin.xmppcomp
        self.assertEqual(maker.tapname, "xmppcomp")
        self.assertEqual(maker.module, "xmppcomp.tap")
        self.assertTrue(IServiceMaker.providedBy(maker))
        self.assertTrue(IPlugin.providedBy(maker))
        self.assertIs(maker.options, tap.Options)
        self.assertIs(maker.makeService, tap.makeService)


class ServiceTreeTests(_FilesMixin, SynchronousTestCase):
    """
    L{tap.makeService} builds the tree without starting anything.
    """

    def test_withServer(self) -> None:
        """
        With a server: a L{Component} with the configured settings and disco
        handlers for its hostnames, no embedded router.
        """
        options = tap.Options()
        options.parseOptions(["--config", self.write("c.toml", FULL)])
        top = self.makeService(options)
        self.assertIsInstance(top, services.ComponentServices)
        self.assertRaises(KeyError, top.getServiceNamed, services.EMBEDDED_SERVICE)
        component = top.getServiceNamed(services.COMPONENT_SERVICE)
        self.assertIs(type(component), Component)
        self.assertIs(list(top)[0], component)
        self.assertEqual(component.server, "tcp:host=127.0.0.1:port=5348")
        self.assertEqual(component.serverDomain, "example.net")
        self.assertEqual(component.hostnames, ["comp.example.net", "chat.comp.example.net"])
        self.assertEqual(component.identity, "comp.example.net")
        self.assertEqual(component.secret, "the component's secret")
        self.assertIsNotNone(component.clientCertificate)
        self.assertEqual(component.maxQueued, 10)
        self.assertEqual(component.iqTimeout, 2.5)
        self.assertEqual(component.fatalRetryDelay, 60.0)
        self.assertFalse(component.running)
        kinds = [type(handler) for handler in component.handlers]
        # The XTLS endpoint before the confirmer, which asks through it.
        self.assertEqual(kinds, [DiscoHandler, ComponentIdentity, XTLSHandler, ConfirmationRequester])
        self.assertEqual(
            component.handlers[1].hostnames, {"comp.example.net", "chat.comp.example.net"}
        )
        self.assertEqual(component.handlers[3].fromJid.full(), "comp.example.net")
        self.assertIs(component.handlers[3].xtls, component.handlers[2])
        self.assertEqual(component.handlers[3].tunnelIdleTimeout, 45)
        # No [xtls] certificate with a server: the endpoint is inactive.
        self.assertFalse(component.handlers[2].configuration.active)
        listener = top.getServiceNamed(services.HTTPAUTH_SERVICE)
        self.assertIsInstance(listener, HTTPAuthListener)
        self.assertEqual(listener.description, "tcp:8080")
        self.assertFalse(listener.running)
        self.assertRaises(KeyError, top.getServiceNamed, "demo-agent")

    def tunnelWarnings(self, extra: str, requireXTLS: str = "true") -> list[str]:
        """
        The warnings about tunnels logged while building the tree of an
        embedded component whose access rule has C{require_xtls =
        REQUIREXTLS}, with C{extra} TOML after it.
        """
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        text = '[[httpauth.rules]]\nprefix = "/"\nanyone = true\nrequire_xtls = ' + requireXTLS + "\n" + extra
        options = tap.Options()
        options.parseOptions(["--config", self.write("c.toml", text)])
        self.makeService(options)
        return [formatEvent(e) for e in events if "max_tunnels" in (e.get("log_format") or "")]

    def test_fewTunnelsWarned(self) -> None:
        """
        Access rules that require XTLS with C{[xtls.limits] max_tunnels}
        below C{[httpauth.limits] pending_total} (the defaults, 64 and 100)
        log a warning that names both keys and the fix.
        """
        [warning] = self.tunnelWarnings("")
        self.assertIn("[xtls.limits] max_tunnels (64) is below the 100 confirmations through XTLS that may "
                      "wait at once ([httpauth.limits] pending_total is 100", warning)
        self.assertIn("Raise max_tunnels to at least 100", warning)
        [warning] = self.tunnelWarnings("[httpauth.limits]\npending_total = 500\n[xtls.limits]\nmax_tunnels = 200\n")
        self.assertIn("max_tunnels (200) is below the 500 confirmations", warning)
        # A domain is as wide as every JID.
        [warning] = self.tunnelWarnings("", '["example.org"]')
        self.assertIn("Raise max_tunnels to at least 100", warning)
        # Bare JIDs: one tunnel each (the two, and the embedded demo's user).
        [warning] = self.tunnelWarnings("[xtls.limits]\nmax_tunnels = 2\n", '["a@example.org", "b@example.org"]')
        self.assertIn("max_tunnels (2) is below the 3 confirmations", warning)
        self.assertIn("require XTLS of 3 JIDs", warning)

    def test_enoughTunnelsQuiet(self) -> None:
        """
        No warning when C{max_tunnels} is at least C{pending_total}, or when
        the rules require XTLS of a few bare JIDs only (one tunnel each), as
        the embedded demo's do (its XTLS user), or of none.
        """
        self.assertEqual(self.tunnelWarnings("[xtls.limits]\nmax_tunnels = 100\n"), [])
        self.assertEqual(self.tunnelWarnings("", '["a@example.org", "b@example.org"]'), [])
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        options = tap.Options()
        options.parseOptions(["--config", self.write("plain.toml", '[[httpauth.rules]]\nprefix = "/"\nanyone = true\n')])
        self.makeService(options)
        self.assertEqual([e for e in events if "max_tunnels" in (e.get("log_format") or "")], [])

    def test_withoutServer(self) -> None:
        """
        Without a server: the embedded router first, then a component wired
        to it; nothing listens yet.
        """
        options = tap.Options()
        options.parseOptions(["--hostname", "a.localhost", "--hostname", "b.localhost"])
        top = self.makeService(options)
        children = list(top)
        embedded = top.getServiceNamed(services.EMBEDDED_SERVICE)
        component = top.getServiceNamed(services.COMPONENT_SERVICE)
        self.assertEqual(children[:2], [embedded, component])
        self.assertIsInstance(embedded, EmbeddedRouter)
        self.assertIsInstance(component, EmbeddedComponent)
        self.assertEqual(embedded.hostnames, ("a.localhost", "b.localhost"))
        self.assertEqual(component.secret, embedded.secret)
        self.assertEqual(component.serverDomain, "localhost")
        self.assertIsNone(embedded.port)
        self.assertEqual(len(component.handlers), 4)
        xtls = component.handlers[2]
        self.assertIsInstance(xtls, XTLSHandler)
        self.assertIs(component.handlers[3].xtls, xtls)
        self.assertTrue(xtls.configuration.active)
        agent = top.getServiceNamed("demo-agent")
        self.assertIsInstance(agent, EmbeddedComponent)
        self.assertEqual(agent.hostnames, ["agent.localhost"])
        self.assertIn("agent.localhost", embedded.authorization())

    def test_demoAgentXTLSLimits(self) -> None:
        """
        The demo agent's XTLS endpoint has the component's C{[xtls.limits]}
        (the agent stands for the users its tunnels go to: raising the
        limits raises both ends').
        """
        config = self.write("c.toml", "[xtls.limits]\nmax_tunnels = 500\nmax_tunnels_per_peer = 300\n")
        options = tap.Options()
        options.parseOptions(["--config", config])
        top = self.makeService(options)
        [xtls] = [h for h in top.getServiceNamed("demo-agent").handlers if isinstance(h, XTLSHandler)]
        limits = (xtls.configuration.maxTunnels, xtls.configuration.maxTunnelsPerPeer)
        self.assertEqual(limits, (500, 300))

    def test_addServicesDisabled(self) -> None:
        """
        With C{--no-httpauth} and C{--no-xtls}, L{services.addServices} adds
        nothing: no listener, no handler; the demo agent still runs (on
        the embedded router) but gives no hints.
        """
        options = tap.Options()
        options.parseOptions(["--no-httpauth", "--no-xtls"])
        top = self.makeService(options)
        component = top.getServiceNamed(services.COMPONENT_SERVICE)
        self.assertEqual(
            [type(handler) for handler in component.handlers], [DiscoHandler, ComponentIdentity]
        )
        self.assertRaises(KeyError, top.getServiceNamed, services.HTTPAUTH_SERVICE)
        self.assertEqual(
            [type(child).__name__ for child in top],
            ["EmbeddedRouter", "EmbeddedComponent", "_ReadyLog", "EmbeddedComponent"],
        )

    def test_secretGone(self) -> None:
        """
        A secret file that disappeared between option checking and
        L{tap.makeService} ends twistd with the reason, not a traceback.
        """
        options = tap.Options()
        options.parseOptions(["--config", self.write("c.toml", FULL)])
        os.remove(self.path("comp.secret"))
        e = self.assertRaises(SystemExit, tap.makeService, options)
        self.assertIn("cannot read secret file", str(e))


class NoArgumentsTests(TestCase):
    """
    C{twistd -n xmppcomp} with no options runs: an embedded router and a
    component that answers service discovery.
    """

    timeout = 30

    @defer.inlineCallbacks
    def test_runs(self) -> Any:
        """
        The service of no options starts with the real reactor; the
        component connects and binds component.localhost; a second
        component gets its disco#info; the logs say what runs, never the
        secret; everything stops and the private directory is removed.
        """
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        options = tap.Options()
        options.parseOptions(["--http-listen", "tcp:0:interface=127.0.0.1"])
        top = tap.makeService(options)
        self.addCleanup(top.process.stop)
        top.startService()
        self.addCleanup(lambda: top.stopService() if top.running else None)
        embedded = top.getServiceNamed(services.EMBEDDED_SERVICE)
        component = top.getServiceNamed(services.COMPONENT_SERVICE)
        yield component.whenReady()
        directory = embedded.directory
        self.assertTrue(os.path.isdir(directory))

        probe = Component(
            "tcp:host=127.0.0.1:port=%d" % (embedded.port,),
            embedded.domain,
            ["probe.component.localhost"],
            secret=embedded.secret,
            identity=embedded.identity,
            trust=embedded.trust,
            reactor=reactor,
        )
        probe.startService()
        self.addCleanup(probe.stopService)
        yield probe.whenReady()
        iq = IQ(None, "get")
        iq["from"] = "probe.component.localhost"
        iq["to"] = "component.localhost"
        iq.addElement(("http://jabber.org/protocol/disco#info", "query"))
        answer = yield probe.request(iq)
        self.assertEqual(answer["from"], "component.localhost")
        identities = list(answer.query.elements("http://jabber.org/protocol/disco#info", "identity"))
        self.assertEqual([(i["category"], i["type"]) for i in identities], [("component", "generic")])
        yield probe.stopService()

        yield top.stopService()
        self.assertFalse(os.path.exists(directory))
        self.assertIsNone(embedded.port)
        text = "\n".join(formatEvent(event) for event in events)
        self.assertIn("embedded router for localhost on 127.0.0.1:", text)
        self.assertRegex(text, r"component component\.localhost connected and bound \(SCRAM-SHA-\d+(-PLUS)?, TLSv1\.[23]\)")
        self.assertIn("Stop it with Ctrl-C", text)
        self.assertNotIn(embedded.secret, text)


class _NotRunning:
    """
    A reactor that is not running yet: it keeps what it should call once
    it runs.
    """

    def __init__(self) -> None:
        self.whenRunning: list[Any] = []

    def callWhenRunning(self, f: Any) -> None:
        self.whenRunning.append(f)


class PluginProcessTests(SynchronousTestCase):
    """
    L{PluginProcess}: what the plugins set for their whole process,
    made by their C{makeService} only. The garbage collector is tuned
    while the plugin's service runs: the objects made at startup frozen
    once the reactor runs, unfrozen when it stops, unless
    C{--no-gc-tuning}.
    """

    def setUp(self) -> None:
        import gc

        gc.unfreeze()
        self.addCleanup(gc.unfreeze)
        self.addCleanup(gc.set_threshold, *gc.get_threshold())

    def check(self, service: Any) -> None:
        """
        Starting C{service} (whose C{process} is that of a plugin) tunes
        the collector; stopping it undoes that and takes the log level
        out.
        """
        import gc

        self.assertIsInstance(service.process, PluginProcess)
        self.addCleanup(service.process.stop)
        self.assertTrue(service.process.logFilter.installed)
        before = gc.get_threshold()
        reactor = service.process.reactor = _NotRunning()
        service.startService()
        self.assertEqual(gc.get_threshold(), GC_THRESHOLDS)
        self.assertEqual(gc.get_freeze_count(), 0)
        self.assertEqual(reactor.whenRunning, [gc.freeze])
        reactor.whenRunning.pop()()
        self.assertGreater(gc.get_freeze_count(), 0)
        service.stopService()
        self.assertEqual(gc.get_freeze_count(), 0)
        self.assertEqual(gc.get_threshold(), before)
        self.assertFalse(service.process.logFilter.installed)

    def test_componentTree(self) -> None:
        """
        The tree of C{twistd xmppcomp}.
        """
        top = services.ComponentServices()
        top.process = PluginProcess("info")
        top.process.begin()
        self.check(top)

    def test_makeService(self) -> None:
        """
        L{tap.makeService} gives its tree the plugin's settings: the log
        level of C{--log-level}, in force at once, and the tuning.
        """
        options = tap.Options()
        options.parseOptions(["--no-httpauth", "--no-xtls", "--log-level", "warn"])
        top = tap.makeService(options)
        self.addCleanup(top.process.stop)
        self.assertEqual(top.process.logFilter.minimum, "warn")
        self.assertTrue(top.process.gcTuning)

    def test_offByOption(self) -> None:
        """
        With C{--no-gc-tuning}, the collector is left as it is.
        """
        import gc

        options = tap.Options()
        options.parseOptions(["--no-gc-tuning"])
        process = PluginProcess.fromOptions(options)
        self.assertFalse(process.gcTuning)
        reactor = process.reactor = _NotRunning()
        before = gc.get_threshold()
        process.begin()
        self.addCleanup(process.stop)
        process.start()
        self.assertEqual(gc.get_threshold(), before)
        self.assertEqual(reactor.whenRunning, [])
        process.stop()
        self.assertEqual(gc.get_threshold(), before)
        self.assertFalse(process.logFilter.installed)

    def test_libraryTreeSetsNothing(self) -> None:
        """
        A tree built by L{services.serviceFromConfig} (the library's way, no
        plugin) tunes nothing and filters no log level when it starts.
        """
        import gc

        top = services.ComponentServices()
        self.assertIsNone(top.process)
        before = gc.get_threshold()
        top.startService()
        self.assertEqual(gc.get_threshold(), before)
        self.assertEqual(gc.get_freeze_count(), 0)
        top.stopService()


class MovedNamesTests(SynchronousTestCase):
    """
    The names that moved out of L{xmppcomp.tap} (issue 18) still import
    from it, as the same objects.
    """

    def test_oldPaths(self) -> None:
        """
        Each moved name of C{xmppcomp.tap} is the one of its new module.
        """
        from xmppcomp import _options, _process, disco, httpauth, metrics

        homes = {
            services: [
                "COMPONENT_SERVICE",
                "EMBEDDED_SERVICE",
                "HTTPAUTH_SERVICE",
                "ComponentServices",
                "addHTTPAuth",
                "addServices",
                "addXTLS",
                "makeComponent",
                "serviceFromConfig",
            ],
            disco: ["addDiscovery"],
            httpauth: ["ConnectionTracker", "HTTPAuthListener", "isPublic"],
            metrics: ["withMetrics"],
            _process: ["GC_THRESHOLDS", "PluginProcess"],
            _options: ["GC_TUNING_FLAG"],
        }
        for home, names in homes.items():
            for name in names:
                self.assertIs(getattr(tap, name), getattr(home, name), name)
                self.assertIn(name, tap.__all__)
