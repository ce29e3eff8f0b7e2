"""A tenant burst on sites full of heat fuel vs the same burst on idle sites: how much does fuel slow tenants?

Why: heat fuel (docs/fuel.md) fills the idle cores of cold French sites with preemptible pods (PriorityClass
`heatsched-fuel`: value -1000, preemptionPolicy Never). The requirement is that "a tenant burst arriving while
fuel runs must be scheduled as fast as on an idle site". On a site full of fuel no tenant pod fits without
preemption: kube-scheduler fails the pod, its PostFilter picks fuel victims and deletes them, nominates the
node, and binds the pod on a later attempt once the victims are gone (kwok removes deleted pods at once, so
this measures the scheduler's preemption path, not the fuel workload's own shutdown). Meanwhile the
controller sees its fuel pods vanish and may create new ones, which the default scheduler may bind into the
cores just freed. This measures all of it end to end, both conditions in the SAME run on the same cluster.

Set-up (benchmarks/common.py, `fuel=True`): local control plane, CRDs and the 4 example sites, the fuel
PriorityClass and namespace, `--nodes-per-site` kwok nodes of `--cpu-per-node` CPU in each site's pool,
Prometheus scraping an exporter, `heatsched controller` (it runs the fuel) and `heatsched placement` with the
extender (no webhook: tenant pods carry `schedulerName: heat-aware` and the residency annotation themselves; no
placement annotation, the default), ready once the placement service's /readyz answers 200. Every French tank is cold (`--cold`,
default 45 °C: the fuel plan wants far more heat than the idle cores give), Frankfurt stays at 70 °C
(its guard refuses fuel anyway, and residency FR keeps the burst off it). Each French site gets
`spec.fuel.coresPerPod = --fuel-cores`, fuel disabled until a fuel condition turns it on. Any burst
larger than the reserve must preempt fuel; the default one (800 of the 960 French cores) mostly does.

Conditions, each in a fresh namespace, the burst created with `--concurrency` requests in flight:
- idle: no fuel pod anywhere; the burst of `--burst` pods of `--pod-cpu` CPU (residency `--residency`).
- fuel: fuel enabled on the French sites; wait until each runs its whole plan in bound fuel pods (its idle
  cores minus spec.fuel.reservePercent, `--reserve-percent`, CRD default 10 %), then the same burst.
Before each burst the stack settles (< 0.3 cores busy). A fuel burst then waits until fuel has run `--fuel-age`
s (default 35: the controller counts a pod it made less than 30 s ago as still there, so fresh fuel would not be
re-created) plus a random part of the controller's refresh period (`--seed`; `--no-phase`: none), since a
refresh during the burst re-creates preempted fuel and real bursts come at any phase. The clock of each pod
runs from its creation (POST answered) to its binding seen on a watch; the makespan from the first POST to
the last binding. A watch on the fuel namespace counts the fuel pods preempted (condition DisruptionTarget,
reason PreemptionByScheduler), deleted, created and bound during the burst. Then fuel is disabled, fuel pods
and the burst deleted, and the next condition waits for a clean cluster. Rounds alternate the order (idle first
in odd rounds, fuel first in even ones), after one unmeasured idle warm-up burst.

    .venv/bin/python benchmarks/bench_fuel_preemption.py                                  # ~6 min on 2 cores
    .venv/bin/python benchmarks/bench_fuel_preemption.py --rounds 1 --nodes-per-site 4 --burst 40   # quick
    .venv/bin/python benchmarks/bench_fuel_preemption.py --json benchmarks/results/fuel-preemption.json

Reported per condition and round: create->bind latency p50/p95/max, makespan, fuel pods bound before the
burst, preempted, deleted, (re)created and bound by the default scheduler during the burst, the heat-aware
scheduler's attempts by result, their mean duration and its preemption counters (its /metrics), the
kube-apiserver's requests on pods by verb (count and mean duration, its /metrics), for pods that
preempted the time to their nomination and from nomination to binding, and the CPU the stack used. The
summary gives the mean over rounds of each condition and the ratio fuel / idle of p95 and makespan. Not a
pytest test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import ssl
import statistics
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scheduling import (
    _insecure,
    _scheduler_request,
    cpu_snapshot,
    settle,
    wait_service_account,
)
from common import (
    FUEL_NAMESPACE,
    ROOT,
    BenchStack,
    Kube,
    KubeError,
    add_process_args,
    bench_stack,
    example_sites,
    machine_info,
    pod_body,
    quantile,
    wait_for,
)
from heatsched.cluster.controlplane import HEAT_AWARE_SCHEDULER
from heatsched.controller.fuel import UNSEEN_TTL_S
from heatsched.placement.model import FUEL_SITE_LABEL

CONDITIONS = ("idle", "fuel")
HOT_OTHERS_C = 70.0  # sites outside the burst's residency (Frankfurt): Comfortable, fuel refused by the guard
MAX_REFRESH_WAITS = 8  # bound on the refreshes a fuel transition may take (50 pod changes per refresh)


# ---- the sites -------------------------------------------------------------------------------------------
def site_countries() -> dict[str, str]:
    out = {}
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for d in yaml.safe_load_all(path.read_text()):
            if d and d["kind"] == "HeatSite":
                out[d["metadata"]["name"]] = d["spec"]["country"]
    return out


def refresh_seconds(stack: BenchStack, site: str) -> float:
    return float(stack.get(f"/apis/heatsched.io/v1alpha1/heatsites/{site}")["spec"]["telemetry"]["refreshSeconds"])


def patch_site(stack: BenchStack, site: str, patch: dict) -> None:
    stack.kubectl("patch", "heatsite", site, "--type=merge", "-p", json.dumps(patch))


def fuel_pods(stack: BenchStack) -> list[dict]:
    """Every fuel pod not being deleted."""
    items = stack.get(f"/api/v1/namespaces/{FUEL_NAMESPACE}/pods?labelSelector={FUEL_SITE_LABEL}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def bound_fuel_per_site(stack: BenchStack, sites: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(sites, 0)
    for p in fuel_pods(stack):
        site = p["metadata"]["labels"][FUEL_SITE_LABEL]
        if site in counts and p["spec"].get("nodeName"):
            counts[site] += 1
    return counts


def fuel_status(stack: BenchStack, site: str) -> dict:
    return (stack.get(f"/apis/heatsched.io/v1alpha1/heatsites/{site}").get("status") or {}).get("fuel") or {}


def fill_with_fuel(stack: BenchStack, sites: list[str], cores_per_pod: int, timeout: float) -> tuple[float, int]:
    """Turn fuel on at `sites` and wait until each runs its whole plan (status.fuel.plannedCores > 0, that many
    cores in bound fuel pods: the idle cores minus spec.fuel.reservePercent); returns (seconds, fuel pods)."""
    t = time.monotonic()
    for site in sites:
        patch_site(stack, site, {"spec": {"fuel": {"enabled": True}}})

    def full() -> bool:
        stack.check_heatsched()
        planned = {s: fuel_status(stack, s).get("plannedCores") or 0 for s in sites}
        bound = bound_fuel_per_site(stack, sites)
        return all(planned[s] > 0 and bound[s] * cores_per_pod == planned[s] for s in sites)

    try:
        wait_for(full, timeout, 1.0, what=f"every planned fuel pod bound on {sites}")
    except Exception:
        print(f"fuel pods bound per site: {bound_fuel_per_site(stack, sites)}; status.fuel: "
              f"{ {s: fuel_status(stack, s) for s in sites} }", file=sys.stderr)
        raise
    return time.monotonic() - t, sum(bound_fuel_per_site(stack, sites).values())


def remove_fuel(stack: BenchStack, sites: list[str], timeout: float) -> None:
    """Fuel off at `sites`: wait until the controller plans 0 cores (so it creates no more), then force-delete
    what is left instead of waiting for its 50 deletions per refresh."""
    for site in sites:
        patch_site(stack, site, {"spec": {"fuel": {"enabled": False}}})
    wait_for(lambda: all(fuel_status(stack, s).get("plannedCores") == 0 for s in sites), timeout, 0.5,
             what="the controller plans 0 fuel cores at every site")
    asyncio.run(_force_delete_fuel(stack))
    wait_for(lambda: not stack.get(f"/api/v1/namespaces/{FUEL_NAMESPACE}/pods")["items"], 120, 0.5,
             what="every fuel pod gone")


async def _force_delete_fuel(stack: BenchStack) -> None:
    async with Kube(stack.cp.kubeconfig) as kube:
        await kube.call("DELETE", f"/api/v1/namespaces/{FUEL_NAMESPACE}/pods",
                        params={"gracePeriodSeconds": "0", "labelSelector": FUEL_SITE_LABEL})


# ---- the heat-aware kube-scheduler's counters ------------------------------------------------------------
def _scheduler_metrics_text(stack: BenchStack) -> str:
    port = stack.cp.ports["heat_scheduler"]
    req = _scheduler_request(stack, f"https://127.0.0.1:{port}/metrics")
    with urllib.request.urlopen(req, context=_insecure(), timeout=10) as resp:
        return resp.read().decode()


def apiserver_pod_requests(stack: BenchStack) -> dict[str, tuple[float, float]]:
    """(seconds, count) of the kube-apiserver's requests on pods by verb and subresource (its /metrics)."""
    req = urllib.request.Request(stack.cp.server + "/metrics", headers={"Authorization": f"Bearer {stack.token()}"})
    ctx = ssl.create_default_context(cafile=str(stack.cp.pki.ca_cert))
    with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
        text = resp.read().decode()
    out: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "apiserver_request_duration_seconds":
            continue
        for s in family.samples:
            if s.labels.get("resource") != "pods" or s.labels.get("verb") in ("WATCH", "LIST"):
                continue
            key = f"{s.labels['verb']} pods{'/' + s.labels['subresource'] if s.labels.get('subresource') else ''}"
            if s.name.endswith("_sum"):
                out.setdefault(key, [0.0, 0.0])[0] += s.value
            elif s.name.endswith("_count"):
                out.setdefault(key, [0.0, 0.0])[1] += s.value
    return {k: (v[0], v[1]) for k, v in out.items()}


