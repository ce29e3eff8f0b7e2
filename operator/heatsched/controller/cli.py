"""`heatsched controller`: the one writer (status, node labels, heat fuel) and the one Prometheus reader."""

from __future__ import annotations

import argparse
import logging
import sys

from heatsched.cli import seconds
from heatsched.controller.config import DRIFT_POLICIES, OperatorConfig


def without_kubernetes_client() -> None:
    """Keep the kubernetes client out of this process (about 50 MiB of its 110 at start-up).

    The controller talks to the API through heatsched.kubeapi only (an import-linter contract checks it), but
    kopf imports the kubernetes client whenever it is installed, just to recognise that client's model
    objects in kopf.adopt() and friends, which the controller never passes. The image installs the client for
    the CLIs (`heatsched audit`, `heatsched explain`), so it is hidden here instead: with None in sys.modules
    an import raises ImportError, and kopf falls back to its own stand-ins. Call it before kopf is imported."""
    sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]  # None: "not importable"


def _run(args: argparse.Namespace) -> int:
    without_kubernetes_client()
    from heatsched.controller.main import run

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("kopf.objects", "kopf.activities.probe", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cfg = OperatorConfig(
        prometheus_url=args.prometheus_url,
        prometheus_verify=False if args.prometheus_insecure_skip_verify else (args.prometheus_ca_file or True),
        metrics_host=args.metrics_host, metrics_port=args.metrics_port,
        leader_election=not args.no_leader_election, leader_election_namespace=args.leader_election_namespace,
        leader_election_lease=args.leader_election_lease,
        status_heartbeat_s=args.status_heartbeat, fuel=not args.no_fuel, drift_policy=args.drift_policy,
        audit_interval_s=args.audit_interval,
    )
    return run(cfg, args.kubeconfig)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("controller", help="run the controller (telemetry, status, node labels, heat fuel)",
                       description="Run the heatsched controller: it reads HeatSite tank temperatures from "
                       "Prometheus, writes HeatSite/ThermalDemand status, labels nodes, runs heat fuel, watches "
                       "residency drift and audits it. Run two replicas: one holds the Lease and acts, the other "
                       "waits. The extender and the webhook are `heatsched placement`.")
    p.add_argument("--kubeconfig", help="kubeconfig to use (default: in-cluster, then ~/.kube/config)")
    p.add_argument("--prometheus-url", default="http://127.0.0.1:9090", help="Prometheus base URL")
    p.add_argument("--prometheus-ca-file", metavar="PATH",
                   help="CA bundle that signs an https Prometheus's certificate (default: the system CAs)")
    p.add_argument("--prometheus-insecure-skip-verify", action="store_true",
                   help="do not verify an https Prometheus's certificate (not for production)")
    p.add_argument("--metrics-host", default="127.0.0.1", help="listen address of /metrics and /healthz")
    p.add_argument("--metrics-port", type=int, default=8080, help="port of /metrics and /healthz (0 disables them)")
    p.add_argument("--no-leader-election", action="store_true",
                   help="act at once, without the Lease (only when a single replica can ever run)")
    p.add_argument("--leader-election-namespace",
                   help="namespace of the Lease (default: the pod's namespace in-cluster, else default)")
    p.add_argument("--leader-election-lease", default="heatsched-controller", help="name of the Lease")
    p.add_argument("--drift-policy", choices=DRIFT_POLICIES, default="flag",
                   help="what to do with a resident pod whose node left its residency (a node's or site's country "
                   "or selectors changed): flag (Event, condition, metric) or evict (also evict the pod through the "
                   "Eviction API, which honours PodDisruptionBudgets) (default flag)")
    p.add_argument("--audit-interval", type=seconds, default=300.0, metavar="SECONDS",
                   help="run the residency audit (the rules of `heatsched audit`) over the watched resident pods this "
                   "often and export heatsched_residency_audit_findings (default 300; 0: never)")
    p.add_argument("--status-heartbeat", type=float, default=60.0,
                   help="rewrite HeatSite status at least this often, seconds (default 60)")
    p.add_argument("--no-fuel", action="store_true",
                   help="never run heat fuel, whatever the HeatSites' spec.fuel says (existing fuel pods are deleted)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=_run)
