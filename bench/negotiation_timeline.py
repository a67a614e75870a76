"""
Where the time of one negotiation goes: a timeline of both ends, merged.

The router runs in its own process, as in ``negotiation_load.py``; both
processes record, with the system-wide monotonic clock, when each read
reaches the TLS layer and the XML stream, when each answer is sent and when
bytes reach the socket. The negotiation with the median latency of
``--count`` one-at-a-time negotiations is printed as one timeline, each
line with the time since the previous one: a step's cost on the critical
path is the gap between the read that asked and the socket write that
answers, and a hop between the processes is the gap between a write and
the other side's read.

    python bench/negotiation_timeline.py [--count 300]

A diagnostic, run by hand: the hooks cost a few microseconds per event,
so the total reads higher than ``negotiation_load.py``'s. Loopback only,
bounded in count.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

#: Events (time, side, what, detail) recorded in this process.
EVENTS: list[tuple[float, str, str, object]] = []


def install(side: str) -> None:
    """
    Record this process's reads, answers and socket writes in L{EVENTS}.
    """
    from twisted.internet import tcp
    from twisted.protocols import tls as twistedTLS

    from xmppcomp.stream.xmlstream import XmppXmlStream

    now = time.perf_counter
    record = EVENTS.append
    streamReceived = XmppXmlStream.dataReceived
    streamSend = XmppXmlStream.send
    tlsReceived = twistedTLS.TLSMemoryBIOProtocol.dataReceived
    socketWrite = tcp.Connection.writeSomeData
    accept = tcp.Port.doRead

    def dataReceived(self: Any, data: bytes) -> None:
        record((now(), side, "read", bytes(data[:32])))
        streamReceived(self, data)

    def send(self: Any, obj: Any) -> None:
        text = obj if isinstance(obj, (str, bytes)) else obj.toXml()
        record((now(), side, "answer", (text.encode() if isinstance(text, str) else text)[:32]))
        streamSend(self, obj)

    def tlsDataReceived(self: Any, data: bytes) -> None:
        record((now(), side, "tls read", len(data)))
        tlsReceived(self, data)

    def writeSomeData(self: Any, data: Any) -> Any:
        record((now(), side, "socket write", len(data)))
        return socketWrite(self, data)

    def doRead(self: Any) -> Any:
        record((now(), side, "accept", ""))
        return accept(self)

    XmppXmlStream.dataReceived = dataReceived  # type: ignore[method-assign]
    XmppXmlStream.send = send  # type: ignore[method-assign]
    twistedTLS.TLSMemoryBIOProtocol.dataReceived = tlsDataReceived  # type: ignore[method-assign]
    tcp.Connection.writeSomeData = writeSomeData  # type: ignore[method-assign]
    tcp.Port.doRead = doRead  # type: ignore[method-assign]


def router(specPath: str, eventsPath: str) -> None:
    """
    The router process: bench/_router_ours.py with the hooks, its events
    written to C{eventsPath} when it stops.
    """
    install("router")
    from twisted.internet import reactor

    def dump() -> None:
        with open(eventsPath, "wb") as f:
            pickle.dump(EVENTS[-20000:], f)

    reactor.addSystemEventTrigger("after", "shutdown", dump)
    sys.argv = [os.path.join(HERE, "_router_ours.py"), specPath]
    import _router_ours

    _router_ours.main()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300)
    arguments = parser.parse_args()
    import shutil
    import tempfile

    import _common
    import negotiation_load as nl
    from twisted.internet import defer, reactor

    nl.asComponentProcess()
    install("component")
    directory = tempfile.mkdtemp(prefix="xmppcomp-bench-timeline-")
    files = _common.RouterFiles(directory, nl.DOMAIN, {nl.IDENTITY: nl.SECRET}, {})
    eventsPath = os.path.join(directory, "router.events")
    # The spec's path comes first, then this script's arguments.
    process, info = nl.startRouter(directory, files, os.path.abspath(__file__), "--events", eventsPath)
    runs: list[tuple[float, float, list[tuple[float, str, str, object]]]] = []

    @defer.inlineCallbacks
    def go() -> Any:
        try:
            load = nl.Load(info["xep0225"], files)
            for _ in range(arguments.count):
                del EVENTS[:]
                start = time.perf_counter()
                latency = yield load.once()
                runs.append((start, latency, list(EVENTS)))
        finally:
            reactor.stop()

    _common.runWithRouter(process, go)
    with open(eventsPath, "rb") as f:
        routerEvents = pickle.load(f)
    shutil.rmtree(directory, ignore_errors=True)
    runs = runs[len(runs) // 4 :]  # past the warm-up
    runs.sort(key=lambda run: run[1])
    start, latency, events = runs[len(runs) // 2]
    end = start + latency
    merged = sorted(events + [e for e in routerEvents if start <= e[0] <= end])
    print("## One negotiation, the median of %d: %.3f ms to both names bound\n" % (len(runs), latency * 1000))
    print("| ms | +ms | side | event | detail |")
    print("| ---: | ---: | --- | --- | --- |")
    previous = start
    for when, side, what, detail in merged:
        print("| %.3f | %.3f | %s | %s | %r |" % ((when - start) * 1000, (when - previous) * 1000, side, what, detail))
        previous = when


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[2] == "--events":
        router(sys.argv[1], sys.argv[3])
    else:
        main()
