"""Heat fuel in the cluster: turn each site's FuelPlan (heatsched.planning.fuel) into pods, Events and status.

Why a module of its own: the plan is pure; this is the thin shell that reads its inputs from the Store (and the
guard's PromQL, when the spec gives one), creates or deletes fuel pods to match, posts an Event when fuel
starts, stops or is resized, and keeps the ledger (electricity, heat, CO2) that status.fuel reports.

Fuel is residency-safe by construction: every fuel pod carries a required node affinity on the protected
label `node-restriction.kubernetes.io/heatsched-site=<site>`, which only the operator writes and only on the
site's own nodes, so it can only run inside the site (and so inside its country). It runs at the
`spec.fuel.priorityClassName` PriorityClass (chart: value -1000, preemptionPolicy Never): every tenant pod
preempts it and it preempts nothing. Fuel pods are never tenant load (Store.set_pod keeps them apart).

`spec.fuel.reservePercent` of the site's cores is kept free as whole nodes (reserved_nodes) that fuel pods may
not use (a `matchFields` NotIn), so a tenant burst up to that size lands at once. Pods are deleted Pending
first, then newest first. Each call does at most `MAX_CHANGES` creations or
deletions, so a large plan converges over a few refreshes instead of flooding the API.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from heatsched.controller.config import EVENT_COMPONENT
from heatsched.controller.store import FuelPod, Store
from heatsched.kubeapi import EVENT_NAMESPACE, ApiError, KubeApi, path, post_event
from heatsched.models import API_VERSION, HEATSITE_KIND, FuelStatus, HeatSite, expand_query
from heatsched.offloop import blocking
from heatsched.placement.model import FUEL_SITE_LABEL, SITE_LABEL, SiteView
from heatsched.planning.fuel import (
    LOOKAHEAD_H,
    FuelInputs,
    FuelLedger,
    FuelLimits,
    FuelPlan,
    GuardVerdict,
    guard,
    guard_inputs,
    plan_fuel,
)
from heatsched.telemetry.source import TelemetryError, TemperatureSource

DEFAULT_FUEL_NAMESPACE = "heatsched-fuel"  # FuelSpec.namespace's default
MANAGED_BY = ("app.kubernetes.io/managed-by", "heatsched")
MAX_CHANGES = 50
UNSEEN_TTL_S = 30.0

log = logging.getLogger("heatsched.fuel")


def priority_class(name: str = "heatsched-fuel", value: int = -1000) -> dict[str, Any]:
    """The PriorityClass of fuel pods, as the chart's templates/fuel.yaml renders it with default values
    (tests/test_chart.py compares them): below every tenant's, and it preempts nothing."""
    return {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
            "value": value, "preemptionPolicy": "Never", "globalDefault": False,
            "description": "heatsched heat fuel - preemptible work that turns idle cores into heat; every "
                           "tenant pod preempts it"}


def reserved_nodes(nodes: dict[str, float], percent: float) -> list[str]:
    """Whole nodes kept free of fuel: the fewest, taken last by name, whose cores reach `percent` of the site's.

    Whole nodes, because the default scheduler spreads fuel pods: a reserve counted in cores would end as small
    holes on every node, too small for a tenant pod bigger than a fuel pod (benchmarks: 96 free cores, all in
    4-core holes, and every 8-core tenant pod of a burst had to preempt)."""
    want = sum(nodes.values()) * percent / 100.0
    out: list[str] = []
    kept = 0.0
    for name in sorted(nodes, reverse=True):
        if kept >= want - 1e-9 or percent <= 0:
            break
        out.append(name)
        kept += nodes[name]
    return sorted(out)


def fuel_pod_body(site: HeatSite, reserved: list[str] | None = None) -> dict[str, Any]:
    """One fuel pod of `site` from its spec.fuel.template, pinned to the site (outside the `reserved` nodes), at
    the fuel PriorityClass."""
    fuel = site.spec.fuel
    assert fuel is not None
    template = copy.deepcopy(fuel.template)
    meta = template.get("metadata") or {}
    spec = template["spec"]
    labels = {**(meta.get("labels") or {}), FUEL_SITE_LABEL: site.name, MANAGED_BY[0]: MANAGED_BY[1]}
    containers = spec["containers"]
    first = containers[0]
    resources = first.setdefault("resources", {})
    cpu = str(fuel.cores_per_pod)
    resources["requests"] = {**(resources.get("requests") or {}), "cpu": cpu}
    resources["limits"] = {**(resources.get("limits") or {}), "cpu": cpu}
    spec["priorityClassName"] = fuel.priority_class_name
    spec.setdefault("terminationGracePeriodSeconds", 0)  # preemptible by design: tenants must not wait for it
    term: dict[str, Any] = {"matchExpressions": [{"key": SITE_LABEL, "operator": "In", "values": [site.name]}]}
    if reserved:
        term["matchFields"] = [{"key": "metadata.name", "operator": "NotIn", "values": list(reserved)}]
    spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [term]}}}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": f"fuel-{site.name}-"[:58], "namespace": fuel.namespace, "labels": labels,
                     "annotations": meta.get("annotations") or {}},
        "spec": spec,
    }


