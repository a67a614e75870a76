# -*- test-case-name: tests.test_process_state -*-
"""
Importing xmppcomp changes nothing process-wide (issue 17, item 5).

A fresh interpreter (so that no other test has imported xmppcomp, nor
built a plugin's service, yet) imports what xmppcomp builds on, takes a
snapshot of the process-wide state a library could change, imports every
module of xmppcomp, and takes the snapshot again:

  - the garbage collector: enabled, thresholds, frozen objects;
  - C{prometheus_client}: the metric names its global C{REGISTRY}
    collects, and whether a new counter has a C{_created} series (which
    C{disable_created_metrics} turns off for the whole process);
  - C{twisted.logger}: the state of C{globalLogPublisher} (its
    observers), and whether an xmppcomp logger's debug event reaches an
    observer (no minimum level in force);
  - the standard library's C{logging}: the root logger's level and
    handlers;
  - the interpreter's recursion limit and switch interval;
  - whether C{txredisapi} (which installs the global reactor when
    imported) and the global reactor are imported: the Redis store imports
    it only when it connects (issue 19).

Caches, the log level, metrics and gc tuning belong to objects the
twistd plugins make (L{xmppcomp.tap.PluginProcess},
L{xmppcomp.metrics.Metrics}, L{xmppcomp.jids.JIDCache}, ...).
"""

from __future__ import annotations

import textwrap

from twisted.trial.unittest import SynchronousTestCase

from .probehelpers import runProbe

_PROBE = textwrap.dedent(
    """
    import gc, importlib, json, logging, pkgutil, sys

    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter
    from twisted.logger import Logger, globalLogPublisher

    def createdSeries():
        registry = CollectorRegistry()
        counter = Counter("probe_total", "A probe.", registry=registry)
        counter.inc()
        return sorted(s.name for m in registry.collect() for s in m.samples)

    def publisherState():
        # Every attribute of the publisher (its observers among them),
        # lists by the identity of what they hold.
        state = {}
        for key, value in vars(globalLogPublisher).items():
            if isinstance(value, (list, tuple)):
                state[key] = [id(v) for v in value]
            else:
                state[key] = id(value)
        return state

    def snapshot():
        root = logging.getLogger()
        return {
            "gc enabled": gc.isenabled(),
            "gc thresholds": list(gc.get_threshold()),
            "gc frozen": gc.get_freeze_count(),
            "prometheus REGISTRY": sorted(m.name for m in prometheus_client.REGISTRY.collect()),
            "prometheus created series": createdSeries(),
            "twisted globalLogPublisher": publisherState(),
            "logging root level": root.level,
            "logging root handlers": [id(h) for h in root.handlers],
            "recursion limit": sys.getrecursionlimit(),
            "switch interval": sys.getswitchinterval(),
            "txredisapi imported": "txredisapi" in sys.modules,
            "reactor installed": "twisted.internet.reactor" in sys.modules,
        }

    before = snapshot()
    import xmppcomp
    failed = {}
    for info in pkgutil.walk_packages(xmppcomp.__path__, "xmppcomp."):
        try:
            importlib.import_module(info.name)
        except Exception as e:
            failed[info.name] = repr(e)
    after = snapshot()

    from xmppcomp.logs import Logger as XmppcompLogger
    seen = []
    XmppcompLogger(namespace="xmppcomp.probe", observer=seen.append).debug("probe")
    changed = {key: [before[key], after[key]] for key in before if before[key] != after[key]}
    print(json.dumps({"changed": changed, "failed": failed, "debugSeen": len(seen)}))
    """
)


class ImportChangesNothingTests(SynchronousTestCase):
    """
    Importing every module of xmppcomp leaves the process as it was.
    """

    def _probe(self) -> dict[str, object]:
        return runProbe(self, _PROBE)

    def test_nothingChanged(self) -> None:
        """
        Every module imports, and none of the process-wide state in the
        module docstring differs afterwards; an xmppcomp logger's debug
        event still reaches its observer.
        """
        report = self._probe()
        self.assertEqual(report["failed"], {})
        self.assertEqual(report["changed"], {})
        self.assertEqual(report["debugSeen"], 1)
