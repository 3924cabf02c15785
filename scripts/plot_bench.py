#!/usr/bin/env python3
"""Draws one run of scripts/bench.sh as two SVG figures.

    .local/venv-plot/bin/python scripts/plot_bench.py [RESULTS.jsonl] [--out DIR] [--note TEXT]

RESULTS.jsonl is what bench.sh writes (.local/bench/<time>.jsonl; the newest one when no file
is named): one JSON object per line, each tagged by bench.sh with its `series`. The lines read
here are the load generator's (`loadgen run`: `accepted_per_sec`,
`approved_contracts_per_sec_end_to_end`, `accept_p50_ms`/`_p95_ms`/`_p99_ms`, `rate` for an
open loop, null for a closed one) and the SQL ceiling's (`single_contract_ceiling_per_sec`,
and `best`: the best concurrency for each batch size). Other series (CPU shares, the floor,
the drain) are not drawn.

Writes, into --out:
  throughput.svg      approved contracts/s end to end and accepted requests/s of each series
                      (closed loop; open loop at its offered rate), median of the runs with
                      their spread, against the single-contract SQL ceiling of the same run;
  accept-latency.svg  accept latency p50 / p95 / p99 at 50 requests/s, at half of peak and at
                      peak (closed loop, 2 worker processes), on a log scale.

bench.sh runs it at its end, from a virtualenv it makes once (.local/venv-plot, matplotlib
from PyPI, the version pinned in bench.sh), so no system package is needed. The SVGs
carry no date and fixed element ids, so redrawing the same results gives the same files.
"""
import argparse
import glob
import json
import os
import statistics
import sys

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend is chosen first)
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter  # noqa: E402

# Deterministic SVGs: element ids from a fixed salt, and no creation date (set at savefig).
matplotlib.rcParams["svg.hashsalt"] = "xyz-bench"
matplotlib.rcParams["font.size"] = 9

# Closed-loop series, in the order bench.sh runs them, with their labels.
CLOSED = [
    ("e2e-workers-1", "1 worker process"),
    ("e2e-workers-2", "2 worker processes"),
    ("e2e-workers-4", "4 worker processes"),
    ("e2e-workers-2-offpath-group", "2 processes,\nCPU group"),
]
OPEN = [
    ("open-loop-50", "almost idle"),
    ("open-loop-half-peak", "half of peak"),
    ("open-loop-half-peak-offpath-group", "half of peak,\nCPU group"),
    ("open-loop-after-backlog", "half of peak,\nafter a backlog"),
]
REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
# The project's accept-latency target: p99 at most 10 ms at half of peak.
ACCEPT_P99_TARGET_MS = 10.0


def load(path):
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{n}: not a JSON line ({e})")
    return rows


def values(rows, series, key):
    return [r[key] for r in rows if r.get("series") == series and r.get(key) is not None]


def spread(vals):
    """Median, and the distances down to the lowest and up to the highest run."""
    m = statistics.median(vals)
    return m, m - min(vals), max(vals) - m


def ceilings(rows):
    runs = [r for r in rows if r.get("series") == "sql-ceiling"]
    single = [r["single_contract_ceiling_per_sec"] for r in runs
              if r.get("single_contract_ceiling_per_sec") is not None]
    batched = []
    for r in runs:
        best = [b["contracts_per_sec"] for b in r.get("best", []) if b.get("batch") == 32]
        if best:
            batched.append(max(best))
    return (statistics.median(single) if single else None,
            statistics.median(batched) if batched else None)


