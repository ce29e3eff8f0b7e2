"""Tank physics, the thermal state machine and demand profiles: pure functions, no I/O.

Why a module of its own: the operator (status), the placement core (through SiteView), the digital
twin and the docs must agree on what "Saturated" means and on how many kWh a tank holds; one copy of
the maths keeps them honest. Inputs are plain numbers, models and datetimes; nothing here talks to
Kubernetes or Prometheus.

Water: density ρ = 1 kg/L (as the twin and the placement core use; it is 0.983 at 60 °C, so energies
of hot tanks are over-stated by at most ~1.7 %), specific heat c = 4.186 kJ/(kg·K). Energy to warm
V litres by ΔT kelvin:

    E [kWh] = V · ρ · c · ΔT / 3600          (1500 L × 10 K = 17.44 kWh)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeGuard

from heatsched.models import (
    DemandProfile,
    DemandSource,
    HeatSiteSpec,
    ThermalDemandSpec,
)
from heatsched.placement.model import SiteView, Tank, ThermalState

WATER_DENSITY_KG_PER_L = 1.0
WATER_SPECIFIC_HEAT_KJ_PER_KG_K = 4.186
SATURATION_BAND_K = 3.0  # Saturated: within this many kelvin below the tank maximum (at most half of target..max)
HORIZON_H = 1.0  # absorbable power is what the tank takes over this horizon
SANE_RANGE_C = (0.0, 150.0)  # liquid water in a tank; outside this the sensor is broken
FUTURE_SKEW_S = 30.0  # a reading dated further in the future than this is not trusted


@dataclass(frozen=True, slots=True)
class Reading:
    """One tank temperature sample and when it was measured (aware datetime; naive means UTC)."""

    celsius: float
    at: datetime


def saturation_band_k(tank: Tank) -> float:
    """Width of the Saturated band below the top: min(3 K, (max − target)/2), at least 0.1 K.

    With warm-water cooling the top server heat can reach is only 3–5 K above target; a fixed 3 K band would
    call a tank at its target Saturated and keep new load off it."""
    return max(0.1, min(SATURATION_BAND_K, (tank.max_c - tank.target_c) / 2))


def energy_kwh(volume_l: float, delta_k: float) -> float:
    """E = V · ρ · c · ΔT / 3600, in kWh; negative ΔT gives the energy released by cooling."""
    return volume_l * WATER_DENSITY_KG_PER_L * WATER_SPECIFIC_HEAT_KJ_PER_KG_K * delta_k / 3600.0


def heat_deficit_kwh(tank: Tank, temp_c: float | None) -> float:
    """Energy to bring the tank up to target: energy_kwh(V, max(0, target − T)); 0 when T is unknown."""
    if not _sane(temp_c):
        return 0.0
    return energy_kwh(tank.volume_l, max(0.0, tank.target_c - temp_c))


def absorbable_kw(
    tank: Tank,
    temp_c: float | None,
    demand_kw: float,
    *,
    it_load_kw: float = 0.0,
    efficiency: float = 0.95,
    horizon_h: float = HORIZON_H,
    margin_k: float | None = None,
) -> float:
    """IT power the tank can take, on top of the load already running, over the horizon without
    entering the saturation band:

        P = max(0, (energy_kwh(V, (max − margin) − T) / horizon + demand) / η − it_load)

    Heat stored up to `max − margin`, spread over the horizon, plus what the demand draws meanwhile, is
    what the tank can absorb; only η of the IT power arrives as heat, hence the division. The IT load
    already running keeps heating the tank, so it is subtracted: what is left is room for new pods (the
    placement core charges pods bound since the reading against it). Unknown temperature: 0.
    """
    if not _sane(temp_c):
        return 0.0
    margin_k = saturation_band_k(tank) if margin_k is None else margin_k
    stored_kw = energy_kwh(tank.volume_l, tank.max_c - margin_k - temp_c) / horizon_h
    return max(0.0, (stored_kw + max(0.0, demand_kw)) / efficiency - max(0.0, it_load_kw))


def thermal_state(
    temp_c: float | None, tank: Tank, fresh: bool, *, band_k: float | None = None
) -> ThermalState:
    """Classify a tank temperature; the first matching row wins:

    | condition                           | state       |
    |-------------------------------------|-------------|
    | no reading, not fresh, not sane     | Unknown     |
    | T < min                             | Cold        |
    | T < target                          | Heating     |
    | T >= max                            | Overheated  |
    | T >= max − saturation band          | Saturated   |   (band: saturation_band_k)
    | otherwise                           | Comfortable |
    """
    if not fresh or not _sane(temp_c):
        return ThermalState.UNKNOWN
    if temp_c < tank.min_c:
        return ThermalState.COLD
    if temp_c < tank.target_c:
        return ThermalState.HEATING
    if temp_c >= tank.max_c:
        return ThermalState.OVERHEATED
    if temp_c >= tank.max_c - (saturation_band_k(tank) if band_k is None else band_k):
        return ThermalState.SATURATED
    return ThermalState.COMFORTABLE


def state_reason(
    state: ThermalState, temp_c: float | None, tank: Tank, *, band_k: float | None = None
) -> str:
    """One sentence saying why `thermal_state` returned `state` (for status and explain)."""
    t = f"{temp_c:.1f} °C" if temp_c is not None and math.isfinite(temp_c) else "no temperature"
    band = saturation_band_k(tank) if band_k is None else band_k
    return {
        ThermalState.COLD: f"{t} is below the {tank.min_c:g} °C floor: heat badly needed",
        ThermalState.HEATING: f"{t} is below the {tank.target_c:g} °C target: heat wanted",
        ThermalState.COMFORTABLE: f"{t} is between target {tank.target_c:g} °C and the saturation band",
        ThermalState.SATURATED: f"{t} is within {band:g} K of the {tank.max_c:g} °C maximum: no new load",
        ThermalState.OVERHEATED: f"{t} is at or above the {tank.max_c:g} °C maximum: heat would be dumped",
        ThermalState.UNKNOWN: f"{t}: no fresh, sane reading",
    }[state]


def reading_age_s(reading: Reading, now: datetime) -> float:
    """Seconds between the measurement and `now` (negative when dated in the future)."""
    if (now.tzinfo is None) == (reading.at.tzinfo is None):  # both naive (UTC) or both aware: no conversion
        return (now - reading.at).total_seconds()
    return (_aware(now) - _aware(reading.at)).total_seconds()


def site_view(
    spec: HeatSiteSpec,
    name: str,
    reading: Reading | None,
    now: datetime,
    demand_kw: float = 0.0,
    it_load_kw: float = 0.0,
    *,
    horizon_h: float = HORIZON_H,
    band_k: float | None = None,
    tank: Tank | None = None,
    explain: bool = True,
) -> SiteView:
    """The placement core's view of a site from its spec and its latest reading.

    A reading is fresh when −FUTURE_SKEW_S <= age <= telemetry.maxAgeSeconds and its value is sane; a
    stale or missing one yields state Unknown, no deficit and no absorbable power (neutral placement).
    Pods bound since the reading are not charged here: the core takes them from Snapshot.pending_kw.
    """
    tank = tank or spec.server_tank()  # callers that build many views pass it once (the twin)
    age = reading_age_s(reading, now) if reading is not None else None
    fresh = (reading is not None and age is not None and -FUTURE_SKEW_S <= age <= spec.telemetry.max_age_seconds
             and _sane(reading.celsius))
    temp = reading.celsius if reading is not None and _sane(reading.celsius) else None
    state = thermal_state(temp, tank, fresh, band_k=band_k)
    if reading is None:
        reason = "no reading"
    elif temp is None:
        reason = f"implausible reading {reading.celsius!r} °C"
    elif not fresh:
        assert age is not None  # a reading always has an age
        reason = f"reading is {age:.0f} s old (max {spec.telemetry.max_age_seconds} s)" if age > 0 else (
            f"reading is dated {-age:.0f} s in the future"
        )
    else:
        reason = state_reason(state, temp, tank, band_k=band_k) if explain else ""
    return SiteView(
        name=name,
        country=spec.country,
        tank=tank,
        state=state,
        temperature_c=temp,
        reading_age_s=max(0.0, age) if age is not None else None,
        fresh=fresh,
        heat_deficit_kwh=heat_deficit_kwh(tank, temp) if fresh else 0.0,
        absorbable_kw=absorbable_kw(
            tank, temp, demand_kw, it_load_kw=it_load_kw, efficiency=spec.heat_recovery.efficiency,
            horizon_h=horizon_h, margin_k=band_k,
        ) if fresh else 0.0,
        demand_kw=demand_kw,
        it_load_kw=it_load_kw,
        watts_per_cpu=spec.power.watts_per_cpu,
        recovery_efficiency=spec.heat_recovery.efficiency,
        reason=reason,
    )


# Meteorological seasons, northern hemisphere (all sites are in Europe): month -> season field.
_SEASON_OF_MONTH = {12: "winter", 1: "winter", 2: "winter", 3: "spring", 4: "spring", 5: "spring",
                    6: "summer", 7: "summer", 8: "summer", 9: "autumn", 10: "autumn", 11: "autumn"}


def season(when: datetime) -> str:
    """winter (Dec-Feb), spring (Mar-May), summer (Jun-Aug) or autumn (Sep-Nov)."""
    return _SEASON_OF_MONTH[when.month]


def profile_kw(profile: DemandProfile, when: datetime) -> float:
    """Demand at `when`: hourlyKW[hour] × weekdayFactors[weekday] × seasonFactors[season].

    `when` is the site's local wall-clock time (convert with zoneinfo first: hot-water peaks follow
    people, not UTC). The hour is a step function: 07:59 uses the 07:00-08:00 value.
    """
    seasonal: float = getattr(profile.season_factors, season(when))
    return profile.hourly_kw[when.hour] * profile.weekday_factors[when.weekday()] * seasonal


def demand_now(
    spec: ThermalDemandSpec, when: datetime, live_kw: float | None
) -> tuple[float | None, DemandSource | None]:
    """A demand's current kW and where it came from: a sane live value wins, else the profile, else unknown."""
    if live_kw is not None and math.isfinite(live_kw) and live_kw >= 0:
        return live_kw, DemandSource.LIVE
    if spec.profile is not None:
        return profile_kw(spec.profile, when), DemandSource.PROFILE
    return None, None


