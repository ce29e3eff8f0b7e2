"""The residency audit, run by the controller every few minutes and exported as metrics.

Why in the controller: `heatsched audit` gives evidence on demand; an alert needs the same check all the time.
It is the same pure rule set (placement/audit.audit) over what the controller already watches (resident pods
with their nodes and off-node volumes, nodes, namespaces) plus three small lists read here with a timeout
(PersistentVolumeClaims, PersistentVolumes, StorageClasses). No pod list: the Store already has them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from heatsched.kubeapi import KubeApi, path
from heatsched.placement.audit import audit
from heatsched.placement.model import COUNTRY_LABEL
from heatsched.placement.residency import RESIDENCY_ANNOTATION, format_residency

log = logging.getLogger("heatsched.audit")


async def _items(kube: KubeApi, url: str) -> list[dict[str, Any]]:
    return list((await kube.get(url)).get("items") or [])


def audit_counts(store: Any, claims: list[dict[str, Any]], volumes: list[dict[str, Any]],
                 classes: list[dict[str, Any]]) -> dict[str, int]:
    """Finding code -> number of findings over every resident pod the Store knows."""
    pods = [{"metadata": {"namespace": p.namespace, "name": p.name,
                          "annotations": {RESIDENCY_ANNOTATION: format_residency(p.residency)}},
             "spec": {"nodeName": p.node, "volumes": list(p.volumes)}} for p, _ in store.resident.values()]
    needed = {p["spec"]["nodeName"] for p in pods}
    nodes = [{"metadata": {"name": n, "labels": {k: v for k, v in store.node_labels.get(n, {}).items()
                                                  if k == COUNTRY_LABEL}}} for n in needed if n in store.node_labels]
    namespaces = [{"metadata": {"name": n, "annotations": a}} for n, a in store.namespaces.items()]
    report = audit(pods, namespaces=namespaces, nodes=nodes, claims=claims, volumes=volumes, storage_classes=classes)
    return dict(Counter(f.code for p in report.pods for f in p.findings))


async def run(store: Any, kube: KubeApi, interval_s: float) -> None:
    while True:
        try:
            claims = await _items(kube, path("", "v1", "persistentvolumeclaims"))
            volumes = await _items(kube, path("", "v1", "persistentvolumes"))
            classes = await _items(kube, path("storage.k8s.io", "v1", "storageclasses"))
            store.audit = audit_counts(store, claims, volumes, classes)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - an API error or timeout: keep the last result, say so in the log
            log.warning("residency audit skipped: %s: %s", type(exc).__name__, exc)
        await asyncio.sleep(interval_s)
