"""Figures as PNG with matplotlib's Agg backend (no display needed): accuracy curves with std
bands (papers' Figs. 2, 3, 4, 5, 7), overlap heatmaps, and the windows scatter (Fig. 1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from coreset.io import atomic_path

DPI = 150


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # headless: CI machines and GPU servers have no display
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        # no Software/date metadata: the same inputs give the same bytes
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(fig)


def curves(runs: pd.DataFrame, x: str, path: Path, *, rows: Sequence[str],
           panel: str | None = None, xlabel: str = "", title: str = "",
           percent_x: bool = False) -> None:
    """Mean test accuracy (%) against ``x`` per recipe with a +-1 std band, one panel per value
    of ``panel``; the full-data accuracy as a dashed line. ``runs``: selector, accuracy, x
    (and panel) columns, one row per seed."""
    plt = _pyplot()
    runs = runs.assign(pct=100.0 * runs["accuracy"], _panel=runs[panel] if panel else "")
    panels = list(dict.fromkeys(runs["_panel"]))  # in the order of the rows of ``runs``
    ncols = min(4, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False,
                             sharey=True, layout="constrained")
    scale = 100 if percent_x else 1
    for ax, name in zip(axes.flat, panels, strict=False):
        part = runs[runs["_panel"] == name]
        stats = part.groupby(["selector", x])["pct"].agg(["mean", "std"]).fillna(0.0)
        for i, row in enumerate([r for r in rows if r in stats.index.get_level_values(0)]):
            s = stats.loc[row].sort_index()
            xs = np.asarray(s.index, dtype=float) * scale
            ax.plot(xs, s["mean"], marker="o", ms=3, label=row, color=f"C{i % 10}")
            ax.fill_between(xs, s["mean"] - s["std"], s["mean"] + s["std"], alpha=0.2,
                            color=f"C{i % 10}")
        if "full" in stats.index.get_level_values(0):
            ax.axhline(stats.loc["full"]["mean"].mean(), ls="--", c="k", lw=1, label="full data")
        ax.set_xticks(sorted({float(v) * scale for v in part[x]}))
        ax.set_title(str(name), fontsize=9)
        ax.set_xlabel(xlabel or x)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (%)")
    axes.flat[len(panels) - 1].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path)


def heatmaps(matrices: Mapping[str, pd.DataFrame], path: Path, title: str = "") -> None:
    """Side-by-side annotated heatmaps of square matrices with values in [0, 1]."""
    plt = _pyplot()
    size = max(len(m) for m in matrices.values())
    fig, axes = plt.subplots(1, len(matrices), figsize=(0.6 * size * len(matrices) + 3.5,
                                                          0.5 * size + 2), squeeze=False,
                             layout="constrained")
    for ax, (name, m) in zip(axes[0], matrices.items(), strict=True):
        im = ax.imshow(m.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(m.columns)), m.columns, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(m.index)), m.index, fontsize=7)
        for (i, j), v in np.ndenumerate(m.to_numpy(dtype=float)):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if v < 0.6 else "black")
        ax.set_title(name, fontsize=9)
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="|A ∩ B| / |A|")
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path)


def windows(points: np.ndarray, labels: np.ndarray, centres: np.ndarray,
            masks: Mapping[str, np.ndarray], classes: Sequence[int], path: Path,
            title: str = "") -> None:
    """One panel per window: all points of the classes faint, the kept ones solid, the class
    centres as stars (the Moderate paper's Fig. 1 on real features)."""
    plt = _pyplot()
    markers = "o^sDvP*Xh<>"
    fig, axes = plt.subplots(1, len(masks), figsize=(4 * len(masks), 3.8), squeeze=False,
                             sharex=True, sharey=True, layout="constrained")
    for ax, (window, mask) in zip(axes[0], masks.items(), strict=True):
        for k, c in enumerate(classes):
            of_class = labels == c
            m = markers[k % len(markers)]
            ax.scatter(*points[of_class & ~mask].T, s=6, marker=m, color=f"C{k}", alpha=0.12,
                       linewidths=0)
            ax.scatter(*points[of_class & mask].T, s=10, marker=m, color=f"C{k}",
                       label=f"class {c}", linewidths=0)
            ax.scatter(*centres[k], s=220, marker="*", color=f"C{k}", edgecolors="k")
        ax.set_title(f"{window} window: keeps {int(mask.sum())} of these {len(mask)}",
                     fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path)


def kept_grid(images: np.ndarray, labels: np.ndarray, kept: np.ndarray, perturbed: np.ndarray,
              classes: Sequence[int], per_class: int, path: Path, title: str = "") -> None:
    """One row per class: ``per_class`` kept images, a gap, ``per_class`` dropped ones, picked
    evenly over each group's index order (deterministic). Perturbed samples (flipped label,
    corrupted or adversarial image) get a red frame. ``images``: (N, H, W, C) uint8."""
    plt = _pyplot()
    cols = 2 * per_class + 1
    fig, axes = plt.subplots(len(classes), cols, figsize=(0.62 * cols, 0.66 * len(classes) + 0.6),
                             squeeze=False)
    kept_mask = np.zeros(len(labels), dtype=bool)
    kept_mask[kept] = True
    for row, c in enumerate(classes):
        groups = (np.flatnonzero((labels == c) & kept_mask),
                  np.flatnonzero((labels == c) & ~kept_mask))
        for g, members in enumerate(groups):
            picks = members[np.linspace(0, len(members) - 1, min(per_class, len(members)))
                            .round().astype(int)] if len(members) else members
            for j, i in enumerate(picks):
                ax = axes[row, g * (per_class + 1) + j]
                img = images[i]
                ax.imshow(img[..., 0] if img.shape[-1] == 1 else img,
                          cmap="gray" if img.shape[-1] == 1 else None)
                if perturbed[i]:
                    for side in ax.spines.values():
                        side.set(color="red", linewidth=2)
        axes[row, 0].set_ylabel(str(c), rotation=0, ha="right", va="center", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        if not ax.images:
            ax.set_frame_on(False)
    axes[0, 0].set_title("kept →", fontsize=8, loc="left")
    axes[0, per_class + 1].set_title("dropped →", fontsize=8, loc="left")
    if title:
        fig.suptitle(title, fontsize=9)
    _save(fig, path)
