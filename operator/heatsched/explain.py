"""`heatsched explain POD`: why a pod landed where it did, or why it is still Pending.

A bound heat-aware pod carries the operator's `heatsched.io/placement` annotation (site, tank temperature,
state, score and the score's reason). A Pending pod is explained by kube-scheduler's own words (its last
FailedScheduling event and PodScheduled condition), which include the extender's reasons per node.
"""

from __future__ import annotations

import argparse
import json
import sys

PLACEMENT_ANNOTATION = "heatsched.io/placement"
RESIDENCY_ANNOTATION = "heatsched.io/residency"


def render(pod, events) -> str:
    """Plain text for a pod (kubernetes client V1Pod) and its events, newest last."""
    meta, spec, status = pod.metadata, pod.spec, pod.status
    annotations = meta.annotations or {}
    lines = [f"pod {meta.namespace}/{meta.name}: {status.phase}",
             f"  scheduler: {spec.scheduler_name}",
             f"  residency: {annotations.get(RESIDENCY_ANNOTATION, 'unrestricted')}"]
    if spec.node_name:
        lines.append(f"  node: {spec.node_name}")
        raw = annotations.get(PLACEMENT_ANNOTATION)
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
            lines.append("  no heatsched placement record (not scheduled by the heat-aware profile, "
                         "or the operator was not running)")
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
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    api = config.new_client_from_config(args.kubeconfig) if args.kubeconfig else None
    if api is None:
        config.load_kube_config()
        api = client.ApiClient()
    core = client.CoreV1Api(api)
    try:
        pod = core.read_namespaced_pod(args.pod, args.namespace)
    except ApiException as exc:
        print(f"cannot read pod {args.namespace}/{args.pod}: {exc.reason}", file=sys.stderr)
        return 1
    events = core.list_namespaced_event(args.namespace, field_selector=f"involvedObject.uid={pod.metadata.uid}").items
    events.sort(key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
    print(render(pod, events))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="say why a pod landed on its node, or why it is Pending",
                       description=__doc__)
    p.add_argument("pod", help="pod name")
    p.add_argument("-n", "--namespace", default="default", help="namespace (default: default)")
    p.add_argument("--kubeconfig", help="kubeconfig (default: $KUBECONFIG or ~/.kube/config)")
    p.set_defaults(func=_run)
