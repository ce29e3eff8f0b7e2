"""Resident memory of the operator process watching 1 000 nodes and 10 000 pods (goal: <= 200 MiB).

Why: the operator keeps an in-memory picture of the cluster (every node's labels, every bound pod's CPU)
and kopf keeps per-object state for every object it watches, so its memory grows with the cluster. This
measures it on a real apiserver: the same stack as bench_scheduling.py (benchmarks/common.py), then
10 000 pods created already bound (spec.nodeName, round-robin over the nodes: the fastest way to load the
operator; no scheduler involved), and the operator's VmRSS sampled from /proc/<pid>/status every 0.5 s.

Reported: RSS with the nodes only (before pods), peak while the pods arrive (max sample, and the kernel's
VmHWM), the time until the operator has seen every pod (each site's status.itLoadKW equals the load the
pods imply: pods × CPU × wattsPerCPU + nodes × idleWattsPerNode), and the steady RSS --steady seconds later.

    .venv/bin/python benchmarks/bench_operator_memory.py
    .venv/bin/python benchmarks/bench_operator_memory.py --nodes 200 --pods 2000 --steady 20   # quick check
    .venv/bin/python benchmarks/bench_operator_memory.py --tracemalloc 25 --json out.json    # where it goes

--tracemalloc N runs the operator under tracemalloc (N frames; slower, and tracing itself costs memory,
so its RSS is not the figure to report) and prints the top allocation sites at steady state.
Not a pytest test: the figures depend on the machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    BenchStack, Kube, arg_parser, bench_stack, cpu_seconds, instrument_dump, instrumented_operator, machine_info, pod_body,
    proc_status_kib, wait_for,
)

GOAL_MIB = 200.0
POD_CPU = 0.1  # cores per pod ("100m")

class RssSampler(threading.Thread):
    """Samples VmRSS of one pid every `interval` seconds into (monotonic time, MiB) pairs."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float]] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            kib = proc_status_kib(self.pid)
            if kib is not None:
                self.samples.append((time.monotonic(), kib / 1024))
            self.stop_event.wait(self.interval)

    def between(self, t0: float, t1: float) -> list[float]:
        return [mib for t, mib in self.samples if t0 <= t <= t1]


def expected_it_load(stack: BenchStack, pods_per_node: dict[str, int]) -> dict[str, float]:
    """status.itLoadKW each site must show once the operator has counted every pod."""
    out = {}
    for site in stack.sites:
        power = stack.get(f"/apis/heatsched.io/v1alpha1/heatsites/{site}")["spec"]["power"]
        nodes = [n for n in stack.nodes if n.rsplit("-", 1)[0] == site]
        cpu = sum(pods_per_node.get(n, 0) for n in nodes) * POD_CPU
        out[site] = (cpu * power["wattsPerCPU"] + len(nodes) * power["idleWattsPerNode"]) / 1000.0
    return out


def operator_has_seen(stack: BenchStack, expected: dict[str, float]) -> bool:
    got = {s: (stack.get(f"/apis/heatsched.io/v1alpha1/heatsites/{s}").get("status") or {}).get("itLoadKW")
           for s in stack.sites}
    return all(got[s] is not None and abs(got[s] - kw) <= max(0.02, 0.01 * kw) for s, kw in expected.items())


