"""PNG plots of a benchmark run (matplotlib, Agg backend: no display needed).

Why it exists: a table says how much gas each policy burnt; the plots show when and where — tanks pinned at
their maximum (dumping) or at their floor (burner on) — which is what explains the table.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from heatsched.twin.simulate import Report  # noqa: E402


def write_plots(report: Report, directory: str | Path) -> list[Path]:
    """Write temperatures.png (tank temperature per site, one line per policy) and backup.png; return paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    sc = report.scenario
    hours = np.arange(sc.steps) * sc.config.step_s / 3600
    stride = max(1, int(900 // sc.config.step_s))  # 15-minute points are plenty for a week

    fig, axes = plt.subplots(len(sc.sites), 1, figsize=(12, 2.6 * len(sc.sites)), sharex=True, squeeze=False)
    for i, (ax, site) in enumerate(zip(axes[:, 0], sc.sites)):
        for r in report.results:
            ax.plot(hours[::stride], r.temperature_c[i, ::stride], label=r.policy, linewidth=1)
        ax.axhline(site.tank.min_c, color="tab:blue", linestyle=":", linewidth=0.8)
        ax.axhline(site.tank.max_c, color="tab:red", linestyle=":", linewidth=0.8)
        ax.set_ylabel("°C")
        ax.set_title(f"{site.name} ({site.country}) tank, floor {site.tank.min_c:g} °C, max {site.tank.max_c:g} °C",
                     fontsize=9)
    axes[0, 0].legend(loc="upper right", fontsize=8, ncol=len(report.results))
    axes[-1, 0].set_xlabel(f"hours from {sc.config.start:%Y-%m-%d %H:%M}")
    fig.tight_layout()
    temperatures = out / "temperatures.png"
    fig.savefig(temperatures, dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 4))
    for r in report.results:
        ax.plot(hours[::stride], r.backup_kwh_cum[::stride], label=r.policy)
    ax.set_xlabel(f"hours from {sc.config.start:%Y-%m-%d %H:%M}")
    ax.set_ylabel("kWh")
    ax.set_title("Cumulative backup energy, all sites")
    ax.legend()
    fig.tight_layout()
    backup = out / "backup.png"
    fig.savefig(backup, dpi=100)
    plt.close(fig)
    return [temperatures, backup]
