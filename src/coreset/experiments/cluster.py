"""``coreset table TABLE --submitit slurm|local``: the table's shards as submitit jobs.

DVC runs stages only where it is called (no remote executors), so a worker is a clone of the
repository: its own work tree, experiment queue and DVC lock. Each job of the launcher

1. clones the repository into ``--workdir`` (or updates its clone there),
2. points the clone's DVC cache at one shared directory (``dvc cache dir --local``; default: the
   cache of the repository the command runs in), so outputs and run-cache entries that one job
   writes are there for every other job and for the merge,
3. runs shard K/N of the table (``coreset table ... --shard K/N --jobs 1``) and pushes its
   experiment refs back to the repository (``dvc exp push``; no DVC push: the cache is shared).

With ``--dvc-remote NAME`` the clones keep their own caches and exchange outputs and run-cache
through that DVC remote instead (the flow of src/coreset/scripts/slurm_array.sh). When every job
has ended, the submitting process writes the table from the experiments pushed back to it.

The executor is submitit's (Slurm, or ``local``: one process per job on this machine, the
fallback CI runs). For Slurm, the repository, ``--workdir``, the shared cache and the submitit
folder must be on a filesystem every node mounts. DVC writes cache objects and run-cache entries
to a temporary name and renames them into place, so concurrent writers to one cache directory
never leave a partial object (tests/test_cluster_dvc.py checks it with 4 writers).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from coreset.experiments.grid import GridError, dvc, dvc_env

EXECUTORS = ("slurm", "local")
RUN_LOG_ENV = "CORESET_RUN_LOG"  # where train stages write their run records (wall time, device)


@dataclass(frozen=True)
class Task:
    """One job: shard ``shard`` of the table, in the clone ``clone`` of ``repo``."""

    repo: str  # git URL or path to clone
    clone: str  # the clone's folder
    shard: str  # "K/N"
    table_args: tuple[str, ...]  # the plan's options (table name, --tiny, --ratios, ...)
    git_remote: str  # where the experiment refs go: the submitting repository by default
    cache_dir: str | None  # the shared DVC cache; None: exchange through dvc_remote
    dvc_remote: str | None = None
    env: dict[str, str] = field(default_factory=dict)  # extra environment (threads, run log)


def prepare_clone(repo: str, clone: Path, cache_dir: str | None) -> None:
    """``clone`` holds the newest commit of ``repo`` and, when given, uses ``cache_dir`` as its
    DVC cache (written to its .dvc/config.local, which its queued experiments inherit)."""
    if not (clone / ".git").exists():
        _check(["git", "clone", "-q", repo, str(clone)], Path.cwd(), f"git clone {repo}")
    else:
        _check(["git", "pull", "-q", "--ff-only"], clone, f"git pull in {clone}")
    if cache_dir and dvc(clone, "cache", "dir", "--local", cache_dir,
                         quiet=True).returncode != 0:
        raise GridError(f"`dvc cache dir --local {cache_dir}` failed in {clone}")


def run_task(task: Task) -> str:
    """The body of one job (module level, so that submitit pickles it by reference): prepare
    the clone, run the shard with the clone's own code; the clone's path. Raises on failure."""
    clone = Path(task.clone)
    prepare_clone(task.repo, clone, task.cache_dir)
    cmd = [sys.executable, "-m", "coreset.experiments.tables", *task.table_args,
           "--root", str(clone), "--shard", task.shard, "--git-remote", task.git_remote,
           "--jobs", "1"]
    cmd += ["--no-dvc-push"] if task.cache_dir else []
    cmd += ["--dvc-remote", task.dvc_remote] if task.dvc_remote else []
    src = str(clone / "src")
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
    env = {**dvc_env(), "PYTHONPATH": path, **task.env}
    proc = subprocess.run(cmd, cwd=clone, env=env)
    if proc.returncode != 0:
        raise GridError(f"shard {task.shard} failed (exit {proc.returncode}) in {clone}")
    return str(clone)


def tasks(root: Path, table_args: Sequence[str], count: int, workdir: Path,
          cache_dir: str | None, dvc_remote: str | None, repo: str | None = None,
          threads: int | None = None, run_log: Path | None = None) -> list[Task]:
    """The ``count`` jobs of one table: clones ``workdir/shard-K-of-N`` of ``repo`` (default:
    ``root``), pushing their experiments back to ``root``."""
    if count < 1:
        raise GridError(f"--workers {count} is not allowed: an integer >= 1")
    origin = repo or str(root.resolve())
    env = {RUN_LOG_ENV: str((run_log or root / "logs" / "runs").resolve())}
    if threads:
        env |= {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                          "OPENBLAS_NUM_THREADS")}
    return [Task(origin, str(workdir.resolve() / f"shard-{k}-of-{count}"), f"{k}/{count}",
                 tuple(table_args), str(root.resolve()), cache_dir, dvc_remote, env)
            for k in range(count)]


def shared_cache(root: Path, cache_dir: Path | None, dvc_remote: str | None) -> str | None:
    """The cache directory every clone uses: ``cache_dir``, or ``root``'s own cache; None with
    a DVC remote and no ``cache_dir`` (each clone keeps its own cache)."""
    if cache_dir is not None:
        return str(cache_dir.resolve())
    if dvc_remote:
        return None
    proc = subprocess.run([sys.executable, "-m", "dvc", "cache", "dir"], cwd=root,
                          env=dvc_env(), capture_output=True, text=True)
    out = proc.stdout.strip() if proc.returncode == 0 else ""
    return str(Path(out).resolve()) if out else str(root.resolve() / ".dvc" / "cache")


def executor(kind: str, folder: Path, *, timeout_min: int, cpus: int, gpus: int,
             params: dict[str, object] | None = None):
    """A submitit executor: ``slurm`` (sbatch) or ``local`` (processes on this machine).
    ``params`` are passed on to ``update_parameters`` (e.g. slurm_partition=gpu)."""
    import submitit

    if kind not in EXECUTORS:
        raise GridError(f"--submitit {kind!r} is not allowed: one of {', '.join(EXECUTORS)}")
    ex = submitit.AutoExecutor(folder=str(folder), cluster=kind)
    settings: dict[str, object] = {"timeout_min": timeout_min, "name": "coreset-table"}
    if kind == "slurm":  # the local executor hides every GPU unless told to keep them
        settings |= {"cpus_per_task": cpus, "gpus_per_node": gpus}
    try:
        ex.update_parameters(**settings, **(params or {}))
    except (ValueError, TypeError, NameError) as err:  # submitit names the unknown key
        raise GridError(f"--executor-param: {err}".splitlines()[0]) from None
    return ex


def launch(ex, jobs: Sequence[Task]) -> list[str]:
    """Submit every task as one job array and wait for all; one line per failed shard."""
    submitted = ex.map_array(run_task, list(jobs))
    for task, job in zip(jobs, submitted, strict=True):
        print(f"  shard {task.shard}: job {job.job_id}, clone {task.clone}, "
              f"log {job.paths.stdout}")
    failures = []
    for task, job in zip(jobs, submitted, strict=True):
        try:
            job.result()
        except Exception as err:  # submitit re-raises the job's error with its traceback
            last = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            failures.append(f"shard {task.shard} (job {job.job_id}) failed: {last}; "
                            f"log {job.paths.stdout}")
    return failures


def _check(cmd: list[str], cwd: Path, what: str) -> None:
    if subprocess.run(cmd, cwd=cwd).returncode != 0:
        raise GridError(f"`{what}` failed")
