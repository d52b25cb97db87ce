"""The capacity plan's charts: demand over the match, and each component's load against its
capacity at the peak (PNG, matplotlib without a display)."""

from __future__ import annotations

from pathlib import Path

from matchday.capacity.plan_model import Plan


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def demand_chart(p: Plan, path: Path) -> Path:
    plt = _pyplot()
    series = p.demand.series()
    minutes = [t / 60 for t in p.demand.times_s]
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    for cls, values in series.items():
        if max(values, default=0) > 0:
            ax.plot(minutes, values, label=cls)
    total = [sum(v[i] for v in series.values()) for i in range(len(minutes))]
    ax.plot(minutes, total, color="black", linewidth=2, label="total")
    ax.set_xlabel("minutes into the scenario")
    ax.set_ylabel("requests/s")
    ax.set_title(f"{p.demand.mix}: {p.demand.peak_users:,} users at the peak")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def load_chart(p: Plan, path: Path) -> Path:
    plt = _pyplot()
    limits = list(reversed(p.limits))  # the first to saturate on top
    share = [100 * x.load / x.capacity for x in limits]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(limits) + 1.5), dpi=100)
    colours = ["tab:red" if s >= 100 else "tab:orange" if s >= 100 * p.options.utilisation
               else "tab:blue" for s in share]  # fmt: skip
    ax.barh([x.name for x in limits], share, color=colours)
    for i, value in enumerate(share):
        ax.text(value, i, f" {value:,.0f}%", va="center", fontsize=7)
    if max(share) > 300:  # a component far past saturation would flatten every other bar
        ax.set_xscale("log")
    ax.axvline(100 * p.options.utilisation, color="grey", linestyle="--", label="target")
    ax.axvline(100, color="red", linestyle="-", label="saturated")
    ax.set_xlabel("% of capacity at the peak" + (" (log scale)" if max(share) > 300 else ""))
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
