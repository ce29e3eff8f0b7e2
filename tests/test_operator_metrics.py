"""The controller's residency metrics: drift per site and the periodic audit's findings, read from the Store."""

from __future__ import annotations

from heatsched.controller.audit_loop import audit_counts
from heatsched.controller.metrics import registry
from heatsched.controller.store import ResidentPod
from heatsched.placement.model import COUNTRY_LABEL
from prometheus_client import generate_latest

CLAIM = {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}


def pv(country: str) -> dict:
    return {"metadata": {"name": "pv1", "labels": {"heatsched.io/country": country}}, "spec": {}}


def pvc() -> dict:
    return {"metadata": {"namespace": "t", "name": "data"}, "spec": {"volumeName": "pv1"}}


def test_the_periodic_audit_finds_a_volume_declared_abroad_under_a_running_pod(store):
    store.set_node("n1", {COUNTRY_LABEL: "FR"})
    store.set_resident("u1", ResidentPod("t", "p", "n1", frozenset({"FR"}), (CLAIM,)))
    assert audit_counts(store, [pvc()], [pv("FR")], []) == {}
    assert audit_counts(store, [pvc()], [pv("DE")], []) == {"VolumeOutsideResidency": 1}
    assert audit_counts(store, [], [], []) == {"VolumeLocationUnknown": 1}  # the claim is gone


def test_the_periodic_audit_finds_a_node_without_a_trusted_country(store):
    store.set_node("n2", {})
    store.set_resident("u2", ResidentPod("t", "q", "n2", frozenset({"FR"})))
    assert audit_counts(store, [], [], []) == {"NodeCountryUnknown": 1}


def test_metrics_show_drift_per_site_and_every_audit_code_even_at_zero(store):
    store.audit = {"VolumeOutsideResidency": 2}
    text = generate_latest(registry(store)).decode()
    assert 'heatsched_residency_drift_pods{site="montlucon-residence"} 0.0' in text
    assert 'heatsched_residency_audit_findings{code="VolumeOutsideResidency"} 2.0' in text
    assert 'heatsched_residency_audit_findings{code="NodeOutsideResidency"} 0.0' in text


def test_site_metrics_are_in_base_units_and_name_the_state(store):
    store.refresh_site("montlucon-residence")
    text = generate_latest(registry(store)).decode()
    assert 'heatsched_site_state{site="montlucon-residence",state="Unknown"} 1.0' in text
    assert 'heatsched_site_state{site="montlucon-residence",state="Cold"} 0.0' in text
    assert 'heatsched_site_tank_min_celsius{site="montlucon-residence"}' in text
    assert "heatsched_site_temperature_celsius{" not in text  # no reading is never 0 °C


async def test_extender_and_webhook_count_what_they_answer():
    from aiohttp.test_utils import TestClient, TestServer
    from heatsched.admission.server import make_app as webhook_app
    from heatsched.extender.server import make_app as extender_app
    from heatsched.metrics import AdmissionMetrics, ExtenderMetrics
    from heatsched.placement.model import Snapshot
    from prometheus_client import CollectorRegistry
    from test_webhook import FakeLookups

    reg = CollectorRegistry()
    ext, adm = ExtenderMetrics(reg), AdmissionMetrics(reg)
    async with TestClient(TestServer(extender_app(lambda: Snapshot(), metrics=ext))) as c:
        body = {"Pod": {"metadata": {"name": "p", "annotations": {"heatsched.io/residency": "FR"}}},
                "NodeNames": ["ghost"]}
        assert (await c.post("/scheduler/filter", json=body)).status == 200
        assert (await c.post("/scheduler/filter", data=b"{")).status == 400
    async with TestClient(TestServer(webhook_app(FakeLookups().lookups(), metrics=adm))) as c:
        assert (await c.post("/validate/pods", data=b"[]")).status == 400
    text = generate_latest(reg).decode()
    assert 'heatsched_extender_filter_nodes_total{outcome="unknown_node"} 1.0' in text
    assert 'heatsched_extender_bad_requests_total{verb="filter"} 1.0' in text
    assert 'heatsched_extender_request_duration_seconds_count{verb="filter"} 2.0' in text
    assert 'heatsched_admission_requests_total{result="malformed",webhook="pods"} 1.0' in text
