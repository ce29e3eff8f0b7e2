"""Site manifests (HeatSite + ThermalDemand YAML) -> the twin's site configurations.

Why it exists: the twin must simulate exactly the sites the operator manages, so it reads the same manifests
(examples/*.yaml or --sites files), parsed and validated by heatsched.models; `site_configs` is the ONE
place that maps manifest fields to the twin; everything else in the twin uses SiteConfig.

What the manifests say, as the twin reads it:

- the tank's top is where server heat stops: TankParams.max_c = min(tank.maxCelsius,
  heatRecovery.supplyCelsius) (models.HeatSiteSpec.server_tank): the cooling loop cannot lift the water
  above its own supply temperature, so heat beyond it is dumped;
- coldInletCelsius is the annual mean of the mains water; the day's inlet swings around it by
  ±inlet_swing_k (draw.inlet_celsius).

Numbers the manifests do not carry are derived here, with the rule documented:

- backup burner power, a DESIGN value that holds the legionella floor at the design peak:

      P_backup = max(MIN_BACKUP_KW, BACKUP_MARGIN · P_design + UA · (T_min − T_ambient))
      P_design = max over the 24 hours of Σ_d hourlyKW_d[h] · (largest weekday × season factor)_d
                 · (design day factor)_d · ((40 − (T̄ − A)) / (40 − T̄) for hot water, else 1)

  i.e. the highest hour of the mean day, each demand on its heaviest designed day (draw.DayFactorModel.
  design_factor: 5× for hot water, the cap of its heavy days) and hot water at the coldest inlet of the
  year, with a 10 % margin plus the standing loss at the floor. The benchmark (simulate.build_scenario)
  raises it to BACKUP_MARGIN × the scenario's highest per-step demand + the same loss if that is more
  (never lowers it), so minutes below the floor never come from an undersized burner;
- standing losses: ErP class C tank (tank.standing_loss_ua_kw_per_k).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import overload

import numpy as np
import yaml

from heatsched.models import (
    HEATSITE_KIND,
    THERMALDEMAND_KIND,
    DemandKind,
    HeatSite,
    HeatSiteSpec,
    SpecError,
    ThermalDemand,
    parse_manifest,
)
from heatsched.placement.model import SiteView, Tank
from heatsched.thermal import Reading, site_view
from heatsched.twin.draw import (
    INLET_SWING_K,
    DemandSpec,
    draw_heat_factor,
    inlet_on,
    inlet_series,
)
from heatsched.twin.tank import TankParams

BACKUP_MARGIN = 1.1  # burner power over the design (or scenario) peak demand
MIN_BACKUP_KW = 5.0
KINDS = (HEATSITE_KIND, THERMALDEMAND_KIND)


class SiteConfigError(ValueError):
    """A manifest the twin cannot use; the message names the file, object and field."""


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """A HeatSite, its simulated demands and the tank parameters derived from both."""

    name: str
    spec: HeatSiteSpec
    demands: tuple[DemandSpec, ...]
    tank: TankParams
    inlet_swing_k: float = INLET_SWING_K  # A of the seasonal inlet (draw.inlet_celsius)

    @classmethod
    def build(
        cls, name: str, spec: HeatSiteSpec, demands: Iterable[DemandSpec] = (), inlet_swing_k: float = INLET_SWING_K
    ) -> SiteConfig:
        demands = tuple(sorted(demands, key=lambda d: d.name))
        t = spec.tank
        tank = TankParams(
            volume_l=t.volume_litres,
            min_c=t.min_celsius,
            target_c=t.target_celsius,
            max_c=spec.server_tank().max_c,  # min(maxCelsius, heatRecovery.supplyCelsius)
            inlet_c=t.cold_inlet_celsius,
            efficiency=spec.heat_recovery.efficiency,
            backup_kw=0.0,  # sized below, once UA is known
        )
        peak = design_peak_kw(demands, t.cold_inlet_celsius, inlet_swing_k)
        tank = replace(tank, backup_kw=backup_kw_for(peak, tank))
        return cls(name, spec, demands, tank, inlet_swing_k)

    @property
    def country(self) -> str:
        return self.spec.country

    @property
    def watts_per_cpu(self) -> float:
        return self.spec.power.watts_per_cpu

    def idle_kw(self, nodes: int) -> float:
        return self.spec.power.idle_watts_per_node * nodes / 1000.0

    def selects(self, node_name: str, labels: Mapping[str, str]) -> bool:
        """Node membership as the HeatSite defines it: listed by name, or matched by the node selector."""
        return self.spec.selects(node_name, labels)

    def mean_demand_kw(self) -> float:
        """Mean over a week and the four seasons, at the mean inlet (the seasonal inlet averages out)."""
        return sum(d.mean_kw() for d in self.demands)

    def inlet_c(self, when: datetime | date) -> float:
        """Cold-inlet temperature (°C) on the calendar day of `when` (draw.inlet_celsius)."""
        return inlet_on(self.tank.inlet_c, when, self.inlet_swing_k)

    def inlet_series(self, start: datetime, steps: int, step_s: float) -> np.ndarray:
        """Cold inlet (°C) at each step from `start`, one value per calendar day."""
        return inlet_series(self.tank.inlet_c, start, steps, step_s, self.inlet_swing_k)

    @overload
    def draw_heat_factor(self, inlet_c: np.ndarray) -> np.ndarray: ...
    @overload
    def draw_heat_factor(self, inlet_c: float) -> float: ...
    def draw_heat_factor(self, inlet_c: float | np.ndarray) -> float | np.ndarray:
        """Heat of a hot-water draw at `inlet_c` relative to its profile kW: (40 − T_in) / (40 − T̄)."""
        return draw_heat_factor(inlet_c, self.tank.inlet_c)

    def with_backup_kw(self, backup_kw: float) -> SiteConfig:
        """The same site with another backup burner power (kW)."""
        return replace(self, tank=replace(self.tank, backup_kw=backup_kw))

    def loop_share(self) -> float | None:
        """Recirculation-loop heat / (loop + hot-water heat), by mean energy; None without both kinds."""
        loop = sum(d.mean_kw() for d in self.demands if d.kind is DemandKind.RECIRCULATION_LOOP)
        dhw = sum(d.mean_kw() for d in self.demands if d.kind is DemandKind.DOMESTIC_HOT_WATER)
        return loop / (loop + dhw) if loop > 0 and dhw > 0 else None

    def with_loop_share(self, share: float) -> SiteConfig:
        """The site with its loop profiles rescaled so that loop / (loop + hot water) = share.

        Loop losses of collective hot-water systems are commonly 35–60 % of the hot-water heat (project
        brief); the manifests derive theirs from pipe length instead. Scaling keeps each loop's shape and
        season factors: hourlyKW × share/(1 − share) · DHW_mean / loop_mean. Sites without both kinds are
        returned unchanged.
        """
        if not 0 < share < 1:
            raise ValueError(f"loop share must be in (0, 1), got {share}")
        current = self.loop_share()
        if current is None:
            return self
        factor = share / (1 - share) * (1 - current) / current
        def scaled(d: DemandSpec) -> DemandSpec:
            hourly = [v * factor for v in d.profile.hourly_kw]
            return DemandSpec(d.name, d.kind, d.profile.model_copy(update={"hourly_kw": hourly}))

        demands = [scaled(d) if d.kind is DemandKind.RECIRCULATION_LOOP else d for d in self.demands]
        return SiteConfig.build(self.name, self.spec, demands, self.inlet_swing_k)

    def view(self, temperature_c: float, now: datetime, demand_kw: float, it_load_kw: float) -> SiteView:
        """What the operator would hand the placement core for a fresh reading of this tank (thermal.site_view),
        without the state reason text (the benchmark builds millions and reads none)."""
        return site_view(self.spec, self.name, Reading(temperature_c, now), now, demand_kw, it_load_kw,
                         tank=_server_tank(self.spec), explain=False)  # the benchmark reads no reasons


_SERVER_TANKS: dict[int, tuple[HeatSiteSpec, Tank]] = {}


def _server_tank(spec: HeatSiteSpec) -> Tank:
    """spec.server_tank(), once per spec object (the benchmark builds a view per site and step)."""
    hit = _SERVER_TANKS.get(id(spec))
    if hit is None or hit[0] is not spec:
        if len(_SERVER_TANKS) > 256:
            _SERVER_TANKS.clear()
        hit = _SERVER_TANKS[id(spec)] = (spec, spec.server_tank())
    return hit[1]


def peak_demand_kw(demands: Iterable[DemandSpec]) -> float:
    """Highest hourly demand of a mean day, all demands summed, each at its largest weekday × season factor."""
    hourly = np.zeros(24)
    for d in demands:
        hourly += np.asarray(d.profile.hourly_kw) * d.peak_factor()
    return float(hourly.max())


def design_peak_kw(demands: Iterable[DemandSpec], mean_inlet_c: float, inlet_swing_k: float = INLET_SWING_K) -> float:
    """The design peak (module docstring): the highest hour of the mean day, each demand at its largest
    weekday × season factor and its design day factor, hot water heated from the coldest inlet T̄ − A."""
    coldest = draw_heat_factor(mean_inlet_c - inlet_swing_k, mean_inlet_c)
    hourly = np.zeros(24)
    for d in demands:
        factor = d.peak_factor() * d.day_variation.design_factor * (coldest if d.is_draw else 1.0)
        hourly += np.asarray(d.profile.hourly_kw) * factor
    return float(hourly.max())


def backup_kw_for(peak_kw: float, tank: TankParams) -> float:
    """Burner power that holds the floor against `peak_kw` of demand: BACKUP_MARGIN · peak + UA · (T_min − T_amb),
    at least MIN_BACKUP_KW."""
    assert tank.ua_kw_per_k is not None  # TankParams.__post_init__ fills it in
    floor_loss_kw = tank.ua_kw_per_k * (tank.min_c - tank.ambient_c)
    return max(MIN_BACKUP_KW, BACKUP_MARGIN * peak_kw + floor_loss_kw)


def load_sites(paths: Iterable[str | Path]) -> list[SiteConfig]:
    """Read manifests (files, or directories meaning their *.yaml files); return the sites sorted by name."""
    paths = list(paths)
    objects: list[HeatSite | ThermalDemand] = []
    for path in _expand(paths):
        try:
            docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError) as exc:
            raise SiteConfigError(f"{path}: cannot read YAML: {exc}") from None
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") in KINDS:  # other objects (pods, namespaces) are not ours
                try:
                    objects.append(parse_manifest(doc))
                except SpecError as exc:
                    raise SiteConfigError(f"{path}: {exc}") from None
    sites = site_configs(objects)
    if not sites:
        raise SiteConfigError(f"no HeatSite found in {', '.join(map(str, paths)) or 'nothing'}")
    return sites


def _expand(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted([*p.glob("*.yaml"), *p.glob("*.yml")]))
        elif p.exists():
            out.append(p)
        else:
            raise SiteConfigError(f"{p}: no such file or directory")
    return out


def site_configs(objects: Iterable[HeatSite | ThermalDemand]) -> list[SiteConfig]:
    """The one function that turns parsed manifests (heatsched.models) into twin sites.

    ThermalDemands with only a liveQuery have no profile to simulate and are skipped; a profile whose
    siteRef names no HeatSite among `objects` is an error (a demand would silently vanish).
    """
    heat_sites = [o for o in objects if isinstance(o, HeatSite)]
    names = [hs.name for hs in heat_sites]
    if twice := sorted({n for n in names if names.count(n) > 1}):
        raise SiteConfigError(f"HeatSite defined more than once: {', '.join(twice)}")
    demands: dict[str, list[DemandSpec]] = {}
    for o in objects:
        if isinstance(o, ThermalDemand) and o.spec.profile is not None:
            demands.setdefault(o.spec.site_ref, []).append(DemandSpec(o.name, o.spec.kind, o.spec.profile))
    sites = [SiteConfig.build(hs.name, hs.spec, demands.pop(hs.name, ())) for hs in heat_sites]
    if demands:
        orphans = ", ".join(f"{d.name} -> {site}" for site, ds in demands.items() for d in ds)
        raise SiteConfigError(f"ThermalDemand siteRef names no HeatSite in the files given: {orphans}")
    return sorted(sites, key=lambda s: s.name)
