"""Every path to a node, on the real control plane (docs/placement.md#every-path-to-a-node).

The pod path is held by kube-apiserver's admission policies (CEL), so it holds with every heatsched process
SIGKILLed; the webhook is left with the checks that look up another object (a preset node, volumes, bindings by
binders other than kube-scheduler).
"""

from __future__ import annotations

import json
import uuid
from contextlib import contextmanager

import pytest
from heatsched.placement.model import COUNTRY_LABEL
from kubernetes import client
from stack import wait_for

FR = {"heatsched.io/residency": "FR"}
MONTLUCON, FRANKFURT = "montlucon-residence", "frankfurt-office"


def country_terms(pod) -> list[list[str]]:
    """For each required nodeSelectorTerm, the values of its country requirement(s)."""
    terms = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
    return [[v for e in (t.match_expressions or []) if e.key == COUNTRY_LABEL for v in e.values] for t in terms]


def refused(fn, *args, **kwargs) -> tuple[int, str]:
    with pytest.raises(client.ApiException) as err:
        fn(*args, **kwargs)
    return err.value.status, json.loads(err.value.body)["message"]


@contextmanager
def as_user(stack, user: str, groups: tuple[str, ...] = ()):
    """A CoreV1Api that impersonates `user` (the admin may impersonate anyone)."""
    api = client.ApiClient(stack.api.configuration)
    api.set_default_header("Impersonate-User", user)
    for g in groups:
        api.set_default_header("Impersonate-Group", g)
    try:
        yield client.CoreV1Api(api)
    finally:
        api.close()


def pods_of(stack, namespace: str, label: str):
    return stack.core.list_namespaced_pod(namespace, label_selector=label).items


def test_with_every_heatsched_process_killed_resident_pods_are_admitted_and_placed_in_their_country(
        stack, namespace, heat_namespace):
    stack.set_temperatures({FRANKFURT: 30.0, MONTLUCON: 70.0})
    stack.stop_operator(kill=True)  # controller, extender and webhook: all SIGKILLed
    try:
        stack.pod(namespace, "alone", annotations=FR)  # the default scheduler
        apps = client.AppsV1Api(stack.api)
        apps.create_namespaced_deployment(heat_namespace, {
            "metadata": {"name": "web"}, "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                                                  "template": {"metadata": {"labels": {"app": "web"}, "annotations": FR},
                                                               "spec": {"containers": [{"name": "c", "image": "x"}]}}}})

        def placed():
            pods = [stack.core.read_namespaced_pod("alone", namespace), *pods_of(stack, heat_namespace, "app=web")]
            return pods if len(pods) == 5 and all(p.spec.node_name for p in pods) else None
        pods = wait_for(placed, 60, what="resident pods placed while heatsched is down")
        for p in pods:
            assert country_terms(p) == [["FR"]]
            assert stack.node_site(p.spec.node_name) != FRANKFURT, p.spec.node_name
        assert {p.spec.scheduler_name for p in pods} == {"default-scheduler", "heat-aware"}
    finally:
        stack.start_operator()


@pytest.mark.parametrize("kind", ["Job", "StatefulSet"])
def test_pods_made_by_controllers_carry_the_residency_and_land_in_the_country(stack, namespace, kind):
    stack.set_temperatures({FRANKFURT: 30.0, MONTLUCON: 70.0})
    template = {"metadata": {"labels": {"app": "w"}, "annotations": FR},
                "spec": {"containers": [{"name": "c", "image": "x"}],
                         **({"restartPolicy": "Never"} if kind == "Job" else {})}}
    if kind == "Job":
        client.BatchV1Api(stack.api).create_namespaced_job(namespace, {
            "metadata": {"name": "w"}, "spec": {"parallelism": 3, "completions": 3, "template": template}})
    else:
        client.AppsV1Api(stack.api).create_namespaced_stateful_set(namespace, {
            "metadata": {"name": "w"}, "spec": {"replicas": 2, "serviceName": "w", "podManagementPolicy": "Parallel",
                                                "selector": {"matchLabels": {"app": "w"}}, "template": template}})
    want = 3 if kind == "Job" else 2
    pods = wait_for(lambda: (p := pods_of(stack, namespace, "app=w")) and len(p) >= want
                    and all(x.spec.node_name for x in p) and p, 60, what=f"{kind} pods bound")
    for p in pods:
        assert country_terms(p) == [["FR"]] and stack.node_site(p.spec.node_name) != FRANKFURT


