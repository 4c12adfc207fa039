"""Does a selector beat random? A paired test per table cell over the shared training seeds.

A coreset run with training seed s and the random run with the same seed share the
initialisation and batch-order seed, so the per-seed differences are paired. With n >= 3 shared
seeds the test is the two-sided paired t-test (``scipy.stats.ttest_rel``), whose p-value is exact
when the per-seed differences are normal. With fewer than 3 shared seeds there is no test and no
mark (``MIN_SEEDS``): a 2-seed rule such as "both seeds agree in sign" (the exhaustive bootstrap's
interval) fires in about half of the cells where the selector equals random, far from 5 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

ALPHA = 0.05
MIN_SEEDS = 3  # below this, no test: no mark and the cell is not counted as tested
BETTER, WORSE = "*", "-"


@dataclass(frozen=True)
class Paired:
    """One cell's comparison: n shared seeds, mean difference (selector - random, in the
    accuracy's unit), the test used and its p-value."""

    n: int
    mean_diff: float
    test: str  # "t-test" or "none"
    p_value: float | None = None

    @property
    def significant(self) -> bool:
        return self.test == "t-test" and self.p_value is not None and self.p_value < ALPHA

    @property
    def mark(self) -> str:
        if not self.significant:
            return ""
        return BETTER if self.mean_diff > 0 else WORSE


def paired_test(selector: dict[int, float], random: dict[int, float]) -> Paired:
    """Compare per-seed accuracies {seed: accuracy} on the seeds both have (module docstring)."""
    seeds = sorted(set(selector) & set(random))
    diff = np.array([selector[s] - random[s] for s in seeds], dtype=np.float64)
    mean = float(diff.mean()) if len(diff) else math.nan
    if len(diff) >= MIN_SEEDS:
        if np.ptp(diff) == 0:  # constant differences: the t statistic is undefined (0 / 0)
            p = 1.0 if diff[0] == 0 else 0.0
            return Paired(len(diff), mean, "t-test", p_value=p)
        from scipy.stats import ttest_rel

        a = np.array([selector[s] for s in seeds])
        b = np.array([random[s] for s in seeds])
        return Paired(len(diff), mean, "t-test", p_value=float(ttest_rel(a, b).pvalue))
    return Paired(len(diff), mean, "none")


def cell_tests(runs: pd.DataFrame, baseline: str = "random") -> dict[tuple[str, object], Paired]:
    """{(selector, column): Paired} for every selector but the baseline and ``full``, in every
    column where the baseline ran. ``runs``: selector, seed, accuracy, column."""
    out = {}
    for column, group in runs.groupby("column", sort=False):
        per = {sel: dict(zip(g["seed"].astype(int), g["accuracy"], strict=True))
               for sel, g in group.groupby("selector", sort=False)}
        if baseline not in per:
            continue
        for sel, accs in per.items():
            if sel not in (baseline, "full"):
                out[(sel, column)] = paired_test(accs, per[baseline])
    return out


def summary(tests: dict[tuple[str, object], Paired], baseline: str = "random") -> str:
    """'beats random in k of m cells at p < 0.05 (...)', m counting the cells that were tested."""
    tested = [t for t in tests.values() if t.test != "none"]
    if not tested:
        return (f"No cell shares at least {MIN_SEEDS} training seeds with {baseline}: no "
                f"significance test, no marks.")
    wins = sum(t.mark == BETTER for t in tested)
    losses = sum(t.mark == WORSE for t in tested)
    untested = len(tests) - len(tested)
    skipped = f"; {untested} cells with fewer than {MIN_SEEDS} shared seeds are not tested" \
        if untested else ""
    return (f"Beats {baseline} in {wins} of {len(tested)} cells at p < {ALPHA:g} ({BETTER}), "
            f"worse in {losses} ({WORSE}); paired t-test over the shared training seeds"
            f"{skipped}.")
