"""Fixtures shared across test modules."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_dvc_cache(tmp_path_factory) -> Path:
    """One DVC cache (with its run-cache) for the end-to-end tests that only read what a tiny
    pipeline produces: the first of them computes a stage, the others restore it."""
    return tmp_path_factory.mktemp("dvc_cache")