def _requests_delta(r0: dict[str, tuple[float, float]], r1: dict[str, tuple[float, float]]) -> dict[str, str]:
    """'count x mean ms' of each kind of pod request made during the burst, most frequent first."""
    rows = []
    for key, (s1, c1) in r1.items():
        s0, c0 = r0.get(key, (0.0, 0.0))
        if c1 > c0:
            rows.append((c1 - c0, key, (s1 - s0) / (c1 - c0) * 1e3))
    return {key: f"{n:.0f} x {ms:.1f} ms" for n, key, ms in sorted(rows, reverse=True)}


def scheduler_features(stack: BenchStack) -> dict[str, bool]:
    """The heat-aware kube-scheduler's Scheduler* feature gates (they decide how preemption runs)."""
    return {s.labels["name"]: bool(s.value)
            for family in text_string_to_metric_families(_scheduler_metrics_text(stack))
            for s in family.samples
            if s.name == "kubernetes_feature_enabled" and s.labels.get("name", "").startswith("Scheduler")}


def scheduler_counters(stack: BenchStack) -> dict[str, float]:
    """Scheduling attempts by result and preemption counters of the heat-aware kube-scheduler (/metrics)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(_scheduler_metrics_text(stack)):
        for s in family.samples:
            if s.name == "scheduler_schedule_attempts_total":
                key = f"attempts:{s.labels.get('result')}"
            elif s.name in ("scheduler_scheduling_attempt_duration_seconds_sum",
                            "scheduler_scheduling_attempt_duration_seconds_count"):
                key = f"attempt_s_{s.name.rsplit('_', 1)[1]}:{s.labels.get('result')}"
            elif s.name in ("scheduler_preemption_attempts_total", "scheduler_preemption_victims_sum",
                            "scheduler_preemption_victims_count"):
                key = s.name.removeprefix("scheduler_").removesuffix("_total")
            else:
                continue
            out[key] = out.get(key, 0.0) + s.value
    return out


# ---- one burst -------------------------------------------------------------------------------------------
class FuelWatch:
    """What happens to fuel pods while the burst is scheduled (watch from just before its first pod)."""

    def __init__(self) -> None:
        self.preempted: set[str] = set()
        self.deleted: set[str] = set()
        self.created: set[str] = set()
        self.created_bound: set[str] = set()
        self.seen_bound: set[str] = set()

    def observe(self, event: dict) -> None:
        obj = event["object"]
        uid, meta = obj["metadata"]["uid"], obj["metadata"]
        if event["type"] == "ADDED":
            self.created.add(uid)
        for c in (obj.get("status") or {}).get("conditions") or ():
            if c.get("type") == "DisruptionTarget" and c.get("reason") == "PreemptionByScheduler":
                self.preempted.add(uid)
        if event["type"] == "DELETED" or meta.get("deletionTimestamp"):
            self.deleted.add(uid)
        if (obj.get("spec") or {}).get("nodeName") and uid in self.created:
            self.created_bound.add(uid)

    def summary(self) -> dict:
        return {"fuel_preempted": len(self.preempted), "fuel_deleted": len(self.deleted),
                "fuel_created": len(self.created), "fuel_created_bound": len(self.created_bound)}


async def burst(stack: BenchStack, args: argparse.Namespace) -> dict:
    """Create the burst in a fresh namespace, time every pod until bound; the namespace is deleted after."""
    async with Kube(stack.cp.kubeconfig, limit=args.concurrency + 4) as kube:
        ns = f"burst-{uuid.uuid4().hex[:6]}"
        await kube.call("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
        try:
            await wait_service_account(kube, ns)
            path = f"/api/v1/namespaces/{ns}/pods"
            fuel_path = f"/api/v1/namespaces/{FUEL_NAMESPACE}/pods"
            rv = (await kube.call("GET", path, params={"limit": "1"}))["metadata"]["resourceVersion"]
            fuel_rv = (await kube.call("GET", fuel_path, params={"limit": "1"}))["metadata"]["resourceVersion"]
            names = [f"t-{i:04d}" for i in range(args.burst)]
            bodies = [pod_body(n, scheduler=HEAT_AWARE_SCHEDULER, cpu=str(args.pod_cpu), residency=args.residency)
                      for n in names]
            bound: dict[str, tuple[float, str]] = {}
            nominated: dict[str, float] = {}  # first seen with status.nominatedNodeName: preemption decided
            fuel = FuelWatch()

            async def collect() -> None:
                async for event in kube.watch(path, rv):
                    obj = event["object"]
                    node = (obj.get("spec") or {}).get("nodeName")
                    if (obj.get("status") or {}).get("nominatedNodeName"):
                        nominated.setdefault(obj["metadata"]["name"], time.monotonic())
                    if node and obj["metadata"]["name"] not in bound:
                        bound[obj["metadata"]["name"]] = (time.monotonic(), node)
                        if len(bound) >= len(names):
                            return

            async def watch_fuel() -> None:
                async for event in kube.watch(fuel_path, fuel_rv):
                    fuel.observe(event)

            watcher = asyncio.create_task(collect())
            fuel_watcher = asyncio.create_task(watch_fuel())
            pids = stack.services()
            m0, r0, cpu0 = scheduler_counters(stack), apiserver_pod_requests(stack), cpu_snapshot(pids)
            t0 = time.monotonic()
            created = await kube.create_all(path, bodies, args.concurrency)
            t_created = time.monotonic()
            try:
                await asyncio.wait_for(watcher, args.timeout)
            except TimeoutError:
                raise TimeoutError(f"only {len(bound)}/{len(names)} burst pods bound after {args.timeout:.0f} s "
                                   f"(see the heat-aware scheduler, controller and placement logs)") from None
            finally:
                await asyncio.sleep(0.2)  # the last victims' events, if still in flight
                fuel_watcher.cancel()
                await asyncio.gather(fuel_watcher, return_exceptions=True)
            t_end, cpu1 = time.monotonic(), cpu_snapshot(pids)
            m1, r1 = scheduler_counters(stack), apiserver_pod_requests(stack)
            fuel_after = sum(1 for p in (await kube.call("GET", fuel_path))["items"]
                             if p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp"))
            busy = {k: cpu1[k] - cpu0[k] for k in pids}
            return {"t0": t0, "t_created": t_created, "created": created, "bound": [bound[n] for n in names],
                    "nominated": [nominated.get(n) for n in names], "fuel": fuel.summary(), "fuel_after": fuel_after,
                    "scheduler": {k: round(v - m0.get(k, 0.0)) for k, v in m1.items() if v != m0.get(k, 0.0)},
                    "attempt_ms": _attempt_ms(m0, m1), "pod_requests": _requests_delta(r0, r1),
                    "cpu_cores": sum(busy.values()) / (t_end - t0),
                    "cpu_s": {k: round(v, 2) for k, v in sorted(busy.items(), key=lambda kv: -kv[1])}}
        finally:
            await kube.delete_namespace(ns)


def _attempt_ms(m0: dict[str, float], m1: dict[str, float]) -> dict[str, float]:
    """Mean duration of one scheduling attempt (kube-scheduler's own clock) by result, over the burst."""
    out = {}
    for key, value in m1.items():
        if key.startswith("attempt_s_count:"):
            result = key.split(":", 1)[1]
            n = value - m0.get(key, 0.0)
            total = m1.get(f"attempt_s_sum:{result}", 0.0) - m0.get(f"attempt_s_sum:{result}", 0.0)
            if n > 0:
                out[result] = round(total / n * 1e3, 1)
    return out


def summarise(raw: dict) -> dict:
    latencies = sorted(max(0.0, b[0] - c) for b, c in zip(raw["bound"], raw["created"]))
    # pods that preempted: creation -> nominated (scheduler failed them and chose victims), nominated -> bound
    to_nominated = sorted(max(0.0, t - c) for t, c in zip(raw["nominated"], raw["created"]) if t is not None)
    nominated_to_bound = sorted(max(0.0, b[0] - t) for t, b in zip(raw["nominated"], raw["bound"]) if t is not None)
    per_site: dict[str, int] = {}
    for _, node in raw["bound"]:
        site = node.rsplit("-", 1)[0]
        per_site[site] = per_site.get(site, 0) + 1
    return {"pods": len(latencies),
            "p50_ms": quantile(latencies, 0.5) * 1e3, "p95_ms": quantile(latencies, 0.95) * 1e3,
            "max_ms": latencies[-1] * 1e3,
            "makespan_s": max(t for t, _ in raw["bound"]) - raw["t0"], "create_s": raw["t_created"] - raw["t0"],
            "nominated": len(to_nominated),
            "to_nominated_p50_ms": quantile(to_nominated, 0.5) * 1e3 if to_nominated else None,
            "nominated_to_bound_p50_ms": quantile(nominated_to_bound, 0.5) * 1e3 if nominated_to_bound else None,
            "pods_per_site": dict(sorted(per_site.items())), **raw["fuel"], "fuel_after": raw["fuel_after"],
            "scheduler": {k: v for k, v in raw["scheduler"].items() if not k.startswith("attempt_s_")},
            "attempt_ms": raw["attempt_ms"], "pod_requests": raw["pod_requests"],
            "cpu_cores": round(raw["cpu_cores"], 2), "cpu_s": raw["cpu_s"]}


def run_condition(stack: BenchStack, condition: str, args: argparse.Namespace, fr_sites: list[str],
                  rng: random.Random, n_pods: int | None = None) -> dict:
    refresh = max(refresh_seconds(stack, s) for s in fr_sites)
    transition_timeout = MAX_REFRESH_WAITS * refresh + 60.0
    fill_s, delay = None, 0.0
    if condition == "fuel":
        fill_s, _ = fill_with_fuel(stack, fr_sites, args.fuel_cores, min(args.fill_timeout, transition_timeout))
        filled = time.monotonic()
    elif pods := fuel_pods(stack):
        raise RuntimeError(f"idle condition but {len(pods)} fuel pods exist")
    settled_s = asyncio.run(settle(stack.services()))
    if condition == "fuel":
        # Fuel that has run a while, not fuel just made: the controller counts a pod it created less than
        # UNSEEN_TTL_S ago and no longer sees as still there (it may not have reached its watch yet), so
        # right after the fill it would not re-create preempted pods. And a burst arrives at any point of
        # the refresh cycle (a refresh during the burst re-creates preempted fuel): a random phase.
        delay = max(0.0, args.fuel_age - (time.monotonic() - filled))
        delay += rng.uniform(0.0, refresh) if args.phase else 0.0
        time.sleep(delay)
    fuel_before = sum(bound_fuel_per_site(stack, fr_sites).values())
    local = argparse.Namespace(**{**vars(args), "burst": n_pods or args.burst})
    try:
        row = summarise(asyncio.run(burst(stack, local)))
    finally:
        t = time.monotonic()
        if condition == "fuel":
            remove_fuel(stack, fr_sites, transition_timeout)
        cleanup_s = time.monotonic() - t
    row.update(condition=condition, fill_s=fill_s, settled_s=round(settled_s, 1), fuel_before=fuel_before,
               delay_s=round(delay, 1), cleanup_s=round(cleanup_s, 1), load_avg=round(os.getloadavg()[0], 2))
    return row


# ---- report ----------------------------------------------------------------------------------------------
HEADER = (f"{'round':<12} {'pods':>4} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'makespan':>8} "
          f"{'fuel before':>11} {'preempted':>9} {'fuel made/bound':>15} {'fill s':>6}  pods per site")


def print_row(label: str, r: dict) -> None:
    fill = f"{r['fill_s']:.0f}" if r["fill_s"] is not None else "-"
    print(f"{label:<12} {r['pods']:>4} {r['p50_ms']:>7.0f} {r['p95_ms']:>7.0f} {r['max_ms']:>7.0f} "
          f"{r['makespan_s']:>7.2f}s {r['fuel_before']:>11} {r['fuel_preempted']:>9} "
          f"{r['fuel_created']:>7}/{r['fuel_created_bound']:<7} {fill:>6}  {r['pods_per_site']}", flush=True)
    if r["nominated"]:
        print(f"{'':<12} {r['nominated']} pods nominated (preempted): create -> nominated p50 "
              f"{r['to_nominated_p50_ms']:.0f} ms, nominated -> bound p50 {r['nominated_to_bound_p50_ms']:.0f} ms",
              flush=True)
    print(f"{'':<12} heat-aware scheduler: {r['scheduler']}, mean attempt ms {r['attempt_ms']}", flush=True)
    print(f"{'':<12} apiserver pod requests (count x mean): {r['pod_requests']}", flush=True)
    print(f"{'':<12} fuel deleted {r['fuel_deleted']}, bound at the end {r['fuel_after']}; stack {r['cpu_cores']} "
          f"cores busy, CPU s {r['cpu_s']}; settled {r['settled_s']} s, started after {r['delay_s']} s more, "
          f"cleanup {r['cleanup_s']} s, load average {r['load_avg']}", flush=True)


def summarise_runs(rows: list[dict]) -> dict:
    out: dict = {}
    for cond in CONDITIONS:
        mine = [r for r in rows if r["condition"] == cond]
        out[cond] = {k: statistics.mean(r[k] for r in mine) for k in ("p50_ms", "p95_ms", "max_ms", "makespan_s",
                                                                       "fuel_preempted")}
        out[cond]["rounds_p95_ms"] = [round(r["p95_ms"]) for r in mine]
        out[cond]["rounds_makespan_s"] = [round(r["makespan_s"], 2) for r in mine]
    out["ratio_p95"] = out["fuel"]["p95_ms"] / out["idle"]["p95_ms"]
    out["ratio_makespan"] = out["fuel"]["makespan_s"] / out["idle"]["makespan_s"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes-per-site", type=int, default=10, help="kwok nodes in each site's pool")
    parser.add_argument("--cpu-per-node", type=int, default=32, help="allocatable CPU of each node")
    parser.add_argument("--fuel-cores", type=int, default=4, help="spec.fuel.coresPerPod of the French sites")
    parser.add_argument("--burst", type=int, default=100, help="tenant pods per burst")
    parser.add_argument("--pod-cpu", type=int, default=8, help="CPU request of each tenant pod")
    parser.add_argument("--residency", default="FR", help="heatsched.io/residency of the burst ('' for none)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (each: both conditions)")
    parser.add_argument("--warmup", type=int, default=20, help="pods of the unmeasured idle warm-up burst (0: none)")
    parser.add_argument("--cold", type=float, default=45.0, help="tank temperature of the French sites (°C)")
    parser.add_argument("--refresh-seconds", type=int,
                        help="patch every site's telemetry.refreshSeconds (default: the manifests' 15 s)")
    parser.add_argument("--reserve-percent", type=float,
                        help="patch spec.fuel.reservePercent of the French sites (share of their cores fuel leaves "
                        "free; default: the CRD default, 10 %%)")
    parser.add_argument("--fuel-age", type=float, default=UNSEEN_TTL_S + 5.0,
                        help="seconds fuel runs after the fill before the burst (default: the controller's "
                        "UNSEEN_TTL_S + 5, so that it re-creates preempted fuel as it would in steady state)")
    parser.add_argument("--no-phase", dest="phase", action="store_false",
                        help="start each fuel burst right after the fill instead of at a random point (uniform "
                        "over one refresh period) of the controller's refresh cycle")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random burst phases")
    parser.add_argument("--concurrency", type=int, default=16, help="pod creations in flight")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds for one burst to be bound")
    parser.add_argument("--fill-timeout", type=float, default=300.0, help="seconds for fuel to fill the sites")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy every component's log there before teardown")
    add_process_args(parser)
    args = parser.parse_args(argv)
    args.residency = args.residency or None
    if args.rounds < 1 or args.burst < 1 or args.nodes_per_site < 1:
        parser.error("--rounds, --burst and --nodes-per-site must be >= 1")

    countries = site_countries()
    sites = example_sites()
    fr_sites = [s for s in sites if countries[s] == "FR"]
    fr_cores = len(fr_sites) * args.nodes_per_site * args.cpu_per_node
    reserve = "the CRD default" if args.reserve_percent is None else f"{args.reserve_percent:g} %"
    print(f"burst {args.burst} x {args.pod_cpu} CPU = {args.burst * args.pod_cpu} of the {fr_cores} French cores; "
          f"fuel pods of {args.fuel_cores} CPU, reserve {reserve}", flush=True)
    if args.burst * args.pod_cpu > fr_cores:
        parser.error("the burst does not fit on the French nodes even without fuel")
    temperatures = {s: args.cold if s in fr_sites else HOT_OTHERS_C for s in sites}
    max_cores = args.fuel_cores * -(-args.nodes_per_site * args.cpu_per_node // args.fuel_cores)

    rows: list[dict] = []
    rng = random.Random(args.seed)
    t_start = time.monotonic()
    with bench_stack(len(sites) * args.nodes_per_site, controller_args=args.controller_arg,
                     placement_args=args.placement_arg,
                     keep_logs=Path(args.keep_logs) if args.keep_logs else None, node_cpu=str(args.cpu_per_node),
                     temperatures=temperatures, fuel=True) as st:
        for site in fr_sites:
            fuel_patch = {"coresPerPod": args.fuel_cores, "maxCores": max_cores, "minCores": 0}
            if args.reserve_percent is not None:
                fuel_patch["reservePercent"] = args.reserve_percent
            patch_site(st, site, {"spec": {"fuel": fuel_patch}})
        if args.refresh_seconds:
            for site in sites:
                patch_site(st, site, {"spec": {"telemetry": {"refreshSeconds": args.refresh_seconds}}})
        print(f"stack ready: {len(st.nodes)} nodes ({args.nodes_per_site} per site, {args.cpu_per_node} CPU), "
              f"French sites {fr_sites} at {args.cold} °C; set-up "
              + ", ".join(f"{k} {v:.0f} s" for k, v in st.setup_s.items()), flush=True)
        features = scheduler_features(st)
        print(f"heat-aware kube-scheduler feature gates: {features}", flush=True)
        print(HEADER)
        if args.warmup:
            print_row("warm-up", run_condition(st, "idle", args, fr_sites, rng, args.warmup))
        for i in range(args.rounds):
            for cond in CONDITIONS if i % 2 == 0 else CONDITIONS[::-1]:
                row = run_condition(st, cond, args, fr_sites, rng)
                row["round"] = i + 1
                rows.append(row)
                print_row(f"{i + 1} {cond}", row)
        setup = st.setup_s

    s = summarise_runs(rows)
    print()
    for cond in CONDITIONS:
        c = s[cond]
        print(f"{cond:<5} p50 {c['p50_ms']:6.0f} ms  p95 {c['p95_ms']:6.0f} ms  max {c['max_ms']:6.0f} ms  "
              f"makespan {c['makespan_s']:5.2f} s  fuel preempted {c['fuel_preempted']:.0f}  "
              f"(rounds p95 {c['rounds_p95_ms']} ms, makespan {c['rounds_makespan_s']} s)")
    print(f"fuel / idle: p95 x{s['ratio_p95']:.2f}, makespan x{s['ratio_makespan']:.2f}")
    print(f"total {time.monotonic() - t_start:.0f} s")
    if args.json:
        out = {"meta": {**machine_info(), "command": " ".join(sys.argv), "args": vars(args), "setup_s": setup,
                        "scheduler_features": features},
               "summary": s, "rounds": rows}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KubeError as exc:
        print(f"apiserver error: {exc}", file=sys.stderr)
        sys.exit(1)
