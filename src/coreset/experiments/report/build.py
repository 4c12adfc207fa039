"""Experiments -> the files of each table and figure under the output folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from coreset.experiments.report import analyses, figures, tables
from coreset.experiments.report.experiments import Experiment, accuracies, matching
from coreset.experiments.report.specs import SPECS, VARIANTS, Params, Spec, percent
from coreset.experiments.revisions import RevisionFiles
from coreset.io import save_text
from coreset.training.dynamic import protocol_line


class NoData(Exception):
    """A table has no experiments to show; the message says what is missing."""


def _left_out_note(left_out: dict[str, int]) -> str:
    if not left_out:
        return ""
    keys = ", ".join(sorted(left_out, key=lambda k: (-left_out[k], k))[:6])
    return (f" ({max(left_out.values())} experiment(s) left out because their params differ "
            f"in: {keys}; pass --set KEY=VALUE to report those)")


def recipe_order(context: Params) -> list[str]:
    """Recipes in the order params.yaml defines them under `recipes:`."""
    return list(dict.fromkeys(k.split(".")[1] for k in context if k.startswith("recipes.")))


def collect(spec: Spec, exps: list[Experiment], context: Params, root: Path
            ) -> pd.DataFrame:
    """Per-seed runs of the experiments that belong to ``spec``: selector, seed, accuracy,
    column, order, x, panel. Where two experiments hold the same cell, the first (newest) wins."""
    kept, left_out = matching(exps, context, spec.free)
    if not kept:
        raise NoData(f"{spec.name}: no completed experiment matches{_left_out_note(left_out)}")
    meta = pd.DataFrame([{
        "rev": e.rev, "column": spec.header(e.params), "order": spec.order(e.params),
        "x": e.params[spec.x], "panel": spec.panel(e.params) if spec.panel else "",
    } for e in kept])
    runs = accuracies(kept, root).merge(meta.drop_duplicates("rev"), on="rev", sort=False)
    runs = runs.drop_duplicates(["column", "selector", "seed"], keep="first")
    # a panel (e.g. one ratio) where the x axis did not vary is no evidence for this table
    varied = runs.groupby("panel")["x"].transform("nunique") >= spec.min_x
    runs = runs[varied]
    if runs.empty:
        raise NoData(f"{spec.name}: the matching experiments do not vary {spec.x}"
                     f"{_left_out_note(left_out)}")
    if spec.needs and not set(spec.needs) & set(runs["selector"]):
        raise NoData(f"{spec.name}: no matching experiment ran {' or '.join(spec.needs)}"
                     f"{_left_out_note(left_out)}")
    if spec.perturbed and set(runs["panel"]) <= {"clean"}:
        raise NoData(f"{spec.name}: no matching experiment perturbed the training set (corrupt.*)"
                     f"{_left_out_note(left_out)}")
    return runs.reset_index(drop=True)


def rows_for(spec: Spec, runs: pd.DataFrame, context: Params,
             selectors: Sequence[str] | None) -> list[str]:
    """The ranked rows: the spec's fixed recipes, else --selectors, else every recipe the
    experiments ran but the ablation/boosting variants, in params.yaml order."""
    present = set(runs["selector"]) - {"full"}
    if spec.rows is not None:
        wanted = list(spec.rows)
    elif selectors:
        wanted = list(selectors)
    else:
        order = recipe_order(context)
        wanted = [r for r in order if r not in VARIANTS] + sorted(present - set(order))
    return [r for r in wanted if r in present]


def protocol(context: Params) -> str:
    """The training protocol of the experiments (budget mode, length, batch size, final or best
    epoch, dynamic selection), from their params; keys a params.yaml lacks take their defaults."""
    return protocol_line(
        budget_mode=context.get("train.budget", "epochs"), epochs=context.get("train.epochs", 0),
        steps=context.get("train.steps", 0), batch_size=context.get("train.batch_size", 0),
        report=context.get("train.report", "final"), dynamic=context.get("train.dynamic", "none"),
        dynamic_ratio=context.get("train.dynamic_ratio"))


def caption(spec: Spec, context: Params, table: tables.Table) -> str:
    seeds = sorted({int(v) for v in table.n.stack().dropna()}) or [0]
    n = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    return (f"{spec.title}. {context.get('data.dataset', '?')}; coreset model "
            f"{context.get('train.model', 'auto')}. {protocol(context)} "
            f"Mean ± std over {n} seed(s) of the test accuracy (%); best in bold; "
            f"cells marked where they beat or trail random (the line below the table); "
            f"average rank across columns; full data as reference.")


def write_table(spec: Spec, exps: list[Experiment], context: Params, root: Path, out: Path,
                selectors: Sequence[str] | None = None) -> list[Path]:
    """<out>/<name>.md, .csv, .tex and .png for one table spec."""
    runs = collect(spec, exps, context, root)
    rows = rows_for(spec, runs, context, selectors)
    if not rows:
        raise NoData(f"{spec.name}: the experiments ran none of {', '.join(spec.rows or ())}")
    columns = (runs.drop_duplicates("column").sort_values("order", kind="stable")["column"])
    table = tables.build(runs, columns=[tables.as_column(c) for c in columns], rows=rows)
    text = caption(spec, context, table)
    paths = [out / f"{spec.name}.{ext}" for ext in ("md", "csv", "tex", "png")]
    save_text(paths[0], tables.markdown(table, f"**{text}**"))
    save_text(paths[1], tables.csv(table))
    save_text(paths[2], tables.latex(table, text, f"tab:{spec.name}"))
    plotted = runs[runs["selector"].isin([*rows, "full"])].sort_values("order", kind="stable")
    figures.curves(plotted, "x", paths[3], rows=rows, panel="panel" if spec.panel else None,
                   xlabel=spec.xlabel, title=spec.title,
                   percent_x=spec.x == "ratio")
    return paths


def _by_ratio(exps: list[Experiment], context: Params) -> dict[float, Experiment]:
    """The first (newest) matching experiment at each ratio."""
    kept, left_out = matching(exps, context, ("ratio",))
    chosen: dict[float, Experiment] = {}
    for e in kept:
        chosen.setdefault(float(e.params["ratio"]), e)
    if not chosen:
        raise NoData(f"no completed experiment matches{_left_out_note(left_out)}")
    return dict(sorted(chosen.items()))


def write_overlap(exps: list[Experiment], context: Params, root: Path, out: Path,
                  selectors: Sequence[str] | None = None) -> list[Path]:
    """Per ratio: overlap of kept and of dropped sets between every pair of recipes (CSV + PNG)."""
    paths = []
    for ratio, exp in _by_ratio(exps, context).items():
        files = RevisionFiles(root, exp.rev)
        names = [r for r in exp.params["selectors"] if r in exp.recipes
                 and (not selectors or r in selectors)]
        sets = {r: files.array(f"data/selected/{r}.npz", "indices") for r in names}
        n = len(files.array("data/train/labels.npy"))
        matrices = {"kept": analyses.overlap_matrix(sets),
                    "dropped": analyses.overlap_matrix(analyses.dropped_sets(sets, n))}
        stem = f"overlap_ratio{percent(ratio)[:-1]}"
        for kind, m in matrices.items():
            paths.append(out / f"{stem}_{kind}.csv")
            save_text(paths[-1], m.to_csv(float_format="%.4f"))
        paths.append(out / f"{stem}.png")
        figures.heatmaps(matrices, paths[-1], title=f"Repetition rate |A ∩ B| / |A| at ratio "
                         f"{percent(ratio)} ({context.get('data.dataset', '')}, {n} samples)")
    return paths


def _moderate_recipe(exp: Experiment) -> str | None:
    ran = exp.params.get("selectors", ())
    names = [r for r in ran if exp.params.get(f"recipes.{r}.method") == "moderate"]
    return "moderate" if "moderate" in names else (names[0] if names else None)


def write_windows(exps: list[Experiment], context: Params, root: Path, out: Path,
                  classes: Sequence[int] = (0, 1, 2)) -> list[Path]:
    """Fig. 1 analogue: PCA of the features of ``classes`` and what each window keeps."""
    candidates = [e for e in _by_ratio(exps, context).values() if _moderate_recipe(e)]
    if not candidates:
        raise NoData("windows: no matching experiment ran a recipe with method moderate")
    near = [e for e in candidates if e.params["ratio"] == context.get("ratio")]
    exp = (near or candidates)[0]
    recipe = _moderate_recipe(exp)
    files = RevisionFiles(root, exp.rev)
    labels = files.array("data/train/labels.npy")
    score = files.array(f"data/scores/{recipe}.npz", "score")
    masks = analyses.window_masks(score, labels, float(exp.params["ratio"]),
                                  bool(exp.params[f"recipes.{recipe}.balance"]))
    center = exp.params.get(f"recipes.{recipe}.params.center", "median")
    points, where, centres = analyses.project(files.array("data/embed.npz", "features"),
                                              labels, list(classes), center)
    path = out / "windows.png"
    figures.windows(points, labels[where], centres, {w: m[where] for w, m in masks.items()},
                    list(classes), path,
                    title=f"Distance-to-{center} score, ratio {percent(exp.params['ratio'])}: "
                          "the samples each window keeps (PCA of the features)")
    return [path]


def write(name: str, exps: list[Experiment], context: Params, root: Path, out: Path,
          options: dict[str, Any]) -> list[Path]:
    """Dispatch one report name to its writer."""
    if name == "overlap":
        return write_overlap(exps, context, root, out, options.get("selectors"))
    if name == "windows":
        return write_windows(exps, context, root, out, options.get("classes", (0, 1, 2)))
    return write_table(SPECS[name], exps, context, root, out, options.get("selectors"))