@dataclass
class SiteFuel:
    """What the controller remembers of one site's fuel between refreshes."""

    planned: int = 0
    ledger: FuelLedger = field(default_factory=FuelLedger)
    verdict: GuardVerdict | None = None
    last_change: datetime | None = None
    last_at: float | None = None  # loop time of the last accounting
    grid_carbon: float | None = None
    resumed: bool = False
    unseen: dict[str, float] = field(default_factory=dict)  # pods created, not yet seen by the watch
    reserved: list[str] = field(default_factory=list)  # nodes kept free of fuel for tenant bursts


class FuelController:
    """Sizes and runs heat fuel for every site with a spec.fuel (called from each site's telemetry refresh)."""

    def __init__(self, store: Store, kube: KubeApi, source: TemperatureSource, *, enabled: bool = True) -> None:
        self.store, self.kube, self.source, self.enabled = store, kube, source, enabled
        self.sites: dict[str, SiteFuel] = {}

    async def reconcile(self, name: str, view: SiteView) -> FuelStatus | None:
        """Plan, act, account; returns the site's status.fuel (None when the site has no spec.fuel)."""
        site = self.store.sites.get(name)
        if site is None:
            return None
        pods = self.store.fuel_pods.get(name, {})
        if site.spec.fuel is None:
            await self._delete([p for p in pods.values()])
            self.sites.pop(name, None)
            return None
        state = self.sites.setdefault(name, SiteFuel())
        self._resume(state, site)
        now_loop = asyncio.get_running_loop().time()
        running_cores = sum(p.cpu for p in pods.values() if p.node)
        limits = FuelLimits.from_spec(site.spec)  # the reserve is whole nodes here (reserved_nodes), not cores
        nodes = {n: self.store.node_alloc_cpu.get(n, 0.0) for n in self.store.nodes_of(name)}
        state.reserved = reserved_nodes(nodes, site.spec.fuel.reserve_percent)
        running_kw = running_cores * limits.watts_per_cpu / 1000.0
        if state.last_at is not None and state.verdict is not None:
            hours = min(now_loop - state.last_at, 3600.0) / 3600.0
            state.ledger = state.ledger.add(running_kw, hours, limits.efficiency, state.verdict, state.grid_carbon)
        state.last_at = now_loop

        verdict = await self._guard(site)
        state.verdict = verdict
        now = datetime.now(UTC)
        inputs = FuelInputs(
            tank=site.spec.server_tank(), temperature_c=view.temperature_c, fresh=view.fresh,
            tenant_it_kw=self.store.it_load_kw(name),
            demand_kw=self.store.demand_forecast_kw(name, now, max(limits.horizon_h, LOOKAHEAD_H)),
            free_cores=math.floor(self.store.free_cores(name, exclude=state.reserved)),
            current_cores=state.planned,
            demand_now_kw=self.store.demand_kw(name, now),
        )
        plan = plan_fuel(inputs, limits, verdict)
        if not self.enabled:
            plan = FuelPlan(0, plan.change, "fuel turned off for this operator (--no-fuel)")
        if plan.cores != state.planned:
            state.last_change = now
            await self._event(site, plan, state.planned)
        state.planned = plan.cores
        await self._converge(site, plan.cores)
        pods = self.store.fuel_pods.get(name, {})
        cores = int(sum(p.cpu for p in pods.values() if p.node))
        kw = cores * site.spec.power.watts_per_cpu / 1000.0
        ledger = state.ledger
        return FuelStatus(
            cores=cores, planned_cores=plan.cores, pods=len(pods), kw=round(kw, 3),
            heat_kw=round(kw * site.spec.heat_recovery.efficiency, 3),
            electricity_kwh=round(ledger.electricity_kwh, 3), heat_kwh=round(ledger.heat_kwh, 3),
            co2_kg=round(ledger.co2_kg, 3), co2_avoided_kg=round(ledger.co2_avoided_kg, 3),
            allowed=verdict.allowed, guard=verdict.reason[:1024], reason=plan.reason[:1024],
            last_change_time=state.last_change,
        )

    async def forget(self, name: str) -> None:
        """The HeatSite is gone: delete its fuel pods and its state."""
        await self._delete(list(self.store.fuel_pods.get(name, {}).values()))
        self.sites.pop(name, None)

    def _resume(self, state: SiteFuel, site: HeatSite) -> None:
        """After a restart, go on from the last status: the ledger keeps counting, the plan keeps its cores."""
        if state.resumed:
            return
        state.resumed = True
        old = site.status.fuel if site.status is not None else None
        if old is not None:
            state.ledger = FuelLedger(old.electricity_kwh, old.heat_kwh, old.co2_kg, old.co2_avoided_kg)
            state.planned, state.last_change = old.planned_cores, old.last_change_time
        else:
            state.planned = int(sum(p.cpu for p in self.store.fuel_pods.get(site.name, {}).values()))

    async def _guard(self, site: HeatSite) -> GuardVerdict:
        spec = site.spec
        assert spec.fuel is not None
        g = spec.fuel.guard
        carbon = await self._value(g.grid_carbon_query, site) if g.grid_carbon_query else g.grid_carbon_kg_per_kwh
        price = await self._value(g.grid_price_query, site) if g.grid_price_query else g.grid_price_per_kwh
        self.sites[site.name].grid_carbon = carbon
        return guard(guard_inputs(spec, carbon, price))

    async def _value(self, query: str, site: HeatSite) -> float | None:
        """A guard query's value, or None (the guard then keeps fuel off) on any telemetry problem."""
        q = expand_query(query, site.name).replace("$country", site.spec.country)
        try:
            sample = await blocking(self.source.sample, q)
        except TelemetryError as exc:
            log.info("fuel guard query for %s failed: %s", site.name, exc)
            return None
        return sample.value if math.isfinite(sample.value) and sample.value >= 0 else None

    async def _converge(self, site: HeatSite, cores: int) -> None:
        fuel = site.spec.fuel
        assert fuel is not None
        pods = list(self.store.fuel_pods.get(site.name, {}).values())
        state, now = self.sites[site.name], asyncio.get_running_loop().time()
        seen = {p.name for p in pods}
        state.unseen = {n: t for n, t in state.unseen.items() if n not in seen and now - t < UNSEEN_TTL_S}
        want = cores // fuel.cores_per_pod
        if len(pods) + len(state.unseen) < want:  # pods created last time may not have reached the watch yet
            body = fuel_pod_body(site, state.reserved)
            for _ in range(min(MAX_CHANGES, want - len(pods) - len(state.unseen))):
                try:
                    made = await self.kube.post(path("", "v1", "pods", namespace=fuel.namespace), body)
                    state.unseen[made["metadata"]["name"]] = now
                except ApiError as exc:  # e.g. the namespace or the PriorityClass is missing
                    log.warning("cannot create fuel pod for %s in %s: %s %s", site.name, fuel.namespace,
                                exc.status, exc.reason)
                    return
        elif len(pods) > want:
            pending = [p for p in pods if p.node is None]
            running = sorted((p for p in pods if p.node is not None), key=lambda p: p.created, reverse=True)
            await self._delete((pending + running)[: min(MAX_CHANGES, len(pods) - want)])

    async def _delete(self, pods: list[FuelPod]) -> None:
        for p in pods[:MAX_CHANGES]:
            try:
                await self.kube.delete(path("", "v1", "pods", p.name, namespace=p.namespace), grace_period_s=5)
            except ApiError as exc:
                if exc.status != 404:
                    log.warning("cannot delete fuel pod %s/%s: %s", p.namespace, p.name, exc.reason)

    async def _event(self, site: HeatSite, plan: FuelPlan, before: int) -> None:
        reason = {"start": "FuelStarted", "stop": "FuelStopped"}.get(plan.change, "FuelResized")
        message = f"{before} → {plan.cores} fuel cores: {plan.reason}"
        log.info("site %s: %s", site.name, message)
        heatsite = {"apiVersion": API_VERSION, "kind": HEATSITE_KIND, "name": site.name,
                    **({"uid": site.uid} if site.uid else {})}
        await post_event(self.kube, EVENT_NAMESPACE, heatsite, reason, message, name_prefix=f"{site.name}.fuel.",
                         component=EVENT_COMPONENT)

