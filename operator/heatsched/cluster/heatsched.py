"""heatsched's two processes as local subprocesses: one start-up for the e2e stack, the demo and the benchmarks.

Why one: each of them used to spell out the same argv, ports and readiness checks. Here `controller()` and
`placement()` build and start them, and `wait_leading()` / `wait_ready()` say when each is really usable (the
controller holds its Lease; the placement service's watches are synced: GET /readyz is 200). Dev harness only.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

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

    def wait_leading(self, controller: Service, timeout: float = 60.0) -> None:
        port = controller.port or 0
        _wait(lambda: self.leading(port), timeout, "controller holds the lease", controller)

    def wait_ready(self, placement: Service, timeout: float = 60.0) -> None:
        port = placement.port or 0
        _wait(lambda: self.ready(port), timeout, "placement service ready (/readyz)", placement)
