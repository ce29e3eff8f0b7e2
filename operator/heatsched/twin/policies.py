"""Placement policies compared by the benchmark, and the cluster model they place jobs on.

Why it exists: "heat-aware" only means something against alternatives. Every policy sees the same cluster
model and the same job, answers one question — which node, or wait — and must respect residency:

- heat-aware: the real decision. Builds the Snapshot the operator would (thermal.site_view of each tank) and
  calls heatsched.placement.core.filter_nodes / score_nodes, exactly as the scheduler extender does; the
  highest score wins (ties: the node with more free cores, then the name). Residency is left to the core.
- spreading: kube-scheduler's default bias (NodeResourcesFit LeastAllocated): the node with most free cores.
- bin-packing: MostAllocated: the fullest node that still fits.
- random: a uniformly random fitting node (seeded).
- oracle: greedy with perfect knowledge. It knows every site's realised future demand, every placed job's
  end and this job's duration. For each allowed site it projects the stored energy above the floor over
  the job's run plus a 6 h look-ahead, with and without the job (no clamping, losses at today's temperature):
      x(t) = C·(T − T_min) + Σ_{u≤t} (committed heat + idle heat − standing loss − demand)(u) · Δ
      backup needed ≈ max(0, −min x),   heat dumped ≈ max(0, max x − C·(T_max − T_min))
  and picks the site where the job avoids the most backup net of extra dumping (ties: the emptier tank).
  It never delays a job. Not a proof of optimality: an upper reference that a real scheduler (knowing
  neither durations nor future draws) should approach. simulate.py also reports a hard energy bound.

The cluster: each site has `nodes` identical nodes of `cores` cores; a job fits a node with enough free cores.
A node is only offered to the core once per site (its freest fitting node): the core scores sites, not
nodes, and this keeps the per-job cost at four candidates whatever the node count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from heatsched.placement.core import NodeScore, filter_nodes, score_nodes
from heatsched.placement.model import NodeView, Snapshot
from heatsched.twin.sites import SiteConfig
from heatsched.twin.trace import Job


class Cluster:
    """Free cores per node, per site; `busy[s]` is the site's requested cores."""

    def __init__(self, sites: Sequence[SiteConfig], nodes: Sequence[int], cores: int) -> None:
        self.sites = list(sites)
        self.cores = cores
        self.free = [np.full(n, cores, dtype=np.int64) for n in nodes]
        self.busy = [0] * len(self.sites)
        self.names = [[f"{s.name}-{i:03d}" for i in range(n)] for s, n in zip(self.sites, nodes)]
        self.where = {name: (si, ni) for si, names in enumerate(self.names) for ni, name in enumerate(names)}

    def freest(self, site: int, cpu: int) -> int | None:
        """Index of the node with the most free cores if the job fits there (kube LeastAllocated)."""
        free = self.free[site]
        if not len(free):
            return None
        i = int(free.argmax())
        return i if free[i] >= cpu else None

    def tightest(self, site: int, cpu: int) -> int | None:
        """Index of the fullest node the job still fits on (kube MostAllocated)."""
        free = self.free[site]
        fits = np.flatnonzero(free >= cpu)
        return int(fits[free[fits].argmin()]) if len(fits) else None

    def allocate(self, site: int, node: int, cpu: int) -> None:
        self.free[site][node] -= cpu
        self.busy[site] += cpu

    def release(self, site: int, node: int, cpu: int) -> None:
        self.free[site][node] += cpu
        self.busy[site] -= cpu


@dataclass
class Env:
    """What a policy may look at when placing jobs at step k (the oracle also keeps the scenario's future)."""

    k: int
    now: datetime
    cluster: Cluster
    temperature_c: list[float]
    demand_kw: list[float]  # current demand of each site
    it_kw: list[float]  # current IT power of each site
    step_s: float
    allowed: dict[str | None, list[int]] = field(default_factory=dict)  # residency -> site indices


class Policy:
    """Choose a (site, node) for a job, or None to keep it waiting."""


    def start_step(self, env: Env) -> None:
        """Called once per step before the step's placements (only when jobs are waiting)."""

    def choose(self, job: Job, env: Env) -> tuple[int, int] | None:
        raise NotImplementedError

    def placed(self, job: Job, site: int, env: Env) -> None:
        """Called after each placement."""


class Spreading(Policy):
    """Most free cores (ties: the site with fewer busy cores per node)."""

    def choose(self, job: Job, env: Env) -> tuple[int, int] | None:
        cl, best, best_key = env.cluster, None, None
        for s in env.allowed[job.residency]:
            n = cl.freest(s, job.cpu)
            if n is not None:
                key = (int(cl.free[s][n]), -cl.busy[s] / max(1, len(cl.free[s])))
                if best_key is None or key > best_key:
                    best, best_key = (s, n), key
        return best


class BinPacking(Policy):
    """Fewest free cores that still fit."""

    def choose(self, job: Job, env: Env) -> tuple[int, int] | None:
        cl, best, best_free = env.cluster, None, math.inf
        for s in env.allowed[job.residency]:
            n = cl.tightest(s, job.cpu)
            if n is not None and cl.free[s][n] < best_free:
                best, best_free = (s, n), cl.free[s][n]
        return best


