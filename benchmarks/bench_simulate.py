"""Time `heatsched simulate`: 28 days of the example sites at 1-minute steps, per policy, and the LP bounds.

Why it exists: the benchmark must stay fast enough to run on every change (goals: < 30 s for 28 days with
all policies, < 60 s for the LP), and the heat-aware policies call the placement core once per job (and the
fuel plan once per site and step), so their cost is watched.

    .venv/bin/python benchmarks/bench_simulate.py [--sites examples] [--seed 1] [--days 28] [--repeat 1] [--json FILE]

Prints one line per policy (best of --repeat runs) and the two bounds, and writes the same as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from heatsched.twin.bound import lp_bound
from heatsched.twin.policies import POLICY_NAMES
from heatsched.twin.simulate import SimConfig, build_scenario, fuel_bound_limits, run_policy
from heatsched.twin.sites import load_sites

GOAL_S = 30.0
LP_GOAL_S = 60.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", nargs="+", default=["examples"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=float, default=28.0)
    parser.add_argument("--repeat", type=int, default=1, help="runs per policy; the best time is kept")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/simulate.json"))
    args = parser.parse_args(argv)

    sites = load_sites(args.sites)
    config = SimConfig(days=args.days, step_s=60, seed=args.seed)
    began = time.perf_counter()
    scenario = build_scenario(sites, config)
    scenario_s = time.perf_counter() - began
    rows = {}
    for name in POLICY_NAMES:
        times = []
        for _ in range(args.repeat):
            result = run_policy(scenario, name)
            times.append(result.seconds)
        rows[name] = {"best_s": min(times), "jobs": len(scenario.jobs), "coverage": result.metrics["coverage"],
                      "core_calls": result.metrics.get("core_calls")}
    total = scenario_s + sum(r["best_s"] for r in rows.values())
    allowed, cores = fuel_bound_limits(scenario)
    lp = {"no_fuel": lp_bound(scenario, with_fuel=False),
          "with_fuel": lp_bound(scenario, with_fuel=True, fuel_allowed=allowed, fuel_max_cores=cores)}
    lp_s = sum(b.seconds for b in lp.values())
    print(f"{len(sites)} sites, {config.days:g} days, {config.steps} steps of 60 s, {len(scenario.jobs)} jobs")
    print(f"{'scenario':<16} {scenario_s:6.2f} s")
    for name, row in rows.items():
        per_job = row["best_s"] / max(1, row["jobs"]) * 1e6
        print(f"{name:<16} {row['best_s']:6.2f} s  ({per_job:5.1f} µs per job, steps included)")
    verdict = "meets" if total < GOAL_S else "MISSES"
    print(f"{'total':<16} {total:6.2f} s  ({verdict} the {GOAL_S:g} s goal)")
    for name, b in lp.items():
        print(f"{'LP ' + name:<16} {b.seconds:6.2f} s  (gas {b.gas_corrected_kwh:.0f} kWh)")
    print(f"{'LP total':<16} {lp_s:6.2f} s  ({'meets' if lp_s < LP_GOAL_S else 'MISSES'} the {LP_GOAL_S:g} s goal)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "sites": len(sites), "days": config.days, "step_s": config.step_s, "seed": args.seed,
        "jobs": len(scenario.jobs), "scenario_s": scenario_s, "policies": rows, "total_s": total,
        "goal_s": GOAL_S, "lp_s": {k: b.seconds for k, b in lp.items()}, "lp_goal_s": LP_GOAL_S,
        "python": sys.version.split()[0], "machine": platform.machine(),
    }, indent=2) + "\n", encoding="utf-8")
    return 0 if total < GOAL_S and lp_s < LP_GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
