"""Property test on the real kube-apiserver: random namespaces, pods, affinities, preset nodes and volumes,
created with dryRun=All (admission runs in full, nothing is stored). No admitted combination may let the pod
onto a node outside its residency, and the CEL policies must agree with placement/residency.py, the parser the
extender, `explain` and the audit use: admitted exactly when the Python rules accept the pod.

Examples: HEATSCHED_PROPERTY_EXAMPLES (default 150; the run in docs/placement.md used 2000).
"""

from __future__ import annotations

import json
import os
import uuid

import pytest
from heatsched.placement.model import COUNTRY_LABEL
from heatsched.placement.residency import (
    RESIDENCY_ANNOTATION,
    ResidencyError,
    effective_residency,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client

EXAMPLES = int(os.environ.get("HEATSCHED_PROPERTY_EXAMPLES", "150"))
NAMESPACE_RESIDENCIES = (None, "FR", "EU", "FR,DE", "DE, CH")
TOKENS = ["FR", "DE", "EU", "US", "CH", "GB", "fr", "UK", "XX", "XK", "", " FR", "FR ", "France", "F R", "FR;DE",
          "é", "\t", "Z"]
COUNTRIES = ["FR", "DE", "US", "CH", "AT", None]
VOLUMES = [{"emptyDir": {}}, {"configMap": {"name": "c"}}, {"secret": {"secretName": "s"}},
           {"nfs": {"server": "f", "path": "/"}}, {"persistentVolumeClaim": {"claimName": "missing"}}]

residencies = st.none() | st.lists(st.sampled_from(TOKENS), min_size=1, max_size=4).map(",".join) | st.text(max_size=6)
expressions = st.sampled_from([
    {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
    {"key": COUNTRY_LABEL, "operator": "In", "values": ["FR"]},
    {"key": COUNTRY_LABEL, "operator": "In", "values": ["US", "FR"]},
    {"key": COUNTRY_LABEL, "operator": "NotIn", "values": ["DE"]},
    {"key": COUNTRY_LABEL, "operator": "Exists"},
    {"key": "team", "operator": "DoesNotExist"},
])
affinities = st.none() | st.lists(st.lists(expressions, max_size=3).map(lambda e: {"matchExpressions": e}),
                                  min_size=1, max_size=3)
nodes = st.lists(st.builds(lambda c, team: {COUNTRY_LABEL: c, "kubernetes.io/os": "linux",
                                            **({"team": "a"} if team else {})} if c else {"kubernetes.io/os": "linux"},
                           st.sampled_from(COUNTRIES), st.booleans()), min_size=1, max_size=6)


def matches(expr: dict, labels: dict) -> bool:
    value, op = labels.get(expr["key"]), expr["operator"]
    if op == "In":
        return value in expr.get("values", [])
    if op == "NotIn":
        return value not in expr.get("values", [])
    return (value is not None) == (op == "Exists")


def may_run_on(pod: client.V1Pod, labels: dict) -> bool:
    """kube-scheduler's NodeAffinity filter for required terms (ORed terms, ANDed expressions)."""
    aff = pod.spec.affinity
    required = aff and aff.node_affinity and aff.node_affinity.required_during_scheduling_ignored_during_execution
    if not required:
        return True
    return any(all(matches({"key": e.key, "operator": e.operator, "values": e.values or []}, labels)
                   for e in (t.match_expressions or [])) for t in required.node_selector_terms)


@pytest.fixture(scope="module")
def namespaces(stack):
    names = {}
    for value in NAMESPACE_RESIDENCIES:
        name = f"prop-{uuid.uuid4().hex[:6]}"
        stack.core.create_namespace({"metadata": {"name": name, "annotations":
                                                  {RESIDENCY_ANNOTATION: value} if value else {}}})
        names[value] = name
    yield names
    for name in names.values():
        stack.core.delete_namespace(name)


def test_no_admitted_pod_can_run_outside_its_residency_and_cel_agrees_with_python(stack, namespaces):
    stats = {"admitted": 0, "refused": 0}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(ns_value=st.sampled_from(NAMESPACE_RESIDENCIES), own=residencies, terms=affinities, candidates=nodes,
           node=st.sampled_from([None, None, "montlucon-residence-1", "frankfurt-office-1"]),
           volume=st.none() | st.sampled_from(VOLUMES))
    def one(ns_value, own, terms, candidates, node, volume):
        spec: dict = {"containers": [{"name": "c", "image": "x"}], "schedulerName": "nobody"}
        if terms is not None:
            spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": terms}}}
        if node:
            spec["nodeName"] = node
        if volume:
            spec["volumes"] = [{"name": "v", **volume}]
        body = {"metadata": {"name": "p", "annotations": {RESIDENCY_ANNOTATION: own} if own is not None else {}},
                "spec": spec}
        try:
            expected = effective_residency(body["metadata"]["annotations"],
                                           {RESIDENCY_ANNOTATION: ns_value} if ns_value else {})
            valid = True
        except ResidencyError:
            expected, valid = None, False
        if expected is not None and node:
            valid = valid and {"montlucon-residence-1": "FR", "frankfurt-office-1": "DE"}[node] in expected
        if expected is not None and volume and next(iter(volume)) in ("nfs", "persistentVolumeClaim"):
            valid = False  # network storage of unknown location
        try:
            pod = stack.core.create_namespaced_pod(namespaces[ns_value], body, dry_run="All")
        except client.ApiException as exc:
            assert exc.status < 500, exc.body
            assert not valid, f"refused a valid pod: ns={ns_value!r} own={own!r}: {json.loads(exc.body)['message']}"
            stats["refused"] += 1
            return
        assert valid, f"admitted an invalid pod: ns={ns_value!r} own={own!r} node={node} volume={volume}"
        stats["admitted"] += 1
        if expected is None:
            return
        assert pod.metadata.annotations[RESIDENCY_ANNOTATION]
        for labels in candidates:
            if may_run_on(pod, labels):
                assert labels.get(COUNTRY_LABEL) in expected, (own, ns_value, terms, labels)

    one()
    assert stats["admitted"] and stats["refused"], stats
