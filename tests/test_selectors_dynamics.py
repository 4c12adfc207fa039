"""AUM, Dyn-Unc, TDDS, CCS and D2 pruning against hand-worked examples and brute-force versions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coreset.scores import registry
from coreset.scores.coverage import hard_cut_mask
from coreset.scores.samplers import allocations, strata_of
from coreset.scores.selection import select
from coreset.training.dynamics import record
from helpers_selectors import make_ctx

RNG = np.random.default_rng(0)


def score(method: str, ctx, balance: bool = False, **params) -> np.ndarray:
    return registry.get(method).fn(ctx, rng=np.random.default_rng(1), balance=balance, **params)


def dyn_ctx(labels, prob=None, margin=None, prob_margin=None, classes: int = 2, eval_prob=None):
    ctx = make_ctx(np.asarray(labels), classes)
    ctx.epoch_prob, ctx.epoch_margin, ctx.epoch_prob_margin = prob, margin, prob_margin
    ctx.epoch_eval_prob = eval_prob
    return ctx


def test_record_margins_and_probability_by_hand():
    out = record(np.array([[2.0, 0.0, 1.0], [0.0, 0.0, 3.0]]), np.array([0, 1]))
    e = np.exp([2.0, 0.0, 1.0]) / np.exp([2.0, 0.0, 1.0]).sum()
    assert out["margin"].tolist() == [1.0, -3.0]  # 2 - 1; 0 - 3
    assert out["prob"][0] == pytest.approx(e[0])
    assert out["prob_margin"][0] == pytest.approx(e[0] - e[2])
    assert all(v.dtype == np.float32 and v.shape == (2,) for v in out.values())


@pytest.mark.parametrize("method", ["aum", "dyn_unc", "tdds", "ccs"])
def test_missing_dynamics_raise_a_clear_error(method):
    with pytest.raises(ValueError, match="did not record"):
        score(method, dyn_ctx([0, 1, 0]))


def test_aum_is_minus_the_mean_margin_over_epochs_and_models():
    margin = np.array([[[1.0, -2.0], [3.0, 0.0]], [[2.0, -1.0], [2.0, 1.0]]], dtype=np.float32)
    s = score("aum", dyn_ctx([0, 1], margin=margin))
    assert s.tolist() == pytest.approx([-2.0, 0.5])  # mean(1, 3, 2, 2) = 2; mean(-2, 0, -1, 1)


def test_dyn_unc_by_hand_and_against_loops():
    prob = np.array([[[0.1], [0.5], [0.9]]])  # one model, three epochs, one sample
    # windows (0.1, 0.5) and (0.5, 0.9): sample std with ddof 1 = 0.4 / sqrt(2) each
    got = score("dyn_unc", dyn_ctx([0], eval_prob=prob), window=2)[0]
    assert got == pytest.approx(0.4 / 2**0.5)
    prob = RNG.random((2, 7, 5))
    loops = [[np.mean([np.std(prob[m, k:k + 3, i], ddof=1) for k in range(5)])
              for i in range(5)] for m in range(2)]
    assert score("dyn_unc", dyn_ctx([0] * 5, eval_prob=prob), window=3) == pytest.approx(
        np.mean(loops, axis=0))
    with pytest.raises(ValueError, match="window = 8 needs at least 8 pretraining epochs"):
        score("dyn_unc", dyn_ctx([0] * 5, eval_prob=prob), window=8)


def test_dyn_unc_reads_the_eval_view_by_default():
    """A hand-made trajectory where the two views disagree: sample 0 is steady in eval mode
    (0.8, 0.8, 0.8) but jumps on its augmented batches (0.2, 0.9, 0.3); sample 1 the reverse.
    The default (the reference's eval view) keeps sample 1 first; view train, sample 0."""
    eval_prob = np.array([[[0.8, 0.1], [0.8, 0.7], [0.8, 0.2]]])
    train_prob = np.array([[[0.2, 0.5], [0.9, 0.5], [0.3, 0.5]]])
    ctx = dyn_ctx([0, 1], prob=train_prob, eval_prob=eval_prob)
    brute = [np.mean([np.std(eval_prob[0, k:k + 2, i], ddof=1) for k in range(2)])
             for i in range(2)]
    default = score("dyn_unc", ctx, window=2)
    assert default.tolist() == pytest.approx(brute)  # [0, mean(0.6, 0.5) / sqrt 2]
    assert default[1] > default[0]
    train = score("dyn_unc", ctx, window=2, view="train")
    assert train.tolist() == pytest.approx([(0.7 + 0.6) / 2 / 2**0.5, 0.0])
    ctx.epoch_eval_prob = None  # a dynamics.npz written before eval_prob was recorded
    with pytest.raises(ValueError, match=r"view = eval needs 'eval_prob' in data/dynamics\.npz"):
        score("dyn_unc", ctx, window=2)
    assert score("dyn_unc", ctx, window=2, view="train").tolist() == pytest.approx(train)


def tdds_reference(p: np.ndarray, trajectory: int, window: int, decay: float) -> np.ndarray:
    """The reference's loops on full softmax vectors p (E, N, C), one model."""
    total = 0.0
    for k in range(trajectory - window + 1):
        kd = [np.abs(p[k + j + 1] * (np.log(p[k + j + 1] + 1e-8) - np.log(p[k + j] + 1e-8)))
              .sum(axis=1) for j in range(window - 1)]
        avg = np.sum(kd, axis=0) / (window - 1)
        norm = np.linalg.norm(np.array([d - avg for d in kd]), axis=0)
        total = total + norm * decay * (1 - decay) ** (trajectory - window - k)
    return total


def test_tdds_equals_the_reference_formula_for_two_classes():
    p1 = RNG.uniform(0.01, 0.99, (9, 6))  # prob of the assigned label (class 0), 9 epochs
    full = np.stack([p1, 1 - p1], axis=2)
    expected = tdds_reference(full, trajectory=8, window=4, decay=0.9)
    ctx = dyn_ctx([0] * 6, prob=p1[None])
    got = score("tdds", ctx, trajectory=8, window=4, classes="assigned")
    assert got == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="trajectory = 10 needs at least 10"):
        score("tdds", ctx, classes="assigned")


