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
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from heatsched.placement.admission import REFUSED as AUDIT_CODES
from heatsched.placement.model import ThermalState


class StoreCollector(Collector):
    def __init__(self, store: Any) -> None:
        self.store = store

    def sites(self) -> Iterator[GaugeMetricFamily]:
        views = self.store.snapshot.sites
        families = {
            "temperature": GaugeMetricFamily("heatsched_site_temperature_celsius",
                                             "Last tank temperature of the site (absent when unknown)", labels=["site"]),
            "age": GaugeMetricFamily("heatsched_site_reading_age_seconds", "Age of the site's last reading",
                                     labels=["site"]),
            "demand": GaugeMetricFamily("heatsched_site_demand_watts", "Heat demand of the site now", labels=["site"]),
            "it": GaugeMetricFamily("heatsched_site_it_load_watts", "Estimated IT power of the site's pods",
                                    labels=["site"]),
            "absorbable": GaugeMetricFamily("heatsched_site_absorbable_watts",
                                            "IT power the tank can take over the next hour on top of the running "
                                            "load", labels=["site"]),
            "fuel": GaugeMetricFamily("heatsched_site_fuel_watts", "Electric power of the site's heat fuel pods",
                                      labels=["site"]),
            "min": GaugeMetricFamily("heatsched_site_tank_min_celsius", "Legionella floor of the site's tank",
                                     labels=["site"]),
            "target": GaugeMetricFamily("heatsched_site_tank_target_celsius", "Target of the site's tank",
                                        labels=["site"]),
            "max": GaugeMetricFamily("heatsched_site_tank_max_celsius", "Maximum of the site's tank", labels=["site"]),
        }
        state = GaugeMetricFamily("heatsched_site_state", "1 for the site's thermal state, 0 for the others",
                                  labels=["site", "state"])
        for name, view in sorted(views.items()):
            if view.temperature_c is not None:
                families["temperature"].add_metric([name], view.temperature_c)
            if view.reading_age_s is not None:
                families["age"].add_metric([name], view.reading_age_s)
            families["demand"].add_metric([name], view.demand_kw * 1000)
            families["it"].add_metric([name], view.it_load_kw * 1000)
            families["absorbable"].add_metric([name], view.absorbable_kw * 1000)
            fuel_cores = sum(p.cpu for p in self.store.fuel_pods.get(name, {}).values() if p.node)
            families["fuel"].add_metric([name], fuel_cores * view.watts_per_cpu)
            families["min"].add_metric([name], view.tank.min_c)
            families["target"].add_metric([name], view.tank.target_c)
            families["max"].add_metric([name], view.tank.max_c)
            for s in ThermalState:
                state.add_metric([name, s.value], 1.0 if view.state == s else 0.0)
        yield from families.values()
        yield state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self.sites()
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


class LeaderCollector(Collector):
    """The status writes of this replica (a standby must show none), and leadership when there is a Lease."""

    def __init__(self, leader: Any, operator: Any) -> None:
        self.leader, self.operator = leader, operator

    def collect(self) -> Iterator[Any]:
        writes = CounterMetricFamily("heatsched_status_writes", "HeatSite status patches sent by this replica")
        writes.add_metric([], self.operator.status_writes)
        yield writes
        if self.leader is None:  # --no-leader-election
            return
        leading = GaugeMetricFamily("heatsched_controller_leader",
                                    "1 while this controller replica holds the Lease (the active writer), else 0",
                                    labels=["identity"])
        leading.add_metric([self.leader.identity], 1.0 if self.leader.leading else 0.0)
        yield leading


def registry(store: Any) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StoreCollector(store))
    return reg
