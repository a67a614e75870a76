#!/usr/bin/env python3
"""
An echo component, written in the subclass style: a
L{Component<xmppcomp.component.Component>} subclass overrides
C{componentReady} to observe the messages of its stream, and answers each
with the same body, from the address it was sent to.

Run it against a server (here the router of docs/examples/router.toml,
which allows comp.example.net to bind names below it)::

    python docs/examples/echo_component.py \\
        --server tcp:host=127.0.0.1:port=5348 --server-domain example.net \\
        --hostname echo.comp.example.net --identity comp.example.net \\
        --secret-file comp.secret --pinned router.pem

or with the settings of a TOML file (see docs/examples/component.toml)::

    python docs/examples/echo_component.py --config component.toml

C{--help} lists every option; they are those of C{twistd xmppcomp}.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.words.xish import domish

from xmppcomp.component import Component, ComponentStream
from twisted.python import usage

from xmppcomp.tap import Options as _ComponentOptions


class EchoComponent(Component):
    """
    Answers every message with a message carrying the same body (and
    thread), from the address it was sent to, to its sender.
    """

    def componentReady(self, xmlstream: ComponentStream) -> None:
        # A new stream after each reconnection: observe it again.
        xmlstream.addObserver("/message", self.onMessage)

    def onMessage(self, message: domish.Element) -> None:
        kind = message.getAttribute("type", "normal")
        if kind == "error" or message.body is None:
            # Never answer an error (two echoes would bounce forever), nor
            # a message without text (chat states and the like).
            return
        reply = domish.Element((None, "message"))
        reply["to"] = message["from"]
        reply["from"] = message["to"]
        reply["type"] = kind
        reply.addElement("body", content=str(message.body))
        if message.thread is not None:
            reply.addElement("thread", content=str(message.thread))
        self.send(reply)


class Options(_ComponentOptions):
    # How a configuration error starts its one line.
    command = "echo_component.py"
    synopsis = (
        "Usage: python docs/examples/echo_component.py --server ENDPOINT "
        "--server-domain DOMAIN --hostname NAME (--secret-file FILE | "
        "--secret-env NAME) [--pinned CERT | --ca-file CAS] [options]\n"
        "   or: python docs/examples/echo_component.py --config component.toml"
    )
    longdesc = (
        "An echo component: answers each message with the same body. The options are those of twistd xmppcomp; a server is "
        "required (for a local one: twistd -n xmppcomp-router --config "
        "docs/examples/router.toml)."
    )


    def postOptions(self) -> None:
        # This component runs no HTTP-auth confirmer: its [httpauth]
        # settings (public_origin, allowed_hosts) are not needed.
        self["no-httpauth"] = True
        super().postOptions()


def parse(argv: list[str]) -> Any:
    """
    Parse the command line.

    @return: the L{ComponentConfig<xmppcomp.componentconfig.ComponentConfig>}.
    @raise SystemExit: the options are wrong or incomplete (or C{--help}).
    """
    options = Options()
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        raise SystemExit(f"{options}\nerror: {e}")
    config = options.componentConfig
    if config.embedded:
        raise SystemExit(
            f"{options}\nerror: give --server (and --server-domain, "
            "--hostname and a secret), or --config FILE"
        )
    return config


def run(reactor: Any, config: Any) -> Any:
    """
    Run an L{EchoComponent} until interrupted.
    """
    from twisted.internet import defer

    from xmppcomp.disco import addDiscovery
    from xmppcomp.services import makeComponent

    component = makeComponent(config, reactor, componentClass=EchoComponent)
    addDiscovery(component)
    component.startService()
    reactor.addSystemEventTrigger("before", "shutdown", component.stopService)
    return defer.Deferred()  # never fires: run until interrupted


if __name__ == "__main__":
    from twisted.internet.task import react
    from twisted.logger import globalLogBeginner, textFileLogObserver

    settings = parse(sys.argv[1:])
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    react(run, [settings])
