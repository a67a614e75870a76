# -*- test-case-name: tests.test_xtls_cli -*-
"""
C{xmppcomp-xtls}: open an XTLS tunnel from the command line, to test a
peer without writing code::

    xmppcomp-xtls --config component.toml --to peer.example.net [--from NAME]
                  [--expect N] [--timeout SECONDS]

It connects to the server as the component of the TOML file that
C{twistd xmppcomp} reads (C{[component]}: XEP-0225 or XEP-0114; its
C{[httpauth]} is not run), with the
certificate, key and trust of its C{[xtls]} table, opens a tunnel from
C{--from} (default: the component's first hostname) to C{--to}, and sends
each line of standard input through it as C{<message><body>LINE</body>
</message>}. The body of each message that arrives through the tunnel
from the peer is printed on standard output, one line each (a stanza
without a body: its XML). At the end of standard input it waits until the
peer acknowledged everything sent and, with C{--expect N}, until N
stanzas arrived through the tunnel, then closes the tunnel and exits.

Exit status: 0 once the tunnel is closed; 1, after one line on standard
error, when the configuration cannot be used, the server cannot be reached
or the tunnel is refused within C{--timeout} seconds (default 30), the
tunnel ends otherwise than by an orderly close, or the peer closes it
before we are done: before all of standard input was sent and
acknowledged or, with C{--expect N}, before all of it was sent and N
stanzas arrived (they stand for the acknowledgements); 2 for a usage
error. A peer that closes the tunnel once everything is done does not make
it fail.
"""

from __future__ import annotations

import argparse
import sys
from typing import IO, Any

import attrs
from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorCore, IReactorTime
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.protocols.jabber.jid import JID, InvalidFormat
from twisted.words.xish import domish
from wokkel.subprotocols import XMPPHandler

from xmppcomp.component import Component
from xmppcomp.config import ConfigError, Override, loadComponentConfig
from xmppcomp.services import addXTLS, makeComponent
from xmppcomp.xtls import HandshakeFailed, Tunnel, TunnelBusy, TunnelClosed, XTLSHandler

__all__ = ["main"]

_PROG = "xmppcomp-xtls"


class _Failed(Exception):
    """
    End with status 1 and this one-line message.
    """


class _Printer(XMPPHandler):
    """
    Writes what arrives through the tunnel from C{peer}: the body of a
    message, else the stanza's XML, one line each.
    """

    def __init__(self, out: IO[str]) -> None:
        super().__init__()
        self.out = out
        self.peer: str | None = None
        self.received = 0
        self.waiter: defer.Deferred[None] | None = None
        self.expected = 0

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver("/message", self.onStanza)
        self.xmlstream.addObserver("/presence", self.onStanza)
        self.xmlstream.addObserver("/iq", self.onStanza)

    def onStanza(self, stanza: domish.Element) -> None:
        if not getattr(stanza, "xtlsEncrypted", False) or self.peer is None:
            return
        if stanza.getAttribute("from") != self.peer:
            return
        body = stanza.body if stanza.name == "message" else None
        line = str(body) if body is not None else stanza.toXml()
        self.out.write(line.replace("\n", " ") + "\n")
        self.out.flush()
        self.received += 1
        self.check()

    def whenReceived(self, count: int) -> defer.Deferred[None]:
        self.expected = count
        self.waiter = defer.Deferred()
        waiter = self.waiter
        self.check()
        return waiter

    def check(self) -> None:
        if self.waiter is not None and self.received >= self.expected:
            waiter, self.waiter = self.waiter, None
            waiter.callback(None)


class _Lines(LineOnlyReceiver):
    """
    Standard input: each line is sent through the tunnel; its end fires
    L{ended}.
    """

    delimiter = b"\n"
    MAX_LENGTH = 1024 * 1024

    def __init__(self, tunnel: Tunnel) -> None:
        self.tunnel = tunnel
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.error: Exception | None = None

    def lineReceived(self, line: bytes) -> None:
        if self.error is not None:
            return
        message = domish.Element((None, "message"))
        message.addElement("body", content=line.rstrip(b"\r").decode("utf-8", "replace"))
        try:
            self.tunnel.send(message)
        except (TunnelBusy, TunnelClosed) as e:
            self.error = e
            self._stop()

    def lineLengthExceeded(self, line: bytes) -> None:
        self.error = _Failed(f"a line of standard input is longer than {self.MAX_LENGTH} bytes")
        self._stop()

    def _stop(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        if not self.ended.called:
            self.ended.callback(None)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Open an XTLS tunnel to a JID as the component of a TOML file, send "
        "standard input through it (a message per line) and print what comes back.",
        epilog="Exit status: 0 once all of standard input was sent and acknowledged (and the "
        "--expect N stanzas arrived) and the tunnel closed; 1, with one line on standard error, "
        "when the configuration cannot be used, the server is not reached or the tunnel not "
        "opened within --timeout, the tunnel is refused or fails, or the peer closes it before "
        "that; 2 for a usage error.",
    )
    parser.add_argument("--config", "-c", required=True, help="the component's TOML file (as twistd xmppcomp)")
    parser.add_argument("--to", required=True, help="the JID to open the tunnel to")
    parser.add_argument("--from", dest="sender", help="our JID (default: the component's first hostname)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to connect and to open the tunnel (default 30)")
    parser.add_argument("--expect", type=int, default=0,
                        help="at the end of input, wait for this many stanzas from the peer before closing")
    return parser


def _jid(text: str, option: str) -> JID:
    try:
        return JID(text)
    except InvalidFormat as e:
        raise _Failed(f"{option}: not a JID: {text!r} ({e})") from e


