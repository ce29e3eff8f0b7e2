"""Admission webhook: residency is validated at the door and turned into a required node affinity.

Why an affinity: kube-scheduler's own NodeAffinity filter then enforces residency on the protected
country label in every scheduler and profile, with or without the extender. The extender's residency check
is a second lock, not the only one.

Pods:
- mutate (`pod_mutate`): the effective residency (pod annotation within the namespace's `heatsched.io/residency`
  annotation, which is a ceiling: a pod residency outside it is refused; no pod annotation: the namespace's)
  is parsed (fail closed: a bad value is refused with what is allowed), written back on the pod, and ANDed
  into every required nodeSelectorTerm as
  `node-restriction.kubernetes.io/heatsched-country In [...]`. Pods in namespaces labelled
  `heatsched.io/scheduling=heat-aware` get `schedulerName: heat-aware` (unless they chose another).
- validate (`pod_validate`): on create and update, the final pod must carry a valid residency, within its
  namespace's, that its affinity enforces; the residency annotation cannot change after creation; a pod with residency and a
  preset `spec.nodeName` (which bypasses the scheduler) must name a node of an allowed country.
Bindings (`binding_validate`, the pods/binding subresource every scheduler uses): the target node's trusted
country must be inside the pod's residency.
Namespaces: a namespace with a residency annotation is validated and labelled
`heatsched.io/residency-enforced=true`, which routes its pods to the fail-closed webhook.

Failure policy (the webhook configurations this module builds): Fail for pods that carry a residency
annotation (matchConditions) and for pods in residency-enforced namespaces (namespaceSelector): if the
webhook is down such pods are refused, never admitted unrestricted. Ignore for the heat-aware opt-in
of other pods: if the webhook is down they are scheduled by the default scheduler, without heat preference.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import logging
import tempfile
from pathlib import Path
from typing import Any

import kopf
from kubernetes import client
from kubernetes.client.rest import ApiException

from heatsched.operator_app.config import OperatorConfig
from heatsched.operator_app.kube import call
from heatsched.placement.model import COUNTRY_LABEL
from heatsched.placement.residency import (
    RESIDENCY_ANNOTATION,
    ResidencyError,
    format_residency,
    parse_residency,
    within_ceiling,
)

log = logging.getLogger("heatsched.webhook")

ENFORCED_LABEL = "heatsched.io/residency-enforced"
SCHEDULING_LABEL = "heatsched.io/scheduling"
HEAT_AWARE = "heat-aware"
CONFIG_NAME = "heatsched.io"
HAS_RESIDENCY = (f"has(object.metadata.annotations) && '{RESIDENCY_ANNOTATION}' in object.metadata.annotations")
BINDINGS = ["pods/binding", "bindings"]  # the subresource schedulers use, and the legacy v1 Binding resource
SYSTEM_NAMESPACES = {"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                     "values": ["kube-system", "kube-node-lease"]}


# ---- pure pieces (unit-tested) ------------------------------------------------------------------------
def residency_affinity(affinity: dict | None, countries: frozenset[str]) -> dict:
    """`affinity` with the country requirement ANDed into every required nodeSelectorTerm (terms are ORed,
    so adding it to only one term would let the others bypass it)."""
    out = copy.deepcopy(affinity) if affinity else {}
    node = out.setdefault("nodeAffinity", {})
    required = node.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.get("nodeSelectorTerms") or [{}]
    requirement = {"key": COUNTRY_LABEL, "operator": "In", "values": sorted(countries)}
    new_terms = []
    for term in terms:
        exprs = list(term.get("matchExpressions") or [])
        # an existing country requirement can only narrow ours (they are ANDed): keep it, add ours once
        if requirement not in exprs:
            exprs.append(requirement)
        new_terms.append({**term, "matchExpressions": exprs})
    required["nodeSelectorTerms"] = new_terms
    return out


def enforces(affinity: dict | None, countries: frozenset[str]) -> bool:
    """True when every required nodeSelectorTerm restricts the country label to a subset of `countries`."""
    terms = ((((affinity or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
              or {}).get("nodeSelectorTerms")) or []
    if not terms:
        return False
    for term in terms:
        ok = any(e.get("key") == COUNTRY_LABEL and e.get("operator") == "In"
                 and set(e.get("values") or ()) <= countries and e.get("values") for e in term.get("matchExpressions") or ())
        if not ok:
            return False
    return True


def refuse(message: str) -> kopf.AdmissionError:
    return kopf.AdmissionError(message, code=422)


def parse_or_refuse(value: Any, where: str) -> frozenset[str]:
    try:
        return parse_residency(value)
    except ResidencyError as exc:
        raise refuse(f"{where} {RESIDENCY_ANNOTATION}: {exc}") from None


def webhook_configurations(client_config: dict) -> tuple[dict, dict]:
    """The Mutating- and ValidatingWebhookConfiguration for a webhook server reachable at
    `client_config` ({"url": ...} or {"service": ...}, plus "caBundle"); handler paths are appended."""
    def cc(path: str) -> dict:
        out = dict(client_config)
        if "url" in out:
            out["url"] = out["url"].rstrip("/") + f"/{path}"
        else:
            out["service"] = {**out["service"], "path": f"/{path}"}
        return out

    def hook(name, path, resources, operations, policy, *, conditions=None, ns_selector=None, timeout=5):
        return {
            "name": f"{name}.heatsched.io", "clientConfig": cc(path), "failurePolicy": policy,
            "sideEffects": "None", "admissionReviewVersions": ["v1"], "timeoutSeconds": timeout,
            "matchPolicy": "Equivalent",
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": resources,
                       "operations": operations, "scope": "*"}],
            "namespaceSelector": ns_selector if ns_selector is not None else {"matchExpressions": [SYSTEM_NAMESPACES]},
            **({"matchConditions": conditions} if conditions else {}),
        }

    has_residency = [{"name": "has-residency", "expression": HAS_RESIDENCY}]
    enforced_ns = {"matchLabels": {ENFORCED_LABEL: "true"}}
    ns_touching = [{"name": "residency-or-enforced", "expression":
                    f"{HAS_RESIDENCY} || (has(object.metadata.labels) && '{ENFORCED_LABEL}' in object.metadata.labels)"}]
    mutating = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": CONFIG_NAME},
        "webhooks": [
            # every namespace, kube-system too: only pods that carry a residency match, and they must keep it
            hook("pods-with-residency", "pod_mutate", ["pods"], ["CREATE"], "Fail", conditions=has_residency,
                 ns_selector={}),
            hook("pods-in-resident-namespaces", "pod_mutate", ["pods"], ["CREATE"], "Fail", ns_selector=enforced_ns),
            hook("pods-heat-aware-opt-in", "pod_mutate", ["pods"], ["CREATE"], "Ignore",
                 ns_selector={"matchLabels": {SCHEDULING_LABEL: HEAT_AWARE}}),
            hook("namespaces", "namespace_mutate", ["namespaces"], ["CREATE", "UPDATE"], "Fail",
                 conditions=ns_touching, ns_selector={}),
        ],
    }
    validating = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": CONFIG_NAME},
        "webhooks": [
            hook("pods-with-residency", "pod_validate", ["pods"], ["CREATE", "UPDATE"], "Fail",
                 conditions=[{"name": "has-residency", "expression":
                              f"{HAS_RESIDENCY} || (oldObject != null && has(oldObject.metadata.annotations) && "
                              f"'{RESIDENCY_ANNOTATION}' in oldObject.metadata.annotations)"}], ns_selector={}),
            hook("pods-in-resident-namespaces", "pod_validate", ["pods"], ["CREATE"], "Fail", ns_selector=enforced_ns),
            # pods/binding (what kube-scheduler, or anyone allowed to bind, sends): the binding carries no
            # annotation, so every binding is checked; Fail where every pod is resident, Ignore elsewhere (if the
            # operator is down, a resident pod's node affinity still holds for every scheduler)
            hook("bindings-in-resident-namespaces", "binding_validate", BINDINGS, ["CREATE"], "Fail",
                 ns_selector=enforced_ns),
            hook("bindings", "binding_validate", BINDINGS, ["CREATE"], "Ignore", timeout=2,
                 ns_selector={"matchExpressions": [{"key": ENFORCED_LABEL, "operator": "DoesNotExist"}]}),
        ],
    }
    return mutating, validating


# ---- handlers -------------------------------------------------------------------------------------------
async def _namespace_annotations(op, namespace: str) -> tuple[dict, dict]:
    cached = op.store.namespaces.get(namespace)
    if cached is not None:
        return cached
    try:
        ns = await call(op.core.read_namespace, namespace)
    except ApiException as exc:
        raise refuse(f"cannot read namespace {namespace} to find its default residency: {exc.reason}") from None
    return dict(ns.metadata.annotations or {}), dict(ns.metadata.labels or {})


def _residency(namespace: str, own: str | None, ns_annotations: dict) -> frozenset[str] | None:
    """The pod's effective residency, its namespace's being a ceiling; refused (422) with the reason."""
    pod = parse_or_refuse(own, "pod") if own is not None else None
    ns_value = ns_annotations.get(RESIDENCY_ANNOTATION)
    ns = parse_or_refuse(ns_value, f"namespace {namespace} default") if ns_value is not None else None
    try:
        return within_ceiling(pod, ns)
    except ResidencyError as exc:
        raise refuse(f"namespace {namespace}: {exc}") from None


async def _pod_annotations(op, namespace: str, name: str) -> dict:
    """A pod's annotations: from the store's watch, else read (with a timeout); refused when unreadable."""
    cached = op.store.pod_annotations.get((namespace, name))
    if cached is not None:
        return cached
    try:
        pod = await call(op.core.read_namespaced_pod, name, namespace, _request_timeout=3)
    except ApiException as exc:
        raise refuse(f"cannot read pod {namespace}/{name} to check its residency: {exc.reason}") from None
    return dict(pod.metadata.annotations or {})


def register(registry: kopf.OperatorRegistry) -> None:
    @kopf.on.mutate("", "v1", "pods", id="pod_mutate", operations=["CREATE"], registry=registry)
    async def pod_mutate(body, patch, namespace, memo, **_):
        op = memo.operator
        meta, spec = body.get("metadata", {}), body.get("spec", {})
        namespace = namespace or meta.get("namespace")
        ns_annotations, ns_labels = await _namespace_annotations(op, namespace)
        own = (meta.get("annotations") or {}).get(RESIDENCY_ANNOTATION)
        countries = _residency(namespace, own, ns_annotations)
        if countries is not None and own is None:
            patch.metadata.setdefault("annotations", {})[RESIDENCY_ANNOTATION] = format_residency(countries)
        if countries is not None:
            patch.spec["affinity"] = residency_affinity(spec.get("affinity"), countries)
        if ns_labels.get(SCHEDULING_LABEL) == HEAT_AWARE and spec.get("schedulerName") in (None, "default-scheduler"):
            patch.spec["schedulerName"] = HEAT_AWARE

    @kopf.on.validate("", "v1", "pods", id="pod_validate", registry=registry)
    async def pod_validate(body, old, operation, memo, **_):
        meta, spec = body.get("metadata", {}), body.get("spec", {})
        value = (meta.get("annotations") or {}).get(RESIDENCY_ANNOTATION)
        if operation == "UPDATE" and old is not None:
            before = ((old.get("metadata") or {}).get("annotations") or {}).get(RESIDENCY_ANNOTATION)
            if before != value:
                raise refuse(f"{RESIDENCY_ANNOTATION} cannot change after the pod is created "
                             f"({before!r} -> {value!r}): delete and recreate the pod")
            return
        if value is None:
            raise refuse(f"pods in this namespace need a {RESIDENCY_ANNOTATION} (the namespace enforces one, "
                         f"but the mutating webhook did not set it)")
        namespace = meta.get("namespace") or ""
        ns_annotations, _ = await _namespace_annotations(memo.operator, namespace)
        countries = _residency(namespace, value, ns_annotations)
        assert countries is not None
        if not enforces(spec.get("affinity"), countries):
            raise refuse(f"pod residency {format_residency(countries)} is not enforced by a required node affinity "
                         f"on {COUNTRY_LABEL} in every nodeSelectorTerm")
        node = spec.get("nodeName")
        if node:
            view = memo.operator.store.snapshot.nodes.get(node)
            country = view.country if view and not view.conflict else None
            if country not in countries:
                raise refuse(f"spec.nodeName {node} is in {country or 'an unknown country'}, outside residency "
                             f"{format_residency(countries)}")

    @kopf.on.validate("", "v1", "pods", id="binding_validate", subresource="binding", operations=["CREATE"],
                      registry=registry)
    @kopf.on.validate("", "v1", "bindings", id="binding_validate", operations=["CREATE"], registry=registry)
    async def binding_validate(body, namespace, memo, **_):
        """pods/binding: the target node must be inside the pod's residency (kwok and virtual kubelets do not
        re-check node affinity on admission)."""
        op = memo.operator
        meta, target = body.get("metadata") or {}, body.get("target") or {}
        namespace = namespace or meta.get("namespace") or ""
        name, node = meta.get("name") or "", target.get("name") or ""
        annotations = await _pod_annotations(op, namespace, name)
        ns_annotations, _ = await _namespace_annotations(op, namespace)
        countries = _residency(namespace, annotations.get(RESIDENCY_ANNOTATION), ns_annotations)
        if countries is None:
            return
        view = op.store.snapshot.nodes.get(node)
        country = view.country if view and not view.conflict else None
        if country not in countries:
            raise refuse(f"binding pod {namespace}/{name} to node {node} is refused: the node is in "
                         f"{country or 'no trusted country'}, outside residency {format_residency(countries)}")

    @kopf.on.mutate("", "v1", "namespaces", id="namespace_mutate", registry=registry)
    async def namespace_mutate(body, patch, **_):
        meta = body.get("metadata", {})
        value = (meta.get("annotations") or {}).get(RESIDENCY_ANNOTATION)
        labels = meta.get("labels") or {}
        if value is not None:
            parse_or_refuse(value, f"namespace {meta.get('name')}")
            if labels.get(ENFORCED_LABEL) != "true":
                patch.metadata.setdefault("labels", {})[ENFORCED_LABEL] = "true"
        elif ENFORCED_LABEL in labels:
            patch.metadata.setdefault("labels", {})[ENFORCED_LABEL] = None


# ---- serving --------------------------------------------------------------------------------------------
class _ConfiguringServer:
    """Wraps kopf's WebhookServer: each client config it announces is written into our own webhook
    configurations (kopf's managed mode cannot express matchConditions or namespaceSelector)."""

    def __init__(self, inner, apply) -> None:
        self.inner, self.apply = inner, apply

    async def __call__(self, fn):
        async for client_config in self.inner(fn):
            await self.apply(dict(client_config))
            yield client_config


def _apply_configurations(api: client.ApiClient, client_config: dict) -> None:
    adm = client.AdmissionregistrationV1Api(api)
    mutating, validating = webhook_configurations(client_config)
    for body, create, replace, read in (
        (mutating, adm.create_mutating_webhook_configuration, adm.replace_mutating_webhook_configuration,
         adm.read_mutating_webhook_configuration),
        (validating, adm.create_validating_webhook_configuration, adm.replace_validating_webhook_configuration,
         adm.read_validating_webhook_configuration),
    ):
        try:
            current = read(CONFIG_NAME)
            body = {**body, "metadata": {**body["metadata"], "resourceVersion": current.metadata.resource_version}}
            replace(CONFIG_NAME, body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            create(body)


def configure(settings: kopf.OperatorSettings, cfg: OperatorConfig, op) -> None:
    """Serve admission on cfg.webhook_host:port with a provided or self-signed certificate."""
    from heatsched.cluster.pki import serving_certificate

    public = cfg.webhook_public_host or cfg.webhook_host
    directory = Path(cfg.webhook_cert_dir or tempfile.mkdtemp(prefix="heatsched-webhook-"))
    cafile, certfile, keyfile = directory / "ca.crt", directory / "tls.crt", directory / "tls.key"
    if not certfile.exists():  # no certificate given: make one (kept in the dir, so restarts reuse it)
        directory.mkdir(parents=True, exist_ok=True)
        ca, cert, key = serving_certificate((public, cfg.webhook_host, "localhost"), common_name=public)
        cafile.write_bytes(ca)
        certfile.write_bytes(cert + ca)
        keyfile.write_bytes(key)
        keyfile.chmod(0o600)
    if not cafile.exists():  # a cert-manager style Secret without ca.crt: trust the chain itself
        cafile = certfile
    server = kopf.WebhookServer(addr=cfg.webhook_host, port=cfg.webhook_port, host=public,
                                certfile=str(certfile), pkeyfile=str(keyfile), cafile=str(cafile))
    settings.admission.managed = None

    async def apply(client_config: dict) -> None:
        if cfg.webhook_url:
            client_config = {"url": cfg.webhook_url,
                             "caBundle": base64.b64encode(Path(cafile).read_bytes()).decode()}
        if cfg.manage_webhook_configs:
            await asyncio.get_running_loop().run_in_executor(
                None, functools.partial(_apply_configurations, op.core.api_client, client_config))
            log.info("webhook configurations %s point at %s", CONFIG_NAME, client_config.get("url"))

    settings.admission.server = _ConfiguringServer(server, apply)
