"""PNG plots of a benchmark run (matplotlib, Agg backend: no display needed).

Why it exists: a table says how much gas each policy burnt; the plots show when and where — tanks held up by
fuel or left at their floor (burner on), gas piling up against the least any policy could burn, and the fuel
each site ran — which is what explains the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported: the backend must be chosen first
import matplotlib.pyplot as plt
import numpy as np

from heatsched.twin.simulate import Report

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def write_plots(report: Report, directory: str | Path) -> list[Path]:
    """temperatures.png (fuel on and off), gas.png (cumulative gas per policy and the LP bounds), and, with a
    fuel policy, fuel.png (fuel kW per site). Returns the paths written."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    sc = report.scenario
    hours = np.arange(sc.steps) * sc.config.step_s / 3600
    stride = max(1, int(900 // sc.config.step_s))  # 15-minute points are plenty
    start = f"hours from {sc.config.start:%Y-%m-%d %H:%M}"
    shown = [r for r in report.results if r.policy in ("heat-aware", "heat-aware+fuel")] or report.results
    paths = []

    fig, axes = plt.subplots(len(sc.sites), 1, figsize=(12, 2.6 * len(sc.sites)), sharex=True, squeeze=False)
    for i, (ax, site) in enumerate(zip(axes[:, 0], sc.sites)):
        for r in shown:
            ax.plot(hours[::stride], r.temperature_c[i, ::stride], label=r.policy, linewidth=1)
        ax.axhline(site.tank.min_c, color="tab:blue", linestyle=":", linewidth=0.8)
        ax.axhline(site.tank.max_c, color="tab:red", linestyle=":", linewidth=0.8)
        ax.set_ylabel("°C")
        ax.set_title(f"{site.name} ({site.country}) tank: floor {site.tank.min_c:g} °C, server heat top "
                     f"{site.tank.max_c:g} °C", fontsize=9)
    axes[0, 0].legend(loc="upper right", fontsize=8, ncol=len(shown))
    axes[-1, 0].set_xlabel(start)
    fig.tight_layout()
    paths.append(_save(fig, out / "temperatures.png"))

    fig, ax = plt.subplots(figsize=(10, 4))
    for r in report.results:
        ax.plot(hours[::stride], r.backup_kwh_cum[::stride], label=r.policy)
    for label, b, style in (("LP bound", report.lp, "--"), ("LP bound with fuel", report.lp_fuel, ":")):
        if b is not None and b.gas_kwh_by_hour:
            ax.plot(np.arange(1, len(b.gas_kwh_by_hour) + 1), np.cumsum(b.gas_kwh_by_hour), "k" + style, label=label)
    ax.set_xlabel(start)
    ax.set_ylabel("kWh")
    ax.set_title("Cumulative gas (backup heat), all sites, against the least any policy could burn")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(_save(fig, out / "gas.png"))

    fuelled = next((r for r in report.results if r.fuel_kw is not None), None)
    if fuelled is not None and fuelled.fuel_kw is not None:
        fig, ax = plt.subplots(figsize=(10, 4))
        for i, site in enumerate(sc.sites):
            ax.plot(hours[::stride], fuelled.fuel_kw[i, ::stride], label=f"{site.name} ({site.country})", linewidth=1)
        ax.set_xlabel(start)
        ax.set_ylabel("kW (electric)")
        ax.set_title(f"Heat fuel per site ({fuelled.policy})")
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(_save(fig, out / "fuel.png"))
    return paths


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
