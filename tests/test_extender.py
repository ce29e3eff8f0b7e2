"""Scheduler extender over HTTP: Go field names, both node modes, fail-closed residency, 400 on bad input."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from heatsched.extender.server import make_app
from heatsched.extender.wire import (
    ExtenderArgs,
    ExtenderFilterResult,
    HostPriority,
    V1Pod,
    WireError,
    decode_args,
    parse_cpu_quantity,
    to_extender_priority,
)
from heatsched.placement.core import score_nodes
from heatsched.placement.model import (
    COUNTRY_LABEL,
    SITE_LABEL,
    NodeView,
    PodRequest,
    SiteView,
    Snapshot,
    Tank,
    ThermalState,
)

FILTER, PRIORITIZE = "/scheduler/filter", "/scheduler/prioritize"
FILTER_KEYS = {"Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}


def make_snapshot() -> Snapshot:
    tank = Tank(volume_l=1500, min_c=55, target_c=60, max_c=85)

    def site(name, country, t, state=ThermalState.HEATING):
        return SiteView(name, country, tank, state, t, 10.0, True, absorbable_kw=8.0, watts_per_cpu=12.0)

    sites = [
        site("montlucon-residence", "FR", 56.0),
        site("lyon-ecole", "FR", 78.0, ThermalState.COMFORTABLE),
        site("vichy-piscine", "FR", 86.0, ThermalState.OVERHEATED),
        site("berlin-wohnheim", "DE", 50.0, ThermalState.COLD),
    ]
    nodes = {
        "mtl-1": NodeView("mtl-1", "montlucon-residence", "FR"),
        "lyon-1": NodeView("lyon-1", "lyon-ecole", "FR"),
        "vichy-1": NodeView("vichy-1", "vichy-piscine", "FR"),
        "ber-1": NodeView("ber-1", "berlin-wohnheim", "DE"),
    }
    return Snapshot({s.name: s for s in sites}, nodes, {"lyon-ecole": 1.0})


NODE_NAMES = ["mtl-1", "lyon-1", "vichy-1", "ber-1", "cloud-1"]  # cloud-1: not a heat-site node

# A pod as kube-scheduler marshals it (encoding/json of v1.Pod, untagged extenderv1.ExtenderArgs).
POD = {
    "metadata": {
        "name": "render-7d9f8-abcde",
        "generateName": "render-7d9f8-",
        "namespace": "studio",
        "uid": "6f1c1a52-3c1e-4a8e-9a59-2f8f0e0b7a11",
        "resourceVersion": "48213",
        "creationTimestamp": "2024-11-04T09:12:44Z",
        "labels": {"app": "render", "pod-template-hash": "7d9f8"},
        "annotations": {"heatsched.io/residency": "FR", "kubectl.kubernetes.io/restartedAt": "2024-11-04T09:12:00Z"},
        "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "render-7d9f8",
             "uid": "0d0c4d8e-1d8b-4c44-b6c4-1b9f3f6c2a10", "controller": True, "blockOwnerDeletion": True}
        ],
        "managedFields": [{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                           "time": "2024-11-04T09:12:44Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}],
    },
    "spec": {
        "volumes": [{"name": "kube-api-access-x2x9q", "projected": {"sources": [{"serviceAccountToken": {
            "expirationSeconds": 3607, "path": "token"}}], "defaultMode": 420}}],
        "initContainers": [
            {"name": "fetch", "image": "busybox:1.36", "resources": {"requests": {"cpu": "3", "memory": "64Mi"}}},
            {"name": "log-shipper", "image": "fluent-bit:3", "restartPolicy": "Always",
             "resources": {"requests": {"cpu": "250m"}}},
        ],
        "containers": [
            {"name": "render", "image": "registry.example/render:1.4", "args": ["--threads", "4"],
             "ports": [{"containerPort": 8080, "protocol": "TCP"}],
             "resources": {"limits": {"cpu": "4", "memory": "4Gi"}, "requests": {"cpu": "2", "memory": "2Gi"}},
             "volumeMounts": [{"name": "kube-api-access-x2x9q", "readOnly": True,
                               "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
             "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
             "imagePullPolicy": "IfNotPresent"},
            {"name": "metrics", "image": "registry.example/exporter:0.3",
             "resources": {"requests": {"cpu": "500m", "memory": "32Mi"}}},
        ],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "serviceAccount": "default",
        "securityContext": {},
        "schedulerName": "heat-aware",
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                         "tolerationSeconds": 300}],
        "priority": 0,
        "enableServiceLinks": True,
        "preemptionPolicy": "PreemptLowerPriority",
    },
    "status": {"phase": "Pending", "qosClass": "Burstable"},
}  # fmt: skip


def node_object(name: str, country: str | None = None, site: str | None = None) -> dict:
    labels = {
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "type": "kwok",
    }
    if country:
        labels[COUNTRY_LABEL] = country
    if site:
        labels[SITE_LABEL] = site
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": "1042",
            "creationTimestamp": "2024-11-01T08:00:00Z",
            "labels": labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
        },
        "spec": {"podCIDR": "10.244.3.0/24", "podCIDRs": ["10.244.3.0/24"]},
        "status": {
            "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2024-11-04T09:12:40Z",
                            "lastTransitionTime": "2024-11-01T08:00:05Z", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.3.17"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "6.1.0",
                         "osImage": "kwok", "containerRuntimeVersion": "kwok-v0.6.1", "kubeletVersion": "fake",
                         "kubeProxyVersion": "fake", "operatingSystem": "linux", "architecture": "amd64"},
            "images": [{"names": ["registry.example/render@sha256:9c1e", "registry.example/render:1.4"],
                        "sizeBytes": 412331200}],
        },
    }  # fmt: skip


NODES = {
    "mtl-1": node_object("mtl-1", "FR", "montlucon-residence"),
    "lyon-1": node_object("lyon-1", "FR", "lyon-ecole"),
    "vichy-1": node_object("vichy-1", "FR", "vichy-piscine"),
    "ber-1": node_object("ber-1", "DE", "berlin-wohnheim"),
    "cloud-1": node_object("cloud-1"),
}


def cache_args(pod: dict = POD, names: list[str] = NODE_NAMES) -> dict:
    return {"Pod": pod, "Nodes": None, "NodeNames": list(names)}


def full_args(pod: dict = POD, nodes: list[dict] | None = None) -> dict:
    items = nodes if nodes is not None else [NODES[n] for n in NODE_NAMES]
    return {"Pod": pod, "Nodes": {"metadata": {}, "items": items}, "NodeNames": None}


def with_residency(value: str | None) -> dict:
    pod = copy.deepcopy(POD)
    if value is None:
        del pod["metadata"]["annotations"]["heatsched.io/residency"]
    else:
        pod["metadata"]["annotations"]["heatsched.io/residency"] = value
    return pod


@pytest.fixture
def scored() -> list[tuple]:
    return []


@pytest.fixture
async def client(scored) -> AsyncIterator[TestClient]:
    snap = make_snapshot()
    app = make_app(lambda: snap, max_body_bytes=256 * 1024, on_scored=lambda *a: scored.append(a))
    async with TestClient(TestServer(app)) as c:
        yield c


async def post(client: TestClient, path: str, payload) -> tuple[int, object]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    resp = await client.post(path, data=body, headers={"Content-Type": "application/json"})
    return resp.status, await resp.json()


# --- filter ---------------------------------------------------------------------------------------


async def test_filter_in_node_cache_mode_answers_node_names_with_go_field_names(client) -> None:
    status, body = await post(client, FILTER, cache_args())
    assert status == 200
    assert set(body) == FILTER_KEYS
    assert body["Nodes"] is None
    assert body["NodeNames"] == ["mtl-1", "lyon-1"]
    assert body["Error"] == ""
    ExtenderFilterResult.model_validate(body)


async def test_filter_sends_no_reasons_when_a_node_passes(client) -> None:
    """kube-scheduler reads reasons only for a pod that fits nowhere (its event, preemption); the hot and the
    German node are left out of NodeNames all the same."""
    status, body = await post(client, FILTER, cache_args())
    assert status == 200 and body["NodeNames"] == ["mtl-1", "lyon-1"]
    assert body["FailedNodes"] == {} and body["FailedAndUnresolvableNodes"] == {}


async def test_filter_gives_every_node_its_reason_when_none_passes(client) -> None:
    """(A heat-blocked node alone gets its reason too: tests/test_fuel_controller.py, the held pod.)"""
    status, body = await post(client, FILTER, cache_args(names=["ber-1", "cloud-1"]))
    assert status == 200
    assert body["NodeNames"] == [] and body["FailedNodes"] == {}
    assert body["FailedAndUnresolvableNodes"]["ber-1"] == "node in DE, pod residency FR"
    assert "cannot be verified" in body["FailedAndUnresolvableNodes"]["cloud-1"]
    ExtenderFilterResult.model_validate(body)


async def test_filter_in_full_node_mode_returns_the_given_node_objects_untouched(client) -> None:
    status, body = await post(client, FILTER, full_args())
    assert status == 200
    assert set(body) == FILTER_KEYS
    assert body["NodeNames"] is None
    assert body["Nodes"]["items"] == [NODES["mtl-1"], NODES["lyon-1"]]
    status, body = await post(client, FILTER, full_args(nodes=[NODES["ber-1"], NODES["cloud-1"]]))
    assert body["Nodes"]["items"] == [] and set(body["FailedAndUnresolvableNodes"]) == {"ber-1", "cloud-1"}


async def test_unrestricted_pod_may_use_nodes_outside_heat_sites(client) -> None:
    status, body = await post(client, FILTER, cache_args(with_residency(None)))
    assert status == 200
    assert body["NodeNames"] == ["mtl-1", "lyon-1", "ber-1", "cloud-1"]  # not vichy-1: its tank is overheated


async def test_node_labels_in_the_request_cannot_grant_residency(client) -> None:
    forged = node_object("cloud-1", "FR", "montlucon-residence")  # unknown to heatsched's snapshot
    status, body = await post(client, FILTER, full_args(nodes=[forged, NODES["mtl-1"]]))
    assert status == 200
    assert [n["metadata"]["name"] for n in body["Nodes"]["items"]] == ["mtl-1"]
    status, body = await post(client, FILTER, full_args(nodes=[forged]))
    assert body["Nodes"]["items"] == [] and "cloud-1" in body["FailedAndUnresolvableNodes"]


async def test_country_label_disagreeing_with_snapshot_fails_closed(client) -> None:
    tampered = node_object("mtl-1", "DE", "montlucon-residence")
    status, body = await post(client, FILTER, full_args(pod=with_residency("FR,DE"), nodes=[tampered]))
    assert status == 200
    assert body["Nodes"]["items"] == []
    assert "scheduler sees country label 'DE'" in body["FailedAndUnresolvableNodes"]["mtl-1"]


@pytest.mark.parametrize("annotation", ["fr", "France", "FR;DE", "UK", ""])
@pytest.mark.parametrize("mode", ["cache", "full"])
async def test_invalid_residency_annotation_makes_every_node_unresolvable(client, annotation, mode) -> None:
    pod = with_residency(annotation)
    status, body = await post(client, FILTER, cache_args(pod) if mode == "cache" else full_args(pod))
    assert status == 200
    assert set(body["FailedAndUnresolvableNodes"]) == set(NODE_NAMES)
    assert all("allowed" in reason or "empty" in reason for reason in body["FailedAndUnresolvableNodes"].values())
    assert (body["NodeNames"] if mode == "cache" else body["Nodes"]["items"]) == []
    status, scores = await post(client, PRIORITIZE, cache_args(pod))
    assert status == 200 and {s["Score"] for s in scores} == {0}


async def test_legacy_lower_case_keys_are_read_like_go_does(client) -> None:
    status, body = await post(client, FILTER, {"pod": POD, "nodenames": ["mtl-1", "ber-1"]})
    assert status == 200
    assert body["NodeNames"] == ["mtl-1"]


async def test_filter_internal_error_is_reported_in_error_not_as_500(scored) -> None:
    def broken() -> Snapshot:
        raise RuntimeError("snapshot store unavailable")

    async with TestClient(TestServer(make_app(broken))) as c:
        status, body = await post(c, FILTER, cache_args())
        assert status == 200
        assert "snapshot store unavailable" in body["Error"]
        status, scores = await post(c, PRIORITIZE, cache_args())
        assert status == 200 and scores == [{"Host": n, "Score": 0} for n in NODE_NAMES]
        health = await c.get("/healthz")
        assert health.status == 503


# --- prioritize -----------------------------------------------------------------------------------


async def test_prioritize_answers_host_priorities_on_the_0_to_10_scale(client, scored) -> None:
    status, body = await post(client, PRIORITIZE, cache_args(names=["mtl-1", "lyon-1", "cloud-1"]))
    assert status == 200
    assert [set(p) for p in body] == [{"Host", "Score"}] * 3
    assert [p["Host"] for p in body] == ["mtl-1", "lyon-1", "cloud-1"]
    for p in body:
        HostPriority.model_validate(p)
    by_host = {p["Host"]: p["Score"] for p in body}
    assert by_host["mtl-1"] > by_host["cloud-1"] == 5 > by_host["lyon-1"]
    # the edge only rescales: the same snapshot through the core gives the same integers
    pod = PodRequest("render-7d9f8-abcde", "studio", frozenset({"FR"}), V1Pod.model_validate(POD).cpu_request())
    core = score_nodes(pod, ["mtl-1", "lyon-1", "cloud-1"], make_snapshot())
    expected = [to_extender_priority(s.score) for s in core]
    assert [p["Score"] for p in body] == expected


async def test_prioritize_full_node_mode_uses_snapshot_not_request_labels(client) -> None:
    forged = node_object("cloud-1", "FR", "montlucon-residence")
    status, body = await post(client, PRIORITIZE, full_args(nodes=[forged]))
    assert status == 200 and body == [{"Host": "cloud-1", "Score": 5}]


async def test_on_scored_hook_receives_the_reasons(client, scored) -> None:
    await post(client, PRIORITIZE, cache_args(names=["mtl-1"]))
    [(uid, ref, scores)] = scored
    assert uid == POD["metadata"]["uid"] and ref == "studio/render-7d9f8-abcde"
    assert scores.best == "mtl-1" and "montlucon-residence" in scores.sites["montlucon-residence"][1]


async def test_failing_on_scored_hook_does_not_change_the_answer() -> None:
    def hook(*_):
        raise RuntimeError("explain store full")

    snap = make_snapshot()
    async with TestClient(TestServer(make_app(lambda: snap, on_scored=hook))) as c:
        status, body = await post(c, PRIORITIZE, cache_args(names=["mtl-1"]))
    assert status == 200 and body[0]["Score"] > 5


async def test_healthz_reports_snapshot_size(client) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "sites": 4, "nodes": 4}


# --- bad input ------------------------------------------------------------------------------------


def _pod_with_cpu(cpu) -> dict:
    pod = copy.deepcopy(POD)
    pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = cpu
    return pod


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"", "not JSON"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
        (json.dumps({"NodeNames": ["mtl-1"]}).encode(), "Pod"),
        (json.dumps({"Pod": None, "NodeNames": ["mtl-1"]}).encode(), "Pod"),
        (json.dumps({"Pod": 3, "NodeNames": ["mtl-1"]}).encode(), "Pod"),
        (json.dumps({"Pod": POD}).encode(), "exactly one of Nodes"),
        (json.dumps({"Pod": POD, "Nodes": {"items": []}, "NodeNames": []}).encode(), "exactly one of Nodes"),
        (json.dumps({"Pod": POD, "NodeNames": "mtl-1"}).encode(), "NodeNames"),
        (json.dumps({"Pod": POD, "NodeNames": [1, 2]}).encode(), "NodeNames"),
        (json.dumps(full_args(nodes=[{"metadata": {}}])).encode(), "metadata.name"),
        (json.dumps(full_args(nodes=[{"metadata": {"name": "x", "labels": {"a": 1}}}])).encode(), "labels"),
        (json.dumps(cache_args(_pod_with_cpu("lots"))).encode(), "not a Kubernetes quantity"),
        (json.dumps(cache_args(_pod_with_cpu("-1"))).encode(), "negative"),
        (json.dumps(cache_args(_pod_with_cpu(True))).encode(), "must be a string"),
        (json.dumps({"Pod": {"metadata": {"annotations": {"heatsched.io/residency": 7}}}, "NodeNames": []}).encode(),
         "annotations"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("path", [FILTER, PRIORITIZE])
async def test_malformed_request_is_a_400_with_a_message(client, body, needle, path) -> None:
    resp = await client.post(path, data=body)
    assert resp.status == 400
    assert needle in (await resp.json())["error"]


async def test_oversized_body_is_a_400(client) -> None:
    big = json.dumps(cache_args(names=[f"node-{i:07d}" for i in range(40_000)])).encode()
    resp = await client.post(FILTER, data=big)
    assert resp.status == 400
    assert "limit" in (await resp.json())["error"]


async def test_oversized_chunked_body_is_a_400(client) -> None:
    async def chunks():
        for _ in range(100):
            yield b" " * 8192

    resp = await client.post(FILTER, data=chunks())
    assert resp.status == 400
    assert "limit" in (await resp.json())["error"]


# --- wire details ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "cores"),
    [("500m", 0.5), ("2", 2.0), ("1.5", 1.5), ("2k", 2000.0), ("100u", 1e-4), ("1e3", 1000.0), ("1E-1", 0.1),
     (".5", 0.5), ("3.", 3.0), ("1Ki", 1024.0), ("0", 0.0), ("+1", 1.0), (2, 2.0), (0.25, 0.25)],
)  # fmt: skip
def test_cpu_quantities_parse_like_kubernetes(quantity, cores) -> None:
    assert parse_cpu_quantity(quantity) == pytest.approx(cores)


@pytest.mark.parametrize(
    "quantity", ["", "m", "abc", "1.2.3", "1 m", "1mm", "--1", "1e", "1e1000", "1E", "-500m", None, [], True, math.inf,
                 "9" * 100, "5P"],
)  # fmt: skip
def test_garbage_cpu_quantity_is_a_clear_error(quantity) -> None:
    with pytest.raises(WireError, match="quantity|cores|CPU"):
        parse_cpu_quantity(quantity)


def test_pod_cpu_request_counts_sidecars_and_init_peak() -> None:
    pod = V1Pod.model_validate(POD)
    # containers 2 + 0.5 with the 0.25 sidecar = 2.75; init "fetch" (3, before the sidecar) peaks higher
    assert pod.cpu_request() == pytest.approx(3.0)
    spec = copy.deepcopy(POD)
    spec["spec"]["initContainers"] = []
    spec["spec"]["overhead"] = {"cpu": "100m"}
    assert V1Pod.model_validate(spec).cpu_request() == pytest.approx(2.6)
    assert V1Pod.model_validate({"metadata": {"name": "bare"}}).cpu_request() == 0.0


@pytest.mark.parametrize(
    ("score", "priority"),
    [(0.0, 0), (0.04, 0), (0.05, 1), (0.45, 5), (0.5, 5), (0.549, 5), (0.95, 10), (1.0, 10), (1.3, 10), (-0.2, 0),
     (math.nan, 0)],
)  # fmt: skip
def test_scores_scale_to_extender_priorities_rounding_half_up(score, priority) -> None:
    assert to_extender_priority(score) == priority


def test_decoded_full_node_request_keeps_raw_items() -> None:
    decoded = decode_args(json.dumps(full_args()).encode())
    assert isinstance(decoded.args, ExtenderArgs) and not decoded.args.cache_capable
    assert decoded.args.candidate_names() == NODE_NAMES
    assert decoded.raw_nodes == [NODES[n] for n in NODE_NAMES]
