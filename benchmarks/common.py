"""Shared harness of the cluster benchmarks (bench_scheduling.py, bench_operator_memory.py,
bench_fuel_preemption.py).

Why a harness of its own: both benchmarks need the same stack, built the way an admin runs it (the local
control plane, `kubectl apply -f crds/ -f examples/`, kwok nodes in each site's pool, a real Prometheus
scraping an exporter, heatsched's two processes, `heatsched controller` and `heatsched placement`, as real
processes), but at 1 000 nodes, which the e2e Stack (2 nodes per site, webhook on) is not made for. And they need an apiserver client fast enough not to be the
bottleneck: the kubernetes client spends about a millisecond deserialising each pod, so the hot path
(creating thousands of pods, watching their bindings) uses aiohttp and plain JSON instead.

Everything is torn down in reverse order when the `bench_stack` context exits, on failure, on Ctrl-C and on
SIGTERM (turned into KeyboardInterrupt). Only a SIGKILL can leave processes behind; the control plane can
then be stopped with `heatsched cluster down --name <name printed at start>`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import aiohttp
import yaml
from heatsched.cluster.controlplane import ControlPlane
from heatsched.cluster.heatsched import Heatsched
from heatsched.cluster.kwoknodes import kwok_node
from heatsched.cluster.procs import Service, free_port, log_tail
from heatsched.cluster.prometheus import PrometheusServer
from heatsched.cluster.toolchain import Toolchain
from heatsched.controller.fuel import priority_class
from heatsched.placement.model import COUNTRY_LABEL

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "e2e"))
from exporter import SettableExporter
from stack import wait_for

# One state per site, so the extender's filter and score both have work: Cold, Heating, Comfortable and
# Saturated (the saturated site is filtered out for new load).
TEMPERATURES = {"montlucon-residence": 50.0, "metz-hospital": 58.0, "frankfurt-office": 70.0,
                "sarreguemines-factory": 92.0}
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
BENCH_STATE = Path.home() / ".heatsched" / "bench"
FUEL_NAMESPACE = "heatsched-fuel"  # spec.fuel.namespace of the example sites (the FuelSpec default)


class KubeError(RuntimeError):
    pass


class Kube:
    """A minimal asyncio apiserver client (admin bearer token from the kubeconfig, JSON in and out)."""

    def __init__(self, kubeconfig: Path, limit: int = 64) -> None:
        cfg = yaml.safe_load(Path(kubeconfig).read_text())
        cluster, user = cfg["clusters"][0]["cluster"], cfg["users"][0]["user"]
        self.server = cluster["server"]
        self.ssl = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self.token = user["token"]
        self.limit = limit
        self.session: aiohttp.ClientSession | None = None
        self.watch_reconnects = 0

    async def __aenter__(self) -> Self:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.ssl, limit=self.limit),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            read_bufsize=1 << 20, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        return self

    async def __aexit__(self, *exc) -> None:
        await self.session.close()

    async def call(self, method: str, path: str, body: dict | bytes | None = None, *, params: dict | None = None,
                   accept: str | None = None, ok: Iterable[int] = (200, 201, 202)) -> dict:
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Accept": accept} if accept else None
        async with self.session.request(method, self.server + path, data=data, params=params,
                                        headers=headers) as resp:
            payload = await resp.read()
            if resp.status not in ok:
                raise KubeError(f"{method} {path}: {resp.status} {payload[:300]!r}")
            return json.loads(payload) if payload else {}

    async def create_all(self, path: str, bodies: list[bytes], concurrency: int) -> list[float]:
        """POST every body with `concurrency` requests in flight; returns each one's completion time."""
        done = [0.0] * len(bodies)
        todo = iter(range(len(bodies)))

        async def worker() -> None:
            for i in todo:
                await self.call("POST", path, bodies[i])
                done[i] = time.monotonic()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done

    async def watch(self, path: str, resource_version: str) -> AsyncIterator[dict]:
        """Every event at `path` after `resource_version`, reconnecting when the apiserver closes the stream.

        Lossless: each (re)connection resumes from the last resourceVersion seen, so the watch may even be
        opened after the objects it reports were created. The apiserver closes the watch of a client that
        reads too slowly (as this one may while it also creates pods); `watch_reconnects` counts that.
        """
        rv, first = resource_version, True
        while True:
            self.watch_reconnects += 0 if first else 1
            first = False
            params = {"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true"}
            async with self.session.get(self.server + path, params=params) as resp:
                if resp.status != 200:
                    raise KubeError(f"watch {path}: {resp.status} {(await resp.read())[:300]!r}")
                try:
                    async for line in resp.content:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            raise KubeError(f"watch {path}: {event['object']}")
                        rv = event["object"]["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            yield event
                except aiohttp.ClientPayloadError:  # stream cut mid-event: resume from the last one
                    pass

    async def names(self, path: str, label_selector: str = "") -> list[str]:
        """Names of the objects at a list path, metadata only (cheap even at 10 000 objects)."""
        data = await self.call("GET", path, params={"labelSelector": label_selector}, accept=METADATA_ONLY)
        return [item["metadata"]["name"] for item in data.get("items") or ()]

    async def delete_namespace(self, name: str, timeout: float = 600.0) -> None:
        """Force-delete the namespace's pods (grace 0, kwok need not act), then the namespace; wait until gone."""
        await self.call("DELETE", f"/api/v1/namespaces/{name}/pods", params={"gracePeriodSeconds": "0"})
        await self.call("DELETE", f"/api/v1/namespaces/{name}", ok=(200, 202, 404))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                await self.call("GET", f"/api/v1/namespaces/{name}")
            except KubeError as exc:
                if ": 404 " in str(exc):
                    return
                raise
            await asyncio.sleep(0.5)
        raise TimeoutError(f"namespace {name} still there after {timeout:.0f} s")


def pod_body(name: str, *, scheduler: str = "default-scheduler", cpu: str = "10m", node: str | None = None,
             residency: str | None = None) -> bytes:
    """A small pod: one container, a CPU request, no grace period; bound directly when `node` is given."""
    spec: dict = {"schedulerName": scheduler, "terminationGracePeriodSeconds": 0,
                  "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                                  "resources": {"requests": {"cpu": cpu, "memory": "16Mi"}}}]}
    if node:
        spec["nodeName"] = node
    meta: dict = {"name": name}
    if residency:
        meta["annotations"] = {"heatsched.io/residency": residency}
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}).encode()


