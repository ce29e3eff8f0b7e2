"""HeatSite/ThermalDemand on a real apiserver, a real Prometheus and the operator process."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from heatsched.cluster.kwoknodes import kwok_node
from heatsched.placement.model import COUNTRY_LABEL, SITE_LABEL
from kubernetes import client
from stack import REFRESH_S, ROOT, wait_for

MONTLUCON = "montlucon-residence"


def test_heatsites_list_with_their_columns(stack):
    stack.set_temperatures({MONTLUCON: 60.0})
    out = stack.kubectl("get", "heatsites").stdout
    header = out.splitlines()[0]
    names = header.split()
    assert names[:6] == ["NAME", "TEMP", "STATE", "READING", "NODES", "COUNTRY"]
    starts = [header.index(n) for n in names] + [None]
    line = next(line for line in out.splitlines() if line.startswith(MONTLUCON))
    row = {n: line[a:b].strip() for n, a, b in zip(names, starts, starts[1:])}  # empty cells stay empty
    assert row["TEMP"] == "60" and row["STATE"] == "Comfortable"
    assert row["NODES"] == "2" and row["COUNTRY"] == "FR"
    assert "thermaldemand" in stack.kubectl("get", "td", "-o", "name").stdout


def test_kubectl_explain_documents_the_tank(stack):
    out = stack.kubectl("explain", "heatsite.spec.tank").stdout
    assert "volumeLitres" in out and "minCelsius" in out
    assert "legionella" in out.lower()


@pytest.mark.parametrize("patch, message", [
    ({"tank": {"volumeLitres": 1500, "minCelsius": 60, "targetCelsius": 58, "maxCelsius": 50}},
     "minCelsius < targetCelsius < maxCelsius"),
    ({"country": "France"}, "spec.country"),
    ({"nodeSelector": {"matchLabels": {"heatsched-pool": "x"}}}, "node-restriction.kubernetes.io/"),
])
def test_invalid_heatsite_is_refused_by_the_apiserver_with_a_readable_message(stack, patch, message):
    site = stack.site(MONTLUCON)
    body = {"apiVersion": site["apiVersion"], "kind": "HeatSite", "metadata": {"name": f"bad-{uuid.uuid4().hex[:6]}"},
            "spec": {**site["spec"], **patch}}
    with pytest.raises(client.ApiException) as err:
        stack.custom.create_cluster_custom_object("heatsched.io", "v1alpha1", "heatsites", body)
    assert err.value.status == 422
    assert message in json.loads(err.value.body)["message"]


def test_new_temperature_shows_in_status_within_refresh_plus_2s(stack):
    t0 = time.monotonic()
    stack.exporter.set_temperature(MONTLUCON, 57.5)
    wait_for(lambda: stack.site_status(MONTLUCON).get("temperatureCelsius") == 57.5, REFRESH_S + 2 + 1,
             interval=0.1, what="57.5 °C in status")  # + 1 s: Prometheus scrape interval
    status = stack.site_status(MONTLUCON)
    assert status["state"] == "Heating"
    assert status["heatDeficitKWh"] == pytest.approx(1500 * 4.186 * 2.5 / 3600, rel=0.01)
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"TelemetryFresh": "True", "Ready": "True",
                                                                       "ResidencyDrift": "False"}
    assert time.monotonic() - t0 < REFRESH_S + 3


@pytest.mark.parametrize("make_bad, reason", [
    (lambda e: e.set_temperature(MONTLUCON, 61, extra_series=True), "AmbiguousSeries"),
    (lambda e: e.set_temperature(MONTLUCON, "NaN"), "NotANumber"),
    (lambda e: e.remove(MONTLUCON), "NoData"),
])
def test_bad_telemetry_is_unknown_never_zero_and_recovers(stack, make_bad, reason):
    make_bad(stack.exporter)
    try:
        status = wait_for(lambda: (s := stack.site_status(MONTLUCON)).get("state") == "Unknown" and s, 15,
                          what="Unknown state")
        assert status.get("temperatureCelsius") is None  # absent: no reading (never 0 °C)
        fresh = next(c for c in status["conditions"] if c["type"] == "TelemetryFresh")
        assert fresh["status"] == "False" and fresh["reason"] == reason, fresh
    finally:
        stack.exporter.set_temperature(MONTLUCON, 60.0)
    wait_for(lambda: stack.site_status(MONTLUCON).get("temperatureCelsius") == 60.0, 15, what="recovery")


def test_prometheus_down_makes_sites_unknown_then_they_recover(stack):
    stack.prometheus.stop()
    try:
        status = wait_for(lambda: (s := stack.site_status(MONTLUCON)).get("state") == "Unknown" and s, 15)
        fresh = next(c for c in status["conditions"] if c["type"] == "TelemetryFresh")
        assert fresh["reason"] == "Unreachable"
        assert stack.node_labels(f"{MONTLUCON}-1")[COUNTRY_LABEL] == "FR"  # residency does not depend on it
    finally:
        stack.prometheus.start()
    wait_for(lambda: stack.site_status(MONTLUCON).get("state") not in (None, "Unknown"), 30, what="recovery")


def test_nodes_gain_and_lose_site_labels(stack):
    name = f"late-{uuid.uuid4().hex[:6]}"
    stack.core.create_node(kwok_node(name, pool=MONTLUCON))
    try:
        wait_for(lambda: stack.node_labels(name).get(COUNTRY_LABEL) == "FR", 15, what="country label")
        assert stack.node_labels(name)[SITE_LABEL] == MONTLUCON
        wait_for(lambda: name in stack.site_status(MONTLUCON).get("nodes", []), 15, what="node in status")
        stack.core.patch_node(name, {"metadata": {"labels": {"node-restriction.kubernetes.io/heatsched-pool": None}}})
        wait_for(lambda: COUNTRY_LABEL not in stack.node_labels(name), 15, what="labels removed")
        assert SITE_LABEL not in stack.node_labels(name)
    finally:
        stack.core.delete_node(name)


def test_a_node_claimed_by_two_sites_loses_its_country_label(stack):
    name = f"{MONTLUCON}-1"
    stack.custom.patch_cluster_custom_object("heatsched.io", "v1alpha1", "heatsites", "frankfurt-office",
                                             {"spec": {"nodeNames": [name]}})
    try:
        wait_for(lambda: COUNTRY_LABEL not in stack.node_labels(name), 15, what="country label removed")
        ready = wait_for(lambda: next((c for c in stack.site_status(MONTLUCON).get("conditions", [])
                                       if c["type"] == "Ready" and c["reason"] == "NodeConflict"), None), 15)
        assert name in ready["message"]
    finally:
        stack.custom.patch_cluster_custom_object("heatsched.io", "v1alpha1", "heatsites", "frankfurt-office",
                                                 {"spec": {"nodeNames": []}})
    wait_for(lambda: stack.node_labels(name).get(COUNTRY_LABEL) == "FR", 15, what="label back")


def test_deleting_a_site_removes_its_node_labels(stack):
    site, node = f"tmp-{uuid.uuid4().hex[:6]}", f"tmp-node-{uuid.uuid4().hex[:6]}"
    body = stack.site(MONTLUCON)
    body = {"apiVersion": body["apiVersion"], "kind": "HeatSite", "metadata": {"name": site},
            "spec": {**body["spec"], "nodeSelector": None, "nodeNames": [node], "country": "BE"}}
    stack.core.create_node(kwok_node(node))
    try:
        stack.custom.create_cluster_custom_object("heatsched.io", "v1alpha1", "heatsites", body)
        wait_for(lambda: stack.node_labels(node).get(COUNTRY_LABEL) == "BE", 15, what="BE label")
        stack.custom.delete_cluster_custom_object("heatsched.io", "v1alpha1", "heatsites", site)
        wait_for(lambda: COUNTRY_LABEL not in stack.node_labels(node), 15, what="label removed by finalizer")
    finally:
        stack.core.delete_node(node)


def test_a_kubelet_cannot_spoof_its_country_label(stack, cluster):
    from kubernetes import config

    if not getattr(cluster, "local", False):
        pytest.skip("needs a kubelet identity: the local control plane mints one (system:node:kwok-spoof)")
    kubelet = client.CoreV1Api(config.new_client_from_config(str(cluster.workdir / "node-kwok-spoof.kubeconfig")))
    spoofed = kwok_node("kwok-spoof", labels={COUNTRY_LABEL: "FR"})
    with pytest.raises(client.ApiException) as err:
        kubelet.create_node(spoofed)
    assert err.value.status == 403 and "node-restriction.kubernetes.io" in err.value.body
    kubelet.create_node(kwok_node("kwok-spoof"))
    try:
        with pytest.raises(client.ApiException) as err:
            kubelet.patch_node("kwok-spoof", {"metadata": {"labels": {COUNTRY_LABEL: "FR"}}})
        assert err.value.status == 403
    finally:
        stack.core.delete_node("kwok-spoof")


def test_examples_are_the_files_the_cluster_runs(stack):
    from heatsched.models import load_manifest

    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for obj in load_manifest(path):
            plural = "heatsites" if type(obj).__name__ == "HeatSite" else "thermaldemands"
            live = stack.custom.get_cluster_custom_object("heatsched.io", "v1alpha1", plural, obj.name)
            assert live["spec"]["country" if plural == "heatsites" else "siteRef"] == (
                obj.spec.country if plural == "heatsites" else obj.spec.site_ref)
