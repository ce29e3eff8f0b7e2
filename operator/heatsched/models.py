"""HeatSite and ThermalDemand: the two custom resources, as pydantic models.

Why a module of its own: these models are the single source of truth for the wire shapes. The CRDs in
crds/ are rendered from them (`heatsched crds`, see heatsched.crdgen), so every field's `description=`
becomes `kubectl explain` text, every default and bound is enforced twice (by the kube-apiserver through
the OpenAPI schema, and here when the operator, the twin or a test reads a manifest), and every
cross-field rule exists both as a pydantic validator and as a CEL rule (`x-kubernetes-validations`) next
to it, so the two cannot drift apart unnoticed (tests/test_crds.py compares them).

Wire names are camelCase (`volumeLitres`), Python names snake_case (`volume_litres`); both are accepted.
Units: temperatures in °C, power in kW (W where the name says so), energy in kWh, durations in seconds.

Both kinds are CLUSTER-scoped. A HeatSite is a piece of building infrastructure, not a tenant workload;
a ThermalDemand is the hot-water consumption of that building and steers where pods land: a tenant able
to create one could inflate a site's demand to pull pods onto it (or push them away). Only the site
operators, who may write cluster-scoped objects, can therefore declare demand.
"""

from __future__ import annotations

import enum
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypedDict, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from heatsched.placement.model import (
    COUNTRY_LABEL,
    LABEL_PREFIX,
    SITE_LABEL,
    STATE_LABEL,
    SiteView,
    Tank,
    ThermalState,
)

GROUP = "heatsched.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
HEATSITE_KIND, HEATSITE_PLURAL = "HeatSite", "heatsites"
THERMALDEMAND_KIND, THERMALDEMAND_PLURAL = "ThermalDemand", "thermaldemands"

# Labels the operator derives from site membership: selecting nodes by them would be circular.
RESERVED_SELECTOR_KEYS = (SITE_LABEL, COUNTRY_LABEL, STATE_LABEL)  # written by the operator itself
MAX_SELECTOR_TERMS = 16  # bounds the CEL cost of the selector rules

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
SITE_NAME_MAX = 63  # a site name is written into node label values and Prometheus labels
GAS_CARBON_KG_PER_KWH = 0.227  # natural gas per kWh burnt, lower heating value (ADEME Base Carbone; docs/fuel.md)
BOILER_EFFICIENCY = 0.9  # heat per kWh of gas of a boiler heating hot water to 60 °C (our assumption)
IMMUTABLE_COUNTRY = ("spec.country is immutable: resident pods run on this site's nodes; create a new HeatSite "
                     "for another country")  # a CEL transition rule: only the apiserver can check it (oldSelf)


class SpecError(ValueError):
    """A manifest that is not a valid HeatSite or ThermalDemand; the message says where and why."""


def _cel(*rules: tuple[str, str]) -> dict[str, Any]:
    """JSON-schema extra holding CEL rules, each (rule, message), for the rendered CRD."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}


class WireModel(BaseModel):
    """Base of every spec/status model: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict with wire (camelCase) names, as the apiserver stores it."""
        return self.model_dump(mode="json", by_alias=True)


# --------------------------------------------------------------------------------------------- selector


class SelectorOperator(str, enum.Enum):
    """Set-based label selector operator (as in metav1.LabelSelectorRequirement)."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


def _selector_key_problem(key: str) -> str | None:
    if not key.startswith(LABEL_PREFIX) or len(key) == len(LABEL_PREFIX):
        return (
            f"node selector key {key!r} must start with {LABEL_PREFIX!r}: only labels a kubelet cannot "
            "set on its own Node may place a node in a site"
        )
    if key in RESERVED_SELECTOR_KEYS:
        return f"node selector key {key!r} is written by the heatsched operator itself and cannot select a site's nodes"
    return None


def _key_cel(k: str) -> str:
    """The CEL twin of _selector_key_problem, for the key expression `k`."""
    reserved = "".join(f" && {k} != '{r}'" for r in RESERVED_SELECTOR_KEYS)
    return f"{k}.startsWith('{LABEL_PREFIX}') && size({k}) > {len(LABEL_PREFIX)}{reserved}"


_KEY_CEL_MESSAGE = (
    f"node selector keys must start with {LABEL_PREFIX} and must not be {' or '.join(RESERVED_SELECTOR_KEYS)}"
)


