"""
Run every benchmark, one after another, each in its own processes on
127.0.0.1 and each bounded in time, then print their Markdown tables, a
table of the targets of issue #7 (met or missed), and all results as one
JSON document.

    python bench/run_all.py [--quick]

Takes a few minutes (--quick: about one). Run by hand, never by the test
suite. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))

#: (name, script, arguments, quick arguments, seconds allowed)
BENCHMARKS = [
    ("routing", "routing.py", [], ["--runs", "5", "--count", "5000"], 600),
    ("negotiation", "negotiation_load.py", [], ["--runs", "5", "--duration", "1"], 300),
    ("memory", "memory.py", [], ["--runs", "5", "--sessions", "300"], 400),
    ("xtls_router", "xtls_router.py", [], ["--runs", "5", "--messages", "2"], 300),
    ("xtls_memory", "xtls_memory.py", [], [], 300),
    ("confirmer", "confirmer.py", [], ["--runs", "5", "--clients", "300", "--sequential", "50", "--pending", "500", "--memory-runs", "1"], 300),
    (
        "confirmer_embedded",
        "confirmer.py",
        ["--topology", "embedded", "--memory-runs", "1"],
        ["--topology", "embedded", "--runs", "5", "--clients", "300", "--sequential", "50", "--pending", "500", "--memory-runs", "1"],
        300,
    ),
]

_JSON_BLOCK = re.compile(r"```json\n(.*?)\n```", re.S)


def run(name: str, script: str, args: list[str], timeout: float) -> dict[str, Any]:
    path = os.path.join(HERE, script)
    if not os.path.exists(path):
        return {"name": name, "skipped": "%s not present" % (script,)}
    start = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, path, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=os.path.dirname(HERE),
        )
    except subprocess.TimeoutExpired:
        return {"name": name, "failed": "timed out after %g s" % (timeout,)}
    result: dict[str, Any] = {"name": name, "seconds": round(time.monotonic() - start, 1), "output": done.stdout}
    if done.returncode != 0:
        result["failed"] = "exit %d: %s" % (done.returncode, done.stderr[-2000:])
    blocks = _JSON_BLOCK.findall(done.stdout)
    if blocks:
        result["data"] = json.loads(blocks[-1])
    return result


def _median(data: dict[str, Any], *path: str) -> float | None:
    value: Any = data
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value.get("median") if isinstance(value, dict) else None


def targets(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    """
    One row per target of issue #7: what was measured and whether it is met.
    """
    rows = []

    def row(what: str, value: float | None, goal: float, higher: bool, unit: str, informative: str | None = None) -> None:
        if value is None:
            rows.append([what, "not measured", "%s %g%s" % ("≥" if higher else "≤", goal, unit), "–"])
            return
        if informative is not None:
            # Shown for context, not a target: the setup cannot meet it.
            rows.append([what, "%.2f%s" % (value, unit), "(%s %g%s)" % ("≥" if higher else "≤", goal, unit), "informative: " + informative])
            return
        met = value >= goal if higher else value <= goal
        gap = "" if met else " (gap %.2f%s)" % (abs(goal - value), unit)
        rows.append([what, "%.2f%s" % (value, unit), "%s %g%s" % ("≥" if higher else "≤", goal, unit), ("met" if met else "missed") + gap])

    routing = results.get("routing", {}).get("data", {})
    row("routing: ours (XEP-0225, TLS) / wokkel Router", _median(routing, "ratios", "ours-0225/wokkel"), 4, True, "×")
    row("routing: ours (XEP-0225, TLS) / Prosody", _median(routing, "ratios", "ours-0225/prosody"), 1, True, "×")
    row("routing: router CPU per routed stanza (XEP-0225, TLS)", _median(routing, "routers", "ours-0225", "routerUs"), 8, False, " µs")
    negotiation = results.get("negotiation", {}).get("data", {})
    levels = negotiation.get("levels", {})
    busiest = max(levels, key=int) if levels else None
    row(
        "negotiation: sustained by the router (CPU-bound capacity, %s concurrent)" % (busiest,),
        _median(levels, busiest, "capacity") if busiest else None,
        400,
        True,
        "/s",
    )
    row(
        "negotiation: measured rate (%s concurrent; load-bound)" % (busiest,),
        _median(levels, busiest, "rate") if busiest else None,
        400,
        True,
        "/s",
        informative="the load process needs more CPU than the router, on two cores; the router's capacity is the target",
    )
    row("negotiation: p50 latency (1 at a time)", _median(levels, "1", "p50ms"), 3, False, " ms")
    memory = results.get("memory", {}).get("data", {})
    row("memory: RSS per idle session", _median(memory, "perSessionKiB"), 64, False, " KiB")
    xtls = results.get("xtls_router", {}).get("data", {})
    oneWay = xtls.get("paths", {}).get("one way", {})
    row("XTLS: 1 MiB payloads through the router, one way", _median(oneWay, "MBps"), 30, True, " MB/s")
    rows[-1][1] += " (%.2f of the in-run ceiling)" % (oneWay["fractionOfCeiling"],) if "fractionOfCeiling" in oneWay else ""
    confirmer = results.get("confirmer", {}).get("data", {})
    clients = confirmer.get("clients", "?")
    row("confirmer: confirmations/s, %s concurrent clients" % (clients,), _median(confirmer, "concurrent", "rate"), 1500, True, "/s")
    row("confirmer: p99 latency added over the XMPP round trip, 1 at a time", _median(confirmer, "sequential", "addedP99"), 5, False, " ms")
    row(
        "confirmer: p99 latency added over the XMPP round trip, %s connections paced at %s/s"
        % (clients, confirmer.get("pacedRate", "?")),
        _median(confirmer, "paced", "addedP99"),
        5,
        False,
        " ms",
    )
    row(
        "confirmer: p99 latency added, %s concurrent closed loop (a queue of %s by construction)" % (clients, clients),
        _median(confirmer, "concurrent", "addedP99"),
        5,
        False,
        " ms",
        informative="every client restarts at once, so ~%s requests are always queued; the paced row is the target" % (clients,),
    )
    row("confirmer: RSS per pending confirmation", _median(confirmer, "memory", "perPendingKiB"), 4, False, " KiB")
    return rows


#: What the issue's absolute targets were set against: wokkel's Router
#: CPU per routed stanza on the machine of issue #7 (its text: ~35 µs).
REFERENCE_WOKKEL_US = 35.0


def machineSpeed(results: dict[str, dict[str, Any]]) -> list[str]:
    """
    Lines saying how fast this machine ran compared with the one the
    absolute targets were set on: the same peer code (wokkel's Router) in
    this run against the issue's figure, and the XTLS ceiling (TLS and
    base64 in memory, no sockets). Context for the absolute targets, which
    move with the machine where the ratios do not.
    """
    lines = []
    wokkel = _median(results.get("routing", {}).get("data", {}), "routers", "wokkel", "routerUs")
    if wokkel is not None:
        lines.append(
            "- wokkel's Router: %.1f µs of CPU per routed stanza in this run; ~%g µs on the machine the"
            " targets were set on (issue #7): this machine ran %.2f× as slow on the same code."
            % (wokkel, REFERENCE_WOKKEL_US, wokkel / REFERENCE_WOKKEL_US)
        )
    ceiling = _median(results.get("xtls_router", {}).get("data", {}), "ceilingMBps")
    if ceiling is not None:
        lines.append(
            "- XTLS ceiling (TLS over memory BIOs, base64 in XML, no sockets): %.1f MB/s in this run."
            % (ceiling,)
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, about a minute")
    arguments = parser.parse_args()
    sys.path.insert(0, HERE)
    import _common

    results: dict[str, dict[str, Any]] = {}
    for name, script, args, quick, timeout in BENCHMARKS:
        print("running %s ..." % (name,), file=sys.stderr, flush=True)
        results[name] = run(name, script, quick if arguments.quick else args, timeout)
    print("# xmppcomp benchmarks\n")
    for name, result in results.items():
        if "skipped" in result:
            print("## %s: skipped (%s)\n" % (name, result["skipped"]))
            continue
        text = _JSON_BLOCK.sub("", result.get("output", "")).strip()
        print(text + "\n")
        if "failed" in result:
            print("**%s failed**: %s\n" % (name, result["failed"]))
    print("## Targets (issue #7)\n")
    speed = machineSpeed(results)
    if speed:
        print("This machine:\n\n" + "\n".join(speed) + "\n")
    print(_common.table(["target", "measured (median)", "goal", "status"], targets(results)))
    combined = {
        name: {key: value for key, value in result.items() if key != "output"} for name, result in results.items()
    }
    for name, result in results.items():
        if "data" not in result and "output" in result:
            combined[name]["text"] = result["output"]
    _common.emitJSON("all", {"quick": arguments.quick, "results": combined})


if __name__ == "__main__":
    main()