def _recorded_change(logits: np.ndarray, batch: int = 4) -> np.ndarray:
    """prob_change as the training loop records it: logits (E, N, C) fed to _Dynamics in a fresh
    random batch order every epoch, as the loop visits them."""
    import torch

    from coreset.training.loop import FitResult, _Dynamics

    epochs, n, c = logits.shape
    labels = torch.zeros(n, dtype=torch.int64)
    dyn, gen = _Dynamics.empty(epochs, labels, c), np.random.default_rng(3)
    for e in range(epochs):
        order = gen.permutation(n)
        for start in range(0, n, batch):
            idx = torch.from_numpy(order[start : start + batch])
            out = torch.from_numpy(logits[e, idx.numpy()])
            dyn.record(idx, torch.zeros(len(idx), dtype=torch.bool), torch.zeros(len(idx)), out)
        dyn.end_epoch(e, np.zeros(n, np.float32))
    result = FitResult()
    dyn.into(result, epochs)
    return result.dynamics["prob_change"]


def test_tdds_over_all_classes_equals_the_reference_on_full_softmax():
    """Five classes: the loop's per-batch change (previous epoch's logits of the same sample)
    fed to tdds gives the reference's score on the full softmax vectors; the {assigned, other}
    variant does not."""
    epochs, n, c = 9, 13, 5
    logits = RNG.normal(scale=2.0, size=(epochs, n, c)).astype(np.float32)
    change = _recorded_change(logits)
    assert change.shape == (epochs, n) and (change[0] == 0).all() and (change[1:] > 0).all()
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(axis=2, keepdims=True))
    p /= p.sum(axis=2, keepdims=True)
    expected = tdds_reference(p, trajectory=8, window=4, decay=0.9)
    ctx = dyn_ctx([0] * n, prob=p[None, :, :, 0].astype(np.float32), classes=c)
    ctx.epoch_prob_change = change[None]
    got = score("tdds", ctx, trajectory=8, window=4)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    approx = score("tdds", ctx, trajectory=8, window=4, classes="assigned")
    assert not np.allclose(approx, expected, rtol=1e-2)
    ctx.epoch_prob_change = None
    with pytest.raises(ValueError, match="prob_change"):
        score("tdds", ctx, trajectory=8, window=4)


