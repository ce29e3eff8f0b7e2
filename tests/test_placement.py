"""Placement core: residency fails closed, heat fails open, scores are monotone and deterministic."""

from __future__ import annotations

import dataclasses
import math

import pytest
from heatsched.placement.core import (
    NEUTRAL,
    WATER_KWH_PER_LITRE_KELVIN,
    ScoreParams,
    filter_nodes,
    ranked,
    score_by_site,
    score_nodes,
)
from heatsched.placement.model import NodeView, PodRequest, SiteView, Snapshot, Tank, ThermalState
from heatsched.placement.residency import EU_MEMBERS, parse_residency

TANK = Tank(volume_l=1500, min_c=55.0, target_c=60.0, max_c=85.0)


def site(name: str, country: str | None = "FR", t: float | None = 60.0, **kw) -> SiteView:
    kw.setdefault("state", ThermalState.COMFORTABLE)
    kw.setdefault("fresh", True)
    kw.setdefault("absorbable_kw", 10.0)
    kw.setdefault("watts_per_cpu", 12.0)
    kw.setdefault("reading_age_s", 5.0)
    return SiteView(name=name, country=country, tank=TANK, temperature_c=t, **kw)


def snapshot(*sites: SiteView, nodes_per_site: int = 2, extra_nodes=(), pending=None) -> Snapshot:
    nodes = {}
    for s in sites:
        for i in range(nodes_per_site):
            nodes[f"{s.name}-{i}"] = NodeView(f"{s.name}-{i}", site=s.name, country=s.country)
    for n in extra_nodes:
        nodes[n.name] = n
    return Snapshot(sites={s.name: s for s in sites}, nodes=nodes, pending_kw=dict(pending or {}))


def pod(residency: str | None = None, cpu: float = 1.0) -> PodRequest:
    return PodRequest("web-0", "shop", parse_residency(residency) if residency else None, cpu)


# --- filter: residency fails closed ---------------------------------------------------------------


def test_fr_pod_never_lands_on_de_node_even_when_de_is_coldest() -> None:
    snap = snapshot(site("paris", "FR", 84.0), site("berlin", "DE", 40.0, state=ThermalState.COLD))
    result = filter_nodes(pod("FR"), list(snap.nodes), snap)
    assert result.feasible == ["paris-0", "paris-1"]
    assert set(result.unresolvable) == {"berlin-0", "berlin-1"}
    assert result.unresolvable["berlin-0"] == "node in DE, pod residency FR"
    assert result.failed == {}
    # and the DE site is the best by heat, so only the filter keeps the pod away from it
    best = ranked(score_nodes(pod("FR"), list(snap.nodes), snap))[0]
    assert best.site == "berlin"


@pytest.mark.parametrize(
    ("residency", "feasible_sites"),
    [("FR", {"paris"}), ("DE", {"berlin"}), ("FR,DE", {"paris", "berlin"}), ("EU", {"paris", "berlin"}),
     ("CH", {"zurich"}), ("EU,CH", {"paris", "berlin", "zurich"}), (None, {"paris", "berlin", "zurich"})],
)  # fmt: skip
def test_residency_admits_exactly_its_countries(residency, feasible_sites) -> None:
    snap = snapshot(site("paris", "FR"), site("berlin", "DE"), site("zurich", "CH"))
    result = filter_nodes(pod(residency), list(snap.nodes), snap)
    assert {snap.nodes[n].site for n in result.feasible} == feasible_sites
    assert len(result.feasible) + len(result.unresolvable) == len(snap.nodes)


@pytest.mark.parametrize(
    ("node", "needle"),
    [
        (None, "unknown to heatsched"),
        (NodeView("n", site=None, country=None), "no trusted country label"),
        (NodeView("n", site="paris", country=None), "no trusted country label"),
        (NodeView("n", site="paris", country="FR", conflict="claimed by paris and lyon"), "conflict"),
        (NodeView("n", site="paris", country="DE"), "labelled DE but its site paris is in FR"),
    ],
)
def test_unlabelled_node_fails_closed_for_resident_pod(node, needle) -> None:
    snap = snapshot(site("paris", "FR"), extra_nodes=[node] if node else [])
    result = filter_nodes(pod("FR"), ["n"], snap)
    assert result.feasible == []
    assert needle in result.unresolvable["n"]
    assert "residency FR cannot be verified" in result.unresolvable["n"]


