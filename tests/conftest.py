"""Fixtures shared across test modules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import tiny_repo

# pytest-xdist runs one worker per core, and torch's default is one thread per core in each
# worker: 2 workers x 2 threads on 2 cores spin against each other (test_models_zoo.py took 58
# CPU-s this way and 12 with one thread). Set before any test imports torch; subprocesses inherit
# it (the stages already run one torch thread: cpu_threads in params.yaml). An explicit
# OMP_NUM_THREADS in the environment wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _session_folder(tmp_path_factory) -> Path:
    """The session's temporary folder, the same for every pytest-xdist worker."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session's folder above the workers' own
    return base


@pytest.fixture(scope="session")
def tiny_built(tmp_path_factory) -> tuple[Path, str]:
    """(the tiny baseline repository with `dvc repro` run, that repro's output): computed once
    per session across the xdist workers; never change it, take a copy
    (:func:`tiny_repo.copy_built`)."""
    return tiny_repo.built(_session_folder(tmp_path_factory))
