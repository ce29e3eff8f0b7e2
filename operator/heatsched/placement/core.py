"""Where a pod may run (filter) and where it should run (score), decided from a Snapshot alone.

Why a pure module: the scheduler extender, `explain`, the digital twin and the policy benchmark must all
take the *same* decision from the same numbers, and the decision must be testable without a cluster.
Nothing here does I/O or imports Kubernetes, kopf, Prometheus or HTTP code (tests/test_purity.py).

Two principles, because the two concerns fail in opposite directions:

* Residency fails CLOSED. It is a legal constraint: a node whose country heatsched cannot vouch for
  (not in the snapshot, no trusted country label, claimed by two sites, label disagreeing with its site,
  or with the scheduler's own copy of the label) is *unresolvable* for a pod with a residency.
  A pod without residency has nothing to verify, so those nodes stay feasible (neutral score).
* Heat fails OPEN. It is a preference plus a soft limit (an over-full tank dumps heat; it breaks nothing).
  Only a *fresh* reading in state Saturated/Overheated filters a node, and only *resolvably* (the tank
  cools down, so preemption or a retry can help). Unknown or stale state never filters; it scores 0.5.
  Heat never starves a pod: a hot node is avoided only while another candidate passes; when only hot
  nodes are left, the pod is held off them for at most `max_heat_wait_s` (default 10 min, counted from
  when it was created) and then takes them, scored lowest, with the reason in `FilterResult.relaxed`.
  With max_heat_wait_s = 0 it takes them at once.

Score of a node on a fresh site with a temperature T (all per call, computed once per site)::

    pod_kw    = cpu_cores · watts_per_cpu / 1000                   IT power the pod adds
    charged   = max(pending_kw[site], 0) + pod_kw                  IT power not yet seen by the reading
    C         = volume_l · 4.186 / 3600                            tank heat capacity, kWh/K
    ΔT        = charged · recovery_efficiency · horizon_h / C      warming over the horizon (1 h)
    need      = clamp((max_c − (T + ΔT)) / (max_c − min_c), 0, 1)  1 at/below the floor, 0 at the maximum
    headroom  = clamp((absorbable_kw − charged) / absorbable_kw, 0, 1)   (0 when absorbable_kw ≤ 0)
    score     = w · need + (1 − w) · headroom                      w = need_weight = 0.7

Unknown state, stale reading, no temperature, nodes without a site, nodes unknown to the snapshot,
conflicting nodes and invalid tank limits all score NEUTRAL = 0.5: better than a hot or full site,
worse than a cold site with room. The score is monotone: a colder tank never scores lower and more
pending load never scores higher. Same inputs give bit-identical scores; output order is input order;
`ranked()` breaks ties by node name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from heatsched.placement.model import (
    NodeView,
    PodRequest,
    SiteView,
    Snapshot,
    ThermalState,
)
from heatsched.placement.residency import format_residency

NEUTRAL = 0.5
MAX_HEAT_WAIT_S = 600.0  # the longest heat alone may keep a pod waiting (configurable per call)
WATER_KWH_PER_LITRE_KELVIN = 4.186 / 3600  # 4.186 kJ/(kg·K), 1 kg per litre


@dataclass(frozen=True, slots=True)
class FilterResult:
    """Input nodes split three ways; the dicts map node name to a human reason."""

    feasible: list[str]
    failed: dict[str, str]  # resolvable: may pass later (a tank cools down)
    unresolvable: dict[str, str]  # never for this pod (residency): preemption cannot help
    relaxed: dict[str, str] = field(default_factory=dict)  # hot but feasible: the heat wait bound was used
    unverified: int = 0  # of `unresolvable`: nodes whose country could not be verified (not outside the residency)


class NodeScore(NamedTuple):
    """One node's score. A NamedTuple: immutable and about 5x cheaper to build than a frozen dataclass."""

    node: str
    site: str | None
    score: float  # in [0, 1]
    reason: str


