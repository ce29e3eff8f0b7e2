"""`heatsched audit` against the real control plane: a clean namespace passes, real violations are named.

The admission webhook refuses to admit a resident pod outside its residency, so the violations here are
made the ways they happen in a real cluster: a namespace given a residency after its pods were running
elsewhere, and a resident pod whose claim is bound to a volume an admin labelled as being abroad.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

from heatsched.placement.model import COUNTRY_LABEL
from stack import wait_for

FR_NODE, DE_NODE = "montlucon-residence-1", "frankfurt-office-1"
RES = "heatsched.io/residency"


def run_audit(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "heatsched.cli", "audit", f"--kubeconfig={stack.cluster.kubeconfig}",
                           *args], capture_output=True, text=True, timeout=120, check=False)


def bound_pod(stack, namespace: str, name: str, node: str, *, annotations: dict | None = None,
              claim: str | None = None) -> None:
    spec = {"nodeName": node, "containers": [{"name": "c", "image": "busybox",
                                              "resources": {"requests": {"cpu": "100m"}}}]}
    if claim:
        spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}},
                           {"name": "scratch", "emptyDir": {}}]
    stack.core.create_namespaced_pod(namespace, {"metadata": {"name": name, "annotations": annotations or {}},
                                                 "spec": spec})


def volume_with_claim(stack, namespace: str, claim: str, *, labels: dict | None = None,
                      node_affinity: dict | None = None) -> str:
    """A static hostPath PersistentVolume pre-bound to a new claim; returns the volume's name once Bound."""
    pv = f"audit-{uuid.uuid4().hex[:8]}"
    spec = {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
            "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": f"/tmp/{pv}"},
            "claimRef": {"namespace": namespace, "name": claim}}
    if node_affinity:
        spec["nodeAffinity"] = node_affinity
    stack.core.create_persistent_volume({"metadata": {"name": pv, "labels": labels or {}}, "spec": spec})
    stack.core.create_namespaced_persistent_volume_claim(namespace, {
        "metadata": {"name": claim},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": pv,
                 "resources": {"requests": {"storage": "1Gi"}}}})
    wait_for(lambda: stack.core.read_namespaced_persistent_volume_claim(claim, namespace).status.phase == "Bound",
             60, what=f"claim {claim} bound to {pv}")
    return pv


def node_countries(stack) -> None:
    for node, country in ((FR_NODE, "FR"), (DE_NODE, "DE")):
        wait_for(lambda n=node, c=country: stack.node_labels(n).get(COUNTRY_LABEL) == c, 30,
                 what=f"{node} labelled {country}")


def test_a_clean_namespace_passes_the_audit_with_its_evidence(stack, namespace):
    node_countries(stack)
    fr_only = {"required": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": COUNTRY_LABEL, "operator": "In", "values": ["FR"]}]}]}}
    pv = volume_with_claim(stack, namespace, "data", node_affinity=fr_only)
    try:
        bound_pod(stack, namespace, "fr-job", FR_NODE, annotations={RES: "FR"}, claim="data")
        bound_pod(stack, namespace, "free", DE_NODE)  # no residency: not the audit's business

        out = run_audit(stack, "-n", namespace, "--json")
        assert out.returncode == 0, out.stdout + out.stderr
        doc = json.loads(out.stdout)
        assert doc["compliant"] is True and doc["scope"] == {"namespace": namespace, "allPods": False}
        assert doc["cluster"]["server"].startswith("https://") and doc["generatedAt"].endswith("Z")
        [entry] = doc["pods"]
        assert entry["name"] == "fr-job" and entry["node"] == FR_NODE and entry["nodeCountry"] == "FR"
        assert entry["verdict"] == "compliant" and entry["violations"] == []
        data = next(v for v in entry["volumes"] if v["name"] == "data")
        assert data["persistentVolume"] == pv and data["countries"] == ["FR"] and data["source"] == "pv-node-affinity"

        listed = run_audit(stack, "-n", namespace, "--all-pods")
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert "fr-job" in listed.stdout and "free" in listed.stdout and "unrestricted" in listed.stdout
    finally:
        stack.core.delete_persistent_volume(pv)


def test_a_namespace_given_a_residency_after_its_pods_ran_abroad_fails_the_audit(stack, namespace):
    node_countries(stack)
    bound_pod(stack, namespace, "early", DE_NODE)  # admitted while the namespace had no residency
    bound_pod(stack, namespace, "home", FR_NODE)
    stack.core.patch_namespace(namespace, {"metadata": {"annotations": {RES: "FR"}}})

    out = run_audit(stack, "-n", namespace)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"{namespace}/early: [NodeOutsideResidency] node {DE_NODE} is in DE, outside residency FR" in out.stdout
    assert f"{namespace}/home:" not in out.stdout  # compliant pods are listed, not named as violations

    doc = json.loads(run_audit(stack, "-n", namespace, "--json").stdout)
    verdicts = {p["name"]: (p["verdict"], p["residencySource"], p["nodeCountry"]) for p in doc["pods"]}
    assert verdicts == {"early": ("violation", "namespace", "DE"), "home": ("compliant", "namespace", "FR")}
    assert doc["counts"]["violation"] == 1 and doc["compliant"] is False


def test_a_resident_pod_whose_volume_is_abroad_fails_the_audit(stack, namespace):
    node_countries(stack)
    pv = volume_with_claim(stack, namespace, "data", labels={"heatsched.io/country": "FR"})
    try:
        bound_pod(stack, namespace, "fr-job", FR_NODE, annotations={RES: "FR"}, claim="data")
        # admission only lets it mount storage in France; then the volume is declared (moved) elsewhere
        stack.core.patch_persistent_volume(pv, {"metadata": {"labels": {"heatsched.io/country": "DE"}}})
        out = run_audit(stack, "-n", namespace, "--json")
        assert out.returncode == 1, out.stdout + out.stderr
        [entry] = json.loads(out.stdout)["pods"]
        assert entry["nodeCountry"] == "FR"  # the node is fine: the data is not
        [violation] = entry["violations"]
        assert violation["code"] == "VolumeOutsideResidency"
        assert pv in violation["reason"] and "DE" in violation["reason"]
    finally:
        stack.core.delete_persistent_volume(pv)


def test_the_audit_exits_2_when_it_cannot_read_what_it_must_vouch_for(stack):
    out = run_audit(stack, "-n", f"missing-{uuid.uuid4().hex[:6]}")
    assert out.returncode == 2 and "cannot read namespace" in out.stderr and "404" in out.stderr, out.stderr
