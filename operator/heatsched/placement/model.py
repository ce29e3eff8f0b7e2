"""Plain data the placement core decides on.

Why a module of its own: the extender, the operator, the digital twin and the policy benchmark all hand
the *same* shapes to the placement core, so the core never learns where numbers came from (Prometheus,
a simulated tank, a test table). Nothing here imports kopf, kubernetes or Prometheus code.

Units: temperatures in °C, power in kW, energy in kWh, ages in seconds, CPU in cores.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

# Node labels the operator writes. The `node-restriction.kubernetes.io/` prefix is the one prefix the
# NodeRestriction admission plugin forbids a kubelet to set on its own Node, so a compromised node cannot
# claim to be in France.
LABEL_PREFIX = "node-restriction.kubernetes.io/"
SITE_LABEL = LABEL_PREFIX + "heatsched-site"
COUNTRY_LABEL = LABEL_PREFIX + "heatsched-country"
# The site's thermal state, mirrored on its nodes: a label change is a cluster event that makes
# kube-scheduler retry pods it left pending when a tank was too hot.
STATE_LABEL = LABEL_PREFIX + "heatsched-thermal-state"
# On heat fuel pods (the controller's own, in the site's fuel namespace): never tenant load.
FUEL_SITE_LABEL = "heatsched.io/fuel-site"


class ThermalState(str, enum.Enum):
    """Where a site's tank stands against its limits (see heatsched.thermal for the thresholds)."""

    COLD = "Cold"  # below the legionella floor: the site badly needs heat
    HEATING = "Heating"  # between floor and target: heat wanted
    COMFORTABLE = "Comfortable"  # at or above target, with room below the maximum
    SATURATED = "Saturated"  # close to the maximum: no more IT heat can be absorbed soon
    OVERHEATED = "Overheated"  # at or over the maximum: heat would be dumped
    UNKNOWN = "Unknown"  # no fresh, sane reading: heat preference is neutral

    @property
    def blocks_new_pods(self) -> bool:
        """A saturated or overheated tank takes no new pods (it will cool: resolvable)."""
        return self in (ThermalState.SATURATED, ThermalState.OVERHEATED)


@dataclass(frozen=True, slots=True)
class Tank:
    volume_l: float
    min_c: float = 55.0
    target_c: float = 60.0
    max_c: float = 90.0


@dataclass(frozen=True, slots=True)
class SiteView:
    """One site as the operator last saw it.

    `temperature_c` is None when there is no usable reading: never read as 0 °C.
    `fresh` is False when the reading is older than the site's max age; the core then scores neutrally.
    """

    name: str
    country: str | None  # ISO 3166-1 alpha-2, upper case; None = unknown (fails residency closed)
    tank: Tank
    state: ThermalState = ThermalState.UNKNOWN
    temperature_c: float | None = None
    reading_age_s: float | None = None
    fresh: bool = False
    heat_deficit_kwh: float = 0.0  # energy to bring the tank to target
    absorbable_kw: float = 0.0  # IT power the tank can take over the scoring horizon, net of demand
    demand_kw: float = 0.0
    it_load_kw: float = 0.0
    watts_per_cpu: float = 10.0  # from the HeatSite power model
    recovery_efficiency: float = 0.95
    reason: str = ""  # why the state is what it is (shown by explain)


@dataclass(frozen=True, slots=True)
class NodeView:
    """A candidate node: which site it belongs to and which country its (protected) label says."""

    name: str
    site: str | None = None
    country: str | None = None
    conflict: str | None = None  # set when two sites claim the node: fails residency closed


@dataclass(frozen=True, slots=True)
class PodRequest:
    """What the core needs of a pod: its residency (None = unrestricted) and its CPU request."""

    name: str
    namespace: str = "default"
    residency: frozenset[str] | None = None  # expanded set of allowed countries
    cpu_cores: float = 0.0


@dataclass(slots=True)
class Snapshot:
    """Everything placement reads: sites by name, nodes by name, and heat charged by recent bindings.

    `pending_kw[site]` is the estimated IT power of pods bound to the site since its last reading; the core
    charges it against the site's headroom until a fresh reading supersedes it.
    """

    sites: dict[str, SiteView] = field(default_factory=dict)
    nodes: dict[str, NodeView] = field(default_factory=dict)
    pending_kw: dict[str, float] = field(default_factory=dict)
