"""A seeded batch-job trace: what every policy of the benchmark has to place, identically.

Why it exists: policies can only be compared on the same jobs, so the trace is generated once from a seed,
before any policy runs, and depends only on its parameters (never on a policy's decisions).

Model (every number is a parameter of TraceParams; defaults documented in docs/twin.md):
- arrivals: non-homogeneous Poisson process, rate piecewise constant per minute,
      λ(t) = λ0 · diurnal(hour) · weekly(weekday)
      diurnal(h) = 1 + A · cos(2π (h − peak_hour) / 24)        (A = 0.5, peak 14:00: office-hours batch)
      weekly     = 1 on weekdays, `weekend` (0.6) on Saturday and Sunday
  λ0 is chosen so that the expected busy cores equal `utilization` × the cluster's cores
  (Little's law: busy = λ · E[cpu] · E[duration]); arrivals are uniform within their minute.
- CPU request: 2, 4, 8, 16 or 32 cores with weights 0.10 / 0.20 / 0.30 / 0.25 / 0.15 (mean 12.2 cores):
  rendering, simulation and CI batch work of the kind digital-boiler operators sell.
- duration: lognormal, median 2 h, σ = 0.7 (mean ≈ 2.6 h), clipped to [5 min, 12 h].
- residency: `restricted` (70 %) of jobs may run in one country only, drawn in proportion to each
  country's share of the cluster's cores (so no country is over-subscribed by construction); the rest are
  unrestricted. With the example sites that is ~65 % FR-only, ~5 % DE-only, 30 % unrestricted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from heatsched.placement.model import PodRequest
from heatsched.placement.residency import parse_residency


@dataclass(frozen=True, slots=True)
class TraceParams:
    utilization: float = 0.6
    cpu_choices: tuple[int, ...] = (2, 4, 8, 16, 32)
    cpu_weights: tuple[float, ...] = (0.10, 0.20, 0.30, 0.25, 0.15)
    median_duration_s: float = 2 * 3600.0
    duration_sigma: float = 0.7
    min_duration_s: float = 300.0
    max_duration_s: float = 12 * 3600.0
    diurnal_amplitude: float = 0.5
    peak_hour: float = 14.0
    weekend: float = 0.6
    restricted: float = 0.7

    def __post_init__(self) -> None:
        if not 0 < self.utilization < 1:
            raise ValueError(f"utilization must be in (0, 1), got {self.utilization}")
        if len(self.cpu_choices) != len(self.cpu_weights) or not math.isclose(sum(self.cpu_weights), 1.0):
            raise ValueError("cpu_choices and cpu_weights must have the same length and weights sum to 1")
        if not 0 < self.min_duration_s <= self.median_duration_s <= self.max_duration_s or self.duration_sigma <= 0:
            raise ValueError("durations must satisfy 0 < min <= median <= max, with sigma > 0")
        if not 0 <= self.restricted <= 1 or not 0 <= self.diurnal_amplitude < 1:
            raise ValueError("restricted must be in [0, 1] and diurnal_amplitude in [0, 1)")

    def mean_duration_s(self) -> float:
        """E[clip(X, a, b)] of the lognormal X = m·exp(σZ):

        a·Φ(α) + b·(1 − Φ(β)) + m·exp(σ²/2)·(Φ(β − σ) − Φ(α − σ)),
        α = ln(a/m)/σ,  β = ln(b/m)/σ
        """
        m, sig, a, b = self.median_duration_s, self.duration_sigma, self.min_duration_s, self.max_duration_s
        alpha, beta = math.log(a / m) / sig, math.log(b / m) / sig
        inside = m * math.exp(sig**2 / 2) * (_phi(beta - sig) - _phi(alpha - sig))
        return a * _phi(alpha) + b * (1 - _phi(beta)) + inside


def _phi(x: float) -> float:
    """Standard normal CDF."""
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    arrival_s: float  # seconds from the start of the simulation
    cpu: int
    duration_s: float
    residency: str | None  # the annotation value, e.g. "FR"; None = unrestricted
    pod: PodRequest  # what the placement core sees

    def steps(self, step_s: float) -> int:
        """Steps the job occupies its cores: its duration rounded up, at least one."""
        return max(1, math.ceil(self.duration_s / step_s))


def generate(
    params: TraceParams, start: datetime, seconds: float, country_cores: Mapping[str, int], seed: int
) -> list[Job]:
    """Jobs arriving in [0, seconds) after `start`, sorted by arrival; `country_cores` = cores per country."""
    total_cores = sum(country_cores.values())
    if total_cores <= 0:
        raise ValueError("the cluster has no cores")
    rng = np.random.default_rng(seed)
    minutes = math.ceil(seconds / 60)
    t = np.arange(minutes) * 60.0
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    offset = (start - midnight).total_seconds()
    hour = ((offset + t) % 86400) / 3600
    weekday = (midnight.weekday() + ((offset + t) // 86400).astype(int)) % 7
    shape = 1 + params.diurnal_amplitude * np.cos(2 * np.pi * (hour - params.peak_hour) / 24)
    shape *= np.where(weekday >= 5, params.weekend, 1.0)
    shape /= shape.mean()
    mean_cpu = float(np.dot(params.cpu_choices, params.cpu_weights))
    lam0 = params.utilization * total_cores / (mean_cpu * params.mean_duration_s())  # jobs per second
    counts = rng.poisson(lam0 * 60 * shape)
    n = int(counts.sum())
    arrivals = np.repeat(t, counts) + rng.uniform(0, 60, n)
    arrivals = arrivals[arrivals < seconds]
    arrivals.sort()
    n = len(arrivals)
    cpus = rng.choice(params.cpu_choices, size=n, p=params.cpu_weights)
    durations = np.clip(
        params.median_duration_s * np.exp(params.duration_sigma * rng.standard_normal(n)),
        params.min_duration_s,
        params.max_duration_s,
    )
    countries = sorted(country_cores)
    shares = np.array([country_cores[c] for c in countries], dtype=float) / total_cores
    restricted = rng.random(n) < params.restricted
    country_idx = rng.choice(len(countries), size=n, p=shares)
    jobs = []
    for i in range(n):
        residency = countries[country_idx[i]] if restricted[i] else None
        pod = PodRequest(
            name=f"job-{i}",
            residency=parse_residency(residency) if residency else None,
            cpu_cores=float(cpus[i]),
        )
        jobs.append(Job(i, float(arrivals[i]), int(cpus[i]), float(durations[i]), residency, pod))
    return jobs
