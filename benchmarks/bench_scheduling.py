"""Scheduling throughput of the real kube-scheduler at 1 000 kwok nodes: heat-aware profile vs vanilla.

Why: the heat-aware profile makes kube-scheduler call the extender (filter + prioritize over HTTP) for
every pod, and the extender (`heatsched placement`) shares its event loop with its own watches, one of
them on every pod; `heatsched controller` watches every pod too, on the same machine. This
measures what that costs end to end, both schedulers in the SAME run on the same cluster, as a ratio
(goal: heat-aware / vanilla >= 0.8 in both modes; a Go extender in kubernetes-sigs measured 111 vs 991 pods/s at 500 nodes).

Set-up (benchmarks/common.py): local control plane (etcd, kube-apiserver, controller-manager, kwok, the
`default-scheduler` and `heat-aware` kube-schedulers), CRDs and the 4 example sites, N kwok nodes spread
round-robin over the sites' pools, Prometheus scraping an exporter with one temperature per site (Cold,
Heating, Comfortable, Saturated), `heatsched controller`, and `heatsched placement` with the extender on the
port the heat-aware scheduler calls (no webhook: pods carry schedulerName and the residency annotation
themselves; no heatsched.io/placement annotation, the default: --placement-arg=--annotate-placements measures
it). Measuring starts once the placement service's /readyz answers 200.

A round: a fresh namespace, a watch opened on it, then P pods created with C requests in flight; the
clock runs from the first creation to the last binding seen on the watch. Rounds alternate vanilla and
heat-aware (after one unmeasured warm-up round each); pods are force-deleted between rounds.

    .venv/bin/python benchmarks/bench_scheduling.py                         # 1000 nodes, 2000 pods, 2 rounds
    .venv/bin/python benchmarks/bench_scheduling.py --nodes 200 --pods 300 --rounds 1   # quick check
    .venv/bin/python benchmarks/bench_scheduling.py --json benchmarks/results/scheduling.json

Reported per round: pods/s (first creation → last binding), steady pods/s (10th → 90th percentile
binding), creation rate, create→bind latency p50/p99, pods per site, CPU seconds used by each process
during the round, and the kube-scheduler's own scheduling-attempt and algorithm durations (its /metrics).
Not a pytest test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import signal
import ssl
import statistics
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

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
)
from heatsched.cluster.controlplane import HEAT_AWARE_SCHEDULER

VANILLA = "default-scheduler"
PROFILES = (VANILLA, HEAT_AWARE_SCHEDULER)
MODES = ("stream", "backlog")
GOAL_RATIO = 0.8  # issue 10 (the first goal was 0.5)
SCHEDULER_HISTOGRAMS = ("scheduler_scheduling_attempt_duration_seconds",
                        "scheduler_scheduling_algorithm_duration_seconds")


# ---- kube-scheduler's own view ---------------------------------------------------------------------------
def scheduler_metrics(stack: BenchStack, profile: str) -> dict[str, tuple[float, float]]:
    """(sum, count) of the scheduler's attempt and algorithm histograms for scheduled pods, and
    ("attempts:<result>", (0, count)) of every scheduling attempt by result, scraped from its /metrics."""
    port = stack.cp.ports["scheduler" if profile == VANILLA else "heat_scheduler"]
    req = _scheduler_request(stack, f"https://127.0.0.1:{port}/metrics")
    with urllib.request.urlopen(req, context=_insecure(), timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "scheduler_schedule_attempts":
            for s in family.samples:
                if s.name.endswith("_total"):
                    out.setdefault(f"attempts:{s.labels.get('result')}", [0.0, 0.0])[1] += s.value
        if family.name not in SCHEDULER_HISTOGRAMS:
            continue
        for s in family.samples:
            if s.labels.get("result", "scheduled") != "scheduled":
                continue
            if s.name.endswith("_sum"):
                out.setdefault(family.name, [0.0, 0.0])[0] += s.value
            elif s.name.endswith("_count"):
                out.setdefault(family.name, [0.0, 0.0])[1] += s.value
    return {k: (v[0], v[1]) for k, v in out.items()}


def _insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # kube-scheduler's self-signed cert, loopback
    return ctx


def _scheduler_request(stack: BenchStack, url: str) -> urllib.request.Request:
    return urllib.request.Request(url, headers={"Authorization": f"Bearer {stack.token()}"})


def mean_ms(before: dict, after: dict, name: str) -> float | None:
    s0, c0 = before.get(name, (0.0, 0.0))
    s1, c1 = after.get(name, (0.0, 0.0))
    return (s1 - s0) / (c1 - c0) * 1e3 if c1 > c0 else None


# ---- one round -------------------------------------------------------------------------------------------
async def wait_service_account(kube: Kube, ns: str, timeout: float = 60.0) -> None:
    """Pods are refused until the namespace's `default` ServiceAccount exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await kube.names(f"/api/v1/namespaces/{ns}/serviceaccounts"):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no default ServiceAccount in {ns} after {timeout:.0f} s")


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


