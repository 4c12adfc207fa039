"""evaluate: one table per experiment: selector x seed -> test accuracy (mean +- std over the
training seeds) and the fraction of the kept subset that is perturbed. Reads the CURRENT grid from
params.yaml (never globs folders, which may hold outputs of removed grid values).

Outputs: ``metrics/summary.json`` is what ``dvc metrics show`` and ``dvc exp show`` list, so it is
compact: one accuracy and one std per selector, the ratio and the perturbed fraction. The details
(kept, kept perturbed) are in ``metrics/summary.md`` and ``plots/accuracy.csv``; the per-seed
accuracies in ``plots/runs.csv`` (what the paper tables read); every run's training curve in
long format (one row per selector, seed and epoch) in ``plots/curves.csv``, which the DVC plot
templates of ``.dvc/plots/`` colour by selector.

Usage: python -m coreset.stages.evaluate   (reads ratio, seeds, selectors in params.yaml)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from coreset import artifacts
from coreset.io import load_json, load_npz, save_json, save_text
from coreset.params import Params
from coreset.stages._cli import no_args, run
from coreset.training.dynamic import protocol_line

SUMMARY = "metrics/summary.json"
TABLE = "metrics/summary.md"
ACCURACY_PLOT = "plots/accuracy.csv"
CURVES_PLOT = "plots/curves.csv"  # long format: selector, seed, epoch, train_loss, test_acc
RUNS_PLOT = "plots/runs.csv"  # per (selector, seed): what the paper tables read


def summarise(p: Params) -> pd.DataFrame:
    """One row per recipe (plus the full-data row): accuracy mean/std and kept-perturbed."""
    train = artifacts.training_set()
    perturbed = artifacts.perturbed_mask(train)
    rows = []
    for name in ("full", *p.selectors):
        accs = [load_json(artifacts.TRAIN_METRICS / f"{name}-{s}.json")["accuracy"]
                for s in p.seeds]
        if name == "full":
            idx = np.arange(len(perturbed))
        else:
            idx = load_npz(artifacts.SELECTED / f"{name}.npz")["indices"]
        rows.append({
            "selector": name,
            "method": "full data" if name == "full" else p.recipes[name].method,
            "window": "" if name == "full" else p.recipes[name].window,
            "kept": len(idx),
            "accuracy": float(np.mean(accs)),
            # sample standard deviation over seeds (ddof=1), 0 for a single seed
            "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
            "kept_perturbed": float(perturbed[idx].mean()) if len(idx) else 0.0,
            "accs": accs,
        })
    return pd.DataFrame(rows)


def run_curves(p: Params) -> pd.DataFrame:
    """Every training run's curve, long format: selector, seed, epoch, train_loss, test_acc (the
    full-data runs first). One table for all runs lets one plot colour lines by selector."""
    frames = []
    for name in ("full", *p.selectors):
        for seed in p.seeds:
            run_ = pd.read_csv(artifacts.CURVES / f"train/{name}-{seed}.csv")
            frames.append(run_[["epoch", "train_loss", "test_acc"]].assign(selector=name,
                                                                           seed=seed))
    return pd.concat(frames, ignore_index=True)[
        ["selector", "seed", "epoch", "train_loss", "test_acc"]]


def metrics(df: pd.DataFrame, p: Params, perturbed_total: float) -> dict:
    """The compact DVC metrics: one accuracy and one std per selector (columns of `dvc exp show`
    grouped by metric, so the selectors' accuracies sit side by side) and two global fields."""
    return {
        "ratio": p.ratio,
        "perturbed": perturbed_total,
        "accuracy": {r.selector: r.accuracy for r in df.itertuples()},
        "std": {r.selector: r.std for r in df.itertuples()},
    }


def protocol(p: Params) -> str:
    """The caption sentence of the coreset runs' protocol (as the report's captions state it)."""
    t = p.train
    return protocol_line(budget_mode=t.budget, epochs=t.epochs, steps=t.steps,
                         batch_size=t.batch_size, report=t.report, dynamic=t.dynamic,
                         dynamic_ratio=t.dynamic_ratio)


def markdown(df: pd.DataFrame, p: Params, perturbed_total: float) -> str:
    lines = [
        f"Dataset {p.data.dataset}, ratio {p.ratio:g}, {len(p.seeds)} seeds, "
        f"{p.train.report}-epoch test accuracy (%), perturbed in the full set: "
        f"{100 * perturbed_total:.1f} %",
        "",
        protocol(p),
        "",
        "| selector | method | window | kept | accuracy | kept perturbed |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in df.itertuples():
        lines.append(f"| {r.selector} | {r.method} | {r.window} | {r.kept} | "
                     f"{100 * r.accuracy:.2f} ± {100 * r.std:.2f} | "
                     f"{100 * r.kept_perturbed:.1f} % |")
    return "\n".join(lines) + "\n"


outputs = no_args(SUMMARY, TABLE, ACCURACY_PLOT, CURVES_PLOT, RUNS_PLOT)


def main(p: Params, argv: list[str]) -> None:
    df = summarise(p)
    perturbed_total = float(artifacts.perturbed_mask(artifacts.training_set()).mean())
    save_json(SUMMARY, metrics(df, p, perturbed_total))
    plot = df[["selector", "accuracy", "std", "kept", "kept_perturbed"]]
    save_text(ACCURACY_PLOT, plot.to_csv(index=False, float_format="%.6f"))
    save_text(CURVES_PLOT, run_curves(p).to_csv(index=False, float_format="%.6f"))
    runs = df[["selector", "accs"]].explode("accs").rename(columns={"accs": "accuracy"})
    runs.insert(1, "seed", list(p.seeds) * len(df))
    save_text(RUNS_PLOT, runs.to_csv(index=False, float_format="%.6f"))
    table = markdown(df, p, perturbed_total)
    save_text(TABLE, table)
    print(table)


if __name__ == "__main__":
    run(main, outputs)
