# -*- test-case-name: tests.test_ejabberd -*-
"""
The Twisted side of C{tests/slixmpp_client.py}: a real slixmpp user,
logged in to a real server, in a subprocess that a test starts, reads
events from and gives commands to.

Use it from a L{twisted.trial.unittest.TestCase}::

    user = yield startUser(self, server, "juliet")   # logged in, available
    user.message(server.componentName, "hello")
    event = yield user.next("message")

C{server} is anything with C{host}, C{c2sPort}, C{jidOf(user)} and
C{passwordOf(user)} (L{tests.ejabberd.EjabberdServer}). A cleanup of the
test makes the user quit and kills it if it does not exit in time.

L{startUsersComponent} starts the same script as an XEP-0114 component
serving a users' domain, for a server without client logins (the
project's router): every JID at that domain answers as the user does.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from twisted.internet import defer
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

__all__ = ["SCRIPT", "UserProcess", "startScript", "startUser", "startUsersComponent"]

#: The slixmpp client script.
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slixmpp_client.py")

#: Seconds the user may take to log in and become available.
LOGIN_TIMEOUT = 30.0

#: Seconds the user may take to quit before it is killed.
QUIT_TIMEOUT = 10.0

#: The longest a user process may live, whatever happens (seconds).
LIFETIME = 600.0


class UserProcess(ProcessProtocol):
    """
    A slixmpp user in a subprocess: the JSON events it prints, and the
    commands it is given.

    @ivar events: every event read, in order.
    @ivar jid: its full JID, once C{ready}.
    @ivar stderr: what it wrote to standard error.
    @ivar ended: fires with the exit status when the process has ended.
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self.events: list[dict[str, Any]] = []
        self.jid: str | None = None
        self.stderr = b""
        self.running = False
        self.exitCode: int | None = None
        self.ended: defer.Deferred[int | None] = defer.Deferred()
        self._buffer = b""
        self._read: dict[str, int] = {}
        self._waiters: list[tuple[str, defer.Deferred[dict[str, Any]]]] = []

    def connectionMade(self) -> None:
        self.running = True

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if line.strip():
                self._received(json.loads(line))

    def _received(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        if event["event"] == "ready":
            self.jid = event["jid"]
        self._serve()

    def _serve(self) -> None:
        waiting, self._waiters = self._waiters, []
        for name, d in waiting:
            if d.called:
                continue
            found = self._take(name)
            if found is not None:
                d.callback(found)
            else:
                self._waiters.append((name, d))

    def _take(self, name: str) -> dict[str, Any] | None:
        """
        The first event called C{name} that L{next} has not returned yet.
        """
        start = self._read.get(name, 0)
        for index in range(start, len(self.events)):
            if self.events[index]["event"] == name:
                self._read[name] = index + 1
                return self.events[index]
        self._read[name] = len(self.events)
        return None

    def errReceived(self, data: bytes) -> None:
        self.stderr += data

    def processEnded(self, reason: Failure) -> None:
        self.running = False
        if reason.check(ProcessDone, ProcessTerminated):
            self.exitCode = reason.value.exitCode
        waiting, self._waiters = self._waiters, []
        for name, d in waiting:
            if not d.called:
                d.errback(AssertionError("the user exited before %r: %s" % (name, self.describe())))
        self.ended.callback(self.exitCode)

    def next(self, name: str) -> defer.Deferred[dict[str, Any]]:
        """
        The next event called C{name} (each is returned once, in order),
        now or when it is printed; fails if the user exits first.
        """
        found = self._take(name)
        if found is not None:
            return defer.succeed(found)
        d: defer.Deferred[dict[str, Any]] = defer.Deferred()
        if not self.running:
            d.errback(AssertionError("the user has exited: " + self.describe()))
        else:
            self._waiters.append((name, d))
        return d

    def all(self, name: str) -> list[dict[str, Any]]:
        """
        Every event called C{name} so far.
        """
        return [event for event in self.events if event["event"] == name]

    def command(self, **fields: Any) -> None:
        """
        Give the user one command (see C{tests/slixmpp_client.py}).
        """
        if self.running and self.transport is not None:
            self.transport.write(json.dumps(fields).encode("utf-8") + b"\n")

    def message(self, to: str, body: str, type: str = "chat") -> None:
        """
        Make the user send a message.
        """
        self.command(do="message", to=to, body=body, type=type)

    def iq(self, to: str, namespace: str, tag: str) -> None:
        """
        Make the user send an IQ get with an empty C{<query/>} in
        C{namespace}; its answer is the event C{iq_result} with C{tag}.
        """
        self.command(do="iq", to=to, ns=namespace, tag=tag)

    @defer.inlineCallbacks
    def quit(self) -> Any:
        """
        Ask the user to close its stream; kill it if it has not exited
        within L{QUIT_TIMEOUT} seconds; wait for its end.
        """
        if self.transport is None:
            return
        if self.running:
            self.command(do="quit")
            self.transport.closeStdin()
            timer: IDelayedCall = self._reactor.callLater(QUIT_TIMEOUT, self.kill)
            yield self.ended
            if timer.active():
                timer.cancel()
        elif not self.ended.called:
            yield self.ended

    def kill(self) -> None:
        """
        SIGKILL, if it still runs.
        """
        if self.running and self.transport is not None:
            try:
                self.transport.signalProcess("KILL")
            except Exception:
                pass

    def describe(self) -> str:
        return "user %s: events %r, exit status %r, stderr:\n%s" % (
            self.jid,
            self.events[-20:],
            self.exitCode,
            self.stderr.decode("utf-8", "replace")[-3000:],
        )


def startUser(
    testCase: Any, server: Any, user: str, resource: str = "web", reactor: Any = None
) -> defer.Deferred[UserProcess]:
    """
    Start the slixmpp user C{user} (a localpart of C{server}'s domain) on
    C{resource}, and wait until it is logged in and available; a cleanup
    of C{testCase} makes it quit.

    @return: a L{Deferred} firing with the L{UserProcess}.
    """
    jid = "%s/%s" % (server.jidOf(user), resource)
    return startScript(
        testCase, SCRIPT, [jid, server.host, str(server.c2sPort)], server.passwordOf(user), jid, reactor
    )


def startUsersComponent(
    testCase: Any, domain: str, secret: str, host: str, port: int, reactor: Any = None
) -> defer.Deferred[UserProcess]:
    """
    Start C{tests/slixmpp_client.py --component}: an XEP-0114 component
    serving the users' domain C{domain}, at C{host}:C{port} with
    C{secret}, whose every JID answers XEP-0070 requests as the slixmpp
    user does. Wait until its handshake is accepted; a cleanup of
    C{testCase} makes it quit.

    @return: a L{Deferred} firing with the L{UserProcess}.
    """
    return startScript(testCase, SCRIPT, ["--component", domain, host, str(port)], secret, domain, reactor)


@defer.inlineCallbacks
def startScript(
    testCase: Any, script: str, arguments: list[str], password: str, who: str, reactor: Any = None
) -> Any:
    """
    Spawn C{script} (L{SCRIPT}, or another that speaks its JSON lines: the
    C{ready} event, the C{quit} command, C{--lifetime}) with C{arguments}
    and C{password} in its environment, and wait for its C{ready} event; a
    cleanup of C{testCase} makes it quit.

    @param who: names it in the failure message.
    @return: a L{Deferred} firing with the L{UserProcess}.
    """
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        reactor = globalReactor
    process = UserProcess(reactor)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env["PYTHONUNBUFFERED"] = "1"
    env["XMPPCOMP_TEST_PASSWORD"] = password
    reactor.spawnProcess(
        process,
        sys.executable,
        [sys.executable, script, *arguments, "--lifetime", str(LIFETIME)],
        env=env,
    )
    testCase.addCleanup(process.quit)
    ready = process.next("ready")
    ready.addTimeout(LOGIN_TIMEOUT, reactor)
    try:
        yield ready
    except defer.TimeoutError:
        process.kill()
        raise testCase.failureException(
            "%s did not log in within %g s: %s" % (who, LOGIN_TIMEOUT, process.describe())
        )
    return process
