"""`heatsched demo`: the whole product on the embedded example sites, in a few minutes, on this machine.

What runs (all real, all on loopback, all torn down at the end):
- the local control plane (etcd, kube-apiserver, controller-manager, kwok, default and heat-aware kube-schedulers);
- the digital twin of the four example sites (`heatsched twin serve`), heated by the pods the cluster binds to
  each site's nodes (time accelerated), scraped by a real Prometheus;
- heatsched as it runs in a cluster, two processes: `heatsched controller` (telemetry, HeatSite status, node
  labels, heat fuel) and `heatsched placement` (scheduler extender, residency admission webhook);
- a workload: batch jobs from two tenants, `tenant-fr` (namespace residency FR) and `tenant-any`
  (unrestricted), created and deleted as they finish;
- heat fuel (HeatSite spec.fuel): the controller fills idle cores of French sites that need heat with fuel pods
  (the German grid is dirtier than gas heat, so Frankfurt gets none); halfway through, a burst of tenant-fr
  jobs arrives and preempts them.
Every few seconds it prints each site's tank, state, pods, fuel and heat; at the end, heat served by servers
vs backup, gas and CO2 against the same run without fuel (the twin keeps a counterfactual tank per site), and
a residency audit of every placement.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from heatsched.cluster.controlplane import ControlPlane
    from heatsched.cluster.procs import Service
    from heatsched.cluster.prometheus import PrometheusServer
    from heatsched.models import HeatSite

ROOT_CANDIDATES = (Path.cwd(), Path(__file__).resolve().parents[3])
FUEL_NAMESPACE = "heatsched-fuel"


def _examples() -> Path:
    for root in ROOT_CANDIDATES:
        if (root / "examples").is_dir() and (root / "crds").is_dir():
            return root
    raise SystemExit("heatsched demo needs the repository's crds/ and examples/: run it from the repository root")


class Demo:
    # Any: the kubernetes client takes plain dict bodies at runtime, and its models type every field Optional
    core: Any
    custom: Any

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.t0 = time.monotonic()
        self.services: list[Service] = []
        self.cp: ControlPlane | None = None
        self.prometheus: PrometheusServer | None = None
        self.rng = random.Random(args.seed)
        self.jobs: dict[tuple[str, str], float] = {}  # (namespace, name) -> end time
        self.placed: dict[tuple[str, str], str] = {}  # -> node
        self.burst_result: tuple[int, int, float, int] | None = None  # bound, submitted, slowest s, fuel pods

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f} s] {text}", flush=True)

    # ---- set-up --------------------------------------------------------------------------------------
    def up(self) -> None:
        from kubernetes import client

        from heatsched.cluster.controlplane import ControlPlane
        from heatsched.cluster.heatsched import Heatsched
        from heatsched.cluster.kwoknodes import kwok_node
        from heatsched.cluster.procs import Service, free_port
        from heatsched.cluster.prometheus import PrometheusServer
        from heatsched.cluster.toolchain import Toolchain
        from heatsched.controller.fuel import priority_class
        from heatsched.kube import api_client
        from heatsched.models import HeatSite, load_manifest

        root = _examples()
        cp = self.cp = ControlPlane(name="demo").up()
        self.api = api_client(str(cp.kubeconfig))  # every call with a timeout
        self.core, self.custom = client.CoreV1Api(self.api), client.CustomObjectsApi(self.api)
        version = client.VersionApi(self.api).get_code().git_version
        self.say(f"control plane up: kube-apiserver {version}, kube-scheduler x2 (default, heat-aware), kwok")
        kubectl = str(Toolchain.discover().path("kubectl"))
        def run(*a: str) -> None:
            subprocess.run([kubectl, f"--kubeconfig={cp.kubeconfig}", "--request-timeout=30s", *a], check=True,
                           capture_output=True, text=True, timeout=120)
        run("apply", "-f", str(root / "crds"))
        run("apply", "-f", str(root / "charts" / "heatsched" / "files" / "residency-policies.yaml"))
        run("wait", "--for=condition=Established", "crd/heatsites.heatsched.io", "crd/thermaldemands.heatsched.io")
        run("apply", "-f", str(root / "examples"))
        self.core.create_namespace({"metadata": {"name": FUEL_NAMESPACE}})
        scheduling: Any = client.SchedulingV1Api(self.api)  # takes the plain dict body at runtime
        scheduling.create_priority_class(priority_class())
        self.sites: list[HeatSite] = [o for p in sorted((root / "examples").glob("*.yaml")) for o in load_manifest(p)
                                      if isinstance(o, HeatSite)]
        fuel = {"coresPerPod": self.args.fuel_cores_per_pod, "enabled": not self.args.no_fuel}
        for site in self.sites:
            self.custom.patch_cluster_custom_object("heatsched.io", "v1alpha1", "heatsites", site.name,
                                                    {"spec": {"telemetry": {"refreshSeconds": 2}, "fuel": fuel}})
            for i in range(self.args.nodes_per_site):
                self.core.create_node(kwok_node(f"{site.name}-{i}", pool=site.name, cpu=str(self.args.cpu_per_node)))
        self.say(f"{len(self.sites)} HeatSites applied from examples/, {self.args.nodes_per_site} kwok nodes each: "
                 + ", ".join(f"{s.name} ({s.spec.country})" for s in self.sites))

        work = cp.workdir
        assert work is not None  # up() made it
        twin_port = free_port()
        self.twin_url = f"http://127.0.0.1:{twin_port}"
        py = [sys.executable, "-m", "heatsched.cli"]
        self.services.append(Service("twin", py + [
            "twin", "serve", "--sites", str(root / "examples"), "--host", "127.0.0.1", "--port", str(twin_port),
            "--speed", str(self.args.speed), "--load", "kubernetes", "--kubeconfig", str(cp.kubeconfig),
            "--refresh", "2", "--initial-temperature", "57", "--seed", str(self.args.seed)], work / "twin.log").start())
        self._wait_http(f"{self.twin_url}/healthz", "twin")
        prometheus = self.prometheus = PrometheusServer(
            work / "prometheus", {"twin": [f"127.0.0.1:{twin_port}"]}).start()
        self.say(f"digital twin at {self.twin_url} (x{self.args.speed:g} time), Prometheus at {prometheus.url}")
        assert cp.extender_url is not None  # up() sets it
        ext_port = int(cp.extender_url.rsplit(":", 1)[1].split("/")[0])
        webhook_port = free_port()
        processes = Heatsched(cp.kubeconfig, work)
        controller = processes.controller(prometheus.url, free_port(), heartbeat_s=5)
        self.services.append(controller)
        # --annotate-placements: the summary's `heatsched explain` reads the pod's heatsched.io/placement
        placement = processes.placement(ext_port, webhook_port=webhook_port, cert_dir=work / "webhook-tls",
                                        args=["--annotate-placements"])
        self.services.append(placement)
        processes.wait_leading(controller)
        processes.wait_ready(placement)
        processes.wait_webhook(placement, self.api, webhook_port)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for svc in self.services:
                svc.check()
            states = [self._status(s.name).get("state") for s in self.sites]
            if all(s not in (None, "Unknown") for s in states):
                break
            time.sleep(0.5)
        self.say("controller up: sites have live thermal states; placement service up: admission webhook and "
                 "extender serving")
        for name, ns_annotations in (("tenant-fr", {"heatsched.io/residency": "FR"}), ("tenant-any", {})):
            self.core.create_namespace({"metadata": {"name": name, "annotations": ns_annotations,
                                                     "labels": {"heatsched.io/scheduling": "heat-aware"}}})
        time.sleep(1)
        self.say("tenants: tenant-fr (residency FR, heat-aware), tenant-any (unrestricted, heat-aware)")

    def _wait_http(self, url: str, what: str, timeout: float = 60) -> None:
        """Until `url` (the twin's /healthz) answers 2xx; a refused connection or an error status (an OSError) is
        retried. RuntimeError if a started service exits meanwhile, TimeoutError after `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for svc in self.services:
                svc.check()
            try:
                with urllib.request.urlopen(url, timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"{what} not ready at {url}")

    def _status(self, site: str) -> dict[str, Any]:
        status: dict[str, Any] = (
            self.custom.get_cluster_custom_object("heatsched.io", "v1alpha1", "heatsites", site).get("status") or {})
        return status

    def _twin(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.twin_url}/sites", timeout=2) as r:
            sites: dict[str, Any] = json.load(r)
            return sites

    # ---- workload ------------------------------------------------------------------------------------
    def submit(self, n: int) -> None:
        for _ in range(n):
            ns = "tenant-fr" if self.rng.random() < self.args.fr_share else "tenant-any"
            name = f"job-{len(self.jobs) + len(self.placed):04d}-{self.rng.randrange(1 << 16):04x}"
            cpu = self.rng.choice(self.args.job_cpus)
            self.core.create_namespaced_pod(ns, {"metadata": {"name": name}, "spec": {
                "containers": [{"name": "work", "image": "busybox", "resources": {"requests": {"cpu": str(cpu)}}}],
                "terminationGracePeriodSeconds": 0}})
            self.jobs[(ns, name)] = time.monotonic() + self.rng.uniform(*self.args.job_seconds)

    def fuel_pods(self) -> int:
        pods = self.core.list_namespaced_pod(FUEL_NAMESPACE).items
        return sum(1 for p in pods if p.spec.node_name and p.metadata.deletion_timestamp is None)

    def burst(self) -> None:
        """A tenant burst while fuel runs: FR jobs that need the cores fuel holds; time until each is bound."""
        n, cpu = self.args.burst, self.args.burst_cpu
        fuel_before = self.fuel_pods()
        self.say(f"tenant burst: {n} tenant-fr jobs of {cpu} CPU arrive ({fuel_before} fuel pods running)")
        created: dict[str, float] = {}
        for i in range(n):
            name = f"burst-{i:03d}-{self.rng.randrange(1 << 16):04x}"
            self.core.create_namespaced_pod("tenant-fr", {"metadata": {"name": name}, "spec": {
                "containers": [{"name": "work", "image": "busybox", "resources": {"requests": {"cpu": str(cpu)}}}],
                "terminationGracePeriodSeconds": 0}})
            created[name] = time.monotonic()
            self.jobs[("tenant-fr", name)] = time.monotonic() + self.rng.uniform(*self.args.job_seconds)
        waits: dict[str, float] = {}
        deadline = time.monotonic() + 120
        while len(waits) < n and time.monotonic() < deadline:
            for pod in self.core.list_namespaced_pod("tenant-fr").items:
                name = pod.metadata.name
                if name in created and name not in waits and pod.spec.node_name:
                    waits[name] = time.monotonic() - created[name]
                    self.placed[("tenant-fr", name)] = pod.spec.node_name
            time.sleep(0.2)
        for name in sorted(set(created) - set(waits)):
            self.say(f"tenant burst: {name} still pending: {self.why_pending('tenant-fr', name)}")
        ordered = sorted(waits.values())
        p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)] if ordered else float("nan")
        self.say(f"tenant burst: {len(waits)}/{n} bound, slowest after {max(ordered, default=float('nan')):.1f} s "
                 f"(p95 {p95:.1f} s); fuel pods {fuel_before} -> {self.fuel_pods()}: tenants preempt fuel")
        self.burst_result = (len(waits), n, max(ordered, default=float("nan")), fuel_before)

    def why_pending(self, namespace: str, name: str) -> str:
        """kube-scheduler's last FailedScheduling message for a pod (with the extender's reasons), if any."""
        events = self.core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name},reason=FailedScheduling", _request_timeout=30).items
        latest = max(events, key=lambda e: (e.last_timestamp or e.event_time or e.metadata.creation_timestamp),
                     default=None)
        return latest.message if latest is not None else "no FailedScheduling event yet"

    def reap(self) -> None:
        now = time.monotonic()
        for (ns, name), end in list(self.jobs.items()):
            pod = None
            if (ns, name) not in self.placed:
                pod = self.core.read_namespaced_pod(name, ns)
                if pod.spec.node_name:
                    self.placed[(ns, name)] = pod.spec.node_name
            if end <= now and (ns, name) in self.placed:
                self.core.delete_namespaced_pod(name, ns, grace_period_seconds=0)
                del self.jobs[(ns, name)]

    def table(self) -> None:
        twin = {s["site"]: s for s in self._twin()["sites"]}
        running: dict[str, int] = {}
        for key, node in self.placed.items():
            if key in self.jobs:
                site_name = node.rsplit("-", 1)[0]
                running[site_name] = running.get(site_name, 0) + 1
        pending = sum(1 for k in self.jobs if k not in self.placed)
        print(f"         sim {self._twin()['simTime'][5:16]}  pending {pending}")
        print(f"         {'site':24} {'cc':2} {'tank °C':>7} {'state':11} {'pods':>4} {'fuel':>10} {'IT kW':>6} "
              f"{'served kWh':>10} {'backup kWh':>10}")
        for site in self.sites:
            t, st = twin[site.name], self._status(site.name)
            fuel = st.get("fuel") or {}
            cores = f"{fuel.get('cores', 0)}c" if fuel.get("allowed") else "off"
            print(f"         {site.name:24} {site.spec.country:2} {t['temperatureC']:7.1f} "
                  f"{st.get('state', '?'):11} {running.get(site.name, 0):4d} {cores:>10} {t['itKW']:6.2f} "
                  f"{t['servedByITKWh']:10.1f} {t['backupKWh']:10.1f}", flush=True)

    def run(self) -> int:
        self.up()
        end = time.monotonic() + self.args.duration
        burst_at = time.monotonic() + 0.55 * self.args.duration if self.args.burst else float("inf")
        next_table = 0.0
        while time.monotonic() < end:
            if time.monotonic() >= burst_at:
                self.burst()
                burst_at = float("inf")
            self.submit(self.args.jobs_per_tick)
            self.reap()
            if time.monotonic() >= next_table:
                self.say("status")
                self.table()
                next_table = time.monotonic() + self.args.table_every
            time.sleep(2)
        self.reap()
        return self.summary()

    def summary(self) -> int:
        from heatsched.placement.model import COUNTRY_LABEL

        self.say("summary")
        self.table()
        labels = {n.metadata.name: (n.metadata.labels or {}) for n in self.core.list_node().items}
        fr = [(k, node) for k, node in self.placed.items() if k[0] == "tenant-fr"]
        violations = [k for k, node in fr if labels.get(node, {}).get(COUNTRY_LABEL) != "FR"]
        print(f"         placements: {len(self.placed)} ({len(fr)} with residency FR); residency violations: "
              f"{len(violations)}")
        twin = self._twin()["sites"]
        served, backup = sum(s["servedByITKWh"] for s in twin), sum(s["backupKWh"] for s in twin)
        demand = served + backup
        if demand > 0:
            print(f"         hot-water heat: {served:.1f} kWh from servers, {backup:.1f} kWh from backup "
                  f"({100 * served / demand:.0f} % from servers) over {self._twin()['simTime'][5:16]} simulated")
        self.fuel_summary(twin)
        sample = next(iter(k for k in self.placed if k in self.jobs), None)
        if sample is not None:
            from heatsched.explain import render

            pod = self.core.read_namespaced_pod(sample[1], sample[0])
            print("         heatsched explain " + sample[1] + " -n " + sample[0] + ":")
            print("\n".join("           " + line for line in render(pod, []).splitlines()))
        return 1 if violations else 0

    def fuel_summary(self, twin: list[dict[str, Any]]) -> None:
        """Gas and CO2 of heat against the same run without fuel (the twin's counterfactual tank per site:
        same demand, same tenant pods, no fuel pods)."""
        from heatsched.planning.fuel import co2_factors

        by_name = {s.name: s for s in self.sites}
        print(f"         {'heat fuel':24} {'fuel kWh':>8} {'gas kWh':>8} {'no fuel':>8} {'CO2 kg':>7} {'no fuel':>8}")
        totals = [0.0] * 5
        for t in twin:
            gas_ci, gas_eff, grid = co2_factors(by_name[t["site"]].spec)
            grid_ci = grid or 0.0
            fuel, gas, base = t["fuelKWh"], t["backupKWh"], (t.get("noFuel") or {}).get("backupKWh", t["backupKWh"])
            co2, co2_base = gas / gas_eff * gas_ci + fuel * grid_ci, base / gas_eff * gas_ci
            for i, v in enumerate((fuel, gas, base, co2, co2_base)):
                totals[i] += v
            print(f"         {t['site']:24} {fuel:8.1f} {gas:8.1f} {base:8.1f} {co2:7.1f} {co2_base:8.1f}")
        fuel, gas, base, co2, co2_base = totals
        saved = (1 - gas / base) if base > 0 else 0.0
        print(f"         heat fuel used {fuel:.1f} kWh of electricity: gas {gas:.1f} kWh instead of {base:.1f} kWh "
              f"without fuel ({saved:.0%} less), CO2 of heat {co2:.1f} kg instead of {co2_base:.1f} kg "
              f"({co2_base - co2:+.1f} kg saved)")
        if self.burst_result is not None:
            got, n, slowest, fuel_pods = self.burst_result
            pending = f"; {n - got} still pending, kube-scheduler's reason above" if got < n else ""
            print(f"         tenant burst: {got}/{n} bound within {slowest:.1f} s while {fuel_pods} fuel pods ran"
                  f"{pending}")

    def down(self) -> None:
        for svc in reversed(self.services):
            svc.stop()
        if self.prometheus is not None:
            self.prometheus.stop()
        if self.cp is not None:
            self.cp.down()
        self.say("everything stopped and cleaned up")


def _run(args: argparse.Namespace) -> int:
    demo = Demo(args)
    try:
        code = demo.run()
        if args.keep:
            assert demo.cp is not None  # run() brought it up
            demo.say(f"--keep: cluster stays up until Ctrl-C; export KUBECONFIG={demo.cp.kubeconfig}")
            while True:
                time.sleep(3600)
        return code
    except KeyboardInterrupt:
        return 130
    finally:
        demo.down()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="run the whole stack on the example sites for a few minutes",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=90, help="seconds of workload (default 90)")
    p.add_argument("--speed", type=float, default=240, help="twin time acceleration (default 240: 1 s = 4 min)")
    p.add_argument("--nodes-per-site", type=int, default=3, help="kwok nodes per site (default 3)")
    p.add_argument("--cpu-per-node", type=int, default=256,
                   help="CPU of each kwok node (default 256: a boiler site's rack is ~1 000 cores, ~10 kW)")
    p.add_argument("--job-cpus", type=int, nargs="+", default=(8, 16, 32, 64), metavar="CPU",
                   help="CPU requests jobs draw from (default 8 16 32 64)")
    p.add_argument("--jobs-per-tick", type=int, default=3, help="jobs submitted every 2 s (default 3)")
    p.add_argument("--job-seconds", type=float, nargs=2, default=(20, 60), metavar=("MIN", "MAX"),
                   help="job run time range in seconds (default 20 60)")
    p.add_argument("--fr-share", type=float, default=0.6, help="share of jobs with residency FR (default 0.6)")
    p.add_argument("--table-every", type=float, default=15, help="seconds between status tables (default 15)")
    p.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    p.add_argument("--no-fuel", action="store_true", help="run without heat fuel (the counterfactual is still shown)")
    p.add_argument("--fuel-cores-per-pod", type=int, default=32, help="CPU of one heat fuel pod (default 32)")
    p.add_argument("--burst", type=int, default=16,
                   help="tenant-fr jobs arriving at once halfway through, to preempt fuel (default 16; 0: none)")
    p.add_argument("--burst-cpu", type=int, default=64, help="CPU of each burst job (default 64)")
    p.add_argument("--keep", action="store_true", help="keep everything running at the end until Ctrl-C")
    p.set_defaults(func=_run)
