"""What a stage costs before it does any work: the fixed overhead of each DVC stage process.

    python benchmarks/stage_overhead.py            # median of 5 runs per row
    python benchmarks/stage_overhead.py --runs 3

For every stage module it times, in a fresh process each time: the interpreter start, importing
the stage module and validating params.yaml (what every stage does first), and for the stages
that run a model, importing torch and initialising the device (`device: auto`: CUDA when
present). It also reports whether the stage imports torch at all: select and evaluate (numpy
and pandas only) must not. Run it from the repository root.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

STAGES = ("download", "attacker", "corrupt", "pretrain", "embed", "score", "select", "train",
          "evaluate")
TORCH_STAGES = {"attacker", "pretrain", "embed", "train"}  # score: only model-based selectors

BARE = "pass"
IMPORT = """
import sys
import coreset.stages.{stage}
from coreset.config import load
load("params.yaml")
print("torch" in sys.modules)
"""
DEVICE = """
import torch
from coreset.training.device import pick_device
device = pick_device("auto", 1)
torch.zeros(1, device=device).sum().item()
"""


def timed(code: str, runs: int) -> tuple[float, str]:
    """Median wall time (s) of ``python -c code`` in a fresh process, and its last output."""
    times, out = [], ""
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True)
        times.append(time.perf_counter() - start)
        out = proc.stdout.strip()
    return statistics.median(times), out


def main() -> None:
    a = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--runs", type=int, default=5)
    args = a.parse_args()
    bare, _ = timed(BARE, args.runs)
    torch_import, _ = timed("import torch", args.runs)
    device, _ = timed(DEVICE, args.runs)
    init = max(0.0, device - torch_import)
    print(f"interpreter start {bare:.2f} s; import torch {torch_import - bare:.2f} s; "
          f"device init (auto) {init:.2f} s\n")
    print("| stage | imports + params check (s) | imports torch | + model device init (s) |"
          " fixed overhead (s) |")
    print("|---|---:|:---:|---:|---:|")
    for stage in STAGES:
        seconds, uses_torch = timed(IMPORT.format(stage=stage), args.runs)
        extra = 0.0
        if stage in TORCH_STAGES:  # the model stages import torch lazily, then init the device
            extra = init + (torch_import - bare if uses_torch != "True" else 0.0)
        print(f"| {stage} | {seconds:.2f} | {'yes' if uses_torch == 'True' else 'no'} | "
              f"{extra:.2f} | {seconds + extra:.2f} |")


if __name__ == "__main__":
    main()