# --- CCS ----------------------------------------------------------------------------------------

def reference_allocation(budget: int, sizes: list[int]) -> list[int]:
    """CCS's bin_allocate, transcribed as plain loops."""
    order = sorted(range(len(sizes)), key=lambda i: (sizes[i], i))
    rest, out = budget, [0] * len(sizes)
    for position, i in enumerate(order):
        out[i] = min(sizes[i], rest // (len(sizes) - position))
        rest -= out[i]
    return out


def test_allocation_by_hand():
    # sizes 1, 4, 5 and budget 6: min(1, 6 // 3) = 1, min(4, 5 // 2) = 2, min(5, 3) = 3
    assert allocations(np.array([4, 1, 5]), np.array([6])).tolist() == [[2, 1, 3]]


def test_ccs_order_prefixes_are_the_stratified_samples_of_every_budget():
    n, k = 60, 6
    prob_margin = RNG.normal(size=(1, 3, n)).astype(np.float32)
    ctx = dyn_ctx(np.zeros(n, dtype=int), prob_margin=prob_margin)
    s = score("ccs", ctx, hard_cut=0.1, strata=k)
    aum = prob_margin.astype(np.float64).mean(axis=(0, 1))
    cut = np.argsort(aum, kind="stable")[:6]  # floor(0.1 * 60) lowest AUM
    assert np.isneginf(s[cut]).all() and np.isfinite(np.delete(s, cut)).all()
    rest = np.setdiff1d(np.arange(n), cut)
    stratum = strata_of(-aum[rest], k)
    sizes = np.bincount(stratum, minlength=k).tolist()
    order = rest[np.argsort(-s[rest], kind="stable")]
    where = {int(i): int(b) for i, b in zip(rest, stratum, strict=True)}
    for m in range(len(rest) + 1):
        taken = np.bincount([where[int(i)] for i in order[:m]], minlength=k).tolist()
        assert taken == reference_allocation(m, sizes), m
    # through select: the top window at a ratio keeps the first budget(n, ratio) of the order
    kept = select(s, ctx.labels, 0.25, "top", False, np.random.default_rng(0))
    assert set(kept) == set(order[:15].tolist())


def test_ccs_strata_keep_the_maximum_and_cut_ties_by_index():
    assert strata_of(np.array([-3.0, -2.0, -1.0]), 2).tolist() == [0, 1, 1]
    assert hard_cut_mask(np.array([1.0, 5.0, 5.0, 0.0]), 0.5).tolist() == [False, True, True,
                                                                           False]
    assert hard_cut_mask(np.full(3, 5.0), 0.34).tolist() == [True, False, False]  # lower index
    # the rate is read as the decimal it is written as: 0.29 * 100 = 29, not floor(28.99...)
    assert math.floor(0.29 * 100) == 28 and hard_cut_mask(np.zeros(100), 0.29).sum() == 29


def test_ccs_balanced_runs_per_class():
    labels = np.repeat([0, 1], 20)
    ctx = dyn_ctx(labels, prob_margin=RNG.normal(size=(1, 2, 40)).astype(np.float32))
    s = score("ccs", ctx, balance=True, hard_cut=0.25, strata=4, cut_scope="class")
    assert [int(np.isneginf(s[labels == c]).sum()) for c in (0, 1)] == [5, 5]


@pytest.mark.parametrize("method", ["ccs", "d2"])
def test_the_global_hard_cut_drops_the_lowest_aum_of_all_samples(method):
    """The references' mislabel_mask: floor(beta N) lowest AUM over the whole set, then the
    per-class step; a class with low AUM loses more than its share."""
    labels = np.repeat([0, 1], 20)
    prob_margin = RNG.normal(size=(1, 3, 40)).astype(np.float32)
    prob_margin[:, :, :20] -= 1.0  # class 0 is harder: most of the cut falls there
    ctx = dyn_ctx(labels, prob_margin=prob_margin)
    ctx.features = RNG.normal(size=(40, 3)).astype(np.float32)
    s = score(method, ctx, balance=True, hard_cut=0.25, score="aum")
    aum = prob_margin.astype(np.float64).mean(axis=(0, 1))
    expected = np.sort(np.argsort(aum, kind="stable")[:10])
    assert np.flatnonzero(np.isneginf(s)).tolist() == expected.tolist()
    assert int(np.isneginf(s[:20]).sum()) > 5


@pytest.mark.parametrize("method", ["ccs", "d2"])
def test_never_learned_samples_count_zero_forgetting_events_by_default(method):
    """CCS's and D2's recorders add forgetting events only: a never-learned sample has 0 and is
    the least important by forgetting; never_learned="max" makes it the most important."""
    n, epochs = 30, 6
    ctx = dyn_ctx(np.zeros(n, dtype=int), prob_margin=RNG.normal(size=(1, epochs, n))
                  .astype(np.float32))
    ctx.correct = np.ones((1, epochs, n), dtype=bool)
    ctx.correct[0, 1::2, 10:] = False  # samples 10..: wrong at epochs 1, 3, 5
    ctx.correct[0, :, :5] = False  # samples 0-4: never learned
    ctx.features = RNG.normal(size=(n, 3)).astype(np.float32)
    events = np.zeros(n)
    events[10:] = 3.0  # correct at epochs 0, 2, 4, wrong at 1, 3, 5: three events
    zero, high = events.copy(), events.copy()
    zero[:5], high[:5] = 0.0, epochs
    got = {v: registry.get("forgetting").fn(ctx, rng=RNG, balance=False, never_learned=v)
           for v in ("zero", "max")}
    assert got["zero"].tolist() == zero.tolist() and got["max"].tolist() == high.tolist()
    if method == "d2":  # the importance the graph passes is the reference's count
        for never, importance in (("zero", zero), ("max", high)):
            s = score("d2", ctx, score="forgetting", never_learned=never, neighbors=3)
            expected = d2_dense(ctx.features.astype(np.float64), importance, 3, 0.1, 1.0, n)
            assert np.argsort(-s, kind="stable").tolist() == expected
        default = score("d2", ctx, score="forgetting", neighbors=3)
        assert np.array_equal(default, score("d2", ctx, score="forgetting", neighbors=3,
                                             never_learned="zero"))
    else:  # cut by the score itself: "max" cuts the never-learned, "zero" keeps them
        kw = {"score": "forgetting", "cut_by": "score", "hard_cut": 0.2, "strata": 3}
        assert np.flatnonzero(np.isneginf(score("ccs", ctx, never_learned="max", **kw))
                              ).tolist() == [0, 1, 2, 3, 4, 10]  # 6 cut; ties: lower index
        assert np.isfinite(score("ccs", ctx, **kw)[:5]).all()


# --- D2 pruning ---------------------------------------------------------------------------------

def d2_dense(x, importance, k, gamma, forward_gamma, length):
    """Brute force with the full N x N distance matrix (tests only)."""
    d = np.linalg.norm(x[:, None] - x[None], axis=2)
    np.fill_diagonal(d, np.inf)
    adj = np.zeros_like(d, dtype=bool)
    for i in range(len(x)):
        adj[i, np.argsort(d[i], kind="stable")[:k]] = True
    adj |= adj.T
    w = np.where(adj, np.exp(-forward_gamma * np.where(adj, d, 0)), 0.0)
    density = importance + w @ np.maximum(importance, 1e-7)
    order = []
    for _ in range(length):
        i = int(np.argmax(density))
        order.append(i)
        density[adj[i]] -= np.exp(-gamma * d[i, adj[i]]) * density[i]
        density[i] = -np.inf
    return order


def test_d2_by_hand_on_a_line():
    # points 0, 1, 10; k = 1: 0 -> 1, 1 -> 0, 2 -> 1, symmetrised: edges 0-1 and 1-2
    x = np.array([[0.0], [1.0], [10.0]])
    ctx = make_ctx(np.zeros(3, dtype=int), 2, features=x, epochs=4)
    ctx.correct[0] = np.array([[1, 1, 1], [0, 0, 1], [1, 1, 0], [1, 0, 1]], dtype=bool)
    counts = registry.get("forgetting").fn(ctx, rng=RNG, balance=False)
    assert counts.tolist() == [1.0, 2.0, 1.0]  # correct -> wrong events per sample
    # forward, exp(-d): 0: 1 + 2 e^-1; 1: 2 + e^-1 + e^-9; 2: 1 + 2 e^-9. Take 1 (the highest),
    # then 0 -= e^-0.1 d1 (negative), 2 -= e^-0.9 d1 (still positive): 2 before 0
    e = math.exp
    d = np.array([1 + 2 * e(-1), 2 + e(-1) + e(-9), 1 + 2 * e(-9)])
    after = d - np.array([e(-0.1), 0.0, e(-0.9)]) * d[1]
    assert d.argmax() == 1 and after[0] < 0 < after[2]
    s = score("d2", ctx, neighbors=1, gamma=0.1)
    assert np.argsort(-s).tolist() == [1, 2, 0]  # the top-2 skips 1's close neighbour 0


def test_d2_matches_the_dense_brute_force():
    x = RNG.normal(size=(40, 3))
    ctx = make_ctx(np.zeros(40, dtype=int), 2, features=x, epochs=5)
    ctx.correct[0] = RNG.random((5, 40)) < 0.6
    importance = registry.get("forgetting").fn(ctx, rng=RNG, balance=False)
    s = score("d2", ctx, neighbors=4, gamma=0.3, forward_gamma=0.5, max_ratio=0.5)
    expected = d2_dense(x, importance, 4, 0.3, 0.5, 20)
    assert np.argsort(-s, kind="stable")[:20].tolist() == expected
    assert np.isneginf(s).sum() == 20


def test_build_context_passes_the_recorded_dynamics_on(tmp_path, monkeypatch):
    """score_inputs reads margin, prob and prob_margin from data/dynamics.npz into the context
    (and leaves them None for a dynamics.npz written before they were recorded)."""
    import json

    from coreset import config
    from coreset.io import save_npz
    from coreset.scores import inputs as score_inputs

    p = config.load("params.yaml")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/train").mkdir(parents=True)
    (tmp_path / "data/raw").mkdir()
    (tmp_path / "data/raw/meta.json").write_text(json.dumps(
        {"dataset": "digits", "num_classes": 2, "image_size": 8, "channels": 1, "mean": [0.0],
         "std": [1.0]}))
    np.save(tmp_path / "data/train/labels.npy", np.array([0, 1, 1]))
    save_npz("data/embed.npz", features=np.zeros((3, 2), np.float32),
             probs=np.zeros((1, 3, 2), np.float32), loss=np.zeros((1, 3), np.float32),
             grad_norm=np.zeros((1, 3), np.float32))
    dyn = {"correct": np.ones((1, 2, 3), bool), "loss": np.zeros((1, 2, 3), np.float32)}
    save_npz("data/dynamics.npz", **dyn)
    assert score_inputs.build_context(p, with_model=False).epoch_margin is None
    margin = RNG.normal(size=(1, 2, 3)).astype(np.float32)
    save_npz("data/dynamics.npz", **dyn, margin=margin, prob=margin + 1, prob_margin=margin - 1)
    ctx = score_inputs.build_context(p, with_model=False)
    assert np.array_equal(ctx.epoch_margin, margin)
    assert np.array_equal(ctx.epoch_prob, margin + 1)
    assert np.array_equal(ctx.epoch_prob_margin, margin - 1)
