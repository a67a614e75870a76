"""
The xmppcomp router in its own process, for the benchmarks: XEP-0225 and
XEP-0114 listeners on loopback (port 0), logging at info level to a file as
a deployment would. Prints one JSON line with the ports, then runs until
SIGTERM.

    python bench/_router_ours.py CONFIG.json [--cprofile OUT]

CONFIG.json: domain, credentials, certificate, key, authorization
(identity to patterns), accept (hostname to secret file), log, and
optional limits and sharedNames (hostname patterns several sessions of one
identity may bind together, as C{shared_names}).
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    from twisted.internet import reactor

    import _common

    from xmppcomp.config import RouterConfig, RouterLimits, SecretRef
    from xmppcomp.router.service import RouterService

    with open(sys.argv[1]) as f:
        spec = json.load(f)
    _common.logToFile(spec["log"], "info")
    config = RouterConfig(
        domain=spec["domain"],
        credentials=spec["credentials"],
        certificate=spec["certificate"],
        key=spec["key"],
        listen=("tcp:0:interface=127.0.0.1:backlog=1024",),
        acceptListen=("tcp:0:interface=127.0.0.1:backlog=1024",),
        authorization={k: tuple(v) for k, v in spec["authorization"].items()},
        acceptSecrets={k: SecretRef(file=v) for k, v in spec.get("accept", {}).items()},
        limits=RouterLimits(**spec.get("limits", {})),
        sharedNames=tuple(spec.get("sharedNames", ())),
    )
    service = RouterService(config, reactor)
    service.startService()
    ports = [port.getHost().port for port in service.ports]
    print(json.dumps({"xep0225": ports[0], "xep0114": ports[1] if len(ports) > 1 else None, "pid": os.getpid()}), flush=True)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    # As twistd xmppcomp-router does (xmppcomp.tap.PluginProcess).
    import gc

    from xmppcomp.tap import GC_THRESHOLDS

    gc.set_threshold(*GC_THRESHOLDS)
    reactor.callWhenRunning(gc.freeze)
    if "--cprofile" in sys.argv:
        import cProfile

        out = sys.argv[sys.argv.index("--cprofile") + 1]
        profiler = cProfile.Profile()
        profiler.runcall(reactor.run)
        profiler.dump_stats(out)
    else:
        reactor.run()


if __name__ == "__main__":
    main()
