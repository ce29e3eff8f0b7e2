"""Heat fuel planning (pure): the guard, the sizing formula, the dead band, headroom, and the ledger."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from heatsched.models import FuelCriterion, HeatSite, load_manifest
from heatsched.placement.model import Tank
from heatsched.planning.fuel import (
    FuelInputs,
    FuelLedger,
    FuelLimits,
    GuardInputs,
    guard,
    plan_fuel,
)
from heatsched.thermal import energy_kwh

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TANK = Tank(volume_l=1500, min_c=55.0, target_c=60.0, max_c=65.0)
LIMITS = FuelLimits(max_cores=4096, cores_per_pod=4, watts_per_cpu=12.0, efficiency=0.95, horizon_h=1.0,
                    hysteresis_k=2.0)


def carbon(grid: float | None) -> GuardInputs:
    return GuardInputs(FuelCriterion.CARBON, recovery_efficiency=0.95, backup_carbon_kg_per_kwh=0.227,
                       backup_efficiency=0.9, grid_carbon_kg_per_kwh=grid)


ALLOW = guard(carbon(0.052))


def inputs(t: float | None = 58.0, *, it: float = 0.0, demand: float = 5.0, free: int = 8192, current: int = 0,
           fresh: bool = True) -> FuelInputs:
    return FuelInputs(TANK, t, fresh, tenant_it_kw=it, demand_kw=(demand,) * 24, free_cores=free,
                      current_cores=current)


def test_guard_allows_fuel_on_a_low_carbon_grid_and_refuses_it_on_a_carbon_heavy_one() -> None:
    fr, de = guard(carbon(0.052)), guard(carbon(0.38))
    assert fr.allowed and not de.allowed
    assert fr.fuel_co2_per_heat_kwh == pytest.approx(0.052 / 0.95)
    assert fr.backup_co2_per_heat_kwh == pytest.approx(0.227 / 0.9)
    assert "0.400 >= backup heat 0.252" in de.reason


def test_guard_keeps_fuel_off_without_a_grid_value() -> None:
    verdict = guard(carbon(None))
    assert not verdict.allowed and "no grid carbon intensity" in verdict.reason


def test_price_guard_needs_both_prices_and_compares_per_kwh_of_heat() -> None:
    cheap = GuardInputs(FuelCriterion.CARBON_AND_PRICE, 0.95, 0.227, 0.9, grid_carbon_kg_per_kwh=0.05,
                        grid_price_per_kwh=0.10, backup_price_per_kwh=0.12)
    dear = GuardInputs(FuelCriterion.CARBON_AND_PRICE, 0.95, 0.227, 0.9, grid_carbon_kg_per_kwh=0.05,
                       grid_price_per_kwh=0.25, backup_price_per_kwh=0.12)
    assert guard(cheap).allowed  # 0.105 < 0.133 per kWh of heat
    assert not guard(dear).allowed and "per kWh" in guard(dear).reason  # clean but too dear


def test_cold_tank_starts_fuel_sized_by_the_formula_in_whole_pods() -> None:
    plan = plan_fuel(inputs(58.0, it=1.0, demand=5.0), LIMITS, ALLOW)
    short = energy_kwh(1500, 2.0) / 1.0 + 5.0 - 0.95 * 1.0
    expected = 4 * math.ceil(short / (0.95 * 12 / 1000) / 4)
    assert plan.cores == expected and plan.cores % 4 == 0 and plan.change == "start"
    assert plan.short_kw == pytest.approx(short)
    assert "58.0 °C" in plan.reason and "kW of heat short" in plan.reason


def test_enough_tenant_heat_means_no_fuel() -> None:
    assert plan_fuel(inputs(60.0, it=20.0, demand=5.0), LIMITS, ALLOW).cores == 0


@pytest.mark.parametrize("case, kwargs, verdict, words", [
    ("guard refuses", {}, guard(carbon(0.38)), "guard:"),
    ("stale reading", {"fresh": False}, ALLOW, "no fresh tank reading"),
    ("no reading", {"t": None}, ALLOW, "no fresh tank reading"),
    ("saturated tank", {"t": 63.0}, ALLOW, "would be dumped"),
])
def test_fuel_is_zero_even_with_min_cores_when_it_must_not_run(case, kwargs, verdict, words) -> None:
    limits = FuelLimits(**{**_fields(LIMITS), "min_cores": 8})
    plan = plan_fuel(inputs(**{"current": 40, **kwargs}), limits, verdict)
    assert plan.cores == 0 and plan.change == "stop" and words in plan.reason


def _fields(limits: FuelLimits) -> dict:
    return {f: getattr(limits, f) for f in limits.__slots__}


def test_min_and_max_cores_bound_the_plan() -> None:
    hot = plan_fuel(inputs(61.5, it=30.0), FuelLimits(**{**_fields(LIMITS), "min_cores": 8}), ALLOW)
    assert hot.cores == 8
    cold = plan_fuel(inputs(40.0), FuelLimits(**{**_fields(LIMITS), "max_cores": 16}), ALLOW)
    assert cold.cores == 16


def test_fuel_never_takes_more_than_the_cores_tenants_leave_free() -> None:
    plan = plan_fuel(inputs(50.0, free=10), LIMITS, ALLOW)
    assert plan.cores == 8 and "only 8 free of tenant work" in plan.reason


def test_dead_band_holds_the_plan_while_the_tank_wanders_inside_it() -> None:
    start = plan_fuel(inputs(57.0), LIMITS, ALLOW)
    assert start.change == "start"
    changes = []
    current = start.cores
    for t in (57.5, 58.0, 58.4, 57.8, 58.9, 57.2):  # within hysteresis (2 K) above the start temperature
        plan = plan_fuel(inputs(t, current=current), LIMITS, ALLOW)
        changes.append(plan.change)
        current = plan.cores
    assert set(changes) == {"hold"}, changes
    cooler = plan_fuel(inputs(55.0, current=current), LIMITS, ALLOW)
    assert cooler.change == "grow"  # heat short: grows at once
    warmer = plan_fuel(inputs(60.5, current=cooler.cores), LIMITS, ALLOW)
    assert warmer.change == "shrink" and warmer.cores < cooler.cores


def test_an_oscillating_reading_does_not_flap_the_plan() -> None:
    """±0.6 K around 58 °C (period ~19 readings): the plan follows the first cold swing up, then never moves,
    and it never shrinks at all (a shrink would need the tank 2 K warmer)."""
    current, changes = 0, []
    for k in range(200):
        t = 58.0 + 0.6 * math.sin(k / 3)
        plan = plan_fuel(inputs(t, current=current), LIMITS, ALLOW)
        changes.append(plan.change)
        current = plan.cores
    assert "shrink" not in changes and "stop" not in changes
    assert set(changes[20:]) == {"hold"}, changes


def test_ledger_counts_electricity_heat_co2_and_what_it_avoided() -> None:
    ledger = FuelLedger().add(10.0, 2.0, 0.95, ALLOW, 0.052)
    assert ledger.electricity_kwh == pytest.approx(20.0)
    assert ledger.heat_kwh == pytest.approx(19.0)
    assert ledger.co2_kg == pytest.approx(20 * 0.052)
    assert ledger.co2_avoided_kg == pytest.approx(19.0 * 0.227 / 0.9 - 20 * 0.052)
    assert FuelLedger().add(0.0, 1.0, 0.95, ALLOW, 0.052) == FuelLedger()


def test_a_coming_peak_that_would_take_the_tank_below_the_floor_starts_fuel_ahead_of_it() -> None:
    """At target with tenant heat covering today's 5 kW, nothing is short now; a 40 kW peak in 3 h would empty
    the 8.7 kWh above the floor, so the floor term pre-heats now (and grows with the peak)."""
    quiet = (5.0,) * 24
    peak = (5.0,) * 12 + (40.0,) * 4 + (5.0,) * 8
    assert plan_fuel(FuelInputs(TANK, 60.0, True, 5.3, quiet, 8192, 0), LIMITS, ALLOW).cores == 0
    ahead = plan_fuel(FuelInputs(TANK, 60.0, True, 5.3, peak, 8192, 0), LIMITS, ALLOW)
    assert ahead.cores > 0 and ahead.change == "start"
    bigger = plan_fuel(FuelInputs(TANK, 60.0, True, 5.3, (5.0,) * 12 + (60.0,) * 4 + (5.0,) * 8, 8192, 0),
                       LIMITS, ALLOW)
    assert bigger.cores > ahead.cores


def test_a_heavy_day_measured_now_scales_the_whole_forecast() -> None:
    normal = plan_fuel(inputs(58.0, demand=5.0), LIMITS, ALLOW)
    heavy = plan_fuel(FuelInputs(TANK, 58.0, True, 0.0, (5.0,) * 24, 8192, 0, demand_now_kw=10.0), LIMITS, ALLOW)
    assert heavy.cores > normal.cores
    from heatsched.planning.fuel import day_factor
    assert day_factor((5.0,), 10.0) == 2.0 and day_factor((5.0,), 100.0) == 3.0 and day_factor((5.0,), None) == 1.0


def test_fuel_leaves_the_reserve_free_for_tenant_bursts() -> None:
    reserved = FuelLimits(**{**_fields(LIMITS), "reserve_cores": 20})
    plan = plan_fuel(inputs(40.0, free=100), reserved, ALLOW)
    assert plan.cores == 80  # 100 free − 20 reserved, in whole 4-core pods
    site = FuelLimits.from_spec(next(o for o in load_manifest(EXAMPLES / "montlucon-residence.yaml")
                                     if isinstance(o, HeatSite)).spec, site_cores=640)
    assert site.reserve_cores == 64  # reservePercent 10 of 640 cores