async def idle_rates(pids: dict[str, int], seconds: float = 2.0) -> dict[str, float]:
    """CPU cores each process uses with nothing to schedule (kwok lease renewals, watches, probes)."""
    before = cpu_snapshot(pids)
    await asyncio.sleep(seconds)
    after = cpu_snapshot(pids)
    return {k: (after[k] - before[k]) / seconds for k in pids}


async def settle(pids: dict[str, int], *, below_cores: float = 0.3, timeout: float = 60.0) -> float:
    """Wait until the stack uses less than `below_cores` CPU over one second; returns the seconds waited."""
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        before = sum(cpu_snapshot(pids).values())
        await asyncio.sleep(1.0)
        if sum(cpu_snapshot(pids).values()) - before < below_cores:
            break
    return time.monotonic() - t


class RoundProbes:
    """What runs only while pods are being scheduled: a probe timing GET /healthz on the extender every
    50 ms (how long a request waits for the placement service's event loop); with --profile-operator, a
    cProfile of the event loop of each heatsched process, controller and placement (restarted when the clock
    starts, written when the last pod is bound); with --pprof, a Go CPU profile of the measured
    kube-scheduler (its /debug/pprof, the first --pprof-seconds)."""

    def __init__(self, stack: BenchStack, args: argparse.Namespace, profile: str, label: str) -> None:
        self.stack, self.label = stack, label
        self.profile_dir = Path(args.profile_operator) if args.profile_operator else None
        self.pprof_dir, self.pprof_seconds = (Path(args.pprof) if args.pprof else None), args.pprof_seconds
        self.scheduler_port = stack.cp.ports["scheduler" if profile == VANILLA else "heat_scheduler"]
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self.profile_dir is not None:
            for svc in self.stack.heatsched():
                os.kill(svc.pid, signal.SIGUSR2)
        self._threads = [threading.Thread(target=self._probe, daemon=True)]
        if self.pprof_dir is not None:
            self._threads.append(threading.Thread(target=self._pprof, daemon=True))
        for t in self._threads:
            t.start()

    def _pprof(self) -> None:
        url = f"https://127.0.0.1:{self.scheduler_port}/debug/pprof/profile?seconds={self.pprof_seconds}"
        self.pprof_dir.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(_scheduler_request(self.stack, url), context=_insecure(),
                                    timeout=self.pprof_seconds + 30) as resp:
            (self.pprof_dir / f"{self.label}.pprof").write_bytes(resp.read())

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()
        if self.profile_dir is not None:
            for svc in self.stack.heatsched():
                report = instrument_dump(svc.pid, instrument_report_path(self.profile_dir, svc.name))
                (self.profile_dir / f"{self.label}.{svc.name}.txt").write_text(report)

    def _probe(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.stack.extender_port, timeout=10)
        while not self._stop.wait(0.05):
            t = time.perf_counter()
            try:
                conn.request("GET", "/healthz")
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                conn.close()
                continue
            self.latencies.append(time.perf_counter() - t)
        conn.close()

    def summary(self) -> dict:
        lat = sorted(self.latencies)
        if not lat:
            return {}
        return {"healthz_p50_ms": round(quantile(lat, 0.5) * 1e3, 2),
                "healthz_p99_ms": round(quantile(lat, 0.99) * 1e3, 2),
                "healthz_max_ms": round(lat[-1] * 1e3, 2), "healthz_samples": len(lat)}