class LabelSelectorRequirement(WireModel):
    """One set-based term of a node selector."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            (_key_cel("self.key"), _KEY_CEL_MESSAGE),
            (
                (
                    "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0)"
                    " : (!has(self.values) || size(self.values) == 0)"
                ),
                "In and NotIn need values; Exists and DoesNotExist take none",
            ),
        )
    )

    key: str = Field(max_length=317, description="Node label key; must start with node-restriction.kubernetes.io/.")
    operator: SelectorOperator = Field(
        description="How the key relates to the values: In, NotIn, Exists, DoesNotExist."
    )
    values: list[Annotated[str, Field(max_length=63)]] = Field(
        default=[],
        max_length=64,
        description="Label values; non-empty for In and NotIn, empty for Exists and DoesNotExist.",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )

    @model_validator(mode="after")
    def _check(self) -> LabelSelectorRequirement:
        if problem := _selector_key_problem(self.key):
            raise ValueError(problem)
        needs_values = self.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN)
        if needs_values != bool(self.values):
            raise ValueError(f"operator {self.operator.value} {'needs' if needs_values else 'takes no'} values")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        match self.operator:
            case SelectorOperator.IN:
                return present and labels[self.key] in self.values
            case SelectorOperator.NOT_IN:
                return not present or labels[self.key] not in self.values
            case SelectorOperator.EXISTS:
                return present
            case SelectorOperator.DOES_NOT_EXIST:
                return not present


class LabelSelector(WireModel):
    """A metav1.LabelSelector over node labels that a kubelet cannot set itself.

    Every key must carry the node-restriction.kubernetes.io/ prefix: the NodeRestriction admission plugin
    forbids a kubelet to set such labels on its own Node, so a compromised node cannot join a site (and
    so claim a country) by relabelling itself. An empty selector would match every node and is rejected.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-map-type": "atomic",
            **_cel(
                (
                    (
                        "(has(self.matchLabels) ? size(self.matchLabels) : 0)"
                        " + (has(self.matchExpressions) ? size(self.matchExpressions) : 0) > 0"
                    ),
                    "an empty nodeSelector would select every node: give matchLabels or matchExpressions",
                )
            ),
        }
    )

    match_labels: dict[str, Annotated[str, Field(max_length=63, pattern=LABEL_VALUE)]] = Field(
        default={},
        max_length=MAX_SELECTOR_TERMS,
        description="Node labels that must all be present with these values "
        "(keys: node-restriction.kubernetes.io/...).",
        json_schema_extra=_cel((f"self.all(k, {_key_cel('k')})", _KEY_CEL_MESSAGE)),
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default=[],
        max_length=MAX_SELECTOR_TERMS,
        description="Set-based requirements, all of which must hold.",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )

    @model_validator(mode="after")
    def _check(self) -> LabelSelector:
        if not self.match_labels and not self.match_expressions:
            raise ValueError("an empty nodeSelector would select every node: give matchLabels or matchExpressions")
        for key in self.match_labels:
            if problem := _selector_key_problem(key):
                raise ValueError(problem)
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when a node with these labels is selected (all terms AND-ed, as in Kubernetes)."""
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            r.matches(labels) for r in self.match_expressions
        )


# --------------------------------------------------------------------------------------------- HeatSite


class TankSpec(WireModel):
    """The site's hot-water storage tank that the servers' heat goes into."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            (
                "self.minCelsius < self.targetCelsius && self.targetCelsius < self.maxCelsius",
                "tank temperatures must satisfy minCelsius < targetCelsius < maxCelsius",
            ),
            ("self.coldInletCelsius < self.minCelsius", "coldInletCelsius must be below minCelsius"),
        )
    )

    volume_litres: float = Field(gt=0, le=1_000_000, description="Water volume of the tank, in litres.")
    min_celsius: float = Field(
        55.0, ge=0, le=120,
        description="Floor the tank must not fall below (°C); 55 °C keeps legionella from growing.",
    )
    target_celsius: float = Field(60.0, ge=0, le=120, description="Temperature the site aims to hold (°C).")
    max_celsius: float = Field(
        85.0, ge=0, le=120,
        description="Highest safe tank temperature (°C); at or above it IT heat must be dumped. "
        "Above 90 °C only for pressurised tanks.",
    )
    cold_inlet_celsius: float = Field(
        12.0, ge=0, le=40, description="Temperature of the mains water that refills the tank (°C)."
    )

    @model_validator(mode="after")
    def _check(self) -> TankSpec:
        if not self.min_celsius < self.target_celsius < self.max_celsius:
            raise ValueError(
                "tank temperatures must satisfy minCelsius < targetCelsius < maxCelsius, got "
                f"{self.min_celsius:g} / {self.target_celsius:g} / {self.max_celsius:g}"
            )
        if not self.cold_inlet_celsius < self.min_celsius:
            raise ValueError(
                f"coldInletCelsius ({self.cold_inlet_celsius:g}) must be below minCelsius ({self.min_celsius:g})"
            )
        return self

    def to_tank(self) -> Tank:
        """The placement core's view of this tank."""
        return Tank(self.volume_litres, self.min_celsius, self.target_celsius, self.max_celsius)


