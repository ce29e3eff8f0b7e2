"""The cluster side of heat fuel, without a cluster: the pod the controller creates, which pods count as fuel,
fuel never being tenant load, the forecast the plan gets, the extender's heat wait bound and explain."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace as NS

import pytest
from aiohttp.test_utils import TestClient, TestServer
from heatsched.controller.fuel import fuel_pod_body, priority_class, reserved_nodes
from heatsched.controller.handlers import fuel_site_of, node_cpu
from heatsched.controller.store import FuelPod, Store
from heatsched.explain import render
from heatsched.extender.server import make_app
from heatsched.placement.model import FUEL_SITE_LABEL, SITE_LABEL, NodeView, SiteView, Snapshot, Tank, ThermalState
from heatsched.twin.live import LiveSite
from heatsched.twin.sites import load_sites

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
POOL = "node-restriction.kubernetes.io/heatsched-pool"
NOW = datetime(2026, 1, 12, 8, 0, tzinfo=UTC)


@pytest.fixture
def store(store: Store) -> Store:
    """The example store with two 64-core nodes in Montluçon."""
    for i in (1, 2):
        store.set_node(f"m{i}", {POOL: "montlucon-residence"}, alloc_cpu=64.0)
    return store


def test_a_fuel_pod_is_pinned_to_its_site_at_the_fuel_priority_with_whole_pod_cpu(store):
    site = store.sites["montlucon-residence"]
    body = fuel_pod_body(site)
    spec, meta = body["spec"], body["metadata"]
    assert meta["namespace"] == "heatsched-fuel" and meta["generateName"] == "fuel-montlucon-residence-"
    assert meta["labels"][FUEL_SITE_LABEL] == "montlucon-residence"
    assert meta["labels"]["app.kubernetes.io/name"] == "heat-fuel"  # the template's own labels stay
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": SITE_LABEL, "operator": "In", "values": ["montlucon-residence"]}]}]
    assert spec["priorityClassName"] == "heatsched-fuel"
    assert spec["containers"][0]["resources"] == {"requests": {"cpu": "4"}, "limits": {"cpu": "4"}}
    assert "affinity" not in site.spec.fuel.template["spec"]  # the spec's template is not mutated
    pc = priority_class()
    assert pc["value"] < 0 and pc["preemptionPolicy"] == "Never" and pc["globalDefault"] is False


def test_the_reserve_is_whole_nodes_that_fuel_pods_may_not_use(store):
    nodes = {f"n{i:02d}": 32.0 for i in range(10)}
    assert reserved_nodes(nodes, 10) == ["n09"] and reserved_nodes(nodes, 15) == ["n08", "n09"]
    assert reserved_nodes(nodes, 0) == [] and reserved_nodes({}, 10) == []
    body = fuel_pod_body(store.sites["montlucon-residence"], ["m2"])
    (term,) = body["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"]
    assert term["matchFields"] == [{"key": "metadata.name", "operator": "NotIn", "values": ["m2"]}]
    assert term["matchExpressions"][0]["key"] == SITE_LABEL  # still pinned to its site
    assert store.free_cores("montlucon-residence", exclude=["m2"]) == pytest.approx(64)


def test_only_labelled_pods_in_the_sites_fuel_namespace_count_as_fuel(store):
    labels = {FUEL_SITE_LABEL: "montlucon-residence"}
    assert fuel_site_of(store, {"labels": labels, "namespace": "heatsched-fuel"}) == "montlucon-residence"
    assert fuel_site_of(store, {"labels": labels, "namespace": "tenant-a"}) is None  # a tenant wearing the label
    # a site not known yet (pods listed before their HeatSite at start-up): fuel in the default namespace
    assert fuel_site_of(store, {"labels": {FUEL_SITE_LABEL: "later"}, "namespace": "heatsched-fuel"}) == "later"
    assert fuel_site_of(store, {"labels": {FUEL_SITE_LABEL: "later"}, "namespace": "tenant-a"}) is None
    assert fuel_site_of(store, {"namespace": "heatsched-fuel"}) is None


def test_fuel_pods_are_not_tenant_load_and_leave_cores_free(store):
    idle = store.it_load_kw("montlucon-residence")
    store.set_pod("t1", "m1", 16.0, False)  # a tenant pod
    tenant = store.it_load_kw("montlucon-residence")
    assert tenant == pytest.approx(idle + 16 * 12 / 1000)
    store.set_fuel_pod("f1", "montlucon-residence", FuelPod("fuel-1", "heatsched-fuel", "m2", 32.0))
    assert store.it_load_kw("montlucon-residence") == pytest.approx(tenant)
    assert store.free_cores("montlucon-residence") == pytest.approx(128 - 16)  # fuel counts as free
    assert list(store.fuel_pods["montlucon-residence"]) == ["f1"]
    store.set_fuel_pod("f1", "montlucon-residence", None)
    assert store.fuel_pods["montlucon-residence"] == {}


def test_a_tenant_pod_nominated_after_preempting_fuel_keeps_its_room_from_new_fuel(store):
    before = store.free_cores("montlucon-residence")
    store.set_nominated("t9", "m1", 48.0)
    assert store.free_cores("montlucon-residence") == pytest.approx(before - 48)
    store.set_pod("t9", "m1", 48.0, False)  # bound: counted once, as tenant load
    store.set_nominated("t9", None, 48.0)
    assert store.free_cores("montlucon-residence") == pytest.approx(before - 48)
    store.delete_pod("t9")
    assert store.free_cores("montlucon-residence") == pytest.approx(before)


def test_node_allocatable_cpu_is_read_and_bad_values_are_unknown():
    assert node_cpu({"status": {"allocatable": {"cpu": "3500m"}}}) == 3.5
    assert node_cpu({"status": {"allocatable": {"cpu": "lots"}}}) is None
    assert node_cpu({}) is None


def test_the_plan_gets_the_profiles_in_local_time_slots_over_the_lookahead(store):
    forecast = store.demand_forecast_kw("montlucon-residence", NOW, 6.0)
    assert len(forecast) == 24
    # 08:00 UTC is 09:00 in Paris in January: the 09:00 hour of the hot-water profile (weekday, winter) plus loop
    assert forecast[0] == pytest.approx(store.demand_kw("montlucon-residence", NOW))
    assert forecast[4] != forecast[0]  # 10:00 is another hour of the profile


def _snapshot() -> Snapshot:
    tank = Tank(volume_l=1500, min_c=55, target_c=60, max_c=65)
    hot = SiteView("montlucon-residence", "FR", tank, ThermalState.OVERHEATED, 66.0, 5.0, True, watts_per_cpu=12.0)
    return Snapshot(sites={hot.name: hot}, nodes={"m1": NodeView("m1", hot.name, "FR")})


def _args(created: datetime) -> dict:
    return {"Pod": {"metadata": {"name": "p", "namespace": "t", "uid": "u1", "creationTimestamp": created.isoformat(),
                                 "annotations": {"heatsched.io/residency": "FR"}},
                    "spec": {"containers": [{"name": "c"}]}},
            "NodeNames": ["m1"]}


@pytest.mark.parametrize("age_s, taken", [(30, False), (700, True)])
async def test_the_extender_holds_a_pod_off_hot_nodes_only_until_the_wait_bound(age_s, taken):
    relaxed: list = []
    now = NOW.timestamp()
    app = make_app(_snapshot, on_filtered=lambda uid, r: relaxed.append((uid, r.relaxed)), max_heat_wait_s=600,
                   clock=lambda: now)
    async with TestClient(TestServer(app)) as c:
        resp = await c.post("/scheduler/filter", data=json.dumps(_args(NOW - timedelta(seconds=age_s))))
        body = await resp.json()
    assert resp.status == 200
    if taken:
        assert body["NodeNames"] == ["m1"] and relaxed and relaxed[0][0] == "u1"
        assert "taken although heat-blocked" in relaxed[0][1]["m1"]
    else:
        assert body["NodeNames"] == [] and "held 30 s of the 600 s heat wait bound" in body["FailedNodes"]["m1"]
        assert not relaxed


def test_explain_says_when_the_heat_wait_bound_was_used():
    record = {"node": "m1", "site": "montlucon-residence", "country": "FR", "state": "Overheated", "tankCelsius": 66.0,
              "heatWaitBound": "taken although heat-blocked: no other node fits and the pod waited 601 s"}
    pod = NS(metadata=NS(namespace="t", name="p", annotations={"heatsched.io/placement": json.dumps(record)}),
             spec=NS(scheduler_name="heat-aware", node_name="m1"), status=NS(phase="Running", conditions=[]))
    assert "heat wait bound used: taken although heat-blocked" in render(pod, [])


def test_the_live_twin_keeps_a_no_fuel_tank_that_burns_more_gas_when_fuel_was_heating():
    config = next(s for s in load_sites([EXAMPLES]) if s.name == "montlucon-residence")
    site = LiveSite.start(config, temperature_c=56.0)
    at = datetime(2025, 1, 6, 7)
    for k in range(360):  # one hour of 10 s steps, 30 kW of which 25 kW is fuel
        site.advance(at + timedelta(seconds=10 * k), 10.0, 30.0, 25.0)
    assert site.fuel_kwh == pytest.approx(25.0)
    assert site.no_fuel is not None and site.no_fuel.backup_kwh > site.state.backup_kwh + 5
    assert site.to_json()["noFuel"]["backupKWh"] == site.no_fuel.backup_kwh
