"""heatsched's two processes as local subprocesses: one start-up for the e2e stack, the demo and the benchmarks.

Why one: each of them used to spell out the same argv, ports and readiness checks. Here `controller()` and
`placement()` build and start them, and `wait_leading()` / `wait_ready()` say when each is really usable (the
controller holds its Lease; the placement service's watches are synced: GET /readyz is 200). Dev harness only.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from heatsched.cluster.procs import Service

LEASE_NAMESPACE = "default"


def _wait(check: Callable[[], bool], timeout: float, what: str, service: Service) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        service.check()  # a process that died says so, with its log
        if check():
            return
        time.sleep(0.3)
    raise TimeoutError(f"{what} not within {timeout:.0f} s")


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            text: str = resp.read().decode()
            return text
    except OSError:  # not listening yet, or an HTTP error (503 while syncing)
        return None


class Heatsched:
    """Starts `heatsched controller` and `heatsched placement` against `kubeconfig`, logging into `workdir`.

    `python` is the interpreter argv (a profiler wrapper in the benchmarks), `env` extra environment."""

    def __init__(self, kubeconfig: str | Path, workdir: Path, *, python: Iterable[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.kubeconfig, self.workdir = str(kubeconfig), workdir
        self.python = list(python) if python is not None else [sys.executable, "-m", "heatsched.cli"]
        self.env = {**os.environ, **(env or {})}

    def controller(self, prometheus_url: str, metrics_port: int, *, args: Iterable[str] = (),
                   heartbeat_s: float = 3.0, name: str = "controller") -> Service:
        argv = [*self.python, "controller", f"--kubeconfig={self.kubeconfig}", f"--prometheus-url={prometheus_url}",
                f"--status-heartbeat={heartbeat_s:g}", f"--metrics-port={metrics_port}",
                f"--leader-election-namespace={LEASE_NAMESPACE}", *args]
        service = Service(name, argv, self.workdir / f"{name}.log").start(env=self.env)
        service.port = metrics_port
        return service

    def placement(self, extender_port: int, *, webhook_port: int = 0, cert_dir: Path | None = None,
                  args: Iterable[str] = (), name: str = "placement") -> Service:
        argv = [*self.python, "placement", f"--kubeconfig={self.kubeconfig}", f"--extender-port={extender_port}",
                f"--webhook-port={webhook_port}", *([f"--webhook-cert-dir={cert_dir}"] if cert_dir else []), *args]
        service = Service(name, argv, self.workdir / f"{name}.log").start(env=self.env)
        service.port = extender_port
        return service

    @staticmethod
    def leading(metrics_port: int) -> bool:
        text = _get(f"http://127.0.0.1:{metrics_port}/metrics") or ""
        return any(line.startswith("heatsched_controller_leader{") and line.endswith(" 1.0")
                   for line in text.splitlines())

    @staticmethod
    def ready(extender_port: int) -> bool:
        return _get(f"http://127.0.0.1:{extender_port}/readyz") is not None

    @staticmethod
    def wait_leading(controller: Service, timeout: float = 60.0) -> None:
        port = controller.port or 0
        _wait(lambda: Heatsched.leading(port), timeout, "controller holds the lease", controller)

    def wait_webhook(self, placement: Service, api: Any, webhook_port: int, timeout: float = 60.0) -> None:
        """Until the ValidatingWebhookConfiguration heatsched.io points at `webhook_port` and something listens
        there (a configuration left by an earlier run may point at a closed port)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        from heatsched.admission.configuration import CONFIG_NAME

        adm = client.AdmissionregistrationV1Api(api)

        def configured() -> bool:
            try:
                cfg = adm.read_validating_webhook_configuration(CONFIG_NAME, _request_timeout=5)
            except ApiException:
                return False
            if not any(f":{webhook_port}" in (w.client_config.url or "") for w in cfg.webhooks or ()):
                return False
            try:
                socket.create_connection(("127.0.0.1", webhook_port), timeout=1).close()
                return True
            except OSError:
                return False
        _wait(configured, timeout, f"webhook configuration pointing at port {webhook_port}", placement)

    @staticmethod
    def wait_ready(placement: Service, timeout: float = 60.0) -> None:
        port = placement.port or 0
        _wait(lambda: Heatsched.ready(port), timeout, "placement service ready (/readyz)", placement)
