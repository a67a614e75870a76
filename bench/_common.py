"""
Helpers shared by the benchmarks: process accounting from /proc, the
median/min/max summary, Markdown and JSON output, child processes started
on loopback and waited for, and the certificate and credential files a
router needs. Run by hand only; never imported by the test suite.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Iterable, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

LOOPBACK = "127.0.0.1"
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def logToFile(path: str, level: str) -> None:
    """
    Send this process's Twisted log to the file at C{path}, as C{twistd
    xmppcomp-router --logfile PATH --log-level LEVEL} does: xmppcomp's
    events below C{level} (C{"info"}, C{"warn"}) are dropped where they are
    made (an installed L{xmppcomp.logs.LogLevelFilter}), and twistd's text
    observer writes every other event.
    """
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from xmppcomp.logs import LogLevelFilter

    LogLevelFilter(level).install()
    globalLogBeginner.beginLoggingTo([textFileLogObserver(open(path, "a"))], redirectStandardIO=False)


def cpuSeconds(pid: int) -> float:
    """
    CPU seconds of process C{pid} so far: the sum over its threads of the
    first field of C{/proc/PID/task/TID/schedstat}, the nanoseconds each
    ran on a CPU (user and kernel alike, as C{utime + stime} in
    C{/proc/PID/stat} but exact rather than in clock ticks of 10 ms).

    C{/proc/PID/schedstat} alone is the main thread's; threads that exited
    are not counted (C{/proc/PID/stat} counts them): the routers measured
    here keep their threads for the whole run. Where schedstat is missing
    (a kernel without C{CONFIG_SCHED_INFO}), falls back to
    C{/proc/PID/stat}'s ticks, with a warning on stderr.
    """
    if not _SCHEDSTAT:
        return _tickSeconds(pid)
    try:
        threads = os.listdir("/proc/%d/task" % (pid,))
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    total = 0
    for tid in threads:
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid), "rb") as f:
                total += int(f.read().split(None, 1)[0])
        except FileNotFoundError:
            continue  # the thread exited since the listing
    return total / 1e9


def _tickSeconds(pid: int) -> float:
    """
    C{utime + stime} of process C{pid} from C{/proc/PID/stat}, in seconds
    (clock ticks: 10 ms of resolution).
    """
    with open("/proc/%d/stat" % (pid,), "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    # Fields 14 and 15 (utime, stime); [0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / _TICKS


_SCHEDSTAT = os.path.exists("/proc/self/schedstat")
if not _SCHEDSTAT:
    print("bench: no /proc/PID/schedstat on this kernel; CPU read in 10 ms ticks from /proc/PID/stat", file=sys.stderr)


def ownCpuSeconds() -> float:
    """
    User plus system CPU seconds of this process.
    """
    return time.process_time()


def rssBytes(pid: int) -> int:
    """
    Resident set size of process C{pid}, in bytes.
    """
    with open("/proc/%d/statm" % (pid,), "rb") as f:
        return int(f.read().split()[1]) * _PAGE


def summary(values: Sequence[float]) -> dict[str, float]:
    """
    Median, minimum and maximum of C{values}, and how many there were.
    """
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }


def fmt(s: dict[str, float], digits: int = 1) -> str:
    """
    C{median (min–max)} for a Markdown cell.
    """
    return "%.*f (%.*f–%.*f)" % (digits, s["median"], digits, s["min"], digits, s["max"])


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """
    A Markdown table; the first column is left-aligned, the others right.
    """
    lines = ["| " + " | ".join(headers) + " |"]
    lines.append("| --- | " + " | ".join("---:" for _ in headers[1:]) + " |")
    for row in rows:
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def emitJSON(name: str, data: Any) -> None:
    """
    Print the machine-readable results in one fenced block.
    """
    print("\n```json")
    print(json.dumps({"benchmark": name, **data}, indent=1, sort_keys=True))
    print("```")


def waitForPort(port: int, timeout: float = 20.0, process: subprocess.Popen[Any] | None = None) -> None:
    """
    Wait until C{port} on loopback accepts a TCP connection.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError("process exited with %s before listening" % (process.returncode,))
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("nothing listens on %s:%d after %g s" % (LOOPBACK, port, timeout))
            time.sleep(0.05)


