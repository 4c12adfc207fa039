"""``coreset table TABLE`` (``python -m coreset.experiments.tables``): run the DVC experiments
one paper table needs, then write the table (``python -m coreset.experiments.report``).

    python -m coreset.experiments.tables selectors_x_ratios --jobs 2            # digits, CPU
    python -m coreset.experiments.tables robustness --tiny --jobs 2             # a quick smoke run
    coreset table selectors_x_ratios --preset cifar100_resnet50   # the paper, GPU

Each experiment is ``dvc exp run --queue -S ...``; ``dvc exp run --run-all -j N`` runs them
(blocking). Experiments that already exist (or are queued) with the same params are not queued
again, so a rerun only writes the report. Experiments whose upstream stages (corrupt, pretrain,
embed, scores) nothing has computed yet go first, one per distinct upstream, so the others
restore those stages from DVC's run-cache instead of computing them side by side.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from coreset.experiments import grid
from coreset.experiments.report import cli as report_cli
from coreset.experiments.report import experiments
from coreset.experiments.report.specs import ABLATION, BOOSTED
from coreset.io import save_text

# the paper tables: every report that is not another table's companion (declared once, in
# report/specs.py and report/cli.py); each writes itself and its companions
TABLES = tuple(n for n in report_cli.NAMES
               if n not in {c for cs in report_cli.COMPANIONS.values() for c in cs})
REPORTS = {t: (t, *report_cli.COMPANIONS.get(t, ())) for t in TABLES}
PAPER_RATIOS = (0.2, 0.3, 0.4, 0.6, 0.8)  # Moderate, Tables 5-7
ROBUST_RATIOS = (0.2, 0.3)  # Moderate, Tables 3, 4, 10
# --tiny writes its report here, next to a note that labels it: never over plots/report
SMOKE_OUT = Path("plots/smoke")
SMOKE_NOTE = ("# SMOKE RUN: not results\n\nWritten by `coreset table TABLE --tiny`"
              ": one seed, a few epochs, three selectors. It checks that the commands run; its "
              "numbers mean nothing. The real tables are in plots/report/.\n")
# --tiny: one seed, a few epochs, three selectors; minutes on a CPU, for smoke runs only
TINY = {"seeds": [0], "pretrain.seeds": [0], "pretrain.epochs": 2, "train.epochs": 3,
        "attacker.epochs": 2}
TINY_SELECTORS = ["random", "moderate", "el2n"]
TINY_RATIOS = (0.2, 0.4)
SCENARIOS = [  # Moderate: label noise (Tables 3, 10), corrupted images and adversarial (Table 4)
    {"corrupt.label_noise.rate": 0.2}, {"corrupt.label_noise.rate": 0.35},
    *({"corrupt.images.rate": r} for r in (0.05, 0.1, 0.2, 0.3)),
    {"corrupt.adversarial.rate": 1.0, "corrupt.adversarial.method": "pgd"},
    {"corrupt.adversarial.rate": 1.0, "corrupt.adversarial.method": "fgsm"},
]
TINY_SCENARIOS = [SCENARIOS[0], SCENARIOS[4], SCENARIOS[7]]  # labels 20%, images 20%, FGSM
PRETRAIN_EPOCHS = (1, 2, 5, 10, 20)  # DeepCore Table 4 / the slides: epochs before scoring
TINY_PRETRAIN_EPOCHS = (1, 2, 3)
# Moderate, Table 8: coresets selected with ResNet-50 (pretrain.model), each trained on these
GENERALISATION_MODELS = ("resnet50", "se_resnet18", "efficientnet_b0", "shufflenet_v2", "vit_s")
GENERALISATION_SELECTOR = "resnet50"
# --tiny: quick models that accept digits' 8 px, selected with small_cnn
TINY_GENERALISATION_MODELS = ("mnist_cnn", "mlp", "alexnet")
TINY_GENERALISATION_SELECTOR = "small_cnn"
# Params that change nothing before select@: experiments that differ only in these share every
# upstream stage (download .. score).
DOWNSTREAM = ("ratio", "seeds", "device", "cpu_threads", "train.")


class TableError(RuntimeError):
    """A problem the user must fix first (uncommitted baseline, unknown key); one line."""


@dataclass(frozen=True)
class Plan:
    """The experiments of one table: ``fixed`` overrides shared by all, one ``cell`` each."""

    table: str
    fixed: dict[str, Any]
    cells: list[dict[str, Any]]
    smoke: bool = False  # --tiny: its report goes to SMOKE_OUT, labelled, never to plots/report


# --- presets and overrides --------------------------------------------------------------------

def presets() -> list[str]:
    """Names of the bundled presets (src/coreset/presets/*.yaml)."""
    folder = resources.files("coreset") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """A preset: a flat mapping ``params key -> value`` applied as ``-S`` overrides."""
    if name not in presets():
        raise TableError(f"--preset {name!r} is unknown; known: {', '.join(presets())}")
    text = (resources.files("coreset") / "presets" / f"{name}.yaml").read_text()
    return dict(yaml.safe_load(text) or {})


def check_keys(overrides: dict[str, Any], base: dict[str, Any], origin: str) -> None:
    """Every override must name an existing leaf of params.yaml (as ``dvc exp run -S`` needs)."""
    for key in overrides:
        if key not in base:
            raise TableError(f"{origin}: {key} is not a key of params.yaml")


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise TableError(f"-S {item!r}: expected KEY=VALUE")
        out[key] = yaml.safe_load(value)
    return out


def hydra(value: Any) -> str:
    """A value in the override grammar of ``dvc exp run -S`` (Hydra's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra(v) for v in value) + "]"
    text = str(value)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", text) and text.lower() not in _KEYWORDS:
        return text  # a plain word needs no quotes
    return json.dumps(text)  # double-quoted with backslash escapes, as Hydra reads them


_KEYWORDS = {"true", "false", "null", "inf", "nan"}


# --- the plan ---------------------------------------------------------------------------------

def plan(table: str, base: dict[str, Any], *, tiny: bool = False, preset: str | None = None,
         ratios: Sequence[float] | None = None, selectors: Sequence[str] | None = None,
         sets: dict[str, Any] | None = None) -> Plan:
    """The experiments ``table`` needs, given the baseline params ``base`` (flattened)."""
    if table not in TABLES:
        raise TableError(f"unknown table {table!r}; known: {', '.join(TABLES)}")
    fixed: dict[str, Any] = {}
    if preset:
        fixed.update(load_preset(preset))
        check_keys(fixed, base, f"preset {preset}")
    if tiny:
        fixed.update(TINY)
    fixed.update(sets or {})
    check_keys(fixed, base, "-S")
    chosen = selectors or {"ablation": list(ABLATION), "boosted": list(BOOSTED)}.get(table)
    if chosen is None and tiny:
        chosen = TINY_SELECTORS
    if chosen is not None:
        fixed["selectors"] = list(chosen)
    if table == "generalisation":  # one selecting architecture for every cell
        fixed.setdefault("pretrain.model",
                         TINY_GENERALISATION_SELECTOR if tiny else GENERALISATION_SELECTOR)
    return Plan(table, fixed, _cells(table, base, tiny, ratios), smoke=tiny)


def _cells(table: str, base: dict[str, Any], tiny: bool, ratios: Sequence[float] | None
           ) -> list[dict[str, Any]]:
    if table in ("overlap", "pretrain_epochs", "generalisation"):
        default: Sequence[float] = (base["ratio"],)
    elif table == "robustness":
        default = ROBUST_RATIOS[:1] if tiny else ROBUST_RATIOS
    else:
        default = TINY_RATIOS if tiny else PAPER_RATIOS
    by_ratio = [{"ratio": float(r)} for r in (ratios or default)]
    if table == "robustness":
        # ratio-major: the first experiment of each scenario runs before its other ratios
        return [{**s, **r} for r in by_ratio for s in (TINY_SCENARIOS if tiny else SCENARIOS)]
    if table == "pretrain_epochs":
        epochs = TINY_PRETRAIN_EPOCHS if tiny else PRETRAIN_EPOCHS
        return [{"pretrain.epochs": e, **r} for r in by_ratio for e in epochs]
    if table == "generalisation":
        models = TINY_GENERALISATION_MODELS if tiny else GENERALISATION_MODELS
        return [{"train.model": m, **r} for r in by_ratio for m in models]
    return by_ratio


def full_params(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The flattened params of an experiment: the baseline updated with its overrides."""
    return {**base, **{k: experiments.freeze(v) for k, v in overrides.items()}}


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    skip = {"device", "cpu_threads"}
    return all(a.get(k) == b.get(k) for k in (a.keys() | b.keys()) - skip)


def _downstream(key: str) -> bool:
    return any(key == d or (d.endswith(".") and key.startswith(d)) for d in DOWNSTREAM)


def upstream(params: dict[str, Any]) -> tuple:
    """The params that the stages before select@ depend on (all but DOWNSTREAM)."""
    return tuple(sorted((k, v) for k, v in params.items() if not _downstream(k)))


def schedule(p: Plan, base: dict[str, Any], done: list[dict[str, Any]],
             pending: list[dict[str, Any]]) -> tuple[list[dict], list[dict], int]:
    """(phase 1 cells, phase 2 cells, cells already done or queued). Phase 1 holds one
    experiment per upstream that no completed experiment has computed yet."""
    todo, skipped = [], 0
    for cell in p.cells:
        params = full_params(base, {**p.fixed, **cell})
        if any(_same(params, d) for d in done + pending):
            skipped += 1
        else:
            todo.append(cell)
    known = {upstream(d) for d in done}
    first, rest = [], []
    for cell in todo:
        key = upstream(full_params(base, {**p.fixed, **cell}))
        (rest if key in known else first).append(cell)
        known.add(key)
    return first, rest, skipped


# --- running ----------------------------------------------------------------------------------

def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def check_baseline(root: Path) -> None:
    """Queued experiments start from the last commit and restore the stages its dvc.lock
    records: that commit must hold the baseline's dvc.lock, and dvc.yaml, dvc.lock and
    params.yaml must have no uncommitted changes."""
    fix = ("run `dvc repro`, then `git add dvc.yaml dvc.lock params.yaml && git commit -m "
           "baseline`, and start the table command again")
    if _git(root, "rev-parse", "--verify", "HEAD").returncode != 0:
        raise TableError(f"{root.resolve()} is not a git repository with a commit: {fix}")
    if _git(root, "ls-files", "--error-unmatch", "dvc.lock").returncode != 0:
        raise TableError(f"dvc.lock is not committed (no baseline to start from): {fix}")
    dirty = _git(root, "status", "--porcelain", "--", "dvc.yaml", "dvc.lock", "params.yaml")
    if dirty.stdout.strip():
        files = ", ".join(line[3:] for line in dirty.stdout.splitlines())
        raise TableError(f"uncommitted changes in {files}: the baseline must be committed "
                          f"(experiments are queued from the last commit): {fix}")


def _dvc(root: Path, *args: str, quiet: bool) -> int:
    return grid.dvc(root, *args, quiet=quiet).returncode


def queue(root: Path, overrides: dict[str, Any], quiet: bool) -> None:
    args = [a for k, v in overrides.items() for a in ("-S", f"{k}={hydra(v)}")]
    if _dvc(root, "exp", "run", "--queue", *args, quiet=quiet) != 0:
        raise TableError(f"`dvc exp run --queue {' '.join(args)}` failed")


def run_queue(root: Path, jobs: int, quiet: bool) -> None:
    """Run everything queued, ``jobs`` experiments at a time; returns when all have ended."""
    _dvc(root, "exp", "run", "--run-all", "-j", str(jobs), quiet=quiet)


def command(overrides: dict[str, Any]) -> str:
    """The shell command that queues one experiment (for the log and --dry-run)."""
    args = [a for k, v in overrides.items() for a in ("-S", f"{k}={hydra(v)}")]
    return shlex.join(["dvc", "exp", "run", "--queue", *args])


def report_args(p: Plan) -> list[str]:
    """`coreset report` arguments: this table command's reports, in its params context."""
    args = list(REPORTS[p.table])
    for key, value in p.fixed.items():
        if key not in ("seeds", "selectors"):
            args += ["--set", f"{key}={json.dumps(value)}"]
    if "selectors" in p.fixed and p.table not in ("ablation", "boosted"):
        args += ["--selectors", ",".join(p.fixed["selectors"])]
    return args + (["--out", str(SMOKE_OUT)] if p.smoke else [])


def execute(p: Plan, root: Path, jobs: int, dry_run: bool = False, quiet: bool = False,
            report: bool = True) -> int:
    """Queue and run what is missing, then write the report (unless ``report`` is False, as for
    a shard). 0 if every experiment completed."""
    base = experiments.flatten(yaml.safe_load((root / "params.yaml").read_text()))
    records = experiments.show_json(root)
    done = [e.params for e in experiments.parse_show(records)]
    first, rest, skipped = schedule(p, base, done, experiments.pending_params(records))
    print(f"{p.table}: {len(p.cells)} experiment(s), {skipped} already done or queued, "
          f"{len(first) + len(rest)} to run"
          + (f", {len(first)} of them first (each computes new upstream stages once)"
             if first and rest else ""))
    phases = [cells for cells in (first, rest) if cells]
    for number, cells in enumerate(phases, 1):
        start = time.monotonic()
        for cell in cells:
            overrides = {**p.fixed, **cell}
            print(f"  [{number}/{len(phases)}] {command(overrides)}")
            if not dry_run:
                queue(root, overrides, quiet)
        if not dry_run:
            print(f"  dvc exp run --run-all -j {jobs}")
            run_queue(root, jobs, quiet)
            print(f"  {len(cells)} experiment(s) ran in {time.monotonic() - start:.0f} s")
    if dry_run:
        return 0
    missing = _missing(p, base, root)
    if missing:
        print(f"error: {missing} experiment(s) did not complete: see `dvc queue status` and "
              "`dvc queue logs <name>`", file=sys.stderr)
    return (1 if missing else 0) or (write_report(p, root) if report else 0)


def write_report(p: Plan, root: Path) -> int:
    """`python -m coreset.experiments.report` with this table's arguments, in ``root``."""
    args = report_args(p)
    print(f"  {shlex.join(['python', '-m', 'coreset.experiments.report', *args])}")
    if p.smoke:
        save_text(root / SMOKE_OUT / "SMOKE.md", SMOKE_NOTE)
    return report_cli.main([*args, "--root", str(root)])


def run_shard(p: Plan, args: argparse.Namespace, base: dict[str, Any]) -> int:
    """This worker's slice of the table: pull what others computed, run it, push it back."""
    shard = grid.Shard.parse(args.shard)
    if not args.dry_run:
        grid.pull_run_cache(args.root, args.dvc_remote)
    key = lambda cell: upstream(full_params(base, {**p.fixed, **cell}))  # noqa: E731
    mine = grid.split(p.cells, key, shard.count)[shard.index]
    print(f"shard {shard.index}/{shard.count}: {len(mine)} of {len(p.cells)} experiment(s)")
    status = execute(Plan(p.table, p.fixed, mine), args.root, max(1, args.jobs),
                     dry_run=args.dry_run, report=False)
    if not args.dry_run and args.git_remote:
        grid.push(args.root, args.git_remote, args.dvc_remote, with_cache=not args.no_dvc_push)
        print(f"  pushed to {args.git_remote}"
              + ("" if args.no_dvc_push else f" and DVC remote {args.dvc_remote or '(default)'}"))
    return status


def merge(p: Plan, args: argparse.Namespace, base: dict[str, Any]) -> int:
    """Pull every worker's experiments and write the report; trains nothing."""
    if args.git_remote:
        grid.pull(args.root, args.git_remote, args.dvc_remote)
    missing = _missing(p, base, args.root)
    if missing:
        print(f"error: {missing} of {len(p.cells)} experiment(s) of {p.table} are not in "
              f"{args.git_remote or 'this clone'} yet: run the missing shards first",
              file=sys.stderr)
        return 1
    return write_report(p, args.root)


def _missing(p: Plan, base: dict[str, Any], root: Path) -> int:
    done = [e.params for e in experiments.parse_show(experiments.show_json(root))]
    return sum(not any(_same(full_params(base, {**p.fixed, **c}), d) for d in done)
               for c in p.cells)


# --- command line -----------------------------------------------------------------------------

def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def parser() -> argparse.ArgumentParser:
    a = argparse.ArgumentParser(prog="python -m coreset.experiments.tables", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("table", help=", ".join(TABLES))
    a.add_argument("-j", "--jobs", type=int, default=1,
                   help="experiments run at once (default 1; on a CPU, the number of cores)")
    a.add_argument("--tiny", action="store_true",
                   help=f"smoke run: {', '.join(f'{k}={v}' for k, v in TINY.items())}, "
                        f"selectors {','.join(TINY_SELECTORS)}, fewer ratios/scenarios")
    a.add_argument("--preset", help="params preset (src/coreset/presets/NAME.yaml)")
    a.add_argument("--ratios", type=_floats, help="comma-separated selection ratios")
    a.add_argument("--selectors", type=lambda s: [x for x in s.split(",") if x],
                   help="comma-separated recipes (default: params.yaml's, or the table's)")
    a.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra override for every experiment (as dvc exp run -S)")
    a.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    a.add_argument("--root", type=Path, default=Path("."), help="repository root")
    w = a.add_argument_group("several workers (clones sharing a git remote and a DVC remote)")
    w.add_argument("--shard", metavar="K/N",
                   help="run only worker K's deterministic slice of N, then push it")
    w.add_argument("--merge", action="store_true",
                   help="pull every worker's experiments and write the report; trains nothing")
    w.add_argument("--git-remote", metavar="NAME|URL",
                   help="where experiment refs go (dvc exp push/pull), e.g. origin")
    w.add_argument("--dvc-remote", metavar="NAME",
                   help="DVC remote for outputs and run-cache (default: the default remote)")
    w.add_argument("--no-dvc-push", action="store_true",
                   help="push experiment refs only (workers that share one DVC cache)")
    w.add_argument("--gpus", type=lambda s: [x for x in s.split(",") if x], metavar="0,1,..",
                   help="one worker per GPU on this machine (a clone each), then the merge")
    return a


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if sum(map(bool, (args.shard, args.merge, args.gpus))) > 1:
            raise TableError("--shard, --merge and --gpus exclude each other")
        check_baseline(args.root)
        base = experiments.flatten(yaml.safe_load((args.root / "params.yaml").read_text()))
        p = plan(args.table, base, tiny=args.tiny, preset=args.preset, ratios=args.ratios,
                 selectors=args.selectors, sets=parse_set(args.set))
        if args.shard:
            return run_shard(p, args, base)
        if args.merge:
            return merge(p, args, base)
        if args.gpus:
            failed = grid.run_local_workers(args.root, _table_args(args), args.gpus)
            return 1 if failed else merge(p, args, base)
        return execute(p, args.root, max(1, args.jobs), dry_run=args.dry_run)
    except (TableError, grid.GridError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _table_args(args: argparse.Namespace) -> list[str]:
    """The plan's own options, as a worker's command line."""
    out = [args.table, *(["--tiny"] if args.tiny else [])]
    out += ["--preset", args.preset] if args.preset else []
    out += ["--ratios", ",".join(map(str, args.ratios))] if args.ratios else []
    out += ["--selectors", ",".join(args.selectors)] if args.selectors else []
    return out + [x for s in args.set for x in ("-S", s)]


if __name__ == "__main__":
    sys.exit(main())
