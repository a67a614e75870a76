"""
Load (issue #8): many XEP-0225 components pushing a steady stanza rate
through the router for a while, checking that nothing is lost, that no
unexpected error comes back, and that the router's memory stays flat.

    python bench/load.py [--components 100] [--rate 10000] [--seconds 60]

The router runs in its own process (C{_router_ours.py}: TLS, SCRAM and
hostname bind on every connection, logging at info level to a file); the
components run here, in pairs: each sends C{rate / (components / 2)}
200-byte messages a second to its partner, paced every 10 ms. At the end
it prints a Markdown table (sent, received, lost, errors, router CPU,
router RSS at the start, middle and end) and one JSON line.

Run by hand, never by the test suite. Everything stays on 127.0.0.1,
bounded in count and time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import routing  # noqa: E402

from twisted.internet import defer, reactor, task  # noqa: E402

DOMAIN = routing.DOMAIN
TICK = 0.01


def identities(count: int) -> dict[str, str]:
    return {"load%03d.example.net" % i: "load secret number %03d, long enough" % i for i in range(count)}


@defer.inlineCallbacks
def connect(port: int, files: _common.RouterFiles, identity: str, secret: str) -> Any:
    from twisted.internet.endpoints import TCP4ClientEndpoint

    from xmppcomp.stream.bind import BindInitiator
    from xmppcomp.stream.initiating import InitiatingFactory, InitiatingPolicy

    binder = BindInitiator([identity])
    factory = InitiatingFactory(
        InitiatingPolicy(DOMAIN, identity, secret, trust=files.trust(), features=binder.features()),
        reactor,
    )
    xs = yield TCP4ClientEndpoint(reactor, _common.LOOPBACK, port).connect(factory)
    yield xs.authenticator.negotiated
    return routing.Negotiated225(xs)


@defer.inlineCallbacks
def main(arguments: argparse.Namespace) -> Any:
    directory = tempfile.mkdtemp(prefix="xmppcomp-load-")
    secrets = identities(arguments.components)
    files = _common.RouterFiles(directory, DOMAIN, secrets, {})
    spec = {
        "domain": DOMAIN,
        "credentials": files.credentials,
        "certificate": files.certificate,
        "key": files.key,
        "authorization": {identity: [identity] for identity in secrets},
        "accept": {},
        "log": os.path.join(directory, "router.log"),
    }
    import json

    specPath = os.path.join(directory, "router.json")
    with open(specPath, "w") as f:
        json.dump(spec, f)
    process, info = _common.startPython("_router_ours.py", specPath, logPath=os.path.join(directory, "router.err"))
    try:
        names = sorted(secrets)
        components = []
        for name in names:
            components.append((yield connect(info["xep0225"], files, name, secrets[name])))
        pairs = [(components[i], components[i + 1], names[i], names[i + 1]) for i in range(0, len(components) - 1, 2)]
        perSender = arguments.rate / (2 * len(pairs))
        perTick = perSender * TICK
        payloads = [
            (routing.message(a, b), routing.message(b, a)) for _, _, a, b in pairs
        ]
        state = {"sent": 0, "carry": 0.0}
        rss = [_common.rssBytes(process.pid)]
        cpuBefore = _common.cpuSeconds(process.pid)
        start = time.perf_counter()
        end = start + arguments.seconds

        def tick() -> None:
            state["carry"] += perTick
            n = int(state["carry"])
            state["carry"] -= n
            if n <= 0:
                return
            for (a, b, _, _), (ab, ba) in zip(pairs, payloads):
                a.write(ab * n)
                b.write(ba * n)
                state["sent"] += 2 * n

        sampler = task.LoopingCall(lambda: rss.append(_common.rssBytes(process.pid)))
        sampler.start(arguments.seconds / 4, now=False)
        loop = task.LoopingCall(tick)
        loop.start(TICK)
        while time.perf_counter() < end:
            yield task.deferLater(reactor, 0.5, lambda: None)
        loop.stop()
        sampler.stop()
        sent = state["sent"]

        def received() -> int:
            return sum(c.counter.count for c in components)

        # Drain: wait (bounded) until every sent message arrived.
        deadline = time.perf_counter() + 30
        while received() < sent and time.perf_counter() < deadline:
            yield task.deferLater(reactor, 0.1, lambda: None)
        elapsed = time.perf_counter() - start
        cpu = _common.cpuSeconds(process.pid) - cpuBefore
        rss.append(_common.rssBytes(process.pid))
        errors = sum(1 for c in components if c.counter.error is not None)
        got = received()
        rows = [
            [
                str(len(components)),
                "%d" % (sent / arguments.seconds),
                str(sent),
                str(got),
                str(sent - got),
                str(errors),
                "%.1f" % (cpu / max(got, 1) * 1e6),
                " / ".join("%.1f" % (value / 2**20) for value in rss),
            ]
        ]
        print(
            _common.table(
                [
                    "components",
                    "stanzas/s offered",
                    "sent",
                    "received",
                    "lost",
                    "streams with errors",
                    "router CPU µs/stanza",
                    "router RSS MiB (start … end)",
                ],
                rows,
            )
        )
        _common.emitJSON(
            "load",
            {
                "components": len(components),
                "seconds": arguments.seconds,
                "elapsed": elapsed,
                "sent": sent,
                "received": got,
                "lost": sent - got,
                "errors": errors,
                "routerCpuUs": cpu / max(got, 1) * 1e6,
                "rssBytes": rss,
            },
        )
    finally:
        _common.stop(process)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--components", type=int, default=100)
    parser.add_argument("--rate", type=int, default=10000)
    parser.add_argument("--seconds", type=float, default=60.0)
    arguments = parser.parse_args()
    task.react(lambda _: main(arguments))
