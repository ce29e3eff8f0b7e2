"""Site manifests (HeatSite + ThermalDemand YAML) -> the twin's site configurations.

Why it exists: the twin must simulate exactly the sites the operator manages, so it reads the same manifests
(examples/*.yaml or --sites files), parsed and validated by heatsched.models; `site_configs` is the ONE
place that maps manifest fields to the twin; everything else in the twin uses SiteConfig.

Two numbers the manifests do not carry are derived here, with the rule documented:

- backup burner power: BACKUP_SIZING × the highest mean-day hourly demand (all demands of the site summed),
  at least MIN_BACKUP_KW. A burner sized on the peak hour keeps the floor on typical days; heavy days
  (see draw.py) can exceed it and show up as minutes below the floor.
- standing losses: ErP class C tank (tank.standing_loss_ua_kw_per_k).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

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
from heatsched.placement.model import SiteView
from heatsched.thermal import Reading, site_view
from heatsched.twin.draw import DemandSpec
from heatsched.twin.tank import TankParams

BACKUP_SIZING = 1.5
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

    @classmethod
    def build(cls, name: str, spec: HeatSiteSpec, demands: Iterable[DemandSpec] = ()) -> SiteConfig:
        demands = tuple(sorted(demands, key=lambda d: d.name))
        t = spec.tank
        tank = TankParams(
            volume_l=t.volume_litres,
            min_c=t.min_celsius,
            target_c=t.target_celsius,
            max_c=t.max_celsius,
            inlet_c=t.cold_inlet_celsius,
            efficiency=spec.heat_recovery.efficiency,
            backup_kw=max(MIN_BACKUP_KW, BACKUP_SIZING * peak_demand_kw(demands)),
        )
        return cls(name, spec, demands, tank)

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
        return sum(d.mean_kw() for d in self.demands)

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
        return SiteConfig.build(self.name, self.spec, demands)

    def view(self, temperature_c: float, now: datetime, demand_kw: float, it_load_kw: float) -> SiteView:
        """What the operator would hand the placement core for a fresh reading of this tank (thermal.site_view)."""
        return site_view(self.spec, self.name, Reading(temperature_c, now), now, demand_kw, it_load_kw)


def peak_demand_kw(demands: Iterable[DemandSpec]) -> float:
    """Highest hourly demand of a mean day, all demands summed, each at its largest weekday × season factor."""
    hourly = np.zeros(24)
    for d in demands:
        hourly += np.asarray(d.profile.hourly_kw) * d.peak_factor()
    return float(hourly.max())


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