def test_daemonset_pods_for_foreign_nodes_never_run(stack, namespace):
    client.AppsV1Api(stack.api).create_namespaced_daemon_set(namespace, {
        "metadata": {"name": "agent"}, "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {
            "metadata": {"labels": {"app": "agent"}, "annotations": FR},
            "spec": {"nodeSelector": {"type": "kwok"}, "containers": [{"name": "c", "image": "x"}]}}}})
    nodes = [n.metadata.name for n in stack.core.list_node(label_selector="type=kwok").items]
    pods = wait_for(lambda: (p := pods_of(stack, namespace, "app=agent")) and len(p) == len(nodes)
                    and sum(bool(x.spec.node_name) for x in p) == sum(not n.startswith(FRANKFURT) for n in nodes)
                    and p, 60, what="DaemonSet pods created, the French ones bound")
    for p in pods:
        assert all("FR" in values and len(values) == 1 for values in country_terms(p))
        if p.spec.node_name:
            assert stack.node_site(p.spec.node_name) != FRANKFURT
    pending = [p for p in pods if not p.spec.node_name]
    assert len(pending) == sum(n.startswith(FRANKFURT) for n in nodes) >= 1


def test_a_preset_node_name_outside_the_residency_is_refused_and_one_inside_admitted(stack, namespace):
    body = {"metadata": {"name": "pinned", "annotations": FR},
            "spec": {"nodeName": f"{FRANKFURT}-1", "containers": [{"name": "c", "image": "x"}]}}
    status, message = refused(stack.core.create_namespaced_pod, namespace, body)
    assert status == 403 and f"node {FRANKFURT}-1 is in DE, outside residency FR" in message, message
    body["spec"]["nodeName"] = f"{MONTLUCON}-1"
    assert stack.core.create_namespaced_pod(namespace, body).spec.node_name == f"{MONTLUCON}-1"


def test_a_bound_pod_keeps_its_node_and_residency_when_an_ephemeral_container_is_added(stack, namespace):
    stack.pod(namespace, "debugged", annotations=FR)
    node = wait_for(lambda: stack.core.read_namespaced_pod("debugged", namespace).spec.node_name, 30)
    stack.core.patch_namespaced_pod_ephemeralcontainers("debugged", namespace, {
        "spec": {"ephemeralContainers": [{"name": "debug", "image": "busybox", "targetContainerName": "c"}]}})
    pod = stack.core.read_namespaced_pod("debugged", namespace)
    assert pod.spec.ephemeral_containers and pod.spec.node_name == node
    assert pod.metadata.annotations["heatsched.io/residency"] == "FR" and country_terms(pod) == [["FR"]]


def test_a_gated_pod_cannot_drop_its_country_requirement(stack, namespace):
    body = {"metadata": {"name": "gated", "annotations": FR},
            "spec": {"schedulingGates": [{"name": "example.com/wait"}], "containers": [{"name": "c", "image": "x"}]}}
    stack.core.create_namespaced_pod(namespace, body)
    wide = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]}}}
    status, _ = refused(stack.core.patch_namespaced_pod, "gated", namespace, {"spec": {"affinity": wide}})
    assert status in (403, 422)
    assert country_terms(stack.core.read_namespaced_pod("gated", namespace)) == [["FR"]]


def test_a_tenant_cannot_widen_a_namespace_residency_without_the_residency_admin_role(stack, namespace):
    rbac = client.RbacAuthorizationV1Api(stack.api)
    name = f"tenant-{uuid.uuid4().hex[:6]}"
    rbac.create_cluster_role({"metadata": {"name": name}, "rules": [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "patch", "update"]}]})
    bindings = [f"{name}-ns", f"{name}-residency"]
    rbac.create_cluster_role_binding({"metadata": {"name": bindings[0]}, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "User", "name": name}]})
    stack.core.patch_namespace(namespace, {"metadata": {"annotations": FR}})  # the admin sets it
    try:
        with as_user(stack, name) as tenant:
            status, message = refused(tenant.patch_namespace, namespace,
                                      {"metadata": {"annotations": {"heatsched.io/residency": "EU"}}})
            assert status == 403 and "needs update on residencies.heatsched.io" in message, message
            refused(tenant.patch_namespace, namespace, {"metadata": {"annotations": {"heatsched.io/residency": None}}})
            tenant.patch_namespace(namespace, {"metadata": {"labels": {"team": "a"}}})  # other edits are fine
            rbac.create_cluster_role_binding({"metadata": {"name": bindings[1]}, "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "heatsched-residency-admin"},
                "subjects": [{"kind": "User", "name": name}]})
            wait_for(lambda: _try(tenant.patch_namespace, namespace,
                                  {"metadata": {"annotations": {"heatsched.io/residency": "EU"}}}), 15,
                     what="the residency admin may widen it")
    finally:
        for b in bindings:
            try:
                rbac.delete_cluster_role_binding(b)
            except client.ApiException:
                pass
        rbac.delete_cluster_role(name)


def _try(fn, *args) -> bool:
    try:
        fn(*args)
        return True
    except client.ApiException:
        return False


