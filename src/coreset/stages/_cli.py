"""Shared entry-point plumbing: load params, turn user errors into one line and a non-zero exit."""

from __future__ import annotations

import sys
from collections.abc import Callable

from coreset.config import ConfigError, Params, load
from coreset.data.datasets import DatasetUnavailable


class StageError(RuntimeError):
    """An error the user can fix (bad combination of params, missing files); printed as one line."""


def run(main: Callable[[Params, list[str]], None]) -> None:
    """Validate params.yaml, then call ``main(params, argv)``; user errors exit 2 with one line."""
    try:
        params = load("params.yaml")
        main(params, sys.argv[1:])
    except (ConfigError, DatasetUnavailable, StageError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
