"""Heat-aware, residency-safe placement end to end: the real heat-aware kube-scheduler calls the operator's
extender, the apiserver's admission policies and the residency webhook hold residency, Prometheus feeds the tank
temperatures.

Sites (2 kwok nodes × 4 CPU each): montlucon-residence, metz-hospital, sarreguemines-factory (FR) and
frankfurt-office (DE).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from heatsched.explain import fetch_record
from heatsched.placement.model import COUNTRY_LABEL
from kubernetes import client
from stack import wait_for

MONTLUCON, METZ, SARREGUEMINES, FRANKFURT = (
    "montlucon-residence", "metz-hospital", "sarreguemines-factory", "frankfurt-office")
FR = {"heatsched.io/residency": "FR"}


def bound(stack, namespace: str, names: list[str], timeout: float = 40) -> dict[str, str]:
    """Wait until every pod is bound; pod name -> site of its node."""
    def check():
        pods = {p.metadata.name: p for p in stack.core.list_namespaced_pod(namespace).items}
        if all(pods.get(n) and pods[n].spec.node_name for n in names):
            return {n: stack.node_site(pods[n].spec.node_name) for n in names}
        return None
    return wait_for(check, timeout, what=f"pods {names} bound")


def scheduling_message(stack, namespace: str, pod: str) -> str:
    def check():
        events = stack.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={pod}").items
        failed = [e.message for e in events if e.reason == "FailedScheduling"]
        return failed[-1] if failed else None
    return wait_for(check, 30, what=f"FailedScheduling event for {pod}")


def explain(stack, namespace: str, pod: str) -> str:
    out = subprocess.run([sys.executable, "-m", "heatsched.cli", "explain", pod, "-n", namespace,
                          f"--kubeconfig={stack.cluster.kubeconfig}"], capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_cold_french_site_gets_new_pods_over_hot_ones(stack, heat_namespace):
    stack.set_temperatures({MONTLUCON: 50.0, METZ: 76.0, SARREGUEMINES: 88.0, FRANKFURT: 62.0})
    names = [f"job-{i}" for i in range(4)]
    for name in names:
        stack.pod(heat_namespace, name, annotations=FR)
    sites = bound(stack, heat_namespace, names)
    assert set(sites.values()) == {MONTLUCON}, sites
    pod = stack.core.read_namespaced_pod("job-0", heat_namespace)
    assert pod.spec.scheduler_name == "heat-aware"
    placement = json.loads(wait_for(lambda: (stack.core.read_namespaced_pod("job-0", heat_namespace)
                                             .metadata.annotations or {}).get("heatsched.io/placement"), 15))
    assert placement["site"] == MONTLUCON and placement["tankCelsius"] == 50.0 and placement["score"] > 0.5
    text = explain(stack, heat_namespace, "job-0")
    assert MONTLUCON in text and "50.0" in text


def test_french_pods_never_land_in_germany_even_when_it_is_coldest(stack, heat_namespace):
    stack.set_temperatures({MONTLUCON: 70.0, METZ: 70.0, SARREGUEMINES: 88.0, FRANKFURT: 30.0})
    fr = [f"fr-{i}" for i in range(6)]
    for name in fr:
        stack.pod(heat_namespace, name, annotations=FR)
    sites = bound(stack, heat_namespace, fr)
    assert FRANKFURT not in sites.values(), sites
    for name in fr:
        node = stack.core.read_namespaced_pod(name, heat_namespace).spec.node_name
        assert stack.node_labels(node)[COUNTRY_LABEL] == "FR"
    # the same preference with no residency picks the cold German tank: it is residency, not heat, that kept
    # the French pods home
    stack.pod(heat_namespace, "anywhere")
    assert bound(stack, heat_namespace, ["anywhere"]) == {"anywhere": FRANKFURT}


def test_resident_pods_with_no_capacity_stay_pending_with_a_readable_reason(stack, heat_namespace):
    stack.pod(heat_namespace, "too-big", cpu="6", annotations=FR)
    stack.pod(heat_namespace, "swiss", annotations={"heatsched.io/residency": "CH"})
    big = scheduling_message(stack, heat_namespace, "too-big")
    assert "Insufficient cpu" in big and "node affinity" in big, big
    swiss = scheduling_message(stack, heat_namespace, "swiss")
    assert "didn't match Pod's node affinity" in swiss, swiss
    assert stack.core.read_namespaced_pod("swiss", heat_namespace).spec.node_name is None
    text = explain(stack, heat_namespace, "swiss")
    assert "Pending" in text and "node affinity" in text and "CH" in text


def test_overheated_sites_get_no_new_pods_and_pending_pods_schedule_once_one_cools(stack, heat_namespace):
    stack.set_temperatures({MONTLUCON: 86.0, METZ: 81.0, SARREGUEMINES: 96.0, FRANKFURT: 40.0})
    for name in ("hot-0", "hot-1"):
        stack.pod(heat_namespace, name, annotations=FR)
    message = scheduling_message(stack, heat_namespace, "hot-0")
    assert "°C" in message and "max" in message, message
    time.sleep(3)
    assert all(stack.core.read_namespaced_pod(n, heat_namespace).spec.node_name is None for n in ("hot-0", "hot-1"))
    stack.set_temperatures({MONTLUCON: 52.0}, wait_state=False)  # nobody touches the pods: they must retry alone
    assert set(bound(stack, heat_namespace, ["hot-0", "hot-1"], timeout=60).values()) == {MONTLUCON}


def test_heat_never_keeps_a_pod_waiting_past_the_bound(stack, heat_namespace):
    """Every French tank hot and none cooling: the FR pod is held off them, then placed on one once it has
    waited the operator's heat wait bound (e2e runs it at MAX_HEAT_WAIT_S), and explain says so."""
    from stack import MAX_HEAT_WAIT_S

    stack.set_temperatures({MONTLUCON: 86.0, METZ: 81.0, SARREGUEMINES: 96.0, FRANKFURT: 40.0})
    began = time.monotonic()
    stack.pod(heat_namespace, "patient", annotations=FR)
    message = scheduling_message(stack, heat_namespace, "patient")
    assert "heat wait bound" in message, message
    site = bound(stack, heat_namespace, ["patient"], timeout=MAX_HEAT_WAIT_S + 90)["patient"]
    assert site in (MONTLUCON, METZ, SARREGUEMINES)  # hot, but French: residency never bends
    assert time.monotonic() - began >= MAX_HEAT_WAIT_S - 1
    record = json.loads(wait_for(lambda: (stack.core.read_namespaced_pod("patient", heat_namespace)
                                          .metadata.annotations or {}).get("heatsched.io/placement"), 15))
    assert "taken although heat-blocked" in record["heatWaitBound"], record
    assert "heat wait bound used" in explain(stack, heat_namespace, "patient")
    served = json.loads(fetch_record(f"http://127.0.0.1:{stack.extender_port()}", heat_namespace, "patient"))
    assert served == record  # the placement service's memory, which the annotation copies

    def placement_event():
        events = stack.core.list_namespaced_event(heat_namespace, field_selector="involvedObject.name=patient").items
        return next((e.message for e in events if e.reason == "HeatAwarePlacement"), None)
    assert "heat wait bound used" in wait_for(placement_event, 15, what="a HeatAwarePlacement event")
    stack.set_temperatures({MONTLUCON: 70.0, METZ: 70.0, SARREGUEMINES: 88.0, FRANKFURT: 30.0})