class RandomPolicy(Policy):
    """Uniform over the fitting nodes of the allowed sites."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def choose(self, job: Job, env: Env) -> tuple[int, int] | None:
        cl = env.cluster
        candidates = [(s, np.flatnonzero(cl.free[s] >= job.cpu)) for s in env.allowed[job.residency]]
        total = sum(len(c) for _, c in candidates)
        if total == 0:
            return None
        pick = int(self.rng.integers(total))
        for s, nodes in candidates:
            if pick < len(nodes):
                return s, int(nodes[pick])
            pick -= len(nodes)
        raise AssertionError("unreachable")


class HeatAware(Policy):
    """The placement core on the twin's state (see the module docstring)."""

    def __init__(self, sites: Sequence[SiteConfig], cluster: Cluster) -> None:
        self.sites = list(sites)
        self.nodes = {
            name: NodeView(name=name, site=site.name, country=site.country)
            for site, names in zip(self.sites, cluster.names)
            for name in names
        }
        self.snap = Snapshot(nodes=self.nodes)
        self.calls = 0

    def start_step(self, env: Env) -> None:
        views = {
            site.name: site.view(env.temperature_c[i], env.now, env.demand_kw[i], env.it_kw[i])
            for i, site in enumerate(self.sites)
        }
        self.snap = Snapshot(sites=views, nodes=self.nodes, pending_kw={})

    def choose(self, job: Job, env: Env) -> tuple[int, int] | None:
        cl = env.cluster
        candidates = []
        for s in range(len(self.sites)):  # every site: residency is the core's job, not ours
            n = cl.freest(s, job.cpu)
            if n is not None:
                candidates.append(cl.names[s][n])
        if not candidates:
            return None
        self.calls += 1
        feasible = filter_nodes(job.pod, candidates, self.snap).feasible
        if not feasible:
            return None
        scores = score_nodes(job.pod, feasible, self.snap)

        def rank(sc: NodeScore) -> tuple[float, int, str]:
            s, n = cl.where[sc.node]
            return sc.score, int(cl.free[s][n]), sc.node

        return cl.where[max(scores, key=rank).node]

    def placed(self, job: Job, site: int, env: Env) -> None:
        name = self.sites[site].name
        pending = self.snap.pending_kw
        pending[name] = pending.get(name, 0.0) + job.cpu * self.sites[site].watts_per_cpu / 1000.0


class Oracle(Policy):
    """Greedy with perfect knowledge of demand and durations (see the module docstring)."""

    lookahead_s = 6 * 3600.0  # stored heat keeps its value for a while after the job ends

    def __init__(self, sites: Sequence[SiteConfig], nodes: Sequence[int], demand_kw: np.ndarray) -> None:
        self.sites = list(sites)
        self.demand_kw = demand_kw  # [site, step], realised
        self.idle_heat_kw = [s.idle_kw(n) * s.tank.efficiency for s, n in zip(self.sites, nodes)]
        self.committed_kw = np.zeros_like(demand_kw)  # heat of placed jobs, per future step
        self.ramp = np.arange(1, demand_kw.shape[1] + 1, dtype=float)

    def value(self, s: int, job: Job, env: Env) -> tuple[float, float]:
        """(backup avoided − extra heat dumped over the window, free storage share) of putting `job` on site s."""
        site, tank = self.sites[s], self.sites[s].tank
        h, k, d = env.step_s / 3600.0, env.k, job.steps(env.step_s)
        end = min(self.demand_kw.shape[1], k + d + int(self.lookahead_s / env.step_s))
        t = env.temperature_c[s]
        cap = tank.capacity_kwh_per_k
        loss = tank.ua_kw_per_k * (t - tank.ambient_c)
        net = self.committed_kw[s, k:end] + (self.idle_heat_kw[s] - loss) - self.demand_kw[s, k:end]
        base = cap * (t - tank.min_c) + np.cumsum(net) * h  # stored energy above the floor, no clamps
        job_kw = job.cpu * site.watts_per_cpu / 1000.0 * tank.efficiency
        with_job = base + job_kw * h * np.minimum(self.ramp[: end - k], d)
        top = cap * (tank.max_c - tank.min_c)
        backup_avoided = max(0.0, -base.min()) - max(0.0, -with_job.min())
        extra_dump = max(0.0, with_job.max() - top) - max(0.0, base.max() - top)
        return backup_avoided - extra_dump, (tank.max_c - t) / (tank.max_c - tank.min_c)

    def choose(self, job: Job, env: Env) -> tuple[int, int] | None:
        cl, best, best_value = env.cluster, None, None
        for s in env.allowed[job.residency]:
            n = cl.freest(s, job.cpu)
            if n is not None:
                value = self.value(s, job, env)
                if best_value is None or value > best_value:
                    best, best_value = (s, n), value
        return best

    def placed(self, job: Job, site: int, env: Env) -> None:
        s = self.sites[site]
        self.committed_kw[site, env.k : env.k + job.steps(env.step_s)] += (
            job.cpu * s.watts_per_cpu / 1000.0 * s.tank.efficiency
        )


POLICY_NAMES = ("heat-aware", "spreading", "bin-packing", "random", "oracle")