@pytest.mark.parametrize(
    "node",
    [
        None,
        NodeView("n"),
        NodeView("n", site="paris", country="FR", conflict="claimed by paris and lyon"),
        NodeView("n", site="gone", country="FR"),
    ],
)
def test_unrestricted_pod_may_use_nodes_heatsched_cannot_vouch_for(node) -> None:
    hot = site("paris", "FR", 86.0, state=ThermalState.OVERHEATED)
    snap = snapshot(hot, nodes_per_site=0, extra_nodes=[node] if node else [])
    result = filter_nodes(pod(None), ["n"], snap)
    assert result.feasible == ["n"]
    assert score_nodes(pod(None), ["n"], snap)[0].score == NEUTRAL


def test_node_on_a_site_missing_from_snapshot_keeps_its_trusted_country() -> None:
    snap = snapshot(extra_nodes=[NodeView("n", site="gone", country="FR")])
    assert filter_nodes(pod("FR"), ["n"], snap).feasible == ["n"]
    assert "n" in filter_nodes(pod("DE"), ["n"], snap).unresolvable


def test_reported_country_disagreeing_with_snapshot_fails_closed() -> None:
    snap = snapshot(site("paris", "FR"), nodes_per_site=1)
    result = filter_nodes(pod("FR"), ["paris-0"], snap, reported_countries={"paris-0": "DE"})
    assert "scheduler sees country label 'DE'" in result.unresolvable["paris-0"]
    agree = filter_nodes(pod("FR"), ["paris-0"], snap, reported_countries={"paris-0": "FR"})
    assert agree.feasible == ["paris-0"]


def test_reported_country_never_grants_a_node() -> None:
    snap = snapshot(site("berlin", "DE"), extra_nodes=[NodeView("bare")], nodes_per_site=1)
    result = filter_nodes(pod("FR"), ["berlin-0", "bare"], snap, reported_countries={"berlin-0": "FR", "bare": "FR"})
    assert result.feasible == []
    assert set(result.unresolvable) == {"berlin-0", "bare"}


def test_residency_reason_collapses_eu() -> None:
    snap = snapshot(site("zurich", "CH"), nodes_per_site=1)
    reason = filter_nodes(pod("EU"), ["zurich-0"], snap).unresolvable["zurich-0"]
    assert reason == "node in CH, pod residency EU"
    assert len(EU_MEMBERS) == 27


# --- filter: heat fails open ----------------------------------------------------------------------


def test_overheated_site_is_filtered_resolvably() -> None:
    snap = snapshot(site("paris", "FR", 86.0, state=ThermalState.OVERHEATED), site("lyon", "FR", 60.0))
    result = filter_nodes(pod("FR"), list(snap.nodes), snap)
    assert result.feasible == ["lyon-0", "lyon-1"]
    assert result.unresolvable == {}
    assert result.failed["paris-0"] == "site paris Overheated: tank at 86.0 °C ≥ max 85.0 °C; other nodes fit"


def test_saturated_site_is_filtered_with_its_margin() -> None:
    snap = snapshot(site("paris", "FR", 83.0, state=ThermalState.SATURATED), nodes_per_site=1)
    result = filter_nodes(pod(None), ["paris-0"], snap)
    assert result.failed == {"paris-0": "site paris Saturated: tank at 83.0 °C, within 2.0 K of max 85.0 °C; "
                                        "only heat-blocked nodes fit, held 0 s of the 600 s heat wait bound"}


# --- filter: heat never starves a pod -------------------------------------------------------------


