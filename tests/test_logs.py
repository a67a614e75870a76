# -*- test-case-name: tests.test_logs -*-
"""
Tests for L{xmppcomp.logs}, the JSON log output of C{twistd
--logger=xmppcomp.logs.json}, and a check that the main job never logs
its secrets, in any event's text or fields.
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any

from twisted.application.app import AppLogger
from twisted.internet import defer
from twisted.logger import (
    ILogObserver,
    LogLevel,
    Logger,
    eventAsJSON,
    eventsFromJSONLogFile,
    formatEvent,
)
from twisted.python.failure import Failure
from twisted.scripts.twistd import ServerOptions
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from xmppcomp import logs, tap

from tests.test_mainjob import DEMO, _MainJobMixin


def emit(observer: Any, format: str, **fields: Any) -> dict[str, Any]:
    """
    Log one event to C{observer} through a L{Logger}; return the event.
    """
    events: list[dict[str, Any]] = []

    def both(event: dict[str, Any]) -> None:
        events.append(event)
        observer(event)

    Logger(namespace="tests.logs", observer=both).info(format, **fields)
    return events[0]


class JSONLinesObserverTests(SynchronousTestCase):
    """
    Tests for L{logs.JSONLinesObserver}.
    """

    def test_interface(self) -> None:
        """
        It is an L{ILogObserver}.
        """
        self.assertTrue(verifyObject(ILogObserver, logs.jsonObserver(io.StringIO())))

    def test_oneLinePerEvent(self) -> None:
        """
        Each event is one line of JSON (no record separator) with the
        event's fields, its namespace and level, and the formatted text as
        C{log_text}.
        """
        out = io.StringIO()
        observer = logs.jsonObserver(out)
        emit(observer, "component {name} bound\nover {how}", name="a.example", how="xep0225")
        emit(observer, "second")
        lines = out.getvalue().split("\n")
        self.assertEqual(lines[-1], "")
        first, second = (json.loads(line) for line in lines[:-1])
        self.assertEqual(first["name"], "a.example")
        self.assertEqual(first["how"], "xep0225")
        self.assertEqual(first["log_namespace"], "tests.logs")
        self.assertEqual(first["log_level"]["name"], "info")
        self.assertEqual(first["log_format"], "component {name} bound\nover {how}")
        self.assertEqual(first["log_text"], "component a.example bound\nover xep0225")
        self.assertIsInstance(first["log_time"], float)
        self.assertEqual(second["log_text"], "second")
        self.assertNotIn("\x1e", out.getvalue())

    def test_readBack(self) -> None:
        """
        L{eventsFromJSONLogFile} reads the lines back into events that
        format as the originals.
        """
        out = io.StringIO()
        emit(logs.jsonObserver(out), "hello {who!r}", who="world")
        [event] = list(eventsFromJSONLogFile(io.StringIO(out.getvalue())))
        self.assertEqual(formatEvent(event), "hello 'world'")
        self.assertEqual(event["log_level"], LogLevel.info)

    def test_unserialisable(self) -> None:
        """
        Fields JSON cannot hold do not stop the line: objects become
        C{unpersistable}, and the text still has their formatted value.
        """
        out = io.StringIO()
        emit(logs.jsonObserver(out), "object {o}", o=object.__new__(_Thing))
        line = json.loads(out.getvalue())
        self.assertEqual(line["o"], {"unpersistable": True})
        self.assertEqual(line["log_text"], "object <a thing>")

    def test_failure(self) -> None:
        """
        An event with a failure carries its traceback as
        C{log_traceback}.
        """
        out = io.StringIO()
        observer = logs.jsonObserver(out)
        try:
            1 / 0
        except ZeroDivisionError:
            Logger(namespace="tests.logs", observer=observer).failure("it broke")
        line = json.loads(out.getvalue())
        self.assertEqual(line["log_text"], "it broke")
        self.assertIn("ZeroDivisionError", line["log_traceback"])
        self.assertIn("1 / 0", line["log_traceback"])

    def test_eventUnchanged(self) -> None:
        """
        The event other observers see is not changed.
        """
        event = emit(logs.jsonObserver(io.StringIO()), "x {y}", y=1)
        self.assertNotIn("log_text", event)
        self.assertNotIn("log_flattened", event)

    def test_bytesFile(self) -> None:
        """
        A binary file gets UTF-8.
        """
        out = io.BytesIO()
        emit(logs.jsonObserver(out), "caf\N{LATIN SMALL LETTER E WITH ACUTE}")
        self.assertEqual(json.loads(out.getvalue().decode("utf-8"))["log_text"], "caf\xe9")


class _Thing:
    def __str__(self) -> str:
        return "<a thing>"


class TwistdLoggerTests(SynchronousTestCase):
    """
    C{twistd --logger=xmppcomp.logs.json}: the factory as twistd uses it.
    """

    def test_standardOutput(self) -> None:
        """
        L{logs.json} takes no argument and writes to standard output.
        """
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        observer = logs.json()
        self.assertTrue(verifyObject(ILogObserver, observer))
        emit(observer, "to stdout")
        self.assertEqual(json.loads(out.getvalue())["log_text"], "to stdout")

    def test_twistdOption(self) -> None:
        """
        twistd resolves C{--logger=xmppcomp.logs.json} to L{logs.json},
        and its L{AppLogger} calls it for the observer it starts logging
        to.
        """
        options = ServerOptions()
        options.parseOptions(["--logger=xmppcomp.logs.json"])
        self.assertIs(options["logger"], logs.json)
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        observer = AppLogger(options)._observerFactory()
        self.assertIsInstance(observer, logs.JSONLinesObserver)


class LogLevelTests(SynchronousTestCase):
    """
    L{logs.Logger} drops the events below the level of the
    L{logs.LogLevelFilter} installed, before any observer sees them.
    """

    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.log = logs.Logger(namespace="tests.levels", observer=self.events.append)

    def levels(self) -> list[str]:
        return [event["log_level"].name for event in self.events]

    def install(self, level: str) -> logs.LogLevelFilter:
        """
        Install a filter of C{level} for the rest of the test.
        """
        levelFilter = logs.LogLevelFilter(level)
        levelFilter.install()
        self.addCleanup(levelFilter.uninstall)
        return levelFilter

    def test_allUntilInstalled(self) -> None:
        """
        Until a filter is installed (a library embedded in a program with
        its own observers), every event goes through: importing xmppcomp
        filters nothing.
        """
        for name in logs.LOG_LEVELS:
            self.log.emit(LogLevel.levelWithName(name), "an event")
        self.assertEqual(self.levels(), list(logs.LOG_LEVELS))

    def test_belowDropped(self) -> None:
        """
        At C{info}, debug events are dropped and the others go through;
        at C{error}, a failure (critical) still goes through.
        """
        info = self.install("info")
        self.assertEqual(info.minimum, "info")
        self.log.debug("dropped {x}", x=1)
        self.log.info("kept {x}", x=2)
        self.log.warn("kept too")
        self.assertEqual(self.levels(), ["info", "warn"])
        self.assertEqual(formatEvent(self.events[0]), "kept 2")
        self.install("ERROR")
        self.log.warn("dropped")
        try:
            1 / 0
        except ZeroDivisionError:
            self.log.failure("kept: {what}", what="a failure")
        self.assertEqual(self.levels(), ["info", "warn", "critical"])

    def test_uninstall(self) -> None:
        """
        Uninstalling a filter puts the one installed before it back in
        force, or none; uninstalling one that is not installed does
        nothing.
        """
        first = self.install("warn")
        second = self.install("error")
        self.assertTrue(first.installed)
        self.log.warn("dropped")
        first.uninstall()
        self.assertFalse(first.installed)
        self.log.warn("dropped again: the second is in force")
        second.uninstall()
        second.uninstall()
        self.assertFalse(second.installed)
        self.log.debug("kept")
        self.assertEqual(self.levels(), ["debug"])

    def test_unknownLevel(self) -> None:
        """
        A filter of a level that does not exist cannot be made.
        """
        self.assertRaises(ValueError, logs.LogLevelFilter, "verbose")

    def test_xmppcompLoggers(self) -> None:
        """
        xmppcomp's modules log through L{logs.Logger}, module loggers and
        class descriptors alike.
        """
        from xmppcomp.router import service
        from xmppcomp.stream.xmlstream import XmppXmlStream

        self.assertIsInstance(service.log, logs.Logger)
        self.assertIsInstance(XmppXmlStream._log, logs.Logger)

    def test_parse(self) -> None:
        """
        Level names are case-insensitive; anything else is refused with the
        list of levels.
        """
        self.assertEqual(logs.parseLogLevel(" WARN "), "warn")
        error = self.assertRaises(ValueError, logs.parseLogLevel, "verbose")
        self.assertEqual(
            str(error),
            "'verbose' is not a log level; use one of: debug, info, warn, error, critical",
        )
        self.assertRaises(ValueError, logs.LogLevelFilter, "verbose")


class PluginLogLevelTests(SynchronousTestCase):
    """
    C{--log-level} of C{twistd xmppcomp} and C{twistd xmppcomp-router}:
    C{info} by default, checked when the options are parsed.
    """

    def routerArgv(self) -> list[str]:
        """
        The least a router needs: a domain, plaintext, and a (new, empty)
        credentials file.
        """
        from xmppcomp.stream.sasl import FileCredentialStore

        path = self.mktemp()
        FileCredentialStore(path).save()
        return ["--domain", "example.net", "--allow-plaintext", "--credentials", path]

    def test_options(self) -> None:
        """
        Both plugins default to C{info}, take any level in any case and
        refuse an unknown one with a usage error naming the option.
        """
        from twisted.python import usage

        from xmppcomp import routertap

        for options, argv in (
            (tap.Options, []),
            (routertap.Options, self.routerArgv()),
        ):
            parsed = options()
            parsed.parseOptions(argv)
            self.assertEqual(parsed["log-level"], "info")
            parsed = options()
            parsed.parseOptions([*argv, "--log-level", "DEBUG"])
            self.assertEqual(parsed["log-level"], "debug")
            error = self.assertRaises(
                usage.UsageError, options().parseOptions, [*argv, "--log-level", "chatty"]
            )
            self.assertIn("--log-level: 'chatty' is not a log level; use one of: debug", str(error))
            self.assertIn("--log-level", str(options()))

    def test_routerService(self) -> None:
        """
        Building the router's service installs a filter of its level: a
        debug event of the router's modules is then dropped, until the
        service stops.
        """
        from xmppcomp import routertap
        from xmppcomp.router import service

        options = routertap.Options()
        options.parseOptions([*self.routerArgv(), "--log-level", "warn"])
        built = routertap.makeService(options)
        levelFilter = built.process.logFilter
        self.addCleanup(levelFilter.uninstall)
        self.assertEqual(levelFilter.minimum, "warn")
        self.assertTrue(levelFilter.installed)
        events: list[dict[str, Any]] = []
        log = logs.Logger(namespace=service.__name__, observer=events.append)
        log.info("dropped")
        log.warn("kept")
        self.assertEqual([formatEvent(e) for e in events], ["kept"])
        built.process.stop()
        self.assertFalse(levelFilter.installed)
        log.info("kept once stopped")
        self.assertEqual([formatEvent(e) for e in events], ["kept", "kept once stopped"])


class _Capture:
    """
    Everything of every event, as text: the formatted message, the JSON
    of the event (all its fields, flattened), and the C{repr} of each
    field value (objects whose JSON is only C{unpersistable}).
    """

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, event: dict[str, Any]) -> None:
        event = dict(event)
        self.texts.append(formatEvent(event))
        failure = event.get("log_failure")
        if isinstance(failure, Failure):
            self.texts.append(failure.getTraceback())
        for key, value in event.items():
            if key not in ("log_logger", "log_source"):
                self.texts.append(f"{key}={value!r}")
        self.texts.append(eventAsJSON(event))


class SecretsNotLoggedTests(_MainJobMixin, TestCase):
    """
    The main job (embedded router, component, confirmer with metrics,
    demo agent) logs neither the component's secret nor the demo agent's.
    """

    timeout = 60

    @defer.inlineCallbacks
    def test_secretsNotLogged(self) -> Any:
        """
        Through start, confirmations allowed and denied, a scrape of
        C{/metrics} and stop, no event's text, fields or field values
        contain either secret made up by the embedded router.
        """
        from twisted.logger import globalLogPublisher

        capture = _Capture()
        globalLogPublisher.addObserver(capture)
        self.addCleanup(globalLogPublisher.removeObserver, capture)
        # Every event, debug included, is checked.
        top, url = yield self.start("--metrics", "--log-level", "debug")
        embedded = top.getServiceNamed(tap.EMBEDDED_SERVICE)
        secrets = [embedded.secret, embedded.secretFor("agent.localhost")]
        self.assertEqual(len(set(secrets)), 2)
        for secret in secrets:
            self.assertGreaterEqual(len(secret), 16)
        response, body = yield self.fetch(url, (DEMO, "tx-1"))
        self.assertEqual(response.code, 200, body)
        response, body = yield self.fetch(url, (DEMO, "deny-2"))
        self.assertEqual(response.code, 403, body)
        response, body = yield self.fetch(url + "metrics")
        self.assertEqual(response.code, 200, body)
        yield top.stopService()
        self.assertGreater(len(capture.texts), 100)
        everything = "\n".join(capture.texts)
        # The transaction ids are logged (they are not secrets, XEP-0070).
        self.assertIn("tx-1", everything)
        for secret in secrets:
            self.assertNotIn(secret, everything)
