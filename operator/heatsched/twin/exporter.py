"""The twin as a service: simulated tanks served as Prometheus metrics, plus a small control API.

Why it exists: the operator reads tank temperatures from Prometheus (HeatSite.spec.telemetry); in the demo and
the e2e tests there are no real tanks, so this server plays them. A background task advances the simulation
at `speed` simulated seconds per real second in fixed steps; IT power comes from a LoadSource (static, or
the pods bound in the cluster), so the scheduler's decisions heat the tanks they chose.

HTTP (aiohttp):
    GET  /metrics          Prometheus text format, from the twin's own CollectorRegistry
    GET  /sites            JSON: simulated time and every site's state
    POST /control/{site}   JSON object, any of:
                             {"temperatureC": 80.0}    set the tank temperature now (inlet..max °C)
                             {"hold": true|false}      freeze the tank (no flows, counters stop)
                             {"itKW": 5.0 | null}      override the IT power (null: back to the load source)
                             {"demandFactor": 2.0}     multiply the site's demands (0..20)
                           400 with {"error": ...} for bad JSON, unknown site or out-of-range value
    GET  /healthz          "ok"

Metrics (label `site`; `demand` too for demand_kw), as agreed for the whole project:
    heatsched_twin_tank_temperature_celsius, heatsched_twin_demand_kw, heatsched_twin_backup_kw,
    heatsched_twin_it_heat_kw (gauges), heatsched_twin_backup_kwh_total, heatsched_twin_heat_dumped_kwh_total,
    heatsched_twin_served_by_it_kwh_total (counters); plus heatsched_twin_simulated_time_seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from heatsched.twin.live import LiveSite, SimClock
from heatsched.twin.loadsource import LoadSource
from heatsched.twin.sites import SiteConfig

log = logging.getLogger(__name__)


class Twin:
    """The running sites, their clock and load source; `advance` is the whole simulation loop body."""

    def __init__(self, sites: Sequence[LiveSite], load: LoadSource, clock: SimClock) -> None:
        names = [s.name for s in sites]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate site names: {names}")
        self.sites = {s.name: s for s in sites}
        self.load = load
        self.clock = clock
        load_now = load.site_it_kw()
        for site in sites:  # gauges are meaningful before the first step
            site.it_kw = load_now.get(site.name, 0.0)
            site.demand_kw = site.demands_at(clock.now)
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_TwinCollector(self))

    @classmethod
    def from_sites(
        cls,
        sites: Sequence[SiteConfig],
        load: LoadSource,
        *,
        start: datetime,
        step_s: float = 10.0,
        speed: float = 1.0,
        seed: int = 0,
        temperature_c: float | None = None,
    ) -> Twin:
        """A twin of `sites` (heatsched.twin.sites.load_sites), tanks at `temperature_c` or their targets."""
        return cls([LiveSite.start(s, temperature_c, seed=seed) for s in sites], load, SimClock(start, step_s, speed))

    def advance(self, steps: int) -> None:
        """Run `steps` fixed steps; the load source is read once (it changes on its own schedule)."""
        if steps <= 0:
            return
        load = self.load.site_it_kw()
        fuel = self.load.site_fuel_kw()
        for _ in range(steps):
            at = self.clock.tick()
            for site in self.sites.values():
                site.advance(at, self.clock.step_s, load.get(site.name, 0.0), fuel.get(site.name, 0.0))

    def to_json(self) -> dict[str, object]:
        return {
            "simTime": self.clock.now.isoformat(),
            "stepSeconds": self.clock.step_s,
            "speed": self.clock.speed,
            "sites": [s.to_json() for s in self.sites.values()],
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Advance in real time until `stop` is set."""
        interval = min(1.0, max(0.05, self.clock.step_s / self.clock.speed))
        last = time.monotonic()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass
            now = time.monotonic()
            try:
                self.advance(self.clock.due(now - last))
            except Exception:  # a bug in one step must not stop the twin silently
                log.exception("simulation step failed")
            last = now


