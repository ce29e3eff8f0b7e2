"""`heatsched operator`: run the operator, the scheduler extender and the admission webhook."""

from __future__ import annotations

import argparse
import logging

from heatsched.admission.configuration import DEFAULT_TRUSTED_BINDERS
from heatsched.operator_app.config import DRIFT_POLICIES, OperatorConfig


def _run(args: argparse.Namespace) -> int:
    from heatsched.operator_app.main import run

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("kopf.objects", "kopf.activities.probe", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cfg = OperatorConfig(
        prometheus_url=args.prometheus_url,
        prometheus_verify=False if args.prometheus_insecure_skip_verify else (args.prometheus_ca_file or True), extender_host=args.extender_host, extender_port=args.extender_port,
        webhook_host=args.webhook_host, webhook_port=args.webhook_port,
        webhook_public_host=args.webhook_public_host, webhook_cert_dir=args.webhook_cert_dir,
        webhook_url=args.webhook_url, manage_webhook_configs=not args.no_manage_webhooks,
        status_heartbeat_s=args.status_heartbeat, annotate_placements=not args.no_placement_annotations,
        max_heat_wait_s=args.max_heat_wait, fuel=not args.no_fuel,
        trusted_binders=tuple(args.trusted_binder or DEFAULT_TRUSTED_BINDERS), drift_policy=args.drift_policy,
        audit_interval_s=args.audit_interval,
    )
    run(cfg, args.kubeconfig)
    return 0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("operator", help="run the operator (telemetry, node labels, extender, webhook)",
                       description="Run the heatsched operator: it reads HeatSite tank temperatures from "
                       "Prometheus, patches HeatSite/ThermalDemand status, labels nodes, serves the "
                       "kube-scheduler extender and the admission webhook.")
    p.add_argument("--kubeconfig", help="kubeconfig to use (default: in-cluster, then ~/.kube/config)")
    p.add_argument("--prometheus-url", default="http://127.0.0.1:9090", help="Prometheus base URL")
    p.add_argument("--prometheus-ca-file", metavar="PATH",
                   help="CA bundle that signs an https Prometheus's certificate (default: the system CAs)")
    p.add_argument("--prometheus-insecure-skip-verify", action="store_true",
                   help="do not verify an https Prometheus's certificate (not for production)")
    p.add_argument("--extender-host", default="127.0.0.1", help="extender listen address")
    p.add_argument("--extender-port", type=int, default=8888, help="extender port (0 disables it)")
    p.add_argument("--webhook-host", default="127.0.0.1", help="admission webhook listen address")
    p.add_argument("--webhook-port", type=int, default=0, help="admission webhook port (0 disables it)")
    p.add_argument("--webhook-public-host", help="host name/IP the apiserver uses to reach the webhook")
    p.add_argument("--webhook-cert-dir", help="directory with tls.crt, tls.key (and ca.crt); a self-signed set is "
                   "created there when empty (default: a new temporary one)")
    p.add_argument("--webhook-url", help="URL the apiserver calls (in-cluster Service); needs --webhook-cert-dir")
    p.add_argument("--no-manage-webhooks", action="store_true",
                   help="do not create the ValidatingWebhookConfiguration heatsched.io (you manage it; see "
                   "heatsched.admission.configuration)")
    p.add_argument("--trusted-binder", action="append", metavar="USER",
                   help="a user whose pods/binding requests skip the webhook because it honours required node "
                   "affinity (a kube-scheduler); repeatable (default: system:kube-scheduler)")
    p.add_argument("--drift-policy", choices=DRIFT_POLICIES, default="flag",
                   help="what to do with a resident pod whose node left its residency (a node's or site's country "
                   "or selectors changed): flag (Event, condition, metric) or evict (also evict the pod through the "
                   "Eviction API, which honours PodDisruptionBudgets) (default flag)")

    p.add_argument("--audit-interval", type=_seconds, default=300.0, metavar="SECONDS",
                   help="run the residency audit (the rules of `heatsched audit`) over the watched resident pods this "
                   "often and export heatsched_residency_audit_findings (default 300; 0: never)")
    p.add_argument("--status-heartbeat", type=float, default=60.0,
                   help="rewrite HeatSite status at least this often, seconds (default 60)")
    p.add_argument("--no-placement-annotations", action="store_true",
                   help="do not annotate bound pods with heatsched.io/placement (saves one API write per pod; "
                   "`heatsched explain` then has no record for bound pods)")
    p.add_argument("--max-heat-wait", type=_seconds, default=600.0, metavar="SECONDS",
                   help="when only heat-blocked (Saturated/Overheated) nodes fit a pod, keep it off them at most "
                   "this long after its creation, then place it there anyway (default 600; 0: at once)")
    p.add_argument("--no-fuel", action="store_true",
                   help="never run heat fuel, whatever the HeatSites' spec.fuel says (existing fuel pods are deleted)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=_run)