class HeatRecovery(WireModel):
    """How much of the servers' electrical power ends up as heat in the tank, and how hot it can make it."""

    efficiency: float = Field(
        0.95, gt=0, le=1, description="Fraction (0-1] of IT electrical power recovered as heat into the tank."
    )
    supply_celsius: float | None = Field(
        None, ge=30, le=120,
        description="Hottest water the servers' cooling loop delivers (°C): server heat cannot lift the tank "
        "above it (warm-water cooling gives about 60-65 °C). Unset: server heat can reach tank.maxCelsius.",
    )


class FuelCriterion(str, enum.Enum):
    """What makes electric heat from fuel worth it against the backup burner."""

    CARBON = "Carbon"  # less CO2 per kWh of heat
    PRICE = "Price"  # cheaper per kWh of heat
    CARBON_AND_PRICE = "CarbonAndPrice"  # both


class FuelGuard(WireModel):
    """Runs fuel only when a kWh of heat from the grid beats a kWh of heat from the backup.

    Heat from fuel costs gridCarbon / heatRecovery.efficiency per kWh of heat; from the backup it costs
    backupCarbon / backupEfficiency (same for prices). Each grid figure is a static value or a PromQL query
    ($site and $country are replaced); with no usable value the guard keeps fuel off."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            (
                "self.criterion == 'Price' || has(self.gridCarbonKgPerKWh) || has(self.gridCarbonQuery)",
                "criterion Carbon or CarbonAndPrice needs gridCarbonKgPerKWh or gridCarbonQuery",
            ),
            (
                (
                    "self.criterion == 'Carbon' || ((has(self.gridPricePerKWh) || has(self.gridPriceQuery)) "
                    "&& has(self.backupPricePerKWh))"
                ),
                "criterion Price or CarbonAndPrice needs gridPricePerKWh or gridPriceQuery, and backupPricePerKWh",
            ),
        )
    )

    criterion: FuelCriterion = Field(
        FuelCriterion.CARBON, description="Carbon (default), Price, or CarbonAndPrice: what fuel must beat the backup on."
    )
    grid_carbon_kg_per_kwh: float | None = Field(
        None, alias="gridCarbonKgPerKWh", ge=0, le=2,
        description="Carbon intensity of the site's grid electricity (kgCO2e/kWh), e.g. 0.052 for France.",
    )
    grid_carbon_query: str | None = Field(
        None, min_length=1, max_length=4096,
        description="PromQL instant query for the grid carbon intensity (kgCO2e/kWh); wins over the static value.",
    )
    backup_carbon_kg_per_kwh: float = Field(
        GAS_CARBON_KG_PER_KWH, alias="backupCarbonKgPerKWh", ge=0, le=2,
        description="Emissions of the backup's fuel per kWh burnt (kgCO2e/kWh, lower heating value); "
        "0.227 is natural gas.",
    )
    backup_efficiency: float = Field(
        BOILER_EFFICIENCY, gt=0, le=1.2, description="Heat delivered per kWh of backup fuel burnt (boiler efficiency)."
    )
    grid_price_per_kwh: float | None = Field(
        None, alias="gridPricePerKWh", ge=0, le=100, description="Electricity price (per kWh, any currency)."
    )
    grid_price_query: str | None = Field(
        None, min_length=1, max_length=4096,
        description="PromQL instant query for the electricity price (per kWh); wins over the static value.",
    )
    backup_price_per_kwh: float | None = Field(
        None, alias="backupPricePerKWh", ge=0, le=100,
        description="Price of the backup's fuel per kWh burnt (same currency as the grid price).",
    )

    @model_validator(mode="after")
    def _check(self) -> FuelGuard:
        carbon = self.criterion in (FuelCriterion.CARBON, FuelCriterion.CARBON_AND_PRICE)
        price = self.criterion in (FuelCriterion.PRICE, FuelCriterion.CARBON_AND_PRICE)
        if carbon and self.grid_carbon_kg_per_kwh is None and self.grid_carbon_query is None:
            raise ValueError(f"criterion {self.criterion.value} needs gridCarbonKgPerKWh or gridCarbonQuery")
        if price and ((self.grid_price_per_kwh is None and self.grid_price_query is None)
                      or self.backup_price_per_kwh is None):
            raise ValueError(
                f"criterion {self.criterion.value} needs gridPricePerKWh or gridPriceQuery, and backupPricePerKWh"
            )
        return self


class FuelSpec(WireModel):
    """Heat fuel: preemptible work (the site owner's own mining, BOINC or batch container) that the controller
    runs on the site's idle cores when tenants do not supply enough heat and the guard says electric heat beats
    the backup. Its pods run at a PriorityClass below every tenant's, so tenant pods preempt them."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            ("self.minCores <= self.maxCores", "minCores must not exceed maxCores"),
            ("self.maxCores % self.coresPerPod == 0 && self.minCores % self.coresPerPod == 0",
             "minCores and maxCores must be multiples of coresPerPod"),
        )
    )

    enabled: bool = Field(True, description="false stops every fuel pod of the site.")
    template: dict[str, Any] = Field(
        description="Pod template (metadata.labels/annotations and spec) of one fuel pod. The controller sets "
        "its CPU request to coresPerPod, its priorityClassName, and a required node affinity pinning it to "
        "the site's nodes; nodeName, nodeSelector and affinity in the template are refused.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    cores_per_pod: int = Field(4, ge=1, le=1024, description="CPU cores one fuel pod requests.")
    min_cores: int = Field(0, ge=0, le=100_000, description="Fuel cores kept running whenever the guard allows.")
    max_cores: int = Field(ge=0, le=100_000, description="Most fuel cores the site may run.")
    namespace: str = Field(
        "heatsched-fuel", max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Namespace the fuel pods are created in (the controller must be allowed to manage pods there).",
    )
    priority_class_name: str = Field(
        "heatsched-fuel", max_length=253, pattern=DNS_SUBDOMAIN,
        description="PriorityClass of fuel pods: below every tenant's, preemptionPolicy Never (the chart ships one).",
    )
    horizon_seconds: int = Field(
        3600, ge=60, le=86_400, description="Fuel is sized to bring the tank to target over this horizon (s)."
    )
    hysteresis_kelvin: float = Field(
        2.0, ge=0, le=20, description="Fuel grows as soon as heat is short but shrinks only once the tank is this "
        "much warmer than the temperature that would call for less: no flapping.",
    )
    reserve_percent: float = Field(
        10.0, ge=0, le=100,
        description="Share of the site's allocatable cores fuel leaves free, as whole nodes fuel pods may not use, "
        "so a tenant burst up to that size is scheduled at once, without waiting for fuel pods to be preempted.",
    )
    guard: FuelGuard = Field(description="When electric heat is worth it against the backup.")

    @model_validator(mode="after")
    def _check(self) -> FuelSpec:
        if self.min_cores > self.max_cores:
            raise ValueError(f"minCores ({self.min_cores}) must not exceed maxCores ({self.max_cores})")
        if self.max_cores % self.cores_per_pod or self.min_cores % self.cores_per_pod:
            raise ValueError(
                f"minCores and maxCores must be multiples of coresPerPod ({self.cores_per_pod}), "
                f"got {self.min_cores} and {self.max_cores}"
            )
        spec = self.template.get("spec")
        if not isinstance(spec, dict) or not isinstance(spec.get("containers"), list) or not spec["containers"]:
            raise ValueError("template.spec.containers must list at least one container")
        for c in spec["containers"]:
            if not isinstance(c, dict) or not c.get("name") or not c.get("image"):
                raise ValueError("every template container needs a name and an image")
        pinned = [k for k in ("nodeName", "nodeSelector", "affinity", "priorityClassName", "priority") if k in spec]
        if pinned:
            raise ValueError(f"template.spec must not set {', '.join(pinned)}: the controller pins fuel pods to the "
                             "site and sets their priority")
        return self


class PowerModel(WireModel):
    """Estimates the electrical power of workloads placed on the site's nodes."""

    watts_per_cpu: float = Field(
        10.0, alias="wattsPerCPU", gt=0, le=1000, description="Power drawn per requested CPU core (W)."
    )
    idle_watts_per_node: float = Field(50.0, ge=0, le=10_000, description="Power drawn by an idle node (W).")


class Telemetry(WireModel):
    """Where the live tank temperature comes from."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            ("self.refreshSeconds <= self.maxAgeSeconds", "refreshSeconds must not exceed maxAgeSeconds"),
        )
    )

    temperature_query: str = Field(
        min_length=1, max_length=4096,
        description="PromQL instant query returning one sample: the tank temperature (°C). "
        "$site is replaced by the HeatSite name.",
    )
    refresh_seconds: int = Field(15, ge=1, le=3600, description="How often the operator re-reads the temperature (s).")
    max_age_seconds: int = Field(
        120, ge=1, le=86_400,
        description="Older readings are stale: the site's state becomes Unknown and placement ignores its heat (s).",
    )

    @model_validator(mode="after")
    def _check(self) -> Telemetry:
        if self.refresh_seconds > self.max_age_seconds:
            raise ValueError(
                f"refreshSeconds ({self.refresh_seconds}) must not exceed maxAgeSeconds ({self.max_age_seconds})"
            )
        return self


class HeatSiteSpec(WireModel):
    """A digital-boiler site: servers inside a building that heat its hot-water tank."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            (
                "(has(self.nodeNames) && size(self.nodeNames) > 0) || has(self.nodeSelector)",
                "a HeatSite needs nodeNames or a nodeSelector",
            ),
            (
                (
                    "!has(self.heatRecovery) || !has(self.heatRecovery.supplyCelsius) || "
                    "self.heatRecovery.supplyCelsius > self.tank.targetCelsius"
                ),
                "heatRecovery.supplyCelsius must be above tank.targetCelsius",
            ),
        )
    )

    country: str = Field(
        pattern=r"^[A-Z]{2}$",
        description="ISO 3166-1 alpha-2 code (upper case) of the country the site's nodes are in; "
        "drives data residency. Immutable: a building does not move, and resident pods run there.",
        json_schema_extra=_cel(("self == oldSelf", IMMUTABLE_COUNTRY)),
    )
    region: str | None = Field(None, max_length=128, description="Region, for people (optional).")
    city: str | None = Field(None, max_length=128, description="City, for people (optional).")
    time_zone: str = Field(
        "Europe/Paris", max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_+/-]*$",
        description="IANA time zone of the building: demand profiles follow its local clock (hot-water "
        "peaks follow people, not UTC).",
    )
    node_names: list[Annotated[str, Field(max_length=253, pattern=DNS_SUBDOMAIN)]] = Field(
        default=[],
        max_length=256,
        description="Nodes that belong to the site, by name.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    node_selector: LabelSelector | None = Field(
        None, description="Selects the site's nodes by labels under node-restriction.kubernetes.io/."
    )
    tank: TankSpec = Field(description="The hot-water tank the servers heat.")
    heat_recovery: HeatRecovery = Field(HeatRecovery(), description="Share of IT power recovered as heat.")
    power: PowerModel = Field(PowerModel(), description="Power model used to turn CPU requests into kW.")
    telemetry: Telemetry = Field(description="Live temperature source.")
    fuel: FuelSpec | None = Field(
        None, description="Heat fuel: preemptible work run on idle cores when tenants do not supply enough heat."
    )

    @model_validator(mode="after")
    def _check(self) -> HeatSiteSpec:
        if not self.node_names and self.node_selector is None:
            raise ValueError("a HeatSite needs nodeNames or a nodeSelector")
        supply = self.heat_recovery.supply_celsius
        if supply is not None and not supply > self.tank.target_celsius:
            raise ValueError(f"heatRecovery.supplyCelsius ({supply:g}) must be above tank.targetCelsius "
                             f"({self.tank.target_celsius:g}): the servers could never reach the target")
        if len(set(self.node_names)) != len(self.node_names):
            raise ValueError("nodeNames lists a node twice")
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timeZone {self.time_zone!r} is not an IANA time zone (e.g. Europe/Paris)") from None
        return self

    def server_tank(self) -> Tank:
        """The tank as server heat sees it: its top is min(maxCelsius, heatRecovery.supplyCelsius), since the
        cooling loop cannot lift the water above its own supply temperature."""
        tank = self.tank.to_tank()
        supply = self.heat_recovery.supply_celsius
        return tank if supply is None or supply >= tank.max_c else replace(tank, max_c=supply)

    def selects(self, node_name: str, labels: Mapping[str, str]) -> bool:
        """True when a node is a member of this site (named, or matched by the selector)."""
        return node_name in self.node_names or (
            self.node_selector is not None and self.node_selector.matches(labels)
        )


