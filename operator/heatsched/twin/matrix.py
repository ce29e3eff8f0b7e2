"""The fixed scenario matrix of the policy benchmark, and the goals it is judged by.

Why it exists: one seed and one season prove little. The matrix replays every policy and both LP bounds on
seeds × seasons × utilisations × cluster sizings (default 5 × 3 × 3 × 2 = 90 scenarios of 28 days), in
worker processes, and reports each goal of docs/twin.md as met or missed, with the worst scenario.

Every scenario is independent (its own trace, demand and bounds), so cells run in parallel; a cell's row is
plain JSON (no arrays) so it crosses the process boundary cheaply.
"""

from __future__ import annotations

import math
import multiprocessing
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

SEASON_STARTS = {  # Mondays, so every cell starts on the same weekday
    "winter": datetime(2025, 1, 6), "spring": datetime(2025, 3, 3), "summer": datetime(2025, 7, 7),
    "autumn": datetime(2025, 10, 6),
}
SEEDS = (1, 2, 3, 4, 5)
SEASONS = ("winter", "spring", "summer")
UTILIZATIONS = (0.4, 0.6, 0.8)
SIZINGS = (1.0, 1.5)
HEAT_WAIT_GOAL_MIN = 10.0


@dataclass(frozen=True)
class Cell:
    seed: int
    season: str
    utilization: float
    sizing: float

    @property
    def label(self) -> str:
        return f"{self.season} seed {self.seed} util {self.utilization:g} sizing {self.sizing:g}"


def cells(seeds: Iterable[int] = SEEDS, seasons: Iterable[str] = SEASONS, utilizations: Iterable[float] = UTILIZATIONS,
          sizings: Iterable[float] = SIZINGS) -> list[Cell]:
    out = [Cell(seed, season, u, z) for season in seasons for seed in seeds for u in utilizations for z in sizings]
    unknown = {c.season for c in out} - set(SEASON_STARTS)
    if unknown:
        raise ValueError(f"unknown seasons {sorted(unknown)}; known: {', '.join(SEASON_STARTS)}")
    return out


@dataclass(frozen=True)
class CellRun:
    """What a worker needs to run one cell."""

    sites: tuple[str, ...]
    loop_share: float | None
    cell: Cell
    days: float
    step_s: float
    policies: tuple[str, ...]
    max_heat_wait_s: float


def run_cell(job: CellRun) -> dict[str, Any]:
    """One scenario: every policy and both bounds, as a compact row."""
    from heatsched.twin.simulate import SimConfig, simulate
    from heatsched.twin.sites import load_sites
    from heatsched.twin.trace import TraceParams

    sites = load_sites(job.sites)
    if job.loop_share is not None:
        sites = [s.with_loop_share(job.loop_share) for s in sites]
    c = job.cell
    config = SimConfig(days=job.days, step_s=job.step_s, seed=c.seed, start=SEASON_STARTS[c.season],
                       sizing=c.sizing, trace=TraceParams(utilization=c.utilization))
    report = simulate(sites, config, job.policies, max_heat_wait_s=job.max_heat_wait_s)
    policies = {}
    for r in report.results:
        m = r.metrics
        policies[r.policy] = {
            "gas_corrected_kwh": m["gas_corrected_kwh"], "gas_vs_lp": report.ratio(r), "fuel_kwh": m["fuel_kwh"],
            "co2_kg": m["co2_kg"], "co2_kg_by_site": {k: v["co2_kg"] for k, v in r.sites.items()},
            "gas_kwh_by_site": {k: v["gas_corrected_kwh"] for k, v in r.sites.items()},
            "co2_kg_by_country": m["co2_kg_by_country"], "heat_wait_max_min": m.get("heat_wait_max_min", 0.0),
            "wait_p95_min": m["wait_p95_min"], "unplaced": m["jobs_queued_at_end"],
            "starved": m["jobs_starved_at_end"],
            "violations": m["residency_violations"], "minutes_below_floor": m["minutes_below_floor"],
            "dumped_kwh": m["heat_dumped_kwh"], "seconds": m["seconds"],
        }
    lp = {k: None if b is None else {"gas_corrected_kwh": b.gas_corrected_kwh, "seconds": b.seconds,
                                     "max_delay_h": b.max_delay_h}
          for k, b in (("no_fuel", report.lp), ("with_fuel", report.lp_fuel))}
    return {"cell": c.__dict__, "label": c.label, "sites": [s.name for s in report.scenario.sites],
            "jobs": len(report.scenario.jobs), "policies": policies, "lp": lp, "seconds": report.seconds}