def _prepare(args: argparse.Namespace) -> tuple[Component, XTLSHandler, JID, JID]:
    """
    Load the configuration and build the component with its XTLS endpoint.

    @raise ConfigError: the configuration cannot be used.
    @raise _Failed: it has no server or no XTLS certificate, or a JID is
        malformed.
    """
    # The HTTP confirmer of the file, if any, is not ours to run.
    config = loadComponentConfig(args.config, {"httpauth.enabled": Override(False, _PROG)})
    if config.server is None:
        raise _Failed(f"{args.config}: component.server is missing: {_PROG} connects to a server")
    if config.xtls.certificate is None or (config.xtls.trust is None and not config.xtls.pins):
        raise _Failed(f"{args.config}: [xtls] certificate and trust are missing: a tunnel needs our "
                      "certificate and the authorities of the peer's")
    if not config.xtls.enabled:
        raise _Failed(f"{args.config}: [xtls] enabled = false")
    peer = _jid(args.to, "--to")
    local = _jid(args.sender or config.hostnames[0], "--from")
    from twisted.internet import reactor

    component = makeComponent(config, reactor)
    handler = addXTLS(component, config)
    # Only the tunnel we open: starts from others are refused.
    handler.configuration = attrs.evolve(handler.configuration, acceptPolicy=lambda local, peer: False)
    return component, handler, local, peer


def _connectionError(component: Component) -> str:
    reasons = [link.lastFailure for link in component.links if link.lastFailure is not None]
    if reasons:
        return f"cannot connect to {component.server}: {reasons[0].getErrorMessage()}"
    return f"cannot connect to {component.server}"


async def _run(
    reactor: Any, args: argparse.Namespace, component: Component, handler: XTLSHandler,
    local: JID, peer: JID, stdout: IO[str],
) -> None:
    from twisted.internet.stdio import StandardIO

    clock: IReactorTime = reactor
    printer = _Printer(stdout)
    printer.setHandlerParent(component)
    component.startService()
    try:
        ready = component.whenReady()
        ready.addTimeout(args.timeout, clock)
        try:
            await ready
        except defer.TimeoutError:
            raise _Failed(f"{_connectionError(component)} (after {args.timeout:g} s)") from None
        opening = handler.open(local, peer)
        opening.addTimeout(args.timeout, clock)
        try:
            tunnel = await opening
        except defer.TimeoutError:
            raise _Failed(f"tunnel to {peer.full()}: no answer in {args.timeout:g} s") from None
        except StanzaError as e:
            raise _Failed(f"tunnel to {peer.full()} refused: {e.condition}"
                          + (f" ({e.text})" if e.text else "")) from e
        except HandshakeFailed as e:
            raise _Failed(f"tunnel to {peer.full()} failed: {e}") from e
        printer.peer = tunnel.peer.full()
        lines = _Lines(tunnel)
        StandardIO(lines, reactor=reactor)
        closed = tunnel.whenClosed()
        await defer.DeferredList([lines.ended, closed], fireOnOneCallback=True)
        if lines.error is not None and not isinstance(lines.error, TunnelClosed):
            raise _Failed(f"tunnel to {peer.full()}: {lines.error}")
        # All of standard input read and handed to the tunnel; and
        # acknowledged by the peer.
        inputRead = lines.ended.called and lines.error is None
        acknowledged = False
        if inputRead and tunnel.isOpen:
            # It fails if the tunnel closes first, by the peer or on an
            # error (its reason, below).
            [(acknowledged, _)] = await defer.DeferredList([tunnel.whenDrained()], consumeErrors=True)
            if acknowledged and args.expect and tunnel.isOpen:
                await defer.DeferredList([printer.whenReceived(args.expect), closed], fireOnOneCallback=True)
        if tunnel.isOpen:
            await tunnel.close()
        elif not closed.called:
            await closed
        reason = tunnel.reason
        if reason is not None:
            raise _Failed(f"tunnel to {peer.full()} ended: {reason}")
        # Closed in order, by us or first by the peer: done if all of the
        # input went through and every stanza expected came back (their
        # answers stand for the acknowledgements the peer may not have
        # sent before its close).
        if inputRead and printer.received >= args.expect and (acknowledged or args.expect):
            return
        if inputRead and printer.received < args.expect:
            raise _Failed(f"tunnel to {peer.full()}: closed by the peer after {printer.received} of "
                          f"the {args.expect} stanzas expected")
        raise _Failed(f"tunnel to {peer.full()}: closed by the peer before all of standard input "
                      "was sent and acknowledged")
    finally:
        await defer.maybeDeferred(component.stopService)


def main(argv: list[str] | None = None, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    """
    Run C{xmppcomp-xtls} with C{argv} (default: C{sys.argv[1:]}) on the
    global reactor.

    @return: the exit status (see the module docstring).
    """
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    try:
        component, handler, local, peer = _prepare(args)
    except (ConfigError, _Failed) as e:
        stderr.write(f"{_PROG}: {e}\n")
        return 1
    status: list[int] = []

    async def run(reactor: IReactorCore) -> None:
        try:
            await _run(reactor, args, component, handler, local, peer, stdout)
            status.append(0)
        except (_Failed, ConfigError) as e:
            stderr.write(f"{_PROG}: {e}\n")
            status.append(1)

    try:
        task.react(lambda reactor: defer.ensureDeferred(run(reactor)))
    except SystemExit:
        pass
    return status[0] if status else 1


if __name__ == "__main__":
    sys.exit(main())
