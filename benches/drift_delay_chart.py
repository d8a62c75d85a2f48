"""Chart of the drift monitor's detection delay against severity, one panel per ImageNet-C
corruption, with the accuracy the shift costs (bars): what examples/drift_monitor_eval.rs
measured (its results.json).

    python benches/drift_delay_chart.py RESULTS_JSON OUT_PNG
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    results = json.load(open(sys.argv[1]))
    cells = [c for c in results["cells"] if c["severity"] > 0]
    kinds = list(dict.fromkeys(c["kind"] for c in cells))
    cols = 5
    rows = (len(kinds) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.3 * rows), sharex=True, sharey=True)
    ceiling = max(
        [d for c in cells for d in c["delays"] if d is not None] + [10]
    )
    for ax, kind in zip(axes.flat, kinds):
        mine = sorted((c for c in cells if c["kind"] == kind), key=lambda c: c["severity"])
        severities = [c["severity"] for c in mine]
        twin = ax.twinx()
        twin.bar(severities, [max(c["accuracy_loss_points"], 0) for c in mine], color="tab:orange", alpha=0.3, width=0.6)
        twin.set_ylim(0, 100)
        if kind not in kinds[cols - 1 :: cols]:
            twin.set_yticklabels([])
        for c in mine:
            found = [d for d in c["delays"] if d is not None]
            if found:
                ax.scatter([c["severity"]] * len(found), found, color="tab:blue", s=6, alpha=0.5)
        medians = [(c["severity"], c["median_delay"]) for c in mine if c["median_delay"] is not None]
        if medians:
            ax.plot(*zip(*medians), color="tab:blue", marker="o", ms=4)
        quiet = [c["severity"] for c in mine if c["median_delay"] is None]
        if quiet:
            ax.scatter(quiet, [ceiling * 1.5] * len(quiet), marker="x", color="grey")
        ax.set_yscale("log")
        ax.set_title(kind, fontsize=9)
        ax.set_xticks(severities)
    for ax in list(axes.flat)[len(kinds) :]:
        ax.axis("off")
    fig.supxlabel("severity")
    fig.supylabel("rows from the shift to the alarm (dots: seeds; x: no alarm in most seeds)")
    fig.suptitle("Drift monitor delay per ImageNet-C corruption at ERT 10,000 (bars: accuracy loss, points, right axis 0-100)")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=90)


if __name__ == "__main__":
    main()