def run_matrix(jobs: Sequence[CellRun], workers: int = 2, on_row: Callable[[dict[str, Any]], None] | None = None
               ) -> list[dict[str, Any]]:
    """Run every cell (in `workers` processes; 1 = in this process); rows in the order given."""
    rows: list[dict[str, Any] | None] = [None] * len(jobs)
    if workers <= 1:
        for i, job in enumerate(jobs):
            rows[i] = run_cell(job)
            if on_row:
                on_row(rows[i])  # type: ignore[arg-type]
    else:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for i, row in pool.imap_unordered(_indexed, list(enumerate(jobs))):
                rows[i] = row
                if on_row:
                    on_row(row)
    return [r for r in rows if r is not None]


def _indexed(item: tuple[int, CellRun]) -> tuple[int, dict[str, Any]]:
    return item[0], run_cell(item[1])


def goals(rows: Sequence[dict[str, Any]], step_s: float) -> list[tuple[str, bool, str]]:
    """(goal, met, evidence) for each goal of the issue, over the rows given."""
    out: list[tuple[str, bool, str]] = []

    def worst(policy: str, key: str) -> tuple[float, str]:
        vals = [(r["policies"][policy][key], r["label"]) for r in rows if policy in r["policies"]]
        vals = [(v, lbl) for v, lbl in vals if v is not None]  # None: the bound is under 1 kWh (no ratio)
        return max(vals, default=(math.nan, "-"))

    heat = max(((p["heat_wait_max_min"], r["label"]) for r in rows for p in r["policies"].values()),
               default=(0.0, "-"))
    limit = HEAT_WAIT_GOAL_MIN + step_s / 60
    out.append((f"no job waits more than {HEAT_WAIT_GOAL_MIN:g} min because of heat (+1 step)",
                heat[0] <= limit + 1e-9, f"max {heat[0]:.1f} min ({heat[1]})"))
    unplaced = sum(p["unplaced"] for r in rows for p in r["policies"].values())
    starved = sum(p["starved"] for r in rows for p in r["policies"].values())
    out.append(("0 unplaced at the end (queued > 1 h when the run ends)", starved == 0,
                f"{starved} starved; {unplaced} job(s) queued at the very end in all, all policies and cells"))
    violations = sum(p["violations"] for r in rows for p in r["policies"].values())
    out.append(("0 residency violations", violations == 0, f"{violations}"))
    if any("heat-aware" in r["policies"] for r in rows):
        ratio, where = worst("heat-aware", "gas_vs_lp")
        out.append(("heat-aware without fuel: gas <= 1.05 x LP bound, every scenario", bool(ratio <= 1.05),
                    f"worst {ratio:.3f} ({where})"))
        summer = [g for r in rows if r["cell"]["season"] == "summer"
                  if (g := _gain(r, "heat-aware", "spreading")) is not None]
        if summer:
            out.append(("summer: heat-aware >= 8 % less gas than spreading", min(summer) >= 0.08,
                        f"min {min(summer):+.1%}, mean {sum(summer) / len(summer):+.1%} over {len(summer)} cells"))
    if any("heat-aware+fuel" in r["policies"] for r in rows):
        ratio, where = worst("heat-aware+fuel", "gas_vs_lp")
        out.append(("with fuel: gas <= 1.10 x LP-with-fuel bound (where that bound is >= 1 kWh)", bool(ratio <= 1.10),
                    f"worst {ratio:.3f} ({where})"))
        spring = [g for r in rows if r["cell"]["season"] == "spring" and len(r["sites"]) == 4
                  if (g := _gain(r, "heat-aware+fuel", "spreading")) is not None]
        if spring:
            out.append(("spring, 4 sites: fuel >= 50 % less gas than spreading without fuel", min(spring) >= 0.5,
                        f"min {min(spring):+.1%} over {len(spring)} cells"))
        worse = [(r["label"], site) for r in rows if "heat-aware" in r["policies"]
                 for site, co2 in r["policies"]["heat-aware+fuel"]["co2_kg_by_site"].items()
                 if co2 > r["policies"]["heat-aware"]["co2_kg_by_site"][site] * 1.001 + 0.5]
        out.append(("CO2 with fuel never above the no-fuel run at any site", not worse,
                    f"{len(worse)} (cell, site) pairs above" + (f", e.g. {worse[0]}" if worse else "")))
    sim = max((sum(p["seconds"] for p in r["policies"].values()), r["label"]) for r in rows)
    lp = max(((r["lp"]["no_fuel"] or {}).get("seconds", 0) + (r["lp"]["with_fuel"] or {}).get("seconds", 0),
              r["label"]) for r in rows)
    out.append(("all policies < 30 s per scenario (28 days x 4 sites x 1-min steps)", sim[0] < 30,
                f"max {sim[0]:.1f} s ({sim[1]})"))
    out.append(("the LP < 60 s", lp[0] < 60, f"max {lp[0]:.1f} s, both bounds ({lp[1]})"))
    return out


