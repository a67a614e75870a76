# -*- test-case-name: tests.test_metrics -*-
"""
Metrics in Prometheus format (C{prometheus_client}), in one registry of
their own (L{REGISTRY}) so that embedding applications keep theirs clean.

Hot paths use children bound once (C{stanzasBounced}) rather than
C{.labels()} per event; the busiest, the count of routed stanzas, is a
plain dict of ints (L{STANZAS_ROUTED}) read by a collector at scrape time:
a prometheus_client C{inc()} (a lock and a float) was ~7% of the router's
CPU per routed stanza. L{metricsResource} serves the registry as a
twisted.web resource (mounted at C{/metrics} on an HTTP listener).
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.web.resource import Resource

# No "_created" series beside every counter: they double the scrape and
# say nothing an operator needs here.
prometheus_client.disable_created_metrics()

#: The registry of every xmppcomp metric.
REGISTRY = CollectorRegistry(auto_describe=True)

ROUTER_SESSIONS = Gauge(
    "xmppcomp_router_sessions",
    "Component sessions attached to the router.",
    ["kind"],
    registry=REGISTRY,
)
ROUTER_BOUND_NAMES = Gauge(
    "xmppcomp_router_bound_names",
    "Hostnames bound in the router's routing table.",
    registry=REGISTRY,
)
#: Stanzas routed, by kind, for every router of the process:
#: C{STANZAS_ROUTED[name] += 1} on the hot path; exported as
#: C{xmppcomp_router_stanzas_routed_total}.
STANZAS_ROUTED: dict[str, int] = {"message": 0, "presence": 0, "iq": 0}


class _RoutedCollector:
    """
    Exports L{STANZAS_ROUTED} as a counter.
    """

    def collect(self) -> list[CounterMetricFamily]:
        family = CounterMetricFamily(
            "xmppcomp_router_stanzas_routed",
            "Stanzas the router delivered to a component, by stanza kind.",
            labels=["kind"],
        )
        for kind, count in STANZAS_ROUTED.items():
            family.add_metric([kind], count)
        return [family]


REGISTRY.register(_RoutedCollector())
_BOUNCED = Counter(
    "xmppcomp_router_stanzas_bounced_total",
    "Stanzas the router answered with a stanza error, by condition.",
    ["condition"],
    registry=REGISTRY,
)
NEGOTIATION_FAILURES = Counter(
    "xmppcomp_negotiation_failures_total",
    "Stream negotiations that failed, by side and condition.",
    ["side", "condition"],
    registry=REGISTRY,
)
CONFIRMATIONS = Counter(
    "xmppcomp_httpauth_confirmations_total",
    "XEP-0070 confirmations asked over XMPP, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
#: Requests the confirmer refused without asking anyone, by reason:
#: C{forbidden} (the access rules), C{replayed} (a used or expired
#: transaction id), C{rate_limited} (a rate or pending limit: an attack,
#: or limits too tight for the traffic).
CONFIRMER_REFUSALS = Counter(
    "xmppcomp_httpauth_refusals_total",
    "XEP-0070 requests refused without asking, by reason.",
    ["reason"],
    registry=REGISTRY,
)
CONFIRMATION_SECONDS = Histogram(
    "xmppcomp_httpauth_confirmation_seconds",
    "Seconds from asking a JID to its answer.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, float("inf")),
    registry=REGISTRY,
)
PENDING_CONFIRMATIONS = Gauge(
    "xmppcomp_httpauth_pending_confirmations",
    "XEP-0070 confirmations asked and not answered yet.",
    registry=REGISTRY,
)
XTLS_TUNNELS = Gauge(
    "xmppcomp_xtls_tunnels",
    "Open XTLS tunnels.",
    registry=REGISTRY,
)
XTLS_BYTES = Counter(
    "xmppcomp_xtls_bytes_total",
    "Application bytes through XTLS tunnels, by direction.",
    ["direction"],
    registry=REGISTRY,
)
#: IQs with the id of one of our pending requests that did not come from
#: an entity allowed to answer it (L{xmppcomp.iqtracker}), by requester
#: (C{component}, C{xtls}, C{negotiation}, C{httpauth}): a steady rise is
#: someone guessing answers, or a server stamping unexpected senders.
IQ_ANSWERS_MISMATCHED = Counter(
    "xmppcomp_iq_answers_mismatched_total",
    "IQ answers ignored: the id of a pending request, from a sender not allowed to answer it.",
    ["requester"],
    registry=REGISTRY,
)
#: Hostname binds the server refused (the component's side), by hostname
#: and stanza error condition (C{conflict}, C{resource-constraint},
#: C{not-allowed}, ...); the hostnames are the component's own, a bounded
#: set.
BIND_REFUSALS = Counter(
    "xmppcomp_bind_refusals_total",
    "Hostname binds the server refused, by hostname and condition.",
    ["hostname", "condition"],
    registry=REGISTRY,
)

def stanzasBounced(condition: str) -> Counter:
    """
    The bounce counter of C{condition}.
    """
    return _BOUNCED.labels(condition)


class MetricsResource(Resource):
    """
    Serves L{REGISTRY} in the Prometheus text format.
    """

    isLeaf = True

    def render_GET(self, request: object) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))  # type: ignore[attr-defined]
        return generate_latest(REGISTRY)


def metricsResource() -> MetricsResource:
    """
    A resource serving every xmppcomp metric.
    """
    return MetricsResource()