# ---- processes -------------------------------------------------------------------------------------------
def quantile(sorted_values: list[float], q: float) -> float:
    """The q-quantile of an already sorted, non-empty list (nearest rank, no interpolation)."""
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def proc_status_kib(pid: int, key: str = "VmRSS") -> int | None:
    """A memory line of /proc/<pid>/status in KiB (VmRSS: resident now, VmHWM: resident peak)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (fields 14 and 15 of /proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def arg_parser(doc: str) -> argparse.ArgumentParser:
    """The options both cluster benchmarks share; the module docstring is the help text."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0], epilog=doc.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000, help="kwok nodes, spread over the example sites")
    parser.add_argument("--concurrency", type=int, default=16, help="pod creations in flight")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy every component's log there before teardown")
    add_process_args(parser)
    return parser


def add_process_args(parser: argparse.ArgumentParser) -> None:
    """--controller-arg / --placement-arg: extra arguments of the two heatsched processes."""
    parser.add_argument("--controller-arg", action="append", default=[], metavar="ARG",
                        help="extra `heatsched controller` argument (repeatable), e.g. --controller-arg=--no-fuel")
    parser.add_argument("--placement-arg", action="append", default=[], metavar="ARG",
                        help="extra `heatsched placement` argument (repeatable), e.g. "
                        "--placement-arg=--annotate-placements to also measure the per-pod placement annotation "
                        "(off by default)")


def machine_info() -> dict:
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0],
            "kernel": os.uname().release, "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Let `kill <pid>` of the benchmark run the same teardown as Ctrl-C."""
    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# Runs `heatsched` with an in-process profiler; SIGUSR2 (re)starts it, SIGUSR1 writes its report to a file.
