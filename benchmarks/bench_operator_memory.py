"""Resident memory of heatsched's two processes watching 1 000 nodes and 10 000 pods (goals: controller <= 200 MiB,
placement <= 150 MiB), and the extender's round trip while the controller ingests that pod stream (p99 <= 5 ms).

Why: both processes keep an in-memory picture of the cluster, so their memory grows with it: the controller
(`heatsched controller`) every node's labels and every bound pod's CPU, plus kopf's per-object state for every
object it watches; the placement service (`heatsched placement`) its own list+watch view of HeatSites, Nodes,
Namespaces and Pods. This measures them on a real apiserver: the same stack as bench_scheduling.py
(benchmarks/common.py; ready once the placement service's /readyz answers 200), then 10 000 pods created
already bound (spec.nodeName, round-robin over the nodes: the fastest way to load both processes; no
scheduler involved), and each process's VmRSS sampled from /proc/<pid>/status every 0.5 s (both at once).

Reported per process, and for the two together: RSS with the nodes only (before pods), peak while the pods
arrive (max sample, and the kernel's VmHWM per process), the steady RSS --steady seconds later; and the time
until the controller has seen every pod (each site's status.itLoadKW equals the load the pods imply:
pods × CPU × wattsPerCPU + nodes × idleWattsPerNode). The goal holds for each process (each runs in its own
pod with its own memory limit). Meanwhile a probe, a process of its own, POSTs /scheduler/filter (a FR-resident
pod over every node name, as the heat-aware profile sends it) to the placement service every 20 ms on one
kept-alive connection, and the p50/p99 of those round trips while the pods stream in are reported.

    .venv/bin/python benchmarks/bench_operator_memory.py
    .venv/bin/python benchmarks/bench_operator_memory.py --nodes 200 --pods 2000 --steady 20   # quick check
    .venv/bin/python benchmarks/bench_operator_memory.py --others-nice 10   # the placement service gets its CPU
    .venv/bin/python benchmarks/bench_operator_memory.py --pin-placement 1  # ... a core of its own
    .venv/bin/python benchmarks/bench_operator_memory.py --tracemalloc 25 --json out.json    # where it goes

--tracemalloc N runs both processes under tracemalloc (N frames; slower, and tracing itself costs memory,
so their RSS is not the figure to report) and prints each one's top allocation sites at steady state.
Not a pytest test: the figures depend on the machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BenchStack,
    Kube,
    arg_parser,
    bench_stack,
    cpu_seconds,
    instrument_dump,
    instrument_report_path,
    instrumented,
    machine_info,
    pod_body,
    proc_status_kib,
    quantile,
    wait_for,
)

GOAL_MIB = {"controller": 200.0, "placement": 150.0}  # per process (issue 10)
LATENCY_GOAL_MS = 5.0  # extender round trip p99 while the controller ingests the pod stream
POD_CPU = 0.1  # cores per pod ("100m")
TOTAL = "total"  # the processes' RSS summed, sample by sample


class ExtenderProbe:
    """Times POST /scheduler/filter of a FR-resident pod over every node name (nodeCacheCapable, as the heat-aware
    profile sends it) every `interval` seconds, on one kept-alive connection, like kube-scheduler's client.

    It runs in a process of its own (`probe_main`): a thread of this benchmark would wait for this process's GIL
    while it creates the pods, and count that wait as extender latency (kube-scheduler's client is Go)."""

    def __init__(self, port: int, nodes: list[str], interval: float = 0.02) -> None:
        self.port, self.interval = port, interval
        self.body = json.dumps({"Pod": {"metadata": {"name": "probe", "namespace": "default", "uid": "probe",
                                                     "annotations": {"heatsched.io/residency": "FR"}},
                                        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}},
                                "NodeNames": nodes}).encode()
        self.samples: list[tuple[float, float]] = []  # (monotonic time, ms); CLOCK_MONOTONIC is system-wide
        self._dir = Path(tempfile.mkdtemp(prefix="heatsched-probe-"))
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        (self._dir / "body.json").write_bytes(self.body)
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import bench_operator_memory as b; "
                "b.probe_main(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5])")
        self._proc = subprocess.Popen([sys.executable, "-c", code, str(Path(__file__).resolve().parent),
                                       str(self.port), str(self._dir / "body.json"), str(self.interval),
                                       str(self._dir / "samples.json")])

    @property
    def pid(self) -> int:
        assert self._proc is not None, "probe not started"
        return self._proc.pid

    def stop(self) -> None:
        """Stop the probe process and collect its samples (idempotent)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            out = self._dir / "samples.json"
            if out.exists():
                self.samples = [(t, ms) for t, ms in json.loads(out.read_text())]
        shutil.rmtree(self._dir, ignore_errors=True)

    def between(self, t0: float, t1: float) -> list[float]:
        return [ms for t, ms in self.samples if t0 <= t <= t1]


def each_thread(pids: dict[str, int], call: Callable[[int], None]) -> None:
    """`call(tid)` for every thread of each process (Linux's nice and CPU affinity are per thread; threads started
    later inherit them); a thread that ended meanwhile is skipped."""
    for pid in pids.values():
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                call(int(task.name))
            except (ProcessLookupError, PermissionError):
                pass


def renice(pids: dict[str, int], nice: int) -> None:
    each_thread(pids, lambda tid: os.setpriority(os.PRIO_PROCESS, tid, nice))


def pin(pids: dict[str, int], cpus: set[int]) -> None:
    each_thread(pids, lambda tid: os.sched_setaffinity(tid, cpus))


def probe_main(port: int, body_path: str, interval: float, out_path: str) -> None:
    """The probe process: POST the body until SIGTERM, then write the samples to out_path."""
    import http.client

    body = Path(body_path).read_bytes()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    samples: list[tuple[float, float]] = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/scheduler/filter", body, {"Content-Type": "application/json"})
            conn.getresponse().read()
            samples.append((time.monotonic(), (time.perf_counter() - t0) * 1000))
        except OSError:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        stop.wait(interval)
    Path(out_path).write_text(json.dumps(samples))


def percentile(values: list[float], q: float) -> float:
    return quantile(sorted(values), q) if values else float("nan")


class RssSampler(threading.Thread):
    """Samples VmRSS of every named pid, all at once, every `interval` seconds into (monotonic time,
    {name: MiB, ..., TOTAL: MiB}) pairs (a sample is kept only if every pid answered)."""

    def __init__(self, pids: dict[str, int], interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pids, self.interval = pids, interval
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            kib = {name: proc_status_kib(pid) for name, pid in self.pids.items()}
            if all(v is not None for v in kib.values()):
                mib = {name: v / 1024 for name, v in kib.items()}
                self.samples.append((time.monotonic(), {**mib, TOTAL: sum(mib.values())}))
            self.stop_event.wait(self.interval)

    def between(self, t0: float, t1: float, name: str) -> list[float]:
        return [mib[name] for t, mib in self.samples if t0 <= t <= t1]


def expected_it_load(stack: BenchStack, pods_per_node: dict[str, int]) -> dict[str, float]:
    """status.itLoadKW each site must show once the controller has counted every pod."""
    out = {}
    for site in stack.sites:
        power = stack.get(f"/apis/heatsched.io/v1alpha1/heatsites/{site}")["spec"]["power"]
        nodes = [n for n in stack.nodes if n.rsplit("-", 1)[0] == site]
        cpu = sum(pods_per_node.get(n, 0) for n in nodes) * POD_CPU
        out[site] = (cpu * power["wattsPerCPU"] + len(nodes) * power["idleWattsPerNode"]) / 1000.0
    return out


def controller_has_seen(stack: BenchStack, expected: dict[str, float]) -> bool:
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
    parser.add_argument("--others-nice", type=int, default=0, metavar="N",
                        help="renice every other process of the stack (apiserver, etcd, kwok, the controller, this "
                        "benchmark's pod generator; not the placement service nor the probe) to N while the pods "
                        "stream in: models a placement replica with CPU of its own, as on a cluster")
    parser.add_argument("--pin-placement", type=int, default=None, metavar="CPU",
                        help="run the placement service and the probe on CPU alone and every other process of the "
                        "stack (and this benchmark) on the other CPUs while the pods stream in: a placement replica "
                        "with a core of its own, as its CPU request gives it on a cluster")
    parser.add_argument("--pods", type=int, default=10000, help="pods, created bound round-robin over the nodes")
    parser.add_argument("--baseline", type=float, default=10.0, help="seconds of sampling before the pods")
    parser.add_argument("--steady", type=float, default=60.0, help="seconds after every pod is seen")
    parser.add_argument("--seen-timeout", type=float, default=1800.0,
                        help="seconds to wait for the controller to count every pod")
    parser.add_argument("--tracemalloc", type=int, metavar="FRAMES", default=0,
                        help="run both heatsched processes under tracemalloc and print their top allocation sites")
    args = parser.parse_args(argv)
    cpus = os.sched_getaffinity(0)
    if args.pin_placement is not None and (args.pin_placement not in cpus or len(cpus) < 2):
        parser.error(f"--pin-placement {args.pin_placement}: needs one of the CPUs {sorted(cpus)} and at least 2 of them")

    trace_dir = Path(tempfile.mkdtemp(prefix="heatsched-tracemalloc-")) if args.tracemalloc else None
    python_argv = instrumented("tracemalloc", trace_dir, args.tracemalloc) if trace_dir else None
    result: dict = {}
    with bench_stack(args.nodes, heatsched_python=python_argv, controller_args=args.controller_arg,
                     placement_args=args.placement_arg,
                     keep_logs=Path(args.keep_logs) if args.keep_logs else None) as st:
        pids = {svc.name: svc.pid for svc in st.heatsched()}
        names = [*pids, TOTAL]
        sampler = RssSampler(pids)
        sampler.start()
        probe = ExtenderProbe(st.extender_port, list(st.nodes))
        try:
            print(f"stack ready: {args.nodes} nodes; set-up "
                  + ", ".join(f"{k} {v:.0f} s" for k, v in st.setup_s.items()), flush=True)
            t_base = time.monotonic()
            time.sleep(args.baseline)
            before = {n: statistics.median(sampler.between(t_base, time.monotonic(), n)) for n in names}
            print(f"RSS with {args.nodes} nodes, no pods: {_mib(before)}", flush=True)

            probe.start()
            if args.pin_placement is not None:
                own, rest = {args.pin_placement}, cpus - {args.pin_placement}
                pin({"placement": st.services()["placement"], "probe": probe.pid}, own)
                pin({n: pid for n, pid in st.services().items() if n != "placement"}, rest)
                pin({"benchmark": os.getpid()}, rest)
            if args.others_nice:
                renice({n: pid for n, pid in st.services().items() if n != "placement"}, args.others_nice)
                renice({"benchmark": os.getpid()}, args.others_nice)
            t_pods = time.monotonic()
            cpu0 = {n: cpu_seconds(pid) for n, pid in pids.items()}
            create_s, per_node = asyncio.run(create_bound_pods(st, args.pods, args.concurrency))
            print(f"{args.pods} pods created in {create_s:.1f} s ({args.pods / create_s:.0f}/s)", flush=True)
            expected = expected_it_load(st, per_node)
            wait_for(lambda: controller_has_seen(st, expected), args.seen_timeout, 2.0,
                     what="controller counted every pod")
            t_seen = time.monotonic()
            seen_s = t_seen - t_pods
            probe.stop()
            during = probe.between(t_pods, t_seen)
            latency = {"samples": len(during), "p50_ms": round(percentile(during, 0.5), 2),
                       "p99_ms": round(percentile(during, 0.99), 2), "max_ms": round(max(during, default=0.0), 2)}
            print(f"extender filter over {args.nodes} nodes while the pods streamed in: {latency}", flush=True)
            ingest_cpu = {n: round(cpu_seconds(pid) - cpu0[n], 1) for n, pid in pids.items()}
            print(f"controller has seen every pod {seen_s:.1f} s after the first creation "
                  f"(CPU s so far: {ingest_cpu})", flush=True)
            time.sleep(args.steady)
            t_end = time.monotonic()
            steady = {n: statistics.mean(sampler.between(t_end - 5.0, t_end, n)) for n in names}
            if trace_dir is not None:
                result["tracemalloc_top"] = {n: instrument_dump(pid, instrument_report_path(trace_dir, n))
                                             for n, pid in pids.items()}
        finally:
            probe.stop()
            sampler.stop_event.set()
            sampler.join()
        peak = {n: max(sampler.between(t_pods, t_end, n)) for n in names}
        hwm = {n: round((proc_status_kib(pid, "VmHWM") or 0) / 1024, 1) for n, pid in pids.items()}
        result.update({
            "nodes": args.nodes, "pods": args.pods, "processes": list(pids),
            "rss_before_mib": _round(before), "rss_peak_mib": _round(peak), "vm_hwm_mib": hwm,
            "rss_steady_mib": _round(steady), "steady_after_s": args.steady, "pods_create_s": round(create_s, 1),
            "seen_after_s": round(seen_s, 1), "ingest_cpu_s": ingest_cpu,
            "tracemalloc": bool(args.tracemalloc), "others_nice": args.others_nice,
            "pin_placement": args.pin_placement, "setup_s": st.setup_s,
            "extender_filter_latency": latency,
            "samples": [(round(t - t_base, 1), _round(m)) for t, m in sampler.samples if t >= t_base],
        })

    worst = {n: max(result["rss_peak_mib"][n], result["rss_steady_mib"][n]) for n in pids}
    goal = {n: GOAL_MIB.get(n, 200.0) for n in pids}
    met = all(v <= goal[n] for n, v in worst.items())
    print()
    for n in names:
        vm_hwm = f" (VmHWM {result['vm_hwm_mib'][n]})" if n in result["vm_hwm_mib"] else ""
        print(f"{n + ' RSS:':<16} before pods {result['rss_before_mib'][n]} MiB, peak {result['rss_peak_mib'][n]} MiB"
              f"{vm_hwm}, steady {result['rss_steady_mib'][n]} MiB {args.steady:.0f} s after every pod was seen")
    print("RSS goal (" + ", ".join(f"{n} <= {goal[n]:.0f} MiB" for n in pids) + f"): {'met' if met else 'NOT met'} "
          f"(worst: {', '.join(f'{n} {v} MiB' for n, v in worst.items())})")
    p99 = result["extender_filter_latency"]["p99_ms"]
    print(f"extender round trip p99 {p99} ms while the controller ingested {args.pods} pods: goal <= "
          f"{LATENCY_GOAL_MS:.0f} ms {'met' if p99 <= LATENCY_GOAL_MS else 'NOT met'}")
    if trace_dir is not None:
        for n, report in result["tracemalloc_top"].items():
            print(f"\n== {n} ==\n{report}")
        shutil.rmtree(trace_dir, ignore_errors=True)
    if args.json:
        out = {"meta": {**machine_info(), "command": " ".join(sys.argv), "goal_mib_per_process": GOAL_MIB,
                        "latency_goal_ms": LATENCY_GOAL_MS},
               "result": result}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


def _round(mib: dict[str, float]) -> dict[str, float]:
    return {n: round(v, 1) for n, v in mib.items()}


def _mib(mib: dict[str, float]) -> str:
    return ", ".join(f"{n} {v:.1f} MiB" for n, v in mib.items())


if __name__ == "__main__":
    sys.exit(main())
