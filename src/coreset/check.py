"""Validate params.yaml exactly as every stage does before it runs, and nothing else.

Usage: python -m coreset check [PARAMS_FILE]      (default: params.yaml)
       python -m coreset.check [PARAMS_FILE]

Checks every key and value (selector parameters of every recipe included), the device, and, once
data/raw exists, that the ratio keeps a sample of every class. Prints "<file>: ok" and exits 0,
or prints one line naming the key, the value and what is allowed and exits 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from coreset.artifacts import raw_class_counts
from coreset.config import ConfigError, check_runtime, load


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        print(__doc__.strip())
        return 0
    if len(args) > 1:
        print(f"error: expected at most one params file, got {' '.join(args)!r}", file=sys.stderr)
        return 2
    path = args[0] if args else "params.yaml"
    try:
        params = load(path)
        check_runtime(params, raw_class_counts(params.data.dataset))
    except ConfigError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    print(f"{path}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
