"""Time every registered model-free selector on synthetic CIFAR- or ImageNet-shaped artifacts.

The synthetic embed.npz / dynamics.npz / labels.npy are written to disk in row chunks (never held
in memory: ImageNet-shaped softmax outputs are S N C float32 = 15 GB) with class structure
(clustered ReLU features, a linear head plus noise, the label's logit raised), and read the way
the score stage reads them (``scores.inputs.context_from_files``: memory-mapped). Each selector
runs in its own subprocess: it records its RSS, runs the score (and the weigher, for weighted
selectors, on the selection that ``scores.selection.select`` makes at that ratio) and reports its
wall time, its peak anonymous memory (sampled every 50 ms: what the process holds; the pages of
the mapped files it touched are reclaimable page cache, reported apart as peak RSS). Selectors
that take ``max_ratio`` get ``max_ratio=ratio``; the others are ratio-free, so they run once and
their row is shared by every ratio.

    python benchmarks/selection.py                      # CIFAR-10 and CIFAR-100 shapes, 0.1 / 0.3
    python benchmarks/selection.py --n 5000 --classes 10 --selectors craig,glister --ratios 0.1
    flock /tmp/coreset-heavy.lock python benchmarks/selection.py --shape imagenet \
        --data /work/scratch/imagenet-embed --ratios 0.1 --timeout 900   # 18 GB written once

Prints a markdown table on stdout; progress and errors go to stderr. Targets: every selector
without backward passes under 60 s and 4 GB at the CIFAR-10 shape on 2 cores; at the ImageNet
shape (N 1,281,167, D 512, C 1000, S 3), balanced, within 24 GiB.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import pkgutil
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"
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


# ImageNet-1k train split; E = 30 epochs of dynamics: dual's default trajectory reads 30
SHAPES = {"imagenet": {"n": 1_281_167, "classes": "1000", "epochs": 30}}
CHUNK = 16_384  # rows generated and written at a time


class NpzWriter:
    """An uncompressed .npz (what ``np.savez`` writes) whose members are streamed in chunks."""

    def __init__(self, path: Path) -> None:
        self.zf = zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True)

    @contextmanager
    def member(self, name: str, shape: tuple[int, ...], dtype: object) -> Iterator:
        """``write(chunk)`` for one C-order array: its rows in order, in chunks of its dtype."""
        dtype = np.dtype(dtype)
        with self.zf.open(f"{name}.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_2_0(f, {"descr": np.lib.format.dtype_to_descr(
                dtype), "fortran_order": False, "shape": shape})
            written = 0

            def write(chunk: np.ndarray) -> None:
                nonlocal written
                if chunk.dtype != dtype:  # numpy 2 promotes float32 / np.float64 to float64
                    raise TypeError(f"{name}: a {chunk.dtype} chunk for a {dtype} array")
                f.write(np.ascontiguousarray(chunk).tobytes())
                written += chunk.size

            yield write
            if written != math.prod(shape):
                raise ValueError(f"{name}: wrote {written} of {math.prod(shape)} values")

    def array(self, name: str, arr: np.ndarray) -> None:
        with self.member(name, arr.shape, arr.dtype) as write:
            write(arr)

    def close(self) -> None:
        self.zf.close()


def _chunk(n: int, dim: int, classes: int, labels: np.ndarray, centres: np.ndarray,
           head: np.ndarray, start: int, model: int, seed: int) -> tuple:
    """(features, probs of ``model`` or None for -1) of rows [start, start + CHUNK): seeded per
    chunk, so every model sees the same features without keeping them. The assigned label's
    logit gets a per-sample margin ~ N(7.5, 2.5) (shared by the models, plus N(0, 0.5) per
    model) over 1000 N(0, 1) logits plus h @ head: assigned-label probabilities spread from near
    0 (hard or mislabelled-looking) to near 1, as a trained network's do."""
    rows = slice(start, min(n, start + CHUNK))
    rng = np.random.default_rng([seed, start])
    y = labels[rows]
    h = np.maximum(centres[y] + rng.standard_normal((len(y), dim), dtype=np.float32), 0)
    margin = rng.normal(7.5, 2.5, len(y)).astype(np.float32)
    if model < 0:
        return h, None
    mrng = np.random.default_rng([seed, start, model + 1])
    logits = h @ head
    logits += mrng.standard_normal((len(y), classes), dtype=np.float32)
    logits[np.arange(len(y)), y] += margin + mrng.normal(0, 0.5, len(y)).astype(np.float32)
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return h, logits


