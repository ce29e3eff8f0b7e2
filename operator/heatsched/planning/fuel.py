"""How many cores of heat fuel a site should run: a pure function the controller and the twin both call.

Why: when tenants bring too little heat, preemptible "fuel" work (the site owner's mining, BOINC or batch
container) turns idle cores into heat at the recovery efficiency η instead of letting the gas backup burn.
That is worth it only when a kWh of heat from the grid emits less (or costs less) than a kWh from the backup,
and only as far as the tank needs it. Deciding both from plain numbers keeps the decision testable and the
benchmark honest: the twin sizes fuel with exactly this code.

Guard (per kWh of heat delivered to the tank)::

    fuel heat   = grid_carbon / η                 kgCO2e per kWh of heat (same for price)
    backup heat = backup_carbon / backup_efficiency
    allowed     ⇔ fuel heat < backup heat  (for each criterion asked; no grid value → not allowed)

    France 0.052 / 0.95 = 0.055  <  gas 0.227 / 0.9 = 0.252   → allowed
    Germany 0.38 / 0.95 = 0.400  >  0.252                       → refused

Plan, with C = V·ρ·c/3600 (kWh/K), H the horizon (h), wpc the watts per core, p the cores per pod, and the
demand forecast d_u in 15-minute slots (Δ = 0.25 h) over the lookahead L (6 h), scaled by today's measured
÷ forecast demand f (day_factor), and net_u = f·d_u + loss − η·tenant_it::

    target(T) = (C·(target − T) + Σ_{u<H} net_u·Δ) / H            kW of heat to be at target after H
    floor(T)  = max over τ ≤ L of (Σ_{u<τ} net_u·Δ − C·(T − min)) / τ
                                                                  kW of heat so that no coming peak takes the
                                                                  tank below the floor (pre-heating, storage)
    short(T)  = max(target(T), floor(T))
    cores(T)  = p · ceil(max(0, short(T)) / (η·wpc/1000) / p)      rounded up to whole pods
    up, down = cores(T), cores(T − hysteresis)                     down ≥ up
    next     = up if up > current  else  down if down < current  else  current      (dead band: no flapping)
    next     = min(clamp(next, min_cores, max_cores), p·floor((free_cores − reserve)/p))  tenants' cores first

Fuel is 0 (whatever min_cores says) when fuel is disabled, the guard refuses, the reading is not fresh (no
heating blind) or the tank is Saturated/Overheated (its heat would be dumped). `free_cores` counts the
site's allocatable cores minus the tenants' requests, fuel excluded: fuel never takes a tenant's core, and
tenant pods preempt fuel pods anyway. `reserve` (spec.fuel.reservePercent of the site's cores, 10 %) stays
free so that a tenant burst up to that size is scheduled at once instead of waiting for preemption.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from heatsched.models import (
    BOILER_EFFICIENCY,
    GAS_CARBON_KG_PER_KWH,
    FuelCriterion,
    FuelSpec,
    HeatSiteSpec,
)
from heatsched.placement.model import Tank
from heatsched.thermal import energy_kwh, saturation_band_k


@dataclass(frozen=True, slots=True)
class GuardInputs:
    """Both sides of the guard. `grid_*` None means "no usable value" (a query failed): fuel stays off."""

    criterion: FuelCriterion
    recovery_efficiency: float
    backup_carbon_kg_per_kwh: float
    backup_efficiency: float
    grid_carbon_kg_per_kwh: float | None = None
    grid_price_per_kwh: float | None = None
    backup_price_per_kwh: float | None = None


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    allowed: bool
    reason: str
    fuel_co2_per_heat_kwh: float | None  # kgCO2e per kWh of heat from fuel (None: no grid value)
    backup_co2_per_heat_kwh: float


def guard(g: GuardInputs) -> GuardVerdict:
    """Is electric heat worth it here and now? (formula in the module docstring)"""
    backup_co2 = g.backup_carbon_kg_per_kwh / g.backup_efficiency
    fuel_co2 = None if g.grid_carbon_kg_per_kwh is None else g.grid_carbon_kg_per_kwh / g.recovery_efficiency
    checks: list[tuple[bool, str]] = []
    if g.criterion in (FuelCriterion.CARBON, FuelCriterion.CARBON_AND_PRICE):
        if fuel_co2 is None or not math.isfinite(fuel_co2):
            checks.append((False, "no grid carbon intensity: fuel stays off"))
        else:
            ok = fuel_co2 < backup_co2
            checks.append((ok, (f"fuel heat {fuel_co2:.3f} {'<' if ok else '>='} backup heat {backup_co2:.3f} "
                                "kgCO2e/kWh")))
    if g.criterion in (FuelCriterion.PRICE, FuelCriterion.CARBON_AND_PRICE):
        if g.grid_price_per_kwh is None or g.backup_price_per_kwh is None or not math.isfinite(g.grid_price_per_kwh):
            checks.append((False, "no electricity price: fuel stays off"))
        else:
            fuel_p = g.grid_price_per_kwh / g.recovery_efficiency
            backup_p = g.backup_price_per_kwh / g.backup_efficiency
            ok = fuel_p < backup_p
            checks.append((ok, f"fuel heat {fuel_p:.3f} {'<' if ok else '>='} backup heat {backup_p:.3f} per kWh"))
    allowed = all(ok for ok, _ in checks)
    return GuardVerdict(allowed, "; ".join(r for _, r in checks), fuel_co2, backup_co2)


def guard_inputs(spec: HeatSiteSpec, grid_carbon_kg_per_kwh: float | None,
                 grid_price_per_kwh: float | None) -> GuardInputs:
    """The guard's inputs for a site with spec.fuel, given the grid's carbon intensity and price now."""
    assert spec.fuel is not None
    g = spec.fuel.guard
    return GuardInputs(
        criterion=g.criterion, recovery_efficiency=spec.heat_recovery.efficiency,
        backup_carbon_kg_per_kwh=g.backup_carbon_kg_per_kwh, backup_efficiency=g.backup_efficiency,
        grid_carbon_kg_per_kwh=grid_carbon_kg_per_kwh, grid_price_per_kwh=grid_price_per_kwh,
        backup_price_per_kwh=g.backup_price_per_kwh,
    )


def static_guard(spec: HeatSiteSpec) -> GuardVerdict:
    """The guard from the spec's static values only (what the twin uses; the controller adds its queries)."""
    assert spec.fuel is not None
    g = spec.fuel.guard
    return guard(guard_inputs(spec, g.grid_carbon_kg_per_kwh, g.grid_price_per_kwh))


