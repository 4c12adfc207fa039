"""The paper-style table: recipes x columns, mean +- std over seeds, the best of each column in
bold, the average rank across columns, and the full-data accuracy as a reference row.

Accuracies are reported in percent. Ties are decided at the displayed precision: two means that
print the same are equally good (both bold, average rank), so floating-point noise in the last
bit never picks a winner. Rows with a missing cell are shown but neither ranked nor bold.
Each cell is marked * (better) or - (worse) when it differs from the random row of its column at
p < 0.05 over the shared training seeds (``report.significance``), and a summary line says in how
many cells that happens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from coreset.experiments.report import significance

Column = tuple[str, ...]  # header levels, outermost first: ("label noise 20%", "ratio 20%")


@dataclass(frozen=True)
class Table:
    """Everything a renderer needs. Frames are rows x column positions (0, 1, ...), the position
    j standing for ``columns[j]``."""

    rows: list[str]  # ranked recipes, in display order
    reference: list[str]  # reference rows (full data), shown last, never ranked
    columns: list[Column]
    mean: pd.DataFrame  # percent
    std: pd.DataFrame  # percent, sample std over seeds (ddof=1), 0 for one seed
    n: pd.DataFrame  # number of seeds
    rank: pd.DataFrame  # 1 = best, ties get the average rank; NaN for incomplete rows
    avg_rank: pd.Series  # mean rank over the columns (NaN for incomplete rows)
    best: pd.DataFrame  # bool: the best mean of the column (all tied ones)
    decimals: int
    marks: pd.DataFrame | None = None  # "*", "-" or "" against the baseline row, per cell
    significance: str = ""  # the summary line of those tests


def as_column(value: object) -> Column:
    """A header tuple from a column value (a tuple of levels or a single value)."""
    return tuple(str(v) for v in value) if isinstance(value, tuple) else (str(value),)


def build(runs: pd.DataFrame, columns: Sequence[Column] | None = None,
          rows: Sequence[str] | None = None, reference: Sequence[str] = ("full",),
          decimals: int = 2, baseline: str = "random") -> Table:
    """Aggregate per-seed ``runs`` (selector, seed, accuracy as a fraction, column) into a Table.

    ``columns``: header tuples in display order (default: sorted). ``rows``: the ranked recipes
    in display order (default: every recipe in ``runs`` but the reference ones, sorted).
    ``baseline``: the row every cell is tested against (paired over seeds), when it ran.
    """
    runs = runs.assign(column=runs["column"].map(as_column), pct=100.0 * runs["accuracy"])
    columns = list(columns) if columns is not None else sorted(runs["column"].unique())
    position = {c: j for j, c in enumerate(columns)}
    present = set(runs["selector"])
    ref = [r for r in reference if r in present]
    ranked = list(rows) if rows is not None else sorted(present - set(ref))
    frame = pd.DataFrame(np.nan, index=ranked + ref, columns=range(len(columns)))
    mean, std, n = frame.copy(), frame.copy(), frame.copy()
    for (selector, column), values in runs.groupby(["selector", "column"])["pct"]:
        if selector in mean.index and column in position:
            j = position[column]
            mean.loc[selector, j] = values.mean()
            std.loc[selector, j] = values.std(ddof=1) if len(values) > 1 else 0.0
            n.loc[selector, j] = len(values)
    # Only rows with every cell compete: average ranks are then over the same columns, and a
    # recipe that ran at some ratios only cannot change the others' ranks.
    shown = mean.loc[ranked].round(decimals)
    complete = shown.notna().all(axis=1)
    rank = shown[complete].rank(axis=0, method="average", ascending=False)
    rank = rank.reindex(ranked)
    top = shown[complete].max(axis=0)
    best = shown.eq(top, axis=1) & complete.to_numpy()[:, None]
    marks, line = _significance(runs, mean.index, position, baseline)
    return Table(ranked, ref, columns, mean, std, n, rank, rank.mean(axis=1), best, decimals,
                 marks, line)


def _significance(runs: pd.DataFrame, index: pd.Index, position: dict[Column, int],
                  baseline: str) -> tuple[pd.DataFrame, str]:
    """Per-cell marks against ``baseline`` and the summary line ("" when it did not run)."""
    marks = pd.DataFrame("", index=index, columns=range(len(position)))
    if baseline not in set(runs["selector"]):
        return marks, ""
    shown = runs[runs["selector"].isin(index) & runs["column"].map(lambda c: c in position)]
    tests = significance.cell_tests(shown, baseline)
    for (selector, column), test in tests.items():
        marks.loc[selector, position[column]] = test.mark
    return marks, significance.summary(tests, baseline)


def mark(table: Table, row: str, j: int) -> str:
    return "" if table.marks is None else table.marks.loc[row, j]


def cell(table: Table, row: str, j: int, pm: str = "±") -> str | None:
    """'mean pm std' of column position ``j`` at the table's precision; None if missing."""
    mean = table.mean.loc[row, j]
    if pd.isna(mean):
        return None
    return f"{mean:.{table.decimals}f} {pm} {table.std.loc[row, j]:.{table.decimals}f}"


