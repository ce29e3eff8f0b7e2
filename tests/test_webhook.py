"""Admission: the residency affinity cannot be bypassed, and the webhook configurations fail closed for
resident pods."""

from __future__ import annotations

import pytest

from heatsched.operator_app.webhook import (
    ENFORCED_LABEL, SCHEDULING_LABEL, enforces, residency_affinity, webhook_configurations,
)
from heatsched.placement.model import COUNTRY_LABEL

FR = frozenset({"FR"})
REQ = {"key": COUNTRY_LABEL, "operator": "In", "values": ["FR"]}


def terms(affinity):
    return affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]


def test_a_pod_without_affinity_gets_one_required_term():
    out = residency_affinity(None, FR)
    assert terms(out) == [{"matchExpressions": [REQ]}]
    assert enforces(out, FR)


def test_every_ored_term_gets_the_country_requirement():
    gpu = {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}
    anywhere = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["de-1"]}]}
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [gpu, anywhere]}},
                "podAntiAffinity": {"x": 1}}
    out = residency_affinity(affinity, FR)
    assert all(REQ in t["matchExpressions"] for t in terms(out))
    assert terms(out)[1]["matchFields"] == anywhere["matchFields"]
    assert out["podAntiAffinity"] == {"x": 1}
    assert affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0] == gpu
    assert enforces(out, FR)


def test_mutating_twice_adds_the_requirement_once():
    once = residency_affinity(None, FR)
    assert residency_affinity(once, FR) == once


@pytest.mark.parametrize("affinity", [
    None,
    {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [REQ]}, {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}]}}},
    {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": COUNTRY_LABEL, "operator": "In", "values": ["FR", "DE"]}]}]}}},
    {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": COUNTRY_LABEL, "operator": "NotIn", "values": ["DE"]}]}]}}},
])
def test_an_affinity_that_lets_any_term_escape_does_not_enforce(affinity):
    assert not enforces(affinity, FR)


def test_resident_pods_fail_closed_and_the_opt_in_fails_open():
    mutating, validating = webhook_configurations({"url": "https://127.0.0.1:9443", "caBundle": "Q0E="})
    hooks = {h["name"]: h for h in mutating["webhooks"]}
    assert hooks["pods-with-residency.heatsched.io"]["failurePolicy"] == "Fail"
    assert "heatsched.io/residency" in hooks["pods-with-residency.heatsched.io"]["matchConditions"][0]["expression"]
    assert hooks["pods-in-resident-namespaces.heatsched.io"]["namespaceSelector"] == {"matchLabels": {ENFORCED_LABEL: "true"}}
    assert hooks["pods-in-resident-namespaces.heatsched.io"]["failurePolicy"] == "Fail"
    assert hooks["pods-heat-aware-opt-in.heatsched.io"]["failurePolicy"] == "Ignore"
    assert hooks["pods-heat-aware-opt-in.heatsched.io"]["namespaceSelector"]["matchLabels"] == {SCHEDULING_LABEL: "heat-aware"}
    assert hooks["pods-with-residency.heatsched.io"]["clientConfig"]["url"] == "https://127.0.0.1:9443/pod_mutate"
    assert hooks["pods-with-residency.heatsched.io"]["namespaceSelector"] == {}  # kube-system too
    checks = {h["name"]: h for h in validating["webhooks"]}
    assert all(h["failurePolicy"] == "Fail" for n, h in checks.items() if n != "bindings.heatsched.io")
    assert {h["clientConfig"]["url"].rsplit("/", 1)[1] for h in validating["webhooks"]} == {
        "pod_validate", "binding_validate"}
    binding = checks["bindings-in-resident-namespaces.heatsched.io"]
    assert binding["rules"][0]["resources"] == ["pods/binding", "bindings"] and binding["failurePolicy"] == "Fail"
    assert binding["namespaceSelector"] == {"matchLabels": {ENFORCED_LABEL: "true"}}


def test_in_cluster_service_config_gets_the_handler_path():
    mutating, _ = webhook_configurations({"service": {"name": "heatsched", "namespace": "hs", "port": 443},
                                          "caBundle": "Q0E="})
    assert mutating["webhooks"][0]["clientConfig"]["service"]["path"] == "/pod_mutate"
