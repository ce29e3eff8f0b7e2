"""The placement service's picture of the cluster, built from watch events only. No I/O.

Why from HeatSite *status*: the controller is the one reader of Prometheus and the one writer of status and node
labels; every placement replica rebuilds the same Snapshot from what it wrote, so replicas agree and need no
Prometheus. A site's view is the pure thermal.site_view of its spec and the status's reading, evaluated at this
replica's clock:

    SiteView(site) = site_view(spec, Reading(status.temperatureCelsius, status.readingTime), now,
                               demand = status.demandKW, it_load = status.itLoadKW)

so a controller that stops writing makes the reading age past telemetry.maxAgeSeconds, and the site turns Unknown:
a neutral score (heat preference fails open), never a stale preference. A node's site and country are its
protected labels (the controller removes the country label of a node two sites claim: residency fails closed).
Heat charged by recent bindings: a pod seen bound after the site's last status write adds
cpu × watts_per_cpu to `pending_kw[site]`, cleared by the next status write (as the controller does it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from heatsched.models import HeatSite, SpecError, parse_heatsite
from heatsched.placement.model import (
    COUNTRY_LABEL,
    SITE_LABEL,
    NodeView,
    SiteView,
    Snapshot,
)
from heatsched.thermal import Reading, site_view


@dataclass(slots=True)
class _Site:
    site: HeatSite
    view: SiteView | None = None


@dataclass
class ClusterView:
    """Sites, nodes, namespaces and bound pods, as the watches last reported them."""

    clock: Callable[[], float]
    sites: dict[str, _Site] = field(default_factory=dict)
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> annotations
    pods: dict[str, tuple[str, float]] = field(default_factory=dict)  # uid -> (node, cpu) of bound pods
    snapshot: Snapshot = field(default_factory=Snapshot)
    errors: dict[str, str] = field(default_factory=dict)  # site -> why its object could not be read

    # ---- sites -----------------------------------------------------------------------------------
    def set_site(self, obj: Mapping[str, Any]) -> None:
        name = str((obj.get("metadata") or {}).get("name") or "")
        try:
            site = parse_heatsite(obj)
        except SpecError as exc:  # the controller reports it in status; here the site is just absent
            self.errors[name] = str(exc)
            self.delete_site(name)
            return
        self.errors.pop(name, None)
        self.sites[name] = _Site(site)
        self.snapshot.pending_kw[name] = 0.0  # a new status write supersedes the charged heat
        self.refresh(name)

    def delete_site(self, name: str) -> None:
        self.sites.pop(name, None)
        self.snapshot.sites.pop(name, None)
        self.snapshot.pending_kw.pop(name, None)

    def refresh(self, name: str | None = None) -> None:
        """Re-evaluate site views at the current clock (readings age even when nothing is written)."""
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        for site_name in [name] if name is not None else list(self.sites):
            entry = self.sites.get(site_name)
            if entry is None:
                continue
            status = entry.site.status
            reading = None
            demand = it_load = 0.0
            if status is not None:
                if status.temperature_celsius is not None and status.reading_time is not None:
                    reading = Reading(status.temperature_celsius, status.reading_time)
                demand, it_load = status.demand_kw, status.it_load_kw
            entry.view = site_view(entry.site.spec, site_name, reading, now, demand_kw=demand, it_load_kw=it_load)
            self.snapshot.sites[site_name] = entry.view

    # ---- nodes, namespaces, pods --------------------------------------------------------------------
    def set_node(self, name: str, labels: Mapping[str, str]) -> None:
        self.snapshot.nodes[name] = NodeView(name, labels.get(SITE_LABEL), labels.get(COUNTRY_LABEL))

    def delete_node(self, name: str) -> None:
        self.snapshot.nodes.pop(name, None)

    def set_namespace(self, name: str, annotations: Mapping[str, str] | None) -> None:
        if annotations is None:
            self.namespaces.pop(name, None)
        else:
            self.namespaces[name] = dict(annotations)

    def set_pod(self, uid: str, node: str | None, cpu: float, *, charge: bool = True) -> None:
        """A pod event: `node` None means unbound, finished or deleted. A pod newly seen bound is charged to its
        site unless `charge` is False (the initial list: those pods are in status.itLoadKW already)."""
        if node is None:
            self.pods.pop(uid, None)
            return
        if uid in self.pods:
            return
        self.pods[uid] = (node, cpu)
        if not charge:
            return
        view = self.snapshot.nodes.get(node)
        entry = self.sites.get(view.site) if view is not None and view.site else None
        if entry is not None:
            kw = cpu * entry.site.spec.power.watts_per_cpu / 1000.0
            self.snapshot.pending_kw[entry.site.name] = self.snapshot.pending_kw.get(entry.site.name, 0.0) + kw

    def namespace_annotations(self, name: str) -> Mapping[str, str] | None:
        return self.namespaces.get(name)

    def node_country(self, name: str) -> str | None:
        view = self.snapshot.nodes.get(name)
        return view.country if view is not None else None