async def create_bound_pods(stack: BenchStack, n_pods: int, concurrency: int) -> tuple[float, dict[str, int]]:
    """n_pods already bound round-robin over the nodes; returns (seconds, pods per node)."""
    ns = "bench-memory"
    per_node: dict[str, int] = {}
    bodies = []
    for i in range(n_pods):
        node = stack.nodes[i % len(stack.nodes)]
        per_node[node] = per_node.get(node, 0) + 1
        bodies.append(pod_body(f"p-{i:05d}", node=node, cpu=f"{int(POD_CPU * 1000)}m"))
    async with Kube(stack.cp.kubeconfig, limit=concurrency + 4) as kube:
        await kube.call("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
        while not await kube.names(f"/api/v1/namespaces/{ns}/serviceaccounts"):
            await asyncio.sleep(0.1)
        t = time.monotonic()
        await kube.create_all(f"/api/v1/namespaces/{ns}/pods", bodies, concurrency)
        return time.monotonic() - t, per_node


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__)
    parser.add_argument("--pods", type=int, default=10000, help="pods, created bound round-robin over the nodes")
    parser.add_argument("--baseline", type=float, default=10.0, help="seconds of sampling before the pods")
    parser.add_argument("--steady", type=float, default=60.0, help="seconds after every pod is seen")
    parser.add_argument("--seen-timeout", type=float, default=1800.0,
                        help="seconds to wait for the operator to count every pod")
    parser.add_argument("--tracemalloc", type=int, metavar="FRAMES", default=0,
                        help="run the operator under tracemalloc and print the top allocation sites")
    args = parser.parse_args(argv)

    trace_out = Path(f"/tmp/heatsched-tracemalloc-{os.getpid()}.txt")
    python_argv = instrumented_operator("tracemalloc", trace_out, args.tracemalloc) if args.tracemalloc else None
    result: dict = {}
    with bench_stack(args.nodes, extender=True, operator_python=python_argv, operator_args=args.operator_arg,
                     keep_logs=Path(args.keep_logs) if args.keep_logs else None) as st:
        pid = st.operator.pid
        sampler = RssSampler(pid)
        sampler.start()
        try:
            print(f"stack ready: {args.nodes} nodes; set-up "
                  + ", ".join(f"{k} {v:.0f} s" for k, v in st.setup_s.items()), flush=True)
            t_base = time.monotonic()
            time.sleep(args.baseline)
            before = statistics.median(sampler.between(t_base, time.monotonic()))
            print(f"RSS with {args.nodes} nodes, no pods: {before:.1f} MiB", flush=True)

            cpu0, t_pods = cpu_seconds(pid), time.monotonic()
            create_s, per_node = asyncio.run(create_bound_pods(st, args.pods, args.concurrency))
            print(f"{args.pods} pods created in {create_s:.1f} s ({args.pods / create_s:.0f}/s)", flush=True)
            expected = expected_it_load(st, per_node)
            wait_for(lambda: operator_has_seen(st, expected), args.seen_timeout, 2.0,
                     what="operator counted every pod")
            t_seen = time.monotonic()
            seen_s, ingest_cpu = t_seen - t_pods, cpu_seconds(pid) - cpu0
            print(f"operator has seen every pod {seen_s:.1f} s after the first creation "
                  f"(operator CPU {ingest_cpu:.1f} s)", flush=True)
            time.sleep(args.steady)
            t_end = time.monotonic()
            steady = statistics.mean(sampler.between(t_end - 5.0, t_end))
            if args.tracemalloc:
                result["tracemalloc_top"] = instrument_dump(pid, trace_out)
        finally:
            sampler.stop_event.set()
            sampler.join()
        during = sampler.between(t_pods, t_end)
        result.update({
            "nodes": args.nodes, "pods": args.pods, "rss_before_mib": round(before, 1),
            "rss_peak_mib": round(max(during), 1), "vm_hwm_mib": round((proc_status_kib(pid, "VmHWM") or 0) / 1024, 1),
            "rss_steady_mib": round(steady, 1), "steady_after_s": args.steady, "pods_create_s": round(create_s, 1),
            "seen_after_s": round(seen_s, 1), "ingest_cpu_s": round(ingest_cpu, 1),
            "tracemalloc": bool(args.tracemalloc), "setup_s": st.setup_s,
            "samples": [(round(t - t_base, 1), round(m, 1)) for t, m in sampler.samples if t >= t_base],
        })

    worst = max(result["rss_peak_mib"], result["rss_steady_mib"])
    print(f"\noperator RSS: before pods {result['rss_before_mib']} MiB, peak {result['rss_peak_mib']} MiB "
          f"(VmHWM {result['vm_hwm_mib']}), steady {result['rss_steady_mib']} MiB {args.steady:.0f} s after "
          f"every pod was seen; goal <= {GOAL_MIB:.0f} MiB: {'met' if worst <= GOAL_MIB else 'NOT met'}")
    if args.tracemalloc:
        print("\n" + result["tracemalloc_top"])
        trace_out.unlink(missing_ok=True)
    if args.json:
        out = {"meta": {**machine_info(), "command": " ".join(sys.argv), "goal_mib": GOAL_MIB}, "result": result}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
