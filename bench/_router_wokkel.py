"""
wokkel's router in its own process, for the benchmarks: wokkel.component's
Router and XMPPComponentServerFactory (XEP-0114, one shared secret), as
C{wokkel/componentservertap.py} wires them, listening on loopback port 0
and logging to a file as C{twistd} would. The one change: C{TCP_NODELAY}
on its connections, as on every other peer (with Nagle on, windows stall
on delayed ACKs and the comparison would measure that instead).

    python bench/_router_wokkel.py SECRET LOGFILE
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import xmppcomp._wokkelcompat  # noqa: E402,F401  (wokkel on Twisted 26)


def main() -> None:
    from twisted.internet import reactor
    from twisted.python import log
    from twisted.words.xish.xmlstream import STREAM_CONNECTED_EVENT
    from wokkel import component

    log.startLogging(open(sys.argv[2], "a"), setStdout=False)
    router = component.Router()
    factory = component.XMPPComponentServerFactory(router, sys.argv[1])
    factory.addBootstrap(STREAM_CONNECTED_EVENT, lambda xs: xs.transport.setTcpNoDelay(True))
    port = reactor.listenTCP(0, factory, backlog=1024, interface="127.0.0.1")
    print(json.dumps({"xep0114": port.getHost().port, "pid": os.getpid()}), flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
