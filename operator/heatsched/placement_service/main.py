"""`heatsched placement`: the scheduler extender and the residency webhook, stateless, N replicas.

Why a process of its own: the extender and the webhook are in the path of every scheduling decision and every
resident pod with a preset node; they must not wait behind the controller's event loop, nor stop while it
restarts or fails over. This process has no kopf, never reads Prometheus and never writes to the API in a
request: its state is list+watch of HeatSites (with the status the controller writes), Nodes, Namespaces and
Pods (watch.py), applied to a ClusterView (view.py). It talks to the API through heatsched.kubeapi (async REST on
aiohttp), never the kubernetes client: importing that client alone costs about 85 MiB, more than half of the 150 MiB
a replica may use.

Endpoints on --extender-port (plain HTTP; the chart's NetworkPolicy lets only the heat-aware scheduler in):
  POST /scheduler/filter, /scheduler/prioritize   the extender (extender/server.py)
  GET  /healthz   liveness: the process answers
  GET  /readyz    readiness: 200 once every initial list is in (and its garbage collected and frozen), 503
                  before (a replica that has not synced would call every node of unknown country: residency
                  would fail closed for all resident pods)
  GET  /metrics   Prometheus
  GET  /explain/{namespace}/{name}   why a pod this replica scored landed where it did (explain.py)
On --webhook-port (TLS): the residency webhook (admission/server.py).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
import ssl
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from heatsched.admission.policies import HEAT_AWARE
from heatsched.extender.server import make_app
from heatsched.extender.wire import TERMINATED_PHASES, pod_cpu
from heatsched.kubeapi import ApiError, KubeApi, path, post_event
from heatsched.metrics import AdmissionMetrics, ExtenderMetrics
from heatsched.models import GROUP, HEATSITE_PLURAL, VERSION
from heatsched.placement_service import webhook
from heatsched.placement_service.config import PlacementConfig
from heatsched.placement_service.explain import PLACEMENT_ANNOTATION, Explanations, explain_line
from heatsched.placement_service.view import ClusterView
from heatsched.watch import Watch

log = logging.getLogger("heatsched.placement")
HEATSITES = (GROUP, VERSION, HEATSITE_PLURAL)
# Only bound, unfinished pods: the view charges and explains a pod when it is first seen bound, so pending pods'
# events (a third of a scheduling burst's) are not even sent. A pod that binds arrives as ADDED, one that
# finishes as DELETED.
BOUND_PODS = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"


class _CacheCollector(Collector):
    def __init__(self, service: PlacementService) -> None:
        self.service = service

    def collect(self) -> Any:
        synced = GaugeMetricFamily("heatsched_cache_synced", "1 once the initial list of a watched resource is in",
                                   labels=["resource"])
        age = GaugeMetricFamily("heatsched_cache_last_event_age_seconds",
                                "Seconds since the last list, event or bookmark of a watched resource",
                                labels=["resource"])
        now = time.monotonic()
        for w in self.service.watches:
            synced.add_metric([w.what], 1.0 if w.synced else 0.0)
            if w.last_event:
                age.add_metric([w.what], now - w.last_event)
        yield synced
        yield age


class PlacementService:
    def __init__(self, cfg: PlacementConfig, api: KubeApi, *, clock: Any = time.time) -> None:
        self.cfg, self.api = cfg, api
        self.view = ClusterView(clock=clock)
        self.explanations = Explanations()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_CacheCollector(self))
        self.watches: list[Watch] = []
        self.frozen = False  # freeze_when_synced has run
        self.placements = Counter("heatsched_placements_total", "Heat-aware pods this replica scored and then saw "
                                  "bound, by site ('' outside every site) and the site's state then",
                                  ["site", "state"], registry=self.registry)
        self._writes: asyncio.Queue[tuple[str, str, dict[str, Any]]] = asyncio.Queue(maxsize=10_000)

    # ---- watch events ----------------------------------------------------------------------------------
    def _site(self, key: str, obj: dict[str, Any] | None) -> None:
        if obj is None:
            self.view.delete_site(key)
        else:
            self.view.set_site(obj)

    def _node(self, key: str, labels: dict[str, str] | None) -> None:
        if labels is None:
            self.view.delete_node(key)
        else:
            self.view.set_node(key, labels)

    def _pod(self, pods: Watch, key: str, value: tuple[str, str, str | None, dict[str, Any], str] | None) -> None:
        if value is None:
            self.view.set_pod(key, None, 0.0)
            self.explanations.scored.pop(key, None)
            return
        namespace, name, node, spec, scheduler = value
        if node is None:
            self.view.set_pod(key, None, 0.0)
            return
        if key in self.view.pods:  # already charged: later events (status, conditions) change nothing here
            return
        self.view.set_pod(key, node, pod_cpu(spec), charge=pods.synced)  # CPU parsed once per pod
        if pods.synced and scheduler == HEAT_AWARE:
            record = self.explanations.bound(key, f"{namespace}/{name}", node, self.view.snapshot)
            self.placements.labels(record.get("site") or "", record.get("state") or "").inc()
            if self.cfg.annotate_placements or self.cfg.placement_events:
                try:
                    self._writes.put_nowait((namespace, name, record))
                except asyncio.QueueFull:
                    log.warning("placement annotation queue full: %s/%s not annotated", namespace, name)

    @staticmethod
    def _pod_extract(obj: dict[str, Any]) -> tuple[str, tuple[str, str, str | None, dict[str, Any], str]]:
        meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
        node = spec.get("nodeName") if status.get("phase") not in TERMINATED_PHASES else None
        return str(meta.get("uid") or ""), (meta.get("namespace") or "", meta.get("name") or "", node, spec,
                                            spec.get("schedulerName") or "")

    def start_watches(self) -> None:
        def name(obj: dict[str, Any]) -> str:
            return str((obj.get("metadata") or {}).get("name") or "")

        self.watches = [
            Watch("heatsites", self.api, path(*HEATSITES), lambda o: (name(o), o), self._site),
            Watch("nodes", self.api, path("", "v1", "nodes"),
                  lambda o: (name(o), dict((o.get("metadata") or {}).get("labels") or {})), self._node),
            Watch("namespaces", self.api, path("", "v1", "namespaces"),
                  lambda o: (name(o), dict((o.get("metadata") or {}).get("annotations") or {})),
                  self.view.set_namespace),
        ]
        pods = Watch("pods", self.api, path("", "v1", "pods"), self._pod_extract,
                     lambda k, v: self._pod(pods, k, v), field_selector=BOUND_PODS)
        self.watches.append(pods)
        for w in self.watches:
            w.start()

    @property
    def synced(self) -> bool:
        return bool(self.watches) and all(w.synced for w in self.watches)

    @property
    def ready(self) -> bool:
        return self.synced and self.frozen

    async def freeze_when_synced(self, poll_s: float = 0.05) -> None:
        """Once every initial list is in: collect the start-up garbage, then gc.freeze() what is left.

        Why: a full (generation 2) collection walks every tracked object; after the start-up (modules, the
        initial lists) one took 117-128 ms in a replica at 1 000 nodes and 10 000 pods, and an extender call
        arriving meanwhile waited that long (docs/benchmarks.md, benchmarks/bench_gc.py). Frozen objects are
        never walked again; what the watches add later is few tracked objects (a pod is kept as plain strings
        and floats). Done before the replica reports ready, so no request waits for this one collection."""
        while not self.synced:
            await asyncio.sleep(poll_s)
        gc.collect()
        gc.freeze()
        self.frozen = True
        log.info("watches synced; %d objects frozen out of the collector's walks", gc.get_freeze_count())

    # ---- background work (never in a request) --------------------------------------------------------
    async def refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.refresh_s)
            self.view.refresh()

    async def annotate_loop(self) -> None:
        """Writes what --annotate-placements and --placement-events ask for, one pod at a time, off the request
        path (a queue of at most 10 000; when it is full a record is only served at /explain)."""
        while True:
            namespace, name, record = await self._writes.get()
            if self.cfg.placement_events:
                pod = {"apiVersion": "v1", "kind": "Pod", "name": name, "namespace": namespace}
                await post_event(self.api, namespace, pod, "HeatAwarePlacement", explain_line(record),
                                 name_prefix=f"{name}.placement.", component="heatsched-placement")
            if not self.cfg.annotate_placements:
                continue
            body = {"metadata": {"annotations": {PLACEMENT_ANNOTATION: json.dumps(record, ensure_ascii=False)}}}
            try:
                await self.api.merge_patch(path("", "v1", "pods", name, namespace=namespace), body)
            except ApiError as exc:
                if exc.status != 404:
                    log.warning("cannot annotate pod %s/%s: %s", namespace, name, exc.reason)
            except Exception as exc:  # noqa: BLE001 - a timeout: the record stays served at /explain
                log.warning("cannot annotate pod %s/%s: %s", namespace, name, type(exc).__name__)

    # ---- HTTP -------------------------------------------------------------------------------------------
    def extender_app(self) -> web.Application:
        app = make_app(lambda: self.view.snapshot, on_scored=self.explanations.remember_scores,
                       on_filtered=self.explanations.remember_relaxed, max_heat_wait_s=self.cfg.max_heat_wait_s,
                       namespace_annotations=self.view.namespace_annotations,
                       metrics=ExtenderMetrics(self.registry))

        async def readyz(_: web.Request) -> web.Response:
            if self.ready:
                return web.json_response({"status": "ready"})
            waiting = [w.what for w in self.watches if not w.synced] or (
                ["garbage collection"] if self.watches else ["watches"])
            return web.json_response({"status": "syncing", "waiting for": waiting}, status=503)

        async def metrics(_: web.Request) -> web.Response:
            return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def explain(request: web.Request) -> web.Response:
            ref = f"{request.match_info['namespace']}/{request.match_info['name']}"
            record = self.explanations.placed.get(ref)
            if record is None:
                return web.json_response({"error": f"no placement record for {ref} on this replica"}, status=404)
            return web.json_response(record)

        app.router.add_get("/readyz", readyz)
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/explain/{namespace}/{name}", explain)
        return app

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.start_watches()
        runners = []
        tasks = [asyncio.create_task(self.refresh_loop()), asyncio.create_task(self.annotate_loop()),
                 asyncio.create_task(self.freeze_when_synced())]
        try:
            runner = web.AppRunner(self.extender_app(), access_log=None)
            await runner.setup()
            tls = None
            if self.cfg.extender_cert_dir:
                tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                tls.load_cert_chain(str(Path(self.cfg.extender_cert_dir) / "tls.crt"),
                                    str(Path(self.cfg.extender_cert_dir) / "tls.key"))
            await web.TCPSite(runner, self.cfg.extender_host, self.cfg.extender_port, ssl_context=tls).start()
            runners.append(runner)
            log.info("extender listening on %s://%s:%d/scheduler", "https" if tls else "http", self.cfg.extender_host,
                     self.cfg.extender_port)
            if self.cfg.webhook_port:
                runners.append(await webhook.start(self.cfg, self.view, self.api, AdmissionMetrics(self.registry)))
                log.info("residency webhook listening on https://%s:%d", self.cfg.webhook_host, self.cfg.webhook_port)
            stop = asyncio.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            log.info("stopping")
        finally:
            for t in tasks:
                t.cancel()
            for w in self.watches:
                w.stop()
            for r in runners:
                await r.cleanup()
            await self.api.close()


def run(cfg: PlacementConfig, kubeconfig_path: str | None = None) -> None:
    asyncio.run(PlacementService(cfg, KubeApi.connect(kubeconfig_path)).run())
