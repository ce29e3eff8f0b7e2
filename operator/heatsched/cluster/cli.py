"""`heatsched cluster up|down|env|status`: the local control plane by hand.

`up` starts the services detached and returns; `down` stops them (checking each pid's start time, so a
recycled pid is never killed) and removes the work dir; `env` prints the exports a shell needs.
"""

from __future__ import annotations

import argparse
import json
import sys

from heatsched.cluster.controlplane import ControlPlane, state_root
from heatsched.cluster.toolchain import MissingBinary, Toolchain


def _up(args: argparse.Namespace) -> int:
    if (state_root() / f"{args.name}.json").exists():
        print(f"cluster {args.name!r} is already up; `heatsched cluster down --name {args.name}` first",
              file=sys.stderr)
        return 1
    workdir = state_root() / args.name
    cp = ControlPlane(name=args.name, workdir=workdir, advertise_address=args.advertise_address,
                      extender_url=args.extender_url, node_identities=tuple(args.node_identity or ()),
                      heat_aware_scheduler=not args.no_heat_aware_scheduler, owns_workdir=True)
    try:
        cp.up(timeout=args.timeout)
    except MissingBinary as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"cluster {args.name!r} is up: kube-apiserver {cp.server}")
    print(f"export KUBECONFIG={cp.kubeconfig}")
    return 0


def _down(args: argparse.Namespace) -> int:
    names = [p.stem for p in state_root().glob("*.json")] if args.all else [args.name]
    for name in names:
        try:
            cp = ControlPlane.from_state(name)
        except FileNotFoundError:
            print(f"cluster {name!r} is not up")
            continue
        cp.down()
        print(f"cluster {name!r} is down")
    return 0


def _env(args: argparse.Namespace) -> int:
    try:
        data = json.loads((state_root() / f"{args.name}.json").read_text())
    except FileNotFoundError:
        print(f"cluster {args.name!r} is not up", file=sys.stderr)
        return 1
    bins = ":".join(str(d) for d in Toolchain.discover().bin_dirs())
    print(f"export KUBECONFIG={data['kubeconfig']}")
    if bins:
        print(f"export PATH={bins}:$PATH")
    print(f"export HEATSCHED_EXTENDER_URL={data['extender_url']}")
    print(f"export HEATSCHED_EXTENDER_PORT={data['ports']['extender']}")
    return 0


def _status(args: argparse.Namespace) -> int:
    try:
        cp = ControlPlane.from_state(args.name)
    except FileNotFoundError:
        print(f"cluster {args.name!r} is not up")
        return 1
    for svc in cp.services:
        print(f"{svc.name:24} pid {svc.pid:<8} {'running' if svc.alive() else 'STOPPED'}  log {svc.log}")
    return 0 if all(s.alive() for s in cp.services) else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("cluster", help="start/stop the local control plane (etcd, apiserver, schedulers, kwok)",
                            description=__doc__)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    up = verbs.add_parser("up", help="start a local control plane in the background")
    up.add_argument("--advertise-address", default="127.0.0.1",
                    help="address the apiserver advertises (needed on hosts with no default route)")
    up.add_argument("--extender-url", default=None,
                    help="heat-aware extender URL prefix (default: a free loopback port, see `env`)")
    up.add_argument("--node-identity", action="append", metavar="NODE",
                    help="also mint a kubelet-like token for system:node:NODE (repeatable)")
    up.add_argument("--no-heat-aware-scheduler", action="store_true",
                    help="start only the default kube-scheduler (a plain cluster, as kind gives you)")
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each service")
    up.set_defaults(func=_up)
    down = verbs.add_parser("down", help="stop a local control plane and delete its files")
    down.add_argument("--all", action="store_true", help="stop every cluster this user started")
    down.set_defaults(func=_down)
    env = verbs.add_parser("env", help="print shell exports (KUBECONFIG, PATH) for a running cluster")
    env.set_defaults(func=_env)
    status = verbs.add_parser("status", help="show each service and whether it runs")
    status.set_defaults(func=_status)
    for p in (up, down, env, status):
        p.add_argument("--name", default="heatsched", help="cluster name (default: heatsched)")