def _gain(row: dict[str, Any], policy: str, base: str) -> float | None:
    p, b = row["policies"].get(policy), row["policies"].get(base)
    if p is None or b is None or b["gas_corrected_kwh"] <= 1e-6:
        return None
    gain: float = 1 - p["gas_corrected_kwh"] / b["gas_corrected_kwh"]
    return gain


def summary(rows: Sequence[dict[str, Any]], step_s: float) -> str:
    """Mean over seeds per (season, utilisation, sizing): each policy's gas against its bound, the gain of
    heat-aware and of fuel over spreading, then the goals with the worst scenario as evidence."""
    names = list(rows[0]["policies"]) if rows else []
    groups: dict[tuple[str, float, float], list[dict[str, Any]]] = {}
    for r in rows:
        c = r["cell"]
        groups.setdefault((c["season"], c["utilization"], c["sizing"]), []).append(r)
    head = (f"{'season':<7} {'util':>4} {'size':>4} {'seeds':>5} {'LP kWh':>7} {'LP+fuel':>7} "
            + " ".join(f"{n[:15]:>15}" for n in names) + f" {'ha vs spr':>9} {'fuel vs spr':>11}")
    lines = [head, "-" * len(head)]
    for (season, util, size), group in groups.items():
        def mean(values: Iterable[float | None]) -> float:
            vals = [v for v in values if v is not None and math.isfinite(v)]
            return sum(vals) / len(vals) if vals else math.nan
        lp = mean((g["lp"]["no_fuel"] or {}).get("gas_corrected_kwh") for g in group)
        lpf = mean((g["lp"]["with_fuel"] or {}).get("gas_corrected_kwh") for g in group)
        ratios = [f"{mean(g['policies'][n]['gas_vs_lp'] for g in group):15.3f}" for n in names]
        ha = mean(_gain(g, "heat-aware", "spreading") for g in group)
        fuel = mean(_gain(g, "heat-aware+fuel", "spreading") for g in group)
        lines.append(f"{season:<7} {util:4g} {size:4g} {len(group):5d} {lp:7.0f} {lpf:7.0f} " + " ".join(ratios)
                     + f" {ha:+9.1%} {fuel:+11.1%}")
    lines.append("policy columns: gas corrected for stored heat ÷ its LP bound (fuel policies: the bound with fuel), "
                 "mean over seeds; last columns: less gas than spreading without fuel")
    lines.append("goals:")
    for goal, met, evidence in goals(rows, step_s):
        lines.append(f"  [{'met' if met else 'MISSED'}] {goal}: {evidence}")
    return "\n".join(lines)


def progress_line(done: int, total: int, began: float) -> Callable[[dict[str, Any]], None]:
    state = {"done": done}

    def on_row(row: dict[str, Any]) -> None:
        state["done"] += 1
        elapsed = time.monotonic() - began
        eta = elapsed / state["done"] * (total - state["done"])
        sys.stderr.write(f"[{state['done']:3d}/{total}] {row['label']:<40} {row['seconds']:5.1f} s  "
                         f"(elapsed {elapsed / 60:4.1f} min, ~{eta / 60:4.1f} min left)\n")
        sys.stderr.flush()
    return on_row
