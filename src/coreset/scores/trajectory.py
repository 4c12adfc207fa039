"""Scores from the training trajectory of the pretrained models: AUM, Dyn-Unc, TDDS and DUAL.

They read the per-epoch dynamics that pretraining records (``scores.dynamics``), shapes
(S, E, N): S pretrained models, E epochs, N samples, and average the per-model score over the
models. Each is O(S E N) time; none needs the model itself. Every score is per sample, so it is
computed over blocks of samples (``per_sample``): the float64 temporaries (sliding windows of
S x K x J values per sample) stay O(S E J x block), not O(S E J N), which at ImageNet shape
(S 3, E 30, N 1.28 M) is the difference between 40 MB and 8 GB.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from coreset.scores.context import ScoringContext, row_blocks
from coreset.scores.dynamics import require
from coreset.scores.params import Choice, Float, Int
from coreset.scores.registry import register

# samples per block of per_sample: S E J x 8 bytes each, ~40 MB at S 3, E 30, J 10
SAMPLE_BLOCK = 8192


def per_sample(fn: Callable[..., np.ndarray], *arrays: np.ndarray) -> np.ndarray:
    """(N,) float64: ``fn`` applied to blocks of ``SAMPLE_BLOCK`` samples (the last axis) of
    every array (``context.row_blocks``, the blocks of the row-wise scores), each block cast to
    float64 there (never the whole (S, E, N) array). ``fn`` must treat samples independently;
    then any block size gives the same bits (tests/test_trajectory_blocks.py)."""
    n = arrays[0].shape[-1]
    out = np.empty(n, dtype=np.float64)
    for cols in row_blocks(n, row_bytes=1, block_bytes=SAMPLE_BLOCK):
        out[cols] = fn(*(np.asarray(a[..., cols], dtype=np.float64) for a in arrays))
    return out


def area_under_margin(ctx: ScoringContext, method: str, space: str = "logit") -> np.ndarray:
    """(N,) mean over epochs and models of the margin: logits (Pleiss et al.) or probabilities
    (CCS's ``accumulated_margin``, divided by E: the same ranking)."""
    name = "epoch_margin" if space == "logit" else "epoch_prob_margin"
    return per_sample(lambda m: m.mean(axis=(0, 1)), require(ctx, name, method))


@register("aum", family="training dynamics",
          paper="Pleiss et al. 2020, Identifying mislabeled data using the area under the margin",
          params={})
def aum(ctx: ScoringContext, *, rng: np.random.Generator, balance: bool) -> np.ndarray:
    """Minus the area under the margin: -mean over pretraining epochs of (assigned logit - the
    largest other logit), averaged over the pretrained models (Pleiss et al. 2020).

    Low AUM marks a likely mislabeled (or very hard) sample. The score is -AUM so that the window
    ``top`` keeps the lowest AUM, the data-pruning use of AUM ("keep the hardest"; CCS's AUM
    baseline, ``--data-score-descending 0``); the window ``bottom`` keeps the highest AUM, Pleiss
    et al.'s filtering of mislabeled samples. The margins come from the augmented train-mode
    mini-batches of pretraining, as the reference records them. O(S E N).
    """
    return -area_under_margin(ctx, "aum")


def _sliding(values: np.ndarray, window: int) -> np.ndarray:
    """(S, E, N) -> (S, E - window + 1, window, N): every run of ``window`` consecutive epochs."""
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=1)  # (S, K, N, window)
    return np.moveaxis(view, 3, 2)


def _check_epochs(method: str, param: str, value: int, epochs: int) -> None:
    if value > epochs:
        raise ValueError(f"{method}: {param} = {value} needs at least {value} pretraining epochs; "
                         f"the dynamics hold {epochs} (raise pretrain.epochs or lower {param})")


DYN_UNC_VIEWS = ("eval", "train")


@register("dyn_unc", family="training dynamics",
          paper="He et al. 2023, Large-scale dataset pruning with dynamic uncertainty",
          params={"window": Int(2), "view": Choice(DYN_UNC_VIEWS)})
def dyn_unc(ctx: ScoringContext, *, rng: np.random.Generator, balance: bool,
            window: int = 10, view: str = "eval") -> np.ndarray:
    """Dynamic uncertainty (He et al. 2023): the mean over sliding windows of ``window`` (J)
    consecutive epochs of the standard deviation (ddof = 1, the paper's J - 1 denominator) of the
    predicted probability of the assigned label, averaged over the pretrained models. High =
    uncertain; the paper keeps the highest (window ``top``). J = 10 is the paper's default.

    ``view="eval"`` (default, the reference's): the probability on the un-augmented image in eval
    mode after each epoch (``eval_prob``, one inference pass per pretraining epoch).
    ``view="train"``: the probability on the augmented train-mode mini-batch of that epoch
    (``prob``, recorded during the SGD steps at no extra cost). Another ranking: on the digits
    default (no augmentation, so only dropout and the in-epoch timing differ) the Spearman
    correlation of the two scores is 0.57 and 132 of the 287 picks at ratio 0.2 differ
    (benchmarks/label_noise.py --noise 0 --selectors dyn_unc dyn_unc_train). O(S E J N).
    """
    if view == "eval":
        if ctx.epoch_eval_prob is None:
            raise ValueError(
                "dyn_unc: view = eval needs 'eval_prob' in data/dynamics.npz, which this "
                "pretraining did not record (rerun pretrain with this code, or set view: train)")
        prob = ctx.epoch_eval_prob
    else:
        prob = require(ctx, "epoch_prob", "dyn_unc")
    _check_epochs("dyn_unc", "window", window, prob.shape[1])
    return per_sample(lambda p: _sliding(p, window).std(axis=2, ddof=1).mean(axis=(0, 1)), prob)


