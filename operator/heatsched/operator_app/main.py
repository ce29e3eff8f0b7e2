"""Wire the operator process together and run it.

One process, one event loop: kopf's handlers fill the Store, the extender (aiohttp, started at kopf
startup) reads its snapshot, and the residency webhook (aiohttp over TLS, heatsched.admission) checks the
node or volumes of the few requests kube-apiserver's admission policies cannot check alone.
"""

from __future__ import annotations

import asyncio
import logging
import os

import kopf
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from kubernetes import client, config as kubeconfig

from heatsched.extender.server import make_app
from heatsched.metrics import AdmissionMetrics, ExtenderMetrics
from heatsched.operator_app import audit_loop, handlers, webhook
from heatsched.operator_app.config import OperatorConfig
from heatsched.operator_app.handlers import Operator
from heatsched.operator_app.metrics import registry as metrics_registry
from heatsched.telemetry.prometheus import PrometheusSource

log = logging.getLogger("heatsched.operator")


def api_client(kubeconfig_path: str | None) -> client.ApiClient:
    if kubeconfig_path:
        return kubeconfig.new_client_from_config(kubeconfig_path)
    try:
        kubeconfig.load_incluster_config()
    except kubeconfig.ConfigException:
        kubeconfig.load_kube_config()
    return client.ApiClient()


def build_registry(cfg: OperatorConfig) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def operator_login(**kwargs):
        # KUBECONFIG is read at call time here (run() sets it from --kubeconfig); in-cluster otherwise
        if os.environ.get("KUBECONFIG"):
            return kopf.login_with_kubeconfig(**kwargs)
        return kopf.login_with_service_account(**kwargs) or kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def operator_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_):
        settings.persistence.finalizer = "heatsched.io/finalizer"
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="heatsched.io")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="heatsched.io", key="last-handled-configuration")
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300
        # every request kopf makes has a timeout too: watches a little over the server's, the rest 30 s
        settings.watching.client_timeout = 330
        settings.watching.connect_timeout = 10
        settings.networking.connect_timeout = 10
        settings.networking.request_timeout = 30
        # no worker limit: each object's worker holds its slot for idle_timeout after its last event, so a
        # limit of N caps event handling near N / idle_timeout objects per second (64 slots: 10 000 pods took
        # 742 s and 533 MiB; unlimited: 37 s and 171 MiB, benchmarks/bench_operator_memory.py)
        settings.execution.max_workers = 8
        op: Operator = memo.operator
        metrics = metrics_registry(op.store)
        if cfg.extender_port:
            remember = (lambda uid, ref, scores: op.remember_scores(uid, scores)) if cfg.annotate_placements else None
            relaxed = op.remember_relaxed if cfg.annotate_placements else None
            app = make_app(lambda: op.store.snapshot, on_scored=remember, on_filtered=relaxed,
                           max_heat_wait_s=cfg.max_heat_wait_s,
                           namespace_annotations=lambda ns: op.store.namespaces.get(ns, ({}, {}))[0],
                           metrics=ExtenderMetrics(metrics))

            async def serve_metrics(_: web.Request) -> web.Response:
                return web.Response(body=generate_latest(metrics), headers={"Content-Type": CONTENT_TYPE_LATEST})
            app.router.add_get("/metrics", serve_metrics)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, cfg.extender_host, cfg.extender_port).start()
            memo.extender_runner = runner
            log.info("extender listening on http://%s:%d/scheduler", cfg.extender_host, cfg.extender_port)
        if cfg.audit_interval_s > 0:
            memo.audit_task = asyncio.create_task(audit_loop.run(op.store, op.core.api_client, cfg.audit_interval_s))
        if cfg.webhook_port:
            memo.webhook_runner = await webhook.start(cfg, op, AdmissionMetrics(metrics))
            log.info("residency webhook listening on https://%s:%d", cfg.webhook_host, cfg.webhook_port)

    @kopf.on.cleanup(registry=registry)
    async def operator_cleanup(memo: kopf.Memo, **_):
        task = getattr(memo, "audit_task", None)
        if task is not None:
            task.cancel()
        for name in ("extender_runner", "webhook_runner"):
            runner = getattr(memo, name, None)
            if runner is not None:
                await runner.cleanup()

    handlers.register(registry)
    return registry


def run(cfg: OperatorConfig, kubeconfig_path: str | None = None) -> None:
    if kubeconfig_path:
        os.environ["KUBECONFIG"] = kubeconfig_path  # kopf's own login reads it too
    api = api_client(kubeconfig_path)
    op = Operator(cfg, PrometheusSource(cfg.prometheus_url, timeout_s=cfg.prometheus_timeout_s,
                                           verify=cfg.prometheus_verify), api)
    registry = build_registry(cfg)
    asyncio.run(kopf.operator(registry=registry, memo=kopf.Memo(operator=op), clusterwide=True,
                              standalone=True))
