"""HeatSite / ThermalDemand models: examples parse, bad specs fail with readable messages, every CEL
rule of the CRDs has a pydantic twin that rejects the same manifest."""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from heatsched.crdgen import RESOURCES, crd
from heatsched.models import (
    IMMUTABLE_COUNTRY,
    HeatSite,
    HeatSiteSpec,
    HeatSiteStatus,
    LabelSelector,
    SpecError,
    ThermalDemand,
    expand_query,
    load_manifest,
    parse_heatsite,
    parse_manifest,
    parse_thermaldemand,
)
from heatsched.placement.model import SiteView, Tank, ThermalState

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
POOL = "node-restriction.kubernetes.io/heatsched-pool"


def _docs() -> tuple[dict, dict]:
    docs = list(yaml.safe_load_all((EXAMPLES / "montlucon-residence.yaml").read_text()))
    return docs[0], docs[1]


def _mutated(base: dict, path: str, value: object) -> dict:
    """Copy of `base` with the dotted `path` set to `value` (DELETE removes it)."""
    obj = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = obj
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return obj


DELETE = object()
SITE, DEMAND = _docs()
KEY_RULE = (
    "node selector keys must start with node-restriction.kubernetes.io/ and must not be "
    "node-restriction.kubernetes.io/heatsched-site or node-restriction.kubernetes.io/heatsched-country or "
    "node-restriction.kubernetes.io/heatsched-thermal-state"
)

