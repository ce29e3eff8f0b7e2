"""The policy benchmark: one seeded week of jobs and hot-water demand, replayed under each placement policy.

Why it exists: it answers the project's question with numbers — how much of the sites' hot-water demand do
servers meet, and how much gas is burnt, when pods are placed heat-aware versus the usual ways — and it
checks that no policy ever breaks residency.

Scenario (identical for every policy): the sites' demand series (profiles × seeded day factors, draw.py), a
cluster sized from the sites, and a job trace (trace.py). Cluster sizing: unless --nodes is given, each site
gets enough `cores`-core nodes for its servers at full load to deliver `sizing` (1 by default) times its mean
heat demand:

    nodes = max(1, round(sizing · mean_demand_kw / (η · (cores · wattsPerCPU + idleWattsPerNode) / 1000)))

Engine, per step k (length Δ, 60 s by default): finished jobs free their cores; jobs that arrived since the
previous step join a FIFO queue; the policy places queued jobs in order (a job that does not fit waits, later
jobs may still go: no head-of-line blocking, like kube-scheduler); then every tank advances with its site's IT
power P = busy cores · wattsPerCPU + idle nodes. Decisions happen at step boundaries, so every job waits up
to one step (Δ/2 on average) even on an empty cluster.

Metrics per policy: share of demand met by server heat (served_by_it / demand, tank.py's colouring), backup
kWh, minutes below the floor, heat dumped, residency violations (checked independently of the policy),
mean and p95 wait, jobs still queued at the end. The energy bound: servers cannot meet more than the IT heat
the trace produces, bound = min(1, (Σ job core-hours · max wattsPerCPU + idle) · η / demand).
"""

from __future__ import annotations

import heapq
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from heatsched.placement.core import MAX_HEAT_WAIT_S
from heatsched.planning.fuel import co2_factors, static_guard
from heatsched.thermal import season
from heatsched.twin.bound import BoundResult, lp_bound
from heatsched.twin.draw import days_spanned, litres40_per_step
from heatsched.twin.fuel import FuelSim
from heatsched.twin.policies import (
    FUEL_POLICIES,
    POLICY_NAMES,
    BinPacking,
    Cluster,
    Env,
    HeatAware,
    Policy,
    RandomPolicy,
    Spreading,
)
from heatsched.twin.sites import SiteConfig, backup_kw_for
from heatsched.twin.tank import TankState, step
from heatsched.twin.trace import Job, TraceParams, generate

DEFAULT_START = datetime(2025, 3, 3)
MIN_RATIO_KWH = 1.0  # below this LP bound (e.g. it ends with fuller tanks than it started), no ratio is given
STARVED_S = 3600.0  # a job still queued at the end after waiting this long is starved, not just late  # a Monday in spring: space heating at its spring factor


@dataclass(frozen=True)
class SimConfig:
    days: float = 7.0
    step_s: float = 60.0
    seed: int = 1
    start: datetime = DEFAULT_START
    cores_per_node: int = 64
    nodes: int | None = None  # per site; None = sized from demand (module docstring)
    sizing: float = 1.0  # IT heat at full load / mean heat demand, when sizing nodes
    trace: TraceParams = field(default_factory=TraceParams)

    def __post_init__(self) -> None:
        if not (self.days > 0 and self.step_s > 0 and self.cores_per_node > 0):
            raise ValueError("days, step and cores per node must be > 0")
        if self.nodes is not None and self.nodes < 1:
            raise ValueError("nodes per site must be >= 1")
        if not self.sizing > 0:
            raise ValueError("sizing must be > 0")
        if self.step_s > 3600:
            raise ValueError("step must be at most 3600 s (profiles are hourly)")

    @property
    def steps(self) -> int:
        return round(self.days * 86400 / self.step_s)


def sized_nodes(site: SiteConfig, cores: int, sizing: float = 1.0) -> int:
    """Nodes whose full-load heat is `sizing` × the site's mean demand (at least one)."""
    full_kw = site.tank.efficiency * (cores * site.watts_per_cpu + site.spec.power.idle_watts_per_node) / 1000
    return max(1, round(sizing * site.mean_demand_kw() / full_kw))


