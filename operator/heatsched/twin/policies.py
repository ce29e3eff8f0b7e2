"""Placement policies compared by the benchmark, and the cluster model they place jobs on.

Why it exists: "heat-aware" only means something against alternatives. Every policy sees the same cluster
model and the same job, answers one question — which node, or wait — and must respect residency:

- heat-aware: the real decision. Builds the Snapshot the operator would (thermal.site_view of each tank) and
  calls heatsched.placement.core.filter_nodes / score_by_site, exactly as the scheduler extender does; the
  highest score wins (ties: the node with more free cores, then the name). Residency is left to the core,
  and so is the heat wait bound: a job that only hot sites fit is held at most `max_heat_wait_s` (counted
  from its arrival), then placed there. `heat-aware+fuel` is the same placement with heat fuel on idle cores
  (twin/fuel.py, sized by the controller's own planning function).
- spreading: kube-scheduler's default bias (NodeResourcesFit LeastAllocated): the node with most free cores.
- bin-packing: MostAllocated: the fullest node that still fits.
- random: a uniformly random fitting node (seeded).

There is no "oracle" policy: the benchmark compares every policy with a true lower bound instead, a linear
program over the same work (twin/bound.py).

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

from heatsched.placement.core import (
    MAX_HEAT_WAIT_S,
    filter_nodes,
    score_by_site,
)
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
    fuel_cores: list[int] | None = None  # heat fuel cores running per site (fuel policies only)


class Policy:
    """Choose a (site, node) for a job, or None to keep it waiting."""

    held_for_heat = False  # set by choose(): the last None was heat, not a lack of cores

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

    def __init__(self, sites: Sequence[SiteConfig], cluster: Cluster, max_heat_wait_s: float = MAX_HEAT_WAIT_S) -> None:
        self.sites = list(sites)
        self.max_heat_wait_s = max_heat_wait_s
        self.relaxed = 0  # jobs placed on hot sites because they reached the bound
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
        """kube-scheduler's order with heat fuel: nodes where the job fits without preempting fuel first;
        only when none passes, the nodes where it fits by preempting fuel (the fuel then shrinks)."""
        cl, fuel = env.cluster, env.fuel_cores
        fits = [(s, n) for s in range(len(self.sites)) if (n := cl.freest(s, job.cpu)) is not None]
        self.held_for_heat = False
        if fuel is not None and any(fuel):
            room = [(s, n) for s, n in fits if cl.cores * len(cl.free[s]) - cl.busy[s] - fuel[s] >= job.cpu]
            if room and len(room) < len(fits):
                choice = self._decide(job, env, room)
                if choice is not None:
                    return choice
        return self._decide(job, env, fits)

    def _decide(self, job: Job, env: Env, fits: list[tuple[int, int]]) -> tuple[int, int] | None:
        cl = env.cluster
        candidates = [cl.names[s][n] for s, n in fits]  # every site: residency is the core's job, not ours
        if not candidates:
            return None
        self.calls += 1
        now_s = env.k * env.step_s
        result = filter_nodes(job.pod, candidates, self.snap, waited_s=now_s - job.arrival_s,
                              max_heat_wait_s=self.max_heat_wait_s)
        feasible = result.feasible
        if not feasible:
            if result.failed:  # only hot sites fit: held, within the bound
                self.held_for_heat = True
            return None
        self.held_for_heat = False
        self.relaxed += bool(result.relaxed)
        scores = score_by_site(job.pod, feasible, self.snap, explain=False).scores

        def rank(i: int) -> tuple[float, int, str]:
            s, n = cl.where[feasible[i]]
            return scores[i], int(cl.free[s][n]), feasible[i]

        return cl.where[feasible[max(range(len(feasible)), key=rank)]]

    def placed(self, job: Job, site: int, env: Env) -> None:
        name = self.sites[site].name
        pending = self.snap.pending_kw
        pending[name] = pending.get(name, 0.0) + job.cpu * self.sites[site].watts_per_cpu / 1000.0


POLICY_NAMES = ("heat-aware", "heat-aware+fuel", "spreading", "bin-packing", "random")
FUEL_POLICIES = frozenset({"heat-aware+fuel"})  # the same placement, plus heat fuel (twin/fuel.py)
