"""A lower bound on the gas any placement needs for the benchmark's work: a linear program (scipy HiGHS).

Why it exists: `simulate.energy_bound` only says servers cannot deliver more heat than the trace produces; it
ignores when heat is produced, where (residency), and that a tank can only store C·(T_max − T_min). A policy
can be judged only against what was possible, so this module computes the least backup heat (gas) that any
schedule of the same work needs, over hourly steps, with the tank physics of tank.py relaxed to be linear.
Every policy of the benchmark that starts each job within `max_delay_h` of its arrival is one feasible point
of this LP (see "Relaxations" below), so its gas is at least the LP's optimum.

Data (hour t = 0..T−1 of length h, site s, residency class c = the set of sites a job may run at):
    W[c,t]   core-hours of class c that run in hour t if every job starts on arrival (clipped at the horizon)
    D[s,t]   heat demand (kWh), all demands summed;  C_s capacity (kWh/K);  η_s recovery efficiency
    k_s      = wattsPerCPU/1000 (kW per busy core);  P_s idle power of all nodes (kW);  N_s cores
    E0_s     = C_s·(T_start − T_floor);  Emax_s = C_s·(T_top − T_floor);  r_s = UA_s·h/C_s
    L0_s     = UA_s·h·(T_floor − T_ambient) (loss at the floor);  M_s = UA_s·h·(T_top − T_ambient) (most loss)

Variables (all ≥ 0 except loss ≥ L0):
    run[c,s,t]  core-hours of class c at an allowed site s     fuel[s,t]  fuel core-hours (0 unless allowed)
    gas[s,t]    backup heat (kWh)                               dump[s,t]  heat rejected (kWh)
    E[s,t]      stored heat above the floor at the end of hour t (kWh), E[s,−1] = E0_s
    loss[s,t]   standing loss (kWh)
    q[c,t]      backlog: work of class c arrived by the end of hour t and not yet run (core-hours)

Constraints:
    work       q[c,t] = q[c,t−1] + W[c,t] − Σ_s run[c,s,t],   q[c,−1] = 0
               0 ≤ q[c,t]                                  (work never runs before it arrives)
               q[c,t] ≤ Σ_{t−d < u ≤ t} W[c,u]             (work waits at most d = max_delay_h hours)
               q[c,T−1] = 0                                (all the work is done within the horizon)
    capacity   Σ_c run[c,s,t] + fuel[s,t] ≤ N_s·h,   fuel[s,t] ≤ fuelMaxCores_s·h
    tank       E[s,t] = E[s,t−1] + η_s·(P_s·h + k_s·(Σ_c run[c,s,t] + fuel[s,t])) + gas[s,t] − D[s,t]
                        − loss[s,t] − dump[s,t]
               0 ≤ E[s,t] ≤ Emax_s                         (the backup holds the floor; servers stop at top)
    loss       loss[s,t] ≥ L0_s,   loss[s,t] ≥ L0_s + r_s·(E[s,t−1] − D[s,t] − M_s)
The backlog q is the cumulative form (Σ_{u≤t} run ≤ Σ_{u≤t} W, ≥ Σ_{u≤t−d} W) with one sparse row per hour.

Why the loss is not simply UA·(T_floor + E[s,t−1]/C − T_ambient)·h: the tank cools within an hour as it
is drawn, so its start-of-hour temperature over-states the engine's step-by-step loss (by about 0.1 kWh
in two days on the example sites) and would put the "bound" above what a policy can reach. Within hour t
a tank can fall at most D[s,t] + M_s below its starting content and never below the floor, so every
step's temperature is at least T_floor + max(0, E[s,t−1] − D[s,t] − M_s)/C: the two loss constraints are
that (more loss than that would only act as a free dump, so it never lowers the gas).

Objective: the simulator's headline is gas *corrected for stored heat*, gas + Σ_s (E0_s − E[s,T−1]); the LP
minimises that figure, so it cannot win by draining the tanks at the end:
    minimise  Σ gas − Σ_s E[s,T−1] + ε·Σ gas + ε·Σ k_s·fuel     (ε = 1e-6 per kWh)
The ε terms only break ties: burning gas in the last hour to fill a tank costs 0 in the corrected figure, and
fuel that is dumped is pointless; neither should appear in the reported numbers.

Relaxations (why it is a lower bound, and where it is not exact):
- gas has no upper bound (the burner's kW is ignored); jobs may be split across sites and hours, preempted,
  and their start is not rounded to a decision step; demand and flows are aggregated per hour.
- the work a job brings is what the engine executes: cpu × its duration rounded up to whole steps
  (Job.steps), since the engine holds cores for whole steps.
- the standing loss is the least the engine's step-by-step loss can be (above), assuming hours start on
  step boundaries (3600 is a multiple of the step, as with the default 60 s).
- a policy whose tank falls below the floor (the burner's kW is capped in tank.step) or that delays work
  longer than max_delay_h is outside the LP and may beat it; the result reports the delay window used.
- a final partial hour (a horizon that is not whole hours) counts a full hour of idle heat and capacity.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.optimize import linprog

if TYPE_CHECKING:
    from heatsched.twin.simulate import Scenario

EPSILON = 1e-6  # objective weight per kWh of raw gas and of fuel electricity: tie-breaking only

Array = npt.NDArray[np.float64]
Vector = Sequence[float] | Array
Grid = Sequence[Sequence[float]] | Array


@dataclass(frozen=True)
class BoundInput:
    """Hourly numbers the LP needs: per site s (length S), per class c (length C), per hour t (length hours)."""

    hours: int
    capacity_kwh_per_k: Vector
    floor_c: Vector
    top_c: Vector
    start_c: Vector
    ua_kw_per_k: Vector
    ambient_c: Vector
    efficiency: Vector
    watts_per_cpu: Vector
    idle_kw: Vector
    cores: Vector
    demand_kwh: Grid  # [s, t]
    country: Sequence[str]
    work_core_h: Grid  # [c, t]
    allowed: Sequence[Sequence[int]]  # [c] -> site indices
    fuel_allowed: Sequence[bool]
    fuel_max_cores: Vector
    with_fuel: bool = False
    max_delay_h: int = 1
    step_h: float = 1.0

    def __post_init__(self) -> None:
        sites = len(self.country)
        per_site = (self.capacity_kwh_per_k, self.floor_c, self.top_c, self.start_c, self.ua_kw_per_k,
                    self.ambient_c, self.efficiency, self.watts_per_cpu, self.idle_kw, self.cores,
                    self.fuel_allowed, self.fuel_max_cores)
        problems = []
        if self.hours < 1 or self.step_h <= 0 or self.max_delay_h < 0:
            problems.append("hours must be >= 1, step_h > 0 and max_delay_h >= 0")
        if sites < 1 or any(len(v) != sites for v in per_site):
            problems.append(f"every per-site field must have one value per site ({sites})")
        if np.shape(self.demand_kwh) != (sites, self.hours):
            problems.append(f"demand_kwh must be [sites, hours] = ({sites}, {self.hours})")
        if np.shape(self.work_core_h) != (len(self.allowed), self.hours) and len(self.allowed) > 0:
            problems.append(f"work_core_h must be [classes, hours] = ({len(self.allowed)}, {self.hours})")
        if any(not a or any(not 0 <= s < sites for s in a) for a in self.allowed):
            problems.append("every class must allow at least one existing site")
        if any(c <= 0 for c in self.capacity_kwh_per_k) or any(t < f for t, f in zip(self.top_c, self.floor_c)):
            problems.append("capacity must be > 0 and top_c >= floor_c")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class BoundResult:
    gas_kwh: float  # backup heat the LP burns
    gas_corrected_kwh: float  # gas + Σ (stored heat at start − at end): the figure minimised
    gas_kwh_by_site: list[float]
    fuel_kwh_by_site: list[float]  # electricity of fuel cores
    dumped_kwh_by_site: list[float]
    end_stored_kwh_by_site: list[float]  # above the floor
    status: str
    seconds: float
    max_delay_h: int  # the delay window the bound holds for (widened if the given one was infeasible)
    gas_kwh_by_hour: list[float] = field(default_factory=list)  # all sites, for cumulative plots


def bound_input(
    scenario: Scenario,
    *,
    with_fuel: bool,
    fuel_allowed: Sequence[bool] | None = None,
    fuel_max_cores: Sequence[int] | None = None,
    max_delay_h: int = 1,
) -> BoundInput:
    """Aggregate a Scenario into hours. Classes are the distinct sets of sites jobs may run at (residency);
    jobs allowed nowhere are left out (the engine never runs them). Defaults: fuel allowed at every site,
    on all its cores."""
    cfg, sites = scenario.config, scenario.sites
    dt, horizon = cfg.step_s, scenario.steps * cfg.step_s
    hours = max(1, math.ceil(horizon / 3600 - 1e-9))
    edges = np.minimum(np.arange(hours + 1) * 3600.0, horizon)  # hour boundaries, seconds
    step_edges = np.arange(scenario.steps + 1) * dt
    demand = np.empty((len(sites), hours))
    for i in range(len(sites)):
        cum = np.concatenate(([0.0], np.cumsum(scenario.demand_kw[i] * dt / 3600)))
        demand[i] = np.diff(np.interp(edges, step_edges, cum))
    classes: dict[tuple[int, ...], list[int]] = {}
    for j, job in enumerate(scenario.jobs):
        ok = tuple(i for i, s in enumerate(sites) if job.pod.residency is None or s.country in job.pod.residency)
        if ok:
            classes.setdefault(ok, []).append(j)
    allowed = sorted(classes)
    work = np.zeros((len(allowed), hours))
    for c, key in enumerate(allowed):
        jobs = [scenario.jobs[j] for j in classes[key]]
        start = np.array([j.arrival_s for j in jobs])
        end = start + np.array([j.steps(dt) * dt for j in jobs])
        cpu = np.array([float(j.cpu) for j in jobs])
        core_s = _ramp_sum(start, cpu, edges) - _ramp_sum(end, cpu, edges)  # core-seconds run by each edge
        work[c] = np.diff(core_s) / 3600
    cores = [n * cfg.cores_per_node for n in scenario.nodes]
    tanks = [s.tank for s in sites]
    return BoundInput(
        hours=hours,
        capacity_kwh_per_k=[p.capacity_kwh_per_k for p in tanks],
        floor_c=[p.min_c for p in tanks],
        top_c=[p.max_c for p in tanks],
        start_c=[p.target_c for p in tanks],
        ua_kw_per_k=[p.ua_kw_per_k or 0.0 for p in tanks],
        ambient_c=[p.ambient_c for p in tanks],
        efficiency=[p.efficiency for p in tanks],
        watts_per_cpu=[s.watts_per_cpu for s in sites],
        idle_kw=[s.idle_kw(n) for s, n in zip(sites, scenario.nodes)],
        cores=[float(c) for c in cores],
        demand_kwh=demand,
        country=[s.country for s in sites],
        work_core_h=work,
        allowed=[list(a) for a in allowed],
        fuel_allowed=list(fuel_allowed) if fuel_allowed is not None else [True] * len(sites),
        fuel_max_cores=[float(c) for c in (fuel_max_cores if fuel_max_cores is not None else cores)],
        with_fuel=with_fuel,
        max_delay_h=max_delay_h,
    )


def _ramp_sum(points: Array, weights: Array, at: Array) -> Array:
    """Σ_j weights_j · max(0, at − points_j) for every value of `at`, by sorting and prefix sums."""
    order = np.argsort(points)
    p, w = points[order], weights[order]
    cw = np.concatenate(([0.0], np.cumsum(w)))
    cwp = np.concatenate(([0.0], np.cumsum(w * p)))
    n = np.searchsorted(p, at, side="left")
    result: Array = at * cw[n] - cwp[n]
    return result


def lp_bound(
    scenario: Scenario,
    *,
    with_fuel: bool,
    fuel_allowed: Sequence[bool] | None = None,
    fuel_max_cores: Sequence[int] | None = None,
    max_delay_h: int = 1,
) -> BoundResult:
    return solve_bound(bound_input(scenario, with_fuel=with_fuel, fuel_allowed=fuel_allowed,
                                   fuel_max_cores=fuel_max_cores, max_delay_h=max_delay_h))


def _array(values: Vector | Grid) -> Array:
    return np.asarray(values, dtype=float)


def _matrix(rows: int, cols: int, parts: Sequence[tuple[npt.NDArray[np.int_], npt.NDArray[np.int_], Array]]
            ) -> sparse.csr_matrix:
    """A sparse matrix from (row indices, column indices, values) triplets (duplicates add up)."""
    r, c, v = (np.concatenate([p[i] for p in parts]) for i in range(3))
    return sparse.coo_matrix((v, (r, c)), shape=(rows, cols)).tocsr()


def solve_bound(inp: BoundInput) -> BoundResult:
    """Solve the LP (module docstring). If the work cannot be done within max_delay_h, the window is doubled
    (0 -> 1 -> 2 -> 4 ...) up to the horizon; ValueError if even the whole horizon is too short."""
    began = time.perf_counter()
    T, h = inp.hours, inp.step_h
    S, C = len(inp.country), len(inp.allowed)
    f = _array
    cap, floor, top, start = f(inp.capacity_kwh_per_k), f(inp.floor_c), f(inp.top_c), f(inp.start_c)
    ua, amb, eta, k = f(inp.ua_kw_per_k), f(inp.ambient_c), f(inp.efficiency), f(inp.watts_per_cpu) / 1000
    idle, cores, demand = f(inp.idle_kw), f(inp.cores), f(inp.demand_kwh).reshape(S, T)
    work = f(inp.work_core_h).reshape(C, T)
    pc = np.array([c for c, a in enumerate(inp.allowed) for _ in a], dtype=int)  # run blocks: (class, site)
    ps = np.array([s for a in inp.allowed for s in a], dtype=int)
    P, ST, CT = len(pc), S * T, C * T
    # variable offsets: run[P,T] fuel[S,T] gas[S,T] dump[S,T] E[S,T] loss[S,T] q[C,T]
    FUEL = P * T
    GAS, DUMP, E, LOSS, Q = (FUEL + i * ST for i in range(1, 6))
    n = Q + CT
    t = np.arange(T)
    st = np.arange(ST)  # (s, t) flattened, site-major
    prev = st[st % T > 0]  # (s, t) with t >= 1
    run = np.arange(P * T)  # run variables, block (class, site) by hour
    run_st = (ps[:, None] * T + t).ravel()  # the (s, t) of each run variable
    run_ct = (pc[:, None] * T + t).ravel()  # the (c, t) of each run variable
    ct = np.arange(CT)
    ones = np.ones

    e0 = cap * (start - floor)
    e_max = cap * (top - floor)
    heat = np.repeat(eta * k, T)  # kWh of heat per core-hour, per (s, t)
    r = np.repeat(ua * h / cap, T)  # loss per kWh stored, per (s, t)
    base = np.repeat(ua * h * (floor - amb), T)  # loss at the floor
    slack = demand.ravel() + np.repeat(ua * h * (top - amb), T)  # most the tank can fall within the hour

    # equalities: tank rows (s, t), then backlog rows ST + (c, t)
    a_eq = _matrix(ST + CT, n, [
        (st, E + st, ones(ST)), (prev, E + prev - 1, -ones(len(prev))),
        (run_st, run, -heat[run_st]), (st, FUEL + st, -heat), (st, GAS + st, -ones(ST)),
        (st, DUMP + st, ones(ST)), (st, LOSS + st, ones(ST)),
        (ST + ct, Q + ct, ones(CT)), (ST + ct[ct % T > 0], Q + ct[ct % T > 0] - 1, -ones(CT - C)),
        (ST + run_ct, run, ones(P * T)),
    ])
    b_tank = (eta * idle * h)[:, None] - demand
    b_tank[:, 0] += e0
    b_eq = np.concatenate((b_tank.ravel(), work.ravel()))

    # inequalities: capacity rows (s, t); loss rows ST + (s, t >= 1): r·E[s,t−1] − loss[s,t] <= r·slack − base
    a_ub = _matrix(2 * ST, n, [
        (run_st, run, ones(P * T)), (st, FUEL + st, ones(ST)),
        (ST + prev, E + prev - 1, r[prev]), (ST + prev, LOSS + prev, -ones(len(prev))),
    ])
    b_ub = np.concatenate((np.repeat(cores * h, T), np.where(st % T > 0, r * slack - base, 0.0)))  # t=0: bounds

    fuel_on = np.array([inp.with_fuel and bool(x) for x in inp.fuel_allowed])
    lo, hi = np.zeros(n), np.full(n, np.inf)
    hi[FUEL:GAS] = np.repeat(np.where(fuel_on, np.minimum(f(inp.fuel_max_cores), cores) * h, 0.0), T)
    hi[E:LOSS] = np.repeat(e_max, T)
    first = st[st % T == 0]
    lo[LOSS:Q] = base  # and at t = 0, where E[s,−1] = e0 is known:
    lo[LOSS + first] = np.maximum(base[first], base[first] + r[first] * (e0 - slack[first]))
    cost = np.zeros(n)
    cost[GAS:DUMP] = 1 + EPSILON
    cost[E + st[st % T == T - 1]] = -1.0
    cost[FUEL:GAS] = EPSILON * np.repeat(k, T)

    cum = np.concatenate((np.zeros((C, 1)), np.cumsum(work, axis=1)), axis=1)
    delay = inp.max_delay_h
    while True:
        hi[Q:] = (cum[:, 1:] - cum[:, np.maximum(t + 1 - delay, 0)]).ravel()  # waits at most `delay` hours
        hi[Q + ct[ct % T == T - 1]] = 0.0  # all done by the end
        res = linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=np.column_stack((lo, hi)),
                      method="highs")
        if res.status != 2:  # 2 = infeasible
            break
        if delay >= T:
            raise ValueError(f"the work cannot be done within the horizon of {T} hours: it exceeds capacity")
        delay = min(T, max(1, 2 * delay))
    if res.status != 0:
        raise RuntimeError(f"HiGHS did not solve the bound LP: {res.message}")
    x = res.x
    gas = x[GAS:DUMP].reshape(S, T).sum(axis=1)
    end = x[E:LOSS].reshape(S, T)[:, -1]
    return BoundResult(
        gas_kwh=float(gas.sum()),
        gas_corrected_kwh=float(gas.sum() + (e0 - end).sum()),
        gas_kwh_by_site=gas.tolist(),
        fuel_kwh_by_site=(x[FUEL:GAS].reshape(S, T).sum(axis=1) * k).tolist(),
        dumped_kwh_by_site=x[DUMP:E].reshape(S, T).sum(axis=1).tolist(),
        end_stored_kwh_by_site=end.tolist(),
        status=str(res.message),
        seconds=time.perf_counter() - began,
        max_delay_h=delay,
        gas_kwh_by_hour=x[GAS:DUMP].reshape(S, T).sum(axis=0).tolist(),
    )
