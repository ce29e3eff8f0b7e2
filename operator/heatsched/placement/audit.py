"""Residency audit: does every resident pod run, and keep its volumes, inside its residency? Pure.

Input is plain Kubernetes JSON (dicts as the apiserver sends them: camelCase, `metadata`/`spec`/`status`)
for pods, nodes, namespaces, PersistentVolumeClaims, PersistentVolumes and StorageClasses; output is an
`AuditReport` of one `PodAudit` per pod, each with its findings. No kubernetes, kopf or HTTP here: the
`heatsched audit` command (heatsched/audit.py) lists the objects and prints the report.

Rules (docs/audit.md says why):
- effective residency: the pod's `heatsched.io/residency`, else its namespace's; with both, their
  INTERSECTION (a namespace residency is a ceiling its pods cannot widen). An invalid value on either is a
  violation (cannot verify); the valid one, if any, is still checked.
- bound pod (spec.nodeName): the node's trusted country is its COUNTRY_LABEL; node absent, label absent or
  country outside the residency is a violation. An unbound pod is `pending`, not a violation by itself.
- volumes: a persistentVolumeClaim (or generic ephemeral) volume is located by its bound PV's
  `heatsched.io/country` label, else the PV's required nodeAffinity on COUNTRY_LABEL; an unbound claim by
  its StorageClass's `heatsched.io/country` label, else its allowedTopologies on COUNTRY_LABEL. Every
  country so found must be inside the residency; no declared location is a violation. emptyDir, hostPath,
  image, configMap, secret, projected and downwardAPI are node-local or API data (no finding); every other
  volume type is network storage of unknown location (violation).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .model import COUNTRY_LABEL
from .residency import (
    RESIDENCY_ANNOTATION,
    ResidencyError,
    format_residency,
    parse_residency,
)

# A location label on cluster-scoped storage objects (PersistentVolume, StorageClass). Only cluster admins
# (and the provisioners they run) can write those objects, so, unlike a PVC's labels, this one is trusted.
VOLUME_COUNTRY_LABEL = "heatsched.io/country"
DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                             "storageclass.beta.kubernetes.io/is-default-class")

# Volume types whose data lives on the node itself or comes from the API server: the node check covers them.
NODE_LOCAL_VOLUMES = frozenset({"emptyDir", "hostPath", "image"})
API_VOLUMES = frozenset({"configMap", "secret", "projected", "downwardAPI"})
# Keys of a pod volume that are not its type.
_NOT_A_TYPE = frozenset({"name"})

# A Kubernetes object as the apiserver sends it (JSON: metadata, spec, status ...).
JsonObject = Mapping[str, Any]

# verdicts
COMPLIANT, VIOLATION, PENDING, UNRESTRICTED = "compliant", "violation", "pending", "unrestricted"

# finding codes (stable: they are part of the JSON evidence)
INVALID_RESIDENCY = "InvalidResidency"
RESIDENCY_CONFLICT = "ResidencyConflict"
NODE_NOT_FOUND = "NodeNotFound"
NODE_COUNTRY_UNKNOWN = "NodeCountryUnknown"
NODE_OUTSIDE_RESIDENCY = "NodeOutsideResidency"
VOLUME_LOCATION_UNKNOWN = "VolumeLocationUnknown"
VOLUME_OUTSIDE_RESIDENCY = "VolumeOutsideResidency"


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class VolumeAudit:
    """Where one pod volume keeps its data.

    `location` is "network" (a claim or other storage with a country), "node" (node-local) or "api";
    `countries` is None when a network volume declares no location; `source` says where the countries came
    from (pv-label, pv-node-affinity, storageclass-label, storageclass-topology) or why there are none.
    """

    name: str
    type: str
    location: str
    countries: frozenset[str] | None = None
    source: str = ""
    claim: str | None = None
    persistent_volume: str | None = None
    storage_class: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "location": self.location,
                "countries": None if self.countries is None else sorted(self.countries), "source": self.source,
                "claim": self.claim, "persistentVolume": self.persistent_volume, "storageClass": self.storage_class}


@dataclass(frozen=True, slots=True)
class PodAudit:
    namespace: str
    name: str
    uid: str | None
    phase: str | None
    resident: bool
    residency: frozenset[str] | None  # None: unrestricted, or no valid annotation at all
    residency_source: str | None  # "pod", "namespace", "pod+namespace" or None
    pod_annotation: str | None
    namespace_annotation: str | None
    node: str | None
    node_country: str | None
    volumes: tuple[VolumeAudit, ...] = ()
    findings: tuple[Finding, ...] = ()

    @property
    def verdict(self) -> str:
        if not self.resident:
            return UNRESTRICTED
        if self.findings:
            return VIOLATION
        return COMPLIANT if self.node else PENDING

    def to_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace, "name": self.name, "uid": self.uid, "phase": self.phase,
            "resident": self.resident,
            "residency": None if self.residency is None else format_residency(self.residency),
            "residencyCountries": None if self.residency is None else sorted(self.residency),
            "residencySource": self.residency_source,
            "podAnnotation": self.pod_annotation, "namespaceAnnotation": self.namespace_annotation,
            "node": self.node, "nodeCountry": self.node_country,
            "volumes": [v.to_json() for v in self.volumes],
            "verdict": self.verdict,
            "violations": [f.to_json() for f in self.findings],
        }


@dataclass(slots=True)
class AuditReport:
    pods: list[PodAudit] = field(default_factory=list)

    @property
    def violations(self) -> list[PodAudit]:
        return [p for p in self.pods if p.verdict == VIOLATION]

    @property
    def ok(self) -> bool:
        return not self.violations

    def counts(self) -> dict[str, int]:
        verdicts = [p.verdict for p in self.pods]
        return {"pods": len(self.pods), "resident": sum(p.resident for p in self.pods),
                COMPLIANT: verdicts.count(COMPLIANT), VIOLATION: verdicts.count(VIOLATION),
                PENDING: verdicts.count(PENDING), UNRESTRICTED: verdicts.count(UNRESTRICTED),
                "findings": sum(len(p.findings) for p in self.pods)}

    def to_json(self) -> dict[str, Any]:
        return {"counts": self.counts(), "compliant": self.ok, "pods": [p.to_json() for p in self.pods]}


# ---- helpers ------------------------------------------------------------------------------------------
def _meta(obj: JsonObject) -> JsonObject:
    return obj.get("metadata") or {}


def by_name(objects: Iterable[JsonObject]) -> dict[Any, JsonObject]:
    """Keyed by metadata.name as the JSON has it (None when absent)."""
    return {_meta(o).get("name"): o for o in objects}


def by_ns_name(objects: Iterable[JsonObject]) -> dict[tuple[Any, Any], JsonObject]:
    """Keyed by (metadata.namespace, metadata.name) as the JSON has them (None when absent)."""
    return {(_meta(o).get("namespace"), _meta(o).get("name")): o for o in objects}


def _codes(countries: Iterable[str]) -> str:
    return format_residency(countries) or "nothing"


def country_terms(terms: list[Any] | None, expressions_key: str) -> frozenset[str] | None:
    """Countries a list of ORed terms allows on COUNTRY_LABEL, or None when any term leaves it open.

    Used for a PV's required nodeSelectorTerms (`matchExpressions`, operator In) and a StorageClass's
    allowedTopologies (`matchLabelExpressions`, always In). Expressions in one term are ANDed: several on the
    country label intersect. A term with no `In` on the country label allows any country: None.
    """
    if not terms:
        return None
    allowed: set[str] = set()
    for term in terms:
        term_countries: set[str] | None = None
        for expr in (term or {}).get(expressions_key) or ():
            if expr.get("key") != COUNTRY_LABEL or expr.get("operator", "In") != "In":
                continue
            values = set(expr.get("values") or ())
            term_countries = values if term_countries is None else term_countries & values
        if not term_countries:  # open term (None), or one that allows nothing: an empty In matches no node
            if term_countries is None:
                return None
            continue
        allowed |= term_countries
    return frozenset(allowed)


def residency_of(pod_annotations: Mapping[str, str] | None, namespace_annotations: Mapping[str, str] | None,
                 ) -> tuple[bool, frozenset[str] | None, str | None, list[Finding]]:
    """(resident, countries, source, findings) for a pod's and its namespace's annotations."""
    parsed: dict[str, frozenset[str]] = {}
    findings: list[Finding] = []
    present = False
    for where, notes in (("pod", pod_annotations), ("namespace", namespace_annotations)):
        if not notes or RESIDENCY_ANNOTATION not in notes:
            continue
        present = True
        try:
            parsed[where] = parse_residency(notes[RESIDENCY_ANNOTATION])
        except ResidencyError as exc:
            findings.append(Finding(INVALID_RESIDENCY, f"{where} {RESIDENCY_ANNOTATION} cannot be verified: {exc}"))
    if not parsed:
        return present, None, None, findings
    if len(parsed) == 2:
        countries = parsed["pod"] & parsed["namespace"]
        if not countries:
            findings.append(Finding(RESIDENCY_CONFLICT, (
                f"pod residency {_codes(parsed['pod'])} and namespace residency {_codes(parsed['namespace'])} "
                f"do not overlap: no country satisfies both")))
        return True, countries, "pod+namespace", findings
    [(where, countries)] = parsed.items()
    return True, countries, where, findings


# ---- volumes ------------------------------------------------------------------------------------------
def volume_type(volume: JsonObject) -> str:
    types = [k for k in volume if k not in _NOT_A_TYPE and volume[k] is not None]
    return types[0] if types else "unknown"


def _default_class(classes: Mapping[str, JsonObject]) -> str | None:
    defaults = sorted(name for name, sc in classes.items()
                      if any((_meta(sc).get("annotations") or {}).get(a) == "true" for a in DEFAULT_CLASS_ANNOTATIONS))
    return defaults[-1] if defaults else None  # several defaults: like the apiserver, one of them (stable here)


def _locate_pv(pv: JsonObject) -> tuple[frozenset[str] | None, str]:
    label = (_meta(pv).get("labels") or {}).get(VOLUME_COUNTRY_LABEL)
    if label is not None:
        return frozenset({label}), "pv-label"
    terms = ((((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}).get("nodeSelectorTerms"))
    countries = country_terms(terms, "matchExpressions")
    if countries is not None:
        return countries, "pv-node-affinity"
    return None, (f"persistent volume has no {VOLUME_COUNTRY_LABEL} label and no required node affinity "
                  f"on {COUNTRY_LABEL}")


def _locate_class(name: str | None, classes: Mapping[str, JsonObject]) -> tuple[frozenset[str] | None, str]:
    if not name:
        return None, "claim is not bound and names no storage class"
    sc = classes.get(name)
    if sc is None:
        return None, f"claim is not bound and its storage class {name} does not exist"
    label = (_meta(sc).get("labels") or {}).get(VOLUME_COUNTRY_LABEL)
    if label is not None:
        return frozenset({label}), "storageclass-label"
    countries = country_terms(sc.get("allowedTopologies"), "matchLabelExpressions")
    if countries is not None:
        return countries, "storageclass-topology"
    return None, (f"claim is not bound and storage class {name} has no {VOLUME_COUNTRY_LABEL} label and no "
                  f"allowedTopologies on {COUNTRY_LABEL}")


def _claim_volume(name: str, vtype: str, claim_name: str, namespace: str, template_class: str | None,
                  pvcs: Mapping[tuple[str, str], JsonObject], pvs: Mapping[str, JsonObject],
                  classes: Mapping[str, JsonObject]) -> VolumeAudit:
    pvc = pvcs.get((namespace, claim_name))
    if pvc is None:
        if vtype == "ephemeral":  # the claim is made when the pod is; until then the template says where
            sc_name = template_class if template_class is not None else _default_class(classes)
            countries, source = _locate_class(sc_name, classes)
            return VolumeAudit(name, vtype, "network", countries, source, claim_name, None, sc_name)
        return VolumeAudit(name, vtype, "network", None, f"claim {namespace}/{claim_name} does not exist", claim_name)
    spec = pvc.get("spec") or {}
    sc_name = spec.get("storageClassName")
    if sc_name is None:
        sc_name = _default_class(classes)
    pv_name = spec.get("volumeName")
    if pv_name:  # bound, or pre-bound to this volume: the volume is where the data is (or will be)
        pv = pvs.get(pv_name)
        if pv is None:
            return VolumeAudit(name, vtype, "network", None, f"bound persistent volume {pv_name} does not exist",
                               claim_name, pv_name, sc_name or None)
        countries, source = _locate_pv(pv)
        return VolumeAudit(name, vtype, "network", countries, source, claim_name, pv_name, sc_name or None)
    countries, source = _locate_class(sc_name, classes)
    return VolumeAudit(name, vtype, "network", countries, source, claim_name, pv_name or None, sc_name or None)


def audit_volume(volume: JsonObject, pod_name: str, namespace: str, pvcs: Mapping[tuple[str, str], JsonObject],
                 pvs: Mapping[str, JsonObject], classes: Mapping[str, JsonObject]) -> VolumeAudit:
    name = volume.get("name") or "?"
    vtype = volume_type(volume)
    if vtype in NODE_LOCAL_VOLUMES:
        return VolumeAudit(name, vtype, "node", source="node-local")
    if vtype in API_VOLUMES:
        return VolumeAudit(name, vtype, "api", source="api")
    if vtype == "persistentVolumeClaim":
        return _claim_volume(name, vtype, volume[vtype].get("claimName") or "", namespace, None, pvcs, pvs, classes)
    if vtype == "ephemeral":  # generic ephemeral volume: the claim is named <pod>-<volume>
        template = ((volume[vtype] or {}).get("volumeClaimTemplate") or {}).get("spec") or {}
        return _claim_volume(name, vtype, f"{pod_name}-{name}", namespace, template.get("storageClassName"),
                             pvcs, pvs, classes)
    return VolumeAudit(name, vtype, "network", None, f"{vtype} volumes declare no location")


def _describe(v: VolumeAudit) -> str:
    if v.claim is None:
        return f"volume {v.name} ({v.type})"
    return f"volume {v.name} (claim {v.claim}" + (
        f", persistent volume {v.persistent_volume})" if v.persistent_volume else ")")


# ---- pods ---------------------------------------------------------------------------------------------
def audit_pod(pod: JsonObject, namespaces: Mapping[str, JsonObject], nodes: Mapping[str, JsonObject],
              pvcs: Mapping[tuple[str, str], JsonObject], pvs: Mapping[str, JsonObject],
              classes: Mapping[str, JsonObject]) -> PodAudit:
    meta, spec = _meta(pod), pod.get("spec") or {}
    namespace = meta.get("namespace") or "default"
    pod_annotations = meta.get("annotations") or {}
    ns_annotations = _meta(namespaces.get(namespace) or {}).get("annotations") or {}
    resident, residency, source, findings = residency_of(pod_annotations, ns_annotations)

    node_name = spec.get("nodeName") or None
    node_country = None
    if node_name:
        node = nodes.get(node_name)
        node_country = None if node is None else (_meta(node).get("labels") or {}).get(COUNTRY_LABEL)
        if resident:
            if node is None:
                findings.append(Finding(NODE_NOT_FOUND,
                                        f"node {node_name} does not exist: its country cannot be verified"))
            elif node_country is None:
                findings.append(Finding(NODE_COUNTRY_UNKNOWN, f"node {node_name} has no {COUNTRY_LABEL} label: "
                                                              f"its country cannot be verified"))
            elif residency is not None and node_country not in residency:
                findings.append(Finding(NODE_OUTSIDE_RESIDENCY, f"node {node_name} is in {node_country}, outside "
                                                                f"residency {_codes(residency)}"))

    volumes = tuple(audit_volume(v, meta.get("name") or "", namespace, pvcs, pvs, classes)
                    for v in spec.get("volumes") or ())
    if resident:
        for v in volumes:
            if v.location != "network":
                continue
            what = _describe(v)
            if v.countries is None:
                findings.append(Finding(VOLUME_LOCATION_UNKNOWN, f"{what}: location unknown ({v.source})"))
            elif residency is not None and not v.countries <= residency:
                findings.append(Finding(VOLUME_OUTSIDE_RESIDENCY, (
                    f"{what} is in {_codes(v.countries)} ({v.source}), outside residency {_codes(residency)}")))
            elif not v.countries:
                findings.append(Finding(VOLUME_LOCATION_UNKNOWN, f"{what}: its {v.source} allows no country"))

    return PodAudit(
        namespace=namespace, name=meta.get("name") or "", uid=meta.get("uid"),
        phase=(pod.get("status") or {}).get("phase"),
        resident=resident, residency=residency, residency_source=source,
        pod_annotation=pod_annotations.get(RESIDENCY_ANNOTATION),
        namespace_annotation=ns_annotations.get(RESIDENCY_ANNOTATION),
        node=node_name, node_country=node_country, volumes=volumes, findings=tuple(findings))


def audit(pods: Iterable[JsonObject], *, namespaces: Iterable[JsonObject] = (), nodes: Iterable[JsonObject] = (),
          claims: Iterable[JsonObject] = (), volumes: Iterable[JsonObject] = (),
          storage_classes: Iterable[JsonObject] = (), all_pods: bool = False) -> AuditReport:
    """Audit every pod (only the resident ones unless `all_pods`), sorted by namespace and name."""
    ns, nd, pvc, pv, sc = (by_name(namespaces), by_name(nodes), by_ns_name(claims), by_name(volumes),
                           by_name(storage_classes))
    report = AuditReport()
    for pod in pods:
        entry = audit_pod(pod, ns, nd, pvc, pv, sc)
        if entry.resident or all_pods:
            report.pods.append(entry)
    report.pods.sort(key=lambda p: (p.namespace, p.name))
    return report
