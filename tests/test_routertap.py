# -*- test-case-name: tests.test_routertap -*-
"""
Tests for L{xmppcomp.routertap} (C{twistd xmppcomp-router}) and its plugin.
"""

from __future__ import annotations

import gc
import os
import shutil
from typing import Any

from twisted.application.service import IService, IServiceMaker
from twisted.internet import defer
from twisted.plugin import IPlugin
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.test_config import EXAMPLE, makeRouterFiles
from tests.test_tap import assertConfigExit
from xmppcomp import routertap
from xmppcomp._process import GC_THRESHOLDS
from xmppcomp.config import RouterLimits

LOOPBACK = "tcp:0:interface=127.0.0.1"


class _ExampleMixin:
    """
    The example configuration copied next to the files it names.
    """

    mktemp: Any

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        self.paths = makeRouterFiles(self.directory)
        self.configPath = os.path.join(self.directory, "router.toml")
        shutil.copy(EXAMPLE, self.configPath)

    def parse(self, *argv: str) -> routertap.Options:
        options = routertap.Options()
        options.parseOptions(list(argv))
        return options


class OptionsTests(_ExampleMixin, SynchronousTestCase):
    """
    L{routertap.Options} builds a checked L{RouterConfig} from the file and
    the options, options winning.
    """

    def configExit(self, *argv: str) -> str:
        """
        Parse C{argv}, which the configuration cannot use (see
        L{tests.test_tap.assertConfigExit}).
        """
        return assertConfigExit(self, "twistd xmppcomp-router", self.parse, *argv)

    def test_configFile(self) -> None:
        """
        C{--config} alone gives the file's configuration.
        """
        config = self.parse("--config", self.configPath).routerConfig
        self.assertEqual(config.domain, "example.net")
        self.assertEqual(config.listen, ("tcp:5348:interface=127.0.0.1",))
        self.assertEqual(config.certificate, self.paths["router.pem"])
        self.assertEqual(config.limits, RouterLimits())

    def test_repeatableListen(self) -> None:
        """
        C{--listen} and C{--accept-listen} may be repeated; given, they
        replace the file's lists.
        """
        config = self.parse(
            "--config",
            self.configPath,
            "--listen",
            "tcp:1:interface=127.0.0.1",
            "--listen",
            "tcp6:2:interface=\\:\\:1",
            "--accept-listen",
            "tcp:3",
            "--accept-listen",
            "tcp:4",
        ).routerConfig
        self.assertEqual(
            config.listen, ("tcp:1:interface=127.0.0.1", "tcp6:2:interface=\\:\\:1")
        )
        self.assertEqual(config.acceptListen, ("tcp:3", "tcp:4"))

    def test_optionsOverrideFile(self) -> None:
        """
        Each option given wins over the file; the rest comes from the file.
        """
        other = os.path.join(self.directory, "other")
        os.makedirs(other)
        otherPaths = makeRouterFiles(other)
        config = self.parse(
            "--config",
            self.configPath,
            "--domain",
            "other.example",
            "--credentials",
            otherPaths["credentials.json"],
            "--certificate",
            otherPaths["router.pem"],
            "--key",
            otherPaths["router.key"],
            "--client-cas",
            otherPaths["clients-ca.pem"],
            "--max-sessions",
            "7",
            "--max-names-per-session",
            "8",
            "--max-stanzas-per-second",
            "9",
            "--max-stanza-size",
            "20000",
            "--negotiation-timeout",
            "2.5",
            "--max-auth-attempts",
            "1",
            "--close-timeout",
            "4",
            "--allow-plaintext",
        ).routerConfig
        self.assertEqual(config.domain, "other.example")
        self.assertEqual(config.credentials, otherPaths["credentials.json"])
        self.assertEqual(config.certificate, otherPaths["router.pem"])
        self.assertEqual(config.key, otherPaths["router.key"])
        self.assertEqual(config.clientCAs, otherPaths["clients-ca.pem"])
        self.assertEqual(config.limits, RouterLimits(7, 8, 9, 20000, 2.5, 1, 4.0))
        self.assertTrue(config.allowPlaintext)
        # Not overridden: from the file.
        self.assertEqual(config.listen, ("tcp:5348:interface=127.0.0.1",))
        self.assertEqual(list(config.acceptSecrets), ["legacy.example.net"])

    def test_relativeOptionPaths(self) -> None:
        """
        Relative paths given as options resolve against the current
        directory, not the file's.
        """
        cwd = os.getcwd()
        os.chdir(os.path.dirname(self.directory))
        self.addCleanup(os.chdir, cwd)
        base = os.path.basename(self.directory)
        config = self.parse(
            "--config",
            self.configPath,
            "--certificate",
            os.path.join(base, "router.pem"),
        ).routerConfig
        self.assertEqual(config.certificate, self.paths["router.pem"])

    def test_withoutFile(self) -> None:
        """
        Without C{--config}, options alone make a configuration.
        """
        config = self.parse(
            "--domain",
            "example.net",
            "--listen",
            LOOPBACK,
            "--credentials",
            self.paths["credentials.json"],
            "--certificate",
            self.paths["router.pem"],
            "--key",
            self.paths["router.key"],
        ).routerConfig
        self.assertEqual(config.domain, "example.net")
        self.assertEqual(config.listen, (LOOPBACK,))
        self.assertEqual(config.credentials, self.paths["credentials.json"])

    def test_nothingGiven(self) -> None:
        """
        Neither C{--config} nor C{--domain}: a usage error saying what to
        give.
        """
        error = self.assertRaises(usage.UsageError, self.parse)
        self.assertIn("--config FILE", str(error))
        self.assertIn("--domain DOMAIN", str(error))

    def test_configErrorExits(self) -> None:
        """
        A configuration error ends the process with its message alone
        (L{ConfigExit}), naming the file and key, not with a usage error
        and the option list.
        """
        with open(self.configPath, "a") as f:
            f.write("max_session = 3\n")
        error = self.configExit("--config", self.configPath)
        self.assertIn(self.configPath, error)
        self.assertIn("unknown key 'limits.max_session'", error)

    def test_malformedCredentials(self) -> None:
        """
        A credentials file that is not well formed is refused when the
        options are checked, naming the configuration file, the key, the
        credentials file and the fix (before, the router's start failed
        with a traceback).
        """
        with open(self.paths["credentials.json"], "w") as f:
            f.write('{"version": 1, "identities": {"comp.example.net": {}}}')
        error = self.configExit("--config", self.configPath)
        self.assertEqual(
            error,
            f"twistd xmppcomp-router: {self.configPath}: credentials: "
            f"{self.paths['credentials.json']}: identity 'comp.example.net': "
            "must be a non-empty object of hash names; fix it there, or move "
            "the file away and add the domains again (xmppcomp-credentials "
            "FILE add DOMAIN)",
        )

    def test_optionErrorNamesOption(self) -> None:
        """
        A bad value given as an option is reported with the option's name:
        a value of the wrong type is a usage error, a value the
        configuration cannot use ends the process with its message alone.
        """
        message = self.configExit("--config", self.configPath, "--max-sessions", "0")
        self.assertIn("--max-sessions must be at least 1", message)
        error = self.assertRaises(
            usage.UsageError,
            self.parse,
            "--config",
            self.configPath,
            "--max-sessions",
            "many",
        )
        self.assertEqual(
            str(error), "--max-sessions must be a whole number, not 'many'"
        )
        error = self.assertRaises(
            usage.UsageError,
            self.parse,
            "--config",
            self.configPath,
            "--negotiation-timeout",
            "soon",
        )
        self.assertIn("--negotiation-timeout must be a number of seconds", str(error))
        message = self.configExit("--config", self.configPath, "--listen", "tcp:nope")
        self.assertIn("--listen[0]", message)
        self.assertIn("not a valid server endpoint string", message)

    def test_missingCertificateWithoutFile(self) -> None:
        """
        Options alone without a certificate are refused unless
        C{--allow-plaintext} is given.
        """
        argv = ["--domain", "example.net", "--credentials", self.paths["credentials.json"]]
        message = self.configExit(*argv)
        self.assertTrue(message.startswith("twistd xmppcomp-router: tls.certificate is missing"), message)
        config = self.parse(*argv, "--allow-plaintext").routerConfig
        self.assertTrue(config.allowPlaintext)

    def test_noSecretOptions(self) -> None:
        """
        No option takes a secret or a password.
        """
        names = [
            option[0]
            for cls in routertap.Options.__mro__
            for table in ("optParameters", "optFlags")
            for option in vars(cls).get(table, [])
        ]
        self.assertIn("no-gc-tuning", names)
        for name in names:
            self.assertNotIn("secret", name)
            self.assertNotIn("password", name)

    def test_help(self) -> None:
        """
        The help text lists the options and says where secrets come from.
        """
        text = str(routertap.Options())
        for option in ("--config", "--listen", "--accept-listen", "--max-sessions"):
            self.assertIn(option, text)
        self.assertIn("WITHOUT TLS", text)