def test_without_the_extender_pods_still_schedule_and_residency_holds(stack, heat_namespace):
    stack.set_temperatures({MONTLUCON: 70.0, METZ: 70.0, SARREGUEMINES: 88.0, FRANKFURT: 30.0})
    stack.stop_operator()
    stack.start_operator(extender=False)  # the webhook stays, the extender's port is closed
    try:
        names = [f"noext-{i}" for i in range(6)]
        for name in names:
            stack.pod(heat_namespace, name, annotations=FR)
        sites = bound(stack, heat_namespace, names)
        assert FRANKFURT not in sites.values(), sites
    finally:
        stack.stop_operator()
        stack.start_operator()


@pytest.mark.parametrize("value, message", [
    ("fr", "must be upper case: 'FR'"),
    ("France", "not an ISO 3166-1 alpha-2 code"),
    ("FR;DE", "separate codes with commas"),
    ("UK", "use 'GB'"),
    ("", "residency is empty"),
])
def test_an_invalid_residency_annotation_is_refused_at_admission(stack, namespace, value, message):
    with pytest.raises(client.ApiException) as err:
        stack.pod(namespace, "bad", annotations={"heatsched.io/residency": value})
    body = json.loads(err.value.body)
    assert err.value.status == 422 and message in body["message"], body["message"]
    assert "allowed:" in body["message"]


