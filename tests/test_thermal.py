"""Tank maths, the thermal state machine, site views and demand profiles (heatsched.thermal)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from heatsched.models import DemandProfile, DemandSource, HeatSiteSpec, SeasonFactors, ThermalDemandSpec
from heatsched.placement.model import Tank, ThermalState
from heatsched.thermal import (
    FUTURE_SKEW_S,
    Reading,
    absorbable_kw,
    demand_now,
    energy_kwh,
    heat_deficit_kwh,
    profile_kw,
    saturation_band_k,
    season,
    site_view,
    state_reason,
    thermal_state,
)

TANK = Tank(volume_l=1500, min_c=55, target_c=60, max_c=85)
NOW = datetime(2026, 1, 14, 7, 30, tzinfo=UTC)  # a Wednesday in winter
KWH_PER_LITRE_KELVIN = 4.186 / 3600  # 4.186 kJ per kg and kelvin, 1 kg per litre


@pytest.mark.parametrize(
    "volume_l,delta_k,expected_kwh,rel",
    [
        (1500, 10, 17.4, 0.01),  # the brief's sanity figure: 1500 L from 50 to 60 °C
        (1, 1, 4.186 / 3600, 1e-9),  # one litre, one kelvin: 4.186 kJ
        (3000, 25, 3000 * 25 * KWH_PER_LITRE_KELVIN, 1e-9),
        (1500, -10, -17.4, 0.01),  # cooling releases energy
        (0, 50, 0.0, 0),
    ],
)
def test_energy_of_warming_water(volume_l, delta_k, expected_kwh, rel):
    assert energy_kwh(volume_l, delta_k) == pytest.approx(expected_kwh, rel=rel, abs=1e-12)


@pytest.mark.parametrize(
    "temp_c,expected_kwh",
    [
        (50.0, 1500 * 10 * KWH_PER_LITRE_KELVIN),
        (60.0, 0.0),  # at target
        (70.0, 0.0),  # above target: no deficit, never negative
        (None, 0.0),  # unknown: neutral
        (float("nan"), 0.0),
    ],
)
def test_heat_deficit_is_energy_up_to_target(temp_c, expected_kwh):
    assert heat_deficit_kwh(TANK, temp_c) == pytest.approx(expected_kwh)


def test_absorbable_power_is_stored_room_plus_demand_over_efficiency():
    temp = 62.0  # 85 − 3 − 62 = 20 K of room below the saturation band
    stored = 1500 * 20 * KWH_PER_LITRE_KELVIN
    assert absorbable_kw(TANK, temp, 5.0, efficiency=0.95) == pytest.approx((stored + 5.0) / 0.95)
    assert absorbable_kw(TANK, temp, 5.0, efficiency=0.95, horizon_h=0.5) == pytest.approx((2 * stored + 5.0) / 0.95)
    assert absorbable_kw(TANK, temp, 5.0, efficiency=0.95, it_load_kw=3.0) == pytest.approx((stored + 5.0) / 0.95 - 3.0)


@pytest.mark.parametrize(
    "temp_c,demand_kw,expected",
    [
        (82.0, 0.0, 0.0),  # at the saturation band with no draw: full
        (82.0, 4.75, 5.0),  # at the band, the draw alone: 4.75 / 0.95
        (84.0, 0.0, 0.0),  # inside the band: stored term negative, clamped
        (90.0, 1.0, 0.0),  # over the maximum: never negative
        (None, 10.0, 0.0),  # unknown temperature
    ],
)
def test_absorbable_power_at_the_edges(temp_c, demand_kw, expected):
    assert absorbable_kw(TANK, temp_c, demand_kw, efficiency=0.95) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    "temp_c,fresh,band,expected",
    [
        (40.0, True, 3.0, ThermalState.COLD),
        (54.99, True, 3.0, ThermalState.COLD),
        (55.0, True, 3.0, ThermalState.HEATING),  # the floor itself is no longer cold
        (59.9, True, 3.0, ThermalState.HEATING),
        (60.0, True, 3.0, ThermalState.COMFORTABLE),
        (81.9, True, 3.0, ThermalState.COMFORTABLE),
        (82.0, True, 3.0, ThermalState.SATURATED),  # max − band
        (84.9, True, 3.0, ThermalState.SATURATED),
        (85.0, True, 3.0, ThermalState.OVERHEATED),
        (95.0, True, 3.0, ThermalState.OVERHEATED),
        (80.0, True, 5.0, ThermalState.SATURATED),  # a wider band saturates earlier
        (80.0, True, 3.0, ThermalState.COMFORTABLE),
        (70.0, False, 3.0, ThermalState.UNKNOWN),  # stale
        (None, True, 3.0, ThermalState.UNKNOWN),
        (float("nan"), True, 3.0, ThermalState.UNKNOWN),
        (-127.0, True, 3.0, ThermalState.UNKNOWN),  # a classic broken-sensor value
        (float("inf"), True, 3.0, ThermalState.UNKNOWN),
    ],
)
def test_thermal_state_table(temp_c, fresh, band, expected):
    assert thermal_state(temp_c, TANK, fresh, band_k=band) is expected


def test_heating_wins_over_saturated_when_the_band_reaches_below_target():
    narrow = Tank(volume_l=500, min_c=55, target_c=60, max_c=62)
    assert thermal_state(59.5, narrow, True, band_k=3.0) is ThermalState.HEATING
    assert thermal_state(60.0, narrow, True, band_k=3.0) is ThermalState.SATURATED


def test_a_tank_whose_top_is_close_above_target_keeps_a_comfortable_band():
    """Warm-water cooling: the servers reach 65 °C, target 62 °C. The band shrinks to half the gap (1.5 K),
    so a tank at target is Comfortable, not Saturated."""
    close = Tank(volume_l=3000, min_c=55, target_c=62, max_c=65)
    assert saturation_band_k(close) == 1.5
    assert thermal_state(62.0, close, True) is ThermalState.COMFORTABLE
    assert thermal_state(63.5, close, True) is ThermalState.SATURATED
    assert saturation_band_k(Tank(volume_l=1, min_c=55, target_c=60, max_c=85)) == 3.0


@pytest.mark.parametrize("state", list(ThermalState))
def test_every_state_has_a_reason_naming_the_temperature(state):
    assert "58.2 °C" in state_reason(state, 58.2, TANK)


SPEC = HeatSiteSpec.model_validate(
    {
        "country": "FR",
        "nodeNames": ["n1"],
        "tank": {"volumeLitres": 1500, "maxCelsius": 85},
        "heatRecovery": {"efficiency": 0.9},
        "power": {"wattsPerCPU": 12},
        "telemetry": {"temperatureQuery": "q", "maxAgeSeconds": 120},
    }
)


def test_site_view_of_a_fresh_cold_reading_wants_heat():
    view = site_view(SPEC, "s", Reading(50.0, NOW - timedelta(seconds=30)), NOW, demand_kw=6.0, it_load_kw=1.0)
    assert (view.name, view.country, view.state, view.fresh) == ("s", "FR", ThermalState.COLD, True)
    assert view.temperature_c == 50.0 and view.reading_age_s == pytest.approx(30.0)
    assert view.heat_deficit_kwh == pytest.approx(heat_deficit_kwh(view.tank, 50.0))
    assert view.absorbable_kw == pytest.approx(absorbable_kw(view.tank, 50.0, 6.0, it_load_kw=1.0, efficiency=0.9))
    assert (view.watts_per_cpu, view.recovery_efficiency, view.demand_kw, view.it_load_kw) == (12, 0.9, 6.0, 1.0)
    assert "below the 55 °C floor" in view.reason


@pytest.mark.parametrize(
    "reading,reason",
    [
        (None, "no reading"),
        (Reading(50.0, NOW - timedelta(seconds=121)), "121 s old (max 120 s)"),
        (Reading(50.0, NOW + timedelta(seconds=FUTURE_SKEW_S + 10)), "in the future"),
        (Reading(float("nan"), NOW), "implausible reading"),
    ],
)
def test_site_view_without_a_fresh_sane_reading_is_neutral(reading, reason):
    view = site_view(SPEC, "s", reading, NOW, demand_kw=6.0)
    assert view.state is ThermalState.UNKNOWN and not view.fresh
    assert view.heat_deficit_kwh == 0.0 and view.absorbable_kw == 0.0
    assert reason in view.reason


def test_site_view_accepts_small_clock_skew_and_naive_utc_times():
    ahead = site_view(SPEC, "s", Reading(70.0, NOW + timedelta(seconds=5)), NOW)
    assert ahead.fresh and ahead.reading_age_s == 0.0
    naive = site_view(SPEC, "s", Reading(70.0, NOW.replace(tzinfo=None)), NOW)
    assert naive.fresh and naive.state is ThermalState.COMFORTABLE


def test_site_view_keeps_a_stale_temperature_for_display_but_not_for_decisions():
    view = site_view(SPEC, "s", Reading(84.0, NOW - timedelta(hours=1)), NOW)
    assert view.temperature_c == 84.0 and view.state is ThermalState.UNKNOWN


HOURLY = [float(h) for h in range(24)]  # hour h demands h kW: every hour is distinguishable
PROFILE = DemandProfile(
    hourly_kw=HOURLY,
    weekday_factors=[1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6],
    season_factors=SeasonFactors(winter=2.0, spring=3.0, summer=5.0, autumn=7.0),
)


@pytest.mark.parametrize(
    "when,hour,weekday,season_factor",
    [
        (datetime(2026, 1, 12, 7, 0), 7, 0, 2.0),  # Monday 07:00, winter
        (datetime(2026, 1, 14, 7, 59), 7, 2, 2.0),  # step function: 07:59 is still hour 7
        (datetime(2026, 3, 1, 0, 30), 0, 6, 3.0),  # Sunday, first day of spring
        (datetime(2026, 7, 18, 23, 0), 23, 5, 5.0),  # Saturday, summer
        (datetime(2026, 11, 30, 12, 0), 12, 0, 7.0),  # last day of autumn
        (datetime(2026, 12, 1, 12, 0), 12, 1, 2.0),  # first day of winter
    ],
)
def test_profile_is_hour_times_weekday_times_season(when, hour, weekday, season_factor):
    expected = HOURLY[hour] * PROFILE.weekday_factors[weekday] * season_factor
    assert profile_kw(PROFILE, when) == pytest.approx(expected)


@pytest.mark.parametrize(
    "month,name",
    [(12, "winter"), (1, "winter"), (2, "winter"), (3, "spring"), (5, "spring"), (6, "summer"), (8, "summer"),
     (9, "autumn"), (11, "autumn")],
)
def test_seasons_are_meteorological_northern_hemisphere(month, name):
    assert season(datetime(2026, month, 15)) == name


DEMAND = ThermalDemandSpec(site_ref="s", kind="DomesticHotWater", profile=PROFILE, live_query="q")


@pytest.mark.parametrize(
    "spec,live,expected_kw,source",
    [
        (DEMAND, 4.2, 4.2, DemandSource.LIVE),
        (DEMAND, 0.0, 0.0, DemandSource.LIVE),  # zero draw is a real value
        (DEMAND, None, 7.0 * 1.2 * 2.0, DemandSource.PROFILE),
        (DEMAND, float("nan"), 7.0 * 1.2 * 2.0, DemandSource.PROFILE),
        (DEMAND, -3.0, 7.0 * 1.2 * 2.0, DemandSource.PROFILE),  # a negative draw is a broken meter
        (ThermalDemandSpec(site_ref="s", kind="SpaceHeating", live_query="q"), None, None, None),
    ],
)
def test_live_demand_wins_over_the_profile_when_sane(spec, live, expected_kw, source):
    kw, src = demand_now(spec, datetime(2026, 1, 14, 7, 15), live)  # Wednesday 07:15, winter
    assert src is source
    assert kw == (pytest.approx(expected_kw) if expected_kw is not None else None)
    assert kw is None or math.isfinite(kw)
