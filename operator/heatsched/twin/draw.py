"""Heat demand over time: ThermalDemand hourly profiles plus seeded day-to-day variation.

Why it exists: the ThermalDemand manifests are the one source of truth for *how much* heat a site needs and
*when* (24 hourly kW, weekday and season factors); the twin adds what a mean profile hides: some days are heavier
than others. Everything here is vectorised with numpy, so a week of 1-minute steps costs microseconds per site.

Demand at time t (local time of the site):

    P(t) = hourlyKW[hour(t)] · weekdayFactors[weekday(t)] · seasonFactors[season(t)] · f_day(t)

Day factor f_day: lognormal L (spread σ) times, with probability p, a "heavy day" multiplier H ~ U[a, b];
the lognormal is scaled so that E[f_day] = 1, so the manifest profile stays the mean day:

    E[H] = 1 − p + p·(a + b)/2,   ln L ~ N(μ, σ²) with μ = −ln E[H] − σ²/2,   f_day = min(cap, L · H)

Figures: the ADEME/COSTIC guide "Les besoins d'eau chaude sanitaire en habitat individuel et collectif"
(ADEME 2016, 398 instrumented buildings, 15 500 meter readings) gives 110 ± 80 L/day at 40 °C per apartment and
notes that some days reach up to 5× a household's mean. A building aggregates dozens of households, so its
spread is narrower: σ = 0.2 plus heavy days (p = 5 %, 1.5×–3×) is our assumption, capped at 5× (the cap
lowers the mean negligibly).
Recirculation loops run 24/7 at nearly constant loss; a process pre-heater follows production shifts;
space heating follows the weather (moderate spread).

Design day factor (sizing the backup, sites.py): the largest day factor a demand is designed for. Kinds with
heavy days take the cap (5×, which 3 × a 3-σ lognormal day already reaches); the others exp(μ + 4σ).

Cold inlet by season. Mains water follows the ground, so it is coldest in late winter and warmest in late
summer; the manifests' coldInletCelsius is its annual mean T̄. The twin uses, for calendar day n of the year
(1 = 1 January), one value per day:

    T_in(n) = T̄ + A · cos(2π (n − n_peak) / 365),   A = 4 K,  n_peak = 225 (13 August)

A and n_peak come from the mains-water correlation of Christensen & Burch (NREL; Hendron et al. 2004, used by
EnergyPlus Site:WaterMainsTemperature): amplitude = (0.4 + 0.01 (T̄_air − 44 °F)) · ΔT_air/2 and peak
(15 + lag + 182.5) days after 1 January with lag = 35 − (T̄_air − 44 °F) days; with rounded climate normals
of Montluçon, Metz and Frankfurt (annual air ~10.5–11.5 °C, ~17–18 K between the coldest and the warmest
month) it gives A = 4.0–4.3 K and n_peak = 224–226. We keep the manifest's mean (the correlation's own mean,
T̄_air + 6 °F, would be 2–3 K warmer). 12 °C ± 4 K is 8 °C in February and 16 °C in August.

Hot-water profiles are kW at the mean inlet, so a DomesticHotWater demand of P kW is a fixed flow of 40 °C
water, P / (ρc (40 − T̄)/3600) litres per hour, and the heat it takes on day n is that flow heated from T_in(n):

    P_draw(t) = P(t) · (40 − T_in(n)) / (40 − T̄)       (×1.14 at 8 °C, ×0.86 at 16 °C, for T̄ = 12 °C)

The profiles' own season factors remain (more baths in winter, holidays in summer). Other kinds are kW of
heat and do not depend on the inlet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import overload

import numpy as np

from heatsched.models import DemandKind, DemandProfile
from heatsched.thermal import profile_kw
from heatsched.twin.tank import MIXED_USE_C, litres40_to_kwh

SEASONS = ("winter", "spring", "summer", "autumn")  # the fields of models.SeasonFactors

DRAW_KINDS = frozenset({DemandKind.DOMESTIC_HOT_WATER})  # water at 40 °C; the other kinds remove kW of heat

INLET_SWING_K = 4.0  # A: half the winter-summer swing of the mains temperature (module docstring)
INLET_PEAK_DAY = 225  # n_peak: day of the year the mains water is warmest (13 August)


@dataclass(frozen=True, slots=True)
class DayFactorModel:
    """How much a day's demand differs from the profile's mean day (formula in the module docstring)."""

    sigma: float = 0.0
    heavy_prob: float = 0.0
    heavy_low: float = 1.5
    heavy_high: float = 3.0
    cap: float = 5.0

    def draw(self, rng: np.random.Generator, n_days: int) -> np.ndarray:
        """n_days factors with mean 1 (see the module docstring)."""
        mean_heavy = 1 - self.heavy_prob + self.heavy_prob * (self.heavy_low + self.heavy_high) / 2
        mu = -math.log(mean_heavy) - self.sigma**2 / 2
        base = rng.lognormal(mu, self.sigma, n_days) if self.sigma > 0 else np.full(n_days, math.exp(mu))
        heavy = np.where(
            rng.random(n_days) < self.heavy_prob, rng.uniform(self.heavy_low, self.heavy_high, n_days), 1.0
        )
        factors: np.ndarray = np.minimum(self.cap, base * heavy)
        return factors

    @property
    def design_factor(self) -> float:
        """The day factor the backup is sized for: the cap with heavy days, else exp(μ + 4σ) (module docstring)."""
        if self.heavy_prob > 0:
            return self.cap
        return min(self.cap, math.exp(-self.sigma**2 / 2 + 4 * self.sigma))  # μ = −σ²/2 without heavy days


DAY_VARIATION = {
    DemandKind.DOMESTIC_HOT_WATER: DayFactorModel(sigma=0.2, heavy_prob=0.05),
    DemandKind.RECIRCULATION_LOOP: DayFactorModel(sigma=0.03),
    DemandKind.PROCESS_PREHEATING: DayFactorModel(sigma=0.05),
    DemandKind.SPACE_HEATING: DayFactorModel(sigma=0.15),
}


@dataclass(frozen=True, slots=True)
class DemandSpec:
    """One ThermalDemand with a profile, as the twin simulates it."""

    name: str
    kind: DemandKind
    profile: DemandProfile

    @property
    def is_draw(self) -> bool:
        return self.kind in DRAW_KINDS

    @property
    def day_variation(self) -> DayFactorModel:
        return DAY_VARIATION[self.kind]

    def kw_at(self, when: datetime, day_factor: float = 1.0) -> float:
        """Demand (kW) at a local time: heatsched.thermal.profile_kw × the day factor."""
        return profile_kw(self.profile, when) * day_factor

    def mean_kw(self) -> float:
        """Mean over a week and the four seasons (for sizing)."""
        p = self.profile
        seasons: list[float] = [getattr(p.season_factors, s) for s in SEASONS]
        return sum(p.hourly_kw) / 24 * sum(p.weekday_factors) / 7 * sum(seasons) / 4

    def peak_factor(self) -> float:
        """Largest weekday × season multiplier of the profile."""
        p = self.profile
        seasons: list[float] = [getattr(p.season_factors, s) for s in SEASONS]
        return max(p.weekday_factors) * max(seasons)

    def series(self, start: datetime, steps: int, step_s: float, day_factors: np.ndarray) -> np.ndarray:
        """kW at each step start; `day_factors[d]` applies to calendar day d counted from `start`'s midnight.

        heatsched.thermal.profile_kw is evaluated once per (day, hour) and indexed, so the twin and the
        operator read a profile the same way.
        """
        midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
        t = (start - midnight).total_seconds() + np.arange(steps) * step_s
        day = (t // 86400).astype(int)
        hour = ((t % 86400) // 3600).astype(int)
        n_days = int(day[-1]) + 1 if steps else 0
        table = np.array(
            [profile_kw(self.profile, midnight + timedelta(days=d, hours=h)) for d in range(n_days) for h in range(24)]
        ).reshape(n_days, 24)
        kw: np.ndarray = table[day, hour] * np.asarray(day_factors)[day]
        return kw


def days_spanned(start: datetime, steps: int, step_s: float) -> int:
    """Calendar days touched by `steps` steps from `start` (how many day factors a series needs)."""
    offsets = (start - start.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds()
    return int((offsets + max(steps - 1, 0) * step_s) // 86400) + 1


@overload
def litres40_per_step(kw: np.ndarray, inlet_c: float, step_s: float) -> np.ndarray: ...
@overload
def litres40_per_step(kw: float, inlet_c: float, step_s: float) -> float: ...
def litres40_per_step(kw: np.ndarray | float, inlet_c: float, step_s: float) -> np.ndarray | float:
    """Hot-water draw (litres at 40 °C) that a kW demand represents over one step, heated from `inlet_c`.

    Profiles are kW at the site's MEAN inlet, so pass the mean here: kW · h / (ρc · (40 − T̄) / 3600).
    """
    return kw * (step_s / 3600.0) / litres40_to_kwh(1.0, inlet_c)


def inlet_celsius(mean_c: float, day_of_year: int | np.ndarray, swing_k: float = INLET_SWING_K,
                  peak_day: float = INLET_PEAK_DAY) -> float | np.ndarray:
    """Cold-inlet temperature of a calendar day: T̄ + A · cos(2π (n − n_peak) / 365) (module docstring)."""
    return mean_c + swing_k * np.cos(2 * np.pi * (np.asarray(day_of_year) - peak_day) / 365.0)


def inlet_on(mean_c: float, when: datetime | date, swing_k: float = INLET_SWING_K) -> float:
    """inlet_celsius for the calendar day of `when` (local time)."""
    return float(inlet_celsius(mean_c, when.timetuple().tm_yday, swing_k))


def inlet_series(mean_c: float, start: datetime, steps: int, step_s: float,
                 swing_k: float = INLET_SWING_K) -> np.ndarray:
    """Inlet (°C) at each step start: the value of the step's calendar day, counted from `start`'s midnight."""
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    t = (start - midnight).total_seconds() + np.arange(steps) * step_s
    day = (t // 86400).astype(int)
    n_days = int(day[-1]) + 1 if steps else 0
    per_day = np.array([inlet_on(mean_c, midnight + timedelta(days=d), swing_k) for d in range(n_days)])
    return per_day[day] if steps else np.zeros(0)


@overload
def draw_heat_factor(inlet_c: np.ndarray, mean_c: float) -> np.ndarray: ...
@overload
def draw_heat_factor(inlet_c: float, mean_c: float) -> float: ...
def draw_heat_factor(inlet_c: float | np.ndarray, mean_c: float) -> float | np.ndarray:
    """Heat of a hot-water draw at inlet T_in relative to its profile kW (at the mean T̄): (40 − T_in)/(40 − T̄)."""
    return (MIXED_USE_C - inlet_c) / (MIXED_USE_C - mean_c)