def test_a_namespace_default_residency_is_inherited_and_enforced(stack, api):
    import uuid

    name = f"resident-{uuid.uuid4().hex[:6]}"
    with pytest.raises(client.ApiException) as err:
        stack.core.create_namespace({"metadata": {"name": name, "annotations": {"heatsched.io/residency": "EU,XX"}}})
    assert "XX" in json.loads(err.value.body)["message"]
    stack.core.create_namespace({"metadata": {"name": name, "annotations": {"heatsched.io/residency": "FR"},
                                              "labels": {"heatsched.io/scheduling": "heat-aware"}}})
    try:
        stack.set_temperatures({FRANKFURT: 30.0, MONTLUCON: 70.0})
        stack.pod(name, "inherits")
        pod = stack.core.read_namespaced_pod("inherits", name)
        assert pod.metadata.annotations["heatsched.io/residency"] == "FR"
        assert pod.spec.scheduler_name == "heat-aware"
        assert bound(stack, name, ["inherits"])["inherits"] != FRANKFURT
        with pytest.raises(client.ApiException) as err:
            stack.core.patch_namespaced_pod("inherits", name,
                                            {"metadata": {"annotations": {"heatsched.io/residency": "EU"}}})
        assert "cannot change" in json.loads(err.value.body)["message"]
        for wider in ("US", "EU", "FR,DE"):  # a namespace's residency is a ceiling: a pod cannot widen it
            with pytest.raises(client.ApiException) as err:
                stack.pod(name, f"wider-{wider.replace(',', '-').lower()}", annotations={"heatsched.io/residency": wider})
            message = json.loads(err.value.body)["message"]
            assert err.value.status == 403 and "not within its namespace's residency FR" in message, message
    finally:
        stack.core.delete_namespace(name)


def _bind(stack, namespace: str, pod: str, node: str, legacy: bool = False):
    """POST a Binding: to pods/{pod}/binding (what schedulers use), or to the legacy v1 bindings resource."""
    body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod}, "target": {"kind": "Node", "name": node}}
    if legacy:
        return stack.core.create_namespaced_binding(namespace, body, _preload_content=False)
    return stack.core.create_namespaced_pod_binding(pod, namespace, body, _preload_content=False)


@pytest.mark.parametrize("legacy", [False, True], ids=["pods-binding", "v1-bindings"])
def test_a_binding_outside_the_residency_is_refused_whoever_sends_it(stack, namespace, legacy):
    """pods/binding is the path every scheduler takes; kwok, like virtual kubelets, never re-checks affinity."""
    stack.pod(namespace, "manual", annotations=FR, scheduler="nobody")  # no scheduler will take it
    with pytest.raises(client.ApiException) as err:
        _bind(stack, namespace, "manual", f"{FRANKFURT}-1", legacy)
    message = json.loads(err.value.body)["message"]
    assert err.value.status == 403 and "is in DE, outside residency FR" in message, message
    assert stack.core.read_namespaced_pod("manual", namespace).spec.node_name is None
    _bind(stack, namespace, "manual", f"{MONTLUCON}-1", legacy)
    assert stack.core.read_namespaced_pod("manual", namespace).spec.node_name == f"{MONTLUCON}-1"


def test_a_resident_pod_in_kube_system_is_held_to_its_residency(stack):
    import uuid

    name = f"sys-{uuid.uuid4().hex[:6]}"
    stack.pod("kube-system", name, annotations=FR, scheduler="nobody")
    try:
        pod = stack.core.read_namespaced_pod(name, "kube-system")
        terms = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
        assert all(any(e.key == COUNTRY_LABEL and e.values == ["FR"] for e in t.match_expressions) for t in terms)
        with pytest.raises(client.ApiException) as err:
            _bind(stack, "kube-system", name, f"{FRANKFURT}-1")
        assert err.value.status == 403
    finally:
        stack.core.delete_namespaced_pod(name, "kube-system", grace_period_seconds=0)