class ConditionStatus(str, enum.Enum):
    """Status of a condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(WireModel):
    """A metav1.Condition: one aspect of the object's current state."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        description="Condition type in CamelCase, e.g. Ready or TelemetryFresh.",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Machine-readable CamelCase reason for the last transition.",
    )
    message: str = Field("", max_length=32768, description="Human-readable details of the last transition.")
    last_transition_time: datetime = Field(description="When the status last changed (RFC 3339).")
    observed_generation: int | None = Field(
        None, ge=0, description="metadata.generation the condition was set for.",
        json_schema_extra={"format": "int64"},
    )


class _ConditionsField(TypedDict):
    """Field() arguments of every status's `conditions` (typed, so that mypy checks the Field calls)."""

    default: list[Condition]
    max_length: int
    description: str
    json_schema_extra: JsonDict


class _ObservedGenerationField(TypedDict):
    """Field() arguments of every status's `observedGeneration`."""

    default: int | None
    ge: int
    description: str
    json_schema_extra: JsonDict


_CONDITIONS: _ConditionsField = {
    "default": [],
    "max_length": 16,
    "description": "Standard conditions, one per type.",
    "json_schema_extra": {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
}
_OBSERVED_GENERATION: _ObservedGenerationField = {
    "default": None, "ge": 0, "description": "metadata.generation this status was computed from.",
    "json_schema_extra": {"format": "int64"},
}


class FuelStatus(WireModel):
    """What the site's heat fuel does now, and what it has cost and saved since the controller started counting."""

    cores: int = Field(0, ge=0, description="Fuel cores running (bound fuel pods).")
    planned_cores: int = Field(0, ge=0, description="Fuel cores the plan asks for.")
    pods: int = Field(0, ge=0, description="Fuel pods that exist (running or pending).")
    kw: float = Field(0.0, alias="kW", ge=0, description="Electric power of the running fuel (kW).")
    heat_kw: float = Field(0.0, alias="heatKW", ge=0, description="Heat the running fuel puts into the tank (kW).")
    electricity_kwh: float = Field(
        0.0, alias="electricityKWh", ge=0, description="Electricity used by fuel so far (kWh)."
    )
    heat_kwh: float = Field(0.0, alias="heatKWh", ge=0, description="Heat fuel put into the tank so far (kWh).")
    co2_kg: float = Field(0.0, alias="co2Kg", ge=0, description="CO2 of that electricity (kgCO2e).")
    co2_avoided_kg: float = Field(
        0.0, alias="co2AvoidedKg",
        description="Backup CO2 that fuel heat replaced, minus the fuel's own CO2 (kgCO2e; negative is a loss).",
    )
    allowed: bool = Field(False, description="Whether the guard lets fuel run now.")
    guard: str = Field("", max_length=1024, description="The guard's reason (both sides' kgCO2e or price per kWh of heat).")
    reason: str = Field("", max_length=1024, description="Why the plan asks for this many cores.")
    last_change_time: datetime | None = Field(None, description="When the planned cores last changed (RFC 3339).")


class HeatSiteStatus(WireModel):
    """What the operator last saw of the site (written by the operator only)."""

    temperature_celsius: float | None = Field(
        None, description="Last tank temperature (°C); null when there is no usable reading."
    )
    reading_time: datetime | None = Field(None, description="When that temperature was measured (RFC 3339).")
    reading_age_seconds: float | None = Field(
        None, ge=0, description="Age of the reading when the status was written (s)."
    )
    state: ThermalState = Field(
        ThermalState.UNKNOWN,
        description="Cold (< min), Heating (< target), Comfortable, Saturated (within the saturation band "
        "below max), Overheated (>= max), or Unknown (no fresh reading).",
    )
    reason: str = Field("", max_length=1024, description="Why the state is what it is.")
    heat_deficit_kwh: float = Field(
        0.0, alias="heatDeficitKWh", ge=0, description="Energy needed to bring the tank to target (kWh)."
    )
    absorbable_kw: float = Field(
        0.0, alias="absorbableKW", ge=0,
        description="IT power the tank can take over the next hour on top of the running IT load, "
        "demand included, without entering the saturation band (kW).",
    )
    demand_kw: float = Field(0.0, alias="demandKW", ge=0, description="Current heat demand of the site (kW).")
    it_load_kw: float = Field(0.0, alias="itLoadKW", ge=0, description="Estimated IT power of the site's pods (kW).")
    nodes: list[str] = Field(
        default=[], description="Names of the nodes in the site.", json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    node_count: int = Field(0, ge=0, description="Number of nodes in the site.")
    fuel: FuelStatus | None = Field(None, description="Heat fuel of the site; null when spec.fuel is unset.")
    observed_generation: int | None = Field(**_OBSERVED_GENERATION)
    conditions: list[Condition] = Field(**_CONDITIONS)

    @classmethod
    def from_view(
        cls,
        view: SiteView,
        *,
        reading_time: datetime | None,
        nodes: list[str],
        observed_generation: int | None = None,
        conditions: Sequence[Condition] = (),
        fuel: FuelStatus | None = None,
    ) -> HeatSiteStatus:
        """The status the operator writes for a site the placement core sees as `view`."""
        return cls(
            temperature_celsius=view.temperature_c,
            reading_time=reading_time,
            reading_age_seconds=view.reading_age_s,
            state=view.state,
            reason=view.reason[:1024],
            heat_deficit_kwh=view.heat_deficit_kwh,
            absorbable_kw=view.absorbable_kw,
            demand_kw=view.demand_kw,
            it_load_kw=view.it_load_kw,
            nodes=sorted(nodes),
            node_count=len(nodes),
            fuel=fuel,
            observed_generation=observed_generation,
            conditions=list(conditions),
        )


# ---------------------------------------------------------------------------------------- ThermalDemand


class DemandKind(str, enum.Enum):
    """What the heat is used for."""

    DOMESTIC_HOT_WATER = "DomesticHotWater"
    RECIRCULATION_LOOP = "RecirculationLoop"
    PROCESS_PREHEATING = "ProcessPreheating"
    SPACE_HEATING = "SpaceHeating"


class DemandSource(str, enum.Enum):
    """Where a demand's current value came from."""

    PROFILE = "Profile"
    LIVE = "Live"


_KW = Annotated[float, Field(ge=0, le=100_000)]
_FACTOR = Annotated[float, Field(ge=0, le=10)]


class SeasonFactors(WireModel):
    """Multipliers by meteorological season (northern hemisphere: winter = Dec-Feb, spring = Mar-May,
    summer = Jun-Aug, autumn = Sep-Nov)."""

    winter: float = Field(1.0, ge=0, le=10, description="Multiplier for December to February.")
    spring: float = Field(1.0, ge=0, le=10, description="Multiplier for March to May.")
    summer: float = Field(1.0, ge=0, le=10, description="Multiplier for June to August.")
    autumn: float = Field(1.0, ge=0, le=10, description="Multiplier for September to November.")


class DemandProfile(WireModel):
    """Typical demand: kW for each local hour, scaled by weekday and season factors."""

    hourly_kw: list[_KW] = Field(
        alias="hourlyKW", min_length=24, max_length=24,
        description="Mean heat demand (kW) for each local hour, 00:00-01:00 first: exactly 24 values.",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )
    weekday_factors: list[_FACTOR] = Field(
        default=[1.0] * 7, min_length=7, max_length=7,
        description="Multiplier per weekday, Monday first: exactly 7 values.",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )
    season_factors: SeasonFactors = Field(SeasonFactors(), description="Multiplier per season.")


class ThermalDemandSpec(WireModel):
    """A heat consumer of a HeatSite (hot water, a recirculation loop, process pre-heating ...)."""

    model_config = ConfigDict(
        json_schema_extra=_cel(("has(self.profile) || has(self.liveQuery)", "give a profile, a liveQuery or both"))
    )

    site_ref: str = Field(
        max_length=SITE_NAME_MAX, pattern=DNS_SUBDOMAIN, description="Name of the HeatSite this demand draws from."
    )
    kind: DemandKind = Field(
        description="DomesticHotWater, RecirculationLoop, ProcessPreheating or SpaceHeating."
    )
    description: str | None = Field(None, max_length=1024, description="What the demand is, for people.")
    profile: DemandProfile | None = Field(None, description="Typical demand, used when no live value is fresh.")
    live_query: str | None = Field(
        None, min_length=1, max_length=4096,
        description="PromQL instant query returning the current demand (kW); $site is replaced by siteRef "
        "and $demand by this object's name.",
    )

    @model_validator(mode="after")
    def _check(self) -> ThermalDemandSpec:
        if self.profile is None and self.live_query is None:
            raise ValueError("give a profile, a liveQuery or both")
        return self


class ThermalDemandStatus(WireModel):
    """The demand's current value as the operator last computed it."""

    current_kw: float | None = Field(
        None, alias="currentKW", ge=0, description="Current heat demand (kW); null when unknown."
    )
    source: DemandSource | None = Field(None, description="Profile or Live: where currentKW came from.")
    observed_generation: int | None = Field(**_OBSERVED_GENERATION)
    conditions: list[Condition] = Field(**_CONDITIONS)


# ------------------------------------------------------------------------------------------ manifests


@dataclass(frozen=True, slots=True)
class HeatSite:
    """A parsed HeatSite object."""

    name: str
    spec: HeatSiteSpec
    generation: int | None = None
    status: HeatSiteStatus | None = None
    uid: str | None = None  # to attach Events to the object


@dataclass(frozen=True, slots=True)
class ThermalDemand:
    """A parsed ThermalDemand object."""

    name: str
    spec: ThermalDemandSpec
    generation: int | None = None
    status: ThermalDemandStatus | None = None


def expand_query(query: str, site: str, demand: str | None = None) -> str:
    """Fill `$site` (and `$demand`) in a PromQL query; a query without placeholders is returned as is.

    Names are Kubernetes object names (DNS-1123), so they need no escaping inside a PromQL string.
    """
    values = {"site": site} if demand is None else {"site": site, "demand": demand}
    return string.Template(query).safe_substitute(values)


def format_validation_error(exc: ValidationError, where: str) -> str:
    """One readable line per problem: `where.spec.tank: minCelsius < targetCelsius ... (got ...)`."""
    lines = []
    for err in exc.errors():
        path = where
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        if err["type"] != "value_error" and isinstance(value, str | int | float) and not isinstance(value, bool):
            msg += f" (got {value!r})"
        lines.append(f"{path}: {msg}")
    return "\n".join(lines)


def _envelope(obj: Any, kind: str) -> tuple[str, Mapping[str, Any]]:
    if not isinstance(obj, Mapping):
        raise SpecError(f"a {kind} manifest must be a mapping, got {type(obj).__name__}")
    if obj.get("apiVersion") != API_VERSION or obj.get("kind") != kind:
        raise SpecError(
            f"expected apiVersion {API_VERSION} kind {kind}, got {obj.get('apiVersion')!r} {obj.get('kind')!r}"
        )
    meta = obj.get("metadata") or {}
    name = meta.get("name") if isinstance(meta, Mapping) else None
    if not isinstance(name, str) or not name:
        raise SpecError(f"{kind}: metadata.name is required")
    if meta.get("namespace"):
        raise SpecError(f"{kind} {name}: {kind} is cluster-scoped, remove metadata.namespace")
    return name, meta


_M = TypeVar("_M", bound=WireModel)


def _validate(model: type[_M], data: Any, where: str) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, where)) from None


