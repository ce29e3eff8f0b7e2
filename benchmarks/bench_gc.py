"""Pause of a full garbage collection in a placement replica, without and with gc.freeze() after the sync.

Why: CPython's generation-2 collection walks every tracked object and holds the event loop meanwhile; an
extender call that arrives then waits for it. In the running service at 1 000 nodes and 10 000 pods (a
gc.callbacks probe loaded as a sitecustomize into the placement process of bench_operator_memory.py, not kept)
the start-up collections took 117 ms and a later one 128 ms. PlacementService.freeze_when_synced collects once and freezes what is left before the replica reports
ready. This script builds that state in one process the way the service does (the service's own imports, its
watch callbacks fed with decoded JSON of N nodes, 4 sites and P bound pods), then times a full collection:
  1. nothing frozen (the service before this change),
  2. after freeze_when_synced, with P more pods bound since (what later collections walk).

    .venv/bin/python benchmarks/bench_gc.py                     # 1 000 nodes, 10 000 pods
    .venv/bin/python benchmarks/bench_gc.py --nodes 5000 --pods 50000 --json out.json

Not a pytest test: the pauses depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import yaml
from heatsched.kubeapi import Credentials, KubeApi
from heatsched.placement.model import COUNTRY_LABEL, SITE_LABEL
from heatsched.placement_service.config import PlacementConfig
from heatsched.placement_service.main import PlacementService

ROOT = Path(__file__).resolve().parent.parent
SITE = next(d for d in yaml.safe_load_all((ROOT / "examples" / "metz-hospital.yaml").read_text())
            if d and d.get("kind") == "HeatSite")


class Synced:
    synced = True


def pod(i: int, node: str) -> bytes:
    return orjson.dumps({
        "metadata": {"name": f"p-{i}", "namespace": "bench", "uid": f"uid-{i:08d}", "labels": {"app": "bench"},
                     "annotations": {"heatsched.io/residency": "EU"}},
        "spec": {"nodeName": node, "schedulerName": "heat-aware",
                 "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
        "status": {"phase": "Running"}})


def full_collection_ms(repeat: int) -> float:
    pauses = []
    for _ in range(repeat):
        t = time.perf_counter()
        gc.collect()
        pauses.append((time.perf_counter() - t) * 1000)
    return statistics.median(pauses)


async def measure(n_nodes: int, n_pods: int, repeat: int) -> dict[str, Any]:
    service = PlacementService(PlacementConfig(), KubeApi(Credentials("http://127.0.0.1:1", True)))
    pods_watch: Any = Synced()
    for s in range(4):
        obj = copy.deepcopy(SITE)
        obj["metadata"] = {"name": f"site-{s}"}
        service._site(f"site-{s}", orjson.loads(orjson.dumps(obj)))
    nodes = [f"kwok-node-{i:04d}" for i in range(n_nodes)]
    for i, name in enumerate(nodes):
        service._node(name, {SITE_LABEL: f"site-{i % 4}", COUNTRY_LABEL: "FR"})

    def bind(first: int, count: int) -> None:
        for i in range(first, first + count):
            obj = orjson.loads(pod(i, nodes[i % n_nodes]))  # decoded like a watch event, dropped after apply
            key, value = service._pod_extract(obj)
            service._pod(pods_watch, key, value)

    bind(0, n_pods)
    tracked = len(gc.get_objects())
    before = full_collection_ms(repeat)
    service.watches = [pods_watch]
    await service.freeze_when_synced()
    frozen = gc.get_freeze_count()
    bind(n_pods, n_pods)
    after = full_collection_ms(repeat)
    gc.unfreeze()
    return {"nodes": n_nodes, "pods": n_pods, "tracked_objects": tracked, "frozen_objects": frozen,
            "full_collection_ms_nothing_frozen": round(before, 2),
            "full_collection_ms_frozen_then_as_many_pods_again": round(after, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10_000, help="pods bound before the sync (as many after)")
    parser.add_argument("--repeat", type=int, default=5, help="collections timed per case (median)")
    parser.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.nodes, args.pods, args.repeat))
    print(f"{result['nodes']} nodes, {result['pods']} pods, {result['tracked_objects']} tracked objects")
    print(f"full collection, nothing frozen:                        "
          f"{result['full_collection_ms_nothing_frozen']:8.2f} ms")
    print(f"after freeze_when_synced ({result['frozen_objects']} frozen) and {result['pods']} more pods: "
          f"{result['full_collection_ms_frozen_then_as_many_pods_again']:8.2f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
