"""The residency webhook's wire, checks and configuration (pure logic and the aiohttp app; no cluster).

The pod path's CEL policies are exercised against the real kube-apiserver in e2e/test_residency_paths.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from heatsched.admission import cli as policies_cli
from heatsched.admission.configuration import webhook_configuration
from heatsched.admission.review import ReviewError, parse_review
from heatsched.admission.server import LookupError_, Lookups, make_app
from heatsched.placement.admission import binding_refusal, node_object, pod_refusal
from heatsched.placement.model import COUNTRY_LABEL

ROOT = Path(__file__).resolve().parent.parent
FR = {"heatsched.io/residency": "FR"}


def review(obj: dict, *, namespace: str = "t", name: str = "", user: str = "alice") -> bytes:
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u1", "operation": "CREATE", "namespace": namespace, "name": name,
        "userInfo": {"username": user}, "object": obj}}).encode()


def pod(name="p", *, node=None, volumes=(), annotations=FR) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "x"}], "volumes": list(volumes)}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "namespace": "t", "annotations": dict(annotations)}, "spec": spec}


def claim(name, *, volume=None, sc=None) -> dict:
    return {"metadata": {"name": name, "namespace": "t"}, "spec": {"volumeName": volume, "storageClassName": sc}}


def pv(name, country=None) -> dict:
    return {"metadata": {"name": name, "labels": {"heatsched.io/country": country} if country else {}}, "spec": {}}


class FakeLookups:
    """In-memory objects; `fail` names a kind whose reads raise (an API timeout)."""

    def __init__(self, objects=(), *, countries=None, namespaces=None, classes=(), fail=None):
        self.objects = {(k, ns, n): o for k, ns, n, o in objects}
        self.countries = countries or {"fr-1": "FR", "de-1": "DE"}
        self.namespaces = namespaces or {}
        self.class_list = list(classes)
        self.fail = fail

    def lookups(self) -> Lookups:
        async def ns(name):
            return self.namespaces.get(name, {})

        async def read(kind, namespace, name):
            if kind == self.fail:
                raise LookupError_(f"cannot read {kind} {name}: timed out")
            return self.objects.get((kind, namespace, name))

        async def classes():
            return self.class_list
        async def country(node):
            return self.countries.get(node)
        return Lookups(country, ns, read, classes)


@pytest.fixture
async def call():
    clients = []

    async def post(lookups: FakeLookups, path: str, body: bytes):
        tc = TestClient(TestServer(make_app(lookups.lookups(), timeout_s=1)))
        await tc.start_server()
        clients.append(tc)
        resp = await tc.post(path, data=body, headers={"Content-Type": "application/json"})
        return resp.status, await resp.json()
    yield post
    for tc in clients:
        await tc.close()


# ---- pure checks -------------------------------------------------------------------------------------
def test_a_preset_node_outside_the_residency_is_refused_with_the_node_country():
    nodes = {"de-1": node_object("de-1", "DE")}
    reason = pod_refusal(pod(node="de-1"), {}, nodes, [], [], [])
    assert reason and "node de-1 is in DE, outside residency FR" in reason
    assert pod_refusal(pod(node="fr-1"), {}, {"fr-1": node_object("fr-1", "FR")}, [], [], []) is None


def test_a_node_heatsched_does_not_trust_counts_as_outside():
    reason = pod_refusal(pod(node="x"), {}, {"x": node_object("x", None)}, [], [], [])
    assert reason and "cannot be verified" in reason


def test_a_claim_bound_to_a_volume_elsewhere_or_of_unknown_location_is_refused():
    vol = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    de = pod_refusal(pod(volumes=vol), {}, {}, [claim("data", volume="pv1")], [pv("pv1", "DE")], [])
    assert de and "is in DE" in de and "outside residency FR" in de
    unknown = pod_refusal(pod(volumes=vol), {}, {}, [claim("data", volume="pv1")], [pv("pv1")], [])
    assert unknown and "location unknown" in unknown
    assert pod_refusal(pod(volumes=vol), {}, {}, [claim("data", volume="pv1")], [pv("pv1", "FR")], []) is None


def test_an_unbound_claim_is_judged_by_its_storage_class_topology():
    vol = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    fr_class = {"metadata": {"name": "fr-ssd"}, "allowedTopologies": [
        {"matchLabelExpressions": [{"key": COUNTRY_LABEL, "values": ["FR"]}]}]}
    anywhere = {"metadata": {"name": "any"}}
    assert pod_refusal(pod(volumes=vol), {}, {}, [claim("data", sc="fr-ssd")], [], [fr_class]) is None
    reason = pod_refusal(pod(volumes=vol), {}, {}, [claim("data", sc="any")], [], [anywhere])
    assert reason and "no allowedTopologies" in reason


def test_network_volumes_that_declare_no_location_are_refused_and_node_local_ones_pass():
    nfs = [{"name": "share", "nfs": {"server": "filer.example", "path": "/x"}}]
    assert "declare no location" in (pod_refusal(pod(volumes=nfs), {}, {}, [], [], []) or "")
    local = [{"name": "tmp", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}]
    assert pod_refusal(pod(volumes=local), {}, {}, [], [], []) is None


def test_a_binding_is_checked_against_the_pod_and_namespace_residency():
    assert "is in DE, outside residency FR" in binding_refusal(FR, {}, "t/p", "de-1", "DE")
    assert binding_refusal(FR, {}, "t/p", "fr-1", "FR") is None
    assert binding_refusal({}, FR, "t/p", "de-1", "DE")  # the namespace's residency applies too
    assert binding_refusal({}, {}, "t/p", "de-1", "DE") is None  # not resident: nothing to check
    assert "no trusted country" in binding_refusal(FR, {}, "t/p", "x", None)


# ---- wire ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("body, reason", [
    (b"{", "not JSON"), (b"[]", "JSON object"), (b"\xff\xfe", "not JSON"),
    (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "request"),
    (b'{"apiVersion": "v2", "kind": "AdmissionReview", "request": {"uid": "u", "operation": "CREATE"}}', "apiVersion"),
    (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 3, "operation": "CREATE"}}',
     "uid"),
])
def test_a_malformed_review_is_refused_with_the_reason(body, reason):
    with pytest.raises(ReviewError, match=reason):
        parse_review(body)


async def test_the_server_answers_400_to_malformed_reviews_and_refuses_on_lookup_failure(call):
    status, body = await call(FakeLookups(), "/validate/pods", b'{"request": null}')
    assert status == 400 and "AdmissionReview" in body["error"]
    vol = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    status, body = await call(FakeLookups(fail="claim"), "/validate/pods", review(pod(volumes=vol)))
    assert status == 200 and body["response"]["allowed"] is False
    assert "timed out" in body["response"]["status"]["message"]


async def test_the_server_refuses_a_binding_to_a_foreign_node_and_allows_one_at_home(call):
    lookups = FakeLookups([("pod", "t", "p", pod())])
    binding = {"metadata": {"name": "p"}, "target": {"kind": "Node", "name": "de-1"}}
    status, body = await call(lookups, "/validate/bindings", review(binding, name="p"))
    assert status == 200 and body["response"]["allowed"] is False
    assert body["response"]["status"]["code"] == 403 and "outside residency FR" in body["response"]["status"]["message"]
    binding["target"]["name"] = "fr-1"
    status, body = await call(lookups, "/validate/bindings", review(binding, name="p"))
    assert body["response"] == {"uid": "u1", "allowed": True}


async def test_a_binding_of_a_pod_that_does_not_exist_is_refused(call):
    binding = {"metadata": {"name": "ghost"}, "target": {"kind": "Node", "name": "fr-1"}}
    status, body = await call(FakeLookups(), "/validate/bindings", review(binding, name="ghost"))
    assert status == 200 and body["response"]["allowed"] is False and "does not exist" in json.dumps(body)


# ---- configuration --------------------------------------------------------------------------------------
def test_the_webhook_fails_closed_but_only_sees_what_needs_a_lookup():
    cfg = webhook_configuration({"url": "https://h:1", "caBundle": "x"}, ["system:kube-scheduler", "sa:s"])
    hooks = {h["name"]: h for h in cfg["webhooks"]}
    assert {h["failurePolicy"] for h in hooks.values()} == {"Fail"}
    pods = hooks["resident-pods-with-node-or-volumes.heatsched.io"]
    assert pods["clientConfig"]["url"] == "https://h:1/validate/pods"
    condition = pods["matchConditions"][0]["expression"]
    assert "nodeName" in condition and "has(v.emptyDir)" in condition and "heatsched.io/residency" in condition
    bindings = hooks["bindings-by-untrusted-binders.heatsched.io"]
    assert bindings["rules"][0]["resources"] == ["pods/binding", "bindings"]
    assert bindings["matchConditions"][0]["expression"] == "!(request.userInfo.username in ['system:kube-scheduler', 'sa:s'])"
    assert all(h["namespaceSelector"] == {} for h in hooks.values())  # kube-system too


def test_the_service_client_config_gets_the_handler_path():
    cfg = webhook_configuration({"service": {"name": "s", "namespace": "n", "port": 443}, "caBundle": "x"})
    assert cfg["webhooks"][1]["clientConfig"]["service"]["path"] == "/validate/bindings"


def test_the_policies_in_the_chart_are_the_ones_the_code_renders():
    path = ROOT / "charts" / "heatsched" / "files" / policies_cli.FILE
    assert path.read_text() == policies_cli.render(), "run `heatsched policies`"


async def test_lookups_read_what_the_view_lacks_and_turn_api_failures_into_lookup_errors():
    """The placement service's lookups against a real HTTP server standing in for the apiserver."""
    from aiohttp import web
    from heatsched.kubeapi import Credentials, KubeApi
    from heatsched.placement_service.view import ClusterView
    from heatsched.placement_service.webhook import lookups as service_lookups

    async def node(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "fresh":
            return web.json_response({"metadata": {"name": name, "labels": {COUNTRY_LABEL: "FR"}}})
        if name == "garbled":
            return web.Response(body=b"{not json", content_type="application/json")
        if name == "broken":
            return web.json_response({"reason": "InternalError", "message": "etcd"}, status=500)
        return web.json_response({"reason": "NotFound"}, status=404)

    app = web.Application()
    app.router.add_get("/api/v1/nodes/{name}", node)
    view = ClusterView(clock=lambda: 0.0)
    view.set_node("known", {COUNTRY_LABEL: "DE"})
    async with TestServer(app) as ts:
        api = KubeApi(Credentials(str(ts.make_url("")), True))
        look = service_lookups(view, api)
        assert await look.node_country("known") == "DE"  # from the view, no request
        assert await look.node_country("fresh") == "FR"
        assert await look.node_country("absent") is None
        for name, says in (("broken", "500 InternalError"), ("garbled", "JSONDecodeError")):
            with pytest.raises(LookupError_, match=f"cannot read node {name}: .*{says}"):
                await look.node_country(name)
        await api.close()