def is_best(table: Table, row: str, j: int) -> bool:
    return row in table.rows and bool(table.best.loc[row, j])


def rank_text(table: Table, row: str) -> str:
    value = table.avg_rank.get(row, np.nan)
    return "" if pd.isna(value) else f"{value:.2f}"


def row_label(row: str) -> str:
    return "full data" if row == "full" else row


# --- renderers --------------------------------------------------------------------------------

def markdown(table: Table, title: str = "") -> str:
    """A GitHub-flavoured markdown table; multi-level headers are joined with ' / '."""
    head = ["selector", *(" / ".join(c) for c in table.columns), "avg. rank"]
    lines = [title, ""] if title else []
    lines += ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for row in table.rows + table.reference:
        cells = []
        for j in range(len(table.columns)):
            text = cell(table, row, j) or "–"
            text = f"**{text}**" if is_best(table, row, j) else text
            cells.append(text + {"*": " \\*", "-": " -"}.get(mark(table, row, j), ""))
        name = row_label(row) + (" (reference)" if row in table.reference else "")
        lines.append("| " + " | ".join([name, *cells, rank_text(table, row) or "–"]) + " |")
    if table.significance:
        lines += ["", table.significance]
    return "\n".join(lines) + "\n"


def csv(table: Table) -> str:
    """Wide CSV: selector, '<column> mean', '<column> std', '<column> n' ..., avg_rank, best."""
    out = pd.DataFrame({"selector": table.rows + table.reference})
    names = [" / ".join(c) for c in table.columns]
    for j, name in enumerate(names):
        for what, frame in (("mean", table.mean), ("std", table.std), ("n", table.n)):
            values = frame.loc[out["selector"], j].to_numpy()
            out[f"{name} {what}"] = pd.array(values, dtype="Int64") if what == "n" else values
    for j, name in enumerate(names):
        out[f"{name} vs random"] = [mark(table, r, j) for r in out["selector"]]
    out["avg_rank"] = [table.avg_rank.get(r, np.nan) for r in out["selector"]]
    out["best_in"] = [";".join(name for j, name in enumerate(names) if is_best(table, r, j))
                      for r in out["selector"]]
    return out.to_csv(index=False, float_format=f"%.{table.decimals + 2}f")


def _tex(text: str) -> str:
    for char in ("\\", "&", "%", "_", "#", "$"):
        text = text.replace(char, "\\" + char)
    return text


def _header_rows(columns: list[Column]) -> list[str]:
    """LaTeX header lines: outer levels merged with \\multicolumn over equal neighbours."""
    depth = max(len(c) for c in columns)
    lines = []
    for level in range(depth):
        values = [c[level] if level < len(c) else "" for c in columns]
        last = level == depth - 1
        cells, rules, start = [], [], 2
        for value, group in ([(v, 1) for v in values] if last else _runs(values)):
            if last or not value:
                cells += [_tex(value)] * group
            else:
                cells.append(rf"\multicolumn{{{group}}}{{c}}{{{_tex(value)}}}")
                rules.append(rf"\cmidrule(lr){{{start}-{start + group - 1}}}")
            start += group
        edge = ["Method", "Avg. rank"] if last else ["", ""]
        lines.append(" & ".join([edge[0], *cells, edge[1]]) + r" \\" + "".join(
            " " + r for r in rules))
    return lines


def _runs(values: list[str]) -> list[tuple[str, int]]:
    """Consecutive equal values -> (value, count)."""
    out: list[tuple[str, int]] = []
    for v in values:
        if out and out[-1][0] == v:
            out[-1] = (v, out[-1][1] + 1)
        else:
            out.append((v, 1))
    return out


def latex(table: Table, caption: str = "", label: str = "") -> str:
    """A booktabs table (needs \\usepackage{booktabs})."""
    lines = [r"\begin{table}[t]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{_tex(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines += [r"\begin{tabular}{l" + "c" * len(table.columns) + "c}", r"\toprule"]
    lines += _header_rows(table.columns)
    lines.append(r"\midrule")
    for row in table.rows + table.reference:
        if row == (table.reference or [None])[0]:
            lines.append(r"\midrule")
        cells = []
        for j in range(len(table.columns)):
            text = cell(table, row, j, pm=r"$\pm$") or "--"
            text = rf"\textbf{{{text}}}" if is_best(table, row, j) else text
            cells.append(text + (rf"$^{{{mark(table, row, j)}}}$" if mark(table, row, j) else ""))
        lines.append(" & ".join([_tex(row_label(row)), *cells, rank_text(table, row) or "--"])
                     + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.significance:
        text = _tex(table.significance).replace(" < ", " $<$ ")
        lines.append(rf"\par\smallskip{{\footnotesize {text}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"
