"""`heatsched audit`: the pure residency audit (heatsched.placement.audit) and the command around it."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime
from types import SimpleNamespace as NS

import pytest
from heatsched import audit as cli_audit
from heatsched.cli import main
from heatsched.placement.audit import (
    INVALID_RESIDENCY,
    NODE_COUNTRY_UNKNOWN,
    NODE_NOT_FOUND,
    NODE_OUTSIDE_RESIDENCY,
    RESIDENCY_CONFLICT,
    VOLUME_LOCATION_UNKNOWN,
    VOLUME_OUTSIDE_RESIDENCY,
    audit,
    country_terms,
)
from heatsched.placement.model import COUNTRY_LABEL

RES = "heatsched.io/residency"


# ---- fake objects, shaped like the apiserver's JSON ----------------------------------------------------
def node(name, country=None):
    return {"metadata": {"name": name, "labels": {COUNTRY_LABEL: country} if country else {}}}


def namespace(name, residency=None):
    return {"metadata": {"name": name, "annotations": {RES: residency} if residency is not None else {}}}


def pod(name, node_name=None, residency=None, ns="t", volumes=(), phase="Running"):
    meta = {"name": name, "namespace": ns, "uid": f"uid-{name}",
            "annotations": {RES: residency} if residency is not None else {}}
    spec = {"containers": [{"name": "c"}], "volumes": list(volumes)}
    if node_name:
        spec["nodeName"] = node_name
    return {"metadata": meta, "spec": spec, "status": {"phase": phase}}


def claim_volume(name, claim):
    return {"name": name, "persistentVolumeClaim": {"claimName": claim}}


def pvc(name, volume=None, storage_class=None, ns="t"):
    spec = {"storageClassName": storage_class} if storage_class is not None else {}
    if volume:
        spec["volumeName"] = volume
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec,
            "status": {"phase": "Bound" if volume else "Pending"}}


def pv(name, country=None, affinity_terms=None):
    spec = {"capacity": {"storage": "1Gi"}}
    if affinity_terms is not None:
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": affinity_terms}}
    return {"metadata": {"name": name, "labels": {"heatsched.io/country": country} if country else {}}, "spec": spec}


def country_in(*values, key=COUNTRY_LABEL):
    return {"matchExpressions": [{"key": key, "operator": "In", "values": list(values)}]}


def storage_class(name, country=None, topology=None, default=False):
    meta = {"name": name, "labels": {"heatsched.io/country": country} if country else {},
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}}
    body = {"metadata": meta, "provisioner": "example.com/csi"}
    if topology is not None:
        body["allowedTopologies"] = [{"matchLabelExpressions": [{"key": COUNTRY_LABEL, "values": list(v)}]}
                                     for v in topology]
    return body


NODES = [node("fr-1", "FR"), node("de-1", "DE"), node("bare-1")]


def one(pods, *, namespaces=(), claims=(), volumes=(), classes=(), nodes=NODES, all_pods=False):
    report = audit(pods, namespaces=[namespace("t"), *namespaces], nodes=nodes, claims=claims, volumes=volumes,
                   storage_classes=classes, all_pods=all_pods)
    assert len(report.pods) == 1, report.pods
    return report.pods[0]


def codes(entry):
    return [f.code for f in entry.findings]


# ---- node country -------------------------------------------------------------------------------------
def test_a_french_pod_on_a_french_node_is_compliant():
    entry = one([pod("p", "fr-1", "FR")])
    assert entry.verdict == "compliant" and entry.findings == ()
    assert entry.node_country == "FR" and entry.residency == {"FR"} and entry.residency_source == "pod"


def test_a_french_pod_on_a_german_node_is_a_violation_that_names_node_and_country():
    entry = one([pod("p", "de-1", "FR")])
    assert entry.verdict == "violation" and codes(entry) == [NODE_OUTSIDE_RESIDENCY]
    assert "de-1" in entry.findings[0].reason and "DE" in entry.findings[0].reason


def test_a_node_without_the_trusted_country_label_cannot_be_verified():
    entry = one([pod("p", "bare-1", "FR")])
    assert codes(entry) == [NODE_COUNTRY_UNKNOWN] and entry.node_country is None


def test_a_node_with_only_an_untrusted_country_label_cannot_be_verified():
    spoofed = {"metadata": {"name": "spoof-1", "labels": {"heatsched.io/country": "FR", "topology.kubernetes.io/region": "FR"}}}
    entry = one([pod("p", "spoof-1", "FR")], nodes=[spoofed])
    assert codes(entry) == [NODE_COUNTRY_UNKNOWN]


def test_a_pod_on_a_node_that_no_longer_exists_cannot_be_verified():
    entry = one([pod("p", "gone-1", "FR")])
    assert codes(entry) == [NODE_NOT_FOUND] and "gone-1" in entry.findings[0].reason


def test_an_unbound_resident_pod_is_pending_not_a_violation():
    entry = one([pod("p", None, "FR", phase="Pending")])
    assert entry.verdict == "pending" and entry.findings == () and entry.node is None


def test_a_multi_country_residency_accepts_any_of_its_countries():
    assert one([pod("p", "de-1", "FR,DE")]).verdict == "compliant"
    assert one([pod("p", "de-1", "EU")]).verdict == "compliant"


# ---- effective residency --------------------------------------------------------------------------------
def test_the_namespace_residency_applies_to_pods_without_their_own():
    entry = one([pod("p", "de-1")], namespaces=[namespace("t", "FR")])
    assert entry.resident and entry.residency_source == "namespace" and codes(entry) == [NODE_OUTSIDE_RESIDENCY]


def test_a_namespace_residency_is_a_ceiling_the_pod_cannot_widen():
    entry = one([pod("p", "de-1", "FR,DE")], namespaces=[namespace("t", "FR")])
    assert entry.residency == {"FR"} and entry.residency_source == "pod+namespace"
    assert codes(entry) == [NODE_OUTSIDE_RESIDENCY]
    assert one([pod("p", "fr-1", "FR,DE")], namespaces=[namespace("t", "FR")]).verdict == "compliant"


def test_disjoint_pod_and_namespace_residencies_are_a_conflict_even_while_pending():
    entry = one([pod("p", None, "FR")], namespaces=[namespace("t", "DE")])
    assert entry.verdict == "violation" and codes(entry) == [RESIDENCY_CONFLICT]
    bound = one([pod("p", "fr-1", "FR")], namespaces=[namespace("t", "DE")])
    assert set(codes(bound)) == {RESIDENCY_CONFLICT, NODE_OUTSIDE_RESIDENCY}


def test_an_invalid_residency_is_a_violation_even_on_a_matching_node():
    entry = one([pod("p", "fr-1", "fr")])
    assert entry.verdict == "violation" and codes(entry) == [INVALID_RESIDENCY]
    assert "upper case" in entry.findings[0].reason and entry.residency is None


def test_an_invalid_namespace_residency_is_a_violation_and_the_valid_pod_residency_is_still_checked():
    entry = one([pod("p", "de-1", "FR")], namespaces=[namespace("t", "UK")])
    assert set(codes(entry)) == {INVALID_RESIDENCY, NODE_OUTSIDE_RESIDENCY}
    assert "namespace" in entry.findings[0].reason


def test_an_empty_namespace_residency_makes_its_pods_resident_and_in_violation():
    entry = one([pod("p", "fr-1")], namespaces=[namespace("t", "")])
    assert entry.resident and codes(entry) == [INVALID_RESIDENCY]


def test_pods_without_residency_are_left_out_unless_all_pods_is_asked():
    pods = [pod("free", "de-1"), pod("fr", "fr-1", "FR")]
    assert [p.name for p in audit(pods, namespaces=[namespace("t")], nodes=NODES).pods] == ["fr"]
    report = audit(pods, namespaces=[namespace("t")], nodes=NODES, all_pods=True)
    assert {p.name: p.verdict for p in report.pods} == {"free": "unrestricted", "fr": "compliant"}
    assert report.ok


# ---- volumes ------------------------------------------------------------------------------------------
def test_a_claim_bound_to_a_volume_labelled_abroad_is_a_violation():
    entry = one([pod("p", "fr-1", "FR", volumes=[claim_volume("data", "c")])],
                claims=[pvc("c", "pv-de")], volumes=[pv("pv-de", "DE")])
    assert codes(entry) == [VOLUME_OUTSIDE_RESIDENCY]
    reason = entry.findings[0].reason
    assert "data" in reason and "pv-de" in reason and "DE" in reason
    [v] = entry.volumes
    assert v.countries == {"DE"} and v.source == "pv-label" and v.persistent_volume == "pv-de"


def test_a_claim_bound_to_a_volume_labelled_at_home_is_compliant():
    entry = one([pod("p", "fr-1", "FR", volumes=[claim_volume("data", "c")])],
                claims=[pvc("c", "pv-fr")], volumes=[pv("pv-fr", "FR")])
    assert entry.verdict == "compliant"


def test_the_volume_label_wins_over_its_node_affinity():
    entry = one([pod("p", "fr-1", "FR", volumes=[claim_volume("data", "c")])],
                claims=[pvc("c", "pv")], volumes=[pv("pv", "FR", [country_in("DE")])])
    assert entry.verdict == "compliant" and entry.volumes[0].source == "pv-label"


def test_a_volume_node_affinity_must_keep_every_allowed_country_inside_the_residency():
    vols = [pv("pv", None, [country_in("FR", "DE")])]
    claims = [pvc("c", "pv")]
    inside = one([pod("p", "fr-1", "FR,DE", volumes=[claim_volume("d", "c")])], claims=claims, volumes=vols)
    assert inside.verdict == "compliant" and inside.volumes[0].source == "pv-node-affinity"
    outside = one([pod("p", "fr-1", "FR", volumes=[claim_volume("d", "c")])], claims=claims, volumes=vols)
    assert codes(outside) == [VOLUME_OUTSIDE_RESIDENCY]


def test_a_volume_whose_affinity_leaves_one_term_open_has_no_known_location():
    open_term = country_in("node-1", key="kubernetes.io/hostname")
    entry = one([pod("p", "fr-1", "FR", volumes=[claim_volume("d", "c")])], claims=[pvc("c", "pv")],
                volumes=[pv("pv", None, [country_in("FR"), open_term])])
    assert codes(entry) == [VOLUME_LOCATION_UNKNOWN]


def test_country_terms_intersect_within_a_term_and_unite_across_terms():
    both = {"matchExpressions": [{"key": COUNTRY_LABEL, "operator": "In", "values": ["FR", "DE"]},
                                 {"key": COUNTRY_LABEL, "operator": "In", "values": ["DE", "AT"]}]}
    assert country_terms([both, country_in("IT")], "matchExpressions") == {"DE", "IT"}
    not_in = {"matchExpressions": [{"key": COUNTRY_LABEL, "operator": "NotIn", "values": ["DE"]}]}
    assert country_terms([not_in], "matchExpressions") is None
    assert country_terms([], "matchExpressions") is None


def test_a_claim_bound_to_a_volume_with_no_declared_location_is_a_violation():
    entry = one([pod("p", "fr-1", "FR", volumes=[claim_volume("d", "c")])], claims=[pvc("c", "pv")],
                volumes=[pv("pv")])
    assert codes(entry) == [VOLUME_LOCATION_UNKNOWN] and "location unknown" in entry.findings[0].reason


def test_a_bound_claim_is_located_by_its_volume_never_by_its_storage_class():
    entry = one([pod("p", "fr-1", "FR", volumes=[claim_volume("d", "c")])], claims=[pvc("c", "pv", "fr-ssd")],
                volumes=[pv("pv")], classes=[storage_class("fr-ssd", "FR")])
    assert codes(entry) == [VOLUME_LOCATION_UNKNOWN]


def test_a_missing_claim_or_volume_is_location_unknown():
    missing_claim = one([pod("p", "fr-1", "FR", volumes=[claim_volume("d", "nope")])])
    assert codes(missing_claim) == [VOLUME_LOCATION_UNKNOWN] and "does not exist" in missing_claim.findings[0].reason
    missing_volume = one([pod("p", "fr-1", "FR", volumes=[claim_volume("d", "c")])], claims=[pvc("c", "gone")])
    assert codes(missing_volume) == [VOLUME_LOCATION_UNKNOWN] and "gone" in missing_volume.findings[0].reason


def test_a_claim_in_another_namespace_does_not_locate_the_volume():
    entry = one([pod("p", "fr-1", "FR", volumes=[claim_volume("d", "c")])], claims=[pvc("c", "pv", ns="other")],
                volumes=[pv("pv", "FR")])
    assert codes(entry) == [VOLUME_LOCATION_UNKNOWN]


def test_an_unbound_claim_is_located_by_its_storage_class_label_or_topology():
    vol = [claim_volume("d", "c")]
    by_label = one([pod("p", None, "FR", volumes=vol)], claims=[pvc("c", None, "de-ssd")],
                   classes=[storage_class("de-ssd", "DE")])
    assert by_label.verdict == "violation" and codes(by_label) == [VOLUME_OUTSIDE_RESIDENCY]
    by_topology = one([pod("p", None, "FR", volumes=vol)], claims=[pvc("c", None, "fr-zonal")],
                      classes=[storage_class("fr-zonal", topology=[["FR"]])])
    assert by_topology.verdict == "pending" and by_topology.volumes[0].source == "storageclass-topology"
    wide = one([pod("p", None, "FR", volumes=vol)], claims=[pvc("c", None, "eu")],
               classes=[storage_class("eu", topology=[["FR"], ["DE"]])])
    assert codes(wide) == [VOLUME_OUTSIDE_RESIDENCY]


def test_an_unbound_claim_without_a_class_uses_the_default_class():
    entry = one([pod("p", None, "FR", volumes=[claim_volume("d", "c")])], claims=[pvc("c")],
                classes=[storage_class("plain"), storage_class("std", "FR", default=True)])
    assert entry.verdict == "pending" and entry.volumes[0].storage_class == "std"


def test_an_unbound_claim_whose_class_says_nothing_about_location_is_a_violation():
    entry = one([pod("p", None, "FR", volumes=[claim_volume("d", "c")])], claims=[pvc("c", None, "plain")],
                classes=[storage_class("plain")])
    assert codes(entry) == [VOLUME_LOCATION_UNKNOWN]
    no_class = one([pod("p", None, "FR", volumes=[claim_volume("d", "c")])], claims=[pvc("c", None, "")])
    assert codes(no_class) == [VOLUME_LOCATION_UNKNOWN]


def test_node_local_and_api_volumes_raise_no_finding():
    volumes = [{"name": "scratch", "emptyDir": {}}, {"name": "host", "hostPath": {"path": "/var/x"}},
               {"name": "cm", "configMap": {"name": "x"}}, {"name": "s", "secret": {"secretName": "x"}},
               {"name": "token", "projected": {"sources": []}}, {"name": "info", "downwardAPI": {"items": []}}]
    entry = one([pod("p", "fr-1", "FR", volumes=volumes)])
    assert entry.verdict == "compliant" and {v.location for v in entry.volumes} == {"node", "api"}


@pytest.mark.parametrize("volume", [
    {"name": "v", "nfs": {"server": "nfs.example", "path": "/x"}},
    {"name": "v", "iscsi": {"targetPortal": "1.2.3.4", "iqn": "iqn.x", "lun": 0}},
    {"name": "v", "csi": {"driver": "example.com/csi"}},
    {"name": "v", "someFutureVolumeType": {}},
])
def test_inline_network_volumes_have_no_known_location(volume):
    entry = one([pod("p", "fr-1", "FR", volumes=[volume])])
    assert codes(entry) == [VOLUME_LOCATION_UNKNOWN]
    assert entry.volumes[0].type == next(k for k in volume if k != "name")


def test_a_generic_ephemeral_volume_is_located_by_its_claim_or_else_its_template_class():
    eph = {"name": "work", "ephemeral": {"volumeClaimTemplate": {"spec": {"storageClassName": "fr-ssd"}}}}
    classes = [storage_class("fr-ssd", "FR")]
    before = one([pod("p", None, "FR", volumes=[eph])], classes=classes)
    assert before.verdict == "pending" and before.volumes[0].claim == "p-work"
    after = one([pod("p", "fr-1", "FR", volumes=[eph])], claims=[pvc("p-work", "pv-x", "fr-ssd")],
                volumes=[pv("pv-x", "DE")], classes=classes)
    assert codes(after) == [VOLUME_OUTSIDE_RESIDENCY]


def test_a_pending_pod_whose_volume_is_abroad_is_a_violation():
    entry = one([pod("p", None, "FR", volumes=[claim_volume("d", "c")])], claims=[pvc("c", "pv-de")],
                volumes=[pv("pv-de", "DE")])
    assert entry.verdict == "violation"


def test_volumes_of_unrestricted_pods_are_reported_without_findings():
    entry = one([pod("p", "de-1", volumes=[{"name": "v", "nfs": {}}])], all_pods=True)
    assert entry.verdict == "unrestricted" and entry.findings == () and entry.volumes[0].countries is None


def test_the_report_is_sorted_and_counts_every_verdict():
    pods = [pod("b", "de-1", "FR", ns="z"), pod("a", "fr-1", "FR", ns="z"), pod("c", None, "FR", ns="a"),
            pod("free", "fr-1", ns="a")]
    report = audit(pods, namespaces=[namespace("a"), namespace("z")], nodes=NODES, all_pods=True)
    assert [(p.namespace, p.name) for p in report.pods] == [("a", "c"), ("a", "free"), ("z", "a"), ("z", "b")]
    assert report.counts() == {"pods": 4, "resident": 3, "compliant": 1, "violation": 1, "pending": 1,
                               "unrestricted": 1, "findings": 1}
    assert not report.ok


# ---- the command ----------------------------------------------------------------------------------------
def fake_inputs(*pods, nodes=NODES, namespaces=None, **more):
    return cli_audit.Inputs(server="https://127.0.0.1:6443", pods=list(pods), nodes=list(nodes),
                            namespaces=list(namespaces or [namespace("t")]), **more)


@pytest.fixture
def cluster(monkeypatch):
    """Replace the cluster by fake inputs: set `cluster.inputs`; `cluster.calls` records (namespace, timeout)."""
    state = NS(inputs=fake_inputs(), calls=[])
    monkeypatch.setattr(cli_audit, "connect", lambda kubeconfig, context: (object(), context or "fake-context"))

    def collect(api, ns, timeout):
        state.calls.append((ns, timeout))
        return state.inputs
    monkeypatch.setattr(cli_audit, "collect", collect)
    return state


def test_audit_has_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["audit", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for word in ("--json", "--namespace", "--all-pods", "--kubeconfig", "Exit status"):
        assert word in out


def test_audit_json_is_a_stable_evidence_document_and_exits_1_on_a_violation(cluster, capsys):
    cluster.inputs = fake_inputs(pod("bad", "de-1", "FR"), pod("good", "fr-1", "FR"), pod("free", "de-1"))
    assert main(["audit", "--json", "-n", "t", "--timeout", "7"]) == 1
    assert cluster.calls == [("t", 7.0)]
    doc = json.loads(capsys.readouterr().out)
    assert list(doc) == ["schema", "generatedAt", "cluster", "scope", "compliant", "counts", "pods"]
    assert doc["schema"] == "heatsched.io/audit/v1" and doc["compliant"] is False
    assert datetime.fromisoformat(doc["generatedAt"]).tzinfo is not None
    assert doc["cluster"] == {"server": "https://127.0.0.1:6443", "context": "fake-context"}
    assert doc["scope"] == {"namespace": "t", "allPods": False}
    assert doc["counts"]["resident"] == 2 and doc["counts"]["violation"] == 1
    assert [p["name"] for p in doc["pods"]] == ["bad", "good"]
    bad = doc["pods"][0]
    assert set(bad) == {"namespace", "name", "uid", "phase", "resident", "residency", "residencyCountries",
                        "residencySource", "podAnnotation", "namespaceAnnotation", "node", "nodeCountry",
                        "volumes", "verdict", "violations"}
    assert bad["node"] == "de-1" and bad["nodeCountry"] == "DE" and bad["residency"] == "FR"
    assert bad["verdict"] == "violation" and bad["violations"][0]["code"] == NODE_OUTSIDE_RESIDENCY


def test_audit_json_lists_volumes_with_their_countries(cluster, capsys):
    cluster.inputs = fake_inputs(pod("p", "fr-1", "FR", volumes=[claim_volume("data", "c"), {"name": "e", "emptyDir": {}}]),
                                 claims=[pvc("c", "pv-fr")], volumes=[pv("pv-fr", "FR")])
    assert main(["audit", "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)["pods"]
    assert entry["volumes"][0] == {"name": "data", "type": "persistentVolumeClaim", "location": "network",
                                   "countries": ["FR"], "source": "pv-label", "claim": "c",
                                   "persistentVolume": "pv-fr", "storageClass": None}
    assert entry["volumes"][1]["location"] == "node"


def test_audit_table_names_each_violation_and_exits_1(cluster, capsys):
    cluster.inputs = fake_inputs(pod("bad", "de-1", "FR"), pod("wait", None, "FR"))
    assert main(["audit"]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["NAMESPACE", "POD", "RESIDENCY", "NODE", "NODE-COUNTRY", "VOLUMES", "VERDICT"]
    assert "t/bad: [NodeOutsideResidency] node de-1 is in DE" in out
    assert "(pending)" in out and "2 resident pods: 0 compliant, 1 in violation, 1 pending" in out


def test_audit_exits_0_when_every_resident_pod_is_compliant(cluster, capsys):
    cluster.inputs = fake_inputs(pod("good", "fr-1", "FR"), pod("free", "de-1"))
    assert main(["audit", "--all-pods"]) == 0
    out = capsys.readouterr().out
    assert "compliant" in out and "unrestricted" in out and "violations:" not in out


def test_audit_exits_2_and_says_why_when_the_cluster_cannot_be_reached(tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "x"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    assert main(["audit", "--kubeconfig", str(kubeconfig), "--timeout", "2"]) == 2
    err = capsys.readouterr().err
    assert "cannot read the cluster" in err and "cannot list" in err


def test_audit_exits_2_without_a_kubeconfig(tmp_path, capsys):
    assert main(["audit", "--kubeconfig", str(tmp_path / "missing")]) == 2
    assert "cannot load a kubeconfig" in capsys.readouterr().err


class FakeApi:
    """Records every call's arguments; list calls answer two pages for pods, one for the rest."""

    def __init__(self, calls, forbid=()):
        self.calls, self.forbid = calls, forbid

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            if name in self.forbid:
                from kubernetes.client.rest import ApiException
                exc = ApiException(status=403, reason="Forbidden")
                exc.body = json.dumps({"message": f"{name} is forbidden: User \"tenant\" cannot list"})
                raise exc
            if name.startswith("read_"):
                return NS(data=json.dumps(namespace(args[0])).encode())
            if "pod" in name and not kwargs.get("_continue"):
                return NS(data=json.dumps({"items": [pod("p1")], "metadata": {"continue": "next"}}).encode())
            items = [pod("p2")] if "pod" in name else []
            return NS(data=json.dumps({"items": items, "metadata": {}}).encode())
        return call