def co2_factors(spec: HeatSiteSpec) -> tuple[float, float, float | None]:
    """(backup kgCO2e per kWh burnt, backup efficiency, grid kgCO2e per kWh or None) of a site: its fuel guard's
    static figures, else the guard's defaults (natural gas, 90 %) and no grid figure."""
    if spec.fuel is None:
        return GAS_CARBON_KG_PER_KWH, BOILER_EFFICIENCY, None
    g = spec.fuel.guard
    return g.backup_carbon_kg_per_kwh, g.backup_efficiency, g.grid_carbon_kg_per_kwh


@dataclass(frozen=True, slots=True)
class FuelLimits:
    """The site's fuel settings the plan needs (from HeatSite spec.fuel, spec.power, spec.heatRecovery)."""

    max_cores: int
    min_cores: int = 0
    cores_per_pod: int = 4
    reserve_cores: int = 0  # cores fuel leaves free for tenant bursts (spec.fuel.reservePercent of the site)
    watts_per_cpu: float = 10.0
    efficiency: float = 0.95
    horizon_h: float = 1.0
    hysteresis_k: float = 2.0
    enabled: bool = True

    @classmethod
    def from_spec(cls, spec: HeatSiteSpec, site_cores: float = 0.0) -> FuelLimits:
        """The limits of a site whose nodes have `site_cores` allocatable cores in all (for the reserve)."""
        fuel: FuelSpec | None = spec.fuel
        if fuel is None:
            return cls(max_cores=0, enabled=False)
        return cls(max_cores=fuel.max_cores, min_cores=fuel.min_cores, cores_per_pod=fuel.cores_per_pod,
                   reserve_cores=math.ceil(site_cores * fuel.reserve_percent / 100.0 - 1e-9),
                   watts_per_cpu=spec.power.watts_per_cpu, efficiency=spec.heat_recovery.efficiency,
                   horizon_h=fuel.horizon_seconds / 3600.0, hysteresis_k=fuel.hysteresis_kelvin,
                   enabled=fuel.enabled)


