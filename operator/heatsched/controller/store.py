"""The controller's in-memory picture of the cluster: what its status writes, labels and fuel decisions read.

Why: the controller is the one writer (docs/operator.md). kopf handlers feed this store (sites, demands, node
labels) and the controller's own pod watch feeds the bound pods; Prometheus is read elsewhere (off the loop)
and only its results land here. Everything runs on the controller's one event loop, so there are no locks.
The placement service does not read this store: it builds its own view (placement_service/view.py) from
watches of what the controller writes.

`snapshot.sites` holds the placement core's SiteView of each site, the one its status is written from, so the
status and the controller's metrics describe a site as the core scores it. The heat charged by recent
bindings (pending_kw) is the placement service's concern and stays empty here.

Node membership: a node belongs to the sites whose spec selects it. Exactly one site → the node gets the
site and country labels; none → no labels; two or more → a conflict: no country label (residency fails
closed) and a condition on every claiming site. A node whose protected country label disagrees with its
site is also treated as a conflict until the operator has relabelled it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from heatsched.models import HeatSite, ThermalDemand
from heatsched.placement.model import COUNTRY_LABEL, SITE_LABEL, STATE_LABEL, NodeView, SiteView, Snapshot
from heatsched.placement.residency import format_residency
from heatsched.thermal import Reading, demand_forecast_series_kw, demand_now, forecast_slots, site_view


@dataclass(slots=True)
class BoundPod:
    node: str
    cpu: float


@dataclass(slots=True)
class ResidentPod:
    """A bound pod with a residency: what the drift check compares with its node's trusted country."""

    namespace: str
    name: str
    node: str
    residency: frozenset[str]
    volumes: tuple[dict[str, Any], ...] = ()  # its volumes that keep data off the node (claims, network storage)


@dataclass(frozen=True, slots=True)
class Drift:
    """A resident pod whose node's trusted country label is now missing or outside its residency."""

    pod: ResidentPod
    country: str | None  # the node's protected country label now
    site: str | None  # the site the node belonged to when the pod was bound

    @property
    def reason(self) -> str:
        where = f"node {self.pod.node} is now in {self.country}" if self.country else (
            f"node {self.pod.node} has no trusted country label any more")
        return (f"pod {self.pod.namespace}/{self.pod.name} (residency {format_residency(self.pod.residency)}): "
                f"{where}")


@dataclass(slots=True)
class FuelPod:
    """A heat fuel pod the controller made (bound or pending)."""

    name: str
    namespace: str
    node: str | None
    cpu: float
    created: str = ""  # creationTimestamp, RFC 3339 (sorts in time order)


