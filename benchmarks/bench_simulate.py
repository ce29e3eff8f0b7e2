"""Time `heatsched simulate`: one week of the example sites at 1-minute steps, per policy and in total.

Why it exists: the benchmark must stay fast enough to run on every change (goal: < 10 s for the week with
all policies), and the heat-aware policy calls the placement core once per job, so its cost is watched.

    .venv/bin/python benchmarks/bench_simulate.py [--sites examples] [--seed 1] [--repeat 3] [--json FILE]

Prints one line per policy (best of --repeat runs) and writes the same as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from heatsched.twin.policies import POLICY_NAMES
from heatsched.twin.simulate import SimConfig, build_scenario, run_policy
from heatsched.twin.sites import load_sites

GOAL_S = 10.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", nargs="+", default=["examples"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per policy; the best time is kept")
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
    print(f"{len(sites)} sites, {config.days:g} days, {config.steps} steps of 60 s, {len(scenario.jobs)} jobs")
    print(f"{'scenario':<12} {scenario_s:6.2f} s")
    for name, row in rows.items():
        per_job = row["best_s"] / max(1, row["jobs"]) * 1e6
        print(f"{name:<12} {row['best_s']:6.2f} s  ({per_job:5.1f} µs per job, steps included)")
    verdict = "meets" if total < GOAL_S else "MISSES"
    print(f"{'total':<12} {total:6.2f} s  ({verdict} the {GOAL_S:g} s goal)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "sites": len(sites), "days": config.days, "step_s": config.step_s, "seed": args.seed,
        "jobs": len(scenario.jobs), "scenario_s": scenario_s, "policies": rows, "total_s": total,
        "goal_s": GOAL_S, "python": sys.version.split()[0], "machine": platform.machine(),
    }, indent=2) + "\n", encoding="utf-8")
    return 0 if total < GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
