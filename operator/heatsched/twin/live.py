"""Open-ended simulation of sites for the exporter: a simulated clock, live overrides, no precomputed arrays.

Why it exists: the exporter runs for as long as a demo or an e2e test lasts, driven by whatever IT load the
cluster has right now, and tests must be able to pin a tank (hold it, set its temperature, force the load).
The offline benchmark (simulate.py) uses the same tank physics and profiles on precomputed arrays instead.

Day factors are drawn per (seed, site, demand, calendar day), so a restarted twin replays the same days.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np

from heatsched.twin.draw import DemandSpec, litres40_per_step
from heatsched.twin.sites import SiteConfig
from heatsched.twin.tank import StepFlows, TankState, step

MAX_DEMAND_FACTOR = 20.0
MAX_IT_KW = 100_000.0


@dataclass
class LiveSite:
    """One site of the running twin, with the knobs of the control API."""

    config: SiteConfig
    state: TankState
    seed: int = 0
    hold: bool = False  # frozen tank: no step changes the temperature or the counters
    it_override_kw: float | None = None  # replaces the load source's value
    demand_factor: float = 1.0  # multiplies every demand of the site
    it_kw: float = 0.0  # electrical IT power used in the last step
    last: StepFlows | None = None
    last_step_s: float = 0.0
    demand_kw: dict[str, float] = field(default_factory=dict)
    fuel_kw: float = 0.0  # the part of it_kw drawn by heat fuel pods
    fuel_kwh: float = 0.0
    no_fuel: TankState | None = None  # the same tank with the same demand and tenants, but no fuel
    _day_factors: dict[tuple[str, date], float] = field(default_factory=dict, repr=False)

    @classmethod
    def start(cls, config: SiteConfig, temperature_c: float | None = None, seed: int = 0) -> LiveSite:
        t = config.tank.target_c if temperature_c is None else temperature_c
        return cls(config=config, state=TankState(temperature_c=t), seed=seed, no_fuel=TankState(temperature_c=t))

    @property
    def name(self) -> str:
        return self.config.name

    def day_factor(self, demand: DemandSpec, day: date) -> float:
        key = (demand.name, day)
        if key not in self._day_factors:
            if len(self._day_factors) > 64:  # keep a few days only
                self._day_factors.clear()
            words = [self.seed, zlib.crc32(self.name.encode()), zlib.crc32(demand.name.encode()), day.toordinal()]
            self._day_factors[key] = float(demand.day_variation.draw(np.random.default_rng(words), 1)[0])
        return self._day_factors[key]

    def demands_at(self, now: datetime) -> dict[str, float]:
        """Current heat (kW) of each demand: profile × day factor × the control API's demand factor; hot water
        also × (40 − T_in)/(40 − T̄), its heat at today's inlet (draw.py)."""
        draw_factor = self.config.draw_heat_factor(self.config.inlet_c(now))
        return {
            d.name: d.kw_at(now, self.day_factor(d, now.date())) * self.demand_factor
            * (draw_factor if d.is_draw else 1.0)
            for d in self.config.demands
        }

    def advance(self, now: datetime, dt_s: float, load_kw: float, fuel_kw: float = 0.0) -> None:
        """One step of dt_s seconds starting at `now`, with `load_kw` of IT power unless overridden, of which
        `fuel_kw` is heat fuel; the no-fuel counterfactual tank gets the same step without the fuel."""
        self.it_kw = load_kw if self.it_override_kw is None else self.it_override_kw
        self.fuel_kw = min(max(0.0, fuel_kw), self.it_kw) if self.it_override_kw is None else 0.0
        self.demand_kw = self.demands_at(now)
        if self.hold:
            self.last = None
            return
        draw_l40 = heat_kw = 0.0
        inlet = self.config.inlet_c(now)
        for d in self.config.demands:
            kw = self.demand_kw[d.name]
            if d.is_draw:
                draw_l40 += litres40_per_step(kw, inlet, dt_s)  # heat at today's inlet -> the same 40 °C litres
            else:
                heat_kw += kw
        self.last = step(self.config.tank, self.state, dt_s, self.it_kw, draw_l40, heat_kw, inlet)
        if self.no_fuel is not None:
            step(self.config.tank, self.no_fuel, dt_s, self.it_kw - self.fuel_kw, draw_l40, heat_kw, inlet)
        self.fuel_kwh += self.fuel_kw * dt_s / 3600.0
        self.last_step_s = dt_s

    @property
    def it_heat_kw(self) -> float:
        """IT heat recovered into the tank at the current load (also shown while the tank is held)."""
        return self.it_kw * self.config.tank.efficiency

    @property
    def backup_kw(self) -> float:
        """Mean backup power over the last step (0 while held)."""
        return self.last.backup * 3600.0 / self.last_step_s if self.last is not None else 0.0

    def control(self, body: object) -> None:
        """Apply a control request (see exporter.py); raises ValueError with a clear message, changing nothing."""
        allowed = ("demandFactor", "hold", "itKW", "temperatureC")
        if not isinstance(body, Mapping) or not body:
            raise ValueError(f"body must be a non-empty JSON object with keys among {list(allowed)}")
        if unknown := sorted(set(body) - set(allowed)):
            raise ValueError(f"unknown key(s) {unknown}; allowed: {list(allowed)}")
        tank = self.config.tank
        temperature = None
        if "temperatureC" in body:
            temperature = _number(body["temperatureC"], "temperatureC", tank.inlet_c, tank.max_c)
        hold = body.get("hold", self.hold)
        if not isinstance(hold, bool):
            raise ValueError("hold must be true or false")  # noqa: TRY004 - callers map ValueError to HTTP 400
        it_kw = body.get("itKW", self.it_override_kw)
        if it_kw is not None:
            it_kw = _number(it_kw, "itKW", 0.0, MAX_IT_KW)
        factor = _number(body.get("demandFactor", self.demand_factor), "demandFactor", 0.0, MAX_DEMAND_FACTOR)
        # all valid: apply
        if temperature is not None:
            self.state.temperature_c = temperature
            self.state.stored_it_kwh = 0.0  # the new fill did not come from servers
        self.hold, self.it_override_kw, self.demand_factor = hold, it_kw, factor

    def to_json(self) -> dict[str, object]:
        s = self.state
        return {
            "site": self.name,
            "country": self.config.country,
            "temperatureC": round(s.temperature_c, 3),
            "hold": self.hold,
            "itKW": self.it_kw,
            "itOverrideKW": self.it_override_kw,
            "itHeatKW": self.it_heat_kw,
            "backupKW": self.backup_kw,
            "demandFactor": self.demand_factor,
            "demandKW": dict(self.demand_kw),
            "backupKWh": s.backup_kwh,
            "heatDumpedKWh": s.dumped_kwh,
            "servedByITKWh": s.served_by_it_kwh,
            "itHeatKWh": s.it_kwh,
            "fuelKW": self.fuel_kw,
            "fuelKWh": self.fuel_kwh,
            "noFuel": None if self.no_fuel is None else {
                "temperatureC": round(self.no_fuel.temperature_c, 3), "backupKWh": self.no_fuel.backup_kwh},
            "tank": {"min": self.config.tank.min_c, "target": self.config.tank.target_c, "max": self.config.tank.max_c},
        }


def _number(value: object, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:  # noqa: PLR0124 - NaN check
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be within [{low:g}, {high:g}], got {value:g}")
    return float(value)


class SimClock:
    """Simulated time advanced in fixed steps: `due(real_elapsed)` says how many steps to run now."""

    def __init__(self, start: datetime, step_s: float, speed: float) -> None:
        if step_s <= 0 or speed <= 0:
            raise ValueError("step and speed must be > 0")
        self.now, self.step_s, self.speed = start, step_s, speed
        self._carry = 0.0

    def due(self, real_elapsed_s: float, max_steps: int = 10_000) -> int:
        self._carry += real_elapsed_s * self.speed
        n = min(int(self._carry // self.step_s), max_steps)
        self._carry = min(self._carry - n * self.step_s, self.step_s * max_steps)
        return n

    def tick(self) -> datetime:
        """Return the start of the next step and move the clock past it."""
        at = self.now
        self.now = at + timedelta(seconds=self.step_s)
        return at
