"""What each paper table compares: the params that vary across its columns, its rows, and how a
run's params become a column header, a figure panel and an x value."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Params = dict[str, Any]  # flattened params.yaml

SCENARIO_KEYS = (
    "corrupt.label_noise.rate", "corrupt.label_noise.mode", "corrupt.images.rate",
    "corrupt.adversarial.rate", "corrupt.adversarial.method",
)
# Moderate paper, Fig. 3: one distance score, four windows; Fig. 4: baselines and their "+".
ABLATION = ("moderate_bottom", "moderate_top", "moderate_two_ends", "moderate")
BOOSTED = ("grand", "grand_plus", "el2n", "el2n_plus")
# Recipes that exist only for those figures: left out of the main and robustness tables.
VARIANTS = frozenset(ABLATION + BOOSTED) - {"moderate", "grand", "el2n"}


def percent(value: float) -> str:
    return f"{100 * value:g}%"


def scenario(p: Params) -> str:
    """'clean', or the perturbations of the training set, e.g. 'label noise 20%', 'PGD 100%'."""
    parts = []
    if p.get("corrupt.label_noise.rate", 0):
        mode = p.get("corrupt.label_noise.mode", "symmetric")
        parts.append(f"label noise {percent(p['corrupt.label_noise.rate'])}"
                     + ("" if mode == "symmetric" else f" ({mode})"))
    if p.get("corrupt.images.rate", 0):
        parts.append(f"corrupted images {percent(p['corrupt.images.rate'])}")
    if p.get("corrupt.adversarial.rate", 0):
        method = str(p.get("corrupt.adversarial.method", "pgd")).upper()
        parts.append(f"{method} {percent(p['corrupt.adversarial.rate'])}")
    return " + ".join(parts) or "clean"


def scenario_order(p: Params) -> tuple:
    """Clean first, then label noise, corrupted images, adversarial, each by rate."""
    rates = [float(p.get(k, 0) or 0) for k in
             ("corrupt.label_noise.rate", "corrupt.images.rate", "corrupt.adversarial.rate")]
    family = sum(1 << i for i, r in enumerate(rates) if r)  # 0 clean, 1 labels, 2 images, 4 adv
    return (family, *rates, str(p.get("corrupt.adversarial.method", "")),
            str(p.get("corrupt.label_noise.mode", "")))


@dataclass(frozen=True)
class Spec:
    """A table over experiments: columns come from the ``free`` params, rows from the recipes."""

    name: str
    title: str
    free: tuple[str, ...]  # params that vary across columns; all others must match the context
    rows: tuple[str, ...] | None  # fixed recipes, or None for those the experiments ran
    header: Callable[[Params], tuple[str, ...]]  # column header levels, outermost first
    order: Callable[[Params], tuple]  # column sort key
    x: str  # the figure's x axis (a param)
    xlabel: str
    panel: Callable[[Params], str] | None = None  # one figure panel per value
    min_x: int = 1  # fewer distinct x values than this: no such table (nothing varied)
    needs: tuple[str, ...] = ()  # none of these recipes ran: no such table
    perturbed: bool = False  # only clean experiments: no such table


def _by_ratio(name: str, title: str, rows: tuple[str, ...] | None) -> Spec:
    needs = tuple(r for r in rows or () if r in VARIANTS)
    return Spec(name, title, ("ratio",), rows, lambda p: (percent(p["ratio"]),),
                lambda p: (p["ratio"],), "ratio", "selection ratio (%)", needs=needs)


SPECS: dict[str, Spec] = {
    "selectors_x_ratios": _by_ratio(
        "selectors_x_ratios", "Test accuracy of coresets at each selection ratio", None),
    "robustness": Spec(
        "robustness", "Test accuracy of coresets selected from perturbed training data",
        ("ratio", *SCENARIO_KEYS), None,
        header=lambda p: (scenario(p), percent(p["ratio"])),
        order=lambda p: (scenario_order(p), p["ratio"]),
        x="ratio", xlabel="selection ratio (%)", panel=scenario, perturbed=True),
    "ablation": _by_ratio(
        "ablation", "Ablation: the distance score with other windows (Moderate, Fig. 3)",
        ABLATION),
    "boosted": _by_ratio(
        "boosted", "Baselines boosted by the moderate window (Moderate, Fig. 4)", BOOSTED),
    "pretrain_epochs": Spec(
        "pretrain_epochs", "Test accuracy against the pretraining epochs used for the scores",
        ("ratio", "pretrain.epochs"), None,
        header=lambda p: (f"ratio {percent(p['ratio'])}", f"{p['pretrain.epochs']} ep"),
        order=lambda p: (p["ratio"], p["pretrain.epochs"]),
        x="pretrain.epochs", xlabel="pretraining epochs",
        panel=lambda p: f"ratio {percent(p['ratio'])}", min_x=2),
    "generalisation": Spec(
        "generalisation", "Coresets selected with one architecture, trained on others "
        "(Moderate, Table 8)", ("train.model", "ratio"), None,
        header=lambda p: (p["train.model"], percent(p["ratio"])),
        order=lambda p: (p["train.model"], p["ratio"]),
        x="ratio", xlabel="selection ratio (%)", panel=lambda p: p["train.model"]),
}
