"""Run every pipeline stage on a dataset of a given shape and print, per stage, its wall time,
peak RSS, disk written and largest in-memory array (issue 16: does a run at the users' scale
fit one machine?).

    python benchmarks/synthetic.py imagenet /scratch/in16          # the data (see its docstring)
    python benchmarks/scale.py --dataset imagefolder --root /scratch/in16 --image-size 16 \\
        --host-memory-gb 6 --work /scratch/scale-in16
    python benchmarks/scale.py --dataset npy --root /scratch/cifar10 --image-size 32

The stages run in dvc.yaml's order (check, download, [attacker,] corrupt, pretrain, embed,
score/select per recipe, train per recipe and seed, train on the full set, evaluate), each as
its own process with the command dvc.yaml gives it, in a copy of the repository's tracked files
(``--work``, default a temporary folder), with params.yaml overridden by :data:`OVERRIDES` and
``--set key=value``. DVC itself is not run: its caching would copy every output once more and
time hashing, not the stages.

Columns: wall seconds and the process's peak RSS come from the stage's own
``$CORESET_STAGE_LOG`` line; the tree's is the largest sum of VmRSS over the stage's process and
its descendants (download's decoding pool), sampled every 0.2 s; ``within budget`` compares the
larger of the two with ``data.host_memory_gb`` + :data:`OVERHEAD_GIB`; disk written is the size
of the files the stage created or changed under data/, models/, metrics/ and plots/; the largest
array is the largest numpy array or CPU tensor seen live, sampled every 2 s
(benchmarks/array_probe.py: memory maps excluded; a shorter-lived temporary can be missed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PROBE = REPO / "benchmarks" / "array_probe.py"
sys.path.insert(0, str(REPO / "src"))
from coreset.config import HOST_OVERHEAD_GIB as OVERHEAD_GIB  # noqa: E402

TREE_INTERVAL = 0.2  # seconds between samples of the stage's process-tree RSS
OUTPUT_DIRS = ("data", "models", "metrics", "plots")
# a CPU-trainable protocol: one small model, one pretrain seed, one epoch, a few selectors
OVERRIDES = {
    "selectors": ["random", "moderate", "el2n", "forgetting", "kcenter"],
    "seeds": [0],
    "cpu_threads": 1,  # 2 threads on 2 shared cores made pretraining 10x slower (57 s vs 5.7 s)
    "pretrain.model": "mnist_cnn", "pretrain.seeds": [0], "pretrain.epochs": 1,
    "pretrain.augment": "none",
    "train.model": "mnist_cnn", "train.epochs": 1, "train.augment": "none",
}


def set_key(params: dict, key: str, value: object) -> None:
    *parents, last = key.split(".")
    node = params
    for part in parents:
        node = node[part]
    if last not in node:
        raise SystemExit(f"--set {key}: no such key in params.yaml")
    node[last] = value


def prepare(work: Path, overrides: dict[str, object]) -> dict:
    """Copy the tracked files into ``work`` (unless it already holds a params.yaml) and write the
    overridden params.yaml; returns the params."""
    if not (work / "params.yaml").exists():
        files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                               check=True).stdout.split()
        for rel in files:
            src = REPO / rel
            if src.is_file() and rel.split("/")[0] not in ("data", "metrics", "plots"):
                (work / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, work / rel)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in overrides.items():
        set_key(params, key, value)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def stages(p: dict) -> list[list[str]]:
    """Stage module + arguments in dvc.yaml's order for the params ``p``."""
    out = [["check"], ["download"]]
    if p["corrupt"]["adversarial"]["rate"] > 0:
        out.append(["attacker"])
    out += [["corrupt"], ["pretrain"], ["embed"]]
    out += [["score", s] for s in p["selectors"]] + [["select", s] for s in p["selectors"]]
    out += [["train", s, str(seed)] for s in p["selectors"] for seed in p["seeds"]]
    out += [["train", "full", str(seed)] for seed in p["seeds"]] + [["evaluate"]]
    return out


def _files(work: Path) -> dict[Path, tuple[int, int]]:
    found = {}
    for top in OUTPUT_DIRS:
        for path in (work / top).rglob("*"):
            if path.is_file() and "external" not in path.relative_to(work).parts[:2]:
                st = path.stat()
                found[path] = (st.st_size, st.st_mtime_ns)
    return found


def run_stage(work: Path, stage: list[str], log: Path) -> dict:
    before = _files(work)
    probe = work / ".probe.json"
    env = {**os.environ, "PYTHONPATH": str(work / "src"), "CORESET_STAGE_LOG": str(log)}
    cmd = [sys.executable, str(PROBE), str(probe), f"coreset.stages.{stage[0]}", *stage[1:]]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=err, text=True)
        tree = 0
        while proc.poll() is None:
            tree = max(tree, tree_rss(proc.pid))
            time.sleep(TREE_INTERVAL)
        wall = time.perf_counter() - t0
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(stage)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    row = json.loads(log.read_text().splitlines()[-1])
    after = _files(work)
    written = sum(size for path, (size, mtime) in after.items() if before.get(path) != (size,
                                                                                          mtime))
    return {**row, **json.loads(probe.read_text()), "disk_written": written,
            "tree_rss_mib": tree / 2**20, "process_wall_s": wall,
            "last_line": (stdout.strip().splitlines() or [""])[-1]}


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            kids += [int(k) for k in task.read_text().split()]
        except OSError:  # the task ended meanwhile
            continue
    return kids