def _status(model: type[_M], obj: Mapping[str, Any]) -> _M | None:
    """The operator's own last status, or None when absent or unreadable (it is rewritten anyway)."""
    try:
        return model.model_validate(obj["status"]) if obj.get("status") else None
    except ValidationError:
        return None


def parse_heatsite(obj: Any) -> HeatSite:
    """A HeatSite manifest (dict as in YAML or from the API) -> HeatSite; SpecError says what is wrong."""
    name, meta = _envelope(obj, HEATSITE_KIND)
    if len(name) > SITE_NAME_MAX:
        raise SpecError(f"HeatSite {name}: name longer than {SITE_NAME_MAX} characters (it is used as a label value)")
    spec = _validate(HeatSiteSpec, obj.get("spec"), f"HeatSite {name}: spec")
    return HeatSite(name, spec, meta.get("generation"), _status(HeatSiteStatus, obj), meta.get("uid"))


def parse_thermaldemand(obj: Any) -> ThermalDemand:
    """A ThermalDemand manifest -> ThermalDemand; SpecError says what is wrong."""
    name, meta = _envelope(obj, THERMALDEMAND_KIND)
    spec = _validate(ThermalDemandSpec, obj.get("spec"), f"ThermalDemand {name}: spec")
    return ThermalDemand(name, spec, meta.get("generation"), _status(ThermalDemandStatus, obj))


def parse_manifest(obj: Any) -> HeatSite | ThermalDemand:
    """Dispatch on `kind`."""
    kind = obj.get("kind") if isinstance(obj, Mapping) else None
    parsers: dict[str, Callable[[Any], HeatSite | ThermalDemand]] = {
        HEATSITE_KIND: parse_heatsite, THERMALDEMAND_KIND: parse_thermaldemand,
    }
    if kind not in parsers:
        raise SpecError(f"expected kind {' or '.join(parsers)}, got {kind!r}")
    return parsers[kind](obj)


def load_manifest(path: str | Path) -> list[HeatSite | ThermalDemand]:
    """Every HeatSite and ThermalDemand of a (multi-document) YAML file, in file order."""
    path = Path(path)
    try:
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: cannot read YAML: {exc}") from None
    out: list[HeatSite | ThermalDemand] = []
    for i, doc in enumerate(d for d in docs if d is not None):
        try:
            out.append(parse_manifest(doc))
        except SpecError as exc:
            raise SpecError(f"{path} (document {i + 1}): {exc}") from None
    return out