@dataclass
class Scenario:
    """Everything every policy replays identically (see build_scenario)."""

    config: SimConfig
    sites: list[SiteConfig]  # backups sized for this scenario (build_scenario)
    nodes: list[int]
    demand_kw: np.ndarray  # [site, step] total heat demand: draw heat at the day's inlet + kW demands
    draw_l40: np.ndarray  # [site, step] litres at 40 °C drawn during the step
    heat_kw: np.ndarray  # [site, step] kW demands (loop, process, space heating)
    inlet_c: np.ndarray  # [site, step] cold-water inlet (°C) of the step's calendar day
    jobs: list[Job]

    @property
    def steps(self) -> int:
        return self.config.steps

    def demand_kwh(self) -> np.ndarray:
        """Demand energy per site over the run."""
        kwh: np.ndarray = self.demand_kw.sum(axis=1) * self.config.step_s / 3600
        return kwh


def build_scenario(sites: Sequence[SiteConfig], config: SimConfig) -> Scenario:
    """Demand series, inlet, backups, cluster and job trace of one run (the same for every policy).

    Hot-water profiles are kW at the mean inlet T̄: the draw is the 40 °C volume they stand for,
    V_40 = kW · h / (ρc (40 − T̄)/3600) per step, and its heat at the day's inlet is kW · (40 − T_in)/(40 − T̄)
    (draw.py); demand_kw sums that heat and the kW demands, so it is what the tanks actually deliver.

    Backup: each site keeps its design burner (sites.py) unless this scenario needs more; then it is raised
    to BACKUP_MARGIN × the highest per-step demand + UA · (T_min − T_ambient) (sites.backup_kw_for), so no
    minute below the floor comes from an undersized burner.
    """
    sites = sorted(sites, key=lambda s: s.name)
    steps, dt = config.steps, config.step_s
    n_days = days_spanned(config.start, steps, dt)
    rng = np.random.default_rng([config.seed, 0])
    demand = np.zeros((len(sites), steps))
    draw = np.zeros((len(sites), steps))
    heat = np.zeros((len(sites), steps))
    inlet = np.zeros((len(sites), steps))
    for i, site in enumerate(sites):
        inlet[i] = site.inlet_series(config.start, steps, dt)
        for d in site.demands:
            kw = d.series(config.start, steps, dt, d.day_variation.draw(rng, n_days))
            if d.is_draw:
                draw[i] += litres40_per_step(kw, site.tank.inlet_c, dt)  # profile kW are at the mean inlet
                demand[i] += kw * site.draw_heat_factor(inlet[i])
            else:
                heat[i] += kw
                demand[i] += kw
    sites = [
        s.with_backup_kw(max(s.tank.backup_kw, backup_kw_for(float(demand[i].max(initial=0.0)), s.tank)))
        for i, s in enumerate(sites)
    ]
    nodes = [config.nodes or sized_nodes(s, config.cores_per_node, config.sizing) for s in sites]
    country_cores: dict[str, int] = {}
    for s, n in zip(sites, nodes):
        country_cores[s.country] = country_cores.get(s.country, 0) + n * config.cores_per_node
    jobs = generate(config.trace, config.start, steps * dt, country_cores, seed=config.seed)
    return Scenario(config, list(sites), nodes, demand, draw, heat, inlet, jobs)


def make_policy(name: str, scenario: Scenario, cluster: Cluster, max_heat_wait_s: float = MAX_HEAT_WAIT_S) -> Policy:
    if name in ("heat-aware", "heat-aware+fuel"):
        return HeatAware(scenario.sites, cluster, max_heat_wait_s)
    if name == "spreading":
        return Spreading()
    if name == "bin-packing":
        return BinPacking()
    if name == "random":
        return RandomPolicy(scenario.config.seed)
    raise ValueError(f"unknown policy {name!r}; known: {', '.join(POLICY_NAMES)}")


@dataclass
class PolicyResult:
    policy: str
    metrics: dict[str, Any]
    sites: dict[str, dict[str, float]]
    temperature_c: np.ndarray  # [site, step]
    backup_kwh_cum: np.ndarray  # [step], all sites
    seconds: float
    fuel_kw: np.ndarray | None = None  # [site, step] electric kW of heat fuel (fuel policies only)


PolicyFactory = Callable[[Scenario, Cluster], Policy]


