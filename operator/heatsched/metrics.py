"""Prometheus metrics of the request paths (extender, webhook), owned by a registry passed in (no globals).

Why one module: the extender and the webhook may run in one process or in several; each builds its metrics on
the registry its process serves at /metrics. Names follow Prometheus conventions: `heatsched_` prefix, base
units (seconds, watts), `_total` for counters. The site and residency gauges are read from the controller's
Store at scrape time (controller/metrics.py).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# 0.25 ms .. 2.5 s: the extender answers in about a millisecond; kube-scheduler gives it httpTimeout (5 s)
LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
FILTER_OUTCOMES = ("feasible", "heat", "residency", "unknown_node", "relaxed")


class ExtenderMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.latency = Histogram("heatsched_extender_request_duration_seconds",
                                 "Time to answer a kube-scheduler extender call, by verb", ["verb"],
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.nodes = Counter("heatsched_extender_filter_nodes_total",
                             "Nodes judged by the filter verb, by outcome (heat: held back by a hot tank; "
                             "residency/unknown_node: outside the pod's residency or of unknown country; relaxed: "
                             "hot but taken because the pod waited past the heat wait bound)", ["outcome"],
                             registry=registry)
        self.bad = Counter("heatsched_extender_bad_requests_total", "Extender calls answered 400, by verb", ["verb"],
                           registry=registry)
        for verb in ("filter", "prioritize"):
            self.latency.labels(verb)
            self.bad.labels(verb)
        for outcome in FILTER_OUTCOMES:
            self.nodes.labels(outcome)


class AdmissionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.results = Counter("heatsched_admission_requests_total",
                               "Admission reviews answered by the residency webhook, by webhook and result "
                               "(allowed, refused, malformed: answered 400)", ["webhook", "result"],
                               registry=registry)
        for webhook in ("pods", "bindings"):
            for result in ("allowed", "refused", "malformed"):
                self.results.labels(webhook, result)