def _hot_only() -> Snapshot:
    return snapshot(site("paris", "FR", 86.0, state=ThermalState.OVERHEATED),
                    site("lyon", "FR", 83.0, state=ThermalState.SATURATED), site("berlin", "DE", 40.0,
                                                                                  state=ThermalState.COLD))


def test_when_only_hot_nodes_fit_the_pod_is_held_until_the_wait_bound() -> None:
    snap = _hot_only()
    held = filter_nodes(pod("FR"), list(snap.nodes), snap, waited_s=599.0)
    assert held.feasible == [] and held.relaxed == {}
    assert set(held.failed) == {"paris-0", "paris-1", "lyon-0", "lyon-1"}
    assert "held 599 s of the 600 s heat wait bound" in held.failed["lyon-0"]


def test_after_the_wait_bound_hot_nodes_are_taken_with_a_reason_and_residency_still_holds() -> None:
    snap = _hot_only()
    taken = filter_nodes(pod("FR"), list(snap.nodes), snap, waited_s=600.0)
    assert taken.feasible == ["paris-0", "paris-1", "lyon-0", "lyon-1"]  # berlin stays out: residency is hard
    assert set(taken.unresolvable) == {"berlin-0", "berlin-1"} and taken.failed == {}
    assert set(taken.relaxed) == set(taken.feasible)
    assert "taken although heat-blocked: no other node fits and the pod waited 600 s" in taken.relaxed["paris-0"]
    # among hot sites the least hot one scores best, and both score below any fresh site with room
    best = ranked(score_nodes(pod("FR"), taken.feasible, snap))
    assert best[0].site == "lyon" and best[0].score < NEUTRAL


def test_a_zero_wait_bound_takes_hot_nodes_at_once() -> None:
    snap = _hot_only()
    assert filter_nodes(pod("FR"), ["paris-0"], snap, max_heat_wait_s=0.0).feasible == ["paris-0"]


def test_hot_nodes_are_avoided_whatever_the_wait_while_another_node_fits() -> None:
    snap = snapshot(site("paris", "FR", 86.0, state=ThermalState.OVERHEATED), site("lyon", "FR", 60.0))
    result = filter_nodes(pod("FR"), list(snap.nodes), snap, waited_s=10_000.0)
    assert result.feasible == ["lyon-0", "lyon-1"] and set(result.failed) == {"paris-0", "paris-1"}


@pytest.mark.parametrize(
    "changes",
    [{"fresh": False}, {"state": ThermalState.UNKNOWN}],
    ids=["stale-overheated", "unknown"],
)
def test_stale_or_unknown_state_never_filters(changes) -> None:
    hot = dataclasses.replace(site("paris", "FR", 90.0, state=ThermalState.OVERHEATED), **changes)
    snap = snapshot(hot)
    assert filter_nodes(pod("FR"), list(snap.nodes), snap).feasible == ["paris-0", "paris-1"]


def test_residency_is_checked_before_heat() -> None:
    snap = snapshot(site("berlin", "DE", 90.0, state=ThermalState.OVERHEATED), nodes_per_site=1)
    result = filter_nodes(pod("FR"), ["berlin-0"], snap)
    assert list(result.unresolvable) == ["berlin-0"] and result.failed == {}


def test_filter_keeps_input_order() -> None:
    snap = snapshot(site("a"), site("b"), site("c"))
    names = ["c-1", "a-0", "b-1", "c-0", "a-1"]
    assert filter_nodes(pod("FR"), names, snap).feasible == names


# --- score ----------------------------------------------------------------------------------------


def test_stale_site_scores_neutral() -> None:
    snap = snapshot(site("paris", "FR", 40.0, state=ThermalState.COLD, fresh=False, reading_age_s=600.0))
    [score, _] = score_nodes(pod(), list(snap.nodes), snap)
    assert score.score == NEUTRAL
    assert "stale" in score.reason and "600 s" in score.reason


