"""Why a pod landed where it did: the extender's last scoring of each pod, kept in memory. No I/O.

Why in memory: writing an annotation per pod costs an API write and a watch event per binding (it held the
heat-aware scheduler to 0.33 of vanilla). The placement service keeps the record of every pod it scored and
saw bound (bounded, newest kept), serves it at GET /explain/{namespace}/{name} to `heatsched explain`, and
writes it as the `heatsched.io/placement` annotation only with --annotate-placements (opt-in, off the request
path).

    record = {node, site, country, state, tankCelsius, score, why, candidates, best, heatWaitBound?}
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from heatsched.placement.core import FilterResult, SiteScores
from heatsched.placement.model import Snapshot

PLACEMENT_ANNOTATION = "heatsched.io/placement"  # the opt-in annotation (--annotate-placements)
MAX_RECORDS = 10_000


class Explanations:
    def __init__(self, limit: int = MAX_RECORDS) -> None:
        self.limit = limit
        self.scored: OrderedDict[str, dict[str, Any]] = OrderedDict()  # pod uid -> scores, until it binds
        self.placed: OrderedDict[str, dict[str, Any]] = OrderedDict()  # "namespace/name" -> record

    def _scored(self, uid: str) -> dict[str, Any]:
        record = self.scored.setdefault(uid, {})
        self.scored.move_to_end(uid)
        while len(self.scored) > self.limit:
            self.scored.popitem(last=False)
        return record

    def remember_scores(self, uid: str, ref: str, scores: SiteScores) -> None:
        """Extender hook (prioritize): the scores of every candidate, kept per site (every node of a site has
        its site's score), so a record costs O(sites), not O(nodes)."""
        if uid:
            kept = SiteScores([], scores.sites, scores.best)  # not the per-node list
            self._scored(uid).update(scores=kept, candidates=len(scores.scores))

    def remember_relaxed(self, uid: str, result: FilterResult) -> None:
        """Extender hook (filter): the pod took heat-blocked nodes because it reached the heat wait bound."""
        if uid:
            self._scored(uid)["relaxed"] = dict(result.relaxed)

    def bound(self, uid: str, ref: str, node: str, snapshot: Snapshot) -> dict[str, Any]:
        """A heat-aware pod seen bound to `node`: its record. Without scores when this replica did not score it
        (another replica did, or kube-scheduler skipped prioritize because one node was feasible): where it
        landed and the site's state then."""
        scored = self.scored.pop(uid, {})
        view = snapshot.nodes.get(node)
        site = view.site if view is not None else None
        record: dict[str, Any] = {"node": node, "site": site}
        sv = snapshot.sites.get(site) if site else None
        if sv is not None:
            record.update(country=sv.country, state=sv.state.value,
                          tankCelsius=None if sv.temperature_c is None else round(sv.temperature_c, 1))
        scores: SiteScores | None = scored.get("scores")
        if scores is not None:
            score, why = scores.reason_of(view)
            record.update(score=round(score, 3), why=why, candidates=scored["candidates"], best=scores.best)
        if node in scored.get("relaxed", {}):
            record["heatWaitBound"] = scored["relaxed"][node]
        self.placed[ref] = record
        self.placed.move_to_end(ref)
        while len(self.placed) > self.limit:
            self.placed.popitem(last=False)
        return record


def explain_line(record: dict[str, Any]) -> str:
    """One line for an Event: where the pod landed and why."""
    where = f"node {record.get('node')} in site {record.get('site') or '-'} ({record.get('country') or '?'})"
    tank = record.get("tankCelsius")
    state = f"tank {'unknown' if tank is None else f'{tank:.1f} °C'}, {record.get('state', '?')}"
    score = record.get("score")
    why = f"score {score:.2f} of {record.get('candidates', '?')} candidates: {record.get('why')}" if score is not None \
        else "no score from this replica (one feasible node, or another replica scored it)"
    bound = f"; heat wait bound used: {record['heatWaitBound']}" if record.get("heatWaitBound") else ""
    return f"{where}, {state}; {why}{bound}"