# kind "cprofile": cProfile of the main thread (the event loop: kopf in the controller, the extender and the
# watches in the placement service; not the executor threads); kind "tracemalloc": allocation sites (N frames)
# of every thread.
INSTRUMENTED_MAIN = r"""
import io, pstats, runpy, signal, sys
kind, out, frames = sys.argv.pop(1), sys.argv.pop(1), int(sys.argv.pop(1))
if kind == "tracemalloc":
    import tracemalloc
    tracemalloc.start(frames)
else:
    import cProfile
    prof = cProfile.Profile()
    prof.enable()

def restart(signum, frame):
    global prof
    if kind == "cprofile":
        prof.disable()
        prof = cProfile.Profile()
        prof.enable()

def dump(signum, frame):
    with open(out + ".tmp", "w") as fh:
        if kind == "tracemalloc":
            snap = tracemalloc.take_snapshot()
            current, peak = tracemalloc.get_traced_memory()
            fh.write(f"traced now {current / 2**20:.1f} MiB, traced peak {peak / 2**20:.1f} MiB\n\n== by file ==\n")
            fh.writelines(f"{s}\n" for s in snap.statistics("filename")[:25])
            fh.write("\n== by line ==\n")
            fh.writelines(f"{s}\n" for s in snap.statistics("lineno")[:40])
            fh.write("\n== biggest tracebacks ==\n")
            for s in snap.statistics("traceback")[:8]:
                fh.write(f"{s.size / 2**20:.1f} MiB in {s.count} blocks\n" + "\n".join(s.traceback.format()) + "\n\n")
        else:
            prof.disable()
            text = io.StringIO()
            stats = pstats.Stats(prof, stream=text)
            stats.sort_stats("tottime").print_stats(frames)
            stats.sort_stats("cumulative").print_stats(frames)
            fh.write(text.getvalue())
            prof.enable()
    import os
    os.replace(out + ".tmp", out)

signal.signal(signal.SIGUSR1, dump)
signal.signal(signal.SIGUSR2, restart)
sys.argv[0] = "heatsched"
runpy.run_module("heatsched.cli", run_name="__main__", alter_sys=True)
"""


PROCESSES = ("controller", "placement")  # heatsched's two processes, as `heatsched <name>`


def instrumented(kind: str, out_dir: Path, depth: int) -> dict[str, list[str]]:
    """Python argv per heatsched process that runs it under `kind` ("cprofile" or "tracemalloc", see
    INSTRUMENTED_MAIN), each writing its report to `out_dir`/<process>-report.txt (instrument_report_path)."""
    return {name: [sys.executable, "-c", INSTRUMENTED_MAIN, kind, str(instrument_report_path(out_dir, name)),
                   str(depth)] for name in PROCESSES}


def instrument_report_path(out_dir: Path, process: str) -> Path:
    return out_dir / f"{process}-report.txt"


def instrument_dump(pid: int, out: Path, timeout: float = 120.0) -> str:
    """Ask an instrumented heatsched process for its report (SIGUSR1) and return it."""
    out.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    wait_for(out.exists, timeout, 0.2, what=f"profiler report {out}")
    return out.read_text()


# ---- the stack -------------------------------------------------------------------------------------------
@dataclass
class BenchStack:
    cp: ControlPlane
    workdir: Path
    sites: list[str]
    nodes: list[str]
    prometheus: PrometheusServer
    controller: Service | None = None  # `heatsched controller`: status, node labels, fuel
    placement: Service | None = None  # `heatsched placement`: the extender (None until started)
    setup_s: dict[str, float] = field(default_factory=dict)
    exporter: SettableExporter | None = None  # the tank temperatures Prometheus scrapes (set_temperature)

    @property
    def extender_port(self) -> int:
        return int(self.cp.extender_url.rsplit(":", 1)[1].split("/")[0])

    def services(self) -> dict[str, int]:
        """Name -> pid of every process of the stack (for CPU accounting)."""
        out = {s.name: s.pid for s in self.cp.services}
        if self.prometheus.service:
            out["prometheus"] = self.prometheus.service.pid
        for svc in self.heatsched():
            out[svc.name] = svc.pid
        return out

    def heatsched(self) -> list[Service]:
        """The heatsched processes running: the controller, then the placement service."""
        return [s for s in (self.controller, self.placement) if s is not None]

    def check_heatsched(self) -> None:
        """Raise if a heatsched process has exited."""
        for svc in self.heatsched():
            svc.check()

    def kubectl(self, *args: str, input: str | None = None) -> None:
        kubectl = str(Toolchain.discover().path("kubectl"))
        subprocess.run([kubectl, f"--kubeconfig={self.cp.kubeconfig}", *args], check=True, capture_output=True,
                       text=True, timeout=120, input=input)

    def get(self, path: str) -> dict:
        """A blocking GET (for waits outside the event loop)."""
        req = urllib.request.Request(self.cp.server + path, headers={"Authorization": f"Bearer {self.token()}"})
        ctx = ssl.create_default_context(cafile=str(self.cp.pki.ca_cert))
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return json.loads(resp.read())

    def token(self) -> str:
        """The admin bearer token (system:masters) of the control plane's kubeconfig."""
        return yaml.safe_load(self.cp.kubeconfig.read_text())["users"][0]["user"]["token"]