@dataclass(frozen=True, slots=True)
class ScoreParams:
    """Tuning of the score formula (see the module docstring)."""

    need_weight: float = 0.7  # share of "the tank wants heat" against "the tank can take it"
    horizon_h: float = 1.0  # hours over which pending and new load warm the tank

    def __post_init__(self) -> None:
        if not 0.0 <= self.need_weight <= 1.0:
            raise ValueError(f"need_weight must be within [0, 1], got {self.need_weight}")
        if not self.horizon_h > 0.0:
            raise ValueError(f"horizon_h must be > 0, got {self.horizon_h}")


DEFAULT_PARAMS = ScoreParams()
_FEASIBLE, _FAILED, _UNRESOLVABLE, _UNVERIFIED = 0, 1, 2, 3  # filter verdicts; the last two are unresolvable


def filter_nodes(
    pod: PodRequest,
    node_names: Sequence[str],
    snap: Snapshot,
    *,
    reported_countries: Mapping[str, str] | None = None,
    waited_s: float = 0.0,
    max_heat_wait_s: float = MAX_HEAT_WAIT_S,
) -> FilterResult:
    """Split `node_names` into feasible, failed (resolvable) and unresolvable, keeping input order.

    Starvation-free heat: when every node that passes residency is heat-blocked, they stay failed while the
    pod has waited less than `max_heat_wait_s` (`waited_s`: seconds since it was created), then they all
    become feasible and are listed, with the reason, in `relaxed`.

    Rules, first match wins: residency (only for a pod with one) — node unknown, in conflict, without a
    trusted country, or whose label disagrees with its site → unresolvable; country outside the residency
    → unresolvable; `reported_countries` (the country label as the caller saw it, e.g. on kube-scheduler's
    Node objects) disagreeing with the snapshot → unresolvable. It is a cross-check only: it never makes
    a node pass. Then heat: fresh Saturated/Overheated site → failed. Everything else is feasible.

    The verdict depends on the node only through (site, country), so it is computed once per pair.
    """
    residency = pod.residency
    wanted = (format_residency(residency) or "(none)") if residency is not None else ""
    reported = reported_countries if residency is not None else None
    nodes, sites = snap.nodes, snap.sites
    memo: dict[tuple[str | None, str | None], tuple[int, str]] = {}
    feasible: list[str] = []
    failed: dict[str, str] = {}
    unresolvable: dict[str, str] = {}
    unverified = 0
    for name in node_names:
        node = nodes.get(name)
        if node is None or node.conflict:
            kind, reason = _verdict(node, sites, residency, wanted)
        else:
            key = (node.site, node.country)
            verdict = memo.get(key)
            if verdict is None:
                verdict = memo[key] = _verdict(node, sites, residency, wanted)
            kind, reason = verdict
            if reported and kind in (_FEASIBLE, _FAILED):
                claimed = reported.get(name)
                if claimed is not None and claimed != node.country:
                    kind, reason = _UNVERIFIED, (
                        f"scheduler sees country label {claimed!r} but heatsched's trusted label is "
                        f"{node.country}: residency {wanted} cannot be verified"
                    )
        if kind == _FEASIBLE:
            feasible.append(name)
        elif kind == _FAILED:
            failed[name] = reason
        else:
            unresolvable[name] = reason
            unverified += kind == _UNVERIFIED
    if feasible or not failed:
        fit = {r: f"{r}; other nodes fit" for r in set(failed.values())}  # one string per site, not per node
        return FilterResult(feasible, {n: fit[r] for n, r in failed.items()}, unresolvable, unverified=unverified)
    bound = max(0.0, max_heat_wait_s)
    if waited_s < bound:  # only hot nodes fit: hold the pod, but not for longer than the bound
        held = f"; only heat-blocked nodes fit, held {waited_s:.0f} s of the {bound:.0f} s heat wait bound"
        return FilterResult([], {n: r + held for n, r in failed.items()}, unresolvable, unverified=unverified)
    taken = (f"taken although heat-blocked: no other node fits and the pod waited {waited_s:.0f} s "
             f"(heat wait bound {bound:.0f} s)")
    relaxed = {n: f"{r}; {taken}" for n, r in failed.items()}
    return FilterResult(list(relaxed), {}, unresolvable, relaxed, unverified)