@pytest.fixture
def fake_client(monkeypatch):
    from kubernetes import client

    calls: list = []
    state = NS(calls=calls, forbid=())
    monkeypatch.setattr(client, "CoreV1Api", lambda api: FakeApi(calls, state.forbid))
    monkeypatch.setattr(client, "StorageV1Api", lambda api: FakeApi(calls, state.forbid))
    return state


API = NS(configuration=NS(host="https://example:6443"))


def test_collect_sets_a_request_timeout_on_every_call_and_follows_pages(fake_client):
    inputs = cli_audit.collect(API, None, 4.0)
    assert [p["metadata"]["name"] for p in inputs.pods] == ["p1", "p2"] and inputs.server == "https://example:6443"
    names = [c[0] for c in fake_client.calls]
    assert {"list_namespace", "list_pod_for_all_namespaces", "list_persistent_volume_claim_for_all_namespaces",
            "list_node", "list_persistent_volume", "list_storage_class"} <= set(names)
    assert all(kwargs.get("_request_timeout") == 4.0 for _, _, kwargs in fake_client.calls)
    assert [c[2].get("_continue") for c in fake_client.calls if c[0] == "list_pod_for_all_namespaces"] == [None, "next"]


def test_collect_in_one_namespace_reads_only_that_namespace(fake_client):
    inputs = cli_audit.collect(API, "t", 3.0)
    names = [c[0] for c in fake_client.calls]
    assert "list_pod_for_all_namespaces" not in names and "list_namespace" not in names
    assert ("read_namespace", ("t",)) in [(c[0], c[1]) for c in fake_client.calls]
    assert inputs.namespaces[0]["metadata"]["name"] == "t"
    assert all(kwargs.get("_request_timeout") == 3.0 for _, _, kwargs in fake_client.calls)


def test_a_forbidden_list_is_unreadable_with_the_apiservers_reason(fake_client):
    fake_client.forbid = ("list_persistent_volume",)
    with pytest.raises(cli_audit.ClusterUnreadable, match="cannot list persistentvolumes: HTTP 403 Forbidden: .*forbidden"):
        cli_audit.collect(API, None, 3.0)


def test_generated_at_is_utc_with_a_z():
    doc = cli_audit.document(audit([]), cli_audit.Inputs(), namespace=None, all_pods=False,
                             now=datetime(2026, 1, 12, 9, 0, 5, tzinfo=UTC))
    assert doc["generatedAt"] == "2026-01-12T09:00:05Z" and doc["compliant"] is True and doc["pods"] == []
