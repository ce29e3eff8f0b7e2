"""The admission checks that need another object: the node a pod is sent to, and where its volumes live. Pure.

Why here and not in CEL: an admission policy sees only the object under review and its namespace. A preset
`spec.nodeName`, a `pods/binding` and a PersistentVolumeClaim name other objects, which the webhook looks up and
passes in. The rules are the audit's own (placement/audit.py), applied at the door: a pod the audit would call a
violation is refused before it exists, with the same reason.

    refuse(pod) ⇔ residency(pod) is invalid
                ∨ (spec.nodeName set ∧ country(node) ∉ residency)
                ∨ ∃ network volume v: countries(v) unknown ∨ countries(v) ⊄ residency
    refuse(binding of pod p to node n) ⇔ p is resident ∧ country(n) ∉ residency(p)

A node's country is its protected COUNTRY_LABEL, only when heatsched trusts it (no conflict with its site);
unknown counts as outside. No residency: nothing to check (None).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .audit import (
    INVALID_RESIDENCY,
    NODE_COUNTRY_UNKNOWN,
    NODE_NOT_FOUND,
    NODE_OUTSIDE_RESIDENCY,
    RESIDENCY_CONFLICT,
    VOLUME_LOCATION_UNKNOWN,
    VOLUME_OUTSIDE_RESIDENCY,
    JsonObject,
    audit_pod,
    by_name,
    by_ns_name,
    residency_of,
)
from .model import COUNTRY_LABEL
from .residency import format_residency

REFUSED = frozenset({INVALID_RESIDENCY, RESIDENCY_CONFLICT, NODE_NOT_FOUND, NODE_COUNTRY_UNKNOWN,
                     NODE_OUTSIDE_RESIDENCY, VOLUME_LOCATION_UNKNOWN, VOLUME_OUTSIDE_RESIDENCY})


def node_object(name: str, country: str | None) -> dict[str, Any]:
    """The node as the audit reads it, from heatsched's trusted view (country None: unknown or in conflict)."""
    return {"metadata": {"name": name, "labels": {COUNTRY_LABEL: country} if country else {}}}


def pod_refusal(pod: JsonObject, namespace_annotations: Mapping[str, str], nodes: Mapping[str, JsonObject],
                claims: Iterable[JsonObject], volumes: Iterable[JsonObject],
                classes: Iterable[JsonObject]) -> str | None:
    """Why a pod must not be created, or None. `nodes` holds its preset node (if known), the rest the storage
    objects its claims name."""
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    found = audit_pod(
        pod, {namespace: {"metadata": {"annotations": dict(namespace_annotations)}}}, nodes,
        by_ns_name(claims), by_name(volumes), by_name(classes))
    reasons = [f.reason for f in found.findings if f.code in REFUSED]
    return "; ".join(reasons) if reasons else None


def binding_refusal(pod_annotations: Mapping[str, str] | None, namespace_annotations: Mapping[str, str] | None,
                    pod: str, node: str, country: str | None) -> str | None:
    """Why binding `pod` to `node` (trusted country `country`) must be refused, or None."""
    resident, countries, _, findings = residency_of(pod_annotations, namespace_annotations)
    if not resident:
        return None
    if findings:
        return "; ".join(f.reason for f in findings)
    assert countries is not None
    if country not in countries:
        return (f"binding pod {pod} to node {node} is refused: the node is in {country or 'no trusted country'}, "
                f"outside residency {format_residency(countries) or 'nothing'}")
    return None
