"""The placement service's watched view, explanations and the controller's lease rule (pure logic)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import yaml
from heatsched.placement.core import SiteScores
from heatsched.placement.model import COUNTRY_LABEL, SITE_LABEL, ThermalState
from heatsched.placement_service.explain import Explanations
from heatsched.placement_service.view import ClusterView

NOW = datetime(2026, 1, 12, 8, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


EXAMPLE = next(d for d in yaml.safe_load_all((ROOT / "examples" / "metz-hospital.yaml").read_text())
               if d and d.get("kind") == "HeatSite")


def site(status: dict | None, name: str = "s1") -> dict:
    """The Metz example site (tank 55/62/80 °C, FR) under another name, with `status`."""
    obj = copy.deepcopy(EXAMPLE)
    obj["metadata"] = {"name": name}
    obj.pop("status", None)
    if status is not None:
        obj["status"] = status
    return obj


def view(at: datetime = NOW) -> ClusterView:
    return ClusterView(clock=lambda: at.timestamp())


def test_a_site_view_comes_from_the_status_the_controller_wrote():
    v = view()
    v.set_site(site({"temperatureCelsius": 56.0, "readingTime": (NOW - timedelta(seconds=10)).isoformat()}))
    assert v.snapshot.sites["s1"].state == ThermalState.HEATING and v.snapshot.sites["s1"].fresh


def test_a_controller_that_stops_writing_makes_the_site_neutral_never_stale():
    v = view()
    v.set_site(site({"temperatureCelsius": 79.0, "readingTime": (NOW - timedelta(seconds=10)).isoformat()}))
    v.clock = lambda: (NOW + timedelta(minutes=5)).timestamp()
    v.refresh()
    assert v.snapshot.sites["s1"].state == ThermalState.UNKNOWN


def test_no_status_means_unknown_not_zero_degrees():
    v = view()
    v.set_site(site(None))
    assert v.snapshot.sites["s1"].state == ThermalState.UNKNOWN and v.snapshot.sites["s1"].temperature_c is None


def test_an_unreadable_site_is_absent_and_says_why():
    v = view()
    bad = site(None)
    bad["spec"]["country"] = "France"
    v.set_site(bad)
    assert "s1" not in v.snapshot.sites and "country" in v.errors["s1"]


def test_nodes_take_site_and_country_from_the_protected_labels_only():
    v = view()
    v.set_node("n1", {SITE_LABEL: "s1", COUNTRY_LABEL: "FR", "country": "DE"})
    v.set_node("n2", {"heatsched.io/country": "FR"})  # not the protected label
    assert (v.node_country("n1"), v.node_country("n2"), v.node_country("n3")) == ("FR", None, None)
    v.delete_node("n1")
    assert v.node_country("n1") is None


def test_pods_bound_after_the_last_status_charge_their_site_until_the_next_write():
    v = view()
    v.set_site(site({"temperatureCelsius": 56.0, "readingTime": NOW.isoformat()}))
    v.set_node("n1", {SITE_LABEL: "s1", COUNTRY_LABEL: "FR"})
    v.set_pod("old", "n1", 4.0, charge=False)  # in the initial list: already in status.itLoadKW
    assert v.snapshot.pending_kw["s1"] == 0.0
    v.set_pod("new", "n1", 2.0)
    v.set_pod("new", "n1", 2.0)  # the same pod again: charged once
    assert v.snapshot.pending_kw["s1"] > 0.0
    v.set_site(site({"temperatureCelsius": 56.5, "readingTime": NOW.isoformat()}))
    assert v.snapshot.pending_kw["s1"] == 0.0


def test_a_placement_record_is_made_when_a_scored_pod_binds():
    v = view()
    v.set_site(site({"temperatureCelsius": 56.0, "readingTime": NOW.isoformat()}))
    v.set_node("n1", {SITE_LABEL: "s1", COUNTRY_LABEL: "FR"})
    ex = Explanations(limit=2)
    ex.remember_scores("u1", "t/p", SiteScores([0.9, 0.5], {"s1": (0.9, "heating")}, "n1"))
    record = ex.bound("u1", "t/p", "n1", v.snapshot)
    assert record == {"node": "n1", "site": "s1", "country": "FR", "state": "Heating", "tankCelsius": 56.0,
                      "score": 0.9, "why": "heating", "candidates": 2, "best": "n1"}
    assert ex.placed["t/p"] is record
    assert ex.bound("u9", "t/q", "n1", v.snapshot) == {  # not scored here: where it landed, no score
        "node": "n1", "site": "s1", "country": "FR", "state": "Heating", "tankCelsius": 56.0}
    for i in range(5):
        ex.remember_scores(f"x{i}", "t/x", SiteScores([], {}, None))
    assert len(ex.scored) == 2  # bounded


def test_a_placement_event_says_where_the_pod_landed_and_why():
    from heatsched.placement_service.explain import explain_line

    line = explain_line({"node": "n1", "site": "s1", "country": "FR", "state": "Heating", "tankCelsius": 56.0,
                         "score": 0.9, "why": "heating", "candidates": 2, "best": "n1",
                         "heatWaitBound": "taken although heat-blocked"})
    assert line == ("node n1 in site s1 (FR), tank 56.0 °C, Heating; score 0.90 of 2 candidates: heating; "
                    "heat wait bound used: taken although heat-blocked")


def test_a_pod_is_charged_and_recorded_once_when_first_seen_bound(monkeypatch):
    from heatsched.kubeapi import Credentials, KubeApi
    from heatsched.placement_service import main as placement_main

    parsed = []
    real_pod_cpu = placement_main.pod_cpu
    monkeypatch.setattr(placement_main, "pod_cpu", lambda spec: parsed.append(spec) or real_pod_cpu(spec))
    service = placement_main.PlacementService(placement_main.PlacementConfig(),
                                              KubeApi(Credentials("http://127.0.0.1:1", True)),
                                              clock=lambda: NOW.timestamp())
    service.view.set_site(site({"temperatureCelsius": 56.0, "readingTime": NOW.isoformat()}))
    service.view.set_node("n1", {SITE_LABEL: "s1", COUNTRY_LABEL: "FR"})
    pods = SimpleNamespace(synced=True)
    spec = {"schedulerName": "heat-aware", "containers": [{"resources": {"requests": {"cpu": "2"}}}]}

    def event(phase: str, node: str | None = "n1"):
        obj = {"metadata": {"uid": "u1", "namespace": "t", "name": "p"}, "spec": dict(spec, nodeName=node),
               "status": {"phase": phase}}
        service._pod(pods, *service._pod_extract(obj))

    event("Pending", node=None)
    assert service.view.snapshot.pending_kw["s1"] == 0.0 and not parsed
    event("Pending")  # bound
    event("Running")  # kwok's status update
    event("Running")
    charged = service.view.snapshot.pending_kw["s1"]
    assert charged == 2 * 12.0 / 1000  # 2 cores at the example's 12 W per core, charged once
    assert len(parsed) == 1  # the CPU request is parsed once per pod, not per event
    assert service.explanations.placed["t/p"]["node"] == "n1"
    event("Succeeded")  # finished: no longer bound here
    assert "u1" not in service.view.pods


def test_a_replica_is_ready_only_once_synced_and_its_start_up_objects_frozen():
    import asyncio
    import gc

    from aiohttp.test_utils import TestClient, TestServer
    from heatsched.kubeapi import Credentials, KubeApi
    from heatsched.placement_service import main as placement_main

    service = placement_main.PlacementService(placement_main.PlacementConfig(),
                                              KubeApi(Credentials("http://127.0.0.1:1", True)))
    watches = [SimpleNamespace(synced=True, what="nodes"), SimpleNamespace(synced=False, what="pods")]
    service.watches = watches  # type: ignore[assignment]

    async def scenario() -> list[tuple[int, dict]]:
        seen = []
        async with TestClient(TestServer(service.extender_app())) as client:
            async def readyz() -> None:
                resp = await client.get("/readyz")
                seen.append((resp.status, await resp.json()))

            freezing = asyncio.create_task(service.freeze_when_synced(poll_s=0.01))
            await readyz()  # pods still listing
            watches[1].synced = True
            assert service.synced and not service.ready  # synced, not yet collected and frozen
            await asyncio.wait_for(freezing, 5)
            await readyz()
        return seen

    try:
        assert gc.get_freeze_count() == 0
        (before, after) = asyncio.run(scenario())
        assert before == (503, {"status": "syncing", "waiting for": ["pods"]})
        assert after == (200, {"status": "ready"})
        assert service.frozen and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
