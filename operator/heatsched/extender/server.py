"""aiohttp application serving kube-scheduler's filter and prioritize verbs from the latest Snapshot.

Why: this is the thin shell around placement.core. It reads the snapshot the operator keeps fresh (a cheap
callable), never Prometheus or the Kubernetes API, so a call costs milliseconds and its answer depends
only on that snapshot and the request.

Endpoints:
  POST /scheduler/filter      ExtenderArgs → ExtenderFilterResult
  POST /scheduler/prioritize  ExtenderArgs → HostPriorityList (scores 0..10)
  GET  /healthz               200 {"status": "ok", "sites": n, "nodes": m}; 503 when no snapshot

Bad input and failures, chosen so residency never fails open:
* malformed JSON, wrong types, a missing Pod, both or neither of Nodes/NodeNames, an oversized body → 400
  with {"error": message}. kube-scheduler treats any non-200 as an extender error.
* an invalid `heatsched.io/residency` annotation → 200, every node in FailedAndUnresolvableNodes with the
  parse message (the pod is unschedulable until fixed; the message shows in its events).
* an unexpected exception in filter → 200 with Error set. kube-scheduler then fails this scheduling
  attempt and retries the pod later, unless the extender is configured `ignorable: true` (heatsched's
  profile is), in which case it skips the extender. Residency still holds then: the admission policy's
  required node affinity is enforced by kube-scheduler itself; this filter is the second lock.
* an unexpected exception in prioritize → 200 with every node at 0 (equal scores change no ranking);
  kube-scheduler ignores prioritize errors anyway.
No path returns 500.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC

from aiohttp import web

from heatsched.extender.wire import (
    Decoded,
    ExtenderArgs,
    WireError,
    decode_args,
    encode_filter_result,
    encode_priorities,
    to_extender_priority,
)
from heatsched.metrics import ExtenderMetrics
from heatsched.placement.core import (
    DEFAULT_PARAMS,
    MAX_HEAT_WAIT_S,
    FilterResult,
    ScoreParams,
    SiteScores,
    filter_nodes,
    score_by_site,
)
from heatsched.placement.model import COUNTRY_LABEL, PodRequest, Snapshot
from heatsched.placement.residency import ResidencyError, effective_residency

log = logging.getLogger(__name__)

MiB = 1024 * 1024
OnScored = Callable[[str, str, SiteScores], None]  # (pod uid, "namespace/name", scores)
OnFiltered = Callable[[str, FilterResult], None]  # (pod uid, result): keeps "heat wait bound used" for explain
JSON = "application/json"


def make_app(
    snapshot: Callable[[], Snapshot],
    *,
    max_body_bytes: int = 8 * MiB,
    on_scored: OnScored | None = None,
    on_filtered: OnFiltered | None = None,
    params: ScoreParams = DEFAULT_PARAMS,
    max_heat_wait_s: float = MAX_HEAT_WAIT_S,
    clock: Callable[[], float] = time.time,
    namespace_annotations: Callable[[str], Mapping[str, str] | None] = lambda namespace: None,
    metrics: ExtenderMetrics | None = None,
) -> web.Application:
    """Build the extender application.

    `snapshot` is called once per request and must be cheap (return the operator's current Snapshot).
    `on_scored` is called synchronously after each prioritize with the scores, and `on_filtered` after a
    filter that took heat-blocked nodes because the pod had waited `max_heat_wait_s` (its age, from its
    creationTimestamp and `clock`), so `explain` can say why; both must be fast, their exceptions are
    logged and swallowed.
    """
    handlers = _Handlers(snapshot, on_scored, params, max_body_bytes, on_filtered, max_heat_wait_s, clock,
                         namespace_annotations, metrics)
    app = web.Application(client_max_size=max_body_bytes)
    app.router.add_post("/scheduler/filter", handlers.filter)
    app.router.add_post("/scheduler/prioritize", handlers.prioritize)
    app.router.add_get("/healthz", handlers.healthz)
    return app


class _Handlers:
    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        on_scored: OnScored | None,
        params: ScoreParams,
        max_body_bytes: int,
        on_filtered: OnFiltered | None = None,
        max_heat_wait_s: float = MAX_HEAT_WAIT_S,
        clock: Callable[[], float] = time.time,
        namespace_annotations: Callable[[str], Mapping[str, str] | None] = lambda namespace: None,
        metrics: ExtenderMetrics | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._on_scored = on_scored
        self._on_filtered = on_filtered
        self._params = params
        self._max = max_body_bytes
        self._max_heat_wait_s = max_heat_wait_s
        self._clock = clock
        self._namespace_annotations = namespace_annotations
        self._metrics = metrics

    async def filter(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            return await self._filter_call(request)
        finally:
            if self._metrics is not None:
                self._metrics.latency.labels("filter").observe(time.perf_counter() - started)

    async def prioritize(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            return await self._prioritize_call(request)
        finally:
            if self._metrics is not None:
                self._metrics.latency.labels("prioritize").observe(time.perf_counter() - started)

    async def _filter_call(self, request: web.Request) -> web.Response:
        decoded = await self._decode(request)
        if isinstance(decoded, web.Response):
            return decoded
        try:
            body = self._filter(decoded)
        except Exception as exc:  # answer, never crash; see module docstring
            log.exception("filter failed")
            body = encode_filter_result(error=f"heatsched extender internal error: {type(exc).__name__}: {exc}")
        return web.Response(body=body, content_type=JSON)

    async def _prioritize_call(self, request: web.Request) -> web.Response:
        decoded = await self._decode(request)
        if isinstance(decoded, web.Response):
            return decoded
        names = decoded.args.candidate_names()
        try:
            scores = self._prioritize(decoded, names)
        except Exception:  # neutral answer; kube-scheduler ignores prioritize errors
            log.exception("prioritize failed")
            scores = [0] * len(names)
        return web.Response(body=encode_priorities(names, scores), content_type=JSON)

    async def healthz(self, request: web.Request) -> web.Response:
        try:
            snap = self._snapshot()
        except Exception as exc:  # noqa: BLE001 - whatever the snapshot callable raises means not ready: 503
            return web.json_response({"status": "no snapshot", "error": str(exc)}, status=503)
        return web.json_response({"status": "ok", "sites": len(snap.sites), "nodes": len(snap.nodes)})

    async def _decode(self, request: web.Request) -> Decoded | web.Response:
        too_big = f"request body over the {self._max} byte limit"
        if request.content_length is not None and request.content_length > self._max:
            self._count_bad(request)
            return _bad_request(too_big)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self._count_bad(request)
            return _bad_request(too_big)
        try:
            return decode_args(body)
        except WireError as exc:
            log.info("bad request on %s: %s", request.path, exc)
            self._count_bad(request)
            return _bad_request(str(exc))

    def _count_bad(self, request: web.Request) -> None:
        if self._metrics is not None:
            self._metrics.bad.labels(request.path.rsplit("/", 1)[-1]).inc()

    def _count_outcomes(self, result: FilterResult) -> None:
        if self._metrics is None:
            return
        nodes = self._metrics.nodes
        nodes.labels("feasible").inc(len(result.feasible))
        nodes.labels("heat").inc(len(result.failed))
        nodes.labels("relaxed").inc(len(result.relaxed))
        nodes.labels("unknown_node").inc(result.unverified)
        nodes.labels("residency").inc(len(result.unresolvable) - result.unverified)

    def _filter(self, decoded: Decoded) -> bytes:
        args = decoded.args
        names = args.candidate_names()
        try:
            pod = _pod_request(args, self._namespace_annotations)
        except ResidencyError as exc:
            reason = str(exc)
            unresolvable = dict.fromkeys(names, reason)
            if self._metrics is not None:
                self._metrics.nodes.labels("residency").inc(len(names))
            if args.cache_capable:
                return encode_filter_result(node_names=[], unresolvable=unresolvable)
            return encode_filter_result(nodes=[], unresolvable=unresolvable)
        reported = None
        if pod.residency is not None and args.nodes is not None:
            reported = {
                n.metadata.name: n.metadata.labels[COUNTRY_LABEL]
                for n in args.nodes.items or ()
                if n.metadata.labels and COUNTRY_LABEL in n.metadata.labels
            }
        created = args.pod.metadata.creationTimestamp
        waited = 0.0 if created is None else self._clock() - (
            created if created.tzinfo else created.replace(tzinfo=UTC)).timestamp()
        result = filter_nodes(pod, names, self._snapshot(), reported_countries=reported, waited_s=waited,
                              max_heat_wait_s=self._max_heat_wait_s)
        self._count_outcomes(result)
        if result.relaxed and self._on_filtered is not None:
            try:
                self._on_filtered(args.pod.metadata.uid, result)
            except Exception:  # a bookkeeping hook must not change the answer
                log.exception("on_filtered hook failed")
        # Reasons only for a pod that fits nowhere: kube-scheduler reads them for its FailedScheduling event and
        # for preemption, neither of which happens when a node passes. Dropping them there saves the heat-aware
        # kube-scheduler decoding a map entry and building a Status per heat-blocked node on every pod.
        failed, unresolvable = ({}, {}) if result.feasible else (result.failed, result.unresolvable)
        if args.cache_capable:
            return encode_filter_result(node_names=result.feasible, failed=failed, unresolvable=unresolvable)
        keep = set(result.feasible)
        items = [raw for name, raw in zip(names, decoded.raw_nodes or (), strict=True) if name in keep]
        return encode_filter_result(nodes=items, failed=failed, unresolvable=unresolvable)

    def _prioritize(self, decoded: Decoded, names: list[str]) -> list[int]:
        args = decoded.args
        try:
            pod = _pod_request(args, self._namespace_annotations)
        except ResidencyError:
            return [0] * len(names)  # filter already made every node unresolvable
        scored = score_by_site(pod, names, self._snapshot(), params=self._params)
        if self._on_scored is not None:
            meta = args.pod.metadata
            try:
                self._on_scored(meta.uid, f"{meta.namespace}/{meta.name}", scored)
            except Exception:  # a bookkeeping hook must not change the answer
                log.exception("on_scored hook failed")
        scale: dict[float, int] = {}  # few distinct scores (about one per site): scale each once
        priorities = []
        for score in scored.scores:
            priority = scale.get(score)
            if priority is None:
                priority = scale[score] = to_extender_priority(score)
            priorities.append(priority)
        return priorities


def _pod_request(args: ExtenderArgs, namespace_annotations: Callable[[str], Mapping[str, str] | None]) -> PodRequest:
    """The core's view of the pod: its residency within its namespace's (the ceiling applies here too, so a
    namespace annotated after its pods were admitted still binds them)."""
    pod = args.pod
    meta = pod.metadata
    namespace = meta.namespace or "default"
    return PodRequest(
        name=meta.name,
        namespace=namespace,
        residency=effective_residency(meta.annotations, namespace_annotations(namespace)),
        cpu_cores=pod.cpu_request(),
    )


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)
