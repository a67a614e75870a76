# -*- test-case-name: tests.test_xtls_confirm_prosody -*-
"""
A user's client that confirms XEP-0070 requests through XTLS, run as a
subprocess by L{tests.test_xtls_confirm_prosody}: a Twisted client logged
in to a real server (c2s), holding the user's full JID, with an
L{XTLSHandler<xmppcomp.xtls.XTLSHandler>} (its own certificate, the
authorities it trusts) and a
L{ConfirmationResponder<xmppcomp.httpauth.ConfirmationResponder>} whose
policy says yes to everything.

Usage::

    XMPPCOMP_TEST_PASSWORD=PASSWORD python xtls_responder.py FULL_JID HOST PORT \\
        --certificate CERT.pem --key KEY.pem --trust CA.pem [--require-xtls] \\
        [--lifetime SECONDS]

It logs in over plaintext with PLAIN
(L{tests.prosody.PlaintextClientAuthenticator}: the private Prosody on
loopback only) and speaks the JSON lines of C{tests/slixmpp_client.py}
(L{tests.slixmppuser.UserProcess} reads them), one object per line on
standard output:

  - C{{"event": "ready", "jid": FULL_JID}} once logged in and bound;
  - C{{"event": "tunnel_opened", "peer", "local"}} and
    C{{"event": "tunnel_closed", "peer", "reason"}} for each XTLS tunnel;
  - C{{"event": "confirm", "tunnelled", "from", "to", "id", "method",
    "url", "answer": "yes"}} for each request the policy is asked about
    (with C{--require-xtls}, plaintext requests are answered
    C{policy-violation} without asking it);
  - C{{"event": "failed_auth"}} or C{{"event": "disconnected"}}, after
    which it exits (status 3 if it never logged in).

Commands on standard input: C{{"do": "quit"}} (or the end of standard
input) closes the stream and exits. It never runs longer than
C{--lifetime} seconds (default 120).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from twisted.internet import reactor, stdio
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.ssl import Certificate, PrivateCertificate
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import jid, xmlstream
from wokkel.subprotocols import StreamManager
from zope.interface import implementer

from tests.prosody import PlaintextClientAuthenticator
from xmppcomp.httpauth import ConfirmationResponder, IncomingConfirmation
from xmppcomp.xtls import ITunnelObserver, Tunnel, XTLSConfiguration, XTLSHandler

#: Exit status when it never logged in.
NOT_LOGGED_IN = 3


def emit(event: str, **fields: Any) -> None:
    """
    Print one event as a JSON line, at once.
    """
    fields["event"] = event
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


@implementer(ITunnelObserver)
class TunnelEvents:
    """
    Prints the tunnels opening and closing.
    """

    def tunnelOpened(self, tunnel: Tunnel) -> None:
        emit("tunnel_opened", peer=tunnel.peer.full(), local=tunnel.local.full())

    def tunnelClosed(self, tunnel: Tunnel, reason: Exception | None) -> None:
        emit("tunnel_closed", peer=tunnel.peer.full(), reason=None if reason is None else str(reason))


def yes(incoming: IncomingConfirmation) -> bool:
    """
    The policy: confirm everything, and say so.
    """
    request = incoming.request
    emit(
        "confirm",
        tunnelled=incoming.tunnelled,
        to=incoming.recipient.full(),
        id=request.transactionId,
        method=request.method,
        url=request.url,
        answer="yes",
        **{"from": incoming.sender.full()},
    )
    return True


class Commands(LineOnlyReceiver):
    """
    Reads the commands on standard input.
    """

    delimiter = b"\n"

    def __init__(self, client: Client) -> None:
        self.client = client

    def lineReceived(self, line: bytes) -> None:
        if line.strip() and json.loads(line).get("do") == "quit":
            self.client.quit()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.client.quit()


class Client:
    """
    The logged-in user: its stream, its XTLS endpoint and its responder.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.status = NOT_LOGGED_IN
        self.xs: xmlstream.XmlStream | None = None
        self.stopping = False
        with open(args.certificate, "rb") as f:
            certificate = f.read()
        with open(args.key, "rb") as f:
            key = f.read()
        with open(args.trust, "rb") as f:
            trust = Certificate.loadPEM(f.read())
        self.xtls = XTLSHandler(
            XTLSConfiguration(certificate=PrivateCertificate.loadPEM(certificate + key), trust=[trust]),
            clock=reactor,
        )
        self.xtls.addObserver(TunnelEvents())
        self.factory = xmlstream.XmlStreamFactory(
            PlaintextClientAuthenticator(jid.JID(args.jid), os.environ["XMPPCOMP_TEST_PASSWORD"])
        )
        manager = StreamManager(self.factory)
        self.xtls.setHandlerParent(manager)
        ConfirmationResponder(yes, xtls=self.xtls, requireXTLS=args.require_xtls).setHandlerParent(manager)
        self.factory.addBootstrap(xmlstream.STREAM_AUTHD_EVENT, self.loggedIn)
        self.factory.addBootstrap(xmlstream.INIT_FAILED_EVENT, self.failed)
        self.factory.addBootstrap(xmlstream.STREAM_END_EVENT, self.ended)
        self.endpoint = TCP4ClientEndpoint(reactor, args.host, args.port, timeout=10)

    def start(self) -> None:
        d = self.endpoint.connect(self.factory)
        d.addCallback(self.connected)
        d.addErrback(lambda failure: self.fail("connect", failure))

    def connected(self, xs: xmlstream.XmlStream) -> None:
        self.xs = xs

    def loggedIn(self, xs: xmlstream.XmlStream) -> None:
        self.status = 0
        emit("ready", jid=xs.authenticator.jid.full())

    def failed(self, failure: Failure) -> None:
        emit("failed_auth", reason=failure.getErrorMessage())
        self.stop()

    def fail(self, what: str, failure: Failure) -> None:
        emit("disconnected", reason="%s: %s" % (what, failure.getErrorMessage()))
        self.stop()

    def ended(self, reason: Failure) -> None:
        emit("disconnected", reason=reason.getErrorMessage())
        self.stop()

    def quit(self) -> None:
        """
        Close the stream; stop once it has ended.
        """
        xs = self.xs
        if xs is None or xs.transport is None or not xs.transport.connected:
            self.stop()
            return
        xs.sendFooter()
        xs.transport.loseConnection()

    def stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            reactor.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("jid")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--certificate", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--trust", required=True)
    parser.add_argument("--require-xtls", action="store_true")
    parser.add_argument("--lifetime", type=float, default=120.0)
    args = parser.parse_args()
    client = Client(args)
    stdio.StandardIO(Commands(client))
    reactor.callLater(args.lifetime, client.quit)
    reactor.callWhenRunning(client.start)
    reactor.run()
    return client.status


if __name__ == "__main__":
    sys.exit(main())
