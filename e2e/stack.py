"""The heatsched stack on the local control plane, the way an admin runs it: `kubectl apply -f crds/ -f
examples/`, kwok nodes in each site's pool, a real Prometheus scraping an exporter, and the operator
(`heatsched operator`, a real process) serving the extender the heat-aware kube-scheduler calls and the
admission webhook the apiserver calls.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from pathlib import Path

import yaml
from heatsched.cluster.controlplane import HEAT_AWARE_RETRY_FLAG, render_scheduler_config
from heatsched.cluster.heatsched import Heatsched
from heatsched.cluster.kwoknodes import kwok_node
from heatsched.cluster.procs import Service, free_port
from heatsched.cluster.prometheus import PrometheusServer
from heatsched.cluster.toolchain import Toolchain
from heatsched.controller.fuel import priority_class
from heatsched.placement.model import FUEL_SITE_LABEL
from kubernetes import client

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "charts" / "heatsched" / "files" / "residency-policies.yaml"
SITES = ("montlucon-residence", "metz-hospital", "sarreguemines-factory", "frankfurt-office")
REFRESH_S = 2  # e2e patches every example site to refresh this often
MAX_HEAT_WAIT_S = 30  # the operator's heat wait bound in e2e (default 600)
FUEL_NAMESPACE = "heatsched-fuel"


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of the first sample `name` in a /metrics text whose labels include `labels`; None if absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return None


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout} s (last: {last!r})")


class Stack:
    def __init__(self, cluster, api: client.ApiClient, exporter, workdir: Path) -> None:
        self.cluster, self.api, self.exporter, self.workdir = cluster, api, exporter, workdir
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.kubectl_bin = str(Toolchain.discover().path("kubectl"))
        self.controller_metrics_port = free_port()  # kept across restarts, so Prometheus scrapes the active one
        self.webhook_port = free_port()
        self.webhook_host = os.environ.get("HEATSCHED_E2E_WEBHOOK_HOST", "127.0.0.1")
        self.controller: Service | None = None
        self.placement: Service | None = None
        self.heatsched = Heatsched(cluster.kubeconfig, workdir)
        self.scheduler: Service | None = None
        # an external cluster (kind) has no heat-aware scheduler: this suite runs one, calling a local extender
        self.extender_url = getattr(cluster, "extender_url", None) or f"http://127.0.0.1:{free_port()}/scheduler"
        # the twin-like exporter, and both heatsched processes' own /metrics (the dashboard and alerts read them)
        self.prometheus = PrometheusServer(workdir / "prometheus", {
            "exporter": [exporter.target],
            "heatsched-controller": [f"127.0.0.1:{self.controller_metrics_port}"],
            "heatsched-placement": [f"127.0.0.1:{self.extender_port()}"]})

    # ---- plumbing ------------------------------------------------------------------------------------
    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([self.kubectl_bin, f"--kubeconfig={self.cluster.kubeconfig}", *args], text=True,
                              capture_output=True, check=check, input=input, timeout=60)

    def extender_port(self) -> int:
        return int(self.extender_url.rsplit(":", 1)[1].split("/")[0])

    def start_heat_aware_scheduler(self) -> None:
        cfg = self.workdir / "heat-aware-scheduler.yaml"
        # as kube-scheduler: its bindings are trusted (they honour the pods' required node affinity), the
        # tests' own bindings (as the admin) go through the residency webhook like any other binder's
        kubeconfig = yaml.safe_load(Path(self.cluster.kubeconfig).read_text())
        for user in kubeconfig.get("users") or ():
            user.setdefault("user", {})["as"] = "system:kube-scheduler"
        as_scheduler = self.workdir / "heat-aware-scheduler.kubeconfig"
        as_scheduler.write_text(yaml.safe_dump(kubeconfig))
        as_scheduler.chmod(0o600)
        cfg.write_text(yaml.safe_dump(render_scheduler_config(str(as_scheduler), self.extender_url)))
        binary = str(Toolchain.discover().path("kube-scheduler"))
        self.scheduler = Service("heat-aware-scheduler", [
            binary, f"--config={cfg}", "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
            f"--authentication-kubeconfig={as_scheduler}",
            f"--authorization-kubeconfig={as_scheduler}", HEAT_AWARE_RETRY_FLAG],
            self.workdir / "heat-aware-scheduler.log").start()

    def start_operator(self, *, extender: bool = True, args: tuple[str, ...] = ()) -> None:
        """Both heatsched processes: the controller (with `args`) and, unless `extender` is False, the placement
        service (extender and residency webhook)."""
        self.start_controller(args)
        if extender:
            self.start_placement()

    def stop_operator(self, *, kill: bool = False) -> None:
        """Stop both processes: SIGTERM, or SIGKILL at once with `kill`."""
        self.stop_placement(kill=kill)
        self.stop_controller(kill=kill)

    def start_controller(self, args: tuple[str, ...] = (), name: str = "controller") -> Service:
        """A controller process; the one named "controller" is the Stack's, on the port Prometheus scrapes, and
        is waited for until it holds the Lease."""
        port = self.controller_metrics_port if name == "controller" else free_port()
        service = self.heatsched.controller(self.prometheus.url, port, args=args, name=name)
        if name == "controller":
            self.controller = service
            self.heatsched.wait_leading(service)
        return service

    def stop_controller(self, *, kill: bool = False) -> None:
        if self.controller is not None:
            self.controller.stop(grace=0 if kill else 10.0)
            self.controller = None

    def metrics(self) -> str:
        """GET /metrics of the Stack's controller (its metrics port)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.controller_metrics_port}/metrics", timeout=5) as resp:
            return resp.read().decode()

    def start_placement(self) -> None:
        args = [f"--max-heat-wait={MAX_HEAT_WAIT_S}", "--annotate-placements", "--placement-events"]
        if self.webhook_host != "127.0.0.1":
            args += ["--webhook-host=0.0.0.0", f"--webhook-public-host={self.webhook_host}"]
        self.placement = self.heatsched.placement(self.extender_port(), webhook_port=self.webhook_port,
                                                  cert_dir=self.workdir / "webhook-tls", args=args)
        self.heatsched.wait_webhook(self.placement, self.api, self.webhook_port)
        self.heatsched.wait_ready(self.placement)

    def stop_placement(self, *, kill: bool = False) -> None:
        if self.placement is not None:
            self.placement.stop(grace=0 if kill else 10.0)
            self.placement = None

    def apply_policies(self) -> None:
        """The residency admission policies, as an admin without Helm applies them; wait until they act."""
        self.kubectl("apply", "-f", str(POLICIES))

        def active() -> bool:
            pod = {"metadata": {"name": "policy-probe", "annotations": {"heatsched.io/residency": "FR"}},
                   "spec": {"containers": [{"name": "c", "image": "probe"}]}}
            try:
                made = self.core.create_namespaced_pod("default", pod, dry_run="All")
            except client.ApiException:
                return False
            return made.spec.affinity is not None
        wait_for(active, 30, what="residency admission policies active")

    # ---- lifecycle -----------------------------------------------------------------------------------
    def up(self) -> Stack:
        if not getattr(self.cluster, "extender_url", None):
            self.start_heat_aware_scheduler()
        for site in SITES:
            self.exporter.set_temperature(site, 60.0)
        self.prometheus.start()
        self.kubectl("apply", "-f", str(ROOT / "crds"))
        self.kubectl("wait", "--for=condition=Established", "crd/heatsites.heatsched.io",
                     "crd/thermaldemands.heatsched.io", "--timeout=60s")
        self.kubectl("apply", "-f", str(ROOT / "examples"))
        self.apply_policies()
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump(priority_class()))
        self.kubectl("create", "namespace", FUEL_NAMESPACE, check=False)
        for site in SITES:  # heat fuel off unless a test turns it on (tests/e2e/test_fuel.py)
            self.custom.patch_cluster_custom_object("heatsched.io", "v1alpha1", "heatsites", site, {"spec": {
                "telemetry": {"refreshSeconds": REFRESH_S}, "fuel": {"enabled": False}}})
            for i in (1, 2):
                self.core.create_node(kwok_node(f"{site}-{i}", pool=site, cpu="4"))
        self.start_operator()
        for site in SITES:
            wait_for(lambda s=site: self.site_status(s).get("state") not in (None, "Unknown"), 60,
                     what=f"{site} has a known state")
        return self

    def down(self) -> None:
        self.stop_operator()
        self.prometheus.stop()
        if self.scheduler is not None:
            self.scheduler.stop()

    # ---- reading ---------------------------------------------------------------------------------------
    def site(self, name: str) -> dict:
        return self.custom.get_cluster_custom_object("heatsched.io", "v1alpha1", "heatsites", name)

    def site_status(self, name: str) -> dict:
        return self.site(name).get("status") or {}

    def node_labels(self, name: str) -> dict:
        return self.core.read_node(name).metadata.labels or {}

    def set_temperatures(self, temps: dict[str, float], wait_state: bool = True) -> None:
        for site, t in temps.items():
            self.exporter.set_temperature(site, t)
        if wait_state:
            for site, t in temps.items():
                wait_for(lambda s=site, t=t: self.site_status(s).get("temperatureCelsius") == t, 20,
                         what=f"{site} status at {t} °C")

    def pod(self, namespace: str, name: str, *, cpu: str = "100m", annotations: dict | None = None,
            scheduler: str | None = None, affinity: dict | None = None, node: str | None = None) -> dict:
        """Create a pod; `node` presets spec.nodeName (no scheduler: the residency webhook checks it)."""
        spec: dict = {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}]}
        if node:
            spec["nodeName"] = node
        if scheduler:
            spec["schedulerName"] = scheduler
        if affinity:
            spec["affinity"] = affinity
        body = {"metadata": {"name": name, "annotations": annotations or {}}, "spec": spec}
        return self.core.create_namespaced_pod(namespace, body)

    def node_site(self, node: str) -> str:
        return node.rsplit("-", 1)[0]

    def fuel_pods(self, site: str | None = None) -> list:
        selector = f"{FUEL_SITE_LABEL}={site}" if site else FUEL_SITE_LABEL
        pods = self.core.list_namespaced_pod(FUEL_NAMESPACE, label_selector=selector).items
        return [p for p in pods if p.metadata.deletion_timestamp is None]

    def set_fuel(self, site: str, enabled: bool) -> None:
        """Fuel on or off; no reserve: the e2e nodes have 4 cores, and the tests fill them."""
        self.custom.patch_cluster_custom_object("heatsched.io", "v1alpha1", "heatsites", site,
                                                {"spec": {"fuel": {"enabled": enabled, "reservePercent": 0}}})


def load_yaml(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]