def run_policy(
    scenario: Scenario,
    name: str,
    progress: Callable[[float], None] | None = None,
    factory: PolicyFactory | None = None,
    max_heat_wait_s: float = MAX_HEAT_WAIT_S,
) -> PolicyResult:
    """Replay the scenario under policy `name` (or the policy `factory` builds, reported as `name`).

    Fuel policies (`heat-aware+fuel`) also plan heat fuel every step, after the step's tenant placements
    (twin/fuel.py); its power heats the tank like any IT load but is never tenant load.
    """
    began = time.perf_counter()
    cfg, sites, steps, dt = scenario.config, scenario.sites, scenario.steps, scenario.config.step_s
    cluster = Cluster(sites, scenario.nodes, cfg.cores_per_node)
    policy = (factory or (lambda sc, cl: make_policy(name, sc, cl, max_heat_wait_s)))(scenario, cluster)
    fuel = FuelSim(sites, scenario.nodes, cfg.cores_per_node, steps) if name in FUEL_POLICIES else None
    fuel_kw = [0.0] * len(sites)
    tanks = [TankState(temperature_c=s.tank.target_c) for s in sites]
    idle_kw = [s.idle_kw(n) for s, n in zip(sites, scenario.nodes)]
    wpc = [s.watts_per_cpu / 1000.0 for s in sites]
    arrivals: list[list[Job]] = [[] for _ in range(steps + 1)]  # the last bucket: after the last decision
    for job in scenario.jobs:
        arrivals[min(steps, math.ceil(job.arrival_s / dt))].append(job)
    residencies = {j.residency: j.pod.residency for j in scenario.jobs}  # annotation -> allowed countries
    env = Env(
        k=0, now=cfg.start, cluster=cluster, temperature_c=[t.temperature_c for t in tanks],
        demand_kw=[0.0] * len(sites), it_kw=list(idle_kw), step_s=dt,
        allowed={r: [i for i, s in enumerate(sites) if c is None or s.country in c] for r, c in residencies.items()},
    )
    demand_rows = scenario.demand_kw.T.tolist()
    draw_rows, heat_rows = scenario.draw_l40.T.tolist(), scenario.heat_kw.T.tolist()
    temps = np.empty((len(sites), steps), dtype=np.float32)
    backup_cum = np.empty(steps)
    running: list[tuple[int, int, int, int, int]] = []  # (end step, job id, site, node, cpu)
    queue: list[Job] = []
    waits: list[float] = []
    heat_held: dict[int, float] = {}  # job id -> seconds the policy held it off hot sites
    violations = 0
    for k in range(steps):
        while running and running[0][0] <= k:
            _, _, s, n, cpu = heapq.heappop(running)
            cluster.release(s, n, cpu)
        queue.extend(arrivals[k])
        now = cfg.start + timedelta(seconds=k * dt)
        if queue:
            env.k, env.now, env.demand_kw = k, now, demand_rows[k]
            env.temperature_c = [t.temperature_c for t in tanks]
            env.it_kw = [cluster.busy[i] * wpc[i] + idle_kw[i] for i in range(len(sites))]  # fuel is not load
            env.fuel_cores = fuel.cores if fuel is not None else None
            policy.start_step(env)
            waiting: list[Job] = []
            smallest_failure: dict[str | None, int] = {}
            for job in queue:
                if job.cpu >= smallest_failure.get(job.residency, 1 << 30):
                    waiting.append(job)  # a smaller job of the same residency already found no room
                    continue
                choice = policy.choose(job, env)
                if choice is None:
                    if policy.held_for_heat:  # counted: the wait heat alone causes (a bigger job may be older)
                        heat_held[job.id] = heat_held.get(job.id, 0.0) + dt
                    else:
                        smallest_failure[job.residency] = job.cpu
                    waiting.append(job)
                    continue
                s, n = choice
                cluster.allocate(s, n, job.cpu)
                policy.placed(job, s, env)
                if job.pod.residency is not None and sites[s].country not in job.pod.residency:
                    violations += 1  # checked here, whatever the policy believed
                waits.append(k * dt - job.arrival_s)
                heapq.heappush(running, (k + job.steps(dt), job.id, s, n, job.cpu))
            queue = waiting
        if fuel is not None:
            fuel_kw = fuel.step(k, now, [t.temperature_c for t in tanks], cluster.busy, idle_kw, dt, demand_rows[k])
        draws, heats = draw_rows[k], heat_rows[k]
        total_backup = 0.0
        for i, site in enumerate(sites):
            tank = tanks[i]
            step(site.tank, tank, dt, cluster.busy[i] * wpc[i] + idle_kw[i] + fuel_kw[i], draws[i], heats[i],
                 scenario.inlet_c.item(i, k))
            temps[i, k] = tank.temperature_c
            total_backup += tank.backup_kwh
        backup_cum[k] = total_backup
        if progress is not None and k % 1440 == 0:
            progress(k / steps)
    if progress is not None:
        progress(1.0)
    horizon = steps * dt
    unplaced = [horizon - j.arrival_s for j in queue]  # jobs of arrivals[steps] came after the last decision
    seconds = time.perf_counter() - began
    return _result(scenario, name, tanks, temps, backup_cum, waits, unplaced, violations, policy, fuel, seconds,
                   heat_held)


