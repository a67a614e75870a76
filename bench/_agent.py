"""
The answering agent of bench/confirmer.py in its own process: an xmppcomp
L{Component} (XEP-0114) at one hostname on the router, answering every
XEP-0070 confirmation to a JID at it with a
L{ConfirmationResponder<xmppcomp.httpauth.ConfirmationResponder>}: it
confirms, except transaction ids starting with C{wait}, which it never
answers (as L{xmppcomp.demo.demoPolicy}, without a log line each). It
stands for the users' clients, so it logs only at warning level.

    python bench/_agent.py SPEC.json

SPEC.json: server (endpoint string), domain, hostname, secret, log.
Prints one JSON line once bound, then runs until SIGTERM.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    import _common

    from xmppcomp.component import Component
    from xmppcomp.demo import WAIT_PREFIX
    from xmppcomp.httpauth import ConfirmationResponder, IncomingConfirmation

    with open(sys.argv[1]) as f:
        spec = json.load(f)
    _common.logToFile(spec["log"], "warn")

    def policy(incoming: IncomingConfirmation) -> bool | Deferred[bool]:
        if incoming.request.transactionId.startswith(WAIT_PREFIX):
            return Deferred()
        return True

    component = Component(
        server=spec["server"],
        serverDomain=spec["domain"],
        hostnames=[spec["hostname"]],
        secret=spec["secret"],
        protocol="xep0114",
        reactor=reactor,
    )
    ConfirmationResponder(policy).setHandlerParent(component)

    def ready(_: object) -> None:
        print(json.dumps({"pid": os.getpid(), "bound": spec["hostname"]}), flush=True)

    component.whenReady().addCallback(ready)
    reactor.addSystemEventTrigger("before", "shutdown", component.stopService)
    component.startService()
    reactor.run()


if __name__ == "__main__":
    main()