def example_sites() -> list[str]:
    names = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        names += [d["metadata"]["name"] for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == "HeatSite"]
    return names


def spread_nodes(sites: list[str], n_nodes: int) -> dict[str, str]:
    """node name -> site, round-robin (250 per site for 1 000 nodes over the 4 examples)."""
    return {f"{sites[i % len(sites)]}-{i // len(sites):04d}": sites[i % len(sites)] for i in range(n_nodes)}


def start_controller(stack: BenchStack, *, python_argv: list[str] | None = None,
                     extra_args: Iterable[str] = ()) -> Service:
    """`heatsched controller` as a real process (status, node labels, fuel; the Lease in `default`), started as the
    e2e stack and the demo start it (heatsched.cluster.heatsched)."""
    processes = Heatsched(stack.cp.kubeconfig, stack.workdir, python=python_argv)
    stack.controller = processes.controller(stack.prometheus.url, free_port(), heartbeat_s=5, args=extra_args)
    return stack.controller


def start_placement(stack: BenchStack, *, python_argv: list[str] | None = None,
                    extra_args: Iterable[str] = ()) -> Service:
    """`heatsched placement` as a real process: the extender on the port the heat-aware scheduler calls, no
    webhook (pods carry schedulerName themselves), no placement annotation unless `extra_args` asks for it."""
    processes = Heatsched(stack.cp.kubeconfig, stack.workdir, python=python_argv)
    stack.placement = processes.placement(stack.extender_port, args=extra_args)
    return stack.placement


def wait_controller_ready(stack: BenchStack, timeout: float = 300.0) -> None:
    """Every node labelled with its country, every site with a known thermal state."""
    def labelled() -> bool:
        stack.check_heatsched()
        return len(stack.get(f"/api/v1/nodes?labelSelector={COUNTRY_LABEL}")["items"]) >= len(stack.nodes)

    wait_for(labelled, timeout, 1.0, what=f"{len(stack.nodes)} nodes labelled by the controller")

    def known() -> bool:
        stack.check_heatsched()
        states = [(stack.get(f"/apis/heatsched.io/v1alpha1/heatsites/{s}").get("status") or {}).get("state")
                  for s in stack.sites]
        return all(state not in (None, "Unknown") for state in states)

    wait_for(known, timeout, 1.0, what="every site has a known thermal state")


async def create_nodes(kube: Kube, nodes: dict[str, str], concurrency: int = 32, cpu: str = "32") -> None:
    bodies = [json.dumps(kwok_node(name, pool=site, cpu=cpu, memory="256Gi", pods="110")).encode()
              for name, site in nodes.items()]
    await kube.create_all("/api/v1/nodes", bodies, concurrency)


def wait_nodes_ready(stack: BenchStack, timeout: float = 300.0) -> None:
    def ready() -> bool:
        items = stack.get("/api/v1/nodes")["items"]
        n = sum(1 for i in items if any(c["type"] == "Ready" and c["status"] == "True"
                                        for c in (i.get("status") or {}).get("conditions") or ()))
        return n >= len(stack.nodes)

    wait_for(ready, timeout, 1.0, what=f"{len(stack.nodes)} kwok nodes Ready")