def _result(
    scenario: Scenario, name: str, tanks: list[TankState], temps: np.ndarray, backup_cum: np.ndarray,
    waits: list[float], unplaced: list[float], violations: int, policy: Policy, fuel: FuelSim | None,
    seconds: float, heat_held: dict[int, float],
) -> PolicyResult:
    demand = scenario.demand_kwh()
    per_site: dict[str, dict[str, float]] = {}
    by_country: dict[str, float] = {}
    for i, (s, t) in enumerate(zip(scenario.sites, tanks)):
        stored_change = s.tank.capacity_kwh_per_k * (t.temperature_c - s.tank.target_c)  # started at target
        backup_ci, backup_eff, grid_ci = co2_factors(s.spec)
        fuel_kwh = fuel.electricity_kwh[i] if fuel is not None else 0.0
        gas_co2 = t.backup_kwh / backup_eff * backup_ci
        fuel_co2 = fuel_kwh * (grid_ci or 0.0)
        per_site[s.name] = {
            "demand_kwh": float(demand[i]),
            "served_by_it_kwh": t.served_by_it_kwh,
            "coverage": t.served_by_it_kwh / demand[i] if demand[i] > 0 else 0.0,
            "backup_kwh": t.backup_kwh,
            "gas_corrected_kwh": t.backup_kwh - stored_change,
            "heat_dumped_kwh": t.dumped_kwh,
            "it_heat_kwh": t.it_kwh,
            "fuel_kwh": fuel_kwh,
            "co2_kg": gas_co2 + fuel_co2,
            "gas_co2_kg": gas_co2,
            "fuel_co2_kg": fuel_co2,
            "minutes_below_floor": t.seconds_below_min / 60,
            "mean_temperature_c": float(temps[i].mean()),
        }
        by_country[s.country] = by_country.get(s.country, 0.0) + gas_co2 + fuel_co2
    all_waits = np.asarray([*waits, *unplaced]) / 60 if waits or unplaced else np.zeros(1)
    metrics: dict[str, Any] = {
        "coverage": sum(t.served_by_it_kwh for t in tanks) / demand.sum() if demand.sum() > 0 else 0.0,
        "backup_kwh": sum(t.backup_kwh for t in tanks),
        "gas_corrected_kwh": sum(v["gas_corrected_kwh"] for v in per_site.values()),
        "minutes_below_floor": sum(t.seconds_below_min for t in tanks) / 60,
        "heat_dumped_kwh": sum(t.dumped_kwh for t in tanks),
        "fuel_kwh": sum(v["fuel_kwh"] for v in per_site.values()),
        "co2_kg": sum(by_country.values()),
        "co2_kg_by_country": by_country,
        "residency_violations": violations,
        "wait_mean_min": float(all_waits.mean()),
        "wait_p95_min": float(np.percentile(all_waits, 95)),  # unplaced jobs count, with their wait so far
        "wait_max_min": float(all_waits.max()),
        "jobs_placed": len(waits),
        "jobs_queued_at_end": len(unplaced),
        "jobs_starved_at_end": sum(1 for w in unplaced if w >= STARVED_S),
        "jobs_after_last_step": len(scenario.jobs) - len(waits) - len(unplaced),
        "seconds": seconds,
    }
    if isinstance(policy, HeatAware):
        metrics.update(core_calls=policy.calls, heat_held_jobs=len(heat_held), heat_relaxed_jobs=policy.relaxed,
                       heat_wait_max_min=max(heat_held.values(), default=0.0) / 60)
    if fuel is not None:
        metrics.update(fuel_preempted_pods=fuel.preempted_pods, fuel_plan_changes=fuel.changes)
    return PolicyResult(name, metrics, per_site, temps, backup_cum, seconds, fuel.kw if fuel is not None else None)


