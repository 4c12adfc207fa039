"""The manifest of one training run: what the train stage records about how a result was made.

Two files per run of ``train@<recipe>-<seed>``:

- ``metrics/manifest/<recipe>-<seed>.json`` (a DVC-cached output): everything that follows from
  the stage's inputs -- the hash of its params, the sha256 of the selection it trained on, the
  seed, the protocol (budget mode, epochs, steps, batch size) and what the run did with it (SGD
  steps taken, samples seen, epochs run), the device type. Deterministic, so dvc.lock and a
  fresh clone's ``dvc repro`` stay byte-identical; a run-cache restore brings it back.
- ``<run log>/<key>.json``: the run record, what is true of this execution only -- wall time,
  device name, host, finish time, git HEAD. It is not a DVC output (its hash would change every
  run) and not git-tracked; ``key`` is the sha256 of the manifest file, so the table joins the
  two. The run log is ``$CORESET_RUN_LOG``, else ``logs/runs`` (gitignored) under the working
  directory; ``coreset table`` sets it, so that queued experiments (which run in temporary
  copies of the repository) write to the repository's log.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from coreset.io import save_json

if TYPE_CHECKING:  # torch only for the type: the table reads manifests without importing it
    import torch

    from coreset.params import Params
MANIFEST = Path("metrics/manifest")
RUN_LOG_ENV = "CORESET_RUN_LOG"
DEFAULT_RUN_LOG = Path("logs/runs")


def canonical(obj: Any) -> bytes:
    """Sorted-key compact JSON: the bytes every hash here is taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=list).encode()


def stage_params(p: Params) -> dict[str, Any]:
    """The params the train stages declare in dvc.yaml (train, device, cpu_threads, data.loader,
    data.host_memory_gb): the run-cache key, so nothing else may enter the manifest."""
    return {"train": dataclasses.asdict(p.train), "device": p.device,
            "cpu_threads": p.cpu_threads, "data.loader": p.data.loader,
            "data.host_memory_gb": p.data.host_memory_gb}


def selection_sha256(indices: np.ndarray, weights: np.ndarray | None) -> str:
    """sha256 over the int64 indices and float32 weights (unit weights when None) trained on."""
    h = hashlib.sha256(np.ascontiguousarray(indices, dtype=np.int64).tobytes())
    w = np.ones(len(indices), np.float32) if weights is None else weights
    h.update(np.ascontiguousarray(w, dtype=np.float32).tobytes())
    return h.hexdigest()


def row(p: Params, recipe: str, seed: int, indices: np.ndarray, weights: np.ndarray | None,
        steps: int, samples_seen: int, epochs_run: int, device: torch.device) -> dict[str, Any]:
    """The deterministic manifest of one run (see the module docstring)."""
    return {"recipe": recipe, "seed": seed,
            "params_sha256": hashlib.sha256(canonical(stage_params(p))).hexdigest(),
            "selection_sha256": selection_sha256(indices, weights), "n_train": len(indices),
            "protocol": p.train.protocol(), "steps_run": steps, "samples_seen": samples_seen,
            "epochs_run": epochs_run, "device_type": device.type}


def write(recipe: str, seed: int, manifest: dict[str, Any], device: torch.device,
          wall_s: float) -> Path:
    """Write the manifest and its run record; the run record's path."""
    path = MANIFEST / f"{recipe}-{seed}.json"
    save_json(path, manifest)
    record = {"key": key(path.read_bytes()), "recipe": recipe, "seed": seed,
              "wall_s": round(wall_s, 3), "device": device_name(device),
              "host": socket.gethostname(),
              "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "git_head": _git_head()}
    out = run_log() / f"{record['key']}.json"
    save_json(out, record)
    return out


def key(manifest_bytes: bytes) -> str:
    """The run record's name: the sha256 of the manifest file's bytes."""
    return hashlib.sha256(manifest_bytes).hexdigest()


def run_log() -> Path:
    return Path(os.environ.get(RUN_LOG_ENV) or DEFAULT_RUN_LOG)


def device_name(device: torch.device) -> str:
    """``cpu``, or the accelerator with its model name, e.g. ``cuda:0 (NVIDIA H200)``."""
    if device.type == "cuda":
        import torch

        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(device)


def _git_head() -> str:
    proc = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else ""