TWIN_KEY = web.AppKey("twin", Twin)


class _TwinCollector(Collector):
    def __init__(self, twin: Twin) -> None:
        self.twin = twin

    def collect(self) -> Iterator[Metric]:
        sites = list(self.twin.sites.values())
        gauges: dict[str, tuple[str, Callable[[LiveSite], float]]] = {
            "tank_temperature_celsius": ("Simulated tank temperature (°C).", lambda s: s.state.temperature_c),
            "backup_kw": ("Backup burner power over the last step (kW).", lambda s: s.backup_kw),
            "it_heat_kw": ("IT heat recovered into the tank at the current load (kW).", lambda s: s.it_heat_kw),
            "fuel_kw": ("Electric power of heat fuel pods on the site (kW).", lambda s: s.fuel_kw),
        }
        for name, (doc, value) in gauges.items():
            g = GaugeMetricFamily(f"heatsched_twin_{name}", doc, labels=["site"])
            for s in sites:
                g.add_metric([s.name], value(s))
            yield g
        demand = GaugeMetricFamily("heatsched_twin_demand_kw", "Current heat demand (kW).", labels=["site", "demand"])
        for s in sites:
            for d, kw in s.demand_kw.items():
                demand.add_metric([s.name, d], kw)
        yield demand
        counters: dict[str, tuple[str, Callable[[LiveSite], float]]] = {
            "backup_kwh": ("Energy burnt by the backup (kWh).", lambda s: s.state.backup_kwh),
            "heat_dumped_kwh": ("IT heat rejected at the tank maximum (kWh).", lambda s: s.state.dumped_kwh),
            "served_by_it_kwh": ("Heat demand met by server heat (kWh).", lambda s: s.state.served_by_it_kwh),
            "fuel_kwh": ("Electricity used by heat fuel pods (kWh).", lambda s: s.fuel_kwh),
            "backup_no_fuel_kwh": ("Backup the same tank would have burnt without heat fuel (kWh).",
                                   lambda s: s.no_fuel.backup_kwh if s.no_fuel is not None else 0.0),
        }
        for name, (doc, value) in counters.items():
            c = CounterMetricFamily(f"heatsched_twin_{name}", doc, labels=["site"])
            for s in sites:
                c.add_metric([s.name], value(s))
            yield c
        clock = GaugeMetricFamily("heatsched_twin_simulated_time_seconds", "Simulated clock (Unix seconds).")
        clock.add_metric([], self.twin.clock.now.timestamp())
        yield clock


def create_app(twin: Twin, *, run_simulation: bool = True) -> web.Application:
    """The aiohttp application; with run_simulation the clock advances in a background task."""
    app = web.Application()
    app[TWIN_KEY] = twin
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/sites", _sites)
    app.router.add_post("/control/{site}", _control)
    app.router.add_get("/healthz", _healthz)
    if run_simulation:
        app.cleanup_ctx.append(_simulation)
    return app


async def _simulation(app: web.Application):  # type: ignore[no-untyped-def]
    stop = asyncio.Event()
    task = asyncio.create_task(app[TWIN_KEY].run(stop))
    yield
    stop.set()
    await task


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[TWIN_KEY].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _sites(request: web.Request) -> web.Response:
    return web.json_response(request.app[TWIN_KEY].to_json())


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _control(request: web.Request) -> web.Response:
    twin = request.app[TWIN_KEY]
    name = request.match_info["site"]
    site = twin.sites.get(name)
    if site is None:
        return _bad(f"unknown site {name!r}; known: {', '.join(sorted(twin.sites))}")
    try:
        body = json.loads(await request.text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _bad(f"body is not valid JSON: {exc}")
    try:
        site.control(body)
    except ValueError as exc:
        return _bad(str(exc))
    return web.json_response(site.to_json())


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)