def make_arrays(out: Path, n: int, dim: int, classes: int, models: int, epochs: int,
                seed: int = 0) -> None:
    """Synthetic embed/pretrain artifacts on disk, in chunks of CHUNK rows: memory O(CHUNK C)
    plus the (S, E, N) dynamics of one model."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % classes).astype(np.int64)
    centres = rng.standard_normal((classes, dim)).astype(np.float32)
    head = rng.standard_normal((dim, classes)).astype(np.float32) / np.float32(np.sqrt(dim))
    np.save(out / "labels.npy", labels)
    loss = np.empty((models, n), np.float32)
    grad_norm = np.empty((models, n), np.float32)
    emb = NpzWriter(out / "embed.npz")
    with emb.member("features", (n, dim), np.float32) as write:
        for start in range(0, n, CHUNK):
            write(_chunk(n, dim, classes, labels, centres, head, start, -1, seed)[0])
    with emb.member("probs", (models, n, classes), np.float32) as write:
        for s in range(models):
            for start in range(0, n, CHUNK):
                h, p = _chunk(n, dim, classes, labels, centres, head, start, s, seed)
                rows, y = slice(start, start + len(p)), labels[start:start + len(p)]
                py = p[np.arange(len(y)), y]
                loss[s, rows] = -np.log(np.maximum(py, 1e-12))
                err2 = np.square(p).sum(axis=1) - 2 * py + 1
                grad_norm[s, rows] = np.sqrt(np.maximum(err2, 0) * (1 + np.square(h).sum(1)))
                write(p)
    emb.array("loss", loss)
    emb.array("grad_norm", grad_norm)
    emb.close()
    _dynamics(out / "dynamics.npz", loss, models, epochs, seed)
    (out / "meta.json").write_text(json.dumps({"num_classes": classes, "n": n, "dim": dim,
                                               "models": models, "epochs": epochs}))


def _dynamics(path: Path, loss: np.ndarray, models: int, epochs: int, seed: int) -> None:
    """Per-epoch dynamics that converge: the loss falls towards the final loss, samples are
    learned (correct) with a probability that grows with the epoch. One member at a time (zip
    writes one member at a time): each (model, epoch) is regenerated from its own seed."""
    n = loss.shape[1]
    fields = {"correct": np.bool_, "loss": np.float32, "margin": np.float32,
              "prob": np.float32, "prob_margin": np.float32, "prob_change": np.float32}
    dyn = NpzWriter(path)
    for name, dtype in fields.items():
        with dyn.member(name, (models, epochs, n), dtype) as write:
            for s in range(models):
                for e in range(epochs):
                    write(_epoch(loss[s], epochs, e, [seed, 99, s, e])[name])
    dyn.close()


def _epoch(loss: np.ndarray, epochs: int, e: int, seed: list[int]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = len(loss)
    ep_loss = loss * np.float32(1 + 2 * (epochs - 1 - e) / epochs) \
        + rng.random(n, dtype=np.float32) * np.float32(0.1)
    prob = np.exp(-ep_loss)
    return {"correct": prob > rng.random(n, dtype=np.float32) * np.float32(0.8),
            "loss": ep_loss, "margin": (np.log(prob + 1e-6) + 1).astype(np.float32),
            "prob": prob, "prob_margin": (2 * prob - 1).astype(np.float32),
            "prob_change": (rng.random(n, dtype=np.float32) / np.float32(e + 1))}


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


class AnonPeak(threading.Thread):
    """Peak anonymous RSS (process memory, not mapped file pages), sampled every 50 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak, self.done = _anon_mb(), threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            self.peak = max(self.peak, _anon_mb())

    def stop(self) -> float:
        self.done.set()
        self.join()
        return max(self.peak, _anon_mb())


