"""`heatsched audit`: compliance evidence that every resident pod runs, and keeps its volumes, inside its residency.

Lists every resident pod (its own `heatsched.io/residency`, or its namespace's) with its node, the node's
trusted country (the protected `node-restriction.kubernetes.io/heatsched-country` label) and the countries
of its volumes (the `heatsched.io/country` label or country topology of their PersistentVolume, or of the
StorageClass of a claim not yet bound). `--json` prints a stable document to keep as evidence.

Exit status: 0 no violation, 1 at least one violation, 2 the cluster could not be read (the reason is
printed). Rules and JSON fields: docs/audit.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from heatsched.placement.audit import VIOLATION, AuditReport, PodAudit, audit
from heatsched.placement.residency import format_residency

SCHEMA = "heatsched.io/audit/v1"
PAGE = 500  # objects per list call


class ClusterUnreadable(Exception):
    """The cluster could not be read; the message says which call failed and why."""


@dataclass
class Inputs:
    """Everything the audit reads, as plain Kubernetes JSON dicts."""

    server: str | None = None
    context: str | None = None
    pods: list[dict[str, Any]] = field(default_factory=list)
    namespaces: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    storage_classes: list[dict[str, Any]] = field(default_factory=list)


# ---- reading the cluster ------------------------------------------------------------------------------
def _why(exc: BaseException) -> str:
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        detail = ""
        try:
            detail = json.loads(exc.body or "{}").get("message") or ""
        except (ValueError, AttributeError):
            pass
        return f"HTTP {exc.status} {exc.reason}" + (f": {detail}" if detail else "")
    return f"{type(exc).__name__}: {exc}"


def _list(what: str, call: Callable[..., Any], *args: Any, timeout: float) -> list[dict[str, Any]]:
    """Every object of one list call, page by page, as the raw JSON the apiserver sent (no client model, so
    a field or volume type the client library does not know is still seen)."""
    items: list[dict[str, Any]] = []
    token = None
    while True:
        try:
            kwargs: dict[str, Any] = {"limit": PAGE, "_preload_content": False, "_request_timeout": timeout}
            if token:
                kwargs["_continue"] = token
            response = call(*args, **kwargs)
            body = json.loads(response.data)
        except Exception as exc:  # any failure: the audit cannot vouch for anything
            raise ClusterUnreadable(f"cannot list {what}: {_why(exc)}") from exc
        items.extend(body.get("items") or ())
        token = (body.get("metadata") or {}).get("continue")
        if not token:
            return items


def _read(what: str, call: Callable[..., Any], *args: Any, timeout: float) -> dict[str, Any]:
    try:
        obj: dict[str, Any] = json.loads(call(*args, _preload_content=False, _request_timeout=timeout).data)
        return obj
    except Exception as exc:
        raise ClusterUnreadable(f"cannot read {what}: {_why(exc)}") from exc


def connect(kubeconfig: str | None, context: str | None) -> tuple[Any, str | None]:
    """(ApiClient, context name) for the kubeconfig (default: $KUBECONFIG or ~/.kube/config), else the
    in-cluster service account."""
    from kubernetes import client, config

    try:
        try:
            api = config.new_client_from_config(
                config_file=kubeconfig, context=context)
        except config.ConfigException:
            if kubeconfig or context:
                raise
            config.load_incluster_config()
            return client.ApiClient(), "in-cluster"
        if context is None:
            _, active = config.list_kube_config_contexts(config_file=kubeconfig)
            context = (active or {}).get("name")
        return api, context
    except Exception as exc:  # a missing or broken kubeconfig
        raise ClusterUnreadable(f"cannot load a kubeconfig: {exc}") from exc


def collect(api: Any, namespace: str | None, timeout: float) -> Inputs:
    """List what the audit needs. Namespaced objects only in `namespace` when it is given; nodes, volumes and
    storage classes always cluster-wide (they are cluster-scoped)."""
    from kubernetes import client

    core, storage = client.CoreV1Api(api), client.StorageV1Api(api)
    out = Inputs(server=api.configuration.host)
    if namespace:
        out.namespaces = [_read(f"namespace {namespace}", core.read_namespace, namespace, timeout=timeout)]
        out.pods = _list(f"pods in {namespace}", core.list_namespaced_pod, namespace, timeout=timeout)
        out.claims = _list(f"persistentvolumeclaims in {namespace}", core.list_namespaced_persistent_volume_claim,
                           namespace, timeout=timeout)
    else:
        out.namespaces = _list("namespaces", core.list_namespace, timeout=timeout)
        out.pods = _list("pods", core.list_pod_for_all_namespaces, timeout=timeout)
        out.claims = _list("persistentvolumeclaims", core.list_persistent_volume_claim_for_all_namespaces,
                           timeout=timeout)
    out.nodes = _list("nodes", core.list_node, timeout=timeout)
    out.volumes = _list("persistentvolumes", core.list_persistent_volume, timeout=timeout)
    out.storage_classes = _list("storageclasses", storage.list_storage_class, timeout=timeout)
    return out


# ---- output -------------------------------------------------------------------------------------------
def document(report: AuditReport, inputs: Inputs, *, namespace: str | None, all_pods: bool,
             now: datetime | None = None) -> dict[str, Any]:
    """The JSON evidence: stable keys, pods sorted by namespace and name."""
    now = now or datetime.now(UTC)
    body = report.to_json()
    return {
        "schema": SCHEMA,
        "generatedAt": now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "cluster": {"server": inputs.server, "context": inputs.context},
        "scope": {"namespace": namespace, "allPods": all_pods},
        "compliant": body["compliant"],
        "counts": body["counts"],
        "pods": body["pods"],
    }


def _volumes_cell(p: PodAudit) -> str:
    cells = []
    for v in p.volumes:
        if v.location != "network":
            continue
        cells.append(f"{v.name}={'?' if v.countries is None else format_residency(v.countries) or '-'}")
    return ",".join(cells) or "-"


def table(report: AuditReport) -> str:
    header = ("NAMESPACE", "POD", "RESIDENCY", "NODE", "NODE-COUNTRY", "VOLUMES", "VERDICT")
    rows = [header]
    for p in report.pods:
        if not p.resident:
            residency = "-"
        elif p.residency is None:
            residency = "invalid"
        else:
            residency = format_residency(p.residency) or "none"
        rows.append((p.namespace, p.name, residency, p.node or "(pending)", (p.node_country or "?") if p.node else "-",
                     _volumes_cell(p), p.verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    bad = [p for p in report.pods if p.verdict == VIOLATION]
    if bad:
        lines += ["", "violations:"]
        for p in bad:
            lines += [f"  {p.namespace}/{p.name}: [{f.code}] {f.reason}" for f in p.findings]
    c = report.counts()
    lines += ["", f"{c['resident']} resident pods: {c['compliant']} compliant, {c['violation']} in violation, "
                  f"{c['pending']} pending" + (f"; {c['unrestricted']} unrestricted" if c["unrestricted"] else "")]
    return "\n".join(lines)


# ---- command ------------------------------------------------------------------------------------------
def _run(args: argparse.Namespace) -> int:
    try:
        api, context = connect(args.kubeconfig, args.context)
        inputs = collect(api, args.namespace, args.timeout)
    except ClusterUnreadable as exc:
        print(f"heatsched audit: cannot read the cluster: {exc}", file=sys.stderr)
        return 2
    inputs.context = context
    report = audit(inputs.pods, namespaces=inputs.namespaces, nodes=inputs.nodes, claims=inputs.claims,
                   volumes=inputs.volumes, storage_classes=inputs.storage_classes, all_pods=args.all_pods)
    if args.json:
        print(json.dumps(document(report, inputs, namespace=args.namespace, all_pods=args.all_pods), indent=2))
    else:
        print(table(report))
    return 0 if report.ok else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("audit", help="list resident pods with their node's and volumes' countries; "
                                     "exit 1 on any residency violation",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--namespace", help="audit only this namespace (default: all namespaces)")
    p.add_argument("--all-pods", action="store_true", help="also list pods with no residency (verdict unrestricted)")
    p.add_argument("--json", action="store_true", help="print the JSON evidence document instead of a table")
    p.add_argument("--kubeconfig", help="kubeconfig (default: $KUBECONFIG or ~/.kube/config, else in-cluster)")
    p.add_argument("--context", help="kubeconfig context (default: the current one)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per API call (default: 30)")
    p.set_defaults(func=_run)
