"""
Compare the negotiation latency of two checkouts of xmppcomp, interleaved:
each checkout gets its own router process and load process (the load is
that checkout's component stack), and the two pairs take turns, one
second each, so that the machine's drift (this shared two-core machine
moves by 10-30 % within minutes) falls on both alike.

    python bench/compare_negotiation.py BASE_DIR OTHER_DIR [--rounds 20] [--seconds 1]

BASE_DIR and OTHER_DIR are checkouts (e.g. ``git worktree add /tmp/base
HEAD~3``). Prints a Markdown table (p50, p90 of the pooled latencies,
router and load CPU ms per negotiation) and the ratio other/base, then
the same as JSON. One negotiation at a time, as in
``negotiation_load.py``. Run by hand; loopback only, bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


def worker(repo: str) -> None:
    """
    Run one checkout's router and load; answer C{run SECONDS} on standard
    input with one JSON line of latencies and CPU, until C{quit}.
    """
    sys.path.insert(0, os.path.join(repo, "bench"))
    sys.path.insert(0, repo)
    os.chdir(repo)
    import gc
    import shutil
    import tempfile
    import time

    import _common
    import negotiation_load as nl
    from twisted.internet import defer, reactor, stdio
    from twisted.protocols.basic import LineReceiver

    from xmppcomp.tap import GC_THRESHOLDS

    gc.set_threshold(*GC_THRESHOLDS)
    directory = tempfile.mkdtemp(prefix="xmppcomp-bench-compare-")
    files = _common.RouterFiles(directory, nl.DOMAIN, {nl.IDENTITY: nl.SECRET}, {})
    # What negotiation_load.startRouter does, written out: older
    # checkouts, compared against, do not have it.
    spec = {
        "domain": nl.DOMAIN,
        "credentials": files.credentials,
        "certificate": files.certificate,
        "key": files.key,
        "authorization": {nl.IDENTITY: ["*." + nl.IDENTITY]},
        "log": os.path.join(directory, "router.log"),
        "limits": {"maxSessions": 10000},
    }
    specPath = os.path.join(directory, "router.json")
    with open(specPath, "w") as f:
        json.dump(spec, f)
    process, info = _common.startPython("_router_ours.py", specPath, logPath=os.path.join(directory, "router.err"))
    load = nl.Load(info["xep0225"], files)

    class Commands(LineReceiver):
        delimiter = b"\n"

        @defer.inlineCallbacks
        def lineReceived(self, line: bytes) -> Any:
            command, _, argument = line.decode().partition(" ")
            if command == "quit":
                reactor.stop()
                return
            latencies = []
            routerBefore, loadBefore = _common.cpuSeconds(process.pid), _common.ownCpuSeconds()
            deadline = time.perf_counter() + float(argument)
            while time.perf_counter() < deadline:
                latencies.append((yield load.once()))
            self.sendLine(
                json.dumps(
                    {
                        "latencies": latencies,
                        "router": _common.cpuSeconds(process.pid) - routerBefore,
                        "load": _common.ownCpuSeconds() - loadBefore,
                    }
                ).encode()
            )

    stdio.StandardIO(Commands())
    reactor.callWhenRunning(gc.freeze)
    try:
        reactor.run()
    finally:
        _common.stop(process)
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base")
    parser.add_argument("other")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=1.0)
    arguments = parser.parse_args()
    repos = {"base": os.path.abspath(arguments.base), "other": os.path.abspath(arguments.other)}
    workers = {
        name: subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", repo],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, repo in repos.items()
    }

    def run(name: str, seconds: float) -> dict[str, Any]:
        w = workers[name]
        assert w.stdin is not None and w.stdout is not None
        w.stdin.write("run %s\n" % (seconds,))
        w.stdin.flush()
        line = w.stdout.readline()
        if not line:
            raise SystemExit("the %s worker stopped" % (name,))
        result: dict[str, Any] = json.loads(line)
        return result

    totals = {name: {"latencies": [], "router": 0.0, "load": 0.0} for name in repos}
    # Per round: router CPU ms per negotiation and negotiations per
    # second of router CPU (its capacity), for medians and min-max.
    perRound: dict[str, dict[str, list[float]]] = {name: {"routerMs": [], "capacity": []} for name in repos}
    try:
        for name in repos:
            run(name, 1.0)  # warm-up
        for i in range(arguments.rounds):
            for name in (["base", "other"] if i % 2 == 0 else ["other", "base"]):
                result = run(name, arguments.seconds)
                totals[name]["latencies"] += result["latencies"]
                totals[name]["router"] += result["router"]
                totals[name]["load"] += result["load"]
                done = len(result["latencies"])
                if done and result["router"] > 0:
                    perRound[name]["routerMs"].append(result["router"] / done * 1000)
                    perRound[name]["capacity"].append(done / result["router"])
    finally:
        for w in workers.values():
            if w.stdin is not None:
                try:
                    w.stdin.write("quit\n")
                    w.stdin.flush()
                except BrokenPipeError:
                    pass
        for w in workers.values():
            w.wait(30)
    summary: dict[str, Any] = {}
    rows = []
    for name, total in totals.items():
        latencies = sorted(total["latencies"])
        count = len(latencies)
        summary[name] = {
            "repo": repos[name],
            "count": count,
            "p50ms": latencies[count // 2] * 1000,
            "p90ms": latencies[int(count * 0.9)] * 1000,
            "routerMs": total["router"] / count * 1000,
            "loadMs": total["load"] / count * 1000,
        }
        s = summary[name]
        rows.append("| %s | %d | %.3f | %.3f | %.3f | %.3f |" % (name, count, s["p50ms"], s["p90ms"], s["routerMs"], s["loadMs"]))
    summary["ratio"] = summary["other"]["p50ms"] / summary["base"]["p50ms"]
    print("| checkout | negotiations | p50 ms | p90 ms | router CPU ms | load CPU ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    print("\np50 other/base: %.3f\n" % (summary["ratio"],))
    print("| checkout | router CPU ms per negotiation, per round: median (min-max) | router capacity /s of CPU: median (min-max) |")
    print("| --- | ---: | ---: |")
    for name in repos:
        cpu, capacity = perRound[name]["routerMs"], perRound[name]["capacity"]
        if not cpu:
            continue
        summary[name]["routerMsRounds"] = [statistics.median(cpu), min(cpu), max(cpu)]
        summary[name]["capacityRounds"] = [statistics.median(capacity), min(capacity), max(capacity)]
        print(
            "| %s | %.3f (%.3f-%.3f) | %.0f (%.0f-%.0f) |"
            % ((name,) + tuple(summary[name]["routerMsRounds"]) + tuple(summary[name]["capacityRounds"]))
        )
    print()
    print(json.dumps({"benchmark": "compare_negotiation", **summary}, indent=1, sort_keys=True))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        worker(sys.argv[2])
    else:
        main()
