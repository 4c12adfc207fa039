"""Fill one paper table from several workers: a deterministic shard of its experiments per
worker, results exchanged through a git remote (experiment refs) and a DVC remote (outputs and
run-cache), and a merge that pulls everything and writes the report without training.

DVC has no remote executors and no parallel `repro` inside one workspace, so a worker is a clone
of the repository: on other machines (Slurm, SSH, cloud) or on this one (one per GPU).

    python -m coreset.experiments.tables TABLE --shard 0/2 --git-remote origin --dvc-remote store
    python -m coreset.experiments.tables TABLE --shard 1/2 --git-remote origin --dvc-remote store
    python -m coreset.experiments.tables TABLE --merge --git-remote origin --dvc-remote store
    python -m coreset.experiments.tables TABLE --gpus 0,1,2,3   # one clone per GPU, then the merge
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class GridError(RuntimeError):
    """A problem the user must fix first (bad --shard, failed push); printed as one line."""


@dataclass(frozen=True)
class Shard:
    """Worker ``index`` of ``count`` (0-based)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``K/N`` -> Shard(K, N), with 0 <= K < N."""
        k, sep, n = text.partition("/")
        if not (sep and k.isdigit() and n.isdigit() and 0 <= int(k) < int(n)):
            raise GridError(f"--shard {text!r} is not allowed: K/N with 0 <= K < N, e.g. 0/4")
        return cls(int(k), int(n))


def split(cells: Sequence[dict[str, Any]], key: Callable[[dict[str, Any]], Any],
          count: int) -> list[list[dict[str, Any]]]:
    """Deterministic partition of ``cells`` into ``count`` shards (plan order kept in each).

    Cells with the same ``key`` (the params of the stages before select@) share their upstream
    stages (corrupt .. score). When there are at least ``count`` such groups, whole groups go to
    one shard (largest first, to the least-loaded shard, lowest index on ties), so no upstream is
    computed twice. With fewer groups than shards, cells are dealt round-robin: a shared upstream
    is then computed by each shard that needs it, unless the baseline's run-cache holds it.
    """
    groups: dict[Any, list[int]] = {}
    for i, cell in enumerate(cells):
        groups.setdefault(key(cell), []).append(i)
    if len(groups) < count:
        owner = [i % count for i in range(len(cells))]
    else:
        owner = [0] * len(cells)
        load = [0] * count
        for members in sorted(groups.values(), key=lambda m: (-len(m), m[0])):
            target = min(range(count), key=lambda s: (load[s], s))
            load[target] += len(members)
            for i in members:
                owner[i] = target
    return [[c for c, o in zip(cells, owner, strict=True) if o == s] for s in range(count)]


# --- several GPUs on one machine --------------------------------------------------------------

def gpu_workers(gpus: Sequence[str], cpu_count: int) -> list[dict[str, str]]:
    """The environment of each worker: one GPU each (``CUDA_VISIBLE_DEVICES``) and an equal share
    of the CPU cores for the BLAS/OpenMP thread pools, so N workers never oversubscribe them."""
    if not gpus:
        raise GridError("--gpus is empty: give GPU ids, e.g. --gpus 0,1")
    if len(set(gpus)) != len(gpus):
        raise GridError(f"--gpus {','.join(gpus)} names a GPU twice")
    threads = str(max(1, cpu_count // len(gpus)))
    return [{"CUDA_VISIBLE_DEVICES": str(g), "OMP_NUM_THREADS": threads,
             "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads} for g in gpus]


def run_local_workers(root: Path, table_args: list[str], gpus: Sequence[str],
                      cpu_count: int | None = None) -> int:
    """One clone of ``root`` per GPU under .dvc/tmp/workers/, sharing ``root``'s DVC cache (and
    so its run-cache); each runs its shard and pushes its experiments back to ``root``. Returns
    the number of workers that failed."""
    envs = gpu_workers(gpus, cpu_count or os.cpu_count() or 1)
    cache = _dvc_out(root, "cache", "dir").strip() or str(root.resolve() / ".dvc" / "cache")
    procs = []
    for k, env in enumerate(envs):
        clone = root / ".dvc" / "tmp" / "workers" / f"gpu{gpus[k]}"
        if not clone.exists():
            _check(subprocess.run(["git", "clone", "-q", str(root.resolve()), str(clone)]),
                   f"git clone into {clone}")
        _check(subprocess.run(["git", "-C", str(clone), "pull", "-q", "--ff-only"]),
               f"git pull in {clone}")
        _check(dvc(clone, "cache", "dir", "--local", cache), f"dvc cache dir in {clone}")
        cmd = [sys.executable, "-m", "coreset.experiments.tables", *table_args,
               "--root", str(clone),
               "--shard", f"{k}/{len(envs)}", "--git-remote", str(root.resolve()),
               "--no-dvc-push", "--jobs", "1"]
        log = open(clone / "worker.log", "w")  # noqa: SIM115 (closed when the worker ends)
        print(f"  worker {k}: CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']}, "
              f"{env['OMP_NUM_THREADS']} CPU thread(s), log {clone / 'worker.log'}")
        procs.append((subprocess.Popen(cmd, env={**os.environ, **env}, stdout=log,
                                       stderr=subprocess.STDOUT), log))
    failed = 0
    for proc, log in procs:
        failed += proc.wait() != 0
        log.close()
    return failed


# --- exchange through the remotes -------------------------------------------------------------

def pull_run_cache(root: Path, dvc_remote: str | None) -> None:
    """The run-cache (and the outputs it names) of every earlier run, so that stages already
    computed anywhere are restored instead of recomputed. An empty remote is not an error."""
    dvc(root, "pull", "--run-cache", *_remote(dvc_remote), quiet=True)


def push(root: Path, git_remote: str, dvc_remote: str | None, with_cache: bool = True) -> None:
    """This clone's experiments (refs, outputs) and the run-cache of every stage it ran."""
    args = ["exp", "push", "--force", *_remote(dvc_remote)]
    args += ["--run-cache"] if with_cache else ["--no-cache"]
    _check(dvc(root, *args, git_remote), f"dvc {' '.join(args)} {git_remote}")
    if with_cache:  # the baseline's own stages too (exp push only covers experiments)
        _check(dvc(root, "push", "--run-cache", *_remote(dvc_remote)),
               "dvc push --run-cache")


def pull(root: Path, git_remote: str, dvc_remote: str | None) -> None:
    """Every experiment of the baseline commit from ``git_remote``, with its outputs and the
    run-cache from the DVC remote."""
    _check(dvc(root, "exp", "pull", "--force", "--run-cache", *_remote(dvc_remote),
                git_remote), f"dvc exp pull {git_remote}")


def _remote(name: str | None) -> list[str]:
    return ["-r", name] if name else []


def dvc_env() -> dict[str, str]:
    """PATH with this interpreter's bin first: DVC's queue workers call `dvc` and `python`
    from PATH, and must get this environment's (with the coreset package installed)."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}


def dvc(root: Path, *args: str, quiet: bool = False) -> subprocess.CompletedProcess:
    """``python -m dvc ARGS`` in ``root`` with :func:`dvc_env`; quiet sends its output away."""
    out = subprocess.DEVNULL if quiet else None
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=dvc_env(),
                          stdout=out, stderr=out)


def _dvc_out(root: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=dvc_env(),
                          capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else ""


def _check(proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode != 0:
        raise GridError(f"`{what}` failed (exit {proc.returncode})")
