"""Where the exporter's tanks get their IT power from: a fixed table, or the pods running in a cluster.

Why it exists: the twin closes the loop of the demo and the e2e tests. Pods the heat-aware scheduler binds to a
site's nodes must warm that site's simulated tank, so the Kubernetes source reads bound pods and turns their
CPU requests into kW with the site's power model:

    P_site [kW] = (Σ CPU requests of pods on the site's nodes · wattsPerCPU + idleWattsPerNode · nodes) / 1000

A node belongs to a site by the operator's label node-restriction.kubernetes.io/heatsched-site, or, before the
operator has labelled it, by the HeatSite's own membership rule (nodeNames or nodeSelector, e.g. the pool label
node-restriction.kubernetes.io/heatsched-pool). The source polls in a background thread and serves the last
good value: a scrape never waits for the API server, and an API error keeps the previous numbers (logged).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from heatsched.extender.wire import V1Pod
from heatsched.kubeapi import API_TIMEOUT_S
from heatsched.placement.model import FUEL_SITE_LABEL, SITE_LABEL
from heatsched.twin.sites import SiteConfig

log = logging.getLogger(__name__)


class LoadSource(Protocol):
    def site_it_kw(self) -> dict[str, float]:
        """Electrical IT power per site name (kW). Must be cheap: it is called every simulation step."""
        ...

    def site_fuel_kw(self) -> dict[str, float]:
        """The part of site_it_kw drawn by heat fuel pods (kW); the twin's no-fuel tank leaves it out."""
        ...


class StaticLoadSource:
    """A fixed IT power per site (tests, and the demo without a cluster); sites not listed run at 0 kW."""

    def __init__(self, kw_by_site: Mapping[str, float]) -> None:
        bad = {k: v for k, v in kw_by_site.items() if not v >= 0}
        if bad:
            raise ValueError(f"IT power must be >= 0 kW, got {bad}")
        self._kw = dict(kw_by_site)

    @classmethod
    def covering(cls, sites: Iterable[SiteConfig], share: float) -> StaticLoadSource:
        """Each site's servers deliver `share` of its mean heat demand: P = share · demand / η."""
        return cls({s.name: share * s.mean_demand_kw() / s.tank.efficiency for s in sites})

    def site_it_kw(self) -> dict[str, float]:
        return dict(self._kw)

    def site_fuel_kw(self) -> dict[str, float]:
        return {}  # fixed loads are no fuel


def node_sites(sites: Sequence[SiteConfig], nodes: Iterable[tuple[str, Mapping[str, str]]]) -> dict[str, str]:
    """Node name -> site name, by the operator's site label first, else the HeatSite's membership rule.

    A node matched by two HeatSites and not labelled is left out: the operator reports the conflict, the
    twin does not guess which tank it heats.
    """
    known = {s.name for s in sites}
    out: dict[str, str] = {}
    for name, labels in nodes:
        labelled = labels.get(SITE_LABEL)
        if labelled in known:
            out[name] = labelled
            continue
        matches = [s.name for s in sites if s.selects(name, labels)]
        if len(matches) == 1:
            out[name] = matches[0]
    return out


def it_kw_by_site(
    sites: Sequence[SiteConfig], node_site: Mapping[str, str], pod_cpu: Iterable[tuple[str, float]],
    *, idle: bool = True,
) -> dict[str, float]:
    """The formula of the module docstring; `pod_cpu` yields (node name, CPU cores requested). idle=False: the
    pods' power only (the fuel share of a site's IT power)."""
    cores = {s.name: 0.0 for s in sites}
    nodes = {s.name: 0 for s in sites}
    for site in node_site.values():
        nodes[site] += 1
    for node, cpu in pod_cpu:
        node_site_name = node_site.get(node)
        if node_site_name is not None:
            cores[node_site_name] += cpu
    return {s.name: cores[s.name] * s.watts_per_cpu / 1000.0 + (s.idle_kw(nodes[s.name]) if idle else 0.0)
            for s in sites}


class KubernetesLoadSource:
    """Pods bound to site nodes, read from the API server every `refresh_s` seconds in a daemon thread."""

    def __init__(self, sites: Sequence[SiteConfig], core_api: Any, refresh_s: float = 10.0) -> None:
        self._sites = list(sites)
        self._api = core_api  # kubernetes.client.CoreV1Api
        self._refresh_s = refresh_s
        self._kw: dict[str, float] = {s.name: 0.0 for s in self._sites}
        self._fuel_kw: dict[str, float] = {s.name: 0.0 for s in self._sites}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0

    @classmethod
    def from_kubeconfig(
        cls, sites: Sequence[SiteConfig], kubeconfig: str | None, refresh_s: float = 10.0
    ) -> KubernetesLoadSource:
        """In-cluster credentials, else the kubeconfig; a ValueError says why neither works."""
        from kubernetes import client, config

        try:
            if kubeconfig is None:
                try:
                    config.load_incluster_config()
                    return cls(sites, client.CoreV1Api(), refresh_s)
                except config.ConfigException:
                    pass
            config.load_kube_config(config_file=kubeconfig)
        except (config.ConfigException, OSError) as exc:
            raise ValueError(f"cannot load Kubernetes credentials: {exc}") from None
        return cls(sites, client.CoreV1Api(), refresh_s)

    def site_it_kw(self) -> dict[str, float]:
        with self._lock:
            return dict(self._kw)

    def site_fuel_kw(self) -> dict[str, float]:
        """The part of site_it_kw that heat fuel pods draw (label heatsched.io/fuel-site)."""
        with self._lock:
            return dict(self._fuel_kw)

    def refresh(self) -> bool:
        """Poll once; on any API or decoding error keep the last value, log, and return False."""
        try:
            nodes = _items(self._api.list_node(_preload_content=False, _request_timeout=API_TIMEOUT_S))
            pods = _items(
                self._api.list_pod_for_all_namespaces(
                    field_selector="spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed",
                    _preload_content=False,
                    _request_timeout=API_TIMEOUT_S,
                )
            )
            node_site = node_sites(
                self._sites,
                ((n["metadata"]["name"], n["metadata"].get("labels") or {}) for n in nodes),
            )
            kw = it_kw_by_site(self._sites, node_site, _pod_cpu(pods))
            fuel = [p for p in pods if FUEL_SITE_LABEL in ((p.get("metadata") or {}).get("labels") or {})]
            fuel_kw = it_kw_by_site(self._sites, node_site, _pod_cpu(fuel), idle=False)
        except Exception as exc:  # noqa: BLE001 - any failure must keep the twin serving the last value
            self.errors += 1
            log.warning("IT load refresh failed, keeping the last value: %s", exc)
            return False
        with self._lock:
            self._kw, self._fuel_kw = kw, fuel_kw
        return True

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="twin-load-source", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._refresh_s):
            self.refresh()


def _items(response: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(response.data)["items"]
    return items


def _pod_cpu(pods: Iterable[Mapping[str, Any]]) -> Iterable[tuple[str, float]]:
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            continue
        try:
            yield node, V1Pod.model_validate(pod).cpu_request()
        except ValueError as exc:
            name = (pod.get("metadata") or {}).get("name", "?")
            log.warning("pod %s: unreadable CPU request, counted as 0: %s", name, exc)
            yield node, 0.0
