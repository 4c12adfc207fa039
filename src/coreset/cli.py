"""The ``coreset`` command (also ``python -m coreset``): one entry point for the tools.

    coreset check  [...]   validate params.yaml (coreset.check)
    coreset table  [...]   run a paper table's experiments and write it, with --shard/--merge/--gpus
                           for several machines or GPUs (coreset.experiments.tables)
    coreset report [...]   write the tables and figures from existing experiments
    coreset export [...]   the kept indices and weights of a selection, with provenance
                           (coreset.experiments.export)
    coreset verify [...]   check an exported selection: checksums, re-derived from its scores
                           (coreset.experiments.verify)
    coreset kept   [...]   a grid of kept and dropped images per class (experiments.report.kept)
    coreset show   [...]   dvc exp show with the columns a reader needs (coreset.experiments.show)

Each subcommand gets its arguments unchanged: ``coreset table --help`` shows its own help. The
modules are imported only when their subcommand runs, so ``coreset --help`` is instant.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module with main(argv) -> int, one line of help)
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("coreset.check", "validate params.yaml: every key, value and selector parameter"),
    "table": ("coreset.experiments.tables", "run a paper table's experiments and write the table "
                                      "(--tiny, --shard K/N, --merge, --gpus 0,1)"),
    "report": ("coreset.experiments.report.cli",
               "write the paper tables and figures from the experiments "
                                     "that exist"),
    "export": ("coreset.experiments.export",
               "kept indices and weights of a selection (.npy, .csv, JSON "
                                 "provenance), of the workspace, a commit or an experiment"),
    "verify": ("coreset.experiments.verify",
               "check a release of `coreset export`: every checksum, and the selection "
               "re-derived from its scores"),
    "kept": ("coreset.experiments.report.kept",
             "a picture of what a selector kept and dropped, per class"),
    "show": ("coreset.experiments.show",
             "dvc exp show without the recipe catalogue and hash columns"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return ("usage: coreset COMMAND [ARGS...]   (or python -m coreset COMMAND ...)\n\n"
            "commands:\n" + "\n".join(lines) +
            "\n\n`coreset COMMAND --help` shows the options of one command.\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``argv`` (default: the command line) to a subcommand's ``main``; its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage(), end="")
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; known: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)
