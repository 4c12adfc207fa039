"""Scores from a file: published per-sample scores (for example Sorscher et al. 2022's ImageNet
scores) or a list of kept indices (a ``coreset export``) go through the same windows, balance,
training and tables as the built-in selectors.

A recipe, in params.yaml:

    recipes:
      sorscher:
        method: external
        params: {path: scores/sorscher.npy, kind: scores,
                 sha256: 3f5a...}  # `sha256sum scores/sorscher.npy`
        window: top
        balance: true

The declared sha256 pins the file's content, and through it the file is a dependency of
``score@sorscher``: the stage depends on ``recipes.sorscher.params``, so declaring a new hash
reruns it and everything downstream, as for any other param. The selector refuses a file whose
sha256 differs from the declared one, so the stage never uses content other than the declared;
a file edited without declaring its hash leaves the results of the declared content in place
(DVC sees no change), and the next run of the stage stops with the hash to declare. Version the
file itself with ``dvc add scores/sorscher.npy`` (outside ``data/``, which git ignores) and
commit the ``.dvc`` file.

File formats (N = the size of the training split, in the order of data/raw/train_*.npy):

- ``kind: scores``: ``.npy``, a 1-D float array of length N; or ``.csv`` with a ``score`` column
  (N rows, in order) or ``index`` and ``score`` columns (each index 0..N-1 exactly once). NaN is
  refused; -inf means "never keep" (as for greedy orders).
- ``kind: indices``: ``.npy``, a 1-D integer array; or ``.csv`` with an ``index`` column (the
  ``kept.csv`` of ``coreset export``). The first listed index ranks highest; unlisted samples
  get -inf, so a window that needs more samples than the file lists fails with a clear message.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from coreset.scores.context import ScoringContext
from coreset.scores.params import Choice, ParamError
from coreset.scores.registry import order_to_score, register

SUFFIXES = (".npy", ".csv")


@dataclass(frozen=True)
class FilePath:
    """A relative path inside the repository to a .npy or .csv file ("" = not set)."""

    def allowed(self) -> str:
        return "a relative path (inside the repository, no '..') to a .npy or .csv file"

    def ok(self, value: object) -> bool:
        if value == "":
            return True
        if not isinstance(value, str):
            return False
        path = PurePosixPath(value)
        return (path.suffix in SUFFIXES and not path.is_absolute() and ".." not in path.parts)


@dataclass(frozen=True)
class Sha256:
    """A sha256 hex digest (64 lowercase hex digits; "" = not set)."""

    def allowed(self) -> str:
        return "the file's sha256: 64 lowercase hex digits (`sha256sum FILE`)"

    def ok(self, value: object) -> bool:
        return value == "" or (isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value)
                               is not None)


def checked_bytes(path: str, sha256: str) -> bytes:
    """The file's bytes, or one ParamError line: unset path, missing file, hash not declared or
    different from the file's."""
    if not path:
        raise ParamError("path", path, "required: " + FilePath().allowed())
    file = Path(path)
    if not file.is_file():
        raise ParamError("path", path, f"no such file (from {Path.cwd()}); "
                                       + FilePath().allowed())
    # the check by name (FilePath) cannot see links: resolve them, then require the repository
    real, repo = file.resolve(), Path.cwd().resolve()
    if not real.is_relative_to(repo):
        raise ParamError("path", path, f"a file inside the repository ({repo}); it resolves to "
                                       f"{real} (a link out of it)")
    data = file.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if sha256 != actual:
        raise ParamError("sha256", sha256, f"the sha256 of {path} is {actual}: declare it (the "
                                           "hash makes the file a dependency of the score stage)")
    return data


def read_column(path: str, data: bytes, kind: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(values, indices or None) from a .npy array or a .csv column: scores or kept indices."""
    if path.endswith(".npy"):
        array = np.load(io.BytesIO(data), allow_pickle=False)
        return np.asarray(array), None
    frame = pd.read_csv(io.BytesIO(data))
    column = "score" if kind == "scores" else "index"
    if column not in frame:
        raise ParamError("path", path, f"a .csv with a {column!r} column (kind {kind}); its "
                                       f"columns: {', '.join(map(str, frame.columns))}")
    index = frame["index"].to_numpy() if kind == "scores" and "index" in frame else None
    return frame[column].to_numpy(), index


def scores_from(values: np.ndarray, index: np.ndarray | None, n: int, path: str) -> np.ndarray:
    """A float score per sample from a score column (in order, or keyed by ``index``)."""
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.number):
        raise ParamError("path", path, f"a 1-D numeric array of {n} scores; got dtype "
                                       f"{values.dtype}, shape {values.shape}")
    values = values.astype(np.float64)
    if index is not None:
        if len(index) != n or not np.array_equal(np.sort(index), np.arange(n)):
            raise ParamError("path", path, f"an index column listing 0..{n - 1} once each")
        out = np.empty(n)
        out[index] = values
        values = out
    if len(values) != n:
        raise ParamError("path", path, f"one score per training sample: {n}, got {len(values)}")
    if np.isnan(values).any() or np.isposinf(values).any():
        raise ParamError("path", path, "finite scores (or -inf for never kept); it has NaN/+inf")
    return values


def scores_from_indices(values: np.ndarray, n: int, path: str) -> np.ndarray:
    """Kept indices -> scores: the first listed ranks highest, unlisted samples get -inf."""
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
        raise ParamError("path", path, f"a 1-D integer array of indices; got dtype "
                                       f"{values.dtype}, shape {values.shape}")
    if len(values) and (values.min() < 0 or values.max() >= n):
        raise ParamError("path", path, f"indices in [0, {n - 1}] (the training split); got "
                                       f"{values.min()}..{values.max()}")
    if len(np.unique(values)) != len(values):
        raise ParamError("path", path, "indices listed once each; it repeats some")
    return order_to_score(values, n)


@register("external", family="external", paper="scores or kept indices from a file, e.g. "
          "Sorscher et al. 2022's published scores", window="top", balance=True,
          params={"path": FilePath(), "sha256": Sha256(),  # type: ignore[dict-item]
                  "kind": Choice(("scores", "indices"))})
def external(ctx: ScoringContext, *, rng: np.random.Generator, balance: bool, path: str = "",
             sha256: str = "", kind: str = "scores") -> np.ndarray:
    """Per-sample scores read from ``path`` (relative to the repository root), verified against
    ``sha256``; ``kind: indices`` turns a kept-index list into a ranking. O(N) time and memory."""
    data = checked_bytes(path, sha256)
    values, index = read_column(path, data, kind)
    if kind == "scores":
        return scores_from(values, index, ctx.n, path)
    return scores_from_indices(values, ctx.n, path)
