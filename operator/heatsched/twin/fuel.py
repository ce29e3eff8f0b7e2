"""Heat fuel in the digital twin: every step, each site's fuel is sized by heatsched.planning.fuel.plan_fuel,
the function the controller calls in the cluster, from the numbers the controller would have.

Why a module of its own: the benchmark must measure the planning code that runs, not a re-implementation;
this adapter only gathers its inputs from the twin's state and keeps the books.

Per site and step (the controller does the same every refresh):

    free        = cores − busy tenant cores                  (fuel counts as free: tenants preempt it)
    current     = min(previous fuel cores, free)             (what tenant placements left of the fuel)
    demand      = the ThermalDemand profiles in 15-minute slots over the plan's lookahead (no day factor: the
                  controller only knows the profiles), local time
    demand now  = the demand the tank meets this step (what the ThermalDemands' live queries report)
    tenant_IT   = busy · wattsPerCPU + idle nodes            (kW, fuel excluded)
    fuel cores  = plan_fuel(tank as server heat sees it, the tank's temperature, fresh, ...)

The guard is the spec's static values (heatsched.planning.fuel.static_guard); a site whose guard needs a
PromQL value has no fuel in the twin. As with kube-scheduler, a tenant job goes where it fits without
preempting fuel when it can (twin/policies.py HeatAware.choose) and preempts fuel otherwise; preemption is
instant (the cluster's fuel pods have a 5 s grace period).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from heatsched.planning.fuel import (
    LOOKAHEAD_H,
    FuelInputs,
    FuelLimits,
    GuardVerdict,
    plan_fuel,
    static_guard,
)
from heatsched.thermal import profile_series_kw
from heatsched.twin.sites import SiteConfig


class FuelSim:
    """Fuel cores per site, planned each step; electricity, preempted pods and the kW series recorded."""

    def __init__(self, sites: Sequence[SiteConfig], nodes: Sequence[int], cores_per_node: int, steps: int) -> None:
        self.sites = list(sites)
        self.limits = [FuelLimits.from_spec(s.spec, n * cores_per_node) for s, n in zip(self.sites, nodes)]
        self.verdicts: list[GuardVerdict | None] = [
            static_guard(s.spec) if s.spec.fuel is not None else None for s in self.sites]
        self.tanks = [s.spec.server_tank() for s in self.sites]
        self.total_cores = [n * cores_per_node for n in nodes]
        self.cores = [0] * len(self.sites)
        self.electricity_kwh = [0.0] * len(self.sites)
        self.preempted_pods = 0
        self.changes = 0
        self.kw = np.zeros((len(self.sites), steps), dtype=np.float32)
        self._forecast: dict[tuple[int, datetime], tuple[float, ...]] = {}

    def active(self, i: int) -> bool:
        v = self.verdicts[i]
        return v is not None and v.allowed and self.limits[i].enabled

    def forecast_kw(self, i: int, now: datetime) -> tuple[float, ...]:
        """The profiles summed, in 15-minute slots over the plan's lookahead (cached per slot)."""
        slot = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
        key = (i, slot)
        value = self._forecast.get(key)
        if value is None:
            hours = max(self.limits[i].horizon_h, LOOKAHEAD_H)
            series = [profile_series_kw(d.profile, slot, hours) for d in self.sites[i].demands]
            value = self._forecast[key] = tuple(sum(v) for v in zip(*series)) if series else (0.0,)
            if len(self._forecast) > 4096:
                self._forecast.clear()
        return value

    def step(self, k: int, now: datetime, temperature_c: Sequence[float], busy: Sequence[int],
             idle_kw: Sequence[float], step_s: float, demand_now_kw: Sequence[float]) -> list[float]:
        """Plan every site's fuel for step k (after the step's tenant placements); returns fuel kW per site."""
        out = [0.0] * len(self.sites)
        for i, site in enumerate(self.sites):
            verdict = self.verdicts[i]
            if verdict is None or not verdict.allowed or not self.limits[i].enabled:
                continue  # plan_fuel would say 0 cores: skip the call
            limits = self.limits[i]
            free = self.total_cores[i] - busy[i]
            current = min(self.cores[i], max(0, free))
            if current < self.cores[i]:
                self.preempted_pods += -(-(self.cores[i] - current) // max(1, limits.cores_per_pod))
            plan = plan_fuel(FuelInputs(
                tank=self.tanks[i], temperature_c=temperature_c[i], fresh=True,
                tenant_it_kw=busy[i] * limits.watts_per_cpu / 1000.0 + idle_kw[i],
                demand_kw=self.forecast_kw(i, now), free_cores=free, current_cores=current,
                demand_now_kw=demand_now_kw[i],
            ), limits, verdict)
            self.changes += plan.cores != current
            self.cores[i] = plan.cores
            kw = plan.cores * limits.watts_per_cpu / 1000.0
            self.kw[i, k] = kw
            self.electricity_kwh[i] += kw * step_s / 3600.0
            out[i] = kw
        return out