def _verdict(
    node: NodeView | None, sites: Mapping[str, SiteView], residency: frozenset[str] | None, wanted: str
) -> tuple[int, str]:
    """Residency first (fails closed), then heat (fails open); see filter_nodes."""
    site = sites.get(node.site) if node is not None and node.site and not node.conflict else None
    if residency is not None:
        if node is None:
            problem = "node unknown to heatsched (no trusted country label)"
        elif node.conflict:
            problem = f"node in conflict ({node.conflict})"
        elif not node.country:
            problem = "node has no trusted country label"
        elif site is not None and site.country is not None and site.country != node.country:
            problem = f"node labelled {node.country} but its site {site.name} is in {site.country}"
        elif node.country not in residency:
            return _UNRESOLVABLE, f"node in {node.country}, pod residency {wanted}"
        else:
            problem = ""
        if problem:
            return _UNVERIFIED, f"{problem}: residency {wanted} cannot be verified"
    blocked = _heat_block(site) if site is not None else None
    return (_FAILED, blocked) if blocked else (_FEASIBLE, "")


def _heat_block(site: SiteView) -> str | None:
    """Reason a fresh, saturated or overheated tank takes no new pod; None otherwise (fails open)."""
    if not (site.fresh and site.state.blocks_new_pods):
        return None
    t, limit = site.temperature_c, site.tank.max_c
    if t is None:
        detail = site.reason or "no temperature"
    elif site.state is ThermalState.OVERHEATED:
        detail = f"tank at {t:.1f} °C ≥ max {limit:.1f} °C"
    else:
        detail = f"tank at {t:.1f} °C, within {limit - t:.1f} K of max {limit:.1f} °C"
    return f"site {site.name} {site.state.value}: {detail}"


@dataclass(frozen=True, slots=True)
class SiteScores:
    """Scores of a list of nodes, kept the way they are computed: a node's score is its site's.

    `scores` has one entry per node, in input order; `sites` maps each scored site to (score, reason);
    `best` is the first node with the highest score (None for no node). A node off every scored site
    (unknown, in conflict, without a site, or its site missing from the snapshot) scores NEUTRAL with
    `neutral_reason(node_view, site)`. Grouping keeps the extender's answer and its explanation O(sites)
    to store instead of O(nodes).
    """

    scores: list[float]
    sites: dict[str, tuple[float, str]]
    best: str | None

    def reason_of(self, node: NodeView | None) -> tuple[float, str]:
        """(score, reason) of a node as this scoring saw its site; neutral when it was off every scored site."""
        if node is not None and not node.conflict and node.site and node.site in self.sites:
            return self.sites[node.site]
        return NEUTRAL, neutral_reason(node)


def neutral_reason(node: NodeView | None) -> str:
    """Why a node off every scored site gets the NEUTRAL score."""
    if node is None:
        return "node unknown to heatsched: neutral"
    if node.conflict:
        return f"node in conflict ({node.conflict}): neutral"
    if not node.site:
        return "not on a heat site: neutral"
    return f"site {node.site} not in snapshot: neutral"