def energy_bound(scenario: Scenario) -> float:
    """min(1, IT heat the trace can produce / demand): a bound on the coverage of demand by tenant heat."""
    cfg, sites = scenario.config, scenario.sites
    horizon = scenario.steps * cfg.step_s
    core_hours = sum(min(j.duration_s, max(0.0, horizon - j.arrival_s)) * j.cpu for j in scenario.jobs) / 3600
    eta = max(s.tank.efficiency for s in sites)
    it_kwh = core_hours * max(s.watts_per_cpu for s in sites) / 1000
    idle_kwh = sum(s.idle_kw(n) for s, n in zip(sites, scenario.nodes)) * horizon / 3600
    demand_kwh: float = scenario.demand_kwh().sum()
    return min(1.0, (it_kwh + idle_kwh) * eta / demand_kwh)


def fuel_bound_limits(scenario: Scenario) -> tuple[list[bool], list[int]]:
    """Where the LP may burn fuel (the static guard allows it) and how many cores (maxCores, the site's cores)."""
    allowed, cores = [], []
    for s, n in zip(scenario.sites, scenario.nodes):
        fuel = s.spec.fuel
        allowed.append(fuel is not None and fuel.enabled and static_guard(s.spec).allowed)
        cores.append(min(fuel.max_cores, n * scenario.config.cores_per_node) if fuel is not None else 0)
    return allowed, cores


@dataclass
class Report:
    scenario: Scenario
    results: list[PolicyResult]
    bound: float  # coverage bound (energy_bound)
    seconds: float
    lp: BoundResult | None = None  # least gas for the same work, no fuel
    lp_fuel: BoundResult | None = None  # the same with fuel where the guard allows it

    def lp_for(self, policy: str) -> BoundResult | None:
        return self.lp_fuel if policy in FUEL_POLICIES else self.lp

    def ratio(self, r: PolicyResult) -> float | None:
        """A policy's corrected gas over its LP bound's (fuel policies: the bound with fuel)."""
        lp = self.lp_for(r.policy)
        if lp is None or lp.gas_corrected_kwh < MIN_RATIO_KWH:
            return None  # a ratio to (almost) nothing says nothing: compare the kWh
        gas_kwh: float = r.metrics["gas_corrected_kwh"]
        return gas_kwh / lp.gas_corrected_kwh

    def to_json(self) -> dict[str, Any]:
        cfg = self.scenario.config
        lp = {name: None if b is None else {
            "gas_kwh": b.gas_kwh, "gas_corrected_kwh": b.gas_corrected_kwh, "gas_kwh_by_site": b.gas_kwh_by_site,
            "fuel_kwh_by_site": b.fuel_kwh_by_site, "dumped_kwh_by_site": b.dumped_kwh_by_site,
            "max_delay_h": b.max_delay_h, "seconds": b.seconds, "status": b.status,
        } for name, b in (("no_fuel", self.lp), ("with_fuel", self.lp_fuel))}
        return {
            "config": {
                "days": cfg.days, "step_s": cfg.step_s, "seed": cfg.seed, "start": cfg.start.isoformat(),
                "season": season(cfg.start), "cores_per_node": cfg.cores_per_node, "nodes": cfg.nodes,
                "sizing": cfg.sizing, "trace": {k: getattr(cfg.trace, k) for k in cfg.trace.__slots__},
            },
            "sites": {
                s.name: {"country": s.country, "nodes": n, "mean_demand_kw": s.mean_demand_kw(),
                         "backup_kw": s.tank.backup_kw, "demand_kwh": float(e)}
                for s, n, e in zip(self.scenario.sites, self.scenario.nodes, self.scenario.demand_kwh())
            },
            "jobs": len(self.scenario.jobs),
            "energy_bound": self.bound,
            "lp_bound": lp,
            "seconds": self.seconds,
            "policies": {r.policy: {**r.metrics, "gas_vs_lp": self.ratio(r), "sites": r.sites} for r in self.results},
        }

    def table(self) -> str:
        head = (f"{'policy':<16} {'gas kWh*':>9} {'× LP':>6} {'dumped':>7} {'fuel kWh':>8} {'CO2 kg':>7} "
                f"{'<floor':>6} {'viol':>4} {'wait p95':>8} {'heat wait':>9} {'unplaced':>8}")
        lines = [head, "-" * len(head)]
        for r in self.results:
            m = r.metrics
            ratio = self.ratio(r)
            rel = f"{ratio:6.3f}" if ratio is not None and math.isfinite(ratio) else f"{'-' if ratio is None else 'inf':>6}"
            heat = f"{m['heat_wait_max_min']:8.1f}m" if "heat_wait_max_min" in m else f"{'-':>9}"
            lines.append(
                f"{r.policy:<16} {m['gas_corrected_kwh']:9.0f} {rel} {m['heat_dumped_kwh']:7.0f} {m['fuel_kwh']:8.0f} "
                f"{m['co2_kg']:7.0f} {m['minutes_below_floor']:6.0f} {m['residency_violations']:4d} "
                f"{m['wait_p95_min']:7.1f}m {heat} {m['jobs_queued_at_end']:8d}"
            )
        for label, b in (("LP bound, no fuel", self.lp), ("LP bound, fuel", self.lp_fuel)):
            if b is not None:
                lines.append(f"{label:<16} {b.gas_corrected_kwh:9.0f} {'1.000':>6} {sum(b.dumped_kwh_by_site):7.0f} "
                             f"{sum(b.fuel_kwh_by_site):8.0f}   (work may wait ≤ {b.max_delay_h} h; {b.seconds:.1f} s)")
        by = {r.policy: r.metrics for r in self.results}
        spread = by.get("spreading", {}).get("gas_corrected_kwh")
        if spread:
            for name in ("heat-aware", "heat-aware+fuel"):
                if name in by:
                    gain = 1 - by[name]["gas_corrected_kwh"] / spread
                    lines.append(f"{name} vs spreading: {gain:+.1%} less gas for the same work")
        if "heat-aware" in by and "heat-aware+fuel" in by:
            a, f = by["heat-aware"]["co2_kg_by_country"], by["heat-aware+fuel"]["co2_kg_by_country"]
            lines.append("CO2 of heat (gas + fuel electricity), heat-aware → +fuel: " + ", ".join(
                f"{c} {a[c]:.0f} → {f.get(c, 0.0):.0f} kg" for c in sorted(a)))
        cfg = self.scenario.config
        lines.append(
            f"* gas corrected for stored heat: backup + C·(T_start − T_end). {len(self.scenario.jobs)} jobs, "
            f"{len(self.scenario.sites)} sites, {sum(self.scenario.nodes)} nodes, {cfg.days:g} days from "
            f"{cfg.start:%Y-%m-%d} ({season(cfg.start)}) at {cfg.step_s:g} s steps, seed {cfg.seed}, utilisation "
            f"{cfg.trace.utilization:g}, sizing {cfg.sizing:g}; {self.seconds:.1f} s"
        )
        return "\n".join(lines)


