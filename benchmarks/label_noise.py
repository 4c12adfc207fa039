"""Selectors under symmetric label noise on digits: the share of mislabeled samples each keeps and
the test accuracy of a model trained on its selection.

Runs the pipeline's own stages (``python -m coreset.stages.<stage>``, as ``dvc repro`` does, no
DVC needed) in a temporary copy of params.yaml with ``corrupt.label_noise.rate`` and ``ratio``
set, the default pretraining (2 models, 10 epochs) and training (30 epochs, ``seeds`` training
seeds). ``d2_max`` is ``d2`` with ``never_learned: max`` (the old default, which ranks the
never-learned samples, under noise mostly the mislabeled ones, first); ``dyn_unc_train`` is
``dyn_unc`` with ``view: train`` (the former default). ``--noise 0`` gives the
clean-digits numbers of docs/selectors.md. Mislabeled kept = mean of ``label_flipped`` over the
kept indices (of the selection, which does not depend on the training seed).

    PYTHONPATH=src python benchmarks/label_noise.py                 # 20 % noise, ratio 0.2
    PYTHONPATH=src python benchmarks/label_noise.py --noise 0 --selectors random d2 aum_clean
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
SELECTORS = ["random", "moderate", "el2n", "forgetting", "d2", "d2_max", "d2_aum_cut", "ccs",
             "aum_clean", "aum_threshold"]


def params_tree(noise: float, ratio: float, seeds: list[int], selectors: list[str]) -> dict:
    tree = yaml.safe_load((ROOT / "params.yaml").read_text())
    tree["corrupt"]["label_noise"]["rate"] = noise
    tree["ratio"], tree["seeds"], tree["selectors"] = ratio, seeds, selectors
    d2_max = json.loads(json.dumps(tree["recipes"]["d2"]))
    d2_max["params"]["never_learned"] = "max"
    tree["recipes"]["d2_max"] = d2_max
    dyn_unc_train = json.loads(json.dumps(tree["recipes"]["dyn_unc"]))
    dyn_unc_train["params"]["view"] = "train"
    tree["recipes"]["dyn_unc_train"] = dyn_unc_train
    return tree


def stage(work: Path, name: str, *args: object) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-m", f"coreset.stages.{name}", *map(str, args)],
                          cwd=work, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"stage {name} {args} failed:\n{proc.stderr[-3000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--noise", type=float, default=0.2)
    ap.add_argument("--ratio", type=float, default=0.2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--selectors", nargs="+", default=SELECTORS)
    ap.add_argument("--keep", type=Path, default=None, help="work here and keep the files")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="label_noise."))
    work.mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(
        params_tree(args.noise, args.ratio, args.seeds, args.selectors), sort_keys=False))
    start = time.perf_counter()
    for name in ("check", "download", "attacker", "corrupt", "pretrain", "embed"):
        stage(work, name)
    flipped = np.load(work / "data/train/label_flipped.npy")
    print(f"digits, {args.noise:.0%} symmetric label noise ({flipped.sum()} of {len(flipped)} "
          f"training labels flipped), ratio {args.ratio}, training seeds {args.seeds}")
    print("| recipe | kept | mislabeled kept | test accuracy (%) | unranked (mislabeled) | "
          "score stage (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.selectors:
        scored = time.perf_counter()
        stage(work, "score", name)
        scored = time.perf_counter() - scored
        stage(work, "select", name)
        kept = np.load(work / f"data/selected/{name}.npz")["indices"]
        # never ranked (-inf): a hard cut's or the threshold filter's removed samples
        cut = np.isneginf(np.load(work / f"data/scores/{name}.npz")["score"])
        unranked = f"{cut.sum()} ({100 * flipped[cut].mean():.0f} %)" if cut.any() else "0"
        accs = []
        for seed in args.seeds:
            stage(work, "train", name, seed)
            metrics = json.loads((work / f"metrics/train/{name}-{seed}.json").read_text())
            accs.append(100 * metrics["accuracy"])
        spread = f" ± {np.std(accs, ddof=1):.2f}" if len(accs) > 1 else ""
        print(f"| `{name}` | {len(kept)} | {100 * flipped[kept].mean():.1f} % | "
              f"{np.mean(accs):.2f}{spread} | {unranked} | {scored:.1f} |", flush=True)
    print(f"({time.perf_counter() - start:.0f} s; std over training seeds, ddof 1)")
    if args.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
