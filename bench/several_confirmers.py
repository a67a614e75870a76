"""
Several confirmers, one truth (issue 19, section 5): confirmations per
second of the XEP-0070 confirmer with one instance and with two instances
behind one name, both on one Redis, in the same run, with the Redis round
trips and the CPU of every process per confirmation.

    python bench/several_confirmers.py [--seconds 4] [--concurrency 400] [--runs 5] [--form both]
    python bench/several_confirmers.py --quick      # under a minute

The deployed topology of C{bench/confirmer.py --topology separate}, with
every process started once for the whole run: our router
(C{bench/_router_ours.py}, with C{shared_names} for the pair's name only),
the answering agent (C{bench/_agent.py}, XEP-0114, confirming everything:
it stands for the users' clients), a private C{redis-server} (no
persistence, C{noeviction}, a free loopback port) and four C{twistd -n
xmppcomp} confirmers (XEP-0225, TLS, SCRAM):

 - C{1 × memory}: one instance at C{memory.example.net}, the state in the
   process (the default): the in-project baseline;
 - C{1 × Redis}: one instance at C{redis.example.net} on the Redis (its
   own key prefix);
 - C{2 × Redis}: two instances of one identity bound to the one name
   C{pair.example.net} (the router's C{shared_names}), both on the Redis
   (one prefix), the clients spread over both HTTP listeners (client
   C{i} on listener C{i mod 2}).

Each measurement is a closed loop of C{--concurrency} keep-alive clients
(C{bench/_httpload.py}) for C{--seconds}: every client does 401 →
credentials → confirm → 200 and starts again at once, so the confirmers
work through a queue (throughput; the latencies are those of that queue).
Two forms of confirmation (C{--form}): C{iq}, a full JID asked with an IQ
(the router sends the answer back to the session that asked, whichever
instance that is: nothing to relay), and C{message}, a bare JID asked with
a message (the answer is a message from the user, which the router
balances over the pair by the user's bare JID: about half the answers
reach the other instance, which relays them over Redis pub/sub, as an
ejabberd in front of two connections would make them do). The setups and
forms take turns within each run (the order rotated run by run), so the
machine's drift falls on all alike; ratios to the baseline are taken run
by run.

Measured per setup: confirmations/s; the median and p99 latency of the
request with credentials; the CPU of each process (C{/proc/PID/task/*/
schedstat}, see C{bench/README.md}) per confirmation (each confirmer per
confirmation it served); Redis C{INFO commandstats} before and after, the
calls over the confirmations (C{EVALSHA} and C{EVAL} together, C{PUBLISH},
and every command); the share of answers relayed (each relay is one
C{PUBLISH}). Every confirmation must end in 200; anything else is an
error and the exit status is 1.

On a two-core machine the pair cannot run faster than the two cores: the
confirmers, the router, the agent, Redis and this load process all share
them. The output says how many cores there are, the sum of the CPU of all
processes per confirmation (what the machine can give), and the ceiling
with a core per process, from the CPU per confirmation of each.

The confirmers run with the limits meant against abuse lifted (and only
those), as in C{bench/confirmer.py}: every client is at 127.0.0.1 and the
JIDs come back run after run (C{attempts_per_client},
C{remembered_per_jid}, C{remembered_per_domain}), and C{max_remembered}
too, which a time-bounded run could fill. Run by hand, never by the test
suite; loopback only, bounded in count and time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
from _httpload import HTTPLoadConnection, connectMany  # noqa: E402
from confirmer import Requests, confirmOnce, percentile  # noqa: E402

from twisted.internet import defer, reactor, task  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint  # noqa: E402

#: Where Debian installs Redis.
REDIS_SERVER = "/usr/bin/redis-server"

DOMAIN = "example.net"
AGENT = "agent.example.net"
#: Seconds a process may take to come up, and the confirmers to confirm.
START_TIMEOUT = 40.0

#: Seconds a confirmer waits for an answer ([httpauth] timeout): an answer
#: that never comes (lost between the instances, say) ends the request with
#: an error the table counts, rather than holding the run.
ANSWER_TIMEOUT = 20

#: One confirmer: its component (XEP-0225 to the router), its listener and
#: its limits; C{store} is empty (memory) or an C{[httpauth.store]} table.
CONFIG = """
[component]
server = "tcp:host=127.0.0.1:port={routerPort}"
server_domain = "{domain}"
hostnames = ["{name}"]
identity = "{name}"
secret = {{ file = "{secretFile}" }}
[component.trust]
ca_file = "{caFile}"
[xtls]
enabled = false
[httpauth]
listen = "tcp:{port}:interface=127.0.0.1:backlog=1024"
allowed_hosts = ["127.0.0.1"]
access_log = "none"
timeout = {timeout}
drain_timeout = 2
[httpauth.limits]
pending_per_jid = {pending}
pending_total = {pending}
attempts_per_client = 1000000000
remembered_per_jid = 1000000000
remembered_per_domain = 1000000000
max_remembered = 1000000000
{store}"""

STORE = """[httpauth.store]
redis = "tcp:host=127.0.0.1:port={redisPort}"
prefix = "{prefix}"
"""

#: The setups: label, the name the instances bind, their Redis key prefix
#: (C{None}: the memory store), how many instances.
SETUPS = [
    ("1 × memory", "memory.example.net", None, 1),
    ("1 × Redis", "redis.example.net", "one:", 1),
    ("2 × Redis, one name", "pair.example.net", "pair:", 2),
]
BASELINE = SETUPS[0][0]

#: Redis commands this benchmark sends itself (not the confirmers).
OWN_COMMANDS = {"info"}

#: The commands a confirmer sends Redis itself, each a round trip. INFO
#: commandstats also counts every command a Lua script runs (GET, ZADD,
#: ... inside EVALSHA): those are work on the server, not round trips, and
#: are reported apart. (GET and SET also come from a confirmer when it
#: connects, for the epoch: never during a measurement, as no connection
#: is made then.)
ROUND_TRIPS = {"eval", "evalsha", "publish", "ping", "auth", "subscribe", "config|get", "hello", "select"}


class Redis:
    """
    A private redis-server on a free loopback port, as C{tests/redisserver.py}
    runs one: no persistence, C{noeviction}, its files in C{directory};
    stopped by its PID.
    """

    def __init__(self, directory: str) -> None:
        if not os.access(REDIS_SERVER, os.X_OK):
            raise SystemExit("%s is missing: install redis-server (.ci/run does)" % (REDIS_SERVER,))
        (self.port,) = _common.freePorts(1)
        home = os.path.join(directory, "redis")
        os.makedirs(home)
        config = os.path.join(home, "redis.conf")
        with open(config, "w") as f:
            f.write(
                "\n".join(
                    [
                        "port %d" % (self.port,),
                        "bind 127.0.0.1",
                        "protected-mode yes",
                        'save ""',
                        "appendonly no",
                        "daemonize no",
                        "maxmemory-policy noeviction",
                        "dir %s" % (home,),
                        "logfile %s" % (os.path.join(home, "redis.log"),),
                        "databases 1",
                        "",
                    ]
                )
            )
        self.process = subprocess.Popen([REDIS_SERVER, config], cwd=home, stdin=subprocess.DEVNULL)
        self.pid = self.process.pid
        _common.waitForPort(self.port, timeout=START_TIMEOUT, process=self.process)
        deadline = time.monotonic() + START_TIMEOUT
        while not self.command("PING").startswith(b"+PONG"):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server does not answer PING")
            time.sleep(0.05)

    def command(self, *args: str) -> bytes:
        """
        One command on a connection of its own (blocking: used only
        between measurements); the raw reply, a bulk string's content.
        """
        request = b"*%d\r\n" % (len(args),) + b"".join(
            b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args
        )
        with socket.create_connection((_common.LOOPBACK, self.port), timeout=10) as s:
            s.sendall(request)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("Redis closed the connection: %r" % (data[:200],))
                data += chunk
                head, found, rest = data.partition(b"\r\n")
                if not found:
                    continue
                if head.startswith(b"$"):
                    size = int(head[1:])
                    if len(rest) >= size + 2:
                        return rest[:size]
                else:
                    return head

    def commandStats(self) -> dict[str, int]:
        """
        Calls per command so far (C{INFO commandstats}), lower case.
        """
        calls = {}
        for line in self.command("INFO", "commandstats").decode().splitlines():
            if line.startswith("cmdstat_"):
                name, _, fields = line[len("cmdstat_"):].partition(":")
                values = dict(field.split("=", 1) for field in fields.split(","))
                calls[name] = int(values["calls"])
        return calls

    def stop(self) -> None:
        _common.stop(self.process)


class Instance:
    """
    One C{twistd -n xmppcomp} confirmer connected to the router.
    """

    def __init__(self, directory: str, tag: str, name: str, routerPort: int, files: dict[str, str],
                 pending: int, store: str) -> None:
        (self.port,) = _common.freePorts(1)
        self.tag = tag
        self.name = name
        home = os.path.join(directory, tag)
        os.makedirs(home)
        config = os.path.join(home, "component.toml")
        with open(config, "w") as f:
            f.write(CONFIG.format(
                routerPort=routerPort, domain=DOMAIN, name=name, secretFile=files[name], caFile=files["ca"],
                port=self.port, pending=pending, store=store, timeout=ANSWER_TIMEOUT,
            ))
        log = open(os.path.join(home, "twistd.log"), "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
             "--logfile", os.path.join(home, "xmppcomp.log"), "--pidfile", os.path.join(home, "twistd.pid"),
             "-n", "xmppcomp", "--config", config],
            cwd=_common.ROOT,
            stdout=log,
            stderr=log,
            env=dict(os.environ, PYTHONPATH=_common.ROOT),
        )
        log.close()
        self.pid = self.process.pid
        self.requests = Requests(self.port)

    def stop(self) -> None:
        _common.stop(self.process)


class Deployment:
    """
    Every process of the benchmark: router, agent, Redis, the confirmers
    of every setup.

    @ivar setups: label to the setup's instances.
    """

    def __init__(self, directory: str, pending: int) -> None:
        self.processes: list[Any] = []
        self.setups: dict[str, list[Instance]] = {}
        names = sorted({name for _, name, _, _ in SETUPS})
        secrets = {name: os.urandom(16).hex() for name in names}
        agentSecret = os.urandom(16).hex()
        files = _common.RouterFiles(directory, DOMAIN, secrets, {AGENT: agentSecret})
        paths = {"ca": os.path.join(directory, "ca.pem")}
        with open(paths["ca"], "wb") as f:
            f.write(files.ca.certificate.dumpPEM())
        for name, secret in secrets.items():
            paths[name] = os.path.join(directory, name + ".secret")
            fd = os.open(paths[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secret + "\n")
        try:
            info = _common.startRouterAndAgent(
                directory,
                files,
                {name: [name] for name in names},
                AGENT,
                agentSecret,
                self.processes,
                sharedNames=[name for _, name, _, count in SETUPS if count > 1],
            )
            self.router, self.agent = (process.pid for process in self.processes[-2:])
            self.redis = Redis(directory)
            self.processes.append(self.redis)
            for label, name, prefix, count in SETUPS:
                store = "" if prefix is None else STORE.format(redisPort=self.redis.port, prefix=prefix)
                instances = []
                for i in range(count):
                    instance = Instance(directory, "%s-%d" % (name, i), name, info["xep0225"], paths, pending, store)
                    self.processes.append(instance)
                    instances.append(instance)
                self.setups[label] = instances
            for instances in self.setups.values():
                for instance in instances:
                    _common.waitForPort(instance.port, timeout=START_TIMEOUT, process=instance.process)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for process in reversed(self.processes):
            if isinstance(process, subprocess.Popen):
                _common.stop(process)
            else:
                process.stop()


def who(form: str, client: int) -> str:
    """
    The JID client C{client} asks for: full (IQ) or bare (message).
    """
    bare = "user%d@%s" % (client, AGENT)
    return bare + "/web" if form == "iq" else bare


@defer.inlineCallbacks
def waitReady(instance: Instance) -> Any:
    """
    Wait until a confirmation in each form succeeds through C{instance}.
    """
    [connection] = yield connectMany(TCP4ClientEndpoint(reactor, _common.LOOPBACK, instance.port), 1)
    deadline = time.monotonic() + START_TIMEOUT
    attempt = 0
    for form in ("iq", "message"):
        while True:
            attempt += 1
            code, _, _ = yield confirmOnce(
                connection, instance.requests, "ready-%s" % (who(form, 0),), "ready-%s-%d" % (instance.tag, attempt)
            )
            if code == 200:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("%s: no %s confirmation succeeded within %g s (last: %d); see its log in the"
                                   " run's directory" % (instance.tag, form, START_TIMEOUT, code))
            yield task.deferLater(reactor, 0.2, lambda: None)
    connection.transport.loseConnection()


class Clients:
    """
    The keep-alive connections of one setup, client C{i} on the listener
    of instance C{i mod n}.
    """

    def __init__(self, instances: list[Instance], connections: list[HTTPLoadConnection]) -> None:
        self.instances = instances
        self.connections = connections

    @classmethod
    @defer.inlineCallbacks
    def open(cls, instances: list[Instance], count: int) -> Any:
        connections: list[HTTPLoadConnection] = [None] * count  # type: ignore[list-item]
        for k, instance in enumerate(instances):
            mine = list(range(k, count, len(instances)))
            opened = yield connectMany(TCP4ClientEndpoint(reactor, _common.LOOPBACK, instance.port), len(mine))
            for i, connection in zip(mine, opened):
                connections[i] = connection
        # A challenge on each first, so the servers have every connection.
        yield defer.gatherResults(
            [c.request(instances[i % len(instances)].requests.plain) for i, c in enumerate(connections)]
        )
        return cls(instances, connections)

    def close(self) -> None:
        for c in self.connections:
            c.transport.loseConnection()


@defer.inlineCallbacks
def closedLoop(
    clients: Clients, form: str, seconds: float, tag: str, jidOf: Callable[[int], str] | None = None
) -> Any:
    """
    Every client confirms again and again for C{seconds}.

    @param jidOf: the JID client C{i} asks for (default: L{who} of
        C{form}).
    @return: the (status, latency ms) of each confirmation, and how many
        each instance served.
    """
    results: list[tuple[int, float]] = []
    served = [0] * len(clients.instances)
    n = len(clients.instances)
    end = time.perf_counter() + seconds

    @defer.inlineCallbacks
    def client(i: int, connection: HTTPLoadConnection) -> Any:
        requests = clients.instances[i % n].requests
        jid = who(form, i) if jidOf is None else jidOf(i)
        count = 0
        while time.perf_counter() < end:
            code, latency, _ = yield confirmOnce(connection, requests, jid, "%s-c%d-%d" % (tag, i, count))
            count += 1
            results.append((code, latency))
            served[i % n] += 1

    yield defer.gatherResults([client(i, c) for i, c in enumerate(clients.connections)])
    return results, served


def cpu(pids: dict[str, int]) -> dict[str, float]:
    out = {name: _common.cpuSeconds(pid) for name, pid in pids.items()}
    out["load"] = _common.ownCpuSeconds()
    return out


@defer.inlineCallbacks
def measureOnce(deployment: Deployment, label: str, clients: Clients, form: str, seconds: float, tag: str) -> Any:
    instances = deployment.setups[label]
    pids = {"router": deployment.router, "agent": deployment.agent, "redis": deployment.redis.pid}
    for k, instance in enumerate(instances):
        pids["confirmer%d" % (k,)] = instance.pid
    statsBefore = deployment.redis.commandStats()
    before = cpu(pids)
    start = time.perf_counter()
    results, served = yield closedLoop(clients, form, seconds, tag)
    elapsed = time.perf_counter() - start
    after = cpu(pids)
    statsAfter = deployment.redis.commandStats()
    calls = {
        name: statsAfter.get(name, 0) - statsBefore.get(name, 0)
        for name in set(statsAfter) | set(statsBefore)
        if name not in OWN_COMMANDS and statsAfter.get(name, 0) != statsBefore.get(name, 0)
    }
    ok = [latency for code, latency in results if code == 200]
    statuses: dict[int, int] = {}
    for code, _ in results:
        statuses[code] = statuses.get(code, 0) + 1
    count = len(results)
    nan = float("nan")
    cpuSeconds = {name: after[name] - before[name] for name in after}
    return {
        "confirmations": count,
        "seconds": elapsed,
        "rate": count / elapsed,
        "p50": statistics.median(ok) if ok else nan,
        "p99": percentile(ok, 0.99) if ok else nan,
        "served": served,
        "cpu": cpuSeconds,
        "redisCalls": calls,
        "statuses": statuses,
    }


@defer.inlineCallbacks
def measure(arguments: argparse.Namespace) -> Any:
    directory = tempfile.mkdtemp(prefix="xmppcomp-several-")
    outcome: dict[str, Any] = {"runs": {}}
    deployment = Deployment(directory, max(arguments.concurrency, 16))
    opened: list[Clients] = []
    try:
        yield defer.gatherResults([waitReady(i) for instances in deployment.setups.values() for i in instances])
        clients = {}
        for label, _, _, _ in SETUPS:
            clients[label] = yield Clients.open(deployment.setups[label], arguments.concurrency)
            opened.append(clients[label])
        combos = [(label, form) for form in arguments.forms for label, _, _, _ in SETUPS]
        for label, form in combos:  # warm-up: scripts loaded, caches filled
            yield closedLoop(clients[label], form, arguments.warmup, "warm-%s-%s" % (label[:1], form))
        for run in range(arguments.runs):
            shift = run % len(combos)
            for label, form in combos[shift:] + combos[:shift]:
                yield task.deferLater(reactor, 0.3, lambda: None)
                result = yield measureOnce(
                    deployment, label, clients[label], form, arguments.seconds,
                    "m%d-%s-%s" % (run, SETUPS.index(next(s for s in SETUPS if s[0] == label)), form),
                )
                outcome["runs"].setdefault(form, {}).setdefault(label, []).append(result)
    finally:
        for c in opened:
            c.close()
        deployment.stop()
        if arguments.keep:
            print("run directory kept: %s" % (directory,), file=sys.stderr)
        else:
            shutil.rmtree(directory, ignore_errors=True)
    return outcome


def perConfirmation(run: dict[str, Any], name: str) -> float:
    return run["cpu"][name] / run["confirmations"] * 1e6


def derived(run: dict[str, Any]) -> dict[str, float]:
    """
    The per-confirmation figures of one measurement.
    """
    n = run["confirmations"]
    calls = run["redisCalls"]
    scripts = calls.get("evalsha", 0) + calls.get("eval", 0)
    out = {
        "rate": run["rate"],
        "p50": run["p50"],
        "p99": run["p99"],
        "routerUs": perConfirmation(run, "router"),
        "agentUs": perConfirmation(run, "agent"),
        "redisUs": perConfirmation(run, "redis"),
        "loadUs": perConfirmation(run, "load"),
        "allUs": sum(run["cpu"].values()) / n * 1e6,
        "scripts": scripts / n,
        "publish": calls.get("publish", 0) / n,
        "redisTotal": sum(c for name, c in calls.items() if name in ROUND_TRIPS) / n,
        "inScripts": sum(c for name, c in calls.items() if name not in ROUND_TRIPS) / n,
        "relayed": 100.0 * calls.get("publish", 0) / n,
    }
    for k, served in enumerate(run["served"]):
        # Each instance's CPU per confirmation it served; and its share of
        # all the confirmations (what the sum per confirmation adds up).
        out["confirmer%dUs" % (k,)] = run["cpu"]["confirmer%d" % (k,)] / max(1, served) * 1e6
    out["confirmersUs"] = sum(run["cpu"]["confirmer%d" % (k,)] for k in range(len(run["served"]))) / n * 1e6
    return out


def report(arguments: argparse.Namespace, outcome: dict[str, Any]) -> int:
    S, fmt = _common.summary, _common.fmt
    cores = os.cpu_count() or 1
    data: dict[str, Any] = {
        "cores": cores,
        "seconds": arguments.seconds,
        "concurrency": arguments.concurrency,
        "runs": arguments.runs,
        "forms": {},
    }
    errors = 0
    for form in arguments.forms:
        runs = outcome["runs"][form]
        rows = []
        formData: dict[str, Any] = {}
        base = runs[BASELINE]
        for label, _, _, count in SETUPS:
            each = [derived(r) for r in runs[label]]
            keys = list(each[0])
            summary = {k: S([d[k] for d in each]) for k in keys}
            summary["ratio"] = S([r["rate"] / b["rate"] for r, b in zip(runs[label], base)])
            merged: dict[int, int] = {}
            for r in runs[label]:
                for code, n in r["statuses"].items():
                    merged[code] = merged.get(code, 0) + n
            bad = sum(n for code, n in merged.items() if code != 200)
            errors += bad
            formData[label] = {**summary, "statuses": merged, "errors": bad, "raw": runs[label]}
            confirmers = " / ".join(fmt(summary["confirmer%dUs" % (k,)], 0) for k in range(count))
            rows.append([
                label,
                fmt(summary["rate"], 0),
                fmt(summary["ratio"], 2),
                fmt(summary["p50"], 1),
                fmt(summary["p99"], 1),
                confirmers,
                fmt(summary["routerUs"], 0),
                fmt(summary["agentUs"], 0),
                fmt(summary["redisUs"], 0),
                fmt(summary["loadUs"], 0),
                fmt(summary["allUs"], 0),
                "%.2f / %.2f / %.2f" % (summary["scripts"]["median"], summary["publish"]["median"],
                                        summary["redisTotal"]["median"]),
                "%.1f" % (summary["inScripts"]["median"],),
                fmt(summary["relayed"], 1),
                ", ".join("%d×%d" % (c, n) for c, n in sorted(merged.items())),
                str(bad),
            ])
        data["forms"][form] = formData
        what = ("a full JID, asked with an IQ" if form == "iq"
                else "a bare JID, asked with a message (answers balanced by the user's bare JID)")
        print("## Several confirmers, %s form (%s): %d clients in a closed loop, %g s per run, %d runs;"
              " median (min–max)\n" % (form, what, arguments.concurrency, arguments.seconds, arguments.runs))
        print(_common.table(
            ["setup", "confirmations/s", "× 1 × memory", "p50 ms", "p99 ms",
             "confirmer CPU µs per confirmation it served (each)", "router µs", "agent µs", "redis-server µs",
             "load µs", "all processes µs", "Redis round trips per confirmation: EVALSHA+EVAL / PUBLISH / all",
             "commands run inside the scripts per confirmation",
             "answers relayed %", "answers", "errors"],
            rows,
        ))
        pair = formData[SETUPS[-1][0]]
        confirmerUs = statistics.mean(pair["confirmer%dUs" % (k,)]["median"] for k in range(SETUPS[-1][3]))
        limits = {
            "router": pair["routerUs"]["median"],
            "agent (the users' side)": pair["agentUs"]["median"],
            "redis-server": pair["redisUs"]["median"],
        }
        projection = []
        for n in (1, 2, 4, 8):
            ceilings = {"the confirmers": n * 1e6 / confirmerUs}
            ceilings.update({name: 1e6 / us for name, us in limits.items()})
            bound = min(ceilings, key=ceilings.__getitem__)
            projection.append(["%d" % (n,), "%.0f" % (ceilings[bound],), bound])
        machine = cores * 1e6 / pair["allUs"]["median"]
        print(
            "\nCPU per confirmation: of each process over the confirmations of the run (a confirmer's over the"
            " confirmations it served); the load is this process. Redis: INFO commandstats before and after, over"
            " the confirmations (this benchmark's own INFO left out); round trips are the commands the confirmers"
            " sent (EVALSHA, EVAL, PUBLISH, PING, ...), the commands the Lua scripts ran inside them (which"
            " commandstats counts too) are apart. Relayed: PUBLISH calls over the confirmations (an instance"
            " publishes each answer it received for the other).\n"
        )
        measured = pair["rate"]["median"]
        if measured >= 0.7 * machine:
            verdict = ("The two-instance figure above is limited by the machine (it reaches %.0f %% of that"
                       " ceiling), not by the confirmers." % (100 * measured / machine,))
        else:
            verdict = ("The two-instance figure above is %.0f %% of that ceiling: something else than the CPU"
                       " held it back (look at the latencies and the logs: --keep)." % (100 * measured / machine,))
        print(
            "**This machine has %d cores.** Every process of the pair's run shares them: %.0f µs of CPU per"
            " confirmation in all, so the machine cannot give more than ~%.0f confirmations/s (%d × 10⁶ / %.0f),"
            " whatever the number of confirmers; the pair measured %.0f/s. %s With a core per process, from"
            " the pair's CPU per confirmation (each confirmer %.0f µs per confirmation it serves, including"
            " relaying; the router, the agent and Redis are one process each whatever the number of"
            " confirmers):\n"
            % (cores, pair["allUs"]["median"], machine, cores, pair["allUs"]["median"], measured, verdict,
               confirmerUs)
        )
        print(_common.table(["confirmers", "ceiling confirmations/s", "bound by"], projection))
        print()
        data["forms"][form]["projection"] = {"machineCeiling": machine, "rows": projection, "confirmerUs": confirmerUs}
    data["errors"] = errors
    _common.emitJSON("several_confirmers", data)
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each measurement")
    parser.add_argument("--concurrency", type=int, default=400, help="clients in the closed loop")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per setup and form")
    parser.add_argument("--form", choices=("iq", "message", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="2 runs of 1.5 s, 200 clients: under a minute")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory (configs, logs)")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.seconds, arguments.runs, arguments.concurrency, arguments.warmup = 1.5, 2, 200, 0.5
    arguments.forms = ["iq", "message"] if arguments.form == "both" else [arguments.form]
    outcome = _common.measureInReactor("several_confirmers", measure, arguments)
    if report(arguments, outcome):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
