"""Paths the user names: an `external` scores file must be inside the repository after its links
are resolved; `coreset export` refuses recipe names that are paths, outputs inside what DVC or
git manage, and existing files (without --force), in one line, before anything is written."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from coreset.experiments import export
from coreset.scores.external import checked_bytes
from coreset.scores.params import ParamError

ROOT = Path(__file__).resolve().parents[1]


def test_external_refuses_a_link_out_of_the_repository(tmp_path, monkeypatch):
    outside, repo = tmp_path / "elsewhere", tmp_path / "repo"
    outside.mkdir()
    (repo / "scores").mkdir(parents=True)
    np.save(outside / "s.npy", np.arange(3.0))
    data = (outside / "s.npy").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    os.symlink(outside / "s.npy", repo / "scores" / "s.npy")
    os.symlink(outside, repo / "linked")
    shutil.copy(outside / "s.npy", repo / "scores" / "inside.npy")
    monkeypatch.chdir(repo)
    for path in ("scores/s.npy", "linked/s.npy"):
        with pytest.raises(ParamError, match=f"^path = '{path}' is not allowed: a file inside "
                           r"the repository .*a link out of it"):
            checked_bytes(path, digest)
    assert checked_bytes("scores/inside.npy", digest) == data
    os.symlink("inside.npy", repo / "scores" / "alias.npy")  # a link inside is fine
    assert checked_bytes("scores/alias.npy", digest) == data


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused(repo: Path, capsys, *args: str) -> str:
    before = sorted(p.relative_to(repo) for p in repo.rglob("*"))
    assert export.main([*args, "--root", str(repo)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert sorted(p.relative_to(repo) for p in repo.rglob("*")) == before
    return lines[0]


@pytest.mark.parametrize("out", ["data/raw", "data/raw/sub", "data/selected", "models/pretrain",
                                 "metrics/train", "plots/curves/train/x", "data/train", ".dvc/x",
                                 ".git", "data/embed.npz"])
def test_export_refuses_an_output_folder_that_dvc_or_git_manages(repo, capsys, out):
    line = refused(repo, capsys, "moderate", "--out", out)
    assert f"--out {out} is not allowed" in line


@pytest.mark.parametrize("recipe", ["../moderate", "../../etc", "a/b", "..", ".hidden", "a\\b",
                                    ""])
def test_export_refuses_a_recipe_name_that_is_a_path(repo, capsys, recipe):
    assert f"recipe {recipe!r} is not allowed" in refused(repo, capsys, recipe)


def test_export_refuses_to_overwrite_without_force(repo, capsys):
    out = repo / "exports" / "mine"
    out.mkdir(parents=True)
    (out / "kept.csv").write_text("index,weight\n")
    line = refused(repo, capsys, "moderate", "--out", str(out))
    assert "kept.csv exists: not overwritten; pass --force" in line
    export.check_target(repo, "moderate", out, force=True)  # --force lets it through
