"""Fixtures shared across test modules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_dvc_cache(tmp_path_factory) -> Path:
    """One DVC cache (with its run-cache) for the end-to-end tests that only read what a tiny
    pipeline produces: the first of them computes a stage, the others restore it. Under
    pytest-xdist every worker gets the same folder (DVC's cache takes concurrent writers:
    tests/test_cluster_dvc.py), so a stage one worker computed is restored by the other."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session's folder above the workers' own
    cache = base / "dvc_cache"
    cache.mkdir(exist_ok=True)
    return cache
