"""`heatsched twin serve` (the simulated sites as a Prometheus exporter) and `heatsched simulate` (the benchmark).

Why it exists: one registration point for the two twin commands, parsing and validating flags before any
heavy import (aiohttp, matplotlib), so `heatsched --help` stays fast and bad flags fail with a clear message.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from heatsched.twin.sites import SiteConfig

_T = TypeVar("_T")

DEFAULT_SITES = ("examples",)
DEFAULT_PORT = 9108
SITE_TZ = ZoneInfo("Europe/Paris")  # all example sites are on Central European Time


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    twin = subparsers.add_parser(
        "twin",
        help="digital twin of the boiler sites (Prometheus exporter)",
        description="Simulated hot-water tanks of the HeatSites, served as Prometheus metrics.",
    )
    twin_sub = twin.add_subparsers(dest="twin_command", metavar="SUBCOMMAND")
    serve = twin_sub.add_parser(
        "serve",
        help="serve simulated tanks as Prometheus metrics, with a control API",
        description=(
            "Simulate the sites' tanks and serve GET /metrics (Prometheus), GET /sites (JSON) and "
            "POST /control/{site} ({'temperatureC': 80}, {'hold': true}, {'itKW': 5}, {'demandFactor': 2})."
        ),
    )
    _site_flags(serve)
    serve.add_argument("--host", default="0.0.0.0", help="listen address (default: %(default)s)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="listen port (default: %(default)s)")
    serve.add_argument("--speed", type=_positive, default=1.0,
                       help="simulated seconds per real second (default: %(default)s)")
    serve.add_argument("--step", type=_positive, default=10.0,
                       help="fixed simulation step in simulated seconds (default: %(default)s)")
    serve.add_argument("--start", type=_datetime, default=None,
                       help="simulated start time, ISO 8601 local time (default: now, Europe/Paris)")
    serve.add_argument("--seed", type=int, default=0, help="seed of the day-to-day demand variation (default: 0)")
    serve.add_argument("--initial-temperature", type=float, default=None,
                       help="starting tank temperature °C for every site (default: each tank's target)")
    serve.add_argument("--load", choices=("static", "kubernetes"), default="static",
                       help="IT power from fixed values or from pods bound in the cluster (default: %(default)s)")
    serve.add_argument("--it-kw", action="append", default=[], metavar="SITE=KW",
                       help="static load: IT power of a site (repeatable)")
    serve.add_argument("--static-share", type=float, default=0.8,
                       help="static load for sites without --it-kw: servers deliver this share of the site's "
                            "mean demand (default: %(default)s)")
    serve.add_argument("--kubeconfig", default=None, help="kubernetes load: kubeconfig file (default: in-cluster, "
                                                          "then $KUBECONFIG / ~/.kube/config)")
    serve.add_argument("--refresh", type=_positive, default=10.0,
                       help="kubernetes load: seconds between pod listings (default: %(default)s)")
    serve.set_defaults(func=_serve)

    def _twin_help(args: argparse.Namespace) -> int:
        twin.print_help()
        return 2

    twin.set_defaults(func=_twin_help)

    sim = subparsers.add_parser(
        "simulate",
        help="benchmark placement policies and heat fuel on the twin against a linear-programming lower bound",
        description=(
            "Replay one seeded job trace and demand scenario under each placement policy (heat-aware, "
            "heat-aware+fuel, spreading, bin-packing, random) and report gas corrected for stored heat, its "
            "ratio to the least gas any policy could burn for the same work (an LP solved with HiGHS, with and "
            "without fuel), heat dumped, fuel electricity, CO2 of heat, minutes below the floor, residency "
            "violations, job waits (unplaced jobs included) and the longest wait heat alone caused. "
            "--matrix runs the fixed scenario matrix (seeds x seasons x utilisations x sizings) and checks the "
            "goals of docs/twin.md."
        ),
    )
    _site_flags(sim)
    sim.add_argument("--days", type=_positive, default=28.0, help="simulated days (default: %(default)s)")
    sim.add_argument("--seed", type=int, default=1, help="seed of the trace and the demand (default: %(default)s)")
    sim.add_argument("--step", type=_positive, default=60.0, help="step in seconds, <= 3600 (default: %(default)s)")
    sim.add_argument("--season", choices=("winter", "spring", "summer", "autumn"), default="spring",
                     help="start on the first Monday of this season's scenario (winter 2025-01-06, spring 2025-03-03, "
                          "summer 2025-07-07, autumn 2025-10-06; default: %(default)s)")
    sim.add_argument("--start", type=_datetime, default=None, help="local start time, ISO 8601 (overrides --season)")
    sim.add_argument("--policies", default=None,
                     help="comma-separated subset of heat-aware,heat-aware+fuel,spreading,bin-packing,random "
                          "(default: all)")
    sim.add_argument("--cores", type=int, default=64, help="cores per node (default: %(default)s)")
    sim.add_argument("--nodes", type=int, default=None,
                     help="nodes per site (default: sized so full load meets --sizing × mean demand)")
    sim.add_argument("--sizing", type=_positive, default=1.0,
                     help="IT heat at full load / mean demand, for node sizing (default: %(default)s)")
    sim.add_argument("--utilization", type=float, default=0.6,
                     help="mean share of the cluster's cores the trace keeps busy (default: %(default)s)")
    sim.add_argument("--max-heat-wait", type=float, default=600.0, metavar="SECONDS",
                     help="heat-aware: longest a job is held off hot sites when only they fit (default: %(default)s)")
    sim.add_argument("--no-bound", action="store_true", help="skip the LP lower bounds")
    sim.add_argument("--matrix", action="store_true",
                     help="run the scenario matrix (--seeds x --seasons x --utilizations x --sizings) instead")
    sim.add_argument("--seeds", type=_ints, default=(1, 2, 3, 4, 5), help="matrix seeds (default: 1,2,3,4,5)")
    sim.add_argument("--seasons", type=_words, default=("winter", "spring", "summer"),
                     help="matrix seasons (default: winter,spring,summer)")
    sim.add_argument("--utilizations", type=_floats, default=(0.4, 0.6, 0.8),
                     help="matrix utilisations (default: 0.4,0.6,0.8)")
    sim.add_argument("--sizings", type=_floats, default=(1.0, 1.5), help="matrix sizings (default: 1,1.5)")
    sim.add_argument("--workers", type=int, default=2, help="matrix worker processes (default: %(default)s)")
    sim.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the full results as JSON")
    sim.add_argument("--plots", type=Path, default=None, metavar="DIR",
                     help="write temperatures.png (fuel on and off), gas.png (cumulative gas against the LP bound) "
                          "and fuel.png (fuel kW per site)")
    sim.add_argument("--progress", action="store_true", help="progress bar on stderr even when not a TTY")
    sim.set_defaults(func=_simulate)


def _site_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sites", nargs="+", default=list(DEFAULT_SITES), metavar="PATH",
                        help="HeatSite/ThermalDemand YAML files or directories (default: examples/)")
    parser.add_argument("--loop-share", type=float, default=None,
                        help="rescale recirculation loops to this share of loop + hot-water heat, e.g. 0.45 "
                             "(default: the manifests' own loop kW)")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _list(convert: Callable[[str], _T]) -> Callable[[str], tuple[_T, ...]]:
    def parse(text: str) -> tuple[_T, ...]:
        try:
            values = tuple(convert(v.strip()) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list") from None
        if not values:
            raise argparse.ArgumentTypeError("give at least one value")
        return values
    return parse


_ints, _floats, _words = _list(int), _list(float), _list(str)


def _datetime(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or time (e.g. 2025-03-03T06:00)") from None


def _load_sites(args: argparse.Namespace) -> list[SiteConfig]:
    from heatsched.twin.sites import load_sites

    sites = load_sites(args.sites)
    if args.loop_share is not None:
        sites = [s.with_loop_share(args.loop_share) for s in sites]
    return sites


def _fail(message: str) -> int:
    print(f"heatsched: error: {message}", file=sys.stderr)
    return 2


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from heatsched.twin.exporter import Twin, create_app
    from heatsched.twin.loadsource import (
        KubernetesLoadSource,
        LoadSource,
        StaticLoadSource,
    )

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # one line per scrape is noise
    try:
        sites = _load_sites(args)
        t = args.initial_temperature
        for s in sites:
            if t is not None and not s.tank.inlet_c <= t <= s.tank.max_c:
                raise ValueError(f"--initial-temperature {t:g} is outside {s.name}'s tank range "
                                 f"[{s.tank.inlet_c:g}, {s.tank.max_c:g}] °C")
        load: LoadSource
        if args.load == "kubernetes":
            load = KubernetesLoadSource.from_kubeconfig(sites, args.kubeconfig, args.refresh)
        else:
            covering = StaticLoadSource.covering(sites, args.static_share).site_it_kw()
            load = StaticLoadSource({**covering, **_it_kw(args.it_kw, {s.name for s in sites})})
        start = args.start or datetime.now(SITE_TZ).replace(microsecond=0)
        twin = Twin.from_sites(sites, load, start=start, step_s=args.step, speed=args.speed, seed=args.seed,
                               temperature_c=t)
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    if isinstance(load, KubernetesLoadSource):
        load.start()
    try:
        web.run_app(create_app(twin), host=args.host, port=args.port, print=None)
    finally:
        if isinstance(load, KubernetesLoadSource):
            load.stop()
    return 0


def _it_kw(pairs: list[str], known: set[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for pair in pairs:
        site, sep, value = pair.partition("=")
        if not sep or site not in known:
            raise ValueError(f"--it-kw {pair!r}: expected SITE=KW with SITE one of {', '.join(sorted(known))}")
        try:
            out[site] = float(value)
        except ValueError:
            raise ValueError(f"--it-kw {pair!r}: {value!r} is not a number") from None
    return out


def _simulate(args: argparse.Namespace) -> int:
    from heatsched.twin.matrix import SEASON_STARTS
    from heatsched.twin.policies import POLICY_NAMES
    from heatsched.twin.simulate import SimConfig, simulate
    from heatsched.twin.trace import TraceParams

    policies = POLICY_NAMES if args.policies is None else tuple(p.strip() for p in args.policies.split(","))
    if args.matrix:
        return _matrix(args, policies)
    try:
        sites = _load_sites(args)
        config = SimConfig(
            days=args.days, step_s=args.step, seed=args.seed, start=args.start or SEASON_STARTS[args.season],
            cores_per_node=args.cores, nodes=args.nodes, sizing=args.sizing,
            trace=TraceParams(utilization=args.utilization),
        )
        report = simulate(sites, config, policies, progress=args.progress or sys.stderr.isatty(),
                          bound=not args.no_bound, max_heat_wait_s=args.max_heat_wait)
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    print(report.table())
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    if args.plots is not None:
        from heatsched.twin.plots import write_plots

        for path in write_plots(report, args.plots):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _matrix(args: argparse.Namespace, policies: tuple[str, ...]) -> int:
    import time

    from heatsched.twin.matrix import CellRun, cells, progress_line, run_matrix, summary
    from heatsched.twin.policies import POLICY_NAMES

    try:
        unknown = [p for p in policies if p not in POLICY_NAMES]
        if unknown:
            raise ValueError(f"unknown policies {unknown}; known: {', '.join(POLICY_NAMES)}")
        _load_sites(args)  # fail early on bad manifests
        grid = cells(args.seeds, args.seasons, args.utilizations, args.sizings)
        if any(not 0 < u < 1 for u in args.utilizations):
            raise ValueError("utilization must be in (0, 1)")
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    jobs = [CellRun(tuple(map(str, args.sites)), args.loop_share, c, args.days, args.step, policies, args.max_heat_wait)
            for c in grid]
    began = time.monotonic()
    rows = run_matrix(jobs, max(1, args.workers), progress_line(0, len(jobs), began))
    print(summary(rows, args.step))
    print(f"{len(rows)} scenarios of {args.days:g} days in {(time.monotonic() - began) / 60:.1f} min "
          f"with {args.workers} worker(s)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows}, indent=2) + "\n", encoding="utf-8")
    return 0
