"""Round-trip latency of the scheduler extender: filter + prioritize over real HTTP on 127.0.0.1.

Why: kube-scheduler calls the extender for every pod, synchronously; the budget is p99 <= 5 ms for
filter + prioritize at 1 000 nodes. This script measures it the way kube-scheduler pays for it: the
server runs in its own process (aiohttp, make_app on a synthetic snapshot of N nodes over ~40 sites),
the client sends prebuilt ExtenderArgs bodies over one keep-alive connection, one pod at a time.

    .venv/bin/python benchmarks/bench_extender.py                       # 100, 1000, 5000 nodes + full@1000
    .venv/bin/python benchmarks/bench_extender.py --nodes 1000 --requests 500 --json out.json
    .venv/bin/python benchmarks/bench_extender.py --profile 1000        # cProfile of the handler work, no HTTP
    .venv/bin/python benchmarks/bench_extender.py --nodes 1000 --full-nodes --requests 1500 \
        --decode-thread 600 --switch-interval 0.0005                    # GIL contention with a watch thread

Not a pytest test: timings depend on the machine; the numbers are for reports.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing as mp
import statistics
import sys
import time
from typing import Any

from heatsched.placement.model import COUNTRY_LABEL, SITE_LABEL, NodeView, SiteView, Snapshot, Tank, ThermalState

STATES = [ThermalState.COLD, ThermalState.HEATING, ThermalState.COMFORTABLE, ThermalState.SATURATED,
          ThermalState.UNKNOWN]  # fmt: skip


def build_snapshot(n_nodes: int, n_sites: int) -> Snapshot:
    """Deterministic synthetic fleet: site i in DE when i % 10 == 9, else FR; nodes round-robin over sites."""
    tank = Tank(volume_l=1500, min_c=55, target_c=60, max_c=85)
    sites = {}
    for i in range(n_sites):
        name = f"site-{i:02d}"
        state = STATES[i % len(STATES)]
        sites[name] = SiteView(
            name=name,
            country="DE" if i % 10 == 9 else "FR",
            tank=tank,
            state=state,
            temperature_c=None if state is ThermalState.UNKNOWN else 50.0 + (i * 7) % 34,
            reading_age_s=8.0,
            fresh=i % 13 != 12,
            absorbable_kw=2.0 + i % 9,
            watts_per_cpu=12.0,
        )
    names = list(sites)
    nodes = {}
    for j in range(n_nodes):
        site = sites[names[j % n_sites]]
        nodes[f"node-{j:05d}"] = NodeView(f"node-{j:05d}", site.name, site.country)
    pending = {name: 0.5 * (k % 4) for k, name in enumerate(names)}
    return Snapshot(sites, nodes, pending)


def pod_json() -> dict[str, Any]:
    return {
        "metadata": {"name": "render-0", "namespace": "studio", "uid": "6f1c1a52-3c1e-4a8e-9a59-2f8f0e0b7a11",
                     "annotations": {"heatsched.io/residency": "FR"}, "labels": {"app": "render"}},
        "spec": {"containers": [{"name": "render", "image": "registry.example/render:1.4",
                                 "resources": {"requests": {"cpu": "2", "memory": "2Gi"}}}],
                 "schedulerName": "heat-aware"},
        "status": {"phase": "Pending"},
    }  # fmt: skip


def node_json(name: str, view: NodeView) -> dict[str, Any]:
    """About the size of a kwok node object (~1.5 KB)."""
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "1042",
                     "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok",
                                COUNTRY_LABEL: view.country, SITE_LABEL: view.site},
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"}},
        "spec": {"podCIDR": "10.244.3.0/24"},
        "status": {"capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                   "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                   "lastHeartbeatTime": "2024-11-04T09:12:40Z",
                                   "message": "kubelet is posting ready status"}],
                   "addresses": [{"type": "InternalIP", "address": "10.0.3.17"}],
                   "nodeInfo": {"kernelVersion": "6.1.0", "osImage": "kwok", "kubeletVersion": "fake",
                                "operatingSystem": "linux", "architecture": "amd64"}},
    }  # fmt: skip


def request_body(snap: Snapshot, n: int, full: bool) -> bytes:
    names = list(snap.nodes)[:n]
    if full:
        items = [node_json(name, snap.nodes[name]) for name in names]
        return json.dumps({"Pod": pod_json(), "Nodes": {"metadata": {}, "items": items}, "NodeNames": None}).encode()
    return json.dumps({"Pod": pod_json(), "Nodes": None, "NodeNames": names}).encode()


def decode_load(events_per_s: int) -> None:
    """A thread's work like a watch thread's: decode a Running pod's watch event `events_per_s` times a second, in
    bursts of 1/100 s, sharing the server's GIL (--decode-thread)."""
    import orjson

    line = orjson.dumps({"type": "MODIFIED", "object": {**pod_json(), "status": {
        "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}] * 5}}})
    per_tick = max(1, events_per_s // 100)
    while True:
        for _ in range(per_tick):
            orjson.loads(line)["object"]["metadata"].get("uid")
        time.sleep(0.01)


def serve(n_nodes: int, n_sites: int, port_pipe: Any, decode_per_s: int = 0, switch_interval_s: float = 0.0) -> None:
    """Child process: serve the extender until terminated; with `decode_per_s`, a thread decodes pod events
    meanwhile, and `switch_interval_s` sets the GIL switch interval (the GIL-convoy experiment)."""
    import threading

    from aiohttp import web
    from heatsched.extender.server import make_app

    if switch_interval_s:
        sys.setswitchinterval(switch_interval_s)
    if decode_per_s:
        threading.Thread(target=decode_load, args=(decode_per_s,), daemon=True).start()
    snap = build_snapshot(n_nodes, n_sites)

    async def main() -> None:
        runner = web.AppRunner(make_app(lambda: snap), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_pipe.send(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(main())


def measure(port: int, body: bytes, requests: int, warmup: int) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    totals, filters, prios = [], [], []
    for i in range(warmup + requests):
        t0 = time.perf_counter()
        for path, bucket in (("/scheduler/filter", filters), ("/scheduler/prioritize", prios)):
            start = time.perf_counter()
            conn.request("POST", path, body, headers)
            resp = conn.getresponse()
            payload = resp.read()
            if resp.status != 200:
                raise SystemExit(f"{path} answered {resp.status}: {payload[:200]!r}")
            if i >= warmup:
                bucket.append(time.perf_counter() - start)
        if i >= warmup:
            totals.append(time.perf_counter() - t0)
    conn.close()
    return {
        "p50_ms": _pct(totals, 50), "p90_ms": _pct(totals, 90), "p99_ms": _pct(totals, 99),
        "max_ms": max(totals) * 1e3, "filter_p50_ms": _pct(filters, 50), "prioritize_p50_ms": _pct(prios, 50),
    }  # fmt: skip


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1e3 if len(values) > 1 else values[0] * 1e3


def profile(n: int, n_sites: int) -> None:
    """cProfile the per-request work (decode, core, encode) without HTTP."""
    import cProfile
    import pstats

    from heatsched.extender.server import _Handlers
    from heatsched.extender.wire import decode_args
    from heatsched.placement.core import DEFAULT_PARAMS

    snap = build_snapshot(n, n_sites)
    handlers = _Handlers(lambda: snap, None, DEFAULT_PARAMS, 8 << 20)
    body = request_body(snap, n, full=False)

    def work() -> None:
        for _ in range(200):
            decoded = decode_args(body)
            handlers._filter(decoded)
            handlers._prioritize(decoded, decoded.args.candidate_names())

    prof = cProfile.Profile()
    prof.runcall(work)
    pstats.Stats(prof).sort_stats("cumulative").print_stats(18)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 1000, 5000], help="node counts (cache mode)")
    parser.add_argument("--full-nodes", type=int, nargs="*", default=[1000], help="node counts in full-node mode")
    parser.add_argument("--sites", type=int, default=40)
    parser.add_argument("--requests", type=int, default=300, help="measured filter+prioritize pairs per size")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--profile", type=int, metavar="N", help="profile handler work at N nodes and exit")
    parser.add_argument("--decode-thread", type=int, default=0, metavar="EVENTS_PER_S",
                        help="a thread in the server decodes this many pod watch events per second (GIL contention)")
    parser.add_argument("--switch-interval", type=float, default=0.0, metavar="S",
                        help="the server's GIL switch interval (default: CPython's, 0.005)")
    args = parser.parse_args(argv)
    if args.profile:
        profile(args.profile, args.sites)
        return 0

    largest = max(args.nodes + args.full_nodes)
    snap = build_snapshot(largest, args.sites)
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    server = ctx.Process(target=serve, args=(largest, args.sites, send, args.decode_thread, args.switch_interval),
                         daemon=True)
    server.start()
    try:
        if not recv.poll(60):
            raise SystemExit("extender did not start within 60 s")
        port = recv.recv()
        runs = [(n, False) for n in args.nodes] + [(n, True) for n in args.full_nodes]
        rows = []
        print(f"{'mode':<6} {'nodes':>6} {'body KB':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7}"
              f" {'filter p50':>10} {'prio p50':>9}")  # fmt: skip
        for n, full in runs:
            body = request_body(snap, n, full)
            stats = measure(port, body, args.requests, args.warmup)
            row = {"mode": "full" if full else "cache", "nodes": n, "sites": args.sites, "body_bytes": len(body),
                   "requests": args.requests, **stats}  # fmt: skip
            rows.append(row)
            print(f"{row['mode']:<6} {n:>6} {len(body) / 1024:>8.0f} {stats['p50_ms']:>7.2f} {stats['p90_ms']:>7.2f}"
                  f" {stats['p99_ms']:>7.2f} {stats['max_ms']:>7.2f} {stats['filter_p50_ms']:>10.2f}"
                  f" {stats['prioritize_p50_ms']:>9.2f}")  # fmt: skip
    finally:
        server.terminate()
        server.join(10)
    if args.json:
        meta = {"python": sys.version.split()[0], "command": " ".join(sys.argv)}
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"meta": meta, "results": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
