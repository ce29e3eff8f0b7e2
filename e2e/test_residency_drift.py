"""Residency after placement: a node that leaves its site under a running resident pod is reported (a Warning
Event on the pod, the site's ResidencyDrift condition), and a HeatSite's country cannot be edited."""

from __future__ import annotations

import json

import pytest
from heatsched.placement.model import COUNTRY_LABEL
from kubernetes import client
from stack import metric, wait_for

MONTLUCON = "montlucon-residence"
POOL = "node-restriction.kubernetes.io/heatsched-pool"


def condition(stack, site: str, type_: str) -> dict:
    return next((c for c in stack.site_status(site).get("conditions", []) if c["type"] == type_), {})


def test_a_heatsites_country_is_immutable(stack):
    with pytest.raises(client.ApiException) as err:
        stack.custom.patch_cluster_custom_object("heatsched.io", "v1alpha1", "heatsites", MONTLUCON,
                                                 {"spec": {"country": "DE"}})
    assert err.value.status == 422 and "spec.country is immutable" in json.loads(err.value.body)["message"]


def test_a_node_leaving_its_site_under_a_resident_pod_is_reported(stack, namespace):
    node = f"{MONTLUCON}-2"
    stack.pod(namespace, "resident", annotations={"heatsched.io/residency": "FR"}, scheduler="nobody")
    body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "resident"},
            "target": {"kind": "Node", "name": node}}
    stack.core.create_namespaced_pod_binding("resident", namespace, body, _preload_content=False)
    wait_for(lambda: condition(stack, MONTLUCON, "ResidencyDrift").get("status") == "False", 30,
             what="no drift at first")
    stack.core.patch_node(node, {"metadata": {"labels": {POOL: "moved-away"}}})  # the node leaves the site
    try:
        wait_for(lambda: COUNTRY_LABEL not in stack.node_labels(node), 30, what="country label removed")
        cond = wait_for(lambda: condition(stack, MONTLUCON, "ResidencyDrift").get("status") == "True"
                        and condition(stack, MONTLUCON, "ResidencyDrift"), 30, what="ResidencyDrift condition")
        assert f"pod {namespace}/resident (residency FR): node {node} has no trusted country label" in cond["message"]

        def drift_event():
            events = stack.core.list_namespaced_event(namespace, field_selector="involvedObject.name=resident").items
            return next((e for e in events if e.reason == "ResidencyDrift"), None)
        event = wait_for(drift_event, 30, what="a ResidencyDrift event on the pod")
        assert event.type == "Warning" and node in event.message
        # at least this pod (other tests' resident pods on that node, still terminating, may drift with it)
        drifted = metric(stack.metrics(), "heatsched_residency_drift_pods", site=MONTLUCON)
        assert drifted is not None and drifted >= 1, drifted
        assert stack.core.read_namespaced_pod("resident", namespace).metadata.deletion_timestamp is None  # flag only
    finally:
        stack.core.patch_node(node, {"metadata": {"labels": {POOL: MONTLUCON}}})
    wait_for(lambda: stack.node_labels(node).get(COUNTRY_LABEL) == "FR", 30, what="the node back in its site")
    wait_for(lambda: condition(stack, MONTLUCON, "ResidencyDrift").get("status") == "False", 30,
             what="drift healed")


def test_with_the_evict_policy_a_drifted_resident_pod_is_evicted(stack, namespace):
    node = f"{MONTLUCON}-1"
    stack.stop_operator()
    stack.start_operator(args=("--drift-policy=evict",))
    try:
        stack.pod(namespace, "evictee", annotations={"heatsched.io/residency": "FR"}, scheduler="nobody")
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "evictee"},
                "target": {"kind": "Node", "name": node}}
        stack.core.create_namespaced_pod_binding("evictee", namespace, body, _preload_content=False)
        wait_for(lambda: stack.core.read_namespaced_pod("evictee", namespace).status.phase == "Running", 30)
        stack.core.patch_node(node, {"metadata": {"labels": {POOL: "moved-away"}}})

        def evicted():
            events = stack.core.list_namespaced_event(namespace, field_selector="involvedObject.name=evictee").items
            return next((e for e in events if e.reason == "ResidencyDriftEvicted"), None)
        event = wait_for(evicted, 30, what="a ResidencyDriftEvicted event")
        assert node in event.message

        def gone():
            try:
                return stack.core.read_namespaced_pod("evictee", namespace).metadata.deletion_timestamp is not None
            except client.ApiException as exc:
                return exc.status == 404
        wait_for(gone, 30, what="the pod evicted")
    finally:
        stack.core.patch_node(node, {"metadata": {"labels": {POOL: MONTLUCON}}})
        stack.stop_operator()
        stack.start_operator()
    wait_for(lambda: stack.node_labels(node).get(COUNTRY_LABEL) == "FR", 30, what="the node back in its site")
