# -*- test-case-name: tests.test_ejabberd -*-
"""
A slixmpp client (a user logged in to a real XMPP server), run as a
subprocess by the tests against ejabberd (L{tests.ejabberd},
L{tests.test_ejabberd}); its Twisted side is L{tests.ejabberd.UserProcess}.

Usage::

    XMPPCOMP_TEST_PASSWORD=PASSWORD python slixmpp_client.py JID HOST PORT [--lifetime SECONDS]
    XMPPCOMP_TEST_PASSWORD=SECRET python slixmpp_client.py --component DOMAIN HOST PORT

C{JID} is a full JID (its resource is asked for when binding); the
password comes from the environment, never from the command line.

With C{--component}, it is instead an XEP-0114 component serving the
users' domain C{DOMAIN} (the password is its secret): the stand-in for the
users of a server without client logins (the project's router). Every
JID at C{DOMAIN} answers XEP-0070 requests as a user would (below); it
prints C{{"event": "ready", "jid": DOMAIN}} once the handshake is
accepted, and obeys C{quit} only.

As a client, it connects
to HOST:PORT in plaintext (STARTTLS only if the server offers it: the
private ejabberd offers none), logs in with SCRAM (allowed without TLS
here, for loopback only), sends its initial presence and
prints C{{"event": "ready", "jid": FULL_JID}} once the server has sent
that presence back, so that messages to its bare JID reach it from then
on. Then it prints one JSON object per line on standard output for each
event:

  - C{{"event": "message", "from", "to", "type", "body", "thread"}} for
    each message without C{<confirm/>};
  - C{{"event": "confirm", "form": "iq" or "message", "from", "id",
    "method", "url", "answer"}} for each XEP-0070 request, after it was
    answered: a transaction id starting with C{deny} is denied (IQ error
    or message error C{not-authorized}), one starting with C{ignore} is
    not answered at all, any other is confirmed (IQ result, or the message
    sent back with the same thread and C{<confirm/>});
  - C{{"event": "iq_result", "tag", "type", "from", "payload"}} for the
    answer to an IQ it was told to send (C{payload} is the text of the
    answer's child element, C{condition} the error's for an error);
  - C{{"event": "failed_auth"}}, C{{"event": "disconnected"}}, after which
    it exits: with status 0 if it had logged in, 3 if not.

Commands, one JSON object per line on standard input:

  - C{{"do": "message", "to", "body", "type"}}: send a message;
  - C{{"do": "iq", "to", "ns", "tag"}}: send an IQ get with an empty
    C{<query xmlns=NS/>} and report its answer as C{iq_result} with C{tag};
  - C{{"do": "quit"}}: close the stream and exit.

It pings back (XEP-0199) and answers disco#info, as real clients do. It
never runs longer than C{--lifetime} seconds (default 120).

This script imports nothing from Twisted or xmppcomp: it stands for a user's
client written by someone else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any
from xml.etree import ElementTree

from slixmpp import ClientXMPP, ComponentXMPP
from slixmpp.exceptions import IqError, IqTimeout

#: The XEP-0070 namespace.
NS_HTTP_AUTH = "http://jabber.org/protocol/http-auth"


def emit(event: str, **fields: Any) -> None:
    """
    Print one event as a JSON line, at once.
    """
    fields["event"] = event
    sys.stdout.write(json.dumps(fields, sort_keys=True) + "\n")
    sys.stdout.flush()


class Participant:
    """
    What the user and the users' component share: the tasks they run,
    their end, the XEP-0070 answers by transaction id (see the module
    docstring), and the commands read on standard input. Mixed into a
    slixmpp client or component.
    """

    #: Whether answers to the message form need an explicit C{from} (a
    #: component sends from the JID asked; a client's server sets it).
    answersFromAsked = False

    def participate(self) -> None:
        """
        Set up the state, the plugins and the handlers common to both.
        """
        self.loggedIn = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # The tasks started here, referenced until they end (asyncio keeps
        # only weak references: an unreferenced task may be collected).
        self.tasks: set[asyncio.Task[None]] = set()
        xmpp: Any = self
        xmpp.register_plugin("xep_0030")
        xmpp.register_plugin("xep_0199")
        xmpp.register_plugin("xep_0070")
        xmpp.add_event_handler("connection_failed", self.onConnectionFailed)
        xmpp.add_event_handler("disconnected", self.onDisconnected)
        xmpp.add_event_handler("http_confirm_iq", self.onConfirmIQ)
        xmpp.add_event_handler("http_confirm_message", self.onConfirmMessage)

    def start(self, coroutine: Any) -> None:
        """
        Run C{coroutine} as a task, referenced until it ends.
        """
        started = asyncio.ensure_future(coroutine)
        self.tasks.add(started)
        started.add_done_callback(self.tasks.discard)

    def onConnectionFailed(self, reason: Any) -> None:
        emit("connection_failed", reason=str(reason))
        self.finish()

    def onDisconnected(self, reason: Any) -> None:
        emit("disconnected")
        self.finish()

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    @staticmethod
    def decision(transactionId: str) -> str:
        if transactionId.startswith("deny"):
            return "deny"
        if transactionId.startswith("ignore"):
            return "ignore"
        return "confirm"

    def onConfirmIQ(self, iq: Any) -> None:
        confirm = iq["confirm"]
        answer = self.decision(confirm["id"])
        if answer == "confirm":
            iq.reply(clear=False).send()
        elif answer == "deny":
            reply = iq.reply(clear=False)
            reply["type"] = "error"
            reply["error"]["type"] = "auth"
            reply["error"]["condition"] = "not-authorized"
            reply.send()
        self.report("iq", iq, answer)

    def onConfirmMessage(self, msg: Any) -> None:
        if msg["type"] == "error":
            return
        confirm = msg["confirm"]
        answer = self.decision(confirm["id"])
        if answer != "ignore":
            xmpp: Any = self
            sender = msg["to"] if self.answersFromAsked else None
            reply = xmpp.make_message(mto=msg["from"], mfrom=sender, mtype="normal")
            reply["thread"] = msg["thread"]
            reply["confirm"]["id"] = confirm["id"]
            reply["confirm"]["method"] = confirm["method"]
            reply["confirm"]["url"] = confirm["url"]
            if answer == "deny":
                reply["type"] = "error"
                reply["error"]["type"] = "auth"
                reply["error"]["condition"] = "not-authorized"
            reply.send()
        self.report("message", msg, answer)

    def report(self, form: str, stanza: Any, answer: str) -> None:
        confirm = stanza["confirm"]
        emit(
            "confirm",
            form=form,
            id=confirm["id"],
            method=confirm["method"],
            url=confirm["url"],
            answer=answer,
            **{"from": str(stanza["from"]), "to": str(stanza["to"])},
        )

    async def readCommands(self) -> None:
        """
        Obey the commands on standard input until it closes.
        """
        xmpp: Any = self
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                return
            if not line.strip():
                continue
            command = json.loads(line)
            if command["do"] == "message":
                xmpp.send_message(
                    mto=command["to"], mbody=command["body"], mtype=command.get("type", "chat")
                )
            elif command["do"] == "iq":
                self.start(self.sendIQ(command))
            elif command["do"] == "quit":
                xmpp.disconnect()
                return

    async def sendIQ(self, command: dict[str, Any]) -> None:
        xmpp: Any = self
        iq = xmpp.make_iq_get(ito=command["to"])
        iq.append(ElementTree.Element("{%s}query" % (command["ns"],)))
        tag = command.get("tag")
        try:
            result = await iq.send(timeout=20)
        except IqError as e:
            emit(
                "iq_result",
                tag=tag,
                type="error",
                condition=e.iq["error"]["condition"],
                **{"from": str(e.iq["from"])},
            )
            return
        except IqTimeout:
            emit("iq_result", tag=tag, type="timeout")
            return
        payload = [child for child in result.xml if child.tag != "{jabber:client}error"]
        text = "".join(payload[0].itertext()) if payload else ""
        emit("iq_result", tag=tag, type=result["type"], payload=text, **{"from": str(result["from"])})


class User(Participant, ClientXMPP):  # type: ignore[misc]
    """
    Logs in, becomes available, answers XEP-0070 requests by their
    transaction id, and obeys the commands read on standard input.
    """

    def __init__(self, jid: str, password: str) -> None:
        # The private server offers no STARTTLS (loopback only): allow
        # SCRAM without TLS, which slixmpp refuses by default.
        super().__init__(
            jid, password, plugin_config={"feature_mechanisms": {"unencrypted_scram": True}}
        )
        self.enable_direct_tls = False
        self.participate()
        self.add_event_handler("session_start", self.onSessionStart)
        self.add_event_handler("failed_auth", self.onFailedAuth)
        self.add_event_handler("message", self.onMessage)
        self.add_event_handler("presence_available", self.onPresence)

    async def onSessionStart(self, event: Any) -> None:
        self.loggedIn = True
        self.send_presence()

    def onPresence(self, presence: Any) -> None:
        if presence["from"] == self.boundjid and not getattr(self, "_ready", False):
            self._ready = True
            emit("ready", jid=self.boundjid.full)
            self.start(self.readCommands())

    def onFailedAuth(self, event: Any) -> None:
        emit("failed_auth")
        self.disconnect()

    def onMessage(self, msg: Any) -> None:
        if msg.xml.find("{%s}confirm" % (NS_HTTP_AUTH,)) is not None:
            return
        emit(
            "message",
            body=msg["body"],
            type=msg["type"],
            thread=msg["thread"],
            **{"from": str(msg["from"]), "to": str(msg["to"])},
        )


class UsersComponent(Participant, ComponentXMPP):  # type: ignore[misc]
    """
    An XEP-0114 component serving a users' domain: every JID at it
    answers XEP-0070 requests as a user would.
    """

    answersFromAsked = True

    def __init__(self, domain: str, secret: str, host: str, port: int) -> None:
        super().__init__(domain, secret, host, port)
        # XEP-0114 has no TLS: no direct TLS, no STARTTLS.
        self.enable_direct_tls = False
        self.enable_starttls = False
        self.enable_plaintext = True
        self.participate()
        self.add_event_handler("session_start", self.onSessionStart)

    def onSessionStart(self, event: Any) -> None:
        self.loggedIn = True
        emit("ready", jid=self.boundjid.full)
        self.start(self.readCommands())


async def main(arguments: argparse.Namespace) -> int:
    """
    Run the user until it is disconnected or its lifetime is over.

    @return: the exit status.
    """
    password = os.environ["XMPPCOMP_TEST_PASSWORD"]
    user: Participant
    if arguments.component:
        user = UsersComponent(arguments.jid, password, arguments.host, arguments.port)
        user.connect()
    else:
        user = User(arguments.jid, password)
        user.connect(host=arguments.host, port=arguments.port)
    try:
        await asyncio.wait_for(user.done, arguments.lifetime)
    except TimeoutError:
        emit("lifetime_over")
        user.abort()
        return 4
    finally:
        user.cancel_connection_attempt()
    return 0 if user.loggedIn else 3


def parseArguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("jid")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--lifetime", type=float, default=120.0)
    parser.add_argument("--component", action="store_true", help="serve the domain JID as a component")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parseArguments(sys.argv[1:]))))