def test_a_namespace_annotated_before_heatsched_was_installed_is_enforced(stack):
    adm = client.AdmissionregistrationV1Api(stack.api)
    name = f"old-{uuid.uuid4().hex[:6]}"
    saved = {k: adm.read_validating_admission_policy_binding(k) for k in ("heatsched-namespace-residency",)}
    for k in saved:  # as if heatsched were not installed yet
        adm.delete_validating_admission_policy_binding(k)
    try:
        stack.core.create_namespace({"metadata": {"name": name, "annotations": {"heatsched.io/residency": "FR"}}})
    finally:
        stack.apply_policies()
    try:
        stack.pod(name, "p", scheduler="nobody")
        pod = stack.core.read_namespaced_pod("p", name)
        assert pod.metadata.annotations["heatsched.io/residency"] == "FR" and country_terms(pod) == [["FR"]]
        status, message = refused(stack.pod, name, "wide", annotations={"heatsched.io/residency": "DE"})
        assert status == 403 and "ceiling" in message
    finally:
        stack.core.delete_namespace(name)


# ---- volumes -----------------------------------------------------------------------------------------
def _pv(name: str, *, country: str | None, klass: str, claim: tuple[str, str]) -> dict:
    labels = {"heatsched.io/country": country} if country else {}
    return {"metadata": {"name": name, "labels": labels}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": klass,
        "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": f"/tmp/{name}"},
        "claimRef": {"namespace": claim[0], "name": claim[1]}}}


def _pvc(name: str, klass: str, volume: str | None = None) -> dict:
    return {"metadata": {"name": name}, "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": klass,
                                                  "resources": {"requests": {"storage": "1Gi"}},
                                                  **({"volumeName": volume} if volume else {})}}


def _pod_with(claim: str, name: str) -> dict:
    return {"metadata": {"name": name, "annotations": FR}, "spec": {
        "containers": [{"name": "c", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}}


def test_a_resident_pod_may_only_mount_storage_known_to_be_inside_its_residency(stack, namespace):
    storage = client.StorageV1Api(stack.api)
    tag = uuid.uuid4().hex[:6]
    pvs = {c: f"pv-{c.lower()}-{tag}" for c in ("DE", "FR", "none")}
    classes = {"fr": f"fr-local-{tag}", "open": f"open-{tag}"}
    storage.create_storage_class({"metadata": {"name": classes["fr"]}, "provisioner": "kubernetes.io/no-provisioner",
                                  "volumeBindingMode": "WaitForFirstConsumer", "allowedTopologies": [
                                      {"matchLabelExpressions": [{"key": COUNTRY_LABEL, "values": ["FR"]}]}]})
    storage.create_storage_class({"metadata": {"name": classes["open"]}, "provisioner": "kubernetes.io/no-provisioner",
                                  "volumeBindingMode": "WaitForFirstConsumer"})
    try:
        for country, pv in pvs.items():
            stack.core.create_persistent_volume(_pv(pv, country=None if country == "none" else country,
                                                    klass="manual", claim=(namespace, f"c-{country.lower()}")))
            stack.core.create_namespaced_persistent_volume_claim(namespace, _pvc(f"c-{country.lower()}", "manual", pv))
        status, message = refused(stack.core.create_namespaced_pod, namespace, _pod_with("c-de", "on-de"))
        assert status == 403 and "is in DE (pv-label), outside residency FR" in message, message
        status, message = refused(stack.core.create_namespaced_pod, namespace, _pod_with("c-none", "on-none"))
        assert status == 403 and "location unknown" in message, message
        stack.core.create_namespaced_pod(namespace, _pod_with("c-fr", "on-fr"))
        # WaitForFirstConsumer: not bound yet, so the class says where it will be provisioned
        stack.core.create_namespaced_persistent_volume_claim(namespace, _pvc("later-fr", classes["fr"]))
        stack.core.create_namespaced_pod(namespace, _pod_with("later-fr", "wffc-fr"))
        stack.core.create_namespaced_persistent_volume_claim(namespace, _pvc("later-open", classes["open"]))
        status, message = refused(stack.core.create_namespaced_pod, namespace, _pod_with("later-open", "wffc-open"))
        assert status == 403 and "no allowedTopologies" in message, message
        nfs = {"metadata": {"name": "nfs", "annotations": FR}, "spec": {
            "containers": [{"name": "c", "image": "x"}], "volumes": [{"name": "n", "nfs": {"server": "f", "path": "/"}}]}}
        status, message = refused(stack.core.create_namespaced_pod, namespace, nfs)
        assert status == 403 and "nfs volumes declare no location" in message, message
    finally:
        for pv in pvs.values():
            stack.core.delete_persistent_volume(pv)
        for klass in classes.values():
            storage.delete_storage_class(klass)
