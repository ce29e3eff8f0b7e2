"""`heatsched placement`: serve the scheduler extender and the residency webhook from watched state."""

from __future__ import annotations

import argparse
import logging

from heatsched.admission.configuration import DEFAULT_TRUSTED_BINDERS
from heatsched.cli import seconds
from heatsched.placement_service.config import PlacementConfig


def _run(args: argparse.Namespace) -> int:
    from heatsched.placement_service.main import run

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    cfg = PlacementConfig(
        extender_host=args.extender_host, extender_port=args.extender_port, extender_cert_dir=args.extender_cert_dir,
        webhook_host=args.webhook_host, webhook_port=args.webhook_port,
        webhook_public_host=args.webhook_public_host, webhook_cert_dir=args.webhook_cert_dir,
        webhook_url=args.webhook_url, manage_webhook_configs=not args.no_manage_webhooks,
        trusted_binders=tuple(args.trusted_binder or DEFAULT_TRUSTED_BINDERS), max_heat_wait_s=args.max_heat_wait,
        annotate_placements=args.annotate_placements, placement_events=args.placement_events,
    )
    run(cfg, args.kubeconfig)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("placement", help="serve the scheduler extender and the residency webhook (N replicas)",
                       description="Serve the kube-scheduler extender (heat-aware filter and scores) and the "
                       "residency webhook from list+watch of HeatSites, Nodes, Namespaces and Pods. Stateless: run "
                       "as many replicas as you like behind one Service. It never reads Prometheus and never "
                       "writes to the API while answering (`heatsched controller` does both).")
    p.add_argument("--kubeconfig", help="kubeconfig to use (default: in-cluster, then ~/.kube/config)")
    p.add_argument("--extender-host", default="127.0.0.1", help="extender listen address")
    p.add_argument("--extender-port", type=int, default=8888,
                   help="extender port; also /healthz, /readyz, /metrics, /explain (default 8888)")
    p.add_argument("--extender-cert-dir", metavar="DIR",
                   help="serve the extender port over TLS with DIR/tls.crt and DIR/tls.key (kube-scheduler's extender "
                   "tlsConfig must then trust its CA); default: plain HTTP")
    p.add_argument("--webhook-host", default="127.0.0.1", help="residency webhook listen address")
    p.add_argument("--webhook-port", type=int, default=0, help="residency webhook port, TLS (0 disables it)")
    p.add_argument("--webhook-public-host", help="host name/IP the apiserver uses to reach the webhook")
    p.add_argument("--webhook-cert-dir", help="directory with tls.crt, tls.key (and ca.crt); a self-signed set is "
                   "created there when empty (default: a new temporary one)")
    p.add_argument("--webhook-url", help="URL the apiserver calls (in-cluster Service); needs --webhook-cert-dir")
    p.add_argument("--no-manage-webhooks", action="store_true",
                   help="do not write the ValidatingWebhookConfiguration heatsched.io (you manage it; see "
                   "heatsched.admission.configuration)")
    p.add_argument("--trusted-binder", action="append", metavar="USER",
                   help="a user whose pods/binding requests skip the webhook because it honours required node "
                   "affinity (a kube-scheduler); repeatable (default: system:kube-scheduler)")
    p.add_argument("--max-heat-wait", type=seconds, default=600.0, metavar="SECONDS",
                   help="when only heat-blocked (Saturated/Overheated) nodes fit a pod, keep it off them at most "
                   "this long after its creation, then place it there anyway (default 600; 0: at once)")
    p.add_argument("--annotate-placements", action="store_true",
                   help="also write why a pod landed where it did as its heatsched.io/placement annotation (one "
                   "API write per heat-aware pod, off the request path); without it `heatsched explain` asks "
                   "this service")
    p.add_argument("--placement-events", action="store_true",
                   help="also post a Normal Event HeatAwarePlacement on each heat-aware pod it scored (where it landed "
                   "and why: the durable trace; one API write per pod, off the request path). Pending pods already "
                   "have kube-scheduler's FailedScheduling Events, with the extender's reasons")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=_run)