@dataclass
class Store:
    sites: dict[str, HeatSite] = field(default_factory=dict)
    demands: dict[str, ThermalDemand] = field(default_factory=dict)
    node_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    pods: dict[str, BoundPod] = field(default_factory=dict)  # uid -> where it runs
    node_cpu: dict[str, float] = field(default_factory=dict)  # node -> CPU requested by bound pods
    readings: dict[str, Reading | None] = field(default_factory=dict)
    reading_errors: dict[str, tuple[str, str]] = field(default_factory=dict)  # site -> (reason, message)
    live_demand: dict[str, float | None] = field(default_factory=dict)  # demand name -> live kW
    claims: dict[str, tuple[str, ...]] = field(default_factory=dict)  # node -> sites selecting it
    snapshot: Snapshot = field(default_factory=Snapshot)
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> annotations (residency ceilings)
    node_alloc_cpu: dict[str, float] = field(default_factory=dict)  # node -> allocatable CPU cores
    nominated: dict[str, tuple[str, float]] = field(default_factory=dict)  # pending pod uid -> (node, cpu)
    resident: dict[str, tuple[ResidentPod, str | None]] = field(default_factory=dict)  # uid -> (pod, site at bind)
    drift: dict[str, Drift] = field(default_factory=dict)  # uid -> drift found (reported once)
    audit: dict[str, int] | None = None  # finding code -> count, from the last periodic audit (None: none yet)
    fuel_pods: dict[str, dict[str, FuelPod]] = field(default_factory=dict)  # site -> uid -> fuel pod
    clock: Callable[[], float] = field(default=time.time, repr=False)

    # ---- membership --------------------------------------------------------------------------------
    def _claims_of(self, node: str, labels: dict[str, str]) -> tuple[str, ...]:
        return tuple(sorted(n for n, s in self.sites.items() if s.spec.selects(node, labels)))

    def _node_view(self, node: str) -> NodeView:
        claims = self.claims.get(node, ())
        if not claims:
            return NodeView(node)
        if len(claims) > 1:
            return NodeView(node, conflict=f"claimed by several sites: {', '.join(claims)}")
        site = self.sites[claims[0]]
        labelled = self.node_labels.get(node, {}).get(COUNTRY_LABEL)
        if labelled != site.spec.country:
            return NodeView(node, site=site.name,
                            conflict=f"country label {labelled!r} does not match site {site.name} "
                                     f"({site.spec.country}) yet")
        return NodeView(node, site=site.name, country=site.spec.country)

    def desired_labels(self, node: str) -> dict[str, str | None]:
        """Protected labels the node should carry (None = remove)."""
        claims = self.claims.get(node, ())
        if len(claims) != 1:
            return {SITE_LABEL: None, COUNTRY_LABEL: None, STATE_LABEL: None}
        name = claims[0]
        view = self.snapshot.sites.get(name)
        return {SITE_LABEL: name, COUNTRY_LABEL: self.sites[name].spec.country,
                STATE_LABEL: view.state.value if view else None}

    def label_patch(self, node: str) -> dict[str, str | None]:
        """The merge-patch of labels that brings a node to its desired labels ({} when it is there)."""
        current = self.node_labels.get(node, {})
        return {k: v for k, v in self.desired_labels(node).items() if current.get(k) != v}

    def nodes_of(self, site: str) -> list[str]:
        return sorted(n for n, c in self.claims.items() if c == (site,))

    def conflicts_of(self, site: str) -> list[str]:
        return sorted(n for n, c in self.claims.items() if site in c and len(c) > 1)

    # ---- events ------------------------------------------------------------------------------------
    def set_node(self, node: str, labels: dict[str, str], alloc_cpu: float | None = None) -> None:
        if alloc_cpu is not None:
            self.node_alloc_cpu[node] = alloc_cpu
        self.node_labels[node] = dict(labels)
        self.claims[node] = self._claims_of(node, labels)
        self.snapshot.nodes[node] = self._node_view(node)

    def delete_node(self, node: str) -> None:
        self.node_labels.pop(node, None)
        self.claims.pop(node, None)
        self.snapshot.nodes.pop(node, None)
        self.node_cpu.pop(node, None)
        self.node_alloc_cpu.pop(node, None)

    def set_site(self, site: HeatSite) -> None:
        self.sites[site.name] = site
        self._reclaim()
        self.refresh_site(site.name)

    def delete_site(self, name: str) -> None:
        self.sites.pop(name, None)
        self.readings.pop(name, None)
        self.reading_errors.pop(name, None)
        self.snapshot.sites.pop(name, None)
        self._reclaim()

    def _reclaim(self) -> None:
        for node, labels in self.node_labels.items():
            self.claims[node] = self._claims_of(node, labels)
        self.snapshot.nodes = {n: self._node_view(n) for n in self.node_labels}

    def set_demand(self, demand: ThermalDemand) -> None:
        self.demands[demand.name] = demand

    def delete_demand(self, name: str) -> None:
        self.demands.pop(name, None)
        self.live_demand.pop(name, None)

    def set_fuel_pod(self, uid: str, site: str, pod: FuelPod | None) -> None:
        """Track a heat fuel pod of `site` (None: it is gone or terminating). Kept apart from tenant pods: it is
        neither tenant IT load nor charged heat, since tenants preempt it; the fuel controller counts it."""
        pods = self.fuel_pods.setdefault(site, {})
        if pod is None:
            pods.pop(uid, None)
        else:
            pods[uid] = pod

    def set_pod(self, uid: str, node: str | None, cpu: float, terminated: bool) -> None:
        """Track a tenant pod's binding and CPU (the IT load of the next status write)."""
        old = self.pods.get(uid)
        if node is None or terminated:
            self.delete_pod(uid)
            return
        if old is not None and old.node == node:
            return
        if old is not None:
            self.delete_pod(uid)
        self.pods[uid] = BoundPod(node, cpu)
        self.node_cpu[node] = self.node_cpu.get(node, 0.0) + cpu

    def set_resident(self, uid: str, pod: ResidentPod | None) -> None:
        """Track a bound pod with a residency (None: it is gone, unbound or not resident)."""
        if pod is None:
            self.resident.pop(uid, None)
            self.drift.pop(uid, None)
        elif uid not in self.resident or self.resident[uid][0] != pod:
            self.resident[uid] = (pod, self.node_labels.get(pod.node, {}).get(SITE_LABEL))

    def check_drift(self, nodes: Iterable[str] | None = None, uids: Iterable[str] | None = None) -> list[Drift]:
        """Resident pods (on `nodes`, or the pods `uids`, or all) whose node's protected country label is missing or
        outside their residency. It compares the label kube-scheduler enforced, not the operator's view, so a node
        not yet relabelled at start-up is no drift. New findings are returned (and kept in `drift`); healed ones
        dropped. `uids` is what a pod event checks: its own pod, not every resident pod of the node."""
        wanted = None if nodes is None else set(nodes)
        if uids is not None:
            candidates = [(u, self.resident[u]) for u in uids if u in self.resident]
        else:
            candidates = list(self.resident.items())
        found = []
        for uid, (pod, site) in candidates:
            if wanted is not None and pod.node not in wanted:
                continue
            country = self.node_labels.get(pod.node, {}).get(COUNTRY_LABEL)
            if country in pod.residency:
                self.drift.pop(uid, None)
                continue
            if uid not in self.drift or self.drift[uid].country != country:
                self.drift[uid] = Drift(pod, country, site)
                found.append(self.drift[uid])
        return found

    def drift_of(self, site: str) -> list[Drift]:
        return sorted((d for d in self.drift.values() if d.site == site), key=lambda d: (d.pod.namespace, d.pod.name))

    def delete_pod(self, uid: str) -> None:
        self.nominated.pop(uid, None)
        old = self.pods.pop(uid, None)
        if old is not None:
            left = self.node_cpu.get(old.node, 0.0) - old.cpu
            self.node_cpu[old.node] = max(0.0, left)

    # ---- telemetry ---------------------------------------------------------------------------------
    def set_reading(self, site: str, reading: Reading | None, error: tuple[str, str] | None = None) -> None:
        self.readings[site] = reading
        if error is None:
            self.reading_errors.pop(site, None)
        else:
            self.reading_errors[site] = error

    def it_load_kw(self, site: str) -> float:
        spec = self.sites[site].spec
        nodes = self.nodes_of(site)
        cpu = sum(self.node_cpu.get(n, 0.0) for n in nodes)
        return (cpu * spec.power.watts_per_cpu + len(nodes) * spec.power.idle_watts_per_node) / 1000.0

    def set_nominated(self, uid: str, node: str | None, cpu: float) -> None:
        """A pending tenant pod that kube-scheduler nominated for a node (it preempted pods there to make room)."""
        if node:
            self.nominated[uid] = (node, cpu)
        else:
            self.nominated.pop(uid, None)

    def free_cores(self, site: str, exclude: Iterable[str] = ()) -> float:
        """Allocatable CPU of the site's nodes not requested by tenant pods, bound or nominated (fuel pods count
        as free). Nominated pods count: the default scheduler does not see another scheduler's nominations, so
        fuel created into the room a preemption freed would take it from the tenant."""
        skip = set(exclude)
        nodes = [n for n in self.nodes_of(site) if n not in skip]
        held = dict.fromkeys(nodes, 0.0)
        for node, cpu in self.nominated.values():
            if node in held:
                held[node] += cpu
        return sum(max(0.0, self.node_alloc_cpu.get(n, 0.0) - self.node_cpu.get(n, 0.0) - held[n]) for n in nodes)

    def demand_forecast_kw(self, site: str, now: datetime, hours: float) -> tuple[float, ...]:
        """The site's demand forecast in 15-minute slots over `hours`, profiles in the building's local time."""
        local = self.local_time(site, now)
        series = [demand_forecast_series_kw(d.spec, local, hours, self.live_demand.get(d.name))
                  for d in self.demands.values() if d.spec.site_ref == site]
        return tuple(sum(slot) for slot in zip(*series)) if series else (0.0,) * forecast_slots(hours)

    def local_time(self, site: str, now: datetime) -> datetime:
        """The one clock of demand: the building's local time (spec.timeZone). Profiles are hours of its day, so
        the placement view, status.demandKW and ThermalDemand status.currentKW all read them through this."""
        return now.astimezone(ZoneInfo(self.sites[site].spec.time_zone))

    def demand_kw(self, site: str, now: datetime) -> float:
        """Sum of the site's demands; profiles are read in the building's local time."""
        now = self.local_time(site, now)
        total = 0.0
        for d in self.demands.values():
            if d.spec.site_ref == site:
                kw, _ = demand_now(d.spec, now, self.live_demand.get(d.name))
                total += kw or 0.0
        return total

    def refresh_site(self, name: str, now: datetime | None = None) -> SiteView:
        """Recompute a site's view from its latest reading, demand and bound pods."""
        now = now or datetime.fromtimestamp(self.clock(), tz=UTC)
        site = self.sites[name]
        view = site_view(site.spec, name, self.readings.get(name), now,
                         demand_kw=self.demand_kw(name, now), it_load_kw=self.it_load_kw(name))
        if name in self.reading_errors and not view.fresh:
            reason, message = self.reading_errors[name]
            view = replace(view, reason=f"{reason}: {message}"[:1024])
        self.snapshot.sites[name] = view
        return view