@pytest.mark.parametrize(
    "view",
    [
        site("paris", state=ThermalState.UNKNOWN, t=None),
        site("paris", t=None),
        dataclasses.replace(site("paris"), tank=Tank(volume_l=0)),
        dataclasses.replace(site("paris"), tank=Tank(volume_l=100, min_c=80, max_c=70)),
        site("paris", t=math.nan),
        site("paris", absorbable_kw=math.inf),
    ],
    ids=["unknown", "no-temperature", "no-volume", "inverted-limits", "nan-temperature", "inf-absorbable"],
)
def test_unusable_site_data_scores_neutral(view) -> None:
    snap = snapshot(view, nodes_per_site=1)
    [score] = score_nodes(pod(), ["paris-0"], snap)
    assert score.score == NEUTRAL
    assert "neutral" in score.reason


def test_colder_tank_scores_higher() -> None:
    temps = [45.0, 55.0, 58.0, 62.0, 70.0, 78.0, 84.0]
    snap = snapshot(*(site(f"s{t:g}", t=t) for t in temps), nodes_per_site=1)
    scores = [s.score for s in score_nodes(pod(), [f"s{t:g}-0" for t in temps], snap)]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > scores[-1]
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_pending_bindings_lower_a_sites_score() -> None:
    previous = None
    for pending in [0.0, 0.5, 2.0, 5.0, 9.0, 20.0]:
        snap = snapshot(site("paris", t=60.0), nodes_per_site=1, pending={"paris": pending})
        [score] = score_nodes(pod(cpu=4), ["paris-0"], snap)
        if previous is not None:
            assert score.score < previous
        previous = score.score


def test_bigger_pod_scores_a_site_lower() -> None:
    snap = snapshot(site("paris", t=60.0), nodes_per_site=1)
    small, big = (score_nodes(pod(cpu=c), ["paris-0"], snap)[0].score for c in (0.5, 64))
    assert big < small


def test_fresh_cold_site_beats_neutral_and_full_hot_site_loses_to_it() -> None:
    cold = site("cold", t=50.0, state=ThermalState.COLD)
    hot = site("hot", t=82.0, absorbable_kw=0.0)
    unknown = site("unknown", state=ThermalState.UNKNOWN, t=None)
    snap = snapshot(cold, hot, unknown, nodes_per_site=1)
    by_site = {s.site: s.score for s in score_nodes(pod(), ["cold-0", "hot-0", "unknown-0"], snap)}
    assert by_site["cold"] > NEUTRAL > by_site["hot"]


def test_score_matches_the_documented_formula() -> None:
    view = site("paris", t=58.0, absorbable_kw=10.0, watts_per_cpu=12.0, recovery_efficiency=0.95)
    snap = snapshot(view, nodes_per_site=1, pending={"paris": 2.0})
    [score] = score_nodes(pod(cpu=4), ["paris-0"], snap)
    charged = 2.0 + 4 * 12.0 / 1000
    rise = charged * 0.95 * 1.0 / (1500 * WATER_KWH_PER_LITRE_KELVIN)
    need = (85.0 - (58.0 + rise)) / (85.0 - 55.0)
    headroom = (10.0 - charged) / 10.0
    assert score.score == pytest.approx(0.7 * need + 0.3 * headroom)
    assert score.site == "paris" and "need" in score.reason and "headroom" in score.reason


def test_score_params_change_the_weighting() -> None:
    view = site("paris", t=56.0, absorbable_kw=1.0)  # wants heat, little room left
    snap = snapshot(view, nodes_per_site=1, pending={"paris": 0.9})
    need_only = score_nodes(pod(), ["paris-0"], snap, params=ScoreParams(need_weight=1.0))[0].score
    room_only = score_nodes(pod(), ["paris-0"], snap, params=ScoreParams(need_weight=0.0))[0].score
    assert need_only > room_only
    with pytest.raises(ValueError, match="need_weight"):
        ScoreParams(need_weight=1.5)
    with pytest.raises(ValueError, match="horizon_h"):
        ScoreParams(horizon_h=0)


