"""Controller settings, passed as one object (kopf memo) instead of globals, so tests and the CLI can run
several differently-configured operators."""

from __future__ import annotations

EVENT_COMPONENT = "heatsched-controller"  # the source of the controller's Events (fuel, residency drift)

from dataclasses import dataclass

DRIFT_POLICIES = ("flag", "evict")


@dataclass(frozen=True)
class OperatorConfig:
    prometheus_url: str = "http://127.0.0.1:9090"
    prometheus_timeout_s: float = 3.0
    prometheus_verify: bool | str = True  # TLS: system CAs, a CA bundle path, or False (explicitly insecure)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 8080  # /metrics and /healthz (0 disables them)
    leader_election: bool = True  # wait for the Lease before acting (exactly one active replica)
    leader_election_namespace: str | None = None  # None: the pod's namespace in-cluster, else "default"
    leader_election_lease: str = "heatsched-controller"
    drift_policy: str = "flag"  # flag | evict: resident pods whose node left their residency
    audit_interval_s: float = 300.0  # the periodic residency audit behind heatsched_residency_audit_findings
    status_heartbeat_s: float = 60.0  # rewrite status at least this often (keeps readingTime honest)
    temperature_step_k: float = 0.2  # smaller temperature changes alone do not patch status
    fuel: bool = True  # run heat fuel where a HeatSite asks for it (False: delete every fuel pod)
