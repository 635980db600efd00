"""comparison.png: accuracy against label count for the rows of :func:`.compare.build_table`
(log x axis, error bars = std over seeds, baselines grey and dotted, thesis rows dashed)."""
from __future__ import annotations

from pathlib import Path


def plot(table: dict, path: Path, title: str = "Few-label MNIST test accuracy", split: str = "test") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.5))
    colours = plt.get_cmap("tab20").colors     # one colour per method row up to 20, then markers differ too
    markers = "os^Dv<>ph*"
    methods = [row for row in table["rows"] if row["source"] != "thesis" and not row.get("baseline")]
    for row in table["rows"]:
        xs = sorted(row["cells"])
        ys = [row["cells"][x]["mean"] for x in xs]
        if row["source"] == "thesis":
            ax.plot(xs, ys, linestyle="--", marker="x", alpha=0.6, label=row["name"])
            continue
        i = next((k for k, m in enumerate(methods) if m is row), 0)
        style = {"marker": markers[i % len(markers)], "color": colours[(2 * i + i // 10) % len(colours)]}
        if row.get("baseline"):    # grey, dotted: baselines, not methods
            style = {"marker": "s", "linestyle": ":", "color": "0.35" if row["protocol"] == "scratch" else "0.6"}
        err = [row["cells"][x]["std"] or 0.0 for x in xs]
        ax.errorbar(xs, ys, yerr=err, capsize=3, label=row["name"], **style)
    ax.set_xscale("log")
    ticks = sorted({x for row in table["rows"] for x in row["cells"]})
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("labeled training images (log scale)")
    ax.set_ylabel(f"{split} accuracy")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))     # beside the axes, never over a line
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