def simulate(
    sites: Sequence[SiteConfig], config: SimConfig, policies: Sequence[str] = POLICY_NAMES, progress: bool = False,
    *, bound: bool = True, max_heat_wait_s: float = MAX_HEAT_WAIT_S,
) -> Report:
    began = time.perf_counter()
    unknown = [p for p in policies if p not in POLICY_NAMES]
    if unknown:
        raise ValueError(f"unknown policies {unknown}; known: {', '.join(POLICY_NAMES)}")
    scenario = build_scenario(sites, config)
    results = []
    for name in policies:
        bar = _ProgressBar(name) if progress else None
        results.append(run_policy(scenario, name, bar, max_heat_wait_s=max_heat_wait_s))
    lp = lp_fuel = None
    if bound:
        if progress:
            sys.stderr.write("LP bounds (HiGHS) ...\n")
        lp = lp_bound(scenario, with_fuel=False)
        if any(p in FUEL_POLICIES for p in policies):
            allowed, cores = fuel_bound_limits(scenario)
            lp_fuel = lp_bound(scenario, with_fuel=True, fuel_allowed=allowed, fuel_max_cores=cores)
    return Report(scenario, results, energy_bound(scenario), time.perf_counter() - began, lp, lp_fuel)


class _ProgressBar:
    """`policy [#####.....] 50%` on stderr, redrawn in place."""

    def __init__(self, label: str, width: int = 30) -> None:
        self.label, self.width = label, width

    def __call__(self, done: float) -> None:
        filled = int(done * self.width)
        end = "\n" if done >= 1 else ""
        sys.stderr.write(f"\r{self.label:<16} [{'#' * filled}{'.' * (self.width - filled)}] {done:4.0%}{end}")
        sys.stderr.flush()
