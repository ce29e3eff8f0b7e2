"""A real Prometheus server on loopback, scraping the targets it is given.

Why not a fake: the operator's telemetry path (PromQL through prometheus-api-client, staleness, several
series, NaN) is exactly what breaks in production, so e2e and the demo scrape with the real thing.
`stop()` and `start()` can be called again on the same object (e2e stops Prometheus to prove the operator
falls back to Unknown and recovers); the TSDB lives in the work dir and survives a restart.
"""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import yaml

from heatsched.cluster.procs import Service, free_port, log_tail
from heatsched.cluster.toolchain import Toolchain


@dataclass
class PrometheusServer:
    workdir: Path
    targets: dict[str, list[str]]  # job name -> ["127.0.0.1:port", ...]
    scrape_interval: str = "1s"
    port: int = 0
    service: Service | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Self:
        binary = str(Toolchain.discover().path("prometheus"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        config = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": list(targets)}]}
                for job, targets in self.targets.items()
            ],
        }
        cfg = self.workdir / "prometheus.yml"
        cfg.write_text(yaml.safe_dump(config))
        self.service = Service("prometheus", [
            binary, f"--config.file={cfg}", f"--storage.tsdb.path={self.workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
        ], self.workdir / "prometheus.log").start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.service.check()
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"prometheus not ready on {self.url}; log tail:\n{log_tail(self.service.log)}")

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
            self.service = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