def tree_rss(pid: int) -> int:
    """Bytes resident in ``pid`` and its descendants now (VmRSS summed; 0 once they are gone)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) * 1024 for line in status.splitlines()
                       if line.startswith("VmRSS:")), 0)
        todo += _children(p)
    return total


def peak_mib(r: dict) -> float:
    """The stage's peak: its own exact peak or its process tree's sampled one, the larger.
    (The children's ru_maxrss is not added: a child forked to exec ``git`` or ``uname`` reports
    its parent's resident pages at the fork.)"""
    return max(r["peak_rss_mib"], r["tree_rss_mib"])


def baseline_mib(work: Path) -> float:
    """Peak RSS of a process that only imports torch and the stages' modules."""
    code = ("import resource, torch, coreset.stages.pretrain, coreset.stages.embed, "
            "coreset.stages.score; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(work / "src")}, check=True)
    return int(out.stdout.split()[-1]) / 1024


def table(rows: list[dict], budget_mib: float) -> str:
    mib = 2**20
    lines = ["| stage | wall s | peak RSS MiB (process / tree) | within budget | disk written "
             "MiB | largest in-memory array |", "|---|---:|---:|:--|---:|---|"]
    for r in rows:
        name = " ".join([r["stage"], *r["argv"]])
        ok = "yes" if peak_mib(r) <= budget_mib else "NO"
        lines.append(f"| {name} | {r['wall_s']:.1f} | {r['peak_rss_mib']:,.0f} / "
                     f"{r['tree_rss_mib']:,.0f} | {ok} "
                     f"| {r['disk_written'] / mib:,.1f} | {r['largest_array_bytes'] / mib:,.1f} "
                     f"MiB: {r['largest_array'] or '-'} |")
    return "\n".join(lines)


def parse_value(text: str) -> object:
    return yaml.safe_load(text)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True, help="data.dataset (imagefolder, npy, cifar10...)")
    ap.add_argument("--root", required=True, type=Path, help="data.root")
    ap.add_argument("--image-size", type=int, default=32, help="data.image_size")
    ap.add_argument("--host-memory-gb", type=float, default=4.0, help="data.host_memory_gb")
    ap.add_argument("--work", type=Path, help="work folder (default: a temporary one, removed)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="another params.yaml override (YAML value), e.g. train.steps=100")
    ap.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    ap.add_argument("--only", help="comma-separated stage names to run (the others are "
                                   "assumed done in --work)")
    a = ap.parse_args(argv)
    overrides = {**OVERRIDES, "data.dataset": a.dataset, "data.root": str(a.root.resolve()),
                 "data.image_size": a.image_size, "data.host_memory_gb": a.host_memory_gb}
    for item in a.set:
        key, _, value = item.partition("=")
        overrides[key] = parse_value(value)
    work = a.work or Path(tempfile.mkdtemp(prefix="coreset-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        params = prepare(work, overrides)
        log = work / "stages.jsonl"
        base = baseline_mib(work)
        budget = a.host_memory_gb * 1024 + OVERHEAD_GIB * 1024
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
              f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB; "
              f"import-only process {base:,.0f} MiB; budget host_memory_gb "
              f"{a.host_memory_gb} + overhead {OVERHEAD_GIB} GiB = {budget:,.0f} MiB",
              file=sys.stderr, flush=True)
        rows = []
        only = set(a.only.split(",")) if a.only else None
        for stage in stages(params):
            if only is not None and stage[0] not in only:
                continue
            rows.append(run_stage(work, stage, log))
            r = rows[-1]
            print(f"{' '.join(stage)}: {r['wall_s']:.1f} s, {r['peak_rss_mib']:,.0f} / "
                  f"{r['tree_rss_mib']:,.0f} MiB; {r['last_line'][:100]}",
                  file=sys.stderr, flush=True)
        if a.json:
            a.json.write_text(json.dumps({"budget_mib": budget, "baseline_mib": base,
                                          "rows": rows}, indent=1))
        print(f"{a.dataset} {a.root.name}: {' '.join(f'{k}={v}' for k, v in overrides.items())}")
        print(table(rows, budget))
        over = [" ".join([r["stage"], *r["argv"]]) for r in rows if peak_mib(r) > budget]
        print(f"\nover the budget ({budget:,.0f} MiB): {', '.join(over) or 'none'}")
    finally:
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
