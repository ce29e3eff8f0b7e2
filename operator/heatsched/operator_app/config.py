"""Operator settings, passed as one object (kopf memo) instead of globals, so tests and the CLI can run
several differently-configured operators."""

from __future__ import annotations

from dataclasses import dataclass

DRIFT_POLICIES = ("flag", "evict")


@dataclass(frozen=True)
class OperatorConfig:
    prometheus_url: str = "http://127.0.0.1:9090"
    prometheus_timeout_s: float = 3.0
    prometheus_verify: bool | str = True  # TLS: system CAs, a CA bundle path, or False (explicitly insecure)
    extender_host: str = "127.0.0.1"
    extender_port: int = 8888  # 0 disables the extender server
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 0  # 0 disables the admission webhook
    webhook_public_host: str | None = None  # name/IP the apiserver uses to reach the webhook (cert SAN)
    webhook_cert_dir: str | None = None  # tls.crt/tls.key (e.g. a cert-manager Secret); None: self-signed
    webhook_url: str | None = None  # when set (in-cluster Service), the caBundle comes from webhook_cert_dir
    manage_webhook_configs: bool = True  # create/refresh the ValidatingWebhookConfiguration heatsched.io
    trusted_binders: tuple[str, ...] = ("system:kube-scheduler",)  # their pods/binding skip the webhook
    drift_policy: str = "flag"  # flag | evict: resident pods whose node left their residency
    audit_interval_s: float = 300.0  # the periodic residency audit behind heatsched_residency_audit_findings
    status_heartbeat_s: float = 60.0  # rewrite status at least this often (keeps readingTime honest)
    temperature_step_k: float = 0.2  # smaller temperature changes alone do not patch status
    demand_refresh_s: float = 30.0
    max_heat_wait_s: float = 600.0  # heat alone keeps a pod off hot nodes at most this long (0: never)
    annotate_placements: bool = True  # heatsched.io/placement on bound heat-aware pods (one PATCH per pod)
    fuel: bool = True  # run heat fuel where a HeatSite asks for it (False: delete every fuel pod)
