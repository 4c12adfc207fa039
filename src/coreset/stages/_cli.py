"""Shared entry-point plumbing of every stage, in this order:

1. ``-h``/``--help``: print the stage module's docstring (its usage) and exit 0, doing nothing else;
2. validate the WHOLE params.yaml (config.parse) and the stage's arguments, then the machine and
   the data (config.check_runtime): a bad file fails here, at whichever stage DVC runs first;
3. remove the stage's own stale temporaries (``.<name>.*.tmp`` left by a killed run);
4. ``main(params, argv)``;
5. when ``$CORESET_STAGE_LOG`` names a file, append one JSON line to it: the stage, its
   arguments, wall seconds and peak RSS (the process's own and its children's, e.g. the decoding
   pool): how a scale run (benchmarks, tests/test_scale_pipeline.py) measures each stage that
   ``dvc repro`` runs, without wrapping DVC's commands.

User errors (a bad value, a missing dataset or upstream artifact, a bad argument) print ONE line
``error: ...`` naming the key, the value and what is allowed, and exit with code 2 before anything
is written.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from coreset import artifacts
from coreset.config import ConfigError, check_runtime, load
from coreset.io import DamagedFile, LauncherGone, pin_launcher, remove_stale_temps
from coreset.params import Params, Recipe

PARAMS = "params.yaml"
USER_ERROR = 2

Main = Callable[[Params, list[str]], None]
Outputs = Callable[[Params, list[str]], Iterable[Path]]


class StageError(RuntimeError):
    """An error the user can fix (bad combination of params, missing files); printed as one line."""


def run(main: Main, outputs: Outputs) -> None:
    """Run a stage: ``outputs(params, argv)`` parses the arguments (StageError with the usage on a
    bad one) and lists the files and folders the stage writes."""
    argv = sys.argv[1:]
    if "-h" in argv or "--help" in argv:
        print(usage(main))
        sys.exit(0)
    pin_launcher()
    try:
        params, paths = validate(argv, outputs)
        remove_stale_temps(paths)
        started = time.monotonic()
        main(params, argv)
        _log_resources(main, argv, time.monotonic() - started)
    except DamagedFile as err:  # an upstream artifact is truncated, garbage, a pickle...
        fail(f"{err}; restore it: {artifacts.restore_command(err.path)}")
    except (ConfigError, StageError, LauncherGone) as err:
        fail(str(err))
    except FileNotFoundError as err:  # an upstream artifact is missing: the stage ran out of order
        fail(f"{err.filename or err}: no such file; run the stages before this one (dvc repro)")


STAGE_LOG = "CORESET_STAGE_LOG"


def _log_resources(main: Main, argv: list[str], wall_s: float) -> None:
    log = os.environ.get(STAGE_LOG)
    if not log:
        return
    mib = 1024  # ru_maxrss is in KiB on Linux
    # under `python -m` the module is __main__; its spec keeps the real name
    spec = getattr(sys.modules.get(main.__module__), "__spec__", None)
    stage = (spec.name if spec else main.__module__).rsplit(".", 1)[-1]
    row = {"stage": stage, "argv": argv, "wall_s": round(wall_s, 3),
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / mib,
           "children_peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / mib}
    with open(log, "a") as f:  # one short write per stage: lines of parallel stages do not mix
        f.write(json.dumps(row) + "\n")


def validate(argv: list[str], outputs: Outputs) -> tuple[Params, list[Path]]:
    """params.yaml, the arguments, the device and the class counts; nothing is written."""
    params = load(PARAMS)
    paths = [Path(p) for p in outputs(params, argv)]
    counts = None if artifacts.RAW in paths else artifacts.raw_class_counts(params.data.dataset)
    check_runtime(params, counts)
    return params, paths


def fail(message: str) -> None:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(USER_ERROR)


def usage(main: Main) -> str:
    doc = sys.modules[main.__module__].__doc__ or ""
    return doc.strip()


def no_args(*paths: Path | str) -> Outputs:
    """``outputs`` of a stage that takes no arguments and writes ``paths``."""

    def outputs(p: Params, argv: list[str]) -> list[Path]:
        if argv:
            raise StageError(f"unexpected arguments {' '.join(argv)!r}: this stage takes none "
                             "(--help prints its usage)")
        return [Path(x) for x in paths]

    return outputs


def recipe_arg(p: Params, argv: list[str], stage: str, n_args: int = 1) -> Recipe:
    """The recipe named by the first argument of ``<stage> <recipe> ...``."""
    if len(argv) != n_args or argv[0] not in p.recipes:
        raise StageError(f"usage: python -m coreset.stages.{stage} <recipe>"
                         f"{' <seed>' if n_args == 2 else ''}; recipes: {', '.join(p.recipes)}")
    return p.recipes[argv[0]]
