"""The operator's store: membership, conflicts, labels to write, heat charged by recent bindings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from heatsched.controller.handlers import meaningful
from heatsched.models import HeatSiteStatus
from heatsched.placement.model import COUNTRY_LABEL, SITE_LABEL, STATE_LABEL, ThermalState
from heatsched.thermal import Reading

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
POOL = "node-restriction.kubernetes.io/heatsched-pool"
NOW = datetime(2026, 1, 12, 8, 0, tzinfo=UTC)


def test_a_node_in_one_site_gets_site_country_and_state_labels(store):
    store.set_node("m1", {POOL: "montlucon-residence"})
    assert store.label_patch("m1") == {SITE_LABEL: "montlucon-residence", COUNTRY_LABEL: "FR", STATE_LABEL: "Unknown"}
    view = store.snapshot.nodes["m1"]
    assert view.site == "montlucon-residence" and view.country is None and view.conflict  # not labelled yet
    store.set_node("m1", {POOL: "montlucon-residence", **store.desired_labels("m1")})
    assert store.snapshot.nodes["m1"].country == "FR" and store.snapshot.nodes["m1"].conflict is None
    assert store.label_patch("m1") == {}


def test_a_node_claimed_by_two_sites_has_no_country_and_a_conflict(store):
    store.set_node("m1", {POOL: "montlucon-residence", COUNTRY_LABEL: "FR", SITE_LABEL: "montlucon-residence"})
    frankfurt = store.sites["frankfurt-office"]
    store.set_site(type(frankfurt)(frankfurt.name, frankfurt.spec.model_copy(update={"node_names": ["m1"]})))
    assert store.label_patch("m1") == {SITE_LABEL: None, COUNTRY_LABEL: None}
    assert "several sites" in store.snapshot.nodes["m1"].conflict
    assert store.conflicts_of("montlucon-residence") == ["m1"] and store.nodes_of("montlucon-residence") == []


def test_a_node_leaving_its_pool_loses_its_labels(store):
    store.set_node("m1", {POOL: "montlucon-residence", COUNTRY_LABEL: "FR", SITE_LABEL: "montlucon-residence"})
    store.set_node("m1", {COUNTRY_LABEL: "FR", SITE_LABEL: "montlucon-residence"})
    assert store.label_patch("m1") == {SITE_LABEL: None, COUNTRY_LABEL: None}


def test_a_bound_pod_counts_in_its_sites_it_load_from_the_next_refresh_once(store):
    store.set_node("m1", {POOL: "montlucon-residence", COUNTRY_LABEL: "FR"})
    store.set_reading("montlucon-residence", Reading(50.0, NOW - timedelta(seconds=5)))
    before = store.refresh_site("montlucon-residence", NOW)
    store.set_pod("uid-1", "m1", cpu=10.0, terminated=False)
    store.set_pod("uid-1", "m1", cpu=10.0, terminated=False)  # the same binding seen again: counted once
    after = store.refresh_site("montlucon-residence", NOW)
    assert after.it_load_kw - before.it_load_kw == pytest.approx(10 * 12 / 1000)
    assert not store.snapshot.pending_kw  # charging recent bindings is the placement service's job
    store.set_pod("uid-1", None, cpu=10.0, terminated=True)
    assert store.node_cpu["m1"] == 0.0
    assert store.refresh_site("montlucon-residence", NOW).it_load_kw == pytest.approx(before.it_load_kw)


def test_no_reading_is_unknown_never_zero_degrees(store):
    store.set_reading("metz-hospital", None, ("Unreachable", "Prometheus at x unreachable"))
    view = store.refresh_site("metz-hospital", NOW)
    assert view.state is ThermalState.UNKNOWN and view.temperature_c is None
    assert view.reason.startswith("Unreachable")


def test_demand_profiles_follow_the_sites_local_clock(store):
    # 06:00 UTC in January is 07:00 in Paris: the morning peak hour of the Montluçon profile
    dhw = store.demands["montlucon-residence-dhw"].spec.profile
    local_hour_kw = dhw.hourly_kw[7] * dhw.weekday_factors[0] * dhw.season_factors.winter
    utc_hour_kw = dhw.hourly_kw[6] * dhw.weekday_factors[0] * dhw.season_factors.winter
    total = store.demand_kw("montlucon-residence", datetime(2026, 1, 12, 6, 30, tzinfo=UTC))
    loop = store.demands["montlucon-residence-loop"].spec.profile
    loop_kw = loop.hourly_kw[7] * loop.weekday_factors[0] * loop.season_factors.winter
    assert total == pytest.approx(local_hour_kw + loop_kw)
    assert local_hour_kw != pytest.approx(utc_hour_kw)


@pytest.mark.parametrize("change, patch", [
    ({}, False),
    ({"temperature_celsius": 60.1}, False),
    ({"temperature_celsius": 60.3}, True),
    ({"state": ThermalState.SATURATED}, True),
    ({"nodes": ["a", "b"]}, True),
    ({"temperature_celsius": None}, True),
    ({"absorbable_kw": 10.2}, False),
    ({"absorbable_kw": 11.0}, True),
])
def test_status_is_patched_only_on_a_meaningful_change(change, patch):
    old = HeatSiteStatus(temperature_celsius=60.0, state=ThermalState.COMFORTABLE, absorbable_kw=10.0, nodes=["a"])
    assert meaningful(old, old.model_copy(update=change), step_k=0.2) is patch


def test_a_resident_pod_whose_node_leaves_its_country_is_drift_reported_once_and_healed(store):
    from heatsched.controller.store import ResidentPod

    store.set_node("m1", {POOL: "montlucon-residence", SITE_LABEL: "montlucon-residence", COUNTRY_LABEL: "FR"})
    store.set_resident("u1", ResidentPod("t", "p", "m1", frozenset({"FR"})))
    assert store.check_drift() == []  # FR on FR: fine
    store.set_node("m1", {POOL: "elsewhere"})  # the operator removed the site and country labels
    (drift,) = store.check_drift(["m1"])
    assert drift.site == "montlucon-residence" and drift.country is None
    assert "node m1 has no trusted country label any more" in drift.reason and "residency FR" in drift.reason
    assert store.check_drift() == []  # reported once
    assert [d.pod.name for d in store.drift_of("montlucon-residence")] == ["p"]
    store.set_node("m1", {POOL: "montlucon-residence", SITE_LABEL: "montlucon-residence", COUNTRY_LABEL: "FR"})
    assert store.check_drift() == [] and store.drift_of("montlucon-residence") == []  # healed
    store.set_node("m1", {COUNTRY_LABEL: "DE"})
    assert store.check_drift()[0].country == "DE"
    store.set_resident("u1", None)  # the pod is gone
    assert store.drift == {}


def test_a_node_not_relabelled_yet_at_start_up_is_no_drift(store):
    from heatsched.controller.store import ResidentPod

    store.set_node("m1", {POOL: "montlucon-residence", COUNTRY_LABEL: "FR"})  # no site label yet
    store.set_resident("u1", ResidentPod("t", "p", "m1", frozenset({"FR"})))
    assert store.check_drift() == []  # the country label kube-scheduler enforced is what counts


async def test_thermaldemand_status_reads_profiles_in_the_sites_local_time_like_placement(store):
    """One clock: ThermalDemand status.currentKW and the site's demandKW use the building's local time."""
    from datetime import datetime
    from types import SimpleNamespace

    from heatsched.controller.config import OperatorConfig
    from heatsched.controller.handlers import Operator
    from heatsched.thermal import demand_now

    written = {}

    class Kube:  # the one KubeApi call write_demands makes
        async def merge_patch(self, url, body):
            assert url.startswith("/apis/heatsched.io/v1alpha1/thermaldemands/") and url.endswith("/status")
            written[url.split("/")[-2]] = body["status"]

    op = Operator(OperatorConfig(), source=SimpleNamespace(), kube=Kube(), store=store)
    site = "frankfurt-office"
    demands = [d for d in store.demands.values() if d.spec.site_ref == site and d.spec.profile is not None]
    assert demands
    # a moment where the profile differs between UTC and Frankfurt's hour, so reading UTC would show
    now = next(t for h in range(24) if (t := datetime(2026, 1, 12, h, 30, tzinfo=UTC))
               and demand_now(demands[0].spec, t, None)[0] != demand_now(demands[0].spec, store.local_time(site, t), None)[0])
    await op.write_demands(site, now)
    for d in demands:
        local = demand_now(d.spec, store.local_time(site, now), None)[0]
        assert written[d.name]["currentKW"] == round(local, 3)
    assert sum(written[d.name]["currentKW"] for d in demands) == pytest.approx(store.demand_kw(site, now), abs=0.01)