def score_by_site(
    pod: PodRequest,
    node_names: Sequence[str],
    snap: Snapshot,
    *,
    params: ScoreParams = DEFAULT_PARAMS,
    explain: bool = True,
) -> SiteScores:
    """Score each node in [0, 1] (formula in the module docstring), computed once per site.

    Scores heat only: call filter_nodes first; a node's residency does not change its score. With
    explain=False the reasons of fresh sites are left empty (same scores; the benchmark places ~2 million jobs
    and never reads them).
    """
    nodes, sites = snap.nodes, snap.sites
    per_site: dict[str, tuple[float, str]] = {}
    out: list[float] = []
    best, best_score = None, -1.0
    for name in node_names:
        node = nodes.get(name)
        if node is None or node.conflict or not node.site or node.site not in sites:
            score = NEUTRAL
        else:
            verdict = per_site.get(node.site)
            if verdict is None:
                verdict = per_site[node.site] = _site_score(
                    sites[node.site], pod, snap.pending_kw.get(node.site, 0.0), params, explain)
            score = verdict[0]
        out.append(score)
        if score > best_score:
            best, best_score = name, score
    return SiteScores(out, per_site, best)


def score_nodes(
    pod: PodRequest,
    node_names: Sequence[str],
    snap: Snapshot,
    *,
    params: ScoreParams = DEFAULT_PARAMS,
    explain: bool = True,
) -> list[NodeScore]:
    """score_by_site, one NodeScore per node (in the order given)."""
    grouped = score_by_site(pod, node_names, snap, params=params, explain=explain)
    nodes = snap.nodes
    out: list[NodeScore] = []
    for name in node_names:
        node = nodes.get(name)
        score, reason = grouped.reason_of(node)
        site = node.site if node is not None and not node.conflict and node.site else None
        out.append(NodeScore(name, site, score, reason))
    return out


def _site_score(site: SiteView, pod: PodRequest, pending_kw: float, params: ScoreParams,
                explain: bool = True) -> tuple[float, str]:
    tank, t = site.tank, site.temperature_c
    prefix = f"site {site.name}"
    if site.state is ThermalState.UNKNOWN:
        return NEUTRAL, f"{prefix} state Unknown ({site.reason or 'no reading'}): neutral"
    if not site.fresh:
        return NEUTRAL, f"{prefix} reading stale (age {_age(site.reading_age_s)}): neutral"
    if t is None:
        return NEUTRAL, f"{prefix} has no temperature: neutral"
    span = tank.max_c - tank.min_c
    capacity = tank.volume_l * WATER_KWH_PER_LITRE_KELVIN
    if not (span > 0 and capacity > 0):
        return NEUTRAL, f"{prefix} tank limits invalid (min {tank.min_c}, max {tank.max_c}, {tank.volume_l} L): neutral"
    pod_kw = max(pod.cpu_cores, 0.0) * site.watts_per_cpu / 1000.0
    charged = max(pending_kw, 0.0) + pod_kw
    rise = charged * site.recovery_efficiency * params.horizon_h / capacity
    need = _clamp((tank.max_c - (t + rise)) / span)
    absorbable = site.absorbable_kw
    headroom = _clamp((absorbable - charged) / absorbable) if absorbable > 0 else 0.0
    score = params.need_weight * need + (1.0 - params.need_weight) * headroom
    if not 0.0 <= score <= 1.0:  # NaN from non-finite inputs
        return NEUTRAL, f"{prefix} has non-finite inputs: neutral"
    if not explain:
        return score, ""
    return score, (
        f"{prefix} {site.state.value} at {t:.1f} °C (min {tank.min_c:g}, max {tank.max_c:g}), "
        f"+{rise:.2f} K from {charged:.2f} kW charged: need {need:.2f}; "
        f"headroom {headroom:.2f} of {absorbable:.1f} kW absorbable; score {score:.2f}"
    )


def _clamp(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x  # noqa: FURB136 - reads as the clamp it is


def _age(seconds: float | None) -> str:
    return "unknown" if seconds is None else f"{seconds:.0f} s"


def ranked(scores: Sequence[NodeScore]) -> list[NodeScore]:
    """Best first; equal scores ordered by node name, so a ranking never depends on input order."""
    return sorted(scores, key=lambda s: (-s.score, s.node))
