"""
The XEP-0070 confirmer under load: C{twistd -n xmppcomp} (embedded router,
component with the confirmer, demo agent answering every confirmation) in
its own process, and C{--clients} concurrent HTTP clients here, each making
one request with fresh credentials: 401 challenge, then credentials, then
the confirm IQ to the agent and back, then 200.

    python bench/confirmer.py [--clients 1000] [--runs 5]

Prints a Markdown table (confirmations/s, p50/p99 of the credentialed
request, answers by status, confirmer RSS before and after) and JSON.
Every request must end in 200: anything else is counted as an error.

Run by hand, never by the test suite. Everything stays on 127.0.0.1,
bounded in count and time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

from twisted.internet import defer, reactor, task  # noqa: E402

CONFIG = """
[httpauth]
listen = "tcp:{port}:interface=127.0.0.1"
[httpauth.limits]
pending_per_jid = {clients}
pending_total = {clients}
"""


def startConfirmer(directory: str, clients: int) -> tuple[subprocess.Popen[bytes], int]:
    (port,) = _common.freePorts(1)
    config = os.path.join(directory, "component.toml")
    with open(config, "w") as f:
        f.write(CONFIG.format(port=port, clients=clients))
    log = open(os.path.join(directory, "twistd.log"), "ab")
    process = subprocess.Popen(
        [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "--logfile", os.path.join(directory, "xmppcomp.log"),
         "--pidfile", os.path.join(directory, "twistd.pid"), "-n", "xmppcomp", "--config", config],
        cwd=_common.ROOT,
        stdout=log,
        stderr=log,
        env=dict(os.environ, PYTHONPATH=_common.ROOT),
    )
    log.close()
    _common.waitForPort(port, timeout=30, process=process)
    return process, port


@defer.inlineCallbacks
def oneRun(agent: Any, port: int, clients: int, run: int, pid: int) -> Any:
    import treq

    url = "http://127.0.0.1:%d/" % (port,)
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    @defer.inlineCallbacks
    def client(i: int) -> Any:
        challenge = yield treq.get(url, agent=agent)
        yield challenge.content()
        if challenge.code != 401:
            statuses[challenge.code] = statuses.get(challenge.code, 0) + 1
            return
        who = "user%d@agent.localhost/web" % (i,)
        start = time.perf_counter()
        response = yield treq.get(url, auth=(who, "run%d-tx%d" % (run, i)), agent=agent)
        yield response.content()
        latencies.append(time.perf_counter() - start)
        statuses[response.code] = statuses.get(response.code, 0) + 1

    serverBefore = _common.cpuSeconds(pid)
    loadBefore = _common.ownCpuSeconds()
    start = time.perf_counter()
    yield defer.gatherResults([client(i) for i in range(clients)])
    elapsed = time.perf_counter() - start
    serverCpu = _common.cpuSeconds(pid) - serverBefore
    loadCpu = _common.ownCpuSeconds() - loadBefore
    return {
        "rate": clients / elapsed,
        "p50": statistics.median(latencies) * 1000 if latencies else float("nan"),
        "p99": sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan"),
        "statuses": statuses,
        "serverUs": serverCpu / clients * 1e6,
        "loadUs": loadCpu / clients * 1e6,
    }


@defer.inlineCallbacks
def main(arguments: argparse.Namespace) -> Any:
    from twisted.web.client import Agent, HTTPConnectionPool

    directory = tempfile.mkdtemp(prefix="xmppcomp-confirmer-")
    process, port = startConfirmer(directory, arguments.clients)
    try:
        # Let the embedded router, component and agent negotiate.
        yield task.deferLater(reactor, 2.0, lambda: None)
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = arguments.clients
        agent = Agent(reactor, pool=pool)
        rssBefore = _common.rssBytes(process.pid)
        results = []
        for run in range(arguments.runs):
            results.append((yield oneRun(agent, port, arguments.clients, run, process.pid)))
        rssAfter = _common.rssBytes(process.pid)
        yield pool.closeCachedConnections()
        errors = sum(n for r in results for code, n in r["statuses"].items() if code != 200)
        rows = [
            [
                str(arguments.clients),
                _common.fmt(_common.summary([r["rate"] for r in results]), 0),
                _common.fmt(_common.summary([r["p50"] for r in results]), 1),
                _common.fmt(_common.summary([r["p99"] for r in results]), 1),
                ", ".join("%s×%d" % (code, n) for code, n in sorted(_merge(results).items())),
                str(errors),
                "%.1f → %.1f" % (rssBefore / 2**20, rssAfter / 2**20),
            ]
        ]
        print(
            _common.table(
                [
                    "concurrent clients",
                    "confirmations/s",
                    "p50 ms",
                    "p99 ms",
                    "answers",
                    "errors",
                    "confirmer RSS MiB",
                ],
                rows,
            )
        )
        print("server CPU us/conf", [round(r["serverUs"]) for r in results], "load", [round(r["loadUs"]) for r in results])
        _common.emitJSON("confirmer", {"clients": arguments.clients, "runs": results, "errors": errors, "rss": [rssBefore, rssAfter]})
    finally:
        _common.stop(process)


def _merge(results: list[dict[str, Any]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for r in results:
        for code, n in r["statuses"].items():
            merged[code] = merged.get(code, 0) + n
    return merged


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    arguments = parser.parse_args()
    task.react(lambda _: main(arguments))
