"""The `external` selector: scores or kept indices from a .npy/.csv file, pinned by its sha256."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from coreset.scores import registry
from coreset.scores.params import ParamError
from coreset.scores.selection import select
from helpers_selectors import make_ctx

N = 12
LABELS = np.array([0, 1] * (N // 2), dtype=np.int64)


def run(**params):
    return registry.get("external").fn(make_ctx(LABELS, 2), rng=np.random.default_rng(0),
                                       balance=False, **params)


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # paths are relative to the repository root, the stage's cwd
    return tmp_path


def test_npy_scores_come_back_unchanged(in_tmp):
    scores = np.linspace(-1.0, 2.0, N)
    np.save(in_tmp / "s.npy", scores)
    out = run(path="s.npy", sha256=sha(in_tmp / "s.npy"))
    np.testing.assert_array_equal(out, scores)


def test_csv_scores_keyed_by_index_land_on_their_sample(in_tmp):
    order = np.random.default_rng(1).permutation(N)
    lines = "".join(f"{i},{10.0 * i}\n" for i in order)
    (in_tmp / "s.csv").write_text("index,score\n" + lines)
    out = run(path="s.csv", sha256=sha(in_tmp / "s.csv"))
    np.testing.assert_array_equal(out, 10.0 * np.arange(N))


def test_kept_indices_rank_first_listed_highest_and_reproduce_the_kept_set(in_tmp):
    kept = np.array([7, 2, 9, 4])  # an export's kept.csv, as `coreset export` writes it
    (in_tmp / "kept.csv").write_text("index,weight\n" + "".join(f"{i},1\n" for i in kept))
    out = run(path="kept.csv", sha256=sha(in_tmp / "kept.csv"), kind="indices")
    assert list(np.argsort(-out)[:4]) == list(kept)
    assert np.isneginf(np.delete(out, kept)).all()
    # through the same selection as every selector: ratio 4/12, top window, global
    picked = select(out, LABELS, len(kept) / N, "top", False, np.random.default_rng(0))
    assert sorted(picked) == sorted(kept)


@pytest.mark.parametrize(("params", "message"), [
    ({}, "path = '' is not allowed: required"),
    ({"path": "missing.npy", "sha256": "0" * 64}, "path = 'missing.npy' is not allowed: no such"),
    ({"path": "s.npy", "sha256": "0" * 64}, "sha256 = '0000"),
    ({"path": "s.npy"}, "sha256 = '' is not allowed: the sha256 of s.npy is "),
])
def test_missing_file_or_undeclared_hash_is_one_clear_line(in_tmp, params, message):
    np.save(in_tmp / "s.npy", np.zeros(N))
    with pytest.raises(ParamError) as err:
        run(**params)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    if "sha256" in message:  # the message gives the hash to declare
        assert sha(in_tmp / "s.npy") in str(err.value)


@pytest.mark.parametrize(("array", "kind", "message"), [
    (np.zeros(N - 1), "scores", f"one score per training sample: {N}, got {N - 1}"),
    (np.array([0.0] * (N - 1) + [np.nan]), "scores", "finite scores"),
    (np.array([3, N]), "indices", f"indices in [0, {N - 1}]"),
    (np.array([3, 3]), "indices", "indices listed once each"),
    (np.array([0.5, 1.5]), "indices", "a 1-D integer array"),
])
def test_wrong_length_or_content_is_refused(in_tmp, array, kind, message):
    np.save(in_tmp / "s.npy", array)
    with pytest.raises(ParamError, match=r"path = 's\.npy' is not allowed") as err:
        run(path="s.npy", sha256=sha(in_tmp / "s.npy"), kind=kind)
    assert message in str(err.value)


@pytest.mark.parametrize("path", ["/abs/s.npy", "../s.npy", "s.txt", 3])
def test_params_validation_refuses_bad_paths_before_any_work(path):
    with pytest.raises(ParamError, match=r"path = .* is not allowed: a relative path"):
        registry.validate_params("external", {"path": path})


def test_params_validation_refuses_a_malformed_hash():
    with pytest.raises(ParamError, match="sha256 = 'abc' is not allowed: the file's sha256"):
        registry.validate_params("external", {"sha256": "abc"})
