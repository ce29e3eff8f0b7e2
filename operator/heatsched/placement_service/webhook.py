"""Serve the residency webhook (admission/server.py) from the placement service, with TLS, and keep its
configuration.

Why here: the webhook reads node countries and namespaces from the placement service's watched view
(ClusterView). Its checks and its wire format live in heatsched.admission; this module only wires them: the
certificate (given, e.g. by cert-manager, or self-signed and kept in the directory), the lookups against the API
(each with a timeout, through the async KubeApi) and the ValidatingWebhookConfiguration (admission/configuration.py).
The pod path itself needs no webhook: kube-apiserver's admission policies (admission/policies.py) hold it.
"""

from __future__ import annotations

import base64
import logging
import ssl
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from heatsched.admission.configuration import CONFIG_NAME, webhook_configuration
from heatsched.admission.server import LOOKUP_TIMEOUT_S, LookupError_, Lookups, make_app
from heatsched.kubeapi import ApiError, KubeApi, path
from heatsched.metrics import AdmissionMetrics
from heatsched.placement.model import COUNTRY_LABEL
from heatsched.placement_service.config import PlacementConfig
from heatsched.placement_service.view import ClusterView

log = logging.getLogger("heatsched.webhook")


def certificate(cfg: PlacementConfig) -> tuple[Path, Path, Path]:
    """(ca, cert, key): the files in cfg.webhook_cert_dir, or a self-signed set made there once."""
    from heatsched.tls import serving_certificate

    public = cfg.webhook_public_host or cfg.webhook_host
    directory = Path(cfg.webhook_cert_dir or tempfile.mkdtemp(prefix="heatsched-webhook-"))
    cafile, certfile, keyfile = directory / "ca.crt", directory / "tls.crt", directory / "tls.key"
    if not certfile.exists():  # no certificate given: make one (kept in the dir, so restarts reuse it)
        directory.mkdir(parents=True, exist_ok=True)
        ca, cert, key = serving_certificate((public, cfg.webhook_host, "localhost"), common_name=public)
        cafile.write_bytes(ca)
        certfile.write_bytes(cert + ca)
        keyfile.write_bytes(key)
        keyfile.chmod(0o600)
    if not cafile.exists():  # a cert-manager style Secret without ca.crt: trust the chain itself
        cafile = certfile
    return cafile, certfile, keyfile


def lookups(view: ClusterView, api: KubeApi) -> Lookups:
    """The webhook's reads: node countries and namespaces from the watched view, the rest from the API."""

    async def node_country(name: str) -> str | None:
        """From the watched view; a node it has not seen yet (just after a restart) is read: its protected
        country label is what kube-scheduler's node affinity matches too."""
        known = view.snapshot.nodes.get(name)
        if known is not None:
            return known.country if not known.conflict else None
        node = await raw(f"node {name}", path("", "v1", "nodes", name))
        labels = ((node or {}).get("metadata") or {}).get("labels") or {}
        country: str | None = labels.get(COUNTRY_LABEL)
        return country

    async def raw(what: str, url: str) -> dict[str, Any] | None:
        try:
            return await api.get_or_none(url, timeout_s=LOOKUP_TIMEOUT_S)
        except ApiError as exc:
            raise LookupError_(f"cannot read {what}: {exc.status} {exc.reason}") from None
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:  # timeouts, connections, bad JSON
            raise LookupError_(f"cannot read {what}: {type(exc).__name__}") from None

    async def namespace_annotations(namespace: str) -> dict[str, str]:
        cached = view.namespace_annotations(namespace)
        if cached is not None:
            return dict(cached)
        ns = await raw(f"namespace {namespace}", path("", "v1", "namespaces", namespace))
        if ns is None:
            raise LookupError_(f"namespace {namespace} does not exist")
        return dict((ns.get("metadata") or {}).get("annotations") or {})

    async def read(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        if kind == "pod":
            return await raw(f"pod {namespace}/{name}", path("", "v1", "pods", name, namespace=namespace))
        if kind == "claim":
            return await raw(f"persistentvolumeclaim {namespace}/{name}",
                             path("", "v1", "persistentvolumeclaims", name, namespace=namespace))
        if kind == "volume":
            return await raw(f"persistentvolume {name}", path("", "v1", "persistentvolumes", name))
        raise ValueError(kind)

    async def classes() -> list[dict[str, Any]]:
        listed = await raw("storageclasses", path("storage.k8s.io", "v1", "storageclasses"))
        return list((listed or {}).get("items") or [])

    return Lookups(node_country, namespace_annotations, read, classes)


WEBHOOK_CONFIGS = "admissionregistration.k8s.io", "v1"


async def apply_configuration(api: KubeApi, body: dict[str, Any]) -> None:
    """Create or replace the ValidatingWebhookConfiguration, and delete the mutating one older releases made."""
    url = path(*WEBHOOK_CONFIGS, "validatingwebhookconfigurations", CONFIG_NAME)
    current = await api.get_or_none(url)
    if current is None:
        await api.post(path(*WEBHOOK_CONFIGS, "validatingwebhookconfigurations"), body)
    else:
        version = (current.get("metadata") or {}).get("resourceVersion")
        await api.put(url, {**body, "metadata": {**body["metadata"], "resourceVersion": version}})
    try:  # releases before the admission policies had a mutating webhook: it would now shadow the policies
        await api.delete(path(*WEBHOOK_CONFIGS, "mutatingwebhookconfigurations", CONFIG_NAME))
        log.info("deleted the old MutatingWebhookConfiguration %s (the admission policies replace it)", CONFIG_NAME)
    except ApiError as exc:
        if exc.status != 404:
            raise


async def start(cfg: PlacementConfig, view: ClusterView, api: KubeApi,
                metrics: AdmissionMetrics | None = None) -> web.AppRunner:
    """Serve the webhook on cfg.webhook_host:port (TLS) and point the configuration at it."""
    cafile, certfile, keyfile = certificate(cfg)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(str(certfile), str(keyfile))
    runner = web.AppRunner(make_app(lookups(view, api), metrics=metrics), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, cfg.webhook_host, cfg.webhook_port, ssl_context=tls).start()
    public = cfg.webhook_public_host or cfg.webhook_host
    ca_bundle = base64.b64encode(cafile.read_bytes()).decode()
    url = cfg.webhook_url or f"https://{public}:{cfg.webhook_port}"
    if cfg.manage_webhook_configs:
        body = webhook_configuration({"url": url, "caBundle": ca_bundle}, cfg.trusted_binders)
        await apply_configuration(api, body)
        log.info("webhook configuration %s points at %s", CONFIG_NAME, url)
    return runner
