"""The admission webhook: only the residency checks that must look up another object.

Why so little: the pod path (parse, namespace ceiling, affinity, immutability, the heat-aware opt-in) is enforced
by kube-apiserver's own admission policies (admission/policies.py), which need no server. What is left here:

  POST /validate/pods      resident pods created with a preset spec.nodeName or a network volume
                           (placement/admission.pod_refusal: the node's trusted country, the volumes' countries)
  POST /validate/bindings  pods/binding and v1 Binding sent by anyone but the trusted schedulers
                           (placement/admission.binding_refusal: the target node's trusted country)
  GET  /healthz            200

The webhook configurations (configuration.py) send only those requests (matchConditions), failurePolicy Fail.

Answers: a malformed review → 400 with the reason (kube-apiserver then applies the failure policy: refused);
a lookup that fails or times out → allowed: false with the reason (fail closed); never a 500.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from heatsched.admission.review import (
    MAX_BODY_BYTES,
    AdmissionRequest,
    ReviewError,
    parse_review,
    response,
)
from heatsched.metrics import AdmissionMetrics
from heatsched.placement.admission import binding_refusal, node_object, pod_refusal
from heatsched.placement.audit import volume_type

log = logging.getLogger("heatsched.admission")
JSON = "application/json"
LOOKUP_TIMEOUT_S = 3.0


class LookupError_(Exception):
    """An object the check needs could not be read (the message says which and why)."""


Read = Callable[..., Awaitable[dict[str, Any] | None]]  # read(kind, namespace, name) -> object or None (404)


@dataclass(frozen=True)
class Lookups:
    """What the checks read. `node_country(name)` is the node's trusted country (None: unknown);
    `read(kind, namespace, name)` reads a "pod", "claim", "volume" from the API (None when it does not exist)
    and `classes()` lists StorageClasses; `namespace_annotations(ns)` comes from the cache or the API. Both may
    raise LookupError_."""

    node_country: Callable[[str], Awaitable[str | None]]
    namespace_annotations: Callable[[str], Awaitable[Mapping[str, str]]]
    read: Read
    classes: Callable[[], Awaitable[list[dict[str, Any]]]]


async def _storage(pod: Mapping[str, Any], namespace: str, lookups: Lookups
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The claims, volumes and classes a pod's volumes name (only what exists)."""
    claims: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    need_classes = False
    pod_name = (pod.get("metadata") or {}).get("name") or ""
    for volume in (pod.get("spec") or {}).get("volumes") or ():
        vtype = volume_type(volume)
        if vtype == "persistentVolumeClaim":
            claim_name = (volume.get(vtype) or {}).get("claimName") or ""
        elif vtype == "ephemeral":
            claim_name = f"{pod_name}-{volume.get('name')}"
        else:
            continue
        claim = await lookups.read("claim", namespace, claim_name)
        if claim is None:
            need_classes = True
            continue
        claims.append(claim)
        pv_name = (claim.get("spec") or {}).get("volumeName")
        if pv_name:
            pv = await lookups.read("volume", "", pv_name)
            if pv is not None:
                volumes.append(pv)
        else:
            need_classes = True
    return claims, volumes, (await lookups.classes()) if need_classes else []


async def check_pod(req: AdmissionRequest, lookups: Lookups) -> str | None:
    pod = req.object or {}
    meta = pod.get("metadata") or {}
    namespace = req.namespace or meta.get("namespace") or ""
    pod = {**pod, "metadata": {**meta, "namespace": namespace}}
    ns_annotations = await lookups.namespace_annotations(namespace)
    node = (pod.get("spec") or {}).get("nodeName")
    nodes = {node: node_object(node, await lookups.node_country(node))} if node else {}
    claims, volumes, classes = await _storage(pod, namespace, lookups)
    return pod_refusal(pod, ns_annotations, nodes, claims, volumes, classes)


async def check_binding(req: AdmissionRequest, lookups: Lookups) -> str | None:
    binding = req.object or {}
    meta, target = binding.get("metadata") or {}, binding.get("target") or {}
    namespace = req.namespace or meta.get("namespace") or ""
    name = req.name or meta.get("name") or ""
    node = target.get("name") or ""
    pod = await lookups.read("pod", namespace, name)
    if pod is None:
        raise LookupError_(f"pod {namespace}/{name} does not exist")
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    ns_annotations = await lookups.namespace_annotations(namespace)
    return binding_refusal(annotations, ns_annotations, f"{namespace}/{name}", node, await lookups.node_country(node))


Check = Callable[[AdmissionRequest, Lookups], Awaitable[str | None]]


def make_app(lookups: Lookups, *, timeout_s: float = LOOKUP_TIMEOUT_S,
             metrics: AdmissionMetrics | None = None) -> web.Application:
    """The webhook application (serve it over TLS: kube-apiserver only calls https)."""

    def count(webhook: str, result: str) -> None:
        if metrics is not None:
            metrics.results.labels(webhook, result).inc()

    def handler(check: Check, what: str, webhook: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            try:
                body = await request.read()
                review = parse_review(body)
            except (ReviewError, web.HTTPRequestEntityTooLarge) as exc:
                count(webhook, "malformed")
                return web.json_response({"error": str(exc)}, status=400 if isinstance(exc, ReviewError) else 413)
            req = review.request
            try:
                message = await asyncio.wait_for(check(req, lookups), timeout_s)
            except (TimeoutError, LookupError_) as exc:
                message = f"cannot check the residency of this {what}: " + (
                    str(exc) or f"a lookup took over {timeout_s:g} s")
            except Exception as exc:  # a bug must refuse, with a reason, not answer 500
                log.exception("admission %s check failed", what)
                message = f"cannot check the residency of this {what}: internal error {type(exc).__name__}"
            if message is None:
                count(webhook, "allowed")
                return web.Response(body=response(req.uid, allowed=True), content_type=JSON)
            count(webhook, "refused")
            return web.Response(body=response(req.uid, allowed=False, message=message), content_type=JSON)
        return handle

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=MAX_BODY_BYTES + 1)
    app.router.add_post("/validate/pods", handler(check_pod, "pod", "pods"))
    app.router.add_post("/validate/bindings", handler(check_binding, "binding", "bindings"))
    app.router.add_get("/healthz", healthz)
    return app
