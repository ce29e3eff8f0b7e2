"""Prometheus metrics of the operator, read from the Store at scrape time (GET /metrics on the extender port).

Why a collector and not counters updated in handlers: the values (drift, site state) already live in the
Store; reading them when Prometheus scrapes keeps one source and costs nothing between scrapes. The registry
belongs to the Operator (no global state), so tests can run several.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from heatsched.placement.admission import REFUSED as AUDIT_CODES


class StoreCollector(Collector):
    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        drift = GaugeMetricFamily(
            "heatsched_residency_drift_pods",
            "Resident pods whose node's trusted country is now missing or outside their residency, by site "
            "(the site the node belonged to when the pod was bound; '' when none)", labels=["site"])
        counts = Counter(d.site or "" for d in self.store.drift.values())
        for site in sorted(set(self.store.sites) | set(counts)):
            drift.add_metric([site], counts.get(site, 0))
        yield drift
        if self.store.audit is not None:
            findings = GaugeMetricFamily(
                "heatsched_residency_audit_findings",
                "Findings of the controller's periodic residency audit (the rules of `heatsched audit`), by code",
                labels=["code"])
            for code in sorted(set(AUDIT_CODES) | set(self.store.audit)):
                findings.add_metric([code], self.store.audit.get(code, 0))
            yield findings
        resident = GaugeMetricFamily("heatsched_resident_pods", "Bound pods with a residency the operator watches")
        resident.add_metric([], len(self.store.resident))
        yield resident


def registry(store: Any) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StoreCollector(store))
    return reg
