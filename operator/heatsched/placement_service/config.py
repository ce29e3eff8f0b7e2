"""Settings of `heatsched placement`, passed as one object (no globals)."""

from __future__ import annotations

from dataclasses import dataclass

from heatsched.admission.configuration import DEFAULT_TRUSTED_BINDERS


@dataclass(frozen=True)
class PlacementConfig:
    extender_host: str = "127.0.0.1"
    extender_port: int = 8888  # extender, /metrics, /healthz, /readyz, /explain
    extender_cert_dir: str | None = None  # tls.crt/tls.key: serve the extender port over TLS (kube-scheduler tlsConfig)
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 0  # 0 disables the residency webhook
    webhook_public_host: str | None = None  # name/IP the apiserver uses to reach the webhook (cert SAN)
    webhook_cert_dir: str | None = None  # tls.crt/tls.key (e.g. a cert-manager Secret); None: self-signed
    webhook_url: str | None = None  # when set (in-cluster Service), the caBundle comes from webhook_cert_dir
    manage_webhook_configs: bool = True  # create/refresh the ValidatingWebhookConfiguration heatsched.io
    trusted_binders: tuple[str, ...] = DEFAULT_TRUSTED_BINDERS  # their pods/binding skip the webhook
    max_heat_wait_s: float = 600.0  # heat alone keeps a pod off hot nodes at most this long (0: never)
    annotate_placements: bool = False  # opt-in: heatsched.io/placement on pods it scored, off the request path
    placement_events: bool = False  # opt-in: a Normal Event HeatAwarePlacement per pod it scored (durable trace)
    refresh_s: float = 1.0  # how often site views are re-evaluated (readings age)
