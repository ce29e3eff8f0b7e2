"""The policy benchmark: same trace for all, residency held, the core in the loop, outputs written."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from heatsched.cli import main
from heatsched.thermal import profile_kw
from heatsched.twin.draw import DayFactorModel
from heatsched.twin.policies import POLICY_NAMES, Cluster, Env, HeatAware, Policy
from heatsched.twin.simulate import SimConfig, build_scenario, run_policy, simulate
from heatsched.twin.sites import backup_kw_for, load_sites
from heatsched.twin.tank import litres40_to_kwh
from heatsched.twin.trace import TraceParams, generate

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SMALL = SimConfig(days=1, step_s=120, seed=3)
WINTER = SimConfig(days=7, seed=1, start=datetime(2025, 1, 6))  # a Monday: coldest inlet, winter factors


@pytest.fixture(scope="module")
def sites():
    return load_sites([EXAMPLES])


@pytest.fixture(scope="module")
def report(sites):
    return simulate(sites, SMALL)


def test_no_policy_breaks_residency_and_every_policy_sees_every_job(report):
    jobs = len(report.scenario.jobs)
    assert jobs > 100
    assert [r.policy for r in report.results] == list(POLICY_NAMES)
    for r in report.results:
        assert r.metrics["residency_violations"] == 0, r.policy
        m = r.metrics
        assert m["jobs_placed"] + m["jobs_queued_at_end"] + m["jobs_after_last_step"] == jobs, r.policy
        assert m["jobs_after_last_step"] <= 3, r.policy  # only what arrived during the very last step
    assert report.results[0].metrics["core_calls"] > 0  # heat-aware asked the placement core


def test_the_scenario_depends_only_on_the_seed(sites):
    a, b = build_scenario(sites, SMALL), build_scenario(sites, SMALL)
    other = build_scenario(sites, SimConfig(days=1, step_s=120, seed=4))
    assert [(j.arrival_s, j.cpu, j.residency) for j in a.jobs] == [(j.arrival_s, j.cpu, j.residency) for j in b.jobs]
    assert np.array_equal(a.demand_kw, b.demand_kw)
    assert not np.array_equal(a.demand_kw, other.demand_kw)


def test_residency_violations_are_counted_independently_of_the_policy(sites):
    class IgnoresResidency(Policy):
        def choose(self, job, env):
            for s in range(len(env.cluster.sites)):
                n = env.cluster.freest(s, job.cpu)
                if n is not None:
                    return s, n
            return None

    scenario = build_scenario(sites, SMALL)
    result = run_policy(scenario, "careless", factory=lambda sc, cl: IgnoresResidency())
    assert result.metrics["residency_violations"] > 0


def test_heat_aware_lets_the_core_keep_jobs_off_a_saturated_tank(sites):
    scenario = build_scenario(sites, SMALL)
    cluster = Cluster(scenario.sites, [2] * len(scenario.sites), 64)
    policy = HeatAware(scenario.sites, cluster)
    names = [s.name for s in scenario.sites]
    hot = names.index("metz-hospital")
    temps = [s.tank.min_c for s in scenario.sites]
    temps[hot] = scenario.sites[hot].tank.max_c  # Overheated
    env = Env(k=0, now=datetime(2025, 3, 3, 8), cluster=cluster, temperature_c=temps,
              demand_kw=[5.0] * len(names), it_kw=[0.0] * len(names), step_s=60)
    policy.start_step(env)
    job = next(j for j in scenario.jobs if j.residency is None)
    fr_job = next(j for j in scenario.jobs if j.residency == "FR")
    assert policy.choose(job, env)[0] != hot
    assert names[policy.choose(fr_job, env)[0]] in {"montlucon-residence", "sarreguemines-factory"}


def test_trace_matches_its_utilization_and_splits_residency_by_capacity():
    params = TraceParams(utilization=0.5)
    jobs = generate(params, datetime(2025, 3, 3), 7 * 86400, {"FR": 900, "DE": 100}, seed=11)
    busy = sum(j.cpu * j.duration_s for j in jobs) / (1000 * 7 * 86400)
    assert busy == pytest.approx(0.5, rel=0.1)
    restricted = [j for j in jobs if j.residency]
    assert len(restricted) / len(jobs) == pytest.approx(0.7, abs=0.03)
    assert sum(j.residency == "DE" for j in restricted) / len(restricted) == pytest.approx(0.1, abs=0.03)


def test_day_factors_average_one_and_respect_the_cap():
    model = DayFactorModel(sigma=0.2, heavy_prob=0.05, heavy_low=1.5, heavy_high=3.0, cap=2.5)
    factors = model.draw(np.random.default_rng(0), 50_000)
    assert factors.max() <= 2.5
    assert factors.mean() == pytest.approx(1.0, abs=0.02)


def test_demand_series_follows_the_manifest_profile(sites):
    site = next(s for s in sites if s.name == "frankfurt-office")
    demand = next(d for d in site.demands if d.kind.value == "SpaceHeating")
    start = datetime(2025, 1, 4, 22)  # a Saturday evening: crosses into Sunday
    series = demand.series(start, steps=6 * 60, step_s=60, day_factors=np.array([1.0, 2.0]))
    for minute in (0, 90, 125, 300):
        when = start + timedelta(minutes=minute)
        factor = 1.0 if when.day == 4 else 2.0
        assert series[minute] == pytest.approx(profile_kw(demand.profile, when) * factor)


def test_scenario_demand_is_the_draw_heat_at_the_days_inlet(sites):
    scenario = build_scenario(sites, SimConfig(days=2, step_s=600, seed=5, start=datetime(2025, 1, 6)))
    i = [s.name for s in scenario.sites].index("montlucon-residence")
    inlet = scenario.inlet_c[i]
    assert inlet.max() < 10  # January mains water, below the 12 °C annual mean
    h = scenario.config.step_s / 3600
    draw_heat_kw = np.array([litres40_to_kwh(v, t) for v, t in zip(scenario.draw_l40[i], inlet)]) / h
    assert scenario.demand_kw[i] == pytest.approx(draw_heat_kw + scenario.heat_kw[i])
    assert draw_heat_kw.sum() > 1.1 * scenario.draw_l40[i].sum() * litres40_to_kwh(1, 12) / h  # colder: more heat


def test_backup_sized_by_build_scenario_keeps_a_winter_week_above_the_floor(sites):
    scenario = build_scenario(sites, WINTER)
    for i, site in enumerate(scenario.sites):
        assert site.tank.backup_kw >= backup_kw_for(scenario.demand_kw[i].max(), site.tank)
    result = run_policy(scenario, "spreading")
    assert result.metrics["minutes_below_floor"] == 0
    assert result.metrics["backup_kwh"] > 0  # the burner did work: the floor was held, not untested


def test_build_scenario_raises_an_undersized_backup_which_alone_would_leave_the_tank_cold(sites):
    undersized = [s.with_backup_kw(2.0) for s in sites]
    scenario = build_scenario(undersized, WINTER)
    for i, site in enumerate(scenario.sites):
        assert site.tank.backup_kw == pytest.approx(backup_kw_for(scenario.demand_kw[i].max(), site.tank))
    assert run_policy(scenario, "spreading").metrics["minutes_below_floor"] == 0
    kept_small = replace(scenario, sites=[s.with_backup_kw(2.0) for s in scenario.sites])
    assert run_policy(kept_small, "spreading").metrics["minutes_below_floor"] > 60


def test_example_loop_shares_are_within_the_cited_35_to_60_percent(sites):
    shares = {s.name: s.loop_share() for s in sites if s.loop_share() is not None}
    assert set(shares) == {"montlucon-residence", "metz-hospital"}
    assert all(0.35 <= v <= 0.60 for v in shares.values()), shares
    assert shares["montlucon-residence"] == pytest.approx(0.40, abs=0.01)
    assert shares["metz-hospital"] == pytest.approx(0.45, abs=0.01)


def test_cli_writes_json_and_plots(tmp_path, capsys):
    out = tmp_path / "out.json"
    rc = main(["simulate", "--sites", str(EXAMPLES), "--days", "1", "--step", "300", "--seed", "2",
               "--policies", "heat-aware,heat-aware+fuel,spreading", "--json", str(out),
               "--plots", str(tmp_path / "plots")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "heat-aware vs spreading" in text and "LP bound, no fuel" in text and "LP bound, fuel" in text
    data = json.loads(out.read_text())
    assert set(data["policies"]) == {"heat-aware", "heat-aware+fuel", "spreading"}
    for metrics in data["policies"].values():
        assert {"coverage", "backup_kwh", "gas_corrected_kwh", "gas_vs_lp", "fuel_kwh", "co2_kg_by_country",
                "minutes_below_floor", "heat_dumped_kwh", "residency_violations", "wait_mean_min", "wait_p95_min",
                "sites"} <= set(metrics)
        assert 0 <= metrics["coverage"] <= data["energy_bound"] + 1e-9
        assert metrics["gas_vs_lp"] >= 1 - 1e-6  # the LP is a lower bound
    assert data["policies"]["heat-aware+fuel"]["fuel_kwh"] > 0 and data["policies"]["spreading"]["fuel_kwh"] == 0
    for name in ("temperatures.png", "gas.png", "fuel.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--policies", "fastest"], "unknown policies"),
        (["--nodes", "0"], "nodes per site must be >= 1"),
        (["--step", "7200"], "step must be at most 3600"),
        (["--utilization", "1.5"], "utilization must be in (0, 1)"),
        (["--loop-share", "1.2"], "loop share must be in (0, 1)"),
    ],
)
def test_cli_rejects_bad_flags_with_a_message(argv, message, capsys):
    assert main(["simulate", "--sites", str(EXAMPLES), *argv]) == 2
    assert message in capsys.readouterr().err


# --- heat fuel, the heat wait bound and the matrix -----------------------------------------------------------


@pytest.fixture(scope="module")
def spring_2days(sites):
    return simulate(sites, SimConfig(days=2, seed=1), ("heat-aware", "heat-aware+fuel", "spreading"))


def test_fuel_burns_electricity_only_where_the_guard_allows_and_cuts_gas(spring_2days):
    by = {r.policy: r for r in spring_2days.results}
    fuel, plain = by["heat-aware+fuel"], by["heat-aware"]
    assert fuel.sites["frankfurt-office"]["fuel_kwh"] == 0  # DE grid is dirtier than gas heat
    assert all(fuel.sites[s]["fuel_kwh"] > 0 for s in ("metz-hospital", "montlucon-residence"))
    assert fuel.metrics["gas_corrected_kwh"] < 0.7 * plain.metrics["gas_corrected_kwh"]
    assert spring_2days.lp_fuel.gas_corrected_kwh <= fuel.metrics["gas_corrected_kwh"] + 1e-6
    assert fuel.fuel_kw is not None and float(fuel.fuel_kw.max()) > 0


def test_fuel_never_emits_more_co2_than_the_gas_it_replaces_at_a_site(spring_2days):
    by = {r.policy: r for r in spring_2days.results}
    for site, row in by["heat-aware+fuel"].sites.items():
        assert row["co2_kg"] <= by["heat-aware"].sites[site]["co2_kg"] * 1.001 + 0.5, site


def test_heat_alone_never_holds_a_job_longer_than_the_bound(sites):
    """Tanks of 30 L saturate within minutes: jobs are held off them, and placed anyway once they have waited
    the bound (plus at most one step)."""
    scenario = build_scenario(sites, SimConfig(days=0.5, step_s=60, seed=2, sizing=1.5))
    scenario.sites = [replace(s, tank=replace(s.tank, volume_l=30.0)) for s in scenario.sites]
    for bound_s in (0.0, 300.0):
        r = run_policy(scenario, "heat-aware", max_heat_wait_s=bound_s)
        m = r.metrics
        assert m["heat_held_jobs"] > 0 if bound_s else m["heat_held_jobs"] == 0
        assert m["heat_wait_max_min"] <= bound_s / 60 + 1 + 1e-9
        assert m["residency_violations"] == 0


def test_the_lp_bound_is_never_above_any_policy(spring_2days):
    for r in spring_2days.results:
        assert spring_2days.ratio(r) >= 1 - 1e-6, r.policy


def test_matrix_cells_report_goals_met_or_missed_with_evidence(tmp_path):
    from heatsched.twin.matrix import Cell, CellRun, goals, run_matrix

    jobs = [CellRun((str(EXAMPLES),), None, Cell(seed, "summer", 0.6, 1.0), 0.5, 300.0,
                ("heat-aware", "heat-aware+fuel", "spreading"), 600.0) for seed in (1, 2)]
    rows = run_matrix(jobs, workers=2)
    assert [r["cell"]["seed"] for r in rows] == [1, 2]
    verdicts = {g: (met, evidence) for g, met, evidence in goals(rows, 300.0)}
    assert verdicts["0 residency violations"] == (True, "0")
    assert any(g.startswith("heat-aware without fuel") for g in verdicts)
    assert all(evidence for _, evidence in verdicts.values())