async def schedule_pods(kube: Kube, profile: str, n_pods: int, *, args: argparse.Namespace, pids: dict[str, int],
                        scheduler_pid: int | None, probes: RoundProbes) -> dict:
    """Create n_pods in a fresh namespace and time them until every one is bound; delete them after.

    scheduler_pid None ("stream"): the clock starts at the first creation, pods are scheduled while created.
    scheduler_pid given ("backlog"): that kube-scheduler is paused (SIGSTOP) while the pods are created and
    the stack settles, and the clock starts when it is resumed (SIGCONT): scheduling alone, creation excluded.
    """
    ns = f"bench-{'heat' if profile != VANILLA else 'vanilla'}-{uuid.uuid4().hex[:6]}"
    await kube.call("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    try:
        await wait_service_account(kube, ns)
        path = f"/api/v1/namespaces/{ns}/pods"
        rv = (await kube.call("GET", path, params={"limit": "1"}))["metadata"]["resourceVersion"]
        names = [f"p-{i:05d}" for i in range(n_pods)]
        bodies = [pod_body(n, scheduler=profile, residency=args.residency) for n in names]
        bound: dict[str, tuple[float, str]] = {}

        async def collect() -> None:
            async for event in kube.watch(path, rv):
                obj = event["object"]
                node = (obj.get("spec") or {}).get("nodeName")
                if node and obj["metadata"]["name"] not in bound:
                    bound[obj["metadata"]["name"]] = (time.monotonic(), node)
                    if len(bound) >= n_pods:
                        return

        watcher = asyncio.create_task(collect())
        if scheduler_pid:
            os.kill(scheduler_pid, signal.SIGSTOP)
        try:
            settled_s = 0.0
            if not scheduler_pid:
                idle = await idle_rates(pids)
                probes.start()
            t_create = time.monotonic()
            cpu0 = cpu_snapshot(pids)
            created = await kube.create_all(path, bodies, args.concurrency)
            if scheduler_pid:
                settled_s = await settle(pids)
                idle = await idle_rates(pids)
                cpu0 = cpu_snapshot(pids)
                probes.start()
        finally:
            if scheduler_pid:
                os.kill(scheduler_pid, signal.SIGCONT)
        t0 = time.monotonic() if scheduler_pid else t_create
        try:
            await asyncio.wait_for(watcher, args.timeout)
        except TimeoutError:
            raise TimeoutError(f"{profile}: only {len(bound)}/{n_pods} pods bound after {args.timeout:.0f} s "
                               f"(see the scheduler, controller and placement logs)") from None
        finally:
            probes.stop()
        cpu1, window = cpu_snapshot(pids), time.monotonic() - t0
        return {"t0": t0, "t_create": t_create, "created": created, "bound": [bound[n] for n in names],
                "watch_reconnects": kube.watch_reconnects, "settled_s": settled_s,
                "cpu_s": {k: round(cpu1[k] - cpu0[k], 2) for k in pids},
                "busy_cpu_s": {k: round(cpu1[k] - cpu0[k] - idle[k] * window, 2) for k in pids},
                "idle_cores": {k: round(v, 3) for k, v in idle.items()}}
    finally:
        t = time.monotonic()
        await kube.delete_namespace(ns)
        print(f"{'':<28} namespace {ns} deleted in {time.monotonic() - t:.1f} s", flush=True)


def summarise(raw: dict, node_site: dict[str, str]) -> dict:
    t0, created, bound = raw["t0"], raw["created"], raw["bound"]
    n = len(created)
    bind_times = sorted(t for t, _ in bound)
    lo, hi = bind_times[n // 10], bind_times[(9 * n) // 10 - 1]
    latencies = sorted(b[0] - max(c, t0) for b, c in zip(bound, created))
    per_site: dict[str, int] = {}
    for _, node in bound:
        site = node_site.get(node, "?")
        per_site[site] = per_site.get(site, 0) + 1
    window = bind_times[-1] - t0
    return {
        "pods": n,
        "seconds": window,
        "pods_per_s": n / window,
        "steady_pods_per_s": (0.8 * n) / (hi - lo) if hi > lo else None,
        "create_per_s": n / (max(created) - raw["t_create"]),
        "latency_p50_ms": quantile(latencies, 0.5) * 1e3,
        "latency_p99_ms": quantile(latencies, 0.99) * 1e3,
        "pods_per_site": dict(sorted(per_site.items())),
        "cpu_s": raw["cpu_s"],
        "busy_cpu_s": raw["busy_cpu_s"],
        "busy_cpu_ms_per_pod": round(sum(raw["busy_cpu_s"].values()) / n * 1e3, 2),
        "idle_cores": raw["idle_cores"],
        "cpu_cores": round(sum(raw["cpu_s"].values()) / window, 2),
        "settled_s": round(raw["settled_s"], 1),
        "watch_reconnects": raw["watch_reconnects"],
    }


def measured_round(stack: BenchStack, profile: str, mode: str, n_pods: int, args: argparse.Namespace,
                   node_site: dict[str, str], label: str) -> dict:
    pids = stack.services()
    scheduler = "kube-scheduler" if profile == VANILLA else "heat-aware-scheduler"
    scheduler_pid = pids[scheduler] if mode == "backlog" else None
    m0 = scheduler_metrics(stack, profile)
    probes = RoundProbes(stack, args, profile, label)

    async def go() -> dict:
        async with Kube(stack.cp.kubeconfig, limit=args.concurrency + 4) as kube:
            return await schedule_pods(kube, profile, n_pods, args=args, pids=pids, scheduler_pid=scheduler_pid,
                                       probes=probes)

    row = summarise(asyncio.run(go()), node_site)
    m1 = scheduler_metrics(stack, profile)
    row.update(profile=profile, mode=mode, attempt_ms=mean_ms(m0, m1, SCHEDULER_HISTOGRAMS[0]),
               algorithm_ms=mean_ms(m0, m1, SCHEDULER_HISTOGRAMS[1]),
               **{f"{svc.name}_rss_mib": _rss_mib(svc.pid) for svc in stack.heatsched()},
               load_avg=round(os.getloadavg()[0], 2), **probes.summary(),
               attempts={k.split(":", 1)[1]: int(m1[k][1] - m0.get(k, (0.0, 0.0))[1])
                         for k in m1 if k.startswith("attempts:")})
    return row


def _rss_mib(pid: int) -> float | None:
    kib = proc_status_kib(pid)
    return round(kib / 1024, 1) if kib else None


# ---- report ----------------------------------------------------------------------------------------------
HEADER = (f"{'round':<28} {'pods':>5} {'pods/s':>7} {'steady':>7} {'create/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'algo ms':>7} {'cores':>5}  pods per site")


def print_row(label: str, r: dict) -> None:
    steady = f"{r['steady_pods_per_s']:.0f}" if r["steady_pods_per_s"] else "-"
    algo = f"{r['algorithm_ms']:.2f}" if r["algorithm_ms"] is not None else "-"
    print(f"{label:<28} {r['pods']:>5} {r['pods_per_s']:>7.1f} {steady:>7} {r['create_per_s']:>8.0f} "
          f"{r['latency_p50_ms']:>7.0f} {r['latency_p99_ms']:>7.0f} {algo:>7} {r['cpu_cores']:>5.2f}  "
          f"{r['pods_per_site']}", flush=True)
    print(f"{'':<28} CPU s above idle: {r['busy_cpu_s']} = {r['busy_cpu_ms_per_pod']} ms per pod; "
          f"scheduling attempts: {r['attempts']}", flush=True)
    if "healthz_p50_ms" in r:
        print(f"{'':<28} extender GET /healthz while scheduling: p50 {r['healthz_p50_ms']} ms, "
              f"p99 {r['healthz_p99_ms']} ms, max {r['healthz_max_ms']} ms", flush=True)


def summarise_runs(rows: list[dict], modes: list[str]) -> dict:
    summary: dict = {}
    for mode in modes:
        per = {}
        for profile in PROFILES:
            mine = [r for r in rows if r["profile"] == profile and r["mode"] == mode]
            per[profile] = {"pods_per_s": statistics.mean(r["pods_per_s"] for r in mine),
                            "create_per_s": statistics.mean(r["create_per_s"] for r in mine),
                            "algorithm_ms": statistics.mean(r["algorithm_ms"] or 0.0 for r in mine),
                            "rounds": [round(r["pods_per_s"], 1) for r in mine]}
        per["ratio"] = per[HEAT_AWARE_SCHEDULER]["pods_per_s"] / per[VANILLA]["pods_per_s"]
        summary[mode] = per
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__)
    parser.add_argument("--pods", type=int, default=2000, help="pods per measured round")
    parser.add_argument("--rounds", type=int, default=2, help="measured rounds per profile and mode (alternating)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                        help="stream: clock from first creation; backlog: scheduler paused while pods are created")
    parser.add_argument("--warmup", type=int, default=200, help="pods of the unmeasured first round per profile")
    parser.add_argument("--residency", default="EU", help="heatsched.io/residency of every pod ('' for none)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for one round to bind every pod")
    parser.add_argument("--pprof", metavar="DIR", help="save a Go CPU profile of the measured kube-scheduler "
                        "for each round there (`go tool pprof -top FILE` reads it)")
    parser.add_argument("--pprof-seconds", type=int, default=5, help="length of each --pprof profile")
    parser.add_argument("--profile-operator", metavar="DIR",
                        help="run both heatsched processes (controller, placement) under cProfile; write each one's "
                        "event loop profile of each round there (<round>.controller.txt, <round>.placement.txt)")
    args = parser.parse_args(argv)
    args.residency = args.residency or None
    heatsched_python = None
    if args.profile_operator:
        Path(args.profile_operator).mkdir(parents=True, exist_ok=True)
        heatsched_python = instrumented("cprofile", Path(args.profile_operator), 60)

    rows: list[dict] = []
    t_start = time.monotonic()
    with bench_stack(args.nodes, heatsched_python=heatsched_python,
                     controller_args=args.controller_arg, placement_args=args.placement_arg,
                     keep_logs=Path(args.keep_logs) if args.keep_logs else None) as st:
        print(f"stack ready: {args.nodes} nodes, sites {st.sites}; set-up "
              + ", ".join(f"{k} {v:.0f} s" for k, v in st.setup_s.items()), flush=True)
        node_site = {n: n.rsplit("-", 1)[0] for n in st.nodes}
        print(HEADER)
        if args.warmup:
            for profile in PROFILES:
                print_row(f"warm-up {profile}", measured_round(st, profile, "stream", args.warmup, args, node_site,
                                                               f"warmup-{profile}"))
        for i in range(args.rounds):
            for mode in args.modes:
                for profile in PROFILES if i % 2 == 0 else PROFILES[::-1]:
                    row = measured_round(st, profile, mode, args.pods, args, node_site, f"{i + 1}-{mode}-{profile}")
                    row["round"] = i + 1
                    rows.append(row)
                    print_row(f"{i + 1} {mode} {profile}", row)
        setup = st.setup_s

    summary = summarise_runs(rows, args.modes)
    print()
    for mode, per in summary.items():
        ratio = per["ratio"]
        print(f"{mode:<8} vanilla {per[VANILLA]['pods_per_s']:6.1f} pods/s, heat-aware "
              f"{per[HEAT_AWARE_SCHEDULER]['pods_per_s']:6.1f} pods/s: ratio {ratio:.2f} "
              f"(goal >= {GOAL_RATIO}: {'met' if ratio >= GOAL_RATIO else 'NOT met'})")
    print(f"total {time.monotonic() - t_start:.0f} s")
    if args.json:
        out = {"meta": {**machine_info(), "command": " ".join(sys.argv), "args": vars(args), "setup_s": setup},
               "summary": {**summary, "goal_ratio": GOAL_RATIO}, "rounds": rows}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
