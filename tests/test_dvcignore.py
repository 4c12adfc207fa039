"""A folder dep (src/coreset/training, src/coreset/models) must hash the same with and without
Python's bytecode in it: a checkout where tests or stages ran (``__pycache__``) and a fresh clone
must give one dvc.lock. CI once failed on exactly that difference."""

from __future__ import annotations

import subprocess

import pytest

from tiny_repo import ROOT


@pytest.mark.parametrize("path", ["src/coreset/training/__pycache__/loop.cpython-311.pyc",
                                  "src/coreset/models/__pycache__/nets.cpython-313.pyc",
                                  "src/coreset/stray.pyc"])
def test_bytecode_is_ignored_by_dvc(path):
    proc = subprocess.run(["dvc", "check-ignore", path], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"{path} is hashed into the deps: add it to .dvcignore"


def test_sources_are_not_ignored():
    proc = subprocess.run(["dvc", "check-ignore", "src/coreset/training/loop.py"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 1