def freePorts(count: int) -> list[int]:
    """
    Ports free on loopback right now.
    """
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            sockets.append(s)
            s.bind((LOOPBACK, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def startPython(script: str, *args: str, logPath: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """
    Run C{bench/<script>} in its own Python process; it prints one JSON line
    (its ports) once it listens.

    @return: the process and what it printed.
    """
    log = open(logPath, "ab")
    process = subprocess.Popen(
        [sys.executable, os.path.join(HERE, script), *args],
        stdout=subprocess.PIPE,
        stderr=log,
        cwd=ROOT,
    )
    log.close()
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(10)
        with open(logPath, "rb") as f:
            tail = f.read()[-3000:].decode("utf-8", "replace")
        raise RuntimeError("%s exited (%s) before it listened:\n%s" % (script, process.returncode, tail))
    return process, json.loads(line)


def startWithSpec(
    script: str, directory: str, name: str, spec: dict[str, Any], *extra: str
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """
    Write C{spec} to C{directory}/C{name}.json and run C{script} with its
    path (then C{extra}), its standard error in C{name}.err
    (L{startPython}).
    """
    specPath = os.path.join(directory, name + ".json")
    with open(specPath, "w") as f:
        json.dump(spec, f)
    return startPython(script, specPath, *extra, logPath=os.path.join(directory, name + ".err"))


def startOurRouter(
    directory: str, files: "RouterFiles", identity: str, maxSessions: int, script: str = "_router_ours.py", *extra: str
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """
    Start our router (C{script}: C{_router_ours.py}, or one that runs it
    with hooks, given the spec's path first and C{extra} after) for
    C{files}' domain, with C{identity} allowed to bind the names below it,
    its spec and log in C{directory}.

    @return: the process and the ports it printed.
    """
    spec = {
        "domain": files.domain,
        "credentials": files.credentials,
        "certificate": files.certificate,
        "key": files.key,
        "authorization": {identity: ["*." + identity]},
        "log": os.path.join(directory, "router.log"),
        "limits": {"maxSessions": maxSessions},
    }
    return startWithSpec(script, directory, "router", spec, *extra)


def startRouterAndAgent(
    directory: str,
    files: "RouterFiles",
    authorization: dict[str, list[str]],
    agent: str,
    agentSecret: str,
    processes: list[Any],
    **spec: Any,
) -> dict[str, Any]:
    """
    Start our router for C{files}' domain (XEP-0225 with C{authorization},
    XEP-0114 with C{files}' secrets, and C{spec} for the rest of its spec),
    then the demo agent (C{_agent.py}) connected to it over XEP-0114 as
    C{agent}; specs and logs in C{directory}. Each process is appended to
    C{processes} as soon as it runs, so that the caller stops it whatever
    fails next.

    @return: the ports the router printed.
    """
    routerSpec = {
        "domain": files.domain,
        "credentials": files.credentials,
        "certificate": files.certificate,
        "key": files.key,
        "authorization": authorization,
        "accept": files.secretFiles,
        "log": os.path.join(directory, "router.log"),
        **spec,
    }
    router, info = startWithSpec("_router_ours.py", directory, "router", routerSpec)
    processes.append(router)
    agentSpec = {
        "server": "tcp:host=127.0.0.1:port=%d" % (info["xep0114"],),
        "domain": files.domain,
        "hostname": agent,
        "secret": agentSecret,
        "log": os.path.join(directory, "agent.log"),
    }
    process, _ = startWithSpec("_agent.py", directory, "agent", agentSpec)
    processes.append(process)
    return info


def runWithRouter(process: subprocess.Popen[Any], go: Callable[[], object]) -> None:
    """
    Run the reactor with C{go} called once it runs (after freezing the
    startup objects, as twistd's plugins do), then stop the router
    C{process}, whatever happened. C{go} stops the reactor.
    """
    import gc

    from twisted.internet import reactor

    try:
        reactor.callWhenRunning(gc.freeze)
        reactor.callWhenRunning(go)
        reactor.run()
    finally:
        stop(process)


def measureInReactor(name: str, measure: Callable[[Any], Any], arguments: Any) -> dict[str, Any]:
    """
    Run the reactor until C{measure(arguments)} (a L{Deferred} firing with
    a dict) is done, and return that dict; a failure ends the process,
    saying that the C{name} benchmark failed, with the traceback.
    """
    from twisted.internet import defer, reactor

    outcome: dict[str, Any] = {}

    @defer.inlineCallbacks
    def go() -> Any:
        try:
            outcome.update((yield measure(arguments)))
        except Exception:
            import traceback

            outcome["error"] = traceback.format_exc()
        finally:
            reactor.stop()

    reactor.callWhenRunning(go)
    reactor.run()
    if "error" in outcome:
        raise SystemExit("%s benchmark failed:\n%s" % (name, outcome["error"]))
    return outcome


def stop(process: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """
    SIGTERM, then SIGKILL if the process is still there after C{timeout}.
    """
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


class RouterFiles:
    """
    A CA, the router's certificate and key, a SCRAM credentials file and
    XEP-0114 secret files, in C{directory}.
    """

    def __init__(self, directory: str, domain: str, scram: dict[str, str], accept: dict[str, str]) -> None:
        from xmppcomp.stream.sasl import FileCredentialStore
        from xmppcomp.testing import makeCertificateAuthority, writePem

        self.directory = directory
        self.domain = domain
        self.ca = makeCertificateAuthority()
        self.certificate, self.key = writePem(self.ca.issue(dnsNames=[domain]), directory)
        self.credentials = os.path.join(directory, "credentials.json")
        store = FileCredentialStore(self.credentials)
        for identity, secret in scram.items():
            store.add(identity, secret)
        store.save()
        self.secretFiles = {}
        for hostname, secret in accept.items():
            path = os.path.join(directory, "secret-" + hostname)
            with open(path, "w") as f:
                f.write(secret + "\n")
            self.secretFiles[hostname] = path

    def trust(self) -> Any:
        """
        The component side's trust in the router certificate.
        """
        from xmppcomp.stream import tls

        return tls.CATrust([self.ca.certificate.original.to_cryptography()])
