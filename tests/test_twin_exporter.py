"""The twin exporter: agreed metric names, the control API, hold, and the IT load sources."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import TestClient, TestServer
from heatsched.placement.model import SITE_LABEL
from heatsched.twin.exporter import Twin, create_app
from heatsched.twin.live import SimClock
from heatsched.twin.loadsource import KubernetesLoadSource, StaticLoadSource, it_kw_by_site, node_sites
from heatsched.twin.sites import load_sites

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
POOL = "node-restriction.kubernetes.io/heatsched-pool"
GAUGES = (
    "heatsched_twin_tank_temperature_celsius",
    "heatsched_twin_backup_kw",
    "heatsched_twin_it_heat_kw",
)
COUNTERS = (
    "heatsched_twin_backup_kwh_total",
    "heatsched_twin_heat_dumped_kwh_total",
    "heatsched_twin_served_by_it_kwh_total",
)


@pytest.fixture(scope="module")
def sites():
    return load_sites([EXAMPLES])


def make_twin(sites, kw: float = 20.0) -> Twin:
    load = StaticLoadSource({s.name: kw for s in sites})
    return Twin.from_sites(sites, load, start=datetime(2025, 1, 6, 7, 0), step_s=60, speed=60)


@pytest.fixture
async def client(sites):
    twin = make_twin(sites)
    async with TestClient(TestServer(create_app(twin, run_simulation=False))) as c:
        c.twin = twin
        yield c


def sample(text: str, metric: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(metric + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {metric}{labels}")


async def test_metrics_carry_the_agreed_names_with_a_site_label(client, sites):
    client.twin.advance(5)
    resp = await client.get("/metrics")
    text = await resp.text()
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    for site in sites:
        for metric in GAUGES + COUNTERS:
            sample(text, metric, site=site.name)
        for demand in site.demands:
            assert sample(text, "heatsched_twin_demand_kw", site=site.name, demand=demand.name) >= 0
    assert re.search(r"^# TYPE heatsched_twin_backup_kwh_total counter$", text, re.MULTILINE)


async def test_it_override_changes_the_heat_the_tank_receives(client):
    await client.post("/control/montlucon-residence", json={"itKW": 10.0})
    client.twin.advance(1)
    text = await (await client.get("/metrics")).text()
    assert sample(text, "heatsched_twin_it_heat_kw", site="montlucon-residence") == pytest.approx(9.5)
    assert sample(text, "heatsched_twin_it_heat_kw", site="metz-hospital") == pytest.approx(20 * 0.95)


async def test_hold_freezes_temperature_and_counters_until_released(client):
    resp = await client.post("/control/metz-hospital", json={"temperatureC": 63.0, "hold": True})
    assert resp.status == 200 and (await resp.json())["hold"] is True
    client.twin.advance(120)
    site = client.twin.sites["metz-hospital"]
    assert site.state.temperature_c == 63.0 and site.state.it_kwh == 0.0
    await client.post("/control/metz-hospital", json={"hold": False})
    client.twin.advance(1)
    assert site.state.temperature_c != 63.0 and site.state.it_kwh > 0


async def test_demand_factor_scales_every_demand_of_the_site(client):
    site, at = client.twin.sites["metz-hospital"], datetime(2025, 1, 6, 7, 0)
    before = site.demands_at(at)
    assert (await client.post("/control/metz-hospital", json={"demandFactor": 2.0})).status == 200
    assert site.demands_at(at) == pytest.approx({k: 2 * v for k, v in before.items()})
    assert all(v > 0 for v in before.values())


async def test_sites_endpoint_reports_state_as_json(client, sites):
    body = await (await client.get("/sites")).json()
    assert [s["site"] for s in body["sites"]] == [s.name for s in sites]
    assert body["simTime"] == "2025-01-06T07:00:00"


@pytest.mark.parametrize(
    "site, body, message",
    [
        ("nowhere", '{"hold": true}', "unknown site 'nowhere'"),
        ("metz-hospital", "{not json", "not valid JSON"),
        ("metz-hospital", "[]", "JSON object"),
        ("metz-hospital", "{}", "JSON object"),
        ("metz-hospital", '{"temperatureC": 200}', "temperatureC must be within [12, 65]"),  # 65: coolant supply
        ("metz-hospital", '{"temperatureC": "hot"}', "temperatureC must be a number"),
        ("metz-hospital", '{"hold": "yes"}', "hold must be true or false"),
        ("metz-hospital", '{"itKW": -1}', "itKW must be within"),
        ("metz-hospital", '{"demandFactor": 100}', "demandFactor must be within"),
        ("metz-hospital", '{"temperature": 70}', "unknown key(s) ['temperature']"),
    ],
)
async def test_bad_control_requests_get_400_and_change_nothing(client, site, body, message):
    before = client.twin.sites["metz-hospital"].to_json()
    resp = await client.post(f"/control/{site}", data=body)
    assert resp.status == 400
    assert message in (await resp.json())["error"]
    assert client.twin.sites["metz-hospital"].to_json() == before


def test_clock_runs_whole_steps_and_carries_the_remainder():
    clock = SimClock(datetime(2025, 1, 1), step_s=60, speed=100)
    assert clock.due(0.5) == 0  # 50 simulated seconds
    assert clock.due(0.8) == 2  # 130 s: two steps, 10 s carried
    assert clock.due(0.5) == 1  # 60 s
    assert clock.tick() == datetime(2025, 1, 1) and clock.now == datetime(2025, 1, 1, 0, 1)


def test_nodes_map_to_sites_by_site_label_then_by_pool_selector(sites):
    nodes = [
        ("a", {SITE_LABEL: "metz-hospital", POOL: "montlucon-residence"}),  # the operator's label wins
        ("b", {POOL: "montlucon-residence"}),  # not labelled yet: the HeatSite's selector
        ("c", {SITE_LABEL: "unknown-site"}),
        ("d", {}),
    ]
    assert node_sites(sites, nodes) == {"a": "metz-hospital", "b": "montlucon-residence"}


def test_site_power_is_cpu_requests_times_watts_plus_idle_nodes(sites):
    node_site = {"m1": "montlucon-residence", "m2": "montlucon-residence", "f1": "frankfurt-office"}
    kw = it_kw_by_site(sites, node_site, [("m1", 4.0), ("m2", 0.5), ("f1", 2.0), ("elsewhere", 64.0)])
    # 12 W per CPU, 60 W per idle node (examples)
    assert kw["montlucon-residence"] == pytest.approx((4.5 * 12 + 2 * 60) / 1000)
    assert kw["frankfurt-office"] == pytest.approx((2 * 12 + 60) / 1000)
    assert kw["metz-hospital"] == 0.0


class FakeCoreApi:
    def __init__(self, nodes, pods):
        self.nodes, self.pods, self.fail = nodes, pods, False

    def _reply(self, items):
        if self.fail:
            raise ConnectionError("apiserver unreachable")
        return SimpleNamespace(data=json.dumps({"items": items}).encode())

    def list_node(self, **_):
        return self._reply(self.nodes)

    def list_pod_for_all_namespaces(self, **_):
        return self._reply(self.pods)


def test_kubernetes_source_sums_pod_requests_and_keeps_last_value_on_errors(sites):
    nodes = [{"metadata": {"name": "n1", "labels": {POOL: "metz-hospital"}}}]
    def pod(name: str, cpu: str) -> dict:
        container = {"resources": {"requests": {"cpu": cpu}}}
        return {"metadata": {"name": name}, "spec": {"nodeName": "n1", "containers": [container]}}

    pods = [pod("p", "1500m"), pod("q", "2")]
    api = FakeCoreApi(nodes, pods)
    source = KubernetesLoadSource(sites, api, refresh_s=3600)
    assert source.refresh() is True
    expected = (3.5 * 12 + 60) / 1000
    assert source.site_it_kw()["metz-hospital"] == pytest.approx(expected)
    api.fail = True
    assert source.refresh() is False and source.errors == 1
    assert source.site_it_kw()["metz-hospital"] == pytest.approx(expected)


def test_static_source_rejects_negative_power():
    with pytest.raises(ValueError, match="IT power must be >= 0"):
        StaticLoadSource({"x": -1.0})
