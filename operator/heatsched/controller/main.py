"""Wire the controller process together and run it: `heatsched controller`.

The controller is the one writer (HeatSite and ThermalDemand status, protected node labels, heat fuel pods) and
the one reader of Prometheus. kopf's handlers fill the Store; nothing here answers scheduling or admission
requests (that is `heatsched placement`). Several replicas may run: each waits for the Lease (leader.py) before
kopf starts, so exactly one is active; /metrics and /healthz are served by standbys too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from pathlib import Path
from typing import Any

import kopf
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from heatsched.controller import audit_loop, handlers
from heatsched.controller.config import OperatorConfig
from heatsched.controller.handlers import Operator
from heatsched.controller.leader import Leader
from heatsched.controller.metrics import LeaderCollector
from heatsched.controller.metrics import registry as metrics_registry
from heatsched.kubeapi import KubeApi
from heatsched.telemetry.prometheus import PrometheusSource

log = logging.getLogger("heatsched.controller")
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def build_registry(cfg: OperatorConfig) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def operator_login(**kwargs: Any) -> Any:
        # KUBECONFIG is read at call time here (run() sets it from --kubeconfig); in-cluster, else ~/.kube/config
        # otherwise: the order heatsched.kubeapi uses, and kopf's own readers, not the kubernetes client's
        if os.environ.get("KUBECONFIG"):
            return kopf.login_with_kubeconfig(**kwargs)
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    async def operator_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
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
        # no worker limit (settings.batching.worker_limit stays None): each object's worker holds its slot for
        # idle_timeout after its last event, so a limit of N caps event handling near N / idle_timeout objects
        # per second (64 slots: 10 000 pods took 742 s and 533 MiB; unlimited: 37 s and 171 MiB,
        # benchmarks/bench_operator_memory.py). The threads below only run sync handlers (the login).
        settings.execution.max_workers = 8
        op: Operator = memo.operator
        memo.pod_watch = op.watch_pods()  # async client: the watch runs on this loop (heatsched.watch)
        if cfg.audit_interval_s > 0:
            memo.audit_task = asyncio.create_task(audit_loop.run(op.store, op.kube, cfg.audit_interval_s))

    @kopf.on.cleanup(registry=registry)
    async def operator_cleanup(memo: kopf.Memo, **_: Any) -> None:
        task = getattr(memo, "audit_task", None)
        if task is not None:
            task.cancel()
        watch = getattr(memo, "pod_watch", None)
        if watch is not None:
            watch.stop()

    handlers.register(registry)
    return registry


def _in_cluster_namespace() -> str:
    try:
        return Path(SERVICE_ACCOUNT_NAMESPACE).read_text().strip() or "default"
    except OSError:
        return "default"


async def _serve(cfg: OperatorConfig, op: Operator, leader: Leader | None) -> web.AppRunner | None:
    """/metrics and /healthz (liveness) on cfg.metrics_port; a standby serves them too."""
    if not cfg.metrics_port:
        return None
    registry = metrics_registry(op.store)
    registry.register(LeaderCollector(leader, op))

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "leading": leader is None or leader.leading})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, cfg.metrics_host, cfg.metrics_port).start()
    return runner


async def _main(cfg: OperatorConfig, kube: KubeApi) -> int:
    op = Operator(cfg, PrometheusSource(cfg.prometheus_url, timeout_s=cfg.prometheus_timeout_s,
                                        verify=cfg.prometheus_verify), kube)
    leader = None
    if cfg.leader_election:
        identity = f"{socket.gethostname()}-{os.getpid()}"
        leader = Leader(kube, cfg.leader_election_namespace or _in_cluster_namespace(), cfg.leader_election_lease,
                        identity)
    runner = await _serve(cfg, op, leader)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if leader is not None:
            acquired = asyncio.create_task(leader.acquire())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({acquired, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not acquired.done():
                acquired.cancel()
                return 0
            stopping.cancel()
        tasks = {asyncio.create_task(kopf.operator(registry=build_registry(cfg), memo=kopf.Memo(operator=op),
                                                   clusterwide=True, standalone=True, stop_flag=stop))}
        holder = asyncio.create_task(leader.hold()) if leader is not None else None
        if holder is not None:
            tasks.add(holder)
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if holder is not None and holder in done:
            log.error("lost the lease: stopping before another controller starts writing")
            return 1  # asyncio.run cancels kopf; the Deployment restarts this replica as a standby
        if holder is not None:
            holder.cancel()
        return 0
    finally:
        if leader is not None:
            await leader.release()
        if runner is not None:
            await runner.cleanup()
        await kube.close()


def run(cfg: OperatorConfig, kubeconfig_path: str | None = None) -> int:
    if kubeconfig_path:
        os.environ["KUBECONFIG"] = kubeconfig_path  # kopf's own login reads it too
    return asyncio.run(_main(cfg, KubeApi.connect(kubeconfig_path)))
