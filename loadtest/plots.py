"""PNG plots per scenario: throughput, latency and queue depth over time (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

INSTALL_HINT = "plots need matplotlib: pip install 'volreg[loadtest]'"


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_scenario(name: str, scenario: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    timeline = scenario["timeline"]
    ts = [row["t"] + row["seconds"] / 2 for row in timeline]
    queue = scenario.get("queue") or {}
    rows = 3 if queue.get("samples") else 2
    fig, axes = plt.subplots(rows, 1, figsize=(8, 2.4 * rows), sharex=True)
    axes[0].plot(ts, [row["rps"] for row in timeline], marker="o")
    axes[0].set_ylabel("requests/s")
    axes[0].set_ylim(bottom=0)
    axes[0].set_title(f"{name}: {scenario['about']}")
    axes[1].plot(ts, [row["p50_ms"] for row in timeline], marker="o", label="p50")
    axes[1].plot(ts, [row["p99_ms"] for row in timeline], marker="o", label="p99")
    axes[1].set_ylabel("latency ms")
    axes[1].set_ylim(bottom=0)
    axes[1].legend(loc="upper right")
    if rows == 3:
        samples = queue["samples"]
        axes[2].step([t for t, _ in samples], [d for _, d in samples], where="post")
        # Ready messages only: what the consumer prefetched (unacked) is not counted.
        axes[2].set_ylabel("ready messages")
        axes[2].set_ylim(0, max(1, queue["max_depth"] or 0) * 1.1)
        end = timeline[-1]["t"] + timeline[-1]["seconds"] if timeline else 0
        axes[2].axvline(end, color="grey", linestyle="--", linewidth=1, label="load stops")
        if queue.get("mysql_caught_up_s") is not None:
            caught_up = end + queue["mysql_caught_up_s"]
            axes[2].axvline(caught_up, color="green", linewidth=1, label="MySQL caught up")
        axes[2].legend(loc="upper left")
    axes[-1].set_xlabel("seconds since the scenario started")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_all(report: dict[str, Any], out_dir: Path) -> list[Path]:
    return [
        plot_scenario(name, s, out_dir / f"{name}.png")
        for name, s in report["scenarios"].items()
        if s["timeline"]
    ]
