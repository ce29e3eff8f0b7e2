"""The ground everything stands on: the real kube-scheduler binds a pod to a kwok node and kwok runs it."""

from __future__ import annotations

import uuid

from heatsched.cluster.kwoknodes import kwok_node
from kubernetes import client
from stack import wait_for


def test_server_reports_pinned_kubernetes_version(api, cluster):
    from heatsched.cluster.toolchain import pinned_versions

    info = client.VersionApi(api).get_code()
    if cluster.local:
        assert info.git_version == pinned_versions()["KUBERNETES_VERSION"]
    assert info.major == "1"


def test_pod_is_bound_by_kube_scheduler_and_run_by_kwok(api, namespace):
    core = client.CoreV1Api(api)
    node = f"kwok-smoke-{uuid.uuid4().hex[:6]}"
    core.create_node(kwok_node(node, cpu="4"))
    try:
        wait_for(lambda: any(c.type == "Ready" and c.status == "True"
                             for c in (core.read_node(node).status.conditions or [])))
        core.create_namespaced_pod(namespace, {
            "metadata": {"name": "smoke"},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                     "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}]},
        })
        pod = wait_for(lambda: (p := core.read_namespaced_pod("smoke", namespace)).status.phase == "Running" and p)
        assert pod.spec.node_name == node
        events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=smoke").items
        assert any(e.reason == "Scheduled" and e.source.component == "default-scheduler"
                   or e.reporting_component == "default-scheduler" for e in events)
    finally:
        core.delete_node(node)
