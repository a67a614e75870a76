# -*- test-case-name: tests.test_metrics -*-
"""
Metrics in Prometheus format (C{prometheus_client}).

A L{Metrics} holds every xmppcomp metric in a registry of its own
(L{Metrics.registry}): the twistd plugins make one and hand it to the
router service, the component, the confirmer, the XTLS handler and the
request trackers, and serve it at C{/metrics}. Nothing is registered at
module level: importing this module changes nothing in
C{prometheus_client} (its global C{REGISTRY} and its settings are left
alone), and an application that embeds xmppcomp passes its own
L{Metrics}, or gets a private one per object, or none.

Hot paths use children bound once (L{Metrics.stanzasBounced}) rather than
C{.labels()} per event; the busiest, the count of routed stanzas, is a
plain dict of ints (L{Metrics.stanzasRouted}) read by a collector at
scrape time: a prometheus_client C{inc()} (a lock and a float) was ~7% of
the router's CPU per routed stanza. L{Metrics.resource} serves the
registry as a twisted.web resource (mounted at C{/metrics} next to
another resource by L{withMetrics}), without the C{_created} series beside every counter and
histogram: they double the scrape and say nothing an operator needs here.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Metric
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

__all__ = ["Metrics", "MetricsResource", "NoCount", "withMetrics"]


class NoCount:
    """
    A counter (or gauge) that counts nothing: the default of the objects
    that are given no L{Metrics} and are made too often for a registry of
    their own (one per negotiation).
    """

    __slots__ = ()

    def inc(self, amount: float = 1) -> None:
        """
        Count nothing.
        """

    def dec(self, amount: float = 1) -> None:
        """
        Count nothing.
        """

    def set(self, value: float) -> None:
        """
        Keep nothing.
        """

    def observe(self, amount: float) -> None:
        """
        Keep nothing.
        """

    def labels(self, *values: str) -> NoCount:
        """
        Itself, for every label value.
        """
        return self


class _RoutedCollector:
    """
    Exports a router's stanza counts (L{Metrics.stanzasRouted}) as a
    counter.
    """

    def __init__(self, counts: dict[str, int]) -> None:
        self._counts = counts

    def collect(self) -> list[CounterMetricFamily]:
        family = CounterMetricFamily(
            "xmppcomp_router_stanzas_routed",
            "Stanzas the router delivered to a component, by stanza kind.",
            labels=["kind"],
        )
        for kind, count in self._counts.items():
            family.add_metric([kind], count)
        return [family]


class _WithoutCreated:
    """
    A registry's metrics without their C{_created} samples (what
    C{prometheus_client.disable_created_metrics} would do for the whole
    process, done for one scrape).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            # collect() makes new Metric objects every time: ours to change.
            metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric


class Metrics:
    """
    Every xmppcomp metric, in a registry of its own.

    @ivar registry: the L{CollectorRegistry} holding them all.
    @ivar routerSessions: component sessions attached to the router, by
        C{kind}.
    @ivar routerBoundNames: hostnames bound in the router's routing table
        (a shared name counts once).
    @ivar routerNameSessions: sessions bound to each shared name of the
        router, by C{hostname} (shared names only, while bound: at most
        the names the router's limits let its sessions bind).
    @ivar stanzasRouted: stanzas routed, by kind, for every router given
        this object: C{stanzasRouted[name] += 1} on the hot path; exported
        as C{xmppcomp_router_stanzas_routed_total}.
    @ivar negotiationFailures: stream negotiations that failed, by C{side}
        (C{initiating}, C{receiving}) and C{condition}.
    @ivar confirmations: XEP-0070 confirmations asked over XMPP, by
        C{outcome}.
    @ivar confirmerRefusals: requests the confirmer refused without asking
        anyone, by C{reason}: C{forbidden} (the access rules), C{replayed}
        (a used or expired transaction id), C{rate_limited} (a rate or
        pending limit: an attack, or limits too tight for the traffic).
    @ivar confirmationSeconds: seconds from asking a JID to its answer.
    @ivar pendingConfirmations: XEP-0070 confirmations asked and not
        answered yet.
    @ivar xtlsTunnels: open XTLS tunnels.
    @ivar xtlsBytes: application bytes through XTLS tunnels, by
        C{direction}.
    @ivar xtlsTunnelsOpened: XTLS tunnels opened (handshake complete),
        since the start.
    @ivar xtlsTunnelsRefused: XTLS tunnels refused before they opened, by
        C{by} (C{local}: this end answered with the error; C{peer}: the
        peer did) and stanza error C{condition} (C{resource-constraint},
        C{not-acceptable}, C{service-unavailable}, C{conflict}, ...).
    @ivar iqAnswersMismatched: IQs with the id of one of our pending
        requests that did not come from an entity allowed to answer it
        (L{xmppcomp.iqtracker}), by C{requester} (C{component}, C{xtls},
        C{negotiation}, C{httpauth}): a steady rise is someone guessing
        answers, or a server stamping unexpected senders.
    @ivar bindRefusals: hostname binds the server refused (the component's
        side), by C{hostname} and stanza error C{condition}
        (C{conflict}, C{resource-constraint}, C{not-allowed}, ...); the
        hostnames are the component's own, a bounded set.
    """

    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry(auto_describe=True)
        self.routerSessions = Gauge(
            "xmppcomp_router_sessions",
            "Component sessions attached to the router.",
            ["kind"],
            registry=registry,
        )
        self.routerBoundNames = Gauge(
            "xmppcomp_router_bound_names",
            "Hostnames bound in the router's routing table.",
            registry=registry,
        )
        self.routerNameSessions = Gauge(
            "xmppcomp_router_name_sessions",
            "Sessions bound to each shared name of the router.",
            ["hostname"],
            registry=registry,
        )
        self.stanzasRouted: dict[str, int] = {"message": 0, "presence": 0, "iq": 0}
        registry.register(_RoutedCollector(self.stanzasRouted))
        self._bounced = Counter(
            "xmppcomp_router_stanzas_bounced_total",
            "Stanzas the router answered with a stanza error, by condition.",
            ["condition"],
            registry=registry,
        )
        self.negotiationFailures = Counter(
            "xmppcomp_negotiation_failures_total",
            "Stream negotiations that failed, by side and condition.",
            ["side", "condition"],
            registry=registry,
        )
        self.confirmations = Counter(
            "xmppcomp_httpauth_confirmations_total",
            "XEP-0070 confirmations asked over XMPP, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.confirmerRefusals = Counter(
            "xmppcomp_httpauth_refusals_total",
            "XEP-0070 requests refused without asking, by reason.",
            ["reason"],
            registry=registry,
        )
        self.plaintextAnswersRefused = Counter(
            "xmppcomp_httpauth_plaintext_answers_refused_total",
            "Plaintext answers refused for XEP-0070 confirmations asked through XTLS.",
            registry=registry,
        )
        self.confirmationSeconds = Histogram(
            "xmppcomp_httpauth_confirmation_seconds",
            "Seconds from asking a JID to its answer.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, float("inf")),
            registry=registry,
        )
        self.pendingConfirmations = Gauge(
            "xmppcomp_httpauth_pending_confirmations",
            "XEP-0070 confirmations asked and not answered yet.",
            registry=registry,
        )
        self.xtlsTunnels = Gauge(
            "xmppcomp_xtls_tunnels",
            "Open XTLS tunnels.",
            registry=registry,
        )
        self.xtlsBytes = Counter(
            "xmppcomp_xtls_bytes_total",
            "Application bytes through XTLS tunnels, by direction.",
            ["direction"],
            registry=registry,
        )
        self.xtlsTunnelsOpened = Counter(
            "xmppcomp_xtls_tunnels_opened_total",
            "XTLS tunnels opened (handshake complete).",
            registry=registry,
        )
        self.xtlsTunnelsRefused = Counter(
            "xmppcomp_xtls_tunnels_refused_total",
            "XTLS tunnels refused before they opened, by who refused and stanza error condition.",
            ["by", "condition"],
            registry=registry,
        )
        self.iqAnswersMismatched = Counter(
            "xmppcomp_iq_answers_mismatched_total",
            "IQ answers ignored: the id of a pending request, from a sender not allowed to answer it.",
            ["requester"],
            registry=registry,
        )
        self.bindRefusals = Counter(
            "xmppcomp_bind_refusals_total",
            "Hostname binds the server refused, by hostname and condition.",
            ["hostname", "condition"],
            registry=registry,
        )

    def stanzasBounced(self, condition: str) -> Counter:
        """
        The bounce counter of C{condition}.
        """
        return self._bounced.labels(condition)

    def countNegotiationFailure(self, side: str, condition: str) -> None:
        """
        Count a failed (or refused) stream negotiation.

        @param side: C{"initiating"} or C{"receiving"}.
        @param condition: the stream error or SASL failure condition (or
            another short reason: a bounded set).
        """
        self.negotiationFailures.labels(side, condition).inc()

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """
        The current value of the sample C{name} (with C{labels}), 0 when
        there is none yet.
        """
        return self.registry.get_sample_value(name, labels or {}) or 0.0

    def exposition(self) -> bytes:
        """
        Every metric in the Prometheus text format, without the
        C{_created} series.
        """
        return generate_latest(_WithoutCreated(self.registry))

    def resource(self) -> MetricsResource:
        """
        A twisted.web resource serving these metrics.
        """
        return MetricsResource(self)


class MetricsResource(Resource):
    """
    Serves a L{Metrics} in the Prometheus text format.

    @ivar metrics: what it serves.
    """

    isLeaf = True

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self.metrics = metrics

    def render_GET(self, request: IRequest) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        return self.metrics.exposition()


class _MetricsAndSite(Resource):
    """
    The root of the HTTP-auth listener with metrics: C{/metrics} is the
    Prometheus text (L{Metrics.resource}), without authentication; every
    other path goes to C{site}, the confirmer's resource, unchanged (its
    prepath and postpath are as without this).

    @ivar _site: the confirmer's resource.
    @ivar _metrics: the metrics resource.
    """

    def __init__(self, site: IResource, metrics: Metrics) -> None:
        super().__init__()
        self._site = site
        self._metrics = metrics.resource()

    def getChildWithDefault(self, path: bytes, request: IRequest) -> IResource:
        if path == b"metrics" and not request.postpath:
            return self._metrics
        # Put the segment back: the site resolves the whole path itself.
        request.postpath.insert(0, request.prepath.pop())
        return self._site

    def render(self, request: IRequest) -> bytes | int:
        # Only reached for a request without any path segment, which
        # twisted.web does not make; serve it as the site would.
        return self._site.render(request)


def withMetrics(resource: IResource, metrics: Metrics) -> IResource:
    """
    C{resource}, with C{/metrics} serving C{metrics} next to it (see
    L{_MetricsAndSite}).
    """
    return _MetricsAndSite(resource, metrics)