class PluginTests(SynchronousTestCase):
    """
    The C{xmppcomp-router} plugin is a lazy L{ServiceMaker} for
    L{xmppcomp.routertap}.
    """

    def test_serviceMaker(self) -> None:
        """
        The plugin module defines C{xmppcompRouter}, pointing at
        L{xmppcomp.routertap}.
        """
        from twisted.plugins import xmppcomp_plugin

        maker = xmppcomp_plugin.xmppcompRouter
        self.assertEqual(maker.tapname, "xmppcomp-router")
        self.assertEqual(maker.module, "xmppcomp.routertap")
        self.assertTrue(IServiceMaker.providedBy(maker))
        self.assertTrue(IPlugin.providedBy(maker))
        self.assertIs(maker.options, routertap.Options)
        self.assertIs(maker.makeService, routertap.makeService)

    def test_discoverable(self) -> None:
        """
        L{getPlugins} finds C{xmppcomp-router} among the service makers when
        the project is on C{sys.path}.
        """
        from twisted import plugins
        from twisted.plugin import getPlugins

        here = os.path.join(os.path.dirname(os.path.dirname(__file__)), "twisted", "plugins")
        if os.path.abspath(here) not in [os.path.abspath(p) for p in plugins.__path__]:
            raise self.skipTest(f"{here} is not on twisted.plugins.__path__")
        names = {maker.tapname for maker in getPlugins(IServiceMaker, plugins)}
        self.assertIn("xmppcomp-router", names)
        self.assertIn("xmppcomp", names)