def test_scores_keep_input_order_and_cover_every_node() -> None:
    snap = snapshot(site("a", t=50.0), site("b", t=80.0), extra_nodes=[NodeView("plain")])
    names = ["b-0", "plain", "a-1", "ghost", "a-0"]
    scores = score_nodes(pod(), names, snap)
    assert [s.node for s in scores] == names
    assert [s.site for s in scores] == ["b", None, "a", None, "a"]


def test_ties_are_deterministic() -> None:
    snap = snapshot(site("a", t=60.0), site("b", t=60.0), nodes_per_site=3)
    names = list(snap.nodes)
    first = score_nodes(pod(), names, snap)
    again = score_nodes(pod(), list(reversed(names)), snap)
    assert {s.node: s.score for s in first} == {s.node: s.score for s in again}
    assert len({s.score for s in first}) == 1  # identical sites tie exactly
    assert [s.node for s in ranked(first)] == [s.node for s in ranked(again)] == sorted(names)


def test_ranked_puts_best_first() -> None:
    snap = snapshot(site("warm", t=75.0), site("cold", t=52.0), nodes_per_site=1)
    assert [s.node for s in ranked(score_nodes(pod(), ["warm-0", "cold-0"], snap))] == ["cold-0", "warm-0"]


def test_filter_and_score_handle_a_thousand_nodes_without_per_node_site_work() -> None:
    sites = [site(f"s{i:02d}", t=50.0 + i) for i in range(40)]
    snap = snapshot(*sites, nodes_per_site=25)
    names = list(snap.nodes)
    result = filter_nodes(pod("FR"), names, snap)
    scores = score_nodes(pod("FR"), names, snap)
    assert len(result.feasible) == 1000
    reasons = {id(s.reason) for s in scores}
    assert len(reasons) == 40  # one reason string per site, shared by its nodes


def test_empty_residency_set_admits_nothing() -> None:
    snap = snapshot(site("paris", "FR"), nodes_per_site=1)
    result = filter_nodes(PodRequest("p", residency=frozenset()), ["paris-0"], snap)
    assert result.unresolvable == {"paris-0": "node in FR, pod residency (none)"}


def test_scores_without_explanations_are_the_same_scores() -> None:
    snap = snapshot(site("paris", "FR", 58.0), site("lyon", "FR", 70.0), site("nice", "FR", None, fresh=False))
    full = score_nodes(pod("FR"), list(snap.nodes), snap)
    quick = score_nodes(pod("FR"), list(snap.nodes), snap, explain=False)
    assert [s.score for s in quick] == [s.score for s in full]
    assert all(s.reason for s in full) and quick[0].reason == ""



def test_scores_grouped_by_site_agree_with_per_node_scores_and_name_the_best_node() -> None:
    snap = snapshot(site("cold", t=56.0, state=ThermalState.COLD), site("hot", t=83.0),
                    extra_nodes=[NodeView("lonely", site=None, country="FR"),
                                 NodeView("ghost", site="gone", country="FR"),
                                 NodeView("torn", site="cold", country="FR", conflict="claimed by cold and hot")])
    names = ["hot-0", "lonely", "cold-1", "ghost", "torn", "unknown", "cold-0"]
    grouped = score_by_site(pod(), names, snap)
    per_node = score_nodes(pod(), names, snap)
    assert grouped.scores == [s.score for s in per_node]
    assert set(grouped.sites) == {"cold", "hot"}  # one entry per scored site, not per node
    assert grouped.best == "cold-1"  # the first of the best site's nodes in input order
    for name, s in zip(names, per_node, strict=True):
        assert grouped.reason_of(snap.nodes.get(name)) == (s.score, s.reason)
    assert [s.reason for s in per_node[1:6:1] if s.score == NEUTRAL] == [
        "not on a heat site: neutral", "site gone not in snapshot: neutral",
        "node in conflict (claimed by cold and hot): neutral", "node unknown to heatsched: neutral"]
    assert score_by_site(pod(), [], snap).best is None
