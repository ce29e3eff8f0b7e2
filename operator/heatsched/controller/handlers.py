"""kopf handlers: thin. Each parses into a model, updates the Store, and patches what changed.

- `heatsite_*` / `thermaldemand_*`: keep specs in the store; a bad spec is a kopf.PermanentError (the
  apiserver's CEL rules normally stop it first).
- `heatsite_telemetry`: one daemon per site, the only place Prometheus is read, off the event loop
  (run_in_executor). It refreshes the site's view, patches status only on a meaningful change or every
  `status_heartbeat_s`, and relabels the site's nodes when the thermal state changes: a node label change
  is a cluster event that makes kube-scheduler retry pods it left pending.
- `node_event`: membership and protected labels (`node-restriction.kubernetes.io/heatsched-*`).
- `pod_event`: CPU of bound pods (IT load), heat fuel pods, resident pods (drift) and nominated pods.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import kopf

from heatsched.controller.config import EVENT_COMPONENT, OperatorConfig
from heatsched.controller.fuel import DEFAULT_FUEL_NAMESPACE, FuelController
from heatsched.controller.store import Drift, FuelPod, ResidentPod, Store
from heatsched.extender.wire import TERMINATED_PHASES, WireError, parse_cpu_quantity, pod_cpu
from heatsched.kubeapi import ApiError, KubeApi, path, post_event
from heatsched.models import (
    GROUP,
    HEATSITE_PLURAL,
    THERMALDEMAND_PLURAL,
    VERSION,
    Condition,
    ConditionStatus,
    FuelStatus,
    HeatSiteStatus,
    SpecError,
    ThermalDemandStatus,
    expand_query,
    parse_heatsite,
    parse_thermaldemand,
)
from heatsched.offloop import blocking
from heatsched.placement.audit import API_VOLUMES, NODE_LOCAL_VOLUMES, volume_type
from heatsched.placement.model import COUNTRY_LABEL, FUEL_SITE_LABEL, SiteView
from heatsched.placement.residency import RESIDENCY_ANNOTATION, ResidencyError, parse_residency
from heatsched.telemetry.source import TelemetryError, TemperatureSource
from heatsched.thermal import Reading, demand_now
from heatsched.watch import Watch

HEATSITES = (GROUP, VERSION, HEATSITE_PLURAL)
THERMALDEMANDS = (GROUP, VERSION, THERMALDEMAND_PLURAL)

log = logging.getLogger("heatsched.operator")


def node_cpu(node: Mapping[str, Any]) -> float | None:
    """Allocatable CPU cores of a Node object; None when absent or unreadable."""
    raw = ((node.get("status") or {}).get("allocatable") or {}).get("cpu")
    try:
        return parse_cpu_quantity(raw) if raw is not None else None
    except (ValueError, WireError):
        return None


def fuel_site_of(store: Store, meta: Mapping[str, Any]) -> str | None:
    """The site of a heat fuel pod: labelled by the controller AND in that site's fuel namespace (a tenant's
    pod wearing the label elsewhere stays tenant load). A site not (or no longer) known with a spec.fuel uses
    the default namespace: pods seen before their HeatSite at start-up, or left when spec.fuel was removed,
    are still fuel, so they are neither tenant load nor orphans."""
    site = (meta.get("labels") or {}).get(FUEL_SITE_LABEL)
    if not site:
        return None
    hs = store.sites.get(site)
    namespace = hs.spec.fuel.namespace if hs is not None and hs.spec.fuel is not None else DEFAULT_FUEL_NAMESPACE
    return site if meta.get("namespace") == namespace else None




def _condition(previous: list[Condition], type_: str, ok: bool, reason: str, message: str,
               generation: int | None, now: datetime) -> Condition:
    old = next((c for c in previous if c.type == type_), None)
    status = ConditionStatus.TRUE if ok else ConditionStatus.FALSE
    since = now if old is None or old.status != status or old.reason != reason else old.last_transition_time
    return Condition(type=type_, status=status, reason=reason, message=message[:32768],
                     last_transition_time=since,
                     observed_generation=generation)


def meaningful(old: HeatSiteStatus | None, new: HeatSiteStatus, step_k: float) -> bool:
    """Status is worth a patch when anything but small temperature/energy drift changed."""
    if old is None:
        return True
    if (old.state, old.nodes, old.reason) != (new.state, new.nodes, new.reason):
        return True
    def fuel_key(f: FuelStatus | None) -> tuple[Any, ...] | None:
        return None if f is None else (f.cores, f.planned_cores, f.pods, f.allowed, f.reason)
    if fuel_key(old.fuel) != fuel_key(new.fuel):
        return True
    if [(c.type, c.status, c.reason, c.message) for c in old.conditions] != \
       [(c.type, c.status, c.reason, c.message) for c in new.conditions]:
        return True
    if (old.temperature_celsius is None) != (new.temperature_celsius is None):
        return True
    if old.temperature_celsius is not None and new.temperature_celsius is not None and \
            abs(old.temperature_celsius - new.temperature_celsius) >= step_k:
        return True
    return any(abs(a - b) > max(0.1, 0.05 * max(abs(a), abs(b))) for a, b in (
        (old.absorbable_kw, new.absorbable_kw), (old.demand_kw, new.demand_kw), (old.it_load_kw, new.it_load_kw)))


class Operator:
    """What the handlers share: config, store, telemetry source and API clients (kept in kopf's memo)."""

    def __init__(self, config: OperatorConfig, source: TemperatureSource, kube: KubeApi,
                 store: Store | None = None) -> None:
        self.config = config
        self.source = source
        self.store = store or Store()
        self.kube = kube
        self.fuel = FuelController(self.store, kube, source, enabled=config.fuel)
        self.written: dict[str, tuple[HeatSiteStatus, float]] = {}  # site -> (last status written, when)
        self.demand_written: dict[str, dict[str, Any]] = {}
        self.status_writes = 0  # HeatSite status patches sent (heatsched_status_writes_total)
        self._tasks: set[asyncio.Task[None]] = set()  # drift reports in flight

    # ---- nodes -------------------------------------------------------------------------------------
    async def relabel(self, nodes: Iterable[str]) -> None:
        for node in nodes:
            patch = self.store.label_patch(node)
            if not patch:
                continue
            try:
                await self.kube.merge_patch(path("", "v1", "nodes", node), {"metadata": {"labels": patch}})
            except ApiError as exc:
                if exc.status != 404:
                    log.warning("cannot label node %s: %s", node, exc.reason)
                continue
            labels = dict(self.store.node_labels.get(node, {}))
            labels.update({k: v for k, v in patch.items() if v is not None})
            for k in [k for k, v in patch.items() if v is None]:
                labels.pop(k, None)
            self.store.set_node(node, labels)
            if COUNTRY_LABEL in patch:
                await self.report_drift(self.store.check_drift([node]))

    async def report_drift(self, drifts: Iterable[Drift]) -> None:
        """A Warning Event on each pod whose node's country moved under it; the site's ResidencyDrift condition
        (write_status) and heatsched_residency_drift_pods list them. Policy `evict` (--drift-policy) also
        evicts the pod through the Eviction API (PodDisruptionBudgets hold; its controller recreates it, and
        admission pins the new pod inside the residency); `flag` evicts nothing (docs/placement.md#drift)."""
        for d in drifts:
            log.warning("residency drift: %s", d.reason)
            pod = {"apiVersion": "v1", "kind": "Pod", "name": d.pod.name, "namespace": d.pod.namespace}
            await post_event(self.kube, d.pod.namespace, pod, "ResidencyDrift", d.reason, type_="Warning",
                             name_prefix=f"{d.pod.name}.residency-drift.", component=EVENT_COMPONENT)
            if self.config.drift_policy == "evict":
                await self.evict(d, pod)
            if d.site in self.store.sites:
                self.written.pop(d.site, None)  # rewrite the site's status (its ResidencyDrift condition) now

    async def evict(self, drift: Drift, pod: dict[str, str]) -> None:
        body = {"apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": drift.pod.name, "namespace": drift.pod.namespace}}
        try:
            await self.kube.post(path("", "v1", "pods", drift.pod.name, namespace=drift.pod.namespace,
                                      subresource="eviction"), body)
        except ApiError as exc:
            if exc.status == 404:
                return
            why = "a PodDisruptionBudget forbids it now" if exc.status == 429 else f"{exc.status} {exc.reason}"
            await post_event(self.kube, drift.pod.namespace, pod, "ResidencyDriftEvictionBlocked",
                             f"cannot evict the pod ({why}): {drift.reason}", type_="Warning",
                             name_prefix=f"{drift.pod.name}.residency-drift.", component=EVENT_COMPONENT)
            return
        await post_event(self.kube, drift.pod.namespace, pod, "ResidencyDriftEvicted",
                         f"evicted (--drift-policy=evict): {drift.reason}", type_="Warning",
                         name_prefix=f"{drift.pod.name}.residency-drift.", component=EVENT_COMPONENT)

    # ---- telemetry ---------------------------------------------------------------------------------
    async def refresh(self, name: str) -> None:
        store, site = self.store, self.store.sites.get(name)
        if site is None:
            return
        query = expand_query(site.spec.telemetry.temperature_query, name)
        try:
            sample = await blocking(self.source.sample, query)
            store.set_reading(name, Reading(sample.value, sample.at))
        except TelemetryError as exc:
            store.set_reading(name, None, (exc.reason, exc.message))
        for d in [d for d in store.demands.values() if d.spec.site_ref == name and d.spec.live_query]:
            try:
                live = await blocking(self.source.sample, expand_query(d.spec.live_query or "", name, d.name))
                store.live_demand[d.name] = live.value
            except TelemetryError:
                store.live_demand[d.name] = None
        previous = self.written.get(name, (None, 0.0))[0]
        old_view = store.snapshot.sites.get(name)
        old_state = old_view.state if old_view is not None else None
        view = store.refresh_site(name)
        if view.state != old_state:
            await self.relabel(store.nodes_of(name))
        fuel = await self.fuel.reconcile(name, view)
        await self.write_status(name, view, previous, fuel)
        await self.write_demands(name)

    async def write_status(self, name: str, view: SiteView, previous: HeatSiteStatus | None,
                           fuel: FuelStatus | None = None) -> None:
        store, site = self.store, self.store.sites[name]
        now = datetime.now(UTC)
        nodes, conflicts = store.nodes_of(name), store.conflicts_of(name)
        error = store.reading_errors.get(name)
        old_conditions = (previous or site.status or HeatSiteStatus()).conditions
        if view.fresh:
            fresh = _condition(old_conditions, "TelemetryFresh", True, "Fresh",
                               f"reading {view.reading_age_s:.0f} s old", site.generation, now)
        else:
            fresh = _condition(old_conditions, "TelemetryFresh", False, error[0] if error else "Stale",
                               view.reason, site.generation, now)
        if conflicts:
            ready = _condition(old_conditions, "Ready", False, "NodeConflict",
                               f"nodes also claimed by another site (no country label, residency fails closed): "
                               f"{', '.join(conflicts[:20])}", site.generation, now)
        elif not nodes:
            ready = _condition(old_conditions, "Ready", False, "NoNodes", "no node matches the site",
                               site.generation, now)
        elif not view.fresh:
            ready = _condition(old_conditions, "Ready", False, "TelemetryNotFresh",
                               "placement treats the site's heat as unknown (neutral score)", site.generation, now)
        else:
            ready = _condition(old_conditions, "Ready", True, "SiteReady", f"{view.state.value}: {view.reason}",
                               site.generation, now)
        drifts = store.drift_of(name)
        drift = _condition(old_conditions, "ResidencyDrift", bool(drifts), "NodesMoved" if drifts else "NoDrift",
                           "; ".join(d.reason for d in drifts[:20]) or "every resident pod runs inside its residency",
                           site.generation, now)
        reading = store.readings.get(name)
        status = HeatSiteStatus.from_view(view, reading_time=reading.at if reading and view.temperature_c is not None
                                          else None, nodes=nodes, observed_generation=site.generation,
                                          conditions=[fresh, ready, drift], fuel=fuel)
        last_written = self.written.get(name, (None, 0.0))[1]
        loop_now = asyncio.get_running_loop().time()
        if not meaningful(previous, status, self.config.temperature_step_k) and \
                loop_now - last_written < self.config.status_heartbeat_s:
            return
        body = {"status": status.to_wire()}
        try:
            await self.kube.merge_patch(path(*HEATSITES, name, subresource="status"), body)
            self.written[name] = (status, loop_now)
            self.status_writes += 1
        except ApiError as exc:
            if exc.status != 404:
                log.warning("cannot patch HeatSite %s status: %s %s", name, exc.status, exc.reason)

    # ---- pods (a plain list+watch, heatsched.watch: kopf's per-event copies are the controller's main cost) ----
    def pod_changed(self, uid: str, body: Mapping[str, Any] | None) -> list[Drift]:
        """A pod event (body None: deleted); returns new residency drift to report. Sync: it only updates the
        Store, so a burst of pod events costs no task each."""
        store = self.store
        if body is None:
            for pods in store.fuel_pods.values():
                pods.pop(uid, None)
            store.set_resident(uid, None)
            store.set_pod(uid, None, 0.0, True)
            store.set_nominated(uid, None, 0.0)
            return []
        meta, spec, status = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
        if not spec:
            return []
        gone = status.get("phase") in TERMINATED_PHASES
        key = (meta.get("namespace", ""), meta.get("name", ""))
        fuel_site = fuel_site_of(store, meta)
        if fuel_site is not None:
            terminating = gone or bool(meta.get("deletionTimestamp"))
            store.set_fuel_pod(uid, fuel_site, None if terminating else FuelPod(
                key[1], key[0], spec.get("nodeName"), pod_cpu(spec), meta.get("creationTimestamp") or ""))
            return []
        residency = (meta.get("annotations") or {}).get(RESIDENCY_ANNOTATION)
        resident = None
        if residency is not None and spec.get("nodeName") and not gone:
            try:
                resident = ResidentPod(key[0], key[1], spec["nodeName"], parse_residency(residency), tuple(
                    v for v in spec.get("volumes") or () if volume_type(v) not in NODE_LOCAL_VOLUMES | API_VOLUMES))
            except ResidencyError:
                resident = None  # admission refuses these; nothing to compare with
        store.set_resident(uid, resident)
        bound = store.pods.get(uid)  # a bound pod's CPU is parsed once: later events are mostly status updates
        cpu = bound.cpu if bound is not None and bound.node == spec.get("nodeName") else pod_cpu(spec)
        store.set_pod(uid, spec.get("nodeName"), cpu, gone)
        nominated = status.get("nominatedNodeName") if not gone and not spec.get("nodeName") else None
        store.set_nominated(uid, nominated, cpu)
        # a pod first seen on a node that already lost its country (a restart, a failover) is drift too
        return store.check_drift(uids=[uid]) if resident is not None else []

    def watch_pods(self) -> Watch:
        """Start the pod list+watch feeding pod_changed; drift found is reported off the watch's callback."""
        loop = asyncio.get_running_loop()

        def apply(uid: str, body: dict[str, Any] | None) -> None:
            drifts = self.pod_changed(uid, body)
            if drifts:
                task = loop.create_task(self.report_drift(drifts))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        def extract(obj: dict[str, Any]) -> tuple[str, dict[str, Any]]:
            return str((obj.get("metadata") or {}).get("uid") or ""), obj

        return Watch("pods", self.kube, path("", "v1", "pods"), extract, apply).start()

    async def write_demands(self, site: str, now: datetime | None = None) -> None:
        now = self.store.local_time(site, now or datetime.now(UTC))
        for d in [d for d in self.store.demands.values() if d.spec.site_ref == site]:
            kw, source = demand_now(d.spec, now, self.store.live_demand.get(d.name))
            status = ThermalDemandStatus(current_kw=round(kw, 3) if kw is not None else None, source=source,
                                         observed_generation=d.generation).to_wire()
            if self.demand_written.get(d.name) == status:
                continue
            try:
                await self.kube.merge_patch(path(*THERMALDEMANDS, d.name, subresource="status"), {"status": status})
                self.demand_written[d.name] = status
            except ApiError as exc:
                if exc.status != 404:
                    log.warning("cannot patch ThermalDemand %s status: %s", d.name, exc.reason)



