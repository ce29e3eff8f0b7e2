"""Node objects for kwok: fake nodes that the kwok controller marks Ready and whose pods it runs.

Shared by the e2e suite, the demo and the throughput benchmark, so every one of them makes nodes the same
way: the kwok annotation, a taint-free spec, capacity, and the admin-set pool label a HeatSite selects on
(`node-restriction.kubernetes.io/heatsched-pool`, which a kubelet cannot set on itself).
"""

from __future__ import annotations

from typing import Any

POOL_LABEL = "node-restriction.kubernetes.io/heatsched-pool"


def kwok_node(name: str, *, pool: str | None = None, cpu: str = "32", memory: str = "256Gi", pods: str = "110",
              labels: dict[str, str] | None = None) -> dict[str, Any]:
    all_labels = {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                  **({POOL_LABEL: pool} if pool else {}), **(labels or {})}
    capacity = {"cpu": cpu, "memory": memory, "pods": pods}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": all_labels, "annotations": {"kwok.x-k8s.io/node": "fake"}},
        "spec": {},
        "status": {"allocatable": dict(capacity), "capacity": dict(capacity)},
    }