SLOT_H = 0.25  # forecast resolution
LOOKAHEAD_H = 6.0  # the floor term looks this far ahead for demand peaks


@dataclass(frozen=True, slots=True)
class FuelInputs:
    """The site now. Powers in kW (electric for IT, heat for demand and loss), temperatures in °C."""

    tank: Tank  # as server heat sees it (HeatSiteSpec.server_tank): max_c is the top server heat can reach
    temperature_c: float | None
    fresh: bool
    tenant_it_kw: float  # tenant pods + idle nodes, fuel excluded
    demand_kw: tuple[float, ...]  # heat demand forecast, one value per SLOT_H from now (at least the horizon)
    free_cores: int  # allocatable cores of the site's nodes minus tenants' requests (fuel counts as free)
    current_cores: int  # what the previous plan asked for
    loss_kw: float = 0.0  # standing loss of the tank, when known
    demand_now_kw: float | None = None  # measured demand now (live queries); scales the profile forecast


@dataclass(frozen=True, slots=True)
class FuelPlan:
    cores: int
    change: str  # start, stop, grow, shrink, hold
    reason: str
    short_kw: float = 0.0  # heat missing over the horizon at the current temperature


def plan_fuel(inp: FuelInputs, limits: FuelLimits, verdict: GuardVerdict) -> FuelPlan:
    """Cores of fuel for the site (formula in the module docstring), with the reason."""
    t, tank = inp.temperature_c, inp.tank
    if not limits.enabled or limits.max_cores <= 0:
        return _plan(0, inp, "fuel disabled")
    if not verdict.allowed:
        return _plan(0, inp, f"guard: {verdict.reason}")
    if t is None or not inp.fresh or not math.isfinite(t):
        return _plan(0, inp, "no fresh tank reading: fuel off rather than heating blind")
    band = saturation_band_k(tank)
    if t >= tank.max_c - band:
        return _plan(0, inp, f"tank at {t:.1f} °C is within {band:g} K of the {tank.max_c:g} °C top "
                             "server heat can reach: fuel heat would be dumped")
    p = max(1, limits.cores_per_pod)
    heat_per_core_kw = limits.efficiency * limits.watts_per_cpu / 1000.0
    capacity = energy_kwh(tank.volume_l, 1.0)

    tenant_heat = limits.efficiency * max(0.0, inp.tenant_it_kw)
    scale = day_factor(inp.demand_kw, inp.demand_now_kw)
    base = max(0.0, inp.loss_kw) - tenant_heat
    h_slots = max(1, min(len(inp.demand_kw), round(limits.horizon_h / SLOT_H)))
    horizon_h = h_slots * SLOT_H
    stored_now = capacity * (t - tank.min_c)  # above the floor, now and in the pessimistic (colder) view
    stored_cold = stored_now - capacity * limits.hysteresis_k
    floor_now = floor_cold = -math.inf
    total, at_horizon = 0.0, 0.0
    for i, d in enumerate(inp.demand_kw or (0.0,)):  # one pass: cumulative net heat and both floor terms
        total += (scale * max(0.0, d) + base) * SLOT_H
        tau = (i + 1) * SLOT_H
        a, b = (total - stored_now) / tau, (total - stored_cold) / tau
        floor_now, floor_cold = max(floor_now, a), max(floor_cold, b)
        if i + 1 == h_slots:
            at_horizon = total
    to_target = (capacity * (tank.target_c - t) + at_horizon) / horizon_h
    now_short = max(to_target, floor_now)
    cold_short = max(to_target + capacity * limits.hysteresis_k / horizon_h, floor_cold)

    def cores(kw: float) -> int:
        return p * math.ceil(max(0.0, kw) / heat_per_core_kw / p - 1e-9) if heat_per_core_kw > 0 else 0

    up, down = cores(now_short), cores(cold_short)
    current = inp.current_cores
    wanted = up if up > current else down if down < current else current  # noqa: FURB136 - grow, shrink or hold
    wanted = min(max(wanted, limits.min_cores), limits.max_cores)
    room = p * (max(0, inp.free_cores - limits.reserve_cores) // p)
    planned = min(wanted, room)
    demand = sum(inp.demand_kw[:h_slots]) / h_slots if inp.demand_kw else 0.0
    why = (f"tank {t:.1f} °C, target {tank.target_c:g} °C: {now_short:.1f} kW of heat short over "
           f"{horizon_h:g} h (demand {demand:.1f} kW, tenant IT heat {tenant_heat:.1f} kW)")
    if planned == current and up <= current <= down and current > 0:
        why += f"; holding {current} cores within the {limits.hysteresis_k:g} K dead band"
    if planned < wanted:
        why += f"; {wanted} cores wanted but only {room} free of tenant work"
    return _plan(planned, inp, why, now_short)


def day_factor(forecast: tuple[float, ...], now_kw: float | None) -> float:
    """How much heavier today runs than the profile: measured ÷ forecast now, within [0.5, 3]; 1 when unknown.

    Profiles are mean days; some days draw 1.5–3× more hot water (docs/twin.md). The measured demand tells
    which kind of day this is, so the rest of the forecast is scaled by the same factor."""
    if now_kw is None or not forecast or not math.isfinite(now_kw) or forecast[0] <= 0.1:
        return 1.0
    return min(3.0, max(0.5, now_kw / forecast[0]))


def _plan(cores: int, inp: FuelInputs, reason: str, short_kw: float = 0.0) -> FuelPlan:
    before = inp.current_cores
    change = ("hold" if cores == before else "start" if before == 0 else "stop" if cores == 0
              else "grow" if cores > before else "shrink")
    return FuelPlan(cores, change, reason, short_kw)


@dataclass(frozen=True, slots=True)
class FuelLedger:
    """What fuel has used, delivered, emitted and avoided (kWh, kgCO2e) since counting began."""

    electricity_kwh: float = 0.0
    heat_kwh: float = 0.0
    co2_kg: float = 0.0
    co2_avoided_kg: float = 0.0

    def add(self, kw: float, hours: float, efficiency: float, verdict: GuardVerdict,
            grid_carbon_kg_per_kwh: float | None) -> FuelLedger:
        """Account `kw` of fuel for `hours`:

        electricity = kw·h, heat = η·kw·h, co2 = electricity·grid_carbon,
        avoided = heat·backup_co2_per_heat_kwh − co2   (negative: fuel emitted more than the gas it replaced).
        """
        if kw <= 0 or hours <= 0:
            return self
        e = kw * hours
        heat = efficiency * e
        co2 = e * (grid_carbon_kg_per_kwh or 0.0)
        return FuelLedger(self.electricity_kwh + e, self.heat_kwh + heat, self.co2_kg + co2,
                          self.co2_avoided_kg + heat * verdict.backup_co2_per_heat_kwh - co2)