@contextlib.contextmanager
def bench_stack(n_nodes: int, *, heatsched_python: dict[str, list[str]] | None = None, controller_args: Iterable[str] = (),
                placement_args: Iterable[str] = (), keep_logs: Path | None = None, node_cpu: str = "32",
                temperatures: dict[str, float] | None = None, fuel: bool = False) -> Iterator[BenchStack]:
    """The whole stack up and ready (nodes labelled, sites known, the placement service's /readyz 200); torn
    down on exit whatever happens.

    heatsched runs as two processes: `heatsched controller` (with `controller_args`) and `heatsched placement`
    (with `placement_args`) serving the extender. `heatsched_python` maps "controller"/"placement" to the Python argv that runs `heatsched`
    (see `instrumented`; default: this interpreter, `-m heatsched.cli`).
    `temperatures` replaces TEMPERATURES (site -> °C at start; `stack.exporter` changes them later).
    `fuel`: also create the fuel PriorityClass and namespace, and start with heat fuel disabled on every
    site (`spec.fuel.enabled: false`, patched before the controller starts); the caller turns it on.
    """
    with sigterm_as_interrupt(), contextlib.ExitStack() as teardown:
        t = time.monotonic()
        # A state dir of its own: `heatsched cluster down --all` run elsewhere must not stop a benchmark.
        os.environ["HEATSCHED_STATE"] = str(BENCH_STATE)
        cp = ControlPlane(name=f"bench-{uuid.uuid4().hex[:6]}")
        print(f"control plane {cp.name!r} starting (if this process is SIGKILLed: "
              f"HEATSCHED_STATE={BENCH_STATE} heatsched cluster down --name {cp.name})", flush=True)
        teardown.callback(cp.down)
        cp.up()
        workdir = cp.workdir / "bench"
        if keep_logs is not None:
            teardown.callback(_copy_logs, cp.workdir, keep_logs)  # runs before cp.down removes the work dir
        exporter = SettableExporter().start()
        teardown.callback(exporter.stop)
        for site, celsius in (TEMPERATURES if temperatures is None else temperatures).items():
            exporter.set_temperature(site, celsius)
        prometheus = PrometheusServer(workdir / "prometheus", {"exporter": [exporter.target]})
        teardown.callback(prometheus.stop)
        prometheus.start()
        sites = example_sites()
        nodes = spread_nodes(sites, n_nodes)
        stack = BenchStack(cp, workdir, sites, list(nodes), prometheus, exporter=exporter)
        stack.setup_s["control_plane"] = time.monotonic() - t

        t = time.monotonic()
        stack.kubectl("apply", "-f", str(ROOT / "crds"))
        stack.kubectl("wait", "--for=condition=Established", "crd/heatsites.heatsched.io",
                      "crd/thermaldemands.heatsched.io", "--timeout=60s")
        stack.kubectl("apply", "-f", str(ROOT / "examples"))
        if fuel:
            _prepare_fuel(stack)

        async def make_nodes() -> None:
            async with Kube(cp.kubeconfig) as kube:
                await create_nodes(kube, nodes, cpu=node_cpu)

        asyncio.run(make_nodes())
        stack.setup_s["create_nodes"] = time.monotonic() - t
        t = time.monotonic()
        wait_nodes_ready(stack)
        stack.setup_s["nodes_ready"] = time.monotonic() - t

        t = time.monotonic()
        python = heatsched_python or {}
        start_controller(stack, python_argv=python.get("controller"), extra_args=controller_args)
        teardown.callback(lambda: stack.controller and stack.controller.stop())
        placement = start_placement(stack, python_argv=python.get("placement"), extra_args=placement_args)
        teardown.callback(lambda: stack.placement and stack.placement.stop())  # stopped before the controller
        try:
            wait_controller_ready(stack)
            Heatsched.wait_ready(placement, timeout=300.0)  # /readyz 200: every watch has its initial list in
            stack.setup_s["heatsched_ready"] = time.monotonic() - t  # both processes started and ready
            yield stack
        except BaseException:
            for svc in stack.heatsched():
                print(f"{svc.name} log tail:\n{log_tail(svc.log, 20)}", file=sys.stderr)
            raise


def _prepare_fuel(stack: BenchStack) -> None:
    """The fuel PriorityClass (as the chart ships it) and namespace; heat fuel off on every site for now."""
    stack.kubectl("apply", "-f", "-", input=json.dumps(priority_class()))
    stack.kubectl("create", "namespace", FUEL_NAMESPACE)
    for site in stack.sites:
        stack.kubectl("patch", "heatsite", site, "--type=merge", "-p",
                      json.dumps({"spec": {"fuel": {"enabled": False}}}))


def _copy_logs(workdir: Path, dest: Path) -> None:
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    for log in [*workdir.glob("logs/*.log"), *workdir.glob("bench/*.log")]:
        shutil.copy(log, dest / log.name)
