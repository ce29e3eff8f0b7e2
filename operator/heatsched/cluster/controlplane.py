"""Start and stop a real local control plane: etcd, kube-apiserver, kube-controller-manager, kwok and two
kube-schedulers (the vanilla `default-scheduler` and the `heat-aware` profile that calls the extender).

Why two schedulers: a KubeSchedulerConfiguration's extenders apply to every profile in that process, so the
heat-aware profile runs in its own kube-scheduler, exactly as a cluster admin deploys a second scheduler.
Everything binds to loopback and the apiserver advertises an explicit address, so it works on a host
with no default route. `ControlPlane` is a context manager; `down()` always runs, even when a test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Self

import yaml

from heatsched.cluster.pki import (
    ADMIN,
    CONTROLLER_MANAGER,
    KWOK,
    SCHEDULER,
    Identity,
    Pki,
    kubeconfig,
)
from heatsched.cluster.procs import Service, free_port, log_tail
from heatsched.cluster.toolchain import Toolchain

CONTEXT_PREFIX = "heatsched-local"  # the e2e suite trusts contexts it made: this prefix, or kind-heatsched-e2e
HEAT_AWARE_SCHEDULER = "heat-aware"
# pods the extender held off heat-blocked nodes are retried at least this often (kube-scheduler's default is
# 5 min), so the heat wait bound (`heatsched operator --max-heat-wait`) is not stretched by the queue
HEAT_AWARE_RETRY_FLAG = "--pod-max-in-unschedulable-pods-duration=20s"


def state_root() -> Path:
    return Path(os.environ.get("HEATSCHED_STATE", Path.home() / ".heatsched")) / "clusters"


def render_scheduler_config(kubeconfig_path: str, extender_url: str | None) -> dict[str, Any]:
    """The heat-aware KubeSchedulerConfiguration (data/heat-aware-scheduler.yaml, shared with the chart)."""
    text = resources.files("heatsched.data").joinpath("heat-aware-scheduler.yaml").read_text()
    config: dict[str, Any] = yaml.safe_load(text)
    config["clientConnection"]["kubeconfig"] = kubeconfig_path
    config["leaderElection"] = {"leaderElect": False}
    if extender_url is None:
        config.pop("extenders", None)
    else:
        for ext in config.get("extenders", []):
            ext["urlPrefix"] = extender_url
    return config


@dataclass
class ControlPlane:
    name: str = "heatsched"
    workdir: Path | None = None
    advertise_address: str = "127.0.0.1"
    extender_url: str | None = None  # default: http://127.0.0.1:<free port>/scheduler
    node_identities: tuple[str, ...] = ()  # kubelet-like tokens (system:node:<name>) for spoofing tests
    heat_aware_scheduler: bool = True  # False: a plain cluster, like a fresh kind cluster
    toolchain: Toolchain = field(default_factory=Toolchain.discover)
    services: list[Service] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    owns_workdir: bool = False

    # ---- paths -----------------------------------------------------------------------------------
    @property
    def context(self) -> str:
        return f"{CONTEXT_PREFIX}-{self.name}"

    @property
    def kubeconfig(self) -> Path:
        assert self.workdir is not None, "the work dir is set by up() or from_state()"
        return self.workdir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    # ---- lifecycle -------------------------------------------------------------------------------
    def up(self, timeout: float = 120.0) -> Self:
        tc = self.toolchain
        binaries = {b: str(tc.path(b)) for b in
                    ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")}
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"heatsched-{self.name}-"))
            self.owns_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        for port_name in ("etcd", "etcd_peer", "apiserver", "scheduler", "heat_scheduler", "controller_manager",
                          "kwok", "extender"):
            self.ports[port_name] = free_port()
        if self.extender_url is None:
            self.extender_url = f"http://127.0.0.1:{self.ports['extender']}/scheduler"

        node_ids = [Identity(f"system:node:{n}", ("system:nodes",)) for n in self.node_identities]
        pki = Pki.create(self.workdir / "pki", extra=node_ids, hosts=(self.advertise_address,))
        self.pki = pki
        configs: dict[str, str] = {}
        for ident, fname in ((ADMIN, "kubeconfig"), (SCHEDULER, "scheduler.kubeconfig"),
                             (CONTROLLER_MANAGER, "controller-manager.kubeconfig"), (KWOK, "kwok.kubeconfig"),
                             *((i, f"node-{i.user.split(':')[-1]}.kubeconfig") for i in node_ids)):
            path = self.workdir / fname
            path.write_text(yaml.safe_dump(kubeconfig(self.server, pki.ca_cert, pki.tokens[ident.user],
                                                      ident.user, self.context)))
            path.chmod(0o600)
            configs[ident.user] = str(path)
        heat_cfg = self.workdir / "heat-aware-scheduler.yaml"
        heat_cfg.write_text(yaml.safe_dump(render_scheduler_config(configs[SCHEDULER.user], self.extender_url)))
        vanilla_cfg = self.workdir / "default-scheduler.yaml"
        vanilla_cfg.write_text(yaml.safe_dump({
            "apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
            "clientConnection": {"kubeconfig": configs[SCHEDULER.user], "qps": 200, "burst": 400},
            "leaderElection": {"leaderElect": False},
        }))
        logs = self.workdir / "logs"
        p = self.ports
        try:
            self._start("etcd", [
                binaries["etcd"], "--name=heatsched", f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{p['etcd']}",
                f"--advertise-client-urls=http://127.0.0.1:{p['etcd']}",
                f"--listen-peer-urls=http://127.0.0.1:{p['etcd_peer']}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{p['etcd_peer']}",
                f"--initial-cluster=heatsched=http://127.0.0.1:{p['etcd_peer']}",
                "--unsafe-no-fsync", "--quota-backend-bytes=4294967296", "--log-level=warn",
            ], logs)
            self._wait("etcd", f"http://127.0.0.1:{p['etcd']}/health", timeout)
            self._start("kube-apiserver", [
                binaries["kube-apiserver"], f"--etcd-servers=http://127.0.0.1:{p['etcd']}",
                "--bind-address=127.0.0.1", f"--advertise-address={self.advertise_address}",
                f"--secure-port={p['apiserver']}", f"--cert-dir={self.workdir / 'pki'}",
                f"--tls-cert-file={pki.serving_cert}", f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}", f"--token-auth-file={pki.token_file}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                f"--service-account-key-file={pki.sa_pub}", f"--service-account-signing-key-file={pki.sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.96.0.0/16", "--endpoint-reconciler-type=none",
                "--allow-privileged=true", "--max-requests-inflight=1000", "--max-mutating-requests-inflight=500",
                "--v=0",
            ], logs)
            self._wait("kube-apiserver", f"{self.server}/readyz", timeout, token=pki.tokens[ADMIN.user])
            self._start("kube-controller-manager", [
                binaries["kube-controller-manager"], f"--kubeconfig={configs[CONTROLLER_MANAGER.user]}",
                f"--authentication-kubeconfig={configs[CONTROLLER_MANAGER.user]}",
                f"--authorization-kubeconfig={configs[CONTROLLER_MANAGER.user]}",
                f"--service-account-private-key-file={pki.sa_key}", f"--root-ca-file={pki.ca_cert}",
                "--use-service-account-credentials=true", "--leader-elect=false",
                "--controllers=*,-csrsigning,-nodeipam", "--bind-address=127.0.0.1",
                f"--secure-port={p['controller_manager']}", "--kube-api-qps=200", "--kube-api-burst=400",
            ], logs)
            self._start("kwok", [
                binaries["kwok"], f"--kubeconfig={configs[KWOK.user]}", f"--config={tc.kwok_stages()}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--manage-nodes-with-label-selector=", "--cidr=10.0.0.1/16", "--node-ip=10.0.0.1",
                "--node-lease-duration-seconds=40", f"--server-address=127.0.0.1:{p['kwok']}",
            ], logs)
            schedulers = [("kube-scheduler", vanilla_cfg, p["scheduler"])]
            if self.heat_aware_scheduler:
                schedulers.append(("heat-aware-scheduler", heat_cfg, p["heat_scheduler"]))
            for name, cfg, port in schedulers:
                retry = [HEAT_AWARE_RETRY_FLAG] if name == "heat-aware-scheduler" else []
                self._start(name, [
                    binaries["kube-scheduler"], f"--config={cfg}", "--bind-address=127.0.0.1",
                    f"--secure-port={port}", f"--authentication-kubeconfig={configs[SCHEDULER.user]}",
                    f"--authorization-kubeconfig={configs[SCHEDULER.user]}", *retry,
                ], logs)
            for name, _, port in [("kube-controller-manager", None, p["controller_manager"]), *schedulers]:
                self._wait(name, f"https://127.0.0.1:{port}/healthz", timeout, insecure=True)
            time.sleep(0.5)
            for svc in self.services:
                svc.check()
        except BaseException:
            self.down()
            raise
        self._save_state()
        return self

    def down(self) -> None:
        """Stop every service (reverse order), then remove the work dir if this object created it."""
        for svc in reversed(self.services):
            svc.stop()
        self.services.clear()
        state = self.state_file()
        if state.exists():
            state.unlink()
        if self.owns_workdir and self.workdir and self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # ---- helpers ---------------------------------------------------------------------------------
    def _start(self, name: str, argv: list[str], logs: Path) -> None:
        self.services.append(Service(name, argv, logs / f"{name}.log").start())

    def _wait(self, name: str, url: str, timeout: float, token: str | None = None, insecure: bool = False) -> None:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert)) if url.startswith("https") else None
        if insecure and ctx is not None:  # component self-signed serving certs on loopback
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        svc = next(s for s in self.services if s.name == name)
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            svc.check()
            req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
            try:
                with urllib.request.urlopen(req, context=ctx, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except Exception as exc:  # noqa: BLE001 - not up yet: any failure means retry until the deadline
                last = str(exc)
            time.sleep(0.2)
        raise TimeoutError(f"{name} not ready at {url} after {timeout:.0f} s ({last}); log tail:\n"
                           f"{log_tail(svc.log)}")

    def state_file(self) -> Path:
        return state_root() / f"{self.name}.json"

    def _save_state(self) -> None:
        path = self.state_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "name": self.name, "workdir": str(self.workdir), "owns_workdir": self.owns_workdir,
            "kubeconfig": str(self.kubeconfig), "context": self.context, "ports": self.ports,
            "extender_url": self.extender_url, "services": [s.to_state() for s in self.services],
        }, indent=2))

    @classmethod
    def from_state(cls, name: str) -> ControlPlane:
        data = json.loads((state_root() / f"{name}.json").read_text())
        cp = cls(name=data["name"], workdir=Path(data["workdir"]), extender_url=data["extender_url"],
                 owns_workdir=data["owns_workdir"])
        cp.ports = data["ports"]
        cp.services = [Service.from_state(s) for s in data["services"]]
        return cp