def _anon_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(data: Path, name: str, ratio: float, balance: str) -> None:
    """Run one selector on the saved artifacts and print one JSON line."""
    registry, _ = load_selectors()
    from coreset.scores.inputs import context_from_files
    from coreset.scores.selection import select

    meta = json.loads((data / "meta.json").read_text())
    ctx = context_from_files(data / "embed.npz", data / "dynamics.npz", data / "labels.npy",
                             meta["num_classes"])
    spec = registry[name]
    bal = spec.balance if balance == "default" else balance == "true"
    params = {"max_ratio": ratio} if "max_ratio" in spec.defaults else {}
    before, anon_before = _rss_mb(), _anon_mb()
    clean = _reset_peak()
    sampler = AnonPeak()
    sampler.start()
    start, cpu = time.perf_counter(), _cpu_seconds()
    score = spec.fn(ctx, rng=np.random.default_rng(0), balance=bal, **params)
    seconds = time.perf_counter() - start
    result = {"seconds": seconds, "cpu_seconds": _cpu_seconds() - cpu, "rss_before_mb": before,
              "anon_before_mb": anon_before, "clean_peak": clean,
              "ranked": int(np.isfinite(score).sum())}
    if spec.weigher is not None:
        picked = select(score, ctx.labels, ratio, spec.window, bal, np.random.default_rng(0))
        start = time.perf_counter()
        spec.weigher(ctx, picked, **{**spec.defaults, **params})
        result["weigher_seconds"] = time.perf_counter() - start
    result["peak_mb"], result["anon_peak_mb"] = _peak_mb(), sampler.stop()
    result["load"] = os.getloadavg()[0]
    print(json.dumps(result))


