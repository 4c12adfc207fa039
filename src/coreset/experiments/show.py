"""``coreset show``: ``dvc exp show`` with the columns a reader needs.

Usage: coreset show [dvc exp show options]

Plain ``dvc exp show`` lists every params.yaml key (the recipe catalogue alone is ~126 columns)
and one hash column per dependency (~45); DVC has no setting for its default columns. This drops
the catalogue and the hash columns and rounds to 3 digits; every other option is passed on, e.g.
``coreset show --only-changed`` or ``coreset show --keep '^accuracy\\.' --drop '.*'``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

# the recipe catalogue and the dependency hash columns (paths)
DROP = r"^(recipes\.|data/|src/|models/|metrics/train|plots/)"


def command(argv: Sequence[str]) -> list[str]:
    """The ``dvc exp show`` command line for ``argv``."""
    return [sys.executable, "-m", "dvc", "exp", "show", "--drop", DROP, "--precision", "3",
            *argv]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):
        print(__doc__.strip())
        return 0
    return subprocess.call(command(args))


if __name__ == "__main__":
    sys.exit(main())
