#!/usr/bin/env python3
"""Turns criterion results of `benches/benches/distance.rs` into the tables of docs/BENCHMARKS.md.

Usage: scripts/bench_table.py [--ghz 3.85] [--svg docs/distance-kernels.svg] CRITERION_DIR...

Each CRITERION_DIR is a copy of `$CARGO_TARGET_DIR/criterion` from one benchmark run. For every
benchmark the script takes criterion's median estimate from each run and reports the median of those
(with the spread across runs), so one noisy run does not decide a ratio. The load-bound limit is
`dim / 16` cycles (two 64-byte loads per cycle, one 16-lane step per cycle) at `--ghz`.
"""

import argparse
import json
import statistics
from pathlib import Path

DIMS = [128, 384, 768, 1536]
METRICS = ["dot", "l2", "cosine"]
IMPLS = ["scalar", "avx2+fma", "avx512f", "dispatched", "simsimd"]


def load(dirs):
    """Returns {(group, function): [median ns per run]}."""
    results = {}
    for run in dirs:
        for bench in Path(run).glob("*/*/new/benchmark.json"):
            meta = json.loads(bench.read_text())
            estimates = json.loads((bench.parent / "estimates.json").read_text())
            key = (meta["group_id"], meta["function_id"])
            results.setdefault(key, []).append(estimates["median"]["point_estimate"])
    return results


def fmt(ns):
    return f"{ns:.1f}" if ns < 100 else f"{ns:.0f}"


def pairwise_table(results, ghz, active):
    lines = []
    for metric in METRICS:
        lines.append(f"\n### `{metric}`\n")
        extra = metric == "cosine"
        header = "| d | " + " | ".join(IMPLS) + " | load-bound limit | simsimd / ours | ours / limit |"
        if extra:
            header += " FMA-bound limit (3d/32) | ours / FMA-bound |"
        lines.append(header)
        lines.append("|" + "---:|" * (len(IMPLS) + 4 + (2 if extra else 0)))
        for dim in DIMS:
            group = f"{metric}-{dim}"
            cells = []
            for impl in IMPLS:
                runs = results.get((group, impl))
                cells.append(fmt(statistics.median(runs)) if runs else "–")
            ours = statistics.median(results[(group, active)])
            simsimd = statistics.median(results[(group, "simsimd")])
            limit = dim / 16 / ghz
            line = (
                f"| {dim} | " + " | ".join(cells)
                + f" | {limit:.2f} | {simsimd / ours:.2f}x | {ours / limit:.2f}x |"
            )
            if extra:
                fma_limit = 3 * dim / 32 / ghz
                line += f" {fma_limit:.2f} | {ours / fma_limit:.2f}x |"
            lines.append(line)
    return "\n".join(lines)


def spread_table(results, active):
    lines = ["| benchmark | run medians (ns) |", "|---|---|"]
    for metric in METRICS:
        for dim in DIMS:
            for impl in (active, "simsimd"):
                runs = results.get((f"{metric}-{dim}", impl), [])
                lines.append(f"| {metric}-{dim}/{impl} | " + ", ".join(fmt(r) for r in runs) + " |")
    return "\n".join(lines)


def batch_table(results, ghz, dim=384):
    lines = [
        "| rows | metric | implementation | µs per batch | ns per distance | arena GB/s | ns / pairwise-limit |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    limit = dim / 16 / ghz
    row_bytes = dim * 4
    for rows in (10_000, 1_000):
        for metric in METRICS:
            group = f"batch-{metric}-{dim}x{rows}"
            for (g, impl), runs in sorted(results.items()):
                if g != group:
                    continue
                ns = statistics.median(runs)
                per = ns / rows
                lines.append(
                    f"| {rows} | {metric} | {impl} | {ns / 1000:.1f} | {per:.1f} | "
                    f"{row_bytes / per:.0f} | {per / limit:.1f}x |"
                )
    return "\n".join(lines)


def svg_chart(results, active, path, ghz):
    """Writes a small grouped bar chart (ns per distance, log-free, per metric) as plain SVG."""
    impls = [active, "simsimd"]
    colours = {active: "#1f77b4", "simsimd": "#ff7f0e", "limit": "#999999"}
    width, height, margin = 760, 300, 40
    panel = (width - margin) / len(METRICS)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{width / 2}" y="14" text-anchor="middle" font-size="13">'
        f"ns per distance: {active} vs simsimd (grey: load-bound limit)</text>",
    ]
    for m, metric in enumerate(METRICS):
        top = max(statistics.median(results[(f"{metric}-{d}", "simsimd")]) for d in DIMS) * 1.1
        x0 = margin + m * panel
        parts.append(f'<text x="{x0 + panel / 2}" y="{height - 5}" text-anchor="middle">{metric}</text>')
        bar = panel / (len(DIMS) * 3 + 1)
        for i, dim in enumerate(DIMS):
            for j, impl in enumerate(impls):
                ns = statistics.median(results[(f"{metric}-{dim}", impl)])
                h = (height - 70) * ns / top
                x = x0 + bar * (1 + 3 * i + j)
                parts.append(
                    f'<rect x="{x:.1f}" y="{height - 35 - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                    f'fill="{colours[impl]}"><title>{metric}-{dim} {impl}: {ns:.1f} ns</title></rect>'
                )
            limit = dim / 16 / ghz
            y = height - 35 - (height - 70) * limit / top
            xl = x0 + bar * (1 + 3 * i)
            parts.append(
                f'<line x1="{xl:.1f}" x2="{xl + 2 * bar:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                f'stroke="{colours["limit"]}" stroke-width="2"/>'
            )
            parts.append(
                f'<text x="{xl + bar:.1f}" y="{height - 22}" text-anchor="middle" font-size="9">{dim}</text>'
            )
    parts.append("</svg>")
    Path(path).write_text("\n".join(parts) + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ghz", type=float, default=3.85)
    parser.add_argument("--active", default="avx512f")
    parser.add_argument("--svg")
    parser.add_argument("--batch-dirs", nargs="*", default=None, help="runs to use for batch groups")
    parser.add_argument("dirs", nargs="+")
    args = parser.parse_args()
    results = load(args.dirs)
    print(f"Median of {len(args.dirs)} runs; ns per call; limit at {args.ghz} GHz.")
    print(pairwise_table(results, args.ghz, args.active))
    print("\n### Batch: one query against all rows of an arena, d = 384\n")
    batch_results = load(args.batch_dirs) if args.batch_dirs else results
    print(batch_table(batch_results, args.ghz))
    print("\n### Spread across runs\n")
    print(spread_table(results, args.active))
    if args.svg:
        svg_chart(results, args.active, args.svg, args.ghz)


if __name__ == "__main__":
    main()