class MakeServiceTests(_ExampleMixin, TestCase):
    """
    L{routertap.makeService} builds the router service, which listens.
    """

    @defer.inlineCallbacks
    def test_exampleServiceListens(self) -> Any:
        """
        The example's configuration with loopback port-0 endpoints gives a
        router service that listens on loopback for both kinds of component
        and stops.
        """
        from xmppcomp.router.service import RouterService

        options = self.parse(
            "--config",
            self.configPath,
            "--listen",
            LOOPBACK,
            "--accept-listen",
            LOOPBACK,
        )
        service = routertap.makeService(options)
        self.addCleanup(service.process.stop)
        self.assertIsInstance(service, RouterService)
        self.assertTrue(IService.providedBy(service))
        self.assertIs(service.config, options.routerConfig)
        # Startup objects are frozen once the reactor runs, and unfrozen
        # when it stops (PluginProcess); its log level is in force
        # until then.
        self.assertEqual(service.process.logFilter.minimum, "info")
        self.assertTrue(service.process.logFilter.installed)
        whenRunning: list[Any] = []
        service.process.reactor = type("NotRunning", (), {"callWhenRunning": staticmethod(whenRunning.append)})()
        self.addCleanup(gc.unfreeze)
        self.addCleanup(gc.set_threshold, *gc.get_threshold())
        service.startService()
        self.assertEqual(whenRunning, [gc.freeze])
        self.assertEqual(gc.get_threshold(), GC_THRESHOLDS)
        stopped = False

        def stop() -> Any:
            if not stopped:
                return service.stopService()

        self.addCleanup(stop)
        self.assertTrue(service.running)
        hosts = [port.getHost() for port in service.ports]
        self.assertEqual(len(hosts), 2)
        for host in hosts:
            self.assertEqual(host.host, "127.0.0.1")
            self.assertNotEqual(host.port, 0)
        gc.freeze()
        yield service.stopService()
        stopped = True
        self.assertEqual(gc.get_freeze_count(), 0)
        self.assertFalse(service.process.logFilter.installed)
        self.assertFalse(service.running)
        self.assertEqual(service.ports, [])