def register(registry: kopf.OperatorRegistry) -> None:
    """Attach every handler to `registry` (no import-time global registration)."""

    def op(memo: kopf.Memo) -> Operator:
        operator: Operator = memo.operator
        return operator

    @kopf.on.resume(*HEATSITES, registry=registry)
    @kopf.on.create(*HEATSITES, registry=registry)
    @kopf.on.update(*HEATSITES, field="spec", registry=registry)
    async def heatsite_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        try:
            site = parse_heatsite(dict(body))
        except SpecError as exc:
            raise kopf.PermanentError(str(exc)) from None
        op(memo).store.set_site(site)
        await op(memo).relabel(list(op(memo).store.node_labels))

    @kopf.on.delete(*HEATSITES, registry=registry)
    async def heatsite_deleted(name: str, memo: kopf.Memo, **_: Any) -> None:
        store = op(memo).store
        members = [n for n, c in store.claims.items() if name in c]
        store.delete_site(name)
        op(memo).written.pop(name, None)
        await op(memo).relabel(members)
        await op(memo).fuel.forget(name)  # its fuel pods go with it

    @kopf.daemon(*HEATSITES, cancellation_timeout=5.0, registry=registry)
    async def heatsite_telemetry(name: str, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any) -> None:
        while not stopped:
            site = op(memo).store.sites.get(name)
            if site is not None:
                try:
                    await op(memo).refresh(name)
                except Exception:  # never let one bad refresh kill the daemon
                    log.exception("telemetry refresh of %s failed", name)
            await stopped.wait(site.spec.telemetry.refresh_seconds if site else 1.0)

    @kopf.on.resume(*THERMALDEMANDS, registry=registry)
    @kopf.on.create(*THERMALDEMANDS, registry=registry)
    @kopf.on.update(*THERMALDEMANDS, field="spec", registry=registry)
    async def thermaldemand_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        try:
            demand = parse_thermaldemand(dict(body))
        except SpecError as exc:
            raise kopf.PermanentError(str(exc)) from None
        op(memo).store.set_demand(demand)

    @kopf.on.delete(*THERMALDEMANDS, optional=True, registry=registry)
    async def thermaldemand_deleted(name: str, memo: kopf.Memo, **_: Any) -> None:
        op(memo).store.delete_demand(name)

    @kopf.on.event("", "v1", "nodes", registry=registry)
    async def node_event(event: kopf.RawEvent, name: str, memo: kopf.Memo, **_: Any) -> None:
        store = op(memo).store
        if event["type"] == "DELETED":
            store.delete_node(name)
            return
        obj = event["object"]
        store.set_node(name, dict(obj["metadata"].get("labels") or {}), node_cpu(obj))
        await op(memo).relabel([name])

    @kopf.on.event("", "v1", "namespaces", registry=registry)
    async def namespace_event(event: kopf.RawEvent, name: str, memo: kopf.Memo, **_: Any) -> None:
        """Namespace annotations: the residency ceilings the periodic audit applies."""
        store = op(memo).store
        if event["type"] == "DELETED":
            store.namespaces.pop(name, None)
            return
        meta = event["object"].get("metadata", {})
        store.namespaces[name] = dict(meta.get("annotations") or {})