# (name, base manifest, path, value, where the error must point, words the message must contain,
#  the CEL message of the CRD rule the apiserver applies to the same manifest, or None for a plain bound)
INVALID = [
    ("max below min", SITE, "spec.tank.maxCelsius", 50, "spec.tank", "minCelsius < targetCelsius < maxCelsius",
     "tank temperatures must satisfy minCelsius < targetCelsius < maxCelsius"),
    ("inlet not below min", SITE, "spec.tank", {"volumeLitres": 100, "minCelsius": 30, "coldInletCelsius": 35},
     "spec.tank", "coldInletCelsius (35) must be below minCelsius (30)", "coldInletCelsius must be below minCelsius"),
    ("country spelled out", SITE, "spec.country", "France", "spec.country", "got 'France'", None),
    ("unknown time zone", SITE, "spec.timeZone", "Europe/Atlantis", "spec", "not an IANA time zone", None),
    ("country lower case", SITE, "spec.country", "fr", "spec.country", "pattern", None),
    ("selector key without prefix", SITE, "spec.nodeSelector.matchLabels", {"heatsched-pool": "x"},
     "spec.nodeSelector", "must start with 'node-restriction.kubernetes.io/'",
     KEY_RULE),
    ("selector on the operator's own label", SITE, "spec.nodeSelector.matchLabels",
     {"node-restriction.kubernetes.io/heatsched-country": "FR"}, "spec.nodeSelector",
     "written by the heatsched operator", KEY_RULE),
    ("expression key without prefix", SITE, "spec.nodeSelector",
     {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, "spec.nodeSelector.matchExpressions[0]",
     "must start with",
     KEY_RULE),
    ("In without values", SITE, "spec.nodeSelector", {"matchExpressions": [{"key": POOL, "operator": "In"}]},
     "spec.nodeSelector.matchExpressions[0]", "operator In needs values",
     "In and NotIn need values; Exists and DoesNotExist take none"),
    ("empty selector", SITE, "spec.nodeSelector", {}, "spec.nodeSelector", "would select every node",
     "an empty nodeSelector would select every node: give matchLabels or matchExpressions"),
    ("no nodes at all", SITE, "spec.nodeSelector", DELETE, "spec", "needs nodeNames or a nodeSelector",
     "a HeatSite needs nodeNames or a nodeSelector"),
    ("refresh slower than max age", SITE, "spec.telemetry.refreshSeconds", 500, "spec.telemetry",
     "refreshSeconds (500) must not exceed maxAgeSeconds (120)", "refreshSeconds must not exceed maxAgeSeconds"),
    ("efficiency above one", SITE, "spec.heatRecovery.efficiency", 1.2, "spec.heatRecovery.efficiency", "1.2", None),
    ("unknown field", SITE, "spec.tank.colour", "red", "spec.tank.colour", "Extra inputs are not permitted", None),
    ("duplicate node names", SITE, "spec.nodeNames", ["n1", "n1"], "spec", "lists a node twice", None),
    ("23 hourly values", DEMAND, "spec.profile.hourlyKW", [1.0] * 23, "spec.profile.hourlyKW",
     "at least 24 items", None),
    ("6 weekday factors", DEMAND, "spec.profile.weekdayFactors", [1.0] * 6, "spec.profile.weekdayFactors", "7", None),
    ("negative demand", DEMAND, "spec.profile.hourlyKW", [-1.0] + [1.0] * 23, "spec.profile.hourlyKW[0]", "-1", None),
    ("demand of an unknown kind", DEMAND, "spec.kind", "Sauna", "spec.kind", "got 'Sauna'", None),
    ("neither profile nor live query", DEMAND, "spec", {"siteRef": "s", "kind": "DomesticHotWater"}, "spec",
     "give a profile, a liveQuery or both", "give a profile, a liveQuery or both"),
    ("supply below target", SITE, "spec.heatRecovery", {"efficiency": 0.95, "supplyCelsius": 58}, "spec",
     "supplyCelsius (58) must be above tank.targetCelsius (60)",
     ("heatRecovery.supplyCelsius must be above tank.targetCelsius")),
    ("fuel min above max", SITE, "spec.fuel.minCores", 2048, "spec.fuel", "minCores (2048) must not exceed maxCores",
     "minCores must not exceed maxCores"),
    ("fuel cores not whole pods", SITE, "spec.fuel.maxCores", 1022, "spec.fuel", "multiples of coresPerPod (4)",
     "minCores and maxCores must be multiples of coresPerPod"),
    ("fuel template pins a node", SITE, "spec.fuel.template", {"spec": {"nodeName": "n1", "containers": [
        {"name": "c", "image": "i"}]}}, "spec.fuel", "must not set nodeName", None),
    ("fuel template without containers", SITE, "spec.fuel.template", {"spec": {}}, "spec.fuel",
     "must list at least one container", None),
    ("carbon guard without grid carbon", SITE, "spec.fuel.guard", {"backupCarbonKgPerKWh": 0.2}, "spec.fuel.guard",
     "needs gridCarbonKgPerKWh or gridCarbonQuery",
     "criterion Carbon or CarbonAndPrice needs gridCarbonKgPerKWh or gridCarbonQuery"),
    ("price guard without prices", SITE, "spec.fuel.guard", {"criterion": "Price"}, "spec.fuel.guard",
     "needs gridPricePerKWh or gridPriceQuery, and backupPricePerKWh",
     "criterion Price or CarbonAndPrice needs gridPricePerKWh or gridPriceQuery, and backupPricePerKWh"),
    ("site name too long", SITE, "metadata.name", "x" * 64, "HeatSite", "longer than 63",
     "a HeatSite name is written into node labels: at most 63 characters"),
]


def test_every_example_parses_into_sites_and_their_demands():
    objects = [o for path in sorted(EXAMPLES.glob("*.yaml")) for o in load_manifest(path)]
    sites = {o.name for o in objects if isinstance(o, HeatSite)}
    demands = [o for o in objects if isinstance(o, ThermalDemand)]
    assert sites == {p.stem for p in EXAMPLES.glob("*.yaml")}
    assert demands and all(d.spec.site_ref in sites for d in demands)


@pytest.mark.parametrize("name,base,path,value,where,words,cel", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_manifest_is_rejected_with_a_message_saying_where_and_why(name, base, path, value, where, words, cel):
    with pytest.raises(SpecError) as err:
        parse_manifest(_mutated(base, path, value))
    message = str(err.value)
    assert f"{where}:" in message or f"{where} " in message
    assert words in message


def test_every_cel_rule_of_the_crds_has_an_invalid_case_that_pydantic_rejects_too():
    def messages(node):
        if isinstance(node, dict):
            yield from (r["message"] for r in node.get("x-kubernetes-validations", ()))
            for child in node.values():
                yield from messages(child)
        elif isinstance(node, list):
            for child in node:
                yield from messages(child)

    cel = {m for res in RESOURCES for m in messages(crd(res)["spec"]["versions"][0]["schema"])}
    transition = {IMMUTABLE_COUNTRY}  # rules on oldSelf: no single manifest is invalid, e2e checks them
    assert cel - transition == {case[-1] for case in INVALID if case[-1]}
    assert transition <= cel


def test_namespaced_manifest_is_rejected_because_both_kinds_are_cluster_scoped():
    with pytest.raises(SpecError, match="cluster-scoped"):
        parse_heatsite(_mutated(SITE, "metadata.namespace", "tenant-a"))


ENVELOPE = {"apiVersion": "heatsched.io/v1alpha1", "kind": "HeatSite", "metadata": {"name": "x"}}


@pytest.mark.parametrize(
    "obj,words",
    [
        ([1, 2], "must be a mapping"),
        ({**ENVELOPE, "apiVersion": "v1"}, "expected apiVersion heatsched.io/v1alpha1"),
        ({**ENVELOPE, "metadata": {}}, "metadata.name is required"),
        (ENVELOPE, "spec: Input should be"),  # no spec at all
    ],
)
def test_malformed_envelope_is_a_spec_error_not_a_crash(obj, words):
    with pytest.raises(SpecError, match=words):
        parse_heatsite(obj)


def test_parse_manifest_names_the_kinds_it_knows():
    with pytest.raises(SpecError, match="HeatSite or ThermalDemand"):
        parse_manifest({"kind": "Pod"})


def test_load_manifest_points_at_file_and_document(tmp_path):
    bad = _mutated(DEMAND, "spec.profile.hourlyKW", [1.0] * 23)
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump_all([SITE, bad]))
    with pytest.raises(SpecError, match=r"site\.yaml \(document 2\): ThermalDemand montlucon-residence-dhw: spec"):
        load_manifest(path)


@pytest.mark.parametrize("text", ["a: [unclosed", None])
def test_unreadable_file_is_a_spec_error(tmp_path, text):
    path = tmp_path / "broken.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(SpecError, match="cannot read YAML"):
        load_manifest(path)


def test_defaults_fill_what_the_manifest_leaves_out():
    spec = HeatSiteSpec.model_validate(
        {"country": "FR", "nodeNames": ["n1"], "tank": {"volumeLitres": 800}, "telemetry": {"temperatureQuery": "q"}}
    )
    t = spec.tank
    assert (t.min_celsius, t.target_celsius, t.cold_inlet_celsius) == (55, 60, 12)
    assert spec.heat_recovery.efficiency == 0.95
    assert (spec.telemetry.refresh_seconds, spec.telemetry.max_age_seconds) == (15, 120)
    demand = parse_thermaldemand(_mutated(DEMAND, "spec.profile", {"hourlyKW": [1.0] * 24})).spec
    assert demand.profile.weekday_factors == [1.0] * 7
    assert demand.profile.season_factors.winter == 1.0


def test_wire_names_and_python_names_are_both_accepted_and_wire_names_come_back_out():
    by_alias = HeatSiteSpec.model_validate(SITE["spec"])
    by_name = HeatSiteSpec(**by_alias.model_dump())
    assert by_name == by_alias
    wire = by_alias.to_wire()
    assert wire["tank"]["volumeLitres"] == SITE["spec"]["tank"]["volumeLitres"]
    assert wire["power"]["wattsPerCPU"] == SITE["spec"]["power"]["wattsPerCPU"]
    assert HeatSiteSpec.model_validate(wire) == by_alias


@pytest.mark.parametrize(
    "selector,labels,selected",
    [
        ({"matchLabels": {POOL: "a"}}, {POOL: "a"}, True),
        ({"matchLabels": {POOL: "a"}}, {POOL: "b"}, False),
        ({"matchLabels": {POOL: "a"}}, {}, False),
        ({"matchExpressions": [{"key": POOL, "operator": "In", "values": ["a", "b"]}]}, {POOL: "b"}, True),
        ({"matchExpressions": [{"key": POOL, "operator": "NotIn", "values": ["a"]}]}, {}, True),
        ({"matchExpressions": [{"key": POOL, "operator": "NotIn", "values": ["a"]}]}, {POOL: "a"}, False),
        ({"matchExpressions": [{"key": POOL, "operator": "Exists"}]}, {POOL: ""}, True),
        ({"matchExpressions": [{"key": POOL, "operator": "DoesNotExist"}]}, {POOL: "a"}, False),
        (
            {"matchLabels": {POOL: "a"}, "matchExpressions": [{"key": POOL + "-x", "operator": "Exists"}]},
            {POOL: "a"},
            False,
        ),
    ],
)
def test_label_selector_matches_as_kubernetes_does(selector, labels, selected):
    assert LabelSelector.model_validate(selector).matches(labels) is selected


def test_site_membership_is_by_name_or_by_selector():
    spec = HeatSiteSpec.model_validate({**SITE["spec"], "nodeNames": ["named"]})
    assert spec.selects("named", {})
    assert spec.selects("other", {POOL: "montlucon-residence"})
    assert not spec.selects("other", {POOL: "metz-hospital"})


@pytest.mark.parametrize(
    "query,demand,expected",
    [
        ('t{site="$site"}', None, 't{site="montlucon-residence"}'),
        ('d{site="$site",demand="$demand"}', "dhw", 'd{site="montlucon-residence",demand="dhw"}'),
        ('d{demand="$demand"}', None, 'd{demand="$demand"}'),
        ("fixed_metric", None, "fixed_metric"),
    ],
)
def test_query_placeholders_are_filled_and_fixed_queries_kept(query, demand, expected):
    assert expand_query(query, "montlucon-residence", demand) == expected


def test_status_from_a_site_view_uses_wire_names_and_keeps_unknown_temperature_null():
    view = SiteView(
        name="s", country="FR", tank=Tank(1500), state=ThermalState.UNKNOWN, reading_age_s=None,
        demand_kw=7.5, it_load_kw=2.0, reason="no reading",
    )
    status = HeatSiteStatus.from_view(view, reading_time=None, nodes=["b", "a"], observed_generation=3)
    wire = status.to_wire()
    assert wire["temperatureCelsius"] is None and "temperatureCelsius" in wire
    assert wire["state"] == "Unknown" and wire["demandKW"] == 7.5 and wire["itLoadKW"] == 2.0
    assert (wire["nodes"], wire["nodeCount"], wire["observedGeneration"]) == (["a", "b"], 2, 3)
    assert HeatSiteStatus.model_validate(wire) == status


def test_reading_time_serialises_as_rfc3339_utc():
    when = datetime(2026, 1, 15, 7, 30, tzinfo=UTC)
    wire = HeatSiteStatus(temperature_celsius=58.5, reading_time=when).to_wire()
    assert wire["readingTime"] == "2026-01-15T07:30:00Z"
    assert math.isclose(wire["temperatureCelsius"], 58.5)


def test_unreadable_previous_status_is_dropped_not_fatal():
    site = parse_heatsite({**SITE, "status": {"state": "Boiling"}})
    assert site.status is None and site.spec.country == "FR"
