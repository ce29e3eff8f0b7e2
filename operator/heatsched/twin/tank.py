"""Energy balance of one hot-water tank heated by servers, with a backup burner.

Why a module of its own: every number the twin exports, and every benchmark result, comes from this balance;
it is pure (no clock, no I/O) so it can be checked by hand and by an energy-conservation test.

Model: a *fully mixed* tank (one temperature T for the whole volume V). Real tanks stratify, so the outlet
is hotter than the mean; a mixed tank is the conservative reading for the legionella floor and for dumping,
and it is what one temperature probe reports. Stored energy is counted above a FIXED reference, the annual
mean cold inlet T_ref = TankParams.inlet_c (the manifest's coldInletCelsius), so a changing inlet moves no
energy by itself:

    C = V · ρ · c / 3600          [kWh/K]   (heatsched.thermal.energy_kwh: ρ = 1 kg/L, c = 4.186 kJ/(kg·K))
    E = C · (T − T_ref)           [kWh]

The cold water that replaces a draw arrives at the step's inlet temperature T_in (mains water: colder in
winter, warmer in summer; draw.inlet_celsius), which defaults to T_ref. T_max is where server heat stops:
the twin gives min(tank.maxCelsius, heatRecovery.supplyCelsius) (models.HeatSiteSpec.server_tank), since
the cooling loop cannot lift the water above its own supply temperature.

One explicit step of length dt (h = dt/3600 hours), all flows evaluated at the start temperature T0:

    Q_it     = P_it · η · h                               IT electricity × heat-recovery efficiency
    V_tank   = V_40 · (40 − T_in) / (T0 − T_in)           litres drawn from the tank for V_40 litres of
                                                          40 °C mixed use (if T0 <= 40: V_tank = V_40)
    Q_draw   = V_tank · ρ · c · (T0 − T_in) / 3600        = V_40 · ρc(40 − T_in)/3600 when T0 > 40 °C
                                                          (V_tank of T0 water leave, as much T_in water enters)
    Q_heat   = P_heat · h                                 loop, process, space heating (kW demands)
    Q_loss   = UA · (T0 − T_ambient) · h                  standing losses (negative if the room is warmer)
    T1       = T0 + (Q_it − Q_draw − Q_heat − Q_loss) / C
    Q_backup = min(P_backup · h, C · (T_min − T1))  if T1 < T_min     the burner holds the legionella floor
    Q_dump   = C · (T1 − T_max)                     if T1 > T_max     heat rejected, tank clamped at T_max

so that, exactly, ΔE = Q_it + Q_backup − Q_draw − Q_heat − Q_loss − Q_dump, whatever T_in does. Draws and
kW demands together never take more than C · (T0 − T_in) + Q_it: the tank cannot deliver below the inlet.

"Served by IT": stored heat is coloured. The tank keeps how much of E came from servers (E_it); each step the
inflows mix in, outflows leave with the IT share E_it/E, and dumped heat is charged to IT first (a tank only
dumps because servers overfilled it). Useful heat served by IT = share × (Q_draw + Q_heat), so the share of
demand met by servers is never over 1 and does not count the initial fill as server heat.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from heatsched.thermal import energy_kwh

MIXED_USE_C = 40.0  # hot-water volumes are quoted at 40 °C mixed use (ADEME/COSTIC convention)
DEFAULT_AMBIENT_C = 20.0


def heat_capacity_kwh_per_k(volume_l: float) -> float:
    """C = V · ρ · c / 3600 (kWh per kelvin)."""
    return energy_kwh(volume_l, 1.0)


def litres40_to_kwh(litres_40: float, inlet_c: float) -> float:
    """Heat needed to deliver `litres_40` of 40 °C water from the cold inlet: V_40 · ρc · (40 − T_in) / 3600."""
    return energy_kwh(litres_40, MIXED_USE_C - inlet_c)


def kw_to_litres40_per_hour(kw: float, inlet_c: float) -> float:
    """Inverse of litres40_to_kwh for a power: litres of 40 °C use per hour that `kw` of demand represents."""
    return kw / litres40_to_kwh(1.0, inlet_c)


def standing_loss_ua_kw_per_k(volume_l: float) -> float:
    """UA of a tank meeting the ErP energy-label class C limit.

    Commission Delegated Regulation (EU) No 812/2013, Annex II: class C standing loss
    S <= 16.66 + 8.33 · V^0.4 watts, measured at a 45 K tank-to-room difference. UA = S / 45 K.
    (1500 L: S ≈ 172 W, about 4.1 kWh/day at 60 °C.)
    """
    standing_loss_w: float = 16.66 + 8.33 * volume_l**0.4
    return standing_loss_w / 45.0 / 1000.0


@dataclass(frozen=True, slots=True)
class TankParams:
    volume_l: float
    min_c: float = 55.0  # legionella floor the backup holds (outlet; mixed tank: outlet = T)
    target_c: float = 60.0
    max_c: float = 85.0  # where server heat stops: min(tank max, coolant supply) for a HeatSite
    inlet_c: float = 12.0  # annual mean cold inlet: the energy reference, and the default step inlet
    efficiency: float = 0.95  # share of IT electricity recovered into the tank
    backup_kw: float = 30.0
    ua_kw_per_k: float | None = None  # None -> the ErP class C value for the volume
    ambient_c: float = DEFAULT_AMBIENT_C
    capacity_kwh_per_k: float = field(init=False)

    def __post_init__(self) -> None:
        problems = []
        if self.volume_l <= 0:
            problems.append(f"volume_l must be > 0, got {self.volume_l}")
        if not (self.inlet_c < self.min_c <= self.target_c <= self.max_c <= 120):
            problems.append(
                "temperatures must satisfy inlet < min <= target <= max <= 120 °C, got "
                f"inlet={self.inlet_c} min={self.min_c} target={self.target_c} max={self.max_c}"
            )
        if not 0 < self.efficiency <= 1:
            problems.append(f"efficiency must be in (0, 1], got {self.efficiency}")
        if self.backup_kw < 0 or (self.ua_kw_per_k or 0) < 0:
            problems.append("backup_kw and ua_kw_per_k must be >= 0")
        if problems:
            raise ValueError("; ".join(problems))
        if self.ua_kw_per_k is None:
            object.__setattr__(self, "ua_kw_per_k", standing_loss_ua_kw_per_k(self.volume_l))
        object.__setattr__(self, "capacity_kwh_per_k", heat_capacity_kwh_per_k(self.volume_l))


@dataclass(slots=True)
class TankState:
    """Temperature and cumulative energies (kWh) since the tank was created."""

    temperature_c: float
    stored_it_kwh: float = 0.0  # part of the stored energy (above T_ref) that came from servers
    it_kwh: float = 0.0
    backup_kwh: float = 0.0
    dumped_kwh: float = 0.0
    draw_kwh: float = 0.0  # heat delivered to hot-water draws
    heat_kwh: float = 0.0  # heat delivered to kW demands (loop, process, space heating)
    loss_kwh: float = 0.0
    served_by_it_kwh: float = 0.0
    unmet_kwh: float = 0.0  # demand the tank could not deliver (draws below 40 °C, tank at inlet)
    draw_tank_l: float = 0.0  # litres of tank water drawn
    seconds_below_min: float = 0.0


@dataclass(frozen=True, slots=True)
class StepFlows:
    """Energies (kWh) of one step; powers are these divided by the step's hours."""

    it: float
    backup: float
    draw: float
    heat: float
    loss: float
    dumped: float
    served_by_it: float


