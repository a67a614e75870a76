# -*- test-case-name: tests.test_stream_accept -*-
"""
A slixmpp XEP-0114 component, run as a subprocess by
L{tests.test_stream_accept} to check that a real third-party component can
connect to L{xmppcomp.stream.acceptreceiving.AcceptFactory}.

Usage::

    python slixmpp_component.py JID SECRET HOST PORT

It connects in plaintext (no direct TLS, no STARTTLS: XEP-0114 has neither)
and prints one JSON object per line on standard output for each event:

  - C{{"event": "connected"}} when the TCP connection is up;
  - C{{"event": "session_start"}} when the handshake was accepted; it then
    sends C{<message to='user@example.net'>} with the body C{hello};
  - C{{"event": "message", "from": ..., "to": ..., "body": ..., "type": ...}}
    for each message received; it answers C{echo: BODY} to the sender,
    except for errors (never answered) and the body C{quit}, which makes it
    close its stream;
  - C{{"event": "stream_error", "condition": ...}};
  - C{{"event": "disconnected"}}, after which it exits: with status 0 if the
    handshake had been accepted, 3 if not.

It never runs longer than C{--lifetime} seconds (default 60).

This script imports nothing from Twisted or xmppcomp: it stands for a
component written by someone else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from slixmpp import ComponentXMPP

#: The address the component writes to when its session starts.
GREETED = "user@example.net"


def emit(event: str, **fields: Any) -> None:
    """
    Print one event as a JSON line, at once.
    """
    fields["event"] = event
    sys.stdout.write(json.dumps(fields, sort_keys=True) + "\n")
    sys.stdout.flush()


class EchoComponent(ComponentXMPP):  # type: ignore[misc]
    """
    Greets L{GREETED} on session start and echoes every message.
    """

    def __init__(self, jid: str, secret: str, host: str, port: int) -> None:
        super().__init__(jid, secret, host, port)
        # The listener speaks plain XEP-0114 only; do not try direct TLS
        # first (it would send a TLS ClientHello to an XML parser).
        self.enable_direct_tls = False
        self.enable_starttls = False
        self.enable_plaintext = True
        self.started = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.add_event_handler("connected", self.onConnected)
        self.add_event_handler("connection_failed", self.onConnectionFailed)
        self.add_event_handler("session_start", self.onSessionStart)
        self.add_event_handler("message", self.onMessage)
        self.add_event_handler("stream_error", self.onStreamError)
        self.add_event_handler("disconnected", self.onDisconnected)

    def onConnected(self, event: Any) -> None:
        emit("connected")

    def onConnectionFailed(self, reason: Any) -> None:
        emit("connection_failed", reason=str(reason))
        self.finish()

    def onSessionStart(self, event: Any) -> None:
        self.started = True
        emit("session_start")
        self.send_message(mto=GREETED, mfrom=self.boundjid, mbody="hello")

    def onMessage(self, msg: Any) -> None:
        body = msg["body"]
        emit(
            "message",
            body=body,
            type=msg["type"],
            **{"from": str(msg["from"]), "to": str(msg["to"])},
        )
        if msg["type"] == "error":
            # Never answer an error: that is how routing loops start.
            return
        if body == "quit":
            self.disconnect()
            return
        self.send_message(mto=msg["from"], mfrom=msg["to"], mbody="echo: " + body)

    def onStreamError(self, error: Any) -> None:
        emit("stream_error", condition=error["condition"])

    def onDisconnected(self, reason: Any) -> None:
        emit("disconnected")
        self.finish()

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def main(arguments: argparse.Namespace) -> int:
    """
    Run the component until it is disconnected or its lifetime is over.

    @return: the exit status.
    """
    component = EchoComponent(
        arguments.jid, arguments.secret, arguments.host, arguments.port
    )
    component.connect()
    try:
        await asyncio.wait_for(component.done, arguments.lifetime)
    except asyncio.TimeoutError:
        emit("lifetime_over")
        component.abort()
        return 4
    finally:
        component.cancel_connection_attempt()
    return 0 if component.started else 3


def parseArguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("jid")
    parser.add_argument("secret")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--lifetime", type=float, default=60.0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parseArguments(sys.argv[1:]))))
