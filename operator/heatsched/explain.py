"""`heatsched explain POD`: why a pod landed where it did, or why it is still Pending.

A bound heat-aware pod's placement record (site, tank temperature, state, score and the score's reason) is
the `heatsched.io/placement` annotation when the placement service writes it (--annotate-placements), else the
service's own memory: `--placement-url` (its extender port, e.g. after
`kubectl -n heatsched-system port-forward svc/heatsched 8888`) GETs /explain/NAMESPACE/POD. A Pending pod is
explained by kube-scheduler's own words (its last FailedScheduling event and PodScheduled condition), which
include the extender's reasons per node.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from typing import Any

from heatsched.placement.residency import RESIDENCY_ANNOTATION
from heatsched.placement_service.explain import PLACEMENT_ANNOTATION

__all__ = ["PLACEMENT_ANNOTATION", "fetch_record", "register", "render"]


def fetch_record(placement_url: str, namespace: str, name: str, timeout: float = 5.0) -> str | None:
    """The placement service's record of a pod (JSON text), or None when it has none (404) or cannot answer."""
    import urllib.error
    import urllib.parse
    import urllib.request

    url = f"{placement_url.rstrip('/')}/explain/{urllib.parse.quote(namespace)}/{urllib.parse.quote(name)}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            text: str = resp.read().decode()
            return text
    except (urllib.error.URLError, OSError):
        return None


def render(pod: Any, events: Iterable[Any], record: str | None = None) -> str:
    """Plain text for a pod (kubernetes client V1Pod) and its events, newest last; `record` is the placement
    record from the placement service when the pod has no annotation."""
    meta, spec, status = pod.metadata, pod.spec, pod.status
    annotations = meta.annotations or {}
    lines = [f"pod {meta.namespace}/{meta.name}: {status.phase}",
             f"  scheduler: {spec.scheduler_name}",
             f"  residency: {annotations.get(RESIDENCY_ANNOTATION, 'unrestricted')}"]
    if spec.node_name:
        lines.append(f"  node: {spec.node_name}")
        raw = annotations.get(PLACEMENT_ANNOTATION) or record
        if raw:
            try:
                p = json.loads(raw)
            except ValueError:
                p = {"why": raw}
            tank = p.get("tankCelsius")
            lines.append(f"  site: {p.get('site') or '-'} ({p.get('country') or '?'}), tank "
                         f"{'unknown' if tank is None else f'{tank:.1f} °C'}, state {p.get('state', '?')}")
            if p.get("score") is not None:
                lines.append(f"  score: {p['score']:.2f} (best of {p.get('candidates', '?')} nodes: {p.get('best')})")
            if p.get("why"):
                lines.append(f"  why: {p['why']}")
            if p.get("heatWaitBound"):
                lines.append(f"  heat wait bound used: {p['heatWaitBound']}")
        else:
            lines.append("  no heatsched placement record (not scheduled by the heat-aware profile, no annotation "
                         "(--annotate-placements is off) and no --placement-url that knows it)")
        return "\n".join(lines)
    failed = [e for e in events if e.reason == "FailedScheduling"]
    condition = next((c for c in status.conditions or [] if c.type == "PodScheduled"), None)
    if failed:
        lines.append(f"  not scheduled: {failed[-1].message}")
    elif condition is not None and condition.message:
        lines.append(f"  not scheduled: {condition.message}")
    else:
        lines.append("  not scheduled yet (no scheduling attempt recorded)")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from heatsched.kube import api_client

    core = client.CoreV1Api(api_client(args.kubeconfig))  # every call with a timeout
    try:
        pod: Any = core.read_namespaced_pod(args.pod, args.namespace)  # the models type every field Optional
    except ApiException as exc:
        print(f"cannot read pod {args.namespace}/{args.pod}: {exc.reason}", file=sys.stderr)
        return 1
    events: list[Any] = core.list_namespaced_event(
        args.namespace, field_selector=f"involvedObject.uid={pod.metadata.uid}").items
    events.sort(key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
    record = None
    if pod.spec.node_name and PLACEMENT_ANNOTATION not in (pod.metadata.annotations or {}) and args.placement_url:
        record = fetch_record(args.placement_url, args.namespace, args.pod)
    print(render(pod, events, record))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("explain", help="say why a pod landed on its node, or why it is Pending",
                       description=__doc__)
    p.add_argument("pod", help="pod name")
    p.add_argument("-n", "--namespace", default="default", help="namespace (default: default)")
    p.add_argument("--kubeconfig", help="kubeconfig (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--placement-url", default=os.environ.get("HEATSCHED_PLACEMENT_URL"),
                   help="the placement service's extender port, asked for the pod's record when it carries no "
                   "heatsched.io/placement annotation (default: $HEATSCHED_PLACEMENT_URL)")
    p.set_defaults(func=_run)
