"""Time every registered model-free selector on synthetic CIFAR-shaped arrays.

Each selector runs in its own subprocess, so its peak RSS is clean: the subprocess loads the arrays
(``np.load``, no temporaries), records its RSS, runs the score (and the weigher, for weighted
selectors, on the selection that ``scores.selection.select`` makes at that ratio) and reports its
wall time and peak RSS. Selectors that take ``max_ratio`` get ``max_ratio=ratio``; the others are
ratio-free, so they run once and their row is shared by every ratio.

    python benchmarks/selection.py                      # CIFAR-10 and CIFAR-100 shapes, 0.1 / 0.3
    python benchmarks/selection.py --n 5000 --classes 10 --selectors craig,glister --ratios 0.1

Prints a markdown table on stdout; progress and errors go to stderr. Targets: every selector
without backward passes under 60 s and 4 GB at the CIFAR-10 shape on 2 cores.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"
ARRAYS = ("labels", "features", "probs", "loss", "correct", "epoch_loss")
NOT_SELECTORS = {"registry", "context", "_modules", "params", "greedy", "kernels"}


def _import_coreset() -> None:
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))


def load_selectors() -> tuple[dict, dict[str, str]]:
    """Import every score module one by one; return (registry, {module: error})."""
    _import_coreset()
    import coreset.scores as scores
    from coreset.scores import registry

    errors = {}
    for mod in pkgutil.iter_modules(scores.__path__):
        if mod.name in NOT_SELECTORS:
            continue
        try:
            importlib.import_module(f"coreset.scores.{mod.name}")
        except Exception as exc:  # a module being written by someone else: report it
            errors[mod.name] = f"{type(exc).__name__}: {exc}"
    try:
        registry.load_all()
    except Exception as exc:
        errors["_modules"] = f"{type(exc).__name__}: {exc}"
    return registry.REGISTRY, errors


def make_arrays(out: Path, n: int, dim: int, classes: int, models: int, epochs: int,
                seed: int = 0) -> None:
    """Synthetic embed/pretrain artifacts: clustered ReLU features, a noisy softmax per model."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % classes).astype(np.int64)
    centres = rng.standard_normal((classes, dim)).astype(np.float32)
    features = np.maximum(centres[labels] + rng.standard_normal((n, dim), dtype=np.float32), 0)
    head = rng.standard_normal((dim, classes)).astype(np.float32) / np.sqrt(dim)
    probs = np.empty((models, n, classes), dtype=np.float32)
    for s in range(models):
        logits = features @ head + rng.standard_normal((n, classes), dtype=np.float32)
        logits[np.arange(n), labels] += 3.0
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        probs[s] = e / e.sum(axis=1, keepdims=True)
    loss = -np.log(np.maximum(probs[:, np.arange(n), labels], 1e-12))
    arrays = {
        "labels": labels, "features": features, "probs": probs, "loss": loss.astype(np.float32),
        "correct": rng.random((models, epochs, n)) < 0.7,
        "epoch_loss": rng.random((models, epochs, n), dtype=np.float32),
    }
    for name, arr in arrays.items():
        np.save(out / f"{name}.npy", arr)
    (out / "meta.json").write_text(json.dumps({"num_classes": classes}))


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _reset_peak() -> bool:
    """Reset the peak RSS (Linux >= 4.0), so that it measures the selector, not the imports."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(data: Path, name: str, ratio: float) -> None:
    """Run one selector on the saved arrays and print one JSON line."""
    registry, _ = load_selectors()
    from coreset.scores.context import ScoringContext
    from coreset.scores.selection import select

    arrays = {k: np.load(data / f"{k}.npy") for k in ARRAYS}
    ctx = ScoringContext(num_classes=json.loads((data / "meta.json").read_text())["num_classes"],
                         **arrays)
    spec = registry[name]
    params = {"max_ratio": ratio} if "max_ratio" in spec.defaults else {}
    before = _rss_mb()
    clean = _reset_peak()
    start, cpu = time.perf_counter(), _cpu_seconds()
    score = spec.fn(ctx, rng=np.random.default_rng(0), balance=spec.balance, **params)
    seconds = time.perf_counter() - start
    result = {"seconds": seconds, "cpu_seconds": _cpu_seconds() - cpu, "rss_before_mb": before,
              "peak_mb": _peak_mb(), "clean_peak": clean, "ranked": int(np.isfinite(score).sum())}
    if spec.weigher is not None:
        picked = select(score, ctx.labels, ratio, spec.window, spec.balance,
                        np.random.default_rng(0))
        start = time.perf_counter()
        spec.weigher(ctx, picked, **{**spec.defaults, **params})
        result["weigher_seconds"] = time.perf_counter() - start
        result["peak_mb"] = _peak_mb()
    result["load"] = os.getloadavg()[0]
    print(json.dumps(result))


def run_one(data: Path, name: str, ratio: float, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", str(data), "--selectors", name,
           "--ratios", str(ratio)]
    path = [str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout > {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1:] or ["no output"]
        return {"status": f"error: {tail[0][:120]}"}
    return {"status": "ok", **json.loads(lines[-1])}


def _needs_model(spec: object) -> bool:
    """Whether a selector needs backward passes with its default params."""
    uses = getattr(spec, "uses_model", None)
    return bool(uses(dict(spec.defaults))) if uses else bool(spec.needs_model)


def _row(name: str, family: str, classes: int, ratio: str, r: dict) -> str:
    if r["status"] != "ok":
        return f"| {name} | {family} | {classes} | {ratio} | | | | | | | {r['status']} |"
    weigh = f"{r['weigher_seconds']:.1f}" if "weigher_seconds" in r else ""
    delta = r["peak_mb"] - r["rss_before_mb"]
    status = "ok" if r["clean_peak"] else "ok (peak includes imports)"
    return (f"| {name} | {family} | {classes} | {ratio} | {r['seconds']:.1f} | "
            f"{r['cpu_seconds']:.1f} | {weigh} | {r['peak_mb']:.0f} | {delta:.0f} | "
            f"{r['load']:.1f} | {status} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50_000, help="training samples")
    p.add_argument("--dim", type=int, default=512, help="penultimate feature dimension")
    p.add_argument("--classes", default="10,100", help="comma list, one table block each")
    p.add_argument("--models", type=int, default=3, help="pretrained models S in probs (S,N,C)")
    p.add_argument("--epochs", type=int, default=10, help="pretraining epochs E (S,E,N)")
    p.add_argument("--selectors", default="", help="comma list (default: all model-free)")
    p.add_argument("--ratios", default="0.1,0.3", help="comma list of selection ratios")
    p.add_argument("--timeout", type=float, default=600, help="seconds per selector run")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    ratios = [float(r) for r in args.ratios.split(",")]
    if args.child is not None:
        child(args.child, args.selectors, ratios[0])
        return

    registry, errors = load_selectors()
    for mod, err in errors.items():
        print(f"import failed: coreset.scores.{mod}: {err}", file=sys.stderr)
    wanted = [s for s in args.selectors.split(",") if s] or sorted(registry)
    unknown = [s for s in wanted if s not in registry]
    names = [s for s in wanted if s in registry and not _needs_model(registry[s])]
    skipped = [s for s in wanted if s in registry and _needs_model(registry[s])]

    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"numpy {np.__version__}, load average at start {os.getloadavg()[0]:.1f}\n")
    print(f"N = {args.n}, D = {args.dim}, S = {args.models}, E = {args.epochs}. "
          "score s: wall seconds of the score; cpu s: its CPU seconds over all threads (less "
          "sensitive to other processes than wall time); weigher s: wall seconds of the weights "
          "of the selection at that ratio; peak MB: peak RSS of the subprocess while scoring "
          "and weighing (arrays included); delta MB: peak - RSS before scoring; load: 1-min load "
          "average after the run (> 2: other processes shared the cores).\n")
    print("| selector | family | C | ratio | score s | cpu s | weigher s | peak MB | delta MB "
          "| load | status |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for classes in [int(c) for c in args.classes.split(",")]:
        data = Path(tempfile.mkdtemp(prefix="coreset-bench-"))
        try:
            make_arrays(data, args.n, args.dim, classes, args.models, args.epochs)
            for name in names:
                spec = registry[name]
                ratio_free = "max_ratio" not in spec.defaults
                for ratio in ratios[:1] if ratio_free else ratios:
                    print(f"running {name} C={classes} ratio={ratio}", file=sys.stderr)
                    r = run_one(data, name, ratio, args.timeout)
                    label = "any" if ratio_free else f"{ratio:g}"
                    print(_row(name, spec.family, classes, label, r), flush=True)
        finally:
            shutil.rmtree(data, ignore_errors=True)
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")
    if skipped:
        print(f"not timed (need model backward passes): {', '.join(skipped)}")
    if unknown:
        print(f"unknown selectors: {', '.join(unknown)}")
    for mod, err in errors.items():
        print(f"import failed: coreset.scores.{mod}: {err}")


if __name__ == "__main__":
    main()
