"""coreset commands.

Usage: python -m coreset check [PARAMS_FILE]   validate params.yaml as every stage does
       python -m coreset --help                 this text
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "check":
        from coreset.check import main as check

        return check(rest)
    print(f"error: unknown command {command!r}; commands: check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
