"""The gas lower bound (twin/bound.py): hand-solved LPs, residency, fuel, dumping, delay, and no policy beats it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from heatsched.twin.bound import BoundInput, bound_input, lp_bound, solve_bound
from heatsched.twin.policies import FUEL_POLICIES, POLICY_NAMES
from heatsched.twin.simulate import SimConfig, build_scenario, run_policy
from heatsched.twin.sites import load_sites

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def tank(demand: list[list[float]], work: list[list[float]] | None = None, allowed: list[list[int]] | None = None,
         **per_site: Any) -> BoundInput:
    """Sites with a 1 kWh/K tank at its floor (50 °C), no room above it, no losses, η = 1, 1 kW per core,
    no idle power and 100 cores, unless `per_site` overrides a field (a value per site) or a flag."""
    sites, hours = len(demand), len(demand[0])
    flags = {k: per_site.pop(k) for k in ("with_fuel", "max_delay_h") if k in per_site}
    fields: dict[str, Any] = {
        "capacity_kwh_per_k": [1.0] * sites, "floor_c": [50.0] * sites, "top_c": [50.0] * sites,
        "start_c": [50.0] * sites, "ua_kw_per_k": [0.0] * sites, "ambient_c": [20.0] * sites,
        "efficiency": [1.0] * sites, "watts_per_cpu": [1000.0] * sites, "idle_kw": [0.0] * sites,
        "cores": [100.0] * sites, "country": ["FR"] * sites, "fuel_allowed": [True] * sites,
        "fuel_max_cores": [100.0] * sites,
    }
    fields.update(per_site)
    allowed = allowed if allowed is not None else ([list(range(sites))] if work else [])
    work_grid = np.asarray(work, dtype=float) if work else np.zeros((0, hours))
    return BoundInput(hours=hours, demand_kwh=demand, work_core_h=work_grid, allowed=allowed, **fields, **flags)


def test_a_hand_solved_tank_burns_what_idle_heat_leaves_and_storage_carries_heat_to_the_next_hour() -> None:
    """1 site, 2 hours, no losses, no work, η = 1, start at the floor.

    Idle 2 kW, demand 10 then 5 kWh, no room above the floor: gas = (10 − 2) + (5 − 2) = 11 kWh.
    Idle 6 kW, demand 2 then 10 kWh:
      no room:   hour 1 dumps 6 − 2 = 4, hour 2 burns 10 − 6 = 4   -> gas 4, dumped 4
      10 K room: hour 1 stores those 4 (E = 4 ≤ 10), hour 2 has 4 + 6 = 10 = its demand -> gas 0, dumped 0
    """
    plain = solve_bound(tank([[10.0, 5.0]], idle_kw=[2.0], top_c=[60.0]))
    assert plain.gas_kwh == pytest.approx(11.0, abs=1e-6)
    assert plain.gas_corrected_kwh == pytest.approx(11.0, abs=1e-6)  # nothing stored at the end either

    no_room = solve_bound(tank([[2.0, 10.0]], idle_kw=[6.0]))
    assert no_room.gas_kwh == pytest.approx(4.0, abs=1e-6)
    assert no_room.dumped_kwh_by_site[0] == pytest.approx(4.0, abs=1e-6)

    room = solve_bound(tank([[2.0, 10.0]], idle_kw=[6.0], top_c=[60.0]))
    assert room.gas_kwh == pytest.approx(0.0, abs=1e-6)
    assert room.dumped_kwh_by_site[0] == pytest.approx(0.0, abs=1e-6)
    assert room.status.lower().startswith("optimization terminated")


def test_stored_heat_at_the_start_and_end_counts_in_the_corrected_gas() -> None:
    """Start 5 K above the floor (E0 = 5 kWh), demand 8 kWh, room 10 K, no other heat.

    The tank gives its 5 kWh and burns 3: gas 3, corrected 3 + (5 − 0) = 8 = the demand. Burning more to end
    full would not lower the corrected figure, and the tie-break keeps raw gas at 3.
    """
    r = solve_bound(tank([[8.0]], start_c=[55.0], top_c=[60.0]))
    assert r.gas_kwh == pytest.approx(3.0, abs=1e-6)
    assert r.gas_corrected_kwh == pytest.approx(8.0, abs=1e-6)
    assert r.end_stored_kwh_by_site[0] == pytest.approx(0.0, abs=1e-6)


def test_standing_loss_is_the_least_the_tank_can_lose_within_the_hour() -> None:
    """C = 1 kWh/K at 60 °C, floor 50 °C, top 60 °C, room 20 °C, UA = 0.1 kW/K, one hour, no demand.

    At the start of the hour the loss rate is 0.1 × 40 = 4 kWh/h, at the floor 0.1 × 30 = 3. Within the hour the
    tank falls at most by its demand (0) and its loss (≤ 0.1 × (60 − 20) = 4 kWh), so the LP counts
    3 + 0.1 × (10 − 0 − 4) = 3.6 kWh of loss: gas 0, corrected gas = 10 − 6.4 = 3.6, between the two rates.
    """
    r = solve_bound(tank([[0.0]], ua_kw_per_k=[0.1], start_c=[60.0], top_c=[60.0]))
    assert r.gas_kwh == pytest.approx(0.0, abs=1e-6)
    assert r.end_stored_kwh_by_site[0] == pytest.approx(6.4, abs=1e-6)
    assert r.gas_corrected_kwh == pytest.approx(3.6, abs=1e-6)


def test_work_resident_at_one_site_cannot_heat_another() -> None:
    """Site 0 has 50 core-hours an hour of work allowed only there (50 kWh of heat), site 1 needs 7 kWh an hour."""
    r = solve_bound(tank([[5.0, 5.0], [7.0, 7.0]], work=[[50.0, 50.0]], allowed=[[0]]))
    assert r.gas_kwh_by_site == pytest.approx([0.0, 14.0], abs=1e-6)
    assert r.dumped_kwh_by_site[0] == pytest.approx(90.0, abs=1e-6)
    free = solve_bound(tank([[5.0, 5.0], [7.0, 7.0]], work=[[50.0, 50.0]], allowed=[[0, 1]]))
    assert free.gas_kwh == pytest.approx(0.0, abs=1e-6)  # the same work allowed at both heats both


def test_fuel_lowers_the_bound_only_where_the_guard_allows_it() -> None:
    demand = [[5.0, 5.0], [5.0, 5.0]]
    without = solve_bound(tank(demand, with_fuel=False))
    assert without.gas_kwh_by_site == pytest.approx([10.0, 10.0], abs=1e-6)
    assert without.fuel_kwh_by_site == pytest.approx([0.0, 0.0], abs=1e-9)
    fuel = solve_bound(tank(demand, with_fuel=True, fuel_allowed=[True, False]))
    assert fuel.gas_kwh_by_site == pytest.approx([0.0, 10.0], abs=1e-6)
    assert fuel.fuel_kwh_by_site == pytest.approx([10.0, 0.0], abs=1e-6)  # just the demand, none dumped
    capped = solve_bound(tank(demand, with_fuel=True, fuel_max_cores=[2.0, 2.0]))
    assert capped.gas_kwh_by_site == pytest.approx([6.0, 6.0], abs=1e-6)  # 2 cores = 2 kWh an hour each


def test_more_server_heat_than_demand_and_room_is_dumped() -> None:
    """Idle 10 kW, demand 2 kWh an hour, room 3 K (3 kWh): hour 1 stores 3 and dumps 5, hour 2 dumps 8."""
    r = solve_bound(tank([[2.0, 2.0]], idle_kw=[10.0], top_c=[53.0]))
    assert r.gas_kwh == pytest.approx(0.0, abs=1e-6)
    assert r.dumped_kwh_by_site[0] == pytest.approx(13.0, abs=1e-6)
    assert r.end_stored_kwh_by_site[0] == pytest.approx(3.0, abs=1e-6)


def test_work_may_be_deferred_within_the_window_but_never_advanced() -> None:
    """No room, 1 kW per core. 10 core-hours arriving in hour 1, demand only in hour 2: deferred one hour they
    meet it (gas 0); with no delay allowed they are dumped and hour 2 burns 10. Work arriving in hour 2
    cannot meet a demand of hour 1."""
    later = tank([[0.0, 10.0]], work=[[10.0, 0.0]], max_delay_h=1)
    assert solve_bound(later).gas_kwh == pytest.approx(0.0, abs=1e-6)
    now = tank([[0.0, 10.0]], work=[[10.0, 0.0]], max_delay_h=0)
    assert solve_bound(now).gas_kwh == pytest.approx(10.0, abs=1e-6)
    early = tank([[10.0, 0.0]], work=[[0.0, 10.0]], max_delay_h=1)
    assert solve_bound(early).gas_kwh == pytest.approx(10.0, abs=1e-6)


def test_work_beyond_capacity_widens_the_delay_window_instead_of_failing() -> None:
    """200 core-hours arrive in hour 1 on 100 cores: impossible without waiting; one hour of delay fits."""
    r = solve_bound(tank([[0.0, 0.0, 0.0]], work=[[200.0, 0.0, 0.0]], max_delay_h=0))
    assert r.max_delay_h == 1
    assert r.dumped_kwh_by_site[0] == pytest.approx(200.0, abs=1e-6)  # all the work ran, its heat dumped
    with pytest.raises(ValueError, match="exceeds capacity"):
        solve_bound(tank([[0.0, 0.0, 0.0]], work=[[400.0, 0.0, 0.0]], max_delay_h=0))


@pytest.fixture(scope="module")
def scenario():
    return build_scenario(load_sites([EXAMPLES]), SimConfig(days=2))


def test_hourly_input_keeps_the_scenarios_demand_and_work(scenario):
    inp = bound_input(scenario, with_fuel=False)
    assert inp.hours == 48
    assert np.asarray(inp.demand_kwh).sum(axis=1) == pytest.approx(scenario.demand_kwh(), rel=1e-9)
    dt, horizon = scenario.config.step_s, scenario.steps * scenario.config.step_s
    core_h = sum(j.cpu * min(j.steps(dt) * dt, horizon - j.arrival_s) for j in scenario.jobs) / 3600
    assert np.asarray(inp.work_core_h).sum() == pytest.approx(core_h, rel=1e-9)
    classes = {
        tuple(i for i, s in enumerate(scenario.sites) if j.pod.residency is None or s.country in j.pod.residency)
        for j in scenario.jobs
    }
    assert sorted(tuple(a) for a in inp.allowed) == sorted(classes)  # one class per set of allowed sites


def test_no_policy_burns_less_than_the_bound_and_fuel_only_lowers_it(scenario):
    bound = lp_bound(scenario, with_fuel=False)
    fuelled = lp_bound(scenario, with_fuel=True)
    assert bound.max_delay_h == 1
    assert 0.0 <= bound.gas_corrected_kwh
    assert fuelled.gas_corrected_kwh <= bound.gas_corrected_kwh + 1e-6
    for name in POLICY_NAMES:
        r = run_policy(scenario, name)
        assert r.metrics["minutes_below_floor"] == 0, name  # the bound is for policies that hold the floor
        stored_drop = sum(
            s.tank.capacity_kwh_per_k * (s.tank.target_c - float(r.temperature_c[i, -1]))
            for i, s in enumerate(scenario.sites)
        )  # tanks start at target (run_policy); temperature_c[:, 0] is already after the first step
        corrected = r.metrics["backup_kwh"] + stored_drop
        assert corrected == pytest.approx(r.metrics["gas_corrected_kwh"], rel=1e-6), name
        assert (fuelled if name in FUEL_POLICIES else bound).gas_corrected_kwh <= corrected + 1e-6, name
    assert math.isfinite(bound.seconds) and bound.seconds < 10