def throughput(rows, title, path):
    single, batched = ceilings(rows)
    # (label, approved contracts/s of each run, accepted requests/s of each run)
    bars = []
    for s, label in CLOSED:
        approved = values(rows, s, "approved_contracts_per_sec_end_to_end")
        if approved:
            bars.append((f"{label}\nclosed loop", approved, values(rows, s, "accepted_per_sec")))
    ingress_only = values(rows, "ingress-only", "accepted_per_sec")
    if ingress_only:
        bars.append(("ingress only\n(workers stopped)\nclosed loop", [], ingress_only))
    for s, label in OPEN:
        runs = [r for r in rows if r.get("series") == s and r.get("rate")]
        if runs:
            bars.append((f"{label}\nopen loop, {runs[0]['rate']}/s",
                         [r["approved_contracts_per_sec_end_to_end"] for r in runs],
                         [r["accepted_per_sec"] for r in runs]))
    if not bars:
        return False

    fig, ax = plt.subplots(figsize=(max(7.0, 1.25 * len(bars) + 1.5), 4.6))
    width = 0.38
    for i, (label, approved, accepted) in enumerate(bars):
        for offset, vals, colour in ((-width / 2, approved, "#4c72b0"),
                                     (width / 2, accepted, "#b8b8b8")):
            if not vals:
                continue
            m, lo, hi = spread(vals)
            ax.bar(i + offset, m, width, yerr=[[lo], [hi]], capsize=3, color=colour)
            ax.annotate(f"{m:.0f}", (i + offset, m + hi), textcoords="offset points",
                        xytext=(0, 2), ha="center", fontsize=7)
    handles = [Patch(color="#4c72b0", label="approved contracts/s, end to end"),
               Patch(color="#b8b8b8",
                     label="accepted requests/s (in an open loop: the offered load)")]
    if single:
        handles.append(ax.axhline(
            single, color="#c44e52", linestyle="--", linewidth=1.2,
            label=f"SQL ceiling, one contract per transaction: {single:.0f}/s"))
    if batched:
        handles.append(Line2D([], [], linestyle="none",
                              label=f"(SQL ceiling, 32 per transaction: {batched:.0f}/s)"))
    ax.set_xticks(range(len(bars)), [label for label, _, _ in bars], fontsize=7)
    ax.set_ylabel("per second")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("throughput by series: median of the runs, whiskers span them")
    ax.legend(handles=handles, fontsize=7, frameon=False, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)
    return True


def latency(rows, title, path):
    groups = []
    for s, label in OPEN:
        runs = [r for r in rows if r.get("series") == s and r.get("accept_p99_ms") is not None]
        if runs and s != "open-loop-after-backlog":
            groups.append((f"{label}\n(open loop, {runs[0]['rate']}/s)", runs))
    peak = [r for r in rows if r.get("series") == "e2e-workers-2"
            and r.get("accept_p99_ms") is not None]
    if peak:
        acc = statistics.median(r["accepted_per_sec"] for r in peak)
        groups.append((f"peak, closed loop\n(~{acc:.0f}/s accepted)", peak))
    if not groups:
        return False

    fig, ax = plt.subplots(figsize=(8, 4.2))
    width = 0.26
    for i, (key, colour) in enumerate((("accept_p50_ms", "#8da0cb"),
                                       ("accept_p95_ms", "#4c72b0"),
                                       ("accept_p99_ms", "#2a3f6b"))):
        xs = [g + (i - 1) * width for g in range(len(groups))]
        meds, lo, hi = zip(*(spread([r[key] for r in runs if r.get(key) is not None])
                             for _, runs in groups))
        ax.bar(xs, meds, width, yerr=[lo, hi], capsize=3, color=colour,
               label=key.replace("accept_", "").replace("_ms", ""))
        if key == "accept_p99_ms":
            for x, m, h in zip(xs, meds, hi):
                ax.annotate(f"{m:.1f}", (x, m + h), textcoords="offset points", xytext=(0, 2),
                            ha="center", fontsize=8)
    ax.axhline(ACCEPT_P99_TARGET_MS, color="#c44e52", linestyle="--", linewidth=1.2,
               label="target: p99 ≤ 10 ms at half of peak")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(FixedLocator([0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * 1.5)  # room for the p99 labels above the whiskers
    ax.set_xticks(range(len(groups)), [label for label, _ in groups])
    ax.set_ylabel("accept latency, ms (log scale)")
    ax.set_title("202 latency seen by the merchant: median of the runs, whiskers span them")
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)
    return True


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="?", help="a bench.sh .jsonl (default: the newest in .local/bench)")
    p.add_argument("--out", default=os.path.join(REPO, "docs", "bench"),
                   help="directory for the SVGs (default: docs/bench)")
    p.add_argument("--note", default="", help="the machine, shown under the run's name")
    args = p.parse_args()
    path = args.results
    if not path:
        # bench.sh names its files by UTC time, so the last in name order is the newest.
        found = sorted(glob.glob(os.path.join(REPO, ".local", "bench", "*.jsonl")))
        if not found:
            sys.exit("no results: run scripts/bench.sh, or name a .jsonl file")
        path = found[-1]
    rows = load(path)
    run = os.path.splitext(os.path.basename(path))[0]
    title = f"scripts/bench.sh run {run}" + (f" — {args.note}" if args.note else "")
    os.makedirs(args.out, exist_ok=True)
    written = []
    for name, draw in (("throughput.svg", throughput), ("accept-latency.svg", latency)):
        target = os.path.join(args.out, name)
        if draw(rows, title, target):
            written.append(target)
        else:
            print(f"{name}: no series for it in {path}", file=sys.stderr)
    if not written:
        sys.exit(f"nothing to draw in {path}")
    for w in written:
        print(w)


if __name__ == "__main__":
    main()
