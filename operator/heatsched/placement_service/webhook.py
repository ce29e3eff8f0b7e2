"""Serve the residency webhook (admission/server.py) from the placement service, with TLS, and keep its
configuration.

Why here: the webhook reads node countries and namespaces from the placement service's watched view
(ClusterView). Its checks and its wire format live in heatsched.admission; this module only wires them: the
certificate (given, e.g. by cert-manager, or self-signed and kept in the directory), the lookups against the API
(each with a timeout, off the event loop) and the ValidatingWebhookConfiguration (admission/configuration.py).
The pod path itself needs no webhook: kube-apiserver's admission policies (admission/policies.py) hold it.
"""

from __future__ import annotations

import base64
import logging
import ssl
import tempfile
from pathlib import Path
from typing import Any

import orjson
import urllib3
from aiohttp import web
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from heatsched.admission.configuration import CONFIG_NAME, webhook_configuration
from heatsched.admission.server import LOOKUP_TIMEOUT_S, LookupError_, Lookups, make_app
from heatsched.kube import API_TIMEOUT_S, blocking, call
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


def lookups(view: ClusterView, core: client.CoreV1Api) -> Lookups:
    """The webhook's reads: node countries and namespaces from the watched view, the rest from the API."""
    storage = client.StorageV1Api(core.api_client)

    async def node_country(name: str) -> str | None:
        """From the watched view; a node it has not seen yet (just after a restart) is read: its protected
        country label is what kube-scheduler's node affinity matches too."""
        known = view.snapshot.nodes.get(name)
        if known is not None:
            return known.country if not known.conflict else None
        node = await raw(f"node {name}", core.read_node, name)
        labels = ((node or {}).get("metadata") or {}).get("labels") or {}
        country: str | None = labels.get(COUNTRY_LABEL)
        return country

    async def raw(what: str, fn: Any, *args: Any) -> dict[str, Any] | None:
        try:
            resp = await call(fn, *args, _request_timeout=LOOKUP_TIMEOUT_S, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise LookupError_(f"cannot read {what}: {exc.status} {exc.reason}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # timeouts and connection errors
            raise LookupError_(f"cannot read {what}: {type(exc).__name__}") from None
        data: dict[str, Any] = orjson.loads(resp.data)
        return data

    async def namespace_annotations(namespace: str) -> dict[str, str]:
        cached = view.namespace_annotations(namespace)
        if cached is not None:
            return dict(cached)
        ns = await raw(f"namespace {namespace}", core.read_namespace, namespace)
        if ns is None:
            raise LookupError_(f"namespace {namespace} does not exist")
        return dict((ns.get("metadata") or {}).get("annotations") or {})

    async def read(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        if kind == "pod":
            return await raw(f"pod {namespace}/{name}", core.read_namespaced_pod, name, namespace)
        if kind == "claim":
            return await raw(f"persistentvolumeclaim {namespace}/{name}",
                             core.read_namespaced_persistent_volume_claim, name, namespace)
        if kind == "volume":
            return await raw(f"persistentvolume {name}", core.read_persistent_volume, name)
        raise ValueError(kind)

    async def classes() -> list[dict[str, Any]]:
        listed = await raw("storageclasses", storage.list_storage_class)
        return list((listed or {}).get("items") or [])

    return Lookups(node_country, namespace_annotations, read, classes)


def _apply_configuration(api: client.ApiClient, body: dict[str, Any]) -> None:
    adm: Any = client.AdmissionregistrationV1Api(api)  # takes the plain dict body at runtime
    try:
        current = adm.read_validating_webhook_configuration(CONFIG_NAME, _request_timeout=API_TIMEOUT_S)
        body = {**body, "metadata": {**body["metadata"], "resourceVersion": current.metadata.resource_version}}
        adm.replace_validating_webhook_configuration(CONFIG_NAME, body, _request_timeout=API_TIMEOUT_S)
    except ApiException as exc:
        if exc.status != 404:
            raise
        adm.create_validating_webhook_configuration(body, _request_timeout=API_TIMEOUT_S)
    try:  # releases before the admission policies had a mutating webhook: it would now shadow the policies
        adm.delete_mutating_webhook_configuration(CONFIG_NAME, _request_timeout=API_TIMEOUT_S)
        log.info("deleted the old MutatingWebhookConfiguration %s (the admission policies replace it)", CONFIG_NAME)
    except ApiException as exc:
        if exc.status != 404:
            raise


async def start(cfg: PlacementConfig, view: ClusterView, core: client.CoreV1Api,
                metrics: AdmissionMetrics | None = None) -> web.AppRunner:
    """Serve the webhook on cfg.webhook_host:port (TLS) and point the configuration at it."""
    cafile, certfile, keyfile = certificate(cfg)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(str(certfile), str(keyfile))
    runner = web.AppRunner(make_app(lookups(view, core), metrics=metrics), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, cfg.webhook_host, cfg.webhook_port, ssl_context=tls).start()
    public = cfg.webhook_public_host or cfg.webhook_host
    ca_bundle = base64.b64encode(cafile.read_bytes()).decode()
    url = cfg.webhook_url or f"https://{public}:{cfg.webhook_port}"
    if cfg.manage_webhook_configs:
        body = webhook_configuration({"url": url, "caBundle": ca_bundle}, cfg.trusted_binders)
        await blocking(_apply_configuration, core.api_client, body)
        log.info("webhook configuration %s points at %s", CONFIG_NAME, url)
    return runner