@register("dual", family="training dynamics",
          paper="Cho et al. 2025, Lightweight dataset pruning without full training via example "
                "difficulty and prediction uncertainty (DUAL), ICML",
          params={"trajectory": Int(2), "window": Int(2)})
def dual(ctx: ScoringContext, *, rng: np.random.Generator, balance: bool, trajectory: int = 30,
         window: int = 10) -> np.ndarray:
    """DUAL (Cho et al. 2025): over the first ``trajectory`` (T = 30) pretraining epochs, the mean
    over sliding windows of ``window`` (J = 10) epochs of std(p) x (1 - mean(p)), p the assigned
    label's probability (std with ddof = 1), averaged over the pretrained models: uncertain
    (Dyn-Unc's std) and difficult (low mean confidence). High = kept first (the reference keeps
    the highest); its Beta sampler is the window ``beta`` (``coreset.scores.samplers``), which
    reads this score as its weight. The reference's factor 10 on the std is dropped: it changes
    neither the ranking nor the Beta sampler's probabilities. O(S T J N).
    """
    if window > trajectory:
        raise ValueError(f"dual: window = {window} must be <= trajectory = {trajectory}")
    prob = require(ctx, "epoch_prob", "dual")
    _check_epochs("dual", "trajectory", trajectory, prob.shape[1])

    def score(p: np.ndarray) -> np.ndarray:
        runs = _sliding(p[:, :trajectory], window)  # (S, K, J, block)
        return (runs.std(axis=2, ddof=1) * (1.0 - runs.mean(axis=2))).mean(axis=(0, 1))

    return per_sample(score, prob)


def binary_kl_terms(before: np.ndarray, after: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """TDDS's per-epoch change sum_c |p'_c (log p'_c - log p_c)| over the two-cell partition
    {assigned label, any other label}: p = prob of the assigned label, 1 - p the rest."""
    def term(new: np.ndarray, old: np.ndarray) -> np.ndarray:
        return np.abs(new * (np.log(new + eps) - np.log(old + eps)))

    return term(after, before) + term(1.0 - after, 1.0 - before)


TDDS_CLASSES = ("all", "assigned")


@register("tdds", family="training dynamics",
          paper="Zhang et al. 2024, Temporal dual-depth scoring (TDDS), CVPR",
          params={"trajectory": Int(2), "window": Int(2), "decay": Float(0.0, 1.0, True, True),
                  "classes": Choice(TDDS_CLASSES)})
def tdds(ctx: ScoringContext, *, rng: np.random.Generator, balance: bool, trajectory: int = 10,
         window: int = 10, decay: float = 0.9, classes: str = "all") -> np.ndarray:
    """Temporal dual-depth scoring (Zhang et al. 2024), over the first ``trajectory`` (T)
    pretraining epochs, in windows of ``window`` (W) epochs, with the reference's defaults
    (T = 10, W = 10, decay 0.9; its CIFAR-100 command uses T = 30).

    Depth 1: the change of the prediction between consecutive epochs, d_t = sum_c |p_{t+1,c}
    (log(p_{t+1,c} + 1e-8) - log(p_{t,c} + 1e-8))|. Depth 2: in each window k, the spread of d over
    the window, ||d_t - mean_window(d)||_2 over its W - 1 changes, weighted by decay
    (1 - decay)^(T - W - k) (recent windows count most) and summed over the T - W + 1 windows. High
    = kept first (the reference keeps the highest).

    ``classes="all"`` (default) is the reference: d_t over all C classes of the softmax, which the
    training loop records per sample as ``prob_change``. ``classes="assigned"`` takes d_t over the
    partition {assigned label, the other labels} (p, 1 - p) from the recorded assigned-label
    probability alone, for dynamics recorded without ``prob_change``: exact for two classes, a
    different ranking for more (Spearman 0.89 with the exact score on the digits default). The
    dynamics come from the augmented train-mode mini-batches of pretraining (the reference saves
    the training outputs of each epoch). O(S T N).
    """
    if window > trajectory:
        raise ValueError(f"tdds: window = {window} must be <= trajectory = {trajectory}")
    key = "epoch_prob_change" if classes == "all" else "epoch_prob"
    recorded = require(ctx, key, "tdds")
    _check_epochs("tdds", "trajectory", trajectory, recorded.shape[1])
    weight = decay * (1.0 - decay) ** (trajectory - window - np.arange(trajectory - window + 1))

    def score(values: np.ndarray) -> np.ndarray:
        if classes == "all":
            change = values[:, 1:trajectory]  # [e] is the change from epoch e - 1 to e
        else:
            prob = values[:, :trajectory]
            change = binary_kl_terms(prob[:, :-1], prob[:, 1:])  # (S, T - 1, block)
        runs = _sliding(change, window - 1)  # (S, T - W + 1, W - 1, block)
        spread = np.linalg.norm(runs - runs.mean(axis=2, keepdims=True), axis=2)  # (S, K, block)
        # weighted sum over windows, then mean over models, accumulated in a fixed order (an
        # einsum's summation order depends on the block's shape: its bits would too)
        total = np.zeros(spread.shape[2])
        for s_k in np.ndindex(spread.shape[:2]):
            total += spread[s_k] * weight[s_k[1]]
        return total / spread.shape[0]

    return per_sample(score, recorded)
