"""Tables and charts of the drift evaluation (benches/drift_eval.py, benches/drift_peers.py):
prints markdown for docs/drift.md and writes the charts to docs/drift/.

    .venv/bin/python benches/drift_report.py [--dir target/drift-eval] [--charts docs/drift]
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OURS = ("mmd", "mmd_by_class", "ks", "bbsd", "classifier")
PEERS = ("alibi_mmd", "alibi_ks", "alibi_bbsd", "evidently_model", "evidently_ratio", "evidently_distance", "evidently_mmd")


def rate(cell) -> str:
    return "" if cell is None else f"{100 * cell['alarm_rate']:.0f}"


def table(rows, header) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def smallest_window(cells: dict, sizes, level=0.95):
    for s in sizes:
        cell = cells.get(str(s))
        if cell is not None and cell["alarm_rate"] >= level:
            return s
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("target/drift-eval"))
    parser.add_argument("--charts", type=Path, default=Path("docs/drift"))
    args = parser.parse_args()
    r = json.loads((args.dir / "results.json").read_text())
    peers_path = args.dir / "peers.json"
    peers = json.loads(peers_path.read_text()) if peers_path.exists() else {"peers": {}, "versions": {}}
    sizes = r["window_sizes"]
    ours = r["ours"]
    conds = r["conditions"]
    args.charts.mkdir(parents=True, exist_ok=True)

    print(f"Clean held-out accuracy {100 * r['clean_accuracy']:.1f}%; reference {r['reference_rows']} rows, "
          f"pool {r['pool_rows']} rows, {r['windows_per_cell']} windows per cell.\n")

    calibration_path = args.dir / "calibration.json"
    if calibration_path.exists():
        cal = json.loads(calibration_path.read_text())
        print(f"### False alarms over fresh reference/pool splits ({cal['splits']} splits per size, "
              "one window each, % at alpha 0.05; benches/drift_calibration.py)\n")
        rows = [[d] + [f"{100 * cal['alarm_rate'][str(s)][d]:.0f}" for s in sizes] for d in OURS]
        print(table(rows, ["detector"] + [f"n={s}" for s in sizes]))
        print()

    print("### False alarms without a shift, one fixed split (% of windows, alpha 0.05)\n")
    rows = []
    for c in conds:
        if c["family"] != "none":
            continue
        for d in OURS:
            rows.append([c["name"], d] + [rate(ours[c["name"]][d].get(str(s))) for s in sizes])
        for d in PEERS:
            cells = peers["peers"].get(c["name"], {}).get(d)
            if cells:
                rows.append([c["name"], d + f" ({next(iter(cells.values()))['windows']} windows)"] + [rate(cells.get(str(s))) for s in sizes])
    print(table(rows, ["condition", "detector"] + [f"n={s}" for s in sizes]))

    print("\n### Power under shifts (% of windows that alarm, alpha 0.05)\n")
    rows = []
    for c in conds:
        if c["family"] == "none":
            continue
        o = ours[c["name"]]
        row = [c["name"], f"{c['accuracy_drop_points']:.1f}"]
        for d in OURS:
            row.append(" / ".join(rate(o[d].get(str(s))) for s in (10, 20, 50)))
        rows.append(row)
    print(table(rows, ["shift", "accuracy drop (points)"] + [f"{d} n=10/20/50" for d in OURS]))

    print("\n### Smallest window with at least 95% power, shifts that cost 2 points or more\n")
    rows = []
    for c in conds:
        if c["family"] in ("none", "prior") or c["accuracy_drop_points"] < 2:
            continue
        row = [c["name"], f"{c['accuracy_drop_points']:.1f}"]
        for d in OURS:
            row.append(smallest_window(ours[c["name"]][d], sizes) or f">{sizes[-1]}")
        pc = peers["peers"].get(c["name"], {})
        for d in PEERS:
            if d in pc:
                psizes = sorted(int(s) for s in pc[d])
                row.append(smallest_window(pc[d], psizes) or f">{psizes[-1]}")
            else:
                row.append("-")
        rows.append(row)
    print(table(rows, ["shift", "drop"] + list(OURS) + list(PEERS)))

    print("\n### Time per check (ms, mean over the evaluation's windows)\n")
    rows = []
    base = conds[0]["name"]
    for d in OURS:
        rows.append([d] + [f"{ours[base][d][str(s)]['ms_per_check']:.2f}" for s in sizes])
    for d in PEERS:
        cells = peers["peers"].get(base, {}).get(d)
        if cells:
            rows.append([d] + [f"{cells[str(s)]['ms_per_check']:.1f}" if str(s) in cells else "" for s in sizes])
    print(table(rows, ["detector"] + [f"n={s}" for s in sizes]))
    print(f"\nPeer versions: {peers.get('versions')}")

    # Charts: power against severity (window 20) per family, and against window size.
    families = ["random_boxes", "mosaic", "random_line", "brightness", "contrast", "blur", "noise", "jpeg"]
    fig, axes = plt.subplots(2, 4, figsize=(16, 7), sharey=True)
    for ax, fam in zip(axes.flat, families):
        cs = sorted([c for c in conds if c["family"] == fam and c["severity"] != 100], key=lambda c: c["severity"])
        for d in OURS:
            ax.plot([c["name"] for c in cs], [ours[c["name"]][d]["20"]["alarm_rate"] for c in cs], marker="o", label=d)
        ax.set_title(f"{fam} (window 20)")
        ax.tick_params(axis="x", labelrotation=20)
        ax.axhline(0.05, color="grey", lw=0.8, ls=":")
    axes[0][0].set_ylabel("alarm rate")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.charts / "power_by_severity.png", dpi=90)

    picks = ["no shift (random)", "no shift (table order)", "box 5%", "mosaic 10%", "brightness +40", "jpeg q20", "blur 2px", "noise sd 5"]
    fig, axes = plt.subplots(2, 4, figsize=(16, 7), sharey=True)
    for ax, name in zip(axes.flat, picks):
        for d in OURS:
            cells = ours[name][d]
            xs = sorted(int(s) for s in cells)
            ax.plot(xs, [cells[str(s)]["alarm_rate"] for s in xs], marker="o", label=d)
        for d in ("alibi_mmd", "evidently_model"):
            cells = peers["peers"].get(name, {}).get(d)
            if cells:
                xs = sorted(int(s) for s in cells)
                ax.plot(xs, [cells[str(s)]["alarm_rate"] for s in xs], ls="--", marker="x", label=d)
        ax.set_xscale("log")
        ax.set_title(name)
        ax.axhline(0.05, color="grey", lw=0.8, ls=":")
    axes[0][0].set_ylabel("alarm rate")
    axes[0][0].legend(fontsize=7)
    for ax in axes[1]:
        ax.set_xlabel("window rows")
    fig.tight_layout()
    fig.savefig(args.charts / "power_by_window.png", dpi=90)


if __name__ == "__main__":
    main()