def run_one(data: Path, name: str, ratio: float, timeout: float, balance: str) -> dict:
    cmd = [sys.executable, __file__, "--child", str(data), "--selectors", name,
           "--ratios", str(ratio), "--balance", balance]
    path = [str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout > {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1:] or ["no output"]
        return {"status": f"error: {tail[0][:160]}"}
    return {"status": "ok", **json.loads(lines[-1])}


def _needs_model(spec: object) -> bool:
    """Whether a selector needs backward passes with its default params."""
    uses = getattr(spec, "uses_model", None)
    return bool(uses(dict(spec.defaults))) if uses else bool(spec.needs_model)


def _row(name: str, family: str, classes: int, ratio: str, r: dict) -> str:
    if r["status"] != "ok":
        return f"| {name} | {family} | {classes} | {ratio} | | | | | | | {r['status']} |"
    weigh = f"{r['weigher_seconds']:.1f}" if "weigher_seconds" in r else ""
    status = "ok" if r["clean_peak"] else "ok (peak RSS includes imports)"
    return (f"| {name} | {family} | {classes} | {ratio} | {r['seconds']:.1f} | "
            f"{r['cpu_seconds']:.1f} | {weigh} | {r['anon_peak_mb']:.0f} | {r['peak_mb']:.0f} | "
            f"{r['load']:.1f} | {status} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", choices=sorted(SHAPES), help="imagenet: N 1,281,167, C 1000 "
                   "(overrides --n and --classes)")
    p.add_argument("--n", type=int, default=50_000, help="training samples")
    p.add_argument("--dim", type=int, default=512, help="penultimate feature dimension")
    p.add_argument("--classes", default="10,100", help="comma list, one table block each")
    p.add_argument("--models", type=int, default=3, help="pretrained models S in probs (S,N,C)")
    p.add_argument("--epochs", type=int, default=10, help="pretraining epochs E (S,E,N)")
    p.add_argument("--selectors", default="", help="comma list (default: all model-free)")
    p.add_argument("--ratios", default="0.1,0.3", help="comma list of selection ratios")
    p.add_argument("--balance", choices=("default", "true", "false"), default="default",
                   help="balance of every run (default: each selector's registered default)")
    p.add_argument("--timeout", type=float, default=600, help="seconds per selector run")
    p.add_argument("--data", type=Path, help="folder for the synthetic artifacts, kept and "
                   "reused when its meta.json matches the shape (default: a temporary folder)")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.shape:
        shape = SHAPES[args.shape]
        args.n, args.classes, args.epochs = shape["n"], shape["classes"], shape["epochs"]
    ratios = [float(r) for r in args.ratios.split(",")]
    if args.child is not None:
        child(args.child, args.selectors, ratios[0], args.balance)
        return

    registry, errors = load_selectors()
    for mod, err in errors.items():
        print(f"import failed: coreset.scores.{mod}: {err}", file=sys.stderr)
    wanted = [s for s in args.selectors.split(",") if s] or sorted(registry)
    unknown = [s for s in wanted if s not in registry]
    names = [s for s in wanted if s in registry and not _needs_model(registry[s])]
    skipped = [s for s in wanted if s in registry and _needs_model(registry[s])]

    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
          f"numpy {np.__version__}, load average at start {os.getloadavg()[0]:.1f}\n")
    print(f"N = {args.n}, D = {args.dim}, S = {args.models}, E = {args.epochs}, balance = "
          f"{args.balance}. score s: wall seconds of the score; cpu s: its CPU seconds over all "
          "threads (less sensitive to other processes than wall time); weigher s: wall seconds "
          "of the weights of the selection at that ratio; peak MB: peak anonymous memory of the "
          "subprocess while scoring and weighing (sampled every 50 ms), which is what it holds; "
          "RSS MB: its peak RSS, which adds the pages of the memory-mapped artifacts it read "
          "(reclaimable page cache); load: 1-min load average after the run (> 2: other "
          "processes shared the cores).\n")
    print("| selector | family | C | ratio | score s | cpu s | weigher s | peak MB | RSS MB "
          "| load | status |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for classes in [int(c) for c in args.classes.split(",")]:
        data = _artifacts(args, classes)
        try:
            for name in names:
                spec = registry[name]
                ratio_free = "max_ratio" not in spec.defaults
                for ratio in ratios[:1] if ratio_free else ratios:
                    print(f"running {name} C={classes} ratio={ratio}", file=sys.stderr)
                    r = run_one(data, name, ratio, args.timeout, args.balance)
                    label = "any" if ratio_free else f"{ratio:g}"
                    print(_row(name, spec.family, classes, label, r), flush=True)
        finally:
            if args.data is None:
                shutil.rmtree(data, ignore_errors=True)
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")
    if skipped:
        print(f"not timed (need model backward passes): {', '.join(skipped)}")
    if unknown:
        print(f"unknown selectors: {', '.join(unknown)}")
    for mod, err in errors.items():
        print(f"import failed: coreset.scores.{mod}: {err}")


def _artifacts(args: argparse.Namespace, classes: int) -> Path:
    """The folder of the synthetic artifacts: ``--data`` (one subfolder per C), reused when its
    meta.json matches, or a new temporary one."""
    shape = {"num_classes": classes, "n": args.n, "dim": args.dim, "models": args.models,
             "epochs": args.epochs}
    if args.data is None:
        data = Path(tempfile.mkdtemp(prefix="coreset-bench-"))
    else:
        data = args.data / f"n{args.n}-c{classes}"
        meta = data / "meta.json"
        if meta.exists() and json.loads(meta.read_text()) == shape:
            print(f"reusing {data}", file=sys.stderr)
            return data
        data.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    make_arrays(data, args.n, args.dim, classes, args.models, args.epochs)
    size = sum(f.stat().st_size for f in data.iterdir()) / 2**30
    print(f"wrote {size:.1f} GiB of synthetic artifacts to {data} in "
          f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
    return data


if __name__ == "__main__":
    main()
