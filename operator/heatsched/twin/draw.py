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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from heatsched.models import DemandKind, DemandProfile
from heatsched.thermal import profile_kw
from heatsched.twin.tank import litres40_to_kwh

SEASONS = ("winter", "spring", "summer", "autumn")  # the fields of models.SeasonFactors

DRAW_KINDS = frozenset({DemandKind.DOMESTIC_HOT_WATER})  # water at 40 °C; the other kinds remove kW of heat


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
        return np.minimum(self.cap, base * heavy)


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
        seasons = [getattr(p.season_factors, s) for s in SEASONS]
        return sum(p.hourly_kw) / 24 * sum(p.weekday_factors) / 7 * sum(seasons) / 4

    def peak_factor(self) -> float:
        """Largest weekday × season multiplier of the profile."""
        p = self.profile
        return max(p.weekday_factors) * max(getattr(p.season_factors, s) for s in SEASONS)

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
        return table[day, hour] * np.asarray(day_factors)[day]


def days_spanned(start: datetime, steps: int, step_s: float) -> int:
    """Calendar days touched by `steps` steps from `start` (how many day factors a series needs)."""
    offsets = (start - start.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds()
    return int((offsets + max(steps - 1, 0) * step_s) // 86400) + 1


def litres40_per_step(kw: np.ndarray | float, inlet_c: float, step_s: float) -> np.ndarray | float:
    """Hot-water draw (litres at 40 °C) that a kW demand represents over one step."""
    return kw * (step_s / 3600.0) / litres40_to_kwh(1.0, inlet_c)