def forecast_slots(hours: float, slot_h: float = 0.25) -> int:
    """How many slots of `slot_h` cover `hours` (at least one)."""
    return max(1, math.ceil(hours / slot_h - 1e-9))


def profile_series_kw(profile: DemandProfile, start: datetime, hours: float, slot_h: float = 0.25) -> list[float]:
    """profile_kw at start, start + slot, ... covering `hours` (at least one value), local time."""
    return [profile_kw(profile, start + timedelta(hours=i * slot_h)) for i in range(forecast_slots(hours, slot_h))]


def demand_forecast_series_kw(spec: ThermalDemandSpec, start: datetime, hours: float, live_kw: float | None,
                              slot_h: float = 0.25) -> list[float]:
    """One demand's forecast per slot: its profile, or its live value held constant when it has no profile."""
    if spec.profile is None:
        v = live_kw if live_kw is not None and math.isfinite(live_kw) and live_kw >= 0 else 0.0
        return [v] * forecast_slots(hours, slot_h)
    return profile_series_kw(spec.profile, start, hours, slot_h)


def _sane(temp_c: float | None) -> TypeGuard[float]:
    return temp_c is not None and math.isfinite(temp_c) and SANE_RANGE_C[0] <= temp_c <= SANE_RANGE_C[1]


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)
