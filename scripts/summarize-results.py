#!/usr/bin/env python3
"""Summarise <runs>/<variant>_s<seed>/metrics.json (from scripts/run-results.sh or
scripts/run-results-3d.sh) as a Markdown table for docs/results.md: final-epoch test OA per seed,
mean and sample standard deviation over seeds, mean mAcc.

usage: summarize-results.py [runs_dir] [2d|3d|pretrain|pointbert|protocols]

pointbert (scripts/run-results-pointbert.sh): Point-BERT's and Point-MAE's classifiers from
scratch and fine-tuned from their pretraining, dense and EWA.

protocols (scripts/run-results-protocols.sh): per pipeline and variant, the mean and sample
standard deviation over seeds of the final-epoch single-pass OA, the best-on-test OA, and the
official vote's maximum and mean over its repeats, with the mean spread of the repeats."""
import json
import statistics
import sys
from pathlib import Path

runs = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/results")
kind = sys.argv[2] if len(sys.argv) > 2 else "2d"


def protocols_table():
    def cell(values):
        if not values:
            return "-"
        sd = statistics.stdev(values) if len(values) > 1 else float("nan")
        return f"{statistics.mean(values):.2f} +- {sd:.2f}"

    print("| pipeline | variant | seeds | final, single pass | best epoch on test (epoch) | vote max | vote mean | vote sd over repeats |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for pipeline, plabel in (("fixed", "fixed (FPS once, per-step cosine)"), ("official", "official (resample, timm per epoch)")):
        for variant, vlabel in (("dense", "dense"), ("ewa", "RupMoE + EWA (converted)")):
            final, best, epochs, vmax, vmean, vsd = [], [], [], [], [], []
            for seed in range(3):
                f = runs / f"{pipeline}_{variant}_s{seed}" / "metrics.json"
                if not f.exists():
                    continue
                p = json.loads(f.read_text())["protocols"]
                final.append(100 * p["final"]["test"]["oa"])
                best.append(100 * p["best_on_test"]["test"]["oa"])
                epochs.append(str(p["best_on_test"]["epoch"]))
                if "vote" in p:
                    vmax.append(100 * p["vote"]["vote_max"])
                    vmean.append(100 * p["vote"]["vote_mean"])
                    vsd.append(100 * p["vote"]["vote_std"])
            if not final:
                continue
            sd = f"{statistics.mean(vsd):.2f}" if vsd else "-"
            print(f"| {plabel} | {vlabel} | {len(final)} | {cell(final)} | {cell(best)} ({', '.join(epochs)}) | "
                  f"{cell(vmax)} | {cell(vmean)} | {sd} |")


if kind == "protocols":
    protocols_table()
    sys.exit(0)
labels = {
    "dense": "dense ViT (configs/fmnist_vit_dense.json)",
    "ewa": "RupMoE + EWA, converted to dense (configs/fmnist_vit_ewa.json)",
    "routed": "routed top-1 MoE (configs/fmnist_vit_routed.json)",
    "routed_ewa": "routed top-1 MoE + EWA (fmnist_vit_routed.json, --set ewa.enabled=true)",
} if kind == "2d" else {
    "dense": "dense Point-MAE-style transformer (configs/synth_points_dense.json)",
    "ewa": "RupMoE + EWA, converted to dense (configs/synth_points_ewa.json)",
} if kind == "3d" else {
    f"{model}_{start}_{variant}": f"{model_label}, {start_label}, {variant_label}"
    for model, model_label in (("pb", "Point-BERT classifier"), ("pm", "Point-MAE classifier"))
    for start, start_label in (("scratch", "from scratch"), ("ft", "fine-tuned from its pretraining"))
    for variant, variant_label in (("dense", "dense"), ("ewa", "RupMoE + EWA (converted)"))
} if kind == "pointbert" else {
    f"{setting}_{start}_{variant}": f"{setting_label}, {start_label}, {variant_label}"
    for setting, setting_label in (("full", "1600 labelled"), ("few", "10 per class"))
    for start, start_label in (("scratch", "from scratch"), ("ft", "fine-tuned from Point-MAE pretraining"))
    for variant, variant_label in (("dense", "dense"), ("ewa", "RupMoE + EWA (converted)"))
}
print("| variant | seed 0 | seed 1 | seed 2 | mean OA | std | mean mAcc |")
print("|---|---:|---:|---:|---:|---:|---:|")
for key, label in labels.items():
    oas, maccs = [], []
    for seed in range(3):
        f = runs / f"{key}_s{seed}" / "metrics.json"
        if not f.exists():
            continue
        m = json.loads(f.read_text())
        oas.append(100 * m["test"]["oa"])
        maccs.append(100 * m["test"]["macc"])
    if not oas:
        continue
    cells = " | ".join(f"{v:.2f}" for v in oas) + " | " * (3 - len(oas))
    std = statistics.stdev(oas) if len(oas) > 1 else float("nan")
    print(f"| {label} | {cells} | {statistics.mean(oas):.2f} | {std:.2f} | {statistics.mean(maccs):.2f} |")
