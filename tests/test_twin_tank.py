"""Tank physics of the digital twin: hand-computed steps, the backup floor, dumping, the coolant supply cap,
the seasonal inlet, energy conservation."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest
from heatsched.twin.draw import inlet_celsius, inlet_on
from heatsched.twin.sites import load_sites
from heatsched.twin.tank import (
    TankParams,
    TankState,
    heat_capacity_kwh_per_k,
    litres40_to_kwh,
    standing_loss_ua_kw_per_k,
    step,
    stored_kwh,
)

HOUR = 3600.0
C_1500 = 1500 * 4.186 / 3600  # kWh/K of a 1500 L tank, by hand: 1.744166...
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def params(**overrides: float) -> TankParams:
    base = {"volume_l": 1500, "min_c": 55, "target_c": 60, "max_c": 85, "inlet_c": 12, "efficiency": 0.95,
            "backup_kw": 30, "ua_kw_per_k": 0.0}
    return TankParams(**{**base, **overrides})


def test_heat_capacity_is_volume_times_specific_heat():
    assert heat_capacity_kwh_per_k(1500) == pytest.approx(C_1500)
    assert litres40_to_kwh(100, 12) == pytest.approx(100 * 4.186 * 28 / 3600)


def test_erp_class_c_standing_loss_of_1500_litres():
    # S = 16.66 + 8.33 * 1500**0.4 = 171.6 W at 45 K
    assert standing_loss_ua_kw_per_k(1500) * 45 * 1000 == pytest.approx(16.66 + 8.33 * 1500**0.4)
    assert params(ua_kw_per_k=None).ua_kw_per_k == standing_loss_ua_kw_per_k(1500)


@pytest.mark.parametrize(
    "start_c, it_kw, draw_l40, heat_kw, ua, expected_c",
    [
        # 10 kW of servers for an hour: 9.5 kWh into 1.7442 kWh/K -> +5.4467 K
        (60.0, 10.0, 0.0, 0.0, 0.0, 60 + 9.5 / C_1500),
        # 100 L at 40 °C from a 60 °C tank: 100*28/48 = 58.33 L of tank water replaced by 12 °C water
        (60.0, 0.0, 100.0, 0.0, 0.0, (60 * (1500 - 100 * 28 / 48) + 12 * 100 * 28 / 48) / 1500),
        # a 2 kW loop for an hour: -2/1.7442 K
        (70.0, 0.0, 0.0, 2.0, 0.0, 70 - 2 / C_1500),
        # standing losses 4 W/K at 60 °C in a 20 °C room: 0.16 kWh
        (60.0, 0.0, 0.0, 0.0, 0.004, 60 - 0.16 / C_1500),
    ],
)
def test_one_hour_step_matches_hand_computation(start_c, it_kw, draw_l40, heat_kw, ua, expected_c):
    p = params(ua_kw_per_k=ua)
    s = TankState(temperature_c=start_c)
    flows = step(p, s, HOUR, it_kw=it_kw, draw_l40=draw_l40, heat_kw=heat_kw)
    assert s.temperature_c == pytest.approx(expected_c, abs=1e-9)
    assert flows.backup == 0 and flows.dumped == 0


def test_draw_energy_does_not_depend_on_tank_temperature_above_40c():
    energies = []
    for start in (56.0, 70.0, 84.0):
        s = TankState(temperature_c=start)
        energies.append(step(params(), s, 60, it_kw=0, draw_l40=50, heat_kw=0).draw)
    assert energies == pytest.approx([litres40_to_kwh(50, 12)] * 3)


def test_backup_holds_the_legionella_floor_and_counts_its_energy():
    p = params()
    s = TankState(temperature_c=55.5)
    flows = step(p, s, HOUR, it_kw=0, draw_l40=0, heat_kw=1.5 * C_1500)  # would fall 1.5 K to 54.0 °C
    assert s.temperature_c == pytest.approx(55.0)
    assert flows.backup == pytest.approx(1.0 * C_1500)
    assert s.backup_kwh == pytest.approx(flows.backup)
    assert s.seconds_below_min == 0


def test_undersized_backup_leaves_the_tank_below_the_floor_and_counts_the_time():
    p = params(backup_kw=0.5)
    s = TankState(temperature_c=55.0)
    step(p, s, HOUR, it_kw=0, draw_l40=0, heat_kw=0.5 + 2 * C_1500)  # 0.5 kWh of burner against a 2 K fall
    assert s.temperature_c == pytest.approx(53.0)
    assert s.backup_kwh == pytest.approx(0.5)
    assert s.seconds_below_min == HOUR


def test_heat_above_the_maximum_is_dumped_and_the_tank_clamped():
    p = params()
    s = TankState(temperature_c=84.5)
    flows = step(p, s, HOUR, it_kw=10, draw_l40=0, heat_kw=0)
    assert s.temperature_c == 85.0
    assert flows.dumped == pytest.approx(9.5 - 0.5 * C_1500)
    assert s.dumped_kwh == pytest.approx(flows.dumped)


def test_server_heat_is_credited_only_for_what_reaches_demand():
    p = params()
    only_backup = TankState(temperature_c=55.0)
    for _ in range(60):
        step(p, only_backup, 60, it_kw=0, draw_l40=20, heat_kw=1)
    assert only_backup.served_by_it_kwh == 0
    only_it = TankState(temperature_c=60.0, stored_it_kwh=stored_kwh(p, 60.0))
    for _ in range(60):
        step(p, only_it, 60, it_kw=60, draw_l40=20, heat_kw=1)  # 57 kWh of servers, 40 kWh of demand
    delivered = only_it.draw_kwh + only_it.heat_kwh
    assert only_it.backup_kwh == 0
    assert only_it.served_by_it_kwh == pytest.approx(delivered)


def test_energy_is_conserved_over_a_week_of_minute_steps():
    p = params(ua_kw_per_k=None, backup_kw=12)
    rng = np.random.default_rng(7)
    minutes = 7 * 24 * 60
    hour = (np.arange(minutes) // 60) % 24
    it = np.where(hour < 6, rng.uniform(10, 20, minutes), 0.0)  # night batch: fills the tank to its max
    peak = ((hour >= 6) & (hour < 9)) | ((hour >= 18) & (hour < 22))
    draws = np.where(peak, rng.uniform(0, 16, minutes), 0.5)  # L at 40 °C per minute: peaks need the burner
    loop = np.full(minutes, 1.5)
    s = TankState(temperature_c=60.0)
    start = stored_kwh(p, s.temperature_c)
    for k in range(minutes):
        step(p, s, 60, it_kw=float(it[k]), draw_l40=float(draws[k]), heat_kw=float(loop[k]))
    inputs = s.it_kwh + s.backup_kwh
    outputs = s.draw_kwh + s.heat_kwh + s.loss_kwh + s.dumped_kwh
    change = stored_kwh(p, s.temperature_c) - start
    assert s.backup_kwh > 0 and s.dumped_kwh > 0, "the week must exercise both limits"
    assert abs(change - (inputs - outputs)) <= 0.001 * (inputs + outputs)
    assert 0 < s.served_by_it_kwh <= s.draw_kwh + s.heat_kwh


def test_server_heat_cannot_lift_the_tank_above_the_coolant_supply_and_is_dumped_instead():
    (site,) = load_sites([EXAMPLES / "montlucon-residence.yaml"])
    assert site.spec.tank.max_celsius == 85 and site.spec.heat_recovery.supply_celsius == 65
    p = site.tank
    assert p.max_c == 65  # min(tank max 85, coolant supply 65)
    s = TankState(temperature_c=64.5)
    flows = step(p, s, HOUR, it_kw=10, draw_l40=0, heat_kw=0)  # 9.5 kWh would lift it ~5 K, to ~69.9 °C
    loss = p.ua_kw_per_k * (64.5 - p.ambient_c)
    assert s.temperature_c == 65.0
    assert flows.dumped == pytest.approx(9.5 - loss - 0.5 * C_1500)
    assert s.dumped_kwh == pytest.approx(flows.dumped) and flows.it == pytest.approx(9.5)


def test_seasonal_inlet_is_colder_in_january_than_in_august_and_a_january_draw_takes_more_heat():
    january, august = inlet_on(12.0, date(2025, 1, 15)), inlet_on(12.0, date(2025, 8, 15))
    assert 7 <= january < 10 and 15 < august <= 20  # France: ~7-10 °C in winter, 15-20 °C in late summer
    assert np.mean(inlet_celsius(12.0, np.arange(1, 366))) == pytest.approx(12.0, abs=0.01)  # the manifest's mean
    heats = []
    for inlet in (january, august):
        s = TankState(temperature_c=60.0)
        heats.append(step(params(), s, 60, it_kw=0, draw_l40=100, heat_kw=0, inlet_c=inlet).draw)
    assert heats == pytest.approx([litres40_to_kwh(100, january), litres40_to_kwh(100, august)])
    assert heats[0] > 1.3 * heats[1]  # (40 − 8.4) / (40 − 16) ≈ 1.32 for the same 100 L at 40 °C


def test_energy_is_conserved_over_a_week_with_a_varying_inlet():
    p = params(ua_kw_per_k=None, backup_kw=12)
    rng = np.random.default_rng(11)
    minutes = 7 * 24 * 60
    hour = (np.arange(minutes) // 60) % 24
    # one simulated day per month of the year (days 15, 45, ..., 195): the inlet spans 8 to ~16 °C
    inlet = inlet_celsius(p.inlet_c, 15 + 30 * (np.arange(minutes) // 1440))
    it = np.where(hour < 6, rng.uniform(10, 20, minutes), 0.0)
    peak = ((hour >= 6) & (hour < 9)) | ((hour >= 18) & (hour < 22))
    draws = np.where(peak, rng.uniform(0, 16, minutes), 0.5)
    s = TankState(temperature_c=60.0)
    start = stored_kwh(p, s.temperature_c)
    for k in range(minutes):
        step(p, s, 60, it_kw=float(it[k]), draw_l40=float(draws[k]), heat_kw=1.5, inlet_c=float(inlet[k]))
    inputs = s.it_kwh + s.backup_kwh
    outputs = s.draw_kwh + s.heat_kwh + s.loss_kwh + s.dumped_kwh
    change = stored_kwh(p, s.temperature_c) - start
    assert inlet.max() - inlet.min() > 7
    assert s.backup_kwh > 0 and s.dumped_kwh > 0, "the week must exercise both limits"
    assert s.draw_kwh != pytest.approx(litres40_to_kwh(draws.sum(), p.inlet_c), rel=0.01), "the inlet must matter"
    assert abs(change - (inputs - outputs)) <= 0.001 * (inputs + outputs)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"volume_l": 0}, "volume_l"),
        ({"min_c": 90}, "temperatures"),
        ({"efficiency": 1.2}, "efficiency"),
        ({"backup_kw": -1}, "backup_kw"),
    ],
)
def test_invalid_tank_parameters_are_rejected_with_a_message(overrides, message):
    with pytest.raises(ValueError, match=message):
        params(**overrides)