def step(
    p: TankParams,
    s: TankState,
    dt_s: float,
    it_kw: float,
    draw_l40: float,
    heat_kw: float,
    inlet_c: float | None = None,
) -> StepFlows:
    """Advance `s` in place by dt_s seconds (equations in the module docstring).

    `inlet_c` is the cold-water temperature of this step (None: p.inlet_c, the annual mean). Energies are
    counted above the fixed p.inlet_c whatever the step's inlet, so conservation holds exactly.
    """
    h = dt_s / 3600.0
    cap = p.capacity_kwh_per_k
    t_in = p.inlet_c if inlet_c is None else inlet_c
    if not t_in < p.min_c:
        raise ValueError(f"inlet {t_in} °C must be below the floor {p.min_c} °C")
    t0 = s.temperature_c
    e0 = cap * (t0 - p.inlet_c)

    q_it = it_kw * p.efficiency * h
    wanted_draw = litres40_to_kwh(draw_l40, t_in)
    if t0 > MIXED_USE_C:
        litres = draw_l40 * (MIXED_USE_C - t_in) / (t0 - t_in)
    else:
        litres = draw_l40  # too cold to mix down: users take tank water as it is
    litres = min(litres, p.volume_l)
    q_draw = max(0.0, energy_kwh(litres, t0 - t_in))
    q_heat = heat_kw * h
    available = max(0.0, cap * (t0 - t_in) + q_it)  # the tank cannot deliver below the inlet temperature
    if q_draw + q_heat > available:
        scale = available / (q_draw + q_heat)
        litres, q_draw, q_heat_served = litres * scale, q_draw * scale, q_heat * scale
    else:
        q_heat_served = q_heat
    unmet = max(0.0, wanted_draw - q_draw) + (q_heat - q_heat_served)
    q_heat = q_heat_served
    assert p.ua_kw_per_k is not None  # TankParams.__post_init__ fills it in
    q_loss = p.ua_kw_per_k * (t0 - p.ambient_c) * h

    t1 = t0 + (q_it - q_draw - q_heat - q_loss) / cap
    q_backup = 0.0
    if t1 < p.min_c:
        q_backup = min(p.backup_kw * h, (p.min_c - t1) * cap)
        t1 += q_backup / cap
    q_dump = 0.0
    if t1 > p.max_c:
        q_dump = (t1 - p.max_c) * cap
        t1 = p.max_c

    # colour bookkeeping: inflows mix in (ambient gains count as non-IT), outflows leave at the IT share
    gain = max(0.0, -q_loss)
    mixed = e0 + q_it + q_backup + gain
    it_mixed = s.stored_it_kwh + q_it
    share = min(1.0, it_mixed / mixed) if mixed > 0 else 0.0
    served = share * (q_draw + q_heat)
    e1 = cap * (t1 - p.inlet_c)
    s.stored_it_kwh = min(max(0.0, it_mixed - share * (q_draw + q_heat + max(0.0, q_loss)) - q_dump), max(0.0, e1))

    s.temperature_c = t1
    s.it_kwh += q_it
    s.backup_kwh += q_backup
    s.dumped_kwh += q_dump
    s.draw_kwh += q_draw
    s.heat_kwh += q_heat
    s.loss_kwh += q_loss
    s.served_by_it_kwh += served
    s.unmet_kwh += unmet
    s.draw_tank_l += litres
    if t1 < p.min_c - 1e-9:
        s.seconds_below_min += dt_s
    return StepFlows(q_it, q_backup, q_draw, q_heat, q_loss, q_dump, served)


def stored_kwh(p: TankParams, temperature_c: float) -> float:
    """E = C · (T − T_ref), T_ref = p.inlet_c (the fixed annual mean inlet)."""
    return p.capacity_kwh_per_k * (temperature_c - p.inlet_c)
