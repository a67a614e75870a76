#!/usr/bin/env python3
"""
A component written in the handler style: a plain
L{Component<xmppcomp.component.Component>} hosts wokkel handlers, attached
with C{setHandlerParent}. L{TimeHandler} answers XEP-0202 entity time
requests (C{<time xmlns='urn:xmpp:time'/>}) and declares the feature in
service discovery, next to the disco handlers of
L{xmppcomp.disco.discoHandlers}.

Run it against a server (here the router of docs/examples/router.toml)::

    python docs/examples/handler_component.py \\
        --server tcp:host=127.0.0.1:port=5348 --server-domain example.net \\
        --hostname time.comp.example.net --identity comp.example.net \\
        --secret-file comp.secret --pinned router.pem

C{--help} lists every option; they are those of C{twistd xmppcomp}.
"""

from __future__ import annotations

# wokkel must be imported after xmppcomp's compatibility shim.
import xmppcomp._wokkelcompat  # noqa: F401  # isort: skip

import datetime
import sys
from typing import Any, Callable

from twisted.words.xish import domish
from wokkel.disco import DiscoFeature
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler
from zope.interface import implementer

from twisted.python import usage

from xmppcomp.tap import Options as _ComponentOptions

NS_TIME = "urn:xmpp:time"
TIME_REQUEST = "/iq[@type='get']/time[@xmlns='%s']" % (NS_TIME,)


@implementer(IDisco)
class TimeHandler(XMPPHandler, IQHandlerMixin):
    """
    Answers XEP-0202 entity time requests to any of the component's
    hostnames with the current UTC time.

    @ivar now: returns the current time, an aware datetime.
    """

    iqHandlers = {TIME_REQUEST: "onTime"}

    def __init__(self, now: Callable[[], datetime.datetime] | None = None) -> None:
        super().__init__()
        self.now = now or (lambda: datetime.datetime.now(datetime.timezone.utc))

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver(TIME_REQUEST, self.handleRequest)

    def onTime(self, iq: domish.Element) -> domish.Element:
        now = self.now().astimezone(datetime.timezone.utc)
        time = domish.Element((NS_TIME, "time"))
        time.addElement("tzo", content="+00:00")
        time.addElement("utc", content=now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        return time

    def getDiscoInfo(self, requestor: Any, target: Any, nodeIdentifier: str = "") -> Any:
        return [] if nodeIdentifier else [DiscoFeature(NS_TIME)]

    def getDiscoItems(self, requestor: Any, target: Any, nodeIdentifier: str = "") -> Any:
        return []


class Options(_ComponentOptions):
    # How a configuration error starts its one line.
    command = "handler_component.py"
    synopsis = (
        "Usage: python docs/examples/handler_component.py --server ENDPOINT "
        "--server-domain DOMAIN --hostname NAME (--secret-file FILE | "
        "--secret-env NAME) [--pinned CERT | --ca-file CAS] [options]\n"
        "   or: python docs/examples/handler_component.py --config component.toml"
    )
    longdesc = (
        "A component answering XEP-0202 entity time requests (wokkel handler style). The options are those of twistd xmppcomp; a server is "
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
    Run a component with a L{TimeHandler} until interrupted.
    """
    from twisted.internet import defer

    from xmppcomp.disco import addDiscovery
    from xmppcomp.services import makeComponent

    component = makeComponent(config, reactor)
    addDiscovery(component)
    TimeHandler().setHandlerParent(component)
    component.startService()
    reactor.addSystemEventTrigger("before", "shutdown", component.stopService)
    return defer.Deferred()  # never fires: run until interrupted


if __name__ == "__main__":
    from twisted.internet.task import react
    from twisted.logger import globalLogBeginner, textFileLogObserver

    settings = parse(sys.argv[1:])
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    react(run, [settings])
