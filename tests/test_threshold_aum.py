"""aum_threshold: Pleiss et al.'s threshold-sample filter against the reference's rule by brute
force, a hand-worked combination of two runs, and a short real run on noisy digits."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coreset.data import datasets
from coreset.scores import registry
from coreset.scores.context import ModelAccess
from coreset.scores.threshold_aum import filter_score, threshold_sets, worse_than_threshold
from helpers_selectors import make_ctx


def test_threshold_sets_are_disjoint_slices_of_n_over_c():
    sets = threshold_sets(103, 10, 2, np.random.default_rng(0))
    assert [len(s) for s in sets] == [10, 10]  # 103 // 10, the reference's size
    assert not set(sets[0]) & set(sets[1])
    with pytest.raises(ValueError, match="do not fit"):
        threshold_sets(5, 10, 2, np.random.default_rng(0))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-5, 5), min_size=3, max_size=40), st.integers(0, 2**16),
       st.sampled_from([99.0, 90.0, 50.0]))
def test_worse_than_threshold_is_the_references_count_rule(values, seed, percentile):
    """The reference: flagged iff mean over threshold samples of (AUM_i < AUM_t) > 0.01 (for
    the 99th percentile); integer AUMs make ties frequent."""
    aum = np.array(values, dtype=np.float64)
    fake = np.random.default_rng(seed).random(len(aum)) < 0.4
    if not fake.any():
        fake[0] = True
    got = worse_than_threshold(aum, fake, percentile)
    brute = [np.mean([a < t for t in aum[fake]]) > 1 - percentile / 100 for a in aum]
    assert got.tolist() == brute


def test_filter_score_by_hand():
    """Two runs, five samples. Run 0 fakes sample 4, run 1 fakes sample 3; the 50th percentile
    rule flags a sample when more than half of the threshold AUMs (one per run) exceed it."""
    aum = np.array([[2.0, -1.0, 0.5, 3.0, 1.0],    # threshold AUM 1.0: flags 1 and 2
                    [1.0, -2.0, 4.0, 0.0, 5.0]])   # threshold AUM 0.0: flags 1
    fake = np.zeros((2, 5), bool)
    fake[0, 4] = fake[1, 3] = True
    got = filter_score(aum, fake, 50.0)
    # 0: kept, mean(2, 1); 1: flagged in both runs -> removed; 2: flagged in run 0 only -> kept,
    # mean(0.5, 4); 3: its only own run (0) does not flag it -> 3.0; 4: own run 1 -> 5.0
    assert got.tolist() == [1.5, -np.inf, 2.25, 3.0, 5.0]


def test_a_short_run_on_noisy_digits_removes_mostly_mislabeled_samples(tmp_path, monkeypatch):
    """400 digits, 20 % of labels flipped: the samples the filter removes are mostly the flipped
    ones, and the score ranks the rest (window top keeps the highest AUM of the kept)."""
    import torch

    monkeypatch.chdir(tmp_path)
    split = datasets.load("digits", "unused")
    n = 400
    images, true = split.train_images[:n], split.train_labels[:n].astype(np.int64)
    rng = np.random.default_rng(0)
    flipped = rng.random(n) < 0.2
    labels = np.where(flipped, (true + rng.integers(1, 10, n)) % 10, true)
    (tmp_path / "data/train").mkdir(parents=True)
    (tmp_path / "data/raw").mkdir(parents=True)
    for name, arr in (("images", images), ("labels", labels), ("true_labels", true),
                      ("image_kind", np.array([""] * n)), ("label_flipped", flipped)):
        np.save(tmp_path / f"data/train/{name}.npy", arr)
    (tmp_path / "data/raw/meta.json").write_text(json.dumps(
        {"dataset": "digits", "num_classes": 10, "image_size": 8, "channels": 1,
         "mean": [0.3], "std": [0.4]}))
    ctx = make_ctx(labels, 10)
    ctx.model = ModelAccess(device=torch.device("cpu"), load_models=list, batches=None)
    score = registry.get("aum_threshold").fn(ctx, rng=np.random.default_rng(1), balance=False,
                                             epochs=12, batch_size=32)
    removed = np.isneginf(score)
    assert 0.1 * n < removed.sum() < 0.35 * n
    assert flipped[removed].mean() > 0.8  # the filter finds the noise
    assert flipped[~removed].mean() < flipped.mean() / 2
    kept_top = np.argsort(-score, kind="stable")[: n // 5]
    assert np.isfinite(score[kept_top]).all() and flipped[kept_top].mean() < 0.05
